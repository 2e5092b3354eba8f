/* test_wire.c — the Jupyter wire layer and the handler table, without sockets or a model.
 *
 * Wire: HMAC-SHA256 signatures equal Python's hmac (a vector computed with hmac.new), a signed
 * message parses back with its identities, and forged, replayed, truncated or malformed
 * messages are rejected with EPROTO/EFORMAT before anything acts on them; an empty key skips
 * verification; output is valid UTF-8; code-point offsets convert both ways.
 * Handlers: a mock interpreter (stands in for the Lua session) and a mock transport (records
 * what would be sent) check the order of an execute's messages, stop_on_error, silent
 * executes, code-point cursors in complete_reply, channel rules, history and kernel_info.
 *
 * Usage: test_wire [NAME_SUBSTRING]   runs the tests whose name contains the argument.
 */
#define _GNU_SOURCE /* memmem, strndup */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/runner.h"

#include "jupyter/handlers.h"
#include "jupyter/wire.h"

static int check(int cond, const char *what) {
    if (!cond) printf("    check failed: %s\n", what);
    return cond;
}

static int expect(dsv3_status st, const dsv3_err *err, dsv3_status want, const char *needle) {
    if (st != want) {
        printf("    expected %s, got %s (\"%s\")\n", dsv3_status_name(want), dsv3_status_name(st),
               err->msg);
        return 0;
    }
    if (needle && !strstr(err->msg, needle)) {
        printf("    message \"%s\" does not name \"%s\"\n", err->msg, needle);
        return 0;
    }
    return 1;
}

#define KEY "secret-key"

/* A signed message from JSON texts (header, parent, metadata, content), with one identity. */
static dsv3_wire_out make(const dsv3_wire_auth *a, const char *h, const char *p, const char *m,
                          const char *c) {
    cJSON *j[4] = {cJSON_Parse(h), cJSON_Parse(p), cJSON_Parse(m), cJSON_Parse(c)};
    dsv3_wire_frame id = {"client-1", 8};
    dsv3_wire_out out;
    dsv3_err err;
    if (dsv3_wire_encode(&out, a, &id, 1, j[0], j[1], j[2], j[3], &err) != DSV3_OK)
        memset(&out, 0, sizeof out);
    for (int i = 0; i < 4; i++)
        cJSON_Delete(j[i]);
    return out;
}

/* Frames of a message given as raw bytes (not signed here): ids, delimiter, sig, 4 parts. */
static dsv3_wire_out raw(const char *sig, const char *h, const char *p, const char *m,
                         const char *c) {
    dsv3_wire_out o = {6, calloc(6, sizeof(dsv3_wire_frame))};
    const char *s[6] = {DSV3_WIRE_DELIM, sig, h, p, m, c};
    for (int i = 0; i < 6; i++)
        o.frames[i] = (dsv3_wire_frame){strdup(s[i]), strlen(s[i])};
    return o;
}

/* Signs the four JSON frames of a raw() message in place (frame 1 = signature). */
static void sign_raw(dsv3_wire_out *o, const dsv3_wire_auth *a) {
    char hex[65];
    dsv3_wire_sign(hex, a, &o->frames[2]);
    free((void *)o->frames[1].data);
    o->frames[1] = (dsv3_wire_frame){strdup(hex), strlen(hex)};
}

#define HDR "{\"msg_id\":\"1\",\"msg_type\":\"x\"}"

/* ---------------------------------------------------------------- wire ----------------- */

static int test_wire_signature_matches_python_hmac(void) {
    dsv3_wire_auth a;
    dsv3_err err;
    dsv3_wire_auth_init(&a, KEY, strlen(KEY), "hmac-sha256", &err);
    dsv3_wire_frame parts[4] = {{HDR, strlen(HDR)}, {"{}", 2}, {"{}", 2}, {"{\"a\":1}", 7}};
    char hex[65];
    dsv3_wire_sign(hex, &a, parts);
    dsv3_wire_auth_fini(&a);
    /* hmac.new(b"secret-key", header+parent+metadata+content, hashlib.sha256).hexdigest() */
    return check(!strcmp(hex, "7d3241c96e86e2da409c43268256065a80eebda2041aa865038cf03778ca1d59"),
                 "signature equals Python's hmac hexdigest");
}

