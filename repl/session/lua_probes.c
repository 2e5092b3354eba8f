/* lua_probes.c — the probe API of a session: routing records, router bias, expert load,
 * interventions, MTP acceptance, activations, logit lens, attention patterns.
 *
 * The probes are C modules in probes/ (routing, effect, capture, lens, attention, mtp_trace) and
 * their layouts are in probes/render/; these bindings read the Lua arguments, call them and push
 * the result as a value with a text rendering (__tostring) and, where a picture helps, an SVG
 * rendering (__svg) that notebooks show. Nothing here changes the model's numbers except the
 * calls that say so (bias_set/bias_add, effect's interventions).
 */
#define _GNU_SOURCE
#include "repl/session/lua_probes.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/run/forward.h"
#include "model/run/generate.h"
#include "model/run/model.h"
#include "model/text/tokenizer.h"
#include "probes/attention.h"
#include "probes/capture.h"
#include "probes/effect.h"
#include "probes/lens.h"
#include "probes/mtp_trace.h"
#include "probes/render/render.h"
#include "probes/render/routing.h"
#include "probes/routing.h"
#include "repl/session/lua_tensor.h"
#include "repl/session/luax.h"

#define MT_ROUTE "dsv3.route"

/* ---------------------------------------------------------------- helpers -------------- */

static const char *piece_of(const void *ud, int32_t id) {
    return ud ? dsv3_tokenizer_piece(ud, id) : NULL;
}

/* The session's interrupt flag, which every probe's forward watches. */
static const volatile int *cancel_of(lua_State *L) {
    return dsv3_session_of(L)->io.interrupt;
}

/* Pushes a malloc'd string and frees it; NULL (out of memory) raises. */
static int push_owned_string(lua_State *L, char *text) {
    if (!text) return luaL_error(L, "out of memory");
    lua_pushstring(L, text);
    free(text);
    return 1;
}

