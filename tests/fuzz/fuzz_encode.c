/* fuzz_encode.c - libFuzzer target for the pre-tokenizer and encoder on arbitrary bytes, with a
 * round-trip assertion, and for the chat template: a trained tokenizer (byte-level BPE over the
 * bundled corpus's opening, 1024 tokens, so every byte is covered) encodes the input, and
 * decode(encode(x)) must be x, byte for byte; the input split at NUL bytes into up to 4 messages
 * (user/assistant alternating, an optional system first) must render, with BOS first and a mask
 * of the same length, or be refused with a reason. Never a crash.
 *   make fuzz && build/fuzz_encode -runs=1000000 tests/fuzz/seeds/encode
 * Without libFuzzer: cc -DDS_FUZZ_MAIN ... then `fuzz_encode FILE...` replays files. */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ds_tokenizer *trained(void) {
    static ds_tokenizer *tok;
    static const char text[] = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
                               "\xE5\xAD\x90\xE6\x9B\xB0\xEF\xBC\x9A\xE5\xAD\xA6\xE8\x80\x8C\xE6\x97\xB6\xE4\xB9\xA0\xE4\xB9\x8B 12345 $x = [1, 2];";
    ds_error err;
    if (!tok) {
        ds_bpe_trainer *bt = ds_bpe_trainer_new(&err);
        if (!bt || ds_bpe_trainer_feed(bt, text, sizeof text - 1, &err) || !(tok = ds_bpe_trainer_train(bt, 300, &err))) abort();
        ds_bpe_trainer_free(bt);
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ds_tokenizer *tok = trained();
    ds_error err;
    int32_t *ids = (int32_t *)malloc((size + 2) * sizeof(int32_t));
    size_t n = 0;
    ds_buf out = {0, 0, 0, 0};
    if (!ids) return 0;
    /* the round trip, special strings as plain text */
    if (ds_tokenizer_encode(tok, (const char *)data, size, 0, ids, size + 2, &n, &err) != DS_OK) abort();
    if (ds_tokenizer_decode(tok, ids, n, 0, &out, &err) != DS_OK || out.len != size || (size && memcmp(out.data, data, size))) abort();
    ds_buf_free(&out);
    free(ids);
    { /* the chat template */
        ds_message msgs[5];
        char *copy = (char *)malloc(size + 1), *p;
        int k = 0, rc, sys = size && data[0] == 's';
        ds_seq s;
        static const char *const roles[2] = {"user", "assistant"};
        if (!copy) return 0;
        memcpy(copy, data, size);
        copy[size] = 0;
        p = copy;
        if (sys) msgs[k].role = "system", msgs[k++].content = p + 1, p += strlen(p) + 1;
        while (k < 5 && p <= copy + size) {
            msgs[k].role = roles[(k - sys) % 2], msgs[k++].content = p;
            p += strlen(p) + 1;
        }
        memset(&s, 0, sizeof s);
        memset(&err, 0, sizeof err);
        rc = ds_chat_render(tok, msgs, k, (size & 1) != 0, &s, &err);
        if (rc == DS_OK && (s.n < 1 || s.ids[0] != ds_tokenizer_bos(tok) || s.mask[0])) abort();
        if (rc != DS_OK && !err.msg[0]) abort();
        ds_seq_free(&s);
        free(copy);
    }
    return 0;
}

#include "replay_main.h"
