/* flip_side.c - one side of bench/flip_products.sh: a header (DS_HEADER) built static, its
   matmul reached through one exported function, FLIP_NAME. flip_products.c links two such sides,
   built from two headers, and calls them alternately, so both share the machine's noise. */
#define DEEPSEEK_IMPLEMENTATION
#define DEEPSEEK_STATIC
#include DS_HEADER
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
