/* adamw.c — one AdamW step over a span of float32 weights (see kernels/cpu/adamw.h). */
#include "kernels/cpu/adamw.h"

#include <immintrin.h>
#include <math.h>

#include "kernels/cpu/isa.h"

/* The loop below, eight elements at a time: the same operations in the same order, each
 * rounded on its own (no fused multiply-add: DSV3_ISA_AVX2 leaves FMA out; IEEE division and
 * square root round the same in vector and scalar form), so the weights are bit-identical to
 * the scalar loop's. Returns where the scalar loop must take over. */
static DSV3_ISA_AVX2 int64_t adamw_avx2(float *w, float *m, float *v, const float *g, int64_t n,
                                        const dsv3_adamw_step *s, float wd) {
    const __m256 b1 = _mm256_set1_ps(s->b1), b2 = _mm256_set1_ps(s->b2);
    const __m256 nb1 = _mm256_set1_ps(1.0f - s->b1), nb2 = _mm256_set1_ps(1.0f - s->b2);
    const __m256 c1 = _mm256_set1_ps(s->c1), c2 = _mm256_set1_ps(s->c2), gs = _mm256_set1_ps(s->gs);
    const __m256 lr = _mm256_set1_ps(s->lr), eps = _mm256_set1_ps(s->eps), vwd = _mm256_set1_ps(wd);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 gj = _mm256_mul_ps(_mm256_loadu_ps(g + j), gs);
        const __m256 mj = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + j)), _mm256_mul_ps(nb1, gj));
        const __m256 vj = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + j)),
                                        _mm256_mul_ps(_mm256_mul_ps(nb2, gj), gj));
        _mm256_storeu_ps(m + j, mj);
        _mm256_storeu_ps(v + j, vj);
        const __m256 mh = _mm256_div_ps(mj, c1), vh = _mm256_div_ps(vj, c2);
        const __m256 wj = _mm256_loadu_ps(w + j);
        const __m256 upd = _mm256_add_ps(_mm256_div_ps(mh, _mm256_add_ps(_mm256_sqrt_ps(vh), eps)),
                                         _mm256_mul_ps(vwd, wj));
        _mm256_storeu_ps(w + j, _mm256_sub_ps(wj, _mm256_mul_ps(lr, upd)));
    }
    return j;
}

void dsv3_adamw(float *w, float *m, float *v, const float *g, int64_t n,
                const dsv3_adamw_step *s, float wd) {
    int64_t j = dsv3_isa_avx2() ? adamw_avx2(w, m, v, g, n, s, wd) : 0;
    for (; j < n; j++) {
        const float gj = g[j] * s->gs;
        m[j] = s->b1 * m[j] + (1.0f - s->b1) * gj;
        v[j] = s->b2 * v[j] + (1.0f - s->b2) * gj * gj;
        const float mh = m[j] / s->c1, vh = v[j] / s->c2;
        w[j] -= s->lr * (mh / (sqrtf(vh) + s->eps) + wd * w[j]);
    }
}
