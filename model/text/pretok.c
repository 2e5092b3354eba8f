/* pretok.c — pre-tokenizer Split steps (contract in pretok.h).
 *
 * Owns the regex side of tokenization: translating HF's Oniguruma patterns into PCRE2 patterns
 * with the same Unicode tables, and cutting text into pieces exactly as tokenizers'
 * `NormalizedString::split` + `Pattern::find_matches` do. Sections: Unicode tables -> pattern
 * translation -> building steps -> splitting.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/text/pretok.h"

#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/base/strbuf.h"

enum {
    MAX_STEPS = 16,          /* Split steps per pre-tokenizer (V3: 3) */
    JIT_STACK_MAX = 8 << 20, /* PCRE2 JIT stack used when the default 32 KiB runs out */
};

/* ------------------------------------------------------------------------------------------------
 * Unicode tables. HF tokenizers (0.2x) matches with Oniguruma 6.9.10, whose tables are Unicode
 * 16.0; Debian's PCRE2 10.42 has Unicode 14.0. Between the two, no code point left L, M, N, P or
 * S; these ranges joined them (measured by running both engines over every code point; the
 * table is data from the Unicode 15.0, 15.1 and 16.0 character databases). On a PCRE2 with newer
 * tables the additions are already present and adding them again changes nothing.
 * ---------------------------------------------------------------------------------------------- */

static const uint32_t new_L[][2] = {
    {0x1C89, 0x1C8A},   {0xA7CB, 0xA7CD},   {0xA7DA, 0xA7DC},   {0x105C0, 0x105F3},
    {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10EC2, 0x10EC4}, {0x1123F, 0x11240},
    {0x11380, 0x11389}, {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5},
    {0x113B7, 0x113B7}, {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11BC0, 0x11BE0},
    {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x1342F, 0x1342F},
    {0x13441, 0x13446}, {0x13460, 0x143FA}, {0x16100, 0x1611D}, {0x16D40, 0x16D6C},
    {0x18CFF, 0x18CFF}, {0x1B132, 0x1B132}, {0x1B155, 0x1B155}, {0x1DF25, 0x1DF2A},
    {0x1E030, 0x1E06D}, {0x1E4D0, 0x1E4EB}, {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5F0},
    {0x2B739, 0x2B739}, {0x2EBF0, 0x2EE5D}, {0x31350, 0x323AF},
};
static const uint32_t new_M[][2] = {
    {0x897, 0x897},     {0xCF3, 0xCF3},     {0xECE, 0xECE},     {0x10D69, 0x10D6D},
    {0x10EFC, 0x10EFF}, {0x11241, 0x11241}, {0x113B8, 0x113C0}, {0x113C2, 0x113C2},
    {0x113C5, 0x113C5}, {0x113C7, 0x113CA}, {0x113CC, 0x113D0}, {0x113D2, 0x113D2},
    {0x113E1, 0x113E2}, {0x11F00, 0x11F01}, {0x11F03, 0x11F03}, {0x11F34, 0x11F3A},
    {0x11F3E, 0x11F42}, {0x11F5A, 0x11F5A}, {0x13440, 0x13440}, {0x13447, 0x13455},
    {0x1611E, 0x1612F}, {0x1E08F, 0x1E08F}, {0x1E4EC, 0x1E4EF}, {0x1E5EE, 0x1E5EF},
};
static const uint32_t new_N[][2] = {
    {0x10D40, 0x10D49}, {0x116D0, 0x116E3}, {0x11BF0, 0x11BF9}, {0x11F50, 0x11F59},
    {0x16130, 0x16139}, {0x16D70, 0x16D79}, {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3},
    {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA},
};
static const uint32_t new_P[][2] = {
    {0x1B4E, 0x1B4F},   {0x1B7F, 0x1B7F},   {0x10D6E, 0x10D6E}, {0x113D4, 0x113D5},
    {0x113D7, 0x113D8}, {0x11B00, 0x11B09}, {0x11BE1, 0x11BE1}, {0x11F43, 0x11F4F},
    {0x16D6D, 0x16D6F}, {0x1E5FF, 0x1E5FF},
};
static const uint32_t new_S[][2] = {
    {0x2427, 0x2429},   {0x2FFC, 0x2FFF},   {0x31E4, 0x31E5},   {0x31EF, 0x31EF},
    {0x10D8E, 0x10D8F}, {0x1CC00, 0x1CCEF}, {0x1CD00, 0x1CEB3}, {0x1F6DC, 0x1F6DC},
    {0x1F774, 0x1F776}, {0x1F77B, 0x1F77F}, {0x1F7D9, 0x1F7D9}, {0x1F8B2, 0x1F8BB},
    {0x1F8C0, 0x1F8C1}, {0x1FA75, 0x1FA77}, {0x1FA87, 0x1FA89}, {0x1FA8F, 0x1FA8F},
    {0x1FAAD, 0x1FAAF}, {0x1FABB, 0x1FABF}, {0x1FAC6, 0x1FAC6}, {0x1FACE, 0x1FACF},
    {0x1FADA, 0x1FADC}, {0x1FADF, 0x1FADF}, {0x1FAE8, 0x1FAE9}, {0x1FAF7, 0x1FAF8},
    {0x1FBCB, 0x1FBEF},
};

