"""The training loop: schedules, dead-unit statistics, metrics, and the run directory.

One step, all on the device and without reading anything back to the host:

1. encode a batch with the current (annealed) k, plus AuxK's picks among dead units;
2. loss = FVU of the reconstruction + ``aux_coef`` x AuxK loss;
3. backward; remove each decoder row's parallel gradient component; Adam step with the
   warm-up/cosine learning rate; rescale decoder rows to unit norm;
4. record which units fired, counted in words seen (so "dead" means the same on any data size).

Progress is reported through a callback (the CLI draws a rich bar with it); the host reads values
only when it reports, a few dozen times per epoch.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .atomic import atomic_directory, check_output
from .config import TrainConfig, resolve_device
from .embeddings import Embeddings
from .errors import SparsecodeError
from .evaluate import code_statistics
from .model import SparseAutoencoder
from .objectives import auxk_loss, reconstruction

#: How many progress reports per epoch the callback receives (besides the end of each epoch).
REPORTS_PER_EPOCH = 20


@dataclass
class Progress:
    """What the progress callback receives."""

    epoch: int
    """1-based epoch."""
    step: int
    """Steps done so far, over all epochs."""
    total_steps: int
    loss: float
    """Mean loss over the epoch so far."""
    fvu: float
    """FVU over the epoch so far (training batches, training k)."""
    dead_fraction: float
    """Fraction of units that are dead for AuxK right now."""
    epoch_end: bool = False
    metrics: dict | None = None
    """The epoch's metrics line, at the end of an epoch."""


