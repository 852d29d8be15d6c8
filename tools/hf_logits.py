#!/usr/bin/env python3
"""hf_logits.py CKPT_DIR PREFIX - load a deepseek.h checkpoint with Hugging Face transformers'
LlamaForCausalLM.from_pretrained (float32), run the sequences of PREFIX.ids (written by
tools/dump_logits), and compare its logits with PREFIX.logits. Prints one line
`hf_logits: max_abs=... max_rel=... argmax_agree=...` and exits 1 when they disagree (max |diff|
above 1e-3 + 1e-3 |ref|). Needs torch and transformers (the GPU machine has both)."""
import sys

import numpy as np
import torch
from transformers import LlamaForCausalLM


def main():
    ckpt, prefix = sys.argv[1], sys.argv[2]
    B, T, V = (int(x) for x in sys.argv[3:6])
    ids = np.fromfile(prefix + ".ids", dtype="<i4").reshape(B, T)
    ours = np.fromfile(prefix + ".logits", dtype="<f4").reshape(B, T, V)
    model = LlamaForCausalLM.from_pretrained(ckpt, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(ids.astype(np.int64))).logits.float().numpy()
    diff = np.abs(ours - ref)
    rel = diff / (1e-3 + np.abs(ref))
    agree = float((ours.argmax(-1) == ref.argmax(-1)).mean())
    ok = bool((diff <= 1e-3 + 1e-3 * np.abs(ref)).all())
    print(f"hf_logits: max_abs={diff.max():.3e} max_rel={rel.max():.3e} argmax_agree={agree:.4f} -> {'ok' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
