/* py_probes.c — the probe API of the Python module: route, load_stats, effect, capture, lens,
 * attention (attn) and mtp_trace, each over its C probe in probes/.
 *
 * A binding reads its arguments, runs the probe through dsv3_py_run (GIL released, Ctrl-C
 * cancels) and hands back numpy arrays: a probe's own malloc'd tensors (capture, attention)
 * become arrays without a copy; records (routing, lens, MTP drafts) are laid out as arrays by
 * layer and position. Positions are 0-based; layers, experts, heads and ids are the
 * checkpoint's numbers, as in Lua.
 */
#include "python/py_probes.h"

#include <stdlib.h>
#include <string.h>

#include "model/run/forward.h"
#include "probes/attention.h"
#include "probes/capture.h"
#include "probes/effect.h"
#include "probes/lens.h"
#include "probes/mtp_trace.h"
#include "probes/routing.h"

/* ---------------------------------------------------------------- route ---------------- */

typedef struct {
    dsv3_routerec rec;
    const int32_t *ids;
    int64_t T;
} route_ctx;

static dsv3_status route_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    route_ctx *c = ud;
    return dsv3_routerec_collect(&c->rec, m, c->ids, c->T, cancel, err);
}

static PyObject *array3(int64_t a, int64_t b, int64_t c, int typenum) {
    npy_intp d[3] = {(npy_intp)a, (npy_intp)b, (npy_intp)c};
    return dsv3_py_zeros(3, d, typenum);
}

/* Lays the record out as arrays [L, T, .] over the main model's MoE layers. */
static PyObject *route_dict(dsv3_py_model *self, const dsv3_routerec *rec, const int32_t *ids,
                            int64_t T) {
    const dsv3_config *c = dsv3_model_config(self->m);
    const int64_t first = c->first_k_dense_replace, L = c->num_hidden_layers - first;
    const int64_t E = rec->E, K = rec->K, G = rec->G;
    PyObject *d = PyDict_New();
    PyObject *experts = array3(L, T, K, NPY_INT32), *weights = array3(L, T, K, NPY_FLOAT32);
    PyObject *scores = array3(L, T, E, NPY_FLOAT32), *biased = array3(L, T, E, NPY_FLOAT32);
    PyObject *groups = array3(L, T, G, NPY_BOOL), *nobias = array3(L, T, K, NPY_INT32);
    npy_intp dLT[2] = {(npy_intp)L, (npy_intp)T}, dL = (npy_intp)L, dT = (npy_intp)T;
    PyObject *changed = dsv3_py_zeros(2, dLT, NPY_BOOL), *layers = dsv3_py_zeros(1, &dL, NPY_INT64);
    PyObject *tokens = dsv3_py_zeros(1, &dT, NPY_INT32), *pieces = PyList_New((Py_ssize_t)T);
    if (!d || !experts || !weights || !scores || !biased || !groups || !nobias || !changed ||
        !layers || !tokens || !pieces)
        goto fail;
    for (int64_t l = 0; l < L; l++) ((int64_t *)PyArray_DATA((PyArrayObject *)layers))[l] = first + l;
    for (int64_t t = 0; t < T; t++) {
        ((int32_t *)PyArray_DATA((PyArrayObject *)tokens))[t] = ids[t];
        PyObject *s = dsv3_py_token_text(self, ids[t]);
        if (!s) goto fail;
        PyList_SET_ITEM(pieces, (Py_ssize_t)t, s);
    }
    int64_t seen = 0;
    for (int64_t i = 0; i < rec->n; i++) {
        const int64_t l = rec->layer[i] - first, t = rec->pos[i];
        if (l < 0 || l >= L || t < 0 || t >= T) continue; /* not a main-model MoE record */
        const int64_t at = l * T + t;
        memcpy((int32_t *)PyArray_DATA((PyArrayObject *)experts) + at * K, rec->experts + i * K, (size_t)K * sizeof(int32_t));
        memcpy((float *)PyArray_DATA((PyArrayObject *)weights) + at * K, rec->weights + i * K, (size_t)K * sizeof(float));
        memcpy((int32_t *)PyArray_DATA((PyArrayObject *)nobias) + at * K, rec->nobias + i * K, (size_t)K * sizeof(int32_t));
        memcpy((float *)PyArray_DATA((PyArrayObject *)scores) + at * E, rec->scores + i * E, (size_t)E * sizeof(float));
        memcpy((float *)PyArray_DATA((PyArrayObject *)biased) + at * E, rec->biased + i * E, (size_t)E * sizeof(float));
        npy_bool *g = (npy_bool *)PyArray_DATA((PyArrayObject *)groups) + at * G;
        for (int64_t k = 0; k < G; k++) g[k] = rec->groups[i * G + k] != 0;
        ((npy_bool *)PyArray_DATA((PyArrayObject *)changed))[at] = (npy_bool)dsv3_routerec_bias_changed(rec, i);
        seen++;
    }
    if (seen != L * T || rec->dropped) {
        PyErr_Format(dsv3_py_Error, "route: %lld of %lld routing records (%lld dropped)", (long long)seen,
                     (long long)(L * T), (long long)rec->dropped);
        goto fail;
    }
    if (dsv3_py_set(d, "experts", experts) | dsv3_py_set(d, "weights", weights) |
        dsv3_py_set(d, "scores", scores) | dsv3_py_set(d, "biased", biased) |
        dsv3_py_set(d, "groups", groups) | dsv3_py_set(d, "experts_nobias", nobias) |
        dsv3_py_set(d, "bias_changed", changed) | dsv3_py_set(d, "layers", layers) |
        dsv3_py_set(d, "tokens", tokens) | dsv3_py_set(d, "pieces", pieces)) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
fail:
    Py_XDECREF(d);
    Py_XDECREF(experts);
    Py_XDECREF(weights);
    Py_XDECREF(scores);
    Py_XDECREF(biased);
    Py_XDECREF(groups);
    Py_XDECREF(nobias);
    Py_XDECREF(changed);
    Py_XDECREF(layers);
    Py_XDECREF(tokens);
    Py_XDECREF(pieces);
    return NULL;
}

