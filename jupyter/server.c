/* server.c — connection file, sockets, the three threads, busy/idle (see server.h).
 *
 * Sections: logging → connection file → sending (headers, signing, the iopub lock and the
 * stream buffer) → receiving → the transport given to the handlers → control and heartbeat
 * threads → open, run, close.
 */
#define _GNU_SOURCE
#include "jupyter/server.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "jupyter/handlers.h"
#include "jupyter/wire.h"
#include "model/base/clock.h"

enum {
    MAX_FRAMES = 256,         /* a message with more frames is dropped */
    MAX_MSG_BYTES = 64 << 20, /* ZMQ_MAXMSGSIZE on the ROUTER sockets */
    LINGER_MS = 1000,
    SHELL_POLL_MS = 100,        /* how often the shell loop looks at the stop flag */
    FIRST_SUBSCRIBER_MS = 2000, /* the first request waits this long for an iopub subscriber */
    CONTROL_POLL_MS = 20,       /* control thread tick: also the stream flush check */
    STREAM_FLUSH_BYTES = 4096,  /* publish buffered stream text at this size ... */
    LOG_BURST = 20,             /* dropped-message log lines per LOG_WINDOW_S */
};
#define STREAM_FLUSH_S 0.03 /* ... or when its first byte is this old */
#define LOG_WINDOW_S 10.0

/* Stream text not yet published: consecutive pieces of one stream of one request. */
typedef struct {
    char name[8]; /* "stdout" / "stderr" */
    char *text;
    size_t len, cap;
    cJSON *parent; /* the request's header, or NULL when empty */
    double since;  /* monotonic time of the first buffered byte */
} stream_buf;

struct dsv3_jserver {
    void *ctx;
    void *shell, *control, *stdin_s, *iopub, *hb; /* sockets */
    dsv3_wire_auth auth;
    char session[37];      /* header.session of every message we send */
    atomic_ullong counter; /* msg_id counter */
    const volatile int *interrupt;
    atomic_int stop;            /* set by shutdown_request: every loop ends */
    int restart;                /* the shutdown_request's restart flag */
    pid_t parent_pid;           /* the launcher; its death ends the kernel (0: not watched) */
    pthread_mutex_t iopub_lock; /* iopub socket and the stream buffer */
    atomic_int subscribed;      /* an iopub subscription has arrived (XPUB) */
    stream_buf sb;
    dsv3_jkernel *kernel;
    pthread_mutex_t log_lock;
    double log_window; /* start of the current log window */
    int log_count;     /* drop lines logged in it */
};

/* ---------------------------------------------------------------- logging -------------- */

static void klog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void klog(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("dsv3-kernel: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* A dropped message: logged, at most LOG_BURST lines per LOG_WINDOW_S. */
static void log_drop(dsv3_jserver *srv, const char *channel, const char *why) {
    pthread_mutex_lock(&srv->log_lock);
    double t = dsv3_now_s();
    if (t - srv->log_window > LOG_WINDOW_S) {
        if (srv->log_count > LOG_BURST)
            klog("(%d more dropped messages not logged)", srv->log_count - LOG_BURST);
        srv->log_window = t;
        srv->log_count = 0;
    }
    if (srv->log_count++ < LOG_BURST) klog("%s: dropped a message: %s", channel, why);
    pthread_mutex_unlock(&srv->log_lock);
}

/* ---------------------------------------------------------------- connection file ------ */

static dsv3_status get_port(int *port, const cJSON *j, const char *key, const char *path,
                            dsv3_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v))
        return dsv3_errf(err, DSV3_EFORMAT, "kernel: %s: %s: missing or not a number", path, key);
    if (v->valuedouble < 1 || v->valuedouble > 65535 || v->valuedouble != (int)v->valuedouble)
        return dsv3_errf(err, DSV3_EFORMAT, "kernel: %s: %s: %g is not a port in 1..65535", path,
                         key, v->valuedouble);
    *port = (int)v->valuedouble;
    return DSV3_OK;
}

static dsv3_status get_string(char *out, size_t cap, const cJSON *j, const char *key,
                              const char *def, const char *path, dsv3_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : def;
    if (!s)
        return dsv3_errf(err, DSV3_EFORMAT, "kernel: %s: %s: missing or not a string", path, key);
    if (strlen(s) >= cap)
        return dsv3_errf(err, DSV3_EFORMAT, "kernel: %s: %s: too long", path, key);
    strcpy(out, s);
    return DSV3_OK;
}

