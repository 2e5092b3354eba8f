/* mtp.c — the MTP module of a run (see mtp.h). */
#include "model/run/mtp.h"
#include "model/run/scan.h"
#include "model/run/model_internal.h"

/* "MTP": z = eh_proj([enorm(E[t_{i+1}]) ; hnorm(h_i)]) for rows 0..n-1 into r->x (the
 * embedding rows pass through r->y, the normed hidden states through r->xn). */
static void mtp_input(dsv3_run *r, const int32_t *next_ids, const float *hidden, int64_t n) {
    const dsv3_model *m = r->m;
    const dsv3_backend *be = r->be;
    const dsv3_mtp_w *t = &m->mtp;
    const int64_t H = m->cfg.hidden_size;
    const float eps = (float)m->cfg.rms_norm_eps;
    be->embed(r->y, &t->embed, dsv3_run_ids(r, next_ids, n), n);
    be->rmsnorm(r->y, r->y, t->enorm, n, H, eps);
    be->rmsnorm(r->xn, hidden, t->hnorm, n, H, eps);
    be->copy2d(r->cat, 2 * H, r->y, H, n, H);
    be->copy2d(r->cat + H, 2 * H, r->xn, H, n, H);
    be->matmul(r->x, r->cat, &t->eh_proj, n);
}

/* What every entry point checks first; hidden rows then come from `hidden` in backend memory. */
static dsv3_status mtp_check(dsv3_run *r, const int32_t *next_ids, int64_t n, dsv3_err *err) {
    if (!r->m->has_mtp)
        return dsv3_errf(err, DSV3_EUNSUPPORTED, "forward_mtp: the model has no MTP layer");
    dsv3_status st = dsv3_check_chunk(r, next_ids, n, r->mtp_len, "forward_mtp", err);
    if (st || (st = dsv3_run_sync_backend(r, "forward_mtp", err))) return st;
    return DSV3_OK;
}

/* "MTP": z = eh_proj([enorm(E[t_{i+1}]) ; hnorm(h_i)]); z = block(z, pos i); head. */
static dsv3_status mtp_forward(dsv3_run *r, const int32_t *next_ids, const float *hidden, int64_t n,
                               float *logits, int last_only, dsv3_err *err) {
    const dsv3_model *m = r->m;
    const dsv3_mtp_w *t = &m->mtp;
    const int64_t pos0 = r->mtp_len;
    mtp_input(r, next_ids, hidden, n);
    if (dsv3_cancelled(r)) return dsv3_errf(err, DSV3_EINTR, "forward_mtp: interrupted");
    r->cur_ids = next_ids;
    dsv3_block_forward(r, &t->block, m->cfg.num_hidden_layers, &r->cache[m->cfg.num_hidden_layers],
                       r->x, n, pos0);
    dsv3_head_forward(r, r->x, t->head_norm, &t->head, n, logits, last_only, NULL);
    if (logits && dsv3_scan_any_nonfinite(logits, (last_only ? 1 : n) * m->cfg.vocab_size))
        return dsv3_errf(err, DSV3_EFORMAT, "forward_mtp: non-finite logits from the MTP module "
                         "(layer %lld; `dsv3 check` scans every tensor)", (long long)m->cfg.num_hidden_layers);
    r->mtp_len = pos0 + n;
    return DSV3_OK;
}

/* The MTP module is one block, so the cache rows of a position depend on that position's input
 * alone ("MLA": c and k_pe are projections of the normed block input): rows whose logits
 * nobody reads need eh_proj, the norm and kv_a only — no attention, experts or head. With hooks
 * attached the full module runs, so probes see every row. */
static dsv3_status mtp_cache(dsv3_run *r, const int32_t *next_ids, const float *hidden, int64_t n,
                             dsv3_err *err) {
    if (dsv3_hooked(r)) return mtp_forward(r, next_ids, hidden, n, NULL, 0, err);
    const dsv3_model *m = r->m;
    const dsv3_layer_w *L = &m->mtp.block;
    const int64_t pos0 = r->mtp_len;
    mtp_input(r, next_ids, hidden, n);
    r->be->rmsnorm(r->xn, r->x, L->attn_norm, n, m->cfg.hidden_size, (float)m->cfg.rms_norm_eps);
    dsv3_mla_cache_only(r, L, &r->cache[m->cfg.num_hidden_layers], r->xn, n, pos0);
    r->mtp_len = pos0 + n;
    return DSV3_OK;
}

/* Host hidden states where the backend reads them (uploaded unless backend memory is host). */
static const float *hidden_in(dsv3_run *r, const float *hidden, int64_t n) {
    if (r->be->is_host) return hidden;
    r->be->upload(r->hidden, hidden, (size_t)(n * r->m->cfg.hidden_size) * sizeof(float));
    return r->hidden;
}

/* Rows row0..row0+n-1 of the hidden states the last forward kept, or NULL with err set. */
static const float *kept_rows(dsv3_run *r, int64_t row0, int64_t n, dsv3_err *err) {
    if (!r->keep_hidden || row0 < 0 || row0 + n > r->kept_rows) {
        dsv3_errf(err, DSV3_EINVAL, "forward_mtp: rows %lld..%lld of the kept hidden states (the last "
                  "forward kept %lld)", (long long)row0, (long long)(row0 + n - 1), (long long)r->kept_rows);
        return NULL;
    }
    return r->kept + row0 * r->m->cfg.hidden_size;
}

dsv3_status dsv3_forward_mtp(dsv3_run *r, const int32_t *next_ids, const float *hidden,
                             int64_t n, float *logits, int last_only, dsv3_err *err) {
    dsv3_status st = mtp_check(r, next_ids, n, err);
    return st ? st : mtp_forward(r, next_ids, hidden_in(r, hidden, n), n, logits, last_only, err);
}

dsv3_status dsv3_forward_mtp_cache(dsv3_run *r, const int32_t *next_ids, const float *hidden,
                                   int64_t n, dsv3_err *err) {
    dsv3_status st = mtp_check(r, next_ids, n, err);
    return st ? st : mtp_cache(r, next_ids, hidden_in(r, hidden, n), n, err);
}

dsv3_status dsv3_forward_mtp_kept(dsv3_run *r, const int32_t *next_ids, int64_t row0, int64_t n,
                                  float *logits, int last_only, dsv3_err *err) {
    dsv3_status st = mtp_check(r, next_ids, n, err);
    if (st) return st;
    const float *h = kept_rows(r, row0, n, err);
    return h ? mtp_forward(r, next_ids, h, n, logits, last_only, err) : DSV3_EINVAL;
}

dsv3_status dsv3_forward_mtp_cache_kept(dsv3_run *r, const int32_t *next_ids, int64_t row0,
                                        int64_t n, dsv3_err *err) {
    dsv3_status st = mtp_check(r, next_ids, n, err);
    if (st) return st;
    const float *h = kept_rows(r, row0, n, err);
    return h ? mtp_cache(r, next_ids, h, n, err) : DSV3_EINVAL;
}