@dataclass
class TrainResult:
    model: SparseAutoencoder
    config: TrainConfig
    metrics: list[dict]
    """One dict per epoch, as written to ``metrics.jsonl``."""
    summary: dict
    """Statistics of the final model over the whole vocabulary at the encode k."""
    run_info: dict = field(default_factory=dict)
    """What the run resolved: device, data size, sizes used (also in ``config.json``)."""


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``lr_final_ratio``, at 0-based ``step``."""
    warm = int(cfg.warmup_frac * total)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm - 1)
    return cfg.lr_final_ratio + (1 - cfg.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def k_at(step: int, total: int, cfg: TrainConfig) -> int:
    """The annealed k at 0-based ``step``: linear from ``k_start`` to ``k``."""
    steps = int(cfg.k_anneal_frac * total)
    if step >= steps:
        return cfg.k
    return round(cfg.k_start + (cfg.k - cfg.k_start) * step / steps)


def train(
    embeddings: Embeddings,
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Train a k-sparse autoencoder on ``embeddings``; write ``out_dir`` when given.

    ``out_dir`` receives ``model.pt`` (the weights contract, see :mod:`sparsecode.model`),
    ``config.json``, ``metrics.jsonl`` and ``summary.json``, all at once when training ends
    (nothing appears under that name if it fails or is interrupted).
    """
    cfg = config or TrainConfig()
    cfg.validate()
    if out_dir is not None:
        check_output(out_dir, force)  # fail before training, not after
    device = resolve_device(cfg.device)
    n, d_in = embeddings.vectors.shape
    if n < 2:
        raise SparsecodeError(f"{embeddings.path}: needs at least 2 words to train, found {n}")

    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data = torch.from_numpy(np.ascontiguousarray(embeddings.vectors)).to(device)
    model = SparseAutoencoder(d_in, cfg.hidden, device=device)
    model.initialise(data, generator=gen)
    x_all = model.normalise(data)
    data_mean = x_all.mean(0)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    H = cfg.hidden
    aux_k = cfg.aux_k_for(d_in)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    report_every = max(1, steps_per_epoch // REPORTS_PER_EPOCH)
    dead_after = max(1, int(cfg.dead_window * n))
    # Words seen when each unit last fired; starts at 0 so every unit is alive for dead_after words.
    last_fired = torch.zeros(H, dtype=torch.int64, device=device)

    run_info = {
        "device": str(device),
        "n_words": n,
        "d_in": d_in,
        "k_start": cfg.k_start,
        "k_encode": cfg.k_encode,
        "aux_k": aux_k,
        "steps": total_steps,
        "embeddings": os.path.abspath(embeddings.path),
    }
    metrics: list[dict] = []
    step = 0
    seen = 0
    t_start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t_epoch = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        sse = torch.zeros_like(loss_sum)
        ssd = torch.zeros_like(loss_sum)
        l0 = torch.zeros_like(loss_sum)
        zero_rows = torch.zeros_like(loss_sum)
        fired_epoch = torch.zeros(H, dtype=torch.bool, device=device)
        for b, start in enumerate(range(0, n, cfg.batch_size)):
            x = x_all[perm[start : start + cfg.batch_size]]
            k = k_at(step, total_steps, cfg)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_factor(step, total_steps, cfg)

            dead = (seen - last_fired) >= dead_after
            enc = model.encode_normalised(x, k, aux_k, dead)
            x_hat = model.decode_normalised(enc.acts, enc.indices)
            rec = reconstruction(x, x_hat, data_mean)
            loss = rec.fvu
            if aux_k > 0:
                loss = loss + cfg.aux_coef * auxk_loss(x - x_hat, enc.aux_acts, enc.aux_indices, model.W_dec, dead.any())

            opt.zero_grad(set_to_none=True)
            loss.backward()
            model.remove_parallel_decoder_grad()
            opt.step()
            model.normalise_decoder()

            with torch.no_grad():
                active = enc.acts > 0
                fired = x.new_zeros(H).index_add_(0, enc.indices.reshape(-1), active.reshape(-1).to(x.dtype)) > 0
                seen += x.shape[0]
                last_fired = torch.where(fired, seen, last_fired)
                fired_epoch |= fired
                loss_sum += loss.detach()
                sse += rec.sse.detach()
                ssd += rec.ssd
                row_l0 = active.sum(1)
                l0 += row_l0.sum()
                zero_rows += (row_l0 == 0).sum()
            step += 1
            if progress is not None and (b + 1) % report_every == 0 and b + 1 < steps_per_epoch:
                progress(Progress(epoch, step, total_steps, float(loss_sum) / (b + 1), float(sse / ssd),
                                  float(dead.double().mean())))

        if device.type == "cuda":
            torch.cuda.synchronize()
        line = {
            "epoch": epoch,
            "loss": float(loss_sum) / steps_per_epoch,
            "fvu": float(sse / ssd),
            "mean_l0": float(l0) / n,
            "dead_fraction": float((~fired_epoch).double().mean()),
            "zero_rows_fraction": float(zero_rows) / n,
            "k": k,
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t_epoch,
        }
        metrics.append(line)
        if progress is not None:
            progress(Progress(epoch, step, total_steps, line["loss"], line["fvu"], line["dead_fraction"],
                              epoch_end=True, metrics=line))

    model.eval()
    summary = code_statistics(model, data, cfg.k_encode)
    summary["k"] = cfg.k_encode
    summary["train_seconds"] = time.perf_counter() - t_start
    result = TrainResult(model=model, config=cfg, metrics=metrics, summary=summary, run_info=run_info)
    if out_dir is not None:
        write_run(out_dir, result, force=force)
    return result


def write_run(out_dir: str | os.PathLike, result: TrainResult, force: bool = False) -> Path:
    """Write a run directory atomically: ``model.pt``, ``config.json``, ``metrics.jsonl``, ``summary.json``."""
    with atomic_directory(out_dir, force=force) as tmp:
        result.model.save(tmp / "model.pt")
        config = {**result.config.to_dict(), **result.run_info, "sparsecode_version": _version()}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (tmp / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in result.metrics), encoding="utf-8")
        (tmp / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n", encoding="utf-8")
    return Path(out_dir)


def load_run(run_dir: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[SparseAutoencoder, dict]:
    """Read a run directory: the model (weights only, safely) and its ``config.json``."""
    run_dir = _run_directory(run_dir)
    model = SparseAutoencoder.load(run_dir / "model.pt", device=device)
    config = read_json(run_dir / "config.json")
    model.eval()
    return model, config


@dataclass
class RunLogs:
    """What a run directory records besides the weights."""

    config: dict
    """``config.json``: the settings and what the run resolved."""
    metrics: list[dict]
    """``metrics.jsonl``: one dict per epoch."""
    summary: dict
    """``summary.json``: the final model over the whole vocabulary."""


def read_logs(run_dir: str | os.PathLike) -> RunLogs:
    """Read ``config.json``, ``metrics.jsonl`` and ``summary.json`` of a run directory (not the model)."""
    run_dir = _run_directory(run_dir)
    metrics_path = run_dir / "metrics.jsonl"
    lines = _read_text(metrics_path).splitlines()
    metrics = [_parse_json(line, f"{metrics_path}: line {i}") for i, line in enumerate(lines, 1) if line.strip()]
    if not metrics or not all(isinstance(m, dict) for m in metrics):
        raise SparsecodeError(f"{metrics_path}: expected one JSON object per epoch; the run directory is corrupt")
    return RunLogs(read_json(run_dir / "config.json"), metrics, read_json(run_dir / "summary.json"))


def _run_directory(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SparsecodeError(f"{run_dir}: not a run directory; give the --out folder of 'sparsecode train'")
    return run_dir


def read_json(path: Path) -> dict:
    """A JSON object from a run directory's file, every failure one clear line."""
    data = _parse_json(_read_text(path), str(path))
    if not isinstance(data, dict):
        raise SparsecodeError(f"{path}: expected a JSON object; the run directory is corrupt")
    return data


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SparsecodeError(f"{path}: missing; the run directory is incomplete") from None
    except UnicodeDecodeError as exc:
        raise SparsecodeError(f"{path}: not UTF-8 text ({exc.reason}); the run directory is corrupt") from None


def _parse_json(text: str, where: str):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SparsecodeError(f"{where}: not valid JSON ({exc}); the run directory is corrupt") from None


def _version() -> str:
    from . import __version__

    return __version__
