/* cli.c — argument helpers shared by the subcommands (see cli.h). */
#include "repl/cli/cli.h"

#include "kernels/backend.h"
#include "model/run/model.h"
#include "model/text/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

dsv3_status dsv3_cli_parse_ids(const char *s, int32_t **ids, int64_t *n, dsv3_err *err) {
    *ids = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *out = malloc(cap * sizeof *out);
    if (!out) return dsv3_errf(err, DSV3_ENOMEM, "--ids: out of memory");
    int64_t k = 0;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *stop;
        errno = 0;
        long long v = len && p[0] >= '0' && p[0] <= '9' ? strtoll(p, &stop, 10) : -1;
        if (v < 0 || errno || stop != p + len || v > INT32_MAX) {
            free(out);
            return dsv3_errf(err, DSV3_EINVAL, "--ids: item %lld ('%.*s') is not a token id",
                             (long long)k + 1, (int)(len > 32 ? 32 : len), p);
        }
        out[k++] = (int32_t)v;
        if (!end) break;
        p = end + 1;
    }
    *ids = out;
    *n = k;
    return DSV3_OK;
}

int dsv3_cli_has_tiktoken(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tiktoken.model", dir);
    return access(path, F_OK) == 0;
}

long long dsv3_cli_parse_count(const char *s) {
    char *stop;
    errno = 0;
    if (!s || !(*s >= '0' && *s <= '9')) return -1;
    long long v = strtoll(s, &stop, 10);
    return errno || *stop ? -1 : v;
}

const dsv3_backend *dsv3_cli_backend(const char *name, dsv3_err *err) {
    const dsv3_backend *be = dsv3_backend_by_name(name);
    if (!be) dsv3_errf(err, DSV3_EINVAL, "--backend: '%s' is not one of %s", name, dsv3_backend_names());
    return be;
}

dsv3_status dsv3_cli_open_model(dsv3_model **m, dsv3_tokenizer **tok, const char *dir,
                                const char *backend, dsv3_err *err) {
    *m = NULL;
    if (tok) *tok = NULL;
    const dsv3_backend *be = dsv3_cli_backend(backend, err);
    if (!be) return DSV3_EINVAL;
    dsv3_status st = dsv3_model_open(m, dir, err);
    if (st) return st;
    if ((st = dsv3_model_set_backend(*m, be, err))) {
        dsv3_model_close(*m);
        *m = NULL;
        return st;
    }
    fputs(dsv3_model_warnings(*m), stderr);
    if (tok && (st = dsv3_tokenizer_open_dir(tok, dir, err))) {
        dsv3_model_close(*m);
        *m = NULL;
    }
    return st;
}

double dsv3_cli_parse_num(const char *s, int *ok) {
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0.0;
    *ok = s && *s && !errno && !*end && isfinite(v);
    return v;
}
