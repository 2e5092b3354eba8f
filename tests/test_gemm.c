/* test_gemm — the trainer's float32 compute path (kernels/cpu/gemm.h, the _f32 linears and
 * attention of model/train/ops.h) against double sums on fresh random ragged shapes.
 *
 * Tolerance: a float32 sum of K products, each operand rounded to float once, is within
 * about (K + 2) * 2^-24 * sum_k |a_k b_k| of the exact sum (the standard bound for recursive
 * summation; FMA only tightens it). We require |got - exact| <= (K + 2) * 2^-24 * sum |a b|
 * + 1e-30 for every element — a wrong index, a missed edge or a stale accumulator is off by a
 * whole term, far above this. Elements outside the product (ldc padding) must be untouched.
 */
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/pool.h"
#include "kernels/cpu/gemm.h"
#include "model/train/ops.h"
#include "tests/runner.h"

static double spread(void) {
    return urand() * pow(2.0, (double)(int)(test_u64() % 8) - 4.0);
}

static void *xalloc(int64_t n, size_t el) {
    void *p = malloc((size_t)(n > 0 ? n : 1) * el);
    if (!p) abort();
    return p;
}

/* Checks got[i*ldg + j] (double or float) against the exact sum of A(i,k) B(k,j) plus base. */
static int check_product(const char *what, const void *got, int got_f64, int64_t ldg,
                         const double *base, const double *A, const double *B, int64_t M,
                         int64_t N, int64_t K) {
    const double u = ldexp(1.0, -24);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double exact = base ? base[i * N + j] : 0.0, mag = 0.0;
            for (int64_t k = 0; k < K; k++) {
                /* the operands as the float path sees them */
                const double a = (float)A[i * K + k], b = (float)B[k * N + j];
                exact += a * b;
                mag += fabs(a * b);
            }
            const double g = got_f64 ? ((const double *)got)[i * ldg + j]
                                     : (double)((const float *)got)[i * ldg + j];
            /* the float output adds one more rounding of the result */
            const double tol = (double)(K + 2) * u * mag + (got_f64 ? 0.0 : u * fabs(exact)) + 1e-30;
            CHECK(fabs(g - exact) <= tol, "%s M %lld N %lld K %lld at (%lld, %lld): %.9g vs %.9g (tol %.3g)",
                  what, (long long)M, (long long)N, (long long)K, (long long)i, (long long)j, g,
                  exact, tol);
        }
    return 0;
}

static const int64_t sizes[] = {1, 2, 5, 6, 7, 13, 16, 17, 31, 48, 97, 130};
#define NS (int64_t)(sizeof sizes / sizeof sizes[0])

/* One dsv3_gemm case: A [M, K] and B [K, N] stored as given or transposed (at, bt), as float
 * or double (af, bf), into C with leading dimension ldc in mode; checked against the exact
 * product, and the padding columns of C must stay as they were. */
static int gemm_case(int64_t M, int64_t N, int64_t K, int64_t ldc, int at, int bt, int af, int bf,
                     dsv3_gemm_mode mode) {
    double *A = xalloc(M * K, 8), *B = xalloc(K * N, 8);
    for (int64_t i = 0; i < M * K; i++) A[i] = spread();
    for (int64_t i = 0; i < K * N; i++) B[i] = spread();
    double *Ad = xalloc(M * K, 8), *Bd = xalloc(K * N, 8);
    float *Af = xalloc(M * K, 4), *Bf = xalloc(K * N, 4);
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) {
            const int64_t idx = at ? k * M + i : i * K + k;
            Ad[idx] = A[i * K + k], Af[idx] = (float)A[i * K + k];
        }
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) {
            const int64_t idx = bt ? j * K + k : k * N + j;
            Bd[idx] = B[k * N + j], Bf[idx] = (float)B[k * N + j];
        }
    const dsv3_mview va = {af ? (const void *)Af : Ad, !af, at ? 1 : K, at ? M : 1};
    const dsv3_mview vb = {bf ? (const void *)Bf : Bd, !bf, bt ? 1 : N, bt ? K : 1};
    float *ws = xalloc(dsv3_gemm_ws_floats(M, N, K), 4);
    double *base = xalloc(M * N, 8);
    for (int64_t i = 0; i < M * N; i++) base[i] = mode == DSV3_GEMM_SET_F64 ? 0.0 : spread();
    void *C;
    if (mode == DSV3_GEMM_ADD_F32) {
        float *c = xalloc(M * ldc, 4);
        for (int64_t i = 0; i < M * ldc; i++) c[i] = 7.0f;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) base[i * N + j] = (float)base[i * N + j], c[i * ldc + j] = (float)base[i * N + j];
        C = c;
    } else {
        double *c = xalloc(M * ldc, 8);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < ldc; j++) c[i * ldc + j] = j < N ? (mode == DSV3_GEMM_SET_F64 ? NAN : base[i * N + j]) : 7.0;
        C = c;
    }
    dsv3_gemm(C, ldc, mode, va, vb, M, N, K, ws);
    const int f64 = mode != DSV3_GEMM_ADD_F32;
    int bad = check_product("gemm", C, f64, ldc, base, A, B, M, N, K);
    for (int64_t i = 0; i < M && !bad; i++)
        for (int64_t j = N; j < ldc; j++) {
            const double v = f64 ? ((double *)C)[i * ldc + j] : ((float *)C)[i * ldc + j];
            if (v != 7.0) {
                printf("  padding at (%lld, %lld) changed to %g\n", (long long)i, (long long)j, v);
                bad = 1;
            }
        }
    free(A), free(B), free(Ad), free(Bd), free(Af), free(Bf), free(ws), free(base), free(C);
    return bad;
}

