/* flip_train.c - whole training steps of a config from two builds of the header, A and B,
   flipped every step in one process (bench/flip_products.sh MODE=train builds it): each side
   keeps its own model, pool and batch, and the two take turns, the order swapped every pair, so
   both share the host's drift. Prints each side's median step, the median and range of the
   per-pair ratios, and whether the two sides' losses agreed bit for bit at every step (the same
   bits are expected of a change that claims them).
   usage: flip_train CONFIG THREADS STEPS fp32|bf16     (CONFIG: a preset, e.g. tiny, small, medium) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double flip_a_step(const char *config, int threads, int bf16, double *loss);
double flip_b_step(const char *config, int threads, int bf16, double *loss);

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
int main(int argc, char **argv) {
    enum { WARMUP = 3, MAX_STEPS = 1000 };
    static double ta[MAX_STEPS], tb[MAX_STEPS], ratio[MAX_STEPS];
    int threads, steps, bf16, s, same = 1;
    double ma, mb, lo = 1e30, hi = 0;
    if (argc != 5 || (strcmp(argv[4], "fp32") && strcmp(argv[4], "bf16"))) {
        fprintf(stderr, "usage: flip_train CONFIG THREADS STEPS fp32|bf16\n");
        return 2;
    }
    threads = atoi(argv[2]), steps = atoi(argv[3]), bf16 = !strcmp(argv[4], "bf16");
    if (threads < 1 || threads > 256 || steps < 1 || steps > MAX_STEPS) { fprintf(stderr, "flip_train: bad arguments\n"); return 2; }
    for (s = -WARMUP; s < steps; s++) {
        double la, lb, a, b;
        if (s & 1) b = flip_b_step(argv[1], threads, bf16, &lb), a = flip_a_step(argv[1], threads, bf16, &la);
        else a = flip_a_step(argv[1], threads, bf16, &la), b = flip_b_step(argv[1], threads, bf16, &lb);
        if (a < 0 || b < 0) { fprintf(stderr, "flip_train: a step failed (config '%s', or no CPU bf16 mode in one build)\n", argv[1]); return 1; }
        if (memcmp(&la, &lb, sizeof la)) same = 0;
        if (s < 0) continue;
        ta[s] = a, tb[s] = b, ratio[s] = a / b;
        lo = ratio[s] < lo ? ratio[s] : lo, hi = ratio[s] > hi ? ratio[s] : hi;
    }
    ma = median(ta, steps), mb = median(tb, steps);
    printf("%s, %s, %d thread(s), %d steps a side after %d warm-up: A %.2f ms, B %.2f ms a step (medians); B is %.3fx A "
           "(per-step ratio: median %.3fx, range %.3f-%.3f); losses %s\n",
           argv[1], argv[4], threads, steps, WARMUP, ma * 1e3, mb * 1e3, ma / mb, median(ratio, steps), lo, hi,
           same ? "bit-identical at every step" : "DIFFER between A and B");
    return 0;
}
