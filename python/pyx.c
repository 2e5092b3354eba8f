/* pyx.c — the Python module's shared helpers: errors, the interrupt guard, `text | ids`
 * arguments, numpy arrays that own C memory (python/pyx.h documents each).
 */
#define DSV3_PY_IMPORT_ARRAY /* this file owns numpy's C API table (python/pyx.h) */
#include "python/pyx.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

PyObject *dsv3_py_Error;

int dsv3_py_init(void) {
    if (_import_array() < 0) return -1;
    dsv3_py_Error = PyErr_NewExceptionWithDoc("dsv3.Error",
                                              "A dsv3 library error other than a bad argument (ValueError),\n"
                                              "an I/O error (OSError) or no memory (MemoryError).",
                                              PyExc_RuntimeError, NULL);
    return dsv3_py_Error ? 0 : -1;
}

/* ---------------------------------------------------------------- errors --------------- */

PyObject *dsv3_py_error(dsv3_status st, const dsv3_err *err) {
    const char *msg = err && err->msg[0] ? err->msg : dsv3_status_name(st);
    PyObject *type = dsv3_py_Error;
    switch (st) {
    case DSV3_EINVAL: type = PyExc_ValueError; break;
    case DSV3_EIO: type = PyExc_OSError; break;
    case DSV3_ENOMEM: type = PyExc_MemoryError; break;
    case DSV3_EINTR: type = PyExc_KeyboardInterrupt; break;
    default: break;
    }
    PyErr_SetString(type, msg);
    return NULL;
}

dsv3_model *dsv3_py_model_of(dsv3_py_model *self) {
    if (!self->m) PyErr_SetString(PyExc_ValueError, "model is closed");
    return self->m;
}

dsv3_tokenizer *dsv3_py_tokenizer(dsv3_py_model *self) {
    if (!dsv3_py_model_of(self)) return NULL;
    if (!self->tok) PyErr_SetString(PyExc_ValueError, "the model has no tokenizer.json");
    return self->tok;
}

/* ---------------------------------------------------------------- Ctrl-C --------------- */

/* The front end's interrupt flag (the one mutable global docs allow a front end): set by
 * on_sigint while a call runs, read by the C library between layers and steps. depth counts
 * the calls running (changed only with the GIL held); the first installs the handler, the last
 * puts Python's back. */
static volatile int interrupted;
static int depth, installed;
static struct sigaction saved;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static void guard_enter(void) {
    if (depth++ > 0) return;
    interrupted = 0;
    installed = 0;
    struct sigaction cur;
    if (sigaction(SIGINT, NULL, &cur) != 0) return;
    /* Only Python's own handler is replaced: an ignored or default SIGINT stays as it is. */
    if (!(cur.sa_flags & SA_SIGINFO) && (cur.sa_handler == SIG_IGN || cur.sa_handler == SIG_DFL)) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, &saved) == 0) installed = 1;
}

static void guard_leave(void) {
    if (--depth > 0) return;
    if (installed) sigaction(SIGINT, &saved, NULL);
    installed = 0;
}

/* ---------------------------------------------------------------- bias views --------- */

const float *dsv3_py_bias_current(dsv3_py_model *self, int64_t li) {
    if (!self->m || !dsv3_model_bias(self->m, li)) return NULL;
    PyObject *v = self->bias_views ? self->bias_views[li] : NULL;
    return v ? PyArray_DATA((PyArrayObject *)v) : dsv3_model_bias(self->m, li);
}

void dsv3_py_bias_detach(dsv3_py_model *self) {
    if (!self->bias_views) return;
    const int64_t n = self->m ? dsv3_model_config(self->m)->num_hidden_layers + 1 : 0;
    for (int64_t li = 0; li < n; li++) {
        PyObject *v = self->bias_views[li];
        if (!v) continue;
        PyArray_CLEARFLAGS((PyArrayObject *)v, NPY_ARRAY_WRITEABLE);
        self->bias_views[li] = NULL;
        Py_DECREF(v);
    }
    self->n_bias_views = 0;
}

/* The views of one call: taken with the GIL (strong references and a snapshot of their values),
 * pushed and pulled under the model's lock without it, written back with it. */
typedef struct {
    int64_t n, E;
    int64_t *li;
    PyObject **arr;
    float *vals; /* [n, E] */
} bias_sync;

