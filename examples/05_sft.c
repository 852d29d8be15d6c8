/* 05_sft.c - paper §4: supervised fine-tuning of the pretrained model into a chat model.
 *
 *   build/05_sft [--init build/pretrain/ckpt] [--epochs 3] [--out build/sft] ...   (--help)
 *   mpirun -np 2 build/mpi/05_sft --micro 16 ...   (the MPI build: the batch split over the ranks)
 *
 * 1. Generates the task's instruction data (examples/task.h) as TRL JSONL and reads it back with
 *    ds_dataset_load, as any JSONL from the ecosystem would be read (--train FILE uses yours).
 * 2. Scores the base model on held-out prompts: exact-match accuracy and the paper's
 *    repetition ratio (greedy replies that never end and loop), and validation bits per byte.
 * 3. Trains with the loss on the assistant's tokens only (their EOS included): every other token
 *    has weight 0 and exactly zero gradient. Several epochs, shuffled per epoch with the seed,
 *    under the multi-step (or cosine) schedule. --stage2-frac F adds the paper's second SFT stage:
 *    one more epoch on a random share F of the data at a tenth of the learning rate.
 * 4. Scores the SFT model the same way, saves the checkpoint, and writes the scores to
 *    OUT/metrics.tsv for 06_dpo's summary.
 */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common.h"
#include "task.h"

typedef struct {
    int epochs, batch, seq, warmup, threads, n_train, n_eval, max_new, cosine, micro;
    double lr, stage2_frac;
    unsigned long long seed;
    const char *init, *out, *train, *val;
    int precision; /* DS_PRECISION_FP32 (0, the default) or _BF16 */
} options;

static void usage(const options *o) {
    printf("usage: 05_sft [options]\n"
           "  --init DIR        the pretrained checkpoint (default %s; make it with 02_pretrain)\n"
           "  --train FILE      SFT JSONL to train on instead of the generated task data\n"
           "  --n-train N       generated training conversations (default %d)\n"
           "  --epochs N        (default %d)        --lr X   peak learning rate (default %g)\n"
           "  --batch N         sequences per step (default %d)   --seq N  tokens per sequence (default %d)\n"
           "  --micro N         sequences per micro-batch (default: --batch); under mpirun they are split over the ranks\n"
           "  --warmup N        (default %d)        --cosine  cosine instead of multi-step\n"
           "  --stage2-frac F   a second stage on a random share F of the data at lr/10 (default 0: off)\n"
           "  --n-eval N        held-out prompts scored (default %d)   --max-new N  reply limit (default %d)\n"
           "  --val FILE        validation tokens for bits per byte (default %s)\n"
           "  --threads N       (default %d)   --seed N (default %llu)\n"
           "  --precision P     fp32 (default) or bf16: the paper's bf16 products (§2.4; the CUDA build, or a CPU with AVX512_BF16)\n"
           "  --out DIR         checkpoint, data, metrics.tsv (default %s)\n",
           o->init, o->n_train, o->epochs, o->lr, o->batch, o->seq, o->warmup, o->n_eval, o->max_new, o->val, o->threads, o->seed, o->out);
}

/* trains `steps` steps over the examples idx[0..n) (in that order, wrapping), under schedule s:
   each step's batch is --batch conversations in micro-batches of --micro, this rank's through
   ds_dp_micro, then one ds_dp_step (one rank without MPI) */
