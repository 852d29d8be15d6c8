/* test_tokenizer.c - §2.1: pre-tokenizer, trainer (fast == reference), encode/decode, specials,
   tokenizer.json, the real DeepSeek tokenizer. */

#define DEEPSEEK_TOKENIZER_JSON "../shared/deepseek-tokenizer/tokenizer.json"

/* ---- helpers -------------------------------------------------------------------------------- */

/* "a|b|c" -> compares the pieces of `text` with the '|'-separated expectation */
static int pieces_are(const char *text, size_t len, const char *expect, char *got, size_t got_cap) {
    ds_span sp[256];
    size_t n = ds_pretokenize(text, len, sp, 256), i, o = 0;
    for (i = 0; i < n && i < 256; i++) {
        if (o + sp[i].len + 2 >= got_cap) break;
        if (i) got[o++] = '|';
        memcpy(got + o, text + sp[i].start, sp[i].len);
        o += sp[i].len;
    }
    got[o] = 0;
    return strcmp(got, expect) == 0;
}

static ds_tokenizer *train_on(const char *text, size_t len, int vocab) {
    ds_error e;
    ds_bpe_trainer *tr = ds_bpe_trainer_new(&e);
    ds_tokenizer *t;
    if (!tr || ds_bpe_trainer_feed(tr, text, len, &e)) { printf("  trainer: %s\n", e.msg); return NULL; }
    t = ds_bpe_trainer_train(tr, vocab, &e);
    if (!t) printf("  train: %s\n", e.msg);
    ds_bpe_trainer_free(tr);
    return t;
}

/* a small corpus from the bundled data: English and Chinese */
static char *corpus_sample(size_t *len) {
    size_t a, b;
    char *s1 = t_read("data/tinyshakespeare.txt", &a), *s2 = t_read("data/lunyu.txt", &b), *out;
    if (!s1 || !s2) { free(s1); free(s2); return NULL; }
    if (a > 60000) a = 60000;
    if (b > 30000) b = 30000;
    out = (char *)malloc(a + b + 1);
    memcpy(out, s1, a);
    memcpy(out + a, s2, b);
    out[a + b] = 0;
    *len = a + b;
    free(s1);
    free(s2);
    return out;
}

static int encode_all(ds_tokenizer *t, const char *s, size_t n, int flags, int32_t **ids, size_t *n_ids) {
    ds_error e;
    *ids = (int32_t *)malloc((n + 2) * sizeof(int32_t));
    if (ds_tokenizer_encode(t, s, n, flags, *ids, n + 2, n_ids, &e)) { printf("  encode: %s\n", e.msg); return 0; }
    return 1;
}

/* ---- the pre-tokenizer ---------------------------------------------------------------------- */

static void test_pretokenizer_rules(void) {
    static const char *cases[][2] = {
        /* 1. newlines alone */
        {"a\n\nb", "a|\n|\n|b"}, {"\r\n", "\r|\n"},
        /* 2. \s? + cased letters */
        {"Hello world", "Hello| world"}, {"  hi", " | hi"}, {"x\t\ty", "x|\t|\ty"}, {"naïve café", "na|ï|ve| caf|é"}, /* sic: split 3's [!-/:-~] holds the ASCII letters (HF agrees) */
        {"Straße", "Stra|ß|e"},
        {"Привет мир", "Привет| мир"}, {"a\xE3\x80\x80" "b", "a|\xE3\x80\x80|b"}, /* U+3000 is \s, punctuation and in the CJK range (HF agrees) */
        /* 3. \s? + punctuation */
        {"Hello, world!", "Hello|,| world|!"}, {"x = 1", "x| =| |1"}, {" ...", " ..."}, {"a  !", "a| | !"},
        {"世界，你好", "世界|，|你好"}, /* fullwidth comma U+FF0C */
        /* 4. trailing whitespace */
        {"end.   ", "end|.|   "}, {"hi  ", "hi|  "},
        /* 5. CJK runs, without the space */
        {"Hello 世界", "Hello| |世界"}, {"カタカナ", "カタカナ"}, {"「引号」", "「引号」"}, {"한국어 텍스트", "한국어| |텍스트"},
        /* 6. digits, one by one (Unicode N, not just ASCII) */
        {"123", "1|2|3"}, {"v2.0", "v|2|.|0"}, {"ab12cd", "ab|1|2|cd"}, {"½²", "½|²"},
        /* no class: emoji, invalid bytes stay in the gaps */
        {"😀😀 ok", "😀😀| ok"}, {"\xFF\xFE" "ab", "\xFF\xFE|ab"},
    };
    size_t i;
    char got[1024];
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECKF(pieces_are(cases[i][0], strlen(cases[i][0]), cases[i][1], got, sizeof got), "case %zu: '%s' -> '%s', expected '%s'", i,
               cases[i][0], got, cases[i][1]);
}

