"""Training on two CPU processes (torch.distributed, gloo), launched as users do: torchrun and --nproc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

import sparsecode as sc

from .conftest import host_reads_of, sample_subset, stop_at

#: Small enough for a few seconds per run; AuxK on, so that its global-batch variance is exercised.
ARGS = ["--hidden", "64", "--k", "8", "--batch-size", "128", "--aux-coef", "0.03125", "--device", "cpu"]
CFG = dict(hidden=64, k=8, batch_size=128, aux_coef=0.03125, device="cpu")
ENV = {**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def emb_path(tmp_path_factory, sample) -> Path:
    path = tmp_path_factory.mktemp("dist") / "emb2k.h5"
    sc.embeddings.write_embeddings(path, *sample_subset(sample, 2000))
    return path


def torchrun(*args, nproc=2, **kwargs):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), "-m", "sparsecode", "train", *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=300, **kwargs)


def assert_close_weights(a: dict, b: dict) -> None:
    for name, tensor in b.items():
        torch.testing.assert_close(a[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_two_processes_train_the_model_of_one(tmp_path, emb_path):
    """Same global batches and seed: the same model, metrics and summary as one process."""
    one = sc.train(emb_path, sc.TrainConfig(**CFG, epochs=2))
    proc = torchrun(emb_path, "--out", tmp_path / "run", *ARGS, "--epochs", 2)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.jsonl", "model.pt", "summary.json"]
    assert proc.stdout.count("trained ") == 1 and proc.stderr.count("training on 2,000 words") == 1  # process 0 only
    assert_close_weights(torch.load(run / "model.pt", weights_only=True), one.model.weights())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for got, want in zip(metrics, one.metrics, strict=True):
        for key in ("loss", "fvu", "mean_l0", "dead_fraction", "zero_rows_fraction", "k", "lr"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-7), key
    summary = json.loads((run / "summary.json").read_text())
    for key in ("fvu", "cosine", "mean_l0", "dead_fraction", "always_on_fraction", "zero_rows_fraction"):
        assert summary[key] == pytest.approx(one.summary[key], rel=1e-4, abs=1e-7), key
    config = json.loads((run / "config.json").read_text())
    assert config["processes"] == 2 and config["n_words"] == 2000


def test_a_setting_error_found_by_process_0_names_the_flag(tmp_path, emb_path):
    """An error process 0 finds for all (here: the run directory is taken) reaches the user as one
    process finds it: the setting written as its flag, once."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    proc = torchrun(emb_path, "--out", tmp_path / "run", *ARGS, "--epochs", 1)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: {tmp_path / 'run'}: already exists; pass --force to overwrite it"]


