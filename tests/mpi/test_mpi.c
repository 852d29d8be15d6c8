/* test_mpi.c - the data-parallel group (ds_dp) end to end: the program that tests/mpi/run.sh runs
 * under `mpirun -np 1, 2, 4` (built with mpicc -DDS_MPI) and as one plain process (cc, no MPI).
 *
 *   test_mpi traj MICRO STEPS [stop K] [save DIR AT] [async DIR AT] [again K] [resume DIR] [die RANK STEP] [bad RANK STEP]
 *        trains a small model on a seeded synthetic stream, MICRO micro-batches of 2 x 16 tokens
 *        a step; rank 0 prints every step's loss and gradient norm in hex (%a) and a checksum of
 *        the final parameters, so that runs compare as text. save/async: a checkpoint of step AT,
 *        written at once or in the background while training goes on (again: a second background
 *        save, at step K); stop: after step K (the
 *        schedule still spans STEPS); resume: start from DIR;
 *        die: rank RANK kills itself (SIGKILL) at step STEP; bad: rank RANK feeds a token out of
 *        range at step STEP.
 *   test_mpi shards   every rank's ZeRO-1 slice, gathered: they must tile [0, n) exactly once,
 *                     on chunk boundaries, and hold about n / world values each.
 *   test_mpi check DIR STEP   the checkpoint in DIR loads and is at step STEP.
 */
#define DEEPSEEK_IMPLEMENTATION
#include "../../deepseek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#ifdef DS_MPI
#include <mpi.h>
#endif

#define B 2
#define T 16

/* mpirun ends the other ranks with SIGTERM when one dies: say so on stderr (async-signal-safe) */
static void on_term(int sig) {
    static const char msg[] = "test_mpi: terminated by a signal (another rank ended or failed)\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) _exit(143);
    _exit(143);
}

static ds_model *new_model(ds_error *err) {
    ds_config c;
    ds_model *m;
    ds_config_preset("tiny", &c, err);
    c.vocab = 256, c.d_model = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 128, c.max_seq = T;
    if (!(m = ds_model_new(&c, B, T, err))) return NULL;
    ds_model_init(m, 7);
    return m;
}

/* a stream with some structure to learn: a noisy counter */
static void make_tokens(ds_tokens *t) {
    uint64_t s = 99;
    size_t i;
    t->n = 4096, t->vocab = 256, t->n_bytes = 4096;
    t->ids = (int32_t *)malloc(t->n * sizeof(int32_t));
    for (i = 0; i < t->n; i++) t->ids[i] = (int32_t)((i * 7 + (ds_rng_next(&s) % 4)) % 256);
}

static unsigned long long params_sum(ds_model *m) {
    size_t n = ds_model_n_params(m);
    ds_float *p = (ds_float *)malloc(n * sizeof(ds_float));
    unsigned long long h = 1469598103934665603ull;
    size_t i;
    ds_error err;
    if (!p || ds_model_get(m, DS_PARAMS, 0, n, p, &err)) return 0;
    for (i = 0; i < n * sizeof(ds_float); i++) h = (h ^ ((unsigned char *)p)[i]) * 1099511628211ull;
    free(p);
    return h;
}

