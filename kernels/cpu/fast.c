/* fast.c — the optimised CPU backend: AVX2/FMA kernels chosen at run time, weights decoded in
 * registers from their stored dtype (BF16, F16, FP8 E4M3 with 128x128 block scales, FP32).
 *
 * Decode (one token) is bound by memory bandwidth: every active weight is read once, so the
 * GEMV streams four rows at a time and keeps the input vector in L1; BF16 and FP8 (on AMD)
 * permute that vector once so that a weight needs no shuffle (gemv_rows_bf16, gemv_rows_fp8:
 * decoding, not bytes, had bounded FP8 decode). Prefill (many tokens)
 * decodes a 16-row x 256-column panel once into a transposed stack tile and runs a
 * 16-row x 6-token FMA micro-kernel over it, so each weight is decoded once per call whatever
 * the number of tokens. Two tokens (the speculative verify) share each decoded weight. Every
 * batch of products is cut into row items run by the worker pool (kernels/pool.h); attention
 * lives in fast_attn.c. FP32 accumulation throughout; sums are formed in a different order
 * than the reference backend, so results agree with it to rounding (tests state 1e-5).
 * Machines without AVX2/FMA get the reference kernels.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/simd_exp.h"
#include "kernels/pool.h"


enum { PANEL_R = 16, PANEL_C = 256, TOK = 6 };

/* Below this many multiply-adds one thread does the whole product. */
#define PAR_MIN_MACS ((int64_t)1 << 15)

/* ---------------------------------------------------------------- decode --------------- */

/* 8 consecutive weights at element offset off, as float32. FP8 E4M3FN goes through IEEE half:
 * the byte s.eeee.mmm placed in a 16-bit lane as s.0eeee.mmm0000000 is the half 2^-8 times the
 * E4M3 value, subnormals included (both formats put their subnormals at exponent field 0, and
 * 2^(e-15) / 2^(e-7) = 2^-8 for every e). The F16C conversion is exact and treats subnormal
 * halves at full speed. A route through an FP32 bit pattern 2^-120 times the value makes every
 * E4M3 subnormal an FP32 denormal operand, which some cores handle with a microcode assist;
 * Zen 3 multiplies them at full speed (measured), and the one-token GEMV takes that cheaper
 * route there (gemv_rows_fp8). The 2^8 is not applied here: callers fold VS(dt) into the block
 * scale they multiply by anyway (docs/ARCHITECTURE.md, "FP8 E4M3"; NaN codes are not expected in weights and decode
 * as finite values here). */
static INL DSV3_ISA_F16C __m256 load8(dsv3_dtype dt, const void *base, size_t off) {
    switch (dt) {
    case DSV3_DT_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)base + off));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case DSV3_DT_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + off)));
    case DSV3_DT_F8_E4M3: {
        const __m128i b = _mm_loadl_epi64((const __m128i *)((const uint8_t *)base + off));
        __m128i h = _mm_unpacklo_epi8(_mm_setzero_si128(), b); /* byte << 8 per 16-bit lane */
        h = _mm_and_si128(_mm_srai_epi16(h, 1), _mm_set1_epi16((short)0xbfff)); /* s.0eeee.mmm */
        return _mm256_cvtph_ps(h);
    }
    default:
        return _mm256_loadu_ps((const float *)base + off);
    }
}

/* What load8's values must be multiplied by: 2^8 for FP8 (see load8), 1 otherwise. */
#define VS(dt) ((dt) == DSV3_DT_F8_E4M3 ? 256.0f : 1.0f)

/* 16 consecutive weights as two vectors (lo = 0..7, hi = 8..15), scaled like load8. FP8 loads
 * the 16 bytes once and splits them with two unpacks. */
static INL DSV3_ISA_F16C void load16(dsv3_dtype dt, const void *base, size_t off, __m256 *lo,
                                     __m256 *hi) {
    if (dt == DSV3_DT_F8_E4M3) {
        const __m128i b = _mm_loadu_si128((const __m128i *)((const uint8_t *)base + off));
        const __m128i z = _mm_setzero_si128(), m = _mm_set1_epi16((short)0xbfff);
        *lo = _mm256_cvtph_ps(_mm_and_si128(_mm_srai_epi16(_mm_unpacklo_epi8(z, b), 1), m));
        *hi = _mm256_cvtph_ps(_mm_and_si128(_mm_srai_epi16(_mm_unpackhi_epi8(z, b), 1), m));
        return;
    }
    *lo = load8(dt, base, off);
    *hi = load8(dt, base, off + 8);
}

static INL float load1(dsv3_dtype dt, const void *base, size_t off) {
    switch (dt) {
    case DSV3_DT_BF16: return dsv3_bf16_to_f32(((const uint16_t *)base)[off]);
    case DSV3_DT_F16: return dsv3_f16_to_f32(((const uint16_t *)base)[off]);
    case DSV3_DT_F8_E4M3: return dsv3_e4m3_table[((const uint8_t *)base)[off]];
    default: return ((const float *)base)[off];
    }
}

/* The block scale of view row r, columns from c (1 for dtypes without scales). */
static INL float scale_at(const dsv3_weight *w, int64_t r, int64_t c) {
    if (w->dtype != DSV3_DT_F8_E4M3) return 1.0f;
    return w->scale_inv[((w->row0 + r) / 128) * ((w->cols + 127) / 128) + c / 128];
}

