/* py_train.c — training from Python: m.train / train_eval / train_save / train_reset and
 * m.grpo / grpo_save / grpo_reset over the C trainer (model/train/trainer.h) and GRPO run
 * (model/train/grpo.h), with the option names of Lua's train{} and grpo{}
 * (repl/session/lua_train.c, lua_grpo.c) and their histories as numpy arrays.
 *
 * As in Lua, the first m.train() creates a trainer that the model keeps, so later calls continue
 * it (changing only the tunable options); after every call the trained weights are synced into the
 * model, so logits, generate and the probes see them, and train_reset() puts the checkpoint's
 * back. Each optimizer step is its own dsv3_py_run (GIL released, model locked): Ctrl-C stops
 * inside a step (which is then undone by the library: nothing changed) or between steps, and
 * raises KeyboardInterrupt with the weights of the last finished step synced in and the steps so
 * far on the exception (`.result`). GRPO's reward callable runs with the GIL taken back from the
 * C step.
 */
#include "python/py_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/train/grpo.h"
#include "model/train/grpo_task.h"
#include "model/train/trainer.h"

void dsv3_py_train_free(dsv3_py_model *self) {
    dsv3_grpo_free(self->grpo);
    self->grpo = NULL;
    dsv3_trainer_free(self->trainer);
    self->trainer = NULL;
}

/* ---------------------------------------------------------------- options -------------- */

/* A float/int keyword of kw (removed from it when present), *v unchanged when absent.
 * -1 with TypeError when it is not a number. */
static int opt_num(PyObject *kw, const char *key, double *v) {
    if (!kw) return 0;
    PyObject *o = PyDict_GetItemString(kw, key);
    if (!o) return 0;
    if (PyBool_Check(o) || !PyNumber_Check(o) || PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "option %s must be a number, not %s", key, Py_TYPE(o)->tp_name);
        return -1;
    }
    double d = PyFloat_AsDouble(o);
    if (d == -1 && PyErr_Occurred()) return -1;
    *v = d;
    return PyDict_DelItemString(kw, key);
}

static int opt_int(PyObject *kw, const char *key, int64_t *v) {
    double d = (double)*v;
    if (opt_num(kw, key, &d) < 0) return -1;
    if (d != floor(d) || !(fabs(d) < 9e15)) {
        PyErr_Format(PyExc_ValueError, "option %s must be an integer", key);
        return -1;
    }
    *v = (int64_t)d;
    return 0;
}

static int opt_bool(PyObject *kw, const char *key, int *v) {
    if (!kw) return 0;
    PyObject *o = PyDict_GetItemString(kw, key);
    if (!o) return 0;
    int b = PyObject_IsTrue(o);
    if (b < 0) return -1;
    *v = b;
    return PyDict_DelItemString(kw, key);
}

/* A str keyword (borrowed UTF-8, valid while kw's value lives: the caller keeps *keep), NULL when
 * absent or None. */
static int opt_str(PyObject *kw, const char *key, const char **v, PyObject **keep) {
    *v = NULL;
    *keep = NULL;
    if (!kw) return 0;
    PyObject *o = PyDict_GetItemString(kw, key);
    if (!o) return 0;
    if (o != Py_None) {
        if (!PyUnicode_Check(o) && !PyObject_CheckBuffer(o) && !PyObject_HasAttrString(o, "__fspath__")) {
            PyErr_Format(PyExc_TypeError, "option %s must be a str, not %s", key, Py_TYPE(o)->tp_name);
            return -1;
        }
        if (!PyUnicode_FSConverter(o, keep)) return -1;
        *v = PyBytes_AS_STRING(*keep);
    }
    return PyDict_DelItemString(kw, key);
}

/* TypeError naming the first keyword left in kw (an option this function does not know). */
static int no_more(PyObject *kw, const char *fn) {
    if (!kw || PyDict_GET_SIZE(kw) == 0) return 0;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    PyDict_Next(kw, &pos, &k, &v);
    PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fn, k);
    return -1;
}

/* ---------------------------------------------------------------- train ---------------- */

/* The tunable options of Lua's read_opts (lua_train.c), applied to o. "lambda" is also
 * accepted as lambda_ (lambda is a Python keyword). */
static int train_tunables(PyObject *kw, dsv3_train_opts *o) {
    double warmup = (double)o->warmup, total = (double)o->total_steps, prec = o->precision;
    if (opt_num(kw, "lr", &o->lr) || opt_num(kw, "gamma", &o->gamma) || opt_num(kw, "alpha", &o->alpha) ||
        opt_num(kw, "lambda", &o->lambda) || opt_num(kw, "lambda_", &o->lambda) ||
        opt_num(kw, "clip", &o->clip) || opt_num(kw, "weight_decay", &o->weight_decay) ||
        opt_num(kw, "warmup", &warmup) || opt_num(kw, "total_steps", &total) ||
        opt_bool(kw, "fp8", &o->fp8) || opt_num(kw, "precision", &prec))
        return -1;
    if (prec != 32 && prec != 64) {
        PyErr_SetString(PyExc_ValueError, "train: precision must be 32 or 64");
        return -1;
    }
    o->precision = (int)prec;
    o->warmup = (int64_t)warmup;
    o->total_steps = (int64_t)total;
    if (!(o->lr >= 0 && o->lr < 10) || !(o->gamma >= 0 && o->gamma < 10) || !(o->alpha >= 0) ||
        !(o->lambda >= 0) || o->warmup < 0 || o->total_steps < 1) {
        PyErr_SetString(PyExc_ValueError, "train: lr, gamma, alpha, lambda, warmup must be >= 0 and total_steps >= 1");
        return -1;
    }
    return 0;
}

