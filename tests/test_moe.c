/* test_moe.c — routing rules (docs/ARCHITECTURE.md, "Routing") on hand-made cases, interventions
 * and probe statistics. Links the library's internal header: dsv3_moe_route is not public API. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/runner.h"

#include "model/run/model_internal.h"
#include "probes/routing.h"


/* 8 experts in 4 groups of 2, keep 2 groups, top-2. */
static dsv3_config small_cfg(void) {
    dsv3_config c = {0};
    c.n_routed_experts = 8;
    c.n_group = 4;
    c.topk_group = 2;
    c.num_experts_per_tok = 2;
    c.norm_topk_prob = 1;
    c.routed_scaling_factor = 2.5;
    return c;
}

static float logit_of(float s) { /* inverse sigmoid */
    return logf(s / (1.0f - s));
}

static int test_moe_bias_changes_selection_not_weights(void) {
    dsv3_config c = small_cfg();
    float lg[8], bias[8] = {0};
    const float s[8] = {0.9f, 0.1f, 0.8f, 0.2f, 0.3f, 0.3f, 0.4f, 0.1f};
    for (int e = 0; e < 8; e++) lg[e] = logit_of(s[e]);
    int32_t idx[2];
    float w[2];
    dsv3_route_opts o = {.bias = bias};
    dsv3_moe_route(&c, &o, lg, idx, w);
    CHECK(idx[0] == 0 && idx[1] == 2, "no bias: %d %d", idx[0], idx[1]);
    CHECK(fabsf(w[0] - 2.5f * 0.9f / 1.7f) < 1e-6f && fabsf(w[1] - 2.5f * 0.8f / 1.7f) < 1e-6f,
          "weights %g %g", w[0], w[1]);
    bias[6] = 1.0f; /* expert 6 (group 3) now wins by bias, but its weight uses s = 0.4 */
    dsv3_moe_route(&c, &o, lg, idx, w);
    CHECK(idx[0] == 6, "bias ignored: %d", idx[0]);
    CHECK(fabsf(w[0] - 2.5f * 0.4f / (0.4f + 0.9f)) < 1e-6f, "weight from biased score: %g", w[0]);
    return 0;
}

static int test_moe_ties_go_to_lower_index(void) {
    dsv3_config c = small_cfg();
    float lg[8];
    for (int e = 0; e < 8; e++) lg[e] = 0.0f; /* all tied */
    int32_t idx[2];
    float w[2];
    dsv3_route_opts o = {0};
    unsigned char groups[4];
    o.groups_out = groups;
    dsv3_moe_route(&c, &o, lg, idx, w);
    CHECK(idx[0] == 0 && idx[1] == 1, "tie order %d %d", idx[0], idx[1]);
    CHECK(groups[0] && groups[1] && !groups[2] && !groups[3], "group tie order");
    return 0;
}

/* Non-kept groups are -inf, not 0.0: a kept expert with a negative biased score must still be
 * preferred to any expert of a dropped group (the HF 0.0-masking difference, "Routing" step 4). */
static int test_moe_dropped_groups_are_minus_inf(void) {
    dsv3_config c = small_cfg();
    c.topk_group = 1;
    float lg[8], bias[8];
    for (int e = 0; e < 8; e++) {
        lg[e] = 0.0f; /* s = 0.5 */
        bias[e] = -2.0f;
    }
    bias[0] = 0.0f; /* group 0 wins the group score; its expert 1 has biased score -1.5 */
    int32_t idx[2];
    float w[2];
    dsv3_route_opts o = {.bias = bias};
    dsv3_moe_route(&c, &o, lg, idx, w);
    CHECK(idx[0] == 0 && idx[1] == 1, "chose %d %d (a dropped group leaked in)", idx[0], idx[1]);
    return 0;
}

