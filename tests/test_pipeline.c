/* test_pipeline.c — unit tests for model/train/pipeline (schedules, simulator, validator, measures),
 * probes/render/pipeline (text, SVG, JSON) and the Lua value of repl/session/lua_pipeline.
 *
 * Hand-checked small cases, a sweep where every built schedule must pass the validator, broken
 * schedules that must be rejected with the right rule, and the report's bubble formulas against
 * the simulator under the conditions model/train/pipeline.h states.
 * Usage: test_pipeline [NAME...] runs the named tests (default: all).
 */
#include "model/train/pipeline.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/runner.h"

#include "probes/render/pipeline.h"
#include "repl/session/lua_pipeline.h"


static void check_near(double got, double want, const char *what, int line) {
    if (fabs(got - want) > 1e-9) {
        fprintf(stderr, "  %s:%d: %s = %g, expected %g\n", __FILE__, line, what, got, want);
        dsv3_test_failed_checks++;
    }
}
#define CHECK_NEAR(got, want) check_near((got), (want), #got, __LINE__)

static dsv3_pipe_opts opts(int pp, int micro, double f, double b, double w, double a, double fb) {
    return (dsv3_pipe_opts){.pp = pp, .micro = micro, .f = f, .b = b, .w = w, .a = a, .fb = fb};
}

/* Builds or reports the error and returns 0. */
static int build(dsv3_pipe_schedule *s, dsv3_pipe_method m, dsv3_pipe_opts o) {
    dsv3_err err = {{0}};
    if (dsv3_pipe_init(s, m, &o, &err)) {
        fprintf(stderr, "  build %s pp %d micro %d: %s\n", dsv3_pipe_method_name(m), o.pp, o.micro,
                err.msg);
        dsv3_test_failed_checks++;
        return 0;
    }
    return 1;
}

/* Index of the op (kind, mb, dir, stage), or -1. */
static int64_t find_op(const dsv3_pipe_schedule *s, dsv3_pipe_kind k, int mb, int dir, int stage) {
    for (int64_t i = 0; i < s->n_ops; i++)
        if (s->ops[i].kind == k && s->ops[i].mb == mb && s->ops[i].dir == dir &&
            s->ops[i].stage == stage)
            return i;
    return -1;
}

/* Expected op on a rank, in execution order. */
typedef struct {
    dsv3_pipe_kind kind;
    int rank, mb;
    double start, end;
} want_op;

static void check_ops(const dsv3_pipe_schedule *s, const want_op *w, int n) {
    EXPECT(s->n_ops == n);
    for (int i = 0; i < n && i < s->n_ops; i++) {
        const dsv3_pipe_op *o = &s->ops[i];
        if (o->kind != w[i].kind || o->rank != w[i].rank || o->mb != w[i].mb ||
            o->start != w[i].start || o->end != w[i].end) {
            fprintf(stderr,
                    "  op %d: %s rank %d mb %d [%g, %g], expected %s rank %d mb %d [%g, %g]\n", i,
                    dsv3_pipe_kind_name(o->kind), o->rank, o->mb, o->start, o->end,
                    dsv3_pipe_kind_name(w[i].kind), w[i].rank, w[i].mb, w[i].start, w[i].end);
            dsv3_test_failed_checks++;
        }
    }
}

/* ---------------------------------------------------------------- hand cases ------------ */

/* PP=2, M=2, f=b=w=1: rank 1 runs F0 BW0 F1 BW1 back to back after F0 arrives at 1; rank 0's
 * backwards wait for rank 1's. Bubble (PP-1)(F+B) = 1 * (1 + 2) = 3 on both ranks. */
static int test_pipeline_1f1b_pp2_m2_exact_times(void) {
    dsv3_pipe_schedule s;
    if (!build(&s, DSV3_PIPE_1F1B, opts(2, 2, 1, 1, 1, 0, 0))) return 0;
    const want_op w[] = {
        {DSV3_PIPE_F, 0, 0, 0, 1},  {DSV3_PIPE_F, 0, 1, 1, 2},  {DSV3_PIPE_BW, 0, 0, 4, 6},
        {DSV3_PIPE_BW, 0, 1, 7, 9}, {DSV3_PIPE_F, 1, 0, 1, 2},  {DSV3_PIPE_BW, 1, 0, 2, 4},
        {DSV3_PIPE_F, 1, 1, 4, 5},  {DSV3_PIPE_BW, 1, 1, 5, 7},
    };
    check_ops(&s, w, 8);
    dsv3_pipe_summary sum;
    dsv3_pipe_rank rk[2];
    EXPECT(dsv3_pipe_measure(&sum, rk, &s, NULL) == DSV3_OK);
    CHECK_NEAR(sum.makespan, 9);
    CHECK_NEAR(sum.bubble, 3);
    CHECK_NEAR(sum.formula, 3);
    CHECK_NEAR(rk[0].busy, 6);
    CHECK_NEAR(rk[1].bubble, 3);
    EXPECT(rk[0].peak_act == 2 && rk[1].peak_act == 1);
    EXPECT(sum.param_copies == 1);
    dsv3_pipe_fini(&s);
    return 0;
}

