/* config.c — config.json → dsv3_config (docs/ARCHITECTURE.md, "config.json").
 *
 * Shape-defining keys are required (a checkpoint without them cannot be read safely); the
 * rest take the defaults of Hugging Face's DeepseekV3Config (DeepseekV2Config when model_type is
 * deepseek_v2; docs/ARCHITECTURE.md, "Family"). Every value is range-checked
 * here, so the loader and the forward pass may trust a config that passed.
 */
#include "model/run/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/base/file.h"

/* ---------------------------------------------------------------- key readers ---------- */

typedef struct {
    const cJSON *root;
    const char *where;
    dsv3_err *err;
} reader;

/* Integer key: required, or default when absent. JSON null counts as absent unless the caller
 * handles it. Rejects non-integers and values outside [lo, hi]. */
static dsv3_status get_int(reader *r, const char *key, int required, int64_t def, int64_t lo,
                           int64_t hi, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key '%s': missing (required)",
                             r->where, key);
        *out = def;
        return DSV3_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 9.0e15)
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key '%s': expected an integer",
                         r->where, key);
    int64_t x = (int64_t)v->valuedouble;
    if (x < lo || x > hi)
        return dsv3_errf(r->err, DSV3_EINVAL,
                         "config: %s: key '%s': value %lld out of range [%lld, %lld]", r->where,
                         key, (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return DSV3_OK;
}

static dsv3_status get_num(reader *r, const cJSON *obj, const char *key, double def, double lo,
                           double hi, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return DSV3_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key '%s': expected a number",
                         r->where, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key '%s': value %g out of range [%g, %g]",
                         r->where, key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return DSV3_OK;
}

static dsv3_status get_bool(reader *r, const char *key, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return DSV3_OK;
    }
    if (!cJSON_IsBool(v))
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key '%s': expected true or false",
                         r->where, key);
    *out = cJSON_IsTrue(v);
    return DSV3_OK;
}

/* String key that must equal one of the accepted values when present. */
static dsv3_status check_str(reader *r, const char *key, const char *accepted) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v || cJSON_IsNull(v)) return DSV3_OK;
    if (!cJSON_IsString(v))
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key '%s': expected a string", r->where,
                         key);
    if (strcmp(v->valuestring, accepted) != 0)
        return dsv3_errf(r->err, DSV3_EUNSUPPORTED,
                         "config: %s: key '%s': value \"%s\" not supported (dsv3 implements \"%s\")",
                         r->where, key, v->valuestring, accepted);
    return DSV3_OK;
}

/* String key whose value is one of names[0..n) (absent or null: def). Writes the index. */
static dsv3_status get_choice(reader *r, const char *key, const char *const *names, int n, int def,
                              int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return DSV3_OK;
    if (!cJSON_IsString(v))
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key '%s': expected a string", r->where,
                         key);
    for (int i = 0; i < n; i++)
        if (!strcmp(v->valuestring, names[i])) {
            *out = i;
            return DSV3_OK;
        }
    char list[256];
    size_t at = 0;
    for (int i = 0; i < n && at < sizeof list; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s\"%s\"", i ? ", " : "", names[i]);
    return dsv3_errf(r->err, DSV3_EUNSUPPORTED,
                     "config: %s: key '%s': value \"%s\" not supported (dsv3 implements %s)",
                     r->where, key, v->valuestring, list);
}

/* ---------------------------------------------------------------- family --------------- */

/* config.json spellings, in enum order. */
static const char *const SCORING_NAMES[] = {"sigmoid", "softmax"};
static const char *const TOPK_NAMES[] = {"noaux_tc", "greedy", "group_limited_greedy"};
/* model_type values and their family; "kimi_k2" is how some Kimi-K2 uploads name the V3 math. */
static const char *const MODEL_TYPES[] = {"deepseek_v3", "deepseek_v2", "kimi_k2"};
static const dsv3_family MODEL_FAMILY[] = {DSV3_FAMILY_V3, DSV3_FAMILY_V2, DSV3_FAMILY_V3};

const char *dsv3_config_scoring_name(dsv3_score_func f) {
    return (unsigned)f < 2 ? SCORING_NAMES[f] : "?";
}

const char *dsv3_config_topk_method_name(dsv3_topk_method m) {
    return (unsigned)m < 3 ? TOPK_NAMES[m] : "?";
}

