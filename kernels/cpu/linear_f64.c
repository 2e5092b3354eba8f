/* linear_f64.c — the trainer's double-precision linear layer, block by block (see
 * kernels/cpu/linear_f64.h). */
#include "kernels/cpu/linear_f64.h"

#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/isa.h"

/* ---------------------------------------------------------------- AVX2+FMA blocks ------- */

/* Sum of the 4 lanes, in a fixed order. */
static DSV3_ISA_FMA inline double hsum(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* y[s, r0..r0+3] for every token: 2 tokens x 4 rows per pass (8 accumulators), so each
 * widened weight vector serves two tokens. */
static DSV3_ISA_FMA void fwd4_avx2(double *y, const double *x, const float *W, int64_t n,
                                   int64_t in, int64_t out, int64_t r0) {
    const float *w[4] = {W + r0 * in, W + (r0 + 1) * in, W + (r0 + 2) * in, W + (r0 + 3) * in};
    const int64_t cv = in & ~(int64_t)3;
    for (int64_t s = 0; s < n; s += 2) {
        const int two = s + 1 < n;
        const double *xa = x + s * in, *xb = two ? xa + in : xa;
        __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int64_t c = 0; c < cv; c += 4) {
            const __m256d u = _mm256_loadu_pd(xa + c), v = _mm256_loadu_pd(xb + c);
            const __m256d q0 = _mm256_cvtps_pd(_mm_loadu_ps(w[0] + c));
            const __m256d q1 = _mm256_cvtps_pd(_mm_loadu_ps(w[1] + c));
            const __m256d q2 = _mm256_cvtps_pd(_mm_loadu_ps(w[2] + c));
            const __m256d q3 = _mm256_cvtps_pd(_mm_loadu_ps(w[3] + c));
            a0 = _mm256_fmadd_pd(u, q0, a0), a1 = _mm256_fmadd_pd(u, q1, a1);
            a2 = _mm256_fmadd_pd(u, q2, a2), a3 = _mm256_fmadd_pd(u, q3, a3);
            b0 = _mm256_fmadd_pd(v, q0, b0), b1 = _mm256_fmadd_pd(v, q1, b1);
            b2 = _mm256_fmadd_pd(v, q2, b2), b3 = _mm256_fmadd_pd(v, q3, b3);
        }
        double ra[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
        double rb[4] = {hsum(b0), hsum(b1), hsum(b2), hsum(b3)};
        for (int64_t c = cv; c < in; c++)
            for (int k = 0; k < 4; k++) ra[k] += xa[c] * (double)w[k][c], rb[k] += xb[c] * (double)w[k][c];
        for (int k = 0; k < 4; k++) y[s * out + r0 + k] = ra[k];
        if (two)
            for (int k = 0; k < 4; k++) y[(s + 1) * out + r0 + k] = rb[k];
    }
}

/* dx[s0..s0+3, :] += dy[s0..s0+3, :] W: 4 tokens x 8 columns per pass (8 accumulators) summed
 * over r in order, then added to dx once. */
static DSV3_ISA_FMA void dx4_avx2(double *dx, const double *dy, const float *W, int64_t in,
                                  int64_t out, int64_t s0) {
    const double *d = dy + s0 * out;
    double *x0 = dx + s0 * in;
    const int64_t c8 = in & ~(int64_t)7;
    for (int64_t c = 0; c < c8; c += 8) {
        /* named accumulators: an array would live on the stack */
        __m256d a00 = _mm256_setzero_pd(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
                a30 = a00, a31 = a00;
        for (int64_t r = 0; r < out; r++) {
            const float *w = W + r * in + c;
            const __m256d q0 = _mm256_cvtps_pd(_mm_loadu_ps(w)), q1 = _mm256_cvtps_pd(_mm_loadu_ps(w + 4));
            const __m256d d0 = _mm256_broadcast_sd(d + r), d1 = _mm256_broadcast_sd(d + out + r);
            const __m256d d2 = _mm256_broadcast_sd(d + 2 * out + r), d3 = _mm256_broadcast_sd(d + 3 * out + r);
            a00 = _mm256_fmadd_pd(d0, q0, a00), a01 = _mm256_fmadd_pd(d0, q1, a01);
            a10 = _mm256_fmadd_pd(d1, q0, a10), a11 = _mm256_fmadd_pd(d1, q1, a11);
            a20 = _mm256_fmadd_pd(d2, q0, a20), a21 = _mm256_fmadd_pd(d2, q1, a21);
            a30 = _mm256_fmadd_pd(d3, q0, a30), a31 = _mm256_fmadd_pd(d3, q1, a31);
        }
        const __m256d acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
        for (int k = 0; k < 4; k++) {
            double *xk = x0 + k * in + c;
            _mm256_storeu_pd(xk, _mm256_add_pd(_mm256_loadu_pd(xk), acc[k][0]));
            _mm256_storeu_pd(xk + 4, _mm256_add_pd(_mm256_loadu_pd(xk + 4), acc[k][1]));
        }
    }
    for (int64_t c = c8; c < in; c++)
        for (int k = 0; k < 4; k++) {
            double acc = 0.0;
            for (int64_t r = 0; r < out; r++) acc += d[k * out + r] * (double)W[r * in + c];
            x0[k * in + c] += acc;
        }
}

/* dW[r0..r0+3, :] += dy^T x: 4 rows x 8 columns per pass summed over all tokens in order in
 * double, then added to the float gradient with one rounding (as dsv3_add_f32). */
static DSV3_ISA_FMA void dw4_avx2(float *dW, const double *dy, const double *x, int64_t n,
                                  int64_t in, int64_t out, int64_t r0) {
    const int64_t c8 = in & ~(int64_t)7;
    for (int64_t c = 0; c < c8; c += 8) {
        __m256d a00 = _mm256_setzero_pd(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
                a30 = a00, a31 = a00;
        for (int64_t s = 0; s < n; s++) {
            const double *xs = x + s * in + c, *d = dy + s * out + r0;
            const __m256d x0 = _mm256_loadu_pd(xs), x1 = _mm256_loadu_pd(xs + 4);
            const __m256d d0 = _mm256_broadcast_sd(d), d1 = _mm256_broadcast_sd(d + 1);
            const __m256d d2 = _mm256_broadcast_sd(d + 2), d3 = _mm256_broadcast_sd(d + 3);
            a00 = _mm256_fmadd_pd(d0, x0, a00), a01 = _mm256_fmadd_pd(d0, x1, a01);
            a10 = _mm256_fmadd_pd(d1, x0, a10), a11 = _mm256_fmadd_pd(d1, x1, a11);
            a20 = _mm256_fmadd_pd(d2, x0, a20), a21 = _mm256_fmadd_pd(d2, x1, a21);
            a30 = _mm256_fmadd_pd(d3, x0, a30), a31 = _mm256_fmadd_pd(d3, x1, a31);
        }
        const __m256d acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
        for (int k = 0; k < 4; k++) {
            float *g = dW + (r0 + k) * in + c;
            const __m256d g0 = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(g)), acc[k][0]);
            const __m256d g1 = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(g + 4)), acc[k][1]);
            _mm_storeu_ps(g, _mm256_cvtpd_ps(g0));
            _mm_storeu_ps(g + 4, _mm256_cvtpd_ps(g1));
        }
    }
    for (int64_t c = c8; c < in; c++)
        for (int k = 0; k < 4; k++) {
            double acc = 0.0;
            for (int64_t s = 0; s < n; s++) acc += dy[s * out + r0 + k] * x[s * in + c];
            dsv3_add_f32(&dW[(r0 + k) * in + c], acc);
        }
}