/* Routes ids (a new reference to the dict, or NULL). */
static PyObject *route_ids(dsv3_py_model *self, const int32_t *ids, int64_t T) {
    const dsv3_config *c = dsv3_model_config(self->m);
    route_ctx rc = {.ids = ids, .T = T};
    dsv3_err err = {{0}};
    dsv3_status st = dsv3_routerec_init(&rc.rec, c->n_routed_experts, c->num_experts_per_tok, c->n_group, &err);
    if (st) return dsv3_py_error(st, &err);
    PyObject *d = dsv3_py_run(self, route_work, &rc) < 0 ? NULL : route_dict(self, &rc.rec, ids, T);
    dsv3_routerec_fini(&rc.rec);
    return d;
}

PyObject *dsv3_py_route(dsv3_py_model *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ids", NULL};
    PyObject *obj;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:route", kwlist, &obj)) return NULL;
    int64_t T;
    int32_t *ids = dsv3_py_ids(self, obj, 1, &T);
    if (!ids) return NULL;
    PyObject *d = route_ids(self, ids, T);
    free(ids);
    return d;
}

/* load_stats(texts) — expert load per MoE layer over a batch: counts [L, E] summed over the
 * sequences, tokens [L], maxvio [L] of the summed counts, maxvio_per_sequence [L] (the mean of
 * each sequence's), layers [L]. */
