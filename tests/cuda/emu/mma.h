/* tests/cuda/emu/mma.h - the warp matrix functions of the toolkit's <mma.h> (nvcuda::wmma), for the
   CPU emulator (cuda_runtime.h beside it): the 16 x 16 x 16 shape with bf16 (or float) operands
   and a float accumulator, the subset deepseek_cuda.cuh uses.

   On a GPU a fragment is spread over the warp's 32 lanes in a layout CUDA does not specify; here
   every lane holds the whole tile, so the emulated results are the same in each lane and a kernel
   must not read or write a fragment's elements (x[]), which the GPU's layout would make wrong.
   What it checks, as a GPU needs it:
     - every call is warp-collective: each live lane of the warp reaches the same call with the
       same pointer (a call in divergent code is reported, as the emulator reports a divergent
       barrier), and a call is a rendezvous of the warp; so a missing __syncwarp between lanes'
       writes to shared memory and a call that reads them is NOT caught here (the GPU needs it);
     - the pointer is 256-bit (32-byte) aligned and ldm is a multiple of 16 bytes (8 bf16 values,
       4 floats), which the GPU's loads and stores require.
   mma_sync sums its 16 products in order in float: a product of two bf16 values is exact in float,
   so only the sum's order differs from the tensor cores'. */
#ifndef DS_CUDA_EMU_MMA_H
#define DS_CUDA_EMU_MMA_H
#include "cuda_runtime.h"
#include "cuda_bf16.h"

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    T v[16 * 16]; /* the whole tile, row-major: a and accumulator [m][k] / [m][n], b [k][n] */
};

static inline float ds_emu_tof(float x) { return x; }
static inline float ds_emu_tof(__nv_bfloat16 x) { return __bfloat162float(x); }

/* a warp-collective call: all 32 lanes arrive with the same pointer, aligned, ldm whole 16 bytes */
static inline void ds_emu_collective(const void *p, unsigned ldm, size_t elem, const char *what) {
    static char msg[160];
    unsigned i = ds_emu.cur, w0 = i - i % 32, e = w0 + 32 < ds_emu.n ? w0 + 32 : ds_emu.n, k;
    uintptr_t mine = (uintptr_t)p;
    memcpy(ds_emu.shfl[i], &mine, sizeof mine);
    if (mine % 32) snprintf(msg, sizeof msg, "%s: the pointer is not 32-byte aligned", what), ds_emu_fault(msg);
    if ((ldm * elem) % 16) snprintf(msg, sizeof msg, "%s: ldm %u is not a multiple of 16 bytes", what, ldm), ds_emu_fault(msg);
    ds_emu_wait(DS_EMU_AT_WARP); /* every live lane is here (a lane at a barrier elsewhere: reported) */
    for (k = w0; k < w0 + 32; k++) {
        uintptr_t other;
        if (k >= e || ds_emu.th[k].state == DS_EMU_DONE) {
            snprintf(msg, sizeof msg, "%s: a lane of the warp has exited or is not there (the whole warp must make the call)", what);
            ds_emu_fault(msg);
            break;
        }
        memcpy(&other, ds_emu.shfl[k], sizeof other);
        if (other != mine) {
            snprintf(msg, sizeof msg, "%s: the warp's lanes pass different pointers", what);
            ds_emu_fault(msg);
            break;
        }
    }
    ds_emu_wait(DS_EMU_AT_WARP); /* every lane has compared before any writes again */
}

/* (a fragment is lane-local: the collective calls on one pass no pointer) */
static inline void fill_fragment(fragment<accumulator, 16, 16, 16, float> &f, float x) {
    int i;
    ds_emu_collective(NULL, 0, 1, "fill_fragment");
    for (i = 0; i < 256; i++) f.v[i] = x;
}
/* matrix_a a[m][k] and matrix_b b[k][n] alike: f[r][c] = p[r ldm + c] (row_major) or p[c ldm + r] (col_major) */
template <class U, class T> static inline void load_matrix_sync(fragment<U, 16, 16, 16, T, row_major> &f, const T *p, unsigned ldm) {
    int r, c;
    ds_emu_collective(p, ldm, sizeof(T), "load_matrix_sync (matrix_a/b)");
    for (r = 0; r < 16; r++)
        for (c = 0; c < 16; c++) f.v[r * 16 + c] = p[r * ldm + c];
}
template <class U, class T> static inline void load_matrix_sync(fragment<U, 16, 16, 16, T, col_major> &f, const T *p, unsigned ldm) {
    int r, c;
    ds_emu_collective(p, ldm, sizeof(T), "load_matrix_sync (matrix_a/b)");
    for (r = 0; r < 16; r++)
        for (c = 0; c < 16; c++) f.v[r * 16 + c] = p[c * ldm + r];
}
static inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ldm, layout_t l) {
    int r, c;
    ds_emu_collective(p, ldm, sizeof(float), "load_matrix_sync (accumulator)");
    for (r = 0; r < 16; r++)
        for (c = 0; c < 16; c++) f.v[r * 16 + c] = l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
}
static inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm, layout_t l) {
    int r, c;
    ds_emu_collective(p, ldm, sizeof(float), "store_matrix_sync");
    for (r = 0; r < 16; r++)
        for (c = 0; c < 16; c++) (l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.v[r * 16 + c];
}
/* d = a b + c, the 16 products of each element summed in k's order after c */
template <class T, class LA, class LB>
static inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, T, LA> &a,
                            const fragment<matrix_b, 16, 16, 16, T, LB> &b, const fragment<accumulator, 16, 16, 16, float> &c) {
    float out[256];
    int r, n, k;
    ds_emu_collective(NULL, 0, 1, "mma_sync");
    for (r = 0; r < 16; r++)
        for (n = 0; n < 16; n++) {
            float s = c.v[r * 16 + n];
            for (k = 0; k < 16; k++) s += ds_emu_tof(a.v[r * 16 + k]) * ds_emu_tof(b.v[k * 16 + n]);
            out[r * 16 + n] = s;
        }
    memcpy(d.v, out, sizeof out);
}
} // namespace wmma
} // namespace nvcuda
#endif
