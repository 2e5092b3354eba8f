/* probe.h — what the probes share: a run sized for one forward over a token sequence, the
 * check of that sequence's length, and log-softmax in double precision.
 *
 * It owns no probe: routing, effect, capture, lens, attention and mtp_trace each live in their
 * own file and use these. It does not own the forward pass (model/run/forward.h).
 * Thread rules: none beyond the run's (one thread per run).
 */
#ifndef DSV3_PROBE_H
#define DSV3_PROBE_H

#include <stdint.h>

#include "model/base/status.h"
#include "model/run/forward.h"

/* DSV3_OK when 1 <= n <= max_position_embeddings; else DSV3_EINVAL with "N tokens (need 1..P)",
 * the message the Lua probes have always given. */
dsv3_status dsv3_probe_check_len(const dsv3_model *m, int64_t n, dsv3_err *err);

/* A run for one forward over n tokens: cache of n positions, chunks of min(n, 512); cancel
 * (may be NULL) stops the forward with DSV3_EINTR. *out is the caller's (dsv3_run_free); on
 * failure it is NULL and the status is dsv3_run_new's. No length check: see above. */
dsv3_status dsv3_probe_run_new(dsv3_run **out, dsv3_model *m, int64_t n, const volatile int *cancel,
                               dsv3_err *err);

/* out[v] = x[v] - log(sum_u exp(x[u])) over V logits, in double with the max subtracted first
 * (docs/ARCHITECTURE.md, "Logit lens"): the form KL and lens probabilities are computed in. */
void dsv3_log_softmax(double *out, const float *x, int64_t V);

#endif
