/* tests/cuda/emu/cublasLt.h - the cuBLASLt calls of the CUDA backend's bf16 products, for the CPU
   emulator (cuda_runtime.h beside it says what the emulator is and is not): the descriptors, the
   heuristic (which always offers one algorithm, numbered by its shape) and cublasLtMatmul as
   D = alpha op(A) op(B) + beta C, column-major, each element summed over k in order in float.
   Only what the backend uses: bf16 or fp32 A and B, fp32 C = D, fp32 compute and scale, no
   epilogue. The arguments are checked as cuBLASLt checks them, the workspace must be device
   memory, the algorithm must be one the heuristic returned for these descriptors, and each
   matrix must be as aligned as the heuristic was told (256 bytes unless the preference says
   less), since the algorithm it picks may rely on it. */
#ifndef DS_CUDA_EMU_CUBLASLT_H
#define DS_CUDA_EMU_CUBLASLT_H
#include "cuda_runtime.h"
#include "cublas_v2.h"

typedef struct ds_emu_stream *cudaStream_t;
struct ds_emu_lt { int live; };
typedef struct ds_emu_lt *cublasLtHandle_t;
struct ds_emu_lt_desc { cublasComputeType_t comp; cudaDataType_t scale; int32_t ta, tb; };
typedef struct ds_emu_lt_desc *cublasLtMatmulDesc_t;
struct ds_emu_lt_layout { cudaDataType_t type; uint64_t rows, cols; int64_t ld; };
typedef struct ds_emu_lt_layout *cublasLtMatrixLayout_t;
struct ds_emu_lt_pref { uint64_t ws; uint32_t reduction, align[4]; };
typedef struct ds_emu_lt_pref *cublasLtMatmulPreference_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;
typedef enum { CUBLASLT_MATMUL_DESC_TRANSA = 3, CUBLASLT_MATMUL_DESC_TRANSB = 4 } cublasLtMatmulDescAttributes_t;
typedef enum {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
    CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK = 3,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8
} cublasLtMatmulPreferenceAttributes_t;
typedef enum {
    CUBLASLT_REDUCTION_SCHEME_NONE = 0,
    CUBLASLT_REDUCTION_SCHEME_INPLACE = 1,
    CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE = 2,
    CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE = 4,
    CUBLASLT_REDUCTION_SCHEME_MASK = 7
} cublasLtReductionScheme_t;

