/* lua_pipeline.c — schedule{...}: pipeline schedules as a Lua value (see lua_pipeline.h).
 *
 * The value owns the simulated schedules; tostring, __svg and the methods render them with the
 * pure renderers of probes/render/pipeline.h. Library errors become Lua errors through
 * dsv3_lua_error with the library's text.
 */
#include "repl/session/lua_pipeline.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/train/pipeline.h"
#include "probes/render/pipeline.h"
#include "repl/session/luax.h"

#define MT_SCHEDULE "dsv3.schedule"

typedef struct {
    int n;                                   /* schedules built, 0..DSV3_PIPE_METHODS */
    int color;                               /* tostring with ANSI colours */
    dsv3_pipe_schedule s[DSV3_PIPE_METHODS]; /* in method order */
    char note[DSV3_ERR_LEN];                 /* methods left out of "all", or "" */
} lsched;

/* ---------------------------------------------------------------- helpers -------------- */

static lsched *check_sched(lua_State *L, int idx) {
    return luaL_checkudata(L, idx, MT_SCHEDULE);
}

/* Pushes a malloc'd rendering and frees it; raises when the renderer ran out of memory. */
static int push_rendered(lua_State *L, char *s) {
    if (!s) return luaL_error(L, "schedule: out of memory while rendering");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int opt_count(lua_State *L, const char *k) {
    const lua_Number v = dsv3_lua_opt_num(L, 1, k, -1);
    if (v < 1 || v > (1 << 20) || v != floor(v))
        return luaL_error(L, "schedule: option '%s' must be an integer in 1..%d", k, 1 << 20);
    return (int)v;
}

/* ---------------------------------------------------------------- metamethods ---------- */

static int sched_gc(lua_State *L) {
    lsched *u = check_sched(L, 1);
    for (int i = 0; i < u->n; i++)
        dsv3_pipe_fini(&u->s[i]);
    u->n = 0;
    return 0;
}

static int sched_tostring(lua_State *L) {
    lsched *u = check_sched(L, 1);
    char *r = dsv3_render_pipe_report(u->s, u->n, u->color);
    if (!r) return luaL_error(L, "schedule: out of memory while rendering");
    lua_pushstring(L, r);
    free(r);
    if (u->note[0]) {
        lua_pushstring(L, u->note);
        lua_concat(L, 2);
    }
    return 1;
}

static int sched_svg(lua_State *L) {
    lsched *u = check_sched(L, 1);
    return push_rendered(L, dsv3_render_pipe_svg(u->s, u->n));
}

static int sched_json(lua_State *L) {
    lsched *u = check_sched(L, 1);
    return push_rendered(L, dsv3_render_pipe_json(u->s, u->n));
}

/* s:timeline([unit [, color]]) -> string */
static int sched_timeline(lua_State *L) {
    lsched *u = check_sched(L, 1);
    const double unit = luaL_optnumber(L, 2, 0);
    const int color = lua_toboolean(L, 3);
    return push_rendered(L, dsv3_render_pipe_timeline(u->s, u->n, unit, color));
}

/* s:rows() -> {{method=, bubble=, formula=, ...}, ...} */
static int sched_rows(lua_State *L) {
    lsched *u = check_sched(L, 1);
    lua_createtable(L, u->n, 0);
    for (int i = 0; i < u->n; i++) {
        dsv3_pipe_summary sum;
        dsv3_err err = {{0}};
        dsv3_pipe_rank *rk = lua_newuserdatauv(L, (size_t)u->s[i].opts.pp * sizeof *rk, 0);
        if (dsv3_pipe_measure(&sum, rk, &u->s[i], &err)) return dsv3_lua_error(L, &err);
        lua_createtable(L, 0, 8);
        lua_pushstring(L, dsv3_pipe_method_name(u->s[i].method));
        lua_setfield(L, -2, "method");
        dsv3_lua_setnum(L, "bubble", sum.bubble);
        dsv3_lua_setnum(L, "formula", sum.formula);
        lua_pushstring(L, dsv3_pipe_formula_text(u->s[i].method));
        lua_setfield(L, -2, "formula_text");
        dsv3_lua_setnum(L, "makespan", sum.makespan);
        dsv3_lua_setint(L, "peak_act", sum.peak_act);
        dsv3_lua_setint(L, "param_copies", sum.param_copies);
        lua_createtable(L, u->s[i].opts.pp, 0);
        for (int r = 0; r < u->s[i].opts.pp; r++) {
            lua_createtable(L, 0, 4);
            dsv3_lua_setnum(L, "busy", rk[r].busy);
            dsv3_lua_setnum(L, "bubble", rk[r].bubble);
            dsv3_lua_setint(L, "peak_act", rk[r].peak_act);
            dsv3_lua_setint(L, "param_copies", rk[r].param_copies);
            lua_rawseti(L, -2, r + 1);
        }
        lua_setfield(L, -2, "ranks");
        lua_remove(L, -2); /* the rank scratch */
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* s:ops([method]) -> {{rank=, kind=, mb=, dir=, stage=, start=, finish=, pair=}, ...} */
static int sched_ops(lua_State *L) {
    lsched *u = check_sched(L, 1);
    const char *name = luaL_optstring(L, 2, NULL);
    const dsv3_pipe_schedule *s = NULL;
    for (int i = 0; i < u->n; i++)
        if (!name || !strcmp(name, dsv3_pipe_method_name(u->s[i].method))) {
            s = &u->s[i];
            break;
        }
    if (!s) return luaL_error(L, "schedule: ops: no method '%s' in this value", name ? name : "");
    lua_createtable(L, (int)s->n_ops, 0);
    for (int64_t k = 0; k < s->n_ops; k++) {
        const dsv3_pipe_op *op = &s->ops[k];
        lua_createtable(L, 0, 8);
        dsv3_lua_setint(L, "rank", op->rank);
        lua_pushstring(L, dsv3_pipe_kind_name(op->kind));
        lua_setfield(L, -2, "kind");
        dsv3_lua_setint(L, "mb", op->mb);
        dsv3_lua_setint(L, "dir", op->dir);
        dsv3_lua_setint(L, "stage", op->stage);
        dsv3_lua_setnum(L, "start", op->start);
        dsv3_lua_setnum(L, "finish", op->end);
        if (op->pair >= 0) dsv3_lua_setint(L, "pair", op->pair + 1);
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    return 1;
}

void dsv3_lua_open_pipeline(lua_State *L) {
    static const luaL_Reg meta[] = {{"__gc", sched_gc},
                                    {"__close", sched_gc},
                                    {"__tostring", sched_tostring},
                                    {"__svg", sched_svg},
                                    {NULL, NULL}};
    static const luaL_Reg methods[] = {{"rows", sched_rows},         {"ops", sched_ops},
                                       {"json", sched_json},         {"svg", sched_svg},
                                       {"timeline", sched_timeline}, {NULL, NULL}};
    if (!luaL_newmetatable(L, MT_SCHEDULE)) {
        lua_pop(L, 1);
        return;
    }
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------- schedule{...} -------- */

int dsv3_lua_schedule(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const options[] = {"pp", "micro", "f", "b", "w", "a", "fb", "method",
                                          "color", NULL};
    dsv3_lua_check_opts(L, 1, "schedule", options);
    dsv3_pipe_opts o = {0};
    o.pp = opt_count(L, "pp");
    o.micro = opt_count(L, "micro");
    o.f = dsv3_lua_opt_num(L, 1, "f", 1);
    o.b = dsv3_lua_opt_num(L, 1, "b", 1);
    o.w = dsv3_lua_opt_num(L, 1, "w", 1);
    o.a = dsv3_lua_opt_num(L, 1, "a", 0);
    o.fb = dsv3_lua_opt_num(L, 1, "fb", 0);
    const char *method = dsv3_lua_opt_str(L, 1, "method");
    const int all = !method || !strcmp(method, "all");
    const int one = all ? -1 : dsv3_pipe_method_by_name(method);
    if (!all && one < 0)
        return luaL_error(L,
                          "schedule: method '%s' is not \"1f1b\", \"zb1p\", \"dualpipe\" or "
                          "\"all\"",
                          method);
    dsv3_lua_open_pipeline(L);
    lsched *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, MT_SCHEDULE);
    u->color = dsv3_lua_opt_bool(L, 1, "color", 0);
    for (int m = 0; m < DSV3_PIPE_METHODS; m++) {
        if (!all && m != one) continue;
        dsv3_err err = {{0}};
        dsv3_status st = dsv3_pipe_init(&u->s[u->n], (dsv3_pipe_method)m, &o, &err);
        if (st == DSV3_OK) {
            u->n++;
        } else if (all && st == DSV3_EINVAL && u->n > 0) {
            const size_t used = strlen(u->note);
            snprintf(u->note + used, sizeof u->note - used, "%s left out: %s\n",
                     dsv3_pipe_method_name(m), err.msg);
        } else {
            return dsv3_lua_error(L, &err);
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- registration --------- */

static const dsv3_lua_fn fns[] = {
    {"schedule", dsv3_lua_schedule,
     "schedule{pp=, micro= [, f=1, b=1, w=1, a=0, fb=, method=\"all\", color=false]} -> schedule",
     "Pipeline schedules of one training step (1F1B, ZB1P, DualPipe): simulated bubble next to\n"
     "the report's formula, peak activations, parameter copies; tostring gives the table and text\n"
     "timelines, __svg the picture. f, b, w: forward, backward-for-input, backward-for-weights\n"
     "time per chunk; a: all-to-all per chunk; fb: an overlapped F&B pair. s:rows(),\n"
     "s:ops([method]), s:json(), s:svg(), s:timeline([unit [, color]])."},
    {NULL, NULL, NULL, NULL},
};

const dsv3_lua_module dsv3_lua_pipeline_module = {"pipeline", dsv3_lua_open_pipeline, fns};
