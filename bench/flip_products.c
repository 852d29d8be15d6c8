/* flip_products.c - the linears' products of one training step (a config's distinct shapes, each
   as forward, input gradient and weight gradient) from two builds of the header, A and B,
   flipped every call in one process (bench/flip_products.sh builds it). On these noisy 2-core
   machines a product's speed drifts by tens of percent between runs, but two calls a few
   milliseconds apart share the drift: the ratio of the best times is what this is for.
   usage: flip_products CONFIG THREADS REPS fp32|bf16     (CONFIG: tiny, small, medium) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double flip_a(int threads, int bf16, int kind, size_t M, size_t OC, size_t C, float *X, float *W, float *Y);
double flip_b(int threads, int bf16, int kind, size_t M, size_t OC, size_t C, float *X, float *W, float *Y);

static float *filled(size_t n) {
    float *p = (float *)malloc(n * sizeof(float));
    size_t i;
    if (!p) { fprintf(stderr, "flip_products: out of memory\n"); exit(1); }
    for (i = 0; i < n; i++) p[i] = (float)((i * 7919) % 1001) / 1000.0f - 0.5f;
    return p;
}
int main(int argc, char **argv) {
    /* each config's linears as (OC, C): q|k|v, o, gate|up, down, the LM head (../shared/bench) */
    static const size_t tiny[5][2] = {{384, 128}, {128, 128}, {704, 128}, {128, 352}, {512, 128}};
    static const size_t small[5][2] = {{512, 256}, {256, 256}, {1408, 256}, {256, 704}, {4096, 256}};
    static const size_t medium[5][2] = {{1536, 512}, {512, 512}, {2752, 512}, {512, 1376}, {8192, 512}};
    static const char *kinds[3] = {"fwd", "dX", "dW"};
    const size_t (*sh)[2];
    size_t M = 2048, i, maxo = 0, maxc = 0;
    int threads, reps, bf16, r;
    double ta[15], tb[15], sa = 0, sb = 0, flops = 0;
    float *X, *W, *Y;
    if (argc != 5 || (strcmp(argv[4], "fp32") && strcmp(argv[4], "bf16"))) {
        fprintf(stderr, "usage: flip_products tiny|small|medium THREADS REPS fp32|bf16\n");
        return 2;
    }
    sh = !strcmp(argv[1], "tiny") ? tiny : !strcmp(argv[1], "small") ? small : !strcmp(argv[1], "medium") ? medium : NULL;
    threads = atoi(argv[2]), reps = atoi(argv[3]), bf16 = !strcmp(argv[4], "bf16");
    if (!sh || threads < 1 || threads > 256 || reps < 1) { fprintf(stderr, "flip_products: bad arguments\n"); return 2; }
    for (i = 0; i < 5; i++) {
        maxo = sh[i][0] > maxo ? sh[i][0] : maxo, maxc = sh[i][1] > maxc ? sh[i][1] : maxc;
        flops += 3 * 2.0 * (double)M * (double)sh[i][0] * (double)sh[i][1];
    }
    X = filled(M * maxc), W = filled(maxo * maxc), Y = filled(M * maxo);
    for (i = 0; i < 15; i++) ta[i] = tb[i] = 1e30;
    for (r = 0; r < reps; r++)
        for (i = 0; i < 15; i++) {
            size_t OC = sh[i / 3][0], C = sh[i / 3][1];
            int kind = (int)(i % 3);
            double a, b;
            if (r & 1) b = flip_b(threads, bf16, kind, M, OC, C, X, W, Y), a = flip_a(threads, bf16, kind, M, OC, C, X, W, Y);
            else a = flip_a(threads, bf16, kind, M, OC, C, X, W, Y), b = flip_b(threads, bf16, kind, M, OC, C, X, W, Y);
            if (a < 0 || b < 0) { fprintf(stderr, "flip_products: no pool, or no CPU bf16 mode in one of the builds\n"); return 1; }
            ta[i] = a < ta[i] ? a : ta[i], tb[i] = b < tb[i] ? b : tb[i];
        }
    printf("%-24s %10s %10s %8s\n", "product (M x OC x C)", "A us", "B us", "A/B");
    for (i = 0; i < 15; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s %zux%zux%zu", kinds[i % 3], M, sh[i / 3][0], sh[i / 3][1]);
        printf("%-24s %10.1f %10.1f %7.3fx\n", name, ta[i] * 1e6, tb[i] * 1e6, ta[i] / tb[i]);
        sa += ta[i], sb += tb[i];
    }
    printf("all %s, %d thread(s), best of %d: A %.1f GFLOP/s, B %.1f GFLOP/s, B is %.3fx A\n", argv[4], threads, reps, flops / sa * 1e-9,
           flops / sb * 1e-9, sa / sb);
    free(X), free(W), free(Y);
    return 0;
}
