/* luax.c — the Lua helper library of the binding modules (contract in luax.h).
 *
 * Sections: the session of a state -> models -> arguments -> values. Everything here is a helper
 * for binding code; it registers no Lua function and includes no module.
 */
#include "repl/session/luax.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/run/model.h"
#include "model/text/tokenizer.h"

/* ---------------------------------------------------------------- the session ---------- */

static const char SESSION_KEY = 0; /* registry key: its address is unique */

void dsv3_lua_bind_session(lua_State *L, dsv3_session *s) {
    lua_pushlightuserdata(L, s);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &SESSION_KEY);
}

dsv3_session *dsv3_session_of(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &SESSION_KEY);
    dsv3_session *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

void dsv3_session_write(dsv3_session *s, dsv3_stream st, const char *bytes, size_t len) {
    if (s->io.write && len) s->io.write(s->io.ud, st, bytes, len);
}

int dsv3_session_interrupted(const dsv3_session *s) {
    return s->io.interrupt && *s->io.interrupt;
}

int dsv3_lua_error(lua_State *L, const dsv3_err *err) {
    return luaL_error(L, "%s", err->msg);
}

/* ---------------------------------------------------------------- models --------------- */

lmodel *dsv3_lua_check_model(lua_State *L, int idx) {
    lmodel *lm = luaL_checkudata(L, idx, DSV3_LUA_MT_MODEL);
    if (!lm->m) luaL_error(L, "model is closed");
    return lm;
}

lmodel *dsv3_lua_model_arg(lua_State *L, int idx) {
    if (luaL_testudata(L, idx, DSV3_LUA_MT_MODEL)) return dsv3_lua_check_model(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, "dsv3.current");
    lmodel *lm = luaL_testudata(L, -1, DSV3_LUA_MT_MODEL);
    lua_pop(L, 1);
    if (!lm) luaL_error(L, "no model loaded: load \"DIR\" first (load() opens the bundled demo model)");
    if (!lm->m) luaL_error(L, "the current model is closed: load \"DIR\" or use(another)");
    return lm;
}

void dsv3_lua_push_model(lua_State *L, const lmodel *lm) {
    lua_getfield(L, LUA_REGISTRYINDEX, DSV3_LUA_REG_MODELS);
    lua_getfield(L, -1, "n");
    const lua_Integer n = lua_tointeger(L, -1);
    lua_pop(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, i) == LUA_TUSERDATA && lua_touserdata(L, -1) == lm && lm->m) {
            lua_remove(L, -2);
            return;
        }
        lua_pop(L, 1);
    }
    luaL_error(L, "model is closed");
}

dsv3_tokenizer *dsv3_lua_tokenizer(lua_State *L, lmodel *lm) {
    if (!lm->tok)
        luaL_error(L, "%s has no tokenizer.json: pass token ids (a table of integers) instead",
                   dsv3_model_dir(lm->m));
    return lm->tok;
}

char *dsv3_lua_label(lua_State *L, const lmodel *lm, int32_t id) {
    const dsv3_session *s = dsv3_session_of(L);
    char *text = lm && lm->tok ? dsv3_tokenizer_label(lm->tok, id) : NULL;
    dsv3_strbuf b = {0};
    if (text) dsv3_strbuf_puts(&b, text);
    if (!text || (s && s->show_ids)) dsv3_strbuf_printf(&b, "%s%ld", text ? "/" : "#", (long)id);
    free(text);
    return dsv3_strbuf_finish(&b);
}

void dsv3_lua_push_label(lua_State *L, const lmodel *lm, int32_t id) {
    char *t = dsv3_lua_label(L, lm, id);
    if (!t) luaL_error(L, "out of memory");
    lua_pushstring(L, t);
    free(t);
}

/* ---------------------------------------------------------------- arguments ------------ */

void *dsv3_lua_alloc(lua_State *L, size_t bytes) {
    void *p = lua_newuserdatauv(L, bytes ? bytes : 1, 0);
    memset(p, 0, bytes ? bytes : 1);
    return p;
}

int32_t *dsv3_lua_own_ids(lua_State *L, int32_t *ids, size_t n) {
    int32_t *owned = dsv3_lua_alloc(L, n * sizeof *owned);
    if (n) memcpy(owned, ids, n * sizeof *ids);
    free(ids);
    return owned;
}