static int sync_take(dsv3_py_model *self, bias_sync *b) {
    memset(b, 0, sizeof *b);
    if (!self->n_bias_views) return 0;
    const dsv3_config *c = dsv3_model_config(self->m);
    const int64_t slots = c->num_hidden_layers + 1, E = c->n_routed_experts;
    b->E = E;
    b->li = malloc((size_t)self->n_bias_views * sizeof *b->li);
    b->arr = malloc((size_t)self->n_bias_views * sizeof *b->arr);
    b->vals = malloc((size_t)(self->n_bias_views * E) * sizeof *b->vals);
    if (!b->li || !b->arr || !b->vals) {
        free(b->li), free(b->arr), free(b->vals);
        PyErr_NoMemory();
        return -1;
    }
    for (int64_t li = 0; li < slots; li++) {
        PyObject *v = self->bias_views[li];
        if (!v) continue;
        const float *x = PyArray_DATA((PyArrayObject *)v);
        for (int64_t e = 0; e < E; e++) {
            if (!isfinite(x[e])) {
                PyErr_Format(PyExc_ValueError, "bias(%lld)[%lld] is not a finite number (the view's "
                             "values become the router bias at the next call)", (long long)li, (long long)e);
                for (int64_t k = 0; k < b->n; k++) Py_DECREF(b->arr[k]);
                free(b->li), free(b->arr), free(b->vals);
                memset(b, 0, sizeof *b);
                return -1;
            }
        }
        memcpy(b->vals + b->n * E, x, (size_t)E * sizeof(float));
        b->li[b->n] = li;
        b->arr[b->n++] = Py_NewRef(v);
    }
    return 0;
}

/* Under the lock: the views' values into the model where they differ. */
static dsv3_status sync_push(const bias_sync *b, dsv3_model *m, dsv3_err *err) {
    for (int64_t k = 0; k < b->n; k++) {
        const float *cur = dsv3_model_bias(m, b->li[k]), *x = b->vals + k * b->E;
        if (cur && memcmp(cur, x, (size_t)b->E * sizeof(float))) {
            dsv3_status st = dsv3_model_set_bias(m, b->li[k], x, err);
            if (st) return st;
        }
    }
    return DSV3_OK;
}

/* Under the lock: the model's bias after the call. */
static void sync_pull(bias_sync *b, const dsv3_model *m) {
    for (int64_t k = 0; k < b->n; k++) {
        const float *cur = dsv3_model_bias(m, b->li[k]);
        if (cur) memcpy(b->vals + k * b->E, cur, (size_t)b->E * sizeof(float));
    }
}

/* With the GIL: the pulled values into the views (unless the model was closed meanwhile, which
 * detached them), and the references dropped. */
static void sync_give(dsv3_py_model *self, bias_sync *b, int pulled) {
    for (int64_t k = 0; k < b->n; k++) {
        if (pulled && self->m && self->bias_views && self->bias_views[b->li[k]] == b->arr[k])
            memcpy(PyArray_DATA((PyArrayObject *)b->arr[k]), b->vals + k * b->E, (size_t)b->E * sizeof(float));
        Py_DECREF(b->arr[k]);
    }
    free(b->li), free(b->arr), free(b->vals);
}

/* ---------------------------------------------------------------- running -------------- */

