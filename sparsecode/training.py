"""The training loop: schedules, dead-unit statistics, metrics, checkpoints, the run directory.

One step, all on the device and without reading anything back to the host:

1. encode a batch (with ``noise`` added, if asked) by the sparsity objective (top-k with the
   current, annealed k by default; see :mod:`sparsecode.objectives`), plus AuxK's picks among
   dead units;
2. loss = FVU of the reconstruction of the clean batch + the objective's penalty + ``aux_coef`` x
   AuxK loss;
3. backward; remove each decoder row's parallel gradient component; Adam step with the
   warm-up/cosine learning rate; rescale decoder rows to unit norm;
4. record which units fired, counted in words seen (so "dead" means the same on any data size).

The host reads values only at report points (:data:`REPORTS_PER_EPOCH` per epoch) and before a
checkpoint: it then checks that the loss, the weights and Adam's moments are finite (otherwise it
restores the state of the previous report point and halves the learning rate, once) and calls the
progress callback.

With a run directory, the complete training state is checkpointed (``checkpoint.pt``) every
``checkpoint_every`` steps, at the end of every epoch and when SIGINT/SIGTERM arrives; ``resume``
continues from it and, on the CPU, ends with weights identical to an uninterrupted run. The final
files appear only when training has finished: ``model.pt``, ``config.json``, ``metrics.jsonl``,
``summary.json`` (each written atomically), and the checkpoint is then removed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .atomic import atomic_output, check_output, check_space, write_text_atomic
from .config import RESUMABLE_CHANGES, SPARSITIES, TrainConfig, on_device, resolve_device
from .convert import CACHE_NAME, needs_conversion, readable_embeddings
from .data import (CHUNK_ROWS, BatchSource, DeviceFeed, SubsetRows, TrainingData, data_fits_on_device, holdout_split,
                   open_training_data)
from .distributed import Distributed, ProcessLost, session
from .embeddings import Embeddings
from .errors import SparsecodeError, TrainingInterrupted
from .evaluate import CodeStatistics
from .interpret import unit_balance
from .model import Normalisation, SparseAutoencoder
from .objectives import Objective, Reconstruction, auxk_loss, make_objective, reconstruction
from .optim import make_adam
from .topk import kept_workspace

#: How many report points (progress, finiteness check) each epoch has, besides its end.
REPORTS_PER_EPOCH = 20
#: The files of a finished run directory (``--force`` replaces these and only these).
RUN_FILES = ("model.pt", "config.json", "metrics.jsonl", "summary.json")
CHECKPOINT = "checkpoint.pt"
#: Weight of the newest batch in the running unit frequencies that balancing steers by (about the last 50
#: steps). On GloVe 50d (50k words, H=1000, k=32) 0.01 let the code collapse for whole epochs before the
#: selection bias caught up (effective units 624, busiest unit 14%); 0.02 kept it spread (974, 6.8%).
FREQ_EMA = 0.02
#: Rows (the first of the file: the most frequent words) whose k-means centroids start the decoder.
KMEANS_SAMPLE = 65_536
#: Words encoded at a time for the final statistics.
FINAL_BATCH = 2048
#: The layout of ``checkpoint.pt`` (2: the data order is the generator's state at the epoch's start;
#: 3: Adam's moments of the encoder weights are (H, D), as the model now stores them; 4: the epoch's
#: per-unit counts, for the balance figures of metrics.jsonl).
CHECKPOINT_FORMAT = "sparsecode-checkpoint-4"


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
    epoch_step: int = 0
    """Steps done so far in this epoch (``epoch_steps`` at its end)."""
    epoch_steps: int = 0
    """Steps per epoch."""
    seconds: float = 0.0
    """Training time so far (over every session of a resumed run)."""


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
    """The annealed k at 0-based ``step``: linear from ``k_start`` to ``k`` (None without a k)."""
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


class Trainer:
    """The state of one training run and the loop that advances it.

    With ``dist`` (a job of several processes, see :mod:`sparsecode.distributed`) each process
    trains on its slice of every global batch and all of them keep the same state.
    """

    def __init__(self, data: TrainingData | Embeddings, cfg: TrainConfig, dist: Distributed | None = None):
        self.cfg = cfg
        self.dist = dist or Distributed(None)
        self.device = self.dist.device or resolve_device(cfg.device)
        data = open_training_data(data)
        self.fingerprint = data.stats.fingerprint  # of every row: resuming needs the same file
        #: The held-out rows (``holdout``), evaluated at the end of every epoch; None when off.
        self.held: SubsetRows | None = None
        if cfg.holdout > 0:
            train_rows, held_rows = holdout_split(data.n, cfg.holdout, cfg.seed)
            self.held = SubsetRows(data.rows, held_rows)
            data = TrainingData(SubsetRows(data.rows, train_rows), data.path)  # statistics of the training rows
        self.data = data
        stats = data.stats
        self.n, self.d_in = stats.n, stats.dim
        self.gen = torch.Generator().manual_seed(cfg.seed)
        # Training noise draws from its own generator on the device, seeded anew for every step from
        # (seed, step) alone (see noise_seed): a checkpoint holds no generator state of a device.
        self.noise_gen = torch.Generator(device=self.device)
        torch.manual_seed(cfg.seed)
        self.model = SparseAutoencoder(self.d_in, cfg.hidden, device=self.device, sparsity=cfg.sparsity,
                                       encoder_layers=cfg.encoder_layers, encode_k=cfg.resolved("encode_k"))
        self.objective = make_objective(cfg, self.dist)
        # Normalisation as estimate_normalisation gives it, from the streamed statistics; the mean of
        # the normalised data is then (mean - input_mean) / input_scale.
        norm = Normalisation(torch.from_numpy(stats.mean).float(), torch.tensor(stats.scale, dtype=torch.float32))
        normalised_mean = ((torch.from_numpy(stats.mean) - norm.mean.double()) / norm.scale.double()).float()
        self.model.initialise_with(Normalisation(norm.mean.to(self.device), norm.scale.to(self.device)),
                                   normalised_mean.to(self.device), generator=self.gen)
        self.data_mean = normalised_mean.to(self.device)
        if cfg.resolved("init") == "kmeans":
            sample = torch.from_numpy(data.rows.read(0, min(self.n, KMEANS_SAMPLE))).to(self.device)
            self.model.initialise_from_centroids(self.model.normalise(sample), cfg.resolved("k_anneal_from"), generator=self.gen)
        if (cfg.resolved("balance") or 0) > 0:
            self.model.use_select_bias()
        self.opt = make_adam(list(self.model.parameters()), cfg.lr)
        # On a GPU: the data on the device if it fits, else pinned copies with the next buffer fetched ahead.
        self.feed = DeviceFeed(self.device)
        self.source = BatchSource(data.rows, cfg.batch_size, self._prepare, self.dist.rank, self.dist.world,
                                  feed=self.feed, prefetch=self.feed.cuda)
        if data_fits_on_device(self.n, self.d_in, self.device):
            self.source.keep_resident()
        self.forward = self.dist.wrap(_Step(self.model, self.objective))
        # SIGINT/SIGTERM asked of this process; and (several processes) whether any was asked, as of the
        # last step: a 0-d tensor the host reads at report points only.
        self.stop_asked, self.stop_flag = False, None

        self.aux_k = cfg.aux_k_for(self.d_in) if cfg.aux_coef > 0 and cfg.uses_k else 0  # no AuxK work when it is off
        self.steps_per_epoch = self.source.steps_per_epoch
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.report_every = max(1, self.steps_per_epoch // REPORTS_PER_EPOCH)
        self.dead_after = max(1, int(cfg.dead_window * self.n))

        # Position: the next step is batch `batch` of epoch `epoch` (1-based), whose order was drawn
        # from the generator in state `epoch_rng` (see sparsecode.data).
        self.step = 0
        self.seen = 0
        self.epoch = 1
        self.batch = 0
        self._start_epoch()
        self.lr_scale = 1.0
        self.diverged = 0
        self.elapsed = 0.0
        self.metrics: list[dict] = []
        # Words seen when each unit last fired; 0 at first, so every unit lives for dead_after words.
        self.last_fired = torch.zeros(cfg.hidden, dtype=torch.int64, device=self.device)
        self.freq_ema = torch.full((cfg.hidden,), (cfg.resolved("k") or 0) / cfg.hidden, device=self.device)
        self._new_epoch_stats()

    @torch.no_grad()
    def _prepare(self, rows: np.ndarray) -> torch.Tensor:
        """(K, D) rows read from the data -> normalised, on the device."""
        return self.model.normalise(self.feed.tensor(rows))

    def _start_epoch(self) -> None:
        self.epoch_rng = self.gen.get_state()
        self.source.start_epoch(self.gen)

    def _new_epoch_stats(self) -> None:
        z = torch.zeros((), dtype=torch.float64, device=self.device)
        self.acc = {"loss": z.clone(), "sse": z.clone(), "ssd": z.clone(), "l0": z.clone(), "zero_rows": z.clone()}
        self.fired_epoch = torch.zeros(self.cfg.hidden, dtype=torch.bool, device=self.device)
        self.unit_counts = torch.zeros(self.cfg.hidden, dtype=torch.float64, device=self.device)  # rows per unit
        self.epoch_seconds = 0.0

    @property
    def run_info(self) -> dict:
        info = {
            "device": str(self.device),
            "n_words": self.n,
            "d_in": self.d_in,
            "k_start": self.cfg.resolved("k_anneal_from"),
            "k_encode": self.cfg.resolved("encode_k"),
            "init": self.cfg.resolved("init"),
            # The values in use of the settings that default by objective (config.json: the run's settings).
            **self.cfg.resolved_settings(),
            "aux_k": self.aux_k,
            "steps": self.total_steps,
        }
        if self.held is not None:
            info["holdout_words"] = self.held.n
        if self.dist.active:
            info["processes"] = self.dist.world
        return info

    @property
    def finished(self) -> bool:
        return self.epoch > self.cfg.epochs

    # -- the step ---------------------------------------------------------------------------------
    def train_step(self) -> None:
        cfg, model = self.cfg, self.model
        x = self.source.batch(self.batch)
        k = k_at(self.step, self.total_steps, cfg)
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * self.lr_scale * lr_factor(self.step, self.total_steps, cfg)

        dead = (self.seen - self.last_fired) >= self.dead_after
        noise = cfg.resolved("noise")
        x_in = x + noise * self._noise(x) if noise > 0 else x
        global_rows = self.source.global_size(self.batch)
        codes = self.forward(x_in, k, self.aux_k, dead, self.step, global_rows)
        rec = reconstruction(x, codes.x_hat, self.data_mean)
        penalty, aux_var = codes.penalty, None
        if self.dist.active:  # denominators of the global batch; x W because DDP averages the W gradients
            glob = self.dist.reduce_batch(global_rows, rec.ssd, rec.sse, codes.row_l0, codes.counts,
                                          (x - codes.x_hat).detach() if self.aux_k > 0 else None, self.stop_asked)
            world = self.dist.world
            rec = Reconstruction(rec.sse * world, glob.ssd)  # the penalty is in this convention already
            aux_var = glob.residual_var.clamp_min(1e-12) / world if self.aux_k > 0 else None
        loss = rec.fvu + penalty
        if self.aux_k > 0:
            loss = loss + cfg.aux_coef * auxk_loss(x - codes.x_hat, codes.aux_acts, codes.aux_indices, model.W_dec,
                                                   dead.any(), aux_var)

        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        model.remove_parallel_decoder_grad()
        self.opt.step()
        model.normalise_decoder()

        with torch.no_grad():
            rows, counts, row_l0 = x.shape[0], codes.counts, codes.row_l0
            batch_stats = (("loss", loss.detach()), ("sse", rec.sse.detach()), ("ssd", rec.ssd),
                           ("l0", row_l0.sum()), ("zero_rows", (row_l0 == 0).sum()))
            if self.dist.active:  # the whole batch's figures, the same in every process
                rows, counts, self.stop_flag = glob.rows, glob.counts, glob.stop
                batch_stats = (("loss", self.dist.all_reduce(loss.detach() / world)), ("sse", glob.sse),
                               ("ssd", glob.ssd), ("l0", glob.l0), ("zero_rows", glob.zero_rows))
            fired = counts > 0
            if (cfg.resolved("homeostasis") or 0.0) > 0 or model.select_bias is not None:
                # Load balancing without a loss (as DeepSeek-V3 routes experts): each unit's bias moves
                # toward the frequency k/H, up when it fires too rarely, down when too often. The
                # selection bias only chooses units; homeostasis moves the (trained) encoder bias.
                self.freq_ema.mul_(1 - FREQ_EMA).add_(counts / rows, alpha=FREQ_EMA)
                toward = torch.sign(k / cfg.hidden - self.freq_ema)
                if (cfg.resolved("homeostasis") or 0.0) > 0:
                    model.b_enc.add_(toward, alpha=(cfg.resolved("homeostasis") or 0.0))
                if model.select_bias is not None:
                    model.select_bias.add_(toward, alpha=cfg.resolved("balance"))
            self.seen += rows
            self.last_fired = torch.where(fired, self.seen, self.last_fired)
            self.fired_epoch |= fired
            self.unit_counts += counts
            for name, value in batch_stats:
                self.acc[name] += value
        self.step += 1
        self.batch += 1
        self.dead = dead

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
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
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        acc, n = self.acc, self.n
        balance = unit_balance(self.unit_counts.cpu().numpy(), n)
        line = {
            "epoch": self.epoch,
            "loss": float(acc["loss"]) / self.steps_per_epoch,
            "fvu": float(acc["sse"] / acc["ssd"]),
            "mean_l0": float(acc["l0"]) / n,
            "dead_fraction": float((~self.fired_epoch).double().mean()),
            "zero_rows_fraction": float(acc["zero_rows"]) / n,
            "effective_units": balance["effective_units"],
            "starved_fraction": balance["starved_fraction"],
            "k": k_at(self.step - 1, self.total_steps, self.cfg),
            "lr": self.opt.param_groups[0]["lr"],
            "seconds": self.epoch_seconds,
        }
        if self.held is not None:  # at the training k, without noise: the held-out words' view of this epoch
            held = self.statistics(self.held, line["k"] if self.cfg.sparsity == "topk" else None)
            line.update(holdout_fvu=held["fvu"], holdout_dead_fraction=held["dead_fraction"],
                        holdout_mean_l0=held["mean_l0"])
        self.metrics.append(line)
        self.epoch += 1
        self.batch = 0
        self.source.finish_epoch()
        if not self.finished:
            self._start_epoch()
        self._new_epoch_stats()
        return line

    @torch.no_grad()
    def final_statistics(self) -> dict:
        """:func:`~sparsecode.evaluate.code_statistics` of the model over every training row at the
        encode k, read a chunk at a time; with held-out rows, theirs too (``holdout_...``)."""
        summary = self.statistics(self.data.rows, self.cfg.resolved("encode_k"))
        if self.held is not None:
            held = self.statistics(self.held, self.cfg.resolved("encode_k"))
            summary.update({"holdout_words": self.held.n, **{f"holdout_{k}": v for k, v in held.items()}})
        return summary

    @torch.no_grad()
    def statistics(self, rows, k: int | None) -> dict:
        """:func:`~sparsecode.evaluate.code_statistics` of the model over ``rows`` with ``k`` (FVU
        relative to the training rows' mean), read a chunk at a time, the chunks shared among the
        processes."""
        mean = torch.from_numpy(self.data.stats.mean).float().to(self.device)
        stats = CodeStatistics(self.model, k, mean)
        dist = self.dist
        for start in range(dist.rank * CHUNK_ROWS, rows.n, dist.world * CHUNK_ROWS):
            block = torch.from_numpy(rows.read(start, min(start + CHUNK_ROWS, rows.n))).to(self.device)
            for part in block.split(FINAL_BATCH):  # bounds the (batch, H) pre-activations
                stats.update(part)
        dist.all_reduce(stats.sums, "the final statistics")
        return stats.result()

    # -- the whole state --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue exactly (tensors and plain values: ``weights_only`` loads it)."""
        clone = lambda t: t.detach().cpu().clone()  # noqa: E731
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.to_dict(),
            "fingerprint": self.fingerprint,
            "model": {k: clone(v) for k, v in self.model.state_dict().items()},
            "optimizer": _to_cpu(self.opt.state_dict()),
            "epoch_rng": self.epoch_rng.clone(),  # a CPU generator's state, whatever the device
            "torch_rng": torch.get_rng_state(),
            "position": {"step": self.step, "seen": self.seen, "epoch": self.epoch, "batch": self.batch,
                         "lr_scale": self.lr_scale, "diverged": self.diverged, "elapsed": self.elapsed,
                         "epoch_seconds": self.epoch_seconds},
            "last_fired": clone(self.last_fired),
            "freq_ema": clone(self.freq_ema),
            "acc": {k: clone(v) for k, v in self.acc.items()},
            "fired_epoch": clone(self.fired_epoch),
            "unit_counts": clone(self.unit_counts),
            "metrics": [dict(m) for m in self.metrics],
        }

    def load_state_dict(self, state: dict) -> None:
        dev = self.device
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        # Checkpoints of earlier versions hold "noise_generator", the state of a generator of the device
        # they were made on (a CUDA state does not fit a CPU generator): unused, the noise of a step
        # depends on (seed, step) alone.
        torch.set_rng_state(state["torch_rng"])
        pos = state["position"]
        self.step, self.seen, self.epoch, self.batch = pos["step"], pos["seen"], pos["epoch"], pos["batch"]
        self.lr_scale, self.diverged = pos["lr_scale"], pos["diverged"]
        self.elapsed, self.epoch_seconds = pos["elapsed"], pos["epoch_seconds"]
        if not self.finished:  # redraw the epoch's order; batch `self.batch` comes next
            self.gen.set_state(state["epoch_rng"])
            self._start_epoch()
        self.last_fired = state["last_fired"].to(dev)
        self.freq_ema = state["freq_ema"].to(dev)
        self.acc = {k: v.to(dev) for k, v in state["acc"].items()}
        self.fired_epoch = state["fired_epoch"].to(dev)
        self.unit_counts = state["unit_counts"].to(dev)
        self.metrics = [dict(m) for m in state["metrics"]]

    def check_resumable(self, state: dict, source: str) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise SparsecodeError(f"{source}: not a checkpoint of this version of sparsecode; start again with --force")
        old = TrainConfig.from_dict(state["config"]).to_dict()
        new = self.cfg.to_dict()
        changed = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if old.get(k) != new[k] and k not in RESUMABLE_CHANGES]
        if changed:
            raise SparsecodeError(
                f"{source}: the checkpoint was made with other settings ({'; '.join(changed)}); "
                "resume with the same settings, or start again with --force"
            )
        if state["fingerprint"] != self.fingerprint:
            raise SparsecodeError(f"{source}: the checkpoint was made on other data; resume on the same embeddings file")

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, progress: Callable[[Progress], None] | None = None,
            checkpoint: Callable[[], None] | None = None, stop_requested: Callable[[], int] | None = None) -> None:
        cfg = self.cfg
        good = self.state_dict()
        t_last = time.perf_counter()
        while not self.finished:
            if self.dist.active:  # asked before the step, agreed on by every process within it
                self.stop_asked = stop_requested is not None and bool(stop_requested())
            with self.dist.collective("a training step"):  # a lost peer: ProcessLost
                self.train_step()
            now = time.perf_counter()
            self.elapsed += now - t_last
            self.epoch_seconds += now - t_last
            t_last = now
            at_epoch_end = self.batch == self.steps_per_epoch
            report = self.batch % self.report_every == 0 or at_epoch_end
            save = checkpoint is not None and (at_epoch_end or self.step % cfg.checkpoint_every == 0)
            if self.dist.active:  # read at report points only, the same steps in every process
                stop = (report or save) and bool(self.stop_flag)
            else:
                stop = stop_requested is not None and bool(stop_requested())
            # The host reads back only here; nothing unverified is reported, kept or checkpointed.
            if (report or save or stop) and not self.state_is_finite():
                good = self._recover(good, checkpoint)
                t_last = time.perf_counter()
                if stop:
                    raise KeyboardInterrupt
                continue
            if report:
                if at_epoch_end:
                    line = self._end_epoch()
                    if progress is not None:
                        progress(Progress(line["epoch"], self.step, self.total_steps, line["loss"], line["fvu"],
                                          line["dead_fraction"], epoch_end=True, metrics=line,
                                          epoch_step=self.steps_per_epoch, epoch_steps=self.steps_per_epoch,
                                          seconds=self.elapsed))
                elif progress is not None:
                    progress(Progress(self.epoch, self.step, self.total_steps, float(self.acc["loss"]) / self.batch,
                                      float(self.acc["sse"] / self.acc["ssd"]), float(self.dead.double().mean()),
                                      epoch_step=self.batch, epoch_steps=self.steps_per_epoch, seconds=self.elapsed))
                good = self.state_dict()
            if save:
                checkpoint()
            if stop:
                raise KeyboardInterrupt  # at a step boundary: the caller checkpoints

    def state_is_finite(self) -> bool:
        """Whether what a checkpoint would save is finite: the epoch's loss so far, and every weight
        and Adam moment (an infinite gradient can leave a finite loss and non-finite weights). One
        read back to the host, at report and save points only; each tensor is read once on the device."""
        tensors = [self.acc["loss"], *self.model.parameters(), *self.model.buffers(),
                   *(v for state in self.opt.state.values() for v in state.values()
                     if isinstance(v, torch.Tensor) and v.is_floating_point())]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())

    def _recover(self, good: dict, checkpoint) -> dict:
        """Non-finite values: go back to the last good state; halve the learning rate once."""
        bad_step = self.step
        self.load_state_dict(good)
        self.diverged += 1
        if self.diverged > 1:
            if checkpoint is not None:
                checkpoint()
            raise SparsecodeError(
                f"training diverged twice (non-finite loss or weights by step {bad_step}); the state of step {self.step} "
                "was kept: lower --lr and start again"
            )
        self.lr_scale *= 0.5
        warnings.warn(
            f"non-finite loss or weights by step {bad_step}: went back to step {self.step} and halved the learning rate",
            stacklevel=2,
        )
        return self.state_dict()


