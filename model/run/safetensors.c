/* safetensors.c — mapping and strict validation of safetensors files (see safetensors.h).
 *
 * Format (docs/ARCHITECTURE.md, "safetensors"): u64 little-endian header length N, N bytes of JSON,
 * then the data section. The whole header is checked before any tensor is handed out, so later code
 * can index tensor bytes without further bounds checks.
 */
#include "model/run/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/base/file.h"

/* Headers larger than this are refused before parsing (the reference library uses 100 MB). */
#define MAX_HEADER ((uint64_t)100 << 20)

struct dsv3_st_file {
    char *path;             /* as opened */
    void *map;              /* mmap of the whole file, or NULL for a memory image */
    size_t map_len;         /* mapped length */
    dsv3_st_tensor *t;      /* tensors, sorted by name */
    size_t n;               /* number of tensors */
    void **copies;          /* heap copies of tensors whose bytes were misaligned */
    size_t ncopies;
};

/* ---------------------------------------------------------------- header parsing ------- */

static int by_name(const void *a, const void *b) {
    return strcmp(((const dsv3_st_tensor *)a)->name, ((const dsv3_st_tensor *)b)->name);
}

typedef struct {
    uint64_t begin, end;
    const char *name;
} span;

static int by_begin(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Reads a JSON number that must be a non-negative integer below 2^53 (exact in a double). */
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static dsv3_status parse_entry(dsv3_st_tensor *t, span *sp, const cJSON *e, uint64_t data_len,
                               const char *where, dsv3_err *err) {
    const char *nm = e->string;
    if (!cJSON_IsObject(e))
        return dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: tensor %s: entry is not an object",
                         where, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: tensor %s: missing string 'dtype'",
                         where, nm);
    if (dsv3_dtype_parse(dt->valuestring, &t->dtype) != 0)
        return dsv3_errf(err, DSV3_EDTYPE, "safetensors: %s: tensor %s: unknown dtype \"%.32s\"",
                         where, nm, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: tensor %s: missing array 'shape'",
                         where, nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > DSV3_ST_MAX_DIMS)
        return dsv3_errf(err, DSV3_ESHAPE, "safetensors: %s: tensor %s: %d dims (max %d)", where,
                         nm, nd, DSV3_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(cJSON_GetArrayItem(sh, i), &d) != 0)
            return dsv3_errf(err, DSV3_ESHAPE,
                             "safetensors: %s: tensor %s: shape[%d] is not a non-negative integer",
                             where, nm, i);
        t->shape[i] = (int64_t)d;
        if (d && numel > UINT64_MAX / d) overflow = 1;
        numel *= d;
    }
    size_t esz = dsv3_dtype_size(t->dtype);
    if (overflow || numel > UINT64_MAX / esz)
        return dsv3_errf(err, DSV3_ESHAPE, "safetensors: %s: tensor %s: shape overflows", where,
                         nm);
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)(numel * esz);
    uint64_t b, en;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
        json_u64(cJSON_GetArrayItem(of, 0), &b) != 0 || json_u64(cJSON_GetArrayItem(of, 1), &en) != 0)
        return dsv3_errf(err, DSV3_EFORMAT,
                         "safetensors: %s: tensor %s: 'data_offsets' must be [begin, end] integers",
                         where, nm);
    if (b > en || en > data_len)
        return dsv3_errf(err, DSV3_EFORMAT,
                         "safetensors: %s: tensor %s: data_offsets [%llu, %llu] outside the data section of %llu bytes",
                         where, nm, (unsigned long long)b, (unsigned long long)en,
                         (unsigned long long)data_len);
    if (en - b != numel * esz)
        return dsv3_errf(err, DSV3_ESHAPE,
                         "safetensors: %s: tensor %s: %llu bytes for shape of %llu x %s (%llu bytes expected)",
                         where, nm, (unsigned long long)(en - b), (unsigned long long)numel,
                         dsv3_dtype_name(t->dtype), (unsigned long long)(numel * esz));
    sp->begin = b;
    sp->end = en;
    sp->name = nm;
    return DSV3_OK;
}

