/* torch_ref.c - dump a model, a batch, deepseek.h's loss and every parameter gradient as
 * safetensors, for tools/check_torch.py to recompute in PyTorch.
 *   build/torch_ref OUT.safetensors V D L H KV F B T SEED      (float; build/torch_ref_f64: double)
 * Tensors: the parameters under their Hugging Face names, "grad.<name>" for each gradient,
 * "batch.inputs" / "batch.targets" (I32) and "batch.weights" (F32); metadata: the config and loss.
 *   build/torch_ref --dpo OUT V D L H KV F T SEED LOSS_TYPE BETA SMOOTHING
 * DPO instead (LOSS_TYPE 0: sigmoid, 1: IPO): 3 pairs of random sequences with prompt masks, the
 * rows chosen 0..2 then rejected 3..5 ("batch.weights" is the response mask), random reference
 * log-probs "dpo.ref" (F64, chosen then rejected), and ds_dpo_grad's loss and gradients. */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const char *name; const char *dtype; int rows, cols; const void *data; size_t bytes; } entry;

static int write_safetensors(const char *path, const entry *e, int n, const char *meta) {
    ds_buf h = {0, 0, 0, 0}, out = {0, 0, 0, 0};
    size_t off = 0, hl;
    uint64_t le;
    int i, b;
    ds_error err;
    ds_buf_printf(&h, "{\"__metadata__\":%s", meta);
    for (i = 0; i < n; i++) {
        ds_buf_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":", e[i].name, e[i].dtype);
        if (e[i].cols) ds_buf_printf(&h, "[%d,%d]", e[i].rows, e[i].cols);
        else ds_buf_printf(&h, "[%d]", e[i].rows);
        ds_buf_printf(&h, ",\"data_offsets\":[%zu,%zu]}", off, off + e[i].bytes);
        off += e[i].bytes;
    }
    ds_buf_puts(&h, "}");
    while (h.len % 8) ds_buf_puts(&h, " ");
    hl = h.len;
    for (b = 0, le = 0; b < 8; b++) le |= (uint64_t)((hl >> (8 * b)) & 0xFF) << (8 * b); /* little-endian on x86 and arm */
    ds_buf_append(&out, &le, 8);
    ds_buf_append(&out, h.data, h.len);
    for (i = 0; i < n; i++) ds_buf_append(&out, e[i].data, e[i].bytes);
    if (out.oom || ds_write_file_atomic(path, out.data, out.len, &err)) { fprintf(stderr, "cannot write %s\n", path); return 1; }
    ds_buf_free(&h);
    ds_buf_free(&out);
    return 0;
}

static int dpo_main(int argc, char **argv);
static int adamw_main(int argc, char **argv);

/* The model's flat parameters or gradients, copied to the host through the portable API (the
   dump reads them there, whatever the backend). Freed at exit. */
static ds_float *host_copy(const ds_model *m, int which) {
    ds_float *a = (ds_float *)malloc(ds_model_n_params(m) * sizeof(ds_float));
    ds_error err;
    if (!a || ds_model_get(m, which, 0, ds_model_n_params(m), a, &err)) { fprintf(stderr, "out of memory\n"); exit(1); }
    return a;
}

/* The entries every dump holds: each parameter under its HF name, "grad.<name>" for each gradient,
   then the batch (n tokens): "batch.inputs", "batch.targets" (I32), "batch.weights" (F32). Room
   for `extra` more entries after those; *n_used gets the count filled. names holds the grad names. */
