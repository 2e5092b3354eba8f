/* mtp_trace.c — MTP draft acceptance (see mtp_trace.h). */
#include "probes/mtp_trace.h"

#include <stdlib.h>
#include <string.h>

void dsv3_mtp_trace_fini(dsv3_mtp_trace *t) {
    if (!t) return;
    free(t->steps);
    memset(t, 0, sizeof *t);
}

/* The record has room for n_new drafts (each verification yields at least one token), so the
 * hook never allocates; anything beyond is dropped. */
typedef struct {
    dsv3_draft_event *ev;
    int64_t n, cap;
} draft_log;

static void on_draft(void *ud, const dsv3_draft_event *ev) {
    draft_log *d = ud;
    if (d->n < d->cap) d->ev[d->n++] = *ev;
}

/* The sums over the steps: rate, by position bucket, by token-id band, q histogram. */
static void summarize(dsv3_mtp_trace *t, int64_t V) {
    int64_t band_n[DSV3_TRACE_BANDS] = {0}, band_a[DSV3_TRACE_BANDS] = {0};
    for (int64_t i = 0; i < t->drafted; i++) {
        const dsv3_draft_event *e = &t->steps[i];
        t->accepted += e->accepted;
        const int64_t b = (e->pos / DSV3_TRACE_BUCKET) < DSV3_TRACE_BUCKETS - 1
                              ? e->pos / DSV3_TRACE_BUCKET
                              : DSV3_TRACE_BUCKETS - 1;
        t->pos_drafted[b]++;
        t->pos_accepted[b] += e->accepted;
        const int64_t band = (int64_t)e->draft * DSV3_TRACE_BANDS / V;
        band_n[band]++;
        band_a[band] += e->accepted;
        const int hb = (int)(e->q_draft * DSV3_TRACE_HIST);
        t->histogram[hb < DSV3_TRACE_HIST ? hb : DSV3_TRACE_HIST - 1]++;
    }
    t->rate = t->drafted ? (double)t->accepted / (double)t->drafted : 0.0;
    for (int b = 0; b < DSV3_TRACE_BANDS; b++)
        t->band_rate[b] = band_n[b] ? (double)band_a[b] / (double)band_n[b] : 0.0 / 0.0;
}

dsv3_status dsv3_mtp_trace_run(dsv3_mtp_trace *out, dsv3_model *m, const int32_t *ids, int64_t n,
                               const dsv3_mtp_trace_opts *o, const volatile int *cancel,
                               dsv3_err *err) {
    memset(out, 0, sizeof *out);
    const dsv3_config *c = dsv3_model_config(m);
    if (!dsv3_model_has_mtp(m))
        return dsv3_errf(err, DSV3_EUNSUPPORTED, "mtp_trace: the model has no MTP layer");
    const int64_t n_new = o->n_new;
    if (n_new < 1 || n + n_new + 1 > c->max_position_embeddings || n < 1)
        return dsv3_errf(
            err, DSV3_EINVAL,
            "mtp_trace: need a prompt and 1 <= n with prompt + n < max_position_embeddings");
    draft_log d = {.ev = malloc((size_t)n_new * sizeof *d.ev), .cap = n_new};
    int32_t *gen_out = malloc((size_t)n_new * sizeof *gen_out);
    dsv3_run *run = NULL;
    dsv3_run_opts ro = {.max_seq = n + n_new + 1, .max_chunk = n < 256 ? n + 1 : 256};
    dsv3_gen_opts go = {.max_new_tokens = n_new,
                        .sample = {.greedy = o->temperature <= 0, .temperature = o->temperature},
                        .seed = o->seed,
                        .use_mtp = 1,
                        .eos_id = -1,
                        .ud = &d,
                        .on_draft = on_draft,
                        .cancel = cancel};
    int64_t n_out = 0;
    dsv3_gen_stats st = {0};
    dsv3_status rc = d.ev && gen_out ? dsv3_run_new(&run, m, &ro, err)
                                     : dsv3_errf(err, DSV3_ENOMEM, "mtp_trace: out of memory");
    if (!rc) rc = dsv3_generate(run, ids, n, &go, gen_out, &n_out, &st, err);
    dsv3_run_free(run);
    free(gen_out);
    if (rc && rc != DSV3_EINTR) {
        free(d.ev);
        return rc;
    }
    out->interrupted = rc == DSV3_EINTR;
    out->steps = d.ev;
    out->drafted = d.n;
    out->tokens = st.tokens;
    summarize(out, c->vocab_size);
    return DSV3_OK;
}
