"""Training settings: one dataclass, one default per setting, a docstring under each.

The CLI's ``--help`` shows these defaults; ``config.json`` in a run directory is this dataclass
as JSON, plus what the run resolved (device, data size, the sizes used).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Iterator

from .errors import SparsecodeError


#: Settings that may differ when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = ("checkpoint_every", "device")


#: How the decoder starts (see ``TrainConfig.init``).
INITS = ("kmeans", "random")
#: The sparsity objectives (see :mod:`sparsecode.objectives`); the first is the default.
SPARSITIES = ("topk", "batchtopk", "kl", "l1", "spine")
#: Where a model runs: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; the first is the default.
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
#: Objectives with a training k (per row or per batch); k, AuxK, k annealing and homeostasis apply to these.
TOPK_SPARSITIES = ("topk", "batchtopk")
#: Settings that belong to some objectives only: their default for each objective they apply to.
#: Left unset (None) they take that default; set for an objective they do not apply to, they are
#: refused (never silently ignored). ``noise`` applies to every objective (default 0).
OBJECTIVE_DEFAULTS = {
    "k": {"topk": 32, "batchtopk": 32},
    "homeostasis": {"topk": 3e-5, "batchtopk": 3e-5},
    "balance": {"topk": 5e-3},
    "rho": {"kl": 0.05, "spine": 0.15},
    "beta": {"kl": 10.0},
    "l1_coef": {"l1": 0.1},
    # SPINE is a denoising autoencoder: the paper's noise level.
    "noise": {"topk": 0.0, "batchtopk": 0.0, "kl": 0.0, "l1": 0.0, "spine": 0.2},
}


@dataclass
class TrainConfig:
    hidden: int = 1000
    """H: number of hidden units (dimensions of the sparse code)."""
    sparsity: str = "topk"
    """The sparsity objective: ``topk`` (k units per word), ``batchtopk`` (k per word on average over
    a batch; a learned threshold when encoding), ``kl`` (KL penalty toward a firing rate rho), ``l1``
    (L1 penalty on the codes) or ``spine`` (SPINE's capped codes and losses)."""
    k: int | None = None
    """Active units per word after training (topk), or on average over a batch (batchtopk);
    default 32. Only for these two (cap other objectives' codes with ``encode_k``)."""
    epochs: int = 10
    """Passes over the vocabulary."""
    batch_size: int = 256
    """Words per optimisation step."""
    lr: float = 5e-3
    """Peak Adam learning rate (reached after warm-up, then decayed)."""
    warmup_frac: float = 0.05
    """Fraction of all steps over which the learning rate rises linearly from 0."""
    lr_final_ratio: float = 0.1
    """Learning rate at the last step, as a fraction of ``lr`` (cosine decay after warm-up)."""
    k_anneal_from: int | None = None
    """k at the first step, lowered linearly to ``k`` over ``k_anneal_frac`` of training (Makhzani
    and Frey 2013); default: no annealing. On GloVe 50k x 50d, annealing from 4k cost FVU
    (0.091 against 0.017 after 10 epochs), so it is off unless asked for."""
    k_anneal_frac: float = 0.3
    """Fraction of all steps over which k is annealed, when ``k_anneal_from`` is set."""
    encode_k: int | None = None
    """k used when encoding (their αk); default ``k`` for topk, none otherwise (the objective's own
    code: threshold or activation), which a given ``encode_k`` caps at its k largest per word."""
    aux_k: int | None = None
    """Dead units used per word by the AuxK loss; default D/2 (at least 1, at most H)."""
    aux_coef: float = 0.0
    """Weight of the AuxK loss (Gao et al. use 1/32); 0, the default, turns AuxK off. On GloVe 6B 50d
    (H=1000, k=32) AuxK killed units instead of reviving them: 81% dead on 400k words with 1/32,
    20% without; 0.5% and 0% on 50k words (benchmarks/ABLATION.md)."""
    homeostasis: float | None = None
    """topk and batchtopk, default 3e-5: per-step nudge of each unit's encoder bias toward the frequency k/H (up when it fires less,
    down when more; 0: off). On GloVe 6B 50d (H=1000, k=32, no AuxK) 3e-5 left 10.6% of the units
    dead on 400k words where 0 left 35% (at lr 2e-3) and 1e-4 left 20%, and none on 50k words
    (benchmarks/ABLATION.md)."""
    balance: float | None = None
    """topk: after each step every unit's selection bias (added to the pre-activations only to choose
    the k units, never to an activation; saved in model.pt as ``select_bias``) moves by this much
    toward the frequency k/H: up for a unit chosen less often, down for one chosen more (0: off).
    Without it a top-k code collapses where k is large for D (GloVe 50d, k=32: 88 effective units
    of 1,000, one unit on 86% of the words); see benchmarks/INTERPRETABILITY.md."""
    init: str | None = None
    """How decoder rows (and the tied encoder) start: ``kmeans``, the spherical k-means centroids of
    the first 65,536 words (the most frequent, in a file in frequency order), each a direction many
    words share, so that a unit starts as one idea; or ``random`` unit vectors. Default: kmeans for
    the single-layer topk model; random for the other objectives (whose settings were tuned from a
    random start) and with ``encoder_layers`` (whose code space is not the input's)."""
    rho: float | None = None
    """Target fraction of words each unit fires on: ``kl`` (default 0.05) and ``spine`` (its rho*,
    default 0.15)."""
    beta: float | None = None
    """Weight of the KL penalty (``kl``, default 10), on the KL divergence averaged over units."""
    l1_coef: float | None = None
    """Weight of the L1 penalty (``l1``, default 0.1), on the codes' L1 norm relative to the inputs' norms."""
    noise: float | None = None
    """Standard deviation of Gaussian noise added to the (normalised, unit-variance) inputs during
    training only, for any objective (a denoising autoencoder); never applied when encoding.
    Default: 0.2 for ``spine`` (as the paper), 0 otherwise."""
    encoder_layers: list[int] = field(default_factory=list)
    """Widths of hidden layers before the code, e.g. [80, 40]; the decoder mirrors them. Empty: the
    single-layer model (the only one whose decoder is a dictionary that pursuit can use)."""
    dead_window: float = 0.5
    """A unit is dead for AuxK if it has not fired in this many epochs' worth of words."""
    holdout: float = 0.0
    """Fraction of the words kept out of training, drawn with ``seed``, whose FVU and dead units are
    reported every epoch beside the training figures (and in the summary); 0, the default: off."""
    seed: int = 0
    """Seeds initialisation, data order and the held-out words: same seed, same model on the CPU."""
    checkpoint_every: int = 1000
    """Steps between checkpoints of a run directory (also at the end of every epoch)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` (the current GPU) or ``cuda:N`` (GPU N). With
    several processes each takes GPU ``LOCAL_RANK`` (``auto`` or ``cuda``)."""

    def validate(self) -> None:
        """Check the settings at the boundary; every problem is one clear line."""

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise SparsecodeError(msg)

        need(self.hidden >= 1, f"--hidden must be at least 1 (got {self.hidden})")
        need(self.sparsity in SPARSITIES, f"--sparsity must be one of {', '.join(SPARSITIES)} (got {self.sparsity!r})")
        for name, defaults in OBJECTIVE_DEFAULTS.items():
            if getattr(self, name) is not None and self.sparsity not in defaults:
                hint = "; cap the codes at encode time with --encode-k instead" if name == "k" else ""
                need(False, f"--{name.replace('_', '-')} applies to --sparsity {' or '.join(defaults)}, not {self.sparsity}{hint}")
        topk = self.sparsity in TOPK_SPARSITIES
        if self.rho is not None:
            need(0 < self.rho < 1, f"--rho must be between 0 and 1, exclusive (got {self.rho})")
        need(self.beta is None or self.beta >= 0, f"--beta must be 0 or more (got {self.beta})")
        need(self.l1_coef is None or self.l1_coef >= 0, f"--l1-coef must be 0 or more (got {self.l1_coef})")
        need(self.noise is None or self.noise >= 0, f"--noise must be 0 or more (got {self.noise})")
        need(all(isinstance(w, int) and w >= 1 for w in self.encoder_layers),
             f"--encoder-layers must be positive widths such as 80,40 (got {self.encoder_layers})")
        need(not self.encoder_layers or self.aux_coef == 0,
             "--aux-coef (AuxK) needs the single-layer model: AuxK reconstructs the residual with the decoder's "
             "rows alone; drop --encoder-layers or --aux-coef")
        need(topk or self.aux_coef == 0, f"--aux-coef (AuxK) applies to --sparsity topk or batchtopk, not {self.sparsity}")
        need(topk or self.k_anneal_from is None, f"--k-anneal-from applies to --sparsity topk or batchtopk, not {self.sparsity}")
        if topk:
            need(self.resolved("k") >= 1, f"--k must be at least 1 (got {self.resolved('k')})")
            need(self.resolved("k") <= self.hidden, f"--k {self.resolved('k')} is larger than the hidden size {self.hidden}; lower --k or raise --hidden")
        need(self.init is None or self.init in INITS, f"--init must be one of {', '.join(INITS)} (got {self.init!r})")
        need(self.init != "kmeans" or not self.encoder_layers,
             "--init kmeans needs the single-layer model: the centroids live in the input space; drop --encoder-layers or use --init random")
        need(self.balance is None or self.balance >= 0, f"--balance must be 0 or more (got {self.balance})")
        need(0 <= self.holdout < 1, f"--holdout must be a fraction, at least 0 and below 1 (got {self.holdout})")
        need(self.epochs >= 1, f"--epochs must be at least 1 (got {self.epochs})")
        need(self.batch_size >= 1, f"--batch-size must be at least 1 (got {self.batch_size})")
        need(self.lr > 0, f"--lr must be positive (got {self.lr})")
        need(0 <= self.warmup_frac < 1, f"warmup_frac must be in [0, 1) (got {self.warmup_frac})")
        need(0 <= self.k_anneal_frac <= 1, f"--k-anneal-frac must be in [0, 1] (got {self.k_anneal_frac})")
        if self.k_anneal_from is not None:
            need(self.resolved("k") <= self.k_anneal_from <= self.hidden,
                 f"--k-anneal-from must be between k={self.resolved('k')} and the hidden size {self.hidden} (got {self.k_anneal_from})")
        if self.encode_k is not None:
            need(1 <= self.encode_k <= self.hidden,
                 f"--encode-k must be between 1 and the hidden size {self.hidden} (got {self.encode_k})")
        if self.aux_k is not None:
            need(0 <= self.aux_k <= self.hidden, f"--aux-k must be between 0 and the hidden size {self.hidden} (got {self.aux_k})")
        need(self.checkpoint_every >= 1, f"--checkpoint-every must be at least 1 (got {self.checkpoint_every})")
        need(self.homeostasis is None or self.homeostasis >= 0, f"--homeostasis must be 0 or more (got {self.homeostasis})")
        need(self.dead_window > 0, f"dead_window must be positive (got {self.dead_window})")
        need(isinstance(self.device, str) and DEVICE_PATTERN.fullmatch(self.device) is not None,
             f"--device must be auto, cpu, cuda or cuda:N (got {self.device!r})")

    # Resolved values ------------------------------------------------------------------------------
    def resolved(self, name: str):
        """The value in use of a setting that may be left unset (None): as set, else its default,
        which for a per-objective setting (:data:`OBJECTIVE_DEFAULTS`) is the objective's, None
        where it does not apply; ``k_anneal_from`` defaults to k (no annealing), ``encode_k`` to k
        for topk and to none otherwise, ``init`` as its field says."""
        value = getattr(self, name)
        if value is not None:
            return value
        if name in OBJECTIVE_DEFAULTS:
            return OBJECTIVE_DEFAULTS[name].get(self.sparsity)
        if name == "k_anneal_from":
            return self.resolved("k")
        if name == "encode_k":
            return self.resolved("k") if self.sparsity == "topk" else None
        if name == "init":
            return "kmeans" if self.sparsity == "topk" and not self.encoder_layers else "random"
        return None

    def resolved_settings(self) -> dict:
        """The per-objective settings that apply to this objective, with the values in use."""
        return {name: self.resolved(name) for name, defaults in OBJECTIVE_DEFAULTS.items() if self.sparsity in defaults}

    @property
    def uses_k(self) -> bool:
        """Whether training selects k units (per row or per batch)."""
        return self.sparsity in TOPK_SPARSITIES

    def aux_k_for(self, d_in: int) -> int:
        return self.aux_k if self.aux_k is not None else min(self.hidden, max(1, d_in // 2))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


#: What ``--device`` accepts: auto, cpu, cuda (the current GPU) or cuda:N (GPU N).
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def resolve_device(name: str):
    """``auto`` -> CUDA when available, else CPU; ``cuda`` or ``cuda:N`` without that GPU is a clear error."""
    import torch

    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise SparsecodeError(f"--device must be auto, cpu, cuda or cuda:N (got {name!r})")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SparsecodeError(f"--device {name}: no CUDA GPU is available here; use --device cpu or auto")
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        have = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise SparsecodeError(f"--device {name}: there is no GPU {device.index} here ({count} GPU{'s' * (count != 1)}: "
                              f"{have}); choose one of those")
    return device


@contextlib.contextmanager
def on_device(device) -> Iterator[None]:
    """Make ``device`` the current CUDA device for the block (a GPU other than the first one: streams,
    generators and synchronisation then default to it); nothing for a CPU or an unnumbered ``cuda``."""
    import torch

    if device.type == "cuda" and device.index is not None:
        with torch.cuda.device(device):
            yield
    else:
        yield
