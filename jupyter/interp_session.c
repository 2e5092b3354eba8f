/* interp_session.c — the interpreter interface implemented by a dsv3 session (see
 * interp_session.h). Sections: session io callbacks → execute → complete, inspect,
 * is_complete, interrupt → lifetime.
 */
#define _GNU_SOURCE
#include "jupyter/interp_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl/session/session.h"

struct dsv3_jsession {
    dsv3_session *s;
    volatile int *flag;         /* the binary's interrupt flag */
    const dsv3_jpublisher *pub; /* the running execute's publisher, or NULL between cells */
    dsv3_jcapture *errout;      /* the process's stderr, held while a cell runs; or NULL */
    char version[32];           /* Lua version, "5.4.6" */
    char banner[256];
};

/* Forms asked of the session for an execute_result, in bundle order. */
static const char *const result_mimes[] = {"text/plain", "text/html", "image/svg+xml",
                                           "application/json"};

/* ---------------------------------------------------------------- session io ----------- */

/* Publishes what the process wrote to its stderr since the last call: before each output of
 * the cell, so that the stream keeps the order of the writes. */
static void flush_errout(dsv3_jsession *js) {
    char *bytes = NULL;
    size_t n = dsv3_jcapture_take(js->errout, &bytes);
    if (n && js->pub) js->pub->stream(js->pub->ud, "stderr", bytes, n);
    free(bytes);
}

static void io_write(void *ud, dsv3_stream st, const char *bytes, size_t len) {
    dsv3_jsession *js = ud;
    flush_errout(js);
    if (js->pub) js->pub->stream(js->pub->ud, st == DSV3_STDERR ? "stderr" : "stdout", bytes, len);
}

/* Adds mime → data to a bundle; application/json is embedded as a value, not a string. */
static void bundle_add(cJSON *data, const char *mime, const char *text, size_t len) {
    if (!strcmp(mime, "application/json")) {
        cJSON *v = cJSON_ParseWithLength(text, len);
        if (v && (cJSON_IsObject(v) || cJSON_IsArray(v)))
            cJSON_AddItemToObject(data, mime, v);
        else
            cJSON_Delete(v);
        return;
    }
    char *copy = strndup(text, len);
    if (copy) cJSON_AddStringToObject(data, mime, copy);
    free(copy);
}

static void io_display(void *ud, const dsv3_mime_bundle *b, const char *display_id, int update) {
    dsv3_jsession *js = ud;
    if (!js->pub) return;
    flush_errout(js);
    cJSON *data = cJSON_CreateObject();
    for (size_t i = 0; i < b->n; i++)
        bundle_add(data, b->mime[i], b->data[i], b->len[i]);
    js->pub->display(js->pub->ud, data, NULL, display_id, update);
}

static int io_input(void *ud, const char *prompt, int password, char **line) {
    dsv3_jsession *js = ud;
    *line = NULL;
    if (!js->pub) {
        *line = strdup("input: no front end is waiting for this cell");
        return 1;
    }
    dsv3_err err = {{0}};
    dsv3_status st = js->pub->input(js->pub->ud, prompt, password, line, &err);
    if (st == DSV3_OK) return 0;
    free(*line);
    *line = strdup(st == DSV3_EINTR ? "interrupted" : err.msg);
    return 1;
}

/* ---------------------------------------------------------------- execute -------------- */

/* Fills the error of out from the session's message: the first line is the value, the lines
 * of "stack traceback:" come first in the traceback and the coloured message last. */
static void set_error(dsv3_jexec_result *out, const char *ename, const char *msg) {
    const char *nl = strchr(msg, '\n');
    out->ok = 0;
    out->ename = strdup(ename);
    out->evalue = nl ? strndup(msg, (size_t)(nl - msg)) : strdup(msg);
    out->traceback = cJSON_CreateArray();
    for (const char *p = nl; p && *p;) {
        p++;
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *line = malloc(2 * n + 1);
        if (line) { /* Lua indents frames with a tab; notebooks show two spaces better */
            size_t o = 0;
            for (size_t i = 0; i < n; i++) {
                if (p[i] == '\t') line[o++] = ' ';
                line[o++] = p[i] == '\t' ? ' ' : p[i];
            }
            line[o] = 0;
            cJSON_AddItemToArray(out->traceback, cJSON_CreateString(line));
            free(line);
        }
        p = e;
    }
    char *last = NULL;
    if (asprintf(&last, "\x1b[0;31m%s\x1b[0m: %s", ename, out->evalue ? out->evalue : "") >= 0) {
        cJSON_AddItemToArray(out->traceback, cJSON_CreateString(last));
        free(last);
    }
}

static void execute(void *self, const char *code, size_t len, const dsv3_jexec_opts *opts,
                    const dsv3_jpublisher *pub, dsv3_jexec_result *out) {
    dsv3_jsession *js = self;
    *js->flag = 0;
    js->pub = pub;
    dsv3_jcapture_hold(js->errout, 1);
    char *res = NULL;
    dsv3_exec_status st = dsv3_session_eval(js->s, code, len, &res);
    int interrupted = *js->flag;
    if (st == DSV3_EXEC_OK && !interrupted) {
        out->ok = 1;
        if (!opts->silent && dsv3_session_result_count(js->s) > 0) {
            out->data = cJSON_CreateObject();
            for (size_t i = 0; i < sizeof result_mimes / sizeof result_mimes[0]; i++) {
                char *r = dsv3_session_render(js->s, result_mimes[i]);
                if (!r && i == 0) r = strdup(res ? res : "");
                if (r) bundle_add(out->data, result_mimes[i], r, strlen(r));
                free(r);
            }
        }
    } else if (interrupted) {
        set_error(out, "Interrupted", "interrupted by the user");
    } else {
        const char *msg = res ? res : "error";
        set_error(out,
                  st == DSV3_EXEC_ERROR && strstr(msg, "\nstack traceback:") ? "LuaError"
                                                                             : "SyntaxError",
                  msg);
    }
    flush_errout(js); /* before the result and the error, which the handlers publish */
    dsv3_jcapture_hold(js->errout, 0);
    *js->flag = 0;
    js->pub = NULL;
    free(res);
}

