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
