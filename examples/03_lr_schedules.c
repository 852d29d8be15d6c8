/* 03_lr_schedules.c - paper §2.3: the multi-step schedule against cosine, and why multi-step
 * makes continual training cheap.
 *
 *   build/03_lr_schedules [--steps 500] [--threads 2] [--out build/schedules] ...   (--help)
 *
 * 1. The same model, data and budget under the multi-step schedule (peak, then 31.6% after 80%
 *    of the steps, 10% after 90%) and under cosine (down to 10%): the paper finds the final
 *    losses essentially equal (a 1.6B model on 100B tokens).
 * 2. Continual training: with multi-step, the first 80% of a run does not depend on its length.
 *    Stage 1 of an N-step run is trained once and checkpointed; from that checkpoint one branch
 *    finishes the N-step run and another continues to 2N steps. The N-step branch must equal the
 *    N-step run of part 1 bit for bit; cosine would have to retrain everything.
 */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common.h"

typedef struct { int steps, warmup, batch, seq, threads; double lr; unsigned long long seed; const char *data, *out; } options;

static ds_model *new_model(const ex_corpus *c, const options *o, ds_error *err) {
    ds_config cfg;
    ds_model *m;
    ds_config_preset("tiny", &cfg, err);
    cfg.vocab = ds_tokenizer_padded_vocab(c->tok), cfg.d_model = 128, cfg.n_layers = 4, cfg.n_heads = 4, cfg.n_kv_heads = 2;
    cfg.d_ff = ds_ffn_dim(128, 32), cfg.max_seq = o->seq;
    if ((m = ds_model_new(&cfg, o->batch, o->seq, err))) ds_model_init(m, o->seed);
    return m;
}

