#!/bin/sh
# bench_train.sh - `make bench-train`: deepseek.h's trainer beside PyTorch, in one run, on the
# tiny / small / medium configs of ../shared/bench/README.md, same model, batch and threads.
# PyTorch runs in its *tuned* environment (run_torch.sh's): OMP_WAIT_POLICY=passive, glibc malloc
# with huge pages and no trimming, and OpenBLAS on the best kernel the CPU supports: the script asks
# PyTorch's OpenBLAS which kernel it runs (bench/blas_core.py, openblas_get_corename) with
# OPENBLAS_CORETYPE unset; if that is not the best for the CPU's vector width (SkylakeX and later
# for AVX-512, Haswell/Zen for AVX2) it forces the best, asks again, and prints the kernel beside
# the ratios. Against a fallback kernel (e.g. Prescott, which Debian's OpenBLAS 0.3.21 picks on
# the Emerald Rapids Xeon) it refuses to report a ratio.
# Prints tokens/s for both, the ratio, and GFLOP/s against the machine's FMA peak (fma_peak.c).
#   BASE_BIN=path   also run another bench_train binary (e.g. built from an earlier commit) in the
#                   same run, with its own ratio: a before/after comparison that shares the noise
#   TORCH_CORETYPE=X  run PyTorch with OPENBLAS_CORETYPE=X instead of the detected best
#   ROUNDS=n          n rounds per config (default 1; odd rounds in reverse order): the medians, and with n > 1 the
#                     median and range of each round's own ratio (the host drifts between runs)
#   PRECISION=bf16    deepseek.h's CPU bf16 mode (a CPU with AVX512_BF16: the linears' products in
#                     bf16, fp32 sums) beside PyTorch's mixed precision, the same script under
#                     torch.autocast("cpu", bfloat16) (bench/torch_bf16_train.py); default fp32
set -eu
B=build
BASE_BIN=${BASE_BIN:-}
TORCH_CORETYPE=${TORCH_CORETYPE:-}
SH=../shared/bench
THREADS=${THREADS:-2}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-1}
PRECISION=${PRECISION:-fp32}
case $PRECISION in fp32|bf16) ;; *) echo "bench: PRECISION=$PRECISION (fp32 or bf16)"; exit 2 ;; esac
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
# fma_peak.c always runs its AVX-512 test (it does not build, or dies, on an AVX2-only CPU): then
# bench/fma_peak_vec.c measures the peak at the widest vector -march=native gives
if [ -z "$PEAK" ] && gcc -O2 -march=native -ffp-contract=fast -fopenmp -o $B/fma_peak_vec bench/fma_peak_vec.c 2>/dev/null; then
  PEAK=$(OMP_NUM_THREADS=$THREADS ./$B/fma_peak_vec | awk '/total/ {v=$0} END {print v}' | grep -o '[0-9.]* GFLOP/s' | tail -1 | cut -d' ' -f1)
fi
# the bf16 mode's peak is vdpbf16ps's (bench/fma_peak_vec.c bf16), two products a lane: its % of peak is against that
PEAKNAME="FMA peak"
if [ $PRECISION = bf16 ] && gcc -O2 -march=native -ffp-contract=fast -fopenmp -o $B/fma_peak_vec bench/fma_peak_vec.c 2>/dev/null; then
  PEAK=$(OMP_NUM_THREADS=$THREADS ./$B/fma_peak_vec bf16 | awk '/total/ {v=$0} END {print v}' | grep -o '[0-9.]* GFLOP/s' | tail -1 | cut -d' ' -f1)
  PEAKNAME="vdpbf16ps peak"
fi
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 '^model' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')), $THREADS threads, $PEAKNAME ${PEAK:-?} GFLOP/s"
# PyTorch's OpenBLAS kernel: the best this CPU supports, detected, forced if need be, and checked
FLAGS=$(grep -m1 '^flags' /proc/cpuinfo)
case " $FLAGS " in
  *" avx512f "*) BEST=SkylakeX; GOOD="SkylakeX Cooperlake SapphireRapids" ;;
  *" avx2 "*)    BEST=Haswell;  GOOD="Haswell Zen SkylakeX Cooperlake SapphireRapids" ;;
  *)             BEST="";       GOOD="" ;;
esac
good_core() { [ -z "$GOOD" ] && return 0; for g in $GOOD; do [ "$(echo "$1" | tr A-Z a-z)" = "$(echo "$g" | tr A-Z a-z)" ] && return 0; done; return 1; }
CT="-u OPENBLAS_CORETYPE" CORE="" HOW="" FAIR=1
if [ $have_torch = 1 ]; then
  if [ -n "$TORCH_CORETYPE" ]; then CT="OPENBLAS_CORETYPE=$TORCH_CORETYPE"; HOW="forced by TORCH_CORETYPE"
  else
    auto=$(env -u OPENBLAS_CORETYPE $PY bench/blas_core.py 2>/dev/null | tail -1)
    if good_core "$auto"; then HOW="detected"
    else CT="OPENBLAS_CORETYPE=$BEST"; HOW="forced: with OPENBLAS_CORETYPE unset it runs $auto"; fi
  fi
  CORE=$(env $CT $PY bench/blas_core.py 2>/dev/null | tail -1)
  good_core "$CORE" || FAIR=0
  echo "PyTorch's OpenBLAS kernel: ${CORE:-?} ($HOW; best for this CPU: ${BEST:-any})"
  [ $FAIR = 1 ] || echo "bench: PyTorch runs the fallback kernel $CORE, not $BEST: no ratio is reported against it"
