/* py_model.c — the model API of the Python module: load, close, info, backend, tokenize,
 * detokenize, logits, generate and the router bias.
 *
 * Each function mirrors the Lua function of the same name (docs/LUA.md; docs/PYTHON.md for the
 * Python forms): it reads its Python arguments, calls the C library (forwards through
 * dsv3_py_run, with the GIL released) and returns dicts, lists and numpy arrays. Positions
 * are 0-based here, as everything in Python. Nothing here prints.
 */
#define _GNU_SOURCE /* memmem */
#include "python/py_model.h"
#include "python/py_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/run/forward.h"
#include "model/run/generate.h"
#include "model/run/mtp.h"
#include "model/text/detok.h"

/* ---------------------------------------------------------------- models --------------- */

/* The directory load() opens without one: $DSV3_MODEL when set, else the bundled demo model of
 * the source tree this module was built from (DSV3_DEMO_DIR, set by CMake), as Lua's load(). */
static const char *default_model_dir(void) {
    const char *env = getenv("DSV3_MODEL");
    if (env && *env) return env;
#ifdef DSV3_DEMO_DIR
    return DSV3_DEMO_DIR;
#else
    return NULL;
#endif
}

PyObject *dsv3_py_model_open(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"dir", "backend", NULL};
    PyObject *dir_obj = Py_None;
    const char *backend = "fast";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Os:load", kwlist, &dir_obj, &backend)) return NULL;
    PyObject *path = NULL;
    const char *dir;
    if (dir_obj == Py_None) {
        dir = default_model_dir();
        if (!dir) {
            PyErr_SetString(PyExc_ValueError,
                            "load: no directory given, DSV3_MODEL is unset and this build knows no demo model");
            return NULL;
        }
    } else {
        if (!PyUnicode_FSConverter(dir_obj, &path)) return NULL;
        dir = PyBytes_AS_STRING(path);
    }
    const dsv3_backend *be = dsv3_backend_by_name(backend);
    if (!be) {
        Py_XDECREF(path);
        PyErr_Format(PyExc_ValueError, "load: backend '%s' is not \"fast\", \"ref\" or \"devsim\"", backend);
        return NULL;
    }
    dsv3_model *m = NULL;
    dsv3_tokenizer *tok = NULL;
    dsv3_err err = {{0}};
    dsv3_status st;
    Py_BEGIN_ALLOW_THREADS
    st = dsv3_model_open(&m, dir, &err);
    if (!st) st = dsv3_tokenizer_open_dir(&tok, dir, &err);
    if (!st) st = dsv3_model_set_backend(m, be, &err);
    Py_END_ALLOW_THREADS
    Py_XDECREF(path);
    if (st) {
        dsv3_tokenizer_close(tok);
        dsv3_model_close(m);
        return dsv3_py_error(st, &err);
    }
    const char *w = dsv3_model_warnings(m);
    if (*w && PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "%s", w) < 0) {
        dsv3_tokenizer_close(tok);
        dsv3_model_close(m);
        return NULL;
    }
    dsv3_py_model *self = PyObject_New(dsv3_py_model, type);
    if (!self) {
        dsv3_tokenizer_close(tok);
        dsv3_model_close(m);
        return NULL;
    }
    self->m = m;
    self->tok = tok;
    self->seed = 0;
    self->owner = 0;
    self->weakrefs = NULL;
    self->n_bias_views = 0;
    self->trainer = NULL;
    self->grpo = NULL;
    self->grpo_group = self->grpo_batch = self->grpo_max_tokens = self->grpo_max_prompt = self->grpo_steps = 0;
    self->bias_views = calloc((size_t)dsv3_model_config(m)->num_hidden_layers + 1, sizeof *self->bias_views);
    self->lock = PyThread_allocate_lock();
    if (!self->lock || !self->bias_views) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

/* Frees the model now (waiting for a call computing with it on another thread). -1 with
 * RuntimeError from a stream callback of this model's own call. */
static int close_model(dsv3_py_model *self) {
    if (!self->m) return 0;
    if (self->owner == PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError, "close: the model is computing in this thread");
        return -1;
    }
    if (self->lock) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    dsv3_py_bias_detach(self);
    dsv3_py_train_free(self);
    dsv3_tokenizer_close(self->tok);
    dsv3_model_close(self->m);
    self->m = NULL;
    self->tok = NULL;
    if (self->lock) PyThread_release_lock(self->lock);
    return 0;
}

