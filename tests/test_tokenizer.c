/* test_tokenizer.c — unit tests for model/tokenizer on small handcrafted tokenizer.json files.
 *
 * Each test builds a tokenizer.json in memory (the 256 byte tokens at ids 2..257 after BOS/EOS,
 * then one id per merge) and checks one behaviour promised by model/text/tokenizer.h. Agreement with
 * the Hugging Face library on the real DeepSeek-V3 file is tests/test_tokenizer_hf.sh.
 * Usage: test_tokenizer [NAME...] runs the named tests (default: all).
 */
#include "model/text/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/runner.h"


/* ---- building tokenizer.json text ------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t n, cap;
} sb;

static void sb_add(sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)k + 1 > b->cap) {
        b->cap = (b->n + (size_t)k + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* docs/ARCHITECTURE.md, "Tokenizer" (byte-level alphabet), written out independently of the
 * implementation. */
static void byte_char(unsigned b, char out[4]) {
    unsigned cp;
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) {
        cp = b;
    } else {
        unsigned n = 0;
        for (unsigned x = 0; x < b; x++)
            if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) n++;
        cp = 0x100 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

/* Appends s as a JSON string literal. */
static void sb_json_str(sb *b, const char *s) {
    sb_add(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sb_add(b, "\\%c", c);
        else if (c < 0x20)
            sb_add(b, "\\u%04x", c);
        else
            sb_add(b, "%c", c);
    }
    sb_add(b, "\"");
}

#define V3_PRETOK                                                                                  \
    "{\"type\":\"Sequence\",\"pretokenizers\":["                                                   \
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},\"behavior\":\"Isolated\","     \
    "\"invert\":false},"                                                                           \
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[一-龥぀-ゟ゠-ヿ]+\"},\"behavior\":"       \
    "\"Isolated\",\"invert\":false},"                                                              \
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[!\\\"#$%&'()*+,\\\\-./"                         \
    ":;<=>?@\\\\[\\\\\\\\\\\\]"                                                                    \
    "^_`{|}~][A-Za-z]+|[^\\r\\n\\\\p{L}\\\\p{P}\\\\p{S}]?[\\\\p{L}\\\\p{M}]+| "                    \
    "?[\\\\p{P}\\\\p{S}]+"                                                                         \
    "[\\r\\n]*|\\\\s*[\\r\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":"    \
    "false},"                                                                                      \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":"      \
    "false}]}"

typedef struct {
    const char *const *merges; /* "a b" in the byte-level alphabet; NULL-terminated; may be NULL */
    unsigned pair_mask;        /* bit i set: write merge i as ["a","b"] instead of "a b" */
    const char *added;         /* extra added_tokens entries (JSON objects, comma-led), or "" */
    const char *pre_tokenizer; /* JSON, or NULL for the V3 sequence */
    const char *model_extra;   /* extra "key":value pairs for model (comma-led), or "" */
    const char *merges_raw;    /* replaces the merges array contents when not NULL */
} tok_spec;

/* Vocab: BOS 0, EOS 1, bytes 2..257, then each merge result not yet present. Added tokens: BOS,
 * EOS (special), then <｜User｜> and <｜Assistant｜> (not special, normalized) and spec.added. */
static char *build_json(const tok_spec *sp, int *n_vocab_out) {
    sb v = {0}, m = {0};
    char **names = calloc(4096, sizeof *names);
    int n = 0;
    names[n++] = strdup("<｜begin▁of▁sentence｜>");
    names[n++] = strdup("<｜end▁of▁sentence｜>");
    for (unsigned b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        names[n++] = strdup(c);
    }
    for (int i = 0; sp->merges && sp->merges[i]; i++) {
        const char *s = sp->merges[i], *space = strchr(s, ' ');
        char a[64], bb[64], ab[128];
        snprintf(a, sizeof a, "%.*s", (int)(space - s), s);
        snprintf(bb, sizeof bb, "%s", space + 1);
        snprintf(ab, sizeof ab, "%s%s", a, bb);
        int found = 0;
        for (int k = 0; k < n; k++)
            found |= strcmp(names[k], ab) == 0;
        if (!found) names[n++] = strdup(ab);
        if (i) sb_add(&m, ",");
        if (sp->pair_mask >> i & 1) {
            sb_add(&m, "[");
            sb_json_str(&m, a);
            sb_add(&m, ",");
            sb_json_str(&m, bb);
            sb_add(&m, "]");
        } else {
            sb_json_str(&m, s);
        }
    }
    for (int k = 0; k < n; k++) {
        sb_add(&v, k ? "," : "");
        sb_json_str(&v, names[k]);
        sb_add(&v, ":%d", k);
        free(names[k]);
    }
    free(names);
    sb j = {0};
    sb_add(
        &j,
        "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
        "{\"id\":0,\"content\":\"<｜begin▁of▁sentence｜>\",\"single_word\":false,\"lstrip\":false,"
        "\"rstrip\":false,\"normalized\":false,\"special\":true},"
        "{\"id\":1,\"content\":\"<｜end▁of▁sentence｜>\",\"single_word\":false,\"lstrip\":false,"
        "\"rstrip\":false,\"normalized\":false,\"special\":true},"
        "{\"id\":%d,\"content\":\"<｜User｜>\",\"single_word\":false,\"lstrip\":false,"
        "\"rstrip\":false,\"normalized\":true,\"special\":false},"
        "{\"id\":%d,\"content\":\"<｜Assistant｜>\",\"single_word\":false,\"lstrip\":false,"
        "\"rstrip\":false,\"normalized\":true,\"special\":false}%s],"
        "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[]},"
        "\"pre_tokenizer\":%s,"
        "\"post_processor\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
        "\"trim_offsets\":false,\"use_regex\":true},"
        "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
        "\"use_regex\":true},"
        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
        "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":false,"
        "\"byte_fallback\":false%s,\"vocab\":{%s},\"merges\":[%s]}}",
        n, n + 1, sp->added ? sp->added : "", sp->pre_tokenizer ? sp->pre_tokenizer : V3_PRETOK,
        sp->model_extra ? sp->model_extra : "", v.p ? v.p : "",
        sp->merges_raw ? sp->merges_raw : (m.p ? m.p : ""));
    free(v.p);
    free(m.p);
    if (n_vocab_out) *n_vocab_out = n;
    return j.p;
}

