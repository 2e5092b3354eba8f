/* attn_f32.c — the trainer's float32 causal attention for one (sequence, head) pair (see
 * kernels/cpu/attn_f32.h). */
#include "kernels/cpu/attn_f32.h"

#include <immintrin.h>
#include <math.h>

#include "kernels/cpu/isa.h"

typedef dsv3_attn_job attn_job;

/* The workspace of one call: q [T, dqk], kT [dqk, T], kf [T, dqk], vf [T, dv],
 * vT [dv, T], go [T, dv], row [T], row2 [T], acc [max(dqk, dv)], PT and dST [T, T] (the
 * backward's probabilities and score gradients, transposed). */
int64_t dsv3_attn_f32_ws(int64_t T, int64_t dqk, int64_t dv) {
    const int64_t w = dqk > dv ? dqk : dv;
    return T * (3 * dqk + 3 * dv) + 2 * T * T + 2 * T + w + 64;
}

typedef struct {
    float *qf, *kT, *kf, *vf, *vT, *go, *row, *row2, *acc, *PT, *dST;
} attn_ws;

static attn_ws attn_slice(const attn_job *j, float *ws) {
    const int64_t T = j->T, dqk = j->dqk, dv = j->dv_;
    float *p = ws;
    attn_ws w;
    w.qf = p, p += T * dqk;
    w.kT = p, p += T * dqk;
    w.kf = p, p += T * dqk;
    w.vf = p, p += T * dv;
    w.vT = p, p += T * dv;
    w.go = p, p += T * dv;
    w.PT = p, p += T * T;
    w.dST = p, p += T * T;
    w.row = p, p += T;
    w.row2 = p, p += T;
    w.acc = p;
    return w;
}

/* out[t] = sum_{i<d} vec[i] matT[i * ld + t] for t < n, a vector times a row-major matrix, 32
 * outputs at a time in four registers. It serves every product of the attention: a query's
 * scores against the keys (vec = q, matT = K^T), an output gradient's against the values
 * (dP), the probability-weighted value sum (vec = P row, matT = V, ld = dv), dq (dS row times
 * K) and, per key, dk and dv (a column of dS or P, kept transposed, times Q or dO). */
static DSV3_ISA_FMA void vecmat_avx2(float *out, const float *vec, const float *matT, int64_t ld,
                                     int64_t d, int64_t n) {
    int64_t t = 0;
    for (; t + 32 <= n; t += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < d; i++) {
            const __m256 x = _mm256_broadcast_ss(vec + i);
            const float *r = matT + i * ld + t;
            a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r), a0);
            a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 8), a1);
            a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 16), a2);
            a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 24), a3);
        }
        _mm256_storeu_ps(out + t, a0), _mm256_storeu_ps(out + t + 8, a1);
        _mm256_storeu_ps(out + t + 16, a2), _mm256_storeu_ps(out + t + 24, a3);
    }
    for (; t + 8 <= n; t += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t i = 0; i < d; i++)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(vec + i), _mm256_loadu_ps(matT + i * ld + t), a0);
        _mm256_storeu_ps(out + t, a0);
    }
    for (; t < n; t++) {
        float a = 0.0f;
        for (int64_t i = 0; i < d; i++) a += vec[i] * matT[i * ld + t];
        out[t] = a;
    }
}

/* The portable version: the same sums, plain loops. */
static void vecmat_plain(float *out, const float *vec, const float *matT, int64_t ld, int64_t d,
                          int64_t n) {
    for (int64_t t = 0; t < n; t++) out[t] = 0.0f;
    for (int64_t i = 0; i < d; i++)
        for (int64_t t = 0; t < n; t++) out[t] += vec[i] * matT[i * ld + t];
}

/* vecmat_avx2 where the body is compiled for AVX2+FMA, else vecmat_plain. */
static inline __attribute__((always_inline)) void vecmat(int avx2, float *out, const float *vec,
                                                        const float *matT, int64_t ld, int64_t d,
                                                        int64_t n) {
    if (avx2) vecmat_avx2(out, vec, matT, ld, d, n);
    else vecmat_plain(out, vec, matT, ld, d, n);
}

/* Copies head h of sequence b of src [B*T, nh, d] (double) to float: dst[t * d + i], or with
 * transposed dst[i * T + t]. */
static inline __attribute__((always_inline)) void gather_head(float *dst, const double *src,
                                                              const attn_job *j, int64_t b,
                                                              int64_t h, int64_t d, int transposed) {
    const int64_t T = j->T, nh = j->nh;
    for (int64_t t = 0; t < T; t++) {
        const double *row = src + ((b * T + t) * nh + h) * d;
        if (transposed)
            for (int64_t i = 0; i < d; i++) dst[i * T + t] = (float)row[i];
        else
            for (int64_t i = 0; i < d; i++) dst[t * d + i] = (float)row[i];
    }
}

/* Forward for one (b, h): scores of query t1 against keys 0..t1 as a vector loop over keys
 * (kT), softmax with one expf per score, o[t1] as a vector loop over the value dimension. */
