/* trainable.c — the differentiable model (see trainable.h).
 *
 * Sections in data-flow order: the parameter table (one flat FP32 allocation, named pointers
 * into it for parameters and for gradients, llm.c's fill_in_parameter_sizes), the activation
 * arena (one allocation, laid out by one function run twice), then the forward and backward
 * pass of each piece side by side: MLA, FFN (dense and MoE), the decoder block, the head with
 * cross-entropy, and the top level with the MTP module. Every equation is in ops.c.
 */
#include "model/train/trainable.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/run/model_internal.h"
#include "kernels/pool.h"
#include "model/train/fp8.h"
#include "model/train/ops.h"

/* Latent norms use eps 1e-6 whatever rms_norm_eps says (docs/ARCHITECTURE.md, "RMSNorm"), as a
 * float like the inference kernel. */
#define LATENT_EPS ((double)1e-6f)

/* The heads' logits: all rows at once when they fit in HEAD_KEEP doubles per head (then the
 * forward's probabilities are kept for the backward instead of being recomputed), else
 * HEAD_CHUNK rows at a time (a real vocabulary of 129k entries). */
enum { HEAD_CHUNK = 32 };
#define HEAD_KEEP ((int64_t)1 << 22)

/* ---------------------------------------------------------------- parameter structs ---- */

/* SwiGLU MLP weights: dense FFN, routed expert or shared expert (docs/ARCHITECTURE.md,
 * "SwiGLU"). */
typedef struct {
    float *gate; /* [width, H] */
    float *up;   /* [width, H] */
    float *down; /* [H, width] */
} tm_mlp;

/* One decoder block's parameters (or their gradients: the same struct points into grads). */
typedef struct {
    float *attn_norm;  /* [H] input_layernorm */
    float *q_a;        /* [q_lora_rank, H]; NULL when q_lora_rank = 0 */
    float *q_a_norm;   /* [q_lora_rank]; NULL when q_lora_rank = 0 */
    float *q_b;        /* [nh * dq, q_lora_rank], or q_proj [nh * dq, H] */
    float *kv_a;       /* [kv_lora_rank + dr, H] */
    float *kv_a_norm;  /* [kv_lora_rank] */
    float *kv_b;       /* [nh * (dn + dv), kv_lora_rank], per head k_nope rows then v rows */
    float *o;          /* [H, nh * dv] */
    float *ffn_norm;   /* [H] post_attention_layernorm */
    int is_moe;        /* 1: router/experts/shared below; 0: dense */
    tm_mlp dense;      /* intermediate_size wide */
    float *router;     /* [E, H] mlp.gate.weight */
    tm_mlp *experts;   /* [E], moe_intermediate_size wide */
    tm_mlp shared;     /* moe_intermediate_size * n_shared_experts wide; NULLs without one */
    int64_t moe_index; /* index into the bias/count arrays; -1 for dense blocks */
} tm_layer;

typedef struct {
    float *embed;      /* [V, H] model.embed_tokens */
    tm_layer *layers;  /* [num_hidden_layers] */
    float *final_norm; /* [H] model.norm */
    float *head;       /* [V, H] lm_head */
    float *mtp_embed;  /* [V, H]; == embed when tied */
    float *enorm;      /* [H] */
    float *hnorm;      /* [H] */
    float *eh_proj;    /* [H, 2H]: columns [0,H) embedding, [H,2H) hidden */
    tm_layer mtp;      /* the MTP decoder block */
    float *head_norm;  /* [H] shared_head.norm */
    float *mtp_head;   /* [V, H]; == head when tied */
} tm_params;

/* Where each table entry comes from and which struct fields point at it. */
typedef struct {
    float **p, **g;      /* field of tm->P / tm->G */
    dsv3_weight src;     /* 2-D source binding as it was at dsv3_trainable_new, or data NULL */
    const float *vec;    /* 1-D source (the model's float32 array), or NULL */
    dsv3_weight *at;     /* the model's binding of a matrix (for dsv3_trainable_point_model), or NULL */
    dsv3_weight *alias_at; /* the model's binding of a tied MTP copy, or NULL */
    dsv3_weight alias_src; /* that binding as it was at dsv3_trainable_new */
    int64_t voff;        /* 1-D tensors: offset of the load-time values in vec0 */
} tm_slot;

/* ---------------------------------------------------------------- activations ---------- */

/* What one decoder block keeps for its backward pass; n = B * Ts tokens. */
typedef struct {
    double *x;            /* [n, H] block input (residual stream) */
    double *xn1, *rstd1;  /* [n, H], [n] input_layernorm output and 1/rms */
    double *qa, *qa_rstd; /* [n, rq], [n] q_a_proj output and its norm's 1/rms */
    double *qan;          /* [n, rq] q_a_layernorm output */
    double *q;            /* [n, nh, dq] queries, RoPE applied to the last dr of each head */
    double *craw;         /* [n, rkv] the latent before kv_a_layernorm */
    double *c, *c_rstd;   /* [n, rkv], [n] the normalised latent */
    double *kpe;          /* [n, dr] the shared RoPE key, rotated */
    double *kv;           /* [n, nh * (dn + dv)] kv_b_proj output */
    double *k, *v;        /* [n, nh, dq], [n, nh, dv] keys and values per head */
    double *P;            /* [B, nh, Ts, Ts] attention probabilities */
    double *o;            /* [n, nh * dv] attention output before o_proj */
    double *x2;           /* [n, H] residual after attention */
    double *xn2, *rstd2;  /* [n, H], [n] post_attention_layernorm output */
    double *fa, *fb, *fh; /* dense: [n, I] gate, up, silu(gate) * up */
    double *z, *s;        /* MoE: [n, E] router logits, sigmoid scores */
    int32_t *idx;         /* [n, K] chosen experts */
    double *w;            /* [n, K] combine weights */
    int64_t *off;         /* [E + 1] slots of expert e are [off[e], off[e+1]) */
    int32_t *slot_tok;    /* [n * K] token of each slot */
    int32_t *slot_k;      /* [n * K] which of the token's K choices the slot is */
    double *ea, *eb, *eh; /* [n * K, mi] per slot gate, up, product */
    double *ey;           /* [n * K, H] per slot expert output (unweighted) */
    double *sa, *sb, *sh; /* [n, ms] shared expert gate, up, product */
    double *f;            /* [B, E] balance-loss f_i per sequence */
} tm_acts;

/* Workspace of the FP8 linears, allocated at the first dsv3_trainable_set_fp8(tm, 1): quantized
 * operands as codes, their exact E4M3 values and their scales. rows = max_batch * T * K (the
 * most token slots one linear sees), dim = the widest block linear, wmax = its largest weight. */
typedef struct {
    int64_t rows, dim, wmax;
    uint8_t *qa, *qb;   /* [rows * dim] codes of the two activation operands */
    double *va, *vb;    /* [rows * dim] their values */
    double *xc;         /* [rows * dim] the activation as the FP8 cache holds it (for Wgrad) */
    float *sa, *sb;     /* [max(rows * ceil(dim/128), ceil(rows/128) * dim)] scales */
    uint8_t *qw;        /* [wmax] weight codes */
    double *vw;         /* [wmax] weight values */
    float *sw;          /* [ceil(dim/128)^2 upper bound] weight block scales */
} tm_fp8;

struct dsv3_trainable {
    dsv3_config cfg;
    int64_t max_batch, T;   /* micro-batch capacity, input tokens per sequence */
    int has_mtp;
    const dsv3_model *src_model; /* the model the weights came from (dsv3_trainable_point_model) */
    float *vec0;            /* [n_vec] the 1-D tensors' values at load, packed (for restore) */
    float *bias0;           /* [n_moe, E] router biases at load */
    float *inv_freq;        /* [dr / 2] RoPE inverse frequencies (YaRN applied) */
    double rope_factor;     /* YaRN attention factor on cos/sin */
    double softmax_scale;   /* docs/ARCHITECTURE.md, "YaRN" */
    double eps;             /* rms_norm_eps, as the float the inference kernel uses */
    /* parameter table and the flat arrays */
    int64_t n_tensors;
    dsv3_trainable_tensor *tensors; /* [n_tensors] */
    tm_slot *slots;          /* [n_tensors] */
    int64_t n_params;
    float *params, *grads;   /* [n_params] */
    tm_params P, G;          /* named pointers into params / grads */
    /* routing state */
    int64_t n_moe;
    int64_t *moe_layer;      /* [n_moe] checkpoint layer index */
    float *bias;             /* [n_moe, E] */
    /* activation arena */
    void *arena;
    tm_acts *acts;           /* [num_hidden_layers + 1]; the last is the MTP block */
    int32_t *in_ids, *tgt;   /* [n] inputs and main targets */
    int32_t *mtp_ids, *mtp_tgt; /* [n] MTP embedding inputs t_{i+1} and targets t_{i+2} */
    int64_t *pos, *pos_mtp;  /* [n] RoPE positions (position in the sequence) */
    double *xL;              /* [n, H] output of the last main block */
    double *h, *h_rstd;      /* [n, H], [n] final-normed hidden state (head and MTP input) */
    double *hin;             /* [n, H] MTP: h rows 0..T-2 of every sequence */
    double *hn, *hn_rstd;    /* MTP hnorm(h) */
    double *e, *en, *en_rstd; /* MTP embedding of t_{i+1} and enorm of it */
    double *cat;             /* [n, 2H] MTP [enorm(e) ; hnorm(h)] */
    double *mout;            /* [n, H] MTP block output */
    double *hf, *hf_rstd;    /* [n, H], [n] MTP shared_head.norm output */
    int64_t head_rows;       /* rows of logits per head pass: n (all) or HEAD_CHUNK */
    double *logits, *lrow, *dlrow; /* [head_rows, V], [head_rows] x 2 head scratch */
    double *logits2;         /* [head_rows, V] the MTP head's, when head_rows == n; or NULL.
                                With head_rows == n a forward leaves both heads'
                                probabilities in logits / logits2 for the backward. */
    /* backward scratch, n = max_batch * T rows */
    double *dres, *dh, *dxn, *dtmp, *dtmp2; /* [n, H] */
    double *dcat;            /* [n, 2H] */
    double *kva;             /* [n, rkv + dr] kv_a output (forward) / its gradient (backward) */
    double *dq, *dk;         /* [n, nh, dq] */
    double *dvv, *dout;      /* [n, nh, dv] */
    double *dkv;             /* [n, nh * (dn + dv)] */
    double *dc, *dcraw;      /* [n, rkv] */
    double *dkpe;            /* [n, dr] */
    double *dqa, *dqan;      /* [n, rq] */
    double *dfa, *dfb, *dfh; /* [n, widest FFN] */
    double *dz, *dsb;        /* [n, E] */
    double *dw;              /* [n, K] */
    double *xg, *dxg, *dey;  /* [n, H] one expert's gathered tokens / their grads / output grads */
    float *zf, *wf;          /* [E], [K] one token's router logits as float, route weights */
    /* the last forward */
    int64_t B;
    double lambda, alpha;
    int fwd_ok;
    /* FP8 recipe (docs/ARCHITECTURE.md, "FP8 training"): block linears through model/fp8 when fp8
     * is set */
    int fp8;
    tm_fp8 f8;
    /* compute precision (dsv3_trainable_set_precision): 64 = double, 32 = float32 products */
    int prec;
    float *gws;      /* float32 product and attention workspace (allocated when prec is first 32) */
    double inv_temp; /* the last dsv3_trainable_logp_forward: 1 / temperature */
    int logp_ok;     /* 1 after a successful dsv3_trainable_logp_forward (0 after any other forward) */
};

