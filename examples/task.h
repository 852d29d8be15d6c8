/* task.h - the alignment examples' task: "write the word W K times", generated, not shipped.
 *
 * A tiny model can learn it in a minute on 2 cores, success is exact (the reply must be W
 * repeated exactly K times, then EOS), and its failures are the two the paper cares about in
 * §4-5: a wrong answer (the wrong count) and a reply that repeats without ending. Preference
 * pairs reject exactly those. The (word, count, phrasing) combinations are split into train and
 * held-out ones, so a held-out prompt is never seen in training.
 *
 * Include after deepseek.h (with its implementation) and common.h. */
#ifndef DS_EXAMPLES_TASK_H
#define DS_EXAMPLES_TASK_H

static const char *const TASK_WORDS[] = {"cat", "dog", "sun", "moon", "king", "love", "rose", "star", "bird", "fish", "tree", "ship",
                                         "gold", "wind", "fire", "rain", "night", "day", "heart", "sword", "crown", "horse", "lord",
                                         "lady", "bell", "book", "door", "hand", "eye", "song", "sea", "home"};
#define TASK_N_WORDS ((int)(sizeof TASK_WORDS / sizeof TASK_WORDS[0]))
#define TASK_MAX_K 12
static const char *const TASK_TEMPLATES[] = {"Write the word %s %d times.", "Say %s %d times.", "Repeat the word %s %d times."};

typedef struct { int word, k, tmpl; } task_item;

/* about one (word, k, phrasing) combination in eight is held out, chosen by a fixed hash */
EX_MAYBE_UNUSED static int task_heldout(int word, int k, int tmpl) { return (int)(((uint64_t)((word * 31 + k) * 7 + tmpl) * 0x9E3779B97F4A7C15ull) >> 61) == 0; }

EX_MAYBE_UNUSED static task_item task_draw(uint64_t *rng, int heldout) {
    task_item it;
    do {
        it.word = (int)(ds_rng_next(rng) % TASK_N_WORDS), it.k = 1 + (int)(ds_rng_next(rng) % TASK_MAX_K), it.tmpl = (int)(ds_rng_next(rng) % 3);
    } while (task_heldout(it.word, it.k, it.tmpl) != heldout);
    return it;
}

EX_MAYBE_UNUSED static void task_prompt(const task_item *it, char *buf, size_t cap) { snprintf(buf, cap, TASK_TEMPLATES[it->tmpl], TASK_WORDS[it->word], it->k); }

/* the word k times, separated by spaces */
EX_MAYBE_UNUSED static void task_answer(int word, int k, char *buf, size_t cap) {
    size_t n = 0;
    int i;
    buf[0] = 0;
    for (i = 0; i < k && n + 16 < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? " %s" : "%s", TASK_WORDS[word]);
}

EX_MAYBE_UNUSED static void json_msg(ds_buf *b, const char *role, const char *content) {
    ds_buf_printf(b, "{\"role\": \"%s\", \"content\": ", role);
    ds_buf_json_string(b, content, strlen(content));
    ds_buf_puts(b, "}");
}

/* a wrong count for it: k - 2 .. k + 2, at least 1, never k */
EX_MAYBE_UNUSED static int task_miscount(const task_item *it, uint64_t *rng) {
    int wrong;
    do wrong = it->k + (int)(ds_rng_next(rng) % 5) - 2; while (wrong < 1 || wrong == it->k);
    return wrong;
}

/* one preference row {"prompt": [user], "chosen": [assistant], "rejected": [assistant]} */
EX_MAYBE_UNUSED static void pref_row(ds_buf *b, const char *prompt, const char *chosen, const char *rejected) {
    ds_buf_puts(b, "{\"prompt\": ["), json_msg(b, "user", prompt);
    ds_buf_puts(b, "], \"chosen\": ["), json_msg(b, "assistant", chosen);
    ds_buf_puts(b, "], \"rejected\": ["), json_msg(b, "assistant", rejected);
    ds_buf_puts(b, "]}\n");
}