typedef struct {
    dsv3_py_model *self;
    dsv3_train_opts o;
} new_ctx;

static dsv3_status new_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    new_ctx *c = ud;
    c->o.cancel = cancel;
    return dsv3_trainer_new(&c->self->trainer, m, &c->o, err);
}

/* One step's numbers, kept in C until the call returns. */
typedef struct {
    dsv3_py_model *self;
    dsv3_trainer *t;
    dsv3_train_info info;  /* after the last step */
    int64_t L, E;          /* MoE layers (the MTP block's included), experts */
    int64_t n, cap;        /* steps recorded, room */
    dsv3_train_metrics *m; /* [cap] */
    int64_t *load;         /* [cap, L, E] */
    float *bias;           /* [cap, L, E] */
    double *lmaxvio;       /* [cap, L] */
    int64_t *layer;        /* [L] */
} train_hist;

static dsv3_status step_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    train_hist *h = ud;
    if (h->self->trainer != h->t) return dsv3_errf(err, DSV3_EINVAL, "train: the trainer was reset meanwhile");
    dsv3_trainer_opts(h->t)->cancel = cancel;
    dsv3_train_metrics met;
    dsv3_status st = dsv3_trainer_step(h->t, &met, err);
    dsv3_trainer_opts(h->t)->cancel = NULL;
    if (st) return st;
    dsv3_trainer_info(h->t, &h->info);
    const int64_t k = h->n++;
    h->m[k] = met;
    for (int64_t i = 0; i < h->L; i++) {
        dsv3_train_layer tl;
        if (dsv3_trainer_layer(h->t, i, &tl, err)) return DSV3_EINVAL;
        h->layer[i] = tl.layer;
        h->lmaxvio[k * h->L + i] = tl.maxvio;
        for (int64_t e = 0; e < h->E && e < tl.n_experts; e++) {
            h->load[(k * h->L + i) * h->E + e] = tl.load[e];
            h->bias[(k * h->L + i) * h->E + e] = tl.bias[e];
        }
    }
    return DSV3_OK;
}

static dsv3_status sync_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    train_hist *h = ud;
    if (h->self->trainer != h->t) return DSV3_OK; /* reset meanwhile: the model has its own weights */
    dsv3_trainer_info(h->t, &h->info);
    return dsv3_trainer_sync(h->t, err);
}

static PyObject *f64(const double *v, npy_intp n) {
    PyObject *a = PyArray_EMPTY(1, &n, NPY_FLOAT64, 0);
    if (a && n) memcpy(PyArray_DATA((PyArrayObject *)a), v, (size_t)n * sizeof *v);
    return a;
}

static PyObject *train_result(dsv3_py_model *self, train_hist *h, int interrupted) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    const npy_intp n = (npy_intp)h->n;
    double *col = malloc((size_t)(n ? n : 1) * sizeof *col);
    if (!col) {
        Py_DECREF(d);
        return PyErr_NoMemory();
    }
    int bad = 0;
#define COL(key, field)                                                                              \
    do {                                                                                             \
        for (npy_intp i = 0; i < n; i++) col[i] = (double)h->m[i].field;                            \
        bad |= dsv3_py_set(d, key, f64(col, n));                                                     \
    } while (0)
    COL("loss", loss);
    COL("ce", ce);
    COL("mtp", mtp);
    COL("balance", balance);
    COL("lr", lr);
    COL("grad_norm", grad_norm);
    COL("maxvio", maxvio);
    COL("seconds", seconds);
    COL("tokens_per_s", tokens_per_s);
#undef COL
    free(col);
    PyObject *step = PyArray_EMPTY(1, &n, NPY_INT64, 0), *tok = PyArray_EMPTY(1, &n, NPY_INT64, 0);
    if (step && tok)
        for (npy_intp i = 0; i < n; i++) {
            ((int64_t *)PyArray_DATA((PyArrayObject *)step))[i] = h->m[i].step;
            ((int64_t *)PyArray_DATA((PyArrayObject *)tok))[i] = h->m[i].tokens;
        }
    bad |= dsv3_py_set(d, "step", step);
    bad |= dsv3_py_set(d, "tokens", tok);
    npy_intp d3[3] = {n, (npy_intp)h->L, (npy_intp)h->E}, d2[2] = {n, (npy_intp)h->L}, dl = (npy_intp)h->L;
    PyObject *load = PyArray_EMPTY(3, d3, NPY_INT64, 0), *bias = PyArray_EMPTY(3, d3, NPY_FLOAT32, 0);
    PyObject *lmv = PyArray_EMPTY(2, d2, NPY_FLOAT64, 0), *layers = PyArray_EMPTY(1, &dl, NPY_INT64, 0);
    const size_t ne = (size_t)(n * h->L * h->E);
    if (load && ne) memcpy(PyArray_DATA((PyArrayObject *)load), h->load, ne * sizeof *h->load);
    if (bias && ne) memcpy(PyArray_DATA((PyArrayObject *)bias), h->bias, ne * sizeof *h->bias);
    if (lmv && n) memcpy(PyArray_DATA((PyArrayObject *)lmv), h->lmaxvio, (size_t)(n * h->L) * sizeof *h->lmaxvio);
    if (layers) memcpy(PyArray_DATA((PyArrayObject *)layers), h->layer, (size_t)h->L * sizeof *h->layer);
    bad |= dsv3_py_set(d, "load", load);
    bad |= dsv3_py_set(d, "bias", bias);
    bad |= dsv3_py_set(d, "layer_maxvio", lmv);
    bad |= dsv3_py_set(d, "layers", layers);
    const dsv3_train_info info = h->info;
    bad |= dsv3_py_set(d, "interrupted", PyBool_FromLong(interrupted));
    bad |= dsv3_py_set(d, "total_steps_done", PyLong_FromLongLong(info.step));
    bad |= dsv3_py_set(d, "documents", PyLong_FromLongLong(info.n_docs));
    bad |= dsv3_py_set(d, "fim_documents", PyLong_FromLongLong(info.n_fim_docs));
    if (bad) Py_CLEAR(d);
    return d;
}

