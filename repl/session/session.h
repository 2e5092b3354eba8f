/* session.h — one interactive session: an embedded Lua 5.4 state, the loaded models, and the
 * last results. Both front ends (the terminal REPL and the Jupyter kernel) host it unchanged.
 *
 * A cell of a notebook and a line at the prompt are the same thing: a Lua chunk run by
 * dsv3_session_exec. The session never touches a terminal or a socket: it writes through the
 * io callbacks its host gives it, and it reads the host's interrupt flag. Errors in a chunk
 * (syntax, runtime, a bad checkpoint) come back as values; the session and its state survive.
 * Thread rules: one thread runs a session; only the interrupt flag may be set from elsewhere
 * (a signal handler or the kernel's control thread).
 */
#ifndef DSV3_SESSION_H
#define DSV3_SESSION_H

#include <stddef.h>

#include "model/base/status.h"

typedef struct dsv3_session dsv3_session;

typedef enum { DSV3_STDOUT = 1, DSV3_STDERR = 2 } dsv3_stream;

/* A value rendered in every form that fits it (repl/session/render.h): mime[0] is "text/plain" and
 * always present, then any of "text/html", "image/svg+xml", "application/json" (JSON text).
 * Strings are owned by the session and valid only during the callback given the bundle. */
#define DSV3_MIME_MAX 4
typedef struct {
    size_t n;                        /* forms present, 1..DSV3_MIME_MAX */
    const char *mime[DSV3_MIME_MAX]; /* MIME type of data[i] */
    const char *data[DSV3_MIME_MAX]; /* the rendering, NUL-terminated */
    size_t len[DSV3_MIME_MAX];       /* bytes of data[i] */
} dsv3_mime_bundle;

/* What the host provides. All fields may be zero/NULL. */
typedef struct {
    /* Streamed output: print(), generated tokens, progress. bytes are UTF-8, len may be 0. */
    void (*write)(void *ud, dsv3_stream stream, const char *bytes, size_t len);
    void *ud;
    /* The host's interrupt flag: while non-zero, running Lua code raises "interrupted" and a
     * running forward or generation stops at its next step. The host clears it. */
    const volatile int *interrupt;
    int color; /* 1: renderings may use ANSI colour */
    /* 1: a pending interrupt also raises "interrupted" at the next function call, so a loop
     * of gen() calls stops at once (the kernel). 0: only every 1000 Lua instructions, and a
     * running gen() still returns its partial result with .interrupted set. */
    int interrupt_on_call;
    /* Rich display (the Jupyter kernel). When set, the session defines the Lua functions
     * display(value [, {id=, update=}]) -> id and progress(done, total [, label]) -> value;
     * display renders value in every form that fits and calls this. display_id is never NULL
     * (given by the caller or made up, "dsv3-N"); update = 1 asks to replace the earlier
     * display with that id in place. */
    void (*display)(void *ud, const dsv3_mime_bundle *bundle, const char *display_id, int update);
    /* Reading a line (the Jupyter kernel's input_request). When set, the session defines the
     * Lua function input([prompt [, {password=}]]) -> string. Returns 0 and sets *line to a
     * malloc'd line without its newline, or non-zero and sets *line to a malloc'd message
     * (or NULL) that input() raises as a Lua error (no stdin, interrupted). */
    int (*input)(void *ud, const char *prompt, int password, char **line);
    /* 1: io.write() goes to write (stdout) and, with input set, io.read() reads lines ("l",
     * "L") and numbers ("n") through input: for hosts whose process stdin/stdout nobody sees
     * (the kernel). io.stdout / io.stdin file methods are left as they are. */
    int capture_stdio;
} dsv3_session_io;

dsv3_status dsv3_session_new(dsv3_session **out, const dsv3_session_io *io, dsv3_err *err);
void dsv3_session_free(dsv3_session *s);

typedef enum {
    DSV3_EXEC_OK = 0,      /* ran; *result holds the rendering of returned values ("" if none) */
    DSV3_EXEC_INCOMPLETE,  /* the chunk ends early (unfinished block or string): read more */
    DSV3_EXEC_ERROR,       /* syntax or runtime error; *result holds the message + traceback */
} dsv3_exec_status;

