/* lua_train.h — hot-run training as one binding module (repl/session/lua_train.c): train,
 * train_eval, train_save, train_reset.
 *
 * Owns the session's trainer of the current model (model/train/trainer.h) and the run values
 * train{} returns with their renderings. GRPO is lua_grpo.h. Thread rules: those of the
 * lua_State.
 */
#ifndef DSV3_LUA_TRAIN_H
#define DSV3_LUA_TRAIN_H

#include "repl/session/luax.h"

/* The functions with their help text, in help() order; open registers the trainer and run
 * metatables. */
extern const dsv3_lua_module dsv3_lua_train_module;

#endif
