#!/usr/bin/python3
"""torch_check.py: `bpgen grad` on the lecture's model against PyTorch autograd.

Writes random X, Y and params as .npy, runs
  bpgen grad specs/makemore.spec -D B=.. -D T=.. -D V=.. -D E=.. -D H=.. --dtype f64 --in IN --out OUT
rebuilds the lecture's fused forward in PyTorch float64 from the same params
(emb, embcat, hprebn, batchnorm with unbiased variance, tanh, logits,
F.cross_entropy), and compares the loss and every param gradient (max
relative error = max|a-b| / max|b|).  With --granular it also runs
specs/makemore_granular.spec and compares each of its named intermediates'
gradients with the lecture's granular PyTorch forward (retain_grad).
Exits 1 if any error exceeds --tol (default 1e-10).

Needs torch and numpy (Debian python3-torch); not a dependency of bpgen.
usage: tools/torch_check.py [--bpgen ./bpgen] [-B 32 -T 3 -V 27 -E 10 -H 64] [--seed N] [--granular] [--ref]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

PARAMS = ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"]
# tensors whose true gradient is zero (b1 feeds batchnorm; the max subtracted
# for stability cancels): both sides hold rounding noise, compared absolutely
ZERO_GRAD = {"b1", "logit_maxes"}


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    diff = np.max(np.abs(a - b)) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def run_bpgen(args, spec, dims, ind, outd):
    cmd = [args.bpgen, "grad", spec, "--dtype", "f64", "--in", ind, "--out", outd]
    if args.ref:
        cmd.append("--ref")
    for k, v in dims.items():
        cmd += ["-D", f"{k}={v}"]
    print("$", " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        sys.exit(f"bpgen failed with status {r.returncode}")
    return {f[:-4]: np.load(os.path.join(outd, f)) for f in os.listdir(outd) if f.endswith(".npy")}


def torch_model(p, X, Y, B, granular):
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p.items()}
    Xt = torch.tensor(X, dtype=torch.long)
    Yt = torch.tensor(Y, dtype=torch.long)
    emb = t["C"][Xt]
    embcat = emb.view(emb.shape[0], -1)
    hprebn = embcat @ t["W1"] + t["b1"]
    inter = {"emb": emb, "embcat": embcat, "hprebn": hprebn}
    if not granular:
        # batchnorm, as the lecture's fused layer: batch mean, unbiased variance
        mean = hprebn.mean(0, keepdim=True)
        var = hprebn.var(0, keepdim=True, unbiased=True)
        hpreact = t["bngain"] * (hprebn - mean) / torch.sqrt(var + 1e-5) + t["bnbias"]
        h = torch.tanh(hpreact)
        logits = h @ t["W2"] + t["b2"]
        loss = F.cross_entropy(logits, Yt)
        inter.update(hpreact=hpreact, h=h, logits=logits)
    else:
        # the lecture's Exercise 1 forward, every step named
        n = B
        bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
        bndiff = hprebn - bnmeani
        bndiff2 = bndiff ** 2
        bnvar = 1 / (n - 1) * bndiff2.sum(0, keepdim=True)
        bnvar_inv = (bnvar + 1e-5) ** -0.5
        bnraw = bndiff * bnvar_inv
        hpreact = t["bngain"] * bnraw + t["bnbias"]
        h = torch.tanh(hpreact)
        logits = h @ t["W2"] + t["b2"]
        logit_maxes = logits.max(1, keepdim=True).values
        norm_logits = logits - logit_maxes
        counts = norm_logits.exp()
        counts_sum = counts.sum(1, keepdim=True)
        counts_sum_inv = counts_sum ** -1
        probs = counts * counts_sum_inv
        logprobs = probs.log()
        loss = -logprobs[range(n), Yt].mean()
        inter.update(bnmeani=bnmeani, bndiff=bndiff, bndiff2=bndiff2, bnvar=bnvar,
                     bnvar_inv=bnvar_inv, bnraw=bnraw, hpreact=hpreact, h=h, logits=logits,
                     logit_maxes=logit_maxes, norm_logits=norm_logits, counts=counts,
                     counts_sum=counts_sum, counts_sum_inv=counts_sum_inv, probs=probs,
                     logprobs=logprobs)
    for v in inter.values():
        v.retain_grad()
    loss.backward()
    return loss, t, inter


def check(args, spec, granular, dims, ind, X, Y, p):
    outd = tempfile.mkdtemp(prefix="out_", dir=os.path.dirname(ind))
    got = run_bpgen(args, spec, dims, ind, outd)
    loss, t, inter = torch_model(p, X, Y, dims["B"], granular)
    rows = [("loss", rel(got["loss"], loss.item()))]
    want = {k: t[k].grad.numpy() for k in PARAMS}
    names = list(inter) if granular else ["hprebn", "hpreact", "h", "logits"]
    want.update({k: inter[k].grad.numpy() for k in names})
    for k, w in want.items():
        g = got[k + ".grad"]
        rows.append((f"d{k}", np.max(np.abs(g - w)) if k in ZERO_GRAD else rel(g, w)))
    print(f"{'tensor':16} {'max rel err':>12}   ({os.path.basename(spec)}, PyTorch {torch.__version__} f64)")
    bad = 0
    for name, e in rows:
        flag = "" if e <= args.tol else "  <-- FAIL"
        bad += e > args.tol
        note = " (abs: true gradient is 0)" if name[1:] in ZERO_GRAD else ""
        print(f"{name:16} {e:12.3e}{note}{flag}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bpgen", default="./bpgen")
    ap.add_argument("--spec-dir", default="specs")
    for d, v in [("B", 32), ("T", 3), ("V", 27), ("E", 10), ("H", 64)]:
        ap.add_argument("-" + d, type=int, default=v)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tol", type=float, default=1e-10)
    ap.add_argument("--granular", action="store_true", help="also check makemore_granular.spec")
    ap.add_argument("--ref", action="store_true",
                    help="bpgen grad --ref: the reference runtime instead of generated code")
    args = ap.parse_args()
    dims = {"B": args.B, "T": args.T, "V": args.V, "E": args.E, "H": args.H}
    B, T, V, E, H = (dims[k] for k in "BTVEH")

    rng = np.random.default_rng(args.seed)
    X = rng.integers(0, V, size=(B, T)).astype(np.int64)
    Y = rng.integers(0, V, size=(B,)).astype(np.int32)
    p = {
        "C": rng.standard_normal((V, E)),
        "W1": rng.standard_normal((T * E, H)) * (5 / 3) / (T * E) ** 0.5,
        "b1": rng.standard_normal((H,)) * 0.1,
        "W2": rng.standard_normal((H, V)) * 0.1,
        "b2": rng.standard_normal((V,)) * 0.1,
        "bngain": rng.standard_normal((1, H)) * 0.1 + 1,
        "bnbias": rng.standard_normal((1, H)) * 0.1,
    }
    root = tempfile.TemporaryDirectory(prefix="bpgen_torch_")
    ind = os.path.join(root.name, "in")
    os.mkdir(ind)
    np.save(os.path.join(ind, "X.npy"), X)      # <i8: bpgen reads i4 and i8
    np.save(os.path.join(ind, "Y.npy"), Y)
    for k, v in p.items():
        np.save(os.path.join(ind, k + ".npy"), v)

    bad = check(args, os.path.join(args.spec_dir, "makemore.spec"), False, dims, ind, X, Y, p)
    if args.granular:
        bad += check(args, os.path.join(args.spec_dir, "makemore_granular.spec"), True, dims, ind,
                     X, Y, p)
    print("torch_check:", "ok" if not bad else f"{bad} over tolerance {args.tol:g}")
    root.cleanup()
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