/* dsv3_gemm in every mode, with A and B read through plain and transposed views of double
 * and float arrays, on random shapes. */
static int test_gemm_modes_and_views(void) {
    for (int rep = 0; rep < 60; rep++) {
        const int64_t M = sizes[test_u64() % NS], N = sizes[test_u64() % NS];
        const int64_t K = sizes[test_u64() % NS], ldc = N + (int64_t)(test_u64() % 3);
        const int at = (int)(test_u64() % 2), bt = (int)(test_u64() % 2);
        const int af = (int)(test_u64() % 2), bf = (int)(test_u64() % 2);
        if (gemm_case(M, N, K, ldc, at, bt, af, bf, (dsv3_gemm_mode)(test_u64() % 3))) return 1;
    }
    return 0;
}

/* Products larger than one block (more than 1536 rows, 2048 of k or 2048 columns): the blocks
 * cover every element once, and k blocks after the first add to it. */
static int test_gemm_large_products_in_blocks(void) {
    CHECK(!gemm_case(1600, 40, 2100, 41, 0, 1, 0, 1, DSV3_GEMM_SET_F64), "M and K blocks, set");
    CHECK(!gemm_case(1601, 17, 2050, 17, 1, 0, 0, 0, DSV3_GEMM_ADD_F32), "M and K blocks, add f32");
    CHECK(!gemm_case(7, 2100, 30, 2101, 0, 1, 1, 1, DSV3_GEMM_ADD_F64), "N blocks, add f64");
    return 0;
}

/* The _f32 linears against the exact products of the same operands: y = x W^T,
 * dx += dy W, dW += dy^T x, on ragged shapes (n tokens, in, out), large enough to use the
 * worker pool too. */
static int test_linear_f32_against_exact(void) {
    const int64_t shapes[][3] = {{1, 1, 1},    {3, 5, 7},     {7, 17, 13},   {64, 128, 96},
                                 {97, 33, 130}, {130, 64, 17}, {256, 130, 64}, {6, 16, 16}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        double *x = xalloc(n * in, 8), *dy = xalloc(n * out, 8), *y = xalloc(n * out, 8);
        double *dx = xalloc(n * in, 8), *dx0 = xalloc(n * in, 8);
        float *W = xalloc(out * in, 4), *dW = xalloc(out * in, 4);
        double *Wd = xalloc(out * in, 8), *WT = xalloc(in * out, 8), *dW0 = xalloc(out * in, 8);
        double *dyT = xalloc(out * n, 8);
        for (int64_t i = 0; i < n * in; i++) x[i] = spread(), dx[i] = dx0[i] = spread();
        for (int64_t i = 0; i < n * out; i++) dy[i] = spread();
        for (int64_t i = 0; i < out * in; i++) {
            W[i] = (float)spread(), Wd[i] = W[i];
            dW[i] = (float)spread(), dW0[i] = dW[i];
        }
        for (int64_t r = 0; r < out; r++)
            for (int64_t c = 0; c < in; c++) WT[c * out + r] = Wd[r * in + c];
        for (int64_t t = 0; t < n; t++)
            for (int64_t r = 0; r < out; r++) dyT[r * n + t] = dy[t * out + r];
        float *ws = xalloc(dsv3_op_linear_ws(n, in, out), 4);
        dsv3_op_linear_forward_f32(y, x, W, n, in, out, ws);
        dsv3_op_linear_backward_f32(dx, dW, dy, x, W, n, in, out, ws);
        int bad = check_product("y = x W^T", y, 1, out, NULL, x, WT, n, out, in) ||
                  check_product("dx += dy W", dx, 1, in, dx0, dy, Wd, n, in, out) ||
                  check_product("dW += dy^T x", dW, 0, in, dW0, dyT, x, out, in, n);
        free(x), free(dy), free(y), free(dx), free(dx0), free(W), free(dW), free(Wd), free(WT);
        free(dW0), free(dyT), free(ws);
        if (bad) return 1;
    }
    return 0;
}