static const char *const k_config =
    "{\"add_bos_token\":true,\"add_eos_token\":false,"
    "\"bos_token\":{\"__type\":\"AddedToken\",\"content\":\"<｜begin▁of▁sentence｜>\"},"
    "\"eos_token\":\"<｜end▁of▁sentence｜>\",\"tokenizer_class\":\"LlamaTokenizerFast\"}";

static const char *const k_merges[] = {"h e",  "l l",   "he ll",  "hell o",  "Ġ w",
                                       "o r",  "Ġw or", "Ġwor l", "Ġworl d", "1 2",
                                       "12 3", "4 5",   "c ä",    "a b",     NULL};

static dsv3_tokenizer *load_spec(const tok_spec *sp, int with_config) {
    char *json = build_json(sp, NULL);
    dsv3_tokenizer *tok = NULL;
    dsv3_err err = {{0}};
    dsv3_status st =
        dsv3_tokenizer_load_json(&tok, json, strlen(json), with_config ? k_config : NULL,
                                 with_config ? strlen(k_config) : 0, &err);
    if (st) fprintf(stderr, "  load failed: %s\n", err.msg);
    free(json);
    return tok;
}

static dsv3_tokenizer *load_default(void) {
    tok_spec sp = {.merges = k_merges, .pair_mask = 0x2A};
    return load_spec(&sp, 1);
}

/* Loads and expects failure with status st and a message containing `needle`. */
static void expect_load_error(const tok_spec *sp, const char *config, dsv3_status st,
                              const char *needle) {
    char *json = build_json(sp, NULL);
    dsv3_tokenizer *tok = NULL;
    dsv3_err err = {{0}};
    dsv3_status got = dsv3_tokenizer_load_json(&tok, json, strlen(json), config,
                                               config ? strlen(config) : 0, &err);
    EXPECT(got == st);
    EXPECT(tok == NULL);
    if (!strstr(err.msg, needle)) {
        fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err.msg, needle);
        dsv3_test_failed_checks++;
    }
    free(json);
}

/* Encodes text and compares with the expected ids (terminated by -1). */
static void expect_ids(const dsv3_tokenizer *tok, const char *text, size_t len, int add_special,
                       const int32_t *want) {
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err = {{0}};
    dsv3_status st = dsv3_tokenizer_encode(tok, &ids, &n, text, len, add_special, &err);
    size_t nw = 0;
    while (want[nw] >= 0)
        nw++;
    int ok = st == DSV3_OK && n == nw && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!ok) {
        fprintf(stderr, "  encode(%.*s): got [", (int)len, text);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "%s%d", i ? " " : "", ids[i]);
        fprintf(stderr, "] want [");
        for (size_t i = 0; i < nw; i++)
            fprintf(stderr, "%s%d", i ? " " : "", want[i]);
        fprintf(stderr, "] %s\n", err.msg);
        dsv3_test_failed_checks++;
    }
    free(ids);
}

static int32_t tid(const dsv3_tokenizer *tok, const char *piece) {
    return dsv3_tokenizer_token_id(tok, piece);
}

