/* data.c — token stream, packing and shuffling (see data.h). */
#include "model/train/data.h"

#include <math.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/text/fim.h"

struct dsv3_dataset {
    dsv3_data_opts o;
    int32_t *tok;      /* [n] the stream */
    int64_t n;         /* tokens */
    int64_t n_docs;
    int64_t n_fim;     /* documents rearranged by FIM */
    int64_t n_seq;     /* sequences of T + 1 tokens with stride T */
    int64_t n_train;   /* the first n_train sequences; the rest are held out */
    int64_t *perm;     /* [n_train] the order of the cached epoch */
    int64_t perm_epoch; /* epoch perm holds, or -1 */
};

/* ---------------------------------------------------------------- shuffling ------------ */

/* splitmix64: a counter-based generator, output i of stream s is mix(s + i * golden). */
static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Fisher-Yates permutation of [0, n_train) for one epoch, from (seed, epoch) alone. */
static void shuffle_epoch(dsv3_dataset *d, int64_t epoch) {
    const uint64_t stream = mix(d->o.seed ^ mix((uint64_t)epoch + 0x9e3779b97f4a7c15ull));
    for (int64_t i = 0; i < d->n_train; i++) d->perm[i] = i;
    for (int64_t i = d->n_train - 1; i > 0; i--) {
        const uint64_t r = mix(stream + (uint64_t)i * 0x9e3779b97f4a7c15ull) % (uint64_t)(i + 1);
        const int64_t t = d->perm[i];
        d->perm[i] = d->perm[r];
        d->perm[r] = t;
    }
    d->perm_epoch = epoch;
}

void dsv3_data_train_seq(dsv3_dataset *d, int64_t index, int32_t *out) {
    const int64_t epoch = index / d->n_train, j = index % d->n_train;
    if (epoch != d->perm_epoch) shuffle_epoch(d, epoch);
    const int64_t T = d->o.seq_len;
    memcpy(out, d->tok + d->perm[j] * T, (size_t)(T + 1) * sizeof *out);
}

void dsv3_data_heldout_seq(const dsv3_dataset *d, int64_t i, int32_t *out) {
    const int64_t T = d->o.seq_len;
    memcpy(out, d->tok + (d->n_train + i) * T, (size_t)(T + 1) * sizeof *out);
}

/* ---------------------------------------------------------------- building ------------- */

void dsv3_data_free(dsv3_dataset *d) {
    if (!d) return;
    free(d->tok);
    free(d->perm);
    free(d);
}

static dsv3_status check_opts(const dsv3_data_opts *o, dsv3_err *err) {
    if (o->seq_len < 1)
        return dsv3_errf(err, DSV3_EINVAL, "data: seq_len %lld: must be at least 1", (long long)o->seq_len);
    if (!(o->heldout >= 0.0 && o->heldout <= 0.5))
        return dsv3_errf(err, DSV3_EINVAL, "data: held-out fraction %g: must be in [0, 0.5]", o->heldout);
    if (!(isfinite(o->fim_rate) && o->fim_rate >= 0.0 && o->fim_rate <= 1.0))
        return dsv3_errf(err, DSV3_EINVAL, "data: FIM rate %g: must be in [0, 1]", o->fim_rate);
    return DSV3_OK;
}

/* Cuts the stream into sequences and splits off the held-out tail; takes ownership of tok. */
static dsv3_status finish(dsv3_dataset **out, dsv3_dataset *d, const char *where, dsv3_err *err) {
    const int64_t T = d->o.seq_len;
    d->n_seq = d->n >= 1 ? (d->n - 1) / T : 0;
    if (d->n_seq < 1) {
        dsv3_status st = dsv3_errf(err, DSV3_EINVAL,
                                   "data: %s: %lld tokens, need at least %lld for seq_len %lld",
                                   where, (long long)d->n, (long long)T + 1, (long long)T);
        dsv3_data_free(d);
        return st;
    }
    int64_t held = (int64_t)((double)d->n_seq * d->o.heldout);
    if (held == 0 && d->o.heldout > 0.0 && d->n_seq >= 2) held = 1;
    d->n_train = d->n_seq - held;
    d->perm_epoch = -1;
    if (!(d->perm = malloc((size_t)d->n_train * sizeof *d->perm))) {
        dsv3_data_free(d);
        return dsv3_errf(err, DSV3_ENOMEM, "data: %s: out of memory", where);
    }
    *out = d;
    return DSV3_OK;
}