/* NULL gradient outputs are skipped; the same call twice gives the same bits (a fixed order). */
static int test_linear_f32_null_outputs_and_repeatable(void) {
    const int64_t n = 50, in = 70, out = 40;
    double *x = xalloc(n * in, 8), *dy = xalloc(n * out, 8), *dx = xalloc(n * in, 8);
    double *y1 = xalloc(n * out, 8), *y2 = xalloc(n * out, 8);
    float *W = xalloc(out * in, 4), *dW = xalloc(out * in, 4);
    for (int64_t i = 0; i < n * in; i++) x[i] = spread(), dx[i] = 0.0;
    for (int64_t i = 0; i < n * out; i++) dy[i] = spread();
    for (int64_t i = 0; i < out * in; i++) W[i] = (float)spread(), dW[i] = 0.0f;
    float *ws = xalloc(dsv3_op_linear_ws(n, in, out), 4);
    dsv3_op_linear_forward_f32(y1, x, W, n, in, out, ws);
    dsv3_op_linear_forward_f32(y2, x, W, n, in, out, ws);
    int ok = !memcmp(y1, y2, (size_t)(n * out) * 8);
    dsv3_op_linear_backward_f32(NULL, dW, dy, x, W, n, in, out, ws);
    for (int64_t i = 0; i < n * in; i++) ok &= dx[i] == 0.0;
    dsv3_op_linear_backward_f32(dx, NULL, dy, x, W, n, in, out, ws);
    double s = 0.0;
    for (int64_t i = 0; i < n * in; i++) s += fabs(dx[i]);
    ok &= s > 0.0;
    free(x), free(dy), free(dx), free(y1), free(y2), free(W), free(dW), free(ws);
    CHECK(ok, "outputs not repeatable or a NULL output was written");
    return 0;
}

/* The float32 attention against the double one (model/train/ops.h) on random shapes, forward
 * (o, P) and backward (dq, dk, dv added onto random values). Inputs in [-1, 1); scores stay
 * small, so every result is within 2e-5 of the double one relative to the tensor's largest
 * magnitude (measured: ~1e-6); a wrong index, mask or missed key is off by O(1). */
