/* test_checkpoint.c - §2.4 checkpoints: HF-format directory, exact resume, bad files, a full
   disk and a crash mid-save never damage the last good checkpoint. */
#include <signal.h>
#include <sys/resource.h>

static ds_model *ck_model(int seed) {
    ds_config c;
    ds_error e;
    ds_model *m;
    ds_config_preset("test", &c, &e);
    c.n_kv_heads = 2;
    m = ds_model_new(&c, 2, 16, &e);
    if (m) ds_model_init(m, (uint64_t)seed);
    return m;
}
static void ck_batch(int32_t *in, int32_t *tg, int step) {
    int i;
    for (i = 0; i < 32; i++) { in[i] = (int32_t)((i * 7 + step * 13) % 64); tg[i] = (int32_t)((i * 11 + step * 5 + 3) % 64); }
}
static int ck_steps(ds_model *m, int from, int to, double *losses, ds_error *e) {
    ds_adamw opt = ds_adamw_default();
    int s;
    for (s = from; s < to; s++) {
        int32_t in[32], tg[32];
        ck_batch(in, tg, s);
        ds_model_zero_grad(m);
        if (ds_model_forward(m, in, tg, NULL, 2, 16, NULL, &losses[s], e) || ds_model_backward(m, 1.0f, NULL, e) ||
            ds_model_step(m, &opt, 3e-3, NULL, NULL, e))
            return 0;
    }
    return 1;
}

static void test_checkpoint_roundtrip(void) {
    ds_model *m = ck_model(3), *u;
    ds_tokenizer *tok = ds_tokenizer_from_merges(NULL, 0, NULL);
    ds_error e;
    char *cfg;
    size_t len;
    CHECK(m && tok);
    CHECKF(ds_checkpoint_save(m, tok, NULL, tp("ckpt_rt"), DS_DTYPE_F32, &e) == 0, "%s", e.msg);
    u = ds_checkpoint_load(tp("ckpt_rt"), 2, 16, NULL, &e);
    CHECKF(u, "%s", e.msg);
    CHECK(ds_model_n_params(u) == ds_model_n_params(m));
    CHECK(t_same(u, m, DS_PARAMS));
    { /* field by field: ds_config has padding before rope_theta, which memcmp would read */
        const ds_config *a = ds_model_config(u), *b = ds_model_config(m);
        CHECK(a->vocab == b->vocab && a->d_model == b->d_model && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
              a->n_kv_heads == b->n_kv_heads && a->d_ff == b->d_ff && a->max_seq == b->max_seq && a->rope_theta == b->rope_theta &&
              a->norm_eps == b->norm_eps && a->init_std == b->init_std);
    }
    cfg = t_read(tp("ckpt_rt/config.json"), &len);
    CHECK(cfg && strstr(cfg, "\"LlamaForCausalLM\"") && strstr(cfg, "\"tie_word_embeddings\": false") && strstr(cfg, "\"bos_token_id\": 256"));
    free(cfg);
    ds_tokenizer_free(tok);
    tok = ds_tokenizer_load(tp("ckpt_rt/tokenizer.json"), &e);
    CHECKF(tok, "%s", e.msg);
    ds_tokenizer_free(tok);
    ds_model_free(u);
    ds_model_free(m);
}

/* N steps, save, load, M more == N + M uninterrupted, bit for bit */
static void test_checkpoint_resume_exact(void) {
    ds_model *a = ck_model(5), *b = ck_model(5), *c;
    double la[8], lb[8];
    ds_train_state st, st2;
    ds_error e;
    int s;
    CHECK(a && b);
    CHECKF(ck_steps(a, 0, 8, la, &e), "%s", e.msg);
    CHECKF(ck_steps(b, 0, 4, lb, &e), "%s", e.msg);
    st.step = 4, st.tokens_seen = 4 * 32, st.data_pos = 12345, st.rng = 0xDEADBEEFCAFEull;
    CHECKF(ds_checkpoint_save(b, NULL, &st, tp("ckpt_resume"), DS_DTYPE_F32, &e) == 0, "%s", e.msg);
    ds_model_free(b);
    memset(&st2, 0, sizeof st2);
    c = ds_checkpoint_load(tp("ckpt_resume"), 2, 16, &st2, &e);
    CHECKF(c, "%s", e.msg);
    CHECK(st2.step == 4 && st2.tokens_seen == 128 && st2.data_pos == 12345 && st2.rng == 0xDEADBEEFCAFEull && ds_model_steps_done(c) == 4);
    CHECKF(ck_steps(c, 4, 8, lb, &e), "%s", e.msg);
    for (s = 4; s < 8; s++) CHECKF(memcmp(&la[s], &lb[s], sizeof(double)) == 0, "step %d: %.9g uninterrupted, %.9g resumed", s, la[s], lb[s]);
    CHECK(t_same(a, c, DS_PARAMS));
    ds_model_free(a);
    ds_model_free(c);
}

