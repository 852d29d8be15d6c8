/* bench_ops.c - the elementwise ops and attention, one task at a time on one thread, on a
   thread's share of the tiny config (2 threads: 1,024 of the 2,048 rows; attention per head at
   T 128 and T 256, head size 32). Times are the best of R calls, in microseconds. It reaches the
   ops' tasks through DEEPSEEK_IMPLEMENTATION's internals, so it is built per header:
   bench/bench_ops.sh runs it for this header and, with BASE=<git revision>, for that revision's
   header too, alternately, in one run (`make bench-ops`). */
#define DEEPSEEK_IMPLEMENTATION
#ifndef DS_HEADER
#define DS_HEADER "../deepseek.h"
#endif
#include DS_HEADER
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*task_fn)(void *ctx, size_t b, size_t e);
static double best_us(task_fn f, void *ctx, size_t b, size_t e, int reps) {
    double best = 1e30;
    int r;
    for (r = 0; r < reps; r++) {
        double t = ds_now();
        f(ctx, b, e);
        t = ds_now() - t;
        if (t < best) best = t;
    }
    return best * 1e6;
}
static float *filled(size_t n, unsigned seed, float scale, float shift) {
    float *p = (float *)malloc(n * sizeof(float));
    size_t i;
    if (!p) { fprintf(stderr, "bench_ops: out of memory\n"); exit(1); }
    for (i = 0; i < n; i++) p[i] = scale * (float)((i * seed) % 1001) / 1000.0f + shift;
    return p;
}
int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 50;
    size_t N = 1024, D = 128, F = 352, T;
    /* volatile pointers: each task is called as the pool calls it, compiled on its own */
    task_fn volatile glu_f = ds__swiglu_fwd_task, glu_b = ds__swiglu_bwd_task, rms_f = ds__rmsnorm_fwd_task;
    task_fn volatile rms_dx = ds__rmsnorm_bwd_dx_task, rms_dw = ds__rmsnorm_bwd_dw_task, sq = ds__sqnorm_task, adam = ds__adamw_task;
    task_fn volatile att_f = ds__attention_fwd_task, att_b = ds__attention_bwd_task;
    if (reps < 1) { fprintf(stderr, "usage: bench_ops [reps >= 1]\n"); return 2; }
    {
        ds__glu_ctx s;
        memset(&s, 0, sizeof s);
        s.gu = filled(N * 2 * F, 37, 2, -1), s.h = filled(N * F, 1, 0, 0), s.dh = filled(N * F, 13, 0.1f, 0), s.dgu = filled(N * 2 * F, 1, 0, 0), s.F = F;
        printf("swiglu_fwd [1024, 352]      %8.1f\n", best_us(glu_f, &s, 0, N, reps));
        printf("swiglu_bwd [1024, 352]      %8.1f\n", best_us(glu_b, &s, 0, N, reps));
    }
    {
        ds__rms_ctx r;
        memset(&r, 0, sizeof r);
        r.x = filled(N * D, 37, 2, -1), r.out = filled(N * D, 1, 0, 0), r.w = filled(D, 7, 0.1f, 1), r.rstd = filled(N, 1, 0, 0);
        r.dout = filled(N * D, 13, 0.1f, 0), r.dx = filled(N * D, 1, 0, 0), r.dw = filled(D, 1, 0, 0), r.N = N, r.D = D, r.eps = 1e-6;
        r.rstd_in = r.rstd;
        printf("rmsnorm_fwd [1024, 128]     %8.1f\n", best_us(rms_f, &r, 0, N, reps));
        printf("rmsnorm_bwd_dx [1024, 128]  %8.1f\n", best_us(rms_dx, &r, 0, N, reps));
        r.N = 2 * N; /* dw: every row, half the columns */
        r.x = filled(2 * N * D, 37, 2, -1), r.dout = filled(2 * N * D, 13, 0.1f, 0), r.rstd_in = filled(2 * N, 3, 0.1f, 1);
        printf("rmsnorm_bwd_dw [2048, 64]   %8.1f\n", best_us(rms_dw, &r, 0, D / 2, reps));
    }
    {
        size_t n = (size_t)DS__NORM_CHUNK * 16;
        double part[16];
        ds__sq_ctx q;
        q.x = filled(n, 37, 1, -0.5f), q.n = n, q.partial = part;
        printf("sqnorm [262144]             %8.1f\n", best_us(sq, &q, 0, 16, reps));
    }
    {
        size_t n = (size_t)DS__NORM_CHUNK * 16;
        ds_tensor t;
        ds__adamw_hp hp = {3e-4, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05, 1.0};
        ds__adamw_ctx o;
        memset(&t, 0, sizeof t);
        t.numel = n, t.decay = 1;
        o.p = filled(n, 37, 0.1f, 0), o.g = filled(n, 13, 0.01f, -0.005f), o.m = filled(n, 1, 0, 0), o.v = filled(n, 1, 0, 0);
        o.t = &t, o.n_tensors = 1, o.lo = 0, o.hi = n, o.hp = &hp;
        printf("adamw [262144]              %8.1f\n", best_us(adam, &o, 0, 16, reps));
    }
    for (T = 128; T <= 256; T *= 2) {
        size_t H = 4, KV = 4, hd = 32, Q = (H + 2 * KV) * hd;
        ds__att_ctx a;
        memset(&a, 0, sizeof a);
        a.qkv = filled(T * Q, 37, 1, -0.5f), a.y = filled(T * H * hd, 1, 0, 0), a.saved = filled(H * T * 2, 1, 0, 0);
        a.dy = filled(T * H * hd, 13, 0.1f, -0.05f), a.dqkv = filled(T * Q, 1, 0, 0);
        a.scratch = filled(ds__attention_work(1, T, H, KV, hd), 1, 0, 0);
        a.B = 1, a.T = T, a.H = H, a.KV = KV, a.hd = hd, a.Q = Q;
        printf("attention_fwd T %3zu a head   %8.1f\n", T, best_us(att_f, &a, 0, H, reps) / (double)H);
        printf("attention_bwd T %3zu a head   %8.1f\n", T, best_us(att_b, &a, 0, KV, reps) / (double)KV);
    }
    return 0;
}
