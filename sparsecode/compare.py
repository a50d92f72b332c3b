"""Two dictionaries side by side: their units matched one to one by the cosine of their decoder rows.

A unit of a single-layer model is its decoder row, a direction in the (centred) embedding space;
two runs on the same vectors (any H, the same D) are compared by matching their rows one to one so
that the sum of the matched cosines is the largest possible (an optimal assignment, by scipy's
``linear_sum_assignment``: exact, in C). Each of the smaller run's units gets one partner. The
figures: the share of those units whose partner is at a cosine above 0.9, 0.7 and 0.5, and the
median cosine. Two seeds of the same settings that find the same units score near 1; 1,000 random
directions matched to 1,000 others reach a median of 0.42 in 50 dimensions, 0.18 in 300
(benchmarks/STABILITY.md).

The assignment takes O(H³) time and a dense H_A × H_B matrix of float64: up to MAX_UNITS units on
either side. On 2 shared CPU cores, random directions (the hardest case) took 0.4 s at H=1,000,
2.2 s at 2,000, 7.9 s at 4,096 and 127 s at 8,192 (D=300). Beyond MAX_UNITS :func:`match_units`
refuses in one line rather than run for a long time: two runs of 16,384 units would need a 2 GiB
cost matrix and, at that growth, a quarter of an hour or more. Match subsets of the units there
(the most used of each run, say): the function takes any rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SparsecodeError

#: The shares of matched units :func:`match_units` reports, by the cosine they exceed.
THRESHOLDS = (0.9, 0.7, 0.5)
#: The most units on either side that the exact assignment takes.
MAX_UNITS = 8192
#: Random pairs shown besides the best and the worst.
RANDOM_PAIRS = 5
#: Best and worst pairs shown.
END_PAIRS = 5


@dataclass
class Matching:
    """A one-to-one matching of the rows of A (H_A, D) and B (H_B, D)."""

    a: np.ndarray
    """(M,) units of A, M = min(H_A, H_B), in increasing order."""
    b: np.ndarray
    """(M,) the unit of B each is matched with."""
    cosine: np.ndarray
    """(M,) the cosine of each matched pair."""
    units_a: int
    units_b: int

    def summary(self) -> dict:
        return {"units_a": self.units_a, "units_b": self.units_b, "matched": int(len(self.a)),
                **{f"above_{t}": float((self.cosine > t).mean()) for t in THRESHOLDS},
                "median": float(np.median(self.cosine)), "mean": float(self.cosine.mean())}


def unit_rows(weights: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero)."""
    w = np.asarray(weights, dtype=np.float64)
    norm = np.linalg.norm(w, axis=1, keepdims=True)
    return w / np.where(norm > 0, norm, 1.0)


def match_units(a: np.ndarray, b: np.ndarray, what: tuple[str, str] = ("A", "B")) -> Matching:
    """The optimal one-to-one matching of the rows of ``a`` (H_A, D) and ``b`` (H_B, D) by cosine."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise SparsecodeError(f"{what[0]} and {what[1]}: units of {a.shape[-1]} and {b.shape[-1]} dimensions cannot be "
                              "compared; compare runs trained on the same embeddings (the same D)")
    largest = max(len(a), len(b))
    if largest > MAX_UNITS:
        raise SparsecodeError(
            f"{what[0]} and {what[1]}: {len(a):,} x {len(b):,} units is past the {MAX_UNITS:,} units per side that the "
            f"exact matching takes (its time grows as H³, its {len(a) * len(b) * 8 / 2**30:.1f} GiB cost matrix as H²); "
            "compare subsets of the units, such as the most used ones of each run (sparsecode.compare.match_units)")
    if not len(a) or not len(b):
        raise SparsecodeError(f"{what[0]} and {what[1]}: a run without units cannot be matched")
    from scipy.optimize import linear_sum_assignment

    cos = unit_rows(a) @ unit_rows(b).T
    rows, cols = linear_sum_assignment(cos, maximize=True)
    return Matching(rows, cols, cos[rows, cols], len(a), len(b))


def pair_choice(matching: Matching, seed: int = 0, ends: int = END_PAIRS, random: int = RANDOM_PAIRS) -> dict:
    """Which pairs to show: the indices into ``matching`` of the best and worst ``ends`` and of
    ``random`` others drawn with ``seed``."""
    order = np.argsort(-matching.cosine, kind="stable")
    ends = min(ends, len(order))
    rest = order[ends : len(order) - ends]
    rng = np.random.default_rng(seed)
    drawn = np.sort(rng.choice(rest, min(random, len(rest)), replace=False)) if len(rest) else rest
    return {"best": order[:ends], "worst": order[::-1][:ends], "random": drawn}


def decoder_rows(run_dir: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """(H, D) the decoder rows of a run's single-layer model, and its config."""
    from .rundir import load_run

    model, config = load_run(run_dir)
    if not model.is_linear:
        raise SparsecodeError(f"{run_dir}: a model with --encoder-layers has no decoder rows in the embedding space; "
                              "compare runs of single-layer models")
    return model.W_dec.detach().cpu().numpy(), config


def _codes_of(source: Path) -> tuple[Path, "object | None"]:
    """A run directory and its codes (or None) from a run directory or a codes file."""
    from .codes import check_same_model, load_codes
    from .encoding import default_codes_path
    from .rundir import load_run

    if source.is_dir():
        path = default_codes_path(source)
        if not path.is_file():
            return source, None
        codes = load_codes(path)
        check_same_model(codes, load_run(source)[0], source)
        return source, codes
    codes = load_codes(source)
    recorded = codes.attrs.get("run_dir")
    if not recorded or not Path(recorded).is_dir():
        raise SparsecodeError(f"{source}: the run that made these codes ({recorded or 'none recorded'}) is not there; "
                              "give the run directory instead")
    return Path(recorded), codes


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, seed: int = 0, top: int = 5) -> dict:
    """Match the units of two runs (each a run directory or a codes file of one): the summary of
    :meth:`Matching.summary` and the best, worst and random pairs, each with both units' ``top``
    words when the codes are there (a run directory's ``codes.h5``, or the codes file given)."""
    (dir_a, codes_a), (dir_b, codes_b) = _codes_of(Path(run_a)), _codes_of(Path(run_b))
    (wa, _), (wb, _) = decoder_rows(dir_a), decoder_rows(dir_b)
    matching = match_units(wa, wb, (str(run_a), str(run_b)))
    chosen = pair_choice(matching, seed)

    def words(codes, unit: int):
        return None if codes is None else [w for w, _ in codes.top_words(int(unit))][:top]

    pairs = {kind: [{"unit_a": int(matching.a[i]), "unit_b": int(matching.b[i]), "cosine": float(matching.cosine[i]),
                     "words_a": words(codes_a, matching.a[i]), "words_b": words(codes_b, matching.b[i])}
                    for i in idx] for kind, idx in chosen.items()}
    missing = [str(d) for d, c in ((dir_a, codes_a), (dir_b, codes_b)) if c is None]
    return {"run_a": str(dir_a), "run_b": str(dir_b), **matching.summary(), "pairs": pairs,
            "without_words": missing}