/* writes the rows gathered in b (atomically) and frees b */
EX_MAYBE_UNUSED static int write_rows(const char *path, ds_buf *b, ds_error *err) {
    int rc = b->oom ? ds_error_set(err, DS_ERR_NOMEM, "out of memory") : ds_write_file_atomic(path, b->data, b->len, err);
    ds_buf_free(b);
    return rc;
}

/* n SFT rows {"messages": [user, assistant]} (TRL's conversational format) from the train split */
EX_MAYBE_UNUSED static int task_write_sft(const char *path, int n, uint64_t seed, ds_error *err) {
    ds_buf b = {0, 0, 0, 0};
    char p[128], a[256];
    int i;
    for (i = 0; i < n; i++) {
        task_item it = task_draw(&seed, 0);
        task_prompt(&it, p, sizeof p), task_answer(it.word, it.k, a, sizeof a);
        ds_buf_puts(&b, "{\"messages\": [");
        json_msg(&b, "user", p), ds_buf_puts(&b, ", "), json_msg(&b, "assistant", a);
        ds_buf_puts(&b, "]}\n");
    }
    return write_rows(path, &b, err);
}

/* n preference rows {"prompt": [user], "chosen": [assistant], "rejected": [assistant]}; the
   rejected reply is the wrong count (half) or the word repeated far past K (half) */
EX_MAYBE_UNUSED static int task_write_pref(const char *path, int n, uint64_t seed, int heldout, ds_error *err) {
    ds_buf b = {0, 0, 0, 0};
    char p[128], a[512], r[512];
    int i;
    for (i = 0; i < n; i++) {
        task_item it = task_draw(&seed, heldout);
        int wrong = ds_rng_next(&seed) % 2 ? task_miscount(&it, &seed) : it.k + 8 + (int)(ds_rng_next(&seed) % 8);
        task_prompt(&it, p, sizeof p), task_answer(it.word, it.k, a, sizeof a), task_answer(it.word, wrong, r, sizeof r);
        pref_row(&b, p, a, r);
    }
    return write_rows(path, &b, err);
}

/* On-policy pairs, as preference data is usually made: the model answers n training prompts
   (greedy); where it is wrong (a miscount, or no end), its own reply is the rejected one and
   the right answer the chosen one; where it is right, the rejected reply is a synthetic miscount
   (k - 2 .. k + 2). *n_wrong gets how many replies were the model's own mistakes. */
EX_MAYBE_UNUSED static int task_write_pref_onpolicy(ds_model *m, ds_tokenizer *tok, const char *path, int n, uint64_t seed, int max_new, ds_pool *pool,
                                    int *n_wrong, ds_error *err) {
    ds_buf b = {0, 0, 0, 0};
    char p[128], a[512], r[512];
    int32_t *out = (int32_t *)malloc(sizeof(int32_t) * (size_t)max_new);
    int i, rc = DS_OK;
    *n_wrong = 0;
    if (!out) return ds_error_set(err, DS_ERR_NOMEM, "out of memory");
    for (i = 0; i < n && !rc; i++) {
        task_item it = task_draw(&seed, 0);
        ds_message msg;
        ds_seq s;
        ds_buf reply = {0, 0, 0, 0};
        int n_out = 0, ended;
        task_prompt(&it, p, sizeof p), task_answer(it.word, it.k, a, sizeof a);
        msg.role = "user", msg.content = p;
        memset(&s, 0, sizeof s);
        if (!(rc = ds_chat_render(tok, &msg, 1, 1, &s, err)))
            rc = ds_generate(m, s.ids, s.n, max_new, 0.0, 1.0, 0, ds_tokenizer_eos(tok), NULL, NULL, out, &n_out, pool, err);
        ds_seq_free(&s);
        if (rc) break;
        ended = n_out > 0 && out[n_out - 1] == ds_tokenizer_eos(tok);
        ds_tokenizer_decode(tok, out, (size_t)n_out, DS_DECODE_SKIP_SPECIAL, &reply, err);
        if (reply.len >= 1 && reply.data[0] == ' ' && (!ended || strcmp(reply.data + 1, a)) && reply.len < sizeof r &&
            ds_utf8_valid(reply.data, reply.len)) {
            memcpy(r, reply.data + 1, reply.len); /* the model's own mistake */
            ++*n_wrong;
        } else {
            task_answer(it.word, task_miscount(&it, &seed), r, sizeof r);
        }
        ds_buf_free(&reply);
        pref_row(&b, p, a, r);
    }
    free(out);
    if (rc) { ds_buf_free(&b); return rc; }
    return write_rows(path, &b, err);
}

