/* bench_gemv.c — one weight-times-vector product (decode's kernel) alone: the decode ceiling of
 * a core separate from the memory bandwidth.
 *
 * usage: dsv3-bench-gemv [--dtype fp8|bf16|f32] [--tokens N] [--reps R] [--copies K] [SHAPE...]
 * SHAPE is ROWSxCOLS; the defaults are 512x1024 (an expert's gate/up, 0.5 MB in FP8: stays in
 * L2, so the time is the decoding work) and 32768x4096 (128 MB: streamed from memory). With
 * --copies K each call takes the next of K copies of the weight, as decode walks many small
 * weights (e.g. 512x1024 --copies 256: 128 MB of expert-sized products, none of them cached).
 * Random weights, with some FP8 subnormals. Calls repeat for at least 0.2 s per rep; the best
 * rep is reported as G weights/s (rows * cols / time) and GB/s of weights. Run it under
 * OMP_NUM_THREADS=1 for the figure of one core. CSV on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/pool.h"
#include "scripts/bench_common.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void fill(void *data, dsv3_dtype dt, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float u = (float)(next() >> 8) / 16777216.0f * 2.0f - 1.0f;
        switch (dt) {
        case DSV3_DT_F32: ((float *)data)[i] = u; break;
        case DSV3_DT_BF16: ((uint16_t *)data)[i] = dsv3_f32_to_bf16(u); break;
        default: { /* FP8: any code but the NaNs; 1/16 of them subnormal (exponent field 0) */
            uint8_t b;
            do b = (uint8_t)next(); while ((b & 0x7f) == 0x7f);
            ((uint8_t *)data)[i] = b;
        }
        }
    }
}

int main(int argc, char **argv) {
    dsv3_dtype dt = DSV3_DT_F8_E4M3;
    int64_t n = 1;
    int reps = 5, copies = 1;
    int64_t shapes[16][2], ns = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            dt = !strcmp(d, "bf16") ? DSV3_DT_BF16 : !strcmp(d, "f32") ? DSV3_DT_F32 : DSV3_DT_F8_E4M3;
        } else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--copies") && i + 1 < argc) copies = atoi(argv[++i]);
        else if (ns < 16 && sscanf(argv[i], "%lldx%lld", (long long *)&shapes[ns][0], (long long *)&shapes[ns][1]) == 2) ns++;
        else {
            fprintf(stderr, "usage: dsv3-bench-gemv [--dtype fp8|bf16|f32] [--tokens N] [--reps R] [--copies K] [ROWSxCOLS...]\n");
            return 2;
        }
    }
    if (copies < 1) return 2;
    if (ns == 0) {
        shapes[0][0] = 512, shapes[0][1] = 1024;
        shapes[1][0] = 32768, shapes[1][1] = 4096;
        ns = 2;
    }
    const dsv3_backend *be = dsv3_backend_fast();
    printf("backend,threads,dtype,rows,cols,tokens,copies,us_per_call,gweights_s,weight_gb_s\n");
    for (int64_t s = 0; s < ns; s++) {
        const int64_t R = shapes[s][0], C = shapes[s][1];
        const size_t es = dsv3_dtype_size(dt), nw = (size_t)(R * C);
        const size_t bytes = (nw * es + 63) / 64 * 64;
        char *data = aligned_alloc(64, bytes * (size_t)copies);
        const int64_t nsc = ((R + 127) / 128) * ((C + 127) / 128);
        float *scale = malloc((size_t)nsc * sizeof *scale), *x = malloc((size_t)(n * C) * sizeof *x);
        float *y = malloc((size_t)(n * R) * sizeof *y);
        if (!data || !scale || !x || !y) return 1;
        for (int k = 0; k < copies; k++) fill(data + bytes * (size_t)k, dt, nw);
        for (int64_t i = 0; i < nsc; i++) scale[i] = 0.01f;
        for (int64_t i = 0; i < n * C; i++) x[i] = (float)(next() >> 8) / 16777216.0f - 0.5f;
        dsv3_weight w = {.dtype = dt, .rows = R, .cols = C, .data = data,
                         .scale_inv = dt == DSV3_DT_F8_E4M3 ? scale : NULL};
        be->matmul(y, x, &w, n); /* warm: pool started */
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            int64_t calls = 0;
            const double t0 = dsv3_now_s();
            double t;
            do {
                w.data = data + bytes * (size_t)(calls % copies);
                be->matmul(y, x, &w, n);
                calls++;
            } while ((t = dsv3_now_s() - t0) < 0.2);
            best = t / (double)calls < best ? t / (double)calls : best;
        }
        printf("%s,%d,%s,%lld,%lld,%lld,%d,%.2f,%.2f,%.2f\n", be->name, dsv3_pool_threads(),
               dsv3_dtype_name(dt), (long long)R, (long long)C, (long long)n, copies, best * 1e6,
               (double)nw / best / 1e9, (double)(nw * es) / best / 1e9);
        free(data), free(scale), free(x), free(y);
    }
    return 0;
}
