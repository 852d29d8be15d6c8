/* test_model.c - §2.2-2.3 in the float build: configuration, schedules, determinism across
   thread counts, masking, bad input. (The gradients are checked in tests/gradcheck.c.) */

static ds_error e_global; /* for calls whose message a test does not read */

static void test_config_presets_and_validation(void) {
    ds_config c;
    ds_error e;
    CHECK_EQ_INT(ds_ffn_dim(4096, 256), 11008); /* §2.2: 8/3 d rounded up to 256 */
    CHECK_EQ_INT(ds_ffn_dim(8192, 256), 22016);
    CHECK_OK(ds_config_preset("7b", &c, &e_));
    CHECK(c.vocab == 102400 && c.n_layers == 30 && c.d_model == 4096 && c.n_heads == 32 && c.n_kv_heads == 32 && c.d_ff == 11008);
    CHECK(c.rope_theta == 10000 && c.norm_eps == 1e-6 && c.init_std == 0.006);
    CHECKF(fabs((double)ds_config_n_params(&c) / 6.91e9 - 1) < 0.005, "7B has %zu parameters", ds_config_n_params(&c));
    CHECK_OK(ds_config_preset("67b", &c, &e_));
    CHECK(c.n_layers == 95 && c.d_model == 8192 && c.n_heads == 64 && c.n_kv_heads == 8 && c.d_ff == 22016);
    CHECK_OK(ds_config_validate(&c, &e_));
    CHECK(ds_config_preset("huge", &c, &e) == DS_ERR_INVALID && strstr(e.msg, "huge"));
    ds_config_preset("test", &c, &e);
    c.n_heads = 5;
    CHECK(ds_config_validate(&c, &e) == DS_ERR_INVALID && strstr(e.msg, "divide d_model"));
    ds_config_preset("test", &c, &e);
    c.n_kv_heads = 3;
    CHECK(ds_config_validate(&c, &e) == DS_ERR_INVALID && strstr(e.msg, "n_kv_heads"));
    ds_config_preset("test", &c, &e);
    c.d_ff = 0;
    CHECK(ds_config_validate(&c, &e) == DS_ERR_INVALID && strstr(e.msg, "positive"));
    ds_config_preset("test", &c, &e);
    c.d_model = 12, c.n_heads = 4, c.n_kv_heads = 4; /* head size 3: odd */
    CHECK(ds_config_validate(&c, &e) == DS_ERR_INVALID && strstr(e.msg, "odd"));
    ds_config_preset("test", &c, &e);
    c.vocab = 1 << 30;
    CHECK(ds_config_validate(&c, &e) == DS_ERR_INVALID);
    ds_config_preset("test", &c, &e);
    CHECK(ds_model_new(&c, 1, c.max_seq + 1, &e) == NULL && strstr(e.msg, "max_seq"));
}

static void test_schedule_boundaries(void) {
    ds_schedule s = ds_schedule_multistep(1e-3, 10, 100), k = ds_schedule_cosine(1e-3, 10, 100);
    CHECK(fabs(ds_schedule_lr(&s, 0) - 1e-4) < 1e-15);  /* warmup: (step + 1) / warmup of the peak */
    CHECK(fabs(ds_schedule_lr(&s, 9) - 1e-3) < 1e-15);
    CHECK(ds_schedule_lr(&s, 10) == 1e-3 && ds_schedule_lr(&s, 79) == 1e-3);
    CHECK(fabs(ds_schedule_lr(&s, 80) - 0.316e-3) < 1e-15 && fabs(ds_schedule_lr(&s, 89) - 0.316e-3) < 1e-15); /* after 80% */
    CHECK(fabs(ds_schedule_lr(&s, 90) - 1e-4) < 1e-15 && fabs(ds_schedule_lr(&s, 99) - 1e-4) < 1e-15);     /* after 90% */
    s = ds_schedule_multistep(1.0, 2000, 10000); /* the paper's warmup; stage 1 ends at step 8000 */
    CHECK(ds_schedule_lr(&s, 7999) == 1.0 && ds_schedule_lr(&s, 8000) == 0.316 && ds_schedule_lr(&s, 9000) == 0.1);
    CHECK(fabs(ds_schedule_lr(&k, 10) - 1e-3) < 1e-15);
    CHECK(fabs(ds_schedule_lr(&k, 99) - 1e-4) < 1e-15); /* cosine ends at min_ratio */
    CHECK(ds_schedule_lr(&k, 50) < 1e-3 && ds_schedule_lr(&k, 50) > 1e-4);
}

/* a small model and a batch of random tokens */
typedef struct { ds_config c; ds_model *m; int32_t in[2 * 16], tg[2 * 16]; float w[2 * 16]; } tiny_run;
static int tiny_setup(tiny_run *r, int kv) {
    ds_error e;
    int i;
    ds_config_preset("test", &r->c, &e);
    r->c.n_kv_heads = kv;
    r->m = ds_model_new(&r->c, 2, 16, &e);
    if (!r->m) return 0;
    ds_model_init(r->m, 42);
    for (i = 0; i < 32; i++) { r->in[i] = (int32_t)(t_rand() % 64); r->tg[i] = (int32_t)(t_rand() % 64); r->w[i] = 1; }
    return 1;
}

static void test_initial_loss_is_log_vocab(void) {
    tiny_run r;
    double loss;
    CHECK(tiny_setup(&r, 2));
    CHECK_OK(ds_model_forward(r.m, r.in, r.tg, NULL, 2, 16, NULL, &loss, &e_));
    CHECKF(fabs(loss - log(64.0)) < 0.05, "initial loss %f, expected about ln 64 = %f", loss, log(64.0));
    ds_model_free(r.m);
}

static void test_training_reduces_loss(void) {
    tiny_run r;
    double first = 0, loss = 0;
    int s;
    ds_adamw opt = ds_adamw_default();
    CHECK(tiny_setup(&r, 2));
    for (s = 0; s < 30; s++) {
        ds_model_zero_grad(r.m);
        CHECK_OK(ds_model_forward(r.m, r.in, r.tg, NULL, 2, 16, NULL, &loss, &e_));
        CHECK_OK(ds_model_backward(r.m, 1.0f, NULL, &e_));
        CHECK_OK(ds_model_step(r.m, &opt, 1e-2, NULL, NULL, &e_));
        if (s == 0) first = loss;
    }
    CHECKF(loss < 0.5f * first, "loss %f -> %f after 30 steps on one batch", first, loss);
    ds_model_free(r.m);
}

