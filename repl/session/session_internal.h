/* session_internal.h — the session struct and the pieces its Lua modules share. repl/ only. */
#ifndef DSV3_SESSION_INTERNAL_H
#define DSV3_SESSION_INTERNAL_H

#include <lua.h>
#include <stdint.h>

#include "model/base/strbuf.h"
#include "model/base/status.h"
#include "repl/session/session.h"

/* One documented API function. */
typedef struct {
    const char *name;      /* Lua global */
    lua_CFunction fn;
    const char *signature; /* e.g. "gen(prompt [, opts]) -> result" */
    const char *doc;       /* what it does, options, returns */
} dsv3_api_entry;

struct dsv3_session {
    lua_State *L;
    dsv3_session_io io;
    unsigned long long seed; /* default RNG seed for gen(); seed() changes it */
};

/* The API table of lua_api.c (NULL-terminated by name). */
extern const dsv3_api_entry dsv3_api[];

/* Registers the model API (load, info, gen, ...) as globals and the value metatables. */
void dsv3_lua_open_api(lua_State *L, dsv3_session *s);

/* The session owning L (kept in the registry). */
dsv3_session *dsv3_session_of(lua_State *L);

/* Writes to the host's output (no-op without a write callback). */
void dsv3_session_write(dsv3_session *s, dsv3_stream st, const char *bytes, size_t len);

/* Raises a Lua error with the text of err (the one place a status becomes a Lua error). */
int dsv3_lua_error(lua_State *L, const dsv3_err *err);

/* ---- shared by the binding files (lua_api.c, lua_probes.c) ---- */

struct dsv3_model;
struct dsv3_tokenizer;

/* A loaded model as Lua sees it (userdata "dsv3.model"). */
typedef struct {
    struct dsv3_model *m;
    struct dsv3_tokenizer *tok; /* NULL when the directory has no tokenizer.json */
} lmodel;

/* The model at stack index idx if it is one, else the current model; raises if none. */
lmodel *dsv3_lua_model_arg(lua_State *L, int idx);
/* Zeroed memory owned by a userdata pushed on the stack (freed by the GC, so an error raised
 * later cannot leak it). */
void *dsv3_lua_alloc(lua_State *L, size_t bytes);
/* Token ids of a string (tokenized, BOS per the tokenizer config when add_bos) or a table of
 * ids at idx, in memory owned by a userdata pushed on the stack (see dsv3_lua_alloc); *n ids.
 * Raises on bad input. */
int32_t *dsv3_lua_ids_arg(lua_State *L, int idx, lmodel *lm, size_t *n, int add_bos);
/* Options table readers (t = stack index of the table, may be none/nil). */
int dsv3_lua_opt_bool(lua_State *L, int t, const char *k, int def);
lua_Number dsv3_lua_opt_num(lua_State *L, int t, const char *k, lua_Number def);
const char *dsv3_lua_opt_str(lua_State *L, int t, const char *k);
/* Pushes a "dsv3.tokens" table of ids (with .pieces when the model has a tokenizer). */
void dsv3_lua_push_tokens(lua_State *L, lmodel *lm, const int32_t *ids, size_t n);
/* t[k] = v on the table at the top of the stack. */
void dsv3_lua_setint(lua_State *L, const char *k, long long v);

/* Probe bindings (lua_probes.c), listed in dsv3_api. */
int dsv3_lua_route(lua_State *L);
int dsv3_lua_bias(lua_State *L);
int dsv3_lua_bias_set(lua_State *L);
int dsv3_lua_bias_add(lua_State *L);
int dsv3_lua_bias_reset(lua_State *L);
int dsv3_lua_load_stats(lua_State *L);
int dsv3_lua_effect(lua_State *L);
int dsv3_lua_mtp_trace(lua_State *L);
int dsv3_lua_capture(lua_State *L);
int dsv3_lua_lens(lua_State *L);
int dsv3_lua_attn(lua_State *L);
/* Training bindings (lua_train.c). */
int dsv3_lua_train(lua_State *L);
int dsv3_lua_train_eval(lua_State *L);
int dsv3_lua_train_save(lua_State *L);
int dsv3_lua_train_reset(lua_State *L);
void dsv3_lua_open_train(lua_State *L);
/* GRPO bindings (lua_grpo.c). */
int dsv3_lua_grpo(lua_State *L);
int dsv3_lua_grpo_save(lua_State *L);
int dsv3_lua_grpo_reset(lua_State *L);
void dsv3_lua_open_grpo(lua_State *L);
/* Registers the probe value metatables. */
void dsv3_lua_open_probes(lua_State *L);

/* Renderers that also use the Lua stack (luaL_Buffer forbids that) build text in a dsv3_strbuf
 * (model/base/strbuf.h). Adds tostring of the value on top of the stack and pops it: */
void dsv3_sbuf_addtop(lua_State *L, dsv3_strbuf *b);
/* Pushes the string built so far (freeing the buffer); returns 1. */
int dsv3_sbuf_push(lua_State *L, dsv3_strbuf *b);

/* 1 if the host's interrupt flag is set. */
int dsv3_session_interrupted(const dsv3_session *s);

#endif
