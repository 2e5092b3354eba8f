/* trainer.h — training a DeepSeek-V3 model on text, one optimizer step at a time.
 *
 * A dsv3_trainer owns everything one training run needs: FP32 master weights loaded from a
 * dsv3_model (any stored dtype), their gradients, AdamW moments, the router biases and their
 * aux-loss-free update, the data (a text file or directory, tokenized, packed and shuffled, with
 * a held-out split), the learning-rate schedule and the metrics of the last step; it saves the
 * model as a Hugging Face checkpoint directory plus a training state from which a run resumes
 * bit for bit. The recipe is docs/ARCHITECTURE.md, "Training": bias update, sequence-wise balance
 * loss, MTP loss, AdamW/clipping/schedule, FP8 (opts.fp8), checkpoints. The forward
 * and backward run from FP32 weights with float32 products (or in double: opts.precision), and
 * with fp8 the block linears in emulated FP8.
 *
 * The loss of a step is the mean over its micro-batches of
 *   ce + lambda * mtp + alpha * balance
 * where ce is the next-token cross-entropy, mtp the MTP module's cross-entropy on the token
 * after next, and balance the sum over MoE layers of sum_i f_i P_i averaged over sequences.
 *
 * The model is only read while training: steps change the trainer's copy. dsv3_trainer_sync
 * makes the model compute with the trained weights; dsv3_trainer_free undoes that.
 * Thread rules: one thread uses a trainer at a time, and no forward pass may run on its model
 * during a trainer call. The library never prints; every failure is a status plus a message
 * "train: ..." (or "data: ...", "checkpoint: ...") in the caller's dsv3_err.
 */
#ifndef DSV3_TRAIN_H
#define DSV3_TRAIN_H

#include <stdint.h>

#include "model/run/model.h"
#include "model/base/status.h"
#include "model/text/tokenizer.h"

typedef struct dsv3_trainer dsv3_trainer;

/* Options. Fill with dsv3_train_opts_init, then change fields. */
typedef struct {
    /* data: give data_path, or tokens (then data_path is NULL), or neither: a trainer without
       data takes its gradients from the caller (dsv3_trainer_update; model/grpo does so) */
    const char *data_path;       /* a UTF-8 text file, or a directory of *.txt files (one
                                    document per file, EOS between documents) */
    const int32_t *tokens;       /* a ready token stream [n_tokens] (copied), or NULL */
    int64_t n_tokens;
    const dsv3_tokenizer *tokenizer; /* tokenizes data_path; NULL: the model directory's
                                        tokenizer.json (not kept after dsv3_trainer_new) */
    double heldout;              /* fraction of sequences held out for evaluation, [0, 0.5];
                                    default 0.05 (at least one sequence when there are two) */
    int64_t seq_len;             /* T, input tokens per sequence; default min(128,
                                    max_position_embeddings) */
    int64_t batch;               /* sequences per micro-batch; default 4 */
    int64_t accum;               /* micro-batches per optimizer step (gradient accumulation);
                                    default 1 */
    uint64_t seed;               /* data order (and the FIM draws); default 1 */
    double fim_rate;             /* Fill-in-Middle (model/text/fim.h): probability that a document
                                    of data_path is rearranged into the PSM layout, in [0, 1];
                                    default 0 (off: the data are bit for bit those of a run
                                    without FIM). The V3 report uses 0.1. Needs the FIM tokens
                                    in the tokenizer; refused with tokens. */
    /* optimizer and schedule (docs/ARCHITECTURE.md, "Optimizer and schedule") */
    double lr;                   /* peak learning rate; default 2.2e-4 */
    double min_lr;               /* end of the cosine decay; default -1 = lr / 10 */
    int64_t warmup;              /* steps of linear warmup from 0; default 0 */
    int64_t total_steps;         /* the schedule's length: cosine from lr (after warmup) to
                                    min_lr at this step, min_lr afterwards; default 1000 */
    double beta1, beta2, eps;    /* AdamW; defaults 0.9, 0.95, 1e-8 */
    double weight_decay;         /* decoupled, on matrices only (not norm gains); default 0.1 */
    double clip;                 /* global gradient L2 norm limit; default 1.0; 0 = none */
    /* losses and balancing */
    double lambda;               /* MTP loss weight; default 0.3 */
    double alpha;                /* sequence-wise balance loss weight; default 1e-4; 0 allowed */
    double gamma;                /* bias update speed; default 0.001; 0 freezes the biases */
    int fp8;                     /* 1: the decoder blocks' linears run FP8 ("FP8 training",
                                    emulated exactly: model/train/fp8.h, dsv3_trainable_set_fp8); default 0 */
    int precision;               /* compute precision of the forward/backward arithmetic
                                    (dsv3_trainable_set_precision): 32 (default: float32 products and
                                    attention, the fast path) or 64 (double throughout: the
                                    reference the gradient checks and the PyTorch float64
                                    cross-check use) */
    /* saving */
    int save_f32;                /* 1: dsv3_trainer_save writes weights as F32 (and drops
                                    quantization_config from config.json); 0 (default): each
                                    weight in the dtype it was loaded from (FP8 re-quantized
                                    with 128x128 blocks) */
    const volatile int *cancel;  /* when *cancel becomes non-zero, the running call stops with
                                    DSV3_EINTR; NULL = none */
} dsv3_train_opts;