/* Steps of the three training paths on one model: plain pretraining (step 0, 3), SFT-weighted
   tokens (step 1) and backward_tokens with a signed dloss as DPO uses it (step 2); then KV-cache
   decoding. *loss[s] and *dec (a hash of the decoded logits) record what came out. */
static int three_paths(ds_model *m, ds_pool *pool, const int32_t *in, const int32_t *tg, double *loss, uint64_t *dec, ds_error *e) {
    ds_adamw opt = ds_adamw_default();
    float w[4 * 24];
    ds_float dl[4 * 24];
    int s, i;
    for (i = 0; i < 4 * 24; i++) w[i] = (float)(i % 3) * 0.5f, dl[i] = (ds_float)(0.01 * (i % 5 - 2));
    for (s = 0; s < 4; s++) {
        ds_model_zero_grad(m);
        if (ds_model_forward(m, in, tg, s == 1 ? w : NULL, 4, 24, pool, &loss[s], e)) return 0;
        if (s == 2 ? ds_model_backward_tokens(m, dl, pool, e) : ds_model_backward(m, 1.0f, pool, e)) return 0;
        if (s < 3 && ds_model_step(m, &opt, 3e-3, NULL, pool, e)) return 0;
    }
    for (*dec = 1469598103934665603ull, i = 0; i < 6; i++) {
        const ds_float *lg;
        const unsigned char *b;
        size_t k;
        if (ds_model_forward_token(m, in[i], i, pool, &lg, e)) return 0;
        for (b = (const unsigned char *)lg, k = 0; k < 96 * sizeof(ds_float); k++) *dec = (*dec ^ b[k]) * 1099511628211ull;
    }
    return 1;
}
static ds_model *three_paths_model(int host_visible, ds_error *e) {
    ds_config c;
    ds_model *m;
    ds_config_preset("test", &c, e);
    c.vocab = 96, c.d_model = 48, c.n_heads = 6, c.n_kv_heads = 2, c.d_ff = ds_ffn_dim(48, 8), c.max_seq = 24, c.n_layers = 2;
    m = ds__model_new(&c, 4, 24, c.max_seq, host_visible ? 0 : DS__NEW_HOST_COPIES, e);
    if (m && ds_model_init(m, 7)) { ds_model_free(m); m = NULL; }
    return m;
}

/* The rule: losses, gradients, parameters, moments and decoded logits are bit-identical for 1, 2
   and 4 threads, on every training path (pretraining, SFT weights, backward_tokens). */
static void test_threads_bit_identical(void) {
    ds_model *ref = NULL;
    double ref_loss[4];
    uint64_t ref_dec = 0;
    int threads[3] = {1, 2, 4}, k, s;
    ds_error e;
    int32_t in[4 * 24], tg[4 * 24];
    for (k = 0; k < 4 * 24; k++) { in[k] = (int32_t)(t_rand() % 96); tg[k] = (int32_t)(t_rand() % 96); }
    for (k = 0; k < 3; k++) {
        ds_pool *pool = ds_pool_new(threads[k], &e);
        ds_model *m = three_paths_model(1, &e);
        double loss[4];
        uint64_t dec;
        CHECK(pool);
        CHECKF(m, "%s", e.msg);
        CHECKF(three_paths(m, pool, in, tg, loss, &dec, &e), "%d threads: %s", threads[k], e.msg);
        if (k == 0) { ref = m, memcpy(ref_loss, loss, sizeof loss), ref_dec = dec; }
        else {
            for (s = 0; s < 4; s++)
                CHECKF(memcmp(&loss[s], &ref_loss[s], sizeof loss[s]) == 0, "%d threads, step %d: loss %.17g vs %.17g", threads[k], s, loss[s], ref_loss[s]);
            CHECKF(t_same(m, ref, DS_GRADS), "%d threads: gradients differ", threads[k]);
            CHECKF(t_same(m, ref, DS_PARAMS), "%d threads: parameters differ", threads[k]);
            CHECKF(t_same(m, ref, DS_ADAM_M) && t_same(m, ref, DS_ADAM_V), "%d threads: AdamW moments differ", threads[k]);
            CHECKF(dec == ref_dec, "%d threads: decoded logits differ", threads[k]);
            ds_model_free(m);
        }
        ds_pool_free(pool);
    }
    ds_model_free(ref);
}

/* A product's operands for the matmul tests: A [M x K], B [K x N] and a starting C, Ci [M x N],
   uniform; C0 and C1 for two results. 0 if any allocation failed. */
static int t_mm_operands(size_t M, size_t N, size_t K, float **A, float **B, float **C0, float **C1, float **Ci) {
    size_t i;
    *A = (float *)malloc(M * K * sizeof(float)), *B = (float *)malloc(K * N * sizeof(float));
    *C0 = (float *)malloc(M * N * sizeof(float)), *C1 = (float *)malloc(M * N * sizeof(float)), *Ci = (float *)malloc(M * N * sizeof(float));
    if (!*A || !*B || !*C0 || !*C1 || !*Ci) return 0;
    for (i = 0; i < M * K; i++) (*A)[i] = (float)t_uniform();
    for (i = 0; i < K * N; i++) (*B)[i] = (float)t_uniform();
    for (i = 0; i < M * N; i++) (*Ci)[i] = (float)t_uniform();
    return 1;
}
/* The matmul's two paths -- strip by strip (ds__mm_task) and blocked with a packed A
   (ds__mm_blocked_task, taken with a pool for products >= 4 strips wide) -- give the same bits for
   every layout the model uses (A by rows; A transposed, as dout^T in a weight gradient; B as
   stored or transposed, as a Linear's weight), accumulating or not, with row, column and k
   remainders, several row blocks (the pool's mm_mc lowered to 64) and column blocks (N > 512),
   widths that end in AVX2's 32-wide strip (128, 512) and several k-blocks of AVX2's KC 256
   (K 300), for 1, 2 and 3 threads; and they agree with a double-precision product. */
