/* cuda_ref.c - deepseek.h's CPU build, static, behind the names of cuda_ref.h: the reference of
   the CUDA tests (tests/cuda/test_cuda.c links it beside the CUDA build). */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic ignored "-Wunused-function" /* a static copy of the whole library: most of it unused here */
#endif
#define DEEPSEEK_STATIC
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include "cuda_ref.h"

/* the CPU ops' context: the calling thread, host memory, a scratch large enough for the tests */
static ds__exec *cref_ex(void) {
    static ds__exec ex;
    static ds_float work[1 << 20];
    static double partial[1 << 12];
    ex.pool = NULL, ex.host_visible = 1, ex.work = work, ex.work_n = sizeof work / sizeof work[0];
    ex.partial = partial, ex.partial_n = sizeof partial / sizeof partial[0];
    return &ex;
}

/* data parallelism's primitives (ds_dp): accumulate, the norm's chunk sums, AdamW over a range */
void cref_accumulate(float *dst, const float *src, size_t n) { ds__accumulate(cref_ex(), dst, src, n); }
void cref_sqnorm_partials(double *out, const float *x, size_t n) {
    const double *p = ds__sqnorm_partials(cref_ex(), x, n);
    memcpy(out, p, (n + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK * sizeof(double));
}
void cref_adamw_range(float *p, const float *g, float *m, float *v, size_t n_first, size_t n_second, size_t lo, size_t hi, double lr, int step) {
    ds_tensor t[2];
    ds__adamw_hp hp;
    memset(t, 0, sizeof t);
    t[0].offset = 0, t[0].numel = n_first, t[0].decay = 1;
    t[1].offset = n_first, t[1].numel = n_second, t[1].decay = 0;
    hp.lr = lr, hp.b1 = 0.9, hp.b2 = 0.95, hp.eps = 1e-8, hp.wd = 0.1, hp.clip = 0.5;
    hp.bc1 = 1.0 - pow(0.9, step), hp.bc2 = 1.0 - pow(0.95, step);
    ds__adamw_update(cref_ex(), p, g, m, v, t, 2, lo, hi, &hp);
}

void cref_embedding_forward(float *out, const int32_t *inp, const float *wte, size_t N, size_t D) { ds__embedding_forward(cref_ex(), out, inp, wte, N, D); }
void cref_embedding_backward(float *dwte, const float *dout, const int32_t *inp, size_t N, size_t D) { ds__embedding_backward(cref_ex(), dwte, dout, inp, N, D); }
void cref_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, size_t N, size_t D, double eps) {
    ds__rmsnorm_forward(cref_ex(), out, rstd, x, w, N, D, eps);
}
void cref_rmsnorm_backward(float *dx, int acc, float *dw, const float *dout, const float *x, const float *w, const float *rstd, size_t N, size_t D) {
    ds__rmsnorm_backward(cref_ex(), dx, acc, dw, dout, x, w, rstd, N, D);
}
void cref_linear_forward(float *out, const float *inp, const float *W, size_t N, size_t C, size_t OC, int acc) {
    ds__linear_forward(cref_ex(), out, inp, W, N, C, OC, acc);
}
void cref_linear_backward(float *dinp, int acc, float *dW, const float *dout, const float *inp, const float *W, size_t N, size_t C, size_t OC) {
    ds__linear_backward(cref_ex(), dinp, acc, dW, dout, inp, W, N, C, OC);
}
void cref_rope(float *qkv, const float *cs, const float *sn, size_t N, size_t T, size_t pos0, size_t H, size_t KV, size_t hd, int backward) {
    if (backward) ds__rope_backward(cref_ex(), qkv, cs, sn, N, T, pos0, H, KV, hd);
    else ds__rope_forward(cref_ex(), qkv, cs, sn, N, T, pos0, H, KV, hd);
}
void cref_attention_forward(float *y, float *att, const float *qkv, size_t B, size_t T, size_t H, size_t KV, size_t hd) {
    ds__attention_forward(cref_ex(), y, att, qkv, B, T, H, KV, hd);
}
void cref_attention_backward(float *dqkv, const float *dy, const float *qkv, const float *att, size_t B, size_t T, size_t H, size_t KV, size_t hd) {
    ds__attention_backward(cref_ex(), dqkv, dy, NULL, qkv, att, B, T, H, KV, hd);
}
void cref_swiglu_forward(float *h, const float *gu, size_t N, size_t F) { ds__swiglu_forward(cref_ex(), h, gu, N, F); }
void cref_swiglu_backward(float *dgu, const float *dh, const float *gu, size_t N, size_t F) { ds__swiglu_backward(cref_ex(), dgu, dh, gu, N, F); }
void cref_crossentropy_forward(float *losses, const float *logits, const int32_t *targets, size_t N, size_t V) {
    ds__crossentropy_forward(cref_ex(), losses, logits, targets, N, V);
}
void cref_crossentropy_backward(float *logits, const int32_t *targets, const float *dloss, double scale, size_t N, size_t V) {
    ds__crossentropy_backward(cref_ex(), logits, targets, dloss, scale, N, V);
}