/* PP=2, M=2 ZB-H1, f=b=w=1: rank 1 delays W0 behind B1; rank 0 fills the wait with W0.
 * Bubble (PP-1)(F+B-2W) = 1 * (1 + 2 - 2) = 1. */
static int test_pipeline_zb1p_pp2_m2_exact_times(void) {
    dsv3_pipe_schedule s;
    if (!build(&s, DSV3_PIPE_ZB1P, opts(2, 2, 1, 1, 1, 0, 0))) return 0;
    const want_op w[] = {
        {DSV3_PIPE_F, 0, 0, 0, 1}, {DSV3_PIPE_F, 0, 1, 1, 2}, {DSV3_PIPE_B, 0, 0, 3, 4},
        {DSV3_PIPE_W, 0, 0, 4, 5}, {DSV3_PIPE_B, 0, 1, 5, 6}, {DSV3_PIPE_W, 0, 1, 6, 7},
        {DSV3_PIPE_F, 1, 0, 1, 2}, {DSV3_PIPE_B, 1, 0, 2, 3}, {DSV3_PIPE_F, 1, 1, 3, 4},
        {DSV3_PIPE_B, 1, 1, 4, 5}, {DSV3_PIPE_W, 1, 0, 5, 6}, {DSV3_PIPE_W, 1, 1, 6, 7},
    };
    check_ops(&s, w, 12);
    dsv3_pipe_summary sum;
    EXPECT(dsv3_pipe_measure(&sum, NULL, &s, NULL) == DSV3_OK);
    CHECK_NEAR(sum.makespan, 7);
    CHECK_NEAR(sum.bubble, 1);
    CHECK_NEAR(sum.formula, 1);
    EXPECT(sum.peak_act == 2);
    dsv3_pipe_fini(&s);
    return 0;
}

/* PP=2, M=4 DualPipe (one micro-batch pair per direction per rank): both ranks hold both
 * directions, the report's bubble is (2/2-1)(...) = 0 and the simulator finds no idle time. */
static int test_pipeline_dualpipe_pp2_m4_has_no_bubble(void) {
    dsv3_pipe_schedule s;
    if (!build(&s, DSV3_PIPE_DUALPIPE, opts(2, 4, 1, 1, 1, 0, 0))) return 0;
    EXPECT(s.n_dirs == 2);
    EXPECT(dsv3_pipe_validate(&s, NULL, NULL) == DSV3_OK);
    dsv3_pipe_summary sum;
    dsv3_pipe_rank rk[2];
    EXPECT(dsv3_pipe_measure(&sum, rk, &s, NULL) == DSV3_OK);
    CHECK_NEAR(sum.bubble, 0);
    CHECK_NEAR(sum.formula, 0);
    EXPECT(rk[0].param_copies == 2 && rk[1].param_copies == 2);
    EXPECT(sum.peak_act == 3);
    /* rank 0 starts with F of direction 0 (its phase 0), rank 1 with F of direction 1 */
    EXPECT(s.ops[0].kind == DSV3_PIPE_F && s.ops[0].dir == 0 && s.ops[0].rank == 0);
    int64_t first1 = 0;
    while (first1 < s.n_ops && s.ops[first1].rank != 1)
        first1++;
    EXPECT(first1 < s.n_ops && s.ops[first1].dir == 1 && s.ops[first1].stage == 0);
    dsv3_pipe_fini(&s);
    return 0;
}

/* The DualPipe order of one rank follows deepseek-ai/DualPipe step by step: PP=4, M=8, rank 0
 * (h = 0, H = 2): 2 F0, then F0 F1, then B1(split) W F1, then pairs F0&B1, F1&B0 ... */
