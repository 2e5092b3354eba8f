/* lua_train.c — hot-run training from the session: train{...}, train_eval(), train_save(dir),
 * train_reset().
 *
 * The first train{} on a model creates a trainer (model/train/trainer.h) kept in the session, so a
 * user can run 20 steps, look at the bias and the load, change gamma, and run 20 more. After
 * each call the trained weights are synced into the model, so gen(), route() and the probes
 * see them; train_reset() drops the trainer and puts the checkpoint's weights back. Ctrl-C
 * stops between steps and keeps the weights of the last finished step.
 */
#include "repl/session/lua_train.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/run/model.h"
#include "model/text/tokenizer.h"
#include "model/train/trainer.h"
#include "probes/render/render.h"
#include "repl/session/luax.h"

#define MT_TRAINER "dsv3.trainer"
#define MT_TRAINRUN "dsv3.trainrun"
#define REG_TRAINER "dsv3.trainer.current"

typedef struct {
    dsv3_trainer *t;
    lmodel *lm; /* the model it trains (kept alive through the uservalue) */
} ltrainer;

static int trainer_gc(lua_State *L) {
    ltrainer *lt = luaL_checkudata(L, 1, MT_TRAINER);
    if (lt->t) lt->lm->users--;
    dsv3_trainer_free(lt->t); /* also puts the model's own weights back */
    lt->t = NULL;
    return 0;
}

/* The session's trainer for lm, or NULL. */
static ltrainer *current_trainer(lua_State *L, lmodel *lm) {
    lua_getfield(L, LUA_REGISTRYINDEX, REG_TRAINER);
    ltrainer *lt = luaL_testudata(L, -1, MT_TRAINER);
    lua_pop(L, 1);
    return lt && lt->t && lt->lm == lm ? lt : NULL;
}

static void push_metrics(lua_State *L, const dsv3_train_metrics *m) {
    lua_createtable(L, 0, 11);
    dsv3_lua_setint(L, "step", m->step);
    dsv3_lua_setnum(L, "loss", m->loss);
    dsv3_lua_setnum(L, "ce", m->ce);
    dsv3_lua_setnum(L, "mtp", m->mtp);
    dsv3_lua_setnum(L, "balance", m->balance);
    dsv3_lua_setnum(L, "lr", m->lr);
    dsv3_lua_setnum(L, "grad_norm", m->grad_norm);
    dsv3_lua_setnum(L, "maxvio", m->maxvio);
    dsv3_lua_setint(L, "tokens", m->tokens);
    dsv3_lua_setnum(L, "seconds", m->seconds);
    dsv3_lua_setnum(L, "tokens_per_s", m->tokens_per_s);
}

/* Applies the tunable options of table t (lr, gamma, alpha, lambda, ...) to o. */
static void read_opts(lua_State *L, int t, dsv3_train_opts *o) {
    o->lr = dsv3_lua_opt_num(L, t, "lr", o->lr);
    o->gamma = dsv3_lua_opt_num(L, t, "gamma", o->gamma);
    o->alpha = dsv3_lua_opt_num(L, t, "alpha", o->alpha);
    o->lambda = dsv3_lua_opt_num(L, t, "lambda", o->lambda);
    o->clip = dsv3_lua_opt_num(L, t, "clip", o->clip);
    o->weight_decay = dsv3_lua_opt_num(L, t, "weight_decay", o->weight_decay);
    o->warmup = (int64_t)dsv3_lua_opt_num(L, t, "warmup", (lua_Number)o->warmup);
    o->total_steps = (int64_t)dsv3_lua_opt_num(L, t, "total_steps", (lua_Number)o->total_steps);
    o->fp8 = dsv3_lua_opt_bool(L, t, "fp8", o->fp8);
    const lua_Number prec = dsv3_lua_opt_num(L, t, "precision", (lua_Number)o->precision);
    if (prec != 32 && prec != 64) luaL_error(L, "train: precision must be 32 or 64");
    o->precision = (int)prec;
    if (!(o->lr >= 0 && o->lr < 10) || !(o->gamma >= 0 && o->gamma < 10) || !(o->alpha >= 0) ||
        !(o->lambda >= 0) || o->warmup < 0 || o->total_steps < 1)
        luaL_error(L, "train: lr, gamma, alpha, lambda, warmup must be >= 0 and total_steps >= 1");
}

