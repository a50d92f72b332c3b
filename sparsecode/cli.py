"""The ``sparsecode`` command line: parse, call the library, render with rich. Nothing else.

Errors from the library (:class:`~sparsecode.errors.SparsecodeError`) become one line on stderr,
``error: ...``, and exit code 1; library warnings become ``warning: ...`` lines.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__
from .config import TrainConfig
from .errors import SparsecodeError

app = typer.Typer(
    help="Sparse, interpretable codes for pre-trained word embeddings (k-sparse autoencoder).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
DEFAULTS = TrainConfig()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one clean line and a non-zero exit; show warnings as lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except SparsecodeError as exc:
            _print_warnings(caught)
            err.print(f"[bold red]error:[/] {exc}", markup=True, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]: nothing was written", soft_wrap=True)
            raise typer.Exit(130) from None
    _print_warnings(caught)


def _print_warnings(caught) -> None:
    for w in caught:
        if issubclass(w.category, UserWarning):
            err.print(f"[yellow]warning:[/] {w.message}", soft_wrap=True)


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
    """A rich progress bar that appears with the first update and vanishes when done (or on error),
    so that a failure prints only its error line and a success only its summary."""

    def __init__(self, description: str, enabled: bool = True):
        self.description, self.enabled = description, enabled
        self.progress: Progress | None = None

    def update(self, completed: int, total: int | None, description: str | None = None, status: str = "") -> None:
        if not self.enabled:
            return
        if self.progress is None:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=err, transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=total, status="")
        self.progress.update(self.task, completed=completed, total=total,
                             description=description or self.description, status=status)

    def __enter__(self) -> "LiveBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


@app.command()
def train(
    embeddings: Path = typer.Argument(..., help="HDF5 file with 'words' and 'vectors'."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Run directory to create (model.pt, config.json, metrics.jsonl)."),
    hidden: int = typer.Option(DEFAULTS.hidden, help="Hidden units H (code dimensions)."),
    k: int = typer.Option(DEFAULTS.k, help="Active units per word."),
    epochs: int = typer.Option(DEFAULTS.epochs, help="Passes over the vocabulary."),
    batch_size: int = typer.Option(DEFAULTS.batch_size, help="Words per step."),
    lr: float = typer.Option(DEFAULTS.lr, help="Peak Adam learning rate (warm-up, then cosine decay)."),
    k_anneal_from: Optional[int] = typer.Option(None, help="Anneal k from this value down to --k  [default: no annealing]"),
    k_anneal_frac: float = typer.Option(DEFAULTS.k_anneal_frac, help="Fraction of training over which k is annealed."),
    encode_k: Optional[int] = typer.Option(None, help="k used when encoding (their αk)  [default: --k]"),
    seed: int = typer.Option(DEFAULTS.seed, help="Random seed."),
    device: str = typer.Option(DEFAULTS.device, help="auto, cpu or cuda."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing run directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a k-sparse autoencoder.  Example: sparsecode train sample_data/glove.6B.50d.5k.h5 --out run"""
    from .atomic import check_output
    from .embeddings import load_embeddings
    from .train import train as run_training

    cfg = TrainConfig(hidden=hidden, k=k, epochs=epochs, batch_size=batch_size, lr=lr, k_anneal_from=k_anneal_from,
                      k_anneal_frac=k_anneal_frac,
                      encode_k=encode_k, seed=seed, device=device)
    with user_errors():
        cfg.validate()
        check_output(out_dir, force)
        emb = load_embeddings(embeddings)
        err.print(f"training on {len(emb):,} words x {emb.dim} dims -> {hidden} units, k={k}")
        with LiveBar("train", enabled=not quiet) as bar:
            result = run_training(emb, cfg, out_dir=out_dir, force=force, progress=lambda p: bar.update(
                p.step, p.total_steps, description=f"epoch {p.epoch}/{cfg.epochs}",
                status=f"loss {p.loss:.4f}  FVU {p.fvu:.4f}  dead {100 * p.dead_fraction:.1f}%"))

    table = Table(title=f"trained {out_dir}")
    for col in ("epoch", "loss", "FVU", "mean L0", "dead %", "zero rows %", "seconds"):
        table.add_column(col, justify="right")
    for m in result.metrics:
        table.add_row(str(m["epoch"]), f"{m['loss']:.4f}", f"{m['fvu']:.4f}", f"{m['mean_l0']:.1f}",
                      f"{100 * m['dead_fraction']:.1f}", f"{100 * m['zero_rows_fraction']:.2f}", f"{m['seconds']:.1f}")
    s = result.summary
    table.add_row("final", "", f"{s['fvu']:.4f}", f"{s['mean_l0']:.1f}", f"{100 * s['dead_fraction']:.1f}",
                  f"{100 * s['zero_rows_fraction']:.2f}", f"{s['train_seconds']:.1f}", style="bold")
    out.print(table)
    out.print(f"final: all {len(emb):,} words encoded with k={s['k']}; cosine(x, x̂) {s['cosine']:.3f}")


