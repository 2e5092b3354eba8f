/* mtp.c — the MTP module of a run (see mtp.h). */
#include "model/run/mtp.h"
#include "model/run/model_internal.h"

/* "MTP": z = eh_proj([enorm(E[t_{i+1}]) ; hnorm(h_i)]) for rows 0..n-1 into r->x (the
 * embedding rows pass through r->y, the normed hidden states through r->xn). */
static void mtp_input(dsv3_run *r, const int32_t *next_ids, const float *hidden, int64_t n) {
    const dsv3_model *m = r->m;
    const dsv3_backend *be = r->be;
    const dsv3_mtp_w *t = &m->mtp;
    const int64_t H = m->cfg.hidden_size;
    const float eps = (float)m->cfg.rms_norm_eps;
    if (!be->is_host) {
        be->upload(r->hidden, hidden, (size_t)(n * H) * sizeof(float));
        hidden = r->hidden;
    }
    be->embed(r->y, &t->embed, dsv3_run_ids(r, next_ids, n), n);
    be->rmsnorm(r->y, r->y, t->enorm, n, H, eps);
    be->rmsnorm(r->xn, hidden, t->hnorm, n, H, eps);
    be->copy2d(r->cat, 2 * H, r->y, H, n, H);
    be->copy2d(r->cat + H, 2 * H, r->xn, H, n, H);
    be->matmul(r->x, r->cat, &t->eh_proj, n);
}

/* "MTP": z = eh_proj([enorm(E[t_{i+1}]) ; hnorm(h_i)]); z = block(z, pos i); head. */
dsv3_status dsv3_forward_mtp(dsv3_run *r, const int32_t *next_ids, const float *hidden,
                             int64_t n, float *logits, int last_only, dsv3_err *err) {
    const dsv3_model *m = r->m;
    if (!m->has_mtp)
        return dsv3_errf(err, DSV3_EUNSUPPORTED, "forward_mtp: the model has no MTP layer");
    dsv3_status st = dsv3_check_chunk(r, next_ids, n, r->mtp_len, "forward_mtp", err);
    if (st || (st = dsv3_run_sync_backend(r, "forward_mtp", err))) return st;
    const dsv3_mtp_w *t = &m->mtp;
    const int64_t pos0 = r->mtp_len;
    mtp_input(r, next_ids, hidden, n);
    if (dsv3_cancelled(r)) return dsv3_errf(err, DSV3_EINTR, "forward_mtp: interrupted");
    r->cur_ids = next_ids;
    dsv3_block_forward(r, &t->block, m->cfg.num_hidden_layers, &r->cache[m->cfg.num_hidden_layers],
                  r->x, n, pos0);
    dsv3_head_forward(r, r->x, t->head_norm, &t->head, n, logits, last_only, NULL);
    r->mtp_len = pos0 + n;
    return DSV3_OK;
}

/* The MTP module is one block, so the cache rows of a position depend on that position's input
 * alone ("MLA": c and k_pe are projections of the normed block input): rows whose logits
 * nobody reads need eh_proj, the norm and kv_a only — no attention, experts or head. */
dsv3_status dsv3_forward_mtp_cache(dsv3_run *r, const int32_t *next_ids, const float *hidden,
                                   int64_t n, dsv3_err *err) {
    const dsv3_model *m = r->m;
    if (!m->has_mtp)
        return dsv3_errf(err, DSV3_EUNSUPPORTED, "forward_mtp: the model has no MTP layer");
    if (dsv3_hooked(r)) /* probes see every row of the module, as before */
        return dsv3_forward_mtp(r, next_ids, hidden, n, NULL, 0, err);
    dsv3_status st = dsv3_check_chunk(r, next_ids, n, r->mtp_len, "forward_mtp", err);
    if (st || (st = dsv3_run_sync_backend(r, "forward_mtp", err))) return st;
    const dsv3_layer_w *L = &m->mtp.block;
    const int64_t pos0 = r->mtp_len;
    mtp_input(r, next_ids, hidden, n);
    r->be->rmsnorm(r->xn, r->x, L->attn_norm, n, m->cfg.hidden_size, (float)m->cfg.rms_norm_eps);
    dsv3_mla_cache_only(r, L, &r->cache[m->cfg.num_hidden_layers], r->xn, n, pos0);
    r->mtp_len = pos0 + n;
    return DSV3_OK;
}