static INL DSV3_ISA_F16C float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* r[k] = sum of the 8 lanes of a[k], k < 8 (horizontal adds, then the two 128-bit halves). */
static INL DSV3_ISA_F16C __m256 hsum8x8(const __m256 a[8]) {
    const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* ---------------------------------------------------------------- GEMV (one token) ----- */

/* One row's dot product, 128-column scale blocks, four accumulators per block. */
static INL DSV3_ISA_F16C float dot_row(dsv3_dtype dt, const float *x, const dsv3_weight *w,
                                       int64_t r) {
    const int64_t C = w->cols;
    const size_t row = (size_t)(r * C);
    __m256 acc = _mm256_setzero_ps();
    float tail = 0.0f;
    for (int64_t c0 = 0; c0 < C; c0 += 128) {
        const int64_t c1 = c0 + 128 < C ? c0 + 128 : C;
        __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;
        int64_t c = c0;
        for (; c + 32 <= c1; c += 32) {
            b0 = _mm256_fmadd_ps(load8(dt, w->data, row + (size_t)c), _mm256_loadu_ps(x + c), b0);
            b1 = _mm256_fmadd_ps(load8(dt, w->data, row + (size_t)c + 8), _mm256_loadu_ps(x + c + 8), b1);
            b2 = _mm256_fmadd_ps(load8(dt, w->data, row + (size_t)c + 16), _mm256_loadu_ps(x + c + 16), b2);
            b3 = _mm256_fmadd_ps(load8(dt, w->data, row + (size_t)c + 24), _mm256_loadu_ps(x + c + 24), b3);
        }
        for (; c + 8 <= c1; c += 8)
            b0 = _mm256_fmadd_ps(load8(dt, w->data, row + (size_t)c), _mm256_loadu_ps(x + c), b0);
        const float s = scale_at(w, r, c0);
        float t = 0.0f;
        for (; c < c1; c++) t += load1(dt, w->data, row + (size_t)c) * x[c];
        tail += t * s;
        acc = _mm256_fmadd_ps(_mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3)),
                              _mm256_set1_ps(s * VS(dt)), acc);
    }
    return hsum(acc) + tail;
}

/* out[r] = W[r, :] . x for rows [r0, r1). Decode is bound by memory: a core keeps enough reads
 * in flight only with several independent streams, so the range is cut into four contiguous
 * quarters walked in lockstep (four long sequential streams the prefetchers follow; one stream
 * reached half the bandwidth, four interleaved neighbouring rows made streams too short). */
static INL DSV3_ISA_F16C void gemv_rows(dsv3_dtype dt, float *out, const float *x,
                                        const dsv3_weight *w, int64_t r0, int64_t r1) {
    const int64_t C = w->cols, q = (r1 - r0) / 4;
    for (int64_t i = 0; i < q; i++) {
        int64_t rr[4] = {r0 + i, r0 + q + i, r0 + 2 * q + i, r0 + 3 * q + i};
        __m256 acc[4], b0[4], b1[4];
        float tail[4] = {0, 0, 0, 0};
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) acc[k] = _mm256_setzero_ps();
        for (int64_t c0 = 0; c0 < C; c0 += 128) {
            const int64_t c1 = c0 + 128 < C ? c0 + 128 : C;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) b0[k] = b1[k] = _mm256_setzero_ps();
            int64_t c = c0;
            for (; c + 16 <= c1; c += 16) {
                const __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    __m256 lo, hi;
                    load16(dt, w->data, (size_t)(rr[k] * C + c), &lo, &hi);
                    b0[k] = _mm256_fmadd_ps(lo, x0, b0[k]);
                    b1[k] = _mm256_fmadd_ps(hi, x1, b1[k]);
                }
            }
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const float sc = scale_at(w, rr[k], c0);
                float t = 0.0f;
                for (int64_t cc = c; cc < c1; cc++) t += load1(dt, w->data, (size_t)(rr[k] * C + cc)) * x[cc];
                tail[k] += t * sc;
                acc[k] = _mm256_fmadd_ps(_mm256_add_ps(b0[k], b1[k]), _mm256_set1_ps(sc * VS(dt)), acc[k]);
            }
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) out[rr[k]] = hsum(acc[k]) + tail[k];
    }
    for (int64_t r = r0 + 4 * q; r < r1; r++) out[r] = dot_row(dt, x, w, r);
}

/* BF16, one token, C a multiple of 16 (<= BF16_XMAX): gemv_rows without a shuffle per weight.
 * Eight 32-bit lanes of a 32-byte load hold the pairs (w[2i], w[2i+1]); shifting left by 16
 * makes w[2i] a float, masking the low half makes w[2i+1] one. The dot product is then taken
 * against x split the same way, once per item: xe = x[0, 2, .., 14], xo = x[1, 3, .., 15] per
 * 16 columns. (The former vpmovzxwd + shift needed a shuffle-port uop per 8 weights, which held
 * in-cache products to ~15 GMAC/s on one core.) */
enum { BF16_XMAX = 8192 };

/* Bytes ahead of each stream that the BF16 GEMV prefetches (NTA, as FP8_PF): the lm_head of an
 * FP8 checkpoint is BF16 and a third of its decode bytes; the prefetch took that product
 * (32000x1024 in dsv3-bench-gemv) from 20.7-24.3 to 22.9-26.2 GB/s in alternating runs. */
enum { BF16_PF = 512 };

static INL DSV3_ISA_F16C void gemv_rows_bf16(float *out, const float *x, const dsv3_weight *w,
                                             int64_t r0, int64_t r1) {
    const int64_t C = w->cols, q = (r1 - r0) / 4;
    _Alignas(32) float xs[BF16_XMAX];
    for (int64_t c = 0; c < C; c += 16)
        for (int i = 0; i < 8; i++) xs[c + i] = x[c + 2 * i], xs[c + 8 + i] = x[c + 2 * i + 1];
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    const uint16_t *W = (const uint16_t *)w->data;
    for (int64_t i = 0; i < q; i++) {
        const int64_t rr[4] = {r0 + i, r0 + q + i, r0 + 2 * q + i, r0 + 3 * q + i};
        __m256 a[8]; /* a[2k], a[2k+1]: row k, even and odd columns */
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
        for (int64_t c = 0; c < C; c += 16) {
            const __m256 xe = _mm256_load_ps(xs + c), xo = _mm256_load_ps(xs + c + 8);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                _mm_prefetch((const char *)(W + rr[k] * C + c + BF16_PF / 2), _MM_HINT_NTA);
                const __m256i v = _mm256_loadu_si256((const __m256i *)(W + rr[k] * C + c));
                a[2 * k] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), xe, a[2 * k]);
                a[2 * k + 1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)), xo, a[2 * k + 1]);
            }
        }
        __m256 b[8];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) b[k] = _mm256_add_ps(a[2 * k], a[2 * k + 1]), b[4 + k] = b[k];
        float sums[8];
        _mm256_storeu_ps(sums, hsum8x8(b));
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) out[rr[k]] = sums[k];
    }
    for (int64_t r = r0 + 4 * q; r < r1; r++) out[r] = dot_row(DSV3_DT_BF16, x, w, r);
}

