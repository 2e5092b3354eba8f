/* train.c — `dsv3 train MODEL_DIR --data PATH --steps N [options]`
 *
 * Trains the model in MODEL_DIR on a text file or a directory of .txt files (model/train/trainer.h) and
 * prints one line per optimizer step: step, loss, ce, mtp, balance, lr, grad norm, maxvio,
 * tokens/s; with --eval-every K an "eval" line every K steps and at the end; with --loads one
 * "loads" line per MoE layer and step. --save writes a model directory (loadable by every other
 * command) plus train_state.safetensors at the end (and every --save-every steps); --resume
 * continues such a run bit for bit. --fim-rate R rearranges each document with probability R
 * into the Fill-in-Middle PSM layout (model/text/fim.h); --dump-tokens FILE writes the ids every
 * step trains on (one sequence of seq_len + 1 ids per line). Ctrl-C stops after the current
 * micro-batch and, with --save, saves the last completed step. Exit status: 0 done, 1 an error
 * (one line on stderr), 2 usage, 130 interrupted.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/run/model.h"
#include "model/train/trainer.h"
#include "repl/cli/cli.h"

static const char usage[] =
    "usage: dsv3 train MODEL_DIR --data PATH --steps N [--lr LR] [--min-lr LR] [--warmup W]\n"
    "                  [--seq-len T] [--batch B] [--accum A] [--gamma G] [--alpha A]\n"
    "                  [--lambda L] [--seed S] [--heldout F] [--weight-decay WD] [--clip C]\n"
    "                  [--save OUT_DIR] [--save-every K] [--save-f32] [--resume STATE]\n"
    "                  [--stop-at K] [--eval-every K] [--loads] [--fp8] [--fim-rate R]\n"
    "                  [--precision 32|64] [--dump-tokens FILE]\n"
    "  --steps N is the schedule's length: a resumed run continues up to step N;\n"
    "  --stop-at K ends this invocation after step K (to continue later with --resume).\n"
    "  --precision 32 (default) sums products and attention in float32; 64 computes in double.\n";

static volatile int interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static void print_step(const dsv3_train_metrics *r, int64_t total, const dsv3_trainer *t,
                       int loads) {
    printf("step %lld/%lld loss %.4f ce %.4f mtp %.4f balance %.4f lr %.3e gnorm %.4f maxvio %.3f "
           "tok/s %.0f\n",
           (long long)r->step, (long long)total, r->loss, r->ce, r->mtp, r->balance, r->lr,
           r->grad_norm, r->maxvio, r->tokens_per_s);
    for (int64_t i = 0; loads && i < dsv3_trainer_moe_layers(t); i++) {
        dsv3_train_layer l;
        dsv3_err e;
        if (dsv3_trainer_layer(t, i, &l, &e)) continue;
        printf("  loads layer %lld maxvio %.3f:", (long long)l.layer, l.maxvio);
        for (int64_t k = 0; k < l.n_experts; k++) printf(" %lld", (long long)l.load[k]);
        printf("\n");
    }
    fflush(stdout);
}

/* Appends the sequences of the coming step to f, one line "step S seq I: id id ..." each. */
static dsv3_status dump_batch(FILE *f, dsv3_trainer *t, int32_t *buf, int64_t step,
                              dsv3_err *err) {
    const dsv3_train_opts *o = dsv3_trainer_opts(t);
    const int64_t n = o->accum * o->batch, T = o->seq_len;
    dsv3_trainer_next_batch(t, buf);
    for (int64_t i = 0; i < n; i++) {
        fprintf(f, "step %lld seq %lld:", (long long)step, (long long)i);
        for (int64_t k = 0; k <= T; k++) fprintf(f, " %d", buf[i * (T + 1) + k]);
        fputc('\n', f);
    }
    if (fflush(f) != 0 || ferror(f))
        return dsv3_errf(err, DSV3_EIO, "--dump-tokens: cannot write: %s", strerror(errno));
    return DSV3_OK;
}

static dsv3_status do_eval(dsv3_trainer *t, dsv3_err *err) {
    dsv3_train_metrics r;
    dsv3_status st = dsv3_trainer_eval(t, &r, err);
    if (st) return st;
    printf("eval step %lld loss %.4f ce %.4f mtp %.4f balance %.4f (%lld held-out tokens)\n",
           (long long)r.step, r.loss, r.ce, r.mtp, r.balance, (long long)r.tokens);
    fflush(stdout);
    return DSV3_OK;
}

