"""Training throughput with 1 and N processes (``sparsecode train --nproc N``), side by side.

    python benchmarks/bench_distributed.py sample_data/glove.6B.50d.5k.h5 --nproc 2 --hidden 1000 --k 32

Each run trains the same model (same global batch and seed) in a fresh folder; throughput is
words x epochs over the training time the run records (``train_seconds`` in ``summary.json``:
the loop only, without start-up and the final statistics). On a CPU machine one process uses
every core; N processes get cores / N threads each (OMP_NUM_THREADS), so the comparison is at
equal hardware.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(nproc: int, args, out: Path) -> float:
    cmd = [sys.executable, "-m", "sparsecode", "train", args.embeddings, "--out", str(out), "--hidden", str(args.hidden),
           "--k", str(args.k), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--device", args.device, "--quiet", "--nproc", str(nproc)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    return config["n_words"] * args.epochs / summary["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("embeddings")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=1000)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"{args.embeddings}: H={args.hidden}, k={args.k}, batch {args.batch_size}, {args.epochs} epochs, "
          f"{args.device}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        one = run(1, args, Path(tmp) / "one")
        many = run(args.nproc, args, Path(tmp) / "many")
    print(f"1 process: {one:,.0f} vectors/s")
    print(f"{args.nproc} processes: {many:,.0f} vectors/s ({many / one:.2f}x)")


if __name__ == "__main__":
    main()
