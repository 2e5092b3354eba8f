/* ops.h — the training operators: one forward/backward pair per op (docs/ARCHITECTURE.md,
 * "Gradients").
 *
 * Owns the differentiable math of training on plain arrays: embedding, linear, RMSNorm, RoPE,
 * causal softmax attention (naive form), SwiGLU, sigmoid gating with normalisation and routed
 * scaling, the sequence-wise balance loss, and cross-entropy. It owns no state: every buffer is
 * the caller's. Does not own the model's wiring (model/train/trainable) or the routing choice (the
 * discrete top-k stays model/run/moe.c's dsv3_moe_route).
 *
 * Precision: activations and their gradients are double; parameters and parameter gradients are
 * float32 (the FP32 master weights and FP32 gradient accumulation of docs/ARCHITECTURE.md,
 * "Training"). Double activations let the finite-difference checks reach 1e-4 relative error
 * (checks want a double reference) and keep the training forward within 1e-5 of the FP32 inference.
 *
 * Conventions (llm.c): outputs first, then inputs, then sizes. Every *_backward ADDS into its
 * gradient outputs (dx += ..., dW += ...), so a tensor read by two paths collects both; the
 * caller zeroes once. A gradient output that is NULL is skipped. Results do not depend on the
 * number of threads: every output element is reduced by one thread in a fixed order.
 * Thread rules: functions run parallel work on the worker pool (kernels/pool.h); call them from
 * one thread at a time.
 */
#ifndef DSV3_TRAIN_OPS_H
#define DSV3_TRAIN_OPS_H

#include <stdint.h>

/* ---- embedding: out[s] = table[ids[s]], table [V, H] ---- */
void dsv3_op_embed_forward(double *out, const int32_t *ids, const float *table, int64_t n,
                           int64_t H);
/* dtable[ids[s]] += dout[s], tokens in order. */
void dsv3_op_embed_backward(float *dtable, const double *dout, const int32_t *ids, int64_t n,
                            int64_t H);

/* ---- linear: y[n, out] = x[n, in] W^T, W [out, in] row-major (no bias anywhere in V3) ---- */
void dsv3_op_linear_forward(double *y, const double *x, const float *W, int64_t n, int64_t in,
                            int64_t out);
/* dx += dy W; dW += dy^T x (summed over tokens in double, then added to the float gradient). */
void dsv3_op_linear_backward(double *dx, float *dW, const double *dy, const double *x,
                             const float *W, int64_t n, int64_t in, int64_t out);

/* ---- the same linear in float32 (the trainer's fast path, dsv3_trainable_set_precision(tm, 32)):
 * x, dy and W are rounded to float and the products summed in float32 (kernels/cpu/gemm.h);
 * y, dx are written / added in double, dW gets one float rounding per element. ws holds
 * dsv3_op_linear_ws(n, in, out) floats. Relative error against the double version ~1e-6. */
int64_t dsv3_op_linear_ws(int64_t n, int64_t in, int64_t out);
void dsv3_op_linear_forward_f32(double *y, const double *x, const float *W, int64_t n,
                                int64_t in, int64_t out, float *ws);
void dsv3_op_linear_backward_f32(double *dx, float *dW, const double *dy, const double *x,
                                 const float *W, int64_t n, int64_t in, int64_t out, float *ws);

/* ---- RMSNorm (docs/ARCHITECTURE.md, "RMSNorm"): y = g * x * rstd, rstd = 1/sqrt(mean(x^2) + eps).
 * rstd [n] is saved for the backward pass. y may alias x. */
void dsv3_op_rmsnorm_forward(double *y, double *rstd, const double *x, const float *g, int64_t n,
                             int64_t dim, double eps);
/* docs/ARCHITECTURE.md, "Gradients". dx may not alias x or dy. */
void dsv3_op_rmsnorm_backward(double *dx, float *dg, const double *dy, const double *x,
                              const double *rstd, const float *g, int64_t n, int64_t dim);

/* ---- RoPE on interleaved pairs (docs/ARCHITECTURE.md, "RoPE"): for token s and vector v, the d
 * values at x + (s * nvec + v) * stride are rotated in place by angle pos[s] * inv_freq[k],
 * with cos/sin multiplied by factor (YaRN attention factor). */
void dsv3_op_rope_forward(double *x, int64_t n, int64_t nvec, int64_t stride, int64_t d,
                          const int64_t *pos, const float *inv_freq, double factor);
/* docs/ARCHITECTURE.md, "Gradients": dx = factor * R(-theta) dy, in place on the gradient. */
void dsv3_op_rope_backward(double *dx, int64_t n, int64_t nvec, int64_t stride, int64_t d,
                           const int64_t *pos, const float *inv_freq, double factor);

/* ---- causal softmax attention (naive form, docs/ARCHITECTURE.md, "MLA") over B sequences of T
 * tokens: q, k [B*T, nh, dqk], v [B*T, nh, dv]; o [B*T, nh, dv]; P [B, nh, T, T] saved
 * probabilities (entries above the diagonal are 0). score = q.k * scale. */
