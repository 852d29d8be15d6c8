#!/bin/sh
# bench_train.sh - `make bench-train`: deepseek.h's trainer beside PyTorch, in one run, on the
# tiny / small / medium configs of ../shared/bench/README.md, same model, batch and threads.
# PyTorch runs in its *tuned* environment (run_torch.sh's): OPENBLAS_CORETYPE unset (AVX-512
# kernels), OMP_WAIT_POLICY=passive, glibc malloc with huge pages and no trimming.
# Prints tokens/s for both, the ratio, and GFLOP/s against the machine's FMA peak (fma_peak.c).
#   BASE_BIN=path   also run another bench_train binary (e.g. built from an earlier commit) in the
#                   same run, with its own ratio: a before/after comparison that shares the noise
#   TORCH_CORETYPE=X  run PyTorch with OPENBLAS_CORETYPE=X instead of unset (on CPUs Debian's
#                   OpenBLAS 0.3.21 does not recognise, unset falls back to its generic kernels)
set -eu
B=build
BASE_BIN=${BASE_BIN:-}
TORCH_CORETYPE=${TORCH_CORETYPE:-}
SH=../shared/bench
THREADS=${THREADS:-2}
STEPS=${STEPS:-20}
CONFIGS=${CONFIGS:-"tiny small medium"}
PY=/usr/bin/python3
# Debian's PyTorch finds its BLAS through libblas.so.3: without OpenBLAS that is the netlib
# reference BLAS (~3 GFLOP/s), which would make any comparison meaningless.
if ! ls /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null 2>&1 && \
   ! ls /usr/lib/*/openblas*/libblas.so.3 >/dev/null 2>&1; then
  echo "bench: PyTorch needs OpenBLAS behind libblas.so.3 for a fair baseline: apt-get install -y libopenblas-dev"; exit 1
fi
TUNED="OMP_WAIT_POLICY=passive GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=4294967296:glibc.malloc.mmap_threshold=33554432"
have_torch=0
$PY -c 'import torch' 2>/dev/null && have_torch=1
PEAK=""
if gcc -O2 -march=native -fopenmp -o $B/fma_peak $SH/fma_peak.c 2>/dev/null; then
  PEAK=$(OMP_NUM_THREADS=$THREADS ./$B/fma_peak | awk '/total/ {v=$0} END {print v}' | grep -o '[0-9.]* GFLOP/s' | tail -1 | cut -d' ' -f1)
fi
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads, FMA peak ${PEAK:-?} GFLOP/s"
out=""
for c in $CONFIGS; do
  case $c in
    tiny)   A="--vocab 512 --dim 128 --layers 4 --heads 4 --kv-heads 4 --seq 128 --batch 16" ;;
    small)  A="--vocab 4096 --dim 256 --layers 6 --heads 8 --kv-heads 4 --seq 256 --batch 8" ;;
    medium) A="--vocab 8192 --dim 512 --layers 8 --heads 8 --kv-heads 8 --seq 256 --batch 8" ;;
  esac
  ds=$(./$B/bench_train $c $THREADS $STEPS | tail -1)
  dtps=$(echo "$ds" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p'); dgf=$(echo "$ds" | sed -n 's/.*gflops=\([0-9.]*\).*/\1/p')
  btps=0
  if [ -n "$BASE_BIN" ]; then
    bs=$($BASE_BIN $c $THREADS $STEPS | tail -1)
    btps=$(echo "$bs" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p')
  fi
  if [ $have_torch = 1 ]; then
    if [ -n "$TORCH_CORETYPE" ]; then CT="OPENBLAS_CORETYPE=$TORCH_CORETYPE"; else CT="-u OPENBLAS_CORETYPE"; fi
    ts=$(env $CT $TUNED $PY $SH/torch_llama_train.py $A --steps $STEPS --warmup 3 --threads $THREADS | tail -1)
    ttps=$(echo "$ts" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p'); tgf=$(echo "$ts" | sed -n 's/.*gflops=\([0-9.]*\).*/\1/p')
  else ttps=0; tgf=0; fi
  line=$(awk -v c=$c -v d=$dtps -v t=$ttps -v dg=$dgf -v tg=$tgf -v p="${PEAK:-0}" 'BEGIN {
    printf "%-7s deepseek.h %8.0f tok/s %6.1f GFLOP/s (%4.1f%% of peak) | PyTorch %8.0f tok/s %6.1f GFLOP/s | ratio %.2fx",
      c, d, dg, (p > 0 ? 100 * dg / p : 0), t, tg, (t > 0 ? d / t : 0) }')
  if [ -n "$BASE_BIN" ]; then
    line="$line$(awk -v b=$btps -v t=$ttps -v d=$dtps 'BEGIN { printf " | base %8.0f tok/s, ratio %.2fx; this/base %.3f", b, (t > 0 ? b / t : 0), (b > 0 ? d / b : 0) }')"
  fi
  echo "$line"
  out="$out$line
"
done
echo
echo "== deepseek.h vs tuned PyTorch (OPENBLAS_CORETYPE ${TORCH_CORETYPE:-unset}), $THREADS threads, median of $STEPS steps${BASE_BIN:+; base: $BASE_BIN} =="
printf "%s" "$out"
[ $have_torch = 1 ] || echo "(PyTorch not installed: apt-get install python3-torch)"