static int sft_train(ds_dp *dp, const ds_dataset *d, const int *idx, int n, const ds_schedule *s, const options *o, ds_pool *pool,
                     const char *label, ds_error *err) {
    ds_adamw opt = ds_adamw_default();
    int32_t *in = (int32_t *)malloc(sizeof(int32_t) * 2 * (size_t)o->micro * o->seq), *tg;
    float *w = (float *)malloc(sizeof(float) * (size_t)o->micro * o->seq);
    const ds_seq **rows = (const ds_seq **)malloc(sizeof(ds_seq *) * (size_t)o->batch);
    double t0 = ds_now(), tokens = 0, trained = 0;
    long step;
    int rc = DS_OK, pos = 0, b, j, micros = o->batch / o->micro;
    if (!in || !w || !rows) { free(in); free(w); free((void *)rows); return ds_error_set(err, DS_ERR_NOMEM, "out of memory"); }
    tg = in + (size_t)o->micro * o->seq;
    for (step = 0; step < s->total_steps && !rc; step++) {
        double loss = 0;
        double gnorm = 0, lr = ds_schedule_lr(s, step);
        for (b = 0; b < o->batch; b++, pos = (pos + 1) % n) {
            rows[b] = &d->ex[idx[pos]].seq;
            tokens += rows[b]->n < o->seq + 1 ? rows[b]->n - 1 : o->seq;
        }
        for (j = 0; j < micros; j++) {
            ds_seq_batch(rows + (size_t)j * o->micro, o->micro, o->micro, o->seq, 0, in, tg, w);
            for (b = 0; b < o->micro * o->seq; b++) trained += w[b];
            if (j / ds_dp_local(dp) == ds_dp_rank(dp)) ds_dp_micro(dp, in, tg, w, o->micro, o->seq, pool, err); /* (failures: the step reports them) */
        }
        rc = ds_dp_step(dp, &opt, lr, &loss, &gnorm, pool, err);
        if (!rc && ((step + 1) % 20 == 0 || step + 1 == s->total_steps)) {
            double dt = ds_now() - t0, eta = dt / (double)(step + 1) * (double)(s->total_steps - step - 1);
            printf("%sstep %4ld/%ld | loss %.4f | lr %.2e | grad norm %.3f | %6.0f tok/s (%.0f%% trained) | ETA %dm%02ds\n", label, step + 1,
                   s->total_steps, loss, lr, gnorm, tokens / dt, 100 * trained / tokens, (int)eta / 60, (int)eta % 60);
            fflush(stdout);
        }
    }
    free(in), free(w), free((void *)rows);
    return rc;
}

static void print_score(const char *stage, double bpb, const task_score *sc) {
    printf("%-6s val BPB %.4f | held-out accuracy %5.1f%% | repetition ratio %5.1f%% (%d prompts)\n", stage, bpb, 100 * sc->accuracy,
           100 * sc->repetition, sc->n);
}

