/* interp_session.h — the kernel's interpreter (interp.h) over a dsv3 Lua session.
 *
 * Owns one dsv3_session (repl/session/session.h) and turns its outputs into Jupyter terms: print and
 * generated tokens become stream text, display() becomes display_data / update_display_data,
 * input() and io.read() become an input_request, io.write() stream text, io.stderr and the C
 * level's stderr (through a capture, capture.h) stderr stream text, the values a cell
 * returns an execute_result bundle (text/plain, and text/html, image/svg+xml, application/json
 * where they fit), and a failing cell ename/evalue/traceback ("SyntaxError", "LuaError", or
 * "Interrupted" when the interrupt flag stopped it, including a generation that ended early).
 * Thread rules: those of interp.h; the interrupt flag is the binary's and may be set by a signal
 * handler or the control thread.
 */
#ifndef DSV3_JUPYTER_INTERP_SESSION_H
#define DSV3_JUPYTER_INTERP_SESSION_H

#include "jupyter/capture.h"
#include "jupyter/interp.h"
#include "model/base/status.h"

typedef struct dsv3_jsession dsv3_jsession;

/* A new session interpreter. flag is the interrupt flag (kept; must outlive it): the
 * interpreter clears it when an execute starts and ends, and interrupt() sets it. *interp is
 * filled with the interface (valid while the object lives). errout (may be NULL; kept, must
 * outlive it) is the process's captured stderr: held while a cell runs, and what it caught is
 * published as stderr stream text before each of the cell's own outputs and at its end, so C
 * code's and io.stderr's writes come in the order they were made. Returns DSV3_OK, or the
 * session's status with err set. */
dsv3_status dsv3_jsession_new(dsv3_jsession **out, dsv3_jinterp *interp, volatile int *flag,
                              dsv3_jcapture *errout, dsv3_err *err);
void dsv3_jsession_free(dsv3_jsession *js);

#endif
