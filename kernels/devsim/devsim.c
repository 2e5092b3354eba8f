/* devsim.c — a simulated device (see backend.h, dsv3_backend_devsim; docs/ARCHITECTURE.md,
 * "Backend memory").
 *
 * Memory it hands out is a shared-memory object mapped twice: PROT_NONE at the address the
 * model is given, read-write at a second address only these kernels know. Model code that
 * dereferences backend memory therefore crashes at once, and every byte that crosses between
 * host and "device" goes through upload/download, which count calls and bytes. The arithmetic
 * is the optimised CPU backend's (the reference one on CPUs without AVX2+FMA), called with the
 * read-write addresses, so devsim's numbers equal `fast`'s byte for byte. Weights are resolved
 * by their mapped address, as on the other CPU backends (they are never copied).
 *
 * The simulated device is one per process, like a real one: a table of its allocations
 * (sorted by device address, guarded by a mutex) and the counters. A pointer an operation gets
 * that is not device memory (a host array passed by mistake) aborts with a message naming the
 * operation: that is the other half of what devsim proves.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/backend.h"

typedef struct {
    char *dev;  /* PROT_NONE view: the address the model holds */
    char *rw;   /* read-write view */
    size_t size;
    int fd;
} region;

static struct {
    pthread_mutex_t lock;
    region *r;  /* sorted by dev */
    size_t n, cap;
    dsv3_transfer_stats stats;
} D = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Noreturn void die(const char *what, const void *p) {
    fprintf(stderr, "devsim: %s: %p is not device memory (model code passed a host pointer)\n", what, p);
    abort();
}

/* Index of the region holding p, or -1. Caller holds the lock. */
static long find(const void *p) {
    size_t lo = 0, hi = D.n;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if ((const char *)p < D.r[mid].dev) hi = mid;
        else if ((const char *)p >= D.r[mid].dev + D.r[mid].size) lo = mid + 1;
        else return (long)mid;
    }
    return -1;
}

/* The read-write address of device address p (NULL stays NULL); bytes must lie inside one
 * allocation. */
static void *rw_of(const void *p, size_t bytes, const char *what) {
    if (!p) return NULL;
    pthread_mutex_lock(&D.lock);
    const long i = find(p);
    void *out = NULL;
    if (i >= 0 && (const char *)p + bytes <= D.r[i].dev + D.r[i].size)
        out = D.r[i].rw + ((const char *)p - D.r[i].dev);
    pthread_mutex_unlock(&D.lock);
    if (!out) die(what, p);
    return out;
}
#define RW(p, what) ((__typeof__(p))rw_of((p), 0, (what)))

static void *dev_alloc(size_t bytes) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t size = ((bytes ? bytes : 1) + page - 1) / page * page;
    const int fd = memfd_create("dsv3-devsim", MFD_CLOEXEC);
    if (fd < 0) return NULL;
    if (ftruncate(fd, (off_t)size)) {
        close(fd);
        return NULL;
    }
    char *dev = mmap(NULL, size, PROT_NONE, MAP_SHARED, fd, 0);
    char *rw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (dev == MAP_FAILED || rw == MAP_FAILED) {
        if (dev != MAP_FAILED) munmap(dev, size);
        if (rw != MAP_FAILED) munmap(rw, size);
        close(fd);
        return NULL;
    }
    pthread_mutex_lock(&D.lock);
    if (D.n == D.cap) {
        const size_t cap = D.cap ? 2 * D.cap : 64;
        region *r = realloc(D.r, cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&D.lock);
            munmap(dev, size);
            munmap(rw, size);
            close(fd);
            return NULL;
        }
        D.r = r;
        D.cap = cap;
    }
    size_t at = D.n;
    while (at > 0 && D.r[at - 1].dev > dev) at--;
    memmove(D.r + at + 1, D.r + at, (D.n - at) * sizeof *D.r);
    D.r[at] = (region){dev, rw, size, fd};
    D.n++;
    pthread_mutex_unlock(&D.lock);
    return dev; /* memfd pages start zeroed */
}

static void dev_free(void *p) {
    if (!p) return;
    pthread_mutex_lock(&D.lock);
    const long i = find(p);
    if (i < 0 || D.r[i].dev != p) {
        pthread_mutex_unlock(&D.lock);
        die("free", p);
    }
    const region g = D.r[i];
    memmove(D.r + i, D.r + i + 1, (D.n - (size_t)i - 1) * sizeof *D.r);
    D.n--;
    pthread_mutex_unlock(&D.lock);
    munmap(g.dev, g.size);
    munmap(g.rw, g.size);
    close(g.fd);
}

