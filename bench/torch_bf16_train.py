"""torch_bf16_train.py - the peer of deepseek.h's CPU bf16 mode: ../shared/bench/torch_llama_train.py
(the same model, data, AdamW and timing, same arguments) run under torch.autocast("cpu",
dtype=torch.bfloat16), PyTorch's mixed precision on a CPU: its linears and matmuls in bf16
(oneDNN's AVX512_BF16 kernels where the CPU has them), master weights, optimizer state and the
loss in fp32.
    python3 bench/torch_bf16_train.py --vocab 512 --dim 128 ... (torch_llama_train.py's flags)"""
import os
import runpy
import sys

import torch

script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "torch_llama_train.py")
if len(sys.argv) > 1 and sys.argv[1].startswith("--script="):
    script = sys.argv.pop(1).split("=", 1)[1]
sys.argv[0] = script
print(f"autocast cpu bfloat16 | mkldnn: {torch.backends.mkldnn.is_available()}")
with torch.autocast("cpu", dtype=torch.bfloat16):
    runpy.run_path(script, run_name="__main__")
