/* generate.c — the decode loop and MTP speculative decoding (see generate.h).
 *
 * Invariant at the top of each step (n = positions consumed by the main model - 1):
 *   run len = n + 1, `p` = logits for token n+1, `h` = final-normed hidden state at n,
 *   MTP cache len = n (it has seen (h_i, t_{i+1}) for i < n).
 * A step picks t_{n+1} from p (or takes the token fixed by a rejected draft), drafts d from the
 * MTP module at position n, and verifies [t_{n+1}, d] in one forward at positions n+1, n+2.
 * After an accepted draft the MTP cache is one row behind (`pending`: len = n - 1, h = [h_{n-1},
 * h_n], and the row (h_{n-1}, t_n) is owed); the next draft first appends that row's cache
 * entries only (dsv3_forward_mtp_cache: eh_proj and kv_a, no block or head), so every step costs
 * one MTP pass and one 2-token verify, whatever the acceptance.
 */
#include "model/run/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/base/clock.h"
#include "model/run/model_internal.h"
#include "model/run/mtp.h"

typedef struct {
    dsv3_run *run;
    const dsv3_gen_opts *o;
    dsv3_rng rng;
    int64_t V, H;
    float *p;          /* [V] main-model logits for the next token: points into p1 or p2 */
    float *p1, *p2;    /* [V] a 1-token forward's logits, [2, V] the verify's (no copies) */
    float *q;          /* [V] MTP draft logits */
    float *pp, *qq;    /* [V] sampling distributions of p and q */
    int64_t hrow;      /* the MTP input h of the next draft is row hrow + pending of the hidden
                          states the last forward kept in the run (they stay on the backend) */
    int pending;       /* the MTP row (kept row hrow, pending_id) is owed (see the invariant) */
    int32_t pending_id;
    int32_t *order;    /* [V] sampling scratch */
    int32_t *out;
    int64_t n_out;
    int stop;          /* EOS seen or the callback asked to stop */
} gen;

/* Appends a produced token; sets g->stop on EOS, callback request or the token budget. */
static void emit(gen *g, int32_t id) {
    g->out[g->n_out++] = id;
    if (g->o->on_token && g->o->on_token(g->o->ud, id)) g->stop = 1;
    if (id == g->o->eos_id || g->n_out >= g->o->max_new_tokens) g->stop = 1;
}

static int greedy(const gen *g) {
    return g->o->sample.greedy || g->o->sample.temperature <= 0.0f;
}

/* The next token from logits; probs gets the sampling distribution (not written when greedy:
 * nothing reads a one-hot vector). */
static int32_t pick(gen *g, const float *logits, float *probs) {
    if (greedy(g)) return dsv3_argmax(logits, g->V);
    dsv3_sample_probs(probs, logits, g->V, &g->o->sample, g->order);
    return dsv3_sample_draw(probs, g->V, &g->rng);
}

/* Prefills the prompt in chunks; leaves p = logits of the last position and, with MTP, runs the
 * MTP module over positions 0..n-2 so its cache is at the invariant. */
static dsv3_status prefill(gen *g, const int32_t *prompt, int64_t n, dsv3_err *err) {
    dsv3_run *r = g->run;
    const int64_t chunk = dsv3_run_max_chunk(r);
    dsv3_status st = DSV3_OK;
    for (int64_t at = 0; at < n && !st; at += chunk) {
        const int64_t m = n - at < chunk ? n - at : chunk;
        st = dsv3_forward(r, prompt + at, m, g->p, 1, NULL, err);
        if (st || !g->o->use_mtp) continue;
        /* MTP rows i = at .. at+m-1 need t_{i+1}; the prompt's last row waits for the first
         * produced token (the invariant keeps MTP one position behind). */
        const int64_t rows = at + m < n ? m : m - 1;
        if (rows > 0) st = dsv3_forward_mtp_cache_kept(r, prompt + at + 1, 0, rows, err);
        g->hrow = m - 1;
    }
    return st;
}

static dsv3_status step_plain(gen *g, dsv3_gen_stats *s, dsv3_err *err) {
    const int32_t t = pick(g, g->p, g->pp);
    emit(g, t);
    if (g->stop) return DSV3_OK;
    s->forward_passes++;
    g->p = g->p1;
    return dsv3_forward(g->run, &t, 1, g->p, 1, NULL, err);
}

