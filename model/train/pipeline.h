/* pipeline.h — pipeline schedules: build, simulate, check, measure (docs/RECIPE.md, section 1).
 *
 * Owns three schedules of one training step over PP pipeline ranks and M micro-batches: 1F1B,
 * ZB1P (zero bubble, the ZB-H1 order: backward split into B and W) and DualPipe (bidirectional,
 * the order of deepseek-ai/DualPipe `DualPipe.step`), as lists of timed ops; a simulator that
 * gives each op its earliest start under the dependency rules; a validator that checks those
 * rules on any schedule and names the first broken one; and the measures the DeepSeek-V3 report
 * compares (bubble, activation memory, parameter copies) next to the report's bubble formulas.
 * It does not own rendering (probes/render/pipeline.h) or real timings: chunk times are inputs.
 * Thread rules: none; a schedule belongs to its caller.
 *
 * Model. A chunk is one pipeline stage's layers for one micro-batch. Compute times per chunk:
 * f (forward), b (backward for input, "B" in the ZeroBubble paper), w (backward for weights).
 * a is the all-to-all time of one chunk (MoE dispatch + combine), paid in a forward and in a
 * backward-for-input; W has none. Op durations:
 *     F = f + a      B = b + a      W = w      BW (full backward, B and W in one op) = b + a + w
 *     F&B (a forward and a full backward of two micro-batches run overlapped, DualPipe) = fb,
 *     default  f + b + w + max(0, a - (b + w)) + max(0, a - f):
 * the pair's compute runs back to back and each chunk's all-to-all hides behind the other chunk's
 * compute; only the part that does not fit shows. Point-to-point sends between ranks are free.
 *
 * Conventions of the report's table. Its B is the FULL backward, so in these inputs
 *     report F = f + a,  report B = b + a + w,  report W = w,  report F&B = fb,
 * and the formulas (dsv3_pipe_formula) read 1F1B (PP-1)(F+B), ZB1P (PP-1)(F+B-2W),
 * DualPipe (PP/2-1)(F&B+B-3W). The bubble of a schedule is measured as
 *     bubble = max over ranks of (makespan - busy time of the rank),
 * makespan = last end - first start over all ranks, busy = the union of the rank's op intervals
 * (a pair counts once). With every chunk of a kind taking the same time, and writing
 * B_in = b + a for the backward for input, this equals the formula exactly for 1F1B (any times,
 * any M), for ZB1P when W <= F and W <= B_in (M >= PP), and for DualPipe when F = B_in, W <= F
 * and F + B_in <= F&B <= F + B_in + W, which includes f = b = w, a = 0 with the default fb.
 * Elsewhere the report's DualPipe figure is an approximation and the simulated value differs
 * (docs/RECIPE.md shows both).
 * Activations are counted per rank in units of one chunk's activations for one micro-batch: a
 * micro-batch's activations at a stage are held from the start of its F to the end of its B (or
 * BW); what W alone needs is not counted (as in the report's table: PP, PP, PP+1).
 */
#ifndef DSV3_PIPELINE_H
#define DSV3_PIPELINE_H

#include <stdint.h>

#include "model/base/status.h"

typedef enum {
    DSV3_PIPE_1F1B = 0, /* one forward, one (full) backward; warm-up PP-1-r forwards on rank r */
    DSV3_PIPE_ZB1P,     /* ZB-H1: 1F1B with B and W split, W delayed to fill the cool-down */
    DSV3_PIPE_DUALPIPE, /* DualPipe: two directions, F&B pairs; even PP, even M >= 2 PP */
    DSV3_PIPE_METHODS   /* number of methods */
} dsv3_pipe_method;

typedef enum {
    DSV3_PIPE_F = 0, /* forward of one chunk */
    DSV3_PIPE_B,     /* backward for input only; its W is a separate op */
    DSV3_PIPE_W,     /* backward for weights of an earlier B */
    DSV3_PIPE_BW,    /* full backward (input and weights in one op) */
    DSV3_PIPE_KINDS  /* number of kinds */
} dsv3_pipe_kind;