/* Creates the session's trainer for lm from the options table at t. */
static ltrainer *new_trainer(lua_State *L, lmodel *lm, int t) {
    dsv3_train_opts o;
    dsv3_train_opts_init(&o);
    read_opts(L, t, &o);
    o.data_path = dsv3_lua_opt_str(L, t, "data");
    o.seq_len = (int64_t)dsv3_lua_opt_num(L, t, "seq_len", (lua_Number)o.seq_len);
    o.batch = (int64_t)dsv3_lua_opt_num(L, t, "batch", (lua_Number)o.batch);
    o.accum = (int64_t)dsv3_lua_opt_num(L, t, "accum", (lua_Number)o.accum);
    o.seed = (uint64_t)dsv3_lua_opt_num(L, t, "seed", (lua_Number)o.seed);
    o.heldout = dsv3_lua_opt_num(L, t, "heldout", o.heldout);
    o.fim_rate = dsv3_lua_opt_num(L, t, "fim_rate", o.fim_rate);
    if (!(o.fim_rate >= 0 && o.fim_rate <= 1)) luaL_error(L, "train: fim_rate must be in [0, 1]");
    o.cancel = dsv3_session_of(L)->io.interrupt;
    lua_getfield(L, t, "text");
    const int has_text = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (has_text) { /* train on a string: tokenize it here */
        lua_getfield(L, t, "text");
        size_t n;
        int32_t *ids = dsv3_lua_ids_arg(L, lua_gettop(L), lm, &n, 0);
        o.tokens = ids;
        o.n_tokens = (int64_t)n;
    }
    if (o.tokens && o.fim_rate > 0)
        luaL_error(L, "train: fim_rate needs data = PATH (documents); text = \"...\" is one "
                      "token stream");
    if (!o.data_path && !o.tokens)
        luaL_error(L, "train: give data = \"file or directory of .txt\" or text = \"...\"");
    lua_getfield(L, LUA_REGISTRYINDEX, "dsv3.grpo.current");
    if (!lua_isnil(L, -1))
        luaL_error(L, "train: the session has a GRPO run; grpo_save(dir) its weights or grpo_reset() first");
    lua_pop(L, 1);
    ltrainer *lt = lua_newuserdatauv(L, sizeof *lt, 1);
    lt->t = NULL;
    lt->lm = lm;
    luaL_setmetatable(L, MT_TRAINER);
    dsv3_lua_push_model(L, lm); /* keep the model alive as long as the trainer */
    lua_setiuservalue(L, -2, 1);
    dsv3_err err = {{0}};
    if (dsv3_trainer_new(&lt->t, lm->m, &o, &err)) dsv3_lua_error(L, &err);
    lm->users++;
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_TRAINER);
    lua_pop(L, 1);
    return lt;
}

static void progress_line(dsv3_session *s, const dsv3_train_metrics *m) {
    char line[256];
    int k = snprintf(line, sizeof line,
                     "step %4lld  loss %.4f (ce %.4f mtp %.4f bal %.3f)  lr %.2e  |g| %.3f  maxvio %.3f  %.0f tok/s\n",
                     (long long)m->step, m->loss, m->ce, m->mtp, m->balance, m->lr, m->grad_norm,
                     m->maxvio, m->tokens_per_s);
    dsv3_session_write(s, DSV3_STDOUT, line, (size_t)k);
}

/* train{steps = 20, data = PATH | text = STRING, lr, gamma, alpha, lambda, seq_len, batch,
 * accum, warmup, total_steps, seed, heldout, fim_rate, quiet} -> run */
