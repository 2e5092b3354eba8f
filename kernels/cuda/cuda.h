/* cuda.h — what the CUDA backend offers besides its dsv3_backend table (kernels/backend.h,
 * dsv3_backend_cuda): whether a usable device is present, a one-line description of it, and the
 * host-side planning of the FP8 block-scaled cuBLASLt product (docs/ARCHITECTURE.md, "CUDA
 * backend"). Declared in every build; defined only where DSV3_HAVE_CUDA is (kernels/cuda/). */
#ifndef DSV3_CUDA_H
#define DSV3_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when a supported device (compute capability 9.0: the code is built for sm_90a) is present
 * and cuBLAS starts on it; else 0 and one line in why (no driver, no device, wrong GPU). */
int dsv3_cuda_available(char *why, size_t why_len);

/* "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB, 1.2 GiB used by dsv3" (or the reason it is not
 * usable). */
void dsv3_cuda_describe(char *out, size_t len);

/* Device bytes held by bound weights, and by backend allocations (alloc). */
void dsv3_cuda_memory(uint64_t *weight_bytes, uint64_t *alloc_bytes);

/* Builds, checks and frees the cuBLASLt descriptors of the FP8 block-scaled product
 * out[n, rows] = x[n, cols] W^T: W E4M3 [rows, cols] with its stored 128x128 block scales
 * (CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F), x quantised to E4M3 in 1x128 tiles
 * (..._VEC128_32F, scales [ceil(cols/128), n]), FP32 compute and output, TN, fast accumulation
 * off. Needs no device. Returns 0, or -1 with the failing call in why. Also reports the scale
 * tensors' float counts (weight, activation) when the pointers are not NULL. */
int dsv3_cuda_fp8_plan(int64_t rows, int64_t cols, int64_t n, int64_t *w_scales, int64_t *x_scales,
                       char *why, size_t why_len);

#ifdef __cplusplus
}
#endif

#endif
