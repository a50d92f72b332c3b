"""sparsecode as a user installs it: the built wheel, not the source tree.

The wheel is built from the tracked sources, installed into a fresh virtual environment and its
console script run from another folder, so that anything the library reads at run time but the
wheel does not ship (the word-similarity benchmarks once were) fails here. The environment gets
torch, h5py and the rest from this one (a ``.pth`` line), not from a second download: what is
tested is the package's own content.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys

import pytest

from .conftest import ROOT


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)


def test_the_installed_wheel_evaluates_from_another_folder(tmp_path, codes_path):
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (pyproject's build-system)")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "sparsecode", src / "sparsecode", ignore=shutil.ignore_patterns("__pycache__"))
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", src)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("sparsecode-*.whl")

    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", "--without-pip", venv).returncode == 0
    python = venv / "bin" / "python"
    installed = _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    assert installed.returncode == 0, installed.stderr
    packages = _run(python, "-c", "import site; print(site.getsitepackages()[0])").stdout.strip()
    with open(os.path.join(packages, "_dependencies.pth"), "w") as fh:  # torch, h5py, ...: this environment's
        fh.write("\n".join(site.getsitepackages()) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    where = _run(python, "-c", "import importlib.util; print(importlib.util.find_spec('sparsecode').origin)",
                 cwd=elsewhere, env=env)
    assert where.stdout.strip().startswith(packages), where.stdout + where.stderr  # the wheel's, not the sources'

    result = _run(venv / "bin" / "sparsecode", "evaluate", codes_path, "--json", cwd=elsewhere, env=env)
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert len(evaluation["word_similarity"]["codes"]) == 13  # the benchmarks shipped inside the wheel
    assert evaluation["coherence"] is not None  # and the WordNet supersense table
