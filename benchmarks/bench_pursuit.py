"""Pursuit encoding against the encoder and scikit-learn's OMP, measured side by side in one run.

    python benchmarks/bench_pursuit.py RUN_DIR EMB.h5 [--k K] [--sklearn-words 10000] [--threads N]

With the model of RUN_DIR (written by ``sparsecode train``) it codes the words of EMB.h5 with:

- encoder:    the model's top-k encoder;
- omp:        sparsecode's batched OMP over the decoder (:mod:`sparsecode.pursuit`);
- omp nonneg: the same, coefficients kept > 0;
- sklearn:    ``sklearn.linear_model.orthogonal_mp_gram`` with the same dictionary, targets and k,
              in float32 like ours (``--sklearn-dtype float64`` for its slower float64 path), on
              the first ``--sklearn-words`` words only: it is slow. Skipped with a message when
              scikit-learn is not installed (``pip install -e '.[bench]'``).

All four code the same normalised targets ``(x - input_mean) / input_scale - b_dec`` over the
rows of ``W_dec``, and the FVU is measured on the original scale, about the data mean. The timed
part is the coding of all the words, from vectors to (k coefficients, k atom ids) per word,
including the Gram matrix. Each method is timed ``--rounds`` times, the rounds alternating between
methods so that noise on a shared machine hits all of them alike; the best round counts. The ratios
compare omp and omp nonneg with scikit-learn on the same words: speed (words/s) and FVU.
"""

from __future__ import annotations

import argparse
import time

import torch

import sparsecode as sc
from sparsecode.pursuit import PursuitCoder


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    return float((x - x_hat).double().pow(2).sum() / (x.double() - x.double().mean(0)).pow(2).sum())


def code_in_batches(coder, x: torch.Tensor, k: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [coder.encode(x[i : i + batch], k) for i in range(0, x.shape[0], batch)]
    return torch.cat([p.acts for p in parts]), torch.cat([p.indices for p in parts])


def make_runners(model: sc.SparseAutoencoder, k: int, batch: int, sklearn_omp, sklearn_dtype: str):
    """name -> function(x) returning the codes of x: (acts, indices) (N, k) each, or a dense (N, H) matrix."""

    def encoder(x):
        return code_in_batches(model, x, k, batch)

    def omp(x, nonneg=False):
        return code_in_batches(PursuitCoder(model, nonneg), x, k, batch)

    def sklearn(x):
        W = model.W_dec.detach().numpy().astype(sklearn_dtype)
        target = (model.normalise(x) - model.b_dec).detach().numpy().astype(sklearn_dtype)
        coefs = sklearn_omp(W @ W.T, W @ target.T, n_nonzero_coefs=k)  # (H, N)
        return torch.from_numpy(coefs.T).float()

    runners = {"encoder": encoder, "omp": omp, "omp nonneg": lambda x: omp(x, nonneg=True)}
    if sklearn_omp is not None:
        runners["sklearn"] = sklearn
    return runners


def reconstruct(model: sc.SparseAutoencoder, codes) -> torch.Tensor:
    if isinstance(codes, tuple):
        return model.decode(*codes).detach()
    return model.denormalise(codes @ model.W_dec.detach() + model.b_dec.detach())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("embeddings")
    ap.add_argument("--k", type=int, default=None, help="atoms per word (default: the run's encode k)")
    ap.add_argument("--sklearn-words", type=int, default=10_000, help="words scikit-learn codes (the first ones)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8192, help="words per call, as 'sparsecode encode' does")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--sklearn-dtype", choices=("float32", "float64"), default="float32")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from sklearn.linear_model import orthogonal_mp_gram
    except ImportError:
        orthogonal_mp_gram = None
        print("scikit-learn is not installed: skipping the side-by-side comparison (pip install -e '.[bench]')")

    model, config = sc.load_run(args.run_dir)
    model.requires_grad_(False)
    k = args.k or config.get("k_encode") or config.get("k")
    if not k:
        raise SystemExit(f"{args.run_dir}: a --sparsity {config.get('sparsity')} run has no k: pass --k")
    x_all = torch.from_numpy(sc.load_embeddings(args.embeddings).vectors)
    x_sub = x_all[: args.sklearn_words]
    sklearn_part = f"; scikit-learn ({args.sklearn_dtype}) on the first {x_sub.shape[0]:,} words" if orthogonal_mp_gram else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {x_all.shape[0]:,} words x {x_all.shape[1]} dims, "
          f"H={model.n_hidden}, k={k}{sklearn_part}")

    runners = make_runners(model, k, args.batch, orthogonal_mp_gram, args.sklearn_dtype)
    # Ours on every word and on scikit-learn's words (for the side-by-side ratios); scikit-learn on its words.
    jobs = [(name, "all", x_all) for name in runners if name != "sklearn"]
    if orthogonal_mp_gram is not None:
        jobs += [(name, "sub", x_sub) for name in runners]
    seconds: dict[tuple[str, str], float] = {}
    result: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for name, part, x in jobs:
            start = time.perf_counter()
            codes = runners[name](x)
            elapsed = time.perf_counter() - start
            seconds[name, part] = min(seconds.get((name, part), float("inf")), elapsed)
            result[name, part] = fvu(x, reconstruct(model, codes))

    print(f"\n{'method':<12}{'words':>9}{'FVU':>9}{'seconds':>10}{'words/s':>11}")
    for (name, part), s in seconds.items():
        n = x_all.shape[0] if part == "all" else x_sub.shape[0]
        print(f"{name:<12}{n:>9,}{result[name, part]:>9.4f}{s:>10.3f}{n / s:>11,.0f}")
    if orthogonal_mp_gram is None:
        return
    print(f"\nside by side on the same {x_sub.shape[0]:,} words: speed and FVU as multiples of sklearn's")
    print(f"{'method':<12}{'speed':>8}{'FVU':>8}")
    ratios = {}
    for name in ("encoder", "omp", "omp nonneg"):
        ratios[name] = (seconds["sklearn", "sub"] / seconds[name, "sub"], result[name, "sub"] / result["sklearn", "sub"])
        print(f"{name:<12}{ratios[name][0]:>7.1f}x{ratios[name][1]:>7.3f}x")
    speed, error = ratios["omp"]
    print(f"\ngoal for omp: FVU at most 1.2x sklearn's ({error:.3f}x: {'met' if error <= 1.2 else 'NOT met'}), "
          f"speed at least 50x ({speed:.1f}x: {'met' if speed >= 50 else 'NOT met'})")


if __name__ == "__main__":
    main()
