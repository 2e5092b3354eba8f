/* forward.c — run state and the top-level forward passes (docs/ARCHITECTURE.md, "Forward pass",
 * "MTP").
 *
 * dsv3_forward reads like "Forward pass": embed, then per layer RMSNorm → MLA → residual → RMSNorm
 * → dense FFN or MoE → residual, then the final norm and the head. The MTP module reuses the same
 * decoder block on its own input and cache.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/pool.h"
#include "model/run/model_internal.h"

/* ---------------------------------------------------------------- run lifetime --------- */

void dsv3_run_free(dsv3_run *r) {
    if (!r) return;
    if (r->cache)
        for (int64_t i = 0; i <= r->m->cfg.num_hidden_layers; i++) {
            free(r->cache[i].c);
            free(r->cache[i].kpe);
        }
    free(r->cache);
    float *bufs[] = {r->x,      r->xn,     r->y,      r->qa,    r->q,  r->kva,
                     r->o,      r->qabs,   r->u,      r->hin,   r->hout, r->kvfull,
                     r->scores, r->ffn_g,  r->ffn_u,  r->xg,    r->yg, r->router,
                     r->sel_w,  r->disp_w, r->cat};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(r->sel_idx);
    free(r->exp_count);
    free(r->disp_tok);
    free(r->pos);
    free(r->ops);
    free(r->head_w);
    free(r->rec_scores);
    free(r->rec_biased);
    free(r->rec_groups);
    free(r->rec_nobias);
    free(r);
}

static int64_t max3(int64_t a, int64_t b, int64_t c) {
    int64_t m = a > b ? a : b;
    return m > c ? m : c;
}

dsv3_status dsv3_run_new(dsv3_run **out, dsv3_model *m, const dsv3_run_opts *opts,
                         dsv3_err *err) {
    *out = NULL;
    const dsv3_config *c = &m->cfg;
    dsv3_run_opts o = opts ? *opts : (dsv3_run_opts){0};
    if (o.max_seq <= 0) o.max_seq = c->max_position_embeddings < 4096 ? c->max_position_embeddings : 4096;
    if (o.max_seq > c->max_position_embeddings)
        return dsv3_errf(err, DSV3_EINVAL, "run: max_seq %lld exceeds max_position_embeddings %lld",
                         (long long)o.max_seq, (long long)c->max_position_embeddings);
    if (o.max_chunk <= 0) o.max_chunk = 512;
    if (o.max_chunk > o.max_seq) o.max_chunk = o.max_seq;
    dsv3_run *r = calloc(1, sizeof *r);
    if (!r) return dsv3_errf(err, DSV3_ENOMEM, "run: out of memory");
    r->m = m;
    r->max_seq = o.max_seq;
    r->max_chunk = o.max_chunk;
    r->attn = o.attn;
    r->nthreads = dsv3_pool_threads();
    const int64_t S = o.max_seq, C = o.max_chunk, H = c->hidden_size;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    const int64_t dr = c->qk_rope_head_dim, rkv = c->kv_lora_rank;
    const int64_t E = c->n_routed_experts > 0 ? c->n_routed_experts : 1;
    const int64_t K = c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1;
    /* FFN scratch: a dense layer's [C, intermediate] or a MoE layer's routed slots [C*K,
     * moe_inter] followed by the shared expert's [C, moe_inter * n_shared]. */
    const int64_t ffn = max3(C * c->intermediate_size,
                             C * K * c->moe_intermediate_size + C * c->moe_intermediate_size * c->n_shared_experts,
                             1);
    int ok = 1;
#define ALLOC(p, count) ok = ok && ((p) = calloc((size_t)(count), sizeof *(p))) != NULL
    ALLOC(r->cache, c->num_hidden_layers + 1);
    for (int64_t i = 0; ok && i <= c->num_hidden_layers; i++) {
        if (i == c->num_hidden_layers && !m->has_mtp) break;
        ALLOC(r->cache[i].c, S * rkv);
        ALLOC(r->cache[i].kpe, S * dr);
    }
    ALLOC(r->x, C * H);
    ALLOC(r->xn, C * H);
    ALLOC(r->y, C * H);
    ALLOC(r->qa, C * (c->q_lora_rank > 0 ? c->q_lora_rank : 1));
    ALLOC(r->q, C * nh * (dn + dr));
    ALLOC(r->kva, C * (rkv + dr));
    ALLOC(r->o, C * nh * dv);
    ALLOC(r->qabs, C * nh * rkv);
    ALLOC(r->u, C * nh * rkv);
    ALLOC(r->hin, C * nh * max3(dn, dv, rkv > dr ? rkv : dr));
    ALLOC(r->hout, C * nh * dv);
    if (o.attn == DSV3_ATTN_NAIVE) ALLOC(r->kvfull, S * nh * (dn + dv));
    ALLOC(r->scores, (int64_t)r->nthreads * nh * S);
    ALLOC(r->ffn_g, ffn);
    ALLOC(r->ffn_u, ffn);
    ALLOC(r->xg, C * K * H);
    ALLOC(r->yg, (C * K + C) * H);
    ALLOC(r->ops, 2 * (E + 1) > nh ? 2 * (E + 1) : nh);
    ALLOC(r->head_w, nh);
    ALLOC(r->router, C * E);
    ALLOC(r->sel_idx, C * K);
    ALLOC(r->sel_w, C * K);
    ALLOC(r->exp_count, E + 1);
    ALLOC(r->disp_tok, C * K);
    ALLOC(r->disp_w, C * K);
    ALLOC(r->cat, C * 2 * H);
    ALLOC(r->pos, C);
    ALLOC(r->rec_scores, E);
    ALLOC(r->rec_biased, E);
    ALLOC(r->rec_groups, c->n_group > 0 ? c->n_group : 1);
    ALLOC(r->rec_nobias, K);
#undef ALLOC
    if (!ok) {
        dsv3_run_free(r);
        return dsv3_errf(err, DSV3_ENOMEM, "run: out of memory for max_seq %lld, max_chunk %lld",
                         (long long)S, (long long)C);
    }
    *out = r;
    return DSV3_OK;
}