/* ---------------------------------------------------------------- parameter table ------ */

static dsv3_status reg(dsv3_trainable *tm, const dsv3_model *m, float **p, float **g, int64_t rows,
                       int64_t cols, const dsv3_weight *src, const float *vec, dsv3_err *err,
                       const char *fmt, ...) __attribute__((format(printf, 10, 11)));

/* Appends a tensor to the table: its slot in the flat arrays is [n_params, n_params + numel). */
static dsv3_status reg(dsv3_trainable *tm, const dsv3_model *m, float **p, float **g, int64_t rows,
                       int64_t cols, const dsv3_weight *src, const float *vec, dsv3_err *err,
                       const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    dsv3_trainable_tensor *t = &tm->tensors[tm->n_tensors];
    tm_slot *sl = &tm->slots[tm->n_tensors];
    if (!(t->name = strdup(name))) return dsv3_errf(err, DSV3_ENOMEM, "train: out of memory");
    tm->n_tensors++;
    t->ndim = src ? 2 : 1;
    t->rows = rows;
    t->cols = src ? cols : 1;
    t->numel = rows * t->cols;
    t->offset = tm->n_params;
    t->decay = src != NULL;
    if (src) {
        t->dtype = src->dtype;
    } else {
        const dsv3_st_tensor *st = dsv3_ckpt_find(m->ck, name);
        t->dtype = st ? st->dtype : DSV3_DT_F32;
    }
    sl->p = p;
    sl->g = g;
    if (src) sl->src = *src;
    sl->at = (dsv3_weight *)src; /* the model is not const to its owner; see dsv3_trainable_point_model */
    sl->vec = vec;
    tm->n_params += t->numel;
    return DSV3_OK;
}

static dsv3_status reg_mlp(dsv3_trainable *tm, const dsv3_model *m, tm_mlp *p, tm_mlp *g,
                           const dsv3_mlp_w *w, int64_t width, const char *prefix,
                           dsv3_err *err) {
    const int64_t H = tm->cfg.hidden_size;
    dsv3_status st;
    if ((st = reg(tm, m, &p->gate, &g->gate, width, H, &w->gate, NULL, err, "%s.gate_proj.weight", prefix)) ||
        (st = reg(tm, m, &p->up, &g->up, width, H, &w->up, NULL, err, "%s.up_proj.weight", prefix)))
        return st;
    return reg(tm, m, &p->down, &g->down, H, width, &w->down, NULL, err, "%s.down_proj.weight", prefix);
}

/* Registers block li (a main layer, or the MTP block at li = num_hidden_layers). */
static dsv3_status reg_layer(dsv3_trainable *tm, const dsv3_model *m, tm_layer *p, tm_layer *g,
                             const dsv3_layer_w *w, int64_t li, dsv3_err *err) {
    const dsv3_config *c = &tm->cfg;
    const int64_t H = c->hidden_size, nh = c->num_attention_heads, rq = c->q_lora_rank;
    const int64_t dq = dsv3_config_qk_head_dim(c), rkv = c->kv_lora_rank, dr = c->qk_rope_head_dim;
    const int64_t E = c->n_routed_experts;
    const long long i = (long long)li;
    dsv3_status st;
    if ((st = reg(tm, m, &p->attn_norm, &g->attn_norm, H, 1, NULL, w->attn_norm, err, "model.layers.%lld.input_layernorm.weight", i)))
        return st;
    if (rq > 0) {
        if ((st = reg(tm, m, &p->q_a, &g->q_a, rq, H, &w->q_a, NULL, err, "model.layers.%lld.self_attn.q_a_proj.weight", i)) ||
            (st = reg(tm, m, &p->q_a_norm, &g->q_a_norm, rq, 1, NULL, w->q_a_norm, err, "model.layers.%lld.self_attn.q_a_layernorm.weight", i)) ||
            (st = reg(tm, m, &p->q_b, &g->q_b, nh * dq, rq, &w->q_b, NULL, err, "model.layers.%lld.self_attn.q_b_proj.weight", i)))
            return st;
    } else if ((st = reg(tm, m, &p->q_b, &g->q_b, nh * dq, H, &w->q_b, NULL, err, "model.layers.%lld.self_attn.q_proj.weight", i))) {
        return st;
    }
    if ((st = reg(tm, m, &p->kv_a, &g->kv_a, rkv + dr, H, &w->kv_a, NULL, err, "model.layers.%lld.self_attn.kv_a_proj_with_mqa.weight", i)) ||
        (st = reg(tm, m, &p->kv_a_norm, &g->kv_a_norm, rkv, 1, NULL, w->kv_a_norm, err, "model.layers.%lld.self_attn.kv_a_layernorm.weight", i)) ||
        (st = reg(tm, m, &p->kv_b, &g->kv_b, nh * (c->qk_nope_head_dim + c->v_head_dim), rkv, &w->kv_b, NULL, err, "model.layers.%lld.self_attn.kv_b_proj.weight", i)) ||
        (st = reg(tm, m, &p->o, &g->o, H, nh * c->v_head_dim, &w->o, NULL, err, "model.layers.%lld.self_attn.o_proj.weight", i)) ||
        (st = reg(tm, m, &p->ffn_norm, &g->ffn_norm, H, 1, NULL, w->ffn_norm, err, "model.layers.%lld.post_attention_layernorm.weight", i)))
        return st;
    p->is_moe = g->is_moe = w->is_moe;
    p->moe_index = g->moe_index = -1;
    char pre[200];
    if (!w->is_moe) {
        snprintf(pre, sizeof pre, "model.layers.%lld.mlp", i);
        return reg_mlp(tm, m, &p->dense, &g->dense, &w->dense, c->intermediate_size, pre, err);
    }
    if ((st = reg(tm, m, &p->router, &g->router, E, H, &w->router, NULL, err, "model.layers.%lld.mlp.gate.weight", i)))
        return st;
    if (!(p->experts = calloc((size_t)E, sizeof *p->experts)) ||
        !(g->experts = calloc((size_t)E, sizeof *g->experts)))
        return dsv3_errf(err, DSV3_ENOMEM, "train: out of memory");
    for (int64_t e = 0; e < E; e++) {
        snprintf(pre, sizeof pre, "model.layers.%lld.mlp.experts.%lld", i, (long long)e);
        if ((st = reg_mlp(tm, m, &p->experts[e], &g->experts[e], &w->experts[e], c->moe_intermediate_size, pre, err)))
            return st;
    }
    if (c->n_shared_experts > 0) {
        snprintf(pre, sizeof pre, "model.layers.%lld.mlp.shared_experts", i);
        if ((st = reg_mlp(tm, m, &p->shared, &g->shared, &w->shared, c->moe_intermediate_size * c->n_shared_experts, pre, err)))
            return st;
    }
    p->moe_index = g->moe_index = tm->n_moe;
    tm->moe_layer[tm->n_moe] = li;
    memcpy(tm->bias + tm->n_moe * E, w->bias_host, (size_t)E * sizeof(float));
    tm->n_moe++;
    return DSV3_OK;
}

/* 1 if two [rows, cols] weights decode to bitwise-equal float32 values. */
static int weights_equal(const dsv3_model *m, const dsv3_weight *a, const dsv3_weight *b,
                         float *ra, float *rb) {
    for (int64_t r = 0; r < a->rows; r++) {
        m->be->row(ra, a, r);
        m->be->row(rb, b, r);
        if (memcmp(ra, rb, (size_t)a->cols * sizeof *ra)) return 0;
    }
    return 1;
}

/* A shared MTP tensor: tied to the main one when the checkpoint leaves the copy out or when the
 * copy's values equal the main ones; otherwise a parameter of its own. */
static dsv3_status reg_shared(dsv3_trainable *tm, const dsv3_model *m, float **p, float **g,
                              const dsv3_weight *copy, const dsv3_weight *main_w,
                              const char *main_name, const char *copy_name, float *scratch,
                              dsv3_err *err) {
    const dsv3_trainable_tensor *mt = dsv3_trainable_find(tm, main_name);
    tm_slot *sl = &tm->slots[mt - tm->tensors];
    if (copy->data == main_w->data) { /* absent copy: the loader bound the main one */
        sl->alias_at = (dsv3_weight *)copy;
        sl->alias_src = *copy;
        return DSV3_OK;
    }
    if (weights_equal(m, copy, main_w, scratch, scratch + main_w->cols)) {
        dsv3_trainable_tensor *t = &tm->tensors[mt - tm->tensors];
        if (!(t->alias = strdup(copy_name))) return dsv3_errf(err, DSV3_ENOMEM, "train: out of memory");
        t->alias_dtype = copy->dtype;
        sl->alias_at = (dsv3_weight *)copy;
        sl->alias_src = *copy;
        return DSV3_OK;
    }
    return reg(tm, m, p, g, copy->rows, copy->cols, copy, NULL, err, "%s", copy_name);
}

