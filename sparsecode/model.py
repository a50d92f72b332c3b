"""The sparse autoencoder and its weights file (``model.pt``).

The model keeps its own input normalisation, so a user hands it vectors on their original scale:

    x_norm = (x - input_mean) / input_scale
    pre    = (x_norm - b_dec) @ W_enc + b_enc          (D -> H)
    z      = code(pre)                                 exact zeros: a sparse code
    x_hat  = (z @ W_dec + b_dec) * input_scale + input_mean

``code`` depends on the sparsity objective the model was trained with (``sparsity``, recorded in
the run's ``config.json``; see :mod:`sparsecode.objectives`):

- ``topk``: ``relu(topk(pre, k))``, k non-zeros per row at most; with a selection bias (trained
  with ``balance``, the default) the k units are those with the largest ``pre + select_bias``;
- ``batchtopk``: ``relu(pre)`` where ``pre > threshold`` (a scalar learned during training);
- ``kl``, ``l1``: ``relu(pre)``;
- ``spine``: ``clamp(pre, 0, 1)``.

Any of them can be capped at k units per row when encoding (the k largest are kept).

``model.pt`` is a plain state dict (``torch.load(path, weights_only=True)`` reads it). A
single-layer model has exactly ``W_enc`` (D, H), ``b_enc`` (H,), ``W_dec`` (H, D), ``b_dec`` (D,),
``input_mean`` (D,) and ``input_scale`` (), float32 on the CPU; decoder rows have unit norm. Two
small tensors describe how it codes, so that the file alone encodes as its run does (see
:data:`META`): ``meta.sparsity`` (uint8, the objective's name in ASCII) and ``meta.encode_k``
(int64 (), the encode k; 0: none, the objective's own code). Files written before them still load
(as ``topk`` unless told otherwise, with no encode k; :func:`sparsecode.training.load_run` takes both
from the run's ``config.json``). A ``topk`` model trained with ``balance`` adds ``select_bias`` (H,); a
``batchtopk`` model adds ``threshold`` (). A model with hidden layers (``encoder_layers`` E1..EL)
adds ``enc_layers.{i}.weight`` (E_{i+1}, E_i) and ``enc_layers.{i}.bias`` (E_{i+1},) with E0 = D,
``b_mid`` (EL,), and the mirrored ``dec_layers.{i}.weight`` (E_{L-i-1}, E_{L-i}) with
``dec_layers.{i}.bias`` for every decoder layer but the last (whose bias is ``b_dec``); ``W_enc`` is
then (EL, H) and ``W_dec`` (H, EL), still unit-norm rows, and every decoder layer's columns have
unit norm too (so that no layer can undo the code's scale):

    h      = relu(... relu(enc_layers.0(x_norm - b_dec)) ...)            (D -> EL)
    pre    = h @ W_enc + b_enc
    y      = z @ W_dec + b_mid, then relu and dec_layers.i in turn       (EL -> D)
    x_hat  = (y + b_dec) * input_scale + input_mean
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from .config import SPARSITIES
from .errors import SparsecodeError
from .topk import Encoded, decode, topk_encode

#: The tensors of a single-layer ``model.pt`` and their shapes in terms of D (input) and H (hidden units).
STATE_SHAPES = {
    "W_enc": ("D", "H"),
    "b_enc": ("H",),
    "W_dec": ("H", "D"),
    "b_dec": ("D",),
    "input_mean": ("D",),
    "input_scale": (),
}


#: The tensors of ``model.pt`` that describe the model rather than weigh it.
META = ("meta.sparsity", "meta.encode_k")


class Normalisation(NamedTuple):
    """Centring and scaling of the inputs, estimated from the training data."""

    mean: Tensor
    """(D,) the data mean."""
    scale: Tensor
    """() root mean squared norm of the centred rows, divided by sqrt(D): after normalising, the
    average squared norm of a row is D (each dimension has unit variance on average)."""


def estimate_normalisation(x: Tensor) -> Normalisation:
    """Mean and scale of a (N, D) data matrix, computed in float64 for accuracy."""
    x64 = x.double()
    mean = x64.mean(0)
    scale = ((x64 - mean).pow(2).sum(1).mean() / x.shape[1]).sqrt()
    if not scale > 0:
        scale = torch.ones((), dtype=torch.float64, device=x.device)
    return Normalisation(mean.to(x.dtype), scale.to(x.dtype))


def check_sparsity(sparsity: str) -> None:
    if sparsity not in SPARSITIES:
        raise SparsecodeError(f"--sparsity must be one of {', '.join(SPARSITIES)} (got {sparsity!r})")


def _w_enc_to_state(module: nn.Module, state: dict, prefix: str, _metadata) -> None:
    """State-dict hook: ``W_enc_units`` (H, D) appears as ``W_enc`` (D, H), in its place."""
    items = [(f"{prefix}W_enc", v.t()) if name == f"{prefix}W_enc_units" else (name, v) for name, v in state.items()]
    state.clear()
    state.update(items)


def _w_enc_from_state(state: dict, prefix: str, *_args) -> None:
    """Load pre-hook: ``W_enc`` (D, H) of a state dict fills ``W_enc_units`` (H, D)."""
    if f"{prefix}W_enc" in state:
        state[f"{prefix}W_enc_units"] = state.pop(f"{prefix}W_enc").t()


class SparseAutoencoder(nn.Module):
    """A sparse autoencoder over D-dimensional inputs with H hidden units (the code).

    ``sparsity`` names the objective it was trained with, which decides how codes are computed
    (see the module docstring); ``encoder_layers`` are the widths of hidden layers before the code
    (the decoder mirrors them); empty for the usual single-layer model.
    """

    def __init__(self, d_in: int, n_hidden: int, device: torch.device | str = "cpu", sparsity: str = "topk",
                 encoder_layers: Sequence[int] = (), encode_k: int | None = None):
        super().__init__()
        check_sparsity(sparsity)
        self.sparsity = sparsity
        #: Active units per word when encoding (:meth:`encode`'s default): k for topk; for the other
        #: objectives a cap, or None for their own code (threshold or activation).
        self.encode_k = encode_k
        self.encoder_layers = tuple(int(w) for w in encoder_layers)
        widths = (d_in, *self.encoder_layers)
        code_in = widths[-1]
        self.enc_layers = nn.ModuleList(nn.Linear(a, b, device=device) for a, b in zip(widths[:-1], widths[1:]))
        # W_enc (D, H) is stored one row per unit, as the contiguous (H, D) parameter W_enc_units (see
        # :attr:`W_enc`); state dicts and model.pt hold W_enc (D, H) all the same.
        self.W_enc_units = nn.Parameter(torch.empty(n_hidden, code_in, device=device))
        self._register_state_dict_hook(_w_enc_to_state)
        self._register_load_state_dict_pre_hook(_w_enc_from_state)
        self._register_state_dict_hook(_meta_to_state)
        self._register_load_state_dict_pre_hook(_meta_from_state, with_module=True)
        self.b_enc = nn.Parameter(torch.zeros(n_hidden, device=device))
        self.W_dec = nn.Parameter(torch.empty(n_hidden, code_in, device=device))
        self.b_dec = nn.Parameter(torch.zeros(d_in, device=device))
        back = widths[::-1]
        self.dec_layers = nn.ModuleList(
            nn.Linear(a, b, bias=i < len(back) - 2, device=device) for i, (a, b) in enumerate(zip(back[:-1], back[1:]))
        )
        if self.encoder_layers:
            self.b_mid = nn.Parameter(torch.zeros(code_in, device=device))
        self.register_buffer("input_mean", torch.zeros(d_in, device=device))
        self.register_buffer("input_scale", torch.ones((), device=device))
        if sparsity == "batchtopk":
            #: The encode-time threshold of BatchTopK (a running mean of the smallest kept activation).
            self.register_buffer("threshold", torch.zeros((), device=device))
        #: (H,) added to the pre-activations only to choose a top-k model's units (see :meth:`use_select_bias`).
        self.register_buffer("select_bias", None)
        #: "auto", "sparse" or "dense": how codes are decoded (see :func:`sparsecode.topk.decode`).
        self.decode_impl = "auto"

    def use_select_bias(self) -> None:
        """Give a top-k model a selection bias ``select_bias`` (H,), zeros at first: its codes are then
        ``relu(pre)`` at the k units with the largest ``pre + select_bias``. The bias chooses units and
        never enters an activation (training balances unit use with it; see :mod:`sparsecode.training`)."""
        if self.select_bias is None:
            self.select_bias = torch.zeros(self.n_hidden, device=self.b_enc.device)

    @property
    def W_enc(self) -> Tensor:
        """(D, H) encoder weights: ``pre = h @ W_enc + b_enc``. A transposed view of :attr:`W_enc_units`.

        A training step reads each selected unit's weights as a row (the input gradient) and writes
        their gradient unit by unit (see :mod:`sparsecode.topk`); stored (D, H), both would cost a
        transposed copy of the whole matrix per step (about 1.5 ms of a 9 ms step at D=300, H=3000,
        batch 256), and Adam's fused kernel copies non-contiguous parameters twice more.
        """
        return self.W_enc_units.t()

    @property
    def d_in(self) -> int:
        return self.input_mean.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W_enc.shape[1]

    @property
    def is_linear(self) -> bool:
        """Whether the decoder is the single linear map ``z @ W_dec + b_dec`` (no hidden layers)."""
        return not self.encoder_layers

    # -- initialisation ---------------------------------------------------------------------------
    @torch.no_grad()
    def initialise(self, data: Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent initialisation from a (N, D) sample on the original scale.

        Sets the normalisation from the data, the decoder bias to the mean of the normalised data,
        decoder rows to random unit vectors and the encoder to the decoder's transpose (tied init).
        Hidden layers (if any) get He-uniform weights and zero biases from the same generator, the
        decoder layers' columns then rescaled to unit norm.
        """
        norm = estimate_normalisation(data)
        self.input_mean.copy_(norm.mean)
        self.input_scale.copy_(norm.scale)
        self.initialise_with(norm, self.normalise(data).mean(0), generator)

    @torch.no_grad()
    def initialise_with(self, norm: Normalisation, normalised_mean: Tensor, generator: torch.Generator | None = None) -> None:
        """:meth:`initialise` from statistics instead of a sample (for data streamed from disk):
        ``norm`` as :func:`estimate_normalisation` gives it, ``normalised_mean`` (D,) the mean of
        the normalised data."""
        self.input_mean.copy_(norm.mean)
        self.input_scale.copy_(norm.scale)
        self.b_dec.copy_(normalised_mean)
        w = torch.randn(self.W_dec.shape, generator=generator, device="cpu").to(self.W_dec.device)
        self.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        self.W_enc.copy_(self.W_dec.t())
        self.b_enc.zero_()
        for layer in (*self.enc_layers, *self.dec_layers):
            bound = (6.0 / layer.in_features) ** 0.5
            u = torch.rand(layer.weight.shape, generator=generator, device="cpu") * (2 * bound) - bound
            layer.weight.copy_(u.to(layer.weight.device))
            if layer.bias is not None:
                layer.bias.zero_()
        for layer in self.dec_layers:
            layer.weight.div_(layer.weight.norm(dim=0, keepdim=True).clamp_min(1e-12))
        if self.encoder_layers:
            self.b_mid.zero_()

    @torch.no_grad()
    def initialise_from_centroids(self, x_norm: Tensor, k: int | None, iters: int = 15,
                                  generator: torch.Generator | None = None) -> None:
        """Decoder rows from spherical k-means of ``x_norm - b_dec`` (N, D) with rows normalised: H
        unit-norm centroids, each a direction many words share. The encoder is their transpose
        scaled by the one factor that best reconstructs the rows from their top-``k`` codes (k
        correlated centroids would otherwise add up to several times a row; all of them for k None)."""
        h = x_norm - self.b_dec
        directions = h / h.norm(dim=1, keepdim=True).clamp_min(1e-12)
        n, H = h.shape[0], self.n_hidden
        cent = self.W_dec.clone()  # random unit rows where there are fewer rows than units
        pick = torch.randperm(n, generator=generator)[: min(n, H)].to(h.device)
        cent[: len(pick)] = directions[pick]
        for _ in range(iters):
            assign = (directions @ cent.t()).argmax(1)
            sums = torch.zeros_like(cent).index_add_(0, assign, directions)
            norms = sums.norm(dim=1, keepdim=True)
            cent = torch.where(norms > 0, sums / norms.clamp_min(1e-12), cent)  # an empty cluster keeps its centre
        pre = h @ cent.t()
        if k is not None and k < H:
            top = pre.topk(k, dim=1)
            pre = torch.full_like(pre, 0.0).scatter_(1, top.indices, top.values)
        recon = torch.relu(pre) @ cent
        scale = (h * recon).sum() / (recon * recon).sum().clamp_min(1e-12)
        self.W_dec.copy_(cent)
        self.W_enc.copy_(cent.t() * scale)

    # -- the maps ---------------------------------------------------------------------------------
    def normalise(self, x: Tensor) -> Tensor:
        """(B, D) original scale -> (B, D) normalised."""
        return (x - self.input_mean) / self.input_scale

    def denormalise(self, x_norm: Tensor) -> Tensor:
        """(B, D) normalised -> (B, D) original scale."""
        return x_norm * self.input_scale + self.input_mean

    def code_input(self, x_norm: Tensor) -> Tensor:
        """(B, D) normalised -> (B, EL) what the code layer reads (``x_norm - b_dec`` for one layer)."""
        h = x_norm - self.b_dec
        for layer in self.enc_layers:
            h = torch.relu(layer(h))
        return h

    def pre_acts(self, x_norm: Tensor) -> Tensor:
        """(B, D) normalised -> (B, H) pre-activations of the code units (one dense product)."""
        return torch.addmm(self.b_enc, self.code_input(x_norm), self.W_enc)

    def activation(self, pre: Tensor) -> Tensor:
        """The code's non-linearity (before any top-k or threshold): ReLU, or capped at 1 for SPINE."""
        return pre.clamp(0, 1) if self.sparsity == "spine" else torch.relu(pre)

    def encode_normalised(self, x_norm: Tensor, k: int | None = None, aux_k: int = 0, dead: Tensor | None = None) -> Encoded:
        """Codes of normalised inputs (B, D) as (B, m) activations at (B, m) unit ids (see
        :class:`sparsecode.topk.Encoded`; zeros may pad a row).

        ``topk`` models need ``k`` and support AuxK (``aux_k``, ``dead``), through the custom autograd
        function. Other objectives give their own code (threshold or activation), capped at the
        ``k`` largest per row when ``k`` is given; m is then the largest row's number of active units
        (read back to the host: for encoding, not for training steps).
        """
        if self.sparsity == "topk":
            if k is None:
                raise SparsecodeError("a top-k model needs k to encode")
            if self.encoder_layers:
                return topk_encode(self.code_input(x_norm), self.W_enc, self.b_enc, k, aux_k, dead,
                                   select_bias=self.select_bias)
            # x_norm - b_dec, subtracted inside: b_dec's gradient through the encoder is then one product.
            return topk_encode(x_norm, self.W_enc, self.b_enc, k, aux_k, dead, shift=self.b_dec,
                               select_bias=self.select_bias)
        pre = self.pre_acts(x_norm)
        z = self.activation(pre)
        if self.sparsity == "batchtopk":
            z = torch.where(pre > self.threshold, z, 0.0)
        width = k if k is not None else max(1, int((z > 0).sum(1).max()) if z.numel() else 1)
        acts, idx = z.topk(min(width, self.n_hidden), dim=1, sorted=False)
        empty = idx.new_zeros(z.shape[0], 0)
        return Encoded(acts, idx, acts.new_zeros(z.shape[0], 0), empty)

    def _decode_tail(self, y: Tensor) -> Tensor:
        """(B, EL) code-space decode (bias included) -> (B, D) normalised, through the hidden layers."""
        for layer in self.dec_layers:
            y = layer(torch.relu(y))
        return y + self.b_dec

    def decode_normalised(self, acts: Tensor, indices: Tensor) -> Tensor:
        """(B, k) codes at (B, k) unit ids -> (B, D) normalised reconstruction."""
        if self.is_linear:
            return decode(acts, indices, self.W_dec, self.b_dec, self.decode_impl)
        return self._decode_tail(decode(acts, indices, self.W_dec, self.b_mid, self.decode_impl))

    def decode_dense_normalised(self, z: Tensor) -> Tensor:
        """(B, H) dense codes (zeros included) -> (B, D) normalised reconstruction."""
        if self.is_linear:
            return torch.addmm(self.b_dec, z, self.W_dec)
        return self._decode_tail(torch.addmm(self.b_mid, z, self.W_dec))

    def encode(self, x: Tensor, k: int | None = None) -> Encoded:
        """Codes of (B, D) vectors on the original scale (see :meth:`encode_normalised`), with ``k``
        active units at most; by default the model's own :attr:`encode_k`, as ``sparsecode encode``."""
        return self.encode_normalised(self.normalise(x), self.resolve_k(k))

    def resolve_k(self, k: int | None = None) -> int | None:
        """The k to encode with: ``k`` when given, else :attr:`encode_k` (which a top-k model needs)."""
        k = self.encode_k if k is None else k
        if k is None and self.sparsity == "topk":
            raise SparsecodeError("this top-k model does not record its encode k (a model.pt written before models "
                                  "recorded it): pass k, or load it with its run directory (sparsecode.load_run)")
        return k

    def decode(self, acts: Tensor, indices: Tensor) -> Tensor:
        """Reconstruct (B, D) vectors on the original scale from codes."""
        return self.denormalise(self.decode_normalised(acts, indices))

    def forward(self, x: Tensor, k: int | None = None) -> Tensor:
        """Reconstruction (B, D) of (B, D) inputs, both on the original scale."""
        enc = self.encode(x, k)
        return self.decode(enc.acts, enc.indices)

    # -- unit-norm decoder ------------------------------------------------------------------------
    def _unit_norm_weights(self) -> list[tuple[Tensor, int]]:
        """The decoder's weights kept at unit norm and the dimension the norm is taken over:
        the rows of ``W_dec`` (one per code unit) and, with hidden layers, the columns of every
        decoder layer (one per input unit). Without the latter a deeper decoder could undo any
        scale of the code (relu(c y) = c relu(y)), and a penalty on the codes would be dodged by
        shrinking them."""
        return [(self.W_dec, 1)] + [(layer.weight, 0) for layer in self.dec_layers]

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Project out the gradient component parallel to each unit-norm decoder vector."""
        for w, dim in self._unit_norm_weights():
            if w.grad is not None:  # in place: no (H, D) temporaries
                w.grad.addcmul_(torch.linalg.vecdot(w.grad, w, dim=dim).unsqueeze(dim), w, value=-1)

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Rescale every decoder row (and, with hidden layers, every decoder layer column) to unit norm."""
        for w, dim in self._unit_norm_weights():
            w.div_(w.norm(dim=dim, keepdim=True).clamp_min(1e-12))

    # -- the weights file -------------------------------------------------------------------------
    def weights(self) -> dict[str, Tensor]:
        """The ``model.pt`` state dict: float32 CPU tensors, contiguous, in the documented layout,
        and the :data:`META` tensors."""
        return {name: (t.detach() if name in META else t.detach().float()).cpu().contiguous().clone()
                for name, t in self.state_dict().items()}

    def save(self, path: str | os.PathLike) -> None:
        """Write ``model.pt`` (``path`` is the file, written as is: callers make it atomic)."""
        torch.save(self.weights(), path)

    @classmethod
    def from_weights(cls, state: dict[str, Tensor], device: torch.device | str = "cpu", source: str = "model.pt",
                     sparsity: str | None = None) -> "SparseAutoencoder":
        """Build a model from a ``model.pt`` state dict, checking names and shapes.

        The objective and encode k come from the :data:`META` tensors; ``sparsity``, when given,
        must agree with them (a file without them is taken as ``sparsity``, default ``topk``, with
        no encode k). Hidden layers are read from the tensor names.
        """
        recorded, _ = _read_meta(state, source)
        if sparsity is not None and recorded is not None and sparsity != recorded:
            raise SparsecodeError(f"{source}: the model was trained with --sparsity {recorded}, not {sparsity}; "
                                  "the file is from another run")
        sparsity = recorded or sparsity or "topk"
        missing = [n for n in STATE_SHAPES if n not in state]
        if missing:
            raise SparsecodeError(f"{source}: missing tensor(s) {', '.join(missing)}; not a sparsecode model")
        if sparsity == "batchtopk" and "threshold" not in state:
            raise SparsecodeError(f"{source}: a batchtopk model needs a 'threshold' tensor; the file is from another run")
        widths = []
        while f"enc_layers.{len(widths)}.weight" in state and state[f"enc_layers.{len(widths)}.weight"].dim() == 2:
            widths.append(int(state[f"enc_layers.{len(widths)}.weight"].shape[0]))
        d_in = int(state["input_mean"].shape[0]) if state["input_mean"].dim() == 1 else -1
        n_hidden = int(state["W_enc"].shape[1]) if state["W_enc"].dim() == 2 else -1
        try:
            model = cls(d_in, n_hidden, device=device, sparsity=sparsity, encoder_layers=widths)
            if "select_bias" in state and sparsity == "topk":
                model.use_select_bias()
        except (RuntimeError, ValueError):
            raise SparsecodeError(f"{source}: tensors of impossible shapes; the file is corrupt or from another tool") from None
        expected = {name: t for name, t in model.state_dict().items() if name not in META}
        unknown = sorted(set(state) - set(expected) - set(META))
        if unknown:
            raise SparsecodeError(f"{source}: unexpected tensor(s) {', '.join(unknown[:5])}; the file is from another tool or version")
        for name, target in expected.items():
            if name not in state:
                raise SparsecodeError(f"{source}: missing tensor {name}; not a complete sparsecode model")
            if tuple(state[name].shape) != tuple(target.shape):
                raise SparsecodeError(
                    f"{source}: tensor {name} has shape {tuple(state[name].shape)}, expected {tuple(target.shape)}; "
                    "the file is corrupt or from another tool"
                )
        model.load_state_dict({name: state[name] for name in (*expected, *META) if name in state})
        return model

    def fingerprint(self) -> str:
        """:func:`weights_fingerprint` of this model's ``model.pt`` tensors."""
        return weights_fingerprint(self.weights())

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu", sparsity: str | None = None) -> "SparseAutoencoder":
        """Read ``model.pt`` safely (``weights_only=True``: no pickled code is ever run)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise SparsecodeError(f"{path}: model weights not found; train a model with 'sparsecode train' first")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt or unsafe files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SparsecodeError(f"{path}: cannot load model weights safely ({first[:160]})") from None
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise SparsecodeError(f"{path}: not a sparsecode weights file (expected a dict of tensors)")
        return cls.from_weights(state, device=device, source=path, sparsity=sparsity)


def weights_fingerprint(state: dict[str, Tensor]) -> str:
    """16 hex digits of a SHA-256 over a state dict's tensors (names, dtypes, shapes, bytes): the
    same for the same weights wherever they are stored, different for any other model. The codes
    file records it, so that ``evaluate`` and ``report`` can refuse codes of another model."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
