/* fast_attn.c — absorbed MLA attention of one query for a group of heads, AVX2/FMA (the
 * optimised backend's mla_attend; contract in kernels/backend.h).
 *
 * Every head of a query reads the same cached rows c[t] and k_pe[t] (the latent is shared by
 * the heads, as in multi-query attention), so the score pass walks the cache once with the heads
 * inside it. The sum pass keeps a 64-column slice of u[h] in registers while it streams
 * p[h, t] * c[t, slice]. exp is a polynomial (relative error ~1e-7): libm's expf per score cost
 * more than the dot products. Results agree with the reference to FP32 rounding.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/cpu/cpu_internal.h"

#define TGT __attribute__((target("avx2,fma")))
#define INL inline __attribute__((always_inline))

static INL TGT float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* e^x for x <= 0: x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-7 Taylor-like polynomial
 * (the Cephes expf coefficients), times 2^n built in the exponent field. x is clamped at -87 so
 * 2^n stays a normal float; e^-87 ~ 1.6e-38 is nothing next to the max term (which is 1). */
static INL TGT __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x); /* ln2 = hi + lo */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* p[0..T) = softmax(p) in place. */
static INL TGT void softmax(float *p, int64_t T) {
    __m256 vm = _mm256_set1_ps(-INFINITY);
    int64_t t = 0;
    for (; t + 8 <= T; t += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(p + t));
    float m[8], mx = -INFINITY;
    _mm256_storeu_ps(m, vm);
    for (int i = 0; i < 8; i++) mx = m[i] > mx ? m[i] : mx;
    for (; t < T; t++) mx = p[t] > mx ? p[t] : mx;
    const __m256 vmx = _mm256_set1_ps(mx);
    __m256 vs = _mm256_setzero_ps();
    for (t = 0; t + 8 <= T; t += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + t), vmx));
        _mm256_storeu_ps(p + t, e);
        vs = _mm256_add_ps(vs, e);
    }
    float sum = hsum8(vs);
    for (; t < T; t++) sum += (p[t] = expf(p[t] - mx));
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (t = 0; t + 8 <= T; t += 8) _mm256_storeu_ps(p + t, _mm256_mul_ps(_mm256_loadu_ps(p + t), inv));
    for (; t < T; t++) p[t] *= 1.0f / sum;
}

/* u[k0 .. k0 + 8 * NACC) = sum_t p[t] c[t, same columns]: NACC accumulators in registers. */
static INL TGT void sum_cols(int NACC, float *u, const float *p, const float *c, int64_t T,
                             int64_t rkv, int64_t k0) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < NACC; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t t = 0; t < T; t++) {
        const __m256 pv = _mm256_set1_ps(p[t]);
        const float *ct = c + t * rkv + k0;
#pragma GCC unroll 8
        for (int i = 0; i < NACC; i++) acc[i] = _mm256_fmadd_ps(pv, _mm256_loadu_ps(ct + 8 * i), acc[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < NACC; i++) _mm256_storeu_ps(u + k0 + 8 * i, acc[i]);
}

TGT void dsv3_fast_mla_attend(float *u, float *p, const float *qabs, const float *qpe,
                              int64_t qpe_stride, const float *c, const float *kpe, int64_t nh,
                              int64_t T, int64_t rkv, int64_t dr, float scale) {
    /* scores: the cache rows once, every head against them */
    for (int64_t t = 0; t < T; t++) {
        const float *ct = c + t * rkv, *kt = kpe + t * dr;
        for (int64_t h = 0; h < nh; h++) {
            const float *qa = qabs + h * rkv, *qp = qpe + h * qpe_stride;
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            int64_t k = 0, j = 0;
            for (; k + 16 <= rkv; k += 16) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qa + k), _mm256_loadu_ps(ct + k), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qa + k + 8), _mm256_loadu_ps(ct + k + 8), a1);
            }
            for (; k + 8 <= rkv; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qa + k), _mm256_loadu_ps(ct + k), a0);
            for (; j + 8 <= dr; j += 8) a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qp + j), _mm256_loadu_ps(kt + j), a1);
            float s = hsum8(_mm256_add_ps(a0, a1));
            for (; k < rkv; k++) s += qa[k] * ct[k];
            for (; j < dr; j++) s += qp[j] * kt[j];
            p[h * T + t] = s * scale;
        }
    }
    for (int64_t h = 0; h < nh; h++) {
        float *ph = p + h * T, *uh = u + h * rkv;
        softmax(ph, T);
        int64_t k0 = 0;
        for (; k0 + 64 <= rkv; k0 += 64) sum_cols(8, uh, ph, c, T, rkv, k0);
        if (k0 + 32 <= rkv) sum_cols(4, uh, ph, c, T, rkv, k0), k0 += 32;
        for (; k0 + 8 <= rkv; k0 += 8) sum_cols(1, uh, ph, c, T, rkv, k0);
        for (; k0 < rkv; k0++) {
            float a = 0.0f;
            for (int64_t t = 0; t < T; t++) a += ph[t] * c[t * rkv + k0];
            uh[k0] = a;
        }
    }
}
