/* test_fp8.c — the FP8 recipe emulation (model/train/fp8.h) against independent references:
 * the E4M3 encoder against a brute-force nearest-value search over the decode table, the
 * scales against their definition, the tile/block quantizers against per-tile bounds, and the
 * three GEMMs against double-precision products of the dequantized operands (docs/ARCHITECTURE.md,
 * "FP8 training": the only difference is FP32 rounding of the chunk sums and the accumulator) and
 * against the unquantized product (DeepGEMM's similarity measure, pooled < 1e-3; see close_to).
 * Fresh random inputs each run unless DSV3_TEST_SEED is set; the seed is printed. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/runner.h"

#include "kernels/dtype.h"
#include "model/train/fp8.h"


/* Values spread over many binades, with occasional outliers (what activations look like). */
static double spread(void) {
    double v = urand() * pow(2.0, (double)(int)(test_u64() % 12) - 6.0);
    if (test_u64() % 97 == 0) v *= 50.0;
    return v;
}

/* The reference encoder: the finite E4M3 value nearest to x (ties to the even code, i.e. the
 * one whose mantissa LSB is 0), by searching all 127 non-negative codes; |x| beyond 448
 * saturates; NaN gives 0x7F. Shares nothing with the bit-manipulation encoder. */
static uint8_t ref_encode(float x) {
    if (isnan(x)) return signbit(x) ? 0xff : 0x7f;
    const uint8_t sign = signbit(x) ? 0x80 : 0;
    const double a = fabs((double)x);
    int best = 0;
    double bd = INFINITY;
    for (int c = 0; c <= 0x7e; c++) {
        const double d = fabs((double)dsv3_e4m3_table[c] - a);
        if (d < bd || (d == bd && (c & 1) == 0)) best = c, bd = d;
    }
    return sign | (uint8_t)best;
}

static int test_encoder_matches_nearest_even_search(void) {
    /* every decode value, every midpoint between neighbours (ties), and their neighbours */
    int64_t checked = 0;
    for (int c = 0; c < 0x7e; c++) {
        const float lo = dsv3_e4m3_table[c], hi = dsv3_e4m3_table[c + 1];
        const float mid = (float)(((double)lo + (double)hi) / 2.0);
        const float xs[] = {lo, hi, mid, nextafterf(mid, 0.0f), nextafterf(mid, 1e9f)};
        for (int i = 0; i < 5; i++)
            for (int sgn = 0; sgn < 2; sgn++) {
                const float x = sgn ? -xs[i] : xs[i];
                CHECK(dsv3_fp8_encode(x) == ref_encode(x), "x %.9g: got 0x%02x want 0x%02x", x,
                      dsv3_fp8_encode(x), ref_encode(x));
                checked++;
            }
    }
    for (int i = 0; i < 200000; i++) {
        const float x = (float)(spread() * 64.0);
        CHECK(dsv3_fp8_encode(x) == ref_encode(x), "x %.9g: got 0x%02x want 0x%02x", x,
              dsv3_fp8_encode(x), ref_encode(x));
        checked++;
    }
    CHECK(dsv3_fp8_encode(448.0f) == 0x7e && dsv3_fp8_encode(464.0f) == 0x7e, "saturation at 448");
    CHECK(dsv3_fp8_encode(1e30f) == 0x7e && dsv3_fp8_encode(-INFINITY) == 0xfe, "inf saturates");
    CHECK(dsv3_fp8_encode(NAN) == 0x7f, "NaN");
    CHECK(dsv3_fp8_encode(0x1p-10f) == 0x00 && dsv3_fp8_encode(0x1.8p-10f) == 0x01,
          "half the smallest subnormal rounds to even (0), 1.5x of it up");
    printf("  %lld values agree with the nearest-even search\n", (long long)checked);
    return 0;
}

