/* 06_dpo.c - paper §4: Direct Preference Optimization of the SFT model.
 *
 *   build/06_dpo [--init build/sft/ckpt] [--beta 0.1] [--out build/dpo] ...   (--help)
 *
 * 1. Makes preference pairs for the task (examples/task.h) as TRL JSONL. Training pairs are
 *    on-policy: the SFT model answers the training prompts, and where it is wrong its own reply
 *    is the rejected one (the right answer is chosen); where it is right, the rejected reply is
 *    a synthetic miscount. Held-out pairs (held-out combinations) are all synthetic: half
 *    miscounts, half the word repeated far past the count (the failure the paper's repetition
 *    ratio measures). Both files are read back with ds_dataset_load, as any TRL JSONL would be.
 * 2. Computes the reference log-probs of every pair once, with the frozen SFT model, so only one
 *    model is resident while training.
 * 3. Trains one epoch (as the paper does) with warmup then cosine, logging TRL's names.
 * 4. Reports the DPO reward accuracy and margin on held-out pairs, the task's accuracy and
 *    repetition ratio, validation bits per byte, and the summary table of the whole pipeline
 *    (reading the base and SFT rows from 05_sft's metrics.tsv).
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
    int pairs, seq, warmup, threads, n_train, n_heldout, n_eval, max_new, epochs;
    double lr;
    ds_dpo dpo;
    unsigned long long seed;
    const char *init, *out, *val, *sft_metrics, *train, *heldout;
    int precision; /* DS_PRECISION_FP32 (the default) or _BF16: the policy and the reference alike */
} options;

static void usage(const options *o) {
    printf("usage: 06_dpo [options]\n"
           "  --init DIR           the SFT checkpoint: the policy's start and the reference (default %s)\n"
           "  --train FILE         preference JSONL instead of the generated pairs (--heldout FILE likewise)\n"
           "  --n-train N          generated training pairs (default %d)   --n-heldout N  held-out pairs (default %d)\n"
           "  --epochs N           (default %d)   --lr X  peak learning rate (default %g)   --warmup N (default %d)\n"
           "  --pairs N            pairs per step (default %d)   --seq N  tokens per sequence (default %d)\n"
           "  --beta X             (default %g)   --label-smoothing X  conservative DPO (default %g)   --ipo  the IPO loss\n"
           "  --n-eval N           held-out prompts scored (default %d)   --max-new N (default %d)\n"
           "  --val FILE           validation tokens (default %s)   --sft-metrics FILE (default %s)\n"
           "  --threads N          (default %d)   --seed N (default %llu)   --out DIR (default %s)\n"
           "  --precision P        fp32 (default) or bf16: the paper's bf16 products (§2.4; the CUDA build, or a CPU with AVX512_BF16)\n",
           o->init, o->n_train, o->n_heldout, o->epochs, o->lr, o->warmup, o->pairs, o->seq, o->dpo.beta, o->dpo.label_smoothing, o->n_eval,
           o->max_new, o->val, o->sft_metrics, o->threads, o->seed, o->out);
}

/* reference (or policy) log-probs of every pair of d, o->pairs at a time */
static int all_logps(ds_model *m, const ds_dataset *d, const options *o, ds_pool *pool, double *c, double *r, ds_error *err) {
    const ds_example **p = (const ds_example **)malloc(sizeof(ds_example *) * (size_t)o->pairs);
    int i, k, rc = DS_OK;
    if (!p) return ds_error_set(err, DS_ERR_NOMEM, "out of memory");
    for (i = 0; i < d->n && !rc; i += o->pairs) {
        int n = d->n - i < o->pairs ? d->n - i : o->pairs;
        for (k = 0; k < n; k++) p[k] = &d->ex[i + k];
        rc = ds_dpo_logps(m, p, n, o->seq, &o->dpo, pool, c + i, r + i, err);
    }
    free((void *)p);
    return rc;
}

static int load_pairs(ds_dataset *d, ds_tokenizer *tok, const char *path, const options *o, ds_error *err) {
    memset(d, 0, sizeof *d);
    if (ds_dataset_load(d, tok, DS_DATA_PREFERENCE, path, o->seq + 1, DS_DATA_SKIP_BAD, ex_report_bad_line, (void *)path, err)) return err->code;
    printf("%s: %d pairs (%ld lines, %ld skipped, %ld cut to %d tokens)\n", path, d->n, d->lines, d->bad, d->truncated, o->seq + 1);
    if (d->n == 0) return ds_error_set(err, DS_ERR_INVALID, "%s has no usable pair", path);
    return DS_OK;
}

