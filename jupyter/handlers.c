/* handlers.c — the msg_type → handler table and the handlers (see handlers.h).
 *
 * Each handler reads its request's content with defaults for missing or mistyped fields,
 * calls the interpreter, and sends exactly one reply (or none, for comm messages). Sections:
 * content helpers → execute → completion and inspection → history and comms → kernel_info,
 * shutdown, interrupt → the table and dispatch.
 */
#define _GNU_SOURCE
#include "jupyter/handlers.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long count; /* execution_count of the entry */
    char *code;
} history_entry;

struct dsv3_jkernel {
    dsv3_jinterp interp;
    dsv3_jtransport t;
    long execution_count;   /* executes with store_history so far; shell thread only */
    history_entry *history; /* shell thread only */
    size_t n_history, cap_history;
};

dsv3_status dsv3_jkernel_new(dsv3_jkernel **out, const dsv3_jinterp *interp,
                             const dsv3_jtransport *transport, dsv3_err *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return dsv3_errf(err, DSV3_ENOMEM, "handlers: out of memory");
    (*out)->interp = *interp;
    (*out)->t = *transport;
    return DSV3_OK;
}

void dsv3_jkernel_free(dsv3_jkernel *k) {
    if (!k) return;
    for (size_t i = 0; i < k->n_history; i++)
        free(k->history[i].code);
    free(k->history);
    free(k);
}

long dsv3_jkernel_execution_count(const dsv3_jkernel *k) {
    return k->execution_count;
}

void dsv3_jexec_result_fini(dsv3_jexec_result *r) {
    if (!r) return;
    cJSON_Delete(r->data);
    cJSON_Delete(r->metadata);
    free(r->ename);
    free(r->evalue);
    cJSON_Delete(r->traceback);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- content helpers ------ */

static const char *get_str(const cJSON *c, const char *k, const char *def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
    return cJSON_IsString(v) ? v->valuestring : def;
}

static int get_bool(const cJSON *c, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static long get_int(const cJSON *c, const char *k, long def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
    if (!cJSON_IsNumber(v) || v->valuedouble != v->valuedouble) return def;
    if (v->valuedouble > 1e15) return (long)1e15;
    if (v->valuedouble < -1e15) return (long)-1e15;
    return (long)v->valuedouble;
}

static cJSON *reply_ok(void) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "status", "ok");
    return c;
}

/* ---------------------------------------------------------------- execute -------------- */

/* The publisher given to the interpreter for one execute_request. */
typedef struct {
    dsv3_jkernel *k;
    const dsv3_wire_msg *req;
    int silent, allow_stdin;
} exec_ctx;

static void pub_stream(void *ud, const char *name, const char *text, size_t len) {
    exec_ctx *x = ud;
    if (!x->silent && len) x->k->t.stream(x->k->t.ud, x->req, name, text, len);
}

static void pub_display(void *ud, cJSON *data, cJSON *metadata, const char *display_id,
                        int update) {
    exec_ctx *x = ud;
    if (x->silent || (update && !display_id)) {
        cJSON_Delete(data);
        cJSON_Delete(metadata);
        return;
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "data", data ? data : cJSON_CreateObject());
    cJSON_AddItemToObject(c, "metadata", metadata ? metadata : cJSON_CreateObject());
    cJSON *tr = cJSON_AddObjectToObject(c, "transient");
    if (display_id) cJSON_AddStringToObject(tr, "display_id", display_id);
    x->k->t.send(x->k->t.ud, DSV3_JCH_IOPUB, x->req,
                 update ? "update_display_data" : "display_data", c, NULL);
}

static dsv3_status pub_input(void *ud, const char *prompt, int password, char **value,
                             dsv3_err *err) {
    exec_ctx *x = ud;
    *value = NULL;
    if (!x->allow_stdin)
        return dsv3_errf(err, DSV3_EUNSUPPORTED,
                         "input: this front end does not take input (allow_stdin is false)");
    return x->k->t.input(x->k->t.ud, x->req, prompt ? prompt : "", password, value, err);
}

