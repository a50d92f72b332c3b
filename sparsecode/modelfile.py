"""The model file ``model.pt``: how a :class:`~sparsecode.model.SparseAutoencoder` is saved and read back.

``model.pt`` is a plain state dict (``torch.load(path, weights_only=True)`` reads it). A
single-layer model has exactly ``W_enc`` (D, H), ``b_enc`` (H,), ``W_dec`` (H, D), ``b_dec`` (D,),
``input_mean`` (D,) and ``input_scale`` (), float32 on the CPU; decoder rows have unit norm. Two
small tensors describe how it codes, so that the file alone encodes as its run does (see
:data:`META`): ``meta.sparsity`` (uint8, the objective's name in ASCII) and ``meta.encode_k``
(int64 (), the encode k; 0: none, the objective's own code), and ``meta.geometry`` (uint8, the
geometry's name in ASCII: ``cosine`` or ``euclidean``, see :mod:`sparsecode.model`). Files written
before them still load (as ``topk`` unless told otherwise, with no encode k; :func:`sparsecode.rundir.load_run`
takes both from the run's ``config.json``; without ``meta.geometry`` as ``euclidean``, the only
geometry there was). A ``topk`` model trained with ``balance`` adds ``select_bias`` (H,); a
``batchtopk`` model adds ``threshold`` (). A model with hidden layers (``encoder_layers`` E1..EL)
adds ``enc_layers.{i}.weight`` (E_{i+1}, E_i) and ``enc_layers.{i}.bias`` (E_{i+1},) with E0 = D,
``b_mid`` (EL,), and the mirrored ``dec_layers.{i}.weight`` (E_{L-i-1}, E_{L-i}) with
``dec_layers.{i}.bias`` for every decoder layer but the last (whose bias is ``b_dec``); ``W_enc`` is
then (EL, H) and ``W_dec`` (H, EL), still unit-norm rows, and every decoder layer's columns have
unit norm too. The model's ``state_dict()`` is this layout too (:func:`use_file_layout`).
"""

from __future__ import annotations

import hashlib
import os
import re

import torch
from torch import Tensor, nn

from .config import GEOMETRIES, SPARSITIES
from .errors import SettingError, SparsecodeError, first_line


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
META = ("meta.sparsity", "meta.encode_k", "meta.geometry")


# -- the state dict's layout ---------------------------------------------------------------------------
def use_file_layout(model: nn.Module) -> None:
    """Make ``model.state_dict()`` and ``model.load_state_dict`` speak the file's layout: ``W_enc``
    (D, H) where the model stores ``W_enc_units`` (H, D), and the :data:`META` tensors after the weights."""
    model._register_state_dict_hook(_w_enc_to_state)
    model._register_load_state_dict_pre_hook(_w_enc_from_state)
    model._register_state_dict_hook(_meta_to_state)
    model._register_load_state_dict_pre_hook(_meta_from_state, with_module=True)


def _w_enc_to_state(module: nn.Module, state: dict, prefix: str, _metadata) -> None:
    """State-dict hook: ``W_enc_units`` (H, D) appears as ``W_enc`` (D, H), in its place."""
    items = [(f"{prefix}W_enc", v.t()) if name == f"{prefix}W_enc_units" else (name, v) for name, v in state.items()]
    state.clear()
    state.update(items)


def _w_enc_from_state(state: dict, prefix: str, *_args) -> None:
    """Load pre-hook: ``W_enc`` (D, H) of a state dict fills ``W_enc_units`` (H, D)."""
    if f"{prefix}W_enc" in state:
        state[f"{prefix}W_enc_units"] = state.pop(f"{prefix}W_enc").t()