PyObject *dsv3_py_close(dsv3_py_model *self, PyObject *unused) {
    if (close_model(self) < 0) return NULL;
    Py_RETURN_NONE;
}

PyObject *dsv3_py_enter(dsv3_py_model *self, PyObject *unused) {
    if (!dsv3_py_model_of(self)) return NULL;
    Py_INCREF(self);
    return (PyObject *)self;
}

PyObject *dsv3_py_exit(dsv3_py_model *self, PyObject *args) {
    if (close_model(self) < 0) return NULL;
    Py_RETURN_FALSE;
}

void dsv3_py_model_dealloc(dsv3_py_model *self) {
    if (self->weakrefs) PyObject_ClearWeakRefs((PyObject *)self);
    /* no other reference exists, so no call holds the lock */
    dsv3_py_bias_detach(self);
    free(self->bias_views);
    dsv3_py_train_free(self);
    dsv3_tokenizer_close(self->tok);
    dsv3_model_close(self->m);
    if (self->lock) PyThread_free_lock(self->lock);
    PyObject_Free(self);
}

PyObject *dsv3_py_model_repr(dsv3_py_model *self) {
    if (!self->m) return PyUnicode_FromString("<dsv3.Model closed>");
    const dsv3_config *c = dsv3_model_config(self->m);
    dsv3_param_counts p;
    dsv3_model_param_counts(self->m, &p);
    return PyUnicode_FromFormat("<dsv3.Model %s: %d layers, %d experts (top-%d), %lld params%s%s>",
                                dsv3_model_dir(self->m), (int)c->num_hidden_layers,
                                (int)c->n_routed_experts, (int)c->num_experts_per_tok,
                                (long long)p.total, dsv3_model_has_mtp(self->m) ? ", MTP" : "",
                                self->tok ? ", tokenizer" : "");
}

PyObject *dsv3_py_closed(dsv3_py_model *self, void *unused) {
    return PyBool_FromLong(self->m == NULL);
}

/* ---------------------------------------------------------------- info, backend -------- */

static int set_int(PyObject *d, const char *k, long long v) {
    return dsv3_py_set(d, k, PyLong_FromLongLong(v));
}

static const char *backend_name(const dsv3_model *m) {
    const char *cur = dsv3_model_backend(m)->name;
    return !strcmp(cur, "cpu") ? "ref" : cur;
}