/* Validates the image [base, base + len) and fills f's tensor table. */
static dsv3_status parse_image(dsv3_st_file *f, const unsigned char *base, size_t len,
                               const char *where, dsv3_err *err) {
    if (len < 8)
        return dsv3_errf(err, DSV3_EFORMAT,
                         "safetensors: %s: truncated: %zu bytes, the 8-byte header length is missing",
                         where, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    if (hlen > MAX_HEADER)
        return dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: header length %llu exceeds the 100 MiB limit",
                         where, (unsigned long long)hlen);
    if (hlen > len - 8)
        return dsv3_errf(err, DSV3_EFORMAT,
                         "safetensors: %s: header length %llu larger than the file (%zu bytes): truncated?",
                         where, (unsigned long long)hlen, len);
    const char *hdr = (const char *)base + 8;
    const uint64_t data_len = len - 8 - hlen;
    const char *json_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &json_end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= hdr && at <= hdr + hlen ? (long)(at - hdr) : -1;
        return dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: header is not valid JSON (near byte %ld)",
                         where, off);
    }
    dsv3_status st = DSV3_OK;
    span *spans = NULL;
    if (!cJSON_IsObject(root)) {
        st = dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: header is not a JSON object", where);
        goto done;
    }
    /* Trailing bytes of the header may only be padding whitespace; cJSON stops at the object. */
    for (const char *p = json_end; p && p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = dsv3_errf(err, DSV3_EFORMAT,
                           "safetensors: %s: header has bytes after its JSON object (byte %ld)",
                           where, (long)(p - hdr));
            goto done;
        }
    size_t cnt = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) cnt++;
    f->t = calloc(cnt ? cnt : 1, sizeof *f->t);
    spans = calloc(cnt ? cnt : 1, sizeof *spans);
    if (!f->t || !spans) {
        st = dsv3_errf(err, DSV3_ENOMEM, "safetensors: %s: out of memory", where);
        goto done;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                st = dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: __metadata__ is not an object",
                               where);
                goto done;
            }
            continue;
        }
        dsv3_st_tensor *t = &f->t[f->n];
        if ((st = parse_entry(t, &spans[f->n], e, data_len, where, err))) goto done;
        if (!(t->name = strdup(e->string))) {
            st = dsv3_errf(err, DSV3_ENOMEM, "safetensors: %s: out of memory", where);
            goto done;
        }
        t->file = f->path;
        t->data = base + 8 + hlen + spans[f->n].begin;
        spans[f->n].name = t->name;
        f->n++;
    }
    /* Offsets must tile the data section: sorted by begin, each starts where the last ended. */
    qsort(spans, f->n, sizeof *spans, by_begin);
    uint64_t at = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (spans[i].begin < at) {
            st = dsv3_errf(err, DSV3_EFORMAT,
                           "safetensors: %s: tensor %s: data_offsets [%llu, %llu] overlap tensor %s",
                           where, spans[i].name, (unsigned long long)spans[i].begin,
                           (unsigned long long)spans[i].end, spans[i - 1].name);
            goto done;
        }
        if (spans[i].begin > at) {
            st = dsv3_errf(err, DSV3_EFORMAT,
                           "safetensors: %s: tensor %s: gap of %llu unused bytes before it",
                           where, spans[i].name, (unsigned long long)(spans[i].begin - at));
            goto done;
        }
        at = spans[i].end;
    }
    if (at != data_len) {
        st = dsv3_errf(err, DSV3_EFORMAT,
                       "safetensors: %s: %llu trailing bytes after the last tensor", where,
                       (unsigned long long)(data_len - at));
        goto done;
    }
    qsort(f->t, f->n, sizeof *f->t, by_name);
    for (size_t i = 1; i < f->n; i++)
        if (strcmp(f->t[i - 1].name, f->t[i].name) == 0) {
            st = dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: tensor %s: listed twice", where,
                           f->t[i].name);
            goto done;
        }
    /* Misaligned tensors (possible when odd-sized tensors precede them) get an aligned copy, so
     * kernels may load elements directly. */
    for (size_t i = 0; i < f->n; i++) {
        size_t esz = dsv3_dtype_size(f->t[i].dtype);
        if (((uintptr_t)f->t[i].data % esz) == 0 || f->t[i].nbytes == 0) continue;
        void **nc = realloc(f->copies, (f->ncopies + 1) * sizeof *nc);
        if (!nc) {
            st = dsv3_errf(err, DSV3_ENOMEM, "safetensors: %s: out of memory", where);
            goto done;
        }
        f->copies = nc;
        void *cp = aligned_alloc(64, (f->t[i].nbytes + 63) / 64 * 64);
        if (!cp) {
            st = dsv3_errf(err, DSV3_ENOMEM, "safetensors: %s: tensor %s: out of memory", where,
                           f->t[i].name);
            goto done;
        }
        memcpy(cp, f->t[i].data, f->t[i].nbytes);
        f->copies[f->ncopies++] = cp;
        f->t[i].data = cp;
    }