def _meta_to_state(module: nn.Module, state: dict, prefix: str, _metadata) -> None:
    """State-dict hook: the :data:`META` tensors, after the weights."""
    state[f"{prefix}meta.sparsity"] = torch.tensor(list(module.sparsity.encode("ascii")), dtype=torch.uint8)
    state[f"{prefix}meta.encode_k"] = torch.tensor(module.encode_k or 0, dtype=torch.int64)
    state[f"{prefix}meta.geometry"] = torch.tensor(list(module.geometry.encode("ascii")), dtype=torch.uint8)


def _meta_from_state(module: nn.Module, state: dict, prefix: str, *_args) -> None:
    """Load pre-hook: take the :data:`META` tensors out of ``state`` (a state dict without them,
    from a file written before them, loads as it did); the encode k they record becomes the
    model's when they record its objective (weights may be loaded into a model of another
    objective on purpose: :func:`from_weights` is what checks a file)."""
    meta = {name: state.pop(f"{prefix}{name}") for name in META if f"{prefix}{name}" in state}
    sparsity, encode_k = read_meta(meta, "model state")
    if sparsity == module.sparsity:
        module.encode_k = encode_k
    if "meta.geometry" in meta:
        module.geometry = read_geometry(meta, "model state")


def read_geometry(state: dict, source: str) -> str:
    """The geometry ``meta.geometry`` of ``state`` records (``euclidean`` where it records none)."""
    if "meta.geometry" not in state:
        return "euclidean"
    try:
        geometry = bytes(state["meta.geometry"].to(torch.uint8).tolist()).decode("ascii")
    except (RuntimeError, ValueError, UnicodeDecodeError):
        raise SparsecodeError(f"{source}: unreadable meta.geometry; the file is corrupt") from None
    if geometry not in GEOMETRIES:
        raise SparsecodeError(f"{source}: unknown geometry {geometry!r}; the file is from a newer sparsecode")
    return geometry


def read_meta(state: dict, source: str) -> tuple[str | None, int | None]:
    """The objective and encode k that the :data:`META` tensors of ``state`` record (None, None
    for a state dict without them); an objective this sparsecode does not know is refused."""
    if not any(name in state for name in META):
        return None, None
    try:
        sparsity = bytes(state["meta.sparsity"].to(torch.uint8).tolist()).decode("ascii")
        encode_k = int(state["meta.encode_k"])
    except (KeyError, RuntimeError, ValueError, UnicodeDecodeError):
        raise SparsecodeError(f"{source}: unreadable meta.sparsity or meta.encode_k; the file is corrupt") from None
    return known_sparsity(sparsity, source), encode_k or None


def known_sparsity(sparsity: str, source: str) -> str:
    """The objective a file records (``model.pt``, or a run's ``config.json``), refused when this
    sparsecode does not know it."""
    if sparsity not in SPARSITIES:
        raise SparsecodeError(f"{source}: unknown sparsity {sparsity!r}; the file is from a newer sparsecode")
    return sparsity


# -- writing -----------------------------------------------------------------------------------------
def weights(model: nn.Module) -> dict[str, Tensor]:
    """The ``model.pt`` state dict of ``model``: float32 CPU tensors, contiguous, in the documented
    layout, and the :data:`META` tensors."""
    return {name: (t.detach() if name in META else t.detach().float()).cpu().contiguous().clone()
            for name, t in model.state_dict().items()}


def save(model: nn.Module, path: str | os.PathLike) -> None:
    """Write ``model.pt`` (``path`` is the file, written as is: callers make it atomic)."""
    torch.save(weights(model), path)


def fingerprint(model: nn.Module) -> str:
    """:func:`weights_fingerprint` of ``model``'s ``model.pt`` tensors; a euclidean model's
    ``meta.geometry`` is left out, as files written before it existed imply it, so that codes
    encoded by the previous version still match their run."""
    state = weights(model)
    if getattr(model, "geometry", "euclidean") == "euclidean":
        state = {name: t for name, t in state.items() if not name.endswith("meta.geometry")}
    return weights_fingerprint(state)


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