void *cref_model_new(int vocab, int d_model, int n_layers, int n_heads, int n_kv_heads, int d_ff, int max_seq, int B, int T, uint64_t seed) {
    ds_config c;
    ds_error e;
    ds_model *m;
    ds_config_preset("test", &c, &e);
    c.vocab = vocab, c.d_model = d_model, c.n_layers = n_layers, c.n_heads = n_heads, c.n_kv_heads = n_kv_heads, c.d_ff = d_ff, c.max_seq = max_seq;
    if ((m = ds_model_new(&c, B, T, &e))) ds_model_init(m, seed);
    return m;
}
void *cref_model_load(const char *dir, int B, int T) {
    ds_error e;
    return ds_checkpoint_load(dir, B, T, NULL, &e);
}
void cref_model_free(void *m) { ds_model_free((ds_model *)m); }
size_t cref_n_params(void *m) { return ds_model_n_params((ds_model *)m); }
int cref_n_tensors(void *m) { return ds_model_n_tensors((ds_model *)m); }
void cref_tensor(void *m, int i, size_t *offset, size_t *numel) {
    const ds_tensor *t = ds_model_tensor((ds_model *)m, i);
    *offset = t ? t->offset : 0, *numel = t ? t->numel : 0;
}
void cref_params(void *m, float *out) { memcpy(out, ds_model_params((ds_model *)m), ds_model_n_params((ds_model *)m) * sizeof(float)); }
void cref_set_params(void *m, const float *in) { memcpy(ds_model_params((ds_model *)m), in, ds_model_n_params((ds_model *)m) * sizeof(float)); }
int cref_train_grads(void *mp, const int32_t *in, const int32_t *tg, const float *w, const float *dloss, int B, int T, double *loss, float *grads) {
    ds_model *m = (ds_model *)mp;
    ds_error e;
    ds_model_zero_grad(m);
    if (ds_model_forward(m, in, tg, w, B, T, NULL, loss, &e)) return 1;
    if (dloss ? ds_model_backward_tokens(m, dloss, NULL, &e) : ds_model_backward(m, 1.0f, NULL, &e)) return 1;
    if (grads) memcpy(grads, ds_model_grads(m), ds_model_n_params(m) * sizeof(float));
    return 0;
}
int cref_step(void *m, double lr) {
    ds_adamw opt = ds_adamw_default();
    ds_error e;
    return ds_model_step((ds_model *)m, &opt, lr, NULL, NULL, &e) != DS_OK;
}
int cref_forward_token(void *m, int32_t token, int pos, float *logits, int V) {
    const ds_float *lg = NULL;
    ds_error e;
    if (ds_model_forward_token((ds_model *)m, token, pos, NULL, &lg, &e) || !lg) return 1;
    memcpy(logits, lg, (size_t)V * sizeof(float));
    return 0;
}
