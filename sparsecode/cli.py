"""The ``sparsecode`` command line: parse, call the library, render with rich. Nothing else.

Errors from the library (:class:`~sparsecode.errors.SparsecodeError`) become one line on stderr,
``error: ...``, and exit code 1; library warnings become ``warning: ...`` lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from enum import Enum
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from . import __version__
from .atomic import OutputWriteError
from .clihelp import Group, choice, flag, setting_options
from .config import DEVICES, TrainConfig
from .convert import FORMATS
from .encoding import EncodeSettings
from .errors import SettingError, SparsecodeError, TrainingInterrupted
from .evaluate import DEFAULT_SEED, DEFAULT_WORDSIM_DIR, UNIT_ORDERS
from .export import EXPORT_FORMATS
from .interpret import MIN_COVERAGE, collapse_warning
from .pursuit import METHODS
from .search import DEFAULT_TOP
from .runtime import choose_threads
from .terminal import safe, words as word_list

app = typer.Typer(
    help="Sparse, interpretable codes for pre-trained word embeddings (k-sparse autoencoder).",
    no_args_is_help=True,
    cls=Group,  # --help as git, pip and uv write it (sparsecode.clihelp)
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)
# Text from the data is rendered through sparsecode.terminal.safe; no console turns ':name:' into emoji.
out = Console(highlight=False, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)
DEFAULTS = TrainConfig()
ENCODE = EncodeSettings()
EMBEDDINGS_HELP = ("Embeddings: HDF5 with 'words' and 'vectors', or any format 'convert' reads (GloVe, word2vec, "
                   "fastText, .npy; gzipped or not), told from the content.")
VOCAB_HELP = "The words of a .npy matrix, one per line."
_state = {"hard_exit": False, "rank": 0}


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one clean line and a non-zero exit; show warnings as lines.

    In a job of several processes (torchrun) process 0 speaks for all of them, since they share
    every error; a process that lost its peers says so itself."""
    from .distributed import ProcessLost

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except TrainingInterrupted as exc:
            _print_warnings(caught)
            if _state["rank"] == 0:
                err.print(Text.assemble(("interrupted:", "bold yellow"), " ", safe(exc)), soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except SparsecodeError as exc:
            _print_warnings(caught)
            if _state["rank"] == 0 or isinstance(exc, ProcessLost):
                message = exc.naming(flag) if isinstance(exc, SettingError) else str(exc)  # a setting by its flag
                err.print(Text.assemble(("error:", "bold red"), " ", safe(message)), soft_wrap=True)
            if isinstance(exc, OutputWriteError):
                _state["hard_exit"] = True
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]: nothing was written", soft_wrap=True)
            raise typer.Exit(130) from None
    _print_warnings(caught)


