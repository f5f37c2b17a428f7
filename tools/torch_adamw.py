#!/usr/bin/python3
"""torch_adamw.py: bpgen's trainer (AdamW, gradient clipping, the cosine schedule
with warmup) against torch.optim.AdamW, clip_grad_norm_ and the same schedule.

Trains specs/classify.spec (tensor data, f64) for a few steps with
  bpgen run specs/classify.spec --dtype f64 --data-x X.npy --data-y Y.npy
      --optimizer adamw --lr-schedule cosine --warmup W --clip C ... --save final.npz
after a --steps 0 run that saves the initial params, then repeats the same
steps in PyTorch float64 from those params on the same minibatches (the
trainer draws rows with replacement, row = splitmix64() mod N, from a
generator seeded with seed+2; reimplemented here) and compares every param
(max relative error = max|a-b| / max|b|).  Two configurations: makemore's
(betas 0.9/0.99, weight decay 0.01) and llm.c's (0.9/0.999, no decay).
Exits 1 if an error exceeds --tol (default 1e-10), 2 when torch is missing.

usage: tools/torch_adamw.py [--bpgen ./bpgen] [--spec-dir specs] [--steps 8]
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile
import zipfile
import io

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the driver skips with this message
    print(f"torch_adamw: skipped: {e}")
    sys.exit(2)

PARAMS = ["W1", "b1", "W2", "b2"]
M64 = (1 << 64) - 1


def splitmix64(state):
    """runtime/bp_runtime.h's bp_rng_next: returns (new state, output)."""
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def lr_at(i, lr, steps, warmup, lr_min):
    """llm.c's cosine schedule with linear warmup (templates/trainer.c tr_lr_at)."""
    if i < warmup:
        return lr * (i + 1) / warmup
    r = min(1.0, (i - warmup) / (steps - warmup)) if steps > warmup else 1.0
    return lr_min + 0.5 * (1 + math.cos(math.pi * r)) * (lr - lr_min)


def load_npz(path):
    with zipfile.ZipFile(path) as z:
        return {n[:-4]: np.load(io.BytesIO(z.read(n))) for n in z.namelist()}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write("$ " + " ".join(cmd) + "\n" + r.stdout + r.stderr)
        sys.exit(f"bpgen failed with status {r.returncode}")


def check(args, d, name, beta2, wd):
    B, N = args.B, args.N
    lr, warmup, lr_min, clip = 0.05, 3, 0.005, args.clip
    base = [args.bpgen, "run", os.path.join(args.spec_dir, "classify.spec"), "--dtype", "f64",
            "-D", f"B={B}", "--seed", str(args.seed), "--data-x", os.path.join(d, "X.npy"),
            "--data-y", os.path.join(d, "Y.npy"), "--quiet", "--optimizer", "adamw",
            "--lr", repr(lr), "--beta1", "0.9", "--beta2", repr(beta2), "--eps", "1e-8",
            "--weight-decay", repr(wd), "--lr-schedule", "cosine", "--warmup", str(warmup),
            "--lr-min", repr(lr_min), "--clip", repr(clip)]
    init, final = os.path.join(d, f"init_{name}.npz"), os.path.join(d, f"final_{name}.npz")
    run(base + ["--steps", "0", "--save", init])
    run(base + ["--steps", str(args.steps), "--save", final])
    p0, got = load_npz(init), load_npz(final)

    X = torch.tensor(np.load(os.path.join(d, "X.npy")), dtype=torch.float64)
    Y = torch.tensor(np.load(os.path.join(d, "Y.npy")), dtype=torch.long)
    t = [torch.tensor(p0[k], dtype=torch.float64, requires_grad=True) for k in PARAMS]
    opt = torch.optim.AdamW(t, lr=lr, betas=(0.9, beta2), eps=1e-8, weight_decay=wd)
    rng = (args.seed + 2) & M64
    nclipped = 0
    for i in range(args.steps):
        rows = []
        for _ in range(B):
            rng, r = splitmix64(rng)
            rows.append(r % N)
        xb, yb = X[rows], Y[rows]
        W1, b1, W2, b2 = t
        logits = torch.relu(xb @ W1 + b1) @ W2 + b2
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(t, clip)
        nclipped += norm.item() > clip
        for g in opt.param_groups:
            g["lr"] = lr_at(i, lr, args.steps, warmup, lr_min)
        opt.step()
    bad = 0
    print(f"{name}: betas 0.9/{beta2}, weight decay {wd}, clip {clip} (active on {nclipped} of "
          f"{args.steps} steps), cosine with warmup {warmup}; PyTorch {torch.__version__} f64")
    for k, w in zip(PARAMS, t):
        w = w.detach().numpy()
        moved = np.max(np.abs(w - p0[k]))
        e = np.max(np.abs(got[k] - w)) / max(np.max(np.abs(w)), 1e-300)
        flag = "" if e <= args.tol else "  <-- FAIL"
        bad += e > args.tol
        print(f"  {k:4} max rel err {e:10.3e}  (moved {moved:.3e}){flag}")
        if moved == 0:
            print(f"  {k}: did not move: the comparison would prove nothing  <-- FAIL")
            bad += 1
    if nclipped == 0 or nclipped == args.steps:
        print(f"  the clip was active on {nclipped} of {args.steps} steps: choose --clip so it "
              "is active on some only  <-- FAIL")
        bad += 1
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bpgen", default="./bpgen")
    ap.add_argument("--spec-dir", default="specs")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("-B", type=int, default=8)
    ap.add_argument("-N", type=int, default=40)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tol", type=float, default=1e-10)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="bpgen_adamw_") as d:
        np.save(os.path.join(d, "X.npy"), rng.standard_normal((args.N, 2)))
        np.save(os.path.join(d, "Y.npy"), rng.integers(0, 3, size=args.N).astype(np.int64))
        bad = check(args, d, "makemore", 0.99, 0.01)
        bad += check(args, d, "llm.c", 0.999, 0.0)
    print("torch_adamw:", "ok" if not bad else f"{bad} failures (tolerance {args.tol:g})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
