/* info.c — `dsv3 info MODEL_DIR [--json]`
 *
 * Opens and binds a checkpoint (headers and the small vectors only: no weight is read) and says
 * what it is: the variant of the family the config names (docs/ARCHITECTURE.md, "Family"), its
 * routing rule, parameter counts (total, main model, MTP, active per token), weight bytes a
 * decode step reads, the dtype mix and the time the open took. Text on stdout, or one JSON
 * object with --json.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/base/clock.h"
#include "model/run/model.h"
#include "repl/cli/cli.h"

static const char usage[] = "usage: dsv3 info MODEL_DIR [--json]\n";

/* A name for what the config describes (a guess from the keys, for people; the math follows
 * the keys, not this name). */
static const char *variant_name(const dsv3_config *c, int has_mtp) {
    if (c->family == DSV3_FAMILY_V2)
        return c->topk_method == DSV3_TOPK_GREEDY ? "DeepSeek-V2-Lite-like (deepseek_v2, greedy)"
                                                  : "DeepSeek-V2-like (deepseek_v2)";
    if (c->n_group == 1 && !has_mtp)
        return c->q_lora_rank == 0 ? "Moonlight-like (deepseek_v3, one group, q_proj)"
                                   : "Kimi-K2-like (deepseek_v3, one group)";
    return "DeepSeek-V3-like (deepseek_v3)";
}

int dsv3_cli_info(int argc, char **argv) {
    const char *dir = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else {
            fprintf(stderr, "dsv3 info: unknown option '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "dsv3 info: MODEL_DIR is required\n%s", usage);
        return 2;
    }
    dsv3_err err = {{0}};
    dsv3_model *m = NULL;
    const double t0 = dsv3_now_s();
    if (dsv3_model_open(&m, dir, &err)) {
        fprintf(stderr, "dsv3 info: %s\n", err.msg);
        return 1;
    }
    const double open_s = dsv3_now_s() - t0;
    const dsv3_config *c = dsv3_model_config(m);
    dsv3_param_counts p;
    dsv3_model_param_counts(m, &p);
    uint64_t dt[DSV3_DT_COUNT];
    dsv3_model_dtype_bytes(m, dt);
    const int mtp = dsv3_model_has_mtp(m);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dir", dir);
    cJSON_AddStringToObject(o, "variant", variant_name(c, mtp));
    cJSON_AddStringToObject(o, "model_type", c->model_type);
    cJSON_AddStringToObject(o, "family", c->family == DSV3_FAMILY_V2 ? "deepseek_v2" : "deepseek_v3");
    cJSON_AddStringToObject(o, "scoring_func", dsv3_config_scoring_name(c->scoring_func));
    cJSON_AddStringToObject(o, "topk_method", dsv3_config_topk_method_name(c->topk_method));
    cJSON_AddNumberToObject(o, "layers", (double)c->num_hidden_layers);
    cJSON_AddNumberToObject(o, "dense_layers", (double)c->first_k_dense_replace);
    cJSON_AddNumberToObject(o, "routed_experts", (double)c->n_routed_experts);
    cJSON_AddNumberToObject(o, "experts_per_token", (double)c->num_experts_per_tok);
    cJSON_AddNumberToObject(o, "n_group", (double)c->n_group);
    cJSON_AddNumberToObject(o, "topk_group", (double)c->topk_group);
    cJSON_AddNumberToObject(o, "routed_scaling_factor", c->routed_scaling_factor);
    cJSON_AddBoolToObject(o, "norm_topk_prob", c->norm_topk_prob);
    cJSON_AddBoolToObject(o, "router_bias", dsv3_config_has_router_bias(c));
    cJSON_AddNumberToObject(o, "q_lora_rank", (double)c->q_lora_rank);
    cJSON_AddBoolToObject(o, "mtp", mtp);
    cJSON_AddBoolToObject(o, "fp8", c->fp8_block);
    cJSON *pj = cJSON_AddObjectToObject(o, "params");
    cJSON_AddNumberToObject(pj, "total", (double)p.total);
    cJSON_AddNumberToObject(pj, "main", (double)(p.total - p.mtp));
    cJSON_AddNumberToObject(pj, "mtp", (double)p.mtp);
    cJSON_AddNumberToObject(pj, "active", (double)p.active);
    cJSON_AddNumberToObject(pj, "embed", (double)p.embed);
    cJSON_AddNumberToObject(pj, "attention", (double)p.attention);
    cJSON_AddNumberToObject(pj, "dense_ffn", (double)p.dense_ffn);
    cJSON_AddNumberToObject(pj, "routed_experts", (double)p.routed_experts);
    cJSON_AddNumberToObject(pj, "shared_experts", (double)p.shared_experts);
    cJSON_AddNumberToObject(pj, "router", (double)p.router);
    cJSON_AddNumberToObject(pj, "norms", (double)p.norms);
    cJSON_AddNumberToObject(pj, "lm_head", (double)p.lm_head);
    cJSON_AddNumberToObject(o, "bytes_per_token", dsv3_model_active_bytes(m));
    cJSON_AddNumberToObject(o, "file_bytes", (double)dsv3_model_file_bytes(m));
    cJSON *dj = cJSON_AddObjectToObject(o, "dtype_bytes");
    for (int d = 0; d < DSV3_DT_COUNT; d++)
        if (dt[d]) cJSON_AddNumberToObject(dj, dsv3_dtype_name((dsv3_dtype)d), (double)dt[d]);
    cJSON_AddNumberToObject(o, "open_seconds", open_s);
    if (json) {
        char *s = cJSON_PrintUnformatted(o);
        if (s) printf("%s\n", s);
        free(s);
    } else {
        printf("%s: %s\n", dir, variant_name(c, mtp));
        printf("  model_type %s, scoring_func %s, topk_method %s, %lld experts (top %lld, %lld "
               "groups, %lld kept), scaling %g%s%s\n",
               c->model_type, dsv3_config_scoring_name(c->scoring_func),
               dsv3_config_topk_method_name(c->topk_method), (long long)c->n_routed_experts,
               (long long)c->num_experts_per_tok, (long long)c->n_group, (long long)c->topk_group,
               c->routed_scaling_factor, c->norm_topk_prob ? ", normalised" : "",
               dsv3_config_has_router_bias(c) ? ", router bias" : ", no router bias");
        printf("  params: total %.3fB = main %.3fB + MTP %.3fB; active per token %.3fB\n",
               (double)p.total / 1e9, (double)(p.total - p.mtp) / 1e9, (double)p.mtp / 1e9,
               (double)p.active / 1e9);
        printf("  bytes per token %.3f GB; files %.3f GB:", dsv3_model_active_bytes(m) / 1e9,
               (double)dsv3_model_file_bytes(m) / 1e9);
        for (int d = 0; d < DSV3_DT_COUNT; d++)
            if (dt[d]) printf(" %s %.3f GB", dsv3_dtype_name((dsv3_dtype)d), (double)dt[d] / 1e9);
        printf("\n  opened in %.3f s\n", open_s);
    }
    cJSON_Delete(o);
    dsv3_model_close(m);
    return 0;
}
