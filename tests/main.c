/* main.c - the test program: one translation unit with the implementation and every suite.
   Usage: tests/run [substring]   (runs the tests whose name contains it) */
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
    free_shared_tokenizers();
    suite_gradcheck();
    if (!ds_tstate.failed) rm_tree(ds_tdir); /* kept after a failure, to look at */
    printf("%d passed, %d failed, %d skipped\n", ds_tstate.passed, ds_tstate.failed, ds_tstate.skipped);
    return ds_tstate.failed ? 1 : 0;
}
