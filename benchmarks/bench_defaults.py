"""``sparsecode train`` end to end with topk's defaults against the same command as it trained before
issue #21 (``--geometry euclidean --rank-power 0``), side by side in one run.

    python benchmarks/bench_defaults.py EMB.h5 [--rounds 3] [--hidden 1000] [--epochs 10] [--against DIR]

``--against DIR``: "before" is instead the same command run by the checkout in DIR (its folder first on
``PYTHONPATH``) with its own defaults, e.g. ``git worktree add /tmp/old <commit>`` of the last release:
what a user of that version waited, against this one.

Each round runs both commands, in alternating order, in fresh processes (start-up, reading the file,
the k-means start, training, the final statistics, writing the run directory: everything a user
waits for), and prints each wall time; the end prints the medians and their ratio. The cosine
geometry adds one pass over the rows (the mean of the scaled rows) and a norm per batch; the draws
by rank replace the shuffle of each buffer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {"defaults": [], "before": ["--geometry", "euclidean", "--rank-power", "0"]}


def timed_train(emb: str, out: Path, extra: list[str], hidden: int, epochs: int, checkout: str | None = None) -> float:
    """Wall seconds of one ``sparsecode train`` command in a fresh process (``checkout``: that folder's code)."""
    cmd = [sys.executable, "-m", "sparsecode", "train", emb, "--out", str(out), "--hidden", str(hidden),
           "--epochs", str(epochs), "--quiet", "--device", "cpu", "--force", *extra]
    env = None if checkout is None else {**os.environ, "PYTHONPATH": checkout}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("embeddings")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--against", help="a checkout whose own defaults are 'before'")
    args = ap.parse_args()
    settings = dict(SETTINGS, before=[]) if args.against else SETTINGS
    checkouts = {"defaults": None, "before": os.path.abspath(args.against) if args.against else None}
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    tmp = Path(tempfile.mkdtemp(prefix="bench_defaults_"))
    try:
        for r in range(args.rounds):
            order = list(settings) if r % 2 == 0 else list(settings)[::-1]
            for name in order:
                seconds = timed_train(args.embeddings, tmp / name, settings[name], args.hidden, args.epochs,
                                      checkouts[name])
                times[name].append(seconds)
                print(f"round {r + 1} {name}: {seconds:.1f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"median: defaults {med['defaults']:.1f} s, before {med['before']:.1f} s, "
          f"defaults / before {med['defaults'] / med['before']:.2f}")


if __name__ == "__main__":
    main()