/* Fills o with the defaults above (every pointer NULL). */
void dsv3_train_opts_init(dsv3_train_opts *o);

/* What one step (or one evaluation) measured. */
typedef struct {
    int64_t step;        /* optimizer steps done, counting this one (1 after the first step) */
    double loss;         /* ce + lambda * mtp + alpha * balance */
    double ce;           /* next-token cross-entropy (nats per token) */
    double mtp;          /* MTP cross-entropy on the token after next; 0 without MTP */
    double balance;      /* sum over MoE layers of mean_seq sum_i f_i P_i (1 per layer when
                            balanced; reported without alpha) */
    double lr;           /* learning rate used by this step (0 for an evaluation) */
    double grad_norm;    /* global gradient L2 norm before clipping (0 for an evaluation) */
    double maxvio;       /* largest max-load / mean-load - 1 over the MoE layers (0 for eval) */
    int64_t tokens;      /* input tokens processed */
    double seconds;      /* wall time */
    double tokens_per_s; /* tokens / seconds */
} dsv3_train_metrics;

/* One MoE layer's routing in the last step. */
typedef struct {
    int64_t layer;       /* checkpoint layer index (the MTP block: num_hidden_layers) */
    int64_t n_experts;
    const int64_t *load; /* [n_experts] (token, slot) assignments per expert over all
                            micro-batches of the last step */
    const float *bias;   /* [n_experts] router bias after the last update */
    double maxvio;       /* max(load) / mean(load) - 1 */
} dsv3_train_layer;

/* Sizes of a trainer, for reports. */
typedef struct {
    int64_t n_params;        /* trainable FP32 parameters */
    int64_t n_tensors;       /* parameter tensors */
    int64_t n_tokens;        /* tokens in the data stream */
    int64_t n_docs;          /* documents read (0 for a token stream) */
    int64_t n_fim_docs;      /* documents rearranged by FIM (0 when fim_rate is 0) */
    int64_t n_train;         /* training sequences */
    int64_t n_heldout;       /* held-out sequences */
    int64_t step;            /* optimizer steps done */
    int mtp;                 /* 1 when the MTP module is trained */
    int tied_embed, tied_head; /* MTP embedding / head shared with the main ones */
} dsv3_train_info;

/* Creates a trainer for model m (which must outlive it): loads every weight into FP32, reads
 * and packs the data, allocates optimizer state and activations (nothing is allocated during
 * steps). On failure *out is NULL and the status is DSV3_EINVAL (a bad option, seq_len above
 * max_position_embeddings, a non-finite weight naming its tensor, data errors: empty file,
 * binary file, too little text, a token outside the vocabulary, no tokenizer), DSV3_EIO
 * (unreadable data), DSV3_ENOMEM. */
dsv3_status dsv3_trainer_new(dsv3_trainer **out, dsv3_model *m, const dsv3_train_opts *o,
                             dsv3_err *err);

/* Frees the trainer. If dsv3_trainer_sync was called, the model first gets back the weights
 * and biases it had when the trainer was created. NULL is a no-op. */
void dsv3_trainer_free(dsv3_trainer *t);

/* One optimizer step (DSV3_EINVAL for a trainer without data): accum micro-batches of batch sequences (forward, backward, gradients
 * summed in FP32), clipping, AdamW with the scheduled learning rate, then the bias update from
 * the step's expert loads. metrics (may be NULL) receives the step's numbers.
 * Errors: DSV3_EINTR when cancelled (nothing changed: the step can be redone);
 * DSV3_EINVAL when the loss or the gradient norm is not finite: the trainer stops ("failed"),
 * the weights and biases are put back to those of the last step whose loss was finite (the
 * loaded ones if the first step fails), and every later step returns DSV3_EINVAL. */
dsv3_status dsv3_trainer_step(dsv3_trainer *t, dsv3_train_metrics *metrics, dsv3_err *err);

/* One optimizer step from gradients the caller computed: the caller zeroes
 * dsv3_trainable_grads(dsv3_trainer_tmodel(t)), accumulates d(loss)/d(params) into it (e.g. with
 * dsv3_trainable_logp_backward), then calls this: clipping, AdamW at the scheduled learning rate,
 * step + 1; router biases are not changed (no loads were counted). metrics (may be NULL)
 * receives step, lr, grad_norm, seconds. Errors: DSV3_EINVAL when the gradient norm is not
 * finite (the trainer stops as in dsv3_trainer_step, weights unchanged) or after such a stop. */