static void add_history(dsv3_jkernel *k, long count, const char *code) {
    if (k->n_history == k->cap_history) {
        size_t nc = k->cap_history ? 2 * k->cap_history : 64;
        history_entry *nh = realloc(k->history, nc * sizeof *nh);
        if (!nh) return;
        k->history = nh;
        k->cap_history = nc;
    }
    char *c = strdup(code);
    if (c) k->history[k->n_history++] = (history_entry){count, c};
}

/* An execute_request without a string `code`: nothing runs, the count stays, and the reply
 * (and, unless silent, an iopub error) names the field. */
static dsv3_jh_result bad_execute(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req,
                                  const cJSON *code) {
    char evalue[160];
    snprintf(evalue, sizeof evalue, "execute_request: content.code is %s (expected a string)",
             !code ? "missing" : cJSON_IsNumber(code) ? "a number" : cJSON_IsNull(code) ? "null"
             : cJSON_IsBool(code) ? "a boolean" : cJSON_IsArray(code) ? "an array" : "an object");
    if (!get_bool(req->content, "silent", 0)) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "ename", "BadRequest");
        cJSON_AddStringToObject(e, "evalue", evalue);
        cJSON_AddItemToObject(e, "traceback",
                              cJSON_CreateStringArray((const char *const[]){evalue}, 1));
        k->t.send(k->t.ud, DSV3_JCH_IOPUB, req, "error", e, NULL);
    }
    cJSON *reply = cJSON_CreateObject();
    cJSON_AddStringToObject(reply, "status", "error");
    cJSON_AddNumberToObject(reply, "execution_count", (double)k->execution_count);
    cJSON_AddStringToObject(reply, "ename", "BadRequest");
    cJSON_AddStringToObject(reply, "evalue", evalue);
    cJSON_AddItemToObject(reply, "traceback",
                          cJSON_CreateStringArray((const char *const[]){evalue}, 1));
    cJSON_AddObjectToObject(reply, "user_expressions");
    cJSON_AddArrayToObject(reply, "payload");
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "status", "error");
    k->t.send(k->t.ud, ch, req, "execute_reply", reply, meta);
    return DSV3_JH_DONE;
}

static dsv3_jh_result on_execute(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    const cJSON *c = req->content;
    const cJSON *code_item = cJSON_GetObjectItemCaseSensitive(c, "code");
    if (!cJSON_IsString(code_item)) return bad_execute(k, ch, req, code_item);
    const char *code = code_item->valuestring;
    int silent = get_bool(c, "silent", 0);
    int store = get_bool(c, "store_history", !silent) && !silent;
    int stop_on_error = get_bool(c, "stop_on_error", 1);
    exec_ctx x = {k, req, silent, get_bool(c, "allow_stdin", 1)};
    if (store) k->execution_count++;
    long n = k->execution_count;
    if (!silent) {
        cJSON *in = cJSON_CreateObject();
        cJSON_AddStringToObject(in, "code", code);
        cJSON_AddNumberToObject(in, "execution_count", (double)n);
        k->t.send(k->t.ud, DSV3_JCH_IOPUB, req, "execute_input", in, NULL);
    }
    if (store) add_history(k, n, code);
    dsv3_jpublisher pub = {&x, pub_stream, pub_display, pub_input};
    dsv3_jexec_opts opts = {silent, store, x.allow_stdin, n};
    dsv3_jexec_result r = {0};
    k->interp.execute(k->interp.self, code, strlen(code), &opts, &pub, &r);
    cJSON *reply = cJSON_CreateObject();
    cJSON_AddStringToObject(reply, "status", r.ok ? "ok" : "error");
    cJSON_AddNumberToObject(reply, "execution_count", (double)n);
    if (r.ok) {
        if (r.data && !silent) {
            cJSON *res = cJSON_CreateObject();
            cJSON_AddItemToObject(res, "data", r.data);
            cJSON_AddItemToObject(res, "metadata", r.metadata ? r.metadata : cJSON_CreateObject());
            cJSON_AddNumberToObject(res, "execution_count", (double)n);
            r.data = r.metadata = NULL;
            k->t.send(k->t.ud, DSV3_JCH_IOPUB, req, "execute_result", res, NULL);
        }
    } else {
        const char *ename = r.ename ? r.ename : "Error", *evalue = r.evalue ? r.evalue : "";
        cJSON *tb = r.traceback ? r.traceback : cJSON_CreateArray();
        r.traceback = NULL;
        if (!silent) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "ename", ename);
            cJSON_AddStringToObject(e, "evalue", evalue);
            cJSON_AddItemToObject(e, "traceback", cJSON_Duplicate(tb, 1));
            k->t.send(k->t.ud, DSV3_JCH_IOPUB, req, "error", e, NULL);
        }
        cJSON_AddStringToObject(reply, "ename", ename);
        cJSON_AddStringToObject(reply, "evalue", evalue);
        cJSON_AddItemToObject(reply, "traceback", tb);
    }
    cJSON_AddObjectToObject(reply, "user_expressions");
    cJSON_AddArrayToObject(reply, "payload");
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "status", r.ok ? "ok" : "error");
    int failed = !r.ok;
    dsv3_jexec_result_fini(&r);
    k->t.send(k->t.ud, ch, req, "execute_reply", reply, meta);
    return failed && stop_on_error ? DSV3_JH_ABORT_QUEUE : DSV3_JH_DONE;
}

