/* memory.cu — the CUDA backend's device, memory and weight binding, and its table
 * (kernels/backend.h, dsv3_backend_cuda; docs/ARCHITECTURE.md, "CUDA backend").
 *
 * One device (the first visible one), one stream (the legacy default stream: every operation is
 * ordered after the previous one, and download waits for them), started on first use. Memory
 * from alloc is cudaMalloc'd and zeroed; upload and download are cudaMemcpy and are counted as
 * devsim counts them (calls and bytes). Weights: a model bound to this backend binds every host
 * range holding its tensors (bind: one cudaMalloc and one copy per range, i.e. per checkpoint
 * file); a dsv3_weight is then resolved by looking its host address up in the sorted table of
 * bound ranges (dsv3_cuda_weight). A weight outside every bound range aborts naming the
 * operation: the model promised to bind everything it uses. The table itself is in table.cu. */
#include <pthread.h>
#include <string.h>

#include <cublas_v2.h>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/cuda_internal.cuh"

namespace {

struct range {
    const char *host;
    size_t bytes;
    char *dev;
};

struct alloc_rec {
    void *p;
    size_t size;
};

struct state {
    pthread_mutex_t lock;
    int started;      /* 0 not tried, 1 usable, -1 not usable (why) */
    char why[512];
    cublasHandle_t blas;
    cudaDeviceProp prop;
    range *r;         /* sorted by host */
    size_t n, cap;
    dsv3_transfer_stats stats;
    uint64_t weight_bytes, alloc_bytes;
    alloc_rec *a;     /* live allocations (for alloc_bytes) */
    size_t na, cap_a;
    void *scr[SCR_COUNT];
    size_t scr_bytes[SCR_COUNT];
};

state S = {PTHREAD_MUTEX_INITIALIZER, 0, "", nullptr, {}, nullptr, 0, 0, {}, 0, 0, nullptr, 0, 0, {}, {}};

/* Starts the device once; caller holds the lock. */
int start_locked() {
    if (S.started) return S.started > 0;
    S.started = -1;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(S.why, sizeof S.why, "cuda: no CUDA device (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "none visible");
        cudaGetLastError(); /* clear the sticky-free error */
        return 0;
    }
    if ((e = cudaGetDeviceProperties(&S.prop, 0)) != cudaSuccess) {
        snprintf(S.why, sizeof S.why, "cuda: device 0: %s", cudaGetErrorString(e));
        return 0;
    }
    if (S.prop.major != 9 || S.prop.minor != 0) {
        snprintf(S.why, sizeof S.why, "cuda: %.200s (sm_%d%d) is not supported: this build is for sm_90a (Hopper: H100, H200)",
                 S.prop.name, S.prop.major, S.prop.minor);
        return 0;
    }
    if ((e = cudaSetDevice(0)) != cudaSuccess || (e = cudaFree(nullptr)) != cudaSuccess) {
        snprintf(S.why, sizeof S.why, "cuda: %.200s: %.200s", S.prop.name, cudaGetErrorString(e));
        return 0;
    }
    if (cublasCreate(&S.blas) != CUBLAS_STATUS_SUCCESS) {
        snprintf(S.why, sizeof S.why, "cuda: %.200s: cuBLAS did not start", S.prop.name);
        return 0;
    }
    /* Plain FP32 products (no TF32): the results must agree with the CPU reference. */
    cublasSetMathMode(S.blas, CUBLAS_DEFAULT_MATH);
    S.started = 1;
    return 1;
}

int start() {
    pthread_mutex_lock(&S.lock);
    const int ok = start_locked();
    pthread_mutex_unlock(&S.lock);
    return ok;
}

/* Index of the range holding p, or -1; caller holds the lock. */
long find(const void *p) {
    size_t lo = 0, hi = S.n;
    const char *c = (const char *)p;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (c < S.r[mid].host) hi = mid;
        else if (c >= S.r[mid].host + S.r[mid].bytes) lo = mid + 1;
        else return (long)mid;
    }
    return -1;
}

