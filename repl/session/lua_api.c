/* lua_api.c — the model API of a session: load, info, tokenize, logits, gen, chat, ...
 *
 * Bindings return values (tables and userdata with a __tostring renderer) and never print,
 * except gen/chat, whose tokens stream to the host's output as they are produced. Arguments
 * are checked with luaL_check*; library errors become Lua errors in dsv3_lua_error. The table
 * fns at the end is this module's whole surface, with the help text of each function.
 */
#define _GNU_SOURCE /* memmem */
#include "repl/session/lua_api.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/run/mtp.h"
#include "model/text/detok.h"
#include "model/text/fim.h"
#include "model/run/forward.h"
#include "model/run/generate.h"
#include "model/run/model.h"
#include "model/text/tokenizer.h"
#include "repl/session/luax.h"

#define MT_LOGITS "dsv3.logits"
#define MT_INFO "dsv3.info"
#define MT_TOKENS "dsv3.tokens"
#define MT_GEN "dsv3.gen"

/* ---------------------------------------------------------------- models --------------- */


static int model_gc(lua_State *L) {
    lmodel *lm = luaL_checkudata(L, 1, DSV3_LUA_MT_MODEL);
    dsv3_tokenizer_close(lm->tok);
    dsv3_model_close(lm->m);
    lm->m = NULL;
    lm->tok = NULL;
    return 0;
}

/* close(m) and the end of a <close> variable: frees the model now, unless a training or GRPO run
 * computes with it (their memory points into it). Closing twice is a no-op. */
static int l_close(lua_State *L) {
    lmodel *lm = luaL_checkudata(L, 1, DSV3_LUA_MT_MODEL);
    if (lm->users > 0)
        return luaL_error(L, "close: the session's train{} or grpo{} run uses this model; "
                             "train_reset() or grpo_reset() first");
    return model_gc(L);
}

static void human(char *buf, size_t n, double v) {
    if (v >= 1e9) snprintf(buf, n, "%.2fB", v / 1e9);
    else if (v >= 1e6) snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, n, "%.1fK", v / 1e3);
    else snprintf(buf, n, "%.0f", v);
}

static int model_tostring(lua_State *L) {
    lmodel *lm = luaL_checkudata(L, 1, DSV3_LUA_MT_MODEL);
    if (!lm->m) {
        lua_pushstring(L, "<closed model>");
        return 1;
    }
    const dsv3_config *c = dsv3_model_config(lm->m);
    dsv3_param_counts p;
    dsv3_model_param_counts(lm->m, &p);
    char tot[32], act[32];
    human(tot, sizeof tot, (double)p.total);
    human(act, sizeof act, (double)p.active);
    lua_pushfstring(L, "<model %s: %d layers, %d experts (top-%d), %s params, %s active/token%s%s>",
                    dsv3_model_dir(lm->m), (int)c->num_hidden_layers, (int)c->n_routed_experts,
                    (int)c->num_experts_per_tok, tot, act, dsv3_model_has_mtp(lm->m) ? ", MTP" : "",
                    lm->tok ? ", tokenizer" : "");
    return 1;
}

/* A progress bar on the host's stderr for checkpoints with many shards or layers. */
static void load_progress(void *ud, const char *what, int64_t done, int64_t total) {
    dsv3_session *s = ud;
    if (total < 8 || !s->io.color) return; /* only on an interactive terminal */
    char bar[128];
    const int width = 30, fill = (int)(done * width / total);
    int k = snprintf(bar, sizeof bar, "\rloading %-6s [", what);
    for (int i = 0; i < width; i++) bar[k++] = i < fill ? '#' : '.';
    k += snprintf(bar + k, sizeof bar - (size_t)k, "] %lld/%lld%s", (long long)done, (long long)total,
                  done == total ? "\n" : "");
    dsv3_session_write(s, DSV3_STDERR, bar, (size_t)k);
}

/* The directory load() opens when given none: $DSV3_MODEL when set, else the bundled demo
 * model of the source tree this binary was built from (DSV3_DEMO_DIR, set by CMake), so that
 * load() works from the repository root, from examples/ and from a notebook's folder alike. */
static const char *default_model_dir(lua_State *L) {
    const char *env = getenv("DSV3_MODEL");
    if (env && *env) return env;
#ifdef DSV3_DEMO_DIR
    return DSV3_DEMO_DIR;
#else
    luaL_error(L, "load: no directory given, DSV3_MODEL is unset and this build knows no demo model");
    return NULL;
#endif
}

/* Appends the model on top of the stack to the registry's weak list, squeezing out the holes
 * that collected models left. */
static void list_model(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, DSV3_LUA_REG_MODELS);
    lua_getfield(L, -1, "n");
    const lua_Integer n = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_Integer k = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, i) == LUA_TUSERDATA && ((lmodel *)lua_touserdata(L, -1))->m) {
            lua_rawseti(L, -2, ++k);
        } else {
            lua_pop(L, 1);
        }
    }
    for (lua_Integer i = k + 1; i <= n; i++) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, ++k);
    lua_pushinteger(L, k);
    lua_setfield(L, -2, "n");
    lua_pop(L, 1);
}

static int l_load(lua_State *L) {
    const char *dir = lua_isnoneornil(L, 1) ? default_model_dir(L) : luaL_checkstring(L, 1);
    dsv3_err err = {{0}};
    /* the GC does not see a model's mapped and malloc'd memory: close the unreferenced ones
     * before mapping another */
    lua_gc(L, LUA_GCCOLLECT);
    lmodel *lm = lua_newuserdatauv(L, sizeof *lm, 0);
    memset(lm, 0, sizeof *lm);
    luaL_setmetatable(L, DSV3_LUA_MT_MODEL);
    if (dsv3_model_open_progress(&lm->m, dir, load_progress, dsv3_session_of(L), &err))
        return dsv3_lua_error(L, &err);
    if (dsv3_tokenizer_open_dir(&lm->tok, dir, &err)) {
        dsv3_model_close(lm->m);
        lm->m = NULL;
        return dsv3_lua_error(L, &err);
    }
    const char *w = dsv3_model_warnings(lm->m);
    if (*w) dsv3_session_write(dsv3_session_of(L), DSV3_STDERR, w, strlen(w));
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "dsv3.current");
    list_model(L);
    return 1;
}

/* A new list of the open models in load order. */
static int l_models(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, DSV3_LUA_REG_MODELS);
    lua_getfield(L, -1, "n");
    const lua_Integer n = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_newtable(L);
    lua_Integer k = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -2, i) == LUA_TUSERDATA && ((lmodel *)lua_touserdata(L, -1))->m)
            lua_rawseti(L, -2, ++k);
        else
            lua_pop(L, 1);
    }
    return 1;
}

