/* fuzz_json.c - libFuzzer target for the JSON reader (and writer).
 *   make fuzz && build/fuzz_json -runs=1000000 tests/fuzz/seeds/json
 * Without libFuzzer: cc -DDS_FUZZ_MAIN ... then `fuzz_json FILE...` replays files. */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ds_error err;
    ds_json_doc *doc = ds_json_parse((const char *)data, size, &err);
    if (doc) { /* walk it, and re-serialize every string: the writer must accept what the reader gives */
        const ds_json *stack[DS_JSON_MAX_DEPTH + 2];
        int top = 0;
        ds_buf b = {0, 0, 0, 0};
        stack[top++] = doc->root;
        while (top) {
            const ds_json *j = stack[--top], *k;
            if (j->type == DS_JSON_STRING) ds_buf_json_string(&b, j->str, j->len);
            if (j->key) ds_buf_json_string(&b, j->key, j->key_len);
            for (k = j->child; k && top < DS_JSON_MAX_DEPTH + 1; k = k->next) stack[top++] = k;
        }
        if (!b.oom && !ds_utf8_valid(b.data ? b.data : "", b.len)) abort();
        ds_buf_free(&b);
        ds_json_free(doc);
    } else if (!err.msg[0]) {
        abort(); /* a failure must say why */
    }
    return 0;
}

#include "replay_main.h"
