/* render.c — probe renderers (see render.h). */
#include "probes/render/render.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *dsv3_xml_escape(const char *s) {
    dsv3_strbuf b = {0};
    dsv3_strbuf_printf(&b, "%s", "");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '&': dsv3_strbuf_printf(&b, "&amp;"); break;
        case '<': dsv3_strbuf_printf(&b, "&lt;"); break;
        case '>': dsv3_strbuf_printf(&b, "&gt;"); break;
        case '"': dsv3_strbuf_printf(&b, "&quot;"); break;
        case '\'': dsv3_strbuf_printf(&b, "&#39;"); break;
        default:
            if (*p < 0x20 && *p != '\t' && *p != '\n') dsv3_strbuf_printf(&b, "?");
            else dsv3_strbuf_printf(&b, "%c", *p);
        }
    }
    return dsv3_strbuf_finish(&b);
}

void dsv3_text_fit(char *dst, size_t cap, const char *s, int width) {
    size_t o = 0;
    int cols = 0;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p && cols < width) {
        int len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 1;
        int ok = 1;
        for (int k = 1; k < len; k++) ok &= (p[k] & 0xC0) == 0x80;
        if (!ok) len = 1;
        if (o + (size_t)len + 4 >= cap) break;
        if (cols == width - 1 && p[len]) { /* more follows: the last column says so */
            memcpy(dst + o, "\xE2\x80\xA6", 3);  /* U+2026 */
            o += 3;
            cols++;
            break;
        }
        if (len == 1 && (*p < 0x20 || *p >= 0x80)) dst[o++] = '?';
        else {
            memcpy(dst + o, p, (size_t)len);
            o += (size_t)len;
        }
        p += len;
        cols++;
    }
    while (cols < width && o + 1 < cap) {
        dst[o++] = ' ';
        cols++;
    }
    dst[o] = 0;
}

static void range(const float *v, int64_t n, float *lo, float *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            *lo = v[i] < *lo ? v[i] : *lo;
            *hi = v[i] > *hi ? v[i] : *hi;
        }
    if (!(*hi > *lo)) *hi = *lo + 1.0f;
}

char *dsv3_render_heatmap_text(const dsv3_heatmap *h) {
    static const char ramp[] = " .:-=+*%@";
    const int nr = (int)sizeof ramp - 2;
    float lo, hi;
    range(h->v, h->rows * h->cols, &lo, &hi);
    dsv3_strbuf b = {0};
    if (h->title) dsv3_strbuf_printf(&b, "%s (%.3g .. %.3g%s)\n", h->title, lo, hi, h->mark ? "; '#' = chosen" : "");
    for (int64_t r = 0; r < h->rows; r++) {
        char lab[64];
        dsv3_text_fit(lab, sizeof lab, h->row_labels && h->row_labels[r] ? h->row_labels[r] : "", 10);
        dsv3_strbuf_printf(&b, "%4lld %s |", (long long)r + 1, lab);
        for (int64_t c = 0; c < h->cols; c++) {
            float x = h->v[r * h->cols + c];
            if (h->mark && h->mark[r * h->cols + c]) dsv3_strbuf_printf(&b, "#");
            else if (!isfinite(x)) dsv3_strbuf_printf(&b, " ");
            else dsv3_strbuf_printf(&b, "%c", ramp[(int)((x - lo) / (hi - lo) * nr + 0.5f)]);
        }
        dsv3_strbuf_printf(&b, "|\n");
    }
    return dsv3_strbuf_finish(&b);
}

char *dsv3_render_heatmap_svg(const dsv3_heatmap *h) {
    float lo, hi;
    range(h->v, h->rows * h->cols, &lo, &hi);
    const int cell = h->cols > 64 || h->rows > 64 ? 6 : 12, left = 110, top = 34;
    const int W = left + (int)h->cols * cell + 20, Hh = top + (int)h->rows * cell + 30;
    dsv3_strbuf b = {0};
    dsv3_strbuf_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"monospace\" font-size=\"10\">", W, Hh);
    if (h->title) {
        char *t = dsv3_xml_escape(h->title);
        dsv3_strbuf_printf(&b, "<text x=\"4\" y=\"14\">%s (%.3g .. %.3g)</text>", t ? t : "", lo, hi);
        free(t);
    }
    for (int64_t r = 0; r < h->rows; r++) {
        const char *lab = h->row_labels && h->row_labels[r] ? h->row_labels[r] : "";
        char *t = dsv3_xml_escape(lab);
        dsv3_strbuf_printf(&b, "<text x=\"4\" y=\"%d\">%lld %s</text>", top + (int)r * cell + cell - 2, (long long)r + 1, t ? t : "");
        free(t);
        for (int64_t c = 0; c < h->cols; c++) {
            float x = h->v[r * h->cols + c];
            if (!isfinite(x)) continue;
            float f = (x - lo) / (hi - lo);
            int R = (int)(255 - 200 * f), G = (int)(255 - 150 * f);
            int mk = h->mark && h->mark[r * h->cols + c];
            dsv3_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,255)\"%s/>",
                left + (int)c * cell, top + (int)r * cell, cell, cell, R, G,
                mk ? " stroke=\"#d00\" stroke-width=\"1.5\"" : "");
        }
    }
    if (h->col_axis) {
        char *t = dsv3_xml_escape(h->col_axis);
        dsv3_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\">%s 0..%lld</text>", left, Hh - 8, t ? t : "", (long long)h->cols - 1);
        free(t);
    }
    dsv3_strbuf_printf(&b, "</svg>");
    return dsv3_strbuf_finish(&b);
}

