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

int dsv3_svg_text_px(const char *s) {
    double w = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if ((*p & 0xC0) == 0x80) continue;
        unsigned cp = *p;
        if (*p >= 0xE0 && p[1] && p[2]) cp = ((*p & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
        else if (*p >= 0xF0) cp = 0x20000;
        const int wide = (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
                         (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
                         (cp >= 0xFF00 && cp <= 0xFF60) || cp >= 0x20000;
        w += wide ? 12.2 : 6.1;
    }
    return (int)(w + 0.999);
}

/* The ramp's colour of f in [0, 1]: white to blue. */
static void ramp_rgb(float f, int *R, int *G) {
    *R = (int)(255 - 200 * f);
    *G = (int)(255 - 150 * f);
}

static void put_escaped(dsv3_strbuf *b, const char *s) {
    char *t = dsv3_xml_escape(s ? s : "");
    dsv3_strbuf_puts(b, t ? t : "");
    free(t);
}

/* Sizes shared by the panels of one figure. */
typedef struct {
    int cell, label_w, head_h, panel_w, panel_h;
} hm_layout;

/* Draws panel h with its top-left cell at (x, y); row labels right-aligned at x - 4 when
 * labels is set. */
static void hm_panel(dsv3_strbuf *b, const dsv3_heatmap *h, const hm_layout *ly, int x, int y,
                     float lo, float hi, int labels) {
    const int cell = ly->cell;
    const int64_t cells = h->rows * h->cols;
    if (h->title) {
        dsv3_strbuf_printf(b, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">", x,
                           y - ly->head_h + 12);
        put_escaped(b, h->title);
        dsv3_strbuf_puts(b, "</text>");
    }
    if (h->col_labels) /* rotated labels above the columns */
        for (int64_t c = 0; c < h->cols; c++) {
            const int cx = x + (int)c * cell + cell / 2 + 3;
            dsv3_strbuf_printf(b, "<text transform=\"translate(%d,%d) rotate(-60)\">", cx, y - 3);
            put_escaped(b, h->col_labels[c] ? h->col_labels[c] : "");
            dsv3_strbuf_puts(b, "</text>");
        }
    for (int64_t r = 0; r < h->rows; r++) {
        if (labels) {
            dsv3_strbuf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", x - 4,
                               y + (int)r * cell + cell - 2);
            put_escaped(b, h->row_labels && h->row_labels[r] ? h->row_labels[r] : "");
            dsv3_strbuf_puts(b, "</text>");
        }
        for (int64_t c = 0; c < h->cols; c++) {
            const float v = h->v[r * h->cols + c];
            if (!isfinite(v)) continue;
            int R, G;
            ramp_rgb((v - lo) / (hi - lo), &R, &G);
            const int mk = h->mark && h->mark[r * h->cols + c];
            dsv3_strbuf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,255)\"%s>",
                               x + (int)c * cell, y + (int)r * cell, cell, cell, R, G,
                               mk ? " stroke=\"#d00\" stroke-width=\"1.5\"" : "");
            if (cells <= 40000 || mk) {
                char tip[512];
                if (h->tip) h->tip(h->tip_ud, r, c, tip, sizeof tip);
                else snprintf(tip, sizeof tip, "%s %lld, %s %lld: %.4g",
                              h->row_axis ? h->row_axis : "row", (long long)r + 1,
                              h->col_axis ? h->col_axis : "column", (long long)c, v);
                dsv3_strbuf_puts(b, "<title>");
                put_escaped(b, tip);
                dsv3_strbuf_puts(b, "</title>");
            }
            dsv3_strbuf_puts(b, "</rect>");
        }
    }
    /* numbered ticks below the columns: every column when they fit, else every 8th */
    const int step = h->cols * 1 <= 32 && cell >= 12 ? 1 : h->cols <= 64 ? 4 : 8;
    const int yb = y + (int)h->rows * cell;
    for (int64_t c = 0; c < h->cols; c += step) {
        const int cx = x + (int)c * cell + cell / 2;
        dsv3_strbuf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>", cx, yb,
                           cx, yb + 3);
        if (!h->col_labels)
            dsv3_strbuf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"8\">%lld</text>",
                               cx, yb + 12, (long long)c);
    }
    if (h->col_axis)
        dsv3_strbuf_printf(b, "<text x=\"%d\" y=\"%d\" fill=\"#555\">", x, yb + 24),
            put_escaped(b, h->col_axis), dsv3_strbuf_puts(b, "</text>");
}