static void test_matmul_paths_bit_identical(void) {
    static const size_t shapes[][3] = {{5, 256, 7}, {37, 300, 129}, {70, 288, 131}, {130, 600, 300}, {203, 257, 64}, {64, 1100, 1},
                                         {70, 130, 131}, {203, 128, 64}, {90, 100, 40}, {150, 512, 300}};
    size_t si, i, j, k;
    int layout, acc, th;
    ds_error e;
    for (si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        size_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        float *A, *B, *C0, *C1, *Ci;
        CHECK(t_mm_operands(M, N, K, &A, &B, &C0, &C1, &Ci));
        for (layout = 0; layout < 4; layout++) /* bit 0: A transposed ([K, M] in memory); bit 1: B transposed ([N, K]) */
            for (acc = 0; acc < 2; acc++) {
                size_t sam = layout & 1 ? 1 : K, sak = layout & 1 ? M : 1, ldb = layout & 2 ? K : N;
                int bt = layout >> 1;
                memcpy(C0, Ci, M * N * sizeof(float));
                ds__matmul_g(NULL, C0, N, A, sam, sak, B, ldb, bt, M, N, K, acc); /* no pool: strip by strip */
                for (i = 0; i < M; i++)
                    for (j = 0; j < N; j++) {
                        double ref = acc ? Ci[i * N + j] : 0, scale = fabs(ref);
                        for (k = 0; k < K; k++) {
                            double a = A[i * sam + k * sak], b = bt ? B[j * ldb + k] : B[k * ldb + j];
                            ref += a * b, scale += fabs(a * b);
                        }
                        CHECKF(fabs(C0[i * N + j] - ref) <= 1e-6 * scale + 1e-30, "%zux%zux%zu layout %d: C[%zu][%zu] %g vs %g", M, N, K, layout, i, j, C0[i * N + j], ref);
                    }
                for (th = 1; th <= 3; th++) {
                    int small;
                    for (small = 0; small < 2; small++) {
                        ds_pool *pool = ds_pool_new(th, &e);
                        CHECKF(pool, "%s", e.msg);
                        if (small) pool->mm_mc = 64; /* several row blocks a thread (the buffers hold more) */
                        memcpy(C1, Ci, M * N * sizeof(float));
                        ds__matmul_g(pool, C1, N, A, sam, sak, B, ldb, bt, M, N, K, acc);
                        ds_pool_free(pool);
                        CHECKF(memcmp(C0, C1, M * N * sizeof(float)) == 0, "%zux%zux%zu layout %d acc %d, %d threads%s: the paths differ", M, N, K,
                               layout, acc, th, small ? " (mc 64)" : "");
                    }
                }
            }
        free(A), free(B), free(C0), free(C1), free(Ci);
    }
}

/* The CPU's bf16 products (DS_PRECISION_BF16 on a CPU with AVX512_BF16): for every layout the
   linears use, accumulating or not, with row, column, pair (odd K) and k-block remainders, each
   element equals the double-precision sum of the bf16-rounded operands' products to fp32
   accumulation error (1e-5 of the sum of |products|; rounding by truncation, or a lost pair,
   would be off by ~1e-3); and the same bits without a pool, and with 1, 2 and 3 threads, one or
   several row blocks. */
static void test_bf16_products(void) {
#ifndef DS__BF16_DOT
    SKIP("this build has no AVX512_BF16 (-march=native on a CPU without it): bf16 is the CUDA build's");
#else
    static const size_t shapes[][3] = {{1, 1, 1}, {5, 70, 7}, {37, 64, 256}, {70, 130, 301}, {9, 513, 257}, {130, 600, 2}, {203, 96, 515}, {45, 200, 1101}};
    size_t si, i, j, k;
    int layout, acc, th;
    ds_error e;
    for (si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        size_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        float *A, *B, *C0, *C1, *Ci;
        ds_float *own = (ds_float *)malloc(ds__mmb_buf(DS__MMB_MC) * sizeof(ds_float));
        CHECK(t_mm_operands(M, N, K, &A, &B, &C0, &C1, &Ci) && own);
        for (layout = 0; layout < 4; layout++) /* bit 0: A transposed ([K, M] in memory); bit 1: B transposed ([N, K]) */
            for (acc = 0; acc < 2; acc++) {
                size_t sam = layout & 1 ? 1 : K, sak = layout & 1 ? M : 1, ldb = layout & 2 ? K : N, far = 0;
                int bt = layout >> 1;
                memcpy(C0, Ci, M * N * sizeof(float));
                ds__matmul_bf16(NULL, own, C0, N, A, sam, sak, B, ldb, bt, M, N, K, acc);
                for (i = 0; i < M; i++)
                    for (j = 0; j < N; j++) {
                        double ref = acc ? Ci[i * N + j] : 0, scale = fabs(ref), f32 = ref;
                        for (k = 0; k < K; k++) {
                            float a = A[i * sam + k * sak], b = bt ? B[j * ldb + k] : B[k * ldb + j];
                            uint32_t ua = (uint32_t)ds__f32_to_bf16(a) << 16, ub = (uint32_t)ds__f32_to_bf16(b) << 16;
                            float ra, rb;
                            memcpy(&ra, &ua, 4), memcpy(&rb, &ub, 4);
                            ref += (double)ra * rb, scale += fabs((double)ra * rb), f32 += (double)a * b;
                        }
                        CHECKF(fabs(C0[i * N + j] - ref) <= 1e-5 * scale + 1e-30, "%zux%zux%zu layout %d acc %d: C[%zu][%zu] %.9g vs %.9g", M, N, K, layout,
                               acc, i, j, C0[i * N + j], ref);
                        far += fabs(C0[i * N + j] - f32) > 1e-5 * scale;
                    }
                CHECKF(K < 8 || far > 0, "%zux%zux%zu layout %d: no element differs from the fp32 product (were the operands rounded?)", M, N, K, layout);
                for (th = 1; th <= 3; th++) {
                    int small;
                    for (small = 0; small < 2; small++) {
                        ds_pool *pool = ds_pool_new(th, &e);
                        CHECKF(pool, "%s", e.msg);
                        if (small) pool->mm_mc = 32; /* several row blocks a thread */
                        memcpy(C1, Ci, M * N * sizeof(float));
                        ds__matmul_bf16(pool, NULL, C1, N, A, sam, sak, B, ldb, bt, M, N, K, acc);
                        ds_pool_free(pool);
                        CHECKF(memcmp(C0, C1, M * N * sizeof(float)) == 0, "%zux%zux%zu layout %d acc %d, %d threads%s: not the same bits", M, N, K,
                               layout, acc, th, small ? " (mc 32)" : "");
                    }
                }
            }
        free(A), free(B), free(C0), free(C1), free(Ci), free(own);
    }
#endif
}

/* The CPU's bf16 mode against its fp32 mode, on the training paths: the first loss within 1e-2,
   every gradient tensor's cosine similarity above 0.999 (the thresholds the CUDA path's bf16
   mode is held to), a 10-step AdamW trajectory within 0.05; the same bits for 1, 2 and 3
   threads; and back in fp32 the model computes the fp32 bits again. */
