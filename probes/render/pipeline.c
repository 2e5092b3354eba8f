/* pipeline.c — text, SVG and JSON renderings of pipeline schedules (see pipeline.h). */
#include "probes/render/pipeline.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes/render/render.h"

/* ---------------------------------------------------------------- string building ------- */

/* XML text through the one escaping function of probes/render/render.h. */
static void put_xml(dsv3_strbuf *b, const char *text) {
    char *e = dsv3_xml_escape(text);
    if (!e)
        b->oom = 1;
    else
        dsv3_strbuf_printf(b, "%s", e);
    free(e);
}

/* Measures all n schedules into sums[n] (caller's array); 0 on failure. */
static int measure_all(dsv3_pipe_summary *sums, const dsv3_pipe_schedule *s, int n) {
    if (!s || n < 1) return 0;
    for (int i = 0; i < n; i++)
        if (dsv3_pipe_measure(&sums[i], NULL, &s[i], NULL)) return 0;
    return 1;
}

static dsv3_pipe_summary *new_sums(const dsv3_pipe_schedule *s, int n) {
    if (!s || n < 1) return NULL;
    dsv3_pipe_summary *sums = calloc((size_t)n, sizeof *sums);
    if (sums && !measure_all(sums, s, n)) {
        free(sums);
        return NULL;
    }
    return sums;
}

/* ---------------------------------------------------------------- table ----------------- */

static void put_table(dsv3_strbuf *b, const dsv3_pipe_schedule *s, const dsv3_pipe_summary *sums, int n) {
    const dsv3_pipe_opts *o = &s[0].opts;
    dsv3_strbuf_printf(b,
        "pp %d, micro %d; chunk times f %g, b %g, w %g, a %g -> report's F %g, B %g (full "
        "backward), W %g, F&B %g\n",
        o->pp, o->micro, o->f, o->b, o->w, o->a, o->f + o->a, o->b + o->a + o->w, o->w,
        dsv3_pipe_fb_time(o));
    dsv3_strbuf_printf(b, "%-9s %9s %9s  %-20s %8s %7s %9s\n", "method", "bubble", "formula", "report formula",
        "peak act", "params", "makespan");
    for (int i = 0; i < n; i++)
        dsv3_strbuf_printf(b, "%-9s %9g %9g  %-20s %8d %6dx %9g\n", dsv3_pipe_method_name(s[i].method),
            sums[i].bubble, sums[i].formula, dsv3_pipe_formula_text(s[i].method), sums[i].peak_act,
            sums[i].param_copies, sums[i].makespan);
}

char *dsv3_render_pipe_table(const dsv3_pipe_schedule *s, int n) {
    dsv3_pipe_summary *sums = new_sums(s, n);
    if (!sums) return NULL;
    dsv3_strbuf b = {0};
    put_table(&b, s, sums, n);
    free(sums);
    return dsv3_strbuf_finish(&b);
}

/* ---------------------------------------------------------------- timeline -------------- */

static char op_letter(const dsv3_pipe_op *op) {
    static const char upper[DSV3_PIPE_KINDS] = {'F', 'B', 'W', 'X'};
    const char c = (unsigned)op->kind < DSV3_PIPE_KINDS ? upper[op->kind] : '?';
    return op->dir ? (char)(c - 'A' + 'a') : c;
}

static const char *ansi_of(char c) {
    switch (c) {
    case 'F':
    case 'f':
        return "\x1b[44;97m";
    case 'B':
    case 'b':
        return "\x1b[42;30m";
    case 'W':
    case 'w':
        return "\x1b[46;30m";
    case 'X':
    case 'x':
        return "\x1b[43;30m";
    default:
        return "";
    }
}

/* The default cell: the shortest positive op duration of all schedules, grown to fit 2000. */
static double auto_unit(const dsv3_pipe_schedule *s, int n, double unit) {
    double shortest = INFINITY, longest = 0;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < s[i].n_ops; k++) {
            const double d = s[i].ops[k].end - s[i].ops[k].start;
            if (d > 0) shortest = fmin(shortest, d);
            longest = fmax(longest, s[i].ops[k].end);
        }
    if (unit <= 0) unit = isfinite(shortest) ? shortest : 1;
    if (longest / unit > 2000) unit = longest / 2000;
    return unit;
}

