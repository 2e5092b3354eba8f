/* checkpoint.h — writing checkpoints: safetensors files, atomically.
 *
 * Owns the write side of docs/ARCHITECTURE.md, "Training checkpoint": a safetensors file from a
 * list of tensors (float32 sources converted to F32/BF16/F16 on the fly, or already-encoded bytes
 * such as FP8 weights and their scales), string metadata in __metadata__, tensors ordered by
 * element size then name so every tensor is aligned and the file is reproducible byte for byte; FP8
 * block quantization (docs/ARCHITECTURE.md, "FP8 training"); reading back a file's __metadata__;
 * and atomic file replacement (temp file in the same directory, fsync, rename, fsync of the
 * directory) so a crash leaves either the old file or the new one. Reading tensors stays
 * model/safetensors. Thread rules: no shared state.
 */
#ifndef DSV3_TRAIN_CKPT_H
#define DSV3_TRAIN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dtype.h"
#include "model/base/status.h"

/* One tensor to write. */
typedef struct {
    const char *name;  /* tensor name */
    dsv3_dtype dtype;  /* dtype in the file */
    int ndim;          /* 1 or 2 */
    int64_t shape[2];  /* dims (shape[1] unused when ndim = 1) */
    const float *f32;  /* source values, converted to dtype (F32, BF16 or F16); or NULL */
    const void *raw;   /* already-encoded bytes of dtype when f32 is NULL */
} dsv3_tckpt_entry;

/* Writes the tensors and the metadata (meta[2*i] = key, meta[2*i+1] = value, n_meta pairs) to
 * path atomically. Entries are not modified. Errors: DSV3_EIO naming the path and the failing
 * call, DSV3_EDTYPE (f32 source with a dtype it cannot encode), DSV3_ENOMEM. On error path is
 * left as it was. */
dsv3_status dsv3_tckpt_write(const char *path, const dsv3_tckpt_entry *e, size_t n,
                             const char *const *meta, size_t n_meta, dsv3_err *err);

/* Replaces dst with a copy of src (or with text[len] for dsv3_tckpt_write_text), atomically. */
dsv3_status dsv3_tckpt_copy_file(const char *dst, const char *src, dsv3_err *err);
dsv3_status dsv3_tckpt_write_text(const char *dst, const char *text, size_t len, dsv3_err *err);

/* float32 -> IEEE half, round to nearest even, overflow to infinity, NaN kept. */
uint16_t dsv3_tckpt_f32_to_f16(float x);

/* The __metadata__ of a safetensors file, as parallel arrays of strings. */
typedef struct {
    size_t n;
    char **keys, **vals;
} dsv3_tckpt_meta;

/* Reads the header of the file at path; a file without __metadata__ gives n = 0. Errors:
 * DSV3_EIO, DSV3_EFORMAT (bad header, non-string value), DSV3_ENOMEM. Free with _fini. */
dsv3_status dsv3_tckpt_meta_read(dsv3_tckpt_meta *m, const char *path, dsv3_err *err);
void dsv3_tckpt_meta_fini(dsv3_tckpt_meta *m);
/* The value of key, or NULL. */
const char *dsv3_tckpt_meta_get(const dsv3_tckpt_meta *m, const char *key);

#endif