int32_t *dsv3_lua_ids_arg(lua_State *L, int idx, lmodel *lm, size_t *n, int add_bos) {
    const int64_t V = dsv3_model_config(lm->m)->vocab_size;
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *text = lua_tolstring(L, idx, &len);
        int32_t *enc = NULL;
        dsv3_err err = {{0}};
        if (dsv3_tokenizer_encode(dsv3_lua_tokenizer(L, lm), &enc, n, text, len, add_bos, &err))
            dsv3_lua_error(L, &err);
        return dsv3_lua_own_ids(L, enc, *n);
    }
    if (!lua_istable(L, idx)) luaL_typeerror(L, idx, "string or table of token ids");
    size_t k = (size_t)lua_rawlen(L, idx);
    int32_t *ids = dsv3_lua_alloc(L, k * sizeof *ids);
    for (size_t i = 0; i < k; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        int isnum;
        lua_Integer v = lua_tointegerx(L, -1, &isnum);
        lua_pop(L, 1);
        if (!isnum || v < 0 || v >= V)
            luaL_error(L, "token id #%d is %s (expected an integer in [0, %d))", (int)i + 1,
                       isnum ? "out of range" : "not an integer", (int)V);
        ids[i] = (int32_t)v;
    }
    *n = k;
    return ids;
}

/* Pushes the option k of the table at t: k is a name or "name|alias|..." (the same option
 * under its old names); nil when none is set. Raises when two of the names are set. Writes
 * the name that was set (or k's first) into name, for messages. */
static void push_opt(lua_State *L, int t, const char *k, char *name, size_t size) {
    t = lua_absindex(L, t);
    lua_pushnil(L);
    const char *first = NULL;
    size_t first_len = 0;
    for (const char *p = k; *p;) {
        const char *e = strchr(p, '|');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        lua_pushlstring(L, p, n);
        if (lua_rawget(L, t) != LUA_TNIL) {
            if (first) {
                lua_pushlstring(L, first, first_len);
                lua_pushlstring(L, p, n);
                luaL_error(L, "options '%s' and '%s' are the same option: give one",
                           lua_tostring(L, -2), lua_tostring(L, -1));
            }
            first = p;
            first_len = n;
            lua_replace(L, -2);
        } else {
            lua_pop(L, 1);
        }
        p += n + (e != NULL);
    }
    if (!first) first = k, first_len = strcspn(k, "|");
    snprintf(name, size, "%.*s", (int)(first_len < size ? first_len : size - 1), first);
}

int dsv3_lua_opt_bool(lua_State *L, int t, const char *k, int def) {
    if (!lua_istable(L, t)) return def;
    char name[64];
    push_opt(L, t, k, name, sizeof name);
    int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

lua_Number dsv3_lua_opt_num(lua_State *L, int t, const char *k, lua_Number def) {
    if (!lua_istable(L, t)) return def;
    char name[64];
    push_opt(L, t, k, name, sizeof name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    int ok;
    lua_Number v = lua_tonumberx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok) luaL_error(L, "option '%s' must be a number", name);
    return v;
}

const char *dsv3_lua_opt_str(lua_State *L, int t, const char *k) {
    if (!lua_istable(L, t)) return NULL;
    char name[64];
    push_opt(L, t, k, name, sizeof name);
    const char *v = lua_isnil(L, -1) ? NULL : lua_tostring(L, -1);
    if (!v && !lua_isnil(L, -1)) luaL_error(L, "option '%s' must be a string", name);
    lua_pop(L, 1); /* the string stays alive: it is referenced by the options table */
    return v;
}

void dsv3_lua_check_opts(lua_State *L, int t, const char *fname, const char *const *valid) {
    if (!lua_istable(L, t)) return;
    t = lua_absindex(L, t);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        int known = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t kl;
            const char *key = lua_tolstring(L, -1, &kl);
            for (size_t i = 0; valid[i] && !known; i++)
                for (const char *p = valid[i]; *p && !known;) {
                    size_t n = strcspn(p, "|");
                    known = n == kl && !memcmp(p, key, n);
                    p += n + (p[n] == '|');
                }
        }
        if (known) continue;
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t i = 0; valid[i]; i++) {
            if (i) luaL_addstring(&b, ", ");
            size_t n = strcspn(valid[i], "|");
            luaL_addlstring(&b, valid[i], n);
            if (valid[i][n]) {
                luaL_addstring(&b, " (or ");
                for (const char *p = valid[i] + n + 1; *p;) {
                    size_t m = strcspn(p, "|");
                    if (p != valid[i] + n + 1) luaL_addstring(&b, ", ");
                    luaL_addlstring(&b, p, m);
                    p += m + (p[m] == '|');
                }
                luaL_addstring(&b, ")");
            }
        }
        luaL_pushresult(&b);
        if (lua_type(L, -2) == LUA_TSTRING)
            luaL_error(L, "%s: unknown option '%s' (valid: %s)", fname, lua_tostring(L, -2),
                       lua_tostring(L, -1));
        luaL_error(L, "%s: options are named, not %s keys (valid: %s)", fname, luaL_typename(L, -2),
                   lua_tostring(L, -1));
    }
}

