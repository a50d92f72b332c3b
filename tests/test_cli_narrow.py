"""What a user sees at 80 columns (a small terminal, or any pipe): tables whose headers and
figures are whole, titles on one line, help that says only what the command does."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sparsecode.cli import app

from .conftest import SAMPLE
from .test_cli import one_line_error

ROOT = Path(__file__).resolve().parent.parent
NARROW = {"COLUMNS": "80", "NO_COLOR": "1"}


def run(*args, ok: bool = True):
    result = CliRunner().invoke(app, [str(a) for a in args], env=NARROW, prog_name="sparsecode")
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_train_table_is_whole_at_80_columns(tmp_path):
    for holdout in ("0", "0.1"):
        text = run("train", SAMPLE, "--out", tmp_path / f"run{holdout}", "--hidden", 64, "--k", 4, "--epochs", 2,
                   "--holdout", holdout, "--quiet", "--device", "cpu").stdout
        table = text[: text.index("final:")]
        assert "…" not in table and max(map(len, table.splitlines())) <= 80, table
        lines = table.splitlines()
        header = " ".join(lines[: next(i for i, line in enumerate(lines) if line.strip().startswith("──"))])
        for word in ("epoch", "loss", "FVU", "mean", "dead", "zero", "units", "starved", "time"):
            assert word in header, header
        assert ("held" in header) == (holdout != "0")
        rows = [line.split() for line in table.splitlines() if line.split()[:1] in (["1"], ["2"], ["final"])]
        assert [r[0] for r in rows] == ["1", "2", "final"] and len(rows[0]) == (11 if holdout != "0" else 9)


def test_inspect_dim_title_on_one_line_and_limit_zero_refused(codes_path, codes):
    # The unit with the shortest top words: its table is narrower than its title, which wrapped.
    unit = min(range(codes.n_units), key=lambda u: max(len(w) for w, _ in codes.top_words(u)))
    assert max(len(w) for w, _ in codes.top_words(unit)) <= 8
    lines = run("inspect", codes_path, "--dim", unit).stdout.splitlines()
    assert lines[0].startswith(f"unit {unit}: ")  # its name, a line of its own
    assert lines[1].strip() == f"unit {unit}: used by {codes.frequency[unit]:,} words"
    one_line_error(run("inspect", codes_path, "--limit", 0, ok=False), "--limit must be at least 1 (got 0)")


def test_tradeoff_device_help_speaks_of_one_process():
    text = run("tradeoff", "--help").stdout
    assert "process" not in text
    train = " ".join(run("train", "--help").stdout.replace("│", " ").split())
    assert "each on a GPU of its own" in train  # --nproc says how its processes take GPUs


def test_the_command_line_page_names_compare_methods():
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    row = next(line for line in page.splitlines() if line.startswith("| `sparsecode evaluate"))
    assert "`--compare-methods`" in row


def test_tradeoff_table_is_whole_at_80_columns():
    text = run("tradeoff", SAMPLE, "--k", "4,8", "--words", 1000, "--hidden", 50, "--epochs", 1, "--device", "cpu",
               "-q").stdout
    assert "…" not in text and max(map(len, text.splitlines())) <= 80, text
    rows = [line.split() for line in text.splitlines() if line.split()[:1] in (["4"], ["8"], ["dense"])]
    assert [r[0] for r in rows] == ["4", "8", "dense"] and len(rows[0]) == 11
    assert "sim." in text and "units" in text and "strict" in text and "starv-" in text
