/* deepseek_cuda.cuh - the CUDA backend of deepseek.h: the op layer on an NVIDIA GPU.

   Do this, in one file compiled by nvcc (a .cu file, or a .c file with `nvcc -x cu`):
      #define DS_CUDA
      #define DEEPSEEK_IMPLEMENTATION
      #include "deepseek.h"          (deepseek.h includes this file itself, from its own folder)
   Link with -lcublasLt -lcublas. Build for the GPU you have: nvcc 13 defaults to sm_75; the Makefile's
   `make cuda` passes -gencode arch=compute_90,code=[sm_90,compute_90] (H100/H200, with PTX for
   later GPUs). Every ds_model_* call then runs on the GPU; tokenizers, datasets, schedules,
   checkpoints, SFT and DPO are deepseek.h's own code, unchanged. A checkpoint written by either
   build loads in the other.

   STATUS OF THIS VERSION (read before trusting a number):
      - fp32 by default: every op keeps deepseek.h's precision (float), cuBLAS SGEMM for the
        linears (no TF32: CUBLAS_DEFAULT_MATH). ds_model_set_precision(m, DS_PRECISION_BF16)
        gives the paper's bf16 regime (§2.4): the linears' products on the tensor cores from bf16
        operands with fp32 accumulation, the activations stored as bf16 (all but the residual
        stream), fp32 master weights, gradients, moments, residual stream, statistics and loss
        (docs/cuda.md, "Precision").
      - the classifier runs in chunks of rows when the [B T, V] logits would pass 256 MB.
      - attention is tiled, FlashAttention-2's algorithm: it keeps each row's log-sum-exp, never
        the T x T probabilities, skips the masked tiles, and its backward is deterministic (no
        atomics). Heads of at most 128 channels. fp32 on CUDA cores in fp32 mode; in bf16 mode,
        for heads of a multiple of 16 channels on sm_80 and later, its products run on the
        tensor cores (bf16 operands, fp32 accumulation and statistics).
      - No GPU was available while this file was written: it compiles (CI builds it with nvcc)
        and its tests skip without a device. Every kernel and test has run on the CPU emulator
        of tests/cuda/emu (make test-cuda-emu, part of make test): that checks what the kernels
        compute, launch by launch, against the CPU ops, not the GPU's rounding, memory model
        or speed. tools/cuda_check.sh is for the first GPU.
   Design, per op: the same math and argument shapes as the CPU op beside it in deepseek.h. Every
   reduction has a fixed order (one block per row with a fixed tree, or one thread per output
   looping in order), never a float atomic, so a run repeats bit for bit on the same GPU; results
   differ from the CPU's in the last bits (another summation order), within the tolerances the
   tests state.

   Errors: a failing CUDA or cuBLAS call is recorded in the execution context (the first one,
   with the call and the CUDA error string) and returned as a ds_error by the next public call;
   nothing here exits or aborts. No device is an error of ds_model_new. */
#ifndef DEEPSEEK_CUDA_CUH
#define DEEPSEEK_CUDA_CUH

#ifdef DS_DOUBLE
#error "deepseek_cuda.cuh: the CUDA backend computes in float (DS_DOUBLE is for the CPU's gradient checks)"
#endif
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <mma.h>

#define DS__NORM_CHUNK 16384 /* the deterministic reductions' fixed chunk, as on the CPU */
#define DS__CU_THREADS 256
#define DS__LT_WS ((size_t)32 << 20) /* cuBLASLt's workspace: 32 MiB, what Hopper's kernels ask for */
#ifndef DS__LT_CACHE
#define DS__LT_CACHE 64              /* the shapes whose cuBLASLt algorithm is remembered */
#endif
/* the tiled attention's shape (its comment, below) */
#define DS__FA_BR 32     /* query rows a block (forward, dQ) */
#define DS__FA_BC 32     /* key rows a tile; key rows a block (dKV) */
#define DS__FA_G 4       /* threads a row, each with every G-th channel */
#define DS__FA_MAXHD 128 /* the largest head the registers hold */
/* every launch: DS__CU_LAUNCH(kernel, grid, block)(arguments) is kernel<<<grid, block>>>(arguments).
   The CPU emulator of the tests (tests/cuda/emu, make test-cuda-emu) defines it otherwise, to
   run the same kernels on a machine without a GPU. */
#ifndef DS__CU_LAUNCH
#define DS__CU_LAUNCH(kernel, grid, block) kernel<<<grid, block>>>
#endif

/* a product's shape and the cuBLASLt algorithm chosen for it (found: the heuristic had one) */
typedef struct ds__lt_entry { int ta, tb, m, n, k, lda, ldb, ldc, ct, found; unsigned align[3]; cublasLtMatmulAlgo_t algo; } ds__lt_entry;
typedef struct ds__exec {
    ds_pool *pool;      /* unused on the GPU: kept so that the model's calls are the same */
    int host_visible;   /* 0: host access goes through ds__to_host / ds__from_host */
    ds_float *work;     /* device scratch, work_n values (attention's row sums D, decoding's scores) */
    size_t work_n;
    double *partial;    /* device: per-chunk partial sums, partial_n values */
    size_t partial_n;
    double *h_partial;  /* host copy of them */
    ds_float *h_red;    /* host buffer for the loss sum: 2 * h_red_n values */
    size_t h_red_n;
    cublasHandle_t blas;
    int bf16;              /* DS_PRECISION_BF16: the linears' operands rounded to bf16 (ds__gemm_bf16) */
    size_t bf16_n;         /* the two operand scratches' size, in values */
    __nv_bfloat16 *bfa, *bfb;
    __nv_bfloat16 *wbf;    /* bf16 mode: the weights' bf16 copy, wbf_n values mirroring wbf_base (the model's
                              parameters), written by AdamW as it updates them (ds__bf16_weight) */
    const ds_float *wbf_base;
    size_t wbf_n;
    int wbf_fresh;         /* 0: the weights changed where the copy did not follow; the next linear redoes it */
    cublasLtHandle_t lt;   /* bf16 mode's products (ds__gemm_bf16) */
    void *lt_ws;           /* its workspace, DS__LT_WS bytes (bf16 mode only) */
    ds__lt_entry lt_algo[DS__LT_CACHE];
    int lt_n;              /* the algorithms the heuristic chose, per shape (the first DS__LT_CACHE shapes) */
    long lt_refused;       /* cuBLASLt calls that failed with the heuristic's algorithm (redone by cublasGemmEx) */
    const char *lin_base;  /* the model's lin block (ds__exec_set_lin): bf16 values in bf16 mode */
    size_t lin_bytes;
    int tc;                /* the device has bf16 tensor cores for the warp matrix functions (sm_80 on):
                              bf16 mode's attention runs on them (ds__fa_fwd_tc_kernel) */
    int device, failed;
    char msg[200];      /* the first failure */
} ds__exec;

static void ds__cu_fail(ds__exec *ex, const char *what, const char *why) {
    if (ex->failed) return; /* keep the first */
    ex->failed = 1;
    snprintf(ex->msg, sizeof ex->msg, "CUDA: %s: %s", what, why);
}
static int ds__cu_ok(ds__exec *ex, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 1;
    ds__cu_fail(ex, what, cudaGetErrorString(e));
    return 0;
}
static void ds__blas_ok(ds__exec *ex, cublasStatus_t s, const char *what) {
    if (s != CUBLAS_STATUS_SUCCESS) {
        char why[48];
        snprintf(why, sizeof why, "cuBLAS status %d", (int)s);
        ds__cu_fail(ex, what, why);
    }
}
/* after every kernel launch: a bad configuration shows here, a fault at the next synchronization */
#define DS__LAUNCHED(ex, name) ds__cu_ok(ex, cudaGetLastError(), name)

static void *ds__exec_alloc(ds__exec *ex, size_t n, size_t size) {
    void *p = NULL;
    if (size && n > SIZE_MAX / size) return NULL;
    if (!ds__cu_ok(ex, cudaMalloc(&p, n * size > 0 ? n * size : 1), "cudaMalloc")) return NULL;
    if (!ds__cu_ok(ex, cudaMemset(p, 0, n * size), "cudaMemset")) { cudaFree(p); return NULL; }
    return p;
}
static void ds__exec_free(ds__exec *ex, void *p) {
    (void)ex;
    if (p) cudaFree(p);
}

/* the classifier's chunk (ds__model_new): the rows of [rows, V] fp32 logits that fit in 256 MB
   (§2.4: the logits of a whole batch never exist at once; 655 rows at DeepSeek's V = 102400),
   all B T rows when they fit. A forward with targets then computes them chunk by chunk, and the
   backward computes each chunk again before its in-place gradient. */
#define DS__CU_LOGIT_BYTES ((size_t)256 << 20)
static size_t ds__exec_logit_rows(const ds__exec *ex, size_t N, size_t V) {
    size_t r = DS__CU_LOGIT_BYTES / (sizeof(ds_float) * (V ? V : 1));
    (void)ex;
    return r < 1 ? 1 : r < N ? r : N;
}
static int ds__exec_init(ds__exec *ex, ds_error *err) {
    int n = 0;
    cudaError_t e;
    memset(ex, 0, sizeof *ex);
    e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n < 1)
        return ds__fail(err, DS_ERR_UNSUPPORTED, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    if ((e = cudaGetDevice(&ex->device)) != cudaSuccess) return ds__fail(err, DS_ERR_UNSUPPORTED, "CUDA: cudaGetDevice: %s", cudaGetErrorString(e));
    {
        cudaDeviceProp p;
        if ((e = cudaGetDeviceProperties(&p, ex->device)) != cudaSuccess)
            return ds__fail(err, DS_ERR_UNSUPPORTED, "CUDA: cudaGetDeviceProperties: %s", cudaGetErrorString(e));
        ex->tc = p.major >= 8;
    }
    if (cublasCreate(&ex->blas) != CUBLAS_STATUS_SUCCESS) return ds__fail(err, DS_ERR_UNSUPPORTED, "CUDA: cublasCreate failed");
    if (cublasLtCreate(&ex->lt) != CUBLAS_STATUS_SUCCESS) {
        cublasDestroy(ex->blas), ex->blas = NULL;
        return ds__fail(err, DS_ERR_UNSUPPORTED, "CUDA: cublasLtCreate failed");
    }
    /* full fp32: no TF32 tensor-core rounding in this mode */
    cublasSetMathMode(ex->blas, CUBLAS_DEFAULT_MATH);
    ex->host_visible = 0;
    return DS_OK;
}
static size_t ds__attention_work(size_t B, size_t T, size_t H, size_t KV, size_t hd) {
    (void)KV, (void)hd;
    return B * H * T; /* the backward's D = rowsum(P dP), a value a query row */
}
/* what one layer's attention keeps for its backward: each query row's log-sum-exp, B H T values
   (the CPU keeps each row's softmax max and sum, 2 B H T) */
static size_t ds__attention_saved(size_t B, size_t T, size_t H) { return B * H * T; }
static int ds__exec_reserve(ds__exec *ex, const ds_config *c, size_t B, size_t T, size_t n_params, int decode_only) {
    size_t H = (size_t)c->n_heads, KV = (size_t)c->n_kv_heads, hd = (size_t)c->d_model / H, work;
    if (hd > DS__FA_MAXHD && !decode_only) {
        ds__cu_fail(ex, "ds_model_new", "the CUDA attention holds heads of at most 128 channels (DS__FA_MAXHD)");
        return DS_ERR_UNSUPPORTED;
    }
    work = ds__attention_work(B, T, H, KV, hd);
    if (decode_only) work = 1, n_params = 0;
    ex->work_n = work; /* (decoding's H * max_seq scores: grown on its first use, by the model) */
    ex->partial_n = n_params / DS__NORM_CHUNK + 1;
    ex->h_red_n = B * T;
    ex->work = (ds_float *)ds__exec_alloc(ex, ex->work_n, sizeof(ds_float));
    ex->partial = (double *)ds__exec_alloc(ex, ex->partial_n, sizeof(double));
    ex->h_partial = (double *)ds__calloc(ex->partial_n, sizeof(double));
    ex->h_red = (ds_float *)ds__calloc(2 * ex->h_red_n, sizeof(ds_float));
    return ex->work && ex->partial && ex->h_partial && ex->h_red ? DS_OK : DS_ERR_NOMEM;
}
static int ds__exec_status(ds__exec *ex, ds_error *err) {
    if (!ex->failed) ds__cu_ok(ex, cudaDeviceSynchronize(), "a kernel");
    return ex->failed ? ds__fail(err, DS_ERR_IO, "%s", ex->msg) : DS_OK;
}
static void ds__exec_destroy(ds__exec *ex) {
    ds__exec_free(ex, ex->bfa);
    ds__exec_free(ex, ex->bfb);
    ds__exec_free(ex, ex->wbf);
    ds__exec_free(ex, ex->lt_ws);
    ds__exec_free(ex, ex->work);
    ds__exec_free(ex, ex->partial);
    DS_FREE(ex->h_partial);
    DS_FREE(ex->h_red);
    if (ex->blas) cublasDestroy(ex->blas);
    if (ex->lt) cublasLtDestroy(ex->lt);
    memset(ex, 0, sizeof *ex);
}

