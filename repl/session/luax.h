/* luax.h — the Lua helper library of a session's binding modules, and the shape of a module.
 *
 * Owns what every binding file (lua_api.c, lua_probes.c, lua_train.c, lua_grpo.c,
 * lua_pipeline.c) needs and none of them should repeat: finding the session of a lua_State,
 * turning a dsv3_err into a Lua error, the current model and its tokenizer, token-id arguments,
 * options tables, memory the GC owns, and small push/set helpers. It defines no Lua function and
 * knows no module: it sits at the bottom of repl/session/ and calls nothing above it. Like
 * lauxlib, helpers that check arguments raise Lua errors (they do not return on failure).
 * Thread rules: those of the lua_State.
 *
 * A binding module is one file that exports one const dsv3_lua_module: its Lua functions with
 * their help text, and an open hook for its metatables. lua_modules.h lists the modules a
 * session opens; adding a Lua function edits only its module's table.
 */
#ifndef DSV3_LUAX_H
#define DSV3_LUAX_H

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>

#include "model/base/status.h"
#include "model/base/strbuf.h"
#include "repl/session/session_internal.h"

/* ---------------------------------------------------------------- modules -------------- */

/* One documented Lua function. */
typedef struct {
    const char *name;      /* Lua global */
    lua_CFunction fn;
    const char *signature; /* e.g. "gen(prompt [, opts]) -> result" */
    const char *doc;       /* what it does, options, returns */
} dsv3_lua_fn;

/* What one binding file adds to a session. */
typedef struct {
    const char *name;           /* "model", "probes", ...: for readers and tests */
    void (*open)(lua_State *L); /* metatables and registry state, or NULL; every module's open
                                 * runs before any module's functions are registered */
    const dsv3_lua_fn *fns;     /* ends with a NULL name; help() lists them in this order */
} dsv3_lua_module;

/* ---------------------------------------------------------------- the session ---------- */

/* Makes s the session of L (session.c, once, when it creates the state). */
void dsv3_lua_bind_session(lua_State *L, dsv3_session *s);
/* The session owning L (NULL before dsv3_lua_bind_session). */
dsv3_session *dsv3_session_of(lua_State *L);
/* Writes to the host's output (no-op without a write callback or for len 0). */
void dsv3_session_write(dsv3_session *s, dsv3_stream st, const char *bytes, size_t len);
/* 1 if the host's interrupt flag is set. */
int dsv3_session_interrupted(const dsv3_session *s);

/* Raises a Lua error with the text of err (the one place a status becomes a Lua error). */
int dsv3_lua_error(lua_State *L, const dsv3_err *err);

/* ---------------------------------------------------------------- models --------------- */

struct dsv3_model;
struct dsv3_tokenizer;

/* The metatable of a loaded model; lua_api.c registers it and creates the values. */
#define DSV3_LUA_MT_MODEL "dsv3.model"

/* The registry's list of loaded models: weak values (the session does not keep a model alive),
 * in load order, with holes where a model was collected; field n is the highest index used. */
#define DSV3_LUA_REG_MODELS "dsv3.models"

/* A loaded model as Lua sees it (userdata DSV3_LUA_MT_MODEL). */
typedef struct {
    struct dsv3_model *m;       /* NULL once closed */
    struct dsv3_tokenizer *tok; /* NULL when the directory has no tokenizer.json */
    int users;                  /* trainer and GRPO runs computing with it: close() refuses */
} lmodel;

/* The model at stack index idx; raises if it is not one or is closed. */
lmodel *dsv3_lua_check_model(lua_State *L, int idx);
/* The model at stack index idx if it is one, else the current model; raises if none. */
lmodel *dsv3_lua_model_arg(lua_State *L, int idx);
/* Pushes the userdata of the loaded, open model lm (to keep it alive, e.g. as a uservalue);
 * raises "model is closed" if it is not in the session's list. */
void dsv3_lua_push_model(lua_State *L, const lmodel *lm);
/* The model's tokenizer; raises "DIR has no tokenizer.json: pass token ids ..." without one. */
struct dsv3_tokenizer *dsv3_lua_tokenizer(lua_State *L, lmodel *lm);

