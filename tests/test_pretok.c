/* test_pretok.c — unit tests for model/text/pretok (pre-tokenizer Split steps).
 *
 * The behaviour cases are HF's own documented example ("the-final--countdown" split on "-");
 * every expected split below was checked against the HF tokenizers library (preTokenizeString).
 * Usage: test_pretok [NAME...] runs the named tests (default: all).
 */
#include "model/text/pretok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/runner.h"


typedef struct {
    const char *text;
    char out[1024]; /* pieces joined by '|' */
    size_t n;
} collect;

static dsv3_status on_piece(void *ctx, size_t s, size_t e) {
    collect *c = ctx;
    c->n += (size_t)snprintf(c->out + c->n, sizeof c->out - c->n, "%s%.*s", c->n ? "|" : "",
                             (int)(e - s), c->text + s);
    return DSV3_OK;
}

typedef struct {
    const char *pattern;
    int literal;
    dsv3_split_behavior behavior;
    int invert;
} step_spec;

/* Splits text with the given steps and compares the '|'-joined pieces with want. */
static void expect_pieces(const step_spec *steps, size_t n_steps, const char *text,
                          const char *want) {
    dsv3_pretok *p = NULL;
    dsv3_pretok_scratch *s = NULL;
    dsv3_err err = {{0}};
    EXPECT(dsv3_pretok_new(&p, &err) == DSV3_OK);
    for (size_t i = 0; i < n_steps; i++)
        EXPECT(dsv3_pretok_add(p, steps[i].pattern, strlen(steps[i].pattern), steps[i].literal,
                              steps[i].behavior, steps[i].invert, "test", &err) == DSV3_OK);
    EXPECT(dsv3_pretok_steps(p) == n_steps);
    EXPECT(dsv3_pretok_scratch_new(&s, p, &err) == DSV3_OK);
    collect c = {.text = text};
    EXPECT(dsv3_pretok_split(p, s, text, 0, strlen(text), on_piece, &c, &err) == DSV3_OK);
    if (strcmp(c.out, want) != 0) {
        fprintf(stderr, "  split(\"%s\"): got \"%s\", want \"%s\"\n", text, c.out, want);
        dsv3_test_failed_checks++;
    }
    dsv3_pretok_scratch_free(s);
    dsv3_pretok_free(p);
}

static void expect_one(const char *pattern, const char *text, const char *want) {
    step_spec st = {pattern, 0, DSV3_SPLIT_ISOLATED, 0};
    expect_pieces(&st, 1, text, want);
}

