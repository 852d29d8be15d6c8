/* test_cuda.c - the CUDA backend against the CPU build, compiled by nvcc as CUDA (-x cu) and
   linked with tests/cuda/cuda_ref.c (the CPU reference). Without a device every test is reported
   skipped with the reason and the program exits 0: `make test` runs it on CI machines that have
   nvcc but no GPU. Tolerances are of the form tol + |ref| eps (llm.c's kernel tests); the CPU op
   is the reference. Usage: build/cuda/test_cuda [substring]
   The same file also builds with g++ against the CPU emulator of tests/cuda/emu (make
   test-cuda-emu), where every test runs: the kernels' logic is checked on any machine, the GPU's
   own rounding and speed only on a GPU. */
#define DS_CUDA
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"
#include "../test.h"
#include "cuda_ref.h"
#include <sys/stat.h>
#include <unistd.h>

ds_test_state ds_tstate;
char ds_tdir[64];
static int g_dev;         /* a usable device */
static char g_why[256];   /* why not */
static ds_error e_global_cuda; /* for calls whose message only a failure reads */

#define NEED_DEVICE() do { if (!g_dev) SKIP("no CUDA device (%s)", g_why); } while (0)

/* max_i |a_i - ref_i| / (tol + |ref_i| eps): <= 1 passes */
static double t_close(const float *a, const float *ref, size_t n, double tol, double eps) {
    double worst = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double r = fabs((double)a[i] - (double)ref[i]) / (tol + fabs((double)ref[i]) * eps);
        if (!(r <= worst)) worst = r; /* NaN counts as the worst */
    }
    return worst;
}
static float *t_rand_array(size_t n, double scale) {
    float *a = (float *)malloc(n * sizeof(float) + 4);
    size_t i;
    for (i = 0; a && i < n; i++) a[i] = (float)(scale * t_uniform());
    return a;
}
/* device copies of host arrays, and back */
static void *t_dev(ds__exec *ex, const void *h, size_t bytes) {
    void *d = ds__exec_alloc(ex, bytes, 1);
    if (d && h) ds__from_host(ex, d, h, bytes);
    return d;
}
static void t_host(ds__exec *ex, void *h, const void *d, size_t bytes) { ds__to_host(ex, h, d, bytes); }
/* bf16 bits to float, and a float rounded to bf16 bits (nearest even; no NaN here) */
static float t_bf(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t t_bfbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static ds__exec g_ex;
static int t_exec(void) { /* the ops' context for the op tests, with a scratch */
    ds_error e;
    static int done;
    if (done) return !g_ex.failed;
    done = 1;
    if (ds__exec_init(&g_ex, &e)) return 0;
    g_ex.work_n = 1 << 22, g_ex.partial_n = 1 << 12, g_ex.h_red_n = 1 << 16;
    g_ex.work = (ds_float *)ds__exec_alloc(&g_ex, g_ex.work_n, sizeof(ds_float));
    g_ex.partial = (double *)ds__exec_alloc(&g_ex, g_ex.partial_n, sizeof(double));
    g_ex.h_partial = (double *)calloc(g_ex.partial_n, sizeof(double));
    g_ex.h_red = (ds_float *)calloc(2 * g_ex.h_red_n, sizeof(ds_float));
    return g_ex.work && g_ex.partial && g_ex.h_partial && g_ex.h_red;
}

/* ---- every kernel against its CPU op ------------------------------------------------------ */
enum { ON = 48, OD = 40, OV = 70, OF = 56, OB = 2, OT = 24, OH = 4, OKV = 2, OHD = 10, OQ = (OH + 2 * OKV) * OHD };

static void test_cuda_ops_elementwise_and_norms(void) {
    ds__exec *ex = &g_ex;
    float *x, *w, *dout, *ref, *got, *rstd_r, *rstd_g, *dxr, *dwr, *gu, *dh, *wte;
    int32_t ids[ON];
    float *dx_d, *x_d, *w_d, *o_d, *rs_d, *dout_d, *dw_d, *gu_d, *dh_d, *wte_d;
    int32_t *ids_d;
    size_t i;
    double r;
    NEED_DEVICE();
    CHECK(t_exec());
    x = t_rand_array(ON * OD, 1), w = t_rand_array(OD, 1), dout = t_rand_array(ON * OF * 2, 1);
    ref = (float *)calloc(ON * OF * 2, sizeof(float)), got = (float *)calloc(ON * OF * 2, sizeof(float));
    rstd_r = (float *)calloc(ON, sizeof(float)), rstd_g = (float *)calloc(ON, sizeof(float));
    dxr = t_rand_array(ON * OD, 1), dwr = (float *)calloc(OD, sizeof(float));
    gu = t_rand_array(ON * 2 * OF, 3), dh = t_rand_array(ON * OF, 1), wte = t_rand_array(OV * OD, 1);
    for (i = 0; i < ON; i++) ids[i] = (int32_t)(t_rand() % OV);
    x_d = (float *)t_dev(ex, x, ON * OD * 4), w_d = (float *)t_dev(ex, w, OD * 4), o_d = (float *)t_dev(ex, NULL, ON * OF * 2 * 4);
    rs_d = (float *)t_dev(ex, NULL, ON * 4), dout_d = (float *)t_dev(ex, dout, ON * OF * 2 * 4), dx_d = (float *)t_dev(ex, dxr, ON * OD * 4);
    dw_d = (float *)t_dev(ex, NULL, OD * 4), gu_d = (float *)t_dev(ex, gu, ON * 2 * OF * 4), dh_d = (float *)t_dev(ex, dh, ON * OF * 4);
    wte_d = (float *)t_dev(ex, wte, OV * OD * 4), ids_d = (int32_t *)t_dev(ex, ids, sizeof ids);
    CHECK(!ex->failed);
    /* rmsnorm forward */
    cref_rmsnorm_forward(ref, rstd_r, x, w, ON, OD, 1e-6);
    ds__rmsnorm_forward(ex, o_d, rs_d, x_d, w_d, ON, OD, 1e-6);
    t_host(ex, got, o_d, ON * OD * 4), t_host(ex, rstd_g, rs_d, ON * 4);
    CHECKF((r = t_close(got, ref, ON * OD, 1e-6, 1e-5)) <= 1, "rmsnorm_forward: %.3g", r);
    CHECKF((r = t_close(rstd_g, rstd_r, ON, 1e-6, 1e-5)) <= 1, "rmsnorm_forward rstd: %.3g", r);
    /* rmsnorm backward, dx accumulated onto a random start, and dw */
    memcpy(ref, dxr, ON * OD * 4);
    cref_rmsnorm_backward(ref, 1, dwr, dout, x, w, rstd_r, ON, OD);
    ds__rmsnorm_backward(ex, dx_d, 1, dw_d, dout_d, x_d, w_d, rs_d, ON, OD);
    t_host(ex, got, dx_d, ON * OD * 4);
    CHECKF((r = t_close(got, ref, ON * OD, 1e-5, 1e-4)) <= 1, "rmsnorm_backward dx: %.3g", r);
    t_host(ex, got, dw_d, OD * 4);
    CHECKF((r = t_close(got, dwr, OD, 1e-5, 1e-4)) <= 1, "rmsnorm_backward dw: %.3g", r);
    /* swiglu */
    cref_swiglu_forward(ref, gu, ON, OF);
    ds__swiglu_forward(ex, o_d, gu_d, ON, OF);
    t_host(ex, got, o_d, ON * OF * 4);
    CHECKF((r = t_close(got, ref, ON * OF, 1e-6, 1e-5)) <= 1, "swiglu_forward: %.3g", r);
    cref_swiglu_backward(ref, dh, gu, ON, OF);
    ds__swiglu_backward(ex, o_d, dh_d, gu_d, ON, OF);
    t_host(ex, got, o_d, ON * 2 * OF * 4);
    CHECKF((r = t_close(got, ref, ON * 2 * OF, 1e-6, 1e-5)) <= 1, "swiglu_backward: %.3g", r);
    /* embedding, with repeated ids */
    cref_embedding_forward(ref, ids, wte, ON, OD);
    ds__embedding_forward(ex, o_d, ids_d, wte_d, ON, OD);
    t_host(ex, got, o_d, ON * OD * 4);
    CHECK(memcmp(got, ref, ON * OD * 4) == 0); /* a gather: exact */
    memset(ref, 0, OV * OD * 4);
    cref_embedding_backward(ref, dout, ids, ON, OD);
    ds__zero(ex, wte_d, OV * OD);
    ds__embedding_backward(ex, wte_d, dout_d, ids_d, ON, OD);
    t_host(ex, got, wte_d, OV * OD * 4);
    CHECK(memcmp(got, ref, OV * OD * 4) == 0); /* the same additions in the same order: exact */
    CHECK(!ex->failed);
    free(x), free(w), free(dout), free(ref), free(got), free(rstd_r), free(rstd_g), free(dxr), free(dwr), free(gu), free(dh), free(wte);
    ds__exec_free(ex, x_d), ds__exec_free(ex, w_d), ds__exec_free(ex, o_d), ds__exec_free(ex, rs_d), ds__exec_free(ex, dout_d);
    ds__exec_free(ex, dx_d), ds__exec_free(ex, dw_d), ds__exec_free(ex, gu_d), ds__exec_free(ex, dh_d), ds__exec_free(ex, wte_d);
    ds__exec_free(ex, ids_d);
}

/* data parallelism's primitives (ds_dp: accumulate, the norm's chunk sums, AdamW over a slice) */
static void test_cuda_ops_dp_primitives(void) {
    ds__exec *ex = &g_ex;
    enum { DN = 40000, DA = 25000, LO = 16384, HI = 36000 }; /* 3 norm chunks; the slice crosses the tensor boundary */
    float *a = t_rand_array(DN, 1), *b = t_rand_array(DN, 1), *p = t_rand_array(DN, 1), *g = t_rand_array(DN, 1);
    float *m = t_rand_array(DN, 0.1), *v = (float *)calloc(DN, sizeof(float)), *got = (float *)calloc(DN, sizeof(float));
    float *a_d, *b_d, *p_d, *g_d, *m_d, *v_d;
    double pr[8], pg[8], r;
    const double *hp;
    size_t i;
    NEED_DEVICE();
    CHECK(t_exec());
    for (i = 0; i < DN; i++) v[i] = (float)(0.01 * fabs(t_uniform()));
    a_d = (float *)t_dev(ex, a, DN * 4), b_d = (float *)t_dev(ex, b, DN * 4), p_d = (float *)t_dev(ex, p, DN * 4);
    g_d = (float *)t_dev(ex, g + LO, (HI - LO) * 4), m_d = (float *)t_dev(ex, m + LO, (HI - LO) * 4), v_d = (float *)t_dev(ex, v + LO, (HI - LO) * 4);
    CHECK(!ex->failed);
    cref_accumulate(a, b, DN);
    ds__accumulate(ex, a_d, b_d, DN);
    t_host(ex, got, a_d, DN * 4);
    CHECK(memcmp(got, a, DN * 4) == 0); /* one addition per element: exact */
    cref_sqnorm_partials(pr, b, DN);
    CHECK((hp = ds__sqnorm_partials(ex, b_d, DN)) != NULL);
    memcpy(pg, hp, 3 * sizeof(double));
    for (i = 0; i < 3; i++) CHECKF(fabs(pg[i] - pr[i]) <= 1e-9 * pr[i], "sqnorm chunk %zu: %.17g vs %.17g", i, pg[i], pr[i]);
    cref_adamw_range(p, g + LO, m + LO, v + LO, DA, DN - DA, LO, HI, 1e-3, 3);
    {
        ds_tensor t[2];
        ds__adamw_hp h;
        memset(t, 0, sizeof t);
        t[0].offset = 0, t[0].numel = DA, t[0].decay = 1, t[1].offset = DA, t[1].numel = DN - DA, t[1].decay = 0;
        h.lr = 1e-3, h.b1 = 0.9, h.b2 = 0.95, h.eps = 1e-8, h.wd = 0.1, h.clip = 0.5, h.bc1 = 1 - pow(0.9, 3), h.bc2 = 1 - pow(0.95, 3);
        ds__adamw_update(ex, p_d, g_d, m_d, v_d, t, 2, LO, HI, &h);
    }
    t_host(ex, got, p_d, DN * 4);
    CHECKF((r = t_close(got, p, DN, 1e-7, 1e-6)) <= 1, "adamw over [%d, %d): parameters %.3g", LO, HI, r);
    t_host(ex, got, m_d, (HI - LO) * 4);
    CHECKF((r = t_close(got, m + LO, HI - LO, 1e-7, 1e-6)) <= 1, "adamw exp_avg %.3g", r);
    t_host(ex, got, v_d, (HI - LO) * 4);
    CHECKF((r = t_close(got, v + LO, HI - LO, 1e-9, 1e-6)) <= 1, "adamw exp_avg_sq %.3g", r);
    CHECK(!ex->failed);
    free(a), free(b), free(p), free(g), free(m), free(v), free(got);
    ds__exec_free(ex, a_d), ds__exec_free(ex, b_d), ds__exec_free(ex, p_d), ds__exec_free(ex, g_d), ds__exec_free(ex, m_d), ds__exec_free(ex, v_d);
}

static void test_cuda_ops_linear_and_crossentropy(void) {
    ds__exec *ex = &g_ex;
    float *inp = t_rand_array(ON * OD, 1), *W = t_rand_array(OV * OD, 1), *base = t_rand_array(ON * OV, 1), *ref, *got, *dinp_r, *dW_r;
    float *dl = t_rand_array(ON, 1);
    int32_t tg[ON];
    float *inp_d, *W_d, *out_d, *dinp_d, *dW_d, *dl_d;
    int32_t *tg_d;
    size_t i;
    double r;
    NEED_DEVICE();
    CHECK(t_exec());
    ref = (float *)malloc(ON * OV * 4), got = (float *)malloc(ON * OV * 4), dinp_r = (float *)calloc(ON * OD, 4), dW_r = (float *)calloc(OV * OD, 4);
    for (i = 0; i < ON; i++) tg[i] = (int32_t)(t_rand() % OV);
    dl[3] = 0; /* a masked token */
    inp_d = (float *)t_dev(ex, inp, ON * OD * 4), W_d = (float *)t_dev(ex, W, OV * OD * 4), out_d = (float *)t_dev(ex, base, ON * OV * 4);
    dinp_d = (float *)t_dev(ex, NULL, ON * OD * 4), dW_d = (float *)t_dev(ex, NULL, OV * OD * 4), dl_d = (float *)t_dev(ex, dl, ON * 4);
    tg_d = (int32_t *)t_dev(ex, tg, sizeof tg);
    /* linear with accumulate onto base, for N = ON and N = 1 */
    memcpy(ref, base, ON * OV * 4);
    cref_linear_forward(ref, inp, W, ON, OD, OV, 1);
    ds__linear_forward(ex, out_d, inp_d, W_d, ON, OD, OV, 1);
    t_host(ex, got, out_d, ON * OV * 4);
    CHECKF((r = t_close(got, ref, ON * OV, 1e-5, 1e-5)) <= 1, "linear_forward: %.3g", r);
    /* cross-entropy on those logits, then its backward in place (dloss with a zero) */
    {
        float lr_[ON], lg_[ON];
        float *ls_d = (float *)t_dev(ex, NULL, ON * 4);
        cref_crossentropy_forward(lr_, ref, tg, ON, OV);
        ds__crossentropy_forward(ex, ls_d, out_d, tg_d, ON, OV);
        t_host(ex, lg_, ls_d, ON * 4);
        CHECKF((r = t_close(lg_, lr_, ON, 1e-5, 1e-5)) <= 1, "crossentropy_forward: %.3g", r);
        cref_crossentropy_backward(ref, tg, dl, 0.25, ON, OV);
        ds__crossentropy_backward(ex, out_d, tg_d, dl_d, 0.25, ON, OV);
        t_host(ex, got, out_d, ON * OV * 4);
        CHECKF((r = t_close(got, ref, ON * OV, 1e-7, 1e-4)) <= 1, "crossentropy_backward: %.3g", r);
        for (i = 0; i < OV; i++) CHECK(got[3 * OV + i] == 0); /* weight 0: exact zeros */
        ds__exec_free(ex, ls_d);
    }
    /* linear backward on that gradient */
    cref_linear_backward(dinp_r, 0, dW_r, ref, inp, W, ON, OD, OV);
    ds__linear_backward(ex, dinp_d, 0, dW_d, out_d, inp_d, W_d, ON, OD, OV);
    t_host(ex, got, dinp_d, ON * OD * 4);
    CHECKF((r = t_close(got, dinp_r, ON * OD, 1e-6, 1e-4)) <= 1, "linear_backward dinp: %.3g", r);
    t_host(ex, got, dW_d, OV * OD * 4);
    CHECKF((r = t_close(got, dW_r, OV * OD, 1e-6, 1e-4)) <= 1, "linear_backward dW: %.3g", r);
    /* N = 1 */
    memcpy(ref, base, OV * 4);
    cref_linear_forward(ref, inp, W, 1, OD, OV, 1);
    ds__from_host(ex, out_d, base, OV * 4);
    ds__linear_forward(ex, out_d, inp_d, W_d, 1, OD, OV, 1);
    t_host(ex, got, out_d, OV * 4);
    CHECKF((r = t_close(got, ref, OV, 1e-5, 1e-5)) <= 1, "linear_forward N = 1: %.3g", r);
    CHECK(!ex->failed);
    free(inp), free(W), free(base), free(ref), free(got), free(dinp_r), free(dW_r), free(dl);
    ds__exec_free(ex, inp_d), ds__exec_free(ex, W_d), ds__exec_free(ex, out_d), ds__exec_free(ex, dinp_d), ds__exec_free(ex, dW_d);
    ds__exec_free(ex, dl_d), ds__exec_free(ex, tg_d);
}

static void test_cuda_ops_rope_and_attention(void) {
    ds__exec *ex = &g_ex;
    size_t NQ = OB * OT * OQ, NY = OB * OT * OH * OHD, NA = OB * OH * OT * OT, i, j, t;
    float *qkv = t_rand_array(NQ, 1), *dy = t_rand_array(NY, 1), *cs, *sn, *ref, *got, *att_r, *y_r;
    float *qkv_d, *cs_d, *sn_d, *y_d, *att_d, *dy_d, *dq_d;
    double r;
    NEED_DEVICE();
    CHECK(t_exec());
    cs = (float *)malloc(OT * OHD / 2 * 4), sn = (float *)malloc(OT * OHD / 2 * 4);
    for (t = 0; t < OT; t++)
        for (j = 0; j < OHD / 2; j++) {
            double a = (double)t * pow(10000.0, -2.0 * (double)j / OHD);
            cs[t * OHD / 2 + j] = (float)cos(a), sn[t * OHD / 2 + j] = (float)sin(a);
        }
    ref = (float *)malloc(NQ * 4), got = (float *)malloc((NQ > NA ? NQ : NA) * 4), att_r = (float *)malloc(NA * 4), y_r = (float *)malloc(NY * 4);
    qkv_d = (float *)t_dev(ex, qkv, NQ * 4), cs_d = (float *)t_dev(ex, cs, OT * OHD / 2 * 4), sn_d = (float *)t_dev(ex, sn, OT * OHD / 2 * 4);
    y_d = (float *)t_dev(ex, NULL, NY * 4), att_d = (float *)t_dev(ex, NULL, NA * 4), dy_d = (float *)t_dev(ex, dy, NY * 4);
    dq_d = (float *)t_dev(ex, NULL, NQ * 4);
    /* rope forward in place */
    memcpy(ref, qkv, NQ * 4);
    cref_rope(ref, cs, sn, OB * OT, OT, 0, OH, OKV, OHD, 0);
    ds__rope_forward(ex, qkv_d, cs_d, sn_d, OB * OT, OT, 0, OH, OKV, OHD);
    t_host(ex, got, qkv_d, NQ * 4);
    CHECKF((r = t_close(got, ref, NQ, 1e-6, 1e-5)) <= 1, "rope_forward: %.3g", r);
    /* attention forward on the roped buffer (the CPU's copy of it) */
    ds__from_host(ex, qkv_d, ref, NQ * 4);
    cref_attention_forward(y_r, att_r, ref, OB, OT, OH, OKV, OHD);
    ds__attention_forward(ex, y_d, att_d, qkv_d, OB, OT, OH, OKV, OHD);
    t_host(ex, got, y_d, NY * 4);
    CHECKF((r = t_close(got, y_r, NY, 1e-6, 1e-4)) <= 1, "attention_forward y: %.3g", r);
    /* attention backward, then rope backward on dqkv: each backend from its own saved state (the
       CPU keeps each row's softmax max and sum, the GPU its log-sum-exp: not comparable) */
    cref_attention_backward(got, dy, ref, att_r, OB, OT, OH, OKV, OHD);
    ds__attention_backward(ex, dq_d, dy_d, y_d, qkv_d, att_d, OB, OT, OH, OKV, OHD);
    cref_rope(got, cs, sn, OB * OT, OT, 0, OH, OKV, OHD, 1);
    ds__rope_backward(ex, dq_d, cs_d, sn_d, OB * OT, OT, 0, OH, OKV, OHD);
    {
        float *g2 = (float *)malloc(NQ * 4);
        t_host(ex, g2, dq_d, NQ * 4);
        CHECKF((r = t_close(g2, got, NQ, 1e-5, 1e-4)) <= 1, "attention_backward + rope_backward: %.3g", r);
        free(g2);
    }
    /* decoding: the cache path's rows equal the training attention's (batch row 0) */
    {
        float *kc_d = (float *)t_dev(ex, NULL, OT * OKV * OHD * 4), *vc_d = (float *)t_dev(ex, NULL, OT * OKV * OHD * 4), yd[OH * OHD];
        for (t = 0; t < OT; t++) {
            ds__kv_store(ex, kc_d, vc_d, qkv_d + t * OQ, t, OH, OKV, OHD);
            ds__attention_decode(ex, y_d, qkv_d + t * OQ, kc_d, vc_d, t, OH, OKV, OHD);
            t_host(ex, yd, y_d, sizeof yd);
            for (i = 0; i < OH * OHD; i++) CHECKF(fabs(yd[i] - y_r[t * OH * OHD + i]) <= 1e-5 + 1e-4 * fabs(y_r[t * OH * OHD + i]), "decode row %zu", t);
        }
        ds__exec_free(ex, kc_d), ds__exec_free(ex, vc_d);
    }
    CHECK(!ex->failed);
    free(qkv), free(dy), free(cs), free(sn), free(ref), free(got), free(att_r), free(y_r);
    ds__exec_free(ex, qkv_d), ds__exec_free(ex, cs_d), ds__exec_free(ex, sn_d), ds__exec_free(ex, y_d), ds__exec_free(ex, att_d);
    ds__exec_free(ex, dy_d), ds__exec_free(ex, dq_d);
}

/* the tiled attention at shapes that cross its tiles (32 query rows a block, 32 keys a tile): T
   past one tile and not a multiple of it, GQA groups of 2 and 3, the largest head (128) and an
   odd one; forward y and backward dqkv against the CPU op */
static void test_cuda_ops_attention_tiles(void) {
    static const size_t shape[][5] = {{2, 77, 4, 2, 40}, {1, 70, 2, 2, 128}, {1, 33, 3, 1, 10}, {1, 1, 2, 1, 8}};
    ds__exec *ex = &g_ex;
    size_t c;
    NEED_DEVICE();
    CHECK(t_exec());
    for (c = 0; c < sizeof shape / sizeof shape[0]; c++) {
        size_t B = shape[c][0], T = shape[c][1], H = shape[c][2], KV = shape[c][3], hd = shape[c][4], Q = (H + 2 * KV) * hd;
        size_t NQ = B * T * Q, NY = B * T * H * hd, NS = ds__attention_saved(B, T, H);
        float *qkv = t_rand_array(NQ, 1), *dy = t_rand_array(NY, 1), *y_r = (float *)malloc(NY * 4), *att_r = (float *)malloc(B * H * T * 2 * 4 + 4);
        float *dq_r = (float *)malloc(NQ * 4), *got = (float *)malloc(NQ * 4);
        float *qkv_d = (float *)t_dev(ex, qkv, NQ * 4), *dy_d = (float *)t_dev(ex, dy, NY * 4), *y_d = (float *)t_dev(ex, NULL, NY * 4);
        float *att_d = (float *)t_dev(ex, NULL, NS * 4), *dq_d = (float *)t_dev(ex, NULL, NQ * 4);
        double r;
        CHECK(ds__attention_work(B, T, H, KV, hd) <= ex->work_n);
        cref_attention_forward(y_r, att_r, qkv, B, T, H, KV, hd);
        ds__attention_forward(ex, y_d, att_d, qkv_d, B, T, H, KV, hd);
        t_host(ex, got, y_d, NY * 4);
        CHECKF((r = t_close(got, y_r, NY, 1e-6, 1e-4)) <= 1, "B %zu T %zu H %zu KV %zu hd %zu: y %.3g", B, T, H, KV, hd, r);
        cref_attention_backward(dq_r, dy, qkv, att_r, B, T, H, KV, hd);
        ds__attention_backward(ex, dq_d, dy_d, y_d, qkv_d, att_d, B, T, H, KV, hd);
        t_host(ex, got, dq_d, NQ * 4);
        CHECKF((r = t_close(got, dq_r, NQ, 1e-5, 1e-4)) <= 1, "B %zu T %zu H %zu KV %zu hd %zu: dqkv %.3g", B, T, H, KV, hd, r);
        free(qkv), free(dy), free(y_r), free(att_r), free(dq_r), free(got);
        ds__exec_free(ex, qkv_d), ds__exec_free(ex, dy_d), ds__exec_free(ex, y_d), ds__exec_free(ex, att_d), ds__exec_free(ex, dq_d);
    }
    CHECK(!ex->failed);
}

/* bf16 mode's attention on the tensor cores (ds__fa_fwd_tc_kernel and its backward) against the
   CPU op in fp32, at shapes that cross its tiles (64 rows a block, 32 a tile): T past one block
   and not a multiple of a tile, GQA groups of 2 and 3, heads of 16 to 128 channels (48: a
   multiple of 16 that is not a power of two), one row. Its operands are rounded to bf16, so
   the bound is bf16's: the relative L2 error of y and of dqkv (every q, k and v gradient) within
   1e-2 and the worst element within 4e-2 of the largest; and two runs give the same bits. */
static double t_rel_l2(const float *a, const float *ref, size_t n, double *worst) {
    double num = 0, den = 0, mx = 0, w = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d, den += (double)ref[i] * ref[i];
        if (fabs((double)ref[i]) > mx) mx = fabs((double)ref[i]);
        if (!(fabs(d) <= w)) w = fabs(d);
    }
    *worst = mx > 0 ? w / mx : w;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
static void test_cuda_bf16_attention_tensor_cores(void) {
    static const size_t shape[][5] = {{2, 77, 4, 2, 64}, {1, 130, 2, 1, 128}, {1, 70, 3, 1, 16}, {1, 100, 2, 2, 48}, {1, 1, 2, 1, 32}};
    ds__exec *ex = &g_ex;
    size_t c;
    int keep;
    NEED_DEVICE();
    CHECK(t_exec());
    if (!ex->tc) SKIP("the device has no bf16 tensor cores (sm_80 or later)");
    keep = ex->bf16, ex->bf16 = 1; /* the op's switch: bf16 mode (its scratch is the linears', unused here) */
    for (c = 0; c < sizeof shape / sizeof shape[0]; c++) {
        size_t B = shape[c][0], T = shape[c][1], H = shape[c][2], KV = shape[c][3], hd = shape[c][4], Q = (H + 2 * KV) * hd;
        size_t NQ = B * T * Q, NY = B * T * H * hd, NS = ds__attention_saved(B, T, H);
        float *qkv = t_rand_array(NQ, 1), *dy = t_rand_array(NY, 1), *y_r = (float *)malloc(NY * 4), *att_r = (float *)malloc(B * H * T * 2 * 4 + 4);
        float *dq_r = (float *)malloc(NQ * 4), *got = (float *)malloc(NQ * 4), *again = (float *)malloc(NQ * 4), *yfirst = (float *)malloc(NY * 4);
        float *qkv_d = (float *)t_dev(ex, qkv, NQ * 4), *dy_d = (float *)t_dev(ex, dy, NY * 4), *y_d = (float *)t_dev(ex, NULL, NY * 4);
        float *att_d = (float *)t_dev(ex, NULL, NS * 4), *dq_d = (float *)t_dev(ex, NULL, NQ * 4);
        double r, w;
        int run;
        CHECK(ds__attention_tc(ex, hd));
        CHECK(ds__attention_work(B, T, H, KV, hd) <= ex->work_n);
        cref_attention_forward(y_r, att_r, qkv, B, T, H, KV, hd);
        cref_attention_backward(dq_r, dy, qkv, att_r, B, T, H, KV, hd);
        for (run = 0; run < 2; run++) {
            float *out = run ? again : got;
            ds__attention_forward(ex, y_d, att_d, qkv_d, B, T, H, KV, hd);
            t_host(ex, out, y_d, NY * 4);
            if (run == 0) {
                r = t_rel_l2(out, y_r, NY, &w);
                CHECKF(r <= 1e-2 && w <= 4e-2, "B %zu T %zu H %zu KV %zu hd %zu: y: relative L2 %.3g, worst %.3g", B, T, H, KV, hd, r, w);
                if (getenv("DS_TEST_VERBOSE")) printf("  tc attention B %zu T %zu H %zu KV %zu hd %zu: y relative L2 %.3g worst %.3g\n", B, T, H, KV, hd, r, w);
            } else
                CHECKF(memcmp(yfirst, out, NY * 4) == 0, "hd %zu: y differs between two runs", hd);
            if (run == 0) memcpy(yfirst, out, NY * 4);
            ds__attention_backward(ex, dq_d, dy_d, y_d, qkv_d, att_d, B, T, H, KV, hd);
            t_host(ex, out, dq_d, NQ * 4);
            if (run == 0) {
                r = t_rel_l2(out, dq_r, NQ, &w);
                CHECKF(r <= 1e-2 && w <= 4e-2, "B %zu T %zu H %zu KV %zu hd %zu: dqkv: relative L2 %.3g, worst %.3g", B, T, H, KV, hd, r, w);
                if (getenv("DS_TEST_VERBOSE")) printf("  tc attention B %zu T %zu H %zu KV %zu hd %zu: dqkv relative L2 %.3g worst %.3g\n", B, T, H, KV, hd, r, w);
            } else
                CHECKF(memcmp(got, again, NQ * 4) == 0, "hd %zu: dqkv differs between two runs", hd);
        }
        free(qkv), free(dy), free(y_r), free(att_r), free(dq_r), free(got), free(again), free(yfirst);
        ds__exec_free(ex, qkv_d), ds__exec_free(ex, dy_d), ds__exec_free(ex, y_d), ds__exec_free(ex, att_d), ds__exec_free(ex, dq_d);
    }
    ex->bf16 = keep;
    CHECK(!ex->failed);
}

/* ---- the whole model, fp32, against the CPU build ------------------------------------------- */
enum { MV = 96, MD = 64, ML = 2, MH = 4, MKV = 2, MT = 40, MB = 2 }; /* T past one attention tile */
static ds_model *gpu_model(uint64_t seed) {
    ds_config c;
    ds_error e;
    ds_model *m;
    ds_config_preset("test", &c, &e);
    c.vocab = MV, c.d_model = MD, c.n_layers = ML, c.n_heads = MH, c.n_kv_heads = MKV, c.d_ff = ds_ffn_dim(MD, 16), c.max_seq = MT;
    if ((m = ds_model_new(&c, MB, MT, &e)) && ds_model_init(m, seed)) { ds_model_free(m); m = NULL; }
    return m;
}
static void *cpu_model(uint64_t seed) { return cref_model_new(MV, MD, ML, MH, MKV, ds_ffn_dim(MD, 16), MT, MB, MT, seed); }
static void model_batch(int32_t *in, int32_t *tg, float *w, int k) {
    int i;
    for (i = 0; i < MB * MT; i++) {
        in[i] = (int32_t)((i * 31 + k * 7) % MV), tg[i] = (int32_t)((i * 17 + k * 3 + 1) % MV);
        if (w) w[i] = (float)((i + k) % 3) * 0.5f;
    }
}
/* the largest per-tensor ||a - b|| / ||b|| over the model's tensors */
static double tensor_error(ds_model *m, const float *a, const float *b) {
    double worst = 0;
    int k;
    for (k = 0; k < ds_model_n_tensors(m); k++) {
        const ds_tensor *t = ds_model_tensor(m, k);
        double dd = 0, nn = 0;
        size_t i;
        for (i = t->offset; i < t->offset + t->numel; i++) dd += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), nn += (double)b[i] * b[i];
        if (nn > 0 && sqrt(dd / nn) > worst) worst = sqrt(dd / nn);
        if (!(dd == dd)) return INFINITY;
    }
    return worst;
}