static void push_int_array(lua_State *L, const int32_t *v, int64_t n) {
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static void push_float_array(lua_State *L, const float *v, int64_t n) {
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* ---------------------------------------------------------------- routing record ------- */

typedef struct {
    dsv3_routerec rec;
    int64_t T;               /* tokens routed */
    int64_t n_layers;        /* main-model layers (MTP records have layer = n_layers) */
    int64_t first_moe;       /* first MoE layer */
    char **pieces;           /* [T] token strings, or NULL */
} lroute;

static int route_gc(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    dsv3_routerec_fini(&r->rec);
    if (r->pieces)
        for (int64_t i = 0; i < r->T; i++) free(r->pieces[i]);
    free(r->pieces);
    r->pieces = NULL;
    r->T = 0;
    return 0;
}

/* Pushes {row[experts[k]]...} over K chosen experts (0 for a missing expert, -1). */
static void push_picked(lua_State *L, const float *row, const int32_t *experts, int64_t K) {
    lua_createtable(L, (int)K, 0);
    for (int64_t k = 0; k < K; k++) {
        lua_pushnumber(L, experts[k] >= 0 ? row[experts[k]] : 0.0);
        lua_rawseti(L, -2, k + 1);
    }
}

/* Pushes record i as a table. */
static void push_record(lua_State *L, const dsv3_routerec *rec, int64_t i) {
    const int64_t K = rec->K, E = rec->E;
    lua_createtable(L, 0, 9);
    dsv3_lua_setint(L, "layer", rec->layer[i]);
    dsv3_lua_setint(L, "pos", rec->pos[i] + 1);
    dsv3_lua_setint(L, "token", rec->token[i]);
    push_int_array(L, rec->experts + i * K, K);
    lua_setfield(L, -2, "experts");
    push_float_array(L, rec->weights + i * K, K);
    lua_setfield(L, -2, "weights");
    push_picked(L, rec->scores + i * E, rec->experts + i * K, K);
    lua_setfield(L, -2, "scores");
    push_picked(L, rec->biased + i * E, rec->experts + i * K, K);
    lua_setfield(L, -2, "biased");
    lua_newtable(L);
    for (int64_t g = 0, k = 1; g < rec->G; g++)
        if (rec->groups[i * rec->G + g]) {
            lua_pushinteger(L, g);
            lua_rawseti(L, -2, k++);
        }
    lua_setfield(L, -2, "groups");
    push_int_array(L, rec->nobias + i * K, K);
    lua_setfield(L, -2, "experts_nobias");
    lua_pushboolean(L, dsv3_routerec_bias_changed(rec, i));
    lua_setfield(L, -2, "bias_changed");
}

/* r:token(pos) -> {record per MoE layer}, pos 1-based (negative from the end). */
static int route_token(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    lua_Integer p = luaL_checkinteger(L, 2);
    if (p < 0) p = r->T + 1 + p;
    luaL_argcheck(L, p >= 1 && p <= r->T, 2, "position out of range");
    lua_newtable(L);
    int k = 1;
    for (int64_t i = 0; i < r->rec.n; i++)
        if (r->rec.pos[i] == p - 1) {
            push_record(L, &r->rec, i);
            lua_rawseti(L, -2, k++);
        }
    return 1;
}

/* r:layer(L) -> {record per token}. */
static int route_layer(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    lua_Integer li = luaL_checkinteger(L, 2);
    lua_newtable(L);
    int k = 1;
    for (int64_t i = 0; i < r->rec.n; i++)
        if (r->rec.layer[i] == li) {
            push_record(L, &r->rec, i);
            lua_rawseti(L, -2, k++);
        }
    if (k == 1) return luaL_error(L, "layer %d has no routing in this record (MoE layers: %d..%d)",
                                  (int)li, (int)r->first_moe, (int)r->n_layers - 1);
    return 1;
}

/* Pushes {layer=, tokens=, counts={E}, maxvio=, push={E: sign(mean - load)}} for one layer. */
static void push_load(lua_State *L, const int64_t *counts, int64_t E, int64_t layer, int64_t tokens) {
    lua_createtable(L, 0, 5);
    dsv3_lua_setint(L, "layer", layer);
    dsv3_lua_setint(L, "tokens", tokens);
    int64_t total = 0;
    lua_createtable(L, (int)E, 0);
    for (int64_t e = 0; e < E; e++) {
        total += counts[e];
        lua_pushinteger(L, counts[e]);
        lua_rawseti(L, -2, e + 1);
    }
    lua_setfield(L, -2, "counts");
    lua_pushnumber(L, dsv3_load_maxvio(counts, E));
    lua_setfield(L, -2, "maxvio");
    /* docs/ARCHITECTURE.md, "Bias update and balance loss": b_i += gamma * sign(mean load - load_i) */
    const double mean = (double)total / (double)E;
    lua_createtable(L, (int)E, 0);
    for (int64_t e = 0; e < E; e++) {
        double d = mean - (double)counts[e];
        lua_pushinteger(L, d > 0 ? 1 : d < 0 ? -1 : 0);
        lua_rawseti(L, -2, e + 1);
    }
    lua_setfield(L, -2, "push");
}

/* r:load([L]) -> load table for layer L, or a list for every MoE layer. */
static int route_load(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    const int64_t E = r->rec.E;
    int64_t *counts = malloc((size_t)E * sizeof *counts);
    if (!counts) return luaL_error(L, "out of memory");
    if (!lua_isnoneornil(L, 2)) {
        lua_Integer li = luaL_checkinteger(L, 2);
        int64_t tok = dsv3_routerec_load(&r->rec, li, counts);
        push_load(L, counts, E, li, tok);
    } else {
        lua_newtable(L);
        int k = 1;
        for (int64_t li = r->first_moe; li <= r->n_layers; li++) {
            int64_t tok = dsv3_routerec_load(&r->rec, li, counts);
            if (!tok) continue;
            push_load(L, counts, E, li, tok);
            lua_rawseti(L, -2, k++);
        }
    }
    free(counts);
    luaL_setmetatable(L, "dsv3.load");
    return 1;
}

/* r:cooc(L) -> E x E table: how often experts i and j were chosen together. */
static int route_cooc(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    lua_Integer li = luaL_checkinteger(L, 2);
    const int64_t E = r->rec.E;
    int64_t *m = malloc((size_t)(E * E) * sizeof *m);
    if (!m) return luaL_error(L, "out of memory");
    dsv3_routerec_cooc(&r->rec, li, m);
    lua_createtable(L, (int)E, 0);
    for (int64_t a = 0; a < E; a++) {
        lua_createtable(L, (int)E, 0);
        for (int64_t b = 0; b < E; b++) {
            lua_pushinteger(L, m[a * E + b]);
            lua_rawseti(L, -2, b + 1);
        }
        lua_rawseti(L, -2, a + 1);
    }
    free(m);
    return 1;
}

/* r:changed() -> {[layer] = fraction of tokens whose experts the bias changed}. */
static int route_changed(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    lua_newtable(L);
    for (int64_t li = r->first_moe; li <= r->n_layers; li++) {
        int64_t n = 0, ch = 0;
        for (int64_t i = 0; i < r->rec.n; i++)
            if (r->rec.layer[i] == li) {
                n++;
                ch += dsv3_routerec_bias_changed(&r->rec, i);
            }
        if (!n) continue;
        lua_pushnumber(L, (double)ch / (double)n);
        lua_rawseti(L, -2, li);
    }
    return 1;
}

static int route_json(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    lmodel *lm = dsv3_lua_model_arg(L, 2);
    char *s = dsv3_routerec_json(&r->rec, INT64_MAX, lm && lm->tok ? piece_of : NULL, lm ? lm->tok : NULL);
    if (!s) return luaL_error(L, "out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

/* r:csv() -> one row per (token, layer, rank): layer,pos,token,rank,expert,weight,score,
 * biased,bias_changed (pos 1-based like the Lua API). */
static int route_csv(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    return push_owned_string(L, dsv3_render_route_csv(&r->rec));
}

/* r:save(path): .json or .csv by extension, written to a temp file and renamed (atomic). */
static int route_save(lua_State *L) {
    luaL_checkudata(L, 1, MT_ROUTE);
    const char *path = luaL_checkstring(L, 2);
    const size_t n = strlen(path);
    const int csv = n > 4 && !strcmp(path + n - 4, ".csv");
    if (!csv && !(n > 5 && !strcmp(path + n - 5, ".json")))
        return luaL_error(L, "save: the path must end in .json or .csv");
    lua_pushcfunction(L, csv ? route_csv : route_json);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(text, 1, len, f) == len;
    ok = f && fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return luaL_error(L, "save: cannot write %s", path);
    }
    lua_pushstring(L, path);
    return 1;
}

/* The token labels of r, for the renderers. */
static dsv3_route_labels labels_of(const lroute *r) {
    return (dsv3_route_labels){.T = r->T, .pieces = (const char *const *)r->pieces,
                               .n_layers = r->n_layers, .first_moe = r->first_moe};
}

/* r:heatmap(L [, "svg"|"text"]) -> string (text) | figure (svg). */
static int route_heatmap_m(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    lua_Integer li = luaL_optinteger(L, 2, r->first_moe);
    const char *fmt = luaL_optstring(L, 3, "text");
    const dsv3_route_labels lab = labels_of(r);
    char *s = dsv3_render_route_heatmap(&r->rec, &lab, li, !strcmp(fmt, "svg"));
    if (!s) return luaL_error(L, "layer %d has no routing in this record", (int)li);
    if (strcmp(fmt, "svg")) return push_owned_string(L, s);
    char title[64];
    snprintf(title, sizeof title, "routing heatmap, layer %lld", (long long)li);
    dsv3_lua_push_figure(L, s, title);
    free(s);
    return 1;
}

static int route_svg(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    const dsv3_route_labels lab = labels_of(r);
    char *s = dsv3_render_route_svg(&r->rec, &lab);
    lua_pushstring(L, s ? s : "");
    free(s);
    return 1;
}

/* Text: one row per token, one column per MoE layer, the chosen experts ('*': bias changed
 * the choice). */
static int route_tostring(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    const dsv3_route_labels lab = labels_of(r);
    return push_owned_string(L, dsv3_render_route_text(&r->rec, &lab));
}

static int route_len(lua_State *L) {
    lroute *r = luaL_checkudata(L, 1, MT_ROUTE);
    lua_pushinteger(L, r->T);
    return 1;
}

/* Fills a routing record for ids over the main model (and the MTP block when mtp is set). */
static lroute *do_route(lua_State *L, lmodel *lm, int32_t *ids, int64_t n) {
    const dsv3_config *c = dsv3_model_config(lm->m);
    lroute *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, MT_ROUTE);
    dsv3_err err = {{0}};
    if (dsv3_routerec_init(&r->rec, c->n_routed_experts, c->num_experts_per_tok, c->n_group, &err))
        dsv3_lua_error(L, &err);
    r->T = n;
    r->n_layers = c->num_hidden_layers;
    r->first_moe = c->first_k_dense_replace;
    if ((r->pieces = calloc((size_t)n, sizeof *r->pieces)))
        for (int64_t i = 0; i < n; i++) r->pieces[i] = dsv3_lua_label(L, lm, ids[i]);
    if (dsv3_routerec_collect(&r->rec, lm->m, ids, n, cancel_of(L), &err)) dsv3_lua_error(L, &err);
    return r;
}

static int l_route(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    size_t n;
    int32_t *ids = dsv3_lua_ids_arg(L, 1, lm, &n, 1);
    do_route(L, lm, ids, (int64_t)n);
    return 1;
}

/* ---------------------------------------------------------------- bias ----------------- */

static const float *bias_arg(lua_State *L, lmodel *lm, int idx) {
    lua_Integer li = luaL_checkinteger(L, idx);
    const float *b = dsv3_model_bias(lm->m, li);
    if (!b) {
        const dsv3_config *c = dsv3_model_config(lm->m);
        luaL_error(L, "layer %d has no router bias (MoE layers are %d..%d%s)", (int)li,
                   (int)c->first_k_dense_replace, (int)c->num_hidden_layers - 1,
                   dsv3_model_has_mtp(lm->m) ? ", and the MTP block" : "");
    }
    return b;
}

/* bias(layer [, expert]) -> vector table, or one value (experts 0-based like the checkpoint). */
static int l_bias(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    const float *b = bias_arg(L, lm, 1);
    const int64_t E = dsv3_model_config(lm->m)->n_routed_experts;
    if (!lua_isnoneornil(L, 2)) {
        lua_Integer e = luaL_checkinteger(L, 2);
        luaL_argcheck(L, e >= 0 && e < E, 2, "expert out of range");
        lua_pushnumber(L, b[e]);
        return 1;
    }
    lua_createtable(L, (int)E, 0);
    for (int64_t e = 0; e < E; e++) {
        lua_pushnumber(L, b[e]);
        lua_rawseti(L, -2, e + 1); /* Lua index e+1 holds expert e */
    }
    return 1;
}

/* Applies value (number or table of E numbers) to one expert or the whole vector. */
static int bias_edit(lua_State *L, int add) {
    lmodel *lm = dsv3_lua_model_arg(L, 4);
    const float *b = bias_arg(L, lm, 1);
    const int64_t li = luaL_checkinteger(L, 1);
    const int64_t E = dsv3_model_config(lm->m)->n_routed_experts;
    /* The edited vector, built on the host and set as a whole (the backend's copy follows). */
    float *nb = dsv3_lua_alloc(L, (size_t)E * sizeof *nb); /* GC-owned */
    memcpy(nb, b, (size_t)E * sizeof *nb);
    dsv3_err err = {{0}};
    if (lua_istable(L, 2)) { /* bias_set(layer, {v1, ..., vE}) */
        luaL_argcheck(L, (int64_t)lua_rawlen(L, 2) == E, 2, "table must hold one value per expert");
        float *tmp = malloc((size_t)E * sizeof *tmp);
        if (!tmp) return luaL_error(L, "out of memory");
        for (int64_t e = 0; e < E; e++) {
            lua_rawgeti(L, 2, e + 1);
            int ok;
            lua_Number v = lua_tonumberx(L, -1, &ok);
            lua_pop(L, 1);
            if (!ok || !isfinite(v)) {
                free(tmp);
                return luaL_error(L, "bias value for expert %d is not a finite number", (int)e);
            }
            tmp[e] = (float)v;
        }
        for (int64_t e = 0; e < E; e++) nb[e] = add ? b[e] + tmp[e] : tmp[e];
        free(tmp);
        if (dsv3_model_set_bias(lm->m, li, nb, &err)) return dsv3_lua_error(L, &err);
        return 0;
    }
    lua_Integer e = luaL_checkinteger(L, 2);
    luaL_argcheck(L, e >= 0 && e < E, 2, "expert out of range");
    lua_Number v = luaL_checknumber(L, 3);
    luaL_argcheck(L, isfinite(v), 3, "value must be finite");
    nb[e] = add ? b[e] + (float)v : (float)v;
    if (dsv3_model_set_bias(lm->m, li, nb, &err)) return dsv3_lua_error(L, &err);
    return 0;
}

static int l_bias_set(lua_State *L) {
    return bias_edit(L, 0);
}
static int l_bias_add(lua_State *L) {
    return bias_edit(L, 1);
}
static int l_bias_reset(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 2);
    lua_Integer li = luaL_optinteger(L, 1, -1);
    if (li >= 0) bias_arg(L, lm, 1);
    dsv3_model_bias_reset(lm->m, li);
    return 0;
}

/* ---------------------------------------------------------------- load over a batch ---- */

static int load_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    dsv3_strbuf b = {0};
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    int single = n == 0;
    for (lua_Integer i = 1; i <= (single ? 1 : n); i++) {
        if (single) lua_pushvalue(L, 1);
        else lua_rawgeti(L, 1, i);
        lua_getfield(L, -1, "layer");
        lua_getfield(L, -2, "tokens");
        lua_getfield(L, -3, "maxvio");
        char line[160];
        snprintf(line, sizeof line, "layer %lld: %lld tokens, maxvio %.3f, load:", (long long)lua_tointeger(L, -3),
                 (long long)lua_tointeger(L, -2), lua_tonumber(L, -1));
        dsv3_strbuf_puts(&b, line);
        lua_pop(L, 3);
        lua_getfield(L, -1, "counts");
        lua_Integer E = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer e = 1; e <= E && e <= 64; e++) {
            lua_rawgeti(L, -1, e);
            snprintf(line, sizeof line, " %lld", (long long)lua_tointeger(L, -1));
            dsv3_strbuf_puts(&b, line);
            lua_pop(L, 1);
        }
        if (E > 64) dsv3_strbuf_puts(&b, " ...");
        dsv3_strbuf_puts(&b, "\n");
        lua_pop(L, 2);
    }
    return dsv3_sbuf_push(L, &b);
}

