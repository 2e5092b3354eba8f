/* mla.c — Multi-head Latent Attention, both forms (docs/ARCHITECTURE.md, "MLA").
 *
 * Projections are shared; the cache holds only the normalised latent c and the rotated shared
 * key k_pe. The naive form re-expands k_nope and v from c for every cached position (HF); the
 * absorbed form folds W_UK into the query and W_UV after the attention sum (official decode).
 * They are algebraically equal; tests check they agree.
 */
#include <string.h>

#include "kernels/pool.h"
#include "model/run/model_internal.h"

/* Latent norms use eps 1e-6 whatever rms_norm_eps says (docs/ARCHITECTURE.md, "RMSNorm"). */
#define LATENT_EPS 1e-6f

/* Threads pay off only when the score/sum work (~ n * nh * keys * width) is large. */
static int worth_threads(int64_t n, int64_t nh, int64_t pos0, int64_t width) {
    return n * nh * (pos0 + n) * width >= ((int64_t)1 << 16);
}

/* Copies column block [off, off + w) of rows of src[n, stride] into dst[n, w], or back. */
static void gather_cols(float *dst, const float *src, int64_t n, int64_t stride, int64_t off,
                        int64_t w) {
    for (int64_t s = 0; s < n; s++) memcpy(dst + s * w, src + s * stride + off, (size_t)w * 4);
}
static void scatter_cols(float *dst, const float *src, int64_t n, int64_t stride, int64_t off,
                         int64_t w) {
    for (int64_t s = 0; s < n; s++) memcpy(dst + s * stride + off, src + s * w, (size_t)w * 4);
}

/* "MLA", "Latent cache": the cache rows of positions pos0.. from kva = xn W_kv_a: c = norm(latent),
 * k_pe rotated; sets r->pos. */
static void store_kv(dsv3_run *r, const dsv3_layer_w *L, dsv3_layer_cache *kc, int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    const int64_t dr = m->cfg.qk_rope_head_dim, rkv = m->cfg.kv_lora_rank;
    for (int64_t s = 0; s < n; s++) {
        const float *kv = r->kva + s * (rkv + dr);
        m->be->rmsnorm(kc->c + (pos0 + s) * rkv, kv, L->kv_a_norm, 1, rkv, LATENT_EPS);
        memcpy(kc->kpe + (pos0 + s) * dr, kv + rkv, (size_t)dr * 4);
        r->pos[s] = pos0 + s;
    }
    m->be->rope(kc->kpe + pos0 * dr, n, 1, dr, r->pos, m->inv_freq, m->rope_factor);
}

void dsv3_mla_cache_only(dsv3_run *r, const dsv3_layer_w *L, dsv3_layer_cache *kc, const float *xn,
                         int64_t n, int64_t pos0) {
    r->m->be->matmul(r->kva, xn, &L->kv_a, n);
    store_kv(r, L, kc, n, pos0);
}

/* "MLA": q (with q_pe rotated), and the new cache rows c, k_pe at positions pos0.. */
static void project(dsv3_run *r, const dsv3_layer_w *L, dsv3_layer_cache *kc, const float *xn,
                    int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    const dsv3_config *c = &m->cfg;
    const dsv3_backend *be = m->be;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim;
    const int64_t dr = c->qk_rope_head_dim, dq = dn + dr;
    /* The two projections of xn run as one batch. */
    const dsv3_matmul_op first[2] = {
        c->q_lora_rank > 0 ? (dsv3_matmul_op){r->qa, xn, &L->q_a, n, 0} : (dsv3_matmul_op){r->q, xn, &L->q_b, n, 0},
        {r->kva, xn, &L->kv_a, n, 0}};
    be->matmul_many(first, 2);
    if (c->q_lora_rank > 0) {
        be->rmsnorm(r->qa, r->qa, L->q_a_norm, n, c->q_lora_rank, LATENT_EPS);
        be->matmul(r->q, r->qa, &L->q_b, n);
    }
    store_kv(r, L, kc, n, pos0);
    /* RoPE on the last dr dims of every head's query, and on the one shared k_pe. The query
     * parts are gathered into [n, nh, dr] so one call rotates all heads of a token with one
     * cos/sin evaluation per frequency (per-head calls spent most of their time in sincos). */
    float *qpe = r->hin;
    for (int64_t s = 0; s < n; s++)
        for (int64_t h = 0; h < nh; h++)
            memcpy(qpe + (s * nh + h) * dr, r->q + (s * nh + h) * dq + dn, (size_t)dr * 4);
    be->rope(qpe, n, nh, dr, r->pos, m->inv_freq, m->rope_factor);
    for (int64_t s = 0; s < n; s++)
        for (int64_t h = 0; h < nh; h++)
            memcpy(r->q + (s * nh + h) * dq + dn, qpe + (s * nh + h) * dr, (size_t)dr * 4);
}

