/* scan.h — non-finite numbers and value ranges of checkpoint tensors.
 *
 * Owns the checks that keep NaN and infinity out of a model: a scan of one mapped tensor in its
 * stored dtype (count of non-finite values, the first one, the finite range) for `dsv3 check`,
 * and the load-time check of the float32 vectors a model decodes once (norm gains, router biases)
 * and of FP8 block scales (model.c). Integer dtypes have no non-finite values. Thread rules: no
 * shared state.
 */
#ifndef DSV3_SCAN_H
#define DSV3_SCAN_H

#include <stdint.h>

#include "model/base/status.h"
#include "model/run/safetensors.h"

/* What a scan found in one tensor. */
typedef struct {
    int64_t nonfinite; /* NaN or infinite values (E4M3: the NaN codes 0x7F, 0xFF) */
    int64_t nan;       /* of which NaN */
    int64_t first_bad; /* flat index of the first non-finite value, -1 if none */
    double min, max;   /* range of the finite values (0, 0 when there are none) */
    double min_abs;    /* smallest |x| over the finite values */
} dsv3_scan_stats;

/* Scans every value of t in its stored dtype. */
void dsv3_scan_tensor(dsv3_scan_stats *s, const dsv3_st_tensor *t);

/* 1 if some of the n float32 values x is NaN or infinite (the forward's check of its logits). */
int dsv3_scan_any_nonfinite(const float *x, int64_t n);

/* DSV3_OK if the n float32 values x are finite, else DSV3_EFORMAT with the message
 * "model: FILE: tensor NAME: value I of N is nan (WHAT must be finite)". */
dsv3_status dsv3_scan_require_finite(const float *x, int64_t n, const char *file, const char *name,
                                     const char *what, dsv3_err *err);

#endif
