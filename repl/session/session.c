/* session.c — the Lua state of a session: exec (expression first, like lua.c), print through
 * the host, interrupts via a count hook, completion and help (see session.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl/session/lua_modules.h"
#include "repl/session/luax.h"
#include "repl/session/render.h"
#include "repl/session/session_internal.h"

static const char RESULTS_KEY = 0; /* registry: {n=, values...} kept by dsv3_session_eval */

/* ---------------------------------------------------------------- print / hook --------- */

/* print(...) as Lua's, but through the host so notebooks capture it. */
static int l_print(lua_State *L) {
    dsv3_session *s = dsv3_session_of(L);
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *str = luaL_tolstring(L, i, &len);
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_addvalue(&b);
        (void)str;
        (void)len;
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    size_t len;
    const char *out = lua_tolstring(L, -1, &len);
    dsv3_session_write(s, DSV3_STDOUT, out, len);
    return 0;
}

/* Every 1000 instructions (and at every call when io.interrupt_on_call is set): a pending
 * interrupt becomes a Lua error at a safe point. */
static void count_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    if (dsv3_session_interrupted(dsv3_session_of(L))) luaL_error(L, "interrupted");
}

/* ---------------------------------------------------------------- display / input ----- */

/* Defined only when the host gives the matching io callback (session.h). */

static const char doc_display[] =
    "display(value [, {id=, update=}]) -> id\n"
    "Shows value now, in every form that fits it (text, HTML tables, JSON), as its own output.\n"
    "Returns the display id (made up unless opts.id is given). With update=true and the id of an\n"
    "earlier display, replaces that output in place: progress of long work updates one display.\n";
static const char doc_progress[] =
    "progress(done, total [, label]) -> value\n"
    "A progress value: a bar in text, a <progress> element in HTML. Show it with display() and\n"
    "update it in place: local id = display(progress(0, n)) ... display(progress(i, n), {id=id,\n"
    "update=true}).\n";
static const char doc_input[] =
    "input([prompt [, {password=false}]]) -> string\n"
    "Reads one line from the user (a notebook's input box), without its newline. Fails at once\n"
    "where the front end allows no input (nbclient) and when interrupted.\n";

static int l_display(lua_State *L) {
    dsv3_session *s = dsv3_session_of(L);
    luaL_checkany(L, 1);
    lua_settop(L, 2);
    const char *id = NULL;
    int update = 0;
    if (!lua_isnil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "id");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "display: option 'id' must be a string");
        lua_getfield(L, 2, "update");
        update = lua_toboolean(L, -1);
        lua_pop(L, 1);
        id = lua_tostring(L, -1); /* stays on the stack */
        if (update && !id) return luaL_error(L, "display: update=true needs the id of an earlier display");
    }
    if (!id) id = dsv3_lua_display_id(L, NULL);
    dsv3_mime_bundle b = {0};
    for (int f = 0; f < DSV3_RENDER_FORMS && b.n < DSV3_MIME_MAX; f++)
        if (dsv3_render_push(L, 1, 1, (dsv3_render_form)f)) {
            b.mime[b.n] = dsv3_render_mime((dsv3_render_form)f);
            b.data[b.n] = lua_tolstring(L, -1, &b.len[b.n]);
            b.n++;
        }
    s->io.display(s->io.ud, &b, id, update);
    lua_pushstring(L, id);
    dsv3_lua_mark_shown(L, -1); /* `display(x)` as a cell's last line shows x once, not its id */
    return 1;
}