dsv3_route_params dsv3_config_route_params(const dsv3_config *c) {
    dsv3_route_params p = {.experts = c->n_routed_experts, .groups = c->n_group,
                           .topk_group = c->topk_group, .k = c->num_experts_per_tok,
                           .norm_topk_prob = c->norm_topk_prob,
                           .scaling = (float)c->routed_scaling_factor,
                           .scoring = c->scoring_func, .method = c->topk_method};
    if (c->family == DSV3_FAMILY_V2) { /* HF DeepseekV2 MoEGate: normalise or scale, not both */
        p.norm_topk_prob = c->norm_topk_prob && c->num_experts_per_tok > 1;
        if (p.norm_topk_prob) p.scaling = 1.0f;
    }
    return p;
}

/* ---------------------------------------------------------------- rope_scaling / quant --- */

static dsv3_status parse_rope_scaling(reader *r, dsv3_config *c) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(r->root, "rope_scaling");
    c->rope_yarn = 0;
    c->rope_factor = 1.0;
    c->rope_original_max_pos = c->max_position_embeddings;
    c->rope_beta_fast = 32.0;
    c->rope_beta_slow = 1.0;
    c->rope_mscale = 1.0;
    c->rope_mscale_all_dim = 0.0;
    if (!rs || cJSON_IsNull(rs)) return DSV3_OK;
    if (!cJSON_IsObject(rs))
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key 'rope_scaling': expected an object or null",
                         r->where);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(type))
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key 'rope_scaling.type': missing",
                         r->where);
    if (strcmp(type->valuestring, "yarn") != 0 && strcmp(type->valuestring, "default") != 0)
        return dsv3_errf(r->err, DSV3_EUNSUPPORTED,
                         "config: %s: key 'rope_scaling.type': \"%s\" not supported (yarn only)",
                         r->where, type->valuestring);
    if (strcmp(type->valuestring, "default") == 0) return DSV3_OK;
    c->rope_yarn = 1;
    dsv3_status st;
    if ((st = get_num(r, rs, "factor", NAN, 1.0, 1e6, &c->rope_factor))) return st;
    if (isnan(c->rope_factor))
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key 'rope_scaling.factor': missing",
                         r->where);
    double l0;
    if ((st = get_num(r, rs, "original_max_position_embeddings", 4096, 1, 1e12, &l0))) return st;
    if (l0 != floor(l0))
        return dsv3_errf(r->err, DSV3_EINVAL,
                         "config: %s: key 'rope_scaling.original_max_position_embeddings': expected an integer",
                         r->where);
    c->rope_original_max_pos = (int64_t)l0;
    if ((st = get_num(r, rs, "beta_fast", 32, 1e-9, 1e9, &c->rope_beta_fast))) return st;
    if ((st = get_num(r, rs, "beta_slow", 1, 1e-9, 1e9, &c->rope_beta_slow))) return st;
    if ((st = get_num(r, rs, "mscale", 1, 0, 1e6, &c->rope_mscale))) return st;
    if ((st = get_num(r, rs, "mscale_all_dim", 0, 0, 1e6, &c->rope_mscale_all_dim))) return st;
    /* equal betas (Kimi-K2: 1 and 1) leave a one-pair ramp, as HF's correction range does */
    if (c->rope_beta_fast < c->rope_beta_slow)
        return dsv3_errf(r->err, DSV3_EINVAL,
                         "config: %s: key 'rope_scaling.beta_fast': %g is below beta_slow %g",
                         r->where, c->rope_beta_fast, c->rope_beta_slow);
    return DSV3_OK;
}

