/* gemm.c — float32 packed matrix product for the trainer (see gemm.h).
 *
 * Layout of the workspace: first the packed A, ceil(M / MR) strips of K x MR floats (strip i,
 * step k holds A[i*MR .. i*MR+MR-1, k], zero past M), then the packed B, ceil(N / NR) panels of
 * K x NR floats (panel j, step k holds B[k, j*NR .. j*NR+NR-1], zero past N). The micro-kernel
 * walks one strip and one panel in k order, so its loads are sequential and the padding makes
 * every tile full; only the write-back looks at the edges.
 *
 * Large products run in blocks of at most MC x KC of A and KC x NC of B (see the enum), k
 * blocks adding into what the first wrote.
 *
 * Cost model: packing converts M K + K N elements (about one per cycle), the product does
 * M N K multiply-adds (up to 32 per cycle per core with two 8-lane FMA pipes), so packing is
 * cheap when M and N are well above 32 — the trainer's products have M = tokens (hundreds to
 * thousands) or rows of a weight, and N >= 16.
 */
#include "kernels/cpu/gemm.h"

#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/isa.h"
#include "kernels/pool.h"

enum {
    MR = 6,        /* rows of the micro-tile (6 broadcasts x 2 vectors = 12 accumulators) */
    NR = 16,       /* columns of the micro-tile (two 8-float vectors) */
    ITEM_R = 4,    /* strips per compute item */
    ITEM_P = 4,    /* panels per compute item */
    /* Blocks of a large product (BLIS's MC/KC/NC), so that the packed operands — and the
     * workspace — stay bounded whatever the sizes: a 129k-vocabulary head's W^T would
     * otherwise be packed whole. The trainer's products on the demo fit in one block. */
    MC = MR * 256,
    KC = 2048,
    NC = NR * 128,
};

/* Below this many multiply-adds a pool dispatch costs more than it saves. */
#define PAR_MIN ((int64_t)1 << 18)

static int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

int64_t dsv3_gemm_ws_floats(int64_t M, int64_t N, int64_t K) {
    const int64_t m = min64(M, MC), n = min64(N, NC), k = min64(K, KC);
    return ceil_div(m, MR) * MR * k + ceil_div(n, NR) * NR * k;
}

/* One product: operands, sizes and the packed buffers. */
typedef struct {
    void *C;
    int64_t ldc;
    dsv3_gemm_mode mode;
    dsv3_mview A, B;
    int64_t M, N, K;
    float *Ap, *Bp;
    int64_t strips, panels;
    int avx2;
} gemm_job;

/* Packing loops, one per (operand, unit stride, element type), with the strip/panel width a
 * compile-time constant so that the compiler unrolls and vectorises them: along the unit
 * stride the reads are sequential and, where the destination is contiguous too, the
 * double -> float conversion runs on whole vectors. */
#define PACK_A(T)                                                                                  \
    do {                                                                                           \
        const T *src = (const T *)v->p + r0 * v->rs;                                               \
        if (v->rs == 1) /* column-major: each k is MR contiguous values */                          \
            for (int64_t k = 0; k < K; k++) {                                                      \
                const T *s = src + k * v->cs;                                                      \
                for (int64_t r = 0; r < rows; r++) dst[k * MR + r] = (float)s[r];                  \
            }                                                                                      \
        else if (v->cs == 1 && rows == MR) /* row-major full strip: six read streams */             \
            for (int64_t k = 0; k < K; k++)                                                        \
                for (int r = 0; r < MR; r++) dst[k * MR + r] = (float)src[r * v->rs + k];          \
        else                                                                                       \
            for (int64_t r = 0; r < rows; r++)                                                     \
                for (int64_t k = 0; k < K; k++) dst[k * MR + r] = (float)src[r * v->rs + k * v->cs]; \
    } while (0)

#define PACK_B(T)                                                                                  \
    do {                                                                                           \
        const T *src = (const T *)v->p + c0 * v->cs;                                               \
        if (v->cs == 1 && cols == NR) /* row-major full panel: NR contiguous values per k */       \
            for (int64_t k = 0; k < K; k++) {                                                      \
                const T *s = src + k * v->rs;                                                      \
                for (int c = 0; c < NR; c++) dst[k * NR + c] = (float)s[c];                        \
            }                                                                                      \
        else if (v->rs == 1) /* a transposed matrix: each column is contiguous in k */              \
            for (int64_t c = 0; c < cols; c++) {                                                   \
                const T *s = src + c * v->cs;                                                      \
                for (int64_t k = 0; k < K; k++) dst[k * NR + c] = (float)s[k];                     \
            }                                                                                      \
        else                                                                                       \
            for (int64_t k = 0; k < K; k++)                                                        \
                for (int64_t c = 0; c < cols; c++) dst[k * NR + c] = (float)src[k * v->rs + c * v->cs]; \
    } while (0)