/* ---- helpers: copies, zeroing, host transfers (synchronous copies: simple and correct).
   A write that lands in the weights marks their bf16 copy stale (ds__wbf_touch): a checkpoint
   load, ds_model_init, ds_model_set -- every write of the library's own but AdamW's, which
   writes the copy as it goes. ---- */
static void ds__wbf_touch(ds__exec *ex, const void *dst, size_t bytes) {
    uintptr_t d = (uintptr_t)dst, b = (uintptr_t)ex->wbf_base;
    if (ex->wbf && d < b + ex->wbf_n * sizeof(ds_float) && d + bytes > b) ex->wbf_fresh = 0;
}
static void ds__copy(ds__exec *ex, ds_float *dst, const ds_float *src, size_t n) {
    ds__wbf_touch(ex, dst, n * sizeof *dst);
    if (dst != src && n) ds__cu_ok(ex, cudaMemcpy(dst, src, n * sizeof *dst, cudaMemcpyDeviceToDevice), "copy");
}
static void ds__zero(ds__exec *ex, ds_float *p, size_t n) {
    ds__wbf_touch(ex, p, n * sizeof *p);
    if (n) ds__cu_ok(ex, cudaMemset(p, 0, n * sizeof *p), "zero");
}
static void ds__to_host(ds__exec *ex, void *host, const void *src, size_t bytes) {
    if (bytes) ds__cu_ok(ex, cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost), "copy to the host");
}
static void ds__from_host(ds__exec *ex, void *dst, const void *host, size_t bytes) {
    ds__wbf_touch(ex, dst, bytes);
    if (bytes) ds__cu_ok(ex, cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice), "copy from the host");
}

/* block-wide reductions with a fixed tree (so a run repeats bit for bit); blockDim.x is a
   multiple of 32, at most 1024; every thread gets the result */
