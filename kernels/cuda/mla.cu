/* mla.cu — the CUDA backend's attention (kernels/backend.h: mla_attend, mla_attend_chunk,
 * mla_naive; references kernels/cpu/cpu.c dsv3_cpu_mla_attend and kernels/cpu/mla_steps.c;
 * docs/ARCHITECTURE.md, "MLA", "Latent cache").
 *
 * One thread block per (query, head): the scores one warp per cached row (dot products reduced
 * across the warp), the softmax as the CPU's (max subtracted, expf, one reciprocal), then one
 * thread per output element summing p[t] * row[t] over t in ascending order — the CPU's order.
 * Probabilities go to the caller's p (mla_attend; mla_naive with `only`) or to device scratch.
 * Straightforward rather than fast: a split-KV decode schedule is future work. */
#include "kernels/cuda/cuda_internal.cuh"

namespace {

enum { THREADS = 256 };

/* Block sh = s * nh + h of a causal chunk (T = T0 + s keys), absorbed form: scores against the
 * latent rows [c | kpe], u[sh] = sum_t p[t] c[t]. */
__global__ void k_absorbed(float *u, float *pbuf, int64_t pstride, const float *qabs, const float *qpe,
                           int64_t qpe_stride, const float *c, const float *kpe, int64_t cs, int64_t nh, int64_t T0,
                           int64_t rkv, int64_t dr, float scale) {
    __shared__ float sh[33];
    const int64_t sh_i = blockIdx.x, s = sh_i / nh, T = T0 + s;
    const float *qa = qabs + sh_i * rkv, *qp = qpe + sh_i * qpe_stride;
    float *p = pbuf + sh_i * pstride;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int64_t t = wid; t < T; t += nw) {
        const float *ct = c + t * cs, *kt = kpe + t * cs;
        float a = 0.0f, b = 0.0f;
        for (int64_t i = lane; i < rkv; i += 32) a += qa[i] * ct[i];
        for (int64_t i = lane; i < dr; i += 32) b += qp[i] * kt[i];
        a = warp_sum(a);
        b = warp_sum(b);
        if (lane == 0) p[t] = (a + b) * scale;
    }
    __syncthreads();
    block_softmax(p, T, sh);
    float *uh = u + sh_i * rkv;
    for (int64_t i = threadIdx.x; i < rkv; i += blockDim.x) {
        float acc = 0.0f;
        for (int64_t t = 0; t < T; t++) acc += p[t] * c[t * cs + i];
        uh[i] = acc;
    }
}

/* Pair sh = s * nh + h of the naive form over expanded keys/values (kvfull [T, nh * (dn + dv)]). */
__global__ void k_naive(float *o, float *pbuf, int64_t pstride, const float *q, const float *kvfull,
                        const float *kpe, int64_t cs, int64_t nh, int64_t dn, int64_t dv, int64_t dr, int64_t pos0,
                        float scale, int64_t only) {
    __shared__ float sh[33];
    const int64_t sh_i = only >= 0 ? only : (int64_t)blockIdx.x, s = sh_i / nh, h = sh_i % nh, T = pos0 + s + 1;
    const int64_t dq = dn + dr, kvw = nh * (dn + dv);
    const float *qn = q + sh_i * dq, *qp = qn + dn;
    float *p = only >= 0 ? pbuf : pbuf + sh_i * pstride;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int64_t t = wid; t < T; t += nw) {
        const float *kt = kvfull + t * kvw + h * (dn + dv), *pt = kpe + t * cs;
        float a = 0.0f, b = 0.0f;
        for (int64_t i = lane; i < dn; i += 32) a += qn[i] * kt[i];
        for (int64_t i = lane; i < dr; i += 32) b += qp[i] * pt[i];
        a = warp_sum(a);
        b = warp_sum(b);
        if (lane == 0) p[t] = (a + b) * scale;
    }
    __syncthreads();
    block_softmax(p, T, sh);
    float *oh = o + s * nh * dv + h * dv;
    for (int64_t i = threadIdx.x; i < dv; i += blockDim.x) {
        float acc = 0.0f;
        for (int64_t t = 0; t < T; t++) acc += p[t] * kvfull[t * kvw + h * (dn + dv) + dn + i];
        oh[i] = acc;
    }
}

} // namespace

void dsv3_cuda_mla_attend(float *u, float *p, const float *qabs, const float *qpe, int64_t qpe_stride,
                          const float *c, const float *kpe, int64_t cs, int64_t nh, int64_t T, int64_t rkv,
                          int64_t dr, float scale) {
    if (nh <= 0 || T <= 0) return;
    k_absorbed<<<(unsigned)nh, THREADS>>>(u, p, T, qabs, qpe, qpe_stride, c, kpe, cs, nh, T, rkv, dr, scale);
    DSV3_CUDA_LAUNCHED("mla_attend");
}

void dsv3_cuda_mla_attend_chunk(const dsv3_backend *be, float *u, float *scratch, int64_t scratch_stride,
                                const float *qabs, const float *qpe, int64_t qpe_stride, const float *c,
                                const float *kpe, int64_t cs, int64_t nh, int64_t n, int64_t pos0,
                                int64_t rkv, int64_t dr, float scale) {
    (void)be, (void)scratch, (void)scratch_stride;
    if (n <= 0 || nh <= 0) return;
    const int64_t stride = pos0 + n;
    float *p = (float *)dsv3_cuda_scratch(SCR_ATTN, (size_t)(n * nh * stride) * sizeof(float));
    k_absorbed<<<(unsigned)(n * nh), THREADS>>>(u, p, stride, qabs, qpe, qpe_stride, c, kpe, cs, nh, pos0 + 1,
                                                 rkv, dr, scale);
    DSV3_CUDA_LAUNCHED("mla_attend_chunk");
}

void dsv3_cuda_mla_naive(const dsv3_backend *be, float *o, float *scratch, int64_t scratch_stride,
                         const float *q, const float *kvfull, const float *kpe, int64_t cs, int64_t nh,
                         int64_t dn, int64_t dv, int64_t dr, int64_t n, int64_t pos0, float scale,
                         int64_t only) {
    (void)be, (void)scratch_stride;
    if (only >= 0) { /* one pair; its probabilities stay in scratch[0..T) for the attention probe */
        k_naive<<<1, THREADS>>>(o, scratch, 0, q, kvfull, kpe, cs, nh, dn, dv, dr, pos0, scale, only);
        DSV3_CUDA_LAUNCHED("mla_naive");
        return;
    }
    if (n <= 0 || nh <= 0) return;
    const int64_t stride = pos0 + n;
    float *p = (float *)dsv3_cuda_scratch(SCR_ATTN, (size_t)(n * nh * stride) * sizeof(float));
    k_naive<<<(unsigned)(n * nh), THREADS>>>(o, p, stride, q, kvfull, kpe, cs, nh, dn, dv, dr, pos0, scale, -1);
    DSV3_CUDA_LAUNCHED("mla_naive");
}