PyObject *dsv3_py_info(dsv3_py_model *self, PyObject *unused) {
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    const dsv3_config *c = dsv3_model_config(m);
    dsv3_param_counts p;
    dsv3_model_param_counts(m, &p);
    PyObject *d = PyDict_New(), *pd = PyDict_New();
    if (!d || !pd) goto fail;
    int bad = dsv3_py_set(d, "dir", PyUnicode_DecodeFSDefault(dsv3_model_dir(m)));
    bad |= set_int(d, "vocab_size", c->vocab_size);
    bad |= set_int(d, "hidden_size", c->hidden_size);
    bad |= set_int(d, "layers", c->num_hidden_layers);
    bad |= set_int(d, "dense_layers", c->first_k_dense_replace);
    bad |= set_int(d, "moe_layers", c->num_hidden_layers - c->first_k_dense_replace);
    bad |= set_int(d, "heads", c->num_attention_heads);
    bad |= set_int(d, "q_lora_rank", c->q_lora_rank);
    bad |= set_int(d, "kv_lora_rank", c->kv_lora_rank);
    bad |= set_int(d, "qk_nope_head_dim", c->qk_nope_head_dim);
    bad |= set_int(d, "qk_rope_head_dim", c->qk_rope_head_dim);
    bad |= set_int(d, "v_head_dim", c->v_head_dim);
    bad |= set_int(d, "routed_experts", c->n_routed_experts);
    bad |= set_int(d, "experts_per_token", c->num_experts_per_tok);
    bad |= set_int(d, "groups", c->n_group);
    bad |= set_int(d, "topk_group", c->topk_group);
    bad |= set_int(d, "shared_experts", c->n_shared_experts);
    bad |= set_int(d, "max_position_embeddings", c->max_position_embeddings);
    bad |= dsv3_py_set(d, "mtp", PyBool_FromLong(dsv3_model_has_mtp(m)));
    bad |= dsv3_py_set(d, "yarn", PyBool_FromLong(c->rope_yarn));
    bad |= dsv3_py_set(d, "tokenizer", PyBool_FromLong(self->tok != NULL));
    bad |= dsv3_py_set(d, "backend", PyUnicode_FromString(backend_name(m)));
    bad |= set_int(d, "file_bytes", (long long)dsv3_model_file_bytes(m));
    bad |= set_int(d, "cache_bytes_per_token",
                   4LL * c->num_hidden_layers * (c->kv_lora_rank + c->qk_rope_head_dim));
    bad |= set_int(d, "mha_cache_bytes_per_token",
                   4LL * c->num_hidden_layers * c->num_attention_heads *
                       (c->qk_nope_head_dim + c->qk_rope_head_dim + c->v_head_dim));
    bad |= set_int(pd, "embed", p.embed);
    bad |= set_int(pd, "attention", p.attention);
    bad |= set_int(pd, "dense_ffn", p.dense_ffn);
    bad |= set_int(pd, "routed_experts", p.routed_experts);
    bad |= set_int(pd, "shared_experts", p.shared_experts);
    bad |= set_int(pd, "router", p.router);
    bad |= set_int(pd, "norms", p.norms);
    bad |= set_int(pd, "lm_head", p.lm_head);
    bad |= set_int(pd, "mtp", p.mtp);
    bad |= set_int(pd, "total", p.total);
    bad |= set_int(pd, "active", p.active);
    if (bad) goto fail;
    if (PyDict_SetItemString(d, "params", pd) < 0) goto fail;
    Py_DECREF(pd);
    return d;
fail:
    Py_XDECREF(d);
    Py_XDECREF(pd);
    return NULL;
}

PyObject *dsv3_py_backend(dsv3_py_model *self, PyObject *args) {
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|z:backend", &name)) return NULL;
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    if (name) {
        const dsv3_backend *be = dsv3_backend_by_name(name);
        if (!be) {
            PyErr_Format(PyExc_ValueError, "backend: '%s' is not \"fast\", \"ref\" or \"devsim\"", name);
            return NULL;
        }
        dsv3_err err = {{0}};
        dsv3_status st;
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->lock, WAIT_LOCK);
        st = self->m ? dsv3_model_set_backend(self->m, be, &err) : DSV3_OK;
        PyThread_release_lock(self->lock);
        Py_END_ALLOW_THREADS
        if (!dsv3_py_model_of(self)) return NULL;
        if (st) return dsv3_py_error(st, &err);
    }
    return PyUnicode_FromString(backend_name(self->m));
}

/* ---------------------------------------------------------------- tokens --------------- */

static PyObject *ids_list(const int32_t *ids, int64_t n) {
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (int64_t i = 0; l && i < n; i++) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (!v) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, v);
    }
    return l;
}

PyObject *dsv3_py_tokenize(dsv3_py_model *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"text", "bos", NULL};
    const char *text;
    Py_ssize_t len;
    int bos = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s#|p:tokenize", kwlist, &text, &len, &bos)) return NULL;
    dsv3_tokenizer *tok = dsv3_py_tokenizer(self);
    if (!tok) return NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err = {{0}};
    dsv3_status st = dsv3_tokenizer_encode(tok, &ids, &n, text, (size_t)len, bos, &err);
    if (st) return dsv3_py_error(st, &err);
    PyObject *l = ids_list(ids, (int64_t)n);
    free(ids);
    return l;
}

PyObject *dsv3_py_pieces(dsv3_py_model *self, PyObject *arg) {
    dsv3_tokenizer *tok = dsv3_py_tokenizer(self);
    if (!tok) return NULL;
    int64_t n;
    int32_t *ids = dsv3_py_ids(self, arg, 1, &n);
    if (!ids) return NULL;
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (int64_t i = 0; l && i < n; i++) {
        const char *p = dsv3_tokenizer_piece(tok, ids[i]);
        PyObject *s = PyUnicode_FromString(p ? p : "?");
        if (!s) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, s);
    }
    free(ids);
    return l;
}

