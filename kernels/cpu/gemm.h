/* gemm.h — the trainer's float32 matrix product: C = A B or C += A B, with A and B read
 * from strided views of double or float arrays.
 *
 * Why: the trainer keeps its activations in double (for the finite-difference checks of
 * docs/ARCHITECTURE.md, "Gradients"), and a double product uses 4 lanes per AVX2 instruction. The float32
 * compute path (dsv3_trainable_set_precision(tm, 32)) runs its products here instead: both operands
 * are converted to float once while being packed into panels (A in 6-row strips, B in 16-column
 * panels, as llm.c/BLIS-style kernels do), and a 6x16 register-blocked FMA micro-kernel sums
 * over k in order. Each output element is summed by one thread in a fixed order, so results do
 * not depend on the thread count (docs/ARCHITECTURE.md, "Determinism"); they depend on the CPU (AVX2+FMA
 * kernel or the portable loop, chosen at run time).
 *
 * Large products run in blocks (at most 1536 x 2048 of A and 2048 x 2048 of B packed at a
 * time), so the workspace stays bounded (<= ~7.3M floats) whatever the sizes.
 * Does not own its workspace: the caller passes dsv3_gemm_ws_floats(M, N, K) floats.
 * Thread rules: runs parallel work on the worker pool (kernels/pool.h); call from one thread.
 */
#ifndef DSV3_TRAIN_GEMM_H
#define DSV3_TRAIN_GEMM_H

#include <stdint.h>

/* A read-only matrix view: element (r, c) is at p[r * rs + c * cs], double when f64 is set,
 * float otherwise. A transpose is the same array with rs and cs swapped. */
typedef struct {
    const void *p;
    int f64;
    int64_t rs, cs;
} dsv3_mview;

/* What the product does with C. */
typedef enum {
    DSV3_GEMM_SET_F64, /* C (double) = A B */
    DSV3_GEMM_ADD_F64, /* C (double) += A B */
    DSV3_GEMM_ADD_F32, /* C (float)  += A B (one float rounding per element) */
} dsv3_gemm_mode;

/* Floats of workspace dsv3_gemm needs for these sizes (the packed A and B). */
int64_t dsv3_gemm_ws_floats(int64_t M, int64_t N, int64_t K);

/* C[M, N] (row-major, leading dimension ldc) op= A[M, K] B[K, N], summed in float32.
 * ws holds at least dsv3_gemm_ws_floats(M, N, K) floats. M, N or K of 0: C is set to zero
 * (SET) or left as it is (ADD). */
void dsv3_gemm(void *C, int64_t ldc, dsv3_gemm_mode mode, dsv3_mview A, dsv3_mview B, int64_t M,
               int64_t N, int64_t K, float *ws);

#endif
