"""README.md as a new user follows it: every command and every Python example, top to bottom, in
one fresh folder, with small training settings.

The folder holds the shipped sample (``sample_data/``) and ``glove.6B.50d.txt.gz``, a stand-in for
the GloVe download that the walkthrough fetches: the sample's 5,000 words in GloVe's text format,
gzipped. Download lines (``curl``, ``unzip``) and the environment's (``python3 -m venv``, ``pytest``,
``source``: what runs this test) are the only lines not run; any other kind of line makes the test
fail, so that a new step in the README gets tested too.
"""

from __future__ import annotations

import gzip
import os
import re
import shlex

from typer.testing import CliRunner

from sparsecode.cli import app

from .conftest import ROOT, SAMPLE

README = (ROOT / "README.md").read_text(encoding="utf-8")
#: README's training settings -> small ones that train in a second or two on the sample.
SMALL_CLI = ("--hidden 1000 --k 32", "--hidden 100 --k 8 --epochs 1")
SMALL_API = ("sc.TrainConfig(hidden=1000, k=32, epochs=10)", "sc.TrainConfig(hidden=100, k=8, epochs=1, device='cpu')")
SMALL_ESTIMATOR = ("sc.SparseCoder(hidden=1000, k=32, epochs=10)", "sc.SparseCoder(hidden=100, k=8, epochs=1, device='cpu')")
NOT_RUN = {"curl", "unzip", "source", "python3", ".venv/bin/python"}


def blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of every bash and python block, in README order."""
    return re.findall(r"^```(bash|python)\n(.*?)^```", README, flags=re.S | re.M)


def run_shell(code: str) -> int:
    """Run a bash block's ``sparsecode`` and ``mkdir -p`` lines; returns how many commands ran."""
    ran = 0
    for line in code.splitlines():
        words = shlex.split(line.replace(*SMALL_CLI), comments=True)
        if not words:
            continue
        if words[0] == "sparsecode":
            result = CliRunner().invoke(app, words[1:])
            assert result.exit_code == 0, f"{line}\n{result.output}"
            ran += 1
        elif words[:2] == ["mkdir", "-p"]:
            for folder in words[2:]:
                os.makedirs(folder, exist_ok=True)
        else:
            assert words[0] in NOT_RUN, f"README line the test does not know how to run: {line}"
    return ran


def test_readme_runs_top_to_bottom(tmp_path, monkeypatch, sample):
    (tmp_path / "sample_data").mkdir()
    os.symlink(SAMPLE, tmp_path / "sample_data" / SAMPLE.name)
    with gzip.open(tmp_path / "glove.6B.50d.txt.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(f"{w} {' '.join(map(str, v))}\n" for w, v in zip(sample.words, sample.vectors))
    monkeypatch.chdir(tmp_path)

    found = blocks()
    assert sum(code.count(SMALL_CLI[0]) for lang, code in found if lang == "bash") == 2  # quickstart, walkthrough
    assert sum(code.count(SMALL_API[0]) for lang, code in found if lang == "python") == 1
    assert sum(code.count(SMALL_ESTIMATOR[0]) for lang, code in found if lang == "python") == 1
    commands = python_blocks = 0
    for lang, code in found:
        if lang == "bash":
            commands += run_shell(code)
        else:
            exec(compile(code.replace(*SMALL_API).replace(*SMALL_ESTIMATOR), f"README.md python block {python_blocks + 1}", "exec"), {})
            python_blocks += 1
    assert (commands, python_blocks) == (17, 4)

    for made in ("runs/glove5k/codes.h5", "runs/glove50k/report.html", "runs/glove50k/codes.npz", "glove-lower.h5",
                 "runs/api/report.html", "runs/api/codes.npz", "runs/api/glove.h5", "runs/nb/model.pt"):
        assert (tmp_path / made).is_file(), made