dsv3_status dsv3_jconnection_read(dsv3_jconnection *c, const char *path, dsv3_err *err) {
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f) return dsv3_errf(err, DSV3_EIO, "kernel: %s: %s", path, strerror(errno));
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int bad = ferror(f) || !feof(f);
    fclose(f);
    if (bad) return dsv3_errf(err, DSV3_EIO, "kernel: %s: unreadable or over 64 KiB", path);
    buf[n] = 0;
    cJSON *j = cJSON_ParseWithLength(buf, n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return dsv3_errf(err, DSV3_EFORMAT, "kernel: %s: not a JSON object", path);
    }
    dsv3_status st = DSV3_OK;
    char key[4096];
    if (!st) st = get_string(c->transport, sizeof c->transport, j, "transport", "tcp", path, err);
    if (!st) st = get_string(c->ip, sizeof c->ip, j, "ip", "127.0.0.1", path, err);
    if (!st)
        st = get_string(c->scheme, sizeof c->scheme, j, "signature_scheme", "hmac-sha256", path,
                        err);
    if (!st) st = get_string(key, sizeof key, j, "key", "", path, err);
    if (!st) st = get_port(&c->shell_port, j, "shell_port", path, err);
    if (!st) st = get_port(&c->iopub_port, j, "iopub_port", path, err);
    if (!st) st = get_port(&c->stdin_port, j, "stdin_port", path, err);
    if (!st) st = get_port(&c->control_port, j, "control_port", path, err);
    if (!st) st = get_port(&c->hb_port, j, "hb_port", path, err);
    if (!st && strcmp(c->transport, "tcp") && strcmp(c->transport, "ipc"))
        st = dsv3_errf(err, DSV3_EUNSUPPORTED, "kernel: %s: transport \"%s\": expected tcp or ipc",
                       path, c->transport);
    cJSON_Delete(j);
    if (!st && !(c->key = strdup(key))) st = dsv3_errf(err, DSV3_ENOMEM, "kernel: out of memory");
    sodium_memzero(key, sizeof key);
    sodium_memzero(buf, sizeof buf);
    return st;
}

void dsv3_jconnection_fini(dsv3_jconnection *c) {
    if (!c) return;
    if (c->key) sodium_memzero(c->key, strlen(c->key));
    free(c->key);
    c->key = NULL;
}

/* ---------------------------------------------------------------- sending -------------- */

/* Sends all frames of out on sock. */
static void send_frames(void *sock, const dsv3_wire_out *out) {
    for (size_t i = 0; i < out->n; i++) {
        int more = i + 1 < out->n ? ZMQ_SNDMORE : 0;
        while (zmq_send(sock, out->frames[i].data, out->frames[i].len, more) < 0 &&
               errno == EINTR) {
        }
    }
}

/* Builds, signs and sends one message. parent is the request's header (NULL: {}); ids are
 * routing identities, or for iopub one topic frame. Takes ownership of content and metadata. */
static void send_msg(dsv3_jserver *srv, void *sock, const dsv3_wire_frame *ids, size_t n_ids,
                     const char *msg_type, const cJSON *parent, cJSON *content, cJSON *metadata) {
    cJSON *header =
        dsv3_wire_header_new(srv->session, msg_type, atomic_fetch_add(&srv->counter, 1));
    dsv3_wire_out out;
    dsv3_err err = {{0}};
    if (header && content &&
        dsv3_wire_encode(&out, &srv->auth, ids, n_ids, header, parent, metadata, content, &err) ==
            DSV3_OK) {
        send_frames(sock, &out);
        dsv3_wire_out_fini(&out);
    } else {
        klog("%s: not sent: %s", msg_type, err.msg[0] ? err.msg : "out of memory");
    }
    cJSON_Delete(header);
    cJSON_Delete(content);
    cJSON_Delete(metadata);
}

/* Publishes on iopub with the topic kernel.<session>.<msg_type>; iopub_lock held. */
static void publish_locked(dsv3_jserver *srv, const char *msg_type, const cJSON *parent,
                           cJSON *content) {
    char topic[128];
    int k = snprintf(topic, sizeof topic, "kernel.%s.%s", srv->session, msg_type);
    dsv3_wire_frame t = {topic, k > 0 && (size_t)k < sizeof topic ? (size_t)k : strlen(topic)};
    send_msg(srv, srv->iopub, &t, 1, msg_type, parent, content, NULL);
}