static int test_scales(void) {
    for (int i = 0; i < 100000; i++) {
        const float amax = (float)fabs(spread() * 100.0);
        const float s = dsv3_fp8_scale(amax, 0), p = dsv3_fp8_scale(amax, 1);
        CHECK(s == fmaxf(amax, 1e-4f) / 448.0f, "plain scale of %g", amax);
        int e;
        const float m = frexpf(p, &e);
        CHECK(m == 0.5f, "pow2 scale %g of %g is not a power of two", p, amax);
        CHECK(p >= s && p < 2.0f * s, "pow2 scale %g not the round-up of %g", p, s);
        /* the tile's max then encodes within range: |amax / p| <= 448 */
        CHECK(fmaxf(amax, 1e-4f) / p <= 448.0f, "pow2 scale overflows");
    }
    CHECK(dsv3_fp8_scale(0.0f, 0) == 1e-4f / 448.0f, "amax floor 1e-4");
    CHECK(dsv3_fp8_scale(448.0f * 0.25f, 1) == 0.25f, "exact power of two kept");
    return 0;
}

/* Each tile's max maps to +-448 (plain scales), and every value dequantizes within half an
 * E4M3 step (relative 2^-4) or half the subnormal step times the scale. */
static int check_tile(const double *x, const uint8_t *q, float s, int64_t len, int64_t stride,
                      int pow2) {
    float amax = 0.0f;
    for (int64_t i = 0; i < len; i++) amax = fmaxf(amax, fabsf((float)x[i * stride]));
    CHECK(s == dsv3_fp8_scale(amax, pow2), "tile scale %g, want %g", s, dsv3_fp8_scale(amax, pow2));
    for (int64_t i = 0; i < len; i++) {
        const float xf = (float)x[i * stride];
        CHECK(q[i * stride] == ref_encode(xf / s), "code of %g / %g", xf, s);
        if (!pow2 && fabsf(xf) == amax && amax >= 1e-4f) CHECK((q[i * stride] & 0x7f) == 0x7e, "tile max not at 448");
        const double back = (double)dsv3_e4m3_table[q[i * stride]] * s;
        CHECK(fabs(back - xf) <= fabs(xf) * 0.0625 + 0x1p-10 * s, "dequant of %g is %g", xf, back);
    }
    return 0;
}

static int test_quantizers_on_ragged_shapes(void) {
    const int64_t shapes[][2] = {{1, 1}, {3, 127}, {5, 128}, {7, 129}, {130, 40}, {257, 300}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t n = shapes[si][0], k = shapes[si][1];
        double *x = malloc((size_t)(n * k) * sizeof *x);
        uint8_t *q = malloc((size_t)(n * k));
        float *s = malloc((size_t)((n + 127) / 128 * k + n * ((k + 127) / 128)) * sizeof *s);
        float *w = malloc((size_t)(n * k) * sizeof *w);
        for (int64_t i = 0; i < n * k; i++) x[i] = spread(), w[i] = (float)x[i];
        for (int pow2 = 0; pow2 < 2; pow2++) {
            const int64_t nt = (k + 127) / 128;
            dsv3_fp8_quant_rows(q, s, x, n, k, pow2);
            for (int64_t m = 0; m < n; m++)
                for (int64_t t = 0; t < nt; t++) {
                    const int64_t len = k - t * 128 < 128 ? k - t * 128 : 128;
                    if (check_tile(x + m * k + t * 128, q + m * k + t * 128, s[m * nt + t], len, 1, pow2))
                        return 1;
                }
            dsv3_fp8_quant_cols(q, s, x, n, k, pow2);
            for (int64_t t = 0; t < (n + 127) / 128; t++)
                for (int64_t c = 0; c < k; c++) {
                    const int64_t len = n - t * 128 < 128 ? n - t * 128 : 128;
                    if (check_tile(x + t * 128 * k + c, q + t * 128 * k + c, s[t * k + c], len, k, pow2))
                        return 1;
                }
        }
        /* blocks: scale = block amax / 448, codes by the reference encoder */
        dsv3_fp8_quant_blocks(q, s, w, n, k);
        const int64_t cb = (k + 127) / 128;
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < k; c++) {
                const float sc = s[(r / 128) * cb + c / 128];
                CHECK(q[r * k + c] == ref_encode(w[r * k + c] / sc), "block code %lld,%lld", (long long)r, (long long)c);
            }
        for (int64_t bi = 0; bi < (n + 127) / 128; bi++)
            for (int64_t bj = 0; bj < cb; bj++) {
                float amax = 0.0f;
                for (int64_t r = bi * 128; r < n && r < bi * 128 + 128; r++)
                    for (int64_t c = bj * 128; c < k && c < bj * 128 + 128; c++) amax = fmaxf(amax, fabsf(w[r * k + c]));
                CHECK(s[bi * cb + bj] == dsv3_fp8_scale(amax, 0), "block scale %lld,%lld", (long long)bi, (long long)bj);
            }
        free(x), free(q), free(s), free(w);
    }
    return 0;
}