int dsv3_cli_train(int argc, char **argv) {
    const char *dir = NULL, *save = NULL, *resume = NULL, *dump = NULL;
    long long steps = -1, eval_every = 0, save_every = 0, stop_at = -1;
    int loads = 0;
    dsv3_train_opts o;
    dsv3_train_opts_init(&o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        long long *cnt = NULL;
        int64_t *cnt64 = NULL;
        double *num = NULL;
        if (!strcmp(a, "--data") && v) o.data_path = argv[++i];
        else if (!strcmp(a, "--save") && v) save = argv[++i];
        else if (!strcmp(a, "--resume") && v) resume = argv[++i];
        else if (!strcmp(a, "--dump-tokens") && v) dump = argv[++i];
        else if (!strcmp(a, "--save-f32")) o.save_f32 = 1;
        else if (!strcmp(a, "--fp8")) o.fp8 = 1;
        else if (!strcmp(a, "--loads")) loads = 1;
        else if (!strcmp(a, "--steps") && v) cnt = &steps;
        else if (!strcmp(a, "--eval-every") && v) cnt = &eval_every;
        else if (!strcmp(a, "--save-every") && v) cnt = &save_every;
        else if (!strcmp(a, "--stop-at") && v) cnt = &stop_at;
        else if (!strcmp(a, "--seq-len") && v) cnt64 = &o.seq_len;
        else if (!strcmp(a, "--batch") && v) cnt64 = &o.batch;
        else if (!strcmp(a, "--accum") && v) cnt64 = &o.accum;
        else if (!strcmp(a, "--warmup") && v) cnt64 = &o.warmup;
        else if (!strcmp(a, "--lr") && v) num = &o.lr;
        else if (!strcmp(a, "--min-lr") && v) num = &o.min_lr;
        else if (!strcmp(a, "--gamma") && v) num = &o.gamma;
        else if (!strcmp(a, "--alpha") && v) num = &o.alpha;
        else if (!strcmp(a, "--lambda") && v) num = &o.lambda;
        else if (!strcmp(a, "--heldout") && v) num = &o.heldout;
        else if (!strcmp(a, "--weight-decay") && v) num = &o.weight_decay;
        else if (!strcmp(a, "--clip") && v) num = &o.clip;
        else if (!strcmp(a, "--fim-rate") && v) num = &o.fim_rate;
        else if (!strcmp(a, "--precision") && v) {
            const char *p = argv[++i];
            ok = !strcmp(p, "32") || !strcmp(p, "64");
            o.precision = ok ? atoi(p) : o.precision;
        } else if (!strcmp(a, "--seed") && v) {
            long long s = dsv3_cli_parse_count(argv[++i]);
            ok = s >= 0;
            o.seed = (uint64_t)s;
        } else if (a[0] != '-' && !dir) dir = a;
        else {
            fprintf(stderr, "dsv3 train: unknown or incomplete option '%s'\n%s", a, usage);
            return 2;
        }
        if (cnt || cnt64) {
            long long c = dsv3_cli_parse_count(argv[++i]);
            ok = c >= 0;
            if (cnt) *cnt = c;
            else *cnt64 = c;
        } else if (num) {
            *num = dsv3_cli_parse_num(argv[++i], &ok);
            if (num == &o.fim_rate) ok = ok && o.fim_rate >= 0 && o.fim_rate <= 1;
        }
        if (!ok) {
            fprintf(stderr, "dsv3 train: %s: '%s' is not a valid value\n", a, argv[i]);
            return 2;
        }
    }
    if (!dir || !o.data_path || steps < 0) {
        fprintf(stderr, "dsv3 train: MODEL_DIR, --data and --steps are required\n%s", usage);
        return 2;
    }
    o.total_steps = steps > 0 ? steps : 1;
    o.cancel = &interrupted;
    dsv3_err err = {{0}};
    dsv3_model *m = NULL;
    dsv3_trainer *t = NULL;
    FILE *dump_f = NULL;
    int32_t *dump_buf = NULL;
    int rc = 1;
    if (dsv3_model_open(&m, dir, &err)) goto fail;
    fputs(dsv3_model_warnings(m), stderr);
    if (dsv3_trainer_new(&t, m, &o, &err)) goto fail;
    if (resume && dsv3_trainer_resume(t, resume, &err)) goto fail;
    const dsv3_train_opts *eo = dsv3_trainer_opts(t);
    dsv3_train_info in;
    dsv3_trainer_info(t, &in);
    printf("train %s: %lld parameters in %lld tensors%s; data %s: %lld tokens, %lld documents, "
           "%lld train + %lld held-out sequences of %lld\n",
           dir, (long long)in.n_params, (long long)in.n_tensors,
           !in.mtp ? ", no MTP" : in.tied_embed && in.tied_head ? ", MTP (embedding and head shared)"
                                                                : ", MTP (own embedding or head)",
           o.data_path, (long long)in.n_tokens, (long long)in.n_docs, (long long)in.n_train,
           (long long)in.n_heldout, (long long)eo->seq_len);
    if (eo->fim_rate > 0)
        printf("fim rate %g: %lld of %lld documents in the PSM layout\n", eo->fim_rate,
               (long long)in.n_fim_docs, (long long)in.n_docs);
    printf("batch %lld x accum %lld, lr %.3e -> %.3e (warmup %lld, %lld steps), gamma %g, alpha %g, "
           "lambda %g, %s%s\n",
           (long long)eo->batch, (long long)eo->accum, eo->lr, eo->min_lr, (long long)eo->warmup,
           (long long)eo->total_steps, eo->gamma, eo->alpha, eo->lambda,
           eo->fp8 ? "FP8 block linears" : eo->precision == 64 ? "FP32 weights, double compute"
                                                               : "FP32",
           in.step ? " (resumed)" : "");
    if (dump) {
        dump_buf = malloc((size_t)(eo->accum * eo->batch * (eo->seq_len + 1)) * sizeof *dump_buf);
        if (!dump_buf) {
            dsv3_errf(&err, DSV3_ENOMEM, "--dump-tokens: out of memory");
            goto fail;
        }
        if (!(dump_f = fopen(dump, "w"))) {
            dsv3_errf(&err, DSV3_EIO, "--dump-tokens: %s: %s", dump, strerror(errno));
            goto fail;
        }
    }
    fflush(stdout);
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    dsv3_status st = DSV3_OK;
    const long long end = stop_at >= 0 && stop_at < steps ? stop_at : steps;
    for (int64_t s = in.step; s < end && !st; s++) {
        dsv3_train_metrics r;
        if (dump_f && (st = dump_batch(dump_f, t, dump_buf, s + 1, &err))) break;
        if ((st = dsv3_trainer_step(t, &r, &err))) break;
        print_step(&r, steps, t, loads);
        if (eval_every > 0 && in.n_heldout > 0 && r.step % eval_every == 0) st = do_eval(t, &err);
        if (!st && save && save_every > 0 && r.step % save_every == 0 && r.step < end)
            st = dsv3_trainer_save(t, save, &err);
    }
    sigaction(SIGINT, &old, NULL);
    if (st == DSV3_EINTR) {
        dsv3_err serr = {{0}};
        const int saved = save && !dsv3_trainer_save(t, save, &serr);
        fprintf(stderr, "dsv3 train: interrupted after step %lld%s%s\n",
                (long long)dsv3_trainer_last(t)->step, saved ? ", saved to " : "",
                saved ? save : "");
        rc = 130;
        goto done;
    }
    if (st) {
        dsv3_err serr = {{0}};
        if (save && dsv3_trainer_failed(t) && !dsv3_trainer_save(t, save, &serr)) {
            fprintf(stderr, "dsv3 train: %s; the last good weights are saved in %s\n", err.msg, save);
            goto done;
        }
        goto fail;
    }
    if (eval_every > 0 && in.n_heldout > 0 && end % eval_every != 0 && do_eval(t, &err)) goto fail;
    if (save) {
        if (dsv3_trainer_save(t, save, &err)) goto fail;
        printf("saved %s\n", save);
    }
    rc = 0;
fail:
    if (rc == 1) fprintf(stderr, "dsv3 train: %s\n", err.msg);
done:
    if (dump_f) fclose(dump_f);
    free(dump_buf);
    dsv3_trainer_free(t);
    dsv3_model_close(m);
    return rc;
}
