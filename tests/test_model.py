"""The model: normalisation, initialisation, unit-norm decoder, and the model.pt contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sparsecode as sc
from sparsecode.model import SparseAutoencoder, estimate_normalisation
from sparsecode.modelfile import META, STATE_SHAPES


def test_normalisation_centres_and_scales_to_unit_variance_per_dimension(sample):
    x = torch.from_numpy(sample.vectors)
    norm = estimate_normalisation(x)
    xn = (x - norm.mean) / norm.scale
    torch.testing.assert_close(xn.double().mean(0), torch.zeros(50, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(xn.double().pow(2).sum(1).mean(), torch.tensor(50.0, dtype=torch.float64), rtol=1e-5, atol=0)


def test_initialisation_is_tied_unit_norm_with_bias_at_data_mean(sample):
    model = SparseAutoencoder(50, 300)
    x = torch.from_numpy(sample.vectors)
    model.initialise(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.W_dec.norm(dim=1), torch.ones(300))
    assert torch.equal(model.W_enc, model.W_dec.t())
    torch.testing.assert_close(model.b_dec, model.normalise(x).mean(0))
    assert torch.equal(model.b_enc, torch.zeros(300))


def test_parallel_gradient_is_removed():
    model = SparseAutoencoder(8, 20)
    model.initialise(torch.randn(100, 8), generator=torch.Generator().manual_seed(0))
    model.W_dec.grad = torch.randn(20, 8)
    model.remove_parallel_decoder_grad()
    torch.testing.assert_close((model.W_dec.grad * model.W_dec).sum(1), torch.zeros(20), atol=1e-6, rtol=0)


def test_weights_file_contract(run_dir, sample, codes):
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert set(state) == set(STATE_SHAPES) | set(META) | {"select_bias"}  # topk trains with a selection bias by default
    assert bytes(state.pop("meta.sparsity").tolist()) == b"topk" and state.pop("meta.encode_k").item() == 8
    assert bytes(state.pop("meta.geometry").tolist()) == b"cosine"  # topk's default
    D, H = 50, 200
    assert state["select_bias"].shape == (H,)
    assert state["W_enc"].shape == (D, H) and state["b_enc"].shape == (H,)
    assert state["W_dec"].shape == (H, D) and state["b_dec"].shape == (D,)
    assert state["input_mean"].shape == (D,) and state["input_scale"].shape == ()
    assert all(t.dtype == torch.float32 for t in state.values())
    # Decoder rows stayed unit-norm through training.
    torch.testing.assert_close(state["W_dec"].norm(dim=1), torch.ones(H), atol=1e-5, rtol=0)
    # The documented reconstruction from stored codes equals the model's own decode.
    rows = np.arange(0, 5000, 97)
    z = torch.from_numpy(codes.dense(rows))
    x_hat = (z @ state["W_dec"] + state["b_dec"]) * state["input_scale"] + state["input_mean"]
    model = SparseAutoencoder.load(run_dir / "model.pt")
    with torch.no_grad():
        ref = model(torch.from_numpy(sample.vectors[rows]), k=8)
    torch.testing.assert_close(x_hat, ref, atol=1e-5, rtol=1e-5)


def test_load_rejects_wrong_shapes_and_non_weights(tmp_path, run_dir):
    state = torch.load(run_dir / "model.pt", weights_only=True)
    state["b_enc"] = torch.zeros(7)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(sc.SparsecodeError, match=r"b_enc has shape \(7,\), expected \(200,\)"):
        SparseAutoencoder.load(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(sc.SparsecodeError, match="cannot load model weights safely"):
        SparseAutoencoder.load(tmp_path / "junk.pt")
    with pytest.raises(sc.SparsecodeError, match="model weights not found"):
        SparseAutoencoder.load(tmp_path / "missing.pt")


def test_encoder_weights_are_stored_one_row_per_unit_and_read_as_d_by_h():
    """W_enc (D, H) is a view of the contiguous (H, D) parameter that the sparse backward and Adam
    work on without copies; state dicts, model.pt and load_state_dict still speak W_enc (D, H), in
    the documented order."""
    model = SparseAutoencoder(8, 20)
    model.initialise(torch.randn(100, 8), generator=torch.Generator().manual_seed(0))
    assert model.W_enc_units.shape == (20, 8) and model.W_enc_units.is_contiguous()
    assert model.W_enc.shape == (8, 20) and model.W_enc.data_ptr() == model.W_enc_units.data_ptr()
    state = model.state_dict()
    assert list(state)[:4] == ["W_enc", "b_enc", "W_dec", "b_dec"]
    assert torch.equal(state["W_enc"], model.W_enc)
    weights = model.weights()
    assert weights["W_enc"].shape == (8, 20) and weights["W_enc"].is_contiguous()
    other = SparseAutoencoder(8, 20)
    other.load_state_dict({**weights, "W_enc": weights["W_enc"] * 2})
    assert torch.equal(other.W_enc, weights["W_enc"] * 2)
    # The gradient arrives in the parameter's own layout (no copy into it).
    x = torch.randn(16, 8)
    enc = model.encode(x, 3)
    model.decode(enc.acts, enc.indices).sum().backward()
    assert model.W_enc_units.grad.shape == (20, 8) and model.W_enc_units.grad.is_contiguous()


def test_kmeans_initialisation_puts_decoder_rows_on_the_clusters():
    """Six tight clusters along +-e1, +-e2, +-e3: the spherical k-means centroids land on them."""
    g = torch.Generator().manual_seed(0)
    dirs = torch.cat([torch.eye(6)[:3], -torch.eye(6)[:3]])
    x = (5 * dirs.repeat_interleave(50, 0) + 0.05 * torch.randn(300, 6, generator=g))
    model = SparseAutoencoder(6, 6)
    model.initialise(x, generator=torch.Generator().manual_seed(0))
    start = model.W_dec.clone()
    model.initialise_from_centroids(model.normalise(x), 1, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.W_dec.norm(dim=1), torch.ones(6))
    scale = model.W_enc[0, 0] / model.W_dec[0, 0]  # tied up to the one factor that reconstructs best
    torch.testing.assert_close(model.W_enc, model.W_dec.t() * scale)
    assert 0.9 < float(scale.detach()) < 1.1  # one tight cluster per row: the projection is the coefficient
    fit = lambda w: (w @ dirs.t()).max(1).values  # noqa: E731 - each row's cosine with its nearest cluster
    assert (fit(model.W_dec) > 0.99).all() and (fit(start) < 0.99).any()
    assert sorted((model.W_dec @ dirs.t()).argmax(1).tolist()) == list(range(6))  # one row per cluster


def test_selection_bias_travels_in_model_pt_and_old_files_load_without_it(run_dir, sample, tmp_path):
    model = SparseAutoencoder.load(run_dir / "model.pt")
    assert model.select_bias is not None and model.select_bias.abs().sum() > 0  # training moved it
    x = torch.from_numpy(sample.vectors[:64])
    with torch.no_grad():
        enc = model.encode(x, 8)
        pre = model.pre_acts(model.normalise(x))
        want = (pre + model.select_bias).topk(8, dim=1).indices
    assert torch.equal(enc.indices.sort(1).values, want.sort(1).values)
    state = torch.load(run_dir / "model.pt", weights_only=True)
    del state["select_bias"]
    torch.save(state, tmp_path / "old.pt")
    old = SparseAutoencoder.load(tmp_path / "old.pt")
    assert old.select_bias is None and "select_bias" not in old.state_dict()
    with torch.no_grad():
        assert torch.equal(old.encode(x, 8).indices.sort(1).values, pre.topk(8, dim=1).indices.sort(1).values)


#: One model of every kind a run can write: each objective, an encode k or none, hidden layers, a selection bias.
KINDS = {
    "topk": dict(sparsity="topk", encode_k=4),
    "topk+select_bias": dict(sparsity="topk", encode_k=4, select_bias=True),
    "topk+encoder_layers": dict(sparsity="topk", encode_k=4, encoder_layers=(12,), select_bias=True),
    "batchtopk": dict(sparsity="batchtopk"),
    "batchtopk+encode_k": dict(sparsity="batchtopk", encode_k=3),
    "kl": dict(sparsity="kl"),
    "l1+encode_k": dict(sparsity="l1", encode_k=5),
    "spine": dict(sparsity="spine"),
    "spine+encoder_layers": dict(sparsity="spine", encoder_layers=(12,)),
}


def _model_of_kind(sparsity, encode_k=None, encoder_layers=(), select_bias=False):
    """A small model of that kind with weights that give every objective non-trivial codes: a learned
    threshold in the middle of the pre-activations, SPINE codes at their cap of 1 and below."""
    g = torch.Generator().manual_seed(len(sparsity) + len(encoder_layers))
    x = torch.randn(64, 10, generator=g)
    model = SparseAutoencoder(10, 24, sparsity=sparsity, encoder_layers=encoder_layers, encode_k=encode_k)
    model.initialise(x, generator=g)
    with torch.no_grad():
        model.W_enc.mul_(3.0)
        model.b_enc.copy_(0.1 * torch.randn(24, generator=g))
        if sparsity == "batchtopk":
            pre = model.pre_acts(model.normalise(x))
            model.threshold.fill_(float(pre[pre > 0].median()))
    if select_bias:
        model.use_select_bias()
        model.select_bias.copy_(torch.randn(24, generator=g))
    return model, x


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_model_round_trips_through_model_pt_alone(tmp_path, kind):
    """model.pt describes itself: loaded with no sparsity given, every kind of model comes back as
    the same objective, encode k, hidden layers and selection bias, with the same codes."""
    settings = KINDS[kind]
    model, x = _model_of_kind(**settings)
    model.save(tmp_path / "model.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert bytes(state["meta.sparsity"].tolist()).decode() == settings["sparsity"]
    assert int(state["meta.encode_k"]) == (settings.get("encode_k") or 0)
    loaded = SparseAutoencoder.load(tmp_path / "model.pt")
    assert (loaded.sparsity, loaded.encode_k, loaded.encoder_layers) == (
        settings["sparsity"], settings.get("encode_k"), tuple(settings.get("encoder_layers", ())))
    assert (loaded.select_bias is not None) == settings.get("select_bias", False)
    assert loaded.fingerprint() == model.fingerprint()
    if settings["sparsity"] == "batchtopk":
        assert float(loaded.threshold) > 0 and torch.equal(loaded.threshold, model.threshold)
    with torch.no_grad():
        want, got = model.encode(x), loaded.encode(x)
    assert torch.equal(got.indices, want.indices) and torch.equal(got.acts, want.acts)
    assert (got.acts > 0).any(1).double().mean() > 0.8  # codes, not zeros
    if settings["sparsity"] == "spine":
        assert float(got.acts.max()) == 1.0 and ((got.acts > 0) & (got.acts < 1)).any()  # capped and below the cap
    if settings["sparsity"] == "batchtopk":
        assert float(got.acts[got.acts > 0].min()) > float(model.threshold)


@pytest.mark.parametrize("kind", ["topk+select_bias", "batchtopk", "spine+encoder_layers"])
def test_files_written_before_the_meta_tensors_load_as_topk_or_as_told(tmp_path, kind):
    """A model.pt without meta.sparsity and meta.encode_k loads as topk with no encode k, or as the
    objective the caller passes (what load_run reads from config.json), with the same codes."""
    settings = KINDS[kind]
    model, x = _model_of_kind(**settings)
    state = {name: t for name, t in model.weights().items() if name not in META}
    torch.save(state, tmp_path / "old.pt")
    told = SparseAutoencoder.load(tmp_path / "old.pt", sparsity=settings["sparsity"])
    assert told.sparsity == settings["sparsity"] and told.encode_k is None
    k = settings.get("encode_k")
    with torch.no_grad():
        want, got = model.encode(x, k), told.encode(x, k)
    assert torch.equal(got.indices, want.indices) and torch.equal(got.acts, want.acts)
    if settings["sparsity"] == "batchtopk":  # its threshold is not a top-k model's
        with pytest.raises(sc.SparsecodeError, match="unexpected tensor.s. threshold"):
            SparseAutoencoder.load(tmp_path / "old.pt")
    else:  # nothing in the file says otherwise
        untold = SparseAutoencoder.load(tmp_path / "old.pt")
        assert untold.sparsity == "topk" and untold.encode_k is None
        with pytest.raises(sc.SparsecodeError, match="does not record its encode k"):
            untold.encode(x)


def test_a_recorded_objective_is_checked_once_against_the_callers(tmp_path):
    model, _ = _model_of_kind(**KINDS["kl"])
    model.save(tmp_path / "model.pt")
    with pytest.raises(sc.SparsecodeError, match="trained with sparsity kl, not topk"):
        SparseAutoencoder.load(tmp_path / "model.pt", sparsity="topk")
    state = model.weights()
    state["meta.sparsity"] = torch.tensor(list(b"newer"), dtype=torch.uint8)
    torch.save(state, tmp_path / "newer.pt")
    with pytest.raises(sc.SparsecodeError, match="unknown sparsity 'newer'; the file is from a newer sparsecode"):
        SparseAutoencoder.load(tmp_path / "newer.pt")


def test_impossible_shapes_are_one_clear_error(tmp_path):
    model, _ = _model_of_kind(**KINDS["topk"])
    for name, bad in (("W_enc", torch.zeros(5)), ("input_mean", torch.zeros(())), ("input_mean", torch.zeros(2, 10))):
        state = {**model.weights(), name: bad}
        with pytest.raises(sc.SparsecodeError, match="model.pt: tensors of impossible shapes; the file is corrupt"):
            SparseAutoencoder.from_weights(state)


def test_the_core_imports_neither_h5py_rich_typer_nor_the_cli():
    """topk, model (with its file format and the CPU kernels) and objectives, imported in a fresh
    interpreter without the package's __init__ (which imports the whole library), pull in none of
    the file, terminal and command-line libraries."""
    code = ("import importlib, pathlib, sys, types\n"
            "pkg = types.ModuleType('sparsecode')\n"
            "pkg.__path__ = [str(pathlib.Path(sys.argv[1]))]\n"
            "sys.modules['sparsecode'] = pkg\n"
            "for name in ('topk', 'model', 'objectives'):\n"
            "    importlib.import_module('sparsecode.' + name)\n"
            "print(' '.join(sorted(sys.modules)))\n")
    package = Path(sc.__file__).parent
    out = subprocess.run([sys.executable, "-c", code, str(package)], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert {"sparsecode.topk", "sparsecode.model", "sparsecode.modelfile", "sparsecode.objectives"} <= loaded
    assert not {name for name in loaded if name.split(".")[0] in ("h5py", "rich", "typer")}
    assert not {name for name in loaded if name.startswith(("sparsecode.cli", "sparsecode.codes", "sparsecode.embeddings"))}


def test_the_library_loads_no_terminal_or_command_line_library():
    """``import sparsecode`` (and its train and encode) is what every script pays before it starts:
    rich, typer and scipy load only with the commands that use them (rich.color alone took 0.1 s)."""
    code = "import sys, sparsecode; sparsecode.train, sparsecode.encode; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert "sparsecode.training" in loaded
    assert not {name for name in loaded if name.split(".")[0] in ("rich", "typer", "scipy")}


def test_the_cosine_geometry_codes_directions_and_reconstructs_them_at_the_typical_length():
    """Hand-made: mean (1, 1), scale 2. Cosine: x - mean scaled to length sqrt(D); the target is the
    mean plus that direction at length scale * sqrt(D). Euclidean: the target is x itself."""
    model = SparseAutoencoder(2, 3, geometry="cosine")
    model.input_mean.copy_(torch.tensor([1.0, 1.0]))
    model.input_scale.fill_(2.0)
    x = torch.tensor([[4.0, 5.0], [1.0, -1.0]])  # offsets (3, 4) and (0, -2)
    root2 = 2.0 ** 0.5
    torch.testing.assert_close(model.normalise(x), torch.tensor([[0.6, 0.8], [0.0, -1.0]]) * root2)
    torch.testing.assert_close(model.reconstruction_target(x),
                               torch.tensor([[1 + 0.6 * 2 * root2, 1 + 0.8 * 2 * root2], [1.0, 1 - 2 * root2]]))
    # A word twice as long from the mean codes exactly as the word itself.
    assert torch.equal(model.normalise(torch.tensor([[7.0, 9.0]])), model.normalise(x[:1]))
    plain = SparseAutoencoder(2, 3)
    assert plain.geometry == "euclidean" and plain.reconstruction_target(x) is x
    with pytest.raises(ValueError, match="unknown geometry"):
        SparseAutoencoder(2, 3, geometry="spherical")


def test_the_geometry_travels_in_model_pt_and_files_without_it_are_euclidean(tmp_path):
    model = SparseAutoencoder(4, 6, geometry="cosine")
    model.initialise(torch.randn(20, 4, generator=torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
    model.save(tmp_path / "m.pt")
    assert bytes(torch.load(tmp_path / "m.pt")["meta.geometry"].tolist()) == b"cosine"
    assert SparseAutoencoder.load(tmp_path / "m.pt").geometry == "cosine"
    state = {name: t for name, t in model.weights().items() if name != "meta.geometry"}
    torch.save(state, tmp_path / "old.pt")
    assert SparseAutoencoder.load(tmp_path / "old.pt").geometry == "euclidean"
    state["meta.geometry"] = torch.tensor(list(b"hyperbolic"), dtype=torch.uint8)
    torch.save(state, tmp_path / "newer.pt")
    with pytest.raises(sc.SparsecodeError, match="unknown geometry 'hyperbolic'; the file is from a newer sparsecode"):
        SparseAutoencoder.load(tmp_path / "newer.pt")


def test_a_euclidean_models_fingerprint_is_the_one_recorded_before_geometry_existed(tmp_path):
    """Codes encoded by the previous version recorded the fingerprint of model.pt without
    meta.geometry; the same euclidean model loaded today must match it, a cosine model must not."""
    from sparsecode.modelfile import weights, weights_fingerprint

    g = torch.Generator().manual_seed(0)
    for geometry in ("euclidean", "cosine"):
        model = SparseAutoencoder(4, 6, geometry=geometry)
        model.initialise(torch.randn(20, 4, generator=g), generator=g)
        before = weights_fingerprint({n: t for n, t in weights(model).items() if n != "meta.geometry"})
        assert (model.fingerprint() == before) == (geometry == "euclidean")
        state = weights(model)
        del state["meta.geometry"]  # a file of the previous version
        torch.save(state, tmp_path / "old.pt")
        if geometry == "euclidean":
            assert SparseAutoencoder.load(tmp_path / "old.pt").fingerprint() == before


def test_the_cosine_normalisation_keeps_input_gradients():
    """Scaled in place when nothing asks for gradients; with them, the same values and the gradient
    of the plain formula (an in-place scale had broken the norm's backward)."""
    from sparsecode.model import normalise_rows

    g = torch.Generator().manual_seed(0)
    x, mean = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    plain = lambda v: (v - mean) / (v - mean).norm(dim=1, keepdim=True) * 3 ** 0.5  # noqa: E731
    torch.testing.assert_close(normalise_rows(x, mean, torch.tensor(1.0), "cosine"), plain(x))
    assert torch.autograd.gradcheck(lambda v: normalise_rows(v, mean, torch.tensor(1.0), "cosine"),
                                    x.clone().requires_grad_())