/* ---------------------------------------------------------------- complete / inspect --- */

static size_t complete(void *self, const char *code, size_t cursor, size_t *start,
                       char ***matches) {
    dsv3_jsession *js = self;
    return dsv3_session_complete(js->s, code, cursor, start, matches);
}

static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':';
}

/* The dotted name around the cursor ("string.format" in "x = string.for|mat(1)"). */
/* The name ending at code[end) ("gen", "r:heatmap"), as [*a, end); 0 when there is none. */
static int name_before(const char *code, size_t end, size_t *a) {
    size_t k = end;
    while (k > 0 && code[k - 1] == ' ')
        k--;
    end = k;
    while (k > 0 && name_char(code[k - 1]))
        k--;
    while (k < end && (code[k] == '.' || code[k] == ':'))
        k++;
    *a = k;
    return k < end;
}

/* The position of the '(' of the innermost call still open at cursor (strings skipped
 * roughly: quotes toggle), or (size_t)-1; *in_string: whether cursor is inside a string. */
static size_t open_call(const char *code, size_t cursor, int *in_string) {
    int depth = 0;
    char quote = 0;
    size_t stack[64];
    for (size_t i = 0; i < cursor && code[i]; i++) {
        const char c = code[i];
        if (quote) {
            if (c == '\\' && i + 1 < cursor) i++;
            else if (c == quote) quote = 0;
        } else if (c == '"' || c == '\'') quote = c;
        else if (c == '(' && depth < 64) stack[depth++] = i;
        else if (c == ')' && depth > 0) depth--;
    }
    *in_string = quote != 0;
    return depth > 0 ? stack[depth - 1] : (size_t)-1;
}

static char *inspect(void *self, const char *code, size_t cursor, int detail_level) {
    dsv3_jsession *js = self;
    (void)detail_level;
    size_t n = strlen(code), a = cursor > n ? n : cursor, b = a;
    while (a > 0 && name_char(code[a - 1]))
        a--;
    while (b < n && name_char(code[b]) && code[b] != '.' && code[b] != ':')
        b++;
    while (b > a && (code[b - 1] == '.' || code[b - 1] == ':'))
        b--;
    while (a < b && (code[a] == '.' || code[a] == ':'))
        a++;
    char *text = NULL;
    int in_string = 0;
    const size_t paren = open_call(code, cursor > n ? n : cursor, &in_string);
    if (a < b && !in_string) { /* a word inside a string literal is no name */
        char *name = strndup(code + a, b - a);
        if (!name) return NULL;
        text = dsv3_session_describe(js->s, name);
        free(name);
    }
    /* Shift-Tab inside a call's parentheses: the help of the function being called */
    if (!text && paren != (size_t)-1 && name_before(code, paren, &a)) {
        char *name = strndup(code + a, paren - a);
        if (name) {
            char *sp = strchr(name, ' ');
            if (sp) *sp = 0;
            text = dsv3_session_describe(js->s, name);
        }
        free(name);
    }
    return text;
}

static dsv3_jcode_state is_complete(void *self, const char *code, size_t len) {
    dsv3_jsession *js = self;
    switch (dsv3_session_check(js->s, code, len)) {
    case DSV3_EXEC_OK:
        return DSV3_JCODE_COMPLETE;
    case DSV3_EXEC_INCOMPLETE:
        return DSV3_JCODE_INCOMPLETE;
    default:
        return DSV3_JCODE_INVALID;
    }
}

static void interrupt(void *self) {
    dsv3_jsession *js = self;
    *js->flag = 1;
}

/* ---------------------------------------------------------------- lifetime ------------- */

dsv3_status dsv3_jsession_new(dsv3_jsession **out, dsv3_jinterp *interp, volatile int *flag,
                              dsv3_jcapture *errout, dsv3_err *err) {
    *out = NULL;
    dsv3_jsession *js = calloc(1, sizeof *js);
    if (!js) return dsv3_errf(err, DSV3_ENOMEM, "kernel: out of memory");
    js->flag = flag;
    js->errout = errout;
    dsv3_session_io io = {.write = io_write,
                          .ud = js,
                          .interrupt = (const volatile int *)flag,
                          .color = 0,
                          .interrupt_on_call = 1,
                          .display = io_display,
                          .input = io_input,
                          .capture_stdio = 1};
    dsv3_status st = dsv3_session_new(&js->s, &io, err);
    if (st) {
        free(js);
        return st;
    }
    snprintf(js->version, sizeof js->version, "%s", dsv3_session_language_version());
    snprintf(js->banner, sizeof js->banner,
             "dsv3 — a DeepSeek-V3 runtime you can look inside (Lua %s).\n"
             "load() the bundled demo model (or load \"DIR\"), then info(), logits(text), gen(prompt);\n"
             "help() lists the API.",
             js->version);
    *interp = (dsv3_jinterp){.self = js,
                             .execute = execute,
                             .complete = complete,
                             .inspect = inspect,
                             .is_complete = is_complete,
                             .interrupt = interrupt,
                             .language_version = js->version,
                             .banner = js->banner};
    *out = js;
    return DSV3_OK;
}

void dsv3_jsession_free(dsv3_jsession *js) {
    if (!js) return;
    dsv3_session_free(js->s);
    free(js);
}
