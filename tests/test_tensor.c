/* test_tensor.c — model/base/tensor: hand-computed values on small matrices, then random inputs
 * against straightforward double loops, then the errors (both shapes named). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/runner.h"

#include "model/base/tensor.h"

static dsv3_tensor make(int64_t r, int64_t c, const float *v) {
    dsv3_tensor t;
    dsv3_err err;
    if (dsv3_tensor_new(&t, r, c, &err)) abort();
    if (v) memcpy(t.v, v, (size_t)(r * c) * sizeof(float));
    return t;
}

static dsv3_tensor rnd(int64_t r, int64_t c) {
    dsv3_tensor t = make(r, c, NULL);
    for (int64_t i = 0; i < r * c; i++) t.v[i] = (float)(urand() * 4);
    return t;
}

static int same(const dsv3_tensor *t, int64_t r, int64_t c, const float *want, double tol) {
    if (t->rows != r || t->cols != c) {
        printf("  shape [%lld x %lld], want [%lld x %lld]\n", (long long)t->rows, (long long)t->cols,
               (long long)r, (long long)c);
        return 0;
    }
    for (int64_t i = 0; i < r * c; i++)
        if (!(fabs(t->v[i] - want[i]) <= tol * (1 + fabs(want[i])))) {
            printf("  [%lld] = %.9g, want %.9g\n", (long long)i, t->v[i], want[i]);
            return 0;
        }
    return 1;
}

static const float A[6] = {1, 2, 3, 4, 5, 6}; /* [2 x 3] */

static int test_slice_copies(void) {
    dsv3_tensor a = make(2, 3, A), s;
    dsv3_err err;
    CHECK(!dsv3_tensor_slice(&a, 0, 2, 1, 3, &s, &err), "%s", err.msg);
    CHECK(same(&s, 2, 2, (float[]){2, 3, 5, 6}, 0), "columns 1..2");
    a.v[1] = 99; /* a copy: the slice keeps its values */
    CHECK(s.v[0] == 2, "slice is a copy");
    dsv3_tensor_free(&s);
    CHECK(!dsv3_tensor_slice(&a, 1, 2, 0, 3, &s, &err), "%s", err.msg);
    CHECK(same(&s, 1, 3, (float[]){4, 5, 6}, 0), "row 1");
    dsv3_tensor_free(&s);
    CHECK(!dsv3_tensor_slice(&a, 1, 1, 0, 3, &s, &err) && s.rows == 0 && s.cols == 3, "empty slice");
    dsv3_tensor_free(&s);
    CHECK(dsv3_tensor_slice(&a, 0, 3, 0, 1, &s, &err) == DSV3_EINVAL && !s.v, "rows past the end");
    CHECK(strstr(err.msg, "[2 x 3]"), "%s", err.msg);
    CHECK(dsv3_tensor_slice(&a, 1, 0, 0, 1, &s, &err) == DSV3_EINVAL, "r1 < r0");
    dsv3_tensor_free(&a);
    dsv3_tensor_free(&a); /* twice is safe */
    return 0;
}

static int test_binop_hand_values_and_broadcasting(void) {
    dsv3_tensor a = make(2, 3, A), row = make(1, 3, (float[]){10, 20, 30}),
                col = make(2, 1, (float[]){2, 4}), sc = make(1, 1, (float[]){2}), o;
    dsv3_err err;
    CHECK(!dsv3_tensor_binop(DSV3_TENSOR_ADD, &a, &a, &o, &err), "%s", err.msg);
    CHECK(same(&o, 2, 3, (float[]){2, 4, 6, 8, 10, 12}, 0), "a + a");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_binop(DSV3_TENSOR_SUB, &a, &row, &o, &err), "%s", err.msg);
    CHECK(same(&o, 2, 3, (float[]){-9, -18, -27, -6, -15, -24}, 0), "a - row");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_binop(DSV3_TENSOR_SUB, &row, &a, &o, &err), "%s", err.msg);
    CHECK(same(&o, 2, 3, (float[]){9, 18, 27, 6, 15, 24}, 0), "row - a");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_binop(DSV3_TENSOR_MUL, &a, &col, &o, &err), "%s", err.msg);
    CHECK(same(&o, 2, 3, (float[]){2, 4, 6, 16, 20, 24}, 0), "a * col");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_binop(DSV3_TENSOR_DIV, &a, &sc, &o, &err), "%s", err.msg);
    CHECK(same(&o, 2, 3, (float[]){0.5f, 1, 1.5f, 2, 2.5f, 3}, 0), "a / 2");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_binop(DSV3_TENSOR_DIV, &sc, &a, &o, &err), "%s", err.msg);
    CHECK(same(&o, 2, 3, (float[]){2, 1, 2 / 3.0f, 0.5f, 0.4f, 2 / 6.0f}, 1e-7), "2 / a");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_binop(DSV3_TENSOR_ADD, &col, &row, &o, &err), "%s", err.msg);
    CHECK(same(&o, 2, 3, (float[]){12, 22, 32, 14, 24, 34}, 0), "col + row: outer");
    dsv3_tensor_free(&o);
    dsv3_tensor z = make(1, 1, (float[]){0});
    CHECK(!dsv3_tensor_binop(DSV3_TENSOR_DIV, &a, &z, &o, &err) && isinf(o.v[0]), "x / 0 = inf");
    dsv3_tensor_free(&o);
    /* errors name both shapes */
    dsv3_tensor b = make(3, 2, A);
    CHECK(dsv3_tensor_binop(DSV3_TENSOR_SUB, &a, &b, &o, &err) == DSV3_ESHAPE && !o.v, "[2x3] - [3x2]");
    CHECK(strstr(err.msg, "[2 x 3]") && strstr(err.msg, "[3 x 2]") && strstr(err.msg, "-"), "%s", err.msg);
    dsv3_tensor_free(&a), dsv3_tensor_free(&b), dsv3_tensor_free(&row), dsv3_tensor_free(&col);
    dsv3_tensor_free(&sc), dsv3_tensor_free(&z);
    return 0;
}

