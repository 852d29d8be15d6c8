/* 04_scaling.c - paper §3: a real IsoFLOP scaling study, on the bundled corpus, on a laptop.
 *
 *   build/04_scaling [--quick] [--budgets 4] [--c0 3e11] [--threads 2] [--out build/scaling] ... (--help)
 *
 * The method of §3.2, at a scale 2 cores can afford:
 *  1. A ladder of compute budgets C = M D (M: non-embedding FLOPs per token, D: tokens), each
 *     `--ratio` times the last. At each budget, a window of models from one family of shapes is
 *     trained with D = C / M tokens; when the best model of a window sits at its edge, the
 *     window grows on that side, so every IsoFLOP curve has an interior minimum.
 *  2. The error is validation bits-per-byte. Batch size and learning rate come from the paper's
 *     §3.1 fit (Eq. 1), evaluated once at the middle of the ladder, so that every run of a
 *     model can share its first stage (see 3). First, a §3.1 grid (batch x learning rate around
 *     Eq. 1) at the two smallest budgets is fitted with ds_fit_hyperparams; its exponents are
 *     printed beside Eq. 1's, and its eta_opt at the middle budget sets the learning rate
 *     (--quick skips the grid and trusts Eq. 1; --lr and --batch override).
 *  3. Multi-step schedule, reused as the paper reuses it: the first 80% of a run is constant
 *     learning rate after a fixed warmup, so a model's stage 1 for a small budget is a prefix of
 *     its stage 1 for a larger one. Each model keeps one "trunk" checkpoint that only moves
 *     forward; each budget branches from it and trains only the last 20% (both drops).
 *  4. ds_fit_isoflop: a parabola of BPB in log M per budget, its vertex M_opt, D_opt = C/M_opt;
 *     power laws M_opt = k C^a, D_opt = k' C^b and BPB_opt(C), printed beside the paper's.
 *  5. A prediction: one model at `--predict` times the largest budget, the family member closest
 *     to the fitted M_opt there; measured BPB against the extrapolated optimal-loss law.
 *  Writes runs.csv, isoflop.svg and laws.svg to --out.
 */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common.h"

/* The family: MHA with head size 16, d_ff = 8d/3 (to 16) as the M formula assumes, depth rising
   with width as in the paper's Table 3. */
static const int FAMILY[][2] = {{1, 16}, {1, 32}, {2, 32}, {2, 48}, {2, 64}, {3, 64}, {3, 80}, {4, 96}, {4, 128}, {5, 160}, {6, 192}, {8, 256}};
#define N_FAMILY ((int)(sizeof FAMILY / sizeof FAMILY[0]))
#define MAX_RUNS 256

typedef struct {
    int budgets, width, threads, seq, vocab, warmup, min_steps, quick;
    double c0, ratio, predict, lr, batch;
    unsigned long long seed;
    const char *data, *out;
} options;

typedef struct { /* one finished run */
    double C, M, D, bpb, seconds;
    int model, steps, shared_steps;
} run_t;

typedef struct { /* a model's trunk: its stage 1, trained as far as any budget has needed */
    long step;   /* trained to (0: not started) */
    char path[1024];
} trunk_t;

static ds_config family_config(int i, int vocab, int T) {
    ds_config c;
    memset(&c, 0, sizeof c);
    c.vocab = vocab, c.n_layers = FAMILY[i][0], c.d_model = FAMILY[i][1];
    c.n_heads = c.n_kv_heads = c.d_model / 16;
    c.d_ff = ds_ffn_dim(c.d_model, 16), c.max_seq = T;
    c.rope_theta = 10000, c.norm_eps = 1e-6f, c.init_std = 0.006f;
    return c;
}

static double family_m(int i, int T) { return ds_scale_m(FAMILY[i][0], FAMILY[i][1], T); }

/* Trains model i at budget C (steps total): the trunk to the run's stage-1 end, then the branch
   to the end; returns the validation BPB. */
