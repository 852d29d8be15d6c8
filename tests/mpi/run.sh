#!/bin/sh
# tests/mpi/run.sh - the data-parallel tests (make test runs them; each is skipped, with the reason,
# where Open MPI is absent). Every job runs on this machine only: shared memory and loopback.
#   sh tests/mpi/run.sh [BUILD_DIR]     (make mpi first: BUILD_DIR/mpi/test_mpi, 02_pretrain; KEEP=1 keeps the files)
B=${1:-build}
N_TESTS=11
if ! command -v mpicc >/dev/null 2>&1 || ! command -v mpirun >/dev/null 2>&1 || [ ! -x "$B/mpi/test_mpi" ]; then
    echo "mpi: skipped (Open MPI not installed: apt-get install libopenmpi-dev openmpi-bin)"
    echo "mpi: 0 passed, 0 failed, $N_TESTS skipped"
    exit 0
fi
# root may run mpirun here (CI runs as root); oversubscribe: 4 ranks on 2 cores; transports:
# shared memory (vader) and self, the runtime on loopback
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1
T=$B/mpi/test_mpi
S=$B/test_dp
P=$B/mpi/02_pretrain
W=$(mktemp -d)
[ -n "$KEEP" ] && echo "mpi: the work directory $W is kept (KEEP is set)" || trap 'rm -rf "$W"' EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; [ -n "$2" ] && sed 's/^/  /' "$2" | tail -20; fail=$((fail + 1)); }
mp() { np=$1; shift; timeout 120 mpirun -np "$np" "$@"; }

# 1. the same global batch (4 micro-batches) on 1 process, and on 1, 2 and 4 ranks: bit-identical
#    losses, gradient norms and final parameters
"$S" traj 4 6 > "$W/serial.txt" 2> "$W/err.txt" || bad "trajectory (serial)" "$W/err.txt"
for np in 1 2 4; do mp $np "$T" traj 4 6 > "$W/np$np.txt" 2>> "$W/err.txt"; done
if [ "$(grep -c '^step' "$W/serial.txt")" = 6 ] && cmp -s "$W/serial.txt" "$W/np1.txt" && cmp -s "$W/serial.txt" "$W/np2.txt" && cmp -s "$W/serial.txt" "$W/np4.txt"; then
    ok "mpi_trajectory_1_2_4_ranks_bit_identical_to_one_process"
else
    diff "$W/serial.txt" "$W/np2.txt" > "$W/diff.txt"; cat "$W/err.txt" >> "$W/diff.txt"; bad "mpi_trajectory_1_2_4_ranks_bit_identical_to_one_process" "$W/diff.txt"
fi

# 1b. 3 micro-batches a rank (not a power of two): still the same bits run after run on 2 ranks
#     (the trees of 1 and 2 ranks differ there, as docs/distributed.md says: not compared)
mp 2 "$T" traj 6 4 > "$W/k3a.txt" 2>&1; mp 2 "$T" traj 6 4 > "$W/k3b.txt" 2>&1
if [ "$(grep -c '^step' "$W/k3a.txt")" = 4 ] && cmp -s "$W/k3a.txt" "$W/k3b.txt"; then ok "mpi_three_micro_batches_a_rank_deterministic"
else cat "$W/k3a.txt" "$W/k3b.txt" > "$W/k3.txt"; bad "mpi_three_micro_batches_a_rank_deterministic" "$W/k3.txt"; fi

# 2. the ZeRO-1 slices tile the parameters exactly once
if mp 2 "$T" shards > "$W/sh2.txt" 2>&1 && mp 4 "$T" shards > "$W/sh4.txt" 2>&1 && grep -q "shards ok" "$W/sh2.txt" && grep -q "shards ok" "$W/sh4.txt"; then
    ok "mpi_zero1_shards_cover_parameters_once"
else cat "$W/sh2.txt" "$W/sh4.txt" > "$W/sh.txt"; bad "mpi_zero1_shards_cover_parameters_once" "$W/sh.txt"; fi

# 3. resume from a 2-rank checkpoint, on 2 ranks and on 1 and 4: the uninterrupted run's last steps
mp 2 "$T" traj 4 6 stop 3 save "$W/c3" 3 > "$W/first.txt" 2> "$W/err3.txt"
tail -n 4 "$W/serial.txt" > "$W/want.txt"
good=1
for np in 2 1 4; do
    mp $np "$T" traj 4 6 resume "$W/c3" > "$W/res$np.txt" 2>> "$W/err3.txt" && cmp -s "$W/res$np.txt" "$W/want.txt" || good=0
done
[ $good = 1 ] && ok "mpi_resume_2_rank_checkpoint_on_2_1_4_ranks" || bad "mpi_resume_2_rank_checkpoint_on_2_1_4_ranks" "$W/err3.txt"

# 4. the background save on 2 ranks: the checkpoint of step 3, written while steps 4-6 run, is
#    byte for byte the synchronous one; the run itself is unchanged
if mp 2 "$T" traj 4 6 save "$W/s3" 3 async "$W/a3" 3 > "$W/async.txt" 2> "$W/err4.txt" && cmp -s "$W/async.txt" "$W/serial.txt" &&
    cmp -s "$W/s3/model.safetensors" "$W/a3/model.safetensors" && cmp -s "$W/s3/trainer_state.safetensors" "$W/a3/trainer_state.safetensors" &&
    cmp -s "$W/s3/model.safetensors" "$W/c3/model.safetensors" &&
    mp 2 "$T" traj 4 6 resume "$W/a3" > "$W/resa.txt" 2>> "$W/err4.txt" && cmp -s "$W/resa.txt" "$W/want.txt"; then
    ok "mpi_async_checkpoint_equals_its_step_and_resumes"
