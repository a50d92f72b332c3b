"""README.md and the pages of docs/ as a new user follows them: every command and every Python
example, top to bottom, with small training settings.

The README runs in one fresh folder that holds the shipped sample (``sample_data/``) and
``glove.6B.50d.txt.gz``, a stand-in for the GloVe download that the walkthrough fetches: the
sample's 5,000 words in GloVe's text format, gzipped. Each page of docs/ then runs in its own copy
of the folder the README left behind (its examples build on the quickstart's run), so that no page
depends on another. Download lines (``curl``, ``unzip``) and the environment's (``python3 -m
venv``, ``pytest``, ``source``: what runs this test) are the only lines not run; any other kind of
line makes the test fail, so that a new step in a page gets tested too.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsecode.cli import app

from .conftest import ROOT, SAMPLE

DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
#: The training settings of the pages -> small ones that train in a second or two on the sample.
SMALL_CLI = ("--hidden 1000 --k 32", "--hidden 100 --k 8 --epochs 1")
SMALL_API = ("sc.TrainConfig(hidden=1000, k=32, epochs=10)", "sc.TrainConfig(hidden=100, k=8, epochs=1, device='cpu')")
SMALL_ESTIMATOR = ("sc.SparseCoder(hidden=1000, k=32, epochs=10)", "sc.SparseCoder(hidden=100, k=8, epochs=1, device='cpu')")
NOT_RUN = {"curl", "unzip", "source", "python3", ".venv/bin/python"}
#: (sparsecode commands, python blocks) each file runs: a block the test missed changes these.
RUNS = {"README.md": (16, 1), "cli.md": (0, 0), "distributed.md": (0, 0), "evaluation.md": (0, 0),
        "formats.md": (3, 2), "layout.md": (0, 0), "objectives.md": (0, 0), "pursuit.md": (1, 0),
        "python.md": (0, 2), "speed.md": (0, 0), "training.md": (0, 0)}
#: Files each one's examples write, relative to the folder it runs in.
MADE = {"README.md": ("runs/glove5k/codes.h5", "runs/glove50k/report.html", "runs/glove50k/codes.npz",
                      "runs/glove5k/tasks.csv", "runs/glove5k/key.csv"),
        "formats.md": ("glove-lower.h5", "runs/glove5k/codes.txt", "runs/glove5k/codes-dense.h5"),
        "pursuit.md": ("runs/glove5k/codes-omp.h5",),
        "python.md": ("runs/api/report.html", "runs/api/codes.npz", "runs/api/glove.h5", "runs/nb/model.pt",
                      "runs/api/tasks.csv", "runs/api/key.csv")}


def blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every bash and python block, in the page's order."""
    return re.findall(r"^```(bash|python)\n(.*?)^```", text, flags=re.S | re.M)


def run_shell(code: str) -> int:
    """Run a bash block's ``sparsecode`` and ``mkdir -p`` lines; returns how many commands ran."""
    ran = 0
    for line in code.splitlines():
        words = shlex.split(line.replace(*SMALL_CLI), comments=True)
        if not words:
            continue
        if words[0] == "sparsecode":
            assert words[1] != "train" or "--epochs" in words, f"a train line the test cannot make small: {line}"
            result = CliRunner().invoke(app, words[1:])
            assert result.exit_code == 0, f"{line}\n{result.output}"
            ran += 1
        elif words[:2] == ["mkdir", "-p"]:
            for folder in words[2:]:
                os.makedirs(folder, exist_ok=True)
        else:
            assert words[0] in NOT_RUN, f"a line the test does not know how to run: {line}"
    return ran