static void test_cuda_model_fp32_matches_cpu(void) {
    ds_model *g;
    void *c;
    int32_t in[MB * MT], tg[MB * MT];
    float w[MB * MT], *gc, *gg;
    double lc = 0, lg = 0, err;
    size_t n;
    NEED_DEVICE();
    CHECK((g = gpu_model(7)) && (c = cpu_model(7)));
    n = ds_model_n_params(g);
    CHECK(n == cref_n_params(c));
    gc = (float *)malloc(n * 4), gg = (float *)malloc(n * 4);
    model_batch(in, tg, w, 0);
    CHECK(cref_train_grads(c, in, tg, w, NULL, MB, MT, &lc, gc) == 0);
    ds_model_zero_grad(g);
    CHECK_OK(ds_model_forward(g, in, tg, w, MB, MT, NULL, &lg, &e_));
    CHECK_OK(ds_model_backward(g, 1.0f, NULL, &e_));
    CHECK_OK(ds_model_get(g, DS_GRADS, 0, n, gg, &e_));
    CHECKF(fabs(lg - lc) <= 1e-5 * fabs(lc), "loss: GPU %.9g, CPU %.9g", lg, lc);
    err = tensor_error(g, gg, gc);
    printf("  fp32: loss %.7f (CPU %.7f), max per-tensor gradient error %.2e\n", lg, lc, err);
    CHECK(err <= 1e-5);
    free(gc), free(gg);
    ds_model_free(g);
    cref_model_free(c);
}

