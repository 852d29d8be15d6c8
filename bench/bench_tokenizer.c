/* bench_tokenizer.c - deepseek.h's BPE training time and encode throughput, single-threaded.
 *   build/bench_tokenizer train CORPUS VOCAB OUT.json [REPS]
 *   build/bench_tokenizer encode TOKENIZER.json CORPUS [REPS]
 * Prints `train_s=` / `encode_cold_MBps= encode_warm_MBps=` last, like ../shared/bench/hf_bpe.js.
 * "cold" is a freshly loaded tokenizer (empty word memo), "warm" the same call again. */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    ds_error err;
    double t[32];
    int r, reps;
    size_t len;
    char *text;
    if (argc < 4) { fprintf(stderr, "usage: see the header of bench/bench_tokenizer.c\n"); return 2; }
    if (!strcmp(argv[1], "train")) {
        int vocab = atoi(argv[3]);
        ds_tokenizer *tok = NULL;
        reps = argc > 5 ? atoi(argv[5]) : 3;
        if (!(text = ds_read_file(argv[2], 0, &len, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
        for (r = 0; r < reps && r < 32; r++) {
            double t0 = ds_now();
            ds_bpe_trainer *tr = ds_bpe_trainer_new(&err);
            ds_tokenizer_free(tok);
            if (!tr || ds_bpe_trainer_feed(tr, text, len, &err) || !(tok = ds_bpe_trainer_train(tr, vocab, &err))) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            ds_bpe_trainer_free(tr);
            t[r] = ds_now() - t0;
            printf("train rep %d: %.3f s, vocab %d\n", r, t[r], ds_tokenizer_vocab_size(tok));
        }
        if (ds_tokenizer_save(tok, argv[4], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("train input=%s bytes=%zu vocab=%d median=%.3f s\ntrain_s=%.3f\n", argv[2], len, ds_tokenizer_vocab_size(tok),
               median(t, reps), median(t, reps));
        ds_tokenizer_free(tok);
    } else if (!strcmp(argv[1], "encode")) {
        double cold[32], warm[32], mb;
        size_t n = 0;
        int32_t *ids;
        reps = argc > 4 ? atoi(argv[4]) : 5;
        if (!(text = ds_read_file(argv[3], 0, &len, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
        ids = (int32_t *)malloc((len + 2) * sizeof(int32_t));
        memset(ids, 0, (len + 2) * sizeof(int32_t)); /* fault the pages in before timing */
        mb = (double)len / 1e6;
        for (r = 0; r < reps && r < 32; r++) {
            ds_tokenizer *tok = ds_tokenizer_load(argv[2], &err);
            double t0;
            if (!tok) { fprintf(stderr, "%s\n", err.msg); return 1; }
            t0 = ds_now();
            if (ds_tokenizer_encode(tok, text, len, DS_ENCODE_ALLOW_SPECIAL, ids, len + 2, &n, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            cold[r] = ds_now() - t0;
            t0 = ds_now();
            ds_tokenizer_encode(tok, text, len, DS_ENCODE_ALLOW_SPECIAL, ids, len + 2, &n, &err);
            warm[r] = ds_now() - t0;
            ds_tokenizer_free(tok);
        }
        printf("encode %s: %.3f MB -> %zu tokens (%.3f bytes/token); cold median %.3f s, warm median %.3f s\n", argv[2], mb, n,
               (double)len / (double)n, median(cold, reps), median(warm, reps));
        printf("encode_cold_MBps=%.2f encode_warm_MBps=%.2f\n", mb / median(cold, reps), mb / median(warm, reps));
        free(ids);
    } else {
        fprintf(stderr, "unknown command %s\n", argv[1]);
        return 2;
    }
    free(text);
    return 0;
}
