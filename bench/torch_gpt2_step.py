#!/usr/bin/python3
"""torch_gpt2_step.py: PyTorch eager's training step of GPT-2 for bench/gpt2_bench.sh.

The model is tools/torch_models.py's GPT2 (llm.c's train_gpt2.py, params
stacked per layer as llm.c's checkpoint holds them), float32, on the params of
an llm.c checkpoint (MODEL.bin: what `bpgen run --steps 0 --save init.bin`
writes) and the batch of an llm.c token file (X the first B*T tokens, Y the
same shifted by one, as llm.c's DataLoader and tools/llmc_parity.c read it).
Per step: zero_grad, forward, backward, torch.optim.AdamW.step (lr 1e-4,
betas 0.9/0.999, eps 1e-8, weight decay 0.01: test_gpt2.c's), timed on the
wall clock after WARMUP steps.  Prints

  loss0 <the first step's loss>
  ms <median> <min> <max>
  blas <the BLAS library this process loaded>

  /usr/bin/python3 bench/torch_gpt2_step.py MODEL.bin TOKENS.bin B T [--steps N] [--warmup W] [--threads K]

Exits 2 when torch or numpy is missing.  Not a test.
"""
import argparse
import os
import sys
import time

try:
    import numpy as np
    import torch
except ImportError as e:
    print(f"torch_gpt2_step: skipped: {e}", file=sys.stderr)
    sys.exit(2)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from torch_models import GPT2  # noqa: E402  (the model, written once)

# llm.c's checkpoint order (runtime/llmc_ckpt.h)
ORDER = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
         "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]


def read_checkpoint(path):
    raw = np.fromfile(path, dtype="<i4", count=256)
    if raw[0] != 20240326 or raw[1] != 3:
        sys.exit(f"torch_gpt2_step: {path}: not an llm.c fp32 checkpoint (version 3)")
    maxT, V, L, NH, C, Vp = (int(v) for v in raw[2:8])
    d = {"maxT": maxT, "V": V, "L": L, "NH": NH, "C": C, "Vp": Vp}
    shapes = {"wte": (Vp, C), "wpe": (maxT, C), "ln1w": (L, C), "ln1b": (L, C),
              "qkvw": (L, 3 * C, C), "qkvb": (L, 3 * C), "attprojw": (L, C, C), "attprojb": (L, C),
              "ln2w": (L, C), "ln2b": (L, C), "fcw": (L, 4 * C, C), "fcb": (L, 4 * C),
              "fcprojw": (L, C, 4 * C), "fcprojb": (L, C), "lnfw": (C,), "lnfb": (C,)}
    flat = np.fromfile(path, dtype="<f4", offset=1024)
    p, off = {}, 0
    for k in ORDER:
        n = int(np.prod(shapes[k]))
        p[k] = flat[off:off + n].reshape(shapes[k]).copy()
        off += n
    if off != flat.size:
        sys.exit(f"torch_gpt2_step: {path}: {flat.size} floats, the header's shapes make {off}")
    return d, p


def read_batch(path, B, T):
    head = np.fromfile(path, dtype="<i4", count=256)
    if head[0] != 20240520 or head[1] != 1:
        sys.exit(f"torch_gpt2_step: {path}: not an llm.c token file (version 1)")
    tok = np.fromfile(path, dtype="<u2", offset=1024).astype(np.int64)
    if tok.size < B * T + 1:
        sys.exit(f"torch_gpt2_step: {path}: fewer than B*T+1 tokens")
    return tok[:B * T].reshape(B, T), tok[1:B * T + 1].reshape(B, T)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("tokens")
    ap.add_argument("B", type=int)
    ap.add_argument("T", type=int)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d, p = read_checkpoint(a.model)
    d.update(B=a.B, T=a.T)
    X, Y = (torch.from_numpy(z) for z in read_batch(a.tokens, a.B, a.T))
    t = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in p.items()}
    opt = torch.optim.AdamW(list(t.values()), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    ms = []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, _ = GPT2.forward(d, t, X, Y)
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        if s == 0:
            print(f"loss0 {loss.item():.6f}")
        if s >= a.warmup:
            ms.append(1e3 * (t1 - t0))
    ms.sort()
    print(f"ms {ms[len(ms) // 2]:.3f} {ms[0]:.3f} {ms[-1]:.3f}")
    with open("/proc/self/maps") as f:
        libs = sorted({ln.split()[-1] for ln in f if "blas" in ln.split()[-1]})
    print("blas", libs[0] if libs else "(none found)")


if __name__ == "__main__":
    main()
