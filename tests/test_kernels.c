/* test_kernels.c — every optimised kernel against the reference backend on fresh random inputs:
 * all weight dtypes, ragged FP8 blocks (dims not multiples of 128, row views that start inside
 * a block), 1..13 tokens, plain and transposed products, single and batched; attention, SiLU
 * and RMSNorm. Tolerance: max|fast - ref| / max|ref| <= 1e-5 (FP32 accumulation in another
 * order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"

#if defined(__x86_64__)
#include <immintrin.h> /* _mm_getcsr / _mm_setcsr for the DAZ case */
#endif

static uint64_t rng = 88172645463325252ull;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}
static float unif(void) {
    return (float)(next() >> 8) / 16777216.0f * 2.0f - 1.0f;
}

static int failures, passes;
static int fp8_subnormal; /* 1: FP8 weights get only subnormal codes (exponent field 0) */

static void fill(void *data, dsv3_dtype dt, size_t n) {
    for (size_t i = 0; i < n; i++) {
        switch (dt) {
        case DSV3_DT_F32: ((float *)data)[i] = unif(); break;
        case DSV3_DT_BF16: ((uint16_t *)data)[i] = dsv3_f32_to_bf16(unif()); break;
        case DSV3_DT_F16: { /* small normal halves: sign, exponent 10..17, random mantissa */
            uint16_t h = (uint16_t)(((next() & 1) << 15) | ((10 + next() % 8) << 10) | (next() & 1023));
            ((uint16_t *)data)[i] = h;
            break;
        }
        default: { /* FP8: any code but the NaNs 0x7F / 0xFF (1/16 of them subnormal) */
            uint8_t b;
            do b = (uint8_t)next(); while ((b & 0x7f) == 0x7f);
            ((uint8_t *)data)[i] = fp8_subnormal ? (uint8_t)(b & 0x87) : b;
        }
        }
    }
}

/* trans = 0: out[n, R] = x[n, C] W^T (matmul); 1: out[n, C] = x[n, R] W (matmul_t). */
static int check(const char *what, dsv3_dtype dt, int64_t R, int64_t C, int64_t n, int64_t view0,
                 int trans) {
    const int64_t RT = R + view0; /* stored rows; the weight is a view starting at view0 */
    const size_t es = dsv3_dtype_size(dt);
    void *data = malloc((size_t)(RT * C) * es);
    const int64_t sr = (RT + 127) / 128, sc = (C + 127) / 128;
    float *scale = malloc((size_t)(sr * sc) * sizeof *scale);
    float *x = malloc((size_t)(n * (R > C ? R : C)) * sizeof *x);
    float *a = malloc((size_t)(n * (R > C ? R : C)) * sizeof *a), *b = malloc((size_t)(n * (R > C ? R : C)) * sizeof *b);
    fill(data, dt, (size_t)(RT * C));
    for (int64_t i = 0; i < sr * sc; i++) scale[i] = 0.001f + 0.01f * (unif() + 1.0f);
    for (int64_t i = 0; i < n * C; i++) x[i] = unif();
    dsv3_weight full = {.dtype = dt, .rows = RT, .cols = C, .data = data,
                        .scale_inv = dt == DSV3_DT_F8_E4M3 ? scale : NULL};
    dsv3_weight w = dsv3_weight_rows(&full, view0, R);
    if (trans) {
        for (int64_t i = 0; i < n * R; i++) x[i] = unif();
        dsv3_backend_cpu()->matmul_t(a, x, &w, n);
        dsv3_backend_fast()->matmul_t(b, x, &w, n);
    } else {
        dsv3_backend_cpu()->matmul(a, x, &w, n);
        dsv3_backend_fast()->matmul(b, x, &w, n);
    }
    const int64_t nout = n * (trans ? C : R);
    double md = 0, mr = 0;
    for (int64_t i = 0; i < nout; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mr = fmax(mr, fabs((double)a[i]));
    }
    const double rel = md / (mr > 0 ? mr : 1);
    const int ok = rel <= 1e-5 && isfinite(rel);
    if (!ok) printf("  FAIL %s%s %s R=%lld C=%lld n=%lld view0=%lld: rel %.3g\n", what, trans ? "_t" : "", dsv3_dtype_name(dt),
                    (long long)R, (long long)C, (long long)n, (long long)view0, rel);
    free(data), free(scale), free(x), free(a), free(b);
    return ok;
}