static int test_matmul_hand_values(void) {
    dsv3_tensor a = make(2, 3, A), b = make(3, 2, (float[]){1, 0, 0, 1, 1, 1}), o;
    dsv3_err err;
    CHECK(!dsv3_tensor_matmul(&a, &b, &o, &err), "%s", err.msg);
    CHECK(same(&o, 2, 2, (float[]){4, 5, 10, 11}, 0), "a @ b");
    dsv3_tensor_free(&o);
    CHECK(dsv3_tensor_matmul(&a, &a, &o, &err) == DSV3_ESHAPE, "[2x3] @ [2x3]");
    CHECK(strstr(err.msg, "matmul") && strstr(err.msg, "[2 x 3] and [2 x 3]"), "%s", err.msg);
    dsv3_tensor_free(&a), dsv3_tensor_free(&b);
    return 0;
}

static int test_norms_cos_hand_values(void) {
    dsv3_tensor a = make(3, 2, (float[]){3, 4, 0, 0, -6, -8}), o;
    dsv3_err err;
    CHECK(!dsv3_tensor_norms(&a, &o, &err), "%s", err.msg);
    CHECK(same(&o, 3, 1, (float[]){5, 0, 10}, 1e-7), "norms");
    dsv3_tensor_free(&o);
    dsv3_tensor u = make(1, 2, (float[]){1, 0});
    CHECK(!dsv3_tensor_cos_rows(&a, &u, &o, &err), "%s", err.msg);
    CHECK(same(&o, 3, 1, (float[]){0.6f, 0, -0.6f}, 1e-6), "cos with one row (zero row -> 0)");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_cos_rows(&a, &a, &o, &err), "%s", err.msg);
    CHECK(same(&o, 3, 1, (float[]){1, 0, 1}, 1e-6), "cos of a with itself");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_cos_pairs(&a, &a, &o, &err), "%s", err.msg);
    CHECK(same(&o, 3, 3, (float[]){1, 0, -1, 0, 0, 0, -1, 0, 1}, 1e-6), "pairwise");
    dsv3_tensor_free(&o);
    dsv3_tensor w = make(2, 2, (float[]){1, 1, 1, 1});
    CHECK(dsv3_tensor_cos_rows(&a, &w, &o, &err) == DSV3_ESHAPE, "3 rows vs 2 rows");
    CHECK(strstr(err.msg, "[3 x 2] and [2 x 2]"), "%s", err.msg);
    dsv3_tensor b = make(1, 3, A);
    CHECK(dsv3_tensor_cos_pairs(&a, &b, &o, &err) == DSV3_ESHAPE, "widths");
    CHECK(strstr(err.msg, "[3 x 2] and [1 x 3]"), "%s", err.msg);
    dsv3_tensor_free(&a), dsv3_tensor_free(&u), dsv3_tensor_free(&w), dsv3_tensor_free(&b);
    return 0;
}

