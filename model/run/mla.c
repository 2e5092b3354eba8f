/* mla.c — Multi-head Latent Attention, both forms (docs/ARCHITECTURE.md, "MLA").
 *
 * Projections are shared; the cache holds only the normalised latent c and the rotated shared
 * key k_pe. The naive form re-expands k_nope and v from c for every cached position (HF); the
 * absorbed form folds W_UK into the query and W_UV after the attention sum (official decode).
 * They are algebraically equal; tests check they agree. Every step is a backend operation on
 * backend memory ("Backend memory"): this file only sequences them.
 */
#include "model/run/model_internal.h"

/* Latent norms use eps 1e-6 whatever rms_norm_eps says (docs/ARCHITECTURE.md, "RMSNorm"). */
#define LATENT_EPS 1e-6f

void dsv3_mla_cache_only(dsv3_run *r, const dsv3_layer_w *L, dsv3_layer_cache *kc, const float *xn,
                         int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    r->be->matmul(r->kva, xn, &L->kv_a, n);
    r->be->mla_store(r->be, kc->c, kc->kpe, kc->stride, r->kva, n, pos0, L->kv_a_norm, LATENT_EPS,
                     m->cfg.kv_lora_rank, m->cfg.qk_rope_head_dim, m->inv_freq, m->rope_factor);
}

/* "MLA": q (with q_pe rotated), and the new cache rows c, k_pe at positions pos0.. */
static void project(dsv3_run *r, const dsv3_layer_w *L, dsv3_layer_cache *kc, const float *xn,
                    int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    const dsv3_config *c = &m->cfg;
    const dsv3_backend *be = r->be;
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
    be->mla_store(be, kc->c, kc->kpe, kc->stride, r->kva, n, pos0, L->kv_a_norm, LATENT_EPS,
                  c->kv_lora_rank, dr, m->inv_freq, m->rope_factor);
    /* RoPE on the last dr dims of every head's query: one call rotates all heads of a token
     * with one cos/sin evaluation per frequency. */
    be->rope(r->q + dn, n, nh, dr, nh * dq, dq, pos0, m->inv_freq, m->rope_factor);
}

/* Copies x[n][nh][w] (stride between tokens nh * ws, head h at h * ws) into y[nh][n][w], or
 * back (to_tokens). */
static void head_major(const dsv3_backend *be, float *y, const float *x, int64_t n, int64_t nh,
                       int64_t ws, int64_t w, int to_tokens) {
    for (int64_t h = 0; h < nh; h++) {
        if (to_tokens) be->copy2d(y + h * ws, nh * ws, x + h * n * w, w, n, w);
        else be->copy2d(y + h * n * w, w, x + h * ws, nh * ws, n, w);
    }
}

/* "MLA", absorbed: score = (q_nope W_UK . c_t + q_pe . k_pe_t) * scale; o = W_UV sum P c. */
static void attend_absorbed(dsv3_run *r, const dsv3_layer_w *L, const dsv3_layer_cache *kc,
                            int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    const dsv3_config *c = &m->cfg;
    const dsv3_backend *be = r->be;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    const int64_t dr = c->qk_rope_head_dim, dq = dn + dr, rkv = c->kv_lora_rank;
    /* q_abs[s, h] = W_UK[h]^T q_nope[s, h]: all heads as one batch of transposed products over
     * head-major copies (hin[h][s][dn] -> u[h][s][rkv], then back to qabs[s][h][rkv]); with one
     * token the head-major output is already qabs's layout. qabs stays intact after the call
     * (the attention hook recomputes probabilities from it). */
    dsv3_matmul_op *ops = r->ops;
    head_major(be, r->hin, r->q, n, nh, dq, dn, 0);
    float *qout = n == 1 ? r->qabs : r->u;
    for (int64_t h = 0; h < nh; h++) ops[h] = (dsv3_matmul_op){qout + h * n * rkv, r->hin + h * n * dn, &L->uk[h], n, 1};
    be->matmul_many(ops, nh);
    if (n > 1) head_major(be, r->qabs, r->u, n, nh, rkv, rkv, 1);
    be->mla_attend_chunk(be, r->u, r->scores, r->max_seq, r->qabs, r->q + dn, dq, kc->c, kc->kpe,
                         kc->stride, nh, n, pos0, rkv, dr, m->softmax_scale);
    /* o[s, h] = W_UV[h] u[s, h], all heads as one batch (head-major again when n > 1: u is
     * gathered into hin, and the outputs land in hout). */
    const float *uin = r->u;
    float *oout = r->o;
    if (n > 1) {
        head_major(be, r->hin, r->u, n, nh, rkv, rkv, 0);
        uin = r->hin;
        oout = r->hout;
    }
    for (int64_t h = 0; h < nh; h++) ops[h] = (dsv3_matmul_op){oout + h * n * dv, uin + h * n * rkv, &L->uv[h], n, 0};
    be->matmul_many(ops, nh);
    if (n > 1) head_major(be, r->o, r->hout, n, nh, dv, dv, 1);
}