static int test_wire_parse_accepts_signed_message(void) {
    dsv3_wire_auth a;
    dsv3_err err = {{0}};
    dsv3_wire_auth_init(&a, KEY, strlen(KEY), "hmac-sha256", &err);
    dsv3_wire_out o = make(&a, HDR, "{\"msg_id\":\"0\"}", "{}", "{\"code\":\"1+1\"}");
    dsv3_wire_msg m;
    dsv3_status st = dsv3_wire_parse(&m, &a, o.frames, o.n, &err);
    int ok = expect(st, &err, DSV3_OK, NULL);
    if (ok) {
        ok &= check(!strcmp(m.msg_type, "x") && !strcmp(m.msg_id, "1"), "msg_type and msg_id");
        ok &= check(m.n_ids == 1 && m.ids[0].len == 8 && !memcmp(m.ids[0].data, "client-1", 8),
                    "identity kept byte-exact");
        ok &= check(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(m.content, "code")), "1+1"),
                    "content parsed");
        ok &= check(o.frames[2].len == 64, "signature is 64 hex chars");
    }
    dsv3_wire_msg_fini(&m);
    dsv3_wire_out_fini(&o);
    dsv3_wire_auth_fini(&a);
    return ok;
}

static int test_wire_parse_rejects_bad_signature(void) {
    dsv3_wire_auth a;
    dsv3_err err = {{0}};
    dsv3_wire_auth_init(&a, KEY, strlen(KEY), NULL, &err);
    int ok = 1;
    /* one flipped hex digit, a wrong key, uppercase hex, wrong length, empty */
    dsv3_wire_out o = raw("", HDR, "{}", "{}", "{}");
    sign_raw(&o, &a);
    char sig[65];
    memcpy(sig, o.frames[1].data, 64);
    sig[64] = 0;
    const char *variants[5];
    char flipped[65], upper[65];
    strcpy(flipped, sig);
    flipped[10] = flipped[10] == '0' ? '1' : '0';
    strcpy(upper, sig);
    for (int i = 0; i < 64; i++)
        if (upper[i] >= 'a' && upper[i] <= 'f') upper[i] = (char)(upper[i] - 32);
    variants[0] = flipped;
    variants[1] = upper;
    variants[2] = "abc";
    variants[3] = "";
    dsv3_wire_auth other;
    dsv3_wire_auth_init(&other, "other", 5, NULL, &err);
    char wrong_key[65];
    dsv3_wire_sign(wrong_key, &other, &o.frames[2]);
    dsv3_wire_auth_fini(&other);
    variants[4] = wrong_key;
    for (int v = 0; v < 5; v++) {
        free((void *)o.frames[1].data);
        o.frames[1] = (dsv3_wire_frame){strdup(variants[v]), strlen(variants[v])};
        dsv3_wire_msg m;
        ok &= expect(dsv3_wire_parse(&m, &a, o.frames, o.n, &err), &err, DSV3_EPROTO,
                     "bad signature");
    }
    dsv3_wire_out_fini(&o);
    dsv3_wire_auth_fini(&a);
    return ok;
}

static int test_wire_parse_rejects_tampered_content(void) {
    dsv3_wire_auth a;
    dsv3_err err = {{0}};
    dsv3_wire_auth_init(&a, KEY, strlen(KEY), NULL, &err);
    dsv3_wire_out o = raw("", HDR, "{}", "{}", "{\"code\":\"print(1)\"}");
    sign_raw(&o, &a);
    free((void *)o.frames[5].data);
    o.frames[5] = (dsv3_wire_frame){strdup("{\"code\":\"os.exit()\"}"), 20};
    dsv3_wire_msg m;
    int ok =
        expect(dsv3_wire_parse(&m, &a, o.frames, o.n, &err), &err, DSV3_EPROTO, "bad signature");
    dsv3_wire_out_fini(&o);
    dsv3_wire_auth_fini(&a);
    return ok;
}

static int test_wire_parse_rejects_replay(void) {
    dsv3_wire_auth a;
    dsv3_err err = {{0}};
    dsv3_wire_auth_init(&a, KEY, strlen(KEY), NULL, &err);
    dsv3_wire_out o = make(&a, HDR, "{}", "{}", "{}");
    dsv3_wire_msg m;
    int ok = expect(dsv3_wire_parse(&m, &a, o.frames, o.n, &err), &err, DSV3_OK, NULL);
    dsv3_wire_msg_fini(&m);
    ok &= expect(dsv3_wire_parse(&m, &a, o.frames, o.n, &err), &err, DSV3_EPROTO,
                 "duplicate signature");
    /* after a whole generation of other messages it is still known */
    for (int i = 0; i < DSV3_WIRE_REPLAY_GEN + 10; i++) {
        char h[64];
        snprintf(h, sizeof h, "{\"msg_id\":\"n%d\",\"msg_type\":\"x\"}", i);
        dsv3_wire_out o2 = make(&a, h, "{}", "{}", "{}");
        if (dsv3_wire_parse(&m, &a, o2.frames, o2.n, &err) == DSV3_OK)
            dsv3_wire_msg_fini(&m);
        else
            ok = check(0, "fresh messages accepted");
        dsv3_wire_out_fini(&o2);
        if (!ok) break;
    }
    ok &= expect(dsv3_wire_parse(&m, &a, o.frames, o.n, &err), &err, DSV3_EPROTO,
                 "duplicate signature");
    dsv3_wire_out_fini(&o);
    dsv3_wire_auth_fini(&a);
    return ok;
}

