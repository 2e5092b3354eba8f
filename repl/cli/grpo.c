/* grpo.c — `dsv3 grpo MODEL_DIR (--task add|copy | --prompts FILE) --steps N [options]`
 *
 * GRPO (model/train/grpo.h) on a built-in toy task (model/train/grpo_task.h) or on a file of
 * "prompt<TAB>answer" lines scored with the answer reward, one line per step: reward mean, std
 * and max, KL to the starting weights, mean completion length, loss, gradient norm, tokens/s;
 * with --samples the best completion of each step. --save writes the policy as a model
 * directory at the end (or after Ctrl-C). Exit status: 0 done, 1 an error (one line on stderr),
 * 2 usage, 130 interrupted.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/train/grpo.h"
#include "model/train/grpo_task.h"
#include "model/run/model.h"
#include "model/text/tokenizer.h"
#include "repl/cli/cli.h"

static const char usage[] =
    "usage: dsv3 grpo MODEL_DIR (--task add|copy | --prompts FILE) --steps N [--group G]\n"
    "                 [--batch B] [--max-tokens N] [--lr LR] [--beta B] [--eps E]\n"
    "                 [--temperature T] [--inner K] [--seed S] [--examples N] [--samples]\n"
    "                 [--save OUT_DIR]\n"
    "  FILE: one \"prompt<TAB>answer\" per line; a completion scores 1 when it starts with the\n"
    "  answer, else 0.5 * (common prefix) / (answer length).\n"
    "  tasks: add (\"3+4=\": 1 for the sum, 0.5 for another number), copy (\"cat cat cat\": 1 for\n"
    "  \"cat\" first, 0.5 for \"cat\" later).\n";

static volatile int interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* The prompts of a run: text, answer, token ids. */
typedef struct {
    int64_t n;
    char **prompt, **answer;
    int32_t **ids;
    int64_t *len;
    const dsv3_grpo_task *task; /* NULL: prompts from a file, the answer reward */
    const dsv3_tokenizer *tok;
    int64_t *pick; /* [batch] prompt numbers of the current step */
    double best;   /* the step's best completion */
    char *best_text;
    int64_t best_prompt;
} prompt_set;

static void prompts_free(prompt_set *s) {
    for (int64_t i = 0; i < s->n; i++) {
        free(s->prompt[i]);
        free(s->answer[i]);
        free(s->ids[i]);
    }
    free(s->prompt);
    free(s->answer);
    free(s->ids);
    free(s->len);
    free(s->pick);
    free(s->best_text);
}

static dsv3_status prompts_alloc(prompt_set *s, int64_t n, dsv3_err *err) {
    s->prompt = calloc((size_t)n, sizeof *s->prompt);
    s->answer = calloc((size_t)n, sizeof *s->answer);
    s->ids = calloc((size_t)n, sizeof *s->ids);
    s->len = calloc((size_t)n, sizeof *s->len);
    if (!s->prompt || !s->answer || !s->ids || !s->len)
        return dsv3_errf(err, DSV3_ENOMEM, "grpo: out of memory for %lld prompts", (long long)n);
    return DSV3_OK;
}

/* Reads "prompt<TAB>answer" lines (a final line without newline counts; CR before LF is
 * dropped; empty lines are skipped). */
static dsv3_status read_prompts(prompt_set *s, const char *path, dsv3_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return dsv3_errf(err, DSV3_EIO, "grpo: %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int64_t lineno = 0, n = 0, room = 0;
    dsv3_status st = DSV3_OK;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (got == 0) continue;
        char *tab = strchr(line, '\t');
        if (!tab || tab == line || !tab[1]) {
            st = dsv3_errf(err, DSV3_EINVAL, "grpo: %s: line %lld: expected \"prompt<TAB>answer\"",
                           path, (long long)lineno);
            break;
        }
        *tab = 0;
        if (n == room) {
            room = room ? 2 * room : 64;
            char **p = realloc(s->prompt, (size_t)room * sizeof *p);
            if (p) s->prompt = p;
            char **a = realloc(s->answer, (size_t)room * sizeof *a);
            if (a) s->answer = a;
            if (!p || !a) {
                st = dsv3_errf(err, DSV3_ENOMEM, "grpo: out of memory reading %s", path);
                break;
            }
        }
        s->prompt[n] = strdup(line);
        s->answer[n] = strdup(tab + 1);
        n++;
        s->n = n;
        if (!s->prompt[n - 1] || !s->answer[n - 1]) {
            st = dsv3_errf(err, DSV3_ENOMEM, "grpo: out of memory reading %s", path);
            break;
        }
    }
    if (!st && ferror(f)) st = dsv3_errf(err, DSV3_EIO, "grpo: %s: read error", path);
    free(line);
    fclose(f);
    if (!st && n == 0)
        st = dsv3_errf(err, DSV3_EINVAL,
                       "grpo: %s: no prompts (expected \"prompt<TAB>answer\" lines)", path);
    if (st) return st;
    s->ids = calloc((size_t)n, sizeof *s->ids);
    s->len = calloc((size_t)n, sizeof *s->len);
    if (!s->ids || !s->len) return dsv3_errf(err, DSV3_ENOMEM, "grpo: out of memory");
    return DSV3_OK;
}

