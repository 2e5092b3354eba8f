/* session_internal.h — the session struct and the pieces its Lua modules share. repl/ only. */
#ifndef DSV3_SESSION_INTERNAL_H
#define DSV3_SESSION_INTERNAL_H

#include <lua.h>

#include "model/status.h"
#include "repl/session.h"

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

/* 1 if the host's interrupt flag is set. */
int dsv3_session_interrupted(const dsv3_session *s);

#endif
