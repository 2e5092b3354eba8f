/* tensor.c — see tensor.h. Plain loops over libc; accumulation in double. */
#include "model/base/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(t) (long long)(t)->rows, (long long)(t)->cols

dsv3_status dsv3_tensor_new(dsv3_tensor *out, int64_t rows, int64_t cols, dsv3_err *err) {
    memset(out, 0, sizeof *out);
    if (rows < 0 || cols < 0 || (cols > 0 && rows > INT64_MAX / 4 / cols))
        return dsv3_errf(err, DSV3_EINVAL, "tensor: bad shape [%lld x %lld]", (long long)rows,
                         (long long)cols);
    size_t n = (size_t)(rows * cols);
    float *v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return dsv3_errf(err, DSV3_ENOMEM, "tensor: out of memory for [%lld x %lld]", (long long)rows,
                         (long long)cols);
    out->rows = rows;
    out->cols = cols;
    out->v = v;
    return DSV3_OK;
}

void dsv3_tensor_free(dsv3_tensor *t) {
    if (!t) return;
    free(t->v);
    memset(t, 0, sizeof *t);
}

dsv3_status dsv3_tensor_slice(const dsv3_tensor *a, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                              dsv3_tensor *out, dsv3_err *err) {
    memset(out, 0, sizeof *out);
    if (r0 < 0 || r1 < r0 || r1 > a->rows || c0 < 0 || c1 < c0 || c1 > a->cols)
        return dsv3_errf(err, DSV3_EINVAL,
                         "tensor: slice: rows [%lld, %lld) columns [%lld, %lld) out of [%lld x %lld]",
                         (long long)r0, (long long)r1, (long long)c0, (long long)c1, SHAPE(a));
    dsv3_status st = dsv3_tensor_new(out, r1 - r0, c1 - c0, err);
    if (st) return st;
    for (int64_t i = r0; i < r1; i++)
        memcpy(out->v + (i - r0) * out->cols, a->v + i * a->cols + c0, (size_t)out->cols * sizeof(float));
    return DSV3_OK;
}

static const char *op_name(dsv3_tensor_op op) {
    switch (op) {
    case DSV3_TENSOR_ADD: return "+";
    case DSV3_TENSOR_SUB: return "-";
    case DSV3_TENSOR_MUL: return "*";
    case DSV3_TENSOR_DIV: return "/";
    }
    return "?";
}

dsv3_status dsv3_tensor_binop(dsv3_tensor_op op, const dsv3_tensor *a, const dsv3_tensor *b,
                              dsv3_tensor *out, dsv3_err *err) {
    memset(out, 0, sizeof *out);
    if ((unsigned)op > DSV3_TENSOR_DIV) return dsv3_errf(err, DSV3_EINVAL, "tensor: unknown operation %d", (int)op);
    const int rows_ok = a->rows == b->rows || a->rows == 1 || b->rows == 1;
    const int cols_ok = a->cols == b->cols || a->cols == 1 || b->cols == 1;
    if (!rows_ok || !cols_ok)
        return dsv3_errf(err, DSV3_ESHAPE,
                         "tensor: %s: shapes [%lld x %lld] and [%lld x %lld] do not broadcast (each "
                         "size must be equal or 1)",
                         op_name(op), SHAPE(a), SHAPE(b));
    const int64_t R = a->rows == 1 ? b->rows : a->rows, C = a->cols == 1 ? b->cols : a->cols;
    dsv3_status st = dsv3_tensor_new(out, R, C, err);
    if (st) return st;
    const int64_t ar = a->rows == 1 ? 0 : a->cols, ac = a->cols == 1 ? 0 : 1;
    const int64_t br = b->rows == 1 ? 0 : b->cols, bc = b->cols == 1 ? 0 : 1;
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++) {
            const float x = a->v[i * ar + j * ac], y = b->v[i * br + j * bc];
            float r = 0;
            switch (op) {
            case DSV3_TENSOR_ADD: r = x + y; break;
            case DSV3_TENSOR_SUB: r = x - y; break;
            case DSV3_TENSOR_MUL: r = x * y; break;
            case DSV3_TENSOR_DIV: r = x / y; break;
            }
            out->v[i * C + j] = r;
        }
    return DSV3_OK;
}

