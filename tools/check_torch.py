#!/usr/bin/env python3
"""check_torch.py - deepseek.h's loss and gradients against an independent PyTorch model.

`make check-torch` runs it (Debian's python3-torch; it skips cleanly without torch). For each
config, build/torch_ref (float) and build/torch_ref_f64 (double) dump the weights, a batch with
per-token weights, their loss and every gradient (safetensors). This script rebuilds the model in
PyTorch -- written here from the Hugging Face LLaMA definition, not from deepseek.h -- loads the
same weights, computes the weighted cross-entropy and its gradients with autograd, and compares
each tensor: ||g_ds - g_torch|| / ||g_torch|| <= 1e-5 in float32, 1e-10 in float64.

  --fixture PATH   also write PyTorch's gradients for the first config (float32) there, which
                   `make test` checks deepseek.h against without Python (and, beside it, the DPO
                   and AdamW fixtures)

AdamW: build/torch_ref --adamw dumps the gradients and parameters of several AdamW steps (clipped
and unclipped, warm-up learning rates); torch.optim.AdamW is fed the same gradients and must make
the same updates.
"""
import json, math, os, struct, subprocess, sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("check-torch: skipped (PyTorch not installed: apt-get install python3-torch)")
    sys.exit(0)

CONFIGS = [  # V, D, L, H, KV, F, B, T
    (64, 32, 2, 4, 4, 96, 2, 16),     # multi-head
    (97, 48, 3, 6, 2, 128, 2, 24),    # GQA 3:1, odd vocabulary
    (50, 24, 2, 3, 1, 64, 3, 9),      # one kv head, odd sequence length
    (128, 64, 2, 8, 4, 176, 2, 32),   # GQA 2:1
]

