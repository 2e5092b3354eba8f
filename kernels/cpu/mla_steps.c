/* mla_steps.c — the coarse MLA steps of the CPU backends (see backend.h: mla_store,
 * mla_attend_chunk, mla_naive), written over the backend they run on so that the reference and
 * the optimised backend each use their own norm, RoPE and attention kernels
 * (docs/ARCHITECTURE.md, "MLA", "Latent cache"). */
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/pool.h"

/* Threads pay off only when the score/sum work (~ n * nh * keys * width) is large. */
static int worth_threads(int64_t n, int64_t nh, int64_t pos0, int64_t width) {
    return n * nh * (pos0 + n) * width >= ((int64_t)1 << 16);
}

void dsv3_cpu_mla_store(const dsv3_backend *be, float *c, float *kpe, int64_t cs, const float *kva,
                        int64_t n, int64_t pos0, const float *norm, float eps, int64_t rkv, int64_t dr,
                        const float *inv_freq, float factor) {
    for (int64_t s = 0; s < n; s++) {
        const float *kv = kva + s * (rkv + dr);
        be->rmsnorm(c + (pos0 + s) * cs, kv, norm, 1, rkv, eps);
        memcpy(kpe + (pos0 + s) * cs, kv + rkv, (size_t)dr * 4);
    }
    be->rope(kpe + pos0 * cs, n, 1, dr, cs, dr, pos0, inv_freq, factor);
}

/* One item of the absorbed attention: (query s, head group g). */
typedef struct {
    const dsv3_backend *be;
    float *u, *scratch;
    int64_t scratch_stride;
    const float *qabs, *qpe, *c, *kpe;
    int64_t cs, qpe_stride, nh, pos0, rkv, dr;
    float scale;
    int64_t groups, hb; /* head groups per query and heads per group */
} absorbed_job;

/* The backend's mla_attend over keys 0..pos0+s (causal) for heads [g * hb, (g + 1) * hb) of
 * query s; probabilities in this thread's scratch. */
static void absorbed_item(void *vctx, int64_t it, int tid) {
    const absorbed_job *a = vctx;
    const int64_t s = it / a->groups, h0 = (it % a->groups) * a->hb;
    const int64_t hn = h0 + a->hb <= a->nh ? a->hb : a->nh - h0, sh = s * a->nh + h0;
    a->be->mla_attend(a->u + sh * a->rkv, a->scratch + (int64_t)tid * a->nh * a->scratch_stride,
                      a->qabs + sh * a->rkv, a->qpe + sh * a->qpe_stride, a->qpe_stride, a->c, a->kpe,
                      a->cs, hn, a->pos0 + s + 1, a->rkv, a->dr, a->scale);
}

void dsv3_cpu_mla_attend_chunk(const dsv3_backend *be, float *u, float *scratch,
                               int64_t scratch_stride, const float *qabs, const float *qpe,
                               int64_t qpe_stride, const float *c, const float *kpe, int64_t cs,
                               int64_t nh, int64_t n, int64_t pos0, int64_t rkv, int64_t dr,
                               float scale) {
    /* Items: one query with all its heads (they share each cached row) when there are enough
     * queries for every thread, else the heads of a query split into one group per thread. */
    const int threads = dsv3_pool_threads();
    absorbed_job a = {be, u, scratch, scratch_stride, qabs, qpe, c, kpe, cs, qpe_stride, nh, pos0, rkv,
                      dr, scale, n >= 2 * threads ? 1 : (threads < nh ? threads : nh), 0};
    a.hb = (nh + a.groups - 1) / a.groups;
    a.groups = (nh + a.hb - 1) / a.hb;
    if (worth_threads(n, nh, pos0, rkv + dr)) dsv3_pool_for(n * a.groups, absorbed_item, &a);
    else
        for (int64_t it = 0; it < n * a.groups; it++) absorbed_item(&a, it, 0);
}

typedef struct {
    float *o, *scratch;
    int64_t scratch_stride;
    const float *q, *kvfull, *kpe;
    int64_t cs, nh, dn, dv, dr, pos0;
    float scale;
} naive_job;

/* Pair sh = s * nh + h: P over [k_nope_t ; k_pe_t], o[s, h] = sum_t P[t] v_t. */
static void naive_pair(void *vctx, int64_t sh, int tid) {
    const naive_job *a = vctx;
    const int64_t nh = a->nh, dn = a->dn, dv = a->dv, dr = a->dr, dq = dn + dr, kvw = nh * (dn + dv);
    const int64_t s = sh / nh, h = sh % nh, T = a->pos0 + s + 1;
    float *p = a->scratch + (int64_t)tid * a->scratch_stride;
    const float *qn = a->q + sh * dq, *qp = qn + dn;
    for (int64_t t = 0; t < T; t++)
        p[t] = (dsv3_dot_f32(qn, a->kvfull + t * kvw + h * (dn + dv), dn) +
                dsv3_dot_f32(qp, a->kpe + t * a->cs, dr)) *
               a->scale;
    dsv3_softmax_f32(p, T);
    float *o = a->o + s * nh * dv + h * dv;
    memset(o, 0, (size_t)dv * 4);
    for (int64_t t = 0; t < T; t++) {
        const float pt = p[t], *v = a->kvfull + t * kvw + h * (dn + dv) + dn;
#pragma omp simd
        for (int64_t i = 0; i < dv; i++) o[i] += pt * v[i];
    }
}

void dsv3_cpu_mla_naive(const dsv3_backend *be, float *o, float *scratch, int64_t scratch_stride,
                        const float *q, const float *kvfull, const float *kpe, int64_t cs,
                        int64_t nh, int64_t dn, int64_t dv, int64_t dr, int64_t n, int64_t pos0,
                        float scale, int64_t only) {
    (void)be;
    naive_job a = {o, scratch, scratch_stride, q, kvfull, kpe, cs, nh, dn, dv, dr, pos0, scale};
    if (only >= 0) naive_pair(&a, only, 0);
    else if (worth_threads(n, nh, pos0, dn + dr + dv)) dsv3_pool_for(n * nh, naive_pair, &a);
    else
        for (int64_t sh = 0; sh < n * nh; sh++) naive_pair(&a, sh, 0);
}
