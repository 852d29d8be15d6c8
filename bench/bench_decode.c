/* bench_decode.c - generation throughput of deepseek.h (ds_model_forward_token, greedy), on the
 * model shapes that llama2.c's run.c is measured with:
 *   build/bench_decode 15m|110m|gqa THREADS TOKENS [f32|bf16] [EXPORT.bin]
 * f32 (the default): the float inference model; bf16: the BF16 inference model
 * (ds_checkpoint_load_bf16, through a checkpoint saved to $TMPDIR and removed again).
 * The model is randomly initialised (seed 1337): the speed of a decode step does not depend on
 * the values. With EXPORT.bin it also writes the same weights in llama2.c's checkpoint format
 * (the legacy version 0: a 7-int header, then every tensor in float32, the classifier last), so
 * that run.c runs the very same weights; its RoPE pairs dimensions (2i, 2i+1) where HF's
 * rotate_half pairs (i, i + hd/2), which changes the numbers, not the work. Prints
 * `tokens_per_s=...` last: TOKENS decode steps after the first, as run.c counts. */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* kB of this process's memory in transparent huge pages (Linux; -1 where unknown): the library
   asks for them for its big buffers (ds__hugepages), and the float decode's speed depends on it */
static long huge_kb(void) {
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "AnonHugePages:", 14)) kb = strtol(line + 14, NULL, 10);
    fclose(f);
    return kb;
}

/* tensor i of the model's list, as float32, appended to f */
static int put(FILE *f, ds_model *m, const char *suffix, int layer, ds_error *err) {
    int i;
    char want[64];
    if (layer >= 0) snprintf(want, sizeof want, "model.layers.%d.%s", layer, suffix);
    else snprintf(want, sizeof want, "%s", suffix);
    for (i = 0; ds_model_tensor(m, i); i++) {
        const ds_tensor *t = ds_model_tensor(m, i);
        if (!strcmp(t->name, want)) {
            ds_float *b = (ds_float *)malloc(t->numel * sizeof(ds_float));
            float *o = (float *)malloc(t->numel * sizeof(float));
            size_t k;
            int ok = b && o && !ds_model_get_tensor(m, i, b, err);
            for (k = 0; ok && k < t->numel; k++) o[k] = (float)b[k];
            ok = ok && fwrite(o, sizeof(float), t->numel, f) == t->numel;
            free(b), free(o);
            return ok ? 0 : 1;
        }
    }
    fprintf(stderr, "export: no tensor %s\n", want);
    return 1;
}

