/* trainer.c — the trainer: options, the optimizer step (AdamW, clipping, schedule, bias update),
 * evaluation, save/resume and the inference model's view of the weights (see trainer.h).
 *
 * The differentiable model is model/train/trainable, the data model/train/data, the file writing
 * model/train/checkpoint. Here: what happens between and around forward/backward, as in llm.c's
 * gpt2_update: one flat loop over the parameters for zeroing, clipping and AdamW.
 */
#include "model/train/trainer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "model/base/clock.h"
#include "kernels/cpu/adamw.h"
#include "kernels/pool.h"
#include "model/train/fp8.h"
#include "model/run/safetensors.h"
#include "model/train/checkpoint.h"
#include "model/train/data.h"
#include "model/train/trainable.h"

struct dsv3_trainer {
    dsv3_model *m;            /* the model trained (not owned) */
    dsv3_train_opts o;        /* options in effect (data pointers cleared after creation) */
    dsv3_trainable *tm;          /* parameters, gradients, activations */
    dsv3_dataset *data;
    int64_t n_params;
    float *adam_m, *adam_v;   /* [n_params] AdamW first and second moments (FP32) */
    float *good;              /* [n_params] weights before the last update (rollback) */
    float *good_bias;         /* [n_moe, E] biases before the last update */
    int64_t step;             /* optimizer steps done */
    int64_t consumed;         /* training sequences consumed: the data position */
    int64_t *counts;          /* [n_moe, E] expert loads of the last step */
    double *maxvio;           /* [n_moe] of the last step */
    int32_t *batch;           /* [batch, seq_len + 1] one micro-batch of token ids */
    dsv3_train_metrics last;  /* the last step's metrics */
    int failed;               /* a step saw a non-finite loss; no more steps */
    float *snap;              /* [n_params] weights the model computes with after sync, or NULL */
};

/* ---------------------------------------------------------------- options -------------- */

void dsv3_train_opts_init(dsv3_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->heldout = 0.05;
    o->seq_len = 0; /* min(128, max_position_embeddings), resolved at creation */
    o->batch = 4;
    o->accum = 1;
    o->seed = 1;
    o->lr = 2.2e-4;
    o->min_lr = -1.0;
    o->warmup = 0;
    o->total_steps = 1000;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-8;
    o->weight_decay = 0.1;
    o->clip = 1.0;
    o->lambda = 0.3;
    o->alpha = 1e-4;
    o->gamma = 0.001;
    o->precision = 32;
}

