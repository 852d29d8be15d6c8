/* fuzz_tokenizer.c - libFuzzer target for the tokenizer.json loader, and for encode/decode of
 * whatever tokenizer loads.
 *   make fuzz && build/fuzz_tokenizer -runs=1000000 tests/fuzz/seeds/tokenizer
 * Without libFuzzer: cc -DDS_FUZZ_MAIN ... then `fuzz_tokenizer FILE...` replays files. */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ds_error err;
    ds_tokenizer *t = ds_tokenizer_from_json((const char *)data, size, &err);
    if (t) { /* it loaded: it must encode, decode and save without trouble */
        static const char text[] = "Hello, world! 123 \xE4\xB8\x96\xE7\x95\x8C\n\xFF\xC3\xBC <\xEF\xBD\x9C" "end";
        int32_t ids[sizeof text + 2];
        size_t n;
        ds_buf out = {0, 0, 0, 0};
        if (ds_tokenizer_encode(t, text, sizeof text - 1, DS_ENCODE_ALLOW_SPECIAL, ids, sizeof text + 1, &n, &err) == DS_OK)
            ds_tokenizer_decode(t, ids, n, 0, &out, &err);
        ds_buf_free(&out);
        if (ds_tokenizer_to_json(t, &out, &err) == DS_OK) {
            ds_tokenizer *u = ds_tokenizer_from_json(out.data, out.len, &err);
            if (!u) abort(); /* what we save, we load */
            ds_tokenizer_free(u);
        }
        ds_buf_free(&out);
        ds_tokenizer_free(t);
    } else if (!err.msg[0]) {
        abort();
    }
    return 0;
}

#include "replay_main.h"