done:
    free(spans);
    cJSON_Delete(root);
    return st;
}

/* ---------------------------------------------------------------- file handles --------- */

void dsv3_st_close(dsv3_st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free((char *)f->t[i].name);
    free(f->t);
    for (size_t i = 0; i < f->ncopies; i++) free(f->copies[i]);
    free(f->copies);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    free(f);
}

dsv3_status dsv3_st_open_memory(dsv3_st_file **out, const void *bytes, size_t len,
                                const char *where, dsv3_err *err) {
    *out = NULL;
    dsv3_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(where))) {
        free(f);
        return dsv3_errf(err, DSV3_ENOMEM, "safetensors: %s: out of memory", where);
    }
    dsv3_status st = parse_image(f, bytes, len, where, err);
    if (st) {
        dsv3_st_close(f);
        return st;
    }
    *out = f;
    return DSV3_OK;
}

dsv3_status dsv3_st_open(dsv3_st_file **out, const char *path, dsv3_err *err) {
    *out = NULL;
    const char *what;
    int fd = dsv3_file_open_regular(path, &what);
    if (fd < 0 && what) return dsv3_errf(err, DSV3_EIO, "safetensors: %s: %s", path, what);
    if (fd < 0) return dsv3_errf(err, DSV3_EIO, "safetensors: %s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return dsv3_errf(err, DSV3_EIO, "safetensors: %s: not a regular file", path);
    }
    dsv3_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        return dsv3_errf(err, DSV3_ENOMEM, "safetensors: %s: out of memory", path);
    }
    size_t len = (size_t)sb.st_size;
    const unsigned char *base = (const unsigned char *)"";
    if (len > 0) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            dsv3_st_close(f);
            return dsv3_errf(err, DSV3_EIO, "safetensors: %s: mmap failed: %s", path, strerror(errno));
        }
        f->map = m;
        f->map_len = len;
        base = m;
    }
    close(fd);
    dsv3_status st = parse_image(f, base, len, path, err);
    if (st) {
        dsv3_st_close(f);
        return st;
    }
    *out = f;
    return DSV3_OK;
}

size_t dsv3_st_count(const dsv3_st_file *f) {
    return f->n;
}

const dsv3_st_tensor *dsv3_st_at(const dsv3_st_file *f, size_t i) {
    return i < f->n ? &f->t[i] : NULL;
}

const dsv3_st_tensor *dsv3_st_find(const dsv3_st_file *f, const char *name) {
    dsv3_st_tensor key = {.name = name};
    return bsearch(&key, f->t, f->n, sizeof *f->t, by_name);
}

/* ---------------------------------------------------------------- checkpoints ---------- */

struct dsv3_checkpoint {
    dsv3_st_file **files; /* one per shard */
    size_t nfiles;
    const dsv3_st_tensor **all; /* every tensor of every file, sorted by name */
    unsigned char *used;        /* per entry of `all`: returned by dsv3_ckpt_find */
    size_t n;
    uint64_t bytes;
};

void dsv3_ckpt_close(dsv3_checkpoint *ck) {
    if (!ck) return;
    for (size_t i = 0; i < ck->nfiles; i++) dsv3_st_close(ck->files[i]);
    free(ck->files);
    free(ck->all);
    free(ck->used);
    free(ck);
}

