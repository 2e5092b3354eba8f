/* cpu.c — the reference CPU backend (see kernels/backend.h).
 *
 * FP32 math throughout. Weights are decoded from their stored dtype 128 columns at a time into a
 * stack buffer (one FP8 scale block wide), so nothing is expanded in memory and nothing is
 * allocated. Rows are split across OpenMP threads; each row is read once per block of tokens.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_internal.h"

enum { CHUNK = 128, TOK_BLOCK = 16 };

/* Below this many multiply-adds a parallel region costs more than it saves (waking a thread is
 * tens of microseconds). */
#define PAR_MIN_MACS ((int64_t)1 << 18)

dsv3_weight dsv3_weight_rows(const dsv3_weight *w, int64_t r0, int64_t n) {
    dsv3_weight v = *w;
    v.rows = n;
    v.row0 = w->row0 + r0;
    v.data = (const char *)w->data + (size_t)(r0 * w->cols) * dsv3_dtype_size(w->dtype);
    return v;
}


/* Decodes W[r, c0 : c0 + len) (view coordinates) into out[len]; len <= CHUNK and for FP8 the
 * span never crosses a 128-column block because c0 is a multiple of CHUNK. */
static void decode_span(float *out, const dsv3_weight *w, int64_t r, int64_t c0, int64_t len) {
    const size_t off = (size_t)(r * w->cols + c0);
    switch (w->dtype) {
    case DSV3_DT_F32:
        memcpy(out, (const float *)w->data + off, (size_t)len * 4);
        break;
    case DSV3_DT_BF16: {
        const uint16_t *p = (const uint16_t *)w->data + off;
        for (int64_t i = 0; i < len; i++) out[i] = dsv3_bf16_to_f32(p[i]);
        break;
    }
    case DSV3_DT_F16: {
        const uint16_t *p = (const uint16_t *)w->data + off;
        for (int64_t i = 0; i < len; i++) out[i] = dsv3_f16_to_f32(p[i]);
        break;
    }
    case DSV3_DT_F8_E4M3: {
        /* docs/ARCHITECTURE.md, "FP8 block scaling": W[i, j] = q[i, j] * S[i / 128, j / 128], with i the stored row. */
        const uint8_t *p = (const uint8_t *)w->data + off;
        const int64_t scols = (w->cols + 127) / 128;
        const float s = w->scale_inv[((w->row0 + r) / 128) * scols + c0 / 128];
        for (int64_t i = 0; i < len; i++) out[i] = dsv3_e4m3_table[p[i]] * s;
        break;
    }
    default:
        memset(out, 0, (size_t)len * 4); /* unreachable: the loader admits only the four above */
    }
}

void dsv3_cpu_row(float *out, const dsv3_weight *w, int64_t r) {
    for (int64_t c = 0; c < w->cols; c += CHUNK)
        decode_span(out + c, w, r, c, w->cols - c < CHUNK ? w->cols - c : CHUNK);
}

/* out[s, r] = sum_c x[s, c] W[r, c]. Parallel over rows; each row's 128-column spans are decoded
 * once per block of TOK_BLOCK tokens and stay in L1 across the block. */
void dsv3_cpu_matmul(float *out, const float *x, const dsv3_weight *w, int64_t n) {
    const int64_t R = w->rows, C = w->cols;
#pragma omp parallel for schedule(static) if (R * C * n >= PAR_MIN_MACS)
    for (int64_t r = 0; r < R; r++) {
        float tmp[CHUNK];
        for (int64_t s0 = 0; s0 < n; s0 += TOK_BLOCK) {
            const int64_t ns = n - s0 < TOK_BLOCK ? n - s0 : TOK_BLOCK;
            float acc[TOK_BLOCK] = {0};
            for (int64_t c = 0; c < C; c += CHUNK) {
                const int64_t len = C - c < CHUNK ? C - c : CHUNK;
                decode_span(tmp, w, r, c, len);
                for (int64_t s = 0; s < ns; s++)
                    acc[s] += dsv3_dot_f32(tmp, x + (s0 + s) * C + c, len);
            }
            for (int64_t s = 0; s < ns; s++) out[(s0 + s) * R + r] = acc[s];
        }
    }
}

void dsv3_cpu_matmul_many(const dsv3_matmul_op *ops, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        if (ops[i].trans) dsv3_cpu_matmul_t(ops[i].out, ops[i].x, ops[i].w, ops[i].n);
        else dsv3_cpu_matmul(ops[i].out, ops[i].x, ops[i].w, ops[i].n);
    }
}

/* out[s, c] = sum_r x[s, r] W[r, c]. Parallel over 128-column spans so threads never write the
 * same output; each thread walks all rows of its span. */
