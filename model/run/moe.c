/* moe.c — DeepSeekMoE with auxiliary-loss-free bias routing (docs/ARCHITECTURE.md, "Routing",
 * "MoE") and the SwiGLU MLP shared by dense layers, routed experts and the shared expert
 * ("SwiGLU").
 *
 * Routing follows HF in float32: sigmoid scores, the bias only for choosing, group-limited
 * top-k with non-kept groups masked to -inf, weights from the unbiased scores, normalised then
 * scaled. Tokens are then grouped by expert so each expert's weights are read once per chunk.
 */
#include <math.h>
#include <string.h>

#include "model/run/model_internal.h"

void dsv3_mlp_forward(dsv3_run *r, const dsv3_mlp_w *w, const float *x, float *out, int64_t m) {
    const dsv3_backend *be = r->m->be;
    const int64_t width = w->gate.rows;
    const dsv3_matmul_op gu[2] = {{r->ffn_g, x, &w->gate, m, 0}, {r->ffn_u, x, &w->up, m, 0}};
    be->matmul_many(gu, 2);
    be->silu_mul(r->ffn_g, r->ffn_u, m * width);
    be->matmul(out, r->ffn_g, &w->down, m);
}

/* Index of the largest v[i] over i < n with keep[i]; ties go to the lower index ("Routing"). */
static int64_t argmax_masked(const float *v, const unsigned char *keep, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (keep[i] && (best < 0 || v[i] > v[best])) best = i;
    return best;
}

