/* test_train.c — training: per-op and whole-model gradient checks, training forward vs the
 * inference forward, bias balancing, resume exactness, loss decrease, save/load, bad input.
 *
 * Gradient checks (docs/ARCHITECTURE.md, "Gradients") use central differences of a double loss:
 * g_num = (L(x + h) - L(x - h)) / (x_+ - x_-), with x_+/x_- the perturbed values as actually
 * stored (so float parameters are exact), h = 1e-5 * max(1, |x|) for double inputs and
 * 1e-3 * max(1, |x|) for float32 parameters. The error of a coordinate is
 *   rel = |g_analytic - g_num| / max(|g_analytic|, |g_num|, 1e-6)
 * (below 1e-6 the comparison is absolute); each check reports its maximum and must stay
 * <= 1e-4. Links the model folder's module headers (ops, trainable, data,
 * checkpoint): they are not front-end API. Set DSV3_TEST_VERBOSE=1 for per-tensor lines.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <omp.h>
#include <unistd.h>

#include "tests/runner.h"
#include "tests/models.h"

#include "model/run/mtp.h"
#include "model/text/fim.h"
#include "model/run/forward.h"
#include "model/train/fp8.h"
#include "model/run/model.h"
#include "model/train/trainer.h"
#include "model/train/checkpoint.h"
#include "model/train/data.h"
#include "model/train/trainable.h"
#include "model/train/ops.h"

static int verbose;

/* ---------------------------------------------------------------- helpers -------------- */

static void fill_d(double *x, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * urand();
}
static void fill_f(float *x, int64_t n, double scale, double offset) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(offset + scale * urand());
}

static const char *write_text(const char *name, const char *text, size_t len) {
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return NULL;
    fwrite(text, 1, len, f);
    fclose(f);
    return p;
}

/* A small English corpus: the repository's tokenizer corpus. */
static const char *corpus(void) {
    return "examples/tokenizer_corpus.txt";
}

/* ---------------------------------------------------------------- per-op checks -------- */

/* The loss of an op check: sum(out * R) for a fixed random R. */
typedef double (*loss_fn)(void *ctx);

/* Checks the analytic gradient g of the double array x at k coordinates (all if n <= k). */
static double check_d(loss_fn f, void *ctx, double *x, const double *g, int64_t n, int k) {
    double worst = 0.0;
    for (int i = 0; i < (n < k ? n : k); i++) {
        const int64_t j = n <= k ? i : (int64_t)((urand() + 1.0) * 0.5 * (double)n) % n;
        const double x0 = x[j], h = 1e-5 * fmax(1.0, fabs(x0));
        x[j] = x0 + h;
        const double lp = f(ctx), xp = x[j];
        x[j] = x0 - h;
        const double ln = f(ctx), xn = x[j];
        x[j] = x0;
        worst = fmax(worst, relerr(g[j], (lp - ln) / (xp - xn)));
    }
    return worst;
}

/* The same for a float32 parameter (the perturbed values are the stored floats). */
static double check_f(loss_fn f, void *ctx, float *x, const float *g, int64_t n, int k) {
    double worst = 0.0;
    for (int i = 0; i < (n < k ? n : k); i++) {
        const int64_t j = n <= k ? i : (int64_t)((urand() + 1.0) * 0.5 * (double)n) % n;
        const float x0 = x[j];
        const double h = 1e-3 * fmax(1.0, fabs(x0));
        x[j] = (float)(x0 + h);
        const double lp = f(ctx), xp = x[j];
        x[j] = (float)(x0 - h);
        const double ln = f(ctx), xn = x[j];
        x[j] = x0;
        worst = fmax(worst, relerr(g[j], (lp - ln) / (xp - xn)));
    }
    return worst;
}

static double dotR(const double *y, const double *R, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += y[i] * R[i];
    return s;
}

enum { N = 6, IN = 20, OUT = 12, E = 8, KK = 3, V = 17, NH = 3, DQK = 10, DV = 6, T = 5, B = 2 };

/* Shared state of the op checks (every op reads what it needs). */
typedef struct {
    double x[N * IN], y[N * OUT], e[N * IN], R[N * 64], rstd[N];
    float W[OUT * IN], g[IN];
    double dx[N * IN];
    float dW[OUT * IN], dg[IN];
    int32_t ids[N], idx[N * KK];
    int64_t pos[N];
    float inv_freq[8];
    double q[B * T * NH * DQK], k[B * T * NH * DQK], v[B * T * NH * DV], o[B * T * NH * DV],
        P[B * NH * T * T];
    double dq[B * T * NH * DQK], dk[B * T * NH * DQK], dv[B * T * NH * DV];
    double z[N * E], s[N * E], w[N * KK], dz[N * E], f[E];
    double logits[N * V], probs[N * V], loss[N], dloss[N], dlogits[N * V];
    int norm;
} opctx;

static double l_linear(void *p) {
    opctx *c = p;
    dsv3_op_linear_forward(c->y, c->x, c->W, N, IN, OUT);
    return dotR(c->y, c->R, N * OUT);
}
static double l_rmsnorm(void *p) {
    opctx *c = p;
    dsv3_op_rmsnorm_forward(c->dx, c->rstd, c->x, c->g, N, IN, 1e-6); /* dx as output buffer */
    return dotR(c->dx, c->R, N * IN);
}
static double l_rope(void *p) {
    opctx *c = p;
    memcpy(c->dx, c->x, sizeof c->x);
    dsv3_op_rope_forward(c->dx, N, 2, IN / 2, 6, c->pos, c->inv_freq, 1.3);
    return dotR(c->dx, c->R, N * IN);
}
static double l_attention(void *p) {
    opctx *c = p;
    dsv3_op_attention_forward(c->o, c->P, c->q, c->k, c->v, B, T, NH, DQK, DV, 0.37);
    return dotR(c->o, c->R, B * T * NH * DV);
}
static double l_swiglu(void *p) {
    opctx *c = p;
    dsv3_op_swiglu_forward(c->y, c->x, c->x + N * OUT / 2, N * OUT / 2);
    return dotR(c->y, c->R, N * OUT / 2);
}
static double l_gate(void *p) {
    opctx *c = p;
    dsv3_op_gate_forward(c->w, c->s, c->z, c->idx, N, E, KK, 2.5, c->norm);
    return dotR(c->w, c->R, N * KK);
}
static double l_balance(void *p) {
    opctx *c = p;
    double *s = c->s;
    for (int64_t i = 0; i < N * E; i++) s[i] = 1.0 / (1.0 + exp(-c->z[i]));
    return dsv3_op_balance_forward(c->f, s, c->idx, N, E, KK);
}
static double l_ce(void *p) {
    opctx *c = p;
    dsv3_op_ce_forward(c->loss, c->probs, c->logits, c->ids, N, V);
    return dotR(c->loss, c->dloss, N);
}
static double l_embed(void *p) {
    opctx *c = p;
    dsv3_op_embed_forward(c->e, c->ids, c->W, N, IN); /* table [OUT, IN] */
    return dotR(c->e, c->R, N * IN);
}

static int report(const char *op, double err) {
    printf("  %-26s max rel err %.2e\n", op, err);
    return err <= 1e-4;
}