static entry *model_entries(ds_model *m, const int32_t *in, const int32_t *tg, const float *w, int n, int extra, char (**names)[80],
                            int *n_used) {
    const char *dt = sizeof(ds_float) == 8 ? "F64" : "F32";
    int k = ds_model_n_tensors(m), i;
    entry *e = (entry *)calloc((size_t)(2 * k + 3 + extra), sizeof(entry));
    const ds_float *P = host_copy(m, DS_PARAMS), *G = host_copy(m, DS_GRADS);
    *names = (char(*)[80])calloc((size_t)k, 80);
    if (!e || !*names) { free(e); free(*names); return NULL; }
    for (i = 0; i < k; i++) {
        const ds_tensor *t = ds_model_tensor(m, i);
        e[i].name = t->name, e[i].dtype = dt, e[i].rows = t->rows, e[i].cols = t->cols;
        e[i].data = P + t->offset, e[i].bytes = t->numel * sizeof(ds_float);
        snprintf((*names)[i], 80, "grad.%s", t->name);
        e[k + i] = e[i], e[k + i].name = (*names)[i], e[k + i].data = G + t->offset;
    }
    e[2 * k].name = "batch.inputs", e[2 * k].dtype = "I32", e[2 * k].rows = n, e[2 * k].data = in, e[2 * k].bytes = sizeof(int32_t) * (size_t)n;
    e[2 * k + 1] = e[2 * k], e[2 * k + 1].name = "batch.targets", e[2 * k + 1].data = tg;
    e[2 * k + 2] = e[2 * k], e[2 * k + 2].name = "batch.weights", e[2 * k + 2].dtype = "F32", e[2 * k + 2].data = w;
    *n_used = 2 * k + 3;
    return e;
}

/* The model of argv[2..7] (V D L H KV F) for batches of B x T, initialized from seed with
   init_std 0.1 (larger than the paper's 0.006, so that every path carries a clear gradient) and
   RMSNorm gains away from 1; and a batch of B*T random tokens with weights 0, 0.5 or 1. */
static ds_model *ref_model(char **argv, int B, int T, uint64_t seed, int32_t **in, int32_t **tg, float **w, ds_config *c) {
    ds_error err;
    ds_model *m;
    uint64_t r;
    int i, k, n = B * T;
    ds_config_preset("test", c, &err);
    c->vocab = atoi(argv[2]), c->d_model = atoi(argv[3]), c->n_layers = atoi(argv[4]), c->n_heads = atoi(argv[5]);
    c->n_kv_heads = atoi(argv[6]), c->d_ff = atoi(argv[7]), c->max_seq = T, c->init_std = 0.1;
    if (!(m = ds_model_new(c, B, T, &err))) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    ds_model_init(m, seed);
    *in = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    *tg = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    *w = (float *)malloc(sizeof(float) * (size_t)n);
    if (!*in || !*tg || !*w) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (r = seed * 2654435761u + 1, i = 0; i < n; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        (*in)[i] = (int32_t)((r >> 33) % (uint64_t)c->vocab);
        (*tg)[i] = (int32_t)((r >> 13) % (uint64_t)c->vocab);
        (*w)[i] = (float)((r >> 50) % 3) * 0.5f; /* 0, 0.5 or 1: masked and weighted tokens */
    }
    for (k = 0; k < ds_model_n_tensors(m); k++) { /* RMSNorm gains away from 1 */
        const ds_tensor *t = ds_model_tensor(m, k);
        ds_float *g = (ds_float *)malloc(t->numel * sizeof(ds_float));
        size_t j;
        if (!t->cols && g) {
            for (j = 0; j < t->numel; j++) g[j] = (ds_float)(1.0 + 0.1 * (double)((j * 7919) % 13) / 13.0);
            ds_model_set_tensor(m, k, g, &err);
        }
        free(g);
    }
    return m;
}