static void put_timeline(dsv3_strbuf *b, const dsv3_pipe_schedule *s, int n, double unit, int color) {
    unit = auto_unit(s, n, unit);
    for (int i = 0; i < n && !b->oom; i++) {
        const int P = s[i].opts.pp;
        double t1 = 0;
        for (int64_t k = 0; k < s[i].n_ops; k++)
            t1 = fmax(t1, s[i].ops[k].end);
        const int64_t cells = (int64_t)ceil(t1 / unit - 1e-9), stride = cells + 1;
        char *grid = malloc((size_t)(P * stride)); /* one NUL-terminated row per rank */
        if (!grid) {
            b->oom = 1;
            return;
        }
        for (int r = 0; r < P; r++) {
            memset(grid + r * stride, '.', (size_t)cells);
            grid[r * stride + cells] = 0;
        }
        for (int64_t k = 0; k < s[i].n_ops; k++) {
            const dsv3_pipe_op *op = &s[i].ops[k];
            if (op->rank < 0 || op->rank >= P || op->end <= op->start) continue;
            char *row = grid + op->rank * stride;
            const int64_t c0 = (int64_t)floor(op->start / unit);
            const int64_t c1 = (int64_t)ceil(op->end / unit);
            const int64_t first = (int64_t)ceil(op->start / unit - 0.5);
            for (int64_t c = c0 < 0 ? 0 : c0; c < c1 && c < cells; c++) {
                const double mid = (c + 0.5) * unit;
                if (mid < op->start || mid >= op->end) continue;
                /* a pair alternates: the F writes even cells, its partner odd ones */
                const int odd = (int)((c - first) & 1);
                if (op->pair >= 0 && odd != (op->kind != DSV3_PIPE_F)) continue;
                row[c] = op_letter(op);
            }
        }
        dsv3_pipe_summary sum;
        dsv3_pipe_rank *rk = calloc((size_t)P, sizeof *rk);
        if (!rk || dsv3_pipe_measure(&sum, rk, &s[i], NULL)) {
            free(rk);
            free(grid);
            b->oom = 1;
            return;
        }
        dsv3_strbuf_printf(b, "%s (time per cell: %g)\n", dsv3_pipe_method_name(s[i].method), unit);
        for (int r = 0; r < P; r++) {
            const char *row = grid + r * stride;
            dsv3_strbuf_printf(b, "rank %-2d |", r);
            if (!color) {
                dsv3_strbuf_printf(b, "%s", row);
            } else {
                const char *cur = "";
                for (int64_t c = 0; c < cells; c++) {
                    const char *want = ansi_of(row[c]);
                    if (strcmp(want, cur)) dsv3_strbuf_printf(b, "%s%s", *cur ? "\x1b[0m" : "", want);
                    cur = want;
                    dsv3_strbuf_printf(b, "%c", row[c]);
                }
                dsv3_strbuf_printf(b, "%s", *cur ? "\x1b[0m" : "");
            }
            dsv3_strbuf_printf(b, "| bubble %g, act %d\n", rk[r].bubble, rk[r].peak_act);
        }
        free(rk);
        free(grid);
    }
    dsv3_strbuf_printf(b, "F forward, B backward for input, W backward for weights, X full backward (B+W); lower "
           "case: reverse direction; FxFx: overlapped F&B pair; . idle\n");
}

char *dsv3_render_pipe_timeline(const dsv3_pipe_schedule *s, int n, double unit, int color) {
    if (!s || n < 1) return NULL;
    dsv3_strbuf b = {0};
    put_timeline(&b, s, n, unit, color);
    return dsv3_strbuf_finish(&b);
}

char *dsv3_render_pipe_report(const dsv3_pipe_schedule *s, int n, int color) {
    dsv3_pipe_summary *sums = new_sums(s, n);
    if (!sums) return NULL;
    dsv3_strbuf b = {0};
    put_table(&b, s, sums, n);
    dsv3_strbuf_printf(&b, "\n");
    put_timeline(&b, s, n, 0, color);
    free(sums);
    return dsv3_strbuf_finish(&b);
}

/* ---------------------------------------------------------------- SVG ------------------- */

static const char *svg_fill(dsv3_pipe_kind k, int dir) {
    static const char *const fill[DSV3_PIPE_KINDS][2] = {
        {"#f6a04d", "#a85a14"}, /* F */
        {"#6cc570", "#2e7d32"}, /* B */
        {"#64a0e0", "#1f4e8c"}, /* W */
        {"#5fb8a8", "#1d6b5f"}, /* BW */
    };
    return (unsigned)k < DSV3_PIPE_KINDS ? fill[k][dir ? 1 : 0] : "#999999";
}

static void svg_op_rect(dsv3_strbuf *b, const dsv3_pipe_op *op, double x, double y, double w, double h) {
    char tip[160];
    snprintf(tip, sizeof tip, "%s mb %d dir %d stage %d rank %d [%g, %g]%s",
             dsv3_pipe_kind_name(op->kind), op->mb, op->dir, op->stage, op->rank, op->start,
             op->end, op->pair >= 0 ? " (overlapped pair)" : "");
    dsv3_strbuf_printf(b,
        "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" stroke=\"#ffffff\" "
        "stroke-width=\"0.5\"><title>",
        x, y, w, h, svg_fill(op->kind, op->dir));
    put_xml(b, tip);
    dsv3_strbuf_printf(b, "</title></rect>\n");
    char num[16];
    snprintf(num, sizeof num, "%d", op->mb);
    if (w >= 6.5 * (double)strlen(num) + 2) {
        dsv3_strbuf_printf(b, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"10\" text-anchor=\"middle\" fill=\"%s\">",
            x + w / 2, y + h / 2 + 3.5, op->dir ? "#ffffff" : "#000000");
        put_xml(b, num);
        dsv3_strbuf_printf(b, "</text>\n");
    }
}