__device__ static float ds__block_sum(float v, float *sh) {
    int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = blockDim.x / 32, o;
    for (o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = threadIdx.x < (unsigned)nw ? sh[threadIdx.x] : 0.0f;
    if (w == 0)
        for (o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x == 0) sh[0] = v;
    __syncthreads();
    return sh[0];
}
__device__ static float ds__block_max(float v, float *sh) {
    int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = blockDim.x / 32, o;
    for (o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = threadIdx.x < (unsigned)nw ? sh[threadIdx.x] : -INFINITY;
    if (w == 0)
        for (o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (threadIdx.x == 0) sh[0] = v;
    __syncthreads();
    return sh[0];
}
static unsigned ds__blocks(size_t n) { return (unsigned)((n + DS__CU_THREADS - 1) / DS__CU_THREADS); }

/* ---- deterministic reductions: loss_sum on the host in order (the CPU's sum, exactly), sqnorm
   in two stages (a fixed tree in double per chunk, then the chunks in order on the host) ---- */
static void ds__loss_sum(ds__exec *ex, const ds_float *losses, const ds_float *w, size_t N, double *wsum, double *lsum) {
    double ws = 0, ls = 0;
    size_t n;
    ds_float *hl = ex->h_red, *hw = ex->h_red + ex->h_red_n;
    *wsum = *lsum = 0;
    if (N > ex->h_red_n) { ds__cu_fail(ex, "loss_sum", "more tokens than the model holds"); return; }
    ds__to_host(ex, hl, losses, N * sizeof(ds_float));
    if (w) ds__to_host(ex, hw, w, N * sizeof(ds_float));
    for (n = 0; n < N; n++) {
        double wn = w ? (double)hw[n] : 1.0;
        ws += wn;
        ls += wn * (double)hl[n];
    }
    *wsum = ws, *lsum = ls;
}
__global__ static void ds__sqnorm_kernel(const ds_float *x, size_t n, double *partial) {
    __shared__ double sh[DS__CU_THREADS];
    size_t c = blockIdx.x, b = c * DS__NORM_CHUNK, e = b + DS__NORM_CHUNK < n ? b + DS__NORM_CHUNK : n, i;
    double s = 0;
    int k;
    for (i = b + threadIdx.x; i < e; i += blockDim.x) s += (double)x[i] * (double)x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (k = DS__CU_THREADS / 2; k > 0; k /= 2) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[c] = sh[0];
}
static const double *ds__sqnorm_partials(ds__exec *ex, const ds_float *x, size_t n) {
    size_t n_chunks = (n + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK;
    if (n_chunks > ex->partial_n) { ds__cu_fail(ex, "sqnorm", "more chunks than reserved"); return NULL; }
    if (n_chunks) {
        DS__CU_LAUNCH(ds__sqnorm_kernel, (unsigned)n_chunks, DS__CU_THREADS)(x, n, ex->partial);
        DS__LAUNCHED(ex, "sqnorm");
        ds__to_host(ex, ex->h_partial, ex->partial, n_chunks * sizeof(double));
    }
    return ex->h_partial;
}
static double ds__sqnorm(ds__exec *ex, const ds_float *x, size_t n) {
    size_t n_chunks = (n + DS__NORM_CHUNK - 1) / DS__NORM_CHUNK, c;
    const double *part = ds__sqnorm_partials(ex, x, n);
    double s = 0;
    if (!part) return 0;
    for (c = 0; c < n_chunks; c++) s += part[c];
    return s;
}
__global__ static void ds__accumulate_kernel(ds_float *dst, const ds_float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] += src[i];
}
static void ds__accumulate(ds__exec *ex, ds_float *dst, const ds_float *src, size_t n) {
    if (!n) return;
    DS__CU_LAUNCH(ds__accumulate_kernel, ds__blocks(n), DS__CU_THREADS)(dst, src, n);
    DS__LAUNCHED(ex, "accumulate");
}

/* ---- embedding: out[n,:] = wte[inp[n],:]; dwte[inp[n],:] += dout[n,:] (one thread per channel
   d, looping n in order: no atomics, the CPU's order) ---- */
__global__ static void ds__embedding_fwd_kernel(ds_float *out, const int32_t *inp, const ds_float *w, size_t N, size_t D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N * D) out[i] = w[(size_t)inp[i / D] * D + i % D];
}
__global__ static void ds__embedding_bwd_kernel(ds_float *dw, const ds_float *dout, const int32_t *inp, size_t N, size_t D) {
    size_t d = (size_t)blockIdx.x * blockDim.x + threadIdx.x, n;
    if (d >= D) return;
    for (n = 0; n < N; n++) dw[(size_t)inp[n] * D + d] += dout[n * D + d];
}
static void ds__embedding_forward(ds__exec *ex, ds_float *out, const int32_t *inp, const ds_float *wte, size_t N, size_t D) {
    DS__CU_LAUNCH(ds__embedding_fwd_kernel, ds__blocks(N * D), DS__CU_THREADS)(out, inp, wte, N, D);
    DS__LAUNCHED(ex, "embedding_forward");
}
static void ds__embedding_backward(ds__exec *ex, ds_float *dwte, const ds_float *dout, const int32_t *inp, size_t N, size_t D) {
    DS__CU_LAUNCH(ds__embedding_bwd_kernel, ds__blocks(D), DS__CU_THREADS)(dwte, dout, inp, N, D);
    DS__LAUNCHED(ex, "embedding_backward");
}

/* ---- bf16 activations (the model's `lin`: the linears' inputs ln1, ln2, h, lnf, gate|up, q|k|v
   and attention's output y): in bf16 mode they are stored as bf16 (paper §2.4), half the bytes
   (gate|up alone is 2 d_ff values a token and layer). The norm or
   SwiGLU that writes a linear's input rounds each value once (round to nearest even, as
   ds__bf16_of would), and the linear reads it as its bf16 operand directly, forward and weight
   gradient: the same bits as rounding a float copy on the way into each product, without the
   float copy or the conversion pass. The gate|up and q|k|v products are written as bf16 by
   cuBLASLt's epilogue (fp32 accumulation, rounded once on the way out); SwiGLU, RoPE (in place)
   and attention compute in fp32 from those values, and attention writes y as bf16. The model
   tells the backend where they are (ds__exec_set_lin) and sizes them by ds__exec_act_size.
   What stays fp32: the residual stream (sums of many products), the norms' and attention's
   statistics, the KV cache, every gradient. ---- */
static size_t ds__exec_act_size(const ds__exec *ex, int precision) {
    (void)ex;
    return precision == DS_PRECISION_BF16 ? sizeof(__nv_bfloat16) : sizeof(ds_float);
}
static void ds__exec_set_lin(ds__exec *ex, const void *base, size_t bytes) { ex->lin_base = (const char *)base, ex->lin_bytes = bytes; }
/* does p point at an activation stored as bf16? */
static int ds__act_bf16(const ds__exec *ex, const void *p) {
    const char *c = (const char *)p;
    return ex->bf16 && ex->lin_base && c >= ex->lin_base && c < ex->lin_base + ex->lin_bytes;
}
__device__ static void ds__act_store(ds_float *p, int bf, size_t i, float v) {
    if (bf) ((__nv_bfloat16 *)(void *)p)[i] = __float2bfloat16(v);
    else p[i] = v;
}
__device__ static float ds__act_load(const ds_float *p, int bf, size_t i) {
    return bf ? __bfloat162float(((const __nv_bfloat16 *)(const void *)p)[i]) : p[i];
}
/* a read-only activation for the kernels that step through one (q|k|v): its place and format;
   ds__act_at moves it by i values, ds__act_get reads value i */
typedef struct ds__act { const ds_float *p; int bf; } ds__act;
static ds__act ds__act_of(const ds__exec *ex, const ds_float *p) {
    ds__act a;
    a.p = p, a.bf = ds__act_bf16(ex, p);
    return a;
}
__host__ __device__ static ds__act ds__act_f32(const ds_float *p) { /* an fp32 buffer (dy) */
    ds__act a;
    a.p = p, a.bf = 0;
    return a;
}
__host__ __device__ static ds__act ds__act_at(ds__act a, size_t i) {
    a.p = (const ds_float *)(const void *)((const char *)a.p + i * (a.bf ? sizeof(__nv_bfloat16) : sizeof(ds_float)));
    return a;
}
__device__ static float ds__act_get(ds__act a, size_t i) { return ds__act_load(a.p, a.bf, i); }

/* ---- RMSNorm: one block per row (forward, dx); dw one thread per channel looping n ---- */
/* out: floats, or (bf = 1) bf16 values: the linears' inputs in bf16 mode (ds__act_bf16) */
__global__ static void ds__rmsnorm_fwd_kernel(ds_float *out, int bf, ds_float *rstd, const ds_float *x, const ds_float *w, size_t D, double eps) {
    __shared__ float sh[32];
    const ds_float *xr = x + (size_t)blockIdx.x * D;
    size_t d, row = (size_t)blockIdx.x * D;
    float ss = 0, s;
    for (d = threadIdx.x; d < D; d += blockDim.x) ss += xr[d] * xr[d];
    ss = ds__block_sum(ss, sh);
    s = (float)(1.0 / sqrt((double)ss / (double)D + eps));
    if (threadIdx.x == 0) rstd[blockIdx.x] = s;
    for (d = threadIdx.x; d < D; d += blockDim.x) ds__act_store(out, bf, row + d, xr[d] * s * w[d]);
}
__global__ static void ds__rmsnorm_dx_kernel(ds_float *dx, int acc, const ds_float *dout, const ds_float *x, const ds_float *w, const ds_float *rstd,
                                             size_t D) {
    __shared__ float sh[32];
    size_t r = blockIdx.x, d;
    const ds_float *xr = x + r * D, *g = dout + r * D;
    ds_float *o = dx + r * D, s = rstd[r], dot = 0, c;
    for (d = threadIdx.x; d < D; d += blockDim.x) dot += g[d] * w[d] * xr[d];
    dot = ds__block_sum(dot, sh);
    c = dot * s * s / (ds_float)D; /* rstd * mean(g * xhat) */
    for (d = threadIdx.x; d < D; d += blockDim.x) {
        ds_float v = s * (g[d] * w[d] - xr[d] * c);
        o[d] = acc ? o[d] + v : v;
    }
}
__global__ static void ds__rmsnorm_dw_kernel(ds_float *dw, const ds_float *dout, const ds_float *x, const ds_float *rstd, size_t N, size_t D) {
    size_t d = (size_t)blockIdx.x * blockDim.x + threadIdx.x, n;
    ds_float s = 0;
    if (d >= D) return;
    for (n = 0; n < N; n++) s += dout[n * D + d] * x[n * D + d] * rstd[n];
    dw[d] += s;
}
static void ds__rmsnorm_forward(ds__exec *ex, ds_float *out, ds_float *rstd, const ds_float *x, const ds_float *w, size_t N, size_t D,
                                double eps) {
    DS__CU_LAUNCH(ds__rmsnorm_fwd_kernel, (unsigned)N, DS__CU_THREADS)(out, ds__act_bf16(ex, out), rstd, x, w, D, eps);
    DS__LAUNCHED(ex, "rmsnorm_forward");
}
static void ds__rmsnorm_backward(ds__exec *ex, ds_float *dx, int dx_accumulate, ds_float *dw, const ds_float *dout, const ds_float *x,
                                 const ds_float *w, const ds_float *rstd, size_t N, size_t D) {
    DS__CU_LAUNCH(ds__rmsnorm_dx_kernel, (unsigned)N, DS__CU_THREADS)(dx, dx_accumulate, dout, x, w, rstd, D);
    DS__LAUNCHED(ex, "rmsnorm_backward (dx)");
    DS__CU_LAUNCH(ds__rmsnorm_dw_kernel, ds__blocks(D), DS__CU_THREADS)(dw, dout, x, rstd, N, D);
    DS__LAUNCHED(ex, "rmsnorm_backward (dw)");
}

/* ---- the paper's bf16 mode (§2.4), for the linears: ds_model_set_precision(m, DS_PRECISION_BF16).
   The model keeps fp32 its master weights, gradients, AdamW moments, the residual stream, the
   norms' statistics and the loss; the activations of its `lin` block are bf16 (above). Each
   linear takes its two operands as bf16: a weight from the copy below, an input that is not
   already bf16 rounded into the context's scratch (ds__to_bf16_kernel: round to nearest even;
   the output gradients, decoding's activations), and multiplies them on the tensor cores
   with fp32 accumulation into an fp32 result (cublasLtMatmul: CUDA_R_16BF in, CUDA_R_32F out,
   CUBLAS_COMPUTE_32F; ds__gemm_bf16), or a bf16 one for gate|up and q|k|v (CUDA_R_16BF out: the fp32 sums
   rounded once): a product of two bf16 values is exact in fp32, so the rounding is in the
   operands (and that output) only. The gradients of the weights are accumulated in fp32 (beta = 1). Attention's
   products are bf16 on the tensor cores too (ds__fa_fwd_tc_kernel, below), its softmax fp32;
   norms, SwiGLU and the classifier's softmax compute in fp32.
   The weights' operand is not rounded at every product: the mode keeps a bf16 copy of all the
   parameters (2 bytes each), which AdamW writes in the same kernel that updates the fp32 master
   (ds__adamw_kernel), so a step reads each weight's bf16 copy where it used to convert the weight
   once per product (twice a step, three times for the classifier's head). The copy holds
   exactly what that conversion gave (round to nearest even of the same fp32 values): the same
   bits. Any other write into the weights marks it stale (ds__wbf_touch), and the next linear
   converts the whole copy again (ds__bf16_weight); so does an AdamW on a slice only (data
   parallelism: the other slices arrive by MPI). ---- */
__global__ static void ds__to_bf16_kernel(__nv_bfloat16 *dst, const ds_float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16(src[i]);
}
static const __nv_bfloat16 *ds__bf16_of(ds__exec *ex, __nv_bfloat16 *dst, const ds_float *src, size_t n) {
    if (n > ex->bf16_n) { ds__cu_fail(ex, "bf16 operand", "larger than the scratch ds_model_set_precision sized"); return dst; }
    if (n) DS__CU_LAUNCH(ds__to_bf16_kernel, ds__blocks(n), DS__CU_THREADS)(dst, src, n);
    DS__LAUNCHED(ex, "to_bf16");
    return dst;
}
/* the bf16 operand of a linear's input: as it is where the model stores it in bf16 (ds__act_bf16),
   else rounded into dst */
static const __nv_bfloat16 *ds__bf16_act(ds__exec *ex, __nv_bfloat16 *dst, const ds_float *inp, size_t n) {
    return ds__act_bf16(ex, inp) ? (const __nv_bfloat16 *)(const void *)inp : ds__bf16_of(ex, dst, inp, n);
}
/* the bf16 operand of a weight W [n values]: its place in the copy (redone first if stale), or,
   for a W outside the parameters, W rounded into the scratch bfb */
static const __nv_bfloat16 *ds__bf16_weight(ds__exec *ex, const ds_float *W, size_t n) {
    uintptr_t w = (uintptr_t)W, b = (uintptr_t)ex->wbf_base;
    if (!ex->wbf || w < b || w + n * sizeof(ds_float) > b + ex->wbf_n * sizeof(ds_float)) return ds__bf16_of(ex, ex->bfb, W, n);
    if (!ex->wbf_fresh) {
        DS__CU_LAUNCH(ds__to_bf16_kernel, ds__blocks(ex->wbf_n), DS__CU_THREADS)(ex->wbf, ex->wbf_base, ex->wbf_n);
        if (DS__LAUNCHED(ex, "to_bf16 (the weights' copy)")) ex->wbf_fresh = 1;
    }
    return ex->wbf + (W - ex->wbf_base);
}
/* C (col-major, m x n, ldc) = op(A) op(B) + beta C, A and B bf16, C fp32, fp32 accumulation: a
   cuBLASLt matmul (bf16 on the tensor cores; D = C, in place) with the algorithm its heuristic
   picks for the shape within a 32 MiB workspace, asked once per shape and remembered. Split-K
   reductions are allowed only through the workspace (CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE,
   OUTPUT_TYPE), not in place in the output, so that a product's bits do not depend on the order
   in which its parts land (the determinism the tests check). A shape the heuristic has nothing
   for, or a mode without the workspace, goes through cublasGemmEx, the same product. LLaMA's
   linears have nothing for cuBLASLt's epilogues (bias, ReLU, GELU and their gradients); the one
   fusion they have, the residual add into the o and down projections and the weight gradients'
   accumulation, is beta = 1 here. The heuristic assumes 256-byte aligned matrices unless told
   otherwise, and a weight's place in the bf16 copy, a weight gradient's in the gradients or a
   chunk of logits need not be: each product tells it the alignment its pointers have (part of
   the cached shape). */
static unsigned ds__lt_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    unsigned b = 256;
    while (b > 1 && a % b) b /= 2;
    return b;
}
static const cublasLtMatmulAlgo_t *ds__lt_algo(ds__exec *ex, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                                               cublasLtMatrixLayout_t lc, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc, int ct,
                                               const unsigned align[3], cublasLtMatmulAlgo_t *spare) {
    ds__lt_entry *a;
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulHeuristicResult_t res;
    uint64_t ws = DS__LT_WS;
    uint32_t red = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    int i, got = 0;
    for (i = 0; i < ex->lt_n; i++) {
        a = &ex->lt_algo[i];
        if (a->ta == ta && a->tb == tb && a->m == m && a->n == n && a->k == k && a->lda == lda && a->ldb == ldb && a->ldc == ldc && a->ct == ct &&
            a->align[0] == align[0] && a->align[1] == align[1] && a->align[2] == align[2])
            return a->found ? &a->algo : NULL;
    }
    if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) return NULL;
    {
        uint32_t al = align[0], bl = align[1], cl = align[2];
        if (cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &bl, sizeof bl) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &cl, sizeof cl) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &cl, sizeof cl) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulAlgoGetHeuristic(ex->lt, op, la, lb, lc, lc, pref, 1, &res, &got) != CUBLAS_STATUS_SUCCESS)
            got = 0;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    if (got > 0 && res.workspaceSize > DS__LT_WS) got = 0;
    if (ex->lt_n == DS__LT_CACHE) { /* the cache is full: this call's algorithm, in the caller's spare */
        if (!got) return NULL;
        *spare = res.algo;
        return spare;
    }
    a = &ex->lt_algo[ex->lt_n++];
    a->ta = ta, a->tb = tb, a->m = m, a->n = n, a->k = k, a->lda = lda, a->ldb = ldb, a->ldc = ldc, a->ct = ct, a->found = got > 0;
    a->align[0] = align[0], a->align[1] = align[1], a->align[2] = align[2];
    if (got > 0) a->algo = res.algo;
    return a->found ? &a->algo : NULL;
}
static void ds__gemm_bf16(ds__exec *ex, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const __nv_bfloat16 *A, int lda,
                          const __nv_bfloat16 *B, int ldb, float beta, void *C, cudaDataType_t ct, int ldc, const char *what) {
    const float one = 1;
    if (ex->lt && ex->lt_ws && m > 0 && n > 0 && k > 0) {
        cublasLtMatmulDesc_t op = NULL;
        cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
        int32_t a32 = (int32_t)ta, b32 = (int32_t)tb;
        cublasStatus_t st = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
        if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &a32, sizeof a32);
        if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &b32, sizeof b32);
        if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda);
        if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb);
        if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&lc, ct, m, n, ldc);
        if (st == CUBLAS_STATUS_SUCCESS) {
            const unsigned align[3] = {ds__lt_align(A), ds__lt_align(B), ds__lt_align(C)};
            cublasLtMatmulAlgo_t spare;
            const cublasLtMatmulAlgo_t *algo = ds__lt_algo(ex, op, la, lb, lc, (int)ta, (int)tb, m, n, k, lda, ldb, ldc, (int)ct, align, &spare);
            st = algo ? cublasLtMatmul(ex->lt, op, &one, A, la, B, lb, &beta, C, lc, C, lc, algo, ex->lt_ws, DS__LT_WS, 0) : CUBLAS_STATUS_NOT_SUPPORTED;
            if (algo && st != CUBLAS_STATUS_SUCCESS) ex->lt_refused++;
            if (st != CUBLAS_STATUS_SUCCESS) /* no algorithm, or cuBLASLt refused it: the same product through cublasGemmEx */
                st = cublasGemmEx(ex->blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, &beta, C, ct, ldc,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        }
        if (lc) cublasLtMatrixLayoutDestroy(lc);
        if (lb) cublasLtMatrixLayoutDestroy(lb);
        if (la) cublasLtMatrixLayoutDestroy(la);
        if (op) cublasLtMatmulDescDestroy(op);
        ds__blas_ok(ex, st, what);
        return;
    }
    ds__blas_ok(ex, cublasGemmEx(ex->blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, &beta, C, ct, ldc,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), what);
}
static int ds__exec_set_precision(ds__exec *ex, int precision, size_t operand_max, const ds_float *params, size_t n_params, ds_error *err) {
    ds__exec_free(ex, ex->wbf);
    ex->wbf = NULL, ex->wbf_base = NULL, ex->wbf_n = 0, ex->wbf_fresh = 0;
    if (precision == DS_PRECISION_FP32) {
        ds__exec_free(ex, ex->bfa), ds__exec_free(ex, ex->bfb), ds__exec_free(ex, ex->lt_ws);
        ex->bfa = ex->bfb = NULL, ex->lt_ws = NULL, ex->bf16 = 0, ex->bf16_n = 0;
        return DS_OK;
    }
    if (!ex->lt_ws && !(ex->lt_ws = ds__exec_alloc(ex, DS__LT_WS, 1))) {
        if (ex->failed) { ex->failed = 0; return ds__fail(err, DS_ERR_NOMEM, "precision: cuBLASLt's workspace: %s", ex->msg); }
        return ds__fail(err, DS_ERR_NOMEM, "precision: cuBLASLt's workspace: out of memory");
    }
    if (!ex->bfa || ex->bf16_n < operand_max) {
        ds__exec_free(ex, ex->bfa), ds__exec_free(ex, ex->bfb);
        ex->bfa = (__nv_bfloat16 *)ds__exec_alloc(ex, operand_max, sizeof(__nv_bfloat16));
        ex->bfb = (__nv_bfloat16 *)ds__exec_alloc(ex, operand_max, sizeof(__nv_bfloat16));
        ex->bf16_n = ex->bfa && ex->bfb ? operand_max : 0;
        if (!ex->bf16_n) {
            ds__exec_free(ex, ex->bfa), ds__exec_free(ex, ex->bfb);
            ex->bfa = ex->bfb = NULL, ex->bf16 = 0;
            if (ex->failed) { ex->failed = 0; return ds__fail(err, DS_ERR_NOMEM, "precision: bf16 scratch: %s", ex->msg); }
            return ds__fail(err, DS_ERR_NOMEM, "precision: bf16 scratch: out of memory");
        }
    }
    if (params && n_params) { /* the weights' copy, made by the first linear that reads it */
        if (!(ex->wbf = (__nv_bfloat16 *)ds__exec_alloc(ex, n_params, sizeof(__nv_bfloat16)))) {
            ds__exec_free(ex, ex->bfa), ds__exec_free(ex, ex->bfb);
            ex->bfa = ex->bfb = NULL, ex->bf16 = 0, ex->bf16_n = 0;
            if (ex->failed) { ex->failed = 0; return ds__fail(err, DS_ERR_NOMEM, "precision: the weights' bf16 copy: %s", ex->msg); }
            return ds__fail(err, DS_ERR_NOMEM, "precision: the weights' bf16 copy: out of memory");
        }
        ex->wbf_base = params, ex->wbf_n = n_params;
    }
    ex->bf16 = 1;
    return DS_OK;
}

