/* generate.c — `dsv3 generate MODEL_DIR (--prompt TEXT | --ids 1,2,3 |
 *   --fim-prefix TEXT --fim-suffix TEXT) [-n N] [--temp T]
 *   [--top-k K] [--top-p P] [--seed S] [--greedy] [--mtp] [--chat] [--system TEXT]
 *   [--think | --no-think] [--stop STR] [--print-ids] [--stats FILE.json]`
 *
 * Streams the generated text to stdout as tokens are produced (or, with --print-ids or a model
 * without tokenizer.json, the new ids space-separated on one line). With --fim-prefix and
 * --fim-suffix (either may be left out: an empty part) the prompt is the Fill-in-Middle one,
 * [BOS] <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜> (model/text/fim.h; BOS as for
 * --prompt), and what is generated, up to EOS or -n tokens, is the middle. Ctrl-C stops generation
 * between tokens; what was produced is kept and the exit status is 130. --chat renders the
 * prompt with the checkpoint's chat template (model/text/chat.h: DeepSeek-V3, R1 or V3.1,
 * recognised exactly; an unknown one is refused; none: the V3 format and a warning on stderr);
 * --think / --no-think switch thinking where the template has a switch (V3.1).
 */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/base/strbuf.h"
#include "model/text/detok.h"
#include "model/text/fim.h"
#include "model/run/generate.h"
#include "model/run/model.h"
#include "model/text/tokenizer.h"
#include "repl/cli/cli.h"

static const char usage[] =
    "usage: dsv3 generate MODEL_DIR (--prompt TEXT | --ids 1,2,3 | --fim-prefix TEXT\n"
    "                     --fim-suffix TEXT) [-n N] [--temp T] [--top-k K]\n"
    "                     [--top-p P] [--seed S] [--greedy] [--mtp] [--chat] [--system TEXT]\n"
    "                     [--think | --no-think] [--stop STR] [--print-ids] [--stats FILE.json] [--backend fast|ref|devsim|cuda]\n";

static volatile int interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct {
    const dsv3_tokenizer *tok; /* NULL: print ids */
    dsv3_detok detok;
    const char *stop;          /* stop string or NULL */
    char *text;                /* generated text so far (for the stop string) */
    size_t len, cap;
    int64_t count;
} stream;

static int on_token(void *ud, int32_t id) {
    stream *s = ud;
    if (!s->tok) {
        printf("%s%d", s->count++ ? " " : "", id);
        fflush(stdout);
        return 0;
    }
    s->count++;
    if (dsv3_tokenizer_is_special(s->tok, id)) return 0;
    size_t n = 0;
    const char *b = dsv3_tokenizer_token_bytes(s->tok, id, &n);
    char buf[DSV3_DETOK_OUT_MAX(256)];
    if (!b || n > 256) return 0;
    size_t k = dsv3_detok_push(&s->detok, b, n, buf);
    fwrite(buf, 1, k, stdout);
    fflush(stdout);
    if (!s->stop) return 0;
    if (s->len + k + 1 > s->cap) {
        size_t nc = (s->len + k + 1) * 2;
        char *nt = realloc(s->text, nc);
        if (!nt) return 1;
        s->text = nt;
        s->cap = nc;
    }
    memcpy(s->text + s->len, buf, k);
    s->len += k;
    s->text[s->len] = 0;
    size_t sl = strlen(s->stop), from = s->len > k + sl ? s->len - k - sl : 0;
    return strstr(s->text + from, s->stop) != NULL;
}

/* Writes the run's counters as JSON, atomically (temp + rename). */
static dsv3_status write_stats(const char *path, const dsv3_gen_stats *st, dsv3_err *err) {
    cJSON *o = cJSON_CreateObject();
    const double rate = st->drafted ? (double)st->accepted / (double)st->drafted : 0.0;
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)st->prompt_tokens);
    cJSON_AddNumberToObject(o, "tokens", (double)st->tokens);
    cJSON_AddNumberToObject(o, "forward_passes", (double)st->forward_passes);
    cJSON_AddNumberToObject(o, "mtp_passes", (double)st->mtp_passes);
    cJSON_AddNumberToObject(o, "drafted", (double)st->drafted);
    cJSON_AddNumberToObject(o, "accepted", (double)st->accepted);
    cJSON_AddNumberToObject(o, "acceptance_rate", rate);
    cJSON_AddNumberToObject(o, "tokens_per_forward",
                            st->forward_passes ? (double)st->tokens / (double)st->forward_passes : 0.0);
    cJSON_AddNumberToObject(o, "prefill_seconds", st->prefill_seconds);
    cJSON_AddNumberToObject(o, "decode_seconds", st->decode_seconds);
    cJSON_AddNumberToObject(o, "tokens_per_second",
                            st->decode_seconds > 0 ? (double)st->tokens / st->decode_seconds : 0.0);
    cJSON_AddNumberToObject(o, "device_uploads", (double)st->device.uploads);
    cJSON_AddNumberToObject(o, "device_downloads", (double)st->device.downloads);
    cJSON_AddNumberToObject(o, "device_upload_bytes", (double)st->device.upload_bytes);
    cJSON_AddNumberToObject(o, "device_download_bytes", (double)st->device.download_bytes);
    cJSON_AddNumberToObject(o, "device_bytes_per_token", st->device_bytes_per_token);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return dsv3_errf(err, DSV3_ENOMEM, "--stats: out of memory");
    dsv3_strbuf tb = {0};
    dsv3_strbuf_printf(&tb, "%s.tmp.%ld", path, (long)getpid());
    char *tmp = dsv3_strbuf_finish(&tb);
    if (!tmp) {
        free(text);
        return dsv3_errf(err, DSV3_ENOMEM, "--stats: out of memory");
    }
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    ok = f && fclose(f) == 0 && ok;
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        free(tmp);
        return dsv3_errf(err, DSV3_EIO, "--stats: %s: cannot write", path);
    }
    free(tmp);
    return DSV3_OK;
}