char *dsv3_render_pipe_svg(const dsv3_pipe_schedule *s, int n) {
    dsv3_pipe_summary *sums = new_sums(s, n);
    if (!sums) return NULL;
    double t1 = 0;
    int rows = 0;
    for (int i = 0; i < n; i++) {
        for (int64_t k = 0; k < s[i].n_ops; k++)
            t1 = fmax(t1, s[i].ops[k].end);
        rows += s[i].opts.pp;
    }
    if (t1 <= 0) t1 = 1;
    const double left = 60, row_h = 18, gap = 2, title_h = 22, block_gap = 10;
    double px = 960 / t1;
    px = px < 2 ? 2 : px > 40 ? 40 : px;
    const double width = left + t1 * px + 20;
    const double height = n * (title_h + block_gap) + rows * (row_h + gap) + 60;
    dsv3_strbuf b = {0};
    dsv3_strbuf_printf(&b,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
        "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
        width, height, width, height);
    dsv3_strbuf_printf(&b, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", width,
        height);
    double y = 0;
    for (int i = 0; i < n; i++) {
        char title[256];
        snprintf(title, sizeof title,
                 "%s: bubble %g (report %s = %g), peak activations %d, parameters %dx, makespan %g",
                 dsv3_pipe_method_name(s[i].method), sums[i].bubble,
                 dsv3_pipe_formula_text(s[i].method), sums[i].formula, sums[i].peak_act,
                 sums[i].param_copies, sums[i].makespan);
        dsv3_strbuf_printf(&b, "<text x=\"4\" y=\"%.2f\" font-size=\"12\" font-weight=\"bold\">", y + 16);
        put_xml(&b, title);
        dsv3_strbuf_printf(&b, "</text>\n");
        y += title_h;
        for (int r = 0; r < s[i].opts.pp; r++) {
            const double ry = y + r * (row_h + gap);
            char label[32];
            snprintf(label, sizeof label, "rank %d", r);
            dsv3_strbuf_printf(&b, "<text x=\"4\" y=\"%.2f\" font-size=\"11\">", ry + row_h / 2 + 4);
            put_xml(&b, label);
            dsv3_strbuf_printf(&b,
                "</text>\n<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                "fill=\"#f2f2f2\"/>\n",
                left, ry, t1 * px, row_h);
        }
        for (int64_t k = 0; k < s[i].n_ops; k++) {
            const dsv3_pipe_op *op = &s[i].ops[k];
            if (op->end <= op->start || op->rank < 0 || op->rank >= s[i].opts.pp) continue;
            const double ry = y + op->rank * (row_h + gap), x = left + op->start * px;
            const double w = (op->end - op->start) * px;
            const int64_t p = op->pair;
            if (p < 0 || p >= s[i].n_ops) {
                svg_op_rect(&b, op, x, ry, w, row_h);
                continue;
            }
            if (op->kind != DSV3_PIPE_F) continue; /* a pair is drawn once, from its F */
            const dsv3_pipe_op *q = &s[i].ops[p];
            const double df = dsv3_pipe_duration(&s[i].opts, op->kind);
            const double dq = dsv3_pipe_duration(&s[i].opts, q->kind);
            const double share = df + dq > 0 ? df / (df + dq) : 0.5;
            svg_op_rect(&b, op, x, ry, w * share, row_h);
            svg_op_rect(&b, q, x + w * share, ry, w * (1 - share), row_h);
            dsv3_strbuf_printf(&b,
                "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
                "stroke=\"#000000\" stroke-width=\"1.5\"/>\n",
                x, ry, w, row_h);
        }
        y += s[i].opts.pp * (row_h + gap) + block_gap;
    }
    /* time axis */
    double step = pow(10, floor(log10(t1 / 10 > 0 ? t1 / 10 : 1)));
    if (t1 / step > 20)
        step *= 5;
    else if (t1 / step > 10)
        step *= 2;
    dsv3_strbuf_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000000\"/>\n", left, y,
        left + t1 * px, y);
    for (double t = 0; t <= t1 + 1e-9; t += step) {
        char lab[32];
        snprintf(lab, sizeof lab, "%g", t);
        dsv3_strbuf_printf(&b,
            "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000000\"/>"
            "<text x=\"%.2f\" y=\"%.2f\" font-size=\"10\" text-anchor=\"middle\">",
            left + t * px, y, left + t * px, y + 4, left + t * px, y + 15);
        put_xml(&b, lab);
        dsv3_strbuf_printf(&b, "</text>\n");
    }
    /* legend */
    static const char *const legend[DSV3_PIPE_KINDS] = {"forward", "backward (input)",
                                                        "backward (weights)", "full backward"};
    double lx = left;
    for (int k = 0; k < DSV3_PIPE_KINDS; k++) {
        dsv3_strbuf_printf(&b,
            "<rect x=\"%.2f\" y=\"%.2f\" width=\"12\" height=\"12\" fill=\"%s\"/>"
            "<rect x=\"%.2f\" y=\"%.2f\" width=\"12\" height=\"12\" fill=\"%s\"/>"
            "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\">",
            lx, y + 24, svg_fill((dsv3_pipe_kind)k, 0), lx + 12, y + 24,
            svg_fill((dsv3_pipe_kind)k, 1), lx + 28, y + 34);
        put_xml(&b, legend[k]);
        dsv3_strbuf_printf(&b, "</text>\n");
        lx += 150;
    }
    dsv3_strbuf_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\">", left, y + 52);
    put_xml(&b, "light: direction 0, dark: reverse direction (DualPipe); black border: overlapped "
                "F&B pair; numbers: micro-batch");
    dsv3_strbuf_printf(&b, "</text>\n</svg>\n");
    free(sums);
    return dsv3_strbuf_finish(&b);
}

