/* server.h — the kernel's ZeroMQ side: connection file, sockets, threads, busy/idle.
 *
 * Owns the five sockets of docs/ARCHITECTURE.md, "Jupyter kernel protocol", bound where the
 * connection file says: shell, control and stdin (ROUTER), iopub (XPUB: a PUB that also sees
 * subscriptions, so the first request can wait for its client's subscriber) and heartbeat (REP).
 * Three threads: the caller's runs shell requests one at a time (and so the interpreter); a control
 * thread answers control requests (interrupt, shutdown, kernel_info) and flushes buffered stream
 * text while a cell runs; a heartbeat thread echoes pings. Every verified request is wrapped in
 * iopub status busy ... idle; messages that fail verification or parsing are logged (rate-limited,
 * on stderr) and dropped without any reply. Publications go through one mutex, so iopub keeps
 * the order: execute_input, outputs, reply, idle.
 * Thread rules: open, run and close from one thread.
 */
#ifndef DSV3_JUPYTER_SERVER_H
#define DSV3_JUPYTER_SERVER_H

#include "jupyter/interp.h"
#include "model/base/status.h"

typedef struct dsv3_jserver dsv3_jserver;

/* Connection-file values (docs/ARCHITECTURE.md, "Jupyter kernel protocol"). */
typedef struct {
    char transport[8]; /* "tcp" or "ipc" */
    char ip[256];      /* bind address (tcp) or path prefix (ipc) */
    int shell_port, iopub_port, stdin_port, control_port, hb_port;
    char *key;       /* malloc'd HMAC key string, "" for no signing */
    char scheme[32]; /* "hmac-sha256" */
} dsv3_jconnection;

/* Reads a connection file. Returns DSV3_OK; DSV3_EIO if it cannot be read; DSV3_EFORMAT for
 * bad JSON, a missing or mistyped key, or a port out of 1..65535 (the message names the key);
 * DSV3_EUNSUPPORTED for a transport other than tcp/ipc. On failure c->key is NULL. */
dsv3_status dsv3_jconnection_read(dsv3_jconnection *c, const char *path, dsv3_err *err);
/* Wipes and frees the key; NULL is a no-op. */
void dsv3_jconnection_fini(dsv3_jconnection *c);

/* Binds the five sockets of c. interrupt is the binary's interrupt flag, read while waiting
 * for input_reply (it is the interpreter's flag too). Returns DSV3_OK, DSV3_EIO when a socket
 * cannot bind (the message names the endpoint), DSV3_EUNSUPPORTED for a bad signature scheme,
 * DSV3_ENOMEM. On failure nothing stays open. */
dsv3_status dsv3_jserver_open(dsv3_jserver **out, const dsv3_jconnection *c,
                              const volatile int *interrupt, dsv3_err *err);

/* Serves requests with interp until a shutdown_request (or the parent process dies). Returns
 * DSV3_OK then, with *restart set from the request. */
dsv3_status dsv3_jserver_run(dsv3_jserver *srv, const dsv3_jinterp *interp, int *restart,
                             dsv3_err *err);

/* Closes the sockets (linger 1 s for the last messages) and frees; NULL is a no-op. */
void dsv3_jserver_close(dsv3_jserver *srv);

#endif
