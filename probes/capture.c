/* capture.c — activations at hook points into [T, dim] tensors (see capture.h). */
#include "probes/capture.h"

#include <stdlib.h>
#include <string.h>

#include "probes/probe.h"

static const char *const point_names[DSV3_POINT_COUNT] = {"resid_in",  "attn_out", "ffn_out",
                                                          "resid_out", "ckv",      "hidden"};

const char *dsv3_capture_point_name(int p) {
    return p >= 0 && p < DSV3_POINT_COUNT ? point_names[p] : NULL;
}

void dsv3_capture_fini(dsv3_capture *c) {
    if (!c) return;
    for (int64_t i = 0; i < c->n; i++)
        free(c->t[i].v);
    free(c->t);
    memset(c, 0, sizeof *c);
}

const dsv3_capture_tensor *dsv3_capture_find(const dsv3_capture *c, dsv3_point point,
                                             int64_t layer) {
    for (int64_t i = 0; i < c->n; i++)
        if (c->t[i].point == point && (point == DSV3_POINT_HIDDEN || c->t[i].layer == layer))
            return &c->t[i];
    return NULL;
}

typedef struct {
    int64_t n_layers, T;
    dsv3_capture_tensor *
        *slots; /* [(n_layers + 1) * DSV3_POINT_COUNT]: row 0 = hidden (layer -1) */
} capture_ctx;

/* The hook copies into tensors made before the forward; it never allocates. */
static void on_point(void *ud, dsv3_point p, int64_t layer, int64_t pos0, int64_t n, int64_t dim,
                     const float *x) {
    capture_ctx *c = ud;
    int64_t slot = (layer + 1) * DSV3_POINT_COUNT + p; /* layer -1 (hidden) -> slot row 0 */
    if (layer + 1 > c->n_layers || !c->slots[slot]) return;
    dsv3_capture_tensor *t = c->slots[slot];
    if (t->dim != dim || pos0 + n > c->T) return;
    memcpy(t->v + pos0 * dim, x, (size_t)(n * dim) * sizeof(float));
}

/* Appends a zeroed [T, dim] tensor for (p, li) to out (room for it was made by the caller). */
static dsv3_capture_tensor *add_tensor(dsv3_capture *out, dsv3_point p, int64_t li, int64_t dim) {
    dsv3_capture_tensor *t = &out->t[out->n];
    *t = (dsv3_capture_tensor){
        .point = p, .layer = li, .dim = dim, .v = calloc((size_t)(out->T * dim), sizeof(float))};
    if (!t->v) return NULL;
    out->n++;
    return t;
}

dsv3_status dsv3_capture_run(dsv3_capture *out, dsv3_model *m, const int32_t *ids, int64_t T,
                             const dsv3_capture_opts *opts, const volatile int *cancel,
                             dsv3_err *err) {
    memset(out, 0, sizeof *out);
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t NL = c->num_hidden_layers;
    unsigned char want[DSV3_POINT_COUNT] = {0};
    int any = 0;
    for (int p = 0; p < DSV3_POINT_COUNT; p++)
        any |= want[p] = opts ? opts->points[p] : 0;
    if (!any) want[DSV3_POINT_RESID_OUT] = 1;
    const unsigned char *layers = opts ? opts->layers : NULL;
    out->T = T;
    dsv3_status st = dsv3_probe_check_len(m, T, err);
    capture_ctx cx = {.n_layers = NL, .T = T};
    cx.slots = st ? NULL : calloc((size_t)((NL + 1) * DSV3_POINT_COUNT), sizeof *cx.slots);
    out->t = st ? NULL : calloc((size_t)((NL + 1) * DSV3_POINT_COUNT), sizeof *out->t);
    if (!st && (!cx.slots || !out->t)) st = dsv3_errf(err, DSV3_ENOMEM, "capture: out of memory");
    /* Every wanted tensor exists before the forward, so the hook only copies. */
    for (int64_t li = -1; li < NL && !st; li++) {
        const int is_hidden_row = li == -1;
        if (!is_hidden_row && layers && !layers[li]) continue;
        for (int p = 0; p < DSV3_POINT_COUNT && !st; p++) {
            if (!want[p] || (p == DSV3_POINT_HIDDEN) != is_hidden_row) continue;
            const int64_t dim = p == DSV3_POINT_CKV ? c->kv_lora_rank : c->hidden_size;
            dsv3_capture_tensor *t = add_tensor(out, (dsv3_point)p, li, dim);
            if (!t)
                st = dsv3_errf(err, DSV3_ENOMEM, "out of memory for a %d x %d tensor", (int)T,
                               (int)dim);
            cx.slots[(li + 1) * DSV3_POINT_COUNT + p] = t;
        }
    }
    dsv3_run *run = NULL;
    if (!st) st = dsv3_probe_run_new(&run, m, T, cancel, err);
    if (!st) {
        dsv3_hooks h = {.ud = &cx, .point = on_point, .attn_layer = -1, .attn_head = -1};
        dsv3_run_set_hooks(run, &h);
        st = dsv3_forward_chunked(run, ids, T, NULL, NULL, err);
    }
    dsv3_run_free(run);
    free(cx.slots);
    if (st) dsv3_capture_fini(out);
    return st;
}