/* The step to schedule and its chunk times (time units are the caller's: ms, or 1 = one F). */
typedef struct {
    int pp;    /* pipeline ranks (= stages per direction), >= 1; DualPipe: even, >= 2 */
    int micro; /* micro-batches per step, >= 1; DualPipe: even, >= 2 * pp, half per direction */
    double f;  /* forward compute time of a chunk, >= 0 */
    double b;  /* backward-for-input compute time of a chunk, >= 0 */
    double w;  /* backward-for-weights compute time of a chunk, >= 0 */
    double a;  /* all-to-all time of one forward or backward-for-input chunk, >= 0 */
    double fb; /* F&B: time of an overlapped pair; <= 0 means the default of the model above */
} dsv3_pipe_opts;

/* One op: a chunk's work on one rank. Stage s of direction 0 runs on rank s; stage s of
 * direction 1 runs on rank pp-1-s (direction 1 is fed at the last rank). Micro-batches are
 * numbered per direction: 0 .. micro-1 for one direction, 0 .. micro/2-1 for DualPipe. */
typedef struct {
    dsv3_pipe_kind kind;
    int rank;     /* 0 .. pp-1 */
    int mb;       /* micro-batch within its direction */
    int dir;      /* 0, or 1 for DualPipe's reverse direction */
    int stage;    /* position along its direction, 0 = where the micro-batch enters */
    int64_t pair; /* index of the op this one runs overlapped with (an F with a BW), or -1 */
    double start; /* start time; the first op of a step starts at 0 */
    double end;   /* end time (start + duration) */
} dsv3_pipe_op;

/* A schedule: the ops of every rank. Each rank executes its ops in the order they appear in
 * ops[] (the builders write them rank by rank); the two ops of a pair are adjacent. */
typedef struct {
    dsv3_pipe_method method;
    dsv3_pipe_opts opts; /* as given (fb resolved to its default when it was <= 0) */
    int n_dirs;          /* 1, or 2 for DualPipe */
    int64_t n_ops;
    dsv3_pipe_op *ops; /* [n_ops], malloc'd, owned by the schedule */
} dsv3_pipe_schedule;

/* Per-rank measures of a timed schedule. */
typedef struct {
    double busy;      /* time the rank computes (union of its op intervals) */
    double bubble;    /* makespan - busy: the rank's idle time within the step */
    int peak_act;     /* most micro-batch activations held at once (see the header paragraph) */
    int param_copies; /* parameter copies the rank holds: 1, or 2 (one stage per direction) */
} dsv3_pipe_rank;

/* Measures of a whole schedule: the table of the report, simulated. */
typedef struct {
    double makespan;  /* last end - first start */
    double bubble;    /* max over ranks of dsv3_pipe_rank.bubble */
    double formula;   /* the report's bubble formula for these opts (dsv3_pipe_formula) */
    int peak_act;     /* max over ranks */
    int param_copies; /* max over ranks */
} dsv3_pipe_summary;

/* Rules the validator checks, in the order it checks them for each op. */
typedef enum {
    DSV3_PIPE_OK = 0,
    DSV3_PIPE_RULE_SHAPE,     /* kind/rank/mb/dir/stage out of range, stage not on this rank,
                                 end < start, or a pair that is not an F with a B or BW */
    DSV3_PIPE_RULE_DUPLICATE, /* a second op for the same (kind, mb, dir, stage) */
    DSV3_PIPE_RULE_MISSING,   /* a chunk without its F, its backward (B or BW), or a B
                                 without its W / a W without its B */
    DSV3_PIPE_RULE_FWD_CHAIN, /* F at stage s starts before F of that mb at stage s-1 ends */
    DSV3_PIPE_RULE_BWD_CHAIN, /* B/BW at stage s starts before the B/BW at stage s+1 ends */
    DSV3_PIPE_RULE_OWN_FWD,   /* B/BW starts before its own F ends */
    DSV3_PIPE_RULE_W_AFTER_B, /* W starts before its B ends */
    DSV3_PIPE_RULE_OVERLAP,   /* two ops of one rank overlap in time and are not a pair with
                                 the same start and end */
    DSV3_PIPE_RULES           /* number of values */
} dsv3_pipe_rule;

/* The first rule a schedule breaks. */
typedef struct {
    dsv3_pipe_rule rule; /* DSV3_PIPE_OK when none is broken */
    int64_t op;          /* index of the op that breaks it, or -1 (MISSING names no op) */
    int64_t other;       /* the op it conflicts with (the dependency, the overlapped op, the
                            first copy), or -1 */
} dsv3_pipe_violation;

