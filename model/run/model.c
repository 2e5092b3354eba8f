/* model.c — open a model directory and bind every tensor the config implies (see model.h).
 *
 * Binding turns tensor names into typed fields once (docs/ARCHITECTURE.md, "Checkpoint tensors"),
 * so the forward pass refers to `layer->kv_b`, never to strings. Shapes come from the config; a
 * tensor that is missing, mis-shaped or of an unsupported dtype is an error naming file and tensor.
 */
#include "model/run/model_internal.h"
#include "model/run/scan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- binding helpers ------ */

typedef struct {
    dsv3_model *m;
    const char *dir;
    dsv3_err *err;
    char name[256]; /* scratch for formatted tensor names */
} binder;

static const char *tname(binder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *tname(binder *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->name, sizeof b->name, fmt, ap);
    va_end(ap);
    return b->name;
}

static void shape_str(char *buf, size_t n, const dsv3_st_tensor *t) {
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

static dsv3_status need(binder *b, const char *name, const dsv3_st_tensor **out) {
    *out = dsv3_ckpt_find(b->m->ck, name);
    if (!*out)
        return dsv3_errf(b->err, DSV3_EFORMAT, "model: %s: tensor %s: missing from the checkpoint",
                         b->dir, name);
    return DSV3_OK;
}

static dsv3_status check_shape(binder *b, const dsv3_st_tensor *t, int ndim, int64_t d0,
                               int64_t d1) {
    if (t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1)) return DSV3_OK;
    char got[128];
    shape_str(got, sizeof got, t);
    if (ndim == 1)
        return dsv3_errf(b->err, DSV3_ESHAPE, "safetensors: %s: tensor %s: shape %s, expected [%lld]",
                         t->file, t->name, got, (long long)d0);
    return dsv3_errf(b->err, DSV3_ESHAPE, "safetensors: %s: tensor %s: shape %s, expected [%lld,%lld]",
                     t->file, t->name, got, (long long)d0, (long long)d1);
}

/* Binds a 2-D weight [rows, cols]; FP8 weights take their `<name>_scale_inv` block scales. */
static dsv3_status bind_weight(binder *b, dsv3_weight *w, int64_t rows, int64_t cols,
                               const char *name) {
    const dsv3_st_tensor *t;
    dsv3_status st;
    if ((st = need(b, name, &t)) || (st = check_shape(b, t, 2, rows, cols))) return st;
    char sname[300];
    snprintf(sname, sizeof sname, "%s_scale_inv", name);
    const dsv3_st_tensor *s = dsv3_ckpt_find(b->m->ck, sname);
    *w = (dsv3_weight){.dtype = t->dtype, .rows = rows, .cols = cols, .data = t->data};
    switch (t->dtype) {
    case DSV3_DT_F32:
    case DSV3_DT_BF16:
    case DSV3_DT_F16:
        if (s)
            return dsv3_errf(b->err, DSV3_EDTYPE,
                             "safetensors: %s: tensor %s: has a scale_inv but dtype %s is not FP8",
                             s->file, sname, dsv3_dtype_name(t->dtype));
        return DSV3_OK;
    case DSV3_DT_F8_E4M3: {
        if (!s)
            return dsv3_errf(b->err, DSV3_EFORMAT,
                             "model: %s: tensor %s: F8_E4M3 weight without %s", b->dir, name, sname);
        if (s->dtype != DSV3_DT_F32)
            return dsv3_errf(b->err, DSV3_EDTYPE, "safetensors: %s: tensor %s: dtype %s, expected F32",
                             s->file, sname, dsv3_dtype_name(s->dtype));
        if ((st = check_shape(b, s, 2, (rows + 127) / 128, (cols + 127) / 128)) ||
            (st = dsv3_scan_require_finite(s->data, s->numel, s->file, sname, "FP8 block scales",
                                           b->err)))
            return st;
        w->scale_inv = s->data;
        return DSV3_OK;
    }
    default:
        return dsv3_errf(b->err, DSV3_EDTYPE,
                         "safetensors: %s: tensor %s: dtype %s not supported for weights (F32, BF16, F16, F8_E4M3)",
                         t->file, name, dsv3_dtype_name(t->dtype));
    }
}

/* Registers a float vector: its host copy, and the field that will hold its backend address
 * (the host copy until a non-host backend is bound). Takes ownership of host. */
