/* checkpoint.c — atomic safetensors writing, FP8/F16 encoders, metadata reading (see
 * checkpoint.h). Layout per docs/ARCHITECTURE.md, "safetensors". */
#include "model/train/checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/base/strbuf.h"

/* ---------------------------------------------------------------- encoders ------------- */

/* IEEE binary16 with RNE; exponent overflow gives infinity. */
uint16_t dsv3_tckpt_f32_to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;
    if (a >= 0x477ff000u) return sign | 0x7c00;        /* rounds to >= 65520: infinity */
    if (a < 0x38800000u) {                              /* below 2^-14: subnormal, grid 2^-24 */
        float ax;
        memcpy(&ax, &a, 4);
        return sign | (uint16_t)rintf(ax * 16777216.0f);
    }
    const uint32_t r = (a + 0xfffu + ((a >> 13) & 1u)) >> 13;
    return sign | (uint16_t)(r - (112u << 10));
}

/* ---------------------------------------------------------------- atomic files --------- */

typedef struct {
    char tmp[4200];
    const char *path;
    FILE *f;
} atomic_file;

static dsv3_status atomic_open(atomic_file *a, const char *path, dsv3_err *err) {
    a->path = path;
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%d", path, (int)getpid());
    if (!(a->f = fopen(a->tmp, "wb")))
        return dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", a->tmp, strerror(errno));
    return DSV3_OK;
}

static void atomic_abort(atomic_file *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
}

/* fflush + fsync + close + rename + fsync of the directory. */
static dsv3_status atomic_commit(atomic_file *a, dsv3_err *err) {
    if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0) {
        dsv3_status st = dsv3_errf(err, DSV3_EIO, "checkpoint: %s: write: %s", a->tmp, strerror(errno));
        atomic_abort(a);
        return st;
    }
    int rc = fclose(a->f);
    a->f = NULL;
    if (rc != 0 || rename(a->tmp, a->path) != 0) {
        dsv3_status st = dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", a->path, strerror(errno));
        unlink(a->tmp);
        return st;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", a->path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: some filesystems refuse fsync on directories */
        close(fd);
    }
    return DSV3_OK;
}

dsv3_status dsv3_tckpt_write_text(const char *dst, const char *text, size_t len, dsv3_err *err) {
    atomic_file a;
    dsv3_status st = atomic_open(&a, dst, err);
    if (st) return st;
    if (fwrite(text, 1, len, a.f) != len) {
        st = dsv3_errf(err, DSV3_EIO, "checkpoint: %s: write: %s", a.tmp, strerror(errno));
        atomic_abort(&a);
        return st;
    }
    return atomic_commit(&a, err);
}

dsv3_status dsv3_tckpt_copy_file(const char *dst, const char *src, dsv3_err *err) {
    FILE *in = fopen(src, "rb");
    if (!in) return dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", src, strerror(errno));
    atomic_file a;
    dsv3_status st = atomic_open(&a, dst, err);
    if (st) {
        fclose(in);
        return st;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, a.f) != n) break;
    const int bad = ferror(in) || ferror(a.f);
    fclose(in);
    if (bad) {
        st = dsv3_errf(err, DSV3_EIO, "checkpoint: copying %s to %s failed", src, dst);
        atomic_abort(&a);
        return st;
    }
    return atomic_commit(&a, err);
}

/* ---------------------------------------------------------------- safetensors writer --- */

/* A JSON string (names and metadata values: escape quotes, backslashes and controls). */
static void put_str(dsv3_strbuf *b, const char *s) {
    dsv3_strbuf_printf(b, "\"");
    for (; *s; s++) {
        const unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') dsv3_strbuf_printf(b, "\\%c", ch);
        else if (ch < 0x20) dsv3_strbuf_printf(b, "\\u%04x", ch);
        else dsv3_strbuf_printf(b, "%c", ch);
    }
    dsv3_strbuf_printf(b, "\"");
}

