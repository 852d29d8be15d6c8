/* dump_logits.c - the logits of a checkpoint on a few fixed sequences, for comparing with another
 * implementation (tools/cuda_check.sh: Hugging Face transformers' LlamaForCausalLM).
 *   build/dump_logits CKPT_DIR OUT_PREFIX [B T]
 * Writes OUT_PREFIX.ids (B*T int32, little-endian) and OUT_PREFIX.logits (B*T*V float32), and prints
 * "B T V". Builds as the CPU program (make) or, with nvcc -DDS_CUDA -x cu, as the CUDA one. */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    ds_error err;
    ds_model *m;
    int B = argc > 4 ? atoi(argv[3]) : 3, T = argc > 4 ? atoi(argv[4]) : 32, i, V;
    int32_t *ids;
    ds_float *lg;
    char path[1024];
    FILE *f;
    if (argc != 3 && argc != 5) { fprintf(stderr, "usage: dump_logits CKPT_DIR OUT_PREFIX [B T]\n"); return 2; }
    if (B < 1 || B > 64 || T < 1 || T > 4096) { fprintf(stderr, "B in 1..64, T in 1..4096\n"); return 2; }
    if (!(m = ds_checkpoint_load(argv[1], B, T, NULL, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    V = ds_model_config(m)->vocab;
    ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * (size_t)T);
    lg = (ds_float *)malloc(sizeof(ds_float) * (size_t)B * (size_t)T * (size_t)V);
    if (!ids || !lg) { fprintf(stderr, "out of memory\n"); return 1; }
    for (i = 0; i < B * T; i++) ids[i] = (int32_t)(((uint64_t)i * 2654435761u + 17) % (uint64_t)V); /* fixed, any token */
    if (ds_model_forward(m, ids, NULL, NULL, B, T, NULL, NULL, &err) || ds_model_copy_logits(m, 0, (size_t)B * T, lg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    snprintf(path, sizeof path, "%s.ids", argv[2]);
    if (!(f = fopen(path, "wb")) || fwrite(ids, sizeof(int32_t), (size_t)B * T, f) != (size_t)B * T || fclose(f)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
    snprintf(path, sizeof path, "%s.logits", argv[2]);
    if (!(f = fopen(path, "wb")) || fwrite(lg, sizeof(ds_float), (size_t)B * T * V, f) != (size_t)B * T * V || fclose(f)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
    printf("%d %d %d\n", B, T, V);
    ds_model_free(m);
    free(ids);
    free(lg);
    return 0;
}