static dsv3_status check_opts(const dsv3_train_opts *o, dsv3_err *err) {
    struct {
        const char *name;
        double v, lo, hi;
    } r[] = {
        {"lr", o->lr, 0, 1e300},          {"beta1", o->beta1, 0, 0.999999999},
        {"beta2", o->beta2, 0, 0.999999999}, {"eps", o->eps, 0, 1},
        {"weight_decay", o->weight_decay, 0, 1e300}, {"clip", o->clip, 0, 1e300},
        {"lambda", o->lambda, 0, 1e300},  {"alpha", o->alpha, 0, 1e300},
        {"gamma", o->gamma, 0, 1e300},    {"heldout", o->heldout, 0, 0.5},
        {"fim_rate", o->fim_rate, 0, 1},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (!(r[i].v >= r[i].lo && r[i].v <= r[i].hi))
            return dsv3_errf(err, DSV3_EINVAL, "train: option %s = %g is out of range [%g, %g]",
                             r[i].name, r[i].v, r[i].lo, r[i].hi);
    if (o->batch < 1 || o->accum < 1 || o->seq_len < 0 || o->warmup < 0 || o->total_steps < 1)
        return dsv3_errf(err, DSV3_EINVAL,
                         "train: batch %lld, accum %lld, warmup %lld, total_steps %lld: batch, "
                         "accum and total_steps must be >= 1, warmup >= 0",
                         (long long)o->batch, (long long)o->accum, (long long)o->warmup,
                         (long long)o->total_steps);
    if (o->precision != 32 && o->precision != 64)
        return dsv3_errf(err, DSV3_EINVAL, "train: precision must be 32 or 64 (got %d)",
                         o->precision);
    if (o->data_path && o->tokens)
        return dsv3_errf(err, DSV3_EINVAL, "train: give at most one of data_path and tokens");
    if (o->fim_rate > 0 && !o->data_path)
        return dsv3_errf(err, DSV3_EINVAL,
                         "train: fim_rate %g needs text documents (data_path), not a token stream",
                         o->fim_rate);
    return DSV3_OK;
}

/* ---------------------------------------------------------------- lifetime ------------- */

void dsv3_trainer_free(dsv3_trainer *t) {
    if (!t) return;
    if (t->snap) dsv3_trainable_restore_model(t->tm, t->m, NULL);
    dsv3_trainable_free(t->tm);
    dsv3_data_free(t->data);
    free(t->adam_m);
    free(t->adam_v);
    free(t->good);
    free(t->good_bias);
    free(t->counts);
    free(t->maxvio);
    free(t->batch);
    free(t->snap);
    free(t);
}

/* The data stream: text through the tokenizer (EOS between documents), or the given tokens. */
static dsv3_status open_data(dsv3_trainer *t, const dsv3_train_opts *o, dsv3_err *err) {
    const dsv3_config *c = dsv3_model_config(t->m);
    dsv3_data_opts d = {.seq_len = t->o.seq_len, .heldout = o->heldout, .seed = o->seed,
                        .eos_id = (int32_t)c->eos_token_id, .fim_rate = o->fim_rate};
    dsv3_status st;
    if (o->tokens) {
        st = dsv3_data_from_tokens(&t->data, o->tokens, o->n_tokens, &d, err);
    } else {
        dsv3_tokenizer *own = NULL;
        const dsv3_tokenizer *tok = o->tokenizer;
        if (!tok) {
            dsv3_err terr = {{0}};
            if ((st = dsv3_tokenizer_open(&own, dsv3_model_dir(t->m), &terr)))
                return dsv3_errf(err, st, "train: %s: cannot tokenize %s without the model's "
                                 "tokenizer (%s)", dsv3_model_dir(t->m), o->data_path, terr.msg);
            tok = own;
        }
        if (dsv3_tokenizer_eos_id(tok) >= 0) d.eos_id = dsv3_tokenizer_eos_id(tok);
        st = dsv3_data_open_text(&t->data, tok, o->data_path, &d, err);
        dsv3_tokenizer_close(own);
    }
    if (st) return st;
    const int32_t *ids = dsv3_data_tokens(t->data);
    for (int64_t i = 0; i < dsv3_data_n_tokens(t->data); i++)
        if (ids[i] >= c->vocab_size)
            return dsv3_errf(err, DSV3_EINVAL,
                             "data: %s: token %lld has id %d, outside the model's vocabulary (%lld)",
                             o->data_path ? o->data_path : "token stream", (long long)i, ids[i],
                             (long long)c->vocab_size);
    return DSV3_OK;
}

/* Refuses weights that are not finite, naming the first such tensor. */
static dsv3_status check_finite(dsv3_trainer *t, dsv3_err *err) {
    const float *p = dsv3_trainable_params(t->tm);
    for (int64_t i = 0; i < dsv3_trainable_n_tensors(t->tm); i++) {
        const dsv3_trainable_tensor *x = dsv3_trainable_tensor_at(t->tm, i);
        for (int64_t j = 0; j < x->numel; j++)
            if (!isfinite(p[x->offset + j]))
                return dsv3_errf(err, DSV3_EINVAL,
                                 "train: %s: tensor %s: element %lld is %g; training needs finite weights",
                                 dsv3_model_dir(t->m), x->name, (long long)j, p[x->offset + j]);
    }
    return DSV3_OK;
}

dsv3_status dsv3_trainer_new(dsv3_trainer **out, dsv3_model *m, const dsv3_train_opts *o,
                             dsv3_err *err) {
    *out = NULL;
    dsv3_status st = check_opts(o, err);
    if (st) return st;
    const dsv3_config *c = dsv3_model_config(m);
    dsv3_trainer *t = calloc(1, sizeof *t);
    if (!t) return dsv3_errf(err, DSV3_ENOMEM, "train: out of memory");
    t->m = m;
    t->o = *o;
    if (t->o.seq_len == 0) t->o.seq_len = c->max_position_embeddings < 128 ? c->max_position_embeddings : 128;
    if (t->o.min_lr < 0) t->o.min_lr = t->o.lr / 10.0;
    if ((st = dsv3_trainable_new(&t->tm, m, t->o.batch, t->o.seq_len, err)) ||
        (st = check_finite(t, err)) || ((o->data_path || o->tokens) && (st = open_data(t, o, err))))
        goto fail;
    t->o.data_path = NULL;
    t->o.tokens = NULL;
    t->o.tokenizer = NULL;
    t->n_params = dsv3_trainable_n_params(t->tm);
    const int64_t nb = dsv3_trainable_n_moe(t->tm) * c->n_routed_experts + 1;
    t->adam_m = calloc((size_t)t->n_params, sizeof *t->adam_m);
    t->adam_v = calloc((size_t)t->n_params, sizeof *t->adam_v);
    t->good = malloc((size_t)t->n_params * sizeof *t->good);
    t->good_bias = calloc((size_t)nb, sizeof *t->good_bias);
    t->counts = calloc((size_t)nb, sizeof *t->counts);
    t->maxvio = calloc((size_t)(dsv3_trainable_n_moe(t->tm) + 1), sizeof *t->maxvio);
    t->batch = malloc((size_t)(t->o.batch * (t->o.seq_len + 1)) * sizeof *t->batch);
    if (!t->adam_m || !t->adam_v || !t->good || !t->good_bias || !t->counts || !t->maxvio || !t->batch) {
        st = dsv3_errf(err, DSV3_ENOMEM, "train: out of memory for the optimizer state (%lld parameters)",
                       (long long)t->n_params);
        goto fail;
    }
    memcpy(t->good, dsv3_trainable_params(t->tm), (size_t)t->n_params * sizeof *t->good);
    memcpy(t->good_bias, dsv3_trainable_bias(t->tm), (size_t)(nb - 1) * sizeof *t->good_bias);
    *out = t;
    return DSV3_OK;
fail:
    dsv3_trainer_free(t);
    return st;
}

/* ---------------------------------------------------------------- the step ------------- */

/* docs/ARCHITECTURE.md, "Optimizer and schedule": linear warmup from 0 to lr over `warmup` steps, then cosine decay to
 * min_lr at total_steps, then min_lr. step counts from 1. */
static double schedule(const dsv3_train_opts *o, int64_t step) {
    if (o->warmup > 0 && step <= o->warmup) return o->lr * (double)step / (double)o->warmup;
    const int64_t span = o->total_steps - o->warmup;
    double p = span > 0 ? (double)(step - o->warmup) / (double)span : 1.0;
    if (p > 1.0) p = 1.0;
    return o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(M_PI * p));
}

/* AdamW over the flat parameter array, ADAM_CHUNK elements per pool item whatever the tensor
 * boundaries (a model of many small tensors — 16 experts of 8k weights per layer — would
 * otherwise run one tensor at a time on one thread). Elementwise, so the result does not
 * depend on the threads. */
enum { ADAM_CHUNK = 16384 };
typedef struct {
    float *w, *m, *v;
    const float *g;
    dsv3_adamw_step step;
    float wd;
    const dsv3_trainable *tm; /* the tensor table: offsets ascend and tile the array */
    int64_t n;
} adam_job;

static void adam_item(void *ctx, int64_t item, int tid) {
    (void)tid;
    const adam_job *a = ctx;
    const int64_t j0 = item * ADAM_CHUNK, j1 = j0 + ADAM_CHUNK < a->n ? j0 + ADAM_CHUNK : a->n;
    /* the tensor holding j0: the last whose offset is <= j0 */
    int64_t lo = 0, hi = dsv3_trainable_n_tensors(a->tm) - 1;
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (dsv3_trainable_tensor_at(a->tm, mid)->offset <= j0) lo = mid;
        else hi = mid - 1;
    }
    for (int64_t ti = lo, j = j0; j < j1; ti++) {
        const dsv3_trainable_tensor *x = dsv3_trainable_tensor_at(a->tm, ti);
        const int64_t end = x->offset + x->numel < j1 ? x->offset + x->numel : j1;
        dsv3_adamw(a->w + j, a->m + j, a->v + j, a->g + j, end - j, &a->step,
                   x->decay ? a->wd : 0.0f);
        j = end;
    }
}

