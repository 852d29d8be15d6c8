#!/bin/sh
# bench_cuda.sh - `make bench-cuda`: the CUDA trainer beside PyTorch on one GPU, in one run (issue 11,
# section 5). Two LLaMA configs (vocab 32000), each in the paper's bf16 regime:
#   125m  d 768, L 12, H 12 / 12, T 1024, batch 16
#   1b    d 2048, L 20, H 16 / 4 (GQA), T 2048, batch 4
# and on each: deepseek.h's CUDA build (bench_train CONFIG 1 STEPS SEQ BATCH bf16), PyTorch eager
# (F.scaled_dot_product_attention, fused AdamW, autocast bf16) and torch.compile of the same model
# (bench/torch_gpu_train.py). Then 125m runs deepseek.h bf16 again with its attention on the fp32
# kernels (the tensor-core attention's A/B, build/cuda/bench_train_fp32att), and in fp32 (its test
# mode), last.
# Prints, per run: tokens/s, MFU (ds_model_flops_per_token's 6 N + 12 L T d over PEAK_TFLOPS, the
# dense bf16 peak: 989 for an H100/H200 SXM) and the device memory in use after the timed steps
# (cudaMemGetInfo / torch.cuda.mem_get_info: the same measure for both; PyTorch's
# max_memory_allocated beside it); then deepseek.h / eager and deepseek.h / compile.
#   STEPS=n        timed steps a run (default 10), after 3 untimed ones (compile happens there)
#   CONFIGS="..."  default "125m 1b"
#   DEADLINE=t     (epoch seconds) runs that would start after it are skipped and say so
#                  (tools/cuda_check.sh keeps its 8 minutes this way)
#   OUT=file       also append every line to it
#   SEQ=n BATCH=n  override both configs' (a smoke test of this script: figures then mean nothing)
#   BENCH_BIN=path deepseek.h's trainer for the main runs (default build/cuda/bench_train;
#                  tools/cuda_check.sh passes the fp32-attention build when the tensor-core
#                  attention fails its test)
# Without a GPU it says so and exits 0.
set -u
CU=build/cuda
STEPS=${STEPS:-10}
d125=failed
CONFIGS=${CONFIGS:-"125m 1b"}
PEAK=${PEAK_TFLOPS:-989}
DEADLINE=${DEADLINE:-0}
OUT=${OUT:-/dev/null}
PY=${PY:-python3}
SEQ_OVERRIDE=${SEQ:-}; BATCH_OVERRIDE=${BATCH:-}
BIN=${BENCH_BIN:-$CU/bench_train}
say() { echo "$*" | tee -a "$OUT"; }
if ! nvidia-smi -L > /dev/null 2>&1; then say "bench-cuda: skipped (no CUDA device: nvidia-smi finds none)"; exit 0; fi
make --no-print-directory $CU/bench_train $CU/bench_train_fp32att > /dev/null || { say "bench-cuda: the CUDA build of bench_train failed"; exit 1; }
[ "$BIN" = "$CU/bench_train" ] || say "bench-cuda: deepseek.h's runs use $BIN"
say "bench-cuda: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1), $(date -u '+%Y-%m-%d'), $STEPS timed steps a run, MFU over $PEAK TFLOP/s"
late() { [ "$DEADLINE" -gt 0 ] && [ "$(date +%s)" -ge "$DEADLINE" ]; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | tail -1; }
# ours CONFIG PRECISION SEQ BATCH [BINARY] -> "tok/s mfu mem"; sets FFN from bench_train's header line
ours() {
  o=$(timeout 240 "./${5:-$BIN}" "$1" 1 "$STEPS" "$3" "$4" "$2" 2>&1)
  FFN=$(echo "$o" | head -1 | tr ' ' '\n' | sed -n 's/^ffn=//p')
  t=$(echo "$o" | sed -n 's/^tokens_per_s=\([0-9.]*\).*/\1/p'); g=$(echo "$o" | sed -n 's/.* gflops=\([0-9.]*\).*/\1/p')
  m=$(echo "$o" | sed -n 's/^device_mem_mib=\([0-9]*\).*/\1/p')
  if [ -z "$t" ]; then echo "$o" | tail -3 >&2; echo "failed"; return; fi
  awk -v t="$t" -v g="$g" -v p="$PEAK" -v m="$m" 'BEGIN { printf "%.0f %.1f %s", t, 100 * g / 1000 / p, m }'
}
# torch CONFIG-ARGS... -> "tok/s mfu mem alloc"
torch_run() {
  o=$(timeout 300 $PY bench/torch_gpu_train.py --steps "$STEPS" --peak-tflops "$PEAK" "$@" 2>&1)
  l=$(echo "$o" | grep '^tokens_per_s=' | tail -1)
  if [ -z "$l" ]; then echo "$o" | tail -3 >&2; echo "failed"; return; fi
  echo "$(field "$l" tokens_per_s | cut -d. -f1) $(field "$l" mfu | tr -d %) $(field "$l" device_mem_mib) $(field "$l" peak_alloc_mib)"
}
show() { # label "tok/s mfu mem [alloc]"
  set -- "$1" $2
  if [ "$2" = failed ] || [ "$2" = skipped ]; then say "  $(printf '%-26s' "$1") $2"; return; fi
  say "  $(printf '%-26s %9s tok/s  MFU %5s%%  device memory %6s MiB%s' "$1" "$2" "$3" "$4" "${5:+ (max allocated $5 MiB)}")"
}
ratio() { [ "$1" = failed ] || [ "$1" = skipped ] || [ "$2" = failed ] || [ "$2" = skipped ] && { echo "n/a"; return; }; awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
# shape CONFIG: sets SEQ, BATCH (the overrides applied) and TA (the PyTorch script's model flags)
shape() {
  case $1 in
    125m) SEQ=1024; BATCH=16; TA="--vocab 32000 --dim 768 --layers 12 --heads 12 --kv-heads 12" ;;
    1b)   SEQ=2048; BATCH=4;  TA="--vocab 32000 --dim 2048 --layers 20 --heads 16 --kv-heads 4" ;;
    *) say "bench-cuda: unknown config $1 (125m, 1b)"; exit 2 ;;
  esac
  SEQ=${SEQ_OVERRIDE:-$SEQ}; BATCH=${BATCH_OVERRIDE:-$BATCH}
}
for c in $CONFIGS; do
  shape $c
  say "$c (T $SEQ, batch $BATCH):"
  FFN=""
  if late; then d=skipped; else d=$(ours $c bf16 $SEQ $BATCH); fi
  show "deepseek.h bf16" "$d"
  [ $c = 125m ] && d125=$d
  [ -n "$FFN" ] || FFN=$([ $c = 1b ] && echo 5632 || echo 2048) # ds_ffn_dim(d, 256), as bench_train
  if late; then e=skipped; else e=$(torch_run $TA --ffn "$FFN" --seq $SEQ --batch $BATCH); fi
  show "PyTorch eager (SDPA)" "$e"
  if late; then k=skipped; else k=$(torch_run $TA --ffn "$FFN" --seq $SEQ --batch $BATCH --compile); fi
  show "PyTorch torch.compile" "$k"
  d1=$(echo "$d" | cut -d' ' -f1); e1=$(echo "$e" | cut -d' ' -f1); k1=$(echo "$k" | cut -d' ' -f1)
  say "  deepseek.h bf16 / eager $(ratio "$d1" "$e1"), / torch.compile $(ratio "$d1" "$k1")"
done
# the tensor-core attention's A/B, then fp32 (the test mode): the first things the deadline drops
case " $CONFIGS " in *" 125m "*)
  shape 125m
  if [ "$BIN" = "$CU/bench_train" ]; then
    if late; then a=skipped; else a=$(ours 125m bf16 $SEQ $BATCH $CU/bench_train_fp32att); fi
    say "125m (T $SEQ, batch $BATCH), bf16 with the attention on the fp32 kernels (-DDS_CUDA_FP32_ATTENTION):"
    show "deepseek.h bf16, fp32 attn" "$a"
    say "  tensor-core attention / fp32 attention: $(ratio "$(echo "$d125" | cut -d' ' -f1)" "$(echo "$a" | cut -d' ' -f1)")"
  fi
  if late; then f=skipped; else f=$(ours 125m fp32 $SEQ $BATCH); fi
  say "125m (T $SEQ, batch $BATCH), fp32:"
  show "deepseek.h fp32" "$f" ;;
esac