int main(int argc, char **argv) {
    options o = {3, 32, 64, 30, 2, 3000, 200, 40, 0, 0, 3e-4, 0, 1234, "build/pretrain/ckpt", "build/sft", NULL, "build/pretrain/val.tok", DS_PRECISION_FP32};
    ds_error err;
    ds_pool *pool;
    ds_tokenizer *tok;
    ds_model *m;
    ds_dp *dp;
    ds_dataset d;
    ds_tokens val;
    task_score base, sft;
    double bpb_base = NAN, bpb_sft = NAN, t0;
    char path[1024], train_path[1024];
    int i, *idx, have_val, rank;
    long steps;
    uint64_t rng;
    ds_schedule s;
    FILE *f;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(&o); return 0; }
        if (!strcmp(a, "--cosine")) { o.cosine = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "%s: unknown option, or it needs a value (see --help)\n", a); return 2; }
        if (!strcmp(a, "--init")) o.init = argv[++i];
        else if (!strcmp(a, "--train")) o.train = argv[++i];
        else if (!strcmp(a, "--n-train")) { if (!ex_int(a, argv[++i], 1, 1 << 24, &o.n_train)) return 2; }
        else if (!strcmp(a, "--epochs")) { if (!ex_int(a, argv[++i], 1, 10000, &o.epochs)) return 2; }
        else if (!strcmp(a, "--lr")) { if (!ex_num(a, argv[++i], 1e-12, 10, &o.lr)) return 2; }
        else if (!strcmp(a, "--batch")) { if (!ex_int(a, argv[++i], 1, 1 << 16, &o.batch)) return 2; }
        else if (!strcmp(a, "--micro")) { if (!ex_int(a, argv[++i], 1, 1 << 16, &o.micro)) return 2; }
        else if (!strcmp(a, "--seq")) { if (!ex_int(a, argv[++i], 2, 1 << 20, &o.seq)) return 2; }
        else if (!strcmp(a, "--warmup")) { if (!ex_int(a, argv[++i], 0, 1 << 30, &o.warmup)) return 2; }
        else if (!strcmp(a, "--stage2-frac")) { if (!ex_num(a, argv[++i], 0, 0.99, &o.stage2_frac)) return 2; }
        else if (!strcmp(a, "--n-eval")) { if (!ex_int(a, argv[++i], 0, 1 << 20, &o.n_eval)) return 2; }
        else if (!strcmp(a, "--max-new")) { if (!ex_int(a, argv[++i], 1, 1 << 20, &o.max_new)) return 2; }
        else if (!strcmp(a, "--val")) o.val = argv[++i];
        else if (!strcmp(a, "--threads")) { if (!ex_int(a, argv[++i], 1, 1024, &o.threads)) return 2; }
        else if (!strcmp(a, "--precision")) { if (!ex_precision(a, argv[++i], &o.precision)) return 2; }
        else if (!strcmp(a, "--seed")) { if (!ex_u64(a, argv[++i], &o.seed)) return 2; }
        else if (!strcmp(a, "--out")) o.out = argv[++i];
        else { fprintf(stderr, "unknown option %s (see --help)\n", a); return 2; }
    }
    if (o.epochs < 1 || o.batch < 1 || o.seq < 8 || o.warmup < 0 || o.threads < 1 || o.n_train < 1 || o.n_eval < 1 || o.max_new < 8 ||
        !(o.lr > 0) || !(o.stage2_frac >= 0 && o.stage2_frac <= 1)) {
        fprintf(stderr, "epochs, batch, threads, n-train, n-eval >= 1; seq, max-new >= 8; lr > 0; 0 <= stage2-frac <= 1\n");
        return 2;
    }
    ex_say_when_terminated(); /* under mpirun: a message when another rank's death ends this one */
    if (!o.micro) o.micro = o.batch;
    if (o.batch % o.micro) { fprintf(stderr, "--micro %d does not divide --batch %d\n", o.micro, o.batch); return 2; }
    if (ex_outdir(o.out, &err)) { fprintf(stderr, "--out: %s\n", err.msg); return 1; }
    t0 = ds_now();
    snprintf(path, sizeof path, "%s/tokenizer.json", o.init);
    if (!(pool = ds_pool_new(o.threads, &err)) || !(tok = ds_tokenizer_load(path, &err)) || !(m = ds_checkpoint_load(o.init, o.micro, o.seq, NULL, &err))) {
        fprintf(stderr, "%s\n(05_sft starts from a pretrained checkpoint: run 02_pretrain first, or pass --init)\n", err.msg);
        return 1;
    }
    if (ds_model_set_precision(m, o.precision, &err)) { fprintf(stderr, "--precision: %s\n", err.msg); return 1; }
    /* the group (MPI ranks in the MPI build, else one): progress and files from rank 0 */
    if (!(dp = ds_dp_new(m, o.batch / o.micro, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    rank = ds_dp_rank(dp);
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) return 1;
    printf("== §4 supervised fine-tuning ==\n");
    if (ds_dp_world(dp) > 1) printf("data parallel: %d ranks x %d micro-batches of %d conversations\n", ds_dp_world(dp), ds_dp_local(dp), o.micro);
    if (!o.train) {
        int wrote = DS_OK;
        snprintf(train_path, sizeof train_path, "%s/train.jsonl", o.out);
        if (rank == 0 && (wrote = task_write_sft(train_path, o.n_train, o.seed, &err))) fprintf(stderr, "%s\n", err.msg);
        if (ds_dp_agree(dp, &wrote, &err) || wrote) return 1; /* (the other ranks read it once rank 0 has written it) */
        printf("wrote %d conversations of the task to %s (TRL \"messages\" rows)\n", o.n_train, train_path);
        o.train = train_path;
    }
    memset(&d, 0, sizeof d);
    if (ds_dataset_load(&d, tok, DS_DATA_SFT, o.train, o.seq + 1, DS_DATA_SKIP_BAD, ex_report_bad_line, (void *)o.train, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("%s: %d conversations (%ld lines, %ld skipped, %ld cut to %d tokens)\n", o.train, d.n, d.lines, d.bad, d.truncated, o.seq + 1);
    if (d.n == 0) { fprintf(stderr, "nothing to train on\n"); return 1; }
    have_val = ds_tokens_load(o.val, &val, &err) == DS_OK;
    if (!have_val) printf("(no validation tokens: %s; bits per byte are skipped)\n", err.msg);

    printf("\nthe base model, on held-out prompts:\n");
    memset(&base, 0, sizeof base), memset(&sft, 0, sizeof sft);
    if (rank == 0 && ((have_val && ds_model_eval_bpb(m, tok, &val, o.micro, o.seq, pool, NULL, &bpb_base, &err)) || task_eval(m, tok, o.n_eval, o.max_new, 3, pool, &base, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    print_score("base", bpb_base, &base);

    /* stage 1: every epoch a fresh shuffle; the schedule spans all epochs */
    steps = ((long)d.n * o.epochs + o.batch - 1) / o.batch;
    s = o.cosine ? ds_schedule_cosine(o.lr, o.warmup, steps) : ds_schedule_multistep(o.lr, o.warmup, steps);
    if (!(idx = (int *)malloc(sizeof(int) * (size_t)d.n * o.epochs))) return 1;
    rng = o.seed;
    for (i = 0; i < o.epochs; i++) ex_shuffle(idx + (size_t)i * d.n, d.n, &rng);
    printf("\nSFT: %d epochs, %ld steps of %d conversations, %s schedule, peak lr %g\n", o.epochs, steps, o.batch, o.cosine ? "cosine" : "multi-step", o.lr);
    if (sft_train(dp, &d, idx, d.n * o.epochs, &s, &o, pool, "[sft] ", &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (o.stage2_frac > 0) { /* the paper's second stage: a subset, gently */
        int n2 = (int)(o.stage2_frac * d.n);
        long steps2 = (n2 + o.batch - 1) / o.batch;
        if (n2 >= 1) {
            ex_shuffle(idx, d.n, &rng);
            s = ds_schedule_multistep(o.lr / 10, 0, steps2);
            s.kind = DS_SCHED_CONSTANT;
            printf("stage 2: %d conversations, %ld steps at lr %g\n", n2, steps2, o.lr / 10);
            if (sft_train(dp, &d, idx, n2, &s, &o, pool, "[sft-2] ", &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        }
    }
    free(idx);

    printf("\nthe SFT model, on the same held-out prompts:\n");
    if (rank == 0 && ((have_val && ds_model_eval_bpb(m, tok, &val, o.micro, o.seq, pool, NULL, &bpb_sft, &err)) || task_eval(m, tok, o.n_eval, o.max_new, 3, pool, &sft, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    print_score("base", bpb_base, &base);
    print_score("SFT", bpb_sft, &sft);
    snprintf(path, sizeof path, "%s/ckpt", o.out);
    if (ds_checkpoint_save(m, tok, NULL, path, DS_DTYPE_F32, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; } /* (collective: rank 0 writes) */
    snprintf(path, sizeof path, "%s/metrics.tsv", o.out);
    if (rank == 0 && (f = fopen(path, "w"))) {
        fprintf(f, "stage\tval_bpb\taccuracy\trepetition\tn_eval\nbase\t%.4f\t%.4f\t%.4f\t%d\nSFT\t%.4f\t%.4f\t%.4f\t%d\n", bpb_base, base.accuracy,
                base.repetition, base.n, bpb_sft, sft.accuracy, sft.repetition, sft.n);
        fclose(f);
    }
    printf("saved %s/ckpt and %s (%.0f s)\n", o.out, path, ds_now() - t0);
    if (have_val) ds_tokens_free(&val);
    ds_dataset_free(&d);
    ds_model_free(m);
    ds_dp_free(dp);
    ds_tokenizer_free(tok);
    ds_pool_free(pool);
    return 0;
}