PyObject *dsv3_py_load_stats(dsv3_py_model *self, PyObject *seqs) {
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    if (PyUnicode_Check(seqs) || !PySequence_Check(seqs))
        return PyErr_Format(PyExc_TypeError, "load_stats: expected a list of texts (or of id lists)");
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t E = c->n_routed_experts, first = c->first_k_dense_replace;
    const int64_t L = c->num_hidden_layers - first;
    const Py_ssize_t n = PySequence_Size(seqs);
    if (n < 1) return PyErr_Format(PyExc_ValueError, "load_stats: a list of texts (or of id lists) is needed");
    if (L < 1) return PyErr_Format(PyExc_ValueError, "load_stats: the model has no MoE layer");
    npy_intp dLE[2] = {(npy_intp)L, (npy_intp)E}, dL = (npy_intp)L;
    PyObject *counts = dsv3_py_zeros(2, dLE, NPY_INT64), *tokens = dsv3_py_zeros(1, &dL, NPY_INT64);
    PyObject *maxvio = dsv3_py_zeros(1, &dL, NPY_FLOAT64), *seqvio = dsv3_py_zeros(1, &dL, NPY_FLOAT64);
    PyObject *layers = dsv3_py_zeros(1, &dL, NPY_INT64), *d = PyDict_New();
    int64_t *cnt = malloc((size_t)E * sizeof *cnt);
    if (!counts || !tokens || !maxvio || !seqvio || !layers || !d || !cnt) goto fail;
    int64_t *sum = PyArray_DATA((PyArrayObject *)counts), *tok = PyArray_DATA((PyArrayObject *)tokens);
    double *vio = PyArray_DATA((PyArrayObject *)maxvio), *sv = PyArray_DATA((PyArrayObject *)seqvio);
    for (Py_ssize_t s = 0; s < n; s++) {
        PyObject *item = PySequence_GetItem(seqs, s);
        if (!item) goto fail;
        int64_t T;
        int32_t *ids = dsv3_py_ids(self, item, 1, &T);
        Py_DECREF(item);
        if (!ids) goto fail;
        route_ctx rc = {.ids = ids, .T = T};
        dsv3_err err = {{0}};
        dsv3_status st = dsv3_routerec_init(&rc.rec, E, c->num_experts_per_tok, c->n_group, &err);
        if (st) {
            free(ids);
            dsv3_py_error(st, &err);
            goto fail;
        }
        int rcode = dsv3_py_run(self, route_work, &rc);
        for (int64_t l = 0; rcode == 0 && l < L; l++) {
            tok[l] += dsv3_routerec_load(&rc.rec, first + l, cnt);
            for (int64_t e = 0; e < E; e++) sum[l * E + e] += cnt[e];
            sv[l] += dsv3_load_maxvio(cnt, E);
        }
        dsv3_routerec_fini(&rc.rec);
        free(ids);
        if (rcode < 0) goto fail;
    }
    for (int64_t l = 0; l < L; l++) {
        vio[l] = dsv3_load_maxvio(sum + l * E, E);
        sv[l] /= (double)n;
        ((int64_t *)PyArray_DATA((PyArrayObject *)layers))[l] = first + l;
    }
    free(cnt);
    if (dsv3_py_set(d, "counts", counts) | dsv3_py_set(d, "tokens", tokens) |
        dsv3_py_set(d, "maxvio", maxvio) | dsv3_py_set(d, "maxvio_per_sequence", seqvio) |
        dsv3_py_set(d, "layers", layers)) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
fail:
    free(cnt);
    Py_XDECREF(counts);
    Py_XDECREF(tokens);
    Py_XDECREF(maxvio);
    Py_XDECREF(seqvio);
    Py_XDECREF(layers);
    Py_XDECREF(d);
    return NULL;
}

/* ---------------------------------------------------------------- effect --------------- */

typedef struct {
    const int32_t *ids;
    int64_t T;
    dsv3_interventions iv;
    dsv3_effect e;
} effect_ctx;

static dsv3_status effect_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    effect_ctx *c = ud;
    return dsv3_effect_measure(&c->e, m, c->ids, c->T, &c->iv, cancel, err);
}

/* An expert number of `what`, in [0, E); -1 with ValueError otherwise. */
static long long expert_arg(PyObject *o, int64_t E, const char *what) {
    long long e = PyLong_AsLongLong(o);
    if (e == -1 && PyErr_Occurred()) return -1;
    if (e < 0 || e >= E) {
        PyErr_Format(PyExc_ValueError, "effect: %s: expert %lld out of range [0, %lld)", what, e, (long long)E);
        return -1;
    }
    return e;
}

