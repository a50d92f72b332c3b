"""What a user hands the commands, as a new user would: no --out, a rerun of an interrupted run,
codes of another model, a run or embeddings that moved, text embeddings, words that are not plain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import sparsecode as sc
from sparsecode.terminal import visible
from sparsecode.train import default_run_dir

from .conftest import SAMPLE, stop_at
from .test_cli import one_line_error, run

#: A model that trains in about a second on the sample.
TINY = ("--hidden", 50, "--k", 4, "--epochs", 2, "--device", "cpu")
TINY_CFG = dict(hidden=50, k=4, epochs=2, device="cpu")


def test_train_and_encode_without_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run("train", SAMPLE, *TINY)
    assert "the run goes to runs/glove.6B.50d.5k/ (no --out given)" in res.stderr
    assert "trained runs/glove.6B.50d.5k" in res.stdout
    assert sorted(p.name for p in (tmp_path / "runs" / "glove.6B.50d.5k").iterdir()) == [
        "config.json", "metrics.jsonl", "model.pt", "summary.json"]
    res = run("encode", "runs/glove.6B.50d.5k", SAMPLE, "--quiet")
    assert res.stdout.splitlines()[0] == "wrote runs/glove.6B.50d.5k/codes.h5"
    assert len(sc.load_codes(tmp_path / "runs" / "glove.6B.50d.5k" / "codes.h5").words) == 5000
    # The default is a run directory like any other: a second run is refused, not overwritten.
    line = one_line_error(run("train", SAMPLE, *TINY, ok=False))
    assert line == "error: runs/glove.6B.50d.5k: already exists; pass --force to overwrite it"


def test_default_run_dir_drops_the_endings_of_embeddings_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = {"glove.6B.50d.txt.gz": "glove.6B.50d", "wiki.en.vec": "wiki.en", "vectors.bin": "vectors",
             "emb.h5": "emb", "m.npy.gz": "m", ".h5": ".h5", "corpus.v2": "corpus.v2"}
    for given, expected in names.items():
        assert default_run_dir(tmp_path / "data" / given) == Path("runs") / expected
    assert (tmp_path / "runs").is_dir()


def test_rerun_of_an_interrupted_train_says_resume(tmp_path, sample):
    out = tmp_path / "int"
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(sample, sc.TrainConfig(**TINY_CFG), out_dir=out, progress=stop_at(27))
    line = one_line_error(run("train", SAMPLE, "--out", out, *TINY, "--quiet", ok=False))
    assert line == (f"error: {out}: holds a checkpoint from step 27: rerun with --resume to continue, "
                    "or --force to start again")
    assert [p.name for p in out.iterdir()] == ["checkpoint.pt"]  # nothing touched
    run("train", SAMPLE, "--out", out, *TINY, "--quiet", "--resume")
    assert (out / "model.pt").is_file() and not (out / "checkpoint.pt").exists()


#: Words that are markup, escape sequences, emoji codes, a trailing backslash, a bidi override.
ODD = ["[/url]", "[bold red]pwn[/bold red]", "\x1b]0;pwned\x07", "\x1b[31mred", ":smile:", "back\\", "a\u202eb"]


@pytest.fixture(scope="module")
def odd_codes(tmp_path_factory, sample):
    """Codes of 300 sample vectors whose words are all odd: the 7 above, then each with a number."""
    from .conftest import write_h5

    folder = tmp_path_factory.mktemp("odd")
    words = ODD + [f"{ODD[i % len(ODD)]}{i}" for i in range(len(ODD), 300)]
    emb = write_h5(folder / "odd.h5", words=words, vectors=sample.vectors[:300])
    sc.train(emb, sc.TrainConfig(hidden=20, k=3, epochs=1, device="cpu"), out_dir=folder / "run")
    sc.encode(folder / "run", emb, folder / "codes.h5", device="cpu")
    return folder


def _shown_literally(text: str) -> None:
    """Nothing of the words reached the terminal as markup, an escape sequence or an emoji."""
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\U0001f604" not in text
    assert "\\x1b]0;pwned\\x07" in text or "\\x1b[31mred" in text


def test_words_are_shown_literally_and_safely(odd_codes):
    codes_file = odd_codes / "codes.h5"
    codes = sc.load_codes(codes_file)
    table = run("inspect", codes_file).stdout
    _shown_literally(table)
    assert "[/url]" in table and "[bold red]pwn[/bold red]" in table and ":smile:" in table
    for word in ODD:
        res = run("inspect", codes_file, "--word", word)
        title = res.stdout.splitlines()[0].strip()
        expected = word.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace("\u202e", "\\u202e")
        assert title == f"'{expected}': {len(codes.active_units(word))} active units", title
        _shown_literally(res.stdout.replace(expected, "\\x1b[31mred"))
        assert json.loads(run("inspect", codes_file, "--word", word, "--json").stdout)["word"] == word
    unit = int(codes.frequency.argmax())
    res = run("inspect", codes_file, "--dim", unit)
    top = [w for w, _ in codes.top_words(unit)]
    assert top == [e["word"] for e in json.loads(run("inspect", codes_file, "--dim", unit, "--json").stdout)["top_words"]]
    assert "\x1b" not in res.stdout and all(visible(w) in res.stdout for w in top) and "[/url]" in run("neighbors", codes_file, "[/url]", "--top", 3).stdout
    nbrs = run("neighbors", codes_file, "\x1b[31mred", "[bold red]pwn[/bold red]", "--top", 300)
    _shown_literally(nbrs.stdout)
    assert "nearest to '\\x1b[31mred'" in nbrs.stdout and "nearest to '[bold red]pwn[/bold red]'" in nbrs.stdout
    exact = json.loads(run("neighbors", codes_file, "back\\", "--top", 299, "--json").stdout)
    assert sorted(n["word"] for n in exact["back\\"]) == sorted(w for w in codes.words if w != "back\\")


def test_errors_and_warnings_quote_words_safely(odd_codes, tmp_path):
    line = one_line_error(run("inspect", odd_codes / "codes.h5", "--word", "\x1b[31mre", ok=False))
    assert line.startswith("error: ") and "\x1b" not in line
    assert line.endswith("word '\\x1b[31mre' is not in the vocabulary; did you mean '\\x1b[31mred'?")
    from .conftest import write_h5

    dup = write_h5(tmp_path / "dup.h5", words=["[bold]x[/bold]", "\x1b[2Jy", "[bold]x[/bold]"],
                   vectors=__import__("numpy").eye(3, dtype="float32"))
    res = run("train", dup, "--out", tmp_path / "run", "--hidden", 4, "--k", 1, "--epochs", 1, "--quiet")
    assert res.stderr.splitlines()[0] == ("warning: " + str(dup) + ": 1 duplicate word(s) (first: '[bold]x[/bold]'); "
                                          "kept the first occurrence of each")


def test_the_html_report_holds_the_exact_words(odd_codes, tmp_path):
    from html import escape

    out = tmp_path / "report.html"
    run("report", odd_codes / "run", odd_codes / "codes.h5", "--out", out)
    page = out.read_text(encoding="utf-8")
    for word in ("[/url]", "[bold red]pwn[/bold red]", ":smile:", "back\\", "\x1b[31mred"):
        assert escape(word) in page


def test_visible_escapes_controls_and_format_characters_only():
    assert visible("a\x1b[31mb") == "a\\x1b[31mb"
    assert visible("x\ty\n\x7f\x9b") == "x\\ty\\n\\x7f\\x9b"
    assert visible("a\u202eb\u2028") == "a\\u202eb\\u2028"
    for kept in ("[bold]", "café", "👨\u200d👩\u200d👧", "no\u00a0break", "back\\"):
        assert visible(kept) == kept