/* One speculative step. `forced` >= 0 is the token fixed by the last rejection. */
static dsv3_status step_mtp(gen *g, int32_t *forced, dsv3_gen_stats *s, dsv3_err *err) {
    dsv3_run *r = g->run;
    const int64_t V = g->V, n = dsv3_run_len(r) - 1;
    const int32_t t1 = *forced >= 0 ? *forced : pick(g, g->p, g->pp);
    *forced = -1;
    emit(g, t1);
    if (g->stop) return DSV3_OK;
    /* Draft d for t_{n+2} from (h_n, t_{n+1}) at MTP position n, after the owed row
     * (h_{n-1}, t_n) at position n-1 if any — only its cache entries: nobody reads its logits. */
    dsv3_status st = DSV3_OK;
    if (g->pending && (st = dsv3_forward_mtp_cache_kept(r, &g->pending_id, g->hrow, 1, err))) return st;
    st = dsv3_forward_mtp_kept(r, &t1, g->hrow + g->pending, 1, g->q, 1, err);
    g->pending = 0;
    if (st) return st;
    s->mtp_passes++;
    if (g->n_out + 1 >= g->o->max_new_tokens) {
        /* No room for a draft: a plain forward keeps the caches at the invariant. */
        s->forward_passes++;
        g->p = g->p1;
        g->hrow = 0;
        return dsv3_forward(r, &t1, 1, g->p, 1, NULL, err);
    }
    const int32_t d = pick(g, g->q, g->qq);
    const int32_t pair[2] = {t1, d};
    float *logits2 = g->p2; /* [2, V]: p_{n+1} then p_{n+2} */
    st = dsv3_forward(r, pair, 2, logits2, 0, NULL, err);
    if (st) return st;
    g->hrow = 0; /* kept rows: h_{n+1}, h_{n+2} */
    s->forward_passes++;
    s->drafted++;
    float *pn1 = logits2, *pn2 = logits2 + V;
    /* greedy: the main model's choice at n+1, needed whether the draft is accepted or not */
    const int32_t main1 = greedy(g) ? dsv3_argmax(pn1, V) : -1;
    int accept;
    if (greedy(g)) {
        accept = main1 == d;
    } else {
        dsv3_sample_probs(g->pp, pn1, V, &g->o->sample, g->order);
        const double pd = g->pp[d], qd = g->qq[d];
        accept = qd <= 0.0 || dsv3_rng_uniform(&g->rng) < (pd >= qd ? 1.0 : pd / qd);
    }
    if (g->o->on_draft) {
        /* probabilities under the sampling transform (greedy: softmax at temperature 1) */
        dsv3_sample_opts so = g->o->sample;
        if (greedy(g)) so = (dsv3_sample_opts){.temperature = 1.0f};
        dsv3_sample_probs(g->pp, pn1, V, &so, g->order);
        const float pd = g->pp[d];
        dsv3_sample_probs(g->pp, g->q, V, &so, g->order);
        dsv3_draft_event ev = {.pos = n + 2, .draft = d, .q_draft = g->pp[d], .p_draft = pd,
                               .main = greedy(g) ? main1 : dsv3_argmax(pn1, V), .accepted = accept};
        g->o->on_draft(g->o->ud, &ev);
        if (!greedy(g))
            dsv3_sample_probs(g->pp, pn1, V, &g->o->sample, g->order); /* restore pp for the residual */
    }
    if (accept) {
        s->accepted++;
        emit(g, d);
        /* The MTP row at n+1 = (h_{n+1}, d) is owed to the next draft; h = [h_{n+1}, h_{n+2}]. */
        g->pending = 1;
        g->pending_id = d;
        g->p = pn2;
        return DSV3_OK;
    }
    /* Rejected: drop position n+2 and fix t_{n+2} from p_{n+1} (greedy: its argmax; sampling:
     * the residual max(0, p - q), which keeps the output distribution exact). */
    dsv3_run_truncate(r, n + 2);
    if (greedy(g)) {
        *forced = main1;
    } else {
        double mass = 0.0;
        for (int64_t i = 0; i < V; i++) {
            const float res = g->pp[i] - g->qq[i];
            g->pp[i] = res > 0.0f ? res : 0.0f;
            mass += g->pp[i];
        }
        *forced = mass > 0.0 ? dsv3_sample_draw(g->pp, V, &g->rng) : dsv3_argmax(pn1, V);
    }
    g->p = pn1;
    return DSV3_OK;
}