/* train a fresh model under schedule s for s->total_steps; returns its validation BPB */
static int run(const ex_corpus *c, const options *o, const ds_schedule *s, float *losses, const char *label, ds_pool *pool, double *bpb,
               ds_model **keep, ds_error *err) {
    ds_train_state st;
    ds_model *m = new_model(c, o, err);
    int rc;
    if (!m) return err->code;
    memset(&st, 0, sizeof st);
    st.rng = o->seed;
    rc = ex_train(m, &c->train, s, &st, s->total_steps, o->batch, o->seq, pool, losses, label, err);
    if (!rc) rc = ds_model_eval_bpb(m, c->tok, &c->val, o->batch, o->seq, pool, NULL, bpb, err);
    if (keep && !rc) *keep = m;
    else ds_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    options o = {500, 50, 16, 128, 2, 2e-3, 1337, "data", "build/schedules"};
    ex_corpus corpus;
    ds_pool *pool;
    ds_error err;
    ds_schedule ms, cos, ms2;
    ds_model *ref = NULL, *m;
    ds_train_state st;
    float *l_ms, *l_cos, *l_n, *l_2n;
    double bpb_ms, bpb_cos, bpb_n, bpb_2n, t0;
    char path[1024];
    int i;
    long stage1;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: 03_lr_schedules [options]\n"
                   "  --steps N     the run length N (default %d); the continual branch goes to 2N\n"
                   "  --lr X        peak learning rate (default %g)\n  --warmup N    (default %d)\n"
                   "  --threads N   (default %d)\n  --seed N      (default %llu)\n  --data DIR    (default %s)\n"
                   "  --out DIR     checkpoint and SVG (default %s)\n", o.steps, o.lr, o.warmup, o.threads, o.seed, o.data, o.out);
            return 0;
        }
        if (i + 1 >= argc) { fprintf(stderr, "%s: unknown option, or it needs a value (see --help)\n", argv[i]); return 2; }
        if (!strcmp(argv[i], "--steps")) { if (!ex_int(argv[i], argv[i + 1], 1, 1 << 30, &o.steps)) return 2; i++; }
        else if (!strcmp(argv[i], "--lr")) { if (!ex_num(argv[i], argv[i + 1], 1e-12, 10, &o.lr)) return 2; i++; }
        else if (!strcmp(argv[i], "--warmup")) { if (!ex_int(argv[i], argv[i + 1], 0, 1 << 30, &o.warmup)) return 2; i++; }
        else if (!strcmp(argv[i], "--threads")) { if (!ex_int(argv[i], argv[i + 1], 1, 1024, &o.threads)) return 2; i++; }
        else if (!strcmp(argv[i], "--seed")) { if (!ex_u64(argv[i], argv[i + 1], &o.seed)) return 2; i++; }
        else if (!strcmp(argv[i], "--data")) o.data = argv[++i];
        else if (!strcmp(argv[i], "--out")) o.out = argv[++i];
        else { fprintf(stderr, "unknown option %s (see --help)\n", argv[i]); return 2; }
    }
    if (o.steps < 10 || o.warmup < 1 || o.warmup >= o.steps || o.threads < 1 || !(o.lr > 0)) {
        fprintf(stderr, "steps >= 10, 1 <= warmup < steps, threads >= 1, lr > 0\n");
        return 2;
    }
    if (ex_outdir(o.out, &err)) { fprintf(stderr, "--out: %s\n", err.msg); return 1; }
    printf("== §2.3 multi-step against cosine, and continual training ==\n");
    if (ex_corpus_load(&corpus, o.data, 4096, &err) || !(pool = ds_pool_new(o.threads, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    l_ms = (float *)calloc(4 * ((size_t)o.steps * 2 + 1), sizeof(float));
    if (!l_ms) return 1;
    l_cos = l_ms + 2 * o.steps + 1, l_n = l_cos + 2 * o.steps + 1, l_2n = l_n + 2 * o.steps + 1;
    t0 = ds_now();

    /* 1. the same budget, two schedules */
    ms = ds_schedule_multistep(o.lr, o.warmup, o.steps);
    cos = ds_schedule_cosine(o.lr, o.warmup, o.steps);
    if (run(&corpus, &o, &ms, l_ms, "[multi-step] ", pool, &bpb_ms, &ref, &err) ||
        run(&corpus, &o, &cos, l_cos, "[cosine]     ", pool, &bpb_cos, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }

    /* 2. continual training: stage 1 once, then two lengths from its checkpoint */
    stage1 = (long)(0.8 * o.steps + 1e-9);
    ms2 = ds_schedule_multistep(o.lr, o.warmup, 2L * o.steps);
    memset(&st, 0, sizeof st);
    st.rng = o.seed;
    snprintf(path, sizeof path, "%s/stage1", o.out);
    if (!(m = new_model(&corpus, &o, &err)) || ex_train(m, &corpus.train, &ms, &st, stage1, o.batch, o.seq, pool, l_n, "[stage 1]    ", &err) ||
        ds_checkpoint_save(m, corpus.tok, &st, path, DS_DTYPE_F32, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    memcpy(l_2n, l_n, sizeof(float) * (size_t)stage1);
    ds_model_free(m);
    printf("stage 1 (steps 0..%ld, at the peak after warmup) saved to %s\n", stage1, path);
    /* branch a: finish the N-step run */
    if (!(m = ds_checkpoint_load(path, o.batch, o.seq, &st, &err)) ||
        ex_train(m, &corpus.train, &ms, &st, o.steps, o.batch, o.seq, pool, l_n, "[N, branch]  ", &err) ||
        ds_model_eval_bpb(m, corpus.tok, &corpus.val, o.batch, o.seq, pool, NULL, &bpb_n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    {
        int same = ex_same_params(m, ref);
        printf("the N-step branch %s the N-step run of part 1 %s\n", same ? "equals" : "DIFFERS FROM", same ? "bit for bit" : "(a bug)");
    }
    ds_model_free(m);
    /* branch b: continue the same stage 1 to 2N steps (its own 80% mark is later) */
    if (!(m = ds_checkpoint_load(path, o.batch, o.seq, &st, &err)) ||
        ex_train(m, &corpus.train, &ms2, &st, 2L * o.steps, o.batch, o.seq, pool, l_2n, "[2N, branch] ", &err) ||
        ds_model_eval_bpb(m, corpus.tok, &corpus.val, o.batch, o.seq, pool, NULL, &bpb_2n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    ds_model_free(m);

    printf("\n== results (%.0f s) ==\n", ds_now() - t0);
    printf("%-34s %10s\n", "run", "val BPB");
    printf("%-34s %10.4f\n", "multi-step, N steps", bpb_ms);
    printf("%-34s %10.4f   (difference %+.4f)\n", "cosine, N steps", bpb_cos, bpb_cos - bpb_ms);
    printf("%-34s %10.4f\n", "multi-step N, from stage 1", bpb_n);
    printf("%-34s %10.4f\n", "multi-step 2N, from stage 1", bpb_2n);
    printf("continual training: %ld + %ld + %ld = %ld steps for both lengths, against %d from scratch (%.0f%% saved)\n", stage1,
           (long)o.steps - stage1, 2L * o.steps - stage1, 2L * o.steps + (long)o.steps - stage1, 3 * o.steps,
           100.0 * (double)stage1 / (3.0 * o.steps));
    {
        const float *curves[3];
        int lens[3];
        const char *names[3] = {"multi-step, N", "cosine, N", "multi-step, 2N (from stage 1)"};
        curves[0] = l_ms, curves[1] = l_cos, curves[2] = l_2n, lens[0] = lens[1] = o.steps, lens[2] = 2 * o.steps;
        snprintf(path, sizeof path, "%s/schedules.svg", o.out);
        ex_svg(path, "03_lr_schedules: training loss (nats/token) per step", curves, lens, names, 3);
        printf("curves: %s\n", path);
    }
    ds_model_free(ref);
    ds_pool_free(pool);
    ex_corpus_free(&corpus);
    free(l_ms);
    return 0;
}
