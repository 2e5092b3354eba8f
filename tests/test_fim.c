/* test_fim.c — unit tests for model/fim (PSM Fill-in-Middle) on the generated test tokenizer.
 *
 * The tokenizer comes from scripts/gen_tokenizer.py (DeepSeek-V3 structure, vocab 1024, with
 * <｜fim▁hole｜> = 1019, <｜fim▁begin｜> = 1020, <｜fim▁end｜> = 1021), written to a temporary
 * directory; DSV3_TEST_TOKENIZER=DIR uses an existing one instead. Without /usr/bin/python3
 * every test is skipped (exit 77).
 * Usage: test_fim [NAME...] runs the named tests (default: all).
 */
#include "model/text/fim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/runner.h"

static dsv3_tokenizer *g_tok; /* the test tokenizer (opened by main) */
static const char *g_tok_dir; /* its directory */

/* ids of text (no specials), appended to out at *n. */
static void enc_append(int32_t *out, size_t *n, const char *text) {
    int32_t *ids = NULL;
    size_t k = 0;
    dsv3_err err = {{0}};
    if (dsv3_tokenizer_encode(g_tok, &ids, &k, text, strlen(text), 0, &err)) {
        fprintf(stderr, "  encode: %s\n", err.msg);
        dsv3_test_failed_checks++;
    }
    if (k) memcpy(out + *n, ids, k * sizeof *ids);
    *n += k;
    free(ids);
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || !memcmp(a, b, na * sizeof *a));
}

static const char *const k_docs[] = {
    "def add(a, b):\n    return a + b\n",
    "The quick brown fox jumps over the lazy dog.",
    "héllo wörld — 日本語のテキスト, ça va? 12345",
    "",
    "x",
    "int main(void) { return 0; }\n",
};
#define N_DOCS (sizeof k_docs / sizeof k_docs[0])

/* ---------------------------------------------------------------- tests ----------------- */

/* The report's layout, by hand: begin, prefix, hole, suffix, end, middle; the sentinels are the
 * tokenizer's added tokens; decoding gives the text with the sentinel strings in place. */
static int test_fim_psm_exact_layout(void) {
    dsv3_fim_tokens t;
    EXPECT(dsv3_fim_token_ids(&t, g_tok, NULL) == DSV3_OK);
    EXPECT(t.hole == 1019 && t.begin == 1020 && t.end == 1021);
    const char *pre = "def f(x):\n    ", *mid = "return x * 2", *suf = "\n\nprint(f(3))\n";
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err = {{0}};
    EXPECT(dsv3_fim_psm(&ids, &n, g_tok, pre, strlen(pre), suf, strlen(suf), mid, strlen(mid),
                       &err) == DSV3_OK);
    int32_t want[256];
    size_t k = 0;
    want[k++] = 1020;
    enc_append(want, &k, pre);
    want[k++] = 1019;
    enc_append(want, &k, suf);
    want[k++] = 1021;
    enc_append(want, &k, mid);
    EXPECT(same_ids(ids, n, want, k));
    char *text = NULL;
    size_t len = 0;
    EXPECT(dsv3_tokenizer_decode(g_tok, &text, &len, ids, n, 0, &err) == DSV3_OK);
    EXPECT(text && !strcmp(text, "<｜fim▁begin｜>def f(x):\n    <｜fim▁hole｜>\n\nprint(f(3))\n"
                                "<｜fim▁end｜>return x * 2"));
    free(text);
    free(ids);
    /* empty parts are allowed and give only the sentinels */
    EXPECT(dsv3_fim_psm(&ids, &n, g_tok, NULL, 0, NULL, 0, NULL, 0, &err) == DSV3_OK);
    const int32_t only[3] = {1020, 1019, 1021};
    EXPECT(same_ids(ids, n, only, 3));
    free(ids);
    return 0;
}

