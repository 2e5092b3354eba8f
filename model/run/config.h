/* config.h — DeepSeek-V3 config.json: parse, default, validate.
 *
 * Owns the plain-value description of a model (docs/ARCHITECTURE.md, "config.json"). Knows nothing
 * about weights. Absent optional keys take the Hugging Face defaults of DeepseekV3Config; the
 * constraints listed there are checked, and a violation names the key and its value.
 * Thread rules: a dsv3_config is a plain value; copy it freely.
 */
#ifndef DSV3_CONFIG_H
#define DSV3_CONFIG_H

#include <stdint.h>

#include "kernels/backend.h"
#include "model/base/status.h"

/* The architecture family a config names (`model_type`; docs/ARCHITECTURE.md, "Family"). */
typedef enum {
    DSV3_FAMILY_V3 = 0, /* "deepseek_v3" (V3, R1, V3.1, Kimi-K2, Moonlight), also "kimi_k2" */
    DSV3_FAMILY_V2 = 1  /* "deepseek_v2" (V2, V2.5, V2-Lite, Coder-V2): V2 defaults and scaling */
} dsv3_family;

/* Limits of this implementation (checked at parse time). */
#define DSV3_MAX_EXPERTS 4096
#define DSV3_MAX_TOPK 256

typedef struct {
    dsv3_family family;            /* from model_type (absent = deepseek_v3) */
    char model_type[32];           /* model_type as written ("deepseek_v3" when absent) */
    dsv3_score_func scoring_func;  /* sigmoid (V3 default) or softmax (V2 default) */
    dsv3_topk_method topk_method;  /* noaux_tc (V3 default), greedy (V2 default) or
                                      group_limited_greedy */
    int64_t vocab_size;            /* rows of embed_tokens / lm_head */
    int64_t hidden_size;           /* H */
    int64_t intermediate_size;     /* dense FFN width (layers < first_k_dense_replace) */
    int64_t moe_intermediate_size; /* one routed expert's width; shared = this * n_shared */
    int64_t num_hidden_layers;     /* main-model layers 0..L-1; MTP layers follow at index L.. */
    int64_t num_attention_heads;   /* nh */
    int64_t num_key_value_heads;   /* must equal nh for MLA */
    int64_t n_shared_experts;      /* 0 = no shared expert */
    int64_t n_routed_experts;      /* E */
    int64_t num_experts_per_tok;   /* K (top-k) */
    int64_t n_group;               /* G expert groups */
    int64_t topk_group;            /* groups kept per token */
    double routed_scaling_factor;  /* multiplies the normalised top-k weights */
    int norm_topk_prob;            /* 1: renormalise top-k weights to sum 1 */
    int64_t first_k_dense_replace; /* layers [0, this) use the dense FFN */
    int64_t moe_layer_freq;        /* must be 1 */
    int64_t q_lora_rank;           /* rq; 0 when config has null/0 (single q_proj) */
    int64_t kv_lora_rank;          /* rkv: width of the cached latent c */
    int64_t qk_nope_head_dim;      /* dn */
    int64_t qk_rope_head_dim;      /* dr (even): rotary width of q_pe and the shared k_pe */
    int64_t v_head_dim;            /* dv */
    double rope_theta;             /* RoPE base b */
    int rope_yarn;                 /* 1 when rope_scaling.type == "yarn" */
    double rope_factor;            /* YaRN f (1 when no scaling) */
    int64_t rope_original_max_pos; /* YaRN L0 (original_max_position_embeddings) */
    double rope_beta_fast;         /* YaRN beta_fast (default 32) */
    double rope_beta_slow;         /* YaRN beta_slow (default 1) */
    double rope_mscale;            /* YaRN mscale (default 1) */
    double rope_mscale_all_dim;    /* YaRN mscale_all_dim (default 0 = absent) */
    int64_t max_position_embeddings;
    double rms_norm_eps;           /* eps of the layer norms (latent norms always use 1e-6) */
    int tie_word_embeddings;       /* must be 0 for V3 (separate lm_head) */
    int64_t num_nextn_predict_layers; /* MTP modules (0 or 1 supported) */
    int64_t bos_token_id;          /* -1 if absent */
    int64_t eos_token_id;          /* -1 if absent */
    int fp8_block;                 /* 1 when quantization_config is fp8 with 128x128 blocks */
    int scale_fmt_ue8m0;           /* 1 when quantization_config.scale_fmt is "ue8m0" (V3.1:
                                      power-of-two scales, same dequantization) */
} dsv3_config;

/* Parses config JSON text (len bytes, need not be NUL-terminated). `where` names the source in
 * messages (a path). On success fills *cfg and returns DSV3_OK; on failure *cfg is unspecified
 * and err says "config: <where>: key '<k>': <why>". */
dsv3_status dsv3_config_parse(dsv3_config *cfg, const char *json, size_t len, const char *where,
                              dsv3_err *err);

/* Reads and parses the file at path (see dsv3_config_parse). */
dsv3_status dsv3_config_load(dsv3_config *cfg, const char *path, dsv3_err *err);

/* 1 when the MoE layers carry e_score_correction_bias (topk_method noaux_tc); other methods
 * route without one (the model then keeps a zero bias that interventions may edit). */
static inline int dsv3_config_has_router_bias(const dsv3_config *c) {
    return c->topk_method == DSV3_TOPK_NOAUX_TC;
}

/* "sigmoid" / "softmax" and "noaux_tc" / "greedy" / "group_limited_greedy", as config.json
 * spells them. */
const char *dsv3_config_scoring_name(dsv3_score_func f);
const char *dsv3_config_topk_method_name(dsv3_topk_method m);

/* The routing rule the config states (docs/ARCHITECTURE.md, "Routing", "Family"). DeepSeek-V2
 * (HF) normalises the top-k weights only when K > 1 and norm_topk_prob, and multiplies by
 * routed_scaling_factor only the weights it does not normalise; V3 normalises when
 * norm_topk_prob and always scales. */
dsv3_route_params dsv3_config_route_params(const dsv3_config *c);

/* Derived sizes (docs/ARCHITECTURE.md, "config.json"). */
static inline int64_t dsv3_config_qk_head_dim(const dsv3_config *c) {
    return c->qk_nope_head_dim + c->qk_rope_head_dim;
}
/* 1 if main-model layer i uses the MoE (i >= first_k_dense_replace); MTP layers are MoE. */
static inline int dsv3_config_layer_is_moe(const dsv3_config *c, int64_t i) {
    return i >= c->first_k_dense_replace && c->n_routed_experts > 0;
}

/* The softmax scale (docs/ARCHITECTURE.md, "YaRN"): dq^-0.5 * mscale(factor, mscale_all_dim)^2
 * (HF semantics). */
double dsv3_config_softmax_scale(const dsv3_config *c);

/* YaRN's attention factor on cos/sin: mscale(f, mscale) / mscale(f, mscale_all_dim); 1 when
 * YaRN is off ("YaRN"). */
double dsv3_config_rope_attention_factor(const dsv3_config *c);

/* Fills inv_freq[k], k < qk_rope_head_dim/2, per "YaRN" (when enabled), in float32. */
void dsv3_config_rope_inv_freq(const dsv3_config *c, float *inv_freq);

#endif
