/* gradcheck.c - finite-difference checks of every backward pass, in a double-precision build of
   the header (DS_DOUBLE), kept static so it links beside the float build in one test program. */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define DS_DOUBLE
#define DEEPSEEK_STATIC
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include "test.h"

void suite_gradcheck(void);

/* relative error |a - n| / max(|a|, |n|, floor) */
static double relerr(double a, double n) {
    double d = fabs(a - n), s = fabs(a) > fabs(n) ? fabs(a) : fabs(n);
    return d / (s > 1e-4 ? s : 1e-4); /* below 1e-4 in size, an absolute error */
}

/* d loss / d params[i] by the 4-point stencil (f(-2h) - 8 f(-h) + 8 f(h) - f(2h)) / 12h, whose
   error is O(h^4): with h = 1e-4 truncation is negligible and rounding stays near 1e-12. The loss is
   recomputed in double from the per-token losses. */
static double fd_loss_slope(ds_model *m, size_t i, const int32_t *in, const int32_t *tg, const float *w, int B, int T) {
    static const double off[4] = {-2, -1, 1, 2}, coef[4] = {1, -8, 8, -1};
    double keep = m->params[i], h = 1e-4, acc = 0;
    ds_error e;
    int s;
    size_t k;
    for (s = 0; s < 4; s++) {
        double l = 0, ws = 0;
        m->params[i] = keep + off[s] * h;
        ds_model_forward(m, in, tg, w, B, T, NULL, NULL, &e);
        for (k = 0; k < (size_t)(B * T); k++) { l += w[k] * m->losses[k]; ws += w[k]; }
        acc += coef[s] * l / ws;
    }
    m->params[i] = keep;
    return acc / (12 * h);
}

/* The whole model on a random config: every parameter's gradient against central differences
   of the loss. Returns the largest error: per tensor ||g - fd|| / ||fd||, and per element
   |g - fd| / max(|g|, |fd|) where |fd| > 1e-6. */
static double model_gradcheck(int V, int D, int L, int H, int KV, int F, int B, int T, uint64_t seed, int weighted, int *n_checked) {
    ds_config c;
    ds_model *m;
    ds_error e;
    int32_t in[64], tg[64];
    float w[64];
    double worst = 0;
    size_t i, n;
    ds_float *g;
    ds_config_preset("test", &c, &e);
    c.vocab = V, c.d_model = D, c.n_layers = L, c.n_heads = H, c.n_kv_heads = KV, c.d_ff = F, c.max_seq = T;
    c.init_std = 0.3; /* large weights, so every path carries a visible gradient */
    m = ds_model_new(&c, B, T, &e);
    if (!m) { printf("  %s\n", e.msg); return 1e9; }
    ds_model_init(m, seed);
    for (i = 0; i < (size_t)(B * T); i++) {
        in[i] = (int32_t)(t_rand() % (uint64_t)V);
        tg[i] = (int32_t)(t_rand() % (uint64_t)V);
        w[i] = weighted ? (float)(t_rand() % 3) * 0.5f : 1.0f;
    }
    { /* RMSNorm gains away from 1, so their gradients are exercised too */
        int k;
        for (k = 0; k < m->n_tensors; k++)
            if (!m->tensors[k].cols)
                for (i = 0; i < m->tensors[k].numel; i++) m->params[m->tensors[k].offset + i] = 1 + 0.5 * t_uniform();
    }
    ds_model_zero_grad(m);
    ds_model_forward(m, in, tg, w, B, T, NULL, NULL, &e);
    ds_model_backward(m, 1.0f, NULL, &e);
    n = ds_model_n_params(m);
    g = (ds_float *)malloc(n * sizeof(ds_float));
    memcpy(g, m->grads, n * sizeof(ds_float));
    *n_checked = 0;
    {
        int t;
        for (t = 0; t < m->n_tensors; t++) { /* per tensor: ||g - num|| / ||num||, and element-wise */
            const ds_tensor *tn = &m->tensors[t];
            double dd = 0, nn = 0;
            for (i = tn->offset; i < tn->offset + tn->numel; i++) {
                double num = fd_loss_slope(m, i, in, tg, w, B, T), r;
                dd += (g[i] - num) * (g[i] - num);
                nn += num * num;
                if (fabs(num) > 1e-6) {
                    r = relerr(g[i], num);
                    if (r > worst) worst = r;
                }
                (*n_checked)++;
            }
            if (nn > 0 && sqrt(dd / nn) > worst) worst = sqrt(dd / nn);
        }
    }
    free(g);
    ds_model_free(m);
    return worst;
}