/* load_stats({text1, text2, ...}) -> per layer: counts summed over the batch, maxvio of the
 * batch and the mean of the per-sequence maxvio, the bias-update push direction. */
static int l_load_stats(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    const dsv3_config *c = dsv3_model_config(lm->m);
    const int64_t E = c->n_routed_experts, Lmain = c->num_hidden_layers, first = c->first_k_dense_replace;
    lua_Integer nseq = (lua_Integer)lua_rawlen(L, 1);
    luaL_argcheck(L, nseq >= 1, 1, "a list of texts (or of id tables) is needed");
    const int64_t nl = Lmain - first;
    if (nl < 1) return luaL_error(L, "the model has no MoE layer");
    /* GC-owned scratch: a text that fails to tokenize raises without leaking */
    int64_t *sum = dsv3_lua_alloc(L, (size_t)(nl * E) * sizeof *sum);
    int64_t *cnt = dsv3_lua_alloc(L, (size_t)E * sizeof *cnt);
    int64_t *tokens = dsv3_lua_alloc(L, (size_t)nl * sizeof *tokens);
    double *seqvio = dsv3_lua_alloc(L, (size_t)nl * sizeof *seqvio);
    for (lua_Integer s = 1; s <= nseq; s++) {
        lua_rawgeti(L, 1, s);
        size_t n;
        int32_t *ids = dsv3_lua_ids_arg(L, lua_gettop(L), lm, &n, 1);
        lroute *r = do_route(L, lm, ids, (int64_t)n);
        for (int64_t l = 0; l < nl; l++) {
            tokens[l] += dsv3_routerec_load(&r->rec, first + l, cnt);
            for (int64_t e = 0; e < E; e++) sum[l * E + e] += cnt[e];
            seqvio[l] += dsv3_load_maxvio(cnt, E);
        }
        lua_pop(L, 3); /* the record (collected later), the ids and the text */
    }
    lua_createtable(L, (int)nl, 0);
    for (int64_t l = 0; l < nl; l++) {
        push_load(L, sum + l * E, E, first + l, tokens[l]);
        lua_pushnumber(L, seqvio[l] / (double)nseq);
        lua_setfield(L, -2, "maxvio_per_sequence");
        lua_rawseti(L, -2, l + 1);
    }
    luaL_setmetatable(L, "dsv3.load");
    return 1;
}