/* The commonest strip: six full rows of a row-major double matrix (activations, gradients).
 * Four k at a time: each row's four doubles become four floats, a 4x4 transpose puts rows
 * 0..3 of each k together, rows 4 and 5 are interleaved — sequential reads and writes. */
static DSV3_ISA_FMA void pack_a_rows_f64_avx2(float *dst, const double *src, int64_t rs,
                                              int64_t K) {
    const double *r0 = src, *r1 = src + rs, *r2 = r1 + rs, *r3 = r2 + rs, *r4 = r3 + rs,
                 *r5 = r4 + rs;
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {
        __m128 a = _mm256_cvtpd_ps(_mm256_loadu_pd(r0 + k)), b = _mm256_cvtpd_ps(_mm256_loadu_pd(r1 + k));
        __m128 c = _mm256_cvtpd_ps(_mm256_loadu_pd(r2 + k)), d = _mm256_cvtpd_ps(_mm256_loadu_pd(r3 + k));
        const __m128 e = _mm256_cvtpd_ps(_mm256_loadu_pd(r4 + k)), f = _mm256_cvtpd_ps(_mm256_loadu_pd(r5 + k));
        _MM_TRANSPOSE4_PS(a, b, c, d); /* a = column k (rows 0..3), b = k+1, ... */
        const __m128 ef_lo = _mm_unpacklo_ps(e, f), ef_hi = _mm_unpackhi_ps(e, f);
        float *o = dst + k * MR;
        _mm_storeu_ps(o, a), _mm_storel_pi((__m64 *)(o + 4), ef_lo);
        _mm_storeu_ps(o + 6, b), _mm_storeh_pi((__m64 *)(o + 10), ef_lo);
        _mm_storeu_ps(o + 12, c), _mm_storel_pi((__m64 *)(o + 16), ef_hi);
        _mm_storeu_ps(o + 18, d), _mm_storeh_pi((__m64 *)(o + 22), ef_hi);
    }
    for (; k < K; k++) {
        float *o = dst + k * MR;
        o[0] = (float)r0[k], o[1] = (float)r1[k], o[2] = (float)r2[k];
        o[3] = (float)r3[k], o[4] = (float)r4[k], o[5] = (float)r5[k];
    }
}

/* A transposed double matrix (dy^T of a weight gradient): six contiguous doubles per k. */
static DSV3_ISA_FMA void pack_a_cols_f64_avx2(float *dst, const double *src, int64_t cs,
                                              int64_t K) {
    for (int64_t k = 0; k < K; k++) {
        const double *s = src + k * cs;
        float *o = dst + k * MR;
        _mm_storeu_ps(o, _mm256_cvtpd_ps(_mm256_loadu_pd(s)));
        _mm_storel_pi((__m64 *)(o + 4), _mm_cvtpd_ps(_mm_loadu_pd(s + 4)));
    }
}

/* A row-major double matrix's full panel (the activations of a weight gradient): sixteen
 * contiguous doubles per k. */
static DSV3_ISA_FMA void pack_b_rows_f64_avx2(float *dst, const double *src, int64_t rs,
                                              int64_t K) {
    for (int64_t k = 0; k < K; k++) {
        const double *s = src + k * rs;
        float *o = dst + k * NR;
        const __m256 a = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(s + 4)),
                                         _mm256_cvtpd_ps(_mm256_loadu_pd(s)));
        const __m256 b = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(s + 12)),
                                         _mm256_cvtpd_ps(_mm256_loadu_pd(s + 8)));
        _mm256_storeu_ps(o, a);
        _mm256_storeu_ps(o + 8, b);
    }
}

/* W^T for a forward product: panel columns are 16 rows of the float matrix W (row stride cs),
 * k runs along them. 8x8 blocks are transposed in registers so both reads and writes are
 * whole vectors. */
static DSV3_ISA_FMA void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20), r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20), r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31), r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31), r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

static DSV3_ISA_FMA void pack_b_wt_f32_avx2(float *dst, const float *src, int64_t cs, int64_t K) {
    int64_t k = 0;
    for (; k + 8 <= K; k += 8)
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
            for (int c = 0; c < 8; c++) r[c] = _mm256_loadu_ps(src + (h * 8 + c) * cs + k);
            transpose8(r); /* r[i] = element k + i of the 8 rows */
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (k + i) * NR + h * 8, r[i]);
        }
    for (; k < K; k++)
        for (int c = 0; c < NR; c++) dst[k * NR + c] = src[c * cs + k];
}

