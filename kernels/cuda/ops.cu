/* ops.cu — the CUDA backend's products and elementwise operations (kernels/backend.h; the
 * reference they must match is kernels/cpu/cpu.c and host_memory.c).
 *
 * Products, FP32 accumulation, weights decoded from their stored dtype exactly as the CPU
 * decodes them (cuda_internal.cuh, wload):
 * - up to GEMM_MIN_TOKENS tokens (decode, MTP, short chunks): k_matmul, one warp per output row,
 *   the row read once for up to TOK tokens — a bandwidth-bound GEMV;
 * - more tokens: the weight is decoded to FP32 in row slabs (k_decode) and multiplied by cuBLAS
 *   SGEMM (plain FP32, no TF32), so prefill runs on the tensor-core-free FP32 path with the
 *   same numbers as the CPU up to summation order;
 * - matmul_t (absorbed MLA): k_matmul_t, one thread per output column.
 */
#include <cublas_v2.h>

#include "kernels/cuda/cuda_internal.cuh"

namespace {

enum { TOK = 8, ROWS_PER_BLOCK = 4, GEMM_MIN_TOKENS = 16 };
const int64_t DECODE_MAX_FLOATS = (int64_t)32 << 20; /* FP32 slab of a decoded weight: 128 MiB */

__global__ void k_matmul(float *out, const float *x, wdev w, int64_t n) {
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    if (r >= w.rows) return;
    const int64_t C = w.cols;
    for (int64_t s0 = (int64_t)blockIdx.y * TOK; s0 < n; s0 += (int64_t)gridDim.y * TOK) {
        const int ns = n - s0 < TOK ? (int)(n - s0) : TOK;
        float acc[TOK];
#pragma unroll
        for (int s = 0; s < TOK; s++) acc[s] = 0.0f;
        for (int64_t c = lane; c < C; c += 32) {
            const float wv = wload(w, r, c);
#pragma unroll
            for (int s = 0; s < TOK; s++)
                if (s < ns) acc[s] += wv * x[(s0 + s) * C + c];
        }
#pragma unroll
        for (int s = 0; s < TOK; s++) {
            const float v = warp_sum(acc[s]);
            if (lane == 0 && s < ns) out[(s0 + s) * w.rows + r] = v;
        }
    }
}

/* dst[i, c] = W[r0 + i, c] for i < nr. */
__global__ void k_decode(float *dst, wdev w, int64_t r0, int64_t nr) {
    const int64_t total = nr * w.cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = wload(w, r0 + i / w.cols, i % w.cols);
}

/* out[s, c] = sum_r x[s, r] W[r, c], r ascending (the CPU's order). */
__global__ void k_matmul_t(float *out, const float *x, wdev w, int64_t n) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= w.cols) return;
    for (int64_t s = blockIdx.y; s < n; s += gridDim.y) {
        float acc = 0.0f;
        for (int64_t r = 0; r < w.rows; r++) acc += x[s * w.rows + r] * wload(w, r, c);
        out[s * w.cols + c] = acc;
    }
}

/* out[s, c] = W[ids ? ids[s] : r, c]. */
__global__ void k_rows(float *out, wdev w, const int32_t *ids, int64_t r, int64_t n) {
    for (int64_t s = blockIdx.y; s < n; s += gridDim.y) {
        const int64_t row = ids ? ids[s] : r;
        for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < w.cols; c += (int64_t)gridDim.x * blockDim.x)
            out[s * w.cols + c] = wload(w, row, c);
    }
}

/* One row per block; the mean of squares in double, rounded once (docs/ARCHITECTURE.md,
 * "RMSNorm"). out may alias x: each thread reads its own elements before writing them. */
__global__ void k_rmsnorm(float *out, int64_t out_stride, const float *x, int64_t x_stride, const float *g,
                          int64_t dim, float eps) {
    __shared__ double sh[33];
    const float *xs = x + blockIdx.x * x_stride;
    float *os = out + blockIdx.x * out_stride;
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += (double)xs[i] * xs[i];
    ss = block_sum_d(ss, sh);
    const float inv = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) os[i] = g[i] * (xs[i] * inv);
}

__global__ void k_rope(float *x, int64_t n, int64_t nvec, int64_t half, int64_t tok_stride, int64_t vec_stride,
                       int64_t pos0, const float *inv_freq, float factor) {
    const int64_t total = n * half * nvec;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t v = i % nvec, k = (i / nvec) % half, s = i / (nvec * half);
        const double ang = (double)(pos0 + s) * (double)inv_freq[k];
        const float cs = (float)cos(ang) * factor, sn = (float)sin(ang) * factor;
        float *p = x + s * tok_stride + v * vec_stride + 2 * k;
        const float a = p[0], b = p[1];
        p[0] = a * cs - b * sn;
        p[1] = a * sn + b * cs;
    }
}

__global__ void k_silu_mul(float *g, const float *u, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

__global__ void k_add(float *x, const float *y, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] += y[i];
}

unsigned grid1(int64_t n) {
    const int64_t b = (n + 255) / 256;
    return (unsigned)(b < 65536 ? (b > 0 ? b : 1) : 65536);
}

} // namespace

void dsv3_cuda_rope(float *x, int64_t n, int64_t nvec, int64_t d, int64_t tok_stride, int64_t vec_stride,
                    int64_t pos0, const float *inv_freq, float factor) {
    const int64_t total = n * nvec * (d / 2);
    if (total <= 0) return;
    k_rope<<<grid1(total), 256>>>(x, n, nvec, d / 2, tok_stride, vec_stride, pos0, inv_freq, factor);
    DSV3_CUDA_LAUNCHED("rope");
}

