"""The training loop: schedules, dead-unit statistics, metrics, checkpoints.

One step, all on the device and without reading anything back to the host:

1. encode a batch (with ``noise`` added, if asked) by the sparsity objective (top-k with the
   current, annealed k by default; see :mod:`sparsecode.objectives`), plus AuxK's picks among
   dead units;
2. loss = FVU of the reconstruction of the clean batch + the objective's penalty + ``aux_coef`` x
   AuxK loss;
3. backward; remove each decoder row's parallel gradient component; Adam step with the
   warm-up/cosine learning rate; rescale decoder rows to unit norm;
4. record which units fired, counted in words seen (so "dead" means the same on any data size).

One process is a job of one (see :mod:`sparsecode.distributed`): the step takes the global
batch's figures from :meth:`~sparsecode.distributed.Distributed.reduce_sums`, which are the
batch's own there, and writes each loss term as a process's share of the global one.

The host reads values only at report points (:data:`REPORTS_PER_EPOCH` per epoch) and before a
checkpoint: it then checks that the loss, the weights and Adam's moments are finite (otherwise it
restores the state of the previous report point and halves the learning rate, once) and reports
events (:mod:`sparsecode.events`; see :class:`TrainingLoop`).

With a run directory (:mod:`sparsecode.rundir`), the complete training state is checkpointed
(``checkpoint.pt``) every ``checkpoint_every`` steps, at the end of every epoch and when
SIGINT/SIGTERM arrives; ``resume`` continues from it and, on the CPU, ends with weights identical
to an uninterrupted run. The final files appear only when training has finished: ``model.pt``,
``config.json``, ``metrics.jsonl``, ``summary.json`` (each written atomically), and the checkpoint
is then removed.

Every random draw comes from a generator of the run's own, seeded by ``seed``: training neither
reads nor changes torch's global random state.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .config import TrainConfig
from .convert import readable_embeddings
from .data import (CHUNK_ROWS, BatchSource, Rows, SubsetRows, TrainingData,
                   holdout_split, open_training_data)
from .devices import Device, for_torch, resolve
from .distributed import Distributed, ProcessLost, session
from .embeddings import Embeddings
from .errors import SettingError, SparsecodeError, TrainingInterrupted
from .events import Checkpoint, Collapse, Converting, Event, Finished, Progress, Started, progress_only
from .evaluate import CodeStatistics
from .interpret import collapse_during_training, unit_balance
from .model import Normalisation, SparseAutoencoder
from .objectives import Objective, Reconstruction, StepCodes, auxk_loss, make_objective, reconstruction
from .rundir import (CHECKPOINT, CHECKPOINT_FORMAT, TrainResult, check_resumable, check_run_dir, open_run_dir,
                     prepare_training_file, save_checkpoint, write_run)
from .runtime import free_memory

#: How many report points (progress, finiteness check) each epoch has, besides its end.
REPORTS_PER_EPOCH = 20
#: Weight of the newest batch in the running unit frequencies that balancing steers by (about the last 50
#: steps). On GloVe 50d (50k words, H=1000, k=32) 0.01 let the code collapse for whole epochs before the
#: selection bias caught up (effective units 624, busiest unit 14%); 0.02 kept it spread (974, 6.8%).
FREQ_EMA = 0.02
#: Rows (the first of the file: the most frequent words) whose k-means centroids start the decoder.
KMEANS_SAMPLE = 65_536
#: Words encoded at a time for the final statistics.
FINAL_BATCH = 2048


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``lr_final_ratio``, at 0-based ``step``."""
    warm = int(cfg.warmup_frac * total)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm - 1)
    return cfg.lr_final_ratio + (1 - cfg.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def k_at(step: int, total: int, cfg: TrainConfig) -> int:
    """The annealed k at 0-based ``step``: linear from ``resolved("k_anneal_from")`` to ``k`` (None without a k)."""
    steps = int(cfg.k_anneal_frac * total)
    if step >= steps or cfg.k_anneal_from is None:
        return cfg.resolved("k")
    return round(cfg.resolved("k_anneal_from") + (cfg.resolved("k") - cfg.resolved("k_anneal_from")) * step / steps)


class _Step(nn.Module):
    """A training step's forward pass (the objective's ``step``) as a module, so that
    DistributedDataParallel can wrap it."""

    def __init__(self, model: SparseAutoencoder, objective: Objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: torch.Tensor, k: int, aux_k: int, dead: torch.Tensor, t: int, rows: int):
        return self.objective.step(self.model, x, k, aux_k, dead, t, rows)


def _to_cpu(obj):
    """Tensors, also inside dicts and lists, as detached CPU copies (what a checkpoint holds)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


#: What an epoch adds up, by name, of every step's loss and :func:`step_sums` (see :class:`EpochStats`;
#: the checkpoint holds them under these names).
EPOCH_SUMS = ("loss", "sse", "ssd", "l0", "zero_rows")


def step_sums(rec: Reconstruction, codes: StepCodes) -> dict[str, Tensor]:
    """What a step adds up over the global batch, by name, of this process's rows: all of it summed
    over the processes in the step's one all-reduce (:meth:`~sparsecode.distributed.Distributed.reduce_sums`).
    A new figure is one line here (and its name in :data:`EPOCH_SUMS` for the epoch to add it up)."""
    return {
        "ssd": rec.ssd,  # squared deviation of the inputs about the data mean: the FVU's denominator
        "sse": rec.sse.detach(),  # squared reconstruction error
        "l0": codes.row_l0.sum(),  # active units, summed over rows
        "zero_rows": (codes.row_l0 == 0).sum(),  # rows with no active unit
        "counts": codes.counts,  # (H,) rows in which each unit fired
    }


class EpochStats:
    """What an epoch adds up on the device, read back at report points and at its end: the loss,
    squared error and deviation, active units and empty rows summed over its steps, which units fired
    and in how many rows; and its training seconds."""

    def __init__(self, hidden: int, device: torch.device):
        z = torch.zeros((), dtype=torch.float64, device=device)
        self.acc = {name: z.clone() for name in EPOCH_SUMS}
        self.fired = torch.zeros(hidden, dtype=torch.bool, device=device)
        self.unit_counts = torch.zeros(hidden, dtype=torch.float64, device=device)  # rows per unit
        self.seconds = 0.0

    def add(self, loss: Tensor, batch: dict[str, Tensor], fired: Tensor) -> None:
        """A step's figures: its (mean over the processes) ``loss`` and its global ``batch`` sums."""
        self.acc["loss"] += loss
        for name in EPOCH_SUMS[1:]:
            self.acc[name] += batch[name]
        self.fired |= fired
        self.unit_counts += batch["counts"]

    def mean_loss(self, steps: int) -> float:
        return float(self.acc["loss"]) / steps

    def fvu(self) -> float:
        return float(self.acc["sse"] / self.acc["ssd"])

    def figures(self, steps: int, n: int) -> dict:
        """The epoch's figures for its metrics line, over its ``steps`` steps and ``n`` words."""
        acc = self.acc
        balance = unit_balance(self.unit_counts.cpu().numpy(), n)
        return {"loss": self.mean_loss(steps), "fvu": self.fvu(), "mean_l0": float(acc["l0"]) / n,
                "dead_fraction": float((~self.fired).double().mean()), "zero_rows_fraction": float(acc["zero_rows"]) / n,
                "effective_units": balance["effective_units"], "starved_fraction": balance["starved_fraction"]}

    def state_dict(self) -> dict:
        """The checkpoint's entries (``position["epoch_seconds"]`` holds :attr:`seconds`)."""
        return {"acc": _to_cpu(self.acc), "fired_epoch": _to_cpu(self.fired), "unit_counts": _to_cpu(self.unit_counts)}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.acc = {k: v.to(device) for k, v in state["acc"].items()}
        self.fired = state["fired_epoch"].to(device)
        self.unit_counts = state["unit_counts"].to(device)
        self.seconds = state["position"]["epoch_seconds"]


class UnitUse:
    """How often the units fire, followed over training on the device: the words seen when each last
    fired (a unit is dead for AuxK once ``dead_after`` words have passed without it), and the running
    frequencies that load balancing steers by.

    Load balancing works without a loss (as DeepSeek-V3 routes experts): each unit's bias moves toward
    the frequency k/H, up when it fires too rarely, down when too often. The model's selection bias
    (``balance``) only chooses units; homeostasis moves the (trained) encoder bias.
    """

    def __init__(self, cfg: TrainConfig, dead_after: int, device: torch.device):
        self.hidden, self.dead_after = cfg.hidden, dead_after
        self.homeostasis = cfg.resolved("homeostasis") or 0.0
        self.balance = cfg.resolved("balance")
        self.seen = 0
        """Words seen so far."""
        # 0 at first, so every unit lives for dead_after words.
        self.last_fired = torch.zeros(cfg.hidden, dtype=torch.int64, device=device)
        self.freq_ema = torch.full((cfg.hidden,), (cfg.resolved("k") or 0) / cfg.hidden, device=device)

    def dead(self) -> Tensor:
        """(H,) bool: the units that have not fired for ``dead_after`` words."""
        return (self.seen - self.last_fired) >= self.dead_after

    def record(self, model: SparseAutoencoder, counts: Tensor, rows: int, k: int | None) -> Tensor:
        """A step of ``rows`` words whose units fired ``counts`` times (H,) at the training ``k``:
        balance ``model``'s biases, count the words; returns which units fired (H,)."""
        fired = counts > 0
        if self.homeostasis > 0 or model.select_bias is not None:
            self.freq_ema.mul_(1 - FREQ_EMA).add_(counts / rows, alpha=FREQ_EMA)
            toward = torch.sign(k / self.hidden - self.freq_ema)
            if self.homeostasis > 0:
                model.b_enc.add_(toward, alpha=self.homeostasis)
            if model.select_bias is not None:
                model.select_bias.add_(toward, alpha=self.balance)
        self.seen += rows
        self.last_fired = torch.where(fired, self.seen, self.last_fired)
        return fired

    def state_dict(self) -> dict:
        """The checkpoint's entries (``position["seen"]`` holds :attr:`seen`)."""
        return {"last_fired": _to_cpu(self.last_fired), "freq_ema": _to_cpu(self.freq_ema)}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.seen = state["position"]["seen"]
        self.last_fired = state["last_fired"].to(device)
        self.freq_ema = state["freq_ema"].to(device)


def run_device(cfg: TrainConfig, dist: Distributed) -> Device:
    """The device a run of ``cfg`` trains on: the process's own in a job of several, else ``cfg.device``'s."""
    return for_torch(dist.device) if dist.device is not None else resolve(cfg.device)


def split_holdout(data: TrainingData, cfg: TrainConfig) -> tuple[TrainingData, SubsetRows | None]:
    """The rows to train on (with their own statistics) and the held-out rows (``holdout``), or
    ``data`` itself and None when nothing is held out."""
    if cfg.holdout <= 0:
        return data, None
    train_rows, held_rows = holdout_split(data.n, cfg.holdout, cfg.seed)
    return TrainingData(SubsetRows(data.rows, train_rows), data.path), SubsetRows(data.rows, held_rows)


def training_bytes(n: int, d_in: int, cfg: TrainConfig) -> int:
    """About the bytes a run of ``cfg`` on ``n`` rows of ``d_in`` allocates as it starts, besides the
    data: the weights with their gradients and Adam's two moments, a batch's (B, H) pre-activations
    and their gradients, and for the k-means start the (rows, H) cosines of its sample, twice."""
    shape = SparseAutoencoder(d_in, cfg.hidden, device="meta", sparsity=cfg.sparsity, encoder_layers=cfg.encoder_layers)
    weights = sum(t.numel() for t in shape.parameters())
    kmeans = 2 * min(n, KMEANS_SAMPLE) * cfg.hidden if cfg.resolved("init") == "kmeans" else 0
    return 4 * (4 * weights + 3 * cfg.batch_size * cfg.hidden + kmeans)


def check_memory(n: int, d_in: int, cfg: TrainConfig, device: torch.device, processes: int = 1) -> None:
    """Refuse, before any work, a run that cannot fit in the device's free memory (as the disk space
    of its outputs is checked), rather than fail in an allocation. On the CPU the ``processes`` of a
    job share the machine's memory; on GPUs each has its own."""
    needed, free = training_bytes(n, d_in, cfg) * (processes if device.type == "cpu" else 1), free_memory(device)
    if free is not None and needed > free:
        where = "this GPU has" if device.type == "cuda" else "this machine has"
        size = lambda b: f"{b / 1e9:,.1f} GB" if b >= 1e9 else f"{b / 1e6:,.0f} MB"  # noqa: E731
        raise SettingError("hidden", "{hidden} {got}: training needs about {need} of memory but {where} {free} free; "
                           "lower {hidden} or {batch_size}", got=cfg.hidden, need=size(needed), where=where,
                           free=size(free))


def new_model(data: TrainingData, cfg: TrainConfig, device: torch.device,
              generator: torch.Generator) -> tuple[SparseAutoencoder, Tensor]:
    """The model of a new run of ``cfg`` on ``data`` and the mean of the normalised data (D,).

    The normalisation is what :func:`~sparsecode.model.estimate_normalisation` gives, from the
    streamed statistics; the decoder starts as random unit rows or (``init`` kmeans) centroids of
    the first rows, both drawn from ``generator``; balancing gives it a selection bias."""
    stats = data.stats
    model = SparseAutoencoder(stats.dim, cfg.hidden, device=device, sparsity=cfg.sparsity,
                              encoder_layers=cfg.encoder_layers, encode_k=cfg.resolved("encode_k"),
                              geometry=cfg.resolved("geometry"))
    norm = Normalisation(torch.from_numpy(stats.mean).float(), torch.tensor(stats.scale, dtype=torch.float32))
    # The mean of the normalised data is (mean - input_mean) / input_scale.
    normalised_mean = ((torch.from_numpy(stats.mean) - norm.mean.double()) / norm.scale.double()).float().to(device)
    model.initialise_with(Normalisation(norm.mean.to(device), norm.scale.to(device)), normalised_mean, generator=generator)
    if cfg.resolved("geometry") == "cosine":  # rows scaled to one length: their mean is no longer the scaled data mean
        normalised_mean = normalised_mean_of(model, data.rows)
        with torch.no_grad():
            model.b_dec.copy_(normalised_mean)
    if cfg.resolved("init") == "kmeans":
        sample = model.normalise(torch.from_numpy(data.rows.read(0, min(stats.n, KMEANS_SAMPLE))).to(device))
        model.initialise_from_centroids(sample, cfg.resolved("k_anneal_from"), generator=generator)
    if (cfg.resolved("balance") or 0) > 0:
        model.use_select_bias()
    return model, normalised_mean


@torch.no_grad()
def normalised_mean_of(model: SparseAutoencoder, rows: Rows) -> Tensor:
    """(D,) the mean of ``model.normalise`` over every row of ``rows``, read a chunk at a time."""
    device = model.b_dec.device
    total = torch.zeros(rows.dim, dtype=torch.float64, device=device)
    for start in range(0, rows.n, CHUNK_ROWS):
        block = torch.from_numpy(rows.read(start, min(start + CHUNK_ROWS, rows.n))).to(device)
        total += model.normalise(block).double().sum(0)
    return (total / rows.n).float()


class Trainer:
    """The state of one training run and its step (:class:`TrainingLoop` runs it).

    With ``dist`` (a job of several processes, see :mod:`sparsecode.distributed`) each process
    trains on its slice of every global batch and all of them keep the same state.
    """

    def __init__(self, data: TrainingData | Embeddings, cfg: TrainConfig, dist: Distributed | None = None,
                 device: Device | None = None):
        self.cfg = cfg
        self.dist = dist or Distributed(None)
        #: What differs between devices (see sparsecode.devices), resolved once.
        self.dev = device or run_device(cfg, self.dist)
        self.device = self.dev.device
        data = open_training_data(data)
        self.fingerprint = data.stats.fingerprint  # of every row: resuming needs the same file
        #: The held-out rows (``holdout``), evaluated at the end of every epoch; None when off.
        self.data, self.held = split_holdout(data, cfg)
        self.n, self.d_in = self.data.stats.n, self.data.stats.dim
        self.gen = torch.Generator().manual_seed(cfg.seed)
        # Training noise draws from its own generator on the device, seeded anew for every step from
        # (seed, step) alone (see noise_seed): a checkpoint holds no generator state of a device.
        self.noise_gen = torch.Generator(device=self.device)
        self.model, self.data_mean = new_model(self.data, cfg, self.device, self.gen)
        self.objective = make_objective(cfg, self.dist)
        self.opt = self.dev.optimizer(list(self.model.parameters()), cfg.lr)
        # The device feeds the batches (on a GPU: the data kept there if it fits, else prefetched buffers).
        self.source = BatchSource(self.data.rows, cfg.batch_size, self._prepare, self.dist.rank, self.dist.world,
                                  feed=self.dev, prefetch=self.dev.prefetch, rank_power=cfg.resolved("rank_power"))
        if self.dev.keeps_data(self.n, self.d_in):
            self.source.keep_resident()
        self.forward = self.dist.wrap(_Step(self.model, self.objective))
        # Whether SIGINT/SIGTERM was asked of this process before the step; and whether of any
        # process, as of the last step (a 0-d tensor with several processes, read at check points only).
        self.stop_asked, self.stop_flag = False, False
        self.aux_k = cfg.aux_k_for(self.d_in) if cfg.aux_coef > 0 and cfg.uses_k else 0  # no AuxK work when it is off
        self.steps_per_epoch = self.source.steps_per_epoch
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.report_every = max(1, self.steps_per_epoch // REPORTS_PER_EPOCH)
        self.units = UnitUse(cfg, max(1, int(cfg.dead_window * self.n)), self.device)
        # Position: the next step is batch `batch` of epoch `epoch` (1-based), whose order was drawn
        # from the generator in state `epoch_rng` (see sparsecode.data).
        self.step, self.epoch, self.batch = 0, 1, 0
        self._start_epoch()
        self.lr_scale, self.diverged, self.elapsed = 1.0, 0, 0.0
        self.metrics: list[dict] = []
        self.stats = EpochStats(cfg.hidden, self.device)

    @torch.no_grad()
    def _prepare(self, rows: np.ndarray) -> Tensor:
        """(K, D) rows read from the data -> normalised, on the device."""
        return self.model.normalise(self.dev.tensor(rows))

    def _start_epoch(self) -> None:
        self.epoch_rng = self.gen.get_state()
        self.source.start_epoch(self.gen)

    @property
    def finished(self) -> bool:
        return self.epoch > self.cfg.epochs

    # -- the step ---------------------------------------------------------------------------------
    def train_step(self) -> None:
        """One step on batch :attr:`batch` of the current epoch (see the module docstring)."""
        cfg, model = self.cfg, self.model
        x = self.source.batch(self.batch)
        k = k_at(self.step, self.total_steps, cfg)
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * self.lr_scale * lr_factor(self.step, self.total_steps, cfg)
        dead = self.units.dead()
        noise = cfg.resolved("noise")
        x_in = x + noise * self._noise(x) if noise > 0 else x
        rows = self.source.global_size(self.batch)
        codes = self.forward(x_in, k, self.aux_k, dead, self.step, rows)
        loss, batch = self._loss(x, codes, dead, rows)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        model.remove_parallel_decoder_grad()
        self.opt.step()
        model.normalise_decoder()
        with torch.no_grad():
            self.stop_flag = batch.get("stop", False)
            fired = self.units.record(model, batch["counts"], rows, k)
            self.stats.add(self.dist.mean(loss.detach()), batch, fired)
        self.step += 1
        self.batch += 1
        self.dead = dead

    def _loss(self, x: Tensor, codes: StepCodes, dead: Tensor, rows: int) -> tuple[Tensor, dict[str, Tensor]]:
        """The step's loss, as this process's share of the global batch's of ``rows`` rows (see
        :meth:`~sparsecode.distributed.Distributed.ddp_share`; the penalty is in this convention
        already), and the global batch's sums (:func:`step_sums`, with several processes ``stop``:
        whether a stop was asked of any)."""
        dist = self.dist
        rec = reconstruction(x, codes.x_hat, self.data_mean)
        sums = step_sums(rec, codes)
        residual = (x - codes.x_hat).detach() if self.aux_k > 0 else None
        if residual is not None:
            sums.update(dist.spread_sums(residual))
        if dist.active:  # a fill on the device, not a copy of a host value
            sums["stop"] = torch.full((), self.stop_asked, dtype=torch.bool, device=x.device)
        batch = dist.reduce_sums(sums)
        loss = Reconstruction(dist.ddp_share(rec.sse), batch["ssd"]).fvu + codes.penalty  # the global batch's FVU
        if self.aux_k > 0:
            aux = auxk_loss(residual, codes.aux_acts, codes.aux_indices, self.model.W_dec, dead.any(),
                            dist.spread_of(batch, rows).clamp_min(1e-12))
            loss = loss + self.cfg.aux_coef * dist.ddp_share(aux)
        return loss, batch

    def _noise(self, x: Tensor) -> Tensor:
        """(B_local, D) standard normal noise for this process's rows of the current step.

        The noise of the whole global batch is drawn from the generator seeded by (seed, step), and
        each process takes its slice's rows: every row of a step gets its own noise, the same as it
        gets in one process, and a resumed run (on any device of the same type) draws the same.
        """
        self.noise_gen.manual_seed(noise_seed(self.cfg.seed, self.step))
        lo, hi = self.source.local_span(self.batch)
        start = self.batch * self.cfg.batch_size
        full = torch.randn((self.source.global_size(self.batch), x.shape[1]), device=x.device, dtype=x.dtype,
                           generator=self.noise_gen)
        return full[lo - start : hi - start]

    def _end_epoch(self) -> dict:
        """Close the epoch: its metrics line (appended to :attr:`metrics`, with the held-out words'
        figures at the training k, without noise), and the next epoch's order drawn."""
        self.dev.synchronize()
        k = k_at(self.step - 1, self.total_steps, self.cfg)
        line = {"epoch": self.epoch, **self.stats.figures(self.steps_per_epoch, self.n), "k": k,
                "lr": self.opt.param_groups[0]["lr"], "seconds": self.stats.seconds}
        if self.held is not None:
            held = code_statistics_over(self, self.held, k if self.cfg.sparsity == "topk" else None)
            line.update(holdout_fvu=held["fvu"], holdout_dead_fraction=held["dead_fraction"],
                        holdout_mean_l0=held["mean_l0"])
        self.metrics.append(line)
        self.epoch += 1
        self.batch = 0
        self.source.finish_epoch()
        if not self.finished:
            self._start_epoch()
        self.stats = EpochStats(self.cfg.hidden, self.device)
        return line

    def state_is_finite(self) -> bool:
        """Whether what a checkpoint would save is finite: the epoch's loss so far, and every weight
        and Adam moment (an infinite gradient can leave a finite loss and non-finite weights). One
        read back to the host, at report and save points only; each tensor is read once on the device."""
        tensors = [self.stats.acc["loss"], *self.model.parameters(), *self.model.buffers(),
                   *(v for state in self.opt.state.values() for v in state.values()
                     if isinstance(v, Tensor) and v.is_floating_point())]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())

    # -- the whole state --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue exactly (tensors and plain values: ``weights_only`` loads it)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.to_dict(),
            "fingerprint": self.fingerprint,
            "model": _to_cpu(self.model.state_dict()),
            "optimizer": _to_cpu(self.opt.state_dict()),
            "epoch_rng": self.epoch_rng.clone(),  # a CPU generator's state, whatever the device
            "position": {"step": self.step, "seen": self.units.seen, "epoch": self.epoch, "batch": self.batch,
                         "lr_scale": self.lr_scale, "diverged": self.diverged, "elapsed": self.elapsed,
                         "epoch_seconds": self.stats.seconds},
            **self.units.state_dict(),
            **self.stats.state_dict(),
            "metrics": [dict(m) for m in self.metrics],
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``. Checkpoints of earlier versions hold "noise_generator" (the noise
        of a step depends on (seed, step) alone) and "torch_rng" (nothing draws from the global
        generator): both unused."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        pos = state["position"]
        self.step, self.epoch, self.batch = pos["step"], pos["epoch"], pos["batch"]
        self.lr_scale, self.diverged, self.elapsed = pos["lr_scale"], pos["diverged"], pos["elapsed"]
        if not self.finished:  # redraw the epoch's order; batch `self.batch` comes next
            self.gen.set_state(state["epoch_rng"])
            self._start_epoch()
        self.units.load_state_dict(state, self.device)
        self.stats.load_state_dict(state, self.device)
        self.metrics = [dict(m) for m in state["metrics"]]

    def check_resumable(self, state: dict, source: str) -> None:
        """Whether the checkpoint ``state`` (from ``source``) continues this run (see :func:`~sparsecode.rundir.check_resumable`)."""
        check_resumable(state, self.cfg, self.fingerprint, source)


def noise_seed(seed: int, step: int) -> int:
    """The seed of the training noise at 0-based ``step`` of a run seeded ``seed`` (63 bits, well mixed)."""
    return int(np.random.SeedSequence([seed, 1, step]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class TrainingLoop:
    """Runs a :class:`Trainer` to the end of its last epoch, or to a stop.

    The host reads back only at report points and before a checkpoint: there it checks that what a
    checkpoint would save is finite (otherwise it goes back to the state of the last good point and
    halves the learning rate, once; twice is an error), reports :class:`~sparsecode.events.Progress`
    (and a :class:`~sparsecode.events.Collapse`) to ``events`` and writes the ``checkpoint`` (every
    ``checkpoint_every`` steps and at the end of every epoch). ``stop_requested()`` (a signal number,
    0 for none) asks for a stop.
    """

    def __init__(self, trainer: Trainer, events: Callable[[Event], None] | None = None,
                 checkpoint: Callable[[], None] | None = None, stop_requested: Callable[[], int] | None = None):
        self.trainer, self.events, self.checkpoint = trainer, events or _ignore, checkpoint
        self.stop_requested = stop_requested or (lambda: 0)
        self.good = trainer.state_dict()
        """The state of the last point checked finite."""

    def run(self) -> bool:
        """Train; returns whether a stop ended training early (after a step), False when it finished."""
        t = self.trainer
        t_last = time.perf_counter()
        while not t.finished:
            if t.dist.active:  # asked before the step, agreed on by every process within it
                t.stop_asked = bool(self.stop_requested())
            with t.dist.collective("a training step"):  # a lost peer: ProcessLost
                t.train_step()
            now = time.perf_counter()
            t.elapsed += now - t_last
            t.stats.seconds += now - t_last
            t_last = now
            at_epoch_end = t.batch == t.steps_per_epoch
            report = t.batch % t.report_every == 0 or at_epoch_end
            save = self.checkpoint is not None and (at_epoch_end or t.step % t.cfg.checkpoint_every == 0)
            stop = self._stop_agreed(report or save)
            # The host reads back only here; nothing unverified is reported, kept or checkpointed.
            if (report or save or stop) and not t.state_is_finite():
                self._recover()
                t_last = time.perf_counter()
            else:
                if report:
                    self._report(at_epoch_end)
                    self.good = t.state_dict()
                if save:
                    self.checkpoint()
            if stop:
                return True
        return False

    def _stop_agreed(self, checking: bool) -> bool:
        """Whether training stops after this step. One process stops as soon as a stop is asked.
        Several stop together at a check point (``checking``: a report or a checkpoint), each reading
        the flag the step's all-reduce brought (a stop asked of any process before the step)."""
        if self.trainer.dist.active:
            return checking and bool(self.trainer.stop_flag)
        return bool(self.stop_requested())

    def _report(self, at_epoch_end: bool) -> None:
        """Close the epoch at its end; report the figures so far (and a collapse the epoch shows)."""
        t = self.trainer
        if at_epoch_end:
            line = t._end_epoch()
            self.events(Progress(line["epoch"], t.step, t.total_steps, line["loss"], line["fvu"], line["dead_fraction"],
                                 epoch_end=True, metrics=line, epoch_step=t.steps_per_epoch,
                                 epoch_steps=t.steps_per_epoch, seconds=t.elapsed))
            collapse = collapse_news(t.metrics, t.cfg.hidden)
            if collapse is not None:
                self.events(collapse)
        else:
            self.events(Progress(t.epoch, t.step, t.total_steps, t.stats.mean_loss(t.batch), t.stats.fvu(),
                                 float(t.dead.double().mean()), epoch_step=t.batch, epoch_steps=t.steps_per_epoch,
                                 seconds=t.elapsed))

    def _recover(self) -> None:
        """Non-finite values: go back to the last good state; halve the learning rate once."""
        t = self.trainer
        bad_step = t.step
        t.load_state_dict(self.good)
        t.diverged += 1
        if t.diverged > 1:
            if self.checkpoint is not None:
                self.checkpoint()
            raise SparsecodeError(
                f"training diverged twice (non-finite loss or weights by step {bad_step}); the state of step {t.step} "
                "was kept: lower --lr and start again"
            )
        t.lr_scale *= 0.5
        warnings.warn(
            f"non-finite loss or weights by step {bad_step}: went back to step {t.step} and halved the learning rate",
            stacklevel=2,
        )
        self.good = t.state_dict()


def _ignore(_event: Event) -> None:
    """The events callback of a run nobody watches (and of every process but the first)."""


def collapse_news(metrics: list[dict], units: int) -> Collapse | None:
    """A :class:`Collapse` when the last epoch's metrics line of a code of ``units`` units shows one
    (see :func:`~sparsecode.interpret.collapse_during_training`) and the epoch before did not: one
    line per episode, not one per epoch."""

    def collapsing(upto: int) -> str | None:
        return collapse_during_training(metrics[upto - 1], max(m["effective_units"] for m in metrics[:upto]), units)

    message = collapsing(len(metrics))
    if message is None or (len(metrics) > 1 and collapsing(len(metrics) - 1) is not None):
        return None
    return Collapse(metrics[-1]["epoch"], message)


@torch.no_grad()
def code_statistics_over(trainer: Trainer, rows: Rows, k: int | None) -> dict:
    """:func:`~sparsecode.evaluate.code_statistics` of the trainer's model over ``rows`` with ``k``
    (FVU relative to the training rows' mean), read a chunk at a time, the chunks shared among the
    processes."""
    if trainer.model.geometry == "cosine":  # the mean of the rows the model reconstructs
        mean = trainer.model.denormalise(trainer.data_mean)
    else:
        mean = torch.from_numpy(trainer.data.stats.mean).float().to(trainer.device)
    stats = CodeStatistics(trainer.model, k, mean)
    dist = trainer.dist
    for start in range(dist.rank * CHUNK_ROWS, rows.n, dist.world * CHUNK_ROWS):
        block = torch.from_numpy(rows.read(start, min(start + CHUNK_ROWS, rows.n))).to(trainer.device)
        for part in block.split(FINAL_BATCH):  # bounds the (batch, H) pre-activations
            stats.update(part)
    dist.all_reduce(stats.sums, "the final statistics")
    return stats.result()


def summarise(trainer: Trainer) -> dict:
    """``summary.json`` of a finished run: the code statistics of the final model (put in eval mode,
    as it is returned) over every training row at the encode k, with held-out rows theirs too
    (``holdout_...``); the encode k and the training seconds."""
    trainer.model.eval()
    k = trainer.cfg.resolved("encode_k")
    summary = code_statistics_over(trainer, trainer.data.rows, k)
    if trainer.held is not None:
        held = code_statistics_over(trainer, trainer.held, k)
        summary.update({"holdout_words": trainer.held.n, **{f"holdout_{name}": v for name, v in held.items()}})
    summary["k"] = k
    summary["train_seconds"] = trainer.elapsed
    return summary


def run_info(trainer: Trainer) -> dict:
    """What the run resolved: device, data size, sizes used (also in ``config.json``)."""
    cfg = trainer.cfg
    info = {
        "device": str(trainer.device),
        "n_words": trainer.n,
        "d_in": trainer.d_in,
        "k_start": cfg.resolved("k_anneal_from"),
        "k_encode": cfg.resolved("encode_k"),
        "init": cfg.resolved("init"),
        # The values in use of the settings that default by objective (config.json: the run's settings).
        **cfg.resolved_settings(),
        "aux_k": trainer.aux_k,
        "steps": trainer.total_steps,
    }
    if trainer.held is not None:
        info["holdout_words"] = trainer.held.n
    if trainer.dist.active:
        info["processes"] = trainer.dist.world
    return info


def _result(trainer: Trainer, data: TrainingData, summary: dict) -> TrainResult:
    path = os.path.abspath(data.path) if os.path.exists(data.path) else data.path  # "(in memory)" stays so
    return TrainResult(model=trainer.model, config=trainer.cfg, metrics=trainer.metrics, summary=summary,
                       run_info={**run_info(trainer), "embeddings": path})


class _StopSignals:
    """While active, SIGINT/SIGTERM only record that a stop was asked for (main thread only).

    A job that lost a process (:class:`ProcessLost`) keeps them so to the end: torchrun's launcher,
    seeing one process gone, sends SIGTERM to the others, and one arriving between here and the
    error line would end a survivor in silence (the job's exit 1 with an empty stderr).
    """

    def __init__(self):
        self.signum = 0
        self._previous: dict = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.signum = signum

    def asked(self) -> int:
        """The signal that asked for a stop, 0 for none."""
        return self.signum

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None and issubclass(exc_type, ProcessLost):
            return  # the process is ending with its error line; the launcher's SIGTERM must not cut it
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _CheckpointedRun:
    """Training with a run directory, in every process of the job; process 0 alone writes there.

    A checkpoint is written every ``checkpoint_every`` steps, at the end of every epoch and when a
    stop is asked: SIGINT/SIGTERM, or a ``KeyboardInterrupt`` out of the events callback, which
    end in :class:`TrainingInterrupted` once the checkpoint is saved (each checkpoint is reported
    to ``events``).
    """

    def __init__(self, run_dir: Path, trainer: Trainer, saved_step: int | None, events: Callable[[Event], None]):
        self.run_dir, self.trainer, self.events = run_dir, trainer, events
        self.saved_step = saved_step
        """The step of the last checkpoint (None: none yet), known to every process."""

    def save(self) -> None:
        self.saved_step = self.trainer.step
        if self.trainer.dist.is_main:
            save_checkpoint(self.run_dir / CHECKPOINT, self.trainer.state_dict())
            self.events(Checkpoint(self.trainer.step))

    def train(self) -> None:
        """Run the training loop to its end, or checkpoint and raise :class:`TrainingInterrupted`."""
        trainer = self.trainer
        if trainer.dist.is_main:
            self.run_dir.mkdir(exist_ok=True)
        with _StopSignals() as signals:
            try:
                stopped = TrainingLoop(trainer, self.events, self.save, signals.asked).run()
            except KeyboardInterrupt:  # out of the events callback (a Ctrl-C no handler took)
                stopped = True
            if stopped:
                self.save()
                raise TrainingInterrupted(
                    f"{self.run_dir}: interrupted at step {trainer.step} of {trainer.total_steps}; a checkpoint "
                    "was saved: run the same command with --resume to continue", int(signals.signum or signal.SIGINT)
                )

    def finish(self, result: TrainResult) -> None:
        """Write the finished run's files in place of the checkpoint."""
        if self.trainer.dist.is_main:
            write_run(self.run_dir, result)
            (self.run_dir / CHECKPOINT).unlink(missing_ok=True)


def _lost(exc: ProcessLost, trainer: Trainer, run: _CheckpointedRun | None) -> ProcessLost:
    """The one-line error of a job that lost a process: where training stopped and, with a run
    directory, the checkpoint to resume from."""
    if run is None:
        return ProcessLost(f"training stopped at step {trainer.step}: {exc}")
    last = ("there is no checkpoint yet" if run.saved_step is None else f"the last checkpoint is from step {run.saved_step}")
    return ProcessLost(f"{run.run_dir}: training stopped at step {trainer.step}: {exc}; {last}: rerun the same command "
                       "with --resume to continue (with any number of processes)")


def _train(data: TrainingData, cfg: TrainConfig, run_dir: Path | None, force: bool, resume: bool,
           events: Callable[[Event], None], dist: Distributed, converted_from: str | None) -> TrainResult:
    """Process 0 alone touches the run directory; every process trains (see sparsecode.distributed)."""
    if data.n < 2:
        raise SparsecodeError(f"{converted_from or data.path}: needs at least 2 words to train, found {data.n}")
    check_memory(data.n, data.dim, cfg, run_device(cfg, dist).device, dist.world)
    state = None if run_dir is None else dist.from_main(lambda: open_run_dir(run_dir, force, resume, data.dim, cfg),
                                                        "preparing the run directory")
    resumed = state is not None
    started = lambda step: events(Started(data.n, data.dim, str(data.path), converted_from, dist.world, step))  # noqa: E731
    if not resumed:
        started(None)  # before the start (k-means) that Trainer makes, so that its wait is not silent
    trainer = Trainer(data, cfg, dist)
    if resumed:
        trainer.check_resumable(state, str(run_dir / CHECKPOINT))
        trainer.load_state_dict(state)
        del state
        started(trainer.step)  # once the checkpoint is known to fit and is loaded
    run = _CheckpointedRun(run_dir, trainer, trainer.step if resumed else None, events) if run_dir is not None else None
    try:
        if run is None:
            TrainingLoop(trainer, events).run()
        else:
            run.train()
        summary = summarise(trainer)
    except ProcessLost as exc:
        raise _lost(exc, trainer, run) from None
    result = _result(trainer, data, summary)
    if run is not None:
        run.finish(result)
    events(Finished(result))
    return result


def _training_data(embeddings, run_dir: Path | None, force: bool, resume: bool, vocab, dist: Distributed,
                   stack: contextlib.ExitStack, events: Callable[[Event], None]) -> tuple[TrainingData, str | None]:
    """The data to train on, and the file it was converted from (None when read as it is): a file
    in another format is converted first (into the run directory, checked first, or a temporary
    file that ``stack`` removes), reporting :class:`~sparsecode.events.Converting`."""
    converted_from = None
    if isinstance(embeddings, (str, os.PathLike)):
        def converting(done: int, size: int, words: int) -> None:
            events(Converting(done, size, words))

        if run_dir is not None:
            dist.from_main(lambda: check_run_dir(run_dir, force, resume), "checking the run directory")
            source = dist.from_main(lambda: prepare_training_file(embeddings, run_dir, vocab, progress=converting),
                                    "converting the embeddings")
        else:
            source = stack.enter_context(readable_embeddings(embeddings, vocab, progress=converting))
        converted_from = str(embeddings) if Path(source) != Path(embeddings) else None
        embeddings = source
    data = dist.agree(lambda: open_training_data(embeddings), "reading the embeddings")
    if data is not embeddings:
        stack.callback(data.close)
    return data, converted_from


def train(
    embeddings: Embeddings | TrainingData | str | os.PathLike,
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
    resume: bool = False,
    progress: Callable[[Progress], None] | None = None,
    vocab: str | os.PathLike | None = None,
    events: Callable[[Event], None] | None = None,
) -> TrainResult:
    """Train a k-sparse autoencoder on ``embeddings``; write ``out_dir`` when given.

    The one place that prepares a run: the processes of a torchrun job (see
    :mod:`sparsecode.distributed`), the run directory, the conversion of the input, the data, the
    checkpoint to resume from. ``embeddings`` are in memory (:class:`Embeddings`) or the path of an
    embeddings file, which is then read in chunks as training goes (see :mod:`sparsecode.data`):
    memory does not grow with the number of words. A file in another format ``convert`` reads
    (``vocab``: the words of a .npy) is converted first, streamed: into ``out_dir/embeddings.h5``
    (kept and reused, see :func:`prepare_training_file`), or without ``out_dir`` into a temporary
    file removed at the end. With ``out_dir`` the run is checkpointed and can be resumed
    (``resume=True``) after an interruption. SIGINT/SIGTERM then write a checkpoint and raise
    :class:`TrainingInterrupted`. A run directory this call created is removed when training fails
    before its first checkpoint, the converted input with it.

    ``events`` receives what happens, as :mod:`sparsecode.events` lists it; ``progress`` only its
    :class:`~sparsecode.events.Progress` events. Only process 0 of a job reports.
    """
    cfg = config or TrainConfig()
    cfg.validate()
    with session(cfg.device) as dist, run_device(cfg, dist).scope():
        report = _reporter(events, progress) if dist.is_main else _ignore
        run_dir = Path(out_dir) if out_dir is not None else None
        created = dist.is_main and run_dir is not None and not run_dir.exists()
        try:
            with contextlib.ExitStack() as stack:
                data, converted_from = _training_data(embeddings, run_dir, force, resume, vocab, dist, stack, report)
                return _train(data, cfg, run_dir, force, resume, report, dist, converted_from)
        except ProcessLost:
            raise  # its error names the directory to rerun in, which stays
        except BaseException:
            if created and not (run_dir / CHECKPOINT).exists():
                shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth keeping yet, the converted input neither
            raise


def _reporter(events: Callable[[Event], None] | None, progress: Callable[[Progress], None] | None) -> Callable[[Event], None]:
    """One callback for ``events`` and ``progress`` (either may be None)."""
    calls = [c for c in (events, progress_only(progress) if progress is not None else None) if c is not None]
    if len(calls) == 1:
        return calls[0]

    def both(event: Event) -> None:
        for call in calls:
            call(event)

    return both if calls else _ignore
