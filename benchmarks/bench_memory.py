"""Peak resident memory of ``sparsecode train`` and ``encode`` on a million words, beside the file's size.

    python benchmarks/bench_memory.py --file BIG.h5 [--source sample_data/spacy.300d.2k.h5]
        [--words 1000000] [--hidden 1000] [--batch-size 4096]

``--file`` is made when it does not exist: the vectors of ``--source`` tiled to ``--words`` rows,
each copy with Gaussian noise of a tenth of the data's spread (so that no two rows are equal), its
words ``word_copy``, written with :func:`sparsecode.embeddings.write_embeddings`. Then, each in a
fresh process (``/usr/bin/time -v`` where it exists, otherwise ``resource.getrusage``):

- import:  ``import sparsecode`` alone: the interpreter, torch and the package;
- train:   ``sparsecode train FILE --hidden H --batch-size B --epochs 1 --device cpu --quiet``;
- encode:  ``sparsecode encode`` of every word with that run's model.

It prints each command's peak resident set, its wall time and the peak less the import's: what the
command holds beyond the interpreter and torch, against the size of the file it streams.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def make_file(path: Path, source: Path, words: int) -> None:
    """``words`` rows: ``source``'s vectors tiled, each copy with noise of a tenth of their spread."""
    from sparsecode.convert import load_embeddings
    from sparsecode.embeddings import write_embeddings

    src = load_embeddings(source)
    base = np.asarray(src.vectors, dtype=np.float32)
    copies = -(-words // len(base))
    rng = np.random.default_rng(0)
    noise = 0.1 * float(base.std())
    vectors = np.empty((copies * len(base), base.shape[1]), dtype=np.float32)
    for c in range(copies):
        block = vectors[c * len(base) : (c + 1) * len(base)]
        block[...] = rng.standard_normal(base.shape, dtype=np.float32)
        block *= noise
        block += base
    names = [f"{w}_{c}" for c in range(copies) for w in src.words]
    write_embeddings(path, names[:words], vectors[:words])


def run(cmd: list[str]) -> tuple[float, float]:
    """(peak resident MB, wall seconds) of ``cmd`` in a fresh process."""
    timer = ["/usr/bin/time", "-v"] if os.path.exists("/usr/bin/time") else []
    t = time.perf_counter()
    proc = subprocess.run(timer + cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    found = RSS.search(proc.stderr)
    kb = int(found.group(1)) if found else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return kb / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", required=True, type=Path, help="the million-word embeddings file (made if missing)")
    ap.add_argument("--source", type=Path, default=Path(__file__).parent.parent / "sample_data" / "spacy.300d.2k.h5")
    ap.add_argument("--words", type=int, default=1_000_000)
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--dir", default=None, help="folder for the runs and codes (default: the system's)")
    args = ap.parse_args()
    if not args.file.exists():
        make_file(args.file, args.source, args.words)
    size = args.file.stat().st_size / 2**20
    cli = [sys.executable, "-m", "sparsecode"]
    tmp = Path(tempfile.mkdtemp(prefix="bench_memory_", dir=args.dir))
    print(f"{args.file.name}: {size:,.0f} MB; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    try:
        results = {"import": run([sys.executable, "-c", "import sparsecode"])}
        results["train"] = run(cli + ["train", str(args.file), "--out", str(tmp / "run"), "--hidden", str(args.hidden),
                                      "--batch-size", str(args.batch_size), "--epochs", "1", "--device", "cpu",
                                      "--quiet"])
        results["encode"] = run(cli + ["encode", str(tmp / "run"), str(args.file), "--out", str(tmp / "codes.h5"),
                                       "--device", "cpu"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = results["import"][0]
    print(f"{'command':<10}{'peak MB':>9}{'beyond import':>15}{'/ file':>8}{'wall s':>8}")
    for name, (mb, wall) in results.items():
        print(f"{name:<10}{mb:>9,.0f}{mb - base:>15,.0f}{mb / size:>8.2f}{wall:>8.1f}")


if __name__ == "__main__":
    main()
