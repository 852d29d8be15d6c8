/* 02_pretrain.c - paper §2.2-2.4 and §3's metric: pretrain a tiny DeepSeek-architecture model on
 * the bundled corpus with the multi-step schedule, report validation bits-per-byte, save a
 * Hugging Face checkpoint, draw the loss curve, and sample some text.
 *
 *   build/02_pretrain [--steps 2000] [--threads 2] [--out build/pretrain] [--resume] ...  (--help)
 *
 * The tokenizer is trained on the training split as in 01_tokenizer (0.1 s), the corpus is
 * encoded once, and batches are random windows drawn with a seeded RNG, so a run is a pure
 * function of its flags -- and --resume continues it exactly.
 */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const corpus_files[] = {"tinyshakespeare.txt", "tang300.txt", "lunyu.txt"};
#define N_FILES 3

typedef struct {
    int steps, warmup, batch, seq, dim, layers, heads, kv_heads, vocab, threads, eval_every, ckpt_every, resume, sample_tokens, stop_after;
    double lr;
    unsigned long long seed;
    const char *data, *out;
} options;

static void usage(const options *o) {
    printf("usage: 02_pretrain [options]\n"
           "  --steps N        optimizer steps (default %d)\n"
           "  --lr X           peak learning rate (default %g)\n"
           "  --warmup N       linear warmup steps (default %d; the paper uses 2000 at full scale)\n"
           "  --batch N --seq N  sequences per step and their length (default %d x %d)\n"
           "  --dim N --layers N --heads N --kv-heads N   the model (default %d, %d, %d, %d)\n"
           "  --vocab N        tokenizer size, BOS/EOS included (default %d)\n"
           "  --threads N      (default %d)\n"
           "  --eval-every N   validation bits-per-byte every N steps (default %d)\n"
           "  --ckpt-every N   checkpoint every N steps (default %d, and at the end)\n"
           "  --seed N         (default %llu)\n"
           "  --data DIR       (default %s)\n"
           "  --out DIR        checkpoint, loss curve, token files (default %s)\n"
           "  --resume         continue from DIR/ckpt exactly where it stopped\n"
           "  --stop-after N   save a checkpoint and stop after step N (an interruption, for --resume)\n"
           "  --sample N       tokens to sample at the end (default %d)\n",
           o->steps, o->lr, o->warmup, o->batch, o->seq, o->dim, o->layers, o->heads, o->kv_heads, o->vocab, o->threads, o->eval_every,
           o->ckpt_every, o->seed, o->data, o->out, o->sample_tokens);
}

static int parse(int argc, char **argv, options *o) {
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(o); exit(0); }
        if (!strcmp(a, "--resume")) { o->resume = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "%s needs a value (see --help)\n", a); return 0; }
        if (!strcmp(a, "--steps")) o->steps = atoi(argv[++i]);
        else if (!strcmp(a, "--lr")) o->lr = atof(argv[++i]);
        else if (!strcmp(a, "--warmup")) o->warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--batch")) o->batch = atoi(argv[++i]);
        else if (!strcmp(a, "--seq")) o->seq = atoi(argv[++i]);
        else if (!strcmp(a, "--dim")) o->dim = atoi(argv[++i]);
        else if (!strcmp(a, "--layers")) o->layers = atoi(argv[++i]);
        else if (!strcmp(a, "--heads")) o->heads = atoi(argv[++i]);
        else if (!strcmp(a, "--kv-heads")) o->kv_heads = atoi(argv[++i]);
        else if (!strcmp(a, "--vocab")) o->vocab = atoi(argv[++i]);
        else if (!strcmp(a, "--threads")) o->threads = atoi(argv[++i]);
        else if (!strcmp(a, "--eval-every")) o->eval_every = atoi(argv[++i]);
        else if (!strcmp(a, "--ckpt-every")) o->ckpt_every = atoi(argv[++i]);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--data")) o->data = argv[++i];
        else if (!strcmp(a, "--out")) o->out = argv[++i];
        else if (!strcmp(a, "--sample")) o->sample_tokens = atoi(argv[++i]);
        else if (!strcmp(a, "--stop-after")) o->stop_after = atoi(argv[++i]);
        else { fprintf(stderr, "unknown option %s (see --help)\n", a); return 0; }
    }
    if (o->steps < 1 || o->batch < 1 || o->seq < 2 || o->threads < 1 || o->eval_every < 1 || o->ckpt_every < 1 || !(o->lr > 0)) {
        fprintf(stderr, "steps, batch, threads, eval-every, ckpt-every and lr must be positive, seq at least 2\n");
        return 0;
    }
    return 1;
}