static dsv3_status add_vec(dsv3_model *m, float **field, float *host, int64_t n) {
    if (m->nvecs == m->cap_vecs) {
        const int64_t cap = m->cap_vecs ? 2 * m->cap_vecs : 64;
        dsv3_model_vec *v = realloc(m->vecs, (size_t)cap * sizeof *v);
        if (!v) {
            free(host);
            return DSV3_ENOMEM;
        }
        m->vecs = v;
        m->cap_vecs = cap;
    }
    m->vecs[m->nvecs++] = (dsv3_model_vec){field, host, n};
    *field = host;
    return DSV3_OK;
}

/* Binds a 1-D vector [n] as a float32 copy (norm weights, router bias), registered with the
 * model's vectors (see add_vec). */
static dsv3_status bind_vec(binder *b, float **out, int64_t n, const char *name) {
    const dsv3_st_tensor *t;
    dsv3_status st;
    if ((st = need(b, name, &t)) || (st = check_shape(b, t, 1, n, 0))) return st;
    dsv3_weight w = {.dtype = t->dtype, .rows = 1, .cols = n, .data = t->data};
    if (t->dtype != DSV3_DT_F32 && t->dtype != DSV3_DT_BF16 && t->dtype != DSV3_DT_F16)
        return dsv3_errf(b->err, DSV3_EDTYPE,
                         "safetensors: %s: tensor %s: dtype %s not supported for vectors (F32, BF16, F16)",
                         t->file, name, dsv3_dtype_name(t->dtype));
    float *host = malloc((size_t)n * sizeof(float));
    if (!host || add_vec(b->m, out, host, n))
        return dsv3_errf(b->err, DSV3_ENOMEM, "model: %s: tensor %s: out of memory", b->dir, name);
    dsv3_backend_cpu()->row(host, &w, 0); /* decoded on the host, from the mapping */
    return dsv3_scan_require_finite(host, n, t->file, name, "norm gains and router biases", b->err);
}

void dsv3_layer_head_views(const dsv3_config *c, dsv3_layer_w *L) {
    const int64_t dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    for (int64_t h = 0; h < c->num_attention_heads; h++) {
        L->uk[h] = dsv3_weight_rows(&L->kv_b, h * (dn + dv), dn);
        L->uv[h] = dsv3_weight_rows(&L->kv_b, h * (dn + dv) + dn, dv);
    }
}

static dsv3_status bind_mlp(binder *b, dsv3_mlp_w *w, int64_t width, const char *prefix) {
    const int64_t H = b->m->cfg.hidden_size;
    char p[200];
    snprintf(p, sizeof p, "%s", prefix);
    dsv3_status st;
    if ((st = bind_weight(b, &w->gate, width, H, tname(b, "%s.gate_proj.weight", p)))) return st;
    if ((st = bind_weight(b, &w->up, width, H, tname(b, "%s.up_proj.weight", p)))) return st;
    return bind_weight(b, &w->down, H, width, tname(b, "%s.down_proj.weight", p));
}

