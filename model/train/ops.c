/* ops.c — forward/backward pairs of the training operators (see ops.h).
 *
 * Each pair sits together, forward first, with the equation and the spec section before it.
 * Parallel work runs on the worker pool (kernels/pool.h), not in OpenMP regions: a trainer that
 * mixed both had two sets of threads spinning against each other on a 2-core machine.
 * Parallel loops split the outputs between threads and never the reductions, so results are
 * the same for any thread count (needed for bit-exact resume, spec/training.md §10.2).
 */
#include "model/train/ops.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/cpu/simd_exp.h"
#include "kernels/pool.h"
#include "kernels/cpu/gemm.h"

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define PAR_MIN ((int64_t)1 << 20)

/* Adds a double into a float gradient with one rounding. */
static inline void add_f32(float *g, double d) {
    *g = (float)((double)*g + d);
}

/* Elementwise ops (norms, RoPE, SwiGLU, gating) split their rows into ranges on the pool when
 * there are at least this many elements: on two threads a serial norm leaves the other core
 * spinning, and these ops are a fifth of a step. Each element is still computed by exactly the
 * code a serial loop would run, so results do not change. */
#define PAR_ELEMS ((int64_t)1 << 14)

typedef void (*range_fn)(void *ctx, int64_t r0, int64_t r1);
typedef struct {
    range_fn fn;
    void *ctx;
    int64_t n, chunk;
} range_job;

static void range_item(void *c, int64_t i, int tid) {
    (void)tid;
    const range_job *j = c;
    const int64_t r0 = i * j->chunk, r1 = r0 + j->chunk < j->n ? r0 + j->chunk : j->n;
    j->fn(j->ctx, r0, r1);
}

/* fn over [0, n) in ranges; per_row elements of work per row. */
static void par_range(int64_t n, int64_t per_row, range_fn fn, void *ctx) {
    if (n * per_row < PAR_ELEMS || n < 2) {
        fn(ctx, 0, n);
        return;
    }
    /* ~4 ranges per thread: some balance without a dispatch per row */
    const int64_t parts = 4 * (int64_t)dsv3_pool_threads();
    range_job j = {.fn = fn, .ctx = ctx, .n = n, .chunk = (n + parts - 1) / parts};
    dsv3_pool_for((n + j.chunk - 1) / j.chunk, range_item, &j);
}

/* ---------------------------------------------------------------- embedding ------------- */

/* out[s, :] = table[ids[s], :] (spec/architecture.md §4.1 step 1). */
void dsv3_op_embed_forward(double *out, const int32_t *ids, const float *table, int64_t n,
                           int64_t H) {
    for (int64_t s = 0; s < n; s++) {
        const float *row = table + (int64_t)ids[s] * H;
        for (int64_t i = 0; i < H; i++) out[s * H + i] = row[i];
    }
}

/* dtable[ids[s], :] += dout[s, :]; tokens in order, so repeated ids add up deterministically. */
void dsv3_op_embed_backward(float *dtable, const double *dout, const int32_t *ids, int64_t n,
                            int64_t H) {
    for (int64_t s = 0; s < n; s++) {
        float *row = dtable + (int64_t)ids[s] * H;
        for (int64_t i = 0; i < H; i++) add_f32(&row[i], dout[s * H + i]);
    }
}

/* ---------------------------------------------------------------- linear ---------------- */

/* The matrix products dominate training time. On CPUs with AVX2+FMA the full 4-row / 4-token
 * blocks run register-blocked kernels (4 doubles per instruction, fused multiply-add, weights
 * widened from float in registers); edges and other CPUs run the portable loops below. The
 * choice depends only on the CPU, and every output element is still summed by one thread in
 * a fixed order, so results stay reproducible on a machine and independent of the thread
 * count (spec/training.md §10.2). */
#define AVX2 __attribute__((target("avx2,fma")))

