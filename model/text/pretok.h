/* pretok.h — pre-tokenizer Split steps, as Hugging Face `tokenizers` applies them.
 *
 * Owns: a sequence of regex (or literal) Split steps with their behaviour and invert flag, and
 * cutting a UTF-8 text into pieces with them, giving the same pieces as HF (which runs its
 * regexes with Oniguruma). Patterns are compiled by PCRE2 (UTF, UCP, JIT when available) after a
 * small translation that makes PCRE2 agree with Oniguruma's Unicode 16 tables:
 *   - `\s` / `\S` become the Unicode White_Space set / its complement (PCRE2 also counts
 *     U+180E as space; Oniguruma does not);
 *   - `\p{L}`, `\p{M}`, `\p{N}`, `\p{P}`, `\p{S}` (also `\p{^L}`, and `\P{..}` outside a class)
 *     gain the code points Unicode 15.0-16.0 assigned to them, which PCRE2 10.42 (Unicode 14)
 *     lacks;
 *   - `\p` / `\P` without braces are the plain letters p / P, as in Oniguruma (`\pL` matches
 *     "pL"; PCRE2 would read a property).
 * Not translated (PCRE2's own meaning is used): other escapes such as `\w`, `\d`, `\h`,
 * sub-categories such as `\p{Lu}`, and `\P{..}` inside a character class.
 * Does not own: added tokens, the byte-level map, BPE (model/text/tokenizer.c).
 * Thread rules: a dsv3_pretok is immutable once built and may be shared; a scratch belongs to one
 * thread at a time.
 */
#ifndef DSV3_PRETOK_H
#define DSV3_PRETOK_H

#include <stddef.h>

#include "model/base/status.h"

/* What happens to the matches of a step (HF SplitDelimiterBehavior). */
typedef enum {
    DSV3_SPLIT_REMOVED,              /* matches are dropped, gaps kept */
    DSV3_SPLIT_ISOLATED,             /* matches and gaps are separate pieces */
    DSV3_SPLIT_MERGED_WITH_PREVIOUS, /* a match joins the gap before it */
    DSV3_SPLIT_MERGED_WITH_NEXT,     /* a match joins the gap after it */
    DSV3_SPLIT_CONTIGUOUS,           /* adjacent matches join into one piece */
} dsv3_split_behavior;

typedef struct dsv3_pretok dsv3_pretok;
typedef struct dsv3_pretok_scratch dsv3_pretok_scratch;

/* Receives each final piece [start, end) (byte offsets into the text given to
 * dsv3_pretok_split), in text order, never empty. A non-OK status stops the split and is
 * returned by it. */
typedef dsv3_status (*dsv3_pretok_emit)(void *ctx, size_t start, size_t end);

/* Creates an empty pre-tokenizer (no steps: the whole text is one piece). Returns DSV3_OK and
 * sets *out, or DSV3_ENOMEM / DSV3_EINVAL (NULL out). Free with dsv3_pretok_free. */
dsv3_status dsv3_pretok_new(dsv3_pretok **out, dsv3_err *err);

/* Frees it. NULL is a harmless no-op. */
void dsv3_pretok_free(dsv3_pretok *p);

/* Appends a step. `pattern` (len bytes) is an HF/Oniguruma regex, or a literal string if
 * `literal` is nonzero; `invert` swaps matches and gaps before `behavior` applies; `where` names
 * the JSON key for messages. Returns DSV3_OK, DSV3_EFORMAT "tokenizer: <where>: PCRE2 cannot
 * compile the pattern at offset N: <why>", DSV3_EUNSUPPORTED (more than 16 steps), DSV3_ENOMEM. */
dsv3_status dsv3_pretok_add(dsv3_pretok *p, const char *pattern, size_t len, int literal,
                            dsv3_split_behavior behavior, int invert, const char *where,
                            dsv3_err *err);

/* Number of steps. */
size_t dsv3_pretok_steps(const dsv3_pretok *p);

/* Creates scratch space (match data) for dsv3_pretok_split calls on p. DSV3_OK or DSV3_ENOMEM.
 * The scratch must not outlive p. Free with dsv3_pretok_scratch_free (NULL is a no-op). */
dsv3_status dsv3_pretok_scratch_new(dsv3_pretok_scratch **out, const dsv3_pretok *p, dsv3_err *err);
void dsv3_pretok_scratch_free(dsv3_pretok_scratch *s);

/* Cuts text[start, end) into pieces: step 1 splits it, each resulting piece goes through step 2
 * on its own (lookarounds see only that piece), and so on; emit receives the pieces left after
 * the last step. text must be valid UTF-8 (not checked). Returns DSV3_OK, the first non-OK
 * status of emit, DSV3_ENOMEM, or DSV3_EUNSUPPORTED when PCRE2 gives up (match limit, JIT stack
 * beyond 8 MiB), naming the step and byte offset. */
dsv3_status dsv3_pretok_split(const dsv3_pretok *p, dsv3_pretok_scratch *s, const char *text,
                              size_t start, size_t end, dsv3_pretok_emit emit, void *ctx,
                              dsv3_err *err);

#endif
