/* fp8_plan.cu — the host-side plan of the FP8 block-scaled product on cuBLASLt (kernels/cuda/cuda.h,
 * dsv3_cuda_fp8_plan; docs/ARCHITECTURE.md, "CUDA backend", "FP8 block scaling").
 *
 * out[n, rows] = x[n, cols] W^T in cuBLASLt's column-major terms is D [rows x n] = op(A) B with
 * A = W (stored row-major [rows, cols] = column-major cols x rows, ld cols, op T) and B = x
 * (column-major cols x n, ld cols, op N): the TN layout FP8 requires. A's scale mode is
 * BLK128x128 (one FP32 per 128x128 block: weight_scale_inv as stored, [ceil(rows/128),
 * ceil(cols/128)] row-major), B's VEC128 (one FP32 per 128 inner elements of each token:
 * [ceil(cols/128), n]); compute FP32, D FP32, fast accumulation off. Creating descriptors and
 * layouts needs no device; the heuristic and the product do, and are not wired into the backend
 * yet (its products are the exact FP32 path of ops.cu). */
#include <cublasLt.h>
#include <stdio.h>

#include "kernels/cuda/cuda.h"

namespace {

int fail(char *why, size_t len, const char *call, cublasStatus_t st) {
    if (why && len) snprintf(why, len, "cuda: fp8 plan: %s failed (%s)", call, cublasLtGetStatusName(st));
    return -1;
}

} // namespace

extern "C" int dsv3_cuda_fp8_plan(int64_t rows, int64_t cols, int64_t n, int64_t *w_scales, int64_t *x_scales,
                                  char *why, size_t why_len) {
    if (rows <= 0 || cols <= 0 || n <= 0 || cols % 16) {
        if (why && why_len)
            snprintf(why, why_len, "cuda: fp8 plan: shape [%lld, %lld] x %lld tokens: FP8 needs positive sizes and "
                     "cols a multiple of 16", (long long)rows, (long long)cols, (long long)n);
        return -1;
    }
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    int rc = 0;
    cublasStatus_t st;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const cublasLtMatmulMatrixScale_t ma = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F,
                                      mb = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    const int8_t fast = 0;
#define TRY(call)                                                  \
    do {                                                           \
        if ((st = (call)) != CUBLAS_STATUS_SUCCESS) {              \
            rc = fail(why, why_len, #call, st);                    \
            goto done;                                             \
        }                                                          \
    } while (0)
    TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ma, sizeof ma));
    TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mb, sizeof mb));
    TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast));
    TRY(cublasLtMatrixLayoutCreate(&a, CUDA_R_8F_E4M3, (uint64_t)cols, (uint64_t)rows, cols));
    TRY(cublasLtMatrixLayoutCreate(&b, CUDA_R_8F_E4M3, (uint64_t)cols, (uint64_t)n, cols));
    TRY(cublasLtMatrixLayoutCreate(&d, CUDA_R_32F, (uint64_t)rows, (uint64_t)n, rows));
    {
        /* Read the scale modes back: the library accepted them. */
        cublasLtMatmulMatrixScale_t ga = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F, gb = ga;
        size_t got = 0;
        TRY(cublasLtMatmulDescGetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ga, sizeof ga, &got));
        TRY(cublasLtMatmulDescGetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &gb, sizeof gb, &got));
        if (ga != ma || gb != mb) {
            if (why && why_len) snprintf(why, why_len, "cuda: fp8 plan: scale modes read back as %d/%d", (int)ga, (int)gb);
            rc = -1;
            goto done;
        }
    }
    if (w_scales) *w_scales = ((rows + 127) / 128) * ((cols + 127) / 128);
    if (x_scales) *x_scales = ((cols + 127) / 128) * n;
done:
#undef TRY
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}
