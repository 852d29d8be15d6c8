/* test_checkpoint.c - §2.4 checkpoints: HF-format directory, exact resume, bad files, a full
   disk and a crash mid-save never damage the last good checkpoint. */
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <fcntl.h>
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
        u = ds_checkpoint_load(tp("ckpt_bad"), 2, 16, NULL, &e); /* our checkpoint records config.json's checksum */
        CHECKF(!u && strstr(e.msg, "config.json does not match"), "%s", e.msg);
        { /* without that record (a Hugging Face checkpoint), the sizes are checked before anything is allocated */
            char *g2 = (char *)malloc(len), *k;
            memcpy(g2, good, len);
            CHECK((k = strstr(g2 + 8, "\"config_checksum\"")) != NULL);
            k[15] = 'X'; /* the key renamed, same length */
            ck_put(tp("ckpt_bad/model.safetensors"), g2, len);
            u = ds_checkpoint_load(tp("ckpt_bad"), 2, 16, NULL, &e);
            CHECKF(!u && strstr(e.msg, "config.json implies"), "%s", e.msg);
            ck_put(tp("ckpt_bad/model.safetensors"), good, len);
            free(g2);
        }
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

/* No sequence of two crashes loses the last checkpoint. A good checkpoint A; a save of B killed
   before each of its steps; a load (the resumed run); the resumed run's save of C killed before
   each of its steps; a load. Every load must find a complete checkpoint (A, B or C), and a last,
   uninterrupted save must clean up and load. */
static int ck_which(ds_model *u, ds_model *const *cand, int n) {
    int i;
    for (i = 0; i < n; i++) if (t_same(u, cand[i], DS_PARAMS)) return i;
    return -1;
}
static void test_checkpoint_two_crashes_never_lose_it(void) {
    ds_model *mod[4];
    ds_train_state st;
    ds_error e;
    int k, j, points = 0, lost = 0, steps1 = 0, steps2 = 0, i;
    const char *dir = tp("ckpt_crash2");
    for (i = 0; i < 4; i++) CHECK((mod[i] = ck_model(20 + i)) != NULL);
    memset(&st, 0, sizeof st);
    for (k = 0;; k++) {
        int done1;
        ds__ckpt_remove(dir), ds__ckpt_remove(tp("ckpt_crash2.old")), ds__ckpt_remove(tp("ckpt_crash2.tmp"));
        CHECK_OK(ds_checkpoint_save(mod[0], NULL, &st, dir, DS_DTYPE_F32, &e_));
        done1 = ds__checkpoint_save(mod[1], NULL, &st, dir, DS_DTYPE_F32, k, &e) == DS_OK;
        for (j = 0;; j++) {
            ds_model *u;
            int done2;
            if (j > 0) { /* start the second crash from the same first crash */
                ds__ckpt_remove(dir), ds__ckpt_remove(tp("ckpt_crash2.old")), ds__ckpt_remove(tp("ckpt_crash2.tmp"));
                CHECK_OK(ds_checkpoint_save(mod[0], NULL, &st, dir, DS_DTYPE_F32, &e_));
                ds__checkpoint_save(mod[1], NULL, &st, dir, DS_DTYPE_F32, k, &e);
            }
            u = ds_checkpoint_load(dir, 2, 16, &st, &e);
            if (!u || ck_which(u, mod, 2) < 0) lost++;
            ds_model_free(u);
            done2 = ds__checkpoint_save(mod[2], NULL, &st, dir, DS_DTYPE_F32, j, &e) == DS_OK;
            u = ds_checkpoint_load(dir, 2, 16, &st, &e);
            if (!u || ck_which(u, mod, 3) < 0) lost++;
            ds_model_free(u);
            points++;
            if (done2) { steps2 = j > steps2 ? j : steps2; break; }
        }
        /* whatever the crashes left, an uninterrupted save cleans up and loads */
        CHECK_OK(ds_checkpoint_save(mod[3], NULL, &st, dir, DS_DTYPE_F32, &e_));
        {
            ds_model *u = ds_checkpoint_load(dir, 2, 16, &st, &e);
            CHECK(u && ck_which(u, mod, 4) == 3);
            ds_model_free(u);
        }
        if (done1) { steps1 = k; break; }
    }
    printf("  %d crash points over two saves (%d and %d steps), %d lost checkpoints\n", points, steps1, steps2, lost);
    CHECK(lost == 0 && steps1 >= 6 && points >= steps1 * steps2 / 2);
    for (i = 0; i < 4; i++) ds_model_free(mod[i]);
}

/* NaN never reaches a checkpoint: a non-finite parameter (or moment) refuses the save and names
   the tensor, and the last checkpoint stays as it was; a checkpoint holding one is refused */