static int use_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Sum of the 4 lanes, in a fixed order. */
static AVX2 inline double hsum(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* y[s, r0..r0+3] for every token: 2 tokens x 4 rows per pass (8 accumulators), so each
 * widened weight vector serves two tokens. */
static AVX2 void fwd4_avx2(double *y, const double *x, const float *W, int64_t n, int64_t in,
                           int64_t out, int64_t r0) {
    const float *w[4] = {W + r0 * in, W + (r0 + 1) * in, W + (r0 + 2) * in, W + (r0 + 3) * in};
    const int64_t cv = in & ~(int64_t)3;
    for (int64_t s = 0; s < n; s += 2) {
        const int two = s + 1 < n;
        const double *xa = x + s * in, *xb = two ? xa + in : xa;
        __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int64_t c = 0; c < cv; c += 4) {
            const __m256d u = _mm256_loadu_pd(xa + c), v = _mm256_loadu_pd(xb + c);
            const __m256d q0 = _mm256_cvtps_pd(_mm_loadu_ps(w[0] + c));
            const __m256d q1 = _mm256_cvtps_pd(_mm_loadu_ps(w[1] + c));
            const __m256d q2 = _mm256_cvtps_pd(_mm_loadu_ps(w[2] + c));
            const __m256d q3 = _mm256_cvtps_pd(_mm_loadu_ps(w[3] + c));
            a0 = _mm256_fmadd_pd(u, q0, a0), a1 = _mm256_fmadd_pd(u, q1, a1);
            a2 = _mm256_fmadd_pd(u, q2, a2), a3 = _mm256_fmadd_pd(u, q3, a3);
            b0 = _mm256_fmadd_pd(v, q0, b0), b1 = _mm256_fmadd_pd(v, q1, b1);
            b2 = _mm256_fmadd_pd(v, q2, b2), b3 = _mm256_fmadd_pd(v, q3, b3);
        }
        double ra[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
        double rb[4] = {hsum(b0), hsum(b1), hsum(b2), hsum(b3)};
        for (int64_t c = cv; c < in; c++)
            for (int k = 0; k < 4; k++) ra[k] += xa[c] * (double)w[k][c], rb[k] += xb[c] * (double)w[k][c];
        for (int k = 0; k < 4; k++) y[s * out + r0 + k] = ra[k];
        if (two)
            for (int k = 0; k < 4; k++) y[(s + 1) * out + r0 + k] = rb[k];
    }
}

/* dx[s0..s0+3, :] += dy[s0..s0+3, :] W: 4 tokens x 8 columns per pass (8 accumulators) summed
 * over r in order, then added to dx once. */
static AVX2 void dx4_avx2(double *dx, const double *dy, const float *W, int64_t in, int64_t out,
                          int64_t s0) {
    const double *d = dy + s0 * out;
    double *x0 = dx + s0 * in;
    const int64_t c8 = in & ~(int64_t)7;
    for (int64_t c = 0; c < c8; c += 8) {
        /* named accumulators: an array would live on the stack */
        __m256d a00 = _mm256_setzero_pd(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
                a30 = a00, a31 = a00;
        for (int64_t r = 0; r < out; r++) {
            const float *w = W + r * in + c;
            const __m256d q0 = _mm256_cvtps_pd(_mm_loadu_ps(w)), q1 = _mm256_cvtps_pd(_mm_loadu_ps(w + 4));
            const __m256d d0 = _mm256_broadcast_sd(d + r), d1 = _mm256_broadcast_sd(d + out + r);
            const __m256d d2 = _mm256_broadcast_sd(d + 2 * out + r), d3 = _mm256_broadcast_sd(d + 3 * out + r);
            a00 = _mm256_fmadd_pd(d0, q0, a00), a01 = _mm256_fmadd_pd(d0, q1, a01);
            a10 = _mm256_fmadd_pd(d1, q0, a10), a11 = _mm256_fmadd_pd(d1, q1, a11);
            a20 = _mm256_fmadd_pd(d2, q0, a20), a21 = _mm256_fmadd_pd(d2, q1, a21);
            a30 = _mm256_fmadd_pd(d3, q0, a30), a31 = _mm256_fmadd_pd(d3, q1, a31);
        }
        const __m256d acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
        for (int k = 0; k < 4; k++) {
            double *xk = x0 + k * in + c;
            _mm256_storeu_pd(xk, _mm256_add_pd(_mm256_loadu_pd(xk), acc[k][0]));
            _mm256_storeu_pd(xk + 4, _mm256_add_pd(_mm256_loadu_pd(xk + 4), acc[k][1]));
        }
    }
    for (int64_t c = c8; c < in; c++)
        for (int k = 0; k < 4; k++) {
            double acc = 0.0;
            for (int64_t r = 0; r < out; r++) acc += d[k * out + r] * (double)W[r * in + c];
            x0[k * in + c] += acc;
        }
}

/* dW[r0..r0+3, :] += dy^T x: 4 rows x 8 columns per pass summed over all tokens in order in
 * double, then added to the float gradient with one rounding (as add_f32). */
static AVX2 void dw4_avx2(float *dW, const double *dy, const double *x, int64_t n, int64_t in,
                          int64_t out, int64_t r0) {
    const int64_t c8 = in & ~(int64_t)7;
    for (int64_t c = 0; c < c8; c += 8) {
        __m256d a00 = _mm256_setzero_pd(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
                a30 = a00, a31 = a00;
        for (int64_t s = 0; s < n; s++) {
            const double *xs = x + s * in + c, *d = dy + s * out + r0;
            const __m256d x0 = _mm256_loadu_pd(xs), x1 = _mm256_loadu_pd(xs + 4);
            const __m256d d0 = _mm256_broadcast_sd(d), d1 = _mm256_broadcast_sd(d + 1);
            const __m256d d2 = _mm256_broadcast_sd(d + 2), d3 = _mm256_broadcast_sd(d + 3);
            a00 = _mm256_fmadd_pd(d0, x0, a00), a01 = _mm256_fmadd_pd(d0, x1, a01);
            a10 = _mm256_fmadd_pd(d1, x0, a10), a11 = _mm256_fmadd_pd(d1, x1, a11);
            a20 = _mm256_fmadd_pd(d2, x0, a20), a21 = _mm256_fmadd_pd(d2, x1, a21);
            a30 = _mm256_fmadd_pd(d3, x0, a30), a31 = _mm256_fmadd_pd(d3, x1, a31);
        }
        const __m256d acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
        for (int k = 0; k < 4; k++) {
            float *g = dW + (r0 + k) * in + c;
            const __m256d g0 = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(g)), acc[k][0]);
            const __m256d g1 = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(g + 4)), acc[k][1]);
            _mm_storeu_ps(g, _mm256_cvtpd_ps(g0));
            _mm_storeu_ps(g + 4, _mm256_cvtpd_ps(g1));
        }
    }
    for (int64_t c = c8; c < in; c++)
        for (int k = 0; k < 4; k++) {
            double acc = 0.0;
            for (int64_t s = 0; s < n; s++) acc += dy[s * out + r0 + k] * x[s * in + c];
            add_f32(&dW[(r0 + k) * in + c], acc);
        }
}

/* y[s, r] = sum_c x[s, c] W[r, c]. Parallel over blocks of 4 output rows: each x row is
 * loaded once for 4 weight rows. A row's sum runs over c in the same (vectorised) order
 * whichever thread computes it. */
/* One parallel job of a linear: the operands, and whether the AVX2 kernels apply. */
typedef struct {
    double *y, *dx;
    float *dW;
    const double *x, *dy;
    const float *W;
    int64_t n, in, out;
    int avx2;
} lin_job;

/* Runs items 0..n-1 of fn on the worker pool when the product is large enough (kernels/pool.h:
 * on a shared machine an OpenMP barrier waits a time slice for a descheduled thread), else
 * inline. Each item writes its own outputs in a fixed order, so the result does not depend on
 * which thread runs it. */
static void run_items(int64_t items, dsv3_pool_fn fn, lin_job *j) {
    if (j->n * j->in * j->out >= PAR_MIN) {
        dsv3_pool_for(items, fn, j);
        return;
    }
    for (int64_t i = 0; i < items; i++) fn(j, i, 0);
}

/* y rows r0..r0+3 (fewer at the edge) for every token. */
static void fwd_item(void *ctx, int64_t rb, int tid) {
    (void)tid;
    const lin_job *j = ctx;
    double *y = j->y;
    const double *x = j->x;
    const float *W = j->W;
    const int64_t n = j->n, in = j->in, out = j->out;
    const int64_t r0 = rb * 4;
    if (j->avx2 && r0 + 4 <= out) {
        fwd4_avx2(y, x, W, n, in, out, r0);
        return;
    }
    if (r0 + 4 <= out) {
        const float *w0 = W + r0 * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
        for (int64_t s = 0; s < n; s++) {
            const double *xs = x + s * in;
            double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
            for (int64_t c = 0; c < in; c++) {
                const double xv = xs[c];
                a0 += xv * (double)w0[c];
                a1 += xv * (double)w1[c];
                a2 += xv * (double)w2[c];
                a3 += xv * (double)w3[c];
            }
            double *ys = y + s * out + r0;
            ys[0] = a0, ys[1] = a1, ys[2] = a2, ys[3] = a3;
        }
        return;
    }
    for (int64_t r = r0; r < out; r++) {
        const float *w = W + r * in;
        for (int64_t s = 0; s < n; s++) {
            const double *xs = x + s * in;
            double acc = 0.0;
#pragma omp simd reduction(+ : acc)
            for (int64_t c = 0; c < in; c++) acc += xs[c] * (double)w[c];
            y[s * out + r] = acc;
        }
    }
}

void dsv3_op_linear_forward(double *y, const double *x, const float *W, int64_t n, int64_t in,
                            int64_t out) {
    lin_job j = {.y = y, .x = x, .W = W, .n = n, .in = in, .out = out, .avx2 = use_avx2()};
    run_items((out + 3) / 4, fwd_item, &j);
}

/* dx[s, c] += sum_r dy[s, r] W[r, c]   (parallel over blocks of 4 tokens; a W row is loaded
 *                                       once per block; the sum over r runs in order)
 * dW[r, c] += sum_s dy[s, r] x[s, c]   (parallel over blocks of 4 rows; 128-column spans are
 *                                       summed in double over all tokens in order, then added
 *                                       to the float gradient with one rounding). */