/* matmul_many: a batch of products of mixed dtypes, shapes and token counts must equal the
 * reference products one by one. */
static int check_many(void) {
    enum { NOPS = 10 };
    const dsv3_dtype dts[NOPS] = {DSV3_DT_BF16, DSV3_DT_F8_E4M3, DSV3_DT_F32, DSV3_DT_BF16,
                                  DSV3_DT_F16, DSV3_DT_F8_E4M3, DSV3_DT_BF16, DSV3_DT_BF16,
                                  DSV3_DT_F8_E4M3, DSV3_DT_F32};
    const int64_t R[NOPS] = {512, 200, 64, 1000, 33, 129, 70, 64, 200, 3};
    const int64_t C[NOPS] = {256, 300, 128, 64, 90, 257, 1024, 256, 300, 77};
    const int64_t N[NOPS] = {1, 1, 3, 1, 7, 2, 1, 1, 2, 5};
    const int TR[NOPS] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 1}; /* transposed products (absorbed MLA) */
    void *data[NOPS];
    float *scale[NOPS], *x[NOPS], *a[NOPS], *b[NOPS];
    dsv3_weight w[NOPS];
    dsv3_matmul_op ops[NOPS];
    for (int i = 0; i < NOPS; i++) {
        data[i] = malloc((size_t)(R[i] * C[i]) * dsv3_dtype_size(dts[i]));
        fill(data[i], dts[i], (size_t)(R[i] * C[i]));
        const int64_t ns = ((R[i] + 127) / 128) * ((C[i] + 127) / 128);
        scale[i] = malloc((size_t)ns * sizeof(float));
        for (int64_t k = 0; k < ns; k++) scale[i][k] = 0.002f + 0.01f * (unif() + 1.0f);
        const int64_t nin = N[i] * (TR[i] ? R[i] : C[i]), nout = N[i] * (TR[i] ? C[i] : R[i]);
        x[i] = malloc((size_t)nin * sizeof(float));
        for (int64_t k = 0; k < nin; k++) x[i][k] = unif();
        a[i] = malloc((size_t)nout * sizeof(float));
        b[i] = malloc((size_t)nout * sizeof(float));
        w[i] = (dsv3_weight){.dtype = dts[i], .rows = R[i], .cols = C[i], .data = data[i],
                             .scale_inv = dts[i] == DSV3_DT_F8_E4M3 ? scale[i] : NULL};
        if (TR[i]) dsv3_backend_cpu()->matmul_t(a[i], x[i], &w[i], N[i]);
        else dsv3_backend_cpu()->matmul(a[i], x[i], &w[i], N[i]);
        ops[i] = (dsv3_matmul_op){b[i], x[i], &w[i], N[i], TR[i]};
    }
    dsv3_backend_fast()->matmul_many(ops, NOPS);
    int ok = 1;
    for (int i = 0; i < NOPS; i++) {
        double md = 0, mr = 0;
        for (int64_t k = 0; k < N[i] * (TR[i] ? C[i] : R[i]); k++) {
            md = fmax(md, fabs((double)a[i][k] - b[i][k]));
            mr = fmax(mr, fabs((double)a[i][k]));
        }
        if (!(md / mr <= 1e-5)) {
            printf("  FAIL matmul_many op %d (%s %lldx%lld n=%lld trans=%d): rel %.3g\n", i,
                   dsv3_dtype_name(dts[i]), (long long)R[i], (long long)C[i], (long long)N[i], TR[i], md / mr);
            ok = 0;
        }
        free(data[i]), free(scale[i]), free(x[i]), free(a[i]), free(b[i]);
    }
    return ok;
}

/* mla_attend: probabilities and attended latents of one query over T cached rows ([c | k_pe]
 * per row, as the latent cache keeps them), nh heads, widths that are and are not multiples of
 * the vector width. */