/* ---- linear: cuBLAS SGEMM on row-major arrays, read as their column-major transposes:
   out^T[OC,N] (+)= W[OC,C] inp^T;  dinp^T[C,N] (+)= W^T dout^T;  dW^T[C,OC] += inp^T dout ---- */
static void ds__linear_forward(ds__exec *ex, ds_float *out, const ds_float *inp, const ds_float *W, size_t N, size_t C, size_t OC,
                               int accumulate) {
    const float one = 1, beta = accumulate ? 1.0f : 0.0f;
    if (ex->bf16) { /* out: fp32, or bf16 where the model stores it so (gate|up, q|k|v; never a sum into the residual) */
        int bo = ds__act_bf16(ex, out);
        if (bo && accumulate) { ds__cu_fail(ex, "linear_forward (bf16)", "a sum into a bf16 activation"); return; }
        ds__gemm_bf16(ex, CUBLAS_OP_T, CUBLAS_OP_N, (int)OC, (int)N, (int)C, ds__bf16_weight(ex, W, OC * C), (int)C,
                      ds__bf16_act(ex, ex->bfa, inp, N * C), (int)C, beta, out, bo ? CUDA_R_16BF : CUDA_R_32F, (int)OC, "linear_forward (bf16)");
        return;
    }
    ds__blas_ok(ex, cublasSgemm(ex->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)OC, (int)N, (int)C, &one, W, (int)C, inp, (int)C, &beta, out, (int)OC),
                "linear_forward (cublasSgemm)");
}
/* BF16 inference models (ds_checkpoint_load_bf16) are the CPU build's for now: ds_model_new
   refuses them here, so these are never reached; they say so if they are. */
static void ds__linear_decode_bf16(ds__exec *ex, ds_float *out, const ds_float *x, const uint16_t *W, size_t C, size_t OC, int accumulate) {
    (void)out, (void)x, (void)W, (void)C, (void)OC, (void)accumulate;
    ds__cu_fail(ex, "linear_decode_bf16", "BF16 inference models run on the CPU build");
}
static void ds__bf16_widen(ds__exec *ex, ds_float *dst, const uint16_t *src, size_t n) {
    (void)dst, (void)src, (void)n;
    ds__cu_fail(ex, "bf16_widen", "BF16 inference models run on the CPU build");
}
static void ds__linear_prefill_bf16(ds__exec *ex, ds_float *out, size_t ldo, const ds_float *inp, const uint16_t *W, size_t N, size_t C,
                                    size_t OC, int accumulate) {
    (void)out, (void)ldo, (void)inp, (void)W, (void)N, (void)C, (void)OC, (void)accumulate;
    ds__cu_fail(ex, "linear_prefill_bf16", "BF16 inference models run on the CPU build");
}
static void ds__linear_backward(ds__exec *ex, ds_float *dinp, int dinp_accumulate, ds_float *dW, const ds_float *dout, const ds_float *inp,
                                const ds_float *W, size_t N, size_t C, size_t OC) {
    const float one = 1, beta = dinp_accumulate ? 1.0f : 0.0f;
    if (ex->bf16) { /* dout in bfa for both products; W from the weights' copy (or bfb), then inp in bfb */
        const __nv_bfloat16 *g = ds__bf16_of(ex, ex->bfa, dout, N * OC);
        if (dinp)
            ds__gemm_bf16(ex, CUBLAS_OP_N, CUBLAS_OP_N, (int)C, (int)N, (int)OC, ds__bf16_weight(ex, W, OC * C), (int)C, g, (int)OC, beta, dinp,
                          CUDA_R_32F, (int)C, "linear_backward (dinp, bf16)");
        ds__gemm_bf16(ex, CUBLAS_OP_N, CUBLAS_OP_T, (int)C, (int)OC, (int)N, ds__bf16_act(ex, ex->bfb, inp, N * C), (int)C, g, (int)OC, 1.0f, dW, CUDA_R_32F, (int)C,
                      "linear_backward (dW, bf16)");
        return;
    }
    if (dinp)
        ds__blas_ok(ex, cublasSgemm(ex->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)C, (int)N, (int)OC, &one, W, (int)C, dout, (int)OC, &beta, dinp, (int)C),
                    "linear_backward (dinp)");
    ds__blas_ok(ex, cublasSgemm(ex->blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)C, (int)OC, (int)N, &one, inp, (int)C, dout, (int)OC, &one, dW, (int)C),
                "linear_backward (dW)");
}

static void ds__residual_forward(ds__exec *ex, ds_float *out, const ds_float *x, size_t n) { ds__copy(ex, out, x, n); }

/* ---- RoPE, rotate_half, in place on the q and k heads of each q|k|v row ---- */
__global__ static void ds__rope_kernel(ds_float *qkv, int bf, const ds_float *cs, const ds_float *sn, size_t N, size_t T, size_t pos0, size_t nh,
                                       size_t hd, size_t stride, int inverse) { /* qkv: bf16 if bf (bf16 mode's q|k|v), computed in fp32 */
    size_t half = hd / 2, i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, n, h, j, t, x;
    ds_float x1, x2, c, s;
    if (i >= N * nh * half) return;
    n = i / (nh * half), h = i / half % nh, j = i % half, t = pos0 + n % T;
    x = n * stride + h * hd;
    c = cs[t * half + j], s = sn[t * half + j], x1 = ds__act_load(qkv, bf, x + j), x2 = ds__act_load(qkv, bf, x + j + half);
    if (!inverse) ds__act_store(qkv, bf, x + j, x1 * c - x2 * s), ds__act_store(qkv, bf, x + j + half, x2 * c + x1 * s);
    else ds__act_store(qkv, bf, x + j, x1 * c + x2 * s), ds__act_store(qkv, bf, x + j + half, x2 * c - x1 * s);
}
static void ds__rope_run(ds__exec *ex, ds_float *qkv, const ds_float *cs, const ds_float *sn, size_t N, size_t T, size_t pos0, size_t H, size_t KV,
                         size_t hd, int inverse) {
    DS__CU_LAUNCH(ds__rope_kernel, ds__blocks(N * (H + KV) * hd / 2), DS__CU_THREADS)(qkv, ds__act_bf16(ex, qkv), cs, sn, N, T, pos0, H + KV, hd,
                                                                                   (H + 2 * KV) * hd, inverse);
    DS__LAUNCHED(ex, "rope");
}

/* one query row's causal scores over keys 0..n-1 into s (scaled q.k), then exp(s - max) in place;
   returns their sum (block-wide, fixed tree): the shared first half of the training and the
   decoding attention */
__device__ static float ds__scores_exp(ds_float *s, const ds_float *q, const ds_float *k0, size_t kstride, size_t n, size_t hd, ds_float scale,
                                       float *sh) {
    ds_float mx = -INFINITY, sum = 0;
    size_t t2, j;
    for (t2 = threadIdx.x; t2 < n; t2 += blockDim.x) {
        const ds_float *k = k0 + t2 * kstride;
        ds_float d = 0;
        for (j = 0; j < hd; j++) d += q[j] * k[j];
        s[t2] = d * scale;
        mx = fmaxf(mx, s[t2]);
    }
    mx = ds__block_max(mx, sh);
    for (t2 = threadIdx.x; t2 < n; t2 += blockDim.x) { s[t2] = expf(s[t2] - mx); sum += s[t2]; }
    return ds__block_sum(sum, sh);
}
/* ---- causal GQA attention, tiled: FlashAttention-2's algorithm (Dao, 2023) in fp32. The T x T
   scores and probabilities never exist in memory: the forward keeps each row's log-sum-exp
   (lse = max + log(sum of exp), B H T values, where the direct form kept P [B,H,T,T]), and the
   backward recomputes P from it tile by tile.
     - A block takes DS__FA_BR query rows of one (b, h); each row has DS__FA_G threads, each
       holding every G-th channel of q and of the output in registers (so hd <= DS__FA_MAXHD).
     - The keys come in tiles of DS__FA_BC rows of K and V in shared memory, only up to the
       block's last row: the tiles past the diagonal are all masked and are skipped (about half
       of the work at large T).
     - Online softmax per tile: the row's running max m and sum l, the output rescaled by
       exp(m_old - m_new) when the max grows; y = o / l at the end.
   Backward, deterministic, no atomics, in two kernels:
     dQ  (a block per BR query rows, as the forward): pass 1 over the key tiles gives
         D_i = sum_j P_ij dP_ij (the CPU's rowsum(P dP), with dP = dY V^T), kept in the scratch;
         pass 2 gives dS = P (dP - D) and dQ = dS K / sqrt(hd).
     dKV (a block per BC key rows of one (b, kv head)): for each head of the group in order, for
         each query tile from the diagonal on: dV += P^T dY, dK += dS^T Q / sqrt(hd).
   The CPU op is the reference (the same math; its sums run in another order). */
#define DS__FA_DPT (DS__FA_MAXHD / DS__FA_G)
#define DS__FA_THREADS (DS__FA_BR * DS__FA_G)
/* the sum over a row's G threads (G consecutive lanes of a warp), the same bits in each */
__device__ static float ds__fa_row_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    return v;
}
/* rows [r0, r0 + n) of one head's q (or K, V, dY: the pointer and row stride say which) into a
   shared tile [rows][MAXHD], rows past n zeroed (shared memory is not initialized: a stale NaN
   times a zero probability would still be NaN) */
