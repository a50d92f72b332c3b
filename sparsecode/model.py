"""The k-sparse autoencoder and its weights file (``model.pt``).

The model keeps its own input normalisation, so a user hands it vectors on their original scale:

    x_norm = (x - input_mean) / input_scale
    pre    = (x_norm - b_dec) @ W_enc + b_enc          (D -> H)
    z      = relu(topk(pre, k))                        k non-zeros per row at most
    x_hat  = (z @ W_dec + b_dec) * input_scale + input_mean

``model.pt`` is a plain state dict (``torch.load(path, weights_only=True)`` reads it) with exactly
``W_enc`` (D, H), ``b_enc`` (H,), ``W_dec`` (H, D), ``b_dec`` (D,), ``input_mean`` (D,) and
``input_scale`` (), float32 on the CPU. Decoder rows have unit norm.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .errors import SparsecodeError
from .topk import Encoded, decode, topk_encode

#: The tensors of ``model.pt`` and their shapes in terms of D (input) and H (hidden units).
STATE_SHAPES = {
    "W_enc": ("D", "H"),
    "b_enc": ("H",),
    "W_dec": ("H", "D"),
    "b_dec": ("D",),
    "input_mean": ("D",),
    "input_scale": (),
}


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


class SparseAutoencoder(nn.Module):
    """A top-k sparse autoencoder over D-dimensional inputs with H hidden units."""

    def __init__(self, d_in: int, n_hidden: int, device: torch.device | str = "cpu"):
        super().__init__()
        self.W_enc = nn.Parameter(torch.empty(d_in, n_hidden, device=device))
        self.b_enc = nn.Parameter(torch.zeros(n_hidden, device=device))
        self.W_dec = nn.Parameter(torch.empty(n_hidden, d_in, device=device))
        self.b_dec = nn.Parameter(torch.zeros(d_in, device=device))
        self.register_buffer("input_mean", torch.zeros(d_in, device=device))
        self.register_buffer("input_scale", torch.ones((), device=device))
        #: "auto", "sparse" or "dense": how codes are decoded (see :func:`sparsecode.topk.decode`).
        self.decode_impl = "auto"

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W_enc.shape[1]

    # -- initialisation ---------------------------------------------------------------------------
    @torch.no_grad()
    def initialise(self, data: Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent initialisation from a (N, D) sample on the original scale.

        Sets the normalisation from the data, the decoder bias to the mean of the normalised data,
        decoder rows to random unit vectors and the encoder to the decoder's transpose (tied init).
        """
        norm = estimate_normalisation(data)
        self.input_mean.copy_(norm.mean)
        self.input_scale.copy_(norm.scale)
        self.b_dec.copy_(self.normalise(data).mean(0))
        w = torch.randn(self.W_dec.shape, generator=generator, device="cpu").to(self.W_dec.device)
        self.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        self.W_enc.copy_(self.W_dec.t())
        self.b_enc.zero_()

    # -- the maps ---------------------------------------------------------------------------------
    def normalise(self, x: Tensor) -> Tensor:
        """(B, D) original scale -> (B, D) normalised."""
        return (x - self.input_mean) / self.input_scale

    def denormalise(self, x_norm: Tensor) -> Tensor:
        """(B, D) normalised -> (B, D) original scale."""
        return x_norm * self.input_scale + self.input_mean

    def encode_normalised(self, x_norm: Tensor, k: int, aux_k: int = 0, dead: Tensor | None = None) -> Encoded:
        """Top-k codes of normalised inputs (B, D); see :class:`sparsecode.topk.Encoded`."""
        return topk_encode(x_norm - self.b_dec, self.W_enc, self.b_enc, k, aux_k, dead)

    def decode_normalised(self, acts: Tensor, indices: Tensor) -> Tensor:
        """(B, k) codes at (B, k) unit ids -> (B, D) normalised reconstruction."""
        return decode(acts, indices, self.W_dec, self.b_dec, self.decode_impl)

    def encode(self, x: Tensor, k: int) -> Encoded:
        """Codes of (B, D) vectors on the original scale: ``acts`` (B, k) at ``indices`` (B, k)."""
        return self.encode_normalised(self.normalise(x), k)

    def decode(self, acts: Tensor, indices: Tensor) -> Tensor:
        """Reconstruct (B, D) vectors on the original scale from codes."""
        return self.denormalise(self.decode_normalised(acts, indices))

    def forward(self, x: Tensor, k: int) -> Tensor:
        """Reconstruction (B, D) of (B, D) inputs, both on the original scale."""
        enc = self.encode(x, k)
        return self.decode(enc.acts, enc.indices)

    # -- unit-norm decoder ------------------------------------------------------------------------
    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Project out the gradient component parallel to each (unit-norm) decoder row."""
        if self.W_dec.grad is None:
            return
        w, g = self.W_dec, self.W_dec.grad
        g.addcmul_(torch.linalg.vecdot(g, w, dim=1).unsqueeze(1), w, value=-1)  # in place: no (H, D) temporaries

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Rescale every decoder row to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    # -- the weights file -------------------------------------------------------------------------
    def weights(self) -> dict[str, Tensor]:
        """The ``model.pt`` state dict: float32 CPU tensors, contiguous, in the documented layout."""
        return {name: getattr(self, name).detach().float().cpu().contiguous().clone() for name in STATE_SHAPES}

    def save(self, path: str | os.PathLike) -> None:
        """Write ``model.pt`` (``path`` is the file, written as is: callers make it atomic)."""
        torch.save(self.weights(), path)

    @classmethod
    def from_weights(cls, state: dict[str, Tensor], device: torch.device | str = "cpu", source: str = "model.pt") -> "SparseAutoencoder":
        """Build a model from a ``model.pt`` state dict, checking names and shapes."""
        missing = [n for n in STATE_SHAPES if n not in state]
        if missing:
            raise SparsecodeError(f"{source}: missing tensor(s) {', '.join(missing)}; not a sparsecode model")
        d_in, n_hidden = state["W_enc"].shape if state["W_enc"].dim() == 2 else (-1, -1)
        sizes = {"D": d_in, "H": n_hidden}
        for name, dims in STATE_SHAPES.items():
            want = tuple(sizes[s] for s in dims)
            if tuple(state[name].shape) != want:
                raise SparsecodeError(
                    f"{source}: tensor {name} has shape {tuple(state[name].shape)}, expected {want}; "
                    "the file is corrupt or from another tool"
                )
        model = cls(d_in, n_hidden, device=device)
        with torch.no_grad():
            for name in STATE_SHAPES:
                getattr(model, name).copy_(state[name])
        return model

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "SparseAutoencoder":
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
        return cls.from_weights(state, device=device, source=path)
