/* render.h — pure renderers of probe results: value in, string out.
 *
 * No I/O, no model access, the same output for the same input. Text for terminals, SVG for
 * notebooks; every string that reaches SVG/HTML goes through dsv3_xml_escape. Returned strings
 * are malloc'd (NULL only when out of memory); the caller frees them.
 */
#ifndef DSV3_RENDER_PROBES_H
#define DSV3_RENDER_PROBES_H

#include <stddef.h>
#include <stdint.h>

#include "model/base/strbuf.h" /* dsv3_strbuf, which the renderers build their output in */

/* A rows x cols matrix shown as a heatmap (e.g. tokens x experts). */
typedef struct {
    const float *v;                  /* [rows, cols] values; NaN cells are blank */
    const unsigned char *mark;       /* [rows, cols] cells to outline (chosen experts), or NULL */
    int64_t rows, cols;
    const char *const *row_labels;   /* [rows] (entries may be NULL), or NULL */
    const char *const *col_labels;   /* [cols] labels written above the columns, or NULL: then
                                      * numbered ticks (0-based) */
    const char *title;               /* or NULL */
    const char *col_axis;            /* label of the columns ("expert"), or NULL */
    const char *row_axis;            /* label of the rows ("query"), or NULL */
    /* The hover text of cell (r, c), written into buf (cap bytes); NULL: "row, column: value".
     * Cells get a <title> while rows x cols <= 40000, else only marked cells do. */
    void (*tip)(const void *ud, int64_t r, int64_t c, char *buf, size_t cap);
    const void *tip_ud;
} dsv3_heatmap;

/* Width in pixels of s in the renderers' 10 px monospace font (6.1 px a column, wide
 * East Asian and fullwidth characters two columns). */
int dsv3_svg_text_px(const char *s);

/* Small multiples: n heatmaps with the same rows drawn side by side (wrapping to new lines of
 * panels past about 1200 px), one colour scale over all of them with its colour bar, row
 * labels at the left of each line of panels, each panel's title above it, columns numbered
 * below. The SVG's width and height are fitted to what it holds. */
char *dsv3_render_heatmaps_svg(const dsv3_heatmap *h, int n, const char *title);

/* Text: one character per cell from a 10-step ramp (min..max of v); marked cells upper-case
 * letters would be unreadable, so marked cells print as '#'. */
char *dsv3_render_heatmap_text(const dsv3_heatmap *h);

/* SVG (image/svg+xml): colour cells on a white-to-blue ramp, outlined marks, row and column
 * labels or ticks, a colour bar, hover titles; dsv3_render_heatmaps_svg with one panel. */
char *dsv3_render_heatmap_svg(const dsv3_heatmap *h);

/* A bar chart (e.g. expert loads) as SVG; labels may be NULL (then indices are shown). */
char *dsv3_render_bars_svg(const double *v, int64_t n, const char *title, const char *x_axis);

/* One line of a line chart: n values (NaN = no point), drawn in panel `panel` (0 = top). */
typedef struct {
    const char *name;
    const double *v;
    int panel;
} dsv3_series;

/* Line charts of ns series sharing an x axis of n points (training curves: loss, KL, load
 * imbalance), one panel per distinct panel number stacked top to bottom, each panel with its
 * own y range (shown at its left) and a legend of its series' names and last values. */
char *dsv3_render_lines_svg(const dsv3_series *s, int ns, int64_t n, const char *title,
                            const char *x_axis);

/* Writes s into dst (cap bytes) cut to at most `width` code points and padded with spaces to
 * exactly `width` columns (one column per code point; a cut never splits a UTF-8 sequence and
 * ends in '…';
 * control characters print as '?'). */
void dsv3_text_fit(char *dst, size_t cap, const char *s, int width);

/* Escapes &, <, >, " and ' for XML/HTML, and replaces bytes < 0x20 (other than tab/newline)
 * by '?'. Returns a malloc'd string. */
char *dsv3_xml_escape(const char *s);

#endif
