/* pipeline.c — pipeline schedules: builders, simulator, validator, measures (see pipeline.h).
 *
 * Sections in data-flow order: options and the time model → chunk index tables → the three
 * builders (orders only) → the simulator (times) → the validator (rules) → measures.
 */
#include "model/train/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- names, time model ----- */

static const char *const method_names[DSV3_PIPE_METHODS] = {"1f1b", "zb1p", "dualpipe"};
static const char *const kind_names[DSV3_PIPE_KINDS] = {"F", "B", "W", "BW"};

const char *dsv3_pipe_method_name(dsv3_pipe_method method) {
    return (unsigned)method < DSV3_PIPE_METHODS ? method_names[method] : "?";
}

int dsv3_pipe_method_by_name(const char *name) {
    for (int i = 0; name && i < DSV3_PIPE_METHODS; i++)
        if (!strcmp(name, method_names[i])) return i;
    return -1;
}

const char *dsv3_pipe_kind_name(dsv3_pipe_kind kind) {
    return (unsigned)kind < DSV3_PIPE_KINDS ? kind_names[kind] : "?";
}

const char *dsv3_pipe_rule_text(dsv3_pipe_rule rule) {
    static const char *const text[DSV3_PIPE_RULES] = {
        "no rule broken",
        "op out of range (kind, rank, micro-batch, direction, stage, times or pair)",
        "the same chunk's op appears twice",
        "an op of a chunk is missing",
        "forward needs the previous stage's forward",
        "backward needs the next stage's backward",
        "backward needs its own forward",
        "W needs its B",
        "a rank runs one op at a time (except a paired F&B)",
    };
    return (unsigned)rule < DSV3_PIPE_RULES ? text[rule] : "unknown rule";
}

const char *dsv3_pipe_formula_text(dsv3_pipe_method method) {
    switch (method) {
    case DSV3_PIPE_1F1B:
        return "(PP-1)(F+B)";
    case DSV3_PIPE_ZB1P:
        return "(PP-1)(F+B-2W)";
    case DSV3_PIPE_DUALPIPE:
        return "(PP/2-1)(F&B+B-3W)";
    default:
        return "?";
    }
}

/* The pair hides each chunk's all-to-all behind the other chunk's compute (pipeline.h). */
double dsv3_pipe_fb_time(const dsv3_pipe_opts *o) {
    if (o->fb > 0) return o->fb;
    const double show_fwd_a2a = fmax(0.0, o->a - (o->b + o->w)),
                 show_bwd_a2a = fmax(0.0, o->a - o->f);
    return o->f + o->b + o->w + show_fwd_a2a + show_bwd_a2a;
}

double dsv3_pipe_duration(const dsv3_pipe_opts *o, dsv3_pipe_kind k) {
    switch (k) {
    case DSV3_PIPE_F:
        return o->f + o->a;
    case DSV3_PIPE_B:
        return o->b + o->a;
    case DSV3_PIPE_W:
        return o->w;
    case DSV3_PIPE_BW:
        return o->b + o->a + o->w;
    default:
        return 0;
    }
}

/* docs/RECIPE.md "The time model", in the report's letters: F = f+a, B (full) = b+a+w, W = w. */
double dsv3_pipe_formula(dsv3_pipe_method method, const dsv3_pipe_opts *o) {
    const double F = o->f + o->a, B = o->b + o->a + o->w, W = o->w, FB = dsv3_pipe_fb_time(o);
    switch (method) {
    case DSV3_PIPE_1F1B:
        return (o->pp - 1) * (F + B);
    case DSV3_PIPE_ZB1P:
        return (o->pp - 1) * (F + B - 2 * W);
    case DSV3_PIPE_DUALPIPE:
        return (o->pp / 2 - 1) * (FB + B - 3 * W);
    default:
        return 0;
    }
}

