"""The ``sparsecode`` command line: parse, call the library, render with rich. Nothing else.

Errors from the library (:class:`~sparsecode.errors.SparsecodeError`) become one line on stderr,
``error: ...``, and exit code 1; library warnings become ``warning: ...`` lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from . import __version__
from .atomic import OutputWriteError
from .clihelp import Command, Group, choice, choices_of, flag, setting_options
from .config import DEVICES, TrainConfig
from .convert import FORMATS
from .encoding import EncodeSettings
from .errors import SettingError, SparsecodeError, TrainingInterrupted
from .evaluate import DEFAULT_SEED, DEFAULT_WORDSIM_DIR, UNIT_ORDERS
from .export import EXPORT_FORMATS
from .interpret import MIN_COVERAGE, collapse_warning
from .intrusion import DEFAULT_UNITS as INTRUSION_UNITS, MIN_WORDS as INTRUSION_MIN_WORDS
from .pursuit import METHODS
from .search import DEFAULT_TOP
from .runtime import choose_threads
from .terminal import error_line, safe, words as word_list

app = typer.Typer(
    help="Sparse, interpretable codes for pre-trained word embeddings (k-sparse autoencoder).",
    context_settings={"help_option_names": ["-h", "--help"]},  # -h as git, pip and uv take it
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
                err.print(error_line(message), soft_wrap=True)
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


class LiveBar:
    """A rich progress bar on a terminal that appears with the first update and vanishes when done
    (or on error), so that a failure prints only its error line and a success only its summary.

    Its times are rich's columns over the bar's whole count: ``elapsed H:MM:SS`` since the first
    update, ``left H:MM:SS`` from the recent rate. ``count`` is the text shown beside the bar
    (default ``completed/total``: a training run counts the steps of its epoch there while the bar
    and its times follow the whole run)."""

    def __init__(self, description: str, enabled: bool = True):
        # Only on a terminal: elsewhere rich draws no bar, only an empty line where it stopped.
        self.description, self.enabled = description, enabled and err.is_terminal
        self.progress: Progress | None = None

    def update(self, completed: float, total: float | None, description: str | None = None, status: str = "",
               count: str | None = None) -> None:
        if not self.enabled:
            return
        fields = dict(completed=completed, total=total, status=status, description=description or self.description,
                      count=count if count is not None else f"{completed}/{total}")
        if self.progress is None:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                TextColumn("{task.fields[status]}"), TextColumn("elapsed"), TimeElapsedColumn(),
                TextColumn("left"), TimeRemainingColumn(), console=err, transient=True,
            )
            self.task = self.progress.add_task(**fields)
            self.progress.start()
        self.progress.update(self.task, **fields)
        self.progress.refresh()  # every update is a frame: few enough (train reports 20 times an epoch)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __enter__(self) -> "LiveBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TrainView:
    """A training run's events (:mod:`sparsecode.events`) on stderr: the conversion's bar, the
    start-up lines, the training bar (the epoch's steps, the run's times), a collapse as it happens."""

    def __init__(self, cfg: TrainConfig, out_dir: Path, named: bool, quiet: bool):
        self.cfg, self.out_dir, self.named, self.quiet = cfg, out_dir, named, quiet
        self.converting = LiveBar("converting (MB)", enabled=not quiet)
        self.bar = LiveBar("train", enabled=not quiet)

    def __call__(self, event) -> None:
        from .events import Collapse, Converting, Progress, Started

        if isinstance(event, Converting):
            _mb_progress(self.converting)(event.done, event.size, event.words)
        elif isinstance(event, Started):
            self.converting.close()
            if not self.quiet:
                self._started(event)
        elif isinstance(event, Progress):
            self.bar.update(event.step, event.total_steps, description=f"epoch {event.epoch}/{self.cfg.epochs}",
                            status=_train_status(event), count=f"{event.epoch_step}/{event.epoch_steps}")
        elif isinstance(event, Collapse):
            err.print(Text.assemble(("warning:", "yellow"), " ", safe(event.message)), soft_wrap=True)

    def _started(self, event) -> None:
        cfg = self.cfg
        if event.converted_from is not None:
            err.print(safe(f"read {event.converted_from} through {event.source} (converted once, reused while "
                           f"{Path(event.converted_from).name} is unchanged)"), soft_wrap=True)
        if event.resumed_from is not None:
            err.print(safe(f"resuming {self.out_dir} from its checkpoint at step {event.resumed_from:,}"), soft_wrap=True)
        err.print(safe(f"training on {event.words:,} words x {event.dim} dims -> {cfg.hidden} units, {_objective(cfg)}"
                       + (f", {100 * cfg.holdout:g}% of the words held out" if cfg.holdout else "")
                       + (f", {event.processes} processes" if event.processes > 1 else "")
                       + ("" if self.named else f"; the run goes to {self.out_dir}/ (no --out given)")), soft_wrap=True)

    def __enter__(self) -> "TrainView":
        return self

    def __exit__(self, *exc) -> None:
        self.converting.close()
        self.bar.close()


#: train --help's panels of settings, in this order after its own options.
TRAIN_PANELS = {
    "Model": ("hidden", "sparsity", "k", "encode_k", "encoder_layers", "init", "geometry"),
    "Other objectives, noise": ("rho", "beta", "l1_coef", "noise"),
    "Optimisation": ("epochs", "batch_size", "lr", "k_anneal_from", "k_anneal_frac", "holdout", "rank_power", "seed"),
    "Unit health": ("balance", "homeostasis", "aux_coef", "aux_k"),
    "Hardware": ("device", "checkpoint_every"),
}


@app.command(cls=Command)
@setting_options(TrainConfig, panels=TRAIN_PANELS)
def train(
    embeddings: Path = typer.Argument(..., help=EMBEDDINGS_HELP),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory to create.",
                                           show_default="runs/NAME, NAME the input's"),
    settings: dict = None,  # one option per setting of TrainConfig (sparsecode.clihelp.setting_options)
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its checkpoint."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing run directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or start-up line."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output: the metrics per epoch and the summary."),
    nproc: int = typer.Option(1, "--nproc", help="Processes on this machine, each on a GPU of its own with --device auto "
                                                 "or cuda (torchrun, DistributedDataParallel).", rich_help_panel="Hardware"),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help=VOCAB_HELP),
) -> None:
    """Train a k-sparse autoencoder.

    Example: sparsecode train sample_data/glove.6B.50d.5k.h5 --out run
    """
    from .distributed import current_rank, launch
    from .rundir import default_run_dir
    from .training import train as run_training

    _state["rank"] = current_rank()  # in a torchrun job, process 0 speaks for all
    with user_errors():
        cfg = TrainConfig(**{**settings, "encoder_layers": _widths(settings["encoder_layers"])})
    if nproc != 1:
        with user_errors():
            _check_launch(cfg, nproc)
        raise typer.Exit(launch(nproc, _without_nproc(sys.argv[1:])))
    with user_errors():
        cfg.validate()
        named = out_dir is not None
        out_dir = out_dir if named else default_run_dir(embeddings)
        with TrainView(cfg, out_dir, named, quiet or _state["rank"] != 0) as view:
            result = run_training(embeddings, cfg, out_dir=out_dir, force=force, resume=resume, vocab=vocab, events=view)
    if _state["rank"] != 0:
        return None
    units = _read_units(result, Path(result.run_info["embeddings"]), cfg)  # the file training read
    if as_json:
        return _echo_json({"out": str(out_dir), "metrics": result.metrics, "summary": result.summary, "units": units})
    out.print(_epoch_table(out_dir, result.metrics, result.summary))
    _print_training_summary(result, cfg, result.run_info["n_words"], units)


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


def _figures_table(title) -> Table:
    """A table of figures whose headers are short lines ("eff.\\nunits"), without vertical rules: 11
    columns fit 80 (a small terminal's width, and a pipe's) without an ellipsis."""
    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0), pad_edge=False)


def _epoch_table(out_dir: Path, metrics: list[dict], s: dict) -> Table:
    """A training run's figures per epoch and its final ones (with the held-out words' when some were)."""
    held = "holdout_words" in s
    table = _figures_table(safe(f"trained {out_dir}"))
    for col in ("epoch", "loss", "FVU", "mean\nL0", "dead\n%", "zero\nrows\n%", "eff.\nunits", "starved\n%", "time\n(s)",
                *(("held\nout\nFVU", "held\nout\ndead %") if held else ())):
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


def _read_units(result, source: Path, cfg: TrainConfig) -> dict | None:
    """What a reader sees of the trained units (:func:`sparsecode.tradeoff.reader_figures`)."""
    from .tradeoff import reader_figures

    try:  # the run is saved by now: a failure here (the file moved, say) must not make it look failed
        with warnings.catch_warnings():  # the file's warnings were shown when training read it
            warnings.simplefilter("ignore")
            return reader_figures(result.model, source, result.summary["k"], cfg.seed)
    except SparsecodeError as exc:
        err.print(safe(f"warning: the units' figures were not measured: {exc}"), soft_wrap=True)
        return None


def _print_training_summary(result, cfg: TrainConfig, n_words: int, units: dict | None = None) -> None:
    """The lines under the epoch table: what the final figures measure and mean, what a reader sees
    of the units, and a collapse warning."""
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
    if units is not None:
        out.print(f"units as a reader sees them (top 10 words among the first {units['words']:,}): purity "
                  f"{_fmt(units['purity'])}, strict purity {_fmt(units['strict_purity'])}, readable units "
                  f"{_percent(units['readable_units'])}, non-words {_percent(units['non_words'])}; "
                  "'sparsecode evaluate CODES --baselines' sets them beside k-means clusters", soft_wrap=True)
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


@app.command(cls=Command)
def encode(
    run_dir: Path = typer.Argument(..., help="Run directory written by 'sparsecode train', or its model.pt alone "
                                             "(a file, or a folder that holds only it)."),
    embeddings: Path = typer.Argument(..., help=EMBEDDINGS_HELP),
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="Codes file to write (HDF5).",
                                            show_default="RUN_DIR/codes.h5, beside a model.pt"),
    k: Optional[int] = typer.Option(None, "--k", help="Active units per word.", show_default="the run's encode k"),
    method: str = choice(ENCODE.method, METHODS, "encoder (fast) or omp (orthogonal matching pursuit over the "
                                                 "decoder: closer codes, slower).", "--method"),
    nonneg: bool = typer.Option(ENCODE.nonneg, "--nonneg", help="With --method omp: keep every coefficient > 0, like the "
                                                               "encoder's."),
    top_words: int = typer.Option(ENCODE.top_words, help="Top words stored per unit."),
    top_among: int = typer.Option(ENCODE.top_among, help="Rank a unit's top words among the first this many words "
                                                         "(files list the most frequent first); 0: all."),
    batch_size: int = typer.Option(ENCODE.batch_size, help="Words encoded at a time."),
    device: str = choice(ENCODE.device, DEVICES, "Where to encode; auto: CUDA when available, cuda:N the GPU N."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help=VOCAB_HELP),
) -> None:
    """Encode embeddings into sparse codes.

    Example: sparsecode encode run emb.h5 --out codes.h5
    """
    from .encoding import default_codes_path, encode_file

    out_file = out_file if out_file is not None else default_codes_path(run_dir)
    with user_errors(), LiveBar("encode", enabled=not quiet) as bar:
        summary = encode_file(run_dir, embeddings, out_file, k=k, top_words=top_words, top_among=top_among, force=force,
                              device=device, batch_size=batch_size, progress=lambda done, total: bar.update(done, total),
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


@app.command(cls=Command)
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
                                          "first), by purity (most coherent first) or by strict purity (all top "
                                          "10 words counted; highest first).", "--sort"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the words of each hidden unit.

    Example: sparsecode inspect codes.h5 --word king
    """
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
    if limit is not None and limit < 1:
        raise SparsecodeError(f"--limit must be at least 1 (got {limit})")


