"""The sparse autoencoder: its maps, its codes, its initialisation and its unit-norm decoder.

The model keeps its own input normalisation, so a user hands it vectors on their original scale:

    x_norm = (x - input_mean) / input_scale                            geometry "euclidean"
    x_norm = (x - input_mean) / ||x - input_mean|| * sqrt(D)          geometry "cosine"
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

With the ``cosine`` geometry (``geometry``, see :data:`~sparsecode.config.GEOMETRIES`) every word's offset from
the mean word is scaled to one length, sqrt(D) (the average of the euclidean normalisation), before
it is coded: an activation is then a similarity of directions that a word's length (in GloVe,
mostly its frequency) no longer inflates, so a unit's strongest words are its most typical ones.
The model reconstructs those rows, ``reconstruction_target(x) = denormalise(normalise(x))``: every
word at the typical length ``input_scale * sqrt(D)`` from the mean, on the original scale; FVU and
cosine(x, x_hat) are measured against them.

The weights are saved as ``model.pt``, whose layout :mod:`sparsecode.modelfile` documents. A
model with hidden layers (``encoder_layers`` E1..EL) maps through them before and after the code,
every decoder layer's columns at unit norm like the decoder rows (so that no layer can undo the
code's scale):

    h      = relu(... relu(enc_layers.0(x_norm - b_dec)) ...)            (D -> EL)
    pre    = h @ W_enc + b_enc
    y      = z @ W_dec + b_mid, then relu and dec_layers.i in turn       (EL -> D)
    x_hat  = (y + b_dec) * input_scale + input_mean
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import skip_init

from . import modelfile
from .config import GEOMETRIES, SPARSITIES
from .errors import SparsecodeError
from .topk import Encoded, decode, topk_encode


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


def normalise_rows(x: Tensor, mean: Tensor, scale: Tensor, geometry: str) -> Tensor:
    """(B, D) original scale -> (B, D) normalised: centred and divided by ``scale`` (euclidean), or
    each centred row scaled to squared norm D (cosine). Scaled in place: one (B, D) temporary, not
    two, which is 78 MB less at the peak of a streamed buffer of 65,536 rows at D=300."""
    h = x - mean
    if geometry == "cosine":
        to_length = h.shape[1] ** 0.5 / h.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return h * to_length if h.requires_grad else h.mul_(to_length)  # the norm's gradient needs h as it was
    return h.div_(scale)


def reconstruction_target(model: "SparseAutoencoder", x: Tensor) -> Tensor:
    """(B, D) original scale -> the rows ``model`` reconstructs, on the original scale (its method of
    the same name): ``x`` itself, or with the cosine geometry every row moved along its direction from
    the mean to the typical length (``denormalise(normalise(x))``)."""
    return model.denormalise(model.normalise(x)) if model.geometry == "cosine" else x


class SparseAutoencoder(nn.Module):
    """A sparse autoencoder over D-dimensional inputs with H hidden units (the code).

    ``sparsity`` names the objective it was trained with, which decides how codes are computed
    (see the module docstring); ``encoder_layers`` are the widths of hidden layers before the code
    (the decoder mirrors them); empty for the usual single-layer model.
    """

    def __init__(self, d_in: int, n_hidden: int, device: torch.device | str = "cpu", sparsity: str = "topk",
                 encoder_layers: Sequence[int] = (), encode_k: int | None = None, geometry: str = "euclidean"):
        super().__init__()
        if sparsity not in SPARSITIES:
            raise ValueError(f"unknown sparsity {sparsity!r}; one of {', '.join(SPARSITIES)}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"unknown geometry {geometry!r}; one of {', '.join(GEOMETRIES)}")
        self.sparsity, self.geometry = sparsity, geometry  # geometry: see the module docstring
        #: Active units per word when encoding (:meth:`encode`'s default): k for topk; for the other
        #: objectives a cap, or None for their own code (threshold or activation).
        self.encode_k = encode_k
        self.encoder_layers = tuple(int(w) for w in encoder_layers)
        widths = (d_in, *self.encoder_layers)
        code_in = widths[-1]
        # Every weight starts empty, as W_enc and W_dec do, until random_start or a state dict fills it:
        # nn.Linear's own initialisation would draw from torch's global generator (a notebook's).
        self.enc_layers = nn.ModuleList(skip_init(nn.Linear, a, b, device=device) for a, b in zip(widths[:-1], widths[1:]))
        # W_enc (D, H) stored (H, D), one row per unit (see :attr:`W_enc`); state dicts hold W_enc (D, H).
        self.W_enc_units = nn.Parameter(torch.empty(n_hidden, code_in, device=device))
        modelfile.use_file_layout(self)
        self.b_enc = nn.Parameter(torch.zeros(n_hidden, device=device))
        self.W_dec = nn.Parameter(torch.empty(n_hidden, code_in, device=device))
        self.b_dec = nn.Parameter(torch.zeros(d_in, device=device))
        back = widths[::-1]
        self.dec_layers = nn.ModuleList(
            skip_init(nn.Linear, a, b, bias=i < len(back) - 2, device=device)
            for i, (a, b) in enumerate(zip(back[:-1], back[1:]))
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
        """(D, H) encoder weights, ``pre = h @ W_enc + b_enc``: a transposed view of the contiguous (H, D)
        parameter ``W_enc_units``, stored one row per unit because the sparse backward reads and writes
        the encoder unit by unit (a (D, H) parameter makes a CPU training step 1-7% slower)."""
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

    # -- initialisation (the starts themselves: random_start, centroid_start) ------------------------
    @torch.no_grad()
    def initialise(self, data: Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent initialisation from a (N, D) sample on the original scale: the normalisation
        from the data, the decoder bias at the mean of the normalised data, and :func:`random_start`."""
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
        random_start(self, generator)

    def initialise_from_centroids(self, x_norm: Tensor, k: int | None, iters: int = 15,
                                  generator: torch.Generator | None = None) -> None:
        """Decoder rows at the spherical k-means centroids of the data (see :func:`centroid_start`)."""
        centroid_start(self, x_norm, k, iters, generator)

    # -- the maps ---------------------------------------------------------------------------------
    def normalise(self, x: Tensor) -> Tensor:
        """(B, D) original scale -> (B, D) normalised (:func:`normalise_rows`)."""
        return normalise_rows(x, self.input_mean, self.input_scale, self.geometry)

    reconstruction_target = reconstruction_target

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

    def encode_normalised(self, x_norm: Tensor, k: int | None = None, aux_k: int = 0, dead: Tensor | None = None) -> Encoded:
        """Codes of normalised inputs (B, D) as (B, m) activations at (B, m) unit ids (see
        :class:`sparsecode.topk.Encoded`; zeros may pad a row).

        ``topk`` models need ``k`` and support AuxK (``aux_k``, ``dead``), through the custom autograd
        function. Other objectives give their own code (:func:`activation_codes`).
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
        return activation_codes(self, x_norm, k)

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
    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Project out the gradient component parallel to each unit-norm decoder vector."""
        for w, dim in unit_norm_weights(self):
            if w.grad is not None:  # in place: no (H, D) temporaries
                w.grad.addcmul_(torch.linalg.vecdot(w.grad, w, dim=dim).unsqueeze(dim), w, value=-1)

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Rescale every decoder row (and, with hidden layers, every decoder layer column) to unit norm."""
        for w, dim in unit_norm_weights(self):
            w.div_(w.norm(dim=dim, keepdim=True).clamp_min(1e-12))

    # -- the weights file: the functions of sparsecode.modelfile, as methods ----------------------------
    weights = modelfile.weights
    save = modelfile.save
    fingerprint = modelfile.fingerprint
    from_weights = classmethod(modelfile.from_weights)
    load = classmethod(modelfile.load)


def unit_norm_weights(model: SparseAutoencoder) -> list[tuple[Tensor, int]]:
    """The decoder's weights kept at unit norm and the dimension the norm is taken over: the rows
    of ``W_dec`` (one per code unit) and, with hidden layers, the columns of every decoder layer
    (one per input unit). Without the latter a deeper decoder could undo any scale of the code
    (relu(c y) = c relu(y)), and a penalty on the codes would be dodged by shrinking them."""
    return [(model.W_dec, 1)] + [(layer.weight, 0) for layer in model.dec_layers]


# -- the codes of the objectives without a top-k ----------------------------------------------------
def dense_activation(sparsity: str, pre: Tensor) -> Tensor:
    """The activation of the objectives without a top-k: capped in [0, 1] for ``spine``, else ReLU."""
    return pre.clamp(0, 1) if sparsity == "spine" else torch.relu(pre)


def activation_codes(model: SparseAutoencoder, x_norm: Tensor, k: int | None = None) -> Encoded:
    """Codes of normalised inputs (B, D) under an objective without a top-k: its activation of the
    pre-activations (ReLU; capped at 1 for ``spine``; zero at or below the threshold for
    ``batchtopk``), as (B, m) activations at (B, m) unit ids. The ``k`` largest per row when ``k`` is
    given; else every non-zero, m being the largest row's number of them (read back to the host:
    for encoding, not for training steps)."""
    pre = model.pre_acts(x_norm)
    z = dense_activation(model.sparsity, pre)
    if model.sparsity == "batchtopk":
        z = torch.where(pre > model.threshold, z, 0.0)
    width = k if k is not None else max(1, int((z > 0).sum(1).max()) if z.numel() else 1)
    acts, idx = z.topk(min(width, model.n_hidden), dim=1, sorted=False)
    empty = idx.new_zeros(z.shape[0], 0)
    return Encoded(acts, idx, acts.new_zeros(z.shape[0], 0), empty)


# -- initialisation ----------------------------------------------------------------------------------
@torch.no_grad()
def random_start(model: SparseAutoencoder, generator: torch.Generator | None = None) -> None:
    """Decoder rows at random unit vectors, the encoder their transpose (tied), zero encoder bias.
    Hidden layers (if any) get He-uniform weights and zero biases from the same generator, the
    decoder layers' columns then rescaled to unit norm."""
    w = torch.randn(model.W_dec.shape, generator=generator, device="cpu").to(model.W_dec.device)
    model.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
    model.W_enc.copy_(model.W_dec.t())
    model.b_enc.zero_()
    for layer in (*model.enc_layers, *model.dec_layers):
        bound = (6.0 / layer.in_features) ** 0.5
        u = torch.rand(layer.weight.shape, generator=generator, device="cpu") * (2 * bound) - bound
        layer.weight.copy_(u.to(layer.weight.device))
        if layer.bias is not None:
            layer.bias.zero_()
    for layer in model.dec_layers:
        layer.weight.div_(layer.weight.norm(dim=0, keepdim=True).clamp_min(1e-12))
    if model.encoder_layers:
        model.b_mid.zero_()


