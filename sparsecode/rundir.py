"""The run directory: what ``sparsecode train`` writes, how it is checked, resumed and read back.

A finished run holds :data:`RUN_FILES`: ``model.pt``, ``config.json``, ``metrics.jsonl`` and
``summary.json``, each written atomically (``config.json`` last: its presence marks a complete
run). While training, it holds the checkpoint :data:`CHECKPOINT` (layout
:data:`CHECKPOINT_FORMAT`), removed when the run has finished; and for inputs that ``convert``
reads, the converted training file (:data:`~sparsecode.convert.CACHE_NAME`), kept for reruns.

This module is the one place that names these files and tells the user what a run directory
holds and what to do with it. It knows nothing of the training loop: :mod:`sparsecode.encoding`,
:mod:`sparsecode.evaluate` and :mod:`sparsecode.html_report` read runs through it alone.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .atomic import atomic_output, check_output, check_space, write_text_atomic
from .config import OBJECTIVE_DEFAULTS, RESUMABLE_CHANGES, TrainConfig
from .convert import CACHE_NAME, needs_conversion, readable_embeddings
from .errors import SettingError, SparsecodeError
from .model import SparseAutoencoder
from .modelfile import existing_weights, known_sparsity, unloadable


@dataclass
class TrainResult:
    """What a training run produced: what :func:`write_run` puts into its run directory."""

    model: SparseAutoencoder
    config: TrainConfig
    metrics: list[dict]
    """One dict per epoch, as written to ``metrics.jsonl``."""
    summary: dict
    """Statistics of the final model over the whole vocabulary at the encode k."""
    run_info: dict = field(default_factory=dict)
    """What the run resolved: device, data size, sizes used (also in ``config.json``)."""


#: The files of a finished run directory (``--force`` replaces these and only these).
RUN_FILES = ("model.pt", "config.json", "metrics.jsonl", "summary.json")
CHECKPOINT = "checkpoint.pt"
#: The layout of ``checkpoint.pt`` (2: the data order is the generator's state at the epoch's start;
#: 3: Adam's moments of the encoder weights are (H, D), as the model now stores them; 4: the epoch's
#: per-unit counts, for the balance figures of metrics.jsonl; 5: no global torch RNG state, which
#: nothing drew from).
CHECKPOINT_FORMAT = "sparsecode-checkpoint-5"
#: The layouts a checkpoint may have to be resumed: 4 differs from 5 only by an entry that is ignored.
RESUMABLE_FORMATS = ("sparsecode-checkpoint-4", CHECKPOINT_FORMAT)
#: Where ``sparsecode train`` puts a run when no ``--out`` is given: ``runs/<input name>/``.
RUNS_FOLDER = Path("runs")
#: Endings that :func:`default_run_dir` drops from the input's name (``glove.6B.50d.txt.gz`` -> ``glove.6B.50d``).
_INPUT_ENDINGS = (".gz", ".h5", ".hdf5", ".txt", ".vec", ".bin", ".npy")


# -- before a run ---------------------------------------------------------------------------------
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
        raise SettingError("resume", "{path}: holds a checkpoint{when}: rerun with {resume} to continue, or {force} to "
                           "start again", path=run_dir, when="" if step is None else f" from step {step}")
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


def open_run_dir(run_dir: Path, force: bool, resume: bool, d_in: int, cfg: TrainConfig) -> dict | None:
    """Make ``run_dir`` ready for a run of ``cfg`` on ``d_in``-dimensional data (see
    :func:`prepare_run_dir`), with room for its checkpoint; returns the checkpoint's state to resume
    from, or None to start from the beginning (warning when ``resume`` finds no checkpoint)."""
    prepare_run_dir(run_dir, force, resume)
    # The checkpoint (model plus Adam's two moment estimates) is the largest file a run writes.
    shape = SparseAutoencoder(d_in, cfg.hidden, device="meta", sparsity=cfg.sparsity, encoder_layers=cfg.encoder_layers)
    n_values = sum(t.numel() for t in shape.state_dict().values())
    check_space(run_dir / CHECKPOINT, 3 * 4 * n_values + 2**20)
    if resume and (run_dir / CHECKPOINT).is_file():
        return load_checkpoint(run_dir / CHECKPOINT)
    if resume:
        warnings.warn(f"{run_dir}: no checkpoint to resume from; training from the start", stacklevel=5)
    return None


# -- the checkpoint -------------------------------------------------------------------------------
def load_checkpoint(path: Path) -> dict:
    """A checkpoint's state, loaded safely (``weights_only``) onto the CPU."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or unsafe files raise many types
        raise SettingError("force", "{path}: cannot load the checkpoint safely{why}; start again with {force}",
                           path=path, why=unloadable(exc)) from None


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a training state (see :meth:`sparsecode.training.Trainer.state_dict`) atomically."""
    with atomic_output(path, force=True) as tmp:
        torch.save(state, tmp)


def check_resumable(state: dict, cfg: TrainConfig, fingerprint: list[float], source: str) -> None:
    """Whether the checkpoint ``state`` (read from ``source``) continues a run of ``cfg`` on the data
    of ``fingerprint``: the same layout, settings (but :data:`~sparsecode.config.RESUMABLE_CHANGES`)
    and data, each refusal one line that says what to do."""
    if state.get("format") not in RESUMABLE_FORMATS:
        raise SettingError("force", "{path}: not a checkpoint of this version of sparsecode; start again with {force}",
                           path=source)
    old = TrainConfig.from_dict(state["config"]).to_dict()
    new = cfg.to_dict()
    changed = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if old.get(k) != new[k] and k not in RESUMABLE_CHANGES]
    if changed:
        raise SettingError("force", "{path}: the checkpoint was made with other settings ({changed}); resume with the "
                           "same settings, or start again with {force}", path=source, changed="; ".join(changed))
    if state["fingerprint"] != fingerprint:
        raise SparsecodeError(f"{source}: the checkpoint was made on other data; resume on the same embeddings file")


# -- a finished run -------------------------------------------------------------------------------
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
    weights = existing_weights(run_dir / "model.pt")
    config = read_json(run_dir / "config.json")
    sparsity = known_sparsity(config.get("sparsity", "topk"), str(run_dir / "config.json"))
    model = SparseAutoencoder.load(weights, device=device, sparsity=sparsity)
    if model.encode_k is None:  # none recorded (or none: then the config says none too)
        model.encode_k = default_encode_k(config)
    model.eval()
    return model, config


def default_encode_k(config: dict) -> int | None:
    """The k a run encodes with by default: its ``k_encode`` (None for objectives without a k:
    their codes are the threshold's or the activation's non-zeros)."""
    if "k_encode" in config:
        return config["k_encode"]
    return int(config.get("k", OBJECTIVE_DEFAULTS["k"]["topk"]))


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