/* docs/ARCHITECTURE.md, "Optimizer and schedule": decoupled AdamW per parameter, step k >= 1, g already clipped:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mhat = m/(1-b1^k);  vhat = v/(1-b2^k)
 *   w = w - lr (mhat / (sqrt(vhat) + eps) + wd w)      (wd = 0 for norm gains)
 * in FP32 arithmetic (moments are FP32 here, not the recipe's BF16). */
static void adamw(dsv3_trainer *t, double lr, double gscale) {
    const dsv3_train_opts *o = &t->o;
    const int64_t k = t->step + 1;
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float c1 = (float)(1.0 - pow(o->beta1, (double)k)), c2 = (float)(1.0 - pow(o->beta2, (double)k));
    adam_job j = {.w = dsv3_trainable_params(t->tm), .g = dsv3_trainable_grads(t->tm), .m = t->adam_m,
                  .v = t->adam_v,
                  .step = {.b1 = b1, .b2 = b2, .eps = eps, .c1 = c1, .c2 = c2, .lr = (float)lr,
                           .gs = (float)gscale},
                  .wd = (float)o->weight_decay, .tm = t->tm, .n = t->n_params};
    dsv3_pool_for((t->n_params + ADAM_CHUNK - 1) / ADAM_CHUNK, adam_item, &j);
}

/* docs/ARCHITECTURE.md, "Bias update and balance loss": per MoE layer, b_i += gamma * sign(cbar - c_i) with cbar the mean
 * load; the sign is taken on exact integers (sum - E c_i). Also the layer's maxvio. */
static void update_bias(dsv3_trainer *t) {
    const int64_t E = dsv3_trainable_config(t->tm)->n_routed_experts;
    float *bias = dsv3_trainable_bias(t->tm);
    const float gamma = (float)t->o.gamma;
    for (int64_t l = 0; l < dsv3_trainable_n_moe(t->tm); l++) {
        const int64_t *c = t->counts + l * E;
        int64_t sum = 0, mx = 0;
        for (int64_t e = 0; e < E; e++) {
            sum += c[e];
            mx = c[e] > mx ? c[e] : mx;
        }
        t->maxvio[l] = sum > 0 ? (double)mx * (double)E / (double)sum - 1.0 : 0.0;
        if (gamma == 0.0f) continue;
        for (int64_t e = 0; e < E; e++) {
            const int64_t d = sum - E * c[e];
            bias[l * E + e] += d > 0 ? gamma : d < 0 ? -gamma : 0.0f;
        }
    }
}

/* Stops the trainer after a non-finite loss or gradient, back at the last good weights. */
static dsv3_status update(dsv3_trainer *t, dsv3_train_metrics *r, dsv3_err *err);

static dsv3_status fail_step(dsv3_trainer *t, const char *what, double v, dsv3_err *err) {
    const int64_t E = dsv3_trainable_config(t->tm)->n_routed_experts;
    memcpy(dsv3_trainable_params(t->tm), t->good, (size_t)t->n_params * sizeof *t->good);
    memcpy(dsv3_trainable_bias(t->tm), t->good_bias, (size_t)(dsv3_trainable_n_moe(t->tm) * E) * sizeof(float));
    t->failed = 1;
    return dsv3_errf(err, DSV3_EINVAL,
                     "train: step %lld: %s is %g; stopped, weights put back to %s (lower the "
                     "learning rate or check the data)",
                     (long long)t->step + 1, what, v,
                     t->step > 0 ? "those before the last update" : "the loaded ones");
}

/* Puts the model's precision in line with opts.fp8 and opts.precision (changeable between
 * steps). */
static dsv3_status set_precision(dsv3_trainer *t, dsv3_err *err) {
    if (t->o.precision != dsv3_trainable_precision(t->tm)) {
        dsv3_status st = dsv3_trainable_set_precision(t->tm, t->o.precision, err);
        if (st) return st;
    }
    if ((t->o.fp8 != 0) == dsv3_trainable_fp8(t->tm)) return DSV3_OK;
    return dsv3_trainable_set_fp8(t->tm, t->o.fp8, err);
}

dsv3_status dsv3_trainer_step(dsv3_trainer *t, dsv3_train_metrics *metrics, dsv3_err *err) {
    if (t->failed)
        return dsv3_errf(err, DSV3_EINVAL,
                         "train: the trainer stopped after a non-finite loss; save the weights or "
                         "create a new trainer");
    dsv3_status st0 = set_precision(t, err);
    if (st0) return st0;
    const dsv3_train_opts *o = &t->o;
    const int64_t B = o->batch, A = o->accum, T = o->seq_len;
    const int64_t nmoe = dsv3_trainable_n_moe(t->tm), E = dsv3_trainable_config(t->tm)->n_routed_experts;
    const double t0 = dsv3_now_s();
    float *g = dsv3_trainable_grads(t->tm);
    memset(g, 0, (size_t)t->n_params * sizeof *g);
    memset(t->counts, 0, (size_t)(nmoe * E) * sizeof *t->counts);
    dsv3_train_metrics r = {0};
    dsv3_status st;
    if (!t->data)
        return dsv3_errf(err, DSV3_EINVAL,
                         "train: this trainer has no data (it takes gradients from its caller: "
                         "dsv3_trainer_update)");
    for (int64_t a = 0; a < A; a++) {
        for (int64_t b = 0; b < B; b++)
            dsv3_data_train_seq(t->data, t->consumed + a * B + b, t->batch + b * (T + 1));
        dsv3_trainable_losses l;
        if ((st = dsv3_trainable_forward(t->tm, t->batch, B, o->lambda, o->alpha, t->counts, o->cancel, &l, err)))
            return st;
        if (!isfinite(l.loss)) return fail_step(t, "the loss", l.loss, err);
        if ((st = dsv3_trainable_backward(t->tm, 1.0 / (double)A, o->cancel, err))) return st;
        r.loss += l.loss / (double)A;
        r.ce += l.ce / (double)A;
        r.mtp += l.mtp / (double)A;
        r.balance += l.balance / (double)A;
    }
    if ((st = update(t, &r, err))) return st;
    t->consumed += A * B;
    r.tokens = A * B * T;
    r.seconds = dsv3_now_s() - t0;
    r.tokens_per_s = r.seconds > 0 ? (double)r.tokens / r.seconds : 0.0;
    t->last = r;
    if (metrics) *metrics = r;
    return DSV3_OK;
}

