/* hf_load_check.c - load a Hugging Face-style checkpoint directory written by another program
 * (tools/check_torch.py writes one with PyTorch) and print the loss on the batch stored beside it
 * in DIR/batch.safetensors (I32 "inputs", "targets" of shape [B, T]).
 *   build/hf_load_check DIR */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the raw bytes of an I32 tensor of the open file */
static int read_i32(ds__st_r *r, const char *name, int32_t *out, size_t n, ds_error *err) {
    const ds_json *t = ds_json_get(r->doc->root, name);
    int64_t b = 0, e = 0;
    if (!t || !ds__jis(ds_json_get(t, "dtype"), "I32")) return ds__fail(err, DS_ERR_FORMAT, "batch: I32 \"%s\" expected", name);
    ds_json_int(ds_json_get(t, "data_offsets")->child, 0, INT64_MAX, &b);
    ds_json_int(ds_json_get(t, "data_offsets")->child->next, 0, INT64_MAX, &e);
    if ((uint64_t)(e - b) != n * 4 || fseek(r->f, (long)(r->data_at + (uint64_t)b), SEEK_SET) || fread(out, 4, n, r->f) != n)
        return ds__fail(err, DS_ERR_FORMAT, "batch: \"%s\" is not [B, T]", name);
    return 0;
}

int main(int argc, char **argv) {
    ds__st_r r;
    ds_error err;
    ds_model *m;
    char path[1024];
    const ds_json *t;
    int64_t B = 0, T = 0;
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
    if (read_i32(&r, "inputs", in, (size_t)(B * T), &err) || read_i32(&r, "targets", tg, (size_t)(B * T), &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    ds__st_close(&r);
    if (!(m = ds_checkpoint_load(argv[1], (int)B, (int)T, NULL, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (ds_model_forward(m, in, tg, NULL, (int)B, (int)T, NULL, &loss, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("loss=%.8f\n", loss);
    ds_model_free(m);
    free(in);
    return 0;
}
