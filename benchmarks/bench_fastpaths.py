"""Does each CPU fast path pay for itself? ``sparsecode train`` and ``encode`` with each one replaced by
the plain torch op, side by side with all of them on, in one run.

    python benchmarks/bench_fastpaths.py [--rounds 3] [--glove50 FILE] [--glove400 FILE] [--spacy300 FILE]

Every timing is a whole command in a fresh process (``python -c`` running the console script's
``main``, start-up included), so that what a path saves at import or start-up (the optimizer's) counts as
it does for a user. A variant replaces one fast path before ``main`` runs:

- all on:      the code as it is;
- block top-k: ``torch.topk`` (unsorted) instead of ``cpu_kernels.topk_select``;
- adam:        ``torch.optim.Adam(fused=True)`` instead of ``optim.FusedAdam`` (train only);
- all off:     both replaced at once.

(The radix and row argsorts, the kept pre-activation buffers and glibc's ``mallopt`` were measured
here too, saved less than 15%, and gave way to the torch ops and glibc's defaults: see the README.)

Jobs, at shapes people use (defaults: the shipped samples; pass the full files for real figures):

- train50:   ``train`` of ``--glove50`` (50 dims), H=1000, ``--epochs`` epochs, train's default batch;
- train300:  ``train`` of ``--spacy300`` (300 dims), H=4096, ``--epochs`` epochs;
- encode50:  ``encode`` of ``--glove400`` (50 dims) with train50's model (H=1000);
- encode300: ``encode`` of ``--encode-words`` synthetic 300-dim words with train300's model (H=4096).

Within each round every job runs each variant once, the variants in a rotated order, so that the
load of a shared machine hits them alike; the machine's load (``os.getloadavg``) is read before every
command. It prints, per job and variant, the median wall and CPU seconds (user + system, of the
command's process), variant / all-on, and the share of the command's time the fast path saves
(1 - all-on / variant): a path is worth keeping at 15% or more. On a machine other processes load,
the CPU seconds of a one-thread command are the steadier figure (wall time there is mostly waiting).
Threads: one (``OMP_NUM_THREADS=1``) unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import write_synthetic  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"

#: What each variant runs before the command line's main: the fast path replaced by the torch op.
TOPK = ("import sparsecode.topk as T\n"
        "T.topk_select = lambda pre, k: pre.topk(k, dim=1, sorted=False)\n")
ADAM = ("import torch, sparsecode.training as TR\n"
        "TR.make_adam = lambda params, lr: torch.optim.Adam(params, lr=lr, fused=True)\n")
VARIANTS = {"all on": "", "block top-k": TOPK, "adam": ADAM, "all off": TOPK + ADAM}
#: Variants that apply to a command that does not train.
ENCODE_VARIANTS = [v for v in VARIANTS if v != "adam"]


def command(prelude: str, args: list[str]) -> list[str]:
    code = prelude + f"import sys\nsys.argv = ['sparsecode'] + {args!r}\nfrom sparsecode.cli import main\nmain()\n"
    return [sys.executable, "-c", code]


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of ``cmd`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--glove50", default=str(SAMPLES / "glove.6B.50d.5k.h5"))
    ap.add_argument("--glove400", default=str(SAMPLES / "glove.6B.50d.5k.h5"))
    ap.add_argument("--spacy300", default=str(SAMPLES / "spacy.300d.2k.h5"))
    ap.add_argument("--encode-words", type=int, default=100_000)
    ap.add_argument("--jobs", default="train50,train300,encode50,encode300")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dir", default=None, help="folder for the temporary files (default: the system's)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_fastpaths_", dir=args.dir))
    try:
        words300 = tmp / "words300.h5"
        write_synthetic(words300, args.encode_words, 300)
        train = ["train", "--epochs", str(args.epochs), "--device", "cpu", "--quiet", "--force"]
        jobs = {
            "train50": (["train", args.glove50, "--hidden", "1000"], list(VARIANTS)),
            "train300": (["train", args.spacy300, "--hidden", "4096"], list(VARIANTS)),
            "encode50": (["encode", str(tmp / "run50"), args.glove400], ENCODE_VARIANTS),
            "encode300": (["encode", str(tmp / "run300"), str(words300)], ENCODE_VARIANTS),
        }
        jobs = {name: jobs[name] for name in args.jobs.split(",")}
        # The models the encode jobs use (and a warm file cache for every input).
        for name, emb, hidden in (("run50", args.glove50, "1000"), ("run300", args.spacy300, "4096")):
            if f"encode{name[3:]}" in jobs:
                run(command("", train[:1] + [emb, "--hidden", hidden, "--out", str(tmp / name)] + train[1:]))
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        loads: list[float] = []
        for r in range(args.rounds):
            for job, (cli_args, variants) in jobs.items():
                order = variants[r % len(variants):] + variants[: r % len(variants)]
                for variant in order:
                    if job.startswith("train"):
                        cli_args_run = cli_args + ["--out", str(tmp / "bench_run")] + train[1:]
                    else:
                        cli_args_run = cli_args + ["--out", str(tmp / "codes.h5"), "--device", "cpu", "--force"]
                    loads.append(os.getloadavg()[0])
                    times.setdefault((job, variant), []).append(run(command(VARIANTS[variant], cli_args_run)))
                    print(f"{job} {variant}: {times[(job, variant)][-1][0]:.2f} s wall, {times[(job, variant)][-1][1]:.2f} s "
                          f"CPU, load {loads[-1]:.1f}", file=sys.stderr, flush=True)
            print(f"round {r + 1}/{args.rounds} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.threads} thread(s), {args.rounds} rounds, machine load (1 min) during the run: median "
          f"{statistics.median(loads):.1f}, range {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")
    print(f"{'':<24}{'---------- wall ----------':>28}{'------- CPU (user+sys) -------':>32}")
    print(f"{'job':<11}{'variant':<13}" + f"{'median s':>10}{'/ all on':>10}{'saved':>8}" * 2)
    for job, (_, variants) in jobs.items():
        base = [statistics.median(t[i] for t in times[(job, "all on")]) for i in (0, 1)]
        for variant in variants:
            line = f"{job:<11}{variant:<13}"
            for i in (0, 1):
                sec = statistics.median(t[i] for t in times[(job, variant)])
                saved = "" if variant == "all on" else f"{1 - base[i] / sec:.0%}"
                line += f"{sec:>10.2f}{sec / base[i]:>10.2f}{saved:>8}"
            print(line)
    print("saved: the share of the command's time the fast path saves, 1 - all on / variant (keep at 15% or more); "
          "on a loaded machine the CPU seconds of these one-thread commands are the steadier measure")


if __name__ == "__main__":
    main()
