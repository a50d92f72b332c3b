"""The commands that connect sparsecode to other tools (convert, export, report) and the habits of
the command line: --help with an example, --json, --quiet, shell completion, colours."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse
from typer.testing import CliRunner

import sparsecode as sc
from sparsecode.cli import app

from .conftest import ROOT, SAMPLE
from .test_cli import one_line_error, run

COMMANDS = ["train", "encode", "inspect", "neighbors", "convert", "export", "report"]


@pytest.fixture(scope="module")
def glove_gz(tmp_path_factory, sample):
    """The first 300 words of the sample as gzipped GloVe text, with two malformed lines and a repeat."""
    import gzip

    path = tmp_path_factory.mktemp("glove") / "glove.txt.gz"
    lines = [f"{w} {' '.join(map(str, v))}" for w, v in zip(sample.words[:300], sample.vectors)]
    lines[10:10] = ["broken 1 2 3", lines[0]]  # lines 11 (3 values) and 12 (a repeat of 'the')
    lines.insert(100, "nan " + " ".join(["nan"] * 50))  # line 101
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def test_every_command_has_help_with_an_example():
    for command in COMMANDS:
        assert "Example: sparsecode " + command in run(command, "--help").stdout.replace("\n", " ")


def test_convert_command(tmp_path, glove_gz, sample):
    res = run("convert", glove_gz, "--out", tmp_path / "g.h5", "--quiet")
    assert "warning:" in res.stderr and ("skipped 2 malformed entries: line 11 (3 values, expected 50 as on line 1), "
                                         "line 101 (NaN") in res.stderr.replace("\n", " ")
    assert "1 duplicate word(s)" in res.stderr
    assert "glove" in res.stdout and "300" in res.stdout
    emb = sc.load_embeddings(tmp_path / "g.h5")
    assert emb.words == sample.words[:300]
    np.testing.assert_array_equal(emb.vectors, sample.vectors[:300])

    data = json.loads(run("convert", glove_gz, "--out", tmp_path / "n.h5", "--json", "--quiet", "--limit", 50,
                          "--normalize", "--format", "glove").stdout)
    assert (data["words"], data["dim"], data["format"], data["gzip"], data["malformed"]) == (50, 50, "glove", True, 1)
    norms = np.linalg.norm(sc.load_embeddings(tmp_path / "n.h5").vectors, axis=1)
    np.testing.assert_allclose(norms, 1, rtol=1e-6)

    one_line_error(run("convert", glove_gz, "--out", tmp_path / "g.h5", ok=False), "already exists; pass --force")
    one_line_error(run("convert", glove_gz, "--out", tmp_path / "x.h5", "--format", "word2vec", ok=False),
                   "looks like glove, not word2vec")
    one_line_error(run("convert", SAMPLE, "--out", tmp_path / "x.h5", ok=False), "is already HDF5")
    assert run("convert", glove_gz, "--out", tmp_path / "x.h5", "--format", "csv", ok=False).exit_code == 2  # usage
    assert not (tmp_path / "x.h5").exists()


def test_export_and_report_commands(tmp_path, run_dir, codes_path, codes):
    data = json.loads(run("export", codes_path, "--out", tmp_path / "c.npz", "--json", "--quiet").stdout)
    assert data == {"out": str(tmp_path / "c.npz"), "format": "npz", "words": 5000, "units": 200, "nnz": codes.nnz}
    np.testing.assert_array_equal(scipy.sparse.load_npz(tmp_path / "c.npz").toarray(), codes.dense())
    assert "word2vec" in run("export", codes_path, "--out", tmp_path / "c.vec", "--quiet").stdout
    assert (tmp_path / "c.vec").read_text().startswith("5000 200\n")
    one_line_error(run("export", codes_path, "--out", tmp_path / "c.csv", ok=False), "cannot tell the format")

    res = run("report", run_dir, codes_path, "--out", tmp_path / "r.html")
    assert res.stdout.startswith(f"wrote {tmp_path / 'r.html'}: 200 units, 3 epochs")
    data = json.loads(run("report", run_dir, codes_path, "--out", tmp_path / "r.html", "--force", "--json").stdout)
    assert data["units"] == 200 and data["bytes"] == (tmp_path / "r.html").stat().st_size
    one_line_error(run("report", tmp_path, codes_path, "--out", tmp_path / "x.html", ok=False),
                   "metrics.jsonl: missing")


def test_train_json(tmp_path):
    data = json.loads(run("train", SAMPLE, "--out", tmp_path / "r", "--hidden", 50, "--k", 4, "--epochs", 1,
                          "--device", "cpu", "--quiet", "--json").stdout)
    assert data["summary"] == json.loads((tmp_path / "r" / "summary.json").read_text())
    assert [m["epoch"] for m in data["metrics"]] == [1]


def complete(words: str) -> list[str]:
    """What bash completion offers for the last of ``words`` (Typer's completion protocol)."""
    env = {"_SPARSECODE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    result = CliRunner().invoke(app, [], prog_name="sparsecode", env=env)
    assert result.exit_code == 0, result.output
    return result.output.split()


def test_shell_completion(monkeypatch):
    # Typer otherwise detects the user's shell from the parent processes, which a detached run
    # (nohup, setsid, some CI runners) does not have: then it prints "Shell  not supported".
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    assert complete("sparsecode con") == ["convert"]
    assert complete("sparsecode convert x.txt --format word2") == ["word2vec", "word2vec-bin"]
    assert complete("sparsecode export c.h5 --format d") == ["dense-h5"]
    assert "--normalize" in complete("sparsecode convert x.txt --n")
    script = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="sparsecode").stdout
    assert "_SPARSECODE_COMPLETE=complete_bash" in script and "complete -o default -F _sparsecode_completion sparsecode" in script


def colour_codes(text: str) -> list[str]:
    """ANSI SGR sequences that set a colour (foreground or background), not bold or italic."""
    found = []
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        if any(p.isdigit() and (30 <= int(p) <= 38 or 40 <= int(p) <= 48 or 90 <= int(p) <= 107)
               for p in params.split(";")):
            found.append(params)
    return found


def test_colours_only_on_a_terminal_and_never_with_no_color(codes_path):
    """Three real processes (the choice is made when rich starts): piped output is plain; FORCE_COLOR
    brings colours (so the check can see them); NO_COLOR takes them away again."""
    script = (
        "import sys\nfrom sparsecode.cli import app\n"
        "for args in (['inspect', sys.argv[1], '--limit', '3'], ['inspect', 'missing.h5'], ['convert', '--help']):\n"
        "    try:\n        app(args, prog_name='sparsecode')\n    except SystemExit:\n        pass\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS")}
    base["PYTHONPATH"] = str(ROOT)

    def output(**env) -> str:
        proc = subprocess.run([sys.executable, "-c", script, str(codes_path)], capture_output=True, text=True,
                              env={**base, **env}, timeout=300)
        plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
        assert "error: missing.h5: file not found" in plain and "Example:" in plain, proc.stderr
        return proc.stdout + proc.stderr

    assert "\x1b" not in output()
    assert colour_codes(output(FORCE_COLOR="1"))
    assert colour_codes(output(FORCE_COLOR="1", NO_COLOR="1")) == []


def test_help_shows_defaults_that_are_not_values():
    """A default that is a description shows as Typer writes one, in parentheses; '[choices: ...]' in a
    help text is rich markup unless escaped: both must reach the user."""
    train_help = " ".join(run("train", "--help").stdout.split())
    assert "[default: (off)]" in train_help and "[default: (3e-05 for" in train_help and "[default: 10]" in train_help
    assert "[choices: kmeans, random]" in train_help
    assert "[default: (all)]" in " ".join(run("convert", "--help").stdout.split())
