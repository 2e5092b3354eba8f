/* moe.c — DeepSeekMoE with auxiliary-loss-free bias routing (docs/ARCHITECTURE.md, "Routing",
 * "MoE") and the SwiGLU MLP shared by dense layers, routed experts and the shared expert
 * ("SwiGLU").
 *
 * Routing follows HF in float32: sigmoid scores, the bias only for choosing, group-limited
 * top-k with non-kept groups masked to -inf, weights from the unbiased scores, normalised then
 * scaled. The backend's moe_route and moe_experts do the work on backend memory; this file
 * supplies the layer's weights, bias and interventions and turns routing records into events.
 */
#include <string.h>

#include "kernels/cpu/route.h"
#include "model/run/model_internal.h"

void dsv3_mlp_forward(dsv3_run *r, const dsv3_mlp_w *w, const float *x, float *out, int64_t m) {
    const dsv3_backend *be = r->be;
    const int64_t width = w->gate.rows;
    const dsv3_matmul_op gu[2] = {{r->ffn_g, x, &w->gate, m, 0}, {r->ffn_u, x, &w->up, m, 0}};
    be->matmul_many(gu, 2);
    be->silu_mul(r->ffn_g, r->ffn_u, m * width);
    be->matmul(out, r->ffn_g, &w->down, m);
}

void dsv3_moe_route(const dsv3_config *c, const dsv3_route_opts *o, const float *logits,
                    int32_t *idx, float *w) {
    const dsv3_route_params p = dsv3_config_route_params(c);
    dsv3_route_token(&p, logits, o->bias, o->disabled, o->forced, idx, w, o->scores_out, o->biased_out,
                     o->groups_out);
}

/* Route events of the chunk from the downloaded records (one download per layer). */
static void report_routes(dsv3_run *r, int64_t li, int64_t n, int64_t pos0) {
    const dsv3_route_params *p = &r->m->route;
    const int64_t E = p->experts, G = p->groups, K = p->k, R = dsv3_route_record_floats(p);
    const float *records = r->record; /* read in place where backend memory is host memory */
    if (!r->be->is_host) {
        r->be->download(r->host_record, r->record, (size_t)(n * R) * sizeof(float));
        records = r->host_record;
    }
    for (int64_t s = 0; s < n; s++) {
        const float *rec = records + s * R, *rg = rec + 2 * E, *ri = rg + G, *rw = ri + K, *rn = rw + K;
        for (int64_t g = 0; g < G; g++) r->ev_groups[g] = rg[g] != 0.0f;
        for (int64_t k = 0; k < K; k++) {
            r->ev_idx[k] = (int32_t)ri[k];
            r->ev_nobias[k] = (int32_t)rn[k];
        }
        dsv3_route_event ev = {.layer = li, .pos = pos0 + s, .token = r->cur_ids ? r->cur_ids[s] : -1,
                               .scores = rec, .biased = rec + E, .group_kept = r->ev_groups,
                               .experts = r->ev_idx, .weights = rw, .experts_nobias = r->ev_nobias};
        r->hooks.route(r->hooks.ud, &ev);
    }
}

void dsv3_moe_forward_layer(dsv3_run *r, const dsv3_layer_w *L, int64_t li, const float *xn,
                            float *out, int64_t n, int64_t pos0) {
    const dsv3_config *c = &r->m->cfg;
    const dsv3_backend *be = r->be;
    const int64_t E = c->n_routed_experts, K = c->num_experts_per_tok, H = c->hidden_size;
    be->matmul(r->router, xn, &L->router, n);
    const float *bias = L->bias;
    const unsigned char *disabled = NULL;
    const int32_t *forced = NULL;
    int64_t forced_pos = -1;
    if (r->has_iv) {
        if (r->iv.zero_bias) bias = NULL;
        if (r->iv.disabled) disabled = r->iv.disabled + li * E;
        if (r->iv.forced) forced = r->iv.forced + li * K;
        forced_pos = r->iv.forced_pos;
    }
    const int record = dsv3_hooked(r) && r->hooks.route;
    be->moe_route(be, r->sel_idx, r->sel_w, record ? r->record : NULL, r->router, n, pos0, &r->m->route,
                  bias, disabled, forced, forced_pos);
    if (record) report_routes(r, li, n, pos0);
    const int shared = c->n_shared_experts > 0 && !(r->has_iv && r->iv.drop_shared);
    be->moe_experts(be, out, xn, r->sel_idx, r->sel_w, n, H, K, E, c->moe_intermediate_size,
                    L->experts, shared ? &L->shared : NULL, c->moe_intermediate_size * c->n_shared_experts,
                    &r->moe);
}