static void test_checkpoint_refuses_non_finite(void) {
    ds_model *m = ck_model(31), *u;
    ds_train_state st;
    ds_error e;
    ds_float nan = (ds_float)NAN, neg = -1, keep;
    size_t at;
    char *f;
    size_t len;
    CHECK(m);
    memset(&st, 0, sizeof st);
    CHECK_OK(ds_checkpoint_save(m, NULL, &st, tp("ckpt_nan"), DS_DTYPE_F32, &e_));
    at = ds_model_tensor(m, 0)->offset + 5 * 32 + 3; /* a rare token's embedding row */
    CHECK_OK(ds_model_get(m, DS_PARAMS, at, 1, &keep, &e_));
    CHECK_OK(ds_model_set(m, DS_PARAMS, at, 1, &nan, &e_));
    CHECK(ds_checkpoint_save(m, NULL, &st, tp("ckpt_nan"), DS_DTYPE_F32, &e) == DS_ERR_NUMERIC && strstr(e.msg, "embed_tokens"));
    CHECK_OK(ds_model_set(m, DS_PARAMS, at, 1, &keep, &e_));
    CHECK_OK(ds_model_set(m, DS_ADAM_V, 7, 1, &neg, &e_));
    CHECK(ds_checkpoint_save(m, NULL, &st, tp("ckpt_nan"), DS_DTYPE_F32, &e) == DS_ERR_NUMERIC && strstr(e.msg, "exp_avg_sq"));
    CHECK_OK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_nan2"), DS_DTYPE_F32, &e_)); /* weights only: the moments are not saved */
    u = ds_checkpoint_load(tp("ckpt_nan"), 2, 16, &st, &e); /* the last good one is intact */
    CHECKF(u, "%s", e.msg);
    ds_model_free(u);
    /* a NaN written into the file with a matching checksum (as a buggy writer would): refused on load */
    CHECK((f = t_read(tp("ckpt_nan/model.safetensors"), &len)) != NULL);
    {
        size_t hl = 0, i;
        char hex[17], *cs;
        float fn = NAN;
        for (i = 0; i < 8; i++) hl |= (size_t)(unsigned char)f[i] << (8 * i);
        memcpy(f + 8 + hl + 4 * at, &fn, 4);
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)ds__checksum8(f + 8 + hl, len - 8 - hl));
        CHECK((cs = strstr(f + 8, "\"data_checksum_x8\":\"")) != NULL);
        memcpy(cs + 20, hex, 16);
        ck_put(tp("ckpt_nan/model.safetensors"), f, len);
    }
    u = ds_checkpoint_load(tp("ckpt_nan"), 2, 16, NULL, &e);
    CHECKF(!u && e.code == DS_ERR_NUMERIC && strstr(e.msg, "embed_tokens"), "%s", e.msg);
    free(f);
    ds_model_free(m);
}

/* files written before v0.6 record the one-lane "data_checksum": still verified, corruption still
   caught (the file is rewritten here as an old writer would have: same bytes, the older key) */
static void test_checkpoint_old_checksum_still_verified(void) {
    ds_model *m = ck_model(33), *u;
    ds_error e;
    char *f, *cs, hex[17];
    size_t len, hl = 0, i;
    CHECK(m);
    CHECK_OK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_v1"), DS_DTYPE_F32, &e_));
    CHECK((f = t_read(tp("ckpt_v1/model.safetensors"), &len)) != NULL);
    for (i = 0; i < 8; i++) hl |= (size_t)(unsigned char)f[i] << (8 * i);
    CHECK((cs = strstr(f + 8, "\"data_checksum_x8\":\"")) != NULL);
    /* "data_checksum_x8":"<16 hex>" -> "data_checksum":"<16 hex>"   (3 spaces: the header keeps its length) */
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)ds__checksum(f + 8 + hl, len - 8 - hl));
    memcpy(cs, "\"data_checksum\":\"", 17);
    memcpy(cs + 17, hex, 16);
    memcpy(cs + 33, "\"   ", 4);
    ck_put(tp("ckpt_v1/model.safetensors"), f, len);
    u = ds_checkpoint_load(tp("ckpt_v1"), 2, 16, NULL, &e);
    CHECKF(u && t_same(u, m, DS_PARAMS), "%s", e.msg);
    ds_model_free(u);
    f[len - 5] ^= 0x10; /* a bit of the last tensor */
    ck_put(tp("ckpt_v1/model.safetensors"), f, len);
    u = ds_checkpoint_load(tp("ckpt_v1"), 2, 16, NULL, &e);
    CHECKF(!u && strstr(e.msg, "corrupted"), "%s", u ? "loaded" : e.msg);
    free(f);
    ds_model_free(m);
}

/* silent corruption: any bit flipped in the tensor data of either file is caught by its checksum */
static void test_checkpoint_detects_bit_flips(void) {
    ds_model *m = ck_model(41), *u;
    ds_train_state st;
    ds_error e;
    static const char *const files[2] = {"ckpt_flip/model.safetensors", "ckpt_flip/trainer_state.safetensors"};
    int fi, trial, caught = 0, tried = 0;
    CHECK(m);
    memset(&st, 0, sizeof st);
    CHECK_OK(ds_checkpoint_save(m, NULL, &st, tp("ckpt_flip"), DS_DTYPE_F32, &e_));
    for (fi = 0; fi < 2; fi++) {
        size_t len, hl = 0, i;
        char *good = t_read(tp(files[fi]), &len), *bad;
        CHECK(good && (bad = (char *)malloc(len)) != NULL);
        for (i = 0; i < 8; i++) hl |= (size_t)(unsigned char)good[i] << (8 * i);
        for (trial = 0; trial < 50; trial++) {
            size_t byte = 8 + hl + (size_t)(t_rand() % (len - 8 - hl));
            memcpy(bad, good, len);
            bad[byte] ^= (char)(1 << (t_rand() % 8));
            ck_put(tp(files[fi]), bad, len);
            u = ds_checkpoint_load(tp("ckpt_flip"), 2, 16, &st, &e);
            tried++;
            if (!u && strstr(e.msg, "corrupted")) caught++;
            ds_model_free(u);
        }
        ck_put(tp(files[fi]), good, len);
        free(good), free(bad);
    }
    printf("  %d of %d random bit flips in tensor data caught\n", caught, tried);
    CHECK(caught == tried);
    CHECK((u = ds_checkpoint_load(tp("ckpt_flip"), 2, 16, &st, &e)) != NULL);
    ds_model_free(u);
    ds_model_free(m);
}