static int l_use(lua_State *L) {
    dsv3_lua_check_model(L, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "dsv3.current");
    lua_pushvalue(L, 1);
    return 1;
}

/* ---------------------------------------------------------------- info ----------------- */

static int info_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    dsv3_strbuf b = {0};
    static const char *const keys[] = {"dir", "model_type", "scoring_func", "topk_method",
                                       "vocab_size", "hidden_size", "layers", "dense_layers",
                                       "moe_layers", "heads", "q_lora_rank", "kv_lora_rank",
                                       "routed_experts", "experts_per_token", "groups",
                                       "topk_group", "shared_experts", "mtp", "file_bytes", NULL};
    for (int i = 0; keys[i]; i++) {
        lua_getfield(L, 1, keys[i]);
        char line[512];
        snprintf(line, sizeof line, "%-18s %s\n", keys[i], luaL_tolstring(L, -1, NULL));
        lua_pop(L, 2);
        dsv3_strbuf_puts(&b, line);
    }
    lua_getfield(L, 1, "params");
    static const char *const pk[] = {"embed", "attention", "dense_ffn", "routed_experts",
                                     "shared_experts", "router", "norms", "lm_head", "mtp",
                                     "total", "active", NULL};
    dsv3_strbuf_puts(&b, "params:\n");
    for (int i = 0; pk[i]; i++) {
        lua_getfield(L, -1, pk[i]);
        char h[32];
        human(h, sizeof h, (double)lua_tointeger(L, -1));
        lua_pop(L, 1);
        char line[128];
        snprintf(line, sizeof line, "  %-16s %s\n", pk[i], h);
        dsv3_strbuf_puts(&b, line);
    }
    lua_pop(L, 1);
    return dsv3_sbuf_push(L, &b);
}

static int l_info(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 1);
    const dsv3_config *c = dsv3_model_config(lm->m);
    dsv3_param_counts p;
    dsv3_model_param_counts(lm->m, &p);
    lua_newtable(L);
    lua_pushstring(L, dsv3_model_dir(lm->m));
    lua_setfield(L, -2, "dir");
    lua_pushstring(L, c->model_type); /* the family (docs/ARCHITECTURE.md, "Family") */
    lua_setfield(L, -2, "model_type");
    lua_pushstring(L, dsv3_config_scoring_name(c->scoring_func));
    lua_setfield(L, -2, "scoring_func");
    lua_pushstring(L, dsv3_config_topk_method_name(c->topk_method));
    lua_setfield(L, -2, "topk_method");
    lua_pushnumber(L, c->routed_scaling_factor);
    lua_setfield(L, -2, "routed_scaling_factor");
    dsv3_lua_setint(L, "vocab_size", c->vocab_size);
    dsv3_lua_setint(L, "hidden_size", c->hidden_size);
    dsv3_lua_setint(L, "layers", c->num_hidden_layers);
    dsv3_lua_setint(L, "dense_layers", c->first_k_dense_replace);
    dsv3_lua_setint(L, "moe_layers", c->num_hidden_layers - c->first_k_dense_replace);
    dsv3_lua_setint(L, "heads", c->num_attention_heads);
    dsv3_lua_setint(L, "q_lora_rank", c->q_lora_rank);
    dsv3_lua_setint(L, "kv_lora_rank", c->kv_lora_rank);
    dsv3_lua_setint(L, "qk_nope_head_dim", c->qk_nope_head_dim);
    dsv3_lua_setint(L, "qk_rope_head_dim", c->qk_rope_head_dim);
    dsv3_lua_setint(L, "v_head_dim", c->v_head_dim);
    dsv3_lua_setint(L, "routed_experts", c->n_routed_experts);
    dsv3_lua_setint(L, "experts_per_token", c->num_experts_per_tok);
    dsv3_lua_setint(L, "groups", c->n_group);
    dsv3_lua_setint(L, "topk_group", c->topk_group);
    dsv3_lua_setint(L, "shared_experts", c->n_shared_experts);
    dsv3_lua_setint(L, "max_position_embeddings", c->max_position_embeddings);
    lua_pushboolean(L, dsv3_model_has_mtp(lm->m));
    lua_setfield(L, -2, "mtp");
    lua_pushboolean(L, c->rope_yarn);
    lua_setfield(L, -2, "yarn");
    dsv3_lua_setint(L, "file_bytes", (long long)dsv3_model_file_bytes(lm->m));
    /* MLA latent cache per token (all layers, f32) vs what plain MHA would keep. */
    dsv3_lua_setint(L, "cache_bytes_per_token", 4LL * c->num_hidden_layers * (c->kv_lora_rank + c->qk_rope_head_dim));
    dsv3_lua_setint(L, "mha_cache_bytes_per_token",
           4LL * c->num_hidden_layers * c->num_attention_heads * (c->qk_nope_head_dim + c->qk_rope_head_dim + c->v_head_dim));
    lua_newtable(L);
    dsv3_lua_setint(L, "embed", p.embed);
    dsv3_lua_setint(L, "attention", p.attention);
    dsv3_lua_setint(L, "dense_ffn", p.dense_ffn);
    dsv3_lua_setint(L, "routed_experts", p.routed_experts);
    dsv3_lua_setint(L, "shared_experts", p.shared_experts);
    dsv3_lua_setint(L, "router", p.router);
    dsv3_lua_setint(L, "norms", p.norms);
    dsv3_lua_setint(L, "lm_head", p.lm_head);
    dsv3_lua_setint(L, "mtp", p.mtp);
    dsv3_lua_setint(L, "total", p.total);
    dsv3_lua_setint(L, "active", p.active);
    lua_setfield(L, -2, "params");
    luaL_setmetatable(L, MT_INFO);
    return 1;
}

/* ---------------------------------------------------------------- tokens --------------- */

/* Pushes a dsv3.tokens table {ids..., pieces = {...}}. */
static void push_tokens(lua_State *L, lmodel *lm, const int32_t *ids, size_t n) {
    lua_createtable(L, (int)n, 1);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (lm->tok) {
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            const char *p = dsv3_tokenizer_piece(lm->tok, ids[i]);
            lua_pushstring(L, p ? p : "?");
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "pieces");
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            char *t = dsv3_tokenizer_label(lm->tok, ids[i]);
            lua_pushstring(L, t ? t : "?");
            free(t);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "text");
    }
    luaL_setmetatable(L, MT_TOKENS);
}

