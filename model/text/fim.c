/* fim.c — Fill-in-Middle, PSM arrangement (see fim.h): draws, layout, document transform, prompt.
 */
#include "model/text/fim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- draws ----------------- */

/* splitmix64 finaliser; draw k of document d is mix(stream(seed, d) + (k + 1) * golden), the
 * counter-based scheme of model/train/data.c. */
static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t draw(uint64_t seed, uint64_t doc, int k) {
    const uint64_t golden = 0x9e3779b97f4a7c15ull;
    const uint64_t stream = mix(seed ^ mix(doc + golden));
    return mix(stream + (uint64_t)(k + 1) * golden);
}

/* Byte offset of code point `c` (0..n_chars) in text. */
static size_t char_offset(const char *text, size_t len, uint64_t c) {
    uint64_t seen = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)text[i] & 0xC0) == 0x80) continue;
        if (seen++ == c) return i;
    }
    return len;
}

dsv3_fim_cut dsv3_fim_draw(const dsv3_fim_opts *o, uint64_t doc, const char *text, size_t len) {
    dsv3_fim_cut cut = {0, len, len};
    if (!o || (len && !text)) return cut;
    const double u = (double)(draw(o->seed, doc, 0) >> 11) * 0x1.0p-53; /* [0, 1) */
    if (!(u < o->rate)) return cut;
    uint64_t n_chars = 0;
    for (size_t i = 0; i < len; i++)
        n_chars += ((unsigned char)text[i] & 0xC0) != 0x80;
    uint64_t i = draw(o->seed, doc, 1) % (n_chars + 1), j = draw(o->seed, doc, 2) % (n_chars + 1);
    if (i > j) {
        const uint64_t t = i;
        i = j;
        j = t;
    }
    cut.apply = 1;
    cut.prefix_end = char_offset(text, len, i);
    cut.middle_end = char_offset(text, len, j);
    return cut;
}

/* ---------------------------------------------------------------- layout ---------------- */

dsv3_status dsv3_fim_token_ids(dsv3_fim_tokens *out, const dsv3_tokenizer *tok, dsv3_err *err) {
    if (!out || !tok) return dsv3_errf(err, DSV3_EINVAL, "fim: NULL tokenizer or output");
    const char *names[3] = {DSV3_FIM_BEGIN, DSV3_FIM_HOLE, DSV3_FIM_END};
    int32_t ids[3];
    for (int k = 0; k < 3; k++) {
        ids[k] = dsv3_tokenizer_token_id(tok, names[k]);
        if (ids[k] < 0)
            return dsv3_errf(err, DSV3_EINVAL,
                             "fim: the tokenizer has no %s token (FIM needs %s, %s "
                             "and %s in tokenizer.json's added_tokens)",
                             names[k], DSV3_FIM_BEGIN, DSV3_FIM_HOLE, DSV3_FIM_END);
    }
    *out = (dsv3_fim_tokens){ids[0], ids[1], ids[2]};
    return DSV3_OK;
}

/* A growing id list. */
typedef struct {
    int32_t *v;
    size_t n, cap;
} idbuf;

static int ids_push(idbuf *b, const int32_t *v, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2 + 16;
        int32_t *nv = realloc(b->v, cap * sizeof *nv);
        if (!nv) return -1;
        b->v = nv;
        b->cap = cap;
    }
    if (n) memcpy(b->v + b->n, v, n * sizeof *v);
    b->n += n;
    return 0;
}

/* Appends the ids of one part; tokenizer errors get "fim: <part>: " in front. */
static dsv3_status push_text(idbuf *b, const dsv3_tokenizer *tok, const char *part,
                             const char *text, size_t len, dsv3_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err e = {{0}};
    dsv3_status st = dsv3_tokenizer_encode(tok, &ids, &n, len ? text : "", len, 0, &e);
    if (st) return dsv3_errf(err, st, "fim: %s: %s", part, e.msg);
    const int bad = ids_push(b, ids, n);
    free(ids);
    return bad ? dsv3_errf(err, DSV3_ENOMEM, "fim: out of memory") : DSV3_OK;
}

static dsv3_status push_id(idbuf *b, int32_t id, dsv3_err *err) {
    return ids_push(b, &id, 1) ? dsv3_errf(err, DSV3_ENOMEM, "fim: out of memory") : DSV3_OK;
}

/* begin prefix hole suffix end [middle], into b (after whatever b holds). */
static dsv3_status psm(idbuf *b, const dsv3_tokenizer *tok, const dsv3_fim_tokens *t,
                       const char *prefix, size_t prefix_len, const char *suffix, size_t suffix_len,
                       const char *middle, size_t middle_len, int with_middle, dsv3_err *err) {
    dsv3_status st;
    if ((st = push_id(b, t->begin, err)) ||
        (st = push_text(b, tok, "prefix", prefix, prefix_len, err)) ||
        (st = push_id(b, t->hole, err)) ||
        (st = push_text(b, tok, "suffix", suffix, suffix_len, err)) ||
        (st = push_id(b, t->end, err)))
        return st;
    if (with_middle) return push_text(b, tok, "middle", middle, middle_len, err);
    return DSV3_OK;
}