@app.command()
def encode(
    run_dir: Path = typer.Argument(..., help="Run directory written by 'sparsecode train'."),
    embeddings: Path = typer.Argument(..., help="HDF5 file with 'words' and 'vectors' to encode."),
    out_file: Path = typer.Option(..., "--out", "-o", help="Codes file to write (HDF5)."),
    k: Optional[int] = typer.Option(None, "--k", help="Active units per word  [default: the run's encode k]"),
    method: str = typer.Option("encoder", "--method", help="encoder (fast) or omp (orthogonal matching pursuit over the decoder: closer codes, slower)."),
    nonneg: bool = typer.Option(False, "--nonneg", help="With --method omp: keep every coefficient > 0, like the encoder's."),
    top_words: int = typer.Option(10, help="Top words stored per unit."),
    batch_size: int = typer.Option(8192, help="Words encoded at a time."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Encode embeddings into sparse codes.  Example: sparsecode encode run emb.h5 --out codes.h5"""
    from .encode import encode as run_encode

    with user_errors(), LiveBar("encode", enabled=not quiet) as bar:
        summary = run_encode(run_dir, embeddings, out_file, k=k, top_words=top_words, force=force, device=device,
                             batch_size=batch_size, progress=lambda done, total: bar.update(done, total),
                             method=method, nonneg=nonneg)
    table = Table(title=f"wrote {out_file}", show_header=False)
    for key in ("words", "units", "k", "method", "nnz", "mean_l0", "zero_rows", "dead_units"):
        value = summary[key]
        text = f"{value:.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)
        table.add_row(key.replace("_", " "), text)
    out.print(table)


def _load_codes(path: Path):
    from .codes import load_codes

    return load_codes(path)


def _echo_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@app.command()
def inspect(
    codes_file: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode'."),
    dim: Optional[int] = typer.Option(None, "--dim", help="Show one unit."),
    word: Optional[str] = typer.Option(None, "--word", help="Show a word's active units."),
    dead: bool = typer.Option(False, "--dead", help="List the units no word uses."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Show at most this many units in the table."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the words of each hidden unit.  Example: sparsecode inspect codes.h5 --word king"""
    with user_errors():
        if sum(x is not None and x is not False for x in (dim, word, dead or None)) > 1:
            raise SparsecodeError("use one of --dim, --word, --dead at a time")
        codes = _load_codes(codes_file)
        if dim is not None:
            codes.check_unit(dim)
            data = {"unit": dim, "frequency": int(codes.frequency[dim]),
                    "top_words": [{"word": w, "value": v} for w, v in codes.top_words(dim)]}
            if as_json:
                return _echo_json(data)
            table = Table(title=f"unit {dim}: used by {data['frequency']:,} words")
            table.add_column("word")
            table.add_column("activation", justify="right")
            for entry in data["top_words"]:
                table.add_row(entry["word"], f"{entry['value']:.3f}")
            return out.print(table)
        if word is not None:
            units = codes.active_units(word)
            data = {"word": word, "active_units": [
                {"unit": u, "value": v, "top_words": [w for w, _ in codes.top_words(u)]} for u, v in units]}
            if as_json:
                return _echo_json(data)
            table = Table(title=f"{word!r}: {len(units)} active units")
            table.add_column("unit", justify="right")
            table.add_column("activation", justify="right")
            table.add_column("unit's top words")
            for entry in data["active_units"]:
                table.add_row(str(entry["unit"]), f"{entry['value']:.3f}", ", ".join(entry["top_words"]))
            return out.print(table)
        if dead:
            ids = [int(u) for u in codes.dead_units()]
            if as_json:
                return _echo_json({"dead_units": ids, "count": len(ids), "units": codes.n_units})
            out.print(f"{len(ids)} of {codes.n_units} units are dead (used by no word)")
            if ids:
                out.print(" ".join(map(str, ids)), soft_wrap=True)
            return None
        shown = range(codes.n_units if limit is None else min(limit, codes.n_units))
        rows = [{"unit": u, "frequency": int(codes.frequency[u]), "top_words": [w for w, _ in codes.top_words(u)]} for u in shown]
        if as_json:
            return _echo_json({"units": rows, "words": len(codes.words), "n_units": codes.n_units})
        table = Table(title=f"{codes_file}: {len(codes.words):,} words, {codes.n_units} units, mean L0 {codes.nnz / len(codes.words):.1f}")
        table.add_column("unit", justify="right")
        table.add_column("words", justify="right")
        table.add_column("top words")
        for r in rows:
            table.add_row(str(r["unit"]), f"{r['frequency']:,}", ", ".join(r["top_words"]))
        out.print(table)


@app.command()
def neighbors(
    codes_file: Path = typer.Argument(..., help="Codes file written by 'sparsecode encode'."),
    words: List[str] = typer.Argument(..., help="One or more query words."),
    top: int = typer.Option(10, "--top", help="Neighbours per word."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Nearest words by cosine in code space.  Example: sparsecode neighbors codes.h5 king queen"""
    from .search import neighbors as find_neighbors

    with user_errors():
        result = find_neighbors(_load_codes(codes_file), list(words), top=top)
    if as_json:
        return _echo_json({w: [{"word": n, "cosine": c} for n, c in nbrs] for w, nbrs in result.items()})
    for w, nbrs in result.items():
        table = Table(title=f"nearest to {w!r}")
        table.add_column("#", justify="right")
        table.add_column("word")
        table.add_column("cosine", justify="right")
        for i, (n, c) in enumerate(nbrs, 1):
            table.add_row(str(i), n, f"{c:.3f}")
        out.print(table)


def main() -> None:
    app()
