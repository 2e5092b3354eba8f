/* checkpoint.h — writing checkpoints: safetensors files, atomically.
 *
 * Owns the write side of docs/ARCHITECTURE.md, "Training checkpoint": a safetensors file from a
 * list of tensors (float32 sources converted to F32/BF16/F16 on the fly, or already-encoded bytes
 * such as FP8 weights and their scales), string metadata in __metadata__, tensors ordered by
 * element size then name so every tensor is aligned and the file is reproducible byte for byte; FP8
 * block quantization (docs/ARCHITECTURE.md, "FP8 training"); reading back a file's __metadata__;
 * and atomic file replacement (temp file in the same directory, fsync, rename, fsync of the
 * directory) so a crash leaves either the old file or the new one; and the replacement of a whole
 * checkpoint directory (dsv3_tckpt_dir_*: the new directory is written as a sibling and swapped in
 * with one atomic rename, docs/TRAINING.md, "Checkpoints"). Reading tensors stays
 * model/safetensors. Thread rules: no shared state; two processes must not save to the same
 * directory at once.
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

/* A checkpoint directory being replaced as a whole. dsv3_tckpt_dir_begin removes what killed
 * saves to the same place left behind (siblings `<base>.dsv3-new.<pid>` and
 * `<base>.dsv3-old.<pid>` whose process is gone) and creates the empty sibling directory
 * d->path (mode 0755) into which the caller writes every file of the new checkpoint.
 * dsv3_tckpt_dir_commit hard-links (or copies) into it the regular files of the old directory
 * whose names are not among the n_ours names `ours` and do not end
 * in `.tmp.<digits>` (the temp files of older dsv3 versions), fsyncs it, and puts it in place:
 * rename when dst does not exist, else one renameat2(RENAME_EXCHANGE) — on a filesystem without
 * it, two renames, between which dst is briefly absent and the old checkpoint sits at
 * `<base>.dsv3-old.<pid>`; then fsyncs the parent and removes the old directory. A kill at any
 * moment leaves dst exactly the old or the new checkpoint (plus a sibling the next begin
 * removes). dsv3_tckpt_dir_abort removes d->path (the caller's error stays the one reported).
 * Errors: DSV3_EIO naming the path and the failing call; DSV3_EINVAL when dst exists and is not
 * a directory, or holds a subdirectory, link or special file that a replacement would drop
 * (named). A symbolic link dst is followed: its target is replaced. */
typedef struct {
    char dst[3900];  /* the directory replaced (symbolic links resolved) */
    char path[4000]; /* the new directory being written: <dst>.dsv3-new.<pid> */
    int dst_exists;  /* dst existed at begin */
} dsv3_tckpt_dir;

dsv3_status dsv3_tckpt_dir_begin(dsv3_tckpt_dir *d, const char *dst, dsv3_err *err);
dsv3_status dsv3_tckpt_dir_commit(dsv3_tckpt_dir *d, const char *const *ours, size_t n_ours,
                                  dsv3_err *err);
void dsv3_tckpt_dir_abort(dsv3_tckpt_dir *d);

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