void dsv3_cuda_matmul(float *out, const float *x, const dsv3_weight *w, int64_t n) {
    if (n <= 0 || w->rows <= 0) return;
    const wdev d = dsv3_cuda_weight(w, "matmul");
    if (n < GEMM_MIN_TOKENS || w->cols <= 0) {
        const int64_t tb = (n + TOK - 1) / TOK;
        const dim3 grid(blocks_for(w->rows, ROWS_PER_BLOCK), (unsigned)(tb < 65535 ? tb : 65535));
        k_matmul<<<grid, 32 * ROWS_PER_BLOCK>>>(out, x, d, n);
        DSV3_CUDA_LAUNCHED("matmul");
        return;
    }
    /* out^T [R, n] (column-major, ld R) = W [R, C] (row-major = column-major C x R, transposed)
     * times x^T (column-major C x n, ld C). */
    int64_t slab = DECODE_MAX_FLOATS / w->cols;
    if (slab < 1) slab = 1;
    if (slab > w->rows) slab = w->rows;
    float *wf = (float *)dsv3_cuda_scratch(SCR_DECODE, (size_t)(slab * w->cols) * sizeof(float));
    cublasHandle_t h = (cublasHandle_t)dsv3_cuda_cublas();
    const float one = 1.0f, zero = 0.0f;
    for (int64_t r0 = 0; r0 < w->rows; r0 += slab) {
        const int64_t nr = w->rows - r0 < slab ? w->rows - r0 : slab;
        k_decode<<<grid1(nr * w->cols), 256>>>(wf, d, r0, nr);
        DSV3_CUDA_LAUNCHED("matmul (decode)");
        const cublasStatus_t st = cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)nr, (int)n, (int)w->cols, &one, wf,
                                              (int)w->cols, x, (int)w->cols, &zero, out + r0, (int)w->rows);
        if (st != CUBLAS_STATUS_SUCCESS) {
            fprintf(stderr, "cuda: matmul: cublasSgemm failed (status %d)\n", (int)st);
            abort();
        }
    }
}

void dsv3_cuda_matmul_many(const dsv3_matmul_op *ops, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        if (ops[i].trans) dsv3_cuda_matmul_t(ops[i].out, ops[i].x, ops[i].w, ops[i].n);
        else dsv3_cuda_matmul(ops[i].out, ops[i].x, ops[i].w, ops[i].n);
    }
}

void dsv3_cuda_matmul_t(float *out, const float *x, const dsv3_weight *w, int64_t n) {
    if (n <= 0 || w->cols <= 0) return;
    const wdev d = dsv3_cuda_weight(w, "matmul_t");
    const dim3 grid(blocks_for(w->cols, 128), (unsigned)(n < 65535 ? n : 65535));
    k_matmul_t<<<grid, 128>>>(out, x, d, n);
    DSV3_CUDA_LAUNCHED("matmul_t");
}

void dsv3_cuda_row(float *out, const dsv3_weight *w, int64_t r) {
    const wdev d = dsv3_cuda_weight(w, "row");
    k_rows<<<dim3(blocks_for(w->cols, 256), 1), 256>>>(out, d, nullptr, r, 1);
    DSV3_CUDA_LAUNCHED("row");
}

void dsv3_cuda_embed(float *out, const dsv3_weight *w, const int32_t *ids, int64_t n) {
    if (n <= 0) return;
    const wdev d = dsv3_cuda_weight(w, "embed");
    k_rows<<<dim3(blocks_for(w->cols, 256), (unsigned)(n < 65535 ? n : 65535)), 256>>>(out, d, ids, 0, n);
    DSV3_CUDA_LAUNCHED("embed");
}

void dsv3_cuda_rmsnorm(float *out, const float *x, const float *g, int64_t n, int64_t dim, float eps) {
    if (n <= 0) return;
    k_rmsnorm<<<(unsigned)n, 256>>>(out, dim, x, dim, g, dim, eps); /* n <= 2^31 - 1 rows */
    DSV3_CUDA_LAUNCHED("rmsnorm");
}

void dsv3_cuda_mla_store(const dsv3_backend *be, float *c, float *kpe, int64_t cs, const float *kva, int64_t n,
                         int64_t pos0, const float *norm, float eps, int64_t rkv, int64_t dr,
                         const float *inv_freq, float factor) {
    (void)be;
    if (n <= 0) return;
    k_rmsnorm<<<(unsigned)n, 256>>>(c + pos0 * cs, cs, kva, rkv + dr, norm, rkv, eps);
    DSV3_CUDA_LAUNCHED("mla_store");
    dsv3_cuda_copy2d(kpe + pos0 * cs, cs, kva + rkv, rkv + dr, n, dr);
    dsv3_cuda_rope(kpe + pos0 * cs, n, 1, dr, cs, dr, pos0, inv_freq, factor);
}

void dsv3_cuda_silu_mul(float *g, const float *u, int64_t n) {
    if (n <= 0) return;
    k_silu_mul<<<grid1(n), 256>>>(g, u, n);
    DSV3_CUDA_LAUNCHED("silu_mul");
}

void dsv3_cuda_add(float *x, const float *y, int64_t n) {
    if (n <= 0) return;
    k_add<<<grid1(n), 256>>>(x, y, n);
    DSV3_CUDA_LAUNCHED("add");
}

void dsv3_cuda_copy2d(float *dst, int64_t dst_stride, const float *src, int64_t src_stride, int64_t rows,
                      int64_t width) {
    if (rows <= 0 || width <= 0) return;
    dsv3_cuda_check(cudaMemcpy2DAsync(dst, (size_t)dst_stride * 4, src, (size_t)src_stride * 4, (size_t)width * 4,
                                      (size_t)rows, cudaMemcpyDeviceToDevice, 0),
                    "copy2d");
}
