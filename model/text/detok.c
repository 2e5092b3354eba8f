/* detok.c — see detok.h. UTF-8 well-formedness per Unicode Table 3-7 (no overlongs, no
 * surrogates, nothing above U+10FFFF). */
#include "model/text/detok.h"

#include <string.h>

/* Length of the character a lead byte starts, 0 if it cannot start one. */
static int lead_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* 1 if byte k (k >= 1) of a sequence led by `lead` is a valid continuation. */
static int cont_ok(unsigned char lead, int k, unsigned char c) {
    if (k == 1) {
        if (lead == 0xE0) return c >= 0xA0 && c <= 0xBF;
        if (lead == 0xED) return c >= 0x80 && c <= 0x9F;
        if (lead == 0xF0) return c >= 0x90 && c <= 0xBF;
        if (lead == 0xF4) return c >= 0x80 && c <= 0x8F;
    }
    return c >= 0x80 && c <= 0xBF;
}

static size_t put_fffd(char *out) {
    memcpy(out, "\xEF\xBF\xBD", 3);
    return 3;
}

size_t dsv3_detok_push(dsv3_detok *d, const char *bytes, size_t len, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)bytes[i];
        if (d->npend == 0) {
            const int L = lead_len(c);
            if (L == 1) out[o++] = (char)c;
            else if (L == 0) o += put_fffd(out + o);
            else d->pend[d->npend++] = c;
            continue;
        }
        const int L = lead_len(d->pend[0]);
        if (!cont_ok(d->pend[0], d->npend, c)) {
            /* The pending prefix is ill-formed: one U+FFFD for it, then retry c fresh. */
            o += put_fffd(out + o);
            d->npend = 0;
            i--;
            continue;
        }
        d->pend[d->npend++] = c;
        if (d->npend == L) {
            memcpy(out + o, d->pend, (size_t)L);
            o += (size_t)L;
            d->npend = 0;
        }
    }
    return o;
}

size_t dsv3_detok_flush(dsv3_detok *d, char *out) {
    if (d->npend == 0) return 0;
    d->npend = 0;
    return put_fffd(out);
}
