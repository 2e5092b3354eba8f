/* generate.h — autoregressive generation over a dsv3_run, optionally with MTP speculative
 * decoding (docs/ARCHITECTURE.md, "Speculative decoding"; depth 1).
 *
 * The prompt is prefilled in chunks, then tokens are produced one forward at a time; with MTP
 * the MTP module drafts the token after next and one two-token forward verifies it. Greedy
 * output is identical with and without MTP; sampled output keeps its distribution (accept with
 * min(1, p/q), else draw from norm(max(0, p - q))). Tokens stream through a callback.
 * Thread rules: as for the run.
 */
#ifndef DSV3_GENERATE_H
#define DSV3_GENERATE_H

#include <stdint.h>

#include "model/run/forward.h"
#include "model/run/sample.h"

/* Called for every produced token, in order. Return non-zero to stop after it (stop strings). */
typedef int (*dsv3_token_fn)(void *ud, int32_t id);

/* One MTP draft and its verification (docs/ARCHITECTURE.md, "Speculative decoding"). */
typedef struct {
    int64_t pos;       /* position of the drafted token */
    int32_t draft;     /* the MTP module's token */
    float q_draft;     /* its probability under the MTP distribution (after sampling transforms) */
    float p_draft;     /* its probability under the main model at the same position */
    int32_t main;      /* the main model's argmax at that position */
    int accepted;      /* 1 if the draft was kept */
} dsv3_draft_event;

typedef struct {
    int64_t max_new_tokens;       /* >= 1 */
    dsv3_sample_opts sample;      /* greedy / temperature / top-k / top-p */
    uint64_t seed;                /* RNG seed (same seed, same options: same tokens) */
    int use_mtp;                  /* 1: speculative decoding with the MTP draft */
    int32_t eos_id;               /* stop after this token; -1 = never */
    dsv3_token_fn on_token;       /* NULL = no streaming */
    void *ud;                     /* passed to on_token */
    const volatile int *cancel;   /* non-zero: stop between steps with DSV3_EINTR */
    /* Called for every verified draft (MTP only); NULL = off. */
    void (*on_draft)(void *ud, const dsv3_draft_event *ev);
} dsv3_gen_opts;

typedef struct {
    int64_t prompt_tokens;   /* prefilled */
    int64_t tokens;          /* produced */
    int64_t forward_passes;  /* main-model forwards after the prefill */
    int64_t mtp_passes;      /* MTP-module forwards */
    int64_t drafted;         /* MTP drafts verified */
    int64_t accepted;        /* drafts accepted */
    double prefill_seconds;
    double decode_seconds;   /* from the first produced token to the last */
    /* What crossed between host and backend memory during the call (zero on host backends,
     * docs/ARCHITECTURE.md, "Backend memory"), and the bytes per produced token of the decode
     * steps (after the prefill). */
    dsv3_transfer_stats device;
    double device_bytes_per_token;
} dsv3_gen_stats;

/* Generates after prompt[0..n) into out[0..max_new_tokens), *n_out tokens. The run must be
 * empty (dsv3_run_len = 0) and hold n + max_new_tokens + 1 positions. On DSV3_EINTR the tokens
 * produced so far are in out / *n_out. stats may be NULL. */
dsv3_status dsv3_generate(dsv3_run *run, const int32_t *prompt, int64_t n,
                          const dsv3_gen_opts *o, int32_t *out, int64_t *n_out,
                          dsv3_gen_stats *stats, dsv3_err *err);

#endif
