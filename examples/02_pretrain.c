/* 02_pretrain.c - paper §2.2-2.4 and §3's metric: pretrain a tiny DeepSeek-architecture model on
 * the bundled corpus with the multi-step schedule, report validation bits-per-byte, save a
 * Hugging Face checkpoint, draw the loss curve, and sample some text.
 *
 *   build/02_pretrain [--steps 2000] [--threads 2] [--out build/pretrain] [--resume] ...  (--help)
 *   mpirun -np 2 build/mpi/02_pretrain --micro 8 ...   (the MPI build, make mpi: data parallel, ZeRO-1)
 *
 * The tokenizer is trained on the training split as in 01_tokenizer (0.1 s), the corpus is
 * encoded once, and batches are random windows drawn with a seeded RNG, so a run is a pure
 * function of its flags -- and --resume continues it exactly. Each step is a global batch of
 * --batch sequences in micro-batches of --micro, spread over the ranks of a ds_dp group (one rank
 * without MPI); --save-every-min saves in the background, as the paper does every 5 minutes.
 */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common.h"

typedef struct {
    int steps, warmup, batch, seq, dim, layers, heads, kv_heads, vocab, threads, eval_every, ckpt_every, resume, sample_tokens, stop_after, micro;
    int precision; /* DS_PRECISION_FP32, or _BF16 (the CUDA build, or a CPU build with AVX512_BF16) */
    double lr, save_every_min;
    unsigned long long seed;
    const char *data, *out;
} options;

static void usage(const options *o) {
    printf("usage: 02_pretrain [options]\n"
           "  --steps N        optimizer steps (default %d)\n"
           "  --lr X           peak learning rate (default %g)\n"
           "  --warmup N       linear warmup steps (default %d; the paper uses 2000 at full scale)\n"
           "  --batch N --seq N  sequences per step and their length (default %d x %d)\n"
           "  --micro N        sequences per micro-batch (default: --batch); the batch's micro-batches\n"
           "                   are accumulated, and split over the ranks under mpirun (make mpi)\n"
           "  --dim N --layers N --heads N --kv-heads N   the model (default %d, %d, %d, %d)\n"
           "  --vocab N        tokenizer size, BOS/EOS included (default %d)\n"
           "  --threads N      (default %d)\n"
           "  --eval-every N   validation bits-per-byte every N steps (default %d)\n"
           "  --ckpt-every N   checkpoint every N steps (default %d, and at the end)\n"
           "  --save-every-min X  also checkpoint every X minutes in the background (the paper: 5; default off)\n"
           "  --seed N         (default %llu)\n"
           "  --data DIR       (default %s)\n"
           "  --out DIR        checkpoint, loss curve, token files (default %s)\n"
           "  --resume         continue from DIR/ckpt exactly where it stopped\n"
           "  --stop-after N   save a checkpoint and stop after step N (an interruption, for --resume)\n"
           "  --sample N       tokens to sample at the end (default %d)\n"
           "  --precision P    fp32 (default) or bf16: the paper's bf16 products (§2.4; the CUDA build, or a CPU with AVX512_BF16)\n",
           o->steps, o->lr, o->warmup, o->batch, o->seq, o->dim, o->layers, o->heads, o->kv_heads, o->vocab, o->threads, o->eval_every,
           o->ckpt_every, o->seed, o->data, o->out, o->sample_tokens);
}