__device__ static void ds__fa_load(float *tile, size_t rows, ds__act src, size_t stride, size_t n, size_t hd) {
    size_t e;
    for (e = threadIdx.x; e < rows * hd; e += blockDim.x) {
        size_t r = e / hd, d = e % hd;
        tile[r * DS__FA_MAXHD + d] = r < n ? ds__act_get(src, r * stride + d) : 0.0f;
    }
}
__global__ static void ds__fa_fwd_kernel(ds_float *y, int ybf, ds_float *lse, ds__act qkv, size_t T, size_t H, size_t KV, size_t hd) {
    __shared__ float ks[DS__FA_BC * DS__FA_MAXHD], vs[DS__FA_BC * DS__FA_MAXHD];
    size_t bh = blockIdx.y, b = bh / H, h = bh % H, kvh = h / (H / KV), Q = (H + 2 * KV) * hd;
    size_t r0 = (size_t)blockIdx.x * DS__FA_BR, t = r0 + threadIdx.x / DS__FA_G, g = threadIdx.x % DS__FA_G, k0, jj;
    size_t rend = r0 + DS__FA_BR < T ? r0 + DS__FA_BR : T; /* the keys this block needs: < rend */
    ds__act base = ds__act_at(qkv, b * T * Q);
    float q[DS__FA_DPT], o[DS__FA_DPT], m = -INFINITY, l = 0, scale = (float)(1.0 / sqrt((double)hd));
    int i;
    for (i = 0; i < DS__FA_DPT; i++) {
        size_t d = g + DS__FA_G * (size_t)i;
        q[i] = t < T && d < hd ? ds__act_get(base, t * Q + h * hd + d) : 0.0f, o[i] = 0;
    }
    for (k0 = 0; k0 < rend; k0 += DS__FA_BC) {
        size_t nk = rend - k0 < DS__FA_BC ? rend - k0 : DS__FA_BC;
        float s[DS__FA_BC], mt = m, alpha, ps = 0;
        __syncthreads(); /* the last tile's readers are done */
        ds__fa_load(ks, DS__FA_BC, ds__act_at(base, k0 * Q + H * hd + kvh * hd), Q, nk, hd);
        ds__fa_load(vs, DS__FA_BC, ds__act_at(base, k0 * Q + (H + KV) * hd + kvh * hd), Q, nk, hd);
        __syncthreads();
        for (jj = 0; jj < DS__FA_BC; jj++) {
            float dot = 0;
            for (i = 0; i < DS__FA_DPT; i++) {
                size_t d = g + DS__FA_G * (size_t)i;
                if (d < hd) dot += q[i] * ks[jj * DS__FA_MAXHD + d];
            }
            dot = ds__fa_row_sum(dot) * scale; /* every thread of the row reaches this: no divergence before a shuffle */
            s[jj] = k0 + jj <= t && jj < nk ? dot : -INFINITY;
            mt = fmaxf(mt, s[jj]);
        }
        /* the row's first tile holds key 0 <= t, so mt is finite from there on (rows past T
           have every score finite and are not stored) */
        alpha = expf(m - mt);
        for (i = 0; i < DS__FA_DPT; i++) o[i] *= alpha;
        for (jj = 0; jj < DS__FA_BC; jj++) {
            float p = expf(s[jj] - mt);
            ps += p;
            for (i = 0; i < DS__FA_DPT; i++) {
                size_t d = g + DS__FA_G * (size_t)i;
                if (d < hd) o[i] += p * vs[jj * DS__FA_MAXHD + d];
            }
        }
        l = l * alpha + ps, m = mt;
    }
    if (t >= T) return;
    for (i = 0; i < DS__FA_DPT; i++) {
        size_t d = g + DS__FA_G * (size_t)i;
        if (d < hd) ds__act_store(y, ybf, (b * T + t) * H * hd + h * hd + d, o[i] / l);
    }
    if (g == 0) lse[bh * T + t] = m + logf(l);
}
__global__ static void ds__fa_bwd_dq_kernel(ds_float *dqkv, ds_float *Dsum, const ds_float *dy, ds__act qkv, const ds_float *lse, size_t T,
                                            size_t H, size_t KV, size_t hd) {
    __shared__ float ks[DS__FA_BC * DS__FA_MAXHD], vs[DS__FA_BC * DS__FA_MAXHD];
    size_t bh = blockIdx.y, b = bh / H, h = bh % H, kvh = h / (H / KV), Q = (H + 2 * KV) * hd;
    size_t r0 = (size_t)blockIdx.x * DS__FA_BR, t = r0 + threadIdx.x / DS__FA_G, g = threadIdx.x % DS__FA_G, k0, jj;
    size_t rend = r0 + DS__FA_BR < T ? r0 + DS__FA_BR : T;
    ds__act base = ds__act_at(qkv, b * T * Q);
    float q[DS__FA_DPT], go[DS__FA_DPT], dq[DS__FA_DPT], L = t < T ? lse[bh * T + t] : 0.0f, D = 0, scale = (float)(1.0 / sqrt((double)hd));
    int i, pass;
    for (i = 0; i < DS__FA_DPT; i++) {
        size_t d = g + DS__FA_G * (size_t)i;
        q[i] = t < T && d < hd ? ds__act_get(base, t * Q + h * hd + d) : 0.0f;
        go[i] = t < T && d < hd ? dy[(b * T + t) * H * hd + h * hd + d] : 0.0f;
        dq[i] = 0;
    }
    for (pass = 0; pass < 2; pass++) /* 0: D = rowsum(P dP); 1: dS and dQ */
        for (k0 = 0; k0 < rend; k0 += DS__FA_BC) {
            size_t nk = rend - k0 < DS__FA_BC ? rend - k0 : DS__FA_BC;
            __syncthreads();
            ds__fa_load(ks, DS__FA_BC, ds__act_at(base, k0 * Q + H * hd + kvh * hd), Q, nk, hd);
            ds__fa_load(vs, DS__FA_BC, ds__act_at(base, k0 * Q + (H + KV) * hd + kvh * hd), Q, nk, hd);
            __syncthreads();
            for (jj = 0; jj < DS__FA_BC; jj++) {
                float sd = 0, pd = 0, p, dp;
                for (i = 0; i < DS__FA_DPT; i++) {
                    size_t d = g + DS__FA_G * (size_t)i;
                    if (d < hd) sd += q[i] * ks[jj * DS__FA_MAXHD + d], pd += go[i] * vs[jj * DS__FA_MAXHD + d];
                }
                sd = ds__fa_row_sum(sd), dp = ds__fa_row_sum(pd);
                p = t < T && k0 + jj <= t && jj < nk ? expf(sd * scale - L) : 0.0f;
                if (pass == 0) D += p * dp;
                else {
                    float ds = p * (dp - D);
                    for (i = 0; i < DS__FA_DPT; i++) {
                        size_t d = g + DS__FA_G * (size_t)i;
                        if (d < hd) dq[i] += ds * ks[jj * DS__FA_MAXHD + d];
                    }
                }
            }
        }
    if (t >= T) return;
    for (i = 0; i < DS__FA_DPT; i++) {
        size_t d = g + DS__FA_G * (size_t)i;
        if (d < hd) dqkv[(b * T + t) * Q + h * hd + d] = dq[i] * scale;
    }
    if (g == 0) Dsum[bh * T + t] = D;
}
__global__ static void ds__fa_bwd_dkv_kernel(ds_float *dqkv, const ds_float *Dsum, const ds_float *dy, ds__act qkv, const ds_float *lse,
                                             size_t T, size_t H, size_t KV, size_t hd) {
    __shared__ float qs[DS__FA_BR * DS__FA_MAXHD], gs[DS__FA_BR * DS__FA_MAXHD], ls[DS__FA_BR], ds_[DS__FA_BR];
    size_t bk = blockIdx.y, b = bk / KV, kvh = bk % KV, group = H / KV, Q = (H + 2 * KV) * hd, gh, r0, ii;
    size_t j0 = (size_t)blockIdx.x * DS__FA_BC, j = j0 + threadIdx.x / DS__FA_G, g = threadIdx.x % DS__FA_G;
    ds__act base = ds__act_at(qkv, b * T * Q);
    float k[DS__FA_DPT], v[DS__FA_DPT], dk[DS__FA_DPT], dv[DS__FA_DPT], scale = (float)(1.0 / sqrt((double)hd));
    int i;
    for (i = 0; i < DS__FA_DPT; i++) {
        size_t d = g + DS__FA_G * (size_t)i;
        k[i] = j < T && d < hd ? ds__act_get(base, j * Q + H * hd + kvh * hd + d) : 0.0f;
        v[i] = j < T && d < hd ? ds__act_get(base, j * Q + (H + KV) * hd + kvh * hd + d) : 0.0f;
        dk[i] = dv[i] = 0;
    }
    for (gh = 0; gh < group; gh++) {
        size_t h = kvh * group + gh, bh = b * H + h;
        for (r0 = j0 / DS__FA_BR * DS__FA_BR; r0 < T; r0 += DS__FA_BR) { /* rows before j0 see none of these keys */
            size_t nr = T - r0 < DS__FA_BR ? T - r0 : DS__FA_BR;
            __syncthreads();
            ds__fa_load(qs, DS__FA_BR, ds__act_at(base, r0 * Q + h * hd), Q, nr, hd);
            ds__fa_load(gs, DS__FA_BR, ds__act_f32(dy + (b * T + r0) * H * hd + h * hd), H * hd, nr, hd);
            for (ii = threadIdx.x; ii < DS__FA_BR; ii += blockDim.x) ls[ii] = ii < nr ? lse[bh * T + r0 + ii] : 0.0f, ds_[ii] = ii < nr ? Dsum[bh * T + r0 + ii] : 0.0f;
            __syncthreads();
            for (ii = 0; ii < DS__FA_BR; ii++) {
                float sd = 0, pd = 0, p, dsv;
                for (i = 0; i < DS__FA_DPT; i++) {
                    size_t d = g + DS__FA_G * (size_t)i;
                    if (d < hd) sd += qs[ii * DS__FA_MAXHD + d] * k[i], pd += gs[ii * DS__FA_MAXHD + d] * v[i];
                }
                sd = ds__fa_row_sum(sd), pd = ds__fa_row_sum(pd);
                p = j < T && ii < nr && r0 + ii >= j ? expf(sd * scale - ls[ii]) : 0.0f;
                dsv = p * (pd - ds_[ii]);
                for (i = 0; i < DS__FA_DPT; i++) {
                    size_t d = g + DS__FA_G * (size_t)i;
                    if (d < hd) dv[i] += p * gs[ii * DS__FA_MAXHD + d], dk[i] += dsv * qs[ii * DS__FA_MAXHD + d];
                }
            }
        }
    }
    if (j >= T) return;
    for (i = 0; i < DS__FA_DPT; i++) {
        size_t d = g + DS__FA_G * (size_t)i;
        if (d < hd) dqkv[(b * T + j) * Q + H * hd + kvh * hd + d] = dk[i] * scale, dqkv[(b * T + j) * Q + (H + KV) * hd + kvh * hd + d] = dv[i];
    }
}
/* ---- bf16 mode's attention on the tensor cores: the same FlashAttention-2 algorithm, its
   products on the warp matrix functions (nvcuda::wmma, 16 x 16 x 16 tiles, bf16 operands, fp32
   accumulation), for heads of 16, 32, ..., 128 channels on sm_80 and later (ex->tc); other heads,
   older GPUs and fp32 mode take the kernels above. As in the linears of this mode (§2.4), the
   operands of each product are rounded to bf16 and everything else stays fp32: Q, K, V and dY
   when they enter shared memory, P before P V, dS before dS K and dS^T Q, P^T before P^T dY;
   the scores, the softmax statistics (max, sum, log-sum-exp), D and every accumulator are fp32.
     - A block has 4 warps; a warp owns 16 rows (the forward and dQ: query rows; dKV: key rows),
       so a block takes 64 of them, against tiles of 32 rows of the other side, staged in shared
       memory as bf16 (row stride DS__TC_LDH = 136 values: 16-byte multiples, 32-byte aligned tiles,
       and rows that do not share banks).
     - A warp's own operands (its 16 rows of Q, or of dY, K, V) stay in fragments for the whole
       kernel; its accumulators (O, dQ, dK, dV: hd / 16 fragments each) too. A product's 16 x 32
       result goes through the warp's slice of shared memory, where its lanes (two a row, 16
       columns each) apply the mask, the exponentials and the statistics, and write the bf16
       operand of the next product.
     - The forward's online softmax rescales O when a row's max grows; a fragment's layout is the
       GPU's own, so O goes through the warp's scratch for that (store, scale each row, load),
       skipped when no row of the warp's grew (a vote: the same bits, x 1 being exact).
     - The backward's D = rowsum(dY * Y), from the forward's output (FlashAttention-2's form: the
       CPU's rowsum(P dP) is the same sum, reassociated), one thread a row, in channel order.
     - dQ: a block per 64 query rows, over the key tiles up to its last row; dKV: a block per 64
       key rows of one (b, kv head), over the group's heads in order and the query tiles from its
       first key on. Each output is written once by one warp: no atomics, the same bits every run.
   A tile whose keys all lie past a warp's rows (or queries before its keys) is skipped by that
   warp; the block still loads it for its other warps. */
