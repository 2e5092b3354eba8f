/* safetensors.h — memory-mapped, strictly validated safetensors checkpoints.
 *
 * Owns the mapping of checkpoint files and the table of their tensors (docs/ARCHITECTURE.md,
 * "safetensors", "Checkpoint tensors"). A checkpoint is a directory with one `model.safetensors` or
 * the shards named by `model.safetensors.index.json`. Tensor bytes stay in the file mapping in
 * their stored dtype; nothing is converted here. Every error names the file and, where it applies,
 * the tensor. Thread rules: read-only after open; may be shared between threads.
 */
#ifndef DSV3_SAFETENSORS_H
#define DSV3_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dtype.h"
#include "model/base/status.h"

#define DSV3_ST_MAX_DIMS 8

/* One tensor of a mapped file. Valid while its file or checkpoint is open. */
typedef struct {
    const char *name;                /* tensor name, NUL-terminated */
    const char *file;                /* path of the file holding it (for messages) */
    dsv3_dtype dtype;                /* stored dtype */
    int ndim;                        /* 0 (scalar) .. DSV3_ST_MAX_DIMS */
    int64_t shape[DSV3_ST_MAX_DIMS]; /* dims, row-major */
    int64_t numel;                   /* product of shape (1 for a scalar) */
    size_t nbytes;                   /* numel * dtype size */
    const void *data;                /* the bytes (aligned for the dtype) */
} dsv3_st_tensor;

typedef struct dsv3_st_file dsv3_st_file;

/* Maps and validates one safetensors file: header length against the file size, JSON, known
 * dtype names, shape/size agreement, data_offsets inside the data section, no duplicate names,
 * and offsets that tile the data section without overlap or gap. On success *out owns the
 * mapping (close with dsv3_st_close). On failure *out is NULL and err names the file and
 * tensor. */
dsv3_status dsv3_st_open(dsv3_st_file **out, const char *path, dsv3_err *err);

/* Validates a safetensors image held in memory (the same checks as dsv3_st_open; `where`
 * names it in messages). The image must outlive the returned handle. Used by the fuzzer. */
dsv3_status dsv3_st_open_memory(dsv3_st_file **out, const void *bytes, size_t len,
                                const char *where, dsv3_err *err);

/* Unmaps the file. NULL is a no-op. */
void dsv3_st_close(dsv3_st_file *f);

size_t dsv3_st_count(const dsv3_st_file *f);
const dsv3_st_tensor *dsv3_st_at(const dsv3_st_file *f, size_t i);
/* The tensor called name, or NULL. */
const dsv3_st_tensor *dsv3_st_find(const dsv3_st_file *f, const char *name);

/* ---- a checkpoint directory (one file or an index of shards) ---- */

typedef struct dsv3_checkpoint dsv3_checkpoint;

/* Opens dir/model.safetensors.index.json and every shard it names, or dir/model.safetensors.
 * Every weight_map entry must be found in its shard; a shard that is listed but absent is an
 * error naming the shard. */
dsv3_status dsv3_ckpt_open(dsv3_checkpoint **out, const char *dir, dsv3_err *err);

/* Progress of a long operation: `done` of `total` units of `what` ("shards", "layers"). */
typedef void (*dsv3_progress_fn)(void *ud, const char *what, int64_t done, int64_t total);

/* dsv3_ckpt_open reporting each opened shard to fn (may be NULL). */
dsv3_status dsv3_ckpt_open_progress(dsv3_checkpoint **out, const char *dir, dsv3_progress_fn fn,
                                    void *ud, dsv3_err *err);
void dsv3_ckpt_close(dsv3_checkpoint *ck);

/* Looks a tensor up by name; NULL if absent. Marks it as used (see dsv3_ckpt_unused). */
const dsv3_st_tensor *dsv3_ckpt_find(dsv3_checkpoint *ck, const char *name);

/* Iterates all tensors of all files. */
size_t dsv3_ckpt_count(const dsv3_checkpoint *ck);
const dsv3_st_tensor *dsv3_ckpt_at(const dsv3_checkpoint *ck, size_t i);
/* 1 if tensor i has never been returned by dsv3_ckpt_find. */
int dsv3_ckpt_unused(const dsv3_checkpoint *ck, size_t i);
/* Total bytes of all mapped files. */
uint64_t dsv3_ckpt_bytes(const dsv3_checkpoint *ck);

/* Calls fn for every host range holding tensor bytes: each file's mapping, and each tensor kept
 * outside it (an aligned heap copy, or a tensor of a memory image); empty tensors are skipped.
 * The ranges do not overlap. Stops at the first nonzero return of fn and returns it (0 when
 * every range was visited). */
int dsv3_ckpt_ranges(const dsv3_checkpoint *ck, int (*fn)(void *ud, const void *p, size_t bytes),
                     void *ud);

#endif