static int test_pipeline_dualpipe_rank0_order_follows_reference(void) {
    dsv3_pipe_schedule s;
    if (!build(&s, DSV3_PIPE_DUALPIPE, opts(4, 8, 1, 1, 1, 0, 0))) return 0;
    /* phase 0 = dir 0, phase 1 = dir 1 on rank 0 */
    const struct {
        dsv3_pipe_kind k;
        int dir, paired;
    } w[] = {
        {DSV3_PIPE_F, 0, 0},  {DSV3_PIPE_F, 0, 0}, {DSV3_PIPE_F, 0, 0},  {DSV3_PIPE_F, 1, 0},
        {DSV3_PIPE_B, 1, 0},  {DSV3_PIPE_W, 1, 0}, {DSV3_PIPE_F, 1, 0},  {DSV3_PIPE_F, 0, 1},
        {DSV3_PIPE_BW, 1, 1}, {DSV3_PIPE_F, 1, 1}, {DSV3_PIPE_BW, 0, 1},
    };
    for (int i = 0; i < (int)(sizeof w / sizeof w[0]); i++) {
        const dsv3_pipe_op *o = &s.ops[i];
        if (o->rank != 0 || o->kind != w[i].k || o->dir != w[i].dir ||
            (o->pair >= 0) != w[i].paired) {
            fprintf(stderr, "  op %d: %s dir %d pair %lld\n", i, dsv3_pipe_kind_name(o->kind),
                    o->dir, (long long)o->pair);
            dsv3_test_failed_checks++;
        }
    }
    /* the paired halves share their interval and last F&B time */
    EXPECT(s.ops[7].start == s.ops[8].start && s.ops[7].end == s.ops[8].end);
    CHECK_NEAR(s.ops[7].end - s.ops[7].start, 3);
    dsv3_pipe_fini(&s);
    return 0;
}

/* ---------------------------------------------------------------- sweep ----------------- */

static int test_pipeline_sweep_passes_validator(void) {
    const double times[][5] = {{1, 1, 1, 0, 0}, {2, 1, 1, 0, 0}, {1, 2, 0.5, 0.25, 0},
                               {1, 1, 0, 0, 0}, {1, 1, 1, 2, 0}, {3, 2, 1, 0, 2.5}};
    const int pps[] = {2, 4, 8};
    int built = 0;
    for (int m = 0; m < DSV3_PIPE_METHODS; m++)
        for (size_t p = 0; p < sizeof pps / sizeof pps[0]; p++)
            for (int k = 1; k <= 3; k++)
                for (size_t t = 0; t < sizeof times / sizeof times[0]; t++) {
                    const int pp = pps[p];
                    /* DualPipe needs even micro >= 2*pp: its sweep is 2PP, 3PP, 4PP */
                    const int micro = m == DSV3_PIPE_DUALPIPE ? (k + 1) * pp : k * pp;
                    const double *x = times[t];
                    dsv3_pipe_schedule s;
                    if (!build(&s, (dsv3_pipe_method)m,
                               opts(pp, micro, x[0], x[1], x[2], x[3], x[4])))
                        continue;
                    built++;
                    dsv3_err err = {{0}};
                    dsv3_pipe_violation v;
                    if (dsv3_pipe_validate(&s, &v, &err)) {
                        fprintf(stderr, "  %s pp %d micro %d: %s\n", dsv3_pipe_method_name(m), pp,
                                micro, err.msg);
                        dsv3_test_failed_checks++;
                    }
                    EXPECT(v.rule == DSV3_PIPE_OK);
                    /* every chunk has F and a backward; ZB1P splits all, 1F1B none */
                    const int64_t chunks = (int64_t)pp * micro;
                    int64_t n_w = 0;
                    for (int64_t i = 0; i < s.n_ops; i++)
                        n_w += s.ops[i].kind == DSV3_PIPE_W;
                    EXPECT(s.n_ops == 2 * chunks + n_w);
                    if (m == DSV3_PIPE_1F1B) EXPECT(n_w == 0);
                    if (m == DSV3_PIPE_ZB1P) EXPECT(n_w == chunks);
                    dsv3_pipe_summary sum;
                    EXPECT(dsv3_pipe_measure(&sum, NULL, &s, NULL) == DSV3_OK);
                    /* the report's memory columns: PP, PP, PP+1; parameters 1x, 1x, 2x */
                    EXPECT(sum.peak_act == (m == DSV3_PIPE_DUALPIPE ? pp + 1 : pp));
                    EXPECT(sum.param_copies == (m == DSV3_PIPE_DUALPIPE ? 2 : 1));
                    dsv3_pipe_fini(&s);
                }
    EXPECT(built == 3 * 3 * 3 * 6);
    return 0;
}