/* FP8 E4M3, one token, C <= FP8_XMAX: gemv_rows without the trip through IEEE half.
 *
 * Decode: one 32-byte load holds 32 weights, four in each 32-bit lane (bytes q0..q3, q3 on top).
 * FP32 bits s.0000.eeeemmm.0...0 (sign at 31, the 7 magnitude bits at 26..20) are the float
 * 2^-120 times the E4M3 value, subnormals included: E4M3 exponent field 0 lands on FP32
 * exponent field 0, and both formats then read the mantissa as 0.mmm (2^-6 * 0.mmm / 2^-126 *
 * 0.mmm = 2^120 as for every other exponent). A 16-bit arithmetic shift by 4 moves the top
 * byte of each 16-bit half to bits 11..4 with its sign copied above it, so one mask (0x87F0 in
 * the high half, 0 in the low half) leaves q3's pattern, and the same shifted vector moved up
 * 16 bits leaves q1's; shifting the input left by 8 first does the same for q2 and q0. That is
 * 5 shifts and 4 ands per 32 weights, against 4 unpacks, 4 shifts, 4 ands and 4 vcvtph2ps
 * (one per cycle on Zen 3) on the half route, which held one core to ~10 G weights/s in L2;
 * this loop does 15-20 (dsv3-bench-gemv, docs/PERF.md).
 *
 * Lane k of the vector for byte position p is column 4k + p, so the input is permuted once per
 * row block instead of per weight: xs[32i + 8p + k] = x[32i + 4k + p]. It is also multiplied
 * by the block's scale and 2^64 there (the rows of a segment share one row of block scales), so
 * the inner loop has no block structure and the sums are 2^-56 times the result, far from both
 * FP32 ends (|x s| would have to pass 2^64, or a row's sum drop below 2^-70, to leave the
 * normal range). The FP32 denormals this makes (E4M3 subnormals) are multiplied at full speed
 * on Zen 3 (bench: random codes, 1/16 of them subnormal, run as fast as codes without any);
 * fp8_bits_ok() keeps this path to AMD CPUs and to MXCSR without DAZ, which would read them
 * as 0. Columns past the last multiple of 32 (inside the last scale block) are summed in
 * scalar. */
enum { FP8_XMAX = 18432 }; /* DeepSeek-V3's widest input (the dense FFN's down_proj) */

/* Bytes ahead of each stream that the FP8 GEMV prefetches. The decoding keeps the core busy
 * about half the time a row's bytes take to arrive, and the out-of-order window then covers
 * only ~2 cache lines per stream; an explicit prefetch keeps more reads in flight (decode of
 * the benchmark model: 79-85 -> 93-95 tok/s median in alternating runs; 256 and 1024 were
 * not distinguishable from 512 on this noisy machine; in the streamed GEMV bench 1024, 1536
 * (with the L2 hint) and 2048 were slower). Past a row's end it fetches the next row of the
 * same stream, so only a segment's first row per stream starts cold: fp8_segment prefetches
 * those bytes before its loop. The hint is NTA: the weights are read once per token, and the
 * streamed GEMV ran a little faster with it than with T0 (docs/PERF.md, wt-fp8b). A prefetch
 * never faults. */
enum { FP8_PF = 512 };

/* xs[c..c+32) for columns c = 0, 32, .. < C32: the permutation above, times f[c / 128]. */
static INL DSV3_ISA_F16C void fp8_permute_x(float *xs, const float *x, const float *f,
                                            int64_t C32) {
    for (int64_t c = 0; c < C32; c += 32) {
        __m256 v[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) /* (x[4j .. 4j+3] | x[16 + 4j .. 16 + 4j+3]) */
            v[j] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(x + c + 4 * j)),
                                        _mm_loadu_ps(x + c + 16 + 4 * j), 1);
        const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
        const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
        const __m256 s = _mm256_set1_ps(f[c / 128]);
        _mm256_store_ps(xs + c, _mm256_mul_ps(_mm256_shuffle_ps(t0, t2, 0x44), s));
        _mm256_store_ps(xs + c + 8, _mm256_mul_ps(_mm256_shuffle_ps(t0, t2, 0xEE), s));
        _mm256_store_ps(xs + c + 16, _mm256_mul_ps(_mm256_shuffle_ps(t1, t3, 0x44), s));
        _mm256_store_ps(xs + c + 24, _mm256_mul_ps(_mm256_shuffle_ps(t1, t3, 0xEE), s));
    }
}

/* acc0/acc1 += the 32 weights at p against xs[0..32) (decode above). */
static INL DSV3_ISA_F16C void fp8_dot32(const uint8_t *p, const float *xs, __m256 *acc0,
                                        __m256 *acc1) {
    const __m256i m = _mm256_set1_epi32((int)0x87F00000u);
    const __m256i v = _mm256_loadu_si256((const __m256i *)p);
    const __m256i a = _mm256_srai_epi16(v, 4);                          /* q3, q1 */
    const __m256i b = _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 4);    /* q2, q0 */
    const __m256 q0 = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(b, 16), m));
    const __m256 q1 = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(a, 16), m));
    const __m256 q2 = _mm256_castsi256_ps(_mm256_and_si256(b, m));
    const __m256 q3 = _mm256_castsi256_ps(_mm256_and_si256(a, m));
    *acc0 = _mm256_fmadd_ps(q0, _mm256_load_ps(xs), *acc0);
    *acc1 = _mm256_fmadd_ps(q1, _mm256_load_ps(xs + 8), *acc1);
    *acc0 = _mm256_fmadd_ps(q2, _mm256_load_ps(xs + 16), *acc0);
    *acc1 = _mm256_fmadd_ps(q3, _mm256_load_ps(xs + 24), *acc1);
}

/* Rows [s, e) of one row block against the prepared xs: four quarters in lockstep (four
 * streams, as in gemv_rows), the leftover rows one at a time. sl = the last column block's
 * scale, for the scalar columns [C32, C). */
