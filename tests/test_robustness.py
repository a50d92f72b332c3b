"""Robustness: outputs that cannot be written fail with one clean line and leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import sparsecode as sc

from .conftest import SAMPLE

#: Runs the CLI's console entry point under a file-size limit (a full disk, as far as the
#: process can tell). ``skip_precheck`` disables the up-front size check so that the write itself fails.
LIMITED = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit, skip_precheck = int(sys.argv[1]), sys.argv[2] == "1"
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    if skip_precheck:
        import sparsecode  # the package re-exports functions named like the modules: patch the modules
        for name in ("sparsecode.encoding", "sparsecode.rundir"):
            sys.modules[name].check_space = lambda *a: None
    from sparsecode.cli import main
    sys.argv = ["sparsecode"] + sys.argv[3:]
    main()
    """
)


def _limited(tmp_path, limit: int, skip_precheck: bool, *args):
    return subprocess.run(
        [sys.executable, "-c", LIMITED, str(limit), "1" if skip_precheck else "0", *map(str, args)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env={**os.environ, "NO_COLOR": "1"},
    )


@pytest.mark.parametrize("skip_precheck", [False, True], ids=["refused-up-front", "write-fails-midway"])
def test_encode_into_a_full_disk(tmp_path, run_dir, skip_precheck):
    proc = _limited(tmp_path, 150_000, skip_precheck, "encode", run_dir, SAMPLE, "--out", "codes.h5", "--quiet")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: codes.h5: "), proc.stderr
    if skip_precheck:
        # HDF5 itself may print diagnostics about the handles it cannot release; ours is one line.
        assert "could not write the output" in errors[0] and "nothing was written" in errors[0]
    else:
        assert proc.stderr.strip().splitlines() == errors
        assert "files are limited to 0.1 MB here (ulimit -f)" in errors[0]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("skip_precheck", [False, True], ids=["refused-up-front", "write-fails-midway"])
def test_train_into_a_full_disk(tmp_path, skip_precheck):
    proc = _limited(tmp_path, 100_000, skip_precheck, "train", SAMPLE, "--out", "run", "--hidden", 600,
                    "--k", 4, "--epochs", 1, "--quiet")
    assert proc.returncode == 1, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in proc.stderr and proc.stderr.strip().endswith(error[0]), proc.stderr
    assert ("could not write the output" if skip_precheck else "ulimit -f") in error[0]
    assert os.listdir(tmp_path) == []


def test_output_folder_missing_or_read_only(tmp_path, run_dir):
    with pytest.raises(sc.SparsecodeError, match="folder .* does not exist; create it first"):
        sc.encode(run_dir, SAMPLE, tmp_path / "nope" / "codes.h5")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root may write anywhere: make the check see a read-only folder
        import sparsecode.atomic

        real_access = os.access
        monkey = pytest.MonkeyPatch()
        monkey.setattr(sparsecode.atomic.os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    else:
        monkey = None
    try:
        with pytest.raises(sc.SparsecodeError, match=r"folder .*ro is not writable; choose another output"):
            sc.encode(run_dir, SAMPLE, ro / "codes.h5")
    finally:
        if monkey is not None:
            monkey.undo()
    assert list(ro.iterdir()) == []


def test_codes_file_whose_shape_disagrees(tmp_path, codes_path):
    import h5py

    bad = tmp_path / "bad.h5"
    bad.write_bytes(codes_path.read_bytes())
    with h5py.File(bad, "r+") as f:
        f["codes"].attrs["shape"] = [4000, 200]
    with pytest.raises(sc.SparsecodeError, match="inconsistent: 5000 words but shape says 4000 rows"):
        sc.load_codes(bad)
    with h5py.File(bad, "r+") as f:
        f["codes"].attrs["shape"] = [5000, 100]
    with pytest.raises(sc.SparsecodeError, match=r"inconsistent: unit ids outside 0\.\.99"):
        sc.load_codes(bad)


def _train_cmd(out, *extra):
    return [sys.executable, "-m", "sparsecode", "train", str(SAMPLE), "--out", str(out), "--hidden", "200", "--k", "8",
            "--epochs", "30", "--checkpoint-every", "5", "--device", "cpu", "--quiet", *extra]


def test_resume_after_ctrl_c_sigterm_or_kill_9_gives_identical_weights(tmp_path):
    """Stop a real training process at a random moment after its first checkpoint, resume it with
    the same command plus --resume, and get exactly the weights of an uninterrupted run."""
    import random
    import signal
    import time

    import torch

    env = {**os.environ, "NO_COLOR": "1"}
    subprocess.run(_train_cmd(tmp_path / "ref"), check=True, env=env, capture_output=True, timeout=600)
    reference = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)
    rng = random.Random()
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)):
        out = tmp_path / sig.name
        proc = subprocess.Popen(_train_cmd(out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.3))  # well inside the run: 600 steps, the first checkpoint at step 5
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == code, stderr
        assert not (out / "model.pt").exists(), "training finished before it could be stopped"
        if sig != signal.SIGKILL:
            assert stderr.strip().startswith("interrupted:") and "--resume" in stderr and "Traceback" not in stderr
        resumed = subprocess.run(_train_cmd(out, "--resume"), env=env, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
        weights = torch.load(out / "model.pt", weights_only=True)
        for name, tensor in reference.items():
            assert torch.equal(weights[name], tensor), (sig.name, name)
        assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.jsonl", "model.pt", "summary.json"]


class Payload:
    """Stands for any pickled object a foreign model.pt could smuggle in."""

    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_model_with_a_pickled_object_is_refused(tmp_path, run_dir):
    import torch

    bad = tmp_path / "run"
    bad.mkdir()
    (bad / "config.json").write_text((run_dir / "config.json").read_text())
    state = torch.load(run_dir / "model.pt", weights_only=True)
    state["extra"] = Payload()
    torch.save(state, bad / "model.pt")
    with pytest.raises(sc.SparsecodeError, match="cannot load model weights safely"):
        sc.encode(bad, SAMPLE, tmp_path / "codes.h5")
    assert not (tmp_path / "pwned.txt").exists() and not (tmp_path / "codes.h5").exists()
    assert not os.path.exists("pwned.txt")


def test_corrupt_checkpoint_is_refused(tmp_path, sample):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"garbage")
    cfg = sc.TrainConfig(hidden=50, k=4, epochs=1, device="cpu")
    with pytest.raises(sc.SparsecodeError, match="cannot load the checkpoint safely"):
        sc.train(sample, cfg, out_dir=out, resume=True)
