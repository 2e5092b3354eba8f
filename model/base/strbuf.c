/* strbuf.c — the growing string (see strbuf.h). */
#include "model/base/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for `more` bytes plus the terminator (capacity doubles); 0 on failure. */
static int reserve(dsv3_strbuf *b, size_t more) {
    if (b->oom) return 0;
    if (b->len + more + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return 0;
    }
    b->s = s;
    b->cap = cap;
    return 1;
}

void dsv3_strbuf_add(dsv3_strbuf *b, const void *p, size_t n) {
    if (!reserve(b, n)) return;
    if (n) memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void dsv3_strbuf_puts(dsv3_strbuf *b, const char *s) {
    dsv3_strbuf_add(b, s, strlen(s));
}

void dsv3_strbuf_printf(dsv3_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || !reserve(b, (size_t)need)) return;
    va_start(ap, fmt);
    b->len += (size_t)vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
}

char *dsv3_strbuf_finish(dsv3_strbuf *b) {
    if (b->oom) {
        free(b->s);
        return NULL;
    }
    return b->s ? b->s : calloc(1, 1);
}
