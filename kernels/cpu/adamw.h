/* adamw.h — one AdamW step over a span of float32 weights (the trainer's optimizer update,
 * docs/ARCHITECTURE.md "Training").
 *
 * Owns the arithmetic of the step for consecutive weights, their two moments and their
 * gradient, and the choice between an eight-wide AVX2 loop and the scalar loop (kernels/cpu/isa.h):
 * both perform the same operations in the same order, each rounded on its own, so the weights are
 * bit-identical whichever runs. Does not own the schedule (lr), the bias corrections' powers,
 * which tensors decay, or threads: the caller (model/train/trainer.c) cuts the parameter array
 * into spans and runs them on its pool; spans are independent.
 * Thread rules: no state; disjoint spans may run on several threads at once.
 */
#ifndef DSV3_ADAMW_H
#define DSV3_ADAMW_H

#include <stdint.h>

/* The constants of one step k >= 1, all float32. */
typedef struct {
    float b1, b2; /* the moments' decay rates beta1, beta2 */
    float eps;    /* added to sqrt(vhat) */
    float c1, c2; /* bias corrections 1 - beta1^k, 1 - beta2^k */
    float lr;     /* this step's learning rate */
    float gs;     /* gradient scale (the clipping factor; 1 when unclipped) */
} dsv3_adamw_step;

/* For i < n, with gj = g[i] * gs:
 *   m[i] = b1 m[i] + (1 - b1) gj;  v[i] = b2 v[i] + (1 - b2) gj gj;
 *   w[i] -= lr ((m[i] / c1) / (sqrt(v[i] / c2) + eps) + wd w[i])
 * (decoupled weight decay wd; 0 for tensors that do not decay). */
void dsv3_adamw(float *w, float *m, float *v, const float *g, int64_t n,
                const dsv3_adamw_step *s, float wd);

#endif