/* ---------------------------------------------------------------- GEMMs ------------------ */

typedef struct {
    int64_t n, in, out;
    double *x, *dy;            /* [n, in], [n, out] */
    float *W;                  /* [out, in] */
    uint8_t *qx, *qdy, *qW, *qxc, *qdyc;
    float *sx, *sdy, *sW, *sxc, *sdyc;
    double *vx, *vdy, *vW, *vxc, *vdyc;
} gemm_case;

static void *zalloc(int64_t n, size_t el) {
    return calloc((size_t)(n > 0 ? n : 1), el);
}

static void case_new(gemm_case *g, int64_t n, int64_t in, int64_t out) {
    g->n = n, g->in = in, g->out = out;
    g->x = zalloc(n * in, 8), g->dy = zalloc(n * out, 8), g->W = zalloc(out * in, 4);
    /* activations over 4 binades without rare outliers (an x50 outlier in a 64-wide tile costs
     * its neighbours ~6 bits, which the quantizer tests cover) */
    for (int64_t i = 0; i < n * in; i++) g->x[i] = urand() * (double)(1 << (test_u64() % 4));
    for (int64_t i = 0; i < n * out; i++) g->dy[i] = urand() * (double)(1 << (test_u64() % 4)) * 1e-3;
    for (int64_t i = 0; i < out * in; i++) g->W[i] = (float)(urand() * 0.05);
    const int64_t big = (n > out ? n : out) * (in > out ? in : out) + 1;
    g->qx = zalloc(big, 1), g->qdy = zalloc(big, 1), g->qW = zalloc(big, 1);
    g->qxc = zalloc(big, 1), g->qdyc = zalloc(big, 1);
    g->sx = zalloc(big, 4), g->sdy = zalloc(big, 4), g->sW = zalloc(big, 4);
    g->sxc = zalloc(big, 4), g->sdyc = zalloc(big, 4);
    g->vx = zalloc(big, 8), g->vdy = zalloc(big, 8), g->vW = zalloc(big, 8);
    g->vxc = zalloc(big, 8), g->vdyc = zalloc(big, 8);
    dsv3_fp8_quant_rows(g->qx, g->sx, g->x, n, in, 0);
    dsv3_fp8_values(g->vx, g->qx, n * in);
    dsv3_fp8_quant_rows(g->qdy, g->sdy, g->dy, n, out, 1);
    dsv3_fp8_values(g->vdy, g->qdy, n * out);
    dsv3_fp8_quant_blocks(g->qW, g->sW, g->W, out, in);
    dsv3_fp8_values(g->vW, g->qW, out * in);
    dsv3_fp8_quant_cols(g->qxc, g->sxc, g->x, n, in, 0);
    dsv3_fp8_values(g->vxc, g->qxc, n * in);
    dsv3_fp8_quant_cols(g->qdyc, g->sdyc, g->dy, n, out, 1);
    dsv3_fp8_values(g->vdyc, g->qdyc, n * out);
}

static void case_free(gemm_case *g) {
    void *p[] = {g->x, g->dy, g->W, g->qx, g->qdy, g->qW, g->qxc, g->qdyc, g->sx, g->sdy, g->sW,
                 g->sxc, g->sdyc, g->vx, g->vdy, g->vW, g->vxc, g->vdyc};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
}

