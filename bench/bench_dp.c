/* bench_dp.c - data parallelism and background checkpoints, measured (bench/bench_dp.sh runs it):
 *   mpirun -np N build/mpi/bench_dp [preset] [threads] [steps] [none|sync|async] [save_every]
 *   build/bench_dp ...   (the same without MPI: one rank)
 * A step is a global batch of 8 sequences of the preset's length, in 2 micro-batches of 4 (on 2
 * ranks: one each), as 02_pretrain --batch 8 --micro 4 runs it. Rank 0 prints tokens/s over the
 * timed steps, the share of the time spent in MPI calls, each rank's AdamW state, and with saves
 * the mean time of a step that saves beside one that does not. */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "small", *mode = argc > 4 ? argv[4] : "none";
    int threads = argc > 2 ? atoi(argv[2]) : 1, steps = argc > 3 ? atoi(argv[3]) : 10, every = argc > 5 ? atoi(argv[5]) : 3;
    int B = 4, micros = 2, warmup = 2, s, j, i, rank, n_save = 0, n_plain = 0;
    ds_config c;
    ds_error err;
    ds_model *m;
    ds_pool *pool;
    ds_dp *d;
    ds_saver *sv = NULL;
    ds_train_state st;
    ds_adamw opt = ds_adamw_default();
    int32_t *in, *tg;
    uint64_t rng = 1337;
    double t0 = 0, comm0 = 0, t_save = 0, t_plain = 0, bytes, comm;
    size_t lo, hi;
    char dir[256];
    if (ds_config_preset(name, &c, &err)) { fprintf(stderr, "%s\n", err.msg); return 2; }
    if (!(m = ds_model_new(&c, B, c.max_seq, &err)) || !(pool = ds_pool_new(threads, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    ds_model_init(m, 1337);
    if (!(d = ds_dp_new(m, micros, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    rank = ds_dp_rank(d);
    if (strcmp(mode, "none") && !(sv = ds_saver_new(&err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
    memset(&st, 0, sizeof st);
    snprintf(dir, sizeof dir, "build/bench_dp_ckpt");
    in = (int32_t *)malloc(sizeof(int32_t) * 2 * (size_t)B * (size_t)c.max_seq);
    tg = in + (size_t)B * c.max_seq;
    for (s = 0; s < warmup + steps; s++) {
        double ts = ds_now(), loss;
        if (s == warmup) { t0 = ts; ds_dp_traffic(d, NULL, &comm0); }
        for (j = 0; j < micros; j++) {
            for (i = 0; i < B * c.max_seq; i++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                in[i] = (int32_t)((rng >> 33) % (uint64_t)c.vocab), tg[i] = (int32_t)((rng >> 13) % (uint64_t)c.vocab);
            }
            if (j / ds_dp_local(d) == rank) ds_dp_micro(d, in, tg, NULL, B, c.max_seq, pool, &err);
        }
        if (ds_dp_step(d, &opt, 1e-4, &loss, NULL, pool, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        st.step = s + 1;
        if (sv && s >= warmup && (s - warmup) % every == every - 1) {
            int rc = !strcmp(mode, "sync") ? ds_checkpoint_save(m, NULL, &st, dir, DS_DTYPE_F32, &err)
                                           : (ds_saver_wait(sv, NULL, &err), ds_saver_start(sv, m, NULL, &st, dir, DS_DTYPE_F32, &err));
            if (rc) { fprintf(stderr, "%s\n", err.msg); return 1; }
            if (s >= warmup) t_save += ds_now() - ts, n_save++;
        } else if (s >= warmup) t_plain += ds_now() - ts, n_plain++;
    }
    if (sv) ds_saver_wait(sv, NULL, &err);
    {
        double dt = ds_now() - t0;
        ds_dp_traffic(d, &bytes, &comm);
        ds_dp_slice(d, &lo, &hi);
        if (rank == 0) {
            printf("config=%s ranks=%d threads=%d params=%zu save=%s\n", name, ds_dp_world(d), threads, ds_model_n_params(m), mode);
            printf("adam_state_bytes_rank0=%zu (of %zu unsharded)\n", 2 * (hi - lo) * sizeof(ds_float), 2 * ds_model_n_params(m) * sizeof(ds_float));
            if (n_save)
                printf("step_ms_plain=%.1f step_ms_with_save=%.1f step_ms_mean=%.1f (%d saves in %d steps)\n", 1e3 * t_plain / n_plain, 1e3 * t_save / n_save,
                       1e3 * (t_plain + t_save) / (n_plain + n_save), n_save, n_plain + n_save);
            printf("comm_share=%.4f tokens_per_s=%.1f\n", (comm - comm0) / dt, (double)steps * micros * B * c.max_seq / dt);
        }
    }
    ds_saver_free(sv);
    ds_model_free(m);
    ds_dp_free(d);
    ds_pool_free(pool);
    free(in);
    return 0;
}
