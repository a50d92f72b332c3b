"""Devices: what --device accepts (auto, cpu, cuda, cuda:N) and the one-line errors when a GPU is missing."""

from __future__ import annotations

import pytest
import torch

import sparsecode as sc
from sparsecode.config import resolve_device
from sparsecode.distributed import from_environment

from .conftest import SAMPLE
from .test_cli import one_line_error, run

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors of a machine without CUDA")


@pytest.fixture()
def two_gpus(monkeypatch):
    """Pretend this machine has two CUDA GPUs (parsing and range checks only: nothing runs on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:1", "cuda:12"])
def test_config_accepts_every_device_form(device):
    sc.TrainConfig(device=device).validate()


@pytest.mark.parametrize("device", ["gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda:0 ", "cuda:0:1", "mps", ""])
def test_config_and_resolve_refuse_other_devices(device):
    message = f"device must be auto, cpu, cuda or cuda:N (got {device!r})"
    with pytest.raises(sc.SparsecodeError) as exc:
        sc.TrainConfig(device=device).validate()
    assert str(exc.value) == message and exc.value.setting == "device"
    with pytest.raises(sc.SparsecodeError) as exc:
        resolve_device(device)
    assert str(exc.value) == message and exc.value.setting == "device"


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_a_cuda_device_without_cuda_is_one_clear_error(device):
    with pytest.raises(sc.SparsecodeError) as exc:
        resolve_device(device)
    assert str(exc.value) == f"device {device}: no CUDA GPU is available here; use device cpu or auto"
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_n_names_that_gpu_and_an_absent_index_is_refused(two_gpus):
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(sc.SparsecodeError) as exc:
        resolve_device("cuda:2")
    assert str(exc.value) == "device cuda:2: there is no GPU 2 here (2 GPUs: cuda:0 to cuda:1); choose one of those"


def test_one_gpu_names_its_only_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(sc.SparsecodeError, match=r"no GPU 1 here \(1 GPU: cuda:0\)"):
        resolve_device("cuda:1")


def test_several_processes_take_one_gpu_each_not_a_named_one(two_gpus, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(sc.SparsecodeError, match=r"^device cuda:1 names one GPU, but each of the 2 processes takes its "
                                                 r"own \(GPU LOCAL_RANK\): use device cuda or auto"):
        from_environment("cuda:1")


@no_cuda
def test_cli_device_errors_are_one_line(tmp_path):
    one_line_error(run("train", SAMPLE, "--out", tmp_path / "r", "--device", "cuda:1", "--quiet", ok=False),
                   "--device cuda:1: no CUDA GPU is available here; use --device cpu or auto")
    one_line_error(run("train", SAMPLE, "--out", tmp_path / "r", "--device", "tpu", "--quiet", ok=False),
                   "--device must be auto, cpu, cuda or cuda:N (got 'tpu')")
    one_line_error(run("train", SAMPLE, "--out", tmp_path / "r", "--device", "cuda:0", "--nproc", "2", ok=False),
                   "--device cuda:0 names one GPU, but each of the 2 processes takes its own")
    one_line_error(run("encode", tmp_path / "run", SAMPLE, "--out", tmp_path / "c.h5", "--device", "cuda:0", ok=False),
                   "--device cuda:0: no CUDA GPU is available here")
    assert "cuda:N" in run("train", "--help").stdout and "cuda:N" in run("encode", "--help").stdout
    assert not (tmp_path / "r").exists()
