/* cuda_internal.cuh — what the files of the CUDA backend share (kernels/cuda only): the device
 * form of a weight, its element decoder, the resolution of host weight addresses to their bound
 * device copies, grow-only scratch buffers, launch checks and block reductions. */
#ifndef DSV3_CUDA_INTERNAL_CUH
#define DSV3_CUDA_INTERNAL_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "kernels/backend.h"
}

/* A weight as a kernel sees it: device pointers, the view's shape and first stored row. */
struct wdev {
    const void *data;
    const float *scale; /* F8_E4M3: the stored tensor's [ceil(R/128), scols] multipliers */
    int dtype;          /* dsv3_dtype */
    int64_t rows, cols, row0, scols;
};

/* E4M3FN byte -> float, exactly (docs/ARCHITECTURE.md, "FP8 E4M3"): what dsv3_e4m3_table holds. */
__device__ __forceinline__ float dsv3_e4m3(uint8_t b) {
    const int e = (b >> 3) & 15, m = b & 7;
    float v;
    if (e == 15 && m == 7) v = __int_as_float(0x7fc00000);
    else if (e == 0) v = ldexpf((float)m, -9);
    else v = ldexpf((float)(8 + m), e - 10);
    return (b & 0x80) ? -v : v;
}

/* W[r, c] of the view in float32, decoded as kernels/cpu/cpu.c decode_span does. */
__device__ __forceinline__ float wload(const wdev &w, int64_t r, int64_t c) {
    const int64_t off = r * w.cols + c;
    switch (w.dtype) {
    case DSV3_DT_F32:
        return ((const float *)w.data)[off];
    case DSV3_DT_BF16:
        return __uint_as_float((uint32_t)((const uint16_t *)w.data)[off] << 16);
    case DSV3_DT_F16:
        return __half2float(__ushort_as_half(((const unsigned short *)w.data)[off]));
    case DSV3_DT_F8_E4M3:
        return dsv3_e4m3(((const uint8_t *)w.data)[off]) * w.scale[((w.row0 + r) >> 7) * w.scols + (c >> 7)];
    default:
        return 0.0f;
    }
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

/* Block-wide reductions (blockDim.x a multiple of 32, at most 1024); every thread gets the result. */
__device__ __forceinline__ float block_max(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float m = sh[0];
        for (int i = 1; i < nw; i++) m = fmaxf(m, sh[i]);
        sh[32] = m;
    }
    __syncthreads();
    return sh[32];
}
__device__ __forceinline__ float block_sum(float v, float *sh) {
    v = warp_sum(v);
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (int i = 0; i < nw; i++) s += sh[i];
        sh[32] = s;
    }
    __syncthreads();
    return sh[32];
}
/* In-place softmax of p[0..T) by the whole block: max subtracted, expf, one division (the CPU
 * reference's formula, dsv3_softmax_f32); p is complete for every thread on return. */
__device__ __forceinline__ void block_softmax(float *p, int64_t T, float *sh) {
    float mx = -INFINITY;
    for (int64_t t = threadIdx.x; t < T; t += blockDim.x) mx = fmaxf(mx, p[t]);
    mx = block_max(mx, sh);
    float sum = 0.0f;
    for (int64_t t = threadIdx.x; t < T; t += blockDim.x) sum += (p[t] = expf(p[t] - mx));
    sum = block_sum(sum, sh);
    const float inv = 1.0f / sum;
    for (int64_t t = threadIdx.x; t < T; t += blockDim.x) p[t] *= inv;
    __syncthreads();
}
__device__ __forceinline__ double block_sum_d(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0.0;
        for (int i = 0; i < nw; i++) s += sh[i];
        sh[32] = s;
    }
    __syncthreads();
    return sh[32];
}

/* ---- host side (kernels/cuda/memory.cu) ---- */

/* Aborts with "cuda: what: message" when e is an error (the operations return nothing, and a
 * failed kernel leaves no result to go on with). */
void dsv3_cuda_check(cudaError_t e, const char *what);
/* Checks the last launch. */
#define DSV3_CUDA_LAUNCHED(what) dsv3_cuda_check(cudaGetLastError(), (what))

/* The device copy of a weight (data and scales resolved through the bound ranges); aborts
 * naming op when the weight's bytes were never bound. */
