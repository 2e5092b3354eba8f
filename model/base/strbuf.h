/* strbuf.h — a growing NUL-terminated string, for code that builds text or bytes piece by piece
 * (chat templates, regex translation, checkpoint headers, renderers, help texts).
 *
 * Zero-initialise, append, then take the result with dsv3_strbuf_finish (or read s/len and
 * free(s) yourself). After an allocation failure further appends are dropped, oom stays set and
 * dsv3_strbuf_finish returns NULL (freeing the buffer). s is always NUL-terminated once
 * something was appended; embedded NUL bytes are allowed (len counts them). No state; a buffer
 * belongs to one thread.
 */
#ifndef DSV3_STRBUF_H
#define DSV3_STRBUF_H

#include <stddef.h>

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} dsv3_strbuf;

/* Appends n bytes of p (n may be 0: then only makes sure s exists and is terminated). */
void dsv3_strbuf_add(dsv3_strbuf *b, const void *p, size_t n);
/* Appends the string s. */
void dsv3_strbuf_puts(dsv3_strbuf *b, const char *s);
void dsv3_strbuf_printf(dsv3_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The malloc'd string ("" when nothing was added), or NULL after an allocation failure (the
 * buffer is then freed). */
char *dsv3_strbuf_finish(dsv3_strbuf *b);

#endif
