/* main.c - the test program: one translation unit with the implementation and every suite.
   Usage: tests/run [substring]   (runs the tests whose name contains it) */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include "test.h"

ds_test_state ds_tstate;

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
    printf("%d passed, %d failed, %d skipped\n", ds_tstate.passed, ds_tstate.failed, ds_tstate.skipped);
    return ds_tstate.failed ? 1 : 0;
}
