/* forward.h — one sequence's inference state and the exact FP32 forward pass.
 *
 * A dsv3_run holds one sequence's MLA latent cache (per layer: the normalised latent c
 * [kv_lora_rank] and the rotated shared RoPE key k_pe [qk_rope_head_dim] per position; the MTP
 * block keeps its own), and all scratch, sized once at dsv3_run_new: no allocation happens in a
 * forward call. The math is spec/architecture.md §4-§6 with Hugging Face semantics in float32.
 * Thread rules: one thread uses a run at a time; several runs may share one model.
 */
#ifndef DSV3_FORWARD_H
#define DSV3_FORWARD_H

#include <stdint.h>

#include "model/model.h"

typedef struct dsv3_run dsv3_run;

typedef enum {
    DSV3_ATTN_ABSORBED = 0, /* spec §4.5: scores against the cached latent (decode form) */
    DSV3_ATTN_NAIVE = 1,    /* spec §4.4: k_nope and v re-expanded from the latent (HF form) */
} dsv3_attn_form;

typedef struct {
    int64_t max_seq;     /* cache capacity in positions; 0 = max_position_embeddings capped at 4096 */
    int64_t max_chunk;   /* most tokens one forward call may take; 0 = 512 (capped at max_seq) */
    dsv3_attn_form attn; /* attention form for every call of this run */
} dsv3_run_opts;

/* Creates a run for model m (which must outlive it). opts may be NULL for the defaults.
 * Memory: per layer 4 * max_seq * (kv_lora_rank + qk_rope_head_dim) bytes of cache, plus
 * scratch linear in max_chunk (and max_seq * nh * (dn + dv) floats for the naive form). */
dsv3_status dsv3_run_new(dsv3_run **out, dsv3_model *m, const dsv3_run_opts *opts,
                         dsv3_err *err);
void dsv3_run_free(dsv3_run *r);

/* Positions held by the main-model cache / by the MTP block's cache. */
int64_t dsv3_run_len(const dsv3_run *r);
int64_t dsv3_run_mtp_len(const dsv3_run *r);
/* Forgets positions >= len in both caches (speculative rollback). len above the current
 * length is ignored. */
void dsv3_run_truncate(dsv3_run *r, int64_t len);
/* Cache capacity and per-call limit actually in effect. */
int64_t dsv3_run_max_seq(const dsv3_run *r);
int64_t dsv3_run_max_chunk(const dsv3_run *r);

/* Cancellation: when *flag becomes non-zero a running forward stops at the next layer boundary
 * and returns DSV3_EINTR, leaving the caches at their length before the call. NULL disables. */
void dsv3_run_set_cancel(dsv3_run *r, const volatile int *flag);

/* Runs the main model over ids[0..n) at positions len..len+n-1 and appends them to the cache.
 * logits: NULL, or [n, vocab] (last_only = 0) or [vocab] for the last token (last_only = 1).
 * hidden: NULL or [n, hidden_size], the final-normed hidden states (the MTP input).
 * Errors: an id outside [0, vocab) (DSV3_EINVAL naming the position and id), n < 1 or
 * n > max_chunk, or len + n > max_seq; the caches are then unchanged. */
dsv3_status dsv3_forward(dsv3_run *r, const int32_t *ids, int64_t n, float *logits,
                         int last_only, float *hidden, dsv3_err *err);

/* Runs the MTP module (spec §6.1) at positions mtp_len..mtp_len+n-1: row i takes
 * next_ids[i] (= t_{p+1}) and hidden[i] (= h_p, from dsv3_forward) and gives the logits of
 * token p+2 into logits ([n, vocab], or [vocab] for the last row with last_only = 1).
 * DSV3_EUNSUPPORTED if the model has no MTP layer. */
dsv3_status dsv3_forward_mtp(dsv3_run *r, const int32_t *next_ids, const float *hidden,
                             int64_t n, float *logits, int last_only, dsv3_err *err);

#endif
