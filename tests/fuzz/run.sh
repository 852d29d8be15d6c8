#!/bin/sh
# run.sh - `make fuzz-run`: each libFuzzer target for RUNS executions (default 1,000,000), starting
# from the seeds, with AddressSanitizer, UBSan and leak detection (TARGETS="json state" picks some). A crash or a leak stops it and
# leaves crash-*/leak-* files here; replay one with `build/fuzz_json crash-...`.
set -eu
RUNS=${RUNS:-1000000}
for t in ${TARGETS:-json tokenizer safetensors dataset tokens encode sample state deepseek index}; do
  mkdir -p tests/fuzz/corpus-$t
  cp tests/fuzz/seeds/$t/* tests/fuzz/corpus-$t/
  echo "fuzz_$t: $RUNS runs"
  # the loaders under a memory budget: a hostile header must not make them allocate first
  case $t in safetensors|state|index) LIMITS="-rss_limit_mb=512 -malloc_limit_mb=128" ;; *) LIMITS="" ;; esac
  ./build/fuzz_$t -runs=$RUNS -max_len=16384 $LIMITS -print_final_stats=1 tests/fuzz/corpus-$t 2>&1 | grep -E "stat::number_of_executed_units|stat::peak_rss|Done|ERROR|SUMMARY" || true
done