/* Bytes at the end of s[0..n) that begin a UTF-8 sequence not yet complete (0..3). */
static size_t incomplete_tail(const char *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

/* Publishes the buffered stream text; all = 0 keeps a cut UTF-8 sequence for later. */
static void flush_stream_locked(dsv3_jserver *srv, int all) {
    stream_buf *b = &srv->sb;
    if (!b->len) return;
    size_t keep = all ? 0 : incomplete_tail(b->text, b->len);
    if (keep == b->len) return;
    char *text = dsv3_wire_utf8_sanitize(b->text, b->len - keep, NULL);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", b->name);
    if (text) cJSON_AddStringToObject(c, "text", text);
    free(text);
    publish_locked(srv, "stream", b->parent, c);
    memmove(b->text, b->text + b->len - keep, keep);
    b->len = keep;
    b->since = dsv3_now_s();
    if (!keep) {
        cJSON_Delete(b->parent);
        b->parent = NULL;
    }
}

static void stream_append_locked(dsv3_jserver *srv, const dsv3_wire_msg *req, const char *name,
                                 const char *text, size_t len) {
    stream_buf *b = &srv->sb;
    const char *buffered_id =
        b->parent ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b->parent, "msg_id"))
                  : NULL;
    if (b->len && (strcmp(b->name, name) || !buffered_id || strcmp(buffered_id, req->msg_id)))
        flush_stream_locked(srv, 1);
    if (!b->len) {
        cJSON_Delete(b->parent);
        b->parent = cJSON_Duplicate(req->header, 1);
        snprintf(b->name, sizeof b->name, "%s", name);
        b->since = dsv3_now_s();
    }
    if (b->len + len > b->cap) {
        size_t nc = (b->len + len) * 2;
        char *nt = realloc(b->text, nc);
        if (!nt) return; /* text lost rather than the kernel */
        b->text = nt;
        b->cap = nc;
    }
    memcpy(b->text + b->len, text, len);
    b->len += len;
    if (b->len >= STREAM_FLUSH_BYTES || dsv3_now_s() - b->since >= STREAM_FLUSH_S)
        flush_stream_locked(srv, 0);
}

/* Reads the subscription messages that arrive on the XPUB iopub socket; iopub_lock held. */
static void drain_subscriptions_locked(dsv3_jserver *srv) {
    char buf[256];
    int n;
    while ((n = zmq_recv(srv->iopub, buf, sizeof buf, ZMQ_DONTWAIT)) >= 0)
        if (n >= 1 && buf[0] == 1) atomic_store(&srv->subscribed, 1);
}

/* PUB/SUB drops what is published before a subscriber's subscription arrives (the slow
 * joiner). A client that sends its first request at once (jupyter console) would then miss
 * the status of that request and wait for idle forever, so until a first subscription has
 * been seen, a request waits for one (at most FIRST_SUBSCRIBER_MS). */
static void await_first_subscriber(dsv3_jserver *srv) {
    for (int waited = 0; !atomic_load(&srv->subscribed) && waited < FIRST_SUBSCRIBER_MS;
         waited += 5) {
        pthread_mutex_lock(&srv->iopub_lock);
        drain_subscriptions_locked(srv);
        pthread_mutex_unlock(&srv->iopub_lock);
        if (!atomic_load(&srv->subscribed)) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

static void publish_status(dsv3_jserver *srv, const cJSON *parent, const char *state) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "execution_state", state);
    pthread_mutex_lock(&srv->iopub_lock);
    flush_stream_locked(srv, 1);
    publish_locked(srv, "status", parent, c);
    pthread_mutex_unlock(&srv->iopub_lock);
}

/* ---------------------------------------------------------------- receiving ------------ */

typedef struct {
    zmq_msg_t parts[MAX_FRAMES];
    size_t n;     /* parts initialised */
    int overflow; /* more than MAX_FRAMES frames: drop */
} multipart;

static void multipart_fini(multipart *m) {
    for (size_t i = 0; i < m->n; i++)
        zmq_msg_close(&m->parts[i]);
    m->n = 0;
    m->overflow = 0;
}

