/* clock.h — the monotonic wall clock the trainer, generation, GRPO, the REPL and the
 * benchmarks time themselves with. Header-only. */
#ifndef DSV3_CLOCK_H
#define DSV3_CLOCK_H

#include <time.h>

/* Seconds on CLOCK_MONOTONIC (differences only: the origin is arbitrary). */
static inline double dsv3_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