dsv3_status dsv3_trainer_update(dsv3_trainer *t, dsv3_train_metrics *metrics, dsv3_err *err) {
    if (t->failed)
        return dsv3_errf(err, DSV3_EINVAL,
                         "train: the trainer stopped after a non-finite loss or gradient; save the weights or "
                         "create a new trainer");
    const int64_t nmoe = dsv3_trainable_n_moe(t->tm), E = dsv3_trainable_config(t->tm)->n_routed_experts;
    const double t0 = dsv3_now_s();
    memset(t->counts, 0, (size_t)(nmoe * E) * sizeof *t->counts);
    dsv3_train_metrics r = {0};
    dsv3_status st = update(t, &r, err);
    if (st) return st;
    r.seconds = dsv3_now_s() - t0;
    t->last = r;
    if (metrics) *metrics = r;
    return DSV3_OK;
}

/* The optimizer half of a step, from the gradients in the model's gradient array: norm,
 * clipping, AdamW at the scheduled learning rate, bias update from t->counts; fills r's step,
 * lr, grad_norm and maxvio. */
static dsv3_status update(dsv3_trainer *t, dsv3_train_metrics *r, dsv3_err *err) {
    const dsv3_train_opts *o = &t->o;
    const int64_t nmoe = dsv3_trainable_n_moe(t->tm), E = dsv3_trainable_config(t->tm)->n_routed_experts;
    const float *g = dsv3_trainable_grads(t->tm);
    /* global L2 norm in double, in parameter order (deterministic) */
    double ss = 0.0;
    for (int64_t i = 0; i < t->n_params; i++) ss += (double)g[i] * (double)g[i];
    const double norm = sqrt(ss);
    if (!isfinite(norm)) return fail_step(t, "the gradient norm", norm, err);
    /* docs/ARCHITECTURE.md, "Optimizer and schedule": scale = min(1, clip / (norm + 1e-6)) */
    const double gscale = o->clip > 0 ? fmin(1.0, o->clip / (norm + 1e-6)) : 1.0;
    const double lr = schedule(o, t->step + 1);
    memcpy(t->good, dsv3_trainable_params(t->tm), (size_t)t->n_params * sizeof *t->good);
    memcpy(t->good_bias, dsv3_trainable_bias(t->tm), (size_t)(nmoe * E) * sizeof *t->good_bias);
    adamw(t, lr, gscale);
    update_bias(t);
    t->step++;
    r->step = t->step;
    r->lr = lr;
    r->grad_norm = norm;
    for (int64_t l = 0; l < nmoe; l++) r->maxvio = t->maxvio[l] > r->maxvio ? t->maxvio[l] : r->maxvio;
    return DSV3_OK;
}

/* ---------------------------------------------------------------- evaluation ----------- */

dsv3_status dsv3_trainer_eval(dsv3_trainer *t, dsv3_train_metrics *metrics, dsv3_err *err) {
    if (!t->data) return dsv3_errf(err, DSV3_EINVAL, "train: eval: this trainer has no data");
    const int64_t nh = dsv3_data_n_heldout(t->data), B = t->o.batch, T = t->o.seq_len;
    if (nh == 0)
        return dsv3_errf(err, DSV3_EINVAL, "train: eval: no held-out sequences (heldout is %g, %lld "
                         "sequences in all)", t->o.heldout, (long long)dsv3_data_n_train(t->data));
    dsv3_status st0 = set_precision(t, err);
    if (st0) return st0;
    const double t0 = dsv3_now_s();
    dsv3_train_metrics r = {0};
    for (int64_t i0 = 0; i0 < nh; i0 += B) {
        const int64_t b = nh - i0 < B ? nh - i0 : B;
        for (int64_t j = 0; j < b; j++) dsv3_data_heldout_seq(t->data, i0 + j, t->batch + j * (T + 1));
        dsv3_trainable_losses l;
        dsv3_status st = dsv3_trainable_forward(t->tm, t->batch, b, t->o.lambda, t->o.alpha, NULL,
                                         t->o.cancel, &l, err);
        if (st) return st;
        const double w = (double)b / (double)nh; /* every term is a mean over sequences */
        r.ce += l.ce * w;
        r.mtp += l.mtp * w;
        r.balance += l.balance * w;
    }
    r.loss = r.ce + t->o.lambda * r.mtp + t->o.alpha * r.balance;
    r.step = t->step;
    r.tokens = nh * T;
    r.seconds = dsv3_now_s() - t0;
    r.tokens_per_s = r.seconds > 0 ? (double)r.tokens / r.seconds : 0.0;
    if (metrics) *metrics = r;
    return DSV3_OK;
}

/* ---------------------------------------------------------------- save ----------------- */