static const struct {
    char name;
    const uint32_t (*ranges)[2];
    size_t n;
} new_in_category[] = {
    {'L', new_L, sizeof new_L / sizeof new_L[0]}, {'M', new_M, sizeof new_M / sizeof new_M[0]},
    {'N', new_N, sizeof new_N / sizeof new_N[0]}, {'P', new_P, sizeof new_P / sizeof new_P[0]},
    {'S', new_S, sizeof new_S / sizeof new_S[0]},
};

/* Unicode White_Space: Oniguruma's `\s` (PCRE2 10.42 adds U+180E). */
static const uint32_t white_space[][2] = {
    {0x09, 0x0D},     {0x20, 0x20},     {0x85, 0x85},     {0xA0, 0xA0},     {0x1680, 0x1680},
    {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};

/* ------------------------------------------------------------------------------------------------
 * Pattern translation: copies the pattern, replacing `\s`, `\S` and the five major category
 * escapes as described in pretok.h. Tracks whether it is inside a character class, because the
 * replacement is a class body there and a whole class outside.
 * ---------------------------------------------------------------------------------------------- */

static void put_range(dsv3_strbuf *b, uint32_t lo, uint32_t hi) {
    char tmp[40];
    int k = lo == hi ? snprintf(tmp, sizeof tmp, "\\x{%X}", lo)
                     : snprintf(tmp, sizeof tmp, "\\x{%X}-\\x{%X}", lo, hi);
    dsv3_strbuf_add(b, tmp, (size_t)k);
}

/* The White_Space set (or its complement) as class-body ranges. */
static void put_space_ranges(dsv3_strbuf *b, bool complement) {
    size_t n = sizeof white_space / sizeof white_space[0];
    uint32_t next = 0;
    for (size_t i = 0; i < n; i++) {
        if (!complement) {
            put_range(b, white_space[i][0], white_space[i][1]);
        } else if (white_space[i][0] > next) {
            put_range(b, next, white_space[i][0] - 1);
        }
        next = white_space[i][1] + 1;
    }
    if (complement) put_range(b, next, 0x10FFFF);
}

/* Translates p[0..n) into b (NUL-terminated). */
static void translate(dsv3_strbuf *b, const char *p, size_t n) {
    bool in_class = false;
    for (size_t i = 0; i < n;) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            if (d == 'Q') { /* literal section up to \E */
                size_t j = i + 2;
                while (j < n && !(p[j] == '\\' && j + 1 < n && p[j + 1] == 'E'))
                    j++;
                j = j < n ? j + 2 : n;
                dsv3_strbuf_add(b, p + i, j - i);
                i = j;
                continue;
            }
            if (d == 's' || d == 'S') {
                if (!in_class) dsv3_strbuf_add(b, d == 'S' ? "[^" : "[", d == 'S' ? 2 : 1);
                put_space_ranges(b, d == 'S' && in_class);
                if (!in_class) dsv3_strbuf_add(b, "]", 1);
                i += 2;
                continue;
            }
            if ((d == 'p' || d == 'P') && (i + 2 >= n || p[i + 2] != '{')) {
                dsv3_strbuf_add(b, &d, 1); /* Oniguruma: without braces, \p is the letter p */
                i += 2;
                continue;
            }
            if (d == 'p' || d == 'P') {
                size_t j = i + 3, name = j, name_len;
                while (j < n && p[j] != '}')
                    j++;
                name_len = j - name;
                j = j < n ? j + 1 : n;
                bool negate = d == 'P';
                if (name_len && name < n && p[name] == '^') negate = !negate, name++, name_len--;
                int cat = -1;
                for (size_t k = 0; name_len == 1 && k < 5; k++)
                    if (p[name] == new_in_category[k].name) cat = (int)k;
                if (cat < 0 || (negate && in_class)) { /* PCRE2's own meaning */
                    dsv3_strbuf_add(b, p + i, j - i);
                } else {
                    if (!in_class) dsv3_strbuf_add(b, negate ? "[^" : "[", negate ? 2 : 1);
                    char prop[8] = {'\\', 'p', '{', new_in_category[cat].name, '}'};
                    dsv3_strbuf_add(b, prop, 5);
                    for (size_t k = 0; k < new_in_category[cat].n; k++)
                        put_range(b, new_in_category[cat].ranges[k][0],
                                  new_in_category[cat].ranges[k][1]);
                    if (!in_class) dsv3_strbuf_add(b, "]", 1);
                }
                i = j;
                continue;
            }
            size_t k = d == 'c' && i + 2 < n ? 3 : 2; /* \c takes the next character */
            dsv3_strbuf_add(b, p + i, k);
            i += k;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            size_t j = i + 1;
            if (j < n && p[j] == '^') j++;
            if (j < n && p[j] == ']') j++; /* a leading ] is a literal */
            dsv3_strbuf_add(b, p + i, j - i);
            i = j;
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') { /* [:alpha:] */
            size_t j = i + 2;
            while (j + 1 < n && !(p[j] == ':' && p[j + 1] == ']'))
                j++;
            j = j + 1 < n ? j + 2 : n;
            dsv3_strbuf_add(b, p + i, j - i);
            i = j;
            continue;
        }
        if (in_class && c == ']') in_class = false;
        dsv3_strbuf_add(b, p + i, 1);
        i++;
    }
    dsv3_strbuf_add(b, "", 0);
}