PyObject *dsv3_py_detokenize(dsv3_py_model *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ids", "skip_special", NULL};
    PyObject *obj;
    int skip = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p:detokenize", kwlist, &obj, &skip)) return NULL;
    dsv3_tokenizer *tok = dsv3_py_tokenizer(self);
    if (!tok) return NULL;
    if (PyUnicode_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "detokenize: expected a sequence of token ids, got str");
        return NULL;
    }
    int64_t n;
    int32_t *ids = dsv3_py_ids(self, obj, 0, &n);
    if (!ids) return NULL;
    char *text = NULL;
    size_t len = 0;
    dsv3_err err = {{0}};
    dsv3_status st = dsv3_tokenizer_decode(tok, &text, &len, ids, (size_t)n, skip, &err);
    free(ids);
    if (st) return dsv3_py_error(st, &err);
    PyObject *s = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "replace");
    free(text);
    return s;
}

/* ---------------------------------------------------------------- logits --------------- */

typedef struct {
    const int32_t *ids;
    int64_t T;
    dsv3_attn_form attn;
    float *logits; /* [T, V], the numpy array's memory */
    float *mtp;    /* [T-1, V] or NULL */
} logits_ctx;

/* As `dsv3 logits`: one forward of all T tokens from position 0 (one chunk, so the bytes are
 * the CLI's), then the MTP module over rows 0..T-2. */
static dsv3_status logits_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    logits_ctx *c = ud;
    const int64_t H = dsv3_model_config(m)->hidden_size;
    dsv3_run *run = NULL;
    dsv3_run_opts o = {.max_seq = c->T, .max_chunk = c->T, .attn = c->attn};
    float *hidden = malloc((size_t)(c->T * H) * sizeof *hidden);
    if (!hidden) return dsv3_errf(err, DSV3_ENOMEM, "logits: out of memory");
    dsv3_status st = dsv3_run_new(&run, m, &o, err);
    if (!st) {
        dsv3_run_set_cancel(run, cancel);
        st = dsv3_forward(run, c->ids, c->T, c->logits, 0, hidden, err);
    }
    if (!st && c->mtp) st = dsv3_forward_mtp(run, c->ids + 1, hidden, c->T - 1, c->mtp, 0, err);
    dsv3_run_free(run);
    free(hidden);
    return st;
}

PyObject *dsv3_py_logits(dsv3_py_model *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ids", "mtp", "attn", NULL};
    PyObject *obj;
    int want_mtp = 0;
    const char *attn = "absorbed";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$ps:logits", kwlist, &obj, &want_mtp, &attn)) return NULL;
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    const dsv3_config *cf = dsv3_model_config(m);
    if (strcmp(attn, "absorbed") && strcmp(attn, "naive")) {
        PyErr_SetString(PyExc_ValueError, "logits: option attn must be \"absorbed\" or \"naive\"");
        return NULL;
    }
    if (want_mtp && !dsv3_model_has_mtp(m)) {
        PyErr_SetString(PyExc_ValueError, "logits: the model has no MTP layer");
        return NULL;
    }
    int64_t T;
    int32_t *ids = dsv3_py_ids(self, obj, 1, &T);
    if (!ids) return NULL;
    if (T < 1 || T > cf->max_position_embeddings) {
        free(ids);
        PyErr_Format(PyExc_ValueError, "logits: %d tokens (need 1..%d)", (int)T, (int)cf->max_position_embeddings);
        return NULL;
    }
    npy_intp dims[2] = {(npy_intp)T, (npy_intp)cf->vocab_size};
    npy_intp mdims[2] = {(npy_intp)(T - 1), (npy_intp)cf->vocab_size};
    PyObject *lg = PyArray_EMPTY(2, dims, NPY_FLOAT32, 0);
    PyObject *mt = want_mtp ? PyArray_EMPTY(2, mdims, NPY_FLOAT32, 0) : NULL;
    if (!lg || (want_mtp && !mt)) goto fail;
    logits_ctx c = {.ids = ids, .T = T,
                    .attn = !strcmp(attn, "naive") ? DSV3_ATTN_NAIVE : DSV3_ATTN_ABSORBED,
                    .logits = PyArray_DATA((PyArrayObject *)lg),
                    .mtp = mt && T > 1 ? PyArray_DATA((PyArrayObject *)mt) : NULL};
    if (dsv3_py_run(self, logits_work, &c) < 0) goto fail;
    free(ids);
    if (!want_mtp) return lg;
    PyObject *pair = PyTuple_Pack(2, lg, mt);
    Py_DECREF(lg);
    Py_DECREF(mt);
    return pair;
fail:
    free(ids);
    Py_XDECREF(lg);
    Py_XDECREF(mt);
    return NULL;
}

