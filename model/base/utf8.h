/* utf8.h — UTF-8 validation shared by the renderers and the Jupyter wire layer, and the
 * visible form of a token's text (utf8.c).
 *
 * No state. Valid means RFC 3629: no overlong forms, no UTF-16 surrogates, nothing
 * past U+10FFFF. (The tokenizer's decoder replaces invalid input by maximal subparts and the
 * streaming detokenizer waits for incomplete sequences: their own rules, in their own files.)
 */
#ifndef DSV3_UTF8_H
#define DSV3_UTF8_H

#include <stddef.h>

/* Length (1-4) of the valid UTF-8 sequence at s[0..n), n >= 1, or 0 if it is not one. */
static inline size_t dsv3_utf8_seq_len(const unsigned char *s, size_t n) {
    const unsigned c = s[0];
    if (c < 0x80) return 1;
    const size_t len = c >= 0xC2 && c <= 0xDF   ? 2
                       : c >= 0xE0 && c <= 0xEF ? 3
                       : c >= 0xF0 && c <= 0xF4 ? 4
                                                : 0;
    if (!len || len > n) return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0; /* UTF-16 surrogate */
    if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && s[1] >= 0x90) return 0; /* past U+10FFFF */
    return len;
}

/* The text of s[0..n) as a reader should see it in a table or a figure: a space is '␣', a
 * newline '↵', a tab '⇥', a carriage return '␍', other control bytes and bytes that are not
 * valid UTF-8 (a token may hold part of a character) are written "\xNN"; everything else is
 * copied. An empty input gives "∅". Returns a malloc'd string, NULL when out of memory. */
char *dsv3_utf8_visible(const char *s, size_t n);

#endif
