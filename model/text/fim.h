/* fim.h — Fill-in-Middle (FIM) in the Prefix-Suffix-Middle (PSM) arrangement of the DeepSeek-V3
 * report (pre-training data, §4.1 of the report; DeepSeekCoder-V2's recipe).
 *
 * Owns the document-level transform and the matching inference prompt. A document chosen for
 * FIM (with probability `rate`, 0.1 in the report) has its TEXT split at two random character
 * positions into prefix, middle and suffix, and becomes
 *     <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜> middle
 * with each part tokenized on its own (no BOS/EOS added). The report appends <|eos_token|>;
 * here, as for every document, the data pipeline does (model/train/data.h appends EOS after
 * each document), so the stream holds exactly the report's layout. A document not chosen gives
 * exactly the tokenizer's ids for its text. Characters are Unicode code points: a split never
 * falls inside a UTF-8 sequence; the two positions are drawn uniformly and independently from
 * 0..n_chars and sorted, so any part may be empty.
 * Randomness is counter-based: every draw for document d comes from (seed, d) alone, so the
 * result for a document does not depend on which documents came before it or on threads.
 * Does not own tokenization (model/text/tokenizer.h), packing or generation.
 * Thread rules: none beyond the tokenizer's (its calls may run concurrently on one handle).
 */
#ifndef DSV3_FIM_H
#define DSV3_FIM_H

#include <stddef.h>
#include <stdint.h>

#include "model/base/status.h"
#include "model/text/tokenizer.h"

/* The sentinel tokens, as spelled in DeepSeek-V3's tokenizer.json (U+FF5C and U+2581). */
#define DSV3_FIM_BEGIN "<｜fim▁begin｜>"
#define DSV3_FIM_HOLE "<｜fim▁hole｜>"
#define DSV3_FIM_END "<｜fim▁end｜>"

/* The sentinel ids of one tokenizer. */
typedef struct {
    int32_t begin; /* id of <｜fim▁begin｜>: starts the prefix */
    int32_t hole;  /* id of <｜fim▁hole｜>: where the middle was; the suffix follows */
    int32_t end; /* id of <｜fim▁end｜>: the middle follows (the part the model learns to fill) */
} dsv3_fim_tokens;

typedef struct {
    double rate;   /* probability that a document is rearranged, in [0, 1]; the report's is 0.1 */
    uint64_t seed; /* draws for document d depend on (seed, d) only */
} dsv3_fim_opts;

/* Where one document is cut (byte offsets into its text). */
typedef struct {
    int apply;         /* 1 if the document is rearranged, 0 if it stays as it is */
    size_t prefix_end; /* prefix = text[0, prefix_end) */
    size_t middle_end; /* middle = text[prefix_end, middle_end), suffix = text[middle_end, len) */
} dsv3_fim_cut;

/* Looks up the three sentinels in tok (dsv3_tokenizer_token_id). DSV3_EINVAL when one is missing,
 * with "fim: the tokenizer has no <｜fim▁begin｜> token (FIM needs <｜fim▁begin｜>, <｜fim▁hole｜>
 * and <｜fim▁end｜> in tokenizer.json's added_tokens)"; DSV3_EINVAL for NULL arguments. */
dsv3_status dsv3_fim_token_ids(dsv3_fim_tokens *out, const dsv3_tokenizer *tok, dsv3_err *err);

/* The draw for document `doc` of a text of len bytes: apply with probability o->rate and, when
 * applied, the two cut points (code point boundaries, prefix_end <= middle_end <= len); when not
 * applied prefix_end = middle_end = len. Pure; rate outside [0, 1] is clamped (rate <= 0 never
 * applies, rate >= 1 always does). Bytes 0x80..0xBF are continuation bytes and never start a
 * character; for valid UTF-8 that is the code point rule. */
dsv3_fim_cut dsv3_fim_draw(const dsv3_fim_opts *o, uint64_t doc, const char *text, size_t len);

/* PSM ids for given parts: begin, ids(prefix), hole, ids(suffix), end, ids(middle); each part is
 * encoded with dsv3_tokenizer_encode without special tokens. Parts may be NULL when their length
 * is 0. On success *ids is malloc'd (*n_ids entries; free with free()). Errors (then *ids NULL,
 * *n_ids 0): dsv3_fim_token_ids's, the tokenizer's for a part (invalid UTF-8, ...), prefixed
 * "fim: prefix: " / "fim: suffix: " / "fim: middle: ", DSV3_ENOMEM. */
dsv3_status dsv3_fim_psm(int32_t **ids, size_t *n_ids, const dsv3_tokenizer *tok,
                         const char *prefix, size_t prefix_len, const char *suffix,
                         size_t suffix_len, const char *middle, size_t middle_len, dsv3_err *err);

/* The training transform of one document: dsv3_fim_draw, then dsv3_fim_psm of the three parts
 * when it applies, else the plain ids of the whole text (dsv3_tokenizer_encode, no specials).
 * *applied (may be NULL) says which. No EOS is added (see the header paragraph). DSV3_EINVAL for
 * a rate outside [0, 1] or not finite, and dsv3_fim_token_ids's errors even at rate 0, so a
 * pipeline configured for FIM fails on the first document rather than silently never applying
 * it; other errors as dsv3_fim_psm, prefixed "fim: document D: ". */
dsv3_status dsv3_fim_document(int32_t **ids, size_t *n_ids, int *applied, const dsv3_tokenizer *tok,
                              const dsv3_fim_opts *o, uint64_t doc, const char *text, size_t len,
                              dsv3_err *err);

/* The inference prompt for filling a middle: [BOS if add_bos] begin, ids(prefix), hole,
 * ids(suffix), end. Generation continues with the middle and, as the model was trained, ends it
 * with EOS. add_bos uses the tokenizer config's bos_token (DSV3_EINVAL "fim: prompt: the
 * tokenizer has no bos_token" when it has none). Ownership and errors as dsv3_fim_psm. */
dsv3_status dsv3_fim_prompt(int32_t **ids, size_t *n_ids, const dsv3_tokenizer *tok,
                            const char *prefix, size_t prefix_len, const char *suffix,
                            size_t suffix_len, int add_bos, dsv3_err *err);

#endif
