/* mtp_trace.h — how often the MTP module's drafts survive verification, and where.
 *
 * dsv3_mtp_trace_run generates with MTP speculative decoding (model/run/generate.h) and records
 * every verified draft: its position, the drafted and the main model's tokens, the draft's
 * probability under both models and whether it was kept; then sums acceptance by position
 * bucket, by token-id band and by draft confidence. It owns that record and those sums; it does
 * not own drafting or verifying (docs/ARCHITECTURE.md, "MTP" and "Speculative decoding").
 * Thread rules: the model may be shared; the call uses one run of its own.
 */
#ifndef DSV3_PROBES_MTP_TRACE_H
#define DSV3_PROBES_MTP_TRACE_H

#include <stdint.h>

#include "model/base/status.h"
#include "model/run/generate.h"

enum {
    DSV3_TRACE_BUCKET = 16,  /* positions per by-position bucket */
    DSV3_TRACE_BUCKETS = 64, /* buckets; positions past the last land in it */
    DSV3_TRACE_BANDS = 4,    /* token-id bands: band b holds ids in [b V/4, (b+1) V/4) */
    DSV3_TRACE_HIST = 10,    /* draft-probability histogram bins over [0, 1] */
};

typedef struct {
    int64_t n_new;     /* tokens to generate, >= 1 */
    float temperature; /* <= 0: greedy */
    uint64_t seed;     /* sampling seed */
} dsv3_mtp_trace_opts;

typedef struct {
    int64_t drafted;                          /* verified drafts (= steps held) */
    dsv3_draft_event *steps;                  /* [drafted], in generation order */
    int64_t accepted;                         /* drafts kept */
    double rate;                              /* accepted / drafted (0 with no draft) */
    int64_t pos_drafted[DSV3_TRACE_BUCKETS];  /* drafts per position bucket (pos / BUCKET) */
    int64_t pos_accepted[DSV3_TRACE_BUCKETS]; /* of them kept */
    double band_rate[DSV3_TRACE_BANDS];       /* acceptance per token-id band of the draft
                                                 (a frequency proxy: BPE ids grow as merges get
                                                 rarer); NaN for a band with no draft */
    int64_t histogram[DSV3_TRACE_HIST];       /* drafts per q_draft bin (bin = q * HIST) */
    int64_t tokens;                           /* tokens generated */
    int interrupted; /* 1 if cancel stopped the generation (the record holds the
                        drafts verified until then) */
} dsv3_mtp_trace;

/* Fills *out for a generation of o->n_new tokens after prompt ids[0..n) with model m.
 * cancel (may be NULL) stops it between steps; that is not an error (see interrupted). Errors:
 * no MTP layer (DSV3_EUNSUPPORTED, "mtp_trace: the model has no MTP layer"), n < 1, n_new < 1 or
 * n + n_new + 1 > max_position_embeddings (DSV3_EINVAL), DSV3_ENOMEM, generation errors. On
 * success *out is the caller's (dsv3_mtp_trace_fini); on failure it holds nothing. */
dsv3_status dsv3_mtp_trace_run(dsv3_mtp_trace *out, dsv3_model *m, const int32_t *ids, int64_t n,
                               const dsv3_mtp_trace_opts *o, const volatile int *cancel,
                               dsv3_err *err);

/* Frees out->steps and zeroes the struct; NULL is a no-op. */
void dsv3_mtp_trace_fini(dsv3_mtp_trace *t);

#endif