static inline cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = new ds_emu_lt();
    (*h)->live = 1;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t comp, cudaDataType_t scale) {
    *d = new ds_emu_lt_desc();
    (*d)->comp = comp, (*d)->scale = scale, (*d)->ta = CUBLAS_OP_N, (*d)->tb = CUBLAS_OP_N;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *v, size_t n) {
    int32_t x;
    if (!d || n != sizeof x) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(&x, v, sizeof x);
    if (x != CUBLAS_OP_N && x != CUBLAS_OP_T) return CUBLAS_STATUS_INVALID_VALUE;
    if (a == CUBLASLT_MATMUL_DESC_TRANSA) d->ta = x;
    else if (a == CUBLASLT_MATMUL_DESC_TRANSB) d->tb = x;
    else return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld) {
    if (ld < (int64_t)(rows > 1 ? rows : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    *l = new ds_emu_lt_layout();
    (*l)->type = t, (*l)->rows = rows, (*l)->cols = cols, (*l)->ld = ld;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new ds_emu_lt_pref();
    (*p)->ws = 0, (*p)->reduction = CUBLASLT_REDUCTION_SCHEME_MASK;
    (*p)->align[0] = (*p)->align[1] = (*p)->align[2] = (*p)->align[3] = 256; /* what the heuristic assumes unless told */
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void *v,
                                                                  size_t n) {
    if (!p) return CUBLAS_STATUS_INVALID_VALUE;
    if (a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && n == sizeof(uint64_t)) memcpy(&p->ws, v, n);
    else if (a == CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK && n == sizeof(uint32_t)) memcpy(&p->reduction, v, n);
    else if (a >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && a <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES && n == sizeof(uint32_t))
        memcpy(&p->align[a - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], v, n);
    else return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}
/* the descriptors' product: op(A) is m x k, op(B) k x n, C and D m x n */
static inline bool ds_emu_lt_shape(cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C,
                                   cublasLtMatrixLayout_t D, uint64_t *m, uint64_t *n, uint64_t *k) {
    uint64_t am = op->ta == CUBLAS_OP_N ? A->rows : A->cols, ak = op->ta == CUBLAS_OP_N ? A->cols : A->rows;
    uint64_t bk = op->tb == CUBLAS_OP_N ? B->rows : B->cols, bn = op->tb == CUBLAS_OP_N ? B->cols : B->rows;
    *m = am, *n = bn, *k = ak;
    return ak == bk && C->rows == am && C->cols == bn && D->rows == C->rows && D->cols == C->cols && D->ld == C->ld &&
           (C->type == CUDA_R_32F || C->type == CUDA_R_16BF) && D->type == C->type && (A->type == CUDA_R_32F || A->type == CUDA_R_16BF) && A->type == B->type && op->comp == CUBLAS_COMPUTE_32F &&
           op->scale == CUDA_R_32F;
}
static inline uint64_t ds_emu_lt_algo_id(uint64_t m, uint64_t n, uint64_t k) { return (m * 1000003u + n) * 1000033u + k; }
static inline cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B,
                                                            cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D, cublasLtMatmulPreference_t pref,
                                                            int requested, cublasLtMatmulHeuristicResult_t *res, int *returned) {
    uint64_t m, n, k;
    if (!h || !op || !A || !B || !C || !D || !pref || requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
    *returned = 0;
    if (!ds_emu_lt_shape(op, A, B, C, D, &m, &n, &k)) return CUBLAS_STATUS_INVALID_VALUE;
    memset(&res[0], 0, sizeof res[0]);
    res[0].algo.data[0] = ds_emu_lt_algo_id(m, n, k);
    for (int q = 0; q < 4; q++) res[0].algo.data[1 + q] = pref->align[q]; /* the algorithm relies on these */
    res[0].workspaceSize = pref->ws < 4096 ? pref->ws : 4096; /* a little of what it may use */
    res[0].state = CUBLAS_STATUS_SUCCESS;
    res[0].wavesCount = 1;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha, const void *A, cublasLtMatrixLayout_t Ad,
                                            const void *B, cublasLtMatrixLayout_t Bd, const void *beta, const void *C, cublasLtMatrixLayout_t Cd, void *D,
                                            cublasLtMatrixLayout_t Dd, const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes, cudaStream_t stream) {
    uint64_t m, n, k, i, j, p;
    size_t as, bs;
    float al, be;
    (void)stream;
    if (!h || !op || !Ad || !Bd || !Cd || !Dd || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (!ds_emu_lt_shape(op, Ad, Bd, Cd, Dd, &m, &n, &k)) return CUBLAS_STATUS_INVALID_VALUE;
    if (!algo || algo->data[0] != ds_emu_lt_algo_id(m, n, k)) return CUBLAS_STATUS_INVALID_VALUE; /* not the heuristic's for this shape */
    if (ds_emu.sticky != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    ds_emu.kernel = "cublasLtMatmul";
    {
        const void *ptr[4] = {A, B, C, D};
        for (int q = 0; q < 4; q++)
            if ((uintptr_t)ptr[q] % algo->data[1 + q]) { /* on a GPU: a misaligned access, or wrong results */
                ds_emu_fault("a matrix less aligned than the heuristic was told (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES)");
                return CUBLAS_STATUS_EXECUTION_FAILED;
            }
    }
    as = Ad->type == CUDA_R_32F ? 4 : 2, bs = Bd->type == CUDA_R_32F ? 4 : 2;
    if ((ws_bytes && !ds_emu_on_device(ws, ws_bytes)) ||
        (k > 0 && m > 0 && n > 0 &&
         (!ds_emu_on_device(A, ((size_t)Ad->ld * (size_t)(Ad->cols - 1) + (size_t)Ad->rows) * as) ||
          !ds_emu_on_device(B, ((size_t)Bd->ld * (size_t)(Bd->cols - 1) + (size_t)Bd->rows) * bs))) ||
        !ds_emu_matrix_ok_t(D, Dd->type, (int)m, (int)n, (int)Dd->ld) || !ds_emu_matrix_ok_t(C, Cd->type, (int)m, (int)n, (int)Cd->ld)) {
        ds_emu_fault("a matrix or the workspace is not in device memory");
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    memcpy(&al, alpha, 4), memcpy(&be, beta, 4);
    for (j = 0; j < n; j++)
        for (i = 0; i < m; i++) {
            float s = 0;
            for (p = 0; p < k; p++)
                s += ds_emu_elem(A, Ad->type, op->ta == CUBLAS_OP_N ? i + p * (size_t)Ad->ld : p + i * (size_t)Ad->ld) *
                     ds_emu_elem(B, Bd->type, op->tb == CUBLAS_OP_N ? p + j * (size_t)Bd->ld : j + p * (size_t)Bd->ld);
            ds_emu_store(D, Dd->type, i + j * (size_t)Dd->ld, be == 0 ? al * s : al * s + be * ds_emu_elem(C, Cd->type, i + j * (size_t)Cd->ld));
        }
    return CUBLAS_STATUS_SUCCESS;
}
#endif