static int progress_tostring(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "done");  /* 2 */
    lua_getfield(L, 1, "total"); /* 3 */
    lua_getfield(L, 1, "label"); /* 4 */
    double done = lua_tonumber(L, 2), total = lua_tonumber(L, 3);
    int filled = total > 0 ? (int)(20.0 * (done < total ? (done > 0 ? done : 0) : total) / total) : 20;
    char bar[21];
    for (int i = 0; i < 20; i++) bar[i] = i < filled ? '#' : '-';
    bar[20] = 0;
    const char *d = luaL_tolstring(L, 2, NULL), *t = luaL_tolstring(L, 3, NULL);
    const char *label = lua_type(L, 4) == LUA_TSTRING ? lua_tostring(L, 4) : NULL;
    lua_pushfstring(L, "[%s] %s/%s%s%s", bar, d, t, label ? " " : "", label ? label : "");
    return 1;
}

static int l_progress(lua_State *L) {
    lua_Number done = luaL_checknumber(L, 1), total = luaL_checknumber(L, 2);
    const char *label = luaL_optstring(L, 3, NULL);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "done");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "total");
    if (label) {
        lua_pushstring(L, label);
        lua_setfield(L, -2, "label");
    }
    (void)done;
    (void)total;
    luaL_setmetatable(L, DSV3_RENDER_MT_PROGRESS);
    return 1;
}

static int l_input(lua_State *L) {
    dsv3_session *s = dsv3_session_of(L);
    const char *prompt = luaL_optstring(L, 1, "");
    int password = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "password");
        password = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    char *line = NULL;
    int rc = s->io.input(s->io.ud, prompt, password, &line);
    lua_pushstring(L, line ? line : rc ? "input: no input available" : "");
    free(line);
    if (rc) return luaL_error(L, "%s", lua_tostring(L, -1));
    return 1;
}

/* io.write(...) through the host; returns io.stdout (upvalue 1) as Lua's does. */
static int l_io_write(lua_State *L) {
    dsv3_session *s = dsv3_session_of(L);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *p = luaL_checklstring(L, i, &len);
        dsv3_session_write(s, DSV3_STDOUT, p, len);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
}

/* io.read([fmt...]) through the host's input: "l" (default), "L", "n"; one value per format. */
static int l_io_read(lua_State *L) {
    dsv3_session *s = dsv3_session_of(L);
    int n = lua_gettop(L);
    if (n == 0) {
        lua_pushliteral(L, "l");
        n = 1;
    }
    for (int i = 1; i <= n; i++) {
        const char *f = lua_type(L, i) == LUA_TSTRING ? lua_tostring(L, i) : NULL;
        if (f && *f == '*') f++;
        if (!f || !*f || !strchr("lLn", *f))
            return luaL_argerror(L, i, "here io.read reads lines (\"l\", \"L\") or numbers (\"n\")");
        char *line = NULL;
        int rc = s->io.input(s->io.ud, "", 0, &line);
        lua_pushstring(L, line ? line : rc ? "io.read: no input available" : "");
        free(line);
        if (rc) return luaL_error(L, "%s", lua_tostring(L, -1));
        if (*f == 'L') {
            lua_pushliteral(L, "\n");
            lua_concat(L, 2);
        } else if (*f == 'n') {
            if (lua_stringtonumber(L, lua_tostring(L, -1)) == 0) lua_pushnil(L);
            lua_remove(L, -2);
        }
    }
    return n;
}

