/* fma_peak_vec.c - the FMA peak at the widest vector -march=native gives (GCC/clang vector
 * extensions, no intrinsics), for CPUs where ../shared/bench/fma_peak.c cannot run (it always
 * runs its AVX-512 test: an illegal instruction on an AVX2-only CPU). 12 independent chains of
 * fused multiply-adds per thread (enough to cover the FMA latency on both ports), median of 7.
 * With the argument bf16 it measures vdpbf16ps instead (AVX512_BF16: 16 lanes, two bf16 products
 * each, added to a float), the instruction of deepseek.h's CPU bf16 mode: `PRECISION=bf16
 * bench/bench_train.sh` gives the bf16 mode's % of peak against that, not the fp32 FMA's.
 *   gcc -O2 -march=native -ffp-contract=fast -fopenmp -o build/fma_peak_vec bench/fma_peak_vec.c
 *   OMP_NUM_THREADS=2 build/fma_peak_vec [bf16]   (prints "threads=N total: ... GFLOP/s" last) */
#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif
#include <omp.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
#define VB 64
#elif defined(__AVX__)
#define VB 32
#else
#define VB 16
#endif
typedef float vec __attribute__((vector_size(VB)));
#define LANES (VB / 4)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

static double fma_gflops(long iters, float *sink) {
    vec a = {0}, b = {0}, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11; /* named: an array would live in memory */
    double t;
    long i;
    a += 0.9999f, b += 1e-7f;
    c0 = a * 0.000f, c1 = a * 0.001f, c2 = a * 0.002f, c3 = a * 0.003f, c4 = a * 0.004f, c5 = a * 0.005f;
    c6 = a * 0.006f, c7 = a * 0.007f, c8 = a * 0.008f, c9 = a * 0.009f, c10 = a * 0.010f, c11 = a * 0.011f;
    t = now();
    for (i = 0; i < iters; i++) {
        c0 = c0 * a + b, c1 = c1 * a + b, c2 = c2 * a + b, c3 = c3 * a + b, c4 = c4 * a + b, c5 = c5 * a + b;
        c6 = c6 * a + b, c7 = c7 * a + b, c8 = c8 * a + b, c9 = c9 * a + b, c10 = c10 * a + b, c11 = c11 * a + b;
    }
    t = now() - t;
    *sink += c0[0] + c1[0] + c2[0] + c3[0] + c4[0] + c5[0] + c6[0] + c7[0] + c8[0] + c9[0] + c10[0] + c11[0];
    return 12.0 * 2.0 * LANES * (double)iters / t * 1e-9;
}

#if defined(__AVX512BF16__)
/* 12 accumulators, each c += a . b (pairs) every iteration; a and b go through an empty asm so
   that the compiler cannot hoist or merge the chains */
static double dp_gflops(long iters, float *sink) {
    __m512i a = _mm512_set1_epi32(0x3F803F80), b = _mm512_set1_epi32(0x33803380); /* (1, 1) and (6e-8, 6e-8) */
    __m512 c0 = _mm512_set1_ps(0), c1 = _mm512_set1_ps(1), c2 = _mm512_set1_ps(2), c3 = _mm512_set1_ps(3), c4 = _mm512_set1_ps(4);
    __m512 c5 = _mm512_set1_ps(5), c6 = _mm512_set1_ps(6), c7 = _mm512_set1_ps(7), c8 = _mm512_set1_ps(8), c9 = _mm512_set1_ps(9);
    __m512 c10 = _mm512_set1_ps(10), c11 = _mm512_set1_ps(11);
    double t;
    long i;
    t = now();
    for (i = 0; i < iters; i++) {
        __asm__("" : "+v"(a), "+v"(b));
#define DP(c) c = _mm512_dpbf16_ps(c, (__m512bh)a, (__m512bh)b)
        DP(c0), DP(c1), DP(c2), DP(c3), DP(c4), DP(c5), DP(c6), DP(c7), DP(c8), DP(c9), DP(c10), DP(c11);
#undef DP
    }
    t = now() - t;
    *sink += _mm512_reduce_add_ps(c0) + _mm512_reduce_add_ps(c1) + _mm512_reduce_add_ps(c2) + _mm512_reduce_add_ps(c3) + _mm512_reduce_add_ps(c4) +
             _mm512_reduce_add_ps(c5) + _mm512_reduce_add_ps(c6) + _mm512_reduce_add_ps(c7) + _mm512_reduce_add_ps(c8) + _mm512_reduce_add_ps(c9) +
             _mm512_reduce_add_ps(c10) + _mm512_reduce_add_ps(c11);
    return 12.0 * 64.0 * (double)iters / t * 1e-9; /* 16 lanes x 2 products x (multiply, add) */
}

#endif

int main(int argc, char **argv) {
    int nt = omp_get_max_threads(), id, r, bf16 = argc > 1 && !strcmp(argv[1], "bf16");
    double f[64][7], tot = 0;
    float sink = 0;
    if (nt > 64) nt = 64;
#if !defined(__AVX512BF16__)
    if (bf16) { fprintf(stderr, "fma_peak_vec: this CPU (or -march) has no AVX512_BF16\n"); return 1; }
#endif
    for (r = 0; r < 7; r++) {
#pragma omp parallel num_threads(nt)
        {
            float s = 0;
#if defined(__AVX512BF16__)
            f[omp_get_thread_num()][r] = bf16 ? dp_gflops(50000000L, &s) : fma_gflops(100000000L, &s);
#else
            f[omp_get_thread_num()][r] = fma_gflops(100000000L, &s);
#endif
#pragma omp atomic
            sink += s;
        }
    }
    for (id = 0; id < nt; id++) {
        qsort(f[id], 7, sizeof(double), cmpd);
        if (bf16) printf("thread %d: vdpbf16ps %.1f GFLOP/s [%.1f..%.1f]\n", id, f[id][3], f[id][0], f[id][6]);
        else printf("thread %d: %d-lane FMA %.1f GFLOP/s [%.1f..%.1f]\n", id, LANES, f[id][3], f[id][0], f[id][6]);
        tot += f[id][3];
    }
    if (bf16) printf("threads=%d total: vdpbf16ps %.1f GFLOP/s%s\n", nt, tot, sink == 12345.f ? " " : "");
    else printf("threads=%d total: %d-bit FMA %.1f GFLOP/s%s\n", nt, VB * 8, tot, sink == 12345.f ? " " : "");
    return 0;
}