static dsv3_status check_opts(dsv3_pipe_method m, const dsv3_pipe_opts *o, dsv3_err *err) {
    const char *name = dsv3_pipe_method_name(m);
    if ((unsigned)m >= DSV3_PIPE_METHODS)
        return dsv3_errf(err, DSV3_EINVAL, "pipeline: unknown method %d", (int)m);
    if (o->pp < 1 || o->pp > 4096)
        return dsv3_errf(err, DSV3_EINVAL, "pipeline: %s: pp %d is not in 1..4096", name, o->pp);
    if (o->micro < 1 || o->micro > 1 << 20)
        return dsv3_errf(err, DSV3_EINVAL, "pipeline: %s: micro %d is not in 1..%d", name, o->micro,
                         1 << 20);
    const double t[5] = {o->f, o->b, o->w, o->a, o->fb};
    const char *tn[5] = {"f", "b", "w", "a", "fb"};
    for (int i = 0; i < 5; i++)
        if (!isfinite(t[i]) || (i < 4 && t[i] < 0))
            return dsv3_errf(err, DSV3_EINVAL, "pipeline: %s: time %s = %g must be finite and >= 0",
                             name, tn[i], t[i]);
    if (m == DSV3_PIPE_DUALPIPE) {
        if (o->pp % 2)
            return dsv3_errf(err, DSV3_EINVAL, "pipeline: dualpipe: pp %d must be even", o->pp);
        if (o->micro % 2)
            return dsv3_errf(err, DSV3_EINVAL,
                             "pipeline: dualpipe: micro %d must be even (half per direction)",
                             o->micro);
        if (o->micro < 2 * o->pp)
            return dsv3_errf(err, DSV3_EINVAL,
                             "pipeline: dualpipe: micro %d < 2*pp = %d (the DualPipe schedule "
                             "needs at least two micro-batches per rank)",
                             o->micro, 2 * o->pp);
    }
    if ((int64_t)o->pp * o->micro > (int64_t)1 << 20)
        return dsv3_errf(err, DSV3_EINVAL, "pipeline: %s: pp*micro = %lld chunks is too many", name,
                         (long long)o->pp * o->micro);
    return DSV3_OK;
}

/* ---------------------------------------------------------------- chunk tables ---------- */

/* For each chunk (dir, stage, mb): the index of its F, its backward (B or BW) and its W, or -1.
 * key = (dir * pp + stage) * mdir + mb. */
typedef struct {
    int pp, mdir, n_dirs;
    int64_t n_keys;
    int64_t *fwd, *bwd, *wgt;
} chunk_tab;

static int64_t chunk_key(const chunk_tab *t, int dir, int stage, int mb) {
    return ((int64_t)dir * t->pp + stage) * t->mdir + mb;
}

static int rank_of(int pp, int dir, int stage) {
    return dir == 0 ? stage : pp - 1 - stage;
}

static dsv3_status tab_init(chunk_tab *t, const dsv3_pipe_schedule *s, dsv3_err *err) {
    memset(t, 0, sizeof *t);
    t->pp = s->opts.pp;
    t->n_dirs = s->n_dirs;
    t->mdir = s->opts.micro / (s->n_dirs > 0 ? s->n_dirs : 1);
    t->n_keys = (int64_t)t->n_dirs * t->pp * t->mdir;
    t->fwd = malloc((size_t)(t->n_keys ? t->n_keys : 1) * 3 * sizeof *t->fwd);
    if (!t->fwd) return dsv3_errf(err, DSV3_ENOMEM, "pipeline: out of memory");
    t->bwd = t->fwd + t->n_keys;
    t->wgt = t->bwd + t->n_keys;
    for (int64_t i = 0; i < 3 * t->n_keys; i++)
        t->fwd[i] = -1;
    return DSV3_OK;
}

static void tab_fini(chunk_tab *t) {
    free(t->fwd);
    memset(t, 0, sizeof *t);
}

static int64_t *tab_slot(chunk_tab *t, const dsv3_pipe_op *op) {
    const int64_t k = chunk_key(t, op->dir, op->stage, op->mb);
    return op->kind == DSV3_PIPE_F ? &t->fwd[k] : op->kind == DSV3_PIPE_W ? &t->wgt[k] : &t->bwd[k];
}

/* 1 if the op's fields fit the schedule (kind, dir, stage, mb, rank). */
static int op_in_range(const dsv3_pipe_schedule *s, const chunk_tab *t, const dsv3_pipe_op *op) {
    return (unsigned)op->kind < DSV3_PIPE_KINDS && op->dir >= 0 && op->dir < t->n_dirs &&
           op->stage >= 0 && op->stage < t->pp && op->mb >= 0 && op->mb < t->mdir &&
           op->rank == rank_of(s->opts.pp, op->dir, op->stage);
}

/* Fills the tables; on a second op for one slot returns its index and sets *first. */
static int64_t tab_fill(chunk_tab *t, const dsv3_pipe_schedule *s, int64_t *first) {
    for (int64_t i = 0; i < s->n_ops; i++) {
        int64_t *slot = tab_slot(t, &s->ops[i]);
        if (*slot >= 0) {
            *first = *slot;
            return i;
        }
        *slot = i;
    }
    return -1;
}

/* The ops op i waits for (pipeline.h, dsv3_pipe_simulate): up to two indices in dep[], with -1
 * for a dependency the schedule lacks. Returns the count. */
