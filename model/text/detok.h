/* detok.h — streaming detokenisation: token bytes in, complete UTF-8 out.
 *
 * Tokens of a byte-level BPE can end in the middle of a UTF-8 character. A dsv3_detok holds the
 * incomplete tail between tokens so a stream only ever shows whole characters; a byte that can
 * never start or continue a valid character is shown as U+FFFD. Plain value; no allocation.
 */
#ifndef DSV3_DETOK_H
#define DSV3_DETOK_H

#include <stddef.h>

typedef struct {
    unsigned char pend[4]; /* bytes of an incomplete character */
    int npend;
} dsv3_detok;

/* Worst-case output bytes for an input of len bytes (each byte may become U+FFFD). */
#define DSV3_DETOK_OUT_MAX(len) (3 * ((len) + 4))

/* Feeds len bytes; writes the complete characters now available to out and returns their
 * count. out must hold DSV3_DETOK_OUT_MAX(len) bytes. */
size_t dsv3_detok_push(dsv3_detok *d, const char *bytes, size_t len, char *out);

/* Ends the stream: a pending incomplete character becomes U+FFFD. out holds 3 bytes. */
size_t dsv3_detok_flush(dsv3_detok *d, char *out);

#endif
