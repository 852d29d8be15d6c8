/* fuzz_deepseek.c - libFuzzer target for the real DeepSeek LLM tokenizer (100,000 tokens; read
 * from ../shared/deepseek-tokenizer/tokenizer.json, or $DS_DEEPSEEK_TOKENIZER): arbitrary bytes
 * are encoded and decode(encode(x)) must be x, byte for byte. Excluded, as in Hugging Face: the 13
 * characters ø ö ú ÿ õ ÷ û ý À ù Á þ ü are added tokens of this tokenizer (the spellings of the
 * bytes that never occur in UTF-8), matched in the raw text, so a literal "ü" encodes to 100014 and
 * decodes to the byte 0xFF; they are removed from the input before the round trip. Without the
 * tokenizer file the target says so and checks nothing.
 *   make fuzz && build/fuzz_deepseek -runs=1000000 tests/fuzz/seeds/deepseek
 * Without libFuzzer: cc -DDS_FUZZ_MAIN ... then `fuzz_deepseek FILE...` replays files. */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ds_tokenizer *tok;
static int absent;

/* the second bytes of the 13 lossy characters' UTF-8 spellings (all C3 xx) */
static int lossy(unsigned char b) {
    static const unsigned char second[13] = {0xB8, 0xB6, 0xBA, 0xBF, 0xB5, 0xB7, 0xBB, 0xBD, 0x80, 0xB9, 0x81, 0xBE, 0xBC};
    int i;
    for (i = 0; i < 13; i++)
        if (b == second[i]) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ds_error err;
    int32_t *ids;
    char *x;
    size_t n = 0, i, len = 0;
    ds_buf out = {0, 0, 0, 0};
    if (!tok && !absent) {
        const char *path = getenv("DS_DEEPSEEK_TOKENIZER");
        if (!(tok = ds_tokenizer_load(path ? path : "../shared/deepseek-tokenizer/tokenizer.json", &err))) {
            fprintf(stderr, "fuzz_deepseek: skipped, no DeepSeek tokenizer: %s\n", err.msg);
            absent = 1;
        }
    }
    if (absent) return 0;
    x = (char *)malloc(size + 1);
    ids = (int32_t *)malloc((size + 2) * sizeof(int32_t));
    if (!x || !ids) abort();
    memcpy(x, data, size);
    len = size;
    for (;;) { /* drop the 13 lossy characters, until none is left (a removal can join two bytes into one) */
        size_t w = 0;
        for (i = 0; i < len; i++) {
            if ((unsigned char)x[i] == 0xC3 && i + 1 < len && lossy((unsigned char)x[i + 1])) { i++; continue; }
            x[w++] = x[i];
        }
        if (w == len) break;
        len = w;
    }
    if (ds_tokenizer_encode(tok, x, len, 0, ids, size + 2, &n, &err) != DS_OK) { fprintf(stderr, "%s\n", err.msg); abort(); }
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= ds_tokenizer_vocab_size(tok)) abort();
    if (ds_tokenizer_decode(tok, ids, n, 0, &out, &err) != DS_OK || out.len != len || (len && memcmp(out.data, x, len))) abort();
    ds_buf_free(&out);
    free(ids);
    free(x);
    return 0;
}

#include "replay_main.h"
