/* fma_peak_vec.c - the FMA peak at the widest vector -march=native gives (GCC/clang vector
 * extensions, no intrinsics), for CPUs where ../shared/bench/fma_peak.c cannot run (it always
 * runs its AVX-512 test: an illegal instruction on an AVX2-only CPU). 12 independent chains of
 * fused multiply-adds per thread (enough to cover the FMA latency on both ports), median of 7.
 *   gcc -O2 -march=native -ffp-contract=fast -fopenmp -o build/fma_peak_vec bench/fma_peak_vec.c
 *   OMP_NUM_THREADS=2 build/fma_peak_vec      (prints "threads=N total: ... GFLOP/s" last) */
#include <omp.h>
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

int main(void) {
    int nt = omp_get_max_threads(), id, r;
    double f[64][7], tot = 0;
    float sink = 0;
    if (nt > 64) nt = 64;
    for (r = 0; r < 7; r++) {
#pragma omp parallel num_threads(nt)
        {
            float s = 0;
            f[omp_get_thread_num()][r] = fma_gflops(100000000L, &s);
#pragma omp atomic
            sink += s;
        }
    }
    for (id = 0; id < nt; id++) {
        qsort(f[id], 7, sizeof(double), cmpd);
        printf("thread %d: %d-lane FMA %.1f GFLOP/s [%.1f..%.1f]\n", id, LANES, f[id][3], f[id][0], f[id][6]);
        tot += f[id][3];
    }
    printf("threads=%d total: %d-bit FMA %.1f GFLOP/s%s\n", nt, VB * 8, tot, sink == 12345.f ? " " : "");
    return 0;
}
