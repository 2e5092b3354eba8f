/* host_memory.c — backend memory of the CPU backends: host memory (is_host = 1), so alloc is
 * calloc, upload and download are memcpy, and nothing is counted. Also the data-movement
 * operations every CPU backend shares (add, strided copy; the embedding lookup is in cpu.c,
 * next to the row decoder). */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"

void *dsv3_host_alloc(size_t bytes) {
    return calloc(1, bytes ? bytes : 1);
}

void dsv3_host_free(void *p) {
    free(p);
}

void dsv3_host_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}

void dsv3_host_stats(dsv3_transfer_stats *out) {
    memset(out, 0, sizeof *out);
}

void dsv3_cpu_add(float *x, const float *y, int64_t n) {
    /* (omp simd: without it the possible aliasing of x and y keeps -O2 from vectorising) */
#pragma omp simd
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

void dsv3_cpu_copy2d(float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                     int64_t rows, int64_t width) {
    for (int64_t r = 0; r < rows; r++)
        memcpy(dst + r * dst_stride, src + r * src_stride, (size_t)width * sizeof *dst);
}
