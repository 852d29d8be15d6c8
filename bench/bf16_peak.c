/* bf16_peak.c - the peak of vdpbf16ps (AVX512_BF16: 16 lanes, two bf16 products each, added to a
 * float), the instruction of deepseek.h's CPU bf16 mode, for `PRECISION=bf16 bench/bench_train.sh`:
 * the bf16 mode's % of peak is against this, not the fp32 FMA's. 12 independent chains per
 * thread, median of 7, as fma_peak_vec.c. On a CPU without AVX512_BF16 it does not build.
 *   gcc -O2 -march=native -fopenmp -o build/bf16_peak bench/bf16_peak.c
 *   OMP_NUM_THREADS=2 build/bf16_peak      (prints "threads=N total: ... GFLOP/s" last) */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef __AVX512BF16__
#error "bf16_peak: this CPU (or -march) has no AVX512_BF16"
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

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

int main(void) {
    int nt = omp_get_max_threads(), id, r;
    double f[64][7], tot = 0;
    float sink = 0;
    if (nt > 64) nt = 64;
    for (r = 0; r < 7; r++) {
#pragma omp parallel num_threads(nt)
        {
            float s = 0;
            f[omp_get_thread_num()][r] = dp_gflops(50000000L, &s);
#pragma omp atomic
            sink += s;
        }
    }
    for (id = 0; id < nt; id++) {
        qsort(f[id], 7, sizeof(double), cmpd);
        printf("thread %d: vdpbf16ps %.1f GFLOP/s [%.1f..%.1f]\n", id, f[id][3], f[id][0], f[id][6]);
        tot += f[id][3];
    }
    printf("threads=%d total: vdpbf16ps %.1f GFLOP/s%s\n", nt, tot, sink == 12345.f ? " " : "");
    return 0;
}