/* the trainer state's numbers are whole decimal strings in range, or the load is refused */
static void test_checkpoint_trainer_state_is_checked(void) {
    static const char *const bad[] = {"\"step\":\"-5\"", "\"step\":\"-100000000\"", "\"step\":\"abc\"", "\"step\":\"1e3\"", "\"step\":\" 4\"",
                                      "\"adam_step\":\"99999999999999999999999\"", "\"rng\":\"18446744073709551616\""};
    ds_model *m = ck_model(51), *u;
    ds_train_state st;
    ds_error e;
    size_t k;
    CHECK(m);
    memset(&st, 0, sizeof st);
    st.step = 4;
    snprintf(st.run, sizeof st.run, "vocab=64 dim=32 \"quoted\" steps=100");
    CHECK_OK(ds_checkpoint_save(m, NULL, &st, tp("ckpt_ts"), DS_DTYPE_F32, &e_));
    memset(&st, 0, sizeof st);
    CHECK((u = ds_checkpoint_load(tp("ckpt_ts"), 2, 16, &st, &e)) != NULL);
    CHECK(st.step == 4 && !strcmp(st.run, "vocab=64 dim=32 \"quoted\" steps=100")); /* the run description round-trips */
    ds_model_free(u);
    for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ds__st_w s2[2];
        char meta[512];
        const char *key = bad[k];
        snprintf(meta, sizeof meta, "{%s%s%s%s%s%s,\"n_params\":\"%zu\"}", key,
                 strncmp(key, "\"step\"", 6) ? ",\"step\":\"4\"" : "", strncmp(key, "\"adam_step\"", 11) ? ",\"adam_step\":\"4\"" : "",
                 ",\"tokens_seen\":\"0\"", ",\"data_pos\":\"0\"", strncmp(key, "\"rng\"", 5) ? ",\"rng\":\"1\"" : "", ds_model_n_params(m));
        s2[0].name = "optimizer.exp_avg", s2[0].rows = 0, s2[0].cols = 0, s2[0].data = m->m, s2[0].n = m->n_params, s2[0].dtype = DS_DTYPE_F32;
        s2[0].ex = &m->ex;
        s2[1] = s2[0], s2[1].name = "optimizer.exp_avg_sq", s2[1].data = m->v;
        CHECK(ds__st_save(tp("ckpt_ts/trainer_state.safetensors"), s2, 2, meta, &e) == DS_OK);
        u = ds_checkpoint_load(tp("ckpt_ts"), 2, 16, &st, &e);
        CHECKF(!u && strstr(e.msg, "not a whole number"), "%s: %s", key, u ? "accepted" : e.msg);
    }
    ds_model_free(m);
}

/* save and load stream the tensors: beyond the model itself, neither allocates more than a
   megabyte or so (the stages), although each of the checkpoint's files is several megabytes */
static void test_checkpoint_streams_tensors(void) {
    ds_config c;
    ds_error e;
    ds_model *m, *u;
    ds_train_state st;
    size_t bytes, before, kept, save_peak;
    int dt;
    ds_config_preset("test", &c, &e);
    c.vocab = 2048, c.d_model = 128, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 352, c.n_layers = 2;
    CHECK((m = ds_model_new(&c, 1, 8, &e)) != NULL);
    CHECK_OK(ds_model_init(m, 7));
    bytes = ds_model_n_params(m) * sizeof(ds_float);
    CHECK(bytes > (size_t)3 << 20); /* each file is larger than what the operations may allocate */
    memset(&st, 0, sizeof st);
    st.step = 1;
    for (dt = 0; dt < 2; dt++) {
        before = t_live, t_peak = t_live;
        CHECK_OK(ds_checkpoint_save(m, NULL, &st, tp("ckpt_stream"), dt ? DS_DTYPE_BF16 : DS_DTYPE_F32, &e_));
        save_peak = t_peak - before;
        CHECKF(save_peak < (size_t)3 << 19, "a save of %zu-byte arrays allocated %zu bytes at its peak", bytes, save_peak);
        before = t_live, t_peak = t_live;
        CHECK((u = ds_checkpoint_load(tp("ckpt_stream"), 1, 8, &st, &e)) != NULL);
        kept = t_live - before; /* the loaded model */
        CHECKF(t_peak - before - kept < (size_t)3 << 19, "a load allocated %zu bytes beyond the model's %zu", t_peak - before - kept, kept);
        printf("  %s: %zu-byte arrays; the save allocated at most %zu bytes, the load %zu beyond the model\n", dt ? "bf16" : "f32", bytes,
               save_peak, t_peak - before - kept);
        if (!dt) CHECK(memcmp(ds_model_params(u), ds_model_params(m), bytes) == 0);
        else { /* bf16: each weight rounded once */
            size_t i;
            for (i = 0; i < ds_model_n_params(m); i++) CHECK(fabs(ds_model_params(u)[i] - ds_model_params(m)[i]) <= fabs(ds_model_params(m)[i]) * 0.004 + 1e-30);
        }
        ds_model_free(u);
    }
    ds_model_free(m);
}

