/* forward.c — run state and the top-level forward passes (docs/ARCHITECTURE.md, "Forward pass",
 * "MTP").
 *
 * dsv3_forward reads like "Forward pass": embed, then per layer RMSNorm → MLA → residual → RMSNorm
 * → dense FFN or MoE → residual, then the final norm and the head. The MTP module reuses the same
 * decoder block on its own input and cache.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/pool.h"
#include "model/run/model_internal.h"
#include "model/run/scan.h"

/* ---------------------------------------------------------------- run lifetime --------- */

void dsv3_run_free(dsv3_run *r) {
    if (!r) return;
    const dsv3_backend *be = r->be;
    if (r->cache)
        for (int64_t i = 0; i <= r->m->cfg.num_hidden_layers; i++) {
            be->free(r->cache[i].ckv);
        }
    free(r->cache);
    void *bufs[] = {r->x,       r->xn,      r->y,      r->qa,     r->q,      r->kva,
                    r->o,       r->qabs,    r->u,      r->hin,    r->hout,   r->kvfull, r->cnaive,
                    r->scores,  r->ffn_g,   r->ffn_u,  r->moe.xg, r->moe.yg, r->router,
                    r->sel_w,   r->cat,     r->sel_idx, r->ids,   r->logits, r->hidden, r->kept,
                    r->record,  r->iv_disabled, r->iv_forced, r->moe.disp_tok, r->moe.disp_w,
                    r->moe.count};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->free(bufs[i]);
    free(r->ops);
    free(r->host_record);
    free(r->host_stage);
    free(r->ev_idx);
    free(r->ev_nobias);
    free(r->ev_groups);
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
    const dsv3_backend *be = m->be;
    r->m = m;
    r->be = be;
    r->max_seq = o.max_seq;
    r->max_chunk = o.max_chunk;
    r->attn = o.attn;
    r->nthreads = dsv3_pool_threads();
    const int64_t S = o.max_seq, C = o.max_chunk, H = c->hidden_size, V = c->vocab_size;
    const int64_t L = c->num_hidden_layers;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    const int64_t dr = c->qk_rope_head_dim, rkv = c->kv_lora_rank;
    const int64_t E = c->n_routed_experts > 0 ? c->n_routed_experts : 1;
    const int64_t K = c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1;
    const int64_t G = c->n_group > 0 ? c->n_group : 1;
    const int64_t R = 2 * E + G + 3 * K; /* dsv3_route_record_floats */
    /* FFN scratch: a dense layer's [C, intermediate] or a MoE layer's routed slots [C*K,
     * moe_inter] followed by the shared expert's [C, moe_inter * n_shared]. */
    const int64_t ffn = max3(C * c->intermediate_size,
                             C * K * c->moe_intermediate_size + C * c->moe_intermediate_size * c->n_shared_experts,
                             1);
    int ok = 1;
#define BALLOC(p, count) ok = ok && ((p) = be->alloc((size_t)(count) * sizeof *(p))) != NULL
#define HALLOC(p, count) ok = ok && ((p) = calloc((size_t)(count), sizeof *(p))) != NULL
    HALLOC(r->cache, L + 1);
    for (int64_t i = 0; ok && i <= L; i++) {
        if (i == L && !m->has_mtp) break;
        BALLOC(r->cache[i].ckv, S * (rkv + dr));
        r->cache[i].c = r->cache[i].ckv;
        r->cache[i].kpe = r->cache[i].ckv ? r->cache[i].ckv + rkv : NULL;
        r->cache[i].stride = rkv + dr;
    }
    BALLOC(r->x, C * H);
    BALLOC(r->xn, C * H);
    BALLOC(r->y, C * H);
    BALLOC(r->qa, C * (c->q_lora_rank > 0 ? c->q_lora_rank : 1));
    BALLOC(r->q, C * nh * (dn + dr));
    BALLOC(r->kva, C * (rkv + dr));
    BALLOC(r->o, C * nh * dv);
    BALLOC(r->qabs, C * nh * rkv);
    BALLOC(r->u, C * nh * rkv);
    BALLOC(r->hin, C * nh * max3(dn, dv, rkv));
    BALLOC(r->hout, C * nh * dv);
    if (o.attn == DSV3_ATTN_NAIVE) {
        BALLOC(r->kvfull, S * nh * (dn + dv));
        BALLOC(r->cnaive, S * rkv);
    }
    BALLOC(r->scores, (int64_t)r->nthreads * nh * S);
    BALLOC(r->ffn_g, ffn);
    BALLOC(r->ffn_u, ffn);
    BALLOC(r->moe.xg, C * K * H);
    BALLOC(r->moe.yg, (C * K + C) * H);
    BALLOC(r->moe.disp_tok, C * K);
    BALLOC(r->moe.disp_w, C * K);
    BALLOC(r->moe.count, E + 1);
    HALLOC(r->ops, 2 * (E + 1) > nh ? 2 * (E + 1) : nh);
    BALLOC(r->router, C * E);
    BALLOC(r->sel_idx, C * K);
    BALLOC(r->sel_w, C * K);
    BALLOC(r->cat, C * 2 * H);
    BALLOC(r->ids, C);
    BALLOC(r->record, C * R);
    if (m->has_mtp) BALLOC(r->kept, C * H);
    HALLOC(r->ev_idx, K);
    HALLOC(r->ev_nobias, K);
    HALLOC(r->ev_groups, G);
    if (!be->is_host) {
        BALLOC(r->logits, C * V);
        BALLOC(r->hidden, C * H);
        BALLOC(r->iv_disabled, (L + 1) * E);
        BALLOC(r->iv_forced, (L + 1) * K);
        HALLOC(r->host_stage, C * max3(H, rkv, S));
        HALLOC(r->host_record, C * R);
    }
#undef BALLOC
#undef HALLOC
    r->moe.ffn_g = r->ffn_g;
    r->moe.ffn_u = r->ffn_u;
    r->moe.ops = r->ops;
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
void dsv3_run_keep_hidden(dsv3_run *r, int on) {
    r->keep_hidden = on && r->kept;
    r->kept_rows = 0;
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
    if (!iv) return;
    r->iv = *iv;
    if (r->be->is_host) return;
    /* The routing step reads the arrays on the backend: upload them once, here. */
    const dsv3_config *c = &r->m->cfg;
    const int64_t rows = c->num_hidden_layers + 1;
    if (iv->disabled) {
        r->be->upload(r->iv_disabled, iv->disabled, (size_t)(rows * c->n_routed_experts));
        r->iv.disabled = r->iv_disabled;
    }
    if (iv->forced) {
        r->be->upload(r->iv_forced, iv->forced, (size_t)(rows * c->num_experts_per_tok) * sizeof(int32_t));
        r->iv.forced = r->iv_forced;
    }
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

/* One decoder block (layer index li) over x[n, H] in place:
 * x += MLA(norm(x)); x += FFN(norm(x)). */
void dsv3_block_forward(dsv3_run *r, const dsv3_layer_w *L, int64_t li, dsv3_layer_cache *kc,
                        float *x, int64_t n, int64_t pos0) {
    const dsv3_backend *be = r->be;
    const int64_t H = r->m->cfg.hidden_size;
    const float eps = (float)r->m->cfg.rms_norm_eps;
    dsv3_report_point(r, DSV3_POINT_RESID_IN, li, pos0, n, H, x);
    be->rmsnorm(r->xn, x, L->attn_norm, n, H, eps);
    dsv3_mla_forward(r, L, li, kc, r->xn, r->y, n, pos0);
    dsv3_report_point(r, DSV3_POINT_ATTN_OUT, li, pos0, n, H, r->y);
    be->add(x, r->y, n * H);
    be->rmsnorm(r->xn, x, L->ffn_norm, n, H, eps);
    if (L->is_moe) dsv3_moe_forward_layer(r, L, li, r->xn, r->y, n, pos0);
    else dsv3_mlp_forward(r, &L->dense, r->xn, r->y, n);
    dsv3_report_point(r, DSV3_POINT_FFN_OUT, li, pos0, n, H, r->y);
    be->add(x, r->y, n * H);
    dsv3_report_point(r, DSV3_POINT_RESID_OUT, li, pos0, n, H, x);
}

/* Final norm (into hidden, if wanted) and the head (into logits, if wanted): host arrays,
 * written by one download each (straight into them on host backends). */
void dsv3_head_forward(dsv3_run *r, const float *x, const float *norm, const dsv3_weight *head,
                       int64_t n, float *logits, int last_only, float *hidden) {
    const dsv3_backend *be = r->be;
    const int64_t H = r->m->cfg.hidden_size, V = head->rows;
    be->rmsnorm(r->xn, x, norm, n, H, (float)r->m->cfg.rms_norm_eps);
    if (hidden) be->download(hidden, r->xn, (size_t)(n * H) * sizeof(float));
    if (!logits) return;
    const int64_t rows = last_only ? 1 : n;
    float *out = be->is_host ? logits : r->logits;
    be->matmul(out, r->xn + (n - rows) * H, head, rows);
    if (!be->is_host) be->download(logits, r->logits, (size_t)(rows * V) * sizeof(float));
}

dsv3_status dsv3_run_sync_backend(dsv3_run *r, const char *what, dsv3_err *err) {
    const dsv3_backend *now = r->m->be;
    if (now == r->be) return DSV3_OK;
    if (!now->is_host || !r->be->is_host)
        return dsv3_errf(err, DSV3_EINVAL,
                         "%s: the model's backend changed from %s to %s since this run was made "
                         "(make a new run)", what, r->be->name, now->name);
    r->be = now; /* host memory either way: the run's buffers serve the new kernels */
    return DSV3_OK;
}

/* The ids of a chunk where the backend reads them. */
const int32_t *dsv3_run_ids(dsv3_run *r, const int32_t *ids, int64_t n) {
    if (r->be->is_host) return ids;
    r->be->upload(r->ids, ids, (size_t)n * sizeof *ids);
    return r->ids;
}

/* The main model over ids at positions pos0.. (the body of dsv3_forward, without its checks). */
static dsv3_status forward_body(dsv3_run *r, const int32_t *ids, int64_t n, int64_t pos0, float *logits,
                                int last_only, float *hidden, dsv3_err *err) {
    const dsv3_model *m = r->m;
    r->be->embed(r->x, &m->embed, dsv3_run_ids(r, ids, n), n);
    r->cur_ids = ids;
    for (int64_t l = 0; l < m->cfg.num_hidden_layers; l++) {
        if (dsv3_cancelled(r)) return dsv3_errf(err, DSV3_EINTR, "forward: interrupted");
        dsv3_block_forward(r, &m->layers[l], l, &r->cache[l], r->x, n, pos0);
    }
    dsv3_head_forward(r, r->x, m->final_norm, &m->lm_head, n, logits, last_only, hidden);
    dsv3_report_point(r, DSV3_POINT_HIDDEN, -1, pos0, n, m->cfg.hidden_size, r->xn);
    return DSV3_OK;
}

/* The first non-finite value a diagnostic re-run meets (see nonfinite_error). */
typedef struct {
    int found;
    dsv3_point point;
    int64_t layer, pos;
} first_bad;

static void find_bad(void *ud, dsv3_point p, int64_t layer, int64_t pos0, int64_t n, int64_t dim,
                     const float *x) {
    first_bad *f = ud;
    if (f->found) return;
    for (int64_t i = 0; i < n * dim; i++)
        if (!isfinite(x[i])) {
            *f = (first_bad){1, p, layer, pos0 + i / dim};
            return;
        }
}

/* Logits came out non-finite: runs the chunk again with a hook on every point to name the first
 * layer and component where a non-finite value appeared, then leaves the caches at pos0. */
static dsv3_status nonfinite_error(dsv3_run *r, const int32_t *ids, int64_t n, int64_t pos0,
                                   dsv3_err *err) {
    static const char *const names[] = {"its input (resid_in)", "attention output (attn_out)",
                                        "FFN/MoE output (ffn_out)", "output (resid_out)",
                                        "latent cache (ckv)", "final norm (hidden)"};
    const dsv3_hooks saved = r->hooks;
    const int had = r->has_hooks;
    first_bad f = {0};
    r->hooks = (dsv3_hooks){.ud = &f, .point = find_bad};
    r->has_hooks = 1;
    dsv3_status st = forward_body(r, ids, n, pos0, NULL, 0, NULL, err);
    r->hooks = saved;
    r->has_hooks = had;
    r->len = pos0;
    if (st) return st;
    if (!f.found || f.point == DSV3_POINT_HIDDEN)
        return dsv3_errf(err, DSV3_EFORMAT, "forward: non-finite logits at position %lld (the lm_head "
                         "or final norm; every layer's output was finite)", (long long)(f.found ? f.pos : pos0));
    return dsv3_errf(err, DSV3_EFORMAT,
                     "forward: non-finite values first in layer %lld, %s, at position %lld (a NaN or "
                     "infinity in that layer's weights? `dsv3 check` scans every tensor)",
                     (long long)f.layer, names[f.point], (long long)f.pos);
}

dsv3_status dsv3_forward(dsv3_run *r, const int32_t *ids, int64_t n, float *logits,
                         int last_only, float *hidden, dsv3_err *err) {
    dsv3_status st = dsv3_check_chunk(r, ids, n, r->len, "forward", err);
    if (st || (st = dsv3_run_sync_backend(r, "forward", err))) return st;
    const int64_t H = r->m->cfg.hidden_size, pos0 = r->len;
    if ((st = forward_body(r, ids, n, pos0, logits, last_only, hidden, err))) return st;
    /* Non-finite numbers never pass silently: the logits (host memory) are checked, a cost of
     * one pass over vocab floats per row; the rare failure pays for a diagnostic re-run. */
    if (logits && dsv3_scan_any_nonfinite(logits, (last_only ? 1 : n) * r->m->cfg.vocab_size))
        return nonfinite_error(r, ids, n, pos0, err);
    if (r->keep_hidden) { /* for the MTP module's next calls, without a trip to the host */
        r->be->copy2d(r->kept, H, r->xn, H, n, H);
        r->kept_rows = n;
    }
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
