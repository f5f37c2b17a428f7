#!/usr/bin/python3
"""torch_models.py: `bpgen grad` on the sequence-era specs against PyTorch autograd.

For each model: random inputs and params written as .npy, then
  bpgen grad specs/<model>.spec --dtype f64 -D ... --in IN --out OUT
and the same forward written here in PyTorch float64 from the same params;
the loss, every param's gradient and every named intermediate's gradient are
compared (max relative error = max|a-b| / max|b|).  Exits 1 if any error is
over --tol (default 1e-10).

  /usr/bin/python3 tools/torch_models.py wavenet                 # part 5's sizes
  /usr/bin/python3 tools/torch_models.py wavenet -D B=5 -D E=7 -D H=11   # odd sizes

Needs torch and numpy (Debian python3-torch); not a dependency of bpgen.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F


from torch_check import rel  # max|a-b| / max|b|, as torch_check.py compares


# ---- the models: dims, inputs, params, forward (returns loss and named intermediates) ----

def uniform(r, shape, fan_in):
    """PyTorch's Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))"""
    return r.uniform(-1, 1, shape) / fan_in ** 0.5


def batchnorm(x, g, b, eps=1e-5):
    """part 5's BatchNorm1d in training mode: statistics over every axis but the
    last, unbiased variance"""
    dims = tuple(range(x.dim() - 1))
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True, unbiased=True)
    return g * (x - mean) / torch.sqrt(var + eps) + b


