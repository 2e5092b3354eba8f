/* routing.c — routing records and load statistics (see routing.h). */
#include "probes/routing.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "probes/probe.h"

dsv3_status dsv3_routerec_init(dsv3_routerec *r, int64_t E, int64_t K, int64_t G, dsv3_err *err) {
    memset(r, 0, sizeof *r);
    if (E < 1 || K < 1 || G < 1) return dsv3_errf(err, DSV3_EINVAL, "routing: the model has no MoE layer");
    r->E = E;
    r->K = K;
    r->G = G;
    return DSV3_OK;
}

void dsv3_routerec_fini(dsv3_routerec *r) {
    free(r->layer);
    free(r->pos);
    free(r->token);
    free(r->experts);
    free(r->weights);
    free(r->nobias);
    free(r->scores);
    free(r->biased);
    free(r->groups);
    memset(r, 0, sizeof *r);
}

static int grow(void **p, int64_t count, size_t size) {
    void *n = realloc(*p, (size_t)count * size);
    if (!n) return -1;
    *p = n;
    return 0;
}

dsv3_status dsv3_routerec_reserve(dsv3_routerec *r, int64_t more, dsv3_err *err) {
    int64_t need = r->n + more;
    if (need <= r->cap) return DSV3_OK;
    const int64_t E = r->E, K = r->K, G = r->G;
    if (grow((void **)&r->layer, need, sizeof *r->layer) || grow((void **)&r->pos, need, sizeof *r->pos) ||
        grow((void **)&r->token, need, sizeof *r->token) ||
        grow((void **)&r->experts, need * K, sizeof *r->experts) ||
        grow((void **)&r->weights, need * K, sizeof *r->weights) ||
        grow((void **)&r->nobias, need * K, sizeof *r->nobias) ||
        grow((void **)&r->scores, need * E, sizeof *r->scores) ||
        grow((void **)&r->biased, need * E, sizeof *r->biased) ||
        grow((void **)&r->groups, need * G, sizeof *r->groups))
        return dsv3_errf(err, DSV3_ENOMEM, "routing: out of memory for %lld records", (long long)need);
    r->cap = need;
    return DSV3_OK;
}

static void on_route(void *ud, const dsv3_route_event *ev) {
    dsv3_routerec *r = ud;
    if (r->n >= r->cap) {
        r->dropped++;
        return;
    }
    const int64_t i = r->n++, E = r->E, K = r->K, G = r->G;
    r->layer[i] = ev->layer;
    r->pos[i] = ev->pos;
    r->token[i] = ev->token;
    memcpy(r->experts + i * K, ev->experts, (size_t)K * sizeof(int32_t));
    memcpy(r->weights + i * K, ev->weights, (size_t)K * sizeof(float));
    memcpy(r->nobias + i * K, ev->experts_nobias, (size_t)K * sizeof(int32_t));
    memcpy(r->scores + i * E, ev->scores, (size_t)E * sizeof(float));
    memcpy(r->biased + i * E, ev->biased, (size_t)E * sizeof(float));
    memcpy(r->groups + i * G, ev->group_kept, (size_t)G);
}

dsv3_hooks dsv3_routerec_hooks(dsv3_routerec *r) {
    return (dsv3_hooks){.ud = r, .route = on_route, .attn_layer = -1, .attn_head = -1};
}

dsv3_status dsv3_routerec_collect(dsv3_routerec *r, dsv3_model *m, const int32_t *ids, int64_t n,
                                  const volatile int *cancel, dsv3_err *err) {
    const dsv3_config *c = dsv3_model_config(m);
    /* one record per token and MoE layer, and room for the MTP block's should a caller run it */
    dsv3_status st = dsv3_routerec_reserve(r, n * (c->num_hidden_layers - c->first_k_dense_replace + 1), err);
    if (!st) st = dsv3_probe_check_len(m, n, err);
    dsv3_run *run = NULL;
    if (!st) st = dsv3_probe_run_new(&run, m, n, cancel, err);
    if (st) return st;
    dsv3_hooks h = dsv3_routerec_hooks(r);
    dsv3_run_set_hooks(run, &h);
    st = dsv3_forward_chunked(run, ids, n, NULL, NULL, err);
    dsv3_run_free(run);
    return st;
}

int dsv3_routerec_bias_changed(const dsv3_routerec *r, int64_t i) {
    const int32_t *a = r->experts + i * r->K, *b = r->nobias + i * r->K;
    for (int64_t k = 0; k < r->K; k++) {
        int found = 0;
        for (int64_t j = 0; j < r->K && !found; j++) found = a[k] == b[j];
        if (!found) return 1;
    }
    return 0;
}

