/* lens.h — the logit lens: what each layer's residual stream would predict if it were the last.
 *
 * dsv3_lens_compute captures every block's output residual (capture.h) at one position, puts
 * each through the final norm and the LM head (dsv3_model_lens) and keeps the k most likely
 * next tokens with their probabilities. It owns that read-out; it does not own the capture nor
 * the head. At the last block the lens is the model's own next-token distribution.
 * Thread rules: the model may be shared; the call uses one run of its own.
 */
#ifndef DSV3_PROBES_LENS_H
#define DSV3_PROBES_LENS_H

#include <stdint.h>

#include "model/base/status.h"
#include "model/run/forward.h"

typedef struct {
    int32_t id;  /* token id */
    double prob; /* its softmax probability under the lens, in (0, 1] */
} dsv3_lens_entry;

typedef struct {
    int64_t n_layers;     /* blocks read (= num_hidden_layers) */
    int64_t k;            /* entries per block: min(k asked, vocab_size) */
    int64_t pos;          /* the position read, 0-based */
    dsv3_lens_entry *top; /* [n_layers, k]: row l = block l, most likely first (ties: lower id) */
} dsv3_lens;

/* Fills *out for position pos (0-based, < T) of ids[0..T) over model m, with the k >= 1 most
 * likely tokens per block. cancel (may be NULL) stops the forward with DSV3_EINTR. Errors:
 * k < 1 ("lens: k must be at least 1") before any forward, the capture's errors, then pos
 * outside [0, T) ("lens: pos out of range"), DSV3_ENOMEM. On success *out is the caller's
 * (dsv3_lens_fini); on failure it holds nothing. */
dsv3_status dsv3_lens_compute(dsv3_lens *out, dsv3_model *m, const int32_t *ids, int64_t T,
                              int64_t pos, int64_t k, const volatile int *cancel, dsv3_err *err);

/* Frees out->top and zeroes the struct; NULL is a no-op. */
void dsv3_lens_fini(dsv3_lens *l);

#endif
