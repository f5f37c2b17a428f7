#!/usr/bin/python3
"""bench/torch_step.py: microseconds per full training step (forward, backward,
SGD update) of the lecture MLP in PyTorch eager with autograd, one thread, f32,
for the four benchmark configs.  Prints one line per config:
    torch H=<H> B=<B> <median us/step>
Exits 0 with a note on stderr when torch is missing (the benchmark skips it).
The model (makemore part 4): V=27, T=3, E=10;
  emb = C[X] -> [B,30]; hpre = emb @ W1 + b1; bn = batchnorm(hpre) * g + b;
  h = tanh(bn); logits = h @ W2 + b2; loss = cross_entropy(logits, Y)."""
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch_step.py: no torch for %s: skipping PyTorch" % sys.executable, file=sys.stderr)
    sys.exit(0)

torch.set_num_threads(1)
V, T, E = 27, 3, 10
CONFIGS = [(64, 32), (200, 32), (1024, 256), (4096, 1024)]


def bench(H, B, reps):
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((V, E), generator=g)
    W1 = torch.randn((T * E, H), generator=g) * (5 / 3) / (T * E) ** 0.5
    b1 = torch.randn(H, generator=g) * 0.1
    W2 = torch.randn((H, V), generator=g) * 0.1
    b2 = torch.randn(V, generator=g) * 0.1
    bngain = torch.ones((1, H))
    bnbias = torch.zeros((1, H))
    params = [C, W1, b1, W2, b2, bngain, bnbias]
    for p in params:
        p.requires_grad = True
    X = torch.randint(0, V, (B, T), generator=g)
    Y = torch.randint(0, V, (B,), generator=g)

    def step():
        emb = C[X].view(B, -1)
        hpre = emb @ W1 + b1
        mean = hpre.mean(0, keepdim=True)
        var = hpre.var(0, keepdim=True, unbiased=True)
        h = torch.tanh(bngain * (hpre - mean) / torch.sqrt(var + 1e-5) + bnbias)
        logits = h @ W2 + b2
        loss = F.cross_entropy(logits, Y)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 0.1 * p.grad
        return loss

    for _ in range(3):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        n = 0
        while True:
            step()
            n += 1
            t = time.perf_counter() - t0
            if t >= 0.05:
                break
        times.append(t / n * 1e6)
    times.sort()
    return times[len(times) // 2]


def main():
    reps = 5
    only = None
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--reps":
            reps = int(args.pop(0))
        elif a == "--config":
            only = args.pop(0)
        else:
            print("usage: torch_step.py [--reps N] [--config HxB]", file=sys.stderr)
            sys.exit(2)
    print("# torch %s, %d thread(s)" % (torch.__version__, torch.get_num_threads()))
    for H, B in CONFIGS:
        if only and only != "%dx%d" % (H, B):
            continue
        print("torch H=%d B=%d %.1f" % (H, B, bench(H, B, reps)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
