/* routing.h — the routing record: which experts each token went to, at each MoE layer, and why.
 *
 * A dsv3_routerec collects dsv3_route_event's from the forward pass's route hook (docs/ARCHITECTURE.md, "Routing"):
 * per token × layer the chosen experts, their combine weights, every expert's unbiased and
 * biased score, the kept groups, and the choice a zero bias would have made. Capacity is
 * reserved before a forward, so the hook never allocates; events past it are counted as
 * dropped. Statistics (load, maximal violation, co-occurrence) are computed from a record.
 * Thread rules: one thread fills or reads a record at a time.
 */
#ifndef DSV3_ROUTING_H
#define DSV3_ROUTING_H

#include <stdint.h>

#include "model/run/forward.h"
#include "model/base/status.h"

typedef struct {
    int64_t E, K, G;   /* experts, experts per token, groups */
    int64_t n, cap;    /* records held / reserved */
    int64_t dropped;   /* events that found no room */
    /* per record i: */
    int64_t *layer;    /* [cap] checkpoint layer index */
    int64_t *pos;      /* [cap] absolute position */
    int32_t *token;    /* [cap] token id */
    int32_t *experts;  /* [cap, K] chosen, descending biased score */
    float *weights;    /* [cap, K] combine weights */
    int32_t *nobias;   /* [cap, K] the zero-bias choice */
    float *scores;     /* [cap, E] unbiased sigmoid scores */
    float *biased;     /* [cap, E] biased scores */
    unsigned char *groups; /* [cap, G] kept groups */
} dsv3_routerec;

dsv3_status dsv3_routerec_init(dsv3_routerec *r, int64_t E, int64_t K, int64_t G, dsv3_err *err);
void dsv3_routerec_fini(dsv3_routerec *r);
/* Makes room for `more` records beyond n (allocates; call before a forward). */
dsv3_status dsv3_routerec_reserve(dsv3_routerec *r, int64_t more, dsv3_err *err);
/* Hooks whose route callback appends to r. */
dsv3_hooks dsv3_routerec_hooks(dsv3_routerec *r);

/* Routes ids[0..n) through the main model of m (not the MTP block) and appends one record per
 * token and MoE layer to r, which must be initialised for m's E, K and G. Reserves the room
 * first, then checks n (1..max_position_embeddings, "N tokens (need 1..P)"), then runs one
 * forward; cancel (may be NULL) stops it with DSV3_EINTR. On failure r stays usable and holds
 * what it held before plus the records of the layers routed before the failure. */
dsv3_status dsv3_routerec_collect(dsv3_routerec *r, dsv3_model *m, const int32_t *ids, int64_t n,
                                  const volatile int *cancel, dsv3_err *err);

/* 1 if the bias changed record i's set of experts (order ignored). */
int dsv3_routerec_bias_changed(const dsv3_routerec *r, int64_t i);

/* Load of layer `layer` over the record: counts[E] tokens routed to each expert. Returns the
 * number of tokens seen at that layer. */
int64_t dsv3_routerec_load(const dsv3_routerec *r, int64_t layer, int64_t *counts);

/* Co-occurrence at layer `layer`: m[E, E] (row-major), m[a, b] = how many records chose both
 * expert a and expert b (a != b; the diagonal stays 0). */
void dsv3_routerec_cooc(const dsv3_routerec *r, int64_t layer, int64_t *m);

/* The DeepSeek-V3 report's maximal violation: max load / mean load - 1 (0 for no tokens). */
double dsv3_load_maxvio(const int64_t *counts, int64_t E);

/* JSON export (the `dsv3 route --json` format): {"layers":[{"layer":L,"tokens":[{"pos","token",
 * "experts","weights","scores","biased","groups","experts_nobias","bias_changed"}]}]} with
 * layers in ascending index, tokens in record order. Only layers < max_layer are included
 * (pass INT64_MAX for all). pieces (may be NULL) gives a "piece" string per record token id.
 * Returns a malloc'd string, or NULL when out of memory. */
char *dsv3_routerec_json(const dsv3_routerec *r, int64_t max_layer,
                         const char *(*piece)(const void *ud, int32_t id), const void *ud);

#endif