else bad "mpi_async_checkpoint_equals_its_step_and_resumes" "$W/err4.txt"; fi

# 4b. a background save that fails on rank 0 (no such directory) is reported, at the next start,
#     by every rank -- inside the collective, so that no rank waits for another
mp 2 "$T" traj 4 6 async "$W/no/such/dir" 2 again 4 > "$W/abad.txt" 2>&1
rc=$?
if [ $rc != 0 ] && [ $rc != 124 ] && grep -q "^rank 0: async: the previous background save failed" "$W/abad.txt" &&
    grep -q "^rank 1: async: rank 0: the previous background save failed" "$W/abad.txt"; then
    ok "mpi_failed_background_save_reported_on_every_rank"
else bad "mpi_failed_background_save_reported_on_every_rank" "$W/abad.txt"; fi

# 5. a rank killed (SIGKILL) at step 4: the job ends with an error, no hang, mpirun names the rank, the
#    survivor says it was terminated; step 2's checkpoint loads
start=$(date +%s)
mp 2 "$T" traj 4 6 save "$W/d2" 2 die 1 4 > "$W/die.txt" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
if [ $rc != 0 ] && [ $rc != 124 ] && [ $took -lt 60 ] && grep -q "terminated by a signal" "$W/die.txt" && grep -q "rank 1 .*signal 9" "$W/die.txt" &&
    "$S" check "$W/d2" 2 >> "$W/die.txt" 2>&1; then
    ok "mpi_killed_rank_ends_the_job_checkpoint_intact (exit $rc after ${took}s)"
else bad "mpi_killed_rank_ends_the_job_checkpoint_intact (exit $rc after ${took}s)" "$W/die.txt"; fi

# 6. a failure on one rank (a token out of range on rank 1 at step 3): every rank stops with rank 1's message
mp 2 "$T" traj 4 6 bad 1 3 > "$W/bad.txt" 2>&1
rc=$?
if [ $rc != 0 ] && [ $rc != 124 ] && grep -q "^rank 0: step 3: rank 1: " "$W/bad.txt" && grep -q "^rank 1: step 3: rank 1: " "$W/bad.txt"; then
    ok "mpi_failure_on_one_rank_stops_every_rank_with_its_message"
else bad "mpi_failure_on_one_rank_stops_every_rank_with_its_message" "$W/bad.txt"; fi

# 7. examples/02_pretrain unchanged under mpirun: 1 and 2 ranks, the same checkpoint
args="--steps 12 --batch 8 --micro 2 --seq 64 --dim 32 --layers 1 --heads 2 --kv-heads 1 --vocab 512 --threads 1 --sample 0 --eval-every 6 --ckpt-every 6"
if mp 1 "$P" $args --out "$W/p1" > "$W/p1.txt" 2>&1 && mp 2 "$P" $args --out "$W/p2" > "$W/p2.txt" 2>&1 &&
    cmp -s "$W/p1/ckpt/model.safetensors" "$W/p2/ckpt/model.safetensors" && cmp -s "$W/p1/ckpt/trainer_state.safetensors" "$W/p2/ckpt/trainer_state.safetensors" &&
    [ "$(grep -c "^  validation:" "$W/p2.txt")" = 2 ]; then
    ok "mpi_02_pretrain_1_and_2_ranks_same_checkpoint"
else cat "$W/p1.txt" "$W/p2.txt" > "$W/p.txt"; bad "mpi_02_pretrain_1_and_2_ranks_same_checkpoint" "$W/p.txt"; fi

# 8. 02_pretrain on 2 ranks: stop at step 6, resume on 2 ranks, with background saves: the same end
if mp 2 "$P" $args --out "$W/p3" --stop-after 6 > "$W/p3.txt" 2>&1 && mp 2 "$P" $args --out "$W/p3" --resume --save-every-min 0.00001 >> "$W/p3.txt" 2>&1 &&
    cmp -s "$W/p1/ckpt/model.safetensors" "$W/p3/ckpt/model.safetensors" && grep -q "in the background" "$W/p3.txt"; then
    ok "mpi_02_pretrain_resume_with_background_saves"
else bad "mpi_02_pretrain_resume_with_background_saves" "$W/p3.txt"; fi

# 9. examples/05_sft unchanged under mpirun (token weights: the global sum divides): 1 and 2 ranks agree
sargs="--init $W/p1/ckpt --val $W/p1/val.tok --n-train 48 --epochs 1 --batch 8 --micro 2 --seq 64 --n-eval 2 --max-new 8 --threads 1"
if mp 1 "$B/mpi/05_sft" $sargs --out "$W/f1" > "$W/f1.txt" 2>&1 && mp 2 "$B/mpi/05_sft" $sargs --out "$W/f2" > "$W/f2.txt" 2>&1 &&
    cmp -s "$W/f1/ckpt/model.safetensors" "$W/f2/ckpt/model.safetensors" && [ -s "$W/f2/metrics.tsv" ]; then
    ok "mpi_05_sft_1_and_2_ranks_same_checkpoint"
else cat "$W/f1.txt" "$W/f2.txt" > "$W/f.txt"; bad "mpi_05_sft_1_and_2_ranks_same_checkpoint" "$W/f.txt"; fi

echo "mpi: $pass passed, $fail failed, 0 skipped"
[ $fail = 0 ]