/* disable = [e, ...] (every layer) or {layer: [e, ...]} into dis[NL * E]. */
static int read_disable(PyObject *o, unsigned char *dis, int64_t NL, int64_t E) {
    if (PyDict_Check(o)) {
        PyObject *k, *v;
        Py_ssize_t at = 0;
        while (PyDict_Next(o, &at, &k, &v)) {
            long long li = PyLong_AsLongLong(k);
            if (li == -1 && PyErr_Occurred()) return -1;
            if (li < 0 || li >= NL) {
                PyErr_Format(PyExc_ValueError, "effect: disable: layer %lld out of range [0, %lld]", li, (long long)NL - 1);
                return -1;
            }
            PyObject *f = PySequence_Fast(v, "effect: disable: {layer: [experts]} expected");
            if (!f) return -1;
            for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(f); i++) {
                long long e = expert_arg(PySequence_Fast_GET_ITEM(f, i), E, "disable");
                if (e < 0) {
                    Py_DECREF(f);
                    return -1;
                }
                dis[li * E + e] = 1;
            }
            Py_DECREF(f);
        }
        return 0;
    }
    PyObject *f = PySequence_Fast(o, "effect: disable must be a list of experts or {layer: [experts]}");
    if (!f) return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(f); i++) {
        long long e = expert_arg(PySequence_Fast_GET_ITEM(f, i), E, "disable");
        if (e < 0) {
            Py_DECREF(f);
            return -1;
        }
        for (int64_t li = 0; li < NL; li++) dis[li * E + e] = 1;
    }
    Py_DECREF(f);
    return 0;
}

/* force = {"layer": L, "experts": [K experts], "pos": p (optional, 0-based)} into forced. */
static int read_force(PyObject *o, int32_t *forced, int64_t *pos, int64_t NL, int64_t K, int64_t E, int64_t T) {
    if (!PyDict_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "effect: force must be a dict {\"layer\": L, \"experts\": [...], \"pos\": p}");
        return -1;
    }
    PyObject *lo = PyDict_GetItemString(o, "layer"), *eo = PyDict_GetItemString(o, "experts");
    PyObject *po = PyDict_GetItemString(o, "pos");
    if (!lo || !eo) {
        PyErr_SetString(PyExc_ValueError, "effect: force needs \"layer\" and \"experts\"");
        return -1;
    }
    long long li = PyLong_AsLongLong(lo);
    if (li == -1 && PyErr_Occurred()) return -1;
    if (li < 0 || li >= NL) {
        PyErr_Format(PyExc_ValueError, "effect: force: layer %lld out of range [0, %lld]", li, (long long)NL - 1);
        return -1;
    }
    PyObject *f = PySequence_Fast(eo, "effect: force: experts must be a list");
    if (!f) return -1;
    if (PySequence_Fast_GET_SIZE(f) != K) {
        Py_DECREF(f);
        PyErr_Format(PyExc_ValueError, "effect: force: experts must list exactly %lld experts", (long long)K);
        return -1;
    }
    for (int64_t i = 0; i < NL * K; i++) forced[i] = -1;
    for (int64_t k = 0; k < K; k++) {
        long long e = expert_arg(PySequence_Fast_GET_ITEM(f, k), E, "force");
        if (e < 0) {
            Py_DECREF(f);
            return -1;
        }
        forced[li * K + k] = (int32_t)e;
    }
    Py_DECREF(f);
    *pos = -1;
    if (po && po != Py_None) {
        long long p = PyLong_AsLongLong(po);
        if (p == -1 && PyErr_Occurred()) return -1;
        *pos = dsv3_py_pos(p, T);
        if (*pos < 0) {
            PyErr_Format(PyExc_ValueError, "effect: force: pos %lld out of range for %lld tokens", p, (long long)T);
            return -1;
        }
    }
    return 0;
}