const void *dev_of(const void *host, size_t bytes, const char *op) {
    pthread_mutex_lock(&S.lock);
    const long i = find(host);
    const void *out = nullptr;
    if (i >= 0 && (const char *)host + bytes <= S.r[i].host + S.r[i].bytes)
        out = S.r[i].dev + ((const char *)host - S.r[i].host);
    pthread_mutex_unlock(&S.lock);
    if (!out) {
        fprintf(stderr, "cuda: %s: the weight at %p (%zu bytes) is not bound to the device\n", op, host, bytes);
        abort();
    }
    return out;
}

} // namespace

/* ---- memory ---- */

void *dsv3_cuda_alloc(size_t bytes) {
    if (!start()) return nullptr;
    const size_t size = bytes ? (bytes + 255) / 256 * 256 : 256;
    void *p = nullptr;
    if (cudaMalloc(&p, size) != cudaSuccess) {
        cudaGetLastError();
        return nullptr;
    }
    if (cudaMemset(p, 0, size) != cudaSuccess) {
        cudaFree(p);
        return nullptr;
    }
    pthread_mutex_lock(&S.lock);
    if (S.na == S.cap_a) {
        const size_t cap = S.cap_a ? 2 * S.cap_a : 64;
        alloc_rec *a = (alloc_rec *)realloc(S.a, cap * sizeof *a);
        if (!a) {
            pthread_mutex_unlock(&S.lock);
            cudaFree(p);
            return nullptr;
        }
        S.a = a;
        S.cap_a = cap;
    }
    S.a[S.na++] = alloc_rec{p, size};
    S.alloc_bytes += size;
    pthread_mutex_unlock(&S.lock);
    return p;
}

void dsv3_cuda_free(void *p) {
    if (!p) return;
    pthread_mutex_lock(&S.lock);
    size_t i = S.na;
    while (i > 0 && S.a[i - 1].p != p) i--;
    if (i > 0) {
        S.alloc_bytes -= S.a[i - 1].size;
        S.a[i - 1] = S.a[--S.na];
    }
    pthread_mutex_unlock(&S.lock);
    dsv3_cuda_check(cudaFree(p), "free");
}

void dsv3_cuda_upload(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    dsv3_cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "upload");
    pthread_mutex_lock(&S.lock);
    S.stats.uploads++;
    S.stats.upload_bytes += (int64_t)bytes;
    pthread_mutex_unlock(&S.lock);
}

void dsv3_cuda_download(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    dsv3_cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "download");
    pthread_mutex_lock(&S.lock);
    S.stats.downloads++;
    S.stats.download_bytes += (int64_t)bytes;
    pthread_mutex_unlock(&S.lock);
}

void dsv3_cuda_stats(dsv3_transfer_stats *out) {
    pthread_mutex_lock(&S.lock);
    *out = S.stats;
    pthread_mutex_unlock(&S.lock);
}

/* ---- weights ---- */

dsv3_status dsv3_cuda_bind(const void *host, size_t bytes, dsv3_err *err) {
    pthread_mutex_lock(&S.lock);
    if (!start_locked()) {
        const dsv3_status st = dsv3_errf(err, DSV3_EUNSUPPORTED, "%s", S.why);
        pthread_mutex_unlock(&S.lock);
        return st;
    }
    pthread_mutex_unlock(&S.lock);
    char *dev = nullptr;
    cudaError_t e = cudaMalloc(&dev, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        size_t fr = 0, total = 0;
        cudaMemGetInfo(&fr, &total);
        return dsv3_errf(err, DSV3_ENOMEM,
                         "cuda: out of device memory: %.1f MiB of weights to bind, %.1f MiB free of %.1f MiB "
                         "(the checkpoint needs its file size on the device)",
                         bytes / 1048576.0, fr / 1048576.0, total / 1048576.0);
    }
    if ((e = cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice)) != cudaSuccess) {
        cudaFree(dev);
        return dsv3_errf(err, DSV3_EIO, "cuda: copying %zu bytes of weights: %s", bytes, cudaGetErrorString(e));
    }
    pthread_mutex_lock(&S.lock);
    if (S.n == S.cap) {
        const size_t cap = S.cap ? 2 * S.cap : 64;
        range *r = (range *)realloc(S.r, cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&S.lock);
            cudaFree(dev);
            return dsv3_errf(err, DSV3_ENOMEM, "cuda: out of host memory");
        }
        S.r = r;
        S.cap = cap;
    }
    size_t at = S.n;
    while (at > 0 && S.r[at - 1].host > (const char *)host) at--;
    memmove(S.r + at + 1, S.r + at, (S.n - at) * sizeof *S.r);
    S.r[at] = range{(const char *)host, bytes, dev};
    S.n++;
    S.weight_bytes += bytes;
    pthread_mutex_unlock(&S.lock);
    return DSV3_OK;
}