/* Registers display/progress, input and the io redirections where the host asks for them. */
static void open_host_functions(lua_State *L, const dsv3_session_io *io) {
    if (io->capture_stdio) {
        if (lua_getglobal(L, "io") == LUA_TTABLE) {
            lua_getfield(L, -1, "stdout");
            lua_pushcclosure(L, l_io_write, 1);
            lua_setfield(L, -2, "write");
            if (io->input) {
                lua_pushcfunction(L, l_io_read);
                lua_setfield(L, -2, "read");
            }
        }
        lua_pop(L, 1);
    }
    if (io->display) {
        lua_register(L, "display", l_display);
        lua_register(L, "progress", l_progress);
        luaL_newmetatable(L, DSV3_RENDER_MT_PROGRESS);
        lua_pushcfunction(L, progress_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pop(L, 1);
    }
    if (io->input) lua_register(L, "input", l_input);
}

/* ---------------------------------------------------------------- lifetime ------------- */

/* Every module's open hook, then every module's functions as globals (lua_modules.h). */
static void open_modules(lua_State *L) {
    for (size_t m = 0; dsv3_lua_modules[m]; m++)
        if (dsv3_lua_modules[m]->open) dsv3_lua_modules[m]->open(L);
    for (size_t m = 0; dsv3_lua_modules[m]; m++)
        for (const dsv3_lua_fn *f = dsv3_lua_modules[m]->fns; f->name; f++)
            lua_register(L, f->name, f->fn);
}

dsv3_status dsv3_session_new(dsv3_session **out, const dsv3_session_io *io, dsv3_err *err) {
    *out = NULL;
    dsv3_session *s = calloc(1, sizeof *s);
    if (!s) return dsv3_errf(err, DSV3_ENOMEM, "session: out of memory");
    if (io) s->io = *io;
    if (!(s->L = luaL_newstate())) {
        free(s);
        return dsv3_errf(err, DSV3_ENOMEM, "session: cannot create a Lua state");
    }
    luaL_openlibs(s->L);
    dsv3_lua_bind_session(s->L, s);
    lua_register(s->L, "print", l_print);
    open_modules(s->L);
    open_host_functions(s->L, &s->io);
    lua_sethook(s->L, count_hook, LUA_MASKCOUNT | (s->io.interrupt_on_call ? LUA_MASKCALL : 0), 1000);
    *out = s;
    return DSV3_OK;
}

void dsv3_session_free(dsv3_session *s) {
    if (!s) return;
    lua_close(s->L);
    free(s);
}

/* ---------------------------------------------------------------- exec ----------------- */

/* Message handler: the error plus a traceback (as lua.c's msghandler). */
static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* A syntax error that ends at <eof> means the chunk is unfinished (lua.c's `incomplete`). */
static int incomplete(lua_State *L, int status) {
    if (status != LUA_ERRSYNTAX) return 0;
    size_t lmsg;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    const char *mark = "<eof>";
    size_t lmark = strlen(mark);
    return lmsg >= lmark && strcmp(msg + lmsg - lmark, mark) == 0;
}

/* ---------------------------------------------------------------- compile -------------- */

/* A cell is compiled the way IPython runs one: "return <code>" first (the whole chunk is an
 * expression), else the chunk as statements, and then, when its last statement is an
 * expression (a name, a field, a call, arithmetic), that expression's values are returned, so
 * `r = route(p)\nr` and `a = 1; a` show their last value. The last statement starts after a
 * newline or a ';' outside strings and comments; the split is taken only when the part before
 * it compiles on its own, so a statement continued on the next line (`x = a\n- b`) is never
 * cut. */

enum { SPLIT_MAX = 64 }; /* split points tried, from the end */

/* Index after the long bracket opening at code[i] ("[[", "[==["), or 0; *level its '='s. */
static size_t long_open(const char *code, size_t len, size_t i, size_t *level) {
    size_t j = i + 1, k = 0;
    while (j < len && code[j] == '=') j++, k++;
    if (j < len && code[j] == '[') {
        *level = k;
        return j + 1;
    }
    return 0;
}

/* Index after the long bracket closing "]=*]" of the given level from i (len if unclosed). */
static size_t long_close(const char *code, size_t len, size_t i, size_t level) {
    for (; i < len; i++) {
        if (code[i] != ']') continue;
        size_t j = i + 1, k = 0;
        while (j < len && code[j] == '=') j++, k++;
        if (k == level && j < len && code[j] == ']') return j + 1;
    }
    return len;
}

/* Index of the first byte of code at or after i that is not blank or in a comment. */
static size_t skip_blank(const char *code, size_t len, size_t i) {
    while (i < len) {
        char c = code[i];
        size_t level, after;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            i++;
        } else if (c == '-' && i + 1 < len && code[i + 1] == '-') {
            if (i + 2 < len && code[i + 2] == '[' && (after = long_open(code, len, i + 2, &level)))
                i = long_close(code, len, after, level);
            else
                while (i < len && code[i] != '\n') i++;
        } else {
            break;
        }
    }
    return i;
}

/* Fills at[] with the starts of possible statements (after '\n' or ';' outside strings and
 * comments), the last SPLIT_MAX of them, in order; returns how many. */
static size_t split_points(const char *code, size_t len, size_t *at) {
    size_t n = 0, total = 0;
    for (size_t i = 0; i < len;) {
        char c = code[i];
        size_t level, after;
        if (c == '-' && i + 1 < len && code[i + 1] == '-') {
            if (i + 2 < len && code[i + 2] == '[' && (after = long_open(code, len, i + 2, &level)))
                i = long_close(code, len, after, level);
            else
                while (i < len && code[i] != '\n') i++;
        } else if (c == '[' && (after = long_open(code, len, i, &level))) {
            i = long_close(code, len, after, level);
        } else if (c == '"' || c == '\'') {
            for (i++; i < len && code[i] != c && code[i] != '\n'; i++)
                if (code[i] == '\\' && i + 1 < len) i++;
            i++;
        } else {
            i++;
            if (c == '\n' || c == ';') at[total++ % SPLIT_MAX] = i, n++;
        }
    }
    if (n > SPLIT_MAX) { /* the ring holds the last SPLIT_MAX; put them in order */
        size_t tmp[SPLIT_MAX], first = total % SPLIT_MAX;
        for (size_t k = 0; k < SPLIT_MAX; k++) tmp[k] = at[(first + k) % SPLIT_MAX];
        memcpy(at, tmp, sizeof tmp);
        n = SPLIT_MAX;
    }
    return n;
}

/* Compiles the concatenation of up to three pieces; leaves the function or the error. */
static int load3(lua_State *L, const char *a, size_t na, const char *b, const char *c, size_t nc,
                 const char *d) {
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    luaL_addlstring(&buf, a, na);
    luaL_addstring(&buf, b);
    luaL_addlstring(&buf, c, nc);
    luaL_addstring(&buf, d);
    luaL_pushresult(&buf);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    int st = luaL_loadbuffer(L, s, n, "=input");
    lua_remove(L, -2);
    return st;
}

/* Tries "statements; return <last expression>". whole_ok: the chunk compiled as statements.
 * Pushes the function and returns 1, or pushes nothing and returns 0. */
static int load_with_last_expression(lua_State *L, const char *code, size_t len, int whole_ok) {
    size_t at[SPLIT_MAX];
    size_t n = split_points(code, len, at);
    for (size_t k = n; k-- > 0;) {
        size_t p = at[k], t = skip_blank(code, len, p);
        if (t >= len) continue;                 /* nothing but blanks and comments after p */
        if (whole_ok && code[t] == '(') continue; /* `a\n(f)(x)` is one call in Lua */
        const char *suffix = code + p;
        size_t ns = len - p;
        if (load3(L, "", 0, "return ", suffix, ns, "\n;") != LUA_OK) { /* not an expression */
            lua_pop(L, 1);
            continue;
        }
        lua_pop(L, 1);
        int ok = luaL_loadbuffer(L, code, p, "=input") == LUA_OK; /* the statements before */
        lua_pop(L, 1);
        if (ok && whole_ok) { /* and the last one is a statement of its own */
            ok = load3(L, code, p, ";", suffix, ns, "") == LUA_OK;
            lua_pop(L, 1);
        }
        if (!ok) continue;
        /* select(1, ...) passes every value on and keeps a last call from being a tail
         * call, so an error inside it still shows the caller's frame in the traceback. */
        if (load3(L, code, p, " return select(1, ", suffix, ns, "\n)") == LUA_OK) return 1;
        lua_pop(L, 1);
    }
    return 0;
}

/* Compiles a cell (see above): pushes the function and returns LUA_OK, or pushes the error
 * message of the chunk as statements and returns its status. */
static int load_cell(lua_State *L, const char *code, size_t len) {
    if (load3(L, "", 0, "return ", code, len, ";") == LUA_OK) return LUA_OK;
    lua_pop(L, 1);
    int st = luaL_loadbuffer(L, code, len, "=input");
    if (st != LUA_OK && st != LUA_ERRSYNTAX) return st;
    if (load_with_last_expression(L, code, len, st == LUA_OK)) {
        lua_remove(L, -2);
        return LUA_OK;
    }
    return st;
}

static char *dupstr(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* Protected renderer: the text rendering of every argument, tab-separated (render.h; a
 * __tostring may fail). */
static int render_values(lua_State *L) {
    int n = lua_gettop(L);
    if (!dsv3_render_push(L, 1, n, DSV3_RENDER_TEXT)) lua_pushliteral(L, "");
    return 1;
}

/* 1 if the values above base are all Lua files (what io.write returns): nothing to show. */
static int only_files(lua_State *L, int base) {
    int top = lua_gettop(L);
    for (int i = base + 1; i <= top; i++)
        if (!luaL_testudata(L, i, LUA_FILEHANDLE)) return 0;
    return top > base;
}

/* render_values, after keeping the values in the registry for dsv3_session_render. */
static int keep_and_render(lua_State *L) {
    if (lua_gettop(L) == 1 && dsv3_lua_was_shown(L, 1)) lua_settop(L, 0); /* shown already */
    int n = lua_gettop(L);
    lua_createtable(L, n, 1);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, i);
        lua_rawseti(L, -2, i);
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RESULTS_KEY);
    return render_values(L);
}

