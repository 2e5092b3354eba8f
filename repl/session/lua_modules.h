/* lua_modules.h — the API table of a session: the binding modules it opens, in help() order, and
 * the lookups over all their functions (by name, by position, help text), plus help() itself.
 *
 * Owns the list and the order only: each module owns its functions and their help text
 * (luax.h's dsv3_lua_module). session.c opens the modules; nothing below it includes this
 * header. Adding a module: its file and header, and one line in the list. Thread rules: none
 * (the tables are constant).
 */
#ifndef DSV3_LUA_MODULES_H
#define DSV3_LUA_MODULES_H

#include <stddef.h>

#include "repl/session/luax.h"

/* The modules a session opens, NULL-terminated; help() lists their functions in this order. */
extern const dsv3_lua_module *const dsv3_lua_modules[];

/* The API function called name, or NULL (also for NULL). */
const dsv3_lua_fn *dsv3_lua_api_find(const char *name);
/* API function i (0-based) over all modules in order, or NULL past the end. */
const dsv3_lua_fn *dsv3_lua_api_at(size_t i);
/* Help text (malloc'd, caller frees; NULL only when out of memory): "signature\ndoc\n" for an
 * API name, the list of all signatures for NULL or "", and a message naming an unknown name. */
char *dsv3_lua_api_help(const char *name);

#endif