static int32_t byte_id(unsigned b) {
    return (int32_t)(2 + b);
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static int test_tokenizer_merges_in_both_json_forms(void) {
    dsv3_tokenizer *tok = load_default(); /* merges 1, 3, 5 written as pairs */
    EXPECT(tok != NULL);
    if (!tok) return 0;
    expect_ids(tok, "hello world", 11, 0,
               (const int32_t[]){tid(tok, "hello"), tid(tok, "Ġworld"), -1});
    EXPECT(tid(tok, "hello") == 261 && tid(tok, "Ġworld") == 266);
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_lower_rank_merges_first(void) {
    /* "b c" ranks before "a b": "abc" -> a + bc, never ab + c. */
    static const char *const merges[] = {"b c", "a b", "ab c", NULL};
    tok_spec sp = {.merges = merges};
    dsv3_tokenizer *tok = load_spec(&sp, 0);
    EXPECT(tok != NULL);
    if (!tok) return 0;
    expect_ids(tok, "abc", 3, 0, (const int32_t[]){byte_id('a'), tid(tok, "bc"), -1});
    expect_ids(tok, "abab", 4, 0, (const int32_t[]){tid(tok, "ab"), tid(tok, "ab"), -1});
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_byte_level_alphabet(void) {
    dsv3_tokenizer *tok = load_default();
    EXPECT(tok != NULL);
    if (!tok) return 0;
    EXPECT(strcmp(dsv3_tokenizer_piece(tok, byte_id(' ')), "Ġ") == 0);
    EXPECT(strcmp(dsv3_tokenizer_piece(tok, byte_id('\n')), "Ċ") == 0);
    EXPECT(strcmp(dsv3_tokenizer_piece(tok, byte_id('\t')), "ĉ") == 0);
    EXPECT(strcmp(dsv3_tokenizer_piece(tok, byte_id(0x00)), "Ā") == 0);
    EXPECT(strcmp(dsv3_tokenizer_piece(tok, byte_id(0x7F)), "ġ") == 0);
    EXPECT(strcmp(dsv3_tokenizer_piece(tok, byte_id(0xAD)), "Ń") == 0);
    EXPECT(strcmp(dsv3_tokenizer_piece(tok, byte_id('A')), "A") == 0);
    size_t n = 0;
    const char *b = dsv3_tokenizer_token_bytes(tok, byte_id(0xE4), &n);
    EXPECT(b && n == 1 && (unsigned char)b[0] == 0xE4);
    b = dsv3_tokenizer_token_bytes(tok, tid(tok, "Ġworld"), &n);
    EXPECT(b && n == 6 && memcmp(b, " world", 6) == 0);
    b = dsv3_tokenizer_token_bytes(tok, tid(tok, "<｜User｜>"), &n);
    EXPECT(b && n == strlen("<｜User｜>") && memcmp(b, "<｜User｜>", n) == 0);
    /* every byte encodes to its own token and back */
    for (unsigned c = 1; c < 0x80; c++) {
        char s[2] = {(char)c, 0};
        expect_ids(tok, s, 1, 0, (const int32_t[]){byte_id(c), -1});
    }
    expect_ids(tok, "\0", 1, 0, (const int32_t[]){byte_id(0), -1});
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_digits_split_in_groups_of_three(void) {
    dsv3_tokenizer *tok = load_default(); /* merges 1 2, 12 3, 4 5 */
    EXPECT(tok != NULL);
    if (!tok) return 0;
    int32_t t123 = tid(tok, "123"), t45 = tid(tok, "45");
    /* 12345 -> "123" "45"; 123123 -> "123" "123"; 1234 -> "123" "4" (not "12" "34") */
    expect_ids(tok, "12345", 5, 0, (const int32_t[]){t123, t45, -1});
    expect_ids(tok, "123123", 6, 0, (const int32_t[]){t123, t123, -1});
    expect_ids(tok, "1234", 4, 0, (const int32_t[]){t123, byte_id('4'), -1});
    /* 451 -> one piece "451": 4 5 merges, then 1 */
    expect_ids(tok, "451", 3, 0, (const int32_t[]){t45, byte_id('1'), -1});
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_cjk_run_is_its_own_piece(void) {
    dsv3_tokenizer *tok = load_default(); /* has merge "c ä" (c + first byte of 你) */
    EXPECT(tok != NULL);
    if (!tok) return 0;
    /* 你 (U+4F60) = E4 BD A0 is in the CJK split class, so "c你" is two pieces and the "cä"
     * merge (c + byte E4) cannot apply; U+4DB5 = E4 B6 B5 is a letter outside that class, so
     * "c\u4DB5" stays one piece and the merge applies. */
    expect_ids(tok, "c你", 4, 0,
               (const int32_t[]){byte_id('c'), byte_id(0xE4), byte_id(0xBD), byte_id(0xA0), -1});
    expect_ids(tok, "c\xE4\xB6\xB5", 4, 0,
               (const int32_t[]){tid(tok, "cä"), byte_id(0xB6), byte_id(0xB5), -1});
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_added_tokens_match_before_pretokenization(void) {
    dsv3_tokenizer *tok = load_default();
    EXPECT(tok != NULL);
    if (!tok) return 0;
    int32_t user = tid(tok, "<｜User｜>"), asst = tid(tok, "<｜Assistant｜>");
    EXPECT(user > 257 && asst == user + 1);
    const char *s = "x<｜User｜>he<｜Assistant｜>";
    expect_ids(tok, s, strlen(s), 0,
               (const int32_t[]){byte_id('x'), user, tid(tok, "he"), asst, -1});
    s = "<｜User｜><｜User｜>";
    expect_ids(tok, s, strlen(s), 0, (const int32_t[]){user, user, -1});
    /* a partial token is plain text */
    s = "<｜User";
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err = {{0}};
    EXPECT(dsv3_tokenizer_encode(tok, &ids, &n, s, strlen(s), 0, &err) == DSV3_OK);
    EXPECT(n > 2);
    for (size_t i = 0; i < n; i++)
        EXPECT(ids[i] != user);
    free(ids);
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_added_tokens_leftmost_longest(void) {
    tok_spec sp = {.merges = k_merges};
    int n_vocab = 0; /* added ids must follow HF's assignment: after the vocab and User/Assistant */
    char *probe = build_json(&(tok_spec){.merges = k_merges}, &n_vocab);
    free(probe);
    char added[512];
    snprintf(added, sizeof added,
             ",{\"id\":%d,\"content\":\"<a>\",\"special\":true,\"normalized\":false},"
             "{\"id\":%d,\"content\":\"<a><b>\",\"special\":true,\"normalized\":false},"
             "{\"id\":%d,\"content\":\"bc\",\"special\":false,\"normalized\":false},"
             "{\"id\":%d,\"content\":\"abc\",\"special\":false,\"normalized\":true}",
             n_vocab + 2, n_vocab + 3, n_vocab + 4, n_vocab + 5);
    sp.added = added;
    dsv3_tokenizer *tok = load_spec(&sp, 0);
    EXPECT(tok != NULL);
    if (!tok) return 0;
    int32_t a = n_vocab + 2, ab = n_vocab + 3, bc = n_vocab + 4;
    expect_ids(tok, "<a><b>", 6, 0, (const int32_t[]){ab, -1});
    expect_ids(tok, "<a><a><b>", 9, 0, (const int32_t[]){a, ab, -1});
    /* pass 0 (normalized=false) finds "bc" before pass 1 could find "abc" */
    expect_ids(tok, "abc", 3, 0, (const int32_t[]){byte_id('a'), bc, -1});
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_added_token_strip_and_single_word_flags(void) {
    int n_vocab = 0;
    char *probe = build_json(&(tok_spec){.merges = k_merges}, &n_vocab);
    free(probe);
    char added[512];
    snprintf(added, sizeof added,
             ",{\"id\":%d,\"content\":\"<m>\",\"lstrip\":true,\"rstrip\":true,"
             "\"special\":true,\"normalized\":false},"
             "{\"id\":%d,\"content\":\"[w]\",\"single_word\":true,\"special\":true,"
             "\"normalized\":false}",
             n_vocab + 2, n_vocab + 3);
    tok_spec sp = {.merges = k_merges, .added = added};
    dsv3_tokenizer *tok = load_spec(&sp, 0);
    EXPECT(tok != NULL);
    if (!tok) return 0;
    int32_t m = n_vocab + 2, w = n_vocab + 3;
    /* lstrip/rstrip swallow the White_Space around the token (incl. U+3000) */
    expect_ids(tok, "x \t<m>  y", 9, 0, (const int32_t[]){byte_id('x'), m, byte_id('y'), -1});
    const char *s = "x\xE3\x80\x80<m>\xE3\x80\x80y";
    expect_ids(tok, s, strlen(s), 0, (const int32_t[]){byte_id('x'), m, byte_id('y'), -1});
    /* single_word: matched only between non-word characters */
    expect_ids(tok, "[w] x", 5, 0, (const int32_t[]){w, byte_id(' '), byte_id('x'), -1});
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err = {{0}};
    EXPECT(dsv3_tokenizer_encode(tok, &ids, &n, "x[w]", 4, 0, &err) == DSV3_OK);
    for (size_t i = 0; i < n; i++)
        EXPECT(ids[i] != w);
    free(ids);
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_rejects_invalid_utf8_with_byte_offset(void) {
    dsv3_tokenizer *tok = load_default();
    EXPECT(tok != NULL);
    if (!tok) return 0;
    static const struct {
        const char *s;
        size_t len, offset;
    } cases[] = {
        {"ab\xC3(", 4, 2},          /* lead byte without continuation */
        {"\xC0\x80", 2, 0},         /* overlong NUL */
        {"ok \xED\xA0\x80", 6, 3},  /* UTF-16 surrogate */
        {"abc\xE4\xBD", 5, 3},      /* truncated at the end */
        {"\xF4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
        {"x\xFF", 2, 1},            /* never valid */
        {"\xE4\xBD\xA0\x80", 4, 3}, /* stray continuation byte */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 99;
        dsv3_err err = {{0}};
        dsv3_status st = dsv3_tokenizer_encode(tok, &ids, &n, cases[i].s, cases[i].len, 0, &err);
        char want[96];
        snprintf(want, sizeof want, "invalid UTF-8 at byte offset %zu", cases[i].offset);
        EXPECT(st == DSV3_EINVAL);
        EXPECT(ids == NULL && n == 0);
        if (!strstr(err.msg, want)) {
            fprintf(stderr, "  case %zu: \"%s\" lacks \"%s\"\n", i, err.msg, want);
            dsv3_test_failed_checks++;
        }
    }
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_decode_rejects_unknown_id(void) {
    dsv3_tokenizer *tok = load_default();
    EXPECT(tok != NULL);
    if (!tok) return 0;
    int32_t v = dsv3_tokenizer_vocab_size(tok);
    int32_t ids[] = {byte_id('a'), v, -5};
    char *text = (char *)1;
    size_t len = 9;
    dsv3_err err = {{0}};
    EXPECT(dsv3_tokenizer_decode(tok, &text, &len, ids, 3, 0, &err) == DSV3_EINVAL);
    EXPECT(text == NULL && len == 0);
    char want[96];
    snprintf(want, sizeof want, "id %d at position 1 is not a token", v);
    EXPECT(strstr(err.msg, want) != NULL);
    EXPECT(dsv3_tokenizer_decode(tok, &text, &len, ids + 2, 1, 0, &err) == DSV3_EINVAL);
    EXPECT(strstr(err.msg, "id -5 at position 0") != NULL);
    EXPECT(dsv3_tokenizer_piece(tok, v) == NULL && dsv3_tokenizer_piece(tok, -1) == NULL);
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_decode_replaces_invalid_utf8(void) {
    dsv3_tokenizer *tok = load_default();
    EXPECT(tok != NULL);
    if (!tok) return 0;
    static const struct {
        int32_t ids[4];
        size_t n;
        const char *want;
    } cases[] = {
        {{2 + 0xE4}, 1, "\xEF\xBF\xBD"}, /* lone lead byte */
        {{2 + 0xE4, 2 + 0xBD, 2 + 'a'},
         3,
         "\xEF\xBF\xBD"
         "a"},                                                 /* maximal subpart: one */
        {{2 + 0xFF, 2 + 0x80}, 2, "\xEF\xBF\xBD\xEF\xBF\xBD"}, /* two invalid bytes: two */
        {{2 + 0xE4, 2 + 0xBD, 2 + 0xA0}, 3, "你"},             /* split across tokens: ok */
        {{2 + 0xED, 2 + 0xA0, 2 + 0x80}, 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = NULL;
        size_t len = 0;
        dsv3_err err = {{0}};
        EXPECT(dsv3_tokenizer_decode(tok, &text, &len, cases[i].ids, cases[i].n, 0, &err) == 0);
        EXPECT(text && len == strlen(cases[i].want) && strcmp(text, cases[i].want) == 0);
        free(text);
    }
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_decode_skip_special_drops_special_tokens_only(void) {
    dsv3_tokenizer *tok = load_default();
    EXPECT(tok != NULL);
    if (!tok) return 0;
    int32_t user = tid(tok, "<｜User｜>");
    int32_t ids[] = {0, user, tid(tok, "hello"), 1};
    char *text = NULL;
    size_t len = 0;
    dsv3_err err = {{0}};
    EXPECT(dsv3_tokenizer_decode(tok, &text, &len, ids, 4, 1, &err) == DSV3_OK);
    EXPECT(text && strcmp(text, "<｜User｜>hello") == 0);
    free(text);
    EXPECT(dsv3_tokenizer_decode(tok, &text, &len, ids, 4, 0, &err) == DSV3_OK);
    EXPECT(text && strcmp(text, "<｜begin▁of▁sentence｜><｜User｜>hello<｜end▁of▁sentence｜>") == 0);
    free(text);
    EXPECT(dsv3_tokenizer_is_special(tok, 0) == 1 && dsv3_tokenizer_is_special(tok, user) == 0);
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_decode_inverts_encode(void) {
    dsv3_tokenizer *tok = load_default();
    EXPECT(tok != NULL);
    if (!tok) return 0;
    static const char *const texts[] = {
        "",
        "hello world",
        "  two  spaces\tand\ttabs\r\nCRLF\n\n\n",
        "12345678901234567890",
        "你好，世界！こんにちは",
        "👨‍👩‍👧‍👦 🏳️‍🌈 1️⃣",
        "e\xCC\x81 combining",
        "<｜User｜>hi<｜Assistant｜>",
        "\xE2\x80\xA8\xC2\x85\xE1\xA0\x8E mixed spaces \xE3\x80\x80",
        "a\0b",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t len = i == 9 ? 3 : strlen(texts[i]);
        int32_t *ids = NULL;
        size_t n = 0;
        char *back = NULL;
        size_t blen = 0;
        dsv3_err err = {{0}};
        EXPECT(dsv3_tokenizer_encode(tok, &ids, &n, texts[i], len, 0, &err) == DSV3_OK);
        EXPECT(dsv3_tokenizer_decode(tok, &back, &blen, ids, n, 0, &err) == DSV3_OK);
        EXPECT(back && blen == len && memcmp(back, texts[i], len) == 0);
        free(ids);
        free(back);
    }
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_add_special_follows_config(void) {
    dsv3_tokenizer *tok = load_default(); /* config: add_bos_token true, add_eos_token false */
    EXPECT(tok != NULL);
    if (!tok) return 0;
    EXPECT(dsv3_tokenizer_bos_id(tok) == 0 && dsv3_tokenizer_eos_id(tok) == 1);
    expect_ids(tok, "hello", 5, 1, (const int32_t[]){0, tid(tok, "hello"), -1});
    expect_ids(tok, "hello", 5, 0, (const int32_t[]){tid(tok, "hello"), -1});
    expect_ids(tok, "", 0, 1, (const int32_t[]){0, -1});
    expect_ids(tok, NULL, 0, 0, (const int32_t[]){-1});
    dsv3_tokenizer_close(tok);
    tok_spec sp = {.merges = k_merges};
    tok = load_spec(&sp, 0); /* no config: nothing added */
    EXPECT(tok != NULL);
    if (!tok) return 0;
    EXPECT(dsv3_tokenizer_bos_id(tok) == -1 && dsv3_tokenizer_eos_id(tok) == -1);
    expect_ids(tok, "hello", 5, 1, (const int32_t[]){tid(tok, "hello"), -1});
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_chat_uses_config_bos(void) {
    /* the format itself is tested in tests/test_chat.c */
    dsv3_tokenizer *tok = load_default();
    EXPECT(tok != NULL);
    if (!tok) return 0;
    dsv3_chat_msg hi[] = {{"user", "Hi"}};
    char *text = NULL;
    size_t len = 0;
    dsv3_err err = {{0}};
    EXPECT(dsv3_tokenizer_chat(tok, &text, &len, hi, 1, 1, &err) == DSV3_OK);
    EXPECT(text && strcmp(text, "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>") == 0);
    EXPECT(text && len == strlen(text));
    /* the rendered text encodes to BOS, User, H, i, Assistant with add_special = 0 */
    int32_t user = tid(tok, "<｜User｜>");
    if (text)
        expect_ids(tok, text, strlen(text), 0,
                   (const int32_t[]){0, user, byte_id('H'), byte_id('i'), user + 1, -1});
    free(text);
    dsv3_chat_msg bad[] = {{"user", "x"}, {"robot", "y"}};
    EXPECT(dsv3_tokenizer_chat(tok, &text, NULL, bad, 2, 1, &err) == DSV3_EINVAL);
    EXPECT(text == NULL && strstr(err.msg, "message 1: unknown role \"robot\"") != NULL);
    EXPECT(dsv3_tokenizer_chat(NULL, &text, NULL, hi, 1, 1, &err) == DSV3_EINVAL);
    dsv3_tokenizer_close(tok);
    tok = load_spec(&(tok_spec){.merges = k_merges}, 0); /* no config: no BOS string */
    EXPECT(tok != NULL);
    if (!tok) return 0;
    EXPECT(dsv3_tokenizer_chat(tok, &text, NULL, hi, 1, 0, &err) == DSV3_OK);
    EXPECT(text && strcmp(text, "<｜User｜>Hi") == 0);
    free(text);
    dsv3_tokenizer_close(tok);
    return 0;
}

/* Writes text to path (NULL: removes it). */
static void put_file(const char *path, const char *text) {
    if (!text) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* A tokenizer_config.json (k_config's keys) whose chat_template is `tmpl` (NULL: none). */
static char *config_with_template(const char *tmpl) {
    cJSON *c = cJSON_Parse(k_config);
    if (tmpl) cJSON_AddStringToObject(c, "chat_template", tmpl);
    char *s = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return s;
}

/* Opens dir and renders one user turn "Hi" with think; NULL on failure (message in err). */
static char *chat_hi(const char *dir, int think, int *kind, dsv3_status *st, dsv3_err *err) {
    dsv3_tokenizer *tok = NULL;
    char *text = NULL;
    *st = dsv3_tokenizer_open(&tok, dir, err);
    if (*st) return NULL;
    *kind = dsv3_tokenizer_chat_kind(tok);
    dsv3_chat_msg hi[] = {{"user", "Hi"}};
    *st = dsv3_tokenizer_chat_think(tok, think, &text, NULL, hi, 1, 1, err);
    dsv3_tokenizer_close(tok);
    return text;
}

static int test_tokenizer_chat_template_recognised_or_refused(void) {
    char dir[] = "/tmp/dsv3_test_chat_tmpl.XXXXXX";
    EXPECT(mkdtemp(dir) != NULL);
    char path[256], cfg[256], jin[256];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    snprintf(jin, sizeof jin, "%s/chat_template.jinja", dir);
    char *json = build_json(&(tok_spec){.merges = k_merges}, NULL);
    put_file(path, json);
    free(json);
    dsv3_err err = {{0}};
    dsv3_status st;
    int kind = -9;
    char *text, *c;
#define BOS_S "<｜begin▁of▁sentence｜>"
    /* each known template, from the config */
    static const struct {
        int kind, think;
        const char *want;
    } known[] = {
        {DSV3_CHAT_V3, -1, BOS_S "<｜User｜>Hi<｜Assistant｜>"},
        {DSV3_CHAT_R1, -1, BOS_S "<｜User｜>Hi<｜Assistant｜><think>\n"},
        {DSV3_CHAT_R1, 1, BOS_S "<｜User｜>Hi<｜Assistant｜><think>\n"},
        {DSV3_CHAT_V31, -1, BOS_S "<｜User｜>Hi<｜Assistant｜></think>"},
        {DSV3_CHAT_V31, 0, BOS_S "<｜User｜>Hi<｜Assistant｜></think>"},
        {DSV3_CHAT_V31, 1, BOS_S "<｜User｜>Hi<｜Assistant｜><think>"},
    };
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        put_file(cfg, c = config_with_template(dsv3_chat_template_text(known[i].kind, NULL)));
        free(c);
        text = chat_hi(dir, known[i].think, &kind, &st, &err);
        EXPECT(st == DSV3_OK && kind == known[i].kind);
        if (!text || strcmp(text, known[i].want) != 0) {
            fprintf(stderr, "  %s think %d: got \"%s\"\n", dsv3_chat_kind_name(known[i].kind),
                    known[i].think, text ? text : err.msg);
            dsv3_test_failed_checks++;
        }
        free(text);
    }
    /* no thinking switch: R1 always thinks, V3 never */
    put_file(cfg, c = config_with_template(dsv3_chat_template_text(DSV3_CHAT_R1, NULL)));
    free(c);
    EXPECT(chat_hi(dir, 0, &kind, &st, &err) == NULL && st == DSV3_EINVAL);
    EXPECT(strstr(err.msg, "deepseek-r1 template has no thinking switch") != NULL);
    /* a list of named templates: the "default" one */
    cJSON *cj = cJSON_Parse(k_config), *list = cJSON_AddArrayToObject(cj, "chat_template"),
          *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", "default");
    cJSON_AddStringToObject(e, "template", dsv3_chat_template_text(DSV3_CHAT_V31, NULL));
    cJSON_AddItemToArray(list, e);
    put_file(cfg, c = cJSON_PrintUnformatted(cj));
    free(c);
    cJSON_Delete(cj);
    text = chat_hi(dir, 1, &kind, &st, &err);
    EXPECT(st == DSV3_OK && kind == DSV3_CHAT_V31);
    free(text);
    /* one byte off: refused at chat time, naming the file; the tokenizer still loads */
    size_t n;
    const char *v3 = dsv3_chat_template_text(DSV3_CHAT_V3, &n);
    char *off = malloc(n + 2);
    memcpy(off, v3, n);
    memcpy(off + n, " ", 2);
    put_file(cfg, c = config_with_template(off));
    free(c);
    EXPECT(chat_hi(dir, -1, &kind, &st, &err) == NULL && st == DSV3_EUNSUPPORTED && kind == -2);
    EXPECT(strstr(err.msg, cfg) != NULL && strstr(err.msg, "is not one dsv3 knows") != NULL);
    /* chat_template.jinja beside a config without chat_template: recognised or refused */
    put_file(cfg, k_config);
    put_file(jin, dsv3_chat_template_text(DSV3_CHAT_R1, NULL));
    text = chat_hi(dir, -1, &kind, &st, &err);
    EXPECT(st == DSV3_OK && kind == DSV3_CHAT_R1);
    free(text);
    put_file(jin, off);
    EXPECT(chat_hi(dir, -1, &kind, &st, &err) == NULL && st == DSV3_EUNSUPPORTED);
    EXPECT(strstr(err.msg, jin) != NULL);
    free(off);
    /* no template at all: the V3 format, and a warning naming the config */
    put_file(jin, NULL);
    dsv3_tokenizer *tok = NULL;
    EXPECT(dsv3_tokenizer_open(&tok, dir, &err) == DSV3_OK);
    EXPECT(dsv3_tokenizer_chat_kind(tok) == -1);
    const char *w = dsv3_tokenizer_chat_warning(tok);
    EXPECT(w && strstr(w, cfg) && strstr(w, "no chat_template; chatting in the DeepSeek-V3 format"));
    dsv3_tokenizer_close(tok);
    text = chat_hi(dir, -1, &kind, &st, &err);
    EXPECT(text && strcmp(text, BOS_S "<｜User｜>Hi<｜Assistant｜>") == 0);
    free(text);
#undef BOS_S
    put_file(cfg, NULL);
    put_file(path, NULL);
    rmdir(dir);
    return 0;
}

static int test_tokenizer_lookups(void) {
    dsv3_tokenizer *tok = load_default();
    EXPECT(tok != NULL);
    if (!tok) return 0;
    int32_t user = tid(tok, "<｜User｜>");
    EXPECT(dsv3_tokenizer_vocab_size(tok) == user + 2);
    EXPECT(strcmp(dsv3_tokenizer_piece(tok, user), "<｜User｜>") == 0);
    EXPECT(strcmp(dsv3_tokenizer_piece(tok, 0), "<｜begin▁of▁sentence｜>") == 0);
    EXPECT(tid(tok, "<｜begin▁of▁sentence｜>") == 0);
    EXPECT(tid(tok, "Ġworld") == 266 && tid(tok, "nope") == -1 && tid(tok, NULL) == -1);
    EXPECT(dsv3_tokenizer_vocab_size(NULL) == 0 && dsv3_tokenizer_token_id(NULL, "a") == -1);
    dsv3_tokenizer_close(tok);
    dsv3_tokenizer_close(NULL);
    return 0;
}

static int test_tokenizer_rejects_malformed_json(void) {
    char *json = build_json(&(tok_spec){.merges = k_merges}, NULL);
    size_t len = strlen(json);
    dsv3_tokenizer *tok = NULL;
    dsv3_err err = {{0}};
    /* truncated at several points */
    for (size_t cut = 0; cut < len; cut += len / 7 + 1) {
        EXPECT(dsv3_tokenizer_load_json(&tok, json, cut, NULL, 0, &err) == DSV3_EFORMAT);
        EXPECT(tok == NULL && strstr(err.msg, "tokenizer: <tokenizer.json>: invalid JSON") != NULL);
    }
    EXPECT(dsv3_tokenizer_load_json(&tok, "[1,2]", 5, NULL, 0, &err) == DSV3_EFORMAT);
    EXPECT(strstr(err.msg, "top level is not an object") != NULL);
    EXPECT(dsv3_tokenizer_load_json(&tok, json, len, "{\"add_bos_token\":", 17, &err) ==
          DSV3_EFORMAT);
    EXPECT(strstr(err.msg, "<tokenizer_config.json>: invalid JSON") != NULL);
    EXPECT(dsv3_tokenizer_load_json(&tok, json, len, "{\"bos_token\":\"<nope>\"}", 22, &err) ==
          DSV3_EFORMAT);
    EXPECT(strstr(err.msg, "bos_token: \"<nope>\" is not a token") != NULL);
    free(json);
    return 0;
}

static int test_tokenizer_rejects_merge_with_unknown_token(void) {
    static const char *const merges[] = {"h e", "he zz", NULL};
    expect_load_error(&(tok_spec){.merges = merges}, NULL, DSV3_EFORMAT,
                      "model.merges[1]: token \"zz\" is not in model.vocab");
    expect_load_error(&(tok_spec){.merges_raw = "\"h e x\""}, NULL, DSV3_EFORMAT,
                      "model.merges[0]: \"h e x\" is not two tokens split by one space");
    expect_load_error(&(tok_spec){.merges_raw = "[\"h\"]"}, NULL, DSV3_EFORMAT,
                      "model.merges[0]: expected");
    /* "#version" strings are skipped, as HF does for merges.txt lines */
    char *json = build_json(&(tok_spec){.merges_raw = "\"#version: 0.2\",\"h e\""}, NULL);
    dsv3_tokenizer *tok = NULL;
    dsv3_err err = {{0}};
    EXPECT(dsv3_tokenizer_load_json(&tok, json, strlen(json), NULL, 0, &err) == DSV3_EFORMAT);
    /* the "#version" string was skipped: the error is about merges[1] "h e", whose "he" is not in
     * this vocab (built without merges) */
    EXPECT(strstr(err.msg, "model.merges[1]: token \"he\" is not in model.vocab") != NULL);
    free(json);
    return 0;
}

static int test_tokenizer_rejects_unsupported_features(void) {
    tok_spec base = {.merges = k_merges};
    char *json = build_json(&base, NULL);
    static const struct {
        const char *from, *to;
        dsv3_status st;
        const char *needle;
    } cases[] = {
        {"\"type\":\"BPE\"", "\"type\":\"WordPiece\"", DSV3_EUNSUPPORTED,
         "model.type: \"WordPiece\" not supported"},
        {"\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[]}",
         "\"normalizer\":{\"type\":\"NFC\"}", DSV3_EUNSUPPORTED, "normalizer.type: \"NFC\""},
        {"\"normalizers\":[]", "\"normalizers\":[{\"type\":\"Lowercase\"}]", DSV3_EUNSUPPORTED,
         "normalizer.normalizers[0].type: \"Lowercase\""},
        {"\"decoder\":{\"type\":\"ByteLevel\"", "\"decoder\":{\"type\":\"WordPiece\"",
         DSV3_EUNSUPPORTED, "decoder.type: \"WordPiece\""},
        {"\"dropout\":null", "\"dropout\":0.1", DSV3_EUNSUPPORTED, "model.dropout"},
        {"\"truncation\":null", "\"truncation\":{\"max_length\":5}", DSV3_EUNSUPPORTED,
         "truncation"},
        {"\"behavior\":\"Isolated\"", "\"behavior\":\"Sideways\"", DSV3_EUNSUPPORTED,
         "pre_tokenizer.pretokenizers[0].behavior: \"Sideways\""},
        {"\\\\p{N}{1,3}", "(\\\\p{N}{1,3}", DSV3_EFORMAT,
         "pre_tokenizer.pretokenizers[0].pattern.Regex: PCRE2 cannot compile"},
        {"\"add_prefix_space\":false", "\"add_prefix_space\":true", DSV3_EUNSUPPORTED,
         "pre_tokenizer.pretokenizers[3].add_prefix_space"},
        {"\"vocab\":{", "\"vocab\":{\"dup\":5,", DSV3_EFORMAT,
         "model.vocab: id 5 is given to both"},
        {"\"id\":0,", "\"id\":7,", DSV3_EFORMAT, "added_tokens[0].id: 7"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *at = strstr(json, cases[i].from);
        EXPECT(at != NULL);
        if (!at) continue;
        sb m = {0};
        sb_add(&m, "%.*s%s%s", (int)(at - json), json, cases[i].to, at + strlen(cases[i].from));
        dsv3_tokenizer *tok = NULL;
        dsv3_err err = {{0}};
        dsv3_status st = dsv3_tokenizer_load_json(&tok, m.p, m.n, NULL, 0, &err);
        if (st != cases[i].st || !strstr(err.msg, cases[i].needle)) {
            fprintf(stderr, "  case %zu: status %s, message \"%s\"; want %s with \"%s\"\n", i,
                    dsv3_status_name(st), err.msg, dsv3_status_name(cases[i].st), cases[i].needle);
            dsv3_test_failed_checks++;
        }
        dsv3_tokenizer_close(tok);
        free(m.p);
    }
    free(json);
    return 0;
}

static int test_tokenizer_rejects_invalid_utf8_in_json_strings(void) {
    /* a long run of continuation bytes: the quoted key in the message stays bounded */
    char json[512] = "{\"model\":{\"vocab\":{\"";
    size_t n = strlen(json);
    for (int i = 0; i < 200; i++)
        json[n++] = (char)0x80;
    static const char tail[] = "\":0},\"merges\":[]}}";
    memcpy(json + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;
    dsv3_tokenizer *tok = NULL;
    dsv3_err err = {{0}};
    EXPECT(dsv3_tokenizer_load_json(&tok, json, n, NULL, 0, &err) == DSV3_EFORMAT);
    EXPECT(strstr(err.msg, "key is not valid UTF-8") != NULL && strlen(err.msg) < 200);
    char added[128];
    snprintf(added, sizeof added,
             ",{\"id\":300,\"content\":\"\xC3\",\"special\":true,\"normalized\":false}");
    expect_load_error(&(tok_spec){.merges = k_merges, .added = added}, NULL, DSV3_EFORMAT,
                      "added_tokens[4].content: not valid UTF-8");
    return 0;
}

static int test_tokenizer_ignore_merges_maps_vocab_pieces_directly(void) {
    /* "abc" is in the vocab via merge "ab c"... but "b c" ranks first, so BPE gives a + bc;
     * with ignore_merges the whole pre-token "abc" maps to its own id. */
    static const char *const merges[] = {"b c", "a b", "ab c", NULL};
    tok_spec sp = {.merges = merges, .model_extra = ",\"ignore_merges\":true"};
    dsv3_tokenizer *tok = load_spec(&sp, 0);
    EXPECT(tok != NULL);
    if (!tok) return 0;
    expect_ids(tok, "abc", 3, 0, (const int32_t[]){tid(tok, "abc"), -1});
    expect_ids(tok, "abcb", 4, 0,
               (const int32_t[]){byte_id('a'), tid(tok, "bc"), byte_id('b'), -1});
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_tokenizer_open_reads_dir_or_file(void) {
    char dir[] = "/tmp/dsv3_test_tokenizer.XXXXXX";
    EXPECT(mkdtemp(dir) != NULL);
    char path[256], cfg[256];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    char *json = build_json(&(tok_spec){.merges = k_merges}, NULL);
    FILE *f = fopen(path, "wb");
    fputs(json, f);
    fclose(f);
    free(json);
    dsv3_tokenizer *tok = NULL;
    dsv3_err err = {{0}};
    EXPECT(dsv3_tokenizer_open(&tok, dir, &err) == DSV3_OK); /* config is optional */
    EXPECT(tok && dsv3_tokenizer_bos_id(tok) == -1);
    dsv3_tokenizer_close(tok);
    f = fopen(cfg, "wb");
    fputs(k_config, f);
    fclose(f);
    EXPECT(dsv3_tokenizer_open(&tok, path, &err) == DSV3_OK); /* file path: config beside it */
    EXPECT(tok && dsv3_tokenizer_bos_id(tok) == 0);
    dsv3_tokenizer_close(tok);
    f = fopen(cfg, "wb");
    fputs("{\"add_bos_token\": 3}", f);
    fclose(f);
    EXPECT(dsv3_tokenizer_open(&tok, dir, &err) == DSV3_EFORMAT);
    EXPECT(strstr(err.msg, "tokenizer_config.json: add_bos_token: expected true or false") != NULL);
    unlink(cfg);
    unlink(path);
    rmdir(dir);
    EXPECT(dsv3_tokenizer_open(&tok, dir, &err) == DSV3_EIO && tok == NULL);
    EXPECT(strstr(err.msg, dir) != NULL);
    EXPECT(dsv3_tokenizer_open(NULL, dir, &err) == DSV3_EINVAL);
    return 0;
}

static int test_tokenizer_long_inputs(void) {
    static const char *const merges[] = {"a a", "aa aa", "aaaa aaaa", NULL};
    tok_spec sp = {.merges = merges};
    dsv3_tokenizer *tok = load_spec(&sp, 0);
    EXPECT(tok != NULL);
    if (!tok) return 0;
    size_t n = 1 << 20;
    char *s = malloc(n);
    const char fill[] = {'a', ' ', '7', '\n'};
    for (size_t k = 0; k < sizeof fill; k++) {
        memset(s, fill[k], n);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        char *back = NULL;
        size_t blen = 0;
        dsv3_err err = {{0}};
        EXPECT(dsv3_tokenizer_encode(tok, &ids, &n_ids, s, n, 0, &err) == DSV3_OK);
        if (fill[k] == 'a') EXPECT(n_ids == n / 8 && ids[0] == tid(tok, "aaaaaaaa"));
        if (fill[k] != 'a') EXPECT(n_ids == n); /* no merges apply: one byte token per byte */
        EXPECT(dsv3_tokenizer_decode(tok, &back, &blen, ids, n_ids, 0, &err) == DSV3_OK);
        EXPECT(blen == n && memcmp(back, s, n) == 0);
        free(ids);
        free(back);
    }
    free(s);
    dsv3_tokenizer_close(tok);
    return 0;
}

/* ---- runner -----------------------------------------------------------------------------------
 */

static const dsv3_test tests[] = {
    {"test_tokenizer_merges_in_both_json_forms", test_tokenizer_merges_in_both_json_forms},
    {"test_tokenizer_lower_rank_merges_first", test_tokenizer_lower_rank_merges_first},
    {"test_tokenizer_byte_level_alphabet", test_tokenizer_byte_level_alphabet},
    {"test_tokenizer_digits_split_in_groups_of_three",
     test_tokenizer_digits_split_in_groups_of_three},
    {"test_tokenizer_cjk_run_is_its_own_piece", test_tokenizer_cjk_run_is_its_own_piece},
    {"test_tokenizer_added_tokens_match_before_pretokenization",
     test_tokenizer_added_tokens_match_before_pretokenization},
    {"test_tokenizer_added_tokens_leftmost_longest", test_tokenizer_added_tokens_leftmost_longest},
    {"test_tokenizer_added_token_strip_and_single_word_flags",
     test_tokenizer_added_token_strip_and_single_word_flags},
    {"test_tokenizer_rejects_invalid_utf8_with_byte_offset",
     test_tokenizer_rejects_invalid_utf8_with_byte_offset},
    {"test_tokenizer_decode_rejects_unknown_id", test_tokenizer_decode_rejects_unknown_id},
    {"test_tokenizer_decode_replaces_invalid_utf8", test_tokenizer_decode_replaces_invalid_utf8},
    {"test_tokenizer_decode_skip_special_drops_special_tokens_only",
     test_tokenizer_decode_skip_special_drops_special_tokens_only},
    {"test_tokenizer_decode_inverts_encode", test_tokenizer_decode_inverts_encode},
    {"test_tokenizer_add_special_follows_config", test_tokenizer_add_special_follows_config},
    {"test_tokenizer_chat_uses_config_bos", test_tokenizer_chat_uses_config_bos},
    {"test_tokenizer_chat_template_recognised_or_refused",
     test_tokenizer_chat_template_recognised_or_refused},
    {"test_tokenizer_lookups", test_tokenizer_lookups},
    {"test_tokenizer_rejects_malformed_json", test_tokenizer_rejects_malformed_json},
    {"test_tokenizer_rejects_merge_with_unknown_token",
     test_tokenizer_rejects_merge_with_unknown_token},
    {"test_tokenizer_rejects_unsupported_features", test_tokenizer_rejects_unsupported_features},
    {"test_tokenizer_rejects_invalid_utf8_in_json_strings",
     test_tokenizer_rejects_invalid_utf8_in_json_strings},
    {"test_tokenizer_ignore_merges_maps_vocab_pieces_directly",
     test_tokenizer_ignore_merges_maps_vocab_pieces_directly},
    {"test_tokenizer_open_reads_dir_or_file", test_tokenizer_open_reads_dir_or_file},
    {"test_tokenizer_long_inputs", test_tokenizer_long_inputs},
};

int main(int argc, char **argv) {
    return DSV3_RUN_TESTS(tests, argc, argv);
}