/* dx rows of the 4 tokens s0.. (fewer at the edge). */
static void dx_item(void *ctx, int64_t sb, int tid) {
    (void)tid;
    const lin_job *j = ctx;
    double *dx = j->dx;
    const double *dy = j->dy;
    const float *W = j->W;
    const int64_t n = j->n, in = j->in, out = j->out;
    const int64_t s0 = sb * 4;
    if (j->avx2 && s0 + 4 <= n) {
        dx4_avx2(dx, dy, W, in, out, s0);
        return;
    }
    if (s0 + 4 <= n) {
        double *x0 = dx + s0 * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;
        const double *d = dy + s0 * out;
        for (int64_t r = 0; r < out; r++) {
            const double d0 = d[r], d1 = d[out + r], d2 = d[2 * out + r], d3 = d[3 * out + r];
            const float *w = W + r * in;
#pragma omp simd
            for (int64_t c = 0; c < in; c++) {
                const double wv = (double)w[c];
                x0[c] += d0 * wv;
                x1[c] += d1 * wv;
                x2[c] += d2 * wv;
                x3[c] += d3 * wv;
            }
        }
        return;
    }
    for (int64_t s = s0; s < n; s++) {
        double *dxs = dx + s * in;
        for (int64_t r = 0; r < out; r++) {
            const double d = dy[s * out + r];
            const float *w = W + r * in;
#pragma omp simd
            for (int64_t c = 0; c < in; c++) dxs[c] += d * (double)w[c];
        }
    }
}

/* dW rows r0..r0+3 (fewer at the edge). */
static void dw_item(void *ctx, int64_t rb, int tid) {
    (void)tid;
    enum { SPAN = 128 };
    const lin_job *j = ctx;
    float *dW = j->dW;
    const double *dy = j->dy, *x = j->x;
    const int64_t n = j->n, in = j->in, out = j->out;
    const int64_t r0 = rb * 4, nr = out - r0 < 4 ? out - r0 : 4;
    if (j->avx2 && nr == 4) {
        dw4_avx2(dW, dy, x, n, in, out, r0);
        return;
    }
    double acc[4][SPAN];
    for (int64_t c0 = 0; c0 < in; c0 += SPAN) {
        const int64_t len = in - c0 < SPAN ? in - c0 : SPAN;
        memset(acc, 0, sizeof acc);
        for (int64_t s = 0; s < n; s++) {
            const double *xs = x + s * in + c0, *d = dy + s * out + r0;
            if (nr == 4) {
                const double d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
#pragma omp simd
                for (int64_t j = 0; j < len; j++) {
                    const double xv = xs[j];
                    acc[0][j] += d0 * xv;
                    acc[1][j] += d1 * xv;
                    acc[2][j] += d2 * xv;
                    acc[3][j] += d3 * xv;
                }
            } else {
                for (int64_t k = 0; k < nr; k++)
#pragma omp simd
                    for (int64_t j = 0; j < len; j++) acc[k][j] += d[k] * xs[j];
            }
        }
        for (int64_t k = 0; k < nr; k++)
            for (int64_t j = 0; j < len; j++) add_f32(&dW[(r0 + k) * in + c0 + j], acc[k][j]);
    }
}

void dsv3_op_linear_backward(double *dx, float *dW, const double *dy, const double *x,
                             const float *W, int64_t n, int64_t in, int64_t out) {
    lin_job j = {.dx = dx, .dW = dW, .dy = dy, .x = x, .W = W, .n = n, .in = in, .out = out,
                 .avx2 = use_avx2()};
    if (dx) run_items((n + 3) / 4, dx_item, &j);
    if (dW) run_items((out + 3) / 4, dw_item, &j);
}

/* The float32 versions: one packed product each (kernels/cpu/gemm.h), operands as strided views.
 *   y  = x W^T:   A = x [n, in],            B = W^T (W read column-wise)
 *   dx += dy W:   A = dy [n, out],          B = W [out, in]
 *   dW += dy^T x: A = dy^T (dy column-wise), B = x [n, in] */
int64_t dsv3_op_linear_ws(int64_t n, int64_t in, int64_t out) {
    const int64_t f = dsv3_gemm_ws_floats(n, out, in), d = dsv3_gemm_ws_floats(n, in, out);
    const int64_t w = dsv3_gemm_ws_floats(out, in, n);
    return f > d ? (f > w ? f : w) : (d > w ? d : w);
}

void dsv3_op_linear_forward_f32(double *y, const double *x, const float *W, int64_t n,
                                int64_t in, int64_t out, float *ws) {
    const dsv3_mview A = {x, 1, in, 1}, B = {W, 0, 1, in};
    dsv3_gemm(y, out, DSV3_GEMM_SET_F64, A, B, n, out, in, ws);
}

void dsv3_op_linear_backward_f32(double *dx, float *dW, const double *dy, const double *x,
                                 const float *W, int64_t n, int64_t in, int64_t out, float *ws) {
    if (dx) {
        const dsv3_mview A = {dy, 1, out, 1}, B = {W, 0, in, 1};
        dsv3_gemm(dx, in, DSV3_GEMM_ADD_F64, A, B, n, in, out, ws);
    }
    if (dW) {
        const dsv3_mview A = {dy, 1, 1, out}, B = {x, 1, in, 1};
        dsv3_gemm(dW, in, DSV3_GEMM_ADD_F32, A, B, out, in, n, ws);
    }
}

/* ---------------------------------------------------------------- RMSNorm --------------- */

/* One elementwise job: every operand any of the ops below needs. */
typedef struct {
    double *y, *dx, *da, *db, *rstd, *w, *s, *dz;
    float *dg;
    const double *x, *dy, *a, *b, *z, *dw, *ds_extra, *rs;
    const float *g, *inv_freq;
    const int32_t *idx;
    const int64_t *pos;
    int64_t dim, nvec, stride, d, E, K;
    double eps, factor, dir, R;
    int norm;
} ew_job;

/* spec/architecture.md §4.2: y = g * x * rstd, rstd = 1/sqrt(mean(x^2) + eps). */
static void rmsnorm_fwd_rows(void *ctx, int64_t r0, int64_t r1) {
    const ew_job *j = ctx;
    const int64_t dim = j->dim;
    for (int64_t s = r0; s < r1; s++) {
        const double *xs = j->x + s * dim;
        double ss = 0.0;
        for (int64_t i = 0; i < dim; i++) ss += xs[i] * xs[i];
        const double r = 1.0 / sqrt(ss / (double)dim + j->eps);
        j->rstd[s] = r;
        double *ys = j->y + s * dim;
        for (int64_t i = 0; i < dim; i++) ys[i] = (double)j->g[i] * (xs[i] * r);
    }
}

void dsv3_op_rmsnorm_forward(double *y, double *rstd, const double *x, const float *g, int64_t n,
                             int64_t dim, double eps) {
    ew_job j = {.y = y, .rstd = rstd, .x = x, .g = g, .dim = dim, .eps = eps};
    par_range(n, dim, rmsnorm_fwd_rows, &j);
}

/* spec/training.md §9.1 with xhat = x * rstd:
 *   dg += sum_tokens dy * xhat
 *   dx += rstd * (g*dy - xhat * mean(g*dy*xhat))
 * rstd is the forward's (recomputing it from x would give the same value). dx is split by
 * tokens, dg by columns (each column summed over all tokens in order). */