static void test_bf16_mode_against_fp32(void) {
#ifndef DS__BF16_DOT
    SKIP("this build has no AVX512_BF16 (-march=native on a CPU without it): bf16 is the CUDA build's");
#else
    ds_error e;
    ds_model *f = three_paths_model(1, &e), *b = three_paths_model(1, &e);
    ds_pool *pool = ds_pool_new(2, &e);
    ds_adamw opt = ds_adamw_default();
    int32_t in[4 * 24], tg[4 * 24];
    double lf, lb, lf0 = 0, lb0 = 0, worst = 1, gap = 0;
    size_t n, i;
    ds_float *gf, *gb;
    int s, k, th;
    CHECKF(f && b && pool, "%s", e.msg);
    for (k = 0; k < 4 * 24; k++) { in[k] = (int32_t)(t_rand() % 96); tg[k] = (int32_t)(t_rand() % 96); }
    CHECK_OK(ds_model_set_precision(b, DS_PRECISION_BF16, &e_));
    CHECK(ds_model_precision(b) == DS_PRECISION_BF16);
    n = ds_model_n_params(f);
    gf = (ds_float *)malloc(n * sizeof(ds_float)), gb = (ds_float *)malloc(n * sizeof(ds_float));
    CHECK(gf && gb);
    for (s = 0; s < 10; s++) {
        ds_model_zero_grad(f), ds_model_zero_grad(b);
        CHECK_OK(ds_model_forward(f, in, tg, NULL, 4, 24, pool, &lf, &e_));
        CHECK_OK(ds_model_forward(b, in, tg, NULL, 4, 24, pool, &lb, &e_));
        CHECK_OK(ds_model_backward(f, 1.0f, pool, &e_));
        CHECK_OK(ds_model_backward(b, 1.0f, pool, &e_));
        if (s == 0) {
            CHECKF(fabs(lb - lf) < 1e-2 && lb != lf, "first loss: bf16 %.9g, fp32 %.9g", lb, lf);
            lb0 = lb, lf0 = lf;
            CHECK_OK(ds_model_get(f, DS_GRADS, 0, n, gf, &e_));
            CHECK_OK(ds_model_get(b, DS_GRADS, 0, n, gb, &e_));
            for (k = 0; k < ds_model_n_tensors(f); k++) {
                const ds_tensor *t = ds_model_tensor(f, k);
                double dot = 0, nf = 0, nb = 0, cs;
                for (i = t->offset; i < t->offset + t->numel; i++) dot += (double)gf[i] * gb[i], nf += (double)gf[i] * gf[i], nb += (double)gb[i] * gb[i];
                cs = nf > 0 && nb > 0 ? dot / sqrt(nf * nb) : 1;
                CHECKF(cs > 0.999, "%s: gradient cosine %.6f", t->name, cs);
                if (cs < worst) worst = cs;
            }
        }
        if (fabs(lb - lf) > gap) gap = fabs(lb - lf);
        CHECK_OK(ds_model_step(f, &opt, 3e-3, NULL, pool, &e_));
        CHECK_OK(ds_model_step(b, &opt, 3e-3, NULL, pool, &e_));
    }
    CHECKF(gap < 0.05, "10-step trajectory: bf16 and fp32 losses %.4g apart", gap);
    if (getenv("DS_TEST_VERBOSE")) printf("  bf16: first loss %.6f vs %.6f, worst gradient cosine %.6f, 10-step gap %.3g\n", lb0, lf0, worst, gap);
    ds_model_free(f), ds_model_free(b), ds_pool_free(pool);
    free(gf), free(gb);
    /* thread counts: three_paths (pretraining, SFT weights, backward_tokens, decoding) in bf16 */
    {
        ds_model *ref = NULL;
        double ref_loss[4];
        uint64_t ref_dec = 0;
        for (th = 1; th <= 3; th++) {
            ds_pool *p = ds_pool_new(th, &e);
            ds_model *m = three_paths_model(1, &e);
            double loss[4];
            uint64_t dec;
            CHECKF(p && m, "%s", e.msg);
            CHECK_OK(ds_model_set_precision(m, DS_PRECISION_BF16, &e_));
            CHECKF(three_paths(m, p, in, tg, loss, &dec, &e), "%d threads: %s", th, e.msg);
            ds_pool_free(p);
            if (th == 1) { ref = m, memcpy(ref_loss, loss, sizeof loss), ref_dec = dec; continue; }
            CHECKF(memcmp(loss, ref_loss, sizeof loss) == 0, "%d threads: bf16 losses differ", th);
            CHECKF(t_same(m, ref, DS_GRADS) && t_same(m, ref, DS_PARAMS) && dec == ref_dec, "%d threads: bf16 gradients, weights or decoding differ", th);
            ds_model_free(m);
        }
        ds_model_free(ref);
    }
    /* back to fp32: a forward is needed again, then it is the fp32 model's bits */
    {
        ds_model *x = three_paths_model(1, &e), *y = three_paths_model(1, &e);
        double lx, ly;
        CHECKF(x && y, "%s", e.msg);
        CHECK_OK(ds_model_forward(x, in, tg, NULL, 4, 24, NULL, &lx, &e_));
        CHECK_OK(ds_model_set_precision(x, DS_PRECISION_BF16, &e_));
        CHECK(ds_model_backward(x, 1.0f, NULL, &e) == DS_ERR_INVALID); /* the saved forward was dropped */
        CHECK_OK(ds_model_forward(x, in, tg, NULL, 4, 24, NULL, &lx, &e_));
        CHECK_OK(ds_model_set_precision(x, DS_PRECISION_FP32, &e_));
        CHECK_OK(ds_model_forward(x, in, tg, NULL, 4, 24, NULL, &lx, &e_));
        CHECK_OK(ds_model_forward(y, in, tg, NULL, 4, 24, NULL, &ly, &e_));
        CHECK(memcmp(&lx, &ly, sizeof lx) == 0);
        ds_model_free(x), ds_model_free(y);
    }
#endif
}

/* The portable paths: a model whose every host access goes through the backend's copies (as a
   device backend's must) computes exactly what the direct CPU model does. */