static void test_pretokenizer_covers_input(void) {
    /* the pieces tile the input exactly, for any bytes */
    int trial;
    for (trial = 0; trial < 2000; trial++) {
        char s[96];
        ds_span sp[96];
        size_t n = t_rand() % sizeof s, i, k, pos = 0;
        for (i = 0; i < n; i++) {
            static const char alpha[] = "ab Z9\n\r\t.,\xE4\xB8\x96\xC3\xA9\xFF\x80";
            s[i] = (t_rand() % 3) ? alpha[t_rand() % (sizeof alpha - 1)] : (char)t_rand();
        }
        k = ds_pretokenize(s, n, sp, 96);
        CHECK(k <= n);
        for (i = 0; i < k; i++) {
            CHECK(sp[i].start == pos && sp[i].len > 0);
            pos += sp[i].len;
        }
        CHECK(pos == n);
    }
}

/* ---- training ------------------------------------------------------------------------------- */

static void test_minbpe_example(void) {
    /* minbpe's worked example: 3 merges on "aaabdaaabac" -> [258, 100, 258, 97, 99] */
    ds_tokenizer *t = train_on("aaabdaaabac", 11, 256 + 3 + 2);
    int32_t ids[16], want[] = {258, 100, 258, 97, 99};
    size_t n, i;
    CHECK(t);
    CHECK_EQ_INT(ds_tokenizer_n_merges(t), 3);
    CHECK_OK(ds_tokenizer_encode(t, "aaabdaaabac", 11, 0, ids, 16, &n, &e_));
    CHECK_EQ_INT(n, 5);
    for (i = 0; i < 5; i++) CHECK_EQ_INT(ids[i], want[i]);
    CHECK_EQ_INT(ds_tokenizer_bos(t), 259);
    CHECK_EQ_INT(ds_tokenizer_eos(t), 260);
    ds_tokenizer_free(t);
}

/* The reference trainer: the definition, written as plainly as possible. Recount every pair of
   every piece at every step; take the highest count, ties to the lower (left, right). */
