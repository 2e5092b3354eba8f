/* backend.h — the one interface between the model and the hardware.
 *
 * The model describes a weight with dsv3_weight (stored dtype, shape, mapped bytes, FP8 block
 * scales) and calls the operations of a dsv3_backend table. The backend converts weights to
 * float32 on the fly (docs/ARCHITECTURE.md, "FP8 block scaling"): weights are never expanded in memory.
 * kernels/cpu is always built and is the reference; other backends must agree with it within
 * the tolerance their tests state. Model code never branches on the backend or on dtype.
 *
 * Memory (docs/ARCHITECTURE.md, "Backend memory"): every float/int pointer an operation takes
 * is backend memory — from alloc, or inside a model's vector arena — and model code never reads
 * or writes it; it moves data with upload and download. Weights are the exception: a
 * dsv3_weight names the stored tensor by its mapped address, which each backend resolves to
 * its own copy (the CPU backends read the mapping itself). is_host says whether backend memory
 * is ordinary host memory, so callers may skip a copy (write logits straight into the caller's
 * array); nothing else may depend on it.
 *
 * Thread rules: operations may use threads internally (kernels/pool.h); call them from one
 * thread at a time — except mla_attend, which is single-threaded and may run on several threads
 * at once.
 */
#ifndef DSV3_BACKEND_H
#define DSV3_BACKEND_H

#include <stdint.h>

#include "kernels/dtype.h"
#include "model/base/status.h"

/* A 2-D weight W [rows, cols] (= [out, in]; y = x W^T), row-major, in its stored dtype.
 * A weight may be a view of rows [row0, row0 + rows) of a stored tensor: `data` then points at
 * the view's first row, and row0 keeps FP8 block-scale indexing right for ragged blocks. */
typedef struct {
    dsv3_dtype dtype;       /* F32, BF16, F16 or F8_E4M3 */
    int64_t rows, cols;     /* view shape */
    const void *data;       /* rows * cols elements */
    const float *scale_inv; /* F8_E4M3 only: the stored tensor's [ceil(R/128), ceil(cols/128)]
                               multipliers (W = q * s, docs/ARCHITECTURE.md, "FP8 block scaling"); NULL otherwise */
    int64_t row0;           /* first row of the view inside the stored tensor */
} dsv3_weight;

/* Returns the view of rows [r0, r0 + n) of w. */
dsv3_weight dsv3_weight_rows(const dsv3_weight *w, int64_t r0, int64_t n);

/* A SwiGLU FFN's three weights (dense FFN, one routed expert, the shared expert). */
typedef struct {
    dsv3_weight gate; /* [width, H] */
    dsv3_weight up;   /* [width, H] */
    dsv3_weight down; /* [H, width] */
} dsv3_ffn_weights;

/* How a router turns logits into scores (config.json `scoring_func`; docs/ARCHITECTURE.md,
 * "Family"). */
typedef enum {
    DSV3_SCORE_SIGMOID = 0, /* s_e = sigmoid(z_e) (DeepSeek-V3, Kimi-K2, Moonlight) */
    DSV3_SCORE_SOFTMAX = 1  /* s = softmax(z) over the E experts (DeepSeek-V2) */
} dsv3_score_func;

/* How the top-K experts are chosen (config.json `topk_method`; docs/ARCHITECTURE.md, "Routing",
 * "Family"). */
typedef enum {
    DSV3_TOPK_NOAUX_TC = 0,  /* groups ranked by the sum of their two best biased scores (V3) */
    DSV3_TOPK_GREEDY = 1,    /* top-K over all experts; every group kept (V2-Lite) */
    DSV3_TOPK_GROUP_LIMITED = 2 /* "group_limited_greedy": groups ranked by their best score (V2) */
} dsv3_topk_method;