/* ---------------------------------------------------------------- interventions -------- */

/* Reads {disable = {[layer] = {e...}} | {e...}, zero_bias, drop_shared, force = {layer=,
 * experts={...}, pos=}} into iv. */
/* *dis ([NL * E]) and *forced ([NL * K]) are caller buffers in GC-owned memory (an error raised
 * while reading the table must not leak). */
static void read_interventions(lua_State *L, int t, lmodel *lm, dsv3_interventions *iv,
                               unsigned char **dis, int32_t **forced) {
    const dsv3_config *c = dsv3_model_config(lm->m);
    const int64_t E = c->n_routed_experts, K = c->num_experts_per_tok, NL = c->num_hidden_layers + 1;
    static const char *const options[] = {"disable", "zero_bias", "drop_shared", "force", NULL};
    dsv3_lua_check_opts(L, t, "effect", options);
    memset(iv, 0, sizeof *iv);
    iv->forced_pos = -1;
    iv->zero_bias = dsv3_lua_opt_bool(L, t, "zero_bias", 0);
    iv->drop_shared = dsv3_lua_opt_bool(L, t, "drop_shared", 0);
    lua_getfield(L, t, "disable");
    if (lua_istable(L, -1)) {
        iv->disabled = *dis;
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_istable(L, -1)) { /* [layer] = {experts} */
                lua_Integer li = lua_tointeger(L, -2);
                if (li < 0 || li >= NL) luaL_error(L, "disable: layer %d out of range", (int)li);
                for (lua_Integer k = 1; k <= (lua_Integer)lua_rawlen(L, -1); k++) {
                    lua_rawgeti(L, -1, k);
                    lua_Integer e = lua_tointeger(L, -1);
                    lua_pop(L, 1);
                    if (e < 0 || e >= E) luaL_error(L, "disable: expert %d out of range", (int)e);
                    (*dis)[li * E + e] = 1;
                }
            } else { /* a flat list of experts: every layer */
                lua_Integer e = lua_tointeger(L, -1);
                if (e < 0 || e >= E) luaL_error(L, "disable: expert %d out of range", (int)e);
                for (int64_t li = 0; li < NL; li++) (*dis)[li * E + e] = 1;
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "force");
    if (lua_istable(L, -1)) {
        for (int64_t i = 0; i < NL * K; i++) (*forced)[i] = -1;
        iv->forced = *forced;
        lua_getfield(L, -1, "layer");
        lua_Integer li = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        if (li < 0 || li >= NL) luaL_error(L, "force: layer %d out of range", (int)li);
        lua_getfield(L, -1, "experts");
        if (!lua_istable(L, -1) || (int64_t)lua_rawlen(L, -1) != K)
            luaL_error(L, "force: experts must list exactly %d experts", (int)K);
        for (int64_t k = 0; k < K; k++) {
            lua_rawgeti(L, -1, k + 1);
            lua_Integer e = lua_tointeger(L, -1);
            lua_pop(L, 1);
            if (e < 0 || e >= E) luaL_error(L, "force: expert %d out of range", (int)e);
            (*forced)[li * K + k] = (int32_t)e;
        }
        lua_pop(L, 1);
        lua_getfield(L, -1, "pos");
        iv->forced_pos = lua_isnil(L, -1) ? -1 : lua_tointeger(L, -1) - 1;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static int effect_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "mean_kl");
    lua_getfield(L, 1, "top1_changed_fraction");
    lua_getfield(L, 1, "max_kl");
    char buf[200];
    snprintf(buf, sizeof buf, "intervention effect: mean KL(base || intervened) %.4g nats, max %.4g, top-1 changed at %.1f%% of positions",
             lua_tonumber(L, -3), lua_tonumber(L, -1), 100.0 * lua_tonumber(L, -2));
    lua_pushstring(L, buf);
    return 1;
}

