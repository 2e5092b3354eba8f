/* render_curves.c — metric curves over training steps as SVG (declared in probes/render.h):
 * one panel per series, stacked, sharing the step axis, each with its own value range. */
#include <math.h>
#include <stdlib.h>

#include "probes/render.h"

enum { CURVE_W = 420, CURVE_PH = 90, CURVE_LEFT = 64, CURVE_GAP = 26 };

char *dsv3_render_curves_svg(const dsv3_curve *c, int n_curves, int64_t n, const char *title) {
    const int top = title ? 22 : 6;
    const int H = top + n_curves * (CURVE_PH + CURVE_GAP) + 14, W = CURVE_LEFT + CURVE_W + 16;
    dsv3_strbuf b = {0};
    dsv3_strbuf_printf(&b,
                       "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                       "font-family=\"monospace\" font-size=\"10\">",
                       W, H);
    if (title) {
        char *t = dsv3_xml_escape(title);
        dsv3_strbuf_printf(&b, "<text x=\"4\" y=\"14\" font-size=\"12\">%s</text>", t ? t : "");
        free(t);
    }
    for (int k = 0; k < n_curves; k++) {
        const int y0 = top + k * (CURVE_PH + CURVE_GAP) + 14; /* panel top */
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < n; i++)
            if (isfinite(c[k].v[i])) {
                lo = fmin(lo, c[k].v[i]);
                hi = fmax(hi, c[k].v[i]);
            }
        if (!(lo <= hi)) lo = 0, hi = 1;
        if (hi - lo < 1e-12) hi = lo + 1.0; /* a flat series sits at the bottom */
        char *label = dsv3_xml_escape(c[k].label ? c[k].label : "");
        dsv3_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\">%s", CURVE_LEFT, y0 - 4,
                           label ? label : "");
        free(label);
        if (n > 0) dsv3_strbuf_printf(&b, " (last %.4g)", c[k].v[n - 1]);
        dsv3_strbuf_printf(&b, "</text>");
        dsv3_strbuf_printf(&b,
                           "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
                           "stroke=\"#999\"/>",
                           CURVE_LEFT, y0, CURVE_W, CURVE_PH);
        dsv3_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>",
                           CURVE_LEFT - 4, y0 + 8, hi);
        dsv3_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>",
                           CURVE_LEFT - 4, y0 + CURVE_PH, lo);
        if (n == 0) continue;
        dsv3_strbuf_printf(&b,
                           "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                           k == 0   ? "#1f6fb4"
                           : k == 1 ? "#c0392b"
                                    : "#2e8b57");
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(c[k].v[i])) continue;
            const double x = CURVE_LEFT + (n > 1 ? (double)i / (double)(n - 1) : 0.5) * CURVE_W;
            const double y = y0 + CURVE_PH - (c[k].v[i] - lo) / (hi - lo) * CURVE_PH;
            dsv3_strbuf_printf(&b, "%.1f,%.1f ", x, y);
        }
        dsv3_strbuf_printf(&b, "\"/>");
    }
    dsv3_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\">step 1..%lld</text></svg>", CURVE_LEFT, H - 4,
                       (long long)n);
    return dsv3_strbuf_finish(&b);
}
