/* pyx.h — what the Python module's files share: the model object, errors, the interrupt
 * guard, token arguments and numpy arrays.
 *
 * The module `dsv3` (python/dsv3module.c lists its whole surface) is a front end over the C
 * library, like the Lua session: python/py_model.c binds models, tokens, logits, generation and
 * the router bias, python/py_probes.c the probes. This header owns what every binding needs:
 * turning a dsv3_status into a Python exception with the library's message (never reworded),
 * running a computation with the GIL released under the model's lock while Ctrl-C sets the
 * cancel flag the C API watches, reading `text | ids` arguments, and making numpy arrays that
 * own C memory. It does not own the library's numbers: every value comes from model/ or probes/.
 * Thread rules: functions taking PyObjects need the GIL; dsv3_py_run releases it around its
 * work function, which must not touch Python objects.
 */
#ifndef DSV3_PY_PYX_H
#define DSV3_PY_PYX_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <stdint.h>

/* numpy's C API table lives in pyx.c (which defines DSV3_PY_IMPORT_ARRAY and fills it in
 * dsv3_py_init); the other files see it through this symbol. */
#define PY_ARRAY_UNIQUE_SYMBOL dsv3_py_ARRAY_API
#ifndef DSV3_PY_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include "model/base/status.h"
#include "model/run/model.h"
#include "model/text/tokenizer.h"

/* A loaded model: dsv3.Model. */
typedef struct {
    PyObject_HEAD
    dsv3_model *m;          /* NULL once closed */
    dsv3_tokenizer *tok;    /* NULL when the directory has no tokenizer.json */
    PyThread_type_lock lock;/* held by the one call computing with m (forwards read the router
                               bias, edits write it; close waits for it) */
    unsigned long owner;    /* the thread whose call holds lock (0: none): a stream callback
                               of that call may not call the model again (it would wait on
                               itself) */
    uint64_t seed;          /* seed of the next sampled generate() without seed=; advanced by
                               each such call, as the Lua session's seed() */
    PyObject *weakrefs;     /* weak references (weakref.ref(m)) */
    PyObject **bias_views;  /* [num_hidden_layers + 1]: the float32 [E] array m.bias(li) hands out
                               for layer li (NULL until asked). Its memory is its own; dsv3_py_run
                               pushes its values into the model (dsv3_model_set_bias) before every
                               call and copies the model's bias back into it after, so the array
                               is a writable view of the router bias. Detached (made read-only)
                               when the model is closed. */
    int64_t n_bias_views;   /* non-NULL entries of bias_views */
    struct dsv3_trainer *trainer; /* m.train()'s trainer, kept between calls (NULL: none) */
    struct dsv3_grpo *grpo;       /* m.grpo()'s run, kept between calls (NULL: none) */
    int64_t grpo_group, grpo_batch, grpo_max_tokens, grpo_max_prompt, grpo_steps; /* its shape
                                     and steps done over all calls */
} dsv3_py_model;

/* Raises the Python exception for st with err's message: DSV3_EINVAL ValueError, DSV3_EIO
 * OSError, DSV3_ENOMEM MemoryError, DSV3_EINTR KeyboardInterrupt, anything else dsv3.Error
 * (a RuntimeError). Returns NULL, for `return dsv3_py_error(...)`. */
PyObject *dsv3_py_error(dsv3_status st, const dsv3_err *err);

/* dsv3.Error, created by dsv3_py_init. */
extern PyObject *dsv3_py_Error;

/* Module init's share: imports numpy's C API and creates dsv3.Error. 0, or -1 with an
 * exception set. */
int dsv3_py_init(void);

/* The model of self; raises ValueError "model is closed" (and returns NULL) when it is. */
dsv3_model *dsv3_py_model_of(dsv3_py_model *self);

/* A computation on the model, run without the GIL: fills err on failure. cancel is non-zero
 * once Ctrl-C (SIGINT) arrived during the call. It must not touch Python objects. */
typedef dsv3_status (*dsv3_py_work)(void *ctx, dsv3_model *m, const volatile int *cancel,
                                    dsv3_err *err);

/* Runs work(ctx, ...) with the GIL released and self's lock held, SIGINT caught into the cancel
 * flag (on the thread that holds Python's handler; other threads' calls see the same flag).
 * Before work, the bias(li) views' values are pushed into the model where they differ from it
 * (ValueError, and no work, when a view holds a value that is not finite); after it, every view
 * gets the model's bias back (so a reset, bias_set or training shows in it).
 * Returns 0 on success; -1 with an exception set when the model is closed, when work failed
 * (its status and message), or when Ctrl-C came during the call (KeyboardInterrupt, even if
 * work finished: a loop of calls stops). Several calls may run at once on different models. */
int dsv3_py_run(dsv3_py_model *self, dsv3_py_work work, void *ctx);

/* The router bias of layer li as the next call will route with it: the values of the bias(li)
 * view when there is one (edits not yet pushed included), else the model's. NULL when li has no
 * router bias (no exception set). */
const float *dsv3_py_bias_current(dsv3_py_model *self, int64_t li);

/* Makes every bias(li) view read-only and forgets it (close and dealloc). */
void dsv3_py_bias_detach(dsv3_py_model *self);

/* Token ids of a `text | ids` argument: a str is tokenized (with BOS when add_bos and the
 * tokenizer config says add_bos_token; a model without tokenizer raises ValueError), anything
 * else must be a 1-D sequence or array of integers in [0, vocab_size) (TypeError / ValueError
 * naming the index otherwise). Returns a malloc'd array of *n ids (free()), NULL with an
 * exception set on failure. *n may be 0 (an empty list). */
int32_t *dsv3_py_ids(dsv3_py_model *self, PyObject *obj, int add_bos, int64_t *n);

/* The model's tokenizer, or NULL with ValueError "the model has no tokenizer.json". */
dsv3_tokenizer *dsv3_py_tokenizer(dsv3_py_model *self);

/* A numpy array of dims that takes data (malloc'd, freed with the array; also freed when this
 * fails, returning NULL with an exception set). The array is writable and owns nothing else. */
PyObject *dsv3_py_array_take(void *data, int nd, const npy_intp *dims, int typenum);

/* A new zero-filled C-contiguous array, or NULL with an exception set. */
PyObject *dsv3_py_zeros(int nd, const npy_intp *dims, int typenum);

/* d[key] = v, stealing v; -1 when v is NULL or the insertion fails. */
int dsv3_py_set(PyObject *d, const char *key, PyObject *v);

/* The text token id stands for (its bytes, UTF-8-repaired with U+FFFD), a new str; "?" when
 * there is no tokenizer or no such token. */
PyObject *dsv3_py_token_text(dsv3_py_model *self, int32_t id);

/* Positions are 0-based and negative counts from the end: pos in [-T, T) → [0, T); else -1. */
int64_t dsv3_py_pos(int64_t pos, int64_t T);

#endif