static int traj(int argc, char **argv) {
    int micro = atoi(argv[2]), steps = atoi(argv[3]), stop = steps, again = -1, save_at = -1, async_at = -1, die_rank = -1, die_step = -1, bad_rank = -1, bad_step = -1;
    const char *save_dir = NULL, *async_dir = NULL, *resume = NULL;
    ds_error err;
    ds_model *m;
    ds_dp *d;
    ds_saver *sv = NULL;
    ds_tokens tok;
    ds_train_state st;
    ds_adamw opt = ds_adamw_default();
    ds_schedule sch = ds_schedule_multistep(3e-3, 2, steps);
    int32_t in[B * T], tg[B * T];
    int i, j, rank;
    for (i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "save") && i + 2 < argc) save_dir = argv[i + 1], save_at = atoi(argv[i + 2]), i++;
        else if (!strcmp(argv[i], "async") && i + 2 < argc) async_dir = argv[i + 1], async_at = atoi(argv[i + 2]), i++;
        else if (!strcmp(argv[i], "resume")) resume = argv[i + 1];
        else if (!strcmp(argv[i], "stop")) stop = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "again")) again = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "die") && i + 2 < argc) die_rank = atoi(argv[i + 1]), die_step = atoi(argv[i + 2]), i++;
        else if (!strcmp(argv[i], "bad") && i + 2 < argc) bad_rank = atoi(argv[i + 1]), bad_step = atoi(argv[i + 2]), i++;
        else { fprintf(stderr, "test_mpi: bad argument %s\n", argv[i]); return 2; }
    }
    make_tokens(&tok);
    memset(&st, 0, sizeof st);
    st.rng = 5;
    snprintf(st.run, sizeof st.run, "test_mpi micro=%d", micro);
    m = resume ? ds_checkpoint_load(resume, B, T, &st, &err) : new_model(&err);
    if (!m || !(d = ds_dp_new(m, micro, &err))) { fprintf(stderr, "test_mpi: %s\n", err.msg); return 1; }
    rank = ds_dp_rank(d);
    if (async_dir && !(sv = ds_saver_new(&err))) { fprintf(stderr, "test_mpi: %s\n", err.msg); return 1; }
    while (st.step < stop) {
        double loss = 0, gnorm = 0;
        if (st.step + 1 == die_step && rank == die_rank) raise(SIGKILL);
        for (j = 0; j < micro; j++) {
            ds_tokens_batch(&tok, &st.rng, B, T, in, tg, &err);
            if (st.step + 1 == bad_step && rank == bad_rank) in[3] = 100000;
            if (j / ds_dp_local(d) == rank) ds_dp_micro(d, in, tg, NULL, B, T, NULL, &err);
        }
        if (ds_dp_step(d, &opt, ds_schedule_lr(&sch, st.step), &loss, &gnorm, NULL, &err)) {
            fprintf(stderr, "rank %d: step %ld: %s\n", rank, st.step + 1, err.msg);
            return 1;
        }
        st.step++;
        if (rank == 0) printf("step %ld loss %a norm %a\n", st.step, loss, gnorm);
        if (st.step == save_at && ds_checkpoint_save(m, NULL, &st, save_dir, DS_DTYPE_F32, &err)) { fprintf(stderr, "rank %d: save: %s\n", rank, err.msg); return 1; }
        if ((st.step == async_at || st.step == again) && ds_saver_start(sv, m, NULL, &st, async_dir, DS_DTYPE_F32, &err)) { fprintf(stderr, "rank %d: async: %s\n", rank, err.msg); return 1; }
    }
    if (sv && ds_saver_wait(sv, NULL, &err)) { fprintf(stderr, "rank %d: async save: %s\n", rank, err.msg); return 1; }
    if (rank == 0) printf("params %016llx\n", params_sum(m));
    ds_saver_free(sv);
    ds_model_free(m);
    ds_dp_free(d);
    free(tok.ids);
    return 0;
}

static int shards(void) {
    ds_error err;
    ds_model *m = new_model(&err);
    ds_dp *d;
    size_t lo, hi, n;
    int ok = 1;
    if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
    n = ds_model_n_params(m);
    if (!(d = ds_dp_new(m, 4, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    ds_dp_slice(d, &lo, &hi);
    if (ds_model_get(m, DS_ADAM_M, lo, hi - lo, NULL, &err) == DS_OK && ds_dp_world(d) > 1) ok = 0; /* the full moments are gone */
#ifdef DS_MPI
    {
        unsigned long long mine[2], all[2 * 64];
        int r, w = ds_dp_world(d);
        mine[0] = lo, mine[1] = hi;
        MPI_Gather(mine, 2, MPI_UNSIGNED_LONG_LONG, all, 2, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
        if (ds_dp_rank(d) == 0) {
            size_t chunks = (n + 16383) / 16384, most = (chunks + (size_t)w - 1) / (size_t)w * 16384;
            if (all[0] != 0 || all[2 * w - 1] != n) ok = 0;
            for (r = 0; r < w; r++) {
                if (r > 0 && all[2 * r] != all[2 * r - 1]) ok = 0;       /* no gap, no overlap */
                if (all[2 * r] % 16384 || all[2 * r + 1] < all[2 * r]) ok = 0; /* chunk boundaries */
                if (all[2 * r + 1] - all[2 * r] > most) ok = 0;          /* about n / world each */
                printf("rank %d: [%llu, %llu) of %zu: %llu AdamW moment values (%.1f%%)\n", r, all[2 * r], all[2 * r + 1], n,
                       2 * (all[2 * r + 1] - all[2 * r]), 100.0 * (double)(all[2 * r + 1] - all[2 * r]) / (double)n);
            }
        }
    }
#else
    if (lo != 0 || hi != n) ok = 0;
#endif
    if (ds_dp_rank(d) == 0) printf("shards %s\n", ok ? "ok" : "WRONG");
    ds_model_free(m);
    ds_dp_free(d);
    return ok ? 0 : 1;
}

static int check(const char *dir, long step) {
    ds_error err;
    ds_train_state st;
    ds_model *m = ds_checkpoint_load(dir, B, T, &st, &err);
    if (!m) { fprintf(stderr, "check: %s\n", err.msg); return 1; }
    if (st.step != step) { fprintf(stderr, "check: %s is at step %ld, not %ld\n", dir, st.step, step); return 1; }
    printf("check: %s loads, step %ld\n", dir, st.step);
    ds_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGTERM, on_term);
    if (argc >= 4 && !strcmp(argv[1], "traj")) return traj(argc, argv);
    if (argc == 2 && !strcmp(argv[1], "shards")) return shards();
    if (argc == 4 && !strcmp(argv[1], "check")) return check(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: test_mpi traj MICRO STEPS [...] | shards | check DIR STEP\n");
    return 2;
}
