/* test_dp.c - §2.4 data parallelism on one rank (the MPI tests, tests/mpi/run.sh, run 1-4 ranks)
   and the asynchronous checkpoint writer: a background save holds the state of the step it was
   started at, and a kill -9 at any moment of it leaves a loadable checkpoint. */
#include <sys/wait.h>
#include <time.h>

/* micro-batch j of step s: 2 x 16 tokens of a fixed pattern (ck_batch's recipe, shifted) */
static void dp_batch(int32_t *in, int32_t *tg, int s, int j) { ck_batch(in, tg, 2 * s + j); }

/* one process accumulating 2 micro-batches through ds_dp agrees with backward(1/2) twice +
   ds_model_step to rounding (the group divides by the global sum of weights instead) */
static void test_dp_one_rank_matches_accumulation(void) {
    ds_model *a = ck_model(3), *b = ck_model(3);
    ds_adamw opt = ds_adamw_default();
    ds_dp *d;
    ds_error e;
    ds_float *pa, *pb;
    double worst = 0;
    size_t i, n;
    int s, j;
    CHECK(a && b);
    d = ds_dp_new(a, 2, &e);
    CHECKF(d, "%s", e.msg);
    CHECK(ds_dp_world(d) == 1 && ds_dp_rank(d) == 0 && ds_dp_local(d) == 2);
    for (s = 0; s < 4; s++) {
        double la = 0, lb = 0, l, ga = 0, gb = 0;
        for (j = 0; j < 2; j++) {
            int32_t in[32], tg[32];
            dp_batch(in, tg, s, j);
            CHECKF(ds_dp_micro(d, in, tg, NULL, 2, 16, NULL, &e) == DS_OK, "%s", e.msg);
            if (j == 0) ds_model_zero_grad(b);
            CHECKF(ds_model_forward(b, in, tg, NULL, 2, 16, NULL, &l, &e) == DS_OK && ds_model_backward(b, 0.5f, NULL, &e) == DS_OK, "%s", e.msg);
            lb += 0.5 * l;
        }
        CHECKF(ds_dp_step(d, &opt, 3e-3, &la, &ga, NULL, &e) == DS_OK, "%s", e.msg);
        CHECKF(ds_model_step(b, &opt, 3e-3, &gb, NULL, &e) == DS_OK, "%s", e.msg);
        CHECKF(fabs(la - lb) < 1e-6 * fabs(lb), "step %d: loss %.9g (group) vs %.9g (accumulation)", s, la, lb);
        CHECKF(fabs(ga - gb) < 1e-4 * gb, "step %d: gradient norm %.9g vs %.9g", s, ga, gb);
    }
    CHECK(ds_model_steps_done(a) == 4);
    pa = t_array(a, DS_PARAMS), pb = t_array(b, DS_PARAMS), n = ds_model_n_params(a);
    CHECK(pa && pb);
    for (i = 0; i < n; i++) {
        double dlt = fabs((double)pa[i] - (double)pb[i]);
        if (dlt > worst) worst = dlt;
    }
    free(pa), free(pb);
    CHECKF(worst < 1e-5, "parameters differ by up to %g", worst);
    ds_model_free(a);
    ds_model_free(b);
    ds_dp_free(d);
}

/* a micro-batch that fails (a token out of range) fails the step, which leaves the model as it
   was; the next step is a normal one */
