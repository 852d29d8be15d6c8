/* flip_side.c - one side of bench/flip_products.sh: a header (DS_HEADER) built static, its
   matmul reached through one exported function, FLIP_NAME, and a whole training step through
   FLIP_NAME_step. flip_products.c (products) and flip_train.c (steps) link two such sides, built
   from two headers, and call them alternately, so both share the machine's noise. */
#define DEEPSEEK_IMPLEMENTATION
#define DEEPSEEK_STATIC
#include DS_HEADER
#include <stdlib.h>
#include <string.h>

/* One product of a linear of OC x C on M rows: kind 0 the forward (Y = X W^T), 1 the input
   gradient (dX = dY W), 2 the weight gradient (dW += dY^T X); fp32 or, where the build has it,
   the CPU bf16 mode's products. Returns the seconds it took, or -1 (no bf16 here). */
double FLIP_NAME(int threads, int bf16, int kind, size_t M, size_t OC, size_t C, float *X, float *W, float *Y) {
    static ds_pool *pool;
    static int pool_threads;
    double t;
    if (!pool || pool_threads != threads) {
        ds_error err;
        if (pool) ds_pool_free(pool);
        if (!(pool = ds_pool_new(threads, &err))) return -1;
        pool_threads = threads;
    }
#ifndef DS__BF16_DOT
    if (bf16) return -1;
#endif
    t = ds_now();
    if (!bf16) {
        if (kind == 0) ds__matmul_g(pool, Y, OC, X, C, 1, W, C, 1, M, OC, C, 0);
        else if (kind == 1) ds__matmul_g(pool, X, C, Y, OC, 1, W, C, 0, M, C, OC, 0);
        else ds__matmul_g(pool, W, C, Y, 1, OC, X, C, 0, OC, C, M, 1);
    }
#ifdef DS__BF16_DOT
    else {
        if (kind == 0) ds__matmul_bf16(pool, NULL, Y, OC, X, C, 1, W, C, 1, M, OC, C, 0);
        else if (kind == 1) ds__matmul_bf16(pool, NULL, X, C, Y, OC, 1, W, C, 0, M, C, OC, 0);
        else ds__matmul_bf16(pool, NULL, W, C, Y, 1, OC, X, C, 0, OC, C, M, 1);
    }
#endif
    return ds_now() - t;
}

/* One training step of a preset config (zero_grad, forward, backward, AdamW with clipping, as
   bench_train.c times it), on a model, a pool and a batch this side keeps between calls (the
   same batch every step: the time does not depend on the tokens). Returns the seconds it took
   and the loss in *loss, or -1 (bad config, out of memory, no bf16 mode in this build). */
#define FLIP_CAT2(a, b) a##b
#define FLIP_CAT(a, b) FLIP_CAT2(a, b)
double FLIP_CAT(FLIP_NAME, _step)(const char *config, int threads, int bf16, double *loss) {
    static ds_model *m;
    static ds_pool *pool;
    static int32_t *tok;
    static int B, T;
    ds_adamw opt = ds_adamw_default();
    ds_error err;
    double gn, t;
    if (!m) {
        ds_config c;
        uint64_t rng = 1337;
        int i;
        if (ds_config_preset(config, &c, &err)) return -1;
        B = !strcmp(config, "tiny") ? 16 : 8, T = c.max_seq;
        if (!(m = ds_model_new(&c, B, T, &err)) || !(pool = ds_pool_new(threads, &err))) return -1;
        if (bf16 && ds_model_set_precision(m, DS_PRECISION_BF16, &err)) return -1;
        ds_model_init(m, 1337);
        if (!(tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)(B * T + 1)))) return -1;
        for (i = 0; i < B * T + 1; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            tok[i] = (int32_t)((rng >> 33) % (uint64_t)c.vocab);
        }
    }
    t = ds_now();
    ds_model_zero_grad(m);
    if (ds_model_forward(m, tok, tok + 1, NULL, B, T, pool, loss, &err) || ds_model_backward(m, 1.0f, pool, &err) ||
        ds_model_step(m, &opt, 3e-4, &gn, pool, &err))
        return -1;
    return ds_now() - t;
}
