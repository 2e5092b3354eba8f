/* swiglu.h — the trainer's SwiGLU h = silu(a) * b and its gradient on double arrays, in double
 * or in float32 arithmetic (docs/ARCHITECTURE.md "Training"; silu(a) = a * sigma(a)).
 *
 * Owns the elementwise arithmetic and, for the float32 versions, the choice between eight float
 * lanes with a vectorised e^x (kernels/cpu/simd_exp.h, relative error ~1e-7; on CPUs with
 * AVX2+FMA+F16C, kernels/cpu/isa.h) and the double loop (tails and other CPUs). Values are kept
 * in double either way. Does not own threads: model/train/ops.c splits the arrays into ranges.
 * Shapes: every array has n elements.
 * Thread rules: no state; disjoint ranges may run on several threads at once.
 */
#ifndef DSV3_SWIGLU_H
#define DSV3_SWIGLU_H

#include <stdint.h>

/* h[i] = a[i] / (1 + e^-a[i]) * b[i], in double. */
void dsv3_swiglu_forward(double *h, const double *a, const double *b, int64_t n);

/* With sg = sigma(a[i]): da[i] += dh[i] b[i] sg (1 + a[i] (1 - sg)); db[i] += dh[i] a[i] sg.
 * In double. */
void dsv3_swiglu_backward(double *da, double *db, const double *dh, const double *a,
                          const double *b, int64_t n);

/* The same two in float32 arithmetic where the CPU allows (see above). */
void dsv3_swiglu_forward_f32(double *h, const double *a, const double *b, int64_t n);
void dsv3_swiglu_backward_f32(double *da, double *db, const double *dh, const double *a,
                              const double *b, int64_t n);

#endif