static int check_attend(int64_t nh, int64_t T, int64_t rkv, int64_t dr) {
    const int64_t qs = dr + 3; /* RoPE queries at a stride, as inside the q projection */
    float *qa = malloc((size_t)(nh * rkv) * 4), *qp = malloc((size_t)(nh * qs) * 4);
    const int64_t cs = rkv + dr;
    float *cache = malloc((size_t)(T * cs + 1) * 4), *c = cache, *k = cache + rkv;
    float *pa = malloc((size_t)(nh * T) * 4), *pb = malloc((size_t)(nh * T) * 4);
    float *ua = malloc((size_t)(nh * rkv) * 4), *ub = malloc((size_t)(nh * rkv) * 4);
    for (int64_t i = 0; i < nh * rkv; i++) qa[i] = 2.0f * unif();
    for (int64_t i = 0; i < nh * qs; i++) qp[i] = 2.0f * unif();
    for (int64_t i = 0; i < T * cs; i++) cache[i] = unif();
    dsv3_backend_cpu()->mla_attend(ua, pa, qa, qp, qs, c, k, cs, nh, T, rkv, dr, 0.3f);
    dsv3_backend_fast()->mla_attend(ub, pb, qa, qp, qs, c, k, cs, nh, T, rkv, dr, 0.3f);
    double dp = 0, du = 0, mu = 0;
    for (int64_t i = 0; i < nh * T; i++) dp = fmax(dp, fabs((double)pa[i] - pb[i]));
    for (int64_t i = 0; i < nh * rkv; i++) {
        du = fmax(du, fabs((double)ua[i] - ub[i]));
        mu = fmax(mu, fabs((double)ua[i]));
    }
    const int ok = dp <= 1e-5 && du / (mu > 0 ? mu : 1) <= 1e-5;
    if (!ok) printf("  FAIL mla_attend nh=%lld T=%lld rkv=%lld dr=%lld: |dp| %.3g, rel du %.3g\n", (long long)nh,
                    (long long)T, (long long)rkv, (long long)dr, dp, du / mu);
    free(qa), free(qp), free(cache), free(pa), free(pb), free(ua), free(ub);
    return ok;
}

/* silu_mul over a length that is not a multiple of the vector width, arguments up to |40|. */
static int check_silu(int64_t n) {
    float *g = malloc((size_t)n * 4), *h = malloc((size_t)n * 4), *u = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) g[i] = h[i] = 40.0f * unif() * unif(), u[i] = unif();
    dsv3_backend_cpu()->silu_mul(g, u, n);
    dsv3_backend_fast()->silu_mul(h, u, n);
    double md = 0, mr = 0;
    for (int64_t i = 0; i < n; i++) md = fmax(md, fabs((double)g[i] - h[i])), mr = fmax(mr, fabs((double)g[i]));
    const int ok = md / mr <= 1e-6;
    if (!ok) printf("  FAIL silu_mul n=%lld: rel %.3g\n", (long long)n, md / mr);
    free(g), free(h), free(u);
    return ok;
}

/* rmsnorm of n rows over widths that are and are not multiples of the vector width, in place
 * and not; values spread over six orders of magnitude. */
static int check_rmsnorm(int64_t n, int64_t dim) {
    float *x = malloc((size_t)(n * dim) * 4), *g = malloc((size_t)dim * 4);
    float *a = malloc((size_t)(n * dim) * 4), *b = malloc((size_t)(n * dim) * 4);
    for (int64_t i = 0; i < n * dim; i++) x[i] = unif() * powf(10.0f, 3.0f * unif());
    for (int64_t i = 0; i < dim; i++) g[i] = 1.0f + unif();
    dsv3_backend_cpu()->rmsnorm(a, x, g, n, dim, 1e-6f);
    memcpy(b, x, (size_t)(n * dim) * 4);
    dsv3_backend_fast()->rmsnorm(b, b, g, n, dim, 1e-6f); /* in place, as the model calls it */
    double md = 0, mr = 0;
    for (int64_t i = 0; i < n * dim; i++) md = fmax(md, fabs((double)a[i] - b[i])), mr = fmax(mr, fabs((double)a[i]));
    const int ok = md / mr <= 1e-5;
    if (!ok) printf("  FAIL rmsnorm n=%lld dim=%lld: rel %.3g\n", (long long)n, (long long)dim, md / mr);
    free(x), free(g), free(a), free(b);
    return ok;
}