static int test_moe_disabled_and_forced(void) {
    dsv3_config c = small_cfg();
    float lg[8];
    const float s[8] = {0.9f, 0.1f, 0.8f, 0.2f, 0.3f, 0.3f, 0.4f, 0.1f};
    for (int e = 0; e < 8; e++) lg[e] = logit_of(s[e]);
    unsigned char dis[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    int32_t idx[2], forced[2] = {7, 3};
    float w[2];
    dsv3_route_opts o = {.disabled = dis};
    dsv3_moe_route(&c, &o, lg, idx, w);
    CHECK(idx[0] == 2 && idx[1] != 0, "disabled expert 0 chosen: %d %d", idx[0], idx[1]);
    dsv3_route_opts f = {.forced = forced};
    dsv3_moe_route(&c, &f, lg, idx, w);
    CHECK(idx[0] == 7 && idx[1] == 3, "forced ignored");
    CHECK(fabsf(w[0] - 2.5f * 0.1f / 0.3f) < 1e-5f, "forced weight %g", w[0]);
    return 0;
}

/* DeepSeek-V2 routing ("Family"): softmax scores; group_limited_greedy ranks a group by its best
 * score (not the top-2 sum); greedy ignores groups; weights unnormalised, times 16. The scores
 * p are exact softmax outputs of logits log p. */
static int test_moe_v2_softmax_group_max_and_greedy(void) {
    dsv3_config c = small_cfg();
    c.family = DSV3_FAMILY_V2;
    c.scoring_func = DSV3_SCORE_SOFTMAX;
    c.topk_method = DSV3_TOPK_GROUP_LIMITED;
    c.norm_topk_prob = 0;
    c.routed_scaling_factor = 16.0;
    const float p[8] = {0.30f, 0.01f, 0.15f, 0.14f, 0.20f, 0.01f, 0.10f, 0.09f};
    float lg[8], scores[8];
    for (int e = 0; e < 8; e++) lg[e] = logf(p[e]) + 3.0f; /* softmax is shift-invariant */
    int32_t idx[2];
    float w[2];
    unsigned char groups[4];
    dsv3_route_opts o = {.scores_out = scores, .groups_out = groups};
    /* group max: g0 0.30, g2 0.20, g1 0.15 (the top-2 sum would keep g1: 0.29 > 0.21) */
    dsv3_moe_route(&c, &o, lg, idx, w);
    CHECK(groups[0] && !groups[1] && groups[2] && !groups[3], "group max kept %d%d%d%d", groups[0],
          groups[1], groups[2], groups[3]);
    CHECK(idx[0] == 0 && idx[1] == 4, "group_limited_greedy chose %d %d", idx[0], idx[1]);
    CHECK(fabsf(w[0] - 16.0f * 0.30f) < 1e-5f && fabsf(w[1] - 16.0f * 0.20f) < 1e-5f,
          "weights %g %g (unnormalised, x16)", w[0], w[1]);
    float sum = 0;
    for (int e = 0; e < 8; e++) sum += scores[e];
    CHECK(fabsf(sum - 1.0f) < 1e-6f && fabsf(scores[2] - 0.15f) < 1e-6f, "softmax scores");
    /* the same rule under noaux_tc keeps g0 and g1 (top-2 sums) */
    c.topk_method = DSV3_TOPK_NOAUX_TC;
    dsv3_moe_route(&c, &o, lg, idx, w);
    CHECK(idx[0] == 0 && idx[1] == 2, "noaux_tc chose %d %d", idx[0], idx[1]);
    /* one group kept: group_limited_greedy stays in g0, greedy does not look at groups */
    c.topk_group = 1;
    c.topk_method = DSV3_TOPK_GROUP_LIMITED;
    dsv3_moe_route(&c, &o, lg, idx, w);
    CHECK(idx[0] == 0 && idx[1] == 1, "group_limited_greedy (1 group) chose %d %d", idx[0], idx[1]);
    c.topk_method = DSV3_TOPK_GREEDY;
    dsv3_moe_route(&c, &o, lg, idx, w);
    CHECK(idx[0] == 0 && idx[1] == 4, "greedy chose %d %d", idx[0], idx[1]);
    CHECK(groups[0] && groups[1] && groups[2] && groups[3], "greedy keeps every group");
    /* norm_topk_prob in a V2 config: normalised, not scaled */
    c.norm_topk_prob = 1;
    dsv3_moe_route(&c, &o, lg, idx, w);
    CHECK(fabsf(w[0] - 0.30f / 0.50f) < 1e-5f, "V2 normalised weight %g", w[0]);
    /* a zero bias routes exactly as no bias (models without e_score_correction_bias) */
    const float zero[8] = {0};
    int32_t idx0[2];
    float w0[2];
    dsv3_route_opts z = {.bias = zero};
    dsv3_moe_route(&c, &z, lg, idx0, w0);
    CHECK(idx0[0] == idx[0] && idx0[1] == idx[1] && !memcmp(w0, w, sizeof w), "zero bias differs");
    return 0;
}

static int test_load_stats_hand_case(void) {
    dsv3_routerec r;
    dsv3_err err;
    CHECK(!dsv3_routerec_init(&r, 4, 2, 2, &err) && !dsv3_routerec_reserve(&r, 3, &err), "init");
    /* three tokens at layer 5: experts {0,1}, {0,2}, {0,3}; one at layer 6 */
    const int32_t ex[4][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}};
    float sc[4] = {0}, w[2] = {1, 1};
    unsigned char g[2] = {1, 1};
    dsv3_hooks h = dsv3_routerec_hooks(&r);
    for (int i = 0; i < 4; i++) {
        dsv3_route_event ev = {.layer = i < 3 ? 5 : 6, .pos = i, .token = i, .scores = sc, .biased = sc,
                               .group_kept = g, .experts = ex[i], .weights = w, .experts_nobias = ex[i]};
        h.route(h.ud, &ev);
    }
    CHECK(r.n == 3 && r.dropped == 1, "capacity: n %lld dropped %lld", (long long)r.n, (long long)r.dropped);
    int64_t counts[4];
    CHECK(dsv3_routerec_load(&r, 5, counts) == 3, "tokens");
    CHECK(counts[0] == 3 && counts[1] == 1 && counts[2] == 1 && counts[3] == 1, "counts");
    /* mean load 6/4 = 1.5, max 3: maxvio = 3/1.5 - 1 = 1 */
    CHECK(fabs(dsv3_load_maxvio(counts, 4) - 1.0) < 1e-12, "maxvio %g", dsv3_load_maxvio(counts, 4));
    dsv3_routerec_fini(&r);
    return 0;
}