static int test_pipeline_rejects_bad_options(void) {
    dsv3_pipe_schedule s;
    dsv3_err err = {{0}};
    dsv3_pipe_opts o = opts(4, 4, 1, 1, 1, 0, 0);
    EXPECT(dsv3_pipe_init(&s, DSV3_PIPE_DUALPIPE, &o, &err) == DSV3_EINVAL);
    EXPECT(strstr(err.msg, "micro 4 < 2*pp = 8") != NULL);
    EXPECT(s.ops == NULL);
    o = opts(3, 6, 1, 1, 1, 0, 0);
    EXPECT(dsv3_pipe_init(&s, DSV3_PIPE_DUALPIPE, &o, &err) == DSV3_EINVAL);
    EXPECT(strstr(err.msg, "pp 3 must be even") != NULL);
    o = opts(4, 9, 1, 1, 1, 0, 0);
    EXPECT(dsv3_pipe_init(&s, DSV3_PIPE_DUALPIPE, &o, &err) == DSV3_EINVAL);
    EXPECT(strstr(err.msg, "micro 9 must be even") != NULL);
    o = opts(0, 4, 1, 1, 1, 0, 0);
    EXPECT(dsv3_pipe_init(&s, DSV3_PIPE_1F1B, &o, &err) == DSV3_EINVAL);
    EXPECT(strstr(err.msg, "pp 0") != NULL);
    o = opts(2, 4, 1, -1, 1, 0, 0);
    EXPECT(dsv3_pipe_init(&s, DSV3_PIPE_ZB1P, &o, &err) == DSV3_EINVAL);
    EXPECT(strstr(err.msg, "time b = -1") != NULL);
    o = opts(2, 4, NAN, 1, 1, 0, 0);
    EXPECT(dsv3_pipe_init(&s, DSV3_PIPE_ZB1P, &o, &err) == DSV3_EINVAL);
    EXPECT(dsv3_pipe_method_by_name("dualpipe") == DSV3_PIPE_DUALPIPE);
    EXPECT(dsv3_pipe_method_by_name("DualPipe") == -1);
    dsv3_pipe_fini(NULL);
    return 0;
}

/* ---------------------------------------------------------------- formulas -------------- */

static double sim_bubble(dsv3_pipe_method m, dsv3_pipe_opts o, double *formula) {
    dsv3_pipe_schedule s;
    if (!build(&s, m, o)) return NAN;
    dsv3_pipe_summary sum;
    EXPECT(dsv3_pipe_measure(&sum, NULL, &s, NULL) == DSV3_OK);
    dsv3_pipe_fini(&s);
    *formula = sum.formula;
    return sum.bubble;
}

static void expect_formula(dsv3_pipe_method m, dsv3_pipe_opts o) {
    double formula = 0;
    const double got = sim_bubble(m, o, &formula);
    if (!(fabs(got - formula) <= 1e-9)) {
        fprintf(stderr, "  %s pp %d micro %d f %g b %g w %g a %g fb %g: bubble %g, formula %g\n",
                dsv3_pipe_method_name(m), o.pp, o.micro, o.f, o.b, o.w, o.a, o.fb, got, formula);
        dsv3_test_failed_checks++;
    }
}

/* 1F1B: (PP-1)(F+B) for any uniform times and any M; ZB1P: (PP-1)(F+B-2W) whenever
 * W <= F and W <= B-for-input (report letters), M >= PP. */
static int test_pipeline_bubble_matches_1f1b_and_zb1p_formulas(void) {
    const double t[][4] = {{1, 1, 1, 0},   {2, 1, 1, 0}, {1, 2, 1, 0},     {3, 2, 1, 0},
                           {1, 1, 0.5, 0}, {1, 1, 0, 0}, {0.5, 1, 1, 0.5}, {2, 3, 1, 2}};
    for (int pp = 1; pp <= 8; pp++)
        for (int k = 1; k <= 3; k++)
            for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                const dsv3_pipe_opts o = opts(pp, k * pp, t[i][0], t[i][1], t[i][2], t[i][3], 0);
                expect_formula(DSV3_PIPE_1F1B, o);
                expect_formula(DSV3_PIPE_ZB1P, o);
            }
    /* 1F1B also for M < PP */
    expect_formula(DSV3_PIPE_1F1B, opts(8, 3, 1, 2, 1, 0, 0));
    /* the concrete numbers of the report's table at PP = 8, F = B-for-input = W = 1:
     * 1F1B 7 * (1 + 2) = 21, ZB1P 7 * (1 + 2 - 2) = 7 */
    double f;
    CHECK_NEAR(sim_bubble(DSV3_PIPE_1F1B, opts(8, 20, 1, 1, 1, 0, 0), &f), 21);
    CHECK_NEAR(sim_bubble(DSV3_PIPE_ZB1P, opts(8, 20, 1, 1, 1, 0, 0), &f), 7);
    return 0;
}

/* DualPipe: (PP/2-1)(F&B+B-3W) when F = B-for-input, W <= F and F+B_in <= F&B <= F+B_in+W. */
static int test_pipeline_bubble_matches_dualpipe_formula(void) {
    const double t[][5] = {{1, 1, 1, 0, 0}, {2, 2, 1, 0, 0},   {1, 1, 0.5, 0, 0},
                           {1, 1, 1, 0, 2}, {1, 1, 1, 0, 2.5}, {1, 1, 1, 0.5, 0},
                           {2, 2, 2, 1, 0}, {2, 2, 1, 0, 4.5}, {1, 1, 0, 0, 0}};
    for (int pp = 2; pp <= 16; pp += 2)
        for (int k = 2; k <= 4; k++)
            for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                const int micro = k * pp + (k * pp) % 2;
                expect_formula(DSV3_PIPE_DUALPIPE,
                               opts(pp, micro, t[i][0], t[i][1], t[i][2], t[i][3], t[i][4]));
            }
    /* PP = 8, M = 20, f = b = w = 1, no all-to-all: F&B = 3, (4-1)(3 + 2 - 3) = 6 */
    double f;
    CHECK_NEAR(sim_bubble(DSV3_PIPE_DUALPIPE, opts(8, 20, 1, 1, 1, 0, 0), &f), 6);
    CHECK_NEAR(f, 6);
    return 0;
}

