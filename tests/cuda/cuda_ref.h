/* cuda_ref.h - the CPU reference the CUDA tests compare against: deepseek.h's CPU op layer and
   model, built static in tests/cuda/cuda_ref.c (a C file compiled by cc), behind these names. The
   CPU op is the reference; a GPU kernel must match it within tol + |ref| eps. */
#ifndef DS_CUDA_REF_H
#define DS_CUDA_REF_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* ops, on host arrays, on the calling thread (shapes as in deepseek.h's op layer) */
void cref_embedding_forward(float *out, const int32_t *inp, const float *wte, size_t N, size_t D);
void cref_embedding_backward(float *dwte, const float *dout, const int32_t *inp, size_t N, size_t D);
void cref_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, size_t N, size_t D, double eps);
void cref_rmsnorm_backward(float *dx, int acc, float *dw, const float *dout, const float *x, const float *w, const float *rstd, size_t N, size_t D);
void cref_linear_forward(float *out, const float *inp, const float *W, size_t N, size_t C, size_t OC, int acc);
void cref_linear_backward(float *dinp, int acc, float *dW, const float *dout, const float *inp, const float *W, size_t N, size_t C, size_t OC);
void cref_rope(float *qkv, const float *cs, const float *sn, size_t N, size_t T, size_t pos0, size_t H, size_t KV, size_t hd, int backward);
void cref_attention_forward(float *y, float *att, const float *qkv, size_t B, size_t T, size_t H, size_t KV, size_t hd);
void cref_attention_backward(float *dqkv, const float *dy, const float *qkv, const float *att, size_t B, size_t T, size_t H, size_t KV, size_t hd);
void cref_swiglu_forward(float *h, const float *gu, size_t N, size_t F);
void cref_swiglu_backward(float *dgu, const float *dh, const float *gu, size_t N, size_t F);
void cref_crossentropy_forward(float *losses, const float *logits, const int32_t *targets, size_t N, size_t V);
void cref_crossentropy_backward(float *logits, const int32_t *targets, const float *dloss, double scale, size_t N, size_t V);
/* ds_dp's primitives: dst += src; the norm's per-chunk sums of squares (one per 16384 values);
   AdamW over [lo, hi) of two tensors (n_first with weight decay, then n_second without), g, m and v
   holding only that range, at lr and step, clip factor 0.5 */
void cref_accumulate(float *dst, const float *src, size_t n);
void cref_sqnorm_partials(double *out, const float *x, size_t n);
void cref_adamw_range(float *p, const float *g, float *m, float *v, size_t n_first, size_t n_second, size_t lo, size_t hi, double lr, int step);

/* a CPU model (opaque), the same shapes and seeds as ds_model_* */
void *cref_model_new(int vocab, int d_model, int n_layers, int n_heads, int n_kv_heads, int d_ff, int max_seq, int B, int T, uint64_t seed);
void *cref_model_load(const char *dir, int B, int T);
void cref_model_free(void *m);
size_t cref_n_params(void *m);
int cref_n_tensors(void *m);
void cref_tensor(void *m, int i, size_t *offset, size_t *numel);
void cref_params(void *m, float *out);
void cref_set_params(void *m, const float *in);
/* zero_grad, forward (w may be NULL), backward (or backward_tokens with dloss); the loss and the
   flat gradients (may be NULL) out; 0 on success */
int cref_train_grads(void *m, const int32_t *in, const int32_t *tg, const float *w, const float *dloss, int B, int T, double *loss, float *grads);
/* one AdamW step at lr with the library's defaults, after cref_train_grads */
int cref_step(void *m, double lr);
/* the logits of position pos through the KV cache (V values out) */
int cref_forward_token(void *m, int32_t token, int pos, float *logits, int V);
#ifdef __cplusplus
}
#endif
#endif