static int tokens_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    dsv3_strbuf b = {0};
    lua_pushfstring(L, "%d tokens:", (int)n);
    dsv3_sbuf_addtop(L, &b);
    lua_getfield(L, 1, "text"); /* readable labels; older tables have only pieces */
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, 1, "pieces");
    }
    int has_pieces = lua_istable(L, -1);
    for (lua_Integer i = 1; i <= n && i <= 200; i++) {
        lua_rawgeti(L, 1, i);
        if (has_pieces) {
            lua_rawgeti(L, -2, i);
            lua_pushfstring(L, " %d:%s", (int)lua_tointeger(L, -2), lua_tostring(L, -1));
            lua_remove(L, -2);
        } else {
            lua_pushfstring(L, " %d", (int)lua_tointeger(L, -1));
        }
        lua_remove(L, -2);
        dsv3_sbuf_addtop(L, &b);
    }
    lua_pop(L, 1);
    if (n > 200) dsv3_strbuf_puts(&b, " ...");
    return dsv3_sbuf_push(L, &b);
}

static int l_tokenize(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    static const char *const options[] = {"bos", NULL};
    dsv3_lua_check_opts(L, 2, "tokenize", options);
    int bos = dsv3_lua_opt_bool(L, 2, "bos", 0);
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err = {{0}};
    if (dsv3_tokenizer_encode(dsv3_lua_tokenizer(L, lm), &ids, &n, text, len, bos, &err))
        return dsv3_lua_error(L, &err);
    int32_t *owned = dsv3_lua_own_ids(L, ids, n);
    push_tokens(L, lm, owned, n);
    return 1;
}

static int l_detokenize(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const options[] = {"skip_special", NULL};
    dsv3_lua_check_opts(L, 2, "detokenize", options);
    size_t n;
    int32_t *ids = dsv3_lua_ids_arg(L, 1, lm, &n, 0);
    char *text = NULL;
    size_t len = 0;
    dsv3_err err = {{0}};
    dsv3_status st = dsv3_tokenizer_decode(dsv3_lua_tokenizer(L, lm), &text, &len, ids, n,
                                           dsv3_lua_opt_bool(L, 2, "skip_special", 0), &err);
    if (st) return dsv3_lua_error(L, &err);
    lua_pushlstring(L, text, len);
    free(text);
    return 1;
}

/* ---------------------------------------------------------------- logits --------------- */

typedef struct {
    int64_t T, V;
    float *logits; /* [T, V] */
    float *mtp;    /* [T-1, V] or NULL */
    int32_t *ids;  /* [T] */
} llogits;

static int logits_gc(lua_State *L) {
    llogits *lg = luaL_checkudata(L, 1, MT_LOGITS);
    free(lg->logits);
    free(lg->mtp);
    free(lg->ids);
    lg->logits = lg->mtp = NULL;
    lg->ids = NULL;
    return 0;
}

/* The logits at idx; raises if its memory was released (a __gc called by hand). */
/* The model a logits value was computed with (its user value), or NULL once closed. */
static const lmodel *logits_model(lua_State *L, int idx) {
    lua_getiuservalue(L, idx, 1);
    const lmodel *lm = luaL_testudata(L, -1, DSV3_LUA_MT_MODEL);
    lua_pop(L, 1);
    return lm && lm->m ? lm : NULL;
}

static llogits *check_logits(lua_State *L, int idx) {
    llogits *lg = luaL_checkudata(L, idx, MT_LOGITS);
    if (!lg->logits) luaL_error(L, "logits value is released");
    return lg;
}

/* Position argument: 1-based, negative counts from the end (-1 = last). */
static int64_t pos_arg(lua_State *L, int idx, int64_t T) {
    lua_Integer p = luaL_optinteger(L, idx, -1);
    if (p < 0) p = T + 1 + p;
    luaL_argcheck(L, p >= 1 && p <= T, idx, "position out of range");
    return (int64_t)p - 1;
}

/* Pushes {{id=, text=, logit=, prob=}, ...} for the k largest of row[V]; text (the token's
 * readable label) only when lm has a tokenizer. */
static void push_top(lua_State *L, const float *row, int64_t V, int k, const lmodel *lm) {
    double mx = row[0], sum = 0;
    for (int64_t v = 1; v < V; v++) mx = fmax(mx, row[v]);
    for (int64_t v = 0; v < V; v++) sum += exp(row[v] - mx);
    unsigned char *taken = dsv3_lua_alloc(L, (size_t)(V > 0 ? V : 1));
    lua_createtable(L, k, 0);
    for (int i = 0; i < k && i < V; i++) {
        int64_t best = -1;
        for (int64_t v = 0; v < V; v++)
            if (!taken[v] && (best < 0 || row[v] > row[best])) best = v;
        taken[best] = 1;
        lua_createtable(L, 0, 3);
        dsv3_lua_setint(L, "id", best);
        if (lm && lm->tok) {
            char *t = dsv3_tokenizer_label(lm->tok, (int32_t)best);
            lua_pushstring(L, t ? t : "?");
            free(t);
            lua_setfield(L, -2, "text");
        }
        lua_pushnumber(L, row[best]);
        lua_setfield(L, -2, "logit");
        lua_pushnumber(L, exp(row[best] - mx) / sum);
        lua_setfield(L, -2, "prob");
        lua_rawseti(L, -2, i + 1);
    }
    lua_remove(L, -2); /* the scratch below the result */
}

static int logits_top(lua_State *L) {
    llogits *lg = check_logits(L, 1);
    int64_t p = pos_arg(L, 2, lg->T);
    lua_Integer k = luaL_optinteger(L, 3, 5);
    luaL_argcheck(L, k >= 1, 3, "k must be at least 1");
    push_top(L, lg->logits + p * lg->V, lg->V, (int)(k < lg->V ? k : lg->V), logits_model(L, 1));
    return 1;
}

static int logits_mtp_top(lua_State *L) {
    llogits *lg = check_logits(L, 1);
    if (!lg->mtp) return luaL_error(L, "no MTP logits: call logits(x, {mtp=true}) with a model that has MTP");
    int64_t p = pos_arg(L, 2, lg->T - 1);
    lua_Integer k = luaL_optinteger(L, 3, 5);
    luaL_argcheck(L, k >= 1, 3, "k must be at least 1");
    push_top(L, lg->mtp + p * lg->V, lg->V, (int)(k < lg->V ? k : lg->V), logits_model(L, 1));
    return 1;
}

