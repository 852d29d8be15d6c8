#!/bin/sh
# cuda_check.sh DIR - every check of the CUDA path that needs a GPU, in one run (make check-cuda).
# For a machine with an NVIDIA GPU, nvcc, PyTorch and Hugging Face transformers (no network).
# From a clean checkout, in well under 8 minutes on an H100/H200:
#   1. builds the CUDA path (make cuda: the examples and the test program);
#   2. runs the CUDA tests (every kernel against its CPU op; the fp32 model against the CPU build;
#      determinism; SFT masking; backward_tokens; decoding; checkpoints across backends); if
#      the tensor-core attention fails its test, the benchmark runs the trainer built with the
#      fp32 attention kernels (-DDS_CUDA_FP32_ATTENTION) and the results say so;
#   3. trains a small model with the CUDA build of 02_pretrain and times it;
#   4. loads that checkpoint into transformers' LlamaForCausalLM and compares its logits with
#      ours (the interop proof the CPU machines cannot give);
#   5. runs the benchmark beside PyTorch eager and torch.compile (bench/bench_cuda.sh: the 125m
#      and 1b configs in bf16, tokens/s, MFU, device memory), as far as the 8 minutes allow
#      (runs that would start after 7.5 minutes are skipped and say so);
# and writes DIR/cuda_check.txt (device, driver, date, every figure) and prints a summary.
set -u
DIR=${1:-build/cuda_check}
mkdir -p "$DIR"
OUT="$DIR/cuda_check.txt"
: > "$OUT"
say() { echo "$*" | tee -a "$OUT"; }
fail=0
say "== cuda_check: $(date -u '+%Y-%m-%d %H:%M UTC') =="
say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
say "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
say "torch: $(python3 -c 'import torch, transformers; print(torch.__version__, "| transformers", transformers.__version__)' 2>&1 | tail -1)"
t0=$(date +%s)
start=$t0
if make -j4 cuda build/cuda/bench_train build/cuda/bench_train_fp32att build/cuda/dump_logits > "$DIR/build.log" 2>&1; then say "build: ok ($(( $(date +%s) - t0 )) s)"; else say "build: FAILED (see $DIR/build.log)"; tail -20 "$DIR/build.log"; exit 1; fi
./build/cuda/test_cuda > "$DIR/test_cuda.log" 2>&1; rc=$?
grep -E '^(device|  |FAIL|cuda:)' "$DIR/test_cuda.log" | tee -a "$OUT"
[ $rc -eq 0 ] || { say "tests: FAILED"; fail=1; }
bench_bin=build/cuda/bench_train
if grep -q '^FAIL test_cuda_bf16_attention_tensor_cores' "$DIR/test_cuda.log"; then
  # the benchmark's figures still count with the fp32 attention kernels: say so beside them
  say "bench: the tensor-core attention failed its test; the benchmark runs build/cuda/bench_train_fp32att"
  bench_bin=build/cuda/bench_train_fp32att
fi
t0=$(date +%s)
if ./build/cuda/02_pretrain --steps 300 --eval-every 300 --ckpt-every 300 --sample 0 --out "$DIR/pretrain" > "$DIR/pretrain.log" 2>&1; then
  say "02_pretrain (CUDA, 300 steps of 16 x 128): $(( $(date +%s) - t0 )) s; $(grep -E 'step +300|validation' "$DIR/pretrain.log" | tr -s ' ' | tr '\n' ' ')"
else say "02_pretrain: FAILED ($(tail -1 "$DIR/pretrain.log"))"; fail=1; fi
if [ -d "$DIR/pretrain/ckpt" ]; then
  shape=$(./build/cuda/dump_logits "$DIR/pretrain/ckpt" "$DIR/logits" 3 64)
  if python3 tools/hf_logits.py "$DIR/pretrain/ckpt" "$DIR/logits" $shape >> "$OUT" 2>"$DIR/hf.log"; then tail -1 "$OUT"; else say "transformers interop: FAILED ($(tail -2 "$DIR/hf.log" | tr '\n' ' '))"; fail=1; fi
  make build/dump_logits > /dev/null 2>&1 && ./build/dump_logits "$DIR/pretrain/ckpt" "$DIR/cpu_logits" 3 64 > /dev/null &&
    python3 - "$DIR" <<'PY' | tee -a "$OUT"
import sys, numpy as np
d = sys.argv[1]
a, b = np.fromfile(d + "/logits.logits", "<f4"), np.fromfile(d + "/cpu_logits.logits", "<f4")
print(f"the CUDA-trained checkpoint on the CPU build: max |logit diff| vs the CUDA build {np.abs(a - b).max():.3e}")
PY
fi
DEADLINE=$((start + 450)) OUT="$OUT" BENCH_BIN=$bench_bin sh bench/bench_cuda.sh || fail=1
say "total: $(( $(date +%s) - start )) s"
say "== cuda_check: $([ $fail -eq 0 ] && echo 'all passed' || echo 'FAILURES above') =="
exit $fail
