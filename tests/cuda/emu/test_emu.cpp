/* test_emu.cpp - the CPU emulator of CUDA (cuda_runtime.h, cublas_v2.h here) against what a GPU
   does, so that "the CUDA tests pass on the emulator" means something: barriers, shuffles and
   shared memory behave as CUDA specifies, and the faults a GPU would hit (a __syncthreads in
   divergent code, a host pointer handed to a kernel, a bad launch) are reported, not passed.
   Usage: build/cuda_emu/test_emu */
#include "cuda_runtime.h"
#include "cublas_v2.h"
#include "mma.h"
#include "cublasLt.h"
#include <cstdio>

static int g_pass, g_fail;
#define EXPECT(c)                                                                          \
    do {                                                                                   \
        if (c) g_pass++;                                                                   \
        else { g_fail++; fprintf(stderr, "  test_emu.cpp:%d: failed: %s\n", __LINE__, #c); } \
    } while (0)
static void reset(void) { ds_emu.sticky = cudaSuccess, ds_emu.last = cudaSuccess; }

/* out[b] = sum of in[b * n + i] over the block: a shared-memory tree with __syncthreads */
__global__ static void k_tree(float *out, const float *in) {
    __shared__ float sh[256];
    unsigned t = threadIdx.x, k;
    sh[t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (k = blockDim.x / 2; k > 0; k /= 2) {
        if (t < k) sh[t] += sh[t + k];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = sh[0];
}
/* every lane gets its warp's sum by the xor butterfly */
__global__ static void k_warp(float *out, const float *in) {
    float v = in[threadIdx.x];
    int o;
    for (o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    out[threadIdx.x] = v;
}
/* the votes: lane 5 alone true (any, not all); every lane true (both); none (neither) */
__global__ static void k_vote(float *out) {
    unsigned t = threadIdx.x;
    out[t] = (float)(__any_sync(0xffffffffu, t % 32 == 5) + 2 * __all_sync(0xffffffffu, t % 32 == 5) + 4 * __all_sync(0xffffffffu, t < 1024) +
                     8 * __any_sync(0xffffffffu, t > 1024));
}
/* half the block at one barrier, half at another: undefined in CUDA (a hang, or garbage) */
__global__ static void k_divergent(float *out) {
    if (threadIdx.x < blockDim.x / 2) {
        out[threadIdx.x] = 1;
        __syncthreads();
        out[threadIdx.x] += out[0];
    } else {
        out[threadIdx.x] = 2;
        __syncthreads();
        out[threadIdx.x] *= out[1];
    }
}
/* exited threads do not hold up a barrier (as on sm_70 and later) */
__global__ static void k_early_exit(float *out, unsigned n) {
    __shared__ float sh[64];
    if (threadIdx.x >= n) return;
    sh[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = sh[n - 1 - threadIdx.x];
}
/* a race: each thread reads what another warp writes, with no barrier between; in thread order
   the lower warps write first, so only a schedule that lets a later warp run ahead shows it */
__global__ static void k_race(float *out) {
    __shared__ float sh[128];
    unsigned t = threadIdx.x;
    sh[t] = -1;
    __syncthreads();
    sh[t] = (float)t;
    out[blockIdx.x * 128 + t] = sh[t >= 32 ? t - 32 : t]; /* a __syncthreads belongs before this read */
}
__global__ static void k_write(float *out) { out[blockIdx.y * gridDim.x * blockDim.x + blockIdx.x * blockDim.x + threadIdx.x] = (float)blockIdx.y; }

/* the warp matrix functions (mma.h): out = A B + C for 16 x 16 tiles, A row-major and B either
   way from shared memory, C loaded from global memory column-major, D stored both ways */
namespace wm = nvcuda::wmma;
__global__ static void k_mma(float *out, const float *in, int bcol) {
    __shared__ __align__(32) __nv_bfloat16 a[16 * 24], b[16 * 24];
    unsigned t = threadIdx.x, e;
    wm::fragment<wm::matrix_a, 16, 16, 16, __nv_bfloat16, wm::row_major> fa;
    wm::fragment<wm::matrix_b, 16, 16, 16, __nv_bfloat16, wm::row_major> fb;
    wm::fragment<wm::matrix_b, 16, 16, 16, __nv_bfloat16, wm::col_major> fbt;
    wm::fragment<wm::accumulator, 16, 16, 16, float> c;
    for (e = t; e < 256; e += 32) a[e / 16 * 24 + e % 16] = __float2bfloat16(in[e]), b[e / 16 * 24 + e % 16] = __float2bfloat16(in[256 + e]);
    __syncwarp();
    wm::load_matrix_sync(fa, a, 24);
    wm::load_matrix_sync(c, in + 512, 16, wm::mem_col_major);
    if (bcol) wm::load_matrix_sync(fbt, b, 24), wm::mma_sync(c, fa, fbt, c);
    else wm::load_matrix_sync(fb, b, 24), wm::mma_sync(c, fa, fb, c);
    wm::store_matrix_sync(out, c, 16, wm::mem_row_major);
    wm::store_matrix_sync(out + 256, c, 16, wm::mem_col_major);
}
/* what a GPU does not allow: a pointer off 32 bytes; ldm not a multiple of 16 bytes; half the warp
   in the call; lanes passing different pointers */
__global__ static void k_mma_bad(const float *in, int how) {
    __shared__ __align__(32) __nv_bfloat16 a[32 * 24];
    wm::fragment<wm::matrix_a, 16, 16, 16, __nv_bfloat16, wm::row_major> fa;
    wm::fragment<wm::accumulator, 16, 16, 16, float> c;
    unsigned e;
    for (e = threadIdx.x; e < 32 * 24; e += 32) a[e] = __float2bfloat16(0.0f);
    __syncwarp();
    if (how == 0) wm::load_matrix_sync(fa, a + 8, 24);
    if (how == 1) wm::load_matrix_sync(fa, a, 20);
    if (how == 2 && threadIdx.x < 16) wm::load_matrix_sync(c, in, 16, wm::mem_row_major);
    if (how == 3) wm::load_matrix_sync(fa, a + (threadIdx.x % 2) * 16 * 24, 24);
}

int main(void) {
    float h[1024], r[1024], *d = NULL, *o = NULL;
    unsigned i;
    cublasHandle_t blas;
    for (i = 0; i < 1024; i++) h[i] = (float)(i % 7) - 3.0f;
    EXPECT(cudaMalloc(&d, sizeof h) == cudaSuccess && cudaMalloc(&o, sizeof h) == cudaSuccess);
    {
        float x;
        EXPECT(cudaMemcpy(&x, d, sizeof x, cudaMemcpyDeviceToHost) == cudaSuccess && x != x); /* fresh memory is NaN, not zero */
    }
    EXPECT(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice) == cudaSuccess);

    /* shared memory and __syncthreads: 4 blocks of 256 */
    DS__CU_LAUNCH(k_tree, 4, 256)(o, d);
    EXPECT(cudaGetLastError() == cudaSuccess && cudaMemcpy(r, o, 4 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (i = 0; i < 4; i++) {
        float s = 0;
        unsigned j;
        for (j = 0; j < 256; j++) s += h[i * 256 + j];
        EXPECT(r[i] == s);
    }
    /* warp shuffles: 4 warps, each lane with its warp's sum */
    DS__CU_LAUNCH(k_warp, 1, 128)(o, d);
    EXPECT(cudaMemcpy(r, o, 128 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (i = 0; i < 128; i++) {
        float s = 0;
        unsigned j;
        for (j = i / 32 * 32; j < i / 32 * 32 + 32; j++) s += h[j];
        EXPECT(r[i] == s);
    }
    /* a 2-D grid: every block writes its own part */
    DS__CU_LAUNCH(k_write, dim3(3, 2), 64)(o);
    EXPECT(cudaMemcpy(r, o, 384 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess && r[0] == 0 && r[191] == 0 && r[192] == 1 && r[383] == 1);
    /* early exits and a barrier */
    DS__CU_LAUNCH(k_early_exit, 1, 64)(o, 40u);
    EXPECT(cudaDeviceSynchronize() == cudaSuccess && cudaMemcpy(r, o, 40 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess && r[0] == 39 &&
           r[39] == 0);

    /* the race shows under the random schedule (the default), in some of 8 blocks */
    DS__CU_LAUNCH(k_race, 8, 128)(o);
    EXPECT(cudaMemcpy(r, o, 1024 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    {
        int wrong = 0;
        for (i = 0; i < 1024; i++) wrong += r[i] != (float)(i % 128 >= 32 ? i % 128 - 32 : i % 128);
        if (ds_emu.rng) EXPECT(wrong > 0);
        else EXPECT(wrong == 0); /* DS_EMU_SEED=0, the fixed order: the race hides */
    }

    /* the warp matrix functions: the product of bf16-exact values, summed in float, both B
       layouts, against the loop */
    {
        float *io = NULL, *res = NULL, hin[768], got[512];
        int bcol, ok;
        for (i = 0; i < 768; i++) hin[i] = (float)((int)(i * 37 % 17) - 8) / 8.0f; /* exact in bf16 */
        EXPECT(cudaMalloc(&io, sizeof hin) == cudaSuccess && cudaMalloc(&res, sizeof got) == cudaSuccess);
        cudaMemcpy(io, hin, sizeof hin, cudaMemcpyHostToDevice);
        for (bcol = 0; bcol < 2; bcol++) {
            unsigned rr, cc, kk;
            DS__CU_LAUNCH(k_mma, 1, 32)(res, io, bcol);
            EXPECT(cudaDeviceSynchronize() == cudaSuccess && cudaMemcpy(got, res, sizeof got, cudaMemcpyDeviceToHost) == cudaSuccess);
            ok = 1;
            for (rr = 0; rr < 16; rr++)
                for (cc = 0; cc < 16; cc++) {
                    float s = hin[512 + cc * 16 + rr];
                    for (kk = 0; kk < 16; kk++) s += hin[rr * 16 + kk] * (bcol ? hin[256 + cc * 16 + kk] : hin[256 + kk * 16 + cc]);
                    ok &= got[rr * 16 + cc] == s && got[256 + cc * 16 + rr] == s;
                }
            EXPECT(ok);
        }
        fprintf(stderr, "  (warp matrix faults follow, on purpose)\n");
        for (i = 0; i < 4; i++) {
            DS__CU_LAUNCH(k_mma_bad, 1, 32)(io, (int)i);
            EXPECT(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
            reset();
        }
        cudaFree(io), cudaFree(res);
    }

    DS__CU_LAUNCH(k_vote, 1, 64)(o);
    EXPECT(cudaDeviceSynchronize() == cudaSuccess && cudaMemcpy(r, o, 64 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    {
        int ok = 1;
        for (i = 0; i < 64; i++) ok &= r[i] == 5.0f; /* any: 1, all of one lane: 0, all of every lane: 4, any of none: 0 */
        EXPECT(ok);
    }

    /* the faults */
    fprintf(stderr, "  (emulator faults follow, on purpose)\n");
    DS__CU_LAUNCH(k_divergent, 1, 64)(o);
    EXPECT(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    EXPECT(cudaMemcpy(r, o, 4, cudaMemcpyDeviceToHost) == cudaErrorLaunchFailure); /* sticky */
    reset();
    DS__CU_LAUNCH(k_write, 1, 32)(r); /* a host array */
    EXPECT(cudaGetLastError() == cudaErrorLaunchFailure);
    reset();
    DS__CU_LAUNCH(k_warp, 1, 16)(o, d); /* a shuffle in a block of 16: lanes that are not there */
    EXPECT(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    reset();
    DS__CU_LAUNCH(k_write, 1, 2048)(o); /* more than 1024 threads */
    EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration && cudaGetLastError() == cudaSuccess);
    DS__CU_LAUNCH(k_write, dim3(1, 70000), 32)(o); /* grid.y past 65535 */
    EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration);
    EXPECT(cudaMemcpy(d, h, sizeof h + 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue); /* past the allocation */
    EXPECT(cudaMemcpy(r, h, 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);            /* a host destination */
    EXPECT(cudaMemset(h, 0, 4) == cudaErrorInvalidValue);

    /* cuBLAS: C = A^T B (column-major), against the loop; beta = 0 does not read C (NaN there) */
    EXPECT(cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS);
    {
        const float one = 1, zero = 0;
        float *A = d, *B = d + 64, *C = o, ref[48], got[48], nan = 0.0f / 0.0f;
        int m = 6, n = 8, k = 5, ii, jj, p, ok = 1;
        for (ii = 0; ii < 48; ii++) r[ii] = nan;
        cudaMemcpy(C, r, 48 * sizeof(float), cudaMemcpyHostToDevice);
        EXPECT(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, A, k, B, k, &zero, C, m) == CUBLAS_STATUS_SUCCESS);
        cudaMemcpy(got, C, 48 * sizeof(float), cudaMemcpyDeviceToHost);
        for (jj = 0; jj < n; jj++)
            for (ii = 0; ii < m; ii++) {
                float s = 0;
                for (p = 0; p < k; p++) s += h[p + ii * k] * h[64 + p + jj * k];
                ref[ii + jj * m] = s;
                ok &= got[ii + jj * m] == s;
            }
        EXPECT(ok);
        (void)ref;
        EXPECT(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A, 2, B, k, &zero, C, m) == CUBLAS_STATUS_INVALID_VALUE); /* lda < m */
        EXPECT(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, h, m, B, k, &zero, C, m) == CUBLAS_STATUS_EXECUTION_FAILED); /* host A */
        reset();
    }
    cublasDestroy(blas);

    /* cuBLASLt: D = A^T B in place of C (beta = 1) with the heuristic's algorithm, against the
       loop; an algorithm from another shape, and a matrix less aligned than the heuristic was
       told, are refused */
    {
        cublasLtHandle_t lt;
        cublasLtMatmulDesc_t op;
        cublasLtMatrixLayout_t la, lb, lc;
        cublasLtMatmulPreference_t pref;
        cublasLtMatmulHeuristicResult_t res, other;
        float *A = d, *B = d + 64, *C = o, got[48], one = 1;
        int32_t t = CUBLAS_OP_T;
        int m = 6, n = 8, k = 5, ii, jj, p, ok = 1, nres = 0;
        uint32_t four = 4;
        for (ii = 0; ii < 48; ii++) r[ii] = (float)ii;
        cudaMemcpy(C, r, 48 * sizeof(float), cudaMemcpyHostToDevice);
        EXPECT(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS && cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
        EXPECT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t) == CUBLAS_STATUS_SUCCESS);
        EXPECT(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, k, m, k) == CUBLAS_STATUS_SUCCESS && cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, k, n, k) == CUBLAS_STATUS_SUCCESS &&
               cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, m, n, m) == CUBLAS_STATUS_SUCCESS && cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS);
        EXPECT(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &nres) == CUBLAS_STATUS_SUCCESS && nres == 1);
        EXPECT(cublasLtMatmul(lt, op, &one, A, la, B, lb, &one, C, lc, C, lc, &res.algo, NULL, 0, 0) == CUBLAS_STATUS_SUCCESS);
        cudaMemcpy(got, C, 48 * sizeof(float), cudaMemcpyDeviceToHost);
        for (jj = 0; jj < n; jj++)
            for (ii = 0; ii < m; ii++) {
                float s = 0;
                for (p = 0; p < k; p++) s += h[p + ii * k] * h[64 + p + jj * k];
                ok &= got[ii + jj * m] == s + (float)(ii + jj * m);
            }
        EXPECT(ok);
        other = res, other.algo.data[0]++;
        EXPECT(cublasLtMatmul(lt, op, &one, A, la, B, lb, &one, C, lc, C, lc, &other.algo, NULL, 0, 0) == CUBLAS_STATUS_INVALID_VALUE);
        EXPECT(cublasLtMatmul(lt, op, &one, A + 1, la, B, lb, &one, C, lc, C, lc, &res.algo, NULL, 0, 0) == CUBLAS_STATUS_EXECUTION_FAILED);
        reset();
        EXPECT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &four, sizeof four) == CUBLAS_STATUS_SUCCESS &&
               cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &nres) == CUBLAS_STATUS_SUCCESS);
        EXPECT(cublasLtMatmul(lt, op, &one, A + 1, la, B, lb, &one, C, lc, C, lc, &res.algo, NULL, 0, 0) == CUBLAS_STATUS_SUCCESS); /* told: 4 bytes */
        /* a bf16 C and D (bf16 mode's gate|up): each value alpha s + beta C, rounded to nearest
           even once, the same through cublasGemmEx; a bf16 D with a float C is refused */
        {
            cublasLtMatrixLayout_t lh;
            cublasLtMatmulHeuristicResult_t rh;
            cublasHandle_t bh;
            unsigned short *Ch = NULL, hb[48], hg[48];
            int okh = 1, okg = 1;
            for (ii = 0; ii < 48; ii++) hb[ii] = (unsigned short)(0x3f80 + 3 * ii); /* 1.0 and up, exact bf16 */
            EXPECT(cudaMalloc(&Ch, sizeof hb) == cudaSuccess && cudaMemcpy(Ch, hb, sizeof hb, cudaMemcpyHostToDevice) == cudaSuccess);
            EXPECT(cublasLtMatrixLayoutCreate(&lh, CUDA_R_16BF, m, n, m) == CUBLAS_STATUS_SUCCESS);
            EXPECT(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lh, lh, pref, 1, &rh, &nres) == CUBLAS_STATUS_SUCCESS && nres == 1);
            EXPECT(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lh, pref, 1, &rh, &nres) == CUBLAS_STATUS_INVALID_VALUE);
            EXPECT(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lh, lh, pref, 1, &rh, &nres) == CUBLAS_STATUS_SUCCESS);
            EXPECT(cublasLtMatmul(lt, op, &one, A, la, B, lb, &one, Ch, lh, Ch, lh, &rh.algo, NULL, 0, 0) == CUBLAS_STATUS_SUCCESS);
            cudaMemcpy(hg, Ch, sizeof hg, cudaMemcpyDeviceToHost);
            for (jj = 0; jj < n; jj++)
                for (ii = 0; ii < m; ii++) {
                    float s = 0, cv;
                    uint32_t u = (uint32_t)hb[ii + jj * m] << 16;
                    memcpy(&cv, &u, 4);
                    for (p = 0; p < k; p++) s += h[p + ii * k] * h[64 + p + jj * k];
                    s += cv;
                    memcpy(&u, &s, 4);
                    okh &= hg[ii + jj * m] == (unsigned short)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
                }
            EXPECT(okh);
            cudaMemcpy(Ch, hb, sizeof hb, cudaMemcpyHostToDevice);
            EXPECT(cublasCreate(&bh) == CUBLAS_STATUS_SUCCESS);
            EXPECT(cublasGemmEx(bh, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, A, CUDA_R_32F, k, B, CUDA_R_32F, k, &one, Ch, CUDA_R_16BF, m,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
            cudaMemcpy(hb, Ch, sizeof hb, cudaMemcpyDeviceToHost);
            for (ii = 0; ii < 48; ii++) okg &= hb[ii] == hg[ii];
            EXPECT(okg);
            cublasDestroy(bh);
            cublasLtMatrixLayoutDestroy(lh);
            EXPECT(cudaFree(Ch) == cudaSuccess);
        }
        cublasLtMatmulPreferenceDestroy(pref), cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(lc);
        cublasLtMatmulDescDestroy(op), cublasLtDestroy(lt);
    }
    EXPECT(cudaFree(d) == cudaSuccess && cudaFree(o) == cudaSuccess && cudaFree(h) == cudaErrorInvalidValue);
    printf("cuda emulator self-test: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
