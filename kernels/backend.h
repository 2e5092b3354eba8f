/* backend.h — the one interface between the model and the hardware.
 *
 * The model describes a weight with dsv3_weight (stored dtype, shape, mapped bytes, FP8 block
 * scales) and calls the operations of a dsv3_backend table. The backend converts weights to
 * float32 on the fly (docs/ARCHITECTURE.md, "FP8 block scaling"): weights are never expanded in memory.
 * kernels/cpu is always built and is the reference; other backends must agree with it within
 * the tolerance their tests state. Model code never branches on the backend or on dtype.
 * Thread rules: operations may use threads internally (kernels/pool.h); call them from one
 * thread at a time — except mla_attend, which is single-threaded and may run on several threads
 * at once (the model spreads queries and heads over the pool).
 */
#ifndef DSV3_BACKEND_H
#define DSV3_BACKEND_H

#include <stdint.h>

#include "kernels/dtype.h"

/* A 2-D weight W [rows, cols] (= [out, in]; y = x W^T), row-major, in its stored dtype.
 * A weight may be a view of rows [row0, row0 + rows) of a stored tensor: `data` then points at
 * the view's first row, and row0 keeps FP8 block-scale indexing right for ragged blocks. */
typedef struct {
    dsv3_dtype dtype;       /* F32, BF16, F16 or F8_E4M3 */
    int64_t rows, cols;     /* view shape */
    const void *data;       /* rows * cols elements */
    const float *scale_inv; /* F8_E4M3 only: the stored tensor's [ceil(R/128), ceil(cols/128)]
                               multipliers (W = q * s, docs/ARCHITECTURE.md, "FP8 block scaling"); NULL otherwise */
    int64_t row0;           /* first row of the view inside the stored tensor */
} dsv3_weight;

/* Returns the view of rows [r0, r0 + n) of w. */
dsv3_weight dsv3_weight_rows(const dsv3_weight *w, int64_t r0, int64_t n);

/* One product of a batch: out[n, w.rows] = x[n, w.cols] W^T, or with trans = 1 the transposed
 * product out[n, w.cols] = x[n, w.rows] W (what matmul_t computes). */
typedef struct {
    float *out;
    const float *x;
    const dsv3_weight *w;
    int64_t n;
    int trans;
} dsv3_matmul_op;

typedef struct dsv3_backend {
    const char *name;
    /* out[n, rows] = x[n, cols] W^T. FP32 accumulation. out must not alias x. */
    void (*matmul)(float *out, const float *x, const dsv3_weight *w, int64_t n);
    /* Several independent products at once (e.g. all experts' gate and up projections, or the
     * per-head absorbed-MLA products), so a backend can spread their rows over its threads in one
     * go. Outputs must not overlap. */
    void (*matmul_many)(const dsv3_matmul_op *ops, int64_t count);
    /* out[n, cols] = x[n, rows] W (the transposed product, used by absorbed MLA). */
    void (*matmul_t)(float *out, const float *x, const dsv3_weight *w, int64_t n);
    /* out[cols] = row r of W in float32 (embedding lookup). */
    void (*row)(float *out, const dsv3_weight *w, int64_t r);
    /* out[n, dim] = g * x / sqrt(mean(x^2) + eps), per row (docs/ARCHITECTURE.md, "RMSNorm"). out may alias x. */
    void (*rmsnorm)(float *out, const float *x, const float *g, int64_t n, int64_t dim, float eps);
    /* Rotates interleaved pairs (2k, 2k+1) of x[n, nvec, d] in place by angle pos[i] *
     * inv_freq[k], with cos/sin multiplied by `factor` (YaRN attention factor, docs/ARCHITECTURE.md, "YaRN"). */
    void (*rope)(float *x, int64_t n, int64_t nvec, int64_t d, const int64_t *pos,
                 const float *inv_freq, float factor);
    /* g[i] = silu(g[i]) * u[i] for i < n (docs/ARCHITECTURE.md, "SwiGLU"). */
    void (*silu_mul)(float *g, const float *u, int64_t n);
    /* Absorbed MLA attention of one query over cached positions 0..T-1 for nh heads (docs/ARCHITECTURE.md, "MLA"):
     *   p[h, t] = softmax_t((qabs[h] . c[t] + qpe[h] . kpe[t]) * scale),
     *   u[h] = sum_t p[h, t] c[t].
     * qabs [nh, rkv]; head h's RoPE query at qpe + h * qpe_stride (dr floats); c [T, rkv] and
     * kpe [T, dr] the latent cache; p [nh, T] receives the probabilities; u [nh, rkv]. All heads
     * of a query share c, so a backend can read each cached row once for all of them. */
    void (*mla_attend)(float *u, float *p, const float *qabs, const float *qpe, int64_t qpe_stride,
                       const float *c, const float *kpe, int64_t nh, int64_t T, int64_t rkv,
                       int64_t dr, float scale);
} dsv3_backend;

/* The reference CPU backend (static table; never NULL): plain FP32 loops, the numbers every
 * other backend is tested against. */
const dsv3_backend *dsv3_backend_cpu(void);

/* The optimised CPU backend (AVX2/FMA, chosen at run time; the reference one on machines
 * without AVX2). Agrees with the reference to FP32 rounding (different summation order). */
const dsv3_backend *dsv3_backend_fast(void);

/* A backend by name: "ref" (or "cpu") and "fast"; NULL for an unknown name. */
const dsv3_backend *dsv3_backend_by_name(const char *name);

/* Dot product of two float32 vectors of length n, as the CPU backend computes it. */
float dsv3_dot_f32(const float *a, const float *b, int64_t n);

/* In-place softmax over p[0..n) (max subtracted), as the CPU backend computes it. */
void dsv3_softmax_f32(float *p, int64_t n);

#endif
