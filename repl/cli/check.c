/* check.c — `dsv3 check MODEL_DIR [--json]`
 *
 * Scans every tensor of a checkpoint in its stored dtype (model/run/scan.h): non-finite values
 * (NaN, infinities, the E4M3 NaN codes) anywhere, FP8 block scales that are not positive, and the
 * finite range of the scales; then binds the model as every other command does, which checks
 * each tensor's presence, dtype and shape against config.json. A progress line goes to stderr
 * on a terminal; the summary (or one JSON object with --json) to stdout. Exit 0 when nothing is
 * wrong, 1 when something is (the last stderr line says how many problems), 2 on a usage error.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/base/strbuf.h"
#include "model/run/config.h"
#include "model/run/model.h"
#include "model/run/safetensors.h"
#include "model/run/scan.h"
#include "repl/cli/cli.h"

static const char usage[] = "usage: dsv3 check MODEL_DIR [--json]\n";

/* What the scan found, as JSON items (the text summary is printed from the same values). */
typedef struct {
    cJSON *problems; /* [{"tensor", "problem"}] */
    int64_t bad_tensors, nonfinite, scales, tensors;
    double scale_min, scale_max;
} report;

static void add_problem(report *r, const char *tensor, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_problem(report *r, const char *tensor, const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *p = cJSON_CreateObject();
    if (tensor) cJSON_AddStringToObject(p, "tensor", tensor);
    cJSON_AddStringToObject(p, "problem", msg);
    cJSON_AddItemToArray(r->problems, p);
}

static int ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void progress(int64_t done, int64_t total) {
    char bar[31];
    const int fill = total ? (int)(done * 30 / total) : 30;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\rchecking [%s] %lld/%lld tensors%s", bar, (long long)done, (long long)total,
            done == total ? "\n" : "");
    fflush(stderr);
}

/* Every tensor of ck: non-finite values, scale signs and range. */
static void scan_all(report *r, const dsv3_checkpoint *ck, int show) {
    const int64_t n = (int64_t)dsv3_ckpt_count(ck);
    r->tensors = n;
    for (int64_t i = 0; i < n; i++) {
        const dsv3_st_tensor *t = dsv3_ckpt_at(ck, (size_t)i);
        dsv3_scan_stats s;
        dsv3_scan_tensor(&s, t);
        if (s.nonfinite) {
            r->bad_tensors++;
            r->nonfinite += s.nonfinite;
            add_problem(r, t->name,
                        "%s: %lld non-finite values (%lld NaN, %lld infinite) of %lld, "
                        "the first at flat index %lld",
                        t->file, (long long)s.nonfinite, (long long)s.nan,
                        (long long)(s.nonfinite - s.nan), (long long)t->numel,
                        (long long)s.first_bad);
        }
        if (ends_with(t->name, "_scale_inv") && t->numel > s.nonfinite) {
            r->scale_min = r->scales++ ? (s.min < r->scale_min ? s.min : r->scale_min) : s.min;
            r->scale_max = r->scales > 1 ? (s.max > r->scale_max ? s.max : r->scale_max) : s.max;
            if (s.min <= 0)
                add_problem(r, t->name, "%s: FP8 block scale %g is not positive", t->file, s.min);
        }
        if (show && (i % 16 == 15 || i + 1 == n)) progress(i + 1, n);
    }
}

