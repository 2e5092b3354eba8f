/* interp.h — what the Jupyter kernel asks of a language: the interpreter interface.
 *
 * As in xeus, the interpreter knows requests only as values: execute, complete, inspect,
 * is_complete and interrupt. It talks back only through a publisher (stream output, rich
 * displays, reading a line) and through the result it returns; it never sees a socket, a
 * signature or a header. jupyter/interp_session.c implements it over a dsv3_session; the wire
 * tests (tests/test_wire.c) implement a mock. Offsets here are in bytes of UTF-8; the handlers
 * convert Jupyter's code-point positions.
 * Thread rules: every call but interrupt comes from one thread (the shell thread); interrupt
 * may come from any thread or a signal handler's flag.
 */
#ifndef DSV3_JUPYTER_INTERP_H
#define DSV3_JUPYTER_INTERP_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "model/base/status.h"

/* What an interpreter may publish while it executes a request. */
typedef struct {
    void *ud;
    /* Text for stream name "stdout" or "stderr", as it is produced (the server coalesces). */
    void (*stream)(void *ud, const char *name, const char *text, size_t len);
    /* A display_data (update = 0) or update_display_data (update = 1) with the MIME bundle
     * data and its metadata (may be NULL); display_id may be NULL when update = 0. The callee
     * takes ownership of data and metadata. */
    void (*display)(void *ud, cJSON *data, cJSON *metadata, const char *display_id, int update);
    /* Asks the user for a line (input_request on stdin). Returns DSV3_OK with *value malloc'd,
     * DSV3_EUNSUPPORTED when the request did not allow stdin, DSV3_EINTR when interrupted,
     * DSV3_EPROTO when the kernel stops; err says why. */
    dsv3_status (*input)(void *ud, const char *prompt, int password, char **value, dsv3_err *err);
} dsv3_jpublisher;

/* Options of one execute_request. */
typedef struct {
    int silent;           /* publish nothing; no execute_result */
    int store_history;    /* counts for execution_count / history */
    int allow_stdin;      /* input may ask the front end */
    long execution_count; /* the count this request reports */
} dsv3_jexec_opts;

/* Outcome of one execution. The handlers free it with dsv3_jexec_result_fini. */
typedef struct {
    int ok;           /* 1: ran; 0: error (ename, evalue, traceback set) */
    cJSON *data;      /* execute_result MIME bundle, or NULL when nothing was returned */
    cJSON *metadata;  /* its metadata object, or NULL */
    char *ename;      /* error class, e.g. "LuaError", "SyntaxError", "Interrupted" */
    char *evalue;     /* the message */
    cJSON *traceback; /* array of strings, the human message last */
} dsv3_jexec_result;

void dsv3_jexec_result_fini(dsv3_jexec_result *r);

/* is_complete answers. */
typedef enum { DSV3_JCODE_COMPLETE, DSV3_JCODE_INCOMPLETE, DSV3_JCODE_INVALID } dsv3_jcode_state;

typedef struct {
    void *self;
    /* Runs code; *out is zeroed by the caller first. */
    void (*execute)(void *self, const char *code, size_t len, const dsv3_jexec_opts *opts,
                    const dsv3_jpublisher *pub, dsv3_jexec_result *out);
    /* Completions of code at byte cursor: a malloc'd array of n malloc'd strings, each
     * replacing code[*start, cursor). Returns n. */
    size_t (*complete)(void *self, const char *code, size_t cursor, size_t *start, char ***matches);
    /* Help for the name around byte cursor, malloc'd text; NULL when nothing is found. */
    char *(*inspect)(void *self, const char *code, size_t cursor, int detail_level);
    dsv3_jcode_state (*is_complete)(void *self, const char *code, size_t len);
    /* Asks a running execute to stop soon; safe from any thread. */
    void (*interrupt)(void *self);
    const char *language_version; /* e.g. "5.4.6" */
    const char *banner;           /* kernel_info banner */
} dsv3_jinterp;

#endif