static void forget_results(lua_State *L) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RESULTS_KEY);
}

/* Calls the chunk at base + 1 with nargs arguments above it; keep = 1 keeps its values. */
static dsv3_exec_status call_chunk_keep(lua_State *L, int base, int nargs, int keep,
                                        char **result) {
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base + 1);
    int st = lua_pcall(L, nargs, LUA_MULTRET, base + 1);
    if (st == LUA_OK && only_files(L, base + 1)) lua_settop(L, base + 1);
    if (st == LUA_OK) {
        /* render the results, also protected: [msgh, results...] -> [msgh, text] */
        lua_pushcfunction(L, keep ? keep_and_render : render_values);
        lua_insert(L, base + 2);
        st = lua_pcall(L, lua_gettop(L) - base - 2, 1, base + 1);
    }
    lua_remove(L, base + 1);
    size_t n;
    const char *msg = lua_tolstring(L, -1, &n);
    *result = dupstr(msg ? msg : "(error)", msg ? n : 7);
    lua_settop(L, base);
    return st == LUA_OK ? DSV3_EXEC_OK : DSV3_EXEC_ERROR;
}

static dsv3_exec_status call_chunk(lua_State *L, int base, int nargs, char **result) {
    return call_chunk_keep(L, base, nargs, 0, result);
}

