/* cpu_internal.h — the reference CPU kernels, shared with the optimised CPU backend, which
 * falls back to them for shapes and machines it does not specialise. kernels/cpu only. */
#ifndef DSV3_CPU_INTERNAL_H
#define DSV3_CPU_INTERNAL_H

#include <stddef.h>

#include "kernels/backend.h"

void dsv3_cpu_matmul(float *out, const float *x, const dsv3_weight *w, int64_t n);
void dsv3_cpu_matmul_many(const dsv3_matmul_op *ops, int64_t count);
void dsv3_cpu_matmul_t(float *out, const float *x, const dsv3_weight *w, int64_t n);
void dsv3_cpu_row(float *out, const dsv3_weight *w, int64_t r);
void dsv3_cpu_rmsnorm(float *out, const float *x, const float *g, int64_t n, int64_t dim, float eps);
void dsv3_cpu_rope(float *x, int64_t n, int64_t nvec, int64_t d, int64_t tok_stride,
                   int64_t vec_stride, int64_t pos0, const float *inv_freq, float factor);
void dsv3_cpu_silu_mul(float *g, const float *u, int64_t n);
void dsv3_cpu_mla_attend(float *u, float *p, const float *qabs, const float *qpe, int64_t qpe_stride,
                         const float *c, const float *kpe, int64_t cs, int64_t nh, int64_t T,
                         int64_t rkv, int64_t dr, float scale);

/* Host memory (kernels/cpu/host_memory.c): what every CPU backend's memory functions are. */
void *dsv3_host_alloc(size_t bytes);
void dsv3_host_free(void *p);
void dsv3_host_copy(void *dst, const void *src, size_t bytes);
void dsv3_host_stats(dsv3_transfer_stats *out);
void dsv3_cpu_embed(float *out, const dsv3_weight *w, const int32_t *ids, int64_t n);
void dsv3_cpu_add(float *x, const float *y, int64_t n);
void dsv3_cpu_copy2d(float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                     int64_t rows, int64_t width);

/* The coarse steps (kernels/cpu/mla_steps.c, moe_steps.c), over the backend `be` they run on. */
void dsv3_cpu_mla_store(const dsv3_backend *be, float *c, float *kpe, int64_t cs, const float *kva, int64_t n,
                        int64_t pos0, const float *norm, float eps, int64_t rkv, int64_t dr,
                        const float *inv_freq, float factor);
void dsv3_cpu_mla_attend_chunk(const dsv3_backend *be, float *u, float *scratch,
                               int64_t scratch_stride, const float *qabs, const float *qpe,
                               int64_t qpe_stride, const float *c, const float *kpe, int64_t cs,
                               int64_t nh, int64_t n, int64_t pos0, int64_t rkv, int64_t dr,
                               float scale);
void dsv3_cpu_mla_naive(const dsv3_backend *be, float *o, float *scratch, int64_t scratch_stride,
                        const float *q, const float *kvfull, const float *kpe, int64_t cs,
                        int64_t nh, int64_t dn, int64_t dv, int64_t dr, int64_t n, int64_t pos0,
                        float scale, int64_t only);
void dsv3_cpu_moe_route(const dsv3_backend *be, int32_t *idx, float *w, float *record,
                        const float *logits, int64_t n, int64_t pos0, const dsv3_route_params *p,
                        const float *bias, const unsigned char *disabled, const int32_t *forced,
                        int64_t forced_pos);
void dsv3_cpu_moe_experts(const dsv3_backend *be, float *out, const float *xn, const int32_t *idx,
                          const float *w, int64_t n, int64_t H, int64_t K, int64_t E, int64_t F,
                          const dsv3_ffn_weights *experts, const dsv3_ffn_weights *shared,
                          int64_t Fs, const dsv3_moe_scratch *s);

/* The table entries every CPU backend shares, for designated initialisers. */
#define DSV3_CPU_COMMON_OPS                                                                    \
    .is_host = 1, .alloc = dsv3_host_alloc, .free = dsv3_host_free, .upload = dsv3_host_copy,  \
    .download = dsv3_host_copy, .stats = dsv3_host_stats, .row = dsv3_cpu_row,                 \
    .rope = dsv3_cpu_rope, .embed = dsv3_cpu_embed, .add = dsv3_cpu_add,                       \
    .copy2d = dsv3_cpu_copy2d, .mla_store = dsv3_cpu_mla_store,                                \
    .mla_attend_chunk = dsv3_cpu_mla_attend_chunk, .mla_naive = dsv3_cpu_mla_naive,            \
    .moe_route = dsv3_cpu_moe_route, .moe_experts = dsv3_cpu_moe_experts

/* The optimised backend's attention (kernels/cpu/fast_attn.c; AVX2/FMA, callers check). */
void dsv3_fast_mla_attend(float *u, float *p, const float *qabs, const float *qpe, int64_t qpe_stride,
                          const float *c, const float *kpe, int64_t cs, int64_t nh, int64_t T,
                          int64_t rkv, int64_t dr, float scale);

#endif