static dsv3_status build_table(dsv3_trainable *tm, const dsv3_model *m, dsv3_err *err) {
    const dsv3_config *c = &tm->cfg;
    const int64_t H = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    const int64_t E = c->n_routed_experts > 0 ? c->n_routed_experts : 1;
    const int64_t cap = (L + 1) * (16 + 3 * (E + 1)) + 16;
    tm->tensors = calloc((size_t)cap, sizeof *tm->tensors);
    tm->slots = calloc((size_t)cap, sizeof *tm->slots);
    tm->moe_layer = calloc((size_t)(L + 1), sizeof *tm->moe_layer);
    tm->bias = calloc((size_t)((L + 1) * E), sizeof *tm->bias);
    tm->P.layers = calloc((size_t)L, sizeof *tm->P.layers);
    tm->G.layers = calloc((size_t)L, sizeof *tm->G.layers);
    if (!tm->tensors || !tm->slots || !tm->moe_layer || !tm->bias || !tm->P.layers || !tm->G.layers)
        return dsv3_errf(err, DSV3_ENOMEM, "train: out of memory");
    tm_params *p = &tm->P, *g = &tm->G;
    dsv3_status st;
    if ((st = reg(tm, m, &p->embed, &g->embed, V, H, &m->embed, NULL, err, "model.embed_tokens.weight")))
        return st;
    for (int64_t l = 0; l < L; l++)
        if ((st = reg_layer(tm, m, &p->layers[l], &g->layers[l], &m->layers[l], l, err))) return st;
    if (tm->has_mtp) {
        const dsv3_mtp_w *t = &m->mtp;
        const long long li = (long long)L;
        if ((st = reg(tm, m, &p->enorm, &g->enorm, H, 1, NULL, t->enorm, err, "model.layers.%lld.enorm.weight", li)) ||
            (st = reg(tm, m, &p->hnorm, &g->hnorm, H, 1, NULL, t->hnorm, err, "model.layers.%lld.hnorm.weight", li)) ||
            (st = reg(tm, m, &p->eh_proj, &g->eh_proj, H, 2 * H, &t->eh_proj, NULL, err, "model.layers.%lld.eh_proj.weight", li)) ||
            (st = reg_layer(tm, m, &p->mtp, &g->mtp, &t->block, L, err)) ||
            (st = reg(tm, m, &p->head_norm, &g->head_norm, H, 1, NULL, t->head_norm, err, "model.layers.%lld.shared_head.norm.weight", li)))
            return st;
    }
    if ((st = reg(tm, m, &p->final_norm, &g->final_norm, H, 1, NULL, m->final_norm, err, "model.norm.weight")) ||
        (st = reg(tm, m, &p->head, &g->head, V, H, &m->lm_head, NULL, err, "lm_head.weight")))
        return st;
    if (tm->has_mtp) {
        float *scratch = malloc((size_t)(2 * H) * sizeof *scratch);
        if (!scratch) return dsv3_errf(err, DSV3_ENOMEM, "train: out of memory");
        char en[128], hn[128];
        snprintf(en, sizeof en, "model.layers.%lld.embed_tokens.weight", (long long)L);
        snprintf(hn, sizeof hn, "model.layers.%lld.shared_head.head.weight", (long long)L);
        st = reg_shared(tm, m, &p->mtp_embed, &g->mtp_embed, &m->mtp.embed, &m->embed,
                        "model.embed_tokens.weight", en, scratch, err);
        if (!st)
            st = reg_shared(tm, m, &p->mtp_head, &g->mtp_head, &m->mtp.head, &m->lm_head,
                            "lm_head.weight", hn, scratch, err);
        free(scratch);
        if (st) return st;
    }
    return DSV3_OK;
}

/* Points every struct field at its tensor and copies the source weights in, decoded exactly as
 * the inference kernels decode them. */
static void point_and_load(dsv3_trainable *tm, const dsv3_model *m) {
    for (int64_t i = 0; i < tm->n_tensors; i++) {
        const dsv3_trainable_tensor *t = &tm->tensors[i];
        const tm_slot *sl = &tm->slots[i];
        float *dst = tm->params + t->offset;
        *sl->p = dst;
        *sl->g = tm->grads + t->offset;
        if (sl->vec) memcpy(dst, sl->vec, (size_t)t->numel * sizeof *dst);
        else
            for (int64_t r = 0; r < t->rows; r++) m->be->row(dst + r * t->cols, &sl->src, r);
    }
    if (tm->has_mtp) { /* tied tensors were not registered: share the main ones */
        if (!tm->P.mtp_embed) tm->P.mtp_embed = tm->P.embed, tm->G.mtp_embed = tm->G.embed;
        if (!tm->P.mtp_head) tm->P.mtp_head = tm->P.head, tm->G.mtp_head = tm->G.head;
    }
}

/* ---------------------------------------------------------------- activation arena ----- */

typedef struct {
    char *base; /* NULL while measuring */
    size_t off;
} arena;

/* Next 64-byte aligned block of count elements of size el (NULL while measuring). */
static void *take(arena *a, int64_t count, size_t el) {
    void *p = a->base ? a->base + a->off : NULL;
    a->off += ((size_t)count * el + 63) & ~(size_t)63;
    return p;
}
#define TAKE(a, ptr, count) ((ptr) = take((a), (count), sizeof *(ptr)))

static int64_t max2(int64_t a, int64_t b) {
    return a > b ? a : b;
}

/* Lays out every activation and scratch buffer for n = max_batch * T rows. */
static void layout(dsv3_trainable *tm, arena *a) {
    const dsv3_config *c = &tm->cfg;
    const int64_t B = tm->max_batch, T = tm->T, n = B * T, H = c->hidden_size;
    const int64_t nh = c->num_attention_heads, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim;
    const int64_t dv = c->v_head_dim, dq = dn + dr, rkv = c->kv_lora_rank;
    const int64_t rq = c->q_lora_rank > 0 ? c->q_lora_rank : 1;
    const int64_t E = c->n_routed_experts > 0 ? c->n_routed_experts : 1;
    const int64_t K = c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1;
    const int64_t mi = c->moe_intermediate_size, ms = mi * c->n_shared_experts;
    const int64_t wmax = max2(c->intermediate_size, max2(mi, ms));
    const int64_t L = c->num_hidden_layers;
    for (int64_t l = 0; l <= L; l++) {
        if (l == L && !tm->has_mtp) break;
        tm_acts *x = &tm->acts[l];
        const tm_layer *w = l < L ? &tm->P.layers[l] : &tm->P.mtp;
        TAKE(a, x->x, n * H);
        TAKE(a, x->xn1, n * H);
        TAKE(a, x->rstd1, n);
        if (c->q_lora_rank > 0) {
            TAKE(a, x->qa, n * rq);
            TAKE(a, x->qa_rstd, n);
            TAKE(a, x->qan, n * rq);
        }
        TAKE(a, x->q, n * nh * dq);
        TAKE(a, x->craw, n * rkv);
        TAKE(a, x->c, n * rkv);
        TAKE(a, x->c_rstd, n);
        TAKE(a, x->kpe, n * dr);
        TAKE(a, x->kv, n * nh * (dn + dv));
        TAKE(a, x->k, n * nh * dq);
        TAKE(a, x->v, n * nh * dv);
        TAKE(a, x->P, B * nh * T * T);
        TAKE(a, x->o, n * nh * dv);
        TAKE(a, x->x2, n * H);
        TAKE(a, x->xn2, n * H);
        TAKE(a, x->rstd2, n);
        if (!w->is_moe) {
            TAKE(a, x->fa, n * c->intermediate_size);
            TAKE(a, x->fb, n * c->intermediate_size);
            TAKE(a, x->fh, n * c->intermediate_size);
            continue;
        }
        TAKE(a, x->z, n * E);
        TAKE(a, x->s, n * E);
        TAKE(a, x->idx, n * K);
        TAKE(a, x->w, n * K);
        TAKE(a, x->off, E + 1);
        TAKE(a, x->slot_tok, n * K);
        TAKE(a, x->slot_k, n * K);
        TAKE(a, x->ea, n * K * mi);
        TAKE(a, x->eb, n * K * mi);
        TAKE(a, x->eh, n * K * mi);
        TAKE(a, x->ey, n * K * H);
        if (ms > 0) {
            TAKE(a, x->sa, n * ms);
            TAKE(a, x->sb, n * ms);
            TAKE(a, x->sh, n * ms);
        }
        TAKE(a, x->f, B * E);
    }
    TAKE(a, tm->in_ids, n);
    TAKE(a, tm->tgt, n);
    TAKE(a, tm->mtp_ids, n);
    TAKE(a, tm->mtp_tgt, n);
    TAKE(a, tm->pos, n);
    TAKE(a, tm->pos_mtp, n);
    double **rows_h[] = {&tm->xL, &tm->h, &tm->hin, &tm->hn, &tm->e, &tm->en, &tm->mout,
                         &tm->hf, &tm->dres, &tm->dh, &tm->dxn, &tm->dtmp, &tm->dtmp2,
                         &tm->xg, &tm->dxg, &tm->dey};
    for (size_t i = 0; i < sizeof rows_h / sizeof rows_h[0]; i++) TAKE(a, *rows_h[i], n * H);
    double **rows_1[] = {&tm->h_rstd, &tm->hn_rstd, &tm->en_rstd, &tm->hf_rstd};
    for (size_t i = 0; i < sizeof rows_1 / sizeof rows_1[0]; i++) TAKE(a, *rows_1[i], n);
    TAKE(a, tm->cat, n * 2 * H);
    TAKE(a, tm->dcat, n * 2 * H);
    tm->head_rows = n * c->vocab_size <= HEAD_KEEP ? n : (n < HEAD_CHUNK ? n : HEAD_CHUNK);
    TAKE(a, tm->logits, tm->head_rows * c->vocab_size);
    if (tm->head_rows == n && tm->has_mtp) TAKE(a, tm->logits2, n * c->vocab_size);
    TAKE(a, tm->lrow, tm->head_rows);
    TAKE(a, tm->dlrow, tm->head_rows);
    TAKE(a, tm->kva, n * (rkv + dr));
    TAKE(a, tm->dq, n * nh * dq);
    TAKE(a, tm->dk, n * nh * dq);
    TAKE(a, tm->dvv, n * nh * dv);
    TAKE(a, tm->dout, n * nh * dv);
    TAKE(a, tm->dkv, n * nh * (dn + dv));
    TAKE(a, tm->dc, n * rkv);
    TAKE(a, tm->dcraw, n * rkv);
    TAKE(a, tm->dkpe, n * dr);
    TAKE(a, tm->dqa, n * rq);
    TAKE(a, tm->dqan, n * rq);
    TAKE(a, tm->dfa, n * wmax);
    TAKE(a, tm->dfb, n * wmax);
    TAKE(a, tm->dfh, n * wmax);
    TAKE(a, tm->dz, n * E);
    TAKE(a, tm->dsb, n * E);
    TAKE(a, tm->dw, n * K);
    TAKE(a, tm->zf, E);
    TAKE(a, tm->wf, K);
}

/* ---------------------------------------------------------------- FP8 workspace -------- */

static void fp8_free(tm_fp8 *f) {
    free(f->qa), free(f->qb), free(f->va), free(f->vb), free(f->xc);
    free(f->sa), free(f->sb), free(f->qw), free(f->vw), free(f->sw);
    memset(f, 0, sizeof *f);
}

/* Sizes the workspace for the block linears of tm's config ("FP8 training": the MLA
 * projections, dense FFN, routed and shared experts; not the router, embedding, head or the
 * MTP eh_proj). */