typedef struct { int32_t *s; size_t n; } ref_word;
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static int ref_train(const char *text, size_t len, int vocab_size, int32_t *merges, int max_merges) {
    size_t n_sp = ds_pretokenize(text, len, NULL, 0), i, j, n_words = 0;
    ds_span *sp = (ds_span *)malloc((n_sp + 1) * sizeof(ds_span));
    ref_word *w = (ref_word *)malloc((n_sp + 1) * sizeof(ref_word));
    char **tok = (char **)malloc(sizeof(char *) * (size_t)(vocab_size + max_merges));
    size_t *tok_len = (size_t *)malloc(sizeof(size_t) * (size_t)(vocab_size + max_merges));
    uint64_t *keys = (uint64_t *)malloc(sizeof(uint64_t) * (len + 1));
    int n_tok = 256, n_merges = 0;
    ds_pretokenize(text, len, sp, n_sp);
    for (i = 0; i < 256; i++) { tok[i] = (char *)malloc(1); tok[i][0] = (char)i; tok_len[i] = 1; }
    for (i = 0; i < n_sp; i++) {
        w[n_words].s = (int32_t *)malloc(sp[i].len * sizeof(int32_t));
        w[n_words].n = sp[i].len;
        for (j = 0; j < sp[i].len; j++) w[n_words].s[j] = (unsigned char)text[sp[i].start + j];
        n_words++;
    }
    while (n_tok < vocab_size - 2 && n_merges < max_merges) {
        size_t nk = 0, best_count = 0, run;
        uint64_t best = 0;
        int32_t a, b, x = -1;
        for (i = 0; i < n_words; i++)
            for (j = 0; j + 1 < w[i].n; j++) keys[nk++] = ((uint64_t)(uint32_t)w[i].s[j] << 32) | (uint32_t)w[i].s[j + 1];
        if (!nk) break;
        qsort(keys, nk, sizeof(uint64_t), cmp_u64);
        for (i = 0; i < nk; i += run) { /* sorted ascending: the first maximal run wins ties */
            for (run = 1; i + run < nk && keys[i + run] == keys[i]; run++) {}
            if (run > best_count) { best_count = run; best = keys[i]; }
        }
        a = (int32_t)(best >> 32);
        b = (int32_t)(uint32_t)best;
        merges[2 * n_merges] = a;
        merges[2 * n_merges + 1] = b;
        n_merges++;
        { /* the new token's bytes: an existing id if some token has them already */
            size_t L = tok_len[a] + tok_len[b];
            char *bytes = (char *)malloc(L);
            memcpy(bytes, tok[a], tok_len[a]);
            memcpy(bytes + tok_len[a], tok[b], tok_len[b]);
            for (j = 0; j < (size_t)n_tok; j++)
                if (tok_len[j] == L && memcmp(tok[j], bytes, L) == 0) { x = (int32_t)j; break; }
            if (x < 0) { x = n_tok; tok[n_tok] = bytes; tok_len[n_tok++] = L; }
            else free(bytes);
        }
        for (i = 0; i < n_words; i++) { /* merge, left to right */
            size_t o = 0;
            for (j = 0; j < w[i].n;) {
                if (j + 1 < w[i].n && w[i].s[j] == a && w[i].s[j + 1] == b) { w[i].s[o++] = x; j += 2; }
                else w[i].s[o++] = w[i].s[j++];
            }
            w[i].n = o;
        }
    }
    for (i = 0; i < n_words; i++) free(w[i].s);
    for (i = 0; i < (size_t)n_tok; i++) free(tok[i]);
    free(w); free(sp); free(tok); free(tok_len); free(keys);
    return n_merges;
}

static void test_trainer_matches_reference(void) {
    /* random corpora over small alphabets, so that ties, overlapping pairs ("aaa"), repeated
       strings reached two ways, and early exhaustion all happen */
    static const char *alphabets[] = {"ab", "aab c", "abc d\n", "xy z,.1\n", "ab\xE4\xB8\x96\xE7\x95\x8C "};
    int trial;
    for (trial = 0; trial < 120; trial++) {
        const char *alpha = alphabets[trial % 5];
        size_t na = strlen(alpha), n = 50 + t_rand() % 1500, i;
        char *s = (char *)malloc(n + 1);
        int vocab = 258 + 1 + (int)(t_rand() % 120), n_ref, r;
        int32_t *ref = (int32_t *)malloc(sizeof(int32_t) * 2 * 400);
        ds_tokenizer *t;
        for (i = 0; i < n; i++) s[i] = alpha[t_rand() % na];
        t = train_on(s, n, vocab);
        CHECK(t);
        n_ref = ref_train(s, n, vocab, ref, 400);
        CHECKF(t->n_merges == n_ref, "trial %d: fast %d merges, reference %d", trial, (int)t->n_merges, n_ref);
        for (r = 0; r < n_ref; r++)
            CHECKF(t->merges[3 * r] == ref[2 * r] && t->merges[3 * r + 1] == ref[2 * r + 1],
                   "trial %d merge %d: fast (%d,%d) reference (%d,%d)", trial, r, (int)t->merges[3 * r], (int)t->merges[3 * r + 1],
                   (int)ref[2 * r], (int)ref[2 * r + 1]);
        ds_tokenizer_free(t);
        free(ref);
        free(s);
    }
}