static void rmsnorm_dx_rows(void *ctx, int64_t r0, int64_t r1) {
    const ew_job *j = ctx;
    const int64_t dim = j->dim;
    for (int64_t s = r0; s < r1; s++) {
        const double *xs = j->x + s * dim, *dys = j->dy + s * dim, r = j->rs[s];
        double dot = 0.0;
        for (int64_t i = 0; i < dim; i++) dot += (double)j->g[i] * dys[i] * xs[i] * r;
        const double mean = dot / (double)dim;
        double *dxs = j->dx + s * dim;
        for (int64_t i = 0; i < dim; i++) dxs[i] += r * ((double)j->g[i] * dys[i] - xs[i] * r * mean);
    }
}

static void rmsnorm_dg_cols(void *ctx, int64_t c0, int64_t c1) {
    const ew_job *j = ctx;
    const int64_t dim = j->dim, n = j->nvec;
    for (int64_t i = c0; i < c1; i++) {
        double acc = 0.0;
        for (int64_t s = 0; s < n; s++) acc += j->dy[s * dim + i] * j->x[s * dim + i] * j->rs[s];
        add_f32(&j->dg[i], acc);
    }
}

void dsv3_op_rmsnorm_backward(double *dx, float *dg, const double *dy, const double *x,
                              const double *rstd, const float *g, int64_t n, int64_t dim) {
    ew_job j = {.dx = dx, .dg = dg, .dy = dy, .x = x, .rs = rstd, .g = g, .dim = dim, .nvec = n};
    if (dx) par_range(n, dim, rmsnorm_dx_rows, &j);
    if (dg) par_range(dim, n, rmsnorm_dg_cols, &j);
}

/* ---------------------------------------------------------------- RoPE ------------------ */

/* spec/architecture.md §4.7 (official interleaved layout) and §4.8 (inv_freq, YaRN applied):
 *   y[2k] = f (x[2k] cos - x[2k+1] sin),  y[2k+1] = f (x[2k] sin + x[2k+1] cos),
 * angle = pos * inv_freq[k] formed in double as the inference kernel does. */
static void rope_rows(void *ctx, int64_t r0, int64_t r1) {
    const ew_job *j = ctx;
    for (int64_t s = r0; s < r1; s++) {
        for (int64_t k = 0; k < j->d / 2; k++) {
            const double ang = (double)j->pos[s] * (double)j->inv_freq[k];
            const double cs = cos(ang) * j->factor, sn = j->dir * sin(ang) * j->factor;
            for (int64_t v = 0; v < j->nvec; v++) {
                double *p = j->y + (s * j->nvec + v) * j->stride + 2 * k;
                const double a = p[0], b = p[1];
                p[0] = a * cs - b * sn;
                p[1] = a * sn + b * cs;
            }
        }
    }
}

static void rope_rotate(double *x, int64_t n, int64_t nvec, int64_t stride, int64_t d,
                        const int64_t *pos, const float *inv_freq, double factor, double dir) {
    ew_job j = {.y = x, .nvec = nvec, .stride = stride, .d = d, .pos = pos, .inv_freq = inv_freq,
                .factor = factor, .dir = dir};
    par_range(n, nvec * d, rope_rows, &j);
}

void dsv3_op_rope_forward(double *x, int64_t n, int64_t nvec, int64_t stride, int64_t d,
                          const int64_t *pos, const float *inv_freq, double factor) {
    rope_rotate(x, n, nvec, stride, d, pos, inv_freq, factor, 1.0);
}

/* spec/training.md §9.4: the transpose of a rotation is the rotation by -theta:
 * dx0 = f (dy0 cos + dy1 sin), dx1 = f (-dy0 sin + dy1 cos). */
void dsv3_op_rope_backward(double *dx, int64_t n, int64_t nvec, int64_t stride, int64_t d,
                           const int64_t *pos, const float *inv_freq, double factor) {
    rope_rotate(dx, n, nvec, stride, d, pos, inv_freq, factor, -1.0);
}

/* ---------------------------------------------------------------- attention ------------- */

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* spec/architecture.md §4.4 and §4.9, per sequence b and head h:
 *   score[t1, t2] = q[t1] . k[t2] * scale for t2 <= t1 (causal), P = softmax over t2,
 *   o[t1] = sum_t2 P[t1, t2] v[t2].
 * Parallel over (b, h) pairs; each writes only its own rows. */
/* One attention job: operands and sizes (items are (b, h) pairs). */
typedef struct {
    double *o, *P, *dq, *dk, *dv;
    const double *q, *k, *v, *dout, *Pc;
    int64_t T, nh, dqk, dv_, B;
    double scale;
} attn_job;

static void attn_fwd_item(void *ctx, int64_t bh, int tid) {
    (void)tid;
    const attn_job *j = ctx;
    double *o = j->o, *P = j->P;
    const double *q = j->q, *k = j->k, *v = j->v, scale = j->scale;
    const int64_t T = j->T, nh = j->nh, dqk = j->dqk, dv = j->dv_;
    const int64_t b = bh / nh, h = bh % nh;
    for (int64_t t1 = 0; t1 < T; t1++) {
        double *p = P + (bh * T + t1) * T;
        const double *qt = q + ((b * T + t1) * nh + h) * dqk;
        double mx = -INFINITY;
        for (int64_t t2 = 0; t2 <= t1; t2++) {
            p[t2] = dot(qt, k + ((b * T + t2) * nh + h) * dqk, dqk) * scale;
            if (p[t2] > mx) mx = p[t2];
        }
        double sum = 0.0;
        for (int64_t t2 = 0; t2 <= t1; t2++) sum += (p[t2] = exp(p[t2] - mx));
        for (int64_t t2 = 0; t2 <= t1; t2++) p[t2] /= sum;
        for (int64_t t2 = t1 + 1; t2 < T; t2++) p[t2] = 0.0;
        double *ot = o + ((b * T + t1) * nh + h) * dv;
        memset(ot, 0, (size_t)dv * sizeof *ot);
        for (int64_t t2 = 0; t2 <= t1; t2++) {
            const double pt = p[t2], *vt = v + ((b * T + t2) * nh + h) * dv;
            for (int64_t i = 0; i < dv; i++) ot[i] += pt * vt[i];
        }
    }
}

void dsv3_op_attention_forward(double *o, double *P, const double *q, const double *k,
                               const double *v, int64_t B, int64_t T, int64_t nh, int64_t dqk,
                               int64_t dv, double scale) {
    attn_job j = {.o = o, .P = P, .q = q, .k = k, .v = v, .T = T, .nh = nh, .dqk = dqk, .dv_ = dv,
                  .B = B, .scale = scale};
    if (B * nh * T * T * (dqk + dv) >= PAR_MIN) dsv3_pool_for(B * nh, attn_fwd_item, &j);
    else
        for (int64_t bh = 0; bh < B * nh; bh++) attn_fwd_item(&j, bh, 0);
}

/* Backward of the above, for query t1 with upstream do:
 *   dv[t2] += P[t2] do;  dP[t2] = do . v[t2];  dS[t2] = P[t2] (dP[t2] - sum_u P[u] dP[u]);
 *   dq[t1] += scale sum_t2 dS[t2] k[t2];  dk[t2] += scale dS[t2] q[t1].
 * dP is recomputed in a second pass instead of being stored (no scratch). */