static int logits_at(lua_State *L) {
    llogits *lg = check_logits(L, 1);
    int64_t p = pos_arg(L, 2, lg->T);
    lua_Integer id = luaL_checkinteger(L, 3);
    luaL_argcheck(L, id >= 0 && id < lg->V, 3, "token id out of range");
    lua_pushnumber(L, lg->logits[p * lg->V + id]);
    return 1;
}

static int logits_row(lua_State *L) {
    llogits *lg = check_logits(L, 1);
    int64_t p = pos_arg(L, 2, lg->T);
    lua_createtable(L, (int)lg->V, 0);
    for (int64_t v = 0; v < lg->V; v++) {
        lua_pushnumber(L, lg->logits[p * lg->V + v]);
        lua_rawseti(L, -2, v + 1);
    }
    return 1;
}

static int logits_shape(lua_State *L) {
    llogits *lg = check_logits(L, 1);
    lua_pushinteger(L, lg->T);
    lua_pushinteger(L, lg->V);
    return 2;
}

static int logits_len(lua_State *L) {
    llogits *lg = check_logits(L, 1);
    lua_pushinteger(L, lg->T);
    return 1;
}

static int logits_tostring(lua_State *L) {
    llogits *lg = check_logits(L, 1);
    const lmodel *lm = logits_model(L, 1);
    dsv3_strbuf b = {0};
    lua_pushfstring(L, "logits [%d x %d]%s; top-5 next tokens:\n", (int)lg->T, (int)lg->V,
                    lg->mtp ? " (+ MTP)" : "");
    dsv3_sbuf_addtop(L, &b);
    int64_t from = lg->T > 8 ? lg->T - 8 : 0;
    for (int64_t t = from; t < lg->T; t++) {
        push_top(L, lg->logits + t * lg->V, lg->V, 5, lm);
        lua_pushfstring(L, "  pos %d ", (int)t + 1);
        dsv3_sbuf_addtop(L, &b);
        dsv3_lua_push_label(L, lm, lg->ids[t]);
        dsv3_sbuf_addtop(L, &b);
        dsv3_strbuf_puts(&b, " ->");
        for (int k = 1; k <= 5 && k <= lg->V; k++) {
            lua_rawgeti(L, -1, k);
            lua_getfield(L, -1, "id");
            lua_getfield(L, -2, "prob");
            char buf[64];
            snprintf(buf, sizeof buf, " (%.3f)", lua_tonumber(L, -1));
            dsv3_strbuf_puts(&b, " ");
            dsv3_lua_push_label(L, lm, (int32_t)lua_tointeger(L, -2));
            dsv3_sbuf_addtop(L, &b);
            lua_pop(L, 3);
            dsv3_strbuf_puts(&b, buf);
        }
        lua_pop(L, 1);
        dsv3_strbuf_puts(&b, "\n");
    }
    return dsv3_sbuf_push(L, &b);
}

static int l_logits(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    static const char *const options[] = {"mtp", "attn", NULL};
    dsv3_lua_check_opts(L, 2, "logits", options);
    const dsv3_config *c = dsv3_model_config(lm->m);
    size_t n;
    int32_t *ids = dsv3_lua_ids_arg(L, 1, lm, &n, 1);
    int want_mtp = dsv3_lua_opt_bool(L, 2, "mtp", 0);
    const char *attn = dsv3_lua_opt_str(L, 2, "attn");
    if (n < 1 || (int64_t)n > c->max_position_embeddings) {
        return luaL_error(L, "logits: %d tokens (need 1..%d)", (int)n, (int)c->max_position_embeddings);
    }
    if (want_mtp && !dsv3_model_has_mtp(lm->m)) {
        return luaL_error(L, "logits: the model has no MTP layer");
    }
    if (attn && strcmp(attn, "naive") && strcmp(attn, "absorbed")) {
        return luaL_error(L, "logits: option attn must be \"absorbed\" or \"naive\"");
    }
    llogits *lg = lua_newuserdatauv(L, sizeof *lg, 1);
    memset(lg, 0, sizeof *lg);
    luaL_setmetatable(L, MT_LOGITS);
    dsv3_lua_push_model(L, lm); /* for token labels; keeps the model open while l lives */
    lua_setiuservalue(L, -2, 1);
    lg->ids = malloc((n ? n : 1) * sizeof *lg->ids); /* kept for rendering; freed by __gc */
    if (!lg->ids) return luaL_error(L, "logits: out of memory");
    memcpy(lg->ids, ids, n * sizeof *ids);
    lg->T = (int64_t)n;
    lg->V = c->vocab_size;
    const int64_t T = lg->T, V = lg->V, H = c->hidden_size;
    lg->logits = malloc((size_t)(T * V) * sizeof(float));
    float *hidden = malloc((size_t)(T * H) * sizeof(float));
    if (want_mtp && T > 1) lg->mtp = malloc((size_t)((T - 1) * V) * sizeof(float));
    if (!lg->logits || !hidden || (want_mtp && T > 1 && !lg->mtp)) {
        free(hidden);
        return luaL_error(L, "logits: out of memory");
    }
    dsv3_err err = {{0}};
    dsv3_run *run = NULL;
    dsv3_run_opts o = {.max_seq = T, .max_chunk = T < 512 ? T : 512,
                       .attn = attn && !strcmp(attn, "naive") ? DSV3_ATTN_NAIVE : DSV3_ATTN_ABSORBED};
    dsv3_session *s = dsv3_session_of(L);
    dsv3_status st = dsv3_run_new(&run, lm->m, &o, &err);
    if (!st) {
        dsv3_run_set_cancel(run, s->io.interrupt);
        for (int64_t at = 0; at < T && !st; at += o.max_chunk) {
            int64_t m = T - at < o.max_chunk ? T - at : o.max_chunk;
            st = dsv3_forward(run, ids + at, m, lg->logits + at * V, 0, hidden + at * H, &err);
        }
        for (int64_t at = 0; lg->mtp && at < T - 1 && !st; at += o.max_chunk) {
            int64_t m = T - 1 - at < o.max_chunk ? T - 1 - at : o.max_chunk;
            st = dsv3_forward_mtp(run, ids + at + 1, hidden + at * H, m, lg->mtp + at * V, 0, &err);
        }
    }
    dsv3_run_free(run);
    free(hidden);
    if (st) return dsv3_lua_error(L, &err);
    return 1;
}

/* ---------------------------------------------------------------- generation ----------- */

typedef struct {
    lua_State *L;
    dsv3_session *s;
    lmodel *lm;
    int stream;          /* write text as it comes */
    dsv3_detok detok;
    const char *stop;
    size_t stop_len;
    char *tail;          /* last bytes of text for the stop search */
    size_t tail_len;
    int64_t n_ids;       /* ids streamed (models without a tokenizer) */
} gen_ctx;