/* ---------------------------------------------------------------- complete / inspect --- */

/* code and the byte offset of content.cursor_pos (code points; default: the end). */
static const char *code_and_cursor(const cJSON *c, size_t *cursor, size_t *cursor_cp) {
    const char *code = get_str(c, "code", "");
    size_t n = strlen(code), total = dsv3_wire_byte_to_cp(code, n, n);
    long cp = get_int(c, "cursor_pos", (long)total);
    if (cp < 0 || (size_t)cp > total) cp = (long)total;
    *cursor_cp = (size_t)cp;
    *cursor = dsv3_wire_cp_to_byte(code, n, (size_t)cp);
    return code;
}

static dsv3_jh_result on_complete(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    size_t cursor, cursor_cp, start = 0;
    const char *code = code_and_cursor(req->content, &cursor, &cursor_cp);
    char **m = NULL;
    size_t n = k->interp.complete(k->interp.self, code, cursor, &start, &m);
    if (start > cursor) start = cursor;
    cJSON *reply = reply_ok();
    cJSON *arr = cJSON_AddArrayToObject(reply, "matches");
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(arr, cJSON_CreateString(m[i]));
        free(m[i]);
    }
    free(m);
    cJSON_AddNumberToObject(
        reply, "cursor_start",
        (double)(n ? dsv3_wire_byte_to_cp(code, strlen(code), start) : cursor_cp));
    cJSON_AddNumberToObject(reply, "cursor_end", (double)cursor_cp);
    cJSON_AddObjectToObject(reply, "metadata");
    k->t.send(k->t.ud, ch, req, "complete_reply", reply, NULL);
    return DSV3_JH_DONE;
}

static dsv3_jh_result on_inspect(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    size_t cursor, cursor_cp;
    const char *code = code_and_cursor(req->content, &cursor, &cursor_cp);
    char *text = k->interp.inspect(k->interp.self, code, cursor,
                                   (int)get_int(req->content, "detail_level", 0));
    cJSON *reply = reply_ok();
    cJSON_AddBoolToObject(reply, "found", text != NULL);
    cJSON *data = cJSON_AddObjectToObject(reply, "data");
    if (text) cJSON_AddStringToObject(data, "text/plain", text);
    free(text);
    cJSON_AddObjectToObject(reply, "metadata");
    k->t.send(k->t.ud, ch, req, "inspect_reply", reply, NULL);
    return DSV3_JH_DONE;
}

static dsv3_jh_result on_is_complete(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    const char *code = get_str(req->content, "code", "");
    dsv3_jcode_state st = k->interp.is_complete(k->interp.self, code, strlen(code));
    cJSON *reply = cJSON_CreateObject();
    cJSON_AddStringToObject(reply, "status",
                            st == DSV3_JCODE_COMPLETE     ? "complete"
                            : st == DSV3_JCODE_INCOMPLETE ? "incomplete"
                                                          : "invalid");
    if (st == DSV3_JCODE_INCOMPLETE) cJSON_AddStringToObject(reply, "indent", "  ");
    k->t.send(k->t.ud, ch, req, "is_complete_reply", reply, NULL);
    return DSV3_JH_DONE;
}

