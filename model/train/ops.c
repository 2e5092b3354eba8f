/* ops.c — forward/backward pairs of the training operators (see ops.h).
 *
 * Each pair sits together, forward first, with the equation and the spec section before it.
 * Parallel work runs on the worker pool (kernels/pool.h), not in OpenMP regions: a trainer that
 * mixed both had two sets of threads spinning against each other on a 2-core machine.
 * Parallel loops split the outputs between threads and never the reductions, so results are
 * the same for any thread count (needed for bit-exact resume, docs/ARCHITECTURE.md, "Determinism").
 */
#include "model/train/ops.h"

#include <math.h>
#include <string.h>

#include "kernels/cpu/attn_f32.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/linear_f64.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/pool.h"

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define PAR_MIN ((int64_t)1 << 20)

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

/* out[s, :] = table[ids[s], :] (docs/ARCHITECTURE.md, "Forward pass" step 1). */
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
        for (int64_t i = 0; i < H; i++) dsv3_add_f32(&row[i], dout[s * H + i]);
    }
}

/* ---------------------------------------------------------------- linear ---------------- */

/* y[s, r] = sum_c x[s, c] W[r, c]. Parallel over blocks of 4 output rows: each x row is
 * loaded once for 4 weight rows. A row's sum runs over c in the same (vectorised) order
 * whichever thread computes it. The blocks' arithmetic is kernels/cpu/linear_f64.c's. */
/* One parallel job of a linear: the operands. */
typedef struct {
    double *y, *dx;
    float *dW;
    const double *x, *dy;
    const float *W;
    int64_t n, in, out;
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
    dsv3_linear_f64_forward_rows(j->y, j->x, j->W, j->n, j->in, j->out, rb * 4);
}

void dsv3_op_linear_forward(double *y, const double *x, const float *W, int64_t n, int64_t in,
                            int64_t out) {
    lin_job j = {.y = y, .x = x, .W = W, .n = n, .in = in, .out = out};
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
    dsv3_linear_f64_dx_tokens(j->dx, j->dy, j->W, j->n, j->in, j->out, sb * 4);
}

/* dW rows r0..r0+3 (fewer at the edge). */
static void dw_item(void *ctx, int64_t rb, int tid) {
    (void)tid;
    const lin_job *j = ctx;
    dsv3_linear_f64_dw_rows(j->dW, j->dy, j->x, j->n, j->in, j->out, rb * 4);
}