#define DS__TC_ROWS 64   /* rows a block: 4 warps of 16 */
#define DS__TC_TILE 32   /* rows of the other side a tile */
#define DS__TC_LDH 136   /* the bf16 tiles' row stride (values) */
#define DS__TC_LDS 36    /* the fp32 slices' row stride */
#define DS__TC_LDP 40    /* the bf16 slices' row stride */
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define DS__TC_BUILT 1   /* this compilation has the warp matrix functions for bf16 */
#else
#define DS__TC_BUILT 0
#endif
#ifdef __CUDACC__
#define DS__UNROLL _Pragma("unroll") /* the fragment arrays' indices known at compile time: registers */
#else
#define DS__UNROLL
#endif
namespace ds__wm = nvcuda::wmma;
typedef ds__wm::fragment<ds__wm::matrix_a, 16, 16, 16, __nv_bfloat16, ds__wm::row_major> ds__fr_a;
typedef ds__wm::fragment<ds__wm::matrix_b, 16, 16, 16, __nv_bfloat16, ds__wm::row_major> ds__fr_b;  /* B[k][n] = p[k ldm + n] */
typedef ds__wm::fragment<ds__wm::matrix_b, 16, 16, 16, __nv_bfloat16, ds__wm::col_major> ds__fr_bt; /* B[k][n] = p[n ldm + k]: a tile's rows as B's columns */
typedef ds__wm::fragment<ds__wm::accumulator, 16, 16, 16, float> ds__fr_c;
/* rows [0, n) of a head (src, row stride `stride`) into a bf16 tile of `rows` rows, zeros past n
   (bf16 mode's q|k|v is bf16 already: rounding a bf16 value again is exact) */
__device__ static void ds__tc_load(__nv_bfloat16 *tile, size_t rows, ds__act src, size_t stride, size_t n, size_t hd) {
    size_t e;
    for (e = threadIdx.x; e < rows * hd; e += blockDim.x) {
        size_t r = e / hd, d = e % hd;
        tile[r * DS__TC_LDH + d] = __float2bfloat16(r < n ? ds__act_get(src, r * stride + d) : 0.0f);
    }
}
/* out[16 x 32] (row stride LDS) = A (the warp's 16 rows, NF fragments over the channels) times
   the tile's 32 rows transposed (tile: bf16, row stride LDH) */
template <int NF> __device__ static void ds__tc_rows_by_tile(float *out, const ds__fr_a *A, const __nv_bfloat16 *tile) {
#if DS__TC_BUILT
    int j, f;
    for (j = 0; j < DS__TC_TILE / 16; j++) {
        ds__fr_c c;
        ds__wm::fill_fragment(c, 0.0f);
DS__UNROLL
        for (f = 0; f < NF; f++) {
            ds__fr_bt b;
            ds__wm::load_matrix_sync(b, tile + 16 * j * DS__TC_LDH + 16 * f, DS__TC_LDH);
            ds__wm::mma_sync(c, A[f], b, c);
        }
        ds__wm::store_matrix_sync(out + 16 * j, c, DS__TC_LDS, ds__wm::mem_row_major);
    }
#else
    (void)out, (void)A, (void)tile;
#endif
}
/* acc[f] += P (the warp's 16 x 32 bf16 slice, row stride LDP) times the tile's 32 rows (bf16, LDH),
   channels 16 f .. 16 f + 15 */
template <int NF> __device__ static void ds__tc_slice_by_tile(ds__fr_c *acc, const __nv_bfloat16 *P, const __nv_bfloat16 *tile) {
#if DS__TC_BUILT
    int j, f;
    for (j = 0; j < DS__TC_TILE / 16; j++) {
        ds__fr_a a;
        ds__wm::load_matrix_sync(a, P + 16 * j, DS__TC_LDP);
DS__UNROLL
        for (f = 0; f < NF; f++) {
            ds__fr_b b;
            ds__wm::load_matrix_sync(b, tile + 16 * j * DS__TC_LDH + 16 * f, DS__TC_LDH);
            ds__wm::mma_sync(acc[f], a, b, acc[f]);
        }
    }
#else
    (void)acc, (void)P, (void)tile;
#endif
}
/* the warp's NF fragments of a staged tile's rows [16 w, 16 w + 16) */
template <int NF> __device__ static void ds__tc_own(ds__fr_a *A, const __nv_bfloat16 *tile, unsigned w) {
#if DS__TC_BUILT
    int f;
DS__UNROLL
    for (f = 0; f < NF; f++) ds__wm::load_matrix_sync(A[f], tile + 16 * w * DS__TC_LDH + 16 * f, DS__TC_LDH);
#else
    (void)A, (void)tile, (void)w;
#endif
}
/* an accumulator's 16 x 16 values through the warp's scratch: the lane's 8 of its row (lane / 2)
   are sc[row][8 (lane % 2) ..] after this */
__device__ static void ds__tc_spill(float *sc, const ds__fr_c &c) {
#if DS__TC_BUILT
    ds__wm::store_matrix_sync(sc, c, DS__TC_LDS, ds__wm::mem_row_major);
    __syncwarp();
#else
    (void)sc, (void)c;
#endif
}
template <int NF>
__global__ static void ds__fa_fwd_tc_kernel(ds_float *y, int ybf, ds_float *lse, ds__act qkv, size_t T, size_t H, size_t KV) {
    __shared__ __align__(32) __nv_bfloat16 kv[2 * DS__TC_TILE * DS__TC_LDH]; /* K, V tiles; Q's 64 rows first */
    __shared__ __align__(32) float sc[DS__TC_ROWS * DS__TC_LDS];            /* the warps' scores; O's scratch */
    __shared__ __align__(32) __nv_bfloat16 pb[DS__TC_ROWS * DS__TC_LDP];    /* the warps' P */
    __shared__ float al[DS__TC_ROWS];                                      /* each row's rescale */
#if DS__TC_BUILT
    const size_t hd = 16 * NF, bh = blockIdx.y, b = bh / H, h = bh % H, kvh = h / (H / KV), Q = (H + 2 * KV) * hd;
    const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32, row = lane / 2, half = lane % 2;
    const size_t r0 = (size_t)blockIdx.x * DS__TC_ROWS, rend = r0 + DS__TC_ROWS < T ? r0 + DS__TC_ROWS : T, wr0 = r0 + 16 * w, t = wr0 + row;
    ds__act base = ds__act_at(qkv, b * T * Q);
    float *sw = sc + 16 * w * DS__TC_LDS, m = -INFINITY, l = 0, scale = (float)(1.0 / sqrt((double)hd));
    __nv_bfloat16 *pw = pb + 16 * w * DS__TC_LDP;
    ds__fr_a qf[NF];
    ds__fr_c of[NF];
    size_t k0;
    int f, c;
    ds__tc_load(kv, DS__TC_ROWS, ds__act_at(base, r0 * Q + h * hd), Q, rend - r0, hd);
    __syncthreads();
    ds__tc_own<NF>(qf, kv, w);
DS__UNROLL
    for (f = 0; f < NF; f++) ds__wm::fill_fragment(of[f], 0.0f);
    for (k0 = 0; k0 < rend; k0 += DS__TC_TILE) {
        size_t nk = rend - k0 < DS__TC_TILE ? rend - k0 : DS__TC_TILE;
        __syncthreads(); /* Q's fragments, or the last tile's products, are done with kv */
        ds__tc_load(kv, DS__TC_TILE, ds__act_at(base, k0 * Q + H * hd + kvh * hd), Q, nk, hd);
        ds__tc_load(kv + DS__TC_TILE * DS__TC_LDH, DS__TC_TILE, ds__act_at(base, k0 * Q + (H + KV) * hd + kvh * hd), Q, nk, hd);
        __syncthreads();
        if (wr0 >= rend || k0 > wr0 + 15) continue; /* the warp's rows are past T, or before every key */
        ds__tc_rows_by_tile<NF>(sw, qf, kv);          /* S = Q K^T, 16 x 32 */
        __syncwarp();
        {
            float sv[16], mt = m, ps = 0, alpha;
            for (c = 0; c < 16; c++) {
                size_t key = k0 + 16 * half + (size_t)c;
                sv[c] = key <= t && key < k0 + nk ? sw[row * DS__TC_LDS + 16 * half + c] * scale : -INFINITY;
                mt = fmaxf(mt, sv[c]);
            }
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1)); /* the row's two lanes */
            /* every tile a warp takes holds key k0 <= its first row: mt is finite; alpha is 0 on the first */
            alpha = expf(m - mt);
            for (c = 0; c < 16; c++) {
                float p = expf(sv[c] - mt);
                ps += p;
                pw[row * DS__TC_LDP + 16 * half + c] = __float2bfloat16(p);
            }
            ps += __shfl_xor_sync(0xffffffffu, ps, 1);
            l = l * alpha + ps, m = mt;
            if (half == 0) al[16 * w + row] = alpha;
        }
        __syncwarp();
        /* O *= alpha, row by row, through the scratch (the scores are spent); not when no row's max
           grew (alpha = 1 in every row: the same bits) or on the warp's first tile (O = 0) */
        if (k0 > 0 && __any_sync(0xffffffffu, al[16 * w + row] != 1.0f)) {
DS__UNROLL
            for (f = 0; f < NF; f++) {
                ds__tc_spill(sw, of[f]);
                for (c = 0; c < 8; c++) sw[row * DS__TC_LDS + 8 * half + c] *= al[16 * w + row];
                __syncwarp();
                ds__wm::load_matrix_sync(of[f], sw, DS__TC_LDS, ds__wm::mem_row_major);
                __syncwarp();
            }
        }
        ds__tc_slice_by_tile<NF>(of, pw, kv + DS__TC_TILE * DS__TC_LDH); /* O += P V */
        __syncwarp();
    }
DS__UNROLL
    for (f = 0; f < NF; f++) {
        ds__tc_spill(sw, of[f]);
        if (t < T)
            for (c = 0; c < 8; c++)
                ds__act_store(y, ybf, (b * T + t) * H * hd + h * hd + 16 * (size_t)f + 8 * half + (size_t)c, sw[row * DS__TC_LDS + 8 * half + c] / l);
        __syncwarp();
    }
    if (t < T && half == 0) lse[bh * T + t] = m + logf(l);
#else
    (void)y, (void)ybf, (void)lse, (void)qkv, (void)T, (void)H, (void)KV, (void)kv, (void)sc, (void)pb, (void)al;