wdev dsv3_cuda_weight(const dsv3_weight *w, const char *op);

/* Grow-only device scratch buffer number slot (< 8), at least bytes long; lives until exit. */
enum { SCR_ATTN, SCR_ROUTE, SCR_MOE, SCR_DESC, SCR_DECODE, SCR_COUNT };
void *dsv3_cuda_scratch(int slot, size_t bytes);

/* The cuBLAS handle (created with the device). */
void *dsv3_cuda_cublas(void);

/* The operations of the table (table.cu), by file. memory.cu: */
void *dsv3_cuda_alloc(size_t bytes);
void dsv3_cuda_free(void *p);
void dsv3_cuda_upload(void *dst, const void *src, size_t bytes);
void dsv3_cuda_download(void *dst, const void *src, size_t bytes);
void dsv3_cuda_stats(dsv3_transfer_stats *out);
dsv3_status dsv3_cuda_bind(const void *host, size_t bytes, dsv3_err *err);
void dsv3_cuda_unbind(const void *host);
/* ops.cu: */
void dsv3_cuda_matmul(float *out, const float *x, const dsv3_weight *w, int64_t n);
void dsv3_cuda_matmul_many(const dsv3_matmul_op *ops, int64_t count);
void dsv3_cuda_matmul_t(float *out, const float *x, const dsv3_weight *w, int64_t n);
void dsv3_cuda_row(float *out, const dsv3_weight *w, int64_t r);
void dsv3_cuda_rmsnorm(float *out, const float *x, const float *g, int64_t n, int64_t dim, float eps);
void dsv3_cuda_rope(float *x, int64_t n, int64_t nvec, int64_t d, int64_t tok_stride, int64_t vec_stride,
                    int64_t pos0, const float *inv_freq, float factor);
void dsv3_cuda_silu_mul(float *g, const float *u, int64_t n);
void dsv3_cuda_embed(float *out, const dsv3_weight *w, const int32_t *ids, int64_t n);
void dsv3_cuda_add(float *x, const float *y, int64_t n);
void dsv3_cuda_copy2d(float *dst, int64_t dst_stride, const float *src, int64_t src_stride, int64_t rows,
                      int64_t width);
/* mla.cu: */
void dsv3_cuda_mla_attend(float *u, float *p, const float *qabs, const float *qpe, int64_t qpe_stride,
                          const float *c, const float *kpe, int64_t cs, int64_t nh, int64_t T, int64_t rkv,
                          int64_t dr, float scale);
void dsv3_cuda_mla_store(const dsv3_backend *be, float *c, float *kpe, int64_t cs, const float *kva, int64_t n,
                         int64_t pos0, const float *norm, float eps, int64_t rkv, int64_t dr,
                         const float *inv_freq, float factor);
void dsv3_cuda_mla_attend_chunk(const dsv3_backend *be, float *u, float *scratch, int64_t scratch_stride,
                                const float *qabs, const float *qpe, int64_t qpe_stride, const float *c,
                                const float *kpe, int64_t cs, int64_t nh, int64_t n, int64_t pos0,
                                int64_t rkv, int64_t dr, float scale);
void dsv3_cuda_mla_naive(const dsv3_backend *be, float *o, float *scratch, int64_t scratch_stride,
                         const float *q, const float *kvfull, const float *kpe, int64_t cs, int64_t nh,
                         int64_t dn, int64_t dv, int64_t dr, int64_t n, int64_t pos0, float scale,
                         int64_t only);
/* moe.cu: */
void dsv3_cuda_moe_route(const dsv3_backend *be, int32_t *idx, float *w, float *record, const float *logits,
                         int64_t n, int64_t pos0, const dsv3_route_params *p, const float *bias,
                         const unsigned char *disabled, const int32_t *forced, int64_t forced_pos);
void dsv3_cuda_moe_experts(const dsv3_backend *be, float *out, const float *xn, const int32_t *idx,
                           const float *w, int64_t n, int64_t H, int64_t K, int64_t E, int64_t F,
                           const dsv3_ffn_weights *experts, const dsv3_ffn_weights *shared, int64_t Fs,
                           const dsv3_moe_scratch *s);

/* Grid size for n items of `per` per block. */
static inline unsigned blocks_for(int64_t n, int per) {
    return (unsigned)((n + per - 1) / per);
}

#endif
