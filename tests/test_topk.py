"""The top-k core: gradient checks against the dense reference, exact agreement, AuxK picks."""

from __future__ import annotations

import pytest
import torch

from sparsecode.topk import SparseDecode, TopKEncode, decode, dense_decode, dense_encode, topk_encode

B, D, H, K = 7, 6, 16, 4


@pytest.fixture()
def params():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, D, dtype=torch.float64, generator=g)
    W_enc = torch.randn(D, H, dtype=torch.float64, generator=g).requires_grad_()
    b_enc = (0.1 * torch.randn(H, dtype=torch.float64, generator=g)).requires_grad_()
    W_dec = torch.randn(H, D, dtype=torch.float64, generator=g).requires_grad_()
    b_dec = torch.randn(D, dtype=torch.float64, generator=g).requires_grad_()
    return x, W_enc, b_enc, W_dec, b_dec


def _sorted(acts, idx):
    order = idx.argsort(1)
    return acts.gather(1, order), idx.gather(1, order)


def test_encode_matches_dense_reference_and_keeps_relu_zeros(params):
    x, W_enc, b_enc, *_ = params
    enc = topk_encode(x, W_enc, b_enc, K)
    ref_acts, ref_idx = dense_encode(x, W_enc, b_enc, K)
    a, i = _sorted(enc.acts, enc.indices)
    ra, ri = _sorted(ref_acts, ref_idx)
    assert torch.equal(i, ri)
    torch.testing.assert_close(a, ra, rtol=1e-12, atol=1e-12)
    assert (enc.acts >= 0).all()
    pre = x @ W_enc + b_enc
    # Exactly the k largest pre-activations of every row were kept.
    kth = pre.topk(K, dim=1).values[:, -1:]
    assert torch.equal(pre.gather(1, enc.indices) >= kth, torch.ones(B, K, dtype=torch.bool))


def test_encode_gradcheck(params):
    x, W_enc, b_enc, *_ = params
    x = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, W, b: TopKEncode.apply(x, W, b, K, 0, None)[0], (x, W_enc, b_enc))


def test_encode_gradients_equal_dense_reference(params):
    x, W_enc, b_enc, *_ = params
    x = x.clone().requires_grad_()
    weights = torch.randn(B, H, dtype=torch.float64)
    enc = topk_encode(x, W_enc, b_enc, K)
    loss = (enc.acts * weights.gather(1, enc.indices)).sum()
    ref_acts, ref_idx = dense_encode(x, W_enc, b_enc, K)
    ref = (ref_acts * weights.gather(1, ref_idx)).sum()
    got = torch.autograd.grad(loss, (x, W_enc, b_enc))
    want = torch.autograd.grad(ref, (x, W_enc, b_enc))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_decode_gradcheck_values_weights_bias(params):
    x, W_enc, b_enc, W_dec, b_dec = params
    with torch.no_grad():
        enc = topk_encode(x, W_enc, b_enc, K)
    acts = torch.rand(B, K, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, W, b: SparseDecode.apply(a, enc.indices, W, b), (acts, W_dec, b_dec))


