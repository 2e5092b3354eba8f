/* lua_pipeline.h — the pipeline-schedule binding of a session: schedule{...} (repl/session/lua_pipeline.c).
 *
 * One API function, in the module dsv3_lua_pipeline_module, and the metatable of its values.
 * The value is built by model/train/pipeline.h and rendered by probes/render/pipeline.h; nothing
 * here prints or touches a model. Thread rules: those of the lua_State.
 */
#ifndef DSV3_LUA_PIPELINE_H
#define DSV3_LUA_PIPELINE_H

#include <lua.h>

#include "repl/session/luax.h"

/* schedule{pp=, micro=, f=1, b=1, w=1, a=0, fb=, method="all", color=false} -> schedule
 * Builds and simulates the 1F1B, ZB1P and DualPipe schedules (or the one named by method) and
 * returns a "dsv3.schedule" userdata: tostring gives the bubble table and the text timelines
 * (ANSI colours when color=true), __svg the SVG; methods rows() (per method: method, bubble,
 * formula, formula_text, makespan, peak_act, param_copies, ranks = {{busy, bubble, peak_act,
 * param_copies}, ...}), ops([method]) ({rank, kind, mb, dir, stage, start, finish, pair}, pair
 * 1-based or nil), json(), svg(), timeline([unit [, color]]). With method="all" a method whose
 * constraints the options break (DualPipe: even pp, even micro >= 2*pp) is left out and named
 * in a note at the end of tostring. Bad options raise the library's message. */
int dsv3_lua_schedule(lua_State *L);

/* Registers the "dsv3.schedule" metatable (dsv3_lua_schedule also does it on first use). */
void dsv3_lua_open_pipeline(lua_State *L);

/* schedule with its help text; open is dsv3_lua_open_pipeline. */
extern const dsv3_lua_module dsv3_lua_pipeline_module;

#endif
