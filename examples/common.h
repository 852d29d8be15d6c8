/* common.h - what the training examples share: the bundled corpus, its tokenizer and encoded
 * splits, one training segment, and a small SVG plot. Include after deepseek.h (with its
 * implementation) in an example's single .c file. */
#ifndef DS_EXAMPLES_COMMON_H
#define DS_EXAMPLES_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define EX_MAYBE_UNUSED __attribute__((unused))
#else
#define EX_MAYBE_UNUSED
#endif

/* The corpus: the training split of each file (the first 90%, data/SOURCES.md) trains the
   tokenizer as 01_tokenizer does, and both splits are encoded once. */
typedef struct ex_corpus {
    ds_tokenizer *tok;
    ds_tokens train, val;
} ex_corpus;

EX_MAYBE_UNUSED static int ex_corpus_load(ex_corpus *c, const char *dir, int vocab, ds_error *err) {
    static const char *const files[] = {"tinyshakespeare.txt", "tang300.txt", "lunyu.txt"};
    ds_buf tr = {0, 0, 0, 0}, va = {0, 0, 0, 0};
    ds_bpe_trainer *bt = ds_bpe_trainer_new(err);
    size_t f;
    int rc = DS_OK;
    memset(c, 0, sizeof *c);
    if (!bt) return err->code;
    for (f = 0; f < 3 && !rc; f++) {
        char path[1024];
        size_t len, cut;
        char *text;
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        if (!(text = ds_read_file(path, 0, &len, err))) { rc = err->code; break; }
        cut = ds_split_point(text, len, 0.9);
        rc = ds_bpe_trainer_feed(bt, text, cut, err);
        ds_buf_append(&tr, text, cut);
        ds_buf_append(&va, text + cut, len - cut);
        free(text);
    }
    if (!rc && !(c->tok = ds_bpe_trainer_train(bt, vocab, err))) rc = err->code;
    if (!rc && (tr.oom || va.oom)) rc = DS_ERR_NOMEM;
    if (!rc) rc = ds_tokens_from_text(c->tok, tr.data, tr.len, &c->train, err);
    if (!rc) rc = ds_tokens_from_text(c->tok, va.data, va.len, &c->val, err);
    ds_bpe_trainer_free(bt);
    ds_buf_free(&tr);
    ds_buf_free(&va);
    return rc;
}

EX_MAYBE_UNUSED static void ex_corpus_free(ex_corpus *c) {
    ds_tokenizer_free(c->tok);
    ds_tokens_free(&c->train);
    ds_tokens_free(&c->val);
}

/* One stretch of training, steps [st->step, to) of a run of s->total_steps under schedule s:
   batches from the corpus with st->rng, AdamW with clipping; losses[step] gets each step's loss;
   progress lines every 50 steps when label is not NULL (ETA: to the end of the run). Returns
   DS_OK or the error (a non-finite loss stops it). */
EX_MAYBE_UNUSED static int ex_train(ds_model *m, const ds_tokens *train, const ds_schedule *s, ds_train_state *st, long to, int B, int T, ds_pool *pool,
                    float *losses, const char *label, ds_error *err) {
    ds_adamw opt = ds_adamw_default();
    int32_t *in = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * (size_t)T * 2), *tg;
    double t0 = ds_now();
    long first = st->step;
    int rc = DS_OK;
    if (!in) return DS_ERR_NOMEM;
    tg = in + (size_t)B * T;
    for (; st->step < to && !rc; st->step++) {
        float loss = 0;
        double gnorm = 0, lr = ds_schedule_lr(s, st->step);
        if ((rc = ds_tokens_batch(train, &st->rng, B, T, in, tg, err))) break;
        ds_model_zero_grad(m);
        if (!(rc = ds_model_forward(m, in, tg, NULL, B, T, pool, &loss, err)) && !(rc = ds_model_backward(m, 1.0f, pool, err)))
            rc = ds_model_step(m, &opt, lr, &gnorm, pool, err);
        if (rc) break;
        losses[st->step] = loss;
        st->tokens_seen += (uint64_t)B * (uint64_t)T;
        if (label && ((st->step + 1) % 50 == 0 || st->step + 1 == s->total_steps)) {
            double dt = ds_now() - t0, done = (double)(st->step + 1 - first), eta = dt / done * (double)(s->total_steps - st->step - 1);
            printf("%sstep %5ld/%ld | loss %.4f | lr %.2e | grad norm %.3f | %6.0f tok/s | ETA %dm%02ds\n", label, st->step + 1, s->total_steps, loss, lr,
                   gnorm, (double)B * T * done / dt, (int)eta / 60, (int)eta % 60);
            fflush(stdout);
        }
    }
    free(in);
    return rc;
}

/* Curves on one SVG: n_curves series of values (NaN: no point), against their index. */
EX_MAYBE_UNUSED static void ex_svg(const char *path, const char *title, const float *const *curves, const int *lens, const char *const *names, int n_curves) {
    static const char *const colors[] = {"#2060c0", "#c02020", "#20a040", "#a060c0"};
    FILE *f = fopen(path, "w");
    double lo = 1e30, hi = -1e30, W = 760, H = 380, P = 50;
    int i, k, n = 1;
    if (!f) return;
    for (k = 0; k < n_curves; k++) {
        if (lens[k] > n) n = lens[k];
        for (i = 0; i < lens[k]; i++)
            if (curves[k][i] == curves[k][i]) { lo = curves[k][i] < lo ? curves[k][i] : lo; hi = curves[k][i] > hi ? curves[k][i] : hi; }
    }
    if (hi <= lo) hi = lo + 1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%g\" y=\"18\">%s</text>\n", W, H, P, title);
    fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/><line x1=\"%g\" y1=\"30\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", P,
            H - P, W - 10, H - P, P, P, H - P);
    for (i = 0; i <= 4; i++) fprintf(f, "<text x=\"5\" y=\"%g\">%.2f</text>\n", H - P - (H - P - 30) * i / 4 + 4, lo + (hi - lo) * i / 4);
    fprintf(f, "<text x=\"%g\" y=\"%g\">%d steps</text>\n", W - 90, H - P + 20, n);
    for (k = 0; k < n_curves; k++) {
        int stride = lens[k] > 800 ? lens[k] / 800 : 1;
        fprintf(f, "<text x=\"%g\" y=\"%g\" fill=\"%s\">%s</text>\n<polyline fill=\"none\" stroke=\"%s\" points=\"", W - 220, 40.0 + 16 * k,
                colors[k % 4], names[k], colors[k % 4]);
        for (i = 0; i < lens[k]; i += stride)
            if (curves[k][i] == curves[k][i])
                fprintf(f, "%.1f,%.1f ", P + (W - P - 10) * i / (n > 1 ? n - 1 : 1), H - P - (H - P - 30) * (curves[k][i] - lo) / (hi - lo));
        fprintf(f, "\"/>\n");
    }
    fprintf(f, "</svg>\n");
    fclose(f);
}
#endif