def noise_seed(seed: int, step: int) -> int:
    """The seed of the training noise at 0-based ``step`` of a run seeded ``seed`` (63 bits, well mixed)."""
    return int(np.random.SeedSequence([seed, 1, step]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


class _StopSignals:
    """While active, SIGINT/SIGTERM only record that a stop was asked for (main thread only)."""

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

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(
    embeddings: Embeddings | TrainingData | str | os.PathLike,
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
    resume: bool = False,
    progress: Callable[[Progress], None] | None = None,
    vocab: str | os.PathLike | None = None,
) -> TrainResult:
    """Train a k-sparse autoencoder on ``embeddings``; write ``out_dir`` when given.

    ``embeddings`` are in memory (:class:`Embeddings`) or the path of an embeddings file, which is
    then read in chunks as training goes (see :mod:`sparsecode.data`): memory does not grow with
    the number of words. A file in another format ``convert`` reads (``vocab``: the words of a
    .npy) is converted first, streamed: into ``out_dir/embeddings.h5`` (kept and reused, see
    :func:`prepare_training_file`), or without ``out_dir`` into a temporary file removed at the
    end. With ``out_dir`` the run is checkpointed and can be resumed
    (``resume=True``) after an interruption. SIGINT/SIGTERM then write a checkpoint and raise
    :class:`TrainingInterrupted`.
    """
    cfg = config or TrainConfig()
    cfg.validate()
    with session(cfg.device) as dist, on_device(dist.device or resolve_device(cfg.device)), contextlib.ExitStack() as stack:
        if isinstance(embeddings, (str, os.PathLike)) and out_dir is not None:
            dist.from_main(lambda: check_run_dir(out_dir, force, resume), "checking the run directory")
            embeddings = dist.from_main(lambda: prepare_training_file(embeddings, out_dir, vocab), "converting the embeddings")
        elif isinstance(embeddings, (str, os.PathLike)):
            embeddings = stack.enter_context(readable_embeddings(embeddings, vocab))
        data = dist.agree(lambda: open_training_data(embeddings), "reading the embeddings")
        try:
            with kept_workspace():  # the encoder's pre-activation buffer, freed when training ends
                return _train(data, cfg, out_dir, force, resume, progress if dist.is_main else None, dist)
        finally:
            if data is not embeddings:
                data.close()


def _train(data: TrainingData, cfg: TrainConfig, out_dir, force: bool, resume: bool, progress,
           dist: Distributed) -> TrainResult:
    """Process 0 alone touches the run directory; every process trains (see sparsecode.distributed)."""
    n, d_in = data.n, data.dim
    if n < 2:
        raise SparsecodeError(f"{data.path}: needs at least 2 words to train, found {n}")
    run_dir = Path(out_dir) if out_dir is not None else None
    state = None
    if run_dir is not None:
        def prepare() -> dict | None:
            prepare_run_dir(run_dir, force, resume)
            # The checkpoint (model plus Adam's two moment estimates) is the largest file a run writes.
            shape = SparseAutoencoder(d_in, cfg.hidden, device="meta", sparsity=cfg.sparsity,
                                      encoder_layers=cfg.encoder_layers)
            n_values = sum(t.numel() for t in shape.state_dict().values())
            check_space(run_dir / CHECKPOINT, 3 * 4 * n_values + 2**20)
            if resume and (run_dir / CHECKPOINT).is_file():
                return _load_checkpoint(run_dir / CHECKPOINT)
            if resume:
                warnings.warn(f"{run_dir}: no checkpoint to resume from; training from the start", stacklevel=4)
            return None

        state = dist.from_main(prepare, "preparing the run directory")

    trainer = Trainer(data, cfg, dist)
    created = False
    saved = {"step": None}  # the step of the last checkpoint, known to every process
    if state is not None:
        trainer.check_resumable(state, str(run_dir / CHECKPOINT))
        trainer.load_state_dict(state)
        saved["step"] = trainer.step
        del state
    if run_dir is not None and dist.is_main:
        created = not run_dir.exists()
        run_dir.mkdir(exist_ok=True)

    def save_checkpoint() -> None:
        saved["step"] = trainer.step
        if dist.is_main:
            with atomic_output(run_dir / CHECKPOINT, force=True) as tmp:
                torch.save(trainer.state_dict(), tmp)

    try:
        if run_dir is None:
            trainer.run(progress)
        else:
            with _StopSignals() as signals:
                try:
                    trainer.run(progress, save_checkpoint, lambda: signals.signum)
                except KeyboardInterrupt:
                    signum = signals.signum or signal.SIGINT
                    save_checkpoint()
                    raise TrainingInterrupted(
                        f"{run_dir}: interrupted at step {trainer.step} of {trainer.total_steps}; a checkpoint "
                        "was saved: run the same command with --resume to continue", int(signum)
                    ) from None
        trainer.model.eval()
        summary = trainer.final_statistics()
    except ProcessLost as exc:
        where = f"{run_dir}: " if run_dir is not None else ""
        last = ("" if run_dir is None else "; there is no checkpoint yet" if saved["step"] is None
                else f"; the last checkpoint is from step {saved['step']}")
        hint = ": rerun the same command with --resume to continue (with any number of processes)" if run_dir else ""
        raise ProcessLost(f"{where}training stopped at step {trainer.step}: {exc}{last}{hint}") from None
    except BaseException:
        if created and run_dir is not None and not (run_dir / CHECKPOINT).exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth keeping yet
        raise

    summary["k"] = cfg.resolved("encode_k")
    summary["train_seconds"] = trainer.elapsed
    path = os.path.abspath(data.path) if os.path.exists(data.path) else data.path  # "(in memory)" stays so
    run_info = {**trainer.run_info, "embeddings": path}
    result = TrainResult(model=trainer.model, config=cfg, metrics=trainer.metrics, summary=summary, run_info=run_info)
    if run_dir is not None and dist.is_main:
        write_run(run_dir, result)
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    return result


#: Where ``sparsecode train`` puts a run when no ``--out`` is given: ``runs/<input name>/``.
RUNS_FOLDER = Path("runs")
#: Endings that :func:`default_run_dir` drops from the input's name (``glove.6B.50d.txt.gz`` -> ``glove.6B.50d``).
_INPUT_ENDINGS = (".gz", ".h5", ".hdf5", ".txt", ".vec", ".bin", ".npy")


def default_run_dir(embeddings: str | os.PathLike) -> Path:
    """``runs/<name>`` for an input file: its name without the endings of embeddings files (a run
    directory beside nothing it could overwrite). Creates ``runs/`` when it is missing."""
    name = Path(embeddings).name
    while name.lower().endswith(_INPUT_ENDINGS) and "." in name[1:]:
        name = name[: name.rindex(".")]
    RUNS_FOLDER.mkdir(exist_ok=True)
    return RUNS_FOLDER / name


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step a checkpoint was saved at (read without loading its tensors), or None if unreadable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state["position"]["step"])
    except Exception:  # noqa: BLE001 - a corrupt file: the caller speaks without the step
        return None


def check_run_dir(run_dir: str | os.PathLike, force: bool, resume: bool) -> Path:
    """Whether a run may start (or, with ``resume``, continue) in ``run_dir``, checked before any
    work; the one place that tells the user what a run directory holds and what to do with it."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise SparsecodeError(f"{run_dir}: is a file; give a directory for the run")
    if resume:
        if (run_dir / "model.pt").is_file() and not (run_dir / CHECKPOINT).is_file():
            raise SparsecodeError(f"{run_dir}: this run has finished; there is nothing to resume")
        if not run_dir.exists():
            check_output(run_dir, force=False)  # parent exists and is writable
        return run_dir
    if (run_dir / CHECKPOINT).is_file() and not force:
        step = checkpoint_step(run_dir / CHECKPOINT)
        raise SparsecodeError(f"{run_dir}: holds a checkpoint{'' if step is None else f' from step {step}'}: "
                              "rerun with --resume to continue, or --force to start again")
    # A folder that holds nothing, or only the converted input of an earlier attempt, is free.
    free = run_dir.is_dir() and all(p.name == CACHE_NAME or (p.name.startswith(".") and p.name.endswith(".tmp"))
                                    for p in run_dir.iterdir())
    return check_output(run_dir, force or free)


def prepare_training_file(embeddings: str | os.PathLike, run_dir: str | os.PathLike,
                          vocab: str | os.PathLike | None = None, progress=None) -> Path:
    """The HDF5 file training reads from ``embeddings``: the file itself, or for the formats
    ``convert`` reads, their conversion (streamed), made once into ``run_dir/embeddings.h5`` and
    reused while the source is unchanged (by ``--resume``, a rerun, ``encode`` and ``evaluate``).
    Call it after :func:`check_run_dir`, on the process that writes the run directory."""
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    if needs_conversion(embeddings):
        run_dir.mkdir(exist_ok=True)  # its folder was checked by check_run_dir
    try:
        with readable_embeddings(embeddings, vocab, cache=run_dir / CACHE_NAME, progress=progress) as path:
            return path
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def prepare_run_dir(run_dir: Path, force: bool, resume: bool) -> None:
    """Check (and with ``force`` clear) the run directory before any work is done."""
    for stale in run_dir.glob(".*.tmp") if run_dir.is_dir() else ():
        stale.unlink(missing_ok=True)  # temporaries of a killed run
    check_run_dir(run_dir, force, resume)
    if force and not resume and run_dir.exists():
        for name in (*RUN_FILES, CHECKPOINT):
            (run_dir / name).unlink(missing_ok=True)


def _load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or unsafe files raise many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SparsecodeError(f"{path}: cannot load the checkpoint safely ({first[:160]}); start again with --force") from None


def write_run(out_dir: str | os.PathLike, result: TrainResult) -> Path:
    """Write the finished run's files, each atomically: ``model.pt``, ``config.json``,
    ``metrics.jsonl``, ``summary.json`` (``config.json`` last: its presence marks a complete run)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(exist_ok=True)
    with atomic_output(out_dir / "model.pt", force=True) as tmp:
        result.model.save(tmp)
    write_text_atomic(out_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in result.metrics))
    write_text_atomic(out_dir / "summary.json", json.dumps(result.summary, indent=2) + "\n")
    config = {**result.config.to_dict(), **result.run_info, "sparsecode_version": _version()}
    write_text_atomic(out_dir / "config.json", json.dumps(config, indent=2) + "\n")
    return out_dir