/* ---------------------------------------------------------------- history / comms ----- */

/* Session number of this kernel run in history replies. */
enum { HISTORY_SESSION = 1 };

static void history_item(cJSON *arr, const history_entry *e, int output) {
    cJSON *it = cJSON_CreateArray();
    cJSON_AddItemToArray(it, cJSON_CreateNumber(HISTORY_SESSION));
    cJSON_AddItemToArray(it, cJSON_CreateNumber((double)e->count));
    if (output) {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(e->code));
        cJSON_AddItemToArray(pair, cJSON_CreateNull());
        cJSON_AddItemToArray(it, pair);
    } else {
        cJSON_AddItemToArray(it, cJSON_CreateString(e->code));
    }
    cJSON_AddItemToArray(arr, it);
}

/* hist_access_type "tail" (last n), "range" (this session's lines start..stop-1, stop 0 = to
 * the end) or "search" (glob pattern, optionally unique, last n). */
static dsv3_jh_result on_history(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    const cJSON *c = req->content;
    const char *type = get_str(c, "hist_access_type", "tail");
    int output = get_bool(c, "output", 0);
    long n = get_int(c, "n", 10);
    if (n < 0) n = 0;
    cJSON *reply = reply_ok();
    cJSON *arr = cJSON_AddArrayToObject(reply, "history");
    unsigned char *pick = calloc(k->n_history + 1, 1);
    if (!pick) {
        k->t.send(k->t.ud, ch, req, "history_reply", reply, NULL);
        return DSV3_JH_DONE;
    }
    if (!strcmp(type, "range")) {
        long session = get_int(c, "session", 0), start = get_int(c, "start", 0),
             stop = get_int(c, "stop", 0);
        if (session == 0 || session == HISTORY_SESSION)
            for (size_t i = 0; i < k->n_history; i++)
                if (k->history[i].count >= start && (stop <= 0 || k->history[i].count < stop))
                    pick[i] = 1;
    } else if (!strcmp(type, "search")) {
        const char *pattern = get_str(c, "pattern", "*");
        int unique = get_bool(c, "unique", 0);
        long left = n ? n : (long)k->n_history;
        for (size_t i = k->n_history; i-- > 0 && left > 0;) {
            if (fnmatch(pattern, k->history[i].code, 0) != 0) continue;
            int dup = 0;
            for (size_t j = i + 1; unique && j < k->n_history && !dup; j++)
                dup = pick[j] && !strcmp(k->history[j].code, k->history[i].code);
            if (!dup) {
                pick[i] = 1;
                left--;
            }
        }
    } else { /* tail */
        for (size_t i = k->n_history > (size_t)n ? k->n_history - (size_t)n : 0; i < k->n_history;
             i++)
            pick[i] = 1;
    }
    for (size_t i = 0; i < k->n_history; i++)
        if (pick[i]) history_item(arr, &k->history[i], output);
    free(pick);
    k->t.send(k->t.ud, ch, req, "history_reply", reply, NULL);
    return DSV3_JH_DONE;
}

static dsv3_jh_result on_comm_info(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    cJSON *reply = reply_ok();
    cJSON_AddObjectToObject(reply, "comms");
    k->t.send(k->t.ud, ch, req, "comm_info_reply", reply, NULL);
    return DSV3_JH_DONE;
}

/* No comm targets: a comm_open is answered by closing it. */
static dsv3_jh_result on_comm_open(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    (void)ch;
    cJSON *close = cJSON_CreateObject();
    cJSON_AddStringToObject(close, "comm_id", get_str(req->content, "comm_id", ""));
    cJSON_AddObjectToObject(close, "data");
    k->t.send(k->t.ud, DSV3_JCH_IOPUB, req, "comm_close", close, NULL);
    return DSV3_JH_DONE;
}

static dsv3_jh_result on_comm_ignore(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    (void)k;
    (void)ch;
    (void)req;
    return DSV3_JH_DONE;
}

/* ---------------------------------------------------------------- kernel_info / control  */

