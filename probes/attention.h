/* attention.h — one head's attention probabilities over a token sequence.
 *
 * dsv3_attention_pattern runs the main model once with the attention hook on one (layer, head)
 * and keeps, for every query position, its softmax over the keys it may see. It owns that
 * collection; the probabilities themselves are the forward pass's (model/run/forward.h; both
 * MLA forms report the same pattern, docs/ARCHITECTURE.md, "MLA").
 * Thread rules: the model may be shared; the call uses one run of its own.
 */
#ifndef DSV3_PROBES_ATTENTION_H
#define DSV3_PROBES_ATTENTION_H

#include <stdint.h>

#include "model/base/status.h"
#include "model/run/forward.h"

typedef struct {
    int64_t T;           /* positions (= tokens) */
    int64_t layer, head; /* the block (0-based) and its attention head (0-based) */
    float *p; /* [T, T] float32, row-major: row i = query i over keys 0..i (each row sums to
                 1); keys j > i are 0 (causal). The caller may take it (NULL it before fini). */
} dsv3_attention;

/* Fills *out for head `head` of block `layer` over ids[0..T) of model m. cancel (may be NULL)
 * stops the forward with DSV3_EINTR. Errors: layer or head out of range (DSV3_EINVAL), T outside
 * 1..max_position_embeddings ("N tokens (need 1..P)"), DSV3_ENOMEM, the forward's status. On
 * success *out is the caller's (dsv3_attention_fini); on failure it holds nothing. */
dsv3_status dsv3_attention_pattern(dsv3_attention *out, dsv3_model *m, const int32_t *ids,
                                   int64_t T, int64_t layer, int64_t head,
                                   const volatile int *cancel, dsv3_err *err);

/* Frees out->p and zeroes the struct; NULL is a no-op. */
void dsv3_attention_fini(dsv3_attention *a);

#endif
