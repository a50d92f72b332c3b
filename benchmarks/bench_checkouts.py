"""Two checkouts of sparsecode side by side: training, encoding and loading, measured in one run.

    python benchmarks/bench_checkouts.py OLD_DIR NEW_DIR [--rounds 5] [--threads 1]
        [--embeddings sample_data/glove.6B.50d.5k.h5] [--hidden 1000] [--epochs 2]

For a change that must not cost speed (a refactor, say), make a worktree of the old commit
(``git worktree add /tmp/old <commit>``) and give both folders. Each round runs, in a fresh
interpreter per checkout (its folder first on ``PYTHONPATH``), the same three jobs through the
public API, which both checkouts share:

- train:  ``sparsecode.train`` on the embeddings (no run directory), ``--epochs`` epochs;
- encode: ``sparsecode.encode`` of every word with the model just trained, in memory;
- import: ``import sparsecode`` and the names ``train`` and ``encode`` (what every command pays
  before it starts).

Train and encode are timed after one warm-up of each (a one-epoch run and its encoding), so that
what a first call loads or allocates once is not counted: the figures are the steady state.

The checkouts alternate within every round (the order flips each round), so that the noise of a
shared machine hits both alike; the script prints each job's median seconds and new / old.
Both checkouts train the same model from the same seed; the final FVU is printed beside the
times, so a change of behaviour shows as well as a change of speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

#: What one interpreter runs: times of the three jobs and the final FVU, as one JSON line.
JOB = r"""
import json, sys, time
t0 = time.perf_counter()
import sparsecode, torch
train, encode = sparsecode.train, sparsecode.encode  # a name the package may load on first use
t_import = time.perf_counter() - t0
torch.set_num_threads(int(sys.argv[2]))
cfg = sparsecode.TrainConfig(hidden=int(sys.argv[3]), epochs=int(sys.argv[4]), device="cpu")
emb = sparsecode.load_embeddings(sys.argv[1])
encode(train(emb, sparsecode.TrainConfig(hidden=cfg.hidden, epochs=1, device="cpu")).model, emb, device="cpu")
t0 = time.perf_counter()
result = train(emb, cfg)
t_train = time.perf_counter() - t0
t0 = time.perf_counter()
codes = encode(result.model, emb, device="cpu")
t_encode = time.perf_counter() - t0
print(json.dumps({"import": t_import, "train": t_train, "encode": t_encode, "fvu": result.summary["fvu"],
                  "nnz": int(codes.nnz)}))
"""

def run_once(checkout: Path, args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", JOB, str(args.embeddings), str(args.threads), str(args.hidden),
                          str(args.epochs)], cwd=checkout, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{checkout}: the job failed:\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--embeddings", type=Path, default=Path("sample_data/glove.6B.50d.5k.h5").resolve())
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    args.embeddings = args.embeddings.resolve()
    checkouts = {"old": args.old.resolve(), "new": args.new.resolve()}
    times: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for name in ("old", "new") if r % 2 == 0 else ("new", "old"):
            times[name].append(run_once(checkouts[name], args))
    print(f"{args.embeddings.name}, H={args.hidden}, {args.epochs} epochs, {args.threads} thread(s), "
          f"{args.rounds} alternating rounds; median seconds")
    print(f"{'job':<8}{'old':>10}{'new':>10}{'new/old':>10}")
    for job in ("train", "encode", "import"):
        old, new = (statistics.median(t[job] for t in times[n]) for n in ("old", "new"))
        print(f"{job:<8}{old:>10.3f}{new:>10.3f}{new / old:>10.3f}")
    fvu = {n: {t["fvu"] for t in times[n]} for n in times}
    print(f"final FVU: old {sorted(fvu['old'])}, new {sorted(fvu['new'])}")


if __name__ == "__main__":
    main()