def _render_unit(data: dict) -> None:
    """``inspect --dim``: the unit's words and activations."""
    every = "words" in data
    words = data["words"] if every else data["top_words"]
    out.print(safe(f"unit {data['unit']}: {data['name']['label']}"), soft_wrap=True)  # its name, a line of its own
    title = f"unit {data['unit']}: used by {data['frequency']:,} words"
    table = Table(title=title, min_width=len(title) + 2)  # the title on one line, however short the words
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
    table.add_column("name")
    table.add_column("unit's top words")
    for entry in data["active_units"]:
        table.add_row(str(entry["unit"]), f"{entry['value']:.3f}", safe(entry["name"]["label"]),
                      word_list(entry["top_words"]))
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
    table.add_column("strict", justify="right")
    table.add_column("name")
    among = int(codes.attrs.get("top_among", 0))
    table.add_column(f"top words among the first {among:,}" if 0 < among < len(codes.words) else "top words")
    for r in rows:
        mark = {"starved": " [dim](starved)[/]", "busy": " [bold](busy)[/]"}.get(r["use"], "")
        table.add_row(str(r["unit"]), f"{r['frequency']:,}{mark}", _fmt(r["purity"], 2), _fmt(r["strict_purity"], 1),
                      safe(r["name"]["label"]),
                      word_list(r["top_words"]))
    out.print(table)
    more = codes.n_units - len(rows)
    if more:
        out.print(f"{more:,} more unit{'s' if more > 1 else ''}: --limit N shows the first N, --all every one",
                  soft_wrap=True)