/* The routing rule of a MoE layer (docs/ARCHITECTURE.md, "Routing"). */
typedef struct {
    int64_t experts;        /* E, at most DSV3_ROUTE_MAX_EXPERTS */
    int64_t groups;         /* G, divides E */
    int64_t topk_group;     /* groups kept */
    int64_t k;              /* experts per token, at most DSV3_ROUTE_MAX_K */
    int norm_topk_prob;     /* normalise the chosen weights to sum 1 */
    float scaling;          /* multiplies the (normalised) weights: routed_scaling_factor */
    dsv3_score_func scoring; /* sigmoid or softmax scores */
    dsv3_topk_method method; /* the group score and whether groups limit the choice */
} dsv3_route_params;
#define DSV3_ROUTE_MAX_EXPERTS 4096
#define DSV3_ROUTE_MAX_K 256

/* Floats per token of a routing record (moe_route's `record`): scores [E] (unbiased sigmoid or softmax),
 * biased [E] (what chose), groups [G] (1 = kept), experts [K], weights [K], experts_nobias [K]
 * (the choice with a zero bias) — ids as exact floats (< 2^24). */
static inline int64_t dsv3_route_record_floats(const dsv3_route_params *p) {
    return 2 * p->experts + p->groups + 3 * p->k;
}

/* Transfer counters of a backend (zero for host backends). */
typedef struct {
    int64_t uploads, downloads;           /* calls */
    int64_t upload_bytes, download_bytes; /* bytes moved */
} dsv3_transfer_stats;

/* One product of a batch: out[n, w.rows] = x[n, w.cols] W^T, or with trans = 1 the transposed
 * product out[n, w.cols] = x[n, w.rows] W (what matmul_t computes). */
typedef struct {
    float *out;
    const float *x;
    const dsv3_weight *w;
    int64_t n;
    int trans;
} dsv3_matmul_op;

/* Scratch of one moe_experts call, backend memory (c = tokens of the chunk, K experts each). */
typedef struct {
    float *ffn_g, *ffn_u;   /* [c*K*F + c*Fs] gate/up activations: routed slots, then shared */
    float *xg;              /* [c*K, H] tokens gathered by expert */
    float *yg;              /* [c*K + c, H] expert outputs per slot, then the shared expert's */
    int32_t *disp_tok;      /* [c*K] token of each slot, grouped by expert */
    float *disp_w;          /* [c*K] weight of each slot */
    int64_t *count;         /* [E + 1] slots per expert, then ends */
    dsv3_matmul_op *ops;    /* host memory: [2 * (E + 1)] product descriptors */
} dsv3_moe_scratch;