/* Forward-level checks on a generated tiny model. */
static dsv3_model *tiny(void) {
    static char dir[128];
    snprintf(dir, sizeof dir, "/tmp/dsv3-test-moe-%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/gen_model.py %s --quiet --no-tokenizer --seed 21", dir);
    if (system(cmd) != 0) return NULL;
    dsv3_model *m;
    dsv3_err err;
    return dsv3_model_open(&m, dir, &err) ? NULL : m;
}

static int run_logits(dsv3_model *m, const dsv3_interventions *iv, float *out, int64_t T) {
    dsv3_run *r;
    dsv3_err err;
    dsv3_run_opts o = {.max_seq = T, .max_chunk = T};
    if (dsv3_run_new(&r, m, &o, &err)) return 1;
    dsv3_run_set_interventions(r, iv);
    int32_t ids[32];
    for (int64_t i = 0; i < T; i++) ids[i] = (int32_t)(i * 37 % 1000);
    int rc = dsv3_forward(r, ids, T, out, 0, NULL, &err) != DSV3_OK;
    dsv3_run_free(r);
    return rc;
}

static int test_ablating_no_expert_is_bit_exact_and_bias_round_trips(void) {
    dsv3_model *m = tiny();
    CHECK(m, "model");
    const dsv3_config *c = dsv3_model_config(m);
    const int64_t T = 12, V = c->vocab_size, E = c->n_routed_experts;
    float *a = malloc(T * V * 4), *b = malloc(T * V * 4);
    unsigned char *none = calloc((size_t)((c->num_hidden_layers + 1) * E), 1);
    dsv3_interventions iv = {.disabled = none, .forced_pos = -1};
    CHECK(!run_logits(m, NULL, a, T) && !run_logits(m, &iv, b, T), "forward");
    CHECK(!memcmp(a, b, (size_t)(T * V) * 4), "ablating zero experts changed the logits");
    /* zero_bias changes the numbers (the bias flips choices on this model) */
    dsv3_interventions zb = {.zero_bias = 1, .forced_pos = -1};
    CHECK(!run_logits(m, &zb, b, T), "forward");
    CHECK(memcmp(a, b, (size_t)(T * V) * 4) != 0, "zero_bias had no effect");
    /* editing the bias changes logits; reset restores them bit-exactly */
    const float *bias = dsv3_model_bias(m, c->first_k_dense_replace);
    CHECK(bias && !dsv3_model_bias(m, 0), "bias access");
    float *edited = malloc((size_t)E * sizeof *edited);
    for (int64_t e = 0; e < E; e++) edited[e] = bias[e] + 0.3f * (float)(e % 3);
    CHECK(!dsv3_model_set_bias(m, c->first_k_dense_replace, edited, NULL), "set_bias");
    CHECK(dsv3_model_set_bias(m, 0, edited, NULL) == DSV3_EINVAL, "set_bias on a dense layer");
    free(edited);
    CHECK(!run_logits(m, NULL, b, T) && memcmp(a, b, (size_t)(T * V) * 4) != 0, "bias edit had no effect");
    dsv3_model_bias_reset(m, -1);
    CHECK(!run_logits(m, NULL, b, T) && !memcmp(a, b, (size_t)(T * V) * 4), "bias reset not exact");
    free(a), free(b), free(none);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dsv3_model_dir(m));
    dsv3_model_close(m);
    return system(cmd) != 0;
}

static const dsv3_test tests[] = {
    {"test_moe_bias_changes_selection_not_weights", test_moe_bias_changes_selection_not_weights},
    {"test_moe_ties_go_to_lower_index", test_moe_ties_go_to_lower_index},
    {"test_moe_dropped_groups_are_minus_inf", test_moe_dropped_groups_are_minus_inf},
    {"test_moe_disabled_and_forced", test_moe_disabled_and_forced},
    {"test_moe_v2_softmax_group_max_and_greedy", test_moe_v2_softmax_group_max_and_greedy},
    {"test_load_stats_hand_case", test_load_stats_hand_case},
    {"test_ablating_no_expert_is_bit_exact_and_bias_round_trips", test_ablating_no_expert_is_bit_exact_and_bias_round_trips},
};

int main(int argc, char **argv) {
    return DSV3_RUN_TESTS(tests, argc, argv);
}
