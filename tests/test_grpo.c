/* test_grpo.c — GRPO (model/train/grpo.h): advantages, the token-level loss against hand-computed
 * values and its own finite differences, the whole-model gradient of the GRPO loss against
 * finite differences (docs/ARCHITECTURE.md, "Gradients"), steps that must not move the weights
 * (G = 1, all-equal rewards), the frozen reference, reward errors, and a reward that rises.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/runner.h"
#include "tests/models.h"

#include "model/run/forward.h"
#include "model/train/grpo.h"
#include "model/run/model.h"
#include "model/train/trainer.h"
#include "model/train/trainable.h"


/* ---------------------------------------------------------------- helpers -------------- */


/* FP32 weights, vocab 64, 2 layers (1 dense + 1 MoE), MTP present (GRPO leaves it alone). */
static const char *small_model(void) {
    return gen("small", "--seed 7 --dtype fp32 --layers 2 --vocab 64 --no-tokenizer");
}

/* Rewards for the step tests (ud: a reward_ctx). */
typedef struct {
    int kind; /* 0: constant 1; 1: completion length; 2: fraction of ids < 32; 3: error;
                 4: NaN */
    int calls;
} reward_ctx;

static dsv3_status reward(void *ud, int64_t p, const int32_t *c, int64_t n, double *r,
                          dsv3_err *err) {
    reward_ctx *x = ud;
    x->calls++;
    switch (x->kind) {
    case 0:
        *r = 1.0;
        break;
    case 1:
        *r = (double)n;
        break;
    case 2: {
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++)
            k += c[i] < 32;
        *r = (double)k / (double)n;
        break;
    }
    case 3:
        if (x->calls == 3)
            return dsv3_errf(err, DSV3_EINVAL, "reward: boom at prompt %lld", (long long)p);
        *r = (double)n;
        break;
    default:
        *r = x->calls == 2 ? NAN : 1.0;
    }
    return DSV3_OK;
}

static const int32_t prompt_a[] = {0, 5, 9}, prompt_b[] = {0, 17};
static const int32_t *const prompts[] = {prompt_a, prompt_b};
static const int64_t prompt_lens[] = {3, 2};

static dsv3_grpo *new_run(dsv3_model *m, int64_t group, double lr) {
    dsv3_grpo_opts o;
    dsv3_grpo_opts_init(&o);
    o.group = group;
    o.batch = 2;
    o.max_prompt = 4;
    o.max_tokens = 5;
    o.lr = lr;
    o.eos_id = -1;
    o.seed = 3;
    dsv3_grpo *g = NULL;
    dsv3_err err;
    if (dsv3_grpo_new(&g, m, &o, &err)) printf("  grpo_new: %s\n", err.msg);
    return g;
}

/* ---------------------------------------------------------------- pure pieces ---------- */

static int test_grpo_advantages_are_group_normalised(void) {
    double a[4];
    const double r[4] = {1, 0, 0, 1};
    dsv3_grpo_advantages(a, r, 4);
    const double want = 0.5 / (0.5 + 1e-6); /* mean 0.5, population std 0.5 */
    CHECK(fabs(a[0] - want) < 1e-12 && fabs(a[1] + want) < 1e-12 && a[0] == a[3] && a[1] == a[2],
          "advantages %g %g %g %g, want +-%g", a[0], a[1], a[2], a[3], want);
    const double one[1] = {0.7}, eq[3] = {2.5, 2.5, 2.5};
    double a1[1] = {NAN}, a3[3] = {NAN, NAN, NAN};
    dsv3_grpo_advantages(a1, one, 1);
    dsv3_grpo_advantages(a3, eq, 3);
    CHECK(a1[0] == 0.0, "G = 1: advantage %g, want 0", a1[0]);
    CHECK(a3[0] == 0.0 && a3[1] == 0.0 && a3[2] == 0.0, "all-equal rewards: %g %g %g", a3[0], a3[1],
          a3[2]);
    return 0;
}