static int train_run(const ex_corpus *c, const options *o, int i, long steps, int B, double lr, trunk_t *trunk, ds_pool *pool, run_t *r,
                     ds_error *err) {
    ds_config cfg = family_config(i, ds_tokenizer_padded_vocab(c->tok), o->seq);
    ds_schedule s = ds_schedule_multistep(lr, o->warmup, steps);
    long stage1 = (long)floor(s.stage1 * (double)steps + 1e-9);
    ds_train_state st;
    ds_model *m;
    float *losses = (float *)malloc(sizeof(float) * (size_t)steps);
    double t0 = ds_now();
    int rc = DS_OK;
    char label[64];
    if (!losses) return ds_error_set(err, DS_ERR_NOMEM, "out of memory");
    memset(&st, 0, sizeof st);
    if (trunk->step > 0 && trunk->step <= stage1) { /* (a trunk at -1 is never used) */
        r->shared_steps = (int)trunk->step;
        m = ds_checkpoint_load(trunk->path, B, o->seq, &st, err);
    } else {
        r->shared_steps = 0;
        st.rng = o->seed;
        if ((m = ds_model_new(&cfg, B, o->seq, err))) ds_model_init(m, o->seed);
    }
    if (!m) { free(losses); return err->code; }
    snprintf(label, sizeof label, "  [L%d d%d] ", FAMILY[i][0], FAMILY[i][1]);
    rc = ex_train(m, &c->train, &s, &st, stage1, B, o->seq, pool, losses, NULL, err);
    if (!rc && trunk->step >= 0 && stage1 > trunk->step) { /* the trunk moves forward: save it for larger budgets */
        rc = ds_checkpoint_save(m, NULL, &st, trunk->path, DS_DTYPE_F32, err);
        trunk->step = stage1;
    }
    if (!rc) rc = ex_train(m, &c->train, &s, &st, steps, B, o->seq, pool, losses, NULL, err);
    if (!rc) rc = ds_model_eval_bpb(m, c->tok, &c->val, B, o->seq, pool, NULL, &r->bpb, err);
    r->seconds = ds_now() - t0;
    r->model = i, r->steps = (int)steps;
    if (!rc)
        printf("%sM %.3g  D %.3g tokens  %ld steps (%d from the trunk)  train loss %.3f nats  val BPB %.4f  %.1f s\n", label, r->M, r->D, steps,
               r->shared_steps, losses[steps - 1], r->bpb, r->seconds);
    fflush(stdout);
    ds_model_free(m);
    free(losses);
    return rc;
}

/* y = a0 + a1 u + a2 u^2 (u = ln x) or y = k x^alpha (law != NULL), over [xa, xb] on a log x axis */
static void plot_curve(ex_plot *p, double xa, double xb, const double *a, const ds_power_law *law, const char *color, int dashed) {
    double xs[61], ys[61];
    int k;
    for (k = 0; k <= 60; k++) {
        double x = exp(log(xa) + (log(xb) - log(xa)) * k / 60), u = log(x);
        xs[k] = x, ys[k] = law ? ds_power_law_eval(law, x) : a[0] + u * (a[1] + u * a[2]);
    }
    ex_plot_line(p, xs, ys, 61, color, dashed);
}

/* The study's state: the options, the corpus, the batch and learning rate every run shares, the
   trunks, and the runs so far. */
typedef struct {
    options o;
    ex_corpus corpus;
    ds_pool *pool;
    int B;
    double lr;
    trunk_t trunks[N_FAMILY];
    run_t runs[MAX_RUNS], pred;
    int n_runs;
    ds_isoflop_fit fit;
    double C_pred, bpb_pred;
    long total_steps, shared_total;
} study;

static int nearest_model(double M, int n, int T) {
    int i, best = 0;
    for (i = 0; i < n; i++) if (fabs(log(family_m(i, T) / M)) < fabs(log(family_m(best, T) / M))) best = i;
    return best;
}

/* 1. §3.1 at laptop scale: Eq. 1 extrapolates five orders of magnitude down, so check it. A grid
   of (batch, learning rate) around Eq. 1's values at the two smallest budgets, on the model
   nearest the paper's M_opt at each; ds_fit_hyperparams fits eta_opt(C) and B_opt(C) through the
   near-optimal runs (within 0.25% of the best). The study's learning rate becomes the fitted
   eta_opt at the middle budget C_mid, kept within the grid. */
