/* route.c — `dsv3 route MODEL_DIR (--prompt TEXT | --ids 1,2,3) [--json]`
 *
 * The routing record of the main model's MoE layers for one forward pass from position 0:
 * per layer and token the chosen experts (descending biased score), their combine weights,
 * unbiased and biased scores, the kept groups, and the zero-bias choice. --json prints the
 * record as one JSON object; otherwise one line per token and layer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/run/forward.h"
#include "model/run/model.h"
#include "model/text/tokenizer.h"
#include "probes/probe.h"
#include "probes/routing.h"
#include "repl/cli/cli.h"

static const char usage[] =
    "usage: dsv3 route MODEL_DIR (--prompt TEXT | --ids 1,2,3) [--json] [--backend fast|ref|devsim|cuda]\n";

static const char *piece_of(const void *ud, int32_t id) {
    return dsv3_tokenizer_piece(ud, id);
}

int dsv3_cli_route(int argc, char **argv) {
    const char *dir = NULL, *prompt = NULL, *ids_s = NULL, *backend = "fast";
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = argv[++i];
        else if (!strcmp(argv[i], "--ids") && i + 1 < argc) ids_s = argv[++i];
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else {
            fprintf(stderr, "dsv3 route: unknown or incomplete option '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!dir || !prompt == !ids_s) {
        fprintf(stderr, "dsv3 route: MODEL_DIR and exactly one of --prompt / --ids are required\n%s", usage);
        return 2;
    }
    dsv3_err err = {{0}};
    dsv3_model *m = NULL;
    dsv3_tokenizer *tok = NULL;
    dsv3_routerec rec = {0};
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = 1;
    if (dsv3_cli_open_model(&m, &tok, dir, backend, &err)) goto fail;
    const dsv3_config *c = dsv3_model_config(m);
    if (prompt) {
        size_t k = 0;
        if (!tok) {
            dsv3_errf(&err, DSV3_EINVAL, "--prompt: %s has no tokenizer.json (use --ids)%s", dir,
                      dsv3_cli_has_tiktoken(dir) ? "; its tiktoken.model format is not supported" : "");
            goto fail;
        }
        if (dsv3_tokenizer_encode(tok, &ids, &k, prompt, strlen(prompt), 1, &err)) goto fail;
        n = (int64_t)k;
    } else if (dsv3_cli_parse_ids(ids_s, &ids, &n, &err)) {
        goto fail;
    }
    if (dsv3_probe_check_len(m, n, &err) ||
        dsv3_routerec_init(&rec, c->n_routed_experts, c->num_experts_per_tok, c->n_group, &err) ||
        dsv3_routerec_collect(&rec, m, ids, n, NULL, &err))
        goto fail;
    if (json) {
        char *s = dsv3_routerec_json(&rec, c->num_hidden_layers, tok ? piece_of : NULL, tok);
        if (!s) {
            dsv3_errf(&err, DSV3_ENOMEM, "out of memory");
            goto fail;
        }
        printf("%s\n", s);
        free(s);
    } else {
        for (int64_t i = 0; i < rec.n; i++) {
            printf("layer %lld pos %lld token %d:", (long long)rec.layer[i], (long long)rec.pos[i], rec.token[i]);
            for (int64_t k = 0; k < rec.K; k++)
                printf(" %d(%.3f)", rec.experts[i * rec.K + k], rec.weights[i * rec.K + k]);
            printf("%s\n", dsv3_routerec_bias_changed(&rec, i) ? "  [bias changed the choice]" : "");
        }
    }
    rc = 0;
fail:
    if (rc) fprintf(stderr, "dsv3 route: %s\n", err.msg);
    dsv3_routerec_fini(&rec);
    free(ids);
    dsv3_tokenizer_close(tok);
    dsv3_model_close(m);
    return rc;
}
