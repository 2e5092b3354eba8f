/* cross_entropy.c — a softmax cross-entropy row, double and float32 (see
 * kernels/cpu/cross_entropy.h). */
#include "kernels/cpu/cross_entropy.h"

#include <immintrin.h>
#include <math.h>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/simd_exp.h"

double dsv3_ce_row(double *p, const double *z, int32_t y, int64_t V) {
    double mx = z[0];
    for (int64_t v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    const double zy = y >= 0 ? z[y] : 0.0; /* before p overwrites z */
    double sum = 0.0;
    for (int64_t v = 0; v < V; v++) sum += (p[v] = exp(z[v] - mx));
    const double loss = y >= 0 ? mx + log(sum) - zy : 0.0;
    const double inv = 1.0 / sum;
    for (int64_t v = 0; v < V; v++) p[v] *= inv;
    return loss;
}

static DSV3_ISA_F16C double row_vec(double *p, const double *z, int32_t y, int64_t V) {
    const int64_t V8 = V & ~(int64_t)7;
    double mx = z[0];
    for (int64_t v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    const double zy = y >= 0 ? z[y] : 0.0;
    const __m256d m4 = _mm256_set1_pd(mx);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t v = 0; v < V8; v += 8) {
        const __m128 lo = _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_loadu_pd(z + v), m4));
        const __m128 hi = _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_loadu_pd(z + v + 4), m4));
        const __m256 e = exp8(_mm256_set_m128(hi, lo));
        acc = _mm256_add_ps(acc, e);
        _mm256_storeu_pd(p + v, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        _mm256_storeu_pd(p + v + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    float part[8];
    _mm256_storeu_ps(part, acc);
    double sum = 0.0;
    for (int i = 0; i < 8; i++) sum += (double)part[i];
    for (int64_t v = V8; v < V; v++) sum += (p[v] = (double)expf((float)(z[v] - mx)));
    const double loss = y >= 0 ? mx + log(sum) - zy : 0.0;
    const double inv = 1.0 / sum;
    for (int64_t v = 0; v < V; v++) p[v] *= inv;
    return loss;
}

double dsv3_ce_row_f32(double *p, const double *z, int32_t y, int64_t V) {
    return dsv3_isa_f16c() ? row_vec(p, z, y, V) : dsv3_ce_row(p, z, y, V);
}
