/* scan.c — non-finite values and ranges of tensors (see scan.h). */
#include "model/run/scan.h"

#include <math.h>
#include <string.h>

#include "kernels/dtype.h"

/* The value at flat index i as a double (exact; NaN and infinities kept). */
static double value_at(const dsv3_st_tensor *t, int64_t i) {
    const unsigned char *p = (const unsigned char *)t->data;
    uint16_t h;
    uint32_t u;
    uint64_t q;
    float f;
    double d;
    switch (t->dtype) {
    case DSV3_DT_F32:
        memcpy(&u, p + 4 * i, 4);
        memcpy(&f, &u, 4);
        return f;
    case DSV3_DT_F64:
        memcpy(&q, p + 8 * i, 8);
        memcpy(&d, &q, 8);
        return d;
    case DSV3_DT_BF16:
        memcpy(&h, p + 2 * i, 2);
        return dsv3_bf16_to_f32(h);
    case DSV3_DT_F16:
        memcpy(&h, p + 2 * i, 2);
        return dsv3_f16_to_f32(h);
    case DSV3_DT_F8_E4M3:
        return dsv3_e4m3_table[p[i]];
    case DSV3_DT_F8_E5M2: { /* the high byte of an IEEE half */
        return dsv3_f16_to_f32((uint16_t)(p[i] << 8));
    }
    case DSV3_DT_BOOL:
    case DSV3_DT_U8:
        return p[i];
    case DSV3_DT_I8:
        return (int8_t)p[i];
    case DSV3_DT_I16: {
        int16_t v;
        memcpy(&v, p + 2 * i, 2);
        return v;
    }
    case DSV3_DT_U16: {
        uint16_t v;
        memcpy(&v, p + 2 * i, 2);
        return v;
    }
    case DSV3_DT_I32: {
        int32_t v;
        memcpy(&v, p + 4 * i, 4);
        return v;
    }
    case DSV3_DT_U32: {
        uint32_t v;
        memcpy(&v, p + 4 * i, 4);
        return v;
    }
    case DSV3_DT_I64: {
        int64_t v;
        memcpy(&v, p + 8 * i, 8);
        return (double)v;
    }
    case DSV3_DT_U64: {
        uint64_t v;
        memcpy(&v, p + 8 * i, 8);
        return (double)v;
    }
    default:
        return 0.0;
    }
}

void dsv3_scan_tensor(dsv3_scan_stats *s, const dsv3_st_tensor *t) {
    memset(s, 0, sizeof *s);
    s->first_bad = -1;
    int any = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        const double v = value_at(t, i);
        if (!isfinite(v)) {
            if (s->first_bad < 0) s->first_bad = i;
            s->nonfinite++;
            s->nan += isnan(v) != 0;
            continue;
        }
        if (!any) {
            s->min = s->max = v;
            s->min_abs = fabs(v);
            any = 1;
        }
        s->min = v < s->min ? v : s->min;
        s->max = v > s->max ? v : s->max;
        s->min_abs = fabs(v) < s->min_abs ? fabs(v) : s->min_abs;
    }
}

dsv3_status dsv3_scan_require_finite(const float *x, int64_t n, const char *file, const char *name,
                                     const char *what, dsv3_err *err) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return dsv3_errf(err, DSV3_EFORMAT,
                             "model: %s: tensor %s: value %lld of %lld is %s (%s must be finite)",
                             file, name, (long long)i, (long long)n,
                             isnan(x[i]) ? "nan"
                             : x[i] > 0  ? "inf"
                                         : "-inf",
                             what);
    return DSV3_OK;
}

int dsv3_scan_any_nonfinite(const float *x, int64_t n) {
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (int64_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    return bad;
}
