/* bench_bandwidth.c — read bandwidth as a GEMV sees it, and the decode roofline of a model.
 *
 * usage: dsv3-bench-bandwidth [MODEL_DIR] [--mb N] [--reps R]
 * Streams a buffer much larger than the caches with every core, several read streams per
 * thread (AVX2 loads summed so the compiler cannot drop them), and reports GB/s (best of R).
 * With MODEL_DIR it adds the bytes one decode step reads (stored dtypes) and the roofline in
 * tokens/s = bandwidth / active bytes. CSV on stdout.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/run/model.h"

#include "scripts/bench_common.h"

int main(int argc, char **argv) {
    const char *dir = NULL;
    size_t mb = 1024;
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else dir = argv[i];
    }
    const int T = omp_get_max_threads();
    const double gbs = bench_read_bandwidth(mb, reps);
    if (gbs <= 0) return 1;
    printf("threads,buffer_mb,read_gb_s");
    if (dir) printf(",model,active_mb_per_token,roofline_tok_s");
    printf("\n%d,%zu,%.2f", T, mb, gbs);
    if (dir) {
        dsv3_model *m;
        dsv3_err err;
        if (dsv3_model_open(&m, dir, &err)) {
            fprintf(stderr, "\n%s\n", err.msg);
            return 1;
        }
        double ab = dsv3_model_active_bytes(m);
        printf(",%s,%.1f,%.1f", dir, ab / 1048576.0, gbs * 1e9 / ab);
        dsv3_model_close(m);
    }
    printf("\n");
    return 0;
}
