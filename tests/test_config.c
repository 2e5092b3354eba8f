/* test_config.c — config.json parsing, defaults, validation and the derived YaRN numbers.
 *
 * Configs are built from a key table (the DeepSeek-V3 config of docs/ARCHITECTURE.md,
 * "config.json") with one key left out or replaced, so each test states exactly what differs from a
 * valid config. Checks that a missing or contradictory key gives the right dsv3_status and a
 * message naming the key (config.h), that absent optional keys take the Hugging Face
 * DeepseekV3Config defaults, and the YaRN softmax scale and inverse frequencies of
 * docs/ARCHITECTURE.md, "YaRN".
 *
 * Usage: test_config [NAME_SUBSTRING]   runs the tests whose name contains the argument.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/runner.h"

#include "model/run/config.h"

/* ---------------------------------------------------------------- checks --------------- */

static int check(int cond, const char *what) {
    if (!cond) printf("    check failed: %s\n", what);
    return cond;
}

/* Checks st == want and that the message names needle (when not NULL). */
static int expect_err(dsv3_status st, const dsv3_err *err, dsv3_status want, const char *needle) {
    int ok = 1;
    if (st != want) {
        printf("    expected %s, got %s (\"%s\")\n", dsv3_status_name(want), dsv3_status_name(st),
               err->msg);
        ok = 0;
    }
    if (needle && !strstr(err->msg, needle)) {
        printf("    message \"%s\" does not name \"%s\"\n", err->msg, needle);
        ok = 0;
    }
    if (st != DSV3_OK && strncmp(err->msg, "config: ", 8) != 0) {
        printf("    message \"%s\" does not start with \"config: \"\n", err->msg);
        ok = 0;
    }
    return ok;
}

static int check_int(int64_t got, int64_t want, const char *what) {
    if (got == want) return 1;
    printf("    %s: got %lld, expected %lld\n", what, (long long)got, (long long)want);
    return 0;
}

static int check_num(double got, double want, double rel, const char *what) {
    if (fabs(got - want) <= rel * fabs(want)) return 1;
    printf("    %s: got %.17g, expected %.17g (relative tolerance %g)\n", what, got, want, rel);
    return 0;
}

/* ---------------------------------------------------------------- config builder ------- */

#define WHERE "test/config.json"

typedef struct {
    const char *key;
    const char *json; /* the value as JSON text */
} kv;

/* DeepSeek-V3 (671B) config.json, docs/ARCHITECTURE.md "config.json". */
static const kv v3[] = {
    {"architectures", "[\"DeepseekV3ForCausalLM\"]"},
    {"model_type", "\"deepseek_v3\""},
    {"vocab_size", "129280"},
    {"hidden_size", "7168"},
    {"intermediate_size", "18432"},
    {"moe_intermediate_size", "2048"},
    {"num_hidden_layers", "61"},
    {"num_attention_heads", "128"},
    {"num_key_value_heads", "128"},
    {"n_shared_experts", "1"},
    {"n_routed_experts", "256"},
    {"num_experts_per_tok", "8"},
    {"n_group", "8"},
    {"topk_group", "4"},
    {"routed_scaling_factor", "2.5"},
    {"scoring_func", "\"sigmoid\""},
    {"topk_method", "\"noaux_tc\""},
    {"norm_topk_prob", "true"},
    {"first_k_dense_replace", "3"},
    {"moe_layer_freq", "1"},
    {"q_lora_rank", "1536"},
    {"kv_lora_rank", "512"},
    {"qk_nope_head_dim", "128"},
    {"qk_rope_head_dim", "64"},
    {"v_head_dim", "128"},
    {"hidden_act", "\"silu\""},
    {"rope_theta", "10000"},
    {"rope_scaling", "{\"type\":\"yarn\",\"factor\":40,\"original_max_position_embeddings\":4096,"
                     "\"beta_fast\":32,\"beta_slow\":1,\"mscale\":1.0,\"mscale_all_dim\":1.0}"},
    {"max_position_embeddings", "163840"},
    {"rms_norm_eps", "1e-06"},
    {"tie_word_embeddings", "false"},
    {"num_nextn_predict_layers", "1"},
    {"quantization_config", "{\"quant_method\":\"fp8\",\"fmt\":\"e4m3\",\"activation_scheme\":"
                            "\"dynamic\",\"weight_block_size\":[128,128]}"},
    {"bos_token_id", "0"},
    {"eos_token_id", "1"},
    {"torch_dtype", "\"bfloat16\""},
    {"attention_bias", "false"},
    {"attention_dropout", "0.0"},
    {"use_cache", "true"},
    {"transformers_version", "\"4.46.3\""},
};
#define NV3 (sizeof v3 / sizeof v3[0])

/* Keys config.c cannot do without (shape-defining); MoE keys too since V3 has MoE layers. */
static const char *const required_keys[] = {
    "vocab_size",        "hidden_size",      "num_hidden_layers",     "num_attention_heads",
    "intermediate_size", "kv_lora_rank",     "qk_nope_head_dim",      "qk_rope_head_dim",
    "v_head_dim",        "n_routed_experts", "moe_intermediate_size", "num_experts_per_tok",
};
#define NREQ (sizeof required_keys / sizeof required_keys[0])

/* An edit to a base table: json NULL removes the key; a key not in the base is added. */
typedef struct {
    const char *key;
    const char *json;
} edit;

/* Writes the JSON object of base with edits applied into buf. */
static void build(char *buf, size_t n, const kv *base, size_t nbase, const edit *edits,
                  size_t nedits) {
    size_t at = (size_t)snprintf(buf, n, "{");
    int first = 1;
    for (size_t i = 0; i < nbase; i++) {
        const char *val = base[i].json;
        for (size_t j = 0; j < nedits; j++)
            if (strcmp(edits[j].key, base[i].key) == 0) val = edits[j].json;
        if (!val) continue;
        at += (size_t)snprintf(buf + at, n - at, "%s\"%s\":%s", first ? "" : ",", base[i].key, val);
        first = 0;
    }
    for (size_t j = 0; j < nedits; j++) {
        int in_base = 0;
        for (size_t i = 0; i < nbase; i++)
            in_base |= strcmp(edits[j].key, base[i].key) == 0;
        if (in_base || !edits[j].json) continue;
        at += (size_t)snprintf(buf + at, n - at, "%s\"%s\":%s", first ? "" : ",", edits[j].key,
                               edits[j].json);
        first = 0;
    }
    snprintf(buf + at, n - at, "}");
}