static int test_ops_gradients_match_finite_differences(void) {
    opctx *c = calloc(1, sizeof *c);
    fill_d(c->x, N * IN, 1.0);
    fill_d(c->R, N * 64, 1.0);
    fill_f(c->W, OUT * IN, 0.5, 0.0);
    fill_f(c->g, IN, 0.2, 1.0);
    for (int i = 0; i < N; i++) {
        c->ids[i] = (int32_t)((i * 7) % OUT);
        c->pos[i] = 3 * i + 1;
    }
    for (int i = 0; i < 8; i++) c->inv_freq[i] = (float)pow(10.0, -0.5 * i);
    int ok = 1;
    /* linear */
    l_linear(c);
    memset(c->dx, 0, sizeof c->dx);
    memset(c->dW, 0, sizeof c->dW);
    dsv3_op_linear_backward(c->dx, c->dW, c->R, c->x, c->W, N, IN, OUT);
    double dxa[N * IN];
    memcpy(dxa, c->dx, sizeof dxa);
    ok &= report("linear dx", check_d(l_linear, c, c->x, dxa, N * IN, 1000));
    ok &= report("linear dW", check_f(l_linear, c, c->W, c->dW, OUT * IN, 1000));
    /* embedding: table W [OUT, IN], repeated ids */
    c->ids[3] = c->ids[1];
    memset(c->dW, 0, sizeof c->dW);
    dsv3_op_embed_backward(c->dW, c->R, c->ids, N, IN);
    ok &= report("embedding", check_f(l_embed, c, c->W, c->dW, OUT * IN, 1000));
    /* RMSNorm */
    l_rmsnorm(c);
    memset(dxa, 0, sizeof dxa);
    memset(c->dg, 0, sizeof c->dg);
    dsv3_op_rmsnorm_backward(dxa, c->dg, c->R, c->x, c->rstd, c->g, N, IN);
    ok &= report("rmsnorm dx", check_d(l_rmsnorm, c, c->x, dxa, N * IN, 1000));
    ok &= report("rmsnorm dg", check_f(l_rmsnorm, c, c->g, c->dg, IN, 1000));
    /* RoPE: 2 vectors of 10 per token (stride 10), rotary width 6 */
    memcpy(dxa, c->R, sizeof dxa);
    dsv3_op_rope_backward(dxa, N, 2, IN / 2, 6, c->pos, c->inv_freq, 1.3);
    ok &= report("rope", check_d(l_rope, c, c->x, dxa, N * IN, 1000));
    /* attention */
    fill_d(c->q, B * T * NH * DQK, 1.0);
    fill_d(c->k, B * T * NH * DQK, 1.0);
    fill_d(c->v, B * T * NH * DV, 1.0);
    l_attention(c);
    memset(c->dq, 0, sizeof c->dq);
    memset(c->dk, 0, sizeof c->dk);
    memset(c->dv, 0, sizeof c->dv);
    dsv3_op_attention_backward(c->dq, c->dk, c->dv, c->R, c->P, c->q, c->k, c->v, B, T, NH, DQK, DV, 0.37);
    ok &= report("attention dq", check_d(l_attention, c, c->q, c->dq, B * T * NH * DQK, 1000));
    ok &= report("attention dk", check_d(l_attention, c, c->k, c->dk, B * T * NH * DQK, 1000));
    ok &= report("attention dv", check_d(l_attention, c, c->v, c->dv, B * T * NH * DV, 1000));
    /* SwiGLU: a = x[0 .. 36), b = x[36 .. 72) */
    memset(dxa, 0, sizeof dxa);
    dsv3_op_swiglu_backward(dxa, dxa + N * OUT / 2, c->R, c->x, c->x + N * OUT / 2, N * OUT / 2);
    ok &= report("swiglu", check_d(l_swiglu, c, c->x, dxa, N * OUT, 1000));
    /* gating, with and without normalisation, a fixed choice (one slot empty: -1) */
    fill_d(c->z, N * E, 2.0);
    for (int t = 0; t < N; t++)
        for (int k = 0; k < KK; k++) c->idx[t * KK + k] = (int32_t)((t + 3 * k) % E);
    c->idx[KK * 2 + 1] = -1;
    double extra[N * E];
    fill_d(extra, N * E, 0.1);
    for (c->norm = 1; c->norm >= 0; c->norm--) {
        l_gate(c);
        memset(c->dz, 0, sizeof c->dz);
        dsv3_op_gate_backward(c->dz, c->R, NULL, c->s, c->idx, N, E, KK, 2.5, c->norm);
        ok &= report(c->norm ? "gate (normalised)" : "gate (not normalised)",
                     check_d(l_gate, c, c->z, c->dz, N * E, 1000));
    }
    /* ds_extra goes through sigmoid' only: compare with the closed form */
    c->norm = 1;
    l_gate(c);
    double dz2[N * E] = {0}, dz1[N * E] = {0}, worst = 0.0;
    dsv3_op_gate_backward(dz1, c->R, NULL, c->s, c->idx, N, E, KK, 2.5, 1);
    dsv3_op_gate_backward(dz2, c->R, extra, c->s, c->idx, N, E, KK, 2.5, 1);
    for (int i = 0; i < N * E; i++)
        worst = fmax(worst, relerr(dz2[i] - dz1[i], extra[i] * c->s[i] * (1 - c->s[i])));
    ok &= report("gate extra (balance path)", worst);
    /* balance loss, gradient through the sigmoid of z */
    l_balance(c);
    double ds[N * E] = {0};
    dsv3_op_balance_backward(ds, c->s, c->f, 1.0, N, E);
    for (int i = 0; i < N * E; i++) ds[i] *= c->s[i] * (1.0 - c->s[i]);
    ok &= report("balance loss", check_d(l_balance, c, c->z, ds, N * E, 1000));
    /* cross-entropy with one masked row */
    fill_d(c->logits, N * V, 3.0);
    for (int i = 0; i < N; i++) c->ids[i] = (int32_t)((i * 5) % V);
    c->ids[2] = -1;
    fill_d(c->dloss, N, 1.0);
    l_ce(c);
    dsv3_op_ce_backward(c->dlogits, c->probs, c->ids, c->dloss, N, V);
    ok &= report("cross-entropy", check_d(l_ce, c, c->logits, c->dlogits, N * V, 1000));
    free(c);
    CHECK(ok, "an op's gradient is off by more than 1e-4");
    return 0;
}

/* ---------------------------------------------------------------- whole model ---------- */

/* Checks every tensor of the model in dir (routed experts: 0, 5 and 11 only, or none when
 * experts is 0, to bound the time): for each tensor, among 24 random coordinates the 2 with the
 * largest analytic gradient. Coordinates whose perturbation changes a routing choice are
 * skipped ("Gradients"). lambda 0.3, alpha 0.1 (so the balance gradient is visible). */
static int whole_model_check(const char *dir, int experts, double *worst, int *checked,
                             int *skipped, int *nonzero, int64_t *tensors, char *worst_name) {
    dsv3_model *m = open_model(dir);
    if (!m) return 1;
    dsv3_trainable *tm;
    dsv3_err err;
    const int64_t Tn = 6, Bn = 2;
    if (dsv3_trainable_new(&tm, m, Bn, Tn, &err)) return 1;
    const int64_t Vn = dsv3_model_config(m)->vocab_size;
    int32_t ids[2 * 7];
    for (int i = 0; i < 14; i++) ids[i] = (int32_t)((i * 131 + 7) % Vn);
    ids[9] = ids[2]; /* a repeated token: embedding rows collect two contributions */
    const double lambda = 0.3, alpha = 0.1;
    dsv3_trainable_losses base, lp, ln;
    if (dsv3_trainable_forward(tm, ids, Bn, lambda, alpha, NULL, NULL, &base, &err)) return 1;
    float *p = dsv3_trainable_params(tm), *g = dsv3_trainable_grads(tm);
    memset(g, 0, (size_t)dsv3_trainable_n_params(tm) * sizeof *g);
    if (dsv3_trainable_backward(tm, 1.0, NULL, &err)) return 1;
    *worst = 0.0;
    *checked = *skipped = *nonzero = 0;
    *tensors = 0;
    for (int64_t i = 0; i < dsv3_trainable_n_tensors(tm); i++) {
        const dsv3_trainable_tensor *t = dsv3_trainable_tensor_at(tm, i);
        const char *ex = strstr(t->name, "experts.");
        if (ex && !strstr(t->name, "shared_experts") &&
            (!experts || (strncmp(ex, "experts.0.", 10) && strncmp(ex, "experts.5.", 10) &&
                          strncmp(ex, "experts.11.", 11))))
            continue;
        (*tensors)++;
        int64_t cand[24];
        for (int k = 0; k < 24; k++) cand[k] = t->offset + (int64_t)((urand() + 1.0) * 0.5 * (double)t->numel) % t->numel;
        if (strstr(t->name, "embed_tokens")) /* only the rows of tokens in the batch have a gradient */
            for (int k = 0; k < 24; k++)
                cand[k] = t->offset + (int64_t)ids[k % 14] * t->cols + (int64_t)((urand() + 1.0) * 0.5 * (double)t->cols) % t->cols;
        double terr = 0.0;
        for (int pick = 0; pick < 2; pick++) {
            int best = 0;
            for (int k = 1; k < 24; k++)
                if (fabsf(g[cand[k]]) > fabsf(g[cand[best]])) best = k;
            const int64_t j = cand[best];
            cand[best] = cand[pick == 0 ? 23 : 22]; /* do not pick it twice */
            const float x0 = p[j];
            const double h = 1e-3 * fmax(1.0, fabs(x0));
            p[j] = (float)(x0 + h);
            const double xp = p[j];
            dsv3_trainable_forward(tm, ids, Bn, lambda, alpha, NULL, NULL, &lp, &err);
            p[j] = (float)(x0 - h);
            const double xn = p[j];
            dsv3_trainable_forward(tm, ids, Bn, lambda, alpha, NULL, NULL, &ln, &err);
            p[j] = x0;
            if (lp.route_hash != base.route_hash || ln.route_hash != base.route_hash) {
                (*skipped)++;
                continue;
            }
            const double e = relerr(g[j], (lp.loss - ln.loss) / (xp - xn));
            (*checked)++;
            *nonzero += fabsf(g[j]) >= 1e-6f;
            terr = fmax(terr, e);
            if (e > *worst) {
                *worst = e;
                snprintf(worst_name, 128, "%s", t->name);
            }
        }
        if (verbose) printf("    %-60s %.2e\n", t->name, terr);
    }
    dsv3_trainable_free(tm);
    dsv3_model_close(m);
    return 0;
}

/* The whole model on two tiny configs: 2 layers (1 dense + 1 MoE) with the MTP module, and 2
 * layers with a single q_proj (q_lora_rank 0) and no MTP. FP32 weights, B 2, T 6. */
static int test_model_gradients_match_finite_differences(void) {
    const char *dirs[] = {gen("grad", "--seed 5 --dtype fp32 --layers 2 --no-tokenizer"),
                          gen("grad-q", "--seed 6 --dtype fp32 --layers 2 --q-lora-rank 0 --no-mtp --no-tokenizer")};
    const char *names[] = {"2 layers + MTP", "2 layers, q_proj, no MTP"};
    for (int d = 0; d < 2; d++) {
        double worst;
        int checked, skipped, nonzero;
        int64_t tensors;
        char worst_name[128] = "";
        CHECK(dirs[d] && !whole_model_check(dirs[d], d == 0, &worst, &checked, &skipped, &nonzero, &tensors, worst_name),
              "%s: model or forward failed", names[d]);
        printf("  whole model (%s): %d coordinates (%d with |g| >= 1e-6) in %lld tensors, %d skipped "
               "(routing flips); max rel err %.2e (%s)\n", names[d], checked, nonzero,
               (long long)tensors, skipped, worst, worst_name);
        CHECK(worst <= 1e-4, "whole-model gradient off: %.3g at %s", worst, worst_name);
        CHECK(checked >= tensors && nonzero >= checked * 9 / 10, "only %d coordinates checked (%d nonzero)",
              checked, nonzero);
    }
    return 0;
}

