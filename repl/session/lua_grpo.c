/* lua_grpo.c — GRPO from the session: grpo{...}, grpo_save(dir), grpo_reset().
 *
 * The first grpo{} on a model creates a GRPO run (model/train/grpo.h) kept in the session; later calls
 * with the same group, batch and max_tokens continue it (same reference policy, same optimizer
 * state), so a user can run 20 steps, try gen(), and run 20 more. While the run lives the model
 * computes with the policy's weights; grpo_reset() drops the run and puts the weights back.
 * Rewards are Lua functions reward(prompt, completion, answer) -> number, called from C for every
 * completion; without one, the answer reward of model/train/grpo_task.h scores the completion against
 * the prompt's answer. In a notebook (where display() exists) a live SVG plot of reward, KL and
 * length is updated in place after every step. Ctrl-C stops between steps (or inside one, before
 * its update) and keeps the weights of the last finished step.
 */
#include "repl/session/lua_grpo.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/train/grpo.h"
#include "model/train/grpo_task.h"
#include "model/run/model.h"
#include "model/text/tokenizer.h"
#include "probes/render/render.h"
#include "repl/session/luax.h"

#define MT_GRPO "dsv3.grpo"
#define MT_GRPORUN "dsv3.grporun"
#define REG_GRPO "dsv3.grpo.current"

typedef struct {
    dsv3_grpo *g;
    lmodel *lm; /* the model it trains (kept alive through the uservalue) */
    int64_t group, batch, max_tokens, max_prompt;
    int64_t steps; /* steps done, over all calls */
    int busy;      /* 1 while a grpo{} call runs (its reward function may call Lua) */
} lgrpo;

static int grpo_gc(lua_State *L) {
    lgrpo *lg = luaL_checkudata(L, 1, MT_GRPO);
    if (lg->g) lg->lm->users--;
    dsv3_grpo_free(lg->g); /* puts the model's weights back */
    lg->g = NULL;
    return 0;
}

/* Raises when called from a reward function of a running grpo{} (the run is mid-step). */
static void not_busy(lua_State *L, const char *fn) {
    lua_getfield(L, LUA_REGISTRYINDEX, REG_GRPO);
    lgrpo *lg = luaL_testudata(L, -1, MT_GRPO);
    lua_pop(L, 1);
    if (lg && lg->busy) luaL_error(L, "%s: not allowed inside a grpo{} reward function", fn);
}

static lgrpo *current_grpo(lua_State *L, lmodel *lm) {
    lua_getfield(L, LUA_REGISTRYINDEX, REG_GRPO);
    lgrpo *lg = luaL_testudata(L, -1, MT_GRPO);
    lua_pop(L, 1);
    return lg && lg->g && lg->lm == lm ? lg : NULL;
}

/* ---------------------------------------------------------------- prompts -------------- */

/* Pushes the prompt list {{text, answer-or-nil, ids-userdata}, ...} built from opts.prompts (a
 * list of strings, {prompt, answer} pairs or {prompt=, answer=} tables) or opts.task, and
 * returns its length; *task_out is the task (or NULL). */
