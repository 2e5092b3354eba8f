/* simd_exp.h — e^x on eight floats for the optimised CPU kernels (AVX2/FMA/F16C, DSV3_ISA_F16C
 * in kernels/cpu/isa.h; callers check the CPU). Header-only so it inlines into each kernel. Used
 * by the fast backend and the trainer's float32 SwiGLU and cross-entropy (kernels/cpu). */
#ifndef DSV3_SIMD_EXP_H
#define DSV3_SIMD_EXP_H

#include <immintrin.h>

#include "kernels/cpu/isa.h"

#define INL inline __attribute__((always_inline))

/* e^x: x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-7 polynomial (the Cephes expf
 * coefficients), times 2^n built in the exponent field. x is clamped to [-87, 88] so 2^n stays a
 * normal float: e^-87 ~ 1.6e-38 counts as nothing next to a softmax's max term (1), and e^88 as
 * "huge" in silu's 1 / (1 + e^-g). Relative error ~1e-7 inside the range. */
static INL DSV3_ISA_F16C __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
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

#endif
