/* train_ops.c — forward/backward pairs of the training operators (see train_ops.h).
 *
 * Each pair sits together, forward first, with the equation and the spec section before it.
 * Parallel loops split the outputs between threads and never the reductions, so results are
 * the same for any thread count (needed for bit-exact resume, spec/training.md §10.2).
 */
#include "model/train_ops.h"

#include <math.h>
#include <string.h>

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define PAR_MIN ((int64_t)1 << 20)

/* Adds a double into a float gradient with one rounding. */
static inline void add_f32(float *g, double d) {
    *g = (float)((double)*g + d);
}

/* ---------------------------------------------------------------- embedding ------------- */

/* out[s, :] = table[ids[s], :] (spec/architecture.md §4.1 step 1). */
void dsv3_op_embed_forward(double *out, const int32_t *ids, const float *table, int64_t n,
                           int64_t H) {
    for (int64_t s = 0; s < n; s++) {
        const float *row = table + (int64_t)ids[s] * H;
        for (int64_t i = 0; i < H; i++) out[s * H + i] = row[i];
    }
}

/* dtable[ids[s], :] += dout[s, :]; tokens in order, so repeated ids add up deterministically. */
void dsv3_op_embed_backward(float *dtable, const double *dout, const int32_t *ids, int64_t n,
                            int64_t H) {
    for (int64_t s = 0; s < n; s++) {
        float *row = dtable + (int64_t)ids[s] * H;
        for (int64_t i = 0; i < H; i++) add_f32(&row[i], dout[s * H + i]);
    }
}

/* ---------------------------------------------------------------- linear ---------------- */

/* y[s, r] = sum_c x[s, c] W[r, c]. Parallel over blocks of 4 output rows: each x row is
 * loaded once for 4 weight rows. A row's sum runs over c in the same (vectorised) order
 * whichever thread computes it. */
void dsv3_op_linear_forward(double *y, const double *x, const float *W, int64_t n, int64_t in,
                            int64_t out) {
    const int64_t nb = (out + 3) / 4;
#pragma omp parallel for schedule(static) if (n * in * out >= PAR_MIN)
    for (int64_t rb = 0; rb < nb; rb++) {
        const int64_t r0 = rb * 4;
        if (r0 + 4 <= out) {
            const float *w0 = W + r0 * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
            for (int64_t s = 0; s < n; s++) {
                const double *xs = x + s * in;
                double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
                for (int64_t c = 0; c < in; c++) {
                    const double xv = xs[c];
                    a0 += xv * (double)w0[c];
                    a1 += xv * (double)w1[c];
                    a2 += xv * (double)w2[c];
                    a3 += xv * (double)w3[c];
                }
                double *ys = y + s * out + r0;
                ys[0] = a0, ys[1] = a1, ys[2] = a2, ys[3] = a3;
            }
            continue;
        }
        for (int64_t r = r0; r < out; r++) {
            const float *w = W + r * in;
            for (int64_t s = 0; s < n; s++) {
                const double *xs = x + s * in;
                double acc = 0.0;
#pragma omp simd reduction(+ : acc)
                for (int64_t c = 0; c < in; c++) acc += xs[c] * (double)w[c];
                y[s * out + r] = acc;
            }
        }
    }
}

/* dx[s, c] += sum_r dy[s, r] W[r, c]   (parallel over blocks of 4 tokens; a W row is loaded
 *                                       once per block; the sum over r runs in order)
 * dW[r, c] += sum_s dy[s, r] x[s, c]   (parallel over blocks of 4 rows; 128-column spans are
 *                                       summed in double over all tokens in order, then added
 *                                       to the float gradient with one rounding). */