dsv3_status dsv3_trainer_update(dsv3_trainer *t, dsv3_train_metrics *metrics, dsv3_err *err);

/* The differentiable model the trainer owns (parameters, gradients, activations), for callers
 * of dsv3_trainer_update. Valid until dsv3_trainer_free. */
struct dsv3_trainable *dsv3_trainer_tmodel(dsv3_trainer *t);

/* Loss on the held-out sequences (no gradients, no load counting, weights unchanged):
 * loss, ce, mtp, balance, tokens, seconds. DSV3_EINVAL if there are no held-out sequences
 * (or no data);
 * DSV3_EINTR when cancelled. */
dsv3_status dsv3_trainer_eval(dsv3_trainer *t, dsv3_train_metrics *metrics, dsv3_err *err);

/* Writes dir/ (created if missing): model.safetensors (every weight, in its loaded dtype or
 * F32, the current router biases as e_score_correction_bias, tied MTP copies under both
 * names), config.json and the tokenizer files copied from the model directory, and
 * train_state.safetensors (FP32 master weights, AdamW moments, biases, step, data position,
 * seed) that dsv3_trainer_resume reads. The directory is replaced as a whole
 * (dsv3_tckpt_dir_begin/commit, checkpoint.h): a kill at any moment leaves dir exactly the
 * previous checkpoint or the new one, other regular files in dir are kept, and what killed saves
 * left beside dir is removed. dsv3_model_open can open dir. After a failed step only the model
 * files are written (the last good weights; an older training state is not kept, since it would
 * not match them) and DSV3_OK is returned. Errors: DSV3_EIO, DSV3_EINVAL (dir holds a sharded
 * checkpoint index, is not a directory, or holds a subdirectory, link or special file),
 * DSV3_ENOMEM; on error dir is left as it was. */
dsv3_status dsv3_trainer_save(dsv3_trainer *t, const char *dir, dsv3_err *err);

/* Loads a training state: path is a directory holding train_state.safetensors, or that file.
 * Weights, moments, biases, step and data position are replaced, so the following steps are
 * bit-identical to those of the run that saved it (with the same options and data).
 * Errors (the trainer is then unchanged): DSV3_EIO, DSV3_EFORMAT (not a training state),
 * DSV3_EINVAL (another model: the first differing config key or tensor is named; another
 * seq_len, seed or fim_rate; a state without fim_rate was written with 0). */
dsv3_status dsv3_trainer_resume(dsv3_trainer *t, const char *path, dsv3_err *err);

/* Makes the model compute with the current trained weights and biases: its matrices become
 * FP32 views of a snapshot owned by the trainer (taken now; later steps do not change it until
 * the next sync), its norm gains and biases are overwritten. Runs on the model see it at their
 * next forward (their caches hold positions computed with the old weights). The snapshot lives
 * until dsv3_trainer_free, which restores the model; to keep trained weights beyond the
 * trainer, save them and open the saved directory. DSV3_ENOMEM on the first call if the
 * snapshot cannot be allocated. */
dsv3_status dsv3_trainer_sync(dsv3_trainer *t, dsv3_err *err);

/* The last step's metrics (all zero before the first step). */
const dsv3_train_metrics *dsv3_trainer_last(const dsv3_trainer *t);

/* MoE layers, and layer i's routing statistics of the last step (pointers valid until the next
 * step or free). DSV3_EINVAL for i out of range. */
int64_t dsv3_trainer_moe_layers(const dsv3_trainer *t);
dsv3_status dsv3_trainer_layer(const dsv3_trainer *t, int64_t i, dsv3_train_layer *out,
                               dsv3_err *err);

void dsv3_trainer_info(const dsv3_trainer *t, dsv3_train_info *out);

/* The token ids the next dsv3_trainer_step will train on, in its order: accum micro-batches of
 * batch sequences of seq_len + 1 ids (inputs and next-token targets), written to
 * out[accum * batch * (seq_len + 1)]. Changes nothing (for --dump-tokens and tests that feed
 * another implementation the same data). */
void dsv3_trainer_next_batch(dsv3_trainer *t, int32_t *out);

/* The options in effect. Between steps the caller may change lr, min_lr, warmup, total_steps,
 * weight_decay, clip, lambda, alpha, gamma, fp8, precision and cancel; other fields are fixed at creation. */
dsv3_train_opts *dsv3_trainer_opts(dsv3_trainer *t);

/* The FP32 master weight called name (checkpoint name; a tied MTP copy's name gives the shared
 * tensor), with *numel set; NULL if there is none. Writes change the next step's weights. */
float *dsv3_trainer_param(dsv3_trainer *t, const char *name, int64_t *numel);

/* 1 after a step failed with a non-finite loss (see dsv3_trainer_step). */
int dsv3_trainer_failed(const dsv3_trainer *t);

#endif