static void test_trainer_reference_on_corpus(void) {
    /* and on real text: 20 KB of Shakespeare and the Analects, 150 merges */
    size_t len;
    char *c = corpus_sample(&len);
    int32_t ref[2 * 150];
    int n_ref, r;
    ds_tokenizer *t;
    if (!c) SKIP("data/ not found");
    memmove(c + 12000, c + len - 8000, 8000); /* 12 KB English + 8 KB Chinese */
    len = 20000;
    t = train_on(c, len, 258 + 150);
    CHECK(t);
    n_ref = ref_train(c, len, 258 + 150, ref, 150);
    CHECK_EQ_INT(t->n_merges, n_ref);
    for (r = 0; r < n_ref; r++) CHECK(t->merges[3 * r] == ref[2 * r] && t->merges[3 * r + 1] == ref[2 * r + 1]);
    ds_tokenizer_free(t);
    free(c);
}

static void test_trainer_bad_args(void) {
    ds_error e;
    ds_bpe_trainer *tr = ds_bpe_trainer_new(&e);
    CHECK(tr);
    CHECK(ds_bpe_trainer_train(tr, 100, &e) == NULL && e.code == DS_ERR_INVALID);
    CHECK(ds_bpe_trainer_feed(NULL, "x", 1, &e) == DS_ERR_INVALID);
    {   /* an empty corpus gives the 256 bytes + BOS + EOS */
        ds_tokenizer *t = ds_bpe_trainer_train(tr, 1000, &e);
        CHECK(t && ds_tokenizer_vocab_size(t) == 258 && ds_tokenizer_n_merges(t) == 0);
        ds_tokenizer_free(t);
    }
    ds_bpe_trainer_free(tr);
}

/* ---- encode / decode ------------------------------------------------------------------------ */

static ds_tokenizer *g_tok; /* trained once on the corpus sample, shared by the tests below */
static ds_tokenizer *sample_tokenizer(void) {
    if (!g_tok) {
        size_t len;
        char *c = corpus_sample(&len);
        if (!c) return NULL;
        g_tok = train_on(c, len, 1024);
        free(c);
    }
    return g_tok;
}

static void test_roundtrip_random_bytes(void) {
    ds_tokenizer *t = sample_tokenizer();
    int trial;
    if (!t) SKIP("data/ not found");
    for (trial = 0; trial < 3000; trial++) {
        char s[200];
        size_t n = t_rand() % sizeof s, i, k;
        int32_t ids[202];
        ds_buf out = {0, 0, 0, 0};
        ds_error e;
        for (i = 0; i < n; i++) {
            static const char alpha[] = "the and 世界\n\r\t,.!0123456789";
            s[i] = (t_rand() % 2) ? alpha[t_rand() % (sizeof alpha - 1)] : (char)t_rand();
        }
        CHECKF(ds_tokenizer_encode(t, s, n, 0, ids, n + 2, &k, &e) == 0, "%s", e.msg);
        CHECK(ds_tokenizer_decode(t, ids, k, 0, &out, &e) == 0);
        CHECKF(out.len == n && (n == 0 || memcmp(out.data, s, n) == 0), "trial %d: round trip differs", trial);
        ds_buf_free(&out);
    }
}

static void test_roundtrip_corpus(void) {
    ds_tokenizer *t = sample_tokenizer();
    size_t len, n;
    char *c;
    int32_t *ids;
    ds_buf out = {0, 0, 0, 0};
    ds_error e;
    if (!t) SKIP("data/ not found");
    c = t_read("data/tang300.txt", &len);
    CHECK(c && encode_all(t, c, len, 0, &ids, &n));
    CHECK(n < len); /* it compresses */
    CHECK(ds_tokenizer_decode(t, ids, n, 0, &out, &e) == 0 && out.len == len && memcmp(out.data, c, len) == 0);
    ds_buf_free(&out);
    free(ids);
    free(c);
}

