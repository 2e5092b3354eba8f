/* model_internal.h — weight structs and run state, shared by the model folder only.
 *
 * Front ends never include this. Shapes use the notation of docs/ARCHITECTURE.md.
 */
#ifndef DSV3_MODEL_INTERNAL_H
#define DSV3_MODEL_INTERNAL_H

#include "model/run/forward.h"
#include "model/run/model.h"
#include "model/run/safetensors.h"

/* SwiGLU MLP: dense FFN, one routed expert or the shared expert (docs/ARCHITECTURE.md,
 * "SwiGLU"): gate_proj [width, H], up_proj [width, H], down_proj [H, width]. */
typedef dsv3_ffn_weights dsv3_mlp_w;

/* One decoder block (main layers 0..L-1 and the MTP block). float vectors are backend memory
 * (the model's vector arena; see dsv3_model.vecs); weights are mapped. */
typedef struct {
    float *attn_norm;      /* [H] input_layernorm, f32 copy */
    float *ffn_norm;       /* [H] post_attention_layernorm, f32 copy */
    /* MLA, docs/ARCHITECTURE.md, "MLA" */
    dsv3_weight q_a;       /* [q_lora_rank, H]; unused when q_lora_rank = 0 */
    float *q_a_norm;       /* [q_lora_rank] f32 copy; NULL when q_lora_rank = 0 */
    dsv3_weight q_b;       /* [nh * dq, q_lora_rank], or q_proj [nh * dq, H] when rank 0 */
    dsv3_weight kv_a;      /* [kv_lora_rank + dr, H] kv_a_proj_with_mqa */
    float *kv_a_norm;      /* [kv_lora_rank] f32 copy */
    dsv3_weight kv_b;      /* [nh * (dn + dv), kv_lora_rank]: per head W_UK rows then W_UV rows */
    dsv3_weight o;         /* [H, nh * dv] o_proj */
    dsv3_weight *uk, *uv;  /* [nh] views of kv_b: head h's W_UK rows [dn, rkv] and W_UV rows
                              [dv, rkv], built once at load */
    /* FFN */
    int is_moe;            /* 1: MoE below; 0: dense */
    dsv3_mlp_w dense;      /* intermediate_size wide (dense layers) */
    dsv3_weight router;    /* [E, H] mlp.gate.weight */
    float *bias;           /* [E] e_score_correction_bias (backend memory; edits go through
                              dsv3_model_set_bias, which keeps bias_host and this in step) */
    float *bias_host;      /* [E] host copy of the bias */
    float *bias_ckpt;      /* [E] the checkpoint's bias, for reset */
    dsv3_mlp_w *experts;   /* [E] routed experts, moe_intermediate_size wide */
    dsv3_mlp_w shared;     /* moe_intermediate_size * n_shared_experts wide (if any) */
} dsv3_layer_w;

/* The MTP module at layer index num_hidden_layers, docs/ARCHITECTURE.md, "MTP". */
typedef struct {
    dsv3_weight embed;     /* [vocab, H] model.layers.L.embed_tokens (copy of the main one) */
    float *enorm;          /* [H] */
    float *hnorm;          /* [H] */
    dsv3_weight eh_proj;   /* [H, 2H]: columns [0,H) embedding, [H,2H) hidden */
    dsv3_layer_w block;    /* the MoE decoder block */
    float *head_norm;      /* [H] shared_head.norm */
    dsv3_weight head;      /* [vocab, H] shared_head.head */
} dsv3_mtp_w;

/* A float vector of the model (norm gains, router bias, RoPE frequencies): its host copy and
 * the field that holds its backend address (the host copy itself on host backends, a slice of
 * the model's arena otherwise). */
typedef struct {
    float **field;
    float *host;
    int64_t n;
} dsv3_model_vec;

struct dsv3_model {
    dsv3_config cfg;
    dsv3_checkpoint *ck;       /* mapping of the weights */
    const dsv3_backend *be;    /* kernels in use */
    dsv3_model_vec *vecs;      /* every float vector, in binding order */
    int64_t nvecs, cap_vecs;
    float *arena;              /* non-host backends: all vectors, in vecs order; NULL on host */
    const void **bound;        /* ranges bound to be (backends with bind: dsv3_ckpt_ranges) */
    size_t nbound, cap_bound;
    dsv3_route_params route;   /* the routing rule of the MoE layers */
    dsv3_weight embed;         /* [vocab, H] model.embed_tokens */
    dsv3_layer_w *layers;      /* [num_hidden_layers] */
    float *final_norm;         /* [H] model.norm */
    dsv3_weight lm_head;       /* [vocab, H] */
    int has_mtp;               /* MTP tensors present and bound */
    dsv3_mtp_w mtp;
    float *inv_freq;           /* [dr / 2] RoPE inverse frequencies (YaRN applied) */
    float rope_factor;         /* YaRN attention factor on cos/sin */
    float softmax_scale;       /* docs/ARCHITECTURE.md, "YaRN" */
    char *warnings;            /* "" or lines */
    char *dir;                 /* as opened */
};