/* Outside those conditions the report's DualPipe figure is an approximation; the simulator
 * keeps its own value (docs/RECIPE.md): F = 2, B_in = 1 gives 12 against the formula's 9. */
static int test_pipeline_dualpipe_formula_is_approximate_for_unequal_f_and_b(void) {
    double f;
    CHECK_NEAR(sim_bubble(DSV3_PIPE_DUALPIPE, opts(8, 20, 2, 1, 1, 0, 0), &f), 12);
    CHECK_NEAR(f, 9);
    return 0;
}

/* The default F&B hides each chunk's all-to-all behind the other chunk's compute. */
static int test_pipeline_fb_default_hides_all_to_all(void) {
    dsv3_pipe_opts o = opts(4, 8, 1, 1, 1, 0, 0);
    CHECK_NEAR(dsv3_pipe_fb_time(&o), 3);
    o.a = 1; /* hides fully: a <= b + w and a <= f */
    CHECK_NEAR(dsv3_pipe_fb_time(&o), 3);
    o.a = 2.5; /* forward's a2a shows 0.5 past b + w = 2, backward's shows 1.5 past f = 1 */
    CHECK_NEAR(dsv3_pipe_fb_time(&o), 5);
    o.fb = 4.25;
    CHECK_NEAR(dsv3_pipe_fb_time(&o), 4.25);
    o = opts(4, 8, 1, 1, 1, 1, 0);
    CHECK_NEAR(dsv3_pipe_duration(&o, DSV3_PIPE_F), 2);
    CHECK_NEAR(dsv3_pipe_duration(&o, DSV3_PIPE_B), 2);
    CHECK_NEAR(dsv3_pipe_duration(&o, DSV3_PIPE_W), 1);
    CHECK_NEAR(dsv3_pipe_duration(&o, DSV3_PIPE_BW), 3);
    /* with all-to-all, DualPipe's makespan beats 1F1B's at the same PP and M */
    dsv3_pipe_schedule a, b;
    if (build(&a, DSV3_PIPE_1F1B, opts(8, 16, 1, 1, 1, 1, 0)) &&
        build(&b, DSV3_PIPE_DUALPIPE, opts(8, 16, 1, 1, 1, 1, 0))) {
        dsv3_pipe_summary sa, sb;
        EXPECT(dsv3_pipe_measure(&sa, NULL, &a, NULL) == DSV3_OK);
        EXPECT(dsv3_pipe_measure(&sb, NULL, &b, NULL) == DSV3_OK);
        EXPECT(sb.makespan < sa.makespan);
    }
    dsv3_pipe_fini(&a);
    dsv3_pipe_fini(&b);
    return 0;
}

/* ---------------------------------------------------------------- broken schedules ------ */

static void expect_rule(const dsv3_pipe_schedule *s, dsv3_pipe_rule rule, int64_t op,
                        const char *needle) {
    dsv3_err err = {{0}};
    dsv3_pipe_violation v;
    EXPECT(dsv3_pipe_validate(s, &v, &err) == DSV3_EINVAL);
    if (v.rule != rule || (op != -2 && v.op != op)) {
        fprintf(stderr, "  got rule %d op %lld (%s), expected rule %d op %lld\n", (int)v.rule,
                (long long)v.op, err.msg, (int)rule, (long long)op);
        dsv3_test_failed_checks++;
    }
    if (needle && !strstr(err.msg, needle)) {
        fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err.msg, needle);
        dsv3_test_failed_checks++;
    }
}