/* a trainer state over 2^31 values (the 7b preset's moments) is described and checked in 64 bits:
   a sparse file of that size opens, and its shape matches the 64-bit count, not an int's wrap */
static void test_checkpoint_shapes_beyond_2_31(void) {
    const size_t n = ((size_t)1 << 31) + 8;
    char head[256];
    unsigned char len8[8];
    ds__st_r r;
    ds_error e;
    FILE *f;
    int b, hl;
    hl = snprintf(head, sizeof head, "{\"optimizer.exp_avg\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}", n, 4 * n);
    for (b = 0; b < 8; b++) len8[b] = (unsigned char)((uint64_t)hl >> (8 * b));
    CHECK((f = fopen(tp("big.safetensors"), "wb")) != NULL);
    CHECK(fwrite(len8, 1, 8, f) == 8 && fwrite(head, 1, (size_t)hl, f) == (size_t)hl);
    fclose(f);
    if (truncate(tp("big.safetensors"), (off_t)(8 + hl) + (off_t)(4 * n)) != 0) SKIP("no sparse 8 GB file here");
    CHECK_OK(ds__st_open(&r, tp("big.safetensors"), &e_));
    CHECK(r.data_len == 4 * n);
    CHECK(ds__shape_is(ds_json_get(ds_json_get(r.doc->root, "optimizer.exp_avg"), "shape"), n, 0));
    CHECK(!ds__shape_is(ds_json_get(ds_json_get(r.doc->root, "optimizer.exp_avg"), "shape"), n - 8, 0)); /* 2^31: what a 32-bit count would have made of it */
    ds__st_close(&r);
    remove(tp("big.safetensors"));
    (void)e;
}

/* a load allocates for the B x T it is asked for: a config's max_position_embeddings (1M here)
   costs its RoPE tables and scores only when a generation starts, and decoding then gives the
   same logits as the model built with every table up front */
static void test_checkpoint_load_sizes_for_t(void) {
    ds_config c;
    ds_error e;
    ds_model *m, *u;
    size_t before, V, i;
    const ds_float *lg;
    ds_float *want;
    int p;
    ds_config_preset("test", &c, &e);
    c.vocab = 32, c.d_model = 16, c.n_heads = 2, c.n_kv_heads = 1, c.d_ff = 32, c.n_layers = 1, c.max_seq = 1 << 20;
    CHECK((m = ds_model_new(&c, 1, 4, &e)) != NULL); /* its RoPE tables: 1M x 8 values */
    CHECK_OK(ds_model_init(m, 9));
    CHECK_OK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_long"), DS_DTYPE_F32, &e_));
    before = t_live;
    CHECK((u = ds_checkpoint_load_inference(tp("ckpt_long"), 1, 4, &e)) != NULL);
    CHECKF(t_live - before < (size_t)1 << 20, "the load kept %zu bytes for a %zu-parameter model", t_live - before, ds_model_n_params(u));
    V = (size_t)c.vocab;
    CHECK((want = (ds_float *)malloc(V * sizeof(ds_float))) != NULL);
    for (p = 0; p < 6; p++) {
        CHECK_OK(ds_model_forward_token(m, (int32_t)(p * 5 % 32), p, NULL, &lg, &e_));
        memcpy(want, lg, V * sizeof(ds_float));
        CHECK_OK(ds_model_forward_token(u, (int32_t)(p * 5 % 32), p, NULL, &lg, &e_));
        for (i = 0; i < V; i++) CHECK(lg[i] == want[i]);
    }
    CHECK_OK(ds_model_forward_token(u, 1, (1 << 20) - 1, NULL, &lg, &e_)); /* the last position */
    free(want);
    ds_model_free(m);
    ds_model_free(u);
}

/* the BF16 inference model: from an F32 and from a BF16 file, its decoding logits equal, bit for
   bit, those of a float model holding the same weights rounded to bf16; training calls are refused */