/* ---------------------------------------------------------------- run state ----------- */

/* One layer's latent cache (docs/ARCHITECTURE.md, "Latent cache"): what MLA keeps per position,
 * one array [max_seq, kv_lora_rank + qk_rope_head_dim] whose rows are [c | k_pe]: the
 * normalised latent kv_a_layernorm(latent), then the rotated shared RoPE key. */
typedef struct {
    float *ckv; /* the array (backend memory) */
    float *c;   /* = ckv: row t's c at c + t * stride */
    float *kpe; /* = ckv + kv_lora_rank: row t's k_pe at kpe + t * stride */
    int64_t stride; /* kv_lora_rank + qk_rope_head_dim */
} dsv3_layer_cache;

/* Run scratch lives in backend memory (r->be's alloc) unless marked "host". */
struct dsv3_run {
    dsv3_model *m;
    const dsv3_backend *be;       /* the model's backend when the run was made */
    int64_t max_seq, max_chunk;   /* capacities */
    int64_t len, mtp_len;         /* positions cached by the main model / the MTP block */
    dsv3_attn_form attn;
    const volatile int *cancel;   /* user's interrupt flag, or NULL */
    int nthreads;                 /* pool threads the per-thread scratch was sized for */
    dsv3_layer_cache *cache;      /* [num_hidden_layers + 1]; the last one is the MTP block's */
    /* scratch, c = max_chunk */
    float *x, *xn, *y;            /* [c, H] residual stream, normed input, block output */
    float *qa;                    /* [c, q_lora_rank] */
    float *q;                     /* [c, nh * dq] per head [q_nope | q_pe] */
    float *kva;                   /* [c, kv_lora_rank + dr] */
    float *o;                     /* [c, nh * dv] attention output before o_proj */
    float *qabs, *u;              /* [c, nh, kv_lora_rank] absorbed query, attended latent */
    float *hin;                   /* [nh, c, max(dn, dv, kv_lora_rank)] per-head inputs,
                                     head-major */
    float *hout;                  /* [nh, c, dv] per-head outputs of W_UV, head-major */
    float *kvfull;                /* naive form only: [max_seq, nh * (dn + dv)] */
    float *cnaive;                /* naive form only: [max_seq, kv_lora_rank] the cached c, packed */
    float *scores;                /* [nthreads, nh, max_seq] attention probabilities */
    float *ffn_g, *ffn_u;         /* dense: [c, intermediate]; MoE: [c*K, moe_inter] for the
                                     routed slots, then [c, moe_inter*n_shared] (the larger) */
    dsv3_moe_scratch moe;         /* moe_experts' scratch (ffn_g/ffn_u above, xg, yg, dispatch;
                                     its ops array is host memory) */
    dsv3_matmul_op *ops;          /* host: [max(2 * (E + 1), nh)] batched products of one layer */
    float *router;                /* [c, E] router logits */
    int32_t *sel_idx;             /* [c, K] chosen experts per token */
    float *sel_w;                 /* [c, K] their combine weights */
    float *cat;                   /* [c, 2H] MTP input [enorm(e) ; hnorm(h)] */
    int32_t *ids;                 /* [c] token ids of the chunk (uploaded) */
    float *logits;                /* non-host backends: [c, vocab] logits before download */
    float *hidden;                /* non-host backends: [c, H] the MTP input h (uploaded) */
    float *kept;                  /* models with MTP: [c, H] the last forward's final-normed
                                     hidden states, when keep_hidden (dsv3_forward_mtp_kept) */
    int keep_hidden;
    int64_t kept_rows;            /* rows of kept from the last forward (0: none) */
    /* probes */
    dsv3_hooks hooks;             /* copy of the attached hooks */
    int has_hooks;                /* any hook attached */
    dsv3_interventions iv;        /* copy of the attached interventions; on non-host backends
                                     its arrays point at the uploaded copies below */
    int has_iv;
    unsigned char *iv_disabled;   /* non-host: [(L + 1) * E] uploaded iv.disabled */
    int32_t *iv_forced;           /* non-host: [(L + 1) * K] uploaded iv.forced */
    const int32_t *cur_ids;       /* host: [n] token ids of the chunk being run (route events) */
    float *record;                /* [c, dsv3_route_record_floats] routing records */
    float *host_record;           /* host, non-host backends: the same, downloaded for the route hook */
    float *host_stage;            /* host, non-host backends: [c * max(H, rkv, max_seq)] a hooked
                                     point or attention row, downloaded */
    int32_t *ev_idx, *ev_nobias;  /* host: [K] one route event's ids */
    unsigned char *ev_groups;     /* host: [n_group] */
};