/* the chunked classifier on the GPU (7 rows at a time, DS__NEW_LOGIT_CHUNK) against the CPU build:
   the pretraining loss and gradients, and backward_tokens' (SFT's and DPO's path) */
static void test_cuda_chunked_classifier(void) {
    ds_config cf;
    ds_model *g;
    void *c;
    int32_t in[MB * MT], tg[MB * MT];
    float w[MB * MT], *gc, *gg, dl[MB * MT];
    double lc = 0, lg = 0, err;
    size_t n;
    int i;
    NEED_DEVICE();
    ds_config_preset("test", &cf, &e_global_cuda);
    cf.vocab = MV, cf.d_model = MD, cf.n_layers = ML, cf.n_heads = MH, cf.n_kv_heads = MKV, cf.d_ff = ds_ffn_dim(MD, 16), cf.max_seq = MT;
    CHECKF((g = ds__model_new(&cf, MB, MT, MT, DS__NEW_LOGIT_CHUNK, &e_global_cuda)) != NULL, "%s", e_global_cuda.msg);
    CHECK(ds_model_init(g, 7) == DS_OK && (c = cpu_model(7)));
    n = ds_model_n_params(g);
    gc = (float *)malloc(n * 4), gg = (float *)malloc(n * 4);
    model_batch(in, tg, w, 0);
    for (i = 0; i < MB * MT; i++) dl[i] = (float)(0.01 * (i % 5 - 2));
    CHECK(cref_train_grads(c, in, tg, w, NULL, MB, MT, &lc, gc) == 0);
    ds_model_zero_grad(g);
    CHECK_OK(ds_model_forward(g, in, tg, w, MB, MT, NULL, &lg, &e_));
    CHECK(ds_model_logits(g) == NULL);
    CHECK_OK(ds_model_backward(g, 1.0f, NULL, &e_));
    CHECK_OK(ds_model_get(g, DS_GRADS, 0, n, gg, &e_));
    CHECKF(fabs(lg - lc) <= 1e-5 * fabs(lc), "loss: GPU %.9g, CPU %.9g", lg, lc);
    CHECKF((err = tensor_error(g, gg, gc)) <= 1e-5, "gradients: %.3g", err);
    CHECK(cref_train_grads(c, in, tg, NULL, dl, MB, MT, &lc, gc) == 0);
    ds_model_zero_grad(g);
    CHECK_OK(ds_model_forward(g, in, tg, NULL, MB, MT, NULL, &lg, &e_));
    CHECK_OK(ds_model_backward_tokens(g, dl, NULL, &e_));
    CHECK_OK(ds_model_get(g, DS_GRADS, 0, n, gg, &e_));
    CHECKF((err = tensor_error(g, gg, gc)) <= 1e-5, "backward_tokens gradients: %.3g", err);
    free(gc), free(gg);
    ds_model_free(g);
    cref_model_free(c);
}