/* ------------------------------------------------------------------------------------------------
 * Building steps
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    pcre2_code *re;
    dsv3_split_behavior behavior;
    bool invert;
} step;

struct dsv3_pretok {
    step step[MAX_STEPS];
    size_t n_steps;
};

struct dsv3_pretok_scratch {
    pcre2_match_data *md[MAX_STEPS]; /* one per step: a step's loop spans the next step's calls */
    pcre2_match_context *mctx;       /* NULL until the default JIT stack runs out */
    pcre2_jit_stack *jit_stack;
};

dsv3_status dsv3_pretok_new(dsv3_pretok **out, dsv3_err *err) {
    if (!out) return dsv3_errf(err, DSV3_EINVAL, "tokenizer: pretok_new: NULL argument");
    *out = calloc(1, sizeof **out);
    return *out ? DSV3_OK : dsv3_errf(err, DSV3_ENOMEM, "tokenizer: out of memory");
}

void dsv3_pretok_free(dsv3_pretok *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_steps; i++)
        pcre2_code_free(p->step[i].re);
    free(p);
}

size_t dsv3_pretok_steps(const dsv3_pretok *p) {
    return p ? p->n_steps : 0;
}

dsv3_status dsv3_pretok_add(dsv3_pretok *p, const char *pattern, size_t len, int literal,
                            dsv3_split_behavior behavior, int invert, const char *where,
                            dsv3_err *err) {
    if (p->n_steps == MAX_STEPS)
        return dsv3_errf(err, DSV3_EUNSUPPORTED, "tokenizer: %s: more than %d Split steps", where,
                         MAX_STEPS);
    dsv3_strbuf b = {0};
    if (literal) {
        dsv3_strbuf_add(&b, pattern, len);
        dsv3_strbuf_add(&b, "", 0);
    } else {
        translate(&b, pattern, len);
    }
    if (b.oom) {
        free(b.s);
        return dsv3_errf(err, DSV3_ENOMEM, "tokenizer: out of memory");
    }
    int code;
    PCRE2_SIZE at;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP); /* LITERAL refuses UCP */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.s, b.len, opts, &code, &at, NULL);
    free(b.s);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return dsv3_errf(err, DSV3_EFORMAT,
                         "tokenizer: %s: PCRE2 cannot compile the pattern at offset %zu: %s", where,
                         (size_t)at, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* on failure pcre2_match interprets */
    p->step[p->n_steps++] = (step){re, behavior, invert != 0};
    return DSV3_OK;
}