/* Packs strip i of A: dst[k * MR + r] = A[i*MR + r, k] (zero past M). */
static void pack_a(const gemm_job *g, int64_t i) {
    float *restrict dst = g->Ap + i * MR * g->K;
    const dsv3_mview *v = &g->A;
    const int64_t r0 = i * MR, rows = g->M - r0 < MR ? g->M - r0 : MR, K = g->K;
    if (rows < MR) memset(dst, 0, (size_t)(MR * K) * sizeof *dst);
    if (g->avx2 && v->f64 && v->cs == 1 && rows == MR)
        pack_a_rows_f64_avx2(dst, (const double *)v->p + r0 * v->rs, v->rs, K);
    else if (g->avx2 && v->f64 && v->rs == 1 && rows == MR)
        pack_a_cols_f64_avx2(dst, (const double *)v->p + r0, v->cs, K);
    else if (v->f64) PACK_A(double);
    else PACK_A(float);
}

/* Packs panel j of B: dst[k * NR + c] = B[k, j*NR + c] (zero past N). */
static void pack_b(const gemm_job *g, int64_t j) {
    float *restrict dst = g->Bp + j * NR * g->K;
    const dsv3_mview *v = &g->B;
    const int64_t c0 = j * NR, cols = g->N - c0 < NR ? g->N - c0 : NR, K = g->K;
    if (cols < NR) memset(dst, 0, (size_t)(NR * K) * sizeof *dst);
    if (g->avx2 && v->f64 && v->cs == 1 && cols == NR)
        pack_b_rows_f64_avx2(dst, (const double *)v->p + c0, v->rs, K);
    else if (g->avx2 && !v->f64 && v->rs == 1 && cols == NR)
        pack_b_wt_f32_avx2(dst, (const float *)v->p + c0 * v->cs, v->cs, K);
    else if (v->f64) PACK_B(double);
    else PACK_B(float);
}

static void pack_item(void *ctx, int64_t item, int tid) {
    (void)tid;
    const gemm_job *g = ctx;
    if (item < g->strips) pack_a(g, item);
    else pack_b(g, item - g->strips);
}

/* Writes the MR x NR tile t (row-major) at C[r0.., c0..], rows x cols of it valid. */
static void write_tile(const gemm_job *g, const float *t, int64_t r0, int64_t c0, int64_t rows,
                       int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *tr = t + r * NR;
        if (g->mode == DSV3_GEMM_ADD_F32) {
            float *c = (float *)g->C + (r0 + r) * g->ldc + c0;
            for (int64_t j = 0; j < cols; j++) c[j] += tr[j];
        } else {
            double *c = (double *)g->C + (r0 + r) * g->ldc + c0;
            if (g->mode == DSV3_GEMM_SET_F64)
                for (int64_t j = 0; j < cols; j++) c[j] = (double)tr[j];
            else
                for (int64_t j = 0; j < cols; j++) c[j] += (double)tr[j];
        }
    }
}

/* Portable micro-kernel: the same sums in the same k order (the compiler may or may not fuse
 * the multiply-adds, which is why the AVX2 choice is made per CPU, not per call). */
static void kern_portable(const float *a, const float *b, int64_t K, float *t) {
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < K; k++) {
        const float *ak = a + k * MR, *bk = b + k * NR;
        for (int r = 0; r < MR; r++)
            for (int c = 0; c < NR; c++) acc[r][c] += ak[r] * bk[c];
    }
    memcpy(t, acc, sizeof acc);
}

/* AVX2+FMA micro-kernel: 12 accumulators (6 rows x 2 vectors), per k two panel loads, six
 * broadcasts and twelve FMAs. Full tiles are written back here with vector code. */
static DSV3_ISA_FMA void kern_avx2(const gemm_job *g, const float *a, const float *b, int64_t r0,
                                   int64_t c0, int64_t rows, int64_t cols) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t k = 0; k < g->K; k++) {
        const __m256 b0 = _mm256_loadu_ps(b + k * NR), b1 = _mm256_loadu_ps(b + k * NR + 8);
        const float *ak = a + k * MR;
        __m256 x = _mm256_broadcast_ss(ak);
        c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(ak + 1);
        c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(ak + 2);
        c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(ak + 3);
        c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(ak + 4);
        c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(ak + 5);
        c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    const __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                               {c30, c31}, {c40, c41}, {c50, c51}};
    if (rows < MR || cols < NR) {
        float t[MR * NR];
        for (int r = 0; r < MR; r++) {
            _mm256_storeu_ps(t + r * NR, acc[r][0]);
            _mm256_storeu_ps(t + r * NR + 8, acc[r][1]);
        }
        /* write_tile is plain (SSE) code: leaving the upper halves of the YMM registers dirty
         * made every later SSE instruction pay a merge penalty — glibc's exp ran 10x slower */
        _mm256_zeroupper();
        write_tile(g, t, r0, c0, rows, cols);
        return;
    }
    for (int r = 0; r < MR; r++) {
        if (g->mode == DSV3_GEMM_ADD_F32) {
            float *c = (float *)g->C + (r0 + r) * g->ldc + c0;
            _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), acc[r][0]));
            _mm256_storeu_ps(c + 8, _mm256_add_ps(_mm256_loadu_ps(c + 8), acc[r][1]));
            continue;
        }
        double *c = (double *)g->C + (r0 + r) * g->ldc + c0;
        const __m256d d[4] = {_mm256_cvtps_pd(_mm256_castps256_ps128(acc[r][0])),
                              _mm256_cvtps_pd(_mm256_extractf128_ps(acc[r][0], 1)),
                              _mm256_cvtps_pd(_mm256_castps256_ps128(acc[r][1])),
                              _mm256_cvtps_pd(_mm256_extractf128_ps(acc[r][1], 1))};
        for (int q = 0; q < 4; q++) {
            const __m256d old = g->mode == DSV3_GEMM_ADD_F64 ? _mm256_loadu_pd(c + 4 * q)
                                                            : _mm256_setzero_pd();
            _mm256_storeu_pd(c + 4 * q, _mm256_add_pd(old, d[q]));
        }
    }
}

