/* main.c - the test program: one translation unit with the implementation and every suite.
   Usage: tests/run [substring]   (runs the tests whose name contains it) */
/* The library allocates through DS_MALLOC/DS_REALLOC/DS_FREE: the tests route them through a
   counter of live bytes and its peak, so a test can bound what an operation allocates beyond what
   it keeps (test_checkpoint_streams_tensors). glibc's malloc_usable_size gives the sizes. */
#define _POSIX_C_SOURCE 200809L /* as deepseek.h would: these includes come first */
#include <malloc.h>
#include <stddef.h>
#include <stdlib.h>
static size_t t_live, t_peak;
static void t_count(size_t add, size_t sub) {
    __atomic_add_fetch(&t_live, add, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&t_live, sub, __ATOMIC_RELAXED);
    if (t_live > t_peak) t_peak = t_live; /* (a racy peak is fine: the tests that read it allocate on one thread) */
}
static void *t_malloc(size_t n) { void *p = malloc(n); if (p) t_count(malloc_usable_size(p), 0); return p; }
static void *t_realloc(void *p, size_t n) {
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    if (q) t_count(malloc_usable_size(q), old);
    return q;
}
static void t_free(void *p) { if (p) t_count(0, malloc_usable_size(p)); free(p); }
#define DS_MALLOC(n) t_malloc(n)
#define DS_REALLOC(p, n) t_realloc(p, n)
#define DS_FREE(p) t_free(p)
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

ds_test_state ds_tstate;
char ds_tdir[64];

/* removes dir and everything under it (the tests' scratch: files and directories only) */
static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[1024];
    if (!d) return;
    while ((de = readdir(d))) {
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_tree(p);
        else remove(p);
    }
    closedir(d);
    rmdir(dir);
}

#include "test_json.c"
#include "test_tokenizer.c"
#include "test_model.c"
#include "test_checkpoint.c"
#include "test_data.c"
#include "test_scaling.c"
#include "test_align.c"
#include "test_dp.c"

void suite_gradcheck(void); /* tests/gradcheck.c: a double-precision copy of the library */

int main(int argc, char **argv) {
    ds_tstate.filter = argc > 1 ? argv[1] : NULL;
    mkdir("build", 0755);
    snprintf(ds_tdir, sizeof ds_tdir, "build/tests-%ld", (long)getpid());
    if (mkdir(ds_tdir, 0755) != 0) { perror(ds_tdir); return 1; }
    suite_json();
    suite_tokenizer();
    suite_model();
    suite_checkpoint();
    suite_data();
    suite_generation();
    suite_scaling();
    suite_align();
    suite_dp();
    free_shared_tokenizers();
    suite_gradcheck();
    if (!ds_tstate.failed) rm_tree(ds_tdir); /* kept after a failure, to look at */
    printf("%d passed, %d failed, %d skipped\n", ds_tstate.passed, ds_tstate.failed, ds_tstate.skipped);
    return ds_tstate.failed ? 1 : 0;
}
