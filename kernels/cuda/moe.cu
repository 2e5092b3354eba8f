/* moe.cu — the CUDA backend's MoE steps (kernels/backend.h: moe_route, moe_experts;
 * references kernels/cpu/route.c and kernels/cpu/moe_steps.c; docs/ARCHITECTURE.md, "Routing",
 * "MoE"). Nothing goes back to the host: the routing, the dispatch, the products and the combine
 * all read the device's own results.
 *
 * moe_route: one thread per token runs the CPU's rule step by step (sigmoid scores, the bias
 * for the choice, group scores from the two best, groups kept, top-k with ties to the lower
 * index, weights from the unbiased scores, normalisation, scaling), so the choices are the
 * CPU's wherever CUDA's expf gives the same scores (it may differ by an ulp: a near-tie could
 * then go the other way). Per-token work arrays live in device scratch.
 *
 * moe_experts: the dispatch is the CPU's counting sort (one thread; slots grouped by expert in
 * token order, the count array left exactly as the CPU leaves it), then one launch for every
 * routed slot's gate and up rows (each block reads its slot's expert from a descriptor table),
 * the shared expert through matmul, one SwiGLU over everything, one launch for every slot's down
 * rows, and the combine per token over its slots in slot (= expert) order, then + shared. */
#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"

namespace {

/* argmax over keep[i] != 0, ties to the lower index (route.c argmax_masked). */
__device__ int64_t argmax_masked(const float *v, const unsigned char *keep, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (keep[i] && (best < 0 || v[i] > v[best])) best = i;
    return best;
}

struct route_work {
    float *s, *b, *gs;          /* [E], [E], [G] */
    unsigned char *keep, *gkeep, *gavail; /* [E], [G], [G] */
};

/* kernels/cpu/route.c dsv3_route_token, line for line. */
__device__ void route_token(const dsv3_route_params p, const float *logits, const float *bias,
                            const unsigned char *disabled, const int32_t *forced, int32_t *idx, float *w,
                            const route_work &wk) {
    const int64_t E = p.experts, G = p.groups, per = E / G, K = p.k;
    float *s = wk.s, *b = wk.b, *gs = wk.gs;
    unsigned char *keep = wk.keep, *gkeep = wk.gkeep, *gavail = wk.gavail;
    for (int64_t e = 0; e < E; e++) {
        s[e] = 1.0f / (1.0f + expf(-logits[e]));
        b[e] = bias ? s[e] + bias[e] : s[e];
        if (disabled && disabled[e]) b[e] = -INFINITY;
    }
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
    for (int64_t g = 0; g < G; g++) {
        gkeep[g] = 0;
        gavail[g] = 1;
    }
    for (int64_t k = 0; k < p.topk_group; k++) {
        const int64_t g = argmax_masked(gs, gavail, G);
        gkeep[g] = 1;
        gavail[g] = 0;
    }
    for (int64_t e = 0; e < E; e++) keep[e] = gkeep[e / per] && b[e] > -INFINITY;
    float sum = 0.0f;
    for (int64_t k = 0; k < K; k++) {
        const int64_t e = forced ? forced[k] : argmax_masked(b, keep, E);
        if (e < 0) {
            idx[k] = -1;
            w[k] = 0.0f;
            continue;
        }
        keep[e] = 0;
        idx[k] = (int32_t)e;
        w[k] = s[e];
        sum += s[e];
    }
    const float norm = p.norm_topk_prob ? 1.0f / (sum + 1e-20f) : 1.0f;
    for (int64_t k = 0; k < K; k++) w[k] = w[k] * norm * p.scaling;
}

__global__ void k_route(int32_t *idx, float *w, float *record, const float *logits, int64_t n, int64_t pos0,
                        dsv3_route_params p, const float *bias, const unsigned char *disabled, const int32_t *forced,
                        int64_t forced_pos, float *fwork, unsigned char *bwork, int32_t *iwork) {
    const int64_t s = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= n) return;
    const int64_t E = p.experts, G = p.groups, K = p.k, R = 2 * E + G + 3 * K;
    route_work wk;
    wk.s = fwork + s * (2 * E + G + K);
    wk.b = wk.s + E;
    wk.gs = wk.b + E;
    wk.keep = bwork + s * (E + 2 * G);
    wk.gkeep = wk.keep + E;
    wk.gavail = wk.gkeep + G;
    const float *lg = logits + s * E;
    int32_t *is = idx + s * K;
    float *ws = w + s * K;
    const int32_t *f = forced && forced[0] >= 0 && (forced_pos < 0 || forced_pos == pos0 + s) ? forced : nullptr;
    route_token(p, lg, bias, disabled, f, is, ws, wk);
    if (!record) return;
    float *rec = record + s * R;
    for (int64_t e = 0; e < E; e++) {
        rec[e] = wk.s[e];
        rec[E + e] = wk.b[e];
    }
    float *rg = rec + 2 * E, *ri = rg + G, *rw = ri + K, *rn = rw + K;
    for (int64_t g = 0; g < G; g++) rg[g] = wk.gkeep[g];
    for (int64_t k = 0; k < K; k++) {
        ri[k] = (float)is[k];
        rw[k] = ws[k];
    }
    int32_t *nobias = iwork + s * K;
    float *w_nobias = wk.gs + G; /* [K] */
    route_token(p, lg, nullptr, disabled, nullptr, nobias, w_nobias, wk);
    for (int64_t k = 0; k < K; k++) rn[k] = (float)nobias[k];
}

