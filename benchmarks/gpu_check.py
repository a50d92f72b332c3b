"""The one prepared script a GPU machine runs: correctness, syncs and speed of the CUDA path, in one go.

    python benchmarks/gpu_check.py --out gpu_check.json        # on a CUDA machine (< 8 min on an H200)
    python benchmarks/gpu_check.py --device cpu --small        # what the tests run: the same checks, small

It writes its results as JSON (``--out``) and a short text table (the same name, ``.txt``; also
printed), and exits 1 when a correctness check fails (2 without the device). In order:

1. ``gradcheck``: float64 gradient checks on the device: TopKEncode with ``shift`` (and AuxK),
   SparseDecode with shuffled indices, the per-unit gradient products with skewed unit use, the
   scatter-add unit offsets against ``bincount``, and the sparse paths against the dense references.
2. ``cpu_vs_device``: 20 training steps (AuxK on) from the same start on the CPU and on the device,
   in float64 (same selections, weights within 1e-9) and float32 (within 1e-4).
3. ``resume``: a device checkpoint resumed on the CPU and back on the device, against an
   uninterrupted device run (noise on: the generator handling).
4. ``sync_audit``: ``torch.cuda.set_sync_debug_mode("error")`` around 3 warmed-up steps of topk with
   AuxK, of batchtopk, and of topk streamed across a buffer boundary: none may sync. It also counts
   the syncs of one encode batch (goal: at most one). Skipped on a CPU, with a line that says so.
5. ``throughput``: steps at (D, H, k, B) = (300, 4096, 32, 4096) and (300, 16384, 32, 16384) in fp32,
   TF32 and bf16 (autocast around the forward only: never the optimizer or the decoder projection),
   CUDA-event timing over 50 steps after 10 warm-ups, beside the step's floor (the forward GEMM and
   the top-k of its output, timed alone in the same run), on data kept on the device and streamed
   from a 1M x 300 file; the FVU of the timed batches beside fp32's.
6. ``sparsify``: when EleutherAI's sparsify is importable, its SAE step on the same shapes (its own
   code: fused encoder, Triton decoder, bf16 autocast), vectors/s beside ours.
7. ``encode``: the GloVe sample encoded (encoder and OMP) on the device and on the CPU: time and
   agreement of the codes.
8. ``ddp``: one-rank DistributedDataParallel (NCCL on CUDA, gloo on a CPU) against a plain run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib
import io
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import sparsecode as sc
from sparsecode import topk
from sparsecode.config import TrainConfig
from sparsecode.cpu_kernels import topk_select
from sparsecode.data import open_training_data
from sparsecode.distributed import Distributed
from sparsecode.topk import SparseDecode, TopKEncode, dense_decode, dense_encode, topk_encode
from synthetic import synthetic, write_synthetic

train_module = importlib.import_module("sparsecode.training")  # the package's "train" and "encode" are functions
encode_module = importlib.import_module("sparsecode.encoding")
Trainer = train_module.Trainer
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "glove.6B.50d.5k.h5"


# -- helpers ---------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn, device: torch.device, n: int, warmup: int) -> float:
    """Mean seconds of ``fn()`` over ``n`` calls after ``warmup``: CUDA events on a GPU (the device's
    time, launch latency overlapped), the wall clock on a CPU."""
    for _ in range(warmup):
        fn()
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / n
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


@contextlib.contextmanager
def matmul_precision(mode: str):
    """fp32 and bf16: float32 products in full precision; tf32: TF32 tensor cores for them."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if mode == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


def autocast_forward(trainer, device: torch.device) -> None:
    """bf16: the forward of the step (encoder product, selection, decode) under autocast; the backward
    (custom functions: float32), the optimizer and the decoder projection outside it."""
    forward = trainer.forward

    def wrapped(*args):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return forward(*args)

    trainer.forward = wrapped


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def weights(trainer) -> dict:
    return {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}


def record_counts(trainer) -> list:
    """Wrap the objective's step so that each step's fire counts (H,) are kept (on the host, at the end)."""
    counts = []
    step = trainer.objective.step

    def recording(*args, **kwargs):
        codes = step(*args, **kwargs)
        counts.append(codes.counts.detach())
        return codes

    trainer.objective.step = recording
    return counts


def steps(trainer, n: int) -> None:
    for _ in range(n):
        if trainer.batch == trainer.steps_per_epoch:
            trainer._end_epoch()
        trainer.train_step()