static void test_portable_copies_same_numbers(void) {
    ds_model *a = three_paths_model(1, &e_global), *b = three_paths_model(0, &e_global);
    double la[4], lb[4];
    uint64_t da, db;
    int32_t in[4 * 24], tg[4 * 24];
    int k;
    ds_float *row;
    CHECKF(a && b, "%s", e_global.msg);
    for (k = 0; k < 4 * 24; k++) { in[k] = (int32_t)((k * 37) % 96); tg[k] = (int32_t)((k * 53 + 1) % 96); }
    CHECK(three_paths(a, NULL, in, tg, la, &da, &e_global) && three_paths(b, NULL, in, tg, lb, &db, &e_global));
    CHECK(memcmp(la, lb, sizeof la) == 0 && da == db);
    CHECK(t_same(a, b, DS_PARAMS) && t_same(a, b, DS_GRADS) && t_same(a, b, DS_ADAM_M) && t_same(a, b, DS_ADAM_V));
    /* get/set: a tensor out and back, the logits rows, bad ranges refused */
    row = (ds_float *)malloc(ds_model_tensor(b, 2)->numel * sizeof(ds_float));
    CHECK(row);
    CHECK_OK(ds_model_get_tensor(b, 2, row, &e_));
    CHECK(memcmp(row, ds_model_params(a) + ds_model_tensor(a, 2)->offset, ds_model_tensor(a, 2)->numel * sizeof(ds_float)) == 0);
    row[0] += 1;
    CHECK_OK(ds_model_set_tensor(b, 2, row, &e_));
    CHECK(ds_model_params(b)[ds_model_tensor(b, 2)->offset] == row[0]);
    CHECK(ds_model_get(b, DS_PARAMS, ds_model_n_params(b) - 1, 2, row, &e_global) == DS_ERR_INVALID);
    CHECK(ds_model_get(b, 9, 0, 1, row, &e_global) == DS_ERR_INVALID);
    CHECK(ds_model_get_tensor(b, ds_model_n_tensors(b), row, &e_global) == DS_ERR_INVALID);
    CHECK_OK(ds_model_forward(b, in, tg, NULL, 2, 24, NULL, NULL, &e_));
    CHECK_OK(ds_model_copy_logits(b, 47, 1, row, &e_));
    CHECK(memcmp(row, ds_model_logits(b) + 47 * 96, 96 * sizeof(ds_float)) == 0);
    CHECK(ds_model_copy_logits(b, 47, 2, row, &e_global) == DS_ERR_INVALID); /* the last forward had 48 rows */
    free(row);
    ds_model_free(a);
    ds_model_free(b);
}

/* The chunked classifier (§2.4: the [B T, V] logits never held at once; the CUDA build's choice
   for a large vocabulary), 7 rows at a time here: on every training path the losses, gradients,
   parameters, moments and decoded logits are the bits of the whole-batch classifier; the logits
   of a forward with targets are not kept, and say so; a forward without targets needs them all. */
static void test_chunked_classifier_same_bits(void) {
    ds_config c;
    ds_model *a = three_paths_model(1, &e_global), *b;
    ds_pool *pool = ds_pool_new(2, &e_global);
    double la[4], lb[4];
    uint64_t da, db;
    int32_t in[4 * 24], tg[4 * 24];
    ds_float row[96];
    int k;
    CHECKF(a && pool, "%s", e_global.msg);
    ds_config_preset("test", &c, &e_global);
    c.vocab = 96, c.d_model = 48, c.n_heads = 6, c.n_kv_heads = 2, c.d_ff = ds_ffn_dim(48, 8), c.max_seq = 24, c.n_layers = 2;
    b = ds__model_new(&c, 4, 24, c.max_seq, DS__NEW_LOGIT_CHUNK, &e_global);
    CHECKF(b && ds_model_init(b, 7) == DS_OK, "%s", e_global.msg);
    for (k = 0; k < 4 * 24; k++) { in[k] = (int32_t)((k * 37) % 96); tg[k] = (int32_t)((k * 53 + 1) % 96); }
    CHECK(three_paths(a, pool, in, tg, la, &da, &e_global));
    CHECKF(three_paths(b, pool, in, tg, lb, &db, &e_global), "%s", e_global.msg);
    CHECK(memcmp(la, lb, sizeof la) == 0 && da == db);
    CHECK(t_same(a, b, DS_PARAMS) && t_same(a, b, DS_GRADS) && t_same(a, b, DS_ADAM_M) && t_same(a, b, DS_ADAM_V));
    CHECK_OK(ds_model_forward(b, in, tg, NULL, 4, 24, pool, NULL, &e_));
    CHECK(ds_model_logits(b) == NULL && ds_model_copy_logits(b, 0, 1, row, &e_global) == DS_ERR_INVALID);
    CHECKF(strstr(e_global.msg, "chunks of 7 rows") != NULL, "%s", e_global.msg);
    CHECK(ds_model_forward(b, in, NULL, NULL, 4, 24, pool, NULL, &e_global) == DS_ERR_INVALID); /* 96 rows, 7 held */
    CHECK_OK(ds_model_forward(b, in, NULL, NULL, 1, 7, pool, NULL, &e_));                        /* 7 rows: kept */
    CHECK_OK(ds_model_copy_logits(b, 6, 1, row, &e_));
    CHECK_OK(ds_model_forward(a, in, NULL, NULL, 1, 7, pool, NULL, &e_));
    CHECK(memcmp(row, ds_model_logits(a) + 6 * 96, sizeof row) == 0);
#ifndef DS__BF16_DOT
    /* bf16 is the CUDA build's mode, or a CPU's with AVX512_BF16: this one says so and stays in fp32 */
    CHECK(ds_model_set_precision(a, DS_PRECISION_BF16, &e_global) == DS_ERR_UNSUPPORTED && ds_model_precision(a) == DS_PRECISION_FP32);
    CHECK(strstr(e_global.msg, "AVX512_BF16") != NULL);
#endif
    CHECK(ds_model_set_precision(a, 5, &e_global) == DS_ERR_INVALID);
    CHECK_OK(ds_model_set_precision(a, DS_PRECISION_FP32, &e_));
    ds_model_free(a), ds_model_free(b);
    ds_pool_free(pool);
}

