/* fp8_gemm.h — the row kernels of the three emulated FP8 GEMMs of a linear layer y = x W^T
 * (Fprop, Dgrad, Wgrad; docs/ARCHITECTURE.md "FP8 block scaling").
 *
 * Owns the arithmetic of one item of each GEMM — a block of 4 output rows, one token's input
 * gradient, one row of the weight gradient — and the choice between its AVX2+FMA and baseline
 * x86-64 builds (kernels/cpu/isa.h), which give the same bits. Does not own the recipe around it
 * (the E4M3 conversion, scales and quantizers, and the split of a GEMM into items on the pool:
 * model/train/fp8.h) or any buffer.
 *
 * Operands are exact E4M3 values as doubles with their FP32 scales, in the tilings of the recipe:
 * activations in 1x128 tiles, weights in 128x128 blocks, Wgrad's operands in 128x1 token tiles.
 * Accumulation ("double inside the chunk, then round"): a product of two E4M3 values is exact,
 * and so is the sum of 128 of them in double (products span 2^-18..2^17, 35 bits, plus 7 bits of
 * growth < 53), so a chunk sum does not depend on summation order. It is rounded once to FP32,
 * multiplied by (sA * sB) in FP32 and added into an FP32 accumulator in increasing chunk order,
 * every FP32 operation rounded on its own (the file is compiled with -ffp-contract=off). Results
 * are thus the same bits on any thread count, vector width and CPU.
 * Thread rules: no state; different items may run on several threads at once.
 */
#ifndef DSV3_FP8_GEMM_H
#define DSV3_FP8_GEMM_H

#include <stdint.h>

/* Tile and block edge of the FP8 recipe. */
#define DSV3_FP8_TILE 128

/* Fprop rows 4 rb .. 4 rb + 3 (fewer at the edge) of y [n, out], for every token:
 * y[m, r] = sum_c (sx[m, c] sW[r/128, c]) * sum_{k in c} x[m, k] W[r, k], x [n, in] with scales
 * sx [n, ceil(in/128)], W [out, in] with sW [ceil(out/128), ceil(in/128)]. Writes. */
void dsv3_fp8_fprop_rows(double *y, const double *x, const float *sx, const double *W,
                         const float *sW, int64_t n, int64_t in, int64_t out, int64_t rb);

/* Dgrad row m of dx [n, in]: dx[m, k] += sum_j (sdy[m, j] sW[j, k/128]) * sum_{r in j} dy[m, r]
 * W[r, k], dy [n, out] with sdy [n, ceil(out/128)]. ADDS. */
void dsv3_fp8_dgrad_token(double *dx, const double *dy, const float *sdy, const double *W,
                          const float *sW, int64_t in, int64_t out, int64_t m);

/* Wgrad row r of dW [out, in]: dW[r, k] += sum_t (sdy[t, r] sx[t, k]) * sum_{m in t} dy[m, r]
 * x[m, k], dy [n, out] with sdy [ceil(n/128), out] and x [n, in] with sx [ceil(n/128), in].
 * ADDS the FP32 accumulator with one rounding. */
void dsv3_fp8_wgrad_row(float *dW, const double *dy, const float *sdy, const double *x,
                        const float *sx, int64_t n, int64_t in, int64_t out, int64_t r);

#endif
