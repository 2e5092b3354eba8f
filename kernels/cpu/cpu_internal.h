/* cpu_internal.h — the reference CPU kernels, shared with the optimised CPU backend, which
 * falls back to them for shapes and machines it does not specialise. kernels/cpu only. */
#ifndef DSV3_CPU_INTERNAL_H
#define DSV3_CPU_INTERNAL_H

#include "kernels/backend.h"

void dsv3_cpu_matmul(float *out, const float *x, const dsv3_weight *w, int64_t n);
void dsv3_cpu_matmul_many(const dsv3_matmul_op *ops, int64_t count);
void dsv3_cpu_matmul_t(float *out, const float *x, const dsv3_weight *w, int64_t n);
void dsv3_cpu_row(float *out, const dsv3_weight *w, int64_t r);
void dsv3_cpu_rmsnorm(float *out, const float *x, const float *g, int64_t n, int64_t dim, float eps);
void dsv3_cpu_rope(float *x, int64_t n, int64_t nvec, int64_t d, const int64_t *pos,
                   const float *inv_freq, float factor);
void dsv3_cpu_silu_mul(float *g, const float *u, int64_t n);
void dsv3_cpu_mla_attend(float *u, float *p, const float *qabs, const float *qpe, int64_t qpe_stride,
                         const float *c, const float *kpe, int64_t nh, int64_t T, int64_t rkv,
                         int64_t dr, float scale);

/* The optimised backend's attention (kernels/cpu/fast_attn.c; AVX2/FMA, callers check). */
void dsv3_fast_mla_attend(float *u, float *p, const float *qabs, const float *qpe, int64_t qpe_stride,
                          const float *c, const float *kpe, int64_t nh, int64_t T, int64_t rkv,
                          int64_t dr, float scale);

#endif
