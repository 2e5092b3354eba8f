/* pool.c — persistent workers claiming job items from one counter (see pool.h).
 *
 * Job state is one 64-bit word: generation << 32 | next unclaimed item. A worker claims item i
 * of generation g only by a compare-and-swap from (g, i) to (g, i + 1), so a worker that wakes
 * late and still believes in an old job can never take an item of a newer one: the word has
 * moved on and the CAS fails. The caller posts a job by writing fn/ctx/n and then the word, and
 * returns when `done` reaches n; a successful claim therefore always sees the fields of its own
 * job (they change only after every item of that job is done).
 */
#include "kernels/pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { MAX_THREADS = 64 };

/* Idle workers spin this many pause iterations (a few hundred microseconds) before sleeping:
 * decode posts a job every few microseconds, and a sleeping worker costs the caller a futex wake
 * per job. */
#define SPIN_IDLE 20000

static struct {
    _Atomic uint64_t state;    /* generation << 32 | next item */
    _Atomic int64_t done;      /* items finished in the current job */
    _Atomic(dsv3_pool_fn) fn;  /* current job (stable while it has unfinished items) */
    _Atomic(void *) ctx;
    _Atomic int64_t n;
    _Atomic uint32_t gen;      /* futex word: generation of the latest job */
    _Atomic int sleepers;      /* workers inside futex wait */
    _Atomic int busy;          /* a job is running */
    int nthreads;
} P;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static inline void cpu_relax(void) {
    __builtin_ia32_pause();
}

/* Claims and runs items of generation g until none are left (or a newer job replaced it). */
static void work(uint32_t g, int tid) {
    for (;;) {
        uint64_t s = atomic_load_explicit(&P.state, memory_order_acquire);
        if ((uint32_t)(s >> 32) != g) return;
        const int64_t i = (int64_t)(s & 0xffffffffu);
        if (i >= atomic_load_explicit(&P.n, memory_order_relaxed)) return;
        if (!atomic_compare_exchange_weak_explicit(&P.state, &s, s + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        atomic_load_explicit(&P.fn, memory_order_relaxed)(atomic_load_explicit(&P.ctx, memory_order_relaxed), i, tid);
        atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
    }
}

static void *worker(void *arg) {
    const int tid = (int)(intptr_t)arg;
    uint32_t seen = 0;
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen) {
            if (++spins < SPIN_IDLE) {
                cpu_relax();
                continue;
            }
            /* sleepers is raised before the futex re-checks gen, and the caller bumps gen before
             * reading sleepers (both sequentially consistent): a wake is never lost. */
            atomic_fetch_add(&P.sleepers, 1);
            syscall(SYS_futex, (uint32_t *)&P.gen, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
            atomic_fetch_sub(&P.sleepers, 1);
            spins = 0;
        }
        seen = g;
        work(g, tid);
    }
    return NULL;
}

static void start(void) {
    int t = omp_get_max_threads();
    P.nthreads = t < 1 ? 1 : t > MAX_THREADS ? MAX_THREADS : t;
    for (int i = 1; i < P.nthreads; i++) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &a, worker, (void *)(intptr_t)i)) P.nthreads = i; /* fewer, still correct */
        pthread_attr_destroy(&a);
        if (P.nthreads == i) break;
    }
}

int dsv3_pool_threads(void) {
    pthread_once(&once, start);
    return P.nthreads;
}

void dsv3_pool_for(int64_t n, dsv3_pool_fn fn, void *ctx) {
    if (n <= 0) return;
    pthread_once(&once, start);
    if (n == 1 || P.nthreads == 1 || atomic_exchange(&P.busy, 1)) {
        for (int64_t i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    atomic_store_explicit(&P.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&P.ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&P.n, n, memory_order_relaxed);
    atomic_store_explicit(&P.done, 0, memory_order_relaxed);
    const uint32_t g = atomic_load_explicit(&P.gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&P.state, (uint64_t)g << 32, memory_order_release);
    atomic_store(&P.gen, g);
    if (atomic_load(&P.sleepers) > 0)
        syscall(SYS_futex, (uint32_t *)&P.gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    work(g, 0);
    /* Only items a worker has claimed are outstanding. If that worker shares our core with
     * another job, yielding lets it finish instead of spinning out our time slice. */
    for (int spins = 0; atomic_load_explicit(&P.done, memory_order_acquire) < n;)
        if (++spins < 256) cpu_relax();
        else sched_yield();
    atomic_store(&P.busy, 0);
}