int dsv3_cli_check(int argc, char **argv) {
    const char *dir = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else {
            fprintf(stderr, "dsv3 check: unknown option '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "dsv3 check: MODEL_DIR is required\n%s", usage);
        return 2;
    }
    dsv3_err err = {{0}};
    dsv3_config cfg;
    dsv3_checkpoint *ck = NULL;
    dsv3_strbuf cpath = {0};
    dsv3_strbuf_printf(&cpath, "%s/config.json", dir);
    char *cp = dsv3_strbuf_finish(&cpath);
    dsv3_status st =
        cp ? dsv3_config_load(&cfg, cp, &err) : dsv3_errf(&err, DSV3_ENOMEM, "out of memory");
    free(cp);
    if (!st) st = dsv3_ckpt_open(&ck, dir, &err);
    if (st) {
        fprintf(stderr, "dsv3 check: %s\n", err.msg);
        return 1;
    }
    report r = {.problems = cJSON_CreateArray()};
    scan_all(&r, ck, !json && isatty(2));
    /* presence, dtypes and shapes against the config: the binding every command does */
    dsv3_model *m = NULL;
    const char *shapes = "ok";
    cJSON *warnings = cJSON_CreateArray();
    if (dsv3_model_open(&m, dir, &err)) {
        shapes = err.msg;
        int dup = 0; /* a non-finite tensor the scan already named */
        for (const cJSON *p = r.problems->child; p && !dup; p = p->next) {
            const cJSON *tn = cJSON_GetObjectItemCaseSensitive(p, "tensor");
            dup =
                cJSON_IsString(tn) && strstr(err.msg, tn->valuestring) && strstr(err.msg, "finite");
        }
        if (!dup) add_problem(&r, NULL, "%s", err.msg);
    } else {
        const char *w = dsv3_model_warnings(m);
        while (*w) {
            const char *nl = strchr(w, '\n');
            const size_t len = nl ? (size_t)(nl - w) : strlen(w);
            char *line = strndup(w, len);
            if (line) cJSON_AddItemToArray(warnings, cJSON_CreateString(line));
            free(line);
            w += len + (nl != NULL);
        }
        dsv3_model_close(m);
    }
    const int n_problems = cJSON_GetArraySize(r.problems);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dir", dir);
        cJSON_AddNumberToObject(o, "tensors", (double)r.tensors);
        cJSON_AddNumberToObject(o, "bytes", (double)dsv3_ckpt_bytes(ck));
        cJSON_AddNumberToObject(o, "nonfinite_values", (double)r.nonfinite);
        cJSON_AddNumberToObject(o, "nonfinite_tensors", (double)r.bad_tensors);
        cJSON *sc = cJSON_AddObjectToObject(o, "fp8_scales");
        cJSON_AddNumberToObject(sc, "tensors", (double)r.scales);
        if (r.scales) {
            cJSON_AddNumberToObject(sc, "min", r.scale_min);
            cJSON_AddNumberToObject(sc, "max", r.scale_max);
        }
        cJSON_AddStringToObject(o, "shapes", shapes);
        cJSON_AddItemToObject(o, "problems", r.problems);
        cJSON_AddItemToObject(o, "warnings", warnings);
        cJSON_AddBoolToObject(o, "ok", n_problems == 0);
        char *text = cJSON_PrintUnformatted(o);
        if (text) puts(text);
        free(text);
        cJSON_Delete(o);
    } else {
        printf("check %s: %lld tensors, %.1f MB\n", dir, (long long)r.tensors,
               (double)dsv3_ckpt_bytes(ck) / 1e6);
        printf("  non-finite values: %lld in %lld tensors\n", (long long)r.nonfinite,
               (long long)r.bad_tensors);
        if (r.scales)
            printf("  FP8 block scales: %lld tensors, scale_inv in [%g, %g]\n", (long long)r.scales,
                   r.scale_min, r.scale_max);
        printf("  shapes and dtypes vs config.json: %s\n", shapes);
        for (const cJSON *w = warnings->child; w; w = w->next)
            printf("  warning: %s\n", w->valuestring);
        for (const cJSON *p = r.problems->child; p; p = p->next) {
            const cJSON *tn = cJSON_GetObjectItemCaseSensitive(p, "tensor");
            printf("  problem: %s%s%s\n", cJSON_IsString(tn) ? tn->valuestring : "",
                   cJSON_IsString(tn) ? ": " : "",
                   cJSON_GetObjectItemCaseSensitive(p, "problem")->valuestring);
        }
        printf("%s\n", n_problems ? "problems found" : "ok");
        cJSON_Delete(r.problems);
        cJSON_Delete(warnings);
    }
    dsv3_ckpt_close(ck);
    if (n_problems) {
        fflush(stdout);
        fprintf(stderr, "dsv3 check: %s: %d problem%s\n", dir, n_problems,
                n_problems == 1 ? "" : "s");
        return 1;
    }
    return 0;
}