def _print_warnings(caught) -> None:
    if _state["rank"] != 0:
        return
    for w in caught:
        if issubclass(w.category, UserWarning):
            err.print(Text.assemble(("warning:", "yellow"), " ", safe(w.message)), soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sparsecode {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """Train k-sparse autoencoders on word embeddings, encode, inspect and search the codes."""


def _clock(seconds: float | None) -> str:
    """``0:01:05``; ``-:--:--`` when not known yet."""
    if seconds is None:
        return "-:--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LiveBar:
    """A rich progress bar that appears with the first update and vanishes when done (or on error),
    so that a failure prints only its error line and a success only its summary.

    It shows ``elapsed H:MM:SS`` (this command's time) and ``left H:MM:SS``, estimated from the
    rate so far over ``overall`` = (done, total) when given (a training run's steps, while the bar
    counts those of the epoch), else over the bar's own count."""

    def __init__(self, description: str, enabled: bool = True):
        self.description, self.enabled = description, enabled
        self.progress: Progress | None = None

    def update(self, completed: int, total: int | None, description: str | None = None, status: str = "",
               overall: tuple[int, int] | None = None) -> None:
        if not self.enabled:
            return
        done, whole = overall if overall is not None else (completed, total)
        now = time.perf_counter()
        if self.progress is None:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TextColumn("elapsed"), TimeElapsedColumn(),
                TextColumn("left {task.fields[left]}"), console=err, transient=True,
            )
            self.task = self.progress.add_task(description or self.description, total=total, completed=completed,
                                               status=status, left=_clock(None))
            self.progress.start()
            self.start = (now, done)
        t0, done0 = self.start
        left = None
        if whole is not None and done > done0:
            left = (now - t0) / (done - done0) * (whole - done)
        self.progress.update(self.task, completed=completed, total=total, status=status, left=_clock(left),
                             description=description or self.description)
        self.progress.refresh()  # every update is a frame: few enough (train reports 20 times an epoch)

    def __enter__(self) -> "LiveBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


@app.command()
@setting_options(TrainConfig)
def train(
    embeddings: Path = typer.Argument(..., help=EMBEDDINGS_HELP),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory to create (model.pt, config.json, "
                                           "metrics.jsonl)  \\[default: runs/NAME, NAME the input's]"),
    settings: dict = None,  # one option per setting of TrainConfig (sparsecode.clihelp.setting_options)
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its checkpoint."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing run directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or start-up line."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output: the metrics per epoch and the summary."),
    nproc: int = typer.Option(1, "--nproc", help="Processes on this machine (one per GPU): starts torchrun's launcher "
                                                 "with them (DistributedDataParallel)."),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help=VOCAB_HELP),
) -> None:
    """Train a k-sparse autoencoder.  Example: sparsecode train sample_data/glove.6B.50d.5k.h5 --out run"""
    from .data import open_training_data
    from .distributed import current_rank, launch, session
    from .rundir import check_run_dir, default_run_dir, prepare_training_file
    from .training import train as run_training

    _state["rank"] = current_rank()  # in a torchrun job, process 0 speaks for all
    with user_errors():
        cfg = TrainConfig(**{**settings, "encoder_layers": _widths(settings["encoder_layers"])})
    if nproc != 1:
        with user_errors():
            _check_launch(cfg, nproc)
        raise typer.Exit(launch(nproc, _without_nproc(sys.argv[1:])))
    with user_errors(), session(cfg.device) as dist:  # a torchrun job's processes, or just this one
        cfg.validate()
        named = out_dir is not None
        out_dir = out_dir if named else dist.from_main(lambda: default_run_dir(embeddings), "naming the run directory")
        dist.from_main(lambda: check_run_dir(out_dir, force, resume), "checking the run directory")
        with LiveBar("converting (MB)", enabled=not quiet and dist.is_main) as cbar:
            source = dist.from_main(lambda: prepare_training_file(embeddings, out_dir, vocab, progress=_mb_progress(cbar)),
                                    "converting the embeddings")
        if source != embeddings and not quiet and dist.is_main:
            err.print(safe(f"read {embeddings} through {source} (converted once, reused while {embeddings.name} "
                           "is unchanged)"), soft_wrap=True)
        # Validated in one streamed pass, not loaded; every process, and all agree on an error.
        with dist.agree(lambda: open_training_data(source), "reading the embeddings") as emb:
            if not quiet and dist.is_main:
                err.print(safe(f"training on {len(emb):,} words x {emb.dim} dims -> {cfg.hidden} units, {_objective(cfg)}"
                               + (f", {100 * cfg.holdout:g}% of the words held out" if cfg.holdout else "")
                               + (f", {dist.world} processes" if dist.active else "")
                               + ("" if named else f"; the run goes to {out_dir}/ (no --out given)")), soft_wrap=True)
            with LiveBar("train", enabled=not quiet and dist.is_main) as bar:
                result = run_training(emb, cfg, out_dir=out_dir, force=force, resume=resume, progress=lambda p: bar.update(
                    p.epoch_step, p.epoch_steps, description=f"epoch {p.epoch}/{cfg.epochs}",
                    status=_train_status(p), overall=(p.step, p.total_steps)))
    if not dist.is_main:
        return None
    if as_json:
        return _echo_json({"out": str(out_dir), "metrics": result.metrics, "summary": result.summary})
    out.print(_epoch_table(out_dir, result.metrics, result.summary))
    _print_training_summary(result, cfg, len(emb))


def _check_launch(cfg: TrainConfig, nproc: int) -> None:
    """What ``--nproc`` needs before it starts the processes: a count, not already one of a job,
    valid settings, a device each process can take its own GPU of."""
    from .distributed import check_device_for

    if nproc < 1:
        raise SparsecodeError(f"--nproc must be at least 1 (got {nproc})")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SparsecodeError("--nproc: this process is already one of a torchrun job; drop --nproc")
    cfg.validate()
    check_device_for(nproc, cfg.device)


