/* fp8.h — the FP8 recipe of DeepSeek-V3 training, emulated exactly on the CPU
 * (docs/ARCHITECTURE.md, "FP8 training"; usage in docs/TRAINING.md, "FP8 mixed precision").
 *
 * Owns: the FP32 -> E4M3 conversion (round to nearest even, saturating, as the GPU's
 * cvt.rn.satfinite), the scale convention (amax over a tile, floor 1e-4, s = amax / 448, or
 * its power-of-two round-up), the quantizers for 1x128 activation tiles, 128x1 token tiles
 * and 128x128 weight blocks, and the three GEMMs of a linear layer y = x W^T (Fprop, Dgrad,
 * Wgrad) with the operand tilings of "FP8 training" and FP32 accumulation promoted every 128
 * elements of the contraction (promotion). Does not own which layers run in FP8
 * (model/train/trainable decides) or where the buffers live (the caller's workspace).
 *
 * Accumulation (docs/ARCHITECTURE.md, "FP8 training": double inside the chunk, then round): a
 * product of two E4M3 values is exact, and so is the sum of 128 of them in double (products span
 * 2^-18..2^17, 35 bits, plus 7 bits of growth < 53), so the chunk sum does not depend on summation
 * order. It is rounded once to FP32, multiplied by (sA * sB) in FP32 and added into an FP32
 * accumulator in increasing chunk order. The results are thus reproducible bit for bit on any
 * thread count and vector width; a GPU's tensor-core chunk sums are not exact, so CUDA output
 * is compared with these within the tolerance that section states.
 *
 * Thread rules: no state; the GEMMs run their items on the worker pool (kernels/pool.h).
 */
#ifndef DSV3_FP8_H
#define DSV3_FP8_H

#include <stdint.h>

#include "kernels/cpu/fp8_gemm.h" /* DSV3_FP8_TILE, the tile and block edge of the recipe */

/* The largest finite E4M3 value. */
#define DSV3_FP8_MAX 448.0f

/* docs/ARCHITECTURE.md, "FP8 E4M3": FP32 -> E4M3FN code; NaN -> 0x7F with the sign,
 * |x| >= 448 -> 0x7E with the sign. */
uint8_t dsv3_fp8_encode(float x);

/* "FP8 training" (docs/ARCHITECTURE.md): the dequantization scale of a tile whose max |value| is
 * amax: s = max(amax, 1e-4) / 448 (IEEE division), or with pow2 set its power-of-two round-up
 * 2^ceil(log2(s)) taken from the FP32 bits. */
float dsv3_fp8_scale(float amax, int pow2);

/* Quantizes rows of x [n, k] in 1x128 tiles along k (the last tile of a row may be shorter;
 * it counts as zero-padded): q [n, k] E4M3 codes, s [n, ceil(k/128)]. x is rounded to FP32
 * first (the recipe quantizes FP32/BF16 activations). */
void dsv3_fp8_quant_rows(uint8_t *q, float *s, const double *x, int64_t n, int64_t k, int pow2);

/* Quantizes x [n, k] in 128x1 tiles along n (the token dimension, for Wgrad): q [n, k],
 * s [ceil(n/128), k]. */
void dsv3_fp8_quant_cols(uint8_t *q, float *s, const double *x, int64_t n, int64_t k, int pow2);

/* Quantizes w [rows, cols] in 128x128 blocks (ragged at the edges): q [rows, cols],
 * s [ceil(rows/128), ceil(cols/128)] — the checkpoint's weight_scale_inv layout. */
void dsv3_fp8_quant_blocks(uint8_t *q, float *s, const float *w, int64_t rows, int64_t cols);

/* The exact E4M3 values of codes q [n] (unscaled), as doubles: the GEMMs' operands. */
void dsv3_fp8_values(double *v, const uint8_t *q, int64_t n);

/* The GEMMs take operands as exact E4M3 values (dsv3_fp8_values) plus their scales.
 *
 * Fprop, y = x W^T: y[m, r] = sum_c (sx[m, c] sW[r/128, c]) * sum_{k in c} x[m, k] W[r, k]
 * for x [n, in] in 1x128 tiles and W [out, in] in 128x128 blocks. Writes y [n, out] (the FP32
 * accumulator, widened). */
void dsv3_fp8_gemm_fprop(double *y, const double *x, const float *sx, const double *W,
                         const float *sW, int64_t n, int64_t in, int64_t out);

/* Dgrad, dx = dy W: dx[m, k] += sum_j (sdy[m, j] sW[j, k/128]) * sum_{r in j} dy[m, r] W[r, k]
 * for dy [n, out] in 1x128 tiles along out and the same weight blocks. ADDS into dx [n, in]. */
void dsv3_fp8_gemm_dgrad(double *dx, const double *dy, const float *sdy, const double *W,
                         const float *sW, int64_t n, int64_t in, int64_t out);

/* Wgrad, dW = dy^T x: dW[r, k] += sum_t (sdy[t, r] sx[t, k]) * sum_{m in t} dy[m, r] x[m, k]
 * for dy [n, out] and x [n, in] both in 128x1 token tiles (dsv3_fp8_quant_cols). ADDS the FP32
 * accumulator into dW [out, in] with one rounding. */
void dsv3_fp8_gemm_wgrad(float *dW, const double *dy, const float *sdy, const double *x,
                         const float *sx, int64_t n, int64_t in, int64_t out);

/* Dequantizes the codes of dsv3_fp8_quant_rows back into x (x[m, k] = e4m3(q) * s in FP32):
 * the activation as the FP8 cache holds it. */
void dsv3_fp8_dequant_rows(double *x, const uint8_t *q, const float *s, int64_t n, int64_t k);

#endif