def test_a_one_process_checkpoint_resumes_on_two(tmp_path, emb_path):
    cfg = sc.TrainConfig(**CFG, epochs=2, checkpoint_every=5)
    reference = sc.train(emb_path, cfg).model.weights()

    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(emb_path, cfg, out_dir=tmp_path / "run", progress=stop_at(10))
    proc = torchrun(emb_path, "--out", tmp_path / "run", *ARGS, "--epochs", 2, "--checkpoint-every", 5, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert_close_weights(torch.load(tmp_path / "run" / "model.pt", weights_only=True), reference)


def _child_with_rank(parent: int, rank: int, deadline: float) -> int:
    """The pid of the launcher's worker process with RANK=rank."""
    while time.time() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and f"RANK={rank}".encode() in env:
                return int(pid)
        time.sleep(0.05)
    raise AssertionError(f"no worker with RANK={rank}")


def test_a_killed_process_stops_the_job_cleanly_and_its_checkpoint_resumes(tmp_path, emb_path):
    """kill -9 one of two processes: the other ends with one error line and exit 1; the last
    checkpoint resumes on one process and ends at the model of an uninterrupted run."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sparsecode", "train", str(emb_path), "--out", str(out), *ARGS, "--epochs", "30",
           "--checkpoint-every", "5", "--quiet"]
    launcher = subprocess.Popen([*cmd, "--nproc", "2"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    rank1 = _child_with_rank(launcher.pid, 1, deadline)  # found first, so that the kill follows the checkpoint
    while not (out / "checkpoint.pt").exists() and launcher.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(rank1, signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith(f"error: {out}: training stopped at step ") and "another process of the job stopped" in lines[0]
    assert lines[0].endswith("rerun the same command with --resume to continue (with any number of processes)")
    assert not (out / "model.pt").exists() and (out / "checkpoint.pt").exists()

    resumed = subprocess.run([*cmd, "--resume"], env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    reference = sc.train(emb_path, sc.TrainConfig(**CFG, epochs=30)).model.weights()
    assert_close_weights(torch.load(out / "model.pt", weights_only=True), reference)


def test_a_stop_asked_of_both_processes_ends_at_one_step_with_a_checkpoint(tmp_path, emb_path):
    """SIGTERM to both processes (as Ctrl-C reaches a terminal's process group): they agree on the
    stop at the next report point (the flag travels in the step's all-reduce, read there only), write
    one checkpoint and exit 143; it resumes to the model of an uninterrupted run."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sparsecode", "train", str(emb_path), "--out", str(out), *ARGS, "--epochs", "30",
           "--checkpoint-every", "5", "--quiet"]
    launcher = subprocess.Popen([*cmd, "--nproc", "2"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    ranks = [_child_with_rank(launcher.pid, r, deadline) for r in (0, 1)]
    while not (out / "checkpoint.pt").exists() and launcher.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    for pid in ranks:
        os.kill(pid, signal.SIGTERM)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 143, stderr
    assert "interrupted at step" in stderr and "Traceback" not in stderr, stderr
    step = torch.load(out / "checkpoint.pt", weights_only=True)["position"]["step"]
    assert f"interrupted at step {step} of " in stderr
    resumed = subprocess.run([*cmd, "--resume"], env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    reference = sc.train(emb_path, sc.TrainConfig(**CFG, epochs=30)).model.weights()
    assert_close_weights(torch.load(out / "model.pt", weights_only=True), reference)


#: Each objective's own settings for the two-process comparison (tiny: one launch trains them all).
OBJECTIVE_RUNS = {
    "batchtopk": dict(sparsity="batchtopk", k=8, aux_coef=0.03125),
    "kl": dict(sparsity="kl"),
    "l1": dict(sparsity="l1"),
    "spine": dict(sparsity="spine"),  # with its default input noise, 0.2
    "topk-noise": dict(sparsity="topk", k=8, noise=0.3),
}
OBJECTIVES_SCRIPT = """
import gc, sys, torch, torch.distributed as dist
import sparsecode as sc
dist.init_process_group("gloo")  # joined here, so that every sc.train below shares the one job
runs = {runs!r}
for name, settings in runs.items():
    result = sc.train(sys.argv[1], sc.TrainConfig(hidden=64, batch_size=128, epochs=2, device="cpu", **settings))
    if dist.get_rank() == 0:
        torch.save({{"weights": result.model.weights(), "metrics": result.metrics}}, f"{{sys.argv[2]}}/{{name}}.pt")
    del result
    gc.collect()  # each run's DistributedDataParallel goes before the next, not at exit after the group
dist.barrier()
dist.destroy_process_group()
"""


def test_every_objective_on_two_processes_trains_the_model_of_one(tmp_path, emb_path):
    """BatchTopK's k·B largest and its threshold, the KL and SPINE firing rates, the L1 and SPINE
    penalties and the input noise are those of the global batch: two processes give one process's
    model (weights within 1e-4, epoch metrics alike)."""
    script = tmp_path / "objectives.py"
    script.write_text(OBJECTIVES_SCRIPT.format(runs=OBJECTIVE_RUNS))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(emb_path), str(tmp_path)], capture_output=True, text=True, env=ENV,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    for name, settings in OBJECTIVE_RUNS.items():
        one = sc.train(emb_path, sc.TrainConfig(hidden=64, batch_size=128, epochs=2, device="cpu", **settings))
        two = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        for key, tensor in one.model.weights().items():
            torch.testing.assert_close(two["weights"][key], tensor, rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")
        for got, want in zip(two["metrics"], one.metrics, strict=True):
            for key in ("loss", "fvu", "mean_l0", "dead_fraction"):
                assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-7), (name, key)


@pytest.mark.parametrize("settings", [dict(sparsity="topk", aux_coef=1 / 32), dict(sparsity="batchtopk", aux_coef=1 / 32),
                                      dict(sparsity="kl"), dict(sparsity="spine")], ids=lambda s: s["sparsity"])
def test_the_ddp_step_reads_nothing_back(sample, cuda_code_paths, settings):
    """The several-process step (DDP, the step's all-reduce, BatchTopK's all-gather, the all-reduced
    rates) in a one-process gloo job: three warmed-up steps dispatch no read back to the host."""
    import gc

    import torch.distributed as tdist

    from sparsecode.distributed import Distributed
    from sparsecode.training import Trainer

    class OneRank(Distributed):
        active = True  # a job of one that takes every several-process path

    tdist.init_process_group("gloo", store=tdist.HashStore(), rank=0, world_size=1)
    try:
        cfg = sc.TrainConfig(hidden=4000, batch_size=256, epochs=1, dead_window=0.01, device="cpu", **settings)
        with warnings.catch_warnings():  # torch 2.13 deprecates broadcast_buffers, which we still need
            warnings.filterwarnings("ignore", "`broadcast_buffers` is deprecated", FutureWarning)
            trainer = Trainer(sample, cfg, OneRank(torch.device("cpu")))
        for _ in range(3):
            trainer.train_step()
        assert not host_reads_of(lambda: [trainer.train_step() for _ in range(3)])
        assert trainer.stop_flag is not None and not bool(trainer.stop_flag)
        trainer = None
    finally:
        gc.collect()  # DDP's reducer before its process group
        tdist.destroy_process_group()


def test_one_process_is_a_job_of_one_at_no_cost(cuda_code_paths):
    """Distributed(None): reduce_sums hands back the step's own named sums (the very dict: there is
    nothing to add up), without a collective or a read back to the host; a job of one that takes
    the several-process path (gloo, world 1) gives the same figures, by name, in the same dtypes."""
    import gc

    import torch.distributed as tdist

    from sparsecode.distributed import Distributed, spread

    class OneRank(Distributed):
        active = True

    g = torch.Generator().manual_seed(0)
    row_l0 = torch.randint(0, 4, (32,), generator=g)
    residual = torch.randn(32, 5, generator=g)
    sums = {"ssd": torch.rand((), generator=g), "sse": torch.rand((), generator=g), "l0": row_l0.sum(),
            "zero_rows": (row_l0 == 0).sum(), "counts": torch.randint(0, 9, (16,), generator=g).float()}
    one = Distributed(None)
    local_sums = {**sums, **one.spread_sums(residual)}
    assert not host_reads_of(lambda: one.reduce_sums(local_sums))
    assert one.reduce_sums(local_sums) is local_sums
    assert torch.equal(one.spread_of(local_sums, 32), spread(residual))
    loss = torch.tensor(0.25)
    assert one.ddp_share(loss) is loss and one.mean(loss) is loss
    tdist.init_process_group("gloo", store=tdist.HashStore(), rank=0, world_size=1)
    try:
        job = OneRank(torch.device("cpu"))
        glob = job.reduce_sums({**sums, **job.spread_sums(residual), "stop": torch.tensor(False)})
        assert list(glob) == [*sums, "residual_sq", "residual_sum", "stop"]
        for name, want in sums.items():
            assert glob[name].dtype == want.dtype and glob[name].shape == want.shape
            torch.testing.assert_close(glob[name].double(), want.double(), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(job.spread_of(glob, 32), spread(residual), rtol=1e-5, atol=1e-5)
        assert not bool(glob["stop"])
        assert torch.equal(job.ddp_share(loss), loss) and torch.equal(job.mean(loss.clone()), loss)
    finally:
        gc.collect()
        tdist.destroy_process_group()
