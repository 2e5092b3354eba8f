/* moe_steps.c — the coarse MoE steps of the CPU backends (see backend.h: moe_route,
 * moe_experts; docs/ARCHITECTURE.md, "Routing", "MoE"). Tokens are grouped by expert (a
 * counting sort of their slots) so each expert's weights are read once per chunk, and every
 * expert's products run as two batches on the backend's matmul_many. */
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/route.h"

void dsv3_cpu_moe_route(const dsv3_backend *be, int32_t *idx, float *w, float *record,
                        const float *logits, int64_t n, int64_t pos0, const dsv3_route_params *p,
                        const float *bias, const unsigned char *disabled, const int32_t *forced,
                        int64_t forced_pos) {
    (void)be;
    const int64_t E = p->experts, G = p->groups, K = p->k, R = dsv3_route_record_floats(p);
    for (int64_t s = 0; s < n; s++) {
        const float *lg = logits + s * E;
        int32_t *is = idx + s * K;
        float *ws = w + s * K;
        const int32_t *f = forced && forced[0] >= 0 && (forced_pos < 0 || forced_pos == pos0 + s) ? forced : NULL;
        if (!record) {
            dsv3_route_token(p, lg, bias, disabled, f, is, ws, NULL, NULL, NULL);
            continue;
        }
        float *rec = record + s * R;
        unsigned char groups[DSV3_ROUTE_MAX_EXPERTS];
        int32_t nobias[DSV3_ROUTE_MAX_K];
        float w_nobias[DSV3_ROUTE_MAX_K];
        dsv3_route_token(p, lg, bias, disabled, f, is, ws, rec, rec + E, groups);
        dsv3_route_token(p, lg, NULL, disabled, NULL, nobias, w_nobias, NULL, NULL, NULL);
        float *rg = rec + 2 * E, *ri = rg + G, *rw = ri + K, *rn = rw + K;
        for (int64_t g = 0; g < G; g++) rg[g] = groups[g];
        for (int64_t k = 0; k < K; k++) {
            ri[k] = (float)is[k];
            rw[k] = ws[k];
            rn[k] = (float)nobias[k];
        }
    }
}

void dsv3_cpu_moe_experts(const dsv3_backend *be, float *out, const float *xn, const int32_t *idx,
                          const float *w, int64_t n, int64_t H, int64_t K, int64_t E, int64_t F,
                          const dsv3_ffn_weights *experts, const dsv3_ffn_weights *shared,
                          int64_t Fs, const dsv3_moe_scratch *sc) {
    /* Dispatch: counting sort of (token, weight) slots by expert; slots of a missing expert
     * (idx -1, every other expert disabled) are dropped. */
    int64_t *cnt = sc->count;
    memset(cnt, 0, (size_t)(E + 1) * sizeof *cnt);
    for (int64_t i = 0; i < n * K; i++)
        if (idx[i] >= 0) cnt[idx[i] + 1]++;
    for (int64_t e = 0; e < E; e++) cnt[e + 1] += cnt[e];
    for (int64_t s = 0; s < n; s++)
        for (int64_t k = 0; k < K; k++) {
            const int64_t e = idx[s * K + k];
            if (e < 0) continue;
            const int64_t at = cnt[e]++;
            sc->disp_tok[at] = (int32_t)s;
            sc->disp_w[at] = w[s * K + k];
        }
    /* cnt[e] is now the end of expert e's slots; its start is cnt[e - 1] (0 for e = 0).
     * All experts (and the shared expert) run as two batches of products — gate/up, then
     * down — so the backend spreads every weight row of the layer over its threads at once. */
    const int64_t nslots = cnt[E - 1];
    for (int64_t j = 0; j < nslots; j++)
        memcpy(sc->xg + j * H, xn + (int64_t)sc->disp_tok[j] * H, (size_t)H * 4);
    dsv3_matmul_op *ops = sc->ops;
    int64_t nops = 0;
    for (int64_t e = 0; e < E; e++) {
        const int64_t beg = e ? cnt[e - 1] : 0, m = cnt[e] - beg;
        if (m == 0) continue;
        ops[nops++] = (dsv3_matmul_op){sc->ffn_g + beg * F, sc->xg + beg * H, &experts[e].gate, m, 0};
        ops[nops++] = (dsv3_matmul_op){sc->ffn_u + beg * F, sc->xg + beg * H, &experts[e].up, m, 0};
    }
    float *sg = sc->ffn_g + nslots * F, *su = sc->ffn_u + nslots * F; /* shared expert rows */
    if (shared) {
        ops[nops++] = (dsv3_matmul_op){sg, xn, &shared->gate, n, 0};
        ops[nops++] = (dsv3_matmul_op){su, xn, &shared->up, n, 0};
    }
    be->matmul_many(ops, nops);
    be->silu_mul(sc->ffn_g, sc->ffn_u, nslots * F + (shared ? n * Fs : 0));
    nops = 0;
    for (int64_t e = 0; e < E; e++) {
        const int64_t beg = e ? cnt[e - 1] : 0, m = cnt[e] - beg;
        if (m == 0) continue;
        ops[nops++] = (dsv3_matmul_op){sc->yg + beg * H, sc->ffn_g + beg * F, &experts[e].down, m, 0};
    }
    if (shared) ops[nops++] = (dsv3_matmul_op){sc->yg + nslots * H, sg, &shared->down, n, 0};
    be->matmul_many(ops, nops);
    /* Combine in expert order: out[t] = sum_k w_k E_k(x_t), then + shared ("MoE"). (omp
     * simd: -O2 does not vectorise loops whose pointers may alias; these run per token.) */
    memset(out, 0, (size_t)(n * H) * 4);
    for (int64_t j = 0; j < nslots; j++) {
        float *o = out + (int64_t)sc->disp_tok[j] * H;
        const float wj = sc->disp_w[j], *y = sc->yg + j * H;
#pragma omp simd
        for (int64_t i = 0; i < H; i++) o[i] += wj * y[i];
    }
    if (shared) {
        const float *ys = sc->yg + nslots * H;
#pragma omp simd
        for (int64_t i = 0; i < n * H; i++) out[i] += ys[i];
    }
}