static int by_ptr_name(const void *a, const void *b) {
    return strcmp((*(const dsv3_st_tensor *const *)a)->name,
                  (*(const dsv3_st_tensor *const *)b)->name);
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The whole file (regular files only, under 64 MiB), or NULL with *what saying why when the
 * path is not a regular file. */
static char *slurp(const char *path, size_t *len, const char **what) {
    FILE *f = dsv3_file_fopen_regular(path, what);
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && n < (64L << 20) && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                buf[n] = 0;
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

static dsv3_status add_file(dsv3_checkpoint *ck, const char *path, dsv3_err *err) {
    dsv3_st_file **nf = realloc(ck->files, (ck->nfiles + 1) * sizeof *nf);
    if (!nf) return dsv3_errf(err, DSV3_ENOMEM, "safetensors: %s: out of memory", path);
    ck->files = nf;
    dsv3_status st = dsv3_st_open(&ck->files[ck->nfiles], path, err);
    if (st) return st;
    ck->bytes += ck->files[ck->nfiles]->map_len;
    ck->nfiles++;
    return DSV3_OK;
}

static int by_shard(const void *a, const void *b) {
    return strcmp((*(const cJSON *const *)a)->valuestring, (*(const cJSON *const *)b)->valuestring);
}

/* Opens every shard named by the index and checks each weight_map entry against its shard. */
static dsv3_status open_index(dsv3_checkpoint *ck, const char *dir, const char *ipath,
                              dsv3_progress_fn fn, void *ud, dsv3_err *err) {
    size_t len = 0;
    const char *what;
    char *text = slurp(ipath, &len, &what);
    if (!text && what) return dsv3_errf(err, DSV3_EIO, "safetensors: %s: %s", ipath, what);
    if (!text) return dsv3_errf(err, DSV3_EIO, "safetensors: %s: cannot read", ipath);
    const char *json_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &json_end, 0);
    int junk = 0;
    for (const char *p = json_end; root && p && p < text + len; p++)
        junk |= *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r';
    free(text);
    if (!root || junk) {
        cJSON_Delete(root);
        return dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: invalid JSON", ipath);
    }
    dsv3_status st = DSV3_OK;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        st = dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: key 'weight_map': missing or empty",
                       ipath);
        goto done;
    }
    /* Open each distinct shard once: collect the names, sort, skip repeats (V3 lists ~91k
     * tensors over 163 shards, so a quadratic scan would be too slow). */
    size_t nent = (size_t)cJSON_GetArraySize(wm), k = 0;
    const cJSON **ents = calloc(nent, sizeof *ents);
    if (!ents) {
        st = dsv3_errf(err, DSV3_ENOMEM, "safetensors: out of memory");
        goto done;
    }
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || e->valuestring[0] == '.' ||
            !e->valuestring[0]) {
            st = dsv3_errf(err, DSV3_EFORMAT,
                           "safetensors: %s: weight_map entry for %s: not a plain shard file name",
                           ipath, e->string);
            free(ents);
            goto done;
        }
        ents[k++] = e;
    }
    qsort(ents, nent, sizeof *ents, by_shard);
    int64_t nshards = 0, opened = 0;
    for (size_t i = 0; i < nent; i++)
        nshards += i == 0 || strcmp(ents[i - 1]->valuestring, ents[i]->valuestring) != 0;
    for (size_t i = 0; i < nent; i++) {
        const cJSON *e = ents[i];
        if (i > 0 && strcmp(ents[i - 1]->valuestring, e->valuestring) == 0) continue;
        char *sp = path_join(dir, e->valuestring);
        if (!sp) {
            st = dsv3_errf(err, DSV3_ENOMEM, "safetensors: out of memory");
            break;
        }
        if (access(sp, F_OK) != 0) {
            st = dsv3_errf(err, DSV3_EIO, "safetensors: %s: shard %s (listed for tensor %s) is missing",
                           ipath, e->valuestring, e->string);
            free(sp);
            break;
        }
        st = add_file(ck, sp, err);
        free(sp);
        if (st) break;
        if (fn) fn(ud, "shards", ++opened, nshards);
    }
    free(ents);
    if (st) goto done;
    /* Every listed tensor must be in the shard the index names. */
    for (const cJSON *e = wm->child; e; e = e->next) {
        const dsv3_st_file *hit = NULL;
        for (size_t i = 0; i < ck->nfiles && !hit; i++) {
            const char *base = strrchr(ck->files[i]->path, '/');
            base = base ? base + 1 : ck->files[i]->path;
            if (strcmp(base, e->valuestring) == 0) hit = ck->files[i];
        }
        if (!hit || !dsv3_st_find(hit, e->string)) {
            st = dsv3_errf(err, DSV3_EFORMAT, "safetensors: %s: tensor %s: listed in the index but absent from shard %s",
                           ipath, e->string, e->valuestring);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return st;
}

dsv3_status dsv3_ckpt_open(dsv3_checkpoint **out, const char *dir, dsv3_err *err) {
    return dsv3_ckpt_open_progress(out, dir, NULL, NULL, err);
}

dsv3_status dsv3_ckpt_open_progress(dsv3_checkpoint **out, const char *dir, dsv3_progress_fn fn,
                                    void *ud, dsv3_err *err) {
    *out = NULL;
    dsv3_checkpoint *ck = calloc(1, sizeof *ck);
    char *ipath = path_join(dir, "model.safetensors.index.json");
    char *spath = path_join(dir, "model.safetensors");
    dsv3_status st = DSV3_OK;
    if (!ck || !ipath || !spath) {
        st = dsv3_errf(err, DSV3_ENOMEM, "safetensors: out of memory");
        goto fail;
    }
    if (access(ipath, F_OK) == 0) st = open_index(ck, dir, ipath, fn, ud, err);
    else if (access(spath, F_OK) == 0) st = add_file(ck, spath, err);
    else st = dsv3_errf(err, DSV3_EIO,
                        "safetensors: %s: neither model.safetensors nor model.safetensors.index.json found",
                        dir);
    if (st) goto fail;
    for (size_t i = 0; i < ck->nfiles; i++) ck->n += ck->files[i]->n;
    ck->all = calloc(ck->n ? ck->n : 1, sizeof *ck->all);
    ck->used = calloc(ck->n ? ck->n : 1, 1);
    if (!ck->all || !ck->used) {
        st = dsv3_errf(err, DSV3_ENOMEM, "safetensors: out of memory");
        goto fail;
    }
    size_t k = 0;
    for (size_t i = 0; i < ck->nfiles; i++)
        for (size_t j = 0; j < ck->files[i]->n; j++) ck->all[k++] = &ck->files[i]->t[j];
    qsort(ck->all, ck->n, sizeof *ck->all, by_ptr_name);
    for (size_t i = 1; i < ck->n; i++)
        if (strcmp(ck->all[i - 1]->name, ck->all[i]->name) == 0) {
            st = dsv3_errf(err, DSV3_EFORMAT, "safetensors: tensor %s: present in both %s and %s",
                           ck->all[i]->name, ck->all[i - 1]->file, ck->all[i]->file);
            goto fail;
        }
    free(ipath);
    free(spath);
    *out = ck;
    return DSV3_OK;
fail:
    free(ipath);
    free(spath);
    dsv3_ckpt_close(ck);
    return st;
}

const dsv3_st_tensor *dsv3_ckpt_find(dsv3_checkpoint *ck, const char *name) {
    dsv3_st_tensor key = {.name = name};
    const dsv3_st_tensor *kp = &key;
    const dsv3_st_tensor **hit = bsearch(&kp, ck->all, ck->n, sizeof *ck->all, by_ptr_name);
    if (!hit) return NULL;
    ck->used[hit - ck->all] = 1;
    return *hit;
}

size_t dsv3_ckpt_count(const dsv3_checkpoint *ck) {
    return ck->n;
}

const dsv3_st_tensor *dsv3_ckpt_at(const dsv3_checkpoint *ck, size_t i) {
    return i < ck->n ? ck->all[i] : NULL;
}

int dsv3_ckpt_unused(const dsv3_checkpoint *ck, size_t i) {
    return i < ck->n && !ck->used[i];
}

uint64_t dsv3_ckpt_bytes(const dsv3_checkpoint *ck) {
    return ck->bytes;
}

int dsv3_ckpt_ranges(const dsv3_checkpoint *ck, int (*fn)(void *ud, const void *p, size_t bytes),
                     void *ud) {
    for (size_t i = 0; i < ck->nfiles; i++) {
        const dsv3_st_file *f = ck->files[i];
        const char *lo = f->map, *hi = lo ? lo + f->map_len : NULL;
        int rc;
        if (lo && (rc = fn(ud, lo, f->map_len))) return rc;
        for (size_t j = 0; j < f->n; j++) {
            const char *d = f->t[j].data;
            if (!f->t[j].nbytes || (lo && d >= lo && d < hi)) continue;
            if ((rc = fn(ud, d, f->t[j].nbytes))) return rc;
        }
    }
    return 0;
}
