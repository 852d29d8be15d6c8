/* fuzz_index.c - libFuzzer target for sharded checkpoints' model.safetensors.index.json: a tiny
 * model is saved once as three BF16 shards (tensor k in shard k % 3) in a scratch directory; each
 * input replaces the index, and the checkpoint is loaded by the F32 path and as the BF16 inference
 * model (mapped). Each load must succeed or fail with a reason; never a crash, never a file outside
 * the directory.
 *   make fuzz && build/fuzz_index -runs=1000000 tests/fuzz/seeds/index
 * Without libFuzzer: cc -DDS_FUZZ_MAIN ... then `fuzz_index FILE...` replays files. */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static char dir[64]; /* the scratch checkpoint directory, removed at exit */
static void remove_scratch(void) {
    char p[160];
    static const char *const files[] = {"config.json", "model.safetensors.index.json", "model-00001-of-00003.safetensors",
                                        "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"};
    size_t i;
    for (i = 0; i < sizeof files / sizeof files[0]; i++) { snprintf(p, sizeof p, "%s/%s", dir, files[i]); remove(p); }
    rmdir(dir);
}

static void setup(void) {
    ds_config c;
    ds_error err;
    ds_model *m;
    ds__st_w w[32];
    ds_buf cfg = {0, 0, 0, 0};
    char path[160];
    int s, k, n;
    snprintf(dir, sizeof dir, "/tmp/ds_fuzz_index_%d", (int)getpid());
    mkdir(dir, 0755);
    atexit(remove_scratch);
    if (ds_config_preset("test", &c, &err)) abort();
    c.vocab = 16, c.d_model = 8, c.n_heads = 2, c.n_kv_heads = 1, c.d_ff = 16, c.n_layers = 1;
    if (!(m = ds_model_new(&c, 1, 4, &err)) || ds_model_init(m, 1)) abort();
    for (s = 0; s < 3; s++) {
        for (n = 0, k = s; k < m->n_tensors; k += 3, n++) {
            const ds_tensor *t = &m->tensors[k];
            w[n].name = t->name, w[n].rows = t->rows, w[n].cols = t->cols, w[n].data = m->params + t->offset, w[n].n = t->numel;
            w[n].dtype = DS_DTYPE_BF16, w[n].ex = &m->ex;
        }
        snprintf(path, sizeof path, "%s/model-%05d-of-00003.safetensors", dir, s + 1);
        if (ds__st_save(path, w, n, "{}", &err)) abort();
    }
    if (ds_config_to_json(&m->c, DS_DTYPE_BF16, -1, -1, &cfg, &err)) abort();
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (ds_write_file_atomic(path, cfg.data, cfg.len, &err)) abort();
    ds_buf_free(&cfg);
    ds_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[160];
    ds_error err;
    ds_model *m;
    FILE *f;
    if (!dir[0]) setup();
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!(f = fopen(path, "wb"))) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    memset(&err, 0, sizeof err);
    if ((m = ds_checkpoint_load(dir, 1, 4, NULL, &err))) ds_model_free(m);
    else if (!err.msg[0]) abort();
    memset(&err, 0, sizeof err);
    if ((m = ds_checkpoint_load_bf16(dir, &err))) ds_model_free(m);
    else if (!err.msg[0]) abort();
    return 0;
}

#include "replay_main.h"