/* "MLA", naive: K = [W_UK c_t ; k_pe_t], V = W_UV c_t for every cached t. */
static void attend_naive(dsv3_run *r, const dsv3_layer_w *L, const dsv3_layer_cache *kc,
                         int64_t n, int64_t pos0, int64_t only) {
    const dsv3_config *c = &r->m->cfg;
    const int64_t rkv = c->kv_lora_rank;
    if (only < 0) { /* the cached c packed, then expanded by kv_b for every position */
        r->be->copy2d(r->cnaive, rkv, kc->c, kc->stride, pos0 + n, rkv);
        r->be->matmul(r->kvfull, r->cnaive, &L->kv_b, pos0 + n);
    }
    r->be->mla_naive(r->be, r->o, r->scores, r->max_seq, r->q, r->kvfull, kc->kpe, kc->stride,
                     c->num_attention_heads, c->qk_nope_head_dim, c->v_head_dim, c->qk_rope_head_dim,
                     n, pos0, r->m->softmax_scale, only);
}

/* Reports one head's attention probabilities to the attn hook, per query: recomputed exactly as
 * the attention did (the absorbed form by the backend's own kernel for that head), then
 * downloaded. */
static void report_attn(dsv3_run *r, const dsv3_layer_w *L, const dsv3_layer_cache *kc, int64_t li,
                        int64_t n, int64_t pos0) {
    if (!dsv3_hooked(r) || !r->hooks.attn || r->hooks.attn_layer != li) return;
    const dsv3_config *c = &r->m->cfg;
    const int64_t h = r->hooks.attn_head, nh = c->num_attention_heads;
    if (h < 0 || h >= nh) return;
    const int64_t dn = c->qk_nope_head_dim, dq = dn + c->qk_rope_head_dim, rkv = c->kv_lora_rank;
    for (int64_t s = 0; s < n; s++) {
        const int64_t T = pos0 + s + 1, sh = s * nh + h;
        if (r->attn == DSV3_ATTN_NAIVE) attend_naive(r, L, kc, n, pos0, sh);
        else
            r->be->mla_attend(r->hin, r->scores, r->qabs + sh * rkv, r->q + sh * dq + dn, dq, kc->c,
                              kc->kpe, kc->stride, 1, T, rkv, c->qk_rope_head_dim, r->m->softmax_scale);
        const float *p = r->scores;
        if (!r->be->is_host) {
            r->be->download(r->host_stage, r->scores, (size_t)T * sizeof(float));
            p = r->host_stage;
        }
        r->hooks.attn(r->hooks.ud, li, h, pos0 + s, T, p);
    }
}

void dsv3_mla_forward(dsv3_run *r, const dsv3_layer_w *L, int64_t li, dsv3_layer_cache *kc,
                      const float *xn, float *out, int64_t n, int64_t pos0) {
    project(r, L, kc, xn, n, pos0);
    if (dsv3_hooked(r) && r->hooks.point) { /* the new c rows, packed (hin is free until attention) */
        const int64_t rkv = r->m->cfg.kv_lora_rank;
        r->be->copy2d(r->hin, rkv, kc->c + pos0 * kc->stride, kc->stride, n, rkv);
        dsv3_report_point(r, DSV3_POINT_CKV, li, pos0, n, rkv, r->hin);
    }
    if (r->attn == DSV3_ATTN_NAIVE) attend_naive(r, L, kc, n, pos0, -1);
    else attend_absorbed(r, L, kc, n, pos0);
    report_attn(r, L, kc, li, n, pos0);
    r->be->matmul(out, r->o, &L->o, n);
}
