/* grpo.c — GRPO steps (see grpo.h).
 *
 * Sections in data-flow order: the pure pieces (advantages, the token-level loss and its
 * gradient), the run's lifetime, then the step: sample and score, reference log-probabilities,
 * policy passes with the optimizer update. The optimizer, clipping and saving are the trainer's
 * (model/train/trainer.c, a trainer without data); log-probabilities and their gradient are
 * model/train/trainable's dsv3_trainable_logp_forward / dsv3_trainable_logp_backward.
 */
#include "model/train/grpo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/base/clock.h"
#include "model/run/forward.h"
#include "model/run/generate.h"
#include "model/train/trainable.h"

struct dsv3_grpo {
    dsv3_model *m;    /* the model trained (not owned) */
    dsv3_grpo_opts o; /* options in effect */
    dsv3_trainer *tr; /* policy weights, AdamW, save (no data) */
    dsv3_trainable *tm;  /* tr's differentiable model */
    dsv3_run *run;    /* sampling on m */
    int64_t T;        /* positions per sequence: max_prompt + max_tokens - 1 */
    int64_t micro;    /* sequences per forward */
    int64_t n_params;
    float *ref;           /* [n_params] the frozen reference weights */
    float *cur;           /* [n_params] the policy while the reference is swapped in */
    int64_t cap;          /* batch * group */
    int32_t *seqs;        /* [cap, T + 1] prompt, completion, padding (id 0) */
    int64_t *start, *len; /* [cap] position predicting the first completion token; its length */
    int64_t *plen;        /* [cap] prompt length */
    double *reward, *adv; /* [cap] */
    double *lp, *lp_old, *lp_ref, *dlp; /* [cap, T] per-position log-probabilities / gradient */
    int64_t n_seq;                      /* sequences of the last step (n_prompts * group) */
    int64_t step;                       /* steps done */
    uint64_t draws;                     /* sampling seeds used */
};

/* ---------------------------------------------------------------- pure pieces ---------- */

/* docs/TRAINING.md "GRPO" (our choice): population std plus 1e-6; an all-equal group gets exactly 0
 * (tested with ==, not through the epsilon, so G = 1 and ties give no update and no NaN). */
void dsv3_grpo_advantages(double *adv, const double *r, int64_t G) {
    double mean = 0.0, var = 0.0;
    int equal = 1;
    for (int64_t i = 0; i < G; i++) {
        mean += r[i];
        equal &= r[i] == r[0];
    }
    mean /= (double)G;
    for (int64_t i = 0; i < G; i++)
        var += (r[i] - mean) * (r[i] - mean);
    const double sd = sqrt(var / (double)G);
    for (int64_t i = 0; i < G; i++)
        adv[i] = equal ? 0.0 : (r[i] - mean) / (sd + 1e-6);
}

/* Per token (docs/TRAINING.md "GRPO", token-level form), with d = lp_ref - lp:
 *   surr = min(rho A, clip(rho, 1-eps, 1+eps) A),  rho = exp(lp - lp_old)
 *   k3   = exp(d) - d - 1
 *   L   -= w (surr - beta k3),  w = inv_n / |o_i|
 * dsurr/dlp = rho A where the unclipped branch is the minimum (ties included), else 0;
 * dk3/dlp = 1 - exp(d). */
double dsv3_grpo_loss(double *dlogp, int64_t *clipped, const double *lp, const double *lp_old,
                      const double *lp_ref, const double *adv, const int64_t *start,
                      const int64_t *len, int64_t n, int64_t T, double inv_n, double eps,
                      double beta) {
    double loss = 0.0;
    memset(dlogp, 0, (size_t)(n * T) * sizeof *dlogp);
    for (int64_t i = 0; i < n; i++) {
        const double w = inv_n / (double)len[i], A = adv[i];
        for (int64_t t = start[i]; t < start[i] + len[i]; t++) {
            const int64_t k = i * T + t;
            const double rho = exp(lp[k] - lp_old[k]);
            const double rc = rho < 1.0 - eps ? 1.0 - eps : rho > 1.0 + eps ? 1.0 + eps : rho;
            const double un = rho * A, cl = rc * A;
            const double d = lp_ref[k] - lp[k];
            const double ed = exp(d);
            const double k3 = ed - d - 1.0;
            const int use_un = un <= cl;
            if (!use_un && clipped) (*clipped)++;
            loss -= w * ((use_un ? un : cl) - beta * k3);
            dlogp[k] = -w * ((use_un ? un : 0.0) - beta * (1.0 - ed));
        }
    }
    return loss;
}