static void test_bpe_long_path_matches_short(void) {
    /* the heap path (long pieces) and the quadratic loop (short pieces) give the same ids */
    ds_tokenizer *t = sample_tokenizer();
    int trial;
    if (!t) SKIP("data/ not found");
    for (trial = 0; trial < 300; trial++) {
        char s[400];
        size_t n = 1 + t_rand() % sizeof s, i;
        int32_t a[400], b[400];
        long ka, kb;
        static const char alpha[] = "theandsoIlovelyaa";
        for (i = 0; i < n; i++) s[i] = (t_rand() % 8) ? alpha[t_rand() % (sizeof alpha - 1)] : (char)t_rand();
        t->bpe_small_max = 1 << 20;
        ka = ds__bpe(t, (const unsigned char *)s, n);
        CHECK(ka >= 0);
        memcpy(a, t->sym, (size_t)ka * sizeof(int32_t));
        t->bpe_small_max = 0;
        kb = ds__bpe(t, (const unsigned char *)s, n);
        CHECK(kb >= 0);
        memcpy(b, t->sym, (size_t)kb * sizeof(int32_t));
        t->bpe_small_max = 48;
        CHECKF(ka == kb && memcmp(a, b, (size_t)ka * sizeof(int32_t)) == 0, "trial %d differs", trial);
    }
}

static void test_special_tokens_are_text_by_default(void) {
    ds_tokenizer *t = sample_tokenizer();
    const char *s = "hi " DS_EOS_STRING " there";
    int32_t ids[128];
    size_t n, i, found = 0;
    ds_buf out = {0, 0, 0, 0};
    ds_error e;
    if (!t) SKIP("data/ not found");
    CHECK(ds_tokenizer_encode(t, s, strlen(s), 0, ids, 128, &n, &e) == 0);
    for (i = 0; i < n; i++) found += ds_tokenizer_is_special(t, ids[i]);
    CHECK(found == 0); /* plain text: no control token can be injected */
    CHECK(ds_tokenizer_encode(t, s, strlen(s), DS_ENCODE_ALLOW_SPECIAL | DS_ENCODE_BOS, ids, 128, &n, &e) == 0);
    CHECK(ids[0] == ds_tokenizer_bos(t));
    for (i = 0, found = 0; i < n; i++) found += ids[i] == ds_tokenizer_eos(t);
    CHECK(found == 1);
    CHECK(ds_tokenizer_decode(t, ids, n, 0, &out, &e) == 0);
    CHECK(out.len == strlen(DS_BOS_STRING) + strlen(s) && memcmp(out.data + strlen(DS_BOS_STRING), s, strlen(s)) == 0);
    out.len = 0;
    CHECK(ds_tokenizer_decode(t, ids, n, DS_DECODE_SKIP_SPECIAL, &out, &e) == 0);
    CHECK(out.len == strlen("hi  there") && memcmp(out.data, "hi  there", out.len) == 0);
    ds_buf_free(&out);
    CHECK_EQ_INT(ds_tokenizer_padded_vocab(t), 1024);
}

static void test_encode_errors(void) {
    ds_tokenizer *t = sample_tokenizer();
    int32_t ids[4], bad = 99999;
    size_t n;
    ds_buf out = {0, 0, 0, 0};
    ds_error e;
    if (!t) SKIP("data/ not found");
    CHECK(ds_tokenizer_encode(t, "hello world, again", 18, 0, ids, 2, &n, &e) == DS_ERR_RANGE && strstr(e.msg, "ids"));
    CHECK(ds_tokenizer_encode(t, NULL, 3, 0, ids, 4, &n, &e) == DS_ERR_INVALID);
    CHECK(ds_tokenizer_decode(t, &bad, 1, 0, &out, &e) == DS_ERR_INVALID && strstr(e.msg, "99999"));
    ds_buf_free(&out);
}

/* ---- tokenizer.json ------------------------------------------------------------------------- */

static void test_save_load_same_ids(void) {
    ds_tokenizer *t = sample_tokenizer(), *u;
    const char *path = tp("test_tokenizer.json");
    size_t len, n1, n2;
    char *c;
    int32_t *a, *b;
    ds_buf j1 = {0, 0, 0, 0}, j2 = {0, 0, 0, 0};
    ds_error e;
    if (!t) SKIP("data/ not found");
    CHECKF(ds_tokenizer_save(t, path, &e) == 0, "%s", e.msg);
    u = ds_tokenizer_load(path, &e);
    CHECKF(u, "%s", e.msg);
    c = t_read("data/tinyshakespeare.txt", &len);
    CHECK(c);
    len = 200000;
    CHECK(encode_all(t, c, len, 0, &a, &n1) && encode_all(u, c, len, 0, &b, &n2));
    CHECK(n1 == n2 && memcmp(a, b, n1 * sizeof(int32_t)) == 0);
    CHECK(ds_tokenizer_to_json(t, &j1, &e) == 0 && ds_tokenizer_to_json(u, &j2, &e) == 0);
    CHECK(j1.len == j2.len && memcmp(j1.data, j2.data, j1.len) == 0); /* save(load(save(t))) == save(t) */
    CHECK(ds_tokenizer_bos(u) == ds_tokenizer_bos(t) && ds_tokenizer_eos(u) == ds_tokenizer_eos(t));
    ds_buf_free(&j1);
    ds_buf_free(&j2);
    free(a);
    free(b);
    free(c);
    ds_tokenizer_free(u);
}

