"""The same code on CUDA: gradient checks, then one epoch of training against the GPU's matmul speed.

    python benchmarks/gpu_check.py                      # on a CUDA machine: 1M x 300 into 4096 units
    python benchmarks/gpu_check.py --device cpu --small # what the tests run: the same steps, small

1. Gradient checks on the device, in float64: ``torch.autograd.gradcheck`` of the top-k encoder
   (with and without AuxK) and of the sparse decoder, and exact agreement of the sparse and dense
   paths (forward and gradients), as ``tests/test_topk.py`` does on the CPU. Any failure exits 1.
2. One epoch of ``Trainer.train_step`` over synthetic word-vector-like data (``--words`` x ``--dim``,
   ``--hidden`` units, ``--k``, batch ``--batch``) in each precision: ``fp32``; on CUDA also ``tf32``
   (TF32 tensor cores for float32 matrix products) and ``bf16`` (autocast: the encoder's dense
   product in bfloat16; selection, sparse gradients, Adam and the weights stay float32). For each it
   prints throughput, the time of the epoch's dense products alone in that precision (the encoder
   forward of every step, measured in this run) and efficiency = products / epoch (target of
   issue #5: at least 50%), and the FVU of the trained model over the data (in float32) beside
   fp32's. A precision is recommended only where its FVU is within 1% of fp32's.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np
import torch

from sparsecode.config import TrainConfig
from sparsecode.embeddings import Embeddings
from sparsecode.evaluate import code_statistics
from sparsecode.topk import SparseDecode, TopKEncode, decode, dense_decode, dense_encode, topk_encode
from sparsecode.train import Trainer
from synthetic import synthetic


# -- 1. gradient checks ------------------------------------------------------------------------------
def gradient_checks(device: torch.device) -> list[tuple[str, bool]]:
    """The checks of tests/test_topk.py, in float64 on ``device``: (name, passed) pairs."""
    B, D, H, K = 7, 6, 16, 4
    g = torch.Generator().manual_seed(0)
    f64 = dict(dtype=torch.float64)
    x = torch.randn(B, D, generator=g, **f64).to(device)
    W_enc = torch.randn(D, H, generator=g, **f64).to(device).requires_grad_()
    b_enc = (0.1 * torch.randn(H, generator=g, **f64)).to(device).requires_grad_()
    W_dec = torch.randn(H, D, generator=g, **f64).to(device).requires_grad_()
    b_dec = torch.randn(D, generator=g, **f64).to(device).requires_grad_()
    dead = torch.zeros(H, dtype=torch.bool, device=device)
    dead[[0, 3, 7, 8, 12, 15]] = True
    results = []

    def check(name, fn):
        try:
            results.append((name, bool(fn())))
        except Exception as exc:  # noqa: BLE001 - report every failure, go on with the others
            print(f"  {name}: {type(exc).__name__}: {exc}")
            results.append((name, False))

    xg = x.clone().requires_grad_()
    check("encoder gradcheck", lambda: torch.autograd.gradcheck(
        lambda x, W, b: TopKEncode.apply(x, W, b, K, 0, None)[0], (xg, W_enc, b_enc)))
    def with_aux(W, b):
        out = TopKEncode.apply(x, W, b, K, 3, dead)
        return out[0], out[2]

    check("encoder + AuxK gradcheck", lambda: torch.autograd.gradcheck(with_aux, (W_enc, b_enc)))
    with torch.no_grad():
        enc = topk_encode(x, W_enc, b_enc, K)
    acts = torch.rand(B, K, generator=g, **f64).to(device).requires_grad_()
    check("sparse decoder gradcheck", lambda: torch.autograd.gradcheck(
        lambda a, W, b: SparseDecode.apply(a, enc.indices, W, b), (acts, W_dec, b_dec)))

    def encoder_equals_dense():
        weights = torch.randn(B, H, generator=g, **f64).to(device)
        e = topk_encode(xg, W_enc, b_enc, K)
        ra, ri = dense_encode(xg, W_enc, b_enc, K)
        same_units = torch.equal(e.indices.sort(1).values, ri.sort(1).values)
        got = torch.autograd.grad((e.acts * weights.gather(1, e.indices)).sum(), (xg, W_enc, b_enc))
        want = torch.autograd.grad((ra * weights.gather(1, ri)).sum(), (xg, W_enc, b_enc))
        return same_units and all(torch.allclose(a, b, rtol=1e-12, atol=1e-12) for a, b in zip(got, want))

    def decoder_equals_dense():
        a = enc.acts.clone().requires_grad_()
        grad_out = torch.randn(B, D, generator=g, **f64).to(device)
        sparse = decode(a, enc.indices, W_dec, b_dec, impl="sparse")
        dense = dense_decode(a, enc.indices, W_dec, b_dec)
        got = torch.autograd.grad(sparse, (a, W_dec, b_dec), grad_out)
        want = torch.autograd.grad(dense, (a, W_dec, b_dec), grad_out)
        return torch.allclose(sparse, dense, rtol=1e-12, atol=1e-12) and all(
            torch.allclose(u, v, rtol=1e-12, atol=1e-12) for u, v in zip(got, want))

    check("encoder = dense reference", encoder_equals_dense)
    check("decoder = dense reference", decoder_equals_dense)
    return results


# -- 2. one epoch per precision -----------------------------------------------------------------------
@contextlib.contextmanager
def precision(mode: str, device: torch.device):
    """fp32: plain float32; tf32: TF32 tensor cores for float32 products; bf16: autocast to bfloat16."""
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high" if mode == "tf32" else "highest")  # "high": TF32 on CUDA
        if mode == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.set_float32_matmul_precision(old)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def product_seconds(B: int, D: int, H: int, device: torch.device, mode: str, reps: int = 20) -> float:
    """Median seconds of one encoder forward product (B, D) x (D, H) + bias in ``mode``."""
    x, W, b = torch.randn(B, D, device=device), torch.randn(D, H, device=device), torch.zeros(H, device=device)
    times = []
    with precision(mode, device):
        for i in range(reps + 3):
            sync(device)
            t = time.perf_counter()
            torch.addmm(b, x, W)
            sync(device)
            if i >= 3:
                times.append(time.perf_counter() - t)
    return float(np.median(times))


def train_epoch(data: Embeddings, args, device: torch.device, mode: str) -> dict:
    cfg = TrainConfig(hidden=args.hidden, k=args.k, batch_size=args.batch, epochs=1, device=device.type, seed=0)
    trainer = Trainer(data, cfg)
    sync(device)
    with precision(mode, device):
        t = time.perf_counter()
        while trainer.batch < trainer.steps_per_epoch:
            trainer.train_step()
        sync(device)
        seconds = time.perf_counter() - t
    n_eval = min(len(data), 200_000)
    x_eval = torch.from_numpy(data.vectors[:n_eval]).to(device)
    stats = code_statistics(trainer.model, x_eval, args.k)  # float32, no autocast
    return {"seconds": seconds, "steps": trainer.steps_per_epoch, "fvu": stats["fvu"], "dead": stats["dead_fraction"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="20,000 x 50 into 256 units, batch 1024: a smoke test")
    ap.add_argument("--words", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--precisions", default=None, help="comma-separated of fp32,tf32,bf16 (default: fp32 on a CPU, all on CUDA)")
    args = ap.parse_args()
    if args.small:
        args.words, args.dim, args.hidden, args.k, args.batch = 20_000, 50, 256, 16, 1024
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; run with --device cpu (add --small for a quick check)")
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, device {device} ({name})")

    print("\ngradient checks (float64):")
    checks = gradient_checks(device)
    for check_name, ok in checks:
        print(f"  {check_name:<28}{'ok' if ok else 'FAILED'}")
    if not all(ok for _, ok in checks):
        print("gradient checks: FAILED")
        return 1
    print("gradient checks: passed")

    modes = (args.precisions or ("fp32,tf32,bf16" if device.type == "cuda" else "fp32")).split(",")
    data = synthetic(args.words, args.dim)
    flops = 2 * args.batch * args.dim * args.hidden
    print(f"\none epoch: {args.words:,} x {args.dim} into {args.hidden} units, k={args.k}, batch {args.batch}")
    print(f"{'precision':<10}{'matmul TFLOP/s':>15}{'epoch s':>9}{'vectors/s':>13}{'products s':>11}{'efficiency':>11}"
          f"{'FVU':>8}{'dead':>7}")
    results = {}
    for mode in modes:
        try:
            r = train_epoch(data, args, device, mode)
        except Exception as exc:  # noqa: BLE001 - a precision this device or torch cannot run
            print(f"{mode:<10}failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            continue
        t_prod = product_seconds(args.batch, args.dim, args.hidden, device, mode)
        products = t_prod * r["steps"]
        results[mode] = r
        print(f"{mode:<10}{flops / t_prod / 1e12:>15.2f}{r['seconds']:>9.2f}{args.words / r['seconds']:>13,.0f}"
              f"{products:>11.2f}{products / r['seconds']:>11.0%}{r['fvu']:>8.4f}{r['dead']:>7.1%}", flush=True)
    if "fp32" in results:
        base = results["fp32"]["fvu"]
        ok = [m for m in results if abs(results[m]["fvu"] - base) <= 0.01 * base]
        fastest = min(ok, key=lambda m: results[m]["seconds"])
        print(f"\nwithin 1% of fp32's FVU: {', '.join(ok)}; fastest of those: {fastest}")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