static int64_t push_prompts(lua_State *L, int t, lmodel *lm, const dsv3_grpo_task **task_out) {
    const char *task_name = dsv3_lua_opt_str(L, t, "task");
    lua_getfield(L, t, "prompts");
    const int has_prompts = !lua_isnil(L, -1);
    const int src = lua_gettop(L);
    *task_out = NULL;
    if (has_prompts == (task_name != NULL))
        luaL_error(L, "grpo: give prompts = {...} or task = \"add\" | \"copy\" (one of them)");
    if (task_name && !(*task_out = dsv3_grpo_task_find(task_name)))
        luaL_error(L, "grpo: unknown task '%s' (built-in: add, copy)", task_name);
    if (has_prompts && !lua_istable(L, src)) luaL_error(L, "grpo: prompts must be a list");
    const int64_t n =
        task_name ? (int64_t)dsv3_lua_opt_num(L, t, "examples", 64) : (int64_t)lua_rawlen(L, src);
    if (n < 1 || n > 1000000)
        luaL_error(L, "grpo: %s", task_name ? "examples must be in 1..1e6" : "prompts is empty");
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_createtable(L, 3, 0);
        if (task_name) {
            char p[128], a[64];
            (*task_out)->example((uint64_t)i, p, sizeof p, a, sizeof a);
            lua_pushstring(L, p);
            lua_rawseti(L, -2, 1);
            lua_pushstring(L, a);
            lua_rawseti(L, -2, 2);
        } else {
            lua_rawgeti(L, src, i + 1);
            const int e = lua_gettop(L);
            if (lua_type(L, e) == LUA_TSTRING) {
                lua_pushvalue(L, e);
                lua_rawseti(L, -3, 1);
            } else if (lua_istable(L, e)) {
                lua_getfield(L, e, "prompt");
                if (lua_isnil(L, -1)) {
                    lua_pop(L, 1);
                    lua_rawgeti(L, e, 1);
                }
                lua_getfield(L, e, "answer");
                if (lua_isnil(L, -1)) {
                    lua_pop(L, 1);
                    lua_rawgeti(L, e, 2);
                }
                if (lua_type(L, -2) != LUA_TSTRING ||
                    !(lua_isnil(L, -1) || lua_type(L, -1) == LUA_TSTRING))
                    luaL_error(L, "grpo: prompts[%d] must be {prompt, answer} with strings",
                               (int)i + 1);
                lua_rawseti(L, e - 1, 2);
                lua_rawseti(L, e - 1, 1);
            } else {
                luaL_error(L, "grpo: prompts[%d] is a %s (expected a string or {prompt, answer})",
                           (int)i + 1, luaL_typename(L, e));
            }
            lua_pop(L, 1);
        }
        lua_rawgeti(L, -1, 1);
        size_t k;
        dsv3_lua_ids_arg(L, -1, lm, &k, 1); /* pushes the ids userdata */
        lua_rawseti(L, -3, 3);
        lua_pop(L, 1);
        lua_rawseti(L, -2, i + 1);
    }
    lua_remove(L, src);
    return n;
}

/* Token ids of prompt entry i (1-based) of the list at idx, and their count. */
static const int32_t *prompt_ids(lua_State *L, int list, int64_t i, int64_t *n) {
    lua_rawgeti(L, list, i);
    lua_rawgeti(L, -1, 3);
    const int32_t *ids = lua_touserdata(L, -1); /* a userdata of exactly the prompt's ids */
    *n = (int64_t)(lua_rawlen(L, -1) / sizeof(int32_t));
    lua_pop(L, 2);
    return ids;
}

/* ---------------------------------------------------------------- rewards -------------- */

typedef struct {
    lua_State *L;
    lmodel *lm;
    int fn; /* stack index of the reward function, or 0 (task or answer reward) */
    const dsv3_grpo_task *task; /* the built-in task, or NULL */
    int list;                   /* stack index of the prompt list */
    const int64_t *pick;        /* [batch] 1-based prompt entries of this step */
    dsv3_session *s;
    double best; /* the step's best reward and its completion (text, malloc'd) */
    char *best_text;
    int64_t best_prompt;
} reward_ctx;

static dsv3_status lua_reward(void *ud, int64_t p, const int32_t *c, int64_t n, double *r,
                              dsv3_err *err) {
    reward_ctx *x = ud;
    lua_State *L = x->L;
    if (!lua_checkstack(L, 8)) return dsv3_errf(err, DSV3_ENOMEM, "grpo: Lua stack overflow");
    char *text = NULL;
    size_t len = 0;
    dsv3_status st = dsv3_tokenizer_decode(x->lm->tok, &text, &len, c, (size_t)n, 1, err);
    if (st) return st;
    lua_rawgeti(L, x->list, x->pick[p]);
    const int e = lua_gettop(L);
    if (x->fn) {
        lua_pushvalue(L, x->fn);
        lua_rawgeti(L, e, 1);
        lua_pushlstring(L, text, len);
        lua_rawgeti(L, e, 2);
        if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
            const int intr = dsv3_session_interrupted(x->s);
            st = dsv3_errf(err, intr ? DSV3_EINTR : DSV3_EINVAL, "grpo: reward function: %s",
                           lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object)");
        } else if (lua_type(L, -1) != LUA_TNUMBER) {
            st = dsv3_errf(err, DSV3_EINVAL,
                           "grpo: reward function returned a %s (expected a number)",
                           luaL_typename(L, -1));
        } else {
            *r = lua_tonumber(L, -1);
        }
        lua_pop(L, 1);
    } else {
        lua_rawgeti(L, e, 2);
        const char *a = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
        *r = x->task ? x->task->reward(a, text) : dsv3_grpo_answer_reward(a, text);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!st && (!x->best_text || *r > x->best)) {
        free(x->best_text);
        x->best_text = text;
        x->best = *r;
        x->best_prompt = x->pick[p];
        text = NULL;
    }
    free(text);
    return st;
}