/* ---------------------------------------------------------------- generation ----------- */

typedef struct {
    dsv3_py_model *self;
    const int32_t *ids;
    int64_t n;
    dsv3_gen_opts go;
    int64_t max_seq;
    int32_t *out;       /* [max_tokens] */
    int64_t n_out;
    dsv3_gen_stats stats;
    dsv3_status st;     /* dsv3_generate's (DSV3_EINTR kept: the tokens so far are in out) */
    dsv3_err err;
    /* stop string search over the streamed text */
    dsv3_detok detok;
    const char *stop;
    size_t stop_len;
    char *tail;
    size_t tail_len;
    /* stream: a Python callable given each piece of text; a raised exception stops the call */
    PyObject *stream;
    int stream_failed;
} gen_ctx;

/* Hands text to the stream callable (taking the GIL for it). Returns 1 to stop. */
static int gen_stream(gen_ctx *g, const char *text, size_t len) {
    if (!g->stream || g->stream_failed || !len) return g->stream_failed;
    PyGILState_STATE gs = PyGILState_Ensure();
    PyObject *r = PyObject_CallFunction(g->stream, "s#", text, (Py_ssize_t)len);
    if (!r) g->stream_failed = 1; /* the exception stays set until the call returns */
    Py_XDECREF(r);
    PyGILState_Release(gs);
    return g->stream_failed;
}

static int gen_on_token(void *ud, int32_t id) {
    gen_ctx *g = ud;
    dsv3_tokenizer *tok = g->self->tok;
    if (!tok || (!g->stop && !g->stream) || dsv3_tokenizer_is_special(tok, id)) return 0;
    size_t n = 0;
    const char *b = dsv3_tokenizer_token_bytes(tok, id, &n);
    if (!b || n > 256) return 0;
    char buf[DSV3_DETOK_OUT_MAX(256)];
    size_t k = dsv3_detok_push(&g->detok, b, n, buf);
    if (gen_stream(g, buf, k)) return 1;
    if (!g->stop) return 0;
    /* Keep the last stop_len + k bytes to find the stop string across tokens. */
    size_t keep = g->stop_len + k;
    char *nt = realloc(g->tail, g->tail_len + k + 1);
    if (!nt) return 1;
    g->tail = nt;
    memcpy(g->tail + g->tail_len, buf, k);
    g->tail_len += k;
    int hit = memmem(g->tail, g->tail_len, g->stop, g->stop_len) != NULL;
    if (g->tail_len > keep) {
        memmove(g->tail, g->tail + g->tail_len - keep, keep);
        g->tail_len = keep;
    }
    return hit;
}

static dsv3_status gen_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    gen_ctx *g = ud;
    dsv3_run *run = NULL;
    dsv3_run_opts ro = {.max_seq = g->max_seq, .max_chunk = g->n < 256 ? g->n + 1 : 256};
    g->go.cancel = cancel;
    dsv3_status st = dsv3_run_new(&run, m, &ro, err);
    if (!st) st = dsv3_generate(run, g->ids, g->n, &g->go, g->out, &g->n_out, &g->stats, err);
    dsv3_run_free(run);
    char tail[4];
    size_t tl = dsv3_detok_flush(&g->detok, tail);
    if (!st) gen_stream(g, tail, tl);
    return st;
}

