#!/usr/bin/python3
"""torch_rng.py: `bpgen run --rng torch` against PyTorch's own numbers, bit for bit.

PyTorch's side is the lecture's notebook (makemore part 4), cells "init" and
"construct a minibatch":
    g = torch.Generator().manual_seed(2147483647)
    C  = torch.randn((vocab_size, n_embd),            generator=g)
    W1 = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5/3)/((n_embd * block_size)**0.5)
    b1 = torch.randn(n_hidden,                        generator=g) * 0.1
    W2 = torch.randn((n_hidden, vocab_size),          generator=g) * 0.1
    b2 = torch.randn(vocab_size,                      generator=g) * 0.1
    bngain = torch.randn((1, n_hidden))*0.1 + 1.0     # the global generator: no generator=g
    bnbias = torch.randn((1, n_hidden))*0.1
    ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)   # each step
with Xtr built as the notebook builds it (random.seed(42); random.shuffle(words);
the first 80% of the words, contexts of block_size).  The notebook leaves the
global generator unseeded (torch 1.13 seeds it at random in every process), so
its bngain and bnbias cannot be reproduced by anyone; here the global generator
is seeded with torch.manual_seed(GSEED) first, and bpgen gets
--torch-global bngain,bnbias --torch-global-seed GSEED.  --same-generator draws
bngain and bnbias from g too (bpgen's plain --rng torch).

ATen has two normal kernels for float tensors of 16 or more elements: AVX2
(avx_mathfun.h's log and sincos) and scalar (libm's), chosen by the CPU
capability; ATEN_CPU_CAPABILITY picks it.  Each kernel is checked in its own
Python process (`--dump`, the capability set before torch loads): avx2 against
`--rng torch`, default against `--rng torch-scalar`.

Compared bit for bit (float32): every param after init (bpgen's --save
checkpoint, steps 0) and the rows of the first --batches minibatches (bpgen
prints them with BPGEN_TORCH_BATCHES=K).  Exit status 0 when all are equal, 1
otherwise, 2 when torch does not import (the caller skips).

usage: tools/torch_rng.py [--bpgen ./bpgen] [--spec specs/makemore_granular.spec]
                          [--data FILE] [-H 64] [--gseed 42] [--batches 3]
"""
import argparse
import os
import random
import re
import subprocess
import sys
import tempfile

PARAMS = ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"]


def build_xtr_rows(words, block_size):
    """The notebook's Xtr row count after its shuffle and 80% split."""
    words = list(words)
    random.seed(42)
    random.shuffle(words)
    n1 = int(0.8 * len(words))
    return sum(len(w) + 1 for w in words[:n1])


