"""What ``sparsecode.train`` reports to its events callback, and how the command line shows it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sparsecode as sc
from sparsecode.cli import app
from sparsecode.events import Checkpoint, Collapse, Converting, Finished, Progress, Started
from sparsecode.training import collapse_news

from .conftest import SMALL, stop_at

TINY = dict(SMALL, hidden=50, epochs=2, batch_size=1024)


@pytest.fixture(scope="module")
def glove_text(tmp_path_factory, sample):
    """The first 3,000 sample words as GloVe text."""
    path = tmp_path_factory.mktemp("text") / "glove.txt"
    path.write_text("".join(w + " " + " ".join(f"{v:.5f}" for v in row) + "\n"
                            for w, row in zip(sample.words[:3000], sample.vectors[:3000])), encoding="utf-8")
    return path


def test_a_run_reports_its_events_in_order(tmp_path, glove_text):
    seen = []
    result = sc.train(glove_text, sc.TrainConfig(**TINY), out_dir=tmp_path / "run", events=seen.append)
    kinds = [type(e).__name__ for e in seen]
    first_other = next(i for i, k in enumerate(kinds) if k != "Converting")
    assert first_other > 0 and kinds[first_other] == "Started" and kinds[-1] == "Finished"
    started = seen[first_other]
    assert started == Started(3000, 50, str(tmp_path / "run" / "embeddings.h5"), str(glove_text), 1, None)
    progress = [e for e in seen if isinstance(e, Progress)]
    assert [p.epoch for p in progress if p.epoch_end] == [1, 2] and progress[-1].step == progress[-1].total_steps == 6
    # A checkpoint at the end of every epoch, reported after the epoch's progress.
    assert [e.step for e in seen if isinstance(e, Checkpoint)] == [3, 6]
    assert kinds.index("Checkpoint") > kinds.index("Progress")
    assert all(isinstance(e, Converting) and e.size == glove_text.stat().st_size for e in seen[:first_other])
    assert seen[-1] == Finished(result)


def test_a_resumed_run_says_from_which_step(tmp_path, sample):
    out = tmp_path / "run"
    with pytest.raises(sc.SparsecodeError):
        sc.train(sample, sc.TrainConfig(**SMALL), out_dir=out, progress=stop_at(7))
    seen = []
    sc.train(sample, sc.TrainConfig(**SMALL), out_dir=out, resume=True, events=seen.append)
    assert [e.resumed_from for e in seen if isinstance(e, Started)] == [7]
    assert [e.step for e in seen if isinstance(e, Progress)][0] > 7
    # The command line says it too.
    with pytest.raises(sc.SparsecodeError):
        sc.train(sample, sc.TrainConfig(**SMALL), out_dir=out, force=True, progress=stop_at(11))
    res = CliRunner().invoke(app, ["train", str(sample.path), "--out", str(out), "--resume", "--hidden", "200", "--k", "8",
                                   "--epochs", "3", "--device", "cpu"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert f"resuming {out} from its checkpoint at step 11" in res.stderr


def _line(epoch: int, effective: float, starved: float) -> dict:
    return {"epoch": epoch, "effective_units": effective, "starved_fraction": starved}


def test_a_collapse_is_reported_once_per_episode():
    healthy = [_line(1, 995, 0.0), _line(2, 990, 0.01)]
    assert collapse_news(healthy, 1000) is None
    # Down by more than a third from the best (995 -> 534): reported once, at the epoch it starts.
    fell = healthy + [_line(3, 534, 0.1)]
    assert collapse_news(fell, 1000) == Collapse(3, "epoch 3: the code is collapsing: 534 effective units (best so far 995), "
                                              "10% of the units starved")
    assert collapse_news(fell + [_line(4, 500, 0.3)], 1000) is None  # still collapsed: said already
    assert collapse_news(fell + [_line(4, 990, 0.0)], 1000) is None  # recovered
    assert collapse_news(fell + [_line(4, 990, 0.0), _line(5, 600, 0.0)], 1000).epoch == 5  # a second episode
    # Starved units above 20% alone are a collapse, from the first epoch; exactly a third down is not.
    assert collapse_news([_line(1, 900, 0.21)], 1000).epoch == 1
    assert collapse_news([_line(1, 900, 0.2), _line(2, 600, 0.2)], 1000) is None
    assert collapse_news([_line(1, 2, 0.5)], 4) is None  # too few units to speak of a collapse


def test_a_failed_train_leaves_no_run_folder_behind_and_says_one_line(tmp_path):
    bad = tmp_path / "one.vec"
    bad.write_text("word 0.1 0.2 0.3\n", encoding="utf-8")  # one word: too few to train
    script = Path(sys.executable).parent / "sparsecode"
    # stderr to a file, not a terminal: no bar, so no empty line before the error
    res = subprocess.run([str(script), "train", "one.vec", "--out", "run", "--hidden", "4", "--k", "2", "--device", "cpu"],
                         cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"})
    assert res.returncode == 1
    assert res.stderr == "error: one.vec: needs at least 2 words to train, found 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.vec"]  # neither the folder nor the converted input


def test_a_lost_peer_keeps_sigterm_from_cutting_the_error_line():
    """After ProcessLost the stop handlers stay (torchrun's launcher SIGTERMs the survivors);
    after any other end of training the previous handlers come back."""
    import signal

    from sparsecode.distributed import ProcessLost
    from sparsecode.training import _StopSignals

    before, before_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError), _StopSignals():
        raise RuntimeError("not a lost peer")
    assert signal.getsignal(signal.SIGTERM) is before
    stop = _StopSignals()
    try:
        with pytest.raises(ProcessLost), stop:
            raise ProcessLost("another process of the job stopped")
        assert signal.getsignal(signal.SIGTERM) == stop._handle
        signal.raise_signal(signal.SIGTERM)  # recorded, not the end of the process
        assert stop.asked() == signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, before_int)