int main(void) {
    printf("using backend '%s'\n", dsv3_backend_fast()->name);
    const dsv3_dtype dts[] = {DSV3_DT_F32, DSV3_DT_BF16, DSV3_DT_F16, DSV3_DT_F8_E4M3};
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {16, 128}, {17, 129}, {48, 128}, {192, 96},
                                 {64, 320}, {300, 257}, {576, 200}, {33, 1000}};
    const int64_t ns[] = {1, 2, 5, 6, 7, 13};
    double worst = 0;
    (void)worst;
    for (size_t d = 0; d < 4; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
                const int64_t view0 = (s % 3 == 1) ? 64 + (int64_t)s : 0; /* views inside a block */
                for (int trans = 0; trans <= 1; trans++) {
                    if (check("matmul", dts[d], shapes[s][0], shapes[s][1], ns[k], view0, trans)) passes++;
                    else failures++;
                }
            }
    /* FP8 one-token products (the GEMV that decodes E4M3 through FP32 bits, gemv_rows_fp8):
     * row counts that leave 1..3 rows after the four streams, rows cut into several row blocks
     * by views that start inside a block, columns that are not a multiple of 32 or fewer than
     * 32, the widest input that path takes (18432) and one more (the half-route fallback).
     * Then the same with subnormal codes only, where a wrong subnormal decode is not hidden
     * by larger weights, and, on x86, once more with MXCSR.DAZ set on the calling thread (the
     * fast path must step aside: DAZ reads its FP32 denormals as 0). */
    const int64_t f8[][3] = {{130, 64, 100}, {131, 96, 3}, {257, 4101, 0}, {255, 33, 127}, {6, 31, 0},
                             {1000, 288, 29}, {9, 18432, 0}, {5, 18433, 0}, {129, 1, 0}, {70, 200, 0}};
    for (fp8_subnormal = 0; fp8_subnormal <= 1; fp8_subnormal++)
        for (size_t s = 0; s < sizeof f8 / sizeof f8[0]; s++)
            for (int64_t n = 1; n <= 2; n++) {
                if (check("matmul_fp8", DSV3_DT_F8_E4M3, f8[s][0], f8[s][1], n, f8[s][2], 0)) passes++;
                else failures++;
            }
#if defined(__x86_64__)
    fp8_subnormal = 1;
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x0040); /* DAZ; 70 x 200 runs on this thread (below PAR_MIN_MACS) */
    const int daz_ok = check("matmul_fp8_daz", DSV3_DT_F8_E4M3, 70, 200, 1, 0, 0);
    _mm_setcsr(csr);
    if (daz_ok) passes++;
    else failures++;
#endif
    fp8_subnormal = 0;
    if (check_many()) passes++;
    else failures++;
    const int64_t att[][4] = {{1, 1, 8, 8}, {16, 37, 256, 32}, {4, 200, 32, 16}, {3, 9, 70, 5}, {2, 130, 136, 24},
                              {4, 301, 32, 16}, {2, 2, 24, 8}, {5, 77, 96, 16}};
    const int64_t norms[][2] = {{1, 1}, {1, 7}, {2, 32}, {3, 96}, {1, 128}, {5, 129}, {2, 1000}, {1, 7168}};
    for (size_t i = 0; i < sizeof norms / sizeof norms[0]; i++) {
        if (check_rmsnorm(norms[i][0], norms[i][1])) passes++;
        else failures++;
    }
    if (check_silu(1001)) passes++;
    else failures++;
    for (size_t i = 0; i < sizeof att / sizeof att[0]; i++) {
        if (check_attend(att[i][0], att[i][1], att[i][2], att[i][3])) passes++;
        else failures++;
    }
    printf("%d passed, %d failed\n", passes, failures);
    return failures != 0;
}