static int op_deps(const chunk_tab *t, const dsv3_pipe_op *op, int64_t dep[2],
                   dsv3_pipe_rule rule[2]) {
    int n = 0;
    switch (op->kind) {
    case DSV3_PIPE_F:
        if (op->stage > 0) {
            rule[n] = DSV3_PIPE_RULE_FWD_CHAIN;
            dep[n++] = t->fwd[chunk_key(t, op->dir, op->stage - 1, op->mb)];
        }
        break;
    case DSV3_PIPE_B:
    case DSV3_PIPE_BW:
        if (op->stage < t->pp - 1) {
            rule[n] = DSV3_PIPE_RULE_BWD_CHAIN;
            dep[n++] = t->bwd[chunk_key(t, op->dir, op->stage + 1, op->mb)];
        }
        rule[n] = DSV3_PIPE_RULE_OWN_FWD;
        dep[n++] = t->fwd[chunk_key(t, op->dir, op->stage, op->mb)];
        break;
    case DSV3_PIPE_W:
        rule[n] = DSV3_PIPE_RULE_W_AFTER_B;
        dep[n++] = t->bwd[chunk_key(t, op->dir, op->stage, op->mb)];
        break;
    default:
        break;
    }
    return n;
}

/* "F mb 3 dir 0 stage 1" */
static void op_name(char *buf, size_t cap, const dsv3_pipe_op *op) {
    snprintf(buf, cap, "%s mb %d dir %d stage %d", dsv3_pipe_kind_name(op->kind), op->mb, op->dir,
             op->stage);
}

/* ---------------------------------------------------------------- builders -------------- */

/* Appends ops to s->ops, which dsv3_pipe_init sizes for 3 * pp * micro (F, backward and W
 * of every chunk at most). */
typedef struct {
    dsv3_pipe_schedule *s;
} emitter;

static int64_t emit(emitter *e, dsv3_pipe_kind kind, int rank, int mb, int dir, int stage) {
    dsv3_pipe_op *op = &e->s->ops[e->s->n_ops];
    *op = (dsv3_pipe_op){.kind = kind,
                         .rank = rank,
                         .mb = mb,
                         .dir = dir,
                         .stage = stage,
                         .pair = -1,
                         .start = -1,
                         .end = -1};
    return e->s->n_ops++;
}

/* 1F1B and ZB-H1 on rank r as one loop over "steps" x = 0 .. M+PP-2: step x runs F of mb x,
 * then the backward of mb x-(PP-1-r) (so rank r has PP-1-r warm-up forwards, as in Megatron's
 * 1F1B), and for ZB-H1 the W of mb x-(PP-1): W trails its B by r steps, which fills the
 * cool-down with W's (Qi et al., "Zero Bubble Pipeline Parallelism", ZB-H1). Any M >= 1. */
static void build_one_direction(emitter *e, int split) {
    const int P = e->s->opts.pp, M = e->s->opts.micro;
    for (int r = 0; r < P; r++)
        for (int x = 0; x < M + P - 1; x++) {
            if (x < M) emit(e, DSV3_PIPE_F, r, x, 0, r);
            const int b = x - (P - 1 - r), w = x - (P - 1);
            if (b >= 0 && b < M) emit(e, split ? DSV3_PIPE_B : DSV3_PIPE_BW, r, b, 0, r);
            if (split && w >= 0 && w < M) emit(e, DSV3_PIPE_W, r, w, 0, r);
        }
}

/* DualPipe's per-rank state while its order is written. A "phase" is the rank's view of a
 * direction: phase 0 is the direction this rank is early in (direction 0 on the first half of
 * the ranks, direction 1 on the second half), as in deepseek-ai/DualPipe. */
typedef struct {
    emitter *e;
    int rank, pp, second_half;
    int next_f[2], next_b[2]; /* next micro-batch per direction */
    int64_t wq[4096 + 8];     /* FIFO of split B ops (one per push; at most pp pushes per rank) */
    int wq_head, wq_tail;
} dp_rank;

static int dp_dir(const dp_rank *d, int phase) {
    return phase ^ d->second_half;
}

static int dp_stage(const dp_rank *d, int dir) {
    return dir == 0 ? d->rank : d->pp - 1 - d->rank;
}

static int64_t dp_forward(dp_rank *d, int phase) {
    const int dir = dp_dir(d, phase);
    return emit(d->e, DSV3_PIPE_F, d->rank, d->next_f[dir]++, dir, dp_stage(d, dir));
}

/* A backward chunk; zb = "enable_zb": only B now, its W later through the FIFO. */
static int64_t dp_backward(dp_rank *d, int phase, int zb) {
    const int dir = dp_dir(d, phase);
    const int64_t i = emit(d->e, zb ? DSV3_PIPE_B : DSV3_PIPE_BW, d->rank, d->next_b[dir]++, dir,
                           dp_stage(d, dir));
    if (zb) d->wq[d->wq_tail++] = i;
    return i;
}