# -- reading -----------------------------------------------------------------------------------------
def existing_weights(path: str | os.PathLike) -> str:
    """``path`` when a weights file is there; otherwise the one error for a missing ``model.pt``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SparsecodeError(f"{path}: model weights not found; train a model with 'sparsecode train' first")
    return path


def pickled_global(exc: BaseException) -> str | None:
    """The pickled object's name when ``torch.load(..., weights_only=True)`` refused one, else None."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    return found.group(1) if found else None


def unloadable(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, as the middle of a one-line error
    (the caller adds the fix): a pickled object, never loaded since it could run code, or a file
    that is truncated or corrupt."""
    name = pickled_global(exc)
    if name is not None:
        return f": it holds a pickled Python object ({name}), which sparsecode never loads (weights_only=True)"
    return f" ({first_line(exc, 100)}): the file is truncated or corrupt"


def load(cls: type[nn.Module], path: str | os.PathLike, device: torch.device | str = "cpu",
         sparsity: str | None = None) -> nn.Module:
    """Read ``model.pt`` safely (``weights_only=True``: no pickled code is ever run) into a ``cls``."""
    path = existing_weights(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt or unsafe files
        fix = "give a model.pt that sparsecode wrote" if pickled_global(exc) else "copy it again, or train again"
        raise SparsecodeError(f"{path}: cannot load model weights safely{unloadable(exc)}; {fix}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise SparsecodeError(f"{path}: not a sparsecode weights file (expected a dict of tensors)")
    return from_weights(cls, state, device=device, source=path, sparsity=sparsity)


def from_weights(cls: type[nn.Module], state: dict[str, Tensor], device: torch.device | str = "cpu",
                 source: str = "model.pt", sparsity: str | None = None) -> nn.Module:
    """Build a ``cls`` from a ``model.pt`` state dict, checking names and shapes.

    The objective and encode k come from the :data:`META` tensors; ``sparsity``, when given,
    must agree with them (a file without them is taken as ``sparsity``, default ``topk``, with
    no encode k). Hidden layers are read from the tensor names.
    """
    recorded, _ = read_meta(state, source)
    if sparsity is not None and recorded is not None and sparsity != recorded:
        raise SettingError("sparsity", "{path}: the model was trained with {sparsity} {recorded}, not {got}; the file "
                           "is from another run", path=source, recorded=recorded, got=sparsity)
    sparsity = recorded or sparsity or "topk"
    missing = [n for n in STATE_SHAPES if n not in state]
    if missing:
        raise SparsecodeError(f"{source}: missing tensor(s) {', '.join(missing)}; not a sparsecode model")
    if sparsity == "batchtopk" and "threshold" not in state:
        raise SparsecodeError(f"{source}: a batchtopk model needs a 'threshold' tensor; the file is from another run")
    if state["input_mean"].dim() != 1 or state["W_enc"].dim() != 2:
        raise SparsecodeError(f"{source}: tensors of impossible shapes; the file is corrupt or from another tool")
    widths = []
    while f"enc_layers.{len(widths)}.weight" in state and state[f"enc_layers.{len(widths)}.weight"].dim() == 2:
        widths.append(int(state[f"enc_layers.{len(widths)}.weight"].shape[0]))
    model = cls(int(state["input_mean"].shape[0]), int(state["W_enc"].shape[1]), device=device, sparsity=sparsity,
                encoder_layers=widths, geometry=read_geometry(state, source))
    if "select_bias" in state and sparsity == "topk":
        model.use_select_bias()
    expected = {name: t for name, t in model.state_dict().items() if name not in META}
    _check_tensors(state, expected, source)
    model.load_state_dict({name: state[name] for name in (*expected, *META) if name in state})
    return model


def _check_tensors(state: dict[str, Tensor], expected: dict[str, Tensor], source: str) -> None:
    """Refuse a state dict whose tensors are not exactly ``expected``'s names and shapes (plus :data:`META`)."""
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
