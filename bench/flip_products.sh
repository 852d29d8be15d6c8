#!/bin/sh
# flip_products.sh - the linears' products of a training step from two headers, flipped every
# call in one process (bench/flip_products.c): the way to see a kernel change of a few percent on
# a host whose speed drifts by tens of percent between runs.
#   A is BASE's deepseek.h (a git revision, default HEAD), or the file HEADER_A;
#   B is the working tree's deepseek.h, or the file HEADER_B
#   CONFIG (tiny, small, medium; default medium), THREADS (2), REPS (8), PRECISION (fp32, bf16)
#   MODE=train: whole training steps instead (bench/flip_train.c), STEPS a side (default 20),
#   each side with its own model; prints the median step of each, the per-step ratios, and
#   whether the two sides' losses were bit-identical
#   EXTRA: more compiler flags for both sides; EXTRA_B: for B alone (EXTRA_B=-DDS_MM_KC=256 with
#   BASE=HEAD and a clean tree compares the float path's k-block of 256 with the default 128)
# Prints each product's best time for A and B and their ratio, then the whole set's GFLOP/s.
set -eu
D=build
CONFIG=${CONFIG:-medium}
THREADS=${THREADS:-2}
REPS=${REPS:-8}
PRECISION=${PRECISION:-fp32}
EXTRA=${EXTRA:-}
EXTRA_B=${EXTRA_B:-}
CC=${CC:-cc}
FLAGS="-std=c99 -O3 -march=native -ffp-contract=fast"
mkdir -p $D
if [ -n "${HEADER_A:-}" ]; then HA=$HEADER_A; else git show "${BASE:-HEAD}:deepseek.h" > $D/flip_a.h; HA=$D/flip_a.h; fi
HB=${HEADER_B:-deepseek.h}
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
$CC $FLAGS $EXTRA -DDS_HEADER="\"$(abs "$HA")\"" -DFLIP_NAME=flip_a -c bench/flip_side.c -o $D/flip_a.o
$CC $FLAGS $EXTRA $EXTRA_B -DDS_HEADER="\"$(abs "$HB")\"" -DFLIP_NAME=flip_b -c bench/flip_side.c -o $D/flip_b.o
MODE=${MODE:-products}
case $MODE in products|train) ;; *) echo "flip: MODE=$MODE (products or train)"; exit 2 ;; esac
$CC -std=c99 -O2 -o $D/flip_$MODE bench/flip_$MODE.c $D/flip_a.o $D/flip_b.o -lm -lpthread
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 '^model' /proc/cpuinfo | cut -d: -f2 | tr -d ' '))"
echo "A: ${HEADER_A:-${BASE:-HEAD}:deepseek.h}   B: $HB   $CONFIG, $PRECISION, $THREADS thread(s), flags: $FLAGS $EXTRA${EXTRA_B:+ (B: $EXTRA_B)}"
if [ "$MODE" = train ]; then ./$D/flip_train "$CONFIG" "$THREADS" "${STEPS:-20}" "$PRECISION"; exit; fi
./$D/flip_products "$CONFIG" "$THREADS" "$REPS" "$PRECISION"
