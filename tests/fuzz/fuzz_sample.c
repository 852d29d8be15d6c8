/* fuzz_sample.c - libFuzzer target for the sampler on arbitrary logits: the input's first 16
 * bytes are the temperature and top_p (two doubles, any bits: NaN, infinity, negative), the rest
 * the logits (floats, any bits), V = their count (1..65536). The draw must give an id in [0, V)
 * or an error with a reason; twice from the same seed, the same answer. Never a crash, never an
 * out-of-bounds read.
 *   make fuzz && build/fuzz_sample -runs=1000000 tests/fuzz/seeds/sample
 * Without libFuzzer: cc -DDS_FUZZ_MAIN ... then `fuzz_sample FILE...` replays files. */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    double temp, top_p;
    size_t V = size >= 16 ? (size - 16) / sizeof(float) : 0;
    float *logits;
    ds_float *l;
    int32_t id1 = -1, id2 = -1;
    int rc1, rc2;
    size_t i;
    ds_error err;
    ds_sampler s;
    if (V < 1 || V > 65536) return 0;
    memcpy(&temp, data, 8);
    memcpy(&top_p, data + 8, 8);
    /* exactly V values, so that ASan sees any read past them */
    logits = (float *)malloc(V * sizeof(float));
    l = (ds_float *)malloc(V * sizeof(ds_float));
    if (!logits || !l) abort();
    memcpy(logits, data + 16, V * sizeof(float));
    for (i = 0; i < V; i++) l[i] = (ds_float)logits[i];
    s = ds_sampler_make(temp, top_p, 42);
    memset(&err, 0, sizeof err);
    rc1 = ds_sampler_sample(&s, l, (int)V, &id1, &err);
    if (rc1 != DS_OK && !err.msg[0]) abort();            /* a refusal says why */
    if (rc1 == DS_OK && (id1 < 0 || (size_t)id1 >= V)) abort(); /* an id of the vocabulary */
    ds_sampler_free(&s);
    s = ds_sampler_make(temp, top_p, 42);
    rc2 = ds_sampler_sample(&s, l, (int)V, &id2, &err);
    if (rc1 != rc2 || id1 != id2) abort(); /* the same seed, the same draw */
    ds_sampler_free(&s);
    free(logits);
    free(l);
    return 0;
}

#include "replay_main.h"
