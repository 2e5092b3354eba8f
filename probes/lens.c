/* lens.c — the logit lens over captured residuals (see lens.h). */
#include "probes/lens.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probes/capture.h"
#include "probes/probe.h"

void dsv3_lens_fini(dsv3_lens *l) {
    if (!l) return;
    free(l->top);
    memset(l, 0, sizeof *l);
}

/* The k largest of lp[V] into top, largest first, ties to the lower id; lp is consumed (each
 * pick is set to -inf). */
static void top_k(dsv3_lens_entry *top, double *lp, int64_t V, int64_t k) {
    for (int64_t j = 0; j < k; j++) {
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (lp[v] > lp[best]) best = v;
        top[j] = (dsv3_lens_entry){.id = (int32_t)best, .prob = exp(lp[best])};
        lp[best] = -INFINITY;
    }
}

dsv3_status dsv3_lens_compute(dsv3_lens *out, dsv3_model *m, const int32_t *ids, int64_t T,
                              int64_t pos, int64_t k, const volatile int *cancel, dsv3_err *err) {
    memset(out, 0, sizeof *out);
    if (k < 1) return dsv3_errf(err, DSV3_EINVAL, "lens: k must be at least 1");
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t NL = c->num_hidden_layers, H = c->hidden_size, V = c->vocab_size;
    dsv3_capture cap;
    dsv3_status st =
        dsv3_capture_run(&cap, m, ids, T, NULL, cancel, err); /* resid_out, all blocks */
    if (st) return st;
    if (pos < 0 || pos >= T) {
        dsv3_capture_fini(&cap);
        return dsv3_errf(err, DSV3_EINVAL, "lens: pos out of range");
    }
    out->n_layers = NL;
    out->k = k < V ? k : V;
    out->pos = pos;
    float *scratch = malloc((size_t)H * sizeof *scratch),
          *logits = malloc((size_t)V * sizeof *logits);
    double *lp = malloc((size_t)V * sizeof *lp);
    out->top = malloc((size_t)(NL * out->k + 1) * sizeof *out->top);
    if (!scratch || !logits || !lp || !out->top)
        st = dsv3_errf(err, DSV3_ENOMEM, "lens: out of memory");
    for (int64_t li = 0; li < NL && !st; li++) {
        /* docs/ARCHITECTURE.md, "Logit lens": softmax(lm_head(norm(resid_out_l))) */
        const dsv3_capture_tensor *t = dsv3_capture_find(&cap, DSV3_POINT_RESID_OUT, li);
        if ((st = dsv3_model_lens(m, t->v + pos * H, 1, scratch, logits, err))) break;
        dsv3_log_softmax(lp, logits, V);
        top_k(out->top + li * out->k, lp, V, out->k);
    }
    free(scratch), free(logits), free(lp);
    dsv3_capture_fini(&cap);
    if (st) dsv3_lens_fini(out);
    return st;
}
