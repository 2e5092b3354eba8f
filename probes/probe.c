/* probe.c — a run for one probe forward, and log-softmax (see probe.h). */
#include "probes/probe.h"

#include <math.h>

dsv3_status dsv3_probe_check_len(const dsv3_model *m, int64_t n, dsv3_err *err) {
    const dsv3_config *c = dsv3_model_config(m);
    if (n < 1 || n > c->max_position_embeddings)
        return dsv3_errf(err, DSV3_EINVAL, "%d tokens (need 1..%d)", (int)n,
                         (int)c->max_position_embeddings);
    return DSV3_OK;
}

dsv3_status dsv3_probe_run_new(dsv3_run **out, dsv3_model *m, int64_t n, const volatile int *cancel,
                               dsv3_err *err) {
    *out = NULL;
    dsv3_run_opts o = {.max_seq = n, .max_chunk = n < 512 ? n : 512};
    dsv3_status st = dsv3_run_new(out, m, &o, err);
    if (!st) dsv3_run_set_cancel(*out, cancel);
    return st;
}

void dsv3_log_softmax(double *out, const float *x, int64_t V) {
    double mx = x[0], s = 0;
    for (int64_t v = 1; v < V; v++)
        mx = fmax(mx, x[v]);
    for (int64_t v = 0; v < V; v++)
        s += exp(x[v] - mx);
    const double ls = log(s) + mx;
    for (int64_t v = 0; v < V; v++)
        out[v] = x[v] - ls;
}