static int parse(int argc, char **argv, options *o) {
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(o); exit(0); }
        if (!strcmp(a, "--resume")) { o->resume = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "%s: unknown option, or it needs a value (see --help)\n", a); return 0; }
        if (!strcmp(a, "--steps")) { if (!ex_int(a, argv[++i], 1, 1 << 30, &o->steps)) return 0; }
        else if (!strcmp(a, "--lr")) { if (!ex_num(a, argv[++i], 1e-12, 10, &o->lr)) return 0; }
        else if (!strcmp(a, "--warmup")) { if (!ex_int(a, argv[++i], 0, 1 << 30, &o->warmup)) return 0; }
        else if (!strcmp(a, "--batch")) { if (!ex_int(a, argv[++i], 1, 1 << 16, &o->batch)) return 0; }
        else if (!strcmp(a, "--micro")) { if (!ex_int(a, argv[++i], 1, 1 << 16, &o->micro)) return 0; }
        else if (!strcmp(a, "--save-every-min")) { if (!ex_num(a, argv[++i], 1e-6, 1e6, &o->save_every_min)) return 0; }
        else if (!strcmp(a, "--seq")) { if (!ex_int(a, argv[++i], 2, 1 << 20, &o->seq)) return 0; }
        else if (!strcmp(a, "--dim")) { if (!ex_int(a, argv[++i], 2, 1 << 20, &o->dim)) return 0; }
        else if (!strcmp(a, "--layers")) { if (!ex_int(a, argv[++i], 1, 4096, &o->layers)) return 0; }
        else if (!strcmp(a, "--heads")) { if (!ex_int(a, argv[++i], 1, 1 << 16, &o->heads)) return 0; }
        else if (!strcmp(a, "--kv-heads")) { if (!ex_int(a, argv[++i], 1, 1 << 16, &o->kv_heads)) return 0; }
        else if (!strcmp(a, "--vocab")) { if (!ex_int(a, argv[++i], 260, 1 << 24, &o->vocab)) return 0; }
        else if (!strcmp(a, "--threads")) { if (!ex_int(a, argv[++i], 1, 1024, &o->threads)) return 0; }
        else if (!strcmp(a, "--eval-every")) { if (!ex_int(a, argv[++i], 1, 1 << 30, &o->eval_every)) return 0; }
        else if (!strcmp(a, "--ckpt-every")) { if (!ex_int(a, argv[++i], 1, 1 << 30, &o->ckpt_every)) return 0; }
        else if (!strcmp(a, "--seed")) { if (!ex_u64(a, argv[++i], &o->seed)) return 0; }
        else if (!strcmp(a, "--data")) o->data = argv[++i];
        else if (!strcmp(a, "--out")) o->out = argv[++i];
        else if (!strcmp(a, "--precision")) { if (!ex_precision(a, argv[++i], &o->precision)) return 0; }
        else if (!strcmp(a, "--sample")) { if (!ex_int(a, argv[++i], 0, 1 << 20, &o->sample_tokens)) return 0; }
        else if (!strcmp(a, "--stop-after")) { if (!ex_int(a, argv[++i], 0, 1 << 30, &o->stop_after)) return 0; }
        else { fprintf(stderr, "unknown option %s (see --help)\n", a); return 0; }
    }
    if (o->steps < 1 || o->batch < 1 || o->seq < 2 || o->threads < 1 || o->eval_every < 1 || o->ckpt_every < 1 || !(o->lr > 0)) {
        fprintf(stderr, "steps, batch, threads, eval-every, ckpt-every and lr must be positive, seq at least 2\n");
        return 0;
    }
    if (!o->micro) o->micro = o->batch;
    if (o->batch % o->micro) { fprintf(stderr, "--micro %d does not divide --batch %d\n", o->micro, o->batch); return 0; }
    return 1;
}

/* the background save of step *saving, once it is written (or at once with wait): its result */
static void background_done(ds_saver *saver, long *saving, int wait, int rank, const char *path) {
    ds_error err;
    double secs;
    if (!*saving || (!wait && ds_saver_busy(saver))) return;
    if (ds_saver_wait(saver, &secs, &err)) fprintf(stderr, "background checkpoint of step %ld: %s (training goes on)\n", *saving, err.msg);
    else if (rank == 0) printf("  checkpoint: %s (step %ld, written in the background in %.2f s)\n", path, *saving, secs);
    *saving = 0;
}