static INL DSV3_ISA_F16C void fp8_segment(float *out, const float *x, const float *xs,
                                          const dsv3_weight *w, int64_t s, int64_t e, float sl) {
    const int64_t C = w->cols, C32 = C / 32 * 32, q = (e - s) / 4;
    const uint8_t *W = (const uint8_t *)w->data;
    const float unscale = 0x1p56f; /* 2^120 (decode) / 2^64 (xs) */
    if (q > 0) /* the streams' first bytes, which no earlier prefetch covered */
        for (int64_t o = 0; o < FP8_PF && o < C; o += 64)
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) _mm_prefetch((const char *)(W + (s + k * q) * C + o), _MM_HINT_NTA);
    for (int64_t i = 0; i < q; i++) {
        const int64_t rr[4] = {s + i, s + q + i, s + 2 * q + i, s + 3 * q + i};
        __m256 a0[4], a1[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) a0[k] = a1[k] = _mm256_setzero_ps();
        for (int64_t c = 0; c < C32; c += 32)
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                _mm_prefetch((const char *)(W + rr[k] * C + c + FP8_PF), _MM_HINT_NTA);
                fp8_dot32(W + rr[k] * C + c, xs + c, &a0[k], &a1[k]);
            }
        __m256 b[8];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) b[k] = _mm256_add_ps(a0[k], a1[k]), b[4 + k] = b[k];
        float sums[8];
        _mm256_storeu_ps(sums, hsum8x8(b));
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            float t = 0.0f;
            for (int64_t c = C32; c < C; c++) t += dsv3_e4m3_table[W[rr[k] * C + c]] * x[c];
            out[rr[k]] = sums[k] * unscale + t * sl;
        }
    }
    for (int64_t r = s + 4 * q; r < e; r++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t c = 0; c < C32; c += 32) fp8_dot32(W + r * C + c, xs + c, &a0, &a1);
        float t = 0.0f;
        for (int64_t c = C32; c < C; c++) t += dsv3_e4m3_table[W[r * C + c]] * x[c];
        out[r] = hsum(_mm256_add_ps(a0, a1)) * unscale + t * sl;
    }
}

/* out[r] = W[r, :] . x for rows [r0, r1), cut where the view's rows cross a 128-row scale
 * block: each piece gets its own permuted, scaled copy of x (a stack array, C floats). */
static DSV3_ISA_F16C void gemv_rows_fp8(float *out, const float *x, const dsv3_weight *w,
                                        int64_t r0, int64_t r1) {
    const int64_t C = w->cols, C32 = C / 32 * 32, nb = (C + 127) / 128;
    _Alignas(32) float xs[FP8_XMAX];
    float f[FP8_XMAX / 128];
    for (int64_t s = r0; s < r1;) { /* segments of rows sharing a row of block scales */
        const int64_t blk = (w->row0 + s) / 128, end = (blk + 1) * 128 - w->row0;
        const int64_t e = end < r1 ? end : r1;
        const float *srow = w->scale_inv + blk * nb;
        for (int64_t j = 0; j < nb; j++) f[j] = srow[j] * 0x1p64f;
        fp8_permute_x(xs, x, f, C32);
        fp8_segment(out, x, xs, w, s, e, srow[nb - 1]);
        s = e;
    }
}

/* Whether gemv_rows_fp8 may run here: its FP32 denormal operands are full speed on AMD's
 * cores (measured on Zen 3; Intel's optimization manuals describe microcode assists for
 * denormals, not measured here, so other vendors keep the half route), and they must not be
 * read as zero (MXCSR.DAZ, set e.g. by -ffast-math start-up code). Checked per item, on the
 * thread that runs it: each thread has its own MXCSR. */
static int fp8_bits_ok(void) {
    return dsv3_isa_amd() && !dsv3_isa_daz();
}

/* out[j][r] = W[r, :] . x[j] for NT tokens (2..4: speculative verification, small expert
 * batches), two rows per pass so each weight is decoded once for all tokens. The two rows come
 * from the two halves of the range: two long sequential streams (see gemv_rows). */
static INL DSV3_ISA_F16C void gemv_multi_rows(dsv3_dtype dt, int NT, float *out, const float *x,
                                              const dsv3_weight *w, int64_t r0, int64_t r1) {
    const int64_t C = w->cols, R = w->rows, half = (r1 - r0) / 2;
    /* Every loop over k (row) and j (token) is unrolled: NT is a constant at each call, so the
     * 2 x NT accumulators stay in registers instead of a stack array. */
    for (int64_t i = 0; i < half; i++) {
        const int64_t rr[2] = {r0 + i, r0 + half + i};
        __m256 acc[2][4], blk[2][4];
        float tail[2][4];
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++)
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) acc[k][j] = _mm256_setzero_ps(), tail[k][j] = 0.0f;
        for (int64_t c0 = 0; c0 < C; c0 += 128) {
            const int64_t c1 = c0 + 128 < C ? c0 + 128 : C;
#pragma GCC unroll 2
            for (int k = 0; k < 2; k++)
#pragma GCC unroll 4
                for (int j = 0; j < NT; j++) blk[k][j] = _mm256_setzero_ps();
            int64_t c = c0;
            for (; c + 8 <= c1; c += 8) {
                const __m256 w0 = load8(dt, w->data, (size_t)(rr[0] * C + c));
                const __m256 w1 = load8(dt, w->data, (size_t)(rr[1] * C + c));
#pragma GCC unroll 4
                for (int j = 0; j < NT; j++) {
                    const __m256 xv = _mm256_loadu_ps(x + j * C + c);
                    blk[0][j] = _mm256_fmadd_ps(w0, xv, blk[0][j]);
                    blk[1][j] = _mm256_fmadd_ps(w1, xv, blk[1][j]);
                }
            }
#pragma GCC unroll 2
            for (int k = 0; k < 2; k++) {
                const float s = scale_at(w, rr[k], c0);
#pragma GCC unroll 4
                for (int j = 0; j < NT; j++) {
                    acc[k][j] = _mm256_fmadd_ps(blk[k][j], _mm256_set1_ps(s * VS(dt)), acc[k][j]);
                    if (c == c1) continue; /* ragged columns: scalar */
                    float t = 0.0f;
                    for (int64_t cc = c; cc < c1; cc++)
                        t += load1(dt, w->data, (size_t)(rr[k] * C + cc)) * x[j * C + cc];
                    tail[k][j] += t * s;
                }
            }
        }
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++)
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) out[j * R + rr[k]] = hsum(acc[k][j]) + tail[k][j];
    }
    for (int64_t r = r0 + 2 * half; r < r1; r++) /* a leftover row: one token at a time */
        for (int j = 0; j < NT; j++) {
            float t = 0.0f;
            for (int64_t c0 = 0; c0 < C; c0 += 128) {
                const int64_t c1 = c0 + 128 < C ? c0 + 128 : C;
                float b = 0.0f;
                for (int64_t c = c0; c < c1; c++) b += load1(dt, w->data, (size_t)(r * C + c)) * x[j * C + c];
                t += b * scale_at(w, r, c0);
            }
            out[j * R + r] = t;
        }
}