def _epoch_table(out_dir: Path, metrics: list[dict], s: dict) -> Table:
    """A training run's figures per epoch and its final ones (with the held-out words' when some were)."""
    held = "holdout_words" in s
    table = Table(title=safe(f"trained {out_dir}"))
    for col in ("epoch", "loss", "FVU", "mean L0", "dead %", "zero rows %", "effective units", "starved %", "seconds",
                *(("held-out FVU", "held-out dead %") if held else ())):
        table.add_column(col, justify="right")
    for m in metrics:
        table.add_row(str(m["epoch"]), f"{m['loss']:.4f}", f"{m['fvu']:.4f}", f"{m['mean_l0']:.1f}",
                      f"{100 * m['dead_fraction']:.1f}", f"{100 * m['zero_rows_fraction']:.2f}",
                      f"{m['effective_units']:.0f}", f"{100 * m['starved_fraction']:.1f}", f"{m['seconds']:.1f}",
                      *((f"{m['holdout_fvu']:.4f}", f"{100 * m['holdout_dead_fraction']:.1f}") if held else ()))
    table.add_row("final", "", f"{s['fvu']:.4f}", f"{s['mean_l0']:.1f}", f"{100 * s['dead_fraction']:.1f}",
                  f"{100 * s['zero_rows_fraction']:.2f}", f"{s['effective_units']:.0f}", f"{100 * s['starved_fraction']:.1f}",
                  f"{s['train_seconds']:.1f}",
                  *((f"{s['holdout_fvu']:.4f}", f"{100 * s['holdout_dead_fraction']:.1f}") if held else ()), style="bold")
    return table


def _print_training_summary(result, cfg: TrainConfig, n_words: int) -> None:
    """The lines under the epoch table: what the final figures measure and mean, and a collapse warning."""
    s = result.summary
    if result.metrics[0]["fvu"] > 1 > s["fvu"]:
        out.print("An FVU above 1 in the first epochs is normal: training starts from random weights, which "
                  "reconstruct worse than the mean vector would.", soft_wrap=True)
    how = f"k={s['k']}" if s["k"] is not None else f"{cfg.sparsity} codes (mean L0 {s['mean_l0']:.1f})"
    if "holdout_words" in s:
        n_train = result.run_info["n_words"]
        out.print(f"final: the {n_train:,} training words encoded with {how}; cosine(x, x̂) {s['cosine']:.3f}; the "
                  f"{s['holdout_words']:,} held-out words: FVU {s['holdout_fvu']:.4f}, cosine {s['holdout_cosine']:.3f}, "
                  f"dead units {100 * s['holdout_dead_fraction']:.1f}%", soft_wrap=True)
    else:
        out.print(f"final: all {n_words:,} words encoded with {how}; cosine(x, x̂) {s['cosine']:.3f}; "
                  f"{s['effective_units']:.0f} effective units of {cfg.hidden}, the busiest on "
                  f"{100 * s['busiest_rate']:.1f}% of the words", soft_wrap=True)
    out.print(_fvu_meaning(s["fvu"]), soft_wrap=True)
    collapsed = collapse_warning({**s, "units": cfg.hidden})
    if collapsed:
        err.print(f"[yellow]warning:[/] {collapsed}", soft_wrap=True)


def _train_status(p) -> str:
    """The bar's figures: the epoch's loss and FVU so far, the dead units now."""
    start = " (above 1 at the start is normal)" if p.fvu > 1 and p.epoch == 1 else ""
    return f"loss {p.loss:.4f}  FVU {p.fvu:.4f}{start}  dead {100 * p.dead_fraction:.1f}%"


def _fvu_meaning(fvu: float) -> str:
    """One line on what the final FVU says."""
    if fvu >= 1:
        return (f"FVU {fvu:.4f}: the reconstructions are no closer to the vectors than their mean vector is "
                "(FVU 1); train for more epochs or with a larger --lr.")
    return (f"FVU {fvu:.4f}: the reconstructions leave {100 * fvu:.1f}% of the vectors' variance unexplained "
            "(0: exact; 1: no better than the mean vector).")