/* Two sequences in rows of width T = 4: sequence 0's completion is positions 1..3, sequence 1's
 * position 2. Hand values:
 *   seq 0, A = 1: t1 rho = 1.5 (clipped: surr = 1.2, no ratio gradient), t2 rho = 1, t3 rho = 0.5
 *     (min(0.5, 0.8) = 0.5, unclipped), lp_ref = lp at t1 and t3, lp_ref = lp - ln 2 at t2
 *     (k3 = 1/2 + ln 2 - 1);
 *   seq 1, A = -1: t2 rho = 0.5: min(-0.5, -0.8) = -0.8 clipped, lp_ref = lp + ln 2
 *     (k3 = 2 - ln 2 - 1).
 *   L = -(1/2) [ (1/3)(1.2 + 1 + 0.5 - beta (ln 2 - 1/2)) + (-0.8 - beta (1 - ln 2)) ]
 *   dL/dlp: seq 0 t1: -(1/6)(0 - beta*0) = 0; t2: -(1/6)(1 - beta (1 - 1/2)); t3: -(1/6)(0.5);
 *           seq 1 t2: -(1/2)(0 - beta (1 - 2)) = -(1/2) beta. */
static int test_grpo_loss_matches_hand_computation(void) {
    const int64_t T = 4;
    const double l2 = log(2.0), beta = 0.04, eps = 0.2;
    double lp[8] = {0, -1.0, -2.0, -0.5, 0, 0, -1.5, 0};
    double old[8], ref[8], dl[8];
    memcpy(old, lp, sizeof old);
    memcpy(ref, lp, sizeof ref);
    old[1] = lp[1] - log(1.5);
    old[3] = lp[3] - log(0.5);
    ref[2] = lp[2] - l2;
    old[6] = lp[6] - log(0.5);
    ref[6] = lp[6] + l2;
    const double adv[2] = {1.0, -1.0};
    const int64_t start[2] = {1, 2}, len[2] = {3, 1};
    int64_t clipped = 0;
    const double L =
        dsv3_grpo_loss(dl, &clipped, lp, old, ref, adv, start, len, 2, T, 0.5, eps, beta);
    const double want =
        -0.5 * ((1.2 + 1.0 + 0.5 - beta * (l2 - 0.5)) / 3.0 + (-0.8 - beta * (1.0 - l2)));
    CHECK(fabs(L - want) < 1e-12, "loss %.15g, want %.15g", L, want);
    CHECK(clipped == 2, "%lld clipped tokens, want 2", (long long)clipped);
    const double wd[8] = {0, 0, -(1.0 - beta * 0.5) / 6.0, -0.5 / 6.0, 0, 0, -0.5 * beta, 0};
    for (int k = 0; k < 8; k++)
        CHECK(fabs(dl[k] - wd[k]) < 1e-12, "dL/dlp[%d] = %.15g, want %.15g", k, dl[k], wd[k]);
    /* the same loss, its derivative by central differences (away from the clip kinks) */
    for (int k = 0; k < 8; k++) {
        if (k == 0 || k == 4 || k == 5 || k == 7) continue;
        const double h = 1e-6, x0 = lp[k];
        double tmp[8];
        lp[k] = x0 + h;
        const double Lp =
            dsv3_grpo_loss(tmp, NULL, lp, old, ref, adv, start, len, 2, T, 0.5, eps, beta);
        lp[k] = x0 - h;
        const double Ln =
            dsv3_grpo_loss(tmp, NULL, lp, old, ref, adv, start, len, 2, T, 0.5, eps, beta);
        lp[k] = x0;
        CHECK(fabs((Lp - Ln) / (2 * h) - dl[k]) < 1e-8,
              "position %d: numeric %.10g, analytic %.10g", k, (Lp - Ln) / (2 * h), dl[k]);
    }
    return 0;
}

/* ---------------------------------------------------------------- whole model ---------- */

