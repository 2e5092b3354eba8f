/* routing.h (render) — a routing record as text, a CSV table and a heatmap.
 *
 * Pure functions of a dsv3_routerec (probes/routing.h) and the text of its tokens: no I/O, no
 * model, the same output for the same input. They own the layouts; the record and its
 * statistics belong to probes/routing. Returned strings are malloc'd (NULL when out of memory,
 * or as said below); the caller frees them. Thread rules: none.
 */
#ifndef DSV3_RENDER_ROUTING_H
#define DSV3_RENDER_ROUTING_H

#include <stdint.h>

#include "probes/routing.h"

/* The tokens a record was made from, for labels. */
typedef struct {
    int64_t T;                 /* tokens routed (positions 0..T-1) */
    const char *const *pieces; /* [T] the text of each token (entries may be NULL), or NULL */
    int64_t n_layers;  /* main-model layers (records at layer n_layers are the MTP block's) */
    int64_t first_moe; /* first MoE layer */
} dsv3_route_labels;

/* Text: a heading, then one row per token (the first 64, then " ..."), one column per
 * main-model MoE layer with the chosen experts; '*' marks a choice the bias changed. */
char *dsv3_render_route_text(const dsv3_routerec *r, const dsv3_route_labels *lab);

/* CSV: the header "layer,pos,token,rank,expert,weight,score,biased,bias_changed", then one row
 * per (record, rank) in record order; pos and rank are 1-based (as in the Lua API), floats %.9g,
 * score/biased of a missing expert (-1) are 0. */
char *dsv3_render_route_csv(const dsv3_routerec *r);

/* Heatmap of one layer: tokens x experts, the unbiased sigmoid scores, chosen cells marked; as
 * SVG when svg, else as text. NULL when the layer has no record (or out of memory). */
char *dsv3_render_route_heatmap(const dsv3_routerec *r, const dsv3_route_labels *lab, int64_t layer,
                                int svg);

/* SVG of every main-model MoE layer as small multiples (tokens x experts, the unbiased sigmoid
 * scores, chosen cells outlined, one colour bar); each cell's hover title holds the decision:
 * layer, position and token, expert and its group (", dropped" when the group was not kept),
 * score, biased score, and the rank and combine weight when chosen. NULL when no layer has
 * a record (or out of memory). */
char *dsv3_render_route_svg(const dsv3_routerec *r, const dsv3_route_labels *lab);

#endif
