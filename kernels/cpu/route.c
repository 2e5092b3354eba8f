/* route.c — the routing rule of one token (see route.h). */
#include "kernels/cpu/route.h"

#include <math.h>
#include <string.h>

/* Index of the largest v[i] over i < n with keep[i]; ties go to the lower index ("Routing"). */
static int64_t argmax_masked(const float *v, const unsigned char *keep, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (keep[i] && (best < 0 || v[i] > v[best])) best = i;
    return best;
}

void dsv3_route_token(const dsv3_route_params *p, const float *logits, const float *bias,
                      const unsigned char *disabled, const int32_t *forced, int32_t *idx,
                      float *w, float *scores_out, float *biased_out, unsigned char *groups_out) {
    enum { MAX_E = DSV3_ROUTE_MAX_EXPERTS };
    const int64_t E = p->experts, G = p->groups, per = E / G, K = p->k;
    float s[MAX_E], b[MAX_E], gs[MAX_E];
    unsigned char keep[MAX_E];
    /* 1-3: unbiased scores s (sigmoid per expert, or the softmax over all E experts in float32
     * with the maximum subtracted, as HF's V2 gate computes it); biased scores b used only for
     * the choice. A disabled expert can never win: its biased score is -inf. */
    if (p->scoring == DSV3_SCORE_SOFTMAX) {
        float mx = -INFINITY, sum = 0.0f;
        for (int64_t e = 0; e < E; e++) mx = logits[e] > mx ? logits[e] : mx;
        for (int64_t e = 0; e < E; e++) sum += s[e] = expf(logits[e] - mx);
        for (int64_t e = 0; e < E; e++) s[e] /= sum;
    } else {
        for (int64_t e = 0; e < E; e++) s[e] = 1.0f / (1.0f + expf(-logits[e]));
    }
    for (int64_t e = 0; e < E; e++) {
        b[e] = bias ? s[e] + bias[e] : s[e];
        if (disabled && disabled[e]) b[e] = -INFINITY;
    }
    /* 4: group score = sum of the two largest biased scores of the group (noaux_tc), or the
     * largest one (group_limited_greedy); greedy ranks no groups. */
    for (int64_t g = 0; g < G && p->method != DSV3_TOPK_GREEDY; g++) {
        float m1 = -INFINITY, m2 = -INFINITY;
        for (int64_t e = g * per; e < (g + 1) * per; e++) {
            if (b[e] > m1) {
                m2 = m1;
                m1 = b[e];
            } else if (b[e] > m2) {
                m2 = b[e];
            }
        }
        gs[g] = per >= 2 && p->method == DSV3_TOPK_NOAUX_TC ? m1 + m2 : m1;
    }
    /* 5: keep the topk_group best groups; experts of the others are excluded (-inf). */
    unsigned char gkeep[MAX_E], gavail[MAX_E];
    memset(gkeep, p->method == DSV3_TOPK_GREEDY, (size_t)G);
    memset(gavail, 1, (size_t)G);
    for (int64_t k = 0; k < p->topk_group && p->method != DSV3_TOPK_GREEDY; k++) {
        int64_t g = argmax_masked(gs, gavail, G);
        gkeep[g] = 1;
        gavail[g] = 0;
    }
    for (int64_t e = 0; e < E; e++) keep[e] = gkeep[e / per] && b[e] > -INFINITY;
    /* 6-7: top-K of b over kept experts (or the forced ones); weights from the unbiased s. */
    float sum = 0.0f;
    for (int64_t k = 0; k < K; k++) {
        int64_t e = forced ? forced[k] : argmax_masked(b, keep, E);
        if (e < 0) { /* fewer experts left than K (all others disabled): weight 0 */
            idx[k] = -1;
            w[k] = 0.0f;
            continue;
        }
        keep[e] = 0;
        idx[k] = (int32_t)e;
        w[k] = s[e];
        sum += s[e];
    }
    /* 8-9: normalise to sum 1 (HF adds 1e-20), then scale (the caller's params say whether:
     * DeepSeek-V2 scales only the weights it does not normalise). */
    const float norm = p->norm_topk_prob ? 1.0f / (sum + 1e-20f) : 1.0f;
    for (int64_t k = 0; k < K; k++) w[k] = w[k] * norm * p->scaling;
    if (scores_out) memcpy(scores_out, s, (size_t)E * sizeof *s);
    if (biased_out) memcpy(biased_out, b, (size_t)E * sizeof *b);
    if (groups_out) memcpy(groups_out, gkeep, (size_t)G);
}