/* one pretraining step of the GPU model at lr 3e-3 (the CPU side: cref_train_grads, cref_step) */
static int gpu_train_step(ds_model *g, const int32_t *in, const int32_t *tg, double *loss, ds_error *e) {
    ds_adamw opt = ds_adamw_default();
    int rc;
    ds_model_zero_grad(g);
    if ((rc = ds_model_forward(g, in, tg, NULL, MB, MT, NULL, loss, e)) || (rc = ds_model_backward(g, 1.0f, NULL, e))) return rc;
    return ds_model_step(g, &opt, 3e-3, NULL, NULL, e);
}

/* 10 AdamW steps on both: the loss trajectories agree; two GPU runs are bit-identical */
static void test_cuda_training_trajectory_and_determinism(void) {
    ds_model *g1, *g2;
    void *c;
    int32_t in[MB * MT], tg[MB * MT];
    double worst = 0;
    int s;
    NEED_DEVICE();
    CHECK((g1 = gpu_model(3)) && (g2 = gpu_model(3)) && (c = cpu_model(3)));
    for (s = 0; s < 10; s++) {
        double l1, l2, lc;
        model_batch(in, tg, NULL, s);
        CHECK(cref_train_grads(c, in, tg, NULL, NULL, MB, MT, &lc, NULL) == 0 && cref_step(c, 3e-3) == 0);
        CHECK_OK(gpu_train_step(g1, in, tg, &l1, &e_));
        CHECK_OK(gpu_train_step(g2, in, tg, &l2, &e_));
        CHECKF(memcmp(&l1, &l2, sizeof l1) == 0, "step %d: two GPU runs differ (%.17g, %.17g)", s, l1, l2);
        if (fabs(l1 - lc) / fabs(lc) > worst) worst = fabs(l1 - lc) / fabs(lc);
    }
    printf("  10 AdamW steps: max relative loss difference GPU vs CPU %.2e; two GPU runs bit-identical\n", worst);
    CHECK(worst <= 1e-4);
    CHECK(t_same(g1, g2, DS_PARAMS) && t_same(g1, g2, DS_ADAM_M) && t_same(g1, g2, DS_ADAM_V));
    ds_model_free(g1), ds_model_free(g2);
    cref_model_free(c);
}

