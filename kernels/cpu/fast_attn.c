/* fast_attn.c — absorbed MLA attention of one query for a group of heads, AVX2/FMA (the
 * optimised backend's mla_attend; contract in kernels/backend.h).
 *
 * Every head of a query reads the same cached rows c[t] and k_pe[t] (the latent is shared by
 * the heads, as in multi-query attention), so the score pass walks the cache once, 8 rows at a
 * time with the heads inside. The sum pass keeps a 64-column slice of u[h] in registers while it streams
 * p[h, t] * c[t, slice]. exp is a polynomial (relative error ~1e-7): libm's expf per score cost
 * more than the dot products. Results agree with the reference to FP32 rounding.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/simd_exp.h"

static INL DSV3_ISA_F16C float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* p[0..T) = softmax(p) in place. */
static INL DSV3_ISA_F16C void softmax(float *p, int64_t T) {
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

/* u[k0 .. k0 + 8 * NACC) = sum_t p[t] c[t, same columns] (row t at c + t * cs): NACC accumulators in registers. With
 * four or fewer (a latent of <= 32 columns, like the demo's) even and odd rows go into two sets:
 * one set would wait out the FMA latency on every row (4 cycles a row instead of ~2). */
static INL DSV3_ISA_F16C void sum_cols(int NACC, float *u, const float *p, const float *c,
                                       int64_t T, int64_t cs, int64_t k0) {
    __m256 acc[8], odd[8];
#pragma GCC unroll 8
    for (int i = 0; i < NACC; i++) acc[i] = odd[i] = _mm256_setzero_ps();
    int64_t t = 0;
    if (NACC <= 4) {
        for (; t + 2 <= T; t += 2) {
            const __m256 p0 = _mm256_set1_ps(p[t]), p1 = _mm256_set1_ps(p[t + 1]);
            const float *c0 = c + t * cs + k0, *c1 = c0 + cs;
#pragma GCC unroll 8
            for (int i = 0; i < NACC; i++) {
                acc[i] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(c0 + 8 * i), acc[i]);
                odd[i] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(c1 + 8 * i), odd[i]);
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < NACC; i++) acc[i] = _mm256_add_ps(acc[i], odd[i]);
    }
    for (; t < T; t++) {
        const __m256 pv = _mm256_set1_ps(p[t]);
        const float *ct = c + t * cs + k0;
#pragma GCC unroll 8
        for (int i = 0; i < NACC; i++) acc[i] = _mm256_fmadd_ps(pv, _mm256_loadu_ps(ct + 8 * i), acc[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < NACC; i++) _mm256_storeu_ps(u + k0 + 8 * i, acc[i]);
}

/* r[k] = sum of the 8 lanes of a[k], k < 8 (horizontal adds, then the two 128-bit halves). */
static INL DSV3_ISA_F16C __m256 hsum8x8(const __m256 a[8]) {
    const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* The 8 unscaled scores q_abs . c[t] + q_pe . k_pe[t] of one head for rows t = 0..7 of c/kpe
 * (row t at c + t * cs, kpe + t * cs):
 * the query is read in 32-float slices held in registers across the 8 rows, one accumulator per
 * row, and the 8 sums come out together (no horizontal add per score). */
static INL DSV3_ISA_F16C __m256 scores8(const float *qa, const float *qp, const float *c,
                                        const float *kpe, int64_t cs, int64_t rkv, int64_t dr) {
    __m256 acc[8];
    float tail[8] = {0};
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) acc[t] = _mm256_setzero_ps();
    for (int part = 0; part < 2; part++) { /* the latent part, then the RoPE part */
        const float *q = part ? qp : qa, *m = part ? kpe : c;
        const int64_t w = part ? dr : rkv, w8 = w / 8 * 8;
        int64_t k = 0;
        for (; k + 32 <= w8; k += 32) {
            const __m256 q0 = _mm256_loadu_ps(q + k), q1 = _mm256_loadu_ps(q + k + 8);
            const __m256 q2 = _mm256_loadu_ps(q + k + 16), q3 = _mm256_loadu_ps(q + k + 24);
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++) {
                const float *mt = m + t * cs + k;
                __m256 a = _mm256_fmadd_ps(q0, _mm256_loadu_ps(mt), acc[t]);
                a = _mm256_fmadd_ps(q1, _mm256_loadu_ps(mt + 8), a);
                a = _mm256_fmadd_ps(q2, _mm256_loadu_ps(mt + 16), a);
                acc[t] = _mm256_fmadd_ps(q3, _mm256_loadu_ps(mt + 24), a);
            }
        }
        for (; k < w8; k += 8) {
            const __m256 q0 = _mm256_loadu_ps(q + k);
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++) acc[t] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(m + t * cs + k), acc[t]);
        }
        for (; k < w; k++)
            for (int t = 0; t < 8; t++) tail[t] += q[k] * m[t * cs + k];
    }
    return _mm256_add_ps(hsum8x8(acc), _mm256_loadu_ps(tail));
}

DSV3_ISA_F16C void dsv3_fast_mla_attend(float *u, float *p, const float *qabs, const float *qpe,
                              int64_t qpe_stride, const float *c, const float *kpe, int64_t cs,
                              int64_t nh, int64_t T, int64_t rkv, int64_t dr, float scale) {
    /* scores: blocks of 8 cached rows, every head against them while they sit in L1 */
    const int64_t T8 = T / 8 * 8;
    for (int64_t t0 = 0; t0 < T8; t0 += 8)
        for (int64_t h = 0; h < nh; h++)
            _mm256_storeu_ps(p + h * T + t0,
                             _mm256_mul_ps(scores8(qabs + h * rkv, qpe + h * qpe_stride, c + t0 * cs,
                                                   kpe + t0 * cs, cs, rkv, dr),
                                           _mm256_set1_ps(scale)));
    for (int64_t t = T8; t < T; t++) {
        const float *ct = c + t * cs, *kt = kpe + t * cs;
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
        for (; k0 + 64 <= rkv; k0 += 64) sum_cols(8, uh, ph, c, T, cs, k0);
        if (k0 + 32 <= rkv) sum_cols(4, uh, ph, c, T, cs, k0), k0 += 32;
        for (; k0 + 8 <= rkv; k0 += 8) sum_cols(1, uh, ph, c, T, cs, k0);
        for (; k0 < rkv; k0++) {
            float a = 0.0f;
            for (int64_t t = 0; t < T; t++) a += ph[t] * c[t * cs + k0];
            uh[k0] = a;
        }
    }
}