dsv3_status dsv3_tensor_matmul(const dsv3_tensor *a, const dsv3_tensor *b, dsv3_tensor *out,
                               dsv3_err *err) {
    memset(out, 0, sizeof *out);
    if (a->cols != b->rows)
        return dsv3_errf(err, DSV3_ESHAPE,
                         "tensor: matmul: shapes [%lld x %lld] and [%lld x %lld]: columns of the "
                         "first must equal rows of the second",
                         SHAPE(a), SHAPE(b));
    dsv3_status st = dsv3_tensor_new(out, a->rows, b->cols, err);
    if (st) return st;
    const int64_t K = a->cols, M = b->cols;
    double *acc = calloc(M ? (size_t)M : 1, sizeof *acc);
    if (!acc) {
        dsv3_tensor_free(out);
        return dsv3_errf(err, DSV3_ENOMEM, "tensor: matmul: out of memory");
    }
    for (int64_t i = 0; i < a->rows; i++) {
        memset(acc, 0, (size_t)M * sizeof *acc);
        for (int64_t k = 0; k < K; k++) {
            const double x = a->v[i * K + k];
            const float *brow = b->v + k * M;
            for (int64_t j = 0; j < M; j++) acc[j] += x * brow[j];
        }
        for (int64_t j = 0; j < M; j++) out->v[i * M + j] = (float)acc[j];
    }
    free(acc);
    return DSV3_OK;
}

static double dot(const float *x, const float *y, int64_t n) {
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)x[j] * y[j];
    return s;
}

dsv3_status dsv3_tensor_norms(const dsv3_tensor *a, dsv3_tensor *out, dsv3_err *err) {
    dsv3_status st = dsv3_tensor_new(out, a->rows, 1, err);
    if (st) return st;
    for (int64_t i = 0; i < a->rows; i++) {
        const float *x = a->v + i * a->cols;
        out->v[i] = (float)sqrt(dot(x, x, a->cols));
    }
    return DSV3_OK;
}

static float cosine(const float *x, const float *y, int64_t n) {
    const double nx = dot(x, x, n), ny = dot(y, y, n);
    if (nx == 0 || ny == 0) return 0;
    return (float)(dot(x, y, n) / sqrt(nx * ny));
}

dsv3_status dsv3_tensor_cos_rows(const dsv3_tensor *a, const dsv3_tensor *b, dsv3_tensor *out,
                                 dsv3_err *err) {
    memset(out, 0, sizeof *out);
    if (a->cols != b->cols || (b->rows != a->rows && b->rows != 1))
        return dsv3_errf(err, DSV3_ESHAPE,
                         "tensor: cos: shapes [%lld x %lld] and [%lld x %lld]: the second needs the "
                         "first's shape or one row of its width",
                         SHAPE(a), SHAPE(b));
    dsv3_status st = dsv3_tensor_new(out, a->rows, 1, err);
    if (st) return st;
    for (int64_t i = 0; i < a->rows; i++)
        out->v[i] = cosine(a->v + i * a->cols, b->v + (b->rows == 1 ? 0 : i) * b->cols, a->cols);
    return DSV3_OK;
}

dsv3_status dsv3_tensor_cos_pairs(const dsv3_tensor *a, const dsv3_tensor *b, dsv3_tensor *out,
                                  dsv3_err *err) {
    memset(out, 0, sizeof *out);
    if (a->cols != b->cols)
        return dsv3_errf(err, DSV3_ESHAPE,
                         "tensor: cos: shapes [%lld x %lld] and [%lld x %lld]: the widths differ",
                         SHAPE(a), SHAPE(b));
    dsv3_status st = dsv3_tensor_new(out, a->rows, b->rows, err);
    if (st) return st;
    for (int64_t i = 0; i < a->rows; i++)
        for (int64_t j = 0; j < b->rows; j++)
            out->v[i * b->rows + j] = cosine(a->v + i * a->cols, b->v + j * b->cols, a->cols);
    return DSV3_OK;
}

static dsv3_status reduce(const dsv3_tensor *a, int axis, int mean, dsv3_tensor *out, dsv3_err *err) {
    memset(out, 0, sizeof *out);
    if (axis < -1 || axis > 1)
        return dsv3_errf(err, DSV3_EINVAL, "tensor: %s: axis %d (0 rows, 1 columns, -1 all)",
                         mean ? "mean" : "sum", axis);
    const int64_t R = axis == 1 ? a->rows : 1, C = axis == 0 ? a->cols : 1;
    dsv3_status st = dsv3_tensor_new(out, R, C, err);
    if (st) return st;
    const int64_t n_out = R * C;
    double *acc = calloc(n_out > 0 ? (size_t)n_out : 1, sizeof *acc);
    if (!acc) {
        dsv3_tensor_free(out);
        return dsv3_errf(err, DSV3_ENOMEM, "tensor: out of memory");
    }
    for (int64_t i = 0; i < a->rows; i++)
        for (int64_t j = 0; j < a->cols; j++)
            acc[(axis == 1 ? i : 0) + (axis == 0 ? j : 0)] += a->v[i * a->cols + j];
    const double n = axis == 0 ? (double)a->rows : axis == 1 ? (double)a->cols : (double)a->rows * a->cols;
    for (int64_t k = 0; k < R * C; k++) out->v[k] = (float)(mean ? (n > 0 ? acc[k] / n : NAN) : acc[k]);
    free(acc);
    return DSV3_OK;
}