static void dev_upload(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    memcpy(rw_of(dst, bytes, "upload"), src, bytes);
    pthread_mutex_lock(&D.lock);
    D.stats.uploads++;
    D.stats.upload_bytes += (int64_t)bytes;
    pthread_mutex_unlock(&D.lock);
}

static void dev_download(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    memcpy(dst, rw_of(src, bytes, "download"), bytes);
    pthread_mutex_lock(&D.lock);
    D.stats.downloads++;
    D.stats.download_bytes += (int64_t)bytes;
    pthread_mutex_unlock(&D.lock);
}

static void dev_stats(dsv3_transfer_stats *out) {
    pthread_mutex_lock(&D.lock);
    *out = D.stats;
    pthread_mutex_unlock(&D.lock);
}

/* ---------------------------------------------------------------- operations ----------- */
/* Each one translates its backend-memory arguments and runs the host kernel. */

static const dsv3_backend *K(void) {
    return dsv3_backend_fast();
}

static void d_matmul(float *out, const float *x, const dsv3_weight *w, int64_t n) {
    K()->matmul(RW(out, "matmul"), RW(x, "matmul"), w, n);
}

static void d_matmul_many(const dsv3_matmul_op *ops, int64_t count) {
    dsv3_matmul_op local[64], *t = count <= 64 ? local : malloc((size_t)count * sizeof *t);
    if (!t) abort();
    for (int64_t i = 0; i < count; i++) {
        t[i] = ops[i];
        t[i].out = RW(ops[i].out, "matmul_many");
        t[i].x = RW(ops[i].x, "matmul_many");
    }
    K()->matmul_many(t, count);
    if (t != local) free(t);
}

static void d_matmul_t(float *out, const float *x, const dsv3_weight *w, int64_t n) {
    K()->matmul_t(RW(out, "matmul_t"), RW(x, "matmul_t"), w, n);
}

static void d_row(float *out, const dsv3_weight *w, int64_t r) {
    K()->row(RW(out, "row"), w, r);
}

static void d_rmsnorm(float *out, const float *x, const float *g, int64_t n, int64_t dim, float eps) {
    K()->rmsnorm(RW(out, "rmsnorm"), RW(x, "rmsnorm"), RW(g, "rmsnorm"), n, dim, eps);
}

static void d_rope(float *x, int64_t n, int64_t nvec, int64_t d, int64_t tok_stride, int64_t vec_stride,
                   int64_t pos0, const float *inv_freq, float factor) {
    K()->rope(RW(x, "rope"), n, nvec, d, tok_stride, vec_stride, pos0, RW(inv_freq, "rope"), factor);
}

static void d_silu_mul(float *g, const float *u, int64_t n) {
    K()->silu_mul(RW(g, "silu_mul"), RW(u, "silu_mul"), n);
}

static void d_mla_attend(float *u, float *p, const float *qabs, const float *qpe, int64_t qpe_stride,
                         const float *c, const float *kpe, int64_t cs, int64_t nh, int64_t T, int64_t rkv,
                         int64_t dr, float scale) {
    K()->mla_attend(RW(u, "mla_attend"), RW(p, "mla_attend"), RW(qabs, "mla_attend"), RW(qpe, "mla_attend"),
                    qpe_stride, RW(c, "mla_attend"), RW(kpe, "mla_attend"), cs, nh, T, rkv, dr, scale);
}

static void d_embed(float *out, const dsv3_weight *w, const int32_t *ids, int64_t n) {
    K()->embed(RW(out, "embed"), w, RW(ids, "embed"), n);
}

static void d_add(float *x, const float *y, int64_t n) {
    K()->add(RW(x, "add"), RW(y, "add"), n);
}

static void d_copy2d(float *dst, int64_t dst_stride, const float *src, int64_t src_stride, int64_t rows,
                     int64_t width) {
    K()->copy2d(RW(dst, "copy2d"), dst_stride, RW(src, "copy2d"), src_stride, rows, width);
}

static void d_mla_store(const dsv3_backend *be, float *c, float *kpe, int64_t cs, const float *kva,
                        int64_t n, int64_t pos0, const float *norm, float eps, int64_t rkv, int64_t dr,
                        const float *inv_freq, float factor) {
    (void)be;
    K()->mla_store(K(), RW(c, "mla_store"), RW(kpe, "mla_store"), cs, RW(kva, "mla_store"), n, pos0,
                   RW(norm, "mla_store"), eps, rkv, dr, RW(inv_freq, "mla_store"), factor);
}

