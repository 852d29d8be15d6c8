/* fuzz_dataset.c - libFuzzer target for the JSONL dataset reader (SFT and preference rows) with a
 * byte-level tokenizer: every input either loads or is refused line by line, never crashes or leaks.
 *   make fuzz && build/fuzz_dataset -runs=1000000 tests/fuzz/seeds/dataset
 * Without libFuzzer: cc -DDS_FUZZ_MAIN ... then `fuzz_dataset FILE...` replays files. */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long bad_lines;
static void on_bad(void *ctx, long line, const char *msg) {
    (void)ctx;
    if (line < 1 || !msg[0]) abort(); /* every bad line has a number and a reason */
    bad_lines++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ds_tokenizer *tok;
    ds_error err;
    int kind;
    if (!tok) {
        static const int32_t merges[] = {'a', 'b', 's', 'a', ' ', 'c'};
        if (!(tok = ds_tokenizer_from_merges(merges, 3, &err))) abort();
    }
    for (kind = DS_DATA_SFT; kind <= DS_DATA_PREFERENCE; kind++) {
        ds_dataset d;
        int i, rc;
        memset(&d, 0, sizeof d);
        bad_lines = 0;
        rc = ds_dataset_parse(&d, tok, kind, (const char *)data, size, 48, DS_DATA_SKIP_BAD, on_bad, NULL, &err);
        if (rc && rc != DS_ERR_NOMEM) abort(); /* skipping never fails the load */
        if (d.bad != bad_lines || d.n + d.bad > d.lines) abort();
        for (i = 0; i < d.n; i++) { /* every example: in range, cut to 48, something to train */
            const ds_seq *s[2];
            int k, t;
            s[0] = &d.ex[i].seq, s[1] = &d.ex[i].rejected;
            for (k = 0; k < (kind == DS_DATA_PREFERENCE ? 2 : 1); k++) {
                if (s[k]->n < 1 || s[k]->n > 48 || !ds_seq_n_trained(s[k])) abort();
                for (t = 0; t < s[k]->n; t++) if (s[k]->ids[t] < 0 || s[k]->ids[t] >= ds_tokenizer_vocab_size(tok)) abort();
            }
        }
        ds_dataset_free(&d);
        /* strict mode: the same input fails exactly when a line was skipped, naming the line */
        memset(&d, 0, sizeof d);
        rc = ds_dataset_parse(&d, tok, kind, (const char *)data, size, 48, 0, NULL, NULL, &err);
        if (rc != DS_ERR_NOMEM && ((rc != DS_OK) != (bad_lines > 0) || (rc && !strstr(err.msg, "line ")))) abort();
        ds_dataset_free(&d);
    }
    return 0;
}

#include "replay_main.h"
