/* data.h — training data: text to token stream, packing, shuffling, held-out split.
 *
 * Owns one token stream and how it is cut and ordered. A text source is a file or a directory
 * of *.txt files (sorted by name, not recursive); each file is one document, tokenized with the
 * model's tokenizer (no BOS/EOS added by the tokenizer) and followed by the EOS id, so documents
 * are separated by EOS and packed without masking (docs/ARCHITECTURE.md, "Objective"). The stream
 * is cut into sequences of seq_len + 1 tokens with stride seq_len (sequence j covers tokens
 * [j*T, j*T + T]: T inputs and their T next-token targets). The last `heldout` fraction of the
 * sequences is the evaluation split; the others are the training split, visited in a random
 * order per epoch: a Fisher-Yates permutation drawn from a counter-based generator keyed by
 * (seed, epoch), so the order depends only on the seed and the number of sequences consumed
 * (the resume position). With fim_rate > 0 each document of a text source first goes through
 * the Fill-in-Middle transform of model/text/fim.h (PSM arrangement, chosen with probability
 * fim_rate per document; the draws for document d come from (seed ^ DSV3_DATA_FIM_SALT, d), so
 * the same seed and files give the same stream on every read, and a resumed run sees the data
 * of the run it continues). Does not own the tokenizer or the model.
 * Thread rules: one thread at a time per dataset (the current epoch's permutation is cached).
 */
#ifndef DSV3_TRAIN_DATA_H
#define DSV3_TRAIN_DATA_H

#include <stdint.h>

#include "model/base/status.h"
#include "model/text/tokenizer.h"

typedef struct dsv3_dataset dsv3_dataset;

typedef struct {
    int64_t seq_len;  /* T >= 1: inputs per sequence (each sequence holds T + 1 tokens) */
    double heldout;   /* fraction of sequences held out for evaluation, in [0, 0.5] */
    uint64_t seed;    /* shuffle seed */
    int32_t eos_id;   /* appended after every document (text sources); must be >= 0 */
    double fim_rate;  /* probability that a document is rearranged by FIM (model/text/fim.h), in
                         [0, 1]; 0: every document is the tokenizer's ids, bit for bit as
                         without FIM (the FIM code is not called). Text sources only. */
} dsv3_data_opts;

/* Mixed into the seed for the FIM draws, so they are not the shuffle's draws (both generators
 * are splitmix64 streams keyed by the seed and a counter). */
#define DSV3_DATA_FIM_SALT 0x46494d50534d0001ull

/* Reads and tokenizes path (a file or a directory of *.txt files); with o->fim_rate > 0 each
 * non-empty document (numbered from 0 in reading order) goes through dsv3_fim_document, and a
 * tokenizer without the FIM tokens is refused (the message of dsv3_fim_token_ids, after
 * "data: PATH: "). Errors name the file:
 * DSV3_EIO (unreadable, or a directory without .txt files), DSV3_EINVAL ("binary file": a NUL
 * byte or invalid UTF-8, with its byte offset; "no text": every file empty; fewer than
 * seq_len + 1 tokens; bad options), DSV3_ENOMEM. On failure *out is NULL. */
dsv3_status dsv3_data_open_text(dsv3_dataset **out, const dsv3_tokenizer *tok, const char *path,
                                const dsv3_data_opts *o, dsv3_err *err);

/* The same from a ready token stream tokens[n] (copied; eos_id is not used). Ids must be
 * >= 0 (the trainer checks them against the vocabulary). */
dsv3_status dsv3_data_from_tokens(dsv3_dataset **out, const int32_t *tokens, int64_t n,
                                  const dsv3_data_opts *o, dsv3_err *err);

/* NULL is a no-op. */
void dsv3_data_free(dsv3_dataset *d);

int64_t dsv3_data_n_tokens(const dsv3_dataset *d);  /* tokens in the stream (EOS included) */
int64_t dsv3_data_n_docs(const dsv3_dataset *d);    /* documents (files) read; 0 for tokens */
int64_t dsv3_data_n_fim(const dsv3_dataset *d);     /* documents rearranged by FIM */
int64_t dsv3_data_n_train(const dsv3_dataset *d);   /* training sequences (>= 1) */
int64_t dsv3_data_n_heldout(const dsv3_dataset *d); /* evaluation sequences (may be 0) */
const int32_t *dsv3_data_tokens(const dsv3_dataset *d); /* the stream [n_tokens] */

/* Writes the training sequence that comes `index`-th in the shuffled order (index = sequences
 * consumed so far, any value >= 0; epoch = index / n_train) into out[seq_len + 1]. */
void dsv3_data_train_seq(dsv3_dataset *d, int64_t index, int32_t *out);

/* Writes held-out sequence i (0 <= i < n_heldout, in stream order) into out[seq_len + 1]. */
void dsv3_data_heldout_seq(const dsv3_dataset *d, int64_t i, int32_t *out);

#endif