/* the paper's bf16 mode (§2.4) against the CPU's fp32: the first step's loss within 1e-2, every
   gradient tensor's cosine with the CPU's > 0.999, a 10-step AdamW loss trajectory within 0.05;
   two bf16 runs bit-identical; back to fp32, the CPU's numbers again */
static double tensor_cosine_min(ds_model *m, const float *a, const float *b) {
    double worst = 1;
    int k;
    for (k = 0; k < ds_model_n_tensors(m); k++) {
        const ds_tensor *t = ds_model_tensor(m, k);
        double ab = 0, aa = 0, bb = 0, cs;
        size_t i;
        for (i = t->offset; i < t->offset + t->numel; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
        cs = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1 : 0);
        if (!(cs >= worst)) worst = cs;
    }
    return worst;
}
/* x rounded to bf16 (to nearest, ties to even), as a float */
static float t_bf16(float x) { return t_bf(t_bfbits(x)); }
/* the bf16 linears are exactly the fp32 linears of bf16-rounded operands (up to the order of
   the fp32 sums), and differ from the fp32 linears of the operands themselves */
static void bf16_linear_is_rounded_operands(void) {
    enum { N = 24, C = 40, OC = 56 };
    ds__exec *ex = &g_ex;
    float *x = t_rand_array(N * C, 1), *W = t_rand_array(OC * C, 0.2), *g = t_rand_array(N * OC, 1), *xr, *Wr, *gr;
    float *x_d = (float *)t_dev(ex, x, N * C * 4), *W_d = (float *)t_dev(ex, W, OC * C * 4), *g_d = (float *)t_dev(ex, g, N * OC * 4);
    float *o_d = (float *)t_dev(ex, NULL, N * OC * 4), *di_d = (float *)t_dev(ex, NULL, N * C * 4), *dW_d = (float *)t_dev(ex, NULL, OC * C * 4);
    float ref[N * OC], got[N * OC], dref[N * C], dgot[N * C], wref[OC * C], wgot[OC * C], plain[N * OC];
    double r;
    int i;
    xr = (float *)malloc(N * C * 4), Wr = (float *)malloc(OC * C * 4), gr = (float *)malloc(N * OC * 4);
    for (i = 0; i < N * C; i++) xr[i] = t_bf16(x[i]);
    for (i = 0; i < OC * C; i++) Wr[i] = t_bf16(W[i]);
    for (i = 0; i < N * OC; i++) gr[i] = t_bf16(g[i]);
    cref_linear_forward(ref, xr, Wr, N, C, OC, 0);
    memset(wref, 0, sizeof wref);
    cref_linear_backward(dref, 0, wref, gr, xr, Wr, N, C, OC);
    cref_linear_forward(plain, x, W, N, C, OC, 0);
    for (i = 0; i < 2; i++) { /* W rounded into the scratch; then W as "the parameters", from the weights' copy */
        CHECK(ds__exec_set_precision(ex, DS_PRECISION_BF16, N * OC + OC * C, i ? W_d : NULL, i ? OC * C : 0, &e_global_cuda) == DS_OK);
        CHECK(i == 0 || (ex->wbf && !ex->wbf_fresh));
        ds__linear_forward(ex, o_d, x_d, W_d, N, C, OC, 0);
        CHECK(i == 0 || ex->wbf_fresh);
        ds__zero(ex, dW_d, OC * C);
        ds__linear_backward(ex, di_d, 0, dW_d, g_d, x_d, W_d, N, C, OC);
        t_host(ex, got, o_d, sizeof got), t_host(ex, dgot, di_d, sizeof dgot), t_host(ex, wgot, dW_d, sizeof wgot);
        if (i == 0) { /* the three products went through cuBLASLt's heuristic (cublasGemmEx where it had nothing) */
            int k, found = 0;
            CHECKF(ex->lt_n >= 3 && ex->lt_ws, "cuBLASLt: %d shapes asked", ex->lt_n);
            CHECKF(ex->lt_refused == 0, "cuBLASLt refused %ld of its heuristic's algorithms (cublasGemmEx did those)", ex->lt_refused);
            for (k = 0; k < ex->lt_n; k++) found += ex->lt_algo[k].found;
            printf("  bf16 linears: cuBLASLt's heuristic had an algorithm for %d of %d shapes\n", found, ex->lt_n);
        }
        CHECK(ds__exec_set_precision(ex, DS_PRECISION_FP32, 0, NULL, 0, &e_global_cuda) == DS_OK && !ex->wbf && !ex->lt_ws);
        CHECKF((r = t_close(got, ref, N * OC, 1e-5, 1e-5)) <= 1, "bf16 linear_forward vs rounded operands (%d): %.3g", i, r);
        CHECKF((r = t_close(dgot, dref, N * C, 1e-5, 1e-5)) <= 1, "bf16 linear_backward dinp (%d): %.3g", i, r);
        CHECKF((r = t_close(wgot, wref, OC * C, 1e-5, 1e-5)) <= 1, "bf16 linear_backward dW (%d): %.3g", i, r);
        CHECKF(t_close(got, plain, N * OC, 1e-5, 1e-5) > 1, "the bf16 product equals the fp32 one: no rounding happened (%d)", i);
    }
    free(x), free(W), free(g), free(xr), free(Wr), free(gr);
    ds__exec_free(ex, x_d), ds__exec_free(ex, W_d), ds__exec_free(ex, g_d), ds__exec_free(ex, o_d), ds__exec_free(ex, di_d), ds__exec_free(ex, dW_d);
}
static void test_cuda_bf16_mode(void) {
    ds_model *g1, *g2;
    void *c;
    int32_t in[MB * MT], tg[MB * MT];
    float w[MB * MT], *gc, *gg;
    double lc = 0, lg = 0, worst = 0, cosine;
    size_t n;
    int s;
    NEED_DEVICE();
    CHECK(t_exec());
    bf16_linear_is_rounded_operands();
    CHECK((g1 = gpu_model(5)) && (g2 = gpu_model(5)) && (c = cpu_model(5)));
    CHECK(ds_model_precision(g1) == DS_PRECISION_FP32);
    CHECK_OK(ds_model_set_precision(g1, DS_PRECISION_BF16, &e_));
    CHECK_OK(ds_model_set_precision(g2, DS_PRECISION_BF16, &e_));
    CHECK(ds_model_precision(g1) == DS_PRECISION_BF16);
    CHECK(ds_model_set_precision(g1, 7, &e_global_cuda) == DS_ERR_INVALID);
    n = ds_model_n_params(g1);
    gc = (float *)malloc(n * 4), gg = (float *)malloc(n * 4);
    model_batch(in, tg, w, 0);
    CHECK(cref_train_grads(c, in, tg, w, NULL, MB, MT, &lc, gc) == 0);
    ds_model_zero_grad(g1);
    CHECK_OK(ds_model_forward(g1, in, tg, w, MB, MT, NULL, &lg, &e_));
    CHECK_OK(ds_model_backward(g1, 1.0f, NULL, &e_));
    CHECK_OK(ds_model_get(g1, DS_GRADS, 0, n, gg, &e_));
    cosine = tensor_cosine_min(g1, gg, gc);
    printf("  bf16: first loss %.6f (CPU fp32 %.6f), smallest per-tensor gradient cosine %.6f\n", lg, lc, cosine);
    CHECKF(fabs(lg - lc) <= 1e-2, "first loss: bf16 %.6f, CPU %.6f", lg, lc);
    CHECKF(cosine > 0.999, "gradient cosine %.6f", cosine);
    cref_model_free(c);
    ds_model_free(g1);
    CHECK((g1 = gpu_model(5)) && (c = cpu_model(5)));
    CHECK_OK(ds_model_set_precision(g1, DS_PRECISION_BF16, &e_));
    for (s = 0; s < 10; s++) {
        double l1, l2;
        model_batch(in, tg, NULL, s);
        CHECK(cref_train_grads(c, in, tg, NULL, NULL, MB, MT, &lc, NULL) == 0 && cref_step(c, 3e-3) == 0);
        CHECK_OK(gpu_train_step(g1, in, tg, &l1, &e_));
        CHECK_OK(gpu_train_step(g2, in, tg, &l2, &e_));
        CHECKF(memcmp(&l1, &l2, sizeof l1) == 0, "step %d: two bf16 runs differ (%.17g, %.17g)", s, l1, l2);
        if (fabs(l1 - lc) > worst) worst = fabs(l1 - lc);
    }
    printf("  bf16: 10 AdamW steps, largest |loss - CPU fp32 loss| %.2e; two bf16 runs bit-identical\n", worst);
    CHECK(worst <= 0.05);
    CHECK(t_same(g1, g2, DS_PARAMS) && t_same(g1, g2, DS_ADAM_M) && t_same(g1, g2, DS_ADAM_V));
    /* back to fp32: the fp32 numbers of the same parameters (the CPU's, within fp32's tolerance) */
    CHECK_OK(ds_model_set_precision(g1, DS_PRECISION_FP32, &e_));
    CHECK_OK(ds_model_get(g1, DS_PARAMS, 0, n, gg, &e_));
    {
        void *c2 = cpu_model(5);
        double l2c = 0;
        CHECK(c2 != NULL);
        cref_set_params(c2, gg);
        CHECK(cref_train_grads(c2, in, tg, NULL, NULL, MB, MT, &l2c, NULL) == 0);
        CHECK_OK(ds_model_forward(g1, in, tg, NULL, MB, MT, NULL, &lg, &e_));
        CHECKF(fabs(lg - l2c) <= 1e-5 * fabs(l2c), "fp32 again: GPU %.9g, CPU %.9g", lg, l2c);
        cref_model_free(c2);
    }
    free(gc), free(gg);
    ds_model_free(g1), ds_model_free(g2);
    cref_model_free(c);
}