/* effect(text | ids, interventions) -> {kl = {per position}, top1_changed = {...}, mean_kl,
 * max_kl, top1_changed_fraction}. */
static int l_effect(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n;
    int32_t *ids = dsv3_lua_ids_arg(L, 1, lm, &n, 1);
    const int64_t T = (int64_t)n;
    const dsv3_config *cf = dsv3_model_config(lm->m);
    const int64_t NLE = (cf->num_hidden_layers + 1) * cf->n_routed_experts;
    unsigned char *dis = dsv3_lua_alloc(L, (size_t)NLE);
    int32_t *forced = dsv3_lua_alloc(L, (size_t)((cf->num_hidden_layers + 1) * cf->num_experts_per_tok) * sizeof *forced);
    dsv3_interventions iv;
    read_interventions(L, 2, lm, &iv, &dis, &forced);
    dsv3_effect e;
    dsv3_err err = {{0}};
    if (dsv3_effect_measure(&e, lm->m, ids, T, &iv, cancel_of(L), &err)) return dsv3_lua_error(L, &err);
    lua_createtable(L, 0, 5);
    lua_createtable(L, (int)T, 0);
    lua_createtable(L, (int)T, 0);
    for (int64_t t = 0; t < T; t++) {
        lua_pushnumber(L, e.kl[t]);
        lua_rawseti(L, -3, t + 1);
        lua_pushboolean(L, e.top1_changed[t]);
        lua_rawseti(L, -2, t + 1);
    }
    lua_setfield(L, -3, "top1_changed");
    lua_setfield(L, -2, "kl");
    lua_pushnumber(L, e.mean_kl);
    lua_setfield(L, -2, "mean_kl");
    lua_pushnumber(L, e.max_kl);
    lua_setfield(L, -2, "max_kl");
    lua_pushnumber(L, e.top1_changed_fraction);
    lua_setfield(L, -2, "top1_changed_fraction");
    dsv3_effect_fini(&e);
    luaL_setmetatable(L, "dsv3.effect");
    return 1;
}

/* ---------------------------------------------------------------- MTP acceptance ------- */

static int trace_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "drafted");
    lua_getfield(L, 1, "accepted");
    lua_getfield(L, 1, "rate");
    dsv3_strbuf b = {0};
    dsv3_strbuf_printf(&b, "MTP drafts: %lld, accepted %lld (%.1f%%); see .steps, .by_position, .by_band, .histogram",
                       (long long)lua_tointeger(L, -3), (long long)lua_tointeger(L, -2), 100.0 * lua_tonumber(L, -1));
    lua_pop(L, 3);
    /* the first drafts: "draft ✓" when the main model agreed, else "draft ✗ main" */
    lua_getfield(L, 1, "steps");
    const lua_Integer n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
    for (lua_Integer i = 1; i <= n && i <= 24; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "pos");
        lua_getfield(L, -2, "draft_text");
        lua_getfield(L, -3, "main_text");
        lua_getfield(L, -4, "accepted");
        dsv3_strbuf_printf(&b, "%s pos %lld: %s ", i == 1 ? "\n" : ";", (long long)lua_tointeger(L, -4),
                           lua_isstring(L, -3) ? lua_tostring(L, -3) : "?");
        if (lua_toboolean(L, -1)) dsv3_strbuf_puts(&b, "✓");
        else dsv3_strbuf_printf(&b, "✗ %s", lua_isstring(L, -2) ? lua_tostring(L, -2) : "?");
        lua_pop(L, 5);
    }
    if (n > 24) dsv3_strbuf_printf(&b, "; ... %lld more", (long long)(n - 24));
    lua_pop(L, 1);
    return dsv3_sbuf_push(L, &b);
}

/* mtp_trace(prompt | ids [, gen opts]) -> {steps = {{pos, draft, q, p, main, accepted}...},
 * drafted, accepted, rate, by_position = {[bucket] = rate}, by_band = {...}, histogram}. */