int64_t dsv3_run_len(const dsv3_run *r) {
    return r->len;
}
int64_t dsv3_run_mtp_len(const dsv3_run *r) {
    return r->mtp_len;
}
int64_t dsv3_run_max_seq(const dsv3_run *r) {
    return r->max_seq;
}
int64_t dsv3_run_max_chunk(const dsv3_run *r) {
    return r->max_chunk;
}
void dsv3_run_truncate(dsv3_run *r, int64_t len) {
    if (len < 0) len = 0;
    if (len < r->len) r->len = len;
    if (len < r->mtp_len) r->mtp_len = len;
}
void dsv3_run_set_cancel(dsv3_run *r, const volatile int *flag) {
    r->cancel = flag;
}
void dsv3_run_set_hooks(dsv3_run *r, const dsv3_hooks *h) {
    r->has_hooks = h != NULL;
    if (h) r->hooks = *h;
}
void dsv3_run_set_interventions(dsv3_run *r, const dsv3_interventions *iv) {
    r->has_iv = iv != NULL;
    if (iv) r->iv = *iv;
}

/* ---------------------------------------------------------------- forward -------------- */

dsv3_status dsv3_check_chunk(const dsv3_run *r, const int32_t *ids, int64_t n, int64_t at,
                               const char *what, dsv3_err *err) {
    const int64_t V = r->m->cfg.vocab_size;
    if (n < 1 || n > r->max_chunk)
        return dsv3_errf(err, DSV3_EINVAL, "%s: %lld tokens in one call (allowed 1..%lld)", what,
                         (long long)n, (long long)r->max_chunk);
    if (at + n > r->max_seq)
        return dsv3_errf(err, DSV3_EINVAL,
                         "%s: %lld cached + %lld new positions exceed the run's max_seq %lld", what,
                         (long long)at, (long long)n, (long long)r->max_seq);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return dsv3_errf(err, DSV3_EINVAL, "%s: token id %d at position %lld out of range [0, %lld)",
                             what, ids[i], (long long)i, (long long)V);
    return DSV3_OK;
}

int dsv3_cancelled(const dsv3_run *r) {
    return r->cancel && *r->cancel;
}

/* Reports an activation to the point hook, if one is attached. */
void dsv3_report_point(dsv3_run *r, dsv3_point p, int64_t li, int64_t pos0, int64_t n, int64_t dim,
                  const float *x) {
    if (dsv3_hooked(r) && r->hooks.point) r->hooks.point(r->hooks.ud, p, li, pos0, n, dim, x);
}