/* A token of weight 0 gets exactly zero gradient: changing its target changes nothing. */
static void test_zero_weight_tokens_get_zero_gradient(void) {
    tiny_run r;
    ds_float *g1;
    size_t n;
    double l1, l2;
    int i;
    CHECK(tiny_setup(&r, 1));
    n = ds_model_n_params(r.m);
    for (i = 0; i < 32; i++) r.w[i] = (i % 3 == 0) ? 1.0f : 0.0f;
    ds_model_zero_grad(r.m);
    CHECK_OK(ds_model_forward(r.m, r.in, r.tg, r.w, 2, 16, NULL, &l1, &e_));
    CHECK_OK(ds_model_backward(r.m, 1.0f, NULL, &e_));
    CHECK((g1 = t_array(r.m, DS_GRADS)) != NULL);
    for (i = 0; i < 32; i++) if (r.w[i] == 0) r.tg[i] = (r.tg[i] + 17) % 64;
    ds_model_zero_grad(r.m);
    CHECK_OK(ds_model_forward(r.m, r.in, r.tg, r.w, 2, 16, NULL, &l2, &e_));
    CHECK_OK(ds_model_backward(r.m, 1.0f, NULL, &e_));
    CHECK(l1 == l2);
    {
        ds_float *g2 = t_array(r.m, DS_GRADS);
        CHECK(g2 && memcmp(g1, g2, n * sizeof(ds_float)) == 0);
        free(g2);
    }
    for (i = 0; i < 32; i++) r.w[i] = 0;
    ds_model_zero_grad(r.m);
    CHECK_OK(ds_model_forward(r.m, r.in, r.tg, r.w, 2, 16, NULL, &l2, &e_));
    CHECK_OK(ds_model_backward(r.m, 1.0f, NULL, &e_));
    CHECK(l2 == 0);
    free(g1);
    CHECK((g1 = t_array(r.m, DS_GRADS)) != NULL);
    for (i = 0; i < (int)n; i++) CHECK(g1[i] == 0);
    free(g1);
    ds_model_free(r.m);
}

/* Gradient accumulation: two half-batches with grad_scale 1/2 equal one batch (to rounding). */
static void test_gradient_accumulation(void) {
    tiny_run r;
    ds_float *g1;
    size_t n, i;
    double num = 0, den = 0;
    CHECK(tiny_setup(&r, 2));
    n = ds_model_n_params(r.m);
    ds_model_zero_grad(r.m);
    CHECK_OK(ds_model_forward(r.m, r.in, r.tg, NULL, 2, 16, NULL, NULL, &e_));
    CHECK_OK(ds_model_backward(r.m, 1.0f, NULL, &e_));
    g1 = (ds_float *)malloc(n * sizeof(ds_float));
    memcpy(g1, ds_model_grads(r.m), n * sizeof(ds_float));
    ds_model_zero_grad(r.m);
    CHECK_OK(ds_model_forward(r.m, r.in, r.tg, NULL, 1, 16, NULL, NULL, &e_));
    CHECK_OK(ds_model_backward(r.m, 0.5f, NULL, &e_));
    CHECK_OK(ds_model_forward(r.m, r.in + 16, r.tg + 16, NULL, 1, 16, NULL, NULL, &e_));
    CHECK_OK(ds_model_backward(r.m, 0.5f, NULL, &e_));
    for (i = 0; i < n; i++) {
        double d = (double)ds_model_grads(r.m)[i] - (double)g1[i];
        num += d * d;
        den += (double)g1[i] * (double)g1[i];
    }
    CHECKF(sqrt(num / den) < 1e-5, "relative difference %g", sqrt(num / den));
    free(g1);
    ds_model_free(r.m);
}

static void test_bad_input_and_non_finite(void) {
    tiny_run r;
    ds_error e;
    double loss;
    ds_float keep, nan;
    size_t at;
    double gn;
    ds_adamw opt = ds_adamw_default();
    CHECK(tiny_setup(&r, 2));
    r.in[5] = 64; /* out of the vocabulary */
    CHECK(ds_model_forward(r.m, r.in, r.tg, NULL, 2, 16, NULL, &loss, &e) == DS_ERR_INVALID && strstr(e.msg, "input 5"));
    r.in[5] = 1;
    CHECK(ds_model_forward(r.m, r.in, r.tg, NULL, 3, 16, NULL, &loss, &e) == DS_ERR_INVALID);
    CHECK(ds_model_backward(r.m, 1.0f, NULL, &e) == DS_ERR_INVALID && strstr(e.msg, "targets")); /* no forward succeeded yet */
    ds_model_forward(r.m, r.in, NULL, NULL, 2, 16, NULL, NULL, &e);
    CHECK(ds_model_backward(r.m, 1.0f, NULL, &e) == DS_ERR_INVALID && strstr(e.msg, "targets"));
    CHECK_OK(ds_model_forward(r.m, r.in, r.tg, NULL, 2, 16, NULL, &loss, &e_));
    CHECK_OK(ds_model_backward(r.m, 1.0f, NULL, &e_));
    CHECK(ds_model_backward(r.m, 1.0f, NULL, &e) == DS_ERR_INVALID && strstr(e.msg, "already")); /* the logits hold their gradient now */
    /* NULL models: an error, not a crash */
    CHECK(ds_model_forward(NULL, r.in, r.tg, NULL, 2, 16, NULL, &loss, &e) == DS_ERR_INVALID);
    CHECK(ds_model_backward(NULL, 1.0f, NULL, &e) == DS_ERR_INVALID);
    CHECK(ds_model_backward_tokens(NULL, NULL, NULL, &e) == DS_ERR_INVALID);
    CHECK(ds_model_step(NULL, NULL, 1e-3, NULL, NULL, &e) == DS_ERR_INVALID);
    /* a NaN parameter: the loss is reported non-finite, and a step with NaN gradients is refused */
    at = ds_model_tensor(r.m, 2)->offset + 5; /* a q_proj weight: every token uses it */
    CHECK_OK(ds_model_get(r.m, DS_PARAMS, at, 1, &keep, &e_));
    nan = (ds_float)NAN;
    CHECK_OK(ds_model_set(r.m, DS_PARAMS, at, 1, &nan, &e_));
    CHECK(ds_model_forward(r.m, r.in, r.tg, NULL, 2, 16, NULL, &loss, &e) == DS_ERR_NUMERIC);
    ds_model_zero_grad(r.m);
    ds_model_backward(r.m, 1.0f, NULL, &e);
    CHECK_OK(ds_model_set(r.m, DS_PARAMS, at, 1, &keep, &e_));
    {
        size_t n = ds_model_n_params(r.m);
        ds_float *before = t_array(r.m, DS_PARAMS), *after;
        CHECK(ds_model_step(r.m, &opt, 1e-3, &gn, NULL, &e) == DS_ERR_NUMERIC && strstr(e.msg, "not applied"));
        after = t_array(r.m, DS_PARAMS);
        CHECK(before && after && memcmp(before, after, n * sizeof(ds_float)) == 0 && ds_model_steps_done(r.m) == 0);
        free(before), free(after);
    }
    ds_model_free(r.m);
}

