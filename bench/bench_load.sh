#!/bin/sh
# bench_load.sh - checkpoint load time, deepseek.h beside torch.load of the same weights (110M
# shape, 134M parameters, F32), warm page cache, in one run. The PyTorch side converts our
# model.safetensors to a state dict saved with torch.save (once, not timed), then times torch.load
# (the second of two loads) and its RSS.
set -eu
B=build
DIR=${DIR:-${TMPDIR:-/tmp}/ds_bench_load}
make -s $B/bench_load
./$B/bench_load "$DIR"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  /usr/bin/python3 - "$DIR" <<'PY'
import json, struct, sys, time, os, resource
import torch
d = sys.argv[1]
pt = os.path.join(d, "state_dict.pt")
if not os.path.exists(pt):
    with open(os.path.join(d, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    sd = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        sd[k] = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(v["shape"]).clone()
    torch.save(sd, pt)
for rep in range(2):
    t0 = time.time()
    sd = torch.load(pt)
    t = time.time() - t0
    if rep == 1:
        rss = int([l for l in open("/proc/self/status") if l.startswith("VmRSS:")][0].split()[1]) // 1024
        print("torch.load seconds=%.3f rss_mb=%d params=%d (PyTorch %s)" % (t, rss, sum(x.numel() for x in sd.values()), torch.__version__))
    del sd
PY
else
  echo "(PyTorch not installed: apt-get install python3-torch)"
fi
