/* grpo.h — GRPO (group relative policy optimization) on a DeepSeek-V3 model, one step at a time.
 *
 * A dsv3_grpo owns one RL run: a trainer without data (model/train/trainer.h: FP32 master weights,
 * AdamW, clipping, save), a frozen copy of the weights it started from (the reference policy
 * pi_ref), a run of the inference model for sampling, and the buffers of one step. A step takes
 * a batch of prompts, samples a group of G completions per prompt with the current policy
 * (temperature sampling on the inference model, which computes with the trained weights),
 * scores each completion with the caller's reward function, turns the rewards into
 * group-normalised advantages, and takes `inner` optimizer steps on the token-level GRPO loss of
 * docs/TRAINING.md, "GRPO" (DeepSeekMath):
 *
 *   L = -(1/N) sum_i (1/|o_i|) sum_t [ min(rho_it A_i, clip(rho_it, 1-eps, 1+eps) A_i)
 *                                       - beta * k3_it ]
 *   rho_it = pi(o_it | q, o_i<t) / pi_old(o_it | ...),  A_i = (r_i - mean_g r) / (std_g r + 1e-6)
 *   k3_it  = pi_ref/pi - log(pi_ref/pi) - 1   (per token, >= 0)
 *
 * with N the completions of the step, std the population standard deviation of the prompt's
 * group, pi_old the policy that sampled (so rho = 1 in value at the first inner step, while its
 * gradient flows), and A = 0 for a group whose rewards are all equal (G = 1 included).
 * Probabilities are taken at the sampling temperature. The main head only is trained; MTP and
 * the router biases are left as they are.
 *
 * The library knows no text and no Lua: prompts and completions are token ids, the reward is a
 * callback. Thread rules: one thread uses a dsv3_grpo at a time; no forward pass may run on its
 * model during a call. While the run lives, the model computes with the run's current weights
 * (after each step); dsv3_grpo_free gives it back the weights it had at dsv3_grpo_new.
 */
#ifndef DSV3_GRPO_H
#define DSV3_GRPO_H

#include <stdint.h>

#include "model/run/model.h"
#include "model/base/status.h"
#include "model/train/trainer.h"

typedef struct dsv3_grpo dsv3_grpo;

/* Scores completion [n] (token ids, the EOS token included when sampling stopped on it) of
 * prompt number `prompt` of the current step (an index into the prompts given to
 * dsv3_grpo_step) into *reward. Return DSV3_OK, or a status with err filled: the step then
 * stops before any weight changes and returns that status. */
typedef dsv3_status (*dsv3_reward_fn)(void *ud, int64_t prompt, const int32_t *completion,
                                      int64_t n, double *reward, dsv3_err *err);

/* Options. Fill with dsv3_grpo_opts_init, then change fields. */
typedef struct {
    int64_t group;       /* G, completions per prompt; default 8 (1 allowed: A = 0) */
    int64_t batch;       /* most prompts per step; default 2 */
    int64_t max_prompt;  /* most prompt tokens (sizes the buffers); default 32 */
    int64_t max_tokens;  /* most completion tokens (sampling stops there or at EOS); default 16 */
    int64_t micro;       /* sequences per forward/backward pass; default 0 = group */
    int64_t inner;       /* optimizer steps per sampled batch (pi_old fixed); default 1 */
    double temperature;  /* sampling temperature, > 0; default 1 */
    double beta;         /* KL weight; default 0.04 */
    double eps;          /* ratio clip; default 0.2 */
    double lr;           /* AdamW learning rate (constant); default 1e-4 */
    double weight_decay; /* default 0: a zero gradient leaves the weights */
    double clip;         /* global gradient-norm limit; default 1.0; 0 = none */
    uint64_t seed;       /* sampling RNG; default 1 (same seed, same options: same run) */
    int32_t eos_id;      /* stops a completion; default -2 = the model's eos_token_id; -1 = never */
    int save_f32;        /* dsv3_grpo_save writes F32 weights (see dsv3_train_opts.save_f32) */
    const volatile int *cancel; /* non-zero: the running step stops with DSV3_EINTR; NULL = none */
} dsv3_grpo_opts;

void dsv3_grpo_opts_init(dsv3_grpo_opts *o);

