/* bench_forward.c — prefill throughput and peak memory of the FP32 forward.
 *
 * usage: dsv3-bench-forward MODEL_DIR [--tokens N] [--reps R] [--attn absorbed|naive]
 *                           [--backend fast|ref|devsim|cuda]
 * Prints one CSV row (with a header): the model dir, stored dtype bytes, threads, tokens per
 * prefill, best seconds over R reps, min/median/max tokens/s over the reps, and peak RSS. Not a
 * test: run it by hand or from scripts/bench-prefill and record the figures in docs/PERF.md.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "model/base/clock.h"
#include "model/run/forward.h"
#include "model/run/model.h"
#include "probes/routing.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dsv3-bench-forward MODEL_DIR [--tokens N] [--reps R] [--attn absorbed|naive]\n");
        return 2;
    }
    int64_t T = 128;
    int reps = 3;
    dsv3_attn_form attn = DSV3_ATTN_ABSORBED;
    const char *backend = "fast";
    int probe = 0; /* --probe-overhead 1: also time the forward with a routing recorder attached */
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens")) T = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--attn")) attn = strcmp(argv[i + 1], "naive") ? DSV3_ATTN_ABSORBED : DSV3_ATTN_NAIVE;
        else if (!strcmp(argv[i], "--backend")) backend = argv[i + 1];
        else if (!strcmp(argv[i], "--probe-overhead")) probe = atoi(argv[i + 1]);
    }
    dsv3_err err = {{0}};
    dsv3_model *m;
    double t0 = dsv3_now_s();
    if (dsv3_model_open(&m, argv[1], &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    double t_open = dsv3_now_s() - t0;
    const dsv3_backend *be = dsv3_backend_by_name(backend);
    if (!be) {
        fprintf(stderr, "bench: --backend: '%s' is not one of %s\n", backend, dsv3_backend_names());
        return 2;
    }
    if (dsv3_model_set_backend(m, be, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    const dsv3_config *c = dsv3_model_config(m);
    if (T < 1 || T > c->max_position_embeddings) T = 128;
    dsv3_run *run;
    dsv3_run_opts o = {.max_seq = T, .max_chunk = T, .attn = attn};
    if (dsv3_run_new(&run, m, &o, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    srand(1);
    for (int64_t i = 0; i < T; i++) ids[i] = (int32_t)(rand() % c->vocab_size);
    /* Probes off and (with --probe-overhead 1) a routing recorder on, alternating in one run so
     * both see the same machine state; best of reps each. */
    dsv3_routerec rec;
    dsv3_routerec_init(&rec, c->n_routed_experts, c->num_experts_per_tok, c->n_group, &err);
    double best = 1e30, best_probe = 1e30, secs[64];
    if (reps < 1 || reps > 64) reps = 3;
    for (int r = 0; r < reps; r++) {
        for (int p = 0; p <= probe; p++) {
            dsv3_run_truncate(run, 0);
            rec.n = 0;
            dsv3_hooks h = dsv3_routerec_hooks(&rec);
            if (p && dsv3_routerec_reserve(&rec, T * c->num_hidden_layers, &err)) return 1;
            dsv3_run_set_hooks(run, p ? &h : NULL);
            double a = dsv3_now_s();
            if (dsv3_forward(run, ids, T, logits, 1, NULL, &err)) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
            }
            double s = dsv3_now_s() - a;
            if (p) best_probe = s < best_probe ? s : best_probe;
            else best = s < best ? s : best, secs[r] = s;
        }
    }
    if (probe)
        fprintf(stderr, "probe overhead: routing recorder on %.4f s vs off %.4f s (%+.2f%%)\n", best_probe,
                best, 100.0 * (best_probe / best - 1.0));
    dsv3_routerec_fini(&rec);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    for (int i = 1; i < reps; i++) /* insertion sort: slowest first, so tokens/s ascend */
        for (int j = i; j > 0 && secs[j] > secs[j - 1]; j--) {
            const double t = secs[j];
            secs[j] = secs[j - 1], secs[j - 1] = t;
        }
    printf("model,backend,file_mb,threads,attn,tokens,open_s,best_s,min_tok_s,median_tok_s,max_tok_s,peak_rss_mb\n");
    printf("%s,%s,%.1f,%d,%s,%lld,%.3f,%.3f,%.1f,%.1f,%.1f,%.1f\n", argv[1], be->name,
           (double)dsv3_model_file_bytes(m) / 1048576.0, omp_get_max_threads(),
           attn == DSV3_ATTN_NAIVE ? "naive" : "absorbed", (long long)T, t_open, best,
           (double)T / secs[0], (double)T / secs[reps / 2], (double)T / secs[reps - 1],
           (double)ru.ru_maxrss / 1024.0);
    free(ids);
    free(logits);
    dsv3_run_free(run);
    dsv3_model_close(m);
    return 0;
}