dsv3_status dsv3_generate(dsv3_run *run, const int32_t *prompt, int64_t n,
                          const dsv3_gen_opts *o, int32_t *out, int64_t *n_out,
                          dsv3_gen_stats *stats, dsv3_err *err) {
    *n_out = 0;
    dsv3_gen_stats local;
    dsv3_gen_stats *s = stats ? stats : &local;
    memset(s, 0, sizeof *s);
    const dsv3_config *c = &run->m->cfg;
    if (n < 1) return dsv3_errf(err, DSV3_EINVAL, "generate: empty prompt");
    if (o->max_new_tokens < 1)
        return dsv3_errf(err, DSV3_EINVAL, "generate: max_new_tokens %lld must be at least 1",
                         (long long)o->max_new_tokens);
    if (dsv3_run_len(run) != 0) return dsv3_errf(err, DSV3_EINVAL, "generate: the run is not empty");
    if (n + o->max_new_tokens + 1 > dsv3_run_max_seq(run))
        return dsv3_errf(err, DSV3_EINVAL,
                         "generate: prompt %lld + %lld new tokens exceed the context of %lld positions",
                         (long long)n, (long long)o->max_new_tokens, (long long)dsv3_run_max_seq(run) - 1);
    if (o->use_mtp && !run->m->has_mtp)
        return dsv3_errf(err, DSV3_EUNSUPPORTED, "generate: --mtp needs a model with an MTP layer");
    gen g = {.run = run, .o = o, .V = c->vocab_size, .H = c->hidden_size, .out = out};
    dsv3_rng_seed(&g.rng, o->seed);
    g.p = g.p1 = malloc((size_t)g.V * sizeof(float));
    g.p2 = malloc((size_t)(2 * g.V) * sizeof(float));
    g.q = malloc((size_t)g.V * sizeof(float));
    g.pp = malloc((size_t)g.V * sizeof(float));
    g.qq = malloc((size_t)g.V * sizeof(float));
    g.order = malloc((size_t)g.V * sizeof(int32_t));
    dsv3_status st = DSV3_OK;
    if (!g.p1 || !g.p2 || !g.q || !g.pp || !g.qq || !g.order) {
        st = dsv3_errf(err, DSV3_ENOMEM, "generate: out of memory");
        goto done;
    }
    const volatile int *old_cancel = run->cancel;
    const int old_keep = run->keep_hidden;
    if (o->cancel) dsv3_run_set_cancel(run, o->cancel);
    if (o->use_mtp) dsv3_run_keep_hidden(run, 1); /* the MTP input stays on the backend */
    dsv3_transfer_stats d0, d1, d2;
    run->be->stats(&d0);
    double t0 = dsv3_now_s();
    st = prefill(&g, prompt, n, err);
    run->be->stats(&d1);
    s->prompt_tokens = n;
    s->prefill_seconds = dsv3_now_s() - t0;
    t0 = dsv3_now_s();
    int32_t forced = -1;
    while (!st && !g.stop) {
        if (o->cancel && *o->cancel) {
            st = dsv3_errf(err, DSV3_EINTR, "generate: interrupted after %lld tokens",
                           (long long)g.n_out);
            break;
        }
        st = o->use_mtp ? step_mtp(&g, &forced, s, err) : step_plain(&g, s, err);
    }
    s->decode_seconds = dsv3_now_s() - t0;
    s->tokens = g.n_out;
    run->be->stats(&d2);
    s->device = (dsv3_transfer_stats){d2.uploads - d0.uploads, d2.downloads - d0.downloads,
                                      d2.upload_bytes - d0.upload_bytes, d2.download_bytes - d0.download_bytes};
    s->device_bytes_per_token =
        g.n_out ? (double)(d2.upload_bytes - d1.upload_bytes + d2.download_bytes - d1.download_bytes) / (double)g.n_out
                : 0.0;
    *n_out = g.n_out;
    dsv3_run_set_cancel(run, old_cancel);
    dsv3_run_keep_hidden(run, old_keep);
done:
    free(g.p1);
    free(g.p2);
    free(g.q);
    free(g.pp);
    free(g.qq);
    free(g.order);
    return st;
}