static void test_gradcheck_model_mha(void) {
    int n;
    double r = model_gradcheck(11, 8, 2, 2, 2, 12, 2, 5, 1, 0, &n);
    printf("  MHA  V=11 D=8 L=2 H=2 KV=2 F=12 B=2 T=5: %d gradients, max relative error %.2e\n", n, r);
    CHECKF(r < 1e-6, "max relative error %g", r);
}
static void test_gradcheck_model_gqa_odd_sizes(void) {
    int n;
    double r = model_gradcheck(13, 12, 2, 3, 1, 20, 2, 6, 2, 1, &n); /* hd 4, 3 query heads share 1 kv head, weighted tokens */
    printf("  GQA  V=13 D=12 L=2 H=3 KV=1 F=20 B=2 T=6 (weighted tokens): %d gradients, max relative error %.2e\n", n, r);
    CHECKF(r < 1e-6, "max relative error %g", r);
}
static void test_gradcheck_model_gqa_groups(void) {
    int n;
    double r = model_gradcheck(9, 16, 1, 4, 2, 24, 3, 7, 3, 0, &n);
    printf("  GQA  V=9 D=16 L=1 H=4 KV=2 F=24 B=3 T=7: %d gradients, max relative error %.2e\n", n, r);
    CHECKF(r < 1e-6, "max relative error %g", r);
}

/* Each op alone: the scalar objective J = sum(dout * op(x)), whose gradient op_backward(dout)
   computes. fd() differentiates J numerically at one input with the same 4-point stencil. */
