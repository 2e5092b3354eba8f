/* bench_decode.c — decode speed against the memory-bandwidth roofline.
 *
 * usage: dsv3-bench-decode MODEL_DIR [--tokens N] [--prompt P] [--reps R] [--backend fast|ref|devsim|cuda]
 *                          [--mtp 0|1]
 * Greedy decoding of N tokens after a P-token prompt, plain and (unless --mtp 0) with MTP
 * speculative decoding, R times each; prints min/median/max tokens/s, ms/token, the bandwidth measured in the same
 * run, the roofline (bandwidth / active bytes per token), the achieved fraction (median), and
 * the start-up time: model open + prompt prefill + first generated token, as a fresh process
 * sees it (page cache warm from earlier runs: the weights are mapped, not read). CSV.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/run/generate.h"
#include "model/run/model.h"
#include "scripts/bench_common.h"

static double t_first; /* time of the first generated token (0 = not yet) */
static int on_first(void *ud, int32_t id) {
    (void)ud, (void)id;
    if (!t_first) t_first = dsv3_now_s();
    return 0;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dsv3-bench-decode MODEL_DIR [--tokens N] [--prompt P] [--reps R] [--backend fast|ref|devsim|cuda] [--mtp 0|1]\n");
        return 2;
    }
    int64_t N = 64, P = 16;
    int reps = 3, with_mtp = 1;
    const char *backend = "fast";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens")) N = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--prompt")) P = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backend")) backend = argv[i + 1];
        else if (!strcmp(argv[i], "--mtp")) with_mtp = atoi(argv[i + 1]);
    }
    if (reps < 1 || reps > 64 || N < 1 || P < 1) return 2;
    dsv3_err err = {{0}};
    dsv3_model *m;
    double t0 = dsv3_now_s();
    if (dsv3_model_open(&m, argv[1], &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    const double t_open = dsv3_now_s() - t0;
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
    int32_t *prompt = malloc((size_t)P * sizeof *prompt), *out = malloc((size_t)N * sizeof *out);
    srand(7);
    for (int64_t i = 0; i < P; i++) prompt[i] = (int32_t)(rand() % c->vocab_size);
    /* start-up: this process opened the model at t0; one greedy token after the prompt */
    double t_start;
    {
        dsv3_run *run;
        dsv3_run_opts o = {.max_seq = P + 2, .max_chunk = P};
        dsv3_gen_opts g = {.max_new_tokens = 1, .sample = {.greedy = 1}, .eos_id = -1, .on_token = on_first};
        int64_t n1;
        if (dsv3_run_new(&run, m, &o, &err) || dsv3_generate(run, prompt, P, &g, out, &n1, NULL, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        t_start = t_first - t0;
        dsv3_run_free(run);
    }
    const double gbs = bench_read_bandwidth(512, 10); /* best of 10 of each kind: 3 left it ~20% low */
    const double active = dsv3_model_active_bytes(m), roof = gbs * 1e9 / active;
    printf("model,backend,mode,prompt,tokens,min_tok_s,median_tok_s,max_tok_s,ms_per_token,"
           "acceptance,bandwidth_gb_s,active_mb,roofline_tok_s,fraction_of_roofline,open_s,startup_s\n");
    for (int mtp = 0; mtp <= (with_mtp && dsv3_model_has_mtp(m)); mtp++) {
        double tps[64];
        double acc = 0;
        for (int r = 0; r < reps; r++) {
            dsv3_run *run;
            dsv3_run_opts o = {.max_seq = P + N + 1, .max_chunk = P + 1};
            if (dsv3_run_new(&run, m, &o, &err)) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
            }
            dsv3_gen_opts g = {.max_new_tokens = N, .sample = {.greedy = 1}, .use_mtp = mtp, .eos_id = -1};
            dsv3_gen_stats st;
            int64_t n_out;
            if (dsv3_generate(run, prompt, P, &g, out, &n_out, &st, &err)) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
            }
            tps[r] = (double)st.tokens / st.decode_seconds;
            acc = st.drafted ? (double)st.accepted / (double)st.drafted : 0;
            dsv3_run_free(run);
        }
        qsort(tps, (size_t)reps, sizeof *tps, cmpd);
        const double med = tps[reps / 2];
        printf("%s,%s,%s,%lld,%lld,%.1f,%.1f,%.1f,%.2f,%.3f,%.2f,%.1f,%.1f,%.3f,%.3f,%.3f\n", argv[1], be->name,
               mtp ? "mtp" : "plain", (long long)P, (long long)N, tps[0], med, tps[reps - 1], 1000.0 / med,
               acc, gbs, active / 1048576.0, roof, med / roof, t_open, t_start);
    }
    free(prompt), free(out);
    dsv3_model_close(m);
    return 0;
}