/* exec and eval: keep = 1 keeps the returned values for dsv3_session_render. */
static dsv3_exec_status exec_chunk(dsv3_session *s, const char *code, size_t len, int keep,
                                   char **result) {
    lua_State *L = s->L;
    const int base = lua_gettop(L);
    dsv3_lua_clear_shown(L);
    int st = load_cell(L, code, len);
    if (st != LUA_OK) {
        dsv3_exec_status es = incomplete(L, st) ? DSV3_EXEC_INCOMPLETE : DSV3_EXEC_ERROR;
        size_t n;
        const char *msg = lua_tolstring(L, -1, &n);
        *result = dupstr(msg ? msg : "", msg ? n : 0);
        lua_settop(L, base);
        return es;
    }
    return call_chunk_keep(L, base, 0, keep, result);
}

dsv3_exec_status dsv3_session_exec(dsv3_session *s, const char *code, size_t len, char **result) {
    return exec_chunk(s, code, len, 0, result);
}

dsv3_exec_status dsv3_session_eval(dsv3_session *s, const char *code, size_t len, char **result) {
    forget_results(s->L);
    dsv3_exec_status st = exec_chunk(s, code, len, 1, result);
    if (st != DSV3_EXEC_OK) forget_results(s->L);
    return st;
}

dsv3_exec_status dsv3_session_check(dsv3_session *s, const char *code, size_t len) {
    lua_State *L = s->L;
    const int base = lua_gettop(L);
    dsv3_lua_clear_shown(L);
    int st = load_cell(L, code, len);
    dsv3_exec_status es = st == LUA_OK ? DSV3_EXEC_OK
                          : incomplete(L, st) ? DSV3_EXEC_INCOMPLETE
                                              : DSV3_EXEC_ERROR;
    lua_settop(L, base);
    return es;
}