static void dp_weight(dp_rank *d) {
    const dsv3_pipe_op b = d->e->s->ops[d->wq[d->wq_head++]];
    emit(d->e, DSV3_PIPE_W, d->rank, b.mb, b.dir, b.stage);
}

/* An overlapped pair: forward of phase0 with the full backward of phase1. */
static void dp_pair(dp_rank *d, int phase0, int phase1) {
    const int64_t f = dp_forward(d, phase0), b = dp_backward(d, phase1, 0);
    d->e->s->ops[f].pair = b;
    d->e->s->ops[b].pair = f;
}

/* The eight steps of DualPipe.step (deepseek-ai/DualPipe, dualpipe/dualpipe.py) for one rank,
 * with PP ranks, H = PP/2, h = min(r, PP-1-r) and M/2 micro-batches per direction:
 *   1 nF0      2(H-h-1) forwards of phase 0
 *   2 nF0F1    h+1 times F0, F1
 *   3 nB1W1F1  H-h-1 times B1 (split), W, F1
 *   4 nF0B1F1B0  M/2-PP+h+1 times the pairs F0&B1, F1&B0 (the two middle ranks run their first
 *              F0, B1 unpaired)
 *   5 nB1F1B0  H-h-1 times B1, pair F1&B0
 *   6 nB1B0    h+1 times B1, B0; the second half of these backwards are split (zero bubble)
 *   7 nWB0     H-h-1 times W, B0 (split)
 *   8 nW       h+1 W's. */
static void build_dualpipe_rank(dp_rank *d, int M) {
    const int P = d->pp, H = P / 2, r = d->rank, h = r < P - 1 - r ? r : P - 1 - r;
    const int middle = r == H - 1 || r == H;
    for (int i = 0; i < 2 * (H - h - 1); i++)
        dp_forward(d, 0);
    for (int i = 0; i < h + 1; i++) {
        dp_forward(d, 0);
        dp_forward(d, 1);
    }
    for (int i = 0; i < H - h - 1; i++) {
        dp_backward(d, 1, 1);
        dp_weight(d);
        dp_forward(d, 1);
    }
    for (int i = 0; i < M / 2 - P + h + 1; i++) {
        if (i == 0 && middle) {
            dp_forward(d, 0);
            dp_backward(d, 1, 0);
        } else {
            dp_pair(d, 0, 1);
        }
        dp_pair(d, 1, 0);
    }
    for (int i = 0; i < H - h - 1; i++) {
        dp_backward(d, 1, 0);
        dp_pair(d, 1, 0);
    }
    const int step6 = h + 1;
    int zb = 0;
    for (int i = 0; i < step6; i++) {
        if (i == step6 / 2 && h % 2 == 1) zb = 1;
        dp_backward(d, 1, zb);
        if (i == step6 / 2 && h % 2 == 0) zb = 1;
        dp_backward(d, 0, zb);
    }
    for (int i = 0; i < H - h - 1; i++) {
        dp_weight(d);
        dp_backward(d, 0, 1);
    }
    for (int i = 0; i < h + 1; i++)
        dp_weight(d);
}

dsv3_status dsv3_pipe_init(dsv3_pipe_schedule *s, dsv3_pipe_method method, const dsv3_pipe_opts *o,
                           dsv3_err *err) {
    if (!s || !o) return dsv3_errf(err, DSV3_EINVAL, "pipeline: init: NULL argument");
    memset(s, 0, sizeof *s);
    dsv3_status st = check_opts(method, o, err);
    if (st) return st;
    s->method = method;
    s->opts = *o;
    s->opts.fb = dsv3_pipe_fb_time(o);
    s->n_dirs = method == DSV3_PIPE_DUALPIPE ? 2 : 1;
    const int64_t cap = 3 * (int64_t)o->pp * o->micro;
    s->ops = malloc((size_t)cap * sizeof *s->ops);
    if (!s->ops)
        return dsv3_errf(err, DSV3_ENOMEM, "pipeline: out of memory for %lld ops", (long long)cap);
    emitter e = {s};
    if (method == DSV3_PIPE_DUALPIPE) {
        dp_rank *d = malloc(sizeof *d);
        if (!d) {
            dsv3_pipe_fini(s);
            return dsv3_errf(err, DSV3_ENOMEM, "pipeline: out of memory");
        }
        for (int r = 0; r < o->pp; r++) {
            memset(d, 0, sizeof *d);
            d->e = &e;
            d->rank = r;
            d->pp = o->pp;
            d->second_half = r >= o->pp / 2;
            build_dualpipe_rank(d, o->micro);
        }
        free(d);
    } else {
        build_one_direction(&e, method == DSV3_PIPE_ZB1P);
    }
    st = dsv3_pipe_simulate(s, err);
    if (st) dsv3_pipe_fini(s);
    return st;
}

