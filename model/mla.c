/* mla.c — Multi-head Latent Attention, both forms (spec/architecture.md §4.3-§4.5).
 *
 * Projections are shared; the cache holds only the normalised latent c and the rotated shared
 * key k_pe. The naive form re-expands k_nope and v from c for every cached position (HF); the
 * absorbed form folds W_UK into the query and W_UV after the attention sum (official decode).
 * They are algebraically equal; tests check they agree.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "model/model_internal.h"

/* Latent norms use eps 1e-6 whatever rms_norm_eps says (spec §4.2, pitfall 13). */
#define LATENT_EPS 1e-6f

/* In-place softmax over p[0..n). */
static void softmax(float *p, int64_t n) {
    float mx = p[0];
    for (int64_t i = 1; i < n; i++) mx = p[i] > mx ? p[i] : mx;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += (p[i] = expf(p[i] - mx));
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++) p[i] *= inv;
}

/* Threads pay off only when the score/sum work (~ n * nh * keys * width) is large. */
static int worth_threads(int64_t n, int64_t nh, int64_t pos0, int64_t width) {
    return n * nh * (pos0 + n) * width >= ((int64_t)1 << 18);
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

/* spec §4.3: q (with q_pe rotated), and the new cache rows c, k_pe at positions pos0.. */
static void project(dsv3_run *r, const dsv3_layer_w *L, dsv3_layer_cache *kc, const float *xn,
                    int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    const dsv3_config *c = &m->cfg;
    const dsv3_backend *be = m->be;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim;
    const int64_t dr = c->qk_rope_head_dim, dq = dn + dr, rkv = c->kv_lora_rank;
    /* The two projections of xn run as one batch. */
    const dsv3_matmul_op first[2] = {
        c->q_lora_rank > 0 ? (dsv3_matmul_op){r->qa, xn, &L->q_a, n} : (dsv3_matmul_op){r->q, xn, &L->q_b, n},
        {r->kva, xn, &L->kv_a, n}};
    be->matmul_many(first, 2);
    if (c->q_lora_rank > 0) {
        be->rmsnorm(r->qa, r->qa, L->q_a_norm, n, c->q_lora_rank, LATENT_EPS);
        be->matmul(r->q, r->qa, &L->q_b, n);
    }
    for (int64_t s = 0; s < n; s++) {
        const float *kv = r->kva + s * (rkv + dr);
        be->rmsnorm(kc->c + (pos0 + s) * rkv, kv, L->kv_a_norm, 1, rkv, LATENT_EPS);
        memcpy(kc->kpe + (pos0 + s) * dr, kv + rkv, (size_t)dr * 4);
        r->pos[s] = pos0 + s;
    }
    /* RoPE on the last dr dims of every head's query, and on the one shared k_pe. */
    for (int64_t s = 0; s < n; s++)
        for (int64_t h = 0; h < nh; h++)
            be->rope(r->q + (s * nh + h) * dq + dn, 1, 1, dr, &r->pos[s], m->inv_freq,
                     m->rope_factor);
    be->rope(kc->kpe + pos0 * dr, n, 1, dr, r->pos, m->inv_freq, m->rope_factor);
}

/* spec §4.5, absorbed: score = (q_nope W_UK . c_t + q_pe . k_pe_t) * scale; o = W_UV sum P c. */
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
    for (int64_t t = 0; t < T; t++) {
        float qk = a->naive
                       ? dsv3_dot_f32(r->q + sh * dq, r->kvfull + t * nh * (dn + dv) + h * (dn + dv), dn)
                       : dsv3_dot_f32(r->qabs + sh * rkv, a->kc->c + t * rkv, rkv);
        p[t] = (qk + dsv3_dot_f32(r->q + sh * dq + dn, a->kc->kpe + t * dr, dr)) * r->m->softmax_scale;
    }
    softmax(p, T);
}

