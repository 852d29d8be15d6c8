#!/bin/sh
# bench_decode.sh - generation beside llama2.c's run.c, in one run, on the same weights: the 15M,
# 110M and GQA shapes (vocab 32000), 1 and 2 threads, greedy, TOKENS tokens after the first.
#   LLAMA2C=DIR sh bench/bench_decode.sh     (DIR: a checkout of karpathy/llama2.c: run.c, tokenizer.bin)
# run.c is built with its own fastest OpenMP target (make runomp: -Ofast -fopenmp -march=native)
# and runs with OpenMP's default wait policy (its threads spin a while between the parallel
# loops of a token, as deepseek.h's pool does): OMP_WAIT_POLICY=passive, which PyTorch's tuned
# environment uses, puts them to sleep after every loop and cost run.c ~2/3 of its 2-thread speed.
# bench_decode exports its randomly initialised model to run.c's format, so both read the same
# weights (bf16: rounded to bf16, deepseek.h's BF16 inference model). Each is run ROUNDS times,
# alternating; prints the medians, their ratios, and the median and range of each round's own
# ratios (on a shared 2-core host a 2-thread figure can move by 70% from one run to the next).
set -eu
B=build
L=${LLAMA2C:-}
MODELS=${MODELS:-"15m 110m gqa"}
THREADS_LIST=${THREADS_LIST:-"1 2"}
TOKENS=${TOKENS:-200}
ROUNDS=${ROUNDS:-3}
[ -n "$L" ] && [ -f "$L/run.c" ] && [ -f "$L/tokenizer.bin" ] || { echo "bench_decode: set LLAMA2C to a llama2.c checkout (run.c, tokenizer.bin)"; exit 1; }
make -s $B/bench_decode
gcc -Ofast -fopenmp -march=native "$L/run.c" -lm -o $B/llama2c_run
W=${TMPDIR:-/tmp}/ds_bench_decode_$$
mkdir -p "$W"
med() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), llama2.c $(cd "$L" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
out=""
for m in $MODELS; do
  ./$B/bench_decode $m 1 2 f32 "$W/$m.bin" > /dev/null
  for t in $THREADS_LIST; do
    : > "$W/d"; : > "$W/b"; : > "$W/l"
    r=0
    while [ $r -lt $ROUNDS ]; do
      ./$B/bench_decode $m $t $TOKENS f32 | sed -n 's/^tokens_per_s=//p' >> "$W/d"
      ./$B/bench_decode $m $t $TOKENS bf16 | sed -n 's/^tokens_per_s=//p' >> "$W/b"
      env -u OMP_WAIT_POLICY OMP_NUM_THREADS=$t ./$B/llama2c_run "$W/$m.bin" -z "$L/tokenizer.bin" -t 0 -n $((TOKENS + 1)) 2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p' >> "$W/l"
      r=$((r + 1))
    done
    d=$(med < "$W/d"); bb=$(med < "$W/b"); l=$(med < "$W/l")
    # each round's own ratios (its three runs were back to back): the host's drift between
    # rounds cancels in them, so their median and range are printed beside the medians' ratios
    rr=$(paste "$W/d" "$W/b" "$W/l" | awk '$3 > 0 { printf "%.4f %.4f\n", $1 / $3, $2 / $3 }')
    pf=$(echo "$rr" | awk '{ print $1 }' | med); pb=$(echo "$rr" | awk '{ print $2 }' | med)
    rf=$(echo "$rr" | awk 'NR == 1 || $1 < lo { lo = $1 } NR == 1 || $1 > hi { hi = $1 } END { printf "%.2f-%.2f", lo, hi }')
    rb=$(echo "$rr" | awk 'NR == 1 || $2 < lo { lo = $2 } NR == 1 || $2 > hi { hi = $2 } END { printf "%.2f-%.2f", lo, hi }')
    line=$(awk -v m=$m -v t=$t -v d=$d -v b=$bb -v l=$l -v pf=$pf -v pb=$pb -v rf=$rf -v rb=$rb 'BEGIN { printf "%-5s %d thread(s)  deepseek.h f32 %7.1f tok/s, bf16 %7.1f tok/s | llama2.c (f32) %7.1f tok/s | ratios %.2fx, %.2fx | per round %.2fx (%s), %.2fx (%s)", m, t, d, b, l, (l > 0 ? d / l : 0), (l > 0 ? b / l : 0), pf, rf, pb, rb }')
    echo "$line"
    out="$out$line
"
  done
  rm -f "$W/$m.bin"
done
echo
echo "== deepseek.h vs llama2.c run.c (runomp), greedy, $TOKENS tokens, median of $ROUNDS =="
printf "%s" "$out"
rm -rf "$W"