/* Pushes the label of token id as tables and figures show it: the tokenizer's readable label
 * (dsv3_tokenizer_label: "␣world", "↵", "<bos>"), followed by "/id" when the session shows ids
 * (show_ids(true)); "#id" without a tokenizer. */
void dsv3_lua_push_label(lua_State *L, const lmodel *lm, int32_t id);

/* The same as a malloc'd string (NULL when out of memory). */
char *dsv3_lua_label(lua_State *L, const lmodel *lm, int32_t id);

/* ---------------------------------------------------------------- arguments ------------ */

/* Zeroed memory owned by a userdata pushed on the stack (freed by the GC, so an error raised
 * later cannot leak it). */
void *dsv3_lua_alloc(lua_State *L, size_t bytes);
/* Moves n malloc'd ids (from the tokenizer) into memory the GC owns (pushed as by
 * dsv3_lua_alloc) and frees ids. */
int32_t *dsv3_lua_own_ids(lua_State *L, int32_t *ids, size_t n);
/* Token ids of a string (tokenized, BOS per the tokenizer config when add_bos) or a table of
 * ids at idx, in memory owned by a userdata pushed on the stack (see dsv3_lua_alloc); *n ids.
 * Raises on bad input. */
int32_t *dsv3_lua_ids_arg(lua_State *L, int idx, lmodel *lm, size_t *n, int add_bos);
/* Options table readers (t = stack index of the table, may be none/nil: then def / NULL).
 * k is the option's name, or "name|alias..." for an option also known by older names
 * ("max_tokens|n"): the first name set is read, and two set at once raise. Raise when the
 * option has the wrong type. */
int dsv3_lua_opt_bool(lua_State *L, int t, const char *k, int def);
lua_Number dsv3_lua_opt_num(lua_State *L, int t, const char *k, lua_Number def);
const char *dsv3_lua_opt_str(lua_State *L, int t, const char *k);
/* Raises "fname: unknown option 'k' (valid: a, b (or c), ...)" when the options table at t
 * (none/nil: nothing to check) has a key that is none of valid's names (NULL-terminated, each
 * "name" or "name|alias..."), or a key that is not a string. */
void dsv3_lua_check_opts(lua_State *L, int t, const char *fname, const char *const *valid);

/* ---------------------------------------------------------------- values --------------- */

/* t[k] = v on the table at the top of the stack. */
void dsv3_lua_setint(lua_State *L, const char *k, long long v);
void dsv3_lua_setnum(lua_State *L, const char *k, double v);
/* Registers metatable name with the functions meta and, when methods is not NULL, an __index
 * table of methods. Leaves the stack as it was. */
void dsv3_lua_newmt(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);

/* Figures: a value {svg = SOURCE, title = TEXT} (metatable DSV3_LUA_MT_FIGURE, made on first
 * use here: luax's one value type) that notebooks show as the picture (__svg, and text/html
 * with the SVG inline), the REPL as one line naming it, and fig:save(path) writes to a file.
 * Pushes a new figure of the SVG text svg. */
/* Pushes a display id no other display of this process or of an earlier kernel has had:
 * "dsv3-PID-N" (N counts up for the session), prefix "dsv3-grpo-..." etc. when given. */
const char *dsv3_lua_display_id(lua_State *L, const char *what);

/* Marks the value at idx as shown by display() during the running chunk: a chunk whose only
 * value is one shown this way (display's id, a train{} or grpo{} run whose chart was live)
 * does not show it again as its result. The set is emptied when a chunk starts. */
void dsv3_lua_mark_shown(lua_State *L, int idx);
/* 1 if the value at idx was marked during the running chunk. */
int dsv3_lua_was_shown(lua_State *L, int idx);
/* Empties the set (the session, before each chunk). */
void dsv3_lua_clear_shown(lua_State *L);

#define DSV3_LUA_MT_FIGURE "dsv3.figure"
void dsv3_lua_push_figure(lua_State *L, const char *svg, const char *title);

/* Renderers that also use the Lua stack (luaL_Buffer forbids that) build text in a dsv3_strbuf
 * (model/base/strbuf.h). Adds tostring of the value on top of the stack and pops it: */
void dsv3_sbuf_addtop(lua_State *L, dsv3_strbuf *b);
/* Pushes the string built so far (freeing the buffer); returns 1. */
int dsv3_sbuf_push(lua_State *L, dsv3_strbuf *b);

#endif