static void attend_absorbed(dsv3_run *r, const dsv3_layer_w *L, const dsv3_layer_cache *kc,
                            int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    const dsv3_config *c = &m->cfg;
    const dsv3_backend *be = m->be;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    const int64_t dr = c->qk_rope_head_dim, dq = dn + dr, rkv = c->kv_lora_rank;
    const float scale = m->softmax_scale;
    const int par = worth_threads(n, nh, pos0, rkv + dr);
    /* q_abs[s, h] = W_UK[h]^T q_nope[s, h], one head at a time so W_UK[h] is read once. */
    for (int64_t h = 0; h < nh; h++) {
        const dsv3_weight uk = dsv3_weight_rows(&L->kv_b, h * (dn + dv), dn);
        gather_cols(r->hin, r->q, n, nh * dq, h * dq, dn);
        be->matmul_t(r->hout, r->hin, &uk, n);
        scatter_cols(r->qabs, r->hout, n, nh * rkv, h * rkv, rkv);
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(r->nthreads) if (par)
    for (int64_t sh = 0; sh < n * nh; sh++) {
        const int64_t s = sh / nh, T = pos0 + s + 1; /* causal: keys 0..pos0+s */
        float *p = r->scores + (int64_t)omp_get_thread_num() * r->max_seq;
        const float *qa = r->qabs + sh * rkv, *qp = r->q + sh * dq + dn;
        for (int64_t t = 0; t < T; t++)
            p[t] = (dsv3_dot_f32(qa, kc->c + t * rkv, rkv) + dsv3_dot_f32(qp, kc->kpe + t * dr, dr)) *
                   scale;
        softmax(p, T);
        float *u = r->u + sh * rkv;
        memset(u, 0, (size_t)rkv * 4);
        for (int64_t t = 0; t < T; t++) {
            const float pt = p[t], *ct = kc->c + t * rkv;
#pragma omp simd
            for (int64_t i = 0; i < rkv; i++) u[i] += pt * ct[i];
        }
    }
    /* o[s, h] = W_UV[h] u[s, h]. */
    for (int64_t h = 0; h < nh; h++) {
        const dsv3_weight uv = dsv3_weight_rows(&L->kv_b, h * (dn + dv) + dn, dv);
        gather_cols(r->hin, r->u, n, nh * rkv, h * rkv, rkv);
        be->matmul(r->hout, r->hin, &uv, n);
        scatter_cols(r->o, r->hout, n, nh * dv, h * dv, dv);
    }
}

/* spec §4.4, naive: K = [W_UK c_t ; k_pe_t], V = W_UV c_t for every cached t. */
static void attend_naive(dsv3_run *r, const dsv3_layer_w *L, const dsv3_layer_cache *kc,
                         int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    const dsv3_config *c = &m->cfg;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    const int64_t dr = c->qk_rope_head_dim, dq = dn + dr, kvw = nh * (dn + dv);
    const int64_t Tall = pos0 + n;
    const float scale = m->softmax_scale;
    m->be->matmul(r->kvfull, kc->c, &L->kv_b, Tall);
    const int par = worth_threads(n, nh, pos0, dq + dv);
#pragma omp parallel for schedule(dynamic, 1) num_threads(r->nthreads) if (par)
    for (int64_t sh = 0; sh < n * nh; sh++) {
        const int64_t s = sh / nh, h = sh % nh, T = pos0 + s + 1;
        float *p = r->scores + (int64_t)omp_get_thread_num() * r->max_seq;
        const float *qn = r->q + sh * dq, *qp = qn + dn;
        for (int64_t t = 0; t < T; t++)
            p[t] = (dsv3_dot_f32(qn, r->kvfull + t * kvw + h * (dn + dv), dn) +
                    dsv3_dot_f32(qp, kc->kpe + t * dr, dr)) *
                   scale;
        softmax(p, T);
        float *o = r->o + s * nh * dv + h * dv;
        memset(o, 0, (size_t)dv * 4);
        for (int64_t t = 0; t < T; t++) {
            const float pt = p[t], *v = r->kvfull + t * kvw + h * (dn + dv) + dn;
#pragma omp simd
            for (int64_t i = 0; i < dv; i++) o[i] += pt * v[i];
        }
    }
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
