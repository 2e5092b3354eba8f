/* fp8_gemm.c — the row kernels of the emulated FP8 GEMMs (see kernels/cpu/fp8_gemm.h). */
#include "kernels/cpu/fp8_gemm.h"

#include "kernels/cpu/isa.h"

#define T DSV3_FP8_TILE
/* Columns of the FP32 accumulator a thread keeps on its stack in Dgrad/Wgrad. */
#define SLAB 256

/* The loop bodies are compiled twice, for AVX2+FMA (the *_fma clones) and for baseline x86-64
 * (inlined into the public functions), and chosen per call from the CPU. Both give the same bits:
 * the chunk sums are exact either way, and the FP32 steps after them are written out operation by
 * operation (this file is compiled with -ffp-contract=off, so no multiply and add are fused). */
#define BODY static inline __attribute__((always_inline))

/* Fprop, rows 4 rb .. 4 rb + 3: each x chunk is read once for 4 weight rows. The chunk sums
 * are exact, so their vectorised order does not matter. */
BODY void fprop_rows(double *y, const double *x, const float *sx, const double *W,
                     const float *sW, int64_t n, int64_t in, int64_t out, int64_t rb) {
    const int64_t nc = (in + T - 1) / T;
    {
        const int64_t r0 = rb * 4, nr = out - r0 < 4 ? out - r0 : 4;
        const double *w[4];
        for (int64_t j = 0; j < 4; j++) w[j] = W + (r0 + (j < nr ? j : 0)) * in;
        const float *sw = sW + (r0 / T) * nc; /* 4 | 128: the 4 rows share a block row */
        for (int64_t m = 0; m < n; m++) {
            const double *xm = x + m * in;
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int64_t c = 0; c < nc; c++) {
                const int64_t k0 = c * T, k1 = in - k0 < T ? in : k0 + T;
                double p0 = 0.0, p1 = 0.0, p2 = 0.0, p3 = 0.0;
#pragma omp simd reduction(+ : p0, p1, p2, p3)
                for (int64_t k = k0; k < k1; k++) {
                    const double xv = xm[k];
                    p0 += xv * w[0][k];
                    p1 += xv * w[1][k];
                    p2 += xv * w[2][k];
                    p3 += xv * w[3][k];
                }
                const float s = sx[m * nc + c] * sw[c];
                acc[0] += (float)p0 * s;
                acc[1] += (float)p1 * s;
                acc[2] += (float)p2 * s;
                acc[3] += (float)p3 * s;
            }
            for (int64_t j = 0; j < nr; j++) y[m * out + r0 + j] = (double)acc[j];
        }
    }
}

static DSV3_ISA_FMA void fprop_rows_fma(double *y, const double *x, const float *sx,
                                       const double *W, const float *sW, int64_t n, int64_t in,
                                       int64_t out, int64_t rb) {
    fprop_rows(y, x, sx, W, sW, n, in, out, rb);
}

void dsv3_fp8_fprop_rows(double *y, const double *x, const float *sx, const double *W,
                         const float *sW, int64_t n, int64_t in, int64_t out, int64_t rb) {
    if (dsv3_isa_fma()) fprop_rows_fma(y, x, sx, W, sW, n, in, out, rb);
    else fprop_rows(y, x, sx, W, sW, n, in, out, rb);
}

/* Dgrad, token m: SLAB columns of dx at a time: per chunk j of
 * out, p[k] = exact sum over r in j of dy[m, r] W[r, k], then acc[k] += (float)p[k] * scale. */