/* Parses V3 with edits applied. */
static dsv3_status parse_v3(dsv3_config *c, const edit *edits, size_t nedits, dsv3_err *err) {
    char buf[4096];
    build(buf, sizeof buf, v3, NV3, edits, nedits);
    return dsv3_config_parse(c, buf, strlen(buf), WHERE, err);
}

/* Parses V3 with one key replaced (json NULL = removed); checks the status and the key in the
 * message. */
static int expect_v3_edit(const char *key, const char *json, dsv3_status want, const char *needle) {
    dsv3_config c;
    dsv3_err err = {{0}};
    edit e = {key, json};
    int ok = expect_err(parse_v3(&c, &e, 1, &err), &err, want, needle);
    if (!ok) printf("    (with %s = %s)\n", key, json ? json : "<absent>");
    return ok;
}

/* ---------------------------------------------------------------- the V3 config -------- */

static int test_config_parses_v3(void) {
    dsv3_config c;
    dsv3_err err = {{0}};
    int ok = expect_err(parse_v3(&c, NULL, 0, &err), &err, DSV3_OK, NULL);
    if (!ok) return 0;
    ok &= check_int(c.vocab_size, 129280, "vocab_size");
    ok &= check_int(c.hidden_size, 7168, "hidden_size");
    ok &= check_int(c.intermediate_size, 18432, "intermediate_size");
    ok &= check_int(c.moe_intermediate_size, 2048, "moe_intermediate_size");
    ok &= check_int(c.num_hidden_layers, 61, "num_hidden_layers");
    ok &= check_int(c.num_attention_heads, 128, "num_attention_heads");
    ok &= check_int(c.num_key_value_heads, 128, "num_key_value_heads");
    ok &= check_int(c.n_shared_experts, 1, "n_shared_experts");
    ok &= check_int(c.n_routed_experts, 256, "n_routed_experts");
    ok &= check_int(c.num_experts_per_tok, 8, "num_experts_per_tok");
    ok &= check_int(c.n_group, 8, "n_group");
    ok &= check_int(c.topk_group, 4, "topk_group");
    ok &= check_num(c.routed_scaling_factor, 2.5, 0, "routed_scaling_factor");
    ok &= check_int(c.norm_topk_prob, 1, "norm_topk_prob");
    ok &= check_int(c.first_k_dense_replace, 3, "first_k_dense_replace");
    ok &= check_int(c.moe_layer_freq, 1, "moe_layer_freq");
    ok &= check_int(c.q_lora_rank, 1536, "q_lora_rank");
    ok &= check_int(c.kv_lora_rank, 512, "kv_lora_rank");
    ok &= check_int(c.qk_nope_head_dim, 128, "qk_nope_head_dim");
    ok &= check_int(c.qk_rope_head_dim, 64, "qk_rope_head_dim");
    ok &= check_int(c.v_head_dim, 128, "v_head_dim");
    ok &= check_int(dsv3_config_qk_head_dim(&c), 192, "qk_head_dim");
    ok &= check_num(c.rope_theta, 10000, 0, "rope_theta");
    ok &= check_int(c.rope_yarn, 1, "rope_yarn");
    ok &= check_num(c.rope_factor, 40, 0, "rope_scaling.factor");
    ok &= check_int(c.rope_original_max_pos, 4096, "rope_scaling.original_max_position_embeddings");
    ok &= check_num(c.rope_beta_fast, 32, 0, "rope_scaling.beta_fast");
    ok &= check_num(c.rope_beta_slow, 1, 0, "rope_scaling.beta_slow");
    ok &= check_num(c.rope_mscale, 1, 0, "rope_scaling.mscale");
    ok &= check_num(c.rope_mscale_all_dim, 1, 0, "rope_scaling.mscale_all_dim");
    ok &= check_int(c.max_position_embeddings, 163840, "max_position_embeddings");
    ok &= check_num(c.rms_norm_eps, 1e-6, 0, "rms_norm_eps");
    ok &= check_int(c.tie_word_embeddings, 0, "tie_word_embeddings");
    ok &= check_int(c.num_nextn_predict_layers, 1, "num_nextn_predict_layers");
    ok &= check_int(c.bos_token_id, 0, "bos_token_id");
    ok &= check_int(c.eos_token_id, 1, "eos_token_id");
    ok &= check_int(c.fp8_block, 1, "fp8_block");
    ok &= check_int(dsv3_config_layer_is_moe(&c, 2), 0, "layer 2 is dense");
    ok &= check_int(dsv3_config_layer_is_moe(&c, 3), 1, "layer 3 is MoE");
    return ok;
}