static int hp_grid(study *S, double C_mid, ds_error *err) {
    static const double lr_f[] = {1.0, 0.5, 0.25}, b_f[] = {1.0, 0.5};
    const options *o = &S->o;
    ds_hp_run hp[12];
    ds_power_law eta_law, b_law;
    int nhp = 0, sb, bi, li, nsel = 0, rc;
    printf("\n§3.1 hyperparameter grid (batch x learning rate around Eq. 1) at the two smallest budgets:\n");
    for (sb = 0; sb < 2; sb++) {
        double C = o->c0 * pow(o->ratio, sb), eq_lr = ds_law_eta_opt(C), eq_b = ds_law_batch_opt(C);
        int centre = nearest_model(ds_law_m_opt(C), N_FAMILY, o->seq);
        for (bi = 0; bi < 2; bi++)
            for (li = 0; li < 3; li++) {
                trunk_t none = {-1, ""}; /* never saved, never read */
                run_t r;
                long steps;
                int Bk = (int)floor(eq_b * b_f[bi] / o->seq + 0.5);
                if (Bk < 2) Bk = 2;
                memset(&r, 0, sizeof r);
                r.C = C, r.M = family_m(centre, o->seq);
                steps = (long)floor(C / r.M / ((double)Bk * o->seq) + 0.5);
                r.D = (double)steps * Bk * o->seq;
                printf("  C %.3g, batch %d x %d, lr %.4g (Eq. 1 x %.2f, x %.2f):", C, Bk, o->seq, eq_lr * lr_f[li], b_f[bi], lr_f[li]);
                if ((rc = train_run(&S->corpus, o, centre, steps, Bk, eq_lr * lr_f[li], &none, S->pool, &r, err))) return rc;
                hp[nhp].C = C, hp[nhp].batch = (double)Bk * o->seq, hp[nhp].lr = eq_lr * lr_f[li], hp[nhp].loss = r.bpb, nhp++;
            }
    }
    if (ds_fit_hyperparams(hp, nhp, 0.0025, &eta_law, &b_law, &nsel, err)) {
        printf("  the §3.1 fit refused the grid: %s; the study keeps Eq. 1's learning rate\n", err->msg);
    } else {
        double lo = 0.25 * S->lr, hi = S->lr;
        printf("  %d near-optimal runs (within 0.25%% of the best at their budget)\n", nsel);
        printf("  %-18s %-34s %s\n", "", "this grid (2 budgets: a rough fit)", "the paper (Eq. 1)");
        printf("  %-18s %.4g C^%+.3f                  0.3118 C^-0.1250\n", "eta_opt", eta_law.k, eta_law.alpha);
        printf("  %-18s %.4g C^%+.3f                  0.2920 C^+0.3271\n", "B_opt (tokens)", b_law.k, b_law.alpha);
        S->lr = ds_power_law_eval(&eta_law, C_mid);
        S->lr = S->lr < lo ? lo : S->lr > hi ? hi : S->lr;
    }
    printf("  -> learning rate %.4g (batch %d x %d) for every run\n", S->lr, S->B, o->seq);
    return DS_OK;
}

/* 2. One budget of the ladder: a window of models around the paper's M_opt(C) (the largest that
   still gets min_steps where that is smaller), grown on the side of an edge minimum. */
