/* test_probes_c.c — the probes' C API (probes/), each checked against a computation made without
 * it: forward logits with and without interventions (effect), the forward's own hidden output
 * (capture), the model's final logits (lens), the naive MLA form's probabilities (attention),
 * dsv3_generate's statistics (mtp_trace), the route hook (routing). tests/test_probes.sh checks
 * the Lua API on top of these.
 *
 * Models are generated into a temp dir with scripts/gen_model.py (Debian's /usr/bin/python3).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/runner.h"

#include "tests/models.h"

#include "model/run/forward.h"
#include "model/run/generate.h"
#include "model/run/model.h"
#include "probes/attention.h"
#include "probes/capture.h"
#include "probes/effect.h"
#include "probes/lens.h"
#include "probes/mtp_trace.h"
#include "probes/probe.h"
#include "probes/render/routing.h"
#include "probes/routing.h"

enum { T = 12 };

static dsv3_model *tiny(void) {
    return open_model(gen("tiny", "--seed 3"));
}

static void some_ids(int32_t *ids, int64_t n, int64_t V) {
    for (int64_t i = 0; i < n; i++)
        ids[i] = (int32_t)((7 + 37 * i * i + 11 * i) % V);
}

/* Logits [n, V] of one plain forward over ids, with interventions iv (NULL: none) and a run
 * made here, not by the probes' helper. */
static int forward_logits(float *logits, dsv3_model *m, const int32_t *ids, int64_t n,
                          const dsv3_interventions *iv, dsv3_attn_form form) {
    dsv3_run *r = NULL;
    dsv3_err err;
    dsv3_run_opts o = {.max_seq = n, .attn = form};
    if (dsv3_run_new(&r, m, &o, &err)) return printf("  run: %s\n", err.msg), 1;
    dsv3_run_set_interventions(r, iv);
    const dsv3_status st = dsv3_forward(r, ids, n, logits, 0, NULL, &err);
    dsv3_run_free(r);
    return st ? printf("  forward: %s\n", err.msg), 1 : 0;
}

/* KL(P || Q) of the softmaxes of logits a and b, in double, written out from the definition. */
static double kl_ref(const float *a, const float *b, int64_t V) {
    double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0, kl = 0;
    for (int64_t v = 0; v < V; v++)
        ma = fmax(ma, a[v]), mb = fmax(mb, b[v]);
    for (int64_t v = 0; v < V; v++)
        sa += exp(a[v] - ma), sb += exp(b[v] - mb);
    for (int64_t v = 0; v < V; v++) {
        const double p = exp(a[v] - ma) / sa, lq = b[v] - mb - log(sb);
        kl += p * (log(p) - lq);
    }
    return kl;
}

static int64_t argmax_f(const float *x, int64_t V) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (x[v] > x[best]) best = v;
    return best;
}

/* ---------------------------------------------------------------- effect --------------- */

static int test_effect_without_intervention_changes_nothing(void) {
    dsv3_model *m = tiny();
    CHECK(m, "model");
    const dsv3_config *c = dsv3_model_config(m);
    int32_t ids[T];
    some_ids(ids, T, c->vocab_size);
    unsigned char *none = calloc((size_t)((c->num_hidden_layers + 1) * c->n_routed_experts), 1);
    dsv3_interventions iv = {.disabled = none, .forced_pos = -1};
    dsv3_err err;
    for (int pass = 0; pass < 2; pass++) { /* an empty intervention, then none at all */
        dsv3_effect e;
        CHECK(!dsv3_effect_measure(&e, m, ids, T, pass ? NULL : &iv, NULL, &err), "%s", err.msg);
        CHECK(e.T == T && e.mean_kl == 0 && e.max_kl == 0 && e.top1_changed_fraction == 0,
              "pass %d: mean %g max %g changed %g", pass, e.mean_kl, e.max_kl,
              e.top1_changed_fraction);
        for (int64_t t = 0; t < T; t++)
            CHECK(e.kl[t] == 0 && !e.top1_changed[t], "pos %lld", (long long)t);
        dsv3_effect_fini(&e);
    }
    dsv3_effect_fini(NULL);
    free(none);
    dsv3_model_close(m);
    return 0;
}

/* Disabling experts: effect's KL and top-1 flags equal those computed from two dsv3_forward
 * logit arrays, the second with the same dsv3_interventions. */
