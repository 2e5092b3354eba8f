/* lua_api.h — the model API of a session as one binding module (repl/session/lua_api.c): load,
 * models, use, info, tokenize, detokenize, logits, gen, fim, chat, chat_reset, chat_history,
 * seed, backend.
 *
 * Owns the loaded models ("dsv3.model" values, the current one, the list models() returns), the
 * conversation chat() keeps, and the values these functions return (logits, info, tokens,
 * generation results) with their text renderings. It does not own help() (lua_modules.c), the
 * probes, training or schedules (their own modules). Thread rules: those of the lua_State.
 */
#ifndef DSV3_LUA_API_H
#define DSV3_LUA_API_H

#include "repl/session/luax.h"

/* The functions with their help text, in help() order; open registers the value metatables,
 * the registry's model list and conversation, and keeps Lua's own load() as lua_load. */
extern const dsv3_lua_module dsv3_lua_api_module;

#endif