static int test_wire_parse_rejects_truncated_frames(void) {
    dsv3_wire_auth a;
    dsv3_err err = {{0}};
    dsv3_wire_auth_init(&a, KEY, strlen(KEY), NULL, &err);
    dsv3_wire_out o = make(&a, HDR, "{}", "{}", "{}");
    int ok = 1;
    dsv3_wire_msg m;
    /* o = [id, delim, sig, h, p, m, c]: every prefix is refused */
    for (size_t n = 0; n < o.n; n++) {
        dsv3_status st = dsv3_wire_parse(&m, &a, o.frames, n, &err);
        ok &= expect(st, &err, DSV3_EPROTO, n < 2 ? "delimiter" : "need 5");
    }
    /* no delimiter at all: identities only */
    ok &= expect(dsv3_wire_parse(&m, &a, o.frames + 2, o.n - 2, &err), &err, DSV3_EPROTO,
                 "delimiter");
    dsv3_wire_out_fini(&o);
    dsv3_wire_auth_fini(&a);
    return ok;
}

static int test_wire_parse_rejects_malformed_json(void) {
    dsv3_wire_auth a;
    dsv3_err err = {{0}};
    dsv3_wire_auth_init(&a, KEY, strlen(KEY), NULL, &err);
    static const struct {
        const char *h, *c, *needle;
    } cases[] = {
        {HDR, "[1,2]", "content: not a JSON object"},
        {HDR, "{\"a\":", "content: not a JSON object"},
        {HDR, "{} x", "content: trailing bytes"},
        {"\"just a string\"", "{}", "header: not a JSON object"},
        {"{\"msg_type\":\"x\"}", "{}", "msg_type and msg_id"},
        {"{\"msg_id\":1,\"msg_type\":\"x\"}", "{}", "msg_type and msg_id"},
        {HDR, "{\"a\":\"\xff\xfe\"}", "content: not valid UTF-8"},
        {HDR, "{\"a\":\"\xed\xa0\x80\"}", "content: not valid UTF-8"},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dsv3_wire_out o = raw("", cases[i].h, "{}", "{}", cases[i].c);
        sign_raw(&o, &a); /* correctly signed: the JSON checks themselves must refuse it */
        dsv3_wire_msg m;
        ok &= expect(dsv3_wire_parse(&m, &a, o.frames, o.n, &err), &err, DSV3_EFORMAT,
                     cases[i].needle);
        dsv3_wire_out_fini(&o);
    }
    dsv3_wire_auth_fini(&a);
    return ok;
}

static int test_wire_empty_key_skips_verification(void) {
    dsv3_wire_auth a;
    dsv3_err err = {{0}};
    dsv3_wire_auth_init(&a, "", 0, "hmac-sha256", &err);
    dsv3_wire_out o = make(&a, HDR, "{}", "{}", "{}");
    int ok = check(o.frames[2].len == 0, "empty signature frame when no key");
    dsv3_wire_msg m;
    ok &= expect(dsv3_wire_parse(&m, &a, o.frames, o.n, &err), &err, DSV3_OK, NULL);
    dsv3_wire_msg_fini(&m);
    dsv3_wire_out r = raw("anything", HDR, "{}", "{}", "{}");
    ok &= expect(dsv3_wire_parse(&m, &a, r.frames, r.n, &err), &err, DSV3_OK, NULL);
    dsv3_wire_msg_fini(&m);
    dsv3_wire_out_fini(&r);
    dsv3_wire_out_fini(&o);
    dsv3_wire_auth_fini(&a);
    return ok;
}

static int test_wire_rejects_unknown_scheme(void) {
    dsv3_wire_auth a;
    dsv3_err err = {{0}};
    return expect(dsv3_wire_auth_init(&a, KEY, strlen(KEY), "hmac-md5", &err), &err,
                  DSV3_EUNSUPPORTED, "hmac-md5");
}