char *dsv3_render_bars_svg(const double *v, int64_t n, const char *title, const char *x_axis) {
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = v[i] > mx ? v[i] : mx;
    if (mx <= 0) mx = 1;
    const int bw = n > 64 ? 4 : 10, left = 30, top = 24, ph = 120;
    const int W = left + (int)n * bw + 20, H = top + ph + 30;
    dsv3_strbuf b = {0};
    dsv3_strbuf_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"monospace\" font-size=\"10\">", W, H);
    if (title) {
        char *t = dsv3_xml_escape(title);
        dsv3_strbuf_printf(&b, "<text x=\"4\" y=\"14\">%s (max %.4g)</text>", t ? t : "", mx);
        free(t);
    }
    for (int64_t i = 0; i < n; i++) {
        int hh = (int)(v[i] / mx * ph);
        dsv3_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#4a7\"/>", left + (int)i * bw,
            top + ph - hh, bw - 1, hh);
    }
    if (x_axis) {
        char *t = dsv3_xml_escape(x_axis);
        dsv3_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\">%s 0..%lld</text>", left, H - 8, t ? t : "", (long long)n - 1);
        free(t);
    }
    dsv3_strbuf_printf(&b, "</svg>");
    return dsv3_strbuf_finish(&b);
}

/* ---------------------------------------------------------------- line charts ---------- */

char *dsv3_render_lines_svg(const dsv3_series *s, int ns, int64_t n, const char *title,
                            const char *x_axis) {
    static const char *const colours[] = {"#2a6fdb", "#d9534f", "#4a7", "#e69f00", "#8e44ad", "#555"};
    int np = 0;
    for (int i = 0; i < ns; i++) np = s[i].panel + 1 > np ? s[i].panel + 1 : np;
    const int left = 56, right = 150, top = 22, ph = 110, gap = 16, pw = 420;
    const int W = left + pw + right, H = top + np * (ph + gap) + 18;
    dsv3_strbuf b = {0};
    dsv3_strbuf_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                       "font-family=\"monospace\" font-size=\"10\">", W, H);
    if (title) {
        char *t = dsv3_xml_escape(title);
        dsv3_strbuf_printf(&b, "<text x=\"4\" y=\"14\">%s</text>", t ? t : "");
        free(t);
    }
    for (int p = 0; p < np; p++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < ns; i++)
            if (s[i].panel == p)
                for (int64_t k = 0; k < n; k++)
                    if (isfinite(s[i].v[k])) lo = fmin(lo, s[i].v[k]), hi = fmax(hi, s[i].v[k]);
        if (!(lo <= hi)) lo = 0, hi = 1;
        if (hi - lo < 1e-12) hi = lo + 1e-12 + fabs(lo) * 1e-6;
        const int y0 = top + p * (ph + gap);
        dsv3_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#ccc\"/>",
                           left, y0, pw, ph);
        dsv3_strbuf_printf(&b, "<text x=\"2\" y=\"%d\">%.4g</text><text x=\"2\" y=\"%d\">%.4g</text>",
                           y0 + 9, hi, y0 + ph, lo);
        int legend = 0;
        for (int i = 0; i < ns; i++) {
            if (s[i].panel != p) continue;
            const char *col = colours[i % 6];
            dsv3_strbuf_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", col);
            double last = NAN;
            for (int64_t k = 0; k < n; k++) {
                if (!isfinite(s[i].v[k])) continue;
                const double x = left + (n > 1 ? (double)k / (double)(n - 1) : 0.5) * pw;
                const double y = y0 + ph - (s[i].v[k] - lo) / (hi - lo) * ph;
                dsv3_strbuf_printf(&b, "%.1f,%.1f ", x, y);
                last = s[i].v[k];
            }
            dsv3_strbuf_printf(&b, "\"/>");
            char *nm = dsv3_xml_escape(s[i].name ? s[i].name : "");
            dsv3_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s %.4g</text>", left + pw + 6,
                               y0 + 12 + 13 * legend++, col, nm ? nm : "", last);
            free(nm);
        }
    }
    if (x_axis) {
        char *t = dsv3_xml_escape(x_axis);
        dsv3_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\">%s 1..%lld</text>", left, H - 6, t ? t : "",
                           (long long)n);
        free(t);
    }
    dsv3_strbuf_printf(&b, "</svg>");
    return dsv3_strbuf_finish(&b);
}