static int test_config_load_reads_file_and_names_missing_path(void) {
    char dir[] = "/tmp/dsv3_test_config_XXXXXX";
    if (!check(mkdtemp(dir) != NULL, "mkdtemp")) return 0;
    char path[256], buf[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    build(buf, sizeof buf, v3, NV3, NULL, 0);
    FILE *f = fopen(path, "w");
    int ok = check(f && fputs(buf, f) >= 0, "write config.json");
    if (f) fclose(f);
    dsv3_config c;
    dsv3_err err = {{0}};
    ok &= expect_err(dsv3_config_load(&c, path, &err), &err, DSV3_OK, NULL);
    ok &= check_int(c.hidden_size, 7168, "hidden_size from file");
    /* errors from a file name the file */
    f = fopen(path, "w");
    ok &= check(f && fputs("{\"vocab_size\": 12", f) >= 0, "write broken config.json");
    if (f) fclose(f);
    ok &= expect_err(dsv3_config_load(&c, path, &err), &err, DSV3_EFORMAT, path);
    unlink(path);
    ok &= expect_err(dsv3_config_load(&c, path, &err), &err, DSV3_EIO, path);
    rmdir(dir);
    return ok;
}

/* ---------------------------------------------------------------- missing keys --------- */

static int test_config_rejects_each_missing_required_key(void) {
    int ok = 1;
    for (size_t i = 0; i < NREQ; i++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", required_keys[i]);
        ok &= expect_v3_edit(required_keys[i], NULL, DSV3_EINVAL, quoted);
        /* JSON null is as good as absent */
        ok &= expect_v3_edit(required_keys[i], "null", DSV3_EINVAL, quoted);
    }
    return ok;
}

/* With every layer dense and no MTP layer, the MoE keys are not needed. */
static int test_config_moe_keys_optional_when_all_layers_dense(void) {
    const edit e[] = {{"first_k_dense_replace", "61"},
                      {"num_nextn_predict_layers", "0"},
                      {"n_routed_experts", NULL},
                      {"moe_intermediate_size", NULL},
                      {"num_experts_per_tok", NULL},
                      {"n_group", NULL},
                      {"topk_group", NULL}};
    dsv3_config c;
    dsv3_err err = {{0}};
    int ok = expect_err(parse_v3(&c, e, sizeof e / sizeof e[0], &err), &err, DSV3_OK, NULL);
    ok &= check_int(dsv3_config_layer_is_moe(&c, 60), 0, "layer 60 dense");
    /* group keys that are present but unused are not checked against absent experts */
    ok &= expect_err(parse_v3(&c, e, 5, &err), &err, DSV3_OK, NULL);
    /* the MTP layer is MoE, so with MTP the MoE keys are required again */
    const edit e2[] = {{"first_k_dense_replace", "61"},
                       {"num_nextn_predict_layers", "1"},
                       {"n_routed_experts", NULL}};
    ok &= expect_err(parse_v3(&c, e2, 3, &err), &err, DSV3_EINVAL, "'n_routed_experts'");
    return ok;
}

/* ---------------------------------------------------------------- contradictions ------- */

static int test_config_rejects_n_group_not_dividing_experts(void) {
    int ok = expect_v3_edit("n_group", "7", DSV3_EINVAL, "n_group");
    ok &= expect_v3_edit("n_group", "0", DSV3_EINVAL, "n_group");
    /* 256 experts in 256 groups leave one expert per group (top-2 group score needs 2) */
    ok &= expect_v3_edit("n_group", "256", DSV3_EINVAL, "n_group");
    return ok;
}

static int test_config_rejects_topk_group_above_n_group(void) {
    int ok = expect_v3_edit("topk_group", "9", DSV3_EINVAL, "topk_group");
    ok &= expect_v3_edit("topk_group", "0", DSV3_EINVAL, "topk_group");
    return ok;
}

static int test_config_rejects_too_many_experts_per_token(void) {
    /* topk_group 4 of 8 groups of 32 experts: at most 128 candidates */
    int ok = expect_v3_edit("num_experts_per_tok", "129", DSV3_EINVAL, "num_experts_per_tok");
    ok &= expect_v3_edit("num_experts_per_tok", "257", DSV3_EINVAL, "num_experts_per_tok");
    ok &= expect_v3_edit("num_experts_per_tok", "0", DSV3_EINVAL, "num_experts_per_tok");
    ok &= expect_v3_edit("num_experts_per_tok", "128", DSV3_OK, NULL);
    return ok;
}

static int test_config_rejects_kv_heads_unequal_to_heads(void) {
    int ok = expect_v3_edit("num_key_value_heads", "64", DSV3_EINVAL, "num_key_value_heads");
    ok &= expect_v3_edit("num_key_value_heads", "129", DSV3_EINVAL, "num_key_value_heads");
    return ok;
}

static int test_config_rejects_odd_rope_dim(void) {
    int ok = expect_v3_edit("qk_rope_head_dim", "63", DSV3_EINVAL, "qk_rope_head_dim");
    ok &= expect_v3_edit("qk_rope_head_dim", "0", DSV3_EINVAL, "qk_rope_head_dim");
    return ok;
}

static int test_config_rejects_dense_layers_beyond_depth(void) {
    int ok = expect_v3_edit("first_k_dense_replace", "62", DSV3_EINVAL, "first_k_dense_replace");
    ok &= expect_v3_edit("first_k_dense_replace", "-1", DSV3_EINVAL, "first_k_dense_replace");
    ok &= expect_v3_edit("first_k_dense_replace", "61", DSV3_OK, NULL);
    return ok;
}

static int test_config_rejects_unsupported_values_naming_the_key(void) {
    int ok = expect_v3_edit("scoring_func", "\"sparsemax\"", DSV3_EUNSUPPORTED, "scoring_func");
    ok &= expect_v3_edit("topk_method", "\"aux_tc\"", DSV3_EUNSUPPORTED, "topk_method");
    ok &= expect_v3_edit("topk_method", "\"gready\"", DSV3_EUNSUPPORTED, "\"gready\"");
    ok &= expect_v3_edit("model_type", "\"llama\"", DSV3_EUNSUPPORTED, "model_type");
    ok &= expect_v3_edit("model_type", "\"deepseek_v4\"", DSV3_EUNSUPPORTED, "\"deepseek_v4\"");
    ok &= expect_v3_edit("scoring_func", "1", DSV3_EINVAL, "scoring_func");
    ok &= expect_v3_edit("hidden_act", "\"gelu\"", DSV3_EUNSUPPORTED, "hidden_act");
    ok &= expect_v3_edit("moe_layer_freq", "2", DSV3_EUNSUPPORTED, "moe_layer_freq");
    ok &= expect_v3_edit("tie_word_embeddings", "true", DSV3_EUNSUPPORTED, "tie_word_embeddings");
    ok &= expect_v3_edit("quantization_config",
                         "{\"quant_method\":\"fp8\",\"fmt\":\"e4m3\",\"scale_fmt\":\"e8m0\"}",
                         DSV3_EUNSUPPORTED, "scale_fmt");
    return ok;
}

/* ---------------------------------------------------------------- the family ----------- */

/* config.json of the released checkpoints (docs/ARCHITECTURE.md, "Family"), as downloaded. */
static const kv v2[] = { /* DeepSeek-V2 / V2.5 / Coder-V2 (236B) */
    {"architectures", "[\"DeepseekV2ForCausalLM\"]"}, {"model_type", "\"deepseek_v2\""},
    {"vocab_size", "102400"}, {"hidden_size", "5120"}, {"intermediate_size", "12288"},
    {"moe_intermediate_size", "1536"}, {"num_hidden_layers", "60"},
    {"num_attention_heads", "128"}, {"num_key_value_heads", "128"}, {"n_shared_experts", "2"},
    {"n_routed_experts", "160"}, {"num_experts_per_tok", "6"}, {"n_group", "8"},
    {"topk_group", "3"}, {"routed_scaling_factor", "16.0"}, {"scoring_func", "\"softmax\""},
    {"topk_method", "\"group_limited_greedy\""}, {"norm_topk_prob", "false"},
    {"first_k_dense_replace", "1"}, {"moe_layer_freq", "1"}, {"q_lora_rank", "1536"},
    {"kv_lora_rank", "512"}, {"qk_nope_head_dim", "128"}, {"qk_rope_head_dim", "64"},
    {"v_head_dim", "128"}, {"hidden_act", "\"silu\""}, {"rope_theta", "10000"},
    {"rope_scaling", "{\"beta_fast\":32,\"beta_slow\":1,\"factor\":40,\"mscale\":0.707,"
                     "\"mscale_all_dim\":0.707,\"original_max_position_embeddings\":4096,"
                     "\"type\":\"yarn\"}"},
    {"max_position_embeddings", "163840"}, {"rms_norm_eps", "1e-06"},
    {"tie_word_embeddings", "false"}, {"bos_token_id", "100000"}, {"eos_token_id", "100001"},
    {"aux_loss_alpha", "0.001"}, {"seq_aux", "true"}, {"torch_dtype", "\"bfloat16\""},
};
static const kv v2_lite[] = { /* DeepSeek-V2-Lite / Coder-V2-Lite (16B) */
    {"architectures", "[\"DeepseekV2ForCausalLM\"]"}, {"model_type", "\"deepseek_v2\""},
    {"vocab_size", "102400"}, {"hidden_size", "2048"}, {"intermediate_size", "10944"},
    {"moe_intermediate_size", "1408"}, {"num_hidden_layers", "27"},
    {"num_attention_heads", "16"}, {"num_key_value_heads", "16"}, {"n_shared_experts", "2"},
    {"n_routed_experts", "64"}, {"num_experts_per_tok", "6"}, {"n_group", "1"},
    {"topk_group", "1"}, {"routed_scaling_factor", "1.0"}, {"scoring_func", "\"softmax\""},
    {"topk_method", "\"greedy\""}, {"norm_topk_prob", "false"},
    {"first_k_dense_replace", "1"}, {"moe_layer_freq", "1"}, {"q_lora_rank", "null"},
    {"kv_lora_rank", "512"}, {"qk_nope_head_dim", "128"}, {"qk_rope_head_dim", "64"},
    {"v_head_dim", "128"}, {"hidden_act", "\"silu\""}, {"rope_theta", "10000"},
    {"rope_scaling", "{\"beta_fast\":32,\"beta_slow\":1,\"factor\":40,\"mscale\":0.707,"
                     "\"mscale_all_dim\":0.707,\"original_max_position_embeddings\":4096,"
                     "\"type\":\"yarn\"}"},
    {"max_position_embeddings", "163840"}, {"rms_norm_eps", "1e-06"},
    {"tie_word_embeddings", "false"}, {"bos_token_id", "100000"}, {"eos_token_id", "100001"},
};
static const kv kimi_k2[] = { /* Kimi-K2 (1T): one group, 384 experts, no MTP layer */
    {"architectures", "[\"DeepseekV3ForCausalLM\"]"}, {"model_type", "\"kimi_k2\""},
    {"vocab_size", "163840"}, {"hidden_size", "7168"}, {"intermediate_size", "18432"},
    {"moe_intermediate_size", "2048"}, {"num_hidden_layers", "61"},
    {"num_attention_heads", "64"}, {"num_key_value_heads", "64"}, {"n_shared_experts", "1"},
    {"n_routed_experts", "384"}, {"num_experts_per_tok", "8"}, {"n_group", "1"},
    {"topk_group", "1"}, {"routed_scaling_factor", "2.827"}, {"scoring_func", "\"sigmoid\""},
    {"topk_method", "\"noaux_tc\""}, {"norm_topk_prob", "true"},
    {"first_k_dense_replace", "1"}, {"moe_layer_freq", "1"}, {"q_lora_rank", "1536"},
    {"kv_lora_rank", "512"}, {"qk_nope_head_dim", "128"}, {"qk_rope_head_dim", "64"},
    {"v_head_dim", "128"}, {"hidden_act", "\"silu\""}, {"rope_theta", "50000.0"},
    {"rope_scaling", "{\"beta_fast\":1.0,\"beta_slow\":1.0,\"factor\":32.0,\"mscale\":1.0,"
                     "\"mscale_all_dim\":1.0,\"original_max_position_embeddings\":4096,"
                     "\"type\":\"yarn\"}"},
    {"max_position_embeddings", "131072"}, {"rms_norm_eps", "1e-06"},
    {"tie_word_embeddings", "false"}, {"num_nextn_predict_layers", "0"},
    {"quantization_config", "{\"activation_scheme\":\"dynamic\",\"fmt\":\"e4m3\","
                            "\"quant_method\":\"fp8\",\"weight_block_size\":[128,128]}"},
    {"bos_token_id", "163584"}, {"eos_token_id", "163585"},
};
static const kv moonlight[] = { /* Moonlight-16B-A3B: plain q_proj, 64 experts, one group */
    {"architectures", "[\"DeepseekV3ForCausalLM\"]"}, {"model_type", "\"deepseek_v3\""},
    {"vocab_size", "163840"}, {"hidden_size", "2048"}, {"intermediate_size", "11264"},
    {"moe_intermediate_size", "1408"}, {"num_hidden_layers", "27"},
    {"num_attention_heads", "16"}, {"num_key_value_heads", "16"}, {"n_shared_experts", "2"},
    {"n_routed_experts", "64"}, {"num_experts_per_tok", "6"}, {"n_group", "1"},
    {"topk_group", "1"}, {"routed_scaling_factor", "2.446"}, {"scoring_func", "\"sigmoid\""},
    {"topk_method", "\"noaux_tc\""}, {"norm_topk_prob", "true"},
    {"first_k_dense_replace", "1"}, {"moe_layer_freq", "1"}, {"q_lora_rank", "null"},
    {"kv_lora_rank", "512"}, {"qk_nope_head_dim", "128"}, {"qk_rope_head_dim", "64"},
    {"v_head_dim", "128"}, {"hidden_act", "\"silu\""}, {"rope_theta", "50000.0"},
    {"rope_scaling", "null"}, {"max_position_embeddings", "8192"}, {"rms_norm_eps", "1e-05"},
    {"tie_word_embeddings", "false"}, {"bos_token_id", "163584"}, {"eos_token_id", "163585"},
};

static dsv3_status parse_table(dsv3_config *c, const kv *t, size_t n, const edit *e, size_t ne,
                               dsv3_err *err) {
    char buf[4096];
    build(buf, sizeof buf, t, n, e, ne);
    return dsv3_config_parse(c, buf, strlen(buf), WHERE, err);
}
#define PARSE(c, t, e, ne, err) parse_table(c, t, sizeof t / sizeof t[0], e, ne, err)

/* The routing rule each variant states: V2 softmax + group max (8 groups, 3 kept), unnormalised
 * and scaled by 16; V2-Lite greedy, scaled by 1; Kimi-K2 and Moonlight one group, normalised,
 * scaled by 2.827 / 2.446, no MTP; Moonlight a plain q_proj. */
static int test_config_parses_family_configs(void) {
    dsv3_config c;
    dsv3_err err = {{0}};
    int ok = expect_err(PARSE(&c, v2, NULL, 0, &err), &err, DSV3_OK, NULL);
    dsv3_route_params p = dsv3_config_route_params(&c);
    ok &= check_int(c.family, DSV3_FAMILY_V2, "V2 family");
    ok &= check_int(p.scoring, DSV3_SCORE_SOFTMAX, "V2 scoring");
    ok &= check_int(p.method, DSV3_TOPK_GROUP_LIMITED, "V2 topk_method");
    ok &= check_int(p.groups * 10 + p.topk_group, 83, "V2 groups 8, kept 3");
    ok &= check_int(p.norm_topk_prob, 0, "V2 no normalisation");
    ok &= check_num(p.scaling, 16.0, 0, "V2 scaling");
    ok &= check_int(dsv3_config_has_router_bias(&c), 0, "V2 has no router bias");
    ok &= check_int(c.num_nextn_predict_layers, 0, "V2 no MTP");
    ok &= check_num(dsv3_config_rope_attention_factor(&c), 1.0, 0, "V2 attention factor");
    ok &= expect_err(PARSE(&c, v2_lite, NULL, 0, &err), &err, DSV3_OK, NULL);
    p = dsv3_config_route_params(&c);
    ok &= check_int(p.method, DSV3_TOPK_GREEDY, "V2-Lite greedy");
    ok &= check_int(c.q_lora_rank, 0, "V2-Lite q_proj");
    ok &= check_num(p.scaling, 1.0, 0, "V2-Lite scaling");
    ok &= check_int(c.n_shared_experts, 2, "V2-Lite shared experts");
    /* norm_topk_prob true in a V2 config: normalised and not scaled (HF DeepseekV2 MoEGate) */
    const edit norm = {"norm_topk_prob", "true"};
    ok &= expect_err(PARSE(&c, v2, &norm, 1, &err), &err, DSV3_OK, NULL);
    p = dsv3_config_route_params(&c);
    ok &= check_int(p.norm_topk_prob, 1, "V2 norm_topk_prob true");
    ok &= check_num(p.scaling, 1.0, 0, "V2 normalised weights are not scaled");
    ok &= expect_err(PARSE(&c, kimi_k2, NULL, 0, &err), &err, DSV3_OK, NULL);
    p = dsv3_config_route_params(&c);
    ok &= check_int(c.family, DSV3_FAMILY_V3, "Kimi-K2 family");
    ok &= check_int(p.groups * 10 + p.topk_group, 11, "Kimi-K2 one group");
    ok &= check_int(p.experts, 384, "Kimi-K2 experts");
    ok &= check_int(p.norm_topk_prob, 1, "Kimi-K2 normalised");
    ok &= check_num(p.scaling, 2.827, 1e-7, "Kimi-K2 scaling");
    ok &= check_int(dsv3_config_has_router_bias(&c), 1, "Kimi-K2 router bias");
    ok &= check_int(c.num_nextn_predict_layers, 0, "Kimi-K2 no MTP");
    ok &= check_int(c.fp8_block, 1, "Kimi-K2 FP8");
    ok &= check_num(c.rope_beta_fast, 1.0, 0, "Kimi-K2 beta_fast 1 = beta_slow");
    ok &= expect_err(PARSE(&c, moonlight, NULL, 0, &err), &err, DSV3_OK, NULL);
    p = dsv3_config_route_params(&c);
    ok &= check_int(c.q_lora_rank, 0, "Moonlight q_proj");
    ok &= check_int(p.method, DSV3_TOPK_NOAUX_TC, "Moonlight noaux_tc");
    ok &= check_num(p.scaling, 2.446, 1e-7, "Moonlight scaling");
    ok &= check_int(c.first_k_dense_replace, 1, "Moonlight one dense layer");
    ok &= check_int(c.rope_yarn, 0, "Moonlight no YaRN");
    ok &= check_int(c.fp8_block, 0, "Moonlight BF16");
    /* a BF16 re-export of V3: no quantization_config */
    const edit bf16 = {"quantization_config", NULL};
    ok &= expect_err(parse_v3(&c, &bf16, 1, &err), &err, DSV3_OK, NULL);
    ok &= check_int(c.fp8_block, 0, "V3 BF16 re-export");
    /* V3.1: scale_fmt ue8m0 */
    const edit v31 = {"quantization_config",
                      "{\"activation_scheme\":\"dynamic\",\"fmt\":\"e4m3\",\"quant_method\":"
                      "\"fp8\",\"weight_block_size\":[128,128],\"scale_fmt\":\"ue8m0\"}"};
    ok &= expect_err(parse_v3(&c, &v31, 1, &err), &err, DSV3_OK, NULL);
    ok &= check_int(c.scale_fmt_ue8m0 * 10 + c.fp8_block, 11, "V3.1 ue8m0 scales");
    return ok;
}

/* Absent keys of a deepseek_v2 config take DeepseekV2Config's defaults, a V3 config's
 * DeepseekV3Config's (test_config_applies_hf_moe_defaults). */
static int test_config_applies_v2_defaults(void) {
    static const edit drop[] = {
        {"n_shared_experts", NULL},    {"n_group", NULL},        {"topk_group", NULL},
        {"routed_scaling_factor", NULL}, {"scoring_func", NULL}, {"topk_method", NULL},
        {"norm_topk_prob", NULL},      {"first_k_dense_replace", NULL},
    };
    dsv3_config c;
    dsv3_err err = {{0}};
    int ok = expect_err(PARSE(&c, v2, drop, sizeof drop / sizeof drop[0], &err), &err, DSV3_OK,
                        NULL);
    ok &= check_int(c.n_shared_experts, 0, "n_shared_experts");
    ok &= check_int(c.n_group * 10 + c.topk_group, 11, "n_group / topk_group");
    ok &= check_num(c.routed_scaling_factor, 1.0, 0, "routed_scaling_factor");
    ok &= check_int(c.scoring_func, DSV3_SCORE_SOFTMAX, "scoring_func");
    ok &= check_int(c.topk_method, DSV3_TOPK_GREEDY, "topk_method");
    ok &= check_int(c.norm_topk_prob, 0, "norm_topk_prob");
    ok &= check_int(c.first_k_dense_replace, 0, "first_k_dense_replace");
    /* without model_type: DeepSeek-V3 */
    const edit none = {"model_type", NULL};
    ok &= expect_err(parse_v3(&c, &none, 1, &err), &err, DSV3_OK, NULL);
    ok &= check(c.family == DSV3_FAMILY_V3 && !strcmp(c.model_type, "deepseek_v3"),
                "absent model_type is deepseek_v3");
    /* group_limited_greedy keeps groups of one expert (the group max needs no pair) */
    const edit one[] = {{"n_group", "160"}, {"topk_group", "6"}};
    ok &= expect_err(PARSE(&c, v2, one, 2, &err), &err, DSV3_OK, NULL);
    /* greedy may take up to all experts whatever topk_group says */
    const edit greedy[] = {{"topk_method", "\"greedy\""}, {"num_experts_per_tok", "100"}};
    ok &= expect_err(PARSE(&c, v2, greedy, 2, &err), &err, DSV3_OK, NULL);
    const edit too_many[] = {{"topk_method", "\"greedy\""}, {"num_experts_per_tok", "161"}};
    ok &= expect_err(PARSE(&c, v2, too_many, 2, &err), &err, DSV3_EINVAL, "num_experts_per_tok");
    return ok;
}

static int test_config_rejects_unsupported_rope_and_quant(void) {
    int ok = expect_v3_edit("rope_scaling", "{\"type\":\"linear\",\"factor\":2}", DSV3_EUNSUPPORTED,
                            "rope_scaling");
    ok &= expect_v3_edit("rope_scaling", "{\"factor\":40}", DSV3_EINVAL, "rope_scaling");
    ok &= expect_v3_edit("rope_scaling", "{\"type\":\"yarn\"}", DSV3_EINVAL, "factor");
    ok &= expect_v3_edit("rope_scaling", "[40]", DSV3_EINVAL, "rope_scaling");
    ok &= expect_v3_edit("rope_scaling",
                         "{\"type\":\"yarn\",\"factor\":40,\"beta_fast\":1,\"beta_slow\":32}",
                         DSV3_EINVAL, "beta_fast");
    ok &= expect_v3_edit("quantization_config", "{\"quant_method\":\"gptq\"}", DSV3_EUNSUPPORTED,
                         "quant_method");
    ok &= expect_v3_edit("quantization_config",
                         "{\"quant_method\":\"fp8\",\"weight_block_size\":[64,64]}",
                         DSV3_EUNSUPPORTED, "weight_block_size");
    ok &= expect_v3_edit("quantization_config", "{\"quant_method\":\"fp8\",\"fmt\":\"e5m2\"}",
                         DSV3_EUNSUPPORTED, "fmt");
    return ok;
}

static int test_config_rejects_out_of_range_values(void) {
    int ok = expect_v3_edit("hidden_size", "0", DSV3_EINVAL, "hidden_size");
    ok &= expect_v3_edit("vocab_size", "-5", DSV3_EINVAL, "vocab_size");
    ok &= expect_v3_edit("num_hidden_layers", "1e9", DSV3_EINVAL, "num_hidden_layers");
    ok &= expect_v3_edit("num_nextn_predict_layers", "2", DSV3_EINVAL, "num_nextn_predict_layers");
    ok &= expect_v3_edit("bos_token_id", "129280", DSV3_EINVAL, "bos_token_id");
    ok &= expect_v3_edit("eos_token_id", "200000", DSV3_EINVAL, "eos_token_id");
    ok &= expect_v3_edit("rope_theta", "1", DSV3_EINVAL, "rope_theta");
    ok &= expect_v3_edit("rms_norm_eps", "-1e-6", DSV3_EINVAL, "rms_norm_eps");
    ok &= expect_v3_edit("routed_scaling_factor", "-2.5", DSV3_EINVAL, "routed_scaling_factor");
    return ok;
}

static int test_config_rejects_wrong_types(void) {
    static const struct {
        const char *key, *json;
    } bad[] = {
        {"hidden_size", "\"7168\""},
        {"vocab_size", "129280.5"},
        {"num_hidden_layers", "true"},
        {"n_routed_experts", "[256]"},
        {"qk_rope_head_dim", "{}"},
        {"q_lora_rank", "\"1536\""},
        {"norm_topk_prob", "1"},
        {"tie_word_embeddings", "\"false\""},
        {"rope_theta", "\"10000\""},
        {"rms_norm_eps", "[1e-6]"},
        {"routed_scaling_factor", "true"},
        {"scoring_func", "1"},
        {"max_position_embeddings", "\"163840\""},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ok &= expect_v3_edit(bad[i].key, bad[i].json, DSV3_EINVAL, bad[i].key);
    return ok;
}

static int test_config_rejects_invalid_json(void) {
    static const char *const bad[] = {"{\"vocab_size\": 1024", "{\"vocab_size\": 1024,}",
                                      "vocab_size = 1024", "", "{'vocab_size': 1024}"};
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dsv3_config c;
        dsv3_err err = {{0}};
        ok &= expect_err(dsv3_config_parse(&c, bad[i], strlen(bad[i]), WHERE, &err), &err,
                         DSV3_EFORMAT, WHERE);
        ok &= check(strstr(err.msg, "JSON") != NULL, "message says JSON");
    }
    static const char *const not_obj[] = {"[1,2]", "42", "\"config\"", "null"};
    for (size_t i = 0; i < sizeof not_obj / sizeof not_obj[0]; i++) {
        dsv3_config c;
        dsv3_err err = {{0}};
        ok &= expect_err(dsv3_config_parse(&c, not_obj[i], strlen(not_obj[i]), WHERE, &err), &err,
                         DSV3_EFORMAT, WHERE);
    }
    /* the length bounds the text: a valid config cut short is invalid */
    char buf[4096];
    build(buf, sizeof buf, v3, NV3, NULL, 0);
    dsv3_config c;
    dsv3_err err = {{0}};
    ok &= expect_err(dsv3_config_parse(&c, buf, strlen(buf) - 1, WHERE, &err), &err, DSV3_EFORMAT,
                     WHERE);
    return ok;
}

/* A valid object followed by anything but whitespace is not a JSON document. */
static int test_config_rejects_garbage_after_json(void) {
    char buf[4096];
    build(buf, sizeof buf, v3, NV3, NULL, 0);
    strcat(buf, " }");
    dsv3_config c;
    dsv3_err err = {{0}};
    int ok =
        expect_err(dsv3_config_parse(&c, buf, strlen(buf), WHERE, &err), &err, DSV3_EFORMAT, WHERE);
    build(buf, sizeof buf, v3, NV3, NULL, 0);
    strcat(buf, " \n\t ");
    ok &= expect_err(dsv3_config_parse(&c, buf, strlen(buf), WHERE, &err), &err, DSV3_OK, NULL);
    return ok;
}

/* A key given twice is ambiguous (cJSON would read the first, Python the last): refused naming
 * the key, at the top level and inside rope_scaling; the same key in two objects is fine. */
static int test_config_rejects_duplicate_keys(void) {
    char buf[4096];
    dsv3_config c;
    dsv3_err err = {{0}};
    build(buf, sizeof buf, v3, NV3, NULL, 0);
    buf[strlen(buf) - 1] = 0;
    strcat(buf, ",\"hidden_size\":1024}");
    int ok = expect_err(dsv3_config_parse(&c, buf, strlen(buf), WHERE, &err), &err, DSV3_EFORMAT,
                        "key 'hidden_size' appears more than once");
    const edit e = {"rope_scaling", "{\"type\":\"yarn\",\"factor\":40,\"factor\":4,"
                                    "\"original_max_position_embeddings\":4096}"};
    ok &= expect_err(parse_v3(&c, &e, 1, &err), &err, DSV3_EFORMAT,
                     "key 'rope_scaling.factor' appears more than once");
    const edit e2 = {"extra", "{\"vocab_size\":1,\"hidden_size\":2}"};
    ok &= expect_err(parse_v3(&c, &e2, 1, &err), &err, DSV3_OK, NULL);
    return ok;
}

/* ---------------------------------------------------------------- defaults ------------- */

/* Only the required keys; everything else must take DeepseekV3Config's defaults. */
static dsv3_status parse_minimal(dsv3_config *c, dsv3_err *err) {
    static const kv minimal[] = {
        {"vocab_size", "1024"},       {"hidden_size", "128"},          {"num_hidden_layers", "4"},
        {"num_attention_heads", "4"}, {"intermediate_size", "320"},    {"kv_lora_rank", "32"},
        {"qk_nope_head_dim", "32"},   {"qk_rope_head_dim", "16"},      {"v_head_dim", "32"},
        {"n_routed_experts", "16"},   {"moe_intermediate_size", "64"}, {"num_experts_per_tok", "4"},
    };
    char buf[2048];
    build(buf, sizeof buf, minimal, sizeof minimal / sizeof minimal[0], NULL, 0);
    return dsv3_config_parse(c, buf, strlen(buf), WHERE, err);
}

static int test_config_applies_hf_defaults(void) {
    dsv3_config c;
    dsv3_err err = {{0}};
    int ok = expect_err(parse_minimal(&c, &err), &err, DSV3_OK, NULL);
    if (!ok) return 0;
    ok &= check_int(c.num_key_value_heads, 4, "num_key_value_heads = num_attention_heads");
    ok &= check_int(c.first_k_dense_replace, 3, "first_k_dense_replace");
    ok &= check_int(c.moe_layer_freq, 1, "moe_layer_freq");
    ok &= check_int(c.q_lora_rank, 1536, "q_lora_rank");
    ok &= check_num(c.rope_theta, 10000, 0, "rope_theta");
    ok &= check_num(c.rms_norm_eps, 1e-6, 0, "rms_norm_eps");
    ok &= check_int(c.max_position_embeddings, 4096, "max_position_embeddings");
    ok &= check_int(c.bos_token_id, 0, "bos_token_id");
    ok &= check_int(c.eos_token_id, 1, "eos_token_id");
    ok &= check_int(c.tie_word_embeddings, 0, "tie_word_embeddings");
    ok &= check_int(c.rope_yarn, 0, "no rope_scaling: no YaRN");
    ok &= check_num(c.rope_factor, 1, 0, "rope factor 1 without scaling");
    ok &= check_int(c.fp8_block, 0, "no quantization_config");
    return ok;
}

/* DeepseekV3Config (transformers and the checkpoint's remote code) defaults of the MoE keys:
 * n_shared_experts 1, n_group 8, topk_group 4, routed_scaling_factor 2.5, norm_topk_prob true. */
static int test_config_applies_hf_moe_defaults(void) {
    dsv3_config c;
    dsv3_err err = {{0}};
    int ok = expect_err(parse_minimal(&c, &err), &err, DSV3_OK, NULL);
    if (!ok) return 0;
    ok &= check_int(c.n_shared_experts, 1, "n_shared_experts");
    ok &= check_int(c.n_group, 8, "n_group");
    ok &= check_int(c.topk_group, 4, "topk_group");
    ok &= check_num(c.routed_scaling_factor, 2.5, 0, "routed_scaling_factor");
    ok &= check_int(c.norm_topk_prob, 1, "norm_topk_prob");
    return ok;
}

static int test_config_q_lora_rank_null_selects_q_proj(void) {
    dsv3_config c;
    dsv3_err err = {{0}};
    edit e = {"q_lora_rank", "null"};
    int ok = expect_err(parse_v3(&c, &e, 1, &err), &err, DSV3_OK, NULL);
    ok &= check_int(c.q_lora_rank, 0, "q_lora_rank null -> 0");
    e.json = "0";
    ok &= expect_err(parse_v3(&c, &e, 1, &err), &err, DSV3_OK, NULL);
    ok &= check_int(c.q_lora_rank, 0, "q_lora_rank 0 -> 0");
    return ok;
}

/* ---------------------------------------------------------------- YaRN numbers --------- */

/* "YaRN": V3 softmax_scale = 192^-0.5 * (0.1 ln 40 + 1)^2 = 0.1352337788608801. */
static int test_config_v3_softmax_scale(void) {
    dsv3_config c;
    dsv3_err err = {{0}};
    int ok = expect_err(parse_v3(&c, NULL, 0, &err), &err, DSV3_OK, NULL);
    ok &= check_num(dsv3_config_softmax_scale(&c), 0.1352337788608801, 1e-12, "softmax_scale");
    ok &= check_num(dsv3_config_rope_attention_factor(&c), 1.0, 1e-15, "attention_factor");
    /* without mscale_all_dim the softmax scale gets no mscale (HF semantics) */
    edit e = {"rope_scaling", "{\"type\":\"yarn\",\"factor\":40,"
                              "\"original_max_position_embeddings\":4096,\"mscale\":1.0}"};
    ok &= expect_err(parse_v3(&c, &e, 1, &err), &err, DSV3_OK, NULL);
    ok &= check_num(dsv3_config_softmax_scale(&c), 0.07216878364870322, 1e-12,
                    "softmax_scale without mscale_all_dim");
    /* V2-Lite's mscale 0.707: mscale^2 = 1.5896261651208736 */
    e.json = "{\"type\":\"yarn\",\"factor\":40,\"original_max_position_embeddings\":4096,"
             "\"mscale\":0.707,\"mscale_all_dim\":0.707}";
    ok &= expect_err(parse_v3(&c, &e, 1, &err), &err, DSV3_OK, NULL);
    ok &= check_num(dsv3_config_softmax_scale(&c), 0.07216878364870322 * 1.5896261651208736, 1e-12,
                    "softmax_scale with mscale_all_dim 0.707");
    /* no rope scaling: plain dq^-0.5 */
    e.json = "null";
    ok &= expect_err(parse_v3(&c, &e, 1, &err), &err, DSV3_OK, NULL);
    ok &= check_num(dsv3_config_softmax_scale(&c), 0.07216878364870322, 1e-12,
                    "softmax_scale without YaRN");
    return ok;
}

/* Checks inv_freq against "YaRN" for rotary dim d: pairs <= last_extra are exactly the
 * plain RoPE frequency, pairs >= first_inter exactly 1/factor of it, pairs between strictly
 * blended with ramp (k - low) / (high - low). */
static int check_inv_freq(const dsv3_config *c, int last_extra, int first_inter, double low,
                          double high) {
    const int64_t d = c->qk_rope_head_dim, half = d / 2;
    float *inv = malloc((size_t)half * sizeof *inv);
    if (!inv) return 0;
    dsv3_config_rope_inv_freq(c, inv);
    int ok = 1;
    char what[96];
    for (int64_t k = 0; k < half; k++) {
        double extra = pow(c->rope_theta, -2.0 * (double)k / (double)d);
        double inter = extra / c->rope_factor;
        snprintf(what, sizeof what, "inv_freq[%lld] (d=%lld)", (long long)k, (long long)d);
        if (k <= last_extra) {
            ok &= check_num(inv[k], extra, 2e-6, what);
        } else if (k >= first_inter) {
            ok &= check_num(inv[k], inter, 2e-6, what);
        } else {
            double r = ((double)k - low) / (high - low);
            ok &= check_num(inv[k], inter * r + extra * (1 - r), 2e-6, what);
            ok &= check(inv[k] < extra * (1 - 1e-6) && inv[k] > inter * (1 + 1e-6),
                        "blended pair lies strictly between interpolation and extrapolation");
        }
    }
    free(inv);
    return ok;
}

/* "YaRN" for V3 (d 64, factor 40, L0 4096): low 10, high 23; pairs 0..10 pure
 * extrapolation, 23..31 pure interpolation, 11..22 blended. */
static int test_config_v3_rope_inv_freq_ramp(void) {
    dsv3_config c;
    dsv3_err err = {{0}};
    int ok = expect_err(parse_v3(&c, NULL, 0, &err), &err, DSV3_OK, NULL);
    ok &= check_inv_freq(&c, 10, 23, 10, 23);
    return ok;
}

/* The tiny config ("config.json"; d 16, factor 4, L0 128): low 0, high 3. */
static int test_config_tiny_rope_inv_freq_ramp(void) {
    const edit e[] = {{"qk_rope_head_dim", "16"},
                      {"rope_scaling", "{\"type\":\"yarn\",\"factor\":4,"
                                       "\"original_max_position_embeddings\":128,\"beta_fast\":32,"
                                       "\"beta_slow\":1,\"mscale\":1.0,\"mscale_all_dim\":1.0}"},
                      {"max_position_embeddings", "512"}};
    dsv3_config c;
    dsv3_err err = {{0}};
    int ok = expect_err(parse_v3(&c, e, 3, &err), &err, DSV3_OK, NULL);
    ok &= check_inv_freq(&c, 0, 3, 0, 3);
    /* without YaRN every pair is plain RoPE */
    const edit e2[] = {{"qk_rope_head_dim", "16"}, {"rope_scaling", "null"}};
    ok &= expect_err(parse_v3(&c, e2, 2, &err), &err, DSV3_OK, NULL);
    ok &= check_inv_freq(&c, 7, 8, 0, 1);
    return ok;
}

/* ---------------------------------------------------------------- runner --------------- */

static const dsv3_test tests[] = {
    {"test_config_parses_v3", test_config_parses_v3},
    {"test_config_load_reads_file_and_names_missing_path",
     test_config_load_reads_file_and_names_missing_path},
    {"test_config_rejects_each_missing_required_key",
     test_config_rejects_each_missing_required_key},
    {"test_config_moe_keys_optional_when_all_layers_dense",
     test_config_moe_keys_optional_when_all_layers_dense},
    {"test_config_rejects_n_group_not_dividing_experts",
     test_config_rejects_n_group_not_dividing_experts},
    {"test_config_rejects_topk_group_above_n_group", test_config_rejects_topk_group_above_n_group},
    {"test_config_rejects_too_many_experts_per_token",
     test_config_rejects_too_many_experts_per_token},
    {"test_config_rejects_kv_heads_unequal_to_heads",
     test_config_rejects_kv_heads_unequal_to_heads},
    {"test_config_rejects_odd_rope_dim", test_config_rejects_odd_rope_dim},
    {"test_config_rejects_dense_layers_beyond_depth",
     test_config_rejects_dense_layers_beyond_depth},
    {"test_config_rejects_unsupported_values_naming_the_key",
     test_config_rejects_unsupported_values_naming_the_key},
    {"test_config_parses_family_configs", test_config_parses_family_configs},
    {"test_config_applies_v2_defaults", test_config_applies_v2_defaults},
    {"test_config_rejects_unsupported_rope_and_quant",
     test_config_rejects_unsupported_rope_and_quant},
    {"test_config_rejects_out_of_range_values", test_config_rejects_out_of_range_values},
    {"test_config_rejects_wrong_types", test_config_rejects_wrong_types},
    {"test_config_rejects_invalid_json", test_config_rejects_invalid_json},
    {"test_config_rejects_garbage_after_json", test_config_rejects_garbage_after_json},
    {"test_config_rejects_duplicate_keys", test_config_rejects_duplicate_keys},
    {"test_config_applies_hf_defaults", test_config_applies_hf_defaults},
    {"test_config_applies_hf_moe_defaults", test_config_applies_hf_moe_defaults},
    {"test_config_q_lora_rank_null_selects_q_proj", test_config_q_lora_rank_null_selects_q_proj},
    {"test_config_v3_softmax_scale", test_config_v3_softmax_scale},
    {"test_config_v3_rope_inv_freq_ramp", test_config_v3_rope_inv_freq_ramp},
    {"test_config_tiny_rope_inv_freq_ramp", test_config_tiny_rope_inv_freq_ramp},
};

int main(int argc, char **argv) {
    return DSV3_RUN_BOOL_TESTS(tests, argc, argv);
}
