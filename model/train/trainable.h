/* trainable.h — the differentiable DeepSeek-V3: FP32 parameters, forward with saved
 * activations, backward into FP32 gradients.
 *
 * A dsv3_trainable owns one flat float32 allocation of every trainable parameter (the master
 * weights, loaded from a dsv3_model whatever its stored dtype), a gradient array of the same
 * size and layout, a table naming each tensor (its Hugging Face name, shape, offset, whether
 * AdamW decays it, its stored dtype), the router biases (state, not parameters), and all
 * activations and scratch for one micro-batch of max_batch sequences of seq_len tokens, sized
 * once at dsv3_trainable_new: forward and backward allocate nothing. The wiring follows
 * docs/ARCHITECTURE.md, "The model", with the operators of model/train/ops; the losses are
 * docs/ARCHITECTURE.md, "Objective". It does not own the optimizer, data, schedules or files
 * (model/train).
 *
 * Shared MTP tensors: model.layers.L.embed_tokens and model.layers.L.shared_head.head are the
 * same parameters as model.embed_tokens and lm_head (docs/ARCHITECTURE.md, "MTP") when the
 * checkpoint leaves them out or when their values equal the main ones at load ("tied"); the table
 * then has one entry whose `alias` names the copy. Copies with different values are separate
 * parameters.
 *
 * Thread rules: one thread uses a dsv3_trainable at a time. The source dsv3_model is only read,
 * during dsv3_trainable_new, and may be closed afterwards.
 */
#ifndef DSV3_TRAINABLE_H
#define DSV3_TRAINABLE_H

#include <stdint.h>

#include "kernels/dtype.h"
#include "model/run/model.h"
#include "model/base/status.h"

typedef struct dsv3_trainable dsv3_trainable;

/* One parameter tensor of the flat allocation. */
typedef struct {
    const char *name;      /* checkpoint (HF) name, e.g. "model.layers.1.self_attn.kv_b_proj.weight" */
    const char *alias;     /* a second checkpoint name of the same parameter (tied MTP copy), or NULL */
    int ndim;              /* 1 (norm gains) or 2 (matrices) */
    int64_t rows, cols;    /* shape [rows] (cols = 1) or [rows, cols], row-major */
    int64_t offset;        /* first element in dsv3_trainable_params / dsv3_trainable_grads */
    int64_t numel;         /* rows * cols */
    int decay;             /* 1: AdamW weight decay (matrices); 0: norm gains (our choice) */
    dsv3_dtype dtype;      /* dtype stored in the source checkpoint */
    dsv3_dtype alias_dtype; /* the alias's stored dtype (when alias is set) */
} dsv3_trainable_tensor;

/* Losses of one forward call (one micro-batch). */
typedef struct {
    double loss;     /* ce + lambda * mtp + alpha * balance (what backward differentiates) */
    double ce;       /* mean next-token cross-entropy over B * T positions */
    double mtp;      /* mean MTP cross-entropy over B * (T - 1) positions; 0 without MTP */
    double balance;  /* sum over MoE layers of the mean over sequences of sum_i f_i P_i (no alpha) */
    uint64_t route_hash; /* hash of every routing choice (equal hashes: same experts chosen) */
} dsv3_trainable_losses;

/* Builds the parameter table from m's config and bound weights, allocates parameters,
 * gradients and activations for micro-batches of up to max_batch sequences of seq_len input
 * tokens (each sequence comes with one more token, the last target), and loads the weights
 * into FP32 exactly as the inference kernels decode them. Biases are copied from m.
 * Errors: DSV3_EINVAL (seq_len < 2, seq_len > max_position_embeddings, max_batch < 1),
 * DSV3_ENOMEM. On failure *out is NULL. */
dsv3_status dsv3_trainable_new(dsv3_trainable **out, const dsv3_model *m, int64_t max_batch,
                        int64_t seq_len, dsv3_err *err);
/* NULL is a no-op. */
void dsv3_trainable_free(dsv3_trainable *tm);

const dsv3_config *dsv3_trainable_config(const dsv3_trainable *tm);
int64_t dsv3_trainable_seq_len(const dsv3_trainable *tm);
int64_t dsv3_trainable_max_batch(const dsv3_trainable *tm);
/* 1 when the MTP module is trained (the source model has it). */
int dsv3_trainable_has_mtp(const dsv3_trainable *tm);

/* The parameter table, in checkpoint order; i < dsv3_trainable_n_tensors. */
int64_t dsv3_trainable_n_tensors(const dsv3_trainable *tm);
const dsv3_trainable_tensor *dsv3_trainable_tensor_at(const dsv3_trainable *tm, int64_t i);
/* The tensor named name (or whose alias is name), or NULL. */
const dsv3_trainable_tensor *dsv3_trainable_find(const dsv3_trainable *tm, const char *name);
/* Total elements, and the flat FP32 parameter and gradient arrays [n_params]. */
int64_t dsv3_trainable_n_params(const dsv3_trainable *tm);
float *dsv3_trainable_params(dsv3_trainable *tm);
float *dsv3_trainable_grads(dsv3_trainable *tm);

/* FP8 mode (docs/ARCHITECTURE.md, "FP8 training"): with on set, every linear of the decoder blocks
 * (MLA projections, dense FFN, routed and shared experts) runs its three GEMMs in emulated FP8
 * (model/train/fp8.h); the embedding, router, norms, attention core, MTP eh_proj and the heads stay
 * in double. Takes effect at the next forward (a pending backward is dropped). DSV3_ENOMEM if
 * the FP8 workspace cannot be allocated (the mode is then unchanged). */
dsv3_status dsv3_trainable_set_fp8(dsv3_trainable *tm, int on, dsv3_err *err);
int dsv3_trainable_fp8(const dsv3_trainable *tm);