typedef struct dsv3_backend dsv3_backend;
struct dsv3_backend {
    const char *name;
    /* ---- memory ---- */
    int is_host;                       /* backend memory is host memory */
    /* Zeroed backend memory of `bytes` (NULL when out of memory; 0 bytes gives a valid pointer). */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);             /* NULL is a no-op */
    /* host src -> backend dst; backend src -> host dst (completes pending work first). */
    void (*upload)(void *dst, const void *src, size_t bytes);
    void (*download)(void *dst, const void *src, size_t bytes);
    /* Counters since the process started. */
    void (*stats)(dsv3_transfer_stats *out);
    /* Weights (NULL on backends that read the host mapping itself): bind makes the stored bytes
     * [host, host + bytes) usable by the products, e.g. a device backend copies them once and
     * from then on resolves every dsv3_weight (data and scale_inv) inside the range to its copy;
     * unbind(host) drops the range bound at host. A model binds every range holding its tensors
     * when it is bound to the backend and unbinds them when it leaves it or closes
     * (dsv3_model_set_backend). Ranges never overlap. bind fails with one line in err (no
     * device, too little device memory: how much is needed). */
    dsv3_status (*bind)(const void *host, size_t bytes, dsv3_err *err);
    void (*unbind)(const void *host);
    /* ---- products ---- */
    /* out[n, rows] = x[n, cols] W^T. FP32 accumulation. out must not alias x. */
    void (*matmul)(float *out, const float *x, const dsv3_weight *w, int64_t n);
    /* Several independent products at once (e.g. all experts' gate and up projections, or the
     * per-head absorbed-MLA products), so a backend can spread their rows over its threads in one
     * go. Outputs must not overlap. */
    void (*matmul_many)(const dsv3_matmul_op *ops, int64_t count);
    /* out[n, cols] = x[n, rows] W (the transposed product, used by absorbed MLA). */
    void (*matmul_t)(float *out, const float *x, const dsv3_weight *w, int64_t n);
    /* out[cols] = row r of W in float32 (embedding lookup). */
    void (*row)(float *out, const dsv3_weight *w, int64_t r);
    /* out[n, dim] = g * x / sqrt(mean(x^2) + eps), per row (docs/ARCHITECTURE.md, "RMSNorm"). out may alias x. */
    void (*rmsnorm)(float *out, const float *x, const float *g, int64_t n, int64_t dim, float eps);
    /* Rotates interleaved pairs (2k, 2k+1) of the d-wide vectors x + s * tok_stride + v *
     * vec_stride (s < n, v < nvec) in place by angle (pos0 + s) * inv_freq[k], with cos/sin
     * multiplied by `factor` (YaRN attention factor, docs/ARCHITECTURE.md, "YaRN"). */
    void (*rope)(float *x, int64_t n, int64_t nvec, int64_t d, int64_t tok_stride,
                 int64_t vec_stride, int64_t pos0, const float *inv_freq, float factor);
    /* g[i] = silu(g[i]) * u[i] for i < n (docs/ARCHITECTURE.md, "SwiGLU"). */
    void (*silu_mul)(float *g, const float *u, int64_t n);
    /* Absorbed MLA attention of one query over cached positions 0..T-1 for nh heads (docs/ARCHITECTURE.md, "MLA"):
     *   p[h, t] = softmax_t((qabs[h] . c[t] + qpe[h] . kpe[t]) * scale),
     *   u[h] = sum_t p[h, t] c[t].
     * qabs [nh, rkv]; head h's RoPE query at qpe + h * qpe_stride (dr floats); c[t] (rkv floats)
     * and kpe[t] (dr floats) the latent cache rows at c + t * cs and kpe + t * cs (the cache
     * keeps [c | k_pe] per position, cs = rkv + dr); p [nh, T] receives the probabilities; u
     * [nh, rkv]. All heads of a query share c, so a backend can read each cached row once for
     * all of them. */
    void (*mla_attend)(float *u, float *p, const float *qabs, const float *qpe, int64_t qpe_stride,
                       const float *c, const float *kpe, int64_t cs, int64_t nh, int64_t T,
                       int64_t rkv, int64_t dr, float scale);
    /* ---- data movement ---- */
    /* out[s] = row ids[s] of W in float32, s < n (the embedding lookup; ids in backend memory). */
    void (*embed)(float *out, const dsv3_weight *w, const int32_t *ids, int64_t n);
    /* x[i] += y[i], i < n. */
    void (*add)(float *x, const float *y, int64_t n);
    /* dst[r * dst_stride + i] = src[r * src_stride + i] for r < rows, i < width. */
    void (*copy2d)(float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                   int64_t rows, int64_t width);
    /* ---- coarse model steps (they take the backend they run on, for its products) ---- */
    /* The latent cache rows of positions pos0..pos0+n-1 from kva [n, rkv + dr]
     * (docs/ARCHITECTURE.md, "Latent cache"): c[pos] = rmsnorm(kva[:rkv]) with `norm` and eps,
     * kpe[pos] = kva[rkv:] rotated at pos; row pos of c at c + pos * cs, of kpe at kpe + pos * cs. */
    void (*mla_store)(const dsv3_backend *be, float *c, float *kpe, int64_t cs, const float *kva,
                      int64_t n, int64_t pos0, const float *norm, float eps, int64_t rkv, int64_t dr,
                      const float *inv_freq, float factor);
    /* Absorbed attention of a causal chunk (docs/ARCHITECTURE.md, "MLA"): query s (s < n, at
     * position pos0 + s) attends to cached positions 0..pos0+s. qabs [n, nh, rkv]; the RoPE part
     * of head h of query s at qpe + s * nh * qpe_stride + h * qpe_stride; u [n, nh, rkv].
     * scratch holds threads * nh * scratch_stride floats (scratch_stride >= pos0 + n). */
    void (*mla_attend_chunk)(const dsv3_backend *be, float *u, float *scratch,
                             int64_t scratch_stride, const float *qabs, const float *qpe,
                             int64_t qpe_stride, const float *c, const float *kpe, int64_t cs,
                             int64_t nh, int64_t n, int64_t pos0, int64_t rkv, int64_t dr,
                             float scale);
    /* Naive attention of a causal chunk over expanded keys/values: kvfull [pos0 + n, nh *
     * (dn + dv)] (per head [k_nope | v]), q [n, nh, dn + dr] (per head [q_nope | q_pe]), kpe
     * rows at kpe + t * cs; o [n, nh, dv]. scratch as for mla_attend_chunk, nh = 1. With only >= 0
     * just the pair only = s * nh + h runs, and its probabilities are left in scratch[0..T). */
    void (*mla_naive)(const dsv3_backend *be, float *o, float *scratch, int64_t scratch_stride,
                      const float *q, const float *kvfull, const float *kpe, int64_t cs, int64_t nh,
                      int64_t dn, int64_t dv, int64_t dr, int64_t n, int64_t pos0, float scale,
                      int64_t only);
    /* Routing of n tokens from router logits [n, E] (docs/ARCHITECTURE.md, "Routing"): idx
     * [n, K] (-1 where fewer than K experts were left), w [n, K]. bias [E] or NULL selects
     * only; disabled [E] (1 = excluded) or NULL; forced [K] or NULL replaces the choice at
     * position forced_pos (every position when < 0), positions being pos0 + s. record: NULL
     * or [n, dsv3_route_record_floats(p)]. */
    void (*moe_route)(const dsv3_backend *be, int32_t *idx, float *w, float *record,
                      const float *logits, int64_t n, int64_t pos0, const dsv3_route_params *p,
                      const float *bias, const unsigned char *disabled, const int32_t *forced,
                      int64_t forced_pos);
    /* The experts of a MoE layer (docs/ARCHITECTURE.md, "MoE"): out[t] = sum_k w[t,k]
     * E_idx[t,k](xn[t]) (+ shared(xn[t]) when shared is not NULL), experts summed in expert
     * order. xn, out [n, H]; experts [E] (F wide), shared (Fs wide). */
    void (*moe_experts)(const dsv3_backend *be, float *out, const float *xn, const int32_t *idx,
                        const float *w, int64_t n, int64_t H, int64_t K, int64_t E, int64_t F,
                        const dsv3_ffn_weights *experts, const dsv3_ffn_weights *shared,
                        int64_t Fs, const dsv3_moe_scratch *s);
};

