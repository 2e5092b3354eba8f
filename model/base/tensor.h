/* tensor.h — small dense float32 matrices [rows, cols] and the array math done on activations:
 * slicing, elementwise arithmetic with broadcasting, matmul, norms, cosine similarity, sums and
 * means over an axis, top-k and argmax per row.
 *
 * A dsv3_tensor owns its data (row-major, malloc'd, rows * cols floats); every operation writes
 * a NEW tensor into *out (never a view: slicing copies), which the caller frees with
 * dsv3_tensor_free. *out is left zeroed ({0}) when an operation fails. Shapes are >= 0; a
 * tensor with rows == 0 or cols == 0 is valid (empty) where the result is defined.
 * Indices here are 0-based; the Lua binding adds 1 (docs/LUA.md).
 * Accumulation is in double; results are rounded to float once.
 * Errors: DSV3_ESHAPE with "tensor: OP: shapes [a x b] and [c x d] ..." naming both shapes,
 * DSV3_EINVAL for a bad index or k, DSV3_ENOMEM. Thread rules: none (no shared state).
 */
#ifndef DSV3_TENSOR_H
#define DSV3_TENSOR_H

#include <stdint.h>

#include "model/base/status.h"

typedef struct {
    int64_t rows, cols;
    float *v; /* [rows * cols], row-major; owned */
} dsv3_tensor;

/* A zero-filled tensor. */
dsv3_status dsv3_tensor_new(dsv3_tensor *out, int64_t rows, int64_t cols, dsv3_err *err);
/* Frees t's data and zeroes t (safe on a zeroed tensor, and twice). */
void dsv3_tensor_free(dsv3_tensor *t);

/* Copies rows [r0, r1) and columns [c0, c1) of a (0 <= r0 <= r1 <= rows, same for columns). */
dsv3_status dsv3_tensor_slice(const dsv3_tensor *a, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                              dsv3_tensor *out, dsv3_err *err);

typedef enum { DSV3_TENSOR_ADD, DSV3_TENSOR_SUB, DSV3_TENSOR_MUL, DSV3_TENSOR_DIV } dsv3_tensor_op;

/* out = a OP b elementwise, with NumPy's broadcasting on each axis: sizes must be equal or one
 * of them 1 (so b may be a scalar [1 x 1], a row [1 x cols], a column [rows x 1] — and the
 * same for a). Division follows IEEE (x / 0 = inf or nan). The difference of two captures of
 * the same length is dsv3_tensor_binop(DSV3_TENSOR_SUB, ...). */
dsv3_status dsv3_tensor_binop(dsv3_tensor_op op, const dsv3_tensor *a, const dsv3_tensor *b,
                              dsv3_tensor *out, dsv3_err *err);

/* out [n x m] = a [n x k] times b [k x m]. */
dsv3_status dsv3_tensor_matmul(const dsv3_tensor *a, const dsv3_tensor *b, dsv3_tensor *out,
                               dsv3_err *err);

/* out [rows x 1] = the L2 norm of each row. */
dsv3_status dsv3_tensor_norms(const dsv3_tensor *a, dsv3_tensor *out, dsv3_err *err);

/* Cosine similarity of row i of a with row i of b: out [rows x 1]; b has a's shape or one row
 * (then every row of a is compared with it). A zero row gives 0. */
dsv3_status dsv3_tensor_cos_rows(const dsv3_tensor *a, const dsv3_tensor *b, dsv3_tensor *out,
                                 dsv3_err *err);
/* Cosine similarity of every row of a with every row of b: out [a.rows x b.rows]; the column
 * counts must match. A zero row gives 0. */
dsv3_status dsv3_tensor_cos_pairs(const dsv3_tensor *a, const dsv3_tensor *b, dsv3_tensor *out,
                                  dsv3_err *err);

/* Sum (mean) over an axis: axis 0 reduces the rows (out [1 x cols]), axis 1 the columns
 * (out [rows x 1]), axis -1 everything (out [1 x 1]). The mean of nothing is nan. */
dsv3_status dsv3_tensor_sum(const dsv3_tensor *a, int axis, dsv3_tensor *out, dsv3_err *err);
dsv3_status dsv3_tensor_mean(const dsv3_tensor *a, int axis, dsv3_tensor *out, dsv3_err *err);

/* The k largest values of each row, descending (ties: the lower column first; nan ranks
 * below every number): values [rows x k] and their 0-based columns idx [rows * k] (malloc'd,
 * the caller frees it). 1 <= k <= cols. */
dsv3_status dsv3_tensor_topk(const dsv3_tensor *a, int64_t k, dsv3_tensor *values, int64_t **idx,
                             dsv3_err *err);
/* The 0-based column of each row's largest value into idx[rows] (caller-sized); cols >= 1. */
dsv3_status dsv3_tensor_argmax(const dsv3_tensor *a, int64_t *idx, dsv3_err *err);

#endif