def test_decode_equals_dense_reference_forward_and_backward(params):
    x, W_enc, b_enc, W_dec, b_dec = params
    with torch.no_grad():
        enc = topk_encode(x, W_enc, b_enc, K)
    acts = enc.acts.clone().requires_grad_()
    grad_out = torch.randn(B, D, dtype=torch.float64)
    sparse = decode(acts, enc.indices, W_dec, b_dec, impl="sparse")
    dense = dense_decode(acts, enc.indices, W_dec, b_dec)
    torch.testing.assert_close(sparse, dense, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(sparse, (acts, W_dec, b_dec), grad_out)
    want = torch.autograd.grad(dense, (acts, W_dec, b_dec), grad_out)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_full_step_sparse_equals_dense_in_float32():
    """The training step's gradients through both paths agree in float32 at a realistic width."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 50, generator=g)
    W_enc = torch.randn(50, 1000, generator=g).requires_grad_()
    b_enc = torch.zeros(1000).requires_grad_()
    W_dec = torch.randn(1000, 50, generator=g).requires_grad_()
    b_dec = torch.zeros(50).requires_grad_()
    enc = topk_encode(x, W_enc, b_enc, 32)
    loss = (x - decode(enc.acts, enc.indices, W_dec, b_dec, impl="sparse")).pow(2).sum()
    ra, ri = dense_encode(x, W_enc, b_enc, 32)
    ref = (x - dense_decode(ra, ri, W_dec, b_dec)).pow(2).sum()
    for got, want in zip(torch.autograd.grad(loss, (W_enc, b_enc, W_dec, b_dec)),
                         torch.autograd.grad(ref, (W_enc, b_enc, W_dec, b_dec))):
        # float32 sums in a different order: compare against the gradient's own scale.
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()


def test_aux_picks_only_dead_units_and_zeroes_the_rest(params):
    x, W_enc, b_enc, *_ = params
    dead = torch.zeros(H, dtype=torch.bool)
    dead[[1, 5, 9]] = True
    enc = topk_encode(x, W_enc, b_enc, K, aux_k=5, dead=dead)
    assert enc.aux_indices.shape == (B, 5)
    picked_live = ~dead[enc.aux_indices]
    assert (enc.aux_acts[picked_live] == 0).all()  # only 3 dead units: 2 picks per row are padding
    pre = x @ W_enc + b_enc
    want = pre[:, [1, 5, 9]].clamp_min(0).sort(1).values
    got = torch.where(dead[enc.aux_indices], enc.aux_acts, torch.full_like(enc.aux_acts, -1.0)).sort(1).values[:, 2:]
    torch.testing.assert_close(got, want)


def test_aux_gradcheck(params):
    x, W_enc, b_enc, *_ = params
    dead = torch.zeros(H, dtype=torch.bool)
    dead[[0, 3, 7, 8, 12, 15]] = True

    def f(W, b):
        out = TopKEncode.apply(x, W, b, K, 3, dead)
        return out[0], out[2]

    assert torch.autograd.gradcheck(f, (W_enc, b_enc))


def test_cpu_backward_is_deterministic(params):
    x, W_enc, b_enc, W_dec, b_dec = (p.float().detach().requires_grad_(p.requires_grad) for p in params)
    grads = []
    for _ in range(2):
        enc = topk_encode(x, W_enc, b_enc, K)
        out = decode(enc.acts, enc.indices, W_dec, b_dec, impl="sparse").pow(2).sum()
        grads.append(torch.autograd.grad(out, (W_enc, b_enc, W_dec, b_dec)))
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_outer_index_add_equals_the_dense_product():
    """The per-unit embedding bag gives S.T @ rows exactly as a dense (B, H) S would, including units
    no entry picks (zero rows) and a unit picked twice by one example."""
    from sparsecode import topk

    g = torch.Generator().manual_seed(3)
    Bn, m, n_units, Dn = 40, 5, 30, 7
    indices = torch.randint(0, n_units - 4, (Bn, m), generator=g)  # the last 4 units never picked
    indices[0, 1] = indices[0, 0]
    grads = torch.randn(Bn, m, dtype=torch.float64, generator=g)
    rows = torch.randn(Bn, Dn, dtype=torch.float64, generator=g)
    S = torch.zeros(Bn, n_units, dtype=torch.float64).index_put_(
        (torch.arange(Bn).repeat_interleave(m), indices.reshape(-1)), grads.reshape(-1), accumulate=True)
    out = topk._outer_index_add(indices, grads, rows, n_units)
    assert out.shape == (n_units, Dn) and out.is_contiguous()
    torch.testing.assert_close(out, S.t() @ rows, rtol=1e-12, atol=1e-12)
    assert torch.equal(out[-4:], torch.zeros(4, Dn, dtype=torch.float64))
    # An empty batch: all zeros.
    empty = topk._outer_index_add(indices[:0], grads[:0], rows[:0], n_units)
    assert torch.equal(empty, torch.zeros(n_units, Dn, dtype=torch.float64))


def test_encode_with_shift_gradcheck_and_equals_subtracting_first(params):
    """The shift (a single-layer model's decoder bias) gets -W_enc @ grad_b_enc as its gradient:
    the same as autograd gives when the caller subtracts it, and gradcheck agrees."""
    x, W_enc, b_enc, _, b_dec = params
    assert torch.autograd.gradcheck(
        lambda W, b, s: TopKEncode.apply(x, W, b, K, 0, None, s)[0], (W_enc, b_enc, b_dec))
    weights = torch.randn(B, H, dtype=torch.float64)
    enc = topk_encode(x, W_enc, b_enc, K, shift=b_dec)
    first = topk_encode(x - b_dec, W_enc, b_enc, K)
    assert torch.equal(enc.indices, first.indices)
    got = torch.autograd.grad((enc.acts * weights.gather(1, enc.indices)).sum(), (W_enc, b_enc, b_dec))
    want = torch.autograd.grad((first.acts * weights.gather(1, first.indices)).sum(), (W_enc, b_enc, b_dec))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_encoding_batches_of_several_sizes_and_threads():
    """Batches of several sizes, one after the other and from several threads at once, each give
    their own codes; inference mode first does not spoil training after it."""
    from concurrent.futures import ThreadPoolExecutor

    g = torch.Generator().manual_seed(5)
    W, b = torch.randn(6, 40, generator=g), torch.randn(40, generator=g)
    xs = [torch.randn(n, 6, generator=g) for n in (30, 90, 10)]
    want = [dense_encode(x, W, b, 5) for x in xs]
    got = [topk_encode(x, W, b, 5) for x in xs]
    for (ra, ri), enc in zip(want, got):
        a, i = _sorted(enc.acts, enc.indices)
        assert torch.equal(i, _sorted(ra, ri)[1])
        torch.testing.assert_close(a, _sorted(ra, ri)[0])  # addmm and x @ W + b round differently
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda x: topk_encode(x, W, b, 5), xs * 20))
    for enc, ref in zip(threaded, got * 20):
        assert torch.equal(enc.indices, ref.indices) and torch.equal(enc.acts, ref.acts)
    with torch.inference_mode():
        first = topk_encode(xs[0], W, b, 5)
    Wg = W.clone().requires_grad_()
    topk_encode(xs[0], Wg, b, 5).acts.sum().backward()
    assert torch.equal(first.indices, got[0].indices) and Wg.grad is not None


def test_selection_bias_chooses_units_without_entering_activations(params):
    """A selection bias changes which units a row takes, not their values: equal to the dense
    reference, gradcheck agrees, and a large bias on one unit makes every row take it."""
    x, W_enc, b_enc, *_ = params
    bias = torch.zeros(H, dtype=torch.float64)
    bias[3] = 100.0
    enc = topk_encode(x, W_enc, b_enc, K, select_bias=bias)
    assert (enc.indices == 3).any(1).all()
    pre = x @ W_enc + b_enc
    torch.testing.assert_close(enc.acts, pre.gather(1, enc.indices).clamp_min(0), rtol=1e-12, atol=1e-12)
    ref_acts, ref_idx = dense_encode(x, W_enc, b_enc, K, select_bias=bias)
    a, i = _sorted(enc.acts, enc.indices)
    ra, ri = _sorted(ref_acts, ref_idx)
    assert torch.equal(i, ri)
    torch.testing.assert_close(a, ra, rtol=1e-12, atol=1e-12)
    bias = torch.randn(H, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, W, b: TopKEncode.apply(x, W, b, K, 0, None, None, bias)[0], (x, W_enc, b_enc))
    weights = torch.randn(B, H, dtype=torch.float64)
    enc = topk_encode(x, W_enc, b_enc, K, select_bias=bias)
    ref_acts, ref_idx = dense_encode(x, W_enc, b_enc, K, select_bias=bias)
    got = torch.autograd.grad((enc.acts * weights.gather(1, enc.indices)).sum(), (x, W_enc, b_enc))
    want = torch.autograd.grad((ref_acts * weights.gather(1, ref_idx)).sum(), (x, W_enc, b_enc))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,n_units", [(0, 5), (1, 1), (40, 30), (5000, 1000), (3000, 7)])
def test_unit_offsets_equal_bincount(n, n_units):
    """The scatter-add counts (no host read on CUDA) give bincount's offsets exactly, skewed use included."""
    from sparsecode.topk import unit_offsets

    g = torch.Generator().manual_seed(n)
    flat = (torch.rand(n, generator=g) ** 4 * n_units).long()  # most entries on the first units
    want = torch.zeros(n_units + 1, dtype=torch.int64)
    want[1:] = torch.bincount(flat, minlength=n_units).cumsum(0)
    got = unit_offsets(flat, n_units)
    assert got.dtype == torch.int64 and torch.equal(got, want)


def test_decode_backward_does_not_depend_on_the_order_of_indices(params):
    """CUDA's top-k returns each row's units in any order: the sparse decoder's gradients are the same
    for every order within a row (shuffled, sorted, descending), equal the dense reference, and pass
    gradcheck with shuffled indices."""
    x, W_enc, b_enc, W_dec, b_dec = params
    with torch.no_grad():
        enc = topk_encode(x, W_enc, b_enc, K)
    g = torch.Generator().manual_seed(11)
    acts = torch.rand(B, K, dtype=torch.float64, generator=g)
    grad_out = torch.randn(B, D, dtype=torch.float64, generator=g)
    shuffle = torch.rand(B, K, generator=g).argsort(1)
    ascending = enc.indices.sort(1).indices
    orders = {"shuffled": shuffle, "ascending": ascending, "descending": ascending.flip(1)}
    assert not (enc.indices.gather(1, shuffle).diff(1) > 0).all()  # really out of order
    ref_a = acts.clone().requires_grad_()
    want = torch.autograd.grad(dense_decode(ref_a, enc.indices, W_dec, b_dec), (ref_a, W_dec, b_dec), grad_out)
    for name, order in orders.items():
        idx = enc.indices.gather(1, order)
        a = acts.gather(1, order).requires_grad_()
        out = decode(a, idx, W_dec, b_dec, impl="sparse")
        got = torch.autograd.grad(out, (a, W_dec, b_dec), grad_out)
        # The activations' gradient follows the permutation; the weights' and bias's do not change.
        torch.testing.assert_close(got[0], want[0].gather(1, order), rtol=1e-12, atol=1e-12, msg=name)
        for u, v in zip(got[1:], want[1:]):
            torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12, msg=name)
    idx = enc.indices.gather(1, shuffle)
    a = acts.gather(1, shuffle).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, W, b: SparseDecode.apply(a, idx, W, b), (a, W_dec, b_dec))