dsv3_status dsv3_data_from_tokens(dsv3_dataset **out, const int32_t *tokens, int64_t n,
                                  const dsv3_data_opts *o, dsv3_err *err) {
    *out = NULL;
    dsv3_status st = check_opts(o, err);
    if (st) return st;
    if (o->fim_rate > 0)
        return dsv3_errf(err, DSV3_EINVAL, "data: FIM needs text documents, not a token stream");
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0)
            return dsv3_errf(err, DSV3_EINVAL, "data: token %lld: id %d is negative", (long long)i, tokens[i]);
    dsv3_dataset *d = calloc(1, sizeof *d);
    if (!d || !(d->tok = malloc((size_t)(n > 0 ? n : 1) * sizeof *d->tok))) {
        free(d);
        return dsv3_errf(err, DSV3_ENOMEM, "data: out of memory for %lld tokens", (long long)n);
    }
    d->o = *o;
    if (n > 0) memcpy(d->tok, tokens, (size_t)n * sizeof *tokens);
    d->n = n;
    return finish(out, d, "token stream", err);
}

/* Reads a whole file into a malloc'd buffer (*len bytes, NUL-terminated for convenience). */
static dsv3_status read_file(char **buf, size_t *len, const char *path, dsv3_err *err) {
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return dsv3_errf(err, DSV3_EIO, "data: %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return dsv3_errf(err, DSV3_EIO, "data: %s: not a regular file", path);
    }
    char *b = malloc((size_t)sb.st_size + 1);
    if (!b) {
        fclose(f);
        return dsv3_errf(err, DSV3_ENOMEM, "data: %s: out of memory", path);
    }
    size_t got = fread(b, 1, (size_t)sb.st_size, f);
    fclose(f);
    if (got != (size_t)sb.st_size) {
        free(b);
        return dsv3_errf(err, DSV3_EIO, "data: %s: short read", path);
    }
    b[got] = 0;
    *buf = b;
    *len = got;
    return DSV3_OK;
}

/* Appends ids[n] to the stream, growing it geometrically. */
static int append(dsv3_dataset *d, int64_t *cap, const int32_t *ids, int64_t n) {
    if (d->n + n > *cap) {
        int64_t nc = *cap ? *cap : 4096;
        while (nc < d->n + n) nc *= 2;
        int32_t *t = realloc(d->tok, (size_t)nc * sizeof *t);
        if (!t) return -1;
        d->tok = t;
        *cap = nc;
    }
    memcpy(d->tok + d->n, ids, (size_t)n * sizeof *ids);
    d->n += n;
    return 0;
}