DT = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "I32": (torch.int32, 4)}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, h in header.items():
        dtype, size = DT[h["dtype"]]
        b, e = h["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + b:base + e]), dtype=dtype)
        out[name] = t.reshape(h["shape"]).clone()
    return out, meta


def write_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": {torch.float32: "F32", torch.float64: "F64", torch.int32: "I32"}[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def torch_token_losses(p, inputs, targets, cfg, dtype):
    V, D, L, H, KV, FF, B, T = cfg
    hd, eps = D // H, 1e-6
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)
    x = p["model.embed_tokens.weight"][inputs.long()].view(B, T, D)
    mask = torch.full((T, T), float("-inf"), dtype=dtype).triu(1)
    for l in range(L):
        pre = f"model.layers.{l}."
        h = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = (h @ p[pre + "self_attn.q_proj.weight"].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ p[pre + "self_attn.k_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        v = (h @ p[pre + "self_attn.v_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)  # query head h reads kv head h // (H / KV)
        v = v.repeat_interleave(H // KV, dim=1)
        att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(hd) + mask, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + y @ p[pre + "self_attn.o_proj.weight"].T
        h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
        g, u = h @ p[pre + "mlp.gate_proj.weight"].T, h @ p[pre + "mlp.up_proj.weight"].T
        x = x + (F.silu(g) * u) @ p[pre + "mlp.down_proj.weight"].T
    logits = rms_norm(x, p["model.norm.weight"], eps) @ p["lm_head.weight"].T
    return F.cross_entropy(logits.view(B * T, V), targets.long(), reduction="none")


def torch_loss(p, inputs, targets, weights, cfg, dtype):
    per_token = torch_token_losses(p, inputs, targets, cfg, dtype)
    w = weights.to(dtype)
    return (per_token * w).sum() / w.sum()


def worst_error(t, meta, params, names, loss):
    """The largest of the loss's relative error and each tensor's ||g - g_torch|| / ||g_torch||."""
    loss_err = abs(float(meta["loss"]) - loss.item()) / abs(loss.item())
    worst, worst_name = loss_err, "loss"
    for n in names:
        g_ref = params[n].grad.double()
        err = ((t["grad." + n].double() - g_ref).norm() / g_ref.norm()).item()
        if err > worst:
            worst, worst_name = err, n
    return loss_err, worst, worst_name


def write_fixture(path, t, meta, params, names, loss, batch_keys):
    """The weights, the batch and PyTorch's loss and gradients, for make test to check without PyTorch."""
    out = {n: t[n] for n in names}
    out.update({"torch_grad." + n: params[n].grad.detach().float() for n in names})
    out.update({k: t[k] for k in batch_keys})
    meta2 = dict(meta)
    meta2["torch_loss"] = repr(loss.item())
    meta2["torch_version"] = torch.__version__
    write_safetensors(path, out, meta2)
    print(f"check-torch: fixture written to {path}")


def check_dpo(binary, cfg, seed, loss_type, beta, eps, tol, fixture=None):
    """DPO written from the paper (Rafailov et al.) and TRL's dpo_loss: sequence log-probs summed
    over the response tokens (averaged for IPO), the reference log-probs given."""
    V, D, L, H, KV, FF, T = cfg
    path = f"build/torch_dpo_{os.path.basename(binary)}_{seed}_{loss_type}.safetensors"
    subprocess.run([binary, "--dpo", path] + [str(c) for c in cfg] + [str(seed), str(loss_type), repr(beta), repr(eps)], check=True,
                   stdout=subprocess.DEVNULL)
    t, meta = read_safetensors(path)
    names = [n for n in t if not n.startswith(("grad.", "batch.", "dpo."))]
    dtype = t[names[0]].dtype
    params = {n: t[n].clone().requires_grad_(True) for n in names}
    rows = int(meta["B"])
    per_token = torch_token_losses(params, t["batch.inputs"], t["batch.targets"], (V, D, L, H, KV, FF, rows, T), dtype).view(rows, T)
    mask = t["batch.weights"].to(dtype).view(rows, T)
    logp = -(per_token * mask).sum(-1)
    if loss_type == 1:
        logp = logp / mask.sum(-1)
    ref = t["dpo.ref"].to(dtype)
    n = rows // 2
    h = (logp[:n] - logp[n:]) - (ref[:n] - ref[n:])
    if loss_type == 1:
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        losses = -F.logsigmoid(beta * h) * (1 - eps) - F.logsigmoid(-beta * h) * eps
    loss = losses.mean()
    loss.backward()
    loss_err, worst, worst_name = worst_error(t, meta, params, names, loss)
    ok = worst <= tol
    if fixture:
        write_fixture(fixture, t, meta, params, names, loss, ("batch.inputs", "batch.targets", "batch.weights", "dpo.ref"))
    kind = "IPO" if loss_type == 1 else f"sigmoid, label smoothing {eps:g}"
    print(f"check-torch: DPO ({kind}, beta {beta:g}) {str(dtype):14s}: loss {loss.item():.6f} (rel. err {loss_err:.1e}), "
          f"max per-tensor gradient error {worst:.1e} ({worst_name}) -> {'ok' if ok else 'FAIL'} (tol {tol:g})")
    return ok


def check(binary, cfg, seed, tol, fixture=None):
    path = f"build/torch_ref_{os.path.basename(binary)}_{seed}.safetensors"
    subprocess.run([binary, path] + [str(c) for c in cfg] + [str(seed)], check=True, stdout=subprocess.DEVNULL)
    t, meta = read_safetensors(path)
    names = [n for n in t if not n.startswith(("grad.", "batch."))]
    dtype = t[names[0]].dtype
    params = {n: t[n].clone().requires_grad_(True) for n in names}
    loss = torch_loss(params, t["batch.inputs"], t["batch.targets"], t["batch.weights"], cfg, dtype)
    loss.backward()
    loss_err, worst, worst_name = worst_error(t, meta, params, names, loss)
    ok = worst <= tol
    V, D, L, H, KV, FF, B, T = cfg
    print(f"check-torch: {str(dtype):14s} V={V} D={D} L={L} H={H} KV={KV} F={FF} B={B} T={T}: loss {loss.item():.6f} "
          f"(rel. err {loss_err:.1e}), max per-tensor gradient error {worst:.1e} ({worst_name}) -> {'ok' if ok else 'FAIL'} (tol {tol:g})")
    if fixture:
        write_fixture(fixture, t, meta, params, names, loss, ("batch.inputs", "batch.targets", "batch.weights"))
    return ok


def check_adamw(binary, cfg, seed, steps, tol, fixture=None):
    """torch.optim.AdamW (decay on matrices only, in a second parameter group) with
    torch.nn.utils.clip_grad_norm_(1.0), fed the very gradients deepseek.h's steps used, at the
    learning rates they used (a warm-up): after each step, every tensor's update since the start
    must match, ||dp_ds - dp_torch|| / ||dp_torch|| <= tol, and so must the pre-clip norm."""
    path = f"build/torch_adamw_{os.path.basename(binary)}_{seed}.safetensors"
    subprocess.run([binary, "--adamw", path] + [str(c) for c in cfg] + [str(seed), str(steps)], check=True, stdout=subprocess.DEVNULL)
    t, meta = read_safetensors(path)
    names = [n for n in t if n.startswith(("model.", "lm_head."))]
    dtype = t[names[0]].dtype
    ps = [torch.nn.Parameter(t[n].clone()) for n in names]
    opt = torch.optim.AdamW([{"params": [p for p in ps if p.dim() == 2], "weight_decay": float(meta["weight_decay"])},
                             {"params": [p for p in ps if p.dim() != 2], "weight_decay": 0.0}],
                            lr=1.0, betas=(float(meta["beta1"]), float(meta["beta2"])), eps=float(meta["eps"]))
    worst, worst_at, norm_err, clipped = 0.0, "", 0.0, 0
    for s in range(steps):
        for n, p in zip(names, ps):
            p.grad = t[f"s{s}.grad.{n}"].clone()
        norm = torch.nn.utils.clip_grad_norm_(ps, float(meta["grad_clip"])).item()
        clipped += norm > float(meta["grad_clip"])
        norm_err = max(norm_err, abs(norm - float(meta[f"norm{s}"])) / norm)
        for g in opt.param_groups:
            g["lr"] = float(meta[f"lr{s}"])
        opt.step()
        for n, p in zip(names, ps):
            d_torch = p.detach().double() - t[n].double()
            d_ds = t[f"s{s}.param.{n}"].double() - t[n].double()
            err = ((d_ds - d_torch).norm() / d_torch.norm()).item()
            if err > worst:
                worst, worst_at = err, f"step {s}, {n}"
    ok = worst <= tol and norm_err <= tol
    V, D, L, H, KV, FF, B, T = cfg
    print(f"check-torch: AdamW {str(dtype):14s} {steps} steps ({clipped} clipped, warm-up lr): max per-tensor update error {worst:.1e} "
          f"({worst_at}), gradient norm error {norm_err:.1e} -> {'ok' if ok else 'FAIL'} (tol {tol:g})")
    if fixture:
        out = {n: t[n] for n in names}
        out.update({"torch_final." + n: p.detach().float() for n, p in zip(names, ps)})
        out.update({k: t[k] for k in ("batch.inputs", "batch.targets", "batch.weights")})
        meta2 = dict(meta)
        meta2["torch_version"] = torch.__version__
        write_safetensors(fixture, out, meta2)
        print(f"check-torch: fixture written to {fixture}")
    return ok


def write_bf16_safetensors(path, tensors):
    """The Hugging Face way: BF16 weights (numpy has no bfloat16, so the raw 16-bit patterns)."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        raw = t.detach().to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def check_foreign_checkpoint(cfg, seed):
    """A checkpoint written by PyTorch as HF does it -- BF16 weights, tied embeddings (no
    lm_head.weight), no num_key_value_heads (multi-head), extra config keys -- must load in
    deepseek.h and give PyTorch's loss."""
    V, D, L, H, KV, FF, B, T = cfg
    g = torch.Generator().manual_seed(seed)
    p = {"model.embed_tokens.weight": torch.randn(V, D, generator=g) * 0.1, "model.norm.weight": 1 + 0.1 * torch.randn(D, generator=g)}
    for l in range(L):
        pre = f"model.layers.{l}."
        for n, shape in [("input_layernorm.weight", (D,)), ("post_attention_layernorm.weight", (D,))]:
            p[pre + n] = 1 + 0.1 * torch.randn(*shape, generator=g)
        for n, shape in [("self_attn.q_proj.weight", (D, D)), ("self_attn.k_proj.weight", (D, D)), ("self_attn.v_proj.weight", (D, D)),
                         ("self_attn.o_proj.weight", (D, D)), ("mlp.gate_proj.weight", (FF, D)), ("mlp.up_proj.weight", (FF, D)),
                         ("mlp.down_proj.weight", (D, FF))]:
            p[pre + n] = torch.randn(*shape, generator=g) * 0.1
    d = "build/hf_foreign"
    os.makedirs(d, exist_ok=True)
    write_bf16_safetensors(d + "/model.safetensors", p)
    with open(d + "/config.json", "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D, "intermediate_size": FF,
                   "num_attention_heads": H, "num_hidden_layers": L, "vocab_size": V, "max_position_embeddings": T, "rms_norm_eps": 1e-6,
                   "hidden_act": "silu", "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True,
                   "transformers_version": "4.36.0", "pretraining_tp": 1, "rope_scaling": None, "attention_bias": False}, f, indent=2)
    inputs = torch.randint(0, V, (B, T), generator=g, dtype=torch.int32)
    targets = torch.randint(0, V, (B, T), generator=g, dtype=torch.int32)
    write_safetensors(d + "/batch.safetensors", {"inputs": inputs, "targets": targets}, {})
    pt = {n: t.to(torch.bfloat16).float() for n, t in p.items()}  # the weights as stored
    pt["lm_head.weight"] = pt["model.embed_tokens.weight"]        # tied
    ref = torch_loss(pt, inputs.view(-1), targets.view(-1), torch.ones(B * T), (V, D, L, H, H, FF, B, T), torch.float32).item()
    out = subprocess.run(["build/hf_load_check", d], capture_output=True, text=True)
    if out.returncode != 0:
        print("check-torch: foreign HF checkpoint: deepseek.h refused it: " + out.stderr.strip())
        return False
    ds_loss = float(out.stdout.strip().split("=")[1])
    err = abs(ds_loss - ref) / abs(ref)
    ok = err <= 1e-5
    print(f"check-torch: a checkpoint written by PyTorch (BF16, tied embeddings, HF config): PyTorch loss {ref:.6f}, "
          f"deepseek.h {ds_loss:.6f} (rel. err {err:.1e}) -> {'ok' if ok else 'FAIL'}")
    return ok


def main():
    fixture = sys.argv[sys.argv.index("--fixture") + 1] if "--fixture" in sys.argv else None
    torch.manual_seed(0)
    ok = True
    for i, cfg in enumerate(CONFIGS):
        ok &= check("build/torch_ref", cfg, 11 + i, 1e-5, fixture if i == 0 else None)
        ok &= check("build/torch_ref_f64", cfg, 11 + i, 1e-10)
    ok &= check_foreign_checkpoint((80, 32, 2, 4, 4, 96, 2, 12), 5)
    for loss_type, beta, eps in ((0, 0.1, 0.0), (0, 0.5, 0.2), (1, 0.1, 0.0)):
        dpo_fixture = os.path.join(os.path.dirname(fixture), "torch_dpo_f32.safetensors") if fixture and loss_type == 0 and eps == 0 else None
        ok &= check_dpo("build/torch_ref", (48, 32, 2, 4, 2, 64, 12), 21, loss_type, beta, eps, 1e-5, dpo_fixture)
        ok &= check_dpo("build/torch_ref_f64", (48, 32, 2, 4, 2, 64, 12), 21, loss_type, beta, eps, 1e-10)
    adamw_fixture = os.path.join(os.path.dirname(fixture), "torch_adamw_f32.safetensors") if fixture else None
    ok &= check_adamw("build/torch_ref", (48, 16, 1, 2, 1, 48, 2, 8), 31, 6, 1e-5, adamw_fixture)
    ok &= check_adamw("build/torch_ref_f64", (48, 16, 1, 2, 1, 48, 2, 8), 31, 6, 1e-12)
    ok &= check_adamw("build/torch_ref", (97, 48, 3, 6, 2, 128, 2, 24), 32, 8, 1e-5)
    ok &= check_adamw("build/torch_ref_f64", (97, 48, 3, 6, 2, 128, 2, 24), 32, 8, 1e-12)
    print("check-torch: " + ("all configs agree" if ok else "MISMATCH"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