static int run_budget(study *S, int b, ds_error *err) {
    const options *o = &S->o;
    double C = o->c0 * pow(o->ratio, b), target = ds_law_m_opt(C);
    int lo, hi, centre, first = S->n_runs, best, k, i, fits = 0, rc;
    char done[N_FAMILY];
    memset(done, 0, sizeof done);
    for (i = 0; i < N_FAMILY; i++)
        if (C / family_m(i, o->seq) / ((double)S->B * o->seq) >= o->min_steps) fits = i + 1;
    if (fits < 3)
        return ds_error_set(err, DS_ERR_INVALID, "budget %.3g is too small: fewer than 3 models of the family get %d steps of %d tokens (raise --c0)", C,
                            o->min_steps, S->B * o->seq);
    centre = nearest_model(target, fits, o->seq);
    lo = centre - o->width / 2, hi = lo + o->width - 1;
    if (hi > fits - 1) hi = fits - 1, lo = hi - o->width + 1;
    if (lo < 0) lo = 0, hi = o->width - 1 < fits - 1 ? o->width - 1 : fits - 1;
    printf("\nbudget %d/%d: C = %.3g FLOPs (the paper's M_opt would be %.3g)\n", b + 1, o->budgets, C, target);
    for (;;) {
        for (i = lo; i <= hi; i++) {
            run_t *r;
            long steps;
            if (done[i]) continue;
            if (S->n_runs == MAX_RUNS) return ds_error_set(err, DS_ERR_RANGE, "more than %d runs", MAX_RUNS);
            r = &S->runs[S->n_runs];
            r->C = C, r->M = family_m(i, o->seq);
            steps = (long)floor(C / r->M / ((double)S->B * o->seq) + 0.5);
            r->D = (double)steps * S->B * o->seq; /* whole steps: the budget is met to within half a step */
            if ((rc = train_run(&S->corpus, o, i, steps, S->B, S->lr, &S->trunks[i], S->pool, r, err))) return rc;
            S->total_steps += steps, S->shared_total += r->shared_steps;
            done[i] = 1, S->n_runs++;
        }
        best = first;
        for (k = first; k < S->n_runs; k++) if (S->runs[k].bpb < S->runs[best].bpb) best = k;
        /* an edge minimum: grow the window on that side, if the family allows */
        if (S->runs[best].model == lo && lo > 0) { lo--; continue; }
        if (S->runs[best].model == hi && hi < fits - 1) { hi++; continue; }
        break;
    }
    if (S->runs[best].model == lo || S->runs[best].model == hi)
        printf("  (the best model is at the edge of what this budget allows; the fit will say so)\n");
    return DS_OK;
}

static void csv_row(FILE *csv, const study *S, const run_t *r) {
    int L = FAMILY[r->model][0], d = FAMILY[r->model][1];
    fprintf(csv, "%.6g,%d,%d,%.6g,%.6g,%.6g,%.6g,%d,%d,%.6g,%.6f,%.2f,%d\n", r->C, L, d, r->M, ds_scale_n1(L, d), ds_scale_n2(L, d, S->o.vocab),
            r->D, r->steps, S->B * S->o.seq, S->lr, r->bpb, r->seconds, r->shared_steps);
}

/* 3. ds_fit_isoflop over every run, printed beside the paper's laws */
static int fits(study *S, const char *csv_path, ds_error *err) {
    ds_isoflop_run iso[MAX_RUNS];
    const ds_isoflop_fit *fit = &S->fit;
    int i, b, rc;
    for (i = 0; i < S->n_runs; i++) iso[i].C = S->runs[i].C, iso[i].M = S->runs[i].M, iso[i].loss = S->runs[i].bpb;
    if ((rc = ds_fit_isoflop(iso, S->n_runs, &S->fit, err))) {
        fprintf(stderr, "the IsoFLOP fit failed: %s\n(the runs are in %s)\n", err->msg, csv_path);
        return rc;
    }
    printf("\n== IsoFLOP fit: a parabola of BPB in ln M per budget ==\n%-10s %-12s %-12s %-10s\n", "C", "M_opt", "D_opt", "BPB_opt");
    for (b = 0; b < fit->n_budgets; b++) printf("%-10.3g %-12.4g %-12.4g %-10.4f\n", fit->C[b], fit->M_opt[b], fit->D_opt[b], fit->loss_opt[b]);
    printf("\n%-26s %-24s %-10s\n", "law", "this study", "the paper");
    printf("%-26s %.4g C^%.3f (+-%.3f)  %-10s\n", "M_opt = k C^a", fit->m_law.k, fit->m_law.alpha, fit->m_law.se_alpha, "0.1715 C^0.5243");
    printf("%-26s %.4g C^%.3f (+-%.3f)  %-10s\n", "D_opt = k C^b", fit->d_law.k, fit->d_law.alpha, fit->d_law.se_alpha, "5.8316 C^0.4757");
    printf("%-26s %.4g C^%.4f (R^2 %.3f)\n", "BPB_opt = k C^c", fit->loss_law.k, fit->loss_law.alpha, fit->loss_law.r2);
    printf("a + b = %.3f (1 when C = M D exactly); Table 4 puts a between 0.45 and 0.73 by data quality (OpenWebText2 0.578)\n",
           fit->m_law.alpha + fit->d_law.alpha);
    return DS_OK;
}