/* Receives one whole multipart message (non-blocking for the first frame). 0: got one. */
static int recv_multipart(void *sock, multipart *m) {
    m->n = 0;
    m->overflow = 0;
    int more = 1, first = 1;
    while (more) {
        zmq_msg_t scratch, *part = m->n < MAX_FRAMES ? &m->parts[m->n] : &scratch;
        zmq_msg_init(part);
        int rc;
        while ((rc = zmq_msg_recv(part, sock, first ? ZMQ_DONTWAIT : 0)) < 0 && errno == EINTR) {
        }
        if (rc < 0) {
            zmq_msg_close(part);
            multipart_fini(m);
            return -1;
        }
        first = 0;
        more = zmq_msg_more(part);
        if (part == &scratch) {
            zmq_msg_close(part);
            m->overflow = 1;
        } else {
            m->n++;
        }
    }
    return 0;
}

/* Receives and verifies one message from sock: 0 and *msg on success; -1 when nothing was
 * waiting or the message was dropped (and logged). */
static int recv_request(dsv3_jserver *srv, void *sock, const char *channel, dsv3_wire_msg *msg) {
    multipart m;
    if (recv_multipart(sock, &m) != 0) return -1;
    if (m.overflow) {
        log_drop(srv, channel, "more than 256 frames");
        multipart_fini(&m);
        return -1;
    }
    dsv3_wire_frame frames[MAX_FRAMES];
    for (size_t i = 0; i < m.n; i++)
        frames[i] = (dsv3_wire_frame){zmq_msg_data(&m.parts[i]), zmq_msg_size(&m.parts[i])};
    dsv3_err err = {{0}};
    dsv3_status st = dsv3_wire_parse(msg, &srv->auth, frames, m.n, &err);
    multipart_fini(&m);
    if (st) {
        log_drop(srv, channel, err.msg);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- transport ------------ */

static void t_send(void *ud, dsv3_jchannel ch, const dsv3_wire_msg *req, const char *msg_type,
                   cJSON *content, cJSON *metadata) {
    dsv3_jserver *srv = ud;
    pthread_mutex_lock(&srv->iopub_lock);
    flush_stream_locked(srv, 1); /* outputs before what follows them */
    if (ch == DSV3_JCH_IOPUB) {
        cJSON_Delete(metadata);
        publish_locked(srv, msg_type, req ? req->header : NULL, content);
        pthread_mutex_unlock(&srv->iopub_lock);
        return;
    }
    pthread_mutex_unlock(&srv->iopub_lock);
    void *sock = ch == DSV3_JCH_SHELL     ? srv->shell
                 : ch == DSV3_JCH_CONTROL ? srv->control
                                          : srv->stdin_s;
    send_msg(srv, sock, req ? req->ids : NULL, req ? req->n_ids : 0, msg_type,
             req ? req->header : NULL, content, metadata);
}

static void t_stream(void *ud, const dsv3_wire_msg *req, const char *name, const char *text,
                     size_t len) {
    dsv3_jserver *srv = ud;
    pthread_mutex_lock(&srv->iopub_lock);
    stream_append_locked(srv, req, name, text, len);
    pthread_mutex_unlock(&srv->iopub_lock);
}

/* input_request on stdin, then wait for the input_reply, watching the interrupt flag. */
static dsv3_status t_input(void *ud, const dsv3_wire_msg *req, const char *prompt, int password,
                           char **value, dsv3_err *err) {
    dsv3_jserver *srv = ud;
    *value = NULL;
    /* Drop stale replies (a previous cell's, after an interrupt). */
    dsv3_wire_msg stale;
    while (recv_request(srv, srv->stdin_s, "stdin", &stale) == 0)
        dsv3_wire_msg_fini(&stale);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "prompt", prompt);
    cJSON_AddBoolToObject(c, "password", password);
    t_send(srv, DSV3_JCH_STDIN, req, "input_request", c, NULL);
    for (;;) {
        if (srv->interrupt && *srv->interrupt)
            return dsv3_errf(err, DSV3_EINTR, "input: interrupted");
        if (atomic_load(&srv->stop))
            return dsv3_errf(err, DSV3_EPROTO, "input: the kernel is shutting down");
        zmq_pollitem_t it = {srv->stdin_s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0) continue;
        dsv3_wire_msg m;
        if (recv_request(srv, srv->stdin_s, "stdin", &m) != 0) continue;
        if (strcmp(m.msg_type, "input_reply")) {
            log_drop(srv, "stdin", "not an input_reply");
            dsv3_wire_msg_fini(&m);
            continue;
        }
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m.content, "value"));
        *value = strdup(v ? v : "");
        dsv3_wire_msg_fini(&m);
        return *value ? DSV3_OK : dsv3_errf(err, DSV3_ENOMEM, "input: out of memory");
    }
}