static void test_checkpoint_bf16(void) {
    ds_model *m = ck_model(9), *u;
    ds_error e;
    size_t i, n;
    CHECK(m);
    CHECKF(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_bf16"), DS_DTYPE_BF16, &e) == 0, "%s", e.msg);
    u = ds_checkpoint_load(tp("ckpt_bf16"), 2, 16, NULL, &e);
    CHECKF(u, "%s", e.msg);
    n = ds_model_n_params(m);
    {
        ds_float *pm = t_array(m, DS_PARAMS), *pu = t_array(u, DS_PARAMS);
        CHECK(pm && pu);
        for (i = 0; i < n; i++) {
            double a = pm[i], b = pu[i];
            CHECKF(fabs(a - b) <= fabs(a) / 256.0, "param %zu: %g -> %g", i, a, b);
        }
        free(pm), free(pu);
    }
    ds_model_free(u);
    ds_model_free(m);
}

/* rewrite one file of a checkpoint directory */
static void ck_put(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(data, 1, len, f); fclose(f); }
}

static void test_checkpoint_bad_files(void) {
    ds_model *m = ck_model(4), *u;
    ds_error e;
    ds_train_state st;
    char *good, *cfg;
    size_t len, cfg_len, cut;
    CHECK(m);
    memset(&st, 0, sizeof st);
    CHECK(ds_checkpoint_save(m, NULL, &st, tp("ckpt_bad"), DS_DTYPE_F32, &e) == 0);
    good = t_read(tp("ckpt_bad/model.safetensors"), &len);
    cfg = t_read(tp("ckpt_bad/config.json"), &cfg_len);
    CHECK(good && cfg);
    for (cut = 0; cut < len; cut += 1 + cut / 3) { /* every truncation is refused */
        ck_put(tp("ckpt_bad/model.safetensors"), good, cut);
        memset(&e, 0, sizeof e);
        u = ds_checkpoint_load(tp("ckpt_bad"), 2, 16, NULL, &e);
        CHECKF(!u && e.code == DS_ERR_FORMAT && e.msg[0], "truncated at %zu: accepted (%s)", cut, e.msg);
    }
    { /* a header length beyond the file */
        char *bad = (char *)malloc(len);
        memcpy(bad, good, len);
        bad[5] = 0x7F;
        ck_put(tp("ckpt_bad/model.safetensors"), bad, len);
        u = ds_checkpoint_load(tp("ckpt_bad"), 2, 16, NULL, &e);
        CHECK(!u && strstr(e.msg, "header length"));
        /* a tensor's offsets moved: overlap */
        memcpy(bad, good, len);
        { char *at = strstr(bad + 8, "\"data_offsets\":[0,"); CHECK(at); at[16] = '4'; }
        ck_put(tp("ckpt_bad/model.safetensors"), bad, len);
        u = ds_checkpoint_load(tp("ckpt_bad"), 2, 16, NULL, &e);
        CHECK(!u && e.code == DS_ERR_FORMAT);
        free(bad);
    }
    ck_put(tp("ckpt_bad/model.safetensors"), good, len);
    { /* config.json that does not match the weights */
        char *c2 = (char *)malloc(cfg_len + 1), *at;
        memcpy(c2, cfg, cfg_len + 1);
        at = strstr(c2, "\"intermediate_size\": ");
        CHECK(at);
        at[21] = '9'; /* 88 -> 98 */
        ck_put(tp("ckpt_bad/config.json"), c2, cfg_len);
        u = ds_checkpoint_load(tp("ckpt_bad"), 2, 16, NULL, &e);
        CHECKF(!u && strstr(e.msg, "gate_proj") && strstr(e.msg, "shape"), "%s", e.msg);
        ck_put(tp("ckpt_bad/config.json"), "{\"vocab_size\": 64, \"hidden_size\": \"32\"}", 39);
        u = ds_checkpoint_load(tp("ckpt_bad"), 2, 16, NULL, &e);
        CHECK(!u && strstr(e.msg, "hidden_size"));
        ck_put(tp("ckpt_bad/config.json"), "{\"hidden_act\": \"gelu\"", 22);
        u = ds_checkpoint_load(tp("ckpt_bad"), 2, 16, NULL, &e);
        CHECK(!u && strstr(e.msg, "config.json"));
        free(c2);
    }
    ck_put(tp("ckpt_bad/config.json"), cfg, cfg_len);
    u = ds_checkpoint_load(tp("ckpt_bad"), 2, 16, &st, &e);
    CHECKF(u, "%s", e.msg);
    ds_model_free(u);
    ck_put(tp("ckpt_bad/trainer_state.safetensors"), "12345678", 8);
    u = ds_checkpoint_load(tp("ckpt_bad"), 2, 16, &st, &e);
    CHECK(!u && strstr(e.msg, "trainer_state"));
    u = ds_checkpoint_load(tp("no-such-checkpoint"), 2, 16, NULL, &e);
    CHECK(!u && e.code == DS_ERR_IO);
    free(good);
    free(cfg);
    ds_model_free(m);
}