static PyObject *gen_result(gen_ctx *g) {
    PyObject *d = PyDict_New(), *s = PyDict_New();
    if (!d || !s) goto fail;
    const dsv3_gen_stats *st = &g->stats;
    int bad = 0;
    if (g->self->tok) {
        char *text = NULL;
        size_t len = 0;
        dsv3_err err;
        if (dsv3_tokenizer_decode(g->self->tok, &text, &len, g->out, (size_t)g->n_out, 1, &err) == DSV3_OK)
            bad |= dsv3_py_set(d, "text", PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "replace"));
        free(text);
    }
    bad |= dsv3_py_set(d, "ids", ids_list(g->out, g->n_out));
    bad |= set_int(s, "prompt_tokens", st->prompt_tokens);
    bad |= set_int(s, "tokens", st->tokens);
    bad |= set_int(s, "forward_passes", st->forward_passes);
    bad |= set_int(s, "mtp_passes", st->mtp_passes);
    bad |= set_int(s, "drafted", st->drafted);
    bad |= set_int(s, "accepted", st->accepted);
    bad |= dsv3_py_set(s, "acceptance_rate",
                       PyFloat_FromDouble(st->drafted ? (double)st->accepted / (double)st->drafted : 0.0));
    bad |= dsv3_py_set(s, "tokens_per_second",
                       PyFloat_FromDouble(st->decode_seconds > 0 ? (double)st->tokens / st->decode_seconds : 0.0));
    bad |= dsv3_py_set(s, "prefill_seconds", PyFloat_FromDouble(st->prefill_seconds));
    bad |= dsv3_py_set(s, "decode_seconds", PyFloat_FromDouble(st->decode_seconds));
    bad |= set_int(s, "device_uploads", st->device.uploads);
    bad |= set_int(s, "device_downloads", st->device.downloads);
    bad |= set_int(s, "device_upload_bytes", st->device.upload_bytes);
    bad |= set_int(s, "device_download_bytes", st->device.download_bytes);
    bad |= dsv3_py_set(s, "device_bytes_per_token", PyFloat_FromDouble(st->device_bytes_per_token));
    if (bad || PyDict_SetItemString(d, "stats", s) < 0) goto fail;
    Py_DECREF(s);
    return d;
fail:
    Py_XDECREF(d);
    Py_XDECREF(s);
    return NULL;
}

