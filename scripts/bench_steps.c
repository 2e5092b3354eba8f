/* bench_steps.c — what one step of plain and of MTP speculative decoding costs.
 *
 * usage: dsv3-bench-steps MODEL_DIR [--pos P] [--reps R] [--only fwd1|fwd2|draft|cache]
 * After a P-token prefill, times (minimum over R calls, each from the same cache length) the
 * forwards a decode step is made of: a 1-token forward (plain decoding), the 2-token verify,
 * the 1-row MTP draft and the cache-only MTP row. Plain decoding costs `fwd1` per token; MTP
 * costs `fwd2 + mtp_draft (+ mtp_cache after an accepted draft)` per 1 + acceptance tokens.
 * --only times one kind of call (for a profiler: `perf record` then sees that call alone).
 * CSV on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/run/forward.h"
#include "model/run/model.h"
#include "model/run/mtp.h"
#include "scripts/bench_common.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dsv3-bench-steps MODEL_DIR [--pos P] [--reps R] [--only fwd1|fwd2|draft|cache]\n");
        return 2;
    }
    int64_t P = 300;
    int reps = 300, only = -1;
    static const char *kinds[4] = {"fwd1", "fwd2", "draft", "cache"};
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--pos")) P = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only"))
            for (int k = 0; k < 4; k++)
                if (!strcmp(argv[i + 1], kinds[k])) only = k;
    }
    dsv3_err err = {{0}};
    dsv3_model *m;
    if (dsv3_model_open(&m, argv[1], &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    const dsv3_config *c = dsv3_model_config(m);
    if (!dsv3_model_has_mtp(m) || P < 2 || reps < 1 || P + 3 > c->max_position_embeddings) return 2;
    dsv3_run *r;
    dsv3_run_opts o = {.max_seq = P + 3, .max_chunk = 64};
    if (dsv3_run_new(&r, m, &o, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    int32_t *ids = malloc((size_t)P * sizeof *ids);
    float *hid = malloc((size_t)(P * c->hidden_size) * sizeof *hid);
    float *logits = malloc((size_t)(2 * c->vocab_size) * sizeof *logits);
    srand(3);
    for (int64_t i = 0; i < P; i++) ids[i] = (int32_t)(rand() % c->vocab_size);
    int st = dsv3_forward_chunked(r, ids, P, NULL, hid, &err) != DSV3_OK;
    for (int64_t at = 0; at < P - 1 && !st; at += 64) {
        const int64_t n = P - 1 - at < 64 ? P - 1 - at : 64;
        st = dsv3_forward_mtp_cache(r, ids + at + 1, hid + at * c->hidden_size, n, &err) != DSV3_OK;
    }
    /* after the prompt: main cache P, MTP cache P - 1 (the generation invariant) */
    double best[4] = {1e30, 1e30, 1e30, 1e30};
    for (int k = 0; k < reps && !st; k++)
        for (int w = 0; w < 4 && !st; w++) {
            if (only >= 0 && w != only) continue;
            dsv3_run_truncate(r, P - 1);
            double t = dsv3_now_s();
            if (w == 0) st = dsv3_forward(r, ids, 1, logits, 1, hid, &err) != DSV3_OK;
            if (w == 1) st = dsv3_forward(r, ids, 2, logits, 0, hid, &err) != DSV3_OK;
            if (w == 2) st = dsv3_forward_mtp(r, ids, hid, 1, logits, 1, &err) != DSV3_OK;
            if (w == 3) st = dsv3_forward_mtp_cache(r, ids, hid, 1, &err) != DSV3_OK;
            t = dsv3_now_s() - t;
            best[w] = t < best[w] ? t : best[w];
            dsv3_run_truncate(r, P); /* the main cache back to P (the MTP one stays at P - 1) */
        }
    if (st) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    for (int w = 0; w < 4; w++)
        if (best[w] >= 1e30) best[w] = 0.0; /* not timed (--only) */
    printf("model,pos,fwd1_us,fwd2_us,mtp_draft_us,mtp_cache_us,fwd2_over_fwd1\n");
    printf("%s,%lld,%.1f,%.1f,%.1f,%.1f,%.2f\n", argv[1], (long long)P, best[0] * 1e6, best[1] * 1e6,
           best[2] * 1e6, best[3] * 1e6, best[1] / best[0]);
    free(ids), free(hid), free(logits);
    dsv3_run_free(r);
    dsv3_model_close(m);
    return 0;
}
