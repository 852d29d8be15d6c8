/* deepseek.h - v0.19 - public domain / MIT - the DeepSeek LLM training pipeline in one C header
                                              https://arxiv.org/abs/2401.02954

   deepseek.h implements, in C99 with libc and pthreads only, the pipeline of the paper
   "DeepSeek LLM: Scaling Open-Source Language Models with Longtermism" (DeepSeek-AI, 2024),
   annotated so that it reads alongside the paper. Every section below names the paper section
   it implements; docs/README.md maps paper sections to functions, examples and tests.

   Do this:
      #define DEEPSEEK_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the implementation.

      // i.e. it should look like this:
      #include ...
      #include ...
      #define DEEPSEEK_IMPLEMENTATION
      #include "deepseek.h"

   Every other file includes "deepseek.h" without the define and sees only the declarations.
   Link with -lm -lpthread.

   QUICK NOTES
      - Byte-level BPE with DeepSeek's exact pre-tokenizer (a hand-written UTF-8 scanner, no regex
        engine), a deterministic trainer, and Hugging Face tokenizer.json load/save. The real
        DeepSeek LLM tokenizer loads and encodes exactly as HF `tokenizers` does.
      - A small strict JSON reader and writer: the one JSON path of the library.
      - Everything returns an error code and fills a ds_error with a sentence you can print.
        Nothing here exits, aborts, or prints on bad input, and nothing keeps global state.
      - A LLaMA-style transformer (§2.2) with a hand-written backward pass, checked against finite
        differences and against PyTorch; AdamW with clipping and the multi-step schedule (§2.3);
        a pthreads pool whose results are bit-identical for any thread count.
      - Hugging Face checkpoints (config.json + safetensors) with exact resume, written atomically.
      - Token data, bits-per-byte (§3's metric), and KV-cache generation with sampling.
      - §3's model-scale accounting (M, N1, N2), the paper's fitted laws, and power-law,
        hyperparameter and IsoFLOP fits that refuse degenerate data in words.
      - §4's alignment: DeepSeek's chat template, TRL-style JSONL datasets, SFT masking, DPO
        (sigmoid, label smoothing, IPO) on the same backward pass, the repetition test.
      - §2.4's infrastructure: data parallelism with ZeRO-1 over MPI (DS_MPI) and asynchronous
        checkpoints (ds_saver), both resumable bit for bit.
      - Status of this version: §2.1-§4 are here; the CUDA path (DS_CUDA) has fp32 and bf16
        linears and a tiled attention, checked on a CPU emulator and not yet on a GPU. A CPU
        with AVX512_BF16 (AMD Zen 4, Intel Cooper Lake and later) trains in bf16 too.

   TABLE OF CONTENTS (each line is its banner's exact first line, in file order: search for it)
      The declarations (the API):
        0. Errors, growable buffers, UTF-8
            ds_error, ds_error_set, ds_buf, ds_utf8_decode, ds_read_file, ds_write_file_atomic
        0. JSON: a strict reader (RFC 8259) and a writer
            ds_json_parse, ds_json_get, ds_buf_json_string
        §2.1 Tokenizer
            ds_pretokenize, ds_bpe_trainer_*, ds_tokenizer_encode/_decode/_load/_save
        Threads: a pool object (no globals)
            ds_pool_new, ds_pool_for
        §2.2 The model: a LLaMA-style decoder (pre-norm RMSNorm, RoPE, grouped-query attention,
            ds_config, ds_model_new, ds_model_forward, ds_model_backward, the pointer contract, ds_model_get/_set
        §2.3 Optimizer and learning-rate schedules
            ds_adamw, ds_model_step, ds_schedule_lr
        §2.4 Checkpoints: a directory a Hugging Face user recognises, and exact resume
            ds_checkpoint_save, ds_checkpoint_load
        §2.4 Data parallelism: ZeRO-1 on MPI (DS_MPI), and asynchronous checkpoints
            ds_dp_new, ds_dp_micro, ds_dp_step, ds_saver_start/_wait
        §2.3 / §3 Token data and bits-per-byte
            ds_tokens_load, ds_tokens_batch, ds_model_eval_bpb
        Generation: a KV-cached single-token forward, and sampling
            ds_model_forward_token, ds_rng_next, ds_sampler, ds_generate_next
        §3 Scaling laws: model-scale accounting, the paper's fitted laws, power-law fitting
            ds_scale_n1/_n2/_m, ds_law_*, ds_fit_power_law, ds_fit_hyperparams, ds_fit_isoflop
        §4-5 Alignment: the chat format, TRL-style datasets, SFT masking, DPO, the repetition ratio
            ds_chat_render, ds_dataset_load, ds_seq_batch, ds_dpo_loss/_logps/_grad
      The implementation (#ifdef DEEPSEEK_IMPLEMENTATION):
        0. Errors, buffers, UTF-8, files
        0. JSON reader
        §2.1 Tokenizer: the pre-tokenizer
        §2.1 Tokenizer: the byte-level alphabet
        §2.1 Tokenizer: the object
        §2.1 Tokenizer: BPE on one piece
        §2.1 Tokenizer: encode and decode
        §2.1 Tokenizer: Hugging Face tokenizer.json
        §2.1 Tokenizer: the BPE trainer
        Threads
        §2.2 Configuration
        §2.2 The op layer: one _forward/_backward pair per op, on raw pointers with explicit sizes
        §2.2 The model
        §2.3 AdamW with global-norm clipping, and the learning-rate schedules
        §2.4 Checkpoints
        §2.4 Data parallelism: ZeRO-1 on MPI (DS_MPI), and asynchronous checkpoints
        §2.3 / §3 Token data and bits-per-byte
        Generation
        §3 Scaling laws
        §4-5 Alignment
      The CUDA backend is deepseek_cuda.cuh, a second implementation of the op layer (DS_CUDA).
      The studies themselves are programs: examples/03_lr_schedules.c (multi-step vs cosine),
      04_scaling.c (IsoFLOP), 05_sft.c, 06_dpo.c, 07_chat.c.

   COMPILE-TIME OPTIONS (define before including, in the file with DEEPSEEK_IMPLEMENTATION unless
   noted)
      DEEPSEEK_STATIC       (default: undefined) every function is `static`: a private copy per
                            translation unit. Define it everywhere the header is included.
      DS_MALLOC(sz), DS_REALLOC(p,sz), DS_FREE(p)
                            (default: malloc/realloc/free) your allocator; define all three or none.
      DS_ASSERT(x)          (default: assert(x)) internal invariants only, never input validation.
      DS_JSON_MAX_DEPTH     (default: 128) the nesting limit of the JSON reader.
      DS_BPE_CACHE_WORDS    (default: 65536) words the encoder memoizes before it starts over.
      DS_DOUBLE             (default: undefined) the model computes in double (ds_float), for
                            finite-difference checks. Define it everywhere the header is included.
                            The loss comes back in double in either build; checkpoints of a
                            double build hold F64 tensors and say "torch_dtype": "float64".
      DS_NO_THREADS         (default: undefined) no pthreads: every ds_pool runs on its caller.
      DS_NO_HUGEPAGES       (default: undefined) no transparent-huge-page hint (Linux's madvise)
                            for the model's big buffers; see ds__hugepages. A user's DS_MALLOC
                            never gets the hint.
      DS_NO_SIMD            (default: undefined) the plain-C matmul tile instead of the GCC/clang
                            vector-extension one.
      DS_MM_KC              (default: 128 with AVX-512, 256 with AVX2: a KC x NR strip of B
                            fits in 32 KB of L1) the matmul's k-block.
      DS_MM_MC              (default: from the L2 size, see ds_pool_new) the matmul's row block.
      DS_MM_NC              (default: 512) the matmul's column block.
      DS_MM_KB              (default: 512 / KC) k-blocks of B a matmul thread packs at once (its
                            buffer: KB x KC x (NC + 64) floats, 1.1 MB by default).
      DS_MPI                (default: undefined) data parallelism over MPI: ds_dp groups span the ranks
                            of MPI_COMM_WORLD (ZeRO-1: each rank owns a slice of the AdamW moments).
                            Compile with mpicc (Debian: libopenmpi-dev, openmpi-bin), run with mpirun;
                            CPU ranks only (not with DS_CUDA). Without it a ds_dp is one rank. See
                            docs/distributed.md.
      DS_CUDA               (default: undefined) the CUDA backend: compile with nvcc as CUDA (-x cu),
                            link -lcublasLt -lcublas; the op layer comes from deepseek_cuda.cuh
                            (beside this file) and ds_model_* run on the GPU, in fp32 or in the
                            paper's bf16 regime (bf16 products and activations, fp32 master
                            weights and optimizer state: ds_model_set_precision). See docs/cuda.md.
                            Define it everywhere the header is included.
      DS_CUDA_FP32_ATTENTION (default: undefined) with DS_CUDA: bf16 mode's attention on the fp32
                            kernels instead of the tensor cores (an A/B of the two).
   Build with -O2 or -O3, and -ffp-contract=fast (ISO C modes otherwise forbid fusing a*b+c into
   one FMA, which halves the matmul's speed). Never -Ofast: it breaks the NaN checks.

   ERRORS
      Functions that can fail return an int: DS_OK (0) or a DS_ERR_* code; constructors return a
      pointer, NULL on failure. Each takes a `ds_error *err` as last argument (NULL is allowed) and
      writes a human-readable reason into err->msg on failure:
            ds_error err;
            ds_tokenizer *tok = ds_tokenizer_load("tokenizer.json", &err);
            if (!tok) { fprintf(stderr, "%s\n", err.msg); return 1; }
      There is no errno-style global and no thread-local: the error travels with the call.

   THREADING
      No global state: any number of tokenizers, models and pools may live in one program.
      Distinct objects may be used from distinct threads freely. One ds_tokenizer must not be used
      to *encode* from two threads at once, because it memoizes the words it has encoded; decoding
      and the read-only accessors are safe to share. The model's kernels run on a ds_pool you pass
      in (NULL: the calling thread); they split outputs, never reductions, so the loss, gradients
      and parameters are bit-identical for any number of threads.
      A ds_pool is not re-entrant: one pool serves one call at a time. Do not share a pool between
      two threads that call into the library at once (give each its own pool, or NULL), and do not
      call ds_pool_for on a pool from inside a task running on that same pool. A ds_model, too, is
      used by one thread at a time.

   DETERMINISM
      Tokenizer training is a pure function of its input and target size: ties between equally
      frequent pairs are broken by the lower (left id, right id), so every platform learns the same
      merges in the same order. Model initialization is a seeded, platform-independent stream;
      training results do not depend on the thread count. They may differ in the last bits across
      CPUs (SIMD width) and compiler flags (FMA contraction).

   VERSION HISTORY
      0.25 (2026-12-08)  shared work across a pool's threads: the blocked matmul's row bands (at
                         least 4 a thread, a stage of one column block by KB k-blocks at a time)
                         and attention's heads go first to the thread whose fixed share they are
                         in, and then to any thread that has finished its own, claimed once each
                         by an atomic flag. With a fixed share each, the faster thread waited for
                         the slower at every join: 3-10% of a step on a 2-core Zen 3 EPYC whose
                         cores the host slows at random. Same bits. Whole steps on 2 threads,
                         flipped step by step: tiny 1.01-1.06x, small 1.13x, medium 1.075x.
      0.24 (2026-12-08)  the matmul's k-block follows the tile's width: the largest power of two for
                         which a KC x NR strip of B fits 32 KB of L1, 256 with AVX2's 24-wide tile
                         (128 before: a tile loaded and stored its C every 128 k's with half of L1
                         unused), still 128 with AVX-512's 64-wide one; KB keeps the packed B block
                         at 512 k's. Same bits. On a Zen 3 EPYC: small and medium train 1.037x and
                         1.036x faster in the same run, tiny 1.012x.
      0.23 (2026-12-07)  AVX2 (a Zen 3 EPYC): 4 tests failed there, the thread count changed the
                         bits. GCC had compiled some copies of the one-vector edge tile into a
                         multiply and an add, others into FMAs; the edge is now written out as the
                         tiles are, fused in every copy. ds__expf's selects work on the bits, so
                         loops of exps vectorize without AVX-512's masks (SwiGLU, cross-entropy,
                         the softmax tails ran scalar with AVX2). Powers of two end in two 16-wide
                         strips, not 24 + 8; a 3 x 4 tile for 32-wide strips read in place. Tiny
                         trains 1.33x faster on that Zen 3, medium 1.2x; AVX-512 builds keep their
                         bits.
      0.22 (2026-12-07)  the float products narrower than one column block (N < 512) read an A
                         given by rows where it is, instead of copying it into panels: the
                         tiny config's 15 products of a step 1.03-1.05x faster on two threads
                         (Zen 4), small's 1.02x. Attention's products by P and dS skip each
                         tile's causal zeros (ds__mm_causal): 1.04-1.07x a head. The same bits.
      0.21 (2026-12-07)  the CPU bf16 mode's products: k-blocks of 512 (were 256) and the next
                         tile's C prefetched, as the float path does; the same bits. Medium's
                         products 1.13x faster on two threads, 1.22x on one (Zen 4), 77-79%
                         of vdpbf16ps's peak. The pool's buffers are sized for either path
                         (they had relied on the float path's default blocking being larger).
      0.20 (2026-12-07)  a CPU bf16 mode: DS_PRECISION_BF16 in a CPU build with AVX512_BF16
                         (-march=native on such a CPU) runs the linears' products -- the batched
                         forward and all of the backward, the LM head included -- on vdpbf16ps:
                         operands rounded to bf16 as they are packed, pairs of products summed
                         in fp32 (ds__matmul_bf16); weights, gradients, moments, activations
                         and every other op stay fp32. Twice the multiply-adds of an fp32 FMA
                         an instruction; training 1.24-1.50x faster than the fp32 path on Zen 4
                         (docs/benchmarks.md). Same bits for any thread count.
      0.19 (2026-12-07)  the CUDA bf16 mode stores the activations as bf16 (paper §2.4): gate|up,
                         q|k|v, attention's output and the linears' inputs (ln1, ln2, h, lnf),
                         which the model now keeps in their own block sized by the backend's
                         format (ds__exec_act_size; ds_model_set_precision reallocates it, and a
                         backward then needs a new forward); the residual stream stays fp32.
                         The ops that write them round once on the way out (cuBLASLt writes
                         gate|up and q|k|v as bf16), the linears read their operands without a
                         conversion pass. 1b config: 30.0 GiB allocated in bf16 (was 38.2; fp32
                         35.9), counted on the CPU emulator; never yet run on a GPU. The CPU
                         build is unchanged (floats; same bits).
      0.18 (2026-12-07)  the model's big buffers (ds__exec_alloc, the BF16 store) ask Linux for
                         transparent huge pages before their first touch (madvise; Debian's
                         default mode gives none without it; DS_NO_HUGEPAGES turns it off). Same
                         bits. Float decoding 1.01-1.35x run.c where it was 0.77-1.07x (AMD EPYC
                         Zen 4, five rounds); training unchanged within noise. The BF16 decode's widening
                         is one shuffle under GCC with AVX-512 or AVX2 (was five): same
                         bits, the 15M shape +15% on one thread. A BF16 model's prefill packs
                         its weight strips by register transposes of widened vectors, as the
                         float model's does (was one value at a time): same bits, +20-35%.
      0.17 (2026-12-07)  the CUDA bf16 mode's products go through cuBLASLt (the heuristic's
                         algorithm per shape, told each pointer's alignment, a 32 MiB workspace,
                         no in-place split-K; link -lcublasLt), and its attention runs on the
                         tensor cores (warp matrix functions, bf16 operands, fp32 accumulation
                         and softmax statistics; heads of 16..128 channels, sm_80 on), forward
                         and a deterministic backward whose D is rowsum(dY Y), so
                         ds__attention_backward takes the forward's output y (the CPU op ignores
                         it). Checked on the CPU emulator (which gained mma.h and cublasLt.h);
                         never yet run on a GPU.
      0.16 (2026-12-07)  the CUDA bf16 mode keeps a bf16 copy of the weights that AdamW writes in
                         its update (the paper's fused optimizer-and-copy; same bits as rounding
                         each weight before each product, which it replaces); make bench-cuda:
                         the CUDA trainer beside PyTorch eager and torch.compile (125m and 1b
                         configs, bf16; tokens/s, MFU, memory), never yet run on a GPU.
      0.15 (2026-12-03)  the CUDA path: a tiled, FlashAttention-2-style attention (each row's
                         log-sum-exp kept instead of P, masked tiles skipped, a deterministic
                         backward); ds_model_set_precision and the bf16 mode (the linears' bf16
                         products, fp32 accumulation); the chunked classifier (the backend picks
                         how many rows of logits a model holds; same bits on the CPU). Every CUDA
                         kernel and test runs in make test on a CPU emulator of CUDA's execution
                         model (tests/cuda/emu), which found a bug: on a GPU, ds_model_new staged
                         the loss weights and decoding logits in device memory. Still never run
                         on a GPU.
      0.14 (2026-12-03)  the matmul's row blocks run inside its k-blocks, so a block's C stays in
                         the L2 from one k-block to the next; the strips of B are packed once per
                         pass into a per-thread B block (same bits): medium's products 3-11%
                         faster alone on one thread (one 0.97x), two threads and training within
                         the host's noise.
      0.13 (2026-12-03)  the matmul packs a row-major A in the same 4-row k-major panels as
                         dout^T (same bits): the forward and input-gradient products 2-8% faster
                         alone, training within the host's noise.
      0.12 (2026-12-03)  weight gradients pack dout^T in 4-row k-major panels (same bits);
                         attention's softmax rows in two vector passes, times 1 / sum; RMSNorm's
                         row sums on ds__dot, the gradient norm's chunks in 8 running sums, AdamW
                         on vectors (vsqrtps on x86): results change in the last bits, still the
                         same for any thread or rank count; the elementwise tasks at 512-bit
                         vectors under GCC with AVX-512 (DS__WIDE, same bits). Against v0.11 in
                         one run (Intel Xeon): 1 thread tiny 1.15x, small 1.09x, medium 1.16x;
                         2 threads tiny 1.07x, small 1.11x.
      0.11 (2026-12-03)  the blocked matmul from 2 strips wide (was 4): a model of width 128
                         (the tiny config) runs its o/down projections, input gradients and
                         weight gradients on it; attention transposes K and V by 16 x 16
                         register blocks. Same bits. Tiny +2-17% in 5 of 5 interleaved pairs
                         (Intel Xeon, 2 threads).
      0.10 (2026-12-02)  the blocked matmul asks for the next tile's C while a tile runs (the
                         Xeon's L3 stall at each tile's start was 24% of a product's time).
                         Same bits. The linears' products +5% against OpenBLAS in the same run
                         (one thread, Intel Xeon with AVX-512).
      0.9  (2026-12-02)  the matmul's blocked path (Goto/BLIS order: 512-column blocks, k-blocks
                         of 128, a row block of A packed per thread into the pool's buffer, sized
                         from the L2) for products at least 4 strips wide; a weight's strip
                         transposed in registers. Same bits. Medium +3-5% and +3% (each change,
                         measured inside training steps, Zen 5).
      0.8  (2026-12-02)  a linear's forward packs W^T strip by strip from W as stored (no
                         whole-weight transpose; the ops' scratch is attention's only); an 8 x 2
                         tile for 32-wide products (attention at head size 32); softmax and
                         cross-entropy row sums and attention's backward dot on vector
                         accumulators (results change in the last bits; still the same for any
                         thread count). Training 1.12x / 1.13x / 1.02x (tiny / small / medium,
                         2 threads, Zen 5).
      0.7  (2026-12-02)  the BF16 model takes prompts through a batched forward (64 positions at
                         a time; the float model's prefill bit for bit); a linear over <= 128 rows
                         splits over column strips, each strip of W packed (and widened) straight
                         into the tile (prefill ~1.6x); the matmul's edge columns use one FMA per
                         k like its tiles (results of shapes with < 16 leftover columns change in
                         the last bits; no result depends on the column partition any more);
                         decoding sums lanes by shuffles (same bits); the BF16 prefetch only on x86
                         without AVX-512.
      0.6  (2026-12-02)  §2.4 data parallelism: ds_dp (ZeRO-1 on MPI under DS_MPI, one rank
                         otherwise; a fixed-order reduce-scatter, bit-identical across world sizes
                         whose micro-batches per rank are a power of two), collective saves of a
                         group's model; ds_saver (asynchronous checkpoints); ds_model_forward keeps
                         the batch's weighted loss sum; the op layer gains ds__accumulate and
                         ds__sqnorm_partials, ds__adamw_update steps a range [lo, hi). Attention
                         keeps each row's softmax max and sum, not P, and skips the masked half
                         (ds__attention_saved). The F32 inference model maps our files; the data
                         checksum is "data_checksum_x8" (8 lanes; "data_checksum" still verified).
      0.5  (2026-12-02)  inference: ds_checkpoint_load_bf16 (BF16 weights only, mapped from BF16
                         files, bf16 x f32 decode kernels), sharded checkpoints
                         (model.safetensors.index.json), prompts through the batched forward
                         (prefill), SIMD dot products in decoding; checkpoints stream their
                         tensors (no whole-file buffers); loads allocate for the B x T asked
                         (RoPE and decoding's scratch grow on the first generated token).
      0.4  (2026-12-01)  the op layer: every op a ds__X_forward/_backward pair on a ds__exec (the
                         backend seam), the model a list of op calls, one block for training and
                         decoding; the pointer contract and portable copies (ds_model_get/_set,
                         _get/_set_tensor, _copy_logits, _copy_token_losses); ds_sampler (replaces
                         ds_sample), ds_generate_next, ds_seq_push, ds_rng_next/_uniform,
                         ds_error_set; ds_model_forward returns the loss in double; ds_model_init
                         returns int; a second backward of one forward is refused.
      0.3  (2026-11-23)  §4-5 alignment: chat template, JSONL datasets, SFT batches, DPO/cDPO/IPO,
                         ds_model_backward_tokens (backward of any per-token objective), the
                         repetition test; the forward's weights are kept in ds_float.
      0.2  (2026-11-23)  §2.2 the model with hand-written backward; §2.3 AdamW, clipping, multi-step
                         and cosine schedules; the thread pool; §2.4 checkpoints (safetensors);
                         token data, bits-per-byte, KV-cache generation.
      0.1  (2026-11-23)  JSON reader/writer; §2.1 tokenizer: pre-tokenizer, BPE trainer (fast and
                         reference), encode/decode with special-token policy, tokenizer.json I/O.

   LICENSE: see the end of the file.
*/
#if defined(DEEPSEEK_IMPLEMENTATION) && !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
/* fsync() and fileno() are POSIX: ask for them (effective when this header is the first include).
   madvise() and MADV_HUGEPAGE (the huge-page hint, ds__hugepages) are Linux's: glibc and musl show
   them under _DEFAULT_SOURCE. */
#define _POSIX_C_SOURCE 200809L
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1
#endif
#endif
#ifndef DEEPSEEK_H
#define DEEPSEEK_H

#include <stddef.h>
#include <stdint.h>

#ifdef DEEPSEEK_STATIC
#define DSDEF static
#else
#define DSDEF extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================
   0. Errors, growable buffers, UTF-8
   ============================================================================================ */

enum {
    DS_OK = 0,
    DS_ERR_NOMEM,       /* an allocation failed */
    DS_ERR_IO,          /* a file could not be read or written */
    DS_ERR_FORMAT,      /* input bytes are malformed (JSON syntax, a bad tokenizer.json, ...) */
    DS_ERR_INVALID,     /* an argument is out of its domain (a NULL pointer, a size of zero, ...) */
    DS_ERR_UNSUPPORTED, /* well-formed, but asks for something deepseek.h does not implement */
    DS_ERR_RANGE,       /* an output buffer is too small */
    DS_ERR_NUMERIC      /* a loss or gradient is not finite (NaN or infinity) */
};

typedef struct ds_error {
    int code;      /* DS_OK or a DS_ERR_* */
    char msg[256]; /* one sentence, no trailing newline */
} ds_error;

DSDEF const char *ds_strerror(int code); /* "out of memory", "malformed input", ... */
/* Fills err (which may be NULL) with code and a printf-formatted sentence; returns code. For
   callers that report their own failures the library's way. */
DSDEF int ds_error_set(ds_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A growable byte buffer. Appends never fail loudly: on allocation failure `oom` becomes 1 and
   later appends do nothing, so a writer checks once at the end. Zero-initialize to start. */
typedef struct ds_buf {
    char *data;     /* always NUL-terminated when len > 0 */
    size_t len, cap;
    int oom;
} ds_buf;

DSDEF void ds_buf_append(ds_buf *b, const void *p, size_t n);
DSDEF void ds_buf_puts(ds_buf *b, const char *s);
DSDEF void ds_buf_printf(ds_buf *b, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
DSDEF void ds_buf_free(ds_buf *b);

/* Decodes one UTF-8 code point from s[0..n). Returns its length (1-4) and sets *cp, or returns 0
   when the bytes there are not valid UTF-8 (overlong forms, surrogates, > U+10FFFF, truncation). */
DSDEF int ds_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
DSDEF int ds_utf8_valid(const char *s, size_t n); /* 1 when all of s[0..n) is valid UTF-8 */

/* Reads a whole file into a NUL-terminated buffer (*len excludes the NUL); free with DS_FREE
   (or free() with the default allocator). max_bytes guards against accidents (0: no limit). */
DSDEF char *ds_read_file(const char *path, size_t max_bytes, size_t *len, ds_error *err);
/* Writes a file atomically: a temporary file beside it, fsync, then rename over the target, so a
   crash leaves either the old file or the new one, never a torn mix. */
DSDEF int ds_write_file_atomic(const char *path, const void *data, size_t len, ds_error *err);

/* Seconds on a monotonic clock (for progress lines, tokens/s and ETAs). */
DSDEF double ds_now(void);

/* The bundled corpus's train/validation rule (data/SOURCES.md): the first train_frac of the
   bytes train, the rest validate, with the cut moved forward past the next newline so that no
   line is split. Returns the cut: text[0, cut) is training text. */
DSDEF size_t ds_split_point(const char *text, size_t len, double train_frac);

/* ============================================================================================
   0. JSON: a strict reader (RFC 8259) and a writer
   The one JSON path of the library: tokenizer.json now; config.json, safetensors headers and
   JSONL datasets later.
   ============================================================================================ */

typedef enum ds_json_type {
    DS_JSON_NULL, DS_JSON_FALSE, DS_JSON_TRUE, DS_JSON_NUMBER, DS_JSON_STRING, DS_JSON_ARRAY,
    DS_JSON_OBJECT
} ds_json_type;

typedef struct ds_json ds_json;
struct ds_json {
    ds_json_type type;
    size_t len;          /* STRING: bytes of str; ARRAY/OBJECT: number of children */
    const char *str;     /* STRING: the unescaped UTF-8, NUL-terminated (it may contain "\0") */
    double num;          /* NUMBER: the value, correctly rounded */
    const char *key;     /* set on the children of an OBJECT: the member name, NUL-terminated */
    size_t key_len;
    ds_json *child;      /* ARRAY/OBJECT: first child, then follow ->next */
    ds_json *next;
};

typedef struct ds_json_doc {
    ds_json *root;
    /* private */
    void *blocks_;
    char *strings_;
} ds_json_doc;

/* Parses text[0..len). Refuses: invalid UTF-8, control characters in strings, lone surrogates in
   \u escapes, nesting deeper than DS_JSON_MAX_DEPTH, numbers that overflow a double, trailing
   garbage. The error message gives line and column. Duplicate object keys are kept in order;
   ds_json_get returns the first. */
DSDEF ds_json_doc *ds_json_parse(const char *text, size_t len, ds_error *err);
DSDEF void ds_json_free(ds_json_doc *doc);
DSDEF const ds_json *ds_json_get(const ds_json *obj, const char *key); /* NULL if absent */
/* 1 and *out when j is a NUMBER holding an integer in [lo, hi]; 0 otherwise. */
DSDEF int ds_json_int(const ds_json *j, int64_t lo, int64_t hi, int64_t *out);
DSDEF const char *ds_json_type_name(ds_json_type t);

/* Writer: appends s[0..n) as a JSON string literal (quotes and escapes added). Invalid UTF-8 is
   written as U+FFFD, so the output is always valid JSON. */
DSDEF void ds_buf_json_string(ds_buf *b, const char *s, size_t n);

/* ============================================================================================
   §2.1 Tokenizer
   Byte-level BPE with DeepSeek's pre-tokenizer. Ids 0..255 of a trained tokenizer are the 256
   bytes; merges follow; BOS and EOS come last. A tokenizer loaded from tokenizer.json keeps the
   ids of that file (the real DeepSeek tokenizer: 100,000 BPE tokens, then 100000 BOS, 100001 EOS
   and 100002..100014, the 13 bytes that never occur in valid UTF-8).
   ============================================================================================ */

#define DS_BOS_STRING "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>" /* <｜begin▁of▁sentence｜> */
#define DS_EOS_STRING "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"   /* <｜end▁of▁sentence｜> */

typedef struct ds_span { size_t start, len; } ds_span; /* a byte range of the input */

/* Pre-tokenization (§2.1): splits text[0..len) into the pieces BPE runs on, exactly as DeepSeek's
   tokenizer.json does (see docs/tokenizer.md): newlines alone; \s? + cased-letter runs; \s? +
   punctuation runs; trailing whitespace; CJK runs; every numeric character alone. Writes at most
   cap spans and returns the total number of pieces (which may exceed cap). Invalid UTF-8 bytes
   belong to no class and so stay inside the gaps between matches. Pure: no allocation. */
DSDEF size_t ds_pretokenize(const char *text, size_t len, ds_span *out, size_t cap);

typedef struct ds_tokenizer ds_tokenizer;

/* The trainer. Feed it text (any number of calls, any sizes: pieces never span a call, so feed
   whole lines or documents), then train. Memory grows with the number of distinct pieces. */
typedef struct ds_bpe_trainer ds_bpe_trainer;
DSDEF ds_bpe_trainer *ds_bpe_trainer_new(ds_error *err);
DSDEF int ds_bpe_trainer_feed(ds_bpe_trainer *tr, const char *text, size_t len, ds_error *err);
/* Learns merges until the vocabulary holds vocab_size tokens *including* BOS and EOS (so
   vocab_size - 258 new tokens), or until no pair is left. Each merge takes the most frequent
   adjacent pair (counted over overlapping positions, weighted by piece frequency); ties go to
   the lower (left id, right id). The trainer can be trained again (with another size). */
DSDEF ds_tokenizer *ds_bpe_trainer_train(ds_bpe_trainer *tr, int vocab_size, ds_error *err);
DSDEF void ds_bpe_trainer_free(ds_bpe_trainer *tr);

/* Builds a tokenizer from a merge list: merges[2*r], merges[2*r+1] are the (left, right) ids of
   merge r, which creates the next id (256, 257, ...) -- unless its bytes already name a token,
   which it then reuses. BOS and EOS follow. Used by the trainer and by tests. */
DSDEF ds_tokenizer *ds_tokenizer_from_merges(const int32_t *merges, int n_merges, ds_error *err);

/* Hugging Face tokenizer.json. Loading accepts BPE models with DeepSeek's pre-tokenizer (the one
   this file implements), byte-level decoding, and added tokens; anything else is refused with
   the reason (DS_ERR_UNSUPPORTED), never approximated. Saving writes that same form, which
   HF `tokenizers` and transformers load. */
DSDEF ds_tokenizer *ds_tokenizer_load(const char *path, ds_error *err);
DSDEF ds_tokenizer *ds_tokenizer_from_json(const char *json, size_t len, ds_error *err);
DSDEF int ds_tokenizer_save(const ds_tokenizer *tok, const char *path, ds_error *err);
DSDEF int ds_tokenizer_to_json(const ds_tokenizer *tok, ds_buf *out, ds_error *err);
DSDEF void ds_tokenizer_free(ds_tokenizer *tok);

enum {
    DS_ENCODE_ALLOW_SPECIAL = 1, /* match BOS/EOS strings in the text; otherwise they are plain text */
    DS_ENCODE_BOS = 2,           /* prepend BOS */
    DS_ENCODE_EOS = 4            /* append EOS */
};
/* Encodes text[0..len) into ids[0..*n_ids). A text of len bytes never needs more than
   len + 2 ids; with a smaller cap the call may fail with DS_ERR_RANGE. Non-special added tokens
   (DeepSeek's 13 byte tokens) are always matched in the raw text, as HF does; special ones (BOS,
   EOS) only with DS_ENCODE_ALLOW_SPECIAL, so user text cannot inject control tokens. */
DSDEF int ds_tokenizer_encode(ds_tokenizer *tok, const char *text, size_t len, int flags,
                              int32_t *ids, size_t cap, size_t *n_ids, ds_error *err);
enum { DS_DECODE_SKIP_SPECIAL = 1 };
/* Decodes ids into bytes (appended to out). decode(encode(x)) == x for every byte string x when
   the tokenizer covers all 256 bytes (every tokenizer this file trains does). */
DSDEF int ds_tokenizer_decode(const ds_tokenizer *tok, const int32_t *ids, size_t n, int flags,
                              ds_buf *out, ds_error *err);
/* The bytes one id decodes to (not NUL-terminated); NULL for an id out of range. */
DSDEF const char *ds_tokenizer_token_bytes(const ds_tokenizer *tok, int32_t id, size_t *len);
/* The token's string as tokenizer.json spells it (byte-level alphabet), NUL-terminated. */
DSDEF const char *ds_tokenizer_token_string(const ds_tokenizer *tok, int32_t id);
DSDEF int32_t ds_tokenizer_token_id(const ds_tokenizer *tok, const char *token_string); /* -1 if none */

DSDEF int32_t ds_tokenizer_vocab_size(const ds_tokenizer *tok); /* ids in use: max id + 1 */
DSDEF int32_t ds_tokenizer_n_merges(const ds_tokenizer *tok);
DSDEF int32_t ds_tokenizer_bos(const ds_tokenizer *tok);       /* -1 if the tokenizer has none */
DSDEF int32_t ds_tokenizer_eos(const ds_tokenizer *tok);
DSDEF int ds_tokenizer_is_special(const ds_tokenizer *tok, int32_t id);
/* The model's vocabulary: vocab_size rounded up to a multiple of DS_VOCAB_MULTIPLE (§2.1: the
   paper pads 100,015 tokens to 102,400; we pad to a multiple of 64, which keeps the LM-head
   matmul's rows a whole number of SIMD tiles and leaves room for future special tokens). */
#define DS_VOCAB_MULTIPLE 64
DSDEF int32_t ds_tokenizer_padded_vocab(const ds_tokenizer *tok);

/* ============================================================================================
   Threads: a pool object (no globals)
   ds_pool_for(pool, n, fn, ctx) runs fn(ctx, begin, end) over [0, n) cut into one contiguous
   chunk per thread (the caller's thread does chunk 0) and returns when all are done. Kernels
   split *outputs* across chunks, never a reduction, so results are bit-identical for any thread
   count. A NULL pool, or a build with DS_NO_THREADS, runs everything on the calling thread.
   Inside the library the biggest tasks (the matmul's row bands, attention's heads) share their
   pieces: each thread works its own chunk first, then takes the pieces another thread has not
   reached, from the far end of that thread's chunk, so a thread slowed by the host (another
   tenant on its core) does not hold up the others. Which thread computes a piece never changes
   the piece's result.
   A pool also holds, per thread, the matmul's buffer for a packed block of A (a block of rows
   whose packed A and C fill half the L2 cache: 408 rows, 212 KB on a 2 MB L2) and a packed block
   of B (DS_MM_KB x KC x (NC + 64) floats, 1.1 MB; or, if larger, the CPU bf16 mode's blocks),
   allocated once by ds_pool_new; a NULL pool runs the
   matmul strip by strip without it (the same results, slower on large products). A pool of one
   thread is the fast single-threaded choice.
   ============================================================================================ */

typedef struct ds_pool ds_pool;
DSDEF ds_pool *ds_pool_new(int n_threads, ds_error *err);
DSDEF void ds_pool_free(ds_pool *pool);
DSDEF int ds_pool_threads(const ds_pool *pool);
DSDEF void ds_pool_for(ds_pool *pool, size_t n, void (*fn)(void *ctx, size_t begin, size_t end), void *ctx);

/* ============================================================================================
   §2.2 The model: a LLaMA-style decoder (pre-norm RMSNorm, RoPE, grouped-query attention,
   SwiGLU, untied embeddings, no biases), with a hand-written backward pass.
   ============================================================================================ */

/* ds_float is float, or double when DS_DOUBLE is defined (for finite-difference checks).
   Define DS_DOUBLE in every file that includes the header, or in none. */
#ifdef DS_DOUBLE
typedef double ds_float;
#else
typedef float ds_float;
#endif

typedef struct ds_config {
    int vocab;       /* V, the padded vocabulary (rows of the embedding and of the LM head) */
    int d_model;     /* D */
    int n_layers;    /* L */
    int n_heads;     /* H; head size hd = D / H */
    int n_kv_heads;  /* KV: H for multi-head attention, fewer for GQA (the 67B: 64 / 8) */
    int d_ff;        /* F, the SwiGLU hidden size: ds_ffn_dim(D, multiple) */
    int max_seq;     /* the longest sequence (RoPE table size) */
    double rope_theta; /* 10000 */
    double norm_eps;   /* 1e-6 */
    double init_std;   /* 0.006 (§2.3) */
} ds_config;

/* 8/3 * d_model rounded up to a multiple (§2.2: 256 in the paper, 4096 -> 11008). */
DSDEF int ds_ffn_dim(int d_model, int multiple);
/* Presets: "7b", "67b" (the paper's shapes, Table 2; for FLOPs and memory), and the CPU sizes
   "test" (tiny, for tests), "tiny", "small", "medium" (../shared/bench, d_ff multiple 32). */
DSDEF int ds_config_preset(const char *name, ds_config *out, ds_error *err);
/* Refuses zero sizes, heads that do not divide d_model, an odd head size (RoPE pairs halves),
   kv heads that do not divide heads, and sizes whose products overflow. */
DSDEF int ds_config_validate(const ds_config *c, ds_error *err);
DSDEF size_t ds_config_n_params(const ds_config *c);

/* A parameter tensor: its Hugging Face LLaMA name, where it lives in the flat array, its shape. */
typedef struct ds_tensor {
    char name[64];   /* "model.layers.3.self_attn.q_proj.weight" */
    size_t offset;   /* into params / grads / m / v */
    size_t numel;
    int rows, cols;  /* cols == 0 for a vector */
    int decay;       /* 1: AdamW weight decay applies (matrices); 0: RMSNorm gains */
} ds_tensor;

typedef struct ds_model ds_model;
/* Allocates parameters, gradients, AdamW moments and activations for batches of up to B
   sequences of up to T tokens, each in one flat allocation of the model's backend. Parameters
   start at zero: call ds_model_init. */
DSDEF ds_model *ds_model_new(const ds_config *c, int B, int T, ds_error *err);
DSDEF void ds_model_free(ds_model *m);
DSDEF const ds_config *ds_model_config(const ds_model *m);
/* §2.3 initialization: every matrix ~ N(0, init_std), every RMSNorm gain 1; the AdamW moments
   and the step count zeroed. Deterministic. Returns DS_OK (or DS_ERR_NOMEM on a backend without
   host-visible memory, which stages each tensor through the host). */
DSDEF int ds_model_init(ds_model *m, uint64_t seed);
/* Precision, a choice of the model. DS_PRECISION_FP32 (the default, and the CPU's only mode):
   float everywhere. DS_PRECISION_BF16 on a CPU (a build with AVX512_BF16: -march=native on
   AMD Zen 4, Intel Cooper Lake, Sapphire Rapids and later): every linear's product with more
   than one row -- the training forward, a prompt's prefill, the whole backward -- from operands
   rounded to bf16 (nearest even, denormals as zero), pairs of products summed in fp32
   (vdpbf16ps, ds__matmul_bf16); everything else, weights, activations, attention, decoding one
   token, stays fp32, and no copy is kept: the operands are rounded as they are packed. Same
   bits for any thread count; across CPUs the last bits may differ (how the instruction rounds
   inside a pair is the CPU's). DS_PRECISION_BF16 in the CUDA build (paper §2.4): every
   linear's product on the tensor cores from operands rounded to bf16, accumulated in fp32,
   and so are attention's products (heads of a multiple of 16 channels, sm_80 and later); the
   activations (gate|up, q|k|v, attention's output, the norms' and SwiGLU's outputs) are
   stored as bf16, half the memory; the model's master weights, gradients, AdamW moments, the
   residual stream, the norms' statistics, attention's softmax and the loss stay fp32
   (docs/cuda.md, "Precision"). Changing the precision drops what the last forward saved for
   its backward (run a forward again), in either build. The CUDA bf16 mode keeps
   a bf16 copy of the weights (2 bytes a parameter), written by AdamW as it updates them and
   redone after any other write the library makes (loading, ds_model_init, ds_model_set); a
   program that writes the weights' device memory itself calls ds_model_set_precision(m,
   DS_PRECISION_BF16) again.
   Checkpoints are the fp32 weights either way. Returns DS_OK, DS_ERR_UNSUPPORTED for bf16 on a
   CPU build without AVX512_BF16, DS_ERR_INVALID for an unknown mode, or the backend's error
   (out of memory for its scratch or the copy). */
#define DS_PRECISION_FP32 0
#define DS_PRECISION_BF16 1
DSDEF int ds_model_set_precision(ds_model *m, int precision, ds_error *err);
DSDEF int ds_model_precision(const ds_model *m);
DSDEF size_t ds_model_n_params(const ds_model *m);
DSDEF int ds_model_n_tensors(const ds_model *m);
DSDEF const ds_tensor *ds_model_tensor(const ds_model *m, int i);

/* THE POINTER CONTRACT. Every array of the model lives in its backend's memory: host memory in
   the CPU build, device memory in a device build (the CUDA path). The accessors below return
   those pointers; on the CPU you may read and write through them (valid until ds_model_free;
   the logits until the next forward, backward or forward_token), elsewhere they are for the
   backend's own calls only. Code meant to run on any backend uses the portable copies:
     ds_model_get/_set          a range [offset, offset + n) of the flat parameters (DS_PARAMS),
                                gradients (DS_GRADS) or AdamW moments (DS_ADAM_M, DS_ADAM_V);
                                a tensor's range is its ds_tensor offset and numel
     ds_model_get/_set_tensor   one parameter tensor, by index
     ds_model_copy_logits       rows of the last forward's logits
     ds_model_copy_token_losses the last forward's per-token losses (B*T values)
   ds_model_forward_token is the exception: the logits it returns are always host memory. */
enum { DS_PARAMS = 0, DS_GRADS = 1, DS_ADAM_M = 2, DS_ADAM_V = 3 };
DSDEF ds_float *ds_model_params(ds_model *m);
DSDEF ds_float *ds_model_grads(ds_model *m);
DSDEF int ds_model_get(const ds_model *m, int which, size_t offset, size_t n, ds_float *out, ds_error *err);
DSDEF int ds_model_set(ds_model *m, int which, size_t offset, size_t n, const ds_float *in, ds_error *err);
DSDEF int ds_model_get_tensor(const ds_model *m, int i, ds_float *out, ds_error *err);
DSDEF int ds_model_set_tensor(ds_model *m, int i, const ds_float *in, ds_error *err);

/* Forward pass over inputs[B*T]. With targets (may be NULL) it also computes the softmax
   cross-entropy, weighted per token by weights[B*T] (NULL: all 1; 0 ignores a token, as SFT
   masking needs): loss = sum_t w_t * -log p_t(target_t) / sum_t w_t, summed in double and
   returned in double (*loss may be NULL). Returns DS_OK, or an error (a token id out of range,
   B or T too large, a non-finite loss). */
DSDEF int ds_model_forward(ds_model *m, const int32_t *inputs, const int32_t *targets, const float *weights, int B, int T,
                           ds_pool *pool, double *loss, ds_error *err);
/* The logits of the last forward, [B*T, V] row-major, in backend memory (overwritten by backward
   with their gradient). ds_model_copy_logits copies rows [row, row + n_rows) to the host.
   The chunked classifier (paper §2.4): a backend may hold fewer rows of logits than B*T. The
   CPU holds them all; the CUDA build holds as many as fit in 256 MB (655 rows at V = 102400),
   all B*T rows at small vocabularies. A forward with targets then computes the logits and
   losses a chunk of rows at a time, and the backward computes each chunk again before its
   in-place gradient (one more head product): the same bits as the whole batch at once on the
   CPU. Its logits are not kept: ds_model_logits returns NULL and ds_model_copy_logits an error
   until the next forward without targets, which keeps every row's and so refuses more rows
   than the model holds. */
DSDEF const ds_float *ds_model_logits(const ds_model *m);
DSDEF int ds_model_copy_logits(const ds_model *m, size_t row, size_t n_rows, ds_float *out, ds_error *err);
/* Backward pass of the last forward (which must have had targets; one backward per forward).
   Gradients *accumulate* (+=) into the gradient buffer, scaled by grad_scale (1 for one batch;
   1/k for the mean over k micro-batches), so gradient accumulation is free. ds_model_zero_grad
   clears them. */
DSDEF int ds_model_backward(ds_model *m, float grad_scale, ds_pool *pool, ds_error *err);
/* The per-token losses of the last forward with targets, [B*T] nats: -log p_t(target_t) for every
   token, whatever its weight. A sequence's log-probability is minus their sum over its tokens.
   In backend memory; ds_model_copy_token_losses copies them to the host. */
DSDEF const ds_float *ds_model_token_losses(const ds_model *m);
DSDEF int ds_model_copy_token_losses(const ds_model *m, ds_float *out, ds_error *err);
/* Backward of any objective J built from the per-token losses: dloss[n] = dJ/dloss_n (any sign;
   0 gives the token exactly zero gradient). ds_model_backward is the case dloss = grad_scale *
   w_n / sum w; DPO passes -dJ/dlogp(sequence) on each response token. Gradients accumulate. */
DSDEF int ds_model_backward_tokens(ds_model *m, const ds_float *dloss, ds_pool *pool, ds_error *err);
DSDEF void ds_model_zero_grad(ds_model *m);

/* ============================================================================================
   §2.3 Optimizer and learning-rate schedules
   ============================================================================================ */

typedef struct ds_adamw {
    double beta1, beta2;  /* 0.9, 0.95 (§2.3) */
    double eps;           /* 1e-8 (not stated in the paper; PyTorch's default) */
    double weight_decay;  /* 0.1, on matrices only: embeddings, projections, LM head */
    double grad_clip;     /* 1.0: global-norm clipping; 0 disables it */
} ds_adamw;
DSDEF ds_adamw ds_adamw_default(void);
/* One AdamW step at learning rate lr over the accumulated gradients: global-norm clip, then the
   update. *grad_norm (may be NULL) gets the norm before clipping. A non-finite norm leaves the
   parameters and moments untouched and returns DS_ERR_NUMERIC. Does not zero the gradients. */
DSDEF int ds_model_step(ds_model *m, const ds_adamw *opt, double lr, double *grad_norm, ds_pool *pool, ds_error *err);
DSDEF long ds_model_steps_done(const ds_model *m);

typedef enum ds_schedule_kind { DS_SCHED_MULTISTEP, DS_SCHED_COSINE, DS_SCHED_CONSTANT } ds_schedule_kind;
typedef struct ds_schedule {
    ds_schedule_kind kind;
    double peak_lr;
    long warmup_steps;   /* linear warmup from peak/warmup to peak (the paper: 2000) */
    long total_steps;
    double stage1, stage2;  /* multi-step: the fractions of training where the LR drops (0.8, 0.9) */
    double drop1, drop2;    /* ... and the LR after each drop, as a fraction of the peak (0.316, 0.1) */
    double min_ratio;       /* cosine: the final LR as a fraction of the peak (0.1) */
} ds_schedule;
/* The paper's multi-step schedule (§2.3) with its fractions; cosine and constant to compare. */
DSDEF ds_schedule ds_schedule_multistep(double peak_lr, long warmup_steps, long total_steps);
DSDEF ds_schedule ds_schedule_cosine(double peak_lr, long warmup_steps, long total_steps);
/* The learning rate of step (0-based). */
DSDEF double ds_schedule_lr(const ds_schedule *s, long step);

/* ============================================================================================
   §2.4 Checkpoints: a directory a Hugging Face user recognises, and exact resume
     config.json                 LlamaConfig keys ("architectures": ["LlamaForCausalLM"], ...)
     model.safetensors           the weights under the HF LLaMA names, F32 (or BF16 to export)
     tokenizer.json              when a tokenizer is given
     trainer_state.safetensors   AdamW's moments, the step, tokens seen, data position, RNG state
   The directory is written whole as "<dir>.tmp" and swapped in by renames, so a crash (or a full
   disk) never damages the last good checkpoint: a reader finds either the old one or the new one
   (after a crash between the two renames, "<dir>.old", which ds_checkpoint_load falls back to).
   ============================================================================================ */

enum { DS_DTYPE_F32 = 0, DS_DTYPE_BF16 = 1 };

typedef struct ds_train_state {
    long step;             /* optimizer steps done */
    uint64_t tokens_seen;
    uint64_t data_pos;     /* where the data reader stands (the caller's meaning) */
    uint64_t rng;          /* the caller's sampler RNG state */
    char run[512];         /* the caller's description of the run (its settings, its data), saved and
                              restored as text, so that a resume can check it continues the same run */
} ds_train_state;

/* Saves the model (and, when st is not NULL, the optimizer and trainer state; with tok, the
   tokenizer). BF16 weights are for export: exact resume needs DS_DTYPE_F32. */
DSDEF int ds_checkpoint_save(const ds_model *m, const ds_tokenizer *tok, const ds_train_state *st, const char *dir, int dtype,
                             ds_error *err);
/* Loads a checkpoint directory -- ours, or a Hugging Face LLaMA checkpoint (F32, BF16, F16 or
   F64 weights; tied embeddings are untied by copying) -- into a new model with room for B x T.
   With st, also restores the optimizer and trainer state (an error if the file is missing).
   Validates everything: header size, JSON, dtypes, shapes against config.json, byte ranges; the
   first problem is reported in words. */
DSDEF ds_model *ds_checkpoint_load(const char *dir, int B, int T, ds_train_state *st, ds_error *err);
/* The same for inference only (chat, evaluation): the weights without gradients or AdamW moments,
   a quarter of the memory. Forward, forward_token, evaluation and weight-only saves work;
   backward and step are refused. */
DSDEF ds_model *ds_checkpoint_load_inference(const char *dir, int B, int T, ds_error *err);
/* A decoding model that holds its weights in BF16 only (2 bytes a parameter, half of the
   inference model above: the released 7B in ~14 GB), for ds_model_forward_token / ds_generate.
   F32 or F64 files are rounded to BF16 once, at load; BF16 files are read as they are. Its
   matrix-vector products read bf16 weights and compute in float (ds__dot_bf16), so its logits
   equal those of a float model holding the same rounded weights; a prompt goes through a batched
   forward 64 positions at a time (the float matmul, each strip of weights widened into its packed
   block: the float model's prefill, bit for bit). The training forward,
   backward, steps and saves are refused with the reason; ds_model_get(DS_PARAMS) widens. CPU
   build only. */
DSDEF ds_model *ds_checkpoint_load_bf16(const char *dir, ds_error *err);
/* config.json <-> ds_config (LlamaConfig keys; unknown keys are ignored, unsupported values --
   biases, another activation, RoPE scaling -- refused). */
DSDEF int ds_config_from_json(const char *json, size_t len, ds_config *c, ds_error *err);
DSDEF int ds_config_to_json(const ds_config *c, int dtype, int32_t bos, int32_t eos, ds_buf *out, ds_error *err);

/* ============================================================================================
   §2.4 Data parallelism: ZeRO-1 on MPI (DS_MPI), and asynchronous checkpoints
   The paper trains with data parallelism and ZeRO-1 -- every rank holds the model, computes the
   gradient of its share of the batch, and owns one slice of the optimizer state -- and saves
   checkpoints asynchronously every 5 minutes. A ds_dp is one such group: the ranks of
   MPI_COMM_WORLD in the DS_MPI build, one rank (world 1) in every other build, so one program runs
   on both. A step of a global batch of `micro` micro-batches (the same on every rank count):

     rank r runs micro-batches [r k, (r+1) k), k = micro / world:  ds_dp_micro each
     ds_dp_step:  every rank's status and losses exchanged (a failure anywhere fails the step
                  everywhere, with the failing rank's message); the gradient reduce-scattered:
                  rank r receives slice r of every rank's gradient and sums them itself, in a
                  fixed tree order; the clipping norm from every slice's chunk sums, in order;
                  AdamW on slice r (its moments live on rank r only); the slices all-gathered.

   DETERMINISM. No MPI reduction touches a float: sums are done by the ranks in a fixed order,
   the pairwise tree over the micro-batches (split at the largest power of two below the count).
   So a run is bit-identical for any world size whose k = micro / world is a power of two
   (micro 4: 1, 2 and 4 ranks), and equal to one process accumulating the same micro-batches
   through ds_dp (world 1); for another k it is deterministic for its world size. The gradient of
   a micro-batch is that of sum_t w_t loss_t, divided by the global batch's sum of weights at the
   step, so ds_dp (world 1, micro 1) and ds_model_backward + ds_model_step agree to rounding, not
   bit for bit. Threads per rank never change a result. */
typedef struct ds_dp ds_dp;
/* The group of model m (every rank passes its own model, all of one shape, initialized alike --
   the same seed, or the same checkpoint); micro: micro-batches per step, a multiple of the world
   size. DS_MPI: initializes MPI if it is not (and ds_dp_free then finalizes it), works on a
   duplicate of MPI_COMM_WORLD whose errors return (a failed MPI call is an error, not an abort).
   With world > 1 the model's AdamW moments are cut to this rank's slice (ds_model_step refuses
   it; ds_dp_step steps it) and ds_checkpoint_save of it becomes collective (below). */
DSDEF ds_dp *ds_dp_new(ds_model *m, int micro, ds_error *err);
DSDEF void ds_dp_free(ds_dp *d);
DSDEF int ds_dp_rank(const ds_dp *d);
DSDEF int ds_dp_world(const ds_dp *d);
DSDEF int ds_dp_local(const ds_dp *d); /* k: the micro-batches this rank runs per step */
/* this rank's ZeRO-1 slice [*lo, *hi) of the flat parameters (its AdamW moments) */
DSDEF void ds_dp_slice(const ds_dp *d, size_t *lo, size_t *hi);
/* One of this rank's micro-batches: forward (weights as ds_model_forward) and backward, its
   gradient kept for the step. A failure is returned, and the step reports it on every rank. */
DSDEF int ds_dp_micro(ds_dp *d, const int32_t *inputs, const int32_t *targets, const float *weights, int B, int T, ds_pool *pool,
                      ds_error *err);
/* The step (collective: every rank calls it once per step, after its k micro-batches): as above.
   *loss: the global batch's loss (sum w loss / sum w over every micro-batch); *grad_norm its
   gradient's norm before clipping. A non-finite norm leaves every rank's model untouched. */
DSDEF int ds_dp_step(ds_dp *d, const ds_adamw *opt, double lr, double *loss, double *grad_norm, ds_pool *pool, ds_error *err);
/* *flag becomes rank 0's value on every rank (collective): decisions that must agree, such as "save now"
   taken on rank 0's clock. World 1: flag. */
DSDEF int ds_dp_agree(ds_dp *d, int *flag, ds_error *err);
/* The bytes sent and received by this rank, and the seconds spent in MPI calls, since ds_dp_new. */
DSDEF void ds_dp_traffic(const ds_dp *d, double *bytes, double *seconds);
/* Saving a model of a group with world > 1 (ds_checkpoint_save, ds_saver_start) is collective:
   every rank calls it; the moments are gathered to rank 0 (into a buffer of 2 n_params values,
   allocated at its first save), rank 0 writes, and every rank returns rank 0's result. The file
   holds the whole state, so it resumes on any world size. */

/* An asynchronous checkpoint writer (§2.4): ds_saver_start snapshots the model, the trainer state
   and the tokenizer into host buffers (allocated once, at the first start: 3 n_params values) and
   returns; a background thread writes the checkpoint with ds_checkpoint_save's atomic directory
   swap while training goes on. A kill at any moment leaves the last good checkpoint loadable;
   the checkpoint holds the state of the step it was started at. A start waits for the previous
   save first. DS_NO_THREADS: the start writes before it returns. In a group (world > 1) the
   start is collective and only rank 0 holds a snapshot and writes; elsewhere the saver reports
   DS_OK. The model must outlive the saver's writes (ds_saver_free waits). */
typedef struct ds_saver ds_saver;
DSDEF ds_saver *ds_saver_new(ds_error *err);
DSDEF int ds_saver_start(ds_saver *s, const ds_model *m, const ds_tokenizer *tok, const ds_train_state *st, const char *dir, int dtype,
                         ds_error *err);
/* 1 while a save is being written */
DSDEF int ds_saver_busy(ds_saver *s);
/* Waits for the save in flight (if any) and returns its result (DS_OK when there was none); each
   result is returned once. *seconds (may be NULL): how long its write took. */
DSDEF int ds_saver_wait(ds_saver *s, double *seconds, ds_error *err);
DSDEF void ds_saver_free(ds_saver *s);

/* ============================================================================================
   §2.3 / §3 Token data and bits-per-byte
   A token file: a 32-byte header -- magic "DSTOKENS", version 1, the vocabulary size, the number
   of tokens, the number of UTF-8 bytes of the text they encode -- then the ids as little-endian
   uint32. Encode a corpus once, then sample training windows from it with a seeded RNG.
   ============================================================================================ */

typedef struct ds_tokens {
    int32_t *ids;
    size_t n;
    uint64_t n_bytes;  /* UTF-8 bytes of the text (bits-per-byte divides by it) */
    int32_t vocab;     /* every id is below it */
} ds_tokens;

/* Encodes text with tok (no BOS/EOS, special strings as plain text) into t. */
DSDEF int ds_tokens_from_text(ds_tokenizer *tok, const char *text, size_t len, ds_tokens *t, ds_error *err);
DSDEF int ds_tokens_save(const ds_tokens *t, const char *path, ds_error *err); /* atomic */
/* Validates magic, version, the size against the count, and every id against the vocabulary. */
DSDEF int ds_tokens_load(const char *path, ds_tokens *t, ds_error *err);
DSDEF void ds_tokens_free(ds_tokens *t);
/* B random windows of T + 1 tokens: inputs[b*T + i] = w[i], targets[b*T + i] = w[i + 1]. The
   RNG state is the caller's (save it in ds_train_state.rng to resume exactly). */
DSDEF int ds_tokens_batch(const ds_tokens *t, uint64_t *rng, int B, int T, int32_t *inputs, int32_t *targets, ds_error *err);
/* Bits per byte on a token set (§3, the paper's error metric): every token but the first is
   predicted once, in consecutive windows of T; BPB = sum(-log2 p(token)) / (UTF-8 bytes of the
   predicted tokens), independent of the tokenizer. Also returns the mean loss in nats. */
DSDEF int ds_model_eval_bpb(ds_model *m, const ds_tokenizer *tok, const ds_tokens *t, int B, int T, ds_pool *pool, double *loss,
                            double *bpb, ds_error *err);

/* ============================================================================================
   Generation: a KV-cached single-token forward, and sampling
   ============================================================================================ */

/* Runs token at position pos (0-based) of one sequence, attending to the positions before it
   through the KV cache (allocated on first use: 2 * L * max_seq * KV * hd values), and points
   *logits at the V logits, in host memory (valid until the next call). Positions must be fed in
   order 0, 1, 2, ...; feeding position p again overwrites p and forgets what came after it. */
DSDEF int ds_model_forward_token(ds_model *m, int32_t token, int pos, ds_pool *pool, const ds_float **logits, ds_error *err);

/* The seeded random stream of the library (splitmix64; ds_tokens_batch draws from it): the same
   numbers on every platform. ds_rng_uniform: [0, 1) with 53 bits. */
DSDEF uint64_t ds_rng_next(uint64_t *state);
DSDEF double ds_rng_uniform(uint64_t *state);

/* A sampler: temperature 0 takes the argmax (the first, on ties); otherwise it samples
   softmax(logits / temperature) restricted to the smallest set of most likely tokens whose mass
   reaches top_p (1: all), drawing from its own stream. Its candidate buffer is allocated once,
   on the first sampled draw (never per token); ds_sampler_free releases it. NaN logits, or a
   largest logit of +-inf, are an error (DS_ERR_NUMERIC), never a token. */
typedef struct ds_sampler {
    double temperature, top_p;
    uint64_t rng;   /* the stream's state: save it to continue a generation exactly */
    void *cand_;    /* private */
    int cap_;
} ds_sampler;
DSDEF ds_sampler ds_sampler_make(double temperature, double top_p, uint64_t seed);
DSDEF int ds_sampler_sample(ds_sampler *s, const ds_float *logits, int V, int32_t *id, ds_error *err);
DSDEF void ds_sampler_free(ds_sampler *s);

/* Generation that continues a sequence: the KV cache holds positions 0..pos-1 (from earlier
   calls; pos 0: a new sequence); feeds feed[0..n_feed) at positions pos.., then samples up to
   max_new tokens with s (stopping after eos when eos >= 0), calling on_token (may be NULL) for
   each as it comes; out receives them. The last token returned is not fed: afterwards the cache
   holds positions 0 .. pos + n_feed + *n_out - 2, so a chat continues with
   pos = pos + n_feed + *n_out - 1, feeding that token first. A float model built or loaded with
   T > 1 feeds feed through the batched forward in chunks of T (prefill: matrix products over the
   chunk, equal to feeding it token by token up to rounding); a BF16 model in chunks of 64. */
DSDEF int ds_generate_next(ds_model *m, int pos, const int32_t *feed, int n_feed, int max_new, ds_sampler *s, int32_t eos,
                           void (*on_token)(void *ctx, int32_t id), void *ctx, int32_t *out, int *n_out, ds_pool *pool, ds_error *err);
/* The same from position 0 with a sampler of its own: feeds the prompt, then samples. */
DSDEF int ds_generate(ds_model *m, const int32_t *prompt, int n_prompt, int max_new, double temperature, double top_p, uint64_t seed,
                      int32_t eos, void (*on_token)(void *ctx, int32_t id), void *ctx, int32_t *out, int *n_out, ds_pool *pool,
                      ds_error *err);

/* ============================================================================================
   §3 Scaling laws: model-scale accounting, the paper's fitted laws, power-law fitting
   ============================================================================================ */

/* The paper's measures (§3, Table 3). N1: non-embedding parameters, 12 n_layer d^2 (6 N1 =
   72 n_layer d^2); N2: all parameters, N1 + n_vocab d; M: non-embedding FLOPs per token,
   72 n_layer d^2 + 12 n_layer d l_seq (attention counted, the vocabulary projection not).
   Compute C = M D for D training tokens. */
DSDEF double ds_scale_n1(int n_layer, int d_model);
DSDEF double ds_scale_n2(int n_layer, int d_model, int n_vocab);
DSDEF double ds_scale_m(int n_layer, int d_model, int l_seq);
/* The FLOPs per trained token of the model as implemented (for MFU): 6 x every matmul weight
   (q, k, v, o with GQA's smaller k and v, gate, up, down with the real d_ff, the LM head) plus
   12 n_layer T d (the attention products, full T x T), the formula of ../shared/bench. */
DSDEF double ds_model_flops_per_token(const ds_config *c, int T);

/* The paper's fitted laws, C in FLOPs: eta_opt = 0.3118 C^-0.1250, B_opt = 0.2920 C^0.3271 tokens
   (§3.1); M_opt = 0.1715 C^0.5243, D_opt = 5.8316 C^0.4757 (§3.2). */
DSDEF double ds_law_eta_opt(double C);
DSDEF double ds_law_batch_opt(double C);
DSDEF double ds_law_m_opt(double C);
DSDEF double ds_law_d_opt(double C);

/* y = k x^alpha, by least squares on log y = log k + alpha log x. R^2 is that of the log-log
   line; the standard errors (of log k and alpha) need n >= 3. Refuses n < 2, non-positive or
   non-finite values, and x all equal, with the reason. */
typedef struct ds_power_law {
    double k, alpha;
    double r2;
    double se_log_k, se_alpha; /* standard errors; 0 when n == 2 */
    int n;
} ds_power_law;
DSDEF int ds_fit_power_law(const double *x, const double *y, int n, ds_power_law *out, ds_error *err);
DSDEF double ds_power_law_eval(const ds_power_law *p, double x);

/* §3.1 hyperparameter scaling: runs at several budgets over a grid of (batch, learning rate).
   A run is near-optimal when its loss is within `threshold` (0.0025: 0.25%) of the best loss at
   its budget; power laws eta_opt(C) and B_opt(C) are fitted through the near-optimal runs. */
typedef struct ds_hp_run { double C, batch, lr, loss; } ds_hp_run;
DSDEF int ds_fit_hyperparams(const ds_hp_run *runs, int n, double threshold, ds_power_law *eta, ds_power_law *batch, int *n_selected,
                             ds_error *err);

/* §3.2 IsoFLOP profiles: runs (C, M, loss) at several budgets. At each budget the loss is fitted
   as a parabola in log M (least squares, 3 or more models); its vertex is M_opt, D_opt = C /
   M_opt, and its value the optimal loss. Then M_opt = k C^a, D_opt = k' C^b and loss_opt(C) are
   fitted as power laws. Refused with the reason: a NaN loss, fewer than 3 models at a budget, a
   parabola with no minimum, a minimum outside the models sampled, fewer than 2 budgets. */
#define DS_ISOFLOP_MAX_BUDGETS 64
typedef struct ds_isoflop_run { double C, M, loss; } ds_isoflop_run;
typedef struct ds_isoflop_fit {
    int n_budgets;
    double C[DS_ISOFLOP_MAX_BUDGETS], M_opt[DS_ISOFLOP_MAX_BUDGETS], D_opt[DS_ISOFLOP_MAX_BUDGETS], loss_opt[DS_ISOFLOP_MAX_BUDGETS];
    double parabola[DS_ISOFLOP_MAX_BUDGETS][3]; /* loss = p0 + p1 log M + p2 (log M)^2 */
    ds_power_law m_law, d_law, loss_law;
} ds_isoflop_fit;
DSDEF int ds_fit_isoflop(const ds_isoflop_run *runs, int n, ds_isoflop_fit *out, ds_error *err);

/* ============================================================================================
   §4-5 Alignment: the chat format, TRL-style datasets, SFT masking, DPO, the repetition ratio
   ============================================================================================ */

/* A token sequence with a loss mask: mask[i] = 1 when ids[i] is a trained target (predicted from
   ids[0..i-1]); 0 for prompts, the template's own words and BOS. Zero-initialize; appends grow it. */
typedef struct ds_seq {
    int32_t *ids;
    uint8_t *mask;
    int n, cap;
} ds_seq;
DSDEF void ds_seq_free(ds_seq *s);
DSDEF int ds_seq_n_trained(const ds_seq *s); /* how many mask[i] are 1 */
/* Appends one token (trained: its mask bit), growing the arrays. */
DSDEF int ds_seq_push(ds_seq *s, int32_t id, int trained, ds_error *err);

typedef struct ds_message {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} ds_message;

/* DeepSeek's chat template (deepseek-llm-7b-chat, ../shared/deepseek-tokenizer/README.md):
     BOS [{system}\n\n] User: {user}\n\nAssistant: {assistant}EOS User: {user}\n\n ... [Assistant:]
   Every text part is encoded as plain text, so a BOS/EOS string typed by a user stays text; BOS
   and EOS are the control ids. Masked in (trained): each reply " {assistant}" and its EOS. With
   add_generation_prompt the sequence ends in "Assistant:" (no space) for the model to continue.
   A system message may only come first. Appends to out (with BOS only when out is empty). */
DSDEF int ds_chat_render(ds_tokenizer *tok, const ds_message *msgs, int n, int add_generation_prompt, ds_seq *out, ds_error *err);

/* JSONL datasets in the TRL conventions, one JSON object per line (blank lines are skipped):
     SFT          {"messages": [{"role": ..., "content": ...}, ...]}    chat template, replies trained
                  {"prompt": "...", "completion": "..."}                 BOS prompt completion EOS, the
                                                                          completion and EOS trained
                  {"prompt": [messages], "completion": [messages]}      the conversation, replies in
                                                                          the completion trained
     preference   {"prompt": ..., "chosen": ..., "rejected": ...}       strings: BOS prompt | response
                                                                          EOS; message lists: the prompt
                                                                          rendered up to "Assistant:",
                                                                          each response one assistant
                                                                          message " {content}" EOS
   Sequences longer than max_tokens are cut (counted in `truncated`); a row left with no trained
   token is bad. A bad line is reported to on_bad (may be NULL) with its number and the reason;
   with DS_DATA_SKIP_BAD it is skipped, otherwise loading stops there with that error. */
enum { DS_DATA_SFT = 1, DS_DATA_PREFERENCE = 2 };
enum { DS_DATA_SKIP_BAD = 1 };
typedef struct ds_example {
    ds_seq seq;      /* SFT: the conversation; preference: prompt + chosen */
    ds_seq rejected; /* preference: prompt + rejected */
} ds_example;
typedef struct ds_dataset {
    int kind, n;
    ds_example *ex;
    long lines, bad, truncated; /* non-blank lines read, lines skipped, rows cut to max_tokens */
    int cap_;
} ds_dataset;
typedef void (*ds_bad_line_fn)(void *ctx, long line, const char *msg);
DSDEF int ds_dataset_parse(ds_dataset *d, ds_tokenizer *tok, int kind, const char *text, size_t len, int max_tokens, int flags,
                           ds_bad_line_fn on_bad, void *ctx, ds_error *err);
DSDEF int ds_dataset_load(ds_dataset *d, ds_tokenizer *tok, int kind, const char *path, int max_tokens, int flags, ds_bad_line_fn on_bad,
                          void *ctx, ds_error *err);
DSDEF void ds_dataset_free(ds_dataset *d);

/* Lays n <= B sequences out as a batch for ds_model_forward: row b holds seqs[b] shifted by one
   (inputs ids[t], targets ids[t+1], weights mask[t+1]), cut to T tokens, padded with `pad` and
   weight 0; rows n..B-1 are all padding. SFT is then ds_model_forward + ds_model_backward: a
   token of weight 0 gets exactly zero gradient. */
DSDEF void ds_seq_batch(const ds_seq *const *seqs, int n, int B, int T, int32_t pad, int32_t *inputs, int32_t *targets, float *weights);

/* Direct Preference Optimization (Rafailov et al.; TRL's semantics). With h = (pi_c - pi_r) -
   (ref_c - ref_r), the sequence log-probs of the chosen and rejected responses under the policy
   and the frozen reference:
     sigmoid  loss = -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)   (eps: label
              smoothing, conservative DPO; eps = 0 is DPO)
     IPO      loss = (h - 1/(2 beta))^2, with log-probs averaged over the response tokens (as TRL)
   rewards = beta (pi - ref). Reference log-probs are computed once, before training, with the
   frozen SFT model (ds_dpo_logps), so only one model is resident. */
enum { DS_DPO_SIGMOID = 0, DS_DPO_IPO = 1 };
typedef struct ds_dpo {
    double beta;            /* 0.1 */
    double label_smoothing; /* 0 */
    int loss_type;          /* DS_DPO_SIGMOID */
} ds_dpo;
DSDEF ds_dpo ds_dpo_default(void);
typedef struct ds_dpo_stats { /* means over the pairs, under TRL's log names */
    double loss;               /* loss */
    double rewards_chosen;     /* rewards/chosen */
    double rewards_rejected;   /* rewards/rejected */
    double rewards_accuracies; /* rewards/accuracies: share of pairs with reward chosen > rejected */
    double rewards_margins;    /* rewards/margins */
    double logps_chosen;       /* logps/chosen */
    double logps_rejected;     /* logps/rejected */
} ds_dpo_stats;
/* The loss of n pairs from their log-probs (mean over pairs); d_pc/d_pr (may be NULL) get
   dloss/dpi_c and dloss/dpi_r per pair. */
DSDEF void ds_dpo_loss(const ds_dpo *cfg, int n, const double *pi_c, const double *pi_r, const double *ref_c, const double *ref_r,
                       ds_dpo_stats *st, double *d_pc, double *d_pr);
/* The response log-probs of n pairs under model m (forward only; B >= 2n, T >= the longest
   sequence - 1 or it is cut), as DPO uses them (averaged per token for IPO). */
DSDEF int ds_dpo_logps(ds_model *m, const ds_example *const *pairs, int n, int T, const ds_dpo *cfg, ds_pool *pool, double *chosen,
                       double *rejected, ds_error *err);
/* One DPO gradient: a forward over the 2n sequences (chosen rows, then rejected), the loss, and
   a backward through ds_model_backward_tokens; gradients accumulate, times grad_scale. */
DSDEF int ds_dpo_grad(ds_model *m, const ds_dpo *cfg, const ds_example *const *pairs, int n, int T, const double *ref_c,
                      const double *ref_r, float grad_scale, ds_pool *pool, ds_dpo_stats *st, ds_error *err);

/* The paper's repetition test for one greedy response that did not end: 1 when its second half
   repeats with some period p <= n/4 (the response loops), for n >= 8. The repetition ratio is the
   share of held-out prompts whose response hits the length limit without EOS and loops. */
DSDEF int ds_is_repetitive(const int32_t *ids, int n);

#ifdef __cplusplus
}
#endif
#endif /* DEEPSEEK_H */

/* ############################################################################################
   IMPLEMENTATION
   ############################################################################################ */
#ifdef DEEPSEEK_IMPLEMENTATION
#ifndef DEEPSEEK_IMPLEMENTATION_DONE
#define DEEPSEEK_IMPLEMENTATION_DONE

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define DS__POSIX 1
#endif

#if defined(DS_MALLOC) && defined(DS_REALLOC) && defined(DS_FREE)
#define DS__USER_ALLOC 1 /* the user's allocator */
#elif !defined(DS_MALLOC) && !defined(DS_REALLOC) && !defined(DS_FREE)
#define DS_MALLOC(sz) malloc(sz)
#define DS_REALLOC(p, sz) realloc(p, sz)
#define DS_FREE(p) free(p)
#else
#error "deepseek.h: define all of DS_MALLOC, DS_REALLOC and DS_FREE, or none of them"
#endif

#ifndef DS_ASSERT
#include <assert.h>
#define DS_ASSERT(x) assert(x)
#endif
#ifndef DS_JSON_MAX_DEPTH
#define DS_JSON_MAX_DEPTH 128
#endif
#ifndef DS_BPE_CACHE_WORDS
#define DS_BPE_CACHE_WORDS 65536
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================
   0. Errors, buffers, UTF-8, files
   ============================================================================================ */

DSDEF const char *ds_strerror(int code) {
    switch (code) {
    case DS_OK: return "success";
    case DS_ERR_NOMEM: return "out of memory";
    case DS_ERR_IO: return "input/output error";
    case DS_ERR_FORMAT: return "malformed input";
    case DS_ERR_INVALID: return "invalid argument";
    case DS_ERR_UNSUPPORTED: return "unsupported";
    case DS_ERR_RANGE: return "buffer too small";
    case DS_ERR_NUMERIC: return "non-finite number";
    default: return "unknown error";
    }
}

#define ds__fail ds_error_set /* the library's own failures, written the public way */
#define DS__OOM(err) ds__fail(err, DS_ERR_NOMEM, "out of memory")

DSDEF int ds_error_set(ds_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* err->msg = "<where>: <err->msg>", to say which file a nested failure came from */
static void ds__err_prefix(ds_error *err, const char *where) {
    char msg[sizeof err->msg];
    size_t n;
    if (!err || !where) return;
    n = strlen(where);
    if (n + 2 >= sizeof msg) n = sizeof msg - 3;
    memcpy(msg, where, n);
    msg[n] = ':', msg[n + 1] = ' ';
    memcpy(msg + n + 2, err->msg, sizeof msg - n - 2);
    msg[sizeof msg - 1] = 0;
    memcpy(err->msg, msg, sizeof msg);
}

/* Transparent huge pages for the big buffers (Linux, libc's allocator). The model's weights,
   gradients, optimizer state and activations are tens to hundreds of MB, streamed every step or
   token; in 4 KiB pages each page is a TLB entry, and a decode step that streams 98 MB of weights
   (the 15M shape's float model, 24.4M parameters) goes through ~24,000 pages. The hint asks the kernel to back the buffer's whole 2 MiB
   pages with huge pages (where /sys/kernel/mm/transparent_hugepage/enabled is "madvise", as on
   Debian, nothing is huge without it; where it is "always" the hint changes nothing; "never" wins
   over it). It is given before the buffer's first touch, the memset that zeroes it, so the pages
   are huge from the start. Nothing computed depends on it. Measured on an AMD EPYC Zen 4 (15M
   shape's float decoding, one thread): see docs/benchmarks.md. DS_NO_HUGEPAGES turns it off; a
   user's allocator (DS_MALLOC) never gets it. */
#if defined(__linux__) && defined(MADV_HUGEPAGE) && !defined(DS_NO_HUGEPAGES) && !defined(DS__USER_ALLOC)
#define DS__HUGEPAGES 1
#endif
static void ds__hugepages(void *p, size_t bytes) {
#ifdef DS__HUGEPAGES
    const uintptr_t H = (uintptr_t)2 << 20; /* x86-64's and arm64's (4 KiB pages) huge page; page aligned for every base page size */
    uintptr_t a = ((uintptr_t)p + H - 1) & ~(H - 1), e = ((uintptr_t)p + bytes) & ~(H - 1);
    if (e > a) (void)madvise((void *)a, (size_t)(e - a), MADV_HUGEPAGE); /* a hint: its failure changes nothing */
#else
    (void)p, (void)bytes;
#endif
}
/* calloc through the user's allocator, with the n*size overflow check */
static void *ds__calloc(size_t n, size_t size) {
    void *p;
    if (size && n > SIZE_MAX / size) return NULL;
    p = DS_MALLOC(n * size > 0 ? n * size : 1);
    if (p) memset(p, 0, n * size);
    return p;
}

/* Grows *p (an array of *cap elements of `size` bytes) to hold at least `need`. */
static int ds__grow(void **p, size_t *cap, size_t need, size_t size) {
    size_t c = *cap ? *cap : 16;
    void *q;
    if (need <= *cap) return 1;
    while (c < need) {
        if (c > SIZE_MAX / 2 / size) return 0;
        c *= 2;
    }
    q = DS_REALLOC(*p, c * size);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static int ds__buf_reserve(ds_buf *b, size_t extra) {
    if (b->oom) return 0;
    if (extra > SIZE_MAX - b->len - 1) { b->oom = 1; return 0; }
    if (!ds__grow((void **)&b->data, &b->cap, b->len + extra + 1, 1)) { b->oom = 1; return 0; }
    return 1;
}
DSDEF void ds_buf_append(ds_buf *b, const void *p, size_t n) {
    /* p may point into b itself (a token built from two earlier ones): keep it as an offset
       across the reallocation */
    uintptr_t q = (uintptr_t)p, d = (uintptr_t)b->data;
    size_t inside = (b->data && q >= d && q < d + b->cap) ? (size_t)(q - d) : SIZE_MAX;
    if (!ds__buf_reserve(b, n)) return;
    if (inside != SIZE_MAX) p = b->data + inside;
    if (n) memmove(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}
DSDEF void ds_buf_puts(ds_buf *b, const char *s) { ds_buf_append(b, s, strlen(s)); }
DSDEF void ds_buf_printf(ds_buf *b, const char *fmt, ...) {
    va_list ap;
    int n;
    char small[256];
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) { b->oom = 1; return; }
    if ((size_t)n < sizeof small) { ds_buf_append(b, small, (size_t)n); return; }
    if (!ds__buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
DSDEF void ds_buf_free(ds_buf *b) {
    DS_FREE(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

DSDEF int ds_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    uint32_t c, v;
    if (n == 0) return 0;
    c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    if (c < 0xC2) return 0; /* a continuation byte, or the lead of an overlong 2-byte form */
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((c & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        v = ((c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF)) return 0; /* overlong, or a surrogate */
        *cp = v;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        v = ((c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (v < 0x10000 || v > 0x10FFFF) return 0;
        *cp = v;
        return 4;
    }
    return 0;
}
DSDEF int ds_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        int l;
        if (p[i] < 0x80) { i++; continue; }
        l = ds_utf8_decode(p + i, n - i, &cp);
        if (!l) return 0;
        i += (size_t)l;
    }
    return 1;
}
static size_t ds__utf8_encode(uint32_t cp, unsigned char *o) {
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Opens path for reading if it is a regular file (opened without blocking: a FIFO would wait for a
   writer forever) of at most max_bytes (0: no limit); a link to /dev/zero, a device or a directory
   is refused before any read. *size is the file's size (0 where the platform cannot tell). */
static FILE *ds__open_regular(const char *path, size_t max_bytes, uint64_t *size, ds_error *err) {
    FILE *f;
    *size = 0;
#ifdef DS__POSIX
    {
        struct stat sb;
        int fd = open(path, O_RDONLY | O_NONBLOCK);
        if (fd < 0) { ds__fail(err, DS_ERR_IO, "cannot open '%s': %s", path, strerror(errno)); return NULL; }
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            ds__fail(err, DS_ERR_IO, "'%s' is %s, not a regular file", path, S_ISDIR(sb.st_mode) ? "a directory" : S_ISFIFO(sb.st_mode) ? "a FIFO"
                     : S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode) ? "a device" : "not a file");
            close(fd);
            return NULL;
        }
        if (max_bytes && (uint64_t)sb.st_size > (uint64_t)max_bytes) {
            ds__fail(err, DS_ERR_FORMAT, "'%s' is %lld bytes, larger than the %zu-byte limit", path, (long long)sb.st_size, max_bytes);
            close(fd);
            return NULL;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        if (!(f = fdopen(fd, "rb"))) { ds__fail(err, DS_ERR_IO, "cannot open '%s': %s", path, strerror(errno)); close(fd); return NULL; }
        *size = (uint64_t)sb.st_size;
    }
#else
    (void)max_bytes;
    f = fopen(path, "rb");
    if (!f) { ds__fail(err, DS_ERR_IO, "cannot open '%s': %s", path, strerror(errno)); return NULL; }
#endif
    return f;
}

/* random access to files larger than 2 GiB where the platform has it */
static int ds__seek(FILE *f, uint64_t at) {
#ifdef DS__POSIX
    return at > (uint64_t)INT64_MAX ? -1 : fseeko(f, (off_t)at, SEEK_SET);
#else
    return at > (uint64_t)LONG_MAX ? -1 : fseek(f, (long)at, SEEK_SET);
#endif
}

DSDEF char *ds_read_file(const char *path, size_t max_bytes, size_t *len, ds_error *err) {
    FILE *f;
    char *data = NULL;
    size_t cap = 0, n = 0;
    uint64_t size;
    if (!path || !len) { ds__fail(err, DS_ERR_INVALID, "ds_read_file: NULL argument"); return NULL; }
    if (!(f = ds__open_regular(path, max_bytes, &size, err))) return NULL;
#ifdef DS__POSIX
    if (size > (uint64_t)SIZE_MAX - 65537) { ds__fail(err, DS_ERR_FORMAT, "'%s' is too large", path); fclose(f); return NULL; }
    if (!max_bytes || max_bytes > (size_t)size) max_bytes = (size_t)size; /* it may not grow while we read */
    if (!(data = (char *)DS_MALLOC((size_t)size + 2))) { fclose(f); DS__OOM(err); return NULL; } /* exactly: no doubling */
    cap = (size_t)size + 2;
#endif
    for (;;) { /* read in chunks, never past max_bytes (one byte past it tells "larger") */
        size_t got, want = 65536;
        if (max_bytes && want > max_bytes + 1 - n) want = max_bytes + 1 - n;
        if (!ds__grow((void **)&data, &cap, n + want + 1, 1)) {
            fclose(f);
            DS_FREE(data);
            DS__OOM(err);
            return NULL;
        }
        got = fread(data + n, 1, want, f);
        n += got;
        if (max_bytes && n > max_bytes) {
            fclose(f);
            DS_FREE(data);
            ds__fail(err, DS_ERR_FORMAT, "'%s' is larger than the %zu-byte limit (it grew while being read?)", path, max_bytes);
            return NULL;
        }
        if (got == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        DS_FREE(data);
        ds__fail(err, DS_ERR_IO, "error reading '%s': %s", path, strerror(e));
        return NULL;
    }
    fclose(f);
    data[n] = 0;
    *len = n;
    return data;
}

DSDEF int ds_write_file_atomic(const char *path, const void *data, size_t len, ds_error *err) {
    /* Write "<path>.tmp", flush it to the disk, then rename() it over <path>: rename is atomic on
       POSIX, so readers (and a crash) see either the old complete file or the new one. */
    ds_buf tmp = {0, 0, 0, 0};
    FILE *f;
    int ok;
    if (!path || (!data && len)) return ds__fail(err, DS_ERR_INVALID, "ds_write_file_atomic: NULL argument");
    ds_buf_puts(&tmp, path);
    ds_buf_puts(&tmp, ".tmp");
    if (tmp.oom) { ds_buf_free(&tmp); return DS__OOM(err); }
    f = fopen(tmp.data, "wb");
    if (!f) {
        ds__fail(err, DS_ERR_IO, "cannot create '%s': %s", tmp.data, strerror(errno));
        ds_buf_free(&tmp);
        return DS_ERR_IO;
    }
    ok = fwrite(data, 1, len, f) == len;
    ok = (fflush(f) == 0) && ok;
#ifdef DS__POSIX
    ok = (fsync(fileno(f)) == 0) && ok;
#endif
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        ds__fail(err, DS_ERR_IO, "cannot write '%s' (disk full?): %s; '%s' is unchanged", tmp.data, strerror(errno), path);
        remove(tmp.data);
        ds_buf_free(&tmp);
        return DS_ERR_IO;
    }
    if (rename(tmp.data, path) != 0) {
        ds__fail(err, DS_ERR_IO, "cannot rename '%s' to '%s': %s", tmp.data, path, strerror(errno));
        remove(tmp.data);
        ds_buf_free(&tmp);
        return DS_ERR_IO;
    }
    ds_buf_free(&tmp);
    return DS_OK;
}

DSDEF double ds_now(void) {
#ifdef DS__POSIX
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

DSDEF size_t ds_split_point(const char *text, size_t len, double train_frac) {
    size_t cut;
    if (!text || !(train_frac > 0)) return 0;
    if (train_frac >= 1) return len;
    cut = (size_t)((double)len * train_frac);
    if (cut == 0) return 0;
    while (cut < len && text[cut - 1] != '\n') cut++;
    return cut;
}

/* A 64-bit hash of a byte string, for the hash tables below. Hash values never decide an
   output: every table is only ever probed, never iterated in hash order. */
static uint64_t ds__hash(const unsigned char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full), w;
    while (n >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    w = 0;
    if (n) memcpy(&w, p, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 32);
}
static uint64_t ds__hash64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    return x ^ (x >> 33);
}

/* ============================================================================================
   0. JSON reader
   A recursive-descent parser over the bytes. Nodes live in fixed-size blocks (so pointers to
   them stay valid while the tree grows); strings are unescaped into one arena no larger than
   the input, since an escape never decodes to more bytes than it spells.
   ============================================================================================ */

#define DS__JBLOCK 1024
typedef struct ds__jblock {
    struct ds__jblock *prev;
    size_t used;
    ds_json nodes[DS__JBLOCK];
} ds__jblock;

typedef struct ds__jp {
    const unsigned char *s;
    size_t n, i;
    ds__jblock *blocks;
    char *arena;
    size_t arena_len;
    ds_error *err;
    int failed;
} ds__jp;

static void ds__jfail(ds__jp *p, int code, const char *what) {
    size_t line = 1, col = 1, k;
    if (p->failed) return;
    p->failed = 1;
    for (k = 0; k < p->i && k < p->n; k++) {
        if (p->s[k] == '\n') { line++; col = 1; }
        else col++;
    }
    ds__fail(p->err, code, "JSON: %s at line %zu, column %zu", what, line, col);
}

static ds_json *ds__jnode(ds__jp *p, ds_json_type type) {
    ds_json *j;
    if (!p->blocks || p->blocks->used == DS__JBLOCK) {
        ds__jblock *b = (ds__jblock *)DS_MALLOC(sizeof(ds__jblock));
        if (!b) { ds__jfail(p, DS_ERR_NOMEM, "out of memory"); return NULL; }
        b->prev = p->blocks;
        b->used = 0;
        p->blocks = b;
    }
    j = &p->blocks->nodes[p->blocks->used++];
    memset(j, 0, sizeof *j);
    j->type = type;
    return j;
}

static void ds__jws(ds__jp *p) {
    while (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

static int ds__jhex4(const unsigned char *s, uint32_t *v) {
    int k;
    *v = 0;
    for (k = 0; k < 4; k++) {
        unsigned c = s[k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        *v = (*v << 4) | d;
    }
    return 1;
}

/* Parses the string starting at the opening quote; returns its arena copy (NUL-terminated). */
static char *ds__jstring(ds__jp *p, size_t *out_len) {
    char *o = p->arena + p->arena_len, *start = o;
    p->i++; /* the opening quote */
    for (;;) {
        unsigned char c;
        if (p->i >= p->n) { ds__jfail(p, DS_ERR_FORMAT, "unterminated string"); return NULL; }
        c = p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) { ds__jfail(p, DS_ERR_FORMAT, "control character in string"); return NULL; }
        if (c == '\\') {
            uint32_t cp;
            if (p->i + 1 >= p->n) { ds__jfail(p, DS_ERR_FORMAT, "unterminated escape"); return NULL; }
            c = p->s[p->i + 1];
            p->i += 2;
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u':
                if (p->i + 4 > p->n || !ds__jhex4(p->s + p->i, &cp)) { ds__jfail(p, DS_ERR_FORMAT, "bad \\u escape"); return NULL; }
                p->i += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF) { ds__jfail(p, DS_ERR_FORMAT, "lone low surrogate in \\u escape"); return NULL; }
                if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair: \uD83D\uDE00 */
                    uint32_t lo;
                    if (p->i + 6 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' || !ds__jhex4(p->s + p->i + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF) {
                        ds__jfail(p, DS_ERR_FORMAT, "lone high surrogate in \\u escape");
                        return NULL;
                    }
                    p->i += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                o += ds__utf8_encode(cp, (unsigned char *)o);
                break;
            default: p->i -= 1; ds__jfail(p, DS_ERR_FORMAT, "unknown escape"); return NULL;
            }
        } else if (c < 0x80) {
            *o++ = (char)c;
            p->i++;
        } else {
            uint32_t cp;
            int l = ds_utf8_decode(p->s + p->i, p->n - p->i, &cp);
            if (!l) { ds__jfail(p, DS_ERR_FORMAT, "invalid UTF-8 in string"); return NULL; }
            memcpy(o, p->s + p->i, (size_t)l);
            o += l;
            p->i += (size_t)l;
        }
    }
    *o++ = 0;
    *out_len = (size_t)(o - start) - 1;
    p->arena_len += (size_t)(o - start);
    return start;
}

/* Strict RFC 8259 number grammar; the value is correctly rounded. */
static int ds__jnumber(ds__jp *p, double *out) {
    size_t st = p->i, i = p->i, n = p->n;
    const unsigned char *s = p->s;
    uint64_t mant = 0;
    int digits = 0, exp10 = 0, neg = 0, fast = 1;
    if (i < n && s[i] == '-') { neg = 1; i++; }
    if (i >= n || s[i] < '0' || s[i] > '9') { p->i = i; ds__jfail(p, DS_ERR_FORMAT, "bad number"); return 0; }
    if (s[i] == '0') {
        i++;
        if (i < n && s[i] >= '0' && s[i] <= '9') { p->i = i; ds__jfail(p, DS_ERR_FORMAT, "leading zero in number"); return 0; }
    } else {
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (digits < 19) mant = mant * 10 + (uint64_t)(s[i] - '0'), digits++;
            else fast = 0;
            i++;
        }
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') { p->i = i; ds__jfail(p, DS_ERR_FORMAT, "digit expected after '.'"); return 0; }
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (digits < 19) mant = mant * 10 + (uint64_t)(s[i] - '0'), digits++, exp10--;
            else if (s[i] != '0') fast = 0;
            i++;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0, e = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        if (i >= n || s[i] < '0' || s[i] > '9') { p->i = i; ds__jfail(p, DS_ERR_FORMAT, "digit expected in exponent"); return 0; }
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (e < 100000) e = e * 10 + (s[i] - '0');
            i++;
        }
        exp10 += eneg ? -e : e;
    }
    p->i = i;
    /* Fast path (Clinger): a mantissa below 2^53 times an exact power of ten <= 1e22 is one
       correctly rounded IEEE operation. Anything else goes to strtod. */
    if (fast && mant < (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                       1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
        double v = (double)mant;
        v = exp10 < 0 ? v / pow10[-exp10] : v * pow10[exp10];
        *out = neg ? -v : v;
    } else {
        /* strtod reads the locale's decimal point: copy the number and substitute it */
        char small[64], *buf = small, *end;
        size_t len = i - st, k;
        const char *dp = localeconv()->decimal_point;
        if (len + 1 > sizeof small) {
            buf = (char *)DS_MALLOC(len + 1);
            if (!buf) { ds__jfail(p, DS_ERR_NOMEM, "out of memory"); return 0; }
        }
        memcpy(buf, s + st, len);
        buf[len] = 0;
        for (k = 0; k < len; k++)
            if (buf[k] == '.' && dp && dp[0]) buf[k] = dp[0];
        *out = strtod(buf, &end);
        if (buf != small) DS_FREE(buf);
    }
    if (isinf(*out) || isnan(*out)) { p->i = st; ds__jfail(p, DS_ERR_FORMAT, "number out of range"); return 0; }
    return 1;
}

static ds_json *ds__jvalue(ds__jp *p, int depth) {
    ds_json *j;
    unsigned char c;
    ds__jws(p);
    if (p->i >= p->n) { ds__jfail(p, DS_ERR_FORMAT, "unexpected end of input"); return NULL; }
    if (depth > DS_JSON_MAX_DEPTH) { ds__jfail(p, DS_ERR_FORMAT, "nesting too deep"); return NULL; }
    c = p->s[p->i];
    if (c == '{' || c == '[') {
        int obj = c == '{';
        ds_json *last = NULL;
        j = ds__jnode(p, obj ? DS_JSON_OBJECT : DS_JSON_ARRAY);
        if (!j) return NULL;
        p->i++;
        ds__jws(p);
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) { p->i++; return j; }
        for (;;) {
            ds_json *kid;
            const char *key = NULL;
            size_t key_len = 0;
            if (obj) {
                ds__jws(p);
                if (p->i >= p->n || p->s[p->i] != '"') { ds__jfail(p, DS_ERR_FORMAT, "member name expected"); return NULL; }
                key = ds__jstring(p, &key_len);
                if (!key) return NULL;
                ds__jws(p);
                if (p->i >= p->n || p->s[p->i] != ':') { ds__jfail(p, DS_ERR_FORMAT, "':' expected"); return NULL; }
                p->i++;
            }
            kid = ds__jvalue(p, depth + 1);
            if (!kid) return NULL;
            kid->key = key;
            kid->key_len = key_len;
            if (last) last->next = kid;
            else j->child = kid;
            last = kid;
            j->len++;
            ds__jws(p);
            if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
            if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) { p->i++; return j; }
            ds__jfail(p, DS_ERR_FORMAT, obj ? "',' or '}' expected" : "',' or ']' expected");
            return NULL;
        }
    }
    if (c == '"') {
        j = ds__jnode(p, DS_JSON_STRING);
        if (!j) return NULL;
        j->str = ds__jstring(p, &j->len);
        return j->str ? j : NULL;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        j = ds__jnode(p, DS_JSON_NUMBER);
        if (!j || !ds__jnumber(p, &j->num)) return NULL;
        return j;
    }
    {
        static const char *const words[] = {"true", "false", "null"};
        static const ds_json_type types[] = {DS_JSON_TRUE, DS_JSON_FALSE, DS_JSON_NULL};
        int k;
        for (k = 0; k < 3; k++) {
            size_t wl = strlen(words[k]);
            if (p->n - p->i >= wl && memcmp(p->s + p->i, words[k], wl) == 0) {
                p->i += wl;
                return ds__jnode(p, types[k]);
            }
        }
    }
    ds__jfail(p, DS_ERR_FORMAT, "unexpected character");
    return NULL;
}

static void ds__jblocks_free(ds__jblock *b) {
    while (b) {
        ds__jblock *prev = b->prev;
        DS_FREE(b);
        b = prev;
    }
}

DSDEF ds_json_doc *ds_json_parse(const char *text, size_t len, ds_error *err) {
    ds__jp p;
    ds_json_doc *doc;
    ds_json *root;
    if (!text && len) { ds__fail(err, DS_ERR_INVALID, "ds_json_parse: NULL text"); return NULL; }
    memset(&p, 0, sizeof p);
    p.s = (const unsigned char *)text;
    p.n = len;
    p.err = err;
    if (len >= 3 && p.s[0] == 0xEF && p.s[1] == 0xBB && p.s[2] == 0xBF) p.i = 3; /* skip a byte-order mark */
    doc = (ds_json_doc *)ds__calloc(1, sizeof *doc);
    p.arena = (char *)DS_MALLOC(len + 1);
    if (!doc || !p.arena) {
        DS_FREE(doc);
        DS_FREE(p.arena);
        DS__OOM(err);
        return NULL;
    }
    root = ds__jvalue(&p, 1);
    if (root) {
        ds__jws(&p);
        if (p.i < p.n) { ds__jfail(&p, DS_ERR_FORMAT, "trailing characters after the value"); root = NULL; }
    }
    if (!root) {
        ds__jblocks_free(p.blocks);
        DS_FREE(p.arena);
        DS_FREE(doc);
        return NULL;
    }
    doc->root = root;
    doc->blocks_ = p.blocks;
    doc->strings_ = p.arena;
    return doc;
}

DSDEF void ds_json_free(ds_json_doc *doc) {
    if (!doc) return;
    ds__jblocks_free((ds__jblock *)doc->blocks_);
    DS_FREE(doc->strings_);
    DS_FREE(doc);
}

DSDEF const ds_json *ds_json_get(const ds_json *obj, const char *key) {
    const ds_json *k;
    size_t kl;
    if (!obj || obj->type != DS_JSON_OBJECT || !key) return NULL;
    kl = strlen(key);
    for (k = obj->child; k; k = k->next)
        if (k->key_len == kl && memcmp(k->key, key, kl) == 0) return k;
    return NULL;
}

DSDEF int ds_json_int(const ds_json *j, int64_t lo, int64_t hi, int64_t *out) {
    double v;
    if (!j || j->type != DS_JSON_NUMBER) return 0;
    v = j->num;
    if (!(v >= (double)lo && v <= (double)hi) || v != floor(v)) return 0;
    if (out) *out = (int64_t)v;
    return 1;
}

DSDEF const char *ds_json_type_name(ds_json_type t) {
    switch (t) {
    case DS_JSON_NULL: return "null";
    case DS_JSON_FALSE: return "false";
    case DS_JSON_TRUE: return "true";
    case DS_JSON_NUMBER: return "a number";
    case DS_JSON_STRING: return "a string";
    case DS_JSON_ARRAY: return "an array";
    case DS_JSON_OBJECT: return "an object";
    }
    return "?";
}

/* JSON writer: one function, since numbers and punctuation are plain ds_buf_printf calls. */
DSDEF void ds_buf_json_string(ds_buf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    ds_buf_append(b, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        uint32_t cp;
        int l;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') { i++; run++; continue; }
        ds_buf_append(b, p + i - run, run); /* flush the plain run */
        run = 0;
        if (c < 0x80) {
            switch (c) {
            case '"': ds_buf_puts(b, "\\\""); break;
            case '\\': ds_buf_puts(b, "\\\\"); break;
            case '\n': ds_buf_puts(b, "\\n"); break;
            case '\r': ds_buf_puts(b, "\\r"); break;
            case '\t': ds_buf_puts(b, "\\t"); break;
            case '\b': ds_buf_puts(b, "\\b"); break;
            case '\f': ds_buf_puts(b, "\\f"); break;
            default: ds_buf_printf(b, "\\u%04x", c); break;
            }
            i++;
            continue;
        }
        l = ds_utf8_decode(p + i, n - i, &cp);
        if (l) { ds_buf_append(b, p + i, (size_t)l); i += (size_t)l; }
        else { ds_buf_append(b, "\xEF\xBF\xBD", 3); i++; } /* U+FFFD for an invalid byte */
    }
    ds_buf_append(b, p + i - run, run);
    ds_buf_append(b, "\"", 1);
}

/* ============================================================================================
   §2.1 Tokenizer: the pre-tokenizer

   DeepSeek's tokenizer.json splits text with five regexes, in order, each applied to the pieces
   the previous ones left ("Isolated": matches and the gaps between them both become pieces),
   then isolates every numeric character, then maps bytes to the GPT-2 byte alphabet:

      1. [\r\n]                  every newline alone
      2. \s?[cased letters]+     a word, with at most one leading whitespace
      3. \s?[punctuation]+       a punctuation run, with at most one leading whitespace
      4. \s+$                    trailing whitespace
      5. [CJK]+                  CJK runs, *without* the leading space (so " 世界" -> " ", "世界")
      6. Digits                  each numeric character alone ("123" -> "1","2","3")

   Instead of a regex engine we scan UTF-8 by hand. Each level finds its matches left to right
   inside one piece, and hands each gap and each match to the next level. Because of level 1 a
   newline always ends a piece, so no scan ever looks across one.
   The code-point classes are generated by tools/gen_unicode.js from the character classes of
   DeepSeek's patterns (letters, punctuation, CJK), Unicode White_Space (`\s` in Oniguruma, the
   engine HF tokenizers uses) and Unicode N (Rust's char::is_numeric, which the Digits step uses).
   ============================================================================================ */

/* ---- BEGIN GENERATED TABLES (tools/gen_unicode.js) ---- */
/* split 2, `\s?[...]+`: the cased letters: 84 ranges */
static const uint32_t ds__letter_ranges[][2] = {
    {0x41,0x5A}, {0x61,0x7A}, {0xB5,0xB5}, {0xC0,0xD6}, {0xD8,0xF6}, {0xF8,0x1BA}, {0x1BC,0x1BF},
    {0x1C4,0x293}, {0x295,0x2AF}, {0x370,0x373}, {0x376,0x377}, {0x37B,0x37D}, {0x37F,0x37F}, {0x386,0x386},
    {0x388,0x38A}, {0x38C,0x38C}, {0x38E,0x3A1}, {0x3A3,0x3F5}, {0x3F7,0x481}, {0x48A,0x52F}, {0x531,0x556},
    {0x10A0,0x10C5}, {0x13A0,0x13F5}, {0x13F8,0x13FD}, {0x1C90,0x1CBA}, {0x1CBD,0x1CBF}, {0x1D00,0x1D2B},
    {0x1D6B,0x1D77}, {0x1D79,0x1D9A}, {0x1E00,0x1F15}, {0x1F18,0x1F1D}, {0x1F20,0x1F45}, {0x1F48,0x1F4D},
    {0x1F50,0x1F57}, {0x1F59,0x1F59}, {0x1F5B,0x1F5B}, {0x1F5D,0x1F5D}, {0x1F5F,0x1F7D}, {0x1F80,0x1FB4},
    {0x1FB6,0x1FBC}, {0x1FBE,0x1FBE}, {0x1FC2,0x1FC4}, {0x1FC6,0x1FCC}, {0x1FD0,0x1FD3}, {0x1FD6,0x1FDB},
    {0x1FE0,0x1FEC}, {0x1FF2,0x1FF4}, {0x1FF6,0x1FFC}, {0x2102,0x2102}, {0x2107,0x2107}, {0x210A,0x2113},
    {0x2115,0x2115}, {0x2119,0x211D}, {0x2124,0x2124}, {0x2126,0x2126}, {0x2128,0x2128}, {0x212A,0x212D},
    {0x212F,0x2134}, {0x2139,0x2139}, {0x213C,0x213F}, {0x2145,0x2149}, {0x214E,0x214E}, {0x2183,0x2184},
    {0x2C00,0x2C7B}, {0x2C7E,0x2CE4}, {0x2CEB,0x2CEE}, {0x2CF2,0x2CF3}, {0xA640,0xA66D}, {0xA680,0xA69B},
    {0xA722,0xA76F}, {0xA771,0xA787}, {0xA78B,0xA78E}, {0xAB70,0xABBF}, {0xFB00,0xFB06}, {0xFB13,0xFB17},
    {0xFF21,0xFF3A}, {0xFF41,0xFF5A}, {0x10400,0x1044F}, {0x104B0,0x104D3}, {0x104D8,0x104FB},
    {0x10C80,0x10CB2}, {0x10CC0,0x10CF2}, {0x118A0,0x118DF}, {0x1E900,0x1E943},
};
/* split 3, `\s?[...]+`: punctuation: 6 ranges */
static const uint32_t ds__punct_ranges[][2] = {
    {0x21,0x2F}, {0x3A,0x7E}, {0x2018,0x201F}, {0x3000,0x3002}, {0xFF01,0xFF0F}, {0xFF1A,0xFF5E},
};
/* split 5, `[...]+`: CJK and the rest of U+0800..U+4E00, Hangul: 2 ranges */
static const uint32_t ds__cjk_ranges[][2] = {
    {0x800,0x9FA5}, {0xAC00,0xD7FF},
};
/* `\s`: Unicode White_Space: 10 ranges */
static const uint32_t ds__space_ranges[][2] = {
    {0x9,0xD}, {0x20,0x20}, {0x85,0x85}, {0xA0,0xA0}, {0x1680,0x1680}, {0x2000,0x200A}, {0x2028,0x2029},
    {0x202F,0x202F}, {0x205F,0x205F}, {0x3000,0x3000},
};
/* Digits: Unicode N (Nd, Nl, No), Unicode of ICU 78.2 / 17.0: 146 ranges */
static const uint32_t ds__numeric_ranges[][2] = {
    {0x30,0x39}, {0xB2,0xB3}, {0xB9,0xB9}, {0xBC,0xBE}, {0x660,0x669}, {0x6F0,0x6F9}, {0x7C0,0x7C9},
    {0x966,0x96F}, {0x9E6,0x9EF}, {0x9F4,0x9F9}, {0xA66,0xA6F}, {0xAE6,0xAEF}, {0xB66,0xB6F}, {0xB72,0xB77},
    {0xBE6,0xBF2}, {0xC66,0xC6F}, {0xC78,0xC7E}, {0xCE6,0xCEF}, {0xD58,0xD5E}, {0xD66,0xD78}, {0xDE6,0xDEF},
    {0xE50,0xE59}, {0xED0,0xED9}, {0xF20,0xF33}, {0x1040,0x1049}, {0x1090,0x1099}, {0x1369,0x137C},
    {0x16EE,0x16F0}, {0x17E0,0x17E9}, {0x17F0,0x17F9}, {0x1810,0x1819}, {0x1946,0x194F}, {0x19D0,0x19DA},
    {0x1A80,0x1A89}, {0x1A90,0x1A99}, {0x1B50,0x1B59}, {0x1BB0,0x1BB9}, {0x1C40,0x1C49}, {0x1C50,0x1C59},
    {0x2070,0x2070}, {0x2074,0x2079}, {0x2080,0x2089}, {0x2150,0x2182}, {0x2185,0x2189}, {0x2460,0x249B},
    {0x24EA,0x24FF}, {0x2776,0x2793}, {0x2CFD,0x2CFD}, {0x3007,0x3007}, {0x3021,0x3029}, {0x3038,0x303A},
    {0x3192,0x3195}, {0x3220,0x3229}, {0x3248,0x324F}, {0x3251,0x325F}, {0x3280,0x3289}, {0x32B1,0x32BF},
    {0xA620,0xA629}, {0xA6E6,0xA6EF}, {0xA830,0xA835}, {0xA8D0,0xA8D9}, {0xA900,0xA909}, {0xA9D0,0xA9D9},
    {0xA9F0,0xA9F9}, {0xAA50,0xAA59}, {0xABF0,0xABF9}, {0xFF10,0xFF19}, {0x10107,0x10133}, {0x10140,0x10178},
    {0x1018A,0x1018B}, {0x102E1,0x102FB}, {0x10320,0x10323}, {0x10341,0x10341}, {0x1034A,0x1034A},
    {0x103D1,0x103D5}, {0x104A0,0x104A9}, {0x10858,0x1085F}, {0x10879,0x1087F}, {0x108A7,0x108AF},
    {0x108FB,0x108FF}, {0x10916,0x1091B}, {0x109BC,0x109BD}, {0x109C0,0x109CF}, {0x109D2,0x109FF},
    {0x10A40,0x10A48}, {0x10A7D,0x10A7E}, {0x10A9D,0x10A9F}, {0x10AEB,0x10AEF}, {0x10B58,0x10B5F},
    {0x10B78,0x10B7F}, {0x10BA9,0x10BAF}, {0x10CFA,0x10CFF}, {0x10D30,0x10D39}, {0x10D40,0x10D49},
    {0x10E60,0x10E7E}, {0x10F1D,0x10F26}, {0x10F51,0x10F54}, {0x10FC5,0x10FCB}, {0x11052,0x1106F},
    {0x110F0,0x110F9}, {0x11136,0x1113F}, {0x111D0,0x111D9}, {0x111E1,0x111F4}, {0x112F0,0x112F9},
    {0x11450,0x11459}, {0x114D0,0x114D9}, {0x11650,0x11659}, {0x116C0,0x116C9}, {0x116D0,0x116E3},
    {0x11730,0x1173B}, {0x118E0,0x118F2}, {0x11950,0x11959}, {0x11BF0,0x11BF9}, {0x11C50,0x11C6C},
    {0x11D50,0x11D59}, {0x11DA0,0x11DA9}, {0x11DE0,0x11DE9}, {0x11F50,0x11F59}, {0x11FC0,0x11FD4},
    {0x12400,0x1246E}, {0x16130,0x16139}, {0x16A60,0x16A69}, {0x16AC0,0x16AC9}, {0x16B50,0x16B59},
    {0x16B5B,0x16B61}, {0x16D70,0x16D79}, {0x16E80,0x16E96}, {0x16FF4,0x16FF6}, {0x1CCF0,0x1CCF9},
    {0x1D2C0,0x1D2D3}, {0x1D2E0,0x1D2F3}, {0x1D360,0x1D378}, {0x1D7CE,0x1D7FF}, {0x1E140,0x1E149},
    {0x1E2F0,0x1E2F9}, {0x1E4F0,0x1E4F9}, {0x1E5F1,0x1E5FA}, {0x1E8C7,0x1E8CF}, {0x1E950,0x1E959},
    {0x1EC71,0x1ECAB}, {0x1ECAD,0x1ECAF}, {0x1ECB1,0x1ECB4}, {0x1ED01,0x1ED2D}, {0x1ED2F,0x1ED3D},
    {0x1F100,0x1F10C}, {0x1FBF0,0x1FBF9},
};
/* ---- END GENERATED TABLES ---- */

enum { DS__LETTER = 1, DS__PUNCT = 2, DS__SPACE = 4, DS__CJK = 8, DS__NUM = 16, DS__NL = 32 };

/* The classes of the 128 ASCII code points (bits above). Note that split 3's class [!-/:-~]
   contains the ASCII letters too; it only ever sees them inside pieces split 2 already made. */
static const unsigned char ds__ascii_class[128] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  4, 36,  4,  4, 36,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     4,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16,  2,  2,  2,  2,  2,  2,
     2,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,
     3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  2,  2,  2,  2,  2,
     2,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,
     3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  2,  2,  2,  2,  0,
};

static int ds__in_ranges(uint32_t cp, const uint32_t (*r)[2], size_t n) {
    size_t lo = 0, hi = n;
    while (lo < hi) { /* the first range whose end is >= cp */
        size_t mid = (lo + hi) / 2;
        if (r[mid][1] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && r[lo][0] <= cp;
}
#define DS__NRANGES(r) (sizeof(r) / sizeof((r)[0]))

static unsigned ds__cp_class(uint32_t cp) {
    unsigned c = 0;
    if (cp < 128) return ds__ascii_class[cp];
    if (ds__in_ranges(cp, ds__letter_ranges, DS__NRANGES(ds__letter_ranges))) c |= DS__LETTER;
    if (ds__in_ranges(cp, ds__punct_ranges, DS__NRANGES(ds__punct_ranges))) c |= DS__PUNCT;
    if (ds__in_ranges(cp, ds__space_ranges, DS__NRANGES(ds__space_ranges))) c |= DS__SPACE;
    if (ds__in_ranges(cp, ds__cjk_ranges, DS__NRANGES(ds__cjk_ranges))) c |= DS__CJK;
    if (ds__in_ranges(cp, ds__numeric_ranges, DS__NRANGES(ds__numeric_ranges))) c |= DS__NUM;
    return c;
}

/* One character at s[i] (i < end): returns its byte length and sets *cls. An invalid UTF-8 byte
   is a one-byte character of no class. */
static size_t ds__char_at(const unsigned char *s, size_t i, size_t end, unsigned *cls) {
    uint32_t cp;
    int l;
    if (s[i] < 0x80) { *cls = ds__ascii_class[s[i]]; return 1; }
    l = ds_utf8_decode(s + i, end - i, &cp);
    if (!l) { *cls = 0; return 1; }
    *cls = ds__cp_class(cp);
    return (size_t)l;
}

typedef void (*ds__piece_fn)(void *ctx, size_t start, size_t len);
typedef struct ds__pt {
    const unsigned char *s;
    ds__piece_fn fn;
    void *ctx;
} ds__pt;

/* Level 6: Digits(individual_digits=true): every numeric character is its own piece. */
static void ds__split_digits(const ds__pt *pt, size_t a, size_t b) {
    size_t i = a, gap = a;
    while (i < b) {
        unsigned cls;
        size_t l = ds__char_at(pt->s, i, b, &cls);
        if (cls & DS__NUM) {
            if (gap < i) pt->fn(pt->ctx, gap, i - gap);
            pt->fn(pt->ctx, i, l);
            gap = i + l;
        }
        i += l;
    }
    if (gap < b) pt->fn(pt->ctx, gap, b - gap);
}

static void ds__split_level(const ds__pt *pt, size_t a, size_t b, int level);

/* Levels 2, 3 and 5: `\s?[C]+` (space_prefix = 1) or `[C]+`, with the regex's semantics,
   leftmost match first: a match starts at i when the character there is in C, or when it is
   whitespace and the next one is in C; it then runs while characters are in C. */
static void ds__split_run(const ds__pt *pt, size_t a, size_t b, int level, unsigned cset, int space_prefix) {
    size_t i = a, gap = a;
    while (i < b) {
        unsigned cls, ncls = 0;
        size_t l = ds__char_at(pt->s, i, b, &cls), j;
        if (!(cls & cset)) {
            if (!(space_prefix && (cls & DS__SPACE) && i + l < b)) { i += l; continue; }
            ds__char_at(pt->s, i + l, b, &ncls);
            if (!(ncls & cset)) { i += l; continue; }
        }
        j = i + l; /* the match is [i, j): extend it over the run */
        while (j < b) {
            size_t m = ds__char_at(pt->s, j, b, &ncls);
            if (!(ncls & cset)) break;
            j += m;
        }
        if (gap < i) ds__split_level(pt, gap, i, level + 1);
        ds__split_level(pt, i, j, level + 1);
        gap = i = j;
    }
    if (gap < b) ds__split_level(pt, gap, b, level + 1);
}

/* Level 4: `\s+$`, the whitespace run that ends the piece, if any. */
static void ds__split_trailing_space(const ds__pt *pt, size_t a, size_t b) {
    size_t i = a, run = b; /* run: start of the current whitespace run, b if none */
    while (i < b) {
        unsigned cls;
        size_t l = ds__char_at(pt->s, i, b, &cls);
        if (cls & DS__SPACE) { if (run == b) run = i; }
        else run = b;
        i += l;
    }
    if (run < b && run > a) ds__split_level(pt, a, run, 5);
    ds__split_level(pt, run < b ? run : a, b, 5);
}

static void ds__split_level(const ds__pt *pt, size_t a, size_t b, int level) {
    switch (level) {
    case 2: ds__split_run(pt, a, b, 2, DS__LETTER, 1); break;
    case 3: ds__split_run(pt, a, b, 3, DS__PUNCT, 1); break;
    case 4: ds__split_trailing_space(pt, a, b); break;
    case 5: ds__split_run(pt, a, b, 5, DS__CJK, 0); break;
    default: ds__split_digits(pt, a, b); break;
    }
}

/* Level 1: `[\r\n]`. Newlines are ASCII, so this level is a byte scan; a newline piece passes
   through every later level unchanged, so it is emitted directly. */
static void ds__pretokenize(const unsigned char *s, size_t len, ds__piece_fn fn, void *ctx) {
    ds__pt pt;
    size_t i, gap = 0;
    pt.s = s;
    pt.fn = fn;
    pt.ctx = ctx;
    for (i = 0; i < len; i++) {
        if (s[i] != '\n' && s[i] != '\r') continue;
        if (gap < i) ds__split_level(&pt, gap, i, 2);
        fn(ctx, i, 1);
        gap = i + 1;
    }
    if (gap < len) ds__split_level(&pt, gap, len, 2);
}

typedef struct ds__span_sink { ds_span *out; size_t cap, n; } ds__span_sink;
static void ds__span_piece(void *ctx, size_t start, size_t len) {
    ds__span_sink *k = (ds__span_sink *)ctx;
    if (k->n < k->cap) { k->out[k->n].start = start; k->out[k->n].len = len; }
    k->n++;
}
DSDEF size_t ds_pretokenize(const char *text, size_t len, ds_span *out, size_t cap) {
    ds__span_sink k;
    k.out = out;
    k.cap = out ? cap : 0;
    k.n = 0;
    if (!text) return 0;
    ds__pretokenize((const unsigned char *)text, len, ds__span_piece, &k);
    return k.n;
}

/* ============================================================================================
   §2.1 Tokenizer: the byte-level alphabet
   GPT-2's byte-to-unicode map, in which tokenizer.json spells tokens: the 188 printable bytes
   stand for themselves; the other 68 (controls, space, 0x7F-0xA0, 0xAD) become U+0100.. in byte
   order. So ' ' is 'Ġ' (U+0120) and '\n' is 'Ċ' (U+010A).
   ============================================================================================ */

static int ds__byte_printable(unsigned b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }
static uint32_t ds__byte_to_cp(unsigned b) {
    if (ds__byte_printable(b)) return b;
    if (b <= 32) return 256 + b;               /* 0x00..0x20 -> U+0100..U+0120 */
    if (b <= 160) return 256 + 33 + (b - 127); /* 0x7F..0xA0 -> U+0121..U+0142 */
    return 256 + 67;                           /* 0xAD       -> U+0143 */
}
static int ds__cp_to_byte(uint32_t cp) { /* -1 when cp is not in the alphabet */
    if (cp < 256) return ds__byte_printable(cp) ? (int)cp : -1;
    if (cp <= 256 + 32) return (int)(cp - 256);
    if (cp <= 256 + 66) return (int)(cp - 256 - 33 + 127);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}
static void ds__bytes_to_tokstr(ds_buf *o, const unsigned char *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char u[4];
        ds_buf_append(o, u, ds__utf8_encode(ds__byte_to_cp(p[i]), u));
    }
}
/* tokenizer.json string -> bytes, as HF's ByteLevel decoder does it: when any character is
   outside the alphabet (BOS, EOS), the token decodes to its own UTF-8. */
static void ds__tokstr_to_bytes(ds_buf *o, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, start = o->len;
    while (i < n) {
        uint32_t cp;
        int l = ds_utf8_decode(p + i, n - i, &cp), b;
        b = l ? ds__cp_to_byte(cp) : -1;
        if (b < 0) { /* not byte-level: the literal text */
            o->len = start;
            ds_buf_append(o, s, n);
            return;
        }
        {
            unsigned char c = (unsigned char)b;
            ds_buf_append(o, &c, 1);
        }
        i += (size_t)l;
    }
}

/* ============================================================================================
   §2.1 Tokenizer: the object
   Per id: its tokenizer.json string, the bytes it decodes to, and flags. Merges live in an
   open-addressing table keyed by (left id, right id) -> rank, and in a list by rank of (left,
   right, new id). Token strings are found through a second table (string -> id).
   ============================================================================================ */

enum { DS__TOK_INVOCAB = 1, DS__TOK_ADDED = 2, DS__TOK_SPECIAL = 4, DS__TOK_NORMALIZED = 8 };

typedef struct ds__centry { /* one memoized word of the encoder */
    uint64_t hash;          /* 0: an empty slot */
    uint32_t key_off, key_len, val_off, val_len;
} ds__centry;

struct ds_tokenizer {
    int32_t n_vocab, n_merges;
    ds_buf str;                /* all token strings, each NUL-terminated */
    ds_buf dec;                /* all decoded bytes */
    size_t *str_off, *dec_off; /* n_vocab + 1 offsets each */
    unsigned char *flags;      /* DS__TOK_* per id */
    int32_t byte_id[256];      /* the initial BPE symbol of each byte; -1 when the vocab lacks it */
    int32_t *merges;           /* (left, right, new) per rank */
    uint64_t *mt_key;          /* merge table: key (left << 32 | right), ~0 = empty */
    int32_t *mt_rank;
    size_t mt_cap;
    int32_t *st;               /* string table: id or -1 */
    size_t st_cap;
    int32_t *added;            /* ids of the added tokens, longest content first */
    int n_added;
    unsigned char added_first[256]; /* 1 when some added token starts with this byte */
    int32_t bos, eos;
    /* encoder scratch and memo (allocated on first use) */
    int32_t *sym, *rank, *hp;
    size_t sym_cap, hp_cap;
    ds__centry *cache;
    size_t cache_cap, cache_n;
    ds_buf cache_keys;
    int32_t *cache_vals;
    size_t cache_vals_len, cache_vals_cap;
    int bpe_small_max;         /* pieces of up to this many symbols use the quadratic loop */
};

static int32_t ds__tok_len(const ds_tokenizer *t, int32_t id) { return (int32_t)(t->str_off[id + 1] - t->str_off[id] - 1); }
static const char *ds__tok_str(const ds_tokenizer *t, int32_t id) { return t->str.data + t->str_off[id]; }

DSDEF void ds_tokenizer_free(ds_tokenizer *t) {
    if (!t) return;
    ds_buf_free(&t->str);
    ds_buf_free(&t->dec);
    DS_FREE(t->str_off);
    DS_FREE(t->dec_off);
    DS_FREE(t->flags);
    DS_FREE(t->merges);
    DS_FREE(t->mt_key);
    DS_FREE(t->mt_rank);
    DS_FREE(t->st);
    DS_FREE(t->added);
    DS_FREE(t->sym);
    DS_FREE(t->rank);
    DS_FREE(t->hp);
    DS_FREE(t->cache);
    ds_buf_free(&t->cache_keys);
    DS_FREE(t->cache_vals);
    DS_FREE(t);
}

static ds_tokenizer *ds__tok_alloc(int32_t n_vocab, int32_t n_merges) {
    ds_tokenizer *t = (ds_tokenizer *)ds__calloc(1, sizeof *t);
    if (!t) return NULL;
    t->n_vocab = n_vocab;
    t->n_merges = n_merges;
    t->bos = t->eos = -1;
    t->bpe_small_max = 48;
    t->str_off = (size_t *)ds__calloc((size_t)n_vocab + 1, sizeof(size_t));
    t->dec_off = (size_t *)ds__calloc((size_t)n_vocab + 1, sizeof(size_t));
    t->flags = (unsigned char *)ds__calloc((size_t)n_vocab + 1, 1);
    t->merges = (int32_t *)ds__calloc((size_t)n_merges * 3 + 1, sizeof(int32_t));
    for (t->mt_cap = 64; t->mt_cap < (size_t)n_merges * 2; t->mt_cap *= 2) {}
    for (t->st_cap = 64; t->st_cap < (size_t)n_vocab * 2; t->st_cap *= 2) {}
    t->mt_key = (uint64_t *)DS_MALLOC(t->mt_cap * sizeof(uint64_t));
    t->mt_rank = (int32_t *)DS_MALLOC(t->mt_cap * sizeof(int32_t));
    t->st = (int32_t *)DS_MALLOC(t->st_cap * sizeof(int32_t));
    if (!t->str_off || !t->dec_off || !t->flags || !t->merges || !t->mt_key || !t->mt_rank || !t->st) {
        ds_tokenizer_free(t);
        return NULL;
    }
    memset(t->mt_key, 0xFF, t->mt_cap * sizeof(uint64_t));
    memset(t->st, 0xFF, t->st_cap * sizeof(int32_t));
    return t;
}

/* Merge table: the slot of (l, r), or the empty slot where it would go. */
static size_t ds__mt_slot(const ds_tokenizer *t, int32_t l, int32_t r) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t mask = t->mt_cap - 1, i = (size_t)ds__hash64(key) & mask;
    while (t->mt_key[i] != ~(uint64_t)0 && t->mt_key[i] != key) i = (i + 1) & mask;
    return i;
}
static int32_t ds__merge_rank(const ds_tokenizer *t, int32_t l, int32_t r) {
    size_t i = ds__mt_slot(t, l, r);
    return t->mt_key[i] == ~(uint64_t)0 ? INT32_MAX : t->mt_rank[i];
}

/* String table: the slot holding token string s, or the empty slot for it. */
static size_t ds__st_slot(const ds_tokenizer *t, const char *s, size_t n) {
    size_t mask = t->st_cap - 1, i = (size_t)ds__hash((const unsigned char *)s, n) & mask;
    while (t->st[i] >= 0) {
        int32_t id = t->st[i];
        if ((size_t)ds__tok_len(t, id) == n && memcmp(ds__tok_str(t, id), s, n) == 0) break;
        i = (i + 1) & mask;
    }
    return i;
}

DSDEF int32_t ds_tokenizer_token_id(const ds_tokenizer *t, const char *s) {
    if (!t || !s) return -1;
    return t->st[ds__st_slot(t, s, strlen(s))];
}

/* Called once every id has its string, decoded bytes and flags: indexes the strings, finds the
   byte symbols, BOS/EOS and the added tokens. */
static int ds__tok_finish(ds_tokenizer *t, ds_error *err) {
    int32_t id;
    int b, k;
    if (t->str.oom || t->dec.oom) return DS__OOM(err);
    for (id = 0; id < t->n_vocab; id++) {
        size_t slot = ds__st_slot(t, ds__tok_str(t, id), (size_t)ds__tok_len(t, id));
        if (t->st[slot] >= 0)
            return ds__fail(err, DS_ERR_FORMAT, "tokens %d and %d are the same string \"%.64s\"", (int)t->st[slot], (int)id,
                            ds__tok_str(t, id));
        t->st[slot] = id;
        if (t->flags[id] & DS__TOK_ADDED) t->n_added++;
    }
    for (b = 0; b < 256; b++) {
        unsigned char u[4];
        size_t n = ds__utf8_encode(ds__byte_to_cp((unsigned)b), u);
        t->byte_id[b] = t->st[ds__st_slot(t, (const char *)u, n)];
    }
    t->bos = ds_tokenizer_token_id(t, DS_BOS_STRING);
    t->eos = ds_tokenizer_token_id(t, DS_EOS_STRING);
    t->added = (int32_t *)ds__calloc((size_t)t->n_added + 1, sizeof(int32_t));
    if (!t->added) return DS__OOM(err);
    k = 0;
    for (id = 0; id < t->n_vocab; id++) {
        int j;
        if (!(t->flags[id] & DS__TOK_ADDED)) continue;
        if (ds__tok_len(t, id) == 0) return ds__fail(err, DS_ERR_FORMAT, "added token %d is empty", (int)id);
        for (j = k++; j > 0 && ds__tok_len(t, t->added[j - 1]) < ds__tok_len(t, id); j--) t->added[j] = t->added[j - 1];
        t->added[j] = id; /* insertion sort: longest first, then the lower id */
        t->added_first[(unsigned char)ds__tok_str(t, id)[0]] = 1;
    }
    return DS_OK;
}

static int ds__tok_add_merge(ds_tokenizer *t, int32_t rank, int32_t l, int32_t r, int32_t nw, ds_error *err) {
    size_t slot = ds__mt_slot(t, l, r);
    if (t->mt_key[slot] != ~(uint64_t)0)
        return ds__fail(err, DS_ERR_FORMAT, "merge %d repeats merge %d (\"%.40s\" + \"%.40s\")", (int)rank, (int)t->mt_rank[slot],
                        ds__tok_str(t, l), ds__tok_str(t, r));
    t->mt_key[slot] = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    t->mt_rank[slot] = rank;
    t->merges[3 * rank] = l;
    t->merges[3 * rank + 1] = r;
    t->merges[3 * rank + 2] = nw;
    return DS_OK;
}

/* Sets token `id` (ids are pushed in order): its string, decoded bytes and flags. */
static void ds__tok_push(ds_tokenizer *t, int32_t id, const char *str, size_t n, unsigned flags) {
    t->str_off[id] = t->str.len;
    ds_buf_append(&t->str, str, n);
    ds_buf_append(&t->str, "", 1);
    t->dec_off[id] = t->dec.len;
    ds__tokstr_to_bytes(&t->dec, str, n);
    t->flags[id] = (unsigned char)flags;
    t->str_off[id + 1] = t->str.len;
    t->dec_off[id + 1] = t->dec.len;
}

/* The vocabulary a merge list grows, built one merge at a time (the trainer and
   ds_tokenizer_from_merges share it): ids 0..255 are the bytes; merge (a, b) names the bytes
   a+b, which get the next id -- or the id they already have, when an earlier merge reached the
   same string along another path (HF's trainer does the same). */
typedef struct ds__vocab {
    ds_buf bytes;    /* every token's bytes, back to back */
    size_t *off;     /* token i is bytes[off[i], off[i+1]) */
    size_t off_cap;
    int32_t n;
    int32_t *tab;    /* open addressing: bytes -> id */
    size_t tab_cap;
} ds__vocab;

static void ds__vocab_free(ds__vocab *v) {
    ds_buf_free(&v->bytes);
    DS_FREE(v->off);
    DS_FREE(v->tab);
}
static size_t ds__vocab_slot(const ds__vocab *v, const char *p, size_t n) {
    size_t mask = v->tab_cap - 1, i = (size_t)ds__hash((const unsigned char *)p, n) & mask;
    while (v->tab[i] >= 0) {
        int32_t id = v->tab[i];
        if (v->off[id + 1] - v->off[id] == n && memcmp(v->bytes.data + v->off[id], p, n) == 0) break;
        i = (i + 1) & mask;
    }
    return i;
}
/* Interns the token bytes[start..len) (just appended): returns its id, new or existing. */
static int32_t ds__vocab_intern(ds__vocab *v, size_t start) {
    size_t n = v->bytes.len - start, slot;
    if ((size_t)v->n * 2 + 2 > v->tab_cap) { /* grow and rehash */
        size_t cap = v->tab_cap ? v->tab_cap * 2 : 1024, i;
        int32_t *old = v->tab, id;
        v->tab = (int32_t *)DS_MALLOC(cap * sizeof(int32_t));
        if (!v->tab) { v->tab = old; return -1; }
        memset(v->tab, 0xFF, cap * sizeof(int32_t));
        v->tab_cap = cap;
        DS_FREE(old);
        for (id = 0; id < v->n; id++) {
            i = ds__vocab_slot(v, v->bytes.data + v->off[id], v->off[id + 1] - v->off[id]);
            v->tab[i] = id;
        }
    }
    slot = ds__vocab_slot(v, v->bytes.data + start, n);
    if (v->tab[slot] >= 0) { v->bytes.len = start; return v->tab[slot]; }
    if (!ds__grow((void **)&v->off, &v->off_cap, (size_t)v->n + 2, sizeof(size_t))) return -1;
    v->tab[slot] = v->n;
    v->off[v->n] = start;
    v->off[++v->n] = v->bytes.len;
    return v->n - 1;
}
static int ds__vocab_init(ds__vocab *v) {
    int b;
    memset(v, 0, sizeof *v);
    for (b = 0; b < 256; b++) {
        size_t start = v->bytes.len;
        unsigned char c = (unsigned char)b;
        ds_buf_append(&v->bytes, &c, 1);
        if (v->bytes.oom || ds__vocab_intern(v, start) != b) return 0;
    }
    return 1;
}
/* The id merge (a, b) produces; -1 when out of memory. */
static int32_t ds__vocab_merge(ds__vocab *v, int32_t a, int32_t b) {
    size_t start = v->bytes.len;
    ds_buf_append(&v->bytes, v->bytes.data + v->off[a], v->off[a + 1] - v->off[a]);
    ds_buf_append(&v->bytes, v->bytes.data + v->off[b], v->off[b + 1] - v->off[b]);
    return v->bytes.oom ? -1 : ds__vocab_intern(v, start);
}

/* Builds a tokenizer from a merge list (see the declaration). */
DSDEF ds_tokenizer *ds_tokenizer_from_merges(const int32_t *merges, int n_merges, ds_error *err) {
    ds__vocab v;
    ds_buf s = {0, 0, 0, 0};
    int32_t *nw = NULL, id;
    ds_tokenizer *t = NULL;
    int r;
    memset(&v, 0, sizeof v);
    if (n_merges < 0 || (n_merges && !merges)) { ds__fail(err, DS_ERR_INVALID, "ds_tokenizer_from_merges: bad merge list"); return NULL; }
    nw = (int32_t *)ds__calloc((size_t)n_merges + 1, sizeof(int32_t));
    if (!nw || !ds__vocab_init(&v)) { DS__OOM(err); goto done; }
    for (r = 0; r < n_merges; r++) {
        int32_t a = merges[2 * r], b = merges[2 * r + 1];
        if (a < 0 || b < 0 || a >= v.n || b >= v.n) {
            ds__fail(err, DS_ERR_INVALID, "merge %d joins ids %d and %d, but only %d exist", r, (int)a, (int)b, (int)v.n);
            goto done;
        }
        if ((nw[r] = ds__vocab_merge(&v, a, b)) < 0) { DS__OOM(err); goto done; }
    }
    t = ds__tok_alloc(v.n + 2, n_merges);
    if (!t) { DS__OOM(err); goto done; }
    for (id = 0; id < v.n; id++) {
        s.len = 0;
        ds__bytes_to_tokstr(&s, (const unsigned char *)v.bytes.data + v.off[id], v.off[id + 1] - v.off[id]);
        if (s.oom) break;
        ds__tok_push(t, id, s.data, s.len, DS__TOK_INVOCAB);
    }
    ds__tok_push(t, v.n, DS_BOS_STRING, strlen(DS_BOS_STRING), DS__TOK_ADDED | DS__TOK_SPECIAL);
    ds__tok_push(t, v.n + 1, DS_EOS_STRING, strlen(DS_EOS_STRING), DS__TOK_ADDED | DS__TOK_SPECIAL);
    if (s.oom) { DS__OOM(err); ds_tokenizer_free(t); t = NULL; goto done; }
    for (r = 0; r < n_merges; r++)
        if (ds__tok_add_merge(t, r, merges[2 * r], merges[2 * r + 1], nw[r], err)) break;
    if (r < n_merges || ds__tok_finish(t, err)) { ds_tokenizer_free(t); t = NULL; }
done:
    DS_FREE(nw);
    ds__vocab_free(&v);
    ds_buf_free(&s);
    return t;
}

/* ============================================================================================
   §2.1 Tokenizer: BPE on one piece
   Start from the piece's bytes; repeatedly apply the lowest-rank merge among adjacent pairs,
   leftmost first, until none applies. This is HF's BPE (whose priority queue orders by rank,
   then position). Short pieces use a direct loop over a rank array; long ones (a CJK line
   without punctuation can be thousands of bytes) use a linked list and a binary heap, so the
   cost stays O(n log n). Tests check that the two agree.
   ============================================================================================ */

static int ds__tok_scratch(ds_tokenizer *t, size_t n) {
    if (n <= t->sym_cap) return 1;
    DS_FREE(t->sym);
    DS_FREE(t->rank);
    t->sym_cap = n < 256 ? 256 : n;
    t->sym = (int32_t *)DS_MALLOC(t->sym_cap * 4 * sizeof(int32_t)); /* sym, prev, next, alive */
    t->rank = (int32_t *)DS_MALLOC(t->sym_cap * sizeof(int32_t));
    if (!t->sym || !t->rank) { t->sym_cap = 0; return 0; }
    return 1;
}

/* heap entries are (rank, position) packed as rank << 32 | position: smaller pops first */
static void ds__heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = v;
}
static uint64_t ds__heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* BPE on bytes p[0..n): leaves the ids in t->sym[0..k) and returns k, or -1 when out of memory. */
static long ds__bpe(ds_tokenizer *t, const unsigned char *p, size_t n) {
    int32_t *sym, *rk;
    size_t m = 0, i;
    if (!ds__tok_scratch(t, n)) return -1;
    sym = t->sym;
    rk = t->rank;
    for (i = 0; i < n; i++) /* bytes the vocabulary lacks are dropped, as HF does */
        if (t->byte_id[p[i]] >= 0) sym[m++] = t->byte_id[p[i]];
    if (m <= (size_t)t->bpe_small_max) {
        for (i = 0; i + 1 < m; i++) rk[i] = ds__merge_rank(t, sym[i], sym[i + 1]);
        while (m > 1) {
            size_t best = 0;
            int32_t r = INT32_MAX;
            for (i = 0; i + 1 < m; i++)
                if (rk[i] < r) { r = rk[i]; best = i; }
            if (r == INT32_MAX) break;
            sym[best] = t->merges[3 * r + 2];
            memmove(sym + best + 1, sym + best + 2, (m - best - 2) * sizeof(int32_t));
            if (best + 3 <= m) memmove(rk + best + 1, rk + best + 2, (m - best - 3) * sizeof(int32_t));
            m--;
            if (best > 0) rk[best - 1] = ds__merge_rank(t, sym[best - 1], sym[best]);
            if (best + 1 < m) rk[best] = ds__merge_rank(t, sym[best], sym[best + 1]);
        }
        return (long)m;
    } else {
        int32_t *prv = sym + t->sym_cap, *nxt = prv + t->sym_cap, *alive = nxt + t->sym_cap;
        uint64_t *heap;
        size_t hn = 0, k = 0;
        DS_ASSERT(m <= t->sym_cap);
        if (!ds__grow((void **)&t->hp, &t->hp_cap, m * 3 * 2, sizeof(int32_t))) return -1; /* <= 3m pushes */
        heap = (uint64_t *)(void *)t->hp;
        for (i = 0; i < m; i++) {
            prv[i] = (int32_t)i - 1;
            nxt[i] = i + 1 < m ? (int32_t)i + 1 : -1;
            alive[i] = 1;
        }
        for (i = 0; i + 1 < m; i++) {
            int32_t r = ds__merge_rank(t, sym[i], sym[i + 1]);
            if (r != INT32_MAX) ds__heap_push(heap, &hn, ((uint64_t)(uint32_t)r << 32) | i);
        }
        while (hn) {
            uint64_t top = ds__heap_pop(heap, &hn);
            int32_t r = (int32_t)(top >> 32), pos = (int32_t)(uint32_t)top, q;
            if (!alive[pos] || nxt[pos] < 0) continue;
            q = nxt[pos];
            if (ds__merge_rank(t, sym[pos], sym[q]) != r) continue; /* stale: the pair changed */
            sym[pos] = t->merges[3 * r + 2];
            alive[q] = 0;
            nxt[pos] = nxt[q];
            if (nxt[q] >= 0) prv[nxt[q]] = pos;
            if (prv[pos] >= 0) {
                int32_t r2 = ds__merge_rank(t, sym[prv[pos]], sym[pos]);
                if (r2 != INT32_MAX) ds__heap_push(heap, &hn, ((uint64_t)(uint32_t)r2 << 32) | (uint32_t)prv[pos]);
            }
            if (nxt[pos] >= 0) {
                int32_t r2 = ds__merge_rank(t, sym[pos], sym[nxt[pos]]);
                if (r2 != INT32_MAX) ds__heap_push(heap, &hn, ((uint64_t)(uint32_t)r2 << 32) | (uint32_t)pos);
            }
        }
        for (i = 0; i < m; i = nxt[i] < 0 ? m : (size_t)nxt[i]) sym[k++] = sym[i]; /* k <= i */
        return (long)k;
    }
}

/* ============================================================================================
   §2.1 Tokenizer: encode and decode
   Encoding = added tokens matched in the raw text (leftmost, longest first), then, for each
   stretch between them, pre-tokenize and BPE each piece. Words repeat a lot in text, so each
   piece's ids are memoized (a bounded table, cleared when full; results never depend on it).
   ============================================================================================ */

typedef struct ds__enc {
    ds_tokenizer *t;
    const unsigned char *s;
    int32_t *ids;
    size_t cap, n;
    int rc;
    ds_error *err;
} ds__enc;

static void ds__enc_push(ds__enc *e, const int32_t *v, size_t k) {
    if (e->rc) return;
    if (k > e->cap - e->n) {
        e->rc = ds__fail(e->err, DS_ERR_RANGE, "encode: the output holds %zu ids, more are needed (pass cap >= len + 2)", e->cap);
        return;
    }
    memcpy(e->ids + e->n, v, k * sizeof(int32_t));
    e->n += k;
}

static int ds__cache_init(ds_tokenizer *t) {
    size_t cap = 64;
    while (cap < (size_t)DS_BPE_CACHE_WORDS * 2) cap *= 2;
    t->cache = (ds__centry *)ds__calloc(cap, sizeof(ds__centry));
    if (!t->cache) return 0;
    t->cache_cap = cap;
    return 1;
}

#define DS__CACHE_MAX_PIECE 64 /* longer pieces are rare and not worth memoizing */
static void ds__enc_piece(void *ctx, size_t start, size_t len) {
    ds__enc *e = (ds__enc *)ctx;
    ds_tokenizer *t = e->t;
    const unsigned char *p = e->s + start;
    uint64_t h = 0;
    size_t slot = 0, mask = t->cache_cap - 1;
    long k;
    if (e->rc) return;
    if (len == 1) { /* a single byte is its own symbol */
        if (t->byte_id[p[0]] >= 0) ds__enc_push(e, &t->byte_id[p[0]], 1);
        return;
    }
    if (len <= DS__CACHE_MAX_PIECE) {
        h = ds__hash(p, len) | 1;
        for (slot = (size_t)h & mask; t->cache[slot].hash; slot = (slot + 1) & mask) {
            const ds__centry *c = &t->cache[slot];
            if (c->hash == h && c->key_len == len && memcmp(t->cache_keys.data + c->key_off, p, len) == 0) {
                ds__enc_push(e, t->cache_vals + c->val_off, c->val_len);
                return;
            }
        }
    }
    k = ds__bpe(t, p, len);
    if (k < 0) { e->rc = DS__OOM(e->err); return; }
    ds__enc_push(e, t->sym, (size_t)k);
    if (len > DS__CACHE_MAX_PIECE) return;
    if (t->cache_n >= DS_BPE_CACHE_WORDS || t->cache_keys.oom ||
        !ds__grow((void **)&t->cache_vals, &t->cache_vals_cap, t->cache_vals_len + (size_t)k, sizeof(int32_t))) {
        /* full, or out of memory: forget everything and start over (it is only a memo) */
        memset(t->cache, 0, t->cache_cap * sizeof(ds__centry));
        t->cache_n = 0;
        t->cache_keys.len = 0;
        t->cache_keys.oom = 0;
        t->cache_vals_len = 0;
        if (t->cache_vals_cap < (size_t)k) return;
        for (slot = (size_t)h & mask; t->cache[slot].hash; slot = (slot + 1) & mask) {}
    }
    ds_buf_append(&t->cache_keys, p, len);
    if (t->cache_keys.oom) return; /* the next call starts over */
    memcpy(t->cache_vals + t->cache_vals_len, t->sym, (size_t)k * sizeof(int32_t));
    t->cache[slot].hash = h;
    t->cache[slot].key_off = (uint32_t)(t->cache_keys.len - len);
    t->cache[slot].key_len = (uint32_t)len;
    t->cache[slot].val_off = (uint32_t)t->cache_vals_len;
    t->cache[slot].val_len = (uint32_t)k;
    t->cache_vals_len += (size_t)k;
    t->cache_n++;
}

/* The next added token at or after i: returns its position (len if none), its id and length. */
static size_t ds__find_added(const ds_tokenizer *t, const unsigned char *s, size_t i, size_t len, int allow_special,
                             int32_t *id, size_t *mlen) {
    for (; i < len; i++) {
        int k;
        if (!t->added_first[s[i]]) continue;
        for (k = 0; k < t->n_added; k++) { /* sorted longest first: the first hit is the longest */
            int32_t a = t->added[k];
            size_t l = (size_t)ds__tok_len(t, a);
            if ((t->flags[a] & DS__TOK_SPECIAL) && !allow_special) continue;
            if (l <= len - i && memcmp(s + i, ds__tok_str(t, a), l) == 0) {
                *id = a;
                *mlen = l;
                return i;
            }
        }
    }
    return len;
}

DSDEF int ds_tokenizer_encode(ds_tokenizer *t, const char *text, size_t len, int flags, int32_t *ids, size_t cap,
                              size_t *n_ids, ds_error *err) {
    const unsigned char *s = (const unsigned char *)text;
    ds__enc e;
    size_t pos = 0;
    if (!t || (!text && len) || (!ids && cap) || !n_ids) return ds__fail(err, DS_ERR_INVALID, "ds_tokenizer_encode: NULL argument");
    *n_ids = 0;
    if (!t->cache && !ds__cache_init(t)) return DS__OOM(err);
    e.t = t;
    e.ids = ids;
    e.cap = cap;
    e.n = 0;
    e.rc = DS_OK;
    e.err = err;
    if ((flags & (DS_ENCODE_BOS | DS_ENCODE_EOS)) && (t->bos < 0 || t->eos < 0))
        return ds__fail(err, DS_ERR_INVALID, "encode: this tokenizer has no BOS/EOS token");
    if (flags & DS_ENCODE_BOS) ds__enc_push(&e, &t->bos, 1);
    while (pos < len && !e.rc) {
        int32_t id = -1;
        size_t mlen = 0, at = t->n_added ? ds__find_added(t, s, pos, len, flags & DS_ENCODE_ALLOW_SPECIAL, &id, &mlen) : len;
        if (at > pos) {
            e.s = s + pos;
            ds__pretokenize(s + pos, at - pos, ds__enc_piece, &e);
        }
        if (at < len) ds__enc_push(&e, &id, 1);
        pos = at + mlen;
    }
    if (flags & DS_ENCODE_EOS) ds__enc_push(&e, &t->eos, 1);
    if (e.rc) return e.rc;
    *n_ids = e.n;
    return DS_OK;
}

DSDEF int ds_tokenizer_decode(const ds_tokenizer *t, const int32_t *ids, size_t n, int flags, ds_buf *out, ds_error *err) {
    size_t i;
    if (!t || (!ids && n) || !out) return ds__fail(err, DS_ERR_INVALID, "ds_tokenizer_decode: NULL argument");
    for (i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab)
            return ds__fail(err, DS_ERR_INVALID, "decode: id %d at position %zu is outside the vocabulary [0, %d)", (int)id, i,
                            (int)t->n_vocab);
        if ((flags & DS_DECODE_SKIP_SPECIAL) && (t->flags[id] & DS__TOK_SPECIAL)) continue;
        ds_buf_append(out, t->dec.data + t->dec_off[id], t->dec_off[id + 1] - t->dec_off[id]);
    }
    if (out->oom) return DS__OOM(err);
    return DS_OK;
}

DSDEF const char *ds_tokenizer_token_bytes(const ds_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->dec_off[id + 1] - t->dec_off[id];
    return t->dec.data + t->dec_off[id];
}
DSDEF const char *ds_tokenizer_token_string(const ds_tokenizer *t, int32_t id) {
    return (!t || id < 0 || id >= t->n_vocab) ? NULL : ds__tok_str(t, id);
}
DSDEF int32_t ds_tokenizer_vocab_size(const ds_tokenizer *t) { return t ? t->n_vocab : 0; }
DSDEF int32_t ds_tokenizer_n_merges(const ds_tokenizer *t) { return t ? t->n_merges : 0; }
DSDEF int32_t ds_tokenizer_bos(const ds_tokenizer *t) { return t ? t->bos : -1; }
DSDEF int32_t ds_tokenizer_eos(const ds_tokenizer *t) { return t ? t->eos : -1; }
DSDEF int ds_tokenizer_is_special(const ds_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && (t->flags[id] & DS__TOK_SPECIAL) != 0;
}
DSDEF int32_t ds_tokenizer_padded_vocab(const ds_tokenizer *t) {
    return t ? (t->n_vocab + DS_VOCAB_MULTIPLE - 1) / DS_VOCAB_MULTIPLE * DS_VOCAB_MULTIPLE : 0;
}

/* ============================================================================================
   §2.1 Tokenizer: Hugging Face tokenizer.json
   The format: {"added_tokens": [...], "normalizer", "pre_tokenizer", "decoder",
   "model": {"type": "BPE", "vocab": {token: id}, "merges": ["a b", ...] or [["a", "b"], ...]}}.
   Merge rank = position in the list. We accept exactly what we implement and say why otherwise.
   ============================================================================================ */

/* DeepSeek's five split patterns, byte for byte as its tokenizer.json spells them. */
static const char *const ds__split_patterns[5] = {
    "[\r\n]",
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ"
    "-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐ"
    "ῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯ"
    "ꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
};

static int ds__jis(const ds_json *j, const char *s) {
    return j && j->type == DS_JSON_STRING && j->len == strlen(s) && memcmp(j->str, s, j->len) == 0;
}
static int ds__jnull(const ds_json *j) { return !j || j->type == DS_JSON_NULL; }
static int ds__jfalse(const ds_json *j) { return !j || j->type == DS_JSON_NULL || j->type == DS_JSON_FALSE; }

static int ds__check_pretok(const ds_json *pt, ds_error *err) {
    static const char *const why = "deepseek.h implements DeepSeek's pre-tokenizer only (see docs/tokenizer.md)";
    const ds_json *p;
    int i;
    if (!pt || pt->type != DS_JSON_OBJECT) return ds__fail(err, DS_ERR_UNSUPPORTED, "tokenizer.json: no pre_tokenizer; %s", why);
    if (!ds__jis(ds_json_get(pt, "type"), "Sequence") || !(p = ds_json_get(pt, "pretokenizers")) ||
        p->type != DS_JSON_ARRAY || p->len != 7)
        return ds__fail(err, DS_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer is not a Sequence of 7 steps; %s", why);
    for (i = 0, p = p->child; i < 5; i++, p = p->next) {
        const ds_json *pat = ds_json_get(p, "pattern");
        if (!ds__jis(ds_json_get(p, "type"), "Split") || !ds__jis(ds_json_get(pat, "Regex"), ds__split_patterns[i]) ||
            !ds__jis(ds_json_get(p, "behavior"), "Isolated") || !ds__jfalse(ds_json_get(p, "invert")))
            return ds__fail(err, DS_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer step %d is not DeepSeek's split; %s", i + 1, why);
    }
    if (!ds__jis(ds_json_get(p, "type"), "Digits") || ds_json_get(p, "individual_digits") == NULL ||
        ds_json_get(p, "individual_digits")->type != DS_JSON_TRUE)
        return ds__fail(err, DS_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer step 6 is not Digits(individual_digits); %s", why);
    p = p->next;
    if (!ds__jis(ds_json_get(p, "type"), "ByteLevel") || !ds__jfalse(ds_json_get(p, "use_regex")) ||
        !ds__jfalse(ds_json_get(p, "add_prefix_space")))
        return ds__fail(err, DS_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer step 7 is not ByteLevel(use_regex=false); %s", why);
    return DS_OK;
}

static ds_tokenizer *ds__tok_from_doc(const ds_json *root, ds_error *err) {
    const ds_json *model, *vocab, *merges, *added, *j, *norm, *dec;
    const ds_json **src = NULL;
    unsigned char *fl = NULL;
    ds_tokenizer *t = NULL;
    ds_buf cat = {0, 0, 0, 0};
    int64_t id = 0, max_id = -1;
    int32_t n, r;
    if (!root || root->type != DS_JSON_OBJECT) { ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: the top level is not an object"); return NULL; }
    model = ds_json_get(root, "model");
    if (!model || model->type != DS_JSON_OBJECT) { ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: \"model\" is missing or not an object"); return NULL; }
    if ((j = ds_json_get(model, "type")) && !ds__jis(j, "BPE")) { ds__fail(err, DS_ERR_UNSUPPORTED, "tokenizer.json: model type is not BPE"); return NULL; }
    if (!ds__jnull(ds_json_get(model, "dropout")) || !ds__jnull(ds_json_get(model, "unk_token")) ||
        !ds__jfalse(ds_json_get(model, "byte_fallback")) || !ds__jfalse(ds_json_get(model, "ignore_merges")) ||
        !(ds__jnull(j = ds_json_get(model, "continuing_subword_prefix")) || ds__jis(j, "")) ||
        !(ds__jnull(j = ds_json_get(model, "end_of_word_suffix")) || ds__jis(j, ""))) {
        ds__fail(err, DS_ERR_UNSUPPORTED, "tokenizer.json: BPE options (dropout, unk_token, byte_fallback, ignore_merges, "
                                          "subword prefix/suffix) must be unset");
        return NULL;
    }
    norm = ds_json_get(root, "normalizer");
    if (!ds__jnull(norm) && !(ds__jis(ds_json_get(norm, "type"), "Sequence") && (j = ds_json_get(norm, "normalizers")) &&
                              j->type == DS_JSON_ARRAY && j->len == 0)) {
        ds__fail(err, DS_ERR_UNSUPPORTED, "tokenizer.json: a normalizer is set; deepseek.h implements none");
        return NULL;
    }
    dec = ds_json_get(root, "decoder");
    if (!ds__jnull(dec) && !ds__jis(ds_json_get(dec, "type"), "ByteLevel")) {
        ds__fail(err, DS_ERR_UNSUPPORTED, "tokenizer.json: the decoder is not ByteLevel");
        return NULL;
    }
    if (ds__check_pretok(ds_json_get(root, "pre_tokenizer"), err)) return NULL;
    vocab = ds_json_get(model, "vocab");
    merges = ds_json_get(model, "merges");
    added = ds_json_get(root, "added_tokens");
    if (!vocab || vocab->type != DS_JSON_OBJECT) { ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: model.vocab is missing or not an object"); return NULL; }
    if (!merges || merges->type != DS_JSON_ARRAY) { ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: model.merges is missing or not an array"); return NULL; }
    if (!ds__jnull(added) && added->type != DS_JSON_ARRAY) { ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: added_tokens is not an array"); return NULL; }
    if (ds__jnull(added)) added = NULL;
    if (vocab->len + (added ? added->len : 0) > (size_t)INT32_MAX / 2 || merges->len > (size_t)INT32_MAX / 4) {
        ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: too many tokens");
        return NULL;
    }
    /* ids: every vocab id and added id, contiguous from 0 */
    for (j = vocab->child; j; j = j->next) {
        if (!ds_json_int(j, 0, (int64_t)vocab->len + (added ? (int64_t)added->len : 0) - 1, &id)) {
            ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: vocab[\"%.40s\"] is not an id in [0, number of tokens)", j->key);
            return NULL;
        }
        if (id > max_id) max_id = id;
    }
    for (j = added ? added->child : NULL; j; j = j->next) {
        if (!ds_json_int(ds_json_get(j, "id"), 0, (int64_t)vocab->len + (int64_t)added->len - 1, &id)) {
            ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: an added token has no valid \"id\"");
            return NULL;
        }
        if (id > max_id) max_id = id;
    }
    n = (int32_t)(max_id + 1);
    src = (const ds_json **)ds__calloc((size_t)n + 1, sizeof(*src));
    fl = (unsigned char *)ds__calloc((size_t)n + 1, 1);
    if (!src || !fl) { DS__OOM(err); goto fail; }
    for (j = vocab->child; j; j = j->next) {
        ds_json_int(j, 0, n, &id);
        if (src[id]) { ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: id %d is used by \"%.40s\" and \"%.40s\"", (int)id, src[id]->key, j->key); goto fail; }
        src[id] = j;
        fl[id] = DS__TOK_INVOCAB;
    }
    for (j = added ? added->child : NULL; j; j = j->next) {
        const ds_json *c = ds_json_get(j, "content"), *sp = ds_json_get(j, "special"), *nm = ds_json_get(j, "normalized");
        ds_json_int(ds_json_get(j, "id"), 0, n, &id);
        if (!c || c->type != DS_JSON_STRING || c->len == 0) { ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: added token %d has no content", (int)id); goto fail; }
        if (!ds__jfalse(ds_json_get(j, "lstrip")) || !ds__jfalse(ds_json_get(j, "rstrip")) || !ds__jfalse(ds_json_get(j, "single_word"))) {
            ds__fail(err, DS_ERR_UNSUPPORTED, "tokenizer.json: added token %d uses lstrip/rstrip/single_word", (int)id);
            goto fail;
        }
        if (fl[id] & DS__TOK_ADDED) { ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: added token id %d appears twice", (int)id); goto fail; }
        if (src[id] && (src[id]->key_len != c->len || memcmp(src[id]->key, c->str, c->len) != 0)) {
            ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: added token %d \"%.40s\" differs from vocab entry \"%.40s\"", (int)id, c->str, src[id]->key);
            goto fail;
        }
        if (!src[id]) src[id] = c;
        fl[id] |= DS__TOK_ADDED | (sp && sp->type == DS_JSON_TRUE ? DS__TOK_SPECIAL : 0) |
                  (nm && nm->type == DS_JSON_TRUE ? DS__TOK_NORMALIZED : 0);
    }
    t = ds__tok_alloc(n, (int32_t)merges->len);
    if (!t) { DS__OOM(err); goto fail; }
    for (id = 0; id < n; id++) {
        const ds_json *s = src[id];
        if (!s) { ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: no token has id %d (ids must run from 0 without gaps)", (int)id); goto fail; }
        if (fl[id] & DS__TOK_INVOCAB) ds__tok_push(t, (int32_t)id, s->key, s->key_len, fl[id]);
        else ds__tok_push(t, (int32_t)id, s->str, s->len, fl[id]);
    }
    if (ds__tok_finish(t, err)) goto fail;
    for (r = 0, j = merges->child; j; j = j->next, r++) {
        const char *a, *b;
        size_t la, lb;
        int32_t ia, ib, inew;
        if (j->type == DS_JSON_STRING) {
            const char *sp = (const char *)memchr(j->str, ' ', j->len);
            if (!sp || memchr(sp + 1, ' ', j->len - (size_t)(sp + 1 - j->str))) {
                ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: merge %d \"%.40s\" is not two tokens separated by one space", (int)r, j->str);
                goto fail;
            }
            a = j->str, la = (size_t)(sp - j->str), b = sp + 1, lb = j->len - la - 1;
        } else if (j->type == DS_JSON_ARRAY && j->len == 2 && j->child->type == DS_JSON_STRING && j->child->next->type == DS_JSON_STRING) {
            a = j->child->str, la = j->child->len, b = j->child->next->str, lb = j->child->next->len;
        } else {
            ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: merge %d is neither \"a b\" nor [\"a\", \"b\"]", (int)r);
            goto fail;
        }
        cat.len = 0;
        ds_buf_append(&cat, a, la);
        ds_buf_append(&cat, b, lb);
        if (cat.oom) { DS__OOM(err); goto fail; }
        ia = t->st[ds__st_slot(t, a, la)];
        ib = t->st[ds__st_slot(t, b, lb)];
        inew = t->st[ds__st_slot(t, cat.data, cat.len)];
        if (ia < 0 || ib < 0 || inew < 0) {
            ds__fail(err, DS_ERR_FORMAT, "tokenizer.json: merge %d (\"%.30s\" + \"%.30s\") uses or makes a token not in the vocabulary",
                     (int)r, ia < 0 ? a : ds__tok_str(t, ia), ib < 0 ? b : ds__tok_str(t, ib));
            goto fail;
        }
        if (ds__tok_add_merge(t, r, ia, ib, inew, err)) goto fail;
    }
    DS_FREE(src);
    DS_FREE(fl);
    ds_buf_free(&cat);
    return t;
fail:
    DS_FREE(src);
    DS_FREE(fl);
    ds_buf_free(&cat);
    ds_tokenizer_free(t);
    return NULL;
}

DSDEF ds_tokenizer *ds_tokenizer_from_json(const char *json, size_t len, ds_error *err) {
    ds_json_doc *doc = ds_json_parse(json, len, err);
    ds_tokenizer *t;
    if (!doc) return NULL;
    t = ds__tok_from_doc(doc->root, err);
    ds_json_free(doc);
    return t;
}

DSDEF ds_tokenizer *ds_tokenizer_load(const char *path, ds_error *err) {
    size_t len;
    char *text = ds_read_file(path, (size_t)1 << 31, &len, err);
    ds_tokenizer *t;
    if (!text) return NULL;
    t = ds_tokenizer_from_json(text, len, err);
    DS_FREE(text);
    if (!t) ds__err_prefix(err, path); /* say which file */
    return t;
}

DSDEF int ds_tokenizer_to_json(const ds_tokenizer *t, ds_buf *o, ds_error *err) {
    int32_t id, r, k, space = 0;
    int i;
    if (!t || !o) return ds__fail(err, DS_ERR_INVALID, "ds_tokenizer_to_json: NULL argument");
    ds_buf_puts(o, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
    for (k = 0, id = 0; id < t->n_vocab; id++) {
        if (!(t->flags[id] & DS__TOK_ADDED)) continue;
        ds_buf_printf(o, "%s\n    {\"id\": %d, \"content\": ", k++ ? "," : "", (int)id);
        ds_buf_json_string(o, ds__tok_str(t, id), (size_t)ds__tok_len(t, id));
        ds_buf_printf(o, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": %s, \"special\": %s}",
                      t->flags[id] & DS__TOK_NORMALIZED ? "true" : "false", t->flags[id] & DS__TOK_SPECIAL ? "true" : "false");
    }
    ds_buf_puts(o, "\n  ],\n  \"normalizer\": null,\n  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [");
    for (i = 0; i < 5; i++) {
        ds_buf_puts(o, "\n    {\"type\": \"Split\", \"pattern\": {\"Regex\": ");
        ds_buf_json_string(o, ds__split_patterns[i], strlen(ds__split_patterns[i]));
        ds_buf_puts(o, "}, \"behavior\": \"Isolated\", \"invert\": false},");
    }
    ds_buf_puts(o, "\n    {\"type\": \"Digits\", \"individual_digits\": true},"
                   "\n    {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}\n  ]},\n"
                   "  \"post_processor\": null,\n"
                   "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n"
                   "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
                   "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
                   "    \"byte_fallback\": false,\n    \"vocab\": {");
    for (k = 0, id = 0; id < t->n_vocab; id++) {
        if (!(t->flags[id] & DS__TOK_INVOCAB)) continue;
        ds_buf_puts(o, k++ ? ",\n      " : "\n      ");
        ds_buf_json_string(o, ds__tok_str(t, id), (size_t)ds__tok_len(t, id));
        ds_buf_printf(o, ": %d", (int)id);
    }
    /* merges as "a b" (readable by every tokenizers version) unless a token has a space in it */
    for (r = 0; r < t->n_merges && !space; r++)
        space = memchr(ds__tok_str(t, t->merges[3 * r]), ' ', (size_t)ds__tok_len(t, t->merges[3 * r])) ||
                memchr(ds__tok_str(t, t->merges[3 * r + 1]), ' ', (size_t)ds__tok_len(t, t->merges[3 * r + 1]));
    ds_buf_puts(o, "\n    },\n    \"merges\": [");
    for (r = 0; r < t->n_merges; r++) {
        int32_t a = t->merges[3 * r], b = t->merges[3 * r + 1];
        ds_buf_puts(o, r ? ",\n      " : "\n      ");
        if (space) {
            ds_buf_puts(o, "[");
            ds_buf_json_string(o, ds__tok_str(t, a), (size_t)ds__tok_len(t, a));
            ds_buf_puts(o, ", ");
            ds_buf_json_string(o, ds__tok_str(t, b), (size_t)ds__tok_len(t, b));
            ds_buf_puts(o, "]");
        } else {
            ds_buf k2 = {0, 0, 0, 0};
            ds_buf_append(&k2, ds__tok_str(t, a), (size_t)ds__tok_len(t, a));
            ds_buf_append(&k2, " ", 1);
            ds_buf_append(&k2, ds__tok_str(t, b), (size_t)ds__tok_len(t, b));
            if (k2.oom) o->oom = 1;
            else ds_buf_json_string(o, k2.data, k2.len);
            ds_buf_free(&k2);
        }
    }
    ds_buf_puts(o, "\n    ]\n  }\n}\n");
    if (o->oom) return DS__OOM(err);
    return DS_OK;
}

DSDEF int ds_tokenizer_save(const ds_tokenizer *t, const char *path, ds_error *err) {
    ds_buf o = {0, 0, 0, 0};
    int rc = ds_tokenizer_to_json(t, &o, err);
    if (!rc) rc = ds_write_file_atomic(path, o.data, o.len, err);
    ds_buf_free(&o);
    return rc;
}

/* ============================================================================================
   §2.1 Tokenizer: the BPE trainer
   The paper trains its 100,000-token BPE with HF tokenizers; this is the same algorithm:

     count the distinct pieces of the corpus (after pre-tokenization) and their frequencies;
     repeat: take the most frequent adjacent pair of symbols, over all pieces, weighted by
             frequency (ties: the lower left id, then the lower right id); replace it everywhere
             by a new symbol.

   Done naively that is O(merges x corpus). The fast version keeps, for every pair, its count
   and the list of pieces it occurs in, and a max-heap of (count, pair). A merge touches only
   the pieces on its list: each is un-counted, merged, and re-counted, which keeps every count
   exact. Only pairs that contain the new symbol can have grown, so only they are pushed again;
   every other heap entry is an upper bound of its pair's count, and a popped entry whose count
   is stale is pushed back with the true count (lazy deletion). The result is exactly the naive
   algorithm's, which tests/test_tokenizer.c keeps as the reference and compares on random corpora.
   ============================================================================================ */

struct ds_bpe_trainer {
    ds_buf bytes;    /* distinct pieces, back to back */
    size_t *off;     /* piece w is bytes[off[w], off[w] + len[w]) */
    uint32_t *len;
    int64_t *freq;
    uint64_t *hash;
    size_t n, cap;
    int32_t *tab;    /* open addressing: piece -> w */
    size_t tab_cap;
    const unsigned char *feed_text;
    int oom;
};

DSDEF ds_bpe_trainer *ds_bpe_trainer_new(ds_error *err) {
    ds_bpe_trainer *tr = (ds_bpe_trainer *)ds__calloc(1, sizeof *tr);
    if (!tr) DS__OOM(err);
    return tr;
}
DSDEF void ds_bpe_trainer_free(ds_bpe_trainer *tr) {
    if (!tr) return;
    ds_buf_free(&tr->bytes);
    DS_FREE(tr->off);
    DS_FREE(tr->len);
    DS_FREE(tr->freq);
    DS_FREE(tr->hash);
    DS_FREE(tr->tab);
    DS_FREE(tr);
}

static void ds__trainer_piece(void *ctx, size_t start, size_t len) {
    ds_bpe_trainer *tr = (ds_bpe_trainer *)ctx;
    const unsigned char *p = tr->feed_text + start;
    uint64_t h;
    size_t mask, i;
    if (tr->oom || len < 2 || len > UINT32_MAX) return; /* a 1-byte piece has no pair to count */
    if (tr->n * 2 + 2 > tr->tab_cap) {
        size_t cap = tr->tab_cap ? tr->tab_cap * 2 : 4096, w;
        DS_FREE(tr->tab);
        tr->tab = (int32_t *)DS_MALLOC(cap * sizeof(int32_t));
        if (!tr->tab || tr->n >= INT32_MAX / 2) { tr->oom = 1; tr->tab_cap = 0; return; }
        memset(tr->tab, 0xFF, cap * sizeof(int32_t));
        tr->tab_cap = cap;
        for (w = 0; w < tr->n; w++) {
            for (i = (size_t)tr->hash[w] & (cap - 1); tr->tab[i] >= 0; i = (i + 1) & (cap - 1)) {}
            tr->tab[i] = (int32_t)w;
        }
    }
    h = ds__hash(p, len);
    mask = tr->tab_cap - 1;
    for (i = (size_t)h & mask; tr->tab[i] >= 0; i = (i + 1) & mask) {
        int32_t w = tr->tab[i];
        if (tr->hash[w] == h && tr->len[w] == len && memcmp(tr->bytes.data + tr->off[w], p, len) == 0) {
            tr->freq[w]++;
            return;
        }
    }
    if (!ds__grow((void **)&tr->off, &tr->cap, tr->n + 1, sizeof(size_t))) { tr->oom = 1; return; }
    { /* the parallel arrays follow off's capacity */
        uint32_t *l = (uint32_t *)DS_REALLOC(tr->len, tr->cap * sizeof(uint32_t));
        int64_t *f;
        uint64_t *hh;
        if (l) tr->len = l;
        f = l ? (int64_t *)DS_REALLOC(tr->freq, tr->cap * sizeof(int64_t)) : NULL;
        if (f) tr->freq = f;
        hh = f ? (uint64_t *)DS_REALLOC(tr->hash, tr->cap * sizeof(uint64_t)) : NULL;
        if (!hh) { tr->oom = 1; return; }
        tr->hash = hh;
    }
    tr->off[tr->n] = tr->bytes.len;
    ds_buf_append(&tr->bytes, p, len);
    if (tr->bytes.oom) { tr->oom = 1; return; }
    tr->len[tr->n] = (uint32_t)len;
    tr->freq[tr->n] = 1;
    tr->hash[tr->n] = h;
    tr->tab[i] = (int32_t)tr->n++;
}

DSDEF int ds_bpe_trainer_feed(ds_bpe_trainer *tr, const char *text, size_t len, ds_error *err) {
    if (!tr || (!text && len)) return ds__fail(err, DS_ERR_INVALID, "ds_bpe_trainer_feed: NULL argument");
    tr->feed_text = (const unsigned char *)text;
    ds__pretokenize((const unsigned char *)text, len, ds__trainer_piece, tr);
    return tr->oom ? DS__OOM(err) : DS_OK;
}

typedef struct ds__pair {
    uint64_t key;        /* left << 32 | right */
    int64_t count;       /* exact: sum of piece frequencies over (overlapping) occurrences */
    int32_t *words;      /* pieces it occurs in (a superset: entries may be stale or repeated) */
    int32_t n_words, cap_words, last_word, mark;
} ds__pair;

typedef struct ds__hent { int64_t count; uint64_t key; } ds__hent;

typedef struct ds__bpe_train {
    ds__pair *pairs;
    size_t n_pairs, cap_pairs;
    int32_t *tab;        /* key -> pair index */
    size_t tab_cap;
    ds__hent *heap;
    size_t n_heap, cap_heap;
    int oom;
} ds__bpe_train;

/* heap order: higher count first, then the lower key, i.e. the lower (left, right) */
static int ds__hent_before(const ds__hent *x, const ds__hent *y) {
    return x->count != y->count ? x->count > y->count : x->key < y->key;
}
static void ds__hpush(ds__bpe_train *b, int64_t count, uint64_t key) {
    size_t i;
    ds__hent v;
    if (!ds__grow((void **)&b->heap, &b->cap_heap, b->n_heap + 1, sizeof(ds__hent))) { b->oom = 1; return; }
    v.count = count;
    v.key = key;
    for (i = b->n_heap++; i > 0 && ds__hent_before(&v, &b->heap[(i - 1) / 2]); i = (i - 1) / 2) b->heap[i] = b->heap[(i - 1) / 2];
    b->heap[i] = v;
}
static ds__hent ds__hpop(ds__bpe_train *b) {
    ds__hent top = b->heap[0], v = b->heap[--b->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= b->n_heap) break;
        if (c + 1 < b->n_heap && ds__hent_before(&b->heap[c + 1], &b->heap[c])) c++;
        if (!ds__hent_before(&b->heap[c], &v)) break;
        b->heap[i] = b->heap[c];
        i = c;
    }
    b->heap[i] = v;
    return top;
}

/* The index of pair key, created with count 0 if new; -1 when out of memory. */
static int32_t ds__pair_get(ds__bpe_train *b, uint64_t key, int create) {
    size_t mask, i;
    if (create && b->n_pairs * 2 + 2 > b->tab_cap) {
        size_t cap = b->tab_cap ? b->tab_cap * 2 : 65536, k;
        DS_FREE(b->tab);
        b->tab = (int32_t *)DS_MALLOC(cap * sizeof(int32_t));
        if (!b->tab || b->n_pairs >= INT32_MAX / 2) { b->oom = 1; b->tab_cap = 0; return -1; }
        memset(b->tab, 0xFF, cap * sizeof(int32_t));
        b->tab_cap = cap;
        for (k = 0; k < b->n_pairs; k++) {
            for (i = (size_t)ds__hash64(b->pairs[k].key) & (cap - 1); b->tab[i] >= 0; i = (i + 1) & (cap - 1)) {}
            b->tab[i] = (int32_t)k;
        }
    }
    if (!b->tab_cap) return -1;
    mask = b->tab_cap - 1;
    for (i = (size_t)ds__hash64(key) & mask; b->tab[i] >= 0; i = (i + 1) & mask)
        if (b->pairs[b->tab[i]].key == key) return b->tab[i];
    if (!create) return -1;
    if (!ds__grow((void **)&b->pairs, &b->cap_pairs, b->n_pairs + 1, sizeof(ds__pair))) { b->oom = 1; return -1; }
    memset(&b->pairs[b->n_pairs], 0, sizeof(ds__pair));
    b->pairs[b->n_pairs].key = key;
    b->pairs[b->n_pairs].last_word = -1;
    b->pairs[b->n_pairs].mark = -1;
    b->tab[i] = (int32_t)b->n_pairs;
    return (int32_t)b->n_pairs++;
}
static void ds__pair_add_word(ds__bpe_train *b, ds__pair *p, int32_t w) {
    if (p->last_word == w) return;
    p->last_word = w;
    if (p->n_words == p->cap_words) {
        size_t cap = (size_t)p->cap_words;
        if (!ds__grow((void **)&p->words, &cap, (size_t)p->n_words + 1, sizeof(int32_t)) || cap > INT32_MAX) { b->oom = 1; return; }
        p->cap_words = (int32_t)cap;
    }
    p->words[p->n_words++] = w;
}
#define DS__PKEY(a, b) (((uint64_t)(uint32_t)(a) << 32) | (uint32_t)(b))

DSDEF ds_tokenizer *ds_bpe_trainer_train(ds_bpe_trainer *tr, int vocab_size, ds_error *err) {
    ds__bpe_train b;
    ds__vocab v;
    int32_t *sym = NULL, *stamp = NULL, *touched = NULL, *ml = NULL;
    size_t *start = NULL, n_sym = 0, w, i, n_touched, cap_touched = 0, cap_ml = 0;
    uint32_t *wlen = NULL;
    int n_merges = 0;
    ds_tokenizer *t = NULL;
    memset(&b, 0, sizeof b);
    memset(&v, 0, sizeof v);
    if (!tr) { ds__fail(err, DS_ERR_INVALID, "ds_bpe_trainer_train: NULL trainer"); return NULL; }
    if (vocab_size < 258 || vocab_size > (1 << 28))
        { ds__fail(err, DS_ERR_INVALID, "vocab_size %d: it must lie in [258, 2^28] (256 bytes + BOS + EOS at least)", vocab_size); return NULL; }
    /* every piece as a sequence of byte symbols */
    start = (size_t *)ds__calloc(tr->n + 1, sizeof(size_t));
    wlen = (uint32_t *)ds__calloc(tr->n + 1, sizeof(uint32_t));
    stamp = (int32_t *)ds__calloc(tr->n + 1, sizeof(int32_t));
    sym = (int32_t *)ds__calloc(tr->bytes.len + 1, sizeof(int32_t));
    if (!start || !wlen || !stamp || !sym || !ds__vocab_init(&v)) goto oom;
    for (w = 0; w < tr->n; w++) {
        start[w] = n_sym;
        wlen[w] = tr->len[w];
        for (i = 0; i < tr->len[w]; i++) sym[n_sym++] = ((const unsigned char *)tr->bytes.data)[tr->off[w] + i];
        for (i = 0; i + 1 < tr->len[w]; i++) {
            int32_t pi = ds__pair_get(&b, DS__PKEY(sym[start[w] + i], sym[start[w] + i + 1]), 1);
            if (pi < 0) goto oom;
            b.pairs[pi].count += tr->freq[w];
            ds__pair_add_word(&b, &b.pairs[pi], (int32_t)w);
        }
    }
    for (i = 0; i < b.n_pairs; i++) ds__hpush(&b, b.pairs[i].count, b.pairs[i].key);
    if (b.oom) goto oom;

    while (v.n < vocab_size - 2 && b.n_heap) {
        ds__hent top = ds__hpop(&b);
        int32_t pi = ds__pair_get(&b, top.key, 0), a, c, x, *list, n_list, k;
        if (b.pairs[pi].count != top.count) { /* stale entry: requeue with the true count */
            if (b.pairs[pi].count > 0) ds__hpush(&b, b.pairs[pi].count, top.key);
            continue;
        }
        if (top.count <= 0) continue;
        a = (int32_t)(top.key >> 32);
        c = (int32_t)(uint32_t)top.key;
        x = ds__vocab_merge(&v, a, c); /* the new symbol */
        if (x < 0 || !ds__grow((void **)&ml, &cap_ml, (size_t)n_merges * 2 + 2, sizeof(int32_t))) goto oom;
        ml[2 * n_merges] = a;
        ml[2 * n_merges + 1] = c;
        n_merges++;
        list = b.pairs[pi].words; /* not appended to below: no new pair equals (a, c) */
        n_list = b.pairs[pi].n_words;
        n_touched = 0;
        for (k = 0; k < n_list; k++) {
            int32_t wi = list[k], *s = sym + start[list[k]];
            uint32_t L = wlen[wi], j, o;
            int64_t f = tr->freq[wi];
            if (stamp[wi] == n_merges) continue; /* seen in this merge */
            stamp[wi] = n_merges;
            for (j = 0; j + 1 < L && !(s[j] == a && s[j + 1] == c); j++) {}
            if (j + 1 >= L) continue; /* stale: the piece no longer has the pair */
            for (j = 0; j + 1 < L; j++) b.pairs[ds__pair_get(&b, DS__PKEY(s[j], s[j + 1]), 0)].count -= f;
            for (j = 0, o = 0; j < L; o++) { /* merge left to right, non-overlapping */
                if (j + 1 < L && s[j] == a && s[j + 1] == c) { s[o] = x; j += 2; }
                else s[o] = s[j++];
            }
            wlen[wi] = L = o;
            for (j = 0; j + 1 < L; j++) {
                int32_t q = ds__pair_get(&b, DS__PKEY(s[j], s[j + 1]), 1);
                if (q < 0) goto oom;
                b.pairs[q].count += f;
                if (s[j] != x && s[j + 1] != x) continue;
                ds__pair_add_word(&b, &b.pairs[q], wi);
                if (b.pairs[q].mark != n_merges) {
                    b.pairs[q].mark = n_merges;
                    if (!ds__grow((void **)&touched, &cap_touched, n_touched + 1, sizeof(int32_t))) goto oom;
                    touched[n_touched++] = q;
                }
            }
        }
        DS_ASSERT(b.pairs[pi].count == 0);
        DS_FREE(b.pairs[pi].words);
        b.pairs[pi].words = NULL;
        b.pairs[pi].n_words = b.pairs[pi].cap_words = 0;
        for (i = 0; i < n_touched; i++)
            if (b.pairs[touched[i]].count > 0) ds__hpush(&b, b.pairs[touched[i]].count, b.pairs[touched[i]].key);
        if (b.oom) goto oom;
    }
    t = ds_tokenizer_from_merges(ml, n_merges, err);
    goto done;
oom:
    DS__OOM(err);
done:
    for (i = 0; i < b.n_pairs; i++) DS_FREE(b.pairs[i].words);
    DS_FREE(b.pairs);
    DS_FREE(b.tab);
    DS_FREE(b.heap);
    ds__vocab_free(&v);
    DS_FREE(sym);
    DS_FREE(stamp);
    DS_FREE(touched);
    DS_FREE(ml);
    DS_FREE(start);
    DS_FREE(wlen);
    return t;
}


/* ============================================================================================
   Threads
   ============================================================================================ */

#ifndef DS_NO_THREADS
#include <pthread.h>
#endif

typedef struct ds__worker { struct ds_pool *pool; int k; } ds__worker;

/* The matmul's register tile (its kernels: "matmul" below): MR = 4 rows by NR columns, NR from
   the vector width and the register file */
#define DS__MR 4
#if (defined(__GNUC__) || defined(__clang__)) && !defined(DS_NO_SIMD)
#define DS__SIMD 1
#if defined(__AVX512F__)
#define DS__VB 64
#elif defined(__AVX__)
#define DS__VB 32
#else
#define DS__VB 16
#endif
typedef ds_float ds__vec __attribute__((vector_size(DS__VB)));
#define DS__VL (int)(DS__VB / sizeof(ds_float))
/* The tile's width in vectors follows the register file: 4 x 4 accumulators + 4 vectors of B + a
   broadcast need 21 registers, which AVX-512's 32 hold; x86 without AVX-512 has 16 (AVX2, SSE),
   where that tile spilled to the stack on every k (measured on a Zen 3 EPYC: 0.70x PyTorch on the
   tiny config), so there the tile is 4 x 3: 12 accumulators + 3 + 1 = 16. Each output element
   still sums k in ascending order, so the tile's shape does not change any result. */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX512F__)
#define DS__NV 3
#else
#define DS__NV 4
#endif
#define DS__NR (DS__NV * DS__VL)
#else
#define DS__NR 16
#endif
#ifndef DS_MM_KC
/* the matmul's k-block: the largest power of two (at most 512) for which a KC x NR strip of B
   fits in 32 KB, so that it stays in L1 while the tiles run down its rows: 128 with AVX-512
   (NR = 64 floats), 256 with AVX2 (NR = 24). Each tile call loads and stores its 4 x NR block of
   C once per k-block; with AVX2's narrower tile a k-block of 128 left half of L1 unused, and 256
   measured 1.06-1.08x on the products of a step (AMD EPYC Zen 3, 2 threads) with the same bits */
#define DS_MM_KC (DS__NR * sizeof(ds_float) > 128 ? 128 : DS__NR * sizeof(ds_float) > 64 ? 256 : 512)
#endif
#ifndef DS_MM_NC
#define DS_MM_NC 512 /* its column block (ds__mm_blocked_task) */
#endif
#ifndef DS_MM_KB
#define DS_MM_KB (512 / DS_MM_KC > 0 ? 512 / DS_MM_KC : 1) /* k-blocks of B packed at once (512 k's): C is revisited once per KB k-blocks */
#endif
#define DS__MM_BBLK ((size_t)DS_MM_KB * DS_MM_KC * (DS_MM_NC + 64)) /* the packed B block (NC, or one strip of at most 64) */
/* Shared work (ds__pool_share; the blocked matmul's bands, ds__matmul_g). With several threads
   and at least DS__SHARE pieces of work a thread, each thread first takes its own fixed share of
   the pieces, in order, as ds_pool_for would give it, and then the pieces the others have not
   reached yet, from the far end of their shares: a thread slowed down (on a shared host, by
   another tenant) hands the rest of its share to the others, and a piece stays on the thread
   that also works its rows in the ops before and after (their data stays in that core's
   caches). Each piece is claimed once (an atomic exchange on its flag, at most DS__SHARE_MAX
   pieces). Which thread computes a piece never changes what it computes: the same bits. */
#if !defined(DS_NO_THREADS) && (defined(__GNUC__) || defined(__clang__)) && !defined(DS__SHARE)
#define DS__SHARE 4
#endif
#if defined(DS__SHARE) && !defined(DS__SHARE_MAX)
#define DS__SHARE_MAX 1024
#endif
/* The CPU bf16 mode's blocking (ds__matmul_bf16, where the CPU has AVX512_BF16), in the same
   per-thread buffers: k-blocks of DS__MMB_KC k's (two to a 32-bit word), column blocks of
   DS__MMB_NC, row blocks of half the float path's mm_mc (ds__mmb_mc) */
#define DS__MMB_KC 512 /* k's in a k-block: 256 words */
#define DS__MMB_NC 512 /* columns in a column block */
#define DS__MMB_MC 128 /* the row block of a product run without a pool (the model's own buffer) */
static size_t ds__mmb_mc(size_t mm_mc) { return mm_mc / 8 * 4 < 4 ? 4 : mm_mc / 8 * 4; }
/* the floats a thread's buffer needs for row blocks of mc: the A block ((mc + 4) x KC / 2
   words), the B block (NC / 64 strips of 64 x KC / 2 words), a scratch of one more strip */
static size_t ds__mmb_buf(size_t mc) { return (mc + 4) * (DS__MMB_KC / 2) + (size_t)(DS__MMB_NC / 64 + 1) * 64 * (DS__MMB_KC / 2); }
struct ds_pool {
    int n;           /* threads, the caller's included */
    size_t mm_mc;    /* the matmul's row block: its packed A (mm_mc x KC) and its C (mm_mc x NC) fill half the L2 */
    ds_float **pack; /* per thread (ds__mm_blocked_task): the packed A block, (mm_mc + 16) x KC floats,
                        then the packed B block, DS__MM_BBLK floats (or ds__mmb_buf's, if larger) */
    int n_pack;
    size_t pack_n;   /* the floats of each of those buffers */
#ifndef DS_NO_THREADS
    pthread_t *th;
    ds__worker *w;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;
    int pending, quit, started;
    void (*fn)(void *, size_t, size_t);
    void *ctx;
    size_t total;
#endif
};

/* chunk k of `parts` over [0, n): contiguous, sizes differing by at most one */
static void ds__chunk(size_t n, int parts, int k, size_t *b, size_t *e) {
    *b = n / (size_t)parts * (size_t)k + ((size_t)k < n % (size_t)parts ? (size_t)k : n % (size_t)parts);
    *e = *b + n / (size_t)parts + ((size_t)k < n % (size_t)parts);
}

/* The L2 cache of the CPU this runs on, in bytes (the matmul's row block follows it): glibc's
   sysconf, else Linux's sysfs, else 512 KB (the smallest L2 of the CPUs measured: Zen 3). */
static size_t ds__l2_bytes(void) {
    long v = -1;
#if defined(DS__POSIX) && defined(_SC_LEVEL2_CACHE_SIZE)
    v = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    if (v <= 0) {
        FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index2/size", "r");
        char buf[32] = {0};
        if (f) {
            if (fgets(buf, sizeof buf, f)) {
                char *end;
                long k = strtol(buf, &end, 10);
                if (k > 0 && k < 1024 && *end == 'M') v = k << 20; /* (bounded: a 32-bit long holds it) */
                else if (k > 0 && k < (1L << 20) && *end == 'K') v = k << 10;
            }
            fclose(f);
        }
    }
    return v > 0 ? (size_t)v : (size_t)512 << 10;
}

#ifndef DS_NO_THREADS

/* Hand-offs happen hundreds of times per training step, so both sides first spin briefly on
   the counters (GCC/clang atomics) before sleeping on the condition variables. The counters are
   re-checked under the mutex before any wait, so no wake-up is lost. */
#if defined(__GNUC__) || defined(__clang__)
#define DS__LOAD(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#define DS__STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#define DS__INC(p) __atomic_add_fetch(p, 1, __ATOMIC_ACQ_REL)
#define DS__SUB(p) __atomic_sub_fetch(p, 1, __ATOMIC_ACQ_REL)
#define DS__SPIN 20000
#if defined(__x86_64__) || defined(__i386__)
#define DS__PAUSE() __builtin_ia32_pause()
#else
#define DS__PAUSE() ((void)0)
#endif
#else
#define DS__LOAD(p) (*(p))
#define DS__STORE(p, v) (*(p) = (v))
#define DS__INC(p) (++*(p))
#define DS__SUB(p) (--*(p))
#define DS__SPIN 0
#define DS__PAUSE() ((void)0)
#endif

static void *ds__worker_main(void *arg) {
    ds__worker *w = (ds__worker *)arg;
    ds_pool *p = w->pool;
    unsigned long seen = 0;
    for (;;) {
        size_t b, e;
        int spin = 0, last;
        while (DS__LOAD(&p->gen) == seen && !DS__LOAD(&p->quit) && spin < DS__SPIN) { DS__PAUSE(); spin++; }
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) { pthread_mutex_unlock(&p->mu); break; }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        ds__chunk(p->total, p->n, w->k, &b, &e);
        if (b < e) p->fn(p->ctx, b, e);
        pthread_mutex_lock(&p->mu);
        last = DS__SUB(&p->pending) == 0; /* atomic: the caller spins reading it without the mutex */
        if (last) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}
#endif

DSDEF ds_pool *ds_pool_new(int n_threads, ds_error *err) {
    ds_pool *p;
    if (n_threads < 1 || n_threads > 1024) { ds__fail(err, DS_ERR_INVALID, "ds_pool_new: %d threads (1..1024)", n_threads); return NULL; }
    p = (ds_pool *)ds__calloc(1, sizeof *p);
    if (!p) { DS__OOM(err); return NULL; }
    {
        /* each thread's buffer for the matmul's packed A and B blocks (ds__mm_blocked_task),
           allocated once here: mm_mc rows of A and of C fill half the L2 (408 rows on a 2 MB L2
           with AVX-512's k-block of 128, 80 on a 512 KB one with AVX2's 256) */
        int k, nb = n_threads;
#ifdef DS_MM_MC
        p->mm_mc = DS_MM_MC;
#else
        p->mm_mc = ds__l2_bytes() / 2 / ((DS_MM_NC + DS_MM_KC) * sizeof(ds_float));
#endif
        p->mm_mc = p->mm_mc < 32 ? 32 : p->mm_mc > 4096 ? 4096 : p->mm_mc / 8 * 8;
#ifdef DS_NO_THREADS
        nb = 1;
#endif
        size_t n_buf = (p->mm_mc + 16) * DS_MM_KC + DS__MM_BBLK; /* the float path's; the bf16 mode's if larger */
        if (ds__mmb_buf(ds__mmb_mc(p->mm_mc)) > n_buf) n_buf = ds__mmb_buf(ds__mmb_mc(p->mm_mc));
        p->pack = (ds_float **)ds__calloc((size_t)nb, sizeof(ds_float *));
        for (k = 0; p->pack && k < nb; k++)
            if (!(p->pack[k] = (ds_float *)DS_MALLOC(n_buf * sizeof(ds_float)))) {
                while (k-- > 0) DS_FREE(p->pack[k]);
                DS_FREE(p->pack);
                p->pack = NULL;
            }
        if (!p->pack) { DS_FREE(p); DS__OOM(err); return NULL; }
        p->n_pack = nb;
        p->pack_n = n_buf;
    }
#ifdef DS_NO_THREADS
    p->n = 1;
#else
    p->n = n_threads;
    if (n_threads > 1) {
        int k;
        p->th = (pthread_t *)ds__calloc((size_t)n_threads, sizeof(pthread_t));
        p->w = (ds__worker *)ds__calloc((size_t)n_threads, sizeof(ds__worker));
        if (!p->th || !p->w) {
            DS_FREE(p->th);
            DS_FREE(p->w);
            for (k = 0; k < p->n_pack; k++) DS_FREE(p->pack[k]);
            DS_FREE(p->pack);
            DS_FREE(p);
            DS__OOM(err);
            return NULL;
        }
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->go, NULL);
        pthread_cond_init(&p->done, NULL);
        for (k = 1; k < n_threads; k++) {
            p->w[k].pool = p;
            p->w[k].k = k;
            if (pthread_create(&p->th[k], NULL, ds__worker_main, &p->w[k]) != 0) {
                p->n = k; /* run with the threads we have */
                break;
            }
            p->started = k;
        }
    }
#endif
    return p;
}

DSDEF void ds_pool_free(ds_pool *p) {
    if (!p) return;
#ifndef DS_NO_THREADS
    if (p->th) {
        int k;
        pthread_mutex_lock(&p->mu);
        DS__STORE(&p->quit, 1);
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        for (k = 1; k <= p->started; k++) pthread_join(p->th[k], NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
        DS_FREE(p->th);
        DS_FREE(p->w);
    }
#endif
    if (p->pack) {
        int k;
        for (k = 0; k < p->n_pack; k++) DS_FREE(p->pack[k]);
        DS_FREE(p->pack);
    }
    DS_FREE(p);
}

DSDEF int ds_pool_threads(const ds_pool *p) { return p ? p->n : 1; }

DSDEF void ds_pool_for(ds_pool *p, size_t n, void (*fn)(void *ctx, size_t begin, size_t end), void *ctx) {
#ifndef DS_NO_THREADS
    size_t b, e;
    if (p && p->n > 1 && n > 1) {
        pthread_mutex_lock(&p->mu);
        p->fn = fn;
        p->ctx = ctx;
        p->total = n;
        DS__STORE(&p->pending, p->n - 1); /* atomic stores: the workers spin reading these without the mutex */
        DS__INC(&p->gen);
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        ds__chunk(n, p->n, 0, &b, &e);
        if (b < e) fn(ctx, b, e);
        {
            int spin = 0;
            while (DS__LOAD(&p->pending) > 0 && spin < DS__SPIN) { DS__PAUSE(); spin++; }
        }
        pthread_mutex_lock(&p->mu);
        while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
        return;
    }
#else
    (void)p;
#endif
    if (n) fn(ctx, 0, n);
}

/* ============================================================================================
   §2.2 Configuration
   ============================================================================================ */

DSDEF int ds_ffn_dim(int d_model, int multiple) {
    long long h = (8LL * d_model + 2) / 3; /* ceil(8d/3) */
    if (multiple < 1) multiple = 1;
    return (int)((h + multiple - 1) / multiple * multiple);
}

static void ds__config_set(ds_config *c, int V, int D, int L, int H, int KV, int F, int S) {
    c->vocab = V;
    c->d_model = D;
    c->n_layers = L;
    c->n_heads = H;
    c->n_kv_heads = KV;
    c->d_ff = F;
    c->max_seq = S;
    c->rope_theta = 10000.0;
    c->norm_eps = 1e-6;
    c->init_std = 0.006;
}

DSDEF int ds_config_preset(const char *name, ds_config *c, ds_error *err) {
    if (!name || !c) return ds__fail(err, DS_ERR_INVALID, "ds_config_preset: NULL argument");
    if (!strcmp(name, "7b")) ds__config_set(c, 102400, 4096, 30, 32, 32, ds_ffn_dim(4096, 256), 4096);
    else if (!strcmp(name, "67b")) ds__config_set(c, 102400, 8192, 95, 64, 8, ds_ffn_dim(8192, 256), 4096);
    else if (!strcmp(name, "test")) ds__config_set(c, 64, 32, 2, 4, 2, ds_ffn_dim(32, 8), 16);
    else if (!strcmp(name, "tiny")) ds__config_set(c, 512, 128, 4, 4, 4, ds_ffn_dim(128, 32), 128);
    else if (!strcmp(name, "small")) ds__config_set(c, 4096, 256, 6, 8, 4, ds_ffn_dim(256, 32), 256);
    else if (!strcmp(name, "medium")) ds__config_set(c, 8192, 512, 8, 8, 8, ds_ffn_dim(512, 32), 256);
    else return ds__fail(err, DS_ERR_INVALID, "unknown preset '%s' (7b, 67b, test, tiny, small, medium)", name);
    return DS_OK;
}

/* a * b, or 0 (and *ok = 0) when it overflows */
static size_t ds__mul(size_t a, size_t b, int *ok) {
    if (a && b > SIZE_MAX / a) { *ok = 0; return 0; }
    return a * b;
}
/* a + b, or 0 (and *ok = 0) when it overflows */
static size_t ds__add(size_t a, size_t b, int *ok) {
    if (b > SIZE_MAX - a) { *ok = 0; return 0; }
    return a + b;
}

DSDEF size_t ds_config_n_params(const ds_config *c) {
    size_t D = (size_t)c->d_model, hd = D / (size_t)(c->n_heads ? c->n_heads : 1);
    size_t layer = 2 * D + D * hd * ((size_t)c->n_heads * 2 + (size_t)c->n_kv_heads * 2) + 3 * D * (size_t)c->d_ff;
    return 2 * (size_t)c->vocab * D + D + (size_t)c->n_layers * layer;
}

DSDEF int ds_config_validate(const ds_config *c, ds_error *err) {
    int ok = 1;
    size_t n = 0;
    if (!c) return ds__fail(err, DS_ERR_INVALID, "config: NULL");
    if (c->vocab <= 0 || c->d_model <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->d_ff <= 0 || c->max_seq <= 0)
        return ds__fail(err, DS_ERR_INVALID, "config: every size must be positive (vocab %d, d_model %d, n_layers %d, n_heads %d, "
                                             "n_kv_heads %d, d_ff %d, max_seq %d)", c->vocab, c->d_model, c->n_layers, c->n_heads,
                        c->n_kv_heads, c->d_ff, c->max_seq);
    if (c->d_model % c->n_heads) return ds__fail(err, DS_ERR_INVALID, "config: n_heads %d does not divide d_model %d", c->n_heads, c->d_model);
    if ((c->d_model / c->n_heads) % 2) return ds__fail(err, DS_ERR_INVALID, "config: the head size %d is odd (RoPE rotates pairs of halves)", c->d_model / c->n_heads);
    if (c->n_heads % c->n_kv_heads) return ds__fail(err, DS_ERR_INVALID, "config: n_kv_heads %d does not divide n_heads %d", c->n_kv_heads, c->n_heads);
    if (!(c->rope_theta > 1) || !(c->norm_eps > 0) || !(c->init_std > 0))
        return ds__fail(err, DS_ERR_INVALID, "config: rope_theta must exceed 1, norm_eps and init_std must be positive");
    if (c->d_model > (1 << 20) || c->d_ff > (1 << 22) || c->vocab > (1 << 24) || c->n_layers > 4096 || c->max_seq > (1 << 22))
        return ds__fail(err, DS_ERR_INVALID, "config: a size is beyond what this implementation indexes");
    { /* ds_config_n_params, every product and sum checked; then params, grads and two moments */
        size_t D = (size_t)c->d_model, hd = D / (size_t)c->n_heads, layer, total;
        layer = ds__mul(ds__mul(D, hd, &ok), 2 * (size_t)c->n_heads + 2 * (size_t)c->n_kv_heads, &ok);
        layer = ds__add(layer, ds__add(ds__mul(3 * D, (size_t)c->d_ff, &ok), 2 * D, &ok), &ok);
        total = ds__add(ds__mul(2 * (size_t)c->vocab, D, &ok), D, &ok);
        total = ds__add(total, ds__mul((size_t)c->n_layers, layer, &ok), &ok);
        n = ds__mul(total, 4 * sizeof(ds_float), &ok);
    }
    if (!ok || !n) return ds__fail(err, DS_ERR_INVALID, "config: the parameter count overflows size_t");
    return DS_OK;
}

/* ============================================================================================
   §2.2 The op layer: one _forward/_backward pair per op, on raw pointers with explicit sizes
   Each op is a pair of free functions ds__X_forward(ds__exec *ex, ...) / ds__X_backward(ex, ...)
   that runs on the execution context's pool and memory; the model below is a list of calls to
   them. The ops: embedding, rmsnorm, linear (with an accumulate flag), residual, rope,
   attention (training) and kv_store + attention_decode (decoding), swiglu, crossentropy,
   adamw_update; the helpers copy, zero, to_host, from_host, loss_sum, sqnorm.
   Dimension legend: B batch, T time, N = B*T rows, D d_model, H heads, KV kv heads, hd head
   size, F d_ff, V vocab, Q = (H + 2 KV) * hd (the fused q|k|v row), S max_seq.
   Conventions: parameter gradients accumulate (+=), so gradient accumulation is free; an
   activation gradient is written unless the op has an accumulate flag and it is set. Every
   parallel loop splits outputs, never a reduction, so every result is bit-identical for any
   number of threads. First the math and the matmul tile the ops share.
   ============================================================================================ */

/* AdamW on element i in PyTorch's order of operations (torch.optim.AdamW): clip, decoupled
   decay, the moments, the bias-corrected step. Both backends' update is this one line; the CPU's
   runs it on vectors of elements (p, g, m, v arrays of one ds__vec, SQRT ds__vsqrt) where it can. */
#define DS__ADAMW_ELEMENT(TYPE, p, g, m, v, i, decay, b1, b2, step, bc2s, eps, clip, SQRT)      \
    do {                                                                                      \
        TYPE gi_ = (g)[i] * (clip);                                                           \
        (p)[i] *= (decay);                                                                    \
        (m)[i] = (m)[i] * (b1) + gi_ * (1 - (b1));                                            \
        (v)[i] = (v)[i] * (b2) + gi_ * gi_ * (1 - (b2));                                      \
        (p)[i] -= (step) * (m)[i] / (SQRT((v)[i]) / (bc2s) + (eps));                          \
    } while (0)

/* a bf16 value widened to float: the 16 bits are the float's top half (exact) */
static ds_float ds__bf16_value(uint16_t b) { uint32_t u = (uint32_t)b << 16; float f; memcpy(&f, &u, 4); return (ds_float)f; }
#define DS__PREFILL_ROWS 64 /* prompt positions per batched forward of a BF16 model (ds__prefill_bf16) */

#ifdef DS_CUDA
/* The CUDA backend: deepseek_cuda.cuh implements ds__exec and every op below with the same
   signatures (see its banner); the model after this section is the same source for both. */
#ifdef __cplusplus
}
#endif
#include "deepseek_cuda.cuh"
#ifdef __cplusplus
extern "C" {
#endif
#else /* the CPU backend */

#ifdef DS__SHARE
/* part t's walk through n pieces (above): its own share [i, e) upwards, then each other part's
   downwards from its end; ds__steal_next returns the next piece it claims, or n when none is left */
typedef struct ds__steal {
    size_t n, i, e;
    int parts, t, u;
} ds__steal;
static void ds__steal_init(ds__steal *w, size_t n, int parts, int t) {
    w->n = n, w->parts = parts, w->t = w->u = t;
    ds__chunk(n, parts, t, &w->i, &w->e);
}
static size_t ds__steal_next(ds__steal *w, unsigned char *claim) {
    for (;;) {
        while (w->i < w->e) {
            size_t k = w->u == w->t ? w->i++ : --w->e;
            if (!__atomic_exchange_n(claim + k, (unsigned char)1, __ATOMIC_ACQ_REL)) return k;
        }
        w->u = (w->u + 1) % w->parts;
        if (w->u == w->t) return w->n;
        ds__chunk(w->n, w->parts, w->u, &w->i, &w->e);
    }
}
typedef struct ds__share {
    void (*fn)(void *ctx, size_t begin, size_t end);
    void *ctx;
    size_t n;
    int parts;
    unsigned char *claim;
} ds__share;
static void ds__share_task(void *ctx, size_t t0, size_t t1) { /* task t: part t's walk */
    ds__share *s = (ds__share *)ctx;
    size_t t, k;
    for (t = t0; t < t1; t++) {
        ds__steal w;
        ds__steal_init(&w, s->n, s->parts, (int)t);
        while ((k = ds__steal_next(&w, s->claim)) < s->n) s->fn(s->ctx, k, k + 1);
    }
}
#endif
/* ds_pool_for with shared items (DS__SHARE, above), for tasks of a few dozen costly items whose
   results do not depend on how they are split */
static void ds__pool_share(ds_pool *p, size_t n, void (*fn)(void *ctx, size_t begin, size_t end), void *ctx) {
#ifdef DS__SHARE
    int th = ds_pool_threads(p);
    if (th > 1 && n >= (size_t)th * DS__SHARE && n <= DS__SHARE_MAX) {
        unsigned char claim[DS__SHARE_MAX];
        ds__share s;
        memset(claim, 0, n);
        s.fn = fn, s.ctx = ctx, s.n = n, s.parts = th, s.claim = claim;
        ds_pool_for(p, (size_t)th, ds__share_task, &s);
        return;
    }
#endif
    ds_pool_for(p, n, fn, ctx);
}

/* DS__WIDE: the elementwise ops below (RMSNorm, RoPE, SwiGLU, the softmaxes, AdamW) are plain
   loops that the compiler vectorizes. On Intel CPUs with AVX-512 GCC's tuning prefers 256-bit
   vectors, so those loops ran 8 floats an instruction while the matmul tile, written in vectors,
   runs 16. These loops are bound by their arithmetic (the exp, the divisions) as much as by
   memory, and the core already runs 512-bit code for the tile: on a thread's share of tiny's
   SwiGLU ([1024, 352], one thread, Intel Xeon, five alternating runs, best of 50 calls each) the
   forward took 368-388 us at 512 bits against 465-509, the backward 480-517 against 609-672. The
   attribute applies where the function is compiled on its own: the ops run through the pool's
   function pointer, never inlined into a caller that has the default. The same operations on each
   element, whatever the width: no result changes (a reduction loop is not vectorized without
   reassociation, at either width). Clang has no such target attribute; its default width stays. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8 && defined(__AVX512F__) && !defined(DS_NO_SIMD)
#define DS__WIDE __attribute__((target("prefer-vector-width=512")))
#else
#define DS__WIDE
#endif
#ifdef DS_DOUBLE
#define DS__EXP exp
#define DS__LOG log
#define DS__SQRT sqrt
#else
/* exp for float, branch-free so that loops over it vectorize (libm's expf is a scalar call):
   e^x = 2^n e^r with n = round(x log2 e), |r| <= ln2/2, e^r by Cephes' degree-6 polynomial,
   2^n built in the exponent bits. Within 1 ulp of expf on [-87.3, 88.3]; clamped outside;
   NaN in, NaN out. Always inlined: a loop that calls it and does nothing else vectorizes (the
   cross-entropy keeps its exps and their sums in separate loops for that reason, the sums in
   ds__vsum_n's fixed order; the exps run a vector at a time, 16 with AVX-512: see DS__WIDE).
   Attention's rows use the same steps written in vectors (ds__vexpf). */
#if defined(__GNUC__) || defined(__clang__)
#define DS__ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define DS__ALWAYS_INLINE
#endif
/* c ? a : b on the bits: no float operation under a condition. GCC moves arithmetic into the arms
   of a float ?: (the clamp's result times a constant became a multiply in one arm), and under its
   default -ftrapping-math it vectorizes a loop with a float operation in an arm only with
   AVX-512's masks: with AVX2 no loop of exps vectorized (SwiGLU's two passes took 15% of a tiny
   step on a Zen 3, the cross-entropy's and the softmax tails' exps ran one at a time). */
static DS__ALWAYS_INLINE float ds__fsel(int c, float a, float b) {
    uint32_t m = (uint32_t)0 - (uint32_t)(c != 0), ab, bb;
    memcpy(&ab, &a, sizeof ab), memcpy(&bb, &b, sizeof bb);
    ab = (ab & m) | (bb & ~m);
    memcpy(&a, &ab, sizeof a);
    return a;
}
static DS__ALWAYS_INLINE float ds__expf(float x) {
    float n, r, p, y;
    int32_t e;
    y = ds__fsel(x == x, x, 0.0f); /* NaN: compute on 0, return NaN below (no UB converting it) */
    y = ds__fsel(y < -87.3f, -87.3f, y);
    y = ds__fsel(y > 88.3f, 88.3f, y); /* keeps 2^n a normal float: n <= 127 */
    n = (y * 1.44269504f + 12582912.0f) - 12582912.0f; /* round to nearest: add and drop 1.5 * 2^23 */
    r = y - n * 0.693359375f + n * 2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    e = ((int32_t)n + 127) << 23;
    memcpy(&n, &e, sizeof n);
    return ds__fsel(x == x, p * n, x);
}
#define DS__EXP ds__expf
#define DS__LOG logf
#define DS__SQRT sqrtf
#endif

/* ---- matmul: C[M,N] (+)= A[M,K] B[K,N], A read through strides (sam, sak) ----------------
   The register tile is MR = 4 rows by NR columns: each k broadcasts 4 values of A and streams
   one row of B, and the 4 x NR accumulators live in vector registers for the whole k loop (16
   zmm registers with AVX-512: NR = 64 floats). GCC and clang get that tile written with their
   vector extensions; any other compiler gets the same loop in plain C. Work is split over tiles
   of MR rows, so each output element is computed by the same code whatever the number of
   threads: results are bit-identical for 1, 2 or 64 threads. */

#ifdef DS__SIMD
static ds__vec ds__vload(const ds_float *p) { ds__vec v; memcpy(&v, p, sizeof v); return v; }
static void ds__vstore(ds_float *p, ds__vec v) { memcpy(p, &v, sizeof v); }
/* VL bf16 weights widened to floats (a bf16 value is the top half of a float32: exact) */
#if defined(DS__SIMD) && !defined(DS_DOUBLE)
typedef uint16_t ds__hvec __attribute__((vector_size(DS__VB / 2)));
typedef uint32_t ds__uvec __attribute__((vector_size(DS__VB)));
/* The widening is one shuffle: the bf16 values interleaved with zeros, as 16-bit lanes, are the
   floats' bits (each value's low half zero). GCC 12 lowers the 16-lane convert-and-shift (the
   #else) for AVX-512 into two 8-lane converts, an extract, an insert and the shift; the shuffle
   compiles to one vpermi2w. Same bits. Measured on an AMD EPYC Zen 4, 15M shape, one thread, 5
   interleaved pairs: 620-677 tokens/s against 523-571; the 110M and GQA shapes, bound by memory,
   unchanged. With AVX2 (8 lanes) GCC split the convert the same way (five instructions); the
   shuffle is two unpacks and a lane permute: an -mavx2 build on the same Zen 4, 4 pairs,
   539-565 against 490-521 (not measured on an AVX2-only CPU). clang compiles the convert to one
   widening load, so it keeps it. */
#if (DS__VB == 64 || DS__VB == 32) && (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__) && \
    defined(__has_builtin) /* x86: little-endian, so a float's low half is its first 16-bit lane */
#if __has_builtin(__builtin_shufflevector)
#define DS__BLOAD_SHUF 1
#endif
#endif
#ifdef DS__BLOAD_SHUF
typedef uint16_t ds__wvec __attribute__((vector_size(DS__VB)));
static DS__ALWAYS_INLINE ds__vec ds__bload(const uint16_t *p) {
    ds__hvec h, z = {0};
    ds__wvec w;
    ds__vec v;
    memcpy(&h, p, sizeof h);
#if DS__VB == 64
    w = __builtin_shufflevector(z, h, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30,
                                15, 31);
#else
    w = __builtin_shufflevector(z, h, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
#endif
    memcpy(&v, &w, sizeof v);
    return v;
}
#else
static ds__vec ds__bload(const uint16_t *p) {
    ds__hvec h;
    ds__uvec u;
    ds__vec v;
    memcpy(&h, p, sizeof h);
    u = __builtin_convertvector(h, ds__uvec) << 16;
    memcpy(&v, &u, sizeof v);
    return v;
}
#endif
#define DS__BF16_SIMD 1
#endif
/* A vector's square roots, correctly rounded as sqrtf's. GCC and clang do not vectorize a loop
   that calls sqrtf unless errno is off (-fno-math-errno: sqrtf of a negative sets it), so AdamW's
   update ran one element at a time; on x86 the instruction is named here. Elsewhere AdamW keeps
   its scalar loop. */
#if !defined(DS_DOUBLE) && (defined(__x86_64__) || defined(__i386__))
#if defined(__AVX__)
#define DS__VSQRT 1
static ds__vec ds__vsqrt(ds__vec x) {
    ds__vec r;
    __asm__("vsqrtps %1, %0" : "=v"(r) : "v"(x));
    return r;
}
#elif defined(__SSE__) && DS__VB == 16
#define DS__VSQRT 1
static ds__vec ds__vsqrt(ds__vec x) {
    ds__vec r;
    __asm__("sqrtps %1, %0" : "=x"(r) : "x"(x));
    return r;
}
#endif
#endif
/* A VL x VL block transposed in registers (packing a weight's strip, ds__mm_pack_t): log2(VL)
   rounds of the perfect shuffle, row 2i <- the low halves of rows i and i + VL/2 interleaved, row
   2i + 1 <- their high halves. 0.3 cycles a float against 1.1 for the scalar copy (Zen 5, from
   L2). Needs __builtin_shufflevector (clang; GCC 12 and later); else the scalar copy. */
#ifdef DS_DOUBLE
#define DS__VLANES (DS__VB / 8)
#else
#define DS__VLANES (DS__VB / 4)
#endif
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define DS__SHUF 1
#endif
#endif
#ifdef DS__SHUF
/* LO/HI interleave the low/high halves of two vectors one lane at a time; PAIR_LO/HI two lanes
   at a time (the second round of the 4-row panel packing, ds__mm_pack_panel) */
#if DS__VLANES == 16
#define DS__SHUF_LO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define DS__SHUF_HI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#define DS__PAIR_LO 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23
#define DS__PAIR_HI 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31
#elif DS__VLANES == 8
#define DS__SHUF_LO 0, 8, 1, 9, 2, 10, 3, 11
#define DS__SHUF_HI 4, 12, 5, 13, 6, 14, 7, 15
#define DS__PAIR_LO 0, 1, 8, 9, 2, 3, 10, 11
#define DS__PAIR_HI 4, 5, 12, 13, 6, 7, 14, 15
#elif DS__VLANES == 4
#define DS__SHUF_LO 0, 4, 1, 5
#define DS__SHUF_HI 2, 6, 3, 7
#define DS__PAIR_LO 0, 1, 4, 5
#define DS__PAIR_HI 2, 3, 6, 7
#elif DS__VLANES == 2
#define DS__SHUF_LO 0, 2
#define DS__SHUF_HI 1, 3
#else
#undef DS__SHUF
#endif
#endif
#ifdef DS__SHUF
static void ds__vtranspose(ds__vec *r) {
    ds__vec t[DS__VLANES];
    int round, i;
    for (round = 1; round < DS__VLANES; round *= 2) {
        for (i = 0; i < DS__VLANES / 2; i++) {
            t[2 * i] = __builtin_shufflevector(r[i], r[i + DS__VLANES / 2], DS__SHUF_LO);
            t[2 * i + 1] = __builtin_shufflevector(r[i], r[i + DS__VLANES / 2], DS__SHUF_HI);
        }
        for (i = 0; i < DS__VLANES; i++) r[i] = t[i];
    }
}
#endif
#endif

typedef struct ds__mm {
    ds_float *C;
    const ds_float *A, *B;
    size_t M, N, K, sam, sak, ldb, ldc;
    int accumulate;
    int packed; /* B holds just the current strip: its column 0 is column n */
    int bt;     /* B is given as stored by PyTorch's Linear, B^T [N, K] with row stride ldb: B[k][n] = B[n * ldb + k] */
    ds_float *const *pack; /* the blocked path (ds__mm_blocked_task): each part's packed A buffer */
    size_t mc, tiles;      /* its row block; the MR-row tiles split into `parts` */
    int parts;
    /* attention's causal products (ds__mm_causal; ds__mm_task only): 0, or which k's of row i
       of A can be nonzero: 1: k < zoff + i + 1 (the rest of the row is zero); 2: k >= i - zoff */
    int zeros;
    size_t zoff;
#ifdef DS__SHARE
    unsigned char *claim; /* the blocked path's shared bands (ds__mm_blocked_task): their flags, rows, count, the stage */
    size_t band, nbands, jc, je, kc0;
#endif
} ds__mm;

#ifdef DS__SIMD
#if DS__NV == 3
/* 4 rows x 3 vectors (16-register targets) */
static void ds__mm_tile(const ds__mm *g, size_t m, size_t n) {
    const ds_float *A = g->A + m * g->sam, *B = g->B + (g->packed ? 0 : n);
    ds_float *C = g->C + m * g->ldc + n;
    size_t k, sam = g->sam, sak = g->sak, ldb = g->ldb, ldc = g->ldc;
    ds__vec c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32;
    if (g->accumulate) {
        c00 = ds__vload(C), c01 = ds__vload(C + DS__VL), c02 = ds__vload(C + 2 * DS__VL);
        c10 = ds__vload(C + ldc), c11 = ds__vload(C + ldc + DS__VL), c12 = ds__vload(C + ldc + 2 * DS__VL);
        c20 = ds__vload(C + 2 * ldc), c21 = ds__vload(C + 2 * ldc + DS__VL), c22 = ds__vload(C + 2 * ldc + 2 * DS__VL);
        c30 = ds__vload(C + 3 * ldc), c31 = ds__vload(C + 3 * ldc + DS__VL), c32 = ds__vload(C + 3 * ldc + 2 * DS__VL);
    } else {
        ds__vec z = {0};
        c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = z;
    }
    for (k = 0; k < g->K; k++) {
        const ds_float *b = B + k * ldb;
        ds__vec b0 = ds__vload(b), b1 = ds__vload(b + DS__VL), b2 = ds__vload(b + 2 * DS__VL);
        ds_float a0 = A[k * sak], a1 = A[sam + k * sak], a2 = A[2 * sam + k * sak], a3 = A[3 * sam + k * sak];
#if defined(__x86_64__) || defined(__i386__)
        __asm__("" : "+v"(b0), "+v"(b1), "+v"(b2)); /* B in registers, as in the 4 x 4 tile */
#endif
        c00 += a0 * b0, c01 += a0 * b1, c02 += a0 * b2;
        c10 += a1 * b0, c11 += a1 * b1, c12 += a1 * b2;
        c20 += a2 * b0, c21 += a2 * b1, c22 += a2 * b2;
        c30 += a3 * b0, c31 += a3 * b1, c32 += a3 * b2;
    }
    ds__vstore(C, c00), ds__vstore(C + DS__VL, c01), ds__vstore(C + 2 * DS__VL, c02);
    C += ldc;
    ds__vstore(C, c10), ds__vstore(C + DS__VL, c11), ds__vstore(C + 2 * DS__VL, c12);
    C += ldc;
    ds__vstore(C, c20), ds__vstore(C + DS__VL, c21), ds__vstore(C + 2 * DS__VL, c22);
    C += ldc;
    ds__vstore(C, c30), ds__vstore(C + DS__VL, c31), ds__vstore(C + 2 * DS__VL, c32);
}
#else
/* 4 rows x 4 vectors */
static void ds__mm_tile(const ds__mm *g, size_t m, size_t n) {
    const ds_float *A = g->A + m * g->sam, *B = g->B + (g->packed ? 0 : n);
    ds_float *C = g->C + m * g->ldc + n;
    size_t k, sam = g->sam, sak = g->sak, ldb = g->ldb, ldc = g->ldc;
    ds__vec c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
    if (g->accumulate) {
        c00 = ds__vload(C), c01 = ds__vload(C + DS__VL), c02 = ds__vload(C + 2 * DS__VL), c03 = ds__vload(C + 3 * DS__VL);
        c10 = ds__vload(C + ldc), c11 = ds__vload(C + ldc + DS__VL), c12 = ds__vload(C + ldc + 2 * DS__VL), c13 = ds__vload(C + ldc + 3 * DS__VL);
        c20 = ds__vload(C + 2 * ldc), c21 = ds__vload(C + 2 * ldc + DS__VL), c22 = ds__vload(C + 2 * ldc + 2 * DS__VL);
        c23 = ds__vload(C + 2 * ldc + 3 * DS__VL);
        c30 = ds__vload(C + 3 * ldc), c31 = ds__vload(C + 3 * ldc + DS__VL), c32 = ds__vload(C + 3 * ldc + 2 * DS__VL);
        c33 = ds__vload(C + 3 * ldc + 3 * DS__VL);
    } else {
        ds__vec z = {0};
        c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = z;
    }
    for (k = 0; k < g->K; k++) {
        const ds_float *b = B + k * ldb;
        ds__vec b0 = ds__vload(b), b1 = ds__vload(b + DS__VL), b2 = ds__vload(b + 2 * DS__VL), b3 = ds__vload(b + 3 * DS__VL);
        ds_float a0 = A[k * sak], a1 = A[sam + k * sak], a2 = A[2 * sam + k * sak], a3 = A[3 * sam + k * sak];
#if defined(__x86_64__) || defined(__i386__)
        /* keep b0..b3 in registers: otherwise the compiler folds each load into its four FMAs
           and the loop becomes bound by the load ports (20 loads per 16 FMAs instead of 8) */
        __asm__("" : "+v"(b0), "+v"(b1), "+v"(b2), "+v"(b3));
#endif
        c00 += a0 * b0, c01 += a0 * b1, c02 += a0 * b2, c03 += a0 * b3;
        c10 += a1 * b0, c11 += a1 * b1, c12 += a1 * b2, c13 += a1 * b3;
        c20 += a2 * b0, c21 += a2 * b1, c22 += a2 * b2, c23 += a2 * b3;
        c30 += a3 * b0, c31 += a3 * b1, c32 += a3 * b2, c33 += a3 * b3;
    }
    ds__vstore(C, c00), ds__vstore(C + DS__VL, c01), ds__vstore(C + 2 * DS__VL, c02), ds__vstore(C + 3 * DS__VL, c03);
    C += ldc;
    ds__vstore(C, c10), ds__vstore(C + DS__VL, c11), ds__vstore(C + 2 * DS__VL, c12), ds__vstore(C + 3 * DS__VL, c13);
    C += ldc;
    ds__vstore(C, c20), ds__vstore(C + DS__VL, c21), ds__vstore(C + 2 * DS__VL, c22), ds__vstore(C + 3 * DS__VL, c23);
    C += ldc;
    ds__vstore(C, c30), ds__vstore(C + DS__VL, c31), ds__vstore(C + 2 * DS__VL, c32), ds__vstore(C + 3 * DS__VL, c33);
}
#endif
#if DS__NV == 3
/* 3 rows x 4 vectors (16-register targets), for a strip 32 wide read in place: attention's
   products at head size 32 (P V, dS K, dS^T Q, P^T dY) and the last 32 columns of the others
   (ds__mm_task). There the 4 x 3 tile does not fit and two 4 x 2 tiles have 8 accumulators for 8
   FMAs a k with 6 loads; this one has 12 for 12 with 7 (the 4 x 3 tile's ratio): 3 broadcasts held,
   each vector of B loaded once and used by the 3 rows. The same FMAs for each element, in the
   same order: the same bits as the other tiles. */
static void ds__mm_tile3x4(const ds__mm *g, size_t m, size_t n) {
    const ds_float *A = g->A + m * g->sam, *B = g->B + n;
    ds_float *C = g->C + m * g->ldc + n;
    size_t k, r, v, sam = g->sam, sak = g->sak, ldb = g->ldb, ldc = g->ldc;
    ds__vec c0[4], c1[4], c2[4];
    for (v = 0; v < 4; v++) {
        if (g->accumulate) c0[v] = ds__vload(C + v * DS__VL), c1[v] = ds__vload(C + ldc + v * DS__VL), c2[v] = ds__vload(C + 2 * ldc + v * DS__VL);
        else { ds__vec z = {0}; c0[v] = c1[v] = c2[v] = z; }
    }
    for (k = 0; k < g->K; k++) {
        const ds_float *b = B + k * ldb;
        ds_float a0 = A[k * sak], a1 = A[sam + k * sak], a2 = A[2 * sam + k * sak];
        for (v = 0; v < 4; v++) {
            ds__vec bv = ds__vload(b + v * DS__VL);
#if defined(__x86_64__) || defined(__i386__)
            __asm__("" : "+v"(bv)); /* one load of each vector, used by the 3 rows */
#endif
            c0[v] += a0 * bv, c1[v] += a1 * bv, c2[v] += a2 * bv;
        }
    }
    for (r = 0; r < 3; r++)
        for (v = 0; v < 4; v++) ds__vstore(C + r * ldc + v * DS__VL, r == 0 ? c0[v] : r == 1 ? c1[v] : c2[v]);
}
#endif
/* 4 rows x 2 vectors: a remainder two vectors wide (32 floats with AVX-512: head size 32 in
   attention's products; 16 with AVX2: the last strips of ds__mm_nr) */
static void ds__mm_tile2(const ds__mm *g, size_t m, size_t n) {
    const ds_float *A = g->A + m * g->sam, *B = g->B + n;
    ds_float *C = g->C + m * g->ldc + n;
    size_t k, sam = g->sam, sak = g->sak, ldb = g->ldb, ldc = g->ldc;
    ds__vec c00, c01, c10, c11, c20, c21, c30, c31;
    if (g->accumulate) {
        c00 = ds__vload(C), c01 = ds__vload(C + DS__VL), c10 = ds__vload(C + ldc), c11 = ds__vload(C + ldc + DS__VL);
        c20 = ds__vload(C + 2 * ldc), c21 = ds__vload(C + 2 * ldc + DS__VL), c30 = ds__vload(C + 3 * ldc);
        c31 = ds__vload(C + 3 * ldc + DS__VL);
    } else {
        ds__vec z = {0};
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = z;
    }
    for (k = 0; k < g->K; k++) {
        ds__vec b0 = ds__vload(B + k * ldb), b1 = ds__vload(B + k * ldb + DS__VL);
        ds_float a0 = A[k * sak], a1 = A[sam + k * sak], a2 = A[2 * sam + k * sak], a3 = A[3 * sam + k * sak];
#if defined(__x86_64__) || defined(__i386__)
        __asm__("" : "+v"(b0), "+v"(b1));
#endif
        c00 += a0 * b0, c01 += a0 * b1, c10 += a1 * b0, c11 += a1 * b1;
        c20 += a2 * b0, c21 += a2 * b1, c30 += a3 * b0, c31 += a3 * b1;
    }
    ds__vstore(C, c00), ds__vstore(C + DS__VL, c01);
    ds__vstore(C + ldc, c10), ds__vstore(C + ldc + DS__VL, c11);
    ds__vstore(C + 2 * ldc, c20), ds__vstore(C + 2 * ldc + DS__VL, c21);
    ds__vstore(C + 3 * ldc, c30), ds__vstore(C + 3 * ldc + DS__VL, c31);
}
#if DS__NV == 4
/* 8 rows x 2 vectors, for products exactly 32 columns wide (attention's P V, dS K, dS^T Q, P^T dY
   at head size 32): 16 accumulators, 10 loads per 16 FMAs where two 4 x 2 tiles take 12 per 16,
   and enough independent chains to keep both FMA pipes busy. Each element's FMAs are those of
   ds__mm_tile2, in the same order: the same bits. Needs 19 vector registers (not on AVX2). Rows
   4-7 start `half` floats after row 0: 4 sam where A is given by rows, the next panel (4 KC)
   where it is packed in panels (ds__mm_blocked_task). */
static void ds__mm_tile2x8(const ds__mm *g, size_t m, size_t n, size_t half) {
    const ds_float *A = g->A + m * g->sam, *B = g->B + n;
    ds_float *C = g->C + m * g->ldc + n;
    size_t k, r, sam = g->sam, sak = g->sak, ldb = g->ldb, ldc = g->ldc;
    ds__vec c0[8], c1[8];
    for (r = 0; r < 8; r++) {
        if (g->accumulate) c0[r] = ds__vload(C + r * ldc), c1[r] = ds__vload(C + r * ldc + DS__VL);
        else { ds__vec z = {0}; c0[r] = c1[r] = z; }
    }
    for (k = 0; k < g->K; k++) {
        ds__vec b0 = ds__vload(B + k * ldb), b1 = ds__vload(B + k * ldb + DS__VL);
#if defined(__x86_64__) || defined(__i386__)
        __asm__("" : "+v"(b0), "+v"(b1));
#endif
        for (r = 0; r < 8; r++) {
            ds_float a = A[(r / 4) * half + (r % 4) * sam + k * sak];
            c0[r] += a * b0, c1[r] += a * b1;
        }
    }
    for (r = 0; r < 8; r++) ds__vstore(C + r * ldc, c0[r]), ds__vstore(C + r * ldc + DS__VL, c1[r]);
}
#endif
/* mr <= 4 rows x one vector: the column remainder that is a whole number of vectors. Always four
   rows of FMAs, written out as in the tiles above (a row past mr reads row 0 of A and is not
   stored): GCC 12 compiled the earlier loop over r < mr, in some of its versions, into a multiply
   and a separate add, so that this edge's row 0 gave other bits than the same element computed
   elsewhere (on an AVX2 build: the strip path and the blocked path disagreed in the last bit) */
static void ds__mm_tile1(const ds__mm *g, size_t m, size_t n, size_t mr) {
    const ds_float *A0 = g->A + m * g->sam, *B = g->B + n;
    const ds_float *A1 = mr > 1 ? A0 + g->sam : A0, *A2 = mr > 2 ? A0 + 2 * g->sam : A0, *A3 = mr > 3 ? A0 + 3 * g->sam : A0;
    ds_float *C = g->C + m * g->ldc + n;
    size_t k, sak = g->sak, ldb = g->ldb, ldc = g->ldc;
    ds__vec c0, c1, c2, c3, z = {0};
    c0 = c1 = c2 = c3 = z;
    if (g->accumulate) {
        c0 = ds__vload(C);
        if (mr > 1) c1 = ds__vload(C + ldc);
        if (mr > 2) c2 = ds__vload(C + 2 * ldc);
        if (mr > 3) c3 = ds__vload(C + 3 * ldc);
    }
    for (k = 0; k < g->K; k++) {
        ds__vec b = ds__vload(B + k * ldb);
#if defined(__x86_64__) || defined(__i386__)
        __asm__("" : "+v"(b));
#endif
        c0 += A0[k * sak] * b, c1 += A1[k * sak] * b, c2 += A2[k * sak] * b, c3 += A3[k * sak] * b;
    }
    ds__vstore(C, c0);
    if (mr > 1) ds__vstore(C + ldc, c1);
    if (mr > 2) ds__vstore(C + 2 * ldc, c2);
    if (mr > 3) ds__vstore(C + 3 * ldc, c3);
}
#else
static void ds__mm_tile(const ds__mm *g, size_t m, size_t n) {
    ds_float acc[DS__MR][DS__NR];
    const ds_float *A = g->A + m * g->sam, *B = g->B + (g->packed ? 0 : n);
    ds_float *C = g->C + m * g->ldc + n;
    size_t k, sam = g->sam, sak = g->sak, ldb = g->ldb, ldc = g->ldc;
    int r, j;
    for (r = 0; r < DS__MR; r++)
        for (j = 0; j < DS__NR; j++) acc[r][j] = g->accumulate ? C[r * ldc + j] : 0;
    for (k = 0; k < g->K; k++) {
        const ds_float *b = B + k * ldb;
        ds_float a0 = A[k * sak], a1 = A[sam + k * sak], a2 = A[2 * sam + k * sak], a3 = A[3 * sam + k * sak];
        for (j = 0; j < DS__NR; j++) {
            acc[0][j] += a0 * b[j];
            acc[1][j] += a1 * b[j];
            acc[2][j] += a2 * b[j];
            acc[3][j] += a3 * b[j];
        }
    }
    for (r = 0; r < DS__MR; r++)
        for (j = 0; j < DS__NR; j++) C[r * ldc + j] = acc[r][j];
}
#endif

/* the rest: mr x nr with mr <= MR, nr <= NR, the same summation order (k ascending) */
static void ds__mm_edge(const ds__mm *g, size_t m, size_t n, size_t mr, size_t nr) {
    size_t r, j, k;
#ifdef DS__SIMD
    if (mr == DS__MR)
        for (; nr >= 2 * (size_t)DS__VL; n += 2 * DS__VL, nr -= 2 * DS__VL) ds__mm_tile2(g, m, n);
    for (; nr >= (size_t)DS__VL; n += DS__VL, nr -= DS__VL) ds__mm_tile1(g, m, n, mr);
#endif
    if (nr == 0) return; /* (a strip of whole vectors: no rows of scalars to zero and run) */
    /* k outside, the columns inside: each element's a * b + acc is one FMA where the tiles' are
       (a dot-product loop per element would let the compiler vectorize its products and add them
       in order, unfused: other bits than a tile's, so a result would depend on where its column
       falls in the partition into tiles and edges) */
    for (r = 0; r < mr; r++) {
        const ds_float *A = g->A + (m + r) * g->sam;
        ds_float *C = g->C + (m + r) * g->ldc + n, acc[DS__NR] = {0}; /* (set below; the zeros quiet GCC -O2 -DDS_NO_SIMD) */
        for (j = 0; j < nr; j++) acc[j] = g->accumulate ? C[j] : 0;
        for (k = 0; k < g->K; k++) {
            const ds_float a = A[k * g->sak], *b = g->B + k * g->ldb + n;
            for (j = 0; j < nr; j++) acc[j] += a * b[j];
        }
        for (j = 0; j < nr; j++) C[j] = acc[j];
    }
}

/* bp[k][j] = B^T[n + j][pc + k] for j < nr, k < kb: a strip of a weight W [N, K] as stored,
   transposed into the packed block (the float weights Wf, or the bf16 ones W, widened); attention
   uses it too, for K^T and V^T */
static void ds__mm_pack_t(ds_float *bp, const ds_float *Wf, const uint16_t *W, size_t ldw, size_t n, size_t nr, size_t pc, size_t kb);
/* bp[k][j] = B[pc + k][n + j], k < kb, j < nr (row stride nr): the strip of B, from B or B^T */
static void ds__mm_pack_b(ds_float *bp, const ds__mm *g0, size_t n, size_t nr, size_t pc, size_t kb) {
    size_t k;
    if (g0->bt) { ds__mm_pack_t(bp, g0->B, NULL, g0->ldb, n, nr, pc, kb); return; }
    for (k = 0; k < kb; k++) {
        const ds_float *src = g0->B + (pc + k) * g0->ldb + n;
#ifdef DS__SIMD
        if (nr == (size_t)DS__NR) { /* NV vectors a row, copied inline (a memcpy call a row cost 4% on tiny) */
            int v;
            for (v = 0; v < DS__NV; v++) ds__vstore(bp + k * DS__NR + v * DS__VL, ds__vload(src + v * DS__VL));
            continue;
        }
#endif
        memcpy(bp + k * nr, src, nr * sizeof(ds_float));
    }
}
/* The width of the strip that starts `left` columns before the end of its block: NR, or what is
   left. With AVX2's 24-wide strips a product whose width is 8 past a multiple of 24 (128, 512,
   704: every power of two) ended in an 8-wide strip, run by the one-vector edge (4 broadcasts and
   a load for 4 FMAs: bound by its loads). Its last 32 columns (NR + VL = 4 VL) are instead one
   strip for the 3 x 4 tile where B is read in place (in_place: the strip path, B not packed), else
   two 16-wide strips for the 4 x 2 tile (the blocked path's A comes in 4-row panels). The tiles sum
   each element's k's in the same order: the same bits. */
static size_t ds__mm_nr(size_t left, int in_place) {
#if defined(DS__SIMD) && DS__NV == 3
    if (left == (size_t)DS__NR + DS__VL) return (in_place ? 4 : 2) * (size_t)DS__VL;
#else
    (void)in_place;
#endif
    return left < (size_t)DS__NR ? left : (size_t)DS__NR;
}
static void ds__mm_task(void *ctx, size_t t0, size_t t1) { /* tasks are tiles of MR rows */
    const ds__mm *g0 = (const ds__mm *)ctx;
    size_t m0 = t0 * DS__MR, m1 = t1 * DS__MR < g0->M ? t1 * DS__MR : g0->M, n, m, pc, nr, rows;
    ds_float bp[DS_MM_KC * DS__NR];
    for (n = 0; n < g0->N; n += nr) {
        nr = ds__mm_nr(g0->N - n, !g0->bt); /* (a B given transposed is packed, into NR-wide strips) */
        for (pc = 0; pc < g0->K || pc == 0; pc += DS_MM_KC) {
            /* the block k in [pc, pc + KC): every element still sums k in ascending order, with its
               running value parked in C between blocks, so the result does not depend on KC */
            ds__mm g = *g0, ge;
            g.K = g0->K - pc < DS_MM_KC ? g0->K - pc : DS_MM_KC;
            g.A = g0->A + pc * g0->sak;
            g.accumulate = g0->accumulate || pc > 0;
            if (g0->bt || (nr == (size_t)DS__NR && m1 - m0 >= 4 * DS__MR)) {
                /* pack the KC x NR strip of B contiguously (at most 32 KB): with a power-of-two row
                   stride its rows would fall into a few L1 sets and evict each other. A B given
                   transposed (a weight as stored) is always packed: its strip is transposed here,
                   one strip block at a time, instead of the whole weight into a scratch first */
                ds__mm_pack_b(bp, g0, n, nr, pc, g.K);
                g.B = bp;
                g.ldb = nr;
                g.packed = 1;
                ge = g; /* the edges read the packed block, their column n at its column 0 */
                ge.C = g.C + n;
            } else {
                g.B = g0->B + pc * g0->ldb;
                ge = g; /* the edges read B where it is */
            }
            for (m = m0; m < m1; m += rows) {
                size_t mr = m1 - m < DS__MR ? m1 - m : DS__MR;
                const ds__mm *gt = &g, *gte = &ge;
                ds__mm gz, gze;
                int eight = 0, three = 0;
#if defined(DS__SIMD) && DS__NV == 4
                eight = nr == 2 * (size_t)DS__VL && m + 2 * DS__MR <= m1; /* 8 rows of a 32-wide product */
#elif defined(DS__SIMD) && DS__NV == 3
                three = nr == 4 * (size_t)DS__VL && m + 3 <= m1; /* 3 rows of a 32-wide strip */
#endif
                rows = eight ? 2 * DS__MR : three ? 3 : mr;
                if (g0->zeros) {
                    /* the tile's k's where some row of its A is not zero: the others add exact
                       zeros (x + 0 = x for every x but -0), so leaving them out changes no sum */
                    size_t lo = pc, hi = pc + g.K;
                    if (g0->zeros == 1 && g0->zoff + m + rows < hi) hi = g0->zoff + m + rows;
                    if (g0->zeros == 2 && m > g0->zoff && m - g0->zoff > lo) lo = m - g0->zoff;
                    if (lo >= hi) {
                        size_t r;
                        if (!g.accumulate)
                            for (r = 0; r < rows; r++) memset(g.C + (m + r) * g.ldc + n, 0, nr * sizeof(ds_float));
                        continue;
                    }
                    gz = g, gze = ge;
                    gz.A += (lo - pc) * g.sak, gze.A = gz.A;
                    gz.B += (lo - pc) * g.ldb, gze.B = gz.B;
                    gz.K = gze.K = hi - lo;
                    gt = &gz, gte = &gze;
                }
#if defined(DS__SIMD) && DS__NV == 4
                if (eight) {
                    ds__mm_tile2x8(gte, m, g.packed ? 0 : n, 4 * ge.sam);
                    continue;
                }
#elif defined(DS__SIMD) && DS__NV == 3
                if (three) {
                    ds__mm_tile3x4(gt, m, n); /* (never packed: B is read in place) */
                    continue;
                }
#endif
                if (mr == DS__MR && nr == (size_t)DS__NR) ds__mm_tile(gt, m, n);
                else ds__mm_edge(gte, m, g.packed ? 0 : n, mr, nr);
            }
            if (g0->K == 0) break;
        }
    }
}

/* The blocked path, for products at least 2 strips wide with 16 rows or more a thread. The
   strip-by-strip loop above re-reads a thread's whole A (its rows x K) from memory for every
   64-column strip: from L3 when K is 512, from DRAM when K is in the thousands (a linear's
   input gradient, K = OC), and for the weight gradient A = dout^T is read down a column, one
   cache line per k. Measured alone, one thread, Zen 5: dinp 2048 x 512 x 2752 ran at 55% of the
   FMA peak, the LM head's dW at 60%. Here, as in Goto's and BLIS's GEMM:
     for each block of NC columns, for each KB k-blocks of KC (512 k's):
       for each block of mc rows, for each of those k-blocks: copy A[rows, k-block] contiguous
         (the packed A: mc x KC floats), then for each NR-column strip: the strip of B (KC x NR,
         at most 32 KB: the L1; 128 x 64 with AVX-512, 256 x 24 with AVX2) and the tiles down the
         block, reading A from the L2.
   A is read once per NC columns instead of once per 64. The row block (mc rows of packed A and
   of C, mm_mc from the L2 size) keeps the block's C in the L2 from one k-block to the next: the
   k-blocks were the outer loop, and a thread's C (its rows x NC, 4 MB for 2048 rows) came back
   from L3 on every k-block, a stall at the start of every tile (perf: half the self time of this
   loop was the C prefetch). The strips of B are packed by a thread's first row block (its first
   band, when the bands are shared: DS__SHARE) into the packed B block (KB x KC x NC, 1 MB) and
   read from there by its others; a thread with one row block packs each strip into one buffer,
   hot in L1, as before. One thread, Intel Xeon, each of the 12
   products of medium flipped every call: 11 ran 3-11% faster, one 0.97x; two threads: within
   the host's noise either way. A is packed in panels: each tile's 4 rows of a k side by
   side, its k's one after another, so a tile reads its A as one stream of 16 bytes a k. For a
   transposed A (sam = 1: dout^T) the earlier layout, the block's k-rows one after another, read
   16 bytes from a new cache line every k at a stride of kilobytes, which crosses a 4 KB page
   every k or two, where the L1's stride prefetcher stops: medium trained 3-8% faster with the
   panels (2 threads, Intel Xeon, flipped every step of one run). An A given by rows (sak = 1)
   was copied row by row (stride KC), and the tile then read four streams 512 bytes apart; in
   panels (ds__mm_pack_panel) the forward and input-gradient products of medium ran 2-8% faster
   alone (each of the 8 shapes, one and two threads, flipped every call, Intel Xeon); in training
   that is within the host's noise. A copy pays for itself over the strips that read it: a
   packed A block serves NC / NR = 8 strips. A product narrower than one column block (N < NC:
   the tiny config's 128- to 384-wide products, the small config's input gradients) has fewer
   strips to spread its copy over, so there an A given by rows is read where it is, four rows at
   their own stride: the 15 products of a tiny step ran 1.026-1.047x faster on two threads and
   1.027x on one, small's 1.017x (AMD Zen 4, flipped every call, bench/flip_products.sh); the
   wider ones keep the panels measured above (reading them in place too gave Zen 4 another ~1%,
   against the Xeon's 2-8% for the panels). The tiles and edges are the same functions
   as above with A's new strides, each element still sums k in ascending order: the same bits,
   whichever path, block size or thread count. mc (the pool's, from the L2 size) is the one
   parameter that follows the CPU; NC = 512 was the best of 256..2048 on Zen 5. Two strips are
   enough to pay for the copy: the tiny config's 128-wide products (o_proj, down_proj, the input
   gradients at C = 128 and the weight gradients of every [OC, 128] weight) took the strip path
   with a 4-strip threshold; at 2 strips tiny trained 3-5% faster on two threads and 6-9% on one
   (Intel Xeon, each threshold flipped every step of one run, three runs). */
/* The next tile's C, asked for while this tile runs. Each tile reads its 4 x 64 block of C
   before its k loop (every k-block after the first adds to it). When the k-blocks were the
   outer loop, the thread's C (its rows x NC columns, 4 MB for 2,048 rows) did not stay in the
   L2, and without this every tile started by waiting for 16 lines from L3: on an Intel Xeon
   with AMX and a 2 MB L2 (a slow mesh L3) that stall was 24% of a forward product's time (perf
   annotate, one thread). Asking one tile ahead took the linears' products from 0.76x to 0.80x
   OpenBLAS in the same run (one thread). The row blocks now keep C in the L2 between k-blocks;
   the prefetch still covers the first k-block's read and the L2's latency. Prefetches change
   no result. */
#if defined(__GNUC__) || defined(__clang__)
static void ds__mm_prefetch_c(const ds_float *C, size_t ldc, size_t rows, size_t nr) {
    size_t r, c;
    for (r = 0; r < rows; r++)
        for (c = 0; c < nr; c += 64 / sizeof(ds_float)) __builtin_prefetch(C + r * ldc + c, 1, 3);
}
#else
static void ds__mm_prefetch_c(const ds_float *C, size_t ldc, size_t rows, size_t nr) { (void)C, (void)ldc, (void)rows, (void)nr; }
#endif
/* d[4 k + r] = A[r * sam + k], r < 4, k < kb: four rows of A side by side, one k after another
   (a tile's panel). A vector of k's from each row, then two rounds of interleaving (one lane,
   then two lanes at a time) give the panel's 4 x VL floats in order, without a store per float
   (each packed float then takes part in NC multiply-adds; the k's past the last whole vector
   go one at a time). */
static void ds__mm_pack_panel(ds_float *d, const ds_float *A, size_t sam, size_t kb) {
    const ds_float *s0 = A, *s1 = A + sam, *s2 = A + 2 * sam, *s3 = A + 3 * sam;
    size_t k = 0;
#if defined(DS__SIMD) && defined(DS__SHUF) && defined(DS__PAIR_LO)
    for (; k + DS__VL <= kb; k += DS__VL) {
        ds__vec r0 = ds__vload(s0 + k), r1 = ds__vload(s1 + k), r2 = ds__vload(s2 + k), r3 = ds__vload(s3 + k);
        ds__vec a01 = __builtin_shufflevector(r0, r1, DS__SHUF_LO), b01 = __builtin_shufflevector(r0, r1, DS__SHUF_HI);
        ds__vec a23 = __builtin_shufflevector(r2, r3, DS__SHUF_LO), b23 = __builtin_shufflevector(r2, r3, DS__SHUF_HI);
        ds__vstore(d + 4 * k, __builtin_shufflevector(a01, a23, DS__PAIR_LO));
        ds__vstore(d + 4 * k + DS__VL, __builtin_shufflevector(a01, a23, DS__PAIR_HI));
        ds__vstore(d + 4 * k + 2 * DS__VL, __builtin_shufflevector(b01, b23, DS__PAIR_LO));
        ds__vstore(d + 4 * k + 3 * DS__VL, __builtin_shufflevector(b01, b23, DS__PAIR_HI));
    }
#endif
    for (; k < kb; k++) d[4 * k] = s0[k], d[4 * k + 1] = s1[k], d[4 * k + 2] = s2[k], d[4 * k + 3] = s3[k];
}
/* The row block's A, rows [mc, mc + mbf) x k's [pc, pc + kb), into panels: the tile's 4 rows of
   a k side by side, ap[(r / 4) * 4 kb + 4 k + r % 4] */
static void ds__mm_pack_a(ds_float *ap, const ds__mm *g0, size_t mc, size_t mbf, size_t pc, size_t kb) {
    size_t r, k;
    if (g0->sak == 1) {
        for (r = 0; r < mbf; r += DS__MR) ds__mm_pack_panel(ap + r * kb, g0->A + (mc + r) * g0->sam + pc, g0->sam, kb);
        return;
    }
    for (k = 0; k < kb; k++) {
        const ds_float *src = g0->A + mc * g0->sam + (pc + k) * g0->sak;
        if (g0->sam == 1 && k + 4 <= kb) { /* 4 k's at once: one 64-byte line a panel */
            size_t sk = g0->sak;
            for (r = 0; r < mbf; r += DS__MR) {
                ds_float *d = ap + r * kb + DS__MR * k;
                memcpy(d, src + r, 4 * sizeof(ds_float));
                memcpy(d + 4, src + sk + r, 4 * sizeof(ds_float));
                memcpy(d + 8, src + 2 * sk + r, 4 * sizeof(ds_float));
                memcpy(d + 12, src + 3 * sk + r, 4 * sizeof(ds_float));
            }
            k += 3;
        } else
            for (r = 0; r < mbf; r++) ap[(r / DS__MR) * DS__MR * kb + DS__MR * k + r % DS__MR] = src[r * g0->sam];
    }
}
/* the end of the column block that starts at jc: NC columns on, or N. With AVX2 a last block
   of 16 columns or fewer (512 = 504 + 8) joins the one before it: the packed B block holds
   KB x KC x (NC + 64) floats, 24 strips of 24 a k-block, and such a block has at most 22 */
static size_t ds__mm_block_end(size_t N, size_t jc, size_t nc) {
    size_t je = N - jc > nc ? jc + nc : N;
#if defined(DS__SIMD) && DS__NV == 3
    if (N - je <= 2 * (size_t)DS__VL) je = N;
#endif
    return je;
}
/* One band of the blocked path: rows [mc, mc + mb) x columns [jc, je) x the k-blocks of the
   stage [kc0, kc0 + KB KC), with the part's buffers ap (packed A) and bblk (packed B); pack_b:
   pack the stage's strips of B into bblk (the part's first band of the stage), else read them
   there; bblk NULL: one band, each strip packed into bloc, hot in L1, where it is used */
static void ds__mm_band(const ds__mm *g0, ds_float *ap, ds_float *bblk, ds_float *bloc, int pack_b, size_t jc, size_t je, size_t kc0,
                        size_t mc, size_t mb, int direct) {
    size_t pc, n, nr, m, s, mbf = mb - mb % DS__MR;
    for (pc = kc0; pc < g0->K && pc < kc0 + DS_MM_KB * DS_MM_KC; pc += DS_MM_KC) {
        size_t kb = g0->K - pc < DS_MM_KC ? g0->K - pc : DS_MM_KC, q = (pc - kc0) / DS_MM_KC;
        ds__mm ga = *g0, gr = *g0; /* the packed block's rows; the rows after its last full tile */
        if (!direct) ds__mm_pack_a(ap, g0, mc, mbf, pc, kb), ga.sam = 1, ga.sak = DS__MR, ga.A = ap;
        else ga.A = g0->A + mc * g0->sam + pc;
        ga.K = kb, ga.C = g0->C + mc * g0->ldc;
        ga.accumulate = g0->accumulate || pc > 0;
        gr.A = g0->A + pc * g0->sak, gr.K = kb, gr.accumulate = ga.accumulate;
        for (n = jc, s = 0; n < je; n += nr, s++) {
            nr = ds__mm_nr(je - n, 0);
            /* the strip of B: packed by the part's first band, kept in the B block for its
               others (one strip buffer, hot in L1, where the part has one band) */
            ds_float *bp = bblk ? bblk + (s * DS_MM_KB + q) * DS_MM_KC * DS__NR : bloc;
            ds__mm gt = ga, ge;
            if (pack_b || !bblk) ds__mm_pack_b(bp, g0, n, nr, pc, kb);
            gt.B = bp, gt.ldb = nr, gt.packed = 1;
            ge = gt, ge.C = gt.C + n; /* the edges read the packed strip at its column 0 */
            for (m = 0; m < mbf; m += DS__MR) {
                /* a tile reads A at A + m sam = A + m: its panel starts at m kb */
                if (!direct) gt.A = ge.A = ap + m * kb - m;
#if defined(DS__SIMD) && DS__NV == 4
                if (nr == 2 * (size_t)DS__VL && m + 2 * DS__MR <= mbf) { /* 8 rows of a 32-wide strip: two panels */
                    if (m + 2 * DS__MR < mbf) /* the next tile's rows, no further than the block's */
                        ds__mm_prefetch_c(ge.C + (m + 2 * DS__MR) * ge.ldc, ge.ldc,
                                          mbf - (m + 2 * DS__MR) < 2 * DS__MR ? mbf - (m + 2 * DS__MR) : 2 * DS__MR, nr);
                    ds__mm_tile2x8(&ge, m, 0, direct ? DS__MR * ge.sam : DS__MR * kb);
                    m += DS__MR;
                    continue;
                }
#endif
                if (m + DS__MR < mbf) ds__mm_prefetch_c(ge.C + (m + DS__MR) * ge.ldc, ge.ldc, DS__MR, nr);
                if (nr == (size_t)DS__NR) ds__mm_tile(&gt, m, n);
                else ds__mm_edge(&ge, m, 0, DS__MR, nr);
            }
            if (mbf < mb) {
                gr.B = bp, gr.ldb = nr, gr.packed = 1, gr.C = g0->C + n;
                ds__mm_edge(&gr, mc + mbf, 0, mb - mbf, nr);
            }
        }
    }
}
static size_t ds__mm_nc(void) { size_t nc = DS_MM_NC / DS__NR * DS__NR; return nc ? nc : DS__NR; } /* whole strips (NR = 24 with AVX2) */
static void ds__mm_blocked_task(void *ctx, size_t t0, size_t t1) { /* tasks are the parts */
    const ds__mm *g0 = (const ds__mm *)ctx;
    ds_float bloc[DS_MM_KC * DS__NR];
    size_t t, nc = ds__mm_nc();
    int direct = g0->sak == 1 && g0->N < nc; /* A by rows, narrower than a column block: read in place (above) */
    for (t = t0; t < t1; t++) {
        ds_float *ap = g0->pack[t], *bblk = ap + (g0->mc + 16) * DS_MM_KC;
        size_t b, e, m0, m1, jc, je, kc0, mc, mcb, nblk;
#ifdef DS__SHARE
        if (g0->claim) { /* the stage's bands, shared (DS__SHARE) */
            ds__steal w;
            size_t i;
            int first = 1;
            ds__steal_init(&w, g0->nbands, g0->parts, (int)t);
            while ((i = ds__steal_next(&w, g0->claim)) < g0->nbands) {
                size_t r = i * g0->band;
                ds__mm_band(g0, ap, bblk, bloc, first, g0->jc, g0->je, g0->kc0, r, g0->M - r < g0->band ? g0->M - r : g0->band, direct);
                first = 0;
            }
            continue;
        }
#endif
        ds__chunk(g0->tiles, g0->parts, (int)t, &b, &e);
        m0 = b * DS__MR, m1 = e * DS__MR < g0->M ? e * DS__MR : g0->M;
        nblk = (m1 - m0 + g0->mc - 1) / g0->mc; /* the thread's rows in nblk blocks of equal size */
        mcb = ((m1 - m0 + nblk - 1) / nblk + DS__MR - 1) / DS__MR * DS__MR;
        for (jc = 0; jc < g0->N; jc = je)
            for (je = ds__mm_block_end(g0->N, jc, nc), kc0 = 0; kc0 < g0->K; kc0 += DS_MM_KB * DS_MM_KC)
                for (mc = m0; mc < m1; mc += mcb)
                    ds__mm_band(g0, ap, nblk > 1 ? bblk : NULL, bloc, mc == m0, jc, je, kc0, mc, m1 - mc < mcb ? m1 - mc : mcb, direct);
    }
}
static void ds__matmul_g(ds_pool *pool, ds_float *C, size_t ldc, const ds_float *A, size_t sam, size_t sak, const ds_float *B,
                         size_t ldb, int bt, size_t M, size_t N, size_t K, int accumulate) {
    ds__mm g;
    g.C = C, g.A = A, g.B = B, g.M = M, g.N = N, g.K = K, g.sam = sam, g.sak = sak, g.ldb = ldb, g.ldc = ldc;
    g.accumulate = accumulate;
    g.packed = 0;
    g.bt = bt;
    g.pack = NULL;
    g.tiles = (M + DS__MR - 1) / DS__MR;
    g.zeros = 0, g.zoff = 0;
    g.parts = ds_pool_threads(pool);
#ifdef DS__SHARE
    g.claim = NULL;
#endif
    if ((size_t)g.parts > g.tiles) g.parts = (int)g.tiles;
    if (pool && pool->pack && K > 0 && N >= 2 * (size_t)DS__NR && g.parts > 0 && g.tiles / (size_t)g.parts >= 4) {
        g.pack = pool->pack, g.mc = pool->mm_mc;
        DS_ASSERT((g.mc + 16) * DS_MM_KC + DS__MM_BBLK <= pool->pack_n);
#ifdef DS__SHARE
        g.band = (M / ((size_t)g.parts * DS__SHARE) + DS__MR - 1) / DS__MR * DS__MR;
        if (g.band > g.mc) g.band = g.mc;
        g.nbands = g.band ? (M + g.band - 1) / g.band : 0;
        if (g.parts > 1 && g.nbands >= (size_t)g.parts * DS__SHARE && g.nbands <= DS__SHARE_MAX) {
            unsigned char claim[DS__SHARE_MAX];
            size_t nc = ds__mm_nc();
            g.claim = claim;
            for (g.jc = 0; g.jc < N; g.jc = g.je) /* a stage at a time: each band's k-blocks in order */
                for (g.je = ds__mm_block_end(N, g.jc, nc), g.kc0 = 0; g.kc0 < K; g.kc0 += DS_MM_KB * DS_MM_KC) {
                    memset(claim, 0, g.nbands);
                    ds_pool_for(pool, (size_t)g.parts, ds__mm_blocked_task, &g);
                }
            return;
        }
#endif
        ds_pool_for(pool, (size_t)g.parts, ds__mm_blocked_task, &g); /* part t on thread t: its own buffer */
        return;
    }
    ds_pool_for(pool, g.tiles, ds__mm_task, &g);
}
static void ds__matmul(ds_pool *pool, ds_float *C, size_t ldc, const ds_float *A, size_t sam, size_t sak, const ds_float *B,
                       size_t ldb, size_t M, size_t N, size_t K, int accumulate) {
    ds__matmul_g(pool, C, ldc, A, sam, sak, B, ldb, 0, M, N, K, accumulate);
}
/* ds__matmul on one thread, for an A with a causal band of zeros (attention's P and dS): with
   zeros 1, row i of A is zero past k = zoff + i; with zeros 2, before k = i - zoff. Each tile
   skips the k's where all its rows of A are zero; every other k is summed as ds__matmul sums it. */
static void ds__mm_causal(ds_float *C, size_t ldc, const ds_float *A, size_t sam, size_t sak, const ds_float *B, size_t ldb, size_t M,
                          size_t N, size_t K, int accumulate, int zeros, size_t zoff) {
    ds__mm g;
    memset(&g, 0, sizeof g);
    g.C = C, g.A = A, g.B = B, g.M = M, g.N = N, g.K = K, g.sam = sam, g.sak = sak, g.ldb = ldb, g.ldc = ldc;
    g.accumulate = accumulate;
    g.tiles = (M + DS__MR - 1) / DS__MR, g.parts = 1;
    g.zeros = zeros, g.zoff = zoff;
    ds__mm_task(&g, 0, g.tiles);
}

/* ---- bf16 products on the CPU (DS_PRECISION_BF16 where the CPU has AVX512_BF16) --------------
   The paper's §2.4 regime for the linears' products on a CPU: each operand rounded to bf16
   (nearest even, as the CUDA path and the BF16 checkpoints round, except that a denormal float
   counts as zero), the products summed in fp32.
   One instruction, vdpbf16ps, multiplies 16 pairs of bf16 and adds both products of a pair to a
   float lane: twice the multiply-adds of an fp32 FMA in the same time (AMD Zen 4, one thread:
   234 against 117 GFLOP/s). So a pair of k's travels together: a 32-bit word holds
   (x[k] in its low half, x[k + 1] in its high half), k even; an odd K's last word has 0 on top.
     B's strip (64 columns, KC / 2 = 256 words deep, 64 KB): bp[kk][j] = the word of
       (B[2kk][j], B[2kk + 1][j]);
     A's panel (4 rows): ap[kk][r] = the word of (A[r][2kk], A[r][2kk + 1]);
     the tile: per kk, 4 vector loads of B, 4 broadcasts of A, 16 vdpbf16ps into 4 x 4
       accumulators -- the float tile's shape at two k's an instruction.
   The loops are the blocked path's (a block of 512 columns, k-blocks of 512, row blocks of
   mm_mc / 2), each thread with its rows; the packing rounds as it copies, and each tile asks
   for the next tile's C while it runs. A tile loads and stores its C once a k-block: v0.20's
   k-block of 256 (128 words: ~2,000 cycles of vdpbf16ps) had no prefetch of it, and the loads
   came from L3 (the block's C, A and B overfill a 1 MB L2). Medium's 15 products, each variant
   flipped every call in one process (AMD Zen 4): k-blocks of 128 ran 0.85x of 256's, 512 ran
   1.11x (1 thread) and 1.10x (2 threads), 1024 the same as 512; the C prefetch another 1.04-1.08x;
   both together 1.22x (1 thread) and 1.13x (2 threads), 184 and 358 GFLOP/s (79% and 77% of
   vdpbf16ps's peak). Half the float path's row block keeps the A block within the same buffer
   (it ran at the same speed as the whole one). Each element sums its
   k's in ascending pairs, k-blocks in order, whatever the thread count: the same bits for any
   thread count, on a given CPU (how vdpbf16ps rounds inside a pair is the CPU's: an AMD and an
   Intel part may differ in the last bits). Only the linears (the batched forward and the whole
   backward) take this path; attention, the norms, the softmax and decoding (ds_generate's
   matrix-vector products) stay fp32. */
#if defined(DS__SIMD) && defined(DS__SHUF) && DS__NV == 4 && DS__VB == 64 && !defined(DS_DOUBLE) && \
    defined(__AVX512BF16__) && \
    (defined(__x86_64__) || defined(__i386__))
#define DS__BF16_DOT 1
#include <immintrin.h> /* _mm512_dpbf16_ps: the one intrinsic of the header */
/* Rounding to bf16 is vcvtne2ps2bf16's: nearest even, a NaN stays a (quiet) NaN, and a
   denormal float counts as zero (the instruction's DAZ; a normal float never rounds to a bf16
   denormal). The k's past the last whole vector round one at a time the same way. */
static uint32_t ds__bf_round1(ds_float x) { /* the bf16 in the top half */
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return u | 0x400000u;
    if ((u & 0x7F800000u) == 0) return u & 0x80000000u;
    return u + 0x7FFFu + ((u >> 16) & 1u);
}
/* the words of pairs: k even in the low half (vdpbf16ps pairs the halves positionally): both
   vectors converted into one (even's 16 bf16, then odd's), then interleaved */
static DS__ALWAYS_INLINE ds__uvec ds__bf_pair(ds__vec even, ds__vec odd) {
    static const uint16_t inter[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    __m512i w = (__m512i)_mm512_cvtne2ps_pbh((__m512)odd, (__m512)even), ix;
    memcpy(&ix, inter, sizeof ix);
    return (ds__uvec)_mm512_permutexvar_epi16(ix, w);
}
static uint32_t ds__bf_pair1(ds_float even, ds_float odd) { return (ds__bf_round1(odd) & 0xFFFF0000u) | (ds__bf_round1(even) >> 16); }
/* w[i] = the word of (x[2i], x[2i + 1]), i < ceil(n / 2) (an odd n's last: 0 on top); w is
   float storage, written through memcpy (words are bit patterns, never float values) */
static void ds__bf_row(ds_float *w, const ds_float *x, size_t n) {
    size_t i = 0;
    for (; i + 2 * DS__VL <= n; i += 2 * DS__VL) { /* 32 floats -> 32 bf16 in order: 16 words */
        __m512bh o = _mm512_cvtne2ps_pbh((__m512)ds__vload(x + i + DS__VL), (__m512)ds__vload(x + i));
        memcpy(w + i / 2, &o, sizeof o);
    }
    for (; i < n; i += 2) {
        uint32_t v = i + 1 < n ? ds__bf_pair1(x[i], x[i + 1]) : ds__bf_round1(x[i]) >> 16;
        memcpy(w + i / 2, &v, sizeof v);
    }
}
/* c + the products of a's and b's pairs, lane by lane (the compiler's builtin: with an asm
   statement GCC 12 copied a row's accumulators through other registers every k, 6 moves per 16
   products) */
static DS__ALWAYS_INLINE ds__vec ds__dpbf16(ds__vec c, ds__uvec a, ds__uvec b) { return (ds__vec)_mm512_dpbf16_ps((__m512)c, (__m512bh)a, (__m512bh)b); }
typedef struct ds__mmb {
    ds_float *C;
    const ds_float *A, *B;
    size_t M, N, K, sam, sak, ldb, ldc, mc, tiles;
    int bt, accumulate, parts;
    ds_float *const *pack;
} ds__mmb;
/* The B block of k's [pc, pc + kb) and columns [n0, n0 + nc): strip s at bp + s kp 64 words;
   columns past nc are 0 */
static void ds__mmb_pack_b(ds_float *bp, ds_float *tmp, const ds__mmb *g, size_t n0, size_t nc, size_t pc, size_t kb) {
    size_t kp = (kb + 1) / 2, s, j, kk;
    for (s = 0; s * 64 < nc; s++) {
        ds_float *d = bp + s * kp * 64;
        size_t n = n0 + s * 64, nr = nc - s * 64 < 64 ? nc - s * 64 : 64;
        if (g->bt) { /* B[k][n] = W[n][k]: each row of the weight to words, then [64][kp] transposed */
            for (j = 0; j < 64; j++) {
                if (j < nr) ds__bf_row(tmp + j * kp, g->B + (n + j) * g->ldb + pc, kb);
                else memset(tmp + j * kp, 0, kp * sizeof(ds_float));
            }
            ds__mm_pack_t(d, tmp, NULL, kp, 0, 64, 0, kp);
            continue;
        }
        for (kk = 0; kk < kp; kk++) { /* a pair of B's rows, 16 columns at a time */
            const ds_float *r0 = g->B + (pc + 2 * kk) * g->ldb + n, *r1 = r0 + g->ldb;
            int two = 2 * kk + 1 < kb;
            if (nr == 64) {
                int v;
                for (v = 0; v < 4; v++) {
                    ds__uvec w = ds__bf_pair(ds__vload(r0 + v * DS__VL), two ? ds__vload(r1 + v * DS__VL) : (ds__vec){0});
                    memcpy(d + kk * 64 + v * DS__VL, &w, sizeof w);
                }
            } else
                for (j = 0; j < 64; j++) {
                    uint32_t w = j >= nr ? 0 : two ? ds__bf_pair1(r0[j], r1[j]) : ds__bf_round1(r0[j]) >> 16;
                    memcpy(d + kk * 64 + j, &w, sizeof w);
                }
        }
    }
}
/* A's rows [m, m + mb) of k's [pc, pc + kb), in panels of 4 rows (ap + (r / 4) kp 4 words);
   rows past mb are 0 */
static void ds__mmb_pack_a(ds_float *ap, ds_float *tmp, const ds__mmb *g, size_t m, size_t mb, size_t pc, size_t kb) {
    size_t kp = (kb + 1) / 2, p, r, kk, np = (mb + 3) / 4;
    if (g->sak == 1) { /* rows (the forward's input, an input gradient's dout): each to words, 4 into a panel */
        for (p = 0; p < np; p++) {
            for (r = 0; r < 4; r++) {
                if (4 * p + r < mb) ds__bf_row(tmp + r * kp, g->A + (m + 4 * p + r) * g->sam + pc, kb);
                else memset(tmp + r * kp, 0, kp * sizeof(ds_float));
            }
            ds__mm_pack_panel(ap + p * kp * 4, tmp, kp, kp);
        }
        return;
    }
    /* columns of A^T (sam == 1: a weight gradient's dout^T): a pair from two of its rows, 16
       rows of A at a time, 4 words into each of 4 panels; the rest (and any other strides) one
       word at a time */
    for (p = 0; g->sam == 1 && p + 4 <= np && 4 * p + 16 <= mb; p += 4)
        for (kk = 0; kk < kp; kk++) {
            const ds_float *s0 = g->A + m + 4 * p + (pc + 2 * kk) * g->sak;
            ds__uvec w = ds__bf_pair(ds__vload(s0), 2 * kk + 1 < kb ? ds__vload(s0 + g->sak) : (ds__vec){0});
            ds_float f[16];
            memcpy(f, &w, sizeof w);
            for (r = 0; r < 4; r++) memcpy(ap + (p + r) * kp * 4 + kk * 4, f + 4 * r, 4 * sizeof(ds_float));
        }
    for (; p < np; p++)
        for (kk = 0; kk < kp; kk++)
            for (r = 0; r < 4; r++) {
                const ds_float *s0 = g->A + (m + 4 * p + r) * g->sam + (pc + 2 * kk) * g->sak;
                uint32_t w = 4 * p + r >= mb ? 0 : 2 * kk + 1 < kb ? ds__bf_pair1(s0[0], s0[g->sak]) : ds__bf_round1(s0[0]) >> 16;
                memcpy(ap + p * kp * 4 + kk * 4 + r, &w, sizeof w);
            }
}
/* D[4 x 64] (+)= the panel ap times the strip bp, kp words deep (D's rows ldd apart). The 16
   sums are named, not an array: GCC 12 kept an array's starting values on the stack and
   reloaded them, 32 memory operations a tile. */
#define DS__MMB_ROW(X, r) X(r, 0) X(r, 1) X(r, 2) X(r, 3)
#define DS__MMB_ALL(X) DS__MMB_ROW(X, 0) DS__MMB_ROW(X, 1) DS__MMB_ROW(X, 2) DS__MMB_ROW(X, 3)
static DS__ALWAYS_INLINE void ds__mmb_block(ds_float *D, size_t ldd, const ds_float *ap, const ds_float *bp, size_t kp, int acc) {
    size_t kk;
#define DS__MMB_INIT(r, v) ds__vec c##r##v = acc ? ds__vload(D + r * ldd + v * DS__VL) : (ds__vec){0};
    DS__MMB_ALL(DS__MMB_INIT)
#undef DS__MMB_INIT
    for (kk = 0; kk < kp; kk++) {
        ds__uvec b0, b1, b2, b3, a0, a1, a2, a3;
        uint32_t w[4];
        memcpy(&b0, bp + kk * 64, sizeof b0), memcpy(&b1, bp + kk * 64 + DS__VL, sizeof b1);
        memcpy(&b2, bp + kk * 64 + 2 * DS__VL, sizeof b2), memcpy(&b3, bp + kk * 64 + 3 * DS__VL, sizeof b3);
        memcpy(w, ap + kk * 4, sizeof w);
        a0 = (ds__uvec){0} + w[0], a1 = (ds__uvec){0} + w[1], a2 = (ds__uvec){0} + w[2], a3 = (ds__uvec){0} + w[3];
#define DS__MMB_DP(r, v) c##r##v = ds__dpbf16(c##r##v, a##r, b##v);
        DS__MMB_ALL(DS__MMB_DP)
#undef DS__MMB_DP
    }
#define DS__MMB_STORE(r, v) ds__vstore(D + r * ldd + v * DS__VL, c##r##v);
    DS__MMB_ALL(DS__MMB_STORE)
#undef DS__MMB_STORE
}
#undef DS__MMB_ALL
#undef DS__MMB_ROW
/* C[0..mr) x [0..nr) (+)= the panel ap times the strip bp, kp words deep; mr <= 4, nr <= 64; an
   edge goes through a 4 x 64 block of its own */
static DS__WIDE void ds__mmb_tile(ds_float *C, size_t ldc, const ds_float *ap, const ds_float *bp, size_t kp, size_t mr, size_t nr, int acc) {
    ds_float part[4 * 64];
    size_t r, j;
    if (mr == 4 && nr == 64) {
        ds__mmb_block(C, ldc, ap, bp, kp, acc);
        return;
    }
    memset(part, 0, sizeof part);
    if (acc)
        for (r = 0; r < mr; r++)
            for (j = 0; j < nr; j++) part[r * 64 + j] = C[r * ldc + j];
    ds__mmb_block(part, 64, ap, bp, kp, acc);
    for (r = 0; r < mr; r++)
        for (j = 0; j < nr; j++) C[r * ldc + j] = part[r * 64 + j];
}
static void ds__mmb_task(void *ctx, size_t t0, size_t t1) { /* tasks are the parts */
    const ds__mmb *g = (const ds__mmb *)ctx;
    size_t t;
    for (t = t0; t < t1; t++) {
        ds_float *ap = g->pack[t], *bp = ap + (g->mc + 4) * (DS__MMB_KC / 2), *tmp = bp + (DS__MMB_NC / 64) * 64 * (DS__MMB_KC / 2);
        size_t b, e, m0, m1, jc, pc, mc, s, p;
        ds__chunk(g->tiles, g->parts, (int)t, &b, &e);
        m0 = b * DS__MR, m1 = e * DS__MR < g->M ? e * DS__MR : g->M;
        for (jc = 0; jc < g->N; jc += DS__MMB_NC) {
            size_t nc = g->N - jc < DS__MMB_NC ? g->N - jc : DS__MMB_NC;
            for (pc = 0; pc < g->K; pc += DS__MMB_KC) {
                size_t kb = g->K - pc < DS__MMB_KC ? g->K - pc : DS__MMB_KC, kp = (kb + 1) / 2;
                int acc = g->accumulate || pc > 0;
                ds__mmb_pack_b(bp, tmp, g, jc, nc, pc, kb);
                for (mc = m0; mc < m1; mc += g->mc) {
                    size_t mb = m1 - mc < g->mc ? m1 - mc : g->mc;
                    ds__mmb_pack_a(ap, tmp, g, mc, mb, pc, kb);
                    for (s = 0; s * 64 < nc; s++)
                        for (p = 0; p * 4 < mb; p++) {
                            size_t nr = nc - 64 * s < 64 ? nc - 64 * s : 64;
                            if (4 * p + 4 < mb) /* the next tile's C, asked for while this one runs (as the float path does) */
                                ds__mm_prefetch_c(g->C + (mc + 4 * p + 4) * g->ldc + jc + 64 * s, g->ldc, mb - 4 * p - 4 < 4 ? mb - 4 * p - 4 : 4, nr);
                            ds__mmb_tile(g->C + (mc + 4 * p) * g->ldc + jc + 64 * s, g->ldc, ap + p * kp * 4, bp + s * kp * 64, kp,
                                         mb - 4 * p < 4 ? mb - 4 * p : 4, nr, acc);
                        }
                }
            }
        }
    }
}
/* C (+)= A B in bf16 products (ds__matmul_g's arguments); own: the buffer of a call without a pool
   (ds__mmb_buf(DS__MMB_MC) floats) */
static void ds__matmul_bf16(ds_pool *pool, ds_float *own, ds_float *C, size_t ldc, const ds_float *A, size_t sam, size_t sak, const ds_float *B,
                            size_t ldb, int bt, size_t M, size_t N, size_t K, int accumulate) {
    ds__mmb g;
    if (M == 0 || N == 0) return;
    if (K == 0) {
        size_t i;
        if (!accumulate)
            for (i = 0; i < M; i++) memset(C + i * ldc, 0, N * sizeof(ds_float));
        return;
    }
    g.C = C, g.A = A, g.B = B, g.M = M, g.N = N, g.K = K, g.sam = sam, g.sak = sak, g.ldb = ldb, g.ldc = ldc, g.bt = bt;
    g.accumulate = accumulate;
    g.tiles = (M + DS__MR - 1) / DS__MR;
    if (pool) {
        g.parts = ds_pool_threads(pool), g.pack = pool->pack, g.mc = ds__mmb_mc(pool->mm_mc);
        DS_ASSERT(ds__mmb_buf(g.mc) <= pool->pack_n); /* ds_pool_new sized them for either path */
        if ((size_t)g.parts > g.tiles) g.parts = (int)g.tiles;
    } else
        g.parts = 1, g.pack = &own, g.mc = DS__MMB_MC;
    ds_pool_for(pool, (size_t)g.parts, ds__mmb_task, &g);
}
#endif

/* ---- the execution context ------------------------------------------------------------------
   Every op takes a ds__exec: where it runs and where its memory lives. This is the backend seam:
   a second backend (the CUDA path) implements this struct and every function from here to the
   end of the op layer with the same signatures, and the model above them -- forward, backward,
   AdamW, decoding, checkpoints, SFT, DPO -- stays one source. For the CPU:
     - memory is host memory: ds__exec_alloc is the user's allocator, zeroed and touched (the
       first touch of a page is slow on some machines: it happens at ds_model_new, not in the
       first step); host_visible is 1, so the model reads and writes it directly;
     - the ops run on the pool of the current public call (ex->pool, NULL: the calling thread);
     - work is the ops' scratch (a transposed weight, attention's transposes and scores), sized
       once by ds_model_new; partial holds the deterministic reductions' per-chunk sums.
   The model owns one ds__exec; a pool is used by one call at a time (see THREADING). */
#define DS__NORM_CHUNK 16384 /* the deterministic reductions' fixed chunk */
typedef struct ds__exec {
    ds_pool *pool;
    int host_visible; /* 1: backend memory is host memory; 0: go through ds__to_host/ds__from_host */
    ds_float *work;   /* scratch, work_n values */
    size_t work_n;
    double *partial;  /* per-chunk partial sums, partial_n values */
    size_t partial_n;
    int bf16;         /* DS_PRECISION_BF16: the linears' products in bf16 (ds__matmul_bf16) */
    ds_float *bf_own; /* its buffer for a call without a pool */
} ds__exec;

/* n zeroed elements of size bytes in the backend's memory, or NULL */
static void *ds__exec_alloc(ds__exec *ex, size_t n, size_t size) {
    void *p;
    (void)ex;
    if (size && n > SIZE_MAX / size) return NULL;
    if (!(p = DS_MALLOC(n * size > 0 ? n * size : 1))) return NULL;
    ds__hugepages(p, n * size);
    memset(p, 0, n * size);
    return p;
}
static void ds__exec_free(ds__exec *ex, void *p) { (void)ex; DS_FREE(p); }
/* how many rows of logits [rows, V] a model of B T = N tokens holds at once (the classifier's
   chunk, ds__model_new). The CPU keeps them all: its memory is the machine's, and every row's
   logits stay readable after a forward (ds_model_copy_logits). */
static size_t ds__exec_logit_rows(const ds__exec *ex, size_t N, size_t V) { (void)ex, (void)V; return N; }
/* the linears' precision (ds_model_set_precision); operand_max: the largest operand of the
   model's linears, in values (a backend that rounds operands sizes its scratch to it); params,
   n_params: the model's weights (a backend may keep a rounded copy of them). The CPU rounds the
   operands as it packs them (ds__matmul_bf16), so it keeps no copy; without AVX512_BF16 in the
   build (-march) it computes in float only. */
static int ds__exec_set_precision(ds__exec *ex, int precision, size_t operand_max, const ds_float *params, size_t n_params, ds_error *err) {
    (void)operand_max, (void)params, (void)n_params;
    if (precision == DS_PRECISION_FP32) {
        ex->bf16 = 0;
        return DS_OK;
    }
#ifdef DS__BF16_DOT
    if (!ex->bf_own && !(ex->bf_own = (ds_float *)DS_MALLOC(ds__mmb_buf(DS__MMB_MC) * sizeof(ds_float)))) return DS__OOM(err);
    ex->bf16 = 1;
    return DS_OK;
#else
    (void)ex;
    return ds__fail(err, DS_ERR_UNSUPPORTED,
                    "precision: bf16 needs the CUDA build (deepseek_cuda.cuh) or a CPU build with AVX512_BF16 (-march=native on a CPU that has it)");
#endif
}
/* the activations of ds_model.lin (all but the residual stream and the statistics): the bytes a value takes in the backend's format for that precision, and where the
   model keeps them (a backend that stores them in another format than float knows them by
   their place). The CPU keeps floats. */
static size_t ds__exec_act_size(const ds__exec *ex, int precision) { (void)ex, (void)precision; return sizeof(ds_float); }
static void ds__exec_set_lin(ds__exec *ex, const void *base, size_t bytes) { (void)ex, (void)base, (void)bytes; }

/* The backend's life: init (before any allocation; a device backend finds its device here, and
   "no device" is its error), reserve (the ops' scratch for a model of config c and B x T), status
   (the first failure of an op since, as a ds_error; ops themselves return nothing), destroy. On
   the CPU nothing can fail but an allocation. */
static size_t ds__attention_work(size_t B, size_t T, size_t H, size_t KV, size_t hd);
static size_t ds__attention_saved(size_t B, size_t T, size_t H);
static int ds__exec_init(ds__exec *ex, ds_error *err) {
    (void)err;
    memset(ex, 0, sizeof *ex);
    ex->host_visible = 1;
    return DS_OK;
}
/* decode_only: a model that only decodes (BF16 inference) needs none of it up front */
static int ds__exec_reserve(ds__exec *ex, const ds_config *c, size_t B, size_t T, size_t n_params, int decode_only) {
    size_t D = (size_t)c->d_model, H = (size_t)c->n_heads, KV = (size_t)c->n_kv_heads, hd = D / H, work;
    /* attention's transposes and scores (a linear transposes its weight strip by strip, in the
       matmul's packed block), decoding's scores */
    work = ds__attention_work(B, T, H, KV, hd);
    if (decode_only) work = 1, n_params = 0;
    ex->work_n = work; /* (decoding's H * max_seq scores: grown on its first use) */
    ex->partial_n = n_params / DS__NORM_CHUNK + 1;
    ex->work = (ds_float *)ds__exec_alloc(ex, ex->work_n, sizeof(ds_float));
    ex->partial = (double *)ds__exec_alloc(ex, ex->partial_n, sizeof(double));
    return ex->work && ex->partial ? DS_OK : DS_ERR_NOMEM;
}
static int ds__exec_status(ds__exec *ex, ds_error *err) {
    (void)ex, (void)err;
    return DS_OK;
}
static void ds__exec_destroy(ds__exec *ex) {
    ds__exec_free(ex, ex->work);
    ds__exec_free(ex, ex->partial);
    DS_FREE(ex->bf_own);
    ex->work = NULL, ex->partial = NULL, ex->bf_own = NULL;
}

/* ---- helpers: copies, zeroing, host transfers ------------------------------------------------
   copy: dst[i] = src[i]   zero: p[i] = 0   to_host / from_host: bytes between backend memory and
   the host (on the CPU a memcpy, skipped when both are the same buffer). */
static void ds__copy(ds__exec *ex, ds_float *dst, const ds_float *src, size_t n) {
    (void)ex;
    if (dst != src && n) memcpy(dst, src, n * sizeof *dst);
}
static void ds__zero(ds__exec *ex, ds_float *p, size_t n) {
    (void)ex;
    if (n) memset(p, 0, n * sizeof *p);
}
static void ds__to_host(ds__exec *ex, void *host, const void *src, size_t bytes) {
    (void)ex;
    if (host != src && bytes) memcpy(host, src, bytes);
}
static void ds__from_host(ds__exec *ex, void *dst, const void *host, size_t bytes) {
    (void)ex;
    if (dst != host && bytes) memcpy(dst, host, bytes);
}

/* ---- deterministic reductions -----------------------------------------------------------------
   loss_sum: wsum = sum_n w[n], lsum = sum_n w[n] loss[n] (w NULL: 1), in double, n in order.
   sqnorm:   sum_i x[i]^2 in double: fixed chunks of DS__NORM_CHUNK summed in parallel, then the
             chunk sums in order. Neither depends on the number of threads. */
static void ds__loss_sum(ds__exec *ex, const ds_float *losses, const ds_float *w, size_t N, double *wsum, double *lsum) {
    double ws = 0, ls = 0;
    size_t n;
    (void)ex;
    for (n = 0; n < N; n++) {
        double wn = w ? (double)w[n] : 1.0;
        ws += wn;
        ls += wn * (double)losses[n];
    }
    *wsum = ws, *lsum = ls;
}
typedef struct ds__sq_ctx { const ds_float *x; size_t n; double *partial; } ds__sq_ctx;
static DS__WIDE void ds__sqnorm_task(void *ctx, size_t c0, size_t c1) {
    const ds__sq_ctx *q = (const ds__sq_ctx *)ctx;
    size_t c, i;
    for (c = c0; c < c1; c++) {
        size_t e = (c + 1) * DS__NORM_CHUNK < q->n ? (c + 1) * DS__NORM_CHUNK : q->n;
        double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s;
        int j;
        /* eight running sums (a chain of dependent adds ran at 4 cycles a value), element i into
           sum i % 8, then a fixed tree and the tail: the order depends on the chunk only */
        for (i = c * DS__NORM_CHUNK; i + 8 <= e; i += 8)
            for (j = 0; j < 8; j++) a[j] += (double)q->x[i + j] * (double)q->x[i + j];
        s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        for (; i < e; i++) s += (double)q->x[i] * (double)q->x[i];
        q->partial[c] = s;
    }
}
/* the chunk sums alone, in host memory (ex->partial): data parallelism (ds_dp) sums the chunks of
   every rank's slice in the same order, so its norm is this one, bit for bit */
static const double *ds__sqnorm_partials(ds__exec *ex, const ds_float *x, size_t n) {
    ds__sq_ctx q;
    DS_ASSERT((n + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK <= ex->partial_n);
    q.x = x, q.n = n, q.partial = ex->partial;
    ds_pool_for(ex->pool, (n + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK, ds__sqnorm_task, &q);
    return ex->partial;
}
static double ds__sqnorm(ds__exec *ex, const ds_float *x, size_t n) {
    size_t n_chunks = (n + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK, c;
    const double *part = ds__sqnorm_partials(ex, x, n);
    double s = 0;
    for (c = 0; c < n_chunks; c++) s += part[c];
    return s;
}

/* accumulate: dst[i] += src[i] (gradient accumulation across micro-batches and ranks, ds_dp) */
typedef struct ds__acc_ctx { ds_float *dst; const ds_float *src; size_t n; } ds__acc_ctx;
static DS__WIDE void ds__acc_task(void *ctx, size_t c0, size_t c1) {
    const ds__acc_ctx *a = (const ds__acc_ctx *)ctx;
    size_t i, e = c1 * DS__NORM_CHUNK < a->n ? c1 * DS__NORM_CHUNK : a->n;
    for (i = c0 * DS__NORM_CHUNK; i < e; i++) a->dst[i] += a->src[i];
}
static void ds__accumulate(ds__exec *ex, ds_float *dst, const ds_float *src, size_t n) {
    ds__acc_ctx a;
    a.dst = dst, a.src = src, a.n = n;
    ds_pool_for(ex->pool, (n + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK, ds__acc_task, &a);
}

/* ---- embedding (§2.2) -------------------------------------------------------------------------
   inp[N] token ids, wte[V,D], out[N,D], dout[N,D], dwte[V,D]
   forward:  out[n,:] = wte[inp[n],:]
   backward: forward was a row gather, so dwte[inp[n],:] += dout[n,:]. Split over channels d:
             two threads never add to one element, and each element sums n in order. */
typedef struct ds__emb_ctx { ds_float *out, *dw; const ds_float *w, *dout; const int32_t *inp; size_t N, D; } ds__emb_ctx;
static DS__WIDE void ds__embedding_fwd_task(void *ctx, size_t n0, size_t n1) {
    const ds__emb_ctx *e = (const ds__emb_ctx *)ctx;
    size_t n;
    for (n = n0; n < n1; n++) memcpy(e->out + n * e->D, e->w + (size_t)e->inp[n] * e->D, e->D * sizeof(ds_float));
}
static DS__WIDE void ds__embedding_bwd_task(void *ctx, size_t d0, size_t d1) {
    const ds__emb_ctx *e = (const ds__emb_ctx *)ctx;
    size_t n, d;
    for (n = 0; n < e->N; n++) {
        ds_float *dw = e->dw + (size_t)e->inp[n] * e->D;
        const ds_float *g = e->dout + n * e->D;
        for (d = d0; d < d1; d++) dw[d] += g[d];
    }
}
static void ds__embedding_forward(ds__exec *ex, ds_float *out, const int32_t *inp, const ds_float *wte, size_t N, size_t D) {
    ds__emb_ctx e;
    memset(&e, 0, sizeof e);
    e.out = out, e.w = wte, e.inp = inp, e.N = N, e.D = D;
    ds_pool_for(ex->pool, N, ds__embedding_fwd_task, &e);
}
static void ds__embedding_backward(ds__exec *ex, ds_float *dwte, const ds_float *dout, const int32_t *inp, size_t N, size_t D) {
    ds__emb_ctx e;
    memset(&e, 0, sizeof e);
    e.dw = dwte, e.dout = dout, e.inp = inp, e.N = N, e.D = D;
    ds_pool_for(ex->pool, D, ds__embedding_bwd_task, &e);
}

/* ---- RMSNorm (§2.2, pre-norm) -------------------------------------------------------------------
   x[N,D], w[D], out[N,D], rstd[N]; dout[N,D], dx[N,D], dw[D]
   forward:  rstd[n] = 1 / sqrt(mean_d x[n,d]^2 + eps);  out[n,d] = x[n,d] rstd[n] w[d]
   backward: forward was out = xhat w with xhat = x rstd; with g = dout w,
             dw[d]   += sum_n dout[n,d] xhat[n,d]
             dx[n,d] (+)= rstd[n] (g[n,d] - xhat[n,d] mean_d(g[n,:] xhat[n,:]))
             (dx_accumulate 1: added into dx, as the residual stream's gradient needs; 0: written) */
typedef struct ds__rms_ctx { ds_float *out, *rstd, *dx, *dw; const ds_float *x, *w, *dout, *rstd_in; size_t N, D; double eps; int acc; } ds__rms_ctx;
/* The rows' sums of squares and dot products run on ds__dot (below): a sum written as a loop
   runs one add at a time, each waiting for the last, 4 cycles a value (a row of 128 took ~500
   cycles); ds__dot's four vector accumulators in a fixed tree depend on D only. */
static ds_float ds__dot(const ds_float *a, const ds_float *b, size_t n);
static ds_float ds__dot3(const ds_float *a, const ds_float *b, const ds_float *c, size_t n);
static DS__WIDE void ds__rmsnorm_fwd_task(void *ctx, size_t n0, size_t n1) {
    const ds__rms_ctx *r = (const ds__rms_ctx *)ctx;
    size_t n, d, D = r->D;
    for (n = n0; n < n1; n++) {
        const ds_float *x = r->x + n * D;
        ds_float *o = r->out + n * D, ss = ds__dot(x, x, D), s;
        s = (ds_float)(1.0 / sqrt((double)ss / (double)D + r->eps));
        r->rstd[n] = s;
        for (d = 0; d < D; d++) o[d] = x[d] * s * r->w[d];
    }
}
static DS__WIDE void ds__rmsnorm_bwd_dx_task(void *ctx, size_t n0, size_t n1) {
    const ds__rms_ctx *r = (const ds__rms_ctx *)ctx;
    size_t n, d, D = r->D;
    for (n = n0; n < n1; n++) {
        const ds_float *x = r->x + n * D, *dout = r->dout + n * D, s = r->rstd_in[n];
        ds_float *dx = r->dx + n * D, dot = ds__dot3(dout, r->w, x, D), c;
        c = dot * s * s / (ds_float)D; /* rstd * mean(g * xhat), so that s * x * c = s * xhat * mean(g * xhat) */
        if (r->acc) for (d = 0; d < D; d++) dx[d] += s * (dout[d] * r->w[d] - x[d] * c);
        else for (d = 0; d < D; d++) dx[d] = s * (dout[d] * r->w[d] - x[d] * c);
    }
}
static DS__WIDE void ds__rmsnorm_bwd_dw_task(void *ctx, size_t d0, size_t d1) {
    const ds__rms_ctx *r = (const ds__rms_ctx *)ctx;
    size_t n, d, db, D = r->D;
    /* 64 columns' sums at a time in a local block, over every row in order (the same sums): added
       into dw itself they were loaded and stored every row, dw possibly aliasing x or dout for all
       the compiler knows (2,048 rows of 64 columns: 50 -> 38 us in cache, one thread) */
    for (db = d0; db < d1; db += 64) {
        size_t w = d1 - db < 64 ? d1 - db : 64;
        ds_float acc[64];
        for (d = 0; d < w; d++) acc[d] = r->dw[db + d];
        for (n = 0; n < r->N; n++) {
            const ds_float *x = r->x + n * D + db, *dout = r->dout + n * D + db, s = r->rstd_in[n];
            for (d = 0; d < w; d++) acc[d] += dout[d] * x[d] * s;
        }
        for (d = 0; d < w; d++) r->dw[db + d] = acc[d];
    }
}
static void ds__rmsnorm_forward(ds__exec *ex, ds_float *out, ds_float *rstd, const ds_float *x, const ds_float *w, size_t N, size_t D,
                                double eps) {
    ds__rms_ctx r;
    memset(&r, 0, sizeof r);
    r.out = out, r.rstd = rstd, r.x = x, r.w = w, r.N = N, r.D = D, r.eps = eps;
    ds_pool_for(ex->pool, N, ds__rmsnorm_fwd_task, &r);
}
static void ds__rmsnorm_backward(ds__exec *ex, ds_float *dx, int dx_accumulate, ds_float *dw, const ds_float *dout, const ds_float *x,
                                 const ds_float *w, const ds_float *rstd, size_t N, size_t D) {
    ds__rms_ctx r;
    memset(&r, 0, sizeof r);
    r.dx = dx, r.acc = dx_accumulate, r.dw = dw, r.dout = dout, r.x = x, r.w = w, r.rstd_in = rstd, r.N = N, r.D = D;
    ds_pool_for(ex->pool, N, ds__rmsnorm_bwd_dx_task, &r);
    ds_pool_for(ex->pool, D, ds__rmsnorm_bwd_dw_task, &r);
}

/* out[M, ldc] columns [0, N) (+)= A[M, K] W^T for a W [N, K] as a linear stores it (float, or
   bf16: Wf or W), for a few rows M (a prompt's chunk): the matmul above, split over strips of NR
   output columns instead of rows. Each strip of W is transposed (and widened: exact) straight into
   the tile's packed KC x NR block of B, so W is read once, by one thread (the row split, over
   thousands of rows, has each thread pack every strip: cheap beside its share of the product,
   not beside a 64-row one). Each output still sums its k in ascending order, one FMA per k, its
   running value parked in C between k-blocks: the same bits as the row-split matmul. */
#define DS__MM_W_ROWS 128 /* up to this many rows a linear splits over columns (its A, 128 x KC floats, stays in L1/L2) */
static void ds__mm_pack_t(ds_float *bp, const ds_float *Wf, const uint16_t *W, size_t ldw, size_t n, size_t nr, size_t pc, size_t kb) {
    size_t j = 0, k;
#ifdef DS__SHUF
/* VL x VL blocks in registers, each row's vector read by LOAD(offset); the k remainder by
   VALUE(offset), the row remainder below. One text for the float weights and the bf16 ones (a
   BF16 model's prefill: widened as they are loaded), each expanded with its own loads. */
#define DS__PACK_T_BLOCKS(LOAD, VALUE)                                                                 \
    for (; j + DS__VLANES <= nr; j += DS__VLANES) {                                                    \
        size_t i;                                                                                      \
        for (k = 0; k + DS__VLANES <= kb; k += DS__VLANES) {                                           \
            ds__vec r[DS__VLANES];                                                                     \
            for (i = 0; i < DS__VLANES; i++) r[i] = LOAD((n + j + i) * ldw + pc + k);                  \
            ds__vtranspose(r);                                                                         \
            for (i = 0; i < DS__VLANES; i++) ds__vstore(bp + (k + i) * nr + j, r[i]);                  \
        }                                                                                              \
        for (; k < kb; k++)                                                                            \
            for (i = 0; i < DS__VLANES; i++) bp[k * nr + j + i] = VALUE((n + j + i) * ldw + pc + k);   \
    }
#define DS__PT_FLOAD(o) ds__vload(Wf + (o))
#define DS__PT_FVALUE(o) Wf[o]
#define DS__PT_BLOAD(o) ds__bload(W + (o))
#define DS__PT_BVALUE(o) ds__bf16_value(W[o])
    if (Wf) {
        DS__PACK_T_BLOCKS(DS__PT_FLOAD, DS__PT_FVALUE)
    }
#ifdef DS__BF16_SIMD
    else {
        DS__PACK_T_BLOCKS(DS__PT_BLOAD, DS__PT_BVALUE)
    }
#endif
#undef DS__PT_FLOAD
#undef DS__PT_FVALUE
#undef DS__PT_BLOAD
#undef DS__PT_BVALUE
#undef DS__PACK_T_BLOCKS
#endif
    for (; j < nr; j++) {
        if (Wf) {
            const ds_float *src = Wf + (n + j) * ldw + pc;
            for (k = 0; k < kb; k++) bp[k * nr + j] = src[k];
        } else {
            const uint16_t *src = W + (n + j) * ldw + pc;
            for (k = 0; k < kb; k++) bp[k * nr + j] = ds__bf16_value(src[k]);
        }
    }
}
typedef struct ds__mmw { ds_float *C; const ds_float *A, *Wf; const uint16_t *W; size_t M, N, K, ldc; int accumulate; } ds__mmw;
static void ds__mm_w_task(void *ctx, size_t s0, size_t s1) { /* tasks are strips of NR columns */
    const ds__mmw *w = (const ds__mmw *)ctx;
    ds_float bp[DS_MM_KC * DS__NR];
    size_t s, pc, m;
    for (s = s0; s < s1; s++) {
        size_t n = s * DS__NR, nr = w->N - n < (size_t)DS__NR ? w->N - n : (size_t)DS__NR;
        for (pc = 0; pc < w->K || pc == 0; pc += DS_MM_KC) {
            ds__mm g;
            size_t kb = w->K - pc < DS_MM_KC ? w->K - pc : DS_MM_KC;
            ds__mm_pack_t(bp, w->Wf, w->W, w->K, n, nr, pc, kb);
            g.C = w->C + n, g.A = w->A + pc, g.B = bp; /* column n of out is the block's column 0 */
            g.M = w->M, g.N = nr, g.K = kb, g.sam = w->K, g.sak = 1, g.ldb = nr, g.ldc = w->ldc;
            g.accumulate = w->accumulate || pc > 0;
            g.packed = 1;
            for (m = 0; m < w->M; m += DS__MR) {
                size_t mr = w->M - m < DS__MR ? w->M - m : DS__MR;
                if (mr == DS__MR && nr == (size_t)DS__NR) ds__mm_tile(&g, m, 0);
                else ds__mm_edge(&g, m, 0, mr, nr);
            }
            if (w->K == 0) break;
        }
    }
}

/* ---- linear (§2.2: every projection; no biases) ---------------------------------------------------
   inp[N,C], W[OC,C] (PyTorch's Linear layout), out[N,OC]; dout[N,OC], dinp[N,C], dW[OC,C]
   forward:  out[N,OC] (+)= inp W^T     (accumulate 1 adds into out: o_proj and down_proj end a
                                        residual branch by adding into the stream)
   backward: forward was out = inp W^T, so
             dinp[N,C] (+)= dout W       split over rows n        (dinp may be NULL)
             dW[OC,C]   += dout^T inp    split over output channels o
   N > 1 runs on the matmul tile above with W as stored (bt: each KC x NR strip of W^T is
   transposed into the tile's packed block as it is needed; transposing the whole W into a scratch
   first cost 3.5% of the medium config's step: it ran at ~1 GB/s, each of its writes OC floats
   from the last). N = 1 (decoding) is a matrix-vector product on W as stored: out[o] =
   W[o,:] . inp, k in order, added to out[o] afterwards when accumulating. */
/* The dot product of decoding (matrix-vector products, attention scores). A float sum does not
   vectorize unless the compiler may reassociate it (-ffast-math), so the SIMD is written out: four
   vector accumulators over 4 VL values at a time, then single vectors, the lanes summed in a fixed
   tree (ds__vsum), then the scalar tail. The order depends on n only, so a row's result is the
   same whichever thread computes it. */
#ifdef DS__SIMD
/* the lanes of v in a fixed tree: the upper half added to the lower, log2 VL times (lane i += lane
   i + VL/2, then i + VL/4, ...). With GCC 12+ and clang each step is a shuffle and one vector add;
   otherwise the same adds lane by lane, through memory. Measured on an AMD EPYC Zen 4: the BF16
   15M model's decoding (rows of 288 values) went from 416-437 to 524-543 tokens/s on one thread,
   the float model's unchanged (bound by memory); the sums are the same bits. */
#if (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)) && !defined(DS_DOUBLE) && DS__VB >= 16 && DS__VB <= 64
typedef float ds__f8v __attribute__((vector_size(32)));
typedef float ds__f4v __attribute__((vector_size(16)));
typedef float ds__f2v __attribute__((vector_size(8)));
static DS__ALWAYS_INLINE float ds__vsum(ds__vec v) {
    ds__f4v q;
    ds__f2v e;
#if DS__VB == 64
    ds__f8v h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
#elif DS__VB == 32
    q = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
#else
    q = v;
#endif
    e = __builtin_shufflevector(q, q, 0, 1) + __builtin_shufflevector(q, q, 2, 3);
    return e[0] + e[1];
}
#else
static ds_float ds__vsum(ds__vec v) {
    int i, w;
    for (w = DS__VL / 2; w >= 1; w /= 2)
        for (i = 0; i < w; i++) v[i] += v[i + w];
    return v[0];
}
#endif
/* the vector part of a dot product of n values: LOAD reads VL of a as floats, PF(p) may prefetch;
   k and s carry on into the scalar tail. Both dot products below are this text, so their sums
   are formed in the same order. */
#define DS__DOT_VECTORS(a, b, n, LOAD, PF, k, s)                                                       \
    do {                                                                                               \
        if ((n) >= (size_t)DS__VL) {                                                                   \
            ds__vec a0_ = LOAD(a) * ds__vload(b), a1_ = a0_ - a0_, a2_ = a1_, a3_ = a1_;               \
            for ((k) = DS__VL; (k) + 4 * DS__VL <= (n); (k) += 4 * DS__VL) {                           \
                PF((a) + (k));                                                                         \
                a1_ += LOAD((a) + (k)) * ds__vload((b) + (k));                                         \
                a2_ += LOAD((a) + (k) + DS__VL) * ds__vload((b) + (k) + DS__VL);                       \
                a3_ += LOAD((a) + (k) + 2 * DS__VL) * ds__vload((b) + (k) + 2 * DS__VL);               \
                a0_ += LOAD((a) + (k) + 3 * DS__VL) * ds__vload((b) + (k) + 3 * DS__VL);               \
            }                                                                                          \
            for (; (k) + DS__VL <= (n); (k) += DS__VL) a0_ += LOAD((a) + (k)) * ds__vload((b) + (k));  \
            a0_ = (a0_ + a1_) + (a2_ + a3_);                                                           \
            (s) += ds__vsum(a0_);                                                                      \
        }                                                                                              \
    } while (0)
#define DS__NO_PREFETCH(p) (void)(p)
#endif
static ds_float ds__dot(const ds_float *a, const ds_float *b, size_t n) {
    size_t k = 0;
    ds_float s = 0;
#ifdef DS__SIMD
    DS__DOT_VECTORS(a, b, n, ds__vload, DS__NO_PREFETCH, k, s);
#endif
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}
/* sum of a[k] c[k] b[k], in ds__dot's order: ds__dot's loop with a c as its first operand */
static ds_float ds__dot3(const ds_float *a, const ds_float *b, const ds_float *c, size_t n) {
    size_t k = 0;
    ds_float s = 0;
#ifdef DS__SIMD
#define DS__LOAD_AC(p) (ds__vload(p) * ds__vload(c + ((p) - a)))
    DS__DOT_VECTORS(a, b, n, DS__LOAD_AC, DS__NO_PREFETCH, k, s);
#undef DS__LOAD_AC
#endif
    for (; k < n; k++) s += a[k] * c[k] * b[k];
    return s;
}

/* sum of p[0..n) in ds__dot's order (four vector accumulators, the lanes in a fixed tree, the
   scalar tail): the order depends on n only. max of p[0..n): any order gives the same value. A sum
   written as a loop runs one add at a time, each waiting for the last (4 cycles): for attention's
   rows that was ~5% of the tiny config's step. */
static ds_float ds__vsum_n(const ds_float *p, size_t n) {
    size_t k = 0;
    ds_float s = 0;
#ifdef DS__SIMD
    if (n >= (size_t)DS__VL) {
        ds__vec a0 = ds__vload(p), a1 = a0 - a0, a2 = a1, a3 = a1;
        for (k = DS__VL; k + 4 * DS__VL <= n; k += 4 * DS__VL) {
            a1 += ds__vload(p + k), a2 += ds__vload(p + k + DS__VL);
            a3 += ds__vload(p + k + 2 * DS__VL), a0 += ds__vload(p + k + 3 * DS__VL);
        }
        for (; k + DS__VL <= n; k += DS__VL) a0 += ds__vload(p + k);
        a0 = (a0 + a1) + (a2 + a3);
        s = ds__vsum(a0);
    }
#endif
    for (; k < n; k++) s += p[k];
    return s;
}
#ifdef DS__SIMD
#ifdef DS_DOUBLE
typedef int64_t ds__ivec __attribute__((vector_size(DS__VB)));
#else
typedef int32_t ds__ivec __attribute__((vector_size(DS__VB)));
#endif
#endif
static ds_float ds__vmax_n(const ds_float *p, size_t n) {
    size_t k = 0;
    ds_float mx = -INFINITY;
#ifdef DS__SIMD
    if (n >= (size_t)DS__VL) {
        ds__vec v = ds__vload(p);
        int l;
        for (k = DS__VL; k + DS__VL <= n; k += DS__VL) {
            ds__vec x = ds__vload(p + k);
            ds__ivec gt = x > v; /* lanes of -1 where x is larger: a vector max, as a select */
            v = (ds__vec)(((ds__ivec)x & gt) | ((ds__ivec)v & ~gt));
        }
        for (l = 0; l < DS__VL; l++) mx = v[l] > mx ? v[l] : mx;
    }
#endif
    for (; k < n; k++) mx = p[k] > mx ? p[k] : mx;
    return mx;
}
typedef struct ds__mv { ds_float *out; const ds_float *W, *x; size_t C; int accumulate; } ds__mv;
static void ds__matvec_task(void *ctx, size_t o0, size_t o1) {
    const ds__mv *v = (const ds__mv *)ctx;
    size_t o;
    for (o = o0; o < o1; o++) {
        ds_float s = ds__dot(v->W + o * v->C, v->x, v->C);
        v->out[o] = v->accumulate ? v->out[o] + s : s;
    }
}
static void ds__linear_forward(ds__exec *ex, ds_float *out, const ds_float *inp, const ds_float *W, size_t N, size_t C, size_t OC,
                               int accumulate) {
#ifdef DS__BF16_DOT
    if (ex->bf16 && N > 1) { /* (one token, decoding, stays in float) */
        ds__matmul_bf16(ex->pool, ex->bf_own, out, OC, inp, C, 1, W, C, 1, N, OC, C, accumulate);
        return;
    }
#endif
    if (N == 1) {
        ds__mv v;
        v.out = out, v.W = W, v.x = inp, v.C = C, v.accumulate = accumulate;
        ds_pool_for(ex->pool, OC, ds__matvec_task, &v);
    } else if (N <= DS__MM_W_ROWS) { /* a prompt's chunk: split over columns, W read as stored */
        ds__mmw w;
        w.C = out, w.A = inp, w.Wf = W, w.W = NULL, w.M = N, w.N = OC, w.K = C, w.ldc = OC, w.accumulate = accumulate;
        ds_pool_for(ex->pool, (OC + DS__NR - 1) / DS__NR, ds__mm_w_task, &w);
    } else {
        ds__matmul_g(ex->pool, out, OC, inp, C, 1, W, C, 1, N, OC, C, accumulate); /* W as stored */
    }
}
static void ds__linear_backward(ds__exec *ex, ds_float *dinp, int dinp_accumulate, ds_float *dW, const ds_float *dout, const ds_float *inp,
                                const ds_float *W, size_t N, size_t C, size_t OC) {
#ifdef DS__BF16_DOT
    if (ex->bf16) {
        if (dinp) ds__matmul_bf16(ex->pool, ex->bf_own, dinp, C, dout, OC, 1, W, C, 0, N, C, OC, dinp_accumulate);
        ds__matmul_bf16(ex->pool, ex->bf_own, dW, C, dout, 1, OC, inp, C, 0, OC, C, N, 1);
        return;
    }
#endif
    if (dinp) ds__matmul(ex->pool, dinp, C, dout, OC, 1, W, C, N, C, OC, dinp_accumulate);
    ds__matmul(ex->pool, dW, C, dout, 1, OC, inp, C, OC, C, N, 1);
}

/* ---- BF16 weights (the inference model of ds_checkpoint_load_bf16) ----------------------------
   A bf16 value is the top half of a float32: widening is a 16-bit shift, exact. The dot product
   widens a vector of weights and then does exactly what ds__dot does, in the same order, so a
   BF16 model's logits equal, bit for bit, those of a float model holding the same (rounded)
   weights. Decoding reads half the bytes per token. */
/* (ds__bload, the vector widening, is defined with the vector loads: the matmul's packing uses it) */
/* A software prefetch ahead in the stream of weight rows a decode step reads, where it was
   measured to help: on an AVX2 EPYC (Zen 3) 1024 values (2 KiB) ahead gave +35% on one thread
   (512-2048 tried, 1024 the best). On an AVX-512 EPYC (Zen 4) the same prefetch cost 10-40%: its
   hardware prefetcher keeps up with the stream, and the extra instruction per 64 weights only
   competes with it. So AVX-512 x86 gets none (on a Zen 5 EPYC, three interleaved rounds on three
   model shapes showed no consistent effect either way; Intel's Xeons are not measured), nor do
   other architectures (not measured); x86 without AVX-512 keeps the 2 KiB. DS__PF_BF16 sets the distance (0: none). */
#ifndef DS__PF_BF16
#if defined(__AVX512F__) || !(defined(__x86_64__) || defined(__i386__))
#define DS__PF_BF16 0
#else
#define DS__PF_BF16 1024
#endif
#endif
#if DS__PF_BF16 > 0
#define DS__PREFETCH_BF16(p) __builtin_prefetch((p) + DS__PF_BF16)
#else
#define DS__PREFETCH_BF16(p) (void)(p)
#endif
static ds_float ds__dot_bf16(const uint16_t *a, const ds_float *b, size_t n) {
    size_t k = 0;
    ds_float s = 0;
#ifdef DS__BF16_SIMD
    DS__DOT_VECTORS(a, b, n, ds__bload, DS__PREFETCH_BF16, k, s);
#endif
    for (; k < n; k++) s += ds__bf16_value(a[k]) * b[k];
    return s;
}
typedef struct ds__mvb { ds_float *out; const uint16_t *W; const ds_float *x; size_t C; int accumulate; } ds__mvb;
static void ds__matvec_bf16_task(void *ctx, size_t o0, size_t o1) {
    const ds__mvb *v = (const ds__mvb *)ctx;
    size_t o;
    for (o = o0; o < o1; o++) {
        ds_float s = ds__dot_bf16(v->W + o * v->C, v->x, v->C);
        v->out[o] = v->accumulate ? v->out[o] + s : s;
    }
}
/* out[OC] (+)= W[OC, C] x[C], W in bf16: decoding's linear */
static void ds__linear_decode_bf16(ds__exec *ex, ds_float *out, const ds_float *x, const uint16_t *W, size_t C, size_t OC, int accumulate) {
    ds__mvb v;
    v.out = out, v.W = W, v.x = x, v.C = C, v.accumulate = accumulate;
    ds_pool_for(ex->pool, OC, ds__matvec_bf16_task, &v);
}
/* The prompt's linear on bf16 weights (prefill of a BF16 model): out[N, ldo] columns [0, OC) (+)=
   inp[N, C] W^T, W bf16 [OC, C], on ds__mm_w_task: the float model's linear, bit for bit. */
static void ds__linear_prefill_bf16(ds__exec *ex, ds_float *out, size_t ldo, const ds_float *inp, const uint16_t *W, size_t N, size_t C,
                                    size_t OC, int accumulate) {
    ds__mmw w;
    w.C = out, w.A = inp, w.Wf = NULL, w.W = W, w.M = N, w.N = OC, w.K = C, w.ldc = ldo, w.accumulate = accumulate;
    ds_pool_for(ex->pool, (OC + DS__NR - 1) / DS__NR, ds__mm_w_task, &w);
}
/* dst[n] = the widened bf16 src[n] (an embedding row, a norm's weights) */
static void ds__bf16_widen(ds__exec *ex, ds_float *dst, const uint16_t *src, size_t n) {
    size_t i;
    (void)ex;
    for (i = 0; i < n; i++) dst[i] = ds__bf16_value(src[i]);
}

/* ---- residual (§2.2: x' = x + f(x)) ---------------------------------------------------------------
   x[n], out[n]
   forward:  out = x, the skip path; the branch f then adds into out through the accumulate flag
             of its last linear, so x + f(x) is one sum per element, rounded once per product
   backward: forward was out = x + f(x), so dx = dout + f'(...). The stream's gradient is one
             buffer: it reaches the branch's last linear unchanged, and the branch's first op
             (RMSNorm's backward, dx_accumulate 1) adds f's part into it. No call is needed. */
static void ds__residual_forward(ds__exec *ex, ds_float *out, const ds_float *x, size_t n) { ds__copy(ex, out, x, n); }

/* ---- RoPE (§2.2), the Hugging Face "rotate_half" convention -------------------------------------
   qkv[N, Q], Q = (H + 2 KV) hd; cos, sin [positions][hd/2]; row n is at position pos0 + n % T
   A head vector x of q or k is two halves (x1, x2); at position t, with angle
   a_i = t theta^(-2i/hd), i < hd/2:
   forward:  out1 = x1 cos a - x2 sin a;   out2 = x2 cos a + x1 sin a        (in place)
   backward: forward was a rotation by a, so the gradient rotates by -a (its transpose):
             dx1 = d1 cos a + d2 sin a;    dx2 = d2 cos a - d1 sin a          (in place on dqkv) */
typedef struct ds__rope_ctx { ds_float *qkv; const ds_float *cos, *sin; size_t T, pos0, nh, hd, stride; int inverse; } ds__rope_ctx;
static DS__WIDE void ds__rope_task(void *ctx, size_t n0, size_t n1) {
    const ds__rope_ctx *r = (const ds__rope_ctx *)ctx;
    size_t n, h, i, half = r->hd / 2;
    for (n = n0; n < n1; n++) {
        size_t t = r->pos0 + n % r->T;
        const ds_float *c = r->cos + t * half, *s = r->sin + t * half;
        for (h = 0; h < r->nh; h++) { /* the q heads then the k heads: contiguous in the row */
            ds_float *x = r->qkv + n * r->stride + h * r->hd;
            for (i = 0; i < half; i++) {
                ds_float x1 = x[i], x2 = x[i + half];
                if (!r->inverse) { x[i] = x1 * c[i] - x2 * s[i]; x[i + half] = x2 * c[i] + x1 * s[i]; }
                else { x[i] = x1 * c[i] + x2 * s[i]; x[i + half] = x2 * c[i] - x1 * s[i]; }
            }
        }
    }
}
static void ds__rope_run(ds__exec *ex, ds_float *qkv, const ds_float *cos, const ds_float *sin, size_t N, size_t T, size_t pos0, size_t H,
                         size_t KV, size_t hd, int inverse) {
    ds__rope_ctx r;
    r.qkv = qkv, r.cos = cos, r.sin = sin, r.T = T, r.pos0 = pos0, r.nh = H + KV, r.hd = hd, r.stride = (H + 2 * KV) * hd, r.inverse = inverse;
    ds_pool_for(ex->pool, N, ds__rope_task, &r);
}

/* ---- causal grouped-query attention (§2.2) --------------------------------------------------------
   qkv[B,T,Q] (rows q heads | k heads | v heads), y[B,T,H hd], saved[B,H,T,2] (each row's softmax
   max and sum, kept for the backward); dy[B,T,H hd], dqkv[B,T,Q]
   Query head h reads kv head h / (H/KV). Per (b, h), with Q_h, K, V the [T, hd] slices:
   forward:  S = Q_h K^T / sqrt(hd);  P = causal softmax(S) (row t sees t2 <= t);  Y_h = P V
   backward: forward was Y = P V with P = softmax(S), S = Q K^T / sqrt(hd), so
             dP = dY V^T;  dS = P (dP - rowsum(P dP));  dQ = dS K / sqrt(hd)
             dK += dS^T Q / sqrt(hd);  dV += P^T dY     (summed over the group's query heads)
   FlashAttention's idea on a CPU: the T x T probabilities are never stored. Rows go in blocks of
   DS__ATT_BR; a block of rows [r0, r1) needs only the columns t2 < r1 (causal tiles: the masked
   half is never computed), its scores live in a Br x T scratch, and the backward recomputes them
   from the saved (max, sum) of each row -- the same float operations, so P is the forward's P bit
   for bit. Memory: 2 values a row instead of T; T = 4096 costs what T = 256 did. The products run
   on the matmul tile, the four by P or dS through ds__mm_causal, which leaves out each tile's
   k's past the diagonal, where its rows of P or dS are zero (at T 128, 15-20% of their work:
   attention 1.07x a head, Zen 4, bench_ops); K and V are first copied transposed ([hd][T]) so that S and dP read
   contiguous rows, 16 x 16 blocks at a time in registers (ds__mm_pack_t; the element-by-element
   copy, its stores 512 bytes apart, was about half of the backward task's own time on tiny).
   dqkv is written, not accumulated. The forward splits over (b, h), the backward over (b, kv
   head), so the dK and dV of a kv head belong to one task: bit-identical for any thread count. */
#define DS__ATT_BR 32
typedef struct ds__att_ctx {
    ds_float *y, *saved, *dqkv, *scratch;
    const ds_float *qkv, *dy;
    size_t B, T, H, KV, hd, Q;
} ds__att_ctx;
/* the saved state of one layer's attention, in values (the backward's input besides qkv) */
static size_t ds__attention_saved(size_t B, size_t T, size_t H) { return B * H * T * 2; }
/* the scratch: per forward task a score block and K^T, per backward task two blocks, K^T, V^T */
static size_t ds__attention_work(size_t B, size_t T, size_t H, size_t KV, size_t hd) {
    size_t fwd = B * H * (DS__ATT_BR + hd) * T, bwd = B * KV * 2 * (DS__ATT_BR + hd) * T;
    return fwd > bwd ? fwd : bwd;
}
/* S = scale Q_rows K^T over the causal columns, then the softmax in place: rows [r0, r1) of one
   head, S[t - r0][t2] for t2 < r1. With fresh, the row's max and sum are computed and saved (the
   forward); else they are read back (the backward's recomputation). */
#if defined(DS__SIMD) && !defined(DS_DOUBLE)
/* ds__expf on a vector, lane by lane the same operations (the clamps and the NaN test as selects) */
static DS__ALWAYS_INLINE ds__vec ds__vexpf(ds__vec x) {
    const ds__vec zero = x - x, lo = zero - 87.3f, hi = zero + 88.3f;
    ds__ivec ok = x == x, e;
    ds__vec y = (ds__vec)((ds__ivec)x & ok), n, r, p; /* NaN: compute on 0, return NaN below */
    y = (ds__vec)(((ds__ivec)lo & (y < lo)) | ((ds__ivec)y & ~(y < lo)));
    y = (ds__vec)(((ds__ivec)hi & (y > hi)) | ((ds__ivec)y & ~(y > hi)));
    n = (y * 1.44269504f + 12582912.0f) - 12582912.0f;
    r = y - n * 0.693359375f + n * 2.12194440e-4f;
    p = zero + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    e = (__builtin_convertvector(n, ds__ivec) + 127) << 23;
    p = p * (ds__vec)e;
    return (ds__vec)(((ds__ivec)p & ok) | ((ds__ivec)x & ~ok));
}
#endif
/* One row of the block: p[0..n) = softmax(scale p[0..n)), p[n..len) = 0. With fresh the row's max
   and sum are computed and saved in ms[0..2); else they are read back. The rows are short (n <= T,
   half of T on average), so the per-row overhead counts: the vector build scales and takes the max
   in one pass, exps and sums in a second (four accumulators, the lanes in a tree, a partial last
   vector masked to zero: the order depends on n only), then multiplies by 1 / sum. Six separate
   loops (scale, max, exp, sum, divide, zero) took twice as long: 33 vs 17 us a head on the tiny
   config (Intel Xeon, one thread), where that was 60% of attention's forward. */
static DS__WIDE void ds__att_row(ds_float *p, size_t n, size_t len, ds_float scale, ds_float *ms, int fresh) {
    size_t k = 0;
    ds_float mx = -INFINITY, sum = 0, inv;
#if defined(DS__SIMD) && !defined(DS_DOUBLE)
    static const int32_t lanes[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    size_t nv = n / DS__VL * DS__VL;
    int tail = n > nv && nv + DS__VL <= len; /* the partial vector stays inside the row's len */
    ds__ivec lane, in;
    ds__vec neg = (ds__vec){0} - INFINITY, mxv = neg, a0 = (ds__vec){0}, a1 = a0, a2 = a0, a3 = a0, v;
    memcpy(&lane, lanes, sizeof lane);
    in = lane < (ds__ivec){0} + (int32_t)(n - nv);
    for (k = 0; k < nv + (size_t)tail * DS__VL; k += DS__VL) {
        v = ds__vload(p + k) * scale;
        ds__vstore(p + k, v);
        if (k == nv) v = (ds__vec)(((ds__ivec)v & in) | ((ds__ivec)neg & ~in));
        mxv = (ds__vec)(((ds__ivec)v & (v > mxv)) | ((ds__ivec)mxv & ~(v > mxv)));
    }
    for (; k < n; k++) p[k] *= scale;
    if (fresh) {
        int l;
        for (l = 0; l < DS__VL; l++) mx = mxv[l] > mx ? mxv[l] : mx;
        for (k = nv + (size_t)tail * DS__VL; k < n; k++) mx = p[k] > mx ? p[k] : mx;
    } else mx = ms[0];
    for (k = 0; k + 4 * DS__VL <= nv; k += 4 * DS__VL) {
        ds__vec e0 = ds__vexpf(ds__vload(p + k) - mx), e1 = ds__vexpf(ds__vload(p + k + DS__VL) - mx);
        ds__vec e2 = ds__vexpf(ds__vload(p + k + 2 * DS__VL) - mx), e3 = ds__vexpf(ds__vload(p + k + 3 * DS__VL) - mx);
        ds__vstore(p + k, e0), ds__vstore(p + k + DS__VL, e1), ds__vstore(p + k + 2 * DS__VL, e2), ds__vstore(p + k + 3 * DS__VL, e3);
        a0 += e0, a1 += e1, a2 += e2, a3 += e3;
    }
    for (; k < nv + (size_t)tail * DS__VL; k += DS__VL) {
        v = ds__vexpf(ds__vload(p + k) - mx);
        if (k == nv) v = (ds__vec)((ds__ivec)v & in);
        ds__vstore(p + k, v);
        a0 += v;
    }
    sum = ds__vsum((a0 + a1) + (a2 + a3));
#else
    for (k = 0; k < n; k++) p[k] *= scale;
    mx = fresh ? ds__vmax_n(p, n) : ms[0];
    k = 0;
#endif
    if (fresh) {
        for (; k < n; k++) {
            p[k] = DS__EXP(p[k] - mx);
            sum += p[k];
        }
        ms[0] = mx, ms[1] = sum;
    } else {
        for (; k < n; k++) p[k] = DS__EXP(p[k] - mx);
        sum = ms[1];
    }
    inv = 1 / sum;
    for (k = 0; k < n; k++) p[k] *= inv;
    for (; k < len; k++) p[k] = 0; /* the causal mask, inside the block */
}
static DS__WIDE void ds__att_probs(ds_float *S, ds_float *ms, int fresh, const ds_float *Qh, size_t ldq, const ds_float *kT, size_t T, size_t hd,
                          size_t r0, size_t r1, ds_float scale) {
    size_t t;
    ds__matmul(NULL, S, T, Qh + r0 * ldq, ldq, 1, kT, T, r1 - r0, r1, hd, 0);
    for (t = r0; t < r1; t++) ds__att_row(S + (t - r0) * T, t + 1, r1, scale, ms + 2 * t, fresh);
}
static DS__WIDE void ds__attention_fwd_task(void *ctx, size_t i0, size_t i1) {
    const ds__att_ctx *a = (const ds__att_ctx *)ctx;
    size_t i, r0, T = a->T, hd = a->hd, Dq = a->H * hd;
    ds_float scale = (ds_float)(1.0 / sqrt((double)hd));
    for (i = i0; i < i1; i++) {
        size_t b = i / a->H, h = i % a->H, kvh = h / (a->H / a->KV);
        const ds_float *base = a->qkv + b * T * a->Q;
        ds_float *S = a->scratch + i * (DS__ATT_BR + hd) * T, *kT = S + DS__ATT_BR * T, *ms = a->saved + i * T * 2;
        ds__mm_pack_t(kT, base + Dq + kvh * hd, NULL, a->Q, 0, T, 0, hd); /* kT[j][t2] = K[t2][j] */
        for (r0 = 0; r0 < T; r0 += DS__ATT_BR) {
            size_t r1 = r0 + DS__ATT_BR < T ? r0 + DS__ATT_BR : T;
            ds__att_probs(S, ms, 1, base + h * hd, a->Q, kT, T, hd, r0, r1, scale);
            /* Y rows = P V over the columns < r1 */
            ds__mm_causal(a->y + (b * T + r0) * Dq + h * hd, Dq, S, T, 1, base + Dq + a->KV * hd + kvh * hd, a->Q, r1 - r0, hd, r1, 0, 1, r0);
        }
    }
}
static DS__WIDE void ds__attention_bwd_task(void *ctx, size_t i0, size_t i1) {
    const ds__att_ctx *a = (const ds__att_ctx *)ctx;
    size_t i, t, t2, r0, T = a->T, hd = a->hd, Dq = a->H * hd, group = a->H / a->KV, g;
    ds_float scale = (ds_float)(1.0 / sqrt((double)hd));
    for (i = i0; i < i1; i++) { /* i = (b, kv head): the task owns that head's dK and dV */
        size_t b = i / a->KV, kvh = i % a->KV;
        const ds_float *base = a->qkv + b * T * a->Q, *K = base + Dq + kvh * hd, *V = K + a->KV * hd;
        ds_float *dbase = a->dqkv + b * T * a->Q, *dK = dbase + Dq + kvh * hd, *dV = dK + a->KV * hd;
        ds_float *P = a->scratch + i * 2 * (DS__ATT_BR + hd) * T, *dS = P + DS__ATT_BR * T, *kT = dS + DS__ATT_BR * T, *vT = kT + hd * T;
        for (t2 = 0; t2 < T; t2++) {
            memset(dK + t2 * a->Q, 0, hd * sizeof(ds_float)); /* dK and dV accumulate over the group from 0 */
            memset(dV + t2 * a->Q, 0, hd * sizeof(ds_float));
        }
        ds__mm_pack_t(kT, K, NULL, a->Q, 0, T, 0, hd); /* kT[j][t2] = K[t2][j], vT the same */
        ds__mm_pack_t(vT, V, NULL, a->Q, 0, T, 0, hd);
        for (g = 0; g < group; g++) {
            size_t h = kvh * group + g;
            const ds_float *dY = a->dy + b * T * Dq + h * hd, *Qh = base + h * hd;
            ds_float *ms = a->saved + (b * a->H + h) * T * 2;
            for (r0 = 0; r0 < T; r0 += DS__ATT_BR) {
                size_t r1 = r0 + DS__ATT_BR < T ? r0 + DS__ATT_BR : T;
                ds__att_probs(P, ms, 0, Qh, a->Q, kT, T, hd, r0, r1, scale);             /* P, recomputed */
                ds__matmul(NULL, dS, T, dY + r0 * Dq, Dq, 1, vT, T, r1 - r0, r1, hd, 0); /* dP = dY V^T */
                for (t = r0; t < r1; t++) {
                    const ds_float *p = P + (t - r0) * T;
                    ds_float *d = dS + (t - r0) * T, dot = ds__dot(p, d, t + 1);
                    for (t2 = 0; t2 <= t; t2++) d[t2] = p[t2] * (d[t2] - dot) * scale;
                    for (; t2 < r1; t2++) d[t2] = 0;
                }
                ds__mm_causal(dbase + r0 * a->Q + h * hd, a->Q, dS, T, 1, K, a->Q, r1 - r0, hd, r1, 0, 1, r0); /* dQ = dS K */
                ds__mm_causal(dK, a->Q, dS, 1, T, Qh + r0 * a->Q, a->Q, r1, hd, r1 - r0, 1, 2, r0);            /* dK += dS^T Q */
                ds__mm_causal(dV, a->Q, P, 1, T, dY + r0 * Dq, Dq, r1, hd, r1 - r0, 1, 2, r0);                 /* dV += P^T dY */
            }
        }
    }
}
static void ds__attention_forward(ds__exec *ex, ds_float *y, ds_float *saved, const ds_float *qkv, size_t B, size_t T, size_t H, size_t KV,
                                  size_t hd) {
    ds__att_ctx a;
    memset(&a, 0, sizeof a);
    DS_ASSERT(ds__attention_work(B, T, H, KV, hd) <= ex->work_n);
    a.y = y, a.saved = saved, a.qkv = qkv, a.scratch = ex->work, a.B = B, a.T = T, a.H = H, a.KV = KV, a.hd = hd, a.Q = (H + 2 * KV) * hd;
    ds__pool_share(ex->pool, B * H, ds__attention_fwd_task, &a);
}
/* y: the forward's output, which this op does not need (the CUDA path's tensor-core kernels do) */
static void ds__attention_backward(ds__exec *ex, ds_float *dqkv, const ds_float *dy, const ds_float *y, const ds_float *qkv, const ds_float *saved,
                                   size_t B, size_t T, size_t H, size_t KV, size_t hd) {
    ds__att_ctx a;
    (void)y;
    memset(&a, 0, sizeof a);
    DS_ASSERT(ds__attention_work(B, T, H, KV, hd) <= ex->work_n);
    a.dqkv = dqkv, a.dy = dy, a.qkv = qkv, a.saved = (ds_float *)saved, a.B = B, a.T = T, a.H = H, a.KV = KV, a.hd = hd;
    a.Q = (H + 2 * KV) * hd;
    a.scratch = ex->work;
    ds__pool_share(ex->pool, B * KV, ds__attention_bwd_task, &a);
}

/* ---- decoding: the KV cache and attention over it (llama2.c's forward(token, pos)) ---------------
   qkv[Q] one position's row; kc, vc [S][KV hd] one layer's cache; y[H hd]
   kv_store:          kc[pos] = k, vc[pos] = v (the row's roped k heads and its v heads)
   attention_decode:  per head h, over t <= pos: s[t] = q_h . k[t] / sqrt(hd);
                      p = softmax(s); y_h = sum_t p[t] v[t]   (heads split over the pool; each
                      head's scores in the scratch) */
typedef struct ds__dec_ctx { ds_float *y, *scr; const ds_float *qkv, *kc, *vc; size_t pos, H, KV, hd, S; } ds__dec_ctx;
static void ds__kv_store(ds__exec *ex, ds_float *kc, ds_float *vc, const ds_float *qkv, size_t pos, size_t H, size_t KV, size_t hd) {
    ds__copy(ex, kc + pos * KV * hd, qkv + H * hd, KV * hd);
    ds__copy(ex, vc + pos * KV * hd, qkv + (H + KV) * hd, KV * hd);
}
static DS__WIDE void ds__attention_decode_task(void *ctx, size_t h0, size_t h1) {
    const ds__dec_ctx *a = (const ds__dec_ctx *)ctx;
    size_t h, t, j, hd = a->hd, KV = a->KV;
    ds_float scale = (ds_float)(1.0 / sqrt((double)hd));
    for (h = h0; h < h1; h++) {
        size_t kvh = h / (a->H / KV);
        const ds_float *q = a->qkv + h * hd;
        ds_float mx = -INFINITY, sum, *yh = a->y + h * hd, *att = a->scr + h * a->S;
        for (t = 0; t <= a->pos; t++) {
            att[t] = ds__dot(q, a->kc + t * KV * hd + kvh * hd, hd) * scale;
            mx = att[t] > mx ? att[t] : mx;
        }
        for (t = 0; t <= a->pos; t++) att[t] = DS__EXP(att[t] - mx);
        sum = ds__vsum_n(att, a->pos + 1);
        for (j = 0; j < hd; j++) yh[j] = 0;
        for (t = 0; t <= a->pos; t++) {
            const ds_float *v = a->vc + t * KV * hd + kvh * hd, p = att[t] / sum;
            for (j = 0; j < hd; j++) yh[j] += p * v[j];
        }
    }
}
static void ds__attention_decode(ds__exec *ex, ds_float *y, const ds_float *qkv, const ds_float *kc, const ds_float *vc, size_t pos, size_t H,
                                 size_t KV, size_t hd) {
    ds__dec_ctx a;
    DS_ASSERT(H * (pos + 1) <= ex->work_n);
    a.y = y, a.scr = ex->work, a.qkv = qkv, a.kc = kc, a.vc = vc, a.pos = pos, a.H = H, a.KV = KV, a.hd = hd, a.S = pos + 1;
    ds_pool_for(ex->pool, H, ds__attention_decode_task, &a);
}

/* ---- SwiGLU (§2.2): h = silu(gate) * up, silu(g) = g sigmoid(g) -----------------------------------
   gu[N, 2F] (each row gate | up: one matmul makes both), h[N,F]; dh[N,F], dgu[N,2F]
   forward:  h = g sigmoid(g) u
   backward: forward was h = silu(g) u, so
             dup = dh silu(g);  dgate = dh u sigmoid(g) (1 + g (1 - sigmoid(g)))     (dgu written) */
typedef struct ds__glu_ctx { ds_float *h, *dgu; const ds_float *gu, *dh; size_t F; } ds__glu_ctx;
static DS__WIDE void ds__swiglu_fwd_task(void *ctx, size_t n0, size_t n1) {
    const ds__glu_ctx *s = (const ds__glu_ctx *)ctx;
    size_t n, f, F = s->F;
    for (n = n0; n < n1; n++) {
        const ds_float *g = s->gu + n * 2 * F, *u = g + F;
        ds_float *h = s->h + n * F;
        for (f = 0; f < F; f++) h[f] = g[f] / (1 + DS__EXP(-g[f])) * u[f];
    }
}
static DS__WIDE void ds__swiglu_bwd_task(void *ctx, size_t n0, size_t n1) {
    const ds__glu_ctx *s = (const ds__glu_ctx *)ctx;
    size_t n, f, F = s->F;
    for (n = n0; n < n1; n++) {
        const ds_float *g = s->gu + n * 2 * F, *u = g + F, *dh = s->dh + n * F;
        ds_float *dg = s->dgu + n * 2 * F, *du = dg + F;
        for (f = 0; f < F; f++) {
            ds_float sg = 1 / (1 + DS__EXP(-g[f]));
            du[f] = dh[f] * g[f] * sg;
            dg[f] = dh[f] * u[f] * sg * (1 + g[f] * (1 - sg));
        }
    }
}
static void ds__swiglu_forward(ds__exec *ex, ds_float *h, const ds_float *gu, size_t N, size_t F) {
    ds__glu_ctx s;
    memset(&s, 0, sizeof s);
    s.h = h, s.gu = gu, s.F = F;
    ds_pool_for(ex->pool, N, ds__swiglu_fwd_task, &s);
}
static void ds__swiglu_backward(ds__exec *ex, ds_float *dgu, const ds_float *dh, const ds_float *gu, size_t N, size_t F) {
    ds__glu_ctx s;
    memset(&s, 0, sizeof s);
    s.dgu = dgu, s.dh = dh, s.gu = gu, s.F = F;
    ds_pool_for(ex->pool, N, ds__swiglu_bwd_task, &s);
}

/* ---- softmax cross-entropy, per token ------------------------------------------------------------
   logits[N,V], targets[N], losses[N]; dloss[N] (NULL: all 1)
   forward:  losses[n] = logsumexp(logits[n,:]) - logits[n, targets[n]]
   backward: forward was loss_n = logsumexp(l) - l[target], so with c_n = scale dloss[n]:
             dlogits[n,:] = c_n (softmax(logits[n,:]) - onehot(targets[n]))
             written over the logits in place (no second [N,V] buffer); c_n = 0 gives a row of
             exact zeros. ds_model_backward passes dloss = w, scale = 1 / sum w (the weighted
             mean); ds_model_backward_tokens passes the caller's dJ/dloss_n, scale 1. */
typedef struct ds__xent_ctx { ds_float *logits, *losses; const int32_t *targets; const ds_float *dloss; size_t V; double c; } ds__xent_ctx;
static DS__WIDE void ds__xent_fwd_task(void *ctx, size_t n0, size_t n1) {
    const ds__xent_ctx *x = (const ds__xent_ctx *)ctx;
    size_t n, i;
    for (n = n0; n < n1; n++) {
        const ds_float *l = x->logits + n * x->V;
        ds_float mx = ds__vmax_n(l, x->V), sum = 0;
        for (i = 0; i < x->V; i += 64) { /* the exps of 64 logits at a time (vectorized), then their sum */
            ds_float e[64];
            size_t k, m = x->V - i < 64 ? x->V - i : 64;
            for (k = 0; k < m; k++) e[k] = DS__EXP(l[i + k] - mx);
            sum += ds__vsum_n(e, m);
        }
        x->losses[n] = mx + DS__LOG(sum) - l[x->targets[n]];
    }
}
static DS__WIDE void ds__xent_bwd_task(void *ctx, size_t n0, size_t n1) {
    const ds__xent_ctx *x = (const ds__xent_ctx *)ctx;
    size_t n, i;
    for (n = n0; n < n1; n++) {
        ds_float *l = x->logits + n * x->V, mx, sum = 0, c = (ds_float)(x->c * (x->dloss ? (double)x->dloss[n] : 1.0));
        if (c == 0) { memset(l, 0, x->V * sizeof(ds_float)); continue; }
        mx = ds__vmax_n(l, x->V);
        for (i = 0; i < x->V; i++) l[i] = DS__EXP(l[i] - mx);
        for (i = 0; i < x->V; i += 64) sum += ds__vsum_n(l + i, x->V - i < 64 ? x->V - i : 64); /* the forward's order */
        for (i = 0; i < x->V; i++) l[i] = l[i] / sum * c;
        l[x->targets[n]] -= c;
    }
}
static void ds__crossentropy_forward(ds__exec *ex, ds_float *losses, const ds_float *logits, const int32_t *targets, size_t N, size_t V) {
    ds__xent_ctx x;
    memset(&x, 0, sizeof x);
    x.logits = (ds_float *)logits, x.losses = losses, x.targets = targets, x.V = V;
    ds_pool_for(ex->pool, N, ds__xent_fwd_task, &x);
}
static void ds__crossentropy_backward(ds__exec *ex, ds_float *logits, const int32_t *targets, const ds_float *dloss, double scale, size_t N,
                                      size_t V) {
    ds__xent_ctx x;
    memset(&x, 0, sizeof x);
    x.logits = logits, x.targets = targets, x.dloss = dloss, x.V = V, x.c = scale;
    ds_pool_for(ex->pool, N, ds__xent_bwd_task, &x);
}

/* ---- AdamW (§2.3), PyTorch's torch.optim.AdamW operation for operation ---------------------------
   p, g, m, v [n] flat, carved into tensors t[0..n_tensors); hp: the step's scalars
   g' = clip g;  p *= 1 - lr wd (decoupled decay, matrices only: t.decay);
   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;  p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
   with bc_i = 1 - b_i^step. Split over fixed chunks of elements (each chunk walks the tensors
   it overlaps), so a large embedding does not leave one thread alone with it. */
typedef struct ds__adamw_hp { double lr, b1, b2, eps, wd, bc1, bc2, clip; } ds__adamw_hp;
typedef struct ds__adamw_ctx { ds_float *p, *m, *v; const ds_float *g; const ds_tensor *t; int n_tensors; size_t lo, hi; const ds__adamw_hp *hp; } ds__adamw_ctx;
static DS__WIDE void ds__adamw_task(void *ctx, size_t c0, size_t c1) {
    const ds__adamw_ctx *o = (const ds__adamw_ctx *)ctx;
    size_t lo = o->lo + c0 * DS__NORM_CHUNK, hi = o->lo + c1 * DS__NORM_CHUNK < o->hi ? o->lo + c1 * DS__NORM_CHUNK : o->hi, i;
    int k;
    for (k = 0; k < o->n_tensors; k++) {
        const ds_tensor *tn = &o->t[k];
        size_t b = tn->offset > lo ? tn->offset : lo, e = tn->offset + tn->numel < hi ? tn->offset + tn->numel : hi;
        ds_float *p = o->p + o->lo, *mm = o->m, *vv = o->v; /* all four indexed from lo */
        const ds_float *g = o->g;
        ds_float decay = (ds_float)(1.0 - o->hp->lr * (tn->decay ? o->hp->wd : 0.0)), b1 = (ds_float)o->hp->b1, b2 = (ds_float)o->hp->b2;
        ds_float step = (ds_float)(o->hp->lr / o->hp->bc1), bc2s = (ds_float)sqrt(o->hp->bc2), eps = (ds_float)o->hp->eps;
        ds_float clip = (ds_float)o->hp->clip;
#ifdef DS__VSQRT
        /* the same line on a vector of elements at a time; the last, partial one through a
           zero-padded copy, so every element takes the same instructions wherever its tensor or
           chunk starts (a rank's slice starts elsewhere than the whole model's) */
        for (i = b; i < e; i += DS__VL) {
            size_t w = e - i < (size_t)DS__VL ? e - i : (size_t)DS__VL, j = i - o->lo;
            ds__vec pv[1], gv[1], mv[1], vv1[1];
            if (w == (size_t)DS__VL) pv[0] = ds__vload(p + j), gv[0] = ds__vload(g + j), mv[0] = ds__vload(mm + j), vv1[0] = ds__vload(vv + j);
            else {
                pv[0] = gv[0] = mv[0] = vv1[0] = (ds__vec){0};
                memcpy(pv, p + j, w * sizeof(ds_float)), memcpy(gv, g + j, w * sizeof(ds_float));
                memcpy(mv, mm + j, w * sizeof(ds_float)), memcpy(vv1, vv + j, w * sizeof(ds_float));
            }
            DS__ADAMW_ELEMENT(ds__vec, pv, gv, mv, vv1, 0, decay, b1, b2, step, bc2s, eps, clip, ds__vsqrt);
            if (w == (size_t)DS__VL) ds__vstore(p + j, pv[0]), ds__vstore(mm + j, mv[0]), ds__vstore(vv + j, vv1[0]);
            else memcpy(p + j, pv, w * sizeof(ds_float)), memcpy(mm + j, mv, w * sizeof(ds_float)), memcpy(vv + j, vv1, w * sizeof(ds_float));
        }
#else
        for (i = b; i < e; i++) DS__ADAMW_ELEMENT(ds_float, p, g, mm, vv, i - o->lo, decay, b1, b2, step, bc2s, eps, clip, DS__SQRT);
#endif
    }
}
/* the update of elements [lo, hi) of the flat arrays: p is the whole parameter array, g, m and v
   hold only that range (g[0] is element lo's gradient). The whole model is lo = 0, hi = n; one
   rank's ZeRO-1 slice (ds_dp) is its own range. */
static void ds__adamw_update(ds__exec *ex, ds_float *p, const ds_float *g, ds_float *m, ds_float *v, const ds_tensor *t, int n_tensors,
                             size_t lo, size_t hi, const ds__adamw_hp *hp) {
    ds__adamw_ctx o;
    o.p = p, o.g = g, o.m = m, o.v = v, o.t = t, o.n_tensors = n_tensors, o.lo = lo, o.hi = hi, o.hp = hp;
    ds_pool_for(ex->pool, (hi - lo + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK, ds__adamw_task, &o);
}

#endif /* DS_CUDA: the end of the op layer */

/* RoPE's pair, on either backend's ds__rope_run (the rotation by +a, or by -a: its transpose) */
static void ds__rope_forward(ds__exec *ex, ds_float *qkv, const ds_float *cos, const ds_float *sin, size_t N, size_t T, size_t pos0,
                             size_t H, size_t KV, size_t hd) {
    ds__rope_run(ex, qkv, cos, sin, N, T, pos0, H, KV, hd, 0);
}
static void ds__rope_backward(ds__exec *ex, ds_float *dqkv, const ds_float *cos, const ds_float *sin, size_t N, size_t T, size_t pos0,
                              size_t H, size_t KV, size_t hd) {
    ds__rope_run(ex, dqkv, cos, sin, N, T, pos0, H, KV, hd, 1);
}

/* ============================================================================================
   §2.2 The model
   Parameters, gradients and AdamW's two moments are each one flat allocation, carved into the
   tensors below in Hugging Face order. Activations are one allocation for (B, T), sized once.
   Per layer, q|k|v weights are adjacent rows, as are gate|up, so each pair or triple is a single
   linear over a fused weight [Q, D] or [2F, D]. Every buffer is the backend's memory, allocated
   through the model's ds__exec; the forward, the backward, the step and decoding below are
   lists of op-layer calls and nothing else.
   ============================================================================================ */

enum { DS__T_ATTN_NORM, DS__T_Q, DS__T_K, DS__T_V, DS__T_O, DS__T_FFN_NORM, DS__T_GATE, DS__T_UP, DS__T_DOWN, DS__T_PER_LAYER };

struct ds_model {
    ds_config c;
    int B, T;                  /* capacity */
    int rope_len;              /* positions the RoPE tables cover: T, or max_seq once decoding */
    size_t hd, Q, N;           /* head size; q|k|v row width; B*T */
    int n_tensors;
    ds_tensor *tensors;        /* host memory */
    size_t n_params;
    ds__exec ex;               /* the backend: every buffer below is its memory */
    ds_float *params, *grads, *m, *v;
    ds_float *acts;            /* every activation but those of `lin` (below), one allocation */
    ds_float *res;             /* [L+1][N][D] the residual stream entering each layer (and leaving the last) */
    ds_float *rstd1, *att, *resmid, *rstd2; /* per layer */
    ds_float *rstdf, *logits, *losses;
    /* The activations a backend may store in another format (all but the residual stream and the
       statistics): the linears' inputs ln1, ln2, h
       (per layer) and lnf, read by their linear only (forward and weight gradient); gate|up, the
       product SwiGLU reads; q|k|v, the product RoPE rotates in place and attention reads; y,
       attention's output, the o projection's input. They live in their own allocation, `lin` (lin_n
       values of act_es bytes), in the format the backend stores them in for the model's
       precision (ds__exec_act_size): float on the CPU and in fp32 mode, bf16 in the CUDA build's
       bf16 mode (paper §2.4: bf16 activations; docs/cuda.md). So a value's place is
       ds__lin_at(m, base, i), never base + i. */
    void *lin;
    size_t lin_n, act_es;
    ds_float *gu, *qkv, *y, *ln1, *ln2, *h, *lnf;
    ds_float *dres, *dln, *dqkv, *dy, *dgu, *dh; /* gradients, reused by every layer */
    ds_float *rope_cos, *rope_sin; /* [rope_len][hd/2] */
    ds_float *kv;              /* decoding: [L][K|V][max_seq][KV*hd], then one position's activations */
    ds_float *dec_x, *dec_ln, *dec_rstd, *dec_qkv, *dec_y, *dec_gu, *dec_h;
    int32_t *inputs, *targets; /* the last forward's, in backend memory */
    ds_float *weights, *dloss; /* the last forward's token weights; backward_tokens' dloss */
    ds_float *h_weights;       /* host staging of weights (the same buffer when host_visible) */
    ds_float *h_logits;        /* host copy of the decoding logits (the same buffer when host_visible) */
    void *h_scratch;           /* host arrays of the batch helpers (DPO, eval): see ds__host_scratch */
    int cur_B, cur_T, has_targets;
    int logits_consumed;       /* a backward has overwritten the logits with their gradient */
    size_t logit_rows;         /* rows of logits the model holds: B T, or the chunked classifier's chunk */
    int logits_partial;        /* the last forward ran the classifier in chunks: its logits are not kept */
    int precision;             /* DS_PRECISION_FP32 or _BF16 (ds_model_set_precision) */
    int inference;             /* weights only: no gradients, no AdamW moments (ds_checkpoint_load_inference) */
    int bf16;                  /* BF16 inference (ds_checkpoint_load_bf16): no params; tensor k is bw[k], decoding only */
    int params_mapped;         /* an F32 inference model's params point into a mapped file (maps[]), copy-on-write */
    const uint16_t **bw;       /* [n_tensors] each tensor's bf16 values (into bstore) */
    uint16_t *bstore;          /* the bf16 weights that are not mapped, n_params values (or NULL) */
    void **maps;               /* BF16 files mapped read-only (POSIX): bw[k] points into them */
    size_t *map_lens;
    int n_maps;
    ds_float *dec_nw;          /* decoding a BF16 model: a norm's weights, widened (D values) */
    double wsum, lsum;         /* the last forward's sum of token weights and of weighted losses */
    long steps;
    struct ds_dp *dp;          /* the data-parallel group (ds_dp_new), or NULL */
    int sharded;               /* m and v hold only the group's slice of this rank (world > 1) */
};

static ds_float *ds__P(const ds_model *m, int l, int k) { return m->params + m->tensors[1 + l * DS__T_PER_LAYER + k].offset; }
static ds_float *ds__G(const ds_model *m, int l, int k) { return m->grads + m->tensors[1 + l * DS__T_PER_LAYER + k].offset; }
#define DS__T_EMBED(m) (&(m)->tensors[0])
#define DS__T_NORM(m) (&(m)->tensors[(m)->n_tensors - 2])
#define DS__T_HEAD(m) (&(m)->tensors[(m)->n_tensors - 1])

static void ds__tensor_add(ds_model *m, size_t *off, const char *name, int rows, int cols, int decay) {
    ds_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = *off;
    t->rows = rows;
    t->cols = cols;
    t->numel = (size_t)rows * (size_t)(cols ? cols : 1);
    t->decay = decay;
    *off += t->numel;
}

static void ds__dp_detach(struct ds_dp *d);
DSDEF void ds_model_free(ds_model *m) {
    if (!m) return;
    if (m->dp) ds__dp_detach(m->dp);
    DS_FREE((void *)m->bw);
    DS_FREE(m->bstore);
#ifdef DS__POSIX
    while (m->n_maps > 0) {
        m->n_maps--;
        if (m->maps[m->n_maps] != MAP_FAILED) munmap(m->maps[m->n_maps], m->map_lens[m->n_maps]);
    }
#endif
    DS_FREE(m->maps);
    DS_FREE(m->map_lens);
    if (!m->params_mapped) ds__exec_free(&m->ex, m->params);
    ds__exec_free(&m->ex, m->grads);
    ds__exec_free(&m->ex, m->m);
    ds__exec_free(&m->ex, m->v);
    ds__exec_free(&m->ex, m->acts);
    ds__exec_free(&m->ex, m->lin);
    ds__exec_free(&m->ex, m->rope_cos);
    ds__exec_free(&m->ex, m->kv);
    ds__exec_free(&m->ex, m->inputs);
    ds__exec_free(&m->ex, m->weights);
    ds__exec_destroy(&m->ex);
    if (!m->ex.host_visible) { DS_FREE(m->h_weights); DS_FREE(m->h_logits); }
    DS_FREE(m->h_scratch);
    DS_FREE(m->tensors);
    DS_FREE(m);
}

/* RoPE tables for len positions, computed in double on the host, replacing smaller ones */
static int ds__rope_tables(ds_model *m, int len, ds_error *err) {
    size_t hd = m->hd, half = hd / 2, i, j;
    ds_float *cs = (ds_float *)ds__exec_alloc(&m->ex, (size_t)len * hd, sizeof(ds_float)), *tab;
    if (!cs) {
        int rc = ds__exec_status(&m->ex, err); /* a backend's own reason, or out of memory */
        return rc ? rc : DS__OOM(err);
    }
    tab = m->ex.host_visible ? cs : (ds_float *)ds__calloc((size_t)len * hd, sizeof(ds_float));
    if (!tab) { ds__exec_free(&m->ex, cs); return DS__OOM(err); }
    for (i = 0; i < (size_t)len; i++)
        for (j = 0; j < half; j++) {
            double a = (double)i * pow(m->c.rope_theta, -2.0 * (double)j / (double)hd);
            tab[i * half + j] = (ds_float)cos(a);
            tab[(size_t)len * half + i * half + j] = (ds_float)sin(a);
        }
    ds__from_host(&m->ex, cs, tab, (size_t)len * hd * sizeof(ds_float));
    if (tab != cs) DS_FREE(tab);
    ds__exec_free(&m->ex, m->rope_cos);
    m->rope_cos = cs, m->rope_sin = cs + (size_t)len * half, m->rope_len = len;
    return ds__exec_status(&m->ex, err);
}

/* The model, with RoPE tables for rope_len >= T positions: ds_model_new asks for max_seq, a
   checkpoint load for T only (a checkpoint may be loaded for longer sequences than it was trained
   on; decoding extends the tables to max_seq on first use, so that a config.json's
   max_position_embeddings costs no memory until a generation asks for it); flags:
   DS__NEW_HOST_COPIES, every host access through the backend's copies even on the CPU (tests run
   the portable paths that way); DS__NEW_INFERENCE; DS__NEW_BF16. */
#define DS__NEW_HOST_COPIES 1 /* every host access through the backend's copies, even on the CPU (tests) */
#define DS__NEW_INFERENCE 2   /* weights only: no gradients or moments (a quarter of the memory) */
#define DS__NEW_BF16 4        /* BF16 weights only, for decoding (ds_checkpoint_load_bf16): half of DS__NEW_INFERENCE */
#define DS__NEW_NO_PARAMS 8   /* the loader maps the weights from the file, or allocates them itself */
#define DS__NEW_LOGIT_CHUNK 16 /* the classifier in chunks of DS__TEST_LOGIT_ROWS rows, whatever the backend's choice (tests) */
#define DS__TEST_LOGIT_ROWS 7  /* odd: it divides no B T of the tests */
/* element i of the activation buffer at base: act_es bytes a value inside ds_model.lin, a float
   elsewhere (the decoding buffers, which ds__block_forward also steps through) */
static ds_float *ds__lin_at(const ds_model *m, ds_float *base, size_t i) {
    const char *b = (const char *)base, *l = (const char *)m->lin;
    return b >= l && b < l + m->lin_n * m->act_es ? (ds_float *)(void *)((char *)base + i * m->act_es) : base + i;
}
static void ds__lin_layout(ds_model *m) {
    size_t L = (size_t)m->c.n_layers, D = (size_t)m->c.d_model, F = (size_t)m->c.d_ff, N = m->N;
    m->gu = (ds_float *)m->lin; /* first: the largest, a product's output (the allocation's alignment) */
    m->qkv = ds__lin_at(m, m->gu, L * N * 2 * F);
    m->y = ds__lin_at(m, m->qkv, L * N * m->Q);
    m->ln1 = ds__lin_at(m, m->y, L * N * (size_t)m->c.n_heads * m->hd);
    m->ln2 = ds__lin_at(m, m->ln1, L * N * D);
    m->h = ds__lin_at(m, m->ln2, L * N * D);
    m->lnf = ds__lin_at(m, m->h, L * N * F);
    ds__exec_set_lin(&m->ex, m->lin, m->lin_n * m->act_es);
}
static ds_model *ds__model_new(const ds_config *c, int B, int T, int rope_len, int flags, ds_error *err) {
    int host_visible = !(flags & DS__NEW_HOST_COPIES);
    ds_model *m;
    size_t off = 0, D, L, F, V, N, H, KV, hd, Q, n_acts, i;
    size_t sizes[32];
    ds_float **ptrs[32];
    int l, k, ok = 1, n_parts = 0;
    char name[64];
    if (ds_config_validate(c, err)) return NULL;
    if (B < 1 || T < 1 || T > rope_len) { ds__fail(err, DS_ERR_INVALID, "model: B %d and T %d must be >= 1, T <= max_seq %d", B, T, c->max_seq); return NULL; }
    m = (ds_model *)ds__calloc(1, sizeof *m);
    if (!m) { DS__OOM(err); return NULL; }
    m->c = *c;
    m->B = B;
    m->T = T;
    if (ds__exec_init(&m->ex, err)) { DS_FREE(m); return NULL; }
    if (!host_visible) m->ex.host_visible = 0;
    host_visible = m->ex.host_visible; /* the backend's answer: 0 on a GPU, whatever the flags */
    D = (size_t)c->d_model, L = (size_t)c->n_layers, F = (size_t)c->d_ff, V = (size_t)c->vocab, H = (size_t)c->n_heads;
    KV = (size_t)c->n_kv_heads, N = (size_t)B * (size_t)T, hd = D / H, Q = (H + 2 * KV) * hd;
    m->hd = hd, m->Q = Q, m->N = N;
    m->tensors = (ds_tensor *)ds__calloc(L * DS__T_PER_LAYER + 3, sizeof(ds_tensor));
    if (!m->tensors) goto oom;
    ds__tensor_add(m, &off, "model.embed_tokens.weight", (int)V, (int)D, 1);
    for (l = 0; l < (int)L; l++) {
        static const char *const nm[DS__T_PER_LAYER] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                       "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
                                                       "mlp.down_proj"};
        const int rows[DS__T_PER_LAYER] = {(int)D, (int)(H * hd), (int)(KV * hd), (int)(KV * hd), (int)D, (int)D, (int)F, (int)F, (int)D};
        const int cols[DS__T_PER_LAYER] = {0, (int)D, (int)D, (int)D, (int)(H * hd), 0, (int)D, (int)D, (int)F};
        for (k = 0; k < DS__T_PER_LAYER; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, nm[k]);
            ds__tensor_add(m, &off, name, rows[k], cols[k], cols[k] != 0);
        }
    }
    ds__tensor_add(m, &off, "model.norm.weight", (int)D, 0, 0);
    ds__tensor_add(m, &off, "lm_head.weight", (int)V, (int)D, 1);
    m->n_params = off;
    m->bf16 = (flags & DS__NEW_BF16) != 0;
    m->inference = m->bf16 || (flags & DS__NEW_INFERENCE) != 0;
#ifdef DS_CUDA
    if (m->bf16) { ds__fail(err, DS_ERR_UNSUPPORTED, "BF16 inference models run on the CPU build (load with ds_checkpoint_load_inference)"); goto fail; }
#endif
    if (m->bf16) { /* host memory: decoding's ops read it directly (the CPU build only) */
        m->bw = (const uint16_t **)ds__calloc((size_t)m->n_tensors, sizeof(uint16_t *)); /* the loader sets them */
        if (!m->bw) goto oom;
    } else if (!(flags & DS__NEW_NO_PARAMS)) {
        m->params = (ds_float *)ds__exec_alloc(&m->ex, off, sizeof(ds_float));
        if (!m->params) goto oom;
    }
    if (!m->inference) {
        m->grads = (ds_float *)ds__exec_alloc(&m->ex, off, sizeof(ds_float));
        m->m = (ds_float *)ds__exec_alloc(&m->ex, off, sizeof(ds_float));
        m->v = (ds_float *)ds__exec_alloc(&m->ex, off, sizeof(ds_float));
        if (!m->grads || !m->m || !m->v) goto oom;
    }
    /* activations: a size table, then one allocation carved in order */
#define DS__PART(p, n) (DS_ASSERT(n_parts < 32), ptrs[n_parts] = &(p), sizes[n_parts++] = (n))
    DS__PART(m->res, ds__mul(L + 1, N * D, &ok));
    DS__PART(m->rstd1, L * N);
    DS__PART(m->att, ds__mul(L, ds__attention_saved((size_t)B, (size_t)T, H), &ok));
    DS__PART(m->resmid, ds__mul(L, N * D, &ok));
    DS__PART(m->rstd2, L * N);
    DS__PART(m->rstdf, N);
    m->logit_rows = flags & DS__NEW_LOGIT_CHUNK ? DS__TEST_LOGIT_ROWS : ds__exec_logit_rows(&m->ex, N, V);
    if (m->logit_rows < 1 || m->logit_rows > N) m->logit_rows = N;
    DS__PART(m->logits, ds__mul(m->logit_rows, V, &ok));
    DS__PART(m->losses, N);
    DS__PART(m->dres, N * D);
    DS__PART(m->dln, N * D);
    DS__PART(m->dqkv, N * Q);
    DS__PART(m->dy, N * H * hd);
    DS__PART(m->dgu, N * 2 * F);
    DS__PART(m->dh, N * F);
#undef DS__PART
    for (n_acts = 0, i = 0; i < (size_t)n_parts; i++) {
        if (n_acts + sizes[i] < n_acts) ok = 0;
        n_acts += sizes[i];
    }
    if (!ok) { ds__fail(err, DS_ERR_INVALID, "model: activations for B=%d, T=%d overflow size_t", B, T); goto fail; }
    if (!(m->acts = (ds_float *)ds__exec_alloc(&m->ex, n_acts, sizeof(ds_float)))) goto oom;
    for (off = 0, i = 0; i < (size_t)n_parts; i++) { *ptrs[i] = m->acts + off; off += sizes[i]; }
    /* gate|up (L x N x 2F), q|k|v (L x N x Q), y (L x N x H hd), ln1, ln2 (L x N x D each), h
       (L x N x F), lnf (N x D), in float until ds_model_set_precision asks the backend for
       another format */
    m->lin_n = ds__mul(L, ds__mul(N, 2 * D + 3 * F + Q + H * hd, &ok), &ok) + N * D;
    if (!ok || m->lin_n < N * D) { ds__fail(err, DS_ERR_INVALID, "model: activations for B=%d, T=%d overflow size_t", B, T); goto fail; }
    m->act_es = ds__exec_act_size(&m->ex, DS_PRECISION_FP32);
    if (!(m->lin = ds__exec_alloc(&m->ex, m->lin_n, m->act_es))) goto oom;
    ds__lin_layout(m);
    if (ds__exec_reserve(&m->ex, c, (size_t)B, (size_t)T, m->n_params, m->bf16)) goto oom; /* the ops' scratch */
    m->inputs = (int32_t *)ds__exec_alloc(&m->ex, 2 * N, sizeof(int32_t));
    m->weights = (ds_float *)ds__exec_alloc(&m->ex, 2 * N, sizeof(ds_float));
    if (!m->inputs || !m->weights) goto oom;
    m->targets = m->inputs + N;
    m->dloss = m->weights + N;
    /* B log-probs, B derivatives and B row pointers, then per token 2 ds_float, a float, 2 ids */
    m->h_scratch = DS_MALLOC((size_t)B * (2 * sizeof(double) + sizeof(void *)) + N * (2 * sizeof(ds_float) + sizeof(float) + 2 * sizeof(int32_t)));
    if (!m->h_scratch) goto oom;
    if (host_visible) m->h_weights = m->weights, m->h_logits = m->logits;
    else {
        m->h_weights = (ds_float *)ds__calloc(N, sizeof(ds_float));
        m->h_logits = (ds_float *)ds__calloc(V, sizeof(ds_float));
        if (!m->h_weights || !m->h_logits) goto oom;
    }
    if (ds__rope_tables(m, rope_len, err)) goto fail;
    return m;
oom:
    if (!ds__exec_status(&m->ex, err)) DS__OOM(err); /* a backend's own reason, or out of memory */
fail:
    ds_model_free(m);
    return NULL;
}

/* The host arrays of the batch helpers (a DPO step, an evaluation), carved from the model's host
   scratch, sized by ds_model_new for B rows of T tokens: nothing is allocated per step. */
typedef struct ds__hbuf { double *lp, *d; const ds_seq **rows; ds_float *losses, *dl; float *w; int32_t *in, *tg; } ds__hbuf;
static ds__hbuf ds__host_scratch(const ds_model *m) {
    ds__hbuf b;
    size_t N = m->N, B = (size_t)m->B;
    b.lp = (double *)m->h_scratch, b.d = b.lp + B; /* B log-probs, then B derivatives */
    b.rows = (const ds_seq **)(void *)(b.d + B);
    b.losses = (ds_float *)(void *)(b.rows + B), b.dl = b.losses + N;
    b.w = (float *)(void *)(b.dl + N);
    b.in = (int32_t *)(void *)(b.w + N), b.tg = b.in + N;
    return b;
}

DSDEF ds_model *ds_model_new(const ds_config *c, int B, int T, ds_error *err) { return ds__model_new(c, B, T, c ? c->max_seq : 0, 0, err); }

DSDEF const ds_config *ds_model_config(const ds_model *m) { return &m->c; }
DSDEF size_t ds_model_n_params(const ds_model *m) { return m->n_params; }
DSDEF int ds_model_n_tensors(const ds_model *m) { return m->n_tensors; }
DSDEF const ds_tensor *ds_model_tensor(const ds_model *m, int i) { return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL; }
DSDEF ds_float *ds_model_params(ds_model *m) { return m->params; }
DSDEF ds_float *ds_model_grads(ds_model *m) { return m->grads; }
/* the largest operand of the model's linears, in values: a weight, or an input or output
   gradient of rows x features (the classifier's at its chunk of rows) */
static size_t ds__linear_operand_max(const ds_model *m) {
    size_t D = (size_t)m->c.d_model, F = (size_t)m->c.d_ff, V = (size_t)m->c.vocab, A = (size_t)m->c.n_heads * m->hd, N = m->N, x = 0, i;
    size_t v[10];
    v[0] = V * D, v[1] = 2 * F * D, v[2] = m->Q * D, v[3] = A * D, v[4] = N * D, v[5] = N * m->Q, v[6] = N * A, v[7] = N * 2 * F, v[8] = N * F;
    v[9] = m->logit_rows * V;
    for (i = 0; i < 10; i++) x = v[i] > x ? v[i] : x;
    return x;
}
DSDEF int ds_model_set_precision(ds_model *m, int precision, ds_error *err) {
    void *lin = NULL;
    size_t es;
    int rc;
    if (!m) return ds__fail(err, DS_ERR_INVALID, "precision: NULL model");
    if (precision != DS_PRECISION_FP32 && precision != DS_PRECISION_BF16)
        return ds__fail(err, DS_ERR_INVALID, "precision %d: DS_PRECISION_FP32 or DS_PRECISION_BF16", precision);
    /* the lin block in the new mode's format: the new buffer first, so that a failure leaves
       the model as it was (its contents need not survive: a forward writes them) */
    if ((es = ds__exec_act_size(&m->ex, precision)) != m->act_es && !(lin = ds__exec_alloc(&m->ex, m->lin_n, es))) {
        return (rc = ds__exec_status(&m->ex, err)) ? rc : DS__OOM(err); /* the backend's reason, or out of memory */
    }
    if ((rc = ds__exec_set_precision(&m->ex, precision, ds__linear_operand_max(m), m->params, m->n_params, err))) {
        ds__exec_free(&m->ex, lin);
        return rc;
    }
    if (lin) {
        ds__exec_free(&m->ex, m->lin);
        m->lin = lin, m->act_es = es;
    }
    if (lin || precision != m->precision) m->has_targets = 0, m->cur_B = 0, m->cur_T = 0; /* what a forward saved for its backward is gone */
    ds__lin_layout(m);
    m->precision = precision;
    return DS_OK;
}
DSDEF int ds_model_precision(const ds_model *m) { return m ? m->precision : DS_PRECISION_FP32; }
DSDEF const ds_float *ds_model_logits(const ds_model *m) { return m->logits_partial ? NULL : m->logits; }
DSDEF long ds_model_steps_done(const ds_model *m) { return m->steps; }
DSDEF void ds_model_zero_grad(ds_model *m) {
    if (m && m->grads) ds__zero(&m->ex, m->grads, m->n_params);
}

/* ---- the portable copies: host <-> the backend's memory ------------------------------------- */
static ds_float *ds__model_array(const ds_model *m, int which) {
    switch (which) {
    case DS_PARAMS: return m->params;
    case DS_GRADS: return m->grads;
    case DS_ADAM_M: return m->sharded ? NULL : m->m; /* (a ZeRO-1 slice is not the whole array) */
    case DS_ADAM_V: return m->sharded ? NULL : m->v;
    default: return NULL;
    }
}
DSDEF int ds_model_get(const ds_model *m, int which, size_t offset, size_t n, ds_float *out, ds_error *err) {
    ds_float *a = m ? ds__model_array(m, which) : NULL;
    if (m && m->bf16 && which == DS_PARAMS && out && offset <= m->n_params && n <= m->n_params - offset) { /* widened, tensor by tensor */
        size_t i;
        int k = 0;
        for (i = 0; i < n; i++) {
            size_t at = offset + i;
            while (k + 1 < m->n_tensors && m->tensors[k + 1].offset <= at) k++; /* (at only grows) */
            out[i] = ds__bf16_value(m->bw[k][at - m->tensors[k].offset]);
        }
        return DS_OK;
    }
    if (m && m->sharded && (which == DS_ADAM_M || which == DS_ADAM_V))
        return ds__fail(err, DS_ERR_INVALID, "ds_model_get: the AdamW moments are sharded across the ranks of a ds_dp (ZeRO-1)");
    if (!a || (!out && n) || offset > m->n_params || n > m->n_params - offset)
        return ds__fail(err, DS_ERR_INVALID, "ds_model_get: bad argument (array %d, [%zu, +%zu) of %zu)", which, offset, n, m ? m->n_params : 0);
    ds__to_host((ds__exec *)&m->ex, out, a + offset, n * sizeof(ds_float));
    return ds__exec_status((ds__exec *)&m->ex, err);
}
DSDEF int ds_model_set(ds_model *m, int which, size_t offset, size_t n, const ds_float *in, ds_error *err) {
    ds_float *a = m ? ds__model_array(m, which) : NULL;
    if (m && m->bf16) return ds__fail(err, DS_ERR_UNSUPPORTED, "ds_model_set: a BF16 inference model's weights are read-only");
    if (m && m->sharded && (which == DS_ADAM_M || which == DS_ADAM_V))
        return ds__fail(err, DS_ERR_INVALID, "ds_model_set: the AdamW moments are sharded across the ranks of a ds_dp (ZeRO-1)");
    if (!a || (!in && n) || offset > m->n_params || n > m->n_params - offset)
        return ds__fail(err, DS_ERR_INVALID, "ds_model_set: bad argument (array %d, [%zu, +%zu) of %zu)", which, offset, n, m ? m->n_params : 0);
    ds__from_host(&m->ex, a + offset, in, n * sizeof(ds_float));
    return ds__exec_status(&m->ex, err);
}
DSDEF int ds_model_get_tensor(const ds_model *m, int i, ds_float *out, ds_error *err) {
    const ds_tensor *t = m ? ds_model_tensor(m, i) : NULL;
    if (!t) return ds__fail(err, DS_ERR_INVALID, "ds_model_get_tensor: no tensor %d", i);
    return ds_model_get(m, DS_PARAMS, t->offset, t->numel, out, err);
}
DSDEF int ds_model_set_tensor(ds_model *m, int i, const ds_float *in, ds_error *err) {
    const ds_tensor *t = m ? ds_model_tensor(m, i) : NULL;
    if (!t) return ds__fail(err, DS_ERR_INVALID, "ds_model_set_tensor: no tensor %d", i);
    return ds_model_set(m, DS_PARAMS, t->offset, t->numel, in, err);
}
DSDEF int ds_model_copy_logits(const ds_model *m, size_t row, size_t n_rows, ds_float *out, ds_error *err) {
    size_t rows = m ? (size_t)m->cur_B * (size_t)m->cur_T : 0;
    if (!m || (!out && n_rows) || row > rows || n_rows > rows - row)
        return ds__fail(err, DS_ERR_INVALID, "ds_model_copy_logits: rows [%zu, +%zu) of the last forward's %zu", row, n_rows, rows);
    if (m->logits_partial)
        return ds__fail(err, DS_ERR_INVALID, "ds_model_copy_logits: the last forward ran the classifier in chunks of %zu rows and kept no logits "
                        "(a forward without targets keeps them)", m->logit_rows);
    ds__to_host((ds__exec *)&m->ex, out, m->logits + row * (size_t)m->c.vocab, n_rows * (size_t)m->c.vocab * sizeof(ds_float));
    return ds__exec_status((ds__exec *)&m->ex, err);
}
DSDEF int ds_model_copy_token_losses(const ds_model *m, ds_float *out, ds_error *err) {
    if (!m || !out) return ds__fail(err, DS_ERR_INVALID, "ds_model_copy_token_losses: NULL argument");
    if (!m->has_targets) return ds__fail(err, DS_ERR_INVALID, "ds_model_copy_token_losses: the last forward had no targets");
    ds__to_host((ds__exec *)&m->ex, out, m->losses, (size_t)m->cur_B * (size_t)m->cur_T * sizeof(ds_float));
    return ds__exec_status((ds__exec *)&m->ex, err);
}

/* ---- the public RNG: splitmix64 (the library's one stream; ds_tokens_batch draws from it) ---- */
DSDEF uint64_t ds_rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
DSDEF double ds_rng_uniform(uint64_t *s) { return (double)(ds_rng_next(s) >> 11) / 9007199254740992.0; }
#define ds__splitmix ds_rng_next
/* Box-Muller on the stream: a normal deviate that is the same on every platform */
static double ds__normal(uint64_t *s) {
    double u1 = ((double)(ds__splitmix(s) >> 11) + 1.0) / 9007199254740993.0, u2 = (double)(ds__splitmix(s) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

DSDEF int ds_model_init(ds_model *m, uint64_t seed) {
    int i;
    size_t j, biggest = 0;
    ds_float *host = NULL;
    if (!m || m->bf16) return DS_ERR_INVALID;
    for (i = 0; i < m->n_tensors; i++) biggest = m->tensors[i].numel > biggest ? m->tensors[i].numel : biggest;
    if (!m->ex.host_visible && !(host = (ds_float *)ds__calloc(biggest, sizeof(ds_float)))) return DS_ERR_NOMEM;
    for (i = 0; i < m->n_tensors; i++) {
        const ds_tensor *t = &m->tensors[i];
        ds_float *p = host ? host : m->params + t->offset;
        uint64_t s = seed ^ ((uint64_t)(i + 1) * 0xD1B54A32D192ED03ull); /* each tensor its own stream */
        for (j = 0; j < t->numel; j++) p[j] = t->cols ? (ds_float)(m->c.init_std * ds__normal(&s)) : 1;
        ds__from_host(&m->ex, m->params + t->offset, p, t->numel * sizeof(ds_float));
    }
    DS_FREE(host);
    if (m->m) ds__zero(&m->ex, m->m, m->n_params), ds__zero(&m->ex, m->v, m->n_params);
    m->steps = 0;
    return ds__exec_status(&m->ex, NULL);
}

/* ---- one block, for a batch (training) or one position (decoding) -----------------------------
   block l:  ln1 = rmsnorm(x);  q|k|v = ln1 Wqkv^T;  rope(q, k);  y = attention(q, k, v)
             mid = x + y Wo^T;  ln2 = rmsnorm(mid);  gate|up = ln2 Wgu^T;  h = silu(gate) * up
             x'  = mid + h Wdown^T
   The activations of one block: layer l's slots of the training buffers, or decoding's one
   position (where x, mid and x' are one buffer, so the residual copies vanish). pos < 0: the
   causal attention over the batch; pos >= 0: position pos of one sequence, through the cache. */
typedef struct ds__block {
    ds_float *x, *ln1, *rstd1, *qkv, *att, *y, *mid, *ln2, *rstd2, *gu, *h, *out;
} ds__block;

static ds__block ds__block_train(const ds_model *m, size_t l) {
    ds__block a;
    size_t NC = m->N, D = (size_t)m->c.d_model, F = (size_t)m->c.d_ff, H = (size_t)m->c.n_heads;
    a.x = m->res + l * NC * D, a.ln1 = ds__lin_at(m, m->ln1, l * NC * D), a.rstd1 = m->rstd1 + l * NC, a.qkv = ds__lin_at(m, m->qkv, l * NC * m->Q);
    a.att = m->att + l * ds__attention_saved((size_t)m->B, (size_t)m->T, H), a.y = ds__lin_at(m, m->y, l * NC * H * m->hd), a.mid = m->resmid + l * NC * D;
    a.ln2 = ds__lin_at(m, m->ln2, l * NC * D), a.rstd2 = m->rstd2 + l * NC, a.gu = ds__lin_at(m, m->gu, l * NC * 2 * F), a.h = ds__lin_at(m, m->h, l * NC * F);
    a.out = m->res + (l + 1) * NC * D;
    return a;
}

static void ds__block_forward(ds_model *m, int l, const ds__block *a, size_t B, size_t T, int pos) {
    ds__exec *ex = &m->ex;
    const ds_config *c = &m->c;
    size_t D = (size_t)c->d_model, F = (size_t)c->d_ff, H = (size_t)c->n_heads, KV = (size_t)c->n_kv_heads, hd = m->hd, N = B * T;
    ds__rmsnorm_forward(ex, a->ln1, a->rstd1, a->x, ds__P(m, l, DS__T_ATTN_NORM), N, D, c->norm_eps);
    ds__linear_forward(ex, a->qkv, a->ln1, ds__P(m, l, DS__T_Q), N, D, m->Q, 0);
    ds__rope_forward(ex, a->qkv, m->rope_cos, m->rope_sin, N, T, pos < 0 ? 0 : (size_t)pos, H, KV, hd);
    if (pos < 0) {
        ds__attention_forward(ex, a->y, a->att, a->qkv, B, T, H, KV, hd);
    } else { /* through the cache: one sequence (B = 1) at positions pos .. pos + T - 1 */
        ds_float *kc = m->kv + (size_t)l * 2 * (size_t)c->max_seq * KV * hd, *vc = kc + (size_t)c->max_seq * KV * hd;
        size_t t;
        for (t = 0; t < T; t++) ds__kv_store(ex, kc, vc, ds__lin_at(m, a->qkv, t * m->Q), (size_t)pos + t, H, KV, hd);
        for (t = 0; t < T; t++) /* causal: up to its own position */
            ds__attention_decode(ex, ds__lin_at(m, a->y, t * H * hd), ds__lin_at(m, a->qkv, t * m->Q), kc, vc, (size_t)pos + t, H, KV, hd);
    }
    ds__residual_forward(ex, a->mid, a->x, N * D);
    ds__linear_forward(ex, a->mid, a->y, ds__P(m, l, DS__T_O), N, H * hd, D, 1);
    ds__rmsnorm_forward(ex, a->ln2, a->rstd2, a->mid, ds__P(m, l, DS__T_FFN_NORM), N, D, c->norm_eps);
    ds__linear_forward(ex, a->gu, a->ln2, ds__P(m, l, DS__T_GATE), N, D, 2 * F, 0);
    ds__swiglu_forward(ex, a->h, a->gu, N, F);
    ds__residual_forward(ex, a->out, a->mid, N * D);
    ds__linear_forward(ex, a->out, a->h, ds__P(m, l, DS__T_DOWN), N, F, D, 1);
}

/* ---- the forward pass: embedding, L x block, final norm, LM head, loss ------------------------ */
DSDEF int ds_model_forward(ds_model *m, const int32_t *inputs, const int32_t *targets, const float *weights, int B, int T,
                           ds_pool *pool, double *loss, ds_error *err) {
    const ds_config *c;
    size_t N, D, V, n, l;
    double lsum = 0;
    int rc;
    if (m && m->bf16) return ds__fail(err, DS_ERR_UNSUPPORTED, "forward: a BF16 inference model decodes only (ds_model_forward_token); load with ds_checkpoint_load_inference to evaluate");
    if (!m || !inputs || B < 1 || T < 1 || B > m->B || T > m->T)
        return ds__fail(err, DS_ERR_INVALID, "forward: B=%d T=%d (the model holds B <= %d, T <= %d)", B, T, m ? m->B : 0, m ? m->T : 0);
    c = &m->c, D = (size_t)c->d_model, V = (size_t)c->vocab, N = (size_t)B * (size_t)T;
    for (n = 0; n < N; n++) {
        if (inputs[n] < 0 || inputs[n] >= c->vocab) return ds__fail(err, DS_ERR_INVALID, "forward: input %zu is token %d, outside [0, %d)", n, (int)inputs[n], c->vocab);
        if (targets && (targets[n] < 0 || targets[n] >= c->vocab)) return ds__fail(err, DS_ERR_INVALID, "forward: target %zu is token %d, outside [0, %d)", n, (int)targets[n], c->vocab);
        if (weights && !(weights[n] >= 0 && weights[n] < 1e30f)) return ds__fail(err, DS_ERR_INVALID, "forward: weight %zu is negative or not finite", n);
    }
    if (!targets && N > m->logit_rows)
        return ds__fail(err, DS_ERR_INVALID, "forward: without targets every row's logits are kept, and this model holds %zu rows of them "
                        "(its classifier's chunk; B*T = %zu)", m->logit_rows, N);
    m->ex.pool = pool;
    m->cur_B = B, m->cur_T = T, m->has_targets = targets != NULL, m->logits_consumed = 0;
    m->logits_partial = targets && N > m->logit_rows;
    ds__from_host(&m->ex, m->inputs, inputs, N * sizeof(int32_t));
    ds__embedding_forward(&m->ex, m->res, m->inputs, m->params + DS__T_EMBED(m)->offset, N, D);
    for (l = 0; l < (size_t)c->n_layers; l++) {
        ds__block a = ds__block_train(m, l);
        ds__block_forward(m, (int)l, &a, (size_t)B, (size_t)T, -1);
    }
    ds__rmsnorm_forward(&m->ex, m->lnf, m->rstdf, m->res + (size_t)c->n_layers * m->N * D, m->params + DS__T_NORM(m)->offset, N, D, c->norm_eps);
    if (!targets) {
        ds__linear_forward(&m->ex, m->logits, m->lnf, m->params + DS__T_HEAD(m)->offset, N, D, V, 0);
        if (loss) *loss = 0;
        return ds__exec_status(&m->ex, err);
    }
    for (n = 0; n < N; n++) m->h_weights[n] = weights ? (ds_float)weights[n] : 1;
    ds__from_host(&m->ex, m->targets, targets, N * sizeof(int32_t));
    ds__from_host(&m->ex, m->weights, m->h_weights, N * sizeof(ds_float));
    /* logits = lnf Wlm^T and each row's loss, logit_rows rows at a time: with a chunk smaller than
       B T the [B T, V] logits never exist at once (the backward computes each chunk again) */
    for (n = 0; n < N; n += m->logit_rows) {
        size_t nr = N - n < m->logit_rows ? N - n : m->logit_rows;
        ds__linear_forward(&m->ex, m->logits, ds__lin_at(m, m->lnf, n * D), m->params + DS__T_HEAD(m)->offset, nr, D, V, 0);
        ds__crossentropy_forward(&m->ex, m->losses + n, m->logits, m->targets + n, nr, V);
    }
    ds__loss_sum(&m->ex, m->losses, m->weights, N, &m->wsum, &lsum);
    m->lsum = lsum;
    if ((rc = ds__exec_status(&m->ex, err))) return rc;
    if (loss) *loss = m->wsum > 0 ? lsum / m->wsum : 0.0;
    if (!(lsum == lsum) || isinf(lsum)) return ds__fail(err, DS_ERR_NUMERIC, "forward: the loss is not finite");
    return DS_OK;
}

/* ---- the backward pass: the forward in reverse, each line the derivative of its twin --------- */
static void ds__backward(ds_model *m, const ds_float *dloss, double scale) {
    ds__exec *ex = &m->ex;
    const ds_config *c = &m->c;
    size_t B = (size_t)m->cur_B, T = (size_t)m->cur_T, N = B * T, D = (size_t)c->d_model, F = (size_t)c->d_ff, V = (size_t)c->vocab;
    size_t H = (size_t)c->n_heads, KV = (size_t)c->n_kv_heads, hd = m->hd;
    size_t n;
    int l;
    for (n = 0; n < N; n += m->logit_rows) { /* the classifier, a chunk of rows at a time (one chunk: all of them) */
        size_t nr = N - n < m->logit_rows ? N - n : m->logit_rows;
        /* the chunked classifier's logits are gone: this chunk's again (the same bits as the forward's) */
        if (m->logits_partial) ds__linear_forward(ex, m->logits, ds__lin_at(m, m->lnf, n * D), m->params + DS__T_HEAD(m)->offset, nr, D, V, 0);
        /* J = scale * sum_n dloss_n loss_n:  dlogits (in place) */
        ds__crossentropy_backward(ex, m->logits, m->targets + n, dloss + n, scale, nr, V);
        /* logits = lnf Wlm^T: this chunk's rows of dlnf, and its part of dWlm (added, its rows in order) */
        ds__linear_backward(ex, m->dln + n * D, 0, m->grads + DS__T_HEAD(m)->offset, m->logits, ds__lin_at(m, m->lnf, n * D), m->params + DS__T_HEAD(m)->offset,
                            nr, D, V);
    }
    /* lnf = rmsnorm(x_L): the stream's gradient starts here (written, not added) */
    ds__rmsnorm_backward(ex, m->dres, 0, m->grads + DS__T_NORM(m)->offset, m->dln, m->res + (size_t)c->n_layers * m->N * D,
                         m->params + DS__T_NORM(m)->offset, m->rstdf, N, D);
    for (l = c->n_layers - 1; l >= 0; l--) {
        ds__block a = ds__block_train(m, (size_t)l);
        /* x' = mid + h Wdown^T: dres reaches mid unchanged; dh = dres Wdown */
        ds__linear_backward(ex, m->dh, 0, ds__G(m, l, DS__T_DOWN), m->dres, a.h, ds__P(m, l, DS__T_DOWN), N, F, D);
        /* h = silu(gate) * up */
        ds__swiglu_backward(ex, m->dgu, m->dh, a.gu, N, F);
        /* gate|up = ln2 Wgu^T */
        ds__linear_backward(ex, m->dln, 0, ds__G(m, l, DS__T_GATE), m->dgu, a.ln2, ds__P(m, l, DS__T_GATE), N, D, 2 * F);
        /* ln2 = rmsnorm(mid): dmid = dres + rmsnorm'(dln) */
        ds__rmsnorm_backward(ex, m->dres, 1, ds__G(m, l, DS__T_FFN_NORM), m->dln, a.mid, ds__P(m, l, DS__T_FFN_NORM), a.rstd2, N, D);
        /* mid = x + y Wo^T: dres reaches x unchanged; dy = dres Wo */
        ds__linear_backward(ex, m->dy, 0, ds__G(m, l, DS__T_O), m->dres, a.y, ds__P(m, l, DS__T_O), N, H * hd, D);
        /* y = attention(q, k, v) */
        ds__attention_backward(ex, m->dqkv, m->dy, a.y, a.qkv, a.att, B, T, H, KV, hd);
        /* q, k = rope(q, k) */
        ds__rope_backward(ex, m->dqkv, m->rope_cos, m->rope_sin, N, T, 0, H, KV, hd);
        /* q|k|v = ln1 Wqkv^T */
        ds__linear_backward(ex, m->dln, 0, ds__G(m, l, DS__T_Q), m->dqkv, a.ln1, ds__P(m, l, DS__T_Q), N, D, m->Q);
        /* ln1 = rmsnorm(x): dx = dmid + rmsnorm'(dln) */
        ds__rmsnorm_backward(ex, m->dres, 1, ds__G(m, l, DS__T_ATTN_NORM), m->dln, a.x, ds__P(m, l, DS__T_ATTN_NORM), a.rstd1, N, D);
    }
    /* x_0 = embed(inputs) */
    ds__embedding_backward(ex, m->grads + DS__T_EMBED(m)->offset, m->dres, m->inputs, N, D);
}

DSDEF int ds_model_backward(ds_model *m, float grad_scale, ds_pool *pool, ds_error *err) {
    if (m && m->inference) return ds__fail(err, DS_ERR_INVALID, "backward: this model was loaded for inference (no gradients)");
    if (!m || !m->has_targets) return ds__fail(err, DS_ERR_INVALID, "backward: the last forward had no targets");
    if (m->logits_consumed) return ds__fail(err, DS_ERR_INVALID, "backward: already done for the last forward (its logits hold their gradient)");
    if (m->wsum <= 0) return DS_OK; /* every weight was 0: no gradient */
    m->ex.pool = pool;
    ds__backward(m, m->weights, (double)grad_scale / m->wsum);
    m->logits_consumed = 1;
    return ds__exec_status(&m->ex, err);
}

DSDEF const ds_float *ds_model_token_losses(const ds_model *m) { return m && m->has_targets ? m->losses : NULL; }

DSDEF int ds_model_backward_tokens(ds_model *m, const ds_float *dloss, ds_pool *pool, ds_error *err) {
    size_t n, N;
    if (m && m->inference) return ds__fail(err, DS_ERR_INVALID, "backward: this model was loaded for inference (no gradients)");
    if (!m || !dloss || !m->has_targets) return ds__fail(err, DS_ERR_INVALID, "backward: the last forward had no targets");
    if (m->logits_consumed) return ds__fail(err, DS_ERR_INVALID, "backward: already done for the last forward (its logits hold their gradient)");
    N = (size_t)m->cur_B * (size_t)m->cur_T;
    for (n = 0; n < N; n++)
        if (!(dloss[n] == dloss[n]) || isinf(dloss[n])) return ds__fail(err, DS_ERR_NUMERIC, "backward: dloss[%zu] is not finite", n);
    m->ex.pool = pool;
    ds__from_host(&m->ex, m->dloss, dloss, N * sizeof(ds_float));
    ds__backward(m, m->dloss, 1.0);
    m->logits_consumed = 1;
    return ds__exec_status(&m->ex, err);
}

/* ============================================================================================
   §2.3 AdamW with global-norm clipping, and the learning-rate schedules
   ============================================================================================ */

DSDEF ds_adamw ds_adamw_default(void) {
    ds_adamw o;
    o.beta1 = 0.9, o.beta2 = 0.95, o.eps = 1e-8, o.weight_decay = 0.1, o.grad_clip = 1.0;
    return o;
}

/* the scalars of AdamW step `step` (1-based) at lr, with clip the global-norm factor for a gradient
   of norm `norm` (torch.nn.utils.clip_grad_norm_: max_norm / (norm + 1e-6), at most 1) */
static ds__adamw_hp ds__adamw_scalars(const ds_adamw *opt, double lr, long step, double norm) {
    ds__adamw_hp hp;
    hp.lr = lr, hp.b1 = opt->beta1, hp.b2 = opt->beta2, hp.eps = opt->eps, hp.wd = opt->weight_decay;
    hp.bc1 = 1.0 - pow(opt->beta1, (double)step);
    hp.bc2 = 1.0 - pow(opt->beta2, (double)step);
    hp.clip = 1.0;
    if (opt->grad_clip > 0 && opt->grad_clip / (norm + 1e-6) < 1.0) hp.clip = opt->grad_clip / (norm + 1e-6);
    return hp;
}

DSDEF int ds_model_step(ds_model *m, const ds_adamw *opt, double lr, double *grad_norm, ds_pool *pool, ds_error *err) {
    ds__adamw_hp hp;
    double norm;
    int rc;
    ds_adamw def = ds_adamw_default();
    if (!m) return ds__fail(err, DS_ERR_INVALID, "ds_model_step: NULL model");
    if (m->inference) return ds__fail(err, DS_ERR_INVALID, "ds_model_step: this model was loaded for inference (no optimizer state)");
    if (m->sharded) return ds__fail(err, DS_ERR_INVALID, "ds_model_step: the model's AdamW moments are sharded by a ds_dp (step with ds_dp_step)");
    if (!opt) opt = &def;
    m->ex.pool = pool;
    norm = sqrt(ds__sqnorm(&m->ex, m->grads, m->n_params));
    if ((rc = ds__exec_status(&m->ex, err))) return rc;
    if (grad_norm) *grad_norm = norm;
    if (!(norm == norm) || isinf(norm))
        return ds__fail(err, DS_ERR_NUMERIC, "step %ld: the gradient norm is not finite; the step was not applied", m->steps + 1);
    hp = ds__adamw_scalars(opt, lr, ++m->steps, norm);
    ds__adamw_update(&m->ex, m->params, m->grads, m->m, m->v, m->tensors, m->n_tensors, 0, m->n_params, &hp);
    return ds__exec_status(&m->ex, err);
}
DSDEF ds_schedule ds_schedule_multistep(double peak_lr, long warmup_steps, long total_steps) {
    ds_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = DS_SCHED_MULTISTEP, s.peak_lr = peak_lr, s.warmup_steps = warmup_steps, s.total_steps = total_steps;
    s.stage1 = 0.8, s.stage2 = 0.9, s.drop1 = 0.316, s.drop2 = 0.1, s.min_ratio = 0.1;
    return s;
}
DSDEF ds_schedule ds_schedule_cosine(double peak_lr, long warmup_steps, long total_steps) {
    ds_schedule s = ds_schedule_multistep(peak_lr, warmup_steps, total_steps);
    s.kind = DS_SCHED_COSINE;
    return s;
}

/* §2.3: linear warmup to the peak over warmup_steps; then
     multi-step: the peak until stage1 (80%) of the steps, drop1 (31.6%) of it until stage2
                 (90%), drop2 (10%) after. Stage 1 does not depend on the run's length beyond
                 its 80% mark, which is what lets one stage-1 checkpoint serve runs of several
                 lengths (continual training).
     cosine:     from the peak down to min_ratio of it along half a cosine, ending at the last step */
DSDEF double ds_schedule_lr(const ds_schedule *s, long step) {
    if (step < s->warmup_steps) return s->peak_lr * (double)(step + 1) / (double)s->warmup_steps;
    switch (s->kind) {
    case DS_SCHED_MULTISTEP:
        if (step < (long)floor(s->stage1 * (double)s->total_steps + 1e-9)) return s->peak_lr;
        if (step < (long)floor(s->stage2 * (double)s->total_steps + 1e-9)) return s->peak_lr * s->drop1;
        return s->peak_lr * s->drop2;
    case DS_SCHED_COSINE: {
        double span = (double)(s->total_steps - 1 - s->warmup_steps), p = span > 0 ? (double)(step - s->warmup_steps) / span : 1.0;
        if (p > 1) p = 1;
        return s->peak_lr * (s->min_ratio + (1 - s->min_ratio) * 0.5 * (1 + cos(3.141592653589793 * p)));
    }
    default: return s->peak_lr;
    }
}


/* ============================================================================================
   §2.4 Checkpoints
   ============================================================================================ */

#ifdef DS__POSIX
#include <sys/stat.h>
#endif

/* ---- config.json ---------------------------------------------------------------------------- */

DSDEF int ds_config_to_json(const ds_config *c, int dtype, int32_t bos, int32_t eos, ds_buf *o, ds_error *err) {
    if (!c || !o) return ds__fail(err, DS_ERR_INVALID, "ds_config_to_json: NULL argument");
    ds_buf_puts(o, "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n");
    ds_buf_printf(o, "  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n",
                  c->vocab, c->d_model, c->d_ff, c->n_layers);
    ds_buf_printf(o, "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"max_position_embeddings\": %d,\n",
                  c->n_heads, c->n_kv_heads, c->max_seq);
    ds_buf_printf(o, "  \"rms_norm_eps\": %.17g,\n  \"rope_theta\": %.17g,\n  \"initializer_range\": %.17g,\n", c->norm_eps, c->rope_theta,
                  c->init_std);
    ds_buf_puts(o, "  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"mlp_bias\": false,\n  \"rope_scaling\": null,\n"
                   "  \"tie_word_embeddings\": false,\n");
    if (bos >= 0) ds_buf_printf(o, "  \"bos_token_id\": %d,\n", (int)bos);
    if (eos >= 0) ds_buf_printf(o, "  \"eos_token_id\": %d,\n", (int)eos);
    ds_buf_printf(o, "  \"torch_dtype\": \"%s\"\n}\n", dtype == DS_DTYPE_BF16 ? "bfloat16" : sizeof(ds_float) == 8 ? "float64" : "float32");
    return o->oom ? DS__OOM(err) : DS_OK;
}

static int ds__cfg_int(const ds_json *root, const char *key, int required, int dflt, int *out, ds_error *err) {
    const ds_json *j = ds_json_get(root, key);
    int64_t v;
    if (!j || j->type == DS_JSON_NULL) {
        if (required) return ds__fail(err, DS_ERR_FORMAT, "config.json: \"%s\" is missing", key);
        *out = dflt;
        return DS_OK;
    }
    if (!ds_json_int(j, 1, INT32_MAX, &v)) return ds__fail(err, DS_ERR_FORMAT, "config.json: \"%s\" is not a positive integer", key);
    *out = (int)v;
    return DS_OK;
}
static int ds__cfg_num(const ds_json *root, const char *key, double dflt, double *out, ds_error *err) {
    const ds_json *j = ds_json_get(root, key);
    if (!j || j->type == DS_JSON_NULL) { *out = dflt; return DS_OK; }
    if (j->type != DS_JSON_NUMBER || !(j->num > 0)) return ds__fail(err, DS_ERR_FORMAT, "config.json: \"%s\" is not a positive number", key);
    *out = j->num;
    return DS_OK;
}

/* tie: set to 1 when the checkpoint ties the LM head to the embedding */
/* the first key that an object holds twice, or NULL. JSON readers disagree on duplicates
   (Python's json and Hugging Face take the last, others the first), so the files a checkpoint
   trusts -- config.json and the safetensors headers -- refuse them. */
static const char *ds__json_duplicate_key(const ds_json *obj) {
    const ds_json *a, *b;
    for (a = obj->child; a; a = a->next)
        for (b = a->next; b; b = b->next)
            if (a->key_len == b->key_len && !memcmp(a->key, b->key, a->key_len)) return a->key;
    return NULL;
}

static int ds__config_from_doc(const ds_json *r, ds_config *c, int *tie, ds_error *err) {
    const ds_json *j;
    const char *dup;
    int rc, hd;
    if (!r || r->type != DS_JSON_OBJECT) return ds__fail(err, DS_ERR_FORMAT, "config.json: the top level is not an object");
    if ((dup = ds__json_duplicate_key(r))) return ds__fail(err, DS_ERR_FORMAT, "config.json: the key \"%.60s\" appears twice", dup);
    memset(c, 0, sizeof *c);
    if ((j = ds_json_get(r, "model_type")) && !ds__jis(j, "llama"))
        return ds__fail(err, DS_ERR_UNSUPPORTED, "config.json: model_type \"%.40s\" (deepseek.h implements \"llama\")", j->type == DS_JSON_STRING ? j->str : "?");
    if ((j = ds_json_get(r, "hidden_act")) && !ds__jis(j, "silu"))
        return ds__fail(err, DS_ERR_UNSUPPORTED, "config.json: hidden_act is not \"silu\" (SwiGLU)");
    if (!ds__jfalse(ds_json_get(r, "attention_bias")) || !ds__jfalse(ds_json_get(r, "mlp_bias")))
        return ds__fail(err, DS_ERR_UNSUPPORTED, "config.json: biases are not supported (DeepSeek LLM has none)");
    if (!ds__jnull(ds_json_get(r, "rope_scaling"))) return ds__fail(err, DS_ERR_UNSUPPORTED, "config.json: rope_scaling is not supported");
    if ((rc = ds__cfg_int(r, "vocab_size", 1, 0, &c->vocab, err)) || (rc = ds__cfg_int(r, "hidden_size", 1, 0, &c->d_model, err)) ||
        (rc = ds__cfg_int(r, "intermediate_size", 1, 0, &c->d_ff, err)) || (rc = ds__cfg_int(r, "num_hidden_layers", 1, 0, &c->n_layers, err)) ||
        (rc = ds__cfg_int(r, "num_attention_heads", 1, 0, &c->n_heads, err)) ||
        (rc = ds__cfg_int(r, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads, err)) ||
        (rc = ds__cfg_int(r, "max_position_embeddings", 0, 2048, &c->max_seq, err)) ||
        (rc = ds__cfg_num(r, "rms_norm_eps", 1e-6, &c->norm_eps, err)) || (rc = ds__cfg_num(r, "rope_theta", 10000.0, &c->rope_theta, err)) ||
        (rc = ds__cfg_num(r, "initializer_range", 0.006, &c->init_std, err)))
        return rc;
    if ((j = ds_json_get(r, "head_dim")) && j->type != DS_JSON_NULL) {
        if ((rc = ds__cfg_int(r, "head_dim", 1, 0, &hd, err))) return rc;
        if (hd * c->n_heads != c->d_model) return ds__fail(err, DS_ERR_UNSUPPORTED, "config.json: head_dim %d is not hidden_size / num_attention_heads", hd);
    }
    j = ds_json_get(r, "tie_word_embeddings");
    if (j && j->type != DS_JSON_TRUE && j->type != DS_JSON_FALSE) return ds__fail(err, DS_ERR_FORMAT, "config.json: tie_word_embeddings is not a boolean");
    if (tie) *tie = j && j->type == DS_JSON_TRUE;
    return ds_config_validate(c, err);
}

DSDEF int ds_config_from_json(const char *json, size_t len, ds_config *c, ds_error *err) {
    ds_json_doc *d = ds_json_parse(json, len, err);
    int rc;
    if (!d) return err ? err->code : DS_ERR_FORMAT;
    rc = ds__config_from_doc(d->root, c, NULL, err);
    ds_json_free(d);
    return rc;
}

/* ---- safetensors -----------------------------------------------------------------------------
   8 bytes: the header's length N (little-endian); N bytes of JSON: {"name": {"dtype": "F32",
   "shape": [rows, cols], "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}; then
   the data, every tensor row-major, little-endian, the offsets relative to the data's start. */

static int ds__little_endian(void) { const uint16_t x = 1; unsigned char b; memcpy(&b, &x, 1); return b == 1; }

/* A 64-bit checksum of bytes (FNV-1a over 8-byte words, then the tail): it detects silent
   corruption of a checkpoint's files, not tampering. Checkpoints store it as 16 hex digits. It is
   taken incrementally (ds__sum_add on the pieces, in order, gives the same value as the whole). */
typedef struct { uint64_t h, n; unsigned char tail[8]; int nt; } ds__sum;
static void ds__sum_init(ds__sum *s) { s->h = 0xCBF29CE484222325ull, s->n = 0, s->nt = 0; }
static void ds__sum_word(ds__sum *s, const unsigned char *b) {
    uint64_t w;
    memcpy(&w, b, 8);
    s->h = (s->h ^ w) * 0x100000001B3ull;
    s->h ^= s->h >> 29;
}
static void ds__sum_add(ds__sum *s, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    s->n += n;
    while (s->nt && n) { /* complete the word a previous piece began */
        s->tail[s->nt++] = *b++, n--;
        if (s->nt == 8) ds__sum_word(s, s->tail), s->nt = 0;
    }
    for (; n >= 8; b += 8, n -= 8) ds__sum_word(s, b);
    memcpy(s->tail, b, n);
    s->nt = (int)n;
}
static uint64_t ds__sum_end(const ds__sum *s) {
    uint64_t h = s->h;
    int i;
    for (i = 0; i < s->nt; i++) h = (h ^ s->tail[i]) * 0x100000001B3ull;
    return h ^ s->n;
}
static uint64_t ds__checksum(const void *p, size_t n) {
    ds__sum s;
    ds__sum_init(&s);
    ds__sum_add(&s, p, n);
    return ds__sum_end(&s);
}

/* The data checksum of the files written since v0.6, "data_checksum_x8": the same word step in 8
   independent lanes (word i of the data goes to lane i mod 8), folded in lane order at the end, so
   the CPU runs 8 multiply chains at once -- several times ds__sum's speed, which was a third of a
   load. Incremental like ds__sum. Files that record the older "data_checksum" are still verified
   with ds__sum. */
typedef struct { uint64_t h[8], n; unsigned char tail[64]; int nt; } ds__sum8;
static void ds__sum8_init(ds__sum8 *s) {
    int l;
    for (l = 0; l < 8; l++) s->h[l] = 0xCBF29CE484222325ull + (uint64_t)l;
    s->n = 0, s->nt = 0;
}
static void ds__sum8_block(ds__sum8 *s, const unsigned char *b) { /* 64 bytes: one word per lane */
    uint64_t w[8];
    int l;
    memcpy(w, b, 64);
    for (l = 0; l < 8; l++) {
        uint64_t h = (s->h[l] ^ w[l]) * 0x100000001B3ull;
        s->h[l] = h ^ (h >> 29);
    }
}
static void ds__sum8_add(ds__sum8 *s, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    s->n += n;
    while (s->nt && n) { /* complete the block a previous piece began */
        size_t k = 64 - (size_t)s->nt < n ? 64 - (size_t)s->nt : n;
        memcpy(s->tail + s->nt, b, k);
        s->nt += (int)k, b += k, n -= k;
        if (s->nt == 64) ds__sum8_block(s, s->tail), s->nt = 0;
    }
    for (; n >= 64; b += 64, n -= 64) ds__sum8_block(s, b);
    memcpy(s->tail, b, n);
    s->nt = (int)n;
}
static uint64_t ds__sum8_end(const ds__sum8 *s) {
    uint64_t h = 0xCBF29CE484222325ull, lane[8];
    int l, i, words = s->nt / 8;
    memcpy(lane, s->h, sizeof lane);
    for (l = 0; l < words; l++) { /* the last block's whole words, in their lanes */
        uint64_t w, x;
        memcpy(&w, s->tail + 8 * l, 8);
        x = (lane[l] ^ w) * 0x100000001B3ull;
        lane[l] = x ^ (x >> 29);
    }
    for (l = 0; l < 8; l++) { h = (h ^ lane[l]) * 0x100000001B3ull; h ^= h >> 29; }
    for (i = 8 * words; i < s->nt; i++) h = (h ^ s->tail[i]) * 0x100000001B3ull;
    return h ^ s->n;
}
static uint64_t ds__checksum8(const void *p, size_t n) {
    ds__sum8 s;
    ds__sum8_init(&s);
    ds__sum8_add(&s, p, n);
    return ds__sum8_end(&s);
}

/* the checksum of `bytes` bytes of f from its current position, read through buf (cap bytes) */
static int ds__sum_file(FILE *f, uint64_t bytes, unsigned char *buf, size_t cap, uint64_t *out, const char *path, ds_error *err) {
    ds__sum s;
    ds__sum_init(&s);
    while (bytes) {
        size_t want = bytes < cap ? (size_t)bytes : cap;
        if (fread(buf, 1, want, f) != want) return ds__fail(err, DS_ERR_IO, "'%s': short read (the file changed while being read?)", path);
        ds__sum_add(&s, buf, want);
        bytes -= want;
    }
    *out = ds__sum_end(&s);
    return DS_OK;
}

/* a tensor to write; data is in ex's memory (the model's backend) */
typedef struct ds__st_w { const char *name; int rows, cols; const ds_float *data; size_t n; int dtype; ds__exec *ex; /* NULL: host memory */ } ds__st_w;

static uint16_t ds__f32_to_bf16(float f) { /* round to nearest even; NaN stays NaN */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1)) >> 16);
}

/* Writes a safetensors file of the n tensors to path, atomically (into "<path>.tmp", flushed to
   the disk, then renamed over path). The tensors are streamed from the backend a chunk at a time
   (256 KiB staged), so a save needs no memory beyond the model's own. meta is the __metadata__
   object ("{...}"); "data_checksum", the ds__checksum of the data section (every tensor's bytes),
   is added to it and filled in once the data is written. */
#define DS__ST_CHUNK 65536 /* values staged at a time */
static int ds__st_save(const char *path, const ds__st_w *t, int n, const char *meta, ds_error *err) {
    ds_buf h = {0, 0, 0, 0}, tmp = {0, 0, 0, 0};
    size_t off = 0, sum_at, i;
    int k, b, ok = 1, rc = DS_OK;
    unsigned char len8[8];
    char hex[17];
    ds_float *stage = NULL;
    uint16_t *half = NULL;
    ds__sum8 sum;
    FILE *f = NULL;
    ds_buf_puts(&h, "{\"__metadata__\":");
    ds_buf_append(&h, meta ? meta : "{", meta ? strlen(meta) - 1 : 1); /* the object without its '}' */
    ds_buf_puts(&h, meta && strlen(meta) > 2 ? ",\"data_checksum_x8\":\"" : "\"data_checksum_x8\":\"");
    sum_at = h.len;
    ds_buf_puts(&h, "0000000000000000\"}");
    for (k = 0; k < n; k++) {
        size_t es = t[k].dtype == DS_DTYPE_BF16 ? 2 : sizeof(ds_float);
        ds_buf_puts(&h, ",");
        ds_buf_json_string(&h, t[k].name, strlen(t[k].name));
        ds_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":", t[k].dtype == DS_DTYPE_BF16 ? "BF16" : sizeof(ds_float) == 8 ? "F64" : "F32");
        if (t[k].cols) ds_buf_printf(&h, "[%d,%d]", t[k].rows, t[k].cols);
        else ds_buf_printf(&h, "[%zu]", t[k].n);
        ds_buf_printf(&h, ",\"data_offsets\":[%zu,%zu]}", off, off + t[k].n * es);
        off += t[k].n * es;
    }
    ds_buf_puts(&h, "}");
    while (h.len % 8) ds_buf_puts(&h, " "); /* the data starts 8-byte aligned */
    ds_buf_puts(&tmp, path);
    ds_buf_puts(&tmp, ".tmp");
    stage = (ds_float *)DS_MALLOC(DS__ST_CHUNK * sizeof(ds_float));
    half = (uint16_t *)DS_MALLOC(DS__ST_CHUNK * sizeof(uint16_t));
    if (h.oom || tmp.oom || !stage || !half) { rc = DS__OOM(err); goto done; }
    if (!(f = fopen(tmp.data, "wb"))) { rc = ds__fail(err, DS_ERR_IO, "cannot create '%s': %s", tmp.data, strerror(errno)); goto done; }
    for (b = 0; b < 8; b++) len8[b] = (unsigned char)(((uint64_t)h.len >> (8 * b)) & 0xFF);
    ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.data, 1, h.len, f) == h.len;
    ds__sum8_init(&sum);
    for (k = 0; k < n && ok; k++) {
        size_t at;
        for (at = 0; at < t[k].n && ok; at += DS__ST_CHUNK) {
            size_t c = t[k].n - at < DS__ST_CHUNK ? t[k].n - at : DS__ST_CHUNK;
            const ds_float *src = t[k].data + at;
            if (t[k].ex && !t[k].ex->host_visible) { ds__to_host(t[k].ex, stage, src, c * sizeof(ds_float)); src = stage; }
            if (t[k].dtype == DS_DTYPE_BF16) {
                for (i = 0; i < c; i++) half[i] = ds__f32_to_bf16((float)src[i]); /* (little-endian hosts only) */
                ok = fwrite(half, 2, c, f) == c;
                ds__sum8_add(&sum, half, c * 2);
            } else { /* full precision: the bytes as they are */
                ok = fwrite(src, sizeof(ds_float), c, f) == c;
                ds__sum8_add(&sum, src, c * sizeof(ds_float));
            }
        }
        if (t[k].ex && (rc = ds__exec_status(t[k].ex, err))) goto done;
    }
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)ds__sum8_end(&sum)); /* in place of the zeros */
    ok = ok && ds__seek(f, 8 + sum_at) == 0 && fwrite(hex, 1, 16, f) == 16;
    ok = (fflush(f) == 0) && ok;
#ifdef DS__POSIX
    ok = (fsync(fileno(f)) == 0) && ok;
#endif
    ok = (fclose(f) == 0) && ok;
    f = NULL;
    if (!ok) { rc = ds__fail(err, DS_ERR_IO, "cannot write '%s' (disk full?): %s; '%s' is unchanged", tmp.data, strerror(errno), path); goto done; }
    if (rename(tmp.data, path) != 0) rc = ds__fail(err, DS_ERR_IO, "cannot rename '%s' to '%s': %s", tmp.data, path, strerror(errno));
done:
    if (f) fclose(f);
    if (rc && tmp.data) remove(tmp.data);
    DS_FREE(stage);
    DS_FREE(half);
    ds_buf_free(&h);
    ds_buf_free(&tmp);
    return rc;
}

/* An open safetensors file: its header parsed and validated, its data read on demand, a chunk at a
   time (nothing holds the whole file). */
typedef struct ds__st_r {
    FILE *f;
    char *head; /* the header's JSON text, which doc points into */
    ds_json_doc *doc;
    uint64_t data_at; /* where the data starts in the file */
    size_t data_len;
    unsigned char *stage; /* DS__ST_CHUNK * 8 bytes, for conversions */
    const char *path;
} ds__st_r;

static void ds__st_close(ds__st_r *r) {
    if (r->f) fclose(r->f);
    DS_FREE(r->head);
    DS_FREE(r->stage);
    ds_json_free(r->doc);
    memset(r, 0, sizeof *r);
}

static size_t ds__dtype_size(const ds_json *d) {
    if (ds__jis(d, "F32") || ds__jis(d, "I32") || ds__jis(d, "U32")) return 4;
    if (ds__jis(d, "BF16") || ds__jis(d, "F16") || ds__jis(d, "I16") || ds__jis(d, "U16")) return 2;
    if (ds__jis(d, "F64") || ds__jis(d, "I64") || ds__jis(d, "U64")) return 8;
    if (ds__jis(d, "I8") || ds__jis(d, "U8") || ds__jis(d, "BOOL")) return 1;
    return 0;
}

typedef struct { size_t b, e; } ds__range;
static int ds__range_cmp(const void *x, const void *y) {
    const ds__range *a = (const ds__range *)x, *b = (const ds__range *)y;
    return a->b < b->b ? -1 : a->b > b->b;
}

/* the checksum of r's data section: ds__sum8 (x8) or ds__sum; over a read-only mapping of the file
   where it can be made (POSIX), else read through r's stage. Leaves the file position anywhere. */
static int ds__sum_data(ds__st_r *r, int x8, uint64_t *out, const char *path, ds_error *err) {
#ifdef DS__POSIX
    size_t len = (size_t)(r->data_at + r->data_len);
    void *p = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fileno(r->f), 0) : MAP_FAILED;
    if (p != MAP_FAILED) {
        const unsigned char *d = (const unsigned char *)p + r->data_at;
        posix_madvise(p, len, POSIX_MADV_SEQUENTIAL);
        *out = x8 ? ds__checksum8(d, r->data_len) : ds__checksum(d, r->data_len);
        munmap(p, len);
        return DS_OK;
    }
#endif
    if (ds__seek(r->f, r->data_at) != 0) return ds__fail(err, DS_ERR_IO, "'%s': cannot seek", path);
    if (!x8) return ds__sum_file(r->f, r->data_len, r->stage, DS__ST_CHUNK * 8, out, path, err);
    {
        ds__sum8 s;
        uint64_t left = r->data_len;
        ds__sum8_init(&s);
        while (left) {
            size_t want = left < DS__ST_CHUNK * 8 ? (size_t)left : DS__ST_CHUNK * 8;
            if (fread(r->stage, 1, want, r->f) != want) return ds__fail(err, DS_ERR_IO, "'%s': short read (the file changed while being read?)", path);
            ds__sum8_add(&s, r->stage, want);
            left -= want;
        }
        *out = ds__sum8_end(&s);
    }
    return DS_OK;
}

/* Opens a safetensors file and validates its header: every tensor's dtype, shape and byte range,
   and that the ranges tile the data exactly (no overlap, no hole, nothing past the end). Only the
   header is read into memory (it is bounded: 100 MB, and less than the file); a file that records
   the checksum of its data is read through once, a chunk at a time, to verify it. */
static int ds__st_open(ds__st_r *r, const char *path, ds_error *err) {
    uint64_t hl = 0, size = 0;
    unsigned char len8[8];
    int b;
    size_t n = 0, k;
    ds__range *rg = NULL;
    const ds_json *t;
    memset(r, 0, sizeof *r);
    r->path = path;
    if (!ds__little_endian()) return ds__fail(err, DS_ERR_UNSUPPORTED, "safetensors: big-endian hosts are not supported");
    if (!(r->f = ds__open_regular(path, 0, &size, err))) return err ? err->code : DS_ERR_IO;
    if (size < 8 || fread(len8, 1, 8, r->f) != 8) { ds__fail(err, DS_ERR_FORMAT, "%s: %llu bytes, too short for a safetensors header", path, (unsigned long long)size); goto fail; }
    for (b = 0; b < 8; b++) hl |= (uint64_t)len8[b] << (8 * b);
    if (hl < 2 || hl > 100000000 || hl > size - 8 || size - 8 - hl > (uint64_t)SIZE_MAX) {
        ds__fail(err, DS_ERR_FORMAT, "%s: header length %llu does not fit the %llu-byte file", path, (unsigned long long)hl, (unsigned long long)size);
        goto fail;
    }
    if (!(r->head = (char *)DS_MALLOC((size_t)hl + 1)) || !(r->stage = (unsigned char *)DS_MALLOC(DS__ST_CHUNK * 8))) { DS__OOM(err); goto fail; }
    if (fread(r->head, 1, (size_t)hl, r->f) != (size_t)hl) { ds__fail(err, DS_ERR_IO, "%s: short read of the header", path); goto fail; }
    r->head[hl] = 0;
    if (!(r->doc = ds_json_parse(r->head, (size_t)hl, err))) {
        ds__err_prefix(err, path);
        goto fail;
    }
    if (r->doc->root->type != DS_JSON_OBJECT) { ds__fail(err, DS_ERR_FORMAT, "%s: the header is not a JSON object", path); goto fail; }
    if (r->doc->root->len < 4096 && ds__json_duplicate_key(r->doc->root)) { /* (pairwise: bounded to headers of realistic size) */
        ds__fail(err, DS_ERR_FORMAT, "%s: the header names \"%.60s\" twice", path, ds__json_duplicate_key(r->doc->root));
        goto fail;
    }
    r->data_at = 8 + hl;
    r->data_len = (size_t)(size - 8 - hl);
    rg = (ds__range *)ds__calloc(r->doc->root->len + 1, sizeof(ds__range));
    if (!rg) { DS__OOM(err); goto fail; }
    for (t = r->doc->root->child; t; t = t->next) {
        const ds_json *dt = ds_json_get(t, "dtype"), *sh = ds_json_get(t, "shape"), *of = ds_json_get(t, "data_offsets"), *d;
        size_t es, numel = 1;
        int64_t v0, v1;
        int ok = 1;
        if (t->key_len == 12 && !memcmp(t->key, "__metadata__", 12)) continue;
        if (t->type != DS_JSON_OBJECT || !(es = ds__dtype_size(dt)) || !sh || sh->type != DS_JSON_ARRAY || !of || of->type != DS_JSON_ARRAY ||
            of->len != 2 || !ds_json_int(of->child, 0, INT64_MAX, &v0) || !ds_json_int(of->child->next, 0, INT64_MAX, &v1) || v1 < v0) {
            ds__fail(err, DS_ERR_FORMAT, "%s: tensor \"%.60s\" lacks a known dtype, a shape or valid data_offsets", path, t->key);
            goto fail;
        }
        for (d = sh->child; d; d = d->next) {
            int64_t dim;
            if (!ds_json_int(d, 0, INT64_MAX, &dim)) { ok = 0; break; }
            numel = ds__mul(numel, (size_t)dim, &ok);
        }
        if (!ok || ds__mul(numel, es, &ok) != (size_t)(v1 - v0) || !ok || (uint64_t)v1 > r->data_len) {
            ds__fail(err, DS_ERR_FORMAT, "%s: tensor \"%.60s\": its shape and dtype need %zu bytes, its offsets [%lld, %lld) give %lld "
                     "(the data holds %zu)", path, t->key, numel * es, (long long)v0, (long long)v1, (long long)(v1 - v0), r->data_len);
            goto fail;
        }
        rg[n].b = (size_t)v0, rg[n].e = (size_t)v1, n++;
    }
    qsort(rg, n, sizeof *rg, ds__range_cmp);
    for (k = 0; k < n; k++)
        if (rg[k].b != (k ? rg[k - 1].e : 0)) {
            ds__fail(err, DS_ERR_FORMAT, "%s: tensor byte ranges overlap or leave a hole at byte %zu", path, rg[k].b);
            goto fail;
        }
    if ((n ? rg[n - 1].e : 0) != r->data_len) {
        ds__fail(err, DS_ERR_FORMAT, "%s: %zu bytes of data after the last tensor", path, r->data_len - (n ? rg[n - 1].e : 0));
        goto fail;
    }
    { /* our files carry the checksum of their data (a Hugging Face file does not: nothing to check);
         since v0.6 the 8-lane one, read through a mapping where there is one (no copy) */
        const ds_json *meta = ds_json_get(r->doc->root, "__metadata__"), *cs = ds_json_get(meta, "data_checksum_x8");
        char hex[17];
        uint64_t sum = 0;
        int x8 = cs && cs->type == DS_JSON_STRING;
        if (!x8) cs = ds_json_get(meta, "data_checksum");
        if (cs && cs->type == DS_JSON_STRING) {
            if (ds__sum_data(r, x8, &sum, path, err)) goto fail;
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)sum);
            if (strcmp(hex, cs->str) != 0) {
                ds__fail(err, DS_ERR_FORMAT, "%s: the tensor data is corrupted (checksum %s, the file records %.20s)", path, hex, cs->str);
                goto fail;
            }
        }
    }
    DS_FREE(rg);
    return DS_OK;
fail:
    DS_FREE(rg);
    ds__st_close(r);
    return err && err->code ? err->code : DS_ERR_FORMAT;
}

/* 1 when a safetensors shape is [rows, cols] (cols 0: the vector [rows]); 64-bit sizes throughout
   (a 7B model's moments are one vector of more than 2^31 values) */
static int ds__shape_is(const ds_json *sh, size_t rows, int cols) {
    int64_t d0 = -1, d1 = -1;
    if (!sh || sh->type != DS_JSON_ARRAY || sh->len != (cols ? 2u : 1u)) return 0;
    if (!ds_json_int(sh->child, 0, INT64_MAX, &d0) || (uint64_t)d0 != (uint64_t)rows) return 0;
    return !cols || (ds_json_int(sh->child->next, 0, INT64_MAX, &d1) && d1 == cols);
}

/* Reads tensor `name`, which must have the shape (rows, cols) (cols 0: a vector of rows), into
   out as ds_float, converting F32, F64, BF16 or F16. Returns DS_ERR_FORMAT naming the problem. */
static int ds__st_read_as(const ds__st_r *r, const char *name, size_t rows, int cols, ds_float *out, uint16_t *outb, ds_error *err) {
    const ds_json *t = ds_json_get(r->doc->root, name), *sh, *dt;
    int64_t d0 = -1, d1 = -1, b = 0;
    size_t n = rows * (size_t)(cols ? cols : 1), i, at, es, chunk;
    int f32 = 0, f64 = 0, b16 = 0, f16 = 0;
    if (!t) return ds__fail(err, DS_ERR_FORMAT, "%s: tensor \"%s\" is missing", r->path, name);
    sh = ds_json_get(t, "shape");
    dt = ds_json_get(t, "dtype");
    if (sh->len >= 1) ds_json_int(sh->child, 0, INT64_MAX, &d0);
    if (sh->len >= 2) ds_json_int(sh->child->next, 0, INT64_MAX, &d1);
    if (!ds__shape_is(sh, rows, cols)) {
        if (sh->len > 2) return ds__fail(err, DS_ERR_FORMAT, "%s: tensor \"%s\" has %zu dimensions, config.json implies %d", r->path, name, sh->len, cols ? 2 : 1);
        return ds__fail(err, DS_ERR_FORMAT, "%s: tensor \"%s\" has shape [%lld%s%lld], config.json implies [%zu%s%d]", r->path, name, (long long)d0,
                        sh->len >= 2 ? ", " : "", sh->len >= 2 ? (long long)d1 : 0LL, rows, cols ? ", " : "", cols);
    }
    ds_json_int(ds_json_get(t, "data_offsets")->child, 0, INT64_MAX, &b);
    f32 = ds__jis(dt, "F32"), f64 = ds__jis(dt, "F64"), b16 = ds__jis(dt, "BF16"), f16 = ds__jis(dt, "F16");
    if (!f32 && !f64 && !b16 && !f16)
        return ds__fail(err, DS_ERR_UNSUPPORTED, "%s: tensor \"%s\" has dtype %s; floating point expected", r->path, name, dt->str);
    es = f64 ? 8 : f32 ? 4 : 2;
    chunk = outb ? DS__ST_CHUNK / 2 : DS__ST_CHUNK; /* bf16 out: the input in the stage's first half, floats in its second */
    if (ds__seek(r->f, r->data_at + (uint64_t)b) != 0) return ds__fail(err, DS_ERR_IO, "%s: cannot seek to tensor \"%s\"", r->path, name);
    if ((f32 && out && sizeof(ds_float) == 4) || (b16 && outb)) { /* the bytes are the values: read straight into out */
        if (fread(out ? (void *)out : (void *)outb, es, n, r->f) != n) return ds__fail(err, DS_ERR_IO, "%s: short read of tensor \"%s\"", r->path, name);
        return DS_OK;
    }
    for (at = 0; at < n; at += chunk) { /* a chunk at a time through the stage, converted */
        size_t c = n - at < chunk ? n - at : chunk;
        const unsigned char *p = r->stage;
        ds_float *o = out ? out + at : (ds_float *)(void *)(r->stage + DS__ST_CHUNK * 4); /* (bf16 out: widen into the stage's upper half) */
        if (fread(r->stage, es, c, r->f) != c) return ds__fail(err, DS_ERR_IO, "%s: short read of tensor \"%s\"", r->path, name);
        if (f32) {
            for (i = 0; i < c; i++) { float f; memcpy(&f, p + 4 * i, 4); o[i] = (ds_float)f; }
        } else if (f64) {
            for (i = 0; i < c; i++) { double f; memcpy(&f, p + 8 * i, 8); o[i] = (ds_float)f; }
        } else if (b16) {
            for (i = 0; i < c; i++) { uint32_t u = (uint32_t)(p[2 * i] | (p[2 * i + 1] << 8)) << 16; float f; memcpy(&f, &u, 4); o[i] = (ds_float)f; }
        } else {
            for (i = 0; i < c; i++) {
                unsigned h = (unsigned)(p[2 * i] | (p[2 * i + 1] << 8)), e = (h >> 10) & 31, mnt = h & 1023;
                double v = e == 0 ? ldexp((double)mnt, -24) : e == 31 ? (mnt ? NAN : INFINITY) : ldexp((double)(mnt | 1024), (int)e - 25);
                o[i] = (ds_float)((h & 0x8000) ? -v : v);
            }
        }
        if (outb)
            for (i = 0; i < c; i++) outb[at + i] = ds__f32_to_bf16((float)o[i]);
    }
    return DS_OK;
}
static int ds__st_read(const ds__st_r *r, const char *name, size_t rows, int cols, ds_float *out, ds_error *err) {
    return ds__st_read_as(r, name, rows, cols, out, NULL, err);
}

/* s is a whole decimal number (digits only, no sign, no spaces) <= max */
static int ds__parse_u64(const char *s, uint64_t max, uint64_t *out) {
    uint64_t v = 0;
    if (!s || !*s || strlen(s) > 20) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return 0;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > max) return 0;
    *out = v;
    return 1;
}

/* ds__st_read into the model's backend memory, through a host copy when it is not host-visible */
static int ds__st_read_to(ds_model *m, const ds__st_r *r, const char *name, size_t rows, int cols, ds_float *dst, ds_error *err) {
    size_t n = rows * (size_t)(cols ? cols : 1);
    ds_float *h = m->ex.host_visible ? dst : (ds_float *)ds__calloc(n, sizeof(ds_float));
    int rc;
    if (!h) return DS__OOM(err);
    if (!(rc = ds__st_read(r, name, rows, cols, h, err))) ds__from_host(&m->ex, dst, h, n * sizeof(ds_float));
    if (h != dst) DS_FREE(h);
    return rc ? rc : ds__exec_status(&m->ex, err);
}

static const char *ds__st_meta(const ds__st_r *r, const char *key) {
    const ds_json *j = ds_json_get(ds_json_get(r->doc->root, "__metadata__"), key);
    return j && j->type == DS_JSON_STRING ? j->str : NULL;
}

/* ---- the directory ------------------------------------------------------------------------- */

static const char *const ds__ckpt_files[] = {"model.safetensors", "config.json", "tokenizer.json", "trainer_state.safetensors"};

static void ds__path(ds_buf *b, const char *dir, const char *suffix, const char *file) {
    b->len = 0;
    ds_buf_puts(b, dir);
    ds_buf_puts(b, suffix);
    if (file) { ds_buf_puts(b, "/"); ds_buf_puts(b, file); }
}

#ifdef DS__POSIX
static int ds__is_dir(const char *p) { struct stat s; return stat(p, &s) == 0 && S_ISDIR(s.st_mode); }
static void ds__fsync_path(const char *p) { int fd = open(p, O_RDONLY); if (fd >= 0) { fsync(fd); close(fd); } }
/* removes a checkpoint directory we wrote: our files, then the directory (which fails, leaving
   it, if someone put other files in it) */
static void ds__ckpt_remove(const char *dir) {
    ds_buf p = {0, 0, 0, 0};
    size_t i;
    for (i = 0; i < sizeof ds__ckpt_files / sizeof ds__ckpt_files[0]; i++) {
        ds__path(&p, dir, "", ds__ckpt_files[i]);
        if (!p.oom) remove(p.data);
        ds_buf_puts(&p, ".tmp");
        if (!p.oom) remove(p.data);
    }
    rmdir(dir);
    ds_buf_free(&p);
}
#endif

/* NaN and infinity never reach a checkpoint, and a checkpoint holding them is refused: the
   parameters must be finite, and the AdamW moments finite with exp_avg_sq >= 0. Reads the model
   through the portable copies, a chunk at a time, so it works on any backend. */
typedef struct ds__ckpt_src ds__ckpt_src;
static int ds__model_check_finite(const ds_model *m, const ds__ckpt_src *src, int moments, ds_error *err);
/* what a save writes when it is not the model's own arrays: a snapshot in host memory (an
   asynchronous save, or a data-parallel group's moments gathered to rank 0) */
struct ds__ckpt_src {
    const ds_float *p, *m1, *m2;  /* parameters, exp_avg, exp_avg_sq (n_params each; NULL: the model's) */
    long adam_step;               /* AdamW's step count at the snapshot */
    const ds_buf *tok_json;       /* the tokenizer rendered at the snapshot (NULL: none) */
    int32_t bos, eos;
};
static int ds__model_check_finite(const ds_model *m, const ds__ckpt_src *src, int moments, ds_error *err) {
    static const char *const what[3] = {"a parameter", "an AdamW exp_avg value", "an AdamW exp_avg_sq value"};
    ds_float buf[4096];
    size_t off, i, n;
    int a;
    for (a = 0; a < (moments ? 3 : 1); a++)
        for (off = 0; off < m->n_params; off += n) {
            int rc;
            n = m->n_params - off < 4096 ? m->n_params - off : 4096;
            int bad = 0, nonneg = a == 2;
            const ds_float *host = !src ? NULL : a == 0 ? src->p : a == 1 ? src->m1 : src->m2, *x = buf;
            if (!host && m->ex.host_visible && !m->bf16 && !m->sharded) host = a == 0 ? m->params : a == 1 ? m->m : m->v; /* read in place */
            if (host) x = host + off;
            else if ((rc = ds_model_get(m, a == 0 ? DS_PARAMS : a == 1 ? DS_ADAM_M : DS_ADAM_V, off, n, buf, err))) return rc;
            for (i = 0; i < n; i++) bad |= (x[i] - x[i] != 0) | (nonneg & (x[i] < 0)); /* NaN, +-inf: x - x is NaN (branch-free: it vectorizes) */
            if (!bad) continue;
            for (i = 0; i < n; i++)
                if (!(x[i] == x[i]) || isinf(x[i]) || (a == 2 && x[i] < 0)) {
                    int k = 0;
                    while (k + 1 < m->n_tensors && m->tensors[k + 1].offset <= off + i) k++;
                    return ds__fail(err, DS_ERR_NUMERIC, "%s of %s (element %zu) is %g", what[a], m->tensors[k].name,
                                    off + i - m->tensors[k].offset, (double)x[i]);
                }
        }
    return DS_OK;
}

#ifdef DS__POSIX
#include <sys/file.h>
/* fsync the directory that holds path (so that a rename in it is durable) */
static void ds__fsync_parent(const char *path) {
    ds_buf p = {0, 0, 0, 0};
    char *slash;
    ds_buf_puts(&p, path);
    if (p.oom) return;
    slash = strrchr(p.data, '/');
    if (slash == p.data) slash[1] = 0;
    else if (slash) *slash = 0;
    else { p.data[0] = '.', p.data[1] = 0; }
    ds__fsync_path(p.data);
    ds_buf_free(&p);
}
#endif

/* The save, step by step. Every step is one file-system action; crash_at >= 0 stops the save
   just before step crash_at, as a kill there would (tests sweep it). The invariant: the last
   loadable checkpoint -- <dir>, or after a crash between the two renames <dir>.old -- is never
   removed before its successor is in place. */
typedef struct { int step, crash_at; } ds__ckpt_run;
#define DS__STEP(r) ((r)->crash_at >= 0 && (r)->step++ == (r)->crash_at)

static int ds__checkpoint_save_src(const ds_model *m, const ds__ckpt_src *src, const ds_tokenizer *tok, const ds_train_state *st, const char *dir,
                                   int dtype, int crash_at, ds_error *err) {
#ifndef DS__POSIX
    (void)m, (void)src, (void)tok, (void)st, (void)dir, (void)dtype, (void)crash_at;
    return ds__fail(err, DS_ERR_UNSUPPORTED, "checkpoints need a POSIX file system");
#else
    ds_buf tmp = {0, 0, 0, 0}, old = {0, 0, 0, 0}, lock = {0, 0, 0, 0}, p = {0, 0, 0, 0}, o = {0, 0, 0, 0}, cfg = {0, 0, 0, 0};
    ds__st_w *w = NULL;
    ds__ckpt_run run;
    char meta[1024], tokmeta[64] = "";
    int rc = DS_OK, k, lock_fd = -1;
    run.step = 0, run.crash_at = crash_at;
    if (!m || !dir || (dtype != DS_DTYPE_F32 && dtype != DS_DTYPE_BF16)) return ds__fail(err, DS_ERR_INVALID, "ds_checkpoint_save: bad argument");
    if (st && m->inference) return ds__fail(err, DS_ERR_INVALID, "ds_checkpoint_save: a model loaded for inference has no optimizer state to save");
    if (m->bf16) return ds__fail(err, DS_ERR_UNSUPPORTED, "ds_checkpoint_save: a BF16 inference model is not saved (its source checkpoint is the file)");
    /* what is saved must be finite (with a trainer state, the moments too) */
    if (st && m->sharded && !(src && src->m1)) return ds__fail(err, DS_ERR_INVALID, "ds_checkpoint_save: the moments are sharded (a ds_dp save gathers them)");
    if ((rc = ds__model_check_finite(m, src, st != NULL, err))) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        return ds__fail(err, rc, "not saved to '%s': %s", dir, msg);
    }
    ds__path(&tmp, dir, ".tmp", NULL);
    ds__path(&old, dir, ".old", NULL);
    ds__path(&lock, dir, ".lock", NULL);
    if (tmp.oom || old.oom || lock.oom) { rc = DS__OOM(err); goto done; }
    /* one writer at a time: an advisory lock the kernel drops when its process dies */
    if ((lock_fd = open(lock.data, O_RDWR | O_CREAT, 0644)) < 0) { rc = ds__fail(err, DS_ERR_IO, "cannot create '%s': %s", lock.data, strerror(errno)); goto done; }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = ds__fail(err, DS_ERR_IO, "another process is saving to '%s' (it holds '%s'); not saved", dir, lock.data);
        goto done;
    }
    /* a crash between an earlier save's two renames left only <dir>.old: put it back first */
    if (!ds__is_dir(dir) && ds__is_dir(old.data)) {
        if (DS__STEP(&run)) goto crash;
        if (rename(old.data, dir) != 0) { rc = ds__fail(err, DS_ERR_IO, "cannot restore '%s' to '%s': %s", old.data, dir, strerror(errno)); goto done; }
        ds__fsync_parent(dir);
    }
    if (ds__is_dir(tmp.data)) { /* a crash's leftovers (never loaded) */
        if (DS__STEP(&run)) goto crash;
        ds__ckpt_remove(tmp.data);
    }
    if (DS__STEP(&run)) goto crash;
    if (mkdir(tmp.data, 0755) != 0) { rc = ds__fail(err, DS_ERR_IO, "cannot create '%s': %s", tmp.data, strerror(errno)); goto done; }
    /* config.json and tokenizer.json first: model.safetensors records their checksums */
    if ((rc = ds_config_to_json(&m->c, dtype, src ? src->bos : tok ? tok->bos : -1, src ? src->eos : tok ? tok->eos : -1, &cfg, err))) goto fail;
    ds__path(&p, tmp.data, "", "config.json");
    if (DS__STEP(&run)) goto crash;
    if ((rc = ds_write_file_atomic(p.data, cfg.data, cfg.len, err))) goto fail;
    if (src ? src->tok_json != NULL : tok != NULL) { /* rendered once: written, and its checksum taken from the same bytes */
        const ds_buf *tj = src ? src->tok_json : &o;
        ds__path(&p, tmp.data, "", "tokenizer.json");
        o.len = 0;
        if (!src && (rc = ds_tokenizer_to_json(tok, &o, err))) goto fail;
        if (DS__STEP(&run)) goto crash;
        if ((rc = ds_write_file_atomic(p.data, tj->data, tj->len, err))) goto fail;
        snprintf(tokmeta, sizeof tokmeta, ",\"tokenizer_checksum\":\"%016llx\"", (unsigned long long)ds__checksum(tj->data, tj->len));
        o.len = 0;
    }
    /* the weights, with the checksum of their data and of config.json (and tokenizer.json) */
    w = (ds__st_w *)ds__calloc((size_t)m->n_tensors + 2, sizeof(ds__st_w));
    if (!w) { rc = DS__OOM(err); goto fail; }
    for (k = 0; k < m->n_tensors; k++) {
        const ds_tensor *t = &m->tensors[k];
        w[k].name = t->name, w[k].rows = t->rows, w[k].cols = t->cols, w[k].data = m->params + t->offset, w[k].n = t->numel, w[k].dtype = dtype;
        w[k].ex = (ds__exec *)&m->ex;
        if (src && src->p) w[k].data = src->p + t->offset, w[k].ex = NULL;
    }
    snprintf(meta, sizeof meta, "{\"format\":\"pt\",\"writer\":\"deepseek.h\",\"config_checksum\":\"%016llx\"%s}",
             (unsigned long long)ds__checksum(cfg.data, cfg.len), tokmeta);
    ds__path(&p, tmp.data, "", "model.safetensors");
    if (p.oom) { rc = DS__OOM(err); goto fail; }
    if (DS__STEP(&run)) goto crash;
    if ((rc = ds__st_save(p.data, w, m->n_tensors, meta, err))) goto fail;
    /* the optimizer and trainer state, in full precision */
    if (st) {
        ds__st_w s2[2];
        s2[0].name = "optimizer.exp_avg", s2[0].rows = 0, s2[0].cols = 0, s2[0].data = m->m, s2[0].n = m->n_params, s2[0].dtype = DS_DTYPE_F32;
        s2[0].ex = (ds__exec *)&m->ex;
        s2[1] = s2[0], s2[1].name = "optimizer.exp_avg_sq", s2[1].data = m->v;
        if (src && src->m1) s2[0].data = src->m1, s2[1].data = src->m2, s2[0].ex = s2[1].ex = NULL;
        {
            ds_buf mb = {0, 0, 0, 0};
            ds_buf_printf(&mb, "{\"step\":\"%ld\",\"adam_step\":\"%ld\",\"tokens_seen\":\"%llu\",\"data_pos\":\"%llu\",\"rng\":\"%llu\",\"n_params\":\"%zu\"",
                          st->step, src ? src->adam_step : m->steps, (unsigned long long)st->tokens_seen, (unsigned long long)st->data_pos, (unsigned long long)st->rng,
                          m->n_params);
            ds_buf_puts(&mb, ",\"run\":");
            ds_buf_json_string(&mb, st->run, strnlen(st->run, sizeof st->run));
            ds_buf_puts(&mb, "}");
            ds__path(&p, tmp.data, "", "trainer_state.safetensors");
            if (mb.oom || p.oom) { ds_buf_free(&mb); rc = DS__OOM(err); goto fail; }
            if (DS__STEP(&run)) { ds_buf_free(&mb); goto crash; }
            rc = ds__st_save(p.data, s2, 2, mb.data, err);
            ds_buf_free(&mb);
            if (rc) goto fail;
        }
    }
    if (DS__STEP(&run)) goto crash;
    ds__fsync_path(tmp.data);
    /* swap it in. <dir> is loadable here (or there was none), so <dir>.old may go first */
    if (ds__is_dir(old.data) && ds__is_dir(dir)) {
        if (DS__STEP(&run)) goto crash;
        ds__ckpt_remove(old.data);
    }
    if (ds__is_dir(dir)) {
        if (DS__STEP(&run)) goto crash;
        if (rename(dir, old.data) != 0) { rc = ds__fail(err, DS_ERR_IO, "cannot rename '%s': %s", dir, strerror(errno)); goto fail; }
    }
    if (DS__STEP(&run)) goto crash;
    if (rename(tmp.data, dir) != 0) {
        rc = ds__fail(err, DS_ERR_IO, "cannot rename '%s' to '%s': %s", tmp.data, dir, strerror(errno));
        rename(old.data, dir);
        goto fail;
    }
    if (DS__STEP(&run)) goto crash;
    ds__fsync_parent(dir); /* the swap itself is durable */
    if (ds__is_dir(old.data)) {
        if (DS__STEP(&run)) goto crash;
        ds__ckpt_remove(old.data);
    }
    goto done;
crash: /* a simulated kill: leave everything as it is */
    rc = ds__fail(err, DS_ERR_IO, "crash simulated before step %d", crash_at);
    goto done;
fail:
    ds__ckpt_remove(tmp.data);
done:
    if (lock_fd >= 0) close(lock_fd); /* releases the lock */
    DS_FREE(w);
    ds_buf_free(&tmp);
    ds_buf_free(&old);
    ds_buf_free(&lock);
    ds_buf_free(&p);
    ds_buf_free(&o);
    ds_buf_free(&cfg);
    return rc;
#endif
}

static int ds__checkpoint_save(const ds_model *m, const ds_tokenizer *tok, const ds_train_state *st, const char *dir, int dtype, int crash_at,
                               ds_error *err) {
    return ds__checkpoint_save_src(m, NULL, tok, st, dir, dtype, crash_at, err);
}
static int ds__dp_save(struct ds_dp *d, struct ds_saver *sv, const ds_tokenizer *tok, const ds_train_state *st, const char *dir, int dtype,
                       ds_error *err);
static int ds__dp_world(const struct ds_dp *d);
DSDEF int ds_checkpoint_save(const ds_model *m, const ds_tokenizer *tok, const ds_train_state *st, const char *dir, int dtype, ds_error *err) {
    if (m && m->dp && ds__dp_world(m->dp) > 1) return ds__dp_save(m->dp, NULL, tok, st, dir, dtype, err); /* collective */
    return ds__checkpoint_save(m, tok, st, dir, dtype, -1, err);
}

/* ---- the weights' files: model.safetensors, or shards named by model.safetensors.index.json ----
   Hugging Face splits large checkpoints: {"metadata": {...}, "weight_map": {"tensor name":
   "model-00001-of-00002.safetensors", ...}}. Every shard is opened and validated like a single
   file; a tensor is read from the shard the index names, which must hold it. Shard names are
   plain file names in the checkpoint's directory (no '/', no "..": an index cannot point outside). */
#define DS__MAX_SHARDS 1024
typedef struct ds__shards {
    ds__st_r *r;           /* n open files */
    char **name;           /* their file names (sharded: as the index spells them) */
    char **path;           /* and their paths (messages name them) */
    int n;
    ds_json_doc *index;    /* the index, or NULL for one model.safetensors */
    const ds_json *map;    /* its weight_map */
    char *index_text;
} ds__shards;

static void ds__shards_close(ds__shards *s) {
    int i;
    for (i = 0; i < s->n; i++) ds__st_close(&s->r[i]), DS_FREE(s->name[i]), DS_FREE(s->path[i]);
    DS_FREE(s->r);
    DS_FREE(s->name);
    DS_FREE(s->path);
    ds_json_free(s->index);
    DS_FREE(s->index_text);
    memset(s, 0, sizeof *s);
}

static int ds__shards_add(ds__shards *s, const char *dir, const char *file, size_t len, ds_error *err) {
    ds_buf p = {0, 0, 0, 0};
    int rc;
    if (s->n == DS__MAX_SHARDS) return ds__fail(err, DS_ERR_FORMAT, "%s: more than %d shards", dir, DS__MAX_SHARDS);
    if (!(s->name[s->n] = (char *)DS_MALLOC(len + 1))) return DS__OOM(err);
    memcpy(s->name[s->n], file, len);
    s->name[s->n][len] = 0;
    ds__path(&p, dir, "", s->name[s->n]);
    if (p.oom) { ds_buf_free(&p); DS_FREE(s->name[s->n]); return DS__OOM(err); }
    rc = ds__st_open(&s->r[s->n], p.data, err);
    if (rc) {
        DS_FREE(s->name[s->n]);
        ds_buf_free(&p);
    } else {
        s->path[s->n] = p.data; /* the reader's path: kept until close */
        s->r[s->n].path = s->path[s->n];
        s->n++;
    }
    return rc;
}

/* 1 unless path certainly does not exist (any other error is the opener's to report) */
static int ds__exists(const char *path) {
#ifdef DS__POSIX
    struct stat sb;
    return stat(path, &sb) == 0 || errno != ENOENT;
#else
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
#endif
}

static int ds__shards_open(ds__shards *s, const char *dir, ds_error *err) {
    ds_buf p = {0, 0, 0, 0};
    size_t len;
    const ds_json *e;
    int rc = DS_OK, i;
    memset(s, 0, sizeof *s);
    s->r = (ds__st_r *)ds__calloc(DS__MAX_SHARDS, sizeof(ds__st_r));
    s->name = (char **)ds__calloc(DS__MAX_SHARDS, sizeof(char *));
    s->path = (char **)ds__calloc(DS__MAX_SHARDS, sizeof(char *));
    if (!s->r || !s->name || !s->path) { rc = DS__OOM(err); goto done; }
    ds__path(&p, dir, "", "model.safetensors");
    if (p.oom) { rc = DS__OOM(err); goto done; }
    if (ds__exists(p.data)) { /* one file (or an error about it) */
        rc = ds__shards_add(s, dir, "model.safetensors", 17, err);
        goto done;
    }
    ds__path(&p, dir, "", "model.safetensors.index.json");
    if (p.oom) { rc = DS__OOM(err); goto done; }
    if (!ds__exists(p.data)) { rc = ds__fail(err, DS_ERR_IO, "%s: neither model.safetensors nor model.safetensors.index.json is there", dir); goto done; }
    if (!(s->index_text = ds_read_file(p.data, 64u << 20, &len, err))) { rc = err ? err->code : DS_ERR_IO; goto done; }
    if (!(s->index = ds_json_parse(s->index_text, len, err))) { ds__err_prefix(err, p.data); rc = err ? err->code : DS_ERR_FORMAT; goto done; }
    s->map = ds_json_get(s->index->root, "weight_map");
    if (!s->map || s->map->type != DS_JSON_OBJECT || s->map->len == 0 || s->map->len > 1000000) {
        rc = ds__fail(err, DS_ERR_FORMAT, "%s: no weight_map object (or an empty or oversized one)", p.data);
        goto done;
    }
    if (ds__json_duplicate_key(s->map)) {
        rc = ds__fail(err, DS_ERR_FORMAT, "%s: weight_map names tensor \"%.60s\" twice", p.data, ds__json_duplicate_key(s->map));
        goto done;
    }
    for (e = s->map->child; e; e = e->next) { /* the shards, in order of first mention */
        if (e->type != DS_JSON_STRING || e->len == 0 || e->len > 255 || memchr(e->str, '/', e->len) || memchr(e->str, '\\', e->len) ||
            !strcmp(e->str, ".") || !strcmp(e->str, "..") || strlen(e->str) != e->len) {
            rc = ds__fail(err, DS_ERR_FORMAT, "%s: tensor \"%.60s\" is mapped to \"%.60s\", not a file name in the checkpoint's directory", p.data, e->key,
                          e->type == DS_JSON_STRING ? e->str : "(not a string)");
            goto done;
        }
        for (i = 0; i < s->n && strcmp(s->name[i], e->str); i++) {}
        if (i == s->n && (rc = ds__shards_add(s, dir, e->str, e->len, err))) goto done;
    }
done:
    ds_buf_free(&p);
    if (rc) ds__shards_close(s);
    return rc;
}

/* the open file that holds tensor name: the one the index names (which must hold it), or the
   single file; NULL with the reason when none does */
static const ds__st_r *ds__shards_find(const ds__shards *s, const char *name, ds_error *err) {
    int i;
    if (!s->index) {
        if (ds_json_get(s->r[0].doc->root, name)) return &s->r[0];
        ds__fail(err, DS_ERR_FORMAT, "%s: tensor \"%s\" is missing", s->path[0], name);
        return NULL;
    }
    {
        const ds_json *f = ds_json_get(s->map, name);
        if (!f) { ds__fail(err, DS_ERR_FORMAT, "model.safetensors.index.json: the weight_map does not name tensor \"%s\"", name); return NULL; }
        for (i = 0; i < s->n; i++)
            if (!strcmp(s->name[i], f->str)) {
                if (ds_json_get(s->r[i].doc->root, name)) return &s->r[i];
                ds__fail(err, DS_ERR_FORMAT, "%s: the index puts tensor \"%s\" here, but the shard does not hold it", s->path[i], name);
                return NULL;
            }
    }
    ds__fail(err, DS_ERR_FORMAT, "model.safetensors.index.json: tensor \"%s\" has no shard", name);
    return NULL;
}

/* Tensor t of BF16 model m, as a pointer into its file mapped read-only: the file is mapped once
   (kept until ds_model_free), and only a BF16 tensor of the model's shape at an even offset
   qualifies. NULL: read it instead (another dtype, no mmap, or a shape the reader will refuse). */
#ifdef DS__POSIX
/* the model's table of mapped files, one slot per shard (MAP_FAILED: not mapped); 0 on no memory */
static int ds__maps_reserve(ds_model *m, int n) {
    if (m->maps) return 1;
    m->maps = (void **)ds__calloc((size_t)n, sizeof(void *));
    m->map_lens = (size_t *)ds__calloc((size_t)n, sizeof(size_t));
    if (!m->maps || !m->map_lens) return 0;
    for (m->n_maps = 0; m->n_maps < n; m->n_maps++) m->maps[m->n_maps] = MAP_FAILED;
    return 1;
}
#endif
static const uint16_t *ds__st_map_bf16(ds_model *m, const ds__shards *sh, const ds__st_r *r, const ds_tensor *t) {
#ifdef DS__POSIX
    const ds_json *j = ds_json_get(r->doc->root, t->name);
    int64_t b = 0;
    int i = (int)(r - sh->r);
    if (!j || !ds__jis(ds_json_get(j, "dtype"), "BF16") || !ds__shape_is(ds_json_get(j, "shape"), (size_t)t->rows, t->cols)) return NULL;
    ds_json_int(ds_json_get(j, "data_offsets")->child, 0, INT64_MAX, &b);
    if ((r->data_at + (uint64_t)b) % 2 || !ds__maps_reserve(m, sh->n)) return NULL;
    if (m->maps[i] == MAP_FAILED) {
        size_t len = (size_t)(r->data_at + r->data_len);
        void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fileno(r->f), 0);
        if (p == MAP_FAILED) return NULL;
        m->maps[i] = p, m->map_lens[i] = len;
    }
    return (const uint16_t *)(const void *)((const char *)m->maps[i] + r->data_at + (uint64_t)b);
#else
    (void)m, (void)sh, (void)r, (void)t;
    return NULL;
#endif
}

/* An F32 inference model whose file holds every tensor as F32, in the model's order, back to back
   (our own checkpoints do): the weights are the file itself, mapped copy-on-write (PROT_WRITE,
   MAP_PRIVATE: a write changes this process's copy only), so a load reads nothing twice and
   allocates nothing for them. 1 when mapped; 0 when the file is laid out otherwise (the loader then
   allocates and reads). CPU build, POSIX, little-endian, float weights only. */
static int ds__st_map_f32_model(ds_model *m, const ds__shards *sh) {
#if defined(DS__POSIX) && !defined(DS_CUDA) && !defined(DS_DOUBLE)
    const ds__st_r *r = NULL;
    int64_t base = 0;
    int k, i;
    void *p;
    size_t len;
    if (!m->ex.host_visible || !ds__little_endian()) return 0;
    for (k = 0; k < m->n_tensors; k++) {
        const ds_tensor *t = &m->tensors[k];
        const ds_json *j = NULL, *o;
        int64_t b = 0;
        for (i = 0; i < sh->n && !j; i++)
            if ((j = ds_json_get(sh->r[i].doc->root, t->name)) && !r) r = &sh->r[i];
        if (!j || (r && ds_json_get(r->doc->root, t->name) != j)) return 0; /* (absent, or in another shard) */
        if (!ds__jis(ds_json_get(j, "dtype"), "F32") || !ds__shape_is(ds_json_get(j, "shape"), (size_t)t->rows, t->cols)) return 0;
        if (!(o = ds_json_get(j, "data_offsets")) || !o->child || !ds_json_int(o->child, 0, INT64_MAX, &b)) return 0;
        if (k == 0) base = b;
        if ((uint64_t)b != (uint64_t)base + 4 * (uint64_t)t->offset) return 0; /* not back to back in our order */
    }
    if (!r || (r->data_at + (uint64_t)base) % sizeof(float)) return 0;
    i = (int)(r - sh->r);
    if (!ds__maps_reserve(m, sh->n)) return 0;
    len = (size_t)(r->data_at + r->data_len);
    if ((p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fileno(r->f), 0)) == MAP_FAILED) return 0;
    m->maps[i] = p, m->map_lens[i] = len;
    m->params = (ds_float *)(void *)((char *)p + r->data_at + (uint64_t)base);
    m->params_mapped = 1;
    return 1;
#else
    (void)m, (void)sh;
    return 0;
#endif
}

static ds_model *ds__checkpoint_load(const char *dir, int B, int T, ds_train_state *st, int flags, ds_error *err);
DSDEF ds_model *ds_checkpoint_load(const char *dir, int B, int T, ds_train_state *st, ds_error *err) { return ds__checkpoint_load(dir, B, T, st, 0, err); }
DSDEF ds_model *ds_checkpoint_load_inference(const char *dir, int B, int T, ds_error *err) {
    return ds__checkpoint_load(dir, B, T, NULL, DS__NEW_INFERENCE, err);
}
DSDEF ds_model *ds_checkpoint_load_bf16(const char *dir, ds_error *err) { return ds__checkpoint_load(dir, 1, 1, NULL, DS__NEW_BF16, err); }
static ds_model *ds__checkpoint_load(const char *dir, int B, int T, ds_train_state *st, int flags, ds_error *err) {
    ds_buf p = {0, 0, 0, 0}, d = {0, 0, 0, 0};
    char *cfg_text = NULL;
    size_t cfg_len;
    ds_json_doc *cfg_doc = NULL;
    ds_config c;
    ds__st_r r;
    ds__shards sh;
    ds_model *m = NULL;
    int tie = 0, k;
    memset(&r, 0, sizeof r);
    memset(&sh, 0, sizeof sh);
    if (!dir) { ds__fail(err, DS_ERR_INVALID, "ds_checkpoint_load: NULL directory"); return NULL; }
    ds_buf_puts(&d, dir);
#ifdef DS__POSIX
    if (!ds__is_dir(dir)) { /* a crash between save's two renames leaves only "<dir>.old" */
        ds__path(&p, dir, ".old", NULL);
        if (!p.oom && ds__is_dir(p.data)) { d.len = 0; ds_buf_puts(&d, p.data); }
    }
#endif
    if (d.oom) { DS__OOM(err); goto fail; }
    ds__path(&p, d.data, "", "config.json");
    if (!(cfg_text = ds_read_file(p.data, 1 << 24, &cfg_len, err))) goto fail;
    if (!(cfg_doc = ds_json_parse(cfg_text, cfg_len, err))) {
        ds__err_prefix(err, p.data);
        goto fail;
    }
    if (ds__config_from_doc(cfg_doc->root, &c, &tie, err)) goto fail;
    if (ds__shards_open(&sh, d.data, err)) goto fail;
    { /* our checkpoints record config.json's checksum (and tokenizer.json's): a changed or corrupted one is refused */
        const char *want = ds__st_meta(&sh.r[0], "config_checksum");
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)ds__checksum(cfg_text, cfg_len));
        if (want && strcmp(want, hex) != 0) {
            ds__fail(err, DS_ERR_FORMAT, "%s/config.json does not match the checkpoint (checksum %s, model.safetensors records %.20s)", d.data, hex, want);
            goto fail;
        }
        if ((want = ds__st_meta(&sh.r[0], "tokenizer_checksum"))) {
            ds_buf tp_ = {0, 0, 0, 0};
            uint64_t tl = 0, sum = 0;
            FILE *tf;
            int rc_;
            unsigned char chunk[16384];
            ds__path(&tp_, d.data, "", "tokenizer.json");
            tf = tp_.oom ? (DS__OOM(err), (FILE *)NULL) : ds__open_regular(tp_.data, (size_t)1 << 30, &tl, err);
            rc_ = tf ? ds__sum_file(tf, tl, chunk, sizeof chunk, &sum, tp_.data, err) : DS_ERR_IO;
            if (tf) fclose(tf);
            ds_buf_free(&tp_);
            if (rc_) goto fail;
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)sum);
            if (strcmp(want, hex) != 0) { ds__fail(err, DS_ERR_FORMAT, "%s/tokenizer.json does not match the checkpoint (checksum %s)", d.data, hex); goto fail; }
        }
    }
    { /* the weights the config implies must be the weights the files hold, before allocating */
        const ds_json *t;
        size_t held = 0, want = ds_config_n_params(&c);
        int head = 0, i;
        for (i = 0; i < sh.n; i++)
            for (t = sh.r[i].doc->root->child; t; t = t->next) {
                const ds_json *shp = ds_json_get(t, "shape"), *dd;
                size_t numel = 1;
                int ok = 1;
                if (t->key_len == 12 && !memcmp(t->key, "__metadata__", 12)) continue;
                for (dd = shp ? shp->child : NULL; dd; dd = dd->next) numel = ds__mul(numel, (size_t)dd->num, &ok);
                held = ds__add(held, numel, &ok);
                if (!strcmp(t->key, "lm_head.weight")) head = 1;
                if (!ok) { ds__fail(err, DS_ERR_FORMAT, "%s: tensor sizes overflow", sh.path[i]); goto fail; }
            }
        if (tie && !head) want -= (size_t)c.vocab * (size_t)c.d_model;
        if (held != want) {
            ds__fail(err, DS_ERR_FORMAT, "%s: config.json implies %zu weights, %s %zu (a changed config.json, or another model's file)", d.data, want,
                     sh.index ? "the shards hold" : "model.safetensors holds", held);
            goto fail;
        }
    }
    /* RoPE extends to any length: the tables cover T, while the config (and the next save's
       max_position_embeddings) keeps the checkpoint's max_seq */
    { /* an F32 inference model maps its weights when the file allows (ds__st_map_f32_model) */
        int map = (flags & DS__NEW_INFERENCE) && !(flags & DS__NEW_BF16) && !(flags & DS__NEW_HOST_COPIES) && !tie;
        if (!(m = ds__model_new(&c, B, T, T, flags | (map ? DS__NEW_NO_PARAMS : 0), err))) goto fail;
        if (map && !ds__st_map_f32_model(m, &sh) && !(m->params = (ds_float *)ds__exec_alloc(&m->ex, m->n_params, sizeof(ds_float)))) {
            DS__OOM(err);
            goto fail;
        }
    }
    for (k = 0; k < m->n_tensors && !m->params_mapped; k++) {
        const ds_tensor *t = &m->tensors[k];
        const ds__st_r *src;
        if (tie && k == m->n_tensors - 1 && !(sh.index ? ds_json_get(sh.map, t->name) : ds_json_get(sh.r[0].doc->root, t->name))) {
            if (m->bf16) m->bw[k] = m->bw[0]; /* tied: the head is the embedding */
            else ds__copy(&m->ex, m->params + t->offset, m->params + m->tensors[0].offset, t->numel);
            continue;
        }
        if (!(src = ds__shards_find(&sh, t->name, err))) goto fail;
        if (m->bf16) { /* a BF16 tensor of the right shape is mapped, not copied; others are rounded into bstore */
            if ((m->bw[k] = ds__st_map_bf16(m, &sh, src, t)) != NULL) continue;
            if (!m->bstore) {
                if (!(m->bstore = (uint16_t *)DS_MALLOC(m->n_params * sizeof(uint16_t) + 1))) { DS__OOM(err); goto fail; }
                ds__hugepages(m->bstore, m->n_params * sizeof(uint16_t)); /* before its first touch, the copy below */
            }
            if (ds__st_read_as(src, t->name, (size_t)t->rows, t->cols, NULL, m->bstore + t->offset, err)) goto fail;
            m->bw[k] = m->bstore + t->offset;
        } else if (ds__st_read_to(m, src, t->name, (size_t)t->rows, t->cols, m->params + t->offset, err)) {
            goto fail;
        }
    }
    ds__shards_close(&sh);
    if (st) {
        const char *v;
        uint64_t np = 0;
        ds__path(&p, d.data, "", "trainer_state.safetensors");
        if (ds__st_open(&r, p.data, err)) goto fail;
        if (!(v = ds__st_meta(&r, "n_params")) || !ds__parse_u64(v, UINT64_MAX, &np) || np != (uint64_t)m->n_params) {
            ds__fail(err, DS_ERR_FORMAT, "%s: it was written for another model (n_params %s, this one %zu)", p.data, v ? v : "missing", m->n_params);
            goto fail;
        }
        if (ds__st_read_to(m, &r, "optimizer.exp_avg", m->n_params, 0, m->m, err) ||
            ds__st_read_to(m, &r, "optimizer.exp_avg_sq", m->n_params, 0, m->v, err))
            goto fail;
        if (!ds__st_meta(&r, "step") || !ds__st_meta(&r, "adam_step") || !ds__st_meta(&r, "tokens_seen") || !ds__st_meta(&r, "data_pos") ||
            !ds__st_meta(&r, "rng")) {
            ds__fail(err, DS_ERR_FORMAT, "%s: the trainer state (step, adam_step, tokens_seen, data_pos, rng) is incomplete", p.data);
            goto fail;
        }
        {
            uint64_t v[5];
            static const char *const key[5] = {"step", "adam_step", "tokens_seen", "data_pos", "rng"};
            const ds_json *run = ds_json_get(ds_json_get(r.doc->root, "__metadata__"), "run");
            int i;
            for (i = 0; i < 5; i++) /* whole decimal strings in range: "-5", "abc", "1e3" are refused */
                if (!ds__parse_u64(ds__st_meta(&r, key[i]), i < 2 ? (uint64_t)LONG_MAX : UINT64_MAX, &v[i])) {
                    ds__fail(err, DS_ERR_FORMAT, "%s: trainer state \"%s\" is \"%.40s\", not a whole number in range", p.data, key[i], ds__st_meta(&r, key[i]));
                    goto fail;
                }
            st->step = (long)v[0], m->steps = (long)v[1], st->tokens_seen = v[2], st->data_pos = v[3], st->rng = v[4];
            memset(st->run, 0, sizeof st->run);
            if (run && run->type == DS_JSON_STRING) {
                if (run->len >= sizeof st->run) { ds__fail(err, DS_ERR_FORMAT, "%s: the run description is too long", p.data); goto fail; }
                memcpy(st->run, run->str, run->len);
            }
        }
        ds__st_close(&r);
    }
    if (ds__model_check_finite(m, NULL, st != NULL, err)) { /* a poisoned checkpoint is refused, not trained on */
        ds__err_prefix(err, d.data);
        goto fail;
    }
    ds_json_free(cfg_doc);
    DS_FREE(cfg_text);
    ds_buf_free(&p);
    ds_buf_free(&d);
    return m;
fail:
    ds__st_close(&r);
    ds__shards_close(&sh);
    ds_model_free(m);
    ds_json_free(cfg_doc);
    DS_FREE(cfg_text);
    ds_buf_free(&p);
    ds_buf_free(&d);
    return NULL;
}


/* ============================================================================================
   §2.4 Data parallelism: ZeRO-1 on MPI (DS_MPI), and asynchronous checkpoints
   A step of the group, on rank r of w (k = micro / w micro-batches each, n parameters):
     ds_dp_micro, k times:  grad = d(sum_t w_t loss_t) of one micro-batch, folded into the local
                            pairwise tree (a binary counter of partial sums: depth log2 k + 1)
     ds_dp_step:  1. every rank's record -- status, message, its micro-batches' (sum w loss,
                     sum w) -- all-gathered; W = sum w over the global batch, in micro-batch order
                  2. reduce-scatter: rank r sends slice p of its local sum to rank p and receives
                     slice r from everyone; the w parts are summed on rank r in the pairwise tree
                     over ranks, which continues the local trees exactly when k is a power of two
                  3. the norm: each slice's chunk sums of squares (slices start on chunk
                     boundaries), all-gathered and summed in chunk order -- ds__sqnorm's order
                  4. AdamW on [lo_r, hi_r) with the gradient scaled by clip / W
                  5. all-gather: every rank receives every slice of the updated parameters
   Every transfer is point to point (MPI_Isend/Irecv, at most 2^28 values a message); no MPI
   reduction touches a float, so the results do not depend on the MPI library or its tuning.
   Without DS_MPI the group is rank 0 of 1 and steps 2, 3 and 5 are local.
   ============================================================================================ */
#if defined(DS_MPI) && defined(DS_CUDA)
#error "deepseek.h: DS_MPI with DS_CUDA is not implemented (the MPI ranks are CPU ranks)"
#endif
#ifdef DS_MPI
#include <mpi.h>
#define DS__MPI_FLOAT (sizeof(ds_float) == 8 ? MPI_DOUBLE : MPI_FLOAT)
#endif
#define DS__DP_MSG 256             /* a failing rank's message in its record (a ds_error's) */
#define DS__DP_MAX_MSG (1u << 28)  /* values per MPI message (MPI counts are int) */

typedef struct ds__dp_msg { ds_float *buf; size_t n; int peer, send, tag; } ds__dp_msg;
struct ds_dp {
    ds_model *m;            /* NULL once the model is freed */
    int rank, world, micro, local, done, sp, status, broken;
    size_t n, *lo;          /* rank r's slice: [lo[r], lo[r + 1]) */
    ds_float **stack;       /* local > 1: the tree's partial sums (model memory, n values each) */
    int *cnt, depth;        /* micro-batches in each partial sum */
    ds_float *recv;         /* world > 1: the other ranks' parts of this rank's slice */
    ds_float **items;       /* [world] the parts, in rank order */
    double *parts;          /* every chunk's sum of squares, in chunk order */
    int *chunk_n, *chunk_at;/* [world] each slice's chunks, and where they start */
    double *mb;             /* [micro][2] every micro-batch's (sum w loss, sum w), in order */
    unsigned char *rec, *recs; /* this rank's record, and every rank's */
    size_t rec_len;
    ds_float *snap;         /* rank 0: the moments gathered for a save (2 n), at its first save */
    char msg[DS__DP_MSG];   /* this step's first failure on this rank */
    ds__dp_msg *xfer;       /* [2 world] one batch of transfers */
    double bytes, seconds;  /* traffic since ds_dp_new */
#ifdef DS_MPI
    MPI_Comm comm;
    MPI_Request *req;       /* [2 world] */
    int finalize;           /* ds_dp_new initialized MPI, ds_dp_free finalizes it */
#endif
};

static int ds__dp_world(const struct ds_dp *d) { return d->world; }
static size_t ds__dp_len(const ds_dp *d, int r) { return d->lo[r + 1] - d->lo[r]; }

#ifdef DS_MPI
static int ds__mpi_fail(ds_dp *d, int code, const char *what, ds_error *err) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    d->broken = 1; /* the group's state is unknown now: it refuses further work */
    if (MPI_Error_string(code, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error code %d", code);
    return ds__fail(err, DS_ERR_IO, "rank %d: MPI %s failed: %s (a rank died, or the job is being torn down)", d->rank, what, s);
}
#define DS__MPI(d, call, what)                                            \
    do {                                                                  \
        int e_ = (call);                                                  \
        if (e_ != MPI_SUCCESS) return ds__mpi_fail((d), e_, (what), err); \
    } while (0)
#endif

/* One batch of point-to-point transfers: msg i moves n values between buf and rank peer (send
   or receive, with its tag), in rounds of at most DS__DP_MAX_MSG values per message. */
static int ds__dp_xfer(ds_dp *d, const ds__dp_msg *msg, int n_msg, const char *what, ds_error *err) {
#ifdef DS_MPI
    size_t at;
    double t0 = ds_now();
    int more = 1;
    DS_ASSERT(n_msg <= 2 * d->world);
    for (at = 0; more; at += DS__DP_MAX_MSG) {
        int i, k = 0;
        more = 0;
        for (i = 0; i < n_msg; i++) {
            int c, e;
            if (msg[i].n <= at) continue;
            c = (int)(msg[i].n - at < DS__DP_MAX_MSG ? msg[i].n - at : DS__DP_MAX_MSG);
            if (msg[i].n - at > DS__DP_MAX_MSG) more = 1;
            e = msg[i].send ? MPI_Isend(msg[i].buf + at, c, DS__MPI_FLOAT, msg[i].peer, msg[i].tag, d->comm, &d->req[k])
                            : MPI_Irecv(msg[i].buf + at, c, DS__MPI_FLOAT, msg[i].peer, msg[i].tag, d->comm, &d->req[k]);
            if (e != MPI_SUCCESS) return ds__mpi_fail(d, e, what, err);
            k++;
            d->bytes += (double)c * sizeof(ds_float);
        }
        DS__MPI(d, MPI_Waitall(k, d->req, MPI_STATUSES_IGNORE), what);
    }
    d->seconds += ds_now() - t0;
    return DS_OK;
#else
    (void)d, (void)msg, (void)n_msg, (void)what, (void)err;
    return DS_OK; /* world 1: nothing to move */
#endif
}

static void ds__dp_free_stack(ds_dp *d) {
    int k;
    if (d->stack && d->m)
        for (k = 0; k < d->depth; k++) ds__exec_free(&d->m->ex, d->stack[k]);
    DS_FREE(d->stack);
    d->stack = NULL;
}
static void ds__dp_detach(struct ds_dp *d) {
    ds__dp_free_stack(d);
    if (d->m) d->m->dp = NULL;
    d->m = NULL;
}

DSDEF void ds_dp_free(ds_dp *d) {
    if (!d) return;
    ds__dp_detach(d); /* a sharded model keeps its slice (and refuses ds_model_step) */
    DS_FREE(d->xfer), DS_FREE(d->lo), DS_FREE(d->cnt), DS_FREE(d->recv), DS_FREE((void *)d->items), DS_FREE(d->parts);
    DS_FREE(d->chunk_n), DS_FREE(d->chunk_at), DS_FREE(d->mb), DS_FREE(d->rec), DS_FREE(d->recs), DS_FREE(d->snap);
#ifdef DS_MPI
    DS_FREE(d->req);
    if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
    if (d->finalize) MPI_Finalize();
#endif
    DS_FREE(d);
}

DSDEF ds_dp *ds_dp_new(ds_model *m, int micro, ds_error *err) {
    ds_dp *d;
    size_t chunks, r, len;
    int k;
    if (!m || micro < 1) { ds__fail(err, DS_ERR_INVALID, "ds_dp_new: %s", m ? "micro must be at least 1" : "NULL model"); return NULL; }
    if (m->inference || m->bf16) { ds__fail(err, DS_ERR_INVALID, "ds_dp_new: an inference model does not train"); return NULL; }
    if (m->dp || m->sharded) { ds__fail(err, DS_ERR_INVALID, "ds_dp_new: the model already belongs to a group"); return NULL; }
    if (!(d = (ds_dp *)ds__calloc(1, sizeof *d))) { DS__OOM(err); return NULL; }
    d->world = 1, d->micro = micro, d->n = m->n_params;
#ifdef DS_MPI
    d->comm = MPI_COMM_NULL;
    {
        int init = 0, provided = 0, rank = 0, world = 1;
        MPI_Initialized(&init);
        if (!init) {
            if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
                ds__fail(err, DS_ERR_IO, "ds_dp_new: MPI_Init failed");
                DS_FREE(d);
                return NULL;
            }
            d->finalize = 1;
        }
        if (MPI_Comm_dup(MPI_COMM_WORLD, &d->comm) != MPI_SUCCESS || MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
            MPI_Comm_rank(d->comm, &rank) != MPI_SUCCESS || MPI_Comm_size(d->comm, &world) != MPI_SUCCESS) {
            ds__fail(err, DS_ERR_IO, "ds_dp_new: cannot set up the MPI communicator");
            ds_dp_free(d);
            return NULL;
        }
        d->rank = rank, d->world = world;
    }
#endif
    if (micro % d->world) {
        ds__fail(err, DS_ERR_INVALID, "ds_dp_new: %d micro-batches per step do not split over %d ranks", micro, d->world);
        ds_dp_free(d);
        return NULL;
    }
    d->local = micro / d->world;
    /* slices of whole norm chunks, as even as chunks allow */
    chunks = (d->n + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK;
    d->lo = (size_t *)ds__calloc((size_t)d->world + 1, sizeof(size_t));
    d->chunk_n = (int *)ds__calloc((size_t)d->world, sizeof(int));
    d->chunk_at = (int *)ds__calloc((size_t)d->world, sizeof(int));
    d->items = (ds_float **)ds__calloc((size_t)d->world, sizeof(ds_float *));
    d->parts = (double *)ds__calloc(chunks + 1, sizeof(double));
    d->mb = (double *)ds__calloc((size_t)micro * 2, sizeof(double));
    d->rec_len = 8 + DS__DP_MSG + 16 * (size_t)d->local;
    d->rec = (unsigned char *)ds__calloc(d->rec_len, 1);
    d->recs = (unsigned char *)ds__calloc(d->rec_len, (size_t)d->world);
    d->xfer = (ds__dp_msg *)ds__calloc(2 * (size_t)d->world, sizeof(ds__dp_msg));
#ifdef DS_MPI
    d->req = (MPI_Request *)ds__calloc(2 * (size_t)d->world, sizeof(MPI_Request));
    if (!d->req) goto oom;
#endif
    if (!d->lo || !d->chunk_n || !d->chunk_at || !d->items || !d->parts || !d->mb || !d->rec || !d->recs || !d->xfer) goto oom;
    for (r = 0; r <= (size_t)d->world; r++) {
        size_t c = (size_t)((double)chunks * (double)r / (double)d->world + 0.5);
        if (c > chunks) c = chunks;
        d->lo[r] = c * DS__NORM_CHUNK < d->n ? c * DS__NORM_CHUNK : d->n;
        if (r > 0) d->chunk_n[r - 1] = (int)((d->lo[r] - d->lo[r - 1] + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK);
    }
    d->lo[d->world] = d->n;
    d->chunk_n[d->world - 1] = (int)((d->lo[d->world] - d->lo[d->world - 1] + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK);
    for (k = 1; k < d->world; k++) d->chunk_at[k] = d->chunk_at[k - 1] + d->chunk_n[k - 1];
    len = ds__dp_len(d, d->rank);
    if (d->local > 1) { /* the tree's partial sums: one per bit of local */
        for (k = d->local; k; k >>= 1) d->depth++;
        d->stack = (ds_float **)ds__calloc((size_t)d->depth, sizeof(ds_float *));
        d->cnt = (int *)ds__calloc((size_t)d->depth, sizeof(int));
        if (!d->stack || !d->cnt) goto oom;
        d->m = m; /* (ds__dp_free_stack frees through it) */
        for (k = 0; k < d->depth; k++)
            if (!(d->stack[k] = (ds_float *)ds__exec_alloc(&m->ex, d->n, sizeof(ds_float)))) goto oom;
    }
    if (d->world > 1) {
        if (!(d->recv = (ds_float *)ds__calloc(len * (size_t)(d->world - 1) + 1, sizeof(ds_float)))) goto oom;
    }
#ifdef DS_MPI
    if (d->world > 1) { /* every rank must hold the same model: compare shapes and parameters with rank 0's */
        uint64_t mine[2], *all = (uint64_t *)ds__calloc(2 * (size_t)d->world, sizeof(uint64_t));
        int bad = -1, rc;
        if (!all) goto oom;
        mine[0] = d->n, mine[1] = ds__checksum(m->params, d->n * sizeof(ds_float));
        rc = MPI_Allgather(mine, 2, MPI_UINT64_T, all, 2, MPI_UINT64_T, d->comm);
        for (k = 1; k < d->world && rc == MPI_SUCCESS; k++)
            if (all[2 * k] != all[0] || all[2 * k + 1] != all[1]) { bad = k; break; }
        DS_FREE(all);
        if (rc != MPI_SUCCESS) { ds__mpi_fail(d, rc, "allgather", err); ds_dp_free(d); return NULL; }
        if (bad >= 0) {
            ds__fail(err, DS_ERR_INVALID, "ds_dp_new: rank %d's model differs from rank 0's (its shape or its parameters): initialize every rank alike", bad);
            ds_dp_free(d);
            return NULL;
        }
    }
#endif
    if (d->world > 1) { /* ZeRO-1: keep this rank's slice of the moments, free the rest */
        ds_float *mm = (ds_float *)ds__exec_alloc(&m->ex, len + 1, sizeof(ds_float));
        ds_float *vv = (ds_float *)ds__exec_alloc(&m->ex, len + 1, sizeof(ds_float));
        if (!mm || !vv) { ds__exec_free(&m->ex, mm); ds__exec_free(&m->ex, vv); goto oom; }
        ds__copy(&m->ex, mm, m->m + d->lo[d->rank], len);
        ds__copy(&m->ex, vv, m->v + d->lo[d->rank], len);
        ds__exec_free(&m->ex, m->m);
        ds__exec_free(&m->ex, m->v);
        m->m = mm, m->v = vv, m->sharded = 1;
    }
    d->m = m, m->dp = d;
    return d;
oom:
    DS__OOM(err);
    ds_dp_free(d);
    return NULL;
}

DSDEF int ds_dp_rank(const ds_dp *d) { return d ? d->rank : 0; }
DSDEF int ds_dp_world(const ds_dp *d) { return d ? d->world : 1; }
DSDEF int ds_dp_local(const ds_dp *d) { return d ? d->local : 0; }
DSDEF void ds_dp_slice(const ds_dp *d, size_t *lo, size_t *hi) {
    if (lo) *lo = d ? d->lo[d->rank] : 0;
    if (hi) *hi = d ? d->lo[d->rank + 1] : 0;
}
DSDEF void ds_dp_traffic(const ds_dp *d, double *bytes, double *seconds) {
    if (bytes) *bytes = d ? d->bytes : 0;
    if (seconds) *seconds = d ? d->seconds : 0;
}

/* the binary counter: the new gradient (in m->grads) joins the partial sums, merging equal-sized
   neighbours, left + right */
static void ds__dp_push(ds_dp *d) {
    ds__exec *ex = &d->m->ex;
    if (d->local == 1) return; /* the gradient stays where backward left it */
    if (d->sp > 0 && d->cnt[d->sp - 1] == 1) {
        ds__accumulate(ex, d->stack[d->sp - 1], d->m->grads, d->n);
        d->cnt[d->sp - 1] = 2;
        while (d->sp >= 2 && d->cnt[d->sp - 2] == d->cnt[d->sp - 1]) {
            ds__accumulate(ex, d->stack[d->sp - 2], d->stack[d->sp - 1], d->n);
            d->cnt[d->sp - 2] *= 2;
            d->sp--;
        }
    } else {
        DS_ASSERT(d->sp < d->depth);
        ds__copy(ex, d->stack[d->sp], d->m->grads, d->n);
        d->cnt[d->sp++] = 1;
    }
}

static int ds__dp_record_fail(ds_dp *d, int rc, const char *msg) {
    if (!d->status) {
        d->status = rc;
        snprintf(d->msg, sizeof d->msg, "%s", msg);
    }
    return rc;
}

DSDEF int ds_dp_micro(ds_dp *d, const int32_t *inputs, const int32_t *targets, const float *weights, int B, int T, ds_pool *pool,
                      ds_error *err) {
    ds_model *m = d ? d->m : NULL;
    ds_error e;
    int rc;
    e.code = 0, e.msg[0] = 0;
    if (!m) return ds__fail(err, DS_ERR_INVALID, "ds_dp_micro: %s", d ? "the group's model was freed" : "NULL group");
    if (d->done >= d->local) {
        rc = ds__fail(&e, DS_ERR_INVALID, "ds_dp_micro: more than ds_dp_local = %d micro-batches before ds_dp_step", d->local);
    } else if (d->status) {
        rc = ds__fail(&e, d->status, "%s", d->msg);
    } else if (!targets) {
        rc = ds__fail(&e, DS_ERR_INVALID, "ds_dp_micro: the micro-batch has no targets");
    } else {
        ds_model_zero_grad(m);
        rc = ds_model_forward(m, inputs, targets, weights, B, T, pool, NULL, &e);
        if (!rc && m->wsum > 0) { /* the gradient of sum_t w_t loss_t: the step divides by the global sum */
            m->ex.pool = pool;
            ds__backward(m, m->weights, 1.0);
            m->logits_consumed = 1;
            rc = ds__exec_status(&m->ex, &e);
        }
        if (!rc) {
            size_t j = (size_t)d->rank * (size_t)d->local + (size_t)d->done;
            d->mb[2 * j] = m->lsum, d->mb[2 * j + 1] = m->wsum;
            ds__dp_push(d);
            rc = ds__exec_status(&m->ex, &e);
        }
    }
    if (d->done < d->local) d->done++;
    if (rc) {
        ds__dp_record_fail(d, rc, e.msg);
        return ds__fail(err, rc, "%s", e.msg);
    }
    return DS_OK;
}

/* sum items[0..n) into items[0] in the pairwise tree (split at the largest power of two below n) */
static void ds__dp_tree(ds__exec *ex, ds_float **items, int n, size_t len) {
    int p = 1;
    if (n < 2) return;
    while (p * 2 < n) p *= 2;
    ds__dp_tree(ex, items, p, len);
    ds__dp_tree(ex, items + p, n - p, len);
    ds__accumulate(ex, items[0], items[p], len);
}

DSDEF int ds_dp_step(ds_dp *d, const ds_adamw *opt, double lr, double *loss, double *grad_norm, ds_pool *pool, ds_error *err) {
    ds_model *m = d ? d->m : NULL;
    ds__exec *ex;
    ds_float *g, *G;
    ds__adamw_hp hp;
    ds_adamw def = ds_adamw_default();
    double L = 0, W = 0, S = 0, norm;
    size_t lo, hi, len, j;
    int r, first_bad = -1, bad_rc = 0, rc;
    int32_t st32;
    if (!m) return ds__fail(err, DS_ERR_INVALID, "ds_dp_step: %s", d ? "the group's model was freed" : "NULL group");
    if (d->broken) return ds__fail(err, DS_ERR_IO, "ds_dp_step: an earlier MPI call of this group failed");
    if (!opt) opt = &def;
    ex = &m->ex, ex->pool = pool;
    lo = d->lo[d->rank], hi = d->lo[d->rank + 1], len = hi - lo;
    if (!d->status && d->done != d->local) {
        char msg[96];
        snprintf(msg, sizeof msg, "ds_dp_step: %d of this rank's %d micro-batches were run", d->done, d->local);
        ds__dp_record_fail(d, DS_ERR_INVALID, msg);
    }
    /* 1. every rank's record: status, message, losses */
    st32 = (int32_t)d->status;
    memset(d->rec, 0, d->rec_len);
    memcpy(d->rec, &st32, 4);
    memcpy(d->rec + 8, d->msg, DS__DP_MSG);
    memcpy(d->rec + 8 + DS__DP_MSG, d->mb + 2 * (size_t)d->rank * (size_t)d->local, 16 * (size_t)d->local);
#ifdef DS_MPI
    if (d->world > 1) {
        double t0 = ds_now();
        DS__MPI(d, MPI_Allgather(d->rec, (int)d->rec_len, MPI_BYTE, d->recs, (int)d->rec_len, MPI_BYTE, d->comm), "allgather (status)");
        d->seconds += ds_now() - t0, d->bytes += (double)d->rec_len * (double)d->world;
    } else
#endif
        memcpy(d->recs, d->rec, d->rec_len);
    /* the step's local state is spent: whatever happens below, the next step starts clean */
    d->done = 0, d->status = 0, d->msg[0] = 0;
    for (r = 0; r < d->world; r++) {
        memcpy(&st32, d->recs + (size_t)r * d->rec_len, 4);
        if (st32 && first_bad < 0) first_bad = r, bad_rc = st32;
        memcpy(d->mb + 2 * (size_t)r * (size_t)d->local, d->recs + (size_t)r * d->rec_len + 8 + DS__DP_MSG, 16 * (size_t)d->local);
    }
    if (first_bad >= 0) {
        char msg[DS__DP_MSG + 1];
        memcpy(msg, d->recs + (size_t)first_bad * d->rec_len + 8, DS__DP_MSG);
        msg[DS__DP_MSG] = 0;
        d->sp = 0;
        if (d->world == 1) return ds__fail(err, bad_rc, "%s", msg);
        return ds__fail(err, bad_rc, "rank %d: %s (the step was not applied on any rank)", first_bad, msg);
    }
    for (j = 0; j < (size_t)d->micro; j++) L += d->mb[2 * j], W += d->mb[2 * j + 1];
    if (loss) *loss = W > 0 ? L / W : 0.0;
    /* 2. this rank's sum, then the reduce-scatter and the tree over ranks */
    if (d->local == 1) g = m->grads;
    else {
        while (d->sp > 1) {
            ds__accumulate(ex, d->stack[d->sp - 2], d->stack[d->sp - 1], d->n);
            d->sp--;
        }
        g = d->stack[0];
        d->sp = 0;
    }
    if (d->world > 1) {
        ds__dp_msg *mp = d->xfer;
        int k = 0;
        for (r = 0; r < d->world; r++) {
            if (r == d->rank) { d->items[r] = g + lo; continue; }
            d->items[r] = d->recv + (size_t)(r < d->rank ? r : r - 1) * len;
            mp[k].buf = d->items[r], mp[k].n = len, mp[k].peer = r, mp[k].send = 0, mp[k].tag = 3, k++;
            mp[k].buf = g + d->lo[r], mp[k].n = ds__dp_len(d, r), mp[k].peer = r, mp[k].send = 1, mp[k].tag = 3, k++;
        }
        if ((rc = ds__dp_xfer(d, mp, k, "reduce-scatter (gradients)", err))) return rc;
        ds__dp_tree(ex, d->items, d->world, len);
        G = d->items[0];
    } else G = g;
    /* 3. the clipping norm: the chunk sums of every slice, in chunk order */
    {
        const double *part = ds__sqnorm_partials(ex, G, len);
        if ((rc = ds__exec_status(ex, err))) return rc;
        if (part) memcpy(d->parts + d->chunk_at[d->rank], part, (size_t)d->chunk_n[d->rank] * sizeof(double));
#ifdef DS_MPI
        if (d->world > 1) {
            double t0 = ds_now();
            DS__MPI(d, MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, d->parts, d->chunk_n, d->chunk_at, MPI_DOUBLE, d->comm),
                    "allgatherv (norm)");
            d->seconds += ds_now() - t0;
        }
#endif
        for (j = 0; j < (d->n + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK; j++) S += d->parts[j];
    }
    norm = W > 0 ? sqrt(S) / W : 0.0;
    if (grad_norm) *grad_norm = norm;
    if (!(norm == norm) || isinf(norm))
        return ds__fail(err, DS_ERR_NUMERIC, "step %ld: the gradient norm is not finite; the step was not applied", m->steps + 1);
    /* 4. AdamW on this rank's slice, the gradient scaled by clip / W */
    hp = ds__adamw_scalars(opt, lr, ++m->steps, norm);
    hp.clip = W > 0 ? hp.clip / W : 0.0;
    ds__adamw_update(ex, m->params, G, m->m, m->v, m->tensors, m->n_tensors, lo, hi, &hp);
    if ((rc = ds__exec_status(ex, err))) return rc;
    /* 5. every rank receives every slice */
    if (d->world > 1) {
        ds__dp_msg *msg = d->xfer;
        int k = 0;
        for (r = 0; r < d->world; r++) {
            if (r == d->rank) continue;
            msg[k].buf = m->params + d->lo[r], msg[k].n = ds__dp_len(d, r), msg[k].peer = r, msg[k].send = 0, msg[k].tag = 4, k++;
            msg[k].buf = m->params + lo, msg[k].n = len, msg[k].peer = r, msg[k].send = 1, msg[k].tag = 4, k++;
        }
        if ((rc = ds__dp_xfer(d, msg, k, "all-gather (parameters)", err))) return rc;
    }
    return DS_OK;
}

DSDEF int ds_dp_agree(ds_dp *d, int *flag, ds_error *err) {
    if (!d || !flag) return ds__fail(err, DS_ERR_INVALID, "ds_dp_agree: NULL argument");
    if (d->broken) return ds__fail(err, DS_ERR_IO, "ds_dp_agree: an earlier MPI call of this group failed");
#ifdef DS_MPI
    if (d->world > 1) {
        double t0 = ds_now();
        DS__MPI(d, MPI_Bcast(flag, 1, MPI_INT, 0, d->comm), "bcast");
        d->seconds += ds_now() - t0;
    }
#endif
    return DS_OK;
}

/* ---- asynchronous checkpoints ---------------------------------------------------------------- */
#if !defined(DS_NO_THREADS) && defined(DS__POSIX)
#define DS__SAVER_THREAD 1
#endif
struct ds_saver {
    ds_float *p, *m1, *m2;  /* the snapshot (host memory), cap values each */
    size_t cap;
    ds_buf tok, dir;
    ds_train_state st;
    int has_st, has_tok, dtype;
    ds__ckpt_src src;
    const ds_model *m;
    int running, pending, rc; /* a write in flight; a result not yet returned; that result */
    ds_error err;
    double t0, seconds;
#ifdef DS__SAVER_THREAD
    pthread_t th;
    int joinable;
    pthread_mutex_t mu;
#endif
};

DSDEF ds_saver *ds_saver_new(ds_error *err) {
    ds_saver *s = (ds_saver *)ds__calloc(1, sizeof *s);
    if (!s) { DS__OOM(err); return NULL; }
#ifdef DS__SAVER_THREAD
    if (pthread_mutex_init(&s->mu, NULL) != 0) { DS_FREE(s); ds__fail(err, DS_ERR_NOMEM, "ds_saver_new: no mutex"); return NULL; }
#endif
    return s;
}

static void ds__saver_write(ds_saver *s) {
    int rc = ds__checkpoint_save_src(s->m, &s->src, NULL, s->has_st ? &s->st : NULL, s->dir.data, s->dtype, -1, &s->err);
#ifdef DS__SAVER_THREAD
    pthread_mutex_lock(&s->mu);
#endif
    s->rc = rc, s->seconds = ds_now() - s->t0, s->running = 0;
#ifdef DS__SAVER_THREAD
    pthread_mutex_unlock(&s->mu);
#endif
}
#ifdef DS__SAVER_THREAD
static void *ds__saver_main(void *arg) {
    ds__saver_write((ds_saver *)arg);
    return NULL;
}
#endif

DSDEF int ds_saver_busy(ds_saver *s) {
    int r;
    if (!s) return 0;
#ifdef DS__SAVER_THREAD
    pthread_mutex_lock(&s->mu);
#endif
    r = s->running;
#ifdef DS__SAVER_THREAD
    pthread_mutex_unlock(&s->mu);
#endif
    return r;
}

DSDEF int ds_saver_wait(ds_saver *s, double *seconds, ds_error *err) {
    if (seconds) *seconds = 0;
    if (!s) return ds__fail(err, DS_ERR_INVALID, "ds_saver_wait: NULL saver");
#ifdef DS__SAVER_THREAD
    if (s->joinable) { pthread_join(s->th, NULL); s->joinable = 0; }
#endif
    if (!s->pending) return DS_OK;
    s->pending = 0;
    if (seconds) *seconds = s->seconds;
    if (s->rc) return ds__fail(err, s->rc, "%s", s->err.msg);
    return DS_OK;
}

DSDEF void ds_saver_free(ds_saver *s) {
    if (!s) return;
    ds_saver_wait(s, NULL, NULL);
#ifdef DS__SAVER_THREAD
    pthread_mutex_destroy(&s->mu);
#endif
    DS_FREE(s->p), DS_FREE(s->m1), DS_FREE(s->m2);
    ds_buf_free(&s->tok);
    ds_buf_free(&s->dir);
    DS_FREE(s);
}

static int ds__saver_reserve(ds_saver *s, size_t n, ds_error *err) {
    if (s->cap >= n) return DS_OK;
    DS_FREE(s->p), DS_FREE(s->m1), DS_FREE(s->m2);
    s->cap = 0;
    s->p = (ds_float *)DS_MALLOC(n * sizeof(ds_float) + 1);
    s->m1 = (ds_float *)DS_MALLOC(n * sizeof(ds_float) + 1);
    s->m2 = (ds_float *)DS_MALLOC(n * sizeof(ds_float) + 1);
    if (!s->p || !s->m1 || !s->m2) {
        DS_FREE(s->p), DS_FREE(s->m1), DS_FREE(s->m2);
        s->p = s->m1 = s->m2 = NULL;
        return DS__OOM(err);
    }
    s->cap = n;
    return DS_OK;
}

/* the snapshot (the moments already in s->m1/m2 when gathered), then the write: in the
   background, or here without threads */
static int ds__saver_go(ds_saver *s, const ds_model *m, const ds_tokenizer *tok, const ds_train_state *st, const char *dir, int dtype,
                        int gathered, ds_error *err) {
    int rc;
    if ((rc = ds__saver_reserve(s, m->n_params, err))) return rc;
    if ((rc = ds_model_get(m, DS_PARAMS, 0, m->n_params, s->p, err))) return rc;
    if (st && !gathered && ((rc = ds_model_get(m, DS_ADAM_M, 0, m->n_params, s->m1, err)) || (rc = ds_model_get(m, DS_ADAM_V, 0, m->n_params, s->m2, err))))
        return rc;
    s->tok.len = 0, s->dir.len = 0;
    if (tok && (rc = ds_tokenizer_to_json(tok, &s->tok, err))) return rc;
    ds_buf_puts(&s->dir, dir);
    if (s->dir.oom) return DS__OOM(err);
    s->has_st = st != NULL, s->has_tok = tok != NULL, s->dtype = dtype, s->m = m;
    if (st) s->st = *st;
    s->src.p = s->p, s->src.m1 = st ? s->m1 : NULL, s->src.m2 = st ? s->m2 : NULL, s->src.adam_step = m->steps;
    s->src.tok_json = tok ? &s->tok : NULL, s->src.bos = tok ? tok->bos : -1, s->src.eos = tok ? tok->eos : -1;
    s->t0 = ds_now(), s->running = 1, s->pending = 1, s->rc = DS_OK;
#ifdef DS__SAVER_THREAD
    if (pthread_create(&s->th, NULL, ds__saver_main, s) == 0) {
        s->joinable = 1;
        return DS_OK;
    }
#endif
    ds__saver_write(s); /* no thread: write now, and return the result here */
    s->pending = 0;
    return s->rc ? ds__fail(err, s->rc, "%s", s->err.msg) : DS_OK;
}

DSDEF int ds_saver_start(ds_saver *s, const ds_model *m, const ds_tokenizer *tok, const ds_train_state *st, const char *dir, int dtype,
                         ds_error *err) {
    int rc;
    if (!s || !m || !dir || (dtype != DS_DTYPE_F32 && dtype != DS_DTYPE_BF16)) return ds__fail(err, DS_ERR_INVALID, "ds_saver_start: bad argument");
    if (m->inference || m->bf16) return ds__fail(err, DS_ERR_INVALID, "ds_saver_start: an inference model is saved with ds_checkpoint_save");
    /* the previous save first: its failure, not yet reported, is reported now (nothing new starts;
       in a group every rank reports rank 0's, inside the collective) */
    if (m->dp && m->dp->world > 1) return ds__dp_save(m->dp, s, tok, st, dir, dtype, err);
    if ((rc = ds_saver_wait(s, NULL, err))) return rc;
    return ds__saver_go(s, m, tok, st, dir, dtype, 0, err);
}

/* rank 0's status and message, on every rank (collective): *rc becomes rank 0's, and a failure is
   written to err ("rank 0: ..." elsewhere). Returns DS_ERR_IO when the broadcast itself fails. */
static int ds__dp_share_result(ds_dp *d, int *rc, const char *msg, ds_error *err) {
    char res[8 + DS__DP_MSG];
    int32_t r32 = (int32_t)*rc;
    memset(res, 0, sizeof res);
    if (d->rank == 0) {
        memcpy(res, &r32, 4);
        snprintf(res + 8, DS__DP_MSG, "%s", msg);
    }
#ifdef DS_MPI
    {
        double t0 = ds_now();
        DS__MPI(d, MPI_Bcast(res, (int)sizeof res, MPI_BYTE, 0, d->comm), "bcast (save result)");
        d->seconds += ds_now() - t0;
    }
#endif
    memcpy(&r32, res, 4);
    res[sizeof res - 1] = 0;
    *rc = (int)r32;
    if (r32) ds__fail(err, r32, d->rank == 0 ? "%s" : "rank 0: %s", res + 8);
    return DS_OK;
}

/* A group's save (world > 1, collective): the moments gathered to rank 0, rank 0 writes (or starts
   its saver), every rank returns rank 0's result. */
static int ds__dp_save(struct ds_dp *d, struct ds_saver *sv, const ds_tokenizer *tok, const ds_train_state *st, const char *dir, int dtype,
                       ds_error *err) {
    ds_model *m = d->m;
    ds_float *dm = NULL, *dv = NULL;
    ds_error e;
    int rc = DS_OK, r, k = 0;
    ds__dp_msg *msg = d->xfer;
    if (!m) return ds__fail(err, DS_ERR_INVALID, "ds_checkpoint_save: the group's model was freed");
    if (d->broken) return ds__fail(err, DS_ERR_IO, "ds_checkpoint_save: an earlier MPI call of this group failed");
    e.code = 0, e.msg[0] = 0;
    if (sv && d->rank == 0 && (rc = ds_saver_wait(sv, NULL, &e))) { /* the previous background save failed */
        char msg[sizeof e.msg];
        memcpy(msg, e.msg, sizeof msg);
        ds__fail(&e, rc, "the previous background save failed: %s", msg);
    }
    /* where rank 0 gathers: the saver's snapshot, or the group's buffer */
    if (!rc && d->rank == 0 && st) {
        if (sv) {
            if (!(rc = ds__saver_reserve(sv, d->n, &e))) dm = sv->m1, dv = sv->m2;
        } else {
            if (!d->snap && !(d->snap = (ds_float *)DS_MALLOC(2 * d->n * sizeof(ds_float) + 1))) rc = DS__OOM(&e);
            dm = d->snap, dv = d->snap ? d->snap + d->n : NULL;
        }
    }
    /* everyone learns whether rank 0 can receive (so that no rank sends into the void) */
    if (ds__dp_share_result(d, &rc, e.msg, err)) return DS_ERR_IO;
    if (rc) return rc;
    if (st) {
        if (d->rank == 0) {
            memcpy(dm, m->m, ds__dp_len(d, 0) * sizeof(ds_float));
            memcpy(dv, m->v, ds__dp_len(d, 0) * sizeof(ds_float));
            for (r = 1; r < d->world; r++) {
                msg[k].buf = dm + d->lo[r], msg[k].n = ds__dp_len(d, r), msg[k].peer = r, msg[k].send = 0, msg[k].tag = 1, k++;
                msg[k].buf = dv + d->lo[r], msg[k].n = ds__dp_len(d, r), msg[k].peer = r, msg[k].send = 0, msg[k].tag = 2, k++;
            }
        } else {
            msg[k].buf = m->m, msg[k].n = ds__dp_len(d, d->rank), msg[k].peer = 0, msg[k].send = 1, msg[k].tag = 1, k++;
            msg[k].buf = m->v, msg[k].n = ds__dp_len(d, d->rank), msg[k].peer = 0, msg[k].send = 1, msg[k].tag = 2, k++;
        }
        if ((rc = ds__dp_xfer(d, msg, k, "gather (AdamW moments)", err))) return rc;
    }
    if (d->rank == 0) {
        if (sv) rc = ds__saver_go(sv, m, tok, st, dir, dtype, 1, &e);
        else {
            ds__ckpt_src src;
            ds_buf tj = {0, 0, 0, 0};
            memset(&src, 0, sizeof src);
            src.m1 = st ? dm : NULL, src.m2 = st ? dv : NULL, src.adam_step = m->steps;
            src.bos = tok ? tok->bos : -1, src.eos = tok ? tok->eos : -1;
            if (tok && (rc = ds_tokenizer_to_json(tok, &tj, &e))) goto told;
            src.tok_json = tok ? &tj : NULL;
            rc = ds__checkpoint_save_src(m, &src, NULL, st, dir, dtype, -1, &e);
        told:
            ds_buf_free(&tj);
        }
    }
    /* rank 0's result, everywhere */
    if (ds__dp_share_result(d, &rc, e.msg, err)) return DS_ERR_IO;
    return rc;
}

/* ============================================================================================
   §2.3 / §3 Token data and bits-per-byte
   ============================================================================================ */

static void ds__put_u32(unsigned char *p, uint32_t v) { int i; for (i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void ds__put_u64(unsigned char *p, uint64_t v) { int i; for (i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t ds__get_u32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t ds__get_u64(const unsigned char *p) { return (uint64_t)ds__get_u32(p) | (uint64_t)ds__get_u32(p + 4) << 32; }

DSDEF void ds_tokens_free(ds_tokens *t) {
    if (!t) return;
    DS_FREE(t->ids);
    memset(t, 0, sizeof *t);
}

DSDEF int ds_tokens_from_text(ds_tokenizer *tok, const char *text, size_t len, ds_tokens *t, ds_error *err) {
    size_t n;
    int rc;
    if (!tok || !t || (!text && len)) return ds__fail(err, DS_ERR_INVALID, "ds_tokens_from_text: NULL argument");
    memset(t, 0, sizeof *t);
    t->ids = (int32_t *)DS_MALLOC((len + 2) * sizeof(int32_t));
    if (!t->ids) return DS__OOM(err);
    if ((rc = ds_tokenizer_encode(tok, text, len, 0, t->ids, len + 2, &n, err))) { ds_tokens_free(t); return rc; }
    t->n = n;
    t->n_bytes = len;
    t->vocab = ds_tokenizer_vocab_size(tok);
    return DS_OK;
}

#define DS__TOK_HEADER 32
DSDEF int ds_tokens_save(const ds_tokens *t, const char *path, ds_error *err) {
    unsigned char *buf;
    size_t i, size;
    int rc;
    if (!t || !path) return ds__fail(err, DS_ERR_INVALID, "ds_tokens_save: NULL argument");
    size = DS__TOK_HEADER + 4 * t->n;
    if (!(buf = (unsigned char *)DS_MALLOC(size))) return DS__OOM(err);
    memcpy(buf, "DSTOKENS", 8);
    ds__put_u32(buf + 8, 1);
    ds__put_u32(buf + 12, (uint32_t)t->vocab);
    ds__put_u64(buf + 16, (uint64_t)t->n);
    ds__put_u64(buf + 24, t->n_bytes);
    for (i = 0; i < t->n; i++) ds__put_u32(buf + DS__TOK_HEADER + 4 * i, (uint32_t)t->ids[i]);
    rc = ds_write_file_atomic(path, buf, size, err);
    DS_FREE(buf);
    return rc;
}

DSDEF int ds_tokens_load(const char *path, ds_tokens *t, ds_error *err) {
    size_t len, i;
    char *f;
    const unsigned char *p;
    uint64_t n;
    if (!t) return ds__fail(err, DS_ERR_INVALID, "ds_tokens_load: NULL argument");
    memset(t, 0, sizeof *t);
    if (!(f = ds_read_file(path, 0, &len, err))) return err ? err->code : DS_ERR_IO;
    p = (const unsigned char *)f;
    if (len < DS__TOK_HEADER || memcmp(p, "DSTOKENS", 8) != 0) { DS_FREE(f); return ds__fail(err, DS_ERR_FORMAT, "%s: not a token file (no DSTOKENS header)", path); }
    if (ds__get_u32(p + 8) != 1) {
        unsigned version = ds__get_u32(p + 8);
        DS_FREE(f);
        return ds__fail(err, DS_ERR_UNSUPPORTED, "%s: token file version %u (1 expected)", path, version);
    }
    n = ds__get_u64(p + 16);
    if (n > (len - DS__TOK_HEADER) / 4 || DS__TOK_HEADER + 4 * n != len) {
        DS_FREE(f);
        return ds__fail(err, DS_ERR_FORMAT, "%s: the header says %llu tokens, the file holds %zu bytes of ids", path, (unsigned long long)n, len - DS__TOK_HEADER);
    }
    t->vocab = (int32_t)ds__get_u32(p + 12);
    t->n_bytes = ds__get_u64(p + 24);
    t->n = (size_t)n;
    if (t->vocab <= 0) { DS_FREE(f); return ds__fail(err, DS_ERR_FORMAT, "%s: vocabulary size %d", path, (int)t->vocab); }
    t->ids = (int32_t *)DS_MALLOC((t->n + 1) * sizeof(int32_t));
    if (!t->ids) { DS_FREE(f); return DS__OOM(err); }
    for (i = 0; i < t->n; i++) {
        uint32_t v = ds__get_u32(p + DS__TOK_HEADER + 4 * i);
        if (v >= (uint32_t)t->vocab) {
            int vocab = (int)t->vocab;
            DS_FREE(f);
            ds_tokens_free(t);
            return ds__fail(err, DS_ERR_FORMAT, "%s: token %zu is %u, outside the vocabulary of %d", path, i, v, vocab);
        }
        t->ids[i] = (int32_t)v;
    }
    DS_FREE(f);
    return DS_OK;
}

DSDEF int ds_tokens_batch(const ds_tokens *t, uint64_t *rng, int B, int T, int32_t *inputs, int32_t *targets, ds_error *err) {
    int b;
    if (!t || !rng || !inputs || !targets || B < 1 || T < 1) return ds__fail(err, DS_ERR_INVALID, "ds_tokens_batch: bad argument");
    if (t->n < (size_t)T + 1) return ds__fail(err, DS_ERR_INVALID, "ds_tokens_batch: %zu tokens cannot fill a window of %d", t->n, T + 1);
    for (b = 0; b < B; b++) {
        size_t start = (size_t)(ds__splitmix(rng) % (uint64_t)(t->n - (size_t)T)); /* a window [start, start + T] */
        memcpy(inputs + (size_t)b * T, t->ids + start, (size_t)T * sizeof(int32_t));
        memcpy(targets + (size_t)b * T, t->ids + start + 1, (size_t)T * sizeof(int32_t));
    }
    return DS_OK;
}

DSDEF int ds_model_eval_bpb(ds_model *m, const ds_tokenizer *tok, const ds_tokens *t, int B, int T, ds_pool *pool, double *loss, double *bpb,
                            ds_error *err) {
    size_t pos = 0, k, n_pred = 0;
    double nats = 0, bytes = 0;
    int32_t *in, *tg;
    float *w;
    ds_float *lt;
    ds__hbuf hb;
    int rc = DS_OK;
    if (!m || !tok || !t || B < 1 || T < 1 || B > m->B || T > m->T) return ds__fail(err, DS_ERR_INVALID, "eval: bad argument (B %d, T %d)", B, T);
    if (t->n < 2) return ds__fail(err, DS_ERR_INVALID, "eval: fewer than 2 tokens");
    if (t->vocab > m->c.vocab) return ds__fail(err, DS_ERR_INVALID, "eval: token vocabulary %d exceeds the model's %d", (int)t->vocab, m->c.vocab);
    hb = ds__host_scratch(m); /* the model's host arrays for B x T */
    in = hb.in, tg = hb.tg, w = hb.w, lt = hb.losses;
    while (pos + 1 < t->n && !rc) {
        int rows = 0;
        /* up to B consecutive windows of T predictions; a short last window is padded with
           weight-0 positions */
        for (; rows < B && pos + 1 < t->n; rows++) {
            size_t avail = t->n - 1 - pos, take = avail < (size_t)T ? avail : (size_t)T, o = (size_t)rows * T;
            for (k = 0; k < (size_t)T; k++) {
                in[o + k] = k < take ? t->ids[pos + k] : 0;
                tg[o + k] = k < take ? t->ids[pos + k + 1] : 0;
                w[o + k] = k < take ? 1.0f : 0.0f;
            }
            pos += take;
        }
        if ((rc = ds_model_forward(m, in, tg, w, rows, T, pool, NULL, err)) || (rc = ds_model_copy_token_losses(m, lt, err))) break;
        for (k = 0; k < (size_t)rows * (size_t)T; k++) {
            size_t nb = 0;
            if (w[k] == 0) continue;
            nats += (double)lt[k];
            ds_tokenizer_token_bytes(tok, tg[k], &nb);
            bytes += (double)nb;
            n_pred++;
        }
    }
    if (rc) return rc;
    if (loss) *loss = nats / (double)n_pred;
    if (bpb) *bpb = bytes > 0 ? nats / log(2.0) / bytes : 0;
    return DS_OK;
}


/* ============================================================================================
   Generation
   The block of ds_model_forward for one position (N = 1), with the keys and values of the
   earlier positions read from the cache instead of recomputed (llama2.c's forward(token, pos)).
   ============================================================================================ */

/* On a generation's first use: RoPE for every position, the scores' scratch, the two caches, then
   one position's activations */
static int ds__decode_init(ds_model *m, ds_error *err) {
    const ds_config *c = &m->c;
    size_t D = (size_t)c->d_model, F = (size_t)c->d_ff, H = (size_t)c->n_heads, KV = (size_t)c->n_kv_heads, hd = m->hd, Q = m->Q, S = (size_t)c->max_seq;
    size_t cache = 2 * (size_t)c->n_layers * S * KV * hd;
    size_t P = m->bf16 ? DS__PREFILL_ROWS : 1; /* a BF16 model's prompt goes through these buffers, P positions at a time */
    int rc;
    if (m->rope_len < c->max_seq && (rc = ds__rope_tables(m, c->max_seq, err))) return rc;
    if (H * S > m->ex.work_n) {
        ds_float *w = (ds_float *)ds__exec_alloc(&m->ex, H * S, sizeof(ds_float));
        if (!w) return DS__OOM(err);
        ds__exec_free(&m->ex, m->ex.work);
        m->ex.work = w, m->ex.work_n = H * S;
    }
    if (!(m->kv = (ds_float *)ds__exec_alloc(&m->ex, cache + P * (2 * D + 1 + Q + H * hd + 3 * F) + D, sizeof(ds_float)))) return DS__OOM(err);
    m->dec_x = m->kv + cache, m->dec_ln = m->dec_x + P * D, m->dec_rstd = m->dec_ln + P * D, m->dec_qkv = m->dec_rstd + P;
    m->dec_y = m->dec_qkv + P * Q, m->dec_gu = m->dec_y + P * H * hd, m->dec_h = m->dec_gu + P * 2 * F, m->dec_nw = m->dec_h + P * F;
    return DS_OK;
}

/* The prompt through the batched forward (prefill): n <= T tokens at positions pos .. pos + n - 1
   of one sequence, each layer's products over all n at once (matrix products, not n matrix-vector
   products), their keys and values into the cache, each attending causally through it; then the
   logits of the last position only. A float model with T > 1 (the BF16 model decodes a token at a
   time). */
static int ds__prefill(ds_model *m, const int32_t *tok, int n, int pos, ds_pool *pool, const ds_float **logits, ds_error *err) {
    const ds_config *c = &m->c;
    size_t D = (size_t)c->d_model, V = (size_t)c->vocab, L = (size_t)c->n_layers, l;
    int i, rc;
    for (i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= c->vocab) return ds__fail(err, DS_ERR_INVALID, "generate: token %d outside [0, %d)", (int)tok[i], c->vocab);
    if (!m->kv && (rc = ds__decode_init(m, err))) return rc;
    m->ex.pool = pool;
    m->has_targets = 0, m->cur_B = 0, m->cur_T = 0, m->logits_partial = 0; /* the training buffers hold no forward now */
    ds__from_host(&m->ex, m->inputs, tok, (size_t)n * sizeof(int32_t));
    ds__embedding_forward(&m->ex, m->res, m->inputs, m->params + DS__T_EMBED(m)->offset, (size_t)n, D);
    for (l = 0; l < L; l++) {
        ds__block a = ds__block_train(m, l);
        ds__block_forward(m, (int)l, &a, 1, (size_t)n, pos);
    }
    ds__rmsnorm_forward(&m->ex, m->lnf, m->rstdf, m->res + L * m->N * D + (size_t)(n - 1) * D, m->params + DS__T_NORM(m)->offset, 1, D, c->norm_eps);
    ds__linear_forward(&m->ex, m->logits, m->lnf, m->params + DS__T_HEAD(m)->offset, 1, D, V, 0);
    ds__to_host(&m->ex, m->h_logits, m->logits, V * sizeof(ds_float));
    if (logits) *logits = m->h_logits;
    return ds__exec_status(&m->ex, err);
}

/* A BF16 model's forward at positions pos .. pos + n - 1, n <= DS__PREFILL_ROWS: ds__block_forward's
   decoding path on the decoding buffers (P rows each), each linear on its own bf16 tensor (q, k, v
   and gate, up need not be adjacent), the norms' weights widened first; then the last position's
   logits. n = 1 is a decoding step (matrix-vector products, ds__linear_decode_bf16); a prompt's
   chunk runs its linears as matrix products (ds__linear_prefill_bf16). Either gives, bit for bit,
   what the float model gives on the same (rounded) weights. */
static void ds__linear_bf16(ds__exec *ex, ds_float *out, size_t ldo, const ds_float *inp, const uint16_t *W, size_t N, size_t C, size_t OC,
                            int accumulate) {
    if (N == 1) ds__linear_decode_bf16(ex, out, inp, W, C, OC, accumulate);
    else ds__linear_prefill_bf16(ex, out, ldo, inp, W, N, C, OC, accumulate);
}
static const uint16_t *ds__B(const ds_model *m, int l, int k) { return m->bw[1 + l * DS__T_PER_LAYER + k]; }
static int ds__prefill_bf16(ds_model *m, const int32_t *tok, int n, int pos, ds_pool *pool, const ds_float **logits, ds_error *err) {
    ds__exec *ex = &m->ex;
    const ds_config *c = &m->c;
    size_t D = (size_t)c->d_model, F = (size_t)c->d_ff, H = (size_t)c->n_heads, KV = (size_t)c->n_kv_heads, hd = m->hd, V = (size_t)c->vocab;
    size_t Q = m->Q, N = (size_t)n, t;
    int l, i, rc;
    for (i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= c->vocab) return ds__fail(err, DS_ERR_INVALID, "generate: token %d outside [0, %d)", (int)tok[i], c->vocab);
    if (!m->kv && (rc = ds__decode_init(m, err))) return rc;
    ex->pool = pool;
    m->has_targets = 0, m->logits_partial = 0;
    for (t = 0; t < N; t++) ds__bf16_widen(ex, m->dec_x + t * D, m->bw[0] + (size_t)tok[t] * D, D);
    for (l = 0; l < c->n_layers; l++) {
        ds_float *kc = m->kv + (size_t)l * 2 * (size_t)c->max_seq * KV * hd, *vc = kc + (size_t)c->max_seq * KV * hd;
        ds__bf16_widen(ex, m->dec_nw, ds__B(m, l, DS__T_ATTN_NORM), D);
        ds__rmsnorm_forward(ex, m->dec_ln, m->dec_rstd, m->dec_x, m->dec_nw, N, D, c->norm_eps);
        ds__linear_bf16(ex, m->dec_qkv, Q, m->dec_ln, ds__B(m, l, DS__T_Q), N, D, H * hd, 0);
        ds__linear_bf16(ex, m->dec_qkv + H * hd, Q, m->dec_ln, ds__B(m, l, DS__T_K), N, D, KV * hd, 0);
        ds__linear_bf16(ex, m->dec_qkv + (H + KV) * hd, Q, m->dec_ln, ds__B(m, l, DS__T_V), N, D, KV * hd, 0);
        ds__rope_forward(ex, m->dec_qkv, m->rope_cos, m->rope_sin, N, N, (size_t)pos, H, KV, hd);
        for (t = 0; t < N; t++) ds__kv_store(ex, kc, vc, m->dec_qkv + t * Q, (size_t)pos + t, H, KV, hd);
        for (t = 0; t < N; t++) ds__attention_decode(ex, m->dec_y + t * H * hd, m->dec_qkv + t * Q, kc, vc, (size_t)pos + t, H, KV, hd);
        ds__linear_bf16(ex, m->dec_x, D, m->dec_y, ds__B(m, l, DS__T_O), N, H * hd, D, 1); /* x += o(y) */
        ds__bf16_widen(ex, m->dec_nw, ds__B(m, l, DS__T_FFN_NORM), D);
        ds__rmsnorm_forward(ex, m->dec_ln, m->dec_rstd, m->dec_x, m->dec_nw, N, D, c->norm_eps);
        ds__linear_bf16(ex, m->dec_gu, 2 * F, m->dec_ln, ds__B(m, l, DS__T_GATE), N, D, F, 0);
        ds__linear_bf16(ex, m->dec_gu + F, 2 * F, m->dec_ln, ds__B(m, l, DS__T_UP), N, D, F, 0);
        ds__swiglu_forward(ex, m->dec_h, m->dec_gu, N, F);
        ds__linear_bf16(ex, m->dec_x, D, m->dec_h, ds__B(m, l, DS__T_DOWN), N, F, D, 1); /* x += down(h) */
    }
    ds__bf16_widen(ex, m->dec_nw, m->bw[m->n_tensors - 2], D);
    ds__rmsnorm_forward(ex, m->dec_ln, m->dec_rstd, m->dec_x + (N - 1) * D, m->dec_nw, 1, D, c->norm_eps);
    ds__linear_decode_bf16(ex, m->logits, m->dec_ln, m->bw[m->n_tensors - 1], D, V, 0); /* the last position's logits only */
    ds__to_host(ex, m->h_logits, m->logits, V * sizeof(ds_float));
    if (logits) *logits = m->h_logits;
    return ds__exec_status(ex, err);
}

DSDEF int ds_model_forward_token(ds_model *m, int32_t token, int pos, ds_pool *pool, const ds_float **logits, ds_error *err) {
    const ds_config *c;
    size_t D, S, V;
    int l;
    if (!m) return ds__fail(err, DS_ERR_INVALID, "generate: NULL model");
    c = &m->c, D = (size_t)c->d_model, S = (size_t)c->max_seq, V = (size_t)c->vocab;
    if (token < 0 || token >= c->vocab) return ds__fail(err, DS_ERR_INVALID, "generate: token %d outside [0, %d)", (int)token, c->vocab);
    if (pos < 0 || (size_t)pos >= S) return ds__fail(err, DS_ERR_INVALID, "generate: position %d outside [0, %d)", pos, c->max_seq);
    if (!m->kv && (l = ds__decode_init(m, err))) return l;
    if (m->bf16) return ds__prefill_bf16(m, &token, 1, pos, pool, logits, err);
    m->ex.pool = pool;
    m->has_targets = 0, m->logits_partial = 0; /* the logits buffer is decoding's now */
    ds__from_host(&m->ex, m->inputs, &token, sizeof token);
    ds__embedding_forward(&m->ex, m->dec_x, m->inputs, m->params + DS__T_EMBED(m)->offset, 1, D);
    for (l = 0; l < c->n_layers; l++) {
        ds__block a;
        a.x = a.mid = a.out = m->dec_x, a.ln1 = a.ln2 = m->dec_ln, a.rstd1 = a.rstd2 = m->dec_rstd, a.qkv = m->dec_qkv, a.att = NULL;
        a.y = m->dec_y, a.gu = m->dec_gu, a.h = m->dec_h;
        ds__block_forward(m, l, &a, 1, 1, pos);
    }
    ds__rmsnorm_forward(&m->ex, m->dec_ln, m->dec_rstd, m->dec_x, m->params + DS__T_NORM(m)->offset, 1, D, c->norm_eps);
    ds__linear_forward(&m->ex, m->logits, m->dec_ln, m->params + DS__T_HEAD(m)->offset, 1, D, V, 0);
    ds__to_host(&m->ex, m->h_logits, m->logits, V * sizeof(ds_float));
    if (logits) *logits = m->h_logits;
    return ds__exec_status(&m->ex, err);
}

typedef struct { double p; int32_t id; } ds__cand;
static int ds__cand_cmp(const void *a, const void *b) { /* descending probability, then ascending id */
    const ds__cand *x = (const ds__cand *)a, *y = (const ds__cand *)b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

DSDEF ds_sampler ds_sampler_make(double temperature, double top_p, uint64_t seed) {
    ds_sampler s;
    memset(&s, 0, sizeof s);
    s.temperature = temperature, s.top_p = top_p, s.rng = seed;
    return s;
}

DSDEF void ds_sampler_free(ds_sampler *s) {
    if (!s) return;
    DS_FREE(s->cand_);
    s->cand_ = NULL, s->cap_ = 0;
}

DSDEF int ds_sampler_sample(ds_sampler *s, const ds_float *logits, int V, int32_t *id, ds_error *err) {
    int32_t i, best = 0;
    double mx, sum = 0, u, acc = 0;
    ds__cand *c;
    size_t n, keep;
    if (!s || !logits || V < 1 || !id) return ds__fail(err, DS_ERR_INVALID, "ds_sampler_sample: bad argument");
    for (i = 0; i < V; i++) {
        if (!(logits[i] == logits[i])) return ds__fail(err, DS_ERR_NUMERIC, "sample: logit %d is NaN", (int)i);
        if (logits[i] > logits[best]) best = i;
    }
    if (isinf(logits[best])) return ds__fail(err, DS_ERR_NUMERIC, "sample: the largest logit is %s", logits[best] > 0 ? "+inf" : "-inf");
    *id = best;
    if (!(s->temperature > 0)) return DS_OK;
    if (s->cap_ < V) { /* once per vocabulary size, never per token */
        if (!(c = (ds__cand *)DS_REALLOC(s->cand_, (size_t)V * sizeof(ds__cand)))) return DS__OOM(err);
        s->cand_ = c, s->cap_ = V;
    }
    c = (ds__cand *)s->cand_;
    mx = (double)logits[best];
    for (i = 0; i < V; i++) { c[i].p = exp(((double)logits[i] - mx) / s->temperature); c[i].id = i; sum += c[i].p; }
    n = (size_t)V;
    keep = n;
    if (s->top_p > 0 && s->top_p < 1) { /* nucleus: the most likely tokens whose mass reaches top_p */
        qsort(c, n, sizeof *c, ds__cand_cmp);
        for (keep = 0, acc = 0; keep < n && acc < s->top_p * sum; keep++) acc += c[keep].p;
        sum = acc;
    }
    u = ds_rng_uniform(&s->rng) * sum;
    for (i = 0, acc = 0; (size_t)i < keep; i++) {
        acc += c[i].p;
        if (u < acc) break;
    }
    *id = c[(size_t)i < keep ? (size_t)i : keep - 1].id;
    return DS_OK;
}

DSDEF int ds_generate_next(ds_model *m, int pos, const int32_t *feed, int n_feed, int max_new, ds_sampler *s, int32_t eos,
                           void (*on_token)(void *ctx, int32_t id), void *ctx, int32_t *out, int *n_out, ds_pool *pool, ds_error *err) {
    const ds_float *logits = NULL;
    int i, rc, n;
    if (n_out) *n_out = 0;
    if (!m || !feed || n_feed < 1 || pos < 0 || max_new < 0 || (!out && max_new) || !n_out || !s)
        return ds__fail(err, DS_ERR_INVALID, "ds_generate: bad argument");
    if ((long long)pos + n_feed + max_new > (long long)m->c.max_seq)
        return ds__fail(err, DS_ERR_INVALID, "generate: %d cached + %d fed + %d new tokens exceed max_seq %d", pos, n_feed, max_new, m->c.max_seq);
    if (m->bf16 && n_feed > 1) { /* the prompt in chunks of DS__PREFILL_ROWS through the batched forward */
        for (i = 0; i < n_feed; i += DS__PREFILL_ROWS) {
            int n = n_feed - i < DS__PREFILL_ROWS ? n_feed - i : DS__PREFILL_ROWS;
            if ((rc = ds__prefill_bf16(m, feed + i, n, pos + i, pool, &logits, err))) return rc;
        }
    } else if (m->T > 1 && n_feed > 1) { /* the prompt in chunks of T through the batched forward */
        for (i = 0; i < n_feed; i += m->T) {
            int n = n_feed - i < m->T ? n_feed - i : m->T;
            if ((rc = ds__prefill(m, feed + i, n, pos + i, pool, &logits, err))) return rc;
        }
    } else {
        for (i = 0; i < n_feed; i++)
            if ((rc = ds_model_forward_token(m, feed[i], pos + i, pool, &logits, err))) return rc;
    }
    for (n = 0; n < max_new; n++) {
        int32_t id;
        if ((rc = ds_sampler_sample(s, logits, m->c.vocab, &id, err))) return rc;
        out[n] = id;
        *n_out = n + 1;
        if (on_token) on_token(ctx, id);
        if (id == eos || n + 1 == max_new) break;
        if ((rc = ds_model_forward_token(m, id, pos + n_feed + n, pool, &logits, err))) return rc;
    }
    return DS_OK;
}

DSDEF int ds_generate(ds_model *m, const int32_t *prompt, int n_prompt, int max_new, double temperature, double top_p, uint64_t seed,
                      int32_t eos, void (*on_token)(void *ctx, int32_t id), void *ctx, int32_t *out, int *n_out, ds_pool *pool,
                      ds_error *err) {
    ds_sampler s = ds_sampler_make(temperature, top_p, seed);
    int rc = ds_generate_next(m, 0, prompt, n_prompt, max_new, &s, eos, on_token, ctx, out, n_out, pool, err);
    ds_sampler_free(&s);
    return rc;
}

/* ============================================================================================
   §3 Scaling laws
   ============================================================================================ */

DSDEF double ds_scale_n1(int n_layer, int d_model) { return 12.0 * n_layer * (double)d_model * d_model; }
DSDEF double ds_scale_n2(int n_layer, int d_model, int n_vocab) { return ds_scale_n1(n_layer, d_model) + (double)n_vocab * d_model; }
DSDEF double ds_scale_m(int n_layer, int d_model, int l_seq) {
    return 72.0 * n_layer * (double)d_model * d_model + 12.0 * n_layer * (double)d_model * l_seq;
}
DSDEF double ds_model_flops_per_token(const ds_config *c, int T) {
    double D = c->d_model, hd = (double)c->d_model / c->n_heads;
    double per_layer = D * hd * (2.0 * c->n_heads + 2.0 * c->n_kv_heads) + 3.0 * D * c->d_ff;
    return 6.0 * (per_layer * c->n_layers + (double)c->vocab * D) + 12.0 * c->n_layers * (double)T * D;
}

DSDEF double ds_law_eta_opt(double C) { return 0.3118 * pow(C, -0.1250); }
DSDEF double ds_law_batch_opt(double C) { return 0.2920 * pow(C, 0.3271); }
DSDEF double ds_law_m_opt(double C) { return 0.1715 * pow(C, 0.5243); }
DSDEF double ds_law_d_opt(double C) { return 5.8316 * pow(C, 0.4757); }

DSDEF int ds_fit_power_law(const double *x, const double *y, int n, ds_power_law *out, ds_error *err) {
    double mx = 0, my = 0, sxx = 0, sxy = 0, syy = 0, sse = 0, a, b;
    int i;
    if (!x || !y || !out) return ds__fail(err, DS_ERR_INVALID, "power-law fit: NULL argument");
    if (n < 2) return ds__fail(err, DS_ERR_INVALID, "power-law fit: %d point%s; at least 2 are needed", n, n == 1 ? "" : "s");
    for (i = 0; i < n; i++) {
        if (!(x[i] > 0) || !(y[i] > 0) || isinf(x[i]) || isinf(y[i]))
            return ds__fail(err, DS_ERR_INVALID, "power-law fit: point %d is (%g, %g); x and y must be positive and finite", i, x[i], y[i]);
        mx += log(x[i]);
        my += log(y[i]);
    }
    mx /= n, my /= n;
    for (i = 0; i < n; i++) {
        double dx = log(x[i]) - mx, dy = log(y[i]) - my;
        sxx += dx * dx, sxy += dx * dy, syy += dy * dy;
    }
    if (!(sxx > 1e-300)) return ds__fail(err, DS_ERR_INVALID, "power-law fit: every x is the same (%g): no slope to fit", x[0]);
    b = sxy / sxx;
    a = my - b * mx;
    for (i = 0; i < n; i++) {
        double r = log(y[i]) - (a + b * log(x[i]));
        sse += r * r;
    }
    out->k = exp(a), out->alpha = b, out->n = n;
    out->r2 = syy > 0 ? 1 - sse / syy : 1;
    out->se_alpha = out->se_log_k = 0;
    if (n > 2) { /* ordinary least squares: s^2 = SSE / (n - 2) */
        double s2 = sse / (n - 2);
        out->se_alpha = sqrt(s2 / sxx);
        out->se_log_k = sqrt(s2 * (1.0 / n + mx * mx / sxx));
    }
    return DS_OK;
}
DSDEF double ds_power_law_eval(const ds_power_law *p, double x) { return p->k * pow(x, p->alpha); }

/* the distinct budgets of n values, in increasing order (relative tolerance 1e-9) */
static int ds__budgets(const double *C, size_t stride, int n, double *out, int cap) {
    int i, k, m = 0;
    for (i = 0; i < n; i++) {
        double c = *(const double *)(const void *)((const char *)(const void *)C + (size_t)i * stride);
        for (k = 0; k < m && fabs(out[k] - c) > 1e-9 * c; k++) {}
        if (k == m) {
            if (m == cap) return -1;
            out[m++] = c;
        }
    }
    for (i = 1; i < m; i++) /* insertion sort */
        for (k = i; k > 0 && out[k - 1] > out[k]; k--) { double t = out[k]; out[k] = out[k - 1]; out[k - 1] = t; }
    return m;
}

DSDEF int ds_fit_hyperparams(const ds_hp_run *runs, int n, double threshold, ds_power_law *eta, ds_power_law *batch, int *n_selected,
                             ds_error *err) {
    double budgets[DS_ISOFLOP_MAX_BUDGETS], *xc, *xl, *xb;
    int nb, i, k, sel = 0, rc;
    if (!runs || n < 1 || !eta || !batch || !(threshold >= 0)) return ds__fail(err, DS_ERR_INVALID, "hyperparameter fit: bad argument");
    for (i = 0; i < n; i++)
        if (!(runs[i].C > 0) || !(runs[i].batch > 0) || !(runs[i].lr > 0) || !(runs[i].loss == runs[i].loss) || isinf(runs[i].loss))
            return ds__fail(err, DS_ERR_INVALID, "hyperparameter fit: run %d (C %g, batch %g, lr %g, loss %g) is not positive and finite", i,
                            runs[i].C, runs[i].batch, runs[i].lr, runs[i].loss);
    nb = ds__budgets(&runs[0].C, sizeof(ds_hp_run), n, budgets, DS_ISOFLOP_MAX_BUDGETS);
    if (nb < 0) return ds__fail(err, DS_ERR_INVALID, "hyperparameter fit: more than %d budgets", DS_ISOFLOP_MAX_BUDGETS);
    if (nb < 2) return ds__fail(err, DS_ERR_INVALID, "hyperparameter fit: one budget only; a scaling law needs two or more");
    xc = (double *)DS_MALLOC(3 * (size_t)n * sizeof(double));
    if (!xc) return DS__OOM(err);
    xl = xc + n, xb = xl + n;
    for (k = 0; k < nb; k++) {
        double best = INFINITY;
        for (i = 0; i < n; i++) if (fabs(runs[i].C - budgets[k]) <= 1e-9 * budgets[k] && runs[i].loss < best) best = runs[i].loss;
        for (i = 0; i < n; i++)
            if (fabs(runs[i].C - budgets[k]) <= 1e-9 * budgets[k] && runs[i].loss <= best * (1 + threshold))
                xc[sel] = runs[i].C, xl[sel] = runs[i].lr, xb[sel] = runs[i].batch, sel++;
    }
    rc = ds_fit_power_law(xc, xl, sel, eta, err);
    if (!rc) rc = ds_fit_power_law(xc, xb, sel, batch, err);
    if (n_selected) *n_selected = sel;
    DS_FREE(xc);
    return rc;
}

DSDEF int ds_fit_isoflop(const ds_isoflop_run *runs, int n, ds_isoflop_fit *out, ds_error *err) {
    int nb, i, k, rc;
    if (!runs || n < 1 || !out) return ds__fail(err, DS_ERR_INVALID, "IsoFLOP fit: bad argument");
    memset(out, 0, sizeof *out);
    for (i = 0; i < n; i++)
        if (!(runs[i].C > 0) || !(runs[i].M > 0) || !(runs[i].loss == runs[i].loss) || isinf(runs[i].loss) || isinf(runs[i].M))
            return ds__fail(err, DS_ERR_INVALID, "IsoFLOP fit: run %d (C %g, M %g, loss %g) is not positive and finite: a diverged run?", i,
                            runs[i].C, runs[i].M, runs[i].loss);
    nb = ds__budgets(&runs[0].C, sizeof(ds_isoflop_run), n, out->C, DS_ISOFLOP_MAX_BUDGETS);
    if (nb < 0) return ds__fail(err, DS_ERR_INVALID, "IsoFLOP fit: more than %d budgets", DS_ISOFLOP_MAX_BUDGETS);
    if (nb < 2) return ds__fail(err, DS_ERR_INVALID, "IsoFLOP fit: one budget only; the scaling of M_opt needs two or more");
    out->n_budgets = nb;
    for (k = 0; k < nb; k++) {
        /* least squares for loss = p0 + p1 u + p2 u^2, u = log M - ubar (centred for conditioning) */
        double S[5] = {0, 0, 0, 0, 0}, R[3] = {0, 0, 0}, ubar = 0, umin = INFINITY, umax = -INFINITY, a[3][4], C = out->C[k], vtx;
        int m = 0, r, c, p;
        for (i = 0; i < n; i++) if (fabs(runs[i].C - C) <= 1e-9 * C) { ubar += log(runs[i].M); m++; }
        if (m < 3) return ds__fail(err, DS_ERR_INVALID, "IsoFLOP fit: %d model%s at budget %.3g; a parabola needs 3 or more", m, m == 1 ? "" : "s", C);
        ubar /= m;
        for (i = 0; i < n; i++) {
            double u, pw = 1;
            if (fabs(runs[i].C - C) > 1e-9 * C) continue;
            u = log(runs[i].M) - ubar;
            if (u < umin) umin = u;
            if (u > umax) umax = u;
            for (p = 0; p < 5; p++) { S[p] += pw; if (p < 3) R[p] += pw * runs[i].loss; pw *= u; }
        }
        for (r = 0; r < 3; r++) { for (c = 0; c < 3; c++) a[r][c] = S[r + c]; a[r][3] = R[r]; }
        for (c = 0; c < 3; c++) { /* Gaussian elimination with partial pivoting */
            int piv = c;
            for (r = c + 1; r < 3; r++) if (fabs(a[r][c]) > fabs(a[piv][c])) piv = r;
            if (fabs(a[piv][c]) < 1e-300) return ds__fail(err, DS_ERR_INVALID, "IsoFLOP fit: the models at budget %.3g have too few distinct sizes", C);
            for (p = 0; p < 4; p++) { double t = a[c][p]; a[c][p] = a[piv][p]; a[piv][p] = t; }
            for (r = 0; r < 3; r++)
                if (r != c) { double f = a[r][c] / a[c][c]; for (p = c; p < 4; p++) a[r][p] -= f * a[c][p]; }
        }
        for (r = 0; r < 3; r++) out->parabola[k][r] = a[r][3] / a[r][r];
        if (!(out->parabola[k][2] > 0))
            return ds__fail(err, DS_ERR_INVALID, "IsoFLOP fit: at budget %.3g the loss has no minimum over log M (the parabola opens downward)", C);
        vtx = -out->parabola[k][1] / (2 * out->parabola[k][2]);
        if (vtx < umin - 1e-9 || vtx > umax + 1e-9)
            return ds__fail(err, DS_ERR_INVALID, "IsoFLOP fit: at budget %.3g the optimum lies outside the models sampled; add %s models", C,
                            vtx < umin ? "smaller" : "larger");
        out->M_opt[k] = exp(vtx + ubar);
        out->D_opt[k] = C / out->M_opt[k];
        out->loss_opt[k] = out->parabola[k][0] + vtx * (out->parabola[k][1] + vtx * out->parabola[k][2]);
        /* report the parabola in log M itself: shift from the centred variable */
        {
            double p0 = out->parabola[k][0], p1 = out->parabola[k][1], p2 = out->parabola[k][2];
            out->parabola[k][0] = p0 - p1 * ubar + p2 * ubar * ubar;
            out->parabola[k][1] = p1 - 2 * p2 * ubar;
        }
    }
    if ((rc = ds_fit_power_law(out->C, out->M_opt, nb, &out->m_law, err)) || (rc = ds_fit_power_law(out->C, out->D_opt, nb, &out->d_law, err)))
        return rc;
    for (k = 0; k < nb; k++)
        if (!(out->loss_opt[k] > 0)) return ds__fail(err, DS_ERR_INVALID, "IsoFLOP fit: the optimal loss at budget %.3g is not positive", out->C[k]);
    return ds_fit_power_law(out->C, out->loss_opt, nb, &out->loss_law, err);
}

/* ============================================================================================
   §4-5 Alignment
   ============================================================================================ */

DSDEF void ds_seq_free(ds_seq *s) {
    DS_FREE(s->ids);
    DS_FREE(s->mask);
    memset(s, 0, sizeof *s);
}

DSDEF int ds_seq_n_trained(const ds_seq *s) {
    int i, k = 0;
    for (i = 0; i < s->n; i++) k += s->mask[i] != 0;
    return k;
}

static int ds__seq_reserve(ds_seq *s, size_t extra, ds_error *err) {
    size_t need = (size_t)s->n + extra, cap;
    int32_t *ids;
    uint8_t *mask;
    if (need <= (size_t)s->cap) return DS_OK;
    if (need > (size_t)INT_MAX / 2) return ds__fail(err, DS_ERR_RANGE, "a sequence of more than %d tokens", INT_MAX / 2);
    cap = need < 64 ? 64 : need * 2;
    if (!(ids = (int32_t *)DS_REALLOC(s->ids, cap * sizeof(int32_t)))) return DS__OOM(err);
    s->ids = ids;
    if (!(mask = (uint8_t *)DS_REALLOC(s->mask, cap))) return DS__OOM(err);
    s->mask = mask, s->cap = (int)cap;
    return DS_OK;
}

static int ds__seq_id(ds_seq *s, int32_t id, int trained, ds_error *err) {
    int rc = ds__seq_reserve(s, 1, err);
    if (rc) return rc;
    s->ids[s->n] = id, s->mask[s->n++] = (uint8_t)trained;
    return DS_OK;
}

DSDEF int ds_seq_push(ds_seq *s, int32_t id, int trained, ds_error *err) {
    if (!s) return ds__fail(err, DS_ERR_INVALID, "ds_seq_push: NULL sequence");
    return ds__seq_id(s, id, trained != 0, err);
}

/* appends the plain-text encoding of a + b (b may be NULL) + c (may be NULL) */
static int ds__seq_text(ds_seq *s, ds_tokenizer *tok, const char *a, const char *b, const char *c, int trained, ds_error *err) {
    ds_buf t = {0, 0, 0, 0};
    size_t got = 0;
    int rc, i;
    ds_buf_puts(&t, a);
    if (b) ds_buf_puts(&t, b);
    if (c) ds_buf_puts(&t, c);
    if (t.oom) { ds_buf_free(&t); return DS__OOM(err); }
    if (!(rc = ds__seq_reserve(s, t.len + 2, err))) rc = ds_tokenizer_encode(tok, t.data ? t.data : "", t.len, 0, s->ids + s->n, t.len + 2, &got, err);
    ds_buf_free(&t);
    if (rc) return rc;
    for (i = 0; i < (int)got; i++) s->mask[s->n + i] = (uint8_t)trained;
    s->n += (int)got;
    return DS_OK;
}

/* the template over msgs, appended to out (BOS only when out is empty); `train` masks the replies in */
static int ds__render(ds_tokenizer *tok, const ds_message *msgs, int n, int gen_prompt, int train, ds_seq *out, ds_error *err) {
    int i, rc = DS_OK;
    int32_t bos = ds_tokenizer_bos(tok), eos = ds_tokenizer_eos(tok);
    if (bos < 0 || eos < 0) return ds__fail(err, DS_ERR_INVALID, "chat template: the tokenizer has no BOS/EOS tokens");
    if (n < 0 || (n > 0 && !msgs)) return ds__fail(err, DS_ERR_INVALID, "chat template: bad message list");
    if (out->n == 0 && (rc = ds__seq_id(out, bos, 0, err))) return rc;
    for (i = 0; i < n && !rc; i++) {
        const char *r = msgs[i].role, *c = msgs[i].content;
        if (!r || !c) return ds__fail(err, DS_ERR_INVALID, "chat template: message %d has no role or no content", i);
        if (!strcmp(r, "system")) {
            if (i != 0) return ds__fail(err, DS_ERR_INVALID, "chat template: the system message must come first (message %d)", i);
            rc = ds__seq_text(out, tok, c, "\n\n", NULL, 0, err);
        } else if (!strcmp(r, "user")) {
            rc = ds__seq_text(out, tok, "User: ", c, "\n\n", 0, err);
        } else if (!strcmp(r, "assistant")) {
            /* "Assistant: {a}": the split falls at a pre-token boundary (":" ends a punctuation
               piece; the space starts the reply's first piece), so encoding the parts separately
               gives the ids of the whole string */
            if (!(rc = ds__seq_text(out, tok, "Assistant:", NULL, NULL, 0, err)) && !(rc = ds__seq_text(out, tok, " ", c, NULL, train, err)))
                rc = ds__seq_id(out, eos, train, err);
        } else {
            return ds__fail(err, DS_ERR_INVALID, "chat template: message %d has role \"%.40s\" (system, user or assistant)", i, r);
        }
    }
    if (!rc && gen_prompt) rc = ds__seq_text(out, tok, "Assistant:", NULL, NULL, 0, err);
    return rc;
}

DSDEF int ds_chat_render(ds_tokenizer *tok, const ds_message *msgs, int n, int add_generation_prompt, ds_seq *out, ds_error *err) {
    return ds__render(tok, msgs, n, add_generation_prompt, 1, out, err);
}

DSDEF void ds_dataset_free(ds_dataset *d) {
    int i;
    for (i = 0; i < d->n; i++) { ds_seq_free(&d->ex[i].seq); ds_seq_free(&d->ex[i].rejected); }
    DS_FREE(d->ex);
    memset(d, 0, sizeof *d);
}

/* a JSON message list -> ds_message[] (pointers into the document); *n_out messages */
static int ds__messages(const ds_json *j, const char *what, ds_message **out, int *n_out, ds_error *err) {
    const ds_json *c;
    int n = 0;
    *out = NULL, *n_out = 0;
    if (j->type != DS_JSON_ARRAY) return ds__fail(err, DS_ERR_FORMAT, "\"%s\" is %s, not a list of messages", what, ds_json_type_name(j->type));
    if (j->len == 0) return ds__fail(err, DS_ERR_FORMAT, "\"%s\" is an empty list", what);
    if (j->len > 100000) return ds__fail(err, DS_ERR_FORMAT, "\"%s\" has too many messages", what);
    if (!(*out = (ds_message *)DS_MALLOC(j->len * sizeof(ds_message)))) return DS__OOM(err);
    for (c = j->child; c; c = c->next, n++) {
        const ds_json *r = c->type == DS_JSON_OBJECT ? ds_json_get(c, "role") : NULL, *t = c->type == DS_JSON_OBJECT ? ds_json_get(c, "content") : NULL;
        if (!r || !t || r->type != DS_JSON_STRING || t->type != DS_JSON_STRING) {
            DS_FREE(*out), *out = NULL;
            return ds__fail(err, DS_ERR_FORMAT, "\"%s\"[%d] is not {\"role\": string, \"content\": string}", what, n);
        }
        if (strlen(r->str) != r->len || strlen(t->str) != t->len) {
            DS_FREE(*out), *out = NULL;
            return ds__fail(err, DS_ERR_FORMAT, "\"%s\"[%d] contains a NUL character", what, n);
        }
        (*out)[n].role = r->str, (*out)[n].content = t->str;
    }
    *n_out = n;
    return DS_OK;
}

static const ds_json *ds__field(const ds_json *row, const char *key, ds_error *err) {
    const ds_json *j = ds_json_get(row, key);
    if (!j) ds__fail(err, DS_ERR_FORMAT, "no \"%s\" field", key);
    else if (j->type != DS_JSON_STRING && j->type != DS_JSON_ARRAY)
        j = NULL, ds__fail(err, DS_ERR_FORMAT, "\"%s\" is %s, not a string or a message list", key, ds_json_type_name(ds_json_get(row, key)->type));
    else if (j->type == DS_JSON_STRING && strlen(j->str) != j->len) j = NULL, ds__fail(err, DS_ERR_FORMAT, "\"%s\" contains a NUL character", key);
    return j;
}

/* prompt (string or messages) + one response; the response and its EOS trained */
static int ds__pref_side(ds_tokenizer *tok, const ds_json *prompt, const ds_json *resp, const char *what, ds_seq *out, ds_error *err) {
    int rc;
    if (prompt->type != resp->type)
        return ds__fail(err, DS_ERR_FORMAT, "\"prompt\" and \"%s\" mix a string and a message list", what);
    if (prompt->type == DS_JSON_STRING) {
        if ((rc = ds__seq_id(out, ds_tokenizer_bos(tok), 0, err)) || (rc = ds__seq_text(out, tok, prompt->str, NULL, NULL, 0, err)) ||
            (rc = ds__seq_text(out, tok, resp->str, NULL, NULL, 1, err)))
            return rc;
    } else {
        ds_message *pm, *rm;
        int np, nr;
        if ((rc = ds__messages(prompt, "prompt", &pm, &np, err))) return rc;
        if ((rc = ds__messages(resp, what, &rm, &nr, err))) { DS_FREE(pm); return rc; }
        if (nr != 1 || strcmp(rm[0].role, "assistant")) rc = ds__fail(err, DS_ERR_FORMAT, "\"%s\" must be one assistant message", what);
        if (!rc) rc = ds__render(tok, pm, np, 1, 0, out, err);
        if (!rc) rc = ds__seq_text(out, tok, " ", rm[0].content, NULL, 1, err);
        DS_FREE(pm);
        DS_FREE(rm);
        if (rc) return rc;
    }
    return ds__seq_id(out, ds_tokenizer_eos(tok), 1, err);
}

/* one JSON line -> ex; DS_ERR_FORMAT with the reason for a bad row */
static int ds__row(ds_tokenizer *tok, int kind, const char *line, size_t len, ds_example *ex, ds_error *err) {
    ds_json_doc *doc = ds_json_parse(line, len, err);
    const ds_json *row, *a, *b, *c;
    ds_message *ma = NULL, *mb = NULL;
    int rc = DS_OK, na, nb;
    if (!doc) return err ? err->code : DS_ERR_FORMAT;
    row = doc->root;
    if (row->type != DS_JSON_OBJECT) rc = ds__fail(err, DS_ERR_FORMAT, "the line is %s, not a JSON object", ds_json_type_name(row->type));
    else if (kind == DS_DATA_SFT && (a = ds_json_get(row, "messages"))) {
        if (!(rc = ds__messages(a, "messages", &ma, &na, err))) rc = ds__render(tok, ma, na, 0, 1, &ex->seq, err);
    } else if (kind == DS_DATA_SFT) {
        if (!ds_json_get(row, "prompt")) rc = ds__fail(err, DS_ERR_FORMAT, "an SFT row needs \"messages\", or \"prompt\" and \"completion\"");
        else if (!(a = ds__field(row, "prompt", err)) || !(b = ds__field(row, "completion", err))) rc = err->code;
        else if (a->type != b->type) rc = ds__fail(err, DS_ERR_FORMAT, "\"prompt\" and \"completion\" mix a string and a message list");
        else if (a->type == DS_JSON_STRING) {
            if (!(rc = ds__seq_id(&ex->seq, ds_tokenizer_bos(tok), 0, err)) && !(rc = ds__seq_text(&ex->seq, tok, a->str, NULL, NULL, 0, err)) &&
                !(rc = ds__seq_text(&ex->seq, tok, b->str, NULL, NULL, 1, err)))
                rc = ds__seq_id(&ex->seq, ds_tokenizer_eos(tok), 1, err);
        } else if (!(rc = ds__messages(a, "prompt", &ma, &na, err)) && !(rc = ds__messages(b, "completion", &mb, &nb, err)) &&
                   !(rc = ds__render(tok, ma, na, 0, 0, &ex->seq, err)))
            rc = ds__render(tok, mb, nb, 0, 1, &ex->seq, err);
    } else {
        if (!(a = ds__field(row, "prompt", err)) || !(b = ds__field(row, "chosen", err)) || !(c = ds__field(row, "rejected", err))) rc = err->code;
        else if (!(rc = ds__pref_side(tok, a, b, "chosen", &ex->seq, err)))
            rc = ds__pref_side(tok, a, c, "rejected", &ex->rejected, err);
    }
    if (rc == DS_ERR_INVALID) err->code = rc = DS_ERR_FORMAT; /* a bad role, a misplaced system message */
    DS_FREE(ma);
    DS_FREE(mb);
    ds_json_free(doc);
    return rc;
}

static int ds__dataset_add(ds_dataset *d, ds_example *ex, ds_error *err) {
    if (d->n == d->cap_) {
        int cap = d->cap_ ? d->cap_ * 2 : 256;
        ds_example *p = (ds_example *)DS_REALLOC(d->ex, (size_t)cap * sizeof(ds_example));
        if (!p) return DS__OOM(err);
        d->ex = p, d->cap_ = cap;
    }
    d->ex[d->n++] = *ex;
    return DS_OK;
}

DSDEF int ds_dataset_parse(ds_dataset *d, ds_tokenizer *tok, int kind, const char *text, size_t len, int max_tokens, int flags,
                           ds_bad_line_fn on_bad, void *ctx, ds_error *err) {
    size_t pos = 0;
    long line = 0;
    if (!d || !tok || (kind != DS_DATA_SFT && kind != DS_DATA_PREFERENCE) || (!text && len) || max_tokens < 2)
        return ds__fail(err, DS_ERR_INVALID, "dataset: bad argument (kind SFT or PREFERENCE, max_tokens >= 2)");
    if (d->kind && d->kind != kind) return ds__fail(err, DS_ERR_INVALID, "dataset: mixing SFT and preference rows in one dataset");
    if (ds_tokenizer_bos(tok) < 0 || ds_tokenizer_eos(tok) < 0) return ds__fail(err, DS_ERR_INVALID, "dataset: the tokenizer has no BOS/EOS tokens");
    d->kind = kind;
    while (pos < len) {
        const char *p = text + pos, *nl = (const char *)memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos, k;
        ds_example ex;
        ds_error e;
        int rc, blank = 1;
        pos += n + (nl ? 1 : 0), line++;
        for (k = 0; k < n && blank; k++) blank = p[k] == ' ' || p[k] == '\t' || p[k] == '\r';
        if (blank) continue;
        d->lines++;
        memset(&ex, 0, sizeof ex);
        e.code = 0, e.msg[0] = 0;
        rc = ds__row(tok, kind, p, n, &ex, &e);
        if (!rc) { /* cut to max_tokens; a row with nothing left to train is bad */
            int cut = 0;
            if (ex.seq.n > max_tokens) ex.seq.n = max_tokens, cut = 1;
            if (ex.rejected.n > max_tokens) ex.rejected.n = max_tokens, cut = 1;
            d->truncated += cut;
            if (!ds_seq_n_trained(&ex.seq) || (kind == DS_DATA_PREFERENCE && !ds_seq_n_trained(&ex.rejected)))
                rc = ds__fail(&e, DS_ERR_FORMAT, cut ? "no response token within the first %d tokens" : "no assistant reply to train on", max_tokens);
        }
        if (!rc) rc = ds__dataset_add(d, &ex, &e);
        if (rc) {
            ds_seq_free(&ex.seq);
            ds_seq_free(&ex.rejected);
            if (rc == DS_ERR_NOMEM) return ds__fail(err, rc, "out of memory");
            if (on_bad) on_bad(ctx, line, e.msg);
            if (!(flags & DS_DATA_SKIP_BAD)) return ds__fail(err, rc, "line %ld: %s", line, e.msg);
            d->bad++;
        }
    }
    return DS_OK;
}

DSDEF int ds_dataset_load(ds_dataset *d, ds_tokenizer *tok, int kind, const char *path, int max_tokens, int flags, ds_bad_line_fn on_bad,
                          void *ctx, ds_error *err) {
    size_t len;
    char *text;
    int rc;
    ds_error local; /* err may be NULL; the message is built in it all the same */
    if (!err) err = &local;
    if (!(text = ds_read_file(path, 0, &len, err))) return err->code;
    rc = ds_dataset_parse(d, tok, kind, text, len, max_tokens, flags, on_bad, ctx, err);
    DS_FREE(text);
    if (rc && rc != DS_ERR_NOMEM) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        ds__fail(err, rc, "%.60s: %s", path, msg);
    }
    return rc;
}

DSDEF void ds_seq_batch(const ds_seq *const *seqs, int n, int B, int T, int32_t pad, int32_t *inputs, int32_t *targets, float *weights) {
    int b, t;
    for (b = 0; b < B; b++) {
        const ds_seq *s = b < n ? seqs[b] : NULL;
        int len = s ? (s->n - 1 < T ? s->n - 1 : T) : 0;
        for (t = 0; t < T; t++) {
            size_t k = (size_t)b * T + t;
            if (t < len) inputs[k] = s->ids[t], targets[k] = s->ids[t + 1], weights[k] = s->mask[t + 1] ? 1.0f : 0.0f;
            else inputs[k] = pad, targets[k] = pad, weights[k] = 0.0f;
        }
    }
}

DSDEF ds_dpo ds_dpo_default(void) {
    ds_dpo d;
    d.beta = 0.1, d.label_smoothing = 0, d.loss_type = DS_DPO_SIGMOID;
    return d;
}

/* log sigmoid(x) = -log(1 + e^-x), without overflow */
static double ds__logsig(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static double ds__sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

DSDEF void ds_dpo_loss(const ds_dpo *cfg, int n, const double *pi_c, const double *pi_r, const double *ref_c, const double *ref_r,
                       ds_dpo_stats *st, double *d_pc, double *d_pr) {
    double beta = cfg->beta, eps = cfg->label_smoothing;
    int i;
    ds_dpo_stats s;
    memset(&s, 0, sizeof s);
    for (i = 0; i < n; i++) {
        double h = (pi_c[i] - pi_r[i]) - (ref_c[i] - ref_r[i]), L, dh, rc = beta * (pi_c[i] - ref_c[i]), rr = beta * (pi_r[i] - ref_r[i]);
        if (cfg->loss_type == DS_DPO_IPO) {
            L = (h - 1 / (2 * beta)) * (h - 1 / (2 * beta));
            dh = 2 * (h - 1 / (2 * beta));
        } else {
            /* dL/dh = -beta (1 - eps) sigmoid(-beta h) + beta eps sigmoid(beta h) */
            L = -(1 - eps) * ds__logsig(beta * h) - eps * ds__logsig(-beta * h);
            dh = -beta * (1 - eps) * ds__sigmoid(-beta * h) + beta * eps * ds__sigmoid(beta * h);
        }
        s.loss += L, s.rewards_chosen += rc, s.rewards_rejected += rr, s.rewards_accuracies += rc > rr, s.rewards_margins += rc - rr;
        s.logps_chosen += pi_c[i], s.logps_rejected += pi_r[i];
        if (d_pc) d_pc[i] = dh / n;
        if (d_pr) d_pr[i] = -dh / n;
    }
    if (n > 0) {
        s.loss /= n, s.rewards_chosen /= n, s.rewards_rejected /= n, s.rewards_accuracies /= n, s.rewards_margins /= n;
        s.logps_chosen /= n, s.logps_rejected /= n;
    }
    if (st) *st = s;
}

/* forward over the pairs' 2n sequences (chosen rows 0..n-1, rejected rows n..2n-1); logp per row */
static int ds__dpo_forward(ds_model *m, const ds_example *const *pairs, int n, int T, const ds_dpo *cfg, ds_pool *pool, ds__hbuf *b,
                           ds_error *err) {
    int i, t, rc;
    if (!m || !pairs || n < 1 || T < 1 || !cfg || !(cfg->beta > 0)) return ds__fail(err, DS_ERR_INVALID, "DPO: bad argument (n >= 1, beta > 0)");
    if (2 * n > m->B || T > m->T)
        return ds__fail(err, DS_ERR_INVALID, "DPO: %d pairs of T = %d need B >= %d rows (the model holds B <= %d, T <= %d)", n, T, 2 * n, m->B, m->T);
    *b = ds__host_scratch(m);
    for (i = 0; i < n; i++) b->rows[i] = &pairs[i]->seq, b->rows[n + i] = &pairs[i]->rejected;
    ds_seq_batch(b->rows, 2 * n, 2 * n, T, 0, b->in, b->tg, b->w);
    if ((rc = ds_model_forward(m, b->in, b->tg, b->w, 2 * n, T, pool, NULL, err)) || (rc = ds_model_copy_token_losses(m, b->losses, err)))
        return rc;
    for (i = 0; i < 2 * n; i++) {
        double sum = 0, cnt = 0;
        for (t = 0; t < T; t++)
            if (b->w[(size_t)i * T + t] != 0) sum -= (double)b->losses[(size_t)i * T + t], cnt++;
        if (cnt == 0) return ds__fail(err, DS_ERR_INVALID, "DPO: pair %d has no response token within T = %d", i % n, T);
        b->lp[i] = cfg->loss_type == DS_DPO_IPO ? sum / cnt : sum;
    }
    return DS_OK;
}

DSDEF int ds_dpo_logps(ds_model *m, const ds_example *const *pairs, int n, int T, const ds_dpo *cfg, ds_pool *pool, double *chosen,
                       double *rejected, ds_error *err) {
    ds__hbuf b;
    int rc, i;
    if ((rc = ds__dpo_forward(m, pairs, n, T, cfg, pool, &b, err))) return rc;
    for (i = 0; i < n; i++) chosen[i] = b.lp[i], rejected[i] = b.lp[n + i];
    return DS_OK;
}

DSDEF int ds_dpo_grad(ds_model *m, const ds_dpo *cfg, const ds_example *const *pairs, int n, int T, const double *ref_c,
                      const double *ref_r, float grad_scale, ds_pool *pool, ds_dpo_stats *st, ds_error *err) {
    ds__hbuf b;
    int rc, i, t;
    ds_dpo_stats s;
    if ((rc = ds__dpo_forward(m, pairs, n, T, cfg, pool, &b, err))) return rc;
    ds_dpo_loss(cfg, n, b.lp, b.lp + n, ref_c, ref_r, &s, b.d, b.d + n);
    if (st) *st = s;
    if (!(s.loss == s.loss) || isinf(s.loss)) return ds__fail(err, DS_ERR_NUMERIC, "DPO: the loss is not finite");
    /* logp(row) = -sum_t mask_t loss_t (/ count for IPO), so dJ/dloss_t = -mask_t dJ/dlogp(row) (/ count) */
    for (i = 0; i < 2 * n; i++) {
        const float *w = b.w + (size_t)i * T;
        double cnt = 0, f;
        for (t = 0; t < T; t++) cnt += w[t] != 0;
        f = -b.d[i] * grad_scale / (cfg->loss_type == DS_DPO_IPO ? cnt : 1);
        for (t = 0; t < T; t++) b.dl[(size_t)i * T + t] = w[t] != 0 ? (ds_float)f : 0;
    }
    return ds_model_backward_tokens(m, b.dl, pool, err);
}

DSDEF int ds_is_repetitive(const int32_t *ids, int n) {
    int p, i, half = n / 2;
    if (!ids || n < 8) return 0;
    for (p = 1; p <= n / 4; p++) {
        for (i = n - half; i < n && ids[i] == ids[i - p]; i++) {}
        if (i == n) return 1;
    }
    return 0;
}

#ifdef __cplusplus
}
#endif
#endif /* DEEPSEEK_IMPLEMENTATION_DONE */
#endif /* DEEPSEEK_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the deepseek.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication in perpetuity for the benefit of the public and
to the detriment of our heirs and successors. We intend this dedication to be an
overt act of relinquishment in perpetuity of all present and future rights to
this software under copyright law.
------------------------------------------------------------------------------
*/