static int gen_on_token(void *ud, int32_t id) {
    gen_ctx *g = ud;
    if (!g->lm->tok) { /* no tokenizer: stream the ids */
        char buf[24];
        int k = snprintf(buf, sizeof buf, "%s%d", g->n_ids++ ? " " : "", id);
        if (g->stream) dsv3_session_write(g->s, DSV3_STDOUT, buf, (size_t)k);
        return 0;
    }
    if (dsv3_tokenizer_is_special(g->lm->tok, id)) return 0;
    size_t n = 0;
    const char *b = dsv3_tokenizer_token_bytes(g->lm->tok, id, &n);
    if (!b || n > 256) return 0;
    char buf[DSV3_DETOK_OUT_MAX(256)];
    size_t k = dsv3_detok_push(&g->detok, b, n, buf);
    if (g->stream) dsv3_session_write(g->s, DSV3_STDOUT, buf, k);
    if (!g->stop) return 0;
    /* Keep the last stop_len + k bytes to look for the stop string across tokens. */
    size_t keep = g->stop_len + k;
    char *nt = realloc(g->tail, g->tail_len + k + 1);
    if (!nt) return 1;
    g->tail = nt;
    memcpy(g->tail + g->tail_len, buf, k);
    g->tail_len += k;
    g->tail[g->tail_len] = 0;
    int hit = memmem(g->tail, g->tail_len, g->stop, g->stop_len) != NULL;
    if (g->tail_len > keep) {
        memmove(g->tail, g->tail + g->tail_len - keep, keep);
        g->tail_len = keep;
    }
    return hit;
}

static int gen_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "stats");
    lua_getfield(L, -1, "tokens");
    lua_getfield(L, -2, "tokens_per_second");
    lua_getfield(L, -3, "drafted");
    lua_getfield(L, -4, "accepted");
    lua_getfield(L, 1, "interrupted");
    char buf[256];
    long long d = lua_tointeger(L, -3), a = lua_tointeger(L, -2);
    if (d > 0)
        snprintf(buf, sizeof buf, "[%lld tokens, %.1f tok/s, MTP accepted %lld/%lld = %.1f%%%s]",
                 (long long)lua_tointeger(L, -5), lua_tonumber(L, -4), a, d, 100.0 * (double)a / (double)d,
                 lua_toboolean(L, -1) ? ", interrupted" : "");
    else
        snprintf(buf, sizeof buf, "[%lld tokens, %.1f tok/s%s]", (long long)lua_tointeger(L, -5),
                 lua_tonumber(L, -4), lua_toboolean(L, -1) ? ", interrupted" : "");
    lua_pushstring(L, buf);
    return 1;
}

/* The options of gen and chat; fim adds its own (see l_fim). */
static const char *const gen_options[] = {"max_tokens|n", "temperature|temp", "greedy", "top_k",
                                          "top_p", "seed", "mtp", "stop", "chat", "system",
                                          "think", "stream", NULL};

/* Renders msgs with the model's chat template (think: the "think" option at opt, -1 when
 * absent); writes the no-template warning to the session's stderr. Raises on errors. */