static void test_tensor_names(void) {
    tiny_run r;
    CHECK(tiny_setup(&r, 2));
    CHECK_EQ_INT(ds_model_n_tensors(r.m), 3 + 9 * 2);
    CHECK(!strcmp(ds_model_tensor(r.m, 0)->name, "model.embed_tokens.weight"));
    CHECK(!strcmp(ds_model_tensor(r.m, 2)->name, "model.layers.0.self_attn.q_proj.weight"));
    CHECK(!strcmp(ds_model_tensor(r.m, 10)->name, "model.layers.1.input_layernorm.weight") && !ds_model_tensor(r.m, 10)->decay);
    CHECK(!strcmp(ds_model_tensor(r.m, 20)->name, "lm_head.weight") && ds_model_tensor(r.m, 20)->decay);
    CHECK(ds_model_tensor(r.m, 3)->rows == 2 * 8 && ds_model_tensor(r.m, 3)->cols == 32); /* k_proj: KV * hd x D */
    ds_model_free(r.m);
}


/* ---- the PyTorch fixture (tools/check_torch.py --fixture): weights, a batch, torch's loss and
   gradients for one config; deepseek.h must match them per tensor to 1e-5 ---------------------- */

static const ds_json *fx_tensor(const ds_json_doc *h, const char *name, size_t *begin, size_t *end) {
    const ds_json *t = ds_json_get(h->root, name), *o;
    int64_t b, e;
    if (!t || !(o = ds_json_get(t, "data_offsets")) || o->len != 2 || !ds_json_int(o->child, 0, INT64_MAX, &b) ||
        !ds_json_int(o->child->next, 0, INT64_MAX, &e))
        return NULL;
    *begin = (size_t)b, *end = (size_t)e;
    return t;
}

/* Opens a make check-torch fixture: the file (free it), its parsed header in *h, the tensor data
   in *data, its metadata in *meta, and a model built from the metadata's config with the fixture's
   weights loaded (B x T from the metadata). NULL with a message in err when anything is missing. */
static char *fx_open(const char *path, ds_json_doc **h, const char **data, const ds_json **meta, ds_model **m, int *B, int *T, ds_error *err) {
    size_t len, hl, b, e, i;
    char *f = t_read(path, &len);
    ds_config c;
    int k;
    *h = NULL, *m = NULL;
    if (!f) { snprintf(err->msg, sizeof err->msg, "%s not found", path); return NULL; }
    for (hl = 0, i = 0; i < 8; i++) hl |= (size_t)(unsigned char)f[i] << (8 * i);
    if (hl > len - 8 || !(*h = ds_json_parse(f + 8, hl, err))) { free(f); return NULL; }
    *data = f + 8 + hl;
    *meta = ds_json_get((*h)->root, "__metadata__");
    ds_config_preset("test", &c, err);
    c.vocab = atoi(ds_json_get(*meta, "vocab")->str), c.d_model = atoi(ds_json_get(*meta, "d_model")->str);
    c.n_layers = atoi(ds_json_get(*meta, "n_layers")->str), c.n_heads = atoi(ds_json_get(*meta, "n_heads")->str);
    c.n_kv_heads = atoi(ds_json_get(*meta, "n_kv_heads")->str), c.d_ff = atoi(ds_json_get(*meta, "d_ff")->str);
    *B = atoi(ds_json_get(*meta, "B")->str), *T = atoi(ds_json_get(*meta, "T")->str), c.max_seq = *T;
    if (!(*m = ds_model_new(&c, *B, *T, err))) { ds_json_free(*h), free(f); return NULL; }
    for (k = 0; k < ds_model_n_tensors(*m); k++) {
        const ds_tensor *t = ds_model_tensor(*m, k);
        if (!fx_tensor(*h, t->name, &b, &e) || e - b != t->numel * 4) {
            snprintf(err->msg, sizeof err->msg, "fixture lacks %s", t->name);
            ds_model_free(*m), ds_json_free(*h), free(f);
            return NULL;
        }
        ds_model_set_tensor(*m, k, (const ds_float *)(const void *)(*data + b), err);
    }
    return f;
}

/* A fixture opened by fx_open: FX_LOAD skips the test when the file is absent and fails it when
   the file is present but unreadable. */
typedef struct { char *file; ds_json_doc *h; const char *data; const ds_json *meta; ds_model *m; int B, T; ds_error err; } fx_t;
static int fx_load(fx_t *x, const char *path) {
    memset(x, 0, sizeof *x);
    x->file = fx_open(path, &x->h, &x->data, &x->meta, &x->m, &x->B, &x->T, &x->err);
    return x->file ? 1 : strstr(x->err.msg, "not found") ? 0 : -1;
}
static void fx_close(fx_t *x) { ds_model_free(x->m), ds_json_free(x->h), free(x->file); }
#define FX_LOAD(x, path) do { int r_ = fx_load(x, path); CHECKF(r_ >= 0, "%s", (x)->err.msg); if (!r_) SKIP("%s", (x)->err.msg); } while (0)

/* the fixture's batch: inputs and targets (I32) and token weights (F32), B*T each; 0 if one is missing */
static int fx_batch(const ds_json_doc *h, const char *data, int B, int T, const int32_t **in, const int32_t **tg, const float **w) {
    size_t b, e, n = (size_t)B * (size_t)T;
    if (!fx_tensor(h, "batch.inputs", &b, &e) || e - b != n * 4) return 0;
    *in = (const int32_t *)(const void *)(data + b);
    if (!fx_tensor(h, "batch.targets", &b, &e) || e - b != n * 4) return 0;
    *tg = (const int32_t *)(const void *)(data + b);
    if (!fx_tensor(h, "batch.weights", &b, &e) || e - b != n * 4) return 0;
    *w = (const float *)(const void *)(data + b);
    return 1;
}

/* per tensor ||grads - torch_grad.<name>|| / ||torch_grad.<name>||, the largest (-1: a tensor is missing) */
static double fx_grad_error(const ds_json_doc *h, const char *data, ds_model *m) {
    double worst = 0;
    size_t b, e, i;
    int k;
    ds_float *g = t_array(m, DS_GRADS);
    if (!g) return -1;
    for (k = 0; k < ds_model_n_tensors(m); k++) {
        const ds_tensor *t = ds_model_tensor(m, k);
        char name[96];
        const float *ref;
        double dd = 0, nn = 0;
        snprintf(name, sizeof name, "torch_grad.%s", t->name);
        if (!fx_tensor(h, name, &b, &e)) { free(g); return -1; }
        ref = (const float *)(const void *)(data + b);
        for (i = 0; i < t->numel; i++) {
            double d = (double)g[t->offset + i] - ref[i];
            dd += d * d;
            nn += (double)ref[i] * ref[i];
        }
        if (sqrt(dd / nn) > worst) worst = sqrt(dd / nn);
    }
    free(g);
    return worst;
}