static int export_llama2c(ds_model *m, const ds_config *c, const char *path, ds_error *err) {
    FILE *f = fopen(path, "wb");
    int hdr[7], l, p, rc = 0;
    size_t z, hd = (size_t)(c->d_model / c->n_heads);
    float zero = 0;
    static const char *const att[3] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"};
    if (!f) { perror(path); return 1; }
    hdr[0] = c->d_model, hdr[1] = c->d_ff, hdr[2] = c->n_layers, hdr[3] = c->n_heads, hdr[4] = c->n_kv_heads;
    hdr[5] = -c->vocab; /* negative: the classifier is its own tensor (not tied) */
    hdr[6] = c->max_seq;
    fwrite(hdr, sizeof(int), 7, f);
    rc |= put(f, m, "model.embed_tokens.weight", -1, err);
    for (l = 0; l < c->n_layers; l++) rc |= put(f, m, "input_layernorm.weight", l, err);
    for (p = 0; p < 3; p++)
        for (l = 0; l < c->n_layers; l++) rc |= put(f, m, att[p], l, err);
    for (l = 0; l < c->n_layers; l++) rc |= put(f, m, "self_attn.o_proj.weight", l, err);
    for (l = 0; l < c->n_layers; l++) rc |= put(f, m, "post_attention_layernorm.weight", l, err);
    for (l = 0; l < c->n_layers; l++) rc |= put(f, m, "mlp.gate_proj.weight", l, err); /* w1 */
    for (l = 0; l < c->n_layers; l++) rc |= put(f, m, "mlp.down_proj.weight", l, err); /* w2 */
    for (l = 0; l < c->n_layers; l++) rc |= put(f, m, "mlp.up_proj.weight", l, err);   /* w3 */
    rc |= put(f, m, "model.norm.weight", -1, err);
    for (z = 0; z < (size_t)c->max_seq * hd; z++) fwrite(&zero, sizeof zero, 1, f); /* the unused freq_cis_real | imag */
    rc |= put(f, m, "lm_head.weight", -1, err);
    if (fclose(f) != 0) rc = 1;
    return rc;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "15m";
    int threads = argc > 2 ? atoi(argv[2]) : 1, n = argc > 3 ? atoi(argv[3]) : 128, i;
    ds_config c;
    ds_error err;
    ds_model *m;
    ds_pool *pool;
    const ds_float *lg;
    int32_t tok = 1;
    double t0 = 0, t1;
    ds_config_preset("test", &c, &err);
    c.vocab = 32000, c.rope_theta = 10000;
    if (!strcmp(name, "15m")) c.d_model = 288, c.n_layers = 6, c.n_heads = 6, c.n_kv_heads = 6, c.d_ff = 768, c.max_seq = 256;
    else if (!strcmp(name, "110m")) c.d_model = 768, c.n_layers = 12, c.n_heads = 12, c.n_kv_heads = 12, c.d_ff = 2048, c.max_seq = 1024;
    else if (!strcmp(name, "gqa")) c.d_model = 1024, c.n_layers = 8, c.n_heads = 16, c.n_kv_heads = 4, c.d_ff = 2816, c.max_seq = 1024;
    else { fprintf(stderr, "bench_decode: 15m, 110m or gqa\n"); return 2; }
    if (n < 2 || n >= c.max_seq) { fprintf(stderr, "bench_decode: TOKENS in [2, %d)\n", c.max_seq); return 2; }
    if (!(m = ds_model_new(&c, 1, 128, &err)) || ds_model_init(m, 1337) || !(pool = ds_pool_new(threads, &err))) { /* T 128: prefill chunks */
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (argc > 5 && export_llama2c(m, &c, argv[5], &err)) { fprintf(stderr, "export failed\n"); return 1; }
    if (argc > 4 && !strcmp(argv[4], "bf16")) {
        char dir[512];
        const char *tmp = getenv("TMPDIR");
        ds_model *b;
        snprintf(dir, sizeof dir, "%s/ds_bench_decode_%d", tmp ? tmp : "/tmp", (int)getpid());
        if (ds_checkpoint_save(m, NULL, NULL, dir, DS_DTYPE_BF16, &err) || !(b = ds_checkpoint_load_bf16(dir, &err))) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        ds_model_free(m);
        m = b;
        { /* the checkpoint's files, then its directory */
            static const char *const f[] = {"config.json", "model.safetensors"};
            char p[600];
            int k;
            for (k = 0; k < 2; k++) { snprintf(p, sizeof p, "%s/%s", dir, f[k]); remove(p); }
            rmdir(dir);
            snprintf(p, sizeof p, "%s.lock", dir);
            remove(p);
        }
    } else if (argc > 4 && strcmp(argv[4], "f32")) {
        fprintf(stderr, "bench_decode: f32 or bf16\n");
        return 2;
    }
    for (i = 0; i <= n; i++) { /* greedy, as run.c -t 0 */
        int j, best = 0;
        if (i == 1) t0 = ds_now(); /* the first step (cache allocation, cold weights) is not counted */
        if (ds_model_forward_token(m, tok, i, pool, &lg, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        for (j = 1; j < c.vocab; j++) best = lg[j] > lg[best] ? j : best;
        tok = best;
    }
    t1 = ds_now();
    printf("%s (%s): %.1fM parameters, %d threads, %d tokens, %ld kB in huge pages\n", name, argc > 4 ? argv[4] : "f32", ds_model_n_params(m) / 1e6,
           threads, n, huge_kb());
    { /* a 128-token prompt through the batched forward (prefill, either model) */
        int32_t prompt[128], out1;
        int n_out = 0;
        double p0;
        ds_sampler s = ds_sampler_make(0, 1, 0);
        for (i = 0; i < 128; i++) prompt[i] = (int32_t)((i * 7919 + 13) % c.vocab);
        p0 = ds_now();
        if (ds_generate_next(m, 0, prompt, 128, 1, &s, -1, NULL, NULL, &out1, &n_out, pool, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("prefill_tokens_per_s=%.2f (a 128-token prompt, batched)\n", 128 / (ds_now() - p0));
        ds_sampler_free(&s);
    }
    printf("tokens_per_s=%.2f\n", n / (t1 - t0));
    ds_model_free(m);
    ds_pool_free(pool);
    return 0;
}