static void attn_bwd_item(void *ctx, int64_t bh, int tid) {
    (void)tid;
    const attn_job *j = ctx;
    double *dq = j->dq, *dk = j->dk, *dv = j->dv;
    const double *dout = j->dout, *P = j->Pc, *q = j->q, *k = j->k, *v = j->v, scale = j->scale;
    const int64_t T = j->T, nh = j->nh, dqk = j->dqk, dvh = j->dv_;
    const int64_t b = bh / nh, h = bh % nh;
    for (int64_t t1 = 0; t1 < T; t1++) {
        const double *p = P + (bh * T + t1) * T;
        const int64_t r1 = (b * T + t1) * nh + h;
        const double *go = dout + r1 * dvh, *qt = q + r1 * dqk;
        double sum = 0.0;
        for (int64_t t2 = 0; t2 <= t1; t2++)
            sum += p[t2] * dot(go, v + ((b * T + t2) * nh + h) * dvh, dvh);
        double *dqt = dq + r1 * dqk;
        for (int64_t t2 = 0; t2 <= t1; t2++) {
            const int64_t r2 = (b * T + t2) * nh + h;
            const double dP = dot(go, v + r2 * dvh, dvh);
            const double dS = p[t2] * (dP - sum) * scale;
            double *dvt = dv + r2 * dvh, *dkt = dk + r2 * dqk;
            const double *kt = k + r2 * dqk;
            for (int64_t i = 0; i < dvh; i++) dvt[i] += p[t2] * go[i];
            for (int64_t i = 0; i < dqk; i++) {
                dqt[i] += dS * kt[i];
                dkt[i] += dS * qt[i];
            }
        }
    }
}

void dsv3_op_attention_backward(double *dq, double *dk, double *dv, const double *dout,
                                const double *P, const double *q, const double *k,
                                const double *v, int64_t B, int64_t T, int64_t nh, int64_t dqk,
                                int64_t dvh, double scale) {
    attn_job j = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .Pc = P, .q = q, .k = k, .v = v,
                  .T = T, .nh = nh, .dqk = dqk, .dv_ = dvh, .B = B, .scale = scale};
    if (B * nh * T * T * (dqk + dvh) >= PAR_MIN) dsv3_pool_for(B * nh, attn_bwd_item, &j);
    else
        for (int64_t bh = 0; bh < B * nh; bh++) attn_bwd_item(&j, bh, 0);
}

/* ---- float32 attention. Per thread: q [T, dqk], kT [dqk, T], kf [T, dqk], vf [T, dv],
 * vT [dv, T], go [T, dv], row [T], row2 [T], acc [max(dqk, dv)], PT and dST [T, T] (the
 * backward's probabilities and score gradients, transposed). */
int64_t dsv3_op_attention_ws(int64_t T, int64_t dqk, int64_t dv) {
    const int64_t w = dqk > dv ? dqk : dv;
    return T * (3 * dqk + 3 * dv) + 2 * T * T + 2 * T + w + 64;
}

typedef struct {
    float *qf, *kT, *kf, *vf, *vT, *go, *row, *row2, *acc, *PT, *dST;
} attn_ws;

static attn_ws attn_slice(const attn_job *j, float *ws, int tid) {
    const int64_t T = j->T, dqk = j->dqk, dv = j->dv_;
    float *p = ws + (int64_t)tid * dsv3_op_attention_ws(T, dqk, dv);
    attn_ws w;
    w.qf = p, p += T * dqk;
    w.kT = p, p += T * dqk;
    w.kf = p, p += T * dqk;
    w.vf = p, p += T * dv;
    w.vT = p, p += T * dv;
    w.go = p, p += T * dv;
    w.PT = p, p += T * T;
    w.dST = p, p += T * T;
    w.row = p, p += T;
    w.row2 = p, p += T;
    w.acc = p;
    return w;
}

/* out[t] = sum_{i<d} vec[i] matT[i * ld + t] for t < n, a vector times a row-major matrix, 32
 * outputs at a time in four registers. It serves every product of the attention: a query's
 * scores against the keys (vec = q, matT = K^T), an output gradient's against the values
 * (dP), the probability-weighted value sum (vec = P row, matT = V, ld = dv), dq (dS row times
 * K) and, per key, dk and dv (a column of dS or P, kept transposed, times Q or dO). */
static AVX2 void vecmat_avx2(float *out, const float *vec, const float *matT, int64_t ld,
                             int64_t d, int64_t n) {
    int64_t t = 0;
    for (; t + 32 <= n; t += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < d; i++) {
            const __m256 x = _mm256_broadcast_ss(vec + i);
            const float *r = matT + i * ld + t;
            a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r), a0);
            a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 8), a1);
            a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 16), a2);
            a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 24), a3);
        }
        _mm256_storeu_ps(out + t, a0), _mm256_storeu_ps(out + t + 8, a1);
        _mm256_storeu_ps(out + t + 16, a2), _mm256_storeu_ps(out + t + 24, a3);
    }
    for (; t + 8 <= n; t += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t i = 0; i < d; i++)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(vec + i), _mm256_loadu_ps(matT + i * ld + t), a0);
        _mm256_storeu_ps(out + t, a0);
    }
    for (; t < n; t++) {
        float a = 0.0f;
        for (int64_t i = 0; i < d; i++) a += vec[i] * matT[i * ld + t];
        out[t] = a;
    }
}

/* The portable version: the same sums, plain loops. */
static void vecmat_plain(float *out, const float *vec, const float *matT, int64_t ld, int64_t d,
                          int64_t n) {
    for (int64_t t = 0; t < n; t++) out[t] = 0.0f;
    for (int64_t i = 0; i < d; i++)
        for (int64_t t = 0; t < n; t++) out[t] += vec[i] * matT[i * ld + t];
}


static inline __attribute__((always_inline)) void vecmat(int avx2, float *out, const float *vec,
                                                        const float *matT, int64_t ld, int64_t d,
                                                        int64_t n) {
    if (avx2) vecmat_avx2(out, vec, matT, ld, d, n);
    else vecmat_plain(out, vec, matT, ld, d, n);
}

/* Copies head h of sequence b of src [B*T, nh, d] (double) to float: dst[t * d + i], or with
 * transposed dst[i * T + t]. */
static inline __attribute__((always_inline)) void gather_head(float *dst, const double *src,
                                                              const attn_job *j, int64_t b,
                                                              int64_t h, int64_t d, int transposed) {
    const int64_t T = j->T, nh = j->nh;
    for (int64_t t = 0; t < T; t++) {
        const double *row = src + ((b * T + t) * nh + h) * d;
        if (transposed)
            for (int64_t i = 0; i < d; i++) dst[i * T + t] = (float)row[i];
        else
            for (int64_t i = 0; i < d; i++) dst[t * d + i] = (float)row[i];
    }
}

/* Forward for one (b, h): scores of query t1 against keys 0..t1 as a vector loop over keys
 * (kT), softmax with one expf per score, o[t1] as a vector loop over the value dimension. */
