/* fp8.c — E4M3 quantization and the three FP8 GEMMs of the training recipe (see fp8.h); the
 * GEMMs' row kernels are kernels/cpu/fp8_gemm.c, here they are split into items on the pool. */
#include "model/train/fp8.h"

#include <math.h>
#include <string.h>

#include "kernels/cpu/fp8_gemm.h"
#include "kernels/dtype.h"
#include "kernels/pool.h"

#define T DSV3_FP8_TILE
/* Below this many multiply-adds a parallel region costs more than it saves. */
#define PAR_MIN ((int64_t)1 << 20)

/* docs/ARCHITECTURE.md, "FP8 E4M3", on the FP32 bits: RNE of the 23-bit mantissa to 3 bits (a carry moves into the
 * exponent), subnormals on the 2^-9 grid, saturation to 0x7E (448). */
uint8_t dsv3_fp8_encode(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    const uint8_t sign = (uint8_t)((u >> 24) & 0x80);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7f;          /* NaN */
    if (a >= 0x43e00000u) return sign | 0x7e;         /* |x| >= 448 (and inf): saturate */
    if (a < 0x3c800000u) {                             /* |x| < 2^-6: subnormal grid m * 2^-9 */
        float ax;
        memcpy(&ax, &a, 4);
        return sign | (uint8_t)rintf(ax * 512.0f);     /* exact scaling; rint is RNE; q <= 8 */
    }
    uint32_t r = (a + 0x7ffffu + ((a >> 20) & 1u)) >> 20; /* exponent and 3 mantissa bits, RNE */
    int32_t code = (int32_t)r - (120 << 3);                /* rebias 127 -> 7 */
    if (code > 0x7e) code = 0x7e;                          /* 447.x rounding up to 464 */
    return sign | (uint8_t)code;
}

