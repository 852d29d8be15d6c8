/* fuzz_state.c - libFuzzer target for the trainer state (trainer_state.safetensors): a tiny
 * checkpoint (856 parameters) is saved once to a scratch directory; each input replaces its trainer state and the
 * checkpoint is loaded with it. An input that starts with '{' is the __metadata__ object (step,
 * adam_step, tokens_seen, data_pos, rng, n_params, run: any text), put into an otherwise valid
 * file; any other input is the whole file. The load must succeed with whole numbers in range or
 * fail with a reason; never a crash.
 *   make fuzz && build/fuzz_state -runs=1000000 tests/fuzz/seeds/state
 * Without libFuzzer: cc -DDS_FUZZ_MAIN ... then `fuzz_state FILE...` replays files. */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static char dir[64]; /* the scratch checkpoint directory, removed at exit */
static size_t n_params;
static void remove_scratch(void) {
    char p[128];
    static const char *const files[] = {"config.json", "model.safetensors", "trainer_state.safetensors", "tokenizer.json"};
    size_t i;
    for (i = 0; i < sizeof files / sizeof files[0]; i++) { snprintf(p, sizeof p, "%s/%s", dir, files[i]); remove(p); }
    rmdir(dir);
    snprintf(p, sizeof p, "%s.lock", dir);
    remove(p);
}

static void setup(void) {
    ds_config c;
    ds_error err;
    ds_model *m;
    ds_train_state st;
    snprintf(dir, sizeof dir, "/tmp/ds_fuzz_state_%d", (int)getpid());
    atexit(remove_scratch);
    if (ds_config_preset("test", &c, &err)) abort();
    c.vocab = 16, c.d_model = 8, c.n_heads = 2, c.n_kv_heads = 1, c.d_ff = 16, c.n_layers = 1; /* small files */
    if (!(m = ds_model_new(&c, 1, 4, &err)) || ds_model_init(m, 1)) abort();
    memset(&st, 0, sizeof st);
    if (ds_checkpoint_save(m, NULL, &st, dir, DS_DTYPE_F32, &err)) { fprintf(stderr, "%s\n", err.msg); abort(); }
    n_params = ds_model_n_params(m);
    ds_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[96];
    ds_error err;
    ds_model *m;
    ds_train_state st;
    FILE *f;
    if (!dir[0]) setup();
    snprintf(path, sizeof path, "%s/trainer_state.safetensors", dir);
    if (!(f = fopen(path, "wb"))) return 0;
    if (size && data[0] == '{') { /* the metadata in a valid file: two zero moment vectors */
        ds_buf h = {0, 0, 0, 0};
        unsigned char len8[8];
        size_t b, z;
        static const float zero[1024];
        ds_buf_puts(&h, "{\"__metadata__\":");
        ds_buf_append(&h, data, size);
        ds_buf_printf(&h, ",\"optimizer.exp_avg\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}", n_params, 4 * n_params);
        ds_buf_printf(&h, ",\"optimizer.exp_avg_sq\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}}", n_params, 4 * n_params,
                      8 * n_params);
        while (h.len % 8) ds_buf_puts(&h, " ");
        if (h.oom) abort();
        for (b = 0; b < 8; b++) len8[b] = (unsigned char)((uint64_t)h.len >> (8 * b));
        fwrite(len8, 1, 8, f);
        fwrite(h.data, 1, h.len, f);
        for (z = 0; z < 2 * n_params; z += 1024) fwrite(zero, 4, 2 * n_params - z < 1024 ? 2 * n_params - z : 1024, f);
        ds_buf_free(&h);
    } else {
        fwrite(data, 1, size, f);
    }
    fclose(f);
    memset(&err, 0, sizeof err);
    memset(&st, 0, sizeof st);
    m = ds_checkpoint_load(dir, 1, 4, &st, &err);
    if (m) {
        if (st.step < 0 || ds_model_steps_done(m) < 0 || memchr(st.run, 0, sizeof st.run) == NULL) abort(); /* in range, terminated */
        ds_model_free(m);
    } else if (!err.msg[0]) {
        abort(); /* a failure must say why */
    }
    return 0;
}

#include "replay_main.h"
