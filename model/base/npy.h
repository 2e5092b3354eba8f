/* npy.h — write float32 arrays as NumPy .npy files (format version 1.0), atomically.
 *
 * The file is written to "<path>.tmp.<pid>" and renamed over path, so a reader never sees a
 * half-written array and an old file survives a failed write. Thread rules: none.
 */
#ifndef DSV3_NPY_H
#define DSV3_NPY_H

#include <stdint.h>

#include "model/base/status.h"

/* Writes data (row-major, little-endian float32) with the given shape (ndim 1..8). */
dsv3_status dsv3_npy_write_f32(const char *path, const float *data, int ndim,
                               const int64_t *shape, dsv3_err *err);

#endif
