/* session_internal.h — the session struct, for the files of repl/session/ only (front ends see
 * the opaque dsv3_session of session.h).
 *
 * session.c creates and frees it; the Lua helper library (luax.h) finds it from a lua_State, and
 * the binding modules read the host's io (interrupt flag, display) and the default seed. Nothing
 * else lives here: what the binding modules share is luax.h.
 */
#ifndef DSV3_SESSION_INTERNAL_H
#define DSV3_SESSION_INTERNAL_H

#include <lua.h>

#include "repl/session/session.h"

struct dsv3_session {
    lua_State *L;
    dsv3_session_io io;      /* the host's callbacks, copied at dsv3_session_new */
    unsigned long long seed; /* default RNG seed for gen(); seed() changes it */
    unsigned long long displays; /* display ids made up so far (dsv3_lua_display_id) */
    int show_ids;            /* token labels carry their ids ("␣world/704"); show_ids() sets it */
};

#endif
