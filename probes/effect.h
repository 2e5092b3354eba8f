/* effect.h — what an intervention on routing does to the model's predictions.
 *
 * dsv3_effect_measure runs the main model twice over the same tokens, once as it is and once
 * with a dsv3_interventions (experts disabled or forced, the bias or the shared expert left
 * out), and compares the two next-token distributions at every position: KL(base || intervened)
 * and whether the argmax changed. It owns that comparison; it does not own the interventions
 * themselves (model/run/forward.h applies them) nor reading them from Lua.
 * Thread rules: the model may be shared; the call uses two runs of its own, one after the other.
 */
#ifndef DSV3_PROBES_EFFECT_H
#define DSV3_PROBES_EFFECT_H

#include <stdint.h>

#include "model/base/status.h"
#include "model/run/forward.h"

typedef struct {
    int64_t T;  /* positions compared (= tokens) */
    double *kl; /* [T] KL(base || intervened) of the next-token distribution, nats */
    unsigned char *top1_changed;  /* [T] 1 where the intervened argmax differs from the base one */
    double mean_kl;               /* mean of kl over T */
    double max_kl;                /* max of kl (0 when every KL is 0) */
    double top1_changed_fraction; /* share of positions with top1_changed, in [0, 1] */
} dsv3_effect;

/* Fills *out for ids[0..T) over model m, the second forward with interventions iv (NULL: none,
 * so every KL is 0 and nothing changes). cancel (may be NULL) stops either forward with
 * DSV3_EINTR. Errors: DSV3_ENOMEM ("effect: out of memory"), or a run/forward status (bad ids,
 * T beyond the context). On success *out is the caller's (dsv3_effect_fini); on failure it
 * holds nothing. */
dsv3_status dsv3_effect_measure(dsv3_effect *out, dsv3_model *m, const int32_t *ids, int64_t T,
                                const dsv3_interventions *iv, const volatile int *cancel,
                                dsv3_err *err);

/* Frees the arrays of e and zeroes it; NULL and a zeroed struct are no-ops. */
void dsv3_effect_fini(dsv3_effect *e);

#endif
