/* hf_load_check.c - load a Hugging Face-style checkpoint directory written by another program
 * (tools/check_torch.py writes one with PyTorch) and print the loss on the batch stored beside it
 * in DIR/batch.safetensors (I32 "inputs", "targets" of shape [B, T]).
 *   build/hf_load_check DIR */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    ds__st_r r;
    ds_error err;
    ds_model *m;
    char path[1024];
    const ds_json *t;
    int64_t B = 0, T = 0, b0 = 0;
    int32_t *in, *tg;
    double loss;
    if (argc != 2) { fprintf(stderr, "usage: hf_load_check DIR\n"); return 2; }
    snprintf(path, sizeof path, "%s/batch.safetensors", argv[1]);
    if (ds__st_open(&r, path, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    t = ds_json_get(r.doc->root, "inputs");
    if (!t || !ds__jis(ds_json_get(t, "dtype"), "I32")) { fprintf(stderr, "batch: I32 inputs expected\n"); return 1; }
    ds_json_int(ds_json_get(t, "shape")->child, 1, 1 << 20, &B);
    ds_json_int(ds_json_get(t, "shape")->child->next, 1, 1 << 20, &T);
    in = (int32_t *)malloc(sizeof(int32_t) * (size_t)(B * T) * 2);
    tg = in + B * T;
    ds_json_int(ds_json_get(t, "data_offsets")->child, 0, INT64_MAX, &b0);
    memcpy(in, r.data + b0, sizeof(int32_t) * (size_t)(B * T));
    ds_json_int(ds_json_get(ds_json_get(r.doc->root, "targets"), "data_offsets")->child, 0, INT64_MAX, &b0);
    memcpy(tg, r.data + b0, sizeof(int32_t) * (size_t)(B * T));
    ds__st_close(&r);
    if (!(m = ds_checkpoint_load(argv[1], (int)B, (int)T, NULL, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (ds_model_forward(m, in, tg, NULL, (int)B, (int)T, NULL, &loss, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("loss=%.8f\n", loss);
    ds_model_free(m);
    free(in);
    return 0;
}