static dsv3_status reward(void *ud, int64_t p, const int32_t *c, int64_t n, double *r,
                          dsv3_err *err) {
    prompt_set *s = ud;
    char *text = NULL;
    size_t len;
    dsv3_status st = dsv3_tokenizer_decode(s->tok, &text, &len, c, (size_t)n, 1, err);
    if (st) return st;
    const int64_t k = s->pick[p];
    *r =
        s->task ? s->task->reward(s->answer[k], text) : dsv3_grpo_answer_reward(s->answer[k], text);
    if (!s->best_text || *r > s->best) {
        free(s->best_text);
        s->best_text = text;
        s->best = *r;
        s->best_prompt = k;
    } else {
        free(text);
    }
    return DSV3_OK;
}

/* Prints s with control characters as spaces, cut to width bytes. */
static void print_flat(const char *s, int width) {
    for (int i = 0; s[i] && i < width; i++)
        putchar((unsigned char)s[i] < 0x20 ? ' ' : s[i]);
}

int dsv3_cli_grpo(int argc, char **argv) {
    const char *dir = NULL, *save = NULL, *task_name = NULL, *file = NULL;
    long long steps = -1, examples = 64;
    int samples = 0;
    dsv3_grpo_opts o;
    dsv3_grpo_opts_init(&o);
    o.lr = 2e-3;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        long long *cnt = NULL;
        int64_t *cnt64 = NULL;
        double *num = NULL;
        if (!strcmp(a, "--task") && v)
            task_name = argv[++i];
        else if (!strcmp(a, "--prompts") && v)
            file = argv[++i];
        else if (!strcmp(a, "--save") && v)
            save = argv[++i];
        else if (!strcmp(a, "--samples"))
            samples = 1;
        else if (!strcmp(a, "--steps") && v)
            cnt = &steps;
        else if (!strcmp(a, "--examples") && v)
            cnt = &examples;
        else if (!strcmp(a, "--group") && v)
            cnt64 = &o.group;
        else if (!strcmp(a, "--batch") && v)
            cnt64 = &o.batch;
        else if (!strcmp(a, "--max-tokens") && v)
            cnt64 = &o.max_tokens;
        else if (!strcmp(a, "--inner") && v)
            cnt64 = &o.inner;
        else if (!strcmp(a, "--lr") && v)
            num = &o.lr;
        else if (!strcmp(a, "--beta") && v)
            num = &o.beta;
        else if (!strcmp(a, "--eps") && v)
            num = &o.eps;
        else if (!strcmp(a, "--temperature") && v)
            num = &o.temperature;
        else if (!strcmp(a, "--seed") && v) {
            long long s = dsv3_cli_parse_count(argv[++i]);
            ok = s >= 0;
            o.seed = (uint64_t)s;
        } else if (a[0] != '-' && !dir)
            dir = a;
        else {
            fprintf(stderr, "dsv3 grpo: unknown or incomplete option '%s'\n%s", a, usage);
            return 2;
        }
        if (cnt || cnt64) {
            long long c = dsv3_cli_parse_count(argv[++i]);
            ok = c >= 0;
            if (cnt)
                *cnt = c;
            else
                *cnt64 = c;
        } else if (num) {
            *num = dsv3_cli_parse_num(argv[++i], &ok);
        }
        if (!ok) {
            fprintf(stderr, "dsv3 grpo: %s: '%s' is not a valid value\n", a, argv[i]);
            return 2;
        }
    }
    if (!dir || steps < 1 || !task_name == !file) {
        fprintf(
            stderr,
            "dsv3 grpo: MODEL_DIR, --steps N >= 1 and one of --task or --prompts are required\n%s",
            usage);
        return 2;
    }
    prompt_set ps = {0};
    if (task_name && !(ps.task = dsv3_grpo_task_find(task_name))) {
        fprintf(stderr, "dsv3 grpo: unknown task '%s' (built-in: add, copy)\n", task_name);
        return 2;
    }
    if (task_name && (examples < 1 || examples > 1000000)) {
        fprintf(stderr, "dsv3 grpo: --examples must be in 1..1000000\n");
        return 2;
    }
    dsv3_err err = {{0}};
    dsv3_model *m = NULL;
    dsv3_tokenizer *tok = NULL;
    dsv3_grpo *g = NULL;
    int rc = 1;
    if (file) {
        if (read_prompts(&ps, file, &err)) goto fail;
    } else {
        if (prompts_alloc(&ps, examples, &err)) goto fail;
        ps.n = examples;
        for (int64_t i = 0; i < ps.n; i++) {
            char p[128], a[64];
            ps.task->example((uint64_t)i, p, sizeof p, a, sizeof a);
            if (!(ps.prompt[i] = strdup(p)) || !(ps.answer[i] = strdup(a))) {
                dsv3_errf(&err, DSV3_ENOMEM, "grpo: out of memory");
                goto fail;
            }
        }
    }
    if (dsv3_model_open(&m, dir, &err)) goto fail;
    fputs(dsv3_model_warnings(m), stderr);
    if (dsv3_tokenizer_open(&tok, dir, &err)) goto fail;
    ps.tok = tok;
    int64_t longest = 1;
    for (int64_t i = 0; i < ps.n; i++) {
        size_t k;
        dsv3_err terr = {{0}};
        if (dsv3_tokenizer_encode(tok, &ps.ids[i], &k, ps.prompt[i], strlen(ps.prompt[i]), 1,
                                  &terr)) {
            dsv3_errf(&err, DSV3_EINVAL, "grpo: prompt %lld: %s", (long long)i + 1, terr.msg);
            goto fail;
        }
        ps.len[i] = (int64_t)k;
        longest = ps.len[i] > longest ? ps.len[i] : longest;
    }
    if (o.batch > ps.n) o.batch = ps.n;
    o.max_prompt = longest;
    o.cancel = &interrupted;
    if (!(ps.pick = calloc((size_t)o.batch, sizeof *ps.pick))) {
        dsv3_errf(&err, DSV3_ENOMEM, "grpo: out of memory");
        goto fail;
    }
    if (dsv3_grpo_new(&g, m, &o, &err)) goto fail;
    const dsv3_grpo_opts *eo = dsv3_grpo_opts_of(g);
    printf("grpo %s: %s (%lld prompts), group %lld x batch %lld, max_tokens %lld, temperature %g, "
           "lr %.3e, beta %g, eps %g, inner %lld, seed %llu\n",
           dir, task_name ? task_name : file, (long long)ps.n, (long long)eo->group,
           (long long)eo->batch, (long long)eo->max_tokens, eo->temperature, eo->lr, eo->beta,
           eo->eps, (long long)eo->inner, (unsigned long long)eo->seed);
    fflush(stdout);
    const int32_t **pp = calloc((size_t)o.batch, sizeof *pp);
    int64_t *pl = calloc((size_t)o.batch, sizeof *pl);
    if (!pp || !pl) {
        free(pp);
        free(pl);
        dsv3_errf(&err, DSV3_ENOMEM, "grpo: out of memory");
        goto fail;
    }
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    dsv3_status st = DSV3_OK;
    int64_t done = 0;
    for (; done < steps && !st; done++) {
        for (int64_t k = 0; k < o.batch; k++) {
            ps.pick[k] = (done * o.batch + k) % ps.n;
            pp[k] = ps.ids[ps.pick[k]];
            pl[k] = ps.len[ps.pick[k]];
        }
        free(ps.best_text);
        ps.best_text = NULL;
        dsv3_grpo_metrics r;
        if ((st = dsv3_grpo_step(g, pp, pl, o.batch, reward, &ps, &r, &err))) break;
        printf(
            "step %lld/%lld reward %.4f std %.4f max %.4f kl %.5f len %.2f loss %+.5f gnorm %.4f "
            "tok/s %.0f\n",
            (long long)r.step, steps, r.reward_mean, r.reward_std, r.reward_max, r.kl, r.length,
            r.loss, r.grad_norm, r.tokens_per_s);
        if (samples && ps.best_text) {
            printf("  best %.3f: ", ps.best);
            print_flat(ps.prompt[ps.best_prompt], 40);
            printf(" -> ");
            print_flat(ps.best_text, 60);
            printf("\n");
        }
        fflush(stdout);
    }
    sigaction(SIGINT, &old, NULL);
    free(pp);
    free(pl);
    if (st == DSV3_EINTR) {
        dsv3_err serr = {{0}};
        const int saved = save && done > 0 && !dsv3_grpo_save(g, save, &serr);
        fprintf(stderr, "dsv3 grpo: interrupted after step %lld%s%s\n", (long long)done,
                saved ? ", saved to " : "", saved ? save : "");
        rc = 130;
        goto done;
    }
    if (st) goto fail;
    if (save) {
        if (dsv3_grpo_save(g, save, &err)) goto fail;
        printf("saved %s\n", save);
    }
    rc = 0;
fail:
    if (rc == 1) fprintf(stderr, "dsv3 grpo: %s\n", err.msg);
done:
    dsv3_grpo_free(g);
    dsv3_tokenizer_close(tok);
    dsv3_model_close(m);
    prompts_free(&ps);
    return rc;
}