int main(int argc, char **argv) {
    ds_config c;
    ds_error err;
    ds_model *m;
    int B, T, i, n, k;
    int32_t *in, *tg;
    float *w;
    double loss;
    ds_float *tl;
    entry *e;
    char meta[512], (*names)[80];
    const char *dt = sizeof(ds_float) == 8 ? "F64" : "F32";
    if (argc > 1 && !strcmp(argv[1], "--dpo")) return dpo_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "--adamw")) return adamw_main(argc - 1, argv + 1);
    if (argc != 11) {
        fprintf(stderr, "usage: torch_ref OUT V D L H KV F B T SEED | --dpo OUT V D L H KV F T SEED TYPE BETA EPS | --adamw OUT V D L H KV F B T SEED STEPS\n");
        return 2;
    }
    B = atoi(argv[8]), T = atoi(argv[9]), n = B * T;
    m = ref_model(argv, B, T, strtoull(argv[10], NULL, 10), &in, &tg, &w, &c);
    ds_model_zero_grad(m);
    if (!(tl = (ds_float *)malloc(sizeof(ds_float) * (size_t)n)) || ds_model_forward(m, in, tg, w, B, T, NULL, &loss, &err) ||
        ds_model_copy_token_losses(m, tl, &err) || ds_model_backward(m, 1.0f, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    { /* the loss in full precision, recomputed from the per-token losses */
        double s = 0, ws = 0;
        for (i = 0; i < n; i++) { s += w[i] * (double)tl[i]; ws += w[i]; }
        snprintf(meta, sizeof meta, "{\"vocab\":\"%d\",\"d_model\":\"%d\",\"n_layers\":\"%d\",\"n_heads\":\"%d\",\"n_kv_heads\":\"%d\","
                 "\"d_ff\":\"%d\",\"B\":\"%d\",\"T\":\"%d\",\"rope_theta\":\"10000\",\"norm_eps\":\"1e-06\",\"loss\":\"%.17g\"}",
                 c.vocab, c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.d_ff, B, T, s / ws);
    }
    if (!(e = model_entries(m, in, tg, w, n, 0, &names, &k)) || write_safetensors(argv[1], e, k, meta)) return 1;
    printf("%s: loss %.9f, %zu parameters (%s)\n", argv[1], loss, ds_model_n_params(m), dt);
    free(tl);
    ds_model_free(m);
    return 0;
}

static int dpo_main(int argc, char **argv) {
    enum { NP = 3 };
    ds_config c;
    ds_error err;
    ds_model *m;
    ds_dpo cfg = ds_dpo_default();
    ds_dpo_stats st;
    ds_seq seqs[2 * NP];
    ds_example ex[NP];
    const ds_example *pairs[NP];
    const ds_seq *rows[2 * NP];
    double ref[2 * NP];
    int T, i, k, t;
    uint64_t seed, r;
    int32_t *in, *tg;
    float *w;
    entry *e;
    char meta[768], lens[128], (*names)[80];
    const char *dt = sizeof(ds_float) == 8 ? "F64" : "F32";
    if (argc != 13) { fprintf(stderr, "usage: torch_ref --dpo OUT V D L H KV F T SEED TYPE BETA EPS\n"); return 2; }
    ds_config_preset("test", &c, &err);
    c.vocab = atoi(argv[2]), c.d_model = atoi(argv[3]), c.n_layers = atoi(argv[4]), c.n_heads = atoi(argv[5]);
    c.n_kv_heads = atoi(argv[6]), c.d_ff = atoi(argv[7]), T = atoi(argv[8]), c.max_seq = T, c.init_std = 0.1;
    seed = strtoull(argv[9], NULL, 10);
    cfg.loss_type = atoi(argv[10]), cfg.beta = atof(argv[11]), cfg.label_smoothing = atof(argv[12]);
    if (!(m = ds_model_new(&c, 2 * NP, T, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    ds_model_init(m, seed);
    /* sequences: a shared prompt per pair, responses of different lengths, some cut by T */
    for (r = seed * 2654435761u + 7, i = 0; i < 2 * NP; i++) {
        int n = T / 2 + (int)(i * 5 % (T / 2 + 3)), prompt = 2 + i % 3;
        seqs[i].ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)n), seqs[i].mask = (uint8_t *)malloc((size_t)n), seqs[i].n = n, seqs[i].cap = n;
        for (t = 0; t < n; t++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            seqs[i].ids[t] = (int32_t)((r >> 33) % (uint64_t)c.vocab);
            seqs[i].mask[t] = t >= prompt;
        }
        ref[i] = -(double)((r >> 40) % 1000) / 50.0 - 5;
    }
    for (i = 0; i < NP; i++) ex[i].seq = seqs[i], ex[i].rejected = seqs[NP + i], pairs[i] = &ex[i], rows[i] = &seqs[i], rows[NP + i] = &seqs[NP + i];
    ds_model_zero_grad(m);
    if (ds_dpo_grad(m, &cfg, pairs, NP, T, ref, ref + NP, 1.0f, NULL, &st, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    in = (int32_t *)malloc(sizeof(int32_t) * 2 * NP * (size_t)T), tg = (int32_t *)malloc(sizeof(int32_t) * 2 * NP * (size_t)T);
    w = (float *)malloc(sizeof(float) * 2 * NP * (size_t)T);
    ds_seq_batch(rows, 2 * NP, 2 * NP, T, 0, in, tg, w);
    for (lens[0] = 0, i = 0; i < 2 * NP; i++) snprintf(lens + strlen(lens), sizeof lens - strlen(lens), i ? ",%d" : "%d", seqs[i].n);
    snprintf(meta, sizeof meta, "{\"vocab\":\"%d\",\"d_model\":\"%d\",\"n_layers\":\"%d\",\"n_heads\":\"%d\",\"n_kv_heads\":\"%d\","
             "\"d_ff\":\"%d\",\"B\":\"%d\",\"T\":\"%d\",\"lengths\":\"%s\",\"loss\":\"%.17g\",\"loss_type\":\"%d\",\"beta\":\"%.17g\",\"label_smoothing\":\"%.17g\","
             "\"rewards_chosen\":\"%.17g\",\"rewards_rejected\":\"%.17g\"}",
             c.vocab, c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.d_ff, 2 * NP, T, lens, st.loss, cfg.loss_type, cfg.beta, cfg.label_smoothing,
             st.rewards_chosen, st.rewards_rejected);
    if (!(e = model_entries(m, in, tg, w, 2 * NP * T, 1, &names, &k))) return 1;
    e[k].name = "dpo.ref", e[k].dtype = "F64", e[k].rows = 2 * NP, e[k].data = ref, e[k].bytes = sizeof ref;
    if (write_safetensors(argv[1], e, k + 1, meta)) return 1;
    printf("%s: DPO loss %.9f (%s)\n", argv[1], st.loss, dt);
    for (i = 0; i < 2 * NP; i++) free(seqs[i].ids), free(seqs[i].mask);
    free(in), free(tg), free(w), free(e), free(names);
    ds_model_free(m);
    return 0;
}

/* AdamW against torch.optim.AdamW: STEPS optimizer steps on one batch, each with its gradients
   scaled so that some steps are clipped (global norm above 1) and some are not, at a warm-up
   learning rate (the multi-step schedule's first steps). Dumps the initial parameters, and per
   step s the gradients the step used ("s<k>.grad.<name>", before clipping) and the parameters
   after it ("s<k>.param.<name>"); metadata: the learning rates, gradient scales and norms. */
static int adamw_main(int argc, char **argv) {
    ds_config c;
    ds_error err;
    ds_model *m;
    ds_adamw opt = ds_adamw_default();
    ds_schedule sched;
    int B, T, steps, s, k, n_t, used = 0;
    int32_t *in, *tg;
    float *w;
    entry *e;
    char (*names)[96], meta[4096];
    const char *dt = sizeof(ds_float) == 8 ? "F64" : "F32";
    size_t mlen;
    if (argc != 12) { fprintf(stderr, "usage: torch_ref --adamw OUT V D L H KV F B T SEED STEPS\n"); return 2; }
    B = atoi(argv[8]), T = atoi(argv[9]), steps = atoi(argv[11]);
    if (steps < 1 || steps > 20) { fprintf(stderr, "STEPS: 1..20\n"); return 2; }
    m = ref_model(argv, B, T, strtoull(argv[10], NULL, 10), &in, &tg, &w, &c);
    n_t = ds_model_n_tensors(m);
    sched = ds_schedule_multistep(2e-2, 3, 100); /* warm-up: 2e-2 x (step + 1) / 3, then 2e-2 */
    e = (entry *)calloc((size_t)(n_t * (2 * steps + 1) + 3), sizeof(entry));
    names = (char(*)[96])calloc((size_t)(n_t * 2 * steps), 96);
    if (!e || !names) return 1;
    { /* the initial parameters under their own names, then the batch */
        const ds_float *P = host_copy(m, DS_PARAMS);
        for (k = 0; k < n_t; k++) {
            const ds_tensor *t = ds_model_tensor(m, k);
            e[used].name = t->name, e[used].dtype = dt, e[used].rows = t->rows, e[used].cols = t->cols;
            e[used].data = P + t->offset, e[used].bytes = t->numel * sizeof(ds_float), used++;
        }
    }
    e[used].name = "batch.inputs", e[used].dtype = "I32", e[used].rows = B * T, e[used].data = in, e[used].bytes = sizeof(int32_t) * (size_t)(B * T);
    e[used + 1] = e[used], e[used + 1].name = "batch.targets", e[used + 1].data = tg;
    e[used + 2] = e[used], e[used + 2].name = "batch.weights", e[used + 2].dtype = "F32", e[used + 2].data = w;
    used += 3;
    mlen = (size_t)snprintf(meta, sizeof meta, "{\"vocab\":\"%d\",\"d_model\":\"%d\",\"n_layers\":\"%d\",\"n_heads\":\"%d\",\"n_kv_heads\":\"%d\","
                            "\"d_ff\":\"%d\",\"B\":\"%d\",\"T\":\"%d\",\"steps\":\"%d\",\"beta1\":\"%.17g\",\"beta2\":\"%.17g\",\"eps\":\"%.17g\","
                            "\"weight_decay\":\"%.17g\",\"grad_clip\":\"%.17g\"", c.vocab, c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.d_ff, B, T,
                            steps, opt.beta1, opt.beta2, opt.eps, opt.weight_decay, opt.grad_clip);
    for (s = 0; s < steps; s++) {
        double lr = ds_schedule_lr(&sched, s), gn = 0, loss;
        float scale = s % 2 ? 0.05f : 4.0f; /* even steps clipped, odd steps (most likely) not */
        const ds_float *G, *P;
        ds_model_zero_grad(m);
        if (ds_model_forward(m, in, tg, w, B, T, NULL, &loss, &err) || ds_model_backward(m, scale, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        G = host_copy(m, DS_GRADS);
        if (ds_model_step(m, &opt, lr, &gn, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        P = host_copy(m, DS_PARAMS);
        for (k = 0; k < n_t; k++) {
            const ds_tensor *t = ds_model_tensor(m, k);
            char *gname = names[(s * n_t + k) * 2], *pname = names[(s * n_t + k) * 2 + 1];
            if (!t) return 1;
            snprintf(gname, 96, "s%d.grad.%.63s", s % 100, t->name);
            snprintf(pname, 96, "s%d.param.%.63s", s % 100, t->name);
            e[used].name = gname, e[used].dtype = dt, e[used].rows = t->rows, e[used].cols = t->cols;
            e[used].data = G + t->offset, e[used].bytes = t->numel * sizeof(ds_float);
            e[used + 1] = e[used], e[used + 1].name = pname, e[used + 1].data = P + t->offset;
            used += 2;
        }
        mlen += (size_t)snprintf(meta + mlen, sizeof meta - mlen, ",\"lr%d\":\"%.17g\",\"scale%d\":\"%.9g\",\"norm%d\":\"%.17g\",\"loss%d\":\"%.17g\"", s,
                                 lr, s, (double)scale, s, gn, s, loss);
        if (mlen >= sizeof meta - 2) { fprintf(stderr, "metadata too long\n"); return 1; }
        printf("step %d: lr %.4g, gradient scale %g, norm %.4f (%s)\n", s, lr, (double)scale, gn, gn > opt.grad_clip ? "clipped" : "not clipped");
    }
    snprintf(meta + mlen, sizeof meta - mlen, "}");
    if (write_safetensors(argv[1], e, used, meta)) return 1;
    printf("%s: %d AdamW steps, %zu parameters (%s)\n", argv[1], steps, ds_model_n_params(m), dt);
    ds_model_free(m);
    return 0;
}