/* The weights' bf16 copy (AdamW writes it as it updates the fp32 weights): after AdamW steps it
   holds what rounding the weights afresh gives (a model loaded from the same checkpoint, whose
   copy is made from its loaded weights, computes the same bits), and every other write into the
   weights -- ds_model_init, ds_model_set -- makes the next forward use the new weights. */
static void test_cuda_bf16_weight_copy(void) {
    ds_model *g, *u, *f;
    ds_train_state st;
    int32_t in[MB * MT], tg[MB * MT];
    double lg, lu, lf;
    float *p;
    size_t n;
    int s;
    NEED_DEVICE();
    CHECK((g = gpu_model(21)) != NULL);
    CHECK_OK(ds_model_set_precision(g, DS_PRECISION_BF16, &e_));
    for (s = 0; s < 4; s++) {
        model_batch(in, tg, NULL, s);
        CHECK_OK(gpu_train_step(g, in, tg, &lg, &e_));
    }
    memset(&st, 0, sizeof st);
    CHECK_OK(ds_checkpoint_save(g, NULL, &st, tp("cuda_bf16_copy"), DS_DTYPE_F32, &e_));
    CHECKF((u = ds_checkpoint_load(tp("cuda_bf16_copy"), MB, MT, NULL, &e_global_cuda)) != NULL, "%s", e_global_cuda.msg);
    CHECK_OK(ds_model_set_precision(u, DS_PRECISION_BF16, &e_));
    model_batch(in, tg, NULL, 9);
    CHECK_OK(ds_model_forward(g, in, tg, NULL, MB, MT, NULL, &lg, &e_));
    CHECK_OK(ds_model_forward(u, in, tg, NULL, MB, MT, NULL, &lu, &e_));
    CHECKF(memcmp(&lg, &lu, sizeof lg) == 0, "after 4 steps: the copy AdamW wrote %.17g, a fresh copy %.17g", lg, lu);
    /* ds_model_init writes new weights: the forward sees them (the loss of a model made with that seed) */
    CHECK((f = gpu_model(22)) != NULL);
    CHECK_OK(ds_model_set_precision(f, DS_PRECISION_BF16, &e_));
    CHECK_OK(ds_model_init(g, 22));
    CHECK_OK(ds_model_forward(g, in, tg, NULL, MB, MT, NULL, &lg, &e_));
    CHECK_OK(ds_model_forward(f, in, tg, NULL, MB, MT, NULL, &lf, &e_));
    CHECKF(memcmp(&lg, &lf, sizeof lg) == 0, "after ds_model_init: %.17g, a model made with that seed %.17g", lg, lf);
    /* ds_model_set writes u's weights into g: g computes u's loss */
    n = ds_model_n_params(g);
    p = (float *)malloc(n * 4);
    CHECK_OK(ds_model_get(u, DS_PARAMS, 0, n, p, &e_));
    CHECK_OK(ds_model_set(g, DS_PARAMS, 0, n, p, &e_));
    CHECK_OK(ds_model_forward(g, in, tg, NULL, MB, MT, NULL, &lg, &e_));
    CHECKF(memcmp(&lg, &lu, sizeof lg) == 0, "after ds_model_set: %.17g, the model it copied %.17g", lg, lu);
    free(p);
    ds_model_free(g), ds_model_free(u), ds_model_free(f);
}

/* bf16 mode stores the linears' inputs (ln1, ln2, h, lnf) as bf16: half the bytes, each value the
   bf16 rounding of the fp32 norm (the host's, whose sums run in another order, may round the
   other way where it falls next to a midpoint: within one bf16 step, and rarely); a change of precision drops what the last forward saved (a backward is refused until
   the next forward); back in fp32 the model computes the fp32 model's bits again. */
