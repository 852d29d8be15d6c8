/* fuzz_tokens.c - libFuzzer target for the DSTOKENS reader (ds_tokens_load) and the sampler
 * (ds_sampler_sample) on arbitrary bytes. The input is written as a token file and loaded: it either
 * loads with every id below its vocabulary and the header's count, or is refused with a reason.
 * The same bytes, read as float logits (temperature and top-p from the first bytes), are sampled:
 * the id is in range, or the call fails with a reason (NaN or infinite logits). Never a crash.
 *   make fuzz && build/fuzz_tokens -runs=1000000 tests/fuzz/seeds/tokens
 * Without libFuzzer: cc -DDS_FUZZ_MAIN ... then `fuzz_tokens FILE...` replays files. */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64]; /* the scratch token file, removed at exit */
static void remove_scratch(void) { remove(path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ds_error err;
    ds_tokens t;
    FILE *f;
    size_t i;
    if (!path[0]) { snprintf(path, sizeof path, "/tmp/ds_fuzz_tokens_%d.tok", (int)getpid()); atexit(remove_scratch); }
    if ((f = fopen(path, "wb"))) {
        fwrite(data, 1, size, f);
        fclose(f);
        memset(&err, 0, sizeof err);
        if (ds_tokens_load(path, &t, &err) == DS_OK) {
            for (i = 0; i < t.n; i++) if (t.ids[i] < 0 || t.ids[i] >= t.vocab) abort();
            if (size != 32 + 4 * t.n) abort();
            ds_tokens_free(&t);
        } else if (!err.msg[0]) abort(); /* a refusal says why */
    }
    if (size >= 2 + sizeof(float)) { /* the sampler on the bytes as logits */
        int V = (int)((size - 2) / sizeof(float));
        float *lg = (float *)malloc((size_t)V * sizeof(float));
        ds_sampler s = ds_sampler_make(data[0] % 4 == 0 ? 0.0 : data[0] / 64.0, data[1] == 0 ? 1.0 : data[1] / 255.0, 7);
        int32_t id = -1;
        int rc;
        if (!lg) return 0;
        memcpy(lg, data + 2, (size_t)V * sizeof(float));
        memset(&err, 0, sizeof err);
        rc = ds_sampler_sample(&s, lg, V, &id, &err);
        if (rc == DS_OK && (id < 0 || id >= V)) abort();
        if (rc != DS_OK && !err.msg[0]) abort();
        ds_sampler_free(&s);
        free(lg);
    }
    return 0;
}

#include "replay_main.h"
