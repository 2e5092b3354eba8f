/* vec.c — the reference float32 vector primitives (see backend.h: dsv3_dot_f32,
 * dsv3_softmax_f32): what the reference backend, the attention steps and the model's naive
 * attention probe compute with. */
#include <math.h>

#include "kernels/backend.h"

float dsv3_dot_f32(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* In-place softmax over p[0..n): max subtracted, libm expf, one division. */
void dsv3_softmax_f32(float *p, int64_t n) {
    float mx = p[0];
    for (int64_t i = 1; i < n; i++) mx = p[i] > mx ? p[i] : mx;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += (p[i] = expf(p[i] - mx));
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++) p[i] *= inv;
}