dsv3_status dsv3_tensor_sum(const dsv3_tensor *a, int axis, dsv3_tensor *out, dsv3_err *err) {
    return reduce(a, axis, 0, out, err);
}

dsv3_status dsv3_tensor_mean(const dsv3_tensor *a, int axis, dsv3_tensor *out, dsv3_err *err) {
    return reduce(a, axis, 1, out, err);
}

/* Does (x at column i) rank before (y at column j)? Larger first, ties by lower column, nan last. */
static int before(float x, int64_t i, float y, int64_t j) {
    const int nx = isnan(x), ny = isnan(y);
    if (nx || ny) return nx == ny ? i < j : ny;
    return x > y || (x == y && i < j);
}

/* Sorts idx[0..n) by before() on row, with tmp[n] as scratch (merge sort: stable, n log n). */
static void sort_idx(const float *row, int64_t *idx, int64_t *tmp, int64_t n) {
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t p = lo, q = mid, o = lo;
            while (p < mid && q < hi) tmp[o++] = before(row[idx[q]], idx[q], row[idx[p]], idx[p]) ? idx[q++] : idx[p++];
            while (p < mid) tmp[o++] = idx[p++];
            while (q < hi) tmp[o++] = idx[q++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *idx);
    }
}

dsv3_status dsv3_tensor_topk(const dsv3_tensor *a, int64_t k, dsv3_tensor *values, int64_t **idx,
                             dsv3_err *err) {
    memset(values, 0, sizeof *values);
    *idx = NULL;
    if (k < 1 || k > a->cols)
        return dsv3_errf(err, DSV3_EINVAL, "tensor: topk: k = %lld, expected 1..%lld (the columns of [%lld x %lld])",
                         (long long)k, (long long)a->cols, SHAPE(a));
    dsv3_status st = dsv3_tensor_new(values, a->rows, k, err);
    if (st) return st;
    int64_t *out = malloc((size_t)(a->rows * k) * sizeof *out);
    int64_t *all = malloc((size_t)a->cols * 2 * sizeof *all);
    if (!out || !all) {
        free(out);
        free(all);
        dsv3_tensor_free(values);
        return dsv3_errf(err, DSV3_ENOMEM, "tensor: topk: out of memory");
    }
    for (int64_t i = 0; i < a->rows; i++) {
        const float *row = a->v + i * a->cols;
        int64_t *sel = out + i * k;
        if (k <= 16) { /* insertion into a sorted buffer of k */
            int64_t n = 0;
            for (int64_t j = 0; j < a->cols; j++) {
                if (n == k && !before(row[j], j, row[sel[k - 1]], sel[k - 1])) continue;
                int64_t p = n < k ? n++ : k - 1;
                while (p > 0 && before(row[j], j, row[sel[p - 1]], sel[p - 1])) {
                    sel[p] = sel[p - 1];
                    p--;
                }
                sel[p] = j;
            }
        } else {
            for (int64_t j = 0; j < a->cols; j++) all[j] = j;
            sort_idx(row, all, all + a->cols, a->cols);
            memcpy(sel, all, (size_t)k * sizeof *sel);
        }
        for (int64_t j = 0; j < k; j++) values->v[i * k + j] = row[sel[j]];
    }
    free(all);
    *idx = out;
    return DSV3_OK;
}

dsv3_status dsv3_tensor_argmax(const dsv3_tensor *a, int64_t *idx, dsv3_err *err) {
    if (a->cols < 1)
        return dsv3_errf(err, DSV3_EINVAL, "tensor: argmax: no columns in [%lld x %lld]", SHAPE(a));
    for (int64_t i = 0; i < a->rows; i++) {
        const float *row = a->v + i * a->cols;
        int64_t best = 0;
        for (int64_t j = 1; j < a->cols; j++)
            if (before(row[j], j, row[best], best)) best = j;
        idx[i] = best;
    }
    return DSV3_OK;
}