static int by_size_then_name(const void *a, const void *b) {
    const dsv3_tckpt_entry *x = *(const dsv3_tckpt_entry *const *)a;
    const dsv3_tckpt_entry *y = *(const dsv3_tckpt_entry *const *)b;
    const size_t sx = dsv3_dtype_size(x->dtype), sy = dsv3_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int64_t numel(const dsv3_tckpt_entry *e) {
    return e->ndim == 1 ? e->shape[0] : e->shape[0] * e->shape[1];
}

/* Writes e's bytes: raw as is, float32 sources encoded 4096 elements at a time. */
static int write_entry(FILE *f, const dsv3_tckpt_entry *e) {
    const int64_t n = numel(e);
    const size_t es = dsv3_dtype_size(e->dtype);
    if (!e->f32) return fwrite(e->raw, es, (size_t)n, f) == (size_t)n ? 0 : -1;
    unsigned char buf[4096 * 4];
    for (int64_t i0 = 0; i0 < n; i0 += 4096) {
        const int64_t m = n - i0 < 4096 ? n - i0 : 4096;
        const float *src = e->f32 + i0;
        for (int64_t i = 0; i < m; i++) {
            if (e->dtype == DSV3_DT_F32) {
                memcpy(buf + 4 * i, &src[i], 4);
            } else {
                const uint16_t h = e->dtype == DSV3_DT_BF16 ? dsv3_f32_to_bf16(src[i])
                                                            : dsv3_tckpt_f32_to_f16(src[i]);
                buf[2 * i] = (unsigned char)(h & 0xff);
                buf[2 * i + 1] = (unsigned char)(h >> 8);
            }
        }
        if (fwrite(buf, es, (size_t)m, f) != (size_t)m) return -1;
    }
    return 0;
}

dsv3_status dsv3_tckpt_write(const char *path, const dsv3_tckpt_entry *e, size_t n,
                             const char *const *meta, size_t n_meta, dsv3_err *err) {
    for (size_t i = 0; i < n; i++)
        if (e[i].f32 && e[i].dtype != DSV3_DT_F32 && e[i].dtype != DSV3_DT_BF16 &&
            e[i].dtype != DSV3_DT_F16)
            return dsv3_errf(err, DSV3_EDTYPE, "checkpoint: %s: tensor %s: cannot encode float32 as %s",
                             path, e[i].name, dsv3_dtype_name(e[i].dtype));
    const dsv3_tckpt_entry **order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return dsv3_errf(err, DSV3_ENOMEM, "checkpoint: %s: out of memory", path);
    for (size_t i = 0; i < n; i++) order[i] = &e[i];
    qsort(order, n, sizeof *order, by_size_then_name);
    dsv3_strbuf h = {0};
    dsv3_strbuf_printf(&h, "{\"__metadata__\":{");
    for (size_t i = 0; i < n_meta; i++) {
        dsv3_strbuf_printf(&h, i ? "," : "");
        put_str(&h, meta[2 * i]);
        dsv3_strbuf_printf(&h, ":");
        put_str(&h, meta[2 * i + 1]);
    }
    dsv3_strbuf_printf(&h, "}");
    uint64_t off = 0;
    for (size_t k = 0; k < n; k++) {
        const dsv3_tckpt_entry *t = order[k];
        const uint64_t bytes = (uint64_t)numel(t) * dsv3_dtype_size(t->dtype);
        dsv3_strbuf_printf(&h, ",");
        put_str(&h, t->name);
        dsv3_strbuf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[%lld", dsv3_dtype_name(t->dtype), (long long)t->shape[0]);
        if (t->ndim == 2) dsv3_strbuf_printf(&h, ",%lld", (long long)t->shape[1]);
        dsv3_strbuf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
            (unsigned long long)(off + bytes));
        off += bytes;
    }
    dsv3_strbuf_printf(&h, "}");
    while (!h.oom && (8 + h.len) % 8) dsv3_strbuf_printf(&h, " ");
    dsv3_status st = DSV3_OK;
    if (h.oom) {
        st = dsv3_errf(err, DSV3_ENOMEM, "checkpoint: %s: out of memory", path);
        goto done;
    }
    atomic_file a;
    if ((st = atomic_open(&a, path, err))) goto done;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int bad = fwrite(len8, 1, 8, a.f) != 8 || fwrite(h.s, 1, h.len, a.f) != h.len;
    for (size_t k = 0; k < n && !bad; k++) bad = write_entry(a.f, order[k]);
    if (bad) {
        st = dsv3_errf(err, DSV3_EIO, "checkpoint: %s: write: %s", a.tmp, strerror(errno));
        atomic_abort(&a);
        goto done;
    }
    st = atomic_commit(&a, err);
done:
    free(h.s);
    free(order);
    return st;
}

/* ---------------------------------------------------------------- metadata reading ----- */

void dsv3_tckpt_meta_fini(dsv3_tckpt_meta *m) {
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

const char *dsv3_tckpt_meta_get(const dsv3_tckpt_meta *m, const char *key) {
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->keys[i], key)) return m->vals[i];
    return NULL;
}

