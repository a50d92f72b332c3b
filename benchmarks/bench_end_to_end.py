"""``sparsecode train`` from the command line against its dense products alone, side by side in one run.

    python benchmarks/bench_end_to_end.py [--words 100000] [--dim 300] [--hidden 3000] [--k 32] [--epochs 4]

Writes synthetic embeddings (``--words`` x ``--dim``, float32) into a temporary folder (``--dir``,
default the system's; removed afterwards), then, in alternating rounds:

- train:    the command ``sparsecode train FILE --out RUN --hidden H --k K --epochs E --quiet
            --device cpu`` in a fresh process (under ``/usr/bin/time -v`` where it exists, for the
            peak memory): start-up, reading the file, training, the final statistics over every
            word, writing the run directory: everything a user waits for;
- products: the dense products that run computes, alone, in this process: the encoder forward
            ``addmm(b_enc, x, W_enc)`` of every training step (batch ``--batch-size``, train's
            default 256) and of the final statistics pass over every word (in train's batches),
            each into an output allocated once;
- ref:      the same plus the dense encoder weight gradient of every training step, ``x.T @ G``:
            the products of the two-product reference step of issue #5.

It prints the command's wall time divided by each (the target of issue #5: at most 2).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_memory import run as run_measured
from synthetic import write_synthetic

try:
    from sparsecode.training import FINAL_BATCH as STATS_BATCH  # the final statistics' batch
except ImportError:
    STATS_BATCH = 2048


def run_train(cmd: list[str]) -> tuple[float, str]:
    mb, wall = run_measured(cmd)
    return wall, f"{mb:.0f} MB peak"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=3000)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=256, help="train's --batch-size (its default: 256)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dir", default=None, help="folder for the temporary files (default: the system's)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    tmp = Path(tempfile.mkdtemp(prefix="bench_e2e_", dir=args.dir))
    try:
        emb = tmp / "emb.h5"
        write_synthetic(emb, args.words, args.dim)
        cmd = [sys.executable, "-m", "sparsecode", "train", str(emb), "--out", str(tmp / "run"), "--hidden",
               str(args.hidden), "--k", str(args.k), "--epochs", str(args.epochs), "--batch-size",
               str(args.batch_size), "--device", "cpu", "--quiet", "--force"]

        D, H, B = args.dim, args.hidden, args.batch_size
        g = torch.Generator().manual_seed(0)
        W_enc, b_enc = torch.randn(D, H, generator=g) / math.sqrt(D), torch.zeros(H)
        x = torch.randn(B, D, generator=g)
        grad_pre = torch.randn(B, H, generator=g)
        x_stats = torch.randn(STATS_BATCH, D, generator=g)
        steps = args.epochs * math.ceil(args.words / B)
        last = args.words - (math.ceil(args.words / B) - 1) * B  # the last, smaller batch of each epoch

        # Into outputs allocated once: the products' own speed (no page faults, see bench_train.py).
        out_pre, out_stats, out_wgrad = torch.empty(B, H), torch.empty(STATS_BATCH, H), torch.empty(D, H)

        def forward_products() -> None:
            for i in range(steps):
                xb = x if (i + 1) % math.ceil(args.words / B) else x[:last]
                torch.addmm(b_enc, xb, W_enc, out=out_pre[: xb.shape[0]])
            for s in range(0, args.words, STATS_BATCH):
                m = min(STATS_BATCH, args.words - s)
                torch.addmm(b_enc, x_stats[:m], W_enc, out=out_stats[:m])

        def weight_grads() -> None:
            for _ in range(steps):
                torch.mm(x.t(), grad_pre, out=out_wgrad)

        forward_products()  # warm-up
        times: dict[str, list[float]] = {"train": [], "forward": [], "w-grad": []}
        peak = ""
        for _ in range(args.rounds):
            wall, peak = run_train(cmd)
            times["train"].append(wall)
            for name, fn in (("forward", forward_products), ("w-grad", weight_grads)):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        sec = {name: statistics.median(t) for name, t in times.items()}
        print(f"\nsparsecode train: {args.words:,} x {D} words, H={H}, k={args.k}, {args.epochs} epochs, "
              f"batch {B} ({steps} steps); median of {args.rounds} rounds")
        print(f"  command, start-up included   {sec['train']:7.2f} s  {peak}")
        print(f"  its forward products alone   {sec['forward']:7.2f} s  -> train / products = "
              f"{sec['train'] / sec['forward']:.2f} (target <= 2)")
        ref = sec["forward"] + sec["w-grad"]
        print(f"  + dense w-grad (reference)   {ref:7.2f} s  -> train / reference products = {sec['train'] / ref:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