void dsv3_cpu_matmul_t(float *out, const float *x, const dsv3_weight *w, int64_t n) {
    const int64_t R = w->rows, C = w->cols, nspan = (C + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (R * C * n >= PAR_MIN_MACS)
    for (int64_t sp = 0; sp < nspan; sp++) {
        const int64_t c = sp * CHUNK, len = C - c < CHUNK ? C - c : CHUNK;
        float tmp[CHUNK];
        for (int64_t s = 0; s < n; s++) memset(out + s * C + c, 0, (size_t)len * 4);
        for (int64_t r = 0; r < R; r++) {
            decode_span(tmp, w, r, c, len);
            for (int64_t s = 0; s < n; s++) {
                const float xr = x[s * R + r];
                float *o = out + s * C + c;
#pragma omp simd
                for (int64_t i = 0; i < len; i++) o[i] += xr * tmp[i];
            }
        }
    }
}

/* docs/ARCHITECTURE.md, "RMSNorm": the mean of squares accumulates in double and is rounded once, so the norm does
 * not depend on the summation order. */
void dsv3_cpu_rmsnorm(float *out, const float *x, const float *g, int64_t n, int64_t dim,
                        float eps) {
    for (int64_t s = 0; s < n; s++) {
        const float *xs = x + s * dim;
        double ss = 0.0;
        for (int64_t i = 0; i < dim; i++) ss += (double)xs[i] * xs[i];
        const float inv = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        float *os = out + s * dim;
        for (int64_t i = 0; i < dim; i++) os[i] = g[i] * (xs[i] * inv);
    }
}

/* docs/ARCHITECTURE.md, "RoPE", interleaved layout: y[2k] = x[2k] cos - x[2k+1] sin, y[2k+1] = x[2k] sin + x[2k+1] cos,
 * angle = pos * inv_freq[k] with inv_freq in float32 (docs/ARCHITECTURE.md, "YaRN"). */
void dsv3_cpu_rope(float *x, int64_t n, int64_t nvec, int64_t d, int64_t tok_stride,
                   int64_t vec_stride, int64_t pos0, const float *inv_freq, float factor) {
    for (int64_t s = 0; s < n; s++) {
        for (int64_t k = 0; k < d / 2; k++) {
            /* The angle is formed in double so long positions lose no bits beyond inv_freq's. */
            const double ang = (double)(pos0 + s) * (double)inv_freq[k];
            const float cs = (float)cos(ang) * factor, sn = (float)sin(ang) * factor;
            for (int64_t v = 0; v < nvec; v++) {
                float *p = x + s * tok_stride + v * vec_stride + 2 * k;
                const float a = p[0], b = p[1];
                p[0] = a * cs - b * sn;
                p[1] = a * sn + b * cs;
            }
        }
    }
}

void dsv3_cpu_silu_mul(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* One head at a time: T dot products against the cache, softmax, weighted sum of the rows. */
void dsv3_cpu_mla_attend(float *u, float *p, const float *qabs, const float *qpe, int64_t qpe_stride,
                         const float *c, const float *kpe, int64_t cs, int64_t nh, int64_t T,
                         int64_t rkv, int64_t dr, float scale) {
    for (int64_t h = 0; h < nh; h++) {
        float *ph = p + h * T, *uh = u + h * rkv;
        const float *qa = qabs + h * rkv, *qp = qpe + h * qpe_stride;
        for (int64_t t = 0; t < T; t++)
            ph[t] = (dsv3_dot_f32(qa, c + t * cs, rkv) + dsv3_dot_f32(qp, kpe + t * cs, dr)) * scale;
        dsv3_softmax_f32(ph, T);
        memset(uh, 0, (size_t)rkv * 4);
        for (int64_t t = 0; t < T; t++) {
            const float pt = ph[t], *ct = c + t * cs;
#pragma omp simd
            for (int64_t i = 0; i < rkv; i++) uh[i] += pt * ct[i];
        }
    }
}

void dsv3_cpu_embed(float *out, const dsv3_weight *w, const int32_t *ids, int64_t n) {
    for (int64_t s = 0; s < n; s++) dsv3_cpu_row(out + s * w->cols, w, ids[s]);
}

static const dsv3_backend cpu_backend = {
    .name = "cpu",
    .matmul = dsv3_cpu_matmul,
    .matmul_many = dsv3_cpu_matmul_many,
    .matmul_t = dsv3_cpu_matmul_t,
    .rmsnorm = dsv3_cpu_rmsnorm,
    .silu_mul = dsv3_cpu_silu_mul,
    .mla_attend = dsv3_cpu_mla_attend,
    DSV3_CPU_COMMON_OPS,
};

const dsv3_backend *dsv3_backend_cpu(void) {
    return &cpu_backend;
}
