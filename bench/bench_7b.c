/* bench_7b.c - the released 7B's shape on this machine, BF16 inference:
 *   build/bench_7b DIR [TOKENS] [THREADS]
 * Writes (once; kept in DIR for reruns) a random BF16 checkpoint of DeepSeek LLM 7B's shape
 * (../shared/deepseek-tokenizer/config.7b.json: 6.9B parameters, 13.8 GB) as Hugging Face
 * publishes it: two shards and model.safetensors.index.json. Then drops the files from the page
 * cache (posix_fadvise), loads them with ds_checkpoint_load_bf16 (mapped, and every weight checked
 * finite once), and decodes TOKENS tokens greedily, then feeds a 64-token prompt through the batched
 * forward (prefill). Prints the load time, the resident memory after the load and after decoding
 * (VmRSS, VmHWM), and tokens/s of both. Needs ~14 GB of disk and ~19 GB of
 * memory (the weights, and the KV cache for 4096 positions: 4 GB). Not a test. */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) v = atol(line + strlen(key) + 1);
    fclose(f);
    return v;
}

/* one shard: the tensors [k0, k1) of m's list, random bf16 (norms 1.0) */
static int write_shard(const ds_model *m, int k0, int k1, const char *path, uint64_t *rng) {
    ds_buf h = {0, 0, 0, 0};
    unsigned char len8[8];
    size_t off = 0, i;
    uint16_t *chunk = (uint16_t *)malloc(sizeof(uint16_t) << 20);
    FILE *f = fopen(path, "wb");
    int k, b;
    if (!f || !chunk) return 0;
    ds_buf_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (k = k0; k < k1; k++) {
        const ds_tensor *t = ds_model_tensor(m, k);
        if (t->cols) ds_buf_printf(&h, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}", t->name, t->rows, t->cols, off, off + 2 * t->numel);
        else ds_buf_printf(&h, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}", t->name, t->rows, off, off + 2 * t->numel);
        off += 2 * t->numel;
    }
    ds_buf_puts(&h, "}");
    while (h.len % 8) ds_buf_puts(&h, " ");
    for (b = 0; b < 8; b++) len8[b] = (unsigned char)((uint64_t)h.len >> (8 * b));
    fwrite(len8, 1, 8, f);
    fwrite(h.data, 1, h.len, f);
    for (k = k0; k < k1; k++) {
        const ds_tensor *t = ds_model_tensor(m, k);
        size_t done = 0;
        while (done < t->numel) {
            size_t n = t->numel - done < ((size_t)1 << 20) ? t->numel - done : ((size_t)1 << 20);
            for (i = 0; i < n; i++) {
                float v;
                uint32_t u;
                *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
                v = t->cols ? (float)((int)(*rng % 2001) - 1000) * 1.2e-5f : 1.0f; /* |w| <= 0.012, norms 1 */
                memcpy(&u, &v, 4);
                chunk[i] = (uint16_t)(u >> 16);
            }
            if (fwrite(chunk, 2, n, f) != n) return 0;
            done += n;
        }
    }
    free(chunk);
    ds_buf_free(&h);
    return fclose(f) == 0;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp/ds_7b";
    int tokens = argc > 2 ? atoi(argv[2]) : 8, threads = argc > 3 ? atoi(argv[3]) : 2, i, half;
    char path[1024];
    size_t len;
    char *cfg_text;
    ds_config c;
    ds_error err;
    ds_model *shape, *m;
    ds_pool *pool;
    const ds_float *lg;
    int32_t tok = 100000;
    double t0, t1;
    if (!(cfg_text = ds_read_file("../shared/deepseek-tokenizer/config.7b.json", 1 << 20, &len, &err)) || ds_config_from_json(cfg_text, len, &c, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, R_OK) != 0) { /* write it; the tensor list is a BF16 model's, which allocates no weights */
        ds_buf idx = {0, 0, 0, 0};
        uint64_t rng = 88172645463325252ull;
        FILE *f;
        int k;
        mkdir(dir, 0755);
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (!(f = fopen(path, "wb"))) { perror(path); return 1; }
        fwrite(cfg_text, 1, len, f);
        fclose(f);
        if (!(shape = ds__model_new(&c, 1, 1, 1, DS__NEW_BF16, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
        half = ds_model_n_tensors(shape) / 2;
        ds_buf_puts(&idx, "{\"metadata\":{},\"weight_map\":{");
        for (k = 0; k < ds_model_n_tensors(shape); k++)
            ds_buf_printf(&idx, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", k ? "," : "", ds_model_tensor(shape, k)->name, k < half ? 1 : 2);
        ds_buf_puts(&idx, "}}");
        t0 = ds_now();
        for (k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, k + 1);
            if (!write_shard(shape, k ? half : 0, k ? ds_model_n_tensors(shape) : half, path, &rng)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
        }
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (ds_write_file_atomic(path, idx.data, idx.len, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("wrote %s: %zu parameters in 2 BF16 shards in %.1f s\n", dir, ds_model_n_params(shape), ds_now() - t0);
        ds_model_free(shape);
        ds_buf_free(&idx);
    }
    for (i = 0; i < 2; i++) { /* cold: out of the page cache */
        int fd;
        snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, i + 1);
        if ((fd = open(path, O_RDONLY)) >= 0) { fdatasync(fd); posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); close(fd); }
    }
    t0 = ds_now();
    if (!(m = ds_checkpoint_load_bf16(dir, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    t1 = ds_now();
    printf("load (cold, mapped, every weight checked): %.1f s; %.2fB parameters = %.1f GB of bf16; RSS %.1f GB\n", t1 - t0, ds_model_n_params(m) / 1e9,
           2.0 * ds_model_n_params(m) / 1e9, status_kb("VmRSS:") * 1024 / 1e9);
    if (!(pool = ds_pool_new(threads, &err))) return 1;
    for (i = 0; i <= tokens; i++) {
        int j, best = 0;
        if (i == 1) t0 = ds_now();
        if (ds_model_forward_token(m, tok, i, pool, &lg, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        for (j = 1; j < c.vocab; j++) best = lg[j] > lg[best] ? j : best;
        tok = best;
    }
    t1 = ds_now();
    printf("decode: %d tokens, %d threads, %.2f tokens/s; RSS %.1f GB (peak %.1f GB; the KV cache for %d positions: %.1f GB)\n", tokens, threads,
           tokens / (t1 - t0), status_kb("VmRSS:") * 1024 / 1e9, status_kb("VmHWM:") * 1024 / 1e9, c.max_seq,
           2.0 * c.n_layers * c.max_seq * c.n_kv_heads * (c.d_model / c.n_heads) * 4 / 1e9);
    { /* a 64-token prompt after them, through the BF16 model's batched forward (prefill) */
        int32_t prompt[64], next;
        int n_out = 0;
        ds_sampler s = ds_sampler_make(0, 1, 0);
        for (i = 0; i < 64; i++) prompt[i] = (int32_t)((i * 7919 + 13) % c.vocab);
        t0 = ds_now();
        if (ds_generate_next(m, tokens + 1, prompt, 64, 1, &s, -1, NULL, NULL, &next, &n_out, pool, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        t1 = ds_now();
        printf("prefill: a 64-token prompt, batched, %d threads: %.2f tokens/s (%.1f s); RSS %.1f GB\n", threads, 64 / (t1 - t0), t1 - t0,
               status_kb("VmRSS:") * 1024 / 1e9);
        ds_sampler_free(&s);
    }
    ds_model_free(m);
    ds_pool_free(pool);
    free(cfg_text);
    return 0;
}
