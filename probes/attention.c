/* attention.c — one head's attention probabilities (see attention.h). */
#include "probes/attention.h"

#include <stdlib.h>
#include <string.h>

#include "probes/probe.h"

void dsv3_attention_fini(dsv3_attention *a) {
    if (!a) return;
    free(a->p);
    memset(a, 0, sizeof *a);
}

/* Copies query pos's probabilities over keys 0..n-1 into row pos (the hook never allocates). */
static void on_attn(void *ud, int64_t layer, int64_t head, int64_t pos, int64_t n, const float *p) {
    dsv3_attention *a = ud;
    if (pos < a->T && n <= a->T) memcpy(a->p + pos * a->T, p, (size_t)n * sizeof *p);
}

dsv3_status dsv3_attention_pattern(dsv3_attention *out, dsv3_model *m, const int32_t *ids,
                                   int64_t T, int64_t layer, int64_t head,
                                   const volatile int *cancel, dsv3_err *err) {
    memset(out, 0, sizeof *out);
    const dsv3_config *c = dsv3_model_config(m);
    if (layer < 0 || layer >= c->num_hidden_layers)
        return dsv3_errf(err, DSV3_EINVAL, "attention: layer %lld out of range 0..%lld",
                         (long long)layer, (long long)c->num_hidden_layers - 1);
    if (head < 0 || head >= c->num_attention_heads)
        return dsv3_errf(err, DSV3_EINVAL, "attention: head %lld out of range 0..%lld",
                         (long long)head, (long long)c->num_attention_heads - 1);
    dsv3_status st = dsv3_probe_check_len(m, T, err);
    if (st) return st;
    *out = (dsv3_attention){
        .T = T, .layer = layer, .head = head, .p = calloc((size_t)(T * T), sizeof *out->p)};
    if (!out->p)
        return dsv3_errf(err, DSV3_ENOMEM, "out of memory for a %d x %d tensor", (int)T, (int)T);
    dsv3_run *run = NULL;
    st = dsv3_probe_run_new(&run, m, T, cancel, err);
    if (!st) {
        dsv3_hooks h = {.ud = out, .attn = on_attn, .attn_layer = layer, .attn_head = head};
        dsv3_run_set_hooks(run, &h);
        st = dsv3_forward_chunked(run, ids, T, NULL, NULL, err);
    }
    dsv3_run_free(run);
    if (st) dsv3_attention_fini(out);
    return st;
}
