/* sample.h — turning logits into tokens: greedy, temperature, top-k, top-p, seeded RNG.
 *
 * Pure functions over caller-owned buffers; no allocation. The RNG is xoshiro256** seeded by
 * splitmix64, so a seed reproduces a run on every machine. Thread rules: a dsv3_rng belongs to
 * one thread.
 */
#ifndef DSV3_SAMPLE_H
#define DSV3_SAMPLE_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} dsv3_rng;

/* Options of one sampler. temperature <= 0 or greedy = 1 means argmax. top_k <= 0 and
 * top_p >= 1 disable those filters. */
typedef struct {
    int greedy;
    float temperature; /* logits are divided by max(temperature, 1e-5) */
    int top_k;         /* keep the k most likely tokens */
    float top_p;       /* keep the smallest set whose probability reaches top_p */
} dsv3_sample_opts;

void dsv3_rng_seed(dsv3_rng *r, uint64_t seed);
/* Uniform double in [0, 1). */
double dsv3_rng_uniform(dsv3_rng *r);

/* Index of the largest logit; ties go to the lower index. */
int32_t dsv3_argmax(const float *logits, int64_t V);

/* probs[V] = the sampling distribution of opts over logits[V] (temperature, then top-k, then
 * top-p, renormalised; zeros outside the kept set). For a greedy sampler: one-hot at argmax.
 * order[V] is scratch. */
void dsv3_sample_probs(float *probs, const float *logits, int64_t V, const dsv3_sample_opts *o,
                       int32_t *order);

/* Draws an index from probs[V] (which need not be normalised; its sum must be > 0). */
int32_t dsv3_sample_draw(const float *probs, int64_t V, dsv3_rng *r);

#endif