static int test_wire_encode_output_is_valid_utf8(void) {
    dsv3_wire_auth a;
    dsv3_err err = {{0}};
    dsv3_wire_auth_init(&a, KEY, strlen(KEY), NULL, &err);
    cJSON *h = dsv3_wire_header_new("sess", "stream", 7);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "text", "ok \xff\xfe bytes \xe2\x82");
    dsv3_wire_out o;
    int ok = expect(dsv3_wire_encode(&o, &a, NULL, 0, h, NULL, NULL, c, &err), &err, DSV3_OK, NULL);
    if (ok) {
        ok &= check(dsv3_wire_utf8_valid(o.frames[5].data, o.frames[5].len),
                    "content frame is UTF-8");
        ok &= check(memmem(o.frames[5].data, o.frames[5].len, "\xEF\xBF\xBD", 3) != NULL,
                    "U+FFFD in place");
        ok &=
            check(o.frames[3].len == 2 && !memcmp(o.frames[3].data, "{}", 2), "NULL parent is {}");
        ok &= check(memmem(o.frames[2].data, o.frames[2].len, "\"msg_id\":\"sess_7\"", 17) != NULL,
                    "msg_id is session_counter");
        ok &= check(memmem(o.frames[2].data, o.frames[2].len, "Z\"", 2) != NULL, "date in UTC");
        dsv3_wire_msg m; /* and it parses back */
        ok &= expect(dsv3_wire_parse(&m, &a, o.frames, o.n, &err), &err, DSV3_OK, NULL);
        dsv3_wire_msg_fini(&m);
        dsv3_wire_out_fini(&o);
    }
    cJSON_Delete(h);
    cJSON_Delete(c);
    dsv3_wire_auth_fini(&a);
    return ok;
}

static int test_wire_codepoint_offsets(void) {
    const char *s = "h\xc3\xa9llo \xe2\x86\x92 \xf0\x9f\x98\x80!"; /* "héllo → 😀!" */
    size_t n = strlen(s);
    int ok = check(dsv3_wire_byte_to_cp(s, n, n) == 10, "10 code points");
    ok &= check(dsv3_wire_cp_to_byte(s, n, 2) == 3, "cp 2 is byte 3 (after é)");
    ok &= check(dsv3_wire_cp_to_byte(s, n, 9) == n - 1, "cp 9 is the '!'");
    ok &= check(dsv3_wire_cp_to_byte(s, n, 99) == n, "past the end clamps");
    ok &= check(dsv3_wire_byte_to_cp(s, n, 7) == 6, "byte 7 is cp 6 (before the arrow)");
    for (size_t cp = 0; cp <= 10; cp++)
        ok &= check(dsv3_wire_byte_to_cp(s, n, dsv3_wire_cp_to_byte(s, n, cp)) == cp, "round trip");
    return ok;
}

/* ---------------------------------------------------------------- mock interpreter ----- */

/* Stands in for the Lua session: "ok" prints and returns 42, "fail" raises, "ask" reads. */
typedef struct {
    int interrupts;
    long last_count;
    int n_exec; /* execute calls */
} mock;

static void mock_execute(void *self, const char *code, size_t len, const dsv3_jexec_opts *o,
                         const dsv3_jpublisher *pub, dsv3_jexec_result *out) {
    mock *mk = self;
    (void)len;
    mk->last_count = o->execution_count;
    mk->n_exec++;
    if (!strcmp(code, "fail")) {
        out->ok = 0;
        out->ename = strdup("LuaError");
        out->evalue = strdup("input:1: boom");
        out->traceback = cJSON_CreateStringArray((const char *[]){"input:1: boom"}, 1);
        return;
    }
    if (!strcmp(code, "ask")) {
        char *v = NULL;
        dsv3_err err = {{0}};
        dsv3_status st = pub->input(pub->ud, "Name? ", 0, &v, &err);
        out->ok = st == DSV3_OK;
        if (!out->ok) {
            out->ename = strdup("LuaError");
            out->evalue = strdup(err.msg);
        }
        free(v);
        return;
    }
    pub->stream(pub->ud, "stdout", "out\n", 4);
    pub->display(pub->ud, cJSON_Parse("{\"text/plain\":\"d\"}"), NULL, "d1", 0);
    out->ok = 1;
    out->data = cJSON_Parse("{\"text/plain\":\"42\"}");
}

/* Completes the word before the cursor to "format" (start = word start, in bytes). */
static size_t mock_complete(void *self, const char *code, size_t cursor, size_t *start,
                            char ***matches) {
    (void)self;
    size_t b = cursor;
    while (b > 0 && code[b - 1] >= 'a' && code[b - 1] <= 'z')
        b--;
    *start = b;
    *matches = malloc(sizeof(char *));
    (*matches)[0] = strdup("format");
    return 1;
}

static char *mock_inspect(void *self, const char *code, size_t cursor, int detail) {
    (void)self, (void)cursor, (void)detail;
    return strstr(code, "gen") ? strdup("gen(prompt) -> result") : NULL;
}