/* L(theta) = dsv3_grpo_loss(logp_theta, ...) on two sequences of a 2-layer model (dense + MoE):
 * the analytic gradient (dsv3_trainable_logp_backward of dL/dlp) against central differences of L for
 * the largest of 16 random coordinates in every tensor (experts 0-3 only), at temperature 0.8.
 * pi_old and pi_ref are the logp of the unperturbed model shifted by fixed small offsets, so
 * every ratio stays inside the clip range (no kinks). Coordinates whose perturbation changes a
 * routing choice are skipped (the route hash of dsv3_trainable_forward on the same ids). */
static int test_grpo_loss_gradient_matches_finite_differences(void) {
    dsv3_model *m = open_model(small_model());
    CHECK(m, "model");
    const int64_t T = 6, B = 2, V = 64;
    dsv3_trainable *tm;
    dsv3_err err;
    CHECK(!dsv3_trainable_new(&tm, m, B, T, &err), "%s", err.msg);
    int32_t ids[2 * 7];
    for (int i = 0; i < 14; i++)
        ids[i] = (int32_t)((i * 37 + 5) % V);
    const int64_t start[2] = {2, 1}, len[2] = {4, 3};
    const double adv[2] = {0.9, -1.1}, inv_t = 1.0 / 0.8, beta = 0.3, eps = 0.2;
    double lp[12], old[12], ref[12], dl[12], tmp[12];
    CHECK(!dsv3_trainable_logp_forward(tm, ids, B, inv_t, lp, NULL, &err), "%s", err.msg);
    for (int k = 0; k < 12; k++) {
        old[k] = lp[k] + 0.1 * urand();
        ref[k] = lp[k] + 0.5 * urand();
    }
    const double L0 = dsv3_grpo_loss(dl, NULL, lp, old, ref, adv, start, len, B, T, 0.5, eps, beta);
    CHECK(isfinite(L0), "loss %g", L0);
    float *p = dsv3_trainable_params(tm), *g = dsv3_trainable_grads(tm);
    memset(g, 0, (size_t)dsv3_trainable_n_params(tm) * sizeof *g);
    CHECK(!dsv3_trainable_logp_backward(tm, dl, NULL, &err), "%s", err.msg);
    dsv3_trainable_losses base, lq;
    CHECK(!dsv3_trainable_forward(tm, ids, B, 0, 0, NULL, NULL, &base, &err), "%s", err.msg);
    double worst = 0.0;
    char worst_name[160] = "";
    int checked = 0, skipped = 0, nonzero = 0;
    for (int64_t i = 0; i < dsv3_trainable_n_tensors(tm); i++) {
        const dsv3_trainable_tensor *t = dsv3_trainable_tensor_at(tm, i);
        const char *ex = strstr(t->name, "experts.");
        if (ex && !strstr(t->name, "shared_experts") && ex[8] > '3') continue;
        if (strstr(t->name, "layers.2.")) continue; /* the MTP module: no gradient by design */
        int64_t best = -1;
        for (int k = 0; k < 16; k++) {
            int64_t j = t->offset + (int64_t)((urand() + 1.0) * 0.5 * (double)t->numel) % t->numel;
            if (strstr(t->name, "embed_tokens"))
                j = t->offset + (int64_t)ids[k % 13] * t->cols +
                    (int64_t)((urand() + 1.0) * 0.5 * (double)t->cols) % t->cols;
            if (best < 0 || fabsf(g[j]) > fabsf(g[best])) best = j;
        }
        const float x0 = p[best];
        const double h = 1e-3 * fmax(1.0, fabs(x0));
        double Lpm[2], xs[2];
        int flipped = 0;
        for (int s = 0; s < 2; s++) {
            p[best] = (float)(x0 + (s ? -h : h));
            xs[s] = p[best];
            dsv3_trainable_forward(tm, ids, B, 0, 0, NULL, NULL, &lq, &err);
            flipped |= lq.route_hash != base.route_hash;
            dsv3_trainable_logp_forward(tm, ids, B, inv_t, tmp, NULL, &err);
            double dd[12];
            Lpm[s] = dsv3_grpo_loss(dd, NULL, tmp, old, ref, adv, start, len, B, T, 0.5, eps, beta);
        }
        p[best] = x0;
        if (flipped) {
            skipped++;
            continue;
        }
        const double e = relerr(g[best], (Lpm[0] - Lpm[1]) / (xs[0] - xs[1]));
        checked++;
        nonzero += fabsf(g[best]) >= 1e-6f;
        if (e > worst) {
            worst = e;
            snprintf(worst_name, sizeof worst_name, "%s", t->name);
        }
    }
    printf("  %d coordinates (%d with |g| >= 1e-6), %d skipped for a routing flip; worst rel err "
           "%.2e (%s)\n",
           checked, nonzero, skipped, worst, worst_name);
    CHECK(checked >= 20 && nonzero >= 20, "too few coordinates checked");
    CHECK(worst <= 1e-3, "GRPO loss gradient off: %.3g at %s", worst, worst_name);
    /* MTP tensors get no gradient from the GRPO loss */
    const dsv3_trainable_tensor *eh = dsv3_trainable_find(tm, "model.layers.2.eh_proj.weight");
    CHECK(eh, "no MTP eh_proj in the test model");
    for (int64_t j = 0; j < eh->numel; j++)
        CHECK(g[eh->offset + j] == 0.0f, "MTP gradient at %lld", (long long)j);
    dsv3_trainable_free(tm);
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- steps ---------------- */

static int same_weights(dsv3_grpo *g) {
    dsv3_trainer *tr = dsv3_grpo_trainer(g);
    const int64_t n = dsv3_trainable_n_params(dsv3_trainer_tmodel(tr));
    return !memcmp(dsv3_trainable_params(dsv3_trainer_tmodel(tr)), dsv3_grpo_reference(g),
                   (size_t)n * sizeof(float));
}

static int metrics_finite(const dsv3_grpo_metrics *r) {
    return isfinite(r->loss) && isfinite(r->kl) && isfinite(r->reward_mean) &&
           isfinite(r->reward_std) && isfinite(r->grad_norm) && isfinite(r->length);
}

/* Zero advantages everywhere and pi = pi_ref: the gradient is exactly zero, so with weight decay
 * 0 AdamW leaves every weight as it was (bit for bit), and nothing is NaN. */
static int test_grpo_equal_rewards_and_single_completions_do_not_move_weights(void) {
    dsv3_model *m = open_model(small_model());
    CHECK(m, "model");
    const int kinds[2] = {0, 1};
    const int64_t groups[2] = {4, 1};
    for (int c = 0; c < 2; c++) {
        dsv3_grpo *g = new_run(m, groups[c], 1e-2);
        CHECK(g, "grpo_new");
        reward_ctx x = {.kind = kinds[c]};
        dsv3_grpo_metrics r;
        dsv3_err err;
        for (int s = 0; s < 2; s++) {
            CHECK(!dsv3_grpo_step(g, prompts, prompt_lens, 2, reward, &x, &r, &err), "%s", err.msg);
            CHECK(metrics_finite(&r), "case %d: a metric is not finite (loss %g kl %g)", c, r.loss,
                  r.kl);
            CHECK(r.zero_adv == 1.0 && r.grad_norm == 0.0 && r.loss == 0.0 && r.kl == 0.0,
                  "case %d step %d: zero_adv %g grad_norm %g loss %g kl %g", c, s, r.zero_adv,
                  r.grad_norm, r.loss, r.kl);
            CHECK(same_weights(g), "case %d: weights moved with zero advantages", c);
        }
        CHECK(x.calls == 2 * 2 * (int)groups[c], "reward called %d times", x.calls);
        dsv3_grpo_free(g);
    }
    dsv3_model_close(m);
    return 0;
}

/* A reward that varies: the policy moves, the reference does not, the reported KL grows from 0,
 * the reward rises, and freeing the run gives the model its logits back. */
static int test_grpo_reward_rises_and_reference_stays_frozen(void) {
    dsv3_model *m = open_model(small_model());
    CHECK(m, "model");
    dsv3_err err;
    dsv3_run *run;
    CHECK(!dsv3_run_new(&run, m, NULL, &err), "%s", err.msg);
    const int64_t V = 64;
    float before[64], after[64];
    CHECK(!dsv3_forward(run, prompt_a, 3, before, 1, NULL, &err), "%s", err.msg);
    dsv3_grpo *g = new_run(m, 8, 2e-2);
    CHECK(g, "grpo_new");
    const int64_t n = dsv3_trainable_n_params(dsv3_trainer_tmodel(dsv3_grpo_trainer(g)));
    float *ref0 = malloc((size_t)n * sizeof *ref0);
    memcpy(ref0, dsv3_grpo_reference(g), (size_t)n * sizeof *ref0);
    reward_ctx x = {.kind = 2};
    dsv3_grpo_metrics r;
    double first = 0, last = 0, kl_last = 0;
    const int steps = 12;
    for (int s = 0; s < steps; s++) {
        CHECK(!dsv3_grpo_step(g, prompts, prompt_lens, 2, reward, &x, &r, &err), "%s", err.msg);
        CHECK(metrics_finite(&r), "step %d: a metric is not finite", s);
        if (s < 3) first += r.reward_mean / 3;
        if (s >= steps - 3) last += r.reward_mean / 3;
        if (s == 0)
            CHECK(r.kl == 0.0, "KL at the first step %g (the policy is the reference)", r.kl);
        kl_last = r.kl;
    }
    printf("  reward (fraction of ids < 32) %.3f -> %.3f over %d steps, KL %.4f\n", first, last,
           steps, kl_last);
    CHECK(!memcmp(ref0, dsv3_grpo_reference(g), (size_t)n * sizeof *ref0),
          "the reference weights changed");
    CHECK(!same_weights(g), "the policy did not move");
    CHECK(kl_last > 0.0, "KL %g after %d steps", kl_last, steps);
    CHECK(last > first + 0.1, "reward did not rise: %.3f -> %.3f", first, last);
    int64_t cn = 0;
    double cr = NAN;
    const int32_t *cid = dsv3_grpo_completion(g, 1, 7, &cn, &cr, NULL);
    CHECK(cid && cn == 5 && isfinite(cr) && !dsv3_grpo_completion(g, 2, 0, NULL, NULL, NULL),
          "completion access");
    /* the sampling model computes with the policy: logits differ from before */
    dsv3_run_truncate(run, 0);
    CHECK(!dsv3_forward(run, prompt_a, 3, after, 1, NULL, &err), "%s", err.msg);
    CHECK(memcmp(before, after, sizeof before),
          "the model does not compute with the trained weights");
    dsv3_grpo_free(g);
    dsv3_run_truncate(run, 0);
    CHECK(!dsv3_forward(run, prompt_a, 3, after, 1, NULL, &err), "%s", err.msg);
    CHECK(!memcmp(before, after, (size_t)V * sizeof(float)),
          "freeing the run did not restore the model");
    free(ref0);
    dsv3_run_free(run);
    dsv3_model_close(m);
    return 0;
}

/* inner = 3 optimizer steps per sampled batch at a large learning rate: after the first, the
 * ratios to pi_old leave [1 - eps, 1 + eps] and some tokens are clipped; the loss at the first
 * inner step is taken at rho = 1, so it equals -(1/N) sum_i A_i (mean over tokens of A_i) +
 * beta * KL-term = 0 + 0 at the first step (advantages sum to 0 per group, pi = pi_ref). */
static int test_grpo_inner_steps_clip_ratios(void) {
    dsv3_model *m = open_model(small_model());
    CHECK(m, "model");
    dsv3_grpo *g = new_run(m, 8, 5e-2);
    CHECK(g, "grpo_new");
    dsv3_grpo_opts_of(g)->inner = 3;
    reward_ctx x = {.kind = 2};
    dsv3_grpo_metrics r;
    dsv3_err err;
    CHECK(!dsv3_grpo_step(g, prompts, prompt_lens, 2, reward, &x, &r, &err), "%s", err.msg);
    CHECK(metrics_finite(&r), "a metric is not finite");
    CHECK(fabs(r.loss) < 1e-12, "first-step loss %g, want 0 (rho = 1, advantages sum to 0)",
          r.loss);
    CHECK(r.clip_frac > 0.0 && r.clip_frac < 1.0, "clip fraction %g", r.clip_frac);
    CHECK(!same_weights(g), "the policy did not move");
    dsv3_grpo_free(g);
    dsv3_model_close(m);
    return 0;
}

/* A reward function that fails, or returns NaN: the step fails with its message and the
 * weights stay; bad prompts are refused with a message. */
static int test_grpo_reward_errors_leave_weights_unchanged(void) {
    dsv3_model *m = open_model(small_model());
    CHECK(m, "model");
    dsv3_grpo *g = new_run(m, 4, 1e-2);
    CHECK(g, "grpo_new");
    dsv3_err err = {{0}};
    reward_ctx x = {.kind = 3};
    CHECK(dsv3_grpo_step(g, prompts, prompt_lens, 2, reward, &x, NULL, &err) == DSV3_EINVAL &&
              strstr(err.msg, "boom at prompt 0"),
          "reward error: '%s'", err.msg);
    CHECK(same_weights(g), "weights moved after a reward error");
    reward_ctx y = {.kind = 4};
    CHECK(dsv3_grpo_step(g, prompts, prompt_lens, 2, reward, &y, NULL, &err) == DSV3_EINVAL &&
              strstr(err.msg, "prompt 0 completion 1: the reward is nan"),
          "NaN reward: '%s'", err.msg);
    CHECK(same_weights(g), "weights moved after a NaN reward");
    const int64_t long_len[1] = {5};
    CHECK(dsv3_grpo_step(g, prompts, long_len, 1, reward, &y, NULL, &err) == DSV3_EINVAL &&
              strstr(err.msg, "prompt 0 has 5 tokens (allowed 1..4)"),
          "long prompt: '%s'", err.msg);
    CHECK(dsv3_grpo_step(g, prompts, prompt_lens, 3, reward, &y, NULL, &err) == DSV3_EINVAL,
          "3 prompts with batch 2 accepted");
    const int32_t bad[2] = {0, 64};
    const int32_t *const bp[1] = {bad};
    const int64_t bl[1] = {2};
    CHECK(dsv3_grpo_step(g, bp, bl, 1, reward, &y, NULL, &err) == DSV3_EINVAL &&
              strstr(err.msg, "id 64"),
          "bad id: '%s'", err.msg);
    dsv3_grpo_free(g);
    dsv3_grpo_opts o;
    dsv3_grpo_opts_init(&o);
    o.max_tokens = 600;
    dsv3_grpo *bad_run = NULL;
    CHECK(dsv3_grpo_new(&bad_run, m, &o, &err) == DSV3_EINVAL && !bad_run &&
              strstr(err.msg, "max_position_embeddings"),
          "too long: '%s'", err.msg);
    dsv3_grpo_opts_init(&o);
    o.eps = -1;
    CHECK(dsv3_grpo_new(&bad_run, m, &o, &err) == DSV3_EINVAL && strstr(err.msg, "eps"),
          "eps: '%s'", err.msg);
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- runner --------------- */

static const dsv3_test tests[] = {
    {"test_grpo_advantages_are_group_normalised", test_grpo_advantages_are_group_normalised},
    {"test_grpo_loss_matches_hand_computation", test_grpo_loss_matches_hand_computation},
    {"test_grpo_loss_gradient_matches_finite_differences",
     test_grpo_loss_gradient_matches_finite_differences},
    {"test_grpo_equal_rewards_and_single_completions_do_not_move_weights",
     test_grpo_equal_rewards_and_single_completions_do_not_move_weights},
    {"test_grpo_reward_rises_and_reference_stays_frozen",
     test_grpo_reward_rises_and_reference_stays_frozen},
    {"test_grpo_inner_steps_clip_ratios", test_grpo_inner_steps_clip_ratios},
    {"test_grpo_reward_errors_leave_weights_unchanged",
     test_grpo_reward_errors_leave_weights_unchanged},
};

int main(int argc, char **argv) {
    return DSV3_RUN_TESTS_IN_TMPDIR("grpo", tests, argc, argv);
}
