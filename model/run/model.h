/* model.h — a loaded DeepSeek-V3 model: config + mapped, validated weights.
 *
 * dsv3_model owns the checkpoint mapping and the binding of every tensor the config implies
 * (docs/ARCHITECTURE.md, "Checkpoint tensors") to a typed weight. Big weights stay mapped in their
 * stored dtype (resident memory ≈ the bytes actually touched); only 1-D vectors (norm weights,
 * router bias, RoPE frequencies) are copied to float32, into the backend's memory. The router
 * bias is the one mutable part (probes and training edit it through dsv3_model_set_bias).
 * Thread rules: after open, read-only except the bias; share freely between runs.
 */
#ifndef DSV3_MODEL_H
#define DSV3_MODEL_H

#include <stdint.h>

#include "kernels/backend.h"
#include "model/run/config.h"
#include "model/base/status.h"

typedef struct dsv3_model dsv3_model;

/* Opens the model directory: config.json and the safetensors checkpoint. Checks that every
 * tensor the config implies is present with the right shape and a supported dtype (F32, BF16,
 * F16, F8_E4M3 with a matching weight_scale_inv). Tensors the config does not use are reported
 * through dsv3_model_warnings. On failure *out is NULL and err names the file and tensor. */
dsv3_status dsv3_model_open(dsv3_model **out, const char *dir, dsv3_err *err);

/* dsv3_model_open reporting progress (shards opened, layers bound) to fn, for front ends that
 * show a progress bar on big checkpoints. fn may be NULL. */
dsv3_status dsv3_model_open_progress(dsv3_model **out, const char *dir,
                                     void (*fn)(void *ud, const char *what, int64_t done,
                                                int64_t total),
                                     void *ud, dsv3_err *err);

/* Unmaps and frees. NULL is a no-op. */
void dsv3_model_close(dsv3_model *m);

const dsv3_config *dsv3_model_config(const dsv3_model *m);

/* Warnings gathered at open (one per line, e.g. unknown tensors), or "" when none. Owned by m. */
const char *dsv3_model_warnings(const dsv3_model *m);

/* Bytes of the mapped checkpoint files. */
uint64_t dsv3_model_file_bytes(const dsv3_model *m);

/* The dtype mix of the checkpoint: bytes[dt] (DSV3_DT_COUNT entries, overwritten) = bytes of
 * the tensors stored in dtype dt, every tensor counted (FP8 scales, unused tensors); reads only
 * the headers. */
void dsv3_model_dtype_bytes(const dsv3_model *m, uint64_t *bytes);

/* Selects the backend used by forward passes (default: dsv3_backend_fast(); the reference is
 * dsv3_backend_cpu()). NULL selects the reference. A backend whose memory is not host memory
 * gets the model's vectors (norm gains, RoPE frequencies, router biases) uploaded into one
 * arena of its memory; DSV3_ENOMEM when that fails (the model keeps its backend). Runs made
 * under a backend whose memory is elsewhere must be remade. */
dsv3_status dsv3_model_set_backend(dsv3_model *m, const dsv3_backend *be, dsv3_err *err);
const dsv3_backend *dsv3_model_backend(const dsv3_model *m);

/* 1 if the checkpoint holds the MTP module (num_nextn_predict_layers = 1). */
int dsv3_model_has_mtp(const dsv3_model *m);

/* Parameter counts by component (elements, whatever their dtype); V3's in docs/ARCHITECTURE.md,
 * "Checkpoint tensors". */
typedef struct {
    int64_t embed;          /* model.embed_tokens */
    int64_t attention;      /* all MLA projections and their latent norms, main layers */
    int64_t dense_ffn;      /* dense FFN layers */
    int64_t routed_experts; /* all routed experts of all MoE layers */
    int64_t shared_experts; /* shared experts */
    int64_t router;         /* gate weights + biases */
    int64_t norms;          /* layer norms + final norm */
    int64_t lm_head;
    int64_t mtp;            /* MTP module (counting its embedding/head copies) */
    int64_t total;          /* sum of the above */
    int64_t active;         /* per token in the main model: all but unchosen routed experts and
                               the embedding table (one row is read) */
} dsv3_param_counts;

void dsv3_model_param_counts(const dsv3_model *m, dsv3_param_counts *out);

/* Bytes of weights (stored dtype, FP8 scales included) one decode step of the main model must
 * read: every attention, dense, router and shared-expert weight, num_experts_per_tok routed
 * experts per MoE layer (average expert size), the lm_head and one embedding row. Divided by the
 * memory bandwidth this bounds decode tokens/s (the roofline). */
double dsv3_model_active_bytes(const dsv3_model *m);

/* The router bias e_score_correction_bias of layer li (main layers 0..L-1, the MTP block at L):
 * [n_routed_experts] float32, a host copy valid until the next edit. NULL if the layer is not
 * a MoE layer (or out of range). */
const float *dsv3_model_bias(const dsv3_model *m, int64_t li);

/* Sets layer li's bias to values[n_routed_experts]: every run of this model routes with it
 * from the next forward on (the backend's copy is updated here). DSV3_EINVAL if li is not a
 * MoE layer. */
dsv3_status dsv3_model_set_bias(dsv3_model *m, int64_t li, const float *values, dsv3_err *err);

/* Restores the checkpoint's bias of layer li, or of every layer when li < 0. */
void dsv3_model_bias_reset(dsv3_model *m, int64_t li);

/* Final norm + lm_head on x[n, H] (e.g. a layer's residual stream: the logit lens), into
 * logits[n, vocab]; all host arrays. scratch holds n * H floats. DSV3_ENOMEM only on backends
 * whose memory is elsewhere (they need two temporary buffers). */
dsv3_status dsv3_model_lens(const dsv3_model *m, const float *x, int64_t n, float *scratch,
                            float *logits, dsv3_err *err);

/* The model directory as opened. */
const char *dsv3_model_dir(const dsv3_model *m);

#endif