static int test_sum_mean_hand_values(void) {
    dsv3_tensor a = make(2, 3, A), o;
    dsv3_err err;
    CHECK(!dsv3_tensor_sum(&a, 0, &o, &err), "%s", err.msg);
    CHECK(same(&o, 1, 3, (float[]){5, 7, 9}, 0), "sum over rows");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_sum(&a, 1, &o, &err), "%s", err.msg);
    CHECK(same(&o, 2, 1, (float[]){6, 15}, 0), "sum over columns");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_sum(&a, -1, &o, &err), "%s", err.msg);
    CHECK(same(&o, 1, 1, (float[]){21}, 0), "sum of all");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_mean(&a, 0, &o, &err), "%s", err.msg);
    CHECK(same(&o, 1, 3, (float[]){2.5f, 3.5f, 4.5f}, 0), "mean over rows");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_mean(&a, 1, &o, &err), "%s", err.msg);
    CHECK(same(&o, 2, 1, (float[]){2, 5}, 0), "mean over columns");
    dsv3_tensor_free(&o);
    CHECK(!dsv3_tensor_mean(&a, -1, &o, &err), "%s", err.msg);
    CHECK(same(&o, 1, 1, (float[]){3.5f}, 0), "mean of all");
    dsv3_tensor_free(&o);
    CHECK(dsv3_tensor_mean(&a, 2, &o, &err) == DSV3_EINVAL && strstr(err.msg, "axis 2"), "%s", err.msg);
    dsv3_tensor e = make(0, 3, NULL);
    CHECK(!dsv3_tensor_mean(&e, 0, &o, &err) && o.cols == 3 && isnan(o.v[0]), "mean of nothing");
    dsv3_tensor_free(&o), dsv3_tensor_free(&e), dsv3_tensor_free(&a);
    return 0;
}

static int test_topk_argmax_hand_values(void) {
    dsv3_tensor a = make(2, 4, (float[]){1, 5, 5, -2, NAN, 0, -1, 3}), v;
    int64_t *idx;
    dsv3_err err;
    CHECK(!dsv3_tensor_topk(&a, 3, &v, &idx, &err), "%s", err.msg);
    CHECK(same(&v, 2, 3, (float[]){5, 5, 1, 3, 0, -1}, 0), "values");
    const int64_t want[6] = {1, 2, 0, 3, 1, 2};
    for (int i = 0; i < 6; i++) CHECK(idx[i] == want[i], "idx[%d] = %lld, want %lld", i, (long long)idx[i], (long long)want[i]);
    free(idx);
    dsv3_tensor_free(&v);
    CHECK(!dsv3_tensor_topk(&a, 4, &v, &idx, &err) && isnan(v.v[7]) && idx[7] == 0, "nan last");
    free(idx);
    dsv3_tensor_free(&v);
    int64_t am[2];
    CHECK(!dsv3_tensor_argmax(&a, am, &err), "%s", err.msg);
    CHECK(am[0] == 1 && am[1] == 3, "argmax %lld %lld", (long long)am[0], (long long)am[1]);
    CHECK(dsv3_tensor_topk(&a, 5, &v, &idx, &err) == DSV3_EINVAL && !idx && !v.v, "k > cols");
    CHECK(strstr(err.msg, "[2 x 4]"), "%s", err.msg);
    CHECK(dsv3_tensor_topk(&a, 0, &v, &idx, &err) == DSV3_EINVAL, "k = 0");
    dsv3_tensor_free(&a);
    return 0;
}