class WaveNet:
    spec = "wavenet.spec"
    dims = {"B": 32, "T": 8, "V": 27, "E": 24, "H": 128}
    ints = {"X": lambda d, r: r.integers(0, d["V"], size=(d["B"], d["T"])),
            "Y": lambda d, r: r.integers(0, d["V"], size=(d["B"],))}

    @staticmethod
    def params(d, r):
        E, H, V = d["E"], d["H"], d["V"]
        n = r.standard_normal
        return {"C": n((V, E)), "W1": n((2 * E, H)) / (2 * E) ** 0.5, "W2": n((2 * H, H)) / (2 * H) ** 0.5,
                "W3": n((2 * H, H)) / (2 * H) ** 0.5, "Wo": n((H, V)) * 0.3, "bo": n((V,)) * 0.1,
                "g1": 1 + 0.1 * n((H,)), "c1": 0.1 * n((H,)), "g2": 1 + 0.1 * n((H,)), "c2": 0.1 * n((H,)),
                "g3": 1 + 0.1 * n((H,)), "c3": 0.1 * n((H,))}

    @staticmethod
    def forward(d, t, X, Y):
        B, T, E, H = d["B"], d["T"], d["E"], d["H"]
        emb = t["C"][X]
        x1 = emb.view(B, T // 2, 2 * E) @ t["W1"]
        h1 = torch.tanh(batchnorm(x1, t["g1"], t["c1"]))
        x2 = h1.reshape(B, T // 4, 2 * H) @ t["W2"]
        h2 = torch.tanh(batchnorm(x2, t["g2"], t["c2"]))
        x3 = h2.reshape(B, 2 * H) @ t["W3"]
        h3 = torch.tanh(batchnorm(x3, t["g3"], t["c3"]))
        logits = h3 @ t["Wo"] + t["bo"]
        loss = F.cross_entropy(logits, Y)
        return loss, dict(emb=emb, x1=x1, h1=h1, x2=x2, h2=h2, x3=x3, h3=h3, logits=logits)


class Bigram:
    """makemore's bigram over [B, T] sequences; about a third of the targets
    are -1 (padding), left out of the loss as makemore's ignore_index=-1"""
    spec = "bigram.spec"
    dims = {"B": 32, "T": 16, "V": 27}
    ints = {"X": lambda d, r: r.integers(0, d["V"], size=(d["B"], d["T"])),
            "Y": lambda d, r: np.where(r.random((d["B"], d["T"])) < 0.35, -1,
                                       r.integers(0, d["V"], size=(d["B"], d["T"])))}

    @staticmethod
    def params(d, r):
        return {"logits_table": r.standard_normal((d["V"], d["V"]))}

    @staticmethod
    def forward(d, t, X, Y):
        logits = t["logits_table"][X]
        loss = F.cross_entropy(logits.view(-1, d["V"]), Y.view(-1), ignore_index=-1)
        return loss, dict(logits=logits)


class BoW:
    """makemore's BoW: the causal average as makemore writes it (a masked
    softmax of zeros, then att @ x)"""
    spec = "bow.spec"
    dims = {"B": 32, "T": 16, "V": 27, "C": 64, "C2": 64}
    ints = Bigram.ints

    @staticmethod
    def params(d, r):
        V, T, C, C2 = d["V"], d["T"], d["C"], d["C2"]
        u = lambda shape, fan: uniform(r, shape, fan)
        return {"wte": r.standard_normal((V, C)), "wpe": r.standard_normal((T, C)),
                "Wfc": u((C, C2), C), "bfc": u((C2,), C), "Wproj": u((C2, C), C2), "bproj": u((C,), C2),
                "Wlm": u((C, V), C), "blm": u((V,), C)}

    @staticmethod
    def forward(d, t, X, Y):
        T = d["T"]
        x0 = t["wte"][X] + t["wpe"]
        att = torch.zeros((T, T), dtype=torch.float64).masked_fill(torch.tril(torch.ones(T, T)) == 0, float("-inf"))
        x1 = x0 + F.softmax(att, dim=-1) @ x0
        x2 = x1 + (torch.tanh(x1 @ t["Wfc"] + t["bfc"]) @ t["Wproj"] + t["bproj"])
        logits = x2 @ t["Wlm"] + t["blm"]
        loss = F.cross_entropy(logits.view(-1, d["V"]), Y.view(-1), ignore_index=-1)
        return loss, dict(x0=x0, x1=x1, x2=x2, logits=logits)


class MakemoreMLP:
    """makemore's MLP, its forward as makemore writes it (roll and BLANK)"""
    spec = "makemore_mlp.spec"
    dims = {"B": 32, "T": 16, "V": 27, "C": 64, "C2": 64}
    ints = Bigram.ints

    @staticmethod
    def params(d, r):
        V, T, C, C2 = d["V"], d["T"], d["C"], d["C2"]
        u = lambda shape, fan: uniform(r, shape, fan)
        return {"wte": r.standard_normal((V + 1, C)), "W1": u((T * C, C2), T * C), "b1": u((C2,), T * C),
                "W2": u((C2, V), C2), "b2": u((V,), C2)}

    @staticmethod
    def forward(d, t, X, Y):
        embs, idx = [], X.clone()
        for _ in range(d["T"]):
            embs.append(t["wte"][idx])
            idx = torch.roll(idx, 1, 1)
            idx[:, 0] = d["V"]
        emb = torch.cat(embs, -1)
        h = torch.tanh(emb @ t["W1"] + t["b1"])
        logits = h @ t["W2"] + t["b2"]
        loss = F.cross_entropy(logits.view(-1, d["V"]), Y.view(-1), ignore_index=-1)
        return loss, dict(emb=emb, h=h, logits=logits)


class Transformer:
    """makemore's Transformer, written as makemore writes it (c_attn one C x 3C
    map, split into q, k, v; masked_fill(-inf) before the softmax; NewGELU)"""
    spec = "transformer.spec"
    dims = {"B": 32, "T": 16, "V": 27, "C": 64, "NH": 4}
    # the key bias adds q·bk to every score of a row: softmax does not see it, its
    # true gradient is 0 and both sides hold rounding noise (compared absolutely)
    zero_grad = {f"bk{l}" for l in range(4)}
    ints = Bigram.ints
    L = 4

    @staticmethod
    def params(d, r):
        V, T, C = d["V"], d["T"], d["C"]
        u = lambda shape, fan: uniform(r, shape, fan)
        p = {"wte": r.standard_normal((V, C)), "wpe": r.standard_normal((T, C))}
        for l in range(Transformer.L):
            p.update({f"ln1w{l}": 1 + 0.1 * r.standard_normal(C), f"ln1b{l}": 0.1 * r.standard_normal(C),
                      f"Wq{l}": u((C, C), C), f"bq{l}": u((C,), C), f"Wk{l}": u((C, C), C), f"bk{l}": u((C,), C),
                      f"Wv{l}": u((C, C), C), f"bv{l}": u((C,), C), f"Wp{l}": u((C, C), C), f"bp{l}": u((C,), C),
                      f"ln2w{l}": 1 + 0.1 * r.standard_normal(C), f"ln2b{l}": 0.1 * r.standard_normal(C),
                      f"Wf{l}": u((C, 4 * C), C), f"bf{l}": u((4 * C,), C), f"Wm{l}": u((4 * C, C), 4 * C),
                      f"bm{l}": u((C,), 4 * C)})
        p.update({"lnfw": 1 + 0.1 * r.standard_normal(C), "lnfb": 0.1 * r.standard_normal(C), "Wlm": u((C, V), C)})
        return p

    @staticmethod
    def forward(d, t, X, Y):
        B, T, C, NH = d["B"], d["T"], d["C"], d["NH"]
        ln = lambda x, w, b: F.layer_norm(x, (C,), w, b, 1e-5)
        gelu = lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
        mask = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
        x = t["wte"][X] + t["wpe"]
        inter = {"x0": x}
        for l in range(Transformer.L):
            a = ln(x, t[f"ln1w{l}"], t[f"ln1b{l}"])
            w = torch.cat([t[f"Wq{l}"], t[f"Wk{l}"], t[f"Wv{l}"]], 1)
            bb = torch.cat([t[f"bq{l}"], t[f"bk{l}"], t[f"bv{l}"]])
            q, k, v = (a @ w + bb).split(C, dim=2)
            q, k, v = (z.view(B, T, NH, C // NH).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // NH))
            att = F.softmax(att.masked_fill(mask == 0, float("-inf")), dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
            r_ = x + (y @ t[f"Wp{l}"] + t[f"bp{l}"])
            x = r_ + (gelu(ln(r_, t[f"ln2w{l}"], t[f"ln2b{l}"]) @ t[f"Wf{l}"] + t[f"bf{l}"]) @ t[f"Wm{l}"] + t[f"bm{l}"])
            inter.update({f"att{l}": att, f"y{l}": y, f"r{l}": r_, f"x{l + 1}": x})
        logits = ln(x, t["lnfw"], t["lnfb"]) @ t["Wlm"]
        loss = F.cross_entropy(logits.view(-1, d["V"]), Y.view(-1), ignore_index=-1)
        inter["logits"] = logits
        return loss, inter


class RNN:
    """makemore's RNN, written as makemore writes it (start.expand, torch.cat of
    x_t and h_{t-1}, a Python loop over positions, the hiddens stacked)"""
    spec = "rnn.spec"
    dims = {"B": 32, "T": 16, "V": 27, "E": 64, "H": 64}
    ints = Bigram.ints
    gru = False

    @classmethod
    def params(cls, d, r):
        V, E, H = d["V"], d["E"], d["H"]
        u = lambda shape, fan: uniform(r, shape, fan)
        p = {"start": 0.1 * r.standard_normal((1, H)), "wte": r.standard_normal((V, E)),
             "Wlm": u((H, V), H), "blm": u((V,), H)}
        for w in ("z", "r", "c") if cls.gru else ("xh",):
            p.update({"W" + w: u((E + H, H), E + H), "b" + w: u((H,), E + H)})
        return p

    @classmethod
    def forward(cls, d, t, X, Y):
        B, T = d["B"], d["T"]
        emb = t["wte"][X]
        hprev = t["start"].expand((B, -1))
        hiddens, inter = [], {}
        for i in range(T):
            xt = emb[:, i, :]
            xh = torch.cat([xt, hprev], dim=1)
            if cls.gru:
                r_ = torch.sigmoid(xh @ t["Wr"] + t["br"])
                hbar = torch.tanh(torch.cat([xt, r_ * hprev], dim=1) @ t["Wc"] + t["bc"])
                z = torch.sigmoid(xh @ t["Wz"] + t["bz"])
                ht = (1 - z) * hprev + z * hbar
                inter.update({f"xh_{i}": xh, f"r_{i}": r_, f"hbar_{i}": hbar, f"z_{i}": z})
            else:
                ht = torch.tanh(xh @ t["Wxh"] + t["bxh"])
            inter[f"h_{i}"] = ht
            hprev = ht
            hiddens.append(ht)
        hs = torch.stack(hiddens, 1)
        logits = hs @ t["Wlm"] + t["blm"]
        loss = F.cross_entropy(logits.view(-1, d["V"]), Y.view(-1), ignore_index=-1)
        inter.update({"hs": hs, "logits": logits})
        return loss, inter


class GRU(RNN):
    """makemore's GRU cell in the same loop"""
    spec = "gru.spec"
    gru = True


class GPT2:
    """llm.c's GPT-2 as its train_gpt2.py writes it (F.linear on (out, in)
    weights, c_attn split into q, k, v, NewGELU, tied lm_head), the params
    stacked per layer as llm.c's checkpoint holds them; the loss over the first
    V of the Vp logits"""
    spec = "gpt2.spec"
    dims = {"B": 4, "T": 64, "maxT": 64, "V": 65, "Vp": 96, "L": 4, "NH": 4, "C": 128}
    ints = {"X": lambda d, r: r.integers(0, d["V"], size=(d["B"], d["T"])),
            "Y": lambda d, r: r.integers(0, d["V"], size=(d["B"], d["T"]))}

    @staticmethod
    def params(d, r):
        L, C, Vp, maxT = d["L"], d["C"], d["Vp"], d["maxT"]
        n = r.standard_normal
        return {"wte": 0.3 * n((Vp, C)), "wpe": 0.3 * n((maxT, C)),
                "ln1w": 1 + 0.1 * n((L, C)), "ln1b": 0.1 * n((L, C)),
                "qkvw": n((L, 3 * C, C)) / C ** 0.5, "qkvb": 0.1 * n((L, 3 * C)),
                "attprojw": n((L, C, C)) / C ** 0.5, "attprojb": 0.1 * n((L, C)),
                "ln2w": 1 + 0.1 * n((L, C)), "ln2b": 0.1 * n((L, C)),
                "fcw": n((L, 4 * C, C)) / C ** 0.5, "fcb": 0.1 * n((L, 4 * C)),
                "fcprojw": n((L, C, 4 * C)) / (4 * C) ** 0.5, "fcprojb": 0.1 * n((L, C)),
                "lnfw": 1 + 0.1 * n((C,)), "lnfb": 0.1 * n((C,))}

    @staticmethod
    def forward(d, t, X, Y):
        B, T, C, NH, V = d["B"], d["T"], d["C"], d["NH"], d["V"]
        ln = lambda x, w, b: F.layer_norm(x, (C,), w, b, 1e-5)
        gelu = lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
        mask = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
        x = t["wte"][X] + t["wpe"][:T]
        inter = {}
        for l in range(d["L"]):
            qkv = F.linear(ln(x, t["ln1w"][l], t["ln1b"][l]), t["qkvw"][l], t["qkvb"][l])
            q, k, v = qkv.split(C, dim=2)
            q, k, v = (z.view(B, T, NH, C // NH).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // NH))
            att = F.softmax(att.masked_fill(mask == 0, float("-inf")), dim=-1)
            atty = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
            r_ = x + F.linear(atty, t["attprojw"][l], t["attprojb"][l])
            fch = gelu(F.linear(ln(r_, t["ln2w"][l], t["ln2b"][l]), t["fcw"][l], t["fcb"][l]))
            x = r_ + F.linear(fch, t["fcprojw"][l], t["fcprojb"][l])
            inter.update({f"qkv_{l}": qkv, f"att_{l}": att, f"atty_{l}": atty, f"r_{l}": r_, f"fch_{l}": fch,
                          f"x_{l}": x})
        lp = F.linear(ln(x, t["lnfw"], t["lnfb"]), t["wte"])
        logits = lp[:, :, :V]
        loss = F.cross_entropy(logits.reshape(-1, V), Y.view(-1))
        inter.update({"lp": lp, "logits": logits})
        return loss, inter


MODELS = {"wavenet": WaveNet, "bigram": Bigram, "bow": BoW, "makemore_mlp": MakemoreMLP,
          "transformer": Transformer, "rnn": RNN, "gru": GRU, "gpt2": GPT2}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("--bpgen", default="./bpgen")
    ap.add_argument("--spec-dir", default="specs")
    ap.add_argument("-D", action="append", default=[], metavar="NAME=INT")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tol", type=float, default=1e-10)
    ap.add_argument("--ref", action="store_true", help="bpgen grad --ref: the reference runtime")
    args = ap.parse_args()
    m = MODELS[args.model]
    d = dict(m.dims)
    for kv in args.D:
        k, v = kv.split("=")
        d[k] = int(v)
    r = np.random.default_rng(args.seed)
    ints = {k: f(d, r).astype(np.int64) for k, f in m.ints.items()}
    p = m.params(d, r)

    root = tempfile.TemporaryDirectory(prefix="bpgen_torch_")
    ind, outd = os.path.join(root.name, "in"), os.path.join(root.name, "out")
    os.mkdir(ind)
    for k, v in list(ints.items()) + list(p.items()):
        np.save(os.path.join(ind, k + ".npy"), v)
    cmd = [args.bpgen, "grad", os.path.join(args.spec_dir, m.spec), "--dtype", "f64", "--in", ind, "--out", outd]
    cmd += [a for k, v in d.items() for a in ("-D", f"{k}={v}")]
    if args.ref:
        cmd.append("--ref")
    print("$", " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        sys.exit(f"bpgen failed with status {res.returncode}")
    got = {f[:-4]: np.load(os.path.join(outd, f)) for f in os.listdir(outd) if f.endswith(".npy")}

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p.items()}
    it = {k: torch.tensor(v, dtype=torch.long) for k, v in ints.items()}
    loss, inter = m.forward(d, t, **it)
    for v in inter.values():
        v.retain_grad()
    loss.backward()
    rows = [("loss", rel(got["loss"], loss.item()))]
    zero = getattr(m, "zero_grad", set())
    rows += [("d" + k, np.max(np.abs(got[k + ".grad"] - t[k].grad.numpy())) if k in zero
              else rel(got[k + ".grad"], t[k].grad.numpy())) for k in p]
    rows += [("d" + k, rel(got[k + ".grad"], v.grad.numpy())) for k, v in inter.items()]
    rows += [(k, rel(got[k], v.detach().numpy())) for k, v in inter.items()]
    print(f"{'tensor':12} {'max rel err':>12}   ({m.spec} {d}, PyTorch {torch.__version__} f64)")
    bad = 0
    for name, e in rows:
        bad += not e <= args.tol
        print(f"{name:12} {e:12.3e}{'' if e <= args.tol else '  <-- FAIL'}")
    print("torch_models:", "ok" if not bad else f"{bad} over tolerance {args.tol:g}")
    root.cleanup()
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