/* ---------------------------------------------------------------- JSON ------------------ */

char *dsv3_render_pipe_json(const dsv3_pipe_schedule *s, int n) {
    if (!s || n < 1) return NULL;
    const dsv3_pipe_opts *o = &s[0].opts;
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddNumberToObject(root, "pp", o->pp);
    cJSON_AddNumberToObject(root, "micro", o->micro);
    cJSON_AddNumberToObject(root, "f", o->f);
    cJSON_AddNumberToObject(root, "b", o->b);
    cJSON_AddNumberToObject(root, "w", o->w);
    cJSON_AddNumberToObject(root, "a", o->a);
    cJSON_AddNumberToObject(root, "fb", dsv3_pipe_fb_time(o));
    cJSON *methods = cJSON_AddArrayToObject(root, "methods");
    int ok = methods != NULL;
    for (int i = 0; i < n && ok; i++) {
        dsv3_pipe_summary sum;
        dsv3_pipe_rank *rk = calloc((size_t)s[i].opts.pp, sizeof *rk);
        if (!rk || dsv3_pipe_measure(&sum, rk, &s[i], NULL)) {
            free(rk);
            ok = 0;
            break;
        }
        cJSON *m = cJSON_CreateObject();
        cJSON_AddItemToArray(methods, m);
        cJSON_AddStringToObject(m, "method", dsv3_pipe_method_name(s[i].method));
        cJSON_AddNumberToObject(m, "bubble", sum.bubble);
        cJSON_AddNumberToObject(m, "formula", sum.formula);
        cJSON_AddStringToObject(m, "formula_text", dsv3_pipe_formula_text(s[i].method));
        cJSON_AddNumberToObject(m, "makespan", sum.makespan);
        cJSON_AddNumberToObject(m, "peak_activations", sum.peak_act);
        cJSON_AddNumberToObject(m, "param_copies", sum.param_copies);
        cJSON *ra = cJSON_AddArrayToObject(m, "ranks");
        for (int r = 0; ra && r < s[i].opts.pp; r++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToArray(ra, x);
            cJSON_AddNumberToObject(x, "rank", r);
            cJSON_AddNumberToObject(x, "busy", rk[r].busy);
            cJSON_AddNumberToObject(x, "bubble", rk[r].bubble);
            cJSON_AddNumberToObject(x, "peak_activations", rk[r].peak_act);
            cJSON_AddNumberToObject(x, "param_copies", rk[r].param_copies);
        }
        free(rk);
        cJSON *oa = cJSON_AddArrayToObject(m, "ops");
        for (int64_t k = 0; oa && k < s[i].n_ops; k++) {
            const dsv3_pipe_op *op = &s[i].ops[k];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToArray(oa, x);
            cJSON_AddNumberToObject(x, "rank", op->rank);
            cJSON_AddStringToObject(x, "kind", dsv3_pipe_kind_name(op->kind));
            cJSON_AddNumberToObject(x, "mb", op->mb);
            cJSON_AddNumberToObject(x, "dir", op->dir);
            cJSON_AddNumberToObject(x, "stage", op->stage);
            cJSON_AddNumberToObject(x, "start", op->start);
            cJSON_AddNumberToObject(x, "end", op->end);
            cJSON_AddNumberToObject(x, "pair", (double)op->pair);
        }
    }
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
}