int main(int argc, char **argv) {
    options o = {2000, 100, 16, 128, 128, 4, 4, 2, 4096, 2, 500, 1000, 0, 200, 0, 0, DS_PRECISION_FP32, 2e-3, 0, 1337, "data", "build/pretrain"};
    char path[1024];
    ex_corpus corpus;
    ds_config c;
    ds_model *m;
    ds_pool *pool;
    ds_dp *dp;
    ds_saver *saver = NULL;
    ds_error err;
    ds_schedule sched;
    ds_train_state st;
    ds_adamw opt = ds_adamw_default();
    char run[512];
    float *losses, *bpb_curve;
    int32_t *in, *tg;
    double t0, last_save, val_loss = 0, val_bpb = 0;
    long first, saving_step = 0;
    int micros, rank, world, j;
    if (!parse(argc, argv, &o)) return 2;
    if (ex_outdir(o.out, &err)) { fprintf(stderr, "--out: %s\n", err.msg); return 1; }
    ex_say_when_terminated(); /* under mpirun: a message when another rank's death ends this one */
    micros = o.batch / o.micro;
    memset(&st, 0, sizeof st);
    st.rng = o.seed;
    /* the run's identity, saved in the trainer state: --resume continues only the same run (the
       rank count is not part of it: a checkpoint resumes on any number of ranks) */
    snprintf(run, sizeof run, "vocab=%d dim=%d layers=%d heads=%d kv_heads=%d batch=%d seq=%d steps=%d lr=%.17g warmup=%d seed=%llu", o.vocab,
             o.dim, o.layers, o.heads, o.kv_heads, o.batch, o.seq, o.steps, o.lr, o.warmup, o.seed);
    if (o.micro != o.batch) snprintf(run + strlen(run), sizeof run - strlen(run), " micro=%d", o.micro);
    if (o.precision != DS_PRECISION_FP32) snprintf(run + strlen(run), sizeof run - strlen(run), " precision=bf16");

    /* 1. data: the tokenizer (01_tokenizer's recipe), then the two splits encoded once */
    if (ex_corpus_load(&corpus, o.data, o.vocab, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    snprintf(run + strlen(run), sizeof run - strlen(run), " corpus=%016llx", ex_tokens_hash(&corpus.train));

    /* 2. the model: new, or resumed from the checkpoint (every rank reads it); room for one
       micro-batch. Then the group: this process's rank, and its slice of the AdamW moments */
    snprintf(path, sizeof path, "%s/ckpt", o.out);
    if (o.resume) {
        if (!(m = ds_checkpoint_load(path, o.micro, o.seq, &st, &err))) { fprintf(stderr, "resume: %s\n", err.msg); return 1; }
        if (strcmp(st.run, run)) { /* the same run, or an honest refusal naming what changed */
            fprintf(stderr, "resume: %s is another run's checkpoint: %s\n", path, ex_run_diff(st.run, run));
            return 1;
        }
        if (st.step > o.steps) { fprintf(stderr, "resume: the checkpoint is at step %ld, past --steps %d\n", st.step, o.steps); return 1; }
    } else {
        ds_config_preset("tiny", &c, &err);
        c.vocab = ds_tokenizer_padded_vocab(corpus.tok), c.d_model = o.dim, c.n_layers = o.layers, c.n_heads = o.heads;
        c.n_kv_heads = o.kv_heads, c.d_ff = ds_ffn_dim(o.dim, 32), c.max_seq = o.seq;
        if (!(m = ds_model_new(&c, o.micro, o.seq, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
        ds_model_init(m, o.seed);
    }
    if (ds_model_set_precision(m, o.precision, &err)) { fprintf(stderr, "--precision: %s\n", err.msg); ds_model_free(m); return 1; }
    if (!(dp = ds_dp_new(m, micros, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    rank = ds_dp_rank(dp), world = ds_dp_world(dp);
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) return 1; /* progress from rank 0 only; errors from every rank */
    printf("== §2.2-2.4 pretraining a tiny DeepSeek LLM on the bundled corpus ==\n");
    printf("tokenizer: %d tokens; train %zu tokens (%llu bytes), validation %zu tokens (%llu bytes)\n", ds_tokenizer_vocab_size(corpus.tok),
           corpus.train.n, (unsigned long long)corpus.train.n_bytes, corpus.val.n, (unsigned long long)corpus.val.n_bytes);
    if (rank == 0) { /* the encoded corpus, for other tools */
        snprintf(path, sizeof path, "%s/train.tok", o.out);
        if (ds_tokens_save(&corpus.train, path, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        snprintf(path, sizeof path, "%s/val.tok", o.out);
        if (ds_tokens_save(&corpus.val, path, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        snprintf(path, sizeof path, "%s/ckpt", o.out);
    }
    if (o.resume) printf("resumed from %s at step %ld (%llu tokens seen)\n", path, st.step, (unsigned long long)st.tokens_seen);
    c = *ds_model_config(m);
    printf("model: vocab %d, d_model %d, %d layers, %d heads / %d kv heads, d_ff %d, %.2fM parameters; batch %d x %d tokens\n", c.vocab,
           c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.d_ff, (double)ds_model_n_params(m) / 1e6, o.batch, o.seq);
    if (micros > 1 || world > 1)
        printf("data parallel: %d rank%s x %d micro-batch%s of %d sequences; ZeRO-1: each rank holds 1/%d of the AdamW moments\n", world,
               world > 1 ? "s" : "", ds_dp_local(dp), ds_dp_local(dp) > 1 ? "es" : "", o.micro, world);
    if (!(pool = ds_pool_new(o.threads, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (o.save_every_min > 0 && !(saver = ds_saver_new(&err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    sched = ds_schedule_multistep(o.lr, o.warmup, o.steps);
    printf("schedule: multi-step (§2.3): warmup %d, peak %g, x0.316 at step %d, x0.1 at step %d\n", o.warmup, o.lr, (int)(0.8 * o.steps),
           (int)(0.9 * o.steps));
    losses = (float *)calloc((size_t)o.steps + 1, sizeof(float));
    bpb_curve = (float *)calloc((size_t)o.steps + 1, sizeof(float));
    if (!losses || !bpb_curve) { fprintf(stderr, "out of memory\n"); return 1; }
    for (first = 0; first <= o.steps; first++) bpb_curve[first] = NAN;

    /* 3. the training loop of §2.3: every rank draws the whole global batch from the one seeded
       stream and runs its own micro-batches (forward and backward); ds_dp_step reduces the
       gradients and takes the AdamW step on every rank's slice. Between steps: validation,
       checkpoints, the background save, and the requested stop */
    if (!(in = (int32_t *)malloc(sizeof(int32_t) * 2 * (size_t)o.micro * (size_t)o.seq))) { fprintf(stderr, "out of memory\n"); return 1; }
    tg = in + (size_t)o.micro * o.seq;
    t0 = last_save = ds_now();
    first = st.step;
    while (st.step < o.steps) {
        double loss = 0, gnorm = 0, lr = ds_schedule_lr(&sched, st.step);
        long to;
        int rc = DS_OK, save_now;
        for (j = 0; j < micros && !rc; j++) {
            rc = ds_tokens_batch(&corpus.train, &st.rng, o.micro, o.seq, in, tg, &err);
            if (!rc && j / ds_dp_local(dp) == rank) ds_dp_micro(dp, in, tg, NULL, o.micro, o.seq, pool, &err); /* (a failure: the step reports it) */
        }
        if (!rc) rc = ds_dp_step(dp, &opt, lr, &loss, &gnorm, pool, &err);
        if (rc) { /* a non-finite loss or gradient, on any rank: stop; the last checkpoint is intact */
            fprintf(stderr, "step %ld: %s; stopping (the last checkpoint, %s/ckpt, is intact)\n", st.step + 1, err.msg, o.out);
            return 1;
        }
        losses[st.step++] = (float)loss;
        st.tokens_seen += (uint64_t)o.batch * (uint64_t)o.seq;
        if (st.step % 50 == 0 || st.step == o.steps)
            ex_progress("", st.step, o.steps, loss, lr, gnorm, (double)o.batch * o.seq, st.step - first, t0);
        to = st.step;
        if (saver) { /* the background save: rank 0's clock decides, every rank takes part */
            background_done(saver, &saving_step, 0, rank, path);
            save_now = !saving_step && ds_now() - last_save >= 60 * o.save_every_min && to != o.steps && to != o.stop_after;
            if (ds_dp_agree(dp, &save_now, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            if (save_now) {
                memcpy(st.run, run, sizeof st.run);
                if (ds_saver_start(saver, m, corpus.tok, &st, path, DS_DTYPE_F32, &err)) fprintf(stderr, "checkpoint: %s (training goes on)\n", err.msg);
                else saving_step = to;
                last_save = ds_now();
            }
        }
        if (to % o.eval_every != 0 && to % o.ckpt_every != 0 && to != o.steps && to != o.stop_after) continue;
        if ((to % o.eval_every == 0 || to == o.steps) && rank == 0) { /* (the others go on to the next step and wait there) */
            if (ds_model_eval_bpb(m, corpus.tok, &corpus.val, o.micro, o.seq, pool, &val_loss, &val_bpb, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            printf("  validation: loss %.4f nats/token, %.4f bits per byte\n", val_loss, val_bpb);
            bpb_curve[to - 1] = (float)val_bpb;
        }
        if (to % o.ckpt_every == 0 || to == o.steps || to == o.stop_after) {
            if (saver) background_done(saver, &saving_step, 1, rank, path);
            memcpy(st.run, run, sizeof st.run);
            if (ds_checkpoint_save(m, corpus.tok, &st, path, DS_DTYPE_F32, &err)) { /* (collective under MPI: rank 0 writes) */
                fprintf(stderr, "checkpoint: %s%s\n", err.msg, to == o.steps || to == o.stop_after ? "" : " (training goes on)");
                if (to == o.steps || to == o.stop_after) return 1; /* the result was not saved */
            } else printf("  checkpoint: %s (step %ld)\n", path, st.step);
            last_save = ds_now();
        }
        if (to == o.stop_after) {
            printf("stopped after step %ld as asked; continue with --resume\n", to);
            ds_saver_free(saver);
            ds_model_free(m);
            ds_dp_free(dp);
            return 0;
        }
    }
    printf("trained %ld steps in %.1f s; final validation: %.4f bits per byte\n", o.steps - first, ds_now() - t0, val_bpb);
    if (world > 1) {
        double bytes, secs;
        ds_dp_traffic(dp, &bytes, &secs);
        printf("rank 0 moved %.1f MB through MPI in %.2f s (%.1f%% of the run)\n", bytes / 1e6, secs, 100 * secs / (ds_now() - t0));
    }
    if (rank == 0) {
        const float *curves[2];
        int lens[2];
        const char *names[2] = {"training loss (nats/token)", "validation bits per byte"};
        curves[0] = losses, curves[1] = bpb_curve, lens[0] = lens[1] = o.steps;
        snprintf(path, sizeof path, "%s/loss.svg", o.out);
        ex_svg(path, "02_pretrain: training loss and validation bits per byte", curves, lens, names, 2);
        printf("loss curve: %s\n", path);
    }

    /* 4. sample with the KV cache: temperature 0.8, top-p 0.9 (rank 0) */
    if (o.sample_tokens > 0 && rank == 0) {
        static const char *prompts[] = {"ROMEO:\n", "\xE5\xAD\x90\xE6\x9B\xB0\xEF\xBC\x9A"}; /* 子曰： */
        size_t k;
        for (k = 0; k < 2; k++) {
            int32_t pids[64], *out = (int32_t *)malloc(sizeof(int32_t) * (size_t)o.sample_tokens);
            size_t np;
            int n_out, max_new = o.sample_tokens < c.max_seq - 16 ? o.sample_tokens : c.max_seq - 16;
            ds_tokenizer_encode(corpus.tok, prompts[k], strlen(prompts[k]), DS_ENCODE_BOS, pids, 64, &np, &err);
            printf("\n--- sample (temperature 0.8, top-p 0.9) ---\n%s", prompts[k]);
            if (ds_generate(m, pids, (int)np, max_new, 0.8, 0.9, o.seed + k, ds_tokenizer_eos(corpus.tok), ex_print_token, corpus.tok, out, &n_out,
                            pool, &err))
                fprintf(stderr, "\n%s\n", err.msg);
            printf("\n");
            free(out);
        }
    }
    ds_saver_free(saver);
    ds_model_free(m);
    ds_dp_free(dp); /* (MPI_Finalize when it initialized MPI) */
    ds_pool_free(pool);
    ex_corpus_free(&corpus);
    free(in);
    free(losses);
    free(bpb_curve);
    return 0;
}
