/* test_data.c - token files, batch sampling, bits-per-byte (§2.3, §3). */

static void test_tokens_file_roundtrip_and_errors(void) {
    ds_tokenizer *tok = ds_tokenizer_from_merges(NULL, 0, NULL); /* bytes only: one token per byte */
    ds_tokens t, u;
    ds_error e;
    char *raw;
    size_t len;
    const char *text = "To be, or not to be: that is the question. \xE5\xAD\xA6\xE8\x80\x8C\n";
    CHECK(tok);
    CHECK_OK(ds_tokens_from_text(tok, text, strlen(text), &t, &e_));
    CHECK(t.n == strlen(text) && t.n_bytes == strlen(text) && t.vocab == 258);
    CHECKF(ds_tokens_save(&t, tp("test.tok"), &e) == 0, "%s", e.msg);
    CHECK_OK(ds_tokens_load(tp("test.tok"), &u, &e_));
    CHECK(u.n == t.n && u.n_bytes == t.n_bytes && u.vocab == t.vocab && memcmp(u.ids, t.ids, t.n * sizeof(int32_t)) == 0);
    ds_tokens_free(&u);
    raw = t_read(tp("test.tok"), &len);
    CHECK(raw && len == 32 + 4 * t.n);
    ck_put(tp("bad.tok"), raw, len - 3); /* wrong size for its count */
    CHECK(ds_tokens_load(tp("bad.tok"), &u, &e) == DS_ERR_FORMAT && strstr(e.msg, "tokens"));
    raw[41] = (char)0xFF; /* an id beyond the vocabulary (>= 65280) */
    ck_put(tp("bad.tok"), raw, len);
    CHECK(ds_tokens_load(tp("bad.tok"), &u, &e) == DS_ERR_FORMAT && strstr(e.msg, "vocabulary"));
    raw[0] = 'X';
    ck_put(tp("bad.tok"), raw, len);
    CHECK(ds_tokens_load(tp("bad.tok"), &u, &e) == DS_ERR_FORMAT && strstr(e.msg, "DSTOKENS"));
    CHECK(ds_tokens_load(tp("no-such.tok"), &u, &e) == DS_ERR_IO);
    free(raw);
    ds_tokens_free(&t);
    ds_tokenizer_free(tok);
}

static void test_tokens_batch_deterministic(void) {
    ds_tokens t;
    int32_t a_in[3 * 8], a_tg[3 * 8], b_in[3 * 8], b_tg[3 * 8];
    uint64_t r1 = 42, r2 = 42;
    size_t i;
    int b, k;
    t.n = 500, t.n_bytes = 500, t.vocab = 1000;
    t.ids = (int32_t *)malloc(t.n * sizeof(int32_t));
    for (i = 0; i < t.n; i++) t.ids[i] = (int32_t)i; /* id = position: windows are easy to read */
    CHECK_OK(ds_tokens_batch(&t, &r1, 3, 8, a_in, a_tg, &e_));
    CHECK_OK(ds_tokens_batch(&t, &r2, 3, 8, b_in, b_tg, &e_));
    CHECK(r1 == r2 && memcmp(a_in, b_in, sizeof a_in) == 0 && memcmp(a_tg, b_tg, sizeof a_tg) == 0);
    for (b = 0; b < 3; b++)
        for (k = 0; k < 8; k++) {
            CHECK(a_tg[b * 8 + k] == a_in[b * 8 + k] + 1);                 /* targets are the next token */
            if (k) CHECK(a_in[b * 8 + k] == a_in[b * 8 + k - 1] + 1);      /* a contiguous window */
            CHECK(a_tg[b * 8 + k] < 500);
        }
    CHECK_OK(ds_tokens_batch(&t, &r1, 3, 8, a_in, a_tg, &e_));
    CHECK(memcmp(a_in, b_in, sizeof a_in) != 0); /* the RNG moved on */
    t.n = 8;
    {
        ds_error e;
        CHECK(ds_tokens_batch(&t, &r1, 1, 8, a_in, a_tg, &e) == DS_ERR_INVALID && strstr(e.msg, "window"));
    }
    free(t.ids);
}

/* A zero LM head makes every prediction uniform: loss ln V per token, and with one byte per token
   BPB = log2 V exactly -- across several batches and a padded last window. */
