/* 01_tokenizer.c - paper §2.1: train DeepSeek's byte-level BPE on the bundled corpus.
 *
 *   build/01_tokenizer [--vocab 4096] [--data data] [--out build/tokenizer.json] [--text "..."]
 *
 * Trains on the training split of every corpus file (the first 90% of each, data/SOURCES.md),
 * reports bytes per token on the validation split, shows how a sentence is pre-tokenized and
 * encoded, and saves a Hugging Face tokenizer.json that `tokenizers` and transformers load.
 */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"

static const char *const corpus_files[] = {"tinyshakespeare.txt", "tang300.txt", "lunyu.txt"};
#define N_FILES (sizeof corpus_files / sizeof corpus_files[0])

static void usage(void) {
    printf("usage: 01_tokenizer [options]\n"
           "  --vocab N     vocabulary size, BOS and EOS included (default 4096)\n"
           "  --data DIR    corpus folder (default data)\n"
           "  --out PATH    where to save tokenizer.json (default build/tokenizer.json)\n"
           "  --text TEXT   the sentence to show pre-tokenized and encoded\n"
           "  --help        this text\n");
}

/* prints bytes so that newlines and control characters stay visible */
static void print_piece(const char *s, size_t n) {
    size_t i;
    putchar('[');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') printf("\\n");
        else if (c == '\t') printf("\\t");
        else if (c < 0x20) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar(']');
}

int main(int argc, char **argv) {
    int vocab = 4096, i;
    const char *data = "data", *out = "build/tokenizer.json";
    const char *text = "The quick brown fox, 1234 times: 学而时习之，不亦说乎？\n";
    char *files[N_FILES];
    size_t lens[N_FILES], cuts[N_FILES], f, train_bytes = 0, val_bytes = 0, val_tokens = 0;
    ds_bpe_trainer *tr;
    ds_tokenizer *tok;
    ds_error err;
    double t0, t_feed, t_train;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "%s: unknown option, or it needs a value (see --help)\n", argv[i]); return 2; }
        if (!strcmp(argv[i], "--vocab")) { if (!ex_int(argv[i], argv[i + 1], 260, 1 << 24, &vocab)) return 2; i++; }
        else if (!strcmp(argv[i], "--data")) data = argv[++i];
        else if (!strcmp(argv[i], "--out")) out = argv[++i];
        else if (!strcmp(argv[i], "--text")) text = argv[++i];
        else { fprintf(stderr, "unknown option %s (see --help)\n", argv[i]); return 2; }
    }

    printf("== §2.1 byte-level BPE with DeepSeek's pre-tokenizer ==\n");
    for (f = 0; f < N_FILES; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", data, corpus_files[f]);
        files[f] = ds_read_file(path, 0, &lens[f], &err);
        if (!files[f]) { fprintf(stderr, "%s\n", err.msg); return 1; }
        cuts[f] = ds_split_point(files[f], lens[f], 0.9);
        train_bytes += cuts[f];
        val_bytes += lens[f] - cuts[f];
        printf("corpus  %-20s %9zu bytes (train %zu, validation %zu)\n", corpus_files[f], lens[f], cuts[f], lens[f] - cuts[f]);
    }

    t0 = ds_now();
    if (!(tr = ds_bpe_trainer_new(&err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (f = 0; f < N_FILES; f++)
        if (ds_bpe_trainer_feed(tr, files[f], cuts[f], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    t_feed = ds_now() - t0;
    t0 = ds_now();
    tok = ds_bpe_trainer_train(tr, vocab, &err);
    t_train = ds_now() - t0;
    ds_bpe_trainer_free(tr);
    if (!tok) { fprintf(stderr, "training failed: %s\n", err.msg); return 1; }
    printf("trained %d tokens (%d merges, BOS %d, EOS %d) on %zu bytes in %.2f s (%.2f s counting pieces, %.2f s merging)\n",
           ds_tokenizer_vocab_size(tok), ds_tokenizer_n_merges(tok), ds_tokenizer_bos(tok), ds_tokenizer_eos(tok), train_bytes,
           t_feed + t_train, t_feed, t_train);
    printf("model vocabulary, padded to a multiple of %d: %d\n", DS_VOCAB_MULTIPLE, ds_tokenizer_padded_vocab(tok));

    /* bytes per token on the validation split: the compression the paper's BPB divides out */
    for (f = 0; f < N_FILES; f++) {
        size_t n, vl = lens[f] - cuts[f];
        int32_t *ids = (int32_t *)malloc((vl + 2) * sizeof(int32_t));
        if (!ids || ds_tokenizer_encode(tok, files[f] + cuts[f], vl, 0, ids, vl + 2, &n, &err)) {
            fprintf(stderr, "encode failed: %s\n", ids ? err.msg : "out of memory");
            return 1;
        }
        printf("validation %-20s %7zu bytes -> %6zu tokens: %.2f bytes/token\n", corpus_files[f], vl, n, (double)vl / (double)n);
        val_tokens += n;
        free(ids);
    }
    printf("validation, all files: %.2f bytes/token\n", (double)val_bytes / (double)val_tokens);

    { /* one sentence, step by step */
        size_t len = strlen(text), n_sp = ds_pretokenize(text, len, NULL, 0), n, k;
        ds_span *sp = (ds_span *)malloc((n_sp + 1) * sizeof(ds_span));
        int32_t *ids = (int32_t *)malloc((len + 2) * sizeof(int32_t));
        printf("\ntext:          ");
        print_piece(text, len);
        printf("\npre-tokenized: ");
        ds_pretokenize(text, len, sp, n_sp);
        for (k = 0; k < n_sp; k++) print_piece(text + sp[k].start, sp[k].len);
        if (ds_tokenizer_encode(tok, text, len, DS_ENCODE_BOS, ids, len + 2, &n, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("\nids:           ");
        for (k = 0; k < n; k++) printf("%d ", ids[k]);
        printf("\ntokens:        ");
        for (k = 1; k < n; k++) {
            size_t bl;
            const char *b = ds_tokenizer_token_bytes(tok, ids[k], &bl);
            print_piece(b, bl);
        }
        printf("\n(%zu bytes -> %zu tokens after BOS)\n", len, n - 1);
        free(sp);
        free(ids);
    }

    if (ds_tokenizer_save(tok, out, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("\nsaved %s (Hugging Face tokenizer.json)\n", out);
    ds_tokenizer_free(tok);
    for (f = 0; f < N_FILES; f++) free(files[f]);
    return 0;
}
