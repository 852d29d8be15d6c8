/* bench_load.c - checkpoint load time beside torch.load, on the same weights:
 *   build/bench_load DIR       (bench/bench_load.sh runs it and the PyTorch side)
 * Writes (once) the 110M shape of bench_decode (134M parameters, random, seed 1337) as an F32
 * checkpoint in DIR, then times each loader on it, warm (the file in the page cache: the second
 * of two loads): ds_checkpoint_load (a training model: weights, gradients, moments),
 * ds_checkpoint_load_inference (F32 weights), ds_checkpoint_load_bf16 (rounded to bf16 at load).
 * Prints `NAME seconds=... rss_mb=...` lines (RSS right after that load). */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = atol(line + 6) / 1024;
    if (f) fclose(f);
    return v;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp/ds_load";
    char path[1024];
    ds_config c;
    ds_error err;
    ds_model *m;
    int kind, rep;
    static const char *const name[3] = {"ds_checkpoint_load", "ds_checkpoint_load_inference", "ds_checkpoint_load_bf16"};
    ds_config_preset("test", &c, &err);
    c.vocab = 32000, c.d_model = 768, c.n_layers = 12, c.n_heads = 12, c.n_kv_heads = 12, c.d_ff = 2048, c.max_seq = 1024;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, R_OK) != 0) {
        if (!(m = ds_model_new(&c, 1, 1, &err)) || ds_model_init(m, 1337) || ds_checkpoint_save(m, NULL, NULL, dir, DS_DTYPE_F32, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        ds_model_free(m);
    }
    for (kind = 0; kind < 3; kind++)
        for (rep = 0; rep < 2; rep++) {
            double t0 = ds_now(), t;
            long rss;
            m = kind == 0 ? ds_checkpoint_load(dir, 1, 1, NULL, &err) : kind == 1 ? ds_checkpoint_load_inference(dir, 1, 1, &err) : ds_checkpoint_load_bf16(dir, &err);
            t = ds_now() - t0;
            if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
            rss = rss_mb();
            if (rep == 1) printf("%s seconds=%.3f rss_mb=%ld params=%zu\n", name[kind], t, rss, ds_model_n_params(m));
            ds_model_free(m);
        }
    return 0;
}
