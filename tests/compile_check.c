/* compile_check.c - the header alone (declarations only) must compile cleanly as C99 and C++;
   compile_check_impl.c adds the implementation in a second translation unit, so the two link. */
#include "../deepseek.h"
#include <stdio.h>

int main(void) {
    ds_error err;
    ds_tokenizer *t = ds_tokenizer_from_merges(NULL, 0, &err);
    int ok = t && ds_tokenizer_vocab_size(t) == 258;
    ds_tokenizer_free(t);
    printf("compile check (%s): %s\n", sizeof(void *) == 8 ? "64-bit" : "32-bit", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