static int fp8_alloc(dsv3_trainable *tm) {
    const dsv3_config *c = &tm->cfg;
    const int64_t H = c->hidden_size, nh = c->num_attention_heads;
    const int64_t dq = c->qk_nope_head_dim + c->qk_rope_head_dim, dv = c->v_head_dim;
    const int64_t rkv = c->kv_lora_rank, rq = c->q_lora_rank, kvw = c->qk_nope_head_dim + dv;
    const int64_t mi = c->moe_intermediate_size, ms = mi * c->n_shared_experts;
    const int64_t shapes[][2] = {{rq, H}, {nh * dq, rq > 0 ? rq : H}, {rkv + c->qk_rope_head_dim, H},
                                 {nh * kvw, rkv}, {H, nh * dv}, {c->intermediate_size, H},
                                 {mi, H}, {ms, H}};
    tm_fp8 *f = &tm->f8;
    f->rows = tm->max_batch * tm->T;
    f->dim = 1, f->wmax = 1;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        f->dim = max2(f->dim, max2(shapes[i][0], shapes[i][1]));
        f->wmax = max2(f->wmax, shapes[i][0] * shapes[i][1]);
    }
    const int64_t big = f->rows * f->dim, tiles = (f->dim + 127) / 128;
    const int64_t ns = max2(f->rows * tiles, (f->rows + 127) / 128 * f->dim);
    f->qa = malloc((size_t)big), f->qb = malloc((size_t)big);
    f->va = malloc((size_t)big * sizeof(double)), f->vb = malloc((size_t)big * sizeof(double));
    f->xc = malloc((size_t)big * sizeof(double));
    f->sa = malloc((size_t)ns * sizeof(float)), f->sb = malloc((size_t)ns * sizeof(float));
    f->qw = malloc((size_t)f->wmax), f->vw = malloc((size_t)f->wmax * sizeof(double));
    f->sw = malloc((size_t)(tiles * tiles) * sizeof(float));
    if (f->qa && f->qb && f->va && f->vb && f->xc && f->sa && f->sb && f->qw && f->vw && f->sw)
        return 0;
    fp8_free(f);
    return -1;
}

/* ---------------------------------------------------------------- lifetime ------------- */

static void free_layer(tm_layer *p) {
    free(p->experts);
}

void dsv3_trainable_free(dsv3_trainable *tm) {
    if (!tm) return;
    if (tm->tensors)
        for (int64_t i = 0; i < tm->n_tensors; i++) {
            free((char *)tm->tensors[i].name);
            free((char *)tm->tensors[i].alias);
        }
    if (tm->P.layers)
        for (int64_t l = 0; l < tm->cfg.num_hidden_layers; l++) {
            free_layer(&tm->P.layers[l]);
            free_layer(&tm->G.layers[l]);
        }
    free_layer(&tm->P.mtp);
    free_layer(&tm->G.mtp);
    free(tm->P.layers);
    free(tm->G.layers);
    free(tm->tensors);
    free(tm->slots);
    free(tm->moe_layer);
    free(tm->bias);
    free(tm->bias0);
    free(tm->vec0);
    free(tm->params);
    free(tm->grads);
    free(tm->inv_freq);
    free(tm->acts);
    free(tm->arena);
    fp8_free(&tm->f8);
    free(tm->gws);
    free(tm);
}

dsv3_status dsv3_trainable_new(dsv3_trainable **out, const dsv3_model *m, int64_t max_batch,
                        int64_t seq_len, dsv3_err *err) {
    *out = NULL;
    const dsv3_config *c = &m->cfg;
    if (!m->be->is_host)
        return dsv3_errf(err, DSV3_EUNSUPPORTED,
                         "train: the model's backend '%s' keeps its memory off the host; training "
                         "runs on a host backend (fast or ref)", m->be->name);
    if (c->family != DSV3_FAMILY_V3 || c->scoring_func != DSV3_SCORE_SIGMOID ||
        c->topk_method != DSV3_TOPK_NOAUX_TC)
        return dsv3_errf(err, DSV3_EUNSUPPORTED,
                         "train: routing of model_type %s with scoring_func \"%s\" and topk_method "
                         "\"%s\" is not implemented in the trainer (its router gradients and bias "
                         "update are those of sigmoid scores with noaux_tc, the DeepSeek-V3 family); "
                         "inference and probes support it",
                         c->model_type, dsv3_config_scoring_name(c->scoring_func),
                         dsv3_config_topk_method_name(c->topk_method));
    if (seq_len < 2)
        return dsv3_errf(err, DSV3_EINVAL, "train: seq_len %lld: need at least 2 tokens",
                         (long long)seq_len);
    if (seq_len > c->max_position_embeddings)
        return dsv3_errf(err, DSV3_EINVAL,
                         "train: seq_len %lld exceeds max_position_embeddings %lld of the model",
                         (long long)seq_len, (long long)c->max_position_embeddings);
    if (max_batch < 1)
        return dsv3_errf(err, DSV3_EINVAL, "train: batch %lld: need at least 1 sequence",
                         (long long)max_batch);
    dsv3_trainable *tm = calloc(1, sizeof *tm);
    if (!tm) return dsv3_errf(err, DSV3_ENOMEM, "train: out of memory");
    tm->cfg = *c;
    tm->max_batch = max_batch;
    tm->T = seq_len;
    tm->prec = 64;
    tm->has_mtp = m->has_mtp;
    tm->rope_factor = (double)m->rope_factor;
    tm->softmax_scale = (double)m->softmax_scale;
    tm->eps = (double)(float)c->rms_norm_eps;
    const int64_t half = c->qk_rope_head_dim / 2;
    dsv3_status st;
    if (!(tm->inv_freq = malloc((size_t)(half > 0 ? half : 1) * sizeof *tm->inv_freq)) ||
        !(tm->acts = calloc((size_t)(c->num_hidden_layers + 1), sizeof *tm->acts))) {
        st = dsv3_errf(err, DSV3_ENOMEM, "train: out of memory");
        goto fail;
    }
    memcpy(tm->inv_freq, m->inv_freq, (size_t)half * sizeof *tm->inv_freq);
    if ((st = build_table(tm, m, err))) goto fail;
    tm->params = calloc((size_t)tm->n_params, sizeof *tm->params);
    tm->grads = calloc((size_t)tm->n_params, sizeof *tm->grads);
    if (!tm->params || !tm->grads) {
        st = dsv3_errf(err, DSV3_ENOMEM, "train: out of memory for %lld parameters",
                       (long long)tm->n_params);
        goto fail;
    }
    point_and_load(tm, m);
    tm->src_model = m;
    const int64_t nb = tm->n_moe * c->n_routed_experts;
    int64_t n_vec = 1;
    for (int64_t i = 0; i < tm->n_tensors; i++)
        if (tm->slots[i].vec) n_vec += tm->tensors[i].numel;
    tm->vec0 = malloc((size_t)n_vec * sizeof *tm->vec0);
    tm->bias0 = malloc((size_t)(nb > 0 ? nb : 1) * sizeof *tm->bias0);
    if (!tm->vec0 || !tm->bias0) {
        st = dsv3_errf(err, DSV3_ENOMEM, "train: out of memory");
        goto fail;
    }
    for (int64_t i = 0, at = 0; i < tm->n_tensors; i++) {
        if (!tm->slots[i].vec) continue;
        tm->slots[i].voff = at;
        memcpy(tm->vec0 + at, tm->params + tm->tensors[i].offset,
               (size_t)tm->tensors[i].numel * sizeof *tm->vec0);
        at += tm->tensors[i].numel;
    }
    memcpy(tm->bias0, tm->bias, (size_t)nb * sizeof *tm->bias0);
    arena a = {0};
    layout(tm, &a);
    if (!(tm->arena = calloc(1, a.off))) {
        st = dsv3_errf(err, DSV3_ENOMEM,
                       "train: out of memory for activations (%zu bytes for batch %lld x seq_len %lld)",
                       a.off, (long long)max_batch, (long long)seq_len);
        goto fail;
    }
    a = (arena){.base = tm->arena};
    layout(tm, &a);
    *out = tm;
    return DSV3_OK;
fail:
    dsv3_trainable_free(tm);
    return st;
}

const dsv3_config *dsv3_trainable_config(const dsv3_trainable *tm) {
    return &tm->cfg;
}
int64_t dsv3_trainable_seq_len(const dsv3_trainable *tm) {
    return tm->T;
}
int64_t dsv3_trainable_max_batch(const dsv3_trainable *tm) {
    return tm->max_batch;
}
int dsv3_trainable_has_mtp(const dsv3_trainable *tm) {
    return tm->has_mtp;
}
int64_t dsv3_trainable_n_tensors(const dsv3_trainable *tm) {
    return tm->n_tensors;
}
const dsv3_trainable_tensor *dsv3_trainable_tensor_at(const dsv3_trainable *tm, int64_t i) {
    return i >= 0 && i < tm->n_tensors ? &tm->tensors[i] : NULL;
}
const dsv3_trainable_tensor *dsv3_trainable_find(const dsv3_trainable *tm, const char *name) {
    for (int64_t i = 0; i < tm->n_tensors; i++)
        if (!strcmp(tm->tensors[i].name, name) ||
            (tm->tensors[i].alias && !strcmp(tm->tensors[i].alias, name)))
            return &tm->tensors[i];
    return NULL;
}
int64_t dsv3_trainable_n_params(const dsv3_trainable *tm) {
    return tm->n_params;
}
float *dsv3_trainable_params(dsv3_trainable *tm) {
    return tm->params;
}
float *dsv3_trainable_grads(dsv3_trainable *tm) {
    return tm->grads;
}
int64_t dsv3_trainable_n_moe(const dsv3_trainable *tm) {
    return tm->n_moe;
}
int64_t dsv3_trainable_moe_layer(const dsv3_trainable *tm, int64_t i) {
    return i >= 0 && i < tm->n_moe ? tm->moe_layer[i] : -1;
}
dsv3_status dsv3_trainable_set_fp8(dsv3_trainable *tm, int on, dsv3_err *err) {
    if (on && !tm->f8.qa && fp8_alloc(tm))
        return dsv3_errf(err, DSV3_ENOMEM, "train: out of memory for the FP8 workspace");
    tm->fp8 = on != 0;
    tm->fwd_ok = 0; /* a backward must follow a forward of the same precision */
    return DSV3_OK;
}

/* The float32 workspace: the largest product any linear of the table needs for a full
 * micro-batch (every linear sees at most max_batch * T rows, the head included). */
dsv3_status dsv3_trainable_set_precision(dsv3_trainable *tm, int bits, dsv3_err *err) {
    if (bits != 32 && bits != 64)
        return dsv3_errf(err, DSV3_EINVAL, "train: precision must be 32 or 64 (got %d)", bits);
    if (bits == 32 && !tm->gws) {
        const int64_t n = tm->max_batch * tm->T;
        int64_t need = 1;
        for (int64_t i = 0; i < tm->n_tensors; i++) {
            const dsv3_trainable_tensor *t = &tm->tensors[i];
            if (t->ndim != 2) continue;
            const int64_t w = dsv3_op_linear_ws(n, t->cols, t->rows);
            need = w > need ? w : need;
        }
        /* eh_proj is [H, 2H]: in the table; the MTP head shares the main head's shape */
        const dsv3_config *c = &tm->cfg;
        const int64_t att = (int64_t)dsv3_pool_threads() *
                            dsv3_op_attention_ws(tm->T, c->qk_nope_head_dim + c->qk_rope_head_dim,
                                                 c->v_head_dim);
        need = att > need ? att : need;
        tm->gws = malloc((size_t)need * sizeof *tm->gws);
        if (!tm->gws)
            return dsv3_errf(err, DSV3_ENOMEM, "train: out of memory for the float32 workspace");
    }
    tm->prec = bits;
    tm->fwd_ok = 0; /* a backward must follow a forward of the same precision */
    return DSV3_OK;
}