static void progress_line(const dsv3_train_metrics *m) {
    PySys_WriteStdout("step %4lld  loss %.4f (ce %.4f mtp %.4f bal %.3f)  lr %.2e  |g| %.3f  maxvio %.3f  %.0f tok/s\n",
                      (long long)m->step, m->loss, m->ce, m->mtp, m->balance, m->lr, m->grad_norm,
                      m->maxvio, m->tokens_per_s);
}

/* Attaches result (stolen) to the pending exception as its `result` attribute. */
static void attach_result(PyObject *result) {
    if (!result) return;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v && PyObject_SetAttrString(v, "result", result) < 0) PyErr_Clear();
    Py_DECREF(result);
    PyErr_Restore(t, v, tb);
}

PyObject *dsv3_py_train(dsv3_py_model *self, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "train() takes keyword arguments only (steps=, data= or text=, ...)");
        return NULL;
    }
    dsv3_model *mdl = dsv3_py_model_of(self);
    if (!mdl) return NULL;
    PyObject *kw = kwargs ? PyDict_Copy(kwargs) : PyDict_New();
    if (!kw) return NULL;
    PyObject *keep = NULL, *text = NULL, *res = NULL;
    int32_t *ids = NULL;
    train_hist h = {0};
    double steps_d = 20;
    int quiet = 0;
    if (opt_num(kw, "steps", &steps_d) < 0 || opt_bool(kw, "quiet", &quiet) < 0) goto done;
    if (!(steps_d >= 1 && steps_d <= 1e7)) {
        PyErr_SetString(PyExc_ValueError, "train: steps must be in 1..1e7");
        goto done;
    }
    if (self->grpo) {
        PyErr_SetString(PyExc_ValueError, "train: the model has a GRPO run; grpo_save(dir) its weights or grpo_reset() first");
        goto done;
    }
    if (!self->trainer) {
        new_ctx c = {.self = self};
        dsv3_train_opts_init(&c.o);
        const char *data;
        if (train_tunables(kw, &c.o) < 0 || opt_str(kw, "data", &data, &keep) < 0 ||
            opt_int(kw, "seq_len", &c.o.seq_len) < 0 || opt_int(kw, "batch", &c.o.batch) < 0 ||
            opt_int(kw, "accum", &c.o.accum) < 0 || opt_num(kw, "heldout", &c.o.heldout) < 0 ||
            opt_num(kw, "fim_rate", &c.o.fim_rate) < 0)
            goto done;
        int64_t seed = (int64_t)c.o.seed;
        if (opt_int(kw, "seed", &seed) < 0) goto done;
        c.o.seed = (uint64_t)seed;
        c.o.data_path = data;
        text = PyDict_GetItemString(kw, "text");
        if (text == Py_None) text = NULL;
        Py_XINCREF(text);
        if (PyDict_GetItemString(kw, "text") && PyDict_DelItemString(kw, "text") < 0) goto done;
        if (no_more(kw, "train") < 0) goto done;
        if (!(c.o.fim_rate >= 0 && c.o.fim_rate <= 1)) {
            PyErr_SetString(PyExc_ValueError, "train: fim_rate must be in [0, 1]");
            goto done;
        }
        if (text) {
            int64_t n;
            if (!(ids = dsv3_py_ids(self, text, 0, &n))) goto done;
            c.o.tokens = ids;
            c.o.n_tokens = n;
            if (data) {
                PyErr_SetString(PyExc_ValueError, "train: give data = PATH or text = STRING, not both");
                goto done;
            }
        }
        if (c.o.tokens && c.o.fim_rate > 0) {
            PyErr_SetString(PyExc_ValueError, "train: fim_rate needs data = PATH (documents); text = \"...\" is one token stream");
            goto done;
        }
        if (!c.o.data_path && !c.o.tokens) {
            PyErr_SetString(PyExc_ValueError, "train: give data = \"file or directory of .txt\" or text = \"...\"");
            goto done;
        }
        if (dsv3_py_run(self, new_work, &c) < 0) goto done;
    } else {
        dsv3_train_opts o = *dsv3_trainer_opts(self->trainer);
        if (train_tunables(kw, &o) < 0 || no_more(kw, "train (continuing: only lr, gamma, alpha, lambda, clip, weight_decay, warmup, total_steps, fp8, precision, steps and quiet may be given; train_reset() starts anew)") < 0)
            goto done;
        dsv3_train_opts *to = dsv3_trainer_opts(self->trainer);
        to->lr = o.lr, to->gamma = o.gamma, to->alpha = o.alpha, to->lambda = o.lambda, to->clip = o.clip;
        to->weight_decay = o.weight_decay, to->warmup = o.warmup, to->total_steps = o.total_steps;
        to->fp8 = o.fp8, to->precision = o.precision;
    }
    const int64_t steps = (int64_t)steps_d;
    h.self = self;
    h.t = self->trainer;
    h.L = dsv3_trainer_moe_layers(h.t);
    h.E = dsv3_model_config(mdl)->n_routed_experts;
    h.cap = steps;
    h.m = calloc((size_t)steps, sizeof *h.m);
    h.load = calloc((size_t)(steps * h.L * h.E) + 1, sizeof *h.load);
    h.bias = calloc((size_t)(steps * h.L * h.E) + 1, sizeof *h.bias);
    h.lmaxvio = calloc((size_t)(steps * h.L) + 1, sizeof *h.lmaxvio);
    h.layer = calloc((size_t)h.L + 1, sizeof *h.layer);
    if (!h.m || !h.load || !h.bias || !h.lmaxvio || !h.layer) {
        PyErr_NoMemory();
        goto done;
    }
    int failed = 0;
    for (int64_t s = 0; s < steps; s++) {
        if (dsv3_py_run(self, step_work, &h) < 0) {
            failed = 1;
            break;
        }
        if (!quiet) progress_line(&h.m[h.n - 1]);
    }
    /* The weights of the last finished step into the model, whatever stopped the loop. */
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    const int synced = self->m ? dsv3_py_run(self, sync_work, &h) : -1;
    if (failed) {
        if (synced < 0) PyErr_Clear();
        PyErr_Restore(t, v, tb);
        if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) attach_result(train_result(self, &h, 1));
        goto done;
    }
    if (synced < 0) goto done;
    res = train_result(self, &h, 0);