static inline __attribute__((always_inline)) void attn_fwd_f32_body(const attn_job *j, int64_t bh,
                                                                    float *ws0, int avx2) {
    const int64_t T = j->T, nh = j->nh, dqk = j->dqk, dv = j->dv_;
    const int64_t b = bh / nh, h = bh % nh;
    const float scale = (float)j->scale;
    attn_ws w = attn_slice(j, ws0);
    gather_head(w.qf, j->q, j, b, h, dqk, 0);
    gather_head(w.kT, j->k, j, b, h, dqk, 1);
    gather_head(w.vf, j->v, j, b, h, dv, 0);
    float *s = w.row, *acc = w.acc;
    for (int64_t t1 = 0; t1 < T; t1++) {
        const int64_t n1 = t1 + 1;
        vecmat(avx2, s, w.qf + t1 * dqk, w.kT, T, dqk, n1);
        float mx = -INFINITY;
        for (int64_t t2 = 0; t2 < n1; t2++) {
            s[t2] *= scale;
            mx = s[t2] > mx ? s[t2] : mx;
        }
        float sum = 0.0f;
        for (int64_t t2 = 0; t2 < n1; t2++) sum += (s[t2] = expf(s[t2] - mx));
        const float inv = 1.0f / sum;
        double *prow = j->P + (bh * T + t1) * T;
        for (int64_t t2 = 0; t2 < n1; t2++) prow[t2] = (double)(s[t2] *= inv);
        for (int64_t t2 = n1; t2 < T; t2++) prow[t2] = 0.0;
        vecmat(avx2, acc, s, w.vf, dv, n1, dv);
        double *ot = j->o + ((b * T + t1) * nh + h) * dv;
        for (int64_t i = 0; i < dv; i++) ot[i] = (double)acc[i];
    }
}

/* Backward for one (b, h), the double version's equations: per query dP over keys (vT), dS
 * and dq[t1]; then per key dk[t2] and dv[t2] as register-accumulated sums over the queries
 * that saw it, from dS and P kept transposed. */
static inline __attribute__((always_inline)) void attn_bwd_f32_body(const attn_job *j, int64_t bh,
                                                                    float *ws0, int avx2) {
    const int64_t T = j->T, nh = j->nh, dqk = j->dqk, dv = j->dv_;
    const int64_t b = bh / nh, h = bh % nh;
    const float scale = (float)j->scale;
    attn_ws w = attn_slice(j, ws0);
    gather_head(w.qf, j->q, j, b, h, dqk, 0);
    gather_head(w.kf, j->k, j, b, h, dqk, 0);
    gather_head(w.vT, j->v, j, b, h, dv, 1);
    gather_head(w.go, j->dout, j, b, h, dv, 0);
    /* by query: dP, dS and dq[t1]; P and dS are kept transposed (PT[t2][t1], dST[t2][t1]) */
    float *p = w.row, *dS = w.row2, *acc = w.acc;
    for (int64_t t1 = 0; t1 < T; t1++) {
        const int64_t n1 = t1 + 1;
        const double *prow = j->Pc + (bh * T + t1) * T;
        for (int64_t t2 = 0; t2 < n1; t2++) p[t2] = (float)prow[t2];
        const float *g = w.go + t1 * dv;
        vecmat(avx2, dS, g, w.vT, T, dv, n1); /* dP */
        float sum = 0.0f;
        for (int64_t t2 = 0; t2 < n1; t2++) sum += p[t2] * dS[t2];
        for (int64_t t2 = 0; t2 < n1; t2++) {
            dS[t2] = p[t2] * (dS[t2] - sum) * scale;
            w.dST[t2 * T + t1] = dS[t2];
            w.PT[t2 * T + t1] = p[t2];
        }
        vecmat(avx2, acc, dS, w.kf, dqk, n1, dqk); /* dq[t1] = sum_t2 dS k[t2] */
        double *dqt = j->dq + ((b * T + t1) * nh + h) * dqk;
        for (int64_t i = 0; i < dqk; i++) dqt[i] += (double)acc[i];
    }
    /* by key: dk[t2] = sum_{t1 >= t2} dS[t1][t2] q[t1], dv[t2] = sum_{t1 >= t2} P[t1][t2] do[t1] */
    for (int64_t t2 = 0; t2 < T; t2++) {
        const int64_t r = (b * T + t2) * nh + h, m = T - t2;
        vecmat(avx2, acc, w.dST + t2 * T + t2, w.qf + t2 * dqk, dqk, m, dqk);
        for (int64_t i = 0; i < dqk; i++) j->dk[r * dqk + i] += (double)acc[i];
        vecmat(avx2, acc, w.PT + t2 * T + t2, w.go + t2 * dv, dv, m, dv);
        for (int64_t i = 0; i < dv; i++) j->dv[r * dv + i] += (double)acc[i];
    }
}

static DSV3_ISA_FMA void attn_fwd_f32_avx2(const attn_job *j, int64_t bh, float *ws) {
    attn_fwd_f32_body(j, bh, ws, 1);
}
static void attn_fwd_f32_portable(const attn_job *j, int64_t bh, float *ws) {
    attn_fwd_f32_body(j, bh, ws, 0);
}
static DSV3_ISA_FMA void attn_bwd_f32_avx2(const attn_job *j, int64_t bh, float *ws) {
    attn_bwd_f32_body(j, bh, ws, 1);
}
static void attn_bwd_f32_portable(const attn_job *j, int64_t bh, float *ws) {
    attn_bwd_f32_body(j, bh, ws, 0);
}

void dsv3_attn_f32_forward(const dsv3_attn_job *j, int64_t bh, float *ws) {
    if (dsv3_isa_fma()) attn_fwd_f32_avx2(j, bh, ws);
    else attn_fwd_f32_portable(j, bh, ws);
}

void dsv3_attn_f32_backward(const dsv3_attn_job *j, int64_t bh, float *ws) {
    if (dsv3_isa_fma()) attn_bwd_f32_avx2(j, bh, ws);
    else attn_bwd_f32_portable(j, bh, ws);
}