int dsv3_session_result_count(dsv3_session *s) {
    lua_State *L = s->L;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &RESULTS_KEY);
    int n = 0;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "n");
        n = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return n;
}

/* [form] -> [rendering] or [] (protected: a __tostring may raise). */
static int render_kept(lua_State *L) {
    dsv3_render_form form = (dsv3_render_form)lua_tointeger(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &RESULTS_KEY);
    if (!lua_istable(L, -1)) return 0;
    lua_getfield(L, -1, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n + 8, "too many results");
    int first = lua_gettop(L) + 1;
    for (int i = 1; i <= n; i++) lua_rawgeti(L, first - 1, i);
    return dsv3_render_push(L, first, n, form);
}

char *dsv3_session_render(dsv3_session *s, const char *mime) {
    lua_State *L = s->L;
    int form = dsv3_render_form_of(mime);
    if (form < 0 || dsv3_session_result_count(s) == 0) return NULL;
    const int base = lua_gettop(L);
    lua_pushcfunction(L, render_kept);
    lua_pushinteger(L, form);
    char *out = NULL;
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *str = lua_tolstring(L, -1, &n);
        out = dupstr(str, n);
    }
    lua_settop(L, base);
    return out;
}

dsv3_exec_status dsv3_session_run_file(dsv3_session *s, const char *path, int argc, char **argv,
                                       char **result) {
    lua_State *L = s->L;
    const int base = lua_gettop(L);
    lua_createtable(L, argc, 1);
    lua_pushstring(L, path);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    if (luaL_loadfile(L, path) != LUA_OK) {
        size_t n;
        const char *msg = lua_tolstring(L, -1, &n);
        *result = dupstr(msg ? msg : "", msg ? n : 0);
        lua_settop(L, base);
        return DSV3_EXEC_ERROR;
    }
    for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
    return call_chunk(L, base, argc, result);
}

/* ---------------------------------------------------------------- help ----------------- */

const char *dsv3_session_api_name(size_t i) {
    const dsv3_lua_fn *f = dsv3_lua_api_at(i);
    return f ? f->name : NULL;
}

const char *dsv3_session_language_version(void) {
    return LUA_VERSION_MAJOR "." LUA_VERSION_MINOR "." LUA_VERSION_RELEASE;
}

char *dsv3_session_help(dsv3_session *s, const char *name) {
    (void)s;
    return dsv3_lua_api_help(name);
}

static int is_ident(char c);

/* [name] -> [text] or []: the global at a path of identifiers, looked up with rawget only. */
static int describe_path(lua_State *L) {
    size_t n;
    const char *name = lua_tolstring(L, 1, &n);
    lua_pushglobaltable(L);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && name[j] != '.' && name[j] != ':') j++;
        if (lua_type(L, -1) != LUA_TTABLE) { /* a value with methods: look in its __index */
            if (!lua_getmetatable(L, -1)) return 0;
            lua_getfield(L, -1, "__index");
            if (lua_type(L, -1) != LUA_TTABLE) { /* an __index function: its methods' table */
                lua_pop(L, 1);
                lua_getfield(L, -1, "__methods");
            }
            if (lua_type(L, -1) != LUA_TTABLE) return 0;
        }
        lua_pushlstring(L, name + i, j - i);
        lua_rawget(L, -2);
        if (lua_isnil(L, -1)) return 0;
        i = j + 1;
    }
    int v = lua_gettop(L);
    const char *text = luaL_tolstring(L, v, NULL);
    lua_pushfstring(L, "%s: %s\n%s\n", name, luaL_typename(L, v), text);
    return 1;
}