/* Binds decoder block `li` (a main layer, or the MTP block at li = num_hidden_layers). */
static dsv3_status bind_layer(binder *b, dsv3_layer_w *L, int64_t li, int is_moe) {
    const dsv3_config *c = &b->m->cfg;
    const int64_t H = c->hidden_size, nh = c->num_attention_heads;
    const int64_t dq = dsv3_config_qk_head_dim(c), rkv = c->kv_lora_rank;
    const long long i = (long long)li;
    dsv3_status st;
    if ((st = bind_vec(b, &L->attn_norm, H, tname(b, "model.layers.%lld.input_layernorm.weight", i))) ||
        (st = bind_vec(b, &L->ffn_norm, H, tname(b, "model.layers.%lld.post_attention_layernorm.weight", i))))
        return st;
    if (c->q_lora_rank > 0) {
        if ((st = bind_weight(b, &L->q_a, c->q_lora_rank, H, tname(b, "model.layers.%lld.self_attn.q_a_proj.weight", i))) ||
            (st = bind_vec(b, &L->q_a_norm, c->q_lora_rank, tname(b, "model.layers.%lld.self_attn.q_a_layernorm.weight", i))) ||
            (st = bind_weight(b, &L->q_b, nh * dq, c->q_lora_rank, tname(b, "model.layers.%lld.self_attn.q_b_proj.weight", i))))
            return st;
    } else if ((st = bind_weight(b, &L->q_b, nh * dq, H, tname(b, "model.layers.%lld.self_attn.q_proj.weight", i)))) {
        return st;
    }
    if ((st = bind_weight(b, &L->kv_a, rkv + c->qk_rope_head_dim, H, tname(b, "model.layers.%lld.self_attn.kv_a_proj_with_mqa.weight", i))) ||
        (st = bind_vec(b, &L->kv_a_norm, rkv, tname(b, "model.layers.%lld.self_attn.kv_a_layernorm.weight", i))) ||
        (st = bind_weight(b, &L->kv_b, nh * (c->qk_nope_head_dim + c->v_head_dim), rkv, tname(b, "model.layers.%lld.self_attn.kv_b_proj.weight", i))) ||
        (st = bind_weight(b, &L->o, H, nh * c->v_head_dim, tname(b, "model.layers.%lld.self_attn.o_proj.weight", i))))
        return st;
    if (!(L->uk = calloc((size_t)(2 * nh), sizeof *L->uk)))
        return dsv3_errf(b->err, DSV3_ENOMEM, "model: %s: out of memory", b->dir);
    L->uv = L->uk + nh;
    dsv3_layer_head_views(c, L);
    L->is_moe = is_moe;
    char p[200];
    if (!is_moe) {
        snprintf(p, sizeof p, "model.layers.%lld.mlp", i);
        return bind_mlp(b, &L->dense, c->intermediate_size, p);
    }
    const int64_t E = c->n_routed_experts;
    if ((st = bind_weight(b, &L->router, E, H, tname(b, "model.layers.%lld.mlp.gate.weight", i))))
        return st;
    if (dsv3_config_has_router_bias(c)) {
        if ((st = bind_vec(b, &L->bias, E, tname(b, "model.layers.%lld.mlp.gate.e_score_correction_bias", i))))
            return st;
    } else { /* greedy / group_limited_greedy routers have no bias: a zero one (s + 0 = s) that
              * interventions may still edit */
        float *zero = calloc((size_t)E, sizeof(float));
        if (!zero || add_vec(b->m, &L->bias, zero, E))
            return dsv3_errf(b->err, DSV3_ENOMEM, "model: %s: out of memory", b->dir);
    }
    if (!(L->bias_ckpt = malloc((size_t)E * sizeof(float))) ||
        !(L->experts = calloc((size_t)E, sizeof *L->experts)))
        return dsv3_errf(b->err, DSV3_ENOMEM, "model: %s: out of memory", b->dir);
    memcpy(L->bias_ckpt, L->bias, (size_t)E * sizeof(float));
    L->bias_host = L->bias;
    for (int64_t e = 0; e < E; e++) {
        snprintf(p, sizeof p, "model.layers.%lld.mlp.experts.%lld", i, (long long)e);
        if ((st = bind_mlp(b, &L->experts[e], c->moe_intermediate_size, p))) return st;
    }
    if (c->n_shared_experts > 0) {
        snprintf(p, sizeof p, "model.layers.%lld.mlp.shared_experts", i);
        if ((st = bind_mlp(b, &L->shared, c->moe_intermediate_size * c->n_shared_experts, p)))
            return st;
    }
    return DSV3_OK;
}

/* The MTP module (docs/ARCHITECTURE.md, "Checkpoint tensors"). Its embedding and head fall back to
 * the main model's when the checkpoint leaves out the copies (they are the same parameters). */
static dsv3_status bind_mtp(binder *b) {
    dsv3_model *m = b->m;
    const dsv3_config *c = &m->cfg;
    const int64_t H = c->hidden_size, V = c->vocab_size;
    const long long L = (long long)c->num_hidden_layers;
    dsv3_mtp_w *t = &m->mtp;
    dsv3_status st;
    if ((st = bind_vec(b, &t->enorm, H, tname(b, "model.layers.%lld.enorm.weight", L))) ||
        (st = bind_vec(b, &t->hnorm, H, tname(b, "model.layers.%lld.hnorm.weight", L))) ||
        (st = bind_weight(b, &t->eh_proj, H, 2 * H, tname(b, "model.layers.%lld.eh_proj.weight", L))) ||
        (st = bind_vec(b, &t->head_norm, H, tname(b, "model.layers.%lld.shared_head.norm.weight", L))) ||
        (st = bind_layer(b, &t->block, c->num_hidden_layers, 1)))
        return st;
    t->embed = m->embed;
    if (dsv3_ckpt_find(m->ck, tname(b, "model.layers.%lld.embed_tokens.weight", L)) &&
        (st = bind_weight(b, &t->embed, V, H, b->name)))
        return st;
    t->head = m->lm_head;
    if (dsv3_ckpt_find(m->ck, tname(b, "model.layers.%lld.shared_head.head.weight", L)) &&
        (st = bind_weight(b, &t->head, V, H, b->name)))
        return st;
    m->has_mtp = 1;
    return DSV3_OK;
}

