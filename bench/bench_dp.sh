#!/bin/sh
# bench/bench_dp.sh - data parallelism on this machine (docs/distributed.md has the figures):
# tokens/s of the small config on 1 rank x 1 thread, 2 ranks x 1 thread and 1 rank x 2 threads,
# interleaved ROUNDS times (this machine is noisy), the ratios to 1 x 1, the MPI share of a step;
# then the step-time cost of a checkpoint, synchronous vs in the background (ds_saver).
#   make mpi build/bench_dp build/mpi/bench_dp && sh bench/bench_dp.sh [ROUNDS] [STEPS]
ROUNDS=${1:-3}
STEPS=${2:-8}
B=build
if ! command -v mpirun >/dev/null 2>&1 || [ ! -x $B/mpi/bench_dp ]; then
    echo "bench_dp: needs Open MPI and $B/mpi/bench_dp (make mpi $B/mpi/bench_dp)"; exit 1
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(mpirun --version | head -1)"
tps() { sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p'; }
share() { sed -n 's/.*comm_share=\([0-9.]*\).*/\1/p'; }
r11="" r21="" r12="" sh21=""
i=0
while [ $i -lt "$ROUNDS" ]; do
    # (mpirun binds each rank to a core: a rank with 2 threads needs --bind-to none)
    a=$(mpirun -np 1 $B/mpi/bench_dp small 1 "$STEPS" | tps)
    o=$(mpirun -np 2 $B/mpi/bench_dp small 1 "$STEPS")
    b=$(echo "$o" | tps); s=$(echo "$o" | share)
    c=$(mpirun -np 1 --bind-to none $B/mpi/bench_dp small 2 "$STEPS" | tps)
    echo "round $((i + 1)): 1x1 $a tok/s | 2 ranks x 1 $b tok/s (MPI share $s) | 1 x 2 threads $c tok/s"
    r11="$r11 $a" r21="$r21 $b" r12="$r12 $c" sh21="$sh21 $s"
    i=$((i + 1))
done
med() { echo "$@" | tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m11=$(med $r11); m21=$(med $r21); m12=$(med $r12)
echo "median tokens/s: 1 rank x 1 thread $m11 | 2 ranks x 1 thread $m21 ($(echo "$m21 $m11" | awk '{printf "%.2f", $1/$2}')x) | 1 rank x 2 threads $m12 ($(echo "$m12 $m11" | awk '{printf "%.2f", $1/$2}')x); MPI share of a 2-rank step: $(med $sh21)"
echo "checkpoint cost (small config, 1 thread a rank, a save every 3rd of 12 steps; none: no saves):"
for np in 1 2; do
    for mode in none sync async; do
        o=$(mpirun -np $np $B/mpi/bench_dp small 1 12 $mode 3)
        echo "  $np rank(s), $mode: $(echo "$o" | grep step_ms) $(echo "$o" | grep -o 'tokens_per_s=.*')"
    done
done
rm -rf $B/bench_dp_ckpt $B/bench_dp_ckpt.lock
