/* effect.c — KL and top-1 change between a forward and an intervened forward (see effect.h). */
#include "probes/effect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probes/probe.h"

void dsv3_effect_fini(dsv3_effect *e) {
    if (!e) return;
    free(e->kl);
    free(e->top1_changed);
    memset(e, 0, sizeof *e);
}

/* Logits of both passes: pass 0 as the model is, pass 1 with iv attached. */
static dsv3_status two_passes(float *a, float *b, dsv3_model *m, const int32_t *ids, int64_t T,
                              const dsv3_interventions *iv, const volatile int *cancel,
                              dsv3_err *err) {
    dsv3_status st = DSV3_OK;
    for (int pass = 0; pass < 2 && !st; pass++) {
        dsv3_run *r = NULL;
        st = dsv3_probe_run_new(&r, m, T, cancel, err);
        if (st) break;
        if (pass) dsv3_run_set_interventions(r, iv);
        st = dsv3_forward_chunked(r, ids, T, pass ? b : a, NULL, err);
        dsv3_run_free(r);
    }
    return st;
}

dsv3_status dsv3_effect_measure(dsv3_effect *out, dsv3_model *m, const int32_t *ids, int64_t T,
                                const dsv3_interventions *iv, const volatile int *cancel,
                                dsv3_err *err) {
    memset(out, 0, sizeof *out);
    const int64_t V = dsv3_model_config(m)->vocab_size;
    float *a = malloc((size_t)(T * V) * sizeof *a), *b = malloc((size_t)(T * V) * sizeof *b);
    double *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
    out->kl = malloc((size_t)(T ? T : 1) * sizeof *out->kl);
    out->top1_changed = malloc((size_t)(T ? T : 1));
    dsv3_status st = a && b && la && lb && out->kl && out->top1_changed
                         ? DSV3_OK
                         : dsv3_errf(err, DSV3_ENOMEM, "effect: out of memory");
    if (!st) st = two_passes(a, b, m, ids, T, iv, cancel, err);
    if (st) {
        free(a), free(b), free(la), free(lb);
        dsv3_effect_fini(out);
        return st;
    }
    out->T = T;
    double sum = 0, mx = 0;
    int64_t changed = 0;
    for (int64_t t = 0; t < T; t++) {
        /* KL(P || Q) = sum_v P(v) (log P(v) - log Q(v)), P the base and Q the intervened
         * next-token distribution: in nats, 0 when the intervention changes nothing. */
        dsv3_log_softmax(la, a + t * V, V);
        dsv3_log_softmax(lb, b + t * V, V);
        double kl = 0;
        int64_t ta = 0, tb = 0;
        for (int64_t v = 0; v < V; v++) {
            kl += exp(la[v]) * (la[v] - lb[v]);
            if (a[t * V + v] > a[t * V + ta]) ta = v;
            if (b[t * V + v] > b[t * V + tb]) tb = v;
        }
        sum += kl;
        mx = fmax(mx, kl);
        changed += ta != tb;
        out->kl[t] = kl;
        out->top1_changed[t] = ta != tb;
    }
    out->mean_kl = sum / (double)T;
    out->max_kl = mx;
    out->top1_changed_fraction = (double)changed / (double)T;
    free(a), free(b), free(la), free(lb);
    return DSV3_OK;
}