int64_t dsv3_routerec_load(const dsv3_routerec *r, int64_t layer, int64_t *counts) {
    memset(counts, 0, (size_t)r->E * sizeof *counts);
    int64_t tokens = 0;
    for (int64_t i = 0; i < r->n; i++) {
        if (r->layer[i] != layer) continue;
        tokens++;
        for (int64_t k = 0; k < r->K; k++) {
            const int32_t e = r->experts[i * r->K + k];
            if (e >= 0) counts[e]++;
        }
    }
    return tokens;
}

void dsv3_routerec_cooc(const dsv3_routerec *r, int64_t layer, int64_t *m) {
    const int64_t E = r->E, K = r->K;
    memset(m, 0, (size_t)(E * E) * sizeof *m);
    for (int64_t i = 0; i < r->n; i++) {
        if (r->layer[i] != layer) continue;
        const int32_t *ex = r->experts + i * K;
        for (int64_t a = 0; a < K; a++)
            for (int64_t b = 0; b < K; b++)
                if (a != b && ex[a] >= 0 && ex[b] >= 0) m[ex[a] * E + ex[b]]++;
    }
}

/* DeepSeek-V3 report §4.5 (MaxVio): max_i load_i / mean load - 1. */
double dsv3_load_maxvio(const int64_t *counts, int64_t E) {
    int64_t total = 0, mx = 0;
    for (int64_t e = 0; e < E; e++) {
        total += counts[e];
        mx = counts[e] > mx ? counts[e] : mx;
    }
    if (total == 0) return 0.0;
    return (double)mx / ((double)total / (double)E) - 1.0;
}

/* ---------------------------------------------------------------- JSON export ---------- */

static cJSON *int_array(const int32_t *v, int64_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *picked(const float *row, const int32_t *idx, int64_t K) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t k = 0; k < K; k++) cJSON_AddItemToArray(a, cJSON_CreateNumber(idx[k] >= 0 ? row[idx[k]] : 0.0));
    return a;
}

char *dsv3_routerec_json(const dsv3_routerec *r, int64_t max_layer,
                         const char *(*piece)(const void *ud, int32_t id), const void *ud) {
    cJSON *root = cJSON_CreateObject(), *layers = cJSON_AddArrayToObject(root, "layers");
    int64_t lo = INT64_MAX, hi = -1;
    for (int64_t i = 0; i < r->n; i++) {
        lo = r->layer[i] < lo ? r->layer[i] : lo;
        hi = r->layer[i] > hi ? r->layer[i] : hi;
    }
    for (int64_t L = lo; L <= hi && L < max_layer; L++) {
        cJSON *lj = NULL, *toks = NULL;
        for (int64_t i = 0; i < r->n; i++) {
            if (r->layer[i] != L) continue;
            if (!lj) {
                lj = cJSON_CreateObject();
                cJSON_AddNumberToObject(lj, "layer", (double)L);
                toks = cJSON_AddArrayToObject(lj, "tokens");
                cJSON_AddItemToArray(layers, lj);
            }
            const int32_t *ex = r->experts + i * r->K;
            cJSON *t = cJSON_CreateObject();
            cJSON_AddNumberToObject(t, "pos", (double)r->pos[i]);
            cJSON_AddNumberToObject(t, "token", r->token[i]);
            if (piece) {
                const char *p = piece(ud, r->token[i]);
                if (p) cJSON_AddStringToObject(t, "piece", p);
            }
            cJSON_AddItemToObject(t, "experts", int_array(ex, r->K));
            cJSON *w = cJSON_CreateArray();
            for (int64_t k = 0; k < r->K; k++) cJSON_AddItemToArray(w, cJSON_CreateNumber(r->weights[i * r->K + k]));
            cJSON_AddItemToObject(t, "weights", w);
            cJSON_AddItemToObject(t, "scores", picked(r->scores + i * r->E, ex, r->K));
            cJSON_AddItemToObject(t, "biased", picked(r->biased + i * r->E, ex, r->K));
            cJSON *g = cJSON_CreateArray();
            for (int64_t k = 0; k < r->G; k++)
                if (r->groups[i * r->G + k]) cJSON_AddItemToArray(g, cJSON_CreateNumber((double)k));
            cJSON_AddItemToObject(t, "groups", g);
            cJSON_AddItemToObject(t, "experts_nobias", int_array(r->nobias + i * r->K, r->K));
            cJSON_AddBoolToObject(t, "bias_changed", dsv3_routerec_bias_changed(r, i));
            cJSON_AddItemToArray(toks, t);
        }
    }
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}
