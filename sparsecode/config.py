"""Training settings: one dataclass, one default per setting, a docstring under each.

Each field also carries the one line ``sparsecode train --help`` shows for it (:func:`setting`),
from which the CLI builds its options; :meth:`TrainConfig.validate` is the one check of the
settings, its errors (:class:`~sparsecode.errors.SettingError`) naming the setting at fault.
``config.json`` in a run directory is this dataclass as JSON, plus what the run resolved (device,
data size, the sizes used).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field

from .errors import SettingError, need


#: Settings that may differ when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = ("checkpoint_every", "device")


#: How the decoder starts (see ``TrainConfig.init``).
INITS = ("kmeans", "random")
#: How word vectors are measured before coding (see ``TrainConfig.geometry``; defaults by objective below).
GEOMETRIES = ("cosine", "euclidean")
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
    # topk's: chosen on GloVe 50d (50k and 400k words) and spaCy 300d (benchmarks/INTERPRETABILITY.md);
    # the other objectives keep what they were tuned with.
    "geometry": {"topk": "cosine", "batchtopk": "euclidean", "kl": "euclidean", "l1": "euclidean", "spine": "euclidean"},
    "rank_power": {"topk": 1.0, "batchtopk": 0.0, "kl": 0.0, "l1": 0.0, "spine": 0.0},
}


def setting(default=None, *, help: str, shown: str | None = None, choices: tuple[str, ...] | None = None,
            option: bool = True, default_factory=None):
    """A field of :class:`TrainConfig` with what the command line says of it: ``help``, one short
    line; ``shown``, its default as ``--help`` shows it, when not the value itself (settings of
    :data:`OBJECTIVE_DEFAULTS` show theirs per objective); ``choices``, the values it takes;
    ``option=False`` for a setting of the library only. ``{name}`` in these texts is a setting,
    written as the reader names it (the CLI: ``--name``)."""
    metadata = {"help": help, "shown": shown, "choices": choices, "option": option}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_units(setting: str, value: int, hidden: int, least: int = 1) -> None:
    """A count of units (a k) that a model of ``hidden`` units can give: from ``least`` to ``hidden``."""
    template = "{" + setting + "} must be between {least} and the hidden size {size} (got {got})"
    need(least <= value <= hidden, setting, template, least=least, size=hidden, got=value)


def check_finite(settings) -> None:
    """Every float field of the dataclass ``settings`` that is set is a finite number: NaN or an
    infinity would be taken, then train into a divergence."""
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if float in (hints[f.name], *typing.get_args(hints[f.name])) and value is not None:
            need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), f.name,
                 "{" + f.name + "} must be a finite number (got {got})", got=value)


@dataclass
class TrainConfig:
    hidden: int = setting(1000, help="Hidden units H (code dimensions).")
    """H: number of hidden units (dimensions of the sparse code)."""
    sparsity: str = setting(SPARSITIES[0], help="Sparsity objective (README: Sparsity objectives).", choices=SPARSITIES)
    """The sparsity objective: ``topk`` (k units per word), ``batchtopk`` (k per word on average over
    a batch; a learned threshold when encoding), ``kl`` (KL penalty toward a firing rate rho), ``l1``
    (L1 penalty on the codes) or ``spine`` (SPINE's capped codes and losses)."""
    k: int | None = setting(help="Active units per word (batchtopk: on average over a batch).")
    """Active units per word after training (topk), or on average over a batch (batchtopk);
    default 32. Only for these two (cap other objectives' codes with ``encode_k``)."""
    epochs: int = setting(10, help="Passes over the vocabulary.")
    """Passes over the vocabulary."""
    geometry: str | None = setting(help="cosine: code each word's direction from the mean word, not its length.",
                                   choices=GEOMETRIES)
    """``cosine`` (topk's default; see :mod:`sparsecode.model`) or ``euclidean`` (the other objectives')."""
    rank_power: float | None = setting(help="Words beyond rank 10,000 drawn (10000/rank)^this as often; 0: each once.")
    """Frequency-aware training (topk's default 1, else 0): each epoch's words by rank (:mod:`sparsecode.data`)."""
    batch_size: int = setting(256, help="Words per step.")
    """Words per optimisation step."""
    lr: float = setting(5e-3, help="Peak Adam learning rate (warm-up, then cosine decay).")
    """Peak Adam learning rate (reached after warm-up, then decayed)."""
    warmup_frac: float = setting(0.05, help="Fraction of all steps over which the learning rate rises from 0.",
                                 option=False)
    """Fraction of all steps over which the learning rate rises linearly from 0."""
    lr_final_ratio: float = setting(0.1, help="Learning rate at the last step, as a fraction of {lr}.", option=False)
    """Learning rate at the last step, as a fraction of ``lr`` (cosine decay after warm-up)."""
    k_anneal_from: int | None = setting(help="Start at this k and lower it to {k} during training.", shown="off")
    """k at the first step, lowered linearly to ``k`` over ``k_anneal_frac`` of training (Makhzani
    and Frey 2013); default: no annealing (on GloVe it cost FVU: benchmarks/ABLATION.md)."""
    k_anneal_frac: float = setting(0.3, help="Fraction of training over which k is lowered.")
    """Fraction of all steps over which k is annealed, when ``k_anneal_from`` is set."""
    encode_k: int | None = setting(help="Active units per word when encoding (kl, l1, spine, batchtopk: a cap).", shown="{k} for topk, else no cap")
    """k used when encoding (their αk); default ``k`` for topk, none otherwise (the objective's own
    code: threshold or activation), which a given ``encode_k`` caps at its k largest per word."""
    aux_k: int | None = setting(help="Dead units per word in the AuxK loss.", shown="half the input dimensions")
    """Dead units used per word by the AuxK loss; default D/2 (at least 1, at most H)."""
    aux_coef: float = setting(0.0, help="Weight of the AuxK loss, which trains dead units (0: off).")
    """Weight of the AuxK loss (Gao et al. use 1/32); 0, the default, turns AuxK off (on GloVe it
    killed units instead of reviving them: benchmarks/ABLATION.md)."""
    homeostasis: float | None = setting(help="Per-step nudge of each unit's bias toward equal use (0: off).")
    """topk and batchtopk, default 3e-5: per-step nudge of each unit's encoder bias toward the
    frequency k/H (up when it fires less, down when more; 0: off). Its effect on dead units:
    benchmarks/ABLATION.md."""
    balance: float | None = setting(help="Per-step move of each unit's selection-only bias toward equal use "
                                         "(0: off).")
    """topk, default 5e-3: after each step every unit's selection bias (added to the pre-activations
    only to choose the k units, never to an activation; saved in model.pt as ``select_bias``) moves
    by this much toward the frequency k/H: up for a unit chosen less often, down for one chosen more
    (0: off). Without it a top-k code collapses onto a few units where k is large for D:
    benchmarks/INTERPRETABILITY.md."""
    init: str | None = setting(help="How the decoder starts: k-means centroids of the most frequent words (one "
                                    "idea per unit) or random.", choices=INITS,
                               shown="kmeans for topk without {encoder_layers}, else random")
    """How decoder rows (and the tied encoder) start: ``kmeans``, the spherical k-means centroids of
    the first 65,536 words (the most frequent, in a file in frequency order), each a direction many
    words share, so that a unit starts as one idea; or ``random`` unit vectors. Default: kmeans for
    the single-layer topk model; random for the other objectives (whose settings were tuned from a
    random start) and with ``encoder_layers`` (whose code space is not the input's)."""
    rho: float | None = setting(help="Target fraction of words each unit fires on (kl, spine).")
    """Target fraction of words each unit fires on: ``kl`` (default 0.05) and ``spine`` (its rho*,
    default 0.15)."""
    beta: float | None = setting(help="Weight of the KL penalty (kl).")
    """Weight of the KL penalty (``kl``, default 10), on the KL divergence averaged over units."""
    l1_coef: float | None = setting(help="Weight of the L1 penalty (l1).")
    """Weight of the L1 penalty (``l1``, default 0.1), on the codes' L1 norm relative to the inputs' norms."""
    noise: float | None = setting(help="Gaussian noise (std) added to the scaled inputs, in training only.")
    """Standard deviation of Gaussian noise added to the (normalised, unit-variance) inputs during
    training only, for any objective (a denoising autoencoder); never applied when encoding.
    Default: 0.2 for ``spine`` (as the paper), 0 otherwise."""
    encoder_layers: list[int] = setting(help="Hidden layer widths before the code, e.g. 80,40; the decoder mirrors them.",
                                        shown="none: one layer", default_factory=list)
    """Widths of hidden layers before the code, e.g. [80, 40]; the decoder mirrors them. Empty: the
    single-layer model (the only one whose decoder is a dictionary that pursuit can use)."""
    dead_window: float = setting(0.5, help="Epochs' worth of words after which a silent unit is dead for AuxK.",
                                 option=False)
    """A unit is dead for AuxK if it has not fired in this many epochs' worth of words."""
    holdout: float = setting(0.0, help="Fraction of the words kept out of training and measured every epoch "
                                       "(0: off).")
    """Fraction of the words kept out of training, drawn with ``seed``, whose FVU and dead units are
    reported every epoch beside the training figures (and in the summary); 0, the default: off."""
    seed: int = setting(0, help="Random seed.")
    """Seeds initialisation, data order and the held-out words: same seed, same model on the CPU."""
    checkpoint_every: int = setting(1000, help="Steps between checkpoints (also every epoch).")
    """Steps between checkpoints of a run directory (also at the end of every epoch)."""
    device: str = setting(DEVICES[0], help="Where to train; auto: CUDA when available, cuda:N the GPU N.",
                          choices=DEVICES)
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` (the current GPU) or ``cuda:N`` (GPU N). With
    several processes each takes GPU ``LOCAL_RANK`` (``auto`` or ``cuda``)."""

    def validate(self) -> None:
        """Check the settings at the boundary: every problem is one :class:`SettingError` that
        names the setting."""
        check_finite(self)
        self._check_objective()
        self._check_sizes()
        self._check_schedule()
        check_device(self.device)

    def _check_objective(self) -> None:
        """The objective, the settings that belong to some objectives only, and the model's shape."""
        need(self.sparsity in SPARSITIES, "sparsity", "{sparsity} must be one of {names} (got {got!r})",
             names=", ".join(SPARSITIES), got=self.sparsity)
        for name, defaults in OBJECTIVE_DEFAULTS.items():
            hint = "; cap the codes at encode time with {encode_k} instead" if name == "k" else ""
            need(getattr(self, name) is None or self.sparsity in defaults, name,
                 "{" + name + "} applies to {sparsity} {these}, not {got}" + hint, these=" or ".join(defaults),
                 got=self.sparsity)
        topk = self.uses_k
        need(self.rho is None or 0 < self.rho < 1, "rho", "{rho} must be between 0 and 1, exclusive (got {got})", got=self.rho)
        for name in ("beta", "l1_coef", "noise", "balance", "homeostasis", "rank_power"):
            value = getattr(self, name)
            need(value is None or value >= 0, name, "{" + name + "} must be 0 or more (got {got})", got=value)
        need(all(isinstance(w, int) and w >= 1 for w in self.encoder_layers), "encoder_layers",
             "{encoder_layers} must be positive widths such as 80,40 (got {got})", got=self.encoder_layers)
        need(not self.encoder_layers or self.aux_coef == 0, "aux_coef",
             "{aux_coef} (AuxK) needs the single-layer model: AuxK reconstructs the residual with the decoder's "
             "rows alone; drop {encoder_layers} or {aux_coef}")
        need(topk or self.aux_coef == 0, "aux_coef", "{aux_coef} (AuxK) applies to {sparsity} topk or batchtopk, not {got}",
             got=self.sparsity)
        need(topk or self.k_anneal_from is None, "k_anneal_from",
             "{k_anneal_from} applies to {sparsity} topk or batchtopk, not {got}", got=self.sparsity)
        for name, names in (("geometry", GEOMETRIES), ("init", INITS)):
            need(getattr(self, name) in (None, *names), name, "{" + name + "} must be one of {names} (got {got!r})",
                 names=", ".join(names), got=getattr(self, name))
        need(self.init != "kmeans" or not self.encoder_layers, "init",
             "{init} kmeans needs the single-layer model: the centroids live in the input space; drop {encoder_layers} "
             "or use {init} random")

    def _check_sizes(self) -> None:
        """The hidden size and every count of units, words or steps."""
        need(self.hidden >= 1, "hidden", "{hidden} must be at least 1 (got {got})", got=self.hidden)
        if self.uses_k:
            k = self.resolved("k")
            need(k >= 1, "k", "{k} must be at least 1 (got {got})", got=k)
            need(k <= self.hidden, "k", "{k} {got} is larger than the hidden size {size}; lower {k} or raise {hidden}",
                 got=k, size=self.hidden)
        if self.encode_k is not None:
            check_units("encode_k", self.encode_k, self.hidden)
        if self.aux_k is not None:
            check_units("aux_k", self.aux_k, self.hidden, least=0)
        need(0 <= self.holdout < 1, "holdout", "{holdout} must be a fraction, at least 0 and below 1 (got {got})",
             got=self.holdout)
        need(self.epochs >= 1, "epochs", "{epochs} must be at least 1 (got {got})", got=self.epochs)
        need(self.batch_size >= 1, "batch_size", "{batch_size} must be at least 1 (got {got})", got=self.batch_size)
        need(self.checkpoint_every >= 1, "checkpoint_every", "{checkpoint_every} must be at least 1 (got {got})",
             got=self.checkpoint_every)

    def _check_schedule(self) -> None:
        """The learning rate's and k's schedules and the dead-unit window."""
        need(self.lr > 0, "lr", "{lr} must be positive (got {got})", got=self.lr)
        need(0 <= self.warmup_frac < 1, "warmup_frac", "{warmup_frac} must be in [0, 1) (got {got})", got=self.warmup_frac)
        need(0 <= self.k_anneal_frac <= 1, "k_anneal_frac", "{k_anneal_frac} must be in [0, 1] (got {got})",
             got=self.k_anneal_frac)
        if self.k_anneal_from is not None:
            need(self.resolved("k") <= self.k_anneal_from <= self.hidden, "k_anneal_from",
                 "{k_anneal_from} must be between k={k_value} and the hidden size {size} (got {got})",
                 k_value=self.resolved("k"), size=self.hidden, got=self.k_anneal_from)
        need(self.dead_window > 0, "dead_window", "{dead_window} must be positive (got {got})", got=self.dead_window)

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
        return cls(**{**EARLIER_VALUES, **{k: v for k, v in data.items() if k in names}})


#: What a run recorded before a setting existed did, as that setting's value (``TrainConfig.from_dict``:
#: a checkpoint of such a run resumes only with these, and its config.json reads as it trained).
EARLIER_VALUES = {"geometry": "euclidean", "rank_power": 0.0}


#: What ``device`` accepts: auto, cpu, cuda (the current GPU) or cuda:N (GPU N).
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def check_device(name) -> None:
    """A device name as ``device`` accepts it (:data:`DEVICE_PATTERN`), whether or not it is here."""
    need(isinstance(name, str) and DEVICE_PATTERN.fullmatch(name) is not None, "device",
         "{device} must be auto, cpu, cuda or cuda:N (got {got!r})", got=name)


def resolve_device(name: str):
    """``auto`` -> CUDA when available, else CPU; ``cuda`` or ``cuda:N`` without that GPU is a clear error."""
    import torch

    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SettingError("device", "{device} {got}: no CUDA GPU is available here; use {device} cpu or auto", got=name)
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        have = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise SettingError("device", "{device} {got}: there is no GPU {index} here ({count} GPU{s}: {have}); choose one "
                           "of those", got=name, index=device.index, count=count, s="s" * (count != 1), have=have)
    return device