/* The reference CPU backend (static table; never NULL): plain FP32 loops, the numbers every
 * other backend is tested against. */
const dsv3_backend *dsv3_backend_cpu(void);

/* The optimised CPU backend (AVX2/FMA, chosen at run time; the reference one on machines
 * without AVX2). Agrees with the reference to FP32 rounding (different summation order). */
const dsv3_backend *dsv3_backend_fast(void);

/* The simulated device (kernels/devsim): the optimised CPU kernels behind memory the model
 * cannot address, with transfer counters — proves model code never touches backend memory. */
const dsv3_backend *dsv3_backend_devsim(void);

/* The CUDA backend (kernels/cuda; only in builds with CUDA, where DSV3_HAVE_CUDA is defined):
 * device memory, weights bound to device copies, CUDA kernels and cuBLAS. The table exists
 * without a device; binding a model to it then fails with one line. */
const dsv3_backend *dsv3_backend_cuda(void);

/* A backend by name: "ref" (or "cpu"), "fast", "devsim" and, in builds with CUDA, "cuda"; NULL
 * for an unknown name. */
const dsv3_backend *dsv3_backend_by_name(const char *name);

/* The names dsv3_backend_by_name knows, for messages: "fast, ref, devsim, cuda" in builds with
 * CUDA; without it "fast, ref, devsim" and how to get cuda. */
const char *dsv3_backend_names(void);

/* Dot product of two float32 vectors of length n, as the CPU backend computes it. */
float dsv3_dot_f32(const float *a, const float *b, int64_t n);

/* In-place softmax over p[0..n) (max subtracted), as the CPU backend computes it. */
void dsv3_softmax_f32(float *p, int64_t n);

#endif