/* docs/ARCHITECTURE.md, "FP8 training". The power-of-two form rounds the exponent up unless the mantissa is zero. */
float dsv3_fp8_scale(float amax, int pow2) {
    const float s = fmaxf(amax, 1e-4f) / DSV3_FP8_MAX;
    if (!pow2) return s;
    uint32_t u;
    memcpy(&u, &s, 4);
    uint32_t e = (u >> 23) & 0xffu;
    if (u & 0x7fffffu) e++;
    if (e < 1) e = 1;
    if (e > 254) e = 254;
    u = e << 23;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

/* One tile: q[i * stride] = E4M3 of x[i * stride] / s (in FP32), i < len. */
static void quant_tile(uint8_t *q, const double *x, int64_t stride, int64_t len, float s) {
    for (int64_t i = 0; i < len; i++) q[i * stride] = dsv3_fp8_encode((float)x[i * stride] / s);
}

static float tile_amax(const double *x, int64_t stride, int64_t len) {
    float amax = 0.0f;
    for (int64_t i = 0; i < len; i++) amax = fmaxf(amax, fabsf((float)x[i * stride]));
    return amax;
}

void dsv3_fp8_quant_rows(uint8_t *q, float *s, const double *x, int64_t n, int64_t k, int pow2) {
    const int64_t nt = (k + T - 1) / T;
    for (int64_t m = 0; m < n; m++)
        for (int64_t t = 0; t < nt; t++) {
            const int64_t c0 = t * T, len = k - c0 < T ? k - c0 : T;
            const float sc = dsv3_fp8_scale(tile_amax(x + m * k + c0, 1, len), pow2);
            s[m * nt + t] = sc;
            quant_tile(q + m * k + c0, x + m * k + c0, 1, len, sc);
        }
}

void dsv3_fp8_quant_cols(uint8_t *q, float *s, const double *x, int64_t n, int64_t k, int pow2) {
    const int64_t nt = (n + T - 1) / T;
    for (int64_t t = 0; t < nt; t++) {
        const int64_t m0 = t * T, len = n - m0 < T ? n - m0 : T;
        for (int64_t c = 0; c < k; c++) {
            const float sc = dsv3_fp8_scale(tile_amax(x + m0 * k + c, k, len), pow2);
            s[t * k + c] = sc;
            quant_tile(q + m0 * k + c, x + m0 * k + c, k, len, sc);
        }
    }
}

void dsv3_fp8_quant_blocks(uint8_t *q, float *s, const float *w, int64_t rows, int64_t cols) {
    const int64_t rb = (rows + T - 1) / T, cb = (cols + T - 1) / T;
    for (int64_t bi = 0; bi < rb; bi++)
        for (int64_t bj = 0; bj < cb; bj++) {
            const int64_t r1 = bi * T + T < rows ? bi * T + T : rows;
            const int64_t c1 = bj * T + T < cols ? bj * T + T : cols;
            float amax = 0.0f;
            for (int64_t r = bi * T; r < r1; r++)
                for (int64_t c = bj * T; c < c1; c++) amax = fmaxf(amax, fabsf(w[r * cols + c]));
            const float sc = dsv3_fp8_scale(amax, 0);
            s[bi * cb + bj] = sc;
            for (int64_t r = bi * T; r < r1; r++)
                for (int64_t c = bj * T; c < c1; c++) q[r * cols + c] = dsv3_fp8_encode(w[r * cols + c] / sc);
        }
}

void dsv3_fp8_dequant_rows(double *x, const uint8_t *q, const float *s, int64_t n, int64_t k) {
    const int64_t nt = (k + T - 1) / T;
    for (int64_t m = 0; m < n; m++)
        for (int64_t c = 0; c < k; c++)
            x[m * k + c] = (double)(dsv3_e4m3_table[q[m * k + c]] * s[m * nt + c / T]);
}

void dsv3_fp8_values(double *v, const uint8_t *q, int64_t n) {
    for (int64_t i = 0; i < n; i++) v[i] = (double)dsv3_e4m3_table[q[i]];
}

/* One GEMM's operands, for the pool items (kernels/pool.h). */
typedef struct {
    double *y;
    float *dW;
    const double *a, *b;
    const float *sa, *sb;
    int64_t n, in, out;
} gemm_job;

/* Items 0..items-1 of fn on the pool when the product is big enough, else inline. */
static void run_items(int64_t items, dsv3_pool_fn fn, gemm_job *j) {
    if (j->n * j->in * j->out >= PAR_MIN) dsv3_pool_for(items, fn, j);
    else
        for (int64_t i = 0; i < items; i++) fn(j, i, 0);
}

/* Fprop: parallel over blocks of 4 output rows. */
static void fprop_item(void *ctx, int64_t rb, int tid) {
    (void)tid;
    const gemm_job *j = ctx;
    dsv3_fp8_fprop_rows(j->y, j->a, j->sa, j->b, j->sb, j->n, j->in, j->out, rb);
}

void dsv3_fp8_gemm_fprop(double *y, const double *x, const float *sx, const double *W,
                         const float *sW, int64_t n, int64_t in, int64_t out) {
    gemm_job j = {.y = y, .a = x, .sa = sx, .b = W, .sb = sW, .n = n, .in = in, .out = out};
    run_items((out + 3) / 4, fprop_item, &j);
}

/* Dgrad: parallel over tokens. */
static void dgrad_item(void *ctx, int64_t m, int tid) {
    (void)tid;
    const gemm_job *j = ctx;
    dsv3_fp8_dgrad_token(j->y, j->a, j->sa, j->b, j->sb, j->in, j->out, m);
}

void dsv3_fp8_gemm_dgrad(double *dx, const double *dy, const float *sdy, const double *W,
                         const float *sW, int64_t n, int64_t in, int64_t out) {
    gemm_job j = {.y = dx, .a = dy, .sa = sdy, .b = W, .sb = sW, .n = n, .in = in, .out = out};
    run_items(n, dgrad_item, &j);
}

/* Wgrad: parallel over rows of dW. */
static void wgrad_item(void *ctx, int64_t r, int tid) {
    (void)tid;
    const gemm_job *j = ctx;
    dsv3_fp8_wgrad_row(j->dW, j->a, j->sa, j->b, j->sb, j->n, j->in, j->out, r);
}

void dsv3_fp8_gemm_wgrad(float *dW, const double *dy, const float *sdy, const double *x,
                         const float *sx, int64_t n, int64_t in, int64_t out) {
    gemm_job j = {.dW = dW, .a = dy, .sa = sdy, .b = x, .sb = sx, .n = n, .in = in, .out = out};
    run_items(out, wgrad_item, &j);
}