def run_page(path: Path) -> tuple[int, int]:
    """Run every block of a page in the current folder; ``(commands, python blocks)`` it ran."""
    commands = python_blocks = 0
    for lang, code in blocks(path.read_text(encoding="utf-8")):
        if lang == "bash":
            commands += run_shell(code)
        else:
            code = code.replace(*SMALL_API).replace(*SMALL_ESTIMATOR)
            assert not re.search(r"(TrainConfig|SparseCoder)\((?!hidden=100, k=8, epochs=1)", code), \
                f"{path.name}: a Python example whose training the test cannot make small"
            python_blocks += 1
            exec(compile(code, f"{path.name} python block {python_blocks}", "exec"), {})
    return commands, python_blocks


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory, sample) -> tuple[Path, tuple[int, int]]:
    """The folder the README's examples ran in, and what ran."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "sample_data").mkdir()
    os.symlink(SAMPLE, folder / "sample_data" / SAMPLE.name)
    with gzip.open(folder / "glove.6B.50d.txt.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(f"{w} {' '.join(map(str, v))}\n" for w, v in zip(sample.words, sample.vectors))
    with contextlib.chdir(folder):
        ran = run_page(ROOT / "README.md")
    return folder, ran


def test_readme_runs_top_to_bottom(readme_folder):
    folder, ran = readme_folder
    assert ran == RUNS["README.md"]
    for made in MADE["README.md"]:
        assert (folder / made).is_file(), made


def test_every_docs_page_is_run_and_linked_from_the_readme():
    assert set(RUNS) == {"README.md", *PAGES}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [page for page in PAGES if f"](docs/{page})" not in readme] == []


@pytest.mark.parametrize("page", PAGES)
def test_docs_page_runs_after_the_readme(page, readme_folder, tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(readme_folder[0], work, symlinks=True)
    monkeypatch.chdir(work)
    assert run_page(DOCS / page) == RUNS[page]
    for made in MADE.get(page, ()):
        assert (work / made).is_file(), made


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a page (outside code blocks)."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    titles = re.findall(r"^#+ (.+)$", prose, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", t.strip().lower()).replace(" ", "-") for t in titles}


def test_every_link_between_the_pages_lands_on_a_heading():
    broken = []
    for path in [ROOT / "README.md", *(DOCS / p for p in PAGES)]:
        for target, anchor in re.findall(r"\]\(([\w./-]*\.md|)(?:#([\w-]+))?\)", path.read_text(encoding="utf-8")):
            linked = (path.parent / target).resolve() if target else path
            if not linked.is_file() or (anchor and anchor not in anchors(linked.read_text(encoding="utf-8"))):
                broken.append(f"{path.name}: {target}#{anchor}")
    assert broken == []


def test_ci_runs_the_readme_setup_and_test_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for section in ("Setup", "Tests"):
        command = readme.split(f"## {section}\n", 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
        assert command in ci, f"README's {section} command is not in .ci/run: {command}"


def pictures(text: str) -> list[tuple[str, list[str]]]:
    """``(command, shown lines)`` of every ``$ sparsecode ...`` in the page's text blocks."""
    found = []
    for block in re.findall(r"^```text\n(.*?)^```", text, flags=re.S | re.M):
        for part in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, shown = part.partition("\n")
            found.append((command, shown.strip("\n").splitlines()))
    return found


def shape(lines: list[str]) -> list[str]:
    """What stays the same from run to run: the table's column names and, with every number made
    ``#``, the lines around the table (title, notes); not the rows."""
    header = next(line for line in lines if line.startswith("┃"))
    kept = [" | ".join(cell.strip() for cell in header.strip("┃").split("┃"))]
    kept += [re.sub(r"\d[\d,.]*", "#", line.strip()) for line in lines if line.strip() and line[0] not in "┏┃┡│└"]
    return kept


def test_the_readme_picture_is_what_inspect_prints(readme_folder, monkeypatch):
    """The README shows real output of the quickstart's run; the test's run is smaller, so the rows
    differ, but the columns, the title and the notes must be those the command prints today."""
    monkeypatch.chdir(readme_folder[0])
    shown = pictures((ROOT / "README.md").read_text(encoding="utf-8"))
    assert [command.split()[:2] for command, _ in shown] == [["sparsecode", "inspect"]] * 2
    for command, lines in shown:
        result = CliRunner().invoke(app, shlex.split(command, comments=True)[1:], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert shape(lines) == shape(result.stdout.splitlines())[:len(shape(lines))], command