static int test_pipeline_validator_rejects_broken_schedules(void) {
    dsv3_pipe_schedule s;
    /* forward before the previous stage's forward ends */
    if (!build(&s, DSV3_PIPE_1F1B, opts(4, 8, 1, 1, 1, 0, 0))) return 0;
    int64_t i = find_op(&s, DSV3_PIPE_F, 2, 0, 1), dep = find_op(&s, DSV3_PIPE_F, 2, 0, 0);
    s.ops[i].start -= 1.5;
    s.ops[i].end -= 1.5;
    expect_rule(&s, DSV3_PIPE_RULE_FWD_CHAIN, i, "forward needs the previous stage's forward");
    dsv3_pipe_violation v;
    dsv3_pipe_validate(&s, &v, NULL);
    EXPECT(v.other == dep);
    s.ops[i].start += 1.5;
    s.ops[i].end += 1.5;
    EXPECT(dsv3_pipe_validate(&s, NULL, NULL) == DSV3_OK);
    /* backward before the next stage's backward ends */
    i = find_op(&s, DSV3_PIPE_BW, 5, 0, 0);
    s.ops[i].start -= 0.5;
    expect_rule(&s, DSV3_PIPE_RULE_BWD_CHAIN, i, "backward needs the next stage's backward");
    s.ops[i].start += 0.5;
    /* backward at the last stage before its own forward ends */
    i = find_op(&s, DSV3_PIPE_BW, 3, 0, 3);
    s.ops[i].start = s.ops[find_op(&s, DSV3_PIPE_F, 3, 0, 3)].start;
    expect_rule(&s, DSV3_PIPE_RULE_OWN_FWD, i, "backward needs its own forward");
    dsv3_pipe_fini(&s);

    /* W before its B */
    if (!build(&s, DSV3_PIPE_ZB1P, opts(4, 8, 1, 1, 1, 0, 0))) return 0;
    i = find_op(&s, DSV3_PIPE_W, 4, 0, 2);
    s.ops[i].start = s.ops[find_op(&s, DSV3_PIPE_B, 4, 0, 2)].start;
    expect_rule(&s, DSV3_PIPE_RULE_W_AFTER_B, i, "W needs its B");
    dsv3_pipe_fini(&s);

    /* two ops at once on a rank: rank 0's second warm-up forward starts inside the first */
    if (!build(&s, DSV3_PIPE_1F1B, opts(4, 8, 1, 1, 1, 0, 0))) return 0;
    i = find_op(&s, DSV3_PIPE_F, 1, 0, 0);
    s.ops[i].start = 0.5;
    expect_rule(&s, DSV3_PIPE_RULE_OVERLAP, i, "one op at a time");
    dsv3_pipe_validate(&s, &v, NULL);
    EXPECT(v.other == find_op(&s, DSV3_PIPE_F, 0, 0, 0));
    dsv3_pipe_fini(&s);

    /* a missing op, a duplicated op, an op on the wrong rank */
    if (!build(&s, DSV3_PIPE_1F1B, opts(2, 2, 1, 1, 1, 0, 0))) return 0;
    s.n_ops--;
    expect_rule(&s, DSV3_PIPE_RULE_MISSING, -1, "no backward (B or BW) for mb 1 dir 0 stage 1");
    s.n_ops++;
    const dsv3_pipe_op saved = s.ops[0];
    s.ops[0] = s.ops[1];
    expect_rule(&s, DSV3_PIPE_RULE_DUPLICATE, 1, "appears twice");
    s.ops[0] = saved;
    s.ops[2].rank = 1;
    expect_rule(&s, DSV3_PIPE_RULE_SHAPE, 2, NULL);
    dsv3_pipe_fini(&s);

    /* a paired F&B whose halves disagree on the interval */
    if (!build(&s, DSV3_PIPE_DUALPIPE, opts(4, 8, 1, 1, 1, 0, 0))) return 0;
    int64_t p = 0;
    while (p < s.n_ops && s.ops[p].pair < 0)
        p++;
    EXPECT(p < s.n_ops);
    s.ops[s.ops[p].pair].end += 0.25;
    expect_rule(&s, DSV3_PIPE_RULE_OVERLAP, s.ops[p].pair, NULL);
    /* pairing an F with a W is malformed */
    s.ops[s.ops[p].pair].end -= 0.25;
    const dsv3_pipe_kind k = s.ops[s.ops[p].pair].kind;
    s.ops[s.ops[p].pair].kind = DSV3_PIPE_W;
    expect_rule(&s, DSV3_PIPE_RULE_SHAPE, p, NULL);
    s.ops[s.ops[p].pair].kind = k;
    EXPECT(dsv3_pipe_validate(&s, NULL, NULL) == DSV3_OK);
    dsv3_pipe_fini(&s);
    return 0;
}

/* The simulator reports an order that can never run. */
static int test_pipeline_simulate_detects_deadlock(void) {
    dsv3_pipe_schedule s;
    if (!build(&s, DSV3_PIPE_1F1B, opts(2, 2, 1, 1, 1, 0, 0))) return 0;
    /* rank 0 runs BW of mb 0 before F of mb 1: fine; swapping rank 1's F0 and BW0 is not */
    const dsv3_pipe_op t = s.ops[4];
    s.ops[4] = s.ops[5];
    s.ops[5] = t;
    dsv3_err err = {{0}};
    EXPECT(dsv3_pipe_simulate(&s, &err) == DSV3_EINVAL);
    EXPECT(
        strstr(err.msg,
               "deadlock: rank 1 waits at op 4 (BW mb 0 dir 0 stage 1) for F mb 0 dir 0 stage 1") !=
        NULL);
    dsv3_pipe_fini(&s);
    return 0;
}

/* ---------------------------------------------------------------- renderers ------------- */