/* A save that runs out of disk fails cleanly and the last good checkpoint survives. The "full
   disk" is RLIMIT_FSIZE: writes past the limit fail (EFBIG), as they would with ENOSPC. */
static void test_checkpoint_full_disk_keeps_last_good(void) {
    ds_model *m = ck_model(6), *u;
    ds_error e;
    struct rlimit old, lim;
    int rc;
    ds_float *good;
    CHECK(m);
    CHECK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_full"), DS_DTYPE_F32, &e) == 0);
    CHECK((good = t_array(m, DS_PARAMS)) != NULL);
    {   /* the next save would differ */
        ds_float p0 = good[0] + 1;
        CHECK_OK(ds_model_set(m, DS_PARAMS, 0, 1, &p0, &e_));
    }
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    setrlimit(RLIMIT_FSIZE, &lim);
    rc = ds_checkpoint_save(m, NULL, NULL, tp("ckpt_full"), DS_DTYPE_F32, &e);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECKF(rc == DS_ERR_IO && strstr(e.msg, "unchanged"), "rc %d: %s", rc, e.msg);
    u = ds_checkpoint_load(tp("ckpt_full"), 2, 16, NULL, &e);
    CHECKF(u, "%s", e.msg);
    {
        ds_float *pu = t_array(u, DS_PARAMS);
        CHECK(pu && memcmp(pu, good, ds_model_n_params(m) * sizeof(ds_float)) == 0);
        free(pu);
    }
    free(good);
    ds_model_free(u);
    ds_model_free(m);
}

/* A crash between save's two renames leaves "<dir>.old" and no "<dir>": load falls back. */
static void test_checkpoint_crash_between_renames(void) {
    ds_model *m = ck_model(8), *u;
    ds_error e;
    CHECK(m);
    CHECK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_crash"), DS_DTYPE_F32, &e) == 0);
    ds__ckpt_remove(tp("ckpt_crash.old"));
    CHECK(rename(tp("ckpt_crash"), tp("ckpt_crash.old")) == 0);
    u = ds_checkpoint_load(tp("ckpt_crash"), 2, 16, NULL, &e);
    CHECKF(u, "%s", e.msg);
    CHECK(t_same(u, m, DS_PARAMS));
    CHECK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_crash"), DS_DTYPE_F32, &e) == 0); /* and saving again cleans up */
    ds_model_free(u);
    ds_model_free(m);
}

/* Loading for longer sequences than the checkpoint's max_seq extends RoPE for the run but keeps
   the config: the next save writes the same max_position_embeddings. */
static void test_checkpoint_longer_sequences_keep_config(void) {
    ds_model *m = ck_model(5), *u;
    ds_error e;
    int32_t in[64], tg[64];
    char *cfg;
    size_t len;
    int i;
    CHECK(m);
    CHECK_OK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_long"), DS_DTYPE_F32, &e_));
    u = ds_checkpoint_load(tp("ckpt_long"), 2, 32, NULL, &e); /* T = 32 > max_seq 16 */
    CHECKF(u, "%s", e.msg);
    CHECK(ds_model_config(u)->max_seq == 16);
    for (i = 0; i < 64; i++) in[i] = (int32_t)(i % 64), tg[i] = (int32_t)((i * 5 + 1) % 64);
    CHECK_OK(ds_model_forward(u, in, tg, NULL, 2, 32, NULL, NULL, &e_));
    CHECK_OK(ds_checkpoint_save(u, NULL, NULL, tp("ckpt_long2"), DS_DTYPE_F32, &e_));
    cfg = t_read(tp("ckpt_long2/config.json"), &len);
    CHECK(cfg && strstr(cfg, "\"max_position_embeddings\": 16,"));
    free(cfg);
    ds_model_free(u);
    ds_model_free(m);
}

static void suite_checkpoint(void) {
    RUN(test_checkpoint_longer_sequences_keep_config);
    RUN(test_checkpoint_roundtrip);
    RUN(test_checkpoint_resume_exact);
    RUN(test_checkpoint_bf16);
    RUN(test_checkpoint_bad_files);
    RUN(test_checkpoint_full_disk_keeps_last_good);
    RUN(test_checkpoint_crash_between_renames);
}