int dsv3_trainable_precision(const dsv3_trainable *tm) {
    return tm->prec;
}

int dsv3_trainable_fp8(const dsv3_trainable *tm) {
    return tm->fp8;
}

float *dsv3_trainable_bias(dsv3_trainable *tm) {
    return tm->bias;
}

/* ---------------------------------------------------------------- block linears ------- */

/* A linear kept out of FP8 (router, heads, eh_proj — and every linear when FP8 is off): in
 * double, or summed in float32 when the precision is 32. */
static void hp_fwd(dsv3_trainable *tm, double *y, const double *x, const float *W, int64_t n,
                   int64_t in, int64_t out) {
    if (tm->prec == 32) dsv3_op_linear_forward_f32(y, x, W, n, in, out, tm->gws);
    else dsv3_op_linear_forward(y, x, W, n, in, out);
}

static void hp_bwd(dsv3_trainable *tm, double *dx, float *dW, const double *dy, const double *x,
                   const float *W, int64_t n, int64_t in, int64_t out) {
    if (tm->prec == 32) dsv3_op_linear_backward_f32(dx, dW, dy, x, W, n, in, out, tm->gws);
    else dsv3_op_linear_backward(dx, dW, dy, x, W, n, in, out);
}

/* The linears of a decoder block, y = x W^T: in double from the FP32 weights, or with tm->fp8
 * the FP8 recipe (docs/ARCHITECTURE.md, "FP8 training"; model/train/fp8.h): x in 1x128 tiles, W in
 * 128x128 blocks, FP32 accumulation promoted every 128. pow2 asks for power-of-two activation
 * scales (the o_proj input and the routed experts' input). */
static void lin_fwd(dsv3_trainable *tm, double *y, const double *x, const float *W, int64_t n,
                    int64_t in, int64_t out, int pow2) {
    if (!tm->fp8) {
        hp_fwd(tm, y, x, W, n, in, out);
        return;
    }
    tm_fp8 *f = &tm->f8;
    dsv3_fp8_quant_rows(f->qa, f->sa, x, n, in, pow2);
    dsv3_fp8_values(f->va, f->qa, n * in);
    dsv3_fp8_quant_blocks(f->qw, f->sw, W, out, in);
    dsv3_fp8_values(f->vw, f->qw, out * in);
    dsv3_fp8_gemm_fprop(y, f->va, f->sa, f->vw, f->sw, n, in, out);
}

/* Backward of lin_fwd (dx and dW added into; either may be NULL). FP8: Dgrad quantizes dy in
 * 1x128 tiles along out; Wgrad re-tiles both operands to 128x1 along the tokens, x from the
 * FP8 copy the forward made (the recipe caches activations in FP8), dy from its high-precision
 * value. pow2 as for lin_fwd; pow2_dy: power-of-two scales for dy (the gradient entering
 * the routed experts' down-projection). */
static void lin_bwd(dsv3_trainable *tm, double *dx, float *dW, const double *dy, const double *x,
                    const float *W, int64_t n, int64_t in, int64_t out, int pow2, int pow2_dy) {
    if (!tm->fp8) {
        hp_bwd(tm, dx, dW, dy, x, W, n, in, out);
        return;
    }
    tm_fp8 *f = &tm->f8;
    if (dx) {
        dsv3_fp8_quant_rows(f->qa, f->sa, dy, n, out, pow2_dy);
        dsv3_fp8_values(f->va, f->qa, n * out);
        dsv3_fp8_quant_blocks(f->qw, f->sw, W, out, in);
        dsv3_fp8_values(f->vw, f->qw, out * in);
        dsv3_fp8_gemm_dgrad(dx, f->va, f->sa, f->vw, f->sw, n, in, out);
    }
    if (dW) {
        dsv3_fp8_quant_rows(f->qa, f->sa, x, n, in, pow2);
        dsv3_fp8_dequant_rows(f->xc, f->qa, f->sa, n, in);
        dsv3_fp8_quant_cols(f->qa, f->sa, f->xc, n, in, pow2);
        dsv3_fp8_values(f->va, f->qa, n * in);
        dsv3_fp8_quant_cols(f->qb, f->sb, dy, n, out, pow2_dy);
        dsv3_fp8_values(f->vb, f->qb, n * out);
        dsv3_fp8_gemm_wgrad(dW, f->vb, f->sb, f->va, f->sa, n, in, out);
    }
}

/* Cross-entropy rows in the model's precision. */
static void ce_fwd(dsv3_trainable *tm, double *loss, double *probs, const double *logits,
                   const int32_t *targets, int64_t n, int64_t V) {
    if (tm->prec == 32) dsv3_op_ce_forward_f32(loss, probs, logits, targets, n, V);
    else dsv3_op_ce_forward(loss, probs, logits, targets, n, V);
}

/* ---------------------------------------------------------------- MLA ------------------ */

static void zero(double *p, int64_t n) {
    memset(p, 0, (size_t)n * sizeof *p);
}

/* docs/ARCHITECTURE.md, "MLA" (naive form), on the block input x (n = B * Ts tokens),
 * x2 = x + MLA(norm(x)):
 *   cq = RMSNorm(x Wqa^T); q = cq Wqb^T (per head [q_nope | q_pe], RoPE on q_pe)
 *   [c ; k_pe] = x Wkva^T; c = RMSNorm(c); k_pe = RoPE(k_pe) (one key shared by all heads)
 *   [k_nope ; v] = c Wkvb^T per head; k = [k_nope ; k_pe]; o = softmax(q k^T scale) v; out = o Wo^T */
static void mla_forward(dsv3_trainable *tm, const tm_layer *W, tm_acts *a, int64_t B, int64_t Ts,
                        const int64_t *pos) {
    const dsv3_config *c = &tm->cfg;
    const int64_t n = B * Ts, H = c->hidden_size, nh = c->num_attention_heads;
    const int64_t dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim, dv = c->v_head_dim;
    const int64_t dq = dn + dr, rkv = c->kv_lora_rank, rq = c->q_lora_rank, kvw = dn + dv;
    dsv3_op_rmsnorm_forward(a->xn1, a->rstd1, a->x, W->attn_norm, n, H, tm->eps);
    if (rq > 0) {
        lin_fwd(tm, a->qa, a->xn1, W->q_a, n, H, rq, 0);
        dsv3_op_rmsnorm_forward(a->qan, a->qa_rstd, a->qa, W->q_a_norm, n, rq, LATENT_EPS);
        lin_fwd(tm, a->q, a->qan, W->q_b, n, rq, nh * dq, 0);
    } else {
        lin_fwd(tm, a->q, a->xn1, W->q_b, n, H, nh * dq, 0);
    }
    dsv3_op_rope_forward(a->q + dn, n, nh, dq, dr, pos, tm->inv_freq, tm->rope_factor);
    lin_fwd(tm, tm->kva, a->xn1, W->kv_a, n, H, rkv + dr, 0);
    for (int64_t s = 0; s < n; s++) {
        memcpy(a->craw + s * rkv, tm->kva + s * (rkv + dr), (size_t)rkv * sizeof(double));
        memcpy(a->kpe + s * dr, tm->kva + s * (rkv + dr) + rkv, (size_t)dr * sizeof(double));
    }
    dsv3_op_rope_forward(a->kpe, n, 1, dr, dr, pos, tm->inv_freq, tm->rope_factor);
    dsv3_op_rmsnorm_forward(a->c, a->c_rstd, a->craw, W->kv_a_norm, n, rkv, LATENT_EPS);
    lin_fwd(tm, a->kv, a->c, W->kv_b, n, rkv, nh * kvw, 0);
    for (int64_t s = 0; s < n; s++)
        for (int64_t h = 0; h < nh; h++) {
            const double *kv = a->kv + s * nh * kvw + h * kvw;
            double *k = a->k + (s * nh + h) * dq;
            memcpy(k, kv, (size_t)dn * sizeof(double));
            memcpy(k + dn, a->kpe + s * dr, (size_t)dr * sizeof(double));
            memcpy(a->v + (s * nh + h) * dv, kv + dn, (size_t)dv * sizeof(double));
        }
    if (tm->prec == 32)
        dsv3_op_attention_forward_f32(a->o, a->P, a->q, a->k, a->v, B, Ts, nh, dq, dv,
                                      tm->softmax_scale, tm->gws);
    else
        dsv3_op_attention_forward(a->o, a->P, a->q, a->k, a->v, B, Ts, nh, dq, dv, tm->softmax_scale);
    lin_fwd(tm, a->x2, a->o, W->o, n, nh * dv, H, 1);
    for (int64_t i = 0; i < n * H; i++) a->x2[i] += a->x[i];
}

/* Backward of mla_forward: on entry d = dL/dx2, on return d = dL/dx (the residual passes
 * straight through; the attention path adds). docs/ARCHITECTURE.md, "Gradients": the shared k_pe
 * gets the sum over heads, then the inverse RoPE, then joins dc as the last dr columns of d(kv_a
 * out); dxn collects both the query path and the kv path. */
