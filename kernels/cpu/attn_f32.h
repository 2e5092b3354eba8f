/* attn_f32.h — the trainer's causal softmax attention in float32, one (sequence, head) pair per
 * call (docs/ARCHITECTURE.md "Training"; model/train/ops.c spreads the pairs over the pool).
 *
 * Owns the arithmetic of one pair's forward and backward pass: the pair's operands are copied
 * from double to float (keys and values also transposed, so the scores of one query over all keys
 * and the value gradients are 8-lane vector loops), summed in float32, and the results written
 * (o, P) or added (dq, dk, dv) in double. On CPUs with AVX2+FMA (kernels/cpu/isa.h) the whole
 * pass is compiled for them; otherwise it runs plain loops. Does not own the double-precision
 * attention (model/train/ops.c), threads, or the workspace (the caller's, dsv3_attn_f32_ws floats
 * per call running at once).
 * Shapes, over B sequences of T tokens: q, k, dq, dk [B*T, nh, dqk]; v, o, dout, dv [B*T, nh, dv];
 * P [B, nh, T, T] (entries above the diagonal are 0). score = q.k * scale.
 * Thread rules: no state; calls for different pairs, each with its own workspace, may run on
 * several threads at once.
 */
#ifndef DSV3_ATTN_F32_H
#define DSV3_ATTN_F32_H

#include <stdint.h>

/* The operands of one attention pass; items are the pairs bh = b * nh + h < B * nh. */
typedef struct {
    double *o, *P;              /* forward outputs (written) */
    double *dq, *dk, *dv;       /* backward outputs (added into) */
    const double *q, *k, *v;    /* inputs */
    const double *dout, *Pc;    /* backward inputs: the output gradient, the forward's P */
    int64_t T, nh, dqk, dv_, B; /* tokens per sequence, heads, q/k width, v width, sequences */
    double scale;               /* multiplies q.k */
} dsv3_attn_job;

/* Floats of workspace one call needs. */
int64_t dsv3_attn_f32_ws(int64_t T, int64_t dqk, int64_t dv);

/* Forward for pair bh: P[b, h, t1, :] = softmax over t2 <= t1 of the scores,
 * o[t1] = sum_t2 P[t1, t2] v[t2]. Writes o and P of that pair. */
void dsv3_attn_f32_forward(const dsv3_attn_job *j, int64_t bh, float *ws);

/* Backward for pair bh from dout and the forward's probabilities Pc: adds into dq, dk, dv of that
 * pair. */
void dsv3_attn_f32_backward(const dsv3_attn_job *j, int64_t bh, float *ws);

#endif