static void warnf(dsv3_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(dsv3_model *m, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t old = m->warnings ? strlen(m->warnings) : 0, add = strlen(line);
    char *n = realloc(m->warnings, old + add + 2);
    if (!n) return; /* a lost warning is not worth failing the load for */
    memcpy(n + old, line, add);
    n[old + add] = '\n';
    n[old + add + 1] = 0;
    m->warnings = n;
}

/* ---------------------------------------------------------------- open / close --------- */

static void free_layer(dsv3_layer_w *L) {
    free(L->bias_ckpt);
    free(L->experts);
    free(L->uk);
}

/* ---------------------------------------------------------------- weight binding ------ */
/* Backends with bind (docs/ARCHITECTURE.md, "Backend memory") get every host range holding the
 * checkpoint's tensors once, when the model is bound to them; the list is kept to unbind them. */

typedef struct {
    const dsv3_backend *be;
    const void **bound;
    size_t n, cap;
    dsv3_err *err;
    dsv3_status st;
} binding;

static void unbind_weights(const dsv3_backend *be, const void **bound, size_t n) {
    if (be->unbind)
        for (size_t i = 0; i < n; i++) be->unbind(bound[i]);
}

static int bind_range(void *ud, const void *p, size_t bytes) {
    binding *b = ud;
    if (b->n == b->cap) {
        const size_t cap = b->cap ? 2 * b->cap : 16;
        const void **nb = realloc(b->bound, cap * sizeof *nb);
        if (!nb) return (b->st = dsv3_errf(b->err, DSV3_ENOMEM, "model: out of memory")), 1;
        b->bound = nb;
        b->cap = cap;
    }
    if ((b->st = b->be->bind(p, bytes, b->err))) return 1;
    b->bound[b->n++] = p;
    return 0;
}

void dsv3_model_close(dsv3_model *m) {
    if (!m) return;
    if (m->layers)
        for (int64_t i = 0; i < m->cfg.num_hidden_layers; i++) free_layer(&m->layers[i]);
    free(m->layers);
    free_layer(&m->mtp.block);
    if (m->arena) m->be->free(m->arena);
    unbind_weights(m->be, m->bound, m->nbound);
    free(m->bound);
    for (int64_t i = 0; i < m->nvecs; i++) free(m->vecs[i].host);
    free(m->vecs);
    free(m->warnings);
    free(m->dir);
    dsv3_ckpt_close(m->ck);
    free(m);
}

dsv3_status dsv3_model_open(dsv3_model **out, const char *dir, dsv3_err *err) {
    return dsv3_model_open_progress(out, dir, NULL, NULL, err);
}

dsv3_status dsv3_model_open_progress(dsv3_model **out, const char *dir, dsv3_progress_fn fn,
                                     void *ud, dsv3_err *err) {
    *out = NULL;
    dsv3_model *m = calloc(1, sizeof *m);
    if (!m) return dsv3_errf(err, DSV3_ENOMEM, "model: %s: out of memory", dir);
    m->be = dsv3_backend_fast();
    if (!(m->dir = strdup(dir))) {
        free(m);
        return dsv3_errf(err, DSV3_ENOMEM, "model: %s: out of memory", dir);
    }
    binder b = {.m = m, .dir = dir, .err = err};
    dsv3_status st;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((st = dsv3_config_load(&m->cfg, path, err))) goto fail;
    if ((st = dsv3_ckpt_open_progress(&m->ck, dir, fn, ud, err))) goto fail;
    const dsv3_config *c = &m->cfg;
    const int64_t H = c->hidden_size, V = c->vocab_size;
    if ((st = bind_weight(&b, &m->embed, V, H, "model.embed_tokens.weight")) ||
        (st = bind_vec(&b, &m->final_norm, H, "model.norm.weight")) ||
        (st = bind_weight(&b, &m->lm_head, V, H, "lm_head.weight")))
        goto fail;
    if (!(m->layers = calloc((size_t)c->num_hidden_layers, sizeof *m->layers))) {
        st = dsv3_errf(err, DSV3_ENOMEM, "model: %s: out of memory", dir);
        goto fail;
    }
    for (int64_t i = 0; i < c->num_hidden_layers; i++)
    {
        if ((st = bind_layer(&b, &m->layers[i], i, dsv3_config_layer_is_moe(c, i)))) goto fail;
        if (fn) fn(ud, "layers", i + 1, c->num_hidden_layers);
    }
    if (c->num_nextn_predict_layers > 0) {
        if (dsv3_ckpt_find(m->ck, tname(&b, "model.layers.%lld.eh_proj.weight",
                                        (long long)c->num_hidden_layers))) {
            if ((st = bind_mtp(&b))) goto fail;
        } else {
            warnf(m, "model: %s: num_nextn_predict_layers is %lld but the checkpoint has no "
                     "MTP layer (model.layers.%lld.*): MTP disabled",
                  dir, (long long)c->num_nextn_predict_layers, (long long)c->num_hidden_layers);
        }
    }
    size_t unused = 0;
    for (size_t i = 0; i < dsv3_ckpt_count(m->ck); i++) {
        if (!dsv3_ckpt_unused(m->ck, i)) continue;
        const dsv3_st_tensor *t = dsv3_ckpt_at(m->ck, i);
        if (++unused <= 10)
            warnf(m, "model: %s: tensor %s: not used by this config (ignored)", t->file, t->name);
    }
    if (unused > 10) warnf(m, "model: %s: ... %zu unused tensors in all", dir, unused);
    float *inv_freq = malloc((size_t)(c->qk_rope_head_dim / 2) * sizeof(float));
    if (!inv_freq || add_vec(m, &m->inv_freq, inv_freq, c->qk_rope_head_dim / 2)) {
        st = dsv3_errf(err, DSV3_ENOMEM, "model: %s: out of memory", dir);
        goto fail;
    }
    dsv3_config_rope_inv_freq(c, m->inv_freq);
    m->route = dsv3_config_route_params(c);
    m->rope_factor = (float)dsv3_config_rope_attention_factor(c);
    m->softmax_scale = (float)dsv3_config_softmax_scale(c);
    if (!m->warnings && !(m->warnings = calloc(1, 1))) {
        st = dsv3_errf(err, DSV3_ENOMEM, "model: %s: out of memory", dir);
        goto fail;
    }
    *out = m;
    return DSV3_OK;
fail:
    dsv3_model_close(m);
    return st;
}

const dsv3_config *dsv3_model_config(const dsv3_model *m) {
    return &m->cfg;
}

const char *dsv3_model_warnings(const dsv3_model *m) {
    return m->warnings;
}

uint64_t dsv3_model_file_bytes(const dsv3_model *m) {
    return dsv3_ckpt_bytes(m->ck);
}

void dsv3_model_dtype_bytes(const dsv3_model *m, uint64_t *bytes) {
    memset(bytes, 0, DSV3_DT_COUNT * sizeof *bytes);
    for (size_t i = 0; i < dsv3_ckpt_count(m->ck); i++) {
        const dsv3_st_tensor *t = dsv3_ckpt_at(m->ck, i);
        bytes[t->dtype] += t->nbytes;
    }
}

/* Points every vector field at its host copy (host backends) or at its slice of arena. */
static void point_vecs(dsv3_model *m, float *arena) {
    int64_t off = 0;
    for (int64_t i = 0; i < m->nvecs; i++) {
        *m->vecs[i].field = arena ? arena + off : m->vecs[i].host;
        off += m->vecs[i].n;
    }
}

dsv3_status dsv3_model_set_backend(dsv3_model *m, const dsv3_backend *be, dsv3_err *err) {
    if (!be) be = dsv3_backend_cpu();
    if (be == m->be) return DSV3_OK;
    dsv3_err local;
    if (!err) err = &local;
    binding b = {.be = be, .err = err};
    if (be->bind && dsv3_ckpt_ranges(m->ck, bind_range, &b)) { /* weights first: no device, no memory */
        unbind_weights(be, b.bound, b.n);
        free(b.bound);
        return b.st;
    }
    float *arena = NULL;
    if (!be->is_host) { /* one arena with every vector, uploaded in one go per vector */
        int64_t total = 0;
        for (int64_t i = 0; i < m->nvecs; i++) total += m->vecs[i].n;
        if (!(arena = be->alloc((size_t)total * sizeof(float)))) {
            unbind_weights(be, b.bound, b.n);
            free(b.bound);
            return dsv3_errf(err, DSV3_ENOMEM, "model: %s: out of %s memory for %lld vector floats",
                             m->dir, be->name, (long long)total);
        }
        int64_t off = 0;
        for (int64_t i = 0; i < m->nvecs; i++) {
            be->upload(arena + off, m->vecs[i].host, (size_t)m->vecs[i].n * sizeof(float));
            off += m->vecs[i].n;
        }
    }
    if (m->arena) m->be->free(m->arena);
    unbind_weights(m->be, m->bound, m->nbound);
    free(m->bound);
    m->bound = b.bound;
    m->nbound = b.n;
    m->cap_bound = b.cap;
    m->arena = arena;
    point_vecs(m, arena);
    m->be = be;
    return DSV3_OK;
}

const dsv3_backend *dsv3_model_backend(const dsv3_model *m) {
    return m->be;
}

int dsv3_model_has_mtp(const dsv3_model *m) {
    return m->has_mtp;
}

const char *dsv3_model_dir(const dsv3_model *m) {
    return m->dir;
}

/* ---------------------------------------------------------------- parameter counts ----- */

static int64_t numel(const dsv3_weight *w) {
    return w->data ? w->rows * w->cols : 0;
}

static int64_t mlp_numel(const dsv3_mlp_w *w) {
    return numel(&w->gate) + numel(&w->up) + numel(&w->down);
}

/* Attention, norms, router and experts of one block, added into p. */
static void count_block(const dsv3_config *c, const dsv3_layer_w *L, dsv3_param_counts *p) {
    const int64_t H = c->hidden_size;
    p->attention += numel(&L->q_a) + numel(&L->q_b) + numel(&L->kv_a) + numel(&L->kv_b) +
                    numel(&L->o) + (L->q_a_norm ? c->q_lora_rank : 0) + c->kv_lora_rank;
    p->norms += 2 * H;
    if (!L->is_moe) {
        p->dense_ffn += mlp_numel(&L->dense);
        return;
    }
    p->router += numel(&L->router) + (dsv3_config_has_router_bias(c) ? c->n_routed_experts : 0);
    for (int64_t e = 0; e < c->n_routed_experts; e++) p->routed_experts += mlp_numel(&L->experts[e]);
    p->shared_experts += mlp_numel(&L->shared);
}

void dsv3_model_param_counts(const dsv3_model *m, dsv3_param_counts *p) {
    const dsv3_config *c = &m->cfg;
    memset(p, 0, sizeof *p);
    p->embed = numel(&m->embed);
    p->lm_head = numel(&m->lm_head);
    p->norms = c->hidden_size;
    for (int64_t i = 0; i < c->num_hidden_layers; i++) count_block(c, &m->layers[i], p);
    if (m->has_mtp) {
        dsv3_param_counts t;
        memset(&t, 0, sizeof t);
        count_block(c, &m->mtp.block, &t);
        p->mtp = t.attention + t.norms + t.router + t.routed_experts + t.shared_experts +
                 numel(&m->mtp.eh_proj) + 3 * c->hidden_size + numel(&m->mtp.embed) +
                 numel(&m->mtp.head);
    }
    p->total = p->embed + p->attention + p->dense_ffn + p->routed_experts + p->shared_experts +
               p->router + p->norms + p->lm_head + p->mtp;
    const int64_t E = c->n_routed_experts > 0 ? c->n_routed_experts : 1;
    p->active = p->attention + p->dense_ffn + p->shared_experts + p->router + p->norms +
                p->lm_head + c->hidden_size +
                p->routed_experts / E * c->num_experts_per_tok;
}

/* ---------------------------------------------------------------- probes' access ------- */

static dsv3_layer_w *layer_at(dsv3_model *m, int64_t li) {
    if (li >= 0 && li < m->cfg.num_hidden_layers) return &m->layers[li];
    if (li == m->cfg.num_hidden_layers && m->has_mtp) return &m->mtp.block;
    return NULL;
}

const float *dsv3_model_bias(const dsv3_model *m, int64_t li) {
    const dsv3_layer_w *L = layer_at((dsv3_model *)m, li);
    return L && L->is_moe ? L->bias_host : NULL;
}

/* Copies values into layer L's bias: the host copy, and the backend's when that is elsewhere. */
static void put_bias(dsv3_model *m, dsv3_layer_w *L, const float *values) {
    const size_t bytes = (size_t)m->cfg.n_routed_experts * sizeof(float);
    if (values != L->bias_host) memcpy(L->bias_host, values, bytes);
    if (L->bias != L->bias_host) m->be->upload(L->bias, L->bias_host, bytes);
}

dsv3_status dsv3_model_set_bias(dsv3_model *m, int64_t li, const float *values, dsv3_err *err) {
    dsv3_layer_w *L = layer_at(m, li);
    if (!L || !L->is_moe)
        return dsv3_errf(err, DSV3_EINVAL, "bias: layer %lld is not a MoE layer", (long long)li);
    put_bias(m, L, values);
    return DSV3_OK;
}

void dsv3_model_bias_reset(dsv3_model *m, int64_t li) {
    for (int64_t i = 0; i <= m->cfg.num_hidden_layers; i++) {
        if (li >= 0 && i != li) continue;
        dsv3_layer_w *L = layer_at(m, i);
        if (L && L->is_moe) put_bias(m, L, L->bias_ckpt);
    }
}

dsv3_status dsv3_model_lens(const dsv3_model *m, const float *x, int64_t n, float *scratch,
                            float *logits, dsv3_err *err) {
    const dsv3_backend *be = m->be;
    const int64_t H = m->cfg.hidden_size, V = m->cfg.vocab_size;
    if (be->is_host) {
        be->rmsnorm(scratch, x, m->final_norm, n, H, (float)m->cfg.rms_norm_eps);
        be->matmul(logits, scratch, &m->lm_head, n);
        return DSV3_OK;
    }
    float *dx = be->alloc((size_t)(n * H) * sizeof(float)), *dl = be->alloc((size_t)(n * V) * sizeof(float));
    if (!dx || !dl) {
        be->free(dx);
        be->free(dl);
        return dsv3_errf(err, DSV3_ENOMEM, "lens: out of %s memory", be->name);
    }
    be->upload(dx, x, (size_t)(n * H) * sizeof(float));
    be->rmsnorm(dx, dx, m->final_norm, n, H, (float)m->cfg.rms_norm_eps);
    be->matmul(dl, dx, &m->lm_head, n);
    be->download(logits, dl, (size_t)(n * V) * sizeof(float));
    be->free(dx);
    be->free(dl);
    return DSV3_OK;
}

static double wbytes(const dsv3_weight *w) {
    if (!w->data) return 0.0;
    double b = (double)w->rows * (double)w->cols * (double)dsv3_dtype_size(w->dtype);
    if (w->scale_inv) b += 4.0 * (double)((w->rows + 127) / 128) * (double)((w->cols + 127) / 128);
    return b;
}

static double mlp_bytes(const dsv3_mlp_w *w) {
    return wbytes(&w->gate) + wbytes(&w->up) + wbytes(&w->down);
}

double dsv3_model_active_bytes(const dsv3_model *m) {
    const dsv3_config *c = &m->cfg;
    double b = wbytes(&m->lm_head) + (double)c->hidden_size * (double)dsv3_dtype_size(m->embed.dtype);
    for (int64_t i = 0; i < c->num_hidden_layers; i++) {
        const dsv3_layer_w *L = &m->layers[i];
        b += wbytes(&L->q_a) + wbytes(&L->q_b) + wbytes(&L->kv_a) + wbytes(&L->kv_b) + wbytes(&L->o);
        if (!L->is_moe) {
            b += mlp_bytes(&L->dense);
            continue;
        }
        double experts = 0.0;
        for (int64_t e = 0; e < c->n_routed_experts; e++) experts += mlp_bytes(&L->experts[e]);
        b += wbytes(&L->router) + mlp_bytes(&L->shared) +
             experts / (double)c->n_routed_experts * (double)c->num_experts_per_tok;
    }
    return b;
}