static int test_pipeline_text_timeline_exact(void) {
    dsv3_pipe_schedule s;
    if (!build(&s, DSV3_PIPE_1F1B, opts(2, 2, 1, 1, 1, 0, 0))) return 0;
    char *t = dsv3_render_pipe_timeline(&s, 1, 0, 0);
    EXPECT(t && strstr(t, "1f1b (time per cell: 1)\nrank 0  |FF..XX.XX| bubble 3, act 2\n"
                         "rank 1  |.FXXFXX..| bubble 3, act 1\n"));
    free(t);
    t = dsv3_render_pipe_timeline(&s, 1, 0, 1);
    EXPECT(t && strstr(t, "\x1b[44;97mFF\x1b[0m..\x1b[43;30mXX\x1b[0m"));
    free(t);
    char *tab = dsv3_render_pipe_table(&s, 1);
    EXPECT(tab && strstr(tab, "1f1b              3         3  (PP-1)(F+B)"));
    free(tab);
    dsv3_pipe_fini(&s);
    /* a pair alternates its letters: DualPipe rank 0 of PP=2, M=4 */
    if (!build(&s, DSV3_PIPE_DUALPIPE, opts(2, 4, 1, 1, 1, 0, 0))) return 0;
    t = dsv3_render_pipe_timeline(&s, 1, 0, 0);
    EXPECT(t && strstr(t, "rank 0  |") && strstr(t, "FxF"));
    free(t);
    dsv3_pipe_fini(&s);
    EXPECT(dsv3_render_pipe_timeline(NULL, 1, 0, 0) == NULL);
    return 0;
}

/* Balanced-tag check: every <name ...> is closed by </name> or is self-closing, attributes are
 * quoted, and there is one root. Returns 1 if well formed at this level of strictness. */
static int xml_balanced(const char *x) {
    const char *stack[64];
    size_t len[64];
    int depth = 0, roots = 0;
    for (const char *p = x; (p = strchr(p, '<'));) {
        if (p[1] == '/') {
            const char *n = p + 2, *e = strchr(n, '>');
            if (!e || depth == 0) return 0;
            depth--;
            if ((size_t)(e - n) != len[depth] || strncmp(n, stack[depth], len[depth])) return 0;
            p = e + 1;
            continue;
        }
        const char *n = p + 1;
        size_t nl = strcspn(n, " />\n");
        if (nl == 0) return 0;
        const char *e = n + nl;
        int quote = 0;
        for (; *e && (quote || *e != '>'); e++)
            if (*e == '"')
                quote = !quote;
            else if (!quote && *e == '<')
                return 0;
        if (!*e) return 0;
        if (depth == 0) roots++;
        if (e[-1] != '/') {
            if (depth == 64) return 0;
            stack[depth] = n;
            len[depth++] = nl;
        }
        p = e + 1;
    }
    return depth == 0 && roots == 1;
}

static int test_pipeline_svg_is_well_formed(void) {
    EXPECT(xml_balanced("<a><b x=\"1\"/><c>t</c></a>"));
    EXPECT(!xml_balanced("<a><b></a>"));
    EXPECT(!xml_balanced("<a></a><b></b>"));
    dsv3_pipe_schedule s[3];
    const dsv3_pipe_opts o = opts(4, 8, 1, 1, 1, 0, 0);
    int n = 0;
    for (int m = 0; m < DSV3_PIPE_METHODS; m++)
        n += build(&s[n], (dsv3_pipe_method)m, o);
    if (n != 3) return 0;
    char *svg = dsv3_render_pipe_svg(s, 3);
    EXPECT(svg && !strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39));
    EXPECT(svg && xml_balanced(svg));
    EXPECT(svg && strstr(svg, "dualpipe: bubble 2 (report (PP/2-1)(F&amp;B+B-3W) = 2)"));
    EXPECT(svg && strstr(svg, "stroke=\"#000000\" stroke-width=\"1.5\"")); /* a pair's border */
    EXPECT(svg && strstr(svg, "#a85a14"));                                 /* reverse-direction F */
    char *again = dsv3_render_pipe_svg(s, 3);
    EXPECT(svg && again && !strcmp(svg, again));
    free(again);
    free(svg);
    char *js = dsv3_render_pipe_json(s, 3);
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    EXPECT(root != NULL);
    const cJSON *ms = cJSON_GetObjectItem(root, "methods");
    EXPECT(cJSON_GetArraySize(ms) == 3);
    const cJSON *dp = cJSON_GetArrayItem(ms, 2);
    EXPECT(dp && cJSON_GetObjectItem(dp, "bubble")->valuedouble == 2);
    EXPECT(dp && cJSON_GetObjectItem(dp, "peak_activations")->valueint == 5);
    EXPECT(dp && cJSON_GetArraySize(cJSON_GetObjectItem(dp, "ops")) == s[2].n_ops);
    EXPECT(dp && cJSON_GetArraySize(cJSON_GetObjectItem(dp, "ranks")) == 4);
    cJSON_Delete(root);
    free(js);
    for (int i = 0; i < n; i++)
        dsv3_pipe_fini(&s[i]);
    return 0;
}