static void d_mla_attend_chunk(const dsv3_backend *be, float *u, float *scratch, int64_t scratch_stride,
                               const float *qabs, const float *qpe, int64_t qpe_stride, const float *c,
                               const float *kpe, int64_t cs, int64_t nh, int64_t n, int64_t pos0,
                               int64_t rkv, int64_t dr, float scale) {
    (void)be;
    K()->mla_attend_chunk(K(), RW(u, "mla_attend_chunk"), RW(scratch, "mla_attend_chunk"), scratch_stride,
                          RW(qabs, "mla_attend_chunk"), RW(qpe, "mla_attend_chunk"), qpe_stride,
                          RW(c, "mla_attend_chunk"), RW(kpe, "mla_attend_chunk"), cs, nh, n, pos0, rkv,
                          dr, scale);
}

static void d_mla_naive(const dsv3_backend *be, float *o, float *scratch, int64_t scratch_stride,
                        const float *q, const float *kvfull, const float *kpe, int64_t cs, int64_t nh,
                        int64_t dn, int64_t dv, int64_t dr, int64_t n, int64_t pos0, float scale,
                        int64_t only) {
    (void)be;
    K()->mla_naive(K(), RW(o, "mla_naive"), RW(scratch, "mla_naive"), scratch_stride, RW(q, "mla_naive"),
                   RW(kvfull, "mla_naive"), RW(kpe, "mla_naive"), cs, nh, dn, dv, dr, n, pos0, scale, only);
}

static void d_moe_route(const dsv3_backend *be, int32_t *idx, float *w, float *record, const float *logits,
                        int64_t n, int64_t pos0, const dsv3_route_params *p, const float *bias,
                        const unsigned char *disabled, const int32_t *forced, int64_t forced_pos) {
    (void)be;
    K()->moe_route(K(), RW(idx, "moe_route"), RW(w, "moe_route"), RW(record, "moe_route"),
                   RW(logits, "moe_route"), n, pos0, p, RW(bias, "moe_route"), RW(disabled, "moe_route"),
                   RW(forced, "moe_route"), forced_pos);
}

static void d_moe_experts(const dsv3_backend *be, float *out, const float *xn, const int32_t *idx,
                          const float *w, int64_t n, int64_t H, int64_t Kk, int64_t E, int64_t F,
                          const dsv3_ffn_weights *experts, const dsv3_ffn_weights *shared, int64_t Fs,
                          const dsv3_moe_scratch *s) {
    (void)be;
    const dsv3_moe_scratch t = {.ffn_g = RW(s->ffn_g, "moe_experts"), .ffn_u = RW(s->ffn_u, "moe_experts"),
                                .xg = RW(s->xg, "moe_experts"), .yg = RW(s->yg, "moe_experts"),
                                .disp_tok = RW(s->disp_tok, "moe_experts"),
                                .disp_w = RW(s->disp_w, "moe_experts"), .count = RW(s->count, "moe_experts"),
                                .ops = s->ops};
    K()->moe_experts(K(), RW(out, "moe_experts"), RW(xn, "moe_experts"), RW(idx, "moe_experts"),
                     RW(w, "moe_experts"), n, H, Kk, E, F, experts, shared, Fs, &t);
}

static const dsv3_backend devsim = {
    .name = "devsim",
    .is_host = 0,
    .alloc = dev_alloc,
    .free = dev_free,
    .upload = dev_upload,
    .download = dev_download,
    .stats = dev_stats,
    .matmul = d_matmul,
    .matmul_many = d_matmul_many,
    .matmul_t = d_matmul_t,
    .row = d_row,
    .rmsnorm = d_rmsnorm,
    .rope = d_rope,
    .silu_mul = d_silu_mul,
    .mla_attend = d_mla_attend,
    .embed = d_embed,
    .add = d_add,
    .copy2d = d_copy2d,
    .mla_store = d_mla_store,
    .mla_attend_chunk = d_mla_attend_chunk,
    .mla_naive = d_mla_naive,
    .moe_route = d_moe_route,
    .moe_experts = d_moe_experts,
};

const dsv3_backend *dsv3_backend_devsim(void) {
    return &devsim;
}