def _meta_to_state(module: "SparseAutoencoder", state: dict, prefix: str, _metadata) -> None:
    """State-dict hook: the :data:`META` tensors, after the weights."""
    state[f"{prefix}meta.sparsity"] = torch.tensor(list(module.sparsity.encode("ascii")), dtype=torch.uint8)
    state[f"{prefix}meta.encode_k"] = torch.tensor(module.encode_k or 0, dtype=torch.int64)


def _meta_from_state(module: "SparseAutoencoder", state: dict, prefix: str, *_args) -> None:
    """Load pre-hook: take the :data:`META` tensors out of ``state`` (a state dict without them,
    from a file written before them, loads as it did); the encode k they record becomes the
    model's when they record its objective (weights may be loaded into a model of another
    objective on purpose: :meth:`SparseAutoencoder.from_weights` is what checks a file)."""
    meta = {name: state.pop(f"{prefix}{name}") for name in META if f"{prefix}{name}" in state}
    sparsity, encode_k = _read_meta(meta, "model state")
    if sparsity == module.sparsity:
        module.encode_k = encode_k


def _read_meta(state: dict, source: str) -> tuple[str | None, int | None]:
    """The objective and encode k that the :data:`META` tensors of ``state`` record (None, None
    for a state dict without them)."""
    if not any(name in state for name in META):
        return None, None
    try:
        sparsity = bytes(state["meta.sparsity"].to(torch.uint8).tolist()).decode("ascii")
        encode_k = int(state["meta.encode_k"])
    except (KeyError, RuntimeError, ValueError, UnicodeDecodeError):
        raise SparsecodeError(f"{source}: unreadable meta.sparsity or meta.encode_k; the file is corrupt") from None
    if sparsity not in SPARSITIES:
        raise SparsecodeError(f"{source}: unknown sparsity {sparsity!r}; the model is from a newer sparsecode")
    return sparsity, encode_k or None