static dsv3_status finish(int32_t **ids, size_t *n_ids, idbuf *b, dsv3_status st) {
    if (st) {
        free(b->v);
        return st;
    }
    *ids = b->v;
    *n_ids = b->n;
    return DSV3_OK;
}

static int bad_part(const char *p, size_t len) {
    return len && !p;
}

dsv3_status dsv3_fim_psm(int32_t **ids, size_t *n_ids, const dsv3_tokenizer *tok,
                         const char *prefix, size_t prefix_len, const char *suffix,
                         size_t suffix_len, const char *middle, size_t middle_len, dsv3_err *err) {
    if (!ids || !n_ids) return dsv3_errf(err, DSV3_EINVAL, "fim: NULL output");
    *ids = NULL;
    *n_ids = 0;
    if (bad_part(prefix, prefix_len) || bad_part(suffix, suffix_len) ||
        bad_part(middle, middle_len))
        return dsv3_errf(err, DSV3_EINVAL, "fim: NULL part with a non-zero length");
    dsv3_fim_tokens t;
    dsv3_status st = dsv3_fim_token_ids(&t, tok, err);
    if (st) return st;
    idbuf b = {0};
    st = psm(&b, tok, &t, prefix, prefix_len, suffix, suffix_len, middle, middle_len, 1, err);
    return finish(ids, n_ids, &b, st);
}

/* ---------------------------------------------------------------- document, prompt ------ */

dsv3_status dsv3_fim_document(int32_t **ids, size_t *n_ids, int *applied, const dsv3_tokenizer *tok,
                              const dsv3_fim_opts *o, uint64_t doc, const char *text, size_t len,
                              dsv3_err *err) {
    if (applied) *applied = 0;
    if (!ids || !n_ids || !o || bad_part(text, len))
        return dsv3_errf(err, DSV3_EINVAL, "fim: document: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (!isfinite(o->rate) || o->rate < 0 || o->rate > 1)
        return dsv3_errf(err, DSV3_EINVAL, "fim: rate %g is not in [0, 1]", o->rate);
    dsv3_fim_tokens t;
    dsv3_status st = dsv3_fim_token_ids(&t, tok, err);
    if (st) return st;
    const dsv3_fim_cut cut = dsv3_fim_draw(o, doc, text, len);
    idbuf b = {0};
    dsv3_err e = {{0}};
    if (cut.apply)
        st = psm(&b, tok, &t, text, cut.prefix_end, text + cut.middle_end, len - cut.middle_end,
                 text + cut.prefix_end, cut.middle_end - cut.prefix_end, 1, &e);
    else
        st = push_text(&b, tok, "text", text, len, &e);
    if (st) {
        free(b.v);
        return dsv3_errf(err, st, "fim: document %llu: %s", (unsigned long long)doc,
                         strncmp(e.msg, "fim: ", 5) ? e.msg : e.msg + 5);
    }
    if (applied) *applied = cut.apply;
    return finish(ids, n_ids, &b, DSV3_OK);
}

dsv3_status dsv3_fim_prompt(int32_t **ids, size_t *n_ids, const dsv3_tokenizer *tok,
                            const char *prefix, size_t prefix_len, const char *suffix,
                            size_t suffix_len, int add_bos, dsv3_err *err) {
    if (!ids || !n_ids) return dsv3_errf(err, DSV3_EINVAL, "fim: prompt: NULL output");
    *ids = NULL;
    *n_ids = 0;
    if (bad_part(prefix, prefix_len) || bad_part(suffix, suffix_len))
        return dsv3_errf(err, DSV3_EINVAL, "fim: prompt: NULL part with a non-zero length");
    dsv3_fim_tokens t;
    dsv3_status st = dsv3_fim_token_ids(&t, tok, err);
    if (st) return st;
    const int32_t bos = dsv3_tokenizer_bos_id(tok);
    if (add_bos && bos < 0)
        return dsv3_errf(err, DSV3_EINVAL,
                         "fim: prompt: the tokenizer has no bos_token "
                         "(tokenizer_config.json)");
    idbuf b = {0};
    st = add_bos ? push_id(&b, bos, err) : DSV3_OK;
    if (!st) st = psm(&b, tok, &t, prefix, prefix_len, suffix, suffix_len, NULL, 0, 0, err);
    return finish(ids, n_ids, &b, st);
}
