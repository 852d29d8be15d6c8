#!/bin/sh
# bench_ops.sh - `make bench-ops`: the elementwise ops and attention one task at a time
# (bench/bench_ops.c), this header beside an earlier revision's, in one run.
#   BASE=<git revision>  build bench_ops from that revision's deepseek.h too and alternate the two
#                        ROUNDS times (default 3); without BASE only this header runs
#   REPS=n               calls per op, the best kept (default 50)
# Prints each op's best time in microseconds, and with BASE the ratio base / this.
set -eu
B=build
REPS=${REPS:-50}
ROUNDS=${ROUNDS:-3}
BASE=${BASE:-}
CC=${CC:-cc}
FLAGS="-std=c99 -O3 -march=native -ffp-contract=fast"
mkdir -p $B
$CC $FLAGS -DDS_HEADER='"../deepseek.h"' -o $B/bench_ops bench/bench_ops.c -lm -lpthread
if [ -n "$BASE" ]; then
  git show "$BASE:deepseek.h" > $B/bench_ops_base.h
  $CC $FLAGS -DDS_HEADER='"../build/bench_ops_base.h"' -o $B/bench_ops_base bench/bench_ops.c -lm -lpthread
fi
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 '^model' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')), one thread, best of $REPS calls, microseconds"
if [ -z "$BASE" ]; then ./$B/bench_ops "$REPS"; exit 0; fi
r=0; : > $B/bench_ops_this.txt; : > $B/bench_ops_base.txt
while [ $r -lt "$ROUNDS" ]; do
  ./$B/bench_ops_base "$REPS" >> $B/bench_ops_base.txt
  ./$B/bench_ops "$REPS" >> $B/bench_ops_this.txt
  r=$((r + 1))
done
# per op: the best over the rounds of each build
awk -v base="$BASE" '
  FNR == NR { k = $0; sub(/ *[0-9.]+$/, "", k); v = $NF; if (!(k in b) || v < b[k]) b[k] = v; if (!(k in seen)) { seen[k] = 1; order[++n] = k }; next }
  { k = $0; sub(/ *[0-9.]+$/, "", k); v = $NF; if (!(k in t) || v < t[k]) t[k] = v }
  END { printf "%-28s %10s %10s %8s\n", "op", base, "this", "base/this";
        for (i = 1; i <= n; i++) { k = order[i]; printf "%-28s %10.1f %10.1f %7.2fx\n", k, b[k], t[k], b[k] / t[k] } }' \
  $B/bench_ops_base.txt $B/bench_ops_this.txt