static void test_pytorch_fixture(void) {
    double loss;
    double worst;
    fx_t x;
    FX_LOAD(&x, "tests/fixtures/torch_ref_f32.safetensors");
    {
        const int32_t *in, *tg;
        const float *w;
        CHECK(fx_batch(x.h, x.data, x.B, x.T, &in, &tg, &w));
        ds_model_zero_grad(x.m);
        CHECK_OK(ds_model_forward(x.m, in, tg, w, x.B, x.T, NULL, &loss, &e_));
        CHECK_OK(ds_model_backward(x.m, 1.0f, NULL, &e_));
    }
    CHECKF(fabs(loss - atof(ds_json_get(x.meta, "torch_loss")->str)) < 1e-5, "loss %.7f, PyTorch %s", loss, ds_json_get(x.meta, "torch_loss")->str);
    CHECK((worst = fx_grad_error(x.h, x.data, x.m)) >= 0);
    printf("  PyTorch %s fixture: max per-tensor relative gradient error %.1e\n", ds_json_get(x.meta, "torch_version")->str, worst);
    CHECK(worst < 1e-5);
    fx_close(&x);
}

/* AdamW against torch.optim.AdamW (tools/check_torch.py's AdamW fixture): from the same weights,
   the same steps -- clipped and unclipped gradients, warm-up learning rates, decay on matrices
   only -- must end where PyTorch ended, per tensor ||dp - dp_torch|| / ||dp_torch|| <= 1e-5. */
static void test_adamw_pytorch_fixture(void) {
    size_t b, e, i;
    int s, k, steps, clipped = 0;
    double worst = 0;
    ds_adamw opt = ds_adamw_default();
    ds_float *p0, *p1;
    const int32_t *in, *tg;
    const float *w;
    fx_t x;
    FX_LOAD(&x, "tests/fixtures/torch_adamw_f32.safetensors");
    CHECK(fx_batch(x.h, x.data, x.B, x.T, &in, &tg, &w));
    steps = atoi(ds_json_get(x.meta, "steps")->str);
    CHECK(steps >= 1 && (p0 = t_array(x.m, DS_PARAMS)));
    for (s = 0; s < steps; s++) {
        char key[32];
        double lr, scale, gn;
        snprintf(key, sizeof key, "lr%d", s);
        lr = atof(ds_json_get(x.meta, key)->str);
        snprintf(key, sizeof key, "scale%d", s);
        scale = atof(ds_json_get(x.meta, key)->str);
        ds_model_zero_grad(x.m);
        CHECK_OK(ds_model_forward(x.m, in, tg, w, x.B, x.T, NULL, NULL, &e_));
        CHECK_OK(ds_model_backward(x.m, (float)scale, NULL, &e_));
        CHECK_OK(ds_model_step(x.m, &opt, lr, &gn, NULL, &e_));
        clipped += gn > opt.grad_clip;
    }
    CHECK((p1 = t_array(x.m, DS_PARAMS)));
    for (k = 0; k < ds_model_n_tensors(x.m); k++) {
        const ds_tensor *t = ds_model_tensor(x.m, k);
        char name[96];
        const float *ref;
        double dd = 0, nn = 0;
        snprintf(name, sizeof name, "torch_final.%s", t->name);
        CHECKF(fx_tensor(x.h, name, &b, &e), "fixture lacks %s", name);
        ref = (const float *)(const void *)(x.data + b);
        for (i = 0; i < t->numel; i++) {
            double upd = (double)p1[t->offset + i] - p0[t->offset + i], ut = (double)ref[i] - p0[t->offset + i];
            dd += (upd - ut) * (upd - ut);
            nn += ut * ut;
        }
        if (sqrt(dd / nn) > worst) worst = sqrt(dd / nn);
    }
    printf("  PyTorch %s AdamW fixture: %d steps (%d clipped), max per-tensor update error %.1e\n", ds_json_get(x.meta, "torch_version")->str, steps,
           clipped, worst);
    CHECK(clipped > 0 && clipped < steps && worst < 1e-5);
    free(p0), free(p1);
    fx_close(&x);
}

/* The manual's table of contents lists every banner's first line, in file order, so that
   searching a TOC line lands on its section: a banner added or renamed without the TOC fails. */
static void test_manual_toc_matches_banners(void) {
    size_t len, i, n_ban = 0, n_toc = 0;
    char *h = t_read("deepseek.h", &len), *p, *toc, *toc_end;
    static char ban[64][160];
    if (!h) SKIP("deepseek.h not found from the working directory");
    toc = strstr(h, "   TABLE OF CONTENTS");
    toc_end = toc ? strstr(toc, "   COMPILE-TIME OPTIONS") : NULL;
    CHECK(toc && toc_end);
    for (p = toc_end; (p = strstr(p, "\n/* ====")) && n_ban < 64; p++) { /* every banner's second line, trimmed */
        char *l = strchr(p + 1, '\n'), *e;
        if (!l) break;
        for (l++; *l == ' '; l++) {}
        e = strchr(l, '\n');
        if (!e || (size_t)(e - l) >= sizeof ban[0]) break;
        memcpy(ban[n_ban], l, (size_t)(e - l)), ban[n_ban][e - l] = 0, n_ban++;
    }
    CHECK(n_ban > 20);
    for (i = 0, p = toc; i < n_ban; i++) { /* each banner appears in the TOC, after the previous one, on a line of its own */
        char line[240];
        char *q;
        snprintf(line, sizeof line, "        %.160s\n", ban[i]);
        q = strstr(p, line);
        CHECKF(q && q < toc_end, "the TOC lacks the banner \"%s\" (or lists it out of order)", ban[i]);
        p = q + strlen(line), n_toc++;
    }
    CHECK(n_toc == n_ban);
    free(h);
}

static void suite_model(void) {
    RUN(test_manual_toc_matches_banners);
    RUN(test_config_presets_and_validation);
    RUN(test_schedule_boundaries);
    RUN(test_tensor_names);
    RUN(test_initial_loss_is_log_vocab);
    RUN(test_training_reduces_loss);
    RUN(test_threads_bit_identical);
    RUN(test_matmul_paths_bit_identical);
    RUN(test_bf16_products);
    RUN(test_bf16_mode_against_fp32);
    RUN(test_portable_copies_same_numbers);
    RUN(test_chunked_classifier_same_bits);
    RUN(test_zero_weight_tokens_get_zero_gradient);
    RUN(test_gradient_accumulation);
    RUN(test_bad_input_and_non_finite);
    RUN(test_pytorch_fixture);
    RUN(test_adamw_pytorch_fixture);
}
