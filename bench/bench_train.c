/* bench_train.c - training throughput of deepseek.h on the standard configs of ../shared/bench:
 *   build/bench_train CONFIG [threads] [steps] [seq] [batch] [fp32|bf16]   (seq, batch: override the config's)
 * CONFIG: a preset (tiny, small, medium, ...) or one of the GPU benchmark's LLaMA configs (vocab 32000):
 *   125m  d 768, L 12, H 12 / 12, T 1024, batch 16 (134M parameters)
 *   1b    d 2048, L 20, H 16 / 4 (GQA), T 2048, batch 4 (1.03B parameters)
 * bf16 is the CUDA build's paper mode (ds_model_set_precision); the CUDA build also prints the
 * device memory in use after the timed steps (cudaMemGetInfo: every buffer is allocated by
 * ds_model_new, none per step, so that is the peak) as `device_mem_mib=`.
 * One step = zero_grad + forward + backward + AdamW (with clipping), as torch_llama_train.py
 * times it. Prints `tokens_per_s=... gflops=...` last, with the same FLOP formula:
 * 6 * N_matmul + 12 * L * T * d_attn per token (N_matmul: q,k,v,o,gate,up,down, lm_head). */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "small";
    int threads = argc > 2 ? atoi(argv[2]) : 2, steps = argc > 3 ? atoi(argv[3]) : 20, warmup = 3, B, T, s, i;
    ds_config c;
    ds_error err;
    ds_model *m;
    ds_pool *pool;
    ds_adamw opt = ds_adamw_default();
    int32_t *tok;
    double times[256], flops_per_token, t_fwd = 0, t_bwd = 0, t_opt = 0;
    uint64_t rng = 1337;
    const char *prec = argc > 6 ? argv[6] : "fp32";
    int gpu_config = !strcmp(name, "125m") || !strcmp(name, "1b");
    if (gpu_config) {
        int big = !strcmp(name, "1b");
        if (ds_config_preset("tiny", &c, &err)) { fprintf(stderr, "%s\n", err.msg); return 2; } /* the defaults (theta, eps, init) */
        c.vocab = 32000, c.d_model = big ? 2048 : 768, c.n_layers = big ? 20 : 12, c.n_heads = big ? 16 : 12, c.n_kv_heads = big ? 4 : 12;
        c.d_ff = ds_ffn_dim(c.d_model, 256), c.max_seq = big ? 2048 : 1024;
        B = big ? 4 : 16;
    } else {
        if (ds_config_preset(name, &c, &err)) { fprintf(stderr, "%s\n", err.msg); return 2; }
        B = !strcmp(name, "tiny") ? 16 : 8;
    }
    if (strcmp(prec, "fp32") && strcmp(prec, "bf16")) { fprintf(stderr, "bench_train: precision '%s' (fp32 or bf16)\n", prec); return 2; }
    if (argc > 4) c.max_seq = atoi(argv[4]); /* a longer context: attention's memory and time */
    if (argc > 5) B = atoi(argv[5]);
    T = c.max_seq;
    if (steps > 256) steps = 256;
    m = ds_model_new(&c, B, T, &err);
    pool = ds_pool_new(threads, &err);
    if (!m || !pool) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (!strcmp(prec, "bf16") && ds_model_set_precision(m, DS_PRECISION_BF16, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (gpu_config) {
        /* the GPU configs: weights uniform with init's std (0.02) from a cheap generator, gains 1,
           moments 0, all through ds_model_set. ds_model_init's Box-Muller in double costs ~27 ns a
           parameter on the CPU (28 s for 1b), which the GPU benchmark's few minutes cannot spare;
           the timing does not depend on the values. */
        size_t n = ds_model_n_params(m), j;
        ds_float *w = (ds_float *)calloc(n, sizeof(ds_float));
        uint64_t x = 88172645463325252ull;
        int k;
        if (!w) { fprintf(stderr, "bench_train: out of memory\n"); return 1; }
        if (ds_model_set(m, DS_ADAM_M, 0, n, w, &err) || ds_model_set(m, DS_ADAM_V, 0, n, w, &err)) { fprintf(stderr, "bench_train: %s\n", err.msg); return 1; }
        for (k = 0; k < ds_model_n_tensors(m); k++) {
            const ds_tensor *t = ds_model_tensor(m, k);
            for (j = 0; j < t->numel; j++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                w[t->offset + j] = t->cols ? (ds_float)(((double)(x >> 11) / 9007199254740992.0 * 2 - 1) * 0.0346410161513775) : 1; /* sqrt(3) 0.02 */
            }
        }
        if (ds_model_set(m, DS_PARAMS, 0, n, w, &err)) { fprintf(stderr, "bench_train: %s\n", err.msg); return 1; }
        free(w);
    } else
        ds_model_init(m, 1337);
    tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)(B * T + 1) * (size_t)(steps + warmup));
    for (i = 0; i < (B * T + 1) * (steps + warmup); i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((rng >> 33) % (uint64_t)c.vocab);
    }
    flops_per_token = ds_model_flops_per_token(&c, T); /* 6 N_matmul + 12 L T d_attn, as torch_llama_train.py counts */
    printf("deepseek.h | threads=%d | config %s vocab=%d dim=%d layers=%d heads=%d kv_heads=%d ffn=%d seq=%d batch=%d | %s | %.1fM "
           "parameters | %.4g FLOP a token\n", threads, name, c.vocab, c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.d_ff, T, B, prec,
           ds_config_n_params(&c) / 1e6, flops_per_token);
    for (s = 0; s < steps + warmup; s++) {
        const int32_t *x = tok + (size_t)s * (size_t)(B * T + 1);
        double loss;
        double gn, t0 = ds_now(), t1, t2, t3;
        ds_model_zero_grad(m);
        if (ds_model_forward(m, x, x + 1, NULL, B, T, pool, &loss, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        t1 = ds_now();
        ds_model_backward(m, 1.0f, pool, &err);
        t2 = ds_now();
        ds_model_step(m, &opt, 3e-4, &gn, pool, &err);
        t3 = ds_now();
        printf("step %3d (%s) loss %.4f gnorm %.3f %.1f ms %.0f tok/s\n", s, s < warmup ? "warmup" : "timed", loss, gn, (t3 - t0) * 1e3,
               B * T / (t3 - t0));
        if (s >= warmup) { times[s - warmup] = t3 - t0; t_fwd += t1 - t0; t_bwd += t2 - t1; t_opt += t3 - t2; }
    }
    qsort(times, (size_t)steps, sizeof(double), cmp_d);
    {
        double med = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]), tps = B * T / med;
        printf("time split: forward %.0f%%, backward %.0f%%, optimizer %.0f%%\n", 100 * t_fwd / (t_fwd + t_bwd + t_opt),
               100 * t_bwd / (t_fwd + t_bwd + t_opt), 100 * t_opt / (t_fwd + t_bwd + t_opt));
#ifdef DS_CUDA
        {
            size_t fr = 0, total = 0;
            if (cudaMemGetInfo(&fr, &total) == cudaSuccess) printf("device_mem_mib=%.0f of %.0f\n", (total - fr) / 1048576.0, total / 1048576.0);
        }
#endif
        printf("step_ms median=%.2f\ntokens_per_s=%.1f gflops=%.2f\n", med * 1e3, tps, tps * flops_per_token * 1e-9);
    }
    ds_model_free(m);
    ds_pool_free(pool);
    free(tok);
    return 0;
}