def _widths(text: str, option: str = "--encoder-layers") -> list[int]:
    """'80,40' -> [80, 40]; a bad list is one clear line."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise SparsecodeError(f"{option} must be comma-separated whole numbers such as 80,40 (got {text!r})") from None


def _objective(cfg: TrainConfig) -> str:
    """How the start-up line names the objective."""
    extra = {"topk": f"k={cfg.resolved('k')}", "batchtopk": f"k={cfg.resolved('k')} per word on average",
             "kl": f"rho={cfg.resolved('rho')}, beta={cfg.resolved('beta')}", "l1": f"l1-coef={cfg.resolved('l1_coef')}",
             "spine": f"rho*={cfg.resolved('rho')}"}[cfg.sparsity]
    layers = f", layers {','.join(map(str, cfg.encoder_layers))}" if cfg.encoder_layers else ""
    noise = f", noise {cfg.resolved('noise')}" if cfg.resolved("noise") else ""
    return f"{cfg.sparsity} ({extra}){layers}{noise}"


@app.command()
def encode(
    run_dir: Path = typer.Argument(..., help="Run directory written by 'sparsecode train'."),
    embeddings: Path = typer.Argument(..., help=EMBEDDINGS_HELP),
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="Codes file to write (HDF5).",
                                            show_default="RUN_DIR/codes.h5"),
    k: Optional[int] = typer.Option(None, "--k", help="Active units per word.", show_default="the run's encode k"),
    method: str = choice(ENCODE.method, METHODS, "encoder (fast) or omp (orthogonal matching pursuit over the "
                                                 "decoder: closer codes, slower).", "--method"),
    nonneg: bool = typer.Option(ENCODE.nonneg, "--nonneg", help="With --method omp: keep every coefficient > 0, like the "
                                                               "encoder's."),
    top_words: int = typer.Option(ENCODE.top_words, help="Top words stored per unit."),
    batch_size: int = typer.Option(ENCODE.batch_size, help="Words encoded at a time."),
    device: str = choice(ENCODE.device, DEVICES, "Where to encode; auto: CUDA when available, cuda:N the GPU N."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help=VOCAB_HELP),
) -> None:
    """Encode embeddings into sparse codes.  Example: sparsecode encode run emb.h5 --out codes.h5"""
    from .encoding import default_codes_path, encode_file

    out_file = out_file if out_file is not None else default_codes_path(run_dir)
    with user_errors(), LiveBar("encode", enabled=not quiet) as bar:
        summary = encode_file(run_dir, embeddings, out_file, k=k, top_words=top_words, force=force, device=device,
                             batch_size=batch_size, progress=lambda done, total: bar.update(done, total),
                             method=method, nonneg=nonneg, vocab=vocab)
    summary = {**summary, "mean_l0": round(summary["mean_l0"], 2)}
    _print_summary(out_file, summary, ("words", "units", "k", "method", "nnz", "mean_l0", "zero_rows", "dead_units"))


def _mb_progress(bar: LiveBar):
    """A conversion's progress(bytes read, file size, words) as a bar in MB."""
    return lambda done, size, words: bar.update(done >> 20, max(1, size >> 20), status=f"{words:,} words")


def _without_nproc(args: list[str]) -> list[str]:
    """The command line without its --nproc option (what each process of the job runs)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _load_codes(path: Path):
    from .codes import load_codes

    return load_codes(path)


def _echo_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


#: Units the table of 'inspect' shows unless asked for more.
INSPECT_LIMIT = 20


@app.command()
def inspect(
    codes_file: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode'."),
    dim: Optional[int] = typer.Option(None, "--dim", help="Show one unit."),
    word: Optional[str] = typer.Option(None, "--word", help="Show a word's active units."),
    dead: bool = typer.Option(False, "--dead", help="List the units no word uses."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Show at most this many units in the table.",
                                        show_default=f"{INSPECT_LIMIT}; every unit with --json"),
    show_all: bool = typer.Option(False, "--all", help="Every unit in the table; with --dim, every word of the unit "
                                                       "(from the codes, not only the stored top words)."),
    sort: str = choice("id", UNIT_ORDERS, "Order of the units table: by id, by how many words use them (most "
                                          "first), or by purity (most coherent first).", "--sort"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the words of each hidden unit.  Example: sparsecode inspect codes.h5 --word king"""
    from .evaluate import dead_entry, unit_entry, unit_table, word_entry

    with user_errors():
        _check_inspect_options(dim, word, dead, limit, show_all)
        codes = _load_codes(codes_file)
        if dim is not None:
            data = unit_entry(codes, dim, every=show_all)
            return _echo_json(data) if as_json else _render_unit(data)
        if word is not None:
            data = word_entry(codes, word)
            return _echo_json(data) if as_json else _render_word(data)
        if dead:
            data = dead_entry(codes)
            return _echo_json(data) if as_json else _render_dead(data)
        if limit is None:
            limit = codes.n_units if show_all or as_json else INSPECT_LIMIT
        rows = unit_table(codes, sort=sort)[: max(limit, 0)]
        if as_json:
            return _echo_json({"units": rows, "words": len(codes.words), "n_units": codes.n_units, "sort": sort})
        _render_units(codes_file, codes, rows)


