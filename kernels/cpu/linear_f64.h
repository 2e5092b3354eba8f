/* linear_f64.h — the trainer's double-precision linear layer y = x W^T and its two gradients,
 * for float32 weights and double activations, one block of outputs at a time
 * (docs/ARCHITECTURE.md "Training"; model/train/ops.c splits a product into blocks on the pool).
 *
 * Owns the arithmetic of one block and the choice of its code: on CPUs with AVX2+FMA
 * (kernels/cpu/isa.h) a full 4-row / 4-token block runs a register-blocked kernel (4 doubles per
 * instruction, fused multiply-add, weights widened from float in registers); edges and other CPUs
 * run portable loops. The choice depends only on the CPU, and every output element is summed by
 * one call in a fixed order, so results are reproducible on a machine and independent of the
 * thread count. Does not own threads, workspaces or the float32 path (kernels/cpu/gemm.h).
 * Shapes: x [n, in], W [out, in], y and dy [n, out], dx [n, in], dW [out, in], all row-major.
 * Thread rules: no state; calls for different blocks may run on several threads at once.
 */
#ifndef DSV3_LINEAR_F64_H
#define DSV3_LINEAR_F64_H

#include <stdint.h>

/* Adds a double into a float gradient with one rounding: how every double sum of the trainer
 * reaches a float32 gradient. */
static inline void dsv3_add_f32(float *g, double d) {
    *g = (float)((double)*g + d);
}

/* y[s, r] = sum_c x[s, c] W[r, c] for rows r0..r0+3 (fewer at the edge) and every token s.
 * Writes. */
void dsv3_linear_f64_forward_rows(double *y, const double *x, const float *W, int64_t n,
                                  int64_t in, int64_t out, int64_t r0);

/* dx[s, c] += sum_r dy[s, r] W[r, c] for tokens s0..s0+3 (fewer at the edge); the sum over r
 * runs in order and is added to dx once per element on the AVX2 path. */
void dsv3_linear_f64_dx_tokens(double *dx, const double *dy, const float *W, int64_t n,
                               int64_t in, int64_t out, int64_t s0);

/* dW[r, c] += sum_s dy[s, r] x[s, c] for rows r0..r0+3 (fewer at the edge): summed in double over
 * all tokens in order, then added to the float gradient with one rounding. */
void dsv3_linear_f64_dw_rows(float *dW, const double *dy, const double *x, int64_t n,
                             int64_t in, int64_t out, int64_t r0);

#endif
