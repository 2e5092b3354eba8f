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

#include "model/model.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

__attribute__((target("avx2"))) static float stream_sum(const float *p, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t q = n / 4; /* four streams per thread, like four weight rows */
    const float *s0 = p, *s1 = p + q, *s2 = p + 2 * q, *s3 = p + 3 * q;
    for (size_t i = 0; i + 8 <= q; i += 8) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(s0 + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(s1 + i));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(s2 + i));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(s3 + i));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    size_t mb = 1024;
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else dir = argv[i];
    }
    size_t n = mb * 1024 * 1024 / sizeof(float);
    float *buf = aligned_alloc(64, n * sizeof(float));
    if (!buf) return 1;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
    const int T = omp_get_max_threads();
    double best = 1e30;
    volatile float sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        float tot = 0;
#pragma omp parallel reduction(+ : tot)
        {
            int id = omp_get_thread_num();
            size_t per = n / (size_t)T;
            tot += stream_sum(buf + per * (size_t)id, per);
        }
        double dt = now() - t0;
        sink += tot;
        best = dt < best ? dt : best;
    }
    const double gbs = (double)(n * sizeof(float)) / best / 1e9;
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
    free(buf);
    return 0;
}