static dsv3_status parse_quant(reader *r, dsv3_config *c) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(r->root, "quantization_config");
    c->fp8_block = 0;
    if (!q || cJSON_IsNull(q)) return DSV3_OK;
    if (!cJSON_IsObject(q))
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key 'quantization_config': expected an object",
                         r->where);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(q, "quant_method");
    if (!cJSON_IsString(m) || strcmp(m->valuestring, "fp8") != 0)
        return dsv3_errf(r->err, DSV3_EUNSUPPORTED,
                         "config: %s: key 'quantization_config.quant_method': only \"fp8\" is supported",
                         r->where);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(q, "fmt");
    if (fmt && (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "e4m3") != 0))
        return dsv3_errf(r->err, DSV3_EUNSUPPORTED,
                         "config: %s: key 'quantization_config.fmt': only \"e4m3\" is supported",
                         r->where);
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(q, "scale_fmt");
    if (sf && !cJSON_IsNull(sf) && (!cJSON_IsString(sf) || strcmp(sf->valuestring, "ue8m0") != 0))
        return dsv3_errf(r->err, DSV3_EUNSUPPORTED,
                         "config: %s: key 'quantization_config.scale_fmt': only \"ue8m0\" is supported",
                         r->where);
    c->scale_fmt_ue8m0 = sf && cJSON_IsString(sf);
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(q, "weight_block_size");
    if (bs) {
        if (!cJSON_IsArray(bs) || cJSON_GetArraySize(bs) != 2 ||
            !cJSON_IsNumber(cJSON_GetArrayItem(bs, 0)) ||
            !cJSON_IsNumber(cJSON_GetArrayItem(bs, 1)) ||
            cJSON_GetArrayItem(bs, 0)->valuedouble != 128 ||
            cJSON_GetArrayItem(bs, 1)->valuedouble != 128)
            return dsv3_errf(r->err, DSV3_EUNSUPPORTED,
                             "config: %s: key 'quantization_config.weight_block_size': only [128, 128] is supported",
                             r->where);
    }
    c->fp8_block = 1;
    return DSV3_OK;
}

/* ---------------------------------------------------------------- constraints ---------- */

static dsv3_status validate(reader *r, const dsv3_config *c) {
    const char *w = r->where;
    if (c->num_key_value_heads != c->num_attention_heads)
        return dsv3_errf(r->err, DSV3_EINVAL,
                         "config: %s: key 'num_key_value_heads': %lld must equal num_attention_heads %lld (MLA)",
                         w, (long long)c->num_key_value_heads, (long long)c->num_attention_heads);
    if (c->qk_rope_head_dim % 2 != 0)
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key 'qk_rope_head_dim': %lld must be even",
                         w, (long long)c->qk_rope_head_dim);
    if (c->first_k_dense_replace > c->num_hidden_layers)
        return dsv3_errf(r->err, DSV3_EINVAL,
                         "config: %s: key 'first_k_dense_replace': %lld exceeds num_hidden_layers %lld",
                         w, (long long)c->first_k_dense_replace, (long long)c->num_hidden_layers);
    if (c->moe_layer_freq != 1)
        return dsv3_errf(r->err, DSV3_EUNSUPPORTED, "config: %s: key 'moe_layer_freq': %lld (only 1 is supported)",
                         w, (long long)c->moe_layer_freq);
    int has_moe = c->first_k_dense_replace < c->num_hidden_layers || c->num_nextn_predict_layers > 0;
    if (has_moe && c->topk_method == DSV3_TOPK_GREEDY) { /* groups play no part */
        if (c->n_routed_experts < 1 || c->n_group < 1 || c->n_routed_experts % c->n_group != 0)
            return dsv3_errf(r->err, DSV3_EINVAL,
                             "config: %s: key 'n_group': n_routed_experts %lld is not divisible by n_group %lld",
                             w, (long long)c->n_routed_experts, (long long)c->n_group);
        if (c->num_experts_per_tok < 1 || c->num_experts_per_tok > c->n_routed_experts)
            return dsv3_errf(r->err, DSV3_EINVAL,
                             "config: %s: key 'num_experts_per_tok': %lld must be in [1, n_routed_experts=%lld]",
                             w, (long long)c->num_experts_per_tok, (long long)c->n_routed_experts);
    } else if (has_moe) {
        if (c->n_routed_experts < 1)
            return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key 'n_routed_experts': %lld, MoE layers need at least 1",
                             w, (long long)c->n_routed_experts);
        if (c->n_group < 1 || c->n_routed_experts % c->n_group != 0)
            return dsv3_errf(r->err, DSV3_EINVAL,
                             "config: %s: key 'n_group': n_routed_experts %lld is not divisible by n_group %lld",
                             w, (long long)c->n_routed_experts, (long long)c->n_group);
        if (c->topk_method == DSV3_TOPK_NOAUX_TC && c->n_group > 1 &&
            c->n_routed_experts / c->n_group < 2)
            return dsv3_errf(r->err, DSV3_EINVAL,
                             "config: %s: key 'n_group': %lld groups leave fewer than 2 experts per group (group score is a top-2 sum)",
                             w, (long long)c->n_group);
        if (c->topk_group < 1 || c->topk_group > c->n_group)
            return dsv3_errf(r->err, DSV3_EINVAL,
                             "config: %s: key 'topk_group': %lld must be in [1, n_group=%lld]", w,
                             (long long)c->topk_group, (long long)c->n_group);
        int64_t avail = c->topk_group * (c->n_routed_experts / c->n_group);
        if (c->num_experts_per_tok < 1 || c->num_experts_per_tok > avail)
            return dsv3_errf(r->err, DSV3_EINVAL,
                             "config: %s: key 'num_experts_per_tok': %lld must be in [1, topk_group*experts_per_group=%lld]",
                             w, (long long)c->num_experts_per_tok, (long long)avail);
    }
    if (c->bos_token_id >= c->vocab_size)
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key 'bos_token_id': %lld not below vocab_size %lld",
                         w, (long long)c->bos_token_id, (long long)c->vocab_size);
    if (c->eos_token_id >= c->vocab_size)
        return dsv3_errf(r->err, DSV3_EINVAL, "config: %s: key 'eos_token_id': %lld not below vocab_size %lld",
                         w, (long long)c->eos_token_id, (long long)c->vocab_size);
    return DSV3_OK;
}