void dsv3_pipe_fini(dsv3_pipe_schedule *s) {
    if (!s) return;
    free(s->ops);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- simulator ------------- */

dsv3_status dsv3_pipe_simulate(dsv3_pipe_schedule *s, dsv3_err *err) {
    if (!s || (s->n_ops > 0 && !s->ops) || s->opts.pp < 1 || s->n_dirs < 1 || s->n_dirs > 2)
        return dsv3_errf(err, DSV3_EINVAL, "pipeline: simulate: not a schedule");
    const int P = s->opts.pp;
    chunk_tab t;
    dsv3_status st = tab_init(&t, s, err);
    if (st) return st;
    char a[96], b[96];
    for (int64_t i = 0; i < s->n_ops; i++) {
        dsv3_pipe_op *op = &s->ops[i];
        op_name(a, sizeof a, op);
        if (!op_in_range(s, &t, op)) {
            st = dsv3_errf(err, DSV3_EINVAL,
                           "pipeline: simulate: op %lld (%s on rank %d) is not "
                           "a chunk of this schedule",
                           (long long)i, a, op->rank);
            goto out;
        }
        const int64_t p = op->pair;
        if (p != -1 && (p != i + 1 && p != i - 1)) {
            st = dsv3_errf(err, DSV3_EINVAL,
                           "pipeline: simulate: op %lld (%s): its pair %lld is "
                           "not next to it",
                           (long long)i, a, (long long)p);
            goto out;
        }
        if (p != -1 &&
            (p < 0 || p >= s->n_ops || s->ops[p].pair != i || s->ops[p].rank != op->rank)) {
            st = dsv3_errf(err, DSV3_EINVAL,
                           "pipeline: simulate: op %lld (%s): pair %lld does not "
                           "point back on the same rank",
                           (long long)i, a, (long long)p);
            goto out;
        }
        op->start = op->end = -1;
    }
    int64_t first = -1, dup = tab_fill(&t, s, &first);
    if (dup >= 0) {
        op_name(a, sizeof a, &s->ops[dup]);
        st = dsv3_errf(err, DSV3_EINVAL, "pipeline: simulate: op %lld (%s) repeats op %lld",
                       (long long)dup, a, (long long)first);
        goto out;
    }
    /* Each rank's ops in array order; next[r] walks them. */
    int64_t *order = malloc((size_t)(s->n_ops + 1) * sizeof *order);
    int64_t *off = calloc((size_t)P + 1, sizeof *off), *next = calloc((size_t)P, sizeof *next);
    double *free_at = calloc((size_t)P, sizeof *free_at);
    if (!order || !off || !next || !free_at) {
        st = dsv3_errf(err, DSV3_ENOMEM, "pipeline: out of memory");
        goto out2;
    }
    for (int64_t i = 0; i < s->n_ops; i++)
        off[s->ops[i].rank + 1]++;
    for (int r = 0; r < P; r++)
        off[r + 1] += off[r];
    for (int r = 0; r < P; r++)
        next[r] = off[r];
    for (int64_t i = 0; i < s->n_ops; i++)
        order[next[s->ops[i].rank]++] = i;
    for (int r = 0; r < P; r++)
        next[r] = off[r];
    int64_t done = 0;
    while (done < s->n_ops) {
        int64_t progress = 0;
        for (int r = 0; r < P; r++) {
            while (next[r] < off[r + 1]) {
                const int64_t i = order[next[r]];
                const int64_t unit[2] = {i, s->ops[i].pair};
                const int n_unit = unit[1] >= 0 ? 2 : 1;
                double start = free_at[r];
                int ready = 1;
                for (int u = 0; u < n_unit && ready; u++) {
                    int64_t dep[2];
                    dsv3_pipe_rule rule[2];
                    const int nd = op_deps(&t, &s->ops[unit[u]], dep, rule);
                    for (int k = 0; k < nd && ready; k++) {
                        if (dep[k] < 0 || s->ops[dep[k]].end < 0)
                            ready = 0;
                        else
                            start = fmax(start, s->ops[dep[k]].end);
                    }
                }
                if (!ready) break;
                const double dur =
                    n_unit == 2 ? s->opts.fb : dsv3_pipe_duration(&s->opts, s->ops[i].kind);
                for (int u = 0; u < n_unit; u++) {
                    s->ops[unit[u]].start = start;
                    s->ops[unit[u]].end = start + dur;
                }
                free_at[r] = start + dur;
                next[r] += n_unit;
                done += n_unit;
                progress += n_unit;
            }
        }
        if (!progress) {
            /* Name the blocked op whose wait is the cause when one is: a dependency the schedule
             * lacks, or one queued behind it on its own rank; otherwise the first blocked op. */
            int64_t at = -1, on = -1;
            int at_rank = -1, at_rule = 0;
            for (int r = 0; r < P; r++) {
                if (next[r] >= off[r + 1]) continue;
                const int64_t i = order[next[r]];
                const int64_t unit[2] = {i, s->ops[i].pair};
                for (int u = 0; u < (unit[1] >= 0 ? 2 : 1); u++) {
                    int64_t dep[2];
                    dsv3_pipe_rule rule[2];
                    const int nd = op_deps(&t, &s->ops[unit[u]], dep, rule);
                    for (int k = 0; k < nd; k++) {
                        if (dep[k] >= 0 && s->ops[dep[k]].end >= 0) continue;
                        const int cause = dep[k] < 0 || s->ops[dep[k]].rank == r;
                        if (at < 0 || cause) {
                            at = unit[u];
                            on = dep[k];
                            at_rank = r;
                            at_rule = (int)rule[k];
                        }
                        if (cause) goto report;
                    }
                }
            }
        report:
            if (at < 0) {
                st = dsv3_errf(err, DSV3_EINVAL, "pipeline: simulate: deadlock");
                goto out2;
            }
            op_name(a, sizeof a, &s->ops[at]);
            if (on < 0)
                snprintf(b, sizeof b, "an op the schedule lacks (%s)",
                         dsv3_pipe_rule_text((dsv3_pipe_rule)at_rule));
            else
                op_name(b, sizeof b, &s->ops[on]);
            st = dsv3_errf(err, DSV3_EINVAL,
                           "pipeline: simulate: deadlock: rank %d waits at op "
                           "%lld (%s) for %s",
                           at_rank, (long long)at, a, b);
            goto out2;
        }
    }
out2:
    free(order);
    free(off);
    free(next);
    free(free_at);
out:
    tab_fini(&t);
    return st;
}

/* ---------------------------------------------------------------- validator ------------- */

static dsv3_status violation(dsv3_pipe_violation *v, dsv3_err *err, const dsv3_pipe_schedule *s,
                             dsv3_pipe_rule rule, int64_t op, int64_t other, const char *extra) {
    if (v) *v = (dsv3_pipe_violation){rule, op, other};
    if (op < 0)
        return dsv3_errf(err, DSV3_EINVAL, "pipeline: %s: %s", dsv3_pipe_rule_text(rule), extra);
    const dsv3_pipe_op *o = &s->ops[op];
    char a[96], b[256] = "";
    op_name(a, sizeof a, o);
    if (other >= 0) {
        const dsv3_pipe_op *p = &s->ops[other];
        char n[96];
        op_name(n, sizeof n, p);
        snprintf(b, sizeof b, " (op %lld, %s on rank %d at [%g, %g])", (long long)other, n, p->rank,
                 p->start, p->end);
    } else if (extra) {
        snprintf(b, sizeof b, " (%s)", extra);
    }
    return dsv3_errf(err, DSV3_EINVAL, "pipeline: rank %d op %lld (%s at [%g, %g]): %s%s", o->rank,
                     (long long)op, a, o->start, o->end, dsv3_pipe_rule_text(rule), b);
}

typedef struct {
    int rank;
    double start, end;
    int64_t i;
} span;

static int span_cmp(const void *pa, const void *pb) {
    const span *a = pa, *b = pb;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    if (a->start != b->start) return a->start < b->start ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* All ops sorted by (rank, start, end, index) into sp[n_ops]; rank r's are sp[off[r] ..
 * off[r+1]). Every op's rank must be in 0..pp-1. */
static void sorted_spans(span *sp, int64_t *off, const dsv3_pipe_schedule *s) {
    for (int64_t i = 0; i < s->n_ops; i++)
        sp[i] = (span){s->ops[i].rank, s->ops[i].start, s->ops[i].end, i};
    qsort(sp, (size_t)s->n_ops, sizeof *sp, span_cmp);
    for (int r = 0, k = 0; r <= s->opts.pp; r++) {
        while (k < s->n_ops && sp[k].rank < r)
            k++;
        off[r] = k;
    }
}

dsv3_status dsv3_pipe_validate(const dsv3_pipe_schedule *s, dsv3_pipe_violation *v, dsv3_err *err) {
    if (v) *v = (dsv3_pipe_violation){DSV3_PIPE_OK, -1, -1};
    if (!s || (s->n_ops > 0 && !s->ops) || s->opts.pp < 1 || s->n_dirs < 1 || s->n_dirs > 2 ||
        s->opts.micro < s->n_dirs)
        return dsv3_errf(err, DSV3_EINVAL, "pipeline: validate: not a schedule");
    chunk_tab t;
    dsv3_status st = tab_init(&t, s, err);
    if (st) return st;
    span *sp = NULL;
    char msg[160];
    /* SHAPE */
    for (int64_t i = 0; i < s->n_ops && !st; i++) {
        const dsv3_pipe_op *op = &s->ops[i];
        const int64_t p = op->pair;
        int ok = op_in_range(s, &t, op) && isfinite(op->start) && isfinite(op->end) &&
                 op->end >= op->start && p >= -1 && p < s->n_ops && p != i;
        if (ok && p >= 0) {
            const dsv3_pipe_op *q = &s->ops[p];
            const int fb =
                op->kind == DSV3_PIPE_F && (q->kind == DSV3_PIPE_B || q->kind == DSV3_PIPE_BW);
            const int bf =
                q->kind == DSV3_PIPE_F && (op->kind == DSV3_PIPE_B || op->kind == DSV3_PIPE_BW);
            ok = q->pair == i && q->rank == op->rank && (fb || bf);
        }
        if (!ok)
            st = violation(v, err, s, DSV3_PIPE_RULE_SHAPE, i, p >= 0 && p < s->n_ops ? p : -1,
                           NULL);
    }
    /* DUPLICATE, MISSING */
    if (!st) {
        int64_t first = -1, dup = tab_fill(&t, s, &first);
        if (dup >= 0) st = violation(v, err, s, DSV3_PIPE_RULE_DUPLICATE, dup, first, NULL);
    }
    for (int64_t k = 0; k < t.n_keys && !st; k++) {
        const int dir = (int)(k / ((int64_t)t.pp * t.mdir)), stage = (int)(k / t.mdir % t.pp),
                  mb = (int)(k % t.mdir);
        const char *what = NULL;
        if (t.fwd[k] < 0)
            what = "F";
        else if (t.bwd[k] < 0)
            what = "backward (B or BW)";
        else if (s->ops[t.bwd[k]].kind == DSV3_PIPE_B && t.wgt[k] < 0)
            what = "W of a split B";
        if (what) {
            snprintf(msg, sizeof msg, "no %s for mb %d dir %d stage %d", what, mb, dir, stage);
            st = violation(v, err, s, DSV3_PIPE_RULE_MISSING, -1, -1, msg);
        } else if (t.wgt[k] >= 0 && s->ops[t.bwd[k]].kind != DSV3_PIPE_B) {
            st = violation(v, err, s, DSV3_PIPE_RULE_MISSING, t.wgt[k], t.bwd[k],
                           "W of a full backward, which has no W");
        }
    }
    /* dependencies, per op */
    for (int64_t i = 0; i < s->n_ops && !st; i++) {
        int64_t dep[2];
        dsv3_pipe_rule rule[2];
        const int nd = op_deps(&t, &s->ops[i], dep, rule);
        for (int k = 0; k < nd && !st; k++)
            if (s->ops[i].start < s->ops[dep[k]].end)
                st = violation(v, err, s, rule[k], i, dep[k], NULL);
    }
    /* OVERLAP, per rank */
    int64_t *off = NULL;
    if (!st && s->n_ops) {
        sp = malloc((size_t)s->n_ops * sizeof *sp);
        off = malloc(((size_t)s->opts.pp + 1) * sizeof *off);
        if (!sp || !off)
            st = dsv3_errf(err, DSV3_ENOMEM, "pipeline: out of memory");
        else
            sorted_spans(sp, off, s);
    }
    for (int r = 0; r < s->opts.pp && !st && sp; r++) {
        double busy_until = -INFINITY;
        int64_t holder = -1;
        for (int64_t k = off[r]; k < off[r + 1] && !st; k++) {
            const dsv3_pipe_op *op = &s->ops[sp[k].i];
            if (op->start < busy_until) {
                const dsv3_pipe_op *h = &s->ops[holder];
                const int paired = op->pair == holder && h->start == op->start && h->end == op->end;
                if (!paired)
                    st = violation(v, err, s, DSV3_PIPE_RULE_OVERLAP, sp[k].i, holder, NULL);
            }
            if (op->end > busy_until || holder < 0) {
                busy_until = op->end;
                holder = sp[k].i;
            }
        }
    }
    free(off);
    free(sp);
    tab_fini(&t);
    return st;
}

/* ---------------------------------------------------------------- measures -------------- */

typedef struct {
    int rank;
    double t;
    int delta; /* +1 activations taken (F starts), -1 released (its backward ends) */
} act_event;

static int act_cmp(const void *pa, const void *pb) {
    const act_event *a = pa, *b = pb;
    if (a->rank != b->rank) return a->rank - b->rank;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    return a->delta - b->delta; /* a release at t happens before a take at t */
}

dsv3_status dsv3_pipe_measure(dsv3_pipe_summary *sum, dsv3_pipe_rank *ranks,
                              const dsv3_pipe_schedule *s, dsv3_err *err) {
    if (!sum || !s || s->n_ops < 1 || !s->ops || s->opts.pp < 1 || s->n_dirs < 1 || s->n_dirs > 2)
        return dsv3_errf(err, DSV3_EINVAL, "pipeline: measure: empty or NULL schedule");
    const int P = s->opts.pp;
    memset(sum, 0, sizeof *sum);
    for (int64_t i = 0; i < s->n_ops; i++)
        if (s->ops[i].rank < 0 || s->ops[i].rank >= P)
            return dsv3_errf(err, DSV3_EINVAL, "pipeline: measure: op %lld has rank %d (pp %d)",
                             (long long)i, s->ops[i].rank, P);
    chunk_tab t;
    dsv3_status st = tab_init(&t, s, err);
    if (st) return st;
    span *sp = malloc((size_t)s->n_ops * sizeof *sp);
    int64_t *off = malloc(((size_t)P + 1) * sizeof *off);
    act_event *ev = malloc((size_t)s->n_ops * 2 * sizeof *ev);
    dsv3_pipe_rank *rk = calloc((size_t)P, sizeof *rk);
    if (!sp || !off || !ev || !rk) {
        st = dsv3_errf(err, DSV3_ENOMEM, "pipeline: out of memory");
        goto out;
    }
    double t0 = INFINITY, t1 = -INFINITY;
    for (int64_t i = 0; i < s->n_ops; i++) {
        t0 = fmin(t0, s->ops[i].start);
        t1 = fmax(t1, s->ops[i].end);
        if (op_in_range(s, &t, &s->ops[i])) *tab_slot(&t, &s->ops[i]) = i;
    }
    sum->makespan = t1 - t0;
    /* busy = union of intervals; parameter copies = directions seen */
    sorted_spans(sp, off, s);
    for (int r = 0; r < P; r++) {
        const int64_t n = off[r + 1] - off[r];
        double busy = 0, cs = 0, ce = -INFINITY;
        unsigned dirs = 0;
        for (int64_t k = off[r]; k < off[r + 1]; k++) {
            dirs |= 1u << (s->ops[sp[k].i].dir & 1);
            if (sp[k].start > ce) {
                if (ce > cs) busy += ce - cs;
                cs = sp[k].start;
                ce = sp[k].end;
            } else {
                ce = fmax(ce, sp[k].end);
            }
        }
        if (n && ce > cs) busy += ce - cs;
        rk[r].busy = busy;
        rk[r].bubble = sum->makespan - busy;
        rk[r].param_copies = (dirs & 1) + (dirs >> 1 & 1);
    }
    /* activations: held from F start to the end of its B or BW (never released without one) */
    int64_t ne = 0;
    for (int64_t i = 0; i < s->n_ops; i++) {
        const dsv3_pipe_op *op = &s->ops[i];
        if (op->kind != DSV3_PIPE_F) continue;
        ev[ne++] = (act_event){op->rank, op->start, +1};
        if (!op_in_range(s, &t, op)) continue;
        const int64_t b = t.bwd[chunk_key(&t, op->dir, op->stage, op->mb)];
        if (b >= 0) ev[ne++] = (act_event){op->rank, s->ops[b].end, -1};
    }
    qsort(ev, (size_t)ne, sizeof *ev, act_cmp);
    for (int64_t k = 0, held = 0; k < ne; k++) {
        if (k == 0 || ev[k].rank != ev[k - 1].rank) held = 0;
        held += ev[k].delta;
        if (held > rk[ev[k].rank].peak_act) rk[ev[k].rank].peak_act = (int)held;
    }
    for (int r = 0; r < P; r++) {
        if (r == 0 || rk[r].bubble > sum->bubble) sum->bubble = rk[r].bubble;
        if (rk[r].peak_act > sum->peak_act) sum->peak_act = rk[r].peak_act;
        if (rk[r].param_copies > sum->param_copies) sum->param_copies = rk[r].param_copies;
    }
    sum->formula = dsv3_pipe_formula(s->method, &s->opts);
    if (ranks) memcpy(ranks, rk, (size_t)P * sizeof *rk);
out:
    free(sp);
    free(off);
    free(ev);
    free(rk);
    tab_fini(&t);
    return st;
}