done:
    free(h.m), free(h.load), free(h.bias), free(h.lmaxvio), free(h.layer);
    free(ids);
    Py_XDECREF(text);
    Py_XDECREF(keep);
    Py_DECREF(kw);
    return res;
}

static PyObject *metrics_dict(const dsv3_train_metrics *m) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    int bad = dsv3_py_set(d, "step", PyLong_FromLongLong(m->step));
    bad |= dsv3_py_set(d, "loss", PyFloat_FromDouble(m->loss));
    bad |= dsv3_py_set(d, "ce", PyFloat_FromDouble(m->ce));
    bad |= dsv3_py_set(d, "mtp", PyFloat_FromDouble(m->mtp));
    bad |= dsv3_py_set(d, "balance", PyFloat_FromDouble(m->balance));
    bad |= dsv3_py_set(d, "lr", PyFloat_FromDouble(m->lr));
    bad |= dsv3_py_set(d, "grad_norm", PyFloat_FromDouble(m->grad_norm));
    bad |= dsv3_py_set(d, "maxvio", PyFloat_FromDouble(m->maxvio));
    bad |= dsv3_py_set(d, "tokens", PyLong_FromLongLong(m->tokens));
    bad |= dsv3_py_set(d, "seconds", PyFloat_FromDouble(m->seconds));
    bad |= dsv3_py_set(d, "tokens_per_s", PyFloat_FromDouble(m->tokens_per_s));
    if (bad) Py_CLEAR(d);
    return d;
}

typedef struct {
    dsv3_py_model *self;
    dsv3_trainer *t;
    dsv3_train_metrics m;
} eval_ctx;

static dsv3_status eval_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    eval_ctx *c = ud;
    if (!(c->t = c->self->trainer)) return dsv3_errf(err, DSV3_EINVAL, "train_eval: the trainer was reset meanwhile");
    dsv3_trainer_opts(c->t)->cancel = cancel;
    dsv3_status st = dsv3_trainer_eval(c->t, &c->m, err);
    dsv3_trainer_opts(c->t)->cancel = NULL;
    return st;
}

static int need_trainer(dsv3_py_model *self, const char *fn) {
    if (!dsv3_py_model_of(self)) return -1;
    if (self->trainer) return 0;
    PyErr_Format(PyExc_ValueError, "%s: no trainer yet (run train(...) first)", fn);
    return -1;
}

PyObject *dsv3_py_train_eval(dsv3_py_model *self, PyObject *unused) {
    if (need_trainer(self, "train_eval") < 0) return NULL;
    eval_ctx c = {.self = self};
    if (dsv3_py_run(self, eval_work, &c) < 0) return NULL;
    return metrics_dict(&c.m);
}

typedef struct {
    dsv3_py_model *self;
    const char *dir;
} save_ctx;

static dsv3_status save_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    save_ctx *c = ud;
    if (c->self->grpo) return dsv3_grpo_save(c->self->grpo, c->dir, err);
    if (!c->self->trainer) return dsv3_errf(err, DSV3_EINVAL, "save: the run was reset meanwhile");
    return dsv3_trainer_save(c->self->trainer, c->dir, err);
}