static double fd(double (*J)(void *), void *ctx, ds_float *p) {
    static const double off[4] = {-2, -1, 1, 2}, coef[4] = {1, -8, 8, -1};
    double keep = *p, h = 1e-3, acc = 0;
    int s;
    for (s = 0; s < 4; s++) { *p = keep + off[s] * h; acc += coef[s] * J(ctx); }
    *p = keep;
    return acc / (12 * h);
}
static double dotp(const ds_float *a, const ds_float *b, size_t n) {
    double s = 0;
    size_t i;
    for (i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* the ops' execution context for these checks: the calling thread, host memory, a scratch */
static ds_float g_work[16384];
static ds__exec g_ex = {NULL, 1, g_work, 16384, NULL, 0, 0, NULL};

enum { RN = 3, RD = 7 };
typedef struct { ds_float x[RN * RD], w[RD], out[RN * RD], rstd[RN], dout[RN * RD], dx[RN * RD], dw[RD]; } rms_ck;
static double rms_J(void *c) {
    rms_ck *k = (rms_ck *)c;
    ds__rmsnorm_forward(&g_ex, k->out, k->rstd, k->x, k->w, RN, RD, 1e-6);
    return dotp(k->dout, k->out, RN * RD);
}
static double op_check_rmsnorm(void) {
    static rms_ck k;
    double worst = 0, base[RN * RD];
    size_t i;
    for (i = 0; i < RN * RD; i++) { k.x[i] = t_uniform(); k.dout[i] = t_uniform(); k.dx[i] = base[i] = t_uniform(); }
    for (i = 0; i < RD; i++) { k.w[i] = 1 + 0.5 * t_uniform(); k.dw[i] = 0; }
    rms_J(&k);
    ds__rmsnorm_backward(&g_ex, k.dx, 1, k.dw, k.dout, k.x, k.w, k.rstd, RN, RD); /* dx += : starts from base */
    for (i = 0; i < RN * RD; i++) { double r = relerr(k.dx[i] - base[i], fd(rms_J, &k, &k.x[i])); if (r > worst) worst = r; }
    for (i = 0; i < RD; i++) { double r = relerr(k.dw[i], fd(rms_J, &k, &k.w[i])); if (r > worst) worst = r; }
    for (i = 0; i < RD; i++) k.dw[i] = 0;
    ds__rmsnorm_backward(&g_ex, k.dx, 0, k.dw, k.dout, k.x, k.w, k.rstd, RN, RD); /* dx = : written */
    for (i = 0; i < RN * RD; i++) { double r = relerr(k.dx[i], fd(rms_J, &k, &k.x[i])); if (r > worst) worst = r; }
    return worst;
}

/* linear with accumulate: out = base + inp W^T, for N = 4 (the matmul tile) and N = 1 (the
   matrix-vector product decoding uses); both backward outputs */
enum { LN = 4, LC = 5, LO = 7 };
typedef struct { ds_float inp[LN * LC], W[LO * LC], out[LN * LO], base[LN * LO], dout[LN * LO], dinp[LN * LC], dW[LO * LC]; size_t n; } lin_ck;
static double lin_J(void *c) {
    lin_ck *k = (lin_ck *)c;
    memcpy(k->out, k->base, sizeof k->out);
    ds__linear_forward(&g_ex, k->out, k->inp, k->W, k->n, LC, LO, 1);
    return dotp(k->dout, k->out, k->n * LO);
}
static double op_check_linear(void) {
    static lin_ck k;
    double worst = 0;
    size_t i, pass;
    for (pass = 0; pass < 2; pass++) {
        k.n = pass ? 1 : LN;
        for (i = 0; i < LN * LC; i++) { k.inp[i] = t_uniform(); k.dinp[i] = 0; }
        for (i = 0; i < LO * LC; i++) { k.W[i] = t_uniform(); k.dW[i] = 0; }
        for (i = 0; i < LN * LO; i++) { k.base[i] = t_uniform(); k.dout[i] = t_uniform(); }
        ds__linear_backward(&g_ex, k.dinp, 0, k.dW, k.dout, k.inp, k.W, k.n, LC, LO);
        for (i = 0; i < k.n * LC; i++) { double r = relerr(k.dinp[i], fd(lin_J, &k, &k.inp[i])); if (r > worst) worst = r; }
        for (i = 0; i < LO * LC; i++) { double r = relerr(k.dW[i], fd(lin_J, &k, &k.W[i])); if (r > worst) worst = r; }
    }
    return worst;
}

/* the embedding gather: J = sum(dout * wte[inp]) with repeated ids, so rows accumulate */
enum { EN = 6, EV = 5, ED = 3 };
typedef struct { ds_float w[EV * ED], out[EN * ED], dout[EN * ED], dw[EV * ED]; int32_t ids[EN]; } emb_ck;
static double emb_J(void *c) {
    emb_ck *k = (emb_ck *)c;
    ds__embedding_forward(&g_ex, k->out, k->ids, k->w, EN, ED);
    return dotp(k->dout, k->out, EN * ED);
}
static double op_check_embedding(void) {
    static emb_ck k;
    static const int32_t ids[EN] = {1, 3, 1, 0, 3, 1};
    double worst = 0;
    size_t i;
    memcpy(k.ids, ids, sizeof ids);
    for (i = 0; i < EV * ED; i++) { k.w[i] = t_uniform(); k.dw[i] = 0; }
    for (i = 0; i < EN * ED; i++) k.dout[i] = t_uniform();
    ds__embedding_backward(&g_ex, k.dw, k.dout, k.ids, EN, ED);
    for (i = 0; i < EV * ED; i++) { double r = relerr(k.dw[i], fd(emb_J, &k, &k.w[i])); if (r > worst) worst = r; }
    return worst;
}

/* rope then attention on one q|k|v buffer: B=2, T=4, H=4, KV=2 (GQA), hd=4; each op alone too */
enum { AB = 2, AT = 4, AH = 4, AKV = 2, AHD = 4, AQ = (AH + 2 * AKV) * AHD, AN = AB * AT };
typedef struct {
    ds_float qkv[AN * AQ], work[AN * AQ], y[AN * AH * AHD], att[AB * AH * AT * AT], dy[AN * AH * AHD], dqkv[AN * AQ], dq2[AN * AQ];
    ds_float cs[AT * AHD / 2], sn[AT * AHD / 2];
    int rope, attn;
} att_ck;
static double att_J(void *c) {
    att_ck *k = (att_ck *)c;
    memcpy(k->work, k->qkv, sizeof k->work);
    if (k->rope) ds__rope_forward(&g_ex, k->work, k->cs, k->sn, AN, AT, 0, AH, AKV, AHD);
    if (!k->attn) return dotp(k->dq2, k->work, AN * AQ); /* rope alone: J = sum(dout * rope(x)) */
    ds__attention_forward(&g_ex, k->y, k->att, k->work, AB, AT, AH, AKV, AHD);
    return dotp(k->dy, k->y, AN * AH * AHD);
}
static double op_check_rope_attention(void) {
    static att_ck k;
    double worst = 0;
    size_t i, j, pass;
    for (i = 0; i < AT; i++)
        for (j = 0; j < AHD / 2; j++) {
            double ang = (double)i * pow(10000.0, -2.0 * (double)j / AHD);
            k.cs[i * AHD / 2 + j] = cos(ang), k.sn[i * AHD / 2 + j] = sin(ang);
        }
    for (pass = 0; pass < 3; pass++) { /* rope + attention, attention alone, rope alone */
        k.rope = pass != 1, k.attn = pass != 2;
        for (i = 0; i < AN * AQ; i++) { k.qkv[i] = t_uniform(); k.dqkv[i] = t_uniform(); k.dq2[i] = t_uniform(); }
        for (i = 0; i < AN * AH * AHD; i++) k.dy[i] = t_uniform();
        att_J(&k);
        if (k.attn) ds__attention_backward(&g_ex, k.dqkv, k.dy, k.y, k.work, k.att, AB, AT, AH, AKV, AHD); /* writes dqkv */
        else memcpy(k.dqkv, k.dq2, sizeof k.dqkv);
        if (k.rope) ds__rope_backward(&g_ex, k.dqkv, k.cs, k.sn, AN, AT, 0, AH, AKV, AHD);
        for (i = 0; i < AN * AQ; i++) { double r = relerr(k.dqkv[i], fd(att_J, &k, &k.qkv[i])); if (r > worst) worst = r; }
    }
    return worst;
}

/* attention over several row blocks (T = 70: blocks of 32, 32 and 6 rows, so the causal tiles,
   the partial last block and the backward's recomputed probabilities are all exercised) */
enum { BT = 70, BH = 2, BKV = 1, BHD = 4, BQ = (BH + 2 * BKV) * BHD };
typedef struct { ds_float qkv[BT * BQ], y[BT * BH * BHD], saved[BH * BT * 2], dy[BT * BH * BHD], dqkv[BT * BQ]; } attb_ck;
static double attb_J(void *c) {
    attb_ck *k = (attb_ck *)c;
    ds__attention_forward(&g_ex, k->y, k->saved, k->qkv, 1, BT, BH, BKV, BHD);
    return dotp(k->dy, k->y, BT * BH * BHD);
}
static double op_check_attention_blocks(void) {
    static attb_ck k;
    double worst = 0;
    size_t i;
    for (i = 0; i < BT * BQ; i++) k.qkv[i] = 2 * t_uniform();
    for (i = 0; i < BT * BH * BHD; i++) k.dy[i] = t_uniform();
    attb_J(&k);
    ds__attention_backward(&g_ex, k.dqkv, k.dy, k.y, k.qkv, k.saved, 1, BT, BH, BKV, BHD);
    for (i = 0; i < BT * BQ; i++) { double r = relerr(k.dqkv[i], fd(attb_J, &k, &k.qkv[i])); if (r > worst) worst = r; }
    return worst;
}

/* decoding's attention over a KV cache equals the training attention's row, position by position */
static double op_check_attention_decode(void) {
    static ds_float qkv[AT * AQ], y[AT * AH * AHD], att[AH * AT * AT], kc[AT * AKV * AHD], vc[AT * AKV * AHD], yd[AH * AHD];
    double worst = 0;
    size_t i, t;
    for (i = 0; i < AT * AQ; i++) qkv[i] = t_uniform();
    ds__attention_forward(&g_ex, y, att, qkv, 1, AT, AH, AKV, AHD);
    for (t = 0; t < AT; t++) {
        ds__kv_store(&g_ex, kc, vc, qkv + t * AQ, t, AH, AKV, AHD);
        ds__attention_decode(&g_ex, yd, qkv + t * AQ, kc, vc, t, AH, AKV, AHD);
        for (i = 0; i < AH * AHD; i++) { double r = relerr(yd[i], y[t * AH * AHD + i]); if (r > worst) worst = r; }
    }
    return worst;
}

enum { GN = 3, GF = 5 };
typedef struct { ds_float gu[GN * 2 * GF], h[GN * GF], dh[GN * GF], dgu[GN * 2 * GF]; } glu_ck;
static double glu_J(void *c) {
    glu_ck *k = (glu_ck *)c;
    ds__swiglu_forward(&g_ex, k->h, k->gu, GN, GF);
    return dotp(k->dh, k->h, GN * GF);
}
static double op_check_swiglu(void) {
    static glu_ck k;
    double worst = 0;
    size_t i;
    for (i = 0; i < GN * 2 * GF; i++) k.gu[i] = 3 * t_uniform();
    for (i = 0; i < GN * GF; i++) k.dh[i] = t_uniform();
    ds__swiglu_backward(&g_ex, k.dgu, k.dh, k.gu, GN, GF);
    for (i = 0; i < GN * 2 * GF; i++) { double r = relerr(k.dgu[i], fd(glu_J, &k, &k.gu[i])); if (r > worst) worst = r; }
    return worst;
}

/* loss = weighted-mean cross-entropy of inp W^T: the cross-entropy and the linear's backward */
enum { XN = 5, XC = 6, XV = 9 };
typedef struct { ds_float inp[XN * XC], W[XV * XC], logits[XN * XV], losses[XN], dinp[XN * XC], dW[XV * XC]; int32_t tg[XN]; ds_float wt[XN]; double scale; } xent_ck;
static double xent_J(void *c) {
    xent_ck *k = (xent_ck *)c;
    double s = 0;
    size_t i;
    ds__linear_forward(&g_ex, k->logits, k->inp, k->W, XN, XC, XV, 0);
    ds__crossentropy_forward(&g_ex, k->losses, k->logits, k->tg, XN, XV);
    for (i = 0; i < XN; i++) s += k->wt[i] * k->losses[i] * k->scale;
    return s;
}
static double op_check_xent_and_linear(void) {
    static xent_ck k;
    static const float wt[XN] = {1, 0.5f, 0, 2, 1};
    double worst = 0;
    size_t i;
    for (i = 0; i < XN * XC; i++) k.inp[i] = t_uniform();
    for (i = 0; i < XV * XC; i++) { k.W[i] = t_uniform(); k.dW[i] = 0; }
    for (i = 0; i < XN; i++) { k.tg[i] = (int32_t)(t_rand() % XV); k.wt[i] = wt[i]; }
    k.scale = 1.0 / 4.5;
    ds__linear_forward(&g_ex, k.logits, k.inp, k.W, XN, XC, XV, 0);
    ds__crossentropy_backward(&g_ex, k.logits, k.tg, k.wt, k.scale, XN, XV);
    ds__linear_backward(&g_ex, k.dinp, 0, k.dW, k.logits, k.inp, k.W, XN, XC, XV);
    for (i = 0; i < XN * XC; i++) { double r = relerr(k.dinp[i], fd(xent_J, &k, &k.inp[i])); if (r > worst) worst = r; }
    for (i = 0; i < XV * XC; i++) { double r = relerr(k.dW[i], fd(xent_J, &k, &k.W[i])); if (r > worst) worst = r; }
    return worst;
}

/* ---- DPO: the loss of two preference pairs through the whole model ---------------------------- */
static double dpo_J(ds_model *m, const ds_dpo *cfg, const ds_example *const *pairs, const double *rc, const double *rr) {
    double pc[2] = {0, 0}, pr[2] = {0, 0};
    ds_dpo_stats st;
    ds_error e;
    if (ds_dpo_logps(m, pairs, 2, 8, cfg, NULL, pc, pr, &e)) return NAN;
    ds_dpo_loss(cfg, 2, pc, pr, rc, rr, &st, NULL, NULL);
    return st.loss;
}

static double dpo_gradcheck(const ds_dpo *cfg) {
    static const int32_t ids[4][9] = {{1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 9, 8, 7, 0, 0}, {5, 5, 6, 1, 2, 3, 0, 0, 0}, {5, 5, 6, 7, 7, 7, 7, 7, 7}};
    static const uint8_t mask[4][9] = {{0, 0, 0, 0, 1, 1, 1, 1, 1}, {0, 0, 0, 0, 1, 1, 1, 0, 0}, {0, 0, 0, 1, 1, 1, 0, 0, 0}, {0, 0, 0, 1, 1, 1, 1, 1, 1}};
    static const int len[4] = {9, 7, 6, 9};
    ds_example ex[2];
    const ds_example *pairs[2];
    double rc[2] = {-9.5, -7.25}, rr[2] = {-8.0, -11.0}, worst = 0, gn = 0;
    ds_config c;
    ds_model *m;
    ds_error e;
    size_t i, n;
    int k;
    ds_config_preset("test", &c, &e);
    c.vocab = 16, c.d_model = 8, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1, c.d_ff = 12, c.max_seq = 8, c.init_std = 0.3;
    if (!(m = ds_model_new(&c, 4, 8, &e))) return 1e9;
    ds_model_init(m, 7);
    for (k = 0; k < 4; k++) {
        ds_seq *s = k % 2 ? &ex[k / 2].rejected : &ex[k / 2].seq;
        s->ids = (int32_t *)ids[k], s->mask = (uint8_t *)mask[k], s->n = len[k], s->cap = 0;
    }
    pairs[0] = &ex[0], pairs[1] = &ex[1];
    ds_model_zero_grad(m);
    if (ds_dpo_grad(m, cfg, pairs, 2, 8, rc, rr, 1.0f, NULL, NULL, &e)) { printf("  %s\n", e.msg); ds_model_free(m); return 1e9; }
    n = ds_model_n_params(m);
    for (i = 0; i < n; i++) {
        static const double off[4] = {-2, -1, 1, 2}, coef[4] = {1, -8, 8, -1};
        double keep = m->params[i], h = 1e-4, acc = 0, g = m->grads[i], f;
        int s;
        for (s = 0; s < 4; s++) { m->params[i] = keep + off[s] * h; acc += coef[s] * dpo_J(m, cfg, pairs, rc, rr); }
        m->params[i] = keep;
        f = acc / (12 * h);
        gn += fabs(g);
        if (relerr(g, f) > worst) worst = relerr(g, f);
    }
    ds_model_free(m);
    return gn > 1e-3 ? worst : 1e9; /* a zero gradient would pass vacuously */
}

static void test_gradcheck_dpo(void) {
    ds_dpo d = ds_dpo_default();
    double err;
    err = dpo_gradcheck(&d);
    CHECKF(err < 1e-6, "DPO (sigmoid): max relative error %.3g", err);
    printf("  DPO sigmoid: max relative error %.2g\n", err);
    d.label_smoothing = 0.2;
    err = dpo_gradcheck(&d);
    CHECKF(err < 1e-6, "DPO (label smoothing 0.2): max relative error %.3g", err);
    printf("  DPO label smoothing 0.2: %.2g\n", err);
    d.label_smoothing = 0, d.loss_type = DS_DPO_IPO, d.beta = 0.5;
    err = dpo_gradcheck(&d);
    CHECKF(err < 1e-6, "IPO: max relative error %.3g", err);
    printf("  IPO: %.2g\n", err);
}

static void test_gradcheck_ops(void) {
    double r1 = op_check_rmsnorm(), r2 = op_check_rope_attention(), r3 = op_check_swiglu(), r4 = op_check_xent_and_linear();
    double r5 = op_check_linear(), r6 = op_check_embedding(), r7 = op_check_attention_decode(), r8 = op_check_attention_blocks();
    printf("  max relative error: rmsnorm %.1e, rope / attention (GQA) / both %.1e, swiglu %.1e, cross-entropy+linear %.1e,\n"
           "  linear with accumulate (N = 4 and N = 1) %.1e, embedding %.1e; decode attention vs training attention %.1e;\n"
           "  attention over 3 row blocks (T = 70) %.1e\n",
           r1, r2, r3, r4, r5, r6, r7, r8);
    /* r8: the worst element is a small gradient (2.5e-4) whose finite difference is resolved to
       ~2.5e-12 absolute (the stencil's rounding, eps |J| / h): 1e-8 relative there is the noise, and
       it moves with the summation order (1.0e-8 in the SSE2 build, 6e-9 with AVX-512; 3.3e-9 in the
       SSE2 build before the row sums went onto vector accumulators). */
    CHECK(r1 < 1e-8 && r2 < 1e-8 && r3 < 1e-8 && r4 < 1e-8 && r5 < 1e-8 && r6 < 1e-8 && r7 < 1e-12 && r8 < 3e-8);
}

/* The double build writes what it holds: F64 tensors, and config.json says float64; it reloads exactly. */
static void test_double_build_checkpoint_is_f64(void) {
    ds_config c;
    ds_model *m, *u;
    ds_error e;
    char *cfg, *st;
    size_t len, n;
    ds_config_preset("test", &c, &e);
    CHECK((m = ds_model_new(&c, 1, 8, &e)) != NULL);
    ds_model_init(m, 3);
    CHECKF(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_f64"), DS_DTYPE_F32, &e) == DS_OK, "%s", e.msg);
    cfg = t_read(tp("ckpt_f64/config.json"), &len);
    st = t_read(tp("ckpt_f64/model.safetensors"), &n);
    CHECK(cfg && strstr(cfg, "\"torch_dtype\": \"float64\"") && st && strstr(st + 8, "\"F64\"") && !strstr(st + 8, "\"F32\""));
    u = ds_checkpoint_load(tp("ckpt_f64"), 1, 8, NULL, &e);
    CHECKF(u, "%s", e.msg);
    CHECK(memcmp(u->params, m->params, m->n_params * sizeof(ds_float)) == 0);
    free(cfg), free(st);
    ds_model_free(u);
    ds_model_free(m);
}

void suite_gradcheck(void) {
    RUN(test_double_build_checkpoint_is_f64);
    RUN(test_gradcheck_ops);
    RUN(test_gradcheck_model_mha);
    RUN(test_gradcheck_model_gqa_odd_sizes);
    RUN(test_gradcheck_model_gqa_groups);
    RUN(test_gradcheck_dpo);
}