PyObject *dsv3_py_effect(dsv3_py_model *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ids", "disable", "force", "zero_bias", "drop_shared", NULL};
    PyObject *obj, *disable = Py_None, *force = Py_None;
    int zero_bias = 0, drop_shared = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$OOpp:effect", kwlist, &obj, &disable, &force,
                                     &zero_bias, &drop_shared))
        return NULL;
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t E = c->n_routed_experts, K = c->num_experts_per_tok, NL = c->num_hidden_layers + 1;
    effect_ctx ec = {.iv = {.forced_pos = -1, .zero_bias = zero_bias, .drop_shared = drop_shared}};
    unsigned char *dis = calloc((size_t)(NL * E), 1);
    int32_t *forced = malloc((size_t)(NL * K) * sizeof *forced);
    int32_t *ids = NULL;
    PyObject *d = NULL;
    if (!dis || !forced) {
        PyErr_NoMemory();
        goto done;
    }
    ids = dsv3_py_ids(self, obj, 1, &ec.T);
    if (!ids) goto done;
    ec.ids = ids;
    if (disable != Py_None) {
        if (read_disable(disable, dis, NL, E) < 0) goto done;
        ec.iv.disabled = dis;
    }
    if (force != Py_None) {
        if (read_force(force, forced, &ec.iv.forced_pos, NL, K, E, ec.T) < 0) goto done;
        ec.iv.forced = forced;
    }
    /* a probe zeroes its result first and frees it on failure; a call interrupted after the
     * probe finished still holds one: every path ends in its fini */
    if (dsv3_py_run(self, effect_work, &ec) < 0) goto done;
    npy_intp dT = (npy_intp)ec.T;
    PyObject *kl = dsv3_py_zeros(1, &dT, NPY_FLOAT64), *ch = dsv3_py_zeros(1, &dT, NPY_BOOL);
    d = PyDict_New();
    if (kl && ch) {
        memcpy(PyArray_DATA((PyArrayObject *)kl), ec.e.kl, (size_t)ec.T * sizeof(double));
        for (int64_t t = 0; t < ec.T; t++) ((npy_bool *)PyArray_DATA((PyArrayObject *)ch))[t] = ec.e.top1_changed[t] != 0;
    }
    if (!d || dsv3_py_set(d, "kl", kl) | dsv3_py_set(d, "top1_changed", ch) |
                  dsv3_py_set(d, "mean_kl", PyFloat_FromDouble(ec.e.mean_kl)) |
                  dsv3_py_set(d, "max_kl", PyFloat_FromDouble(ec.e.max_kl)) |
                  dsv3_py_set(d, "top1_changed_fraction", PyFloat_FromDouble(ec.e.top1_changed_fraction)))
        Py_CLEAR(d);
done:
    dsv3_effect_fini(&ec.e);
    free(dis);
    free(forced);
    free(ids);
    return d;
}

/* ---------------------------------------------------------------- capture -------------- */

typedef struct {
    const int32_t *ids;
    int64_t T;
    dsv3_capture_opts opts;
    dsv3_capture cap;
} capture_ctx;

static dsv3_status capture_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    capture_ctx *c = ud;
    return dsv3_capture_run(&c->cap, m, c->ids, c->T, &c->opts, cancel, err);
}

