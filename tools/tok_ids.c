/* tok_ids.c - deepseek.h encodes a file, one id per line (the counterpart of hf_encode.js).
 *   build/tok_ids tokenizer.json text.txt > ids.txt
 * Special-token strings in the text are matched (DS_ENCODE_ALLOW_SPECIAL), as HF always does. */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    ds_error err;
    ds_tokenizer *t;
    char *text;
    size_t len, n, i;
    int32_t *ids;
    if (argc != 3) { fprintf(stderr, "usage: tok_ids tokenizer.json text.txt\n"); return 2; }
    if (!(t = ds_tokenizer_load(argv[1], &err)) || !(text = ds_read_file(argv[2], 0, &len, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    ids = (int32_t *)malloc((len + 2) * sizeof(int32_t));
    if (!ids || ds_tokenizer_encode(t, text, len, DS_ENCODE_ALLOW_SPECIAL, ids, len + 2, &n, &err)) {
        fprintf(stderr, "%s\n", ids ? err.msg : "out of memory");
        return 1;
    }
    for (i = 0; i < n; i++) printf("%d\n", ids[i]);
    free(ids);
    free(text);
    ds_tokenizer_free(t);
    return 0;
}