@app.command(cls=Command)
def neighbors(
    codes_file: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode'."),
    words: List[str] = typer.Argument(..., help="One or more query words."),
    top: int = typer.Option(DEFAULT_TOP, "--top", help="Neighbours per word."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Nearest words by cosine in code space.

    Example: sparsecode neighbors codes.h5 king queen
    """
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


@app.command(cls=Command)
def evaluate(
    codes_file: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode'."),
    model_dir: Optional[Path] = typer.Option(None, "--model", help="Run directory of the codes.",
                                             show_default="the run recorded in the codes file"),
    embeddings: Optional[Path] = typer.Option(None, "--embeddings", help="The original embeddings, in any format "
                                                                         "'convert' reads.",
                                              show_default="the run's training file"),
    vocab: Optional[Path] = typer.Option(None, "--vocab", help=VOCAB_HELP + " (for --embeddings)"),
    wordsim: Path = typer.Option(DEFAULT_WORDSIM_DIR, "--wordsim", help="Folder of word-similarity files.",
                                 show_default="the 13 English benchmarks shipped with sparsecode"),
    seed: int = typer.Option(DEFAULT_SEED, help="Seed for DistRatio's intruder words and purity's chance."),
    worst: int = typer.Option(0, "--worst", help="List the N words the codes reconstruct worst (their own FVU and cosine)."),
    compare_methods: bool = typer.Option(False, "--compare-methods",
                                         help="Also encode with the encoder, OMP and non-negative OMP and compare them."),
    baselines: bool = typer.Option(False, "--baselines", help="Also measure H spherical k-means clusters of the same "
                                                              "words (seeded by --seed), beside the units."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Reconstruction, sparsity health, word similarity and DistRatio of codes, beside the dense vectors.

    Example: sparsecode evaluate codes.h5 --model run --embeddings emb.h5
    """
    from .evaluate import evaluate_file

    with user_errors(), LiveBar("evaluate") as bar:
        bar.update(0, None, status="reading and measuring the codes", count="")  # its clock runs meanwhile
        result, dense_dim = evaluate_file(codes_file, model_dir, embeddings, vocab, wordsim, seed=seed, worst=worst,
                                          compare=compare_methods, baselines=baselines)
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
        table.add_row(name, _fmt(st["fvu"], 4), f"{st['cosine']:.4f}", f"{st['mean_l0']:.1f}",
                      f"{100 * st['dead_fraction']:.1f}", f"{100 * st['zero_rows_fraction']:.2f}", f"{st['seconds']:.1f}")
    return table


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _coherence_rows(table: Table, coh: dict, kmeans: dict | None) -> None:
    """Purity, strict purity, readable units and non-words of the codes, beside the dense dimensions
    and the k-means clusters when measured."""
    dense = coh["baselines"].get("dense") or {}
    base = [dense, kmeans] if kmeans is not None else [dense]

    def row(label: str, key: str, show) -> None:
        table.add_row(label, show(coh[key]), *(show(b.get(key)) for b in base))

    row(f"purity (WordNet supersenses; chance {coh['chance']:.3f})", "purity", _fmt)
    table.add_row("units with a measurable purity", f"{coh['units_measured']} of {coh['units_measured'] + coh['units_skipped']}", "")
    row(f"strict purity (all top 10 words; chance {coh['strict_chance']:.3f})", "strict_purity", _fmt)
    row("readable units (strict purity >= 0.5)", "readable_units", _percent)
    row("non-words among the top 10 words", "non_words", _percent)


def _percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _render_evaluation(result: dict, dense_dim: int | None) -> None:
    sp = result["sparsity"]
    table = Table(title=safe(f"{result['codes']}: {sp['words']:,} words, {sp['units']} units"))
    table.add_column("measure")
    table.add_column("codes", justify="right")
    table.add_column("dense", justify="right")
    coh = result.get("coherence")
    kmeans = (coh or {}).get("baselines", {}).get("kmeans")
    if kmeans is not None:
        table.add_column(f"k-means ({kmeans['clusters']:,} clusters)", justify="right")
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
    if coh is not None:
        _coherence_rows(table, coh, kmeans)
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


@app.command(cls=Command)
def convert(
    source: Path = typer.Argument(..., help="Embeddings: GloVe, word2vec or fastText text, word2vec binary, or .npy; "
                                            "gzipped or not."),
    out_file: Path = typer.Option(..., "--out", "-o", help="HDF5 file to write, with 'words' and 'vectors'."),
    fmt: InputFormat = typer.Option(InputFormat.auto, "--format",
                                    **choices_of(FORMATS, "Input format; auto tells it from the content.")),
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


@app.command(cls=Command)
def export(
    codes_file: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode'."),
    out_file: Path = typer.Option(..., "--out", "-o", help="File to write."),
    fmt: ExportFormat = typer.Option(ExportFormat.auto, "--format",
                                     **choices_of(EXPORT_FORMATS, "word2vec (text, for gensim), npz (scipy CSR + words), "
                                                  "dense-h5 (words/vectors HDF5); auto goes by the name: "
                                                  ".txt/.vec[.gz], .npz, .h5.")),
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


@app.command(cls=Command)
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


@app.command(cls=Command)
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
            result = run_tradeoff(emb, k_values, base, events=lambda i, event: _tradeoff_progress(bar, k_values, base.epochs, i, event))
        if out_file is not None:
            write_tradeoff_html(result, out_file, f"sparsecode tradeoff: {embeddings}", force=force)
    if as_json:
        return _echo_json(result)
    ref = result["reference"]
    table = _figures_table(safe(f"{embeddings}: first {result['words']:,} words x {result['dim']} -> {base.hidden} "
                                f"units, {base.epochs} epochs"))
    for col in ("k", "FVU", "word\nsim.", "purity", "strict\npurity", "read-\nable\n%", "non-\nwords\n%",
                "eff.\nunits", "starv-\ned\n%", "busi-\nest\n%", "train\n(s)"):
        table.add_column(col, justify="right")
    share = lambda v: "—" if v is None else f"{100 * v:.1f}"  # noqa: E731 (the header says %)
    for r in result["rows"]:
        table.add_row(str(r["k"]), f"{r['fvu']:.4f}", _fmt(r["word_similarity"]), _fmt(r["purity"]),
                      _fmt(r["strict_purity"]), share(r["readable_units"]), share(r["non_words"]),
                      f"{r['effective_units']:.0f}", f"{100 * r['starved_fraction']:.1f}", f"{100 * r['busiest_rate']:.1f}",
                      f"{r['seconds']:.1f}")
    table.add_row("dense", "", _fmt(ref["word_similarity"]), _fmt(ref["purity_dense"]), _fmt(ref["strict_purity_dense"]),
                  share(ref["readable_units_dense"]), share(ref["non_words_dense"]), "", "", "", "", style="bold")
    km = ref.get("kmeans")
    if km is not None:
        table.add_row(f"k-means ({km['clusters']:,})", "", "", _fmt(km["purity"]), _fmt(km["strict_purity"]),
                      share(km["readable_units"]), share(km["non_words"]), "", "", "", "", style="bold")
    out.print(table)
    out.print(f"purity by chance: {_fmt(ref['purity_chance'])}" + (f"; wrote {out_file}" if out_file else ""), soft_wrap=True)


def _tradeoff_progress(bar: LiveBar, k_values: list[int], epochs: int, i: int, event) -> None:
    """The tradeoff's bar: models trained so far, counted in fractions of a model as each one trains."""
    from .events import Progress

    if isinstance(event, Progress):
        n = len(k_values)
        bar.update(i + event.step / event.total_steps, n, description=f"k={k_values[i]} ({i + 1}/{n})", count=f"{i}/{n}",
                   status=f"epoch {event.epoch}/{epochs}")


@app.command(cls=Command)
def compare(
    run_a: Path = typer.Argument(..., help="A run directory (its codes.h5 gives the top words) or a codes file."),
    run_b: Path = typer.Argument(..., help="Another, trained on the same embeddings (the same D; any number of units)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the random pairs shown."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Match two runs' units one to one by the cosine of their decoder rows: how many come back.

    Example: sparsecode compare runs/seed0 runs/seed1
    """
    from .compare import THRESHOLDS, compare_runs

    with user_errors():
        result = compare_runs(run_a, run_b, seed=seed)
    if as_json:
        return _echo_json(result)
    out.print(safe(f"{result['run_a']} ({result['units_a']:,} units) against {result['run_b']} "
                   f"({result['units_b']:,} units): {result['matched']:,} pairs, optimal one-to-one matching by cosine"),
              soft_wrap=True)
    table = Table(show_header=False)
    for t in THRESHOLDS:
        table.add_row(f"share of pairs above cosine {t}", f"{result[f'above_{t}']:.1%}")
    table.add_row("median cosine", f"{result['median']:.3f}")
    table.add_row("mean cosine", f"{result['mean']:.3f}")
    out.print(table)
    for kind in ("best", "worst", "random"):
        pairs = Table(title=f"{kind} pairs")
        for col in ("cosine", "unit A", "top words of A", "unit B", "top words of B"):
            pairs.add_column(col, justify="right" if col in ("cosine", "unit A", "unit B") else "left")
        for p in result["pairs"][kind]:
            pairs.add_row(f"{p['cosine']:.3f}", str(p["unit_a"]), word_list(p["words_a"] or []), str(p["unit_b"]),
                          word_list(p["words_b"] or []))
        out.print(pairs)
    for run in result["without_words"]:
        err.print(safe(f"warning: {run}/codes.h5 is not there, so its units are shown without words; "
                       f"'sparsecode encode {run} EMB' writes it"), soft_wrap=True)


@app.command(cls=Command)
def intrusion(
    source: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode' (with --score: the answers, "
                                            "a CSV with the key's columns task,word)."),
    units: int = typer.Option(INTRUSION_UNITS, "--units", help="Tasks to draw, one unit each."),
    min_words: int = typer.Option(INTRUSION_MIN_WORDS, "--min-words", help="Draw among the units at least this many "
                                                                             "words use."),
    seed: int = typer.Option(0, "--seed", help="Seed for the units, the intruders and the order of the words."),
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="Tasks to write (CSV: task,word1..word5)."),
    key: Optional[Path] = typer.Option(None, "--key", help="The answer key to write with --out (CSV: task,word,unit)."),
    score: Optional[Path] = typer.Option(None, "--score", help="Score the answers SOURCE against this key."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Answer the tasks automatically, by the word farthest "
                                        "from the other four by cosine in EMB (any format 'convert' reads), or in the "
                                        "dense vectors of the codes' run with 'dense'; k-means clusters of the same "
                                        "words beside them."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Word-intrusion tasks: write them with their key, score answers, or let an automatic judge take them.

    Example: sparsecode intrusion codes.h5 --units 100 --out tasks.csv --key key.csv
    """
    from .intrusion import check_intrusion_options, intrusion_tasks, judge_file, score_answers

    with user_errors():
        check_intrusion_options(out_file, key, score, judge)
        if score is not None:
            result = score_answers(score, source)
        elif judge is not None:
            result = judge_file(source, judge, units=units, seed=seed, min_words=min_words)
        else:
            result = intrusion_tasks(source, out_file, key, units=units, seed=seed, min_words=min_words, force=force)
    if as_json:
        return _echo_json(result)
    if score is not None:
        out.print(f"{_share(result)} of the intruders found (chance {result['chance']:.0%})"
                  + (f"; {result['unanswered']} task(s) unanswered" if result["unanswered"] else ""), soft_wrap=True)
    elif judge is not None:
        table = Table(title=safe(f"automatic judge ({result['judge']}): the word farthest from the other four"))
        for col in ("tasks of", "tasks", "judged", "intruders found", "95% interval", "chance"):
            table.add_column(col, justify="left" if col == "tasks of" else "right")
        for name in ("codes", "kmeans"):
            r = result.get(name)
            if r is not None:
                table.add_row(name if name == "codes" else f"k-means, {result['clusters']:,} clusters", str(r["drawn"]),
                              str(r["tasks"]), _fmt(r["accuracy"]), f"{r['low']:.3f}-{r['high']:.3f}",
                              f"{r['chance']:.2f}")
        out.print(table)
    else:
        out.print(safe(f"wrote {result['tasks']} tasks to {out_file} and their key to {key}; people answer in a copy "
                       f"of the key's columns (task,word), scored with: sparsecode intrusion ANSWERS.csv --score {key}"),
                  soft_wrap=True)


def _share(r: dict) -> str:
    """``34 of 50 (68.0%, 95% interval 54.2%-79.2%)``."""
    if not r["tasks"]:
        return "no tasks answered, so none"
    return f"{r['found']} of {r['tasks']} ({r['accuracy']:.1%}, 95% interval {r['low']:.1%}-{r['high']:.1%})"


def _in_a_job() -> bool:
    """Whether this process is still in a torch.distributed job: on an error or a stop its process
    group is left as it is (:func:`sparsecode.distributed.session`)."""
    tdist = sys.modules.get("torch.distributed")
    return tdist is not None and tdist.is_available() and tdist.is_initialized()


def main() -> None:
    """The console script. After a failed write HDF5 may be unable to close the file and crash
    at interpreter exit, and a process that leaves a job of several on an error or a stop can abort
    there as its process group is torn down ("terminate called without an active exception", seen
    once in a stop of two processes); in both cases the process ends at once, with the exit code
    already set and everything it writes already closed."""
    choose_threads()  # no more threads than the load leaves cores for (sparsecode.runtime)
    try:
        app()
    except SystemExit as exc:
        if _state["hard_exit"] or (exc.code not in (0, None) and _in_a_job()):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        raise