PyObject *dsv3_py_capture(dsv3_py_model *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ids", "points", "layers", NULL};
    PyObject *obj, *points = Py_None, *layers = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$OO:capture", kwlist, &obj, &points, &layers)) return NULL;
    dsv3_model *m = dsv3_py_model_of(self);
    if (!m) return NULL;
    const int64_t NL = dsv3_model_config(m)->num_hidden_layers;
    capture_ctx cc = {.opts = {.layers = NULL}};
    unsigned char *sel = calloc((size_t)(NL + 2), 1);
    int32_t *ids = NULL;
    PyObject *d = NULL;
    if (!sel) return PyErr_NoMemory();
    if (points != Py_None) {
        if (PyUnicode_Check(points)) {
            PyErr_SetString(PyExc_TypeError, "capture: points must be a list of names");
            goto done;
        }
        PyObject *f = PySequence_Fast(points, "capture: points must be a list of names");
        if (!f) goto done;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(f); i++) {
            const char *nm = PyUnicode_Check(PySequence_Fast_GET_ITEM(f, i)) ? PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(f, i)) : NULL;
            int found = 0;
            for (int p = 0; nm && p < DSV3_POINT_COUNT; p++)
                if (!strcmp(nm, dsv3_capture_point_name(p))) cc.opts.points[p] = (unsigned char)(found = 1);
            if (!found) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "capture: unknown point '%s' (resid_in, attn_out, ffn_out, resid_out, ckv, hidden)",
                             nm ? nm : "?");
                Py_DECREF(f);
                goto done;
            }
        }
        Py_DECREF(f);
    }
    if (layers != Py_None) {
        PyObject *f = PySequence_Fast(layers, "capture: layers must be a list of layer numbers");
        if (!f) goto done;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(f); i++) {
            long long li = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(f, i));
            if (li == -1 && PyErr_Occurred()) {
                Py_DECREF(f);
                goto done;
            }
            if (li < 0 || li > NL) {
                PyErr_Format(PyExc_ValueError, "capture: layer %lld out of range 0..%lld", li, (long long)NL);
                Py_DECREF(f);
                goto done;
            }
            sel[li] = 1;
        }
        Py_DECREF(f);
        cc.opts.layers = sel;
    }
    ids = dsv3_py_ids(self, obj, 1, &cc.T);
    if (!ids) goto done;
    cc.ids = ids;
    if (dsv3_py_run(self, capture_work, &cc) < 0) goto done;
    d = PyDict_New();
    for (int64_t i = 0; d && i < cc.cap.n; i++) { /* each tensor's memory moves to its array */
        dsv3_capture_tensor *t = &cc.cap.t[i];
        npy_intp dims[2] = {(npy_intp)cc.cap.T, (npy_intp)t->dim};
        PyObject *a = dsv3_py_array_take(t->v, 2, dims, NPY_FLOAT32);
        t->v = NULL;
        char key[64];
        if (t->layer < 0) snprintf(key, sizeof key, "%s", dsv3_capture_point_name(t->point));
        else snprintf(key, sizeof key, "%s.%lld", dsv3_capture_point_name(t->point), (long long)t->layer);
        if (dsv3_py_set(d, key, a) < 0) Py_CLEAR(d);
    }
done:
    dsv3_capture_fini(&cc.cap);
    free(sel);
    free(ids);
    return d;
}

/* ---------------------------------------------------------------- lens ----------------- */

typedef struct {
    const int32_t *ids;
    int64_t T, pos, k;
    dsv3_lens lens;
} lens_ctx;

static dsv3_status lens_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    lens_ctx *c = ud;
    return dsv3_lens_compute(&c->lens, m, c->ids, c->T, c->pos, c->k, cancel, err);
}

PyObject *dsv3_py_lens(dsv3_py_model *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ids", "k", "pos", NULL};
    PyObject *obj;
    long long k = 5, pos = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$LL:lens", kwlist, &obj, &k, &pos)) return NULL;
    if (!dsv3_py_model_of(self)) return NULL;
    if (k < 1) return PyErr_Format(PyExc_ValueError, "lens: k must be at least 1");
    lens_ctx lc = {.k = k};
    int32_t *ids = dsv3_py_ids(self, obj, 1, &lc.T);
    if (!ids) return NULL;
    lc.ids = ids;
    lc.pos = dsv3_py_pos(pos, lc.T);
    if (lc.pos < 0 && lc.T > 0) {
        free(ids);
        return PyErr_Format(PyExc_ValueError, "lens: pos %lld out of range for %lld tokens", pos, (long long)lc.T);
    }
    int rc = dsv3_py_run(self, lens_work, &lc);
    free(ids);
    if (rc < 0) {
        dsv3_lens_fini(&lc.lens);
        return NULL;
    }
    const int64_t L = lc.lens.n_layers, K = lc.lens.k;
    npy_intp dLK[2] = {(npy_intp)L, (npy_intp)K}, dL = (npy_intp)L;
    PyObject *tid = dsv3_py_zeros(2, dLK, NPY_INT32), *prob = dsv3_py_zeros(2, dLK, NPY_FLOAT64);
    PyObject *layers = dsv3_py_zeros(1, &dL, NPY_INT64), *pieces = PyList_New((Py_ssize_t)L);
    PyObject *d = PyDict_New();
    if (tid && prob && layers && pieces && d) {
        for (int64_t l = 0; l < L; l++) {
            ((int64_t *)PyArray_DATA((PyArrayObject *)layers))[l] = l;
            PyObject *row = PyList_New((Py_ssize_t)K);
            if (!row) break;
            PyList_SET_ITEM(pieces, (Py_ssize_t)l, row);
            for (int64_t j = 0; j < K; j++) {
                const dsv3_lens_entry *e = &lc.lens.top[l * K + j];
                ((int32_t *)PyArray_DATA((PyArrayObject *)tid))[l * K + j] = e->id;
                ((double *)PyArray_DATA((PyArrayObject *)prob))[l * K + j] = e->prob;
                PyObject *s = dsv3_py_token_text(self, e->id);
                if (!s) break;
                PyList_SET_ITEM(row, (Py_ssize_t)j, s);
            }
        }
    }
    dsv3_lens_fini(&lc.lens);
    if (PyErr_Occurred() || !d) {
        Py_XDECREF(tid);
        Py_XDECREF(prob);
        Py_XDECREF(layers);
        Py_XDECREF(pieces);
        Py_XDECREF(d);
        return NULL;
    }
    if (dsv3_py_set(d, "ids", tid) | dsv3_py_set(d, "probs", prob) | dsv3_py_set(d, "layers", layers) |
        dsv3_py_set(d, "pieces", pieces) | dsv3_py_set(d, "pos", PyLong_FromLongLong(lc.pos))) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* ---------------------------------------------------------------- attention ------------ */

typedef struct {
    const int32_t *ids;
    int64_t T, layer, head;
    dsv3_attention a;
} attn_ctx;

static dsv3_status attn_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    attn_ctx *c = ud;
    return dsv3_attention_pattern(&c->a, m, c->ids, c->T, c->layer, c->head, cancel, err);
}