static dsv3_jcode_state mock_is_complete(void *self, const char *code, size_t len) {
    (void)self;
    if (len >= 2 && !strcmp(code + len - 2, "do")) return DSV3_JCODE_INCOMPLETE;
    return strstr(code, "= =") ? DSV3_JCODE_INVALID : DSV3_JCODE_COMPLETE;
}

static void mock_interrupt(void *self) {
    ((mock *)self)->interrupts++;
}

/* ---------------------------------------------------------------- mock transport ------- */

typedef struct {
    int n;
    dsv3_jchannel ch[32];
    char type[32][32];
    char *content[32]; /* JSON text */
    int shutdowns, restart;
    const char *input_value; /* NULL: input fails */
} sent_log;

static void log_send(void *ud, dsv3_jchannel ch, const dsv3_wire_msg *req, const char *type,
                     cJSON *content, cJSON *metadata) {
    sent_log *l = ud;
    (void)req;
    if (l->n < 32) {
        l->ch[l->n] = ch;
        snprintf(l->type[l->n], sizeof l->type[0], "%s", type);
        l->content[l->n] = cJSON_PrintUnformatted(content);
        l->n++;
    }
    cJSON_Delete(content);
    cJSON_Delete(metadata);
}

static void log_stream(void *ud, const dsv3_wire_msg *req, const char *name, const char *text,
                       size_t len) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", name);
    char *t = strndup(text, len);
    cJSON_AddStringToObject(c, "text", t);
    free(t);
    log_send(ud, DSV3_JCH_IOPUB, req, "stream", c, NULL);
}

static dsv3_status log_input(void *ud, const dsv3_wire_msg *req, const char *prompt, int password,
                             char **value, dsv3_err *err) {
    sent_log *l = ud;
    (void)req, (void)prompt, (void)password;
    if (!l->input_value) return dsv3_errf(err, DSV3_EINTR, "input: interrupted");
    *value = strdup(l->input_value);
    return DSV3_OK;
}

static void log_shutdown(void *ud, int restart) {
    sent_log *l = ud;
    l->shutdowns++;
    l->restart = restart;
}

static void log_fini(sent_log *l) {
    for (int i = 0; i < l->n; i++)
        cJSON_free(l->content[i]);
    memset(l, 0, sizeof *l);
}

typedef struct {
    mock mk;
    sent_log log;
    dsv3_jkernel *k;
} fixture;

static void fixture_init(fixture *f) {
    memset(f, 0, sizeof *f);
    dsv3_jinterp in = {&f->mk,           mock_execute,   mock_complete, mock_inspect,
                       mock_is_complete, mock_interrupt, "5.4.6",       "mock banner"};
    dsv3_jtransport t = {&f->log, log_send, log_stream, log_input, log_shutdown};
    dsv3_err err;
    dsv3_jkernel_new(&f->k, &in, &t, &err);
}

static void fixture_fini(fixture *f) {
    dsv3_jkernel_free(f->k);
    log_fini(&f->log);
}

/* A request as the server would hand it over (already verified). */
static dsv3_wire_msg request(const char *type, const char *content) {
    dsv3_wire_msg m = {0};
    m.header = cJSON_CreateObject();
    cJSON_AddStringToObject(m.header, "msg_id", "req-1");
    cJSON_AddStringToObject(m.header, "msg_type", type);
    m.parent = cJSON_CreateObject();
    m.metadata = cJSON_CreateObject();
    m.content = cJSON_Parse(content);
    m.msg_type = cJSON_GetStringValue(cJSON_GetObjectItem(m.header, "msg_type"));
    m.msg_id = "req-1";
    return m;
}

static dsv3_jh_result run(fixture *f, dsv3_jchannel ch, const char *type, const char *content) {
    dsv3_wire_msg m = request(type, content);
    dsv3_jh_result r = dsv3_jkernel_handle(f->k, ch, &m);
    dsv3_wire_msg_fini(&m);
    return r;
}

