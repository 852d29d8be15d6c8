#!/usr/bin/env python3
"""torch_gpu_train.py - the PyTorch side of `make bench-cuda` (bench/bench_cuda.sh).

The model bench_train's CUDA build trains, written in PyTorch 2.x as its users write it:
  untied embedding -> L x [RMSNorm -> GQA attention (rotate_half RoPE, theta 10000,
  F.scaled_dot_product_attention with is_causal) -> residual -> RMSNorm -> SwiGLU -> residual]
  -> RMSNorm -> lm_head; no biases, RMSNorm eps 1e-6, init N(0, 0.02).
Precision: the paper's regime, as deepseek.h's bf16 mode: fp32 master weights, gradients and
AdamW moments; the matmuls and attention in bf16 under torch.autocast; the loss in fp32.
Step: zero_grad, forward, cross-entropy, backward, clip_grad_norm_(1.0), AdamW(lr 3e-4, betas
(0.9, 0.95), weight decay 0.1, fused=True), timed with torch.cuda.synchronize() around it.
--compile runs torch.compile(model) (default mode) and leaves its compilation in the warm-up.

FLOPs a token: 6 N_matmul + 12 L T d_attn (ds_model_flops_per_token's formula: the full T x T
square is counted, as in torch_llama_train.py). Prints a last line
  tokens_per_s=... tflops=... mfu=... peak_alloc_mib=... device_mem_mib=...
peak_alloc_mib is torch.cuda.max_memory_allocated; device_mem_mib the device memory in use
(torch.cuda.mem_get_info), the same measure bench_train prints for deepseek.h.

--device cpu is a smoke test of this script on a machine without a GPU (no timing meaning):
there, without SDPA (PyTorch 1.x), attention is written out, and fused AdamW is not used.
"""
import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--kv-heads", type=int, default=None, help="default: --heads")
    p.add_argument("--ffn", type=int, required=True, help="intermediate size (bench_train's: ds_ffn_dim(dim, 256))")
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps (torch.compile compiles in the first)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--device", default="cuda")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for the MFU (H100/H200 SXM: 989)")
    return p.parse_args()


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


def half_turn(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.h, self.kv, self.hd = a.heads, a.kv_heads, a.dim // a.heads
        self.norm1, self.norm2 = RMSNorm(a.dim), RMSNorm(a.dim)
        self.q = nn.Linear(a.dim, self.h * self.hd, bias=False)
        self.k = nn.Linear(a.dim, self.kv * self.hd, bias=False)
        self.v = nn.Linear(a.dim, self.kv * self.hd, bias=False)
        self.o = nn.Linear(self.h * self.hd, a.dim, bias=False)
        self.gate = nn.Linear(a.dim, a.ffn, bias=False)
        self.up = nn.Linear(a.dim, a.ffn, bias=False)
        self.down = nn.Linear(a.ffn, a.dim, bias=False)
        self.sdpa = hasattr(F, "scaled_dot_product_attention")

    def attend(self, q, k, v):
        if self.h != self.kv:  # GQA: each kv head serves h / kv query heads
            k = k.repeat_interleave(self.h // self.kv, dim=1)
            v = v.repeat_interleave(self.h // self.kv, dim=1)
        if self.sdpa:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        T = q.shape[2]  # the CPU smoke test on PyTorch 1.x only
        s = (q @ k.transpose(2, 3)) / math.sqrt(self.hd)
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
        return F.softmax(s.float(), dim=-1).to(q.dtype) @ v

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        n = self.norm1(x)
        q = self.q(n).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k(n).view(B, T, self.kv, self.hd).transpose(1, 2)
        v = self.v(n).view(B, T, self.kv, self.hd).transpose(1, 2)
        q, k = q * cos + half_turn(q) * sin, k * cos + half_turn(k) * sin
        y = self.attend(q, k, v).transpose(1, 2).reshape(B, T, self.h * self.hd)
        x = x + self.o(y)
        n = self.norm2(x)
        return x + self.down(F.silu(self.gate(n)) * self.up(n))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.dim)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim)
        self.head = nn.Linear(a.dim, a.vocab, bias=False)
        hd = a.dim // a.heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
        f = torch.outer(torch.arange(a.seq).float(), inv)
        f = torch.cat((f, f), dim=-1)
        self.register_buffer("cos", f.cos(), persistent=False)
        self.register_buffer("sin", f.sin(), persistent=False)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        x = self.embed(idx)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))


def main():
    a = parse_args()
    a.kv_heads = a.kv_heads or a.heads
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        print("torch_gpu_train: no CUDA device", file=sys.stderr)
        return 1
    torch.manual_seed(1337)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls (none under autocast) on tensor cores
    model = Llama(a).to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if cuda else {}))
    run = torch.compile(model) if a.compile else model
    hd = a.dim // a.heads
    n_matmul = a.layers * (a.dim * hd * (2 * a.heads + 2 * a.kv_heads) + 3 * a.dim * a.ffn) + a.vocab * a.dim
    flops_tok = 6.0 * n_matmul + 12.0 * a.layers * a.seq * a.dim
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__} | {torch.cuda.get_device_name(dev) if cuda else 'cpu'} | {'compile' if a.compile else 'eager'} | "
          f"vocab={a.vocab} dim={a.dim} layers={a.layers} heads={a.heads} kv_heads={a.kv_heads} ffn={a.ffn} seq={a.seq} "
          f"batch={a.batch} | {n_params / 1e6:.1f}M parameters | {flops_tok:.4g} FLOP a token | sdpa={model.blocks[0].sdpa}")
    g = torch.Generator(device="cpu").manual_seed(1)
    times = []
    ac = torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    for s in range(a.warmup + a.steps):
        tok = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=g).to(dev)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with ac:
            loss = run(tok[:, :-1], tok[:, 1:])
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(f"step {s:3d} ({'warmup' if s < a.warmup else 'timed'}) loss {loss.item():.4f} gnorm {gn.item():.3f} {dt * 1e3:.1f} ms")
        if s >= a.warmup:
            times.append(dt)
    med = statistics.median(times)
    tps = a.batch * a.seq / med
    tflops = tps * flops_tok / 1e12
    mem = ""
    if cuda:
        free, total = torch.cuda.mem_get_info(dev)
        mem = f" peak_alloc_mib={torch.cuda.max_memory_allocated(dev) / 2**20:.0f} device_mem_mib={(total - free) / 2**20:.0f}"
    print(f"step_ms median={med * 1e3:.2f}")
    print(f"tokens_per_s={tps:.1f} tflops={tflops:.2f} mfu={100 * tflops / a.peak_tflops:.1f}%{mem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