static int parse_float(const char *s, float *out) {
    char *end;
    *out = strtof(s, &end);
    return end != s && !*end;
}

int dsv3_cli_generate(int argc, char **argv) {
    const char *dir = NULL, *prompt = NULL, *ids_s = NULL, *stats_path = NULL, *system = NULL,
               *stop = NULL, *backend = "fast", *fim_prefix = NULL, *fim_suffix = NULL;
    long long n_new = 64, seed = 0, top_k = 0;
    float temp = 1.0f, top_p = 1.0f;
    int greedy = 0, mtp = 0, chat = 0, print_ids = 0, think = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--greedy")) greedy = 1;
        else if (!strcmp(a, "--mtp")) mtp = 1;
        else if (!strcmp(a, "--chat")) chat = 1;
        else if (!strcmp(a, "--think")) think = 1;
        else if (!strcmp(a, "--no-think")) think = 0;
        else if (!strcmp(a, "--print-ids")) print_ids = 1;
        else if (!v && a[0] == '-') bad = 1;
        else if (!strcmp(a, "--prompt")) prompt = argv[++i];
        else if (!strcmp(a, "--ids")) ids_s = argv[++i];
        else if (!strcmp(a, "--fim-prefix")) fim_prefix = argv[++i];
        else if (!strcmp(a, "--fim-suffix")) fim_suffix = argv[++i];
        else if (!strcmp(a, "--stats")) stats_path = argv[++i];
        else if (!strcmp(a, "--system")) system = argv[++i];
        else if (!strcmp(a, "--stop")) stop = argv[++i];
        else if (!strcmp(a, "--backend")) backend = argv[++i];
        else if (!strcmp(a, "-n")) bad = (n_new = dsv3_cli_parse_count(argv[++i])) < 0;
        else if (!strcmp(a, "--seed")) bad = (seed = dsv3_cli_parse_count(argv[++i])) < 0;
        else if (!strcmp(a, "--top-k")) bad = (top_k = dsv3_cli_parse_count(argv[++i])) < 0;
        else if (!strcmp(a, "--temp")) bad = !parse_float(argv[++i], &temp) || temp < 0;
        else if (!strcmp(a, "--top-p")) bad = !parse_float(argv[++i], &top_p) || top_p <= 0 || top_p > 1;
        else if (a[0] != '-' && !dir) dir = a;
        else bad = 1;
        if (bad) {
            fprintf(stderr, "dsv3 generate: bad or incomplete option '%s'%s%s\n%s", a, v ? " " : "",
                    v ? v : "", usage);
            return 2;
        }
    }
    const int fim = fim_prefix || fim_suffix;
    if (!dir || (!!prompt + !!ids_s + fim) != 1) {
        fprintf(stderr,
                "dsv3 generate: MODEL_DIR and exactly one of --prompt / --ids / --fim-prefix and "
                "--fim-suffix are required\n%s",
                usage);
        return 2;
    }
    if (think >= 0 && !chat) {
        fprintf(stderr, "dsv3 generate: --think/--no-think need --chat\n%s", usage);
        return 2;
    }
    if (fim && chat) {
        fprintf(stderr, "dsv3 generate: --chat cannot be used with --fim-prefix/--fim-suffix\n%s",
                usage);
        return 2;
    }
    dsv3_err err = {{0}};
    dsv3_model *m = NULL;
    dsv3_tokenizer *tok = NULL;
    dsv3_run *run = NULL;
    int32_t *ids = NULL, *out = NULL;
    int64_t n = 0, n_out = 0;
    char *rendered = NULL;
    stream s = {0};
    int rc = 1;
    if (n_new < 1) {
        dsv3_errf(&err, DSV3_EINVAL, "-n: %lld new tokens requested, need at least 1", n_new);
        goto fail;
    }
    if (dsv3_cli_open_model(&m, &tok, dir, backend, &err)) goto fail;
    const dsv3_config *c = dsv3_model_config(m);
    if (fim) {
        if (!tok) {
            dsv3_errf(&err, DSV3_EINVAL, "--fim-prefix/--fim-suffix: %s has no tokenizer.json",
                      dir);
            goto fail;
        }
        const char *pre = fim_prefix ? fim_prefix : "", *suf = fim_suffix ? fim_suffix : "";
        size_t nids = 0;
        if (dsv3_fim_prompt(&ids, &nids, tok, pre, strlen(pre), suf, strlen(suf),
                            dsv3_tokenizer_adds_bos(tok), &err))
            goto fail;
        n = (int64_t)nids;
    } else if (prompt || chat) {
        if (!tok) {
            dsv3_errf(&err, DSV3_EINVAL, "--prompt/--chat: %s has no tokenizer.json (use --ids)%s", dir,
                      dsv3_cli_has_tiktoken(dir) ? "; its tiktoken.model format is not supported" : "");
            goto fail;
        }
        size_t nids = 0;
        const char *text = prompt;
        size_t tlen = strlen(prompt ? prompt : "");
        if (chat) {
            dsv3_chat_msg msgs[2];
            size_t k = 0;
            if (system) msgs[k++] = (dsv3_chat_msg){"system", system};
            msgs[k++] = (dsv3_chat_msg){"user", prompt ? prompt : ""};
            if (dsv3_tokenizer_chat_think(tok, think, &rendered, &tlen, msgs, k, 1, &err))
                goto fail;
            const char *w = dsv3_tokenizer_chat_warning(tok);
            if (w) fprintf(stderr, "dsv3 generate: %s\n", w);
            text = rendered;
        }
        if (!chat && tlen == 0) {
            dsv3_errf(&err, DSV3_EINVAL, "--prompt: empty prompt");
            goto fail;
        }
        if (dsv3_tokenizer_encode(tok, &ids, &nids, text, tlen, !chat, &err)) goto fail;
        n = (int64_t)nids;
    } else if (dsv3_cli_parse_ids(ids_s, &ids, &n, &err)) {
        goto fail;
    }
    if (n < 1) {
        dsv3_errf(&err, DSV3_EINVAL, "--prompt: the prompt encodes to no tokens");
        goto fail;
    }
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size) {
            dsv3_errf(&err, DSV3_EINVAL, "--ids: token id %d at position %lld out of range [0, %lld)",
                      ids[i], (long long)i, (long long)c->vocab_size);
            goto fail;
        }
    if (n + n_new + 1 > c->max_position_embeddings) {
        dsv3_errf(&err, DSV3_EINVAL,
                  "prompt of %lld tokens + -n %lld exceeds max_position_embeddings %lld",
                  (long long)n, n_new, (long long)c->max_position_embeddings);
        goto fail;
    }
    dsv3_run_opts ro = {.max_seq = n + n_new + 1, .max_chunk = n < 256 ? n + 1 : 256};
    if (dsv3_run_new(&run, m, &ro, &err)) goto fail;
    if (!(out = malloc((size_t)n_new * sizeof *out))) {
        dsv3_errf(&err, DSV3_ENOMEM, "out of memory");
        goto fail;
    }
    s.tok = print_ids ? NULL : tok;
    s.stop = stop;
    int32_t eos = tok && dsv3_tokenizer_eos_id(tok) >= 0 ? dsv3_tokenizer_eos_id(tok) : (int32_t)c->eos_token_id;
    dsv3_gen_opts go = {
        .max_new_tokens = n_new,
        .sample = {.greedy = greedy, .temperature = temp, .top_k = (int)top_k, .top_p = top_p},
        .seed = (uint64_t)seed,
        .use_mtp = mtp,
        .eos_id = eos,
        .on_token = on_token,
        .ud = &s,
        .cancel = &interrupted,
    };
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    dsv3_gen_stats st;
    dsv3_status gs = dsv3_generate(run, ids, n, &go, out, &n_out, &st, &err);
    sigaction(SIGINT, &old, NULL);
    char tail[4];
    fwrite(tail, 1, dsv3_detok_flush(&s.detok, tail), stdout);
    printf("\n");
    fflush(stdout);
    if (gs && gs != DSV3_EINTR) goto fail;
    if (stats_path && write_stats(stats_path, &st, &err)) goto fail;
    if (gs == DSV3_EINTR) {
        fprintf(stderr, "dsv3 generate: interrupted after %lld tokens\n", (long long)n_out);
        rc = 130;
        goto done;
    }
    rc = 0;
fail:
    if (rc == 1) fprintf(stderr, "dsv3 generate: %s\n", err.msg);
done:
    free(s.text);
    free(rendered);
    free(ids);
    free(out);
    dsv3_run_free(run);
    dsv3_tokenizer_close(tok);
    dsv3_model_close(m);
    return rc;
}