PyObject *dsv3_py_generate(dsv3_py_model *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"prompt", "max_tokens", "temperature", "greedy", "top_k", "top_p",
                             "seed", "mtp", "stop", "chat", "system", "stream", NULL};
    PyObject *prompt, *greedy_obj = Py_None, *seed_obj = Py_None, *stream = Py_None;
    long long max_tokens = 64, top_k = 0;
    double temp = 0.7, top_p = 1.0;
    int mtp = 0, chat = 0;
    const char *stop = NULL, *system = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$LdOLdOpzpzO:generate", kwlist, &prompt,
                                     &max_tokens, &temp, &greedy_obj, &top_k, &top_p, &seed_obj,
                                     &mtp, &stop, &chat, &system, &stream))
        return NULL;
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    const dsv3_config *cf = dsv3_model_config(m);
    if (!(max_tokens >= 1 && max_tokens <= 1000000000LL))
        return PyErr_Format(PyExc_ValueError, "generate: max_tokens must be at least 1 (and at most 1e9)");
    if (!(temp >= 0 && temp <= 1e6))
        return PyErr_Format(PyExc_ValueError, "generate: temperature must be in [0, 1e6]");
    if (top_k < 0 || top_k > 1000000000LL) return PyErr_Format(PyExc_ValueError, "generate: top_k must be >= 0");
    if (!(top_p > 0 && top_p <= 1)) return PyErr_Format(PyExc_ValueError, "generate: top_p must be in (0, 1]");
    if (stream != Py_None && !PyCallable_Check(stream))
        return PyErr_Format(PyExc_TypeError, "generate: stream must be callable (it is given each piece of text)");
    if (stop && !*stop) stop = NULL;
    if ((stop || stream != Py_None) && !dsv3_py_tokenizer(self)) return NULL;
    int greedy = temp <= 0;
    if (greedy_obj != Py_None && (greedy = PyObject_IsTrue(greedy_obj)) < 0) return NULL;
    uint64_t seed = self->seed;
    if (seed_obj != Py_None) {
        unsigned long long s = PyLong_AsUnsignedLongLong(seed_obj);
        if (s == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "generate: seed must be an integer >= 0");
            return NULL;
        }
        seed = s;
    } else if (!greedy) {
        self->seed++; /* each unseeded sampled call differs from the last, as in Lua */
    }
    int64_t n = 0;
    int32_t *ids = NULL;
    if (chat) {
        dsv3_tokenizer *tok = dsv3_py_tokenizer(self);
        if (!tok) return NULL;
        if (!PyUnicode_Check(prompt)) return PyErr_Format(PyExc_TypeError, "generate: chat=True needs a str prompt");
        const char *p = PyUnicode_AsUTF8(prompt);
        if (!p) return NULL;
        dsv3_chat_msg msgs[2];
        size_t k = 0;
        if (system) msgs[k++] = (dsv3_chat_msg){"system", system};
        msgs[k++] = (dsv3_chat_msg){"user", p};
        char *text = NULL;
        size_t len = 0, nn = 0;
        dsv3_err err = {{0}};
        dsv3_status st = dsv3_tokenizer_chat(tok, &text, &len, msgs, k, 1, &err);
        if (!st) st = dsv3_tokenizer_encode(tok, &ids, &nn, text, len, 0, &err);
        free(text);
        if (st) return dsv3_py_error(st, &err);
        n = (int64_t)nn;
    } else {
        ids = dsv3_py_ids(self, prompt, 1, &n);
        if (!ids) return NULL;
    }
    if (n < 1) {
        free(ids);
        return PyErr_Format(PyExc_ValueError, "generate: empty prompt");
    }
    if (n + max_tokens + 1 > cf->max_position_embeddings) {
        free(ids);
        return PyErr_Format(PyExc_ValueError, "generate: prompt of %d tokens + max_tokens = %d exceeds max_position_embeddings %d",
                            (int)n, (int)max_tokens, (int)cf->max_position_embeddings);
    }
    gen_ctx g = {.self = self, .ids = ids, .n = n, .max_seq = n + max_tokens + 1,
                 .stop = stop, .stop_len = stop ? strlen(stop) : 0,
                 .stream = stream == Py_None ? NULL : stream};
    g.go = (dsv3_gen_opts){.max_new_tokens = max_tokens,
                           .sample = {.greedy = greedy, .temperature = (float)temp,
                                      .top_k = (int)top_k, .top_p = (float)top_p},
                           .seed = seed, .use_mtp = mtp, .eos_id = (int32_t)cf->eos_token_id,
                           .on_token = gen_on_token, .ud = &g};
    if (self->tok && dsv3_tokenizer_eos_id(self->tok) >= 0) g.go.eos_id = dsv3_tokenizer_eos_id(self->tok);
    g.out = malloc((size_t)max_tokens * sizeof *g.out);
    if (!g.out) {
        free(ids);
        return PyErr_NoMemory();
    }
    int rc = dsv3_py_run(self, gen_work, &g);
    free(ids);
    free(g.tail);
    if (g.stream_failed && rc == 0) rc = -1; /* the callable's exception is set */
    PyObject *r = rc < 0 ? NULL : gen_result(&g);
    free(g.out);
    return r;
}

/* ---------------------------------------------------------------- bias ----------------- */

/* The bias of layer li, or NULL with ValueError naming the MoE layers. */
static const float *bias_of(dsv3_model *m, long long li) {
    const float *b = dsv3_model_bias(m, li);
    if (!b) {
        const dsv3_config *c = dsv3_model_config(m);
        PyErr_Format(PyExc_ValueError, "layer %lld has no router bias (MoE layers are %d..%d%s)", li,
                     (int)c->first_k_dense_replace, (int)c->num_hidden_layers - 1,
                     dsv3_model_has_mtp(m) ? ", and the MTP block" : "");
    }
    return b;
}

/* The layer's view (python/pyx.h, bias_views): made on the first call, the same array after. */
PyObject *dsv3_py_bias(dsv3_py_model *self, PyObject *args) {
    long long li;
    if (!PyArg_ParseTuple(args, "L:bias", &li)) return NULL;
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    const float *b = bias_of(m, li);
    if (!b) return NULL;
    if (self->bias_views[li]) return Py_NewRef(self->bias_views[li]);
    npy_intp E = (npy_intp)dsv3_model_config(m)->n_routed_experts;
    PyObject *a = PyArray_EMPTY(1, &E, NPY_FLOAT32, 0);
    if (!a) return NULL;
    memcpy(PyArray_DATA((PyArrayObject *)a), b, (size_t)E * sizeof(float));
    self->bias_views[li] = Py_NewRef(a);
    self->n_bias_views++;
    return a;
}

