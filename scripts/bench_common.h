/* bench_common.h — timing and memory-bandwidth measurement shared by the benchmarks. */
#ifndef DSV3_BENCH_COMMON_H
#define DSV3_BENCH_COMMON_H

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <time.h>

#include "model/base/clock.h"

/* Sums p[0..n) as four sequential streams (like the GEMV's four rows), two 32-byte loads per
 * stream per step with their own accumulators, so the loads in flight are not limited by the
 * add latency (a one-load-per-stream loop measured less than the BF16 GEMV itself reads). */
/* With pf set, each stream also prefetches 512 bytes ahead with the non-temporal hint, as the
 * decode GEMVs do (kernels/cpu/fast.c): without it the probe read less than the prefetching
 * BF16 GEMV, and decode showed "fractions of the roofline" above 1. */
__attribute__((target("avx2"))) static inline float stream_sum(const float *p, size_t n, int pf) {
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    size_t q = n / 4;
    const float *s[4] = {p, p + q, p + 2 * q, p + 3 * q};
    for (size_t i = 0; i + 16 <= q; i += 16)
        for (int k = 0; k < 4; k++) {
            if (pf && i + 16 + 128 <= q) _mm_prefetch((const char *)(s[k] + i + 128), _MM_HINT_NTA);
            a[2 * k] = _mm256_add_ps(a[2 * k], _mm256_loadu_ps(s[k] + i));
            a[2 * k + 1] = _mm256_add_ps(a[2 * k + 1], _mm256_loadu_ps(s[k] + i + 8));
        }
    for (int k = 1; k < 8; k++) a[0] = _mm256_add_ps(a[0], a[k]);
    float t[8];
    _mm256_storeu_ps(t, a[0]);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

/* Best-of-reps read bandwidth in GB/s over an mb-MiB buffer with every thread streaming its
 * share (four streams each), the better of plain and prefetching loads (alternating reps);
 * <= 0 when the buffer cannot be allocated. */
static inline double bench_read_bandwidth(size_t mb, int reps) {
    size_t n = mb * 1024 * 1024 / sizeof(float);
    float *buf = aligned_alloc(64, n * sizeof(float));
    if (!buf) return -1;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
    const int T = omp_get_max_threads();
    double best = 1e30;
    volatile float sink = 0;
    for (int r = 0; r < 2 * reps; r++) {
        double t0 = dsv3_now_s();
        float tot = 0;
#pragma omp parallel reduction(+ : tot)
        {
            int id = omp_get_thread_num();
            size_t per = n / (size_t)T;
            tot += stream_sum(buf + per * (size_t)id, per, r & 1);
        }
        double dt = dsv3_now_s() - t0;
        sink += tot;
        best = dt < best ? dt : best;
    }
    free(buf);
    return (double)(n * sizeof(float)) / best / 1e9;
}

#endif