static dsv3_jh_result on_kernel_info(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    cJSON *r = reply_ok();
    cJSON_AddStringToObject(r, "protocol_version", DSV3_WIRE_PROTOCOL_VERSION);
    cJSON_AddStringToObject(r, "implementation", "dsv3");
    cJSON_AddStringToObject(r, "implementation_version", "0.1.0");
    cJSON *li = cJSON_AddObjectToObject(r, "language_info");
    cJSON_AddStringToObject(li, "name", "lua");
    cJSON_AddStringToObject(li, "version",
                            k->interp.language_version ? k->interp.language_version : "");
    cJSON_AddStringToObject(li, "mimetype", "text/x-lua");
    cJSON_AddStringToObject(li, "file_extension", ".lua");
    cJSON_AddStringToObject(li, "pygments_lexer", "lua");
    cJSON_AddStringToObject(li, "codemirror_mode", "lua");
    cJSON_AddStringToObject(li, "nbconvert_exporter", "script");
    cJSON_AddStringToObject(r, "banner", k->interp.banner ? k->interp.banner : "dsv3");
    cJSON *links = cJSON_AddArrayToObject(r, "help_links");
    cJSON *l = cJSON_CreateObject();
    cJSON_AddStringToObject(l, "text", "Lua 5.4 manual");
    cJSON_AddStringToObject(l, "url", "https://www.lua.org/manual/5.4/");
    cJSON_AddItemToArray(links, l);
    cJSON_AddBoolToObject(r, "debugger", 0);
    k->t.send(k->t.ud, ch, req, "kernel_info_reply", r, NULL);
    return DSV3_JH_DONE;
}

static dsv3_jh_result on_shutdown(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    int restart = get_bool(req->content, "restart", 0);
    cJSON *r = reply_ok();
    cJSON_AddBoolToObject(r, "restart", restart);
    k->t.send(k->t.ud, ch, req, "shutdown_reply", r, NULL);
    k->interp.interrupt(k->interp.self); /* a running cell stops */
    k->t.shutdown(k->t.ud, restart);
    return DSV3_JH_DONE;
}

static dsv3_jh_result on_interrupt(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    k->interp.interrupt(k->interp.self);
    k->t.send(k->t.ud, ch, req, "interrupt_reply", reply_ok(), NULL);
    return DSV3_JH_DONE;
}

/* ---------------------------------------------------------------- table / dispatch ----- */

enum { SHELL = 1 << DSV3_JCH_SHELL, CONTROL = 1 << DSV3_JCH_CONTROL };

static const struct {
    const char *msg_type;
    dsv3_jh_result (*fn)(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req);
    int channels; /* where the request is accepted */
} handlers[] = {
    {"execute_request", on_execute, SHELL},
    {"complete_request", on_complete, SHELL},
    {"inspect_request", on_inspect, SHELL},
    {"is_complete_request", on_is_complete, SHELL},
    {"history_request", on_history, SHELL},
    {"comm_info_request", on_comm_info, SHELL},
    {"comm_open", on_comm_open, SHELL},
    {"comm_msg", on_comm_ignore, SHELL},
    {"comm_close", on_comm_ignore, SHELL},
    {"kernel_info_request", on_kernel_info, SHELL | CONTROL},
    {"shutdown_request", on_shutdown, SHELL | CONTROL},
    {"interrupt_request", on_interrupt, CONTROL},
};

dsv3_jh_result dsv3_jkernel_handle(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        if (!strcmp(handlers[i].msg_type, req->msg_type))
            return handlers[i].channels & (1 << ch) ? handlers[i].fn(k, ch, req) : DSV3_JH_UNKNOWN;
    return DSV3_JH_UNKNOWN;
}

dsv3_jh_result dsv3_jkernel_abort(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req) {
    if (strcmp(req->msg_type, "execute_request")) return dsv3_jkernel_handle(k, ch, req);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "status", "aborted");
    cJSON_AddNumberToObject(r, "execution_count", (double)k->execution_count);
    cJSON_AddObjectToObject(r, "user_expressions");
    cJSON_AddArrayToObject(r, "payload");
    k->t.send(k->t.ud, ch, req, "execute_reply", r, NULL);
    return DSV3_JH_DONE;
}