dsv3_status dsv3_pretok_scratch_new(dsv3_pretok_scratch **out, const dsv3_pretok *p,
                                    dsv3_err *err) {
    dsv3_pretok_scratch *s = calloc(1, sizeof *s);
    bool ok = s != NULL;
    for (size_t i = 0; ok && i < p->n_steps; i++)
        ok = (s->md[i] = pcre2_match_data_create_from_pattern(p->step[i].re, NULL)) != NULL;
    if (!ok) {
        dsv3_pretok_scratch_free(s);
        *out = NULL;
        return dsv3_errf(err, DSV3_ENOMEM, "tokenizer: out of memory");
    }
    *out = s;
    return DSV3_OK;
}

void dsv3_pretok_scratch_free(dsv3_pretok_scratch *s) {
    if (!s) return;
    for (size_t i = 0; i < MAX_STEPS; i++)
        pcre2_match_data_free(s->md[i]);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit_stack);
    free(s);
}

/* ------------------------------------------------------------------------------------------------
 * Splitting (tokenizers normalizer.rs `split`, pattern.rs `find_matches`). Step k cuts a piece
 * into segments: matches and the gaps between them, searching from the end of the previous
 * match with the subject limited to the piece. As Oniguruma's find_iter does, an empty match
 * right at the previous match's end is skipped by advancing one character. The behaviour folds
 * the segments into pieces, empty pieces are dropped, and each piece goes to step k + 1.
 * ---------------------------------------------------------------------------------------------- */

typedef struct {
    const dsv3_pretok *p;
    dsv3_pretok_scratch *s;
    const char *text;
    dsv3_pretok_emit emit;
    void *ctx;
    dsv3_err *err;
} split_ctx;

typedef struct {
    bool have;
    size_t s, e;
    bool m;
} pending;

static dsv3_status split_piece(const split_ctx *c, size_t k, size_t s, size_t e);

static dsv3_status next_step(const split_ctx *c, size_t k, size_t s, size_t e) {
    return e > s ? split_piece(c, k + 1, s, e) : DSV3_OK;
}