/* ---------------------------------------------------------------- the blocks ------------ */

/* y rows r0..r0+3 (fewer at the edge) for every token. */
void dsv3_linear_f64_forward_rows(double *y, const double *x, const float *W, int64_t n,
                                  int64_t in, int64_t out, int64_t r0) {
    if (r0 + 4 <= out && dsv3_isa_fma()) {
        fwd4_avx2(y, x, W, n, in, out, r0);
        return;
    }
    if (r0 + 4 <= out) {
        const float *w0 = W + r0 * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
        for (int64_t s = 0; s < n; s++) {
            const double *xs = x + s * in;
            double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
            for (int64_t c = 0; c < in; c++) {
                const double xv = xs[c];
                a0 += xv * (double)w0[c];
                a1 += xv * (double)w1[c];
                a2 += xv * (double)w2[c];
                a3 += xv * (double)w3[c];
            }
            double *ys = y + s * out + r0;
            ys[0] = a0, ys[1] = a1, ys[2] = a2, ys[3] = a3;
        }
        return;
    }
    for (int64_t r = r0; r < out; r++) {
        const float *w = W + r * in;
        for (int64_t s = 0; s < n; s++) {
            const double *xs = x + s * in;
            double acc = 0.0;
#pragma omp simd reduction(+ : acc)
            for (int64_t c = 0; c < in; c++) acc += xs[c] * (double)w[c];
            y[s * out + r] = acc;
        }
    }
}