/* Names of the config keys that fix the parameter table; the state records them. */
static void config_keys(const dsv3_config *c, const char **names, int64_t *vals, int *n) {
    const struct {
        const char *k;
        int64_t v;
    } kv[] = {
        {"vocab_size", c->vocab_size},
        {"hidden_size", c->hidden_size},
        {"intermediate_size", c->intermediate_size},
        {"moe_intermediate_size", c->moe_intermediate_size},
        {"num_hidden_layers", c->num_hidden_layers},
        {"num_attention_heads", c->num_attention_heads},
        {"n_shared_experts", c->n_shared_experts},
        {"n_routed_experts", c->n_routed_experts},
        {"num_experts_per_tok", c->num_experts_per_tok},
        {"n_group", c->n_group},
        {"topk_group", c->topk_group},
        {"first_k_dense_replace", c->first_k_dense_replace},
        {"q_lora_rank", c->q_lora_rank},
        {"kv_lora_rank", c->kv_lora_rank},
        {"qk_nope_head_dim", c->qk_nope_head_dim},
        {"qk_rope_head_dim", c->qk_rope_head_dim},
        {"v_head_dim", c->v_head_dim},
    };
    *n = (int)(sizeof kv / sizeof kv[0]);
    for (int i = 0; i < *n; i++) {
        names[i] = kv[i].k;
        vals[i] = kv[i].v;
    }
}

enum { MAX_META = 64, META_LEN = 96 };

/* String metadata being built: keys and values live in fixed buffers. */
typedef struct {
    char key[MAX_META][META_LEN], val[MAX_META][META_LEN];
    const char *kv[2 * MAX_META];
    int n;
} meta_buf;

static void meta_add(meta_buf *mb, const char *k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void meta_add(meta_buf *mb, const char *k, const char *fmt, ...) {
    if (mb->n >= MAX_META) return;
    snprintf(mb->key[mb->n], META_LEN, "%s", k);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mb->val[mb->n], META_LEN, fmt, ap);
    va_end(ap);
    mb->kv[2 * mb->n] = mb->key[mb->n];
    mb->kv[2 * mb->n + 1] = mb->val[mb->n];
    mb->n++;
}

/* Every weight (and its tied copy) in its loaded dtype or F32, FP8 re-quantized, plus the
 * router biases. */
static dsv3_status save_model(dsv3_trainer *t, const char *dir, dsv3_err *err) {
    const dsv3_config *c = dsv3_trainable_config(t->tm);
    const int64_t nt = dsv3_trainable_n_tensors(t->tm), nmoe = dsv3_trainable_n_moe(t->tm), E = c->n_routed_experts;
    const size_t cap = (size_t)(4 * nt + nmoe + 1);
    dsv3_tckpt_entry *ent = calloc(cap, sizeof *ent);
    char (*names)[256] = calloc(cap, sizeof *names);
    void **bufs = calloc(cap, sizeof *bufs);
    size_t n = 0, nbuf = 0;
    dsv3_status st = DSV3_OK;
    if (!ent || !names || !bufs) {
        st = dsv3_errf(err, DSV3_ENOMEM, "train: save: out of memory");
        goto done;
    }
    const float *w = t->failed ? t->good : dsv3_trainable_params(t->tm);
    for (int64_t i = 0; i < nt; i++) {
        const dsv3_trainable_tensor *x = dsv3_trainable_tensor_at(t->tm, i);
        for (int copy = 0; copy < 2; copy++) {
            const char *name = copy ? x->alias : x->name;
            if (!name) continue;
            dsv3_dtype dt = t->o.save_f32 ? DSV3_DT_F32 : copy ? x->alias_dtype : x->dtype;
            dsv3_tckpt_entry e = {.name = name, .dtype = dt, .ndim = x->ndim,
                                  .shape = {x->rows, x->cols}, .f32 = w + x->offset};
            if (dt != DSV3_DT_F8_E4M3 || x->ndim != 2) {
                if (dt != DSV3_DT_F32 && dt != DSV3_DT_BF16 && dt != DSV3_DT_F16) e.dtype = DSV3_DT_F32;
                ent[n++] = e;
                continue;
            }
            const int64_t rb = (x->rows + 127) / 128, cb = (x->cols + 127) / 128;
            uint8_t *q = malloc((size_t)x->numel);
            float *s = malloc((size_t)(rb * cb) * sizeof *s);
            bufs[nbuf++] = q;
            bufs[nbuf++] = s;
            if (!q || !s) {
                st = dsv3_errf(err, DSV3_ENOMEM, "train: save: out of memory");
                goto done;
            }
            dsv3_fp8_quant_blocks(q, s, w + x->offset, x->rows, x->cols);
            e.f32 = NULL;
            e.raw = q;
            ent[n++] = e;
            snprintf(names[n], sizeof names[n], "%s_scale_inv", name);
            ent[n] = (dsv3_tckpt_entry){.name = names[n], .dtype = DSV3_DT_F32, .ndim = 2,
                                        .shape = {rb, cb}, .raw = s};
            n++;
        }
    }
    const float *bias = t->failed ? t->good_bias : dsv3_trainable_bias(t->tm);
    for (int64_t l = 0; l < nmoe; l++) {
        snprintf(names[n], sizeof names[n], "model.layers.%lld.mlp.gate.e_score_correction_bias",
                 (long long)dsv3_trainable_moe_layer(t->tm, l));
        ent[n] = (dsv3_tckpt_entry){.name = names[n], .dtype = DSV3_DT_F32, .ndim = 1,
                                    .shape = {E, 0}, .f32 = bias + l * E};
        n++;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt"};
    st = dsv3_tckpt_write(path, ent, n, meta, 1, err);
done:
    for (size_t i = 0; bufs && i < nbuf; i++) free(bufs[i]);
    free(bufs);
    free(names);
    free(ent);
    return st;
}

/* config.json (without quantization_config when saving F32) and the tokenizer files. */
static dsv3_status save_side_files(dsv3_trainer *t, const char *dir, dsv3_err *err) {
    const char *src = dsv3_model_dir(t->m);
    char from[4096], to[4096];
    dsv3_status st;
    snprintf(from, sizeof from, "%s/config.json", src);
    snprintf(to, sizeof to, "%s/config.json", dir);
    if (!t->o.save_f32) {
        if ((st = dsv3_tckpt_copy_file(to, from, err))) return st;
    } else {
        FILE *f = fopen(from, "rb");
        if (!f) return dsv3_errf(err, DSV3_EIO, "train: save: %s: %s", from, strerror(errno));
        char *text = NULL;
        size_t len = 0, cap = 0, got;
        char buf[8192];
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
            if (len + got + 1 > cap) {
                cap = 2 * (len + got + 1);
                char *n = realloc(text, cap);
                if (!n) break;
                text = n;
            }
            memcpy(text + len, buf, got);
            len += got;
        }
        fclose(f);
        cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
        free(text);
        if (!root) return dsv3_errf(err, DSV3_EFORMAT, "train: save: %s: cannot re-read the config", from);
        cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
        char *out = cJSON_Print(root);
        cJSON_Delete(root);
        if (!out) return dsv3_errf(err, DSV3_ENOMEM, "train: save: out of memory");
        st = dsv3_tckpt_write_text(to, out, strlen(out), err);
        free(out);
        if (st) return st;
    }
    const char *side[] = {"tokenizer.json", "tokenizer_config.json"};
    for (size_t i = 0; i < 2; i++) {
        struct stat sb;
        snprintf(from, sizeof from, "%s/%s", src, side[i]);
        snprintf(to, sizeof to, "%s/%s", dir, side[i]);
        if (stat(from, &sb) != 0) continue;
        if ((st = dsv3_tckpt_copy_file(to, from, err))) return st;
    }
    return DSV3_OK;
}

