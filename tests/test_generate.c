/* test_generate.c — decoding with the latent cache, greedy MTP identity, and the distribution of
 * speculative sampling (issue: generation; docs/ARCHITECTURE.md,
 * "Latent cache", "Speculative decoding").
 *
 * Models are generated into a temp dir with scripts/gen_model.py (Debian's /usr/bin/python3).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/runner.h"

#include "model/run/forward.h"
#include "model/run/generate.h"
#include "model/run/model.h"

static char tmpdir[256];

static dsv3_model *make_model(const char *name, const char *args) {
    char dir[512], cmd[1024];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/gen_model.py %s --quiet %s", dir, args);
    if (system(cmd) != 0) return NULL;
    dsv3_model *m;
    dsv3_err err;
    if (dsv3_model_open(&m, dir, &err)) {
        printf("  open %s: %s\n", dir, err.msg);
        return NULL;
    }
    return m;
}

static double max_rel(const float *a, const float *b, int64_t n) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / mb;
}

/* dsv3_argmax (two passes) against the one-pass scan it replaced, on random lengths 1..300 with
 * ties, +-0, -inf, and NaNs (never picked, except index 0 when logits[0] is NaN). */
static int32_t argmax_scan(const float *v, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int32_t)best;
}

static int test_argmax_matches_scan(void) {
    float v[300];
    for (int it = 0; it < 20000; it++) {
        const int64_t n = 1 + (int64_t)(test_u64() % 300);
        const int few = it % 3 == 0; /* few distinct values: many ties */
        for (int64_t i = 0; i < n; i++) {
            const uint64_t k = test_u64() % 64;
            v[i] = few ? (float)(test_u64() % 4) : (float)urand();
            if (k == 0) v[i] = NAN;
            if (k == 1) v[i] = -INFINITY;
            if (k == 2) v[i] = 0.0f;
            if (k == 3) v[i] = -0.0f;
        }
        if (it % 5 == 0) v[0] = NAN;
        if (it % 7 == 0) /* all equal: index 0 */
            for (int64_t i = 0; i < n; i++) v[i] = 1.5f;
        CHECK(dsv3_argmax(v, n) == argmax_scan(v, n), "case %d (n %lld): %d vs the scan's %d", it,
              (long long)n, dsv3_argmax(v, n), argmax_scan(v, n));
    }
    return 0;
}

/* Step-by-step decoding over the latent cache gives the full-sequence logits at every
 * position, also past YaRN's original context (tiny: 128), in both MLA forms. */
static int test_decode_matches_full_forward(void) {
    dsv3_model *m = make_model("inc", "--seed 31");
    CHECK(m, "model");
    const int64_t T = 200, V = dsv3_model_config(m)->vocab_size;
    int32_t *ids = malloc(T * sizeof *ids);
    float *full = malloc(T * V * sizeof *full), *step = malloc(V * sizeof *step);
    for (int64_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 7919 + 13) % V);
    dsv3_err err;
    double worst = 0;
    for (int form = 0; form < 2; form++) {
        dsv3_run *a, *b;
        dsv3_run_opts oa = {.max_seq = T, .max_chunk = T, .attn = form}, ob = {.max_seq = T, .max_chunk = 4, .attn = form};
        CHECK(!dsv3_run_new(&a, m, &oa, &err) && !dsv3_run_new(&b, m, &ob, &err), "%s", err.msg);
        CHECK(!dsv3_forward(a, ids, T, full, 0, NULL, &err), "%s", err.msg);
        for (int64_t t = 0; t < T; t++) {
            CHECK(!dsv3_forward(b, ids + t, 1, step, 1, NULL, &err), "%s", err.msg);
            double r = max_rel(step, full + t * V, V);
            worst = fmax(worst, r);
            CHECK(r <= 1e-5, "form %d position %lld: rel %.3g", form, (long long)t, r);
        }
        dsv3_run_free(a);
        dsv3_run_free(b);
    }
    printf("  worst rel diff over %lld positions x 2 forms: %.3g\n", (long long)T, worst);
    free(ids), free(full), free(step);
    dsv3_model_close(m);
    return 0;
}