/* "MLA", absorbed: score = (q_nope W_UK . c_t + q_pe . k_pe_t) * scale; o = W_UV sum P c. */
/* Reports one head's attention probabilities to the attn hook (serially, after the sums). */
static void report_attn(dsv3_run *r, int64_t li, int64_t n, int64_t pos0,
                        void (*recompute)(dsv3_run *, int64_t, int64_t, float *, void *), void *ctx) {
    if (!dsv3_hooked(r) || !r->hooks.attn || r->hooks.attn_layer != li) return;
    const int64_t h = r->hooks.attn_head;
    if (h < 0 || h >= r->m->cfg.num_attention_heads) return;
    for (int64_t s = 0; s < n; s++) {
        recompute(r, s, h, r->scores, ctx);
        r->hooks.attn(r->hooks.ud, li, h, pos0 + s, pos0 + s + 1, r->scores);
    }
}

typedef struct {
    const dsv3_layer_cache *kc;
    int64_t pos0;
    int naive;
} attn_ctx;

/* P[t] for query s, head h, recomputed exactly as the attention loops do. */
static void probs_of(dsv3_run *r, int64_t s, int64_t h, float *p, void *vctx) {
    const attn_ctx *a = vctx;
    const dsv3_config *c = &r->m->cfg;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    const int64_t dr = c->qk_rope_head_dim, dq = dn + dr, rkv = c->kv_lora_rank, T = a->pos0 + s + 1;
    const int64_t sh = s * nh + h;
    if (!a->naive) { /* the backend's own kernel for this one head: the same numbers */
        r->m->be->mla_attend(r->hin, p, r->qabs + sh * rkv, r->q + sh * dq + dn, dq, a->kc->c, a->kc->kpe,
                             1, T, rkv, dr, r->m->softmax_scale);
        return;
    }
    for (int64_t t = 0; t < T; t++) {
        const float qk = dsv3_dot_f32(r->q + sh * dq, r->kvfull + t * nh * (dn + dv) + h * (dn + dv), dn);
        p[t] = (qk + dsv3_dot_f32(r->q + sh * dq + dn, a->kc->kpe + t * dr, dr)) * r->m->softmax_scale;
    }
    dsv3_softmax_f32(p, T);
}

/* One (token, head) pair of the attention: which form, and where its inputs live. */
typedef struct {
    dsv3_run *r;
    const dsv3_layer_cache *kc;
    int64_t pos0;
    int64_t groups, hb; /* absorbed form: head groups per query and heads per group */
} attn_job;

/* Absorbed form, item = (token s, head group g): the backend's mla_attend over keys 0..pos0+s
 * (causal) for heads [g * hb, (g + 1) * hb) of query s; probabilities in this thread's scratch. */
static void absorbed_item(void *vctx, int64_t it, int tid) {
    const attn_job *a = vctx;
    dsv3_run *r = a->r;
    const dsv3_config *c = &r->m->cfg;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim;
    const int64_t dr = c->qk_rope_head_dim, dq = dn + dr, rkv = c->kv_lora_rank;
    const int64_t s = it / a->groups, h0 = (it % a->groups) * a->hb;
    const int64_t hn = h0 + a->hb <= nh ? a->hb : nh - h0, sh = s * nh + h0;
    r->m->be->mla_attend(r->u + sh * rkv, r->scores + (int64_t)tid * nh * r->max_seq, r->qabs + sh * rkv,
                         r->q + sh * dq + dn, dq, a->kc->c, a->kc->kpe, hn, a->pos0 + s + 1, rkv, dr,
                         r->m->softmax_scale);
}

/* Copies x[n][nh][w] (stride between tokens nh * ws, head h at h * ws) into y[nh][n][w]. */
static void to_head_major(float *y, const float *x, int64_t n, int64_t nh, int64_t ws, int64_t w) {
    for (int64_t h = 0; h < nh; h++) gather_cols(y + h * n * w, x, n, nh * ws, h * ws, w);
}