dsv3_status dsv3_tckpt_meta_read(dsv3_tckpt_meta *m, const char *path, dsv3_err *err) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", path, strerror(errno));
    unsigned char len8[8];
    uint64_t hl = 0;
    dsv3_status st = DSV3_OK;
    char *hdr = NULL;
    cJSON *root = NULL;
    if (fread(len8, 1, 8, f) != 8) {
        st = dsv3_errf(err, DSV3_EFORMAT, "checkpoint: %s: shorter than a safetensors header", path);
        goto done;
    }
    for (int i = 0; i < 8; i++) hl |= (uint64_t)len8[i] << (8 * i);
    if (hl > ((uint64_t)100 << 20)) {
        st = dsv3_errf(err, DSV3_EFORMAT, "checkpoint: %s: header length %llu too large", path,
                       (unsigned long long)hl);
        goto done;
    }
    if (!(hdr = malloc((size_t)hl + 1))) {
        st = dsv3_errf(err, DSV3_ENOMEM, "checkpoint: %s: out of memory", path);
        goto done;
    }
    if (fread(hdr, 1, (size_t)hl, f) != (size_t)hl) {
        st = dsv3_errf(err, DSV3_EFORMAT, "checkpoint: %s: truncated header", path);
        goto done;
    }
    hdr[hl] = 0;
    if (!(root = cJSON_Parse(hdr))) {
        st = dsv3_errf(err, DSV3_EFORMAT, "checkpoint: %s: header is not JSON", path);
        goto done;
    }
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    if (!md) goto done;
    const int cnt = cJSON_GetArraySize(md);
    m->keys = calloc((size_t)(cnt > 0 ? cnt : 1), sizeof *m->keys);
    m->vals = calloc((size_t)(cnt > 0 ? cnt : 1), sizeof *m->vals);
    if (!m->keys || !m->vals) {
        st = dsv3_errf(err, DSV3_ENOMEM, "checkpoint: %s: out of memory", path);
        goto done;
    }
    for (const cJSON *it = md->child; it; it = it->next) {
        if (!cJSON_IsString(it)) {
            st = dsv3_errf(err, DSV3_EFORMAT, "checkpoint: %s: __metadata__.%s is not a string", path,
                           it->string);
            goto done;
        }
        m->keys[m->n] = strdup(it->string);
        m->vals[m->n] = strdup(it->valuestring);
        m->n++;
        if (!m->keys[m->n - 1] || !m->vals[m->n - 1]) {
            st = dsv3_errf(err, DSV3_ENOMEM, "checkpoint: %s: out of memory", path);
            goto done;
        }
    }
done:
    if (st) dsv3_tckpt_meta_fini(m);
    cJSON_Delete(root);
    free(hdr);
    fclose(f);
    return st;
}
