#!/bin/sh
# run.sh - `make fuzz-run`: each libFuzzer target for RUNS executions (default 1,000,000), starting
# from the seeds, with AddressSanitizer, UBSan and leak detection. A crash or a leak stops it and
# leaves crash-*/leak-* files here; replay one with `build/fuzz_json crash-...`.
set -eu
RUNS=${RUNS:-1000000}
for t in json tokenizer safetensors dataset tokens encode; do
  mkdir -p tests/fuzz/corpus-$t
  cp tests/fuzz/seeds/$t/* tests/fuzz/corpus-$t/
  echo "fuzz_$t: $RUNS runs"
  ./build/fuzz_$t -runs=$RUNS -max_len=16384 -print_final_stats=1 tests/fuzz/corpus-$t 2>&1 | grep -E "stat::number_of_executed_units|stat::peak_rss|Done|ERROR|SUMMARY" || true
done
