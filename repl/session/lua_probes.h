/* lua_probes.h — the probe API of a session as one binding module (repl/session/lua_probes.c):
 * route, bias, bias_set, bias_add, bias_reset, load_stats, effect, mtp_trace, capture, lens,
 * attn.
 *
 * Owns the probe values (routing records, tensors, loads, effects, MTP traces, lenses) and their
 * text and SVG renderings. The probe maths lives in probes/; the model and its loading in
 * lua_api.h. Thread rules: those of the lua_State.
 */
#ifndef DSV3_LUA_PROBES_H
#define DSV3_LUA_PROBES_H

#include "repl/session/luax.h"

/* The functions with their help text, in help() order; open registers the value metatables. */
extern const dsv3_lua_module dsv3_lua_probes_module;

#endif