/* 4. The prediction: a budget beyond the ladder, the family member nearest the fitted M_opt;
   measured BPB against the extrapolated optimal-loss law */
static int prediction(study *S, const char *csv_path, ds_error *err) {
    const options *o = &S->o;
    double M_fit;
    long steps;
    int best, rc;
    FILE *csv;
    S->C_pred = S->fit.C[S->fit.n_budgets - 1] * o->predict;
    M_fit = ds_power_law_eval(&S->fit.m_law, S->C_pred);
    best = nearest_model(M_fit, N_FAMILY, o->seq);
    memset(&S->pred, 0, sizeof S->pred);
    S->pred.C = S->C_pred, S->pred.M = family_m(best, o->seq);
    steps = (long)floor(S->C_pred / S->pred.M / ((double)S->B * o->seq) + 0.5);
    S->pred.D = (double)steps * S->B * o->seq;
    printf("\n== prediction at C = %.3g (%.3gx the largest budget fitted) ==\nfitted M_opt %.3g; the nearest model of the family: L%d d%d, M %.3g\n",
           S->C_pred, o->predict, M_fit, FAMILY[best][0], FAMILY[best][1], S->pred.M);
    if ((rc = train_run(&S->corpus, o, best, steps, S->B, S->lr, &S->trunks[best], S->pool, &S->pred, err))) return rc;
    S->total_steps += steps, S->shared_total += S->pred.shared_steps;
    S->bpb_pred = ds_power_law_eval(&S->fit.loss_law, S->C_pred);
    printf("predicted BPB %.4f (the optimal-loss law), measured %.4f: error %+.4f (%+.2f%%)\n", S->bpb_pred, S->pred.bpb, S->pred.bpb - S->bpb_pred,
           100 * (S->pred.bpb - S->bpb_pred) / S->bpb_pred);
    if (!(csv = fopen(csv_path, "a"))) return ds_error_set(err, DS_ERR_IO, "cannot append to %s", csv_path);
    csv_row(csv, S, &S->pred);
    return fclose(csv) ? ds_error_set(err, DS_ERR_IO, "cannot write %s", csv_path) : DS_OK;
}

/* 5. isoflop.svg (the profiles, their parabolas and vertices), laws.svg (M_opt and D_opt against
   the paper's), loss_law.svg (the optimal-loss law and the prediction) */