/* ---------------------------------------------------------------- grpo{} --------------- */

static void read_opts(lua_State *L, int t, dsv3_grpo_opts *o) {
    o->lr = dsv3_lua_opt_num(L, t, "lr", o->lr);
    o->beta = dsv3_lua_opt_num(L, t, "beta", o->beta);
    o->eps = dsv3_lua_opt_num(L, t, "eps", o->eps);
    o->temperature = dsv3_lua_opt_num(L, t, "temperature|temp", o->temperature);
    o->weight_decay = dsv3_lua_opt_num(L, t, "weight_decay", o->weight_decay);
    o->clip = dsv3_lua_opt_num(L, t, "clip", o->clip);
    o->inner = (int64_t)dsv3_lua_opt_num(L, t, "inner", (lua_Number)o->inner);
}

static void push_step(lua_State *L, const dsv3_grpo_metrics *m, const reward_ctx *x) {
    lua_createtable(L, 0, 14);
    dsv3_lua_setint(L, "step", m->step);
    dsv3_lua_setnum(L, "reward", m->reward_mean);
    dsv3_lua_setnum(L, "reward_std", m->reward_std);
    dsv3_lua_setnum(L, "reward_max", m->reward_max);
    dsv3_lua_setnum(L, "kl", m->kl);
    dsv3_lua_setnum(L, "length", m->length);
    dsv3_lua_setnum(L, "loss", m->loss);
    dsv3_lua_setnum(L, "clip_frac", m->clip_frac);
    dsv3_lua_setnum(L, "grad_norm", m->grad_norm);
    dsv3_lua_setnum(L, "zero_adv", m->zero_adv);
    dsv3_lua_setint(L, "tokens", m->tokens);
    dsv3_lua_setnum(L, "seconds", m->seconds);
    dsv3_lua_setnum(L, "sample_seconds", m->sample_seconds);
    dsv3_lua_setnum(L, "tokens_per_s", m->tokens_per_s);
    if (x->best_text) {
        lua_pushstring(L, x->best_text);
        lua_setfield(L, -2, "best");
        lua_rawgeti(L, x->list, x->best_prompt);
        lua_rawgeti(L, -1, 1);
        lua_setfield(L, -3, "best_prompt");
        lua_pop(L, 1);
    }
}

static void progress_line(dsv3_session *s, const dsv3_grpo_metrics *m) {
    char line[256];
    int k = snprintf(
        line, sizeof line,
        "step %4lld  reward %.3f (std %.3f, max %.3f)  kl %.4f  len %.1f  loss %+.4f  %.0f tok/s\n",
        (long long)m->step, m->reward_mean, m->reward_std, m->reward_max, m->kl, m->length, m->loss,
        m->tokens_per_s);
    dsv3_session_write(s, DSV3_STDOUT, line, (size_t)k);
}

/* Shows (update = 0) or updates the run value at idx with display(value, {id = id, update}). */
static void show(lua_State *L, int run, const char *id, int update) {
    lua_getglobal(L, "display");
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    lua_pushvalue(L, run);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, id);
    lua_setfield(L, -2, "id");
    lua_pushboolean(L, update);
    lua_setfield(L, -2, "update");
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1); /* a plot is never worth failing the run */
}

/* grpo{prompts = {...} | task = NAME, reward = fn, group, batch, steps, max_tokens,
 * temperature, lr, beta, eps, inner, seed, weight_decay, clip, examples, quiet, plot} -> run */
