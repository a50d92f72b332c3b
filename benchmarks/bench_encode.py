"""Encoding and neighbour search over a large vocabulary against their products, side by side in one run.

    python benchmarks/bench_encode.py [--words 400000] [--dim 300] [--hidden 4096] [--k 32] [--rounds 2]

Writes synthetic embeddings (``--words`` x ``--dim``, float32) and a randomly initialised model
into a temporary folder (``--dir``; removed afterwards), then, in alternating rounds:

- encode:   ``sparsecode.encoding.encode_file`` on the file, as ``sparsecode encode`` runs it (read the
            HDF5 file in chunks, encode in batches, CSR entries, per-unit top words, write the codes
            file); only the command-line start-up is left out;
- codes:    the same batches encoded in memory (``iter_codes``: encoder and CSR entries, no files);
- products: the encoder's dense product alone, ``addmm(b_enc, x, W_enc)`` over the same batches
            (as many words as ``sparsecode encode`` takes at a time), written into one reused output:
            the roofline of encoding on this machine, now (a fresh output of 8,192 x 4,096 floats,
            128 MiB, is page-faulted in on every call, which made it look 30% slower).

Then neighbour search on the codes file it wrote: the time of one query through
``CodeIndex.neighbors`` (one word) against one sparse-dense product of the whole (N, H) code matrix
with a query column (the product a query cannot avoid), and several words in one call.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from sparsecode.codes import load_codes
from sparsecode.embeddings import DEFAULT_CHUNK_ROWS
from sparsecode.encoding import EncodeSettings, encode_file, iter_codes
from sparsecode.model import SparseAutoencoder
from sparsecode.search import CodeIndex
from synthetic import write_synthetic


def write_run(run: Path, emb_path: Path, hidden: int, k: int, device: str) -> SparseAutoencoder:
    """A randomly initialised model (tied, data-normalised) saved as a finished run directory."""
    run.mkdir()
    with h5py.File(emb_path, "r") as f:
        sample = torch.from_numpy(f["vectors"][:50_000])
    model = SparseAutoencoder(sample.shape[1], hidden)
    model.initialise(sample, generator=torch.Generator().manual_seed(0))
    model.save(run / "model.pt")
    (run / "config.json").write_text(json.dumps({"hidden": hidden, "k": k, "k_encode": k}))
    return model.to(device).eval()


def seconds(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=400_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--queries", type=int, default=20, help="single-word queries timed")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dir", default=None, help="folder for the temporary files (default: the system's)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_encode_", dir=args.dir))
    try:
        emb_path, run, out = tmp / "emb.h5", tmp / "run", tmp / "codes.h5"
        write_synthetic(emb_path, args.words, args.dim)
        model = write_run(run, emb_path, args.hidden, args.k, args.device)
        with h5py.File(emb_path, "r") as f:
            data = torch.from_numpy(f["vectors"][...])
        rows = EncodeSettings().batch_size
        batches = [data[s : s + rows].to(dev) for s in range(0, len(data), rows)]
        W_enc, b_enc = model.W_enc.detach(), model.b_enc.detach()
        out_buf = torch.empty(rows, args.hidden, device=dev)

        def products() -> None:  # into one reused output: the product's own speed, no allocation
            for x in batches:
                torch.addmm(b_enc, x, W_enc, out=out_buf[: x.shape[0]])

        def codes() -> None:
            for _ in iter_codes(model, iter([(0, data.numpy())]), args.k):
                pass

        def whole_file() -> None:
            encode_file(run, emb_path, out, k=args.k, force=True, device=args.device, chunk_rows=DEFAULT_CHUNK_ROWS)

        products()  # warm-up
        times: dict[str, list[float]] = {"encode": [], "codes": [], "products": []}
        for _ in range(args.rounds):
            times["encode"].append(seconds(whole_file, dev))
            times["codes"].append(seconds(codes, dev))
            times["products"].append(seconds(products, dev))
        sec = {name: statistics.median(t) for name, t in times.items()}
        flops = 2 * args.words * args.dim * args.hidden
        print(f"\nencode {args.words:,} x {args.dim} into {args.hidden} units, k={args.k}, batches of {rows:,} words "
              f"(median of {args.rounds}):")
        print(f"  products alone  {sec['products']:7.2f} s   {flops / sec['products'] / 1e9:.0f} GFLOP/s")
        print(f"  codes in memory {sec['codes']:7.2f} s   efficiency {sec['products'] / sec['codes']:.0%}")
        print(f"  encode (file)   {sec['encode']:7.2f} s   efficiency {sec['products'] / sec['encode']:.0%}"
              f"   {args.words / sec['encode']:,.0f} words/s")

        codes_file = load_codes(out)
        t = time.perf_counter()
        index = CodeIndex(codes_file, device=args.device)
        build = time.perf_counter() - t
        rng = np.random.default_rng(1)
        usable = np.flatnonzero(codes_file.l0() > 0)
        words = [codes_file.words[i] for i in rng.choice(usable, size=args.queries, replace=False)]
        index.neighbors(words[:1])  # warm-up
        query, product = [], []
        for w in words:
            q = index.query_matrix([codes_file.index_of(w)])
            query.append(seconds(lambda: index.neighbors([w]), dev))
            product.append(seconds(lambda: index.matrix @ q, dev))
        several = seconds(lambda: index.neighbors(words[:8]), dev)
        q_s, p_s = statistics.median(query), statistics.median(product)
        print(f"\nneighbors over {len(codes_file.words):,} words ({codes_file.nnz:,} non-zeros), median of {args.queries} queries:")
        print(f"  one sparse-dense product {1e3 * p_s:7.2f} ms")
        print(f"  one query                {1e3 * q_s:7.2f} ms   = {q_s / p_s:.2f} x the product")
        print(f"  8 words in one call      {1e3 * several:7.2f} ms   = {several / q_s:.2f} x one query")
        print(f"  (index built once per codes file: {build:.2f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
