/* backends.h — what the tests of a backend against `fast` share (tests/test_devsim.c,
 * tests/test_cuda.c): the tiny checkpoint variants, a forward over T tokens with its MTP logits,
 * the routing events of a forward, greedy or sampled generation — each run under a given backend.
 * Header-only; include after tests/runner.h and tests/models.h. */
#ifndef DSV3_TEST_BACKENDS_H
#define DSV3_TEST_BACKENDS_H

#include <math.h>

#include "model/run/forward.h"
#include "model/run/generate.h"
#include "model/run/mtp.h"

/* Tokens of every forward. */
static const int64_t T = 20;

/* The checkpoint variants every backend is compared on (scripts/gen_model.py arguments). */
static const struct {
    const char *name, *args;
} backend_variants[] = {
    {"bf16", "--dtype bf16 --seed 2"},
    {"fp8_ragged", "--dtype fp8 --seed 5"},
    {"sharded", "--dtype bf16 --shards 3 --seed 11"},
    {"q_proj", "--dtype fp8 --q-lora-rank 0 --seed 19"},
    {"no_mtp", "--dtype fp32 --no-mtp --seed 3"},
};
#define N_BACKEND_VARIANTS (sizeof backend_variants / sizeof backend_variants[0])

/* Logits [T, V] and MTP logits [T - 1, V] (when mtp is not NULL and the model has MTP) of ids
 * under backend be with attention form `form`; 0 on success. */
static inline int forward_all(dsv3_model *m, const dsv3_backend *be, const int32_t *ids, dsv3_attn_form form,
                       float *logits, float *mtp) {
    dsv3_err err;
    if (dsv3_model_set_backend(m, be, &err)) return printf("  %s\n", err.msg), 1;
    const dsv3_config *c = dsv3_model_config(m);
    dsv3_run *r;
    dsv3_run_opts o = {.max_seq = T + 1, .attn = form};
    if (dsv3_run_new(&r, m, &o, &err)) return printf("  %s\n", err.msg), 1;
    float *hidden = malloc((size_t)(T * c->hidden_size) * sizeof *hidden);
    int bad = dsv3_forward(r, ids, T, logits, 0, hidden, &err) != DSV3_OK;
    if (!bad && mtp && dsv3_model_has_mtp(m))
        bad = dsv3_forward_mtp(r, ids + 1, hidden, T - 1, mtp, 0, &err) != DSV3_OK;
    if (bad) printf("  %s\n", err.msg);
    free(hidden);
    dsv3_run_free(r);
    return bad;
}

/* Every routing event of a forward: the discrete parts (layer, pos, token, groups kept,
 * experts, zero-bias experts) and the scores (scores, biased, weights) apart. */
typedef struct {
    int32_t *d;
    float *f;
    int64_t nd, nf, capd, capf, E, G, K;
} route_log;
static inline void put_d(route_log *l, int32_t v) {
    if (l->nd == l->capd) l->d = realloc(l->d, (size_t)(l->capd = 2 * l->capd + 64) * 4);
    l->d[l->nd++] = v;
}
static inline void put_f(route_log *l, const float *p, int64_t k) {
    for (int64_t i = 0; i < k; i++) {
        if (l->nf == l->capf) l->f = realloc(l->f, (size_t)(l->capf = 2 * l->capf + 64) * 4);
        l->f[l->nf++] = p[i];
    }
}
static inline void on_route(void *ud, const dsv3_route_event *ev) {
    route_log *l = ud;
    put_d(l, (int32_t)ev->layer);
    put_d(l, (int32_t)ev->pos);
    put_d(l, (int32_t)ev->token);
    for (int64_t g = 0; g < l->G; g++) put_d(l, ev->group_kept[g]);
    for (int64_t k = 0; k < l->K; k++) put_d(l, ev->experts[k]);
    for (int64_t k = 0; k < l->K; k++) put_d(l, ev->experts_nobias[k]);
    put_f(l, ev->scores, l->E);
    put_f(l, ev->biased, l->E);
    put_f(l, ev->weights, l->K);
}

static inline int routes_of(dsv3_model *m, const dsv3_backend *be, const int32_t *ids, route_log *l) {
    dsv3_err err;
    if (dsv3_model_set_backend(m, be, &err)) return printf("  %s\n", err.msg), 1;
    const dsv3_config *c = dsv3_model_config(m);
    *l = (route_log){.E = c->n_routed_experts, .G = c->n_group, .K = c->num_experts_per_tok};
    dsv3_run *r;
    dsv3_run_opts o = {.max_seq = T + 1};
    if (dsv3_run_new(&r, m, &o, &err)) return 1;
    dsv3_hooks h = {.ud = l, .route = on_route};
    dsv3_run_set_hooks(r, &h);
    float *lg = malloc((size_t)(T * c->vocab_size) * 4);
    const int bad = dsv3_forward(r, ids, T, lg, 0, NULL, &err) != DSV3_OK;
    free(lg);
    dsv3_run_free(r);
    return bad;
}

/* Same experts, groups and order; scores within tol (0: bit-equal; -inf where disabled on both). */
static inline int routes_agree(const route_log *a, const route_log *b, double tol, double *worst) {
    if (a->nd == 0 || a->nd != b->nd || a->nf != b->nf || memcmp(a->d, b->d, (size_t)a->nd * 4)) return 0;
    *worst = 0;
    for (int64_t i = 0; i < a->nf; i++) {
        if (isinf(a->f[i]) || isinf(b->f[i])) {
            if (a->f[i] != b->f[i]) return 0;
            continue;
        }
        *worst = fmax(*worst, fabs((double)a->f[i] - b->f[i]));
    }
    return *worst <= tol;
}

static inline void route_log_free(route_log *l) {
    free(l->d);
    free(l->f);
}

/* 16 tokens after the 6-token prompt under be: greedy, or sampled at temperature 0.9 (seed 7). */
static inline int gen_ids(dsv3_model *m, const dsv3_backend *be, const int32_t *prompt, int mtp, int greedy,
                   int32_t *out, int64_t *n_out) {
    dsv3_err err;
    if (dsv3_model_set_backend(m, be, &err)) return printf("  %s\n", err.msg), 1;
    dsv3_run *r;
    dsv3_run_opts o = {.max_seq = 64};
    if (dsv3_run_new(&r, m, &o, &err)) return 1;
    dsv3_gen_opts g = {.max_new_tokens = 16, .seed = 7, .use_mtp = mtp, .eos_id = -1};
    g.sample.greedy = greedy;
    g.sample.temperature = 0.9f;
    const int bad = dsv3_generate(r, prompt, 6, &g, out, n_out, NULL, &err) != DSV3_OK;
    if (bad) printf("  %s\n", err.msg);
    dsv3_run_free(r);
    return bad;
}

#endif