PyObject *dsv3_py_attention(dsv3_py_model *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ids", "layer", "head", NULL};
    PyObject *obj;
    long long layer, head;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OLL:attention", kwlist, &obj, &layer, &head)) return NULL;
    attn_ctx ac = {.layer = layer, .head = head};
    int32_t *ids = dsv3_py_ids(self, obj, 1, &ac.T);
    if (!ids) return NULL;
    ac.ids = ids;
    int rc = dsv3_py_run(self, attn_work, &ac);
    free(ids);
    if (rc < 0) {
        dsv3_attention_fini(&ac.a);
        return NULL;
    }
    npy_intp dims[2] = {(npy_intp)ac.a.T, (npy_intp)ac.a.T};
    PyObject *a = dsv3_py_array_take(ac.a.p, 2, dims, NPY_FLOAT32); /* the array takes p */
    ac.a.p = NULL;
    dsv3_attention_fini(&ac.a);
    return a;
}

/* ---------------------------------------------------------------- MTP trace ------------ */

typedef struct {
    const int32_t *ids;
    int64_t n;
    dsv3_mtp_trace_opts o;
    dsv3_mtp_trace tr;
} trace_ctx;

static dsv3_status trace_work(void *ud, dsv3_model *m, const volatile int *cancel, dsv3_err *err) {
    trace_ctx *c = ud;
    return dsv3_mtp_trace_run(&c->tr, m, c->ids, c->n, &c->o, cancel, err);
}

