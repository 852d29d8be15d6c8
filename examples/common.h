/* common.h - what the training examples share: the bundled corpus, its tokenizer and encoded
 * splits, one training segment, and a small SVG plot. Include after deepseek.h (with its
 * implementation) in an example's single .c file. */
#ifndef DS_EXAMPLES_COMMON_H
#define DS_EXAMPLES_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>

#if defined(__GNUC__)
#define EX_MAYBE_UNUSED __attribute__((unused))
#else
#define EX_MAYBE_UNUSED
#endif

/* Under mpirun, a rank that dies takes the job down: the launcher sends the others SIGTERM. The
   examples that train in a ds_dp group say so on stderr before they go (write and _exit are safe
   in a handler); the last checkpoint is intact by construction (docs/distributed.md). */
#include <signal.h>
#include <unistd.h>
static void ex_on_term(int sig) {
    static const char msg[] = "terminated by a signal (under mpirun: another rank ended or failed); the last checkpoint is intact\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) _exit(143);
    _exit(143);
}
EX_MAYBE_UNUSED static void ex_say_when_terminated(void) { signal(SIGTERM, ex_on_term); }

/* ---- strict command-line numbers: the whole string, in range, or a message naming the flag ----
   ex_int / ex_num / ex_u64 print "--flag: ..." to stderr and return 0 when the value is not a
   whole number (or a finite number) within [lo, hi]; "abc", "12x", "nan", "inf" and values that do
   not fit are refused, never turned into 0 or wrapped. */
