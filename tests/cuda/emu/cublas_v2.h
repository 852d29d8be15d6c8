/* tests/cuda/emu/cublas_v2.h - the cuBLAS calls of the CUDA backend, for the CPU emulator
   (cuda_runtime.h beside it says what the emulator is and is not). Column-major, as cuBLAS:
   C = alpha op(A) op(B) + beta C, each element summed over k in order in float; with beta = 0, C
   is not read (it may hold anything, NaN included), as cuBLAS documents. The arguments are
   checked as cuBLAS checks them (CUBLAS_STATUS_INVALID_VALUE), and every matrix must lie in
   device memory. */
#ifndef DS_CUDA_EMU_CUBLAS_H
#define DS_CUDA_EMU_CUBLAS_H
#include "cuda_runtime.h"
#include "cuda_bf16.h"

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_EXECUTION_FAILED = 13
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 } cublasMath_t;
struct ds_emu_blas { int math; };
typedef struct ds_emu_blas *cublasHandle_t;

static inline cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new ds_emu_blas();
    (*h)->math = CUBLAS_DEFAULT_MATH;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}
/* a rows x cols column-major matrix with leading dimension ld, in device memory */
static inline bool ds_emu_matrix_ok_t(const void *p, cudaDataType_t t, int rows, int cols, int ld) {
    if (rows == 0 || cols == 0) return true;
    return ds_emu_on_device(p, ((size_t)ld * (size_t)(cols - 1) + (size_t)rows) * (t == CUDA_R_32F ? 4 : 2));
}
static inline bool ds_emu_matrix_ok(const float *p, int rows, int cols, int ld) { return ds_emu_matrix_ok_t(p, CUDA_R_32F, rows, cols, ld); }
static inline cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *alpha,
                                  const float *A, int lda, const float *B, int ldb, const float *beta, float *C, int ldc) {
    int i, j, p, ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m, br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0 || lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    if (ds_emu.sticky != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    ds_emu.kernel = "cublasSgemm";
    if ((k > 0 && (!ds_emu_matrix_ok(A, ar, ac, lda) || !ds_emu_matrix_ok(B, br, bc, ldb))) || !ds_emu_matrix_ok(C, m, n, ldc)) {
        ds_emu_fault("a matrix is not in device memory");
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    for (j = 0; j < n; j++)
        for (i = 0; i < m; i++) {
            float s = 0;
            for (p = 0; p < k; p++) {
                float a = ta == CUBLAS_OP_N ? A[i + (size_t)p * lda] : A[p + (size_t)i * lda];
                float b = tb == CUBLAS_OP_N ? B[p + (size_t)j * ldb] : B[j + (size_t)p * ldb];
                s += a * b;
            }
            C[i + (size_t)j * ldc] = *beta == 0 ? *alpha * s : *alpha * s + *beta * C[i + (size_t)j * ldc];
        }
    return CUBLAS_STATUS_SUCCESS;
}
/* cublasGemmEx for the types the backend uses: A and B bf16 or fp32, C fp32 or bf16, fp32
   accumulation (a tensor core multiplies the bf16 products exactly and adds them in fp32; the
   order of its sums is its own, here k in order); a bf16 C gets alpha s + beta C rounded to
   nearest even, as cuBLAS's epilogue rounds. */
static inline float ds_emu_elem(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    {
        uint32_t u = (uint32_t)((const unsigned short *)p)[i] << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
}
static inline void ds_emu_store(void *p, cudaDataType_t t, size_t i, float v) {
    if (t == CUDA_R_32F) ((float *)p)[i] = v;
    else ((__nv_bfloat16 *)p)[i] = __float2bfloat16(v);
}
static inline cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha,
                                          const void *A, cudaDataType_t at, int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta,
                                          void *C, cudaDataType_t ct, int ldc, cublasComputeType_t comp, cublasGemmAlgo_t algo) {
    int i, j, p, ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m, br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    size_t as = at == CUDA_R_32F ? 4 : 2, bs = bt == CUDA_R_32F ? 4 : 2;
    float al = *(const float *)alpha, be = *(const float *)beta;
    (void)algo;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((ct != CUDA_R_32F && ct != CUDA_R_16BF) || comp != CUBLAS_COMPUTE_32F || (at != CUDA_R_32F && at != CUDA_R_16BF) || (bt != CUDA_R_32F && bt != CUDA_R_16BF))
        return CUBLAS_STATUS_INVALID_VALUE; /* (what the emulator has; cuBLAS has more) */
    if (m < 0 || n < 0 || k < 0 || lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    if (ds_emu.sticky != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    ds_emu.kernel = "cublasGemmEx";
    if ((k > 0 && m > 0 && n > 0 &&
         (!ds_emu_on_device(A, ((size_t)lda * (size_t)(ac - 1) + (size_t)ar) * as) || !ds_emu_on_device(B, ((size_t)ldb * (size_t)(bc - 1) + (size_t)br) * bs))) ||
        !ds_emu_matrix_ok_t(C, ct, m, n, ldc)) {
        ds_emu_fault("a matrix is not in device memory");
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    for (j = 0; j < n; j++)
        for (i = 0; i < m; i++) {
            float s = 0;
            for (p = 0; p < k; p++)
                s += ds_emu_elem(A, at, ta == CUBLAS_OP_N ? i + (size_t)p * lda : p + (size_t)i * lda) *
                     ds_emu_elem(B, bt, tb == CUBLAS_OP_N ? p + (size_t)j * ldb : j + (size_t)p * ldb);
            ds_emu_store(C, ct, i + (size_t)j * ldc, be == 0 ? al * s : al * s + be * ds_emu_elem(C, ct, i + (size_t)j * ldc));
        }
    return CUBLAS_STATUS_SUCCESS;
}
#endif
