/* render.h — renderers: pure functions from Lua values to strings, one per form.
 *
 * Four forms, named by MIME type: "text/plain" (what the REPL prints: tostring of each value,
 * tab-separated), "text/html" (tables for model info, logits and top-k tables, tokens,
 * generation stats, progress, records and arrays of records), "image/svg+xml" and
 * "application/json" (plain tables, info, tokens, generation results). Other modules' values
 * join in through metamethods, without touching this file: __html, __svg and __json, each
 * called with the value and returning the rendering as a string ("" or nil: does not fit);
 * probe values (lua_probes.c) have __svg. Renderers do no I/O, reach no model, give the same
 * output for the same input, and escape in exactly one place (add_escaped in render.c): HTML
 * text and JSON strings both go through it, invalid UTF-8 becoming U+FFFD. The session
 * (session.c) calls them for dsv3_session_render and Lua's display(); front ends reach them
 * through the session. Thread rules: those of the lua_State.
 */
#ifndef DSV3_RENDER_H
#define DSV3_RENDER_H

#include <lua.h>

typedef enum {
    DSV3_RENDER_TEXT = 0, /* "text/plain": always fits */
    DSV3_RENDER_HTML,     /* "text/html": an HTML fragment, for the values listed above */
    DSV3_RENDER_SVG,      /* "image/svg+xml": an SVG document, from a __svg metamethod */
    DSV3_RENDER_JSON,     /* "application/json": JSON text of an object or array */
    DSV3_RENDER_FORMS     /* number of forms */
} dsv3_render_form;

/* MIME type of a form ("text/plain", ...); NULL for a value out of range. */
const char *dsv3_render_mime(dsv3_render_form form);

/* The form named by mime, or -1 when mime is NULL or not one of the four. */
int dsv3_render_form_of(const char *mime);

/* Renders the n values at stack slots first .. first+n-1 of L in the given form. Pushes the
 * string and returns 1, or pushes nothing and returns 0 when the form does not fit: HTML, SVG
 * and JSON fit exactly one value of a kind listed above or with the metamethod (scalars,
 * functions, cyclic or deeper than 32 levels, and tables with keys other than strings and
 * integers give 0; a metamethod's result is passed on unchecked). Text always fits;
 * n = 0 gives "". May raise a Lua error (a failing __tostring, out of memory): call it from a
 * protected call. The stack is otherwise unchanged. */
int dsv3_render_push(lua_State *L, int first, int n, dsv3_render_form form);

/* Metatable name of the values made by progress(done, total [, label]) (session.c); their
 * text is a bar "[#####-----] 5/10 label" and their HTML a <progress> element. */
#define DSV3_RENDER_MT_PROGRESS "dsv3.progress"

#endif