#: Elements of the (rows, H) similarity matrices the k-means start holds at a time (32 MiB of float32):
#: 65,536 sample rows against H=1,000 centres would take 262 MB per matrix, several at once.
SIMILARITY_BLOCK = 1 << 23


def similarity_rows(n_centres: int) -> int:
    """Rows whose similarities to ``n_centres`` centres the k-means start computes at a time."""
    return max(1, SIMILARITY_BLOCK // max(1, n_centres))


def spherical_kmeans(directions: Tensor, centres: Tensor, iters: int) -> Tensor:
    """(H, D) unit-norm centres after ``iters`` rounds of spherical k-means over (N, D) unit rows
    ``directions``, from ``centres``: each row joins the centre of largest cosine, each centre moves
    to its rows' normalised sum (a centre no row joins stays where it is). The similarities are
    computed :func:`similarity_rows` rows at a time, so memory stays bounded whatever N and H."""
    rows = similarity_rows(centres.shape[0])
    for _ in range(iters):
        assign = torch.cat([(part @ centres.t()).argmax(1) for part in directions.split(rows)])
        sums = torch.zeros_like(centres).index_add_(0, assign, directions)
        norms = sums.norm(dim=1, keepdim=True)
        centres = torch.where(norms > 0, sums / norms.clamp_min(1e-12), centres)
    return centres


@torch.no_grad()
def centroid_start(model: SparseAutoencoder, x_norm: Tensor, k: int | None, iters: int = 15,
                   generator: torch.Generator | None = None) -> None:
    """Decoder rows from spherical k-means of ``x_norm - b_dec`` (N, D) with rows normalised: H
    unit-norm centroids, each a direction many words share, started from H random rows (the model's
    own decoder rows where there are fewer rows than units). The encoder is their transpose scaled
    by the one factor that best reconstructs the rows from their top-``k`` codes (k correlated
    centroids would otherwise add up to several times a row; all of them for k None)."""
    directions = x_norm - model.b_dec  # h, its rows then normalised in place (h is formed again per block)
    directions /= directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    n, H = directions.shape[0], model.n_hidden
    start = model.W_dec.clone()
    pick = torch.randperm(n, generator=generator)[: min(n, H)].to(directions.device)
    start[: len(pick)] = directions[pick]
    cent = spherical_kmeans(directions, start, iters)
    fit = x_norm.new_zeros(2, dtype=torch.float64)  # sums of <h, recon> and |recon|^2 over the rows
    for part in x_norm.split(similarity_rows(H)):
        part = part - model.b_dec
        pre = part @ cent.t()
        if k is not None and k < H:
            top = pre.topk(k, dim=1)
            pre = torch.zeros_like(pre).scatter_(1, top.indices, top.values)
        recon = torch.relu(pre) @ cent
        fit += torch.stack([(part * recon).sum(dtype=torch.float64), (recon * recon).sum(dtype=torch.float64)])
    scale = (fit[0] / fit[1].clamp_min(1e-12)).to(cent.dtype)
    model.W_dec.copy_(cent)
    model.W_enc.copy_(cent.t() * scale)