def _check_inspect_options(dim, word, dead: bool, limit, show_all: bool) -> None:
    """The combinations of inspect's options that make sense: one view, and --all or --limit where they apply."""
    if sum(x is not None and x is not False for x in (dim, word, dead or None)) > 1:
        raise SparsecodeError("use one of --dim, --word, --dead at a time")
    if show_all and (word is not None or dead):
        raise SparsecodeError("--all goes with --dim or the table of units, not with --word or --dead")
    if show_all and limit is not None:
        raise SparsecodeError("use one of --limit and --all")
    if limit is not None and limit < 0:
        raise SparsecodeError(f"--limit must be 0 or more (got {limit})")


def _render_unit(data: dict) -> None:
    """``inspect --dim``: the unit's words and activations."""
    every = "words" in data
    words = data["words"] if every else data["top_words"]
    table = Table(title=f"unit {data['unit']}: used by {data['frequency']:,} words")
    table.add_column("word")
    table.add_column("activation", justify="right")
    for entry in words:
        table.add_row(safe(entry["word"]), f"{entry['value']:.3f}")
    out.print(table)
    if not every and data["frequency"] > len(words):
        out.print(f"the {len(words)} strongest of {data['frequency']:,} words; --all lists every one", soft_wrap=True)


def _render_word(data: dict) -> None:
    """``inspect --word``: the word's active units and their top words."""
    table = Table(title=safe(f"'{data['word']}': {len(data['active_units'])} active units"))
    table.add_column("unit", justify="right")
    table.add_column("activation", justify="right")
    table.add_column("unit's top words")
    for entry in data["active_units"]:
        table.add_row(str(entry["unit"]), f"{entry['value']:.3f}", word_list(entry["top_words"]))
    out.print(table)


def _render_dead(data: dict) -> None:
    """``inspect --dead``: how many units no word uses, and their ids."""
    out.print(f"{data['count']} of {data['units']} units are dead (used by no word)")
    if data["dead_units"]:
        out.print(" ".join(map(str, data["dead_units"])), soft_wrap=True)


def _render_units(codes_file: Path, codes, rows: list[dict]) -> None:
    """The table of units (``inspect`` without a view), and how many more there are."""
    table = Table(title=safe(f"{codes_file}: {len(codes.words):,} words, {codes.n_units} units, "
                             f"mean L0 {codes.nnz / len(codes.words):.1f}"))
    table.add_column("unit", justify="right")
    table.add_column("words", justify="right")
    table.add_column("purity", justify="right")
    table.add_column("top words")
    for r in rows:
        mark = {"starved": " [dim](starved)[/]", "busy": " [bold](busy)[/]"}.get(r["use"], "")
        table.add_row(str(r["unit"]), f"{r['frequency']:,}{mark}", _fmt(r["purity"], 2), word_list(r["top_words"]))
    out.print(table)
    more = codes.n_units - len(rows)
    if more:
        out.print(f"{more:,} more unit{'s' if more > 1 else ''}: --limit N shows the first N, --all every one",
                  soft_wrap=True)


