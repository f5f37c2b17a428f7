#!/usr/bin/python3
"""torch_seq_step.py: PyTorch eager's training step of the sequence models for bench/seq_bench.sh.

  /usr/bin/python3 bench/torch_seq_step.py wavenet|transformer DIR [--steps N] [--warmup W] [--threads K]

DIR holds the params and the batch as <name>.npy (what `build/bench/seq_step
SPEC --save DIR` writes: bpgen's init, the batch both builds are timed on).
float32, K threads (torch.set_num_threads, default 1).  Per step, as the
lectures write it: zero_grad (set to None), forward, backward, the optimiser:
  wavenet      makemore part 5 (tools/torch_models.py's WaveNet forward: the
               same model that `tools/torch_models.py wavenet` checks against
               `bpgen grad`), SGD at lr 0.1: p += -0.1 * p.grad
  transformer  makemore.py's Transformer at its defaults, written as makemore
               writes it: c_attn one Linear C -> 3C (the spec's Wq, Wk, Wv side
               by side, made once here, not per step), Linear weights [out, in]
               through F.linear, NewGELU, masked_fill(-inf) before the softmax;
               torch.optim.AdamW(lr 5e-4, betas (0.9, 0.99), eps 1e-8, weight
               decay 0.01), makemore's
Timed one step at a time after WARMUP steps, in the process's CPU time (the
host is shared; one thread) and on the wall clock.  Prints

  loss0 <the first step's loss>
  loss1 <the loss after one update, on the same batch>
  ms <median> <min> <max>      (CPU time)
  wall <median>
  maxrss_kb <this process's peak RSS, getrusage ru_maxrss, after WARMUP+N steps>
  blas <the BLAS library this process loaded>

Exits 2 when torch or numpy is missing.  Not a test.
"""
import argparse
import math
import os
import resource
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"torch_seq_step: skipped: {e}", file=sys.stderr)
    sys.exit(2)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from torch_models import WaveNet, Transformer  # noqa: E402  (the models, written once)


def load(d, names):
    return {k: np.load(os.path.join(d, k + ".npy")) for k in names}


def wavenet(d):
    names = list(WaveNet.params(WaveNet.dims, np.random.default_rng(0)))
    p = load(d, names)
    X = torch.from_numpy(np.load(os.path.join(d, "X.npy")).astype(np.int64))
    Y = torch.from_numpy(np.load(os.path.join(d, "Y.npy")).astype(np.int64))
    B, T = X.shape
    dims = {"B": B, "T": T, "E": p["C"].shape[1], "H": p["W1"].shape[1]}
    t = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in p.items()}
    params = list(t.values())

    def step():
        for q in params:
            q.grad = None
        loss, _ = WaveNet.forward(dims, t, X, Y)
        loss.backward()
        with torch.no_grad():
            for q in params:
                q += -0.1 * q.grad   # part 5's p.data += -lr * p.grad
        return loss

    return step


def transformer(d):
    L = Transformer.L
    names = list(Transformer.params(Transformer.dims, np.random.default_rng(0)))
    p = load(d, names)
    X = torch.from_numpy(np.load(os.path.join(d, "X.npy")).astype(np.int64))
    Y = torch.from_numpy(np.load(os.path.join(d, "Y.npy")).astype(np.int64))
    B, T = X.shape
    V, C = p["wte"].shape
    NH = Transformer.dims["NH"]
    f = lambda a: torch.tensor(np.ascontiguousarray(a), dtype=torch.float32)
    # makemore's parameters: nn.Linear weights are [out, in]
    t = {"wte": f(p["wte"]), "wpe": f(p["wpe"]), "lnfw": f(p["lnfw"]), "lnfb": f(p["lnfb"]), "lm": f(p["Wlm"].T)}
    for l in range(L):
        t.update({f"ln1w{l}": f(p[f"ln1w{l}"]), f"ln1b{l}": f(p[f"ln1b{l}"]),
                  f"attn_w{l}": f(np.concatenate([p[f"Wq{l}"], p[f"Wk{l}"], p[f"Wv{l}"]], 1).T),
                  f"attn_b{l}": f(np.concatenate([p[f"bq{l}"], p[f"bk{l}"], p[f"bv{l}"]])),
                  f"proj_w{l}": f(p[f"Wp{l}"].T), f"proj_b{l}": f(p[f"bp{l}"]),
                  f"ln2w{l}": f(p[f"ln2w{l}"]), f"ln2b{l}": f(p[f"ln2b{l}"]),
                  f"fc_w{l}": f(p[f"Wf{l}"].T), f"fc_b{l}": f(p[f"bf{l}"]),
                  f"mproj_w{l}": f(p[f"Wm{l}"].T), f"mproj_b{l}": f(p[f"bm{l}"])})
    for v in t.values():
        v.requires_grad_(True)
    params = list(t.values())
    opt = torch.optim.AdamW(params, lr=5e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
    mask = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
    pos = torch.arange(0, T, dtype=torch.long).unsqueeze(0)

    def gelu(x):   # makemore's NewGELU
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    def forward():
        x = F.embedding(X, t["wte"]) + F.embedding(pos, t["wpe"])
        for l in range(L):
            a = F.layer_norm(x, (C,), t[f"ln1w{l}"], t[f"ln1b{l}"])
            q, k, v = F.linear(a, t[f"attn_w{l}"], t[f"attn_b{l}"]).split(C, dim=2)
            q, k, v = (z.view(B, T, NH, C // NH).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = F.softmax(att.masked_fill(mask[:, :, :T, :T] == 0, float("-inf")), dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
            x = x + F.linear(y, t[f"proj_w{l}"], t[f"proj_b{l}"])
            m = F.layer_norm(x, (C,), t[f"ln2w{l}"], t[f"ln2b{l}"])
            x = x + F.linear(gelu(F.linear(m, t[f"fc_w{l}"], t[f"fc_b{l}"])), t[f"mproj_w{l}"], t[f"mproj_b{l}"])
        logits = F.linear(F.layer_norm(x, (C,), t["lnfw"], t["lnfb"]), t["lm"])
        return F.cross_entropy(logits.view(-1, logits.size(-1)), Y.view(-1), ignore_index=-1)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = forward()
        loss.backward()
        opt.step()
        return loss

    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", choices=["wavenet", "transformer"])
    ap.add_argument("dir")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    step = {"wavenet": wavenet, "transformer": transformer}[a.model](a.dir)
    ms, wall = [], []
    for s in range(max(a.warmup, 2) + a.steps):
        t0, w0 = time.process_time(), time.perf_counter()
        loss = step()
        t1, w1 = time.process_time(), time.perf_counter()
        if s < 2:
            print(f"loss{s} {loss.item():.6f}")
        if s >= max(a.warmup, 2):
            ms.append(1e3 * (t1 - t0))
            wall.append(1e3 * (w1 - w0))
    ms.sort()
    wall.sort()
    print(f"ms {ms[len(ms) // 2]:.4f} {ms[0]:.4f} {ms[-1]:.4f}")
    print(f"wall {wall[len(wall) // 2]:.4f}")
    print(f"maxrss_kb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
    with open("/proc/self/maps") as f:
        libs = sorted({ln.split()[-1] for ln in f if "blas" in ln.split()[-1]})
    print("blas", libs[0] if libs else "(none found)")


if __name__ == "__main__":
    main()