def load_run(run_dir: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[SparseAutoencoder, dict]:
    """Read a run directory: the model (weights only, safely) and its ``config.json``."""
    run_dir = _run_directory(run_dir)
    if not (run_dir / "model.pt").is_file():
        SparseAutoencoder.load(run_dir / "model.pt")  # raises the one-line "weights not found" error
    config = read_json(run_dir / "config.json")
    sparsity = config.get("sparsity", "topk")
    if sparsity not in SPARSITIES:
        raise SparsecodeError(f"{run_dir / 'config.json'}: unknown sparsity {sparsity!r}; the run is from a newer sparsecode")
    model = SparseAutoencoder.load(run_dir / "model.pt", device=device, sparsity=sparsity)
    if model.encode_k is None:  # none recorded (or none: then the config says none too)
        model.encode_k = default_encode_k(config)
    model.eval()
    return model, config


def default_encode_k(config: dict) -> int | None:
    """The k a run encodes with by default: its ``k_encode`` (None for objectives without a k:
    their codes are the threshold's or the activation's non-zeros)."""
    if "k_encode" in config:
        return config["k_encode"]
    return int(config.get("k", 32))


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
    if not (run_dir / "model.pt").exists() and (run_dir / CHECKPOINT).exists():
        raise SparsecodeError(f"{run_dir}: training has not finished; continue it with 'sparsecode train ... --resume'")
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