/* ---------------------------------------------------------------- parse ---------------- */

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key that appears twice in o or in an object below it (the file is ambiguous: cJSON reads the
 * first, Python the last). Writes its dotted path to key and returns 1; 0 when none; -1 when
 * out of memory. */
static int duplicate_key(const cJSON *o, const char *prefix, char *key, size_t cap) {
    size_t n = 0;
    for (const cJSON *it = o->child; it; it = it->next) n++;
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) return -1;
    size_t k = 0;
    for (const cJSON *it = o->child; it; it = it->next)
        if (it->string) names[k++] = it->string;
    qsort(names, k, sizeof *names, by_name);
    for (size_t i = 1; i < k; i++)
        if (!strcmp(names[i - 1], names[i])) {
            snprintf(key, cap, "%s%s", prefix, names[i]);
            free(names);
            return 1;
        }
    free(names);
    for (const cJSON *it = o->child; it; it = it->next) {
        if (!cJSON_IsObject(it) && !cJSON_IsArray(it)) continue;
        char sub[512];
        snprintf(sub, sizeof sub, "%s%s.", prefix, it->string ? it->string : "[]");
        const int r = duplicate_key(it, sub, key, cap);
        if (r) return r;
    }
    return 0;
}

dsv3_status dsv3_config_parse(dsv3_config *c, const char *json, size_t len, const char *where,
                              dsv3_err *err) {
    memset(c, 0, sizeof *c);
    const char *json_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &json_end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= json && at <= json + len ? (long)(at - json) : -1;
        return dsv3_errf(err, DSV3_EFORMAT, "config: %s: invalid JSON near byte %ld", where, off);
    }
    reader r = {root, where, err};
    dsv3_status st = DSV3_OK;
    if (!cJSON_IsObject(root)) {
        st = dsv3_errf(err, DSV3_EFORMAT, "config: %s: top level is not a JSON object", where);
        goto done;
    }
    for (const char *p = json_end; p && p < json + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = dsv3_errf(err, DSV3_EFORMAT, "config: %s: invalid JSON: text after the object at byte %ld",
                           where, (long)(p - json));
            goto done;
        }
    {
        char key[512];
        const int dup = duplicate_key(root, "", key, sizeof key);
        if (dup) {
            st = dup < 0 ? dsv3_errf(err, DSV3_ENOMEM, "config: %s: out of memory", where)
                         : dsv3_errf(err, DSV3_EFORMAT,
                                     "config: %s: key '%s' appears more than once (the file is "
                                     "ambiguous)", where, key);
            goto done;
        }
    }
    const int64_t BIG = (int64_t)1 << 40, DIM = (int64_t)1 << 24;
    int64_t eos = 1;
    int mt;
    if ((st = get_choice(&r, "model_type", MODEL_TYPES, 3, 0, &mt))) goto done;
    c->family = MODEL_FAMILY[mt];
    snprintf(c->model_type, sizeof c->model_type, "%s", MODEL_TYPES[mt]);
    /* Absent keys take the defaults of the family's HF config class (DeepseekV2Config:
     * first_k_dense_replace 0, no shared expert, one group, routed_scaling_factor 1, no
     * normalisation, softmax scores, greedy choice). */
    const int v2 = c->family == DSV3_FAMILY_V2;