static void mla_backward(dsv3_trainable *tm, const tm_layer *W, tm_layer *G, const tm_acts *a,
                         int64_t B, int64_t Ts, const int64_t *pos, double *d) {
    const dsv3_config *c = &tm->cfg;
    const int64_t n = B * Ts, H = c->hidden_size, nh = c->num_attention_heads;
    const int64_t dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim, dv = c->v_head_dim;
    const int64_t dq = dn + dr, rkv = c->kv_lora_rank, rq = c->q_lora_rank, kvw = dn + dv;
    zero(tm->dout, n * nh * dv);
    lin_bwd(tm, tm->dout, G->o, d, a->o, W->o, n, nh * dv, H, 1, 0);
    zero(tm->dq, n * nh * dq);
    zero(tm->dk, n * nh * dq);
    zero(tm->dvv, n * nh * dv);
    if (tm->prec == 32)
        dsv3_op_attention_backward_f32(tm->dq, tm->dk, tm->dvv, tm->dout, a->P, a->q, a->k, a->v,
                                       B, Ts, nh, dq, dv, tm->softmax_scale, tm->gws);
    else
        dsv3_op_attention_backward(tm->dq, tm->dk, tm->dvv, tm->dout, a->P, a->q, a->k, a->v, B,
                                   Ts, nh, dq, dv, tm->softmax_scale);
    zero(tm->dkpe, n * dr);
    for (int64_t s = 0; s < n; s++)
        for (int64_t h = 0; h < nh; h++) {
            const double *dk = tm->dk + (s * nh + h) * dq;
            double *dkv = tm->dkv + s * nh * kvw + h * kvw;
            memcpy(dkv, dk, (size_t)dn * sizeof(double));
            memcpy(dkv + dn, tm->dvv + (s * nh + h) * dv, (size_t)dv * sizeof(double));
            for (int64_t i = 0; i < dr; i++) tm->dkpe[s * dr + i] += dk[dn + i];
        }
    dsv3_op_rope_backward(tm->dkpe, n, 1, dr, dr, pos, tm->inv_freq, tm->rope_factor);
    zero(tm->dc, n * rkv);
    lin_bwd(tm, tm->dc, G->kv_b, tm->dkv, a->c, W->kv_b, n, rkv, nh * kvw, 0, 0);
    zero(tm->dcraw, n * rkv);
    dsv3_op_rmsnorm_backward(tm->dcraw, G->kv_a_norm, tm->dc, a->craw, a->c_rstd, W->kv_a_norm, n, rkv);
    for (int64_t s = 0; s < n; s++) {
        memcpy(tm->kva + s * (rkv + dr), tm->dcraw + s * rkv, (size_t)rkv * sizeof(double));
        memcpy(tm->kva + s * (rkv + dr) + rkv, tm->dkpe + s * dr, (size_t)dr * sizeof(double));
    }
    zero(tm->dxn, n * H);
    lin_bwd(tm, tm->dxn, G->kv_a, tm->kva, a->xn1, W->kv_a, n, H, rkv + dr, 0, 0);
    dsv3_op_rope_backward(tm->dq + dn, n, nh, dq, dr, pos, tm->inv_freq, tm->rope_factor);
    if (rq > 0) {
        zero(tm->dqan, n * rq);
        lin_bwd(tm, tm->dqan, G->q_b, tm->dq, a->qan, W->q_b, n, rq, nh * dq, 0, 0);
        zero(tm->dqa, n * rq);
        dsv3_op_rmsnorm_backward(tm->dqa, G->q_a_norm, tm->dqan, a->qa, a->qa_rstd, W->q_a_norm, n, rq);
        lin_bwd(tm, tm->dxn, G->q_a, tm->dqa, a->xn1, W->q_a, n, H, rq, 0, 0);
    } else {
        lin_bwd(tm, tm->dxn, G->q_b, tm->dq, a->xn1, W->q_b, n, H, nh * dq, 0, 0);
    }
    dsv3_op_rmsnorm_backward(d, G->attn_norm, tm->dxn, a->x, a->rstd1, W->attn_norm, n, H);
}

/* ---------------------------------------------------------------- FFN ------------------ */

/* y[m, H] = (silu(x Wg^T) * (x Wu^T)) Wd^T, keeping a, b, h [m, width]. routed: a routed
 * expert (FP8 power-of-two scales on its input and on the gradient into Wd, "FP8 training"). */
static void mlp_forward(dsv3_trainable *tm, double *y, double *a, double *b, double *h,
                        const double *x, const tm_mlp *w, int64_t m, int64_t H, int64_t width,
                        int routed) {
    lin_fwd(tm, a, x, w->gate, m, H, width, routed);
    lin_fwd(tm, b, x, w->up, m, H, width, routed);
    if (tm->prec == 32) dsv3_op_swiglu_forward_f32(h, a, b, m * width);
    else dsv3_op_swiglu_forward(h, a, b, m * width);
    lin_fwd(tm, y, h, w->down, m, width, H, 0);
}

/* dx += d(mlp)/dx . dy; weight gradients into g. */
static void mlp_backward(dsv3_trainable *tm, double *dx, tm_mlp *g, const double *dy,
                         const double *x, const double *a, const double *b, const double *h,
                         const tm_mlp *w, int64_t m, int64_t H, int64_t width, int routed) {
    zero(tm->dfh, m * width);
    lin_bwd(tm, tm->dfh, g->down, dy, h, w->down, m, width, H, 0, routed);
    zero(tm->dfa, m * width);
    zero(tm->dfb, m * width);
    if (tm->prec == 32) dsv3_op_swiglu_backward_f32(tm->dfa, tm->dfb, tm->dfh, a, b, m * width);
    else dsv3_op_swiglu_backward(tm->dfa, tm->dfb, tm->dfh, a, b, m * width);
    lin_bwd(tm, dx, g->gate, tm->dfa, x, w->gate, m, H, width, routed, 0);
    lin_bwd(tm, dx, g->up, tm->dfb, x, w->up, m, H, width, routed, 0);
}

static uint64_t fnv(uint64_t hsh, int32_t v) {
    for (int i = 0; i < 4; i++) hsh = (hsh ^ (uint64_t)((uint32_t)v >> (8 * i) & 0xff)) * 1099511628211ull;
    return hsh;
}

/* docs/ARCHITECTURE.md, "Routing" and "MoE": out = sum_k w_k FFN_{idx_k}(xn) + shared(xn).
 * The choice (bias, group limit, top-k) is dsv3_moe_route's, on the float32-rounded logits as
 * in inference; the weights are differentiable functions of the unbiased scores. Tokens are
 * grouped by expert (counting sort) so each expert runs once on its rows. Adds the layer's
 * balance statistic (mean over sequences) into *bal and its loads into counts. */
static void moe_forward(dsv3_trainable *tm, const tm_layer *W, tm_acts *a, int64_t B, int64_t Ts,
                        double *out, int64_t *counts, uint64_t *hash, double *bal) {
    const dsv3_config *c = &tm->cfg;
    const int64_t n = B * Ts, H = c->hidden_size, E = c->n_routed_experts;
    const int64_t K = c->num_experts_per_tok, mi = c->moe_intermediate_size;
    const int64_t ms = mi * c->n_shared_experts;
    const float *bias = tm->bias + W->moe_index * E;
    hp_fwd(tm, a->z, a->xn2, W->router, n, H, E);
    const dsv3_route_opts ro = {.bias = bias};
    for (int64_t t = 0; t < n; t++) {
        for (int64_t e = 0; e < E; e++) tm->zf[e] = (float)a->z[t * E + e];
        dsv3_moe_route(c, &ro, tm->zf, a->idx + t * K, tm->wf);
    }
    dsv3_op_gate_forward(a->w, a->s, a->z, a->idx, n, E, K, c->routed_scaling_factor,
                         c->norm_topk_prob);
    for (int64_t i = 0; i < n * K; i++) {
        *hash = fnv(*hash, a->idx[i]);
        if (counts && a->idx[i] >= 0) counts[W->moe_index * E + a->idx[i]]++;
    }
    /* dispatch: slots sorted by expert, tokens in order within an expert */
    int64_t *off = a->off;
    memset(off, 0, (size_t)(E + 1) * sizeof *off);
    for (int64_t i = 0; i < n * K; i++)
        if (a->idx[i] >= 0) off[a->idx[i] + 1]++;
    for (int64_t e = 0; e < E; e++) off[e + 1] += off[e];
    for (int64_t e = E; e > 0; e--) off[e] = off[e - 1];
    off[0] = 0;
    for (int64_t t = 0; t < n; t++)
        for (int64_t k = 0; k < K; k++) {
            const int32_t e = a->idx[t * K + k];
            if (e < 0) continue;
            const int64_t j = off[e + 1]++;
            a->slot_tok[j] = (int32_t)t;
            a->slot_k[j] = (int32_t)k;
        }
    zero(out, n * H);
    for (int64_t e = 0; e < E; e++) {
        const int64_t beg = off[e], m = off[e + 1] - beg;
        if (m == 0) continue;
        for (int64_t j = 0; j < m; j++)
            memcpy(tm->xg + j * H, a->xn2 + (int64_t)a->slot_tok[beg + j] * H, (size_t)H * sizeof(double));
        mlp_forward(tm, a->ey + beg * H, a->ea + beg * mi, a->eb + beg * mi, a->eh + beg * mi,
                    tm->xg, &W->experts[e], m, H, mi, 1);
        for (int64_t j = beg; j < beg + m; j++) {
            const int64_t t = a->slot_tok[j];
            const double wj = a->w[t * K + a->slot_k[j]], *y = a->ey + j * H;
            for (int64_t i = 0; i < H; i++) out[t * H + i] += wj * y[i];
        }
    }
    if (ms > 0) { /* the shared expert's output is added unweighted ("MoE") */
        mlp_forward(tm, tm->xg, a->sa, a->sb, a->sh, a->xn2, &W->shared, n, H, ms, 0);
        for (int64_t i = 0; i < n * H; i++) out[i] += tm->xg[i];
    }
    double lb = 0.0;
    for (int64_t b = 0; b < B; b++)
        lb += dsv3_op_balance_forward(a->f + b * E, a->s + b * Ts * E, a->idx + b * Ts * K, Ts, E, K);
    *bal += lb / (double)B;
}

/* Backward of moe_forward with dy = dL/d(out): dxn += dL/dxn. dbal = dL/d(layer balance) for
 * each sequence's term (alpha * scale / B). */
static void moe_backward(dsv3_trainable *tm, const tm_layer *W, tm_layer *G, const tm_acts *a,
                         int64_t B, int64_t Ts, const double *dy, double *dxn, double dbal) {
    const dsv3_config *c = &tm->cfg;
    const int64_t n = B * Ts, H = c->hidden_size, E = c->n_routed_experts;
    const int64_t K = c->num_experts_per_tok, mi = c->moe_intermediate_size;
    const int64_t ms = mi * c->n_shared_experts;
    const int64_t *off = a->off;
    /* dL/dw for every slot: c_k = dy_t . FFN_k(xn_t) (docs/ARCHITECTURE.md, "Gradients") */
    zero(tm->dw, n * K);
    for (int64_t j = 0; j < off[E]; j++) {
        const int64_t t = a->slot_tok[j];
        double acc = 0.0;
        for (int64_t i = 0; i < H; i++) acc += dy[t * H + i] * a->ey[j * H + i];
        tm->dw[t * K + a->slot_k[j]] = acc;
    }
    for (int64_t e = 0; e < E; e++) {
        const int64_t beg = off[e], m = off[e + 1] - beg;
        if (m == 0) continue;
        for (int64_t j = 0; j < m; j++) {
            const int64_t t = a->slot_tok[beg + j];
            const double wj = a->w[t * K + a->slot_k[beg + j]];
            memcpy(tm->xg + j * H, a->xn2 + t * H, (size_t)H * sizeof(double));
            for (int64_t i = 0; i < H; i++) tm->dey[j * H + i] = wj * dy[t * H + i];
        }
        zero(tm->dxg, m * H);
        mlp_backward(tm, tm->dxg, &G->experts[e], tm->dey, tm->xg, a->ea + beg * mi,
                     a->eb + beg * mi, a->eh + beg * mi, &W->experts[e], m, H, mi, 1);
        for (int64_t j = 0; j < m; j++) {
            double *dx = dxn + (int64_t)a->slot_tok[beg + j] * H;
            for (int64_t i = 0; i < H; i++) dx[i] += tm->dxg[j * H + i];
        }
    }
    zero(tm->dz, n * E);
    zero(tm->dsb, n * E);
    if (dbal != 0.0)
        for (int64_t b = 0; b < B; b++)
            dsv3_op_balance_backward(tm->dsb + b * Ts * E, a->s + b * Ts * E, a->f + b * E, dbal, Ts, E);
    dsv3_op_gate_backward(tm->dz, tm->dw, tm->dsb, a->s, a->idx, n, E, K, c->routed_scaling_factor,
                          c->norm_topk_prob);
    hp_bwd(tm, dxn, G->router, tm->dz, a->xn2, W->router, n, H, E);
    if (ms > 0)
        mlp_backward(tm, dxn, &G->shared, dy, a->xn2, a->sa, a->sb, a->sh, &W->shared, n, H, ms, 0);
}