static int l_mtp_trace(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    if (!dsv3_model_has_mtp(lm->m)) return luaL_error(L, "mtp_trace: the model has no MTP layer");
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    size_t n;
    int32_t *ids = dsv3_lua_ids_arg(L, 1, lm, &n, 1);
    dsv3_session *s = dsv3_session_of(L);
    dsv3_mtp_trace_opts o;
    static const char *const options[] = {"max_tokens|n", "temperature|temp", "seed", NULL};
    dsv3_lua_check_opts(L, 2, "mtp_trace", options);
    o.n_new = (int64_t)dsv3_lua_opt_num(L, 2, "max_tokens|n", 64);
    o.temperature = (float)dsv3_lua_opt_num(L, 2, "temperature|temp", 0.0);
    o.seed = (uint64_t)dsv3_lua_opt_num(L, 2, "seed", (lua_Number)s->seed);
    dsv3_mtp_trace tr;
    dsv3_err err = {{0}};
    if (dsv3_mtp_trace_run(&tr, lm->m, ids, (int64_t)n, &o, s->io.interrupt, &err))
        return dsv3_lua_error(L, &err);
    lua_createtable(L, 0, 8);
    lua_createtable(L, (int)tr.drafted, 0);
    for (int64_t i = 0; i < tr.drafted; i++) {
        const dsv3_draft_event *e = &tr.steps[i];
        lua_createtable(L, 0, 6);
        dsv3_lua_setint(L, "pos", e->pos + 1);
        dsv3_lua_setint(L, "draft", e->draft);
        dsv3_lua_setint(L, "main", e->main);
        lua_pushnumber(L, e->q_draft);
        lua_setfield(L, -2, "q");
        lua_pushnumber(L, e->p_draft);
        lua_setfield(L, -2, "p");
        lua_pushboolean(L, e->accepted);
        lua_setfield(L, -2, "accepted");
        dsv3_lua_push_label(L, lm, e->draft);
        lua_setfield(L, -2, "draft_text");
        dsv3_lua_push_label(L, lm, e->main);
        lua_setfield(L, -2, "main_text");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "steps");
    dsv3_lua_setint(L, "drafted", (long long)tr.drafted);
    dsv3_lua_setint(L, "accepted", tr.accepted);
    lua_pushnumber(L, tr.rate);
    lua_setfield(L, -2, "rate");
    lua_newtable(L);
    for (int b = 0; b < DSV3_TRACE_BUCKETS; b++)
        if (tr.pos_drafted[b]) {
            lua_pushnumber(L, (double)tr.pos_accepted[b] / (double)tr.pos_drafted[b]);
            lua_rawseti(L, -2, b * DSV3_TRACE_BUCKET + 1); /* key: first position of the bucket */
        }
    lua_setfield(L, -2, "by_position");
    lua_createtable(L, DSV3_TRACE_BANDS, 0);
    for (int b = 0; b < DSV3_TRACE_BANDS; b++) {
        lua_pushnumber(L, tr.band_rate[b]);
        lua_rawseti(L, -2, b + 1);
    }
    lua_setfield(L, -2, "by_band");
    lua_createtable(L, DSV3_TRACE_HIST, 0);
    for (int b = 0; b < DSV3_TRACE_HIST; b++) {
        lua_pushinteger(L, tr.histogram[b]);
        lua_rawseti(L, -2, b + 1);
    }
    lua_setfield(L, -2, "histogram");
    dsv3_lua_setint(L, "tokens", tr.tokens);
    dsv3_mtp_trace_fini(&tr);
    luaL_setmetatable(L, "dsv3.trace");
    return 1;
}

/* ---------------------------------------------------------------- capture / lens / attn  */

/* capture(text | ids [, {points = {"resid_out", ...}, layers = {0, 3}}]) -> {["resid_out.3"] =
 * tensor [T, dim], ...}; points: resid_in, attn_out, ffn_out, resid_out, ckv, hidden. */
static int l_capture(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    const int64_t NL = dsv3_model_config(lm->m)->num_hidden_layers;
    static const char *const options[] = {"points", "layers", NULL};
    dsv3_lua_check_opts(L, 2, "capture", options);
    dsv3_capture_opts opts = {.layers = NULL};
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "points");
        if (lua_istable(L, -1)) {
            for (lua_Integer k = 1; k <= (lua_Integer)lua_rawlen(L, -1); k++) {
                lua_rawgeti(L, -1, k);
                const char *nm = lua_tostring(L, -1);
                int found = 0;
                for (int p = 0; p < DSV3_POINT_COUNT; p++)
                    if (nm && !strcmp(nm, dsv3_capture_point_name(p))) opts.points[p] = found = 1;
                if (!found) return luaL_error(L, "capture: unknown point '%s' (resid_in, attn_out, ffn_out, resid_out, ckv, hidden)", nm ? nm : "?");
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        unsigned char *sel = dsv3_lua_alloc(L, (size_t)(NL + 2)); /* GC-owned */
        lua_getfield(L, 2, "layers");
        if (lua_istable(L, -1)) {
            opts.layers = sel;
            for (lua_Integer k = 1; k <= (lua_Integer)lua_rawlen(L, -1); k++) {
                lua_rawgeti(L, -1, k);
                lua_Integer li = lua_tointeger(L, -1);
                lua_pop(L, 1);
                if (li < 0 || li > NL) return luaL_error(L, "capture: layer %d out of range 0..%d", (int)li, (int)NL);
                sel[li] = 1;
            }
        }
        lua_pop(L, 1);
    }
    size_t n;
    int32_t *ids = dsv3_lua_ids_arg(L, 1, lm, &n, 1);
    dsv3_capture cap;
    dsv3_err err = {{0}};
    if (dsv3_capture_run(&cap, lm->m, ids, (int64_t)n, &opts, cancel_of(L), &err)) return dsv3_lua_error(L, &err);
    lua_newtable(L);
    for (int64_t i = 0; i < cap.n; i++) { /* each tensor's memory moves to its userdata */
        dsv3_capture_tensor *t = &cap.t[i];
        dsv3_lua_push_tensor(L, cap.T, t->dim, t->v);
        t->v = NULL;
        if (t->layer < 0) lua_setfield(L, -2, dsv3_capture_point_name(t->point));
        else {
            char key[64];
            snprintf(key, sizeof key, "%s.%lld", dsv3_capture_point_name(t->point), (long long)t->layer);
            lua_setfield(L, -2, key);
        }
    }
    dsv3_capture_fini(&cap);
    return 1;
}