/* ---------------------------------------------------------------- Lua value ------------- */

static const char *run_lua(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) return lua_tostring(L, -1);
    return lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
}

static int test_pipeline_lua_schedule_value(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_register(L, "schedule", dsv3_lua_schedule);
    const char *r = run_lua(L, "return tostring(schedule{pp=4, micro=8})");
    EXPECT(strstr(r, "dualpipe          2         2  (PP/2-1)(F&B+B-3W)") != NULL);
    EXPECT(strstr(r, "rank 3  |") != NULL);
    lua_settop(L, 0);
    r = run_lua(L, "local s = schedule{pp=8, micro=20}; local r = s:rows()\n"
                   "return string.format('%s %g %g %d %d', r[3].method, r[3].bubble, r[1].bubble,"
                   " r[3].peak_act, #r[3].ranks)");
    EXPECT(!strcmp(r, "dualpipe 6 21 9 8"));
    lua_settop(L, 0);
    r = run_lua(L, "local s = schedule{pp=2, micro=2, method='1f1b'}; local o = s:ops()\n"
                   "return string.format('%d %s %g %g', #o, o[3].kind, o[3].start, o[3].finish)");
    EXPECT(!strcmp(r, "8 BW 4 6"));
    lua_settop(L, 0);
    r = run_lua(L, "local s = schedule{pp=4, micro=8}; return getmetatable(s).__svg(s)");
    EXPECT(!strncmp(r, "<svg", 4) && xml_balanced(r));
    lua_settop(L, 0);
    r = run_lua(L, "return tostring(schedule{pp=4, micro=6})");
    EXPECT(strstr(r, "dualpipe left out: pipeline: dualpipe: micro 6 < 2*pp = 8") != NULL);
    lua_settop(L, 0);
    r = run_lua(L, "return schedule{pp=4, micro=6, method='dualpipe'}");
    EXPECT(strstr(r, "micro 6 < 2*pp = 8") != NULL);
    lua_settop(L, 0);
    r = run_lua(L, "return schedule{pp=4}");
    EXPECT(strstr(r, "option 'micro' must be an integer") != NULL);
    lua_settop(L, 0);
    r = run_lua(L, "return schedule{pp=4, micro=8, method='gpipe'}");
    EXPECT(strstr(r, "method 'gpipe' is not") != NULL);
    lua_settop(L, 0);
    r = run_lua(L, "return schedule{pp=2, micro=4}:json()");
    cJSON *j = cJSON_Parse(r);
    EXPECT(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "methods")) == 3);
    cJSON_Delete(j);
    lua_close(L);
    return 0;
}

/* ---------------------------------------------------------------- runner ---------------- */

static const dsv3_test tests[] = {
    {"test_pipeline_1f1b_pp2_m2_exact_times", test_pipeline_1f1b_pp2_m2_exact_times},
    {"test_pipeline_zb1p_pp2_m2_exact_times", test_pipeline_zb1p_pp2_m2_exact_times},
    {"test_pipeline_dualpipe_pp2_m4_has_no_bubble", test_pipeline_dualpipe_pp2_m4_has_no_bubble},
    {"test_pipeline_dualpipe_rank0_order_follows_reference",
     test_pipeline_dualpipe_rank0_order_follows_reference},
    {"test_pipeline_sweep_passes_validator", test_pipeline_sweep_passes_validator},
    {"test_pipeline_rejects_bad_options", test_pipeline_rejects_bad_options},
    {"test_pipeline_bubble_matches_1f1b_and_zb1p_formulas",
     test_pipeline_bubble_matches_1f1b_and_zb1p_formulas},
    {"test_pipeline_bubble_matches_dualpipe_formula",
     test_pipeline_bubble_matches_dualpipe_formula},
    {"test_pipeline_dualpipe_formula_is_approximate_for_unequal_f_and_b",
     test_pipeline_dualpipe_formula_is_approximate_for_unequal_f_and_b},
    {"test_pipeline_fb_default_hides_all_to_all", test_pipeline_fb_default_hides_all_to_all},
    {"test_pipeline_validator_rejects_broken_schedules",
     test_pipeline_validator_rejects_broken_schedules},
    {"test_pipeline_simulate_detects_deadlock", test_pipeline_simulate_detects_deadlock},
    {"test_pipeline_text_timeline_exact", test_pipeline_text_timeline_exact},
    {"test_pipeline_svg_is_well_formed", test_pipeline_svg_is_well_formed},
    {"test_pipeline_lua_schedule_value", test_pipeline_lua_schedule_value},
};

int main(int argc, char **argv) {
    return DSV3_RUN_TESTS(tests, argc, argv);
}