static PyObject *save(dsv3_py_model *self, PyObject *arg, int grpo) {
    const char *fn = grpo ? "grpo_save" : "train_save";
    if (!dsv3_py_model_of(self)) return NULL;
    if (grpo ? !self->grpo : !self->trainer) {
        PyErr_Format(PyExc_ValueError, grpo ? "%s: no GRPO run yet (run grpo(...) first)" : "%s: no trainer yet (run train(...) first)", fn);
        return NULL;
    }
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path)) return NULL;
    save_ctx c = {.self = self, .dir = PyBytes_AS_STRING(path)};
    int rc = dsv3_py_run(self, save_work, &c);
    Py_DECREF(path);
    if (rc < 0) return NULL;
    return Py_NewRef(arg);
}

PyObject *dsv3_py_train_save(dsv3_py_model *self, PyObject *arg) {
    return save(self, arg, 0);
}

/* Under the lock: drops the trainer (kind 0) or the GRPO run (kind 1), which gives the model
 * back its weights and biases. */
typedef struct {
    dsv3_py_model *self;
    int grpo;
} reset_ctx;

static dsv3_status reset_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    reset_ctx *c = ud;
    if (c->grpo) {
        dsv3_grpo_free(c->self->grpo);
        c->self->grpo = NULL;
    } else {
        dsv3_trainer_free(c->self->trainer);
        c->self->trainer = NULL;
    }
    return DSV3_OK;
}

PyObject *dsv3_py_train_reset(dsv3_py_model *self, PyObject *unused) {
    if (!dsv3_py_model_of(self)) return NULL;
    reset_ctx c = {.self = self, .grpo = 0};
    if (self->trainer && dsv3_py_run(self, reset_work, &c) < 0) return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- grpo ----------------- */

PyObject *dsv3_py_grpo_save(dsv3_py_model *self, PyObject *arg) {
    return save(self, arg, 1);
}

PyObject *dsv3_py_grpo_reset(dsv3_py_model *self, PyObject *unused) {
    if (!dsv3_py_model_of(self)) return NULL;
    reset_ctx c = {.self = self, .grpo = 1};
    if (self->grpo && dsv3_py_run(self, reset_work, &c) < 0) return NULL;
    self->grpo_steps = 0;
    Py_RETURN_NONE;
}

/* The prompt list: texts (str), answers (str or None) and token ids (with BOS, as Lua's). */
typedef struct {
    int64_t n;
    PyObject *text, *answer; /* lists [n] */
    int32_t **ids;
    int64_t *len;
    const dsv3_grpo_task *task;
} prompt_set;

static void prompts_free(prompt_set *ps) {
    for (int64_t i = 0; ps->ids && i < ps->n; i++) free(ps->ids[i]);
    free(ps->ids);
    free(ps->len);
    Py_XDECREF(ps->text);
    Py_XDECREF(ps->answer);
}

static int prompts_read(dsv3_py_model *self, PyObject *prompts, const char *task, int64_t examples, prompt_set *ps) {
    memset(ps, 0, sizeof *ps);
    if ((prompts != NULL) == (task != NULL)) {
        PyErr_SetString(PyExc_ValueError, "grpo: give prompts = [...] or task = \"add\" | \"copy\" (one of them)");
        return -1;
    }
    if (task && !(ps->task = dsv3_grpo_task_find(task))) {
        PyErr_Format(PyExc_ValueError, "grpo: unknown task '%s' (built-in: add, copy)", task);
        return -1;
    }
    PyObject *seq = NULL;
    if (prompts) {
        if (PyUnicode_Check(prompts) || !(seq = PySequence_Fast(prompts, "grpo: prompts must be a list"))) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "grpo: prompts must be a list");
            return -1;
        }
        ps->n = PySequence_Fast_GET_SIZE(seq);
        if (ps->n < 1) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "grpo: prompts is empty");
            return -1;
        }
    } else {
        if (examples < 1 || examples > 1000000) {
            PyErr_SetString(PyExc_ValueError, "grpo: examples must be in 1..1e6");
            return -1;
        }
        ps->n = examples;
    }
    ps->text = PyList_New((Py_ssize_t)ps->n);
    ps->answer = PyList_New((Py_ssize_t)ps->n);
    ps->ids = calloc((size_t)ps->n, sizeof *ps->ids);
    ps->len = calloc((size_t)ps->n, sizeof *ps->len);
    if (!ps->text || !ps->answer || !ps->ids || !ps->len) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto fail;
    }
    for (int64_t i = 0; i < ps->n; i++) {
        PyObject *t = NULL, *a = NULL;
        if (ps->task) {
            char p[128], an[64];
            ps->task->example((uint64_t)i, p, sizeof p, an, sizeof an);
            t = PyUnicode_FromString(p);
            a = PyUnicode_FromString(an);
            if (!t || !a) {
                Py_XDECREF(t), Py_XDECREF(a);
                goto fail;
            }
        } else {
            PyObject *e = PySequence_Fast_GET_ITEM(seq, i);
            if (PyUnicode_Check(e)) {
                t = Py_NewRef(e);
                a = Py_NewRef(Py_None);
            } else if (PyDict_Check(e)) {
                t = PyDict_GetItemString(e, "prompt");
                a = PyDict_GetItemString(e, "answer");
                Py_XINCREF(t);
                a = Py_NewRef(a ? a : Py_None);
            } else if (PyTuple_Check(e) || PyList_Check(e)) {
                Py_ssize_t k = PySequence_Size(e);
                t = k >= 1 ? PySequence_GetItem(e, 0) : NULL;
                a = k >= 2 ? PySequence_GetItem(e, 1) : Py_NewRef(Py_None);
            }
            if (!t || !PyUnicode_Check(t) || !a || !(a == Py_None || PyUnicode_Check(a))) {
                Py_XDECREF(t), Py_XDECREF(a);
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_TypeError, "grpo: prompts[%lld] must be a str, a (prompt, answer) pair of "
                                 "str or {\"prompt\": str, \"answer\": str}", (long long)i);
                goto fail;
            }
        }
        PyList_SET_ITEM(ps->text, (Py_ssize_t)i, t);
        PyList_SET_ITEM(ps->answer, (Py_ssize_t)i, a);
        if (!(ps->ids[i] = dsv3_py_ids(self, t, 1, &ps->len[i]))) goto fail;
        if (ps->len[i] < 1) {
            PyErr_Format(PyExc_ValueError, "grpo: prompts[%lld] has no tokens", (long long)i);
            goto fail;
        }
    }
    Py_XDECREF(seq);
    return 0;