void dsv3_moe_route(const dsv3_config *c, const dsv3_route_opts *o, const float *logits,
                    int32_t *idx, float *w) {
    enum { MAX_E = DSV3_MAX_EXPERTS };
    const int64_t E = c->n_routed_experts, G = c->n_group, per = E / G, K = c->num_experts_per_tok;
    float s[MAX_E], b[MAX_E], gs[MAX_E];
    unsigned char keep[MAX_E];
    /* 1-3: unbiased sigmoid scores s; biased scores b used only for the choice. A disabled
     * expert can never win: its biased score is -inf. */
    for (int64_t e = 0; e < E; e++) {
        s[e] = 1.0f / (1.0f + expf(-logits[e]));
        b[e] = o->bias ? s[e] + o->bias[e] : s[e];
        if (o->disabled && o->disabled[e]) b[e] = -INFINITY;
    }
    /* 4: group score = sum of the two largest biased scores of the group. */
    for (int64_t g = 0; g < G; g++) {
        float m1 = -INFINITY, m2 = -INFINITY;
        for (int64_t e = g * per; e < (g + 1) * per; e++) {
            if (b[e] > m1) {
                m2 = m1;
                m1 = b[e];
            } else if (b[e] > m2) {
                m2 = b[e];
            }
        }
        gs[g] = per >= 2 ? m1 + m2 : m1;
    }
    /* 5: keep the topk_group best groups; experts of the others are excluded (-inf). */
    unsigned char gkeep[MAX_E], gavail[MAX_E];
    memset(gkeep, 0, (size_t)G);
    memset(gavail, 1, (size_t)G);
    for (int64_t k = 0; k < c->topk_group; k++) {
        int64_t g = argmax_masked(gs, gavail, G);
        gkeep[g] = 1;
        gavail[g] = 0;
    }
    for (int64_t e = 0; e < E; e++) keep[e] = gkeep[e / per] && b[e] > -INFINITY;
    /* 6-7: top-K of b over kept experts (or the forced ones); weights from the unbiased s. */
    float sum = 0.0f;
    for (int64_t k = 0; k < K; k++) {
        int64_t e = o->forced ? o->forced[k] : argmax_masked(b, keep, E);
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
    /* 8-9: normalise to sum 1 (HF adds 1e-20), then scale. */
    const float norm = c->norm_topk_prob ? 1.0f / (sum + 1e-20f) : 1.0f;
    for (int64_t k = 0; k < K; k++) w[k] = w[k] * norm * (float)c->routed_scaling_factor;
    if (o->scores_out) memcpy(o->scores_out, s, (size_t)E * sizeof *s);
    if (o->biased_out) memcpy(o->biased_out, b, (size_t)E * sizeof *b);
    if (o->groups_out) memcpy(o->groups_out, gkeep, (size_t)G);
}

/* Routing of token s of the chunk with the run's interventions; reports it to the route hook. */
static void route_token(dsv3_run *r, const dsv3_layer_w *L, int64_t li, int64_t s, int64_t pos0) {
    const dsv3_config *c = &r->m->cfg;
    const int64_t E = c->n_routed_experts, K = c->num_experts_per_tok;
    const float *logits = r->router + s * E;
    int32_t *idx = r->sel_idx + s * K;
    float *w = r->sel_w + s * K;
    dsv3_route_opts o = {.bias = L->bias};
    if (r->has_iv) {
        if (r->iv.zero_bias) o.bias = NULL;
        if (r->iv.disabled) o.disabled = r->iv.disabled + li * E;
        const int32_t *f = r->iv.forced ? r->iv.forced + li * K : NULL;
        if (f && f[0] >= 0 && (r->iv.forced_pos < 0 || r->iv.forced_pos == pos0 + s)) o.forced = f;
    }
    const int record = dsv3_hooked(r) && r->hooks.route;
    if (record) {
        o.scores_out = r->rec_scores;
        o.biased_out = r->rec_biased;
        o.groups_out = r->rec_groups;
    }
    dsv3_moe_route(c, &o, logits, idx, w);
    if (!record) return;
    float w_nobias[DSV3_MAX_TOPK]; /* config.c caps num_experts_per_tok */
    dsv3_route_opts nb = {.bias = NULL, .disabled = o.disabled};
    dsv3_moe_route(c, &nb, logits, r->rec_nobias, w_nobias);
    dsv3_route_event ev = {.layer = li, .pos = pos0 + s, .token = r->cur_ids ? r->cur_ids[s] : -1,
                           .scores = r->rec_scores, .biased = r->rec_biased,
                           .group_kept = r->rec_groups, .experts = idx, .weights = w,
                           .experts_nobias = r->rec_nobias};
    r->hooks.route(r->hooks.ud, &ev);
}

void dsv3_moe_forward_layer(dsv3_run *r, const dsv3_layer_w *L, int64_t li, const float *xn,
                            float *out, int64_t n, int64_t pos0) {
    const dsv3_config *c = &r->m->cfg;
    const int64_t E = c->n_routed_experts, K = c->num_experts_per_tok, H = c->hidden_size;
    r->m->be->matmul(r->router, xn, &L->router, n);
    for (int64_t s = 0; s < n; s++) route_token(r, L, li, s, pos0);
    /* Dispatch: counting sort of (token, weight) slots by expert; slots of a missing expert
     * (idx -1, every other expert disabled) are dropped. */
    int64_t *cnt = r->exp_count;
    memset(cnt, 0, (size_t)(E + 1) * sizeof *cnt);
    for (int64_t i = 0; i < n * K; i++)
        if (r->sel_idx[i] >= 0) cnt[r->sel_idx[i] + 1]++;
    for (int64_t e = 0; e < E; e++) cnt[e + 1] += cnt[e];
    for (int64_t s = 0; s < n; s++)
        for (int64_t k = 0; k < K; k++) {
            const int64_t e = r->sel_idx[s * K + k];
            if (e < 0) continue;
            const int64_t at = cnt[e]++;
            r->disp_tok[at] = (int32_t)s;
            r->disp_w[at] = r->sel_w[s * K + k];
        }
    /* cnt[e] is now the end of expert e's slots; its start is cnt[e - 1] (0 for e = 0).
     * All experts (and the shared expert) run as two batches of products — gate/up, then
     * down — so the backend spreads every weight row of the layer over its threads at once. */
    const dsv3_backend *be = r->m->be;
    const int64_t Fm = c->moe_intermediate_size, Fs = Fm * c->n_shared_experts;
    const int64_t nslots = cnt[E - 1];
    const int shared = c->n_shared_experts > 0 && !(r->has_iv && r->iv.drop_shared);
    for (int64_t j = 0; j < nslots; j++)
        memcpy(r->xg + j * H, xn + (int64_t)r->disp_tok[j] * H, (size_t)H * 4);
    dsv3_matmul_op *ops = r->ops;
    int64_t nops = 0;
    for (int64_t e = 0; e < E; e++) {
        const int64_t beg = e ? cnt[e - 1] : 0, m = cnt[e] - beg;
        if (m == 0) continue;
        ops[nops++] = (dsv3_matmul_op){r->ffn_g + beg * Fm, r->xg + beg * H, &L->experts[e].gate, m, 0};
        ops[nops++] = (dsv3_matmul_op){r->ffn_u + beg * Fm, r->xg + beg * H, &L->experts[e].up, m, 0};
    }
    float *sg = r->ffn_g + nslots * Fm, *su = r->ffn_u + nslots * Fm; /* shared expert rows */
    if (shared) {
        ops[nops++] = (dsv3_matmul_op){sg, xn, &L->shared.gate, n, 0};
        ops[nops++] = (dsv3_matmul_op){su, xn, &L->shared.up, n, 0};
    }
    be->matmul_many(ops, nops);
    be->silu_mul(r->ffn_g, r->ffn_u, nslots * Fm + (shared ? n * Fs : 0));
    nops = 0;
    for (int64_t e = 0; e < E; e++) {
        const int64_t beg = e ? cnt[e - 1] : 0, m = cnt[e] - beg;
        if (m == 0) continue;
        ops[nops++] = (dsv3_matmul_op){r->yg + beg * H, r->ffn_g + beg * Fm, &L->experts[e].down, m, 0};
    }
    if (shared) ops[nops++] = (dsv3_matmul_op){r->yg + nslots * H, sg, &L->shared.down, n, 0};
    be->matmul_many(ops, nops);
    /* Combine in expert order: out[t] = sum_k w_k E_k(x_t), then + shared ("MoE"). (omp
     * simd: -O2 does not vectorise loops whose pointers may alias; these run per token.) */
    memset(out, 0, (size_t)(n * H) * 4);
    for (int64_t j = 0; j < nslots; j++) {
        float *o = out + (int64_t)r->disp_tok[j] * H;
        const float wj = r->disp_w[j], *y = r->yg + j * H;
#pragma omp simd
        for (int64_t i = 0; i < H; i++) o[i] += wj * y[i];
    }
    if (shared) {
        const float *ys = r->yg + nslots * H;
#pragma omp simd
        for (int64_t i = 0; i < n * H; i++) out[i] += ys[i];
    }
}