/* Dequantized operand values. */
static double dx_(const gemm_case *g, int64_t m, int64_t k) {
    return g->vx[m * g->in + k] * g->sx[m * ((g->in + 127) / 128) + k / 128];
}
static double dW_(const gemm_case *g, int64_t r, int64_t k) {
    return g->vW[r * g->in + k] * g->sW[(r / 128) * ((g->in + 127) / 128) + k / 128];
}
static double ddy_(const gemm_case *g, int64_t m, int64_t r) {
    return g->vdy[m * g->out + r] * g->sdy[m * ((g->out + 127) / 128) + r / 128];
}

/* Per element: |got - ref| <= 2^-20 * sum|a b| (FP32 rounding of <= ceil(K/128) chunk sums,
 * scale products and accumulations, each 2^-24 relative) — tight enough to catch a wrong scale
 * or tile. Globally: DeepGEMM's similarity to the unquantized product, 1 - 2 sum(xy) /
 * sum(x^2 + y^2), pooled over all outputs of all cases < 1e-3 (DeepGEMM's bound), and per case
 * < 5e-3: with E4M3's RMS relative rounding error ~0.026 per operand a product is off by ~0.036
 * and the measure is ~0.036^2 / 2 = 6.5e-4 on average; the smallest cases (48 outputs) scatter
 * up to ~1.4e-3 (measured over 1200 cases). A wrong scale or tile gives ~1. */
typedef struct {
    double worst, sxy, sxx;
} cmp;
static int close_to(cmp *c, double got, double ref, double mag, double exact) {
    const double e = fabs(got - ref) / (mag * 0x1p-20 + 1e-30);
    if (e > c->worst) c->worst = e;
    c->sxy += got * exact;
    c->sxx += got * got + exact * exact;
    return fabs(got - ref) <= mag * 0x1p-20 + 1e-30;
}

static int test_gemms_against_dequantized_products(void) {
    double pxy = 0.0, pxx = 0.0; /* pooled over every output of every shape and GEMM */
    const int64_t shapes[][3] = {{1, 64, 48}, {4, 128, 128}, {17, 300, 130}, {130, 129, 257}, {200, 384, 96}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        gemm_case g;
        case_new(&g, shapes[si][0], shapes[si][1], shapes[si][2]);
        const int64_t n = g.n, in = g.in, out = g.out;
        double *y = zalloc(n * out, 8), *dx = zalloc(n * in, 8);
        float *dW = zalloc(out * in, 4);
        dsv3_fp8_gemm_fprop(y, g.vx, g.sx, g.vW, g.sW, n, in, out);
        dsv3_fp8_gemm_dgrad(dx, g.vdy, g.sdy, g.vW, g.sW, n, in, out);
        dsv3_fp8_gemm_wgrad(dW, g.vdyc, g.sdyc, g.vxc, g.sxc, n, in, out);
        cmp cy = {0}, cx = {0}, cw = {0};
        for (int64_t m = 0; m < n; m++)
            for (int64_t r = 0; r < out; r++) {
                double ref = 0, mag = 0, exact = 0;
                for (int64_t k = 0; k < in; k++) {
                    ref += dx_(&g, m, k) * dW_(&g, r, k);
                    mag += fabs(dx_(&g, m, k) * dW_(&g, r, k));
                    exact += g.x[m * in + k] * (double)g.W[r * in + k];
                }
                CHECK(close_to(&cy, y[m * out + r], ref, mag, exact), "fprop %lldx%lldx%lld (%lld,%lld): %.9g vs %.9g",
                      (long long)n, (long long)in, (long long)out, (long long)m, (long long)r, y[m * out + r], ref);
            }
        for (int64_t m = 0; m < n; m++)
            for (int64_t k = 0; k < in; k++) {
                double ref = 0, mag = 0, exact = 0;
                for (int64_t r = 0; r < out; r++) {
                    ref += ddy_(&g, m, r) * dW_(&g, r, k);
                    mag += fabs(ddy_(&g, m, r) * dW_(&g, r, k));
                    exact += g.dy[m * out + r] * (double)g.W[r * in + k];
                }
                CHECK(close_to(&cx, dx[m * in + k], ref, mag, exact), "dgrad (%lld,%lld): %.9g vs %.9g",
                      (long long)m, (long long)k, dx[m * in + k], ref);
            }
        for (int64_t r = 0; r < out; r++)
            for (int64_t k = 0; k < in; k++) {
                double ref = 0, mag = 0, exact = 0;
                for (int64_t m = 0; m < n; m++) {
                    const double a = g.vdyc[m * out + r] * g.sdyc[(m / 128) * out + r];
                    const double b = g.vxc[m * in + k] * g.sxc[(m / 128) * in + k];
                    ref += a * b, mag += fabs(a * b);
                    exact += g.dy[m * out + r] * g.x[m * in + k];
                }
                CHECK(close_to(&cw, dW[r * in + k], ref, mag + 1e-30, exact), "wgrad (%lld,%lld): %.9g vs %.9g",
                      (long long)r, (long long)k, dW[r * in + k], ref);
            }
        const double sy = 1 - 2 * cy.sxy / cy.sxx, sx = 1 - 2 * cx.sxy / cx.sxx, sw = 1 - 2 * cw.sxy / cw.sxx;
        printf("  %4lld x %3lld x %3lld: worst error / (2^-20 sum|ab|): fprop %.3f dgrad %.3f wgrad %.3f; "
               "similarity to unquantized: %.1e %.1e %.1e\n", (long long)n, (long long)in, (long long)out,
               cy.worst, cx.worst, cw.worst, sy, sx, sw);
        CHECK(sy < 5e-3 && sx < 5e-3 && sw < 5e-3, "FP8 GEMM too far from the unquantized product");
        pxy += cy.sxy + cx.sxy + cw.sxy, pxx += cy.sxx + cx.sxx + cw.sxx;
        free(y), free(dx), free(dW);
        case_free(&g);
    }
    const double pooled = 1 - 2 * pxy / pxx;
    printf("  pooled similarity to the unquantized products: %.1e\n", pooled);
    CHECK(pooled < 1e-3, "FP8 GEMMs too far from the unquantized products (pooled)");
    return 0;
}