int main(int argc, char **argv) {
    options o;
    ds_error err;
    ds_pool *pool;
    ds_tokenizer *tok;
    ds_model *m;
    ds_dataset tr, ho;
    ds_tokens val;
    ds_schedule s;
    ds_adamw opt = ds_adamw_default();
    task_score sc;
    ds_dpo_stats hs, ref_hs;
    double *ref, *pol, bpb = NAN, t0, t_ref;
    char path[1024], train_path[1024], ho_path[1024], line[256];
    const ds_example **batch;
    int i, *idx, have_val;
    long steps, step;
    uint64_t rng;
    FILE *f;
    memset(&o, 0, sizeof o), memset(&sc, 0, sizeof sc);
    o.pairs = 16, o.seq = 64, o.warmup = 10, o.threads = 2, o.n_train = 2000, o.n_heldout = 200, o.n_eval = 200, o.max_new = 40, o.epochs = 1;
    o.lr = 3e-5, o.dpo = ds_dpo_default(), o.seed = 4321;
    o.dpo.beta = 0.5; /* the library's default is TRL's 0.1; at this scale 0.5 keeps the policy near the SFT model (docs/alignment.md) */
    o.init = "build/sft/ckpt", o.out = "build/dpo", o.val = "build/pretrain/val.tok", o.sft_metrics = "build/sft/metrics.tsv";
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(&o); return 0; }
        if (!strcmp(a, "--ipo")) { o.dpo.loss_type = DS_DPO_IPO; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "%s: unknown option, or it needs a value (see --help)\n", a); return 2; }
        if (!strcmp(a, "--init")) o.init = argv[++i];
        else if (!strcmp(a, "--train")) o.train = argv[++i];
        else if (!strcmp(a, "--heldout")) o.heldout = argv[++i];
        else if (!strcmp(a, "--n-train")) { if (!ex_int(a, argv[++i], 1, 1 << 24, &o.n_train)) return 2; }
        else if (!strcmp(a, "--n-heldout")) { if (!ex_int(a, argv[++i], 1, 1 << 24, &o.n_heldout)) return 2; }
        else if (!strcmp(a, "--epochs")) { if (!ex_int(a, argv[++i], 1, 10000, &o.epochs)) return 2; }
        else if (!strcmp(a, "--lr")) { if (!ex_num(a, argv[++i], 1e-12, 10, &o.lr)) return 2; }
        else if (!strcmp(a, "--warmup")) { if (!ex_int(a, argv[++i], 0, 1 << 30, &o.warmup)) return 2; }
        else if (!strcmp(a, "--pairs")) { if (!ex_int(a, argv[++i], 1, 4096, &o.pairs)) return 2; }
        else if (!strcmp(a, "--seq")) { if (!ex_int(a, argv[++i], 2, 1 << 20, &o.seq)) return 2; }
        else if (!strcmp(a, "--beta")) { if (!ex_num(a, argv[++i], 1e-6, 1e6, &o.dpo.beta)) return 2; }
        else if (!strcmp(a, "--label-smoothing")) { if (!ex_num(a, argv[++i], 0, 0.5, &o.dpo.label_smoothing)) return 2; }
        else if (!strcmp(a, "--n-eval")) { if (!ex_int(a, argv[++i], 0, 1 << 20, &o.n_eval)) return 2; }
        else if (!strcmp(a, "--max-new")) { if (!ex_int(a, argv[++i], 1, 1 << 20, &o.max_new)) return 2; }
        else if (!strcmp(a, "--val")) o.val = argv[++i];
        else if (!strcmp(a, "--sft-metrics")) o.sft_metrics = argv[++i];
        else if (!strcmp(a, "--threads")) { if (!ex_int(a, argv[++i], 1, 1024, &o.threads)) return 2; }
        else if (!strcmp(a, "--precision")) { if (!ex_precision(a, argv[++i], &o.precision)) return 2; }
        else if (!strcmp(a, "--seed")) { if (!ex_u64(a, argv[++i], &o.seed)) return 2; }
        else if (!strcmp(a, "--out")) o.out = argv[++i];
        else { fprintf(stderr, "unknown option %s (see --help)\n", a); return 2; }
    }
    if (o.pairs < 1 || o.seq < 8 || o.warmup < 0 || o.threads < 1 || o.n_train < 1 || o.n_heldout < 1 || o.n_eval < 1 || o.max_new < 8 ||
        o.epochs < 1 || !(o.lr > 0) || !(o.dpo.beta > 0) || !(o.dpo.label_smoothing >= 0 && o.dpo.label_smoothing < 0.5)) {
        fprintf(stderr, "pairs, threads, n-train, n-heldout, n-eval, epochs >= 1; seq, max-new >= 8; lr, beta > 0; 0 <= label-smoothing < 0.5\n");
        return 2;
    }
    if (ex_outdir(o.out, &err)) { fprintf(stderr, "--out: %s\n", err.msg); return 1; }
    printf("== §4 direct preference optimization (%s, beta %g%s) ==\n", o.dpo.loss_type == DS_DPO_IPO ? "IPO" : "sigmoid loss", o.dpo.beta,
           o.dpo.label_smoothing > 0 ? ", label smoothing" : "");
    t0 = ds_now();
    snprintf(path, sizeof path, "%s/tokenizer.json", o.init);
    if (!(pool = ds_pool_new(o.threads, &err)) || !(tok = ds_tokenizer_load(path, &err)) ||
        !(m = ds_checkpoint_load(o.init, 2 * o.pairs, o.seq, NULL, &err))) {
        fprintf(stderr, "%s\n(06_dpo starts from the SFT checkpoint: run 05_sft first, or pass --init)\n", err.msg);
        return 1;
    }
    if (ds_model_set_precision(m, o.precision, &err)) { fprintf(stderr, "--precision: %s\n", err.msg); return 1; }
    if (!o.train) {
        snprintf(train_path, sizeof train_path, "%s/train.jsonl", o.out);
        int n_wrong = 0;
        double tg = ds_now();
        if (task_write_pref_onpolicy(m, tok, train_path, o.n_train, o.seed, o.max_new, pool, &n_wrong, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("the SFT model answered %d training prompts (%.1f s): %d wrong, each its own rejected reply; the other rejected replies are\n"
               "synthetic miscounts (by 1 or 2)\n", o.n_train, ds_now() - tg, n_wrong);
        o.train = train_path;
    }
    if (!o.heldout) {
        snprintf(ho_path, sizeof ho_path, "%s/heldout.jsonl", o.out);
        if (task_write_pref(ho_path, o.n_heldout, o.seed + 1, 1, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        o.heldout = ho_path;
    }
    if (load_pairs(&tr, tok, o.train, &o, &err) || load_pairs(&ho, tok, o.heldout, &o, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    have_val = ds_tokens_load(o.val, &val, &err) == DS_OK;

    /* the reference: the SFT model's log-probs, once */
    t_ref = ds_now();
    ref = (double *)malloc(sizeof(double) * 2 * (size_t)(tr.n + ho.n));
    pol = (double *)malloc(sizeof(double) * 2 * (size_t)ho.n);
    if (!ref || !pol) return 1;
    if (all_logps(m, &tr, &o, pool, ref, ref + tr.n, &err) || all_logps(m, &ho, &o, pool, ref + 2 * tr.n, ref + 2 * tr.n + ho.n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    ds_dpo_loss(&o.dpo, ho.n, ref + 2 * tr.n, ref + 2 * tr.n + ho.n, ref + 2 * tr.n, ref + 2 * tr.n + ho.n, &ref_hs, NULL, NULL);
    printf("reference log-probs of %d + %d pairs computed once with the frozen SFT model (%.1f s); held-out logps/chosen %.3f, logps/rejected %.3f\n",
           tr.n, ho.n, ds_now() - t_ref, ref_hs.logps_chosen, ref_hs.logps_rejected);

    /* one epoch (or more), shuffled, warmup then cosine */
    steps = ((long)tr.n * o.epochs + o.pairs - 1) / o.pairs;
    s = ds_schedule_cosine(o.lr, o.warmup, steps);
    idx = (int *)malloc(sizeof(int) * (size_t)tr.n);
    batch = (const ds_example **)malloc(sizeof(ds_example *) * (size_t)o.pairs);
    if (!idx || !batch) return 1;
    rng = o.seed;
    {
        double *rc = (double *)malloc(sizeof(double) * 2 * (size_t)o.pairs), *rr = rc + o.pairs, ts = ds_now();
        int pos = tr.n;
        if (!rc) return 1;
        printf("\nDPO: %ld steps of %d pairs, peak lr %g\n", steps, o.pairs, o.lr);
        for (step = 0; step < steps; step++) {
            ds_dpo_stats st;
            double gnorm = 0, lr = ds_schedule_lr(&s, step);
            int k;
            for (k = 0; k < o.pairs; k++, pos++) {
                if (pos >= tr.n) ex_shuffle(idx, tr.n, &rng), pos = 0;
                batch[k] = &tr.ex[idx[pos]], rc[k] = ref[idx[pos]], rr[k] = ref[tr.n + idx[pos]];
            }
            ds_model_zero_grad(m);
            if (ds_dpo_grad(m, &o.dpo, batch, o.pairs, o.seq, rc, rr, 1.0f, pool, &st, &err) || ds_model_step(m, &opt, lr, &gnorm, pool, &err)) {
                fprintf(stderr, "step %ld: %s\n", step + 1, err.msg);
                return 1;
            }
            if ((step + 1) % 10 == 0 || step + 1 == steps || step == 0) {
                double dt = ds_now() - ts, eta = dt / (double)(step + 1) * (double)(steps - step - 1);
                printf("[dpo] step %4ld/%ld | loss %.4f | rewards/chosen %+.3f | rewards/rejected %+.3f | rewards/accuracies %.2f | "
                       "rewards/margins %.3f | logps/chosen %.2f | logps/rejected %.2f | grad_norm %.3f | learning_rate %.2e | %.1f pairs/s | ETA %dm%02ds\n",
                       step + 1, steps, st.loss, st.rewards_chosen, st.rewards_rejected, st.rewards_accuracies, st.rewards_margins,
                       st.logps_chosen, st.logps_rejected, gnorm, lr, (double)o.pairs * (step + 1) / dt, (int)eta / 60, (int)eta % 60);
                fflush(stdout);
            }
        }
        free(rc);
    }

    /* held-out pairs: the trained policy against the frozen reference */
    if (all_logps(m, &ho, &o, pool, pol, pol + ho.n, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    ds_dpo_loss(&o.dpo, ho.n, pol, pol + ho.n, ref + 2 * tr.n, ref + 2 * tr.n + ho.n, &hs, NULL, NULL);
    printf("\nheld-out pairs: loss %.4f (ln 2 = 0.6931 before training) | rewards/accuracies %.1f%% | rewards/margins %.3f\n", hs.loss,
           100 * hs.rewards_accuracies, hs.rewards_margins);
    printf("\nthe DPO model, on held-out prompts:\n");
    if ((have_val && ds_model_eval_bpb(m, tok, &val, o.pairs, o.seq, pool, NULL, &bpb, &err)) || task_eval(m, tok, o.n_eval, o.max_new, 3, pool, &sc, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    snprintf(path, sizeof path, "%s/ckpt", o.out);
    if (ds_checkpoint_save(m, tok, NULL, path, DS_DTYPE_F32, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }

    /* the pipeline's summary, printed and written to OUT/summary.md */
    {
        ds_buf t = {0, 0, 0, 0};
        ds_buf_printf(&t, "| stage | val BPB | accuracy | repetition ratio | DPO reward accuracy | DPO margin |\n| --- | --- | --- | --- | --- | --- |\n");
        if ((f = fopen(o.sft_metrics, "r"))) {
            if (fgets(line, sizeof line, f))
                while (fgets(line, sizeof line, f)) {
                    char stage[32];
                    double b, a, r;
                    if (sscanf(line, "%31s %lf %lf %lf", stage, &b, &a, &r) == 4)
                        ds_buf_printf(&t, "| %s | %.4f | %.1f%% | %.1f%% | | |\n", stage, b, 100 * a, 100 * r);
                }
            fclose(f);
        } else {
            ds_buf_printf(&t, "| (no %s: run 05_sft for the base and SFT rows) | | | | | |\n", o.sft_metrics);
        }
        ds_buf_printf(&t, "| DPO | %.4f | %.1f%% | %.1f%% | %.1f%% | %.3f |\n", bpb, 100 * sc.accuracy, 100 * sc.repetition,
                      100 * hs.rewards_accuracies, hs.rewards_margins);
        ds_buf_printf(&t, "\n(%d held-out prompts, greedy, replies up to %d tokens; %d held-out preference pairs; val BPB on the corpus's "
                          "validation split)\n", sc.n, o.max_new, ho.n);
        printf("\n== summary ==\n%s", t.data);
        snprintf(line, sizeof line, "%s/summary.md", o.out);
        if (!t.oom) ds_write_file_atomic(line, t.data, t.len, &err);
        ds_buf_free(&t);
    }
    printf("saved %s (%.0f s)\n", path, ds_now() - t0);
    free(ref), free(pol), free(idx), free((void *)batch);
    if (have_val) ds_tokens_free(&val);
    ds_dataset_free(&tr), ds_dataset_free(&ho);
    ds_model_free(m);
    ds_tokenizer_free(tok);
    ds_pool_free(pool);
    return 0;
}
