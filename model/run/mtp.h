/* mtp.h — the multi-token-prediction module of a run: one extra block that, from the main
 * model's final hidden state h_p at position p and the next token t_{p+1}, predicts t_{p+2}.
 *
 * It owns the MTP input (z = eh_proj([enorm(E[t_{p+1}]) ; hnorm(h_p)])), the module's block and
 * head over its own latent cache (positions dsv3_run_mtp_len..), and the cache-only variant used
 * for rows whose logits nobody reads. It does not own the speculative decoding that drafts with it
 * and verifies with the main model (model/run/generate.c). Equations: docs/ARCHITECTURE.md, "MTP".
 */
#ifndef DSV3_MTP_H
#define DSV3_MTP_H

#include "model/run/forward.h"

/* Runs the MTP module (docs/ARCHITECTURE.md, "MTP") at positions mtp_len..mtp_len+n-1: row i takes
 * next_ids[i] (= t_{p+1}) and hidden[i] (= h_p, from dsv3_forward) and gives the logits of
 * token p+2 into logits ([n, vocab], or [vocab] for the last row with last_only = 1).
 * DSV3_EUNSUPPORTED if the model has no MTP layer. */
dsv3_status dsv3_forward_mtp(dsv3_run *r, const int32_t *next_ids, const float *hidden,
                             int64_t n, float *logits, int last_only, dsv3_err *err);

/* dsv3_forward_mtp with no logits, doing only what later MTP positions read: the cache rows
 * (identical to a full call's; the module is one block). With hooks attached it runs the full
 * module so probes see every row. Used for the prompt and for rows behind an accepted draft. */
dsv3_status dsv3_forward_mtp_cache(dsv3_run *r, const int32_t *next_ids, const float *hidden,
                                   int64_t n, dsv3_err *err);

/* The same two, taking the hidden states from the run instead of the host: rows row0..row0+n-1
 * of the final-normed hidden states the last dsv3_forward kept (dsv3_run_keep_hidden). Nothing
 * crosses between host and backend but the ids — what speculative decoding uses. DSV3_EINVAL
 * when the run keeps no hidden states or the rows lie beyond the last forward's tokens. */
dsv3_status dsv3_forward_mtp_kept(dsv3_run *r, const int32_t *next_ids, int64_t row0, int64_t n,
                                  float *logits, int last_only, dsv3_err *err);
dsv3_status dsv3_forward_mtp_cache_kept(dsv3_run *r, const int32_t *next_ids, int64_t row0,
                                        int64_t n, dsv3_err *err);

#endif