/* Mutations of a valid tokenizer.json: each must be refused with a message, never crash. */
static void test_malformed_tokenizer_json(void) {
    ds_tokenizer *t = train_on("aaabdaaabac hello hello world", 29, 256 + 6 + 2), *u;
    ds_buf j = {0, 0, 0, 0};
    ds_error e;
    size_t cut;
    static const char *edits[][2] = {
        {"\"type\": \"BPE\"", "\"type\": \"WordPiece\""},
        {"\"vocab\": {", "\"vocab\": [{"},
        {"\"merges\": [", "\"merges\": {\"x\": ["},
        {"\"!\": 33", "\"!\": 34"},                 /* duplicate id */
        {"\"!\": 33", "\"!\": 1e300"},              /* huge number */
        {"\"!\": 33", "\"!\": -1"},
        {"\"!\": 33", "\"!\": 33.5"},
        {"\"!\": 33", "\"!\": \"33\""},
        {"\"!\": 33", "\"!!\": 33"},                /* a missing byte, a gap nowhere: still an id for "!!"? */
        {"\"a a\"", "\"a zz\""},                    /* merge of an unknown token */
        {"\"a a\"", "\"a  a\""},
        {"\"a a\"", "42"},
        {"\"Regex\": \"\\\\s+$\"", "\"Regex\": \"\\\\s*$\""},
        {"\"individual_digits\": true", "\"individual_digits\": false"},
        {"\"lstrip\": false", "\"lstrip\": true"},
        {"\"id\": 262", "\"id\": 999999999999"},
        {"\"dropout\": null", "\"dropout\": 0.1"},
        {"\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}"},
        {"\"model\": {", "\"model\": 7, \"x\": {"},
    };
    size_t i;
    CHECK(t);
    CHECK(ds_tokenizer_to_json(t, &j, &e) == 0);
    for (i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const char *at = strstr(j.data, edits[i][0]);
        ds_buf m = {0, 0, 0, 0};
        CHECKF(at, "edit %zu: '%s' not found in the JSON", i, edits[i][0]);
        ds_buf_append(&m, j.data, (size_t)(at - j.data));
        ds_buf_puts(&m, edits[i][1]);
        ds_buf_puts(&m, at + strlen(edits[i][0]));
        memset(&e, 0, sizeof e);
        u = ds_tokenizer_from_json(m.data, m.len, &e);
        if (i == 8) { /* renaming "!" leaves byte 0x21 without a token: allowed (HF drops it too), and "!!" is new */
            CHECKF(u && u->byte_id['!'] == -1, "edit 8: %s", e.msg);
        } else {
            CHECKF(!u && e.code != DS_OK && e.msg[0], "edit %zu (%s) was accepted", i, edits[i][1]);
        }
        ds_tokenizer_free(u);
        ds_buf_free(&m);
    }
    for (cut = 0; cut < j.len; cut += 1 + cut / 8) { /* every truncation fails cleanly */
        memset(&e, 0, sizeof e);
        u = ds_tokenizer_from_json(j.data, cut, &e);
        CHECKF(!u && e.code == DS_ERR_FORMAT, "truncated at %zu: code %d", cut, e.code);
    }
    u = ds_tokenizer_load(tp("does-not-exist.json"), &e);
    CHECK(!u && e.code == DS_ERR_IO && strstr(e.msg, "does-not-exist"));
    ds_buf_free(&j);
    ds_tokenizer_free(t);
}