#endif
}
/* D[(b H + h) T + t] = dY[b, t, h, :] . Y[b, t, h, :], channels in order */
__global__ static void ds__fa_dsum_kernel(ds_float *D, const ds_float *dy, ds__act y, size_t B, size_t T, size_t H, size_t hd) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, bh = i / T, t = i % T, d, o;
    const ds_float *a;
    float s = 0;
    if (i >= B * H * T) return;
    o = ((bh / H) * T + t) * H * hd + (bh % H) * hd, a = dy + o;
    for (d = 0; d < hd; d++) s += a[d] * ds__act_get(y, o + d);
    D[i] = s;
}
template <int NF>
__global__ static void ds__fa_bwd_dq_tc_kernel(ds_float *dqkv, const ds_float *Dsum, const ds_float *dy, ds__act qkv, const ds_float *lse,
                                               size_t T, size_t H, size_t KV) {
    __shared__ __align__(32) __nv_bfloat16 kv[2 * DS__TC_TILE * DS__TC_LDH]; /* K, V tiles; Q's and dY's 64 rows first */
    __shared__ __align__(32) float sc[DS__TC_ROWS * DS__TC_LDS], dp[DS__TC_ROWS * DS__TC_LDS];
    __shared__ __align__(32) __nv_bfloat16 pb[DS__TC_ROWS * DS__TC_LDP]; /* the warps' dS */
#if DS__TC_BUILT
    const size_t hd = 16 * NF, bh = blockIdx.y, b = bh / H, h = bh % H, kvh = h / (H / KV), Q = (H + 2 * KV) * hd;
    const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32, row = lane / 2, half = lane % 2;
    const size_t r0 = (size_t)blockIdx.x * DS__TC_ROWS, rend = r0 + DS__TC_ROWS < T ? r0 + DS__TC_ROWS : T, wr0 = r0 + 16 * w, t = wr0 + row;
    ds__act base = ds__act_at(qkv, b * T * Q);
    float *sw = sc + 16 * w * DS__TC_LDS, *dw = dp + 16 * w * DS__TC_LDS, scale = (float)(1.0 / sqrt((double)hd));
    float L = t < T ? lse[bh * T + t] : 0.0f, D = t < T ? Dsum[bh * T + t] : 0.0f;
    __nv_bfloat16 *pw = pb + 16 * w * DS__TC_LDP;
    ds__fr_a qf[NF], gf[NF];
    ds__fr_c dq[NF];
    size_t k0;
    int f, c;
    ds__tc_load(kv, DS__TC_ROWS, ds__act_at(base, r0 * Q + h * hd), Q, rend - r0, hd);
    __syncthreads();
    ds__tc_own<NF>(qf, kv, w);
    __syncthreads();
    ds__tc_load(kv, DS__TC_ROWS, ds__act_f32(dy + (b * T + r0) * H * hd + h * hd), H * hd, rend - r0, hd);
    __syncthreads();
    ds__tc_own<NF>(gf, kv, w);
DS__UNROLL
    for (f = 0; f < NF; f++) ds__wm::fill_fragment(dq[f], 0.0f);
    for (k0 = 0; k0 < rend; k0 += DS__TC_TILE) {
        size_t nk = rend - k0 < DS__TC_TILE ? rend - k0 : DS__TC_TILE;
        __syncthreads();
        ds__tc_load(kv, DS__TC_TILE, ds__act_at(base, k0 * Q + H * hd + kvh * hd), Q, nk, hd);
        ds__tc_load(kv + DS__TC_TILE * DS__TC_LDH, DS__TC_TILE, ds__act_at(base, k0 * Q + (H + KV) * hd + kvh * hd), Q, nk, hd);
        __syncthreads();
        if (wr0 >= rend || k0 > wr0 + 15) continue;
        ds__tc_rows_by_tile<NF>(sw, qf, kv);                          /* S = Q K^T */
        ds__tc_rows_by_tile<NF>(dw, gf, kv + DS__TC_TILE * DS__TC_LDH); /* dP = dY V^T */
        __syncwarp();
        for (c = 0; c < 16; c++) {
            size_t key = k0 + 16 * half + (size_t)c, e = row * DS__TC_LDS + 16 * half + (size_t)c;
            float p = key <= t && key < k0 + nk ? expf(sw[e] * scale - L) : 0.0f;
            pw[row * DS__TC_LDP + 16 * half + c] = __float2bfloat16(p * (dw[e] - D)); /* dS */
        }
        __syncwarp();
        ds__tc_slice_by_tile<NF>(dq, pw, kv); /* dQ += dS K */
        __syncwarp();
    }
DS__UNROLL
    for (f = 0; f < NF; f++) {
        ds__tc_spill(sw, dq[f]);
        if (t < T)
            for (c = 0; c < 8; c++) dqkv[(b * T + t) * Q + h * hd + 16 * (size_t)f + 8 * half + (size_t)c] = sw[row * DS__TC_LDS + 8 * half + c] * scale;
        __syncwarp();
    }
#else
    (void)dqkv, (void)Dsum, (void)dy, (void)qkv, (void)lse, (void)T, (void)H, (void)KV, (void)kv, (void)sc, (void)dp, (void)pb;
#endif
}
template <int NF>
__global__ static void ds__fa_bwd_dkv_tc_kernel(ds_float *dqkv, const ds_float *Dsum, const ds_float *dy, ds__act qkv, const ds_float *lse,
                                                size_t T, size_t H, size_t KV) {
    __shared__ __align__(32) __nv_bfloat16 qg[2 * DS__TC_TILE * DS__TC_LDH]; /* Q, dY tiles; K's and V's 64 rows first */
    __shared__ __align__(32) float sc[DS__TC_ROWS * DS__TC_LDS], dp[DS__TC_ROWS * DS__TC_LDS];
    __shared__ __align__(32) __nv_bfloat16 pb[DS__TC_ROWS * DS__TC_LDP], db[DS__TC_ROWS * DS__TC_LDP]; /* the warps' P^T, dS^T */
    __shared__ float ls[DS__TC_TILE], dsm[DS__TC_TILE];
#if DS__TC_BUILT
    const size_t hd = 16 * NF, bk = blockIdx.y, b = bk / KV, kvh = bk % KV, group = H / KV, Q = (H + 2 * KV) * hd;
    const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32, row = lane / 2, half = lane % 2;
    const size_t j0 = (size_t)blockIdx.x * DS__TC_ROWS, jend = j0 + DS__TC_ROWS < T ? j0 + DS__TC_ROWS : T, wk0 = j0 + 16 * w, key = wk0 + row;
    ds__act base = ds__act_at(qkv, b * T * Q);
    float *sw = sc + 16 * w * DS__TC_LDS, *dw = dp + 16 * w * DS__TC_LDS, scale = (float)(1.0 / sqrt((double)hd));
    __nv_bfloat16 *pw = pb + 16 * w * DS__TC_LDP, *gw = db + 16 * w * DS__TC_LDP;
    ds__fr_a kf[NF], vf[NF];
    ds__fr_c dk[NF], dv[NF];
    size_t gh, r0, i;
    int f, c;
    ds__tc_load(qg, DS__TC_ROWS, ds__act_at(base, j0 * Q + H * hd + kvh * hd), Q, jend - j0, hd);
    __syncthreads();
    ds__tc_own<NF>(kf, qg, w);
    __syncthreads();
    ds__tc_load(qg, DS__TC_ROWS, ds__act_at(base, j0 * Q + (H + KV) * hd + kvh * hd), Q, jend - j0, hd);
    __syncthreads();
    ds__tc_own<NF>(vf, qg, w);
DS__UNROLL
    for (f = 0; f < NF; f++) ds__wm::fill_fragment(dk[f], 0.0f), ds__wm::fill_fragment(dv[f], 0.0f);
    for (gh = 0; gh < group; gh++) {
        size_t hq = kvh * group + gh, bh = b * H + hq;
        for (r0 = j0; r0 < T; r0 += DS__TC_TILE) { /* queries before j0 see none of these keys */
            size_t nr = T - r0 < DS__TC_TILE ? T - r0 : DS__TC_TILE;
            __syncthreads();
            ds__tc_load(qg, DS__TC_TILE, ds__act_at(base, r0 * Q + hq * hd), Q, nr, hd);
            ds__tc_load(qg + DS__TC_TILE * DS__TC_LDH, DS__TC_TILE, ds__act_f32(dy + (b * T + r0) * H * hd + hq * hd), H * hd, nr, hd);
            for (i = threadIdx.x; i < DS__TC_TILE; i += blockDim.x) ls[i] = i < nr ? lse[bh * T + r0 + i] : 0.0f, dsm[i] = i < nr ? Dsum[bh * T + r0 + i] : 0.0f;
            __syncthreads();
            if (wk0 >= jend || r0 + DS__TC_TILE - 1 < wk0) continue; /* the warp's keys are past T, or after every query */
            ds__tc_rows_by_tile<NF>(sw, kf, qg);                          /* S^T = K Q^T, 16 keys x 32 queries */
            ds__tc_rows_by_tile<NF>(dw, vf, qg + DS__TC_TILE * DS__TC_LDH); /* dP^T = V dY^T */
            __syncwarp();
            for (c = 0; c < 16; c++) {
                size_t qi = 16 * half + (size_t)c, e = row * DS__TC_LDS + qi;
                float p = key < jend && r0 + qi >= key && qi < nr ? expf(sw[e] * scale - ls[qi]) : 0.0f;
                pw[row * DS__TC_LDP + qi] = __float2bfloat16(p);
                gw[row * DS__TC_LDP + qi] = __float2bfloat16(p * (dw[e] - dsm[qi])); /* dS^T */
            }
            __syncwarp();
            ds__tc_slice_by_tile<NF>(dv, pw, qg + DS__TC_TILE * DS__TC_LDH); /* dV += P^T dY */
            ds__tc_slice_by_tile<NF>(dk, gw, qg);                           /* dK += dS^T Q */
            __syncwarp();
        }
    }
DS__UNROLL
    for (f = 0; f < NF; f++) {
        ds__tc_spill(sw, dk[f]);
        if (key < jend)
            for (c = 0; c < 8; c++) dqkv[(b * T + key) * Q + H * hd + kvh * hd + 16 * (size_t)f + 8 * half + (size_t)c] = sw[row * DS__TC_LDS + 8 * half + c] * scale;
        __syncwarp();
        ds__tc_spill(sw, dv[f]);
        if (key < jend)
            for (c = 0; c < 8; c++) dqkv[(b * T + key) * Q + (H + KV) * hd + kvh * hd + 16 * (size_t)f + 8 * half + (size_t)c] = sw[row * DS__TC_LDS + 8 * half + c];
        __syncwarp();
    }
#else
    (void)dqkv, (void)Dsum, (void)dy, (void)qkv, (void)lse, (void)T, (void)H, (void)KV, (void)qg, (void)sc, (void)dp, (void)pb, (void)db, (void)ls, (void)dsm;
#endif
}
/* the kernels for a head of 16 nf channels, nf = 1..8 */
#define DS__TC_SWITCH(nf, X) \
    switch (nf) { \
    case 1: X(1); break; case 2: X(2); break; case 3: X(3); break; case 4: X(4); break; \
    case 5: X(5); break; case 6: X(6); break; case 7: X(7); break; default: X(8); break; \
    }
/* bf16 mode's attention on the tensor cores? -DDS_CUDA_FP32_ATTENTION keeps it on the fp32 kernels
   (an A/B of the two, or a way around a tensor-core kernel a GPU proves wrong) */
static int ds__attention_tc(const ds__exec *ex, size_t hd) {
#ifdef DS_CUDA_FP32_ATTENTION
    (void)ex, (void)hd;
    return 0;
#else
    return ex->bf16 && ex->tc && hd % 16 == 0 && hd <= DS__FA_MAXHD;
#endif
}
static void ds__attention_forward(ds__exec *ex, ds_float *y, ds_float *att, const ds_float *qkv, size_t B, size_t T, size_t H, size_t KV,
                                  size_t hd) {
    dim3 grid((unsigned)((T + DS__FA_BR - 1) / DS__FA_BR), (unsigned)(B * H));
    ds__act q = ds__act_of(ex, qkv);
    int ybf = ds__act_bf16(ex, y);
    if (hd > DS__FA_MAXHD) { ds__cu_fail(ex, "attention_forward", "a head of more than 128 channels"); return; }
    if (ds__attention_tc(ex, hd)) {
        dim3 gt((unsigned)((T + DS__TC_ROWS - 1) / DS__TC_ROWS), (unsigned)(B * H));
#define DS__TC_FWD(n) DS__CU_LAUNCH(ds__fa_fwd_tc_kernel<n>, gt, 128)(y, ybf, att, q, T, H, KV)
        DS__TC_SWITCH(hd / 16, DS__TC_FWD)
#undef DS__TC_FWD
        DS__LAUNCHED(ex, "attention_forward (tensor cores)");
        return;
    }
    DS__CU_LAUNCH(ds__fa_fwd_kernel, grid, DS__FA_THREADS)(y, ybf, att, q, T, H, KV, hd);
    DS__LAUNCHED(ex, "attention_forward");
}
/* y: the forward's output (the tensor-core path's D = rowsum(dY * Y); the fp32 kernels sum P dP) */
static void ds__attention_backward(ds__exec *ex, ds_float *dqkv, const ds_float *dy, const ds_float *y, const ds_float *qkv, const ds_float *att,
                                   size_t B, size_t T, size_t H, size_t KV, size_t hd) {
    dim3 g1((unsigned)((T + DS__FA_BR - 1) / DS__FA_BR), (unsigned)(B * H)), g2((unsigned)((T + DS__FA_BC - 1) / DS__FA_BC), (unsigned)(B * KV));
    if (hd > DS__FA_MAXHD) { ds__cu_fail(ex, "attention_backward", "a head of more than 128 channels"); return; }
    ds__act q = ds__act_of(ex, qkv);
    if (ds__attention_work(B, T, H, KV, hd) > ex->work_n) { ds__cu_fail(ex, "attention_backward", "scratch too small"); return; }
    if (ds__attention_tc(ex, hd)) {
        dim3 gq((unsigned)((T + DS__TC_ROWS - 1) / DS__TC_ROWS), (unsigned)(B * H)), gk((unsigned)((T + DS__TC_ROWS - 1) / DS__TC_ROWS), (unsigned)(B * KV));
        DS__CU_LAUNCH(ds__fa_dsum_kernel, ds__blocks(B * H * T), DS__CU_THREADS)(ex->work, dy, ds__act_of(ex, y), B, T, H, hd);
        DS__LAUNCHED(ex, "attention_backward (D)");
#define DS__TC_DQ(n) DS__CU_LAUNCH(ds__fa_bwd_dq_tc_kernel<n>, gq, 128)(dqkv, ex->work, dy, q, att, T, H, KV)
        DS__TC_SWITCH(hd / 16, DS__TC_DQ)
#undef DS__TC_DQ
        DS__LAUNCHED(ex, "attention_backward (dQ, tensor cores)");
#define DS__TC_DKV(n) DS__CU_LAUNCH(ds__fa_bwd_dkv_tc_kernel<n>, gk, 128)(dqkv, ex->work, dy, q, att, T, H, KV)
        DS__TC_SWITCH(hd / 16, DS__TC_DKV)
#undef DS__TC_DKV
        DS__LAUNCHED(ex, "attention_backward (dK, dV, tensor cores)");
        return;
    }
    DS__CU_LAUNCH(ds__fa_bwd_dq_kernel, g1, DS__FA_THREADS)(dqkv, ex->work, dy, q, att, T, H, KV, hd);
    DS__LAUNCHED(ex, "attention_backward (dQ)");
    DS__CU_LAUNCH(ds__fa_bwd_dkv_kernel, g2, DS__FA_BC * DS__FA_G)(dqkv, ex->work, dy, q, att, T, H, KV, hd);
    DS__LAUNCHED(ex, "attention_backward (dK, dV)");
}