#define INT(key, req, def, lo, hi, dst)                                                            \
    if ((st = get_int(&r, key, req, def, lo, hi, dst))) goto done
    INT("vocab_size", 1, 0, 1, (int64_t)1 << 31, &c->vocab_size);
    INT("hidden_size", 1, 0, 1, DIM, &c->hidden_size);
    INT("num_hidden_layers", 1, 0, 1, 4096, &c->num_hidden_layers);
    INT("num_attention_heads", 1, 0, 1, 65536, &c->num_attention_heads);
    INT("num_key_value_heads", 0, c->num_attention_heads, 1, 65536, &c->num_key_value_heads);
    INT("intermediate_size", 1, 0, 1, DIM, &c->intermediate_size);
    INT("kv_lora_rank", 1, 0, 1, DIM, &c->kv_lora_rank);
    INT("qk_nope_head_dim", 1, 0, 0, DIM, &c->qk_nope_head_dim);
    INT("qk_rope_head_dim", 1, 0, 2, DIM, &c->qk_rope_head_dim);
    INT("v_head_dim", 1, 0, 1, DIM, &c->v_head_dim);
    INT("first_k_dense_replace", 0, v2 ? 0 : 3, 0, 4096, &c->first_k_dense_replace);
    INT("moe_layer_freq", 0, 1, 1, 4096, &c->moe_layer_freq);
    INT("num_nextn_predict_layers", 0, 0, 0, 1, &c->num_nextn_predict_layers);
    INT("max_position_embeddings", 0, 4096, 1, BIG, &c->max_position_embeddings);
    INT("bos_token_id", 0, 0, -1, BIG, &c->bos_token_id);
    INT("eos_token_id", 0, 1, -1, BIG, &eos);
    c->eos_token_id = eos;
    {
        /* q_lora_rank: null or 0 selects the single q_proj (V2-Lite); absent = HF default. */
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "q_lora_rank");
        if (q && cJSON_IsNull(q)) c->q_lora_rank = 0;
        else INT("q_lora_rank", 0, 1536, 0, DIM, &c->q_lora_rank);
    }
    int dense_only = c->first_k_dense_replace >= c->num_hidden_layers;
    /* MoE keys are required unless every layer is dense and there is no MTP layer. */
    int moe_req = !dense_only || c->num_nextn_predict_layers > 0;
    INT("n_routed_experts", moe_req, 0, 0, DSV3_MAX_EXPERTS, &c->n_routed_experts);
    INT("moe_intermediate_size", moe_req, 0, moe_req ? 1 : 0, DIM, &c->moe_intermediate_size);
    INT("num_experts_per_tok", moe_req, 0, 0, DSV3_MAX_TOPK, &c->num_experts_per_tok);
    INT("n_shared_experts", 0, v2 ? 0 : 1, 0, 1024, &c->n_shared_experts);
    INT("n_group", 0, v2 ? 1 : 8, 1, 1 << 20, &c->n_group);
    INT("topk_group", 0, v2 ? 1 : 4, 1, 1 << 20, &c->topk_group);
#undef INT
    if ((st = get_num(&r, root, "routed_scaling_factor", v2 ? 1.0 : 2.5, 0, 1e6,
                      &c->routed_scaling_factor)))
        goto done;
    if ((st = get_num(&r, root, "rope_theta", 10000.0, 1e-9, 1e30, &c->rope_theta))) goto done;
    if (c->rope_theta <= 1.0) {
        st = dsv3_errf(err, DSV3_EINVAL, "config: %s: key 'rope_theta': %g must exceed 1", where,
                       c->rope_theta);
        goto done;
    }
    if ((st = get_num(&r, root, "rms_norm_eps", 1e-6, 0, 1, &c->rms_norm_eps))) goto done;
    if ((st = get_bool(&r, "norm_topk_prob", !v2, &c->norm_topk_prob))) goto done;
    if ((st = get_bool(&r, "tie_word_embeddings", 0, &c->tie_word_embeddings))) goto done;
    if (c->tie_word_embeddings) {
        st = dsv3_errf(err, DSV3_EUNSUPPORTED,
                       "config: %s: key 'tie_word_embeddings': true is not supported (V3 has a separate lm_head)",
                       where);
        goto done;
    }
    int choice;
    if ((st = get_choice(&r, "scoring_func", SCORING_NAMES, 2, v2, &choice))) goto done;
    c->scoring_func = (dsv3_score_func)choice;
    if ((st = get_choice(&r, "topk_method", TOPK_NAMES, 3, v2 ? 1 : 0, &choice))) goto done;
    c->topk_method = (dsv3_topk_method)choice;
    if ((st = check_str(&r, "hidden_act", "silu"))) goto done;
    if ((st = parse_rope_scaling(&r, c))) goto done;
    if ((st = parse_quant(&r, c))) goto done;
    st = validate(&r, c);