/* Runs a chunk of Lua. Like the standalone `lua`, "1+1" is first tried as an expression
 * (`return 1+1`) so its value is shown without print. Otherwise it runs as statements and, as
 * in IPython, when its last statement is an expression (`r = route(p)\nr`, `a = 1; a`, a
 * call) the values of that expression are returned; the statement before it must compile on
 * its own, so `x = a\n-b` stays one assignment. *result is malloc'd (caller frees); it is the
 * text rendering of the returned values, separated by tabs, or the error text. */
dsv3_exec_status dsv3_session_exec(dsv3_session *s, const char *code, size_t len, char **result);

/* Runs a chunk exactly as dsv3_session_exec does, and also keeps the values it returned (in
 * the Lua registry, so they stay alive) until the next dsv3_session_eval, for
 * dsv3_session_render. After DSV3_EXEC_ERROR or DSV3_EXEC_INCOMPLETE no value is kept.
 * dsv3_session_exec neither reads nor changes the kept values. */
dsv3_exec_status dsv3_session_eval(dsv3_session *s, const char *code, size_t len, char **result);

/* Number of values kept by the last dsv3_session_eval (0 before any, or after a failure). */
int dsv3_session_result_count(dsv3_session *s);

/* The kept values rendered as mime: "text/plain" (the same text as the result of
 * dsv3_session_eval), "text/html", "image/svg+xml" or "application/json" (JSON text), see
 * repl/session/render.h.
 * Returns a malloc'd string (caller frees), or NULL when no value is kept, the form does
 * not fit the values, mime is unknown or NULL, or rendering raised an error. */
char *dsv3_session_render(dsv3_session *s, const char *mime);

/* Compiles a chunk without running it, as dsv3_session_exec would (expression first).
 * Returns DSV3_EXEC_OK (it compiles), DSV3_EXEC_INCOMPLETE (it ends early: an unfinished
 * block, long string or comment) or DSV3_EXEC_ERROR (any other syntax error). */
dsv3_exec_status dsv3_session_check(dsv3_session *s, const char *code, size_t len);

/* What a name is, for a notebook's inspect: the help text of an API function (as
 * dsv3_session_help), the description of display/input/progress where the session defines
 * them, or for any other global path ("string.format", "m", "r.stats") its type and text
 * rendering. The path is looked up without calling anything (rawget). Returns a malloc'd
 * string, or NULL when the name is empty, not a path of identifiers, or not defined. */
char *dsv3_session_describe(dsv3_session *s, const char *name);

/* Runs a file with `arg` = {[0] = path, args...}. Returns DSV3_EXEC_OK or DSV3_EXEC_ERROR (then
 * *result is the message and traceback). */
dsv3_exec_status dsv3_session_run_file(dsv3_session *s, const char *path, int argc, char **argv,
                                       char **result);

/* Completion of `line` at byte `cursor`: global names and API functions, fields and methods
 * after `t.` / `t:` (tables and dsv3 values), and file paths inside a string literal.
 * *start is the byte offset where the completed word begins. Returns the number of matches
 * (sorted, malloc'd strings in a malloc'd array; free with dsv3_session_free_matches). */
size_t dsv3_session_complete(dsv3_session *s, const char *line, size_t cursor, size_t *start,
                             char ***matches);
void dsv3_session_free_matches(char **matches, size_t n);

/* Help text for an API name ("gen"), or the list of all names for NULL/"". Never NULL; the
 * caller frees it. Unknown names give a message saying so. */
char *dsv3_session_help(dsv3_session *s, const char *name);

/* Name of API function i (0-based), NULL past the end; for front ends. */
const char *dsv3_session_api_name(size_t i);

/* The version of the session's language ("5.4.4"): what a Jupyter kernel reports as its
 * language_info, without front ends including Lua's headers. */
const char *dsv3_session_language_version(void);

#endif