/* Random shapes and values against plain double loops. */
static int test_random_against_double_loops(void) {
    dsv3_err err;
    for (int trial = 0; trial < 40; trial++) {
        const int64_t R = 1 + (int64_t)(test_u64() % 9), C = 1 + (int64_t)(test_u64() % 40),
                      M = 1 + (int64_t)(test_u64() % 7);
        dsv3_tensor a = rnd(R, C), b = rnd(R, C), m = rnd(C, M), o;
        double *want = calloc((size_t)(R * (C > R ? C : R) * M + R * R + 8), sizeof *want);
        float *wf = calloc((size_t)(R * (C > R ? C : R) * M + R * R + 8), sizeof *wf);
        /* matmul */
        CHECK(!dsv3_tensor_matmul(&a, &m, &o, &err), "%s", err.msg);
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < M; j++) {
                double s = 0;
                for (int64_t k = 0; k < C; k++) s += (double)a.v[i * C + k] * m.v[k * M + j];
                wf[i * M + j] = (float)s;
            }
        CHECK(same(&o, R, M, wf, 1e-6), "matmul trial %d", trial);
        dsv3_tensor_free(&o);
        /* elementwise, with a broadcast row */
        CHECK(!dsv3_tensor_binop(DSV3_TENSOR_MUL, &a, &b, &o, &err), "%s", err.msg);
        for (int64_t i = 0; i < R * C; i++) wf[i] = a.v[i] * b.v[i];
        CHECK(same(&o, R, C, wf, 0), "mul trial %d", trial);
        dsv3_tensor_free(&o);
        dsv3_tensor row;
        CHECK(!dsv3_tensor_slice(&b, R - 1, R, 0, C, &row, &err), "%s", err.msg);
        CHECK(!dsv3_tensor_binop(DSV3_TENSOR_SUB, &a, &row, &o, &err), "%s", err.msg);
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) wf[i * C + j] = a.v[i * C + j] - b.v[(R - 1) * C + j];
        CHECK(same(&o, R, C, wf, 0), "sub row trial %d", trial);
        dsv3_tensor_free(&o);
        /* norms, cos */
        CHECK(!dsv3_tensor_norms(&a, &o, &err), "%s", err.msg);
        for (int64_t i = 0; i < R; i++) {
            double s = 0;
            for (int64_t j = 0; j < C; j++) s += (double)a.v[i * C + j] * a.v[i * C + j];
            wf[i] = (float)sqrt(s);
        }
        CHECK(same(&o, R, 1, wf, 1e-6), "norms trial %d", trial);
        dsv3_tensor_free(&o);
        CHECK(!dsv3_tensor_cos_pairs(&a, &b, &o, &err), "%s", err.msg);
        for (int64_t i = 0; i < R; i++)
            for (int64_t k = 0; k < R; k++) {
                double xy = 0, xx = 0, yy = 0;
                for (int64_t j = 0; j < C; j++) {
                    xy += (double)a.v[i * C + j] * b.v[k * C + j];
                    xx += (double)a.v[i * C + j] * a.v[i * C + j];
                    yy += (double)b.v[k * C + j] * b.v[k * C + j];
                }
                wf[i * R + k] = (float)(xy / sqrt(xx * yy));
            }
        CHECK(same(&o, R, R, wf, 1e-5), "cos pairs trial %d", trial);
        dsv3_tensor c2;
        CHECK(!dsv3_tensor_cos_rows(&a, &b, &c2, &err), "%s", err.msg);
        for (int64_t i = 0; i < R; i++) CHECK(fabsf(c2.v[i] - o.v[i * R + i]) < 1e-6f, "cos rows = diagonal");
        dsv3_tensor_free(&o), dsv3_tensor_free(&c2);
        /* sums and means */
        for (int axis = -1; axis <= 1; axis++) {
            CHECK(!dsv3_tensor_mean(&a, axis, &o, &err), "%s", err.msg);
            const int64_t r = axis == 1 ? R : 1, c = axis == 0 ? C : 1;
            memset(want, 0, (size_t)(r * c) * sizeof *want);
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < C; j++) want[(axis == 1 ? i : 0) + (axis == 0 ? j : 0)] += a.v[i * C + j];
            const double n = axis == 0 ? R : axis == 1 ? C : (double)R * C;
            for (int64_t k = 0; k < r * c; k++) wf[k] = (float)(want[k] / n);
            CHECK(same(&o, r, c, wf, 1e-6), "mean axis %d trial %d", axis, trial);
            dsv3_tensor_free(&o);
        }
        /* top-k (both paths) and argmax: descending, each value's column right, a prefix of a sort */
        const int64_t k = 1 + (int64_t)(test_u64() % (uint64_t)C);
        int64_t *idx, am[16];
        CHECK(!dsv3_tensor_topk(&a, k, &o, &idx, &err), "%s", err.msg);
        CHECK(!dsv3_tensor_argmax(&a, am, &err), "%s", err.msg);
        for (int64_t i = 0; i < R; i++) {
            const float *x = a.v + i * C;
            CHECK(idx[i * k] == am[i], "topk[0] = argmax");
            for (int64_t j = 0; j < C; j++) CHECK(x[j] <= x[am[i]], "argmax is the max");
            for (int64_t j = 0; j < k; j++) {
                CHECK(o.v[i * k + j] == x[idx[i * k + j]], "value at its column");
                if (j) CHECK(o.v[i * k + j] <= o.v[i * k + j - 1], "descending");
            }
            int64_t greater = 0; /* nothing left out beats the last kept */
            for (int64_t j = 0; j < C; j++) greater += x[j] > o.v[i * k + k - 1];
            CHECK(greater < k, "top-k holds the k largest");
        }
        free(idx);
        dsv3_tensor_free(&o);
        free(want), free(wf);
        dsv3_tensor_free(&a), dsv3_tensor_free(&b), dsv3_tensor_free(&m), dsv3_tensor_free(&row);
    }
    return 0;
}

static const dsv3_test tests[] = {
    {"test_slice_copies", test_slice_copies},
    {"test_binop_hand_values_and_broadcasting", test_binop_hand_values_and_broadcasting},
    {"test_matmul_hand_values", test_matmul_hand_values},
    {"test_norms_cos_hand_values", test_norms_cos_hand_values},
    {"test_sum_mean_hand_values", test_sum_mean_hand_values},
    {"test_topk_argmax_hand_values", test_topk_argmax_hand_values},
    {"test_random_against_double_loops", test_random_against_double_loops},
};

int main(int argc, char **argv) {
    dsv3_test_fresh_seed();
    return DSV3_RUN_TESTS(tests, argc, argv);
}