static void test_bpb_of_a_uniform_model(void) {
    ds_tokenizer *tok = ds_tokenizer_from_merges(NULL, 0, NULL);
    ds_config c;
    ds_model *m;
    ds_tokens t;
    ds_error e;
    double loss = 0, bpb = 0;
    size_t i;
    const ds_tensor *head;
    CHECK(tok);
    ds_config_preset("test", &c, &e);
    c.vocab = 320, c.max_seq = 16;
    m = ds_model_new(&c, 2, 16, &e);
    CHECKF(m, "%s", e.msg);
    ds_model_init(m, 1);
    head = ds_model_tensor(m, ds_model_n_tensors(m) - 1);
    {   /* a zero LM head: every token equally likely */
        ds_float *z = (ds_float *)calloc(head->numel, sizeof(ds_float));
        CHECK(z);
        CHECK_OK(ds_model_set(m, DS_PARAMS, head->offset, head->numel, z, &e_));
        free(z);
    }
    t.n = 1001, t.n_bytes = 1001, t.vocab = 258;
    t.ids = (int32_t *)malloc(t.n * sizeof(int32_t));
    for (i = 0; i < t.n; i++) t.ids[i] = (int32_t)((i * 37) % 256);
    CHECKF(ds_model_eval_bpb(m, tok, &t, 2, 16, NULL, &loss, &bpb, &e) == 0, "%s", e.msg);
    CHECKF(fabs(loss - log(320.0)) < 1e-5, "loss %.8f, expected ln 320 = %.8f", loss, log(320.0));
    CHECKF(fabs(bpb - log2(320.0)) < 1e-5, "bpb %.8f, expected log2 320 = %.8f", bpb, log2(320.0));
    free(t.ids);
    ds_model_free(m);
    ds_tokenizer_free(tok);
}

static void suite_data(void) {
    RUN(test_tokens_file_roundtrip_and_errors);
    RUN(test_tokens_batch_deterministic);
    RUN(test_bpb_of_a_uniform_model);
}

/* ---- generation ------------------------------------------------------------------------------ */

/* a prompt through the batched forward (prefill, in chunks of the model's T) leaves the same cache
   and logits as feeding it token by token: a prompt of 11 in chunks of 4, then a second turn of 6
   that continues the sequence, then greedy tokens */
static void test_prefill_equals_token_by_token(void) {
    ds_config c;
    ds_model *chunked, *single;
    ds_error e;
    int32_t p1[11] = {5, 17, 3, 42, 9, 1, 0, 63, 22, 8, 30}, p2[6] = {7, 7, 2, 50, 11, 4}, a[8], b[8];
    int na = 0, nb = 0, i;
    ds_sampler sa = ds_sampler_make(0, 1, 0), sb = ds_sampler_make(0, 1, 0);
    const ds_float *la, *lb;
    ds_float keep[64];
    double worst = 0;
    ds_config_preset("test", &c, &e);
    c.n_kv_heads = 2, c.max_seq = 40, c.init_std = 0.2;
    chunked = ds_model_new(&c, 1, 4, &e);
    single = ds_model_new(&c, 1, 1, &e);
    CHECK(chunked && single);
    ds_model_init(chunked, 5);
    ds_model_init(single, 5);
    CHECK_OK(ds_generate_next(chunked, 0, p1, 11, 1, &sa, -1, NULL, NULL, a, &na, NULL, &e_));
    CHECK_OK(ds_generate_next(single, 0, p1, 11, 1, &sb, -1, NULL, NULL, b, &nb, NULL, &e_));
    CHECK(na == 1 && nb == 1 && a[0] == b[0]);
    CHECK_OK(ds_generate_next(chunked, 11, p2, 6, 8, &sa, -1, NULL, NULL, a, &na, NULL, &e_));
    CHECK_OK(ds_generate_next(single, 11, p2, 6, 8, &sb, -1, NULL, NULL, b, &nb, NULL, &e_));
    CHECK(na == 8 && nb == 8);
    for (i = 0; i < 8; i++) CHECKF(a[i] == b[i], "token %d: prefill %d, token by token %d", i, (int)a[i], (int)b[i]);
    /* and the next logits agree (the products sum in another order: to rounding) */
    CHECK_OK(ds_model_forward_token(chunked, a[7], 25, NULL, &la, &e_));
    memcpy(keep, la, sizeof keep);
    CHECK_OK(ds_model_forward_token(single, b[7], 25, NULL, &lb, &e_));
    for (i = 0; i < 64; i++) {
        double d = fabs((double)keep[i] - (double)lb[i]) / (fabs((double)lb[i]) + 1e-3);
        worst = d > worst ? d : worst;
    }
    CHECKF(worst < 1e-4, "logits differ by %.2e (relative)", worst);
    printf("  prefill in chunks of 4 vs token by token: the same 9 greedy tokens, logits within %.1e\n", worst);
    ds_sampler_free(&sa), ds_sampler_free(&sb);
    ds_model_free(chunked);
    ds_model_free(single);
}