void dsv3_op_linear_backward(double *dx, float *dW, const double *dy, const double *x,
                             const float *W, int64_t n, int64_t in, int64_t out) {
    enum { SPAN = 128 };
    const int par = n * in * out >= PAR_MIN;
    if (dx) {
        const int64_t nb = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (par)
        for (int64_t sb = 0; sb < nb; sb++) {
            const int64_t s0 = sb * 4;
            if (s0 + 4 <= n) {
                double *x0 = dx + s0 * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;
                const double *d = dy + s0 * out;
                for (int64_t r = 0; r < out; r++) {
                    const double d0 = d[r], d1 = d[out + r], d2 = d[2 * out + r], d3 = d[3 * out + r];
                    const float *w = W + r * in;
#pragma omp simd
                    for (int64_t c = 0; c < in; c++) {
                        const double wv = (double)w[c];
                        x0[c] += d0 * wv;
                        x1[c] += d1 * wv;
                        x2[c] += d2 * wv;
                        x3[c] += d3 * wv;
                    }
                }
                continue;
            }
            for (int64_t s = s0; s < n; s++) {
                double *dxs = dx + s * in;
                for (int64_t r = 0; r < out; r++) {
                    const double d = dy[s * out + r];
                    const float *w = W + r * in;
#pragma omp simd
                    for (int64_t c = 0; c < in; c++) dxs[c] += d * (double)w[c];
                }
            }
        }
    }
    if (dW) {
        const int64_t nb = (out + 3) / 4;
#pragma omp parallel for schedule(static) if (par)
        for (int64_t rb = 0; rb < nb; rb++) {
            const int64_t r0 = rb * 4, nr = out - r0 < 4 ? out - r0 : 4;
            double acc[4][SPAN];
            for (int64_t c0 = 0; c0 < in; c0 += SPAN) {
                const int64_t len = in - c0 < SPAN ? in - c0 : SPAN;
                memset(acc, 0, sizeof acc);
                for (int64_t s = 0; s < n; s++) {
                    const double *xs = x + s * in + c0, *d = dy + s * out + r0;
                    if (nr == 4) {
                        const double d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
#pragma omp simd
                        for (int64_t j = 0; j < len; j++) {
                            const double xv = xs[j];
                            acc[0][j] += d0 * xv;
                            acc[1][j] += d1 * xv;
                            acc[2][j] += d2 * xv;
                            acc[3][j] += d3 * xv;
                        }
                    } else {
                        for (int64_t k = 0; k < nr; k++)
#pragma omp simd
                            for (int64_t j = 0; j < len; j++) acc[k][j] += d[k] * xs[j];
                    }
                }
                for (int64_t k = 0; k < nr; k++)
                    for (int64_t j = 0; j < len; j++) add_f32(&dW[(r0 + k) * in + c0 + j], acc[k][j]);
            }
        }
    }
}

/* ---------------------------------------------------------------- RMSNorm --------------- */

/* spec/architecture.md §4.2: y = g * x * rstd, rstd = 1/sqrt(mean(x^2) + eps). */
void dsv3_op_rmsnorm_forward(double *y, double *rstd, const double *x, const float *g, int64_t n,
                             int64_t dim, double eps) {
    for (int64_t s = 0; s < n; s++) {
        const double *xs = x + s * dim;
        double ss = 0.0;
        for (int64_t i = 0; i < dim; i++) ss += xs[i] * xs[i];
        const double r = 1.0 / sqrt(ss / (double)dim + eps);
        rstd[s] = r;
        double *ys = y + s * dim;
        for (int64_t i = 0; i < dim; i++) ys[i] = (double)g[i] * (xs[i] * r);
    }
}

/* spec/training.md §9.1 with xhat = x * rstd:
 *   dg += sum_tokens dy * xhat
 *   dx += rstd * (g*dy - xhat * mean(g*dy*xhat))
 * rstd is the forward's (recomputing it from x would give the same value). */
void dsv3_op_rmsnorm_backward(double *dx, float *dg, const double *dy, const double *x,
                              const double *rstd, const float *g, int64_t n, int64_t dim) {
    if (dx) {
        for (int64_t s = 0; s < n; s++) {
            const double *xs = x + s * dim, *dys = dy + s * dim, r = rstd[s];
            double dot = 0.0;
            for (int64_t i = 0; i < dim; i++) dot += (double)g[i] * dys[i] * xs[i] * r;
            const double mean = dot / (double)dim;
            double *dxs = dx + s * dim;
            for (int64_t i = 0; i < dim; i++)
                dxs[i] += r * ((double)g[i] * dys[i] - xs[i] * r * mean);
        }
    }
    if (dg) {
        for (int64_t i = 0; i < dim; i++) {
            double acc = 0.0;
            for (int64_t s = 0; s < n; s++) acc += dy[s * dim + i] * x[s * dim + i] * rstd[s];
            add_f32(&dg[i], acc);
        }
    }
}

/* ---------------------------------------------------------------- RoPE ------------------ */

