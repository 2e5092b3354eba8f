/* logits.c — `dsv3 logits MODEL_DIR --ids 1,2,3 [--out F.npy] [--mtp-out G.npy]
 *                 [--attn absorbed|naive]`
 *
 * Runs the exact FP32 forward over the ids from position 0 and writes float32 .npy arrays:
 * logits [T, vocab] for every position, and MTP logits [T-1, vocab] (row i predicts token i+2).
 * Without --out it prints the top-5 next tokens per position.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/run/forward.h"
#include "model/run/model.h"
#include "model/base/npy.h"
#include "model/run/mtp.h"
#include "repl/cli/cli.h"

static const char usage[] =
    "usage: dsv3 logits MODEL_DIR --ids 1,2,3 [--out logits.npy] [--mtp-out mtp.npy]\n"
    "                   [--attn absorbed|naive] [--backend fast|ref|devsim|cuda]\n";

static void print_top5(const float *row, int64_t V, int64_t pos, int32_t id) {
    int64_t best[5] = {-1, -1, -1, -1, -1};
    for (int64_t v = 0; v < V; v++) {
        for (int k = 0; k < 5; k++) {
            if (best[k] < 0 || row[v] > row[best[k]]) {
                memmove(best + k + 1, best + k, (size_t)(4 - k) * sizeof *best);
                best[k] = v;
                break;
            }
        }
    }
    printf("pos %lld id %d:", (long long)pos, id);
    for (int k = 0; k < 5 && best[k] >= 0; k++) printf(" %lld (%.4f)", (long long)best[k], row[best[k]]);
    printf("\n");
}

int dsv3_cli_logits(int argc, char **argv) {
    const char *dir = NULL, *ids_s = NULL, *out = NULL, *mtp_out = NULL, *backend = "fast";
    dsv3_attn_form attn = DSV3_ATTN_ABSORBED;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--ids") && v) ids_s = argv[++i];
        else if (!strcmp(a, "--out") && v) out = argv[++i];
        else if (!strcmp(a, "--mtp-out") && v) mtp_out = argv[++i];
        else if (!strcmp(a, "--backend") && v) backend = argv[++i];
        else if (!strcmp(a, "--attn") && v) {
            i++;
            if (!strcmp(v, "naive")) attn = DSV3_ATTN_NAIVE;
            else if (!strcmp(v, "absorbed")) attn = DSV3_ATTN_ABSORBED;
            else {
                fprintf(stderr, "dsv3 logits: --attn: '%s' is not absorbed or naive\n", v);
                return 2;
            }
        } else if (a[0] != '-' && !dir) dir = a;
        else {
            fprintf(stderr, "dsv3 logits: unknown or incomplete option '%s'\n%s", a, usage);
            return 2;
        }
    }
    if (!dir || !ids_s) {
        fprintf(stderr, "dsv3 logits: MODEL_DIR and --ids are required\n%s", usage);
        return 2;
    }
    dsv3_err err = {{0}};
    int32_t *ids = NULL;
    int64_t T = 0;
    dsv3_model *m = NULL;
    dsv3_run *run = NULL;
    float *logits = NULL, *hidden = NULL, *mtp = NULL;
    int rc = 1;
    if (!dsv3_cli_backend(backend, &err)) goto fail;
    if (dsv3_cli_parse_ids(ids_s, &ids, &T, &err)) goto fail;
    if (dsv3_cli_open_model(&m, NULL, dir, backend, &err)) goto fail;
    const dsv3_config *c = dsv3_model_config(m);
    if (T > c->max_position_embeddings) {
        dsv3_errf(&err, DSV3_EINVAL, "--ids: %lld tokens exceed max_position_embeddings %lld",
                  (long long)T, (long long)c->max_position_embeddings);
        goto fail;
    }
    if (mtp_out && !dsv3_model_has_mtp(m)) {
        dsv3_errf(&err, DSV3_EUNSUPPORTED, "--mtp-out: %s has no MTP layer", dir);
        goto fail;
    }
    const int64_t V = c->vocab_size, H = c->hidden_size;
    dsv3_run_opts opts = {.max_seq = T, .max_chunk = T, .attn = attn};
    if (dsv3_run_new(&run, m, &opts, &err)) goto fail;
    logits = malloc((size_t)(T * V) * sizeof *logits);
    hidden = malloc((size_t)(T * H) * sizeof *hidden);
    mtp = malloc((size_t)((T > 1 ? T - 1 : 1) * V) * sizeof *mtp);
    if (!logits || !hidden || !mtp) {
        dsv3_errf(&err, DSV3_ENOMEM, "out of memory for %lld x %lld logits", (long long)T, (long long)V);
        goto fail;
    }
    if (dsv3_forward(run, ids, T, logits, 0, hidden, &err)) goto fail;
    if (mtp_out && T > 1 && dsv3_forward_mtp(run, ids + 1, hidden, T - 1, mtp, 0, &err)) goto fail;
    if (out) {
        int64_t shape[2] = {T, V};
        if (dsv3_npy_write_f32(out, logits, 2, shape, &err)) goto fail;
    } else {
        for (int64_t t = 0; t < T; t++) print_top5(logits + t * V, V, t, ids[t]);
    }
    if (mtp_out) {
        int64_t shape[2] = {T - 1, V};
        if (dsv3_npy_write_f32(mtp_out, mtp, 2, shape, &err)) goto fail;
    }
    rc = 0;
fail:
    if (rc) fprintf(stderr, "dsv3 logits: %s\n", err.msg);
    free(ids);
    free(logits);
    free(hidden);
    free(mtp);
    dsv3_run_free(run);
    dsv3_model_close(m);
    return rc;
}