static void chat_render(lua_State *L, lmodel *lm, int opt, const dsv3_chat_msg *msgs, size_t k,
                        char **text, size_t *len, dsv3_err *err) {
    int think = -1;
    if (!lua_isnoneornil(L, opt)) {
        lua_getfield(L, opt, "think");
        if (!lua_isnil(L, -1)) think = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    dsv3_tokenizer *tok = dsv3_lua_tokenizer(L, lm);
    dsv3_status st = dsv3_tokenizer_chat_think(tok, think, text, len, msgs, k, 1, err);
    if (st) return;
    const char *w = dsv3_tokenizer_chat_warning(tok);
    if (w) {
        dsv3_session_write(dsv3_session_of(L), DSV3_STDERR, w, strlen(w));
        dsv3_session_write(dsv3_session_of(L), DSV3_STDERR, "\n", 1);
    }
}

/* gen core: ids at stack index `ids_idx` already resolved into (ids, n); options at opt;
 * n_def new tokens unless the options say n. */
static int run_generation(lua_State *L, lmodel *lm, int32_t *ids, size_t n, int opt,
                          lua_Number n_def) {
    dsv3_session *s = dsv3_session_of(L);
    const dsv3_config *c = dsv3_model_config(lm->m);
    /* Every number is range-checked before it is converted (NaN and 1e300 included). */
    const lua_Number n_num = dsv3_lua_opt_num(L, opt, "max_tokens|n", n_def);
    const lua_Number t_num = dsv3_lua_opt_num(L, opt, "temperature|temp", 0.7);
    const lua_Number k_num = dsv3_lua_opt_num(L, opt, "top_k", 0);
    const lua_Number p_num = dsv3_lua_opt_num(L, opt, "top_p", 1.0);
    lua_Number seed_num = 0; /* an explicit seed; else the session's, taken as it is */
    int has_seed = 0;
    if (lua_istable(L, opt)) {
        lua_getfield(L, opt, "seed");
        int has = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (has) seed_num = dsv3_lua_opt_num(L, opt, "seed", 0);
        has_seed = has;
    }
    if (!(n_num >= 1 && n_num <= 1e9))
        return luaL_error(L, "gen: option max_tokens (n) must be at least 1 (and at most 1e9)");
    if (!(t_num >= 0 && t_num <= 1e6))
        return luaL_error(L, "gen: option temperature (temp) must be in [0, 1e6]");
    if (!(k_num >= 0 && k_num <= 1e9)) return luaL_error(L, "gen: option top_k must be >= 0");
    if (!(p_num > 0 && p_num <= 1)) return luaL_error(L, "gen: option top_p must be in (0, 1]");
    if (has_seed && !(seed_num >= 0 && seed_num < 9.2e18))
        return luaL_error(L, "gen: option seed must be >= 0");
    const lua_Integer n_new = (lua_Integer)n_num, top_k = (lua_Integer)k_num;
    const float temp = (float)t_num, top_p = (float)p_num;
    const unsigned long long seed = has_seed ? (unsigned long long)seed_num : s->seed;
    int explicit_seed = 0;
    if (lua_istable(L, opt)) {
        lua_getfield(L, opt, "seed");
        explicit_seed = !lua_isnil(L, -1);
        lua_pop(L, 1);
    }
    int greedy = dsv3_lua_opt_bool(L, opt, "greedy", temp <= 0);
    int mtp = dsv3_lua_opt_bool(L, opt, "mtp", 0);
    const char *stop = dsv3_lua_opt_str(L, opt, "stop");
    int stream = dsv3_lua_opt_bool(L, opt, "stream", 1);
    if (n < 1) {
        return luaL_error(L, "gen: empty prompt");
    }
    if ((int64_t)n + n_new + 1 > c->max_position_embeddings) {
        return luaL_error(L, "gen: prompt of %d tokens + n = %d exceeds max_position_embeddings %d",
                          (int)n, (int)n_new, (int)c->max_position_embeddings);
    }
    /* Each unseeded sampled call advances the session seed, so the next one differs; an explicit
     * seed option reproduces a call and leaves the session seed alone. */
    if (!greedy && !explicit_seed) s->seed = (s->seed + 1) & 0x7FFFFFFFFFFFFFFFull; /* seed() reads it */
    int32_t *out = dsv3_lua_alloc(L, (size_t)n_new * sizeof *out);
    dsv3_err err = {{0}};
    dsv3_run *run = NULL;
    dsv3_run_opts ro = {.max_seq = (int64_t)n + n_new + 1, .max_chunk = n < 256 ? (int64_t)n + 1 : 256};
    gen_ctx g = {.L = L, .s = s, .lm = lm, .stream = stream, .stop = stop,
                 .stop_len = stop ? strlen(stop) : 0};
    dsv3_gen_opts go = {.max_new_tokens = n_new,
                        .sample = {.greedy = greedy, .temperature = temp, .top_k = (int)top_k, .top_p = top_p},
                        .seed = (uint64_t)seed,
                        .use_mtp = mtp,
                        .eos_id = (int32_t)c->eos_token_id,
                        .on_token = gen_on_token,
                        .ud = &g,
                        .cancel = s->io.interrupt};
    if (lm->tok && dsv3_tokenizer_eos_id(lm->tok) >= 0) go.eos_id = dsv3_tokenizer_eos_id(lm->tok);
    dsv3_gen_stats st;
    int64_t n_out = 0;
    dsv3_status rc = out ? dsv3_run_new(&run, lm->m, &ro, &err) : dsv3_errf(&err, DSV3_ENOMEM, "gen: out of memory");
    if (!rc) rc = dsv3_generate(run, ids, (int64_t)n, &go, out, &n_out, &st, &err);
    dsv3_run_free(run);
    free(g.tail);
    char tail[4];
    size_t tl = dsv3_detok_flush(&g.detok, tail);
    if (stream) {
        dsv3_session_write(s, DSV3_STDOUT, tail, tl);
        dsv3_session_write(s, DSV3_STDOUT, "\n", 1);
    }
    if (rc && rc != DSV3_EINTR) {
        return dsv3_lua_error(L, &err);
    }
    /* The result: {text=, ids=, stats=, interrupted=}. */
    lua_newtable(L);
    if (lm->tok) {
        char *text = NULL;
        size_t len = 0;
        if (dsv3_tokenizer_decode(lm->tok, &text, &len, out, (size_t)n_out, 1, &err) == DSV3_OK) {
            lua_pushlstring(L, text, len);
            lua_setfield(L, -2, "text");
        }
        free(text);
    }
    push_tokens(L, lm, out, (size_t)n_out);
    lua_setfield(L, -2, "ids");
    if (stream) { /* the text is on the output already: its HTML shows only the numbers */
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "streamed");
    }
    lua_newtable(L);
    dsv3_lua_setint(L, "prompt_tokens", st.prompt_tokens);
    dsv3_lua_setint(L, "tokens", st.tokens);
    dsv3_lua_setint(L, "forward_passes", st.forward_passes);
    dsv3_lua_setint(L, "mtp_passes", st.mtp_passes);
    dsv3_lua_setint(L, "drafted", st.drafted);
    dsv3_lua_setint(L, "accepted", st.accepted);
    lua_pushnumber(L, st.drafted ? (double)st.accepted / (double)st.drafted : 0.0);
    lua_setfield(L, -2, "acceptance_rate");
    lua_pushnumber(L, st.decode_seconds > 0 ? (double)st.tokens / st.decode_seconds : 0.0);
    lua_setfield(L, -2, "tokens_per_second");
    lua_pushnumber(L, st.prefill_seconds);
    lua_setfield(L, -2, "prefill_seconds");
    lua_pushnumber(L, st.decode_seconds);
    lua_setfield(L, -2, "decode_seconds");
    dsv3_lua_setint(L, "device_uploads", st.device.uploads);
    dsv3_lua_setint(L, "device_downloads", st.device.downloads);
    dsv3_lua_setint(L, "device_upload_bytes", st.device.upload_bytes);
    dsv3_lua_setint(L, "device_download_bytes", st.device.download_bytes);
    lua_pushnumber(L, st.device_bytes_per_token);
    lua_setfield(L, -2, "device_bytes_per_token");
    lua_setfield(L, -2, "stats");
    lua_pushboolean(L, rc == DSV3_EINTR);
    lua_setfield(L, -2, "interrupted");
    luaL_setmetatable(L, MT_GEN);
    return 1;
}

static int l_gen(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    dsv3_lua_check_opts(L, 2, "gen", gen_options);
    int32_t *ids;
    size_t n;
    if (dsv3_lua_opt_bool(L, 2, "chat", 0)) {
        const char *prompt = luaL_checkstring(L, 1);
        const char *system = dsv3_lua_opt_str(L, 2, "system");
        dsv3_chat_msg msgs[2];
        size_t k = 0;
        if (system) msgs[k++] = (dsv3_chat_msg){"system", system};
        msgs[k++] = (dsv3_chat_msg){"user", prompt};
        char *text = NULL;
        size_t len = 0;
        dsv3_err err = {{0}};
        chat_render(L, lm, 2, msgs, k, &text, &len, &err);
        if (!text) return dsv3_lua_error(L, &err);
        ids = NULL;
        dsv3_status st = dsv3_tokenizer_encode(lm->tok, &ids, &n, text, len, 0, &err);
        free(text);
        if (st) return dsv3_lua_error(L, &err);
        ids = dsv3_lua_own_ids(L, ids, n);
    } else {
        ids = dsv3_lua_ids_arg(L, 1, lm, &n, 1);
    }
    return run_generation(L, lm, ids, n, 2, 64);
}

/* fim{prefix=, suffix= [, max_tokens=64, bos, gen's options]}: fills the middle between prefix
 * and suffix (model/text/fim.h's PSM prompt), generating until EOS or max_tokens. */
