/* lua_grpo.h — GRPO as one binding module (repl/session/lua_grpo.c): grpo, grpo_save,
 * grpo_reset.
 *
 * Owns the session's GRPO run of the current model (model/train/grpo.h), the Lua reward
 * callbacks and the run values grpo{} returns with their renderings. Thread rules: those of the
 * lua_State.
 */
#ifndef DSV3_LUA_GRPO_H
#define DSV3_LUA_GRPO_H

#include "repl/session/luax.h"

/* The functions with their help text, in help() order; open registers the GRPO and run
 * metatables. */
extern const dsv3_lua_module dsv3_lua_grpo_module;

#endif