/* ---- the real DeepSeek LLM tokenizer -------------------------------------------------------- */

static ds_tokenizer *g_deepseek;
static int g_deepseek_tried;
static ds_tokenizer *deepseek_tokenizer(void) {
    if (!g_deepseek_tried) {
        ds_error e;
        g_deepseek_tried = 1;
        g_deepseek = ds_tokenizer_load(DEEPSEEK_TOKENIZER_JSON, &e);
        if (!g_deepseek && e.code != DS_ERR_IO) printf("  load failed: %s\n", e.msg);
    }
    return g_deepseek;
}

static int ids_are(ds_tokenizer *t, const char *s, int flags, const int32_t *want, size_t n_want) {
    int32_t ids[256];
    size_t n, i;
    ds_error e;
    if (ds_tokenizer_encode(t, s, strlen(s), flags, ids, 256, &n, &e)) return 0;
    if (n != n_want) return 0;
    for (i = 0; i < n; i++)
        if (ids[i] != want[i]) return 0;
    return 1;
}

static void test_deepseek_gotchas(void) {
    ds_tokenizer *t = deepseek_tokenizer();
    static const int32_t fuhrer[] = {37, 100014, 71, 6245}, digits[] = {16, 17, 18}, nl[] = {185, 185},
                         cjk[] = {17464, 207, 4997}, chat[] = {100000, 5726, 25, 11598, 185, 185, 77398, 25, 37727, 0, 100001};
    if (!t) SKIP("%s not found (the DeepSeek tokenizer is not redistributed)", DEEPSEEK_TOKENIZER_JSON);
    CHECK_EQ_INT(ds_tokenizer_vocab_size(t), 100015);
    CHECK_EQ_INT(ds_tokenizer_n_merges(t), 99757);
    CHECK_EQ_INT(ds_tokenizer_bos(t), 100000);
    CHECK_EQ_INT(ds_tokenizer_eos(t), 100001);
    CHECK_EQ_INT(ds_tokenizer_padded_vocab(t), 100032);
    CHECK(ids_are(t, "F\xC3\xBChrer", 0, fuhrer, 4)); /* "Führer": the added byte token ü is matched in raw text */
    CHECK(ids_are(t, "123", 0, digits, 3));
    CHECK(ids_are(t, "\n\n", 0, nl, 2));
    CHECK(ids_are(t, "Hello 世界", 0, cjk, 3)); /* the lone space before CJK is 'Ġ' (207) */
    CHECK(ids_are(t, "User: Hi\n\nAssistant: Hello!", DS_ENCODE_BOS | DS_ENCODE_EOS, chat, 11)); /* the chat template's ids */
}

static void test_deepseek_long_text_paths(void) {
    /* a long CJK run (one piece of thousands of bytes) goes through the heap path */
    ds_tokenizer *t = deepseek_tokenizer();
    size_t len, n1, n2;
    char *c;
    int32_t *a, *b;
    if (!t) SKIP("%s not found", DEEPSEEK_TOKENIZER_JSON);
    c = t_read("data/tang300.txt", &len);
    CHECK(c);
    { /* drop punctuation and newlines: the poems become one long CJK piece */
        size_t i, o = 0;
        for (i = 0; i < len; i++) if ((unsigned char)c[i] >= 0xE4 && i + 2 < len && !((unsigned char)c[i] == 0xEF)) {
            memmove(c + o, c + i, 3); o += 3; i += 2;
        }
        len = o < 30000 ? o : 30000;
    }
    CHECK(encode_all(t, c, len, 0, &a, &n1));
    t->bpe_small_max = 1 << 30;
    CHECK(encode_all(t, c, len, 0, &b, &n2));
    t->bpe_small_max = 48;
    CHECK(n1 == n2 && memcmp(a, b, n1 * sizeof(int32_t)) == 0);
    free(a);
    free(b);
    free(c);
}

/* ---- fixtures made by HF tokenizers (tools/check_hf.sh, FIXTURES=1 make check-hf) ----------- */