static void t_shutdown(void *ud, int restart) {
    dsv3_jserver *srv = ud;
    srv->restart = restart;
    atomic_store(&srv->stop, 1);
}

/* busy → handler → idle for one verified request; abort = 1 answers an execute "aborted". */
static dsv3_jh_result serve(dsv3_jserver *srv, dsv3_jchannel ch, const dsv3_wire_msg *req,
                            int abort) {
    await_first_subscriber(srv);
    publish_status(srv, req->header, "busy");
    dsv3_jh_result r = abort ? dsv3_jkernel_abort(srv->kernel, ch, req)
                             : dsv3_jkernel_handle(srv->kernel, ch, req);
    if (r == DSV3_JH_UNKNOWN)
        klog("%s: no handler for msg_type \"%s\"; ignored",
             ch == DSV3_JCH_SHELL ? "shell" : "control", req->msg_type);
    /* stop_on_error: exactly what is queued on shell now (before this request's idle lets the
     * client react) is answered "aborted"; what arrives later runs. */
    dsv3_wire_msg *queued = NULL;
    size_t nq = 0, cap = 0;
    while (r == DSV3_JH_ABORT_QUEUE && ch == DSV3_JCH_SHELL) {
        if (nq == cap) {
            size_t nc = cap ? 2 * cap : 16;
            dsv3_wire_msg *nqd = realloc(queued, nc * sizeof *nqd);
            if (!nqd) break;
            queued = nqd;
            cap = nc;
        }
        if (recv_request(srv, srv->shell, "shell", &queued[nq]) != 0) break;
        nq++;
    }
    publish_status(srv, req->header, "idle");
    for (size_t i = 0; i < nq; i++) {
        serve(srv, DSV3_JCH_SHELL, &queued[i], 1);
        dsv3_wire_msg_fini(&queued[i]);
    }
    free(queued);
    return r;
}

/* ---------------------------------------------------------------- threads -------------- */

static void *control_main(void *arg) {
    dsv3_jserver *srv = arg;
    while (!atomic_load(&srv->stop)) {
        zmq_pollitem_t it = {srv->control, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, CONTROL_POLL_MS);
        pthread_mutex_lock(&srv->iopub_lock); /* stream text stays at most STREAM_FLUSH_S old */
        drain_subscriptions_locked(srv);
        if (srv->sb.len && dsv3_now_s() - srv->sb.since >= STREAM_FLUSH_S) flush_stream_locked(srv, 0);
        pthread_mutex_unlock(&srv->iopub_lock);
        if (rc <= 0) continue;
        dsv3_wire_msg m;
        while (recv_request(srv, srv->control, "control", &m) == 0) {
            serve(srv, DSV3_JCH_CONTROL, &m, 0);
            dsv3_wire_msg_fini(&m);
        }
    }
    return NULL;
}

static void *heartbeat_main(void *arg) {
    dsv3_jserver *srv = arg;
    while (!atomic_load(&srv->stop)) {
        zmq_pollitem_t it = {srv->hb, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, SHELL_POLL_MS) <= 0) continue;
        zmq_msg_t ping;
        zmq_msg_init(&ping);
        if (zmq_msg_recv(&ping, srv->hb, ZMQ_DONTWAIT) >= 0) {
            while (zmq_msg_send(&ping, srv->hb, 0) < 0 && errno == EINTR) {
            }
        }
        zmq_msg_close(&ping);
    }
    return NULL;
}

/* ---------------------------------------------------------------- open / run / close --- */