typedef struct {
    long long li;
    const float *values;
} bias_ctx;

static dsv3_status bias_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    bias_ctx *c = ud;
    return dsv3_model_set_bias(m, c->li, c->values, err);
}

/* bias_set(layer, values) / bias_set(layer, expert, value) and bias_add with deltas. */
static PyObject *bias_edit(dsv3_py_model *self, PyObject *args, int add, const char *name) {
    long long li;
    PyObject *a1, *a2 = NULL;
    if (!PyArg_ParseTuple(args, add ? "LO|O:bias_add" : "LO|O:bias_set", &li, &a1, &a2)) return NULL;
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    if (!bias_of(m, li)) return NULL;
    const float *b = dsv3_py_bias_current(self, li); /* a view's unpushed edits included */
    const int64_t E = dsv3_model_config(m)->n_routed_experts;
    float *nb = malloc((size_t)E * sizeof *nb);
    if (!nb) return PyErr_NoMemory();
    memcpy(nb, b, (size_t)E * sizeof *nb);
    if (a2) { /* one expert */
        long long e = PyLong_AsLongLong(a1);
        double v = PyFloat_AsDouble(a2);
        if (PyErr_Occurred()) goto fail;
        if (e < 0 || e >= E) {
            PyErr_Format(PyExc_ValueError, "%s: expert %lld out of range [0, %lld)", name, e, (long long)E);
            goto fail;
        }
        if (!isfinite(v)) {
            PyErr_Format(PyExc_ValueError, "%s: value must be finite", name);
            goto fail;
        }
        nb[e] = add ? nb[e] + (float)v : (float)v;
    } else { /* the whole vector */
        PyArrayObject *v = (PyArrayObject *)PyArray_FROMANY(a1, NPY_FLOAT64, 1, 1, NPY_ARRAY_IN_ARRAY);
        if (!v) goto fail;
        if (PyArray_DIM(v, 0) != E) {
            PyErr_Format(PyExc_ValueError, "%s: %lld values given, the layer has %lld experts", name,
                         (long long)PyArray_DIM(v, 0), (long long)E);
            Py_DECREF(v);
            goto fail;
        }
        const double *x = PyArray_DATA(v);
        for (int64_t e = 0; e < E; e++) {
            if (!isfinite(x[e])) {
                PyErr_Format(PyExc_ValueError, "%s: bias value for expert %lld is not a finite number", name,
                             (long long)e);
                Py_DECREF(v);
                goto fail;
            }
            nb[e] = add ? nb[e] + (float)x[e] : (float)x[e];
        }
        Py_DECREF(v);
    }
    bias_ctx c = {.li = li, .values = nb};
    int rc = dsv3_py_run(self, bias_work, &c);
    free(nb);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
fail:
    free(nb);
    return NULL;
}

PyObject *dsv3_py_bias_set(dsv3_py_model *self, PyObject *args) {
    return bias_edit(self, args, 0, "bias_set");
}

PyObject *dsv3_py_bias_add(dsv3_py_model *self, PyObject *args) {
    return bias_edit(self, args, 1, "bias_add");
}

static dsv3_status reset_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    dsv3_model_bias_reset(m, *(const long long *)ud);
    return DSV3_OK;
}

PyObject *dsv3_py_bias_reset(dsv3_py_model *self, PyObject *args) {
    long long li = -1;
    PyObject *o = Py_None;
    if (!PyArg_ParseTuple(args, "|O:bias_reset", &o)) return NULL;
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    if (o != Py_None) {
        li = PyLong_AsLongLong(o);
        if (li == -1 && PyErr_Occurred()) return NULL;
        if (!bias_of(m, li)) return NULL;
    }
    if (dsv3_py_run(self, reset_work, &li) < 0) return NULL;
    Py_RETURN_NONE;
}