static int l_grpo(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const options[] = {
        "task", "prompts", "reward", "steps", "group", "batch", "max_tokens|n",
        "temperature|temp", "lr", "weight_decay", "clip", "beta", "eps", "inner", "seed",
        "examples", "max_prompt", "quiet", "plot", NULL};
    dsv3_lua_check_opts(L, 1, "grpo", options);
    lua_settop(L, 1);
    lmodel *lm = dsv3_lua_model_arg(L, 2);
    lua_settop(L, 1);
    dsv3_session *s = dsv3_session_of(L);
    not_busy(L, "grpo");
    if (!lm->tok)
        return luaL_error(L, "grpo: the model has no tokenizer (prompts and rewards are text)");
    lua_getfield(L, LUA_REGISTRYINDEX, "dsv3.trainer.current");
    if (!lua_isnil(L, -1))
        return luaL_error(L,
                          "grpo: the session has a train{} trainer; train_save(dir) its weights or "
                          "train_reset() first");
    lua_pop(L, 1);
    const lua_Number steps_n = dsv3_lua_opt_num(L, 1, "steps", 20);
    if (!(steps_n >= 1 && steps_n <= 1e7)) return luaL_error(L, "grpo: steps must be in 1..1e7");
    const int64_t steps = (int64_t)steps_n;
    const int quiet = dsv3_lua_opt_bool(L, 1, "quiet", 0);
    const int plot = dsv3_lua_opt_bool(L, 1, "plot", 1);
    lua_getfield(L, 1, "reward"); /* 2 */
    if (!lua_isnil(L, 2) && !lua_isfunction(L, 2))
        return luaL_error(L,
                          "grpo: reward must be a function(prompt, completion, answer) -> number");
    const dsv3_grpo_task *task;
    const int64_t n_prompts = push_prompts(L, 1, lm, &task); /* 3 */
    int64_t longest = 1, with_answer = 0;
    for (int64_t i = 1; i <= n_prompts; i++) {
        int64_t k;
        prompt_ids(L, 3, i, &k);
        longest = k > longest ? k : longest;
        lua_rawgeti(L, 3, i);
        lua_rawgeti(L, -1, 2);
        with_answer += lua_isstring(L, -1);
        lua_pop(L, 2);
    }
    if (lua_isnil(L, 2) && with_answer < n_prompts)
        return luaL_error(L,
                          "grpo: give reward = function(prompt, completion, answer) -> number, or "
                          "an answer with every prompt");
    dsv3_grpo_opts o;
    dsv3_grpo_opts_init(&o);
    o.lr = 2e-3;
    read_opts(L, 1, &o);
    o.group = (int64_t)dsv3_lua_opt_num(L, 1, "group", 8);
    o.batch = (int64_t)dsv3_lua_opt_num(L, 1, "batch", 2);
    if (o.batch > n_prompts) o.batch = n_prompts;
    o.max_tokens = (int64_t)dsv3_lua_opt_num(L, 1, "max_tokens|n", 16);
    o.max_prompt = (int64_t)dsv3_lua_opt_num(L, 1, "max_prompt", (lua_Number)longest);
    o.seed = (uint64_t)dsv3_lua_opt_num(L, 1, "seed", 1);
    o.cancel = s->io.interrupt;
    if (longest > o.max_prompt)
        return luaL_error(L, "grpo: a prompt has %d tokens, above max_prompt %d", (int)longest,
                          (int)o.max_prompt);
    lgrpo *lg = current_grpo(L, lm);
    if (lg && (lg->group != o.group || lg->batch != o.batch || lg->max_tokens != o.max_tokens ||
               lg->max_prompt < longest))
        return luaL_error(L,
                          "grpo: the session's GRPO run has group %d, batch %d, max_tokens %d and "
                          "prompts up to %d tokens; call grpo_reset() to start another",
                          (int)lg->group, (int)lg->batch, (int)lg->max_tokens, (int)lg->max_prompt);
    if (!lg) {
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, REG_GRPO); /* the old run (another model) goes first */
        lg = lua_newuserdatauv(L, sizeof *lg, 1);
        memset(lg, 0, sizeof *lg);
        lg->lm = lm;
        luaL_setmetatable(L, MT_GRPO);
        dsv3_lua_push_model(L, lm); /* keep the model alive */
        lua_setiuservalue(L, -2, 1);
        dsv3_err err = {{0}};
        if (dsv3_grpo_new(&lg->g, lm->m, &o, &err)) return dsv3_lua_error(L, &err);
        lm->users++;
        lg->group = o.group;
        lg->batch = o.batch;
        lg->max_tokens = o.max_tokens;
        lg->max_prompt = o.max_prompt;
        lua_setfield(L, LUA_REGISTRYINDEX, REG_GRPO);
    } else {
        dsv3_grpo_opts *eo = dsv3_grpo_opts_of(lg->g);
        read_opts(L, 1, eo);
        eo->cancel = s->io.interrupt;
    }
    /* the run value */
    lua_createtable(L, 0, 6); /* 4 */
    const int run = lua_gettop(L);
    luaL_setmetatable(L, MT_GRPORUN);
    lua_pushstring(L, task ? task->name : "prompts");
    lua_setfield(L, run, "task");
    dsv3_lua_setint(L, "group", lg->group);
    lua_createtable(L, (int)steps, 0); /* 5 */
    lua_pushvalue(L, -1);
    lua_setfield(L, run, "steps");
    const int live = plot && s->io.display;
    char id[64]; /* never one of an earlier run's charts (a run after grpo_reset() included) */
    snprintf(id, sizeof id, "%s", dsv3_lua_display_id(L, "grpo"));
    lua_pop(L, 1);
    if (live) {
        show(L, run, id, 0);
        dsv3_lua_mark_shown(L, run); /* its chart is on screen: not shown again as the result */
    }
    int64_t *pick = dsv3_lua_alloc(L, (size_t)lg->batch * sizeof *pick); /* 6 */
    const int32_t **pp = dsv3_lua_alloc(L, (size_t)lg->batch * sizeof *pp);
    int64_t *pl = dsv3_lua_alloc(L, (size_t)lg->batch * sizeof *pl);
    dsv3_status st = DSV3_OK;
    dsv3_err err = {{0}};
    for (int64_t done = 0; done < steps; done++) {
        for (int64_t k = 0; k < lg->batch; k++) {
            pick[k] = (lg->steps * lg->batch + k) % n_prompts + 1;
            pp[k] = prompt_ids(L, 3, pick[k], &pl[k]);
        }
        reward_ctx x = {.L = L,
                        .lm = lm,
                        .fn = lua_isnil(L, 2) ? 0 : 2,
                        .list = 3,
                        .pick = pick,
                        .s = s,
                        .task = task};
        dsv3_grpo_metrics m;
        lg->busy = 1;
        st = dsv3_grpo_step(lg->g, pp, pl, lg->batch, lua_reward, &x, &m, &err);
        lg->busy = 0;
        if (st) {
            free(x.best_text);
            break;
        }
        lg->steps++;
        push_step(L, &m, &x);
        free(x.best_text);
        lua_rawseti(L, 5, done + 1);
        if (!quiet) progress_line(s, &m);
        if (live) show(L, run, id, 1);
        if (dsv3_session_interrupted(s)) {
            st = DSV3_EINTR;
            break;
        }
    }
    if (st && st != DSV3_EINTR) return dsv3_lua_error(L, &err);
    lua_pushboolean(L, st == DSV3_EINTR);
    lua_setfield(L, run, "interrupted");
    lua_pushinteger(L, lg->steps);
    lua_setfield(L, run, "total_steps");
    lua_pushvalue(L, run);
    return 1;
}