static inline __attribute__((always_inline)) void attn_fwd_f32_body(const attn_job *j, int64_t bh,
                                                                    float *ws0, int tid, int avx2) {
    const int64_t T = j->T, nh = j->nh, dqk = j->dqk, dv = j->dv_;
    const int64_t b = bh / nh, h = bh % nh;
    const float scale = (float)j->scale;
    attn_ws w = attn_slice(j, ws0, tid);
    gather_head(w.qf, j->q, j, b, h, dqk, 0);
    gather_head(w.kT, j->k, j, b, h, dqk, 1);
    gather_head(w.vf, j->v, j, b, h, dv, 0);
    float *s = w.row, *acc = w.acc;
    for (int64_t t1 = 0; t1 < T; t1++) {
        const int64_t n1 = t1 + 1;
        vecmat(avx2, s, w.qf + t1 * dqk, w.kT, T, dqk, n1);
        float mx = -INFINITY;
        for (int64_t t2 = 0; t2 < n1; t2++) {
            s[t2] *= scale;
            mx = s[t2] > mx ? s[t2] : mx;
        }
        float sum = 0.0f;
        for (int64_t t2 = 0; t2 < n1; t2++) sum += (s[t2] = expf(s[t2] - mx));
        const float inv = 1.0f / sum;
        double *prow = j->P + (bh * T + t1) * T;
        for (int64_t t2 = 0; t2 < n1; t2++) prow[t2] = (double)(s[t2] *= inv);
        for (int64_t t2 = n1; t2 < T; t2++) prow[t2] = 0.0;
        vecmat(avx2, acc, s, w.vf, dv, n1, dv);
        double *ot = j->o + ((b * T + t1) * nh + h) * dv;
        for (int64_t i = 0; i < dv; i++) ot[i] = (double)acc[i];
    }
}

/* Backward for one (b, h), the double version's equations: per query dP over keys (vT), dS
 * and dq[t1]; then per key dk[t2] and dv[t2] as register-accumulated sums over the queries
 * that saw it, from dS and P kept transposed. */
static inline __attribute__((always_inline)) void attn_bwd_f32_body(const attn_job *j, int64_t bh,
                                                                    float *ws0, int tid, int avx2) {
    const int64_t T = j->T, nh = j->nh, dqk = j->dqk, dv = j->dv_;
    const int64_t b = bh / nh, h = bh % nh;
    const float scale = (float)j->scale;
    attn_ws w = attn_slice(j, ws0, tid);
    gather_head(w.qf, j->q, j, b, h, dqk, 0);
    gather_head(w.kf, j->k, j, b, h, dqk, 0);
    gather_head(w.vT, j->v, j, b, h, dv, 1);
    gather_head(w.go, j->dout, j, b, h, dv, 0);
    /* by query: dP, dS and dq[t1]; P and dS are kept transposed (PT[t2][t1], dST[t2][t1]) */
    float *p = w.row, *dS = w.row2, *acc = w.acc;
    for (int64_t t1 = 0; t1 < T; t1++) {
        const int64_t n1 = t1 + 1;
        const double *prow = j->Pc + (bh * T + t1) * T;
        for (int64_t t2 = 0; t2 < n1; t2++) p[t2] = (float)prow[t2];
        const float *g = w.go + t1 * dv;
        vecmat(avx2, dS, g, w.vT, T, dv, n1); /* dP */
        float sum = 0.0f;
        for (int64_t t2 = 0; t2 < n1; t2++) sum += p[t2] * dS[t2];
        for (int64_t t2 = 0; t2 < n1; t2++) {
            dS[t2] = p[t2] * (dS[t2] - sum) * scale;
            w.dST[t2 * T + t1] = dS[t2];
            w.PT[t2 * T + t1] = p[t2];
        }
        vecmat(avx2, acc, dS, w.kf, dqk, n1, dqk); /* dq[t1] = sum_t2 dS k[t2] */
        double *dqt = j->dq + ((b * T + t1) * nh + h) * dqk;
        for (int64_t i = 0; i < dqk; i++) dqt[i] += (double)acc[i];
    }
    /* by key: dk[t2] = sum_{t1 >= t2} dS[t1][t2] q[t1], dv[t2] = sum_{t1 >= t2} P[t1][t2] do[t1] */
    for (int64_t t2 = 0; t2 < T; t2++) {
        const int64_t r = (b * T + t2) * nh + h, m = T - t2;
        vecmat(avx2, acc, w.dST + t2 * T + t2, w.qf + t2 * dqk, dqk, m, dqk);
        for (int64_t i = 0; i < dqk; i++) j->dk[r * dqk + i] += (double)acc[i];
        vecmat(avx2, acc, w.PT + t2 * T + t2, w.go + t2 * dv, dv, m, dv);
        for (int64_t i = 0; i < dv; i++) j->dv[r * dv + i] += (double)acc[i];
    }
}

/* An attention job with its float workspace. */
typedef struct {
    attn_job j;
    float *ws;
} attn_f32_job;

static AVX2 void attn_fwd_f32_avx2(const attn_job *j, int64_t bh, float *ws, int tid) {
    attn_fwd_f32_body(j, bh, ws, tid, 1);
}
static void attn_fwd_f32_portable(const attn_job *j, int64_t bh, float *ws, int tid) {
    attn_fwd_f32_body(j, bh, ws, tid, 0);
}
static AVX2 void attn_bwd_f32_avx2(const attn_job *j, int64_t bh, float *ws, int tid) {
    attn_bwd_f32_body(j, bh, ws, tid, 1);
}
static void attn_bwd_f32_portable(const attn_job *j, int64_t bh, float *ws, int tid) {
    attn_bwd_f32_body(j, bh, ws, tid, 0);
}

static void attn_fwd_f32_item(void *ctx, int64_t bh, int tid) {
    const attn_f32_job *f = ctx;
    if (use_avx2()) attn_fwd_f32_avx2(&f->j, bh, f->ws, tid);
    else attn_fwd_f32_portable(&f->j, bh, f->ws, tid);
}

static void attn_bwd_f32_item(void *ctx, int64_t bh, int tid) {
    const attn_f32_job *f = ctx;
    if (use_avx2()) attn_bwd_f32_avx2(&f->j, bh, f->ws, tid);
    else attn_bwd_f32_portable(&f->j, bh, f->ws, tid);
}

void dsv3_op_attention_forward_f32(double *o, double *P, const double *q, const double *k,
                                   const double *v, int64_t B, int64_t T, int64_t nh,
                                   int64_t dqk, int64_t dv, double scale, float *ws) {
    attn_f32_job f = {.j = {.o = o, .P = P, .q = q, .k = k, .v = v, .T = T, .nh = nh, .dqk = dqk,
                           .dv_ = dv, .B = B, .scale = scale},
                      .ws = ws};
    if (B * nh * T * T * (dqk + dv) >= PAR_MIN) dsv3_pool_for(B * nh, attn_fwd_f32_item, &f);
    else
        for (int64_t bh = 0; bh < B * nh; bh++) attn_fwd_f32_item(&f, bh, 0);
}

void dsv3_op_attention_backward_f32(double *dq, double *dk, double *dv, const double *dout,
                                    const double *P, const double *q, const double *k,
                                    const double *v, int64_t B, int64_t T, int64_t nh,
                                    int64_t dqk, int64_t dvh, double scale, float *ws) {
    attn_f32_job f = {.j = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .Pc = P, .q = q, .k = k,
                           .v = v, .T = T, .nh = nh, .dqk = dqk, .dv_ = dvh, .B = B,
                           .scale = scale},
                      .ws = ws};
    if (B * nh * T * T * (dqk + dvh) >= PAR_MIN) dsv3_pool_for(B * nh, attn_bwd_f32_item, &f);
    else
        for (int64_t bh = 0; bh < B * nh; bh++) attn_bwd_f32_item(&f, bh, 0);
}

