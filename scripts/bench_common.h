/* bench_common.h — timing and memory-bandwidth measurement shared by the benchmarks. */
#ifndef DSV3_BENCH_COMMON_H
#define DSV3_BENCH_COMMON_H

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <time.h>

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

/* Best-of-reps read bandwidth in GB/s over an mb-MiB buffer with every thread streaming its
 * share (four streams each); <= 0 when the buffer cannot be allocated. */
static double bench_read_bandwidth(size_t mb, int reps) {
    size_t n = mb * 1024 * 1024 / sizeof(float);
    float *buf = aligned_alloc(64, n * sizeof(float));
    if (!buf) return -1;
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
    free(buf);
    return (double)(n * sizeof(float)) / best / 1e9;
}

#endif
