/* handlers.h — what each Jupyter request does: one table from msg_type to handler.
 *
 * Owns the meaning of messages (docs/ARCHITECTURE.md, "Jupyter kernel protocol"): execution
 * counting, the iopub sequence of an execute (execute_input, outputs, reply), stop_on_error,
 * completion and inspection in code points, is_complete, history, comm_info, kernel_info, shutdown
 * and interrupt. It calls the interpreter (interp.h) and sends through a transport (the server, or
 * a test's mock); it never touches a socket or a signature, and the server wraps each request in
 * busy/idle. Thread rules: requests of the shell channel come from one thread; control requests
 * (kernel_info, interrupt, shutdown) may come at the same time from another, and touch only
 * read-only state, the interpreter's interrupt and the transport's shutdown.
 */
#ifndef DSV3_JUPYTER_HANDLERS_H
#define DSV3_JUPYTER_HANDLERS_H

#include <cjson/cJSON.h>

#include "jupyter/interp.h"
#include "jupyter/wire.h"
#include "model/base/status.h"

typedef enum { DSV3_JCH_SHELL, DSV3_JCH_CONTROL, DSV3_JCH_STDIN, DSV3_JCH_IOPUB } dsv3_jchannel;

/* What the handlers need from whoever carries messages. */
typedef struct {
    void *ud;
    /* Sends msg_type with content (and metadata, NULL for {}) on ch, with req's header as the
     * parent header and, on shell/control/stdin, req's identities. Takes ownership of content
     * and metadata. Pending stream text is published first, so the order of outputs holds. */
    void (*send)(void *ud, dsv3_jchannel ch, const dsv3_wire_msg *req, const char *msg_type,
                 cJSON *content, cJSON *metadata);
    /* Stream text on iopub for req (the transport may coalesce consecutive pieces). */
    void (*stream)(void *ud, const dsv3_wire_msg *req, const char *name, const char *text,
                   size_t len);
    /* Sends input_request {prompt, password} for req on stdin and waits for the input_reply;
     * same statuses as dsv3_jpublisher.input. */
    dsv3_status (*input)(void *ud, const dsv3_wire_msg *req, const char *prompt, int password,
                         char **value, dsv3_err *err);
    /* Asks the transport to stop serving once the current request is answered. */
    void (*shutdown)(void *ud, int restart);
} dsv3_jtransport;

typedef struct dsv3_jkernel dsv3_jkernel;

/* A kernel over interp and transport (both copied; what they point to must outlive it).
 * Returns DSV3_OK or DSV3_ENOMEM. */
dsv3_status dsv3_jkernel_new(dsv3_jkernel **out, const dsv3_jinterp *interp,
                             const dsv3_jtransport *transport, dsv3_err *err);
void dsv3_jkernel_free(dsv3_jkernel *k);

typedef enum {
    DSV3_JH_DONE = 0,    /* handled (a reply was sent, or the type has none) */
    DSV3_JH_UNKNOWN,     /* no handler for this msg_type on this channel: nothing was sent */
    DSV3_JH_ABORT_QUEUE, /* an execute failed with stop_on_error: abort the queued executes */
} dsv3_jh_result;

/* Handles one verified request that arrived on ch (shell or control). */
dsv3_jh_result dsv3_jkernel_handle(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req);

/* A request that was queued when an execute failed with stop_on_error: an execute_request is
 * answered {"status":"aborted"} without running (no execute_input, count unchanged); any other
 * request is handled as by dsv3_jkernel_handle. */
dsv3_jh_result dsv3_jkernel_abort(dsv3_jkernel *k, dsv3_jchannel ch, const dsv3_wire_msg *req);

/* The execution counter (number of executes that stored history). */
long dsv3_jkernel_execution_count(const dsv3_jkernel *k);

/* Frees what an interpreter put in r and zeroes it; NULL is a no-op. */
void dsv3_jexec_result_fini(dsv3_jexec_result *r);

#endif
