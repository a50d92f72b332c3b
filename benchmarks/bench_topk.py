"""Training-step throughput of the top-k paths, measured side by side in one run.

    python benchmarks/bench_topk.py [--steps 30] [--device cpu]

For each shape (D, H, k) at batch 1024 it times a full training step (encode, decode, loss,
backward, Adam) with:

- custom/sparse: sparsecode's TopKEncode (index-add encoder backward) + SparseDecode (embedding bag);
- custom/dense:  TopKEncode + the dense decode (scatter, matmul);
- dense:         plain autograd through torch.topk, scatter and matmul (the reference);
- per-row loop:  a Python loop calling torch.topk row by row, as forum code does (fixed so it runs).

It prints vectors/s and each path's speed relative to the per-row loop and to the dense path.
Rounds alternate between the paths so that noise on a shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sparsecode.topk import dense_decode, dense_encode, decode, topk_encode


def make_params(D: int, H: int, device: str):
    g = torch.Generator().manual_seed(0)
    W_dec = torch.randn(H, D, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    params = [W_dec.t().clone(), torch.zeros(H), W_dec, torch.zeros(D)]
    return [p.to(device).requires_grad_() for p in params]


def step_custom(impl):
    def step(x, k, W_enc, b_enc, W_dec, b_dec):
        enc = topk_encode(x, W_enc, b_enc, k)
        return decode(enc.acts, enc.indices, W_dec, b_dec, impl=impl)
    return step


def step_dense(x, k, W_enc, b_enc, W_dec, b_dec):
    acts, idx = dense_encode(x, W_enc, b_enc, k)
    return dense_decode(acts, idx, W_dec, b_dec)


def step_loop(x, k, W_enc, b_enc, W_dec, b_dec):
    pre = x @ W_enc + b_enc
    rows = []
    for row in pre:  # the forum recipe: one topk per row, then mask
        vals, idx = row.topk(k)
        rows.append(torch.zeros_like(row).scatter(0, idx, vals.clamp_min(0)))
    return torch.stack(rows) @ W_dec + b_dec


PATHS = {
    "custom/sparse": step_custom("sparse"),
    "custom/dense": step_custom("dense"),
    "dense": step_dense,
    "per-row loop": step_loop,
}


def time_path(fn, x, k, params, opt, steps: int, device: str) -> float:
    """Seconds per training step (median over ``steps``)."""
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        x_hat = fn(x, k, *params)
        loss = (x - x_hat).pow(2).sum() / x.pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per path and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shapes", default="50,1000,32;300,3000,32", help="D,H,k;D,H,k...")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, batch {args.batch}")
    for shape in args.shapes.split(";"):
        D, H, k = map(int, shape.split(","))
        x = torch.randn(args.batch, D, generator=torch.Generator().manual_seed(1)).to(args.device)
        results: dict[str, list[float]] = {name: [] for name in PATHS}
        for _ in range(args.rounds):
            for name, fn in PATHS.items():
                params = make_params(D, H, args.device)
                opt = torch.optim.Adam(params, lr=1e-3)
                steps = max(2, args.steps // 10) if name == "per-row loop" else args.steps
                time_path(fn, x, k, params, opt, 2, args.device)  # warm-up
                results[name].append(time_path(fn, x, k, params, opt, steps, args.device))
        sec = {name: min(v) for name, v in results.items()}
        print(f"\nD={D} H={H} k={k}")
        print(f"{'path':<15}{'ms/step':>10}{'vectors/s':>12}{'x loop':>9}{'x dense':>9}")
        for name, s in sec.items():
            print(f"{name:<15}{1e3 * s:>10.2f}{args.batch / s:>12,.0f}{sec['per-row loop'] / s:>9.1f}{sec['dense'] / s:>9.2f}")


if __name__ == "__main__":
    main()