fail:
    Py_XDECREF(seq);
    prompts_free(ps);
    memset(ps, 0, sizeof *ps);
    return -1;
}

typedef struct {
    dsv3_py_model *self;
    prompt_set *ps;
    PyObject *reward;     /* callable(prompt, completion, answer) -> number, or NULL */
    int64_t *pick;        /* [batch] prompt indices of this step */
    const int32_t **pp;
    int64_t *pl;
    PyObject *exc_t, *exc_v, *exc_tb; /* the reward callable's exception */
    double best;
    PyObject *best_text;  /* the step's best completion */
    int64_t best_prompt;
    dsv3_grpo_metrics m;
} grpo_ctx;

/* The reward of one completion: with the GIL taken back, decode it and score it with the Python
 * callable (or the task's / the answer reward). */
static dsv3_status py_reward(void *ud, int64_t p, const int32_t *c, int64_t n, double *r, dsv3_err *err) {
    grpo_ctx *x = ud;
    char *text = NULL;
    size_t len = 0;
    dsv3_status st = dsv3_tokenizer_decode(x->self->tok, &text, &len, c, (size_t)n, 1, err);
    if (st) return st;
    PyGILState_STATE gs = PyGILState_Ensure();
    PyObject *ctext = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "replace");
    const int64_t i = x->pick[p];
    PyObject *answer = PyList_GET_ITEM(x->ps->answer, (Py_ssize_t)i);
    if (!ctext) {
        st = DSV3_ENOMEM;
    } else if (x->reward) {
        PyObject *v = PyObject_CallFunctionObjArgs(x->reward, PyList_GET_ITEM(x->ps->text, (Py_ssize_t)i), ctext,
                                                   answer, NULL);
        double d = v ? PyFloat_AsDouble(v) : -1;
        if (v && d == -1 && PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "grpo: reward function returned a %s (expected a number)", Py_TYPE(v)->tp_name);
        }
        Py_XDECREF(v);
        if (PyErr_Occurred()) {
            PyErr_Fetch(&x->exc_t, &x->exc_v, &x->exc_tb);
            st = dsv3_errf(err, DSV3_EINVAL, "grpo: reward function raised");
        } else {
            *r = d;
        }
    } else {
        const char *a = answer == Py_None ? "" : PyUnicode_AsUTF8(answer);
        if (!a) {
            PyErr_Clear();
            a = "";
        }
        *r = x->ps->task ? x->ps->task->reward(a, text) : dsv3_grpo_answer_reward(a, text);
    }
    if (!st && (!x->best_text || *r > x->best)) {
        Py_XSETREF(x->best_text, Py_NewRef(ctext));
        x->best = *r;
        x->best_prompt = i;
    }
    Py_XDECREF(ctext);
    PyGILState_Release(gs);
    free(text);
    return st;
}

static dsv3_status grpo_step_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    grpo_ctx *x = ud;
    dsv3_grpo *g = x->self->grpo;
    if (!g) return dsv3_errf(err, DSV3_EINVAL, "grpo: the run was reset meanwhile");
    dsv3_grpo_opts_of(g)->cancel = cancel;
    dsv3_status st = dsv3_grpo_step(g, x->pp, x->pl, x->self->grpo_batch, py_reward, x, &x->m, err);
    dsv3_grpo_opts_of(g)->cancel = NULL;
    return st;
}

typedef struct {
    dsv3_py_model *self;
    dsv3_grpo_opts o;
} grpo_new_ctx;

static dsv3_status grpo_new_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    grpo_new_ctx *c = ud;
    return dsv3_grpo_new(&c->self->grpo, m, &c->o, err);
}

static int grpo_tunables(PyObject *kw, dsv3_grpo_opts *o) {
    return opt_num(kw, "lr", &o->lr) || opt_num(kw, "beta", &o->beta) || opt_num(kw, "eps", &o->eps) ||
                   opt_num(kw, "temperature", &o->temperature) || opt_num(kw, "temp", &o->temperature) ||
                   opt_num(kw, "weight_decay", &o->weight_decay) || opt_num(kw, "clip", &o->clip) ||
                   opt_int(kw, "inner", &o->inner)
               ? -1
               : 0;
}