static void test_checkpoint_bf16_inference_model(void) {
    ds_config c;
    ds_error e;
    ds_model *m, *ref, *b;
    ds_float *w, *want;
    const ds_float *lg;
    size_t i, n, V;
    int p, f, k;
    double loss;
    int32_t in[2] = {1, 2};
    ds_config_preset("test", &c, &e);
    c.vocab = 96, c.d_model = 48, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 80, c.n_layers = 2, c.init_std = 0.1;
    CHECK((m = ds_model_new(&c, 1, 8, &e)) != NULL);
    CHECK_OK(ds_model_init(m, 21));
    CHECK_OK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_b32"), DS_DTYPE_F32, &e_));
    CHECK_OK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_b16"), DS_DTYPE_BF16, &e_));
    n = ds_model_n_params(m), V = (size_t)c.vocab;
    CHECK((w = (ds_float *)malloc(n * sizeof(ds_float))) != NULL && (want = (ds_float *)malloc(V * sizeof(ds_float))) != NULL);
    CHECK((ref = ds_checkpoint_load_inference(tp("ckpt_b32"), 1, 1, &e)) != NULL);
    CHECK_OK(ds_model_get(ref, DS_PARAMS, 0, n, w, &e_));
    for (i = 0; i < n; i++) { uint32_t u = (uint32_t)ds__f32_to_bf16((float)w[i]) << 16; float x; memcpy(&x, &u, 4); w[i] = x; }
    CHECK_OK(ds_model_set(ref, DS_PARAMS, 0, n, w, &e_));
    for (f = 0; f < 2; f++) {
        CHECK((b = ds_checkpoint_load_bf16(tp(f ? "ckpt_b16" : "ckpt_b32"), &e)) != NULL);
        CHECK_OK(ds_model_get(b, DS_PARAMS, 0, n, w, &e_)); /* widened: the rounded weights */
        for (k = 0; k < 7; k++) { size_t at = (size_t)k * n / 7; ds_float x; CHECK_OK(ds_model_get(ref, DS_PARAMS, at, 1, &x, &e_)); CHECK(w[at] == x); }
        for (p = 0; p < 7; p++) {
            int32_t tok = (int32_t)((p * 37 + 5) % c.vocab);
            CHECK_OK(ds_model_forward_token(ref, tok, p, NULL, &lg, &e_));
            memcpy(want, lg, V * sizeof(ds_float));
            CHECK_OK(ds_model_forward_token(b, tok, p, NULL, &lg, &e_));
            for (i = 0; i < V; i++) CHECKF(lg[i] == want[i], "%s file, position %d, logit %zu: %.9g, the float model %.9g", f ? "BF16" : "F32", p, i,
                                           (double)lg[i], (double)want[i]);
        }
        CHECK(ds_model_forward(b, in, in, NULL, 1, 2, NULL, &loss, &e) == DS_ERR_UNSUPPORTED && strstr(e.msg, "decodes only"));
        CHECK(ds_checkpoint_save(b, NULL, NULL, tp("ckpt_bx"), DS_DTYPE_F32, &e) == DS_ERR_UNSUPPORTED);
        CHECK(ds_model_set(b, DS_PARAMS, 0, 1, w, &e) == DS_ERR_UNSUPPORTED);
        CHECK(ds_model_backward(b, 1.0f, NULL, &e) != DS_OK);
        ds_model_free(b);
        ds_model_free(ref);
        CHECK((ref = ds_checkpoint_load_inference(tp("ckpt_b32"), 1, 1, &e)) != NULL); /* fresh caches for the second file */
        CHECK_OK(ds_model_set(ref, DS_PARAMS, 0, n, w, &e_));
    }
    free(w), free(want);
    ds_model_free(ref);
    ds_model_free(m);
}

/* a prompt through the BF16 model's batched forward (prefill, DS__PREFILL_ROWS positions at a
   time) gives, bit for bit, the float model's prefill on the same rounded weights: the logits of
   the prompt's last position, then every greedy token and the logits after them; and it agrees
   with feeding the BF16 model the prompt token by token (the products sum in another order) */
static void test_checkpoint_bf16_prefill(void) {
    enum { NP = DS__PREFILL_ROWS + 9 };
    ds_config c;
    ds_error e;
    ds_model *m, *ref, *b, *one;
    ds_float *want, *pre;
    const ds_float *lg;
    size_t i, V;
    int32_t prompt[NP], next = 3, ga[6], gb[6];
    int na = 0, nb = 0, t;
    double worst = 0, scale = 0;
    ds_sampler sa = ds_sampler_make(0, 1, 0), sb = ds_sampler_make(0, 1, 0);
    ds_config_preset("test", &c, &e);
    c.vocab = 96, c.d_model = 48, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 80, c.n_layers = 2, c.init_std = 0.1, c.max_seq = 128;
    CHECK((m = ds_model_new(&c, 1, 8, &e)) != NULL);
    CHECK_OK(ds_model_init(m, 22));
    CHECK_OK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_pf16"), DS_DTYPE_BF16, &e_));
    V = (size_t)c.vocab;
    CHECK((want = (ds_float *)malloc(V * sizeof(ds_float))) != NULL && (pre = (ds_float *)malloc(V * sizeof(ds_float))) != NULL);
    CHECK((b = ds_checkpoint_load_bf16(tp("ckpt_pf16"), &e)) != NULL);
    CHECK((one = ds_checkpoint_load_bf16(tp("ckpt_pf16"), &e)) != NULL);
    CHECK((ref = ds_checkpoint_load_inference(tp("ckpt_pf16"), 1, 16, &e)) != NULL); /* widened on load: the rounded weights */
    for (t = 0; t < NP; t++) prompt[t] = (int32_t)((t * 37 + 5) % c.vocab);
    /* the prompt: two chunks of the BF16 model's prefill (64 + 9), five of the float model's (T = 16) */
    CHECK_OK(ds_generate_next(ref, 0, prompt, NP, 0, &sa, -1, NULL, NULL, NULL, &na, NULL, &e_));
    memcpy(want, ds_model_logits(ref), V * sizeof(ds_float));
    CHECK_OK(ds_generate_next(b, 0, prompt, NP, 0, &sb, -1, NULL, NULL, NULL, &nb, NULL, &e_));
    memcpy(pre, ds_model_logits(b), V * sizeof(ds_float));
    for (i = 0; i < V; i++) CHECKF(pre[i] == want[i], "logit %zu after the prompt: %.9g, the float model %.9g", i, (double)pre[i], (double)want[i]);
    /* then greedy tokens through both caches, and the logits after them */
    CHECK_OK(ds_generate_next(ref, NP, &next, 1, 6, &sa, -1, NULL, NULL, ga, &na, NULL, &e_));
    CHECK_OK(ds_generate_next(b, NP, &next, 1, 6, &sb, -1, NULL, NULL, gb, &nb, NULL, &e_));
    CHECK(na == 6 && nb == 6);
    for (t = 0; t < 6; t++) CHECKF(ga[t] == gb[t], "greedy token %d: the float model %d, the BF16 model %d", t, (int)ga[t], (int)gb[t]);
    CHECK_OK(ds_model_forward_token(ref, ga[5], NP + 6, NULL, &lg, &e_));
    memcpy(want, lg, V * sizeof(ds_float));
    CHECK_OK(ds_model_forward_token(b, gb[5], NP + 6, NULL, &lg, &e_));
    for (i = 0; i < V; i++) CHECKF(lg[i] == want[i], "logit %zu after 7 more tokens: %.9g, the float model %.9g", i, (double)lg[i], (double)want[i]);
    /* the BF16 model fed the prompt a token at a time: the same logits to rounding */
    for (t = 0; t < NP; t++) CHECK_OK(ds_model_forward_token(one, prompt[t], t, NULL, &lg, &e_));
    for (i = 0; i < V; i++) {
        double d = fabs((double)lg[i] - (double)pre[i]);
        worst = d > worst ? d : worst;
        scale = fabs((double)lg[i]) > scale ? fabs((double)lg[i]) : scale;
    }
    CHECKF(worst <= 1e-5 * scale, "prefill vs token by token: logits differ by %.2e (the largest is %.3g)", worst, scale);
    printf("  BF16 prefill (64 + 9 positions) = the float model's prefill bit for bit; vs token by token within %.1e of the largest logit\n", worst / scale);
    free(want), free(pre);
    ds_sampler_free(&sa), ds_sampler_free(&sb);
    ds_model_free(ref), ds_model_free(b), ds_model_free(one), ds_model_free(m);
}

