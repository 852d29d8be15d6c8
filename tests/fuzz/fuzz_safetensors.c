/* fuzz_safetensors.c - libFuzzer target for the safetensors reader (header, dtypes, shapes, byte
 * ranges) and the config.json reader: the input is split at the first NUL byte into a config.json
 * and a model.safetensors, written to a scratch checkpoint directory and loaded (then, if that
 * works, loaded again as the BF16 inference model, which maps BF16 tensors, and decoded a step).
 *   make fuzz && build/fuzz_safetensors -runs=1000000 tests/fuzz/seeds/safetensors
 * Without libFuzzer: cc -DDS_FUZZ_MAIN ... then `fuzz_safetensors FILE...` replays files. */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static char dir[64]; /* the scratch checkpoint directory, removed at exit */
static void remove_scratch(void) {
    char p[128];
    static const char *const files[] = {"config.json", "model.safetensors", "model.safetensors.tmp", "config.json.tmp"};
    size_t i;
    for (i = 0; i < sizeof files / sizeof files[0]; i++) { snprintf(p, sizeof p, "%s/%s", dir, files[i]); remove(p); }
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[96];
    const uint8_t *nul = (const uint8_t *)memchr(data, 0, size);
    size_t cfg_len = nul ? (size_t)(nul - data) : size;
    ds_error err;
    ds_model *m;
    ds_config c;
    FILE *f;
    int loaded;
    if (!dir[0]) { snprintf(dir, sizeof dir, "/tmp/ds_fuzz_st_%d", (int)getpid()); mkdir(dir, 0755); atexit(remove_scratch); }
    /* config.json alone */
    if (ds_config_from_json((const char *)data, cfg_len, &c, &err) != DS_OK && !err.msg[0]) abort();
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!(f = fopen(path, "wb"))) return 0;
    fwrite(data, 1, cfg_len, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!(f = fopen(path, "wb"))) return 0;
    if (nul) fwrite(nul + 1, 1, size - cfg_len - 1, f);
    fclose(f);
    m = ds_checkpoint_load(dir, 1, 4, NULL, &err);
    loaded = m != NULL;
    if (m) ds_model_free(m);
    else if (!err.msg[0]) abort(); /* a failure must say why */
    if (loaded && (m = ds_checkpoint_load_bf16(dir, &err)) != NULL) { /* and as the BF16 model (mapped BF16 tensors), one decoding step */
        const ds_float *lg;
        if (ds_model_config(m)->max_seq <= 1 << 16 && ds_model_forward_token(m, 0, 0, NULL, &lg, &err) != DS_OK && !err.msg[0]) abort();
        ds_model_free(m);
    }
    return 0;
}

#include "replay_main.h"