static int test_pretok_behaviors_match_hf_documentation(void) {
    static const struct {
        dsv3_split_behavior b;
        const char *want;
    } cases[] = {
        {DSV3_SPLIT_REMOVED, "the|final|countdown"},
        {DSV3_SPLIT_ISOLATED, "the|-|final|-|-|countdown"},
        {DSV3_SPLIT_MERGED_WITH_PREVIOUS, "the-|final-|-|countdown"},
        {DSV3_SPLIT_MERGED_WITH_NEXT, "the|-final|-|-countdown"},
        {DSV3_SPLIT_CONTIGUOUS, "the|-|final|--|countdown"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        step_spec st = {"-", 1, cases[i].b, 0};
        expect_pieces(&st, 1, "the-final--countdown", cases[i].want);
    }
    return 0;
}

static int test_pretok_invert_swaps_matches_and_gaps(void) {
    step_spec removed = {"-", 1, DSV3_SPLIT_REMOVED, 1};
    expect_pieces(&removed, 1, "the-final--countdown", "-|-|-");
    step_spec merged = {"-", 1, DSV3_SPLIT_MERGED_WITH_PREVIOUS, 1};
    expect_pieces(&merged, 1, "the-final--countdown", "the|-final|-|-countdown");
    return 0;
}

static int test_pretok_literal_pattern_has_no_metacharacters(void) {
    step_spec st = {".", 1, DSV3_SPLIT_ISOLATED, 0};
    expect_pieces(&st, 1, "a.b", "a|.|b");
    step_spec rx = {".", 0, DSV3_SPLIT_REMOVED, 0};
    expect_pieces(&rx, 1, "a.b", "");
    return 0;
}

static int test_pretok_empty_matches_advance_one_character(void) {
    /* "b*" matches empty between characters; Removed keeps the gaps, each one character */
    step_spec st = {"b*", 0, DSV3_SPLIT_REMOVED, 0};
    expect_pieces(&st, 1, "abbcé", "a|c|é");
    step_spec iso = {"x*", 0, DSV3_SPLIT_ISOLATED, 0};
    expect_pieces(&iso, 1, "aéz", "a|é|z");
    return 0;
}

static int test_pretok_steps_apply_to_each_piece_alone(void) {
    /* step 2's lookahead cannot see past the piece step 1 made: "ab  " ends its piece, so both
     * spaces match \s+(?!\S) together (seeing the "1" would leave the last space apart) */
    step_spec st[] = {{"\\p{N}{1,3}", 0, DSV3_SPLIT_ISOLATED, 0},
                      {"\\s+(?!\\S)|\\s+|\\p{L}+", 0, DSV3_SPLIT_ISOLATED, 0}};
    expect_pieces(st, 2, "ab  1234 cd", "ab|  |123|4| |cd");
    return 0;
}

static int test_pretok_space_is_unicode_white_space(void) {
    expect_one("\\s+",
               "a\xE1\xA0\x8E"
               "b",
               "a\xE1\xA0\x8E"
               "b"); /* U+180E is not a space */
    expect_one("\\s+",
               "a\xE3\x80\x80\xC2\x85\xC2\xA0"
               "b", /* U+3000 U+0085 U+00A0 */
               "a|\xE3\x80\x80\xC2\x85\xC2\xA0|b");
    expect_one("[\\S]+", "a b", "a| |b");
    expect_one("\\S+", "\xE1\xA0\x8E x", "\xE1\xA0\x8E| |x");
    expect_one("[^\\s]+",
               "ab\xE1\xA0\x8E"
               " c",
               "ab\xE1\xA0\x8E| |c");
    return 0;
}

static int test_pretok_categories_include_unicode_16(void) {
    /* U+1405B (Egyptian Hieroglyphs Ext-A, Unicode 16) and U+31350 (CJK Ext H, Unicode 15) are
     * letters for HF's Oniguruma; U+1FA89 (Unicode 16) is a symbol; U+1E5F1 a digit. */
    expect_one("\\p{L}+", "a\xF0\x94\x81\x9B\xF0\xB1\x8D\x90!",
               "a\xF0\x94\x81\x9B\xF0\xB1\x8D\x90|!");
    expect_one("\\p{^L}+", "ab!?c", "ab|!?|c");
    /* Oniguruma: \pL without braces is the two letters "pL" */
    expect_one("\\pL+", "xpLLLy", "x|pLLL|y");
    expect_one("[\\pL]+", "pLLa", "pLL|a");
    expect_one("[\\p{L}\\p{M}]+", "x\xF0\x94\x81\x9B", "x\xF0\x94\x81\x9B");
    expect_one("[^\\p{L}]+", "!\xF0\x94\x81\x9B", "!|\xF0\x94\x81\x9B");
    expect_one("\\P{L}+", "!?\xF0\x94\x81\x9B", "!?|\xF0\x94\x81\x9B");
    expect_one("\\p{S}", "\xF0\x9F\xAA\x89", "\xF0\x9F\xAA\x89");
    expect_one("\\p{N}{1,3}",
               "\xF0\x9E\x97\xB1\xF0\x9E\x97\xB2"
               "12",
               "\xF0\x9E\x97\xB1\xF0\x9E\x97\xB2"
               "1|2");
    expect_one("\\p{L}", "\xF3\xB0\x80\x80", "\xF3\xB0\x80\x80"); /* PUA: a gap, not a letter */
    return 0;
}

static int test_pretok_rejects_bad_pattern(void) {
    dsv3_pretok *p = NULL;
    dsv3_err err = {{0}};
    EXPECT(dsv3_pretok_new(&p, &err) == DSV3_OK);
    EXPECT(dsv3_pretok_add(p, "(a", 2, 0, DSV3_SPLIT_ISOLATED, 0, "pre_tokenizer.pattern.Regex",
                          &err) == DSV3_EFORMAT);
    EXPECT(strstr(err.msg, "tokenizer: pre_tokenizer.pattern.Regex: PCRE2 cannot compile the "
                          "pattern at offset 2") != NULL);
    for (int i = 0; i < 16; i++)
        EXPECT(dsv3_pretok_add(p, "a", 1, 1, DSV3_SPLIT_ISOLATED, 0, "x", &err) == DSV3_OK);
    EXPECT(dsv3_pretok_add(p, "a", 1, 1, DSV3_SPLIT_ISOLATED, 0, "x", &err) == DSV3_EUNSUPPORTED);
    dsv3_pretok_free(p);
    dsv3_pretok_free(NULL);
    dsv3_pretok_scratch_free(NULL);
    return 0;
}

static int test_pretok_no_steps_gives_whole_text(void) {
    expect_pieces(NULL, 0, "all of it", "all of it");
    expect_pieces(NULL, 0, "", "");
    return 0;
}

static const dsv3_test tests[] = {
    {"test_pretok_behaviors_match_hf_documentation", test_pretok_behaviors_match_hf_documentation},
    {"test_pretok_invert_swaps_matches_and_gaps", test_pretok_invert_swaps_matches_and_gaps},
    {"test_pretok_literal_pattern_has_no_metacharacters",
     test_pretok_literal_pattern_has_no_metacharacters},
    {"test_pretok_empty_matches_advance_one_character",
     test_pretok_empty_matches_advance_one_character},
    {"test_pretok_steps_apply_to_each_piece_alone", test_pretok_steps_apply_to_each_piece_alone},
    {"test_pretok_space_is_unicode_white_space", test_pretok_space_is_unicode_white_space},
    {"test_pretok_categories_include_unicode_16", test_pretok_categories_include_unicode_16},
    {"test_pretok_rejects_bad_pattern", test_pretok_rejects_bad_pattern},
    {"test_pretok_no_steps_gives_whole_text", test_pretok_no_steps_gives_whole_text},
};

int main(int argc, char **argv) {
    return DSV3_RUN_TESTS(tests, argc, argv);
}