/* the loss curve: training loss (an exponential average) and validation BPB, as an SVG */
static void write_svg(const char *path, const float *loss, int n, const double *bpb_at, const double *bpb, int n_bpb) {
    FILE *f = fopen(path, "w");
    double lo = 1e9, hi = -1e9, W = 720, H = 360, P = 50;
    int i;
    if (!f) return;
    for (i = 0; i < n; i++) { if (loss[i] < lo) lo = loss[i]; if (loss[i] > hi) hi = loss[i]; }
    for (i = 0; i < n_bpb; i++) { if (bpb[i] < lo) lo = bpb[i]; if (bpb[i] > hi) hi = bpb[i]; }
    if (hi <= lo) hi = lo + 1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%g\" y=\"20\">02_pretrain: training loss (nats/token, blue) "
               "and validation bits per byte (red) against steps</text>\n", P);
    fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/><line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n",
            P, H - P, W - 10, H - P, P, 30.0, P, H - P);
    for (i = 0; i <= 4; i++) {
        double v = lo + (hi - lo) * i / 4, y = H - P - (H - P - 30) * i / 4;
        fprintf(f, "<text x=\"5\" y=\"%g\">%.2f</text>\n", y + 4, v);
    }
    fprintf(f, "<text x=\"%g\" y=\"%g\">%d steps</text>\n", W - 80, H - P + 20, n);
    fprintf(f, "<polyline fill=\"none\" stroke=\"#2060c0\" points=\"");
    for (i = 0; i < n; i += (n > 600 ? n / 600 : 1))
        fprintf(f, "%.1f,%.1f ", P + (W - P - 10) * i / (n > 1 ? n - 1 : 1), H - P - (H - P - 30) * (loss[i] - lo) / (hi - lo));
    fprintf(f, "\"/>\n<polyline fill=\"none\" stroke=\"#c02020\" stroke-width=\"2\" points=\"");
    for (i = 0; i < n_bpb; i++)
        fprintf(f, "%.1f,%.1f ", P + (W - P - 10) * bpb_at[i] / (n > 1 ? n - 1 : 1), H - P - (H - P - 30) * (bpb[i] - lo) / (hi - lo));
    fprintf(f, "\"/>\n</svg>\n");
    fclose(f);
}

static void print_token(void *ctx, int32_t id) {
    size_t n;
    const char *b = ds_tokenizer_token_bytes((const ds_tokenizer *)ctx, id, &n);
    if (b && !ds_tokenizer_is_special((const ds_tokenizer *)ctx, id)) fwrite(b, 1, n, stdout);
    fflush(stdout);
}