/* train_state.safetensors: master weights, moments, biases; scalars in __metadata__. */
static dsv3_status save_state(dsv3_trainer *t, const char *dir, dsv3_err *err) {
    const dsv3_config *c = dsv3_trainable_config(t->tm);
    const int64_t nt = dsv3_trainable_n_tensors(t->tm), nmoe = dsv3_trainable_n_moe(t->tm), E = c->n_routed_experts;
    const size_t cap = (size_t)(3 * nt + nmoe + 1);
    dsv3_tckpt_entry *ent = calloc(cap, sizeof *ent);
    char (*names)[280] = calloc(cap, sizeof *names);
    meta_buf *mb = calloc(1, sizeof *mb);
    dsv3_status st;
    if (!ent || !names || !mb) {
        st = dsv3_errf(err, DSV3_ENOMEM, "train: save: out of memory");
        goto done;
    }
    size_t n = 0;
    const float *src[3] = {dsv3_trainable_params(t->tm), t->adam_m, t->adam_v};
    const char *pre[3] = {"master.", "adam.m.", "adam.v."};
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < nt; i++) {
            const dsv3_trainable_tensor *x = dsv3_trainable_tensor_at(t->tm, i);
            snprintf(names[n], sizeof names[n], "%s%s", pre[k], x->name);
            ent[n] = (dsv3_tckpt_entry){.name = names[n], .dtype = DSV3_DT_F32, .ndim = x->ndim,
                                        .shape = {x->rows, x->cols}, .f32 = src[k] + x->offset};
            n++;
        }
    for (int64_t l = 0; l < nmoe; l++) {
        snprintf(names[n], sizeof names[n], "router_bias.%lld", (long long)dsv3_trainable_moe_layer(t->tm, l));
        ent[n] = (dsv3_tckpt_entry){.name = names[n], .dtype = DSV3_DT_F32, .ndim = 1,
                                    .shape = {E, 0}, .f32 = dsv3_trainable_bias(t->tm) + l * E};
        n++;
    }
    const dsv3_train_opts *o = &t->o;
    meta_add(mb, "format", "dsv3-train-state");
    meta_add(mb, "version", "1");
    meta_add(mb, "step", "%lld", (long long)t->step);
    meta_add(mb, "consumed", "%lld", (long long)t->consumed);
    meta_add(mb, "seed", "%" PRIu64, o->seed);
    meta_add(mb, "seq_len", "%lld", (long long)o->seq_len);
    meta_add(mb, "batch", "%lld", (long long)o->batch);
    meta_add(mb, "accum", "%lld", (long long)o->accum);
    meta_add(mb, "lr", "%.17g", o->lr);
    meta_add(mb, "min_lr", "%.17g", o->min_lr);
    meta_add(mb, "warmup", "%lld", (long long)o->warmup);
    meta_add(mb, "total_steps", "%lld", (long long)o->total_steps);
    meta_add(mb, "lambda", "%.17g", o->lambda);
    meta_add(mb, "alpha", "%.17g", o->alpha);
    meta_add(mb, "gamma", "%.17g", o->gamma);
    meta_add(mb, "n_params", "%lld", (long long)t->n_params);
    meta_add(mb, "n_tensors", "%lld", (long long)nt);
    meta_add(mb, "data_tokens", "%lld", t->data ? (long long)dsv3_data_n_tokens(t->data) : 0LL);
    if (o->fim_rate > 0) meta_add(mb, "fim_rate", "%.17g", o->fim_rate); /* absent: 0 */
    const char *keys[32];
    int64_t vals[32];
    int nk;
    config_keys(c, keys, vals, &nk);
    char k[META_LEN];
    for (int i = 0; i < nk; i++) {
        snprintf(k, sizeof k, "config.%s", keys[i]);
        meta_add(mb, k, "%lld", (long long)vals[i]);
    }
    meta_add(mb, "config.mtp", "%d", dsv3_trainable_has_mtp(t->tm));
    char path[4096];
    snprintf(path, sizeof path, "%s/train_state.safetensors", dir);
    st = dsv3_tckpt_write(path, ent, n, mb->kv, (size_t)mb->n, err);
done:
    free(mb);
    free(names);
    free(ent);
    return st;
}

dsv3_status dsv3_trainer_save(dsv3_trainer *t, const char *dir, dsv3_err *err) {
    struct stat sb;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (stat(path, &sb) == 0)
        return dsv3_errf(err, DSV3_EINVAL,
                         "train: save: %s holds a sharded checkpoint (model.safetensors.index.json); "
                         "choose another directory", dir);
    /* the whole directory is written as a sibling and swapped in (checkpoint.h) */
    dsv3_tckpt_dir d;
    dsv3_status st = dsv3_tckpt_dir_begin(&d, dir, err);
    if (st) return st;
    if ((st = save_model(t, d.path, err)) || (st = save_side_files(t, d.path, err)) ||
        (!t->failed && (st = save_state(t, d.path, err)))) {
        dsv3_tckpt_dir_abort(&d);
        return st;
    }
    /* a failed trainer writes no state, and an older one would not match these weights */
    static const char *const ours[] = {"model.safetensors", "config.json", "tokenizer.json",
                                       "tokenizer_config.json", "train_state.safetensors"};
    return dsv3_tckpt_dir_commit(&d, ours, sizeof ours / sizeof *ours, err);
}