/* lens(text | ids [, {k = 5, pos = -1}]) -> {{layer=, top={{id, prob, piece}...}}...}: the
 * final norm and lm_head applied to each layer's output residual (the logit lens). */
static int l_lens(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 3);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const options[] = {"k", "pos", NULL};
    dsv3_lua_check_opts(L, 2, "lens", options);
    int k = (int)dsv3_lua_opt_num(L, 2, "k", 5);
    lua_Integer pos = (lua_Integer)dsv3_lua_opt_num(L, 2, "pos", -1);
    if (k < 1) return luaL_error(L, "lens: k must be at least 1");
    size_t n;
    int32_t *ids = dsv3_lua_ids_arg(L, 1, lm, &n, 1);
    const lua_Integer p = pos < 0 ? (lua_Integer)n + 1 + pos : pos; /* 1-based, negative from the end */
    dsv3_lens lens;
    dsv3_err err = {{0}};
    if (dsv3_lens_compute(&lens, lm->m, ids, (int64_t)n, p - 1, k, cancel_of(L), &err))
        return dsv3_lua_error(L, &err);
    lua_createtable(L, (int)lens.n_layers, 0);
    for (int64_t li = 0; li < lens.n_layers; li++) {
        lua_createtable(L, 0, 2);
        dsv3_lua_setint(L, "layer", li);
        lua_createtable(L, k, 0);
        for (int64_t j = 0; j < lens.k; j++) {
            const dsv3_lens_entry *e = &lens.top[li * lens.k + j];
            lua_createtable(L, 0, 3);
            dsv3_lua_setint(L, "id", e->id);
            lua_pushnumber(L, e->prob);
            lua_setfield(L, -2, "prob");
            const char *pc = lm->tok ? dsv3_tokenizer_piece(lm->tok, e->id) : NULL;
            if (pc) {
                lua_pushstring(L, pc);
                lua_setfield(L, -2, "piece");
                char *t = dsv3_tokenizer_label(lm->tok, e->id);
                lua_pushstring(L, t ? t : "?");
                free(t);
                lua_setfield(L, -2, "text");
            }
            lua_rawseti(L, -2, j + 1);
        }
        lua_setfield(L, -2, "top");
        lua_rawseti(L, -2, li + 1);
    }
    dsv3_lens_fini(&lens);
    luaL_setmetatable(L, "dsv3.lens");
    return 1;
}

static int lens_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    dsv3_strbuf b = {0};
    dsv3_strbuf_puts(&b, "logit lens (top tokens of each layer's residual through the final norm and head)\n");
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, 1); i++) {
        lua_rawgeti(L, 1, i);
        lua_getfield(L, -1, "layer");
        char line[128];
        snprintf(line, sizeof line, "  layer %2lld:", (long long)lua_tointeger(L, -1));
        lua_pop(L, 1);
        dsv3_strbuf_puts(&b, line);
        lua_getfield(L, -1, "top");
        for (lua_Integer j = 1; j <= (lua_Integer)lua_rawlen(L, -1); j++) {
            lua_rawgeti(L, -1, j);
            lua_getfield(L, -1, "id");
            lua_getfield(L, -2, "prob");
            lua_getfield(L, -3, "text");
            if (lua_isstring(L, -1) && !dsv3_session_of(L)->show_ids)
                snprintf(line, sizeof line, " %s (%.3f)", lua_tostring(L, -1), lua_tonumber(L, -2));
            else
                snprintf(line, sizeof line, " %s%s%lld (%.3f)", lua_isstring(L, -1) ? lua_tostring(L, -1) : "",
                         lua_isstring(L, -1) ? "/" : "#", (long long)lua_tointeger(L, -3), lua_tonumber(L, -2));
            dsv3_strbuf_puts(&b, line);
            lua_pop(L, 4);
        }
        lua_pop(L, 2);
        dsv3_strbuf_puts(&b, "\n");
    }
    return dsv3_sbuf_push(L, &b);
}

/* attn(text | ids, layer, head) -> tensor [T, T]: row i = attention of query i over keys. */
static int l_attn(lua_State *L) {
    lmodel *lm = dsv3_lua_model_arg(L, 4);
    const dsv3_config *c = dsv3_model_config(lm->m);
    lua_Integer li = luaL_checkinteger(L, 2), h = luaL_checkinteger(L, 3);
    luaL_argcheck(L, li >= 0 && li < c->num_hidden_layers, 2, "layer out of range");
    luaL_argcheck(L, h >= 0 && h < c->num_attention_heads, 3, "head out of range (0-based)");
    size_t n;
    int32_t *ids = dsv3_lua_ids_arg(L, 1, lm, &n, 1);
    dsv3_attention a;
    dsv3_err err = {{0}};
    if (dsv3_attention_pattern(&a, lm->m, ids, (int64_t)n, li, h, cancel_of(L), &err))
        return dsv3_lua_error(L, &err);
    dsv3_ltensor *t = dsv3_lua_push_tensor(L, a.T, a.T, a.p); /* the tensor takes the probabilities */
    char title[128];
    snprintf(title, sizeof title, "attention, layer %lld head %lld (rows: queries, columns: keys)",
             (long long)li, (long long)h);
    t->title = strdup(title);
    t->row_labels = calloc((size_t)a.T, sizeof *t->row_labels);
    t->col_labels = calloc((size_t)a.T, sizeof *t->col_labels);
    for (int64_t i = 0; i < a.T && t->row_labels && t->col_labels; i++) {
        t->row_labels[i] = dsv3_lua_label(L, lm, ids[i]);
        t->col_labels[i] = dsv3_lua_label(L, lm, ids[i]);
    }
    return 1;
}