/* ---------------------------------------------------------------- decoder block -------- */

/* docs/ARCHITECTURE.md, "Forward pass" step 2: x2 = x + MLA(norm(x)); out = x2 + FFN(norm(x2)). */
static void block_forward(dsv3_trainable *tm, const tm_layer *W, tm_acts *a, int64_t B, int64_t Ts,
                          const int64_t *pos, double *out, int64_t *counts, uint64_t *hash,
                          double *bal) {
    const dsv3_config *c = &tm->cfg;
    const int64_t n = B * Ts, H = c->hidden_size;
    mla_forward(tm, W, a, B, Ts, pos);
    dsv3_op_rmsnorm_forward(a->xn2, a->rstd2, a->x2, W->ffn_norm, n, H, tm->eps);
    if (W->is_moe) moe_forward(tm, W, a, B, Ts, out, counts, hash, bal);
    else mlp_forward(tm, out, a->fa, a->fb, a->fh, a->xn2, &W->dense, n, H, c->intermediate_size, 0);
    for (int64_t i = 0; i < n * H; i++) out[i] += a->x2[i];
}

/* On entry d = dL/d(out); on return d = dL/d(x). */
static void block_backward(dsv3_trainable *tm, const tm_layer *W, tm_layer *G, const tm_acts *a,
                           int64_t B, int64_t Ts, const int64_t *pos, double *d, double dbal) {
    const dsv3_config *c = &tm->cfg;
    const int64_t n = B * Ts, H = c->hidden_size;
    zero(tm->dxn, n * H);
    if (W->is_moe) moe_backward(tm, W, G, a, B, Ts, d, tm->dxn, dbal);
    else
        mlp_backward(tm, tm->dxn, &G->dense, d, a->xn2, a->fa, a->fb, a->fh, &W->dense, n, H,
                     c->intermediate_size, 0);
    dsv3_op_rmsnorm_backward(d, G->ffn_norm, tm->dxn, a->x2, a->rstd2, W->ffn_norm, n, H);
    mla_backward(tm, W, G, a, B, Ts, pos, d);
}

/* ---------------------------------------------------------------- head + CE ------------ */

/* Sum over rows of CE(h W^T, targets), head_rows rows at a time in buf ([head_rows, V]); when
 * all n rows fit, buf keeps their probabilities. logits_out (float [n, V]) if not NULL
 * receives the logits. */
static double head_forward(dsv3_trainable *tm, const double *h, const float *W, const int32_t *tgt,
                           int64_t n, float *logits_out, double *buf) {
    const int64_t H = tm->cfg.hidden_size, V = tm->cfg.vocab_size, R = tm->head_rows;
    double sum = 0.0;
    for (int64_t r0 = 0; r0 < n; r0 += R) {
        const int64_t m = n - r0 < R ? n - r0 : R;
        hp_fwd(tm, buf, h + r0 * H, W, m, H, V);
        if (logits_out)
            for (int64_t i = 0; i < m * V; i++) logits_out[r0 * V + i] = (float)buf[i];
        ce_fwd(tm, tm->lrow, buf, buf, tgt + r0, m, V);
        for (int64_t i = 0; i < m; i++) sum += tm->lrow[i];
    }
    return sum;
}

/* dh += and dW += the gradient of dl * sum_rows CE: from the probabilities head_forward kept
 * in buf (kept), or with the logits recomputed chunk by chunk. */
static void head_backward(dsv3_trainable *tm, double *dh, float *dW, const double *h, const float *W,
                          const int32_t *tgt, int64_t n, double dl, double *buf, int kept) {
    const int64_t H = tm->cfg.hidden_size, V = tm->cfg.vocab_size, R = tm->head_rows;
    for (int64_t i = 0; i < R; i++) tm->dlrow[i] = dl;
    for (int64_t r0 = 0; r0 < n; r0 += R) {
        const int64_t m = n - r0 < R ? n - r0 : R;
        if (!kept) {
            hp_fwd(tm, buf, h + r0 * H, W, m, H, V);
            ce_fwd(tm, tm->lrow, buf, buf, tgt + r0, m, V);
        }
        dsv3_op_ce_backward(buf, buf, tgt + r0, tm->dlrow, m, V);
        hp_bwd(tm, dh + r0 * H, dW, buf, h + r0 * H, W, m, H, V);
    }
}

/* ---------------------------------------------------------------- top level ------------ */

static int cancelled(const volatile int *cancel) {
    return cancel && *cancel;
}

/* The main trunk of both forwards: checks B and the ids [B, T + 1], lays out inputs, targets
 * and positions, and runs embedding, blocks and the final norm into tm->h. counts, hash and
 * bal as for block_forward. */
static dsv3_status trunk_forward(dsv3_trainable *tm, const int32_t *ids, int64_t B, int64_t *counts,
                                 uint64_t *hash, double *bal, const volatile int *cancel,
                                 dsv3_err *err) {
    const dsv3_config *c = &tm->cfg;
    const int64_t T = tm->T, H = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    if (B < 1 || B > tm->max_batch)
        return dsv3_errf(err, DSV3_EINVAL, "train: batch of %lld sequences (allowed 1..%lld)",
                         (long long)B, (long long)tm->max_batch);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t <= T; t++) {
            const int32_t id = ids[b * (T + 1) + t];
            if (id < 0 || id >= V)
                return dsv3_errf(err, DSV3_EINVAL,
                                 "train: sequence %lld position %lld: token id %d out of range [0, %lld)",
                                 (long long)b, (long long)t, id, (long long)V);
        }
    const int64_t n = B * T;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            tm->in_ids[b * T + t] = ids[b * (T + 1) + t];
            tm->tgt[b * T + t] = ids[b * (T + 1) + t + 1];
            tm->pos[b * T + t] = t;
        }
    dsv3_op_embed_forward(tm->acts[0].x, tm->in_ids, tm->P.embed, n, H);
    for (int64_t l = 0; l < L; l++) {
        if (cancelled(cancel)) return dsv3_errf(err, DSV3_EINTR, "train: interrupted");
        double *out = l + 1 < L ? tm->acts[l + 1].x : tm->xL;
        block_forward(tm, &tm->P.layers[l], &tm->acts[l], B, T, tm->pos, out, counts, hash, bal);
    }
    dsv3_op_rmsnorm_forward(tm->h, tm->h_rstd, tm->xL, tm->P.final_norm, n, H, tm->eps);
    return DSV3_OK;
}

/* docs/ARCHITECTURE.md, "Forward pass", "MTP" and "Objective": main trunk, head, then the MTP
 * module on [enorm(Emb(t_{i+1})) ; hnorm(h_i)] with h_i the final-normed hidden state (the
 * inference forward's MTP input, docs/ARCHITECTURE.md, "MTP"), its block at positions 0..T-2 and
 * its head. */
static dsv3_status forward(dsv3_trainable *tm, const int32_t *ids, int64_t B, double lambda,
                           double alpha, int64_t *counts, const volatile int *cancel,
                           dsv3_trainable_losses *res, float *logits, float *mtp_logits, dsv3_err *err) {
    const dsv3_config *c = &tm->cfg;
    const int64_t T = tm->T, H = c->hidden_size, L = c->num_hidden_layers;
    tm->fwd_ok = 0;
    tm->logp_ok = 0;
    const int64_t n = B * T;
    uint64_t hash = 1469598103934665603ull;
    double bal = 0.0;
    dsv3_status st = trunk_forward(tm, ids, B, counts, &hash, &bal, cancel, err);
    if (st) return st;
    const double ce = head_forward(tm, tm->h, tm->P.head, tm->tgt, n, logits, tm->logits) / (double)n;
    double mtp = 0.0;
    if (tm->has_mtp) {
        if (cancelled(cancel)) return dsv3_errf(err, DSV3_EINTR, "train: interrupted");
        const int64_t Tm = T - 1, n2 = B * Tm;
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < Tm; i++) {
                const int64_t r = b * Tm + i;
                memcpy(tm->hin + r * H, tm->h + (b * T + i) * H, (size_t)H * sizeof(double));
                tm->mtp_ids[r] = ids[b * (T + 1) + i + 1];
                tm->mtp_tgt[r] = ids[b * (T + 1) + i + 2];
                tm->pos_mtp[r] = i;
            }
        dsv3_op_embed_forward(tm->e, tm->mtp_ids, tm->P.mtp_embed, n2, H);
        dsv3_op_rmsnorm_forward(tm->en, tm->en_rstd, tm->e, tm->P.enorm, n2, H, tm->eps);
        dsv3_op_rmsnorm_forward(tm->hn, tm->hn_rstd, tm->hin, tm->P.hnorm, n2, H, tm->eps);
        for (int64_t r = 0; r < n2; r++) { /* embedding first, then hidden ("MTP") */
            memcpy(tm->cat + r * 2 * H, tm->en + r * H, (size_t)H * sizeof(double));
            memcpy(tm->cat + r * 2 * H + H, tm->hn + r * H, (size_t)H * sizeof(double));
        }
        tm_acts *a = &tm->acts[L];
        hp_fwd(tm, a->x, tm->cat, tm->P.eh_proj, n2, 2 * H, H);
        block_forward(tm, &tm->P.mtp, a, B, Tm, tm->pos_mtp, tm->mout, counts, &hash, &bal);
        dsv3_op_rmsnorm_forward(tm->hf, tm->hf_rstd, tm->mout, tm->P.head_norm, n2, H, tm->eps);
        double *buf = tm->logits2 ? tm->logits2 : tm->logits;
        mtp = head_forward(tm, tm->hf, tm->P.mtp_head, tm->mtp_tgt, n2, mtp_logits, buf) / (double)n2;
    }
    res->ce = ce;
    res->mtp = mtp;
    res->balance = bal;
    res->loss = ce + lambda * mtp + alpha * bal;
    res->route_hash = hash;
    tm->B = B;
    tm->lambda = lambda;
    tm->alpha = alpha;
    tm->fwd_ok = 1;
    return DSV3_OK;
}

dsv3_status dsv3_trainable_forward(dsv3_trainable *tm, const int32_t *ids, int64_t B, double lambda,
                            double alpha, int64_t *counts, const volatile int *cancel,
                            dsv3_trainable_losses *out, dsv3_err *err) {
    return forward(tm, ids, B, lambda, alpha, counts, cancel, out, NULL, NULL, err);
}