/* ---------------------------------------------------------------- SwiGLU ---------------- */

/* spec/architecture.md §4.10: h = silu(a) * b, silu(a) = a * sigma(a). */
static void swiglu_fwd_range(void *ctx, int64_t i0, int64_t i1) {
    const ew_job *j = ctx;
    for (int64_t i = i0; i < i1; i++) j->y[i] = j->a[i] / (1.0 + exp(-j->a[i])) * j->b[i];
}

void dsv3_op_swiglu_forward(double *h, const double *a, const double *b, int64_t n) {
    ew_job j = {.y = h, .a = a, .b = b};
    par_range(n, 1, swiglu_fwd_range, &j);
}

/* spec/training.md §9.2: da = dh * b * sigma(a) * (1 + a (1 - sigma(a))); db = dh * silu(a). */
static void swiglu_bwd_range(void *ctx, int64_t i0, int64_t i1) {
    const ew_job *j = ctx;
    for (int64_t i = i0; i < i1; i++) {
        const double a = j->a[i], sg = 1.0 / (1.0 + exp(-a));
        j->da[i] += j->dy[i] * j->b[i] * sg * (1.0 + a * (1.0 - sg));
        j->db[i] += j->dy[i] * a * sg;
    }
}

void dsv3_op_swiglu_backward(double *da, double *db, const double *dh, const double *a,
                             const double *b, int64_t n) {
    ew_job j = {.da = da, .db = db, .dy = dh, .a = a, .b = b};
    par_range(n, 1, swiglu_bwd_range, &j);
}

/* The float32 path's SwiGLU: the same formulas eight elements at a time in float lanes with a
 * vectorised e^x (relative error ~1e-7), values kept in double. Tails (and CPUs without
 * AVX2/F16C) take the double code. */
static TGT int64_t swiglu_fwd_f32_vec(const ew_job *j, int64_t i, int64_t i1) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= i1; i += 8) {
        const __m256 a = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(j->a + i + 4)),
                                         _mm256_cvtpd_ps(_mm256_loadu_pd(j->a + i)));
        const __m256 b = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(j->b + i + 4)),
                                         _mm256_cvtpd_ps(_mm256_loadu_pd(j->b + i)));
        const __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), a))));
        const __m256 h = _mm256_mul_ps(_mm256_mul_ps(a, sg), b);
        _mm256_storeu_pd(j->y + i, _mm256_cvtps_pd(_mm256_castps256_ps128(h)));
        _mm256_storeu_pd(j->y + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(h, 1)));
    }
    return i;
}

static TGT int64_t swiglu_bwd_f32_vec(const ew_job *j, int64_t i, int64_t i1) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= i1; i += 8) {
#define LD8(p) _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd((p) + i + 4)), _mm256_cvtpd_ps(_mm256_loadu_pd((p) + i)))
        const __m256 a = LD8(j->a), b = LD8(j->b), dh = LD8(j->dy);
        const __m256 da0 = LD8(j->da), db0 = LD8(j->db);
#undef LD8
        const __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), a))));
        /* da += dh b sg (1 + a (1 - sg)); db += dh a sg */
        const __m256 da = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dh, b), sg),
                                        _mm256_add_ps(one, _mm256_mul_ps(a, _mm256_sub_ps(one, sg))));
        const __m256 db = _mm256_mul_ps(_mm256_mul_ps(dh, a), sg);
        const __m256 ra = _mm256_add_ps(da0, da), rb = _mm256_add_ps(db0, db);
        _mm256_storeu_pd(j->da + i, _mm256_cvtps_pd(_mm256_castps256_ps128(ra)));
        _mm256_storeu_pd(j->da + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(ra, 1)));
        _mm256_storeu_pd(j->db + i, _mm256_cvtps_pd(_mm256_castps256_ps128(rb)));
        _mm256_storeu_pd(j->db + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(rb, 1)));
    }
    return i;
}

/* The CPU runs TGT code (exp8's target: AVX2, FMA, F16C). */
static int has_tgt(void) {
    return use_avx2() && __builtin_cpu_supports("f16c");
}

static void swiglu_fwd_f32_range(void *ctx, int64_t i0, int64_t i1) {
    const int64_t i = has_tgt() ? swiglu_fwd_f32_vec(ctx, i0, i1) : i0;
    swiglu_fwd_range(ctx, i, i1);
}

static void swiglu_bwd_f32_range(void *ctx, int64_t i0, int64_t i1) {
    const int64_t i = has_tgt() ? swiglu_bwd_f32_vec(ctx, i0, i1) : i0;
    swiglu_bwd_range(ctx, i, i1);
}

void dsv3_op_swiglu_forward_f32(double *h, const double *a, const double *b, int64_t n) {
    ew_job j = {.y = h, .a = a, .b = b};
    par_range(n, 1, swiglu_fwd_f32_range, &j);
}

void dsv3_op_swiglu_backward_f32(double *da, double *db, const double *dh, const double *a,
                                 const double *b, int64_t n) {
    ew_job j = {.da = da, .db = db, .dy = dh, .a = a, .b = b};
    par_range(n, 1, swiglu_bwd_f32_range, &j);
}

/* ---------------------------------------------------------------- gating ---------------- */

/* spec/training.md §1.1 (HF/V3): s = sigmoid(z) over all experts; for the chosen set S,
 * w_k = R * s_k / Z with Z = sum_{j in S} s_j + 1e-20 (the HF guard), or R * s_k without
 * normalisation. The choice itself (bias, groups, top-k) is made by the caller. */
static void gate_fwd_rows(void *ctx, int64_t t0, int64_t t1) {
    const ew_job *j = ctx;
    const int64_t E = j->E, K = j->K;
    for (int64_t t = t0; t < t1; t++) {
        double *st = j->s + t * E;
        const int32_t *it = j->idx + t * K;
        for (int64_t e = 0; e < E; e++) st[e] = 1.0 / (1.0 + exp(-j->z[t * E + e]));
        double sum = 0.0;
        for (int64_t k = 0; k < K; k++)
            if (it[k] >= 0) sum += st[it[k]];
        const double inv = j->norm ? 1.0 / (sum + 1e-20) : 1.0;
        for (int64_t k = 0; k < K; k++) j->w[t * K + k] = it[k] >= 0 ? j->R * st[it[k]] * inv : 0.0;
    }
}

void dsv3_op_gate_forward(double *w, double *s, const double *z, const int32_t *idx, int64_t n,
                          int64_t E, int64_t K, double R, int norm) {
    ew_job j = {.w = w, .s = s, .z = z, .idx = idx, .E = E, .K = K, .R = R, .norm = norm};
    par_range(n, E, gate_fwd_rows, &j);
}

/* spec/training.md §9.3 with c_k = dw_k:
 *   ds_i = (R/Z) (c_i - sum_{j in S} (s_j/Z) c_j)  for i in S (R c_i without normalisation),
 *   ds_i = 0 for i not in S (main path); plus ds_extra (balance loss, every expert);
 *   dz_i += ds_i s_i (1 - s_i). */
