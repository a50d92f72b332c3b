"""The CPU fast paths of the top-k core: each gives what the plain torch op it stands for gives."""

from __future__ import annotations

import pytest
import torch

from sparsecode import cpu_kernels
from sparsecode.cpu_kernels import pre_activations, release_workspace, row_order, topk_select, unit_order
from sparsecode.topk import decode, topk_encode


@pytest.fixture()
def torch_ops(monkeypatch):
    """The kernels off: every function runs its plain torch op, as on CUDA."""
    monkeypatch.setattr(cpu_kernels, "ENABLED", False)


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
    out increasing (row_order then spares the sort)."""
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


@pytest.mark.parametrize("n,n_units", [(0, 5), (1, 1), (40, 30), (5000, 1000), (130_000, 3000), (2000, 1 << 16)])
def test_unit_order_is_torch_sort_stable(n, n_units):
    """The radix order (16-bit keys) is the stable sort's permutation itself, not just a sort: equal
    ids keep their positions' order, up to the largest id a 16-bit key holds."""
    g = torch.Generator().manual_seed(n)
    flat = (torch.rand(n, generator=g) ** 3 * n_units).long().clamp_max(n_units - 1)  # many repeats
    if n:
        flat[-1] = n_units - 1
    got = unit_order(flat, n_units)
    assert got.dtype == torch.int64 and torch.equal(got, torch.sort(flat, stable=True).indices)


def test_unit_order_beyond_16_bits_is_torch_sort(torch_ops):
    flat = torch.tensor([70_000, 3, 70_000, 1])
    assert torch.equal(unit_order(flat, 80_000), torch.tensor([3, 1, 0, 2]))


@pytest.mark.parametrize("shape", [(0, 4), (5, 1), (30, 8), (200, 32)])
def test_row_order_sorts_rows_or_says_they_are_sorted(shape):
    g = torch.Generator().manual_seed(shape[0])
    shuffled = torch.rand(shape[0], 100, generator=g).argsort(1)[:, : shape[1]]  # distinct ids per row
    ascending = shuffled.sort(1).values
    assert row_order(ascending) is None
    order = row_order(shuffled)
    if shape[1] > 1 and shape[0] > 0:
        assert torch.equal(shuffled.gather(1, order), ascending)
        assert torch.equal(order, shuffled.sort(1).indices)
    else:
        assert order is None


def test_row_order_always_sorts_on_the_torch_path(torch_ops):
    ascending = torch.tensor([[1, 4, 9], [0, 2, 3]])
    assert torch.equal(row_order(ascending), torch.arange(3).expand(2, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pre_activations_equal_addmm_and_keep_earlier_results(dtype):
    """The kept buffer gives addmm's values exactly; an earlier call's output is not overwritten by
    a later one (a smaller, then larger batch), and inference mode gets addmm's own output."""
    g = torch.Generator().manual_seed(6)
    W, b = torch.randn(12, 300, dtype=dtype, generator=g), torch.randn(300, dtype=dtype, generator=g)
    xs = [torch.randn(n, 12, dtype=dtype, generator=g) for n in (64, 16, 256)]
    release_workspace()
    outs = []
    for x in xs:
        out = pre_activations(b, x, W)
        assert torch.equal(out, torch.addmm(b, x, W))
        outs.append(out.clone())
    with cpu_kernels.kept_workspace():
        again = [pre_activations(b, x, W) for x in xs]
        assert torch.equal(again[-1], outs[-1])
    assert "buffers" not in cpu_kernels._CPU_WORKSPACE.__dict__  # released when the block ends
    with torch.inference_mode():
        assert torch.equal(pre_activations(b, xs[0], W), outs[0])
    assert "buffers" not in cpu_kernels._CPU_WORKSPACE.__dict__


def test_biased_equals_the_sum_in_a_buffer_of_its_own():
    """The selection-biased pre-activations: exactly pre + bias, in a kept buffer that is not the
    pre-activations' own (which stay as they were), reused by the next call of the same size."""
    g = torch.Generator().manual_seed(7)
    W, b, bias = torch.randn(12, 300, generator=g), torch.randn(300, generator=g), torch.randn(300, generator=g)
    x = torch.randn(64, 12, generator=g)
    with cpu_kernels.kept_workspace():
        pre = pre_activations(b, x, W)
        before = pre.clone()
        first = cpu_kernels.biased(pre, bias)
        assert torch.equal(first, before + bias) and torch.equal(pre, before)
        assert first.data_ptr() != pre.data_ptr()
        assert cpu_kernels.biased(pre, bias).data_ptr() == first.data_ptr()
    with torch.inference_mode():
        assert torch.equal(cpu_kernels.biased(before, bias), before + bias)


def test_a_training_step_is_the_same_with_the_kernels_on_and_off(monkeypatch):
    """The kernels change how the step is computed, not what: the codes and every gradient of an
    encode-decode step match the plain torch ops' (float64, a shape where every kernel is used)."""
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