static PyObject *grpo_result(dsv3_py_model *self, const dsv3_grpo_metrics *ms, PyObject *best, PyObject *best_prompt,
                             int64_t n, const char *task, int interrupted) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    double *col = malloc((size_t)(n ? n : 1) * sizeof *col);
    if (!col) {
        Py_DECREF(d);
        return PyErr_NoMemory();
    }
    int bad = 0;
#define COL(key, field)                                                                              \
    do {                                                                                             \
        for (int64_t i = 0; i < n; i++) col[i] = (double)ms[i].field;                                \
        bad |= dsv3_py_set(d, key, f64(col, (npy_intp)n));                                           \
    } while (0)
    COL("reward", reward_mean);
    COL("reward_std", reward_std);
    COL("reward_max", reward_max);
    COL("kl", kl);
    COL("length", length);
    COL("loss", loss);
    COL("clip_frac", clip_frac);
    COL("grad_norm", grad_norm);
    COL("zero_adv", zero_adv);
    COL("seconds", seconds);
    COL("sample_seconds", sample_seconds);
    COL("tokens_per_s", tokens_per_s);
#undef COL
    free(col);
    npy_intp nn = (npy_intp)n;
    PyObject *step = PyArray_EMPTY(1, &nn, NPY_INT64, 0), *tok = PyArray_EMPTY(1, &nn, NPY_INT64, 0);
    if (step && tok)
        for (int64_t i = 0; i < n; i++) {
            ((int64_t *)PyArray_DATA((PyArrayObject *)step))[i] = ms[i].step;
            ((int64_t *)PyArray_DATA((PyArrayObject *)tok))[i] = ms[i].tokens;
        }
    bad |= dsv3_py_set(d, "step", step);
    bad |= dsv3_py_set(d, "tokens", tok);
    bad |= dsv3_py_set(d, "best", Py_NewRef(best));
    bad |= dsv3_py_set(d, "best_prompt", Py_NewRef(best_prompt));
    bad |= dsv3_py_set(d, "task", PyUnicode_FromString(task));
    bad |= dsv3_py_set(d, "group", PyLong_FromLongLong(self->grpo_group));
    bad |= dsv3_py_set(d, "interrupted", PyBool_FromLong(interrupted));
    bad |= dsv3_py_set(d, "total_steps", PyLong_FromLongLong(self->grpo_steps));
    if (bad) Py_CLEAR(d);
    return d;
}