done:
    cJSON_Delete(root);
    return st;
}

dsv3_status dsv3_config_load(dsv3_config *cfg, const char *path, dsv3_err *err) {
    const char *what;
    FILE *f = dsv3_file_fopen_regular(path, &what);
    if (!f && what) return dsv3_errf(err, DSV3_EIO, "config: %s: %s", path, what);
    if (!f) return dsv3_errf(err, DSV3_EIO, "config: %s: cannot open: %m", path);
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            if (cap > ((size_t)64 << 20)) {
                free(buf);
                fclose(f);
                return dsv3_errf(err, DSV3_EFORMAT, "config: %s: larger than 64 MiB", path);
            }
            cap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return dsv3_errf(err, DSV3_ENOMEM, "config: %s: out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return dsv3_errf(err, DSV3_EIO, "config: %s: read error", path);
    }
    dsv3_status st = dsv3_config_parse(cfg, buf, n, path, err);
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- RoPE / YaRN ---------- */

/* docs/ARCHITECTURE.md, "YaRN": mscale(f, m) = 0.1 m ln f + 1 for f > 1. */
static double yarn_mscale(double f, double m) {
    return f <= 1.0 ? 1.0 : 0.1 * m * log(f) + 1.0;
}

double dsv3_config_softmax_scale(const dsv3_config *c) {
    double s = 1.0 / sqrt((double)dsv3_config_qk_head_dim(c));
    if (c->rope_yarn && c->rope_mscale_all_dim != 0.0) {
        double m = yarn_mscale(c->rope_factor, c->rope_mscale_all_dim);
        s *= m * m;
    }
    return s;
}

double dsv3_config_rope_attention_factor(const dsv3_config *c) {
    if (!c->rope_yarn) return 1.0;
    return yarn_mscale(c->rope_factor, c->rope_mscale) /
           yarn_mscale(c->rope_factor, c->rope_mscale_all_dim);
}

/* docs/ARCHITECTURE.md, "YaRN": cdim(r) = d ln(L0 / (2 pi r)) / (2 ln b); the ramp blends
 * interpolated (1/f) frequencies in on the low-frequency side. Computed in float32 like the
 * references. */
void dsv3_config_rope_inv_freq(const dsv3_config *c, float *inv_freq) {
    const int64_t d = c->qk_rope_head_dim, half = d / 2;
    const float base = (float)c->rope_theta;
    double low = 0, high = 0;
    if (c->rope_yarn) {
        const double L0 = (double)c->rope_original_max_pos, lb = log(c->rope_theta);
        double cl = floor(d * log(L0 / (2 * M_PI * c->rope_beta_fast)) / (2 * lb));
        double ch = ceil(d * log(L0 / (2 * M_PI * c->rope_beta_slow)) / (2 * lb));
        low = cl > 0 ? cl : 0;
        high = ch < (double)(d - 1) ? ch : (double)(d - 1);
        if (low == high) high += 0.001;
    }
    for (int64_t k = 0; k < half; k++) {
        float pos_freq = powf(base, (float)(2 * k) / (float)d);
        float extra = 1.0f / pos_freq;
        if (!c->rope_yarn) {
            inv_freq[k] = extra;
            continue;
        }
        float inter = 1.0f / ((float)c->rope_factor * pos_freq);
        float ramp = (float)(((double)k - low) / (high - low));
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        inv_freq[k] = inter * ramp + extra * (1.0f - ramp);
    }
}
