/* 07_chat.c - talk to a checkpoint with DeepSeek's chat template (paper §4, the chat format).
 *
 *   build/07_chat [--model build/dpo/ckpt] [--prompt "Say cat 3 times."] ...   (--help)
 *
 * Each turn is rendered with ds_chat_render (BOS, "User: {u}\n\n", "Assistant: {a}" EOS, and
 * the generation prompt "Assistant:"), fed through the KV cache, and the reply is streamed token
 * by token until EOS. The conversation so far stays in the cache: a new turn only feeds its own
 * tokens. Whatever the user types is plain text: typing "<｜end▁of▁sentence｜>" does not end
 * anything. --prompt TEXT answers once and exits (for scripts and tests); without it, an
 * interactive loop (an empty line or end of input quits; /reset starts over).
 */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"

int main(int argc, char **argv) {
    const char *model_dir = "build/dpo/ckpt", *prompt = NULL, *system = NULL, *weights = "f32";
    double temperature = 0, top_p = 0.9;
    int max_new = 64, threads = 2, i;
    unsigned long long seed = 1;
    ds_error err;
    ds_pool *pool;
    ds_tokenizer *tok;
    ds_model *m;
    ds_seq conv; /* the whole conversation, as fed so far */
    ds_sampler sampler;
    int32_t *out, eos;
    char path[1024], line[4096];
    int cached = 0, max_seq; /* positions held by the KV cache */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: 07_chat [options]\n"
                   "  --model DIR        checkpoint (default %s)\n"
                   "  --prompt TEXT      answer once, then exit\n"
                   "  --system TEXT      a system message (the paper advises none for these models)\n"
                   "  --temperature X    0 is greedy (default %g)   --top-p X (default %g)\n"
                   "  --max-new N        reply limit in tokens (default %d)\n"
                   "  --threads N        (default %d)   --seed N (default %llu)\n"
                   "  --weights f32|bf16 the weights in memory: float (default), or BF16 (half the memory and\n"
                   "                     about twice the decoding speed: the BF16 inference model)\n",
                   model_dir, temperature, top_p, max_new, threads, seed);
            return 0;
        }
        if (i + 1 >= argc) { fprintf(stderr, "%s: unknown option, or it needs a value (see --help)\n", a); return 2; }
        if (!strcmp(a, "--model")) model_dir = argv[++i];
        else if (!strcmp(a, "--prompt")) prompt = argv[++i];
        else if (!strcmp(a, "--system")) system = argv[++i];
        else if (!strcmp(a, "--temperature")) { if (!ex_num(a, argv[++i], 0, 100, &temperature)) return 2; }
        else if (!strcmp(a, "--top-p")) { if (!ex_num(a, argv[++i], 1e-9, 1, &top_p)) return 2; }
        else if (!strcmp(a, "--max-new")) { if (!ex_int(a, argv[++i], 1, 1 << 20, &max_new)) return 2; }
        else if (!strcmp(a, "--threads")) { if (!ex_int(a, argv[++i], 1, 1024, &threads)) return 2; }
        else if (!strcmp(a, "--seed")) { if (!ex_u64(a, argv[++i], &seed)) return 2; }
        else if (!strcmp(a, "--weights")) {
            weights = argv[++i];
            if (strcmp(weights, "f32") && strcmp(weights, "bf16")) { fprintf(stderr, "--weights: f32 or bf16, not '%s'\n", weights); return 2; }
        }
        else { fprintf(stderr, "unknown option %s (see --help)\n", a); return 2; }
    }
    if (max_new < 1 || threads < 1 || temperature < 0 || !(top_p > 0 && top_p <= 1)) {
        fprintf(stderr, "max-new, threads >= 1; temperature >= 0; 0 < top-p <= 1\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    if (!(pool = ds_pool_new(threads, &err)) || !(tok = ds_tokenizer_load(path, &err)) || !(m = !strcmp(weights, "bf16") ? ds_checkpoint_load_bf16(model_dir, &err) : ds_checkpoint_load_inference(model_dir, 1, 64, &err))) { /* T 64: prompts go through the batched forward in chunks of 64 */
        fprintf(stderr, "%s\n(07_chat needs a checkpoint with its tokenizer: run make demo, or pass --model)\n", err.msg);
        return 1;
    }
    eos = ds_tokenizer_eos(tok);
    max_seq = ds_model_config(m)->max_seq;
    if (!(out = (int32_t *)malloc(sizeof(int32_t) * (size_t)max_new))) return 1;
    sampler = ds_sampler_make(temperature, top_p, seed);
    memset(&conv, 0, sizeof conv);
    if (!prompt) printf("chatting with %s (an empty line quits, /reset starts over)\n", model_dir);
    for (;;) {
        ds_message msgs[2];
        int n_msgs = 0, n_out = 0, k, start = conv.n;
        const char *user = prompt;
        size_t len;
        if (!prompt) {
            printf("\nUser: ");
            fflush(stdout);
            if (!fgets(line, sizeof line, stdin)) break;
            len = strlen(line);
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
            if (!len) break;
            if (!strcmp(line, "/reset")) { ds_seq_free(&conv); cached = 0; printf("(a new conversation)\n"); continue; }
            user = line;
        }
        if (conv.n == 0 && system) msgs[n_msgs].role = "system", msgs[n_msgs++].content = system;
        msgs[n_msgs].role = "user", msgs[n_msgs++].content = user;
        if (ds_chat_render(tok, msgs, n_msgs, 1, &conv, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        if (conv.n + max_new > max_seq) { /* the context is full: start over from this turn */
            ds_seq_free(&conv);
            cached = 0;
            if (ds_chat_render(tok, msgs, n_msgs, 1, &conv, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            if (conv.n + max_new > max_seq) {
                fprintf(stderr, "the message is too long for the %d-token context\n", max_seq);
                ds_seq_free(&conv);
                if (prompt) return 1;
                continue;
            }
            if (start) printf("(the context window is full; earlier turns are forgotten)\n");
        }
        /* feed what the KV cache does not hold yet, then sample, streaming each token; each turn
           samples with the same seed */
        if (!prompt) printf("Assistant:");
        sampler.rng = seed;
        if (ds_generate_next(m, cached, conv.ids + cached, conv.n - cached, max_new, &sampler, eos, ex_print_token, tok, out, &n_out, pool, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        printf("%s\n", out[n_out - 1] == eos ? "" : " [...]");
        if (prompt) break;
        /* the reply joins the conversation, ending in EOS as the template has it; the cache holds
           every position but the reply's last token */
        cached = conv.n + n_out - 1;
        for (k = 0; k < n_out; k++) if (ds_seq_push(&conv, out[k], 1, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        if (out[n_out - 1] != eos && ds_seq_push(&conv, eos, 1, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    }
    ds_sampler_free(&sampler);
    free(out);
    ds_seq_free(&conv);
    ds_model_free(m);
    ds_tokenizer_free(tok);
    ds_pool_free(pool);
    return 0;
}
