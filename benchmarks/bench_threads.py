"""``sparsecode train`` beside a competing process: torch's thread count, the command's own choice and
one thread, side by side in one run.

    python benchmarks/bench_threads.py [--rounds 3] [--embeddings FILE] [--hidden 1000] [--epochs 3]
        [--competitor torch|loops|none]

The competitor keeps the cores busy for the whole run: ``torch`` one process multiplying matrices
with torch's default threads (one per core), ``loops`` one single-threaded busy loop per core,
``none`` nothing (the machine as it is). Then, in rounds, each variant trains in a fresh process
(``python -c`` running the console script's ``main``, start-up included):

- torch default: torch's own thread count (one per core), the command's choice switched off;
- passive:       the same with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once);
- chosen:        the command as it is (``sparsecode.runtime.choose_threads``: the cores the load
                 leaves free, at least one);
- 1 thread:      ``OMP_NUM_THREADS=1``.

The variants run in a rotated order each round; the machine's load (``os.getloadavg``) is read
before every command. It prints each variant's median seconds and its ratio to the fastest variant
(the target: the command's choice at most 1.5x the best thread count).
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

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "glove.6B.50d.5k.h5"

OFF = "import sparsecode.cli as C\nC.choose_threads = lambda: 0\n"
#: variant -> (what runs before main, environment changes; None removes the variable)
VARIANTS = {
    "torch default": (OFF, {"OMP_NUM_THREADS": None}),
    "passive": (OFF, {"OMP_NUM_THREADS": None, "OMP_WAIT_POLICY": "PASSIVE"}),
    "chosen": ("", {"OMP_NUM_THREADS": None}),
    "1 thread": ("", {"OMP_NUM_THREADS": "1"}),
}
COMPETITORS = {
    "torch": "import torch\na = torch.randn(1024, 1024)\nwhile True:\n    a @ a\n",
    "loops": "while True:\n    pass\n",
}


def command(prelude: str, args: list[str]) -> list[str]:
    code = prelude + f"import sys\nsys.argv = ['sparsecode'] + {args!r}\nfrom sparsecode.cli import main\nmain()\n"
    return [sys.executable, "-c", code]


def environment(changes: dict[str, str | None]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def run(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--embeddings", default=str(SAMPLE))
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--competitor", choices=[*COMPETITORS, "none"], default="torch")
    ap.add_argument("--dir", default=None, help="folder for the temporary run (default: the system's)")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    competitors = []
    if args.competitor != "none":
        copies = cores if args.competitor == "loops" else 1
        competitors = [subprocess.Popen([sys.executable, "-c", COMPETITORS[args.competitor]], env=environment({}))
                       for _ in range(copies)]
    tmp = Path(tempfile.mkdtemp(prefix="bench_threads_", dir=args.dir))
    train = ["train", args.embeddings, "--hidden", str(args.hidden), "--epochs", str(args.epochs), "--device", "cpu",
             "--quiet", "--force", "--out", str(tmp / "run")]
    names = list(VARIANTS)
    times: dict[str, list[float]] = {name: [] for name in names}
    loads: list[float] = []
    try:
        time.sleep(5 if competitors else 0)  # the competitor under way
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                prelude, env = VARIANTS[name]
                loads.append(os.getloadavg()[0])
                times[name].append(run(command(prelude, train), environment(env)))
            print(f"round {r + 1}/{args.rounds} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    finally:
        for proc in competitors:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    sec = {name: statistics.median(t) for name, t in times.items()}
    best = min(sec.values())
    print(f"train {Path(args.embeddings).name}, H={args.hidden}, {args.epochs} epochs; competitor: {args.competitor}; "
          f"{cores} cores; load (1 min) median {statistics.median(loads):.1f}, range {min(loads):.1f}-{max(loads):.1f}")
    print(f"{'variant':<15}{'median s':>9}{'/ best':>8}")
    for name in names:
        print(f"{name:<15}{sec[name]:>9.2f}{sec[name] / best:>8.2f}")


if __name__ == "__main__":
    main()