/* ---------------------------------------------------------------- lifetime ------------- */

void dsv3_grpo_opts_init(dsv3_grpo_opts *o) {
    memset(o, 0, sizeof *o);
    o->group = 8;
    o->batch = 2;
    o->max_prompt = 32;
    o->max_tokens = 16;
    o->micro = 0;
    o->inner = 1;
    o->temperature = 1.0;
    o->beta = 0.04;
    o->eps = 0.2;
    o->lr = 1e-4;
    o->weight_decay = 0.0;
    o->clip = 1.0;
    o->seed = 1;
    o->eos_id = -2;
}

static dsv3_status check_opts(const dsv3_grpo_opts *o, dsv3_err *err) {
    struct {
        const char *name;
        double v, lo, hi;
    } r[] = {
        {"temperature", o->temperature, 1e-3, 100},
        {"beta", o->beta, 0, 1e6},
        {"eps", o->eps, 0, 1},
        {"lr", o->lr, 0, 1},
        {"weight_decay", o->weight_decay, 0, 1e6},
        {"clip", o->clip, 0, 1e300},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (!(r[i].v >= r[i].lo && r[i].v <= r[i].hi))
            return dsv3_errf(err, DSV3_EINVAL, "grpo: option %s = %g is out of range [%g, %g]",
                             r[i].name, r[i].v, r[i].lo, r[i].hi);
    struct {
        const char *name;
        int64_t v, lo, hi;
    } c[] = {
        {"group", o->group, 1, 4096},
        {"batch", o->batch, 1, 4096},
        {"max_prompt", o->max_prompt, 1, 1 << 20},
        {"max_tokens", o->max_tokens, 1, 1 << 20},
        {"micro", o->micro, 0, 4096},
        {"inner", o->inner, 1, 1000},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        if (c[i].v < c[i].lo || c[i].v > c[i].hi)
            return dsv3_errf(err, DSV3_EINVAL,
                             "grpo: option %s = %lld is out of range [%lld, %lld]", c[i].name,
                             (long long)c[i].v, (long long)c[i].lo, (long long)c[i].hi);
    return DSV3_OK;
}

void dsv3_grpo_free(dsv3_grpo *g) {
    if (!g) return;
    dsv3_run_free(g->run);
    dsv3_trainer_free(g->tr); /* puts the model's weights back */
    free(g->ref);
    free(g->cur);
    free(g->seqs);
    free(g->start);
    free(g->len);
    free(g->plen);
    free(g->reward);
    free(g->adv);
    free(g->lp);
    free(g->lp_old);
    free(g->lp_ref);
    free(g->dlp);
    free(g);
}

/* The trainer's optimizer options from ours: a constant learning rate, no bias update, no
 * auxiliary losses. */
static void trainer_opts(dsv3_train_opts *t, const dsv3_grpo_opts *o) {
    t->lr = o->lr;
    t->min_lr = o->lr;
    t->warmup = 0;
    t->total_steps = 1;
    t->weight_decay = o->weight_decay;
    t->clip = o->clip;
    t->gamma = 0.0;
    t->alpha = 0.0;
    t->lambda = 0.0;
    t->save_f32 = o->save_f32;
    t->cancel = o->cancel;
}

dsv3_status dsv3_grpo_new(dsv3_grpo **out, dsv3_model *m, const dsv3_grpo_opts *o, dsv3_err *err) {
    *out = NULL;
    dsv3_status st = check_opts(o, err);
    if (st) return st;
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t T = o->max_prompt + o->max_tokens - 1;
    if (o->max_prompt + o->max_tokens > c->max_position_embeddings)
        return dsv3_errf(
            err, DSV3_EINVAL,
            "grpo: max_prompt %lld + max_tokens %lld is above max_position_embeddings %lld",
            (long long)o->max_prompt, (long long)o->max_tokens,
            (long long)c->max_position_embeddings);
    dsv3_grpo *g = calloc(1, sizeof *g);
    if (!g) return dsv3_errf(err, DSV3_ENOMEM, "grpo: out of memory");
    g->m = m;
    g->o = *o;
    if (g->o.eos_id == -2) g->o.eos_id = (int32_t)c->eos_token_id;
    g->T = T < 2 ? 2 : T;
    g->micro = o->micro > 0 ? o->micro : o->group;
    g->cap = o->batch * o->group;
    if (g->micro > g->cap) g->micro = g->cap;
    dsv3_train_opts to;
    dsv3_train_opts_init(&to);
    trainer_opts(&to, &g->o);
    to.seq_len = g->T;
    to.batch = g->micro;
    to.seed = o->seed;
    const dsv3_run_opts ro = {
        .max_seq = o->max_prompt + o->max_tokens + 1, .max_chunk = 0, .attn = DSV3_ATTN_ABSORBED};
    if ((st = dsv3_trainer_new(&g->tr, m, &to, err)) || (st = dsv3_run_new(&g->run, m, &ro, err)))
        goto fail;
    g->tm = dsv3_trainer_tmodel(g->tr);
    g->n_params = dsv3_trainable_n_params(g->tm);
    const size_t np = (size_t)g->n_params, cap = (size_t)g->cap, rows = cap * (size_t)g->T;
    g->ref = malloc(np * sizeof *g->ref);
    g->cur = malloc(np * sizeof *g->cur);
    g->seqs = calloc(cap * (size_t)(g->T + 1), sizeof *g->seqs);
    g->start = calloc(cap, sizeof *g->start);
    g->len = calloc(cap, sizeof *g->len);
    g->plen = calloc(cap, sizeof *g->plen);
    g->reward = calloc(cap, sizeof *g->reward);
    g->adv = calloc(cap, sizeof *g->adv);
    g->lp = calloc(rows, sizeof *g->lp);
    g->lp_old = calloc(rows, sizeof *g->lp_old);
    g->lp_ref = calloc(rows, sizeof *g->lp_ref);
    g->dlp = calloc(rows, sizeof *g->dlp);
    if (!g->ref || !g->cur || !g->seqs || !g->start || !g->len || !g->plen || !g->reward ||
        !g->adv || !g->lp || !g->lp_old || !g->lp_ref || !g->dlp) {
        st = dsv3_errf(err, DSV3_ENOMEM,
                       "grpo: out of memory for %lld parameters and %lld sequences",
                       (long long)g->n_params, (long long)g->cap);
        goto fail;
    }
    memcpy(g->ref, dsv3_trainable_params(g->tm), np * sizeof *g->ref);
    if ((st = dsv3_trainer_sync(g->tr, err))) goto fail; /* sample with the FP32 policy */
    *out = g;
    return DSV3_OK;
fail:
    dsv3_grpo_free(g);
    return st;
}

/* ---------------------------------------------------------------- the step ------------- */

/* splitmix64 of the run seed and a counter: one independent sampling seed per completion. */
static uint64_t sample_seed(uint64_t seed, uint64_t k) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + k + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Samples the group of every prompt into g->seqs and scores it. */
static dsv3_status sample_and_score(dsv3_grpo *g, const int32_t *const *prompts,
                                    const int64_t *prompt_lens, int64_t n_prompts,
                                    dsv3_reward_fn fn, void *ud, dsv3_err *err) {
    const int64_t G = g->o.group, W = g->T + 1;
    dsv3_gen_opts go = {
        .max_new_tokens = g->o.max_tokens,
        .sample = {.greedy = 0, .temperature = (float)g->o.temperature, .top_k = 0, .top_p = 1.0f},
        .use_mtp = 0,
        .eos_id = g->o.eos_id,
        .cancel = g->o.cancel};
    dsv3_run_set_cancel(g->run, g->o.cancel);
    for (int64_t p = 0; p < n_prompts; p++)
        for (int64_t c = 0; c < G; c++) {
            const int64_t i = p * G + c, pl = prompt_lens[p];
            int32_t *row = g->seqs + i * W;
            memset(row, 0, (size_t)W * sizeof *row);
            memcpy(row, prompts[p], (size_t)pl * sizeof *row);
            go.seed = sample_seed(g->o.seed, g->draws++);
            dsv3_run_truncate(g->run, 0);
            int64_t n = 0;
            dsv3_status st = dsv3_generate(g->run, prompts[p], pl, &go, row + pl, &n, NULL, err);
            if (st) return st;
            if (n < 1)
                return dsv3_errf(err, DSV3_EINVAL, "grpo: prompt %lld: empty completion",
                                 (long long)p);
            g->plen[i] = pl;
            g->start[i] = pl - 1;
            g->len[i] = n;
            double r = 0.0;
            if ((st = fn(ud, p, row + pl, n, &r, err))) return st;
            if (!isfinite(r))
                return dsv3_errf(
                    err, DSV3_EINVAL,
                    "grpo: prompt %lld completion %lld: the reward is %g (must be finite)",
                    (long long)p, (long long)c, r);
            g->reward[i] = r;
        }
    for (int64_t p = 0; p < n_prompts; p++)
        dsv3_grpo_advantages(g->adv + p * G, g->reward + p * G, G);
    return DSV3_OK;
}

/* lp_ref for every sequence, computed with the reference weights swapped into the policy's
 * parameter array (and swapped back whatever happens). */
static dsv3_status reference_logp(dsv3_grpo *g, dsv3_err *err) {
    float *w = dsv3_trainable_params(g->tm);
    const size_t bytes = (size_t)g->n_params * sizeof *w;
    const double inv_temp = 1.0 / g->o.temperature;
    memcpy(g->cur, w, bytes);
    memcpy(w, g->ref, bytes);
    dsv3_status st = DSV3_OK;
    for (int64_t i0 = 0; i0 < g->n_seq && !st; i0 += g->micro) {
        const int64_t b = g->n_seq - i0 < g->micro ? g->n_seq - i0 : g->micro;
        st = dsv3_trainable_logp_forward(g->tm, g->seqs + i0 * (g->T + 1), b, inv_temp,
                                  g->lp_ref + i0 * g->T, g->o.cancel, err);
    }
    memcpy(w, g->cur, bytes);
    return st;
}

/* One optimizer step on the loss of the sampled batch; the first (k = 0) records pi_old. */
static dsv3_status policy_step(dsv3_grpo *g, int64_t k, double *loss, int64_t *clipped,
                               dsv3_train_metrics *tmet, dsv3_err *err) {
    const int64_t T = g->T;
    const double inv_temp = 1.0 / g->o.temperature, inv_n = 1.0 / (double)g->n_seq;
    memset(dsv3_trainable_grads(g->tm), 0, (size_t)g->n_params * sizeof(float));
    *loss = 0.0;
    for (int64_t i0 = 0; i0 < g->n_seq; i0 += g->micro) {
        const int64_t b = g->n_seq - i0 < g->micro ? g->n_seq - i0 : g->micro;
        double *lp = g->lp + i0 * T, *old = g->lp_old + i0 * T;
        dsv3_status st =
            dsv3_trainable_logp_forward(g->tm, g->seqs + i0 * (T + 1), b, inv_temp, lp, g->o.cancel, err);
        if (st) return st;
        if (k == 0) memcpy(old, lp, (size_t)(b * T) * sizeof *old);
        *loss += dsv3_grpo_loss(g->dlp + i0 * T, clipped, lp, old, g->lp_ref + i0 * T, g->adv + i0,
                                g->start + i0, g->len + i0, b, T, inv_n, g->o.eps, g->o.beta);
        if ((st = dsv3_trainable_logp_backward(g->tm, g->dlp + i0 * T, g->o.cancel, err))) return st;
    }
    if (!isfinite(*loss))
        return dsv3_errf(err, DSV3_EINVAL, "grpo: step %lld: the loss is %g; weights unchanged",
                         (long long)g->step + 1, *loss);
    return dsv3_trainer_update(g->tr, tmet, err);
}

dsv3_status dsv3_grpo_step(dsv3_grpo *g, const int32_t *const *prompts, const int64_t *prompt_lens,
                           int64_t n_prompts, dsv3_reward_fn fn, void *ud,
                           dsv3_grpo_metrics *metrics, dsv3_err *err) {
    dsv3_status st = check_opts(&g->o, err);
    if (st) return st;
    if (n_prompts < 1 || n_prompts > g->o.batch)
        return dsv3_errf(err, DSV3_EINVAL, "grpo: %lld prompts in a step (allowed 1..%lld)",
                         (long long)n_prompts, (long long)g->o.batch);
    const int64_t V = dsv3_model_config(g->m)->vocab_size;
    for (int64_t p = 0; p < n_prompts; p++) {
        if (prompt_lens[p] < 1 || prompt_lens[p] > g->o.max_prompt)
            return dsv3_errf(err, DSV3_EINVAL,
                             "grpo: prompt %lld has %lld tokens (allowed 1..%lld)", (long long)p,
                             (long long)prompt_lens[p], (long long)g->o.max_prompt);
        for (int64_t j = 0; j < prompt_lens[p]; j++)
            if (prompts[p][j] < 0 || prompts[p][j] >= V)
                return dsv3_errf(err, DSV3_EINVAL,
                                 "grpo: prompt %lld token %lld: id %d out of range [0, %lld)",
                                 (long long)p, (long long)j, prompts[p][j], (long long)V);
    }
    trainer_opts(dsv3_trainer_opts(g->tr), &g->o);
    const double t0 = dsv3_now_s();
    g->n_seq = 0;
    if ((st = sample_and_score(g, prompts, prompt_lens, n_prompts, fn, ud, err))) return st;
    g->n_seq = n_prompts * g->o.group;
    const double t1 = dsv3_now_s();
    if ((st = reference_logp(g, err))) return st;
    dsv3_grpo_metrics r = {0};
    int64_t clipped = 0;
    dsv3_train_metrics tm = {0};
    for (int64_t k = 0; k < g->o.inner; k++) {
        double loss;
        if ((st = policy_step(g, k, &loss, &clipped, &tm, err))) break;
        if (k == 0) r.loss = loss;
    }
    if (g->o.inner > 1 && tm.step > 0) { /* later inner steps changed the weights: show them */
        dsv3_err serr;
        dsv3_trainer_sync(g->tr, &serr);
    }
    if (st) return st;
    dsv3_err serr;
    if ((st = dsv3_trainer_sync(g->tr, &serr))) return dsv3_errf(err, st, "%s", serr.msg);
    g->step++;
    /* metrics of the sampled batch */
    const int64_t N = g->n_seq, T = g->T;
    int64_t tokens = 0, zero = 0;
    double kl = 0.0, sum = 0.0, sq = 0.0, mx = -INFINITY;
    for (int64_t i = 0; i < N; i++) {
        tokens += g->len[i];
        sum += g->reward[i];
        mx = fmax(mx, g->reward[i]);
        zero += g->adv[i] == 0.0;
        for (int64_t t = g->start[i]; t < g->start[i] + g->len[i]; t++) {
            const double d = g->lp_ref[i * T + t] - g->lp_old[i * T + t];
            kl += exp(d) - d - 1.0;
        }
    }
    const double mean = sum / (double)N;
    for (int64_t i = 0; i < N; i++)
        sq += (g->reward[i] - mean) * (g->reward[i] - mean);
    r.step = g->step;
    r.completions = N;
    r.reward_mean = mean;
    r.reward_std = sqrt(sq / (double)N);
    r.reward_max = mx;
    r.kl = kl / (double)tokens;
    r.length = (double)tokens / (double)N;
    r.clip_frac = (double)clipped / ((double)tokens * (double)g->o.inner);
    r.grad_norm = tm.grad_norm;
    r.zero_adv = (double)zero / (double)N;
    r.tokens = tokens;
    r.sample_seconds = t1 - t0;
    r.seconds = dsv3_now_s() - t0;
    r.tokens_per_s = r.seconds > 0 ? (double)tokens / r.seconds : 0.0;
    if (metrics) *metrics = r;
    return DSV3_OK;
}

/* ---------------------------------------------------------------- access --------------- */

const int32_t *dsv3_grpo_completion(const dsv3_grpo *g, int64_t p, int64_t c, int64_t *n,
                                    double *reward, double *advantage) {
    const int64_t i = p * g->o.group + c;
    if (p < 0 || c < 0 || c >= g->o.group || i >= g->n_seq) return NULL;
    if (n) *n = g->len[i];
    if (reward) *reward = g->reward[i];
    if (advantage) *advantage = g->adv[i];
    return g->seqs + i * (g->T + 1) + g->plen[i];
}

dsv3_status dsv3_grpo_save(dsv3_grpo *g, const char *dir, dsv3_err *err) {
    dsv3_trainer_opts(g->tr)->save_f32 = g->o.save_f32;
    return dsv3_trainer_save(g->tr, dir, err);
}

dsv3_grpo_opts *dsv3_grpo_opts_of(dsv3_grpo *g) {
    return &g->o;
}

dsv3_trainer *dsv3_grpo_trainer(dsv3_grpo *g) {
    return g->tr;
}

const float *dsv3_grpo_reference(const dsv3_grpo *g) {
    return g->ref;
}