/* writes m as a Hugging Face-style sharded BF16 checkpoint in dir: n_shards files, tensor k in shard
   k % n_shards (so q, k and v land in different files), model.safetensors.index.json, config.json;
   index_extra is spliced into the weight_map (a duplicate, a wrong shard) */
static int write_sharded(ds_model *m, const char *dir, int n_shards, const char *index_extra) {
    ds__st_w w[64];
    ds_buf idx = {0, 0, 0, 0}, cfg = {0, 0, 0, 0};
    char path[512];
    int s, k, n, first = 1;
    ds_error e;
    mkdir(dir, 0755);
    ds_buf_puts(&idx, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (s = 0; s < n_shards; s++) {
        for (n = 0, k = s; k < m->n_tensors; k += n_shards, n++) {
            const ds_tensor *t = &m->tensors[k];
            w[n].name = t->name, w[n].rows = t->rows, w[n].cols = t->cols, w[n].data = m->params + t->offset, w[n].n = t->numel;
            w[n].dtype = DS_DTYPE_BF16, w[n].ex = &m->ex;
            ds_buf_printf(&idx, "%s\"%s\": \"model-%05d-of-%05d.safetensors\"", first ? "" : ", ", t->name, s + 1, n_shards);
            first = 0;
        }
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, n_shards);
        if (ds__st_save(path, w, n, "{\"format\":\"pt\"}", &e)) return 0;
    }
    if (index_extra) ds_buf_puts(&idx, index_extra);
    ds_buf_puts(&idx, "}}");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (ds_write_file_atomic(path, idx.data, idx.len, &e)) return 0;
    if (ds_config_to_json(ds_model_config(m), DS_DTYPE_BF16, -1, -1, &cfg, &e)) return 0;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (ds_write_file_atomic(path, cfg.data, cfg.len, &e)) return 0;
    ds_buf_free(&idx), ds_buf_free(&cfg);
    return 1;
}

/* sharded BF16 checkpoints as Hugging Face publishes them: loaded by the F32 path and by the BF16
   inference model (mapped), both equal to a float model of the rounded weights; a bad index or
   shard is refused with the reason */