/* Builds the schedule of `method` for o and times it with dsv3_pipe_simulate. The caller owns
 * *s and frees it with dsv3_pipe_fini (also after a failure, where s->ops is NULL).
 * DSV3_EINVAL with "pipeline: <method>: ..." for bad opts: pp < 1, micro < 1, a negative or
 * non-finite time, pp * micro above 2^20, and for DualPipe odd pp, odd micro or micro < 2*pp
 * (the reference implementation asserts num_chunks >= 2 * num_ranks); DSV3_ENOMEM. */
dsv3_status dsv3_pipe_init(dsv3_pipe_schedule *s, dsv3_pipe_method method, const dsv3_pipe_opts *o,
                           dsv3_err *err);

/* Frees s->ops and zeroes *s. NULL is a no-op. */
void dsv3_pipe_fini(dsv3_pipe_schedule *s);

/* Gives every op its earliest start: each rank runs its ops one at a time in array order (a
 * pair as one unit of duration opts.fb); an op starts when its rank is free and its
 * dependencies have ended: F after the F of the previous stage; B/BW after its own F and after
 * the B/BW of the next stage; W after its B. Durations come from s->opts as in the model above.
 * Changes only start and end. DSV3_EINVAL when an op names a chunk outside the schedule or a
 * pair is not adjacent; DSV3_EINVAL "pipeline: simulate: deadlock: rank R waits at op I (...) for
 * ..." when the order can never run (ops then keep start = end = -1 where not reached). */
dsv3_status dsv3_pipe_simulate(dsv3_pipe_schedule *s, dsv3_err *err);

/* Checks the dependency rules (dsv3_pipe_rule) on the times as they are, with no tolerance.
 * Order: SHAPE for every op, then DUPLICATE and MISSING, then for each op in array order
 * FWD_CHAIN, BWD_CHAIN, OWN_FWD, W_AFTER_B, then OVERLAP for each rank. Returns DSV3_OK with
 * v->rule = DSV3_PIPE_OK for a valid schedule, or DSV3_EINVAL with *v describing the first
 * broken rule and err a sentence naming it and the op, e.g. "pipeline: rank 1 op 7 (F mb 3
 * dir 0 stage 1 at [4, 5]): forward needs the previous stage's forward (F mb 3 stage 0 ends at
 * 5)". v may be NULL. */
dsv3_status dsv3_pipe_validate(const dsv3_pipe_schedule *s, dsv3_pipe_violation *v, dsv3_err *err);

/* Measures a timed schedule: *sum, and ranks[r] for r < pp when ranks is not NULL.
 * DSV3_EINVAL for an empty schedule or an op with a rank out of range; DSV3_ENOMEM. */
dsv3_status dsv3_pipe_measure(dsv3_pipe_summary *sum, dsv3_pipe_rank *ranks,
                              const dsv3_pipe_schedule *s, dsv3_err *err);

/* The report's bubble formula for method with o's times in the report's letters (header
 * paragraph); fb <= 0 takes the default. 0 for an unknown method. */
double dsv3_pipe_formula(dsv3_pipe_method method, const dsv3_pipe_opts *o);

/* The formula as the report writes it: "(PP-1)(F+B)", "(PP-1)(F+B-2W)", "(PP/2-1)(F&B+B-3W)". */
const char *dsv3_pipe_formula_text(dsv3_pipe_method method);

/* The resolved F&B time: o->fb if > 0, else the default of the model above. */
double dsv3_pipe_fb_time(const dsv3_pipe_opts *o);

/* The duration op kind k takes under o when it is not paired. */
double dsv3_pipe_duration(const dsv3_pipe_opts *o, dsv3_pipe_kind k);

/* "1f1b", "zb1p", "dualpipe"; "?" for an unknown method. */
const char *dsv3_pipe_method_name(dsv3_pipe_method method);

/* The method named name (the names above, case-sensitive), or -1. */
int dsv3_pipe_method_by_name(const char *name);

/* "F", "B", "W", "BW"; "?" for an unknown kind. */
const char *dsv3_pipe_kind_name(dsv3_pipe_kind kind);

/* A short sentence for a rule ("forward needs the previous stage's forward"); never NULL. */
const char *dsv3_pipe_rule_text(dsv3_pipe_rule rule);

#endif