/* ---- decoding: the KV cache and attention over it, one block per head ---- */
/* one position's k and v (from a q|k|v row, fp32 or bf16) into the fp32 cache */
__global__ static void ds__kv_store_kernel(ds_float *kc, ds_float *vc, ds__act kv, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) kc[i] = ds__act_get(kv, i), vc[i] = ds__act_get(kv, n + i);
}
static void ds__kv_store(ds__exec *ex, ds_float *kc, ds_float *vc, const ds_float *qkv, size_t pos, size_t H, size_t KV, size_t hd) {
    DS__CU_LAUNCH(ds__kv_store_kernel, ds__blocks(KV * hd), DS__CU_THREADS)(kc + pos * KV * hd, vc + pos * KV * hd, ds__act_at(ds__act_of(ex, qkv), H * hd),
                                                                           KV * hd);
    DS__LAUNCHED(ex, "kv_store");
}
__global__ static void ds__attn_decode_kernel(ds_float *y, int ybf, ds_float *scr, ds__act qkv, const ds_float *kc, const ds_float *vc, size_t pos,
                                              size_t H, size_t KV, size_t hd) {
    __shared__ float sh[32], qs[DS__FA_MAXHD]; /* a bf16 q, widened (heads of at most 128 channels then) */
    size_t h = blockIdx.x, kvh = h / (H / KV), t, j;
    const ds_float *q = qkv.bf ? qs : qkv.p + h * hd;
    if (qkv.bf) {
        for (j = threadIdx.x; j < hd; j += blockDim.x) qs[j] = ds__act_get(qkv, h * hd + j);
        __syncthreads();
    }
    ds_float *att = scr + h * (pos + 1), scale = (ds_float)(1.0 / sqrt((double)hd));
    ds_float sum = ds__scores_exp(att, q, kc + kvh * hd, KV * hd, pos + 1, hd, scale, sh);
    __syncthreads();
    for (j = threadIdx.x; j < hd; j += blockDim.x) {
        ds_float acc = 0;
        for (t = 0; t <= pos; t++) acc += att[t] / sum * vc[t * KV * hd + kvh * hd + j];
        ds__act_store(y, ybf, h * hd + j, acc);
    }
}
static void ds__attention_decode(ds__exec *ex, ds_float *y, const ds_float *qkv, const ds_float *kc, const ds_float *vc, size_t pos, size_t H,
                                 size_t KV, size_t hd) {
    if (H * (pos + 1) > ex->work_n) { ds__cu_fail(ex, "attention_decode", "scratch too small"); return; }
    if (ds__act_bf16(ex, qkv) && hd > DS__FA_MAXHD) { ds__cu_fail(ex, "attention_decode", "a bf16 head of more than 128 channels"); return; }
    DS__CU_LAUNCH(ds__attn_decode_kernel, (unsigned)H, 128)(y, ds__act_bf16(ex, y), ex->work, ds__act_of(ex, qkv), kc, vc, pos, H, KV, hd);
    DS__LAUNCHED(ex, "attention_decode");
}

/* ---- SwiGLU on the fused gate|up rows ---- */
/* h and gu: floats, or (bf = 1, bf16 mode) bf16 values, which SwiGLU reads and writes in fp32 */
__global__ static void ds__swiglu_fwd_kernel(ds_float *h, int bf, const ds_float *gu, size_t N, size_t F) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, n, f;
    ds_float g;
    if (i >= N * F) return;
    n = i / F, f = i % F, g = ds__act_load(gu, bf, n * 2 * F + f);
    ds__act_store(h, bf, i, g / (1 + expf(-g)) * ds__act_load(gu, bf, n * 2 * F + F + f));
}
__global__ static void ds__swiglu_bwd_kernel(ds_float *dgu, const ds_float *dh, const ds_float *gu, int bf, size_t N, size_t F) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, n, f;
    ds_float g, u, sg;
    if (i >= N * F) return;
    n = i / F, f = i % F, g = ds__act_load(gu, bf, n * 2 * F + f), u = ds__act_load(gu, bf, n * 2 * F + F + f), sg = 1 / (1 + expf(-g));
    dgu[n * 2 * F + F + f] = dh[i] * g * sg;
    dgu[n * 2 * F + f] = dh[i] * u * sg * (1 + g * (1 - sg));
}
static void ds__swiglu_forward(ds__exec *ex, ds_float *h, const ds_float *gu, size_t N, size_t F) {
    int bf = ds__act_bf16(ex, h);
    if (bf != ds__act_bf16(ex, gu)) { ds__cu_fail(ex, "swiglu_forward", "gate|up and h in different formats"); return; }
    DS__CU_LAUNCH(ds__swiglu_fwd_kernel, ds__blocks(N * F), DS__CU_THREADS)(h, bf, gu, N, F);
    DS__LAUNCHED(ex, "swiglu_forward");
}
static void ds__swiglu_backward(ds__exec *ex, ds_float *dgu, const ds_float *dh, const ds_float *gu, size_t N, size_t F) {
    DS__CU_LAUNCH(ds__swiglu_bwd_kernel, ds__blocks(N * F), DS__CU_THREADS)(dgu, dh, gu, ds__act_bf16(ex, gu), N, F);
    DS__LAUNCHED(ex, "swiglu_backward");
}

/* ---- softmax cross-entropy, one block per token row; the backward overwrites the logits with
   their gradient, c_n = scale dloss[n] (a row of exact zeros when c_n = 0) ---- */
__global__ static void ds__xent_fwd_kernel(ds_float *losses, const ds_float *logits, const int32_t *targets, size_t V) {
    __shared__ float sh[32];
    const ds_float *l = logits + (size_t)blockIdx.x * V;
    ds_float mx = -INFINITY, sum = 0;
    size_t i;
    for (i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, l[i]);
    mx = ds__block_max(mx, sh);
    for (i = threadIdx.x; i < V; i += blockDim.x) sum += expf(l[i] - mx);
    sum = ds__block_sum(sum, sh);
    if (threadIdx.x == 0) losses[blockIdx.x] = mx + logf(sum) - l[targets[blockIdx.x]];
}
__global__ static void ds__xent_bwd_kernel(ds_float *logits, const int32_t *targets, const ds_float *dloss, double scale, size_t V) {
    __shared__ float sh[32];
    ds_float *l = logits + (size_t)blockIdx.x * V, mx = -INFINITY, sum = 0;
    ds_float c = (ds_float)(scale * (dloss ? (double)dloss[blockIdx.x] : 1.0));
    size_t i;
    if (c == 0) {
        for (i = threadIdx.x; i < V; i += blockDim.x) l[i] = 0;
        return;
    }
    for (i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, l[i]);
    mx = ds__block_max(mx, sh);
    for (i = threadIdx.x; i < V; i += blockDim.x) sum += expf(l[i] - mx);
    sum = ds__block_sum(sum, sh);
    for (i = threadIdx.x; i < V; i += blockDim.x) l[i] = expf(l[i] - mx) / sum * c - (i == (size_t)targets[blockIdx.x] ? c : 0);
}
static void ds__crossentropy_forward(ds__exec *ex, ds_float *losses, const ds_float *logits, const int32_t *targets, size_t N, size_t V) {
    DS__CU_LAUNCH(ds__xent_fwd_kernel, (unsigned)N, DS__CU_THREADS)(losses, logits, targets, V);
    DS__LAUNCHED(ex, "crossentropy_forward");
}
static void ds__crossentropy_backward(ds__exec *ex, ds_float *logits, const int32_t *targets, const ds_float *dloss, double scale, size_t N,
                                      size_t V) {
    DS__CU_LAUNCH(ds__xent_bwd_kernel, (unsigned)N, DS__CU_THREADS)(logits, targets, dloss, scale, V);
    DS__LAUNCHED(ex, "crossentropy_backward");
}

/* ---- AdamW, elementwise, one launch per tensor (its decay flag), PyTorch's order of operations ---- */
typedef struct ds__adamw_hp { double lr, b1, b2, eps, wd, bc1, bc2, clip; } ds__adamw_hp;
/* wb (bf16 mode): the weights' bf16 copy of p, written with the updated value (NULL: none) */
__global__ static void ds__adamw_kernel(ds_float *p, const ds_float *g, ds_float *m, ds_float *v, __nv_bfloat16 *wb, size_t n, ds_float decay,
                                        ds_float b1, ds_float b2, ds_float step, ds_float bc2s, ds_float eps, ds_float clip) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        DS__ADAMW_ELEMENT(ds_float, p, g, m, v, i, decay, b1, b2, step, bc2s, eps, clip, sqrtf);
        if (wb) wb[i] = __float2bfloat16(p[i]);
    }
}
static void ds__adamw_update(ds__exec *ex, ds_float *p, const ds_float *g, ds_float *m, ds_float *v, const ds_tensor *t, int n_tensors,
                             size_t lo, size_t hi, const ds__adamw_hp *hp) {
    int k;
    __nv_bfloat16 *wb = ex->wbf && p == ex->wbf_base && ex->wbf_fresh ? ex->wbf : NULL; /* a stale copy is redone whole later */
    if (ex->wbf && (lo != 0 || hi != ex->wbf_n)) ex->wbf_fresh = 0; /* a slice: the others come from other ranks */
    for (k = 0; k < n_tensors; k++) { /* each tensor's part of [lo, hi); g, m, v hold only that range */
        size_t b = t[k].offset > lo ? t[k].offset : lo, e = t[k].offset + t[k].numel < hi ? t[k].offset + t[k].numel : hi;
        if (b >= e) continue;
        DS__CU_LAUNCH(ds__adamw_kernel, ds__blocks(e - b), DS__CU_THREADS)(p + b, g + (b - lo), m + (b - lo), v + (b - lo), wb ? wb + b : NULL, e - b,
                                                                (ds_float)(1.0 - hp->lr * (t[k].decay ? hp->wd : 0.0)), (ds_float)hp->b1,
                                                                (ds_float)hp->b2, (ds_float)(hp->lr / hp->bc1), (ds_float)sqrt(hp->bc2),
                                                                (ds_float)hp->eps, (ds_float)hp->clip);
        if (!DS__LAUNCHED(ex, "adamw_update")) return;
    }
}

#endif /* DEEPSEEK_CUDA_CUH */