static void test_cuda_bf16_activations(void) {
    ds_model *g, *f;
    int32_t in[MB * MT], tg[MB * MT];
    uint16_t *ln;
    float *p, *ref;
    double lg, lf, worst = 0;
    size_t n, D = MD, N = (size_t)MB * MT, r, d, emb = 0, nrm = 0, other = 0;
    int k;
    NEED_DEVICE();
    CHECK((g = gpu_model(31)) && (f = gpu_model(31)));
    CHECK(g->act_es == sizeof(float));
    model_batch(in, tg, NULL, 2);
    CHECK_OK(ds_model_forward(g, in, tg, NULL, MB, MT, NULL, &lg, &e_));
    CHECK_OK(ds_model_set_precision(g, DS_PRECISION_BF16, &e_));
    CHECK(g->act_es == 2 && ds__act_bf16(&g->ex, g->ln1) && ds__act_bf16(&g->ex, g->lnf) && ds__act_bf16(&g->ex, g->gu) &&
          ds__act_bf16(&g->ex, g->qkv) && ds__act_bf16(&g->ex, g->y) && !ds__act_bf16(&g->ex, g->res));
    CHECK(ds_model_backward(g, 1.0f, NULL, &e_global_cuda) == DS_ERR_INVALID); /* the saved inputs went with the fp32 buffer */
    CHECK_OK(ds_model_forward(g, in, tg, NULL, MB, MT, NULL, &lg, &e_));
    CHECK_OK(ds_model_backward(g, 1.0f, NULL, &e_));
    /* layer 0's ln1 = rmsnorm(the embeddings of the inputs), as bf16 */
    n = ds_model_n_params(g);
    p = (float *)malloc(n * 4), ref = (float *)malloc(N * D * 4), ln = (uint16_t *)malloc(N * D * 2);
    CHECK(p && ref && ln);
    CHECK_OK(ds_model_get(g, DS_PARAMS, 0, n, p, &e_));
    for (k = 0; k < ds_model_n_tensors(g); k++) {
        if (!strcmp(ds_model_tensor(g, k)->name, "model.embed_tokens.weight")) emb = ds_model_tensor(g, k)->offset;
        if (!strcmp(ds_model_tensor(g, k)->name, "model.layers.0.input_layernorm.weight")) nrm = ds_model_tensor(g, k)->offset;
    }
    for (r = 0; r < N; r++) {
        const float *x = p + emb + (size_t)in[r] * D;
        double ss = 0, s;
        for (d = 0; d < D; d++) ss += (double)x[d] * x[d];
        s = 1.0 / sqrt(ss / (double)D + g->c.norm_eps);
        for (d = 0; d < D; d++) ref[r * D + d] = (float)(x[d] * s * p[nrm + d]);
    }
    t_host(&g->ex, ln, g->ln1, N * D * 2);
    for (r = 0; r < N * D; r++) {
        float v = t_bf(ln[r]), e;
        if (t_bfbits(ref[r]) != ln[r]) other++; /* the host's value rounded to bf16 */
        e = fabsf(v - ref[r]) / (fabsf(ref[r]) + 1e-30f);
        if (!(e <= worst)) worst = e;
    }
    printf("  bf16 activations: ln1 held as bf16; %zu of %zu values are not the host norm's bf16 rounding; "
           "largest relative difference %.2e\n", other, N * D, worst);
    CHECKF(worst <= 1.0 / 128, "ln1: %.3e from the host's norm (more than a bf16 step)", worst);
    CHECKF(other * 100 <= N * D, "ln1: %zu of %zu values differ from the host's rounding", other, N * D);
    /* layer 0's gate|up = ln2 Wgu^T, written as bf16 by the product (fp32 sums rounded once), and
       h = silu(gate) up from those bf16 values, rounded once */
    {
        size_t F = g->c.d_ff, o, wo = 0, ng = 0, nh = 0;
        uint16_t *gu = (uint16_t *)malloc(N * 2 * F * 2), *hh = (uint16_t *)malloc(N * F * 2), *l2 = (uint16_t *)malloc(N * D * 2);
        double wg = 0;
        CHECK(gu && hh && l2);
        for (k = 0; k < ds_model_n_tensors(g); k++)
            if (!strcmp(ds_model_tensor(g, k)->name, "model.layers.0.mlp.gate_proj.weight")) wo = ds_model_tensor(g, k)->offset;
        t_host(&g->ex, gu, g->gu, N * 2 * F * 2), t_host(&g->ex, hh, g->h, N * F * 2), t_host(&g->ex, l2, g->ln2, N * D * 2);
        for (r = 0; r < N; r++)
            for (o = 0; o < 2 * F; o++) { /* the product of the bf16 operands, in double, rounded */
                double acc = 0, mag = 0;
                float v = t_bf(gu[r * 2 * F + o]), f;
                for (d = 0; d < D; d++) {
                    double t = (double)t_bf(l2[r * D + d]) * t_bf16(p[wo + o * D + d]);
                    acc += t, mag += fabs(t);
                }
                f = (float)acc;
                if (t_bfbits(f) != gu[r * 2 * F + o]) ng++;
                if (fabs(v - acc) / (fabs(acc) / 128 + 1e-6 * mag + 1e-30) > wg) wg = fabs(v - acc) / (fabs(acc) / 128 + 1e-6 * mag + 1e-30);
            }
        for (r = 0; r < N; r++)
            for (o = 0; o < F; o++) {
                float a = t_bf(gu[r * 2 * F + o]), b = t_bf(gu[r * 2 * F + F + o]);
                if (t_bfbits(a / (1 + expf(-a)) * b) != hh[r * F + o]) nh++;
            }
        printf("  bf16 activations: gate|up held as bf16, %zu of %zu not the rounding of the host's product (the worst at %.2f of the tolerance, a bf16 step); "
               "h: %zu of %zu not the rounding of the host's SwiGLU\n", ng, N * 2 * F, wg, nh, N * F);
        CHECKF(wg <= 1 && ng * 100 <= N * 2 * F, "gate|up: %zu values differ, worst %.2f", ng, wg);
        CHECKF(nh * 100 <= N * F, "h: %zu of %zu values differ from the host's SwiGLU", nh, N * F);
        free(gu), free(hh), free(l2);
    }
    /* heads of 10 channels: bf16 mode's attention on the fp32 kernels, reading bf16 q|k|v and
       writing a bf16 y; against the same model in fp32 */
    {
        ds_config c;
        ds_model *a, *b;
        double la = 0, lb = 0, cs;
        float *ga, *gb;
        size_t nn;
        ds_config_preset("test", &c, &e_global_cuda);
        c.vocab = MV, c.d_model = 40, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = ds_ffn_dim(40, 16), c.max_seq = MT;
        CHECK((a = ds_model_new(&c, MB, MT, &e_global_cuda)) && (b = ds_model_new(&c, MB, MT, &e_global_cuda)));
        CHECK_OK(ds_model_init(a, 33));
        CHECK_OK(ds_model_init(b, 33));
        CHECK_OK(ds_model_set_precision(b, DS_PRECISION_BF16, &e_));
        CHECK(!ds__attention_tc(&b->ex, 10) && ds__act_bf16(&b->ex, b->qkv));
        nn = ds_model_n_params(a);
        ga = (float *)malloc(nn * 4), gb = (float *)malloc(nn * 4);
        CHECK(ga && gb);
        ds_model_zero_grad(a), ds_model_zero_grad(b);
        CHECK_OK(ds_model_forward(a, in, tg, NULL, MB, MT, NULL, &la, &e_));
        CHECK_OK(ds_model_backward(a, 1.0f, NULL, &e_));
        CHECK_OK(ds_model_forward(b, in, tg, NULL, MB, MT, NULL, &lb, &e_));
        CHECK_OK(ds_model_backward(b, 1.0f, NULL, &e_));
        CHECK_OK(ds_model_get(a, DS_GRADS, 0, nn, ga, &e_));
        CHECK_OK(ds_model_get(b, DS_GRADS, 0, nn, gb, &e_));
        cs = tensor_cosine_min(a, gb, ga);
        printf("  bf16 activations, heads of 10 (the fp32 attention kernels): loss %.6f against fp32 %.6f, smallest gradient cosine %.6f\n", lb, la,
               cs);
        CHECKF(fabs(lb - la) <= 1e-2 && cs > 0.999, "heads of 10: loss %.6f / %.6f, cosine %.6f", lb, la, cs);
        free(ga), free(gb);
        ds_model_free(a), ds_model_free(b);
    }
    /* back to fp32: the fp32 model's bits (same weights: neither has stepped) */
    CHECK_OK(ds_model_set_precision(g, DS_PRECISION_FP32, &e_));
    CHECK(g->act_es == sizeof(float) && !ds__act_bf16(&g->ex, g->ln1));
    CHECK_OK(ds_model_forward(g, in, tg, NULL, MB, MT, NULL, &lg, &e_));
    CHECK_OK(ds_model_forward(f, in, tg, NULL, MB, MT, NULL, &lf, &e_));
    CHECKF(memcmp(&lg, &lf, sizeof lg) == 0, "fp32 again: %.17g, an fp32 model %.17g", lg, lf);
    free(p), free(ref), free(ln);
    ds_model_free(g), ds_model_free(f);
}

/* bf16 mode's prefill (the prompt through the batched forward, on the training buffers, whose
   lin block is bf16 there) and decoding (one position at a time, on the decoding buffers, fp32)
   against the fp32 model's, and against each other, within bf16's rounding */
static void test_cuda_bf16_prefill_and_decode(void) {
    ds_model *g, *t, *f;
    float lg[MV], lt[MV], lf[MV];
    int32_t tok[12];
    const ds_float *p;
    double rel_f = 0, rel_t = 0;
    int i, k;
    NEED_DEVICE();
    CHECK((g = gpu_model(9)) && (t = gpu_model(9)) && (f = gpu_model(9)));
    CHECK_OK(ds_model_set_precision(g, DS_PRECISION_BF16, &e_));
    CHECK_OK(ds_model_set_precision(t, DS_PRECISION_BF16, &e_));
    for (i = 0; i < 12; i++) tok[i] = (int32_t)((i * 13 + 5) % MV);
    CHECK_OK(ds__prefill(g, tok, 12, 0, NULL, &p, &e_));
    memcpy(lg, p, sizeof lg);
    CHECK_OK(ds__prefill(f, tok, 12, 0, NULL, &p, &e_));
    memcpy(lf, p, sizeof lf);
    for (i = 0; i < 12; i++) CHECK_OK(ds_model_forward_token(t, tok[i], i, NULL, &p, &e_));
    memcpy(lt, p, sizeof lt);
    for (k = 0; k < 4; k++) { /* then decoding, the three models side by side */
        double df = 0, dt = 0, nf = 0;
        for (i = 0; i < MV; i++) df += (lg[i] - lf[i]) * (double)(lg[i] - lf[i]), dt += (lg[i] - lt[i]) * (double)(lg[i] - lt[i]), nf += (double)lf[i] * lf[i];
        if (sqrt(df / nf) > rel_f) rel_f = sqrt(df / nf);
        if (sqrt(dt / nf) > rel_t) rel_t = sqrt(dt / nf);
        if (k == 3) break;
        CHECK_OK(ds_model_forward_token(g, tok[k], 12 + k, NULL, &p, &e_));
        memcpy(lg, p, sizeof lg);
        CHECK_OK(ds_model_forward_token(f, tok[k], 12 + k, NULL, &p, &e_));
        memcpy(lf, p, sizeof lf);
        CHECK_OK(ds_model_forward_token(t, tok[k], 12 + k, NULL, &p, &e_));
        memcpy(lt, p, sizeof lt);
    }
    printf("  bf16 prefill + 3 decoded positions: logits within %.2e (relative L2) of fp32's, %.2e of bf16 fed token by token\n", rel_f, rel_t);
    CHECKF(rel_f <= 2e-2, "bf16 against fp32: %.3e", rel_f);
    CHECKF(rel_t <= 2e-2, "bf16 prefill against bf16 token by token: %.3e", rel_t);
    CHECK(rel_f > 0); /* the rounding does happen */
    ds_model_free(g), ds_model_free(t), ds_model_free(f);
}