static void *bind_socket(dsv3_jserver *srv, int type, const dsv3_jconnection *c, int port,
                         const char *name, dsv3_err *err) {
    char ep[400];
    if (!strcmp(c->transport, "ipc"))
        snprintf(ep, sizeof ep, "ipc://%s-%d", c->ip, port);
    else
        snprintf(ep, sizeof ep, "tcp://%s:%d", c->ip, port);
    void *s = zmq_socket(srv->ctx, type);
    if (!s) {
        dsv3_errf(err, DSV3_EIO, "kernel: %s socket: %s", name, zmq_strerror(errno));
        return NULL;
    }
    int linger = LINGER_MS;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (type == ZMQ_ROUTER) {
        int64_t max = MAX_MSG_BYTES;
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
    }
    if (zmq_bind(s, ep) != 0) {
        dsv3_errf(err, DSV3_EIO, "kernel: %s: cannot bind %s: %s", name, ep, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

dsv3_status dsv3_jserver_open(dsv3_jserver **out, const dsv3_jconnection *c,
                              const volatile int *interrupt, dsv3_err *err) {
    *out = NULL;
    dsv3_jserver *srv = calloc(1, sizeof *srv);
    if (!srv) return dsv3_errf(err, DSV3_ENOMEM, "kernel: out of memory");
    const char *key = c->key ? c->key : "";
    dsv3_status st = dsv3_wire_auth_init(&srv->auth, key, strlen(key), c->scheme, err);
    if (st) {
        free(srv);
        return st;
    }
    if (!*key) klog("warning: the connection file has an empty key: messages are not signed");
    pthread_mutex_init(&srv->iopub_lock, NULL);
    pthread_mutex_init(&srv->log_lock, NULL);
    srv->interrupt = interrupt;
    dsv3_wire_uuid(srv->session);
    pid_t pp = getppid();
    srv->parent_pid = pp > 1 ? pp : 0;
    srv->ctx = zmq_ctx_new();
    if (!srv->ctx || !(srv->shell = bind_socket(srv, ZMQ_ROUTER, c, c->shell_port, "shell", err)) ||
        !(srv->control = bind_socket(srv, ZMQ_ROUTER, c, c->control_port, "control", err)) ||
        !(srv->stdin_s = bind_socket(srv, ZMQ_ROUTER, c, c->stdin_port, "stdin", err)) ||
        !(srv->iopub = bind_socket(srv, ZMQ_XPUB, c, c->iopub_port, "iopub", err)) ||
        !(srv->hb = bind_socket(srv, ZMQ_REP, c, c->hb_port, "heartbeat", err))) {
        if (!srv->ctx) dsv3_errf(err, DSV3_EIO, "kernel: cannot create a ZeroMQ context");
        dsv3_jserver_close(srv);
        return DSV3_EIO;
    }
    *out = srv;
    return DSV3_OK;
}

dsv3_status dsv3_jserver_run(dsv3_jserver *srv, const dsv3_jinterp *interp, int *restart,
                             dsv3_err *err) {
    dsv3_jtransport t = {srv, t_send, t_stream, t_input, t_shutdown};
    dsv3_status st = dsv3_jkernel_new(&srv->kernel, interp, &t, err);
    if (st) return st;
    publish_status(srv, NULL, "starting");
    pthread_t control, heartbeat;
    int have_control = pthread_create(&control, NULL, control_main, srv) == 0;
    int have_hb = pthread_create(&heartbeat, NULL, heartbeat_main, srv) == 0;
    if (!have_control || !have_hb) {
        atomic_store(&srv->stop, 1);
        st = dsv3_errf(err, DSV3_ENOMEM, "kernel: cannot start the control/heartbeat threads");
    }
    while (!atomic_load(&srv->stop)) {
        zmq_pollitem_t it = {srv->shell, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, SHELL_POLL_MS);
        if (srv->parent_pid && getppid() != srv->parent_pid) {
            klog("the launching process is gone; exiting");
            atomic_store(&srv->stop, 1);
            break;
        }
        if (rc <= 0) continue;
        dsv3_wire_msg m;
        while (!atomic_load(&srv->stop) && recv_request(srv, srv->shell, "shell", &m) == 0) {
            serve(srv, DSV3_JCH_SHELL, &m, 0);
            dsv3_wire_msg_fini(&m);
        }
    }
    if (have_control) pthread_join(control, NULL);
    if (have_hb) pthread_join(heartbeat, NULL);
    pthread_mutex_lock(&srv->iopub_lock);
    flush_stream_locked(srv, 1);
    pthread_mutex_unlock(&srv->iopub_lock);
    if (restart) *restart = srv->restart;
    return st;
}

void dsv3_jserver_close(dsv3_jserver *srv) {
    if (!srv) return;
    void *socks[] = {srv->shell, srv->control, srv->stdin_s, srv->iopub, srv->hb};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (socks[i]) zmq_close(socks[i]);
    if (srv->ctx) zmq_ctx_term(srv->ctx);
    dsv3_jkernel_free(srv->kernel);
    dsv3_wire_auth_fini(&srv->auth);
    cJSON_Delete(srv->sb.parent);
    free(srv->sb.text);
    pthread_mutex_destroy(&srv->iopub_lock);
    pthread_mutex_destroy(&srv->log_lock);
    free(srv);
}