BODY void dgrad_token(double *dx, const double *dy, const float *sdy, const double *W,
                      const float *sW, int64_t in, int64_t out, int64_t m) {
    const int64_t nj = (out + T - 1) / T, nk = (in + T - 1) / T;
    {
        const double *d = dy + m * out;
        double p[SLAB];
        float acc[SLAB];
        for (int64_t k0 = 0; k0 < in; k0 += SLAB) {
            const int64_t len = in - k0 < SLAB ? in - k0 : SLAB;
            for (int64_t k = 0; k < len; k++) acc[k] = 0.0f;
            for (int64_t j = 0; j < nj; j++) {
                const int64_t r1 = out - j * T < T ? out : j * T + T;
                for (int64_t k = 0; k < len; k++) p[k] = 0.0;
                for (int64_t r = j * T; r < r1; r++) {
                    const double dv = d[r];
                    const double *wr = W + r * in + k0;
#pragma omp simd
                    for (int64_t k = 0; k < len; k++) p[k] += dv * wr[k];
                }
                const float sd = sdy[m * nj + j];
                for (int64_t k = 0; k < len; k++)
                    acc[k] += (float)p[k] * (sd * sW[j * nk + (k0 + k) / T]);
            }
            for (int64_t k = 0; k < len; k++) dx[m * in + k0 + k] += (double)acc[k];
        }
    }
}

static DSV3_ISA_FMA void dgrad_token_fma(double *dx, const double *dy, const float *sdy,
                                        const double *W, const float *sW, int64_t in, int64_t out,
                                        int64_t m) {
    dgrad_token(dx, dy, sdy, W, sW, in, out, m);
}

void dsv3_fp8_dgrad_token(double *dx, const double *dy, const float *sdy, const double *W,
                          const float *sW, int64_t in, int64_t out, int64_t m) {
    if (dsv3_isa_fma()) dgrad_token_fma(dx, dy, sdy, W, sW, in, out, m);
    else dgrad_token(dx, dy, sdy, W, sW, in, out, m);
}

/* Wgrad, row r of dW: SLAB columns at a time: per 128-token tile t,
 * p[k] = exact sum over m in t of dy[m, r] x[m, k], then acc[k] += (float)p[k] * scale. */
BODY void wgrad_row(float *dW, const double *dy, const float *sdy, const double *x,
                    const float *sx, int64_t n, int64_t in, int64_t out, int64_t r) {
    const int64_t nt = (n + T - 1) / T;
    {
        double p[SLAB];
        float acc[SLAB];
        for (int64_t k0 = 0; k0 < in; k0 += SLAB) {
            const int64_t len = in - k0 < SLAB ? in - k0 : SLAB;
            for (int64_t k = 0; k < len; k++) acc[k] = 0.0f;
            for (int64_t t = 0; t < nt; t++) {
                const int64_t m1 = n - t * T < T ? n : t * T + T;
                for (int64_t k = 0; k < len; k++) p[k] = 0.0;
                for (int64_t m = t * T; m < m1; m++) {
                    const double dv = dy[m * out + r];
                    const double *xm = x + m * in + k0;
#pragma omp simd
                    for (int64_t k = 0; k < len; k++) p[k] += dv * xm[k];
                }
                const float sd = sdy[t * out + r];
                const float *sxt = sx + t * in + k0;
                for (int64_t k = 0; k < len; k++) acc[k] += (float)p[k] * (sd * sxt[k]);
            }
            float *dw = dW + r * in + k0;
            for (int64_t k = 0; k < len; k++) dw[k] += acc[k];
        }
    }
}

static DSV3_ISA_FMA void wgrad_row_fma(float *dW, const double *dy, const float *sdy,
                                      const double *x, const float *sx, int64_t n, int64_t in,
                                      int64_t out, int64_t r) {
    wgrad_row(dW, dy, sdy, x, sx, n, in, out, r);
}

void dsv3_fp8_wgrad_row(float *dW, const double *dy, const float *sdy, const double *x,
                        const float *sx, int64_t n, int64_t in, int64_t out, int64_t r) {
    if (dsv3_isa_fma()) wgrad_row_fma(dW, dy, sdy, x, sx, n, in, out, r);
    else wgrad_row(dW, dy, sdy, x, sx, n, in, out, r);
}