/* Greedy decoding with the MTP draft must produce exactly the tokens of plain greedy decoding. */
static int test_greedy_mtp_identical(void) {
    dsv3_model *m = make_model("greedy", "--seed 37");
    CHECK(m, "model");
    const int64_t V = dsv3_model_config(m)->vocab_size, N = 40;
    int32_t prompt[16], a[64], b[64];
    dsv3_err err;
    int cases = 0;
    for (int p = 0; p < 30; p++) {
        const int64_t n = 1 + p % 12;
        for (int64_t i = 0; i < n; i++) prompt[i] = (int32_t)((p * 131 + i * 17 + 1) % V);
        int64_t na, nb;
        dsv3_run *r;
        dsv3_run_opts o = {.max_seq = n + N + 1, .max_chunk = 5};
        dsv3_gen_opts g = {.max_new_tokens = N - p % 7, .sample = {.greedy = 1}, .eos_id = -1};
        CHECK(!dsv3_run_new(&r, m, &o, &err), "%s", err.msg);
        CHECK(!dsv3_generate(r, prompt, n, &g, a, &na, NULL, &err), "%s", err.msg);
        dsv3_run_free(r);
        g.use_mtp = 1;
        dsv3_gen_stats st;
        CHECK(!dsv3_run_new(&r, m, &o, &err), "%s", err.msg);
        CHECK(!dsv3_generate(r, prompt, n, &g, b, &nb, &st, &err), "%s", err.msg);
        dsv3_run_free(r);
        CHECK(na == nb && na == g.max_new_tokens, "prompt %d: %lld vs %lld tokens", p, (long long)na, (long long)nb);
        CHECK(!memcmp(a, b, (size_t)na * sizeof *a), "prompt %d: MTP output differs from greedy", p);
        CHECK(st.drafted > 0, "no drafts");
        cases++;
    }
    printf("  %d prompts identical with and without MTP\n", cases);
    dsv3_model_close(m);
    return 0;
}

/* On a vocabulary of 8, sampled speculative decoding must keep the joint distribution of the
 * first two tokens, p(t1) p(t2 | t1) ("Speculative decoding" step 5), while both the accept and the
 * reject path occur. G-test over the cells with expected count >= 5 (the rest pooled), p = 1e-4. */
static int spec_distribution(dsv3_model *m, const dsv3_sample_opts *so, const char *label) {
    const int64_t V = dsv3_model_config(m)->vocab_size;
    const int32_t prompt[3] = {1, 5, 2};
    dsv3_err err;
    /* Exact joint distribution from plain forwards. */
    double *joint = calloc((size_t)(V * V), sizeof *joint);
    float *lg = malloc(V * sizeof *lg), *p1 = malloc(V * sizeof *p1), *p2 = malloc(V * sizeof *p2);
    int32_t *order = malloc(V * sizeof *order);
    dsv3_run *r;
    dsv3_run_opts o = {.max_seq = 8, .max_chunk = 4};
    CHECK(!dsv3_run_new(&r, m, &o, &err), "%s", err.msg);
    CHECK(!dsv3_forward(r, prompt, 3, lg, 1, NULL, &err), "%s", err.msg);
    dsv3_sample_probs(p1, lg, V, so, order);
    for (int32_t t1 = 0; t1 < V; t1++) {
        dsv3_run_truncate(r, 3);
        CHECK(!dsv3_forward(r, &t1, 1, lg, 1, NULL, &err), "%s", err.msg);
        dsv3_sample_probs(p2, lg, V, so, order);
        for (int32_t t2 = 0; t2 < V; t2++) joint[t1 * V + t2] = (double)p1[t1] * p2[t2];
    }
    const int N = 4000;
    long *count = calloc((size_t)(V * V), sizeof *count);
    int64_t drafted = 0, accepted = 0;
    for (int s = 0; s < N; s++) {
        int32_t out[4];
        int64_t n_out;
        dsv3_gen_stats st;
        dsv3_gen_opts g = {.max_new_tokens = 3, .sample = *so, .seed = (uint64_t)s + 1, .use_mtp = 1, .eos_id = -1};
        dsv3_run_truncate(r, 0);
        CHECK(!dsv3_generate(r, prompt, 3, &g, out, &n_out, &st, &err), "%s", err.msg);
        count[out[0] * V + out[1]]++;
        drafted += st.drafted;
        accepted += st.accepted;
    }
    double G = 0, rest_e = 0;
    long rest_o = 0;
    int df = -1;
    for (int64_t i = 0; i < V * V; i++) {
        const double e = joint[i] * N;
        if (e >= 5) {
            if (count[i]) G += 2.0 * count[i] * log(count[i] / e); /* o = 0 adds nothing */
            df++;
        } else {
            rest_e += e;
            rest_o += count[i];
        }
    }
    if (rest_e > 0 && rest_o > 0) {
        G += 2.0 * rest_o * log(rest_o / rest_e);
        df++;
    }
    /* Wilson-Hilferty: chi-square quantile at p = 1e-4 (z = 3.719). */
    const double z = 3.719, k = df > 0 ? df : 1;
    const double crit = k * pow(1 - 2 / (9 * k) + z * sqrt(2 / (9 * k)), 3);
    printf("  %s: G = %.1f, df = %d, critical(p=1e-4) = %.1f, drafts accepted %lld/%lld\n", label, G,
           df, crit, (long long)accepted, (long long)drafted);
    CHECK(accepted > 0 && accepted < drafted, "%s: both accept and reject paths must occur", label);
    CHECK(G < crit, "%s: sampled pairs do not follow p(t1) p(t2|t1)", label);
    free(joint), free(lg), free(p1), free(p2), free(order), free(count);
    dsv3_run_free(r);
    return 0;
}