PyObject *dsv3_py_grpo(dsv3_py_model *self, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "grpo() takes keyword arguments only (task= or prompts=, steps=, ...)");
        return NULL;
    }
    if (!dsv3_py_model_of(self)) return NULL;
    PyObject *kw = kwargs ? PyDict_Copy(kwargs) : PyDict_New();
    if (!kw) return NULL;
    PyObject *keep = NULL, *res = NULL, *best = NULL, *best_prompt = NULL, *reward = NULL, *prompts = NULL;
    prompt_set ps = {0};
    dsv3_grpo_metrics *ms = NULL;
    int64_t *pick = NULL, *pl = NULL;
    const int32_t **pp = NULL;
    double steps_d = 20;
    int quiet = 0, plot = 1;
    int64_t examples = 64, group = 8, batch = 2, max_tokens = 16, max_prompt = -1, seed = 1;
    const char *task = NULL;
    if (opt_num(kw, "steps", &steps_d) < 0 || opt_bool(kw, "quiet", &quiet) < 0 || opt_bool(kw, "plot", &plot) < 0 ||
        opt_str(kw, "task", &task, &keep) < 0 || opt_int(kw, "examples", &examples) < 0 ||
        opt_int(kw, "group", &group) < 0 || opt_int(kw, "batch", &batch) < 0 ||
        opt_int(kw, "max_tokens", &max_tokens) < 0 || opt_int(kw, "n", &max_tokens) < 0 ||
        opt_int(kw, "max_prompt", &max_prompt) < 0 || opt_int(kw, "seed", &seed) < 0)
        goto done;
    dsv3_grpo_opts o;
    dsv3_grpo_opts_init(&o);
    o.lr = 2e-3; /* Lua's grpo{} default */
    if (grpo_tunables(kw, &o) < 0) goto done;
    prompts = PyDict_GetItemString(kw, "prompts");
    reward = PyDict_GetItemString(kw, "reward");
    Py_XINCREF(prompts);
    Py_XINCREF(reward);
    if ((prompts && PyDict_DelItemString(kw, "prompts") < 0) || (reward && PyDict_DelItemString(kw, "reward") < 0))
        goto done;
    if (prompts == Py_None) Py_CLEAR(prompts);
    if (reward == Py_None) Py_CLEAR(reward);
    if (no_more(kw, "grpo") < 0) goto done;
    if (!(steps_d >= 1 && steps_d <= 1e7)) {
        PyErr_SetString(PyExc_ValueError, "grpo: steps must be in 1..1e7");
        goto done;
    }
    if (!self->tok) {
        PyErr_SetString(PyExc_ValueError, "grpo: the model has no tokenizer (prompts and rewards are text)");
        goto done;
    }
    if (self->trainer) {
        PyErr_SetString(PyExc_ValueError, "grpo: the model has a train() trainer; train_save(dir) its weights or train_reset() first");
        goto done;
    }
    if (reward && !PyCallable_Check(reward)) {
        PyErr_SetString(PyExc_TypeError, "grpo: reward must be a callable(prompt, completion, answer) -> number");
        goto done;
    }
    if (prompts_read(self, prompts, task, examples, &ps) < 0) goto done;
    int64_t longest = 1, with_answer = 0;
    for (int64_t i = 0; i < ps.n; i++) {
        longest = ps.len[i] > longest ? ps.len[i] : longest;
        with_answer += PyList_GET_ITEM(ps.answer, (Py_ssize_t)i) != Py_None;
    }
    if (!reward && with_answer < ps.n) {
        PyErr_SetString(PyExc_ValueError, "grpo: give reward = callable(prompt, completion, answer) -> number, or an answer with every prompt");
        goto done;
    }
    o.group = group;
    o.batch = batch > ps.n ? ps.n : batch;
    o.max_tokens = max_tokens;
    o.max_prompt = max_prompt < 0 ? longest : max_prompt;
    o.seed = (uint64_t)seed;
    if (longest > o.max_prompt) {
        PyErr_Format(PyExc_ValueError, "grpo: a prompt has %d tokens, above max_prompt %d", (int)longest, (int)o.max_prompt);
        goto done;
    }
    if (self->grpo && (self->grpo_group != o.group || self->grpo_batch != o.batch ||
                       self->grpo_max_tokens != o.max_tokens || self->grpo_max_prompt < longest)) {
        PyErr_Format(PyExc_ValueError, "grpo: the model's GRPO run has group %d, batch %d, max_tokens %d and prompts up to "
                     "%d tokens; call grpo_reset() to start another", (int)self->grpo_group, (int)self->grpo_batch,
                     (int)self->grpo_max_tokens, (int)self->grpo_max_prompt);
        goto done;
    }
    if (!self->grpo) {
        grpo_new_ctx c = {.self = self, .o = o};
        if (dsv3_py_run(self, grpo_new_work, &c) < 0) goto done;
        self->grpo_group = o.group;
        self->grpo_batch = o.batch;
        self->grpo_max_tokens = o.max_tokens;
        self->grpo_max_prompt = o.max_prompt;
        self->grpo_steps = 0;
    } else {
        dsv3_grpo_opts *eo = dsv3_grpo_opts_of(self->grpo);
        eo->lr = o.lr, eo->beta = o.beta, eo->eps = o.eps, eo->temperature = o.temperature;
        eo->weight_decay = o.weight_decay, eo->clip = o.clip, eo->inner = o.inner;
    }
    const int64_t steps = (int64_t)steps_d, B = self->grpo_batch;
    ms = calloc((size_t)steps, sizeof *ms);
    pick = calloc((size_t)B, sizeof *pick);
    pl = calloc((size_t)B, sizeof *pl);
    pp = calloc((size_t)B, sizeof *pp);
    best = PyList_New(0);
    best_prompt = PyList_New(0);
    if (!ms || !pick || !pl || !pp || !best || !best_prompt) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    int64_t done_steps = 0;
    int failed = 0;
    for (; done_steps < steps; done_steps++) {
        for (int64_t k = 0; k < B; k++) {
            pick[k] = (self->grpo_steps * B + k) % ps.n;
            pp[k] = ps.ids[pick[k]];
            pl[k] = ps.len[pick[k]];
        }
        grpo_ctx x = {.self = self, .ps = &ps, .reward = reward, .pick = pick, .pp = pp, .pl = pl};
        int rc = dsv3_py_run(self, grpo_step_work, &x);
        if (x.exc_t) { /* the reward callable's own exception, not the library's summary */
            PyErr_Clear();
            PyErr_Restore(x.exc_t, x.exc_v, x.exc_tb);
            rc = -1;
        }
        if (rc < 0) {
            Py_XDECREF(x.best_text);
            failed = 1;
            break;
        }
        self->grpo_steps++;
        ms[done_steps] = x.m;
        int bad = PyList_Append(best, x.best_text ? x.best_text : Py_None) < 0 ||
                  PyList_Append(best_prompt, x.best_text ? PyList_GET_ITEM(ps.text, (Py_ssize_t)x.best_prompt) : Py_None) < 0;
        Py_XDECREF(x.best_text);
        if (bad) {
            failed = 1;
            break;
        }
        if (!quiet)
            PySys_WriteStdout("step %4lld  reward %.3f (std %.3f, max %.3f)  kl %.4f  len %.1f  loss %+.4f  %.0f tok/s\n",
                              (long long)x.m.step, x.m.reward_mean, x.m.reward_std, x.m.reward_max, x.m.kl, x.m.length,
                              x.m.loss, x.m.tokens_per_s);
    }
    const char *tname = ps.task ? ps.task->name : "prompts";
    if (failed) {
        if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
            attach_result(grpo_result(self, ms, best, best_prompt, done_steps, tname, 1));
        goto done;
    }
    res = grpo_result(self, ms, best, best_prompt, done_steps, tname, 0);
done:
    free(ms), free(pick), free(pl), free(pp);
    prompts_free(&ps);
    Py_XDECREF(best);
    Py_XDECREF(best_prompt);
    Py_XDECREF(prompts);
    Py_XDECREF(reward);
    Py_XDECREF(keep);
    Py_DECREF(kw);
    return res;
}
