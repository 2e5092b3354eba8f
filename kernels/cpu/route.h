/* route.h — the routing rule of one token, on the CPU (docs/ARCHITECTURE.md, "Routing").
 *
 * Owns the arithmetic of the family's choice for one token: sigmoid (V3) or softmax (V2) scores,
 * the bias for the choice only, group scores (sum of the two best biased scores of a group for
 * noaux_tc, the best one for group_limited_greedy, none for greedy), the kept groups, top-K over
 * kept experts, weights from the unbiased scores, normalised and scaled as the params say. The CPU
 * backends' moe_route runs it per token; the trainer calls it through dsv3_moe_route
 * (model/run/moe.c). Does not own interventions' bookkeeping (which layer, which position).
 * Thread rules: no state.
 */
#ifndef DSV3_ROUTE_H
#define DSV3_ROUTE_H

#include <stdint.h>

#include "kernels/backend.h"

/* logits [E] -> idx [K] (-1 past the experts left when others are disabled), w [K].
 * bias [E] or NULL; disabled [E] (1 = excluded) or NULL; forced [K] or NULL (used as the
 * choice). scores_out / biased_out [E] and groups_out [G] receive the unbiased scores, the
 * scores that chose and the kept groups when not NULL. */
void dsv3_route_token(const dsv3_route_params *p, const float *logits, const float *bias,
                      const unsigned char *disabled, const int32_t *forced, int32_t *idx,
                      float *w, float *scores_out, float *biased_out, unsigned char *groups_out);

#endif