/* ---------------------------------------------------------------- values --------------- */

void dsv3_lua_setint(lua_State *L, const char *k, long long v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

void dsv3_lua_setnum(lua_State *L, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

void dsv3_lua_newmt(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    if (methods) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

void dsv3_sbuf_addtop(lua_State *L, dsv3_strbuf *b) {
    dsv3_strbuf_puts(b, luaL_tolstring(L, -1, NULL));
    lua_pop(L, 2);
}

int dsv3_sbuf_push(lua_State *L, dsv3_strbuf *b) {
    lua_pushlstring(L, b->s ? b->s : "", b->len);
    free(b->s);
    b->s = NULL;
    return 1;
}

/* ---------------------------------------------------------------- figures -------------- */

static int figure_svg(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "svg");
    return 1;
}

static int figure_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "title");
    lua_getfield(L, 1, "svg");
    const char *svg = lua_tostring(L, -1);
    int w = 0, h = 0;
    const char *p = svg ? strstr(svg, "width=\"") : NULL;
    if (p) w = atoi(p + 7);
    p = svg ? strstr(svg, "height=\"") : NULL;
    if (p) h = atoi(p + 8);
    lua_pushfstring(L, "<figure %s: SVG %dx%d; .svg is its source, :save(path) writes it>",
                    lua_isstring(L, -2) ? lua_tostring(L, -2) : "", w, h);
    return 1;
}

static int figure_save(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *path = luaL_checkstring(L, 2);
    lua_getfield(L, 1, "svg");
    size_t n;
    const char *svg = luaL_checklstring(L, -1, &n);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(svg, 1, n, f) == n;
    ok = f && fclose(f) == 0 && ok;
    if (!ok) return luaL_error(L, "save: cannot write %s", path);
    lua_pushstring(L, path);
    return 1;
}

void dsv3_lua_push_figure(lua_State *L, const char *svg, const char *title) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, svg);
    lua_setfield(L, -2, "svg");
    lua_pushstring(L, title ? title : "");
    lua_setfield(L, -2, "title");
    if (luaL_newmetatable(L, DSV3_LUA_MT_FIGURE)) {
        static const luaL_Reg meta[] = {{"__svg", figure_svg}, {"__tostring", figure_tostring}, {NULL, NULL}};
        static const luaL_Reg methods[] = {{"save", figure_save}, {NULL, NULL}};
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
}

const char *dsv3_lua_display_id(lua_State *L, const char *what) {
    dsv3_session *s = dsv3_session_of(L);
    const unsigned long long k = s ? ++s->displays : 0;
    return lua_pushfstring(L, "dsv3-%s%s%d-%d", what ? what : "", what ? "-" : "", (int)getpid(), (int)k);
}

/* ---------------------------------------------------------------- shown values --------- */

static const char SHOWN_KEY = 0; /* registry: {[value] = true} of the running chunk */

void dsv3_lua_mark_shown(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SHOWN_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &SHOWN_KEY);
    }
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

int dsv3_lua_was_shown(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_isnil(L, idx) || lua_rawgetp(L, LUA_REGISTRYINDEX, &SHOWN_KEY) != LUA_TTABLE) {
        if (!lua_isnil(L, idx)) lua_pop(L, 1);
        return 0;
    }
    lua_pushvalue(L, idx);
    const int shown = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return shown;
}

void dsv3_lua_clear_shown(lua_State *L) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &SHOWN_KEY);
}
