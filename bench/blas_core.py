# blas_core.py - prints the OpenBLAS kernel ("core") that PyTorch's BLAS runs in this environment:
# it imports torch, finds the BLAS library torch loaded in /proc/self/maps, and asks it
# (openblas_get_corename). Prints "none" when that BLAS is not OpenBLAS. bench_train.sh uses it
# to pick, print and check the baseline's kernel (../shared/bench/README.md, "Environment traps").
import ctypes
import torch  # noqa: F401  (loads the BLAS)

paths = []
for line in open("/proc/self/maps"):
    p = line.split()[-1]
    if "blas" in p.rsplit("/", 1)[-1] and p.startswith("/") and p not in paths:
        paths.append(p)
name = "none"
for p in paths:
    try:
        f = ctypes.CDLL(p).openblas_get_corename
    except (OSError, AttributeError):
        continue
    f.restype = ctypes.c_char_p
    name = f().decode()
    break
print(name)
