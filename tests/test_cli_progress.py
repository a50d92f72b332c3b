"""The training bar as a terminal shows it (the installed script in a pseudo-terminal), and the
lines after training that say what the FVU means."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsecode.cli import _fvu_meaning, _train_status, app
from sparsecode.training import Progress

from .conftest import SAMPLE

NORMAL = ("An FVU above 1 in the first epochs is normal: training starts from random weights, which reconstruct "
          "worse than the mean vector would.")


def in_terminal(args: list[str], cwd: Path) -> str:
    """Run a command with stdout and stderr on a pseudo-terminal; its output, escape codes removed."""
    main, sub = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "LINES": "50", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(args, stdin=sub, stdout=sub, stderr=sub, env=env, cwd=cwd, close_fds=True)
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 1 << 16)
        except OSError:  # the other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=300) == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))


def test_bar_counts_the_epochs_steps_and_labels_the_times(tmp_path):
    script = Path(sys.executable).parent / "sparsecode"
    # 5,000 words in batches of 64: 79 steps an epoch, a report every 3 steps (20 an epoch).
    text = in_terminal([str(script), "train", str(SAMPLE), "--out", "run", "--hidden", "400", "--k", "32",
                        "--epochs", "2", "--batch-size", "64", "--device", "cpu", "--init", "random"], tmp_path)
    # (--init random: from random unit vectors the first steps' FVU is above 1, which the bar explains)
    frames = [f for f in re.split(r"[\r\n]", text) if f.startswith("epoch ")]
    counters = {epoch: [int(m.group(1)) for f in frames if f.startswith(f"epoch {epoch}/2")
                        for m in [re.search(r" (\d+)/79 ", f)]] for epoch in (1, 2)}
    assert counters[1][0] == 3 and counters[2][0] == 3  # epoch 2 starts again from its first steps
    assert max(counters[1]) == max(counters[2]) == 79 and not any("/158" in f for f in frames)
    for frame in frames:
        assert re.search(r"elapsed \d:\d\d:\d\d left (\d:\d\d:\d\d|-:--:--)$", frame.rstrip()), frame
    assert any(re.search(r"left 0:00:\d\d$", f.rstrip()) for f in frames)  # estimated once it has a rate
    epoch1 = [f for f in frames if f.startswith("epoch 1/2") and " FVU 1." in f]
    assert epoch1 and all("(above 1 at the start is normal)" in f for f in epoch1)


def train_lines(tmp_path, *options: str) -> list[str]:
    result = CliRunner().invoke(app, ["train", str(SAMPLE), "--out", str(tmp_path / "r"), "--force", "--hidden", "400",
                                      "--k", "32", "--device", "cpu", "-q", *options], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()


def test_lines_after_training_say_what_the_fvu_means(tmp_path):
    lines = train_lines(tmp_path, "--epochs", "2", "--init", "random")  # epoch 1 ends at FVU 1.68, epoch 2 at 0.51
    fvus = [float(m.group(1)) for line in lines for m in [re.match(r"│\s+\d │ \S+ │ (\d\.\d{4}) │", line)] if m]
    assert fvus[0] > 1 > fvus[1]
    assert lines[-4] == NORMAL
    assert re.fullmatch(r"FVU 0\.\d{4}: the reconstructions leave \d+\.\d% of the vectors' variance unexplained "
                        r"\(0: exact; 1: no better than the mean vector\)\.", lines[-2]), lines[-2]
    assert lines[-1].startswith("units as a reader sees them (top 10 words among the first 5,000): purity ")

    lines = train_lines(tmp_path, "--epochs", "1", "--lr", "1e-6", "--init", "random")  # still above 1 at the end: not the normal start
    assert NORMAL not in lines
    assert re.fullmatch(r"FVU \d\.\d{4}: the reconstructions are no closer to the vectors than their mean vector is "
                        r"\(FVU 1\); train for more epochs or with a larger --lr\.", lines[-2]), lines[-2]
    assert _fvu_meaning(0.04213) == ("FVU 0.0421: the reconstructions leave 4.2% of the vectors' variance unexplained "
                                     "(0: exact; 1: no better than the mean vector).")


@pytest.mark.parametrize("epoch, fvu, note", [(1, 1.25, True), (1, 0.5, False), (2, 1.25, False)])
def test_bar_notes_an_fvu_above_one_only_at_the_start(epoch, fvu, note):
    p = Progress(epoch=epoch, step=5, total_steps=10, loss=0.5, fvu=fvu, dead_fraction=0.125)
    assert _train_status(p) == (f"loss 0.5000  FVU {fvu:.4f}{' (above 1 at the start is normal)' if note else ''}"
                                "  dead 12.5%")