/* Feeds one segment [s, e) (is_match m) of step k through its behaviour. */
static dsv3_status fold(const split_ctx *c, size_t k, pending *pd, bool *prev_m, size_t s, size_t e,
                        bool m) {
    const step *sp = &c->p->step[k];
    m ^= sp->invert;
    dsv3_status st = DSV3_OK;
    switch (sp->behavior) {
    case DSV3_SPLIT_ISOLATED:
        st = next_step(c, k, s, e);
        break;
    case DSV3_SPLIT_REMOVED:
        if (!m) st = next_step(c, k, s, e);
        break;
    case DSV3_SPLIT_CONTIGUOUS:             /* runs of segments with equal is_match join */
    case DSV3_SPLIT_MERGED_WITH_PREVIOUS: { /* a match joins the piece before it unless that
                                               segment was a match */
        bool join = sp->behavior == DSV3_SPLIT_CONTIGUOUS ? m == *prev_m : m && !*prev_m;
        if (join && pd->have) {
            pd->e = e;
        } else {
            if (pd->have) st = next_step(c, k, pd->s, pd->e);
            *pd = (pending){true, s, e, m};
        }
        break;
    }
    case DSV3_SPLIT_MERGED_WITH_NEXT: /* a match joins the segment after it unless that is a match
                                       */
        if (pd->have && !m) {
            pd->have = false;
            st = next_step(c, k, pd->s, e);
        } else {
            if (pd->have) st = next_step(c, k, pd->s, pd->e);
            pd->have = false;
            if (!st && m)
                *pd = (pending){true, s, e, true};
            else if (!st)
                st = next_step(c, k, s, e);
        }
        break;
    }
    *prev_m = m;
    return st;
}

/* Bytes in the UTF-8 character whose lead byte is b. */
static size_t char_len(unsigned char b) {
    return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

static dsv3_status split_piece(const split_ctx *c, size_t k, size_t s, size_t e) {
    if (k == c->p->n_steps) return c->emit(c->ctx, s, e);
    const step *sp = &c->p->step[k];
    dsv3_pretok_scratch *sc = c->s;
    PCRE2_SPTR subj = (PCRE2_SPTR)(c->text + s);
    size_t n = e - s, from = 0, prev = 0, last_match_end = SIZE_MAX;
    pending pd = {0};
    bool prev_m = false;
    dsv3_status st = DSV3_OK;
    while (from <= n) {
        int rc = pcre2_match(sp->re, subj, n, from, PCRE2_NO_UTF_CHECK, sc->md[k], sc->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !sc->jit_stack) {
            sc->jit_stack = pcre2_jit_stack_create(32 << 10, JIT_STACK_MAX, NULL);
            sc->mctx = pcre2_match_context_create(NULL);
            if (!sc->jit_stack || !sc->mctx)
                return dsv3_errf(c->err, DSV3_ENOMEM, "tokenizer: encode: out of memory");
            pcre2_jit_stack_assign(sc->mctx, NULL, sc->jit_stack);
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return dsv3_errf(c->err, DSV3_EUNSUPPORTED,
                             "tokenizer: encode: pre_tokenizer Split step %zu failed at byte "
                             "offset %zu: %s",
                             k, s + from, (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md[k]);
        size_t ms = ov[0], me = ov[1];
        if (me < ms || ms < prev) ms = me = from; /* only \K tricks do this: take it as empty */
        if (me == ms && me == last_match_end) {
            from += from < n ? char_len(subj[from]) : 1;
            continue;
        }
        from = last_match_end = me;
        if (ms > prev) st = fold(c, k, &pd, &prev_m, s + prev, s + ms, false);
        if (!st) st = fold(c, k, &pd, &prev_m, s + ms, s + me, true);
        if (st) return st;
        prev = me;
    }
    if (prev < n) st = fold(c, k, &pd, &prev_m, s + prev, e, false);
    if (!st && pd.have) st = next_step(c, k, pd.s, pd.e);
    return st;
}

dsv3_status dsv3_pretok_split(const dsv3_pretok *p, dsv3_pretok_scratch *s, const char *text,
                              size_t start, size_t end, dsv3_pretok_emit emit, void *ctx,
                              dsv3_err *err) {
    if (end <= start) return DSV3_OK;
    split_ctx c = {p, s, text, emit, ctx, err};
    return split_piece(&c, 0, start, end);
}
