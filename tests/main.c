/* main.c - the test program: one translation unit with the implementation and every suite.
   Usage: tests/run [substring]   (runs the tests whose name contains it) */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include "test.h"

ds_test_state T;

#include "test_json.c"
#include "test_tokenizer.c"
#include "test_model.c"

void suite_gradcheck(void); /* tests/gradcheck.c: a double-precision copy of the library */

int main(int argc, char **argv) {
    T.filter = argc > 1 ? argv[1] : NULL;
    suite_json();
    suite_tokenizer();
    suite_model();
    suite_gradcheck();
    printf("%d passed, %d failed, %d skipped\n", T.passed, T.failed, T.skipped);
    return T.failed ? 1 : 0;
}