/* The chunk sums are exact, so results are bit-identical for any thread count. */
static int test_gemms_independent_of_threads(void) {
    gemm_case g;
    case_new(&g, 300, 640, 520);
    const int64_t n = g.n, in = g.in, out = g.out;
    double *y[2], *dx[2];
    float *dW[2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        y[t] = zalloc(n * out, 8), dx[t] = zalloc(n * in, 8), dW[t] = zalloc(out * in, 4);
        dsv3_fp8_gemm_fprop(y[t], g.vx, g.sx, g.vW, g.sW, n, in, out);
        dsv3_fp8_gemm_dgrad(dx[t], g.vdy, g.sdy, g.vW, g.sW, n, in, out);
        dsv3_fp8_gemm_wgrad(dW[t], g.vdyc, g.sdyc, g.vxc, g.sxc, n, in, out);
    }
    omp_set_num_threads(omp_get_num_procs());
    CHECK(!memcmp(y[0], y[1], (size_t)(n * out) * 8), "fprop differs between 1 and 2 threads");
    CHECK(!memcmp(dx[0], dx[1], (size_t)(n * in) * 8), "dgrad differs between 1 and 2 threads");
    CHECK(!memcmp(dW[0], dW[1], (size_t)(out * in) * 4), "wgrad differs between 1 and 2 threads");
    for (int t = 0; t < 2; t++) free(y[t]), free(dx[t]), free(dW[t]);
    case_free(&g);
    return 0;
}

static const dsv3_test tests[] = {
    {"encoder_matches_nearest_even_search", test_encoder_matches_nearest_even_search},
    {"scales", test_scales},
    {"quantizers_on_ragged_shapes", test_quantizers_on_ragged_shapes},
    {"gemms_against_dequantized_products", test_gemms_against_dequantized_products},
    {"gemms_independent_of_threads", test_gemms_independent_of_threads},
};

int main(int argc, char **argv) {
    dsv3_test_fresh_seed();
    return DSV3_RUN_TESTS(tests, argc, argv);
}
