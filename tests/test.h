/* test.h - the tests' tiny runner. Each test is a function; CHECK records a failure and returns
   from it; main() prints one line per test and, last, "N passed, N failed, N skipped". */
#ifndef DS_TEST_H
#define DS_TEST_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic ignored "-Wunused-function" /* each test file uses a subset of the helpers */
#endif

typedef struct { int passed, failed, skipped, cur_failed, cur_skipped; const char *filter; } ds_test_state;
extern ds_test_state ds_tstate; /* defined once, in main.c: every test translation unit reports there */

#define CHECK(cond) do { if (!(cond)) { ds_test_fail(__FILE__, __LINE__, "%s", #cond); return; } } while (0)
#define CHECKF(cond, ...) do { if (!(cond)) { ds_test_fail(__FILE__, __LINE__, __VA_ARGS__); return; } } while (0)
#define CHECK_EQ_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) { ds_test_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, a_, #b, b_); return; } } while (0)
#define CHECK_OK(call) do { ds_error e_; memset(&e_, 0, sizeof e_); int rc_ = (call); \
    if (rc_) { ds_test_fail(__FILE__, __LINE__, "%s failed: %s", #call, e_.msg); return; } } while (0)
#define SKIP(...) do { ds_tstate.cur_skipped = 1; printf("  skip: "); printf(__VA_ARGS__); printf("\n"); return; } while (0)
#define RUN(fn) ds_test_run(#fn, fn)

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static void ds_test_fail(const char *file, int line, const char *fmt, ...);
static void ds_test_run(const char *name, void (*fn)(void));

#include <stdarg.h>
static void ds_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    ds_tstate.cur_failed = 1;
    printf("  %s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static void ds_test_run(const char *name, void (*fn)(void)) {
    if (ds_tstate.filter && !strstr(name, ds_tstate.filter)) return;
    ds_tstate.cur_failed = ds_tstate.cur_skipped = 0;
    fflush(stdout);
    fn();
    if (ds_tstate.cur_failed) { ds_tstate.failed++; printf("FAIL %s\n", name); }
    else if (ds_tstate.cur_skipped) { ds_tstate.skipped++; printf("skip %s\n", name); }
    else { ds_tstate.passed++; printf("ok   %s\n", name); }
    fflush(stdout);
}

/* a small deterministic RNG for the tests (xorshift64*) */
static uint64_t t_rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t t_rand(void);
static double t_uniform(void); /* in [-1, 1) */
static uint64_t t_rand(void) {
    t_rng_state ^= t_rng_state >> 12;
    t_rng_state ^= t_rng_state << 25;
    t_rng_state ^= t_rng_state >> 27;
    return t_rng_state * 0x2545F4914F6CDD1Dull;
}
static double t_uniform(void) { return (double)(t_rand() >> 11) / 4503599627370496.0 - 1.0; }
/* The run's scratch directory, build/tests-<pid> (made by main, removed at the end), so that two
   test programs can run at once: tp("x") is "<dir>/x", in one of 8 rotating buffers. */
extern char ds_tdir[64];
static const char *tp(const char *name);
static const char *tp(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", ds_tdir, name);
    return buf[k];
}
/* the whole flat array `which` of m (DS_PARAMS, DS_GRADS, ...) as a fresh host copy, through the
   portable API, so that the tests read any backend's model the same way (free it) */
static ds_float *t_array(const ds_model *m, int which);
static ds_float *t_array(const ds_model *m, int which) {
    size_t n = ds_model_n_params(m);
    ds_float *a = (ds_float *)malloc(n * sizeof(ds_float) + 1);
    ds_error e;
    if (a && ds_model_get(m, which, 0, n, a, &e)) { free(a); a = NULL; }
    return a;
}
/* 1 when the arrays `which` of two models (the same shape) are bit-identical */
static int t_same(const ds_model *a, const ds_model *b, int which);
static int t_same(const ds_model *a, const ds_model *b, int which) {
    ds_float *x = t_array(a, which), *y = t_array(b, which);
    int same = x && y && ds_model_n_params(a) == ds_model_n_params(b) && memcmp(x, y, ds_model_n_params(a) * sizeof(ds_float)) == 0;
    free(x);
    free(y);
    return same;
}
static char *t_read(const char *path, size_t *len); /* NULL if absent */
static char *t_read(const char *path, size_t *len) {
    ds_error e;
    return ds_read_file(path, 0, len, &e);
}
#endif