/* Rate 0: every document gives exactly the tokenizer's ids, for any seed. */
static int test_fim_rate_zero_leaves_documents_unchanged(void) {
    for (uint64_t seed = 0; seed < 3; seed++)
        for (size_t d = 0; d < N_DOCS; d++) {
            const dsv3_fim_opts o = {.rate = 0, .seed = seed};
            int32_t *ids = NULL, plain[512];
            size_t n = 0, k = 0;
            int applied = -1;
            dsv3_err err = {{0}};
            EXPECT(dsv3_fim_document(&ids, &n, &applied, g_tok, &o, d, k_docs[d], strlen(k_docs[d]),
                                    &err) == DSV3_OK);
            enc_append(plain, &k, k_docs[d]);
            EXPECT(applied == 0);
            EXPECT(same_ids(ids, n, plain, k));
            free(ids);
        }
    return 0;
}

/* Rate 1: every document is rearranged, with one of each sentinel, begin first; the parts are
 * the text cut at the drawn positions, on character boundaries. */
static int test_fim_rate_one_transforms_every_document(void) {
    const dsv3_fim_opts o = {.rate = 1, .seed = 42};
    for (size_t d = 0; d < N_DOCS; d++) {
        const char *text = k_docs[d];
        const size_t len = strlen(text);
        int32_t *ids = NULL, want[512];
        size_t n = 0, k = 0;
        int applied = 0;
        dsv3_err err = {{0}};
        EXPECT(dsv3_fim_document(&ids, &n, &applied, g_tok, &o, d, text, len, &err) == DSV3_OK);
        EXPECT(applied == 1);
        EXPECT(n >= 3 && ids[0] == 1020);
        int begins = 0, holes = 0, ends = 0;
        for (size_t i = 0; i < n; i++) {
            begins += ids[i] == 1020;
            holes += ids[i] == 1019;
            ends += ids[i] == 1021;
        }
        EXPECT(begins == 1 && holes == 1 && ends == 1);
        const dsv3_fim_cut c = dsv3_fim_draw(&o, d, text, len);
        EXPECT(c.apply && c.prefix_end <= c.middle_end && c.middle_end <= len);
        EXPECT(c.prefix_end == len || ((unsigned char)text[c.prefix_end] & 0xC0) != 0x80);
        EXPECT(c.middle_end == len || ((unsigned char)text[c.middle_end] & 0xC0) != 0x80);
        char part[3][256];
        snprintf(part[0], sizeof part[0], "%.*s", (int)c.prefix_end, text);
        snprintf(part[1], sizeof part[1], "%.*s", (int)(c.middle_end - c.prefix_end),
                 text + c.prefix_end);
        snprintf(part[2], sizeof part[2], "%s", text + c.middle_end);
        want[k++] = 1020;
        enc_append(want, &k, part[0]);
        want[k++] = 1019;
        enc_append(want, &k, part[2]);
        want[k++] = 1021;
        enc_append(want, &k, part[1]);
        EXPECT(same_ids(ids, n, want, k));
        free(ids);
    }
    return 0;
}

/* The seed makes it reproducible: the same (seed, document) gives the same ids whatever came
 * before; another seed gives other cuts; about `rate` of the documents are chosen. */