/* the tokenizer 01_tokenizer trains by default: the train split of each file, 4096 tokens */
static ds_tokenizer *train_like_example01(void) {
    static const char *files[] = {"data/tinyshakespeare.txt", "data/tang300.txt", "data/lunyu.txt"};
    ds_error e;
    ds_bpe_trainer *tr = ds_bpe_trainer_new(&e);
    ds_tokenizer *t;
    size_t f;
    for (f = 0; f < 3; f++) {
        size_t len;
        char *c = t_read(files[f], &len);
        if (!c) { ds_bpe_trainer_free(tr); return NULL; }
        ds_bpe_trainer_feed(tr, c, ds_split_point(c, len, 0.9), &e);
        free(c);
    }
    t = ds_bpe_trainer_train(tr, 4096, &e);
    ds_bpe_trainer_free(tr);
    return t;
}

static int matches_fixture(ds_tokenizer *t, const char *ids_path, char *why, size_t why_len) {
    size_t len, flen, n, i;
    char *text = t_read("tests/fixtures/mixed.txt", &len), *fx = t_read(ids_path, &flen), *p;
    int32_t *ids;
    int ok = 1;
    if (!text || !fx) { snprintf(why, why_len, "fixture files missing"); free(text); free(fx); return 0; }
    ids = (int32_t *)malloc((len + 2) * sizeof(int32_t));
    if (ds_tokenizer_encode(t, text, len, DS_ENCODE_ALLOW_SPECIAL, ids, len + 2, &n, NULL)) ok = 0;
    for (i = 0, p = fx; ok && i < n; i++) {
        long v = strtol(p, &p, 10);
        if (v != ids[i]) { snprintf(why, why_len, "id %zu: HF %ld, deepseek.h %d", i, v, (int)ids[i]); ok = 0; }
    }
    while (ok && *p == '\n') p++;
    if (ok && *p) { snprintf(why, why_len, "HF has more ids than the %zu of deepseek.h", n); ok = 0; }
    free(ids);
    free(text);
    free(fx);
    return ok;
}

static void test_hf_fixture_trained(void) {
    char why[256] = "";
    ds_tokenizer *t = train_like_example01();
    if (!t) SKIP("data/ not found");
    CHECKF(matches_fixture(t, "tests/fixtures/hf_trained4096_ids.txt", why, sizeof why), "%s", why);
    ds_tokenizer_free(t);
}

static void test_hf_fixture_deepseek(void) {
    char why[256] = "";
    ds_tokenizer *t = deepseek_tokenizer();
    if (!t) SKIP("%s not found", DEEPSEEK_TOKENIZER_JSON);
    CHECKF(matches_fixture(t, "tests/fixtures/hf_deepseek_ids.txt", why, sizeof why), "%s", why);
}

static void test_split_point(void) {
    const char *s = "line one\nline two\nline three\nfour\n";
    size_t cut = ds_split_point(s, strlen(s), 0.5);
    CHECK(cut > 0 && s[cut - 1] == '\n');
    CHECK(cut >= strlen(s) / 2);
    CHECK(ds_split_point(s, strlen(s), 1.0) == strlen(s));
    CHECK(ds_split_point(s, strlen(s), 0.0) == 0);
}

static void suite_tokenizer(void) {
    RUN(test_pretokenizer_rules);
    RUN(test_pretokenizer_covers_input);
    RUN(test_minbpe_example);
    RUN(test_trainer_matches_reference);
    RUN(test_trainer_reference_on_corpus);
    RUN(test_trainer_bad_args);
    RUN(test_roundtrip_random_bytes);
    RUN(test_roundtrip_corpus);
    RUN(test_bpe_long_path_matches_short);
    RUN(test_special_tokens_are_text_by_default);
    RUN(test_encode_errors);
    RUN(test_save_load_same_ids);
    RUN(test_malformed_tokenizer_json);
    RUN(test_deepseek_gotchas);
    RUN(test_deepseek_long_text_paths);
    RUN(test_hf_fixture_trained);
    RUN(test_hf_fixture_deepseek);
    RUN(test_split_point);
}

/* the shared tokenizers live until every suite that uses them (tokenizer, align) has run */
static void free_shared_tokenizers(void) {
    ds_tokenizer_free(g_tok);
    ds_tokenizer_free(g_deepseek);
    g_tok = g_deepseek = NULL, g_deepseek_tried = 0;
}