/* dx rows of the 4 tokens s0.. (fewer at the edge). */
void dsv3_linear_f64_dx_tokens(double *dx, const double *dy, const float *W, int64_t n,
                               int64_t in, int64_t out, int64_t s0) {
    if (s0 + 4 <= n && dsv3_isa_fma()) {
        dx4_avx2(dx, dy, W, in, out, s0);
        return;
    }
    if (s0 + 4 <= n) {
        double *x0 = dx + s0 * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;
        const double *d = dy + s0 * out;
        for (int64_t r = 0; r < out; r++) {
            const double d0 = d[r], d1 = d[out + r], d2 = d[2 * out + r], d3 = d[3 * out + r];
            const float *w = W + r * in;
#pragma omp simd
            for (int64_t c = 0; c < in; c++) {
                const double wv = (double)w[c];
                x0[c] += d0 * wv;
                x1[c] += d1 * wv;
                x2[c] += d2 * wv;
                x3[c] += d3 * wv;
            }
        }
        return;
    }
    for (int64_t s = s0; s < n; s++) {
        double *dxs = dx + s * in;
        for (int64_t r = 0; r < out; r++) {
            const double d = dy[s * out + r];
            const float *w = W + r * in;
#pragma omp simd
            for (int64_t c = 0; c < in; c++) dxs[c] += d * (double)w[c];
        }
    }
}

/* dW rows r0..r0+3 (fewer at the edge). */
void dsv3_linear_f64_dw_rows(float *dW, const double *dy, const double *x, int64_t n,
                             int64_t in, int64_t out, int64_t r0) {
    enum { SPAN = 128 };
    const int64_t nr = out - r0 < 4 ? out - r0 : 4;
    if (nr == 4 && dsv3_isa_fma()) {
        dw4_avx2(dW, dy, x, n, in, out, r0);
        return;
    }
    double acc[4][SPAN];
    for (int64_t c0 = 0; c0 < in; c0 += SPAN) {
        const int64_t len = in - c0 < SPAN ? in - c0 : SPAN;
        memset(acc, 0, sizeof acc);
        for (int64_t s = 0; s < n; s++) {
            const double *xs = x + s * in + c0, *d = dy + s * out + r0;
            if (nr == 4) {
                const double d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
#pragma omp simd
                for (int64_t j = 0; j < len; j++) {
                    const double xv = xs[j];
                    acc[0][j] += d0 * xv;
                    acc[1][j] += d1 * xv;
                    acc[2][j] += d2 * xv;
                    acc[3][j] += d3 * xv;
                }
            } else {
                for (int64_t k = 0; k < nr; k++)
#pragma omp simd
                    for (int64_t j = 0; j < len; j++) acc[k][j] += d[k] * xs[j];
            }
        }
        for (int64_t k = 0; k < nr; k++)
            for (int64_t j = 0; j < len; j++) dsv3_add_f32(&dW[(r0 + k) * in + c0 + j], acc[k][j]);
    }
}