static void gate_bwd_rows(void *ctx, int64_t t0, int64_t t1) {
    const ew_job *j = ctx;
    const int64_t E = j->E, K = j->K;
    const double R = j->R;
    for (int64_t t = t0; t < t1; t++) {
        const double *st = j->rs + t * E, *ct = j->dw + t * K;
        const int32_t *it = j->idx + t * K;
        double Z = 0.0, cs = 0.0;
        for (int64_t k = 0; k < K; k++)
            if (it[k] >= 0) {
                Z += st[it[k]];
                cs += st[it[k]] * ct[k];
            }
        Z += 1e-20;
        cs /= Z;
        for (int64_t e = 0; e < E; e++) {
            double ds = j->ds_extra ? j->ds_extra[t * E + e] : 0.0;
            for (int64_t k = 0; k < K; k++)
                if (it[k] == e) ds += j->norm ? R / Z * (ct[k] - cs) : R * ct[k];
            j->dz[t * E + e] += ds * st[e] * (1.0 - st[e]);
        }
    }
}

void dsv3_op_gate_backward(double *dz, const double *dw, const double *ds_extra, const double *s,
                           const int32_t *idx, int64_t n, int64_t E, int64_t K, double R,
                           int norm) {
    ew_job j = {.dz = dz, .dw = dw, .ds_extra = ds_extra, .rs = s, .idx = idx, .E = E, .K = K,
                .R = R, .norm = norm};
    par_range(n, E * K, gate_bwd_rows, &j);
}

/* ---------------------------------------------------------------- balance loss ---------- */

/* spec/training.md §2: f_i = E/(K T) * #{t : i chosen at t} (the actual routing map, [ours]),
 * s'_{i,t} = s_{i,t} / (sum_j s_{j,t} + 1e-20) (Megatron's guard), P_i = mean_t s'_{i,t};
 * returns sum_i f_i P_i. */
double dsv3_op_balance_forward(double *f, const double *s, const int32_t *idx, int64_t T,
                               int64_t E, int64_t K) {
    memset(f, 0, (size_t)E * sizeof *f);
    for (int64_t i = 0; i < T * K; i++)
        if (idx[i] >= 0) f[idx[i]] += 1.0;
    const double fs = (double)E / ((double)K * (double)T);
    for (int64_t e = 0; e < E; e++) f[e] *= fs;
    double L = 0.0;
    for (int64_t t = 0; t < T; t++) {
        const double *st = s + t * E;
        double S = 1e-20;
        for (int64_t e = 0; e < E; e++) S += st[e];
        double acc = 0.0;
        for (int64_t e = 0; e < E; e++) acc += f[e] * st[e];
        L += acc / S;
    }
    return L / (double)T;
}

/* With g_i = dL f_i / T (the gradient on s'_{i,t}; f is a constant):
 *   ds_{j,t} += (1/S_t) (g_j - sum_i s'_{i,t} g_i)   (spec/training.md §9.3). */
void dsv3_op_balance_backward(double *ds, const double *s, const double *f, double dL, int64_t T,
                              int64_t E) {
    const double gs = dL / (double)T;
    for (int64_t t = 0; t < T; t++) {
        const double *st = s + t * E;
        double S = 1e-20;
        for (int64_t e = 0; e < E; e++) S += st[e];
        double m = 0.0;
        for (int64_t e = 0; e < E; e++) m += st[e] / S * f[e] * gs;
        for (int64_t e = 0; e < E; e++) ds[t * E + e] += (f[e] * gs - m) / S;
    }
}

/* ---------------------------------------------------------------- cross-entropy --------- */

/* One cross-entropy job (items are rows). */
typedef struct {
    double *loss, *out;
    const double *in, *dloss;
    const int32_t *targets;
    int64_t V;
} ce_job;

static void ce_rows(int64_t n, int64_t V, dsv3_pool_fn fn, ce_job *j) {
    if (n * V >= PAR_MIN) dsv3_pool_for(n, fn, j);
    else
        for (int64_t s = 0; s < n; s++) fn(j, s, 0);
}

/* loss = logsumexp(z) - z_y with the max subtracted (spec/training.md §9.6); probs = softmax,
 * one exp per logit. probs may alias logits. */
static void ce_fwd_item(void *ctx, int64_t s, int tid) {
    (void)tid;
    const ce_job *j = ctx;
    const int64_t V = j->V;
    const int32_t y = j->targets[s];
    const double *z = j->in + s * V;
    double *p = j->out + s * V;
    double mx = z[0];
    for (int64_t v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    const double zy = y >= 0 ? z[y] : 0.0; /* before probs overwrite z */
    double sum = 0.0;
    for (int64_t v = 0; v < V; v++) sum += (p[v] = exp(z[v] - mx));
    j->loss[s] = y >= 0 ? mx + log(sum) - zy : 0.0;
    const double inv = 1.0 / sum;
    for (int64_t v = 0; v < V; v++) p[v] *= inv;
}

void dsv3_op_ce_forward(double *loss, double *probs, const double *logits, const int32_t *targets,
                        int64_t n, int64_t V) {
    ce_job j = {.loss = loss, .out = probs, .in = logits, .targets = targets, .V = V};
    ce_rows(n, V, ce_fwd_item, &j);
}

/* The float32 path's cross-entropy: the same row computed with a vectorised e^x on floats
 * (kernels/cpu/simd_exp.h, relative error ~1e-7; arguments below -87 count as e^-87), eight
 * float partial sums added in double. On CPUs without AVX2 it is the double row. */
static TGT void ce_fwd_f32_row(const ce_job *j, int64_t s) {
    const int64_t V = j->V, V8 = V & ~(int64_t)7;
    const int32_t y = j->targets[s];
    const double *z = j->in + s * V;
    double *p = j->out + s * V;
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
    j->loss[s] = y >= 0 ? mx + log(sum) - zy : 0.0;
    const double inv = 1.0 / sum;
    for (int64_t v = 0; v < V; v++) p[v] *= inv;
}

static void ce_fwd_f32_item(void *ctx, int64_t s, int tid) {
    if (has_tgt()) ce_fwd_f32_row(ctx, s);
    else ce_fwd_item(ctx, s, tid);
}

void dsv3_op_ce_forward_f32(double *loss, double *probs, const double *logits,
                            const int32_t *targets, int64_t n, int64_t V) {
    ce_job j = {.loss = loss, .out = probs, .in = logits, .targets = targets, .V = V};
    ce_rows(n, V, ce_fwd_f32_item, &j);
}

/* dz = dloss * (softmax(z) - onehot(y)); masked rows (target < 0) get 0. */
static void ce_bwd_item(void *ctx, int64_t s, int tid) {
    (void)tid;
    const ce_job *j = ctx;
    const int64_t V = j->V;
    const int32_t y = j->targets[s];
    double *d = j->out + s * V;
    const double *p = j->in + s * V;
    if (y < 0) {
        memset(d, 0, (size_t)V * sizeof *d);
        return;
    }
    for (int64_t v = 0; v < V; v++) d[v] = j->dloss[s] * p[v];
    d[y] -= j->dloss[s];
}

void dsv3_op_ce_backward(double *dlogits, const double *probs, const int32_t *targets,
                         const double *dloss, int64_t n, int64_t V) {
    ce_job j = {.out = dlogits, .in = probs, .dloss = dloss, .targets = targets, .V = V};
    ce_rows(n, V, ce_bwd_item, &j);
}
