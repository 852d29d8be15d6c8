/* cuda_alloc.c - the device memory a CUDA-build model allocates: ds_model_new, then (for bf16)
   ds_model_set_precision, read with cudaMemGetInfo before and after. The configs are those of
   bench/bench_train.c's GPU benchmark, with a layer count of your choice, so that the figure for
   the full depth can be extrapolated from two small ones without a GPU of that size.
     on the CPU emulator (counts its cudaMallocs):
       g++ -std=c++14 -O1 -I tests/cuda/emu -x c++ -o build/cuda_alloc tools/cuda_alloc.c -lm -lpthread
     on a GPU:
       nvcc -O2 -std=c++14 -x cu -o build/cuda/cuda_alloc tools/cuda_alloc.c -lcublasLt -lcublas -lpthread
   Usage: cuda_alloc 125m|1b LAYERS [bf16]   (docs/cuda.md, "The benchmark beside PyTorch") */
#define DS_CUDA
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"

int main(int argc, char **argv) {
    ds_config c;
    ds_error e;
    ds_model *m;
    size_t free0 = 0, free1 = 0, total = 0;
    int big, L, bf16;
    if (argc < 3 || argc > 4 || (strcmp(argv[1], "125m") && strcmp(argv[1], "1b")) || (L = atoi(argv[2])) < 1 ||
        (argc == 4 && strcmp(argv[3], "bf16"))) {
        fprintf(stderr, "usage: cuda_alloc 125m|1b LAYERS [bf16]\n");
        return 2;
    }
    big = !strcmp(argv[1], "1b"), bf16 = argc == 4;
    if (ds_config_preset("tiny", &c, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    c.vocab = 32000, c.d_model = big ? 2048 : 768, c.n_layers = L, c.n_heads = big ? 16 : 12, c.n_kv_heads = big ? 4 : 12;
    c.d_ff = ds_ffn_dim(c.d_model, 256), c.max_seq = big ? 2048 : 1024;
    cudaFree(0); /* the context first, so that it is not counted */
    if (cudaMemGetInfo(&free0, &total) != cudaSuccess) { fprintf(stderr, "cuda_alloc: no device\n"); return 1; }
    if (!(m = ds_model_new(&c, big ? 4 : 16, c.max_seq, &e))) { fprintf(stderr, "%s\n", e.msg); return 1; }
    if (bf16 && ds_model_set_precision(m, DS_PRECISION_BF16, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    cudaMemGetInfo(&free1, &total);
    printf("%s, %d layers, %s: %.1f MiB\n", argv[1], L, bf16 ? "bf16" : "fp32", (double)(free0 - free1) / 1048576.0);
    ds_model_free(m);
    return 0;
}
