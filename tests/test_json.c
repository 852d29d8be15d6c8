/* test_json.c - the JSON reader and writer. */

static ds_json_doc *jparse(const char *s, ds_error *e) { return ds_json_parse(s, strlen(s), e); }

static void test_json_values(void) {
    ds_error e;
    ds_json_doc *d = jparse(" {\"a\": [1, -2.5e3, true, false, null], \"b\": \"x\\ty\", \"c\": {}, \"d\": []} ", &e);
    const ds_json *a, *k;
    int64_t v;
    CHECKF(d, "%s", e.msg);
    CHECK(d->root->type == DS_JSON_OBJECT && d->root->len == 4);
    a = ds_json_get(d->root, "a");
    CHECK(a && a->type == DS_JSON_ARRAY && a->len == 5);
    k = a->child;
    CHECK(ds_json_int(k, 0, 10, &v) && v == 1);
    k = k->next;
    CHECK(k->type == DS_JSON_NUMBER && k->num == -2500.0 && !ds_json_int(k, 0, 10, &v));
    CHECK(k->next->type == DS_JSON_TRUE && k->next->next->type == DS_JSON_FALSE && k->next->next->next->type == DS_JSON_NULL);
    CHECK(ds_json_get(d->root, "b")->len == 3 && memcmp(ds_json_get(d->root, "b")->str, "x\ty", 3) == 0);
    CHECK(ds_json_get(d->root, "c")->type == DS_JSON_OBJECT && ds_json_get(d->root, "c")->len == 0);
    CHECK(ds_json_get(d->root, "zz") == NULL);
    ds_json_free(d);
}

static void test_json_escapes_and_utf8(void) {
    ds_error e;
    /* \u00e9 = é (2 bytes), \u4e16 = 世 (3 bytes), a surrogate pair = U+1F600 (4 bytes), \u0000 */
    ds_json_doc *d = jparse("\"\\u00e9\\u4e16\\ud83d\\ude00\\u0000\\/\\\"\\\\\"", &e);
    CHECKF(d, "%s", e.msg);
    CHECK(d->root->len == 2 + 3 + 4 + 1 + 1 + 1 + 1);
    CHECK(memcmp(d->root->str, "\xC3\xA9\xE4\xB8\x96\xF0\x9F\x98\x80\0/\"\\", d->root->len) == 0);
    ds_json_free(d);
    d = jparse("\"raw UTF-8: h\xC3\xA9 \xE4\xB8\x96 \xF0\x9F\x98\x80\"", &e);
    CHECKF(d, "%s", e.msg);
    ds_json_free(d);
}

static void test_json_numbers(void) {
    static const struct { const char *s; double v; } ok[] = {
        {"0", 0}, {"-0", -0.0}, {"1e-06", 1e-6}, {"0.006", 0.006}, {"10000.0", 10000}, {"3.2e-4", 3.2e-4},
        {"123456789012345678901234567890", 1.2345678901234568e29}, {"1.7976931348623157e308", 1.7976931348623157e308},
        {"4.9e-324", 4.9e-324}, {"0.1", 0.1}, {"2.5E+2", 250},
    };
    size_t i;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ds_error e;
        ds_json_doc *d = jparse(ok[i].s, &e);
        CHECKF(d, "%s: %s", ok[i].s, e.msg);
        CHECKF(d->root->num == ok[i].v, "%s parsed as %.17g", ok[i].s, d->root->num);
        ds_json_free(d);
    }
}

static void test_json_rejects(void) {
    static const char *bad[] = {
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "+1", "nul", "tru", "\"abc", "\"a\tb\"",
        "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\u12\"", "[1 2]", "{\"a\" 1}", "{1:2}",
        "1e999", "-1e999", "[] []", "\"\xC0\xAF\"", "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"", "\"\xE4\xB8\"", "NaN",
        "Infinity", "'a'", "[1,,2]",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ds_error e;
        ds_json_doc *d;
        memset(&e, 0, sizeof e);
        d = jparse(bad[i], &e);
        CHECKF(!d, "accepted bad JSON #%zu: %s", i, bad[i]);
        CHECKF(e.code == DS_ERR_FORMAT && strstr(e.msg, "line"), "#%zu: code %d msg '%s'", i, e.code, e.msg);
    }
}

static void test_json_error_position(void) {
    ds_error e;
    ds_json_doc *d = jparse("{\n  \"a\": 1,\n  \"b\": tru\n}", &e);
    CHECK(!d);
    CHECKF(strstr(e.msg, "line 3, column 8") != NULL, "%s", e.msg);
}

static void test_json_depth_limit(void) {
    char buf[2 * (DS_JSON_MAX_DEPTH + 10) + 1];
    int depth, i;
    for (depth = DS_JSON_MAX_DEPTH; depth <= DS_JSON_MAX_DEPTH + 1; depth++) {
        ds_error e;
        ds_json_doc *d;
        for (i = 0; i < depth; i++) buf[i] = '[';
        for (i = 0; i < depth; i++) buf[depth + i] = ']';
        d = ds_json_parse(buf, (size_t)(2 * depth), &e);
        if (depth == DS_JSON_MAX_DEPTH) { CHECKF(d, "depth %d refused: %s", depth, e.msg); }
        else { CHECK(!d && strstr(e.msg, "deep")); }
        ds_json_free(d);
    }
}

static void test_json_writer_roundtrip(void) {
    /* every byte string written by the writer parses back to itself (valid UTF-8) or to the
       same text with U+FFFD for each invalid byte */
    int trial;
    for (trial = 0; trial < 500; trial++) {
        char s[64];
        size_t n = t_rand() % sizeof s, i;
        ds_buf b = {0, 0, 0, 0};
        ds_error e;
        ds_json_doc *d;
        for (i = 0; i < n; i++) {
            uint64_t r = t_rand();
            s[i] = (char)(r % 4 == 0 ? r >> 8 : (r % 4 == 1 ? r % 32 : 'a' + r % 26));
        }
        ds_buf_json_string(&b, s, n);
        d = ds_json_parse(b.data, b.len, &e);
        CHECKF(d, "writer output did not parse: %s", e.msg);
        if (ds_utf8_valid(s, n)) CHECK(d->root->len == n && memcmp(d->root->str, s, n) == 0);
        else CHECK(ds_utf8_valid(d->root->str, d->root->len));
        ds_json_free(d);
        ds_buf_free(&b);
    }
}

static void suite_json(void) {
    RUN(test_json_values);
    RUN(test_json_escapes_and_utf8);
    RUN(test_json_numbers);
    RUN(test_json_rejects);
    RUN(test_json_error_position);
    RUN(test_json_depth_limit);
    RUN(test_json_writer_roundtrip);
}
