/* schedule.c — `dsv3 schedule --pp N --micro M [--f T --b T --w T --a T --fb T]
 *                   [--method 1f1b|zb1p|dualpipe|all] [--svg FILE] [--json] [--color]`
 *
 * Simulates the pipeline schedules of model/train/pipeline.h for one training step and prints the
 * bubble table (simulated bubble next to the report's formula, peak activations, parameter
 * copies, makespan) and the text timelines (probes/render/pipeline.h); --json prints the JSON
 * rendering instead, --svg also writes the SVG to FILE. Times default to f = b = w = 1, a = 0,
 * fb = the model's default. With --method all (the default) a method whose constraints the
 * options break (DualPipe: even pp, even micro >= 2*pp) is left out with a note on stderr;
 * naming such a method is an error.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/train/pipeline.h"
#include "probes/render/pipeline.h"
#include "repl/cli/cli.h"

static const char usage[] =
    "usage: dsv3 schedule --pp N --micro M [--f T] [--b T] [--w T] [--a T] [--fb T]\n"
    "                     [--method 1f1b|zb1p|dualpipe|all] [--svg FILE] [--json] [--color]\n";

static int parse_time(const char *s, double *out) {
    char *end;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0) return -1;
    *out = v;
    return 0;
}

int dsv3_cli_schedule(int argc, char **argv) {
    dsv3_pipe_opts o = {.pp = 0, .micro = 0, .f = 1, .b = 1, .w = 1, .a = 0, .fb = 0};
    const char *method = "all", *svg_path = NULL;
    int json = 0, color = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double *t = !strcmp(a, "--f")    ? &o.f
                    : !strcmp(a, "--b")  ? &o.b
                    : !strcmp(a, "--w")  ? &o.w
                    : !strcmp(a, "--a")  ? &o.a
                    : !strcmp(a, "--fb") ? &o.fb
                                         : NULL;
        if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--color"))
            color = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (v && (!strcmp(a, "--pp") || !strcmp(a, "--micro"))) {
            const long long n = dsv3_cli_parse_count(v);
            if (n < 1 || n > 1 << 20) {
                fprintf(stderr, "dsv3 schedule: %s: '%s' is not a count in 1..%d\n", a, v, 1 << 20);
                return 2;
            }
            *(a[2] == 'p' ? &o.pp : &o.micro) = (int)n;
            i++;
        } else if (v && t) {
            if (parse_time(v, t)) {
                fprintf(stderr, "dsv3 schedule: %s: '%s' is not a time >= 0\n", a, v);
                return 2;
            }
            i++;
        } else if (v && !strcmp(a, "--method"))
            method = argv[++i];
        else if (v && !strcmp(a, "--svg"))
            svg_path = argv[++i];
        else {
            fprintf(stderr, "dsv3 schedule: unknown or incomplete option '%s'\n%s", a, usage);
            return 2;
        }
    }
    if (!o.pp || !o.micro) {
        fprintf(stderr, "dsv3 schedule: --pp and --micro are required\n%s", usage);
        return 2;
    }
    const int all = !strcmp(method, "all"), one = dsv3_pipe_method_by_name(method);
    if (!all && one < 0) {
        fprintf(stderr, "dsv3 schedule: --method: '%s' is not 1f1b, zb1p, dualpipe or all\n",
                method);
        return 2;
    }
    dsv3_pipe_schedule s[DSV3_PIPE_METHODS];
    int n = 0, rc = 1;
    char *text = NULL, *svg = NULL;
    dsv3_err err = {{0}};
    for (int m = 0; m < DSV3_PIPE_METHODS; m++) {
        if (!all && m != one) continue;
        dsv3_status st = dsv3_pipe_init(&s[n], (dsv3_pipe_method)m, &o, &err);
        if (st == DSV3_OK) {
            n++;
        } else if (all && st == DSV3_EINVAL && n > 0) {
            fprintf(stderr, "dsv3 schedule: %s left out: %s\n", dsv3_pipe_method_name(m), err.msg);
        } else {
            fprintf(stderr, "dsv3 schedule: %s\n", err.msg);
            goto out;
        }
    }
    text = json ? dsv3_render_pipe_json(s, n) : dsv3_render_pipe_report(s, n, color);
    svg = svg_path ? dsv3_render_pipe_svg(s, n) : NULL;
    if (!text || (svg_path && !svg)) {
        fprintf(stderr, "dsv3 schedule: out of memory\n");
        goto out;
    }
    if (svg_path) {
        FILE *f = fopen(svg_path, "w");
        int bad = !f || fputs(svg, f) < 0;
        if (f && fclose(f)) bad = 1;
        if (bad) {
            fprintf(stderr, "dsv3 schedule: --svg: cannot write %s: %s\n", svg_path,
                    strerror(errno));
            goto out;
        }
    }
    fputs(text, stdout);
    if (json) fputc('\n', stdout);
    rc = 0;
out:
    free(text);
    free(svg);
    for (int i = 0; i < n; i++)
        dsv3_pipe_fini(&s[i]);
    return rc;
}