EX_MAYBE_UNUSED static int ex_int(const char *flag, const char *s, long lo, long hi, int *out) {
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < lo || v > hi) {
        fprintf(stderr, "%s: '%s' is not a whole number in [%ld, %ld]\n", flag, s, lo, hi);
        return 0;
    }
    *out = (int)v;
    return 1;
}
EX_MAYBE_UNUSED static int ex_num(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !(v == v) || !(v >= lo && v <= hi)) {
        fprintf(stderr, "%s: '%s' is not a number in [%g, %g]\n", flag, s, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}
EX_MAYBE_UNUSED static int ex_u64(const char *flag, const char *s, unsigned long long *out) {
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (!*s || *end || errno == ERANGE || *s == '-' || *s == '+' || *s == ' ') {
        fprintf(stderr, "%s: '%s' is not a whole number in [0, 2^64)\n", flag, s);
        return 0;
    }
    *out = v;
    return 1;
}

/* --precision: "fp32" or "bf16" (ds_model_set_precision: the CUDA build, or a CPU build with
   AVX512_BF16), else a message naming the flag and 0 */
EX_MAYBE_UNUSED static int ex_precision(const char *flag, const char *s, int *out) {
    if (!strcmp(s, "fp32")) *out = DS_PRECISION_FP32;
    else if (!strcmp(s, "bf16")) *out = DS_PRECISION_BF16;
    else {
        fprintf(stderr, "%s: fp32 or bf16, not '%s'\n", flag, s);
        return 0;
    }
    return 1;
}

/* Makes the output directory DIR (or accepts an existing one) and proves it writable by creating
   and removing a file in it, so that an unwritable --out fails before any training, with the
   real reason (read-only file system, not a directory, no permission). */
EX_MAYBE_UNUSED static int ex_outdir(const char *dir, ds_error *err) {
    char probe[1100];
    FILE *f;
    struct stat sb;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return ds_error_set(err, DS_ERR_IO, "cannot create '%s': %s", dir, strerror(errno));
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return ds_error_set(err, DS_ERR_IO, "'%s' is not a directory", dir);
    snprintf(probe, sizeof probe, "%s/.write-test", dir);
    if (!(f = fopen(probe, "wb"))) return ds_error_set(err, DS_ERR_IO, "cannot write in '%s': %s", dir, strerror(errno));
    fclose(f);
    remove(probe);
    return DS_OK;
}

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

/* a hash of a token set (the run description names the corpus by it) */
EX_MAYBE_UNUSED static unsigned long long ex_tokens_hash(const ds_tokens *t) {
    unsigned long long h = 1469598103934665603ull;
    size_t i;
    for (i = 0; i < t->n; i++) h = (h ^ (unsigned long long)(uint32_t)t->ids[i]) * 1099511628211ull;
    return h ^ t->n;
}

/* The first setting that differs between two run descriptions ("key=value ..."), in words. */
EX_MAYBE_UNUSED static const char *ex_run_diff(const char *saved, const char *now) {
    static char msg[256];
    const char *a = saved, *b = now;
    if (!*saved) return "its trainer state has no run description (an older checkpoint, or another program's)";
    while (*a || *b) {
        size_t la = strcspn(a, " "), lb = strcspn(b, " ");
        if (la != lb || strncmp(a, b, la)) {
            snprintf(msg, sizeof msg, "it was trained with %.*s, this run asks for %.*s", (int)(la < 100 ? la : 100), a, (int)(lb < 100 ? lb : 100), b);
            return msg;
        }
        a += la + (a[la] == ' '), b += lb + (b[lb] == ' ');
    }
    return "its settings differ";
}

EX_MAYBE_UNUSED static void ex_corpus_free(ex_corpus *c) {
    ds_tokenizer_free(c->tok);
    ds_tokens_free(&c->train);
    ds_tokens_free(&c->val);
}

/* One optimizer step of §2.3 on one batch: zero the gradients, forward (w: per-token weights,
   NULL for plain pretraining), backward, AdamW with clipping -- the library's four calls, as
   03_lr_schedules and 04_scaling train (through ex_train). 02_pretrain and 05_sft step through a
   ds_dp group instead, which also runs under mpirun (docs/distributed.md). */
EX_MAYBE_UNUSED static int ex_step(ds_model *m, const int32_t *in, const int32_t *tg, const float *w, int B, int T, const ds_adamw *opt, double lr,
                                   ds_pool *pool, double *loss, double *gnorm, ds_error *err) {
    int rc;
    ds_model_zero_grad(m);
    if ((rc = ds_model_forward(m, in, tg, w, B, T, pool, loss, err)) || (rc = ds_model_backward(m, 1.0f, pool, err))) return rc;
    return ds_model_step(m, opt, lr, gnorm, pool, err);
}

/* A progress line: step/total, loss, learning rate, gradient norm, tokens/s and the ETA to the end
   of the run from the pace since t0 over `done` steps. */
EX_MAYBE_UNUSED static void ex_progress(const char *label, long step, long total, double loss, double lr, double gnorm, double tokens_per_step,
                                        long done, double t0) {
    double dt = ds_now() - t0, eta = dt / (double)(done > 0 ? done : 1) * (double)(total - step);
    printf("%sstep %5ld/%ld | loss %.4f | lr %.2e | grad norm %.3f | %6.0f tok/s | ETA %dm%02ds\n", label, step, total, loss, lr, gnorm,
           tokens_per_step * (double)done / dt, (int)eta / 60, (int)eta % 60);
    fflush(stdout);
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
    if (!in) return ds_error_set(err, DS_ERR_NOMEM, "out of memory");
    tg = in + (size_t)B * T;
    for (; st->step < to && !rc; st->step++) {
        double loss = 0, gnorm = 0, lr = ds_schedule_lr(s, st->step);
        if ((rc = ds_tokens_batch(train, &st->rng, B, T, in, tg, err)) || (rc = ex_step(m, in, tg, NULL, B, T, &opt, lr, pool, &loss, &gnorm, err)))
            break;
        losses[st->step] = (float)loss;
        st->tokens_seen += (uint64_t)B * (uint64_t)T;
        if (label && ((st->step + 1) % 50 == 0 || st->step + 1 == s->total_steps))
            ex_progress(label, st->step + 1, s->total_steps, loss, lr, gnorm, (double)B * T, st->step + 1 - first, t0);
    }
    free(in);
    return rc;
}

/* 1 when two models of one shape hold bit-identical parameters (read through the portable copies,
   so it works on any backend) */
EX_MAYBE_UNUSED static int ex_same_params(const ds_model *a, const ds_model *b) {
    size_t n = ds_model_n_params(a);
    ds_float *x = (ds_float *)malloc(n * sizeof(ds_float) + 1), *y = (ds_float *)malloc(n * sizeof(ds_float) + 1);
    ds_error err;
    int same = x && y && n == ds_model_n_params(b) && !ds_model_get(a, DS_PARAMS, 0, n, x, &err) && !ds_model_get(b, DS_PARAMS, 0, n, y, &err) &&
               memcmp(x, y, n * sizeof(ds_float)) == 0;
    free(x);
    free(y);
    return same;
}

/* Streams a generated token to stdout as its bytes (special tokens print nothing): the on_token
   callback of ds_generate / ds_generate_next, with the tokenizer as its ctx. */
EX_MAYBE_UNUSED static void ex_print_token(void *ctx, int32_t id) {
    size_t n;
    const char *b = ds_tokenizer_token_bytes((const ds_tokenizer *)ctx, id, &n);
    if (b && !ds_tokenizer_is_special((const ds_tokenizer *)ctx, id)) fwrite(b, 1, n, stdout);
    fflush(stdout);
}

/* ---- SVG plots: linear or log axes, points, polylines, labels --------------------------------- */
typedef struct { FILE *f; double x0, x1, y0, y1, W, H, P; int logx, logy; } ex_plot;
EX_MAYBE_UNUSED static double ex_axis(double v, double lo, double hi, int logv) {
    return logv ? (log(v) - log(lo)) / (log(hi) - log(lo)) : (v - lo) / (hi - lo);
}
EX_MAYBE_UNUSED static double ex_px(const ex_plot *p, double x) { return p->P + (p->W - p->P - 20) * ex_axis(x, p->x0, p->x1, p->logx); }
EX_MAYBE_UNUSED static double ex_py(const ex_plot *p, double y) { return p->H - p->P - (p->H - p->P - 30) * ex_axis(y, p->y0, p->y1, p->logy); }
/* Opens path with a title, the axes over [x0, x1] x [y0, y1] (log or linear each) and 5 ticks each */
EX_MAYBE_UNUSED static int ex_plot_open(ex_plot *p, const char *path, const char *title, double x0, double x1, double y0, double y1, int logx,
                                        int logy, const char *xl, const char *yl) {
    int k;
    if (!(p->f = fopen(path, "w"))) return 0;
    if (!(y1 > y0)) y1 = y0 + 1;
    if (!(x1 > x0)) x1 = x0 + 1;
    p->x0 = x0, p->x1 = x1, p->y0 = y0, p->y1 = y1, p->W = 760, p->H = 420, p->P = 60, p->logx = logx, p->logy = logy;
    fprintf(p->f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"420\" font-family=\"sans-serif\" font-size=\"12\">\n"
                  "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"60\" y=\"18\">%s</text>\n", title);
    fprintf(p->f, "<line x1=\"60\" y1=\"360\" x2=\"740\" y2=\"360\" stroke=\"black\"/><line x1=\"60\" y1=\"30\" x2=\"60\" y2=\"360\" stroke=\"black\"/>\n");
    fprintf(p->f, "<text x=\"540\" y=\"400\">x: %s, y: %s</text>\n", xl, yl);
    for (k = 0; k <= 4; k++) {
        double x = logx ? exp(log(x0) + (log(x1) - log(x0)) * k / 4) : x0 + (x1 - x0) * k / 4;
        double y = logy ? exp(log(y0) + (log(y1) - log(y0)) * k / 4) : y0 + (y1 - y0) * k / 4;
        fprintf(p->f, "<text x=\"%.1f\" y=\"378\" text-anchor=\"%s\">%.3g</text>\n", ex_px(p, x), k == 4 ? "end" : "middle", x);
        fprintf(p->f, "<text x=\"5\" y=\"%.1f\">%.3g</text>\n", ex_py(p, y) + 4, y);
    }
    return 1;
}
EX_MAYBE_UNUSED static void ex_plot_point(ex_plot *p, double x, double y, const char *color, int hollow) {
    fprintf(p->f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\" stroke=\"%s\"/>\n", ex_px(p, x), ex_py(p, y), hollow ? "none" : color, color);
}
EX_MAYBE_UNUSED static void ex_plot_label(ex_plot *p, double x, double y, const char *color, const char *text) {
    fprintf(p->f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s</text>\n", x, y, color, text);
}
/* a polyline through (x[i], y[i]); points with a NaN y are skipped */
EX_MAYBE_UNUSED static void ex_plot_line(ex_plot *p, const double *x, const double *y, int n, const char *color, int dashed) {
    int k;
    fprintf(p->f, "<polyline fill=\"none\" stroke=\"%s\"%s points=\"", color, dashed ? " stroke-dasharray=\"6,4\"" : "");
    for (k = 0; k < n; k++)
        if (y[k] == y[k]) fprintf(p->f, "%.1f,%.1f ", ex_px(p, x[k]), ex_py(p, y[k]));
    fprintf(p->f, "\"/>\n");
}
EX_MAYBE_UNUSED static void ex_plot_close(ex_plot *p) { fprintf(p->f, "</svg>\n"); fclose(p->f); }
static const char *const EX_COLORS[] = {"#2060c0", "#c02020", "#20a040", "#a060c0", "#c08020", "#208080", "#606060", "#e040a0"};

/* Curves on one SVG: n_curves series of values (NaN: no point), against their index (step). */
EX_MAYBE_UNUSED static void ex_svg(const char *path, const char *title, const float *const *curves, const int *lens, const char *const *names, int n_curves) {
    double lo = 1e30, hi = -1e30, *xs, *ys;
    ex_plot p;
    int i, k, n = 1;
    for (k = 0; k < n_curves; k++) {
        if (lens[k] > n) n = lens[k];
        for (i = 0; i < lens[k]; i++)
            if (curves[k][i] == curves[k][i]) { lo = curves[k][i] < lo ? curves[k][i] : lo; hi = curves[k][i] > hi ? curves[k][i] : hi; }
    }
    if (!(xs = (double *)malloc(sizeof(double) * 2 * (size_t)n))) return;
    ys = xs + n;
    if (ex_plot_open(&p, path, title, 0, n > 1 ? n - 1 : 1, lo, hi, 0, 0, "step", "value")) {
        for (k = 0; k < n_curves; k++) {
            int stride = lens[k] > 800 ? lens[k] / 800 : 1, m = 0; /* at most ~800 points a curve */
            for (i = 0; i < lens[k]; i += stride) xs[m] = i, ys[m++] = curves[k][i];
            ex_plot_label(&p, 520, 45.0 + 16 * k, EX_COLORS[k % 8], names[k]);
            ex_plot_line(&p, xs, ys, m, EX_COLORS[k % 8], 0);
        }
        ex_plot_close(&p);
    }
    free(xs);
}
#endif