static int l_grpo_save(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    lmodel *lm = dsv3_lua_model_arg(L, 2);
    not_busy(L, "grpo_save");
    lgrpo *lg = current_grpo(L, lm);
    if (!lg) return luaL_error(L, "grpo_save: no GRPO run yet (run grpo{...} first)");
    dsv3_err err = {{0}};
    if (dsv3_grpo_save(lg->g, dir, &err)) return dsv3_lua_error(L, &err);
    lua_pushstring(L, dir);
    return 1;
}

static int l_grpo_reset(lua_State *L) {
    not_busy(L, "grpo_reset");
    lua_getfield(L, LUA_REGISTRYINDEX, REG_GRPO);
    if (luaL_testudata(L, -1, MT_GRPO)) {
        lua_pushcfunction(L, grpo_gc);
        lua_insert(L, -2);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_GRPO);
    return 0;
}

/* ---------------------------------------------------------------- renderers ------------ */

/* The run's steps' field k as a double array owned by a userdata pushed on the stack. */
static double *series(lua_State *L, int run, const char *k, lua_Integer *n) {
    lua_getfield(L, run, "steps");
    *n = (lua_Integer)lua_rawlen(L, -1);
    double *v = dsv3_lua_alloc(L, (size_t)(*n > 0 ? *n : 1) * sizeof *v);
    for (lua_Integer i = 1; i <= *n; i++) {
        lua_rawgeti(L, -2, i);
        lua_getfield(L, -1, k);
        v[i - 1] = lua_tonumber(L, -1);
        lua_pop(L, 2);
    }
    lua_remove(L, -2);
    return v;
}

/* Text: a sparkline of the mean reward, first -> last reward, KL and length, the best
 * completion of the last step. */
