/* cross_entropy.h — the forward row of the trainer's softmax cross-entropy, in double or in
 * float32 arithmetic (docs/ARCHITECTURE.md "Training").
 *
 * Owns one row: the probabilities softmax(z) with the max subtracted, one e^x per logit, and the
 * loss logsumexp(z) - z[y]. The float32 version computes e^x eight floats at a time
 * (kernels/cpu/simd_exp.h, relative error ~1e-7; arguments below -87 count as e^-87; on CPUs with
 * AVX2+FMA+F16C, kernels/cpu/isa.h) and adds eight float partial sums in double; on other CPUs it
 * is the double row. Does not own the backward (model/train/ops.c) or threads.
 * Shapes: z and p have V elements; p may alias z.
 * Thread rules: no state; different rows may run on several threads at once.
 */
#ifndef DSV3_CROSS_ENTROPY_H
#define DSV3_CROSS_ENTROPY_H

#include <stdint.h>

/* p = softmax(z); returns logsumexp(z) - z[y], or 0 when y < 0 (a masked row). In double. */
double dsv3_ce_row(double *p, const double *z, int32_t y, int64_t V);

/* The same in float32 arithmetic where the CPU allows (see above); values stay double. */
double dsv3_ce_row_f32(double *p, const double *z, int32_t y, int64_t V);

#endif
