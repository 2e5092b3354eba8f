/* forward.h — one sequence's inference state and the exact FP32 forward pass.
 *
 * A dsv3_run holds one sequence's MLA latent cache (per layer: the normalised latent c
 * [kv_lora_rank] and the rotated shared RoPE key k_pe [qk_rope_head_dim] per position; the MTP
 * block keeps its own), and all scratch, sized once at dsv3_run_new: no allocation happens in a
 * forward call. The math is docs/ARCHITECTURE.md, "The model", with Hugging Face semantics in
 * float32. Thread rules: one thread uses a run at a time; several runs may share one model.
 */
#ifndef DSV3_FORWARD_H
#define DSV3_FORWARD_H

#include <stdint.h>

#include "model/run/model.h"

typedef struct dsv3_run dsv3_run;

typedef enum {
    DSV3_ATTN_ABSORBED = 0, /* "MLA" absorbed: scores against the cached latent (decode) */
    DSV3_ATTN_NAIVE = 1,    /* "MLA" naive: k_nope and v re-expanded from the latent (HF) */
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

/* With on = 1 every later dsv3_forward also keeps its final-normed hidden states [n, H] in the
 * run, in backend memory, for dsv3_forward_mtp_kept (model/run/mtp.h); 0 stops it. */
void dsv3_run_keep_hidden(dsv3_run *r, int on);

/* Cancellation: when *flag becomes non-zero a running forward stops at the next layer boundary
 * and returns DSV3_EINTR, leaving the caches at their length before the call. NULL disables. */
void dsv3_run_set_cancel(dsv3_run *r, const volatile int *flag);

/* ---- probes: hooks the forward pass calls at fixed points (DESIGN.md: probes are hooks) ----
 * With no hooks attached each point costs one pointer test. Hooks must not call back into the
 * run. Arrays passed to a hook are valid only during the call. */

typedef enum {
    DSV3_POINT_RESID_IN = 0, /* residual stream entering a block, [n, H] */
    DSV3_POINT_ATTN_OUT,     /* MLA output (after o_proj), [n, H] */
    DSV3_POINT_FFN_OUT,      /* dense FFN or MoE output, [n, H] */
    DSV3_POINT_RESID_OUT,    /* residual stream leaving a block, [n, H] */
    DSV3_POINT_CKV,          /* normalised MLA latent c (what the cache keeps), [n, kv_lora_rank] */
    DSV3_POINT_HIDDEN,       /* final-normed hidden state (the MTP input), [n, H]; layer = -1 */
    DSV3_POINT_COUNT
} dsv3_point;

/* One token's routing at one MoE layer (docs/ARCHITECTURE.md, "Routing"). */
typedef struct {
    int64_t layer;                  /* checkpoint layer index (the MTP block: num_hidden_layers) */
    int64_t pos;                    /* absolute position */
    int32_t token;                  /* input token id at pos (MTP: the t_{pos+1} it embeds) */
    const float *scores;            /* [E] unbiased sigmoid scores */
    const float *biased;            /* [E] scores + bias, what selection compared (-inf: disabled) */
    const unsigned char *group_kept;/* [n_group] 1 for groups kept */
    const int32_t *experts;         /* [K] chosen experts, descending biased score */
    const float *weights;           /* [K] combine weights (normalised, scaled) */
    const int32_t *experts_nobias;  /* [K] the choice with a zero bias (same order rule) */
} dsv3_route_event;

typedef struct {
    void *ud;
    /* Each token at each MoE layer, after routing. NULL = off. */
    void (*route)(void *ud, const dsv3_route_event *ev);
    /* Activations at named points, for the n tokens from absolute position pos0. NULL = off. */
    void (*point)(void *ud, dsv3_point p, int64_t layer, int64_t pos0, int64_t n, int64_t dim,
                  const float *x);
    /* Attention probabilities of head attn_head in layer attn_layer, per query. NULL = off. */
    void (*attn)(void *ud, int64_t layer, int64_t head, int64_t pos, int64_t T, const float *p);
    int64_t attn_layer, attn_head;
} dsv3_hooks;

/* Changes to routing that a probe asks for; they change the numbers, on purpose. */
typedef struct {
    const unsigned char *disabled; /* [(num_hidden_layers + 1) * E]: 1 = never route there */
    int zero_bias;                 /* choose experts without e_score_correction_bias */
    int drop_shared;               /* leave the shared expert out */
    const int32_t *forced;         /* [(num_hidden_layers + 1) * K]: experts to use (a row whose
                                      first entry is -1 is not forced); NULL = none */
    int64_t forced_pos;            /* position the forcing applies to; -1 = every position */
} dsv3_interventions;

/* Attaches hooks / interventions (copied; NULL detaches). Arrays they point to must outlive
 * their use by the run. */
void dsv3_run_set_hooks(dsv3_run *r, const dsv3_hooks *h);
void dsv3_run_set_interventions(dsv3_run *r, const dsv3_interventions *iv);

/* Runs the main model over ids[0..n) at positions len..len+n-1 and appends them to the cache.
 * logits: NULL, or [n, vocab] (last_only = 0) or [vocab] for the last token (last_only = 1).
 * hidden: NULL or [n, hidden_size], the final-normed hidden states (the MTP input).
 * Errors: an id outside [0, vocab) (DSV3_EINVAL naming the position and id), n < 1 or
 * n > max_chunk, or len + n > max_seq; the caches are then unchanged. */
dsv3_status dsv3_forward(dsv3_run *r, const int32_t *ids, int64_t n, float *logits,
                         int last_only, float *hidden, dsv3_err *err);

/* dsv3_forward over any number of tokens, max_chunk at a time (logits/hidden as full [n, .]
 * arrays, either may be NULL). */
dsv3_status dsv3_forward_chunked(dsv3_run *r, const int32_t *ids, int64_t n, float *logits,
                                 float *hidden, dsv3_err *err);

#endif