static void plots(const study *S) {
    const ds_isoflop_fit *fit = &S->fit;
    const run_t *pred = &S->pred;
    ex_plot p;
    char path[1024];
    double mlo = 1e300, mhi = 0, ylo = 1e300, yhi = 0, C_pred = S->C_pred;
    int i, b;
    for (i = 0; i < S->n_runs; i++) {
        mlo = S->runs[i].M < mlo ? S->runs[i].M : mlo, mhi = S->runs[i].M > mhi ? S->runs[i].M : mhi;
        ylo = S->runs[i].bpb < ylo ? S->runs[i].bpb : ylo, yhi = S->runs[i].bpb > yhi ? S->runs[i].bpb : yhi;
    }
    ylo = (pred->bpb < ylo ? pred->bpb : ylo) - 0.02, yhi += 0.02;
    mlo = pred->M < mlo ? pred->M : mlo, mhi = pred->M > mhi ? pred->M : mhi; /* the prediction run is drawn too */
    snprintf(path, sizeof path, "%s/isoflop.svg", S->o.out);
    if (ex_plot_open(&p, path, "04_scaling: IsoFLOP profiles (validation BPB against M; fitted parabolas, vertices as rings)", mlo / 1.3, mhi * 1.3,
                     ylo, yhi, 1, 0, "M (FLOPs/token)", "BPB")) {
        for (b = 0; b < fit->n_budgets; b++) {
            const char *col = EX_COLORS[b % 8];
            char lab[64];
            double m0 = 1e300, m1 = 0;
            for (i = 0; i < S->n_runs; i++)
                if (fabs(S->runs[i].C - fit->C[b]) <= 1e-9 * fit->C[b]) {
                    ex_plot_point(&p, S->runs[i].M, S->runs[i].bpb, col, 0);
                    m0 = S->runs[i].M < m0 ? S->runs[i].M : m0, m1 = S->runs[i].M > m1 ? S->runs[i].M : m1;
                }
            plot_curve(&p, m0 / 1.15, m1 * 1.15, fit->parabola[b], NULL, col, 0); /* over the models sampled */
            ex_plot_point(&p, fit->M_opt[b], fit->loss_opt[b], col, 1);
            snprintf(lab, sizeof lab, "C = %.2g", fit->C[b]);
            ex_plot_label(&p, 600, 45 + 16 * b, col, lab);
        }
        ex_plot_point(&p, pred->M, pred->bpb, "black", 0);
        ex_plot_label(&p, 600, 45 + 16 * fit->n_budgets, "black", "prediction run");
        ex_plot_close(&p);
    }
    snprintf(path, sizeof path, "%s/laws.svg", S->o.out);
    if (ex_plot_open(&p, path, "04_scaling: M_opt (blue), D_opt (red) against C; this study (solid), the paper (dashed)", fit->C[0] / 2, C_pred * 2,
                     fit->M_opt[0] / 10 < ds_law_m_opt(fit->C[0]) / 2 ? fit->M_opt[0] / 10 : ds_law_m_opt(fit->C[0]) / 2,
                     fit->D_opt[fit->n_budgets - 1] * 20 > ds_law_d_opt(C_pred) * 2 ? fit->D_opt[fit->n_budgets - 1] * 20 : ds_law_d_opt(C_pred) * 2, 1, 1,
                     "C (FLOPs)", "M_opt, D_opt")) {
        ds_power_law pm = {0.1715, 0.5243, 1, 0, 0, 0}, pd = {5.8316, 0.4757, 1, 0, 0, 0};
        for (b = 0; b < fit->n_budgets; b++) ex_plot_point(&p, fit->C[b], fit->M_opt[b], EX_COLORS[0], 0), ex_plot_point(&p, fit->C[b], fit->D_opt[b], EX_COLORS[1], 0);
        plot_curve(&p, fit->C[0] / 2, C_pred * 2, NULL, &fit->m_law, EX_COLORS[0], 0);
        plot_curve(&p, fit->C[0] / 2, C_pred * 2, NULL, &fit->d_law, EX_COLORS[1], 0);
        plot_curve(&p, fit->C[0] / 2, C_pred * 2, NULL, &pm, EX_COLORS[0], 1);
        plot_curve(&p, fit->C[0] / 2, C_pred * 2, NULL, &pd, EX_COLORS[1], 1);
        ex_plot_close(&p);
    }
    snprintf(path, sizeof path, "%s/loss_law.svg", S->o.out);
    {   /* this plot's own range: the law's ends, the prediction, the measurement */
        double a0 = ds_power_law_eval(&fit->loss_law, fit->C[0] / 2), a1 = ds_power_law_eval(&fit->loss_law, C_pred * 2);
        ylo = (a1 < pred->bpb ? a1 : pred->bpb) - 0.02, yhi = (a0 > pred->bpb ? a0 : pred->bpb) + 0.02;
    }
    if (ex_plot_open(&p, path, "04_scaling: optimal BPB against C, the fitted law, and the prediction run (ring: predicted, dot: measured)",
                     fit->C[0] / 2, C_pred * 2, ylo, yhi, 1, 0, "C (FLOPs)", "BPB")) {
        for (b = 0; b < fit->n_budgets; b++) ex_plot_point(&p, fit->C[b], fit->loss_opt[b], EX_COLORS[0], 0);
        plot_curve(&p, fit->C[0] / 2, C_pred * 2, NULL, &fit->loss_law, EX_COLORS[0], 0);
        ex_plot_point(&p, C_pred, S->bpb_pred, EX_COLORS[1], 1);
        ex_plot_point(&p, C_pred, pred->bpb, EX_COLORS[1], 0);
        ex_plot_close(&p);
    }
}