char *dsv3_render_heatmaps_svg(const dsv3_heatmap *h, int n, const char *title) {
    if (n < 1) return NULL;
    float lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        float a, c;
        range(h[i].v, h[i].rows * h[i].cols, &a, &c);
        lo = a < lo ? a : lo;
        hi = c > hi ? c : hi;
    }
    int64_t cols = 0;
    hm_layout ly = {0};
    ly.cell = 12;
    for (int i = 0; i < n; i++) {
        cols = h[i].cols > cols ? h[i].cols : cols;
        if (h[i].cols > 64 || h[i].rows > 64) ly.cell = h[i].cols > 160 ? 4 : 6;
    }
    for (int64_t r = 0; r < h[0].rows; r++) {
        const int w = dsv3_svg_text_px(h[0].row_labels ? h[0].row_labels[r] : NULL);
        ly.label_w = w > ly.label_w ? w : ly.label_w;
    }
    ly.label_w += 10;
    int col_lab_h = 0, title_w = 0;
    for (int i = 0; i < n; i++) {
        if (h[i].col_labels)
            for (int64_t c = 0; c < h[i].cols; c++) {
                const int w = (int)(dsv3_svg_text_px(h[i].col_labels[c]) * 0.87) + 6;
                col_lab_h = w > col_lab_h ? w : col_lab_h;
            }
        const int w = dsv3_svg_text_px(h[i].title);
        title_w = w > title_w ? w : title_w;
    }
    ly.head_h = (title_w ? 18 : 4) + col_lab_h;
    ly.panel_w = (int)cols * ly.cell;
    if (title_w > ly.panel_w) ly.panel_w = title_w;
    ly.panel_w += 16;
    ly.panel_h = ly.head_h + (int)h[0].rows * ly.cell + 30;
    const int per_line = (1200 - ly.label_w) / ly.panel_w > 1 ? (1200 - ly.label_w) / ly.panel_w : 1;
    const int lines = (n + per_line - 1) / per_line, across = n < per_line ? n : per_line;
    const int top = title ? 22 : 4, bar_h = 34;
    int W = ly.label_w + across * ly.panel_w + 8;
    const int tw = dsv3_svg_text_px(title) * 6 / 5 + 16; /* the title is 12 px */
    if (tw > W) W = tw;
    if (W < 260) W = 260;
    const int H = top + lines * ly.panel_h + bar_h;
    dsv3_strbuf b = {0};
    dsv3_strbuf_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                       "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" "
                       "font-size=\"10\"><rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>",
                       W, H, W, H);
    if (title) {
        dsv3_strbuf_puts(&b, "<text x=\"4\" y=\"15\" font-size=\"12\">");
        put_escaped(&b, title);
        dsv3_strbuf_puts(&b, "</text>");
    }
    for (int i = 0; i < n; i++) {
        const int line = i / per_line, k = i % per_line;
        hm_panel(&b, &h[i], &ly, ly.label_w + k * ly.panel_w, top + line * ly.panel_h + ly.head_h, lo,
                 hi, k == 0);
    }
    /* the colour bar */
    char lo_s[32];
    snprintf(lo_s, sizeof lo_s, "%.3g", lo);
    const int by = H - bar_h + 8, bx = 8 + dsv3_svg_text_px(lo_s) + 4, bw = 160;
    dsv3_strbuf_printf(&b, "<defs><linearGradient id=\"dsv3ramp\"><stop offset=\"0\" stop-color=\"rgb(255,255,255)\"/>"
                       "<stop offset=\"1\" stop-color=\"rgb(55,105,255)\"/></linearGradient></defs>"
                       "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"10\" fill=\"url(#dsv3ramp)\" stroke=\"#888\"/>"
                       "<text x=\"8\" y=\"%d\">%s</text><text x=\"%d\" y=\"%d\">%.3g</text>",
                       bx, by, bw, by + 9, lo_s, bx + bw + 4, by + 9, hi);
    if (h[0].mark)
        dsv3_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"none\" stroke=\"#d00\" "
                           "stroke-width=\"1.5\"/><text x=\"%d\" y=\"%d\">chosen</text>",
                           bx + bw + 60, by, bx + bw + 74, by + 9);
    dsv3_strbuf_puts(&b, "</svg>");
    return dsv3_strbuf_finish(&b);
}

char *dsv3_render_heatmap_svg(const dsv3_heatmap *h) {
    return dsv3_render_heatmaps_svg(h, 1, NULL);
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