/* ---------------------------------------------------------------- registration --------- */

static void open_probes(lua_State *L) {
    static const luaL_Reg route_meta[] = {{"__gc", route_gc}, {"__tostring", route_tostring},
                                          {"__len", route_len}, {"__svg", route_svg}, {NULL, NULL}};
    static const luaL_Reg route_methods[] = {{"token", route_token}, {"layer", route_layer},
                                             {"load", route_load}, {"cooc", route_cooc},
                                             {"changed", route_changed}, {"json", route_json},
                                             {"csv", route_csv}, {"save", route_save},
                                             {"heatmap", route_heatmap_m}, {NULL, NULL}};
    static const luaL_Reg load_meta[] = {{"__tostring", load_tostring}, {NULL, NULL}};
    static const luaL_Reg effect_meta[] = {{"__tostring", effect_tostring}, {NULL, NULL}};
    static const luaL_Reg trace_meta[] = {{"__tostring", trace_tostring}, {NULL, NULL}};
    static const luaL_Reg lens_meta[] = {{"__tostring", lens_tostring}, {NULL, NULL}};
    struct {
        const char *name;
        const luaL_Reg *meta, *methods;
    } mts[] = {{MT_ROUTE, route_meta, route_methods}, {"dsv3.load", load_meta, NULL},
               {"dsv3.effect", effect_meta, NULL},   {"dsv3.trace", trace_meta, NULL},
               {"dsv3.lens", lens_meta, NULL}};
    for (size_t i = 0; i < sizeof mts / sizeof mts[0]; i++)
        dsv3_lua_newmt(L, mts[i].name, mts[i].meta, mts[i].methods);
}

/* The bindings above keep their exported dsv3_lua_* names; only this table uses them. */
static const dsv3_lua_fn fns[] = {
    {"route", l_route, "route(text | ids) -> record",
     "Routing record of one forward: per token and MoE layer the chosen experts (descending\n"
     "biased score), combine weights, unbiased/biased scores, kept groups and the zero-bias choice.\n"
     "r:token(pos) one token's path through all layers; r:layer(L) one layer's token table;\n"
     "r:load([L]) expert load + maxvio + bias push direction; r:cooc(L) co-occurrence;\n"
     "r:changed() fraction of choices the bias changed; r:heatmap(L [, \"svg\"]); r:json(),\n"
     "r:csv(), r:save(\"file.json\" | \"file.csv\")."},
    {"bias", l_bias, "bias(layer [, expert]) -> {values} | value",
     "The router bias e_score_correction_bias of a MoE layer (experts are 0-based; the table's\n"
     "index e+1 holds expert e)."},
    {"bias_set", l_bias_set, "bias_set(layer, expert | {values}, value)",
     "Sets one expert's bias, or the whole vector, for this session (changes routing)."},
    {"bias_add", l_bias_add, "bias_add(layer, expert | {deltas} [, delta])",
     "Adds to one expert's bias or to the whole vector."},
    {"bias_reset", l_bias_reset, "bias_reset([layer])",
     "Restores the checkpoint's bias (one layer, or all)."},
    {"load_stats", l_load_stats, "load_stats({text, ...}) -> loads",
     "Expert load per MoE layer over a batch of texts: counts, maxvio (max load / mean - 1) of\n"
     "the batch and per sequence, and push (sign(mean - load): where the bias update would go)."},
    {"effect", l_effect, "effect(text | ids, interventions) -> effect",
     "Runs with and without interventions and compares next-token distributions: per position\n"
     "KL(base || intervened) and whether the top-1 token changed. interventions: disable =\n"
     "{e, ...} (all layers) or {[layer] = {e, ...}}, zero_bias = true, drop_shared = true,\n"
     "force = {layer = L, experts = {...}, pos = p}."},
    {"mtp_trace", l_mtp_trace, "mtp_trace(prompt | ids [, {max_tokens=64, temperature=0, seed}]) -> trace",
     "Generates with MTP speculative decoding and records every draft: .steps (pos, draft, q, p,\n"
     "main, accepted), .rate, .by_position (per 16 positions), .by_band (token-id quartiles),\n"
     ".histogram (of the draft's MTP probability, 10 bins)."},
    {"capture", l_capture, "capture(text | ids [, {points={...}, layers={...}}]) -> {tensors}",
     "Activations as tensors [T, dim] named \"point.layer\": points resid_in, attn_out, ffn_out,\n"
     "resid_out (default), ckv (the MLA latent), hidden (final-normed, the MTP input).\n"
     "Tensors (help \"tensor\"): shape(), get(i, j), row(i), norms(), save(\"x.npy\"), t[i], slice,\n"
     "+ - * /, matmul, cos, sum, mean, topk, argmax."},
    {"lens", l_lens, "lens(text | ids [, {k=5, pos=-1}]) -> lens",
     "Logit lens: the final norm and lm_head applied to each layer's output residual at pos."},
    {"attn", l_attn, "attn(text | ids, layer, head) -> tensor",
     "Attention pattern [T, T] of one head (0-based) in one layer: row i is query i's\n"
     "distribution over keys 0..i."},
    {NULL, NULL, NULL, NULL},
};

const dsv3_lua_module dsv3_lua_probes_module = {"probes", open_probes, fns};