static void test_dp_failure_fails_the_step_untouched(void) {
    ds_model *a = ck_model(4), *ref = ck_model(4);
    ds_adamw opt = ds_adamw_default();
    ds_dp *d;
    ds_error e;
    int32_t in[32], tg[32];
    double loss;
    CHECK(a && ref);
    CHECKF((d = ds_dp_new(a, 2, &e)) != NULL, "%s", e.msg);
    dp_batch(in, tg, 0, 0);
    CHECK(ds_dp_micro(d, in, tg, NULL, 2, 16, NULL, &e) == DS_OK);
    in[5] = 1000000;
    CHECK(ds_dp_micro(d, in, tg, NULL, 2, 16, NULL, &e) != DS_OK);
    memset(&e, 0, sizeof e);
    CHECK(ds_dp_step(d, &opt, 3e-3, &loss, NULL, NULL, &e) != DS_OK);
    CHECKF(strstr(e.msg, "1000000") != NULL, "the step's message names the bad token: %s", e.msg);
    CHECK(t_same(a, ref, DS_PARAMS) && ds_model_steps_done(a) == 0);
    /* too few micro-batches before a step: refused the same way */
    dp_batch(in, tg, 0, 0);
    CHECK(ds_dp_micro(d, in, tg, NULL, 2, 16, NULL, &e) == DS_OK);
    memset(&e, 0, sizeof e);
    CHECK(ds_dp_step(d, &opt, 3e-3, &loss, NULL, NULL, &e) != DS_OK);
    CHECKF(strstr(e.msg, "1 of this rank's 2 micro-batches") != NULL, "%s", e.msg);
    CHECK(t_same(a, ref, DS_PARAMS));
    dp_batch(in, tg, 0, 0);
    CHECK(ds_dp_micro(d, in, tg, NULL, 2, 16, NULL, &e) == DS_OK);
    dp_batch(in, tg, 0, 1);
    CHECK(ds_dp_micro(d, in, tg, NULL, 2, 16, NULL, &e) == DS_OK);
    CHECKF(ds_dp_step(d, &opt, 3e-3, &loss, NULL, NULL, &e) == DS_OK, "%s", e.msg);
    CHECK(!t_same(a, ref, DS_PARAMS) && ds_model_steps_done(a) == 1);
    /* refusals */
    CHECK(ds_dp_new(a, 2, &e) == NULL); /* already in a group */
    CHECK(ds_dp_new(ref, 0, &e) == NULL);
    ds_model_free(a); /* the model first: the group notices */
    CHECK(ds_dp_micro(d, in, tg, NULL, 2, 16, NULL, &e) != DS_OK);
    ds_dp_free(d);
    ds_model_free(ref);
}

/* n bytes of two files are equal */
static int dp_same_file(const char *a, const char *b) {
    size_t la, lb;
    char *x = t_read(a, &la), *y = t_read(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x), free(y);
    return same;
}

/* ck_steps without the loss array (any number of steps) */
static int dp_train(ds_model *m, int from, int to, ds_error *e) {
    ds_adamw opt = ds_adamw_default();
    int s;
    for (s = from; s < to; s++) {
        int32_t in[32], tg[32];
        double loss;
        ck_batch(in, tg, s);
        ds_model_zero_grad(m);
        if (ds_model_forward(m, in, tg, NULL, 2, 16, NULL, &loss, e) || ds_model_backward(m, 1.0f, NULL, e) ||
            ds_model_step(m, &opt, 3e-3, NULL, NULL, e))
            return 0;
    }
    return 1;
}

/* a background save started at step 3 while steps 4-8 run: the same bytes as a synchronous save of
   step 3, and it loads back as step 3's state */
static void test_saver_snapshot_is_its_step(void) {
    ds_model *m = ck_model(6), *c;
    ds_saver *s = ds_saver_new(NULL);
    ds_train_state st, st2;
    ds_error e;
    ds_float *p3;
    const char *files[] = {"config.json", "model.safetensors", "trainer_state.safetensors", "tokenizer.json"};
    char a[512], b[512];
    double secs;
    size_t k;
    ds_tokenizer *tok = ds_tokenizer_from_merges(NULL, 0, &e); /* the byte alphabet alone */
    CHECK(m && s && tok);
    CHECKF(dp_train(m, 0, 3, &e), "%s", e.msg);
    memset(&st, 0, sizeof st);
    st.step = 3, st.rng = 77, snprintf(st.run, sizeof st.run, "saver test");
    CHECKF(ds_checkpoint_save(m, tok, &st, tp("sync3"), DS_DTYPE_F32, &e) == DS_OK, "%s", e.msg);
    p3 = t_array(m, DS_PARAMS);
    CHECKF(ds_saver_start(s, m, tok, &st, tp("async3"), DS_DTYPE_F32, &e) == DS_OK, "%s", e.msg);
    st.step = 999; /* the snapshot is taken: the caller's state may change */
    CHECKF(dp_train(m, 3, 8, &e), "%s", e.msg);
    CHECKF(ds_saver_wait(s, &secs, &e) == DS_OK, "%s", e.msg);
    CHECK(ds_saver_wait(s, NULL, &e) == DS_OK && !ds_saver_busy(s)); /* (a result is returned once) */
    for (k = 0; k < 4; k++) {
        snprintf(a, sizeof a, "%s/%s", tp("sync3"), files[k]);
        snprintf(b, sizeof b, "%s/%s", tp("async3"), files[k]);
        CHECKF(dp_same_file(a, b), "%s differs from the synchronous save's", files[k]);
    }
    c = ds_checkpoint_load(tp("async3"), 2, 16, &st2, &e);
    CHECKF(c, "%s", e.msg);
    CHECK(st2.step == 3 && st2.rng == 77 && ds_model_steps_done(c) == 3);
    {
        ds_float *q = t_array(c, DS_PARAMS);
        CHECK(q && p3 && memcmp(q, p3, ds_model_n_params(c) * sizeof(ds_float)) == 0);
        free(q);
    }
    /* a failing background save is reported by wait (and the next start) */
    CHECK(ds_saver_start(s, m, NULL, &st, tp("no/such/dir/ckpt"), DS_DTYPE_F32, &e) == DS_OK);
    memset(&e, 0, sizeof e);
    CHECK(ds_saver_wait(s, NULL, &e) != DS_OK && strstr(e.msg, "no/such/dir") != NULL);
    free(p3);
    ds_model_free(c);
    ds_saver_free(s);
    ds_model_free(m);
    ds_tokenizer_free(tok);
}