/* One decoder block (layer index li) over x[n, H] in place:
 * x += MLA(norm(x)); x += FFN(norm(x)). */
void dsv3_block_forward(dsv3_run *r, const dsv3_layer_w *L, int64_t li, dsv3_layer_cache *kc,
                          float *x, int64_t n, int64_t pos0) {
    const dsv3_model *m = r->m;
    const int64_t H = m->cfg.hidden_size;
    const float eps = (float)m->cfg.rms_norm_eps;
    dsv3_report_point(r, DSV3_POINT_RESID_IN, li, pos0, n, H, x);
    m->be->rmsnorm(r->xn, x, L->attn_norm, n, H, eps);
    dsv3_mla_forward(r, L, li, kc, r->xn, r->y, n, pos0);
    dsv3_report_point(r, DSV3_POINT_ATTN_OUT, li, pos0, n, H, r->y);
    /* (omp simd: without it the possible aliasing of x and y keeps -O2 from vectorising) */
#pragma omp simd
    for (int64_t i = 0; i < n * H; i++) x[i] += r->y[i];
    m->be->rmsnorm(r->xn, x, L->ffn_norm, n, H, eps);
    if (L->is_moe) dsv3_moe_forward_layer(r, L, li, r->xn, r->y, n, pos0);
    else dsv3_mlp_forward(r, &L->dense, r->xn, r->y, n);
    dsv3_report_point(r, DSV3_POINT_FFN_OUT, li, pos0, n, H, r->y);
#pragma omp simd
    for (int64_t i = 0; i < n * H; i++) x[i] += r->y[i];
    dsv3_report_point(r, DSV3_POINT_RESID_OUT, li, pos0, n, H, x);
}

/* Final norm (into hidden, if wanted) and the head (into logits, if wanted). */
void dsv3_head_forward(dsv3_run *r, const float *x, const float *norm, const dsv3_weight *head,
                         int64_t n, float *logits, int last_only, float *hidden) {
    const dsv3_model *m = r->m;
    const int64_t H = m->cfg.hidden_size;
    m->be->rmsnorm(r->xn, x, norm, n, H, (float)m->cfg.rms_norm_eps);
    if (hidden) memcpy(hidden, r->xn, (size_t)(n * H) * 4);
    if (!logits) return;
    if (last_only) m->be->matmul(logits, r->xn + (n - 1) * H, head, 1);
    else m->be->matmul(logits, r->xn, head, n);
}

dsv3_status dsv3_forward(dsv3_run *r, const int32_t *ids, int64_t n, float *logits,
                         int last_only, float *hidden, dsv3_err *err) {
    dsv3_status st = dsv3_check_chunk(r, ids, n, r->len, "forward", err);
    if (st) return st;
    const dsv3_model *m = r->m;
    const int64_t H = m->cfg.hidden_size, pos0 = r->len;
    for (int64_t s = 0; s < n; s++) m->be->row(r->x + s * H, &m->embed, ids[s]);
    r->cur_ids = ids;
    for (int64_t l = 0; l < m->cfg.num_hidden_layers; l++) {
        if (dsv3_cancelled(r)) return dsv3_errf(err, DSV3_EINTR, "forward: interrupted");
        dsv3_block_forward(r, &m->layers[l], l, &r->cache[l], r->x, n, pos0);
    }
    dsv3_head_forward(r, r->x, m->final_norm, &m->lm_head, n, logits, last_only, hidden);
    dsv3_report_point(r, DSV3_POINT_HIDDEN, -1, pos0, n, H, r->xn);
    r->len = pos0 + n;
    return DSV3_OK;
}

dsv3_status dsv3_forward_chunked(dsv3_run *r, const int32_t *ids, int64_t n, float *logits,
                                 float *hidden, dsv3_err *err) {
    const int64_t V = r->m->cfg.vocab_size, H = r->m->cfg.hidden_size, C = r->max_chunk;
    dsv3_status st = DSV3_OK;
    for (int64_t at = 0; at < n && !st; at += C) {
        const int64_t m = n - at < C ? n - at : C;
        st = dsv3_forward(r, ids + at, m, logits ? logits + at * V : NULL, 0,
                          hidden ? hidden + at * H : NULL, err);
    }
    return st;
}