static int test_fim_seed_makes_it_reproducible(void) {
    const char *text = "0123456789abcdefghijklmnopqrstuvwxyz";
    const size_t len = strlen(text);
    const dsv3_fim_opts a = {.rate = 1, .seed = 7}, b = {.rate = 1, .seed = 8};
    int differ = 0;
    for (uint64_t d = 0; d < 50; d++) {
        const dsv3_fim_cut x = dsv3_fim_draw(&a, d, text, len), y = dsv3_fim_draw(&a, d, text, len);
        const dsv3_fim_cut z = dsv3_fim_draw(&b, d, text, len);
        EXPECT(x.prefix_end == y.prefix_end && x.middle_end == y.middle_end);
        differ += x.prefix_end != z.prefix_end || x.middle_end != z.middle_end;
    }
    EXPECT(differ > 40);
    int32_t *i1 = NULL, *i2 = NULL;
    size_t n1 = 0, n2 = 0;
    EXPECT(dsv3_fim_document(&i1, &n1, NULL, g_tok, &a, 12, text, len, NULL) == DSV3_OK);
    EXPECT(dsv3_fim_document(&i2, &n2, NULL, g_tok, &b, 3, text, len, NULL) ==
          DSV3_OK); /* other calls between */
    free(i2);
    EXPECT(dsv3_fim_document(&i2, &n2, NULL, g_tok, &a, 12, text, len, NULL) == DSV3_OK);
    EXPECT(same_ids(i1, n1, i2, n2));
    free(i1);
    free(i2);
    /* the report's rate: 0.1 of 4000 documents, within 4 sigma (sigma = 19) */
    const dsv3_fim_opts r = {.rate = 0.1, .seed = 2024};
    int chosen = 0;
    for (uint64_t d = 0; d < 4000; d++)
        chosen += dsv3_fim_draw(&r, d, text, len).apply;
    EXPECT(chosen > 324 && chosen < 476);
    return 0;
}

/* The prompt for filling: [BOS] begin prefix hole suffix end, and nothing of a middle. */
static int test_fim_prompt_has_no_middle(void) {
    const char *pre = "for i in range(", *suf = "):\n    print(i)\n";
    int32_t *ids = NULL, want[256];
    size_t n = 0, k = 0;
    dsv3_err err = {{0}};
    EXPECT(dsv3_fim_prompt(&ids, &n, g_tok, pre, strlen(pre), suf, strlen(suf), 1, &err) == DSV3_OK);
    want[k++] = dsv3_tokenizer_bos_id(g_tok);
    want[k++] = 1020;
    enc_append(want, &k, pre);
    want[k++] = 1019;
    enc_append(want, &k, suf);
    want[k++] = 1021;
    EXPECT(want[0] == 0);
    EXPECT(same_ids(ids, n, want, k));
    free(ids);
    EXPECT(dsv3_fim_prompt(&ids, &n, g_tok, pre, strlen(pre), suf, strlen(suf), 0, &err) == DSV3_OK);
    EXPECT(same_ids(ids, n, want + 1, k - 1));
    free(ids);
    return 0;
}

/* A tokenizer without the FIM sentinels: a clear error from every entry point, even at rate 0. */
static int test_fim_tokenizer_without_fim_tokens_errors(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", g_tok_dir);
    size_t got = 0;
    char *json = test_read_file(path, &got);
    EXPECT(json != NULL);
    if (!json) return 0;
    /* rename <｜fim▁begin｜> to <｜fim▁start｜> in place (the same number of bytes) */
    const char *from = "fim▁begin", *to = "fim▁start";
    for (char *p = json; (p = strstr(p, from)); p += strlen(to))
        memcpy(p, to, strlen(to));
    dsv3_tokenizer *tok = NULL;
    dsv3_err err = {{0}};
    EXPECT(dsv3_tokenizer_load_json(&tok, json, got, NULL, 0, &err) == DSV3_OK);
    free(json);
    if (!tok) return 0;
    const char *want =
        "fim: the tokenizer has no <｜fim▁begin｜> token (FIM needs <｜fim▁begin｜>, "
        "<｜fim▁hole｜> and <｜fim▁end｜> in tokenizer.json's added_tokens)";
    dsv3_fim_tokens t;
    EXPECT(dsv3_fim_token_ids(&t, tok, &err) == DSV3_EINVAL);
    EXPECT(!strcmp(err.msg, want));
    int32_t *ids = NULL;
    size_t n = 7;
    const dsv3_fim_opts o = {.rate = 0, .seed = 1};
    err.msg[0] = 0;
    EXPECT(dsv3_fim_document(&ids, &n, NULL, tok, &o, 0, "abc", 3, &err) == DSV3_EINVAL);
    EXPECT(!strcmp(err.msg, want) && ids == NULL && n == 0);
    err.msg[0] = 0;
    EXPECT(dsv3_fim_prompt(&ids, &n, tok, "a", 1, "b", 1, 0, &err) == DSV3_EINVAL);
    EXPECT(!strcmp(err.msg, want));
    dsv3_tokenizer_close(tok);
    return 0;
}