typedef struct {
    double accuracy;   /* exact match: the word K times, then EOS */
    double repetition; /* the paper's repetition ratio: no EOS within the limit, and the reply loops */
    int n;
} task_score;

/* Greedy replies to n held-out prompts (the same ones for every model: a fixed seed). show > 0
   prints that many prompt/reply pairs. */
EX_MAYBE_UNUSED static int task_eval(ds_model *m, ds_tokenizer *tok, int n, int max_new, int show, ds_pool *pool, task_score *sc, ds_error *err) {
    uint64_t rng = 0xE7A1;
    int32_t *out = (int32_t *)malloc(sizeof(int32_t) * (size_t)max_new);
    int i, ok = 0, rep = 0, rc = DS_OK;
    if (!out) return ds_error_set(err, DS_ERR_NOMEM, "out of memory");
    for (i = 0; i < n && !rc; i++) {
        task_item it = task_draw(&rng, 1);
        char p[128], want[256];
        ds_message msg;
        ds_seq s;
        ds_buf reply = {0, 0, 0, 0};
        int n_out = 0, ended;
        task_prompt(&it, p, sizeof p), task_answer(it.word, it.k, want, sizeof want);
        msg.role = "user", msg.content = p;
        memset(&s, 0, sizeof s);
        if ((rc = ds_chat_render(tok, &msg, 1, 1, &s, err)) ||
            (rc = ds_generate(m, s.ids, s.n, max_new, 0.0, 1.0, 0, ds_tokenizer_eos(tok), NULL, NULL, out, &n_out, pool, err))) {
            ds_seq_free(&s);
            break;
        }
        ended = n_out > 0 && out[n_out - 1] == ds_tokenizer_eos(tok);
        ds_tokenizer_decode(tok, out, (size_t)n_out, DS_DECODE_SKIP_SPECIAL, &reply, err);
        /* the template's reply is " {answer}": compare after the one leading space */
        if (ended && reply.len >= 1 && reply.data[0] == ' ' && !strcmp(reply.data + 1, want)) ok++;
        if (!ended && ds_is_repetitive(out, n_out)) rep++;
        if (i < show) printf("    User: %s\n    Assistant:%s%s\n", p, reply.len ? reply.data : "", ended ? "" : " [...no end]");
        ds_buf_free(&reply);
        ds_seq_free(&s);
    }
    free(out);
    sc->n = n, sc->accuracy = (double)ok / n, sc->repetition = (double)rep / n;
    return rc;
}

EX_MAYBE_UNUSED static void ex_shuffle(int *idx, int n, uint64_t *rng) {
    int i;
    for (i = 0; i < n; i++) idx[i] = i;
    for (i = n - 1; i > 0; i--) {
        int j = (int)(ds_rng_next(rng) % (uint64_t)(i + 1)), t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
}

EX_MAYBE_UNUSED static void ex_report_bad_line(void *ctx, long line, const char *msg) { fprintf(stderr, "%s:%ld: skipped: %s\n", (const char *)ctx, line, msg); }
#endif