/* spec/architecture.md §4.7 (official interleaved layout) and §4.8 (inv_freq, YaRN applied):
 *   y[2k] = f (x[2k] cos - x[2k+1] sin),  y[2k+1] = f (x[2k] sin + x[2k+1] cos),
 * angle = pos * inv_freq[k] formed in double as the inference kernel does. */
static void rope_rotate(double *x, int64_t n, int64_t nvec, int64_t stride, int64_t d,
                        const int64_t *pos, const float *inv_freq, double factor, double dir) {
    for (int64_t s = 0; s < n; s++) {
        for (int64_t k = 0; k < d / 2; k++) {
            const double ang = (double)pos[s] * (double)inv_freq[k];
            const double cs = cos(ang) * factor, sn = dir * sin(ang) * factor;
            for (int64_t v = 0; v < nvec; v++) {
                double *p = x + (s * nvec + v) * stride + 2 * k;
                const double a = p[0], b = p[1];
                p[0] = a * cs - b * sn;
                p[1] = a * sn + b * cs;
            }
        }
    }
}

void dsv3_op_rope_forward(double *x, int64_t n, int64_t nvec, int64_t stride, int64_t d,
                          const int64_t *pos, const float *inv_freq, double factor) {
    rope_rotate(x, n, nvec, stride, d, pos, inv_freq, factor, 1.0);
}

/* spec/training.md §9.4: the transpose of a rotation is the rotation by -theta:
 * dx0 = f (dy0 cos + dy1 sin), dx1 = f (-dy0 sin + dy1 cos). */
void dsv3_op_rope_backward(double *dx, int64_t n, int64_t nvec, int64_t stride, int64_t d,
                           const int64_t *pos, const float *inv_freq, double factor) {
    rope_rotate(dx, n, nvec, stride, d, pos, inv_freq, factor, -1.0);
}

/* ---------------------------------------------------------------- attention ------------- */

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* spec/architecture.md §4.4 and §4.9, per sequence b and head h:
 *   score[t1, t2] = q[t1] . k[t2] * scale for t2 <= t1 (causal), P = softmax over t2,
 *   o[t1] = sum_t2 P[t1, t2] v[t2].
 * Parallel over (b, h) pairs; each writes only its own rows. */
void dsv3_op_attention_forward(double *o, double *P, const double *q, const double *k,
                               const double *v, int64_t B, int64_t T, int64_t nh, int64_t dqk,
                               int64_t dv, double scale) {
#pragma omp parallel for schedule(dynamic, 1) if (B * nh * T * T * (dqk + dv) >= PAR_MIN)
    for (int64_t bh = 0; bh < B * nh; bh++) {
        const int64_t b = bh / nh, h = bh % nh;
        for (int64_t t1 = 0; t1 < T; t1++) {
            double *p = P + (bh * T + t1) * T;
            const double *qt = q + ((b * T + t1) * nh + h) * dqk;
            double mx = -INFINITY;
            for (int64_t t2 = 0; t2 <= t1; t2++) {
                p[t2] = dot(qt, k + ((b * T + t2) * nh + h) * dqk, dqk) * scale;
                if (p[t2] > mx) mx = p[t2];
            }
            double sum = 0.0;
            for (int64_t t2 = 0; t2 <= t1; t2++) sum += (p[t2] = exp(p[t2] - mx));
            for (int64_t t2 = 0; t2 <= t1; t2++) p[t2] /= sum;
            for (int64_t t2 = t1 + 1; t2 < T; t2++) p[t2] = 0.0;
            double *ot = o + ((b * T + t1) * nh + h) * dv;
            memset(ot, 0, (size_t)dv * sizeof *ot);
            for (int64_t t2 = 0; t2 <= t1; t2++) {
                const double pt = p[t2], *vt = v + ((b * T + t2) * nh + h) * dv;
                for (int64_t i = 0; i < dv; i++) ot[i] += pt * vt[i];
            }
        }
    }
}

/* Backward of the above, for query t1 with upstream do:
 *   dv[t2] += P[t2] do;  dP[t2] = do . v[t2];  dS[t2] = P[t2] (dP[t2] - sum_u P[u] dP[u]);
 *   dq[t1] += scale sum_t2 dS[t2] k[t2];  dk[t2] += scale dS[t2] q[t1].
 * dP is recomputed in a second pass instead of being stored (no scratch). */