static int test_speculative_sampling_keeps_distribution(void) {
    dsv3_model *m = make_model("vocab8", "--seed 41 --vocab 8 --layers 1");
    CHECK(m, "model");
    dsv3_sample_opts t1 = {.temperature = 1.0f}, t2 = {.temperature = 0.7f, .top_k = 5, .top_p = 0.9f};
    int rc = spec_distribution(m, &t1, "temperature 1") || spec_distribution(m, &t2, "T 0.7 top-k 5 top-p 0.9");
    dsv3_model_close(m);
    return rc;
}

static int test_generate_rejects_bad_requests(void) {
    dsv3_model *m = make_model("bad", "--seed 43 --no-mtp");
    CHECK(m, "model");
    dsv3_err err;
    dsv3_run *r;
    dsv3_run_opts o = {.max_seq = 16, .max_chunk = 8};
    CHECK(!dsv3_run_new(&r, m, &o, &err), "%s", err.msg);
    int32_t p[2] = {1, 2}, out[32];
    int64_t n;
    dsv3_gen_opts g = {.max_new_tokens = 0, .sample = {.greedy = 1}, .eos_id = -1};
    CHECK(dsv3_generate(r, p, 2, &g, out, &n, NULL, &err) == DSV3_EINVAL, "-n 0 accepted");
    g.max_new_tokens = 30;
    CHECK(dsv3_generate(r, p, 2, &g, out, &n, NULL, &err) == DSV3_EINVAL && strstr(err.msg, "context"),
          "too long accepted: %s", err.msg);
    g.max_new_tokens = 4;
    CHECK(dsv3_generate(r, p, 0, &g, out, &n, NULL, &err) == DSV3_EINVAL, "empty prompt accepted");
    g.use_mtp = 1;
    CHECK(dsv3_generate(r, p, 2, &g, out, &n, NULL, &err) == DSV3_EUNSUPPORTED, "MTP without MTP layer");
    volatile int stop = 1;
    g.use_mtp = 0;
    g.cancel = &stop;
    CHECK(dsv3_generate(r, p, 2, &g, out, &n, NULL, &err) == DSV3_EINTR, "cancel ignored: %s", err.msg);
    dsv3_run_free(r);
    dsv3_model_close(m);
    return 0;
}

static const dsv3_test tests[] = {
    {"test_argmax_matches_scan", test_argmax_matches_scan},
    {"test_decode_matches_full_forward", test_decode_matches_full_forward},
    {"test_greedy_mtp_identical", test_greedy_mtp_identical},
    {"test_speculative_sampling_keeps_distribution", test_speculative_sampling_keeps_distribution},
    {"test_generate_rejects_bad_requests", test_generate_rejects_bad_requests},
};

int main(int argc, char **argv) {
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
        printf("skip: /usr/bin/python3 with numpy is needed to generate models\n");
        return 77;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dsv3-test-generate-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const int rc = DSV3_RUN_TESTS(tests, argc, argv);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", tmpdir);
    return rc;
}