/* DSV3_PROBES=0 (cmake -DDSV3_NO_PROBES=ON) compiles every hook test out of the forward pass:
 * the baseline against which the probe-overhead benchmark measures "probes off". */
#ifndef DSV3_PROBES
#define DSV3_PROBES 1
#endif
static inline int dsv3_hooked(const dsv3_run *r) {
    return DSV3_PROBES && r->has_hooks;
}

/* docs/ARCHITECTURE.md, "MLA": MLA over xn[n, H] at positions pos0.., writes c/k_pe into kc,
 * out[n, H]. li is the layer index (for hooks). */
void dsv3_mla_forward(dsv3_run *r, const dsv3_layer_w *L, int64_t li, dsv3_layer_cache *kc,
                      const float *xn, float *out, int64_t n, int64_t pos0);

/* Only the cache rows c, k_pe of positions pos0.. from xn[n, H] (no attention, no output): what
 * later positions of a one-block module read from rows whose outputs nobody needs. */
void dsv3_mla_cache_only(dsv3_run *r, const dsv3_layer_w *L, dsv3_layer_cache *kc, const float *xn,
                         int64_t n, int64_t pos0);

/* docs/ARCHITECTURE.md, "SwiGLU": out[m, H] = SwiGLU MLP of x[m, H] (uses r->ffn_g / r->ffn_u). */
void dsv3_mlp_forward(dsv3_run *r, const dsv3_mlp_w *w, const float *x, float *out, int64_t m);


/* Rebuilds L's per-head views of kv_b (L->uk, L->uv) from L->kv_b: at load, and whenever
 * kv_b is rebound (the trainer points the model at its parameters). */
void dsv3_layer_head_views(const dsv3_config *c, dsv3_layer_w *L);

/* Options of one routing decision. */
typedef struct {
    const float *bias;             /* [E] or NULL (zero bias) */
    const unsigned char *disabled; /* [E] 1 = excluded, or NULL */
    const int32_t *forced;         /* [K] experts to use, or NULL */
    float *scores_out;             /* [E] unbiased scores, or NULL */
    float *biased_out;             /* [E] biased scores used for the choice, or NULL */
    unsigned char *groups_out;     /* [n_group] kept groups, or NULL */
} dsv3_route_opts;

/* docs/ARCHITECTURE.md, "Routing", steps 1-6, for one token given its router logits [E]:
 * idx[K], w[K]. */
void dsv3_moe_route(const dsv3_config *c, const dsv3_route_opts *o, const float *logits,
                    int32_t *idx, float *w);

/* docs/ARCHITECTURE.md, "MoE", for layer index li (for hooks and interventions). */
void dsv3_moe_forward_layer(dsv3_run *r, const dsv3_layer_w *L, int64_t li, const float *xn,
                            float *out, int64_t n, int64_t pos0);

/* The pieces of dsv3_forward that the MTP module (model/run/mtp.c) runs again. */
/* DSV3_EINVAL unless 1 <= n <= max_chunk, at + n <= max_seq and every id is in [0, vocab). */
dsv3_status dsv3_check_chunk(const dsv3_run *r, const int32_t *ids, int64_t n, int64_t at,
                             const char *what, dsv3_err *err);
int dsv3_cancelled(const dsv3_run *r);
/* Reports an activation to the point hook, if one is attached. */
void dsv3_report_point(dsv3_run *r, dsv3_point p, int64_t li, int64_t pos0, int64_t n,
                       int64_t dim, const float *x);
/* DSV3_OK when the run can use the model's current backend (adopting it when both keep host
 * memory); an error naming `what` otherwise. */
dsv3_status dsv3_run_sync_backend(dsv3_run *r, const char *what, dsv3_err *err);
/* ids[n] (host) where the backend reads them: uploaded into r->ids, or ids itself on host. */
const int32_t *dsv3_run_ids(dsv3_run *r, const int32_t *ids, int64_t n);
/* One decoder block (layer index li) over x[n, H] in place: x += MLA(norm(x)); x += FFN(norm(x)). */
void dsv3_block_forward(dsv3_run *r, const dsv3_layer_w *L, int64_t li, dsv3_layer_cache *kc,
                        float *x, int64_t n, int64_t pos0);
/* Final norm (into hidden, if wanted) and the head (into logits, if wanted). */
void dsv3_head_forward(dsv3_run *r, const float *x, const float *norm, const dsv3_weight *head,
                       int64_t n, float *logits, int last_only, float *hidden);

#endif