/* SFT masking: a token of weight 0 gets exactly zero gradient on the GPU too (changing its target
   changes no bit); backward_tokens (DPO's path) agrees with the CPU's */
static void test_cuda_sft_mask_and_backward_tokens(void) {
    ds_model *g;
    void *c;
    int32_t in[MB * MT], tg[MB * MT];
    float w[MB * MT], dl[MB * MT], *g1, *g2, *gc;
    size_t n;
    int i;
    double l;
    NEED_DEVICE();
    CHECK((g = gpu_model(5)) && (c = cpu_model(5)));
    n = ds_model_n_params(g);
    g1 = (float *)malloc(n * 4), g2 = (float *)malloc(n * 4), gc = (float *)malloc(n * 4);
    model_batch(in, tg, w, 1);
    ds_model_zero_grad(g);
    CHECK_OK(ds_model_forward(g, in, tg, w, MB, MT, NULL, &l, &e_));
    CHECK_OK(ds_model_backward(g, 1.0f, NULL, &e_));
    CHECK_OK(ds_model_get(g, DS_GRADS, 0, n, g1, &e_));
    for (i = 0; i < MB * MT; i++) if (w[i] == 0) tg[i] = (tg[i] + 11) % MV;
    ds_model_zero_grad(g);
    CHECK_OK(ds_model_forward(g, in, tg, w, MB, MT, NULL, &l, &e_));
    CHECK_OK(ds_model_backward(g, 1.0f, NULL, &e_));
    CHECK_OK(ds_model_get(g, DS_GRADS, 0, n, g2, &e_));
    CHECK(memcmp(g1, g2, n * 4) == 0);
    for (i = 0; i < MB * MT; i++) dl[i] = (float)(0.01 * (i % 5 - 2));
    CHECK(cref_train_grads(c, in, tg, NULL, dl, MB, MT, &l, gc) == 0);
    ds_model_zero_grad(g);
    CHECK_OK(ds_model_forward(g, in, tg, NULL, MB, MT, NULL, &l, &e_));
    CHECK_OK(ds_model_backward_tokens(g, dl, NULL, &e_));
    CHECK_OK(ds_model_get(g, DS_GRADS, 0, n, g1, &e_));
    CHECKF(tensor_error(g, g1, gc) <= 1e-5, "backward_tokens: %.3g", tensor_error(g, g1, gc));
    free(g1), free(g2), free(gc);
    ds_model_free(g);
    cref_model_free(c);
}

/* decoding through the KV cache: the GPU's logits against the CPU's */
static void test_cuda_decode_matches_cpu(void) {
    ds_model *g;
    void *c;
    float lc[MV];
    int i;
    NEED_DEVICE();
    CHECK((g = gpu_model(9)) && (c = cpu_model(9)));
    for (i = 0; i < MT; i++) {
        const ds_float *lg;
        int32_t tok = (int32_t)((i * 13 + 5) % MV);
        double r;
        CHECK(cref_forward_token(c, tok, i, lc, MV) == 0);
        CHECK_OK(ds_model_forward_token(g, tok, i, NULL, &lg, &e_));
        CHECKF((r = t_close(lg, lc, MV, 1e-5, 1e-4)) <= 1, "position %d: %.3g", i, r);
    }
    ds_model_free(g);
    cref_model_free(c);
}

/* A checkpoint saved after 3 GPU steps resumes on the GPU bit for bit, and the CPU build's loss on
   it matches the GPU's. fp32: the loss to 1e-5 relative. bf16 (the loaded model's bf16 weight
   copy is made fresh from the fp32 weights, which AdamW's copy equals): the step count and both
   moments resume too, and the CPU's fp32 loss is within bf16's tolerance (1e-2) of the GPU's. */
static void checkpoint_resume(int seed, int bf16, const char *dir) {
    ds_model *g, *u;
    void *c;
    ds_train_state st, st2;
    int32_t in[MB * MT], tg[MB * MT];
    double la[2], lb[2], lg, lc;
    int s;
    CHECK((g = gpu_model(seed)) != NULL);
    if (bf16) CHECK_OK(ds_model_set_precision(g, DS_PRECISION_BF16, &e_));
    memset(&st, 0, sizeof st);
    for (s = 0; s < 5; s++) {
        double l;
        if (s == 3) { st.step = 3; CHECK_OK(ds_checkpoint_save(g, NULL, &st, tp(dir), DS_DTYPE_F32, &e_)); }
        model_batch(in, tg, NULL, s);
        CHECK_OK(gpu_train_step(g, in, tg, &l, &e_));
        if (s >= 3) la[s - 3] = l;
    }
    CHECKF((u = ds_checkpoint_load(tp(dir), MB, MT, &st2, &e_global_cuda)) != NULL, "%s", e_global_cuda.msg);
    if (bf16) {
        CHECK(st2.step == 3);
        CHECK_OK(ds_model_set_precision(u, DS_PRECISION_BF16, &e_));
    }
    for (s = 3; s < 5; s++) {
        model_batch(in, tg, NULL, s);
        CHECK_OK(gpu_train_step(u, in, tg, &lb[s - 3], &e_));
    }
    CHECKF(memcmp(la, lb, sizeof la) == 0, "resume: %.17g %.17g against %.17g %.17g", lb[0], lb[1], la[0], la[1]);
    CHECK(t_same(g, u, DS_PARAMS));
    if (bf16) CHECK(t_same(g, u, DS_ADAM_M) && t_same(g, u, DS_ADAM_V));
    CHECK((c = cref_model_load(tp(dir), MB, MT)) != NULL);
    model_batch(in, tg, NULL, 7);
    CHECK(cref_train_grads(c, in, tg, NULL, NULL, MB, MT, &lc, NULL) == 0);
    ds_model_free(u);
    CHECK((u = ds_checkpoint_load(tp(dir), MB, MT, NULL, &e_global_cuda)) != NULL);
    if (bf16) CHECK_OK(ds_model_set_precision(u, DS_PRECISION_BF16, &e_));
    CHECK_OK(ds_model_forward(u, in, tg, NULL, MB, MT, NULL, &lg, &e_));
    if (bf16) {
        printf("  bf16 checkpoint: GPU bf16 loss %.6f, CPU build fp32 loss %.6f\n", lg, lc);
        CHECKF(fabs(lg - lc) <= 1e-2, "GPU bf16 %.9g, CPU fp32 %.9g", lg, lc);
    } else
        CHECKF(fabs(lg - lc) <= 1e-5 * fabs(lc), "GPU %.9g, CPU %.9g", lg, lc);
    ds_model_free(u), ds_model_free(g);
    cref_model_free(c);
}
static void test_cuda_checkpoint_crosses_backends(void) {
    NEED_DEVICE();
    checkpoint_resume(11, 0, "cuda_ckpt");
}
static void test_cuda_bf16_checkpoint_resume(void) {
    NEED_DEVICE();
    checkpoint_resume(13, 1, "cuda_ckpt_bf16");
}

int main(int argc, char **argv) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    ds_tstate.filter = argc > 1 ? argv[1] : NULL;
    if (e != cudaSuccess || n < 1) snprintf(g_why, sizeof g_why, "%s", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    else {
        struct cudaDeviceProp p;
        g_dev = 1;
#ifdef DS_CUDA_EMU
        if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) printf("device: %s\n", p.name);
#else
        if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) printf("device: %s (sm_%d%d)\n", p.name, p.major, p.minor);
#endif
    }
    mkdir("build", 0755);
    snprintf(ds_tdir, sizeof ds_tdir, "build/tests-cuda-%ld", (long)getpid());
    if (mkdir(ds_tdir, 0755) != 0) { perror(ds_tdir); return 1; }
    RUN(test_cuda_ops_elementwise_and_norms);
    RUN(test_cuda_ops_linear_and_crossentropy);
    RUN(test_cuda_ops_dp_primitives);
    RUN(test_cuda_ops_rope_and_attention);
    RUN(test_cuda_ops_attention_tiles);
    RUN(test_cuda_bf16_attention_tensor_cores);
    RUN(test_cuda_model_fp32_matches_cpu);
    RUN(test_cuda_chunked_classifier);
    RUN(test_cuda_training_trajectory_and_determinism);
    RUN(test_cuda_bf16_mode);
    RUN(test_cuda_bf16_weight_copy);
    RUN(test_cuda_bf16_activations);
    RUN(test_cuda_bf16_prefill_and_decode);
    RUN(test_cuda_sft_mask_and_backward_tokens);
    RUN(test_cuda_decode_matches_cpu);
    RUN(test_cuda_checkpoint_crosses_backends);
    RUN(test_cuda_bf16_checkpoint_resume);
    if (!ds_tstate.failed) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", ds_tdir); /* the scratch directory (our own name) */
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", ds_tdir);
    }
#ifdef DS_CUDA_EMU
    printf("cuda (on the CPU emulator, not a GPU): %d passed, %d failed, %d skipped\n", ds_tstate.passed, ds_tstate.failed, ds_tstate.skipped);
#else
    printf("cuda: %d passed, %d failed, %d skipped\n", ds_tstate.passed, ds_tstate.failed, ds_tstate.skipped);
#endif
    return ds_tstate.failed ? 1 : 0;
}