PyObject *dsv3_py_mtp_trace(dsv3_py_model *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"prompt", "max_tokens", "temperature", "seed", NULL};
    PyObject *obj;
    long long n_new = 64;
    double temp = 0;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$LdK:mtp_trace", kwlist, &obj, &n_new, &temp, &seed)) return NULL;
    trace_ctx tc = {.o = {.n_new = n_new, .temperature = (float)temp, .seed = seed}};
    int32_t *ids = dsv3_py_ids(self, obj, 1, &tc.n);
    if (!ids) return NULL;
    tc.ids = ids;
    int rc = dsv3_py_run(self, trace_work, &tc);
    free(ids);
    if (rc < 0) {
        dsv3_mtp_trace_fini(&tc.tr); /* zeroed, or a record whose call was interrupted */
        return NULL;
    }
    const dsv3_mtp_trace *tr = &tc.tr;
    const npy_intp D = (npy_intp)tr->drafted, B = DSV3_TRACE_BUCKETS, NB = DSV3_TRACE_BANDS, NH = DSV3_TRACE_HIST;
    PyObject *pos = dsv3_py_zeros(1, &D, NPY_INT64), *draft = dsv3_py_zeros(1, &D, NPY_INT32);
    PyObject *mainv = dsv3_py_zeros(1, &D, NPY_INT32), *q = dsv3_py_zeros(1, &D, NPY_FLOAT32);
    PyObject *p = dsv3_py_zeros(1, &D, NPY_FLOAT32), *acc = dsv3_py_zeros(1, &D, NPY_BOOL);
    PyObject *pd = dsv3_py_zeros(1, &B, NPY_INT64), *pa = dsv3_py_zeros(1, &B, NPY_INT64);
    PyObject *band = dsv3_py_zeros(1, &NB, NPY_FLOAT64), *hist = dsv3_py_zeros(1, &NH, NPY_INT64);
    PyObject *d = PyDict_New(), *steps = PyDict_New();
    if (pos && draft && mainv && q && p && acc) {
        for (npy_intp i = 0; i < D; i++) {
            const dsv3_draft_event *e = &tr->steps[i];
            ((int64_t *)PyArray_DATA((PyArrayObject *)pos))[i] = e->pos;
            ((int32_t *)PyArray_DATA((PyArrayObject *)draft))[i] = e->draft;
            ((int32_t *)PyArray_DATA((PyArrayObject *)mainv))[i] = e->main;
            ((float *)PyArray_DATA((PyArrayObject *)q))[i] = e->q_draft;
            ((float *)PyArray_DATA((PyArrayObject *)p))[i] = e->p_draft;
            ((npy_bool *)PyArray_DATA((PyArrayObject *)acc))[i] = e->accepted != 0;
        }
    }
    if (pd && pa && band && hist) {
        memcpy(PyArray_DATA((PyArrayObject *)pd), tr->pos_drafted, sizeof tr->pos_drafted);
        memcpy(PyArray_DATA((PyArrayObject *)pa), tr->pos_accepted, sizeof tr->pos_accepted);
        memcpy(PyArray_DATA((PyArrayObject *)band), tr->band_rate, sizeof tr->band_rate);
        memcpy(PyArray_DATA((PyArrayObject *)hist), tr->histogram, sizeof tr->histogram);
    }
    int bad = !d || !steps;
    if (!bad) {
        bad = dsv3_py_set(steps, "pos", pos) | dsv3_py_set(steps, "draft", draft) |
              dsv3_py_set(steps, "main", mainv) | dsv3_py_set(steps, "q", q) | dsv3_py_set(steps, "p", p) |
              dsv3_py_set(steps, "accepted", acc) | PyDict_SetItemString(d, "steps", steps);
        pos = draft = mainv = q = p = acc = NULL;
        bad |= dsv3_py_set(d, "drafted", PyLong_FromLongLong(tr->drafted)) |
               dsv3_py_set(d, "accepted", PyLong_FromLongLong(tr->accepted)) |
               dsv3_py_set(d, "rate", PyFloat_FromDouble(tr->rate)) |
               dsv3_py_set(d, "pos_drafted", pd) | dsv3_py_set(d, "pos_accepted", pa) |
               dsv3_py_set(d, "by_band", band) | dsv3_py_set(d, "histogram", hist) |
               dsv3_py_set(d, "tokens", PyLong_FromLongLong(tr->tokens)) |
               dsv3_py_set(d, "bucket", PyLong_FromLong(DSV3_TRACE_BUCKET));
        pd = pa = band = hist = NULL;
    }
    Py_XDECREF(steps);
    Py_XDECREF(pos);
    Py_XDECREF(draft);
    Py_XDECREF(mainv);
    Py_XDECREF(q);
    Py_XDECREF(p);
    Py_XDECREF(acc);
    Py_XDECREF(pd);
    Py_XDECREF(pa);
    Py_XDECREF(band);
    Py_XDECREF(hist);
    dsv3_mtp_trace_fini(&tc.tr);
    if (bad) {
        Py_XDECREF(d);
        return NULL;
    }
    return d;
}