static int is_path(const char *name) {
    if (!name || !*name) return 0;
    int want_ident = 1;
    for (const char *p = name; *p; p++) {
        if (*p == '.' || *p == ':') {
            if (want_ident) return 0;
            want_ident = 1;
        } else if (is_ident(*p) && !(want_ident && *p >= '0' && *p <= '9')) {
            want_ident = 0;
        } else {
            return 0;
        }
    }
    return !want_ident;
}

char *dsv3_session_describe(dsv3_session *s, const char *name) {
    if (!is_path(name)) return NULL;
    if (dsv3_lua_api_find(name)) return dsv3_session_help(s, name);
    static const struct {
        const char *name, *doc;
        int display; /* 1: defined with io.display, 0: with io.input */
    } host[] = {{"display", doc_display, 1}, {"progress", doc_progress, 1}, {"input", doc_input, 0}};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        if (!strcmp(host[i].name, name) && (host[i].display ? s->io.display != NULL : s->io.input != NULL))
            return strdup(host[i].doc);
    lua_State *L = s->L;
    const int base = lua_gettop(L);
    lua_pushcfunction(L, describe_path);
    lua_pushstring(L, name);
    char *out = NULL;
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *str = lua_tolstring(L, -1, &n);
        if (n > 4000) n = 4000; /* a huge table's rendering: the start is enough */
        out = dupstr(str, n);
    }
    lua_settop(L, base);
    return out;
}

/* ---------------------------------------------------------------- completion ----------- */

typedef struct {
    char **v;
    size_t n, cap;
} strvec;

static void push(strvec *sv, const char *s, size_t len) {
    for (size_t i = 0; i < sv->n; i++)
        if (strlen(sv->v[i]) == len && !memcmp(sv->v[i], s, len)) return;
    if (sv->n == sv->cap) {
        size_t nc = sv->cap ? sv->cap * 2 : 16;
        char **nv = realloc(sv->v, nc * sizeof *nv);
        if (!nv) return;
        sv->v = nv;
        sv->cap = nc;
    }
    char *d = dupstr(s, len);
    if (d) sv->v[sv->n++] = d;
}

static int cmpstr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_ident(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Adds the string keys of the table at the top of the stack (and of its __index table, for
 * dsv3 values with methods) that start with prefix. */
static void table_keys(lua_State *L, const char *prefix, size_t plen, const char *pre,
                       strvec *out) {
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (!lua_getmetatable(L, -1)) break;
            lua_getfield(L, -1, "__index");
            if (lua_type(L, -1) != LUA_TTABLE) { /* an __index function: its methods' table */
                lua_pop(L, 1);
                lua_getfield(L, -1, "__methods");
            }
            lua_remove(L, -2);
        }
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                if (lua_type(L, -2) == LUA_TSTRING) {
                    size_t kl;
                    const char *k = lua_tolstring(L, -2, &kl);
                    if (kl >= plen && !memcmp(k, prefix, plen) && (k[0] != '_' || plen)) {
                        char buf[512];
                        int n = snprintf(buf, sizeof buf, "%s%s", pre, k);
                        if (n > 0 && (size_t)n < sizeof buf) push(out, buf, (size_t)n);
                    }
                }
                lua_pop(L, 1);
            }
        }
        if (pass == 1) lua_pop(L, 1);
    }
}