static int l_fim(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lmodel *lm = dsv3_lua_model_arg(L, 2);
    static const char *const fim_options[] = {"prefix", "suffix", "bos", "max_tokens|n",
                                              "temperature|temp", "greedy", "top_k", "top_p",
                                              "seed", "mtp", "stop", "stream", NULL};
    dsv3_lua_check_opts(L, 1, "fim", fim_options);
    const char *prefix = dsv3_lua_opt_str(L, 1, "prefix");
    const char *suffix = dsv3_lua_opt_str(L, 1, "suffix");
    if (!prefix && !suffix)
        return luaL_error(L, "fim: give prefix = \"...\" and/or suffix = \"...\"");
    dsv3_tokenizer *tok = dsv3_lua_tokenizer(L, lm);
    const int bos = dsv3_lua_opt_bool(L, 1, "bos", dsv3_tokenizer_adds_bos(tok));
    if (!prefix) prefix = "";
    if (!suffix) suffix = "";
    int32_t *ids = NULL;
    size_t n = 0;
    dsv3_err err = {{0}};
    if (dsv3_fim_prompt(&ids, &n, tok, prefix, strlen(prefix), suffix, strlen(suffix), bos, &err))
        return dsv3_lua_error(L, &err);
    ids = dsv3_lua_own_ids(L, ids, n);
    run_generation(L, lm, ids, n, 1, 64);
    push_tokens(L, lm, ids, n);
    lua_setfield(L, -2, "prompt");
    return 1;
}

/* chat(message [, opts]): one turn of a conversation kept in the session. */
static int l_chat(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    const char *msg = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    dsv3_lua_check_opts(L, 2, "chat", gen_options);
    dsv3_lua_tokenizer(L, lm);
    lua_getfield(L, LUA_REGISTRYINDEX, "dsv3.chat");
    const int hist = lua_gettop(L);
    const char *system = dsv3_lua_opt_str(L, 2, "system");
    size_t nh = (size_t)lua_rawlen(L, hist);
    dsv3_chat_msg *msgs = calloc(nh + 2, sizeof *msgs);
    if (!msgs) return luaL_error(L, "chat: out of memory");
    size_t k = 0;
    if (system) msgs[k++] = (dsv3_chat_msg){"system", system};
    for (size_t i = 1; i <= nh; i++) {
        lua_rawgeti(L, hist, (lua_Integer)i);
        lua_getfield(L, -1, "role");
        lua_getfield(L, -2, "content");
        msgs[k++] = (dsv3_chat_msg){lua_tostring(L, -2), lua_tostring(L, -1)};
        lua_pop(L, 3); /* strings stay referenced by the history table */
    }
    msgs[k++] = (dsv3_chat_msg){"user", msg};
    char *text = NULL;
    size_t len = 0;
    dsv3_err err = {{0}};
    chat_render(L, lm, 2, msgs, k, &text, &len, &err);
    free(msgs);
    if (!text) return dsv3_lua_error(L, &err);
    dsv3_status st;
    int32_t *ids = NULL;
    size_t n = 0;
    st = dsv3_tokenizer_encode(lm->tok, &ids, &n, text, len, 0, &err);
    free(text);
    if (st) return dsv3_lua_error(L, &err);
    ids = dsv3_lua_own_ids(L, ids, n);
    run_generation(L, lm, ids, n, 2, 64);
    /* Append the user turn and the reply (unless interrupted). */
    lua_getfield(L, -1, "interrupted");
    int intr = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!intr) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, "user");
        lua_setfield(L, -2, "role");
        lua_pushstring(L, msg);
        lua_setfield(L, -2, "content");
        lua_rawseti(L, hist, (lua_Integer)nh + 1);
        lua_createtable(L, 0, 2);
        lua_pushstring(L, "assistant");
        lua_setfield(L, -2, "role");
        lua_getfield(L, -2, "text");
        lua_setfield(L, -2, "content");
        lua_rawseti(L, hist, (lua_Integer)nh + 2);
    }
    return 1;
}

static int l_chat_reset(lua_State *L) {
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "dsv3.chat");
    return 0;
}

/* A copy: editing it cannot corrupt the conversation chat() keeps. */
static int l_chat_history(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, "dsv3.chat");
    const lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        lua_createtable(L, 0, 2);
        lua_getfield(L, -2, "role");
        lua_setfield(L, -2, "role");
        lua_getfield(L, -2, "content");
        lua_setfield(L, -2, "content");
        lua_rawseti(L, -3, i);
        lua_pop(L, 1);
    }
    return 1;
}

static int l_seed(lua_State *L) {
    dsv3_session *s = dsv3_session_of(L);
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer v = luaL_checkinteger(L, 1);
        luaL_argcheck(L, v >= 0, 1, "seed must be non-negative");
        s->seed = (unsigned long long)v;
    }
    lua_pushinteger(L, (lua_Integer)s->seed);
    return 1;
}

/* show_ids([on]) -> on: whether token labels carry their ids. */
static int l_show_ids(lua_State *L) {
    dsv3_session *s = dsv3_session_of(L);
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TBOOLEAN);
        s->show_ids = lua_toboolean(L, 1);
    }
    lua_pushboolean(L, s->show_ids);
    return 1;
}

/* token_text(id | ids [, model]) -> label | {labels}: readable token labels. */
static int l_token_text(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 2);
    if (lua_istable(L, 1)) {
        size_t n;
        int32_t *ids = dsv3_lua_ids_arg(L, 1, lm, &n, 0);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            dsv3_lua_push_label(L, lm, ids[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return 1;
    }
    lua_Integer id = luaL_checkinteger(L, 1);
    luaL_argcheck(L, id >= 0 && id < dsv3_model_config(lm->m)->vocab_size, 1, "token id out of range");
    dsv3_lua_push_label(L, lm, (int32_t)id);
    return 1;
}

/* backend([name]) -> name: the kernels of the current model ("fast", "ref", "devsim" or, in
 * builds with CUDA, "cuda"). */
static int l_backend(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 2);
    if (!lua_isnoneornil(L, 1)) {
        const char *name = luaL_checkstring(L, 1);
        const dsv3_backend *be = dsv3_backend_by_name(name);
        if (!be) return luaL_error(L, "backend: '%s' is not one of %s", name, dsv3_backend_names());
        dsv3_err err = {{0}};
        if (dsv3_model_set_backend(lm->m, be, &err)) return dsv3_lua_error(L, &err);
    }
    const char *cur = dsv3_model_backend(lm->m)->name;
    lua_pushstring(L, !strcmp(cur, "cpu") ? "ref" : cur);
    return 1;
}

/* ---------------------------------------------------------------- registration --------- */