static int l_train(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const options[] = {
        "steps", "data",      "text",   "seq_len", "batch", "accum",        "seed",
        "heldout", "fim_rate", "lr",    "gamma",   "alpha", "lambda",       "clip",
        "weight_decay", "warmup", "total_steps", "fp8", "precision", "quiet", NULL};
    dsv3_lua_check_opts(L, 1, "train", options);
    lmodel *lm = dsv3_lua_model_arg(L, 2);
    dsv3_session *s = dsv3_session_of(L);
    const lua_Number steps_n = dsv3_lua_opt_num(L, 1, "steps", 20);
    if (!(steps_n >= 1 && steps_n <= 1e7)) return luaL_error(L, "train: steps must be in 1..1e7");
    const int64_t steps = (int64_t)steps_n;
    const int quiet = dsv3_lua_opt_bool(L, 1, "quiet", 0);
    ltrainer *lt = current_trainer(L, lm);
    if (!lt) lt = new_trainer(L, lm, 1);
    else read_opts(L, 1, dsv3_trainer_opts(lt->t));
    dsv3_err err = {{0}};
    lua_createtable(L, 0, 4);
    const int res = lua_gettop(L);
    lua_createtable(L, (int)steps, 0);
    /* In a notebook (the host defines display) a chart of the steps so far replaces itself
     * after every step (update_display_data); at a terminal one line per step. */
    int live = 0;
    if (!quiet && lua_getglobal(L, "display") != LUA_TFUNCTION) {
        lua_pop(L, 1);
    } else if (!quiet) {
        live = lua_gettop(L);
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "steps");
        luaL_setmetatable(L, MT_TRAINRUN);
        lua_pushnil(L); /* the display id, once shown */
        lua_rotate(L, live - 1, 3); /* below the steps table: display, chart, id */
        live--;
    }
    int64_t done = 0;
    dsv3_status st = DSV3_OK;
    dsv3_train_metrics m;
    for (; done < steps; done++) {
        st = dsv3_trainer_step(lt->t, &m, &err);
        if (st) break;
        push_metrics(L, &m);
        lua_rawseti(L, -2, done + 1);
        if (!live) {
            if (!quiet) progress_line(s, &m);
            continue;
        }
        lua_pushvalue(L, live);      /* display */
        lua_pushvalue(L, live + 1);  /* the chart value */
        const int first = lua_isnil(L, live + 2);
        if (!first) {
            lua_createtable(L, 0, 2);
            lua_pushvalue(L, live + 2);
            lua_setfield(L, -2, "id");
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "update");
        }
        if (lua_pcall(L, first ? 1 : 2, 1, 0) == LUA_OK && first) lua_replace(L, live + 2);
        else lua_pop(L, 1); /* a failing display costs the chart, not the training */
    }
    if (live && !lua_isnil(L, live + 2)) dsv3_lua_mark_shown(L, res); /* the live chart is it */
    lua_setfield(L, res, "steps");
    lua_settop(L, res);
    dsv3_err serr = {{0}};
    const dsv3_status synced = dsv3_trainer_sync(lt->t, &serr);
    if (st && st != DSV3_EINTR) return dsv3_lua_error(L, &err);
    if (synced) return dsv3_lua_error(L, &serr);
    lua_pushboolean(L, st == DSV3_EINTR);
    lua_setfield(L, res, "interrupted");
    /* per-layer loads, bias and maxvio after the last step */
    lua_newtable(L);
    for (int64_t i = 0; i < dsv3_trainer_moe_layers(lt->t); i++) {
        dsv3_train_layer tl;
        if (dsv3_trainer_layer(lt->t, i, &tl, &err)) continue;
        lua_createtable(L, 0, 4);
        dsv3_lua_setint(L, "layer", tl.layer);
        dsv3_lua_setnum(L, "maxvio", tl.maxvio);
        lua_createtable(L, (int)tl.n_experts, 0);
        for (int64_t e = 0; e < tl.n_experts; e++) {
            lua_pushinteger(L, tl.load[e]);
            lua_rawseti(L, -2, e + 1);
        }
        lua_setfield(L, -2, "load");
        lua_createtable(L, (int)tl.n_experts, 0);
        for (int64_t e = 0; e < tl.n_experts; e++) {
            lua_pushnumber(L, tl.bias[e]);
            lua_rawseti(L, -2, e + 1);
        }
        lua_setfield(L, -2, "bias");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, res, "layers");
    dsv3_train_info info;
    dsv3_trainer_info(lt->t, &info);
    dsv3_lua_setint(L, "total_steps_done", info.step);
    dsv3_lua_setint(L, "documents", info.n_docs);
    dsv3_lua_setint(L, "fim_documents", info.n_fim_docs);
    luaL_setmetatable(L, MT_TRAINRUN);
    return 1;
}

static int l_train_eval(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 1);
    ltrainer *lt = current_trainer(L, lm);
    if (!lt) return luaL_error(L, "train_eval: no trainer yet (run train{...} first)");
    dsv3_train_metrics m;
    dsv3_err err = {{0}};
    if (dsv3_trainer_eval(lt->t, &m, &err)) return dsv3_lua_error(L, &err);
    push_metrics(L, &m);
    return 1;
}

static int l_train_save(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    lmodel *lm = dsv3_lua_model_arg(L, 2);
    ltrainer *lt = current_trainer(L, lm);
    if (!lt) return luaL_error(L, "train_save: no trainer yet (run train{...} first)");
    dsv3_err err = {{0}};
    if (dsv3_trainer_save(lt->t, dir, &err)) return dsv3_lua_error(L, &err);
    lua_pushstring(L, dir);
    return 1;
}

static int l_train_reset(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, REG_TRAINER);
    if (luaL_testudata(L, -1, MT_TRAINER)) {
        lua_pushcfunction(L, trainer_gc);
        lua_insert(L, -2);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_TRAINER);
    return 0;
}