/* out[j][r] = W[r, :] . x[j] for exactly two tokens (the speculative verify): four rows from
 * the four quarters of the range per pass (four streams, like gemv_rows) x two tokens = eight
 * accumulators. FP8 weights are scaled as they are decoded (one multiply per 8 weights serves
 * both tokens) so the sums need no per-block fold, and the eight sums leave in one reduction. */
static INL DSV3_ISA_F16C void gemv2_rows(dsv3_dtype dt, float *out, const float *x,
                                         const dsv3_weight *w, int64_t r0, int64_t r1) {
    const int64_t C = w->cols, R = w->rows, q = (r1 - r0) / 4, C8 = C / 8 * 8;
    const float *x1 = x + C;
    for (int64_t i = 0; i < q; i++) {
        const int64_t rr[4] = {r0 + i, r0 + q + i, r0 + 2 * q + i, r0 + 3 * q + i};
        __m256 acc[8]; /* acc[2k + j]: row k, token j */
        float tail[8] = {0};
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
        for (int64_t c0 = 0; c0 < C; c0 += 128) {
            const int64_t c1 = c0 + 128 < C8 ? c0 + 128 : C8;
            __m256 sv[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) sv[k] = _mm256_set1_ps(scale_at(w, rr[k], c0) * VS(dt));
            for (int64_t c = c0; c < c1; c += 8) {
                const __m256 xa = _mm256_loadu_ps(x + c), xb = _mm256_loadu_ps(x1 + c);
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    __m256 wv = load8(dt, w->data, (size_t)(rr[k] * C + c));
                    if (dt == DSV3_DT_F8_E4M3) wv = _mm256_mul_ps(wv, sv[k]);
                    acc[2 * k] = _mm256_fmadd_ps(wv, xa, acc[2 * k]);
                    acc[2 * k + 1] = _mm256_fmadd_ps(wv, xb, acc[2 * k + 1]);
                }
            }
        }
        if (C8 < C) /* ragged columns (inside the last scale block) */
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const float sc = scale_at(w, rr[k], C8);
                for (int64_t c = C8; c < C; c++) {
                    const float wc = load1(dt, w->data, (size_t)(rr[k] * C + c)) * sc;
                    tail[2 * k] += wc * x[c];
                    tail[2 * k + 1] += wc * x1[c];
                }
            }
        float sums[8];
        _mm256_storeu_ps(sums, _mm256_add_ps(hsum8x8(acc), _mm256_loadu_ps(tail)));
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) out[rr[k]] = sums[2 * k], out[R + rr[k]] = sums[2 * k + 1];
    }
    if (r0 + 4 * q < r1) gemv_multi_rows(dt, 2, out, x, w, r0 + 4 * q, r1);
}

/* gemv2_rows for BF16 with C a multiple of 16 (<= BF16_XMAX): the shuffle-free decode of
 * gemv_rows_bf16, both tokens' x split into even/odd columns; even and odd products of a row
 * and token go into one accumulator (eight in all). */
static INL DSV3_ISA_F16C void gemv2_rows_bf16(float *out, const float *x, const dsv3_weight *w,
                                              int64_t r0, int64_t r1) {
    const int64_t C = w->cols, R = w->rows, q = (r1 - r0) / 4;
    _Alignas(32) float xs[2][BF16_XMAX];
    for (int j = 0; j < 2; j++)
        for (int64_t c = 0; c < C; c += 16)
            for (int i = 0; i < 8; i++)
                xs[j][c + i] = x[j * C + c + 2 * i], xs[j][c + 8 + i] = x[j * C + c + 2 * i + 1];
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    const uint16_t *W = (const uint16_t *)w->data;
    for (int64_t i = 0; i < q; i++) {
        const int64_t rr[4] = {r0 + i, r0 + q + i, r0 + 2 * q + i, r0 + 3 * q + i};
        __m256 a[8]; /* a[2k + j]: row k, token j */
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
        for (int64_t c = 0; c < C; c += 16) {
            const __m256 e0 = _mm256_load_ps(xs[0] + c), o0 = _mm256_load_ps(xs[0] + c + 8);
            const __m256 e1 = _mm256_load_ps(xs[1] + c), o1 = _mm256_load_ps(xs[1] + c + 8);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(W + rr[k] * C + c));
                const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(v, hi));
                a[2 * k] = _mm256_fmadd_ps(wo, o0, _mm256_fmadd_ps(we, e0, a[2 * k]));
                a[2 * k + 1] = _mm256_fmadd_ps(wo, o1, _mm256_fmadd_ps(we, e1, a[2 * k + 1]));
            }
        }
        float sums[8];
        _mm256_storeu_ps(sums, hsum8x8(a));
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) out[rr[k]] = sums[2 * k], out[R + rr[k]] = sums[2 * k + 1];
    }
    if (r0 + 4 * q < r1) gemv_multi_rows(DSV3_DT_BF16, 2, out, x, w, r0 + 4 * q, r1);
}

/* ---------------------------------------------------------------- GEMM (many tokens) --- */

/* Decodes rows [r, r + PANEL_R) x columns [c0, c0 + len) of W, scaled, into the transposed
 * tile t[len][PANEL_R] (rows past the weight's end are zero). */
