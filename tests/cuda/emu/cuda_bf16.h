/* tests/cuda/emu/cuda_bf16.h - the bf16 type and conversions of the toolkit's <cuda_bf16.h>, for
   the CPU emulator (cuda_runtime.h beside it). bf16 is the top half of a float: float to bf16
   rounds to nearest, ties to even, as __float2bfloat16 does; NaN stays NaN. */
#ifndef DS_CUDA_EMU_BF16_H
#define DS_CUDA_EMU_BF16_H
#include "cuda_runtime.h"
struct __nv_bfloat16 {
    unsigned short x;
};
static inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t u;
    __nv_bfloat16 b;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) b.x = (unsigned short)((u >> 16) | 0x40); /* a quiet NaN */
    else b.x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
    return b;
}
static inline float __bfloat162float(__nv_bfloat16 b) {
    uint32_t u = (uint32_t)b.x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
#endif