static int parse(int argc, char **argv, options *o) {
    int i;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: 04_scaling [options]\n"
                   "  --quick         3 budgets 2x apart, 3 models each, vocab 512, Eq. 1's learning rate\n"
                   "                  without the sweep: under 3 minutes\n"
                   "  --budgets N     budgets on the ladder (default %d)\n"
                   "  --c0 X          the smallest budget C, in FLOPs (default %g)\n"
                   "  --ratio X       each budget is X times the last (default %g)\n"
                   "  --width N       models first tried at each budget (default %d; the window grows\n"
                   "                  when the best model is at its edge)\n"
                   "  --predict X     the prediction run's budget, in multiples of the largest (default %g)\n"
                   "  --lr X          peak learning rate instead of Eq. 1's   --batch N  batch in tokens instead of Eq. 1's\n"
                   "  --warmup N      warmup steps (default %d)   --min-steps N  shortest run allowed (default %d)\n"
                   "  --vocab N       tokenizer size (default %d)   --seq N  sequence length (default %d)\n"
                   "  --threads N     (default %d)   --seed N (default %llu)   --data DIR (default %s)\n"
                   "  --out DIR       runs.csv, isoflop.svg, laws.svg and the trunk checkpoints (default %s)\n",
                   o->budgets, o->c0, o->ratio, o->width, o->predict, o->warmup, o->min_steps, o->vocab, o->seq, o->threads, o->seed, o->data, o->out);
            exit(0);
        }
        if (!strcmp(argv[i], "--quick")) { o->quick = 1, o->budgets = 3, o->width = 3, o->c0 = 4e11, o->ratio = 2, o->predict = 2, o->vocab = 512; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "%s: unknown option, or it needs a value (see --help)\n", argv[i]); return 0; }
        if (!strcmp(argv[i], "--budgets")) { if (!ex_int(argv[i], argv[i + 1], 2, 16, &o->budgets)) return 0; i++; }
        else if (!strcmp(argv[i], "--c0")) { if (!ex_num(argv[i], argv[i + 1], 1, 1e30, &o->c0)) return 0; i++; }
        else if (!strcmp(argv[i], "--ratio")) { if (!ex_num(argv[i], argv[i + 1], 1.000001, 1000, &o->ratio)) return 0; i++; }
        else if (!strcmp(argv[i], "--width")) { if (!ex_int(argv[i], argv[i + 1], 3, 64, &o->width)) return 0; i++; }
        else if (!strcmp(argv[i], "--predict")) { if (!ex_num(argv[i], argv[i + 1], 1.000001, 1000, &o->predict)) return 0; i++; }
        else if (!strcmp(argv[i], "--warmup")) { if (!ex_int(argv[i], argv[i + 1], 0, 1 << 30, &o->warmup)) return 0; i++; }
        else if (!strcmp(argv[i], "--lr")) { if (!ex_num(argv[i], argv[i + 1], 1e-12, 10, &o->lr)) return 0; i++; }
        else if (!strcmp(argv[i], "--batch")) { if (!ex_num(argv[i], argv[i + 1], 1, 1e9, &o->batch)) return 0; i++; }
        else if (!strcmp(argv[i], "--min-steps")) { if (!ex_int(argv[i], argv[i + 1], 1, 1 << 30, &o->min_steps)) return 0; i++; }
        else if (!strcmp(argv[i], "--vocab")) { if (!ex_int(argv[i], argv[i + 1], 260, 1 << 24, &o->vocab)) return 0; i++; }
        else if (!strcmp(argv[i], "--seq")) { if (!ex_int(argv[i], argv[i + 1], 2, 1 << 20, &o->seq)) return 0; i++; }
        else if (!strcmp(argv[i], "--threads")) { if (!ex_int(argv[i], argv[i + 1], 1, 1024, &o->threads)) return 0; i++; }
        else if (!strcmp(argv[i], "--seed")) { if (!ex_u64(argv[i], argv[i + 1], &o->seed)) return 0; i++; }
        else if (!strcmp(argv[i], "--data")) o->data = argv[++i];
        else if (!strcmp(argv[i], "--out")) o->out = argv[++i];
        else { fprintf(stderr, "unknown option %s (see --help)\n", argv[i]); return 0; }
    }
    if (o->budgets < 2 || o->budgets > 16 || o->width < 3 || o->width > N_FAMILY || !(o->c0 > 0) || !(o->ratio > 1) || !(o->predict > 1) ||
        o->warmup < 1 || o->min_steps < 5 * o->warmup / 4 + 10 || o->vocab < 260 || o->seq < 16 || o->threads < 1) {
        fprintf(stderr, "need: 2 <= budgets <= 16, 3 <= width <= %d, c0 > 0, ratio > 1, predict > 1, warmup >= 1, min-steps well above\n"
                        "warmup (>= 1.25 warmup + 10), vocab >= 260, seq >= 16, threads >= 1\n", N_FAMILY);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    static study S;
    options o = {4, 5, 2, 128, 1024, 40, 200, 0, 3e11, 2.5, 2.5, 0, 0, 1337, "data", "build/scaling"};
    ds_error err;
    int b, i, seqs;
    double t0, C_mid;
    char path[1024];
    FILE *csv;
    if (!parse(argc, argv, &o)) return 2;
    S.o = o;
    if (ex_outdir(o.out, &err)) { fprintf(stderr, "--out: %s\n", err.msg); return 1; }
    printf("== §3 an IsoFLOP scaling study on the bundled corpus ==\n");
    t0 = ds_now();
    if (ex_corpus_load(&S.corpus, o.data, o.vocab, &err) || !(S.pool = ds_pool_new(o.threads, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    /* hyperparameters from Eq. 1 at the ladder's geometric middle */
    C_mid = o.c0 * pow(o.ratio, (o.budgets - 1) / 2.0);
    S.lr = o.lr > 0 ? o.lr : ds_law_eta_opt(C_mid);
    seqs = (int)floor((o.batch > 0 ? o.batch : ds_law_batch_opt(C_mid)) / o.seq + 0.5);
    S.B = seqs < 2 ? 2 : seqs;
    printf("corpus: %zu training tokens, %zu validation tokens (vocab %d); T = %d\n", S.corpus.train.n, S.corpus.val.n, o.vocab, o.seq);
    printf("Eq. 1 at C = %.3g: learning rate %.4g, batch %.0f tokens -> %d sequences of %d (%d tokens)\n", C_mid, S.lr,
           ds_law_batch_opt(C_mid), S.B, o.seq, S.B * o.seq);
    printf("  (across the ladder Eq. 1 would move the learning rate %.4g..%.4g and the batch %.0f..%.0f tokens)\n",
           ds_law_eta_opt(o.c0 * pow(o.ratio, o.budgets - 1)), ds_law_eta_opt(o.c0), ds_law_batch_opt(o.c0),
           ds_law_batch_opt(o.c0 * pow(o.ratio, o.budgets - 1)));
    if (!(o.lr > 0) && !o.quick && hp_grid(&S, C_mid, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (i = 0; i < N_FAMILY; i++) {
        S.trunks[i].step = 0;
        snprintf(S.trunks[i].path, sizeof S.trunks[i].path, "%s/trunk_L%d_d%d", o.out, FAMILY[i][0], FAMILY[i][1]);
    }
    for (b = 0; b < o.budgets; b++)
        if (run_budget(&S, b, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    snprintf(path, sizeof path, "%s/runs.csv", o.out);
    if (!(csv = fopen(path, "w"))) { fprintf(stderr, "cannot write %s\n", path); return 1; }
    fprintf(csv, "C,n_layer,d_model,M,N1,N2,D,steps,batch_tokens,lr,val_bpb,seconds,trunk_steps_reused\n");
    for (i = 0; i < S.n_runs; i++) csv_row(csv, &S, &S.runs[i]);
    if (fclose(csv)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
    if (fits(&S, path, &err)) return 1;
    if (prediction(&S, path, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    plots(&S);
    printf("\n%d runs + 1 prediction: %ld steps trained, and %ld more (%.0f%% of the %ld the runs took) reused from the trunks; %.0f s in all\n",
           S.n_runs, S.total_steps - S.shared_total, S.shared_total, 100.0 * S.shared_total / S.total_steps, S.total_steps, ds_now() - t0);
    printf("runs: %s/runs.csv   plots: %s/isoflop.svg, %s/laws.svg, %s/loss_law.svg\n", o.out, o.out, o.out, o.out);
    ds_pool_free(S.pool);
    ex_corpus_free(&S.corpus);
    return 0;
}