static int test_fim_rejects_bad_arguments(void) {
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err = {{0}};
    dsv3_fim_opts o = {.rate = 1.5, .seed = 0};
    EXPECT(dsv3_fim_document(&ids, &n, NULL, g_tok, &o, 0, "abc", 3, &err) == DSV3_EINVAL);
    EXPECT(strstr(err.msg, "rate 1.5 is not in [0, 1]") != NULL);
    o.rate = 1;
    EXPECT(dsv3_fim_document(&ids, &n, NULL, g_tok, &o, 0, NULL, 3, &err) == DSV3_EINVAL);
    EXPECT(dsv3_fim_psm(&ids, &n, NULL, "a", 1, "b", 1, "c", 1, &err) == DSV3_EINVAL);
    /* invalid UTF-8 names the document and the part */
    const char bad[] = "ok \xff\xfe bytes";
    EXPECT(dsv3_fim_document(&ids, &n, NULL, g_tok, &o, 5, bad, sizeof bad - 1, &err) ==
          DSV3_EINVAL);
    EXPECT(!strncmp(err.msg, "fim: document 5: ", 17) && strstr(err.msg, "invalid UTF-8"));
    EXPECT(ids == NULL && n == 0);
    return 0;
}

/* ---------------------------------------------------------------- runner ---------------- */

static const dsv3_test tests[] = {
    {"test_fim_psm_exact_layout", test_fim_psm_exact_layout},
    {"test_fim_rate_zero_leaves_documents_unchanged",
     test_fim_rate_zero_leaves_documents_unchanged},
    {"test_fim_rate_one_transforms_every_document", test_fim_rate_one_transforms_every_document},
    {"test_fim_seed_makes_it_reproducible", test_fim_seed_makes_it_reproducible},
    {"test_fim_prompt_has_no_middle", test_fim_prompt_has_no_middle},
    {"test_fim_tokenizer_without_fim_tokens_errors", test_fim_tokenizer_without_fim_tokens_errors},
    {"test_fim_rejects_bad_arguments", test_fim_rejects_bad_arguments},
};

int main(int argc, char **argv) {
    char tmp[] = "/tmp/dsv3_test_fim_XXXXXX";
    const char *dir = getenv("DSV3_TEST_TOKENIZER");
    int made = 0;
    if (!dir || !*dir) {
        if (access("/usr/bin/python3", X_OK) != 0 || !mkdtemp(tmp)) {
            printf("skip: needs /usr/bin/python3 to generate the test tokenizer\n");
            return 77;
        }
        char cmd[512];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/gen_tokenizer.py %s >/dev/null", tmp);
        if (system(cmd) != 0) {
            printf("skip: scripts/gen_tokenizer.py failed (run from the repository root)\n");
            rmdir(tmp);
            return 77;
        }
        dir = tmp;
        made = 1;
    }
    g_tok_dir = dir;
    dsv3_err err = {{0}};
    if (dsv3_tokenizer_open(&g_tok, dir, &err)) {
        fprintf(stderr, "cannot open the test tokenizer: %s\n", err.msg);
        return 1;
    }
    const int rc = DSV3_RUN_TESTS(tests, argc, argv);
    dsv3_tokenizer_close(g_tok);
    if (made) {
        char path[600];
        snprintf(path, sizeof path, "%s/tokenizer.json", tmp);
        unlink(path);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", tmp);
        unlink(path);
        rmdir(tmp);
    }
    return rc;
}
