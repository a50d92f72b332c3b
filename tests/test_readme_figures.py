"""The figures README.md quotes of the quickstart's run are the ones it gives today.

The quickstart (5,000 words, ``--hidden 1000 --k 32``, the other settings their defaults) is
trained here once, on one thread as the README says, and every figure the README quotes of it is
read from README.md and compared: the first step's FVU with the k-means start and with a random
start, the bar's sample line, the final FVU. When a default changes, the failure names each figure
the README should now quote.
"""

from __future__ import annotations

import re

import pytest
import torch

import sparsecode as sc

from .conftest import ROOT, SAMPLE

README = (ROOT / "README.md").read_text(encoding="utf-8")
QUICKSTART = dict(hidden=1000, k=32, device="cpu")


def quoted(pattern: str) -> tuple[float, ...]:
    found = re.search(pattern, README, flags=re.M)
    assert found, f"README.md no longer has a line matching {pattern!r}"
    return tuple(float(g) for g in found.groups())


class Enough(Exception):
    """One step is all the random start's figure needs."""


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_quickstart_figures_are_what_it_gives(one_thread):
    seen = []
    result = sc.train(SAMPLE, sc.TrainConfig(**QUICKSTART), progress=seen.append)
    random_start = []
    def stop(progress) -> None:
        random_start.append(progress)
        raise Enough

    with pytest.raises(Enough):
        sc.train(SAMPLE, sc.TrainConfig(**QUICKSTART, init="random"), progress=stop)
    bar = next(p for p in seen if (p.epoch, p.epoch_step) == (4, 9))
    today = {
        "first step, k-means start": (seen[0].fvu, 0.005),
        "first step, random start": (random_start[0].fvu, 0.05),
        "bar at epoch 4, step 9: loss": (bar.loss, 0.003),
        "bar at epoch 4, step 9: FVU": (bar.fvu, 0.003),
        "bar at epoch 4, step 9: dead %": (100 * bar.dead_fraction, 0.2),
        "final FVU": (result.summary["fvu"], 0.003),
    }
    readme = dict(zip(today, (
        *quoted(r"\((\d\.\d+) at the quickstart's first step\)"),
        *quoted(r"it starts above 1 \((\d+\.\d+) at its\s+first step here\)"),
        *quoted(r"^epoch 4/10 \S+\s+9/20 loss (\d\.\d+)  FVU (\d\.\d+)  dead (\d\.\d+)%"),
        *quoted(r"^FVU (\d\.\d+): the reconstructions leave"),
    )))
    wrong = {name: f"README {readme[name]:g}, today {value:.4f}" for name, (value, tolerance) in today.items()
             if abs(readme[name] - value) > tolerance}
    assert not wrong, f"refresh README.md's quickstart figures: {wrong}"
