"""The device seam: one object per device type, resolved once from the device setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparsecode as sc
from sparsecode.devices import Device, for_torch, resolve
from sparsecode.training import Trainer

from .conftest import SMALL


def test_the_cpu_streams_its_data_and_copies_nothing():
    cpu = resolve("cpu")
    assert type(cpu) is Device and cpu.device == torch.device("cpu") and cpu.backend == "gloo" and not cpu.prefetch
    assert not cpu.keeps_data(10**9, 300) and cpu.for_process(3, 1) is cpu
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = cpu.tensor(rows)
    assert t.data_ptr() == rows.__array_interface__["data"][0]  # the array itself, no copy
    entry = cpu.to_host(t, t + 1)
    assert entry[1] is None and Device.wait(entry)[0] is t
    out = cpu.run(lambda: (t * 2,), side=True)
    assert torch.equal(cpu.ready(out)[0], t * 2)
    with cpu.scope():
        assert torch.zeros(1).device.type == "cpu"
    cpu.synchronize()


def test_a_trainer_takes_its_device_once(sample):
    cpu = for_torch("cpu")
    trainer = Trainer(sample, sc.TrainConfig(**SMALL), device=cpu)
    assert trainer.dev is cpu and trainer.source.feed is cpu and trainer.model.W_dec.device.type == "cpu"


def test_another_device_type_is_a_module_of_its_own():
    # sparsecode/device_<type>.py: a type without one is not silently taken for a CPU.
    with pytest.raises(ModuleNotFoundError, match="sparsecode.device_meta"):
        for_torch("meta")