/* One document: refuse binary content, tokenize, append it and the EOS id. */
static dsv3_status add_file(dsv3_dataset *d, int64_t *cap, int64_t *text_tokens,
                            const dsv3_tokenizer *tok, const char *path, dsv3_err *err) {
    char *buf;
    size_t len = 0;
    dsv3_status st = read_file(&buf, &len, path, err);
    if (st) return st;
    const char *nul = memchr(buf, 0, len);
    if (nul) {
        st = dsv3_errf(err, DSV3_EINVAL, "data: %s: binary file (NUL byte at offset %zu)", path,
                       (size_t)(nul - buf));
        free(buf);
        return st;
    }
    if (len == 0) {
        free(buf);
        return DSV3_OK;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int fim = 0;
    dsv3_err terr = {{0}};
    if (d->o.fim_rate > 0) { /* fim.h: PSM with probability fim_rate, else the plain ids */
        const dsv3_fim_opts fo = {.rate = d->o.fim_rate, .seed = d->o.seed ^ DSV3_DATA_FIM_SALT};
        st = dsv3_fim_document(&ids, &n, &fim, tok, &fo, (uint64_t)d->n_docs, buf, len, &terr);
    } else {
        st = dsv3_tokenizer_encode(tok, &ids, &n, buf, len, 0, &terr);
    }
    free(buf);
    if (st == DSV3_EINVAL && strstr(terr.msg, "invalid UTF-8"))
        return dsv3_errf(err, DSV3_EINVAL, "data: %s: binary file (%s)", path, terr.msg);
    if (st) return dsv3_errf(err, st, "data: %s: %s", path, terr.msg);
    const int32_t eos = d->o.eos_id;
    int bad = append(d, cap, ids, (int64_t)n) || append(d, cap, &eos, 1);
    free(ids);
    if (bad) return dsv3_errf(err, DSV3_ENOMEM, "data: %s: out of memory", path);
    *text_tokens += (int64_t)n;
    d->n_docs++;
    d->n_fim += fim;
    return DSV3_OK;
}

static int by_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with_txt(const char *s) {
    size_t n = strlen(s);
    return n > 4 && !strcmp(s + n - 4, ".txt");
}

/* The *.txt entries of dir, sorted (malloc'd array of malloc'd names). */
static dsv3_status list_txt(char ***names, size_t *count, const char *dir, dsv3_err *err) {
    *names = NULL;
    *count = 0;
    DIR *dp = opendir(dir);
    if (!dp) return dsv3_errf(err, DSV3_EIO, "data: %s: %s", dir, strerror(errno));
    size_t cap = 0, n = 0;
    char **v = NULL;
    struct dirent *de;
    dsv3_status st = DSV3_OK;
    while ((de = readdir(dp))) {
        if (!ends_with_txt(de->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **t = realloc(v, cap * sizeof *t);
            if (!t) {
                st = dsv3_errf(err, DSV3_ENOMEM, "data: %s: out of memory", dir);
                break;
            }
            v = t;
        }
        if (!(v[n] = strdup(de->d_name))) {
            st = dsv3_errf(err, DSV3_ENOMEM, "data: %s: out of memory", dir);
            break;
        }
        n++;
    }
    closedir(dp);
    if (!st && n == 0) st = dsv3_errf(err, DSV3_EIO, "data: %s: no .txt files in the directory", dir);
    if (st) {
        for (size_t i = 0; i < n; i++) free(v[i]);
        free(v);
        return st;
    }
    qsort(v, n, sizeof *v, by_str);
    *names = v;
    *count = n;
    return DSV3_OK;
}

dsv3_status dsv3_data_open_text(dsv3_dataset **out, const dsv3_tokenizer *tok, const char *path,
                                const dsv3_data_opts *o, dsv3_err *err) {
    *out = NULL;
    dsv3_status st = check_opts(o, err);
    if (st) return st;
    if (o->eos_id < 0) return dsv3_errf(err, DSV3_EINVAL, "data: %s: no EOS token id to separate documents", path);
    struct stat sb;
    if (stat(path, &sb) != 0) return dsv3_errf(err, DSV3_EIO, "data: %s: %s", path, strerror(errno));
    dsv3_dataset *d = calloc(1, sizeof *d);
    if (!d) return dsv3_errf(err, DSV3_ENOMEM, "data: %s: out of memory", path);
    d->o = *o;
    int64_t cap = 0, text_tokens = 0;
    if (S_ISDIR(sb.st_mode)) {
        char **names;
        size_t count;
        if ((st = list_txt(&names, &count, path, err))) {
            dsv3_data_free(d);
            return st;
        }
        char full[4096];
        for (size_t i = 0; i < count && !st; i++) {
            snprintf(full, sizeof full, "%s/%s", path, names[i]);
            st = add_file(d, &cap, &text_tokens, tok, full, err);
        }
        for (size_t i = 0; i < count; i++) free(names[i]);
        free(names);
    } else {
        st = add_file(d, &cap, &text_tokens, tok, path, err);
    }
    if (!st && text_tokens == 0) st = dsv3_errf(err, DSV3_EINVAL, "data: %s: no text (empty file)", path);
    if (st) {
        dsv3_data_free(d);
        return st;
    }
    return finish(out, d, path, err);
}

int64_t dsv3_data_n_tokens(const dsv3_dataset *d) {
    return d->n;
}
int64_t dsv3_data_n_docs(const dsv3_dataset *d) {
    return d->n_docs;
}
int64_t dsv3_data_n_fim(const dsv3_dataset *d) {
    return d->n_fim;
}
int64_t dsv3_data_n_train(const dsv3_dataset *d) {
    return d->n_train;
}
int64_t dsv3_data_n_heldout(const dsv3_dataset *d) {
    return d->n_seq - d->n_train;
}
const int32_t *dsv3_data_tokens(const dsv3_dataset *d) {
    return d->tok;
}