void dsv3_cuda_unbind(const void *host) {
    pthread_mutex_lock(&S.lock);
    const long i = find(host);
    if (i < 0 || S.r[i].host != host) {
        pthread_mutex_unlock(&S.lock);
        return;
    }
    char *dev = S.r[i].dev;
    S.weight_bytes -= S.r[i].bytes;
    memmove(S.r + i, S.r + i + 1, (S.n - (size_t)i - 1) * sizeof *S.r);
    S.n--;
    pthread_mutex_unlock(&S.lock);
    dsv3_cuda_check(cudaFree(dev), "unbind");
}

void dsv3_cuda_check(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return;
    fprintf(stderr, "cuda: %s: %s\n", what, cudaGetErrorString(e));
    abort();
}

wdev dsv3_cuda_weight(const dsv3_weight *w, const char *op) {
    wdev d;
    d.dtype = (int)w->dtype;
    d.rows = w->rows;
    d.cols = w->cols;
    d.row0 = w->row0;
    d.scols = (w->cols + 127) / 128;
    d.data = dev_of(w->data, (size_t)(w->rows * w->cols) * dsv3_dtype_size(w->dtype), op);
    d.scale = nullptr;
    if (w->dtype == DSV3_DT_F8_E4M3) {
        const int64_t srows = (w->row0 + w->rows + 127) / 128;
        d.scale = (const float *)dev_of(w->scale_inv, (size_t)(srows * d.scols) * sizeof(float), op);
    }
    return d;
}

void *dsv3_cuda_scratch(int slot, size_t bytes) {
    pthread_mutex_lock(&S.lock);
    if (S.scr_bytes[slot] < bytes) {
        if (S.scr[slot]) dsv3_cuda_check(cudaFree(S.scr[slot]), "scratch");
        const size_t size = bytes + bytes / 2;
        S.scr[slot] = nullptr;
        dsv3_cuda_check(cudaMalloc(&S.scr[slot], size), "scratch");
        S.scr_bytes[slot] = size;
    }
    void *p = S.scr[slot];
    pthread_mutex_unlock(&S.lock);
    return p;
}

void *dsv3_cuda_cublas(void) {
    return S.blas;
}

extern "C" int dsv3_cuda_available(char *why, size_t why_len) {
    pthread_mutex_lock(&S.lock);
    const int ok = start_locked();
    if (!ok && why && why_len) snprintf(why, why_len, "%s", S.why);
    pthread_mutex_unlock(&S.lock);
    return ok;
}

extern "C" void dsv3_cuda_describe(char *out, size_t len) {
    pthread_mutex_lock(&S.lock);
    if (!start_locked()) snprintf(out, len, "%s", S.why);
    else
        snprintf(out, len, "%s, sm_%d%d, %.1f GiB, %.1f MiB of weights and %.1f MiB of buffers bound by dsv3",
                 S.prop.name, S.prop.major, S.prop.minor, S.prop.totalGlobalMem / 1073741824.0,
                 S.weight_bytes / 1048576.0, S.alloc_bytes / 1048576.0);
    pthread_mutex_unlock(&S.lock);
}

extern "C" void dsv3_cuda_memory(uint64_t *weight_bytes, uint64_t *alloc_bytes) {
    pthread_mutex_lock(&S.lock);
    *weight_bytes = S.weight_bytes;
    *alloc_bytes = S.alloc_bytes;
    pthread_mutex_unlock(&S.lock);
}