int main(int argc, char **argv) {
    options o = {2000, 100, 16, 128, 128, 4, 4, 2, 4096, 2, 500, 1000, 0, 200, 0, 2e-3, 1337, "data", "build/pretrain"};
    char *files[N_FILES], path[1024];
    size_t lens[N_FILES], cuts[N_FILES], f;
    ds_bpe_trainer *tr;
    ds_tokenizer *tok;
    ds_tokens train, val;
    ds_config c;
    ds_model *m;
    ds_pool *pool;
    ds_error err;
    ds_adamw opt = ds_adamw_default();
    ds_schedule sched;
    ds_train_state st;
    int32_t *in, *tg;
    float *losses, smooth = 0;
    double bpb_at[64], bpbs[64], t0, t_eval = 0, val_loss = 0, val_bpb = 0;
    int n_bpb = 0, step, first;
    if (!parse(argc, argv, &o)) return 2;
    mkdir(o.out, 0755); /* may exist already */
    memset(&st, 0, sizeof st);
    st.rng = o.seed;

    /* 1. data: the tokenizer (01_tokenizer's recipe), then the two splits encoded once */
    printf("== §2.2-2.4 pretraining a tiny DeepSeek LLM on the bundled corpus ==\n");
    if (!(tr = ds_bpe_trainer_new(&err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (f = 0; f < N_FILES; f++) {
        snprintf(path, sizeof path, "%s/%s", o.data, corpus_files[f]);
        if (!(files[f] = ds_read_file(path, 0, &lens[f], &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
        cuts[f] = ds_split_point(files[f], lens[f], 0.9);
        ds_bpe_trainer_feed(tr, files[f], cuts[f], &err);
    }
    if (!(tok = ds_bpe_trainer_train(tr, o.vocab, &err))) { fprintf(stderr, "tokenizer: %s\n", err.msg); return 1; }
    ds_bpe_trainer_free(tr);
    {
        ds_buf all = {0, 0, 0, 0}, vall = {0, 0, 0, 0};
        for (f = 0; f < N_FILES; f++) {
            ds_buf_append(&all, files[f], cuts[f]);
            ds_buf_append(&vall, files[f] + cuts[f], lens[f] - cuts[f]);
        }
        if (all.oom || vall.oom || ds_tokens_from_text(tok, all.data, all.len, &train, &err) ||
            ds_tokens_from_text(tok, vall.data, vall.len, &val, &err)) {
            fprintf(stderr, "encoding: %s\n", err.msg);
            return 1;
        }
        ds_buf_free(&all);
        ds_buf_free(&vall);
    }
    printf("tokenizer: %d tokens; train %zu tokens (%llu bytes), validation %zu tokens (%llu bytes)\n", ds_tokenizer_vocab_size(tok),
           train.n, (unsigned long long)train.n_bytes, val.n, (unsigned long long)val.n_bytes);
    snprintf(path, sizeof path, "%s/train.tok", o.out); /* the encoded corpus, for other tools */
    if (ds_tokens_save(&train, path, &err)) fprintf(stderr, "%s\n", err.msg);
    snprintf(path, sizeof path, "%s/val.tok", o.out);
    if (ds_tokens_save(&val, path, &err)) fprintf(stderr, "%s\n", err.msg);

    /* 2. the model: new, or resumed from the checkpoint */
    snprintf(path, sizeof path, "%s/ckpt", o.out);
    if (o.resume) {
        if (!(m = ds_checkpoint_load(path, o.batch, o.seq, &st, &err))) { fprintf(stderr, "resume: %s\n", err.msg); return 1; }
        printf("resumed from %s at step %ld (%llu tokens seen)\n", path, st.step, (unsigned long long)st.tokens_seen);
    } else {
        ds_config_preset("tiny", &c, &err);
        c.vocab = ds_tokenizer_padded_vocab(tok), c.d_model = o.dim, c.n_layers = o.layers, c.n_heads = o.heads, c.n_kv_heads = o.kv_heads;
        c.d_ff = ds_ffn_dim(o.dim, 32), c.max_seq = o.seq;
        if (!(m = ds_model_new(&c, o.batch, o.seq, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
        ds_model_init(m, o.seed);
    }
    c = *ds_model_config(m);
    printf("model: vocab %d, d_model %d, %d layers, %d heads / %d kv heads, d_ff %d, %.2fM parameters; batch %d x %d tokens\n", c.vocab,
           c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.d_ff, (double)ds_model_n_params(m) / 1e6, o.batch, o.seq);
    if (!(pool = ds_pool_new(o.threads, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    sched = ds_schedule_multistep(o.lr, o.warmup, o.steps);
    printf("schedule: multi-step (§2.3): warmup %d, peak %g, x0.316 at step %d, x0.1 at step %d\n", o.warmup, o.lr, (int)(0.8 * o.steps),
           (int)(0.9 * o.steps));
    in = (int32_t *)malloc(sizeof(int32_t) * (size_t)o.batch * (size_t)o.seq * 2);
    tg = in + (size_t)o.batch * o.seq;
    losses = (float *)calloc((size_t)o.steps + 1, sizeof(float));
    if (!in || !losses) { fprintf(stderr, "out of memory\n"); return 1; }

    /* 3. train */
    t0 = ds_now();
    first = (int)st.step;
    for (step = first; step < o.steps; step++) {
        float loss;
        double gnorm, lr = ds_schedule_lr(&sched, step);
        int rc;
        if (ds_tokens_batch(&train, &st.rng, o.batch, o.seq, in, tg, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        ds_model_zero_grad(m);
        rc = ds_model_forward(m, in, tg, NULL, o.batch, o.seq, pool, &loss, &err);
        if (!rc) rc = ds_model_backward(m, 1.0f, pool, &err);
        if (!rc) rc = ds_model_step(m, &opt, lr, &gnorm, pool, &err);
        if (rc) { /* a non-finite loss or gradient: stop; the last checkpoint is intact */
            fprintf(stderr, "step %d: %s; stopping (the last checkpoint, %s, is intact)\n", step, err.msg, path);
            return 1;
        }
        losses[step] = loss;
        smooth = step == (int)st.step ? loss : 0.95f * smooth + 0.05f * loss;
        st.step = step + 1;
        st.tokens_seen += (uint64_t)o.batch * (uint64_t)o.seq;
        if ((step + 1) % 50 == 0 || step == first || step + 1 == o.steps) {
            double now = ds_now(), done = (double)(step + 1 - first);
            double tps = (double)o.batch * o.seq * done / (now - t0 - t_eval + 1e-9), eta = (now - t0) / done * (o.steps - step - 1);
            printf("step %5d/%d | loss %.4f | lr %.2e | grad norm %.3f | %6.0f tok/s | ETA %dm%02ds\n", step + 1, o.steps, smooth, lr, gnorm,
                   tps, (int)eta / 60, (int)eta % 60);
            fflush(stdout);
        }
        if ((step + 1) % o.eval_every == 0 || step + 1 == o.steps) {
            double te = ds_now();
            if (ds_model_eval_bpb(m, tok, &val, o.batch, o.seq, pool, &val_loss, &val_bpb, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            printf("  validation: loss %.4f nats/token, %.4f bits per byte\n", val_loss, val_bpb);
            if (n_bpb < 64) bpb_at[n_bpb] = step, bpbs[n_bpb++] = val_bpb;
            t_eval += ds_now() - te; /* tokens/s counts training only */
        }
        if ((step + 1) % o.ckpt_every == 0 || step + 1 == o.steps || step + 1 == o.stop_after) {
            if (ds_checkpoint_save(m, tok, &st, path, DS_DTYPE_F32, &err)) fprintf(stderr, "checkpoint: %s (training goes on)\n", err.msg);
            else printf("  checkpoint: %s (step %ld)\n", path, st.step);
        }
        if (step + 1 == o.stop_after) { printf("stopped after step %d as asked; continue with --resume\n", step + 1); return 0; }
    }
    printf("trained %d steps in %.1f s; final validation: %.4f bits per byte\n", o.steps - first, ds_now() - t0, val_bpb);
    snprintf(path, sizeof path, "%s/loss.svg", o.out);
    write_svg(path, losses, o.steps, bpb_at, bpbs, n_bpb);
    printf("loss curve: %s\n", path);

    /* 4. sample with the KV cache: temperature 0.8, top-p 0.9 */
    if (o.sample_tokens > 0) {
        static const char *prompts[] = {"ROMEO:\n", "\xE5\xAD\x90\xE6\x9B\xB0\xEF\xBC\x9A"}; /* 子曰： */
        size_t k;
        for (k = 0; k < 2; k++) {
            int32_t pids[64], *out = (int32_t *)malloc(sizeof(int32_t) * (size_t)o.sample_tokens);
            size_t np;
            int n_out, max_new = o.sample_tokens < c.max_seq - 16 ? o.sample_tokens : c.max_seq - 16;
            ds_model *gm = m;
            ds_tokenizer_encode(tok, prompts[k], strlen(prompts[k]), DS_ENCODE_BOS, pids, 64, &np, &err);
            printf("\n--- sample (temperature 0.8, top-p 0.9) ---\n%s", prompts[k]);
            if (ds_generate(gm, pids, (int)np, max_new, 0.8, 0.9, o.seed + k, ds_tokenizer_eos(tok), print_token, tok, out, &n_out, pool, &err))
                fprintf(stderr, "\n%s\n", err.msg);
            printf("\n");
            free(out);
        }
    }
    ds_model_free(m);
    ds_pool_free(pool);
    ds_tokenizer_free(tok);
    ds_tokens_free(&train);
    ds_tokens_free(&val);
    for (f = 0; f < N_FILES; f++) free(files[f]);
    free(in);
    free(losses);
    return 0;
}