int dsv3_py_run(dsv3_py_model *self, dsv3_py_work work, void *ctx) {
    if (!dsv3_py_model_of(self)) return -1;
    if (self->owner == PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the model is computing in this thread (a stream callback may not call it)");
        return -1;
    }
    if (PyErr_CheckSignals() < 0) return -1; /* a Ctrl-C already pending */
    bias_sync bs;
    if (sync_take(self, &bs) < 0) return -1;
    const unsigned long me = PyThread_get_thread_ident();
    dsv3_err err = {{0}};
    dsv3_status st = DSV3_OK;
    int closed = 0;
    guard_enter();
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(self->lock, WAIT_LOCK);
    self->owner = me;
    if (self->m) {
        st = sync_push(&bs, self->m, &err);
        if (!st) st = work(ctx, self->m, &interrupted, &err);
        sync_pull(&bs, self->m);
    } else {
        closed = 1; /* closed by another thread while this one waited */
    }
    self->owner = 0;
    PyThread_release_lock(self->lock);
    Py_END_ALLOW_THREADS
    const int intr = interrupted;
    guard_leave();
    sync_give(self, &bs, !closed);
    if (closed) {
        PyErr_SetString(PyExc_ValueError, "model is closed");
        return -1;
    }
    if (intr || st == DSV3_EINTR) {
        PyErr_SetNone(PyExc_KeyboardInterrupt);
        return -1;
    }
    if (st) {
        dsv3_py_error(st, &err);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- ids ------------------ */

int32_t *dsv3_py_ids(dsv3_py_model *self, PyObject *obj, int add_bos, int64_t *n) {
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    *n = 0;
    if (PyUnicode_Check(obj)) {
        dsv3_tokenizer *tok = dsv3_py_tokenizer(self);
        if (!tok) return NULL;
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(obj, &len);
        if (!text) return NULL;
        int32_t *ids = NULL;
        size_t k = 0;
        dsv3_err err = {{0}};
        dsv3_status st = dsv3_tokenizer_encode(tok, &ids, &k, text, (size_t)len, add_bos, &err);
        if (st) {
            dsv3_py_error(st, &err);
            return NULL;
        }
        if (!ids) ids = malloc(sizeof *ids); /* empty text: a valid, empty array */
        if (!ids) return (int32_t *)PyErr_NoMemory();
        *n = (int64_t)k;
        return ids;
    }
    if (PyBytes_Check(obj) || PyByteArray_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "expected str or a sequence of token ids, got bytes");
        return NULL;
    }
    if (PySequence_Check(obj) && !PyArray_Check(obj) && PySequence_Size(obj) == 0) {
        int32_t *ids = malloc(sizeof *ids);
        return ids ? ids : (int32_t *)PyErr_NoMemory();
    }
    /* Integers only: floats, bools and strings are refused, not truncated. */
    PyArrayObject *a = (PyArrayObject *)PyArray_FromAny(obj, NULL, 0, 1, NPY_ARRAY_IN_ARRAY, NULL);
    if (a && !PyArray_ISINTEGER(a)) Py_CLEAR(a);
    else if (a) Py_SETREF(a, (PyArrayObject *)PyArray_FROMANY((PyObject *)a, NPY_INT64, 0, 1, NPY_ARRAY_IN_ARRAY));
    if (!a) {
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "expected str or a 1-D sequence of integer token ids, got %s",
                         Py_TYPE(obj)->tp_name);
        }
        return NULL;
    }
    if (PyArray_NDIM(a) != 1) {
        Py_DECREF(a);
        PyErr_SetString(PyExc_TypeError, "token ids must be a 1-D sequence of integers");
        return NULL;
    }
    const int64_t k = (int64_t)PyArray_DIM(a, 0), V = dsv3_model_config(m)->vocab_size;
    const int64_t *v = PyArray_DATA(a);
    int32_t *ids = malloc((size_t)(k ? k : 1) * sizeof *ids);
    if (!ids) {
        Py_DECREF(a);
        return (int32_t *)PyErr_NoMemory();
    }
    for (int64_t i = 0; i < k; i++) {
        if (v[i] < 0 || v[i] >= V) {
            PyErr_Format(PyExc_ValueError, "token id at index %lld is %lld (expected an integer in [0, %lld))",
                         (long long)i, (long long)v[i], (long long)V);
            Py_DECREF(a);
            free(ids);
            return NULL;
        }
        ids[i] = (int32_t)v[i];
    }
    Py_DECREF(a);
    *n = k;
    return ids;
}

PyObject *dsv3_py_token_text(dsv3_py_model *self, int32_t id) {
    char *text = NULL;
    size_t len = 0;
    dsv3_err err;
    if (self->tok && dsv3_tokenizer_decode(self->tok, &text, &len, &id, 1, 0, &err) == DSV3_OK) {
        PyObject *s = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "replace");
        free(text);
        return s;
    }
    return PyUnicode_FromString("?");
}

int64_t dsv3_py_pos(int64_t pos, int64_t T) {
    if (pos < 0) pos += T;
    return pos >= 0 && pos < T ? pos : -1;
}

/* ---------------------------------------------------------------- arrays --------------- */

static void free_capsule(PyObject *cap) {
    free(PyCapsule_GetPointer(cap, "dsv3.buffer"));
}

PyObject *dsv3_py_array_take(void *data, int nd, const npy_intp *dims, int typenum) {
    if (!data) return PyErr_NoMemory();
    PyObject *cap = PyCapsule_New(data, "dsv3.buffer", free_capsule);
    if (!cap) {
        free(data);
        return NULL;
    }
    PyObject *a = PyArray_SimpleNewFromData(nd, (npy_intp *)dims, typenum, data);
    if (!a) {
        Py_DECREF(cap); /* frees data */
        return NULL;
    }
    if (PyArray_SetBaseObject((PyArrayObject *)a, cap) < 0) { /* steals cap, even on failure */
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

PyObject *dsv3_py_zeros(int nd, const npy_intp *dims, int typenum) {
    return PyArray_ZEROS(nd, (npy_intp *)dims, typenum, 0);
}

int dsv3_py_set(PyObject *d, const char *key, PyObject *v) {
    if (!v) return -1;
    int rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}