/* Text: first and last step, and a sparkline of the loss. */
static int trainrun_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "steps");
    const lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    dsv3_strbuf b = {0};
    if (n == 0) {
        dsv3_strbuf_puts(&b, "no step finished");
    } else {
        double lo = INFINITY, hi = -INFINITY;
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            lua_getfield(L, -1, "loss");
            double v = lua_tonumber(L, -1);
            lua_pop(L, 2);
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
        static const char *const bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
        dsv3_strbuf_puts(&b, "loss ");
        for (lua_Integer i = 1; i <= n; i += (n + 59) / 60) {
            lua_rawgeti(L, -1, i);
            lua_getfield(L, -1, "loss");
            double v = lua_tonumber(L, -1);
            lua_pop(L, 2);
            int k = hi > lo ? (int)((v - lo) / (hi - lo) * 7.0 + 0.5) : 0;
            dsv3_strbuf_puts(&b, bars[k < 0 ? 0 : k > 7 ? 7 : k]);
        }
        lua_rawgeti(L, -1, 1);
        lua_getfield(L, -1, "loss");
        lua_getfield(L, -2, "maxvio");
        lua_rawgeti(L, -4, n);
        lua_getfield(L, -1, "loss");
        lua_getfield(L, -2, "maxvio");
        lua_getfield(L, -3, "step");
        char line[256];
        /* stack: steps, s1, loss1, maxvio1, sn, lossn, maxvion, stepn */
        snprintf(line, sizeof line, "  %.4f -> %.4f; maxvio %.3f -> %.3f; at step %lld", lua_tonumber(L, -6),
                 lua_tonumber(L, -3), lua_tonumber(L, -5), lua_tonumber(L, -2), (long long)lua_tointeger(L, -1));
        lua_pop(L, 7);
        dsv3_strbuf_puts(&b, line);
    }
    lua_getfield(L, 1, "interrupted");
    if (lua_toboolean(L, -1)) dsv3_strbuf_puts(&b, " (interrupted)");
    lua_pop(L, 1);
    return dsv3_sbuf_push(L, &b);
}

/* SVG: the loss curve of this run. */
/* Loss curves (total, next-token CE, MTP CE) above the load imbalance (maxvio). */
static int trainrun_svg(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "steps");
    const lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    static const char *const keys[] = {"loss", "ce", "mtp", "maxvio"};
    enum { NS = 4 };
    double *v = dsv3_lua_alloc(L, (size_t)(n > 0 ? n : 1) * NS * sizeof *v);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        for (int k = 0; k < NS; k++) {
            lua_getfield(L, -1, keys[k]);
            v[k * n + i - 1] = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : NAN;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    const dsv3_series sr[NS] = {{"loss", v, 0}, {"ce", v + n, 0}, {"mtp", v + 2 * n, 0},
                                {"maxvio", v + 3 * n, 1}};
    char *svg = dsv3_render_lines_svg(sr, NS, (int64_t)n, "training: loss (top), expert-load imbalance maxvio (bottom)", "step");
    lua_pushstring(L, svg ? svg : "");
    free(svg);
    return 1;
}

/* ---------------------------------------------------------------- registration --------- */

static void open_train(lua_State *L) {
    static const luaL_Reg trainer_meta[] = {{"__gc", trainer_gc}, {NULL, NULL}};
    static const luaL_Reg run_meta[] = {{"__tostring", trainrun_tostring}, {"__svg", trainrun_svg}, {NULL, NULL}};
    dsv3_lua_newmt(L, MT_TRAINER, trainer_meta, NULL);
    dsv3_lua_newmt(L, MT_TRAINRUN, run_meta, NULL);
}

static const dsv3_lua_fn fns[] = {
    {"train", l_train,
     "train{steps=20, data=PATH | text=STRING [, lr, gamma, alpha, lambda, seq_len, batch, ...]} -> run",
     "Hot-runs training steps on the current model (FP32 master weights, AdamW, next-token CE +\n"
     "lambda MTP CE + alpha sequence balance loss, aux-loss-free bias update with speed gamma).\n"
     "The first call creates the trainer (data, seq_len, batch, accum, seed); later calls continue\n"
     "it and may change lr, gamma, alpha, lambda, warmup, total_steps and fp8 (true: the block\n"
     "linears run the emulated FP8 recipe). In a notebook a loss/imbalance chart redraws itself\n"
     "after every step. The weights are synced into\n"
     "the model after each call (gen, route and bias() see them). run.steps holds per-step loss,\n"
     "ce, mtp, balance, lr, grad_norm, maxvio, tokens_per_s; run.layers the loads and biases.\n"
     "fim_rate (0; the report's 0.1) rearranges that fraction of the documents of data into the\n"
     "Fill-in-Middle PSM layout (run.fim_documents of run.documents)."},
    {"train_eval", l_train_eval, "train_eval() -> metrics", "Loss on the held-out split."},
    {"train_save", l_train_save, "train_save(dir) -> dir",
     "Saves the trained model (safetensors + config + tokenizer) and the training state, atomically."},
    {"train_reset", l_train_reset, "train_reset()",
     "Drops the trainer and puts the checkpoint's weights back into the model."},
    {NULL, NULL, NULL, NULL},
};

const dsv3_lua_module dsv3_lua_train_module = {"train", open_train, fns};