/* File names in the directory part of `word` that start with its file part. */
static void path_matches(const char *word, size_t wlen, strvec *out) {
    char buf[4096];
    if (wlen >= sizeof buf) return;
    memcpy(buf, word, wlen);
    buf[wlen] = 0;
    char *slash = strrchr(buf, '/');
    const char *dir = ".", *base = buf;
    char dirbuf[4096];
    size_t dlen = 0;
    if (slash) {
        dlen = (size_t)(slash - buf) + 1;
        memcpy(dirbuf, buf, dlen);
        dirbuf[dlen] = 0;
        dir = dlen == 1 ? "/" : dirbuf;
        base = slash + 1;
    }
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    size_t blen = strlen(base);
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (strncmp(e->d_name, base, blen) || (e->d_name[0] == '.' && blen == 0)) continue;
        char full[8192];
        int isdir = e->d_type == DT_DIR;
        int n = snprintf(full, sizeof full, "%.*s%s%s", (int)dlen, buf, e->d_name, isdir ? "/" : "");
        if (n > 0 && (size_t)n < sizeof full) push(out, full, (size_t)n);
    }
    closedir(d);
}

size_t dsv3_session_complete(dsv3_session *s, const char *line, size_t cursor, size_t *start,
                             char ***matches) {
    lua_State *L = s->L;
    strvec out = {0};
    *matches = NULL;
    if (cursor > strlen(line)) cursor = strlen(line);
    /* Inside an unterminated string literal: complete a path. */
    char quote = 0;
    size_t qpos = 0;
    for (size_t i = 0; i < cursor; i++) {
        if (quote) {
            if (line[i] == '\\') i++;
            else if (line[i] == quote) quote = 0;
        } else if (line[i] == '"' || line[i] == '\'') {
            quote = line[i];
            qpos = i + 1;
        }
    }
    if (quote) {
        *start = qpos;
        path_matches(line + qpos, cursor - qpos, &out);
    } else {
        /* The expression before the cursor: a.b.c or a:b (identifiers joined by . or :). */
        size_t b = cursor;
        while (b > 0 && (is_ident(line[b - 1]) || line[b - 1] == '.' || line[b - 1] == ':')) b--;
        const char *expr = line + b;
        size_t elen = cursor - b;
        size_t last = elen;
        while (last > 0 && expr[last - 1] != '.' && expr[last - 1] != ':') last--;
        *start = b + last;
        const int top = lua_gettop(L);
        if (last == 0) {
            lua_pushglobaltable(L);
            table_keys(L, expr, elen, "", &out);
            static const char *const kw[] = {"and", "break", "do", "else", "elseif", "end",
                                             "false", "for", "function", "goto", "if", "in",
                                             "local", "nil", "not", "or", "repeat", "return",
                                             "then", "true", "until", "while", NULL};
            for (int i = 0; kw[i]; i++)
                if (!strncmp(kw[i], expr, elen)) push(&out, kw[i], strlen(kw[i]));
        } else {
            /* Walk the path without calling anything (rawget on tables only, then methods). */
            lua_pushglobaltable(L);
            size_t i = 0;
            int ok = 1;
            while (ok && i < last - 1) {
                size_t j = i;
                while (j < last - 1 && is_ident(expr[j])) j++;
                if (j == i) ok = 0;
                else if (lua_type(L, -1) == LUA_TTABLE) {
                    lua_pushlstring(L, expr + i, j - i);
                    lua_rawget(L, -2);
                    lua_remove(L, -2);
                } else {
                    ok = 0;
                }
                i = j + 1;
            }
            if (ok && lua_type(L, -1) != LUA_TNIL)
                table_keys(L, expr + last, elen - last, "", &out);
        }
        lua_settop(L, top);
    }
    if (out.n) qsort(out.v, out.n, sizeof *out.v, cmpstr);
    *matches = out.v;
    return out.n;
}

void dsv3_session_free_matches(char **matches, size_t n) {
    for (size_t i = 0; i < n; i++) free(matches[i]);
    free(matches);
}