/* ---------------------------------------------------------------- resume --------------- */

static int parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

/* The state's tensor `prefix + name`: F32 with numel elements, or an error naming it. */
static dsv3_status state_tensor(const float **out, const dsv3_st_file *f, const char *path,
                                const char *prefix, const char *name, int64_t numel,
                                dsv3_err *err) {
    char full[300];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const dsv3_st_tensor *x = dsv3_st_find(f, full);
    if (!x)
        return dsv3_errf(err, DSV3_EINVAL, "train: resume: %s: tensor %s is missing (state of "
                         "another model?)", path, full);
    if (x->dtype != DSV3_DT_F32 || x->numel != numel)
        return dsv3_errf(err, DSV3_EINVAL, "train: resume: %s: tensor %s: %s with %lld elements, "
                         "expected F32 with %lld", path, full, dsv3_dtype_name(x->dtype),
                         (long long)x->numel, (long long)numel);
    *out = x->data;
    return DSV3_OK;
}

dsv3_status dsv3_trainer_resume(dsv3_trainer *t, const char *path, dsv3_err *err) {
    char file[4096];
    struct stat sb;
    if (stat(path, &sb) != 0) return dsv3_errf(err, DSV3_EIO, "train: resume: %s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) snprintf(file, sizeof file, "%s/train_state.safetensors", path);
    else snprintf(file, sizeof file, "%s", path);
    dsv3_tckpt_meta meta;
    dsv3_status st = dsv3_tckpt_meta_read(&meta, file, err);
    if (st) return st;
    dsv3_st_file *f = NULL;
    const dsv3_config *c = dsv3_trainable_config(t->tm);
    const int64_t nt = dsv3_trainable_n_tensors(t->tm), nmoe = dsv3_trainable_n_moe(t->tm), E = c->n_routed_experts;
    const char *fmt = dsv3_tckpt_meta_get(&meta, "format");
    int64_t step, consumed, v;
    if (!fmt || strcmp(fmt, "dsv3-train-state")) {
        st = dsv3_errf(err, DSV3_EFORMAT, "train: resume: %s: not a dsv3 training state (no "
                       "__metadata__.format \"dsv3-train-state\")", file);
        goto done;
    }
    const char *keys[32];
    int64_t vals[32];
    int nk;
    config_keys(c, keys, vals, &nk);
    char k[META_LEN];
    for (int i = 0; i < nk; i++) {
        snprintf(k, sizeof k, "config.%s", keys[i]);
        if (parse_i64(dsv3_tckpt_meta_get(&meta, k), &v) || v != vals[i]) {
            st = dsv3_errf(err, DSV3_EINVAL, "train: resume: %s: written for another model: %s is "
                           "%s there, %lld here", file, keys[i],
                           dsv3_tckpt_meta_get(&meta, k) ? dsv3_tckpt_meta_get(&meta, k) : "absent",
                           (long long)vals[i]);
            goto done;
        }
    }
    if (parse_i64(dsv3_tckpt_meta_get(&meta, "config.mtp"), &v) || v != dsv3_trainable_has_mtp(t->tm) ||
        parse_i64(dsv3_tckpt_meta_get(&meta, "n_params"), &v) || v != t->n_params ||
        parse_i64(dsv3_tckpt_meta_get(&meta, "n_tensors"), &v) || v != nt) {
        st = dsv3_errf(err, DSV3_EINVAL, "train: resume: %s: written for another model (MTP or "
                       "parameter count differ: %s parameters there, %lld here)", file,
                       dsv3_tckpt_meta_get(&meta, "n_params") ? dsv3_tckpt_meta_get(&meta, "n_params") : "?",
                       (long long)t->n_params);
        goto done;
    }
    if (parse_i64(dsv3_tckpt_meta_get(&meta, "seq_len"), &v) || v != t->o.seq_len) {
        st = dsv3_errf(err, DSV3_EINVAL, "train: resume: %s: written with seq_len %s, this run uses %lld",
                       file, dsv3_tckpt_meta_get(&meta, "seq_len"), (long long)t->o.seq_len);
        goto done;
    }
    const char *seed = dsv3_tckpt_meta_get(&meta, "seed");
    char mine[32];
    snprintf(mine, sizeof mine, "%" PRIu64, t->o.seed);
    if (!seed || strcmp(seed, mine)) {
        st = dsv3_errf(err, DSV3_EINVAL, "train: resume: %s: written with seed %s, this run uses %s",
                       file, seed ? seed : "absent", mine);
        goto done;
    }
    /* the FIM draws come from the seed, so the same seed and rate give the same data */
    const char *fim = dsv3_tckpt_meta_get(&meta, "fim_rate");
    char *fim_end = NULL;
    const double fim_there = fim ? strtod(fim, &fim_end) : 0.0;
    if ((fim && (fim_end == fim || *fim_end)) || fim_there != t->o.fim_rate) {
        st = dsv3_errf(err, DSV3_EINVAL,
                       "train: resume: %s: written with fim_rate %s, this run uses %g", file,
                       fim ? fim : "0", t->o.fim_rate);
        goto done;
    }
    if (parse_i64(dsv3_tckpt_meta_get(&meta, "step"), &step) || step < 0 ||
        parse_i64(dsv3_tckpt_meta_get(&meta, "consumed"), &consumed) || consumed < 0) {
        st = dsv3_errf(err, DSV3_EFORMAT, "train: resume: %s: bad step or consumed in __metadata__", file);
        goto done;
    }
    if ((st = dsv3_st_open(&f, file, err))) goto done;
    /* check everything before changing anything */
    const float *p;
    for (int64_t i = 0; i < nt; i++) {
        const dsv3_trainable_tensor *x = dsv3_trainable_tensor_at(t->tm, i);
        if ((st = state_tensor(&p, f, file, "master.", x->name, x->numel, err)) ||
            (st = state_tensor(&p, f, file, "adam.m.", x->name, x->numel, err)) ||
            (st = state_tensor(&p, f, file, "adam.v.", x->name, x->numel, err)))
            goto done;
    }
    char bname[64];
    for (int64_t l = 0; l < nmoe; l++) {
        snprintf(bname, sizeof bname, "%lld", (long long)dsv3_trainable_moe_layer(t->tm, l));
        if ((st = state_tensor(&p, f, file, "router_bias.", bname, E, err))) goto done;
    }
    float *dst[3] = {dsv3_trainable_params(t->tm), t->adam_m, t->adam_v};
    const char *pre[3] = {"master.", "adam.m.", "adam.v."};
    for (int kk = 0; kk < 3; kk++)
        for (int64_t i = 0; i < nt; i++) {
            const dsv3_trainable_tensor *x = dsv3_trainable_tensor_at(t->tm, i);
            state_tensor(&p, f, file, pre[kk], x->name, x->numel, err);
            memcpy(dst[kk] + x->offset, p, (size_t)x->numel * sizeof *p);
        }
    for (int64_t l = 0; l < nmoe; l++) {
        snprintf(bname, sizeof bname, "%lld", (long long)dsv3_trainable_moe_layer(t->tm, l));
        state_tensor(&p, f, file, "router_bias.", bname, E, err);
        memcpy(dsv3_trainable_bias(t->tm) + l * E, p, (size_t)E * sizeof *p);
    }
    t->step = step;
    t->consumed = consumed;
    t->failed = 0;
    memcpy(t->good, dsv3_trainable_params(t->tm), (size_t)t->n_params * sizeof *t->good);
    memcpy(t->good_bias, dsv3_trainable_bias(t->tm), (size_t)(nmoe * E) * sizeof *t->good_bias);
done:
    dsv3_st_close(f);
    dsv3_tckpt_meta_fini(&meta);
    return st;
}

/* ---------------------------------------------------------------- sync and access ------ */

dsv3_status dsv3_trainer_sync(dsv3_trainer *t, dsv3_err *err) {
    if (!t->snap && !(t->snap = malloc((size_t)t->n_params * sizeof *t->snap)))
        return dsv3_errf(err, DSV3_ENOMEM, "train: sync: out of memory for %lld weights",
                         (long long)t->n_params);
    memcpy(t->snap, t->failed ? t->good : dsv3_trainable_params(t->tm), (size_t)t->n_params * sizeof *t->snap);
    return dsv3_trainable_point_model(t->tm, t->m, t->snap, dsv3_trainable_bias(t->tm), err);
}

const dsv3_train_metrics *dsv3_trainer_last(const dsv3_trainer *t) {
    return &t->last;
}

int64_t dsv3_trainer_moe_layers(const dsv3_trainer *t) {
    return dsv3_trainable_n_moe(t->tm);
}

dsv3_status dsv3_trainer_layer(const dsv3_trainer *t, int64_t i, dsv3_train_layer *out,
                               dsv3_err *err) {
    if (i < 0 || i >= dsv3_trainable_n_moe(t->tm))
        return dsv3_errf(err, DSV3_EINVAL, "train: MoE layer %lld out of range [0, %lld)", (long long)i,
                         (long long)dsv3_trainable_n_moe(t->tm));
    const int64_t E = dsv3_trainable_config(t->tm)->n_routed_experts;
    out->layer = dsv3_trainable_moe_layer(t->tm, i);
    out->n_experts = E;
    out->load = t->counts + i * E;
    out->bias = dsv3_trainable_bias(t->tm) + i * E;
    out->maxvio = t->maxvio[i];
    return DSV3_OK;
}

void dsv3_trainer_next_batch(dsv3_trainer *t, int32_t *out) {
    const int64_t n = t->o.accum * t->o.batch, T = t->o.seq_len;
    for (int64_t i = 0; i < n; i++)
        dsv3_data_train_seq(t->data, t->consumed + i, out + i * (T + 1));
}

void dsv3_trainer_info(const dsv3_trainer *t, dsv3_train_info *out) {
    const dsv3_config *c = dsv3_trainable_config(t->tm);
    const int64_t L = c->num_hidden_layers;
    char en[128], hn[128];
    snprintf(en, sizeof en, "model.layers.%lld.embed_tokens.weight", (long long)L);
    snprintf(hn, sizeof hn, "model.layers.%lld.shared_head.head.weight", (long long)L);
    const dsv3_trainable_tensor *e = dsv3_trainable_find(t->tm, en), *h = dsv3_trainable_find(t->tm, hn);
    *out = (dsv3_train_info){
        .n_params = t->n_params,
        .n_tensors = dsv3_trainable_n_tensors(t->tm),
        .n_tokens = t->data ? dsv3_data_n_tokens(t->data) : 0,
        .n_docs = t->data ? dsv3_data_n_docs(t->data) : 0,
        .n_fim_docs = t->data ? dsv3_data_n_fim(t->data) : 0,
        .n_train = t->data ? dsv3_data_n_train(t->data) : 0,
        .n_heldout = t->data ? dsv3_data_n_heldout(t->data) : 0,
        .step = t->step,
        .mtp = dsv3_trainable_has_mtp(t->tm),
        .tied_embed = dsv3_trainable_has_mtp(t->tm) && (!e || !strcmp(e->name, "model.embed_tokens.weight")),
        .tied_head = dsv3_trainable_has_mtp(t->tm) && (!h || !strcmp(h->name, "lm_head.weight")),
    };
}

dsv3_train_opts *dsv3_trainer_opts(dsv3_trainer *t) {
    return &t->o;
}

float *dsv3_trainer_param(dsv3_trainer *t, const char *name, int64_t *numel) {
    const dsv3_trainable_tensor *x = dsv3_trainable_find(t->tm, name);
    if (!x) return NULL;
    if (numel) *numel = x->numel;
    return dsv3_trainable_params(t->tm) + x->offset;
}

dsv3_trainable *dsv3_trainer_tmodel(dsv3_trainer *t) {
    return t->tm;
}

int dsv3_trainer_failed(const dsv3_trainer *t) {
    return t->failed;
}