static int test_effect_kl_matches_two_forwards(void) {
    dsv3_model *m = tiny();
    CHECK(m, "model");
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t V = c->vocab_size, E = c->n_routed_experts;
    int32_t ids[T];
    some_ids(ids, T, V);
    unsigned char *dis = calloc((size_t)((c->num_hidden_layers + 1) * E), 1);
    for (int64_t li = c->first_k_dense_replace; li < c->num_hidden_layers; li++)
        for (int64_t e = 0; e < E; e += 2)
            dis[li * E + e] = 1; /* every other expert */
    dsv3_interventions iv = {.disabled = dis, .forced_pos = -1};
    float *a = malloc((size_t)(T * V) * sizeof *a), *b = malloc((size_t)(T * V) * sizeof *b);
    CHECK(!forward_logits(a, m, ids, T, NULL, DSV3_ATTN_ABSORBED), "base forward");
    CHECK(!forward_logits(b, m, ids, T, &iv, DSV3_ATTN_ABSORBED), "intervened forward");
    dsv3_effect e;
    dsv3_err err;
    CHECK(!dsv3_effect_measure(&e, m, ids, T, &iv, NULL, &err), "%s", err.msg);
    double sum = 0, mx = 0;
    int64_t changed = 0;
    for (int64_t t = 0; t < T; t++) {
        const double ref = kl_ref(a + t * V, b + t * V, V);
        const int flip = argmax_f(a + t * V, V) != argmax_f(b + t * V, V);
        CHECK(fabs(e.kl[t] - ref) <= 1e-9 + 1e-6 * ref, "pos %lld: kl %.12g, reference %.12g",
              (long long)t, e.kl[t], ref);
        CHECK(e.top1_changed[t] == flip, "pos %lld: top-1 flag %d, reference %d", (long long)t,
              e.top1_changed[t], flip);
        sum += ref, mx = fmax(mx, ref), changed += flip;
    }
    CHECK(mx > 1e-6, "disabling half the experts changed nothing (max KL %g)", mx);
    CHECK(fabs(e.mean_kl - sum / T) <= 1e-9 + 1e-6 * sum / T &&
              fabs(e.max_kl - mx) <= 1e-9 + 1e-6 * mx,
          "mean %g vs %g, max %g vs %g", e.mean_kl, sum / T, e.max_kl, mx);
    CHECK(e.top1_changed_fraction == (double)changed / T, "fraction %g", e.top1_changed_fraction);
    dsv3_effect_fini(&e);
    free(a), free(b), free(dis);
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- capture -------------- */

/* The captured "hidden" point equals dsv3_forward's hidden output; resid_out of block l equals
 * resid_in of block l + 1; a layer selection captures exactly those blocks. */
static int test_capture_matches_forward_hidden(void) {
    dsv3_model *m = tiny();
    CHECK(m, "model");
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t H = c->hidden_size, NL = c->num_hidden_layers;
    int32_t ids[T];
    some_ids(ids, T, c->vocab_size);
    float *hidden = malloc((size_t)(T * H) * sizeof *hidden);
    dsv3_run *r = NULL;
    dsv3_err err;
    CHECK(!dsv3_run_new(&r, m, &(dsv3_run_opts){.max_seq = T}, &err), "%s", err.msg);
    CHECK(!dsv3_forward(r, ids, T, NULL, 0, hidden, &err), "%s", err.msg);
    dsv3_run_free(r);

    dsv3_capture_opts o = {.points = {[DSV3_POINT_HIDDEN] = 1,
                                      [DSV3_POINT_RESID_IN] = 1,
                                      [DSV3_POINT_RESID_OUT] = 1,
                                      [DSV3_POINT_CKV] = 1}};
    dsv3_capture cap;
    CHECK(!dsv3_capture_run(&cap, m, ids, T, &o, NULL, &err), "%s", err.msg);
    CHECK(cap.T == T && cap.n == 1 + 3 * NL, "%lld tensors", (long long)cap.n);
    const dsv3_capture_tensor *h = dsv3_capture_find(&cap, DSV3_POINT_HIDDEN, -1);
    CHECK(h && h->dim == H && cap.t[0].point == DSV3_POINT_HIDDEN, "hidden first");
    CHECK(!memcmp(h->v, hidden, (size_t)(T * H) * sizeof *hidden),
          "hidden differs from the forward's");
    for (int64_t li = 0; li + 1 < NL; li++) {
        const dsv3_capture_tensor *out = dsv3_capture_find(&cap, DSV3_POINT_RESID_OUT, li);
        const dsv3_capture_tensor *in = dsv3_capture_find(&cap, DSV3_POINT_RESID_IN, li + 1);
        CHECK(out && in && !memcmp(out->v, in->v, (size_t)(T * H) * sizeof(float)),
              "resid_out.%lld != resid_in.%lld", (long long)li, (long long)li + 1);
    }
    const dsv3_capture_tensor *ckv = dsv3_capture_find(&cap, DSV3_POINT_CKV, 0);
    CHECK(ckv && ckv->dim == c->kv_lora_rank, "ckv dim");
    double norm = 0;
    for (int64_t i = 0; i < T * ckv->dim; i++)
        norm += fabs(ckv->v[i]);
    CHECK(norm > 0, "ckv never written");
    dsv3_capture_fini(&cap);

    unsigned char *sel = calloc((size_t)(NL + 1), 1);
    sel[NL - 1] = 1;
    sel[NL] = 1; /* the MTP block: accepted, never captured */
    dsv3_capture_opts one = {.layers = sel};
    CHECK(!dsv3_capture_run(&cap, m, ids, T, &one, NULL, &err), "%s", err.msg);
    CHECK(cap.n == 1 && cap.t[0].point == DSV3_POINT_RESID_OUT && cap.t[0].layer == NL - 1,
          "selection: %lld tensors", (long long)cap.n);
    dsv3_capture_fini(&cap);
    CHECK(dsv3_capture_run(&cap, m, ids, 0, NULL, NULL, &err) == DSV3_EINVAL &&
              strstr(err.msg, "0 tokens (need 1.."),
          "empty input: %s", err.msg);
    CHECK(!strcmp(dsv3_capture_point_name(DSV3_POINT_CKV), "ckv") && !dsv3_capture_point_name(-1),
          "names");
    free(sel), free(hidden);
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- lens ----------------- */

/* The lens at the last block is the model's own prediction: the top tokens and probabilities of
 * the softmax of dsv3_forward's logits at that position. */
static int test_lens_last_layer_is_model_prediction(void) {
    dsv3_model *m = tiny();
    CHECK(m, "model");
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t V = c->vocab_size, NL = c->num_hidden_layers, K = 5;
    int32_t ids[T];
    some_ids(ids, T, V);
    float *logits = malloc((size_t)(T * V) * sizeof *logits);
    CHECK(!forward_logits(logits, m, ids, T, NULL, DSV3_ATTN_ABSORBED), "forward");
    const int64_t positions[] = {0, T - 1};
    for (int i = 0; i < 2; i++) {
        const int64_t pos = positions[i];
        dsv3_lens l;
        dsv3_err err;
        CHECK(!dsv3_lens_compute(&l, m, ids, T, pos, K, NULL, &err), "%s", err.msg);
        CHECK(l.n_layers == NL && l.k == K && l.pos == pos, "shape");
        const float *x = logits + pos * V;
        double mx = -INFINITY, s = 0;
        for (int64_t v = 0; v < V; v++)
            mx = fmax(mx, x[v]);
        for (int64_t v = 0; v < V; v++)
            s += exp(x[v] - mx);
        const dsv3_lens_entry *top = l.top + (NL - 1) * K;
        for (int64_t j = 0; j < K; j++) {
            const double p = exp(x[top[j].id] - mx) / s;
            CHECK(fabs(top[j].prob - p) < 1e-5, "pos %lld rank %lld: lens %g, model %g",
                  (long long)pos, (long long)j, top[j].prob, p);
            if (j) CHECK(top[j].prob <= top[j - 1].prob, "rank %lld out of order", (long long)j);
        }
        CHECK(top[0].id == argmax_f(x, V), "pos %lld: lens top %d, model argmax %lld",
              (long long)pos, top[0].id, (long long)argmax_f(x, V));
        dsv3_lens_fini(&l);
    }
    dsv3_lens l;
    dsv3_err err;
    CHECK(dsv3_lens_compute(&l, m, ids, T, T, K, NULL, &err) == DSV3_EINVAL &&
              !strcmp(err.msg, "lens: pos out of range"),
          "pos T: %s", err.msg);
    CHECK(dsv3_lens_compute(&l, m, ids, T, 0, 0, NULL, &err) == DSV3_EINVAL &&
              !strcmp(err.msg, "lens: k must be at least 1"),
          "k 0: %s", err.msg);
    CHECK(!dsv3_lens_compute(&l, m, ids, T, 0, V + 10, NULL, &err) && l.k == V, "k capped at V");
    dsv3_lens_fini(&l);
    free(logits);
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- attention ------------ */

/* Rows are causal softmaxes (sum 1, zero above the diagonal) and equal the probabilities the
 * naive MLA form (k and v re-expanded from the latent) reports for the same head. */
typedef struct {
    float *p;
} naive_rows;

static void on_naive(void *ud, int64_t layer, int64_t head, int64_t pos, int64_t n,
                     const float *p) {
    naive_rows *a = ud;
    memcpy(a->p + pos * T, p, (size_t)n * sizeof *p);
}

static int test_attention_rows_match_naive_form(void) {
    dsv3_model *m = tiny();
    CHECK(m, "model");
    const dsv3_config *c = dsv3_model_config(m);
    int32_t ids[T];
    some_ids(ids, T, c->vocab_size);
    const int64_t layer = c->num_hidden_layers - 1, head = c->num_attention_heads - 1;
    dsv3_attention a;
    dsv3_err err;
    CHECK(!dsv3_attention_pattern(&a, m, ids, T, layer, head, NULL, &err), "%s", err.msg);
    CHECK(a.T == T && a.layer == layer && a.head == head, "shape");
    naive_rows ref = {.p = calloc(T * T, sizeof(float))};
    dsv3_run *r = NULL;
    CHECK(!dsv3_run_new(&r, m, &(dsv3_run_opts){.max_seq = T, .attn = DSV3_ATTN_NAIVE}, &err), "%s",
          err.msg);
    dsv3_hooks h = {.ud = &ref, .attn = on_naive, .attn_layer = layer, .attn_head = head};
    dsv3_run_set_hooks(r, &h);
    CHECK(!dsv3_forward(r, ids, T, NULL, 0, NULL, &err), "%s", err.msg);
    dsv3_run_free(r);
    for (int64_t i = 0; i < T; i++) {
        double sum = 0;
        for (int64_t j = 0; j < T; j++) {
            const float p = a.p[i * T + j];
            if (j > i) CHECK(p == 0, "row %lld sees key %lld", (long long)i, (long long)j);
            CHECK(fabsf(p - ref.p[i * T + j]) < 1e-5f, "[%lld, %lld]: %g, naive %g", (long long)i,
                  (long long)j, p, ref.p[i * T + j]);
            sum += p;
        }
        CHECK(fabs(sum - 1) < 1e-5, "row %lld sums to %g", (long long)i, sum);
    }
    dsv3_attention_fini(&a);
    CHECK(dsv3_attention_pattern(&a, m, ids, T, c->num_hidden_layers, 0, NULL, &err) == DSV3_EINVAL,
          "layer out of range accepted");
    CHECK(dsv3_attention_pattern(&a, m, ids, T, 0, c->num_attention_heads, NULL, &err) ==
              DSV3_EINVAL,
          "head out of range accepted");
    free(ref.p);
    dsv3_model_close(m);
    return 0;
}

/* ---------------------------------------------------------------- mtp_trace ------------ */

/* Greedy: the trace's drafted / accepted / token counts are dsv3_generate's own statistics for
 * the same request, and every sum over the steps adds up. */
static int test_mtp_trace_counts_match_generate(void) {
    dsv3_model *m = tiny();
    CHECK(m, "model");
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t n = 5, n_new = 40;
    int32_t ids[5];
    some_ids(ids, n, c->vocab_size);
    dsv3_mtp_trace_opts o = {.n_new = n_new, .seed = 9};
    dsv3_mtp_trace tr;
    dsv3_err err;
    CHECK(!dsv3_mtp_trace_run(&tr, m, ids, n, &o, NULL, &err), "%s", err.msg);

    dsv3_run *r = NULL;
    CHECK(!dsv3_run_new(&r, m, &(dsv3_run_opts){.max_seq = n + n_new + 1}, &err), "%s", err.msg);
    dsv3_gen_opts g = {
        .max_new_tokens = n_new, .sample = {.greedy = 1}, .seed = 9, .use_mtp = 1, .eos_id = -1};
    int32_t out[40];
    int64_t n_out = 0;
    dsv3_gen_stats st;
    CHECK(!dsv3_generate(r, ids, n, &g, out, &n_out, &st, &err), "%s", err.msg);
    dsv3_run_free(r);
    CHECK(st.drafted > 0, "no draft to compare");
    CHECK(tr.drafted == st.drafted && tr.accepted == st.accepted && tr.tokens == st.tokens,
          "trace %lld/%lld/%lld, generate %lld/%lld/%lld", (long long)tr.drafted,
          (long long)tr.accepted, (long long)tr.tokens, (long long)st.drafted,
          (long long)st.accepted, (long long)st.tokens);
    CHECK(fabs(tr.rate - (double)st.accepted / st.drafted) < 1e-12 && !tr.interrupted, "rate %g",
          tr.rate);
    int64_t pd = 0, pa = 0, hist = 0, acc = 0;
    for (int b = 0; b < DSV3_TRACE_BUCKETS; b++)
        pd += tr.pos_drafted[b], pa += tr.pos_accepted[b];
    for (int b = 0; b < DSV3_TRACE_HIST; b++)
        hist += tr.histogram[b];
    for (int64_t i = 0; i < tr.drafted; i++) {
        acc += tr.steps[i].accepted;
        /* greedy: a draft is kept exactly when it is the main model's argmax */
        CHECK(tr.steps[i].accepted == (tr.steps[i].draft == tr.steps[i].main), "step %lld",
              (long long)i);
    }
    CHECK(pd == tr.drafted && pa == tr.accepted && hist == tr.drafted && acc == tr.accepted,
          "sums");
    dsv3_mtp_trace_fini(&tr);
    dsv3_model_close(m);

    dsv3_model *plain = open_model(gen("nomtp", "--seed 3 --no-mtp --no-tokenizer"));
    CHECK(plain, "model without MTP");
    CHECK(dsv3_mtp_trace_run(&tr, plain, ids, n, &o, NULL, &err) == DSV3_EUNSUPPORTED &&
              !strcmp(err.msg, "mtp_trace: the model has no MTP layer"),
          "%s", err.msg);
    dsv3_model_close(plain);
    return 0;
}

/* ---------------------------------------------------------------- routing -------------- */

/* collect gives one record per token and MoE layer, each layer's load sums to T * K, the
 * co-occurrence matrix is symmetric with row sums (K - 1) x the expert's load, and the CSV has
 * a row per (record, rank). */
static int test_routerec_collect_load_and_cooc(void) {
    dsv3_model *m = tiny();
    CHECK(m, "model");
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t E = c->n_routed_experts, K = c->num_experts_per_tok;
    const int64_t moe = c->num_hidden_layers - c->first_k_dense_replace;
    int32_t ids[T];
    some_ids(ids, T, c->vocab_size);
    dsv3_routerec rec;
    dsv3_err err;
    CHECK(!dsv3_routerec_init(&rec, E, K, c->n_group, &err), "%s", err.msg);
    CHECK(!dsv3_routerec_collect(&rec, m, ids, T, NULL, &err), "%s", err.msg);
    CHECK(rec.n == T * moe && !rec.dropped, "%lld records", (long long)rec.n);
    int64_t *counts = malloc((size_t)E * sizeof *counts),
            *cooc = malloc((size_t)(E * E) * sizeof *cooc);
    for (int64_t li = c->first_k_dense_replace; li < c->num_hidden_layers; li++) {
        CHECK(dsv3_routerec_load(&rec, li, counts) == T, "layer %lld tokens", (long long)li);
        dsv3_routerec_cooc(&rec, li, cooc);
        int64_t total = 0;
        for (int64_t a = 0; a < E; a++) {
            int64_t row = 0;
            for (int64_t b = 0; b < E; b++) {
                CHECK(cooc[a * E + b] == cooc[b * E + a], "asymmetric at %lld, %lld", (long long)a,
                      (long long)b);
                row += cooc[a * E + b];
            }
            CHECK(cooc[a * E + a] == 0 && row == (K - 1) * counts[a], "row %lld", (long long)a);
            total += counts[a];
        }
        CHECK(total == T * K, "layer %lld load %lld", (long long)li, (long long)total);
    }
    char *csv = dsv3_render_route_csv(&rec);
    int64_t lines = 0;
    for (const char *p = csv; p && *p; p++)
        lines += *p == '\n';
    CHECK(csv && lines == 1 + rec.n * K, "csv has %lld lines", (long long)lines);
    free(csv), free(counts), free(cooc);
    dsv3_routerec_fini(&rec);
    dsv3_model_close(m);
    return 0;
}

static const dsv3_test tests[] = {
    {"test_effect_without_intervention_changes_nothing",
     test_effect_without_intervention_changes_nothing},
    {"test_effect_kl_matches_two_forwards", test_effect_kl_matches_two_forwards},
    {"test_capture_matches_forward_hidden", test_capture_matches_forward_hidden},
    {"test_lens_last_layer_is_model_prediction", test_lens_last_layer_is_model_prediction},
    {"test_attention_rows_match_naive_form", test_attention_rows_match_naive_form},
    {"test_mtp_trace_counts_match_generate", test_mtp_trace_counts_match_generate},
    {"test_routerec_collect_load_and_cooc", test_routerec_collect_load_and_cooc},
};

int main(int argc, char **argv) {
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
        printf("skip: /usr/bin/python3 with numpy is needed to generate models\n");
        return 77;
    }
    return DSV3_RUN_TESTS_IN_TMPDIR("probes", tests, argc, argv);
}
