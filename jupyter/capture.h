/* capture.h — a file descriptor of the kernel process (its stderr) caught in a pipe, so that
 * what C code and Lua's io.stderr write during a cell reaches the notebook as a stderr stream
 * instead of the terminal the kernel was started from.
 *
 * dsv3_jcapture_open points the descriptor at a pipe. A reader thread empties the pipe: while
 * the capture is held (a cell runs) the bytes are kept for dsv3_jcapture_take, otherwise they
 * go on to the original descriptor (kernel diagnostics between cells stay on the terminal).
 * dsv3_jcapture_take also reads what is in the pipe at that moment, so everything written
 * before the call is in its answer: a caller that takes before each of its own outputs keeps
 * the order in which they were written.
 * Thread rules: every call but open/close may come from any thread (one mutex); close from the
 * thread that opened it, once nothing else uses the capture.
 */
#ifndef DSV3_JUPYTER_CAPTURE_H
#define DSV3_JUPYTER_CAPTURE_H

#include <stddef.h>

#include "model/base/status.h"

typedef struct dsv3_jcapture dsv3_jcapture;

/* Redirects fd (e.g. 2) into a new pipe and starts the reader thread, not held. Returns DSV3_OK,
 * or DSV3_EIO / DSV3_ENOMEM with err set and fd left as it was. */
dsv3_status dsv3_jcapture_open(dsv3_jcapture **out, int fd, dsv3_err *err);

/* on = 1: keep what is written from now on for dsv3_jcapture_take; on = 0: pass it to the
 * original descriptor again (bytes still kept are passed on first). NULL c: nothing. */
void dsv3_jcapture_hold(dsv3_jcapture *c, int on);

/* Everything kept so far, including what is in the pipe now: *bytes is malloc'd (caller frees)
 * or NULL when there is nothing; returns the byte count. NULL c: 0. */
size_t dsv3_jcapture_take(dsv3_jcapture *c, char **bytes);

/* Puts the original descriptor back, passes on what is left and stops the thread. NULL: no-op. */
void dsv3_jcapture_close(dsv3_jcapture *c);

#endif