static void open_api(lua_State *L) {
    static const luaL_Reg model_meta[] = {{"__gc", model_gc}, {"__close", l_close},
                                          {"__tostring", model_tostring}, {NULL, NULL}};
    static const luaL_Reg model_methods[] = {{"info", l_info}, {NULL, NULL}};
    static const luaL_Reg logits_meta[] = {{"__gc", logits_gc}, {"__tostring", logits_tostring},
                                           {"__len", logits_len}, {NULL, NULL}};
    static const luaL_Reg logits_methods[] = {{"top", logits_top}, {"mtp_top", logits_mtp_top},
                                              {"at", logits_at}, {"row", logits_row},
                                              {"shape", logits_shape}, {NULL, NULL}};
    static const luaL_Reg info_meta[] = {{"__tostring", info_tostring}, {NULL, NULL}};
    static const luaL_Reg tokens_meta[] = {{"__tostring", tokens_tostring}, {NULL, NULL}};
    static const luaL_Reg gen_meta[] = {{"__tostring", gen_tostring}, {NULL, NULL}};
    dsv3_lua_newmt(L, DSV3_LUA_MT_MODEL, model_meta, model_methods);
    dsv3_lua_newmt(L, MT_LOGITS, logits_meta, logits_methods);
    dsv3_lua_newmt(L, MT_INFO, info_meta, NULL);
    dsv3_lua_newmt(L, MT_TOKENS, tokens_meta, NULL);
    dsv3_lua_newmt(L, MT_GEN, gen_meta, NULL);
    lua_newtable(L); /* weak values: the list does not keep a model alive */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, DSV3_LUA_REG_MODELS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "dsv3.chat");
    /* load() is the model loader here; Lua's own chunk loader stays reachable as lua_load. */
    lua_getglobal(L, "load");
    lua_setglobal(L, "lua_load");
}

static const dsv3_lua_fn fns[] = {
    {"load", l_load, "load([dir]) -> model",
     "Opens a Hugging Face-format model directory (config.json, safetensors, optional\n"
     "tokenizer.json) and makes it the current model. Several models may be loaded.\n"
     "Without dir: $DSV3_MODEL when set, else the bundled demo model examples/demo\n"
     "(found from any working directory)."},
    {"models", l_models, "models() -> {model, ...}",
     "The open models of this session, in load order. The session keeps no model alive: one\n"
     "that nothing refers to (a variable, the current model, a run) is closed by the GC."},
    {"close", l_close, "close(model)",
     "Frees the model now (weights, tokenizer); using it afterwards raises \"model is closed\".\n"
     "Refused while the session's train{} or grpo{} run computes with it."},
    {"use", l_use, "use(model) -> model", "Makes a loaded model the current one."},
    {"info", l_info, "info([model]) -> info",
     "Config summary, parameter counts per component (total and active per token), file size,\n"
     "and MLA cache bytes per token next to what plain multi-head attention would need."},
    {"tokenize", l_tokenize, "tokenize(text [, {bos=false}]) -> tokens",
     "Token ids of text (a table of ids with .pieces), exactly as the HF tokenizer gives them."},
    {"detokenize", l_detokenize, "detokenize(ids [, {skip_special=false}]) -> string",
     "Text of a table of token ids."},
    {"token_text", l_token_text, "token_text(id | ids) -> label | {labels}",
     "Readable labels of tokens as tables and figures show them: the decoded text with a\n"
     "space as U+2423, a newline as U+21B5, a tab as U+21E5, other control and partial UTF-8\n"
     "bytes as \\xNN, BOS/EOS as <bos>/<eos> (and \"/id\" after each with show_ids(true))."},
    {"show_ids", l_show_ids, "show_ids([on]) -> on",
     "Whether token labels in tables, figures and traces carry their ids (\"␣world/704\");\n"
     "off by default. In notebooks the id is also the tooltip of a label."},
    {"logits", l_logits, "logits(text | ids [, {mtp=false, attn=\"absorbed\"}]) -> logits",
     "Exact FP32 forward from position 0. Text is tokenized with BOS. The result holds [T, vocab]\n"
     "logits: l:top(pos, k) (pos 1-based, -1 = last), l:at(pos, id), l:row(pos), l:shape(),\n"
     "#l; with mtp=true also l:mtp_top(pos, k) (MTP prediction of the token two ahead)."},
    {"gen", l_gen,
     "gen(prompt | ids [, opts]) -> result",
     "Generates text, streaming tokens as they come. opts: max_tokens (64; alias n),\n"
     "temperature (0.7; alias temp), greedy,\n"
     "top_k, top_p, seed (session seed, see seed()), mtp (speculative decoding with the MTP\n"
     "draft), stop (string), chat (wrap the prompt in the chat template), system, stream (true).\n"
     "The result has .text, .ids, .stats (tokens, drafted, accepted, acceptance_rate,\n"
     "tokens_per_second, ...) and .interrupted (Ctrl-C stops between tokens)."},
    {"fim", l_fim, "fim{prefix=, suffix= [, max_tokens=64, greedy, temperature, ...]} -> result",
     "Fill-in-Middle: generates the text between prefix and suffix from the PSM prompt\n"
     "[BOS] <｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜> until EOS or max_tokens.\n"
     "Options as gen (temperature, greedy, top_k, top_p, seed, stop, stream, mtp), plus bos (default:\n"
     "as the tokenizer config adds it). result.text is the middle, result.prompt the prompt ids;\n"
     "an error when the tokenizer has no FIM tokens."},
    {"chat", l_chat, "chat(message [, opts]) -> result",
     "One turn of a conversation kept in the session, rendered with the checkpoint's chat\n"
     "template (DeepSeek-V3, R1 or V3.1; an unknown one is refused); opts as gen, plus system and\n"
     "think (true/false: thinking on/off where the template has the switch, V3.1).\n"
     "chat_reset() starts over."},
    {"chat_reset", l_chat_reset, "chat_reset()", "Forgets the conversation of chat()."},
    {"chat_history", l_chat_history, "chat_history() -> {{role=, content=}, ...}",
     "The conversation so far."},
    {"seed", l_seed, "seed([n]) -> n",
     "Sets (or reads) the session's default seed; each unseeded sampled gen() advances it."},
    {"backend", l_backend, "backend([\"fast\" | \"ref\"]) -> name",
     "The kernels of the current model: \"fast\" (AVX2, weights decoded in registers; the\n"
     "default) or \"ref\" (the plain FP32 reference the exactness tests use)."},
    {NULL, NULL, NULL, NULL},
};

const dsv3_lua_module dsv3_lua_api_module = {"model", open_api, fns};