/* Compute item: ITEM_R strips x ITEM_P panels of C. Items never share an output element. */
static void compute_item(void *ctx, int64_t item, int tid) {
    (void)tid;
    const gemm_job *g = ctx;
    const int64_t pgroups = ceil_div(g->panels, ITEM_P);
    const int64_t s0 = item / pgroups * ITEM_R, p0 = item % pgroups * ITEM_P;
    for (int64_t p = p0; p < p0 + ITEM_P && p < g->panels; p++) {
        const float *b = g->Bp + p * NR * g->K;
        const int64_t c0 = p * NR, cols = g->N - c0 < NR ? g->N - c0 : NR;
        for (int64_t s = s0; s < s0 + ITEM_R && s < g->strips; s++) {
            const float *a = g->Ap + s * MR * g->K;
            const int64_t r0 = s * MR, rows = g->M - r0 < MR ? g->M - r0 : MR;
            if (g->avx2) {
                kern_avx2(g, a, b, r0, c0, rows, cols);
            } else {
                float t[MR * NR];
                kern_portable(a, b, g->K, t);
                write_tile(g, t, r0, c0, rows, cols);
            }
        }
    }
}

static void run(int64_t items, dsv3_pool_fn fn, gemm_job *g, int par) {
    if (par) {
        dsv3_pool_for(items, fn, g);
        return;
    }
    for (int64_t i = 0; i < items; i++) fn(g, i, 0);
}

/* One block: packs all of A and B, then the tiles. */
static void gemm_block(void *C, int64_t ldc, dsv3_gemm_mode mode, dsv3_mview A, dsv3_mview B,
                       int64_t M, int64_t N, int64_t K, float *ws, int avx2) {
    gemm_job g = {.C = C, .ldc = ldc, .mode = mode, .A = A, .B = B, .M = M, .N = N, .K = K,
                  .strips = ceil_div(M, MR), .panels = ceil_div(N, NR), .avx2 = avx2};
    g.Ap = ws;
    g.Bp = ws + g.strips * MR * K;
    const int par = M * N * K >= PAR_MIN;
    run(g.strips + g.panels, pack_item, &g, par);
    run(ceil_div(g.strips, ITEM_R) * ceil_div(g.panels, ITEM_P), compute_item, &g, par);
}

/* The view starting at element (r, c) of v. */
static dsv3_mview sub(dsv3_mview v, int64_t r, int64_t c) {
    v.p = (const char *)v.p + (r * v.rs + c * v.cs) * (v.f64 ? 8 : 4);
    return v;
}

void dsv3_gemm(void *C, int64_t ldc, dsv3_gemm_mode mode, dsv3_mview A, dsv3_mview B, int64_t M,
               int64_t N, int64_t K, float *ws) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (mode == DSV3_GEMM_SET_F64)
            for (int64_t r = 0; r < M; r++) memset((double *)C + r * ldc, 0, (size_t)N * sizeof(double));
        return;
    }
    const int avx2 = dsv3_isa_fma();
    const size_t csz = mode == DSV3_GEMM_ADD_F32 ? 4 : 8;
    for (int64_t n0 = 0; n0 < N; n0 += NC)
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            /* k blocks after the first add to what the first one set */
            const dsv3_gemm_mode m = k0 > 0 && mode == DSV3_GEMM_SET_F64 ? DSV3_GEMM_ADD_F64 : mode;
            for (int64_t m0 = 0; m0 < M; m0 += MC)
                gemm_block((char *)C + (size_t)(m0 * ldc + n0) * csz, ldc, m, sub(A, m0, k0),
                           sub(B, k0, n0), min64(MC, M - m0), min64(NC, N - n0),
                           min64(KC, K - k0), ws, avx2);
        }
}