def to_float64(trainer) -> None:
    trainer.model.double()
    trainer.data_mean = trainer.data_mean.double()
    if trainer.source.resident is not None:
        trainer.source.resident = trainer.source.resident.double()


# -- 1. gradient checks ----------------------------------------------------------------------------
def gradient_checks(device: torch.device) -> dict:
    """float64 on ``device``: name -> passed."""
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
    results = {}

    def check(name, fn):
        try:
            results[name] = bool(fn())
        except Exception as exc:  # noqa: BLE001 - report every failure, go on with the others
            print(f"  {name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            results[name] = False

    xg = x.clone().requires_grad_()
    check("encoder with shift", lambda: torch.autograd.gradcheck(
        lambda x, W, b, s: TopKEncode.apply(x, W, b, K, 0, None, s)[0], (xg, W_enc, b_enc, b_dec)))

    def with_aux(W, b, s):
        out = TopKEncode.apply(x, W, b, K, 3, dead, s)
        return out[0], out[2]

    check("encoder + AuxK with shift", lambda: torch.autograd.gradcheck(with_aux, (W_enc, b_enc, b_dec)))
    with torch.no_grad():
        enc = topk_encode(x, W_enc, b_enc, K)
    shuffle = torch.rand(B, K, generator=g).argsort(1).to(device)
    idx = enc.indices.gather(1, shuffle)
    acts = torch.rand(B, K, generator=g, **f64).to(device).requires_grad_()
    check("decoder, shuffled indices", lambda: torch.autograd.gradcheck(
        lambda a, W, b: SparseDecode.apply(a, idx, W, b), (acts, W_dec, b_dec)))

    def decoder_order_free():
        grad_out = torch.randn(B, D, generator=g, **f64).to(device)
        got = torch.autograd.grad(SparseDecode.apply(acts, idx, W_dec, b_dec), (acts, W_dec), grad_out)
        want = torch.autograd.grad(dense_decode(acts, idx, W_dec, b_dec), (acts, W_dec), grad_out)
        return all(torch.allclose(u, v, rtol=1e-12, atol=1e-12) for u, v in zip(got, want))

    check("decoder, shuffled = dense", decoder_order_free)

    def outer_products_skewed():
        n_units, m, rows_n = 300, 8, 500
        skew = (torch.rand(rows_n, m, generator=g) ** 6 * n_units).long().to(device)  # a few units take most
        grads = torch.randn(rows_n, m, generator=g, **f64).to(device)
        rows = torch.randn(rows_n, D, generator=g, **f64).to(device)
        S = torch.zeros(rows_n, n_units, **f64, device=device).index_put_(
            (torch.arange(rows_n, device=device).repeat_interleave(m), skew.reshape(-1)), grads.reshape(-1),
            accumulate=True)
        out = topk._outer_index_add(skew, grads, rows, n_units)
        offsets = topk.unit_offsets(skew.reshape(-1), n_units)
        want = torch.zeros(n_units + 1, dtype=torch.int64, device=device)
        want[1:] = torch.bincount(skew.reshape(-1), minlength=n_units).cumsum(0)
        return torch.allclose(out, S.t() @ rows, rtol=1e-12, atol=1e-12) and torch.equal(offsets, want)

    check("unit products, skewed use", outer_products_skewed)

    def encoder_equals_dense():
        w = torch.randn(B, H, generator=g, **f64).to(device)
        e = topk_encode(xg, W_enc, b_enc, K)
        ra, ri = dense_encode(xg, W_enc, b_enc, K)
        same = torch.equal(e.indices.sort(1).values, ri.sort(1).values)
        got = torch.autograd.grad((e.acts * w.gather(1, e.indices)).sum(), (xg, W_enc, b_enc))
        want = torch.autograd.grad((ra * w.gather(1, ri)).sum(), (xg, W_enc, b_enc))
        return same and all(torch.allclose(a, b, rtol=1e-12, atol=1e-12) for a, b in zip(got, want))

    check("encoder = dense", encoder_equals_dense)
    return results


# -- 2. the same steps on the CPU and on the device --------------------------------------------------
#: The model of the correctness checks (2-5, 8): AuxK on, units dead after a quarter epoch; --small shrinks it.
CHECK_MODEL = dict(hidden=1024, k=16, batch_size=512)
CHECK_DATA = dict(n=16384, d=64)
CHECK_STEPS = dict(compare=20, resume=8)


def small_config(device: str, **extra) -> TrainConfig:
    return TrainConfig(**CHECK_MODEL, epochs=2, aux_coef=1 / 32, dead_window=0.25, seed=0, device=device, **extra)


def cpu_vs_device(data, device: torch.device) -> dict:
    n_steps = CHECK_STEPS["compare"]
    out = {}
    for dtype, tol in (("float64", 1e-9), ("float32", 1e-4)):
        runs = []
        for dev in ("cpu", str(device)):
            trainer = Trainer(data, small_config(dev))
            if dtype == "float64":
                to_float64(trainer)
            counts = record_counts(trainer)
            steps(trainer, n_steps)
            runs.append((weights(trainer), [c.cpu() for c in counts]))
        (wa, ca), (wb, cb) = runs
        same = all(torch.equal(a, b) for a, b in zip(ca, cb))
        diff = max_diff(wa, wb)
        passed = diff <= tol and (same or dtype == "float32")
        out[dtype] = {"steps": n_steps, "same_selections": same, "max_weight_diff": diff, "tolerance": tol,
                      "passed": passed}
    return out


# -- 3. resume on another device and back --------------------------------------------------------------
def resume_across(data, device: torch.device) -> dict:
    n = CHECK_STEPS["resume"]

    def cfg(dev):
        return small_config(dev, noise=0.1)

    straight = Trainer(data, cfg(str(device)))
    steps(straight, 3 * n)
    state = None
    for dev in (str(device), "cpu", str(device)):
        trainer = Trainer(data, cfg(dev))
        if state is not None:
            buffer = io.BytesIO()
            torch.save(state, buffer)  # as checkpoint.pt is written and read
            buffer.seek(0)
            state = torch.load(buffer, map_location="cpu", weights_only=True)
            trainer.check_resumable(state, "checkpoint")
            trainer.load_state_dict(state)
        steps(trainer, n)
        state = trainer.state_dict()
    diff = max_diff(weights(trainer), weights(straight))
    tol = 0.0 if device.type == "cpu" else 1e-3  # the CPU's steps round unlike the GPU's
    return {"path": f"{device} -> cpu -> {device}", "steps": 3 * n, "max_weight_diff": diff, "tolerance": tol,
            "passed": diff <= tol}


# -- 4. host syncs -----------------------------------------------------------------------------------
def sync_audit(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"skipped": "no CUDA device: torch.cuda.set_sync_debug_mode has nothing to watch on a CPU"}
    results = {}
    resident = synthetic(16384, 64)
    # 17 chunks, three buffers (16, 16 and 2 steps of 4096): step 16 starts the second, and step 17
    # loads the third ahead (pinned copies on the side stream).
    streamed = synthetic(2 * 65536 + 8192, 64)
    cases = {
        "topk + AuxK (resident)": (resident, small_config(str(device)), 3),
        "batchtopk (resident)": (resident, small_config(str(device), sparsity="batchtopk"), 3),
        "topk, streamed across a buffer": (streamed, dataclasses.replace(small_config(str(device)), batch_size=4096), 15),
    }
    for name, (emb, cfg, warm) in cases.items():
        with force_streaming(name.startswith("topk, streamed")):
            trainer = Trainer(emb, cfg)
        steps(trainer, warm)
        sync(device)
        torch.cuda.set_sync_debug_mode("error")
        try:
            steps(trainer, 3)
            results[name] = {"passed": True}
        except RuntimeError as exc:
            results[name] = {"passed": False, "error": str(exc).splitlines()[0][:300]}
        finally:
            torch.cuda.set_sync_debug_mode(0)
    # One encode batch: how many syncs (a warning each in "warn" mode).
    model = Trainer(resident, small_config(str(device))).model.eval()
    x = torch.from_numpy(resident.vectors[:8192]).to(device)
    encode_module.encode_batch(model, x, 16)  # warm-up
    sync(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            batch = encode_module.encode_batch(model, x, 16)
            batch.counts.cpu()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    results["encode batch syncs (goal <= 1)"] = {"syncs": sum("synchroniz" in str(w.message) for w in caught)}
    return results


@contextlib.contextmanager
def force_streaming(on: bool):
    """Trainers made in the block stream their data even where it would fit on the device."""
    from sparsecode.device_cuda import Cuda

    original = Cuda.keeps_data
    if on:
        Cuda.keeps_data = lambda self, n, dim: False
    try:
        yield
    finally:
        Cuda.keeps_data = original


# -- 5. throughput against the floor -----------------------------------------------------------------
def floor_seconds(D: int, H: int, k: int, B: int, device: torch.device, mode: str, n: int, warmup: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x, W = torch.randn(B, D, generator=g).to(device), torch.randn(D, H, generator=g).to(device)
    b = torch.zeros(H, device=device)
    if mode == "bf16":
        x, W, b = x.bfloat16(), W.bfloat16(), b.bfloat16()
    out = torch.empty(B, H, device=device, dtype=x.dtype)
    gemm = seconds_per_call(lambda: torch.addmm(b, x, W, out=out), device, n, warmup)
    select = seconds_per_call(lambda: topk_select(out, k), device, n, warmup)
    return {"gemm_s": gemm, "topk_s": select, "floor_s": gemm + select}


def throughput(shapes, device: torch.device, modes, datasets: dict, n: int, warmup: int) -> list:
    rows = []
    for D, H, k, B in shapes:
        for source, data in datasets.items():
            for mode in modes if source == "resident" else ("fp32",):
                cfg = TrainConfig(hidden=H, k=k, batch_size=B, epochs=1, seed=0, device=str(device))
                row = {"shape": f"{D}/{H}/{k}/{B}", "data": source, "precision": mode}
                trainer = None
                try:
                    with force_streaming(source == "streamed"):
                        trainer = Trainer(data, cfg)
                    if mode == "bf16":
                        autocast_forward(trainer, device)
                    todo = min(n, trainer.steps_per_epoch - warmup)
                    with matmul_precision(mode):
                        step_s = seconds_per_call(trainer.train_step, device, todo, warmup)
                        floor = floor_seconds(D, H, k, B, device, mode, n, warmup)
                    sync(device)
                    acc = trainer.stats.acc
                    row.update(floor, step_s=step_s, vectors_per_s=B / step_s, step_over_floor=step_s / floor["floor_s"],
                               fvu=float(acc["sse"] / acc["ssd"]), steps=todo)
                except Exception as exc:  # noqa: BLE001 - a precision this device or torch cannot run
                    row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                rows.append(row)
                print(f"  {row}", flush=True)
                del trainer
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


# -- 6. sparsify -------------------------------------------------------------------------------------
def sparsify_steps(shapes, device: torch.device, n: int, warmup: int) -> list | dict:
    try:
        import sparsify
    except ImportError:
        return {"skipped": "sparsify (eai-sparsify) is not importable here"}
    Coder = getattr(sparsify, "SparseCoder", None) or getattr(sparsify, "Sae")
    Config = getattr(sparsify, "SparseCoderConfig", None) or getattr(sparsify, "SaeConfig")
    rows = []
    for D, H, k, B in shapes:
        row = {"shape": f"{D}/{H}/{k}/{B}"}
        try:
            sae = Coder(D, Config(num_latents=H, k=k), device=device)
            opt = torch.optim.Adam(sae.parameters(), lr=1e-3, fused=device.type == "cuda")
            x = torch.randn(B, D, device=device)

            def step():
                out = sae(x)
                opt.zero_grad(set_to_none=True)
                out.fvu.backward()
                sae.remove_gradient_parallel_to_decoder_directions()
                opt.step()
                sae.set_decoder_norm_to_unit_norm()

            seconds = seconds_per_call(step, device, n, warmup)
            row.update(step_s=seconds, vectors_per_s=B / seconds, version=getattr(sparsify, "__version__", "?"))
        except Exception as exc:  # noqa: BLE001 - its API or kernels on this machine
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        rows.append(row)
    return rows


# -- 7. encode -----------------------------------------------------------------------------------------
def encode_check(device: torch.device, workdir: Path, n_words: int | None = None) -> dict:
    """A model trained on the GloVe sample (its first ``n_words``), encoded by both methods on both devices."""
    words = SAMPLE
    if n_words is not None:
        sample = sc.load_embeddings(SAMPLE)
        words = workdir / "sample.h5"
        sc.embeddings.write_embeddings(words, list(sample.words[:n_words]), sample.vectors[:n_words].copy())
    run = workdir / "run"
    sc.train(words, TrainConfig(hidden=1000, k=32, epochs=1, batch_size=1024, device="cpu"), out_dir=run)
    out = {"words": n_words or 5000}
    for method in ("encoder", "omp"):
        codes = {}
        for dev in dict.fromkeys(("cpu", str(device))):  # once on a CPU
            path = workdir / f"codes-{method}-{dev.replace(':', '')}.h5"
            t = time.perf_counter()
            sc.encode(run, words, path, device=dev, method=method, force=True)
            codes[dev] = (time.perf_counter() - t, sc.load_codes(path))
        (t_cpu, a), (t_dev, b) = codes["cpu"], codes[str(device)]
        same_rows = np.mean([np.array_equal(a.indices[a.indptr[i]:a.indptr[i + 1]], b.indices[b.indptr[i]:b.indptr[i + 1]])
                             for i in range(len(a.words))])
        data_diff = float(np.abs(a.data - b.data).max()) if a.data.shape == b.data.shape else float("nan")
        out[method] = {"cpu_s": t_cpu, "device_s": t_dev, "rows_with_same_units": float(same_rows),
                       "max_value_diff": data_diff}
    return out


# -- 8. one-rank DDP -------------------------------------------------------------------------------------
class OneRank(Distributed):
    """A job of one process that still goes through DDP and the step's all-reduce."""

    active = True


def one_rank_ddp(data, device: torch.device, n: int, warmup: int) -> dict:
    import torch.distributed as tdist

    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    backend = "nccl" if device.type == "cuda" else "gloo"
    tdist.init_process_group(backend, store=tdist.HashStore(), rank=0, world_size=1)
    try:
        cfg = small_config(str(device))
        plain, ddp = Trainer(data, cfg), Trainer(data, cfg, OneRank(device, 0, 1, 0))
        todo = min(n, plain.steps_per_epoch - warmup)
        t_plain = seconds_per_call(plain.train_step, device, todo, warmup)
        t_ddp = seconds_per_call(ddp.train_step, device, todo, warmup)
        diff = max_diff(weights(plain), weights(ddp))
        del plain, ddp
    finally:
        gc.collect()  # DDP's reducer before its process group (the other order aborts the process)
        tdist.destroy_process_group()
    return {"backend": backend, "plain_step_s": t_plain, "ddp_step_s": t_ddp, "ddp_over_plain": t_ddp / t_plain,
            "max_weight_diff": diff, "passed": diff <= 1e-5}


# -- the table -----------------------------------------------------------------------------------------
def table(results: dict) -> str:
    lines = [f"gpu_check: {results['device']} ({results['device_name']}), torch {results['torch']}"]
    grad = results["gradcheck"]
    lines.append(f"gradcheck (float64)      {sum(grad.values())}/{len(grad)} passed"
                 + ("" if all(grad.values()) else f"; FAILED: {', '.join(k for k, v in grad.items() if not v)}"))
    for dtype, r in results["cpu_vs_device"].items():
        lines.append(f"cpu vs device, {dtype:<8}  {r['steps']} steps: same selections {r['same_selections']}, "
                     f"max weight diff {r['max_weight_diff']:.2e} (<= {r['tolerance']:g}): {'ok' if r['passed'] else 'FAILED'}")
    r = results["resume"]
    lines.append(f"resume {r['path']:<17} max weight diff {r['max_weight_diff']:.2e} (<= {r['tolerance']:g}): "
                 f"{'ok' if r['passed'] else 'FAILED'}")
    audit = results["sync_audit"]
    if "skipped" in audit:
        lines.append(f"sync audit               skipped: {audit['skipped']}")
    else:
        for name, r in audit.items():
            value = r["syncs"] if "syncs" in r else ("ok" if r["passed"] else f"FAILED: {r['error']}")
            lines.append(f"sync audit, {name:<34} {value}")
    lines.append(f"{'throughput':<10}{'shape':>18}{'data':>10}{'prec':>6}{'step ms':>9}{'floor ms':>9}{'step/floor':>11}"
                 f"{'vectors/s':>12}{'FVU':>8}")
    for r in results["throughput"]:
        if "error" in r:
            lines.append(f"{'':<10}{r['shape']:>18}{r['data']:>10}{r['precision']:>6}  failed: {r['error']}")
            continue
        lines.append(f"{'':<10}{r['shape']:>18}{r['data']:>10}{r['precision']:>6}{1e3 * r['step_s']:>9.3f}"
                     f"{1e3 * r['floor_s']:>9.3f}{r['step_over_floor']:>11.2f}{r['vectors_per_s']:>12,.0f}{r['fvu']:>8.4f}")
    sp = results["sparsify"]
    if isinstance(sp, dict):
        lines.append(f"sparsify                 skipped: {sp['skipped']}")
    else:
        for r in sp:
            ours = next((t for t in results["throughput"] if t["shape"] == r["shape"] and t["data"] == "resident"
                         and t["precision"] == "bf16" and "error" not in t), None)
            if "error" in r:
                lines.append(f"sparsify {r['shape']:<16} failed: {r['error']}")
            else:
                ratio = f", ours (bf16) / sparsify {ours['vectors_per_s'] / r['vectors_per_s']:.2f}x" if ours else ""
                lines.append(f"sparsify {r['shape']:<16} {r['vectors_per_s']:,.0f} vectors/s{ratio}")
    enc = results["encode"]
    for method, r in ((m, enc[m]) for m in ("encoder", "omp")):
        lines.append(f"encode {method:<8} ({enc['words']} words) cpu {r['cpu_s']:.2f} s, device {r['device_s']:.2f} s; rows with "
                     f"the same units {r['rows_with_same_units']:.4f}, max value diff {r['max_value_diff']:.2e}")
    d = results["ddp"]
    lines.append(f"one-rank DDP ({d['backend']})       step {1e3 * d['ddp_step_s']:.2f} ms vs plain {1e3 * d['plain_step_s']:.2f} "
                 f"ms ({d['ddp_over_plain']:.2f}x), max weight diff {d['max_weight_diff']:.2e}: {'ok' if d['passed'] else 'FAILED'}")
    sections = ", ".join(f"{k} {v:.0f}" for k, v in results["section_seconds"].items())
    lines.append(f"total {results['seconds']:.0f} s ({sections}); correctness: {'passed' if results['passed'] else 'FAILED'}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="small shapes and data, few steps: the test suite's smoke test")
    ap.add_argument("--out", default="gpu_check.json", help="the JSON results; the table goes beside it (.txt)")
    ap.add_argument("--precisions", default=None, help="comma-separated of fp32,tf32,bf16 (default: fp32 on a CPU, all on CUDA)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; run with --device cpu (add --small for a quick check)")
        return 2
    t0 = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, device {device} ({name})", flush=True)
    modes = (args.precisions or ("fp32,tf32,bf16" if device.type == "cuda" else "fp32")).split(",")
    if args.small:
        shapes, n_words, n_steps, warmup = [(50, 256, 16, 1024)], 10_240, 8, 2
        CHECK_MODEL.update(hidden=256, k=8, batch_size=256)
        CHECK_DATA.update(n=4096, d=32)
        CHECK_STEPS.update(compare=8, resume=4)
    else:
        shapes, n_words, n_steps, warmup = [(300, 4096, 32, 4096), (300, 16384, 32, 16384)], 1_000_000, 50, 10
    results = {"device": str(device), "device_name": name, "torch": torch.__version__, "small": args.small}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        timings = results["section_seconds"] = {}

        def section(name, fn):
            print(name, flush=True)
            t = time.perf_counter()
            results[name] = fn()
            timings[name] = time.perf_counter() - t

        small_data = open_training_data(synthetic(**CHECK_DATA))
        D = shapes[0][0]
        section("gradcheck", lambda: gradient_checks(device))
        section("cpu_vs_device", lambda: cpu_vs_device(small_data, device))
        section("resume", lambda: resume_across(small_data, device))
        section("sync_audit", lambda: sync_audit(device))
        write_synthetic(tmp / "big.h5", n_words, D)
        datasets = {"resident": open_training_data(synthetic(n_words, D)), "streamed": open_training_data(tmp / "big.h5")}
        section("throughput", lambda: throughput(shapes, device, modes, datasets, n_steps, warmup))
        datasets["streamed"].close()
        datasets = None  # the 1M rows in memory: freed
        section("sparsify", lambda: sparsify_steps(shapes, device, n_steps, warmup) if device.type == "cuda" else {
            "skipped": "on CUDA only (its decoder is a Triton kernel)"})
        section("encode", lambda: encode_check(device, tmp, 1000 if args.small else None))
        section("ddp", lambda: one_rank_ddp(small_data, device, n_steps, warmup))
    audit = results["sync_audit"]
    results["passed"] = (all(results["gradcheck"].values()) and all(r["passed"] for r in results["cpu_vs_device"].values())
                         and results["resume"]["passed"] and results["ddp"]["passed"]
                         and all(r.get("passed", True) for r in audit.values() if isinstance(r, dict)))
    results["seconds"] = time.perf_counter() - t0
    text = table(results)
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".txt").write_text(text + "\n")
    print("\n" + text)
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