dsv3_status dsv3_trainable_logits(dsv3_trainable *tm, const int32_t *ids, int64_t B, float *logits,
                           float *mtp_logits, dsv3_err *err) {
    dsv3_trainable_losses l;
    return forward(tm, ids, B, 0.0, 0.0, NULL, NULL, &l, logits, tm->has_mtp ? mtp_logits : NULL,
                   err);
}

/* Backward of forward(): CE weights scale/(B T) (main) and scale*lambda/(B (T-1)) (MTP, each
 * depth divided by its own count of positions, Megatron's convention), balance scale*alpha/B per
 * sequence and layer. h collects the main head's gradient and the MTP path's through hnorm
 * (docs/ARCHITECTURE.md, "Gradients"); shared embedding/head gradients add up because tied pointers
 * are equal. */
dsv3_status dsv3_trainable_backward(dsv3_trainable *tm, double scale, const volatile int *cancel,
                             dsv3_err *err) {
    if (!tm->fwd_ok)
        return dsv3_errf(err, DSV3_EINVAL, "train: backward without a successful forward");
    const dsv3_config *c = &tm->cfg;
    const int64_t B = tm->B, T = tm->T, H = c->hidden_size, L = c->num_hidden_layers;
    const int64_t n = B * T;
    const double dbal = scale * tm->alpha / (double)B;
    tm_params *P = &tm->P, *G = &tm->G;
    zero(tm->dh, n * H);
    /* all rows of a head fit at once: the forward's probabilities are still there */
    const int kept = tm->head_rows == tm->max_batch * T;
    head_backward(tm, tm->dh, G->head, tm->h, P->head, tm->tgt, n, scale / (double)n, tm->logits,
                  kept);
    if (tm->has_mtp) {
        const int64_t Tm = T - 1, n2 = B * Tm;
        zero(tm->dtmp, n2 * H);
        head_backward(tm, tm->dtmp, G->mtp_head, tm->hf, P->mtp_head, tm->mtp_tgt, n2,
                      scale * tm->lambda / (double)n2, tm->logits2 ? tm->logits2 : tm->logits,
                      kept);
        zero(tm->dres, n2 * H);
        dsv3_op_rmsnorm_backward(tm->dres, G->head_norm, tm->dtmp, tm->mout, tm->hf_rstd,
                                 P->head_norm, n2, H);
        block_backward(tm, &P->mtp, &G->mtp, &tm->acts[L], B, Tm, tm->pos_mtp, tm->dres, dbal);
        zero(tm->dcat, n2 * 2 * H);
        hp_bwd(tm, tm->dcat, G->eh_proj, tm->dres, tm->cat, P->eh_proj, n2, 2 * H, H);
        for (int64_t r = 0; r < n2; r++) {
            memcpy(tm->dtmp + r * H, tm->dcat + r * 2 * H, (size_t)H * sizeof(double));
            memcpy(tm->dtmp2 + r * H, tm->dcat + r * 2 * H + H, (size_t)H * sizeof(double));
        }
        zero(tm->dres, n2 * H);
        dsv3_op_rmsnorm_backward(tm->dres, G->enorm, tm->dtmp, tm->e, tm->en_rstd, P->enorm, n2, H);
        dsv3_op_embed_backward(G->mtp_embed, tm->dres, tm->mtp_ids, n2, H);
        zero(tm->dtmp, n2 * H);
        dsv3_op_rmsnorm_backward(tm->dtmp, G->hnorm, tm->dtmp2, tm->hin, tm->hn_rstd, P->hnorm, n2, H);
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < Tm; i++) {
                double *dh = tm->dh + (b * T + i) * H;
                const double *src = tm->dtmp + (b * Tm + i) * H;
                for (int64_t j = 0; j < H; j++) dh[j] += src[j];
            }
    }
    zero(tm->dres, n * H);
    dsv3_op_rmsnorm_backward(tm->dres, G->final_norm, tm->dh, tm->xL, tm->h_rstd, P->final_norm, n, H);
    for (int64_t l = L - 1; l >= 0; l--) {
        if (cancelled(cancel)) return dsv3_errf(err, DSV3_EINTR, "train: interrupted");
        block_backward(tm, &P->layers[l], &G->layers[l], &tm->acts[l], B, T, tm->pos, tm->dres, dbal);
    }
    dsv3_op_embed_backward(G->embed, tm->dres, tm->in_ids, n, H);
    return DSV3_OK;
}

/* ---------------------------------------------------------------- model binding -------- */

/* Copies the values of 1-D tensors and biases into m's float32 arrays; with w set, also makes
 * every matrix binding a float32 view of w, else restores the bindings of dsv3_trainable_new. */
static dsv3_status bind_model(const dsv3_trainable *tm, dsv3_model *m, const float *w,
                              const float *bias, dsv3_err *err) {
    if (m != tm->src_model)
        return dsv3_errf(err, DSV3_EINVAL, "train: the model is not the one the trainer was built from");
    for (int64_t i = 0; i < tm->n_tensors; i++) {
        const dsv3_trainable_tensor *t = &tm->tensors[i];
        const tm_slot *sl = &tm->slots[i];
        if (sl->vec) {
            const float *src = w ? w + t->offset : tm->vec0 + sl->voff;
            memcpy((float *)sl->vec, src, (size_t)t->numel * sizeof(float));
            continue;
        }
        const dsv3_weight view = {.dtype = DSV3_DT_F32, .rows = t->rows, .cols = t->cols,
                                  .data = w ? w + t->offset : NULL};
        *sl->at = w ? view : sl->src;
        if (sl->alias_at) *sl->alias_at = w ? view : sl->alias_src;
    }
    for (int64_t li = 0; li <= tm->cfg.num_hidden_layers; li++) /* views of the rebound kv_b */
        if (li < tm->cfg.num_hidden_layers || m->has_mtp)
            dsv3_layer_head_views(&m->cfg, li < tm->cfg.num_hidden_layers ? &m->layers[li] : &m->mtp.block);
    const int64_t E = tm->cfg.n_routed_experts;
    for (int64_t i = 0; i < tm->n_moe; i++) {
        dsv3_status st = dsv3_model_set_bias(m, tm->moe_layer[i], bias + i * E, err);
        if (st) return st;
    }
    return DSV3_OK;
}

dsv3_status dsv3_trainable_point_model(const dsv3_trainable *tm, dsv3_model *m, const float *w,
                                const float *bias, dsv3_err *err) {
    return bind_model(tm, m, w, bias, err);
}

dsv3_status dsv3_trainable_restore_model(const dsv3_trainable *tm, dsv3_model *m, dsv3_err *err) {
    return bind_model(tm, m, NULL, tm->bias0, err);
}

/* ---------------------------------------------------------------- token log-probabilities (RL) */

/* The main trunk only (no MTP module, no balance loss, no load counting), then per row
 * logp = log softmax(inv_temp * h W_head^T)[target], head_rows rows at a time. The policy
 * gradient needs d logp / d params weighted per token (model/train/grpo.c), which the CE losses above
 * cannot give: their weights are one scalar per loss. */
dsv3_status dsv3_trainable_logp_forward(dsv3_trainable *tm, const int32_t *ids, int64_t B, double inv_temp,
                                 double *logp, const volatile int *cancel, dsv3_err *err) {
    const dsv3_config *c = &tm->cfg;
    const int64_t T = tm->T, H = c->hidden_size, V = c->vocab_size;
    tm->fwd_ok = 0;
    tm->logp_ok = 0;
    if (!(inv_temp > 0.0 && inv_temp <= 1e30))
        return dsv3_errf(err, DSV3_EINVAL, "train: inverse temperature %g must be > 0", inv_temp);
    const int64_t n = B * T;
    uint64_t hash = 0;
    double bal = 0.0;
    dsv3_status st = trunk_forward(tm, ids, B, NULL, &hash, &bal, cancel, err);
    if (st) return st;
    for (int64_t r0 = 0; r0 < n; r0 += tm->head_rows) {
        const int64_t m = n - r0 < tm->head_rows ? n - r0 : tm->head_rows;
        hp_fwd(tm, tm->logits, tm->h + r0 * H, tm->P.head, m, H, V);
        for (int64_t i = 0; i < m * V; i++) tm->logits[i] *= inv_temp;
        ce_fwd(tm, tm->lrow, tm->logits, tm->logits, tm->tgt + r0, m, V);
        for (int64_t i = 0; i < m; i++) logp[r0 + i] = -tm->lrow[i];
    }
    tm->B = B;
    tm->inv_temp = inv_temp;
    tm->logp_ok = 1;
    return DSV3_OK;
}

/* d logp / d z = inv_temp (onehot(target) - softmax(inv_temp z)) for the logits z of a row;
 * rows with dlogp = 0 are skipped in the head (padding costs no head backward). */
dsv3_status dsv3_trainable_logp_backward(dsv3_trainable *tm, const double *dlogp, const volatile int *cancel,
                                  dsv3_err *err) {
    if (!tm->logp_ok)
        return dsv3_errf(err, DSV3_EINVAL, "train: logp backward without a successful logp forward");
    const dsv3_config *c = &tm->cfg;
    const int64_t B = tm->B, T = tm->T, H = c->hidden_size, V = c->vocab_size;
    const int64_t L = c->num_hidden_layers, n = B * T;
    tm_params *P = &tm->P, *G = &tm->G;
    zero(tm->dh, n * H);
    for (int64_t r0 = 0; r0 < n; r0 += tm->head_rows) {
        const int64_t m = n - r0 < tm->head_rows ? n - r0 : tm->head_rows;
        int any = 0;
        for (int64_t i = 0; i < m; i++) {
            tm->dlrow[i] = -dlogp[r0 + i] * tm->inv_temp; /* CE = -logp */
            any |= dlogp[r0 + i] != 0.0;
        }
        if (!any) continue;
        hp_fwd(tm, tm->logits, tm->h + r0 * H, P->head, m, H, V);
        for (int64_t i = 0; i < m * V; i++) tm->logits[i] *= tm->inv_temp;
        ce_fwd(tm, tm->lrow, tm->logits, tm->logits, tm->tgt + r0, m, V);
        dsv3_op_ce_backward(tm->logits, tm->logits, tm->tgt + r0, tm->dlrow, m, V);
        hp_bwd(tm, tm->dh + r0 * H, G->head, tm->logits, tm->h + r0 * H, P->head, m, H, V);
    }
    zero(tm->dres, n * H);
    dsv3_op_rmsnorm_backward(tm->dres, G->final_norm, tm->dh, tm->xL, tm->h_rstd, P->final_norm, n, H);
    for (int64_t l = L - 1; l >= 0; l--) {
        if (cancelled(cancel)) return dsv3_errf(err, DSV3_EINTR, "train: interrupted");
        block_backward(tm, &P->layers[l], &G->layers[l], &tm->acts[l], B, T, tm->pos, tm->dres, 0.0);
    }
    dsv3_op_embed_backward(G->embed, tm->dres, tm->in_ids, n, H);
    return DSV3_OK;
}
