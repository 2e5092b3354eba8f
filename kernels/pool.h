/* pool.h — the persistent worker threads the optimised kernels and attention run on.
 *
 * Why not an OpenMP region per product: a region ends in a barrier, so the caller waits for
 * every thread of the team, including one the OS has not scheduled yet. On a machine shared
 * with other jobs (two cores here) that wait is a scheduler time slice — milliseconds against a
 * product of tens of microseconds. Here items are claimed one at a time from a shared counter:
 * a worker that is not running when a job is posted simply claims nothing, the caller does the
 * items itself and waits only for items a worker has actually started.
 *
 * Workers start once (on the first call) and are never started per token; between jobs they spin
 * briefly, then sleep on a futex. Thread count: OMP_NUM_THREADS / omp_get_max_threads() at first
 * use (so one setting governs both this pool and the OpenMP code of the reference backend).
 * Thread rules: any thread may call dsv3_pool_for; a call made while a job is running (from
 * another thread, or from inside an item) runs its items serially on the calling thread.
 */
#ifndef DSV3_POOL_H
#define DSV3_POOL_H

#include <stdint.h>

/* One item of a job: fn(ctx, item, tid), tid in [0, dsv3_pool_threads()) names the thread that
 * runs it (index for per-thread scratch; the caller is tid 0). */
typedef void (*dsv3_pool_fn)(void *ctx, int64_t item, int tid);

/* Runs fn for items 0..n-1 (any order, each exactly once) and returns when all are done. */
void dsv3_pool_for(int64_t n, dsv3_pool_fn fn, void *ctx);

/* Threads that may run items (caller included); >= 1. Starts the pool if needed. */
int dsv3_pool_threads(void);

#endif