/* Compute precision of the activations' arithmetic: 64 (the default: double everywhere, what
 * the finite-difference checks and the PyTorch float64 cross-check use) or 32 (the linears —
 * block linears when FP8 is off, router, eh_proj, heads — summed in float32 on 8-lane
 * kernels, kernels/cpu/gemm.h, and the attention core in float32; activations stay stored in
 * double, parameters and gradients are float32 either way). 32 is what training runs use: the
 * losses agree with 64 to ~1e-6 relative. Takes effect at the next forward. DSV3_EINVAL for
 * other values, DSV3_ENOMEM if the float32 workspace cannot be allocated (unchanged then). */
dsv3_status dsv3_trainable_set_precision(dsv3_trainable *tm, int bits, dsv3_err *err);
int dsv3_trainable_precision(const dsv3_trainable *tm);

/* MoE layers (main layers >= first_k_dense_replace in order, then the MTP block). */
int64_t dsv3_trainable_n_moe(const dsv3_trainable *tm);
/* Checkpoint layer index of MoE layer i (the MTP block: num_hidden_layers). */
int64_t dsv3_trainable_moe_layer(const dsv3_trainable *tm, int64_t i);
/* Router biases [n_moe, n_routed_experts] float32: selection only, never differentiated. */
float *dsv3_trainable_bias(dsv3_trainable *tm);

/* Forward over B <= max_batch sequences ids [B, seq_len + 1]: inputs are ids[b, 0..T), main
 * targets ids[b, 1..T], MTP inputs ids[b, 1..T) and targets ids[b, 2..T] (docs/ARCHITECTURE.md,
 * "Objective"; documents are packed without masking). lambda weights the MTP loss, alpha the
 * balance loss. If counts is not NULL, counts[i * E + e] += tokens routed to expert e at MoE
 * layer i (docs/ARCHITECTURE.md, "Bias update and balance loss"). Activations are kept for
 * dsv3_trainable_backward. Errors: DSV3_EINVAL for an id outside [0, vocab) (naming sequence and
 * position) or a bad B; DSV3_EINTR when *cancel becomes non-zero (checked between layers). */
dsv3_status dsv3_trainable_forward(dsv3_trainable *tm, const int32_t *ids, int64_t B, double lambda,
                            double alpha, int64_t *counts, const volatile int *cancel,
                            dsv3_trainable_losses *out, dsv3_err *err);

/* grads += scale * d(loss)/d(params) for the last successful forward (scale = 1/accum for
 * gradient accumulation). DSV3_EINTR when *cancel becomes non-zero (grads then partial). */
dsv3_status dsv3_trainable_backward(dsv3_trainable *tm, double scale, const volatile int *cancel,
                             dsv3_err *err);

/* Runs the forward on ids [B, seq_len + 1] and writes the logits: logits [B * T, vocab] (row
 * b*T + t predicts ids[b, t+1]) and, when mtp_logits is not NULL and the model has MTP,
 * mtp_logits [B * (T - 1), vocab] (row b*(T-1) + i predicts ids[b, i+2]). For comparing with
 * dsv3_forward / dsv3_forward_mtp. */
dsv3_status dsv3_trainable_logits(dsv3_trainable *tm, const int32_t *ids, int64_t B, float *logits,
                           float *mtp_logits, dsv3_err *err);

/* ---- the inference model's view of trained weights (dsv3_trainer_sync) ----
 * Both require m to be the model given to dsv3_trainable_new (DSV3_EINVAL otherwise). */

/* Makes m compute with the weights w [n_params] (the parameter layout) and router biases
 * bias [n_moe, E]: every matrix binding of m (tied MTP copies included) becomes a float32 view
 * of w, which must stay valid and unchanged while m is used; norm gains and biases are copied
 * into m's float32 arrays. Runs created on m see the change at their next forward. */
dsv3_status dsv3_trainable_point_model(const dsv3_trainable *tm, dsv3_model *m, const float *w,
                                const float *bias, dsv3_err *err);

/* Undoes dsv3_trainable_point_model: the matrix bindings m had at dsv3_trainable_new come back, and norm
 * gains and biases get their values from then. */
dsv3_status dsv3_trainable_restore_model(const dsv3_trainable *tm, dsv3_model *m, dsv3_err *err);

/* ---- token log-probabilities for policy-gradient training (model/grpo) ---- */

/* Runs the main model only (no MTP module, no balance loss, no load counting) on ids
 * [B, seq_len + 1] and writes logp [B * seq_len]: logp[b*T + t] = log softmax(inv_temp *
 * logits[b, t])[ids[b, t+1]], the log-probability of the next token at temperature
 * 1 / inv_temp. Activations are kept for dsv3_trainable_logp_backward (and dsv3_trainable_backward then
 * refuses until the next dsv3_trainable_forward). Errors: DSV3_EINVAL (a bad B, inv_temp <= 0, an
 * id outside [0, vocab) naming sequence and position), DSV3_EINTR when *cancel becomes
 * non-zero. */
dsv3_status dsv3_trainable_logp_forward(dsv3_trainable *tm, const int32_t *ids, int64_t B, double inv_temp,
                                 double *logp, const volatile int *cancel, dsv3_err *err);

/* grads += sum over rows r of dlogp[r] * d logp[r] / d(params) for the last
 * dsv3_trainable_logp_forward (dlogp [B * seq_len]; rows with 0 contribute nothing, so padding is
 * given weight 0). Router biases are not touched. DSV3_EINVAL without a successful
 * dsv3_trainable_logp_forward; DSV3_EINTR when cancelled (grads then partial). */
dsv3_status dsv3_trainable_logp_backward(dsv3_trainable *tm, const double *dlogp, const volatile int *cancel,
                                  dsv3_err *err);

#endif