fi
# median of a list of numbers (one a line)
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
out=""
# the working tree's build, not a stale one (run directly, the script once timed an older binary)
make -s $B/bench_train || { echo "bench: could not build $B/bench_train"; exit 1; }
if [ $PRECISION = bf16 ] && ! ./$B/bench_train tiny 1 1 128 16 bf16 >/dev/null 2>&1; then
  echo "bench: this build has no CPU bf16 mode (it needs AVX512_BF16 and -march=native): $(./$B/bench_train tiny 1 1 128 16 bf16 2>&1 | tail -1)"; exit 1
fi
[ $PRECISION = bf16 ] && echo "precision: bf16 (deepseek.h's CPU bf16 mode; PyTorch under torch.autocast(cpu, bfloat16))"
for c in $CONFIGS; do
  case $c in
    tiny)   A="--vocab 512 --dim 128 --layers 4 --heads 4 --kv-heads 4 --seq 128 --batch 16"; TB="128 16" ;;
    small)  A="--vocab 4096 --dim 256 --layers 6 --heads 8 --kv-heads 4 --seq 256 --batch 8"; TB="256 8" ;;
    medium) A="--vocab 8192 --dim 512 --layers 8 --heads 8 --kv-heads 8 --seq 256 --batch 8"; TB="256 8" ;;
  esac
  DSX="" TPY=$SH/torch_llama_train.py
  if [ $PRECISION = bf16 ]; then DSX="$TB bf16" TPY="bench/torch_bf16_train.py --script=$SH/torch_llama_train.py"; fi
  # ROUNDS rounds, each deepseek.h, the base binary and PyTorch one after the other: the host's
  # speed drifts by tens of percent over minutes, and within a round the drift mostly cancels,
  # so each round's own ratio is kept beside the ratio of the medians. Odd rounds run in the
  # reverse order (PyTorch, base, deepseek.h): one binary against itself once read 0.87x of
  # itself over five rounds in the same order, the first place in every round the slower one
  run_ds() {
    ds=$(./$B/bench_train $c $THREADS $STEPS $DSX | tail -1)
    dtps=$(echo "$ds" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p'); dgf=$(echo "$ds" | sed -n 's/.*gflops=\([0-9.]*\).*/\1/p')
  }
  run_base() {
    btps=0
    if [ -n "$BASE_BIN" ]; then
      bs=$($BASE_BIN $c $THREADS $STEPS $DSX | tail -1)
      btps=$(echo "$bs" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p')
    fi
  }
  run_torch() {
    if [ $have_torch = 1 ]; then
      ts=$(env $CT $TUNED $PY $TPY $A --steps $STEPS --warmup 3 --threads $THREADS | tail -1)
      ttps=$(echo "$ts" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p'); tgf=$(echo "$ts" | sed -n 's/.*gflops=\([0-9.]*\).*/\1/p')
    else ttps=0; tgf=0; fi
  }
  r=0 dl="" gl="" bl="" tl="" tgl="" rl="" brl=""
  while [ $r -lt $ROUNDS ]; do
    if [ $((r % 2)) = 0 ]; then run_ds; run_base; run_torch; else run_torch; run_base; run_ds; fi
    [ $FAIR = 1 ] || ttps=0
    dl="$dl$dtps
" gl="$gl$dgf
" bl="$bl$btps
" tl="$tl$ttps
" tgl="$tgl${tgf:-0}
"
    rl="$rl$(awk -v d=$dtps -v t=$ttps 'BEGIN { print (t > 0 ? d / t : 0) }')
" brl="$brl$(awk -v d=$dtps -v b=$btps 'BEGIN { print (b > 0 ? d / b : 0) }')
"
    [ $ROUNDS -gt 1 ] && echo "  $c round $((r + 1)): deepseek.h $dtps tok/s${BASE_BIN:+, base $btps}, PyTorch $ttps"
    r=$((r + 1))
  done
  dtps=$(printf "%s" "$dl" | median); dgf=$(printf "%s" "$gl" | median); btps=$(printf "%s" "$bl" | median)
  ttps=$(printf "%s" "$tl" | median); tgf=$(printf "%s" "$tgl" | median)
  line=$(awk -v c=$c -v d=$dtps -v t=$ttps -v dg=$dgf -v tg=$tgf -v p="${PEAK:-0}" 'BEGIN {
    printf "%-7s deepseek.h %8.0f tok/s %6.1f GFLOP/s (%4.1f%% of peak) | PyTorch %8.0f tok/s %6.1f GFLOP/s | ratio %s",
      c, d, dg, (p > 0 ? 100 * dg / p : 0), t, tg, (t > 0 ? sprintf("%.2fx", d / t) : "n/a") }')
  if [ $ROUNDS -gt 1 ] && [ "$(printf "%s" "$tl" | median)" != 0 ]; then
    line="$line$(printf "%s" "$rl" | sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
      printf " | per round %.2fx (%.2f-%.2f)", m, v[1], v[NR] }')"
  fi
  if [ -n "$BASE_BIN" ]; then
    line="$line$(awk -v b=$btps -v t=$ttps -v d=$dtps 'BEGIN { printf " | base %8.0f tok/s, ratio %.2fx; this/base %.3f", b, (t > 0 ? b / t : 0), (b > 0 ? d / b : 0) }')"
    [ $ROUNDS -gt 1 ] && line="$line$(printf "%s" "$brl" | sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
      printf " (per round %.3f, %.3f-%.3f)", m, v[1], v[NR] }')"
  fi
  echo "$line"
  out="$out$line
"
done
echo
echo "== deepseek.h vs tuned PyTorch (its OpenBLAS kernel: ${CORE:-?}, $HOW), $PRECISION, $THREADS threads, median of $STEPS steps, $ROUNDS round(s)${BASE_BIN:+; base: $BASE_BIN} =="
printf "%s" "$out"
[ $have_torch = 1 ] || echo "(PyTorch not installed: apt-get install python3-torch)"
