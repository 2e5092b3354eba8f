/* utf8.c — the visible form of text (see utf8.h). */
#include "model/base/utf8.h"

#include <stdio.h>

#include "model/base/strbuf.h"

char *dsv3_utf8_visible(const char *s, size_t n) {
    dsv3_strbuf b = {0};
    const unsigned char *p = (const unsigned char *)s;
    if (!n) dsv3_strbuf_puts(&b, "∅");
    for (size_t i = 0; i < n;) {
        const unsigned c = p[i];
        const size_t len = dsv3_utf8_seq_len(p + i, n - i);
        if (c == ' ') dsv3_strbuf_puts(&b, "␣");
        else if (c == '\n') dsv3_strbuf_puts(&b, "↵");
        else if (c == '\t') dsv3_strbuf_puts(&b, "⇥");
        else if (c == '\r') dsv3_strbuf_puts(&b, "␍");
        else if (c < 0x20 || c == 0x7F || !len) dsv3_strbuf_printf(&b, "\\x%02X", c);
        else dsv3_strbuf_add(&b, p + i, len);
        i += len ? len : 1;
    }
    dsv3_strbuf_add(&b, "", 0);
    return dsv3_strbuf_finish(&b);
}