/* 1 if sent message i has type and its content contains needle. */
static int sent(const fixture *f, int i, dsv3_jchannel ch, const char *type, const char *needle) {
    if (i >= f->log.n) {
        printf("    message %d (%s) was not sent\n", i, type);
        return 0;
    }
    if (f->log.ch[i] != ch || strcmp(f->log.type[i], type) ||
        (needle && !strstr(f->log.content[i], needle))) {
        printf("    message %d: got %s %s on channel %d, expected %s containing %s\n", i,
               f->log.type[i], f->log.content[i], (int)f->log.ch[i], type, needle ? needle : "-");
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- handlers ------------- */

static int test_handlers_execute_sends_input_outputs_then_reply(void) {
    fixture f;
    fixture_init(&f);
    int ok = check(run(&f, DSV3_JCH_SHELL, "execute_request", "{\"code\":\"ok\"}") == DSV3_JH_DONE,
                   "done");
    ok &= sent(&f, 0, DSV3_JCH_IOPUB, "execute_input", "\"execution_count\":1");
    ok &= sent(&f, 1, DSV3_JCH_IOPUB, "stream", "\"text\":\"out\\n\"");
    ok &= sent(&f, 2, DSV3_JCH_IOPUB, "display_data", "\"display_id\":\"d1\"");
    ok &= sent(&f, 3, DSV3_JCH_IOPUB, "execute_result", "\"text/plain\":\"42\"");
    ok &= sent(&f, 4, DSV3_JCH_SHELL, "execute_reply", "\"status\":\"ok\"");
    ok &= check(f.log.n == 5, "nothing else sent");
    fixture_fini(&f);
    return ok;
}

static int test_handlers_execution_count_increments_unless_silent(void) {
    fixture f;
    fixture_init(&f);
    run(&f, DSV3_JCH_SHELL, "execute_request", "{\"code\":\"ok\"}");
    run(&f, DSV3_JCH_SHELL, "execute_request", "{\"code\":\"ok\"}");
    int ok = check(dsv3_jkernel_execution_count(f.k) == 2, "count 2 after two executes");
    int before = f.log.n;
    run(&f, DSV3_JCH_SHELL, "execute_request", "{\"code\":\"ok\",\"silent\":true}");
    ok &= check(dsv3_jkernel_execution_count(f.k) == 2, "silent does not count");
    ok &= check(f.log.n == before + 1, "silent sends only the reply");
    ok &= sent(&f, before, DSV3_JCH_SHELL, "execute_reply", "\"execution_count\":2");
    run(&f, DSV3_JCH_SHELL, "execute_request", "{\"code\":\"ok\",\"store_history\":false}");
    ok &= check(dsv3_jkernel_execution_count(f.k) == 2, "store_history=false does not count");
    fixture_fini(&f);
    return ok;
}

static int test_handlers_error_asks_to_abort_queue(void) {
    fixture f;
    fixture_init(&f);
    int ok = check(run(&f, DSV3_JCH_SHELL, "execute_request", "{\"code\":\"fail\"}") ==
                       DSV3_JH_ABORT_QUEUE,
                   "stop_on_error (default) aborts the queue");
    ok &= sent(&f, 1, DSV3_JCH_IOPUB, "error", "\"ename\":\"LuaError\"");
    ok &= sent(&f, 2, DSV3_JCH_SHELL, "execute_reply", "\"status\":\"error\"");
    ok &= check(strstr(f.log.content[2], "\"traceback\":[\"input:1: boom\"]") != NULL,
                "traceback in reply");
    ok &= check(run(&f, DSV3_JCH_SHELL, "execute_request",
                    "{\"code\":\"fail\",\"stop_on_error\":false}") == DSV3_JH_DONE,
                "stop_on_error=false does not");
    /* an aborted execute: a reply only, count unchanged */
    long count = dsv3_jkernel_execution_count(f.k);
    int before = f.log.n;
    dsv3_wire_msg m = request("execute_request", "{\"code\":\"ok\"}");
    dsv3_jkernel_abort(f.k, DSV3_JCH_SHELL, &m);
    dsv3_wire_msg_fini(&m);
    ok &= check(f.log.n == before + 1, "only the reply");
    ok &= sent(&f, before, DSV3_JCH_SHELL, "execute_reply", "\"status\":\"aborted\"");
    ok &= check(dsv3_jkernel_execution_count(f.k) == count, "count unchanged");
    fixture_fini(&f);
    return ok;
}

/* An execute_request whose code is missing or not a string: an error naming the field, nothing
 * run, the count unchanged, the queue kept. */
static int test_handlers_execute_without_string_code_is_an_error(void) {
    fixture f;
    fixture_init(&f);
    int ok = 1;
    const char *bad[] = {"{}", "{\"code\":42}", "{\"code\":null}", "{\"code\":[\"ok\"]}"};
    const char *what[] = {"is missing", "is a number", "is null", "is an array"};
    for (int i = 0; i < 4; i++) {
        const int before = f.log.n;
        ok &= check(run(&f, DSV3_JCH_SHELL, "execute_request", bad[i]) == DSV3_JH_DONE, "done");
        ok &= check(f.log.n == before + 2, "an iopub error and the reply");
        ok &= sent(&f, before, DSV3_JCH_IOPUB, "error", what[i]);
        ok &= sent(&f, before + 1, DSV3_JCH_SHELL, "execute_reply", "\"status\":\"error\"");
        ok &= sent(&f, before + 1, DSV3_JCH_SHELL, "execute_reply", "content.code");
    }
    ok &= check(dsv3_jkernel_execution_count(f.k) == 0, "nothing counted");
    ok &= check(f.mk.n_exec == 0, "nothing executed");
    fixture_fini(&f);
    return ok;
}

static int test_handlers_input_follows_allow_stdin(void) {
    fixture f;
    fixture_init(&f);
    f.log.input_value = "bob";
    int ok = check(run(&f, DSV3_JCH_SHELL, "execute_request", "{\"code\":\"ask\"}") == DSV3_JH_DONE,
                   "input ok");
    ok &= check(run(&f, DSV3_JCH_SHELL, "execute_request",
                    "{\"code\":\"ask\",\"allow_stdin\":false}") == DSV3_JH_ABORT_QUEUE,
                "allow_stdin=false fails the cell");
    ok &= check(strstr(f.log.content[f.log.n - 1], "allow_stdin is false") != NULL,
                "message says why");
    fixture_fini(&f);
    return ok;
}

static int test_handlers_complete_counts_code_points(void) {
    fixture f;
    fixture_init(&f);
    /* "é → string.fo": the word "fo" starts at code point 11, ends at 13 */
    run(&f, DSV3_JCH_SHELL, "complete_request",
        "{\"code\":\"\xc3\xa9 \xe2\x86\x92 string.fo\",\"cursor_pos\":13}");
    int ok = sent(&f, 0, DSV3_JCH_SHELL, "complete_reply", "\"cursor_start\":11,\"cursor_end\":13");
    ok &= check(strstr(f.log.content[0], "\"matches\":[\"format\"]") != NULL, "matches");
    /* cursor_pos missing: the end */
    run(&f, DSV3_JCH_SHELL, "complete_request", "{\"code\":\"\xc3\xa9 fo\"}");
    ok &= sent(&f, 1, DSV3_JCH_SHELL, "complete_reply", "\"cursor_start\":2,\"cursor_end\":4");
    fixture_fini(&f);
    return ok;
}

static int test_handlers_inspect_and_is_complete(void) {
    fixture f;
    fixture_init(&f);
    run(&f, DSV3_JCH_SHELL, "inspect_request", "{\"code\":\"gen\",\"cursor_pos\":2}");
    run(&f, DSV3_JCH_SHELL, "inspect_request", "{\"code\":\"nope\",\"cursor_pos\":2}");
    run(&f, DSV3_JCH_SHELL, "is_complete_request", "{\"code\":\"for i=1,3 do\"}");
    run(&f, DSV3_JCH_SHELL, "is_complete_request", "{\"code\":\"x = 1\"}");
    run(&f, DSV3_JCH_SHELL, "is_complete_request", "{\"code\":\"x = = 1\"}");
    int ok = sent(&f, 0, DSV3_JCH_SHELL, "inspect_reply",
                  "\"found\":true,\"data\":{\"text/plain\":\"gen(prompt)");
    ok &= sent(&f, 1, DSV3_JCH_SHELL, "inspect_reply", "\"found\":false,\"data\":{}");
    ok &= sent(&f, 2, DSV3_JCH_SHELL, "is_complete_reply", "\"status\":\"incomplete\",\"indent\":");
    ok &= sent(&f, 3, DSV3_JCH_SHELL, "is_complete_reply", "\"status\":\"complete\"");
    ok &= sent(&f, 4, DSV3_JCH_SHELL, "is_complete_reply", "\"status\":\"invalid\"");
    fixture_fini(&f);
    return ok;
}

static int test_handlers_channel_rules(void) {
    fixture f;
    fixture_init(&f);
    int ok =
        check(run(&f, DSV3_JCH_SHELL, "bogus_request", "{}") == DSV3_JH_UNKNOWN, "unknown type");
    ok &=
        check(run(&f, DSV3_JCH_CONTROL, "execute_request", "{\"code\":\"ok\"}") == DSV3_JH_UNKNOWN,
              "no execute on control");
    ok &= check(run(&f, DSV3_JCH_SHELL, "interrupt_request", "{}") == DSV3_JH_UNKNOWN,
                "no interrupt on shell");
    ok &= check(f.log.n == 0 && f.mk.interrupts == 0, "nothing sent or done");
    run(&f, DSV3_JCH_CONTROL, "interrupt_request", "{}");
    ok &= check(f.mk.interrupts == 1, "interrupt_request interrupts");
    ok &= sent(&f, 0, DSV3_JCH_CONTROL, "interrupt_reply", "\"status\":\"ok\"");
    run(&f, DSV3_JCH_CONTROL, "kernel_info_request", "{}");
    ok &= sent(&f, 1, DSV3_JCH_CONTROL, "kernel_info_reply", "\"protocol_version\":\"5.3\"");
    ok &= check(strstr(f.log.content[1], "\"name\":\"lua\"") &&
                    strstr(f.log.content[1], "\"version\":\"5.4.6\""),
                "language_info");
    run(&f, DSV3_JCH_CONTROL, "shutdown_request", "{\"restart\":true}");
    ok &= sent(&f, 2, DSV3_JCH_CONTROL, "shutdown_reply", "\"restart\":true");
    ok &= check(f.log.shutdowns == 1 && f.log.restart == 1, "transport asked to stop, restart");
    fixture_fini(&f);
    return ok;
}

static int test_handlers_history_and_comms(void) {
    fixture f;
    fixture_init(&f);
    run(&f, DSV3_JCH_SHELL, "execute_request", "{\"code\":\"ok\"}");
    run(&f, DSV3_JCH_SHELL, "execute_request", "{\"code\":\"fail\"}");
    int n0 = f.log.n;
    run(&f, DSV3_JCH_SHELL, "history_request", "{\"hist_access_type\":\"tail\",\"n\":1}");
    run(&f, DSV3_JCH_SHELL, "history_request",
        "{\"hist_access_type\":\"search\",\"pattern\":\"o*\"}");
    run(&f, DSV3_JCH_SHELL, "history_request",
        "{\"hist_access_type\":\"range\",\"start\":1,\"stop\":2,\"output\":true}");
    run(&f, DSV3_JCH_SHELL, "comm_info_request", "{}");
    run(&f, DSV3_JCH_SHELL, "comm_open", "{\"comm_id\":\"c1\",\"target_name\":\"t\",\"data\":{}}");
    int ok = sent(&f, n0, DSV3_JCH_SHELL, "history_reply", "\"history\":[[1,2,\"fail\"]]");
    ok &= sent(&f, n0 + 1, DSV3_JCH_SHELL, "history_reply", "\"history\":[[1,1,\"ok\"]]");
    ok &= sent(&f, n0 + 2, DSV3_JCH_SHELL, "history_reply", "\"history\":[[1,1,[\"ok\",null]]]");
    ok &= sent(&f, n0 + 3, DSV3_JCH_SHELL, "comm_info_reply", "\"comms\":{}");
    ok &= sent(&f, n0 + 4, DSV3_JCH_IOPUB, "comm_close", "\"comm_id\":\"c1\"");
    fixture_fini(&f);
    return ok;
}

/* ---------------------------------------------------------------- runner --------------- */

static const dsv3_test tests[] = {
    {"test_wire_signature_matches_python_hmac", test_wire_signature_matches_python_hmac},
    {"test_wire_parse_accepts_signed_message", test_wire_parse_accepts_signed_message},
    {"test_wire_parse_rejects_bad_signature", test_wire_parse_rejects_bad_signature},
    {"test_wire_parse_rejects_tampered_content", test_wire_parse_rejects_tampered_content},
    {"test_wire_parse_rejects_replay", test_wire_parse_rejects_replay},
    {"test_wire_parse_rejects_truncated_frames", test_wire_parse_rejects_truncated_frames},
    {"test_wire_parse_rejects_malformed_json", test_wire_parse_rejects_malformed_json},
    {"test_wire_empty_key_skips_verification", test_wire_empty_key_skips_verification},
    {"test_wire_rejects_unknown_scheme", test_wire_rejects_unknown_scheme},
    {"test_wire_encode_output_is_valid_utf8", test_wire_encode_output_is_valid_utf8},
    {"test_wire_codepoint_offsets", test_wire_codepoint_offsets},
    {"test_handlers_execute_sends_input_outputs_then_reply",
     test_handlers_execute_sends_input_outputs_then_reply},
    {"test_handlers_execution_count_increments_unless_silent",
     test_handlers_execution_count_increments_unless_silent},
    {"test_handlers_error_asks_to_abort_queue", test_handlers_error_asks_to_abort_queue},
    {"test_handlers_input_follows_allow_stdin", test_handlers_input_follows_allow_stdin},
    {"test_handlers_complete_counts_code_points", test_handlers_complete_counts_code_points},
    {"test_handlers_inspect_and_is_complete", test_handlers_inspect_and_is_complete},
    {"test_handlers_channel_rules", test_handlers_channel_rules},
    {"test_handlers_history_and_comms", test_handlers_history_and_comms},
    {"test_handlers_execute_without_string_code_is_an_error",
     test_handlers_execute_without_string_code_is_an_error},
};

int main(int argc, char **argv) {
    return DSV3_RUN_BOOL_TESTS(tests, argc, argv);
}