/* What one step measured. */
typedef struct {
    int64_t step;        /* steps done, counting this one */
    int64_t completions; /* N = prompts * group */
    double reward_mean;  /* mean reward over the N completions */
    double reward_std;   /* population std over the N completions */
    double reward_max;
    double kl;             /* mean over completion tokens of k3 (pi_ref vs the sampling policy) */
    double length;         /* mean completion length in tokens */
    double loss;           /* L at the first inner step (before any update of this step) */
    double clip_frac;      /* fraction of completion tokens whose ratio was clipped (inner > 1) */
    double grad_norm;      /* gradient L2 norm of the last inner step, before clipping */
    double zero_adv;       /* fraction of completions with advantage 0 (all-equal groups) */
    int64_t tokens;        /* completion tokens sampled */
    double sample_seconds; /* sampling and scoring */
    double seconds;        /* the whole step */
    double tokens_per_s;   /* tokens / seconds */
} dsv3_grpo_metrics;

/* Creates a run on m (which must outlive it): loads the weights into FP32 (the policy and the
 * frozen reference, both equal to m's current weights), allocates everything a step needs.
 * Errors (*out NULL): DSV3_EINVAL (an option out of range, max_prompt + max_tokens above
 * max_position_embeddings), DSV3_ENOMEM. */
dsv3_status dsv3_grpo_new(dsv3_grpo **out, dsv3_model *m, const dsv3_grpo_opts *o, dsv3_err *err);

/* Gives the model back its weights and frees the run. NULL is a no-op. */
void dsv3_grpo_free(dsv3_grpo *g);

/* One GRPO step on prompts[0..n_prompts) (prompt p: prompts[p][0..prompt_lens[p]), at least one
 * token, at most max_prompt; n_prompts <= batch), rewards from fn. metrics may be NULL.
 * On success the model computes with the updated weights. Errors: DSV3_EINVAL (bad prompts, a
 * non-finite reward naming prompt and completion, a non-finite gradient: the run then stops as
 * a trainer does), the reward function's status, DSV3_EINTR when cancelled. On every error
 * before the optimizer update the weights are those of the previous step. */
dsv3_status dsv3_grpo_step(dsv3_grpo *g, const int32_t *const *prompts, const int64_t *prompt_lens,
                           int64_t n_prompts, dsv3_reward_fn fn, void *ud,
                           dsv3_grpo_metrics *metrics, dsv3_err *err);

/* Completion c (0 <= c < group) of prompt p of the last step: its ids (*n of them) and reward
 * and advantage (either pointer may be NULL). NULL when there is no such completion. */
const int32_t *dsv3_grpo_completion(const dsv3_grpo *g, int64_t p, int64_t c, int64_t *n,
                                    double *reward, double *advantage);

/* Writes the current policy as a model directory (dsv3_trainer_save: loadable by every
 * command; its train_state is the trainer's, not a GRPO resume point). */
dsv3_status dsv3_grpo_save(dsv3_grpo *g, const char *dir, dsv3_err *err);

/* The options in effect; between steps the caller may change lr, beta, eps, temperature,
 * weight_decay, clip, inner and cancel. */
dsv3_grpo_opts *dsv3_grpo_opts_of(dsv3_grpo *g);

/* The trainer (policy weights: dsv3_trainer_param) and the reference weights
 * [dsv3_trainable_n_params] (read-only: the frozen policy of dsv3_grpo_new). */
dsv3_trainer *dsv3_grpo_trainer(dsv3_grpo *g);
const float *dsv3_grpo_reference(const dsv3_grpo *g);

/* ---- the pieces of a step, for tests and for other RL losses ---- */

/* adv[i] = (r[i] - mean) / (std + 1e-6) over one group r[0..G) (population std); all 0 when the
 * rewards are all equal (G = 1 included). */
void dsv3_grpo_advantages(double *adv, const double *r, int64_t G);

/* The loss L above for n sequences laid out as rows of width T (row i holds the per-position
 * log-probabilities lp / lp_old / lp_ref of sequence i; its completion tokens are positions
 * start[i] .. start[i] + len[i] - 1, each len[i] >= 1), with 1/N = inv_n. Writes
 * dlogp[i*T + t] = dL/dlp (0 outside completions) and returns this part of L; *clipped
 * (may be NULL) += tokens whose min() took the clipped branch with a different value. */
double dsv3_grpo_loss(double *dlogp, int64_t *clipped, const double *lp, const double *lp_old,
                      const double *lp_ref, const double *adv, const int64_t *start,
                      const int64_t *len, int64_t n, int64_t T, double inv_n, double eps,
                      double beta);

#endif
