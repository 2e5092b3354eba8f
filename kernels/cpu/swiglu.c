/* swiglu.c — SwiGLU and its gradient, double and float32 (see kernels/cpu/swiglu.h). */
#include "kernels/cpu/swiglu.h"

#include <immintrin.h>
#include <math.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/simd_exp.h"

void dsv3_swiglu_forward(double *h, const double *a, const double *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) h[i] = a[i] / (1.0 + exp(-a[i])) * b[i];
}

void dsv3_swiglu_backward(double *da, double *db, const double *dh, const double *a,
                          const double *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const double ai = a[i], sg = 1.0 / (1.0 + exp(-ai));
        da[i] += dh[i] * b[i] * sg * (1.0 + ai * (1.0 - sg));
        db[i] += dh[i] * ai * sg;
    }
}

/* The same formulas eight elements at a time in float lanes; returns where the double loop must
 * take over. */
static DSV3_ISA_F16C int64_t forward_vec(double *h, const double *a, const double *b, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 va = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(a + i + 4)),
                                          _mm256_cvtpd_ps(_mm256_loadu_pd(a + i)));
        const __m256 vb = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(b + i + 4)),
                                          _mm256_cvtpd_ps(_mm256_loadu_pd(b + i)));
        const __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), va))));
        const __m256 vh = _mm256_mul_ps(_mm256_mul_ps(va, sg), vb);
        _mm256_storeu_pd(h + i, _mm256_cvtps_pd(_mm256_castps256_ps128(vh)));
        _mm256_storeu_pd(h + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(vh, 1)));
    }
    return i;
}

static DSV3_ISA_F16C int64_t backward_vec(double *da, double *db, const double *dh,
                                          const double *a, const double *b, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
#define LD8(p) _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd((p) + i + 4)), _mm256_cvtpd_ps(_mm256_loadu_pd((p) + i)))
        const __m256 va = LD8(a), vb = LD8(b), vdh = LD8(dh);
        const __m256 da0 = LD8(da), db0 = LD8(db);
#undef LD8
        const __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), va))));
        /* da += dh b sg (1 + a (1 - sg)); db += dh a sg */
        const __m256 vda = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(vdh, vb), sg),
                                         _mm256_add_ps(one, _mm256_mul_ps(va, _mm256_sub_ps(one, sg))));
        const __m256 vdb = _mm256_mul_ps(_mm256_mul_ps(vdh, va), sg);
        const __m256 ra = _mm256_add_ps(da0, vda), rb = _mm256_add_ps(db0, vdb);
        _mm256_storeu_pd(da + i, _mm256_cvtps_pd(_mm256_castps256_ps128(ra)));
        _mm256_storeu_pd(da + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(ra, 1)));
        _mm256_storeu_pd(db + i, _mm256_cvtps_pd(_mm256_castps256_ps128(rb)));
        _mm256_storeu_pd(db + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(rb, 1)));
    }
    return i;
}

void dsv3_swiglu_forward_f32(double *h, const double *a, const double *b, int64_t n) {
    const int64_t i = dsv3_isa_f16c() ? forward_vec(h, a, b, n) : 0;
    dsv3_swiglu_forward(h + i, a + i, b + i, n - i);
}

void dsv3_swiglu_backward_f32(double *da, double *db, const double *dh, const double *a,
                              const double *b, int64_t n) {
    const int64_t i = dsv3_isa_f16c() ? backward_vec(da, db, dh, a, b, n) : 0;
    dsv3_swiglu_backward(da + i, db + i, dh + i, a + i, b + i, n - i);
}