static void test_greedy_kv_cache_equals_full_forward(void) {
    ds_config c;
    ds_model *m, *full;
    ds_error e;
    int32_t seq[24] = {5, 17, 3, 42, 9}, out[19];
    static ds_float lf[24 * 64];
    int n_out = 0, i, k;
    double worst = 0;
    ds_config_preset("test", &c, &e);
    c.n_kv_heads = 2, c.max_seq = 24, c.init_std = 0.2; /* large weights: a non-trivial argmax */
    m = ds_model_new(&c, 1, 24, &e);
    full = ds_model_new(&c, 1, 24, &e);
    CHECK(m && full);
    ds_model_init(m, 11);
    ds_model_init(full, 11);
    CHECK_OK(ds_generate(m, seq, 5, 19, 0.0, 1.0, 0, -1, NULL, NULL, out, &n_out, NULL, &e_));
    CHECK(n_out == 19);
    for (i = 0; i < n_out; i++) seq[5 + i] = out[i];
    /* the full forward over the whole sequence: at each position, its argmax is the next token */
    CHECK_OK(ds_model_forward(full, seq, NULL, NULL, 1, 24, NULL, NULL, &e_));
    CHECK_OK(ds_model_copy_logits(full, 0, 24, lf, &e_));
    for (i = 4; i < 23; i++) {
        ds_sampler greedy = ds_sampler_make(0, 1, 0);
        int32_t arg = -1;
        CHECK_OK(ds_sampler_sample(&greedy, lf + (size_t)i * 64, 64, &arg, &e_));
        CHECKF(arg == seq[i + 1], "position %d: full forward argmax %d, KV cache generated %d", i, (int)arg, (int)seq[i + 1]);
    }
    /* and the logits themselves agree */
    for (i = 0; i < 24; i++) {
        const ds_float *lg;
        CHECK_OK(ds_model_forward_token(m, seq[i], i, NULL, &lg, &e_));
        for (k = 0; k < 64; k++) {
            double d = fabs((double)lg[k] - (double)lf[(size_t)i * 64 + k]);
            if (d > worst) worst = d;
        }
    }
    CHECKF(worst < 1e-4, "KV-cache logits differ from the full forward by %g", worst);
    /* continuing from the cache: generating 9 tokens, then 10 more from where it stopped, gives
       the 19 of one call (the sampler's stream carries over) */
    {
        ds_sampler s1 = ds_sampler_make(0.9, 0.95, 5), s2 = ds_sampler_make(0.9, 0.95, 5);
        int32_t all[19], part[19];
        int n1 = 0, n2 = 0;
        CHECK_OK(ds_generate_next(m, 0, seq, 5, 19, &s1, -1, NULL, NULL, all, &n1, NULL, &e_));
        CHECK_OK(ds_generate_next(m, 0, seq, 5, 9, &s2, -1, NULL, NULL, part, &n2, NULL, &e_));
        CHECK(n1 == 19 && n2 == 9);
        CHECK_OK(ds_generate_next(m, 5 + 9 - 1, part + 8, 1, 10, &s2, -1, NULL, NULL, part + 9, &n2, NULL, &e_));
        CHECK(n2 == 10 && memcmp(all, part, sizeof all) == 0);
        CHECK(ds_generate_next(m, 20, seq, 1, 4, &s1, -1, NULL, NULL, all, &n1, NULL, &e) == DS_ERR_INVALID && strstr(e.msg, "max_seq"));
        ds_sampler_free(&s1);
        ds_sampler_free(&s2);
    }
    CHECK(ds_model_forward_token(NULL, 1, 0, NULL, NULL, &e) == DS_ERR_INVALID);
    ds_model_free(m);
    ds_model_free(full);
}

static void test_sampling(void) {
    ds_float logits[6] = {1.0f, 3.0f, 2.9f, -1.0f, 3.0f, 0.0f};
    ds_sampler g = ds_sampler_make(0, 1, 7), s1 = ds_sampler_make(1, 1, 7), s2 = ds_sampler_make(1, 1, 7), p = ds_sampler_make(1, 0.5, 7);
    ds_error e;
    int32_t a = -1, b = -1;
    int i, counts[6] = {0};
    CHECK_OK(ds_sampler_sample(&g, logits, 6, &a, &e_));
    CHECK(a == 1 && g.cand_ == NULL); /* argmax, first on ties; greedy allocates nothing */
    for (i = 0; i < 50; i++) { /* seeded */
        CHECK_OK(ds_sampler_sample(&s1, logits, 6, &a, &e_));
        CHECK_OK(ds_sampler_sample(&s2, logits, 6, &b, &e_));
        CHECK(a == b);
    }
    for (i = 0; i < 2000; i++) {
        void *buf = p.cand_;
        CHECK_OK(ds_sampler_sample(&p, logits, 6, &a, &e_));
        CHECK(a >= 0 && a < 6 && (i == 0 || p.cand_ == buf)); /* one buffer, allocated on the first draw */
        counts[a]++;
    }
    CHECK(counts[0] == 0 && counts[3] == 0 && counts[5] == 0 && counts[2] == 0); /* top-p 0.5: only the two tied best */
    CHECK(counts[1] > 800 && counts[4] > 800);
    /* non-finite logits are an error, never a token */
    logits[2] = (ds_float)NAN;
    CHECK(ds_sampler_sample(&p, logits, 6, &a, &e) == DS_ERR_NUMERIC && strstr(e.msg, "NaN"));
    CHECK(ds_sampler_sample(&g, logits, 6, &a, &e) == DS_ERR_NUMERIC);
    for (i = 0; i < 6; i++) logits[i] = -(ds_float)INFINITY;
    CHECK(ds_sampler_sample(&p, logits, 6, &a, &e) == DS_ERR_NUMERIC);
    ds_sampler_free(&s1);
    ds_sampler_free(&s2);
    ds_sampler_free(&p);
}

static void suite_generation(void) {
    RUN(test_greedy_kv_cache_equals_full_forward);
    RUN(test_prefill_equals_token_by_token);
    RUN(test_sampling);
}