/* A model without the MTP module trains (mtp 0), saves and reopens. */
static int test_model_without_mtp_trains_and_saves(void) {
    dsv3_model *m = open_model(gen("grad-q", "--seed 6 --dtype fp32 --layers 2 --q-lora-rank 0 --no-mtp --no-tokenizer"));
    CHECK(m, "model");
    int32_t toks[300];
    for (int i = 0; i < 300; i++) toks[i] = (int32_t)((i * 17 + 2) % 1000);
    dsv3_train_opts o;
    dsv3_train_opts_init(&o);
    o.tokens = toks;
    o.n_tokens = 300;
    o.seq_len = 16;
    o.batch = 2;
    dsv3_trainer *t;
    dsv3_err err;
    dsv3_train_metrics r;
    CHECK(!dsv3_trainer_new(&t, m, &o, &err), "%s", err.msg);
    for (int s = 0; s < 2; s++) CHECK(!dsv3_trainer_step(t, &r, &err), "%s", err.msg);
    CHECK(r.mtp == 0.0 && isfinite(r.loss), "mtp %g loss %g", r.mtp, r.loss);
    char out[600];
    snprintf(out, sizeof out, "%s/nomtp-save", tmpdir);
    CHECK(!dsv3_trainer_save(t, out, &err), "%s", err.msg);
    dsv3_model *s = open_model(out);
    CHECK(s && !dsv3_model_has_mtp(s), "saved model");
    dsv3_model_close(s);
    dsv3_trainer_free(t);
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- forward == inference - */

/* Logits and MTP logits of the training forward (double, FP32 master weights) against
 * dsv3_forward / dsv3_forward_mtp on the same weights with backend be:
 * |a - b| <= 1e-5 * max(1, |b|). */
static int compare_with_inference(const char *dir, const dsv3_backend *be, double *worst_main,
                                  double *worst_mtp) {
    dsv3_model *m = open_model(dir);
    if (!m) return 1;
    dsv3_model_set_backend(m, be, NULL);
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t Tn = 24, Bn = 2, Vn = c->vocab_size, H = c->hidden_size;
    dsv3_trainable *tm;
    dsv3_err err;
    if (dsv3_trainable_new(&tm, m, Bn, Tn, &err)) return 1;
    int32_t ids[2 * 25];
    for (int i = 0; i < 50; i++) ids[i] = (int32_t)((i * 37 + 5) % Vn);
    float *lg = malloc((size_t)(Bn * Tn * Vn) * 4), *ml = malloc((size_t)(Bn * Tn * Vn) * 4);
    float *ref = malloc((size_t)(Tn * Vn) * 4), *mref = malloc((size_t)(Tn * Vn) * 4);
    float *hid = malloc((size_t)(Tn * H) * 4);
    int rc = dsv3_trainable_logits(tm, ids, Bn, lg, ml, &err) != DSV3_OK;
    *worst_main = *worst_mtp = 0.0;
    for (int64_t b = 0; b < Bn && !rc; b++) {
        dsv3_run *r;
        dsv3_run_opts o = {.max_seq = Tn, .max_chunk = Tn};
        rc = dsv3_run_new(&r, m, &o, &err) || dsv3_forward(r, ids + b * (Tn + 1), Tn, ref, 0, hid, &err) ||
             dsv3_forward_mtp(r, ids + b * (Tn + 1) + 1, hid, Tn - 1, mref, 0, &err);
        dsv3_run_free(r);
        for (int64_t i = 0; i < Tn * Vn; i++)
            *worst_main = fmax(*worst_main, fabs(lg[b * Tn * Vn + i] - ref[i]) / fmax(1.0, fabs(ref[i])));
        for (int64_t i = 0; i < (Tn - 1) * Vn; i++)
            *worst_mtp = fmax(*worst_mtp, fabs(ml[b * (Tn - 1) * Vn + i] - mref[i]) / fmax(1.0, fabs(mref[i])));
    }
    free(lg), free(ml), free(ref), free(mref), free(hid);
    dsv3_trainable_free(tm);
    dsv3_model_close(m);
    return rc;
}

static int test_training_forward_equals_inference(void) {
    const char *dirs[] = {gen("tiny", "--seed 3"), gen("fp8", "--seed 4 --dtype fp8 --no-tokenizer")};
    const char *names[] = {"bf16", "fp8"}, *backends[] = {"ref", "fast"};
    for (int i = 0; i < 2; i++)
        for (int b = 0; b < 2; b++) {
            double wm, wt;
            CHECK(dirs[i] && !compare_with_inference(dirs[i], dsv3_backend_by_name(backends[b]), &wm, &wt),
                  "%s: forward failed", names[i]);
            printf("  %s, %s backend: logits max diff %.2e, MTP logits %.2e (relative to max(1, |x|))\n",
                   names[i], backends[b], wm, wt);
            CHECK(wm <= 1e-5 && wt <= 1e-5, "%s: training forward differs from inference", names[i]);
        }
    return 0;
}

/* ---------------------------------------------------------------- trainer helpers ------ */

static dsv3_train_opts small_opts(const char *data) {
    dsv3_train_opts o;
    dsv3_train_opts_init(&o);
    o.data_path = data;
    o.seq_len = 16;
    o.batch = 2;
    o.total_steps = 100;
    o.lr = 1e-3;
    return o;
}

static int same_params(dsv3_trainer *a, dsv3_trainer *b, const dsv3_model *m, int64_t *ndiff) {
    (void)m;
    dsv3_train_info ia, ib;
    dsv3_trainer_info(a, &ia);
    dsv3_trainer_info(b, &ib);
    if (ia.n_params != ib.n_params) return 0;
    int64_t n;
    const float *pa = dsv3_trainer_param(a, "model.embed_tokens.weight", &n);
    const float *pb = dsv3_trainer_param(b, "model.embed_tokens.weight", &n);
    /* the flat arrays start at the first tensor (the embedding) */
    *ndiff = 0;
    for (int64_t i = 0; i < ia.n_params; i++)
        if (memcmp(&pa[i], &pb[i], 4)) (*ndiff)++;
    return *ndiff == 0;
}

/* ---------------------------------------------------------------- bias balancing ------- */

/* With the weights frozen (lr 0) and the same batch every step (a token stream of exactly
 * batch sequences), the loads are a function of the biases alone: the bias update must even
 * them out (mean maxvio over the MoE layers: the last 5 of 30 steps against the first step at
 * most half); with gamma 0 the biases stay bit-identical and so do the loads. */
static int run_balance(dsv3_model *m, double gamma, int steps, double *first, double *last,
                       int *bias_same) {
    enum { BT = 2 * 32 + 1 };
    int32_t toks[BT];
    for (int i = 0; i < BT; i++) toks[i] = (int32_t)((i * 7919 + 13) % 1000);
    dsv3_train_opts o = small_opts(NULL);
    o.tokens = toks;
    o.n_tokens = BT;
    o.heldout = 0;
    o.lr = 0.0;
    o.gamma = gamma;
    o.batch = 2;
    o.seq_len = 32;
    dsv3_trainer *t;
    dsv3_err err;
    if (dsv3_trainer_new(&t, m, &o, &err)) {
        printf("  %s\n", err.msg);
        return 1;
    }
    const int64_t nl = dsv3_trainer_moe_layers(t), Ex = dsv3_model_config(m)->n_routed_experts;
    float *b0 = malloc((size_t)(nl * Ex) * 4);
    dsv3_train_layer l;
    for (int64_t i = 0; i < nl; i++) {
        dsv3_trainer_layer(t, i, &l, &err);
        memcpy(b0 + i * Ex, l.bias, (size_t)Ex * 4);
    }
    *first = *last = 0.0;
    if (verbose) printf("    gamma %g:", gamma);
    for (int s = 0; s < steps; s++) {
        dsv3_train_metrics r;
        if (dsv3_trainer_step(t, &r, &err)) {
            printf("  %s\n", err.msg);
            return 1;
        }
        double mean = 0.0;
        for (int64_t i = 0; i < nl; i++) {
            dsv3_trainer_layer(t, i, &l, &err);
            mean += l.maxvio / (double)nl;
        }
        if (verbose) printf(" %.2f", mean);
        if (s == 0) *first = mean;
        if (s >= steps - 5) *last += mean / 5;
    }
    if (verbose) printf("\n");
    *bias_same = 1;
    for (int64_t i = 0; i < nl; i++) {
        dsv3_trainer_layer(t, i, &l, &err);
        if (memcmp(b0 + i * Ex, l.bias, (size_t)Ex * 4)) *bias_same = 0;
    }
    free(b0);
    dsv3_trainer_free(t);
    return 0;
}

static int test_bias_update_evens_loads_and_gamma_zero_freezes(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    CHECK(m, "model");
    double f1, l1, f0, l0;
    int same1, same0;
    CHECK(!run_balance(m, 0.01, 30, &f1, &l1, &same1), "gamma 0.01 run");
    CHECK(!run_balance(m, 0.0, 6, &f0, &l0, &same0), "gamma 0 run");
    printf("  mean maxvio over the MoE layers, step 1 -> mean of the last 5 steps: gamma 0.01 "
           "(30 steps) %.3f -> %.3f; gamma 0 (6 steps) %.3f -> %.3f\n", f1, l1, f0, l0);
    dsv3_model_close(m);
    CHECK(l1 < 0.5 * f1, "gamma > 0 did not even the loads");
    CHECK(fabs(l0 - f0) < 1e-12, "gamma = 0: the loads of a fixed batch changed");
    CHECK(!same1, "gamma > 0 left the biases unchanged");
    CHECK(same0, "gamma = 0 changed a bias");
    return 0;
}

/* ---------------------------------------------------------------- FP8 ------------------ */

/* docs/TRAINING.md "FP8 mixed precision": the FP8 loss curve stays within 0.5% of the FP32 one
 * after warmup (mean over steps; each step within 1%). Same data, same initial weights; the FP8 run
 * must really differ (the mode is on) and learn. */
static int test_fp8_training_stays_close_to_fp32(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    CHECK(m, "model");
    dsv3_train_opts o = small_opts(corpus());
    o.seq_len = 32;
    o.batch = 4;
    o.lr = 3e-3;
    o.warmup = 4;
    o.total_steps = 40;
    enum { STEPS = 16 };
    double loss[2][STEPS];
    dsv3_err err;
    for (int fp8 = 0; fp8 < 2; fp8++) {
        o.fp8 = fp8;
        dsv3_trainer *t;
        CHECK(!dsv3_trainer_new(&t, m, &o, &err), "%s", err.msg);
        for (int s = 0; s < STEPS; s++) {
            dsv3_train_metrics r;
            CHECK(!dsv3_trainer_step(t, &r, &err), "%s", err.msg);
            loss[fp8][s] = r.loss;
        }
        dsv3_trainer_free(t);
    }
    dsv3_model_close(m);
    double worst = 0.0, mean = 0.0, any = 0.0;
    for (int s = 0; s < STEPS; s++) {
        const double gap = fabs(loss[1][s] - loss[0][s]) / loss[0][s];
        any = fmax(any, gap);
        if (s < (int)o.warmup) continue;
        worst = fmax(worst, gap);
        mean += gap / (double)(STEPS - o.warmup);
    }
    printf("  loss FP32 %.4f -> %.4f, FP8 %.4f -> %.4f; relative gap after warmup: mean %.3f%%, "
           "max %.3f%%\n", loss[0][0], loss[0][STEPS - 1], loss[1][0], loss[1][STEPS - 1],
           100 * mean, 100 * worst);
    CHECK(any > 0.0, "FP8 and FP32 runs are identical: the FP8 mode did nothing");
    CHECK(mean < 0.005 && worst < 0.01, "FP8 loss too far from FP32");
    CHECK(loss[1][STEPS - 1] < 0.9 * loss[1][0], "FP8 run did not learn");
    return 0;
}

/* On a dense model (no routing choice that FP8 noise could flip) the FP8 gradient of one batch
 * points where the FP32 one does, tensor by tensor: measured cosines 0.989-0.998, from E4M3's
 * ~3% error per operand compounded along the backward pass. A wrong scale, tile or transpose
 * gives cosines near 0. */
static int test_fp8_gradient_follows_fp32(void) {
    dsv3_model *m = open_model(gen("dense1", "--seed 3 --layers 1 --no-mtp"));
    CHECK(m, "model");
    dsv3_trainable *tm;
    dsv3_err err;
    CHECK(!dsv3_trainable_new(&tm, m, 2, 32, &err), "%s", err.msg);
    const int64_t np = dsv3_trainable_n_params(tm);
    float *g32 = malloc((size_t)np * sizeof *g32);
    int32_t ids[2 * 33];
    for (int i = 0; i < 66; i++) ids[i] = (int32_t)((i * 37 + 11) % 1000);
    double worst = 1.0, total = 0.0;
    for (int fp8 = 0; fp8 < 2; fp8++) {
        CHECK(!dsv3_trainable_set_fp8(tm, fp8, &err) && dsv3_trainable_fp8(tm) == fp8, "set_fp8");
        memset(dsv3_trainable_grads(tm), 0, (size_t)np * sizeof(float));
        dsv3_trainable_losses l;
        CHECK(!dsv3_trainable_forward(tm, ids, 2, 0.3, 1e-4, NULL, NULL, &l, &err), "%s", err.msg);
        CHECK(!dsv3_trainable_backward(tm, 1.0, NULL, &err), "%s", err.msg);
        const float *g = dsv3_trainable_grads(tm);
        if (!fp8) {
            memcpy(g32, g, (size_t)np * sizeof *g32);
            continue;
        }
        double ab = 0, aa = 0, bb = 0;
        for (int64_t ti = 0; ti < dsv3_trainable_n_tensors(tm); ti++) {
            const dsv3_trainable_tensor *x = dsv3_trainable_tensor_at(tm, ti);
            double p = 0, q = 0, r = 0;
            for (int64_t i = x->offset; i < x->offset + x->numel; i++)
                p += (double)g32[i] * g[i], q += (double)g32[i] * g32[i], r += (double)g[i] * g[i];
            const double cs = p / sqrt(q * r + 1e-300);
            if (verbose) printf("    %-50s cosine %.5f\n", x->name, cs);
            worst = fmin(worst, cs);
            ab += p, aa += q, bb += r;
        }
        total = ab / sqrt(aa * bb);
    }
    printf("  FP8 vs FP32 gradient cosine: whole model %.5f, worst tensor %.5f\n", total, worst);
    free(g32);
    dsv3_trainable_free(tm);
    dsv3_model_close(m);
    CHECK(worst > 0.97 && total > 0.99, "FP8 gradient far from FP32");
    return 0;
}

/* ---------------------------------------------------------------- precision ------------ */

/* The float32 compute path (dsv3_trainable_set_precision 32) against double on one batch of the MoE
 * model with MTP: losses within 2e-5 relative, every gradient tensor within 1e-3 relative L2
 * (measured ~1e-6 / ~1e-5: float32 rounding of each product; a routing flip would show as a
 * different route hash). Bad values are refused and leave the precision as it was. */
static int test_precision32_matches_precision64(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    CHECK(m, "model");
    dsv3_trainable *tm;
    dsv3_err err;
    CHECK(!dsv3_trainable_new(&tm, m, 2, 32, &err), "%s", err.msg);
    CHECK(dsv3_trainable_precision(tm) == 64, "the default precision of a tmodel is not 64");
    CHECK(dsv3_trainable_set_precision(tm, 48, &err) == DSV3_EINVAL && dsv3_trainable_precision(tm) == 64,
          "precision 48 accepted");
    printf("    -> %s\n", err.msg);
    const int64_t np = dsv3_trainable_n_params(tm);
    float *g64 = malloc((size_t)np * sizeof *g64);
    int32_t ids[2 * 33];
    for (int i = 0; i < 66; i++) ids[i] = (int32_t)((i * 37 + 11) % 1000);
    dsv3_trainable_losses l[2];
    double worst = 0.0;
    const char *worst_name = "";
    for (int k = 0; k < 2; k++) {
        CHECK(!dsv3_trainable_set_precision(tm, k ? 32 : 64, &err), "%s", err.msg);
        memset(dsv3_trainable_grads(tm), 0, (size_t)np * sizeof(float));
        CHECK(!dsv3_trainable_forward(tm, ids, 2, 0.3, 0.01, NULL, NULL, &l[k], &err), "%s", err.msg);
        CHECK(!dsv3_trainable_backward(tm, 1.0, NULL, &err), "%s", err.msg);
        const float *g = dsv3_trainable_grads(tm);
        if (!k) {
            memcpy(g64, g, (size_t)np * sizeof *g64);
            continue;
        }
        for (int64_t ti = 0; ti < dsv3_trainable_n_tensors(tm); ti++) {
            const dsv3_trainable_tensor *x = dsv3_trainable_tensor_at(tm, ti);
            double d = 0, r = 0;
            for (int64_t i = x->offset; i < x->offset + x->numel; i++)
                d += ((double)g[i] - g64[i]) * ((double)g[i] - g64[i]), r += (double)g64[i] * g64[i];
            const double rel = sqrt(d / (r + 1e-300));
            if (rel > worst) worst = rel, worst_name = x->name;
        }
    }
    const double dl = fabs(l[1].loss - l[0].loss) / l[0].loss, dc = fabs(l[1].ce - l[0].ce) / l[0].ce;
    const double dm = fabs(l[1].mtp - l[0].mtp) / l[0].mtp;
    printf("  precision 32 vs 64: loss %.3g, ce %.3g, mtp %.3g relative; worst gradient tensor %.3g "
           "(%s)\n", dl, dc, dm, worst, worst_name);
    free(g64);
    dsv3_trainable_free(tm);
    dsv3_model_close(m);
    CHECK(l[0].route_hash == l[1].route_hash, "the routing differs between precisions");
    CHECK(dl < 2e-5 && dc < 2e-5 && dm < 2e-5, "precision 32 losses too far from 64");
    CHECK(dl > 0 || dc > 0, "precision 32 gave the double losses bit for bit: the mode did nothing");
    CHECK(worst < 1e-3, "precision 32 gradient too far from 64");
    return 0;
}

/* The heads keep the forward's probabilities when a micro-batch's logits fit (4M doubles) and
 * recompute them 32 rows at a time otherwise. A 65-sequence batch of a 2048-token vocabulary
 * (4.26M logits) takes the recomputing path; its losses and gradients must equal those of the
 * same batch run as 32 + 33 sequences on a model that keeps them (each half's gradient
 * weighted by its share: every loss term is a mean over sequences). */
static int test_head_recompute_equals_kept_probabilities(void) {
    dsv3_model *m = open_model(gen("v2k", "--seed 3 --dtype fp32 --vocab 2048 --layers 2 --no-tokenizer"));
    CHECK(m, "model");
    enum { T = 32, B = 65, B1 = 32 };
    int32_t *ids = malloc((size_t)(B * (T + 1)) * sizeof *ids);
    for (int i = 0; i < B * (T + 1); i++) ids[i] = (int32_t)(test_u64() % 2048);
    dsv3_trainable *big, *half;
    dsv3_err err;
    CHECK(!dsv3_trainable_new(&big, m, B, T, &err) && !dsv3_trainable_new(&half, m, B - B1, T, &err), "%s", err.msg);
    const int64_t np = dsv3_trainable_n_params(big);
    memset(dsv3_trainable_grads(big), 0, (size_t)np * sizeof(float));
    memset(dsv3_trainable_grads(half), 0, (size_t)np * sizeof(float));
    dsv3_trainable_losses lb, l1, l2;
    CHECK(!dsv3_trainable_forward(big, ids, B, 0.3, 0.01, NULL, NULL, &lb, &err), "%s", err.msg);
    CHECK(!dsv3_trainable_backward(big, 1.0, NULL, &err), "%s", err.msg);
    CHECK(!dsv3_trainable_forward(half, ids, B1, 0.3, 0.01, NULL, NULL, &l1, &err), "%s", err.msg);
    CHECK(!dsv3_trainable_backward(half, (double)B1 / B, NULL, &err), "%s", err.msg);
    CHECK(!dsv3_trainable_forward(half, ids + B1 * (T + 1), B - B1, 0.3, 0.01, NULL, NULL, &l2, &err), "%s", err.msg);
    CHECK(!dsv3_trainable_backward(half, (double)(B - B1) / B, NULL, &err), "%s", err.msg);
    const double loss = (B1 * l1.loss + (B - B1) * l2.loss) / B;
    const float *gb = dsv3_trainable_grads(big), *gh = dsv3_trainable_grads(half);
    double worst = 0.0;
    for (int64_t ti = 0; ti < dsv3_trainable_n_tensors(big); ti++) {
        const dsv3_trainable_tensor *x = dsv3_trainable_tensor_at(big, ti);
        double d = 0, r = 0;
        for (int64_t i = x->offset; i < x->offset + x->numel; i++)
            d += ((double)gb[i] - gh[i]) * ((double)gb[i] - gh[i]), r += (double)gh[i] * gh[i];
        if (r > 0) worst = fmax(worst, sqrt(d / r));
    }
    printf("  65 sequences, recomputed heads vs 32 + 33 with kept probabilities: loss %.3g relative, "
           "worst gradient tensor %.3g\n", fabs(lb.loss - loss) / loss, worst);
    free(ids);
    dsv3_trainable_free(big);
    dsv3_trainable_free(half);
    dsv3_model_close(m);
    CHECK(fabs(lb.loss - loss) <= 1e-12 * loss, "losses differ");
    CHECK(worst < 1e-5, "gradients differ: %.3g", worst);
    return 0;
}

/* ---------------------------------------------------------------- resume --------------- */

/* 2N steps in one run == N steps, save, a new trainer resuming from the state, N steps:
 * every parameter and bias bit-identical; the saved directory opens with dsv3_model_open. */
static int test_resume_reproduces_the_uninterrupted_run(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    CHECK(m, "model");
    const int Ns = 3;
    dsv3_train_opts o = small_opts(corpus());
    o.accum = 2;
    o.warmup = 2;
    o.total_steps = 2 * Ns;
    dsv3_err err;
    dsv3_trainer *a, *b, *c;
    dsv3_train_metrics ra, rc;
    CHECK(!dsv3_trainer_new(&a, m, &o, &err), "%s", err.msg);
    for (int s = 0; s < 2 * Ns; s++) CHECK(!dsv3_trainer_step(a, &ra, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_new(&b, m, &o, &err), "%s", err.msg);
    for (int s = 0; s < Ns; s++) CHECK(!dsv3_trainer_step(b, NULL, &err), "%s", err.msg);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/resume-save", tmpdir);
    CHECK(!dsv3_trainer_save(b, dir, &err), "%s", err.msg);
    dsv3_trainer_free(b);
    CHECK(!dsv3_trainer_new(&c, m, &o, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_resume(c, dir, &err), "%s", err.msg);
    dsv3_train_info ic;
    dsv3_trainer_info(c, &ic);
    CHECK(ic.step == Ns, "resumed at step %lld", (long long)ic.step);
    for (int s = 0; s < Ns; s++) CHECK(!dsv3_trainer_step(c, &rc, &err), "%s", err.msg);
    int64_t nd = 0;
    CHECK(same_params(a, c, m, &nd), "%lld parameters differ after resume", (long long)nd);
    CHECK(ra.loss == rc.loss && ra.grad_norm == rc.grad_norm, "last step metrics differ: %.17g %.17g",
          ra.loss, rc.loss);
    dsv3_train_layer la, lc;
    for (int64_t i = 0; i < dsv3_trainer_moe_layers(a); i++) {
        dsv3_trainer_layer(a, i, &la, &err);
        dsv3_trainer_layer(c, i, &lc, &err);
        CHECK(!memcmp(la.bias, lc.bias, (size_t)la.n_experts * 4), "bias of MoE layer %lld differs", (long long)i);
    }
    printf("  %d + save + resume + %d steps == %d steps: all %lld parameters and biases bit-identical\n",
           Ns, Ns, 2 * Ns, (long long)ic.n_params);
    dsv3_model *saved = open_model(dir);
    CHECK(saved, "the saved directory does not open");
    dsv3_model_close(saved);
    dsv3_trainer_free(a);
    dsv3_trainer_free(c);
    dsv3_model_close(m);
    return 0;
}

/* The saved directory opens with dsv3_model_open and holds the trained weights: saved as F32,
 * every tensor (tied MTP copies included) and bias is bit-identical to the trainer's and the
 * logits equal the synced model's; saved in the loaded dtypes, every tensor is the trained one
 * rounded to its dtype (BF16: within 2^-8 relative; FP8 re-quantized with 128x128 blocks:
 * within 2^-4 relative plus 2^-9 of the block scale). */
static int test_saved_model_loads_with_the_trained_weights(void) {
    const char *dirs[] = {gen("tiny", "--seed 3"), gen("fp8", "--seed 4 --dtype fp8 --no-tokenizer")};
    for (int d = 0; d < 2; d++)
        for (int f32 = 1; f32 >= 0; f32--) {
            dsv3_model *m = open_model(dirs[d]);
            CHECK(m, "model");
            dsv3_err err;
            dsv3_train_opts o = small_opts(NULL);
            int32_t toks[400];
            for (int i = 0; i < 400; i++) toks[i] = (int32_t)((i * 29 + 3) % 1000);
            o.tokens = toks;
            o.n_tokens = 400;
            o.save_f32 = f32;
            dsv3_trainer *t;
            CHECK(!dsv3_trainer_new(&t, m, &o, &err), "%s", err.msg);
            for (int s = 0; s < 2; s++) CHECK(!dsv3_trainer_step(t, NULL, &err), "%s", err.msg);
            char out[600];
            snprintf(out, sizeof out, "%s/saved-%d-%d", tmpdir, d, f32);
            CHECK(!dsv3_trainer_save(t, out, &err), "%s", err.msg);
            dsv3_model *s = open_model(out);
            CHECK(s, "saved model does not open");
            dsv3_trainable *tm; /* decodes the saved tensors to FP32 as inference does */
            CHECK(!dsv3_trainable_new(&tm, s, 1, 2, &err), "%s", err.msg);
            const float *sp = dsv3_trainable_params(tm);
            double worst = 0.0;
            const char *worst_name = "";
            for (int64_t i = 0; i < dsv3_trainable_n_tensors(tm); i++) {
                const dsv3_trainable_tensor *x = dsv3_trainable_tensor_at(tm, i);
                int64_t n;
                const float *tp = dsv3_trainer_param(t, x->name, &n);
                CHECK(tp && n == x->numel, "tensor %s", x->name);
                float amax = 0.0f;
                for (int64_t j = 0; j < n; j++) amax = fmaxf(amax, fabsf(tp[j]));
                for (int64_t j = 0; j < n; j++) {
                    const double diff = fabs((double)tp[j] - (double)sp[x->offset + j]);
                    const double tol = f32 ? 0.0
                                     : x->dtype == DSV3_DT_F8_E4M3 ? fabs(tp[j]) / 16 + amax / 448 / 512 * 1.01
                                     : x->dtype == DSV3_DT_BF16 ? fabs(tp[j]) / 256 : 0.0;
                    const double over = diff - tol;
                    if (over > worst) worst = over, worst_name = x->name;
                }
            }
            for (int64_t i = 0; i < dsv3_trainer_moe_layers(t); i++) {
                dsv3_train_layer l;
                dsv3_trainer_layer(t, i, &l, &err);
                CHECK(!memcmp(l.bias, dsv3_model_bias(s, l.layer), (size_t)l.n_experts * 4), "bias %lld", (long long)l.layer);
            }
            dsv3_trainable_free(tm);
            printf("  %s saved as %s: every tensor and bias %s\n", d ? "fp8" : "bf16",
                   f32 ? "F32" : "its loaded dtype", worst <= 0 ? "as expected" : "OFF");
            CHECK(worst <= 0, "%s: saved value beyond its dtype's rounding by %.3g", worst_name, worst);
            if (f32) { /* the synced model and the saved directory compute the same logits */
                CHECK(!dsv3_trainer_sync(t, &err), "%s", err.msg);
                const int64_t Tn = 10, Vn = dsv3_model_config(m)->vocab_size;
                float *a = malloc((size_t)(Tn * Vn) * 4), *b = malloc((size_t)(Tn * Vn) * 4);
                dsv3_run *ra, *rb;
                dsv3_run_opts ro = {.max_seq = Tn, .max_chunk = Tn};
                CHECK(!dsv3_run_new(&ra, m, &ro, &err) && !dsv3_run_new(&rb, s, &ro, &err), "%s", err.msg);
                CHECK(!dsv3_forward(ra, toks, Tn, a, 0, NULL, &err) && !dsv3_forward(rb, toks, Tn, b, 0, NULL, &err),
                      "%s", err.msg);
                CHECK(!memcmp(a, b, (size_t)(Tn * Vn) * 4), "saved model's logits differ from the synced model's");
                dsv3_run_free(ra);
                dsv3_run_free(rb);
                free(a), free(b);
            }
            dsv3_model_close(s);
            dsv3_trainer_free(t);
            dsv3_model_close(m);
        }
    return 0;
}

/* Results do not depend on the number of OpenMP threads: one step with 1 thread and with 2
 * gives bit-identical weights (what makes resume exact on another machine size). */
static int test_step_is_independent_of_thread_count(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    CHECK(m, "model");
    dsv3_err err;
    dsv3_trainer *t[2];
    const int saved = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        dsv3_train_opts o = small_opts(corpus());
        o.seq_len = 64; /* large enough for the parallel paths */
        o.batch = 4;
        CHECK(!dsv3_trainer_new(&t[k], m, &o, &err), "%s", err.msg);
        CHECK(!dsv3_trainer_step(t[k], NULL, &err), "%s", err.msg);
    }
    omp_set_num_threads(saved);
    int64_t nd = 0;
    CHECK(same_params(t[0], t[1], m, &nd), "%lld weights differ between 1 and 2 threads", (long long)nd);
    dsv3_trainer_free(t[0]);
    dsv3_trainer_free(t[1]);
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- sync ----------------- */

/* After sync the inference forward computes with the trained weights (== the trainer's own
 * logits within 1e-5); after free the model is back to its checkpoint bit for bit. */
static int test_sync_shows_trained_weights_and_free_restores(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    CHECK(m, "model");
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t Tn = 16, Vn = c->vocab_size;
    dsv3_err err;
    int32_t ids[17];
    for (int i = 0; i < 17; i++) ids[i] = (int32_t)((i * 53 + 1) % Vn);
    float *before = malloc((size_t)(Tn * Vn) * 4), *after = malloc((size_t)(Tn * Vn) * 4);
    float *mine = malloc((size_t)(Tn * Vn) * 4), *back = malloc((size_t)(Tn * Vn) * 4);
    dsv3_run *r;
    dsv3_run_opts ro = {.max_seq = Tn, .max_chunk = Tn};
    CHECK(!dsv3_run_new(&r, m, &ro, &err), "%s", err.msg);
    CHECK(!dsv3_forward(r, ids, Tn, before, 0, NULL, &err), "%s", err.msg);
    dsv3_train_opts o = small_opts(corpus());
    o.lr = 1e-2;
    dsv3_trainer *t;
    CHECK(!dsv3_trainer_new(&t, m, &o, &err), "%s", err.msg);
    for (int s = 0; s < 3; s++) CHECK(!dsv3_trainer_step(t, NULL, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_sync(t, &err), "%s", err.msg);
    dsv3_run_truncate(r, 0);
    CHECK(!dsv3_forward(r, ids, Tn, after, 0, NULL, &err), "%s", err.msg);
    /* the trainer's own forward on the same ids */
    dsv3_trainable *tm;
    CHECK(!dsv3_trainable_new(&tm, m, 1, Tn, &err), "%s", err.msg); /* built from the synced model */
    CHECK(!dsv3_trainable_logits(tm, ids, 1, mine, NULL, &err), "%s", err.msg);
    dsv3_trainable_free(tm);
    double worst = 0.0, moved = 0.0;
    for (int64_t i = 0; i < Tn * Vn; i++) {
        worst = fmax(worst, fabs(after[i] - mine[i]) / fmax(1.0, fabs(mine[i])));
        moved = fmax(moved, fabs(after[i] - before[i]));
    }
    dsv3_trainer_free(t);
    dsv3_run_truncate(r, 0);
    CHECK(!dsv3_forward(r, ids, Tn, back, 0, NULL, &err), "%s", err.msg);
    dsv3_run_free(r);
    printf("  synced model vs trained forward %.2e; logits moved by %.3f; restored after free: %s\n",
           worst, moved, memcmp(before, back, (size_t)(Tn * Vn) * 4) ? "no" : "bit-exact");
    CHECK(worst <= 1e-5, "synced model does not compute with the trained weights");
    CHECK(moved > 1e-3, "training did not change the logits");
    CHECK(!memcmp(before, back, (size_t)(Tn * Vn) * 4), "free did not restore the model");
    free(before), free(after), free(mine), free(back);
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- learning ------------- */

static int test_loss_decreases_on_repeated_text(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    CHECK(m, "model");
    char text[4096] = "";
    for (int i = 0; i < 30; i++) strcat(text, "the cat sat on the mat. ");
    const char *path = write_text("repeat.txt", text, strlen(text));
    dsv3_train_opts o = small_opts(path);
    o.lr = 3e-3;
    o.warmup = 3;
    o.total_steps = 40;
    o.heldout = 0.1;
    dsv3_trainer *t;
    dsv3_err err;
    CHECK(!dsv3_trainer_new(&t, m, &o, &err), "%s", err.msg);
    dsv3_train_metrics r, first = {0}, ev0, ev1;
    CHECK(!dsv3_trainer_eval(t, &ev0, &err), "%s", err.msg);
    for (int s = 0; s < 40; s++) {
        CHECK(!dsv3_trainer_step(t, &r, &err), "%s", err.msg);
        if (s == 0) first = r;
    }
    CHECK(!dsv3_trainer_eval(t, &ev1, &err), "%s", err.msg);
    printf("  40 steps: train loss %.3f -> %.3f (ce %.3f -> %.3f, mtp %.3f -> %.3f); held-out %.3f -> %.3f; %.0f tok/s\n",
           first.loss, r.loss, first.ce, r.ce, first.mtp, r.mtp, ev0.loss, ev1.loss, r.tokens_per_s);
    CHECK(r.ce < 0.5 * first.ce && r.mtp < 0.7 * first.mtp, "loss did not decrease enough");
    CHECK(ev1.loss < ev0.loss - 1.0, "held-out loss did not decrease");
    dsv3_trainer_free(t);
    dsv3_model_close(m);
    return 0;
}

/* Two micro-batches of 2 sequences give the loss and gradient of one batch of 4. */
static int test_accumulation_matches_one_large_batch(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    CHECK(m, "model");
    dsv3_err err;
    dsv3_train_metrics r[2];
    for (int k = 0; k < 2; k++) {
        dsv3_train_opts o = small_opts(corpus());
        o.batch = k ? 4 : 2;
        o.accum = k ? 1 : 2;
        dsv3_trainer *t;
        CHECK(!dsv3_trainer_new(&t, m, &o, &err), "%s", err.msg);
        CHECK(!dsv3_trainer_step(t, &r[k], &err), "%s", err.msg);
        dsv3_trainer_free(t);
    }
    printf("  accum 2 x 2 vs 1 x 4: loss %.12f / %.12f, grad norm %.12f / %.12f\n", r[0].loss, r[1].loss,
           r[0].grad_norm, r[1].grad_norm);
    CHECK(fabs(r[0].loss - r[1].loss) < 1e-9 && fabs(r[0].grad_norm / r[1].grad_norm - 1) < 1e-6,
          "accumulation differs from the large batch");
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- data ----------------- */

static int test_data_packs_shuffles_and_holds_out(void) {
    int32_t toks[161];
    for (int i = 0; i < 161; i++) toks[i] = i;
    dsv3_data_opts o = {.seq_len = 8, .heldout = 0.1, .seed = 7, .eos_id = 1};
    dsv3_dataset *d;
    dsv3_err err;
    CHECK(!dsv3_data_from_tokens(&d, toks, 161, &o, &err), "%s", err.msg);
    CHECK(dsv3_data_n_train(d) == 18 && dsv3_data_n_heldout(d) == 2, "split %lld + %lld",
          (long long)dsv3_data_n_train(d), (long long)dsv3_data_n_heldout(d));
    int seen[20] = {0}, order0[18], same_order = 1;
    int32_t s[9];
    for (int i = 0; i < 18; i++) {
        dsv3_data_train_seq(d, i, s);
        CHECK(s[0] % 8 == 0 && s[8] == s[0] + 8, "sequence %d is not a packed window", i);
        seen[s[0] / 8]++;
        order0[i] = s[0];
    }
    for (int i = 0; i < 18; i++) CHECK(seen[i] == 1, "epoch 0 visits sequence %d %d times", i, seen[i]);
    for (int i = 0; i < 18; i++) {
        dsv3_data_train_seq(d, 18 + i, s);
        same_order &= s[0] == order0[i];
    }
    CHECK(!same_order, "epoch 1 has the order of epoch 0");
    dsv3_data_heldout_seq(d, 1, s);
    CHECK(s[0] == 152 && s[8] == 160, "held-out sequence 1 starts at %d", s[0]);
    dsv3_data_free(d);
    /* a directory of .txt files: one document each, EOS after each */
    char dir[300], cmd[1400];
    snprintf(dir, sizeof dir, "%s/docs", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && printf 'hello world' > %s/b.txt && printf 'a cat' > %s/a.txt && printf 'x' > %s/skip.md",
             dir, dir, dir, dir);
    CHECK(system(cmd) == 0, "mkdir");
    dsv3_tokenizer *tok;
    CHECK(!dsv3_tokenizer_open(&tok, gen("tiny", "--seed 3"), &err), "%s", err.msg);
    o = (dsv3_data_opts){.seq_len = 2, .heldout = 0, .seed = 1, .eos_id = 1};
    CHECK(!dsv3_data_open_text(&d, tok, dir, &o, &err), "%s", err.msg);
    const int32_t *ts = dsv3_data_tokens(d);
    const int64_t nt = dsv3_data_n_tokens(d);
    int eos = 0;
    for (int64_t i = 0; i < nt; i++) eos += ts[i] == 1;
    CHECK(dsv3_data_n_docs(d) == 2 && ts[nt - 1] == 1 && eos == 2, "docs %lld, eos %d",
          (long long)dsv3_data_n_docs(d), eos);
    dsv3_data_free(d);
    dsv3_tokenizer_close(tok);
    return 0;
}

/* E4M3 encoding is the inverse of the decode table on every finite code; F16 on exact values. */
static int test_checkpoint_encoders_round_trip(void) {
    for (int code = 0; code < 256; code++) {
        if ((code & 0x7f) == 0x7f) continue; /* NaN */
        const float v = dsv3_e4m3_table[code];
        const uint8_t back = dsv3_fp8_encode(v);
        CHECK(back == code || (v == 0.0f && (back & 0x7f) == 0), "e4m3 code 0x%02x -> %g -> 0x%02x", code, v, back);
    }
    CHECK(dsv3_fp8_encode(1000.0f) == 0x7e && dsv3_fp8_encode(-1e30f) == 0xfe, "saturation");
    CHECK(dsv3_fp8_encode(NAN) == 0x7f, "NaN");
    const float vals[] = {1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f, 0.0f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        CHECK(dsv3_f16_to_f32(dsv3_tckpt_f32_to_f16(vals[i])) == vals[i], "f16 %g", vals[i]);
    return 0;
}

/* ---------------------------------------------------------------- bad input ------------ */

static int expect_new_error(dsv3_model *m, dsv3_train_opts *o, const char *needle) {
    dsv3_trainer *t = NULL;
    dsv3_err err = {{0}};
    dsv3_status st = dsv3_trainer_new(&t, m, o, &err);
    printf("    -> %s\n", err.msg);
    dsv3_trainer_free(t);
    return st != DSV3_OK && t == NULL && strstr(err.msg, needle) != NULL;
}

static int test_bad_data_and_options_give_clear_errors(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    CHECK(m, "model");
    dsv3_train_opts o = small_opts(write_text("empty.txt", "", 0));
    CHECK(expect_new_error(m, &o, "no text"), "empty file");
    o.data_path = write_text("binary.bin", "abc\0\x01\x02" "def", 9);
    CHECK(expect_new_error(m, &o, "binary file"), "binary file (NUL)");
    o.data_path = write_text("latin1.txt", "caf\xe9 au lait", 12);
    CHECK(expect_new_error(m, &o, "binary file"), "invalid UTF-8");
    o.data_path = write_text("short.txt", "hi", 2);
    CHECK(expect_new_error(m, &o, "need at least"), "too little text");
    o.data_path = corpus();
    o.seq_len = dsv3_model_config(m)->max_position_embeddings + 1;
    CHECK(expect_new_error(m, &o, "exceeds max_position_embeddings"), "seq_len too long");
    o.seq_len = 16;
    o.data_path = "/nonexistent/data.txt";
    CHECK(expect_new_error(m, &o, "No such file"), "missing file");
    o.data_path = corpus();
    o.batch = 0;
    CHECK(expect_new_error(m, &o, "batch"), "batch 0");
    dsv3_model_close(m);
    return 0;
}

/* A huge learning rate blows the weights up: the step that sees the non-finite loss fails with
 * a clear message, the weights go back to those before the last update (the ones whose loss was
 * still finite), and later steps refuse. A NaN written into a weight is caught the same way. */
static int test_nan_loss_stops_and_keeps_last_good_weights(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    CHECK(m, "model");
    dsv3_err err;
    for (int mode = 0; mode < 2; mode++) {
        dsv3_train_opts o = small_opts(corpus());
        o.lr = mode == 0 ? 1e38 : 1e-3;
        o.clip = 0.0;
        dsv3_trainer *t;
        CHECK(!dsv3_trainer_new(&t, m, &o, &err), "%s", err.msg);
        dsv3_train_info in;
        dsv3_trainer_info(t, &in);
        int64_t n;
        float *p = dsv3_trainer_param(t, "model.embed_tokens.weight", &n); /* offset 0 */
        const size_t bytes = (size_t)in.n_params * 4;
        float *prev = malloc(bytes), *cur = malloc(bytes);
        memcpy(cur, p, bytes);
        memcpy(prev, p, bytes);
        dsv3_status st = DSV3_OK;
        int steps = 0;
        for (; steps < 8 && !st; steps++) {
            if (mode == 1 && steps == 2) {
                float *w = dsv3_trainer_param(t, "model.layers.1.self_attn.o_proj.weight", &n);
                w[5] = NAN;
            }
            memcpy(prev, cur, bytes); /* weights entering the previous step */
            memcpy(cur, p, bytes);    /* weights entering this step */
            st = dsv3_trainer_step(t, NULL, &err);
        }
        printf("    -> %s\n", err.msg);
        CHECK(st == DSV3_EINVAL && strstr(err.msg, "stopped"), "no clear stop (status %d)", st);
        CHECK(dsv3_trainer_failed(t), "not marked failed");
        CHECK(!memcmp(p, prev, bytes), "weights are not those before the last update");
        int64_t finite = 0;
        for (int64_t i = 0; i < in.n_params; i++) finite += isfinite(p[i]) != 0;
        CHECK(finite == in.n_params, "%lld weights not finite after the stop", (long long)(in.n_params - finite));
        CHECK(dsv3_trainer_step(t, NULL, &err) == DSV3_EINVAL, "a step after the stop ran");
        printf("    stopped at step %d; weights = those before the last update\n", steps);
        dsv3_trainer_free(t);
        free(prev);
        free(cur);
    }
    dsv3_model_close(m);
    return 0;
}

/* Resuming from a state written for another model, or from a file that is not a state. */
static int test_resume_refuses_another_config(void) {
    dsv3_model *m = open_model(gen("tiny", "--seed 3"));
    dsv3_model *m2 = open_model(gen("tiny2", "--seed 3 --layers 2"));
    CHECK(m && m2, "models");
    dsv3_err err;
    dsv3_train_opts o = small_opts(corpus());
    dsv3_trainer *t, *u;
    CHECK(!dsv3_trainer_new(&t, m, &o, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_step(t, NULL, &err), "%s", err.msg);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/other-save", tmpdir);
    CHECK(!dsv3_trainer_save(t, dir, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_new(&u, m2, &o, &err), "%s", err.msg);
    dsv3_status st = dsv3_trainer_resume(u, dir, &err);
    printf("    -> %s\n", err.msg);
    CHECK(st == DSV3_EINVAL && strstr(err.msg, "another model") && strstr(err.msg, "num_hidden_layers"),
          "state of another config accepted");
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st = dsv3_trainer_resume(u, path, &err);
    printf("    -> %s\n", err.msg);
    CHECK(st == DSV3_EFORMAT && strstr(err.msg, "not a dsv3 training state"), "a model file accepted");
    o.seq_len = 8;
    dsv3_trainer *w;
    CHECK(!dsv3_trainer_new(&w, m, &o, &err), "%s", err.msg);
    st = dsv3_trainer_resume(w, dir, &err);
    printf("    -> %s\n", err.msg);
    CHECK(st == DSV3_EINVAL && strstr(err.msg, "seq_len"), "another seq_len accepted");
    dsv3_train_info in;
    dsv3_trainer_info(w, &in);
    CHECK(in.step == 0, "a refused resume changed the trainer");
    dsv3_trainer_free(w);
    dsv3_trainer_free(t);
    dsv3_trainer_free(u);
    dsv3_model_close(m);
    dsv3_model_close(m2);
    return 0;
}


/* ---------------------------------------------------------------- FIM data ------------- */

/* Four documents in a directory (read in name order). */
static const char *const k_fim_docs[4] = {
    "def add(a, b):\n    return a + b\n",
    "The quick brown fox jumps over the lazy dog.",
    "h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xc3\xa7\x61 va? 12345",
    "int main(void) { return 0; }\n",
};

static const char *fim_docs_dir(void) {
    static char dir[300];
    snprintf(dir, sizeof dir, "%s/fimdocs", tmpdir);
    mkdir(dir, 0755);
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "fimdocs/%c.txt", 'a' + i);
        if (!write_text(name, k_fim_docs[i], strlen(k_fim_docs[i]))) return NULL;
    }
    return dir;
}

/* Appends the tokenizer's ids of text[0, len) to out (at *n). */
static int enc_into(int32_t *out, int64_t *n, int64_t cap, const dsv3_tokenizer *tok,
                    const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t k = 0;
    dsv3_err err;
    if (dsv3_tokenizer_encode(tok, &ids, &k, text, len, 0, &err) || *n + (int64_t)k > cap) {
        free(ids);
        return 1;
    }
    if (k) memcpy(out + *n, ids, k * sizeof *ids);
    *n += (int64_t)k;
    free(ids);
    return 0;
}

/* The stream the data pipeline must produce, built by hand from the cuts alone: for document d
 * either its plain ids, or begin prefix hole suffix end middle; then EOS. */
static int fim_expected(int32_t *out, int64_t *n, int64_t cap, const dsv3_tokenizer *tok,
                        double rate, uint64_t seed, int *n_fim) {
    dsv3_fim_tokens ft;
    if (dsv3_fim_token_ids(&ft, tok, NULL)) return 1;
    const dsv3_fim_opts fo = {.rate = rate, .seed = seed ^ DSV3_DATA_FIM_SALT};
    *n = 0;
    *n_fim = 0;
    for (int d = 0; d < 4; d++) {
        const char *t = k_fim_docs[d];
        const size_t len = strlen(t);
        const dsv3_fim_cut c = dsv3_fim_draw(&fo, (uint64_t)d, t, len);
        int bad = 0;
        if (c.apply) {
            out[(*n)++] = ft.begin;
            bad |= enc_into(out, n, cap, tok, t, c.prefix_end);
            out[(*n)++] = ft.hole;
            bad |= enc_into(out, n, cap, tok, t + c.middle_end, len - c.middle_end);
            out[(*n)++] = ft.end;
            bad |= enc_into(out, n, cap, tok, t + c.prefix_end, c.middle_end - c.prefix_end);
        } else {
            bad |= enc_into(out, n, cap, tok, t, len);
        }
        if (bad || *n + 8 > cap) return 1;
        out[(*n)++] = dsv3_tokenizer_eos_id(tok);
        *n_fim += c.apply;
    }
    return 0;
}

/* With fim_rate 1 every document of the stream is begin prefix hole suffix end middle EOS with
 * the cuts of dsv3_fim_draw (seed ^ DSV3_DATA_FIM_SALT, document index), the sentinels being
 * the tokenizer's; with rate 0 the stream is the plain ids. The trainer reports the documents
 * rearranged, and its next batch is made of windows of that stream. */
static int test_fim_data_has_the_psm_layout(void) {
    const char *dir = fim_docs_dir(), *mdir = gen("tiny", "--seed 3");
    CHECK(dir && mdir, "setup");
    dsv3_tokenizer *tok;
    dsv3_err err;
    CHECK(!dsv3_tokenizer_open(&tok, mdir, &err), "%s", err.msg);
    int32_t want[1024];
    int64_t nw = 0;
    int n_fim = 0;
    for (int k = 0; k < 2; k++) {
        const double rate = k == 0 ? 1.0 : 0.0;
        dsv3_data_opts o = {.seq_len = 4, .heldout = 0, .seed = 5,
                            .eos_id = dsv3_tokenizer_eos_id(tok), .fim_rate = rate};
        dsv3_dataset *d;
        CHECK(!dsv3_data_open_text(&d, tok, dir, &o, &err), "%s", err.msg);
        CHECK(!fim_expected(want, &nw, 1024, tok, rate, 5, &n_fim), "expected stream");
        CHECK(n_fim == (k == 0 ? 4 : 0), "expected %d documents rearranged", n_fim);
        const int32_t *got = dsv3_data_tokens(d);
        CHECK(dsv3_data_n_tokens(d) == nw, "rate %g: %lld tokens, expected %lld", rate,
              (long long)dsv3_data_n_tokens(d), (long long)nw);
        for (int64_t i = 0; i < nw; i++)
            CHECK(got[i] == want[i], "rate %g: token %lld is %d, expected %d", rate, (long long)i,
                  got[i], want[i]);
        CHECK(dsv3_data_n_fim(d) == n_fim && dsv3_data_n_docs(d) == 4, "counted %lld of %lld",
              (long long)dsv3_data_n_fim(d), (long long)dsv3_data_n_docs(d));
        dsv3_data_free(d);
    }
    /* rate 1 through the trainer: 4 of 4 documents, batches are windows of the stream */
    CHECK(!fim_expected(want, &nw, 1024, tok, 1.0, 9, &n_fim), "expected stream");
    dsv3_model *m = open_model(mdir);
    CHECK(m, "model");
    dsv3_train_opts o = small_opts(dir);
    o.seq_len = 4;
    o.heldout = 0;
    o.seed = 9;
    o.fim_rate = 1;
    dsv3_trainer *t;
    CHECK(!dsv3_trainer_new(&t, m, &o, &err), "%s", err.msg);
    dsv3_train_info in;
    dsv3_trainer_info(t, &in);
    CHECK(in.n_docs == 4 && in.n_fim_docs == 4 && in.n_tokens == nw,
          "info: %lld of %lld, %lld tokens", (long long)in.n_fim_docs, (long long)in.n_docs,
          (long long)in.n_tokens);
    int32_t batch[2 * 5];
    dsv3_trainer_next_batch(t, batch);
    for (int b = 0; b < 2; b++) {
        int found = 0;
        for (int64_t j = 0; j * 4 + 4 < nw && !found; j++)
            found = !memcmp(batch + b * 5, want + j * 4, 5 * sizeof *batch);
        CHECK(found, "sequence %d of the first batch is not a window of the FIM stream", b);
    }
    CHECK(!dsv3_trainer_step(t, NULL, &err), "%s", err.msg);
    printf("  rate 1: 4 of 4 documents in the PSM layout, %lld tokens as laid out by hand; "
           "rate 0: the plain ids\n", (long long)nw);
    dsv3_trainer_free(t);
    dsv3_model_close(m);
    dsv3_tokenizer_close(tok);
    return 0;
}

/* fim_rate 0 leaves the data alone: a trainer on the text and one on the plain token stream
 * (the tokenizer's ids of each document, EOS after each), built here, see the same batches and
 * give bit-identical losses; rate 1 gives other batches. Resume needs the same fim_rate (the
 * same seed then gives the same data: 1 + save + resume + 1 step == 2 steps). */
static int test_fim_rate_zero_trains_bit_identically(void) {
    const char *dir = fim_docs_dir(), *mdir = gen("tiny", "--seed 3");
    CHECK(dir && mdir, "setup");
    dsv3_tokenizer *tok;
    dsv3_err err;
    CHECK(!dsv3_tokenizer_open(&tok, mdir, &err), "%s", err.msg);
    int32_t plain[1024];
    int64_t np = 0;
    int n_fim;
    CHECK(!fim_expected(plain, &np, 1024, tok, 0.0, 1, &n_fim), "plain stream");
    dsv3_model *m = open_model(mdir);
    CHECK(m, "model");
    dsv3_train_opts oa = small_opts(dir), ob = small_opts(NULL), oc = small_opts(dir);
    oa.seq_len = ob.seq_len = oc.seq_len = 4;
    oa.fim_rate = 0;
    ob.tokens = plain;
    ob.n_tokens = np;
    oc.fim_rate = 1;
    dsv3_trainer *a, *b, *c;
    CHECK(!dsv3_trainer_new(&a, m, &oa, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_new(&b, m, &ob, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_new(&c, m, &oc, &err), "%s", err.msg);
    int32_t ba[10], bb[10], bc[10];
    int differ = 0;
    for (int s = 0; s < 3; s++) {
        dsv3_trainer_next_batch(a, ba);
        dsv3_trainer_next_batch(b, bb);
        dsv3_trainer_next_batch(c, bc);
        CHECK(!memcmp(ba, bb, sizeof ba), "step %d: rate 0 batch differs from the plain stream's",
              s + 1);
        differ |= memcmp(ba, bc, sizeof ba) != 0;
        dsv3_train_metrics ra, rb;
        CHECK(!dsv3_trainer_step(a, &ra, &err) && !dsv3_trainer_step(b, &rb, &err) &&
              !dsv3_trainer_step(c, NULL, &err), "%s", err.msg);
        CHECK(ra.loss == rb.loss && ra.ce == rb.ce && ra.mtp == rb.mtp &&
                  ra.grad_norm == rb.grad_norm,
              "step %d: loss %.17g vs %.17g", s + 1, ra.loss, rb.loss);
    }
    CHECK(differ, "rate 1 trained on the same batches as rate 0");
    /* resume with FIM: the same rate continues bit for bit; another rate is refused */
    char sdir[600];
    snprintf(sdir, sizeof sdir, "%s/fim-save", tmpdir);
    dsv3_trainer *d, *e;
    oc.fim_rate = 0.5;
    CHECK(!dsv3_trainer_new(&d, m, &oc, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_step(d, NULL, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_save(d, sdir, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_new(&e, m, &oc, &err), "%s", err.msg);
    CHECK(!dsv3_trainer_resume(e, sdir, &err), "%s", err.msg);
    dsv3_train_metrics rd, re;
    CHECK(!dsv3_trainer_step(d, &rd, &err) && !dsv3_trainer_step(e, &re, &err), "%s", err.msg);
    int64_t nd = 0;
    CHECK(rd.loss == re.loss && same_params(d, e, m, &nd), "resumed FIM run differs (%lld params)",
          (long long)nd);
    dsv3_trainer_free(e);
    CHECK(!dsv3_trainer_new(&e, m, &oa, &err), "%s", err.msg);
    dsv3_status st = dsv3_trainer_resume(e, sdir, &err);
    printf("    -> %s\n", err.msg);
    CHECK(st == DSV3_EINVAL && strstr(err.msg, "fim_rate 0.5"), "another fim_rate accepted");
    printf("  rate 0 == the plain stream for 3 steps (batches and losses bit-identical); rate 1 "
           "differs; FIM resume bit-identical\n");
    dsv3_trainer_free(a);
    dsv3_trainer_free(b);
    dsv3_trainer_free(c);
    dsv3_trainer_free(d);
    dsv3_trainer_free(e);
    dsv3_model_close(m);
    dsv3_tokenizer_close(tok);
    return 0;
}

/* FIM options that cannot work are refused at creation: a rate outside [0, 1], a token stream
 * (no documents), a tokenizer without the FIM tokens (even though a rate this small might
 * rearrange none of the documents). */
static int test_fim_bad_options_give_clear_errors(void) {
    const char *mdir = gen("tiny", "--seed 3");
    dsv3_model *m = open_model(mdir);
    CHECK(m, "model");
    dsv3_train_opts o = small_opts(corpus());
    o.fim_rate = 1.5;
    CHECK(expect_new_error(m, &o, "fim_rate"), "rate 1.5");
    o.fim_rate = NAN;
    CHECK(expect_new_error(m, &o, "fim_rate"), "rate NaN");
    const int32_t toks[40] = {5};
    o = small_opts(NULL);
    o.tokens = toks;
    o.n_tokens = 40;
    o.fim_rate = 0.1;
    CHECK(expect_new_error(m, &o, "needs text documents"), "token stream");
    /* the tiny tokenizer with <｜fim▁begin｜> renamed */
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", mdir);
    size_t got = 0;
    char *json = test_read_file(path, &got);
    CHECK(json, "%s", path);
    for (char *p = json; (p = strstr(p, "fim\xe2\x96\x81" "begin"));)
        memcpy(p, "fim\xe2\x96\x81" "start", 12);
    dsv3_tokenizer *tok = NULL;
    dsv3_err err;
    CHECK(!dsv3_tokenizer_load_json(&tok, json, got, NULL, 0, &err), "%s", err.msg);
    free(json);
    o = small_opts(corpus());
    o.tokenizer = tok;
    o.fim_rate = 1e-9;
    CHECK(expect_new_error(m, &o, "has no <\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c> token"),
          "tokenizer without FIM tokens");
    dsv3_tokenizer_close(tok);
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- runner --------------- */

static const dsv3_test tests[] = {
    {"test_ops_gradients_match_finite_differences", test_ops_gradients_match_finite_differences},
    {"test_model_gradients_match_finite_differences", test_model_gradients_match_finite_differences},
    {"test_model_without_mtp_trains_and_saves", test_model_without_mtp_trains_and_saves},
    {"test_training_forward_equals_inference", test_training_forward_equals_inference},
    {"test_data_packs_shuffles_and_holds_out", test_data_packs_shuffles_and_holds_out},
    {"test_checkpoint_encoders_round_trip", test_checkpoint_encoders_round_trip},
    {"test_accumulation_matches_one_large_batch", test_accumulation_matches_one_large_batch},
    {"test_bias_update_evens_loads_and_gamma_zero_freezes", test_bias_update_evens_loads_and_gamma_zero_freezes},
    {"test_fp8_training_stays_close_to_fp32", test_fp8_training_stays_close_to_fp32},
    {"test_fp8_gradient_follows_fp32", test_fp8_gradient_follows_fp32},
    {"test_precision32_matches_precision64", test_precision32_matches_precision64},
    {"test_head_recompute_equals_kept_probabilities", test_head_recompute_equals_kept_probabilities},
    {"test_resume_reproduces_the_uninterrupted_run", test_resume_reproduces_the_uninterrupted_run},
    {"test_saved_model_loads_with_the_trained_weights", test_saved_model_loads_with_the_trained_weights},
    {"test_step_is_independent_of_thread_count", test_step_is_independent_of_thread_count},
    {"test_sync_shows_trained_weights_and_free_restores", test_sync_shows_trained_weights_and_free_restores},
    {"test_loss_decreases_on_repeated_text", test_loss_decreases_on_repeated_text},
    {"test_bad_data_and_options_give_clear_errors", test_bad_data_and_options_give_clear_errors},
    {"test_nan_loss_stops_and_keeps_last_good_weights", test_nan_loss_stops_and_keeps_last_good_weights},
    {"test_resume_refuses_another_config", test_resume_refuses_another_config},
    {"test_fim_data_has_the_psm_layout", test_fim_data_has_the_psm_layout},
    {"test_fim_rate_zero_trains_bit_identically", test_fim_rate_zero_trains_bit_identically},
    {"test_fim_bad_options_give_clear_errors", test_fim_bad_options_give_clear_errors},
};

int main(int argc, char **argv) {
    verbose = getenv("DSV3_TEST_VERBOSE") != NULL;
    return DSV3_RUN_TESTS_IN_TMPDIR("train", tests, argc, argv);
}
