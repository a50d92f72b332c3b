"""The CPU fast path of the top-k core: it picks what torch.topk picks."""

from __future__ import annotations

import pytest
import torch

from sparsecode import cpu_kernels
from sparsecode.cpu_kernels import topk_select
from sparsecode.topk import decode, topk_encode


@pytest.mark.parametrize("rows,n,k", [(1, 16, 4), (7, 200, 8), (64, 1000, 32), (33, 3000, 32), (5, 4096, 1), (3, 100, 50), (4, 1009, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_topk_select_picks_what_torch_topk_picks(rows, n, k, dtype):
    a = torch.randn(rows, n, dtype=dtype, generator=torch.Generator().manual_seed(n + k))
    vals, idx = topk_select(a, k)
    ref_vals, ref_idx = a.topk(k, dim=1)
    assert idx.dtype == torch.int64 and vals.shape == idx.shape == (rows, k)
    assert torch.equal(idx.sort(1).values, ref_idx.sort(1).values)
    assert torch.equal(vals, a.gather(1, idx))


def test_topk_select_takes_the_block_path_and_returns_columns_in_order():
    """At a training shape the blocks are used (S=40 for H=3000, k=32), and each row's columns come
    out increasing."""
    assert cpu_kernels._block_size(3000, 32) > 0
    a = torch.randn(50, 3000, generator=torch.Generator().manual_seed(4))
    _, idx = topk_select(a, 32)
    assert (idx.diff(1) > 0).all()
    assert torch.equal(idx, a.topk(32, dim=1).indices.sort(1).values)


def test_topk_select_with_ties_and_nan():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (50, 1000), generator=g).float()  # ties at the k-th value in every row
    vals, idx = topk_select(a, 32)
    assert torch.equal(vals.sort(1).values, a.topk(32, dim=1).values.sort(1).values)
    assert torch.equal(a.gather(1, idx), vals)
    assert (idx.sort(1).values.diff(1) > 0).all()  # 32 distinct columns per row
    a = torch.randn(3, 1000, generator=g)
    a[1, 17] = float("nan")  # torch.topk counts NaN as the largest value; so does topk_select
    assert 17 in topk_select(a, 32)[1][1].tolist()


def test_topk_select_row_with_nan_beside_a_row_with_ties():
    a = torch.randn(2, 1000, generator=torch.Generator().manual_seed(3))
    a[0, :40] = float("nan")  # 32 NaN would be the top: >= counts none of them
    a[1, :64] = 10.0  # 64 columns tie for the top 32
    vals, idx = topk_select(a, 32)
    assert vals[0].isnan().all() and (vals[1] == 10.0).all()
    assert (idx[0] < 40).all() and (idx[1] < 64).all()


def test_a_training_step_is_the_same_with_the_kernel_on_and_off(monkeypatch):
    """The block top-k changes how the step is computed, not what: the codes and every gradient of an
    encode-decode step match torch.topk's (float64, a shape where the blocks are used)."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(64, 20, dtype=torch.float64, generator=g)
    params = [torch.randn(20, 1000, dtype=torch.float64, generator=g), torch.zeros(1000, dtype=torch.float64),
              torch.randn(1000, 20, dtype=torch.float64, generator=g), torch.zeros(20, dtype=torch.float64)]

    def step():
        W_enc, b_enc, W_dec, b_dec = (p.clone().requires_grad_() for p in params)
        enc = topk_encode(x, W_enc, b_enc, 32)
        loss = (x - decode(enc.acts, enc.indices, W_dec, b_dec, impl="sparse")).pow(2).sum()
        order = enc.indices.argsort(1)
        return (enc.indices.gather(1, order), enc.acts.gather(1, order),
                *torch.autograd.grad(loss, (W_enc, b_enc, W_dec, b_dec)))

    with_kernels = step()
    monkeypatch.setattr(cpu_kernels, "ENABLED", False)
    without = step()
    assert torch.equal(with_kernels[0], without[0])
    for a, b in zip(with_kernels[1:], without[1:]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