static void test_checkpoint_sharded_bf16(void) {
    ds_config c;
    ds_error e;
    ds_model *m, *ref, *u, *b;
    ds_float *w, *want;
    const ds_float *lg;
    size_t i, n, V;
    int p;
    char path[512];
    FILE *f;
    ds_config_preset("test", &c, &e);
    c.vocab = 80, c.d_model = 32, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 64, c.n_layers = 2, c.init_std = 0.1;
    CHECK((m = ds_model_new(&c, 1, 8, &e)) != NULL);
    CHECK_OK(ds_model_init(m, 31));
    CHECK(write_sharded(m, tp("ckpt_shards"), 3, NULL));
    n = ds_model_n_params(m), V = (size_t)c.vocab;
    CHECK((w = (ds_float *)malloc(n * sizeof(ds_float))) != NULL && (want = (ds_float *)malloc(V * sizeof(ds_float))) != NULL);
    CHECK_OK(ds_model_get(m, DS_PARAMS, 0, n, w, &e_));
    for (i = 0; i < n; i++) { uint32_t x = (uint32_t)ds__f32_to_bf16((float)w[i]) << 16; float y; memcpy(&y, &x, 4); w[i] = y; }
    CHECK((ref = ds_model_new(&c, 1, 8, &e)) != NULL);
    CHECK_OK(ds_model_set(ref, DS_PARAMS, 0, n, w, &e_));
    CHECK((u = ds_checkpoint_load(tp("ckpt_shards"), 1, 8, NULL, &e)) != NULL); /* the F32 path: the rounded weights */
    CHECK(memcmp(ds_model_params(u), w, n * sizeof(ds_float)) == 0);
    CHECK((b = ds_checkpoint_load_bf16(tp("ckpt_shards"), &e)) != NULL);    /* the BF16 model: mapped */
    CHECK(b->n_maps == 3 && b->bstore == NULL);
    for (p = 0; p < 6; p++) {
        int32_t tok = (int32_t)((p * 29 + 3) % c.vocab);
        CHECK_OK(ds_model_forward_token(ref, tok, p, NULL, &lg, &e_));
        memcpy(want, lg, V * sizeof(ds_float));
        CHECK_OK(ds_model_forward_token(b, tok, p, NULL, &lg, &e_));
        for (i = 0; i < V; i++) CHECK(lg[i] == want[i]);
    }
    ds_model_free(b), ds_model_free(u);
    /* the index names a tensor twice; names a shard outside the directory; does not name a tensor;
       names the wrong shard; a shard is missing; a shard ends early */
    CHECK(write_sharded(m, tp("ckpt_sh1"), 2, ", \"model.norm.weight\": \"model-00001-of-00002.safetensors\""));
    CHECK(ds_checkpoint_load(tp("ckpt_sh1"), 1, 8, NULL, &e) == NULL && strstr(e.msg, "twice"));
    CHECK(write_sharded(m, tp("ckpt_sh2"), 2, ", \"extra.weight\": \"../ckpt_shards/model-00001-of-00003.safetensors\""));
    CHECK(ds_checkpoint_load(tp("ckpt_sh2"), 1, 8, NULL, &e) == NULL && strstr(e.msg, "not a file name"));
    CHECK(write_sharded(m, tp("ckpt_sh3"), 2, NULL));
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", tp("ckpt_sh3"));
    CHECK((f = fopen(path, "wb")) != NULL);
    fprintf(f, "{\"weight_map\": {\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\", "
               "\"model.norm.weight\": \"model-00002-of-00002.safetensors\"}}");
    fclose(f);
    CHECK(ds_checkpoint_load_bf16(tp("ckpt_sh3"), &e) == NULL && strstr(e.msg, "does not name"));
    CHECK(write_sharded(m, tp("ckpt_sh4"), 2, NULL));
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", tp("ckpt_sh4"));
    { /* the embedding (in shard 1) mapped to shard 2 */
        size_t len;
        char *txt = ds_read_file(path, 0, &len, &e), *at;
        CHECK(txt && (at = strstr(txt, "\"model.embed_tokens.weight\": \"model-00001")) != NULL);
        at[strlen("\"model.embed_tokens.weight\": \"model-0000")] = '2';
        CHECK_OK(ds_write_file_atomic(path, txt, len, &e_));
        free(txt);
    }
    CHECK(ds_checkpoint_load(tp("ckpt_sh4"), 1, 8, NULL, &e) == NULL && strstr(e.msg, "does not hold"));
    CHECK(write_sharded(m, tp("ckpt_sh5"), 2, NULL));
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", tp("ckpt_sh5"));
    CHECK(remove(path) == 0);
    CHECK(ds_checkpoint_load(tp("ckpt_sh5"), 1, 8, NULL, &e) == NULL && strstr(e.msg, "model-00002-of-00002"));
    CHECK(write_sharded(m, tp("ckpt_sh6"), 2, NULL));
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", tp("ckpt_sh6"));
    CHECK(truncate(path, 1000) == 0);
    CHECK(ds_checkpoint_load_bf16(tp("ckpt_sh6"), &e) == NULL && strstr(e.msg, "model-00001-of-00002"));
    free(w), free(want);
    ds_model_free(ref);
    ds_model_free(m);
}

/* one writer at a time: a second writer is refused with the reason, and the lock goes with it */
static void test_checkpoint_second_writer_refused(void) {
    ds_model *m = ck_model(61);
    ds_error e;
    int fd;
    CHECK(m);
    CHECK((fd = open(tp("ckpt_lock.lock"), O_RDWR | O_CREAT, 0644)) >= 0);
    CHECK(flock(fd, LOCK_EX | LOCK_NB) == 0); /* as another process saving to it would */
    CHECK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_lock"), DS_DTYPE_F32, &e) == DS_ERR_IO && strstr(e.msg, "another process"));
    close(fd);
    CHECK_OK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_lock"), DS_DTYPE_F32, &e_));
    ds_model_free(m);
}

