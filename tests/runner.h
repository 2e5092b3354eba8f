/* runner.h — the harness the C tests share: CHECK and EXPECT, a seeded random generator, the
 * test table and main's loop. Header-only (each test is one executable); include it after the
 * system headers.
 *
 * A test is `static int test_x(void)` returning 0 on success. CHECK(cond, fmt, ...) prints the
 * failing line with a message and returns 1 from the test; EXPECT(cond) prints the failing
 * condition and lets the test go on (the test then fails however it returns). DSV3_RUN_TESTS
 * runs the table (only the tests whose names contain one of argv[1..] when given), prints
 * "N passed, M failed" and gives main's exit status. Tests written to return 1 on success run
 * with DSV3_RUN_BOOL_TESTS. */
#ifndef DSV3_TEST_RUNNER_H
#define DSV3_TEST_RUNNER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("  FAIL %s:%d: ", __func__, __LINE__);                                          \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* Failed EXPECTs so far. */
static int dsv3_test_failed_checks;

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);             \
            dsv3_test_failed_checks++;                                                             \
        }                                                                                          \
    } while (0)

typedef struct {
    const char *name;
    int (*fn)(void);
} dsv3_test;

/* xorshift64: deterministic from dsv3_test_seed (tests that want fresh inputs per run set it
 * from the clock and print it). */
static uint64_t dsv3_test_seed = 88172645463325252ull;
static inline uint64_t test_u64(void) {
    dsv3_test_seed ^= dsv3_test_seed << 13;
    dsv3_test_seed ^= dsv3_test_seed >> 7;
    dsv3_test_seed ^= dsv3_test_seed << 17;
    return dsv3_test_seed;
}
/* Fresh inputs per run: the seed from DSV3_TEST_SEED, else from the clock; printed so that a
 * failure can be reproduced. */
static inline void dsv3_test_fresh_seed(void) {
    const char *seed = getenv("DSV3_TEST_SEED");
    dsv3_test_seed = seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL) * 2654435761u;
    if (!dsv3_test_seed) dsv3_test_seed = 1;
    printf("seed %llu (DSV3_TEST_SEED reproduces)\n", (unsigned long long)dsv3_test_seed);
}

/* The whole file at path, NUL-terminated (malloc'd; *len its size without the NUL), or NULL. */
static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1)) != NULL) {
        *len = fread(buf, 1, (size_t)size, f);
        buf[*len] = 0;
    }
    fclose(f);
    return buf;
}

/* Uniform in [-1, 1). */
static inline double urand(void) {
    return (double)(test_u64() >> 11) / 4503599627370496.0 - 1.0;
}

/* pass: what a test returns on success (0, or 1 for tests that return "ok"). */
static inline int dsv3_run_tests(const dsv3_test *t, size_t n, int argc, char **argv, int pass) {
    int passes = 0, failures = 0;
    for (size_t i = 0; i < n; i++) {
        int selected = argc < 2;
        for (int a = 1; a < argc; a++) selected |= strstr(t[i].name, argv[a]) != NULL;
        if (!selected) continue;
        printf("%s\n", t[i].name);
        fflush(stdout);
        const int before = dsv3_test_failed_checks;
        if (t[i].fn() != pass || dsv3_test_failed_checks != before) {
            failures++;
            printf("FAIL %s\n", t[i].name);
        } else {
            passes++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passes, failures);
    return failures != 0;
}
#define DSV3_RUN_TESTS(table, argc, argv)                                                          \
    dsv3_run_tests((table), sizeof(table) / sizeof((table)[0]), (argc), (argv), 0)
#define DSV3_RUN_BOOL_TESTS(table, argc, argv)                                                     \
    dsv3_run_tests((table), sizeof(table) / sizeof((table)[0]), (argc), (argv), 1)

#endif