static void attend_absorbed(dsv3_run *r, const dsv3_layer_w *L, const dsv3_layer_cache *kc,
                            int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    const dsv3_config *c = &m->cfg;
    const dsv3_backend *be = m->be;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    const int64_t dr = c->qk_rope_head_dim, dq = dn + dr, rkv = c->kv_lora_rank;
    /* q_abs[s, h] = W_UK[h]^T q_nope[s, h]: all heads as one batch of transposed products over
     * head-major copies (hin[h][s][dn] -> u[h][s][rkv], then back to qabs[s][h][rkv]); with one
     * token the head-major output is already qabs's layout. qabs stays intact after the call
     * (the attention hook recomputes probabilities from it). */
    dsv3_matmul_op *ops = r->ops;
    dsv3_weight *wv = r->head_w;
    to_head_major(r->hin, r->q, n, nh, dq, dn);
    float *qout = n == 1 ? r->qabs : r->u;
    for (int64_t h = 0; h < nh; h++) {
        wv[h] = dsv3_weight_rows(&L->kv_b, h * (dn + dv), dn);
        ops[h] = (dsv3_matmul_op){qout + h * n * rkv, r->hin + h * n * dn, &wv[h], n, 1};
    }
    be->matmul_many(ops, nh);
    if (n > 1)
        for (int64_t h = 0; h < nh; h++) scatter_cols(r->qabs, r->u + h * n * rkv, n, nh * rkv, h * rkv, rkv);
    /* Items: one query with all its heads (they share each cached row) when there are enough
     * queries for every thread, else the heads of a query split into one group per thread. */
    const int threads = r->nthreads;
    attn_job a = {r, kc, pos0, n >= 2 * threads ? 1 : (threads < nh ? threads : nh), 0};
    a.hb = (nh + a.groups - 1) / a.groups;
    a.groups = (nh + a.hb - 1) / a.hb;
    if (worth_threads(n, nh, pos0, rkv + dr)) dsv3_pool_for(n * a.groups, absorbed_item, &a);
    else
        for (int64_t it = 0; it < n * a.groups; it++) absorbed_item(&a, it, 0);
    /* o[s, h] = W_UV[h] u[s, h], all heads as one batch (head-major again when n > 1: u is
     * gathered into hin, and the outputs land in hout). */
    const float *uin = r->u;
    float *oout = r->o;
    if (n > 1) {
        to_head_major(r->hin, r->u, n, nh, rkv, rkv);
        uin = r->hin;
        oout = r->hout;
    }
    for (int64_t h = 0; h < nh; h++) {
        wv[h] = dsv3_weight_rows(&L->kv_b, h * (dn + dv) + dn, dv);
        ops[h] = (dsv3_matmul_op){oout + h * n * dv, uin + h * n * rkv, &wv[h], n, 0};
    }
    be->matmul_many(ops, nh);
    if (n > 1)
        for (int64_t h = 0; h < nh; h++) scatter_cols(r->o, r->hout + h * n * dv, n, nh * dv, h * dv, dv);
}

/* Naive form, pair sh = s * nh + h: P over [k_nope_t ; k_pe_t], o[s, h] = sum_t P[t] v_t. */
static void naive_pair(void *vctx, int64_t sh, int tid) {
    const attn_job *a = vctx;
    dsv3_run *r = a->r;
    const dsv3_config *c = &r->m->cfg;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    const int64_t dr = c->qk_rope_head_dim, dq = dn + dr, kvw = nh * (dn + dv);
    const int64_t s = sh / nh, h = sh % nh, T = a->pos0 + s + 1;
    const float scale = r->m->softmax_scale;
    float *p = r->scores + (int64_t)tid * r->max_seq;
    const float *qn = r->q + sh * dq, *qp = qn + dn;
    for (int64_t t = 0; t < T; t++)
        p[t] = (dsv3_dot_f32(qn, r->kvfull + t * kvw + h * (dn + dv), dn) +
                dsv3_dot_f32(qp, a->kc->kpe + t * dr, dr)) *
               scale;
    dsv3_softmax_f32(p, T);
    float *o = r->o + s * nh * dv + h * dv;
    memset(o, 0, (size_t)dv * 4);
    for (int64_t t = 0; t < T; t++) {
        const float pt = p[t], *v = r->kvfull + t * kvw + h * (dn + dv) + dn;
#pragma omp simd
        for (int64_t i = 0; i < dv; i++) o[i] += pt * v[i];
    }
}

/* "MLA", naive: K = [W_UK c_t ; k_pe_t], V = W_UV c_t for every cached t. */
static void attend_naive(dsv3_run *r, const dsv3_layer_w *L, const dsv3_layer_cache *kc,
                         int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    const dsv3_config *c = &m->cfg;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    const int64_t dq = dn + c->qk_rope_head_dim, Tall = pos0 + n;
    m->be->matmul(r->kvfull, kc->c, &L->kv_b, Tall);
    attn_job a = {r, kc, pos0, 0, 0};
    if (worth_threads(n, nh, pos0, dq + dv)) dsv3_pool_for(n * nh, naive_pair, &a);
    else
        for (int64_t sh = 0; sh < n * nh; sh++) naive_pair(&a, sh, 0);
}

void dsv3_mla_forward(dsv3_run *r, const dsv3_layer_w *L, int64_t li, dsv3_layer_cache *kc,
                      const float *xn, float *out, int64_t n, int64_t pos0) {
    project(r, L, kc, xn, n, pos0);
    if (dsv3_hooked(r) && r->hooks.point)
        r->hooks.point(r->hooks.ud, DSV3_POINT_CKV, li, pos0, n, r->m->cfg.kv_lora_rank,
                       kc->c + pos0 * r->m->cfg.kv_lora_rank);
    if (r->attn == DSV3_ATTN_NAIVE) attend_naive(r, L, kc, n, pos0);
    else attend_absorbed(r, L, kc, n, pos0);
    attn_ctx a = {kc, pos0, r->attn == DSV3_ATTN_NAIVE};
    report_attn(r, li, n, pos0, probs_of, &a);
    r->m->be->matmul(out, r->o, &L->o, n);
}