/* a child trains and saves in the background at every chance; kill -9 at random moments: the
   checkpoint left always loads, and holds exactly the state of the step it names */
static void test_saver_kill9_keeps_last_good(void) {
    int trial, mid_write = 0;
    uint64_t r = 12345;
    for (trial = 0; trial < 6; trial++) {
        char dir[512];
        pid_t pid;
        int status, waited = 0;
        struct timespec ts;
        ds_train_state st;
        ds_error e;
        ds_model *got, *ref;
        snprintf(dir, sizeof dir, "%s", tp("kill9"));
        rm_tree(dir); /* the last trial's checkpoint and whatever its kill left beside it: a fresh start */
        rm_tree(tp("kill9.tmp"));
        rm_tree(tp("kill9.old"));
        fflush(stdout);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) { /* the child: step, and keep a background save going */
            ds_model *m = ck_model(8);
            ds_saver *s = ds_saver_new(NULL);
            ds_train_state cs;
            int step;
            memset(&cs, 0, sizeof cs);
            for (step = 0; step < 100000 && m && s; step++) {
                if (!dp_train(m, step, step + 1, &e)) _exit(3);
                cs.step = step + 1;
                if (!ds_saver_busy(s)) {
                    if (ds_saver_wait(s, NULL, &e)) _exit(4);
                    if (ds_saver_start(s, m, NULL, &cs, dir, DS_DTYPE_F32, &e)) _exit(5);
                }
            }
            _exit(0);
        }
        /* wait for a first checkpoint, then a random 0-40 ms more */
        while (waited < 5000) {
            struct stat sb;
            char p[600];
            snprintf(p, sizeof p, "%s/trainer_state.safetensors", dir);
            if (stat(p, &sb) == 0) break;
            ts.tv_sec = 0, ts.tv_nsec = 1000000;
            nanosleep(&ts, NULL);
            waited++;
        }
        ts.tv_sec = 0, ts.tv_nsec = (long)(ds_rng_next(&r) % 40) * 1000000L;
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        {
            char p[600];
            struct stat sb;
            snprintf(p, sizeof p, "%s.tmp", dir);
            mid_write += stat(p, &sb) == 0; /* the kill landed inside a save */
        }
        CHECKF(WIFSIGNALED(status), "trial %d: the child ended before the kill (status %d)", trial, status);
        got = ds_checkpoint_load(dir, 2, 16, &st, &e);
        CHECKF(got, "trial %d: %s", trial, e.msg);
        CHECK(st.step >= 1 && ds_model_steps_done(got) == st.step);
        ref = ck_model(8);
        CHECKF(dp_train(ref, 0, (int)st.step, &e), "%s", e.msg);
        CHECKF(t_same(got, ref, DS_PARAMS) && t_same(got, ref, DS_ADAM_M) && t_same(got, ref, DS_ADAM_V),
               "trial %d: the checkpoint of step %ld is not that step's state", trial, st.step);
        ds_model_free(got);
        ds_model_free(ref);
    }
    printf("  6 kills, %d of them inside a background save; every checkpoint loaded as its step\n", mid_write);
}

static void suite_dp(void) {
    RUN(test_dp_one_rank_matches_accumulation);
    RUN(test_dp_failure_fails_the_step_untouched);
    RUN(test_saver_snapshot_is_its_step);
    RUN(test_saver_kill9_keeps_last_good);
}
