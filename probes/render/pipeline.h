/* pipeline.h — pure renderers of pipeline schedules (model/train/pipeline.h): value in, string
 * out.
 *
 * Each renderer takes n >= 1 timed schedules of one step (e.g. 1F1B, ZB1P and DualPipe for the
 * same pp and micro) and measures them itself with dsv3_pipe_measure; it does no I/O and gives
 * the same output for the same input. Text for terminals (ANSI colours only when asked), SVG for
 * notebooks (every text node goes through dsv3_xml_escape), JSON for scripts. Returned strings
 * are malloc'd; the caller frees them. NULL when out of memory or when s is NULL, n < 1 or a
 * schedule cannot be measured (no ops).
 */
#ifndef DSV3_RENDER_PIPELINE_H
#define DSV3_RENDER_PIPELINE_H

#include "model/train/pipeline.h"

/* The comparison table, one row per schedule, under a line with the chunk times of s[0]:
 *   method    bubble  formula  report formula       peak act  params  makespan
 *   1f1b          21       21  (PP-1)(F+B)                 8      1x        81
 * bubble is the simulated one, formula the report's (dsv3_pipe_formula); numbers are %g. */
char *dsv3_render_pipe_table(const dsv3_pipe_schedule *s, int n);

/* The timelines: for each schedule a title line and one row per rank, "rank R |" followed by
 * one character cell per `unit` of time (unit <= 0: the shortest op duration over the n
 * schedules; if that makes a row longer than 2000 cells the unit grows to fit 2000). The cell
 * shows the op running at the cell's midpoint: F forward, B backward for input, W backward for
 * weights, X full backward (B and W in one op), lower case for DualPipe's reverse direction,
 * '.' idle; a paired F&B alternates its two letters (e.g. "FxFx"). Each row ends with the rank's
 * measures, "| bubble 3, act 2" (dsv3_pipe_rank). A legend line ends the text.
 * color = 1 adds ANSI background colours per kind (F blue, B green, W cyan, X yellow). */
char *dsv3_render_pipe_timeline(const dsv3_pipe_schedule *s, int n, double unit, int color);

/* Table, a blank line, then the timelines with the automatic unit: what `dsv3 schedule` prints
 * and what the Lua value's tostring shows. */
char *dsv3_render_pipe_report(const dsv3_pipe_schedule *s, int n, int color);

/* SVG (image/svg+xml): the n schedules stacked on one time scale, one row of rects per rank,
 * each op a rect coloured by kind (F orange, B green, W blue, BW teal; the reverse direction a
 * darker shade with white numbers), its micro-batch number inside when it fits, a <title> with
 * the op for hovering; a paired F&B is drawn as its two halves inside one black border. */
char *dsv3_render_pipe_svg(const dsv3_pipe_schedule *s, int n);

/* JSON: {"pp", "micro", "f", "b", "w", "a", "fb", "methods": [{"method", "bubble", "formula",
 * "formula_text", "makespan", "peak_activations", "param_copies", "ranks": [{"rank", "busy",
 * "bubble", "peak_activations", "param_copies"}], "ops": [{"rank", "kind", "mb", "dir", "stage",
 * "start", "end", "pair"}]}]} with the times of s[0] at the top level. */
char *dsv3_render_pipe_json(const dsv3_pipe_schedule *s, int n);

#endif