void dsv3_op_attention_backward(double *dq, double *dk, double *dv, const double *dout,
                                const double *P, const double *q, const double *k,
                                const double *v, int64_t B, int64_t T, int64_t nh, int64_t dqk,
                                int64_t dvh, double scale) {
#pragma omp parallel for schedule(dynamic, 1) if (B * nh * T * T * (dqk + dvh) >= PAR_MIN)
    for (int64_t bh = 0; bh < B * nh; bh++) {
        const int64_t b = bh / nh, h = bh % nh;
        for (int64_t t1 = 0; t1 < T; t1++) {
            const double *p = P + (bh * T + t1) * T;
            const int64_t r1 = (b * T + t1) * nh + h;
            const double *go = dout + r1 * dvh, *qt = q + r1 * dqk;
            double sum = 0.0;
            for (int64_t t2 = 0; t2 <= t1; t2++)
                sum += p[t2] * dot(go, v + ((b * T + t2) * nh + h) * dvh, dvh);
            double *dqt = dq + r1 * dqk;
            for (int64_t t2 = 0; t2 <= t1; t2++) {
                const int64_t r2 = (b * T + t2) * nh + h;
                const double dP = dot(go, v + r2 * dvh, dvh);
                const double dS = p[t2] * (dP - sum) * scale;
                double *dvt = dv + r2 * dvh, *dkt = dk + r2 * dqk;
                const double *kt = k + r2 * dqk;
                for (int64_t i = 0; i < dvh; i++) dvt[i] += p[t2] * go[i];
                for (int64_t i = 0; i < dqk; i++) {
                    dqt[i] += dS * kt[i];
                    dkt[i] += dS * qt[i];
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- SwiGLU ---------------- */

/* spec/architecture.md §4.10: h = silu(a) * b, silu(a) = a * sigma(a). */
void dsv3_op_swiglu_forward(double *h, const double *a, const double *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) h[i] = a[i] / (1.0 + exp(-a[i])) * b[i];
}

/* spec/training.md §9.2: da = dh * b * sigma(a) * (1 + a (1 - sigma(a))); db = dh * silu(a). */
void dsv3_op_swiglu_backward(double *da, double *db, const double *dh, const double *a,
                             const double *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const double sg = 1.0 / (1.0 + exp(-a[i]));
        da[i] += dh[i] * b[i] * sg * (1.0 + a[i] * (1.0 - sg));
        db[i] += dh[i] * a[i] * sg;
    }
}

/* ---------------------------------------------------------------- gating ---------------- */

/* spec/training.md §1.1 (HF/V3): s = sigmoid(z) over all experts; for the chosen set S,
 * w_k = R * s_k / Z with Z = sum_{j in S} s_j + 1e-20 (the HF guard), or R * s_k without
 * normalisation. The choice itself (bias, groups, top-k) is made by the caller. */
void dsv3_op_gate_forward(double *w, double *s, const double *z, const int32_t *idx, int64_t n,
                          int64_t E, int64_t K, double R, int norm) {
    for (int64_t t = 0; t < n; t++) {
        double *st = s + t * E;
        for (int64_t e = 0; e < E; e++) st[e] = 1.0 / (1.0 + exp(-z[t * E + e]));
        double sum = 0.0;
        for (int64_t k = 0; k < K; k++)
            if (idx[t * K + k] >= 0) sum += st[idx[t * K + k]];
        const double inv = norm ? 1.0 / (sum + 1e-20) : 1.0;
        for (int64_t k = 0; k < K; k++)
            w[t * K + k] = idx[t * K + k] >= 0 ? R * st[idx[t * K + k]] * inv : 0.0;
    }
}

/* spec/training.md §9.3 with c_k = dw_k:
 *   ds_i = (R/Z) (c_i - sum_{j in S} (s_j/Z) c_j)  for i in S (R c_i without normalisation),
 *   ds_i = 0 for i not in S (main path); plus ds_extra (balance loss, every expert);
 *   dz_i += ds_i s_i (1 - s_i). */
void dsv3_op_gate_backward(double *dz, const double *dw, const double *ds_extra, const double *s,
                           const int32_t *idx, int64_t n, int64_t E, int64_t K, double R,
                           int norm) {
    for (int64_t t = 0; t < n; t++) {
        const double *st = s + t * E, *ct = dw + t * K;
        const int32_t *it = idx + t * K;
        double Z = 0.0, cs = 0.0;
        for (int64_t k = 0; k < K; k++)
            if (it[k] >= 0) {
                Z += st[it[k]];
                cs += st[it[k]] * ct[k];
            }
        Z += 1e-20;
        cs /= Z;
        for (int64_t e = 0; e < E; e++) {
            double ds = ds_extra ? ds_extra[t * E + e] : 0.0;
            for (int64_t k = 0; k < K; k++)
                if (it[k] == e) ds += norm ? R / Z * (ct[k] - cs) : R * ct[k];
            dz[t * E + e] += ds * st[e] * (1.0 - st[e]);
        }
    }
}

/* ---------------------------------------------------------------- balance loss ---------- */

/* spec/training.md §2: f_i = E/(K T) * #{t : i chosen at t} (the actual routing map, [ours]),
 * s'_{i,t} = s_{i,t} / (sum_j s_{j,t} + 1e-20) (Megatron's guard), P_i = mean_t s'_{i,t};
 * returns sum_i f_i P_i. */
double dsv3_op_balance_forward(double *f, const double *s, const int32_t *idx, int64_t T,
                               int64_t E, int64_t K) {
    memset(f, 0, (size_t)E * sizeof *f);
    for (int64_t i = 0; i < T * K; i++)
        if (idx[i] >= 0) f[idx[i]] += 1.0;
    const double fs = (double)E / ((double)K * (double)T);
    for (int64_t e = 0; e < E; e++) f[e] *= fs;
    double L = 0.0;
    for (int64_t t = 0; t < T; t++) {
        const double *st = s + t * E;
        double S = 1e-20;
        for (int64_t e = 0; e < E; e++) S += st[e];
        double acc = 0.0;
        for (int64_t e = 0; e < E; e++) acc += f[e] * st[e];
        L += acc / S;
    }
    return L / (double)T;
}

/* With g_i = dL f_i / T (the gradient on s'_{i,t}; f is a constant):
 *   ds_{j,t} += (1/S_t) (g_j - sum_i s'_{i,t} g_i)   (spec/training.md §9.3). */
void dsv3_op_balance_backward(double *ds, const double *s, const double *f, double dL, int64_t T,
                              int64_t E) {
    const double gs = dL / (double)T;
    for (int64_t t = 0; t < T; t++) {
        const double *st = s + t * E;
        double S = 1e-20;
        for (int64_t e = 0; e < E; e++) S += st[e];
        double m = 0.0;
        for (int64_t e = 0; e < E; e++) m += st[e] / S * f[e] * gs;
        for (int64_t e = 0; e < E; e++) ds[t * E + e] += (f[e] * gs - m) / S;
    }
}

/* ---------------------------------------------------------------- cross-entropy --------- */

/* loss = logsumexp(z) - z_y with the max subtracted (spec/training.md §9.6); probs = softmax.
 * probs may alias logits. */
void dsv3_op_ce_forward(double *loss, double *probs, const double *logits, const int32_t *targets,
                        int64_t n, int64_t V) {
#pragma omp parallel for schedule(static) if (n * V >= PAR_MIN)
    for (int64_t s = 0; s < n; s++) {
        const double *z = logits + s * V;
        double *p = probs + s * V;
        double mx = z[0];
        for (int64_t v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        double sum = 0.0;
        for (int64_t v = 0; v < V; v++) sum += exp(z[v] - mx);
        const double lse = mx + log(sum);
        loss[s] = targets[s] >= 0 ? lse - z[targets[s]] : 0.0; /* before probs may overwrite z */
        for (int64_t v = 0; v < V; v++) p[v] = exp(z[v] - lse);
    }
}

/* dz = dloss * (softmax(z) - onehot(y)); masked rows (target < 0) get 0. */
void dsv3_op_ce_backward(double *dlogits, const double *probs, const int32_t *targets,
                         const double *dloss, int64_t n, int64_t V) {
#pragma omp parallel for schedule(static) if (n * V >= PAR_MIN)
    for (int64_t s = 0; s < n; s++) {
        double *d = dlogits + s * V;
        const double *p = probs + s * V;
        if (targets[s] < 0) {
            memset(d, 0, (size_t)V * sizeof *d);
            continue;
        }
        for (int64_t v = 0; v < V; v++) d[v] = dloss[s] * p[v];
        d[targets[s]] -= dloss[s];
    }
}