/* moe_steps.c's counting sort, plus each token's slots in ascending order (tok_slots [n, K],
 * -1 last) and each slot's expert (slot_e). One thread. */
__global__ void k_dispatch(const int32_t *idx, const float *w, int64_t n, int64_t K, int64_t E, int64_t *cnt,
                           int32_t *disp_tok, float *disp_w, int32_t *slot_e, int32_t *tok_slots) {
    if (blockIdx.x || threadIdx.x) return;
    for (int64_t e = 0; e <= E; e++) cnt[e] = 0;
    for (int64_t i = 0; i < n * K; i++)
        if (idx[i] >= 0) cnt[idx[i] + 1]++;
    for (int64_t e = 0; e < E; e++) cnt[e + 1] += cnt[e];
    for (int64_t s = 0; s < n; s++) {
        for (int64_t k = 0; k < K; k++) {
            const int64_t e = idx[s * K + k];
            if (e < 0) {
                tok_slots[s * K + k] = -1;
                continue;
            }
            const int64_t at = cnt[e]++;
            disp_tok[at] = (int32_t)s;
            disp_w[at] = w[s * K + k];
            slot_e[at] = (int32_t)e;
            tok_slots[s * K + k] = (int32_t)at;
        }
        int32_t *ts = tok_slots + s * K; /* insertion sort, -1 (no expert) last */
        for (int64_t i = 1; i < K; i++) {
            const int32_t v = ts[i];
            int64_t j = i;
            while (j > 0 && (v >= 0 && (ts[j - 1] < 0 || ts[j - 1] > v))) {
                ts[j] = ts[j - 1];
                j--;
            }
            ts[j] = v;
        }
    }
}

struct ffn_dev {
    wdev gate, up, down;
};

enum { ROWS = 4 };

/* g[j, f] = xn[tok(j)] . gate_e(j)[f], u likewise, for every slot j < cnt[E]. */
__global__ void k_gate_up(float *g, float *u, const float *xn, const ffn_dev *ex, const int32_t *slot_e,
                          const int32_t *disp_tok, const int64_t *cnt, int64_t E, int64_t H, int64_t F) {
    const int lane = threadIdx.x & 31;
    const int64_t f = (int64_t)blockIdx.x * ROWS + (threadIdx.x >> 5), nslots = cnt[E];
    if (f >= F) return;
    for (int64_t j = blockIdx.y; j < nslots; j += gridDim.y) {
        const ffn_dev &d = ex[slot_e[j]];
        const float *x = xn + (int64_t)disp_tok[j] * H;
        float a = 0.0f, b = 0.0f;
        for (int64_t c = lane; c < H; c += 32) {
            a += wload(d.gate, f, c) * x[c];
            b += wload(d.up, f, c) * x[c];
        }
        a = warp_sum(a);
        b = warp_sum(b);
        if (lane == 0) {
            g[j * F + f] = a;
            u[j * F + f] = b;
        }
    }
}

/* y[j, r] = g[j] . down_e(j)[r] for every slot j. */
__global__ void k_down(float *y, const float *g, const ffn_dev *ex, const int32_t *slot_e, const int64_t *cnt,
                       int64_t E, int64_t H, int64_t F) {
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * ROWS + (threadIdx.x >> 5), nslots = cnt[E];
    if (r >= H) return;
    for (int64_t j = blockIdx.y; j < nslots; j += gridDim.y) {
        const wdev &d = ex[slot_e[j]].down;
        const float *x = g + j * F;
        float a = 0.0f;
        for (int64_t c = lane; c < F; c += 32) a += wload(d, r, c) * x[c];
        a = warp_sum(a);
        if (lane == 0) y[j * H + r] = a;
    }
}

/* out[t] = sum over t's slots in slot order of w_j y_j, then + ys[t]. */
__global__ void k_combine(float *out, const float *y, const float *ys, const float *disp_w, const int32_t *tok_slots,
                          int64_t n, int64_t H, int64_t K) {
    const int64_t total = n * H;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / H, c = i % H;
        float acc = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            const int32_t j = tok_slots[t * K + k];
            if (j < 0) break;
            acc += disp_w[j] * y[(int64_t)j * H + c];
        }
        if (ys) acc += ys[i];
        out[i] = acc;
    }
}