@app.command()
def neighbors(
    codes_file: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode'."),
    words: List[str] = typer.Argument(..., help="One or more query words."),
    top: int = typer.Option(DEFAULT_TOP, "--top", help="Neighbours per word."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Nearest words by cosine in code space.  Example: sparsecode neighbors codes.h5 king queen"""
    from .search import neighbors as find_neighbors

    with user_errors():
        result = find_neighbors(_load_codes(codes_file), list(words), top=top)
    if as_json:
        return _echo_json({w: [{"word": n, "cosine": c} for n, c in nbrs] for w, nbrs in result.items()})
    for w, nbrs in result.items():
        table = Table(title=safe(f"nearest to '{w}'"))
        table.add_column("#", justify="right")
        table.add_column("word")
        table.add_column("cosine", justify="right")
        for i, (n, c) in enumerate(nbrs, 1):
            table.add_row(str(i), safe(n), f"{c:.3f}")
        out.print(table)


@app.command()
def evaluate(
    codes_file: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode'."),
    model_dir: Optional[Path] = typer.Option(None, "--model", help="Run directory of the codes.",
                                             show_default="the run recorded in the codes file"),
    embeddings: Optional[Path] = typer.Option(None, "--embeddings", help="The original embeddings, in any format "
                                                                         "'convert' reads.",
                                              show_default="the run's training file"),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help=VOCAB_HELP + " (for --embeddings)"),
    wordsim: Path = typer.Option(DEFAULT_WORDSIM_DIR, "--wordsim", help="Folder of word-similarity files.",
                                 show_default="the word-sim folder shipped in sample_data"),
    seed: int = typer.Option(DEFAULT_SEED, help="Seed for DistRatio's intruder words and purity's chance."),
    worst: int = typer.Option(0, "--worst", help="List the N words the codes reconstruct worst (their own FVU and cosine)."),
    compare_methods: bool = typer.Option(False, "--compare-methods",
                                         help="Also encode with the encoder, OMP and non-negative OMP and compare them."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Reconstruction, sparsity health, word similarity and DistRatio of codes, beside the dense vectors.
    Example: sparsecode evaluate codes.h5 --model run --embeddings emb.h5"""
    from .evaluate import evaluate_file

    with user_errors():
        result, dense_dim = evaluate_file(codes_file, model_dir, embeddings, vocab, wordsim, seed=seed, worst=worst,
                                          compare=compare_methods)
    if as_json:
        return _echo_json(result)
    _render_evaluation(result, dense_dim)
    if "methods" in result:
        out.print(_methods_table(result["methods"]))


def _methods_table(compared: dict) -> Table:
    """The encoding methods compared at one k, a row each."""
    methods = dict(compared)
    k = methods.pop("k")
    table = Table(title=f"encoding methods at k={k}, whole vocabulary")
    for col in ("method", "FVU", "cosine", "mean L0", "dead %", "zero rows %", "seconds"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, st in methods.items():
        table.add_row(name, f"{st['fvu']:.4f}", f"{st['cosine']:.4f}", f"{st['mean_l0']:.1f}",
                      f"{100 * st['dead_fraction']:.1f}", f"{100 * st['zero_rows_fraction']:.2f}", f"{st['seconds']:.1f}")
    return table


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _render_evaluation(result: dict, dense_dim: int | None) -> None:
    sp = result["sparsity"]
    table = Table(title=safe(f"{result['codes']}: {sp['words']:,} words, {sp['units']} units"))
    table.add_column("measure")
    table.add_column("codes", justify="right")
    table.add_column("dense", justify="right")
    if "reconstruction" in result:
        rec = result["reconstruction"]
        table.add_row("FVU", _fmt(rec["fvu"], 4), "")
        table.add_row("cosine(x, x̂)", _fmt(rec["cosine"], 4), "")
    table.add_row("mean L0", f"{sp['mean_l0']:.2f}", str(dense_dim or ""))
    table.add_row("dead units", f"{sp['dead_units']} ({100 * sp['dead_fraction']:.1f}%)", "")
    table.add_row("always-on units (> 50% of words)", str(sp["always_on_units"]), "")
    table.add_row("all-zero rows", f"{sp['zero_rows']} ({100 * sp['zero_rows_fraction']:.2f}%)", "")
    bal = result["balance"]
    table.add_row("effective units (exp entropy of unit use)", f"{bal['effective_units']:.0f} of {bal['units']}", "")
    table.add_row("activation mass in the top 10% of units", f"{100 * bal['top10_mass_share']:.1f}%", "")
    table.add_row(f"starved units (< {bal['even_share'] / 10:.1f} words)", f"{bal['starved_units']} ({100 * bal['starved_fraction']:.1f}%)", "")
    table.add_row(f"busy units (> {bal['even_share'] * 10:.0f} words)", str(bal["busy_units"]), "")
    table.add_row("busiest unit's share of the words", f"{100 * bal['busiest_rate']:.1f}%", "")
    coh = result.get("coherence")
    if coh is not None:
        table.add_row(f"purity (WordNet supersenses; chance {coh['chance']:.3f})", _fmt(coh["purity"]), _fmt(coh["dense"]))
        table.add_row("units with a measurable purity", f"{coh['units_measured']} of {coh['units_measured'] + coh['units_skipped']}", "")
    if "dist_ratio" in result:
        dr = result["dist_ratio"]
        table.add_row("DistRatio (higher: more coherent)", _fmt(dr["codes"]["dist_ratio"]), _fmt(dr["dense"]["dist_ratio"]))
    out.print(table)
    if coh is None:
        out.print(f"purity not measured: WordNet knows fewer than {MIN_COVERAGE:.0%} of the words (English vocabularies only)")
    hist = Table(title="L0 histogram (words per number of active units)")
    hist.add_column("L0", justify="right")
    hist.add_column("words", justify="right")
    for l0, count in sp["l0_histogram"].items():
        hist.add_row(l0, f"{count:,}")
    out.print(hist)
    if result.get("reconstruction", {}).get("worst"):
        bad = Table(title=f"the {len(result['reconstruction']['worst'])} words reconstructed worst",
                    caption="error = the word's own FVU (1: no better than the mean vector)")
        for col in ("#", "word", "error", "cosine(x, x̂)"):
            bad.add_column(col, justify="left" if col == "word" else "right")
        for i, entry in enumerate(result["reconstruction"]["worst"], 1):
            bad.add_row(str(i), safe(entry["word"]), f"{entry['error']:.4f}", f"{entry['cosine']:.4f}")
        out.print(bad)
    if "word_similarity" in result:
        ws = result["word_similarity"]
        wt = Table(title="word similarity (Spearman of cosine)")
        for col in ("benchmark", "pairs found", "skipped", "codes", "dense"):
            wt.add_column(col, justify="left" if col == "benchmark" else "right")
        dense = ws.get("dense", {})
        for name, entry in ws["codes"].items():
            wt.add_row(safe(name), str(entry["found"]), str(entry["skipped"]), _fmt(entry["spearman"]),
                       _fmt(dense.get(name, {}).get("spearman")))
        wt.add_row("average (WS-353, SimLex, MEN, RW)", "", "", _fmt(ws.get("codes_average")),
                   _fmt(ws.get("dense_average")), style="bold")
        out.print(wt)


# The formats as choices, so that --help lists them and the shell completes them.
InputFormat = Enum("InputFormat", {f.replace("-", "_"): f for f in FORMATS}, type=str)
ExportFormat = Enum("ExportFormat", {f.replace("-", "_"): f for f in EXPORT_FORMATS}, type=str)


def _print_summary(out_file: Path, summary: dict, keys: tuple[str, ...]) -> None:
    out.print(safe(f"wrote {out_file}"), soft_wrap=True)  # a line of its own: a long path in the title would wrap
    table = Table(show_header=False)
    for key in keys:
        value = summary[key]
        table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) and not isinstance(value, bool)
                      else safe(value))
    out.print(table)


@app.command()
def convert(
    source: Path = typer.Argument(..., help="Embeddings: GloVe, word2vec or fastText text, word2vec binary, or .npy; "
                                            "gzipped or not."),
    out_file: Path = typer.Option(..., "--out", "-o", help="HDF5 file to write, with 'words' and 'vectors'."),
    fmt: InputFormat = typer.Option(InputFormat.auto, "--format", help="Input format; auto tells it from the content."),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help=VOCAB_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", help="Keep the first N words.", show_default="all"),
    lowercase: bool = typer.Option(False, "--lowercase", help="Lowercase the words (a word that then repeats is dropped)."),
    normalize: bool = typer.Option(False, "--normalize", help="Scale every vector to unit length."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Convert embeddings to sparsecode's HDF5, streaming; malformed lines are skipped and reported.

    Example: sparsecode convert glove.6B.50d.txt.gz --out glove50d.h5 --limit 50000
    """
    from .convert import convert_embeddings

    with user_errors(), LiveBar("reading (MB)", enabled=not quiet) as bar:
        summary = convert_embeddings(
            source, out_file, format=fmt.value, vocab=vocab, limit=limit, lowercase=lowercase, normalize=normalize,
            force=force, progress=_mb_progress(bar))
    if as_json:
        return _echo_json(summary)
    _print_summary(out_file, summary,
                   ("format", "words", "dim", "malformed", "duplicates"))


@app.command()
def export(
    codes_file: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode'."),
    out_file: Path = typer.Option(..., "--out", "-o", help="File to write."),
    fmt: ExportFormat = typer.Option(ExportFormat.auto, "--format",
                                     help="word2vec (text, for gensim), npz (scipy CSR + words), dense-h5 "
                                          "(words/vectors HDF5); auto goes by the name: .txt/.vec[.gz], .npz, .h5"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Write the codes in a format other tools read: gensim, scipy, numpy, any HDF5 reader.

    Example: sparsecode export codes.h5 --out codes.npz
    """
    from .export import export_codes

    with user_errors(), LiveBar("export", enabled=not quiet) as bar:
        summary = export_codes(codes_file, out_file, format=fmt.value, force=force,
                               progress=lambda done, total: bar.update(done, total))
    if as_json:
        return _echo_json(summary)
    _print_summary(out_file, summary, ("format", "words", "units", "nnz"))


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="Run directory written by 'sparsecode train'."),
    codes_file: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode' with that run."),
    out_file: Path = typer.Option(..., "--out", "-o", help="HTML file to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Write one self-contained HTML page: training curves, histograms, every unit with its top words.

    Example: sparsecode report run codes.h5 --out report.html
    """
    from .html_report import write_report

    with user_errors():
        summary = write_report(run_dir, codes_file, out_file, force=force)
    if as_json:
        return _echo_json(summary)
    out.print(safe(f"wrote {out_file}: {summary['units']:,} units, {summary['epochs']} epochs"
                   f"{', with evaluation.json' if summary['evaluation'] else ''} ({summary['bytes'] / 1e6:.1f} MB)"),
              soft_wrap=True)


@app.command()
@setting_options(TrainConfig, only=("hidden", "epochs", "seed", "device"))
def tradeoff(
    embeddings: Path = typer.Argument(..., help=EMBEDDINGS_HELP),
    ks: str = typer.Option("4,8,16,32", "--k", help="The k values to train, comma-separated."),
    words: int = typer.Option(20000, "--words", help="Train and measure on the first N words (0: all)."),
    settings: dict = None,  # --hidden, --epochs, --seed, --device as train has them (clihelp.setting_options)
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the curves as one HTML page."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help=VOCAB_HELP),
) -> None:
    """Fidelity against meaning: train a few k on a sample, measure FVU, word similarity and purity.

    Example: sparsecode tradeoff glove50k.h5 --k 4,8,16,32 --out tradeoff.html
    """
    from .convert import load_embeddings
    from .tradeoff import configs_for, sample_of, tradeoff as run_tradeoff, write_tradeoff_html

    with user_errors():
        k_values = _widths(ks, "--k")
        base = TrainConfig(**settings)
        configs_for(base, k_values)  # every setting checked before the embeddings are read
        if out_file is not None:
            from .atomic import check_output

            check_output(out_file, force)
        if words < 0:
            raise SparsecodeError(f"--words must be 0 (all) or more (got {words})")
        emb = sample_of(load_embeddings(embeddings, vocab), words)  # a bad file: its one-line error, before any training
        with LiveBar("tradeoff", enabled=not quiet) as bar:
            result = run_tradeoff(emb, k_values, base, progress=lambda i, n: bar.update(
                i, n, description=f"k={k_values[i]} ({i + 1}/{n})"))
        if out_file is not None:
            write_tradeoff_html(result, out_file, f"sparsecode tradeoff: {embeddings}", force=force)
    if as_json:
        return _echo_json(result)
    ref = result["reference"]
    table = Table(title=f"{embeddings}: first {result['words']:,} words x {result['dim']} -> {base.hidden} units, "
                        f"{base.epochs} epochs")
    for col in ("k", "FVU", "word similarity", "purity", "effective units", "starved %", "busiest %", "train s"):
        table.add_column(col, justify="right")
    for r in result["rows"]:
        table.add_row(str(r["k"]), f"{r['fvu']:.4f}", _fmt(r["word_similarity"]), _fmt(r["purity"]),
                      f"{r['effective_units']:.0f}", f"{100 * r['starved_fraction']:.1f}", f"{100 * r['busiest_rate']:.1f}",
                      f"{r['seconds']:.1f}")
    table.add_row("dense", "", _fmt(ref["word_similarity"]), _fmt(ref["purity_dense"]), "", "", "", "", style="bold")
    out.print(table)
    out.print(f"purity by chance: {_fmt(ref['purity_chance'])}" + (f"; wrote {out_file}" if out_file else ""), soft_wrap=True)


def main() -> None:
    """The console script. After a failed write HDF5 may be unable to close the file and crash
    at interpreter exit; in that case the process ends at once, with the exit code already set."""
    choose_threads()  # no more threads than the load leaves cores for (sparsecode.runtime)
    try:
        app()
    except SystemExit as exc:
        if _state["hard_exit"]:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        raise