/* readers take regular files only, bounded: a device, a FIFO and a directory are refused at once */
static void test_read_file_is_typed_and_bounded(void) {
    ds_error e;
    size_t len;
    char *p;
    CHECK(ds_read_file("/dev/zero", 0, &len, &e) == NULL && strstr(e.msg, "device"));
    CHECK(mkfifo(tp("fifo"), 0644) == 0);
    CHECK(ds_read_file(tp("fifo"), 0, &len, &e) == NULL && strstr(e.msg, "FIFO")); /* no writer: it must not wait for one */
    CHECK(ds_read_file(tp(""), 0, &len, &e) == NULL && strstr(e.msg, "directory"));
    ck_put(tp("ten.bin"), "0123456789", 10);
    CHECK(ds_read_file(tp("ten.bin"), 9, &len, &e) == NULL && strstr(e.msg, "limit"));
    CHECK((p = ds_read_file(tp("ten.bin"), 10, &len, &e)) != NULL && len == 10);
    free(p);
    remove(tp("fifo"));
}

/* an inference-only load: the same weights and logits, no gradients or moments, training refused */
static void test_checkpoint_inference_load(void) {
    ds_model *m = ck_model(71), *u, *f;
    ds_error e;
    const ds_float *lg;
    int32_t in[32], tg[32];
    double lu, lf;
    CHECK(m);
    CHECK_OK(ds_checkpoint_save(m, NULL, NULL, tp("ckpt_inf"), DS_DTYPE_F32, &e_));
    CHECKF((u = ds_checkpoint_load_inference(tp("ckpt_inf"), 2, 16, &e)) != NULL, "%s", e.msg);
    CHECK((f = ds_checkpoint_load(tp("ckpt_inf"), 2, 16, NULL, &e)) != NULL);
    CHECK(t_same(u, f, DS_PARAMS) && ds_model_grads(u) == NULL);
    ck_batch(in, tg, 0);
    CHECK_OK(ds_model_forward(u, in, tg, NULL, 2, 16, NULL, &lu, &e_));
    CHECK_OK(ds_model_forward(f, in, tg, NULL, 2, 16, NULL, &lf, &e_));
    CHECK(lu == lf);
    CHECK(ds_model_backward(u, 1.0f, NULL, &e) == DS_ERR_INVALID && strstr(e.msg, "inference"));
    CHECK(ds_model_step(u, NULL, 1e-3, NULL, NULL, &e) == DS_ERR_INVALID);
    ds_model_zero_grad(u); /* harmless */
    CHECK_OK(ds_model_forward_token(u, 3, 0, NULL, &lg, &e_));
    CHECK(lg != NULL);
    /* our F32 file is mapped, not read (copy-on-write: a write changes the model, not the file) */
    CHECK(u->params_mapped && u->n_maps >= 1);
    {
        size_t n0, n1;
        char *before = t_read(tp("ckpt_inf/model.safetensors"), &n0), *after;
        ds_float x = 42;
        CHECK_OK(ds_model_set(u, DS_PARAMS, 5, 1, &x, &e_));
        CHECK(ds_model_params(u)[5] == 42);
        after = t_read(tp("ckpt_inf/model.safetensors"), &n1);
        CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
        free(before), free(after);
    }
    /* a file laid out otherwise (the tensors in reverse order) is read, and gives the same model */
    {
        ds__st_w w[64];
        ds_model *g;
        int k, n = f->n_tensors;
        char *cfg;
        size_t cl;
        CHECK(n <= 64);
        for (k = 0; k < n; k++) {
            const ds_tensor *t = &f->tensors[n - 1 - k];
            w[k].name = t->name, w[k].rows = t->rows, w[k].cols = t->cols, w[k].data = f->params + t->offset, w[k].n = t->numel;
            w[k].dtype = DS_DTYPE_F32, w[k].ex = NULL;
        }
        mkdir(tp("ckpt_rev"), 0755);
        CHECK((cfg = t_read(tp("ckpt_inf/config.json"), &cl)) != NULL);
        CHECK_OK(ds_write_file_atomic(tp("ckpt_rev/config.json"), cfg, cl, &e_));
        free(cfg);
        CHECK_OK(ds__st_save(tp("ckpt_rev/model.safetensors"), w, n, NULL, &e_));
        CHECKF((g = ds_checkpoint_load_inference(tp("ckpt_rev"), 2, 16, &e)) != NULL, "%s", e.msg);
        CHECK(!g->params_mapped && t_same(g, f, DS_PARAMS));
        ds_model_free(g);
    }
    ds_model_free(u), ds_model_free(f), ds_model_free(m);
}

static void suite_checkpoint(void) {
    RUN(test_checkpoint_inference_load);
    RUN(test_checkpoint_two_crashes_never_lose_it);
    RUN(test_checkpoint_refuses_non_finite);
    RUN(test_checkpoint_detects_bit_flips);
    RUN(test_checkpoint_old_checksum_still_verified);
    RUN(test_checkpoint_trainer_state_is_checked);
    RUN(test_checkpoint_streams_tensors);
    RUN(test_checkpoint_shapes_beyond_2_31);
    RUN(test_checkpoint_load_sizes_for_t);
    RUN(test_checkpoint_bf16_inference_model);
    RUN(test_checkpoint_bf16_prefill);
    RUN(test_checkpoint_sharded_bf16);
    RUN(test_checkpoint_second_writer_refused);
    RUN(test_read_file_is_typed_and_bounded);
    RUN(test_checkpoint_longer_sequences_keep_config);
    RUN(test_checkpoint_roundtrip);
    RUN(test_checkpoint_resume_exact);
    RUN(test_checkpoint_bf16);
    RUN(test_checkpoint_bad_files);
    RUN(test_checkpoint_full_disk_keeps_last_good);
    RUN(test_checkpoint_crash_between_renames);
}