static int grporun_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_Integer n;
    const double *r = series(L, 1, "reward", &n);
    const double *kl = series(L, 1, "kl", &n);
    const double *len = series(L, 1, "length", &n);
    dsv3_strbuf b = {0};
    char line[512];
    if (n == 0) {
        dsv3_strbuf_puts(&b, "grpo: no step finished");
    } else {
        double lo = INFINITY, hi = -INFINITY;
        for (lua_Integer i = 0; i < n; i++)
            lo = fmin(lo, r[i]), hi = fmax(hi, r[i]);
        static const char *const bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
        dsv3_strbuf_puts(&b, "reward ");
        for (lua_Integer i = 0; i < n; i += (n + 59) / 60) {
            int k = hi > lo ? (int)((r[i] - lo) / (hi - lo) * 7.0 + 0.5) : 0;
            dsv3_strbuf_puts(&b, bars[k < 0 ? 0 : k > 7 ? 7 : k]);
        }
        lua_getfield(L, 1, "total_steps");
        snprintf(line, sizeof line,
                 "  %.3f -> %.3f; kl %.4f -> %.4f; length %.1f -> %.1f; %lld steps", r[0], r[n - 1],
                 kl[0], kl[n - 1], len[0], len[n - 1], (long long)n);
        lua_pop(L, 1);
        dsv3_strbuf_puts(&b, line);
        lua_getfield(L, 1, "steps");
        lua_rawgeti(L, -1, n);
        lua_getfield(L, -1, "best_prompt");
        lua_getfield(L, -2, "best");
        if (lua_isstring(L, -1) && lua_isstring(L, -2)) {
            char p[80], c[80];
            dsv3_text_fit(p, sizeof p, lua_tostring(L, -2), 24);
            dsv3_text_fit(c, sizeof c, lua_tostring(L, -1), 40);
            snprintf(line, sizeof line, "\nbest of the last step: %s -> %s", p, c);
            dsv3_strbuf_puts(&b, line);
        }
        lua_pop(L, 4);
    }
    lua_getfield(L, 1, "interrupted");
    if (lua_toboolean(L, -1)) dsv3_strbuf_puts(&b, " (interrupted)");
    lua_pop(L, 1);
    return dsv3_sbuf_push(L, &b);
}

/* SVG: reward, KL and completion length per step, one panel each. */
static int grporun_svg(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_Integer n;
    const dsv3_series c[3] = {{"reward (mean)", series(L, 1, "reward", &n), 0},
                              {"KL to ref (k3/token)", series(L, 1, "kl", &n), 1},
                              {"length (tokens)", series(L, 1, "length", &n), 2}};
    lua_getfield(L, 1, "task");
    char title[128];
    snprintf(title, sizeof title, "GRPO: %s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    char *svg = dsv3_render_lines_svg(c, 3, (int64_t)n, title, "step");
    lua_pushstring(L, svg ? svg : "");
    free(svg);
    return 1;
}

/* ---------------------------------------------------------------- registration --------- */

static void open_grpo(lua_State *L) {
    static const luaL_Reg grpo_meta[] = {{"__gc", grpo_gc}, {NULL, NULL}};
    static const luaL_Reg run_meta[] = {
        {"__tostring", grporun_tostring}, {"__svg", grporun_svg}, {NULL, NULL}};
    dsv3_lua_newmt(L, MT_GRPO, grpo_meta, NULL);
    dsv3_lua_newmt(L, MT_GRPORUN, run_meta, NULL);
}

static const dsv3_lua_fn fns[] = {
    {"grpo", l_grpo,
     "grpo{task=\"add\"|\"copy\" | prompts={...} [, reward=fn, group=8, batch=2, steps=20, ...]} -> run",
     "GRPO on the current model (docs/TRAINING.md, GRPO): per step, batch prompts, group completions\n"
     "each (max_tokens 16, temperature 1), rewards from reward(prompt, completion, answer) ->\n"
     "number (default: the answer reward, 1 for a completion starting with the answer), group-\n"
     "normalised advantages, the clipped token-level loss (eps 0.2) with a k3 KL penalty (beta 0.04)\n"
     "to the frozen starting weights, AdamW (lr 2e-3, no weight decay; inner steps per batch 1).\n"
     "prompts: strings or {prompt, answer}. Later calls with the same group, batch and max_tokens\n"
     "continue the run; the model computes with its weights until grpo_reset(). run.steps: reward,\n"
     "reward_std, reward_max, kl, length, loss, clip_frac, grad_norm, best (completion), seconds.\n"
     "In a notebook a live plot of reward, KL and length updates each step (plot=false: none)."},
    {"grpo_save", l_grpo_save, "grpo_save(dir) -> dir",
     "Saves the GRPO policy as a model directory (loadable with load)."},
    {"grpo_reset", l_grpo_reset, "grpo_reset()",
     "Drops the GRPO run and puts the model's weights from before it back."},
    {NULL, NULL, NULL, NULL},
};

const dsv3_lua_module dsv3_lua_grpo_module = {"grpo", open_grpo, fns};
