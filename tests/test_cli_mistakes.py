"""Mistakes a new user makes on purpose (issue 24): each is one line on stderr and a non-zero exit,
never a traceback, a box or a number that is not one."""

from __future__ import annotations

from .conftest import SAMPLE
from .test_cli import one_line_error, run


def test_train_refuses_vectors_that_do_not_vary(tmp_path):
    two = tmp_path / "two.txt"
    two.write_text("a 0.1 0.2 0.3\nb 0.1 0.2 0.3\n")
    line = one_line_error(run("train", two, "--out", tmp_path / "run", "--quiet", ok=False))
    assert line.endswith(": all 2 vectors are the same (they do not vary about their mean), so there is nothing to "
                         "learn and FVU is undefined; train on vectors that differ")