static INL DSV3_ISA_F16C void transpose8(__m256 v[8]) {
    __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    v[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    v[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    v[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    v[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    v[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    v[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    v[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    v[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

static INL DSV3_ISA_F16C void decode_panel(dsv3_dtype dt, float *t, const dsv3_weight *w, int64_t r,
                                           int64_t c0, int64_t len) {
    /* Fast path: a full panel; 8x8 blocks decoded as rows, transposed in registers. */
    if (r + PANEL_R <= w->rows && len % 8 == 0) {
        for (int64_t kb = 0; kb < PANEL_R; kb += 8) {
            float s[8];
            int64_t sblock = -1;
            for (int64_t c = 0; c < len; c += 8) {
                if ((c0 + c) / 128 != sblock) { /* scale blocks are 128 wide: refresh per block */
                    sblock = (c0 + c) / 128;
                    for (int k = 0; k < 8; k++) s[k] = scale_at(w, r + kb + k, c0 + c) * VS(dt);
                }
                __m256 v[8];
                for (int k = 0; k < 8; k++)
                    v[k] = _mm256_mul_ps(load8(dt, w->data, (size_t)((r + kb + k) * w->cols + c0 + c)),
                                         _mm256_set1_ps(s[k]));
                transpose8(v);
                for (int i = 0; i < 8; i++) _mm256_store_ps(t + (c + i) * PANEL_R + kb, v[i]);
            }
        }
        return;
    }
    for (int64_t k = 0; k < PANEL_R; k++) {
        if (r + k >= w->rows) {
            for (int64_t c = 0; c < len; c++) t[c * PANEL_R + k] = 0.0f;
            continue;
        }
        /* a 256-column span covers two FP8 scale blocks */
        const size_t base = (size_t)((r + k) * w->cols + c0);
        for (int64_t c = 0; c < len; c++) {
            const float s = dt == DSV3_DT_F8_E4M3 ? scale_at(w, r + k, c0 + c) : 1.0f;
            t[c * PANEL_R + k] = load1(dt, w->data, base + (size_t)c) * s;
        }
    }
}

/* o[j][0..16) (+)= sum_c x[j][c] * t[c][0..16) for JN <= TOK tokens (rows j at strides xs / os).
 * The accumulators are this function's own fully unrolled locals, loaded from o (or zeroed on
 * the first column span) and stored back once: passed in from the caller they were spilled to
 * the stack on every column, which held the kernel to a quarter of the FMA peak. */
static INL DSV3_ISA_F16C void micro(int JN, float *o, int64_t os, const float *t, const float *x,
                                    int64_t xs, int64_t len, int first) {
    __m256 a0[TOK], a1[TOK];
#pragma GCC unroll 6
    for (int j = 0; j < JN; j++) {
        a0[j] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(o + j * os);
        a1[j] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(o + j * os + 8);
    }
    for (int64_t c = 0; c < len; c++) {
        const __m256 w0 = _mm256_load_ps(t + c * PANEL_R), w1 = _mm256_load_ps(t + c * PANEL_R + 8);
#pragma GCC unroll 6
        for (int j = 0; j < JN; j++) {
            const __m256 xv = _mm256_broadcast_ss(x + j * xs + c);
            a0[j] = _mm256_fmadd_ps(xv, w0, a0[j]);
            a1[j] = _mm256_fmadd_ps(xv, w1, a1[j]);
        }
    }
#pragma GCC unroll 6
    for (int j = 0; j < JN; j++) {
        _mm256_storeu_ps(o + j * os, a0[j]);
        _mm256_storeu_ps(o + j * os + 8, a1[j]);
    }
}

/* Rows [r, r + 16) of out[n, R] = x W^T: each 256-column span of the panel is decoded once, then
 * every token group runs over it. Partial sums of earlier spans live in the output (full panels)
 * or in a 16-wide scratch row per token (the last, partial panel of a weight). */
static DSV3_ISA_F16C void gemm_panel(dsv3_dtype dt, float *out, const float *x,
                                     const dsv3_weight *w, int64_t n, int64_t r) {
    const int64_t R = w->rows, C = w->cols, nr = R - r < PANEL_R ? R - r : PANEL_R;
    _Alignas(32) float t[PANEL_C * PANEL_R];
    _Alignas(32) float part[TOK * PANEL_R]; /* partial panel: 16-wide rows for the kernel */
    for (int64_t c0 = 0; c0 < C; c0 += PANEL_C) {
        const int64_t len = C - c0 < PANEL_C ? C - c0 : PANEL_C;
        switch (dt) { /* one decode routine per dtype, specialised by inlining */
        case DSV3_DT_BF16: decode_panel(DSV3_DT_BF16, t, w, r, c0, len); break;
        case DSV3_DT_F16: decode_panel(DSV3_DT_F16, t, w, r, c0, len); break;
        case DSV3_DT_F8_E4M3: decode_panel(DSV3_DT_F8_E4M3, t, w, r, c0, len); break;
        default: decode_panel(DSV3_DT_F32, t, w, r, c0, len); break;
        }
        for (int64_t s0 = 0; s0 < n; s0 += TOK) {
            const int jn = (int)(n - s0 < TOK ? n - s0 : TOK);
            const float *xs = x + s0 * C + c0;
            float *o = out + s0 * R + r;
            int64_t os = R;
            if (nr < PANEL_R) { /* copy the partial rows in and out of a full-width scratch */
                for (int j = 0; j < jn; j++)
                    for (int64_t k = 0; k < PANEL_R; k++) part[j * PANEL_R + k] = k < nr && c0 ? o[j * R + k] : 0.0f;
                o = part;
                os = PANEL_R;
            }
            switch (jn) { /* constant token counts keep the accumulators in registers */
            case 6: micro(6, o, os, t, xs, C, len, c0 == 0); break;
            case 5: micro(5, o, os, t, xs, C, len, c0 == 0); break;
            case 4: micro(4, o, os, t, xs, C, len, c0 == 0); break;
            case 3: micro(3, o, os, t, xs, C, len, c0 == 0); break;
            case 2: micro(2, o, os, t, xs, C, len, c0 == 0); break;
            default: micro(1, o, os, t, xs, C, len, c0 == 0); break;
            }
            if (nr < PANEL_R)
                for (int j = 0; j < jn; j++)
                    for (int64_t k = 0; k < nr; k++) out[(s0 + j) * R + r + k] = part[j * PANEL_R + k];
        }
    }
}

/* ---------------------------------------------------------------- transposed (MLA) ----- */

/* os[0 .. 8 * NV) = sum_r xs[r] W[r, c0 .. c0 + 8 * NV) for one token, NV (1, 2, 4, 8) a
 * constant so the accumulators stay in registers: with a run-time count they lived in a stack
 * array, a store and a reload per multiply-add (the demo's 32-wide latent took that path). */
static INL DSV3_ISA_F16C void gemvt_vecs(dsv3_dtype dt, int NV, float *os, const float *xs,
                                         const dsv3_weight *w, int64_t c0) {
    const int64_t R = w->rows, C = w->cols;
    __m256 acc[8];
#pragma GCC unroll 8
    for (int k = 0; k < NV; k++) acc[k] = _mm256_setzero_ps();
    for (int64_t r = 0; r < R; r++) {
        const __m256 av = _mm256_set1_ps(xs[r] * scale_at(w, r, c0) * VS(dt));
        const size_t row = (size_t)(r * C + c0);
#pragma GCC unroll 8
        for (int k = 0; k < NV; k++) acc[k] = _mm256_fmadd_ps(load8(dt, w->data, row + 8 * (size_t)k), av, acc[k]);
    }
#pragma GCC unroll 8
    for (int k = 0; k < NV; k++) _mm256_storeu_ps(os + 8 * k, acc[k]);
}

/* out[s, c0:c0+len) = sum_r x[s, r] W[r, c0:c0+len) for every token s, len <= 64 inside one
 * 128-column scale block, so the block scale of row r is one number: (x[s, r] * s_r) * q[r, c].
 * The whole vectors go in runs of 8, 4, 2 and 1; the last len % 8 columns are scalar. */
static INL DSV3_ISA_F16C void gemvt_span(dsv3_dtype dt, const dsv3_matmul_op *op, int64_t c0,
                                         int64_t len) {
    const dsv3_weight *w = op->w;
    const int64_t R = w->rows, C = w->cols, full = len / 8;
    for (int64_t s = 0; s < op->n; s++) {
        const float *xs = op->x + s * R;
        float *os = op->out + s * C + c0;
        int64_t k = 0;
        if (full - k >= 8) gemvt_vecs(dt, 8, os, xs, w, c0), k += 8;
        if (full - k >= 4) gemvt_vecs(dt, 4, os + 8 * k, xs, w, c0 + 8 * k), k += 4;
        if (full - k >= 2) gemvt_vecs(dt, 2, os + 8 * k, xs, w, c0 + 8 * k), k += 2;
        if (full - k >= 1) gemvt_vecs(dt, 1, os + 8 * k, xs, w, c0 + 8 * k), k += 1;
        if (8 * full == len) continue;
        float tail[8] = {0};
        for (int64_t r = 0; r < R; r++) {
            const float a = xs[r] * scale_at(w, r, c0);
            const size_t row = (size_t)(r * C + c0);
            for (int64_t c = 8 * full; c < len; c++) tail[c - 8 * full] += a * load1(dt, w->data, row + (size_t)c);
        }
        for (int64_t c = 8 * full; c < len; c++) os[c] = tail[c - 8 * full];
    }
}

/* ---------------------------------------------------------------- dispatch ------------- */

enum { TSPAN = 64 }; /* columns per item of a transposed product */

/* Item [a, b) of one product (rows; columns for a transposed one), by the kernel that suits its
 * token count. */
static DSV3_ISA_F16C void run_item(const dsv3_matmul_op *op, int64_t a, int64_t b) {
    const dsv3_weight *w = op->w;
    const dsv3_dtype dt = w->dtype;
    if (op->trans) {
        switch (dt) {
        case DSV3_DT_BF16: gemvt_span(DSV3_DT_BF16, op, a, b - a); break;
        case DSV3_DT_F16: gemvt_span(DSV3_DT_F16, op, a, b - a); break;
        case DSV3_DT_F8_E4M3: gemvt_span(DSV3_DT_F8_E4M3, op, a, b - a); break;
        default: gemvt_span(DSV3_DT_F32, op, a, b - a); break;
        }
    } else if (op->n == 1) {
        switch (dt) {
        case DSV3_DT_BF16:
            if (w->cols % 16 == 0 && w->cols <= BF16_XMAX) gemv_rows_bf16(op->out, op->x, w, a, b);
            else gemv_rows(DSV3_DT_BF16, op->out, op->x, w, a, b);
            break;
        case DSV3_DT_F16: gemv_rows(DSV3_DT_F16, op->out, op->x, w, a, b); break;
        case DSV3_DT_F8_E4M3:
            if (w->cols <= FP8_XMAX && fp8_bits_ok()) gemv_rows_fp8(op->out, op->x, w, a, b);
            else gemv_rows(DSV3_DT_F8_E4M3, op->out, op->x, w, a, b);
            break;
        default: gemv_rows(DSV3_DT_F32, op->out, op->x, w, a, b); break;
        }
    } else if (op->n <= 4) {
        /* a constant token count per call keeps the accumulators in registers */
#define MULTI(DT)                                                                                  \
    switch (op->n) {                                                                               \
    case 2:                                                                                        \
        if (DT == DSV3_DT_BF16 && w->cols % 16 == 0 && w->cols <= BF16_XMAX)                       \
            gemv2_rows_bf16(op->out, op->x, w, a, b);                                              \
        else                                                                                       \
            gemv2_rows(DT, op->out, op->x, w, a, b);                                               \
        break;                                                                                     \
    case 3: gemv_multi_rows(DT, 3, op->out, op->x, w, a, b); break;                               \
    default: gemv_multi_rows(DT, 4, op->out, op->x, w, a, b); break;                              \
    }
        switch (dt) {
        case DSV3_DT_BF16: MULTI(DSV3_DT_BF16); break;
        case DSV3_DT_F16: MULTI(DSV3_DT_F16); break;
        case DSV3_DT_F8_E4M3: MULTI(DSV3_DT_F8_E4M3); break;
        default: MULTI(DSV3_DT_F32); break;
        }
#undef MULTI
    } else {
        for (int64_t r = a; r < b; r += PANEL_R) gemm_panel(dt, op->out, op->x, w, op->n, r);
    }
}

enum { MAX_OPS = 256 };

/* A batch cut into items: op o owns items start[o] .. start[o+1]-1, each `span[o]` rows (or
 * columns) wide. */
typedef struct {
    const dsv3_matmul_op *ops;
    int64_t count;
    int64_t start[MAX_OPS + 1], span[MAX_OPS];
} batch;

static void batch_item(void *ctx, int64_t it, int tid) {
    (void)tid;
    const batch *b = ctx;
    int64_t lo = 0, hi = b->count - 1; /* the op whose items contain it: start[o] <= it */
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (b->start[mid] <= it) lo = mid;
        else hi = mid - 1;
    }
    const dsv3_matmul_op *op = &b->ops[lo];
    const int64_t len = op->trans ? op->w->cols : op->w->rows, a = (it - b->start[lo]) * b->span[lo];
    run_item(op, a, a + b->span[lo] < len ? a + b->span[lo] : len);
}

/* Rows per item. One or two tokens: a GEMV item is walked as four sequential streams
 * (gemv_rows, gemv2_rows), so it should be long — 64..256 rows, aiming at >= 4 items per thread
 * of a large product so threads finish together; 3..4 tokens: two streams; more: 16-row panels
 * of the GEMM. */
static int64_t span_of(const dsv3_matmul_op *op, int threads) {
    if (op->trans) return TSPAN;
    if (op->n > 4) return PANEL_R;
    int64_t s = op->w->rows / (4 * threads);
    s = s < 64 ? 64 : s > 256 ? 256 : s;
    return op->n <= 2 ? s : s / 2;
}

/* What one weight element of op costs, in one-token multiply-adds, for the threading decision:
 * the 2..4-token GEMVs decode each weight once for all tokens (two tokens take ~1.3x one
 * token's time, not 2x), so they count ceil(n / 2). Counting n sent the speculative verify's
 * small products (q_a + kv_a, q_b, o: ~1.5 us each) to the pool, where posting and waiting cost
 * about what the second thread saves, and a stall when the worker's core runs another job.
 * Transposed products and GEMMs count n. */
static int64_t cost_per_weight(const dsv3_matmul_op *op) {
    return !op->trans && op->n >= 2 && op->n <= 4 ? (op->n + 1) / 2 : op->n;
}

/* All products' items go to the pool as one job: a layer's experts stream their rows on every
 * core at once, and no thread waits for another that has not started. */
static void fast_matmul_many(const dsv3_matmul_op *ops, int64_t count) {
    if (count > MAX_OPS) {
        fast_matmul_many(ops, MAX_OPS);
        fast_matmul_many(ops + MAX_OPS, count - MAX_OPS);
        return;
    }
    if (count <= 0) return;
    batch b;
    b.ops = ops;
    b.count = count;
    b.start[0] = 0;
    const int threads = dsv3_pool_threads();
    int64_t macs = 0;
    for (int64_t i = 0; i < count; i++) {
        const int64_t len = ops[i].trans ? ops[i].w->cols : ops[i].w->rows;
        b.span[i] = span_of(&ops[i], threads);
        b.start[i + 1] = b.start[i] + (len + b.span[i] - 1) / b.span[i];
        macs += ops[i].w->rows * ops[i].w->cols * cost_per_weight(&ops[i]);
    }
    /* Tiny batches run on the caller: posting a job costs ~1 us, and a worker that sleeps
     * would need a futex wake. */
    if (macs < PAR_MIN_MACS) {
        for (int64_t it = 0; it < b.start[count]; it++) batch_item(&b, it, 0);
        return;
    }
    dsv3_pool_for(b.start[count], batch_item, &b);
}

static void fast_matmul(float *out, const float *x, const dsv3_weight *w, int64_t n) {
    const dsv3_matmul_op op = {out, x, w, n, 0};
    fast_matmul_many(&op, 1);
}

static void fast_matmul_t(float *out, const float *x, const dsv3_weight *w, int64_t n) {
    const dsv3_matmul_op op = {out, x, w, n, 1};
    fast_matmul_many(&op, 1);
}

/* g = silu(g) * u = g / (1 + e^-g) * u (docs/ARCHITECTURE.md, "SwiGLU"), eight at a time with the polynomial exp. */
static DSV3_ISA_F16C void fast_silu_mul(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = exp8(_mm256_sub_ps(zero, x));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    dsv3_cpu_silu_mul(g + i, u + i, n - i);
}

/* out = g * (x / sqrt(mean(x^2) + eps)) per row (docs/ARCHITECTURE.md, "RMSNorm"; out may be x). The sum of squares
 * runs in 32 float lanes: the reference's serial double sum waits ~4 cycles an element, and a
 * token of the demo takes 17 norms of 32..128 elements (~2 us of a ~80 us forward). */
static DSV3_ISA_F16C void fast_rmsnorm(float *out, const float *x, const float *g, int64_t n,
                                       int64_t dim, float eps) {
    for (int64_t s = 0; s < n; s++) {
        const float *xs = x + s * dim;
        float *os = out + s * dim;
        __m256 a[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) a[k] = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 32 <= dim; i += 32)
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256 v = _mm256_loadu_ps(xs + i + 8 * k);
                a[k] = _mm256_fmadd_ps(v, v, a[k]);
            }
        for (; i + 8 <= dim; i += 8) {
            const __m256 v = _mm256_loadu_ps(xs + i);
            a[0] = _mm256_fmadd_ps(v, v, a[0]);
        }
        double ss = hsum(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
        for (; i < dim; i++) ss += (double)xs[i] * xs[i];
        const float inv = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        const __m256 vi = _mm256_set1_ps(inv);
        for (i = 0; i + 8 <= dim; i += 8)
            _mm256_storeu_ps(os + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), _mm256_mul_ps(_mm256_loadu_ps(xs + i), vi)));
        for (; i < dim; i++) os[i] = g[i] * (xs[i] * inv);
    }
}

static const dsv3_backend fast_backend = {
    .name = "fast",
    .matmul = fast_matmul,
    .matmul_many = fast_matmul_many,
    .matmul_t = fast_matmul_t,
    .rmsnorm = fast_rmsnorm,
    .silu_mul = fast_silu_mul,
    .mla_attend = dsv3_fast_mla_attend,
    DSV3_CPU_COMMON_OPS,
};

const dsv3_backend *dsv3_backend_fast(void) {
    dsv3_isa_init();
    if (dsv3_isa_fma()) return &fast_backend;
    return dsv3_backend_cpu();
}