void dsv3_op_linear_backward(double *dx, float *dW, const double *dy, const double *x,
                             const float *W, int64_t n, int64_t in, int64_t out) {
    lin_job j = {.dx = dx, .dW = dW, .dy = dy, .x = x, .W = W, .n = n, .in = in, .out = out};
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

/* docs/ARCHITECTURE.md, "RMSNorm": y = g * x * rstd, rstd = 1/sqrt(mean(x^2) + eps). */
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

/* docs/ARCHITECTURE.md, "Gradients", with xhat = x * rstd:
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
        dsv3_add_f32(&j->dg[i], acc);
    }
}

void dsv3_op_rmsnorm_backward(double *dx, float *dg, const double *dy, const double *x,
                              const double *rstd, const float *g, int64_t n, int64_t dim) {
    ew_job j = {.dx = dx, .dg = dg, .dy = dy, .x = x, .rs = rstd, .g = g, .dim = dim, .nvec = n};
    if (dx) par_range(n, dim, rmsnorm_dx_rows, &j);
    if (dg) par_range(dim, n, rmsnorm_dg_cols, &j);
}

/* ---------------------------------------------------------------- RoPE ------------------ */

/* docs/ARCHITECTURE.md, "RoPE" (interleaved layout) and "YaRN" (inv_freq):
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

/* docs/ARCHITECTURE.md, "Gradients": the transpose of a rotation is the rotation by -theta:
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

/* docs/ARCHITECTURE.md, "MLA" (naive form, causal mask), per sequence b and head h:
 *   score[t1, t2] = q[t1] . k[t2] * scale for t2 <= t1 (causal), P = softmax over t2,
 *   o[t1] = sum_t2 P[t1, t2] v[t2].
 * Parallel over (b, h) pairs; each writes only its own rows. */
/* One attention job: operands and sizes (items are (b, h) pairs; kernels/cpu/attn_f32.h). */
typedef dsv3_attn_job attn_job;

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

int64_t dsv3_op_attention_ws(int64_t T, int64_t dqk, int64_t dv) {
    return dsv3_attn_f32_ws(T, dqk, dv);
}

/* An attention job with its float workspace. */
typedef struct {
    attn_job j;
    float *ws;
} attn_f32_job;

/* This thread's slice of the workspace. */
static float *attn_ws_of(const attn_f32_job *f, int tid) {
    return f->ws + (int64_t)tid * dsv3_attn_f32_ws(f->j.T, f->j.dqk, f->j.dv_);
}

static void attn_fwd_f32_item(void *ctx, int64_t bh, int tid) {
    const attn_f32_job *f = ctx;
    dsv3_attn_f32_forward(&f->j, bh, attn_ws_of(f, tid));
}

static void attn_bwd_f32_item(void *ctx, int64_t bh, int tid) {
    const attn_f32_job *f = ctx;
    dsv3_attn_f32_backward(&f->j, bh, attn_ws_of(f, tid));
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

/* docs/ARCHITECTURE.md, "SwiGLU": h = silu(a) * b; backward: "Gradients". The loops are
 * kernels/cpu/swiglu.c's; here they are split into ranges on the pool. */
static void swiglu_fwd_range(void *ctx, int64_t i0, int64_t i1) {
    const ew_job *j = ctx;
    dsv3_swiglu_forward(j->y + i0, j->a + i0, j->b + i0, i1 - i0);
}

void dsv3_op_swiglu_forward(double *h, const double *a, const double *b, int64_t n) {
    ew_job j = {.y = h, .a = a, .b = b};
    par_range(n, 1, swiglu_fwd_range, &j);
}

static void swiglu_bwd_range(void *ctx, int64_t i0, int64_t i1) {
    const ew_job *j = ctx;
    dsv3_swiglu_backward(j->da + i0, j->db + i0, j->dy + i0, j->a + i0, j->b + i0, i1 - i0);
}

void dsv3_op_swiglu_backward(double *da, double *db, const double *dh, const double *a,
                             const double *b, int64_t n) {
    ew_job j = {.da = da, .db = db, .dy = dh, .a = a, .b = b};
    par_range(n, 1, swiglu_bwd_range, &j);
}

static void swiglu_fwd_f32_range(void *ctx, int64_t i0, int64_t i1) {
    const ew_job *j = ctx;
    dsv3_swiglu_forward_f32(j->y + i0, j->a + i0, j->b + i0, i1 - i0);
}

static void swiglu_bwd_f32_range(void *ctx, int64_t i0, int64_t i1) {
    const ew_job *j = ctx;
    dsv3_swiglu_backward_f32(j->da + i0, j->db + i0, j->dy + i0, j->a + i0, j->b + i0, i1 - i0);
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

/* docs/ARCHITECTURE.md, "Routing" (HF/V3): s = sigmoid(z) over all experts; for the chosen set S,
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

/* docs/ARCHITECTURE.md, "Gradients", with c_k = dw_k:
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

/* docs/ARCHITECTURE.md, "Bias update and balance loss": f_i = E/(K T) * #{t : i chosen at t} (the actual routing map, our choice),
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
 *   ds_{j,t} += (1/S_t) (g_j - sum_i s'_{i,t} g_i)   (docs/ARCHITECTURE.md, "Gradients"). */
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

/* loss = logsumexp(z) - z_y (docs/ARCHITECTURE.md, "Gradients"), one row per item; the row is
 * kernels/cpu/cross_entropy.c's. */
static void ce_fwd_item(void *ctx, int64_t s, int tid) {
    (void)tid;
    const ce_job *j = ctx;
    j->loss[s] = dsv3_ce_row(j->out + s * j->V, j->in + s * j->V, j->targets[s], j->V);
}

void dsv3_op_ce_forward(double *loss, double *probs, const double *logits, const int32_t *targets,
                        int64_t n, int64_t V) {
    ce_job j = {.loss = loss, .out = probs, .in = logits, .targets = targets, .V = V};
    ce_rows(n, V, ce_fwd_item, &j);
}

static void ce_fwd_f32_item(void *ctx, int64_t s, int tid) {
    (void)tid;
    const ce_job *j = ctx;
    j->loss[s] = dsv3_ce_row_f32(j->out + s * j->V, j->in + s * j->V, j->targets[s], j->V);
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
