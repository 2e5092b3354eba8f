/* capture.h — activations at the forward pass's hook points, copied out as [T, dim] tensors.
 *
 * dsv3_capture_run runs the main model once over a token sequence with a point hook attached
 * and keeps, for each wanted (point, layer), every position's vector: the residual stream
 * entering or leaving a block, the MLA and FFN outputs, the MLA latent c, or the final-normed
 * hidden state. All tensors are allocated before the forward, so the hook only copies. It owns
 * that selection and copy; it does not own the hook points (model/run/forward.h) nor what is
 * read from the tensors (lens.h reads resid_out). The MTP block is never run here.
 * Thread rules: the model may be shared; the call uses one run of its own.
 */
#ifndef DSV3_PROBES_CAPTURE_H
#define DSV3_PROBES_CAPTURE_H

#include <stdint.h>

#include "model/base/status.h"
#include "model/run/forward.h"

typedef struct {
    unsigned char points[DSV3_POINT_COUNT]; /* 1 = capture that point; all 0 = resid_out only */
    const unsigned char *layers; /* [num_hidden_layers + 1] 1 = capture at that block (the last
                                    entry, the MTP block, is accepted and never captured), or
                                    NULL = every block. DSV3_POINT_HIDDEN ignores it. */
} dsv3_capture_opts;

typedef struct {
    dsv3_point point; /* which hook point */
    int64_t layer;    /* block index 0..num_hidden_layers-1; -1 for DSV3_POINT_HIDDEN */
    int64_t dim;      /* kv_lora_rank for DSV3_POINT_CKV, else hidden_size */
    float *v;         /* [T, dim] float32, row-major, row t = position t; rows the forward did
                         not reach stay 0. The caller may take it (set it to NULL before fini). */
} dsv3_capture_tensor;

typedef struct {
    int64_t T;              /* positions (= tokens) */
    int64_t n;              /* tensors held */
    dsv3_capture_tensor *t; /* [n]: hidden first, then by layer ascending, each layer in
                               dsv3_point order */
} dsv3_capture;

/* Fills *out for ids[0..T) over model m with the tensors opts asks for (NULL: resid_out of
 * every block). cancel (may be NULL) stops the forward with DSV3_EINTR. Errors: T outside
 * 1..max_position_embeddings (DSV3_EINVAL, "N tokens (need 1..P)"), DSV3_ENOMEM, or the forward's
 * status (bad ids). On success *out is the caller's (dsv3_capture_fini); on failure it holds
 * nothing. */
dsv3_status dsv3_capture_run(dsv3_capture *out, dsv3_model *m, const int32_t *ids, int64_t T,
                             const dsv3_capture_opts *opts, const volatile int *cancel,
                             dsv3_err *err);

/* The tensor of (point, layer) in c (layer ignored for DSV3_POINT_HIDDEN), or NULL. */
const dsv3_capture_tensor *dsv3_capture_find(const dsv3_capture *c, dsv3_point point,
                                             int64_t layer);

/* Frees every tensor still held and the list, and zeroes c; NULL is a no-op. */
void dsv3_capture_fini(dsv3_capture *c);

/* The point's name: "resid_in", "attn_out", "ffn_out", "resid_out", "ckv", "hidden"; NULL for
 * a value outside dsv3_point. */
const char *dsv3_capture_point_name(int p);

#endif
