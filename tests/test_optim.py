"""The training loop's Adam: bit-identical to torch.optim.Adam(fused=True), state saved and restored."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sparsecode.optim import FusedAdam, fused_adam_available, make_adam

pytestmark = pytest.mark.skipif(not fused_adam_available(torch.device("cpu")), reason="no fused Adam for the CPU")


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(7, 5, generator=g)), torch.nn.Parameter(torch.randn(5, 7, generator=g).t()),
            torch.nn.Parameter(torch.randn(3, generator=g))]


def _grads(params, step: int) -> None:
    g = torch.Generator().manual_seed(100 + step)
    for i, p in enumerate(params):
        p.grad = None if (i == 2 and step == 1) else torch.randn(p.shape, generator=g)  # a step without a gradient


def _lockstep(params_a, opt_a, params_b, opt_b, steps, lr=None) -> None:
    """Step both optimizers on the same gradients (and rates, if ``lr(step)``), asserting equal parameters."""
    for step in steps:
        for params, opt in ((params_a, opt_a), (params_b, opt_b)):
            if lr is not None:
                opt.param_groups[0]["lr"] = lr(step)
            _grads(params, step)
            opt.step()
        for a, b in zip(params_a, params_b):
            assert torch.equal(a, b)


def test_same_updates_as_torch_fused_adam_bit_for_bit():
    ours, theirs = _params(0), _params(0)
    opt_ours, opt_theirs = FusedAdam(ours, lr=1e-2), torch.optim.Adam(theirs, lr=1e-2, fused=True)
    _lockstep(ours, opt_ours, theirs, opt_theirs, range(5), lr=lambda step: 1e-2 * (step + 1) / 5)
    for i, p in enumerate(theirs):
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_ours.state[i][name], opt_theirs.state[p][name])


def test_state_dict_round_trip_continues_identically():
    a, b = _params(1), _params(1)
    opt_a = FusedAdam(a, lr=3e-3)
    for step in range(3):
        _grads(a, step)
        opt_a.step()
    saved = torch.load(_roundtrip(opt_a.state_dict()), weights_only=True)
    with torch.no_grad():
        for p, q in zip(b, a):
            p.copy_(q)
    opt_b = FusedAdam(b, lr=0.5)
    opt_b.load_state_dict(saved)
    assert opt_b.param_groups[0]["lr"] == 3e-3
    assert opt_b.state[1]["exp_avg"].stride() == b[1].stride()  # the parameter's own layout
    _lockstep(a, opt_a, b, opt_b, range(3, 6))
    opt_b.zero_grad()
    assert all(p.grad is None for p in b)
    with pytest.raises(ValueError, match="for 3 parameters, not 2"):
        FusedAdam(b[:2], lr=1.0).load_state_dict(saved)


def _roundtrip(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_make_adam_is_ours_and_training_does_not_import_the_compiler(tmp_path):
    assert isinstance(make_adam(_params(2), 1e-3), FusedAdam)
    code = ("import sys, torch, sparsecode as sc\n"
            "from sparsecode.training import Trainer\n"
            "from sparsecode.config import TrainConfig\n"
            "from sparsecode.embeddings import Embeddings\n"
            "import numpy as np\n"
            "e = Embeddings([f'w{i}' for i in range(64)], np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32), '<memory>')\n"
            "t = Trainer(e, TrainConfig(hidden=16, k=2, epochs=1, batch_size=16, device='cpu'))\n"
            "t.train_step()\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_torch_optim_adam_continues_from_our_state():
    """Where make_adam falls back to torch.optim (no fused kernel for the device), a checkpoint of
    FusedAdam still resumes, identically."""
    a, b = _params(3), _params(3)
    opt_a = FusedAdam(a, lr=2e-3)
    for step in range(2):
        _grads(a, step)
        opt_a.step()
    with torch.no_grad():
        for p, q in zip(b, a):
            p.copy_(q)
    opt_b = torch.optim.Adam(b, lr=1.0, fused=True)
    opt_b.load_state_dict(torch.load(_roundtrip(opt_a.state_dict()), weights_only=True))
    _lockstep(a, opt_a, b, opt_b, range(2, 5))


def test_without_a_fused_kernel_make_adam_is_torch_foreach_adam(monkeypatch):
    """Where this torch has no fused kernel for the device, make_adam is torch.optim.Adam(foreach=True):
    the same updates as FusedAdam up to rounding. (Each gradient in its parameter's layout, as autograd
    gives it: the CPU's fused kernel reads a gradient of another layout in the parameter's order.)"""
    import sparsecode.optim as optim

    ours, theirs = _params(4), _params(4)
    monkeypatch.setattr(optim, "fused_adam_available", lambda device: False)
    opt_theirs = make_adam(theirs, lr=2e-3)
    assert type(opt_theirs) is torch.optim.Adam
    assert opt_theirs.param_groups[0]["foreach"] is True and not opt_theirs.param_groups[0]["fused"]
    opt_ours = FusedAdam(ours, lr=2e-3)
    for step in range(4):
        for params, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            _grads(params, step)
            for p in params:
                if p.grad is not None:
                    p.grad = torch.empty_like(p).copy_(p.grad)
            opt.step()
        for p, q in zip(ours, theirs):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