void dsv3_op_attention_forward(double *o, double *P, const double *q, const double *k,
                               const double *v, int64_t B, int64_t T, int64_t nh, int64_t dqk,
                               int64_t dv, double scale);
void dsv3_op_attention_backward(double *dq, double *dk, double *dv, const double *dout,
                                const double *P, const double *q, const double *k,
                                const double *v, int64_t B, int64_t T, int64_t nh, int64_t dqk,
                                int64_t dvh, double scale);

/* ---- the same attention in float32 (dsv3_trainable_set_precision(tm, 32)): per (b, h) the operands
 * are copied to float (keys and values also transposed, so the scores of one query over all
 * keys and the value gradients are 8-lane vector loops), summed in float32, and the results
 * written (o, P) or added (dq, dk, dv) in double. ws holds dsv3_pool_threads() *
 * dsv3_op_attention_ws(T, dqk, dv) floats. Relative error against the double version ~1e-6. */
int64_t dsv3_op_attention_ws(int64_t T, int64_t dqk, int64_t dv);
void dsv3_op_attention_forward_f32(double *o, double *P, const double *q, const double *k,
                                   const double *v, int64_t B, int64_t T, int64_t nh,
                                   int64_t dqk, int64_t dv, double scale, float *ws);
void dsv3_op_attention_backward_f32(double *dq, double *dk, double *dv, const double *dout,
                                    const double *P, const double *q, const double *k,
                                    const double *v, int64_t B, int64_t T, int64_t nh,
                                    int64_t dqk, int64_t dvh, double scale, float *ws);

/* ---- SwiGLU (docs/ARCHITECTURE.md, "SwiGLU"): h = silu(a) * b ---- */
void dsv3_op_swiglu_forward(double *h, const double *a, const double *b, int64_t n);
/* docs/ARCHITECTURE.md, "Gradients". */
void dsv3_op_swiglu_backward(double *da, double *db, const double *dh, const double *a,
                             const double *b, int64_t n);

/* The same in float32 arithmetic (vectorised e^x; values stay double), for the float32 path. */
void dsv3_op_swiglu_forward_f32(double *h, const double *a, const double *b, int64_t n);
void dsv3_op_swiglu_backward_f32(double *da, double *db, const double *dh, const double *a,
                                 const double *b, int64_t n);

/* ---- sigmoid gating (docs/ARCHITECTURE.md, "Routing"): given router logits z [n, E] and the
 * chosen experts idx [n, K] (from dsv3_moe_route; -1 = none), s = sigmoid(z) [n, E] (saved) and the
 * combine weights w[n, K] = R * s_idx / (sum_k s_idx + 1e-20) (norm = 1) or R * s_idx. */
void dsv3_op_gate_forward(double *w, double *s, const double *z, const int32_t *idx, int64_t n,
                          int64_t E, int64_t K, double R, int norm);
/* docs/ARCHITECTURE.md, "Gradients": dz += (ds_w + ds_extra) * s * (1 - s), where ds_w comes from
 * dw [n, K] through the normalisation (selected experts only; no gradient to the bias or the
 * choice) and ds_extra [n, E] (the balance loss's gradient on s, all experts) may be NULL. */
void dsv3_op_gate_backward(double *dz, const double *dw, const double *ds_extra, const double *s,
                           const int32_t *idx, int64_t n, int64_t E, int64_t K, double R,
                           int norm);

/* ---- sequence-wise balance loss (docs/ARCHITECTURE.md, "Bias update and balance loss") for one
 * sequence of T tokens: f_i = E / (K T) * count_i (count over idx, constant),
 * P_i = mean_t s_{i,t} / sum_j s_{j,t}, returns sum_i f_i P_i (without alpha; 1 when routing is
 * uniform). f [E] is saved. */
double dsv3_op_balance_forward(double *f, const double *s, const int32_t *idx, int64_t T,
                               int64_t E, int64_t K);
/* ds [T, E] += dL * d(sum_i f_i P_i)/ds, through s' = s / sum_j s (all experts). */
void dsv3_op_balance_backward(double *ds, const double *s, const double *f, double dL, int64_t T,
                              int64_t E);

/* ---- cross-entropy: probs [n, V] = softmax(logits) (max subtracted), loss[s] = -log
 * probs[s, targets[s]] computed as logsumexp - logit; target < 0 gives loss 0 (masked).
 * probs may alias logits. */
void dsv3_op_ce_forward(double *loss, double *probs, const double *logits, const int32_t *targets,
                        int64_t n, int64_t V);
/* The same in the float32 path: e^x vectorised on floats (relative error ~1e-7), sums in
 * double. */
void dsv3_op_ce_forward_f32(double *loss, double *probs, const double *logits,
                            const int32_t *targets, int64_t n, int64_t V);
/* docs/ARCHITECTURE.md, "Gradients": dlogits[s] = dloss[s] * (probs[s] - onehot(target)); masked
 * rows get 0. dlogits may alias probs. Overwrites (a loss is the start of the backward pass). */
void dsv3_op_ce_backward(double *dlogits, const double *probs, const int32_t *targets,
                         const double *dloss, int64_t n, int64_t V);

#endif