static int test_attention_f32_against_double(void) {
    const int64_t shapes[][5] = {{1, 1, 1, 1, 1}, {1, 5, 2, 3, 2}, {2, 17, 3, 24, 16},
                                 {3, 33, 2, 48, 32}, {2, 64, 4, 9, 7}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        const int64_t B = shapes[c][0], T = shapes[c][1], nh = shapes[c][2];
        const int64_t dqk = shapes[c][3], dv = shapes[c][4], n = B * T;
        const double scale = 1.0 / sqrt((double)dqk) * (1.0 + urand() * 0.5);
        double *q = xalloc(n * nh * dqk, 8), *k = xalloc(n * nh * dqk, 8), *v = xalloc(n * nh * dv, 8);
        double *go = xalloc(n * nh * dv, 8);
        for (int64_t i = 0; i < n * nh * dqk; i++) q[i] = 3 * urand(), k[i] = 3 * urand();
        for (int64_t i = 0; i < n * nh * dv; i++) v[i] = urand(), go[i] = urand();
        double *o[2], *P[2], *dq[2], *dk[2], *dvv[2];
        float *ws = xalloc(dsv3_pool_threads() * dsv3_op_attention_ws(T, dqk, dv), 4);
        for (int f = 0; f < 2; f++) {
            o[f] = xalloc(n * nh * dv, 8), P[f] = xalloc(B * nh * T * T, 8);
            dq[f] = xalloc(n * nh * dqk, 8), dk[f] = xalloc(n * nh * dqk, 8), dvv[f] = xalloc(n * nh * dv, 8);
            uint64_t keep = dsv3_test_seed;
            for (int64_t i = 0; i < n * nh * dqk; i++) dq[f][i] = urand(), dk[f][i] = urand();
            for (int64_t i = 0; i < n * nh * dv; i++) dvv[f][i] = urand();
            if (!f) dsv3_test_seed = keep; /* both runs start from the same gradient values */
            if (f) {
                dsv3_op_attention_forward_f32(o[f], P[f], q, k, v, B, T, nh, dqk, dv, scale, ws);
                dsv3_op_attention_backward_f32(dq[f], dk[f], dvv[f], go, P[f], q, k, v, B, T, nh, dqk, dv, scale, ws);
            } else {
                dsv3_op_attention_forward(o[f], P[f], q, k, v, B, T, nh, dqk, dv, scale);
                dsv3_op_attention_backward(dq[f], dk[f], dvv[f], go, P[f], q, k, v, B, T, nh, dqk, dv, scale);
            }
        }
        struct {
            const char *name;
            double *a, *b;
            int64_t len;
        } t[] = {{"o", o[0], o[1], n * nh * dv},   {"P", P[0], P[1], B * nh * T * T},
                 {"dq", dq[0], dq[1], n * nh * dqk}, {"dk", dk[0], dk[1], n * nh * dqk},
                 {"dv", dvv[0], dvv[1], n * nh * dv}};
        int bad = 0;
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            double mx = 0.0, err = 0.0;
            for (int64_t e = 0; e < t[i].len; e++) {
                mx = fmax(mx, fabs(t[i].a[e]));
                err = fmax(err, fabs(t[i].a[e] - t[i].b[e]));
            }
            if (!(err <= 2e-5 * mx + 1e-30)) {
                printf("  attention B %lld T %lld nh %lld dqk %lld dv %lld: %s max error %.3g of max %.3g\n",
                       (long long)B, (long long)T, (long long)nh, (long long)dqk, (long long)dv,
                       t[i].name, err, mx);
                bad = 1;
            }
        }
        for (int f = 0; f < 2; f++) free(o[f]), free(P[f]), free(dq[f]), free(dk[f]), free(dvv[f]);
        free(q), free(k), free(v), free(go), free(ws);
        if (bad) return 1;
    }
    return 0;
}

/* The float32 SwiGLU against the double one, with a tail that is not a multiple of 8 and
 * gradients added onto random values: within 2e-6 relative (float rounding of the inputs and
 * of e^x, ~5e-7 measured). */
static int test_swiglu_f32_against_double(void) {
    const int64_t n = 1003;
    double *a = xalloc(n, 8), *b = xalloc(n, 8), *dh = xalloc(n, 8), *h[2], *da[2], *db[2];
    for (int64_t i = 0; i < n; i++) a[i] = 8 * urand(), b[i] = 2 * urand(), dh[i] = urand();
    for (int k = 0; k < 2; k++) {
        h[k] = xalloc(n, 8), da[k] = xalloc(n, 8), db[k] = xalloc(n, 8);
        for (int64_t i = 0; i < n; i++) da[k][i] = db[k][i] = (double)(i % 7) - 3.0;
    }
    dsv3_op_swiglu_forward(h[0], a, b, n);
    dsv3_op_swiglu_backward(da[0], db[0], dh, a, b, n);
    dsv3_op_swiglu_forward_f32(h[1], a, b, n);
    dsv3_op_swiglu_backward_f32(da[1], db[1], dh, a, b, n);
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e[3] = {fabs(h[1][i] - h[0][i]) / fmax(1.0, fabs(h[0][i])),
                             fabs(da[1][i] - da[0][i]) / fmax(1.0, fabs(da[0][i])),
                             fabs(db[1][i] - db[0][i]) / fmax(1.0, fabs(db[0][i]))};
        for (int k = 0; k < 3; k++) worst = fmax(worst, e[k]);
    }
    printf("  swiglu float32 vs double: worst %.3g\n", worst);
    free(a), free(b), free(dh);
    for (int k = 0; k < 2; k++) free(h[k]), free(da[k]), free(db[k]);
    CHECK(worst < 2e-6, "float32 SwiGLU too far from double: %.3g", worst);
    return 0;
}

static const dsv3_test tests[] = {
    {"swiglu_f32_against_double", test_swiglu_f32_against_double},
    {"attention_f32_against_double", test_attention_f32_against_double},
    {"gemm_modes_and_views", test_gemm_modes_and_views},
    {"gemm_large_products_in_blocks", test_gemm_large_products_in_blocks},
    {"linear_f32_against_exact", test_linear_f32_against_exact},
    {"linear_f32_null_outputs_and_repeatable", test_linear_f32_null_outputs_and_repeatable},
};

int main(int argc, char **argv) {
    dsv3_test_fresh_seed();
    return DSV3_RUN_TESTS(tests, argc, argv);
}