def torch_side(a):
    """The notebook's init and first batches; writes a .npz."""
    import numpy as np
    import torch
    words = open(a.data).read().splitlines()
    words = [w for w in words if w]
    chars = sorted(set("".join(words)))
    vocab_size = len(chars) + 1
    n_embd, n_hidden, block_size = a.E, a.H, a.T
    ntr = build_xtr_rows(words, block_size)
    torch.manual_seed(a.gseed)
    g = torch.Generator().manual_seed(a.seed)
    gl = g if a.same_generator else None
    p = {}
    p["C"] = torch.randn((vocab_size, n_embd), generator=g)
    p["W1"] = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5/3)/((n_embd * block_size)**0.5)
    p["b1"] = torch.randn(n_hidden, generator=g) * 0.1
    p["W2"] = torch.randn((n_hidden, vocab_size), generator=g) * 0.1
    p["b2"] = torch.randn(vocab_size, generator=g) * 0.1
    p["bngain"] = torch.randn((1, n_hidden), generator=gl)*0.1 + 1.0
    p["bnbias"] = torch.randn((1, n_hidden), generator=gl)*0.1
    out = {k: v.numpy() for k, v in p.items()}
    for i in range(a.batches):
        out["batch%d" % i] = torch.randint(0, ntr, (a.B,), generator=g).numpy()
    out["ntrain"] = np.array(ntr)
    np.savez(a.dump, **out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bpgen", default="./bpgen")
    ap.add_argument("--spec", default="specs/makemore_granular.spec")
    ap.add_argument("--data", default="../shared/data/names.txt")
    ap.add_argument("-H", type=int, default=64)
    ap.add_argument("-E", type=int, default=10)
    ap.add_argument("-T", type=int, default=3)
    ap.add_argument("-B", type=int, default=32)
    ap.add_argument("--seed", type=int, default=2147483647)
    ap.add_argument("--gseed", type=int, default=42)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--same-generator", action="store_true")
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.dump:
        torch_side(a)
        return 0
    try:
        import numpy as np
        import torch  # noqa: F401  (only to know it imports)
    except ImportError as e:
        print("torch_rng: skipped: torch does not import (%s)" % e)
        return 2
    caps = [("default", "torch-scalar")]
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if re.search(r"\bavx2\b", flags) and re.search(r"\bfma\b", flags):
        caps.insert(0, ("avx2", "torch"))
    else:
        print("torch_rng: no AVX2 here: ATen's AVX2 kernel (--rng torch) not checked")
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for cap, rng in caps:
            dump = os.path.join(tmp, "torch_%s.npz" % cap)
            env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
            cmd = [sys.executable, os.path.abspath(__file__), "--dump", dump, "--data", a.data,
                   "-H", str(a.H), "-E", str(a.E), "-T", str(a.T), "-B", str(a.B),
                   "--seed", str(a.seed), "--gseed", str(a.gseed), "--batches", str(a.batches)]
            if a.same_generator:
                cmd.append("--same-generator")
            subprocess.run(cmd, env=env, check=True)
            ref = np.load(dump)
            ck = os.path.join(tmp, "bpgen_%s.npz" % cap)
            run = [a.bpgen, "run", a.spec, "--data", a.data, "-D", "H=%d" % a.H, "-D", "E=%d" % a.E,
                   "-D", "T=%d" % a.T, "-D", "B=%d" % a.B, "--seed", str(a.seed), "--rng", rng,
                   "--steps", str(a.batches), "--lr", "0", "--samples", "0", "--quiet", "--save", ck]
            if not a.same_generator:
                run += ["--torch-global", "bngain,bnbias", "--torch-global-seed", str(a.gseed)]
            r = subprocess.run(run, env=dict(os.environ, BPGEN_TORCH_BATCHES=str(a.batches)),
                               capture_output=True, text=True)
            if r.returncode != 0:
                print("torch_rng: %s failed:\n%s%s" % (" ".join(run), r.stdout, r.stderr))
                return 1
            got = np.load(ck)
            m = re.search(r"examples train (\d+)", r.stdout)
            ntr = int(m.group(1)) if m else -1
            print("%s (ATen %s kernel): train examples bpgen %d, notebook %d%s"
                  % (rng, cap, ntr, int(ref["ntrain"]), "" if ntr == int(ref["ntrain"]) else "  DIFFER"))
            bad += ntr != int(ref["ntrain"])
            for name in PARAMS:
                x, y = got[name].astype(np.float32), ref[name].astype(np.float32)
                same = x.shape == y.shape and np.array_equal(x.view(np.uint32), y.view(np.uint32))
                nd = int((x.view(np.uint32) != y.view(np.uint32)).sum()) if x.shape == y.shape else -1
                print("  %-7s %-14s %s" % (name, str(list(y.shape)), "bit for bit" if same else
                                            "DIFFER (%d elements; max |diff| %g)" % (nd, np.abs(x - y).max()
                                                                                 if nd >= 0 else -1)))
                bad += not same
            batches = [list(map(int, l.split(":")[1].split()))
                       for l in r.stderr.splitlines() if l.startswith("torch batch ")]
            for i in range(a.batches):
                want = ref["batch%d" % i].tolist()
                have = batches[i] if i < len(batches) else None
                print("  batch %d  %s" % (i, "same rows" if have == want else
                                          "DIFFER: bpgen %s, torch %s" % (have and have[:6], want[:6])))
                bad += have != want
    print("torch_rng: %s" % ("all equal" if not bad else "%d differ" % bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
