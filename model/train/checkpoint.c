/* checkpoint.c — atomic safetensors writing, FP8/F16 encoders, metadata reading (see
 * checkpoint.h). Layout per docs/ARCHITECTURE.md, "safetensors". */
#define _GNU_SOURCE /* renameat2 */
#include "model/train/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/base/file.h"
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
    const char *what;
    FILE *in = dsv3_file_fopen_regular(src, &what);
    if (!in)
        return dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", src, what ? what : strerror(errno));
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

/* ---------------------------------------------------------------- checkpoint directories */

/* fsync of a directory, best effort: some filesystems refuse it. */
static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Removes path and, for a directory, everything below it; symbolic links are removed, never
 * followed. */
static void remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *dp = opendir(path);
        if (dp) {
            struct dirent *de;
            char sub[PATH_MAX];
            while ((de = readdir(dp))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
                if (snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) >= (int)sizeof sub)
                    continue;
                remove_tree(sub);
            }
            closedir(dp);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* A name ending in ".tmp.<digits>": a temp file of an older dsv3 killed mid-write. */
static int is_old_tmp(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    while (strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp.");
    t += 5;
    if (!*t) return 0;
    for (; *t; t++)
        if (*t < '0' || *t > '9') return 0;
    return 1;
}

/* If name is "<base><tag><pid>" with tag ".dsv3-new." or ".dsv3-old.", the pid (else 0) and
 * which tag (1 new, 2 old). */
static long leftover_pid(const char *name, const char *base, int *kind) {
    const size_t bl = strlen(base);
    if (strncmp(name, base, bl)) return 0;
    const char *t = name + bl;
    if (!strncmp(t, ".dsv3-new.", 10)) *kind = 1;
    else if (!strncmp(t, ".dsv3-old.", 10)) *kind = 2;
    else return 0;
    t += 10;
    if (!*t) return 0;
    long pid = 0;
    for (; *t; t++) {
        if (*t < '0' || *t > '9' || pid > 1L << 40) return 0;
        pid = pid * 10 + (*t - '0');
    }
    return pid;
}

static int process_alive(long pid) {
    if (pid == (long)getpid()) return 0; /* ours: a save of this process that failed */
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Removes the siblings that killed saves to parent/base left behind. An old checkpoint moved
 * aside (the two-rename fallback) whose place is empty goes back to its place first. */
static void clean_leftovers(const char *parent, const char *base, const char *dst) {
    DIR *dp = opendir(parent);
    if (!dp) return;
    struct dirent *de;
    char p[PATH_MAX];
    while ((de = readdir(dp))) {
        int kind = 0;
        const long pid = leftover_pid(de->d_name, base, &kind);
        if (pid <= 0 || process_alive(pid)) continue;
        if (snprintf(p, sizeof p, "%s/%s", parent, de->d_name) >= (int)sizeof p) continue;
        struct stat sb;
        if (kind == 2 && lstat(dst, &sb) != 0 && errno == ENOENT && rename(p, dst) == 0) {
            sync_dir(parent);
            continue;
        }
        remove_tree(p);
    }
    closedir(dp);
}

dsv3_status dsv3_tckpt_dir_begin(dsv3_tckpt_dir *d, const char *dst, dsv3_err *err) {
    memset(d, 0, sizeof *d);
    size_t len = strlen(dst);
    while (len > 1 && dst[len - 1] == '/') len--;
    if (len == 0 || len >= sizeof d->dst)
        return dsv3_errf(err, DSV3_EINVAL, "checkpoint: \"%s\": not a usable directory name", dst);
    memcpy(d->dst, dst, len);
    d->dst[len] = 0;
    struct stat sb;
    if (lstat(d->dst, &sb) == 0) {
        if (S_ISLNK(sb.st_mode) || !strcmp(d->dst, ".") || !strcmp(d->dst, "..") ||
            (len >= 2 && !strcmp(d->dst + len - 2, "/.")) ||
            (len >= 3 && !strcmp(d->dst + len - 3, "/.."))) {
            char real[PATH_MAX];
            if (!realpath(d->dst, real))
                return dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", d->dst, strerror(errno));
            if (strlen(real) >= sizeof d->dst)
                return dsv3_errf(err, DSV3_EINVAL, "checkpoint: %s: path too long", dst);
            memcpy(d->dst, real, strlen(real) + 1);
        }
        if (stat(d->dst, &sb) != 0)
            return dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", d->dst, strerror(errno));
        if (!S_ISDIR(sb.st_mode))
            return dsv3_errf(err, DSV3_EINVAL, "checkpoint: %s: not a directory", dst);
        if (!strcmp(d->dst, "/"))
            return dsv3_errf(err, DSV3_EINVAL, "checkpoint: /: cannot replace the root directory");
        d->dst_exists = 1;
        /* everything in it must be a file a replacement can carry over */
        DIR *dp = opendir(d->dst);
        if (!dp) return dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", d->dst, strerror(errno));
        struct dirent *de;
        char p[PATH_MAX + 300];
        dsv3_status st = DSV3_OK;
        while (!st && (de = readdir(dp))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", d->dst, de->d_name);
            if (lstat(p, &sb) == 0 && !S_ISREG(sb.st_mode) && !is_old_tmp(de->d_name))
                st = dsv3_errf(err, DSV3_EINVAL,
                               "checkpoint: %s holds %s, %s; a checkpoint save replaces the "
                               "directory as a whole and keeps only regular files: choose another "
                               "directory", dst, de->d_name,
                               S_ISDIR(sb.st_mode)   ? "a directory"
                               : S_ISLNK(sb.st_mode) ? "a symbolic link"
                                                     : "a special file");
        }
        closedir(dp);
        if (st) return st;
    }
    /* parent and base name */
    char parent[PATH_MAX];
    const char *slash = strrchr(d->dst, '/');
    const char *base = slash ? slash + 1 : d->dst;
    if (!slash) snprintf(parent, sizeof parent, ".");
    else if (slash == d->dst) snprintf(parent, sizeof parent, "/");
    else snprintf(parent, sizeof parent, "%.*s", (int)(slash - d->dst), d->dst);
    clean_leftovers(parent, base, d->dst);
    d->dst_exists = lstat(d->dst, &sb) == 0;
    snprintf(d->path, sizeof d->path, "%s.dsv3-new.%ld", d->dst, (long)getpid());
    if (mkdir(d->path, 0755) != 0)
        return dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", d->path, strerror(errno));
    return DSV3_OK;
}

void dsv3_tckpt_dir_abort(dsv3_tckpt_dir *d) {
    if (d->path[0]) remove_tree(d->path);
    d->path[0] = 0;
}

/* Hard-links (else copies) the old directory's regular files that the new one lacks. */
static dsv3_status carry_over(const dsv3_tckpt_dir *d, const char *const *ours, size_t n_ours,
                              dsv3_err *err) {
    DIR *dp = opendir(d->dst);
    if (!dp && errno == ENOENT) return DSV3_OK;
    if (!dp) return dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", d->dst, strerror(errno));
    struct dirent *de;
    char from[PATH_MAX], to[PATH_MAX];
    dsv3_status st = DSV3_OK;
    while (!st && (de = readdir(dp))) {
        int skip = is_old_tmp(de->d_name);
        for (size_t i = 0; i < n_ours && !skip; i++) skip = !strcmp(de->d_name, ours[i]);
        struct stat sb;
        if (skip || snprintf(from, sizeof from, "%s/%s", d->dst, de->d_name) >= (int)sizeof from ||
            snprintf(to, sizeof to, "%s/%s", d->path, de->d_name) >= (int)sizeof to ||
            lstat(from, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (link(from, to) != 0) st = dsv3_tckpt_copy_file(to, from, err);
    }
    closedir(dp);
    return st;
}

dsv3_status dsv3_tckpt_dir_commit(dsv3_tckpt_dir *d, const char *const *ours, size_t n_ours,
                                  dsv3_err *err) {
    dsv3_status st = d->dst_exists ? carry_over(d, ours, n_ours, err) : DSV3_OK;
    if (st) {
        dsv3_tckpt_dir_abort(d);
        return st;
    }
    sync_dir(d->path);
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", d->dst);
    char *slash = strrchr(parent, '/');
    if (!slash) snprintf(parent, sizeof parent, ".");
    else if (slash == parent) slash[1] = 0;
    else *slash = 0;
    struct stat sb;
    if (lstat(d->dst, &sb) != 0) {
        /* nothing there: the new directory takes the place (never over one made meanwhile) */
        int rc = renameat2(AT_FDCWD, d->path, AT_FDCWD, d->dst, RENAME_NOREPLACE);
        if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) rc = rename(d->path, d->dst);
        if (rc != 0) {
            st = dsv3_errf(err, DSV3_EIO, "checkpoint: %s: rename: %s", d->dst, strerror(errno));
            dsv3_tckpt_dir_abort(d);
            return st;
        }
        d->path[0] = 0;
        sync_dir(parent);
        return DSV3_OK;
    }
    if (renameat2(AT_FDCWD, d->path, AT_FDCWD, d->dst, RENAME_EXCHANGE) == 0) {
        sync_dir(parent);
        dsv3_tckpt_dir_abort(d); /* d->path now holds the old checkpoint */
        return DSV3_OK;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
        st = dsv3_errf(err, DSV3_EIO, "checkpoint: %s: rename: %s", d->dst, strerror(errno));
        dsv3_tckpt_dir_abort(d);
        return st;
    }
    /* no atomic exchange here: move the old aside, the new in (a kill between the two leaves
     * the old at <dst>.dsv3-old.<pid>, which the next save puts back) */
    char old[PATH_MAX + 32];
    snprintf(old, sizeof old, "%s.dsv3-old.%ld", d->dst, (long)getpid());
    if (rename(d->dst, old) != 0) {
        st = dsv3_errf(err, DSV3_EIO, "checkpoint: %s: rename: %s", d->dst, strerror(errno));
        dsv3_tckpt_dir_abort(d);
        return st;
    }
    if (rename(d->path, d->dst) != 0) {
        st = dsv3_errf(err, DSV3_EIO, "checkpoint: %s: rename: %s", d->dst, strerror(errno));
        (void)rename(old, d->dst);
        dsv3_tckpt_dir_abort(d);
        return st;
    }
    d->path[0] = 0;
    sync_dir(parent);
    remove_tree(old);
    return DSV3_OK;
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
    const char *what;
    FILE *f = dsv3_file_fopen_regular(path, &what);
    if (!f)
        return dsv3_errf(err, DSV3_EIO, "checkpoint: %s: %s", path, what ? what : strerror(errno));
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