unsigned grid1(int64_t n) {
    const int64_t b = (n + 255) / 256;
    return (unsigned)(b < 65536 ? (b > 0 ? b : 1) : 65536);
}

} // namespace

void dsv3_cuda_moe_route(const dsv3_backend *be, int32_t *idx, float *w, float *record, const float *logits,
                         int64_t n, int64_t pos0, const dsv3_route_params *p, const float *bias,
                         const unsigned char *disabled, const int32_t *forced, int64_t forced_pos) {
    (void)be;
    if (n <= 0) return;
    const int64_t E = p->experts, G = p->groups, K = p->k;
    const size_t fl = (size_t)(n * (2 * E + G + K)) * sizeof(float), by = (size_t)(n * (E + 2 * G));
    const size_t ib = (size_t)(n * K) * sizeof(int32_t);
    char *work = (char *)dsv3_cuda_scratch(SCR_ROUTE, fl + ib + by);
    k_route<<<blocks_for(n, 64), 64>>>(idx, w, record, logits, n, pos0, *p, bias, disabled, forced, forced_pos,
                                       (float *)work, (unsigned char *)(work + fl + ib), (int32_t *)(work + fl));
    DSV3_CUDA_LAUNCHED("moe_route");
}

void dsv3_cuda_moe_experts(const dsv3_backend *be, float *out, const float *xn, const int32_t *idx,
                           const float *w, int64_t n, int64_t H, int64_t K, int64_t E, int64_t F,
                           const dsv3_ffn_weights *experts, const dsv3_ffn_weights *shared, int64_t Fs,
                           const dsv3_moe_scratch *sc) {
    (void)be;
    if (n <= 0) return;
    /* The experts' weights as a device table (one small upload per layer call). */
    ffn_dev *host = (ffn_dev *)malloc((size_t)E * sizeof *host);
    if (!host) {
        fprintf(stderr, "cuda: moe_experts: out of host memory\n");
        abort();
    }
    for (int64_t e = 0; e < E; e++) {
        host[e].gate = dsv3_cuda_weight(&experts[e].gate, "moe_experts");
        host[e].up = dsv3_cuda_weight(&experts[e].up, "moe_experts");
        host[e].down = dsv3_cuda_weight(&experts[e].down, "moe_experts");
    }
    ffn_dev *dex = (ffn_dev *)dsv3_cuda_scratch(SCR_DESC, (size_t)E * sizeof *dex);
    dsv3_cuda_check(cudaMemcpyAsync(dex, host, (size_t)E * sizeof *dex, cudaMemcpyHostToDevice, 0), "moe_experts");
    free(host); /* pageable source: copied to staging before cudaMemcpyAsync returns */
    const int64_t slots = n * K;
    int32_t *ws = (int32_t *)dsv3_cuda_scratch(SCR_MOE, (size_t)(2 * slots) * sizeof(int32_t));
    int32_t *slot_e = ws, *tok_slots = ws + slots;
    k_dispatch<<<1, 1>>>(idx, w, n, K, E, sc->count, sc->disp_tok, sc->disp_w, slot_e, tok_slots);
    DSV3_CUDA_LAUNCHED("moe_experts (dispatch)");
    /* Routed slots at [0, n*K) of ffn_g/ffn_u and yg; the shared expert's rows after n*K. */
    const unsigned gy = (unsigned)(slots < 65535 ? slots : 65535);
    k_gate_up<<<dim3(blocks_for(F, ROWS), gy), 32 * ROWS>>>(sc->ffn_g, sc->ffn_u, xn, dex, slot_e, sc->disp_tok,
                                                           sc->count, E, H, F);
    DSV3_CUDA_LAUNCHED("moe_experts (gate/up)");
    float *sg = sc->ffn_g + slots * F, *su = sc->ffn_u + slots * F;
    if (shared) {
        dsv3_cuda_matmul(sg, xn, &shared->gate, n);
        dsv3_cuda_matmul(su, xn, &shared->up, n);
    }
    dsv3_cuda_silu_mul(sc->ffn_g, sc->ffn_u, slots * F + (shared ? n * Fs : 0));
    k_down<<<dim3(blocks_for(H, ROWS), gy), 32 * ROWS>>>(sc->yg, sc->ffn_g, dex, slot_e, sc->count, E, H, F);
    DSV3_CUDA_LAUNCHED("moe_experts (down)");
    float *ys = shared ? sc->yg + slots * H : nullptr;
    if (shared) dsv3_cuda_matmul(ys, sg, &shared->down, n);
    k_combine<<<grid1(n * H), 256>>>(out, sc->yg, ys, sc->disp_w, tok_slots, n, H, K);
    DSV3_CUDA_LAUNCHED("moe_experts (combine)");
}
