"""How good and how healthy codes are: reconstruction, sparsity, word similarity, DistRatio.

- FVU is the fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2, with the
  variance taken about the data mean, on the original scale.
- Word similarity follows the usual protocol (Faruqui and Dyer 2014): lower-case both words, skip
  pairs with an out-of-vocabulary word (and count them), score pairs by cosine, report Spearman's
  rank correlation with the human scores (ties get average ranks). An all-zero code has no
  direction; its cosine with anything is taken as 0.
- DistRatio (Sun et al. 2016) measures how coherent each dimension's top words are: for each
  dimension, its top-5 words T and one intruder b drawn from the words in the bottom half of that
  dimension and the top 10% of another one; DistRatio = mean over dimensions of
  (mean distance from T to b) / (mean pairwise distance within T), Euclidean distances in the
  original embedding space. Higher is more interpretable. Seeded, so it is reproducible.
- Codes come from the model's encoder or from pursuit over its decoder (``method``, see
  :mod:`sparsecode.pursuit`).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .codes import Codes, check_same_model, load_codes
from .devices import for_torch
from .convert import CACHE_NAME, cache_matches, load_embeddings, readable_embeddings
from .errors import SparsecodeError, need
from .clusters import as_many_clusters_as, cluster_measures
from .interpret import Coherence, coherence, lexicon, unit_balance, unit_use
from .model import SparseAutoencoder
from .naming import name_units
from .pursuit import make_coder
from .rundir import default_encode_k, load_run

#: The word-similarity files shipped inside the package (see resources/word-sim/README.md), so that an
#: installed sparsecode finds them wherever it runs.
DEFAULT_WORDSIM_DIR = Path(__file__).resolve().parent / "resources" / "word-sim"
#: Seed of DistRatio's intruder words.
DEFAULT_SEED = 0
#: Benchmarks summarised as "average" (the four the project's goals are stated on).
HEADLINE_WORDSIM = ("EN-WS-353-ALL", "EN-SIMLEX-999", "EN-MEN-TR-3k", "EN-RW-STANFORD")


@torch.no_grad()
def code_statistics(
    model: SparseAutoencoder, vectors: Tensor, k: int, batch_size: int = 8192, method: str = "encoder",
    nonneg: bool = False,
) -> dict:
    """Encode every row of ``vectors`` (N, D, original scale, on the model's device) with ``k``
    active units, by the encoder or by pursuit (``method`` "encoder" or "omp", ``nonneg`` for
    non-negative pursuit) and report: ``fvu``, ``cosine`` (mean cosine of x and x_hat), ``mean_l0``,
    ``dead_fraction`` (units no row uses), ``always_on_fraction`` (units used by more than half
    the rows) and ``zero_rows_fraction`` (rows whose code is all zeros). FVU and cosine compare
    the reconstruction with the rows the model reconstructs (:meth:`~sparsecode.model.SparseAutoencoder.reconstruction_target`)."""
    mean = torch.zeros(vectors.shape[1], dtype=torch.float64, device=vectors.device)
    for start in range(0, vectors.shape[0], batch_size):
        mean += model.reconstruction_target(vectors[start : start + batch_size]).double().sum(0)
    stats = CodeStatistics(model, k, (mean / vectors.shape[0]).to(vectors.dtype), method, nonneg)
    for start in range(0, vectors.shape[0], batch_size):
        stats.update(vectors[start : start + batch_size])
    return stats.result()


class CodeStatistics:
    """:func:`code_statistics` accumulated batch by batch, for data streamed from disk or split over
    processes: ``mean`` (D,) is the mean of the rows the model reconstructs (the data mean, for the
    euclidean geometry); :attr:`sums` add up across parts."""

    def __init__(self, model: SparseAutoencoder, k: int, mean: Tensor, method: str = "encoder", nonneg: bool = False):
        self.model, self.k, self.mean = model, k, mean
        self.coder = make_coder(model, method, nonneg)
        # n, sse, ssd, sum of cosines, L0, zero rows, then per unit: rows using it (float64: exact counts).
        self.sums = torch.zeros(6 + model.n_hidden, dtype=torch.float64, device=mean.device)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Add the rows of ``x`` (B, D), original scale, on the model's device."""
        enc = self.coder.encode(x, self.k)
        x_hat = self.model.decode(enc.acts, enc.indices)
        x = self.model.reconstruction_target(x)
        active = enc.acts != 0
        row_l0 = active.sum(1)
        s = self.sums
        s[0] += x.shape[0]
        s[1] += (x - x_hat).double().pow(2).sum()
        s[2] += (x - self.mean).double().pow(2).sum()
        s[3] += torch.nn.functional.cosine_similarity(x, x_hat, dim=1).double().sum()
        s[4] += row_l0.sum()
        s[5] += (row_l0 == 0).sum()
        s[6:].index_add_(0, enc.indices.reshape(-1), active.reshape(-1).double())

    def result(self) -> dict:
        n, sse, ssd, cos_sum, l0, zero_rows = (float(v) for v in self.sums[:6])
        usage = self.sums[6:]
        balance = unit_balance(usage.cpu().numpy(), int(n))
        return {
            "fvu": sse / ssd if ssd > 0 else None,  # None: vectors that do not vary have no FVU
            "cosine": cos_sum / n,
            "mean_l0": l0 / n,
            "dead_fraction": float((usage == 0).double().mean()),
            "always_on_fraction": float((usage > n / 2).double().mean()),
            "zero_rows_fraction": zero_rows / n,
            **{key: balance[key] for key in ("effective_units", "starved_fraction", "busy_units", "busiest_rate")},
        }


# -- reconstruction and sparsity of stored codes -------------------------------------------------
@torch.no_grad()
def reconstruction_of_codes(codes: Codes, model: SparseAutoencoder, vectors: np.ndarray, batch_size: int = 8192,
                            worst: int = 0) -> dict:
    """FVU and mean cosine of the vectors (N, D) reconstructed from the stored codes through the
    ``model.pt`` contract (``x_hat = (z @ W_dec + b_dec) * input_scale + input_mean`` for a
    single-layer model; through the hidden decoder layers otherwise).

    With ``worst`` > 0, also ``worst``: the ``worst`` words reconstructed worst, as dicts of
    ``word``, ``error`` (the word's own FVU, ||x - x_hat||^2 / ||x - mean||^2: 1 means no better
    than the mean vector), ``squared_error`` and ``cosine``, largest error first. The vectors are
    compared as the model reconstructs them (``model.reconstruction_target``: for the cosine
    geometry, each at the typical length from the mean)."""
    n = len(codes.words)
    device = model.W_dec.device

    def target(start: int, stop: int) -> Tensor:
        return model.reconstruction_target(torch.from_numpy(vectors[start:stop]).to(device)).cpu().double()

    mean = sum(target(start, start + batch_size).sum(0) for start in range(0, n, batch_size)) / n
    row_sse, row_ssd, row_cos = (np.empty(n) for _ in range(3))
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        z = torch.from_numpy(codes.dense(rows))
        x_hat = model.denormalise(model.decode_dense_normalised(z.to(device))).cpu().double()
        x = target(start, start + len(rows))
        row_sse[rows] = (x - x_hat).pow(2).sum(1).numpy()
        row_ssd[rows] = (x - mean).pow(2).sum(1).numpy()
        row_cos[rows] = torch.nn.functional.cosine_similarity(x, x_hat, dim=1).numpy()
    sse, ssd = float(row_sse.sum()), float(row_ssd.sum())
    result = {"fvu": sse / ssd if ssd > 0 else None, "cosine": float(row_cos.sum()) / n}  # None: no variance
    if worst > 0:
        error = row_sse / np.where(row_ssd > 0, row_ssd, np.inf)  # a word at the mean: error 0
        order = np.argsort(-error, kind="stable")[:worst]
        result["worst"] = [{"word": codes.words[i], "error": float(error[i]), "squared_error": float(row_sse[i]),
                            "cosine": float(row_cos[i])} for i in order]
    return result


def sparsity_of_codes(codes: Codes) -> dict:
    """Mean L0, its histogram, dead and always-on units, all-zero rows."""
    l0 = codes.l0()
    n = len(codes.words)
    hist = np.bincount(l0)
    return {
        "mean_l0": float(l0.mean()),
        "max_l0": int(l0.max()) if n else 0,
        "l0_histogram": {str(i): int(c) for i, c in enumerate(hist) if c},
        "dead_units": int((codes.frequency == 0).sum()),
        "dead_fraction": float((codes.frequency == 0).mean()),
        "always_on_units": int((codes.frequency > n / 2).sum()),
        "zero_rows": int((l0 == 0).sum()),
        "zero_rows_fraction": float((l0 == 0).mean()),
        "units": codes.n_units,
        "words": n,
    }


def balance_of_codes(codes: Codes) -> dict:
    """:func:`sparsecode.interpret.unit_balance` of stored codes (activation mass included)."""
    mass = np.bincount(codes.indices, weights=np.abs(codes.data), minlength=codes.n_units)
    return unit_balance(codes.frequency, len(codes.words), mass)


def coherence_of_codes(codes: Codes, vectors: np.ndarray | None = None, seed: int = 0, lex=None):
    """:func:`sparsecode.interpret.coherence` of stored codes (None for a vocabulary WordNet hardly
    knows); ``lex``: the :func:`~sparsecode.interpret.lexicon` of their words, when at hand."""
    return coherence(codes.words, codes.indptr, codes.indices, codes.data, codes.n_units, vectors, seed, lex=lex)


#: How :func:`unit_table` orders units.
UNIT_ORDERS = ("id", "frequency", "coherence", "strict")


def unit_table(codes: Codes, sort: str = "id", coh: Coherence | None = None) -> list[dict]:
    """One dict per unit: ``unit``, ``frequency`` (words using it), ``purity`` (None where not
    measurable), ``strict_purity`` and ``non_words`` (of its top 10 among the first 50,000 words;
    None where WordNet knows too few of the words), ``use`` ("starved", "busy" or ""), ``name`` (its
    WordNet name: :meth:`sparsecode.naming.UnitName.as_dict`) and ``top_words``; ordered by id, by
    frequency (most used first), by coherence (purest first, unmeasurable last) or by strict purity
    (highest first), ties by id. ``coh``: the codes' :func:`coherence_of_codes`, when at hand."""
    need(sort in UNIT_ORDERS, "sort", "{sort} must be one of {names} (got {got!r})", names=", ".join(UNIT_ORDERS), got=sort)
    coh = coherence_of_codes(codes) if coh is None else coh
    nan = np.full(codes.n_units, np.nan)
    purity, strict, non_words = (nan, nan, nan) if coh is None else (coh.per_unit, coh.units.strict, coh.units.non_words)
    even = codes.frequency.sum() / max(codes.n_units, 1)
    ids = np.arange(codes.n_units)
    key = {"id": ids, "frequency": -codes.frequency, "coherence": np.where(np.isnan(purity), np.inf, -purity),
           "strict": np.where(np.isnan(strict), np.inf, -strict)}[sort]
    order = np.lexsort((ids, key))
    names = name_units(codes.top_words_table)
    return [{"unit": int(u), "frequency": int(codes.frequency[u]), "purity": _number(purity[u]),
             "strict_purity": _number(strict[u]), "non_words": None if np.isnan(non_words[u]) else int(non_words[u]),
             "use": unit_use(codes.frequency[u], even), "name": names[u].as_dict(),
             "top_words": [w for w, _ in codes.top_words(int(u))]}
            for u in order]


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def unit_entry(codes: Codes, unit: int, every: bool = False) -> dict:
    """One unit as ``inspect --dim`` shows it: ``unit``, ``frequency``, ``name`` and its stored
    ``top_words`` or, with ``every``, all its ``words`` (from the codes), each ``{word, value}``."""
    codes.check_unit(unit)
    words = codes.unit_words(unit) if every else codes.top_words(unit)
    return {"unit": unit, "frequency": int(codes.frequency[unit]),
            "name": name_units([codes.top_words_table[unit]])[0].as_dict(),
            "words" if every else "top_words": [{"word": w, "value": v} for w, v in words]}


def word_entry(codes: Codes, word: str) -> dict:
    """A word as ``inspect --word`` shows it: its ``active_units``, strongest first, each with
    its value, the unit's name and its top words."""
    active = codes.active_units(word)
    names = name_units([codes.top_words_table[u] for u, _ in active])
    return {"word": word, "active_units": [{"unit": u, "value": v, "name": name.as_dict(),
                                            "top_words": [w for w, _ in codes.top_words(u)]}
                                           for (u, v), name in zip(active, names)]}


def dead_entry(codes: Codes) -> dict:
    """The units no word uses, as ``inspect --dead`` shows them."""
    ids = [int(u) for u in codes.dead_units()]
    return {"dead_units": ids, "count": len(ids), "units": codes.n_units}


# -- word similarity -------------------------------------------------------------------------------
def read_wordsim(path: str | os.PathLike) -> list[tuple[str, str, float]]:
    """Pairs of a ``word1<TAB>word2<TAB>score`` file (CRLF and a missing last newline are fine)."""
    pairs = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.strip().split()
            if not parts:
                continue
            if len(parts) != 3:
                raise SparsecodeError(f"{path}: line {lineno} is not 'word1 word2 score'")
            try:
                pairs.append((parts[0], parts[1], float(parts[2])))
            except ValueError:
                raise SparsecodeError(f"{path}: line {lineno}: score {parts[2]!r} is not a number") from None
    return pairs


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as ``scipy.stats.rankdata``)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    # Boundaries of runs of equal values.
    new_run = np.concatenate([[True], sorted_vals[1:] != sorted_vals[:-1]])
    run_id = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_end = np.concatenate([run_start[1:], [len(values)]])
    avg = (run_start + run_end + 1) / 2.0  # average of 1-based ranks start+1 .. end
    ranks = np.empty(len(values))
    ranks[order] = avg[run_id]
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation with average ranks for ties."""
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def _row_cosines(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    num = (left * right).sum(1)
    den = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def word_similarity(
    words: list[str], vectors_of, wordsim_dir: str | os.PathLike = DEFAULT_WORDSIM_DIR
) -> dict[str, dict]:
    """Spearman per benchmark file in ``wordsim_dir``; ``vectors_of(rows) -> (len(rows), dim)``.

    Returns ``{benchmark: {"spearman", "pairs", "found", "skipped"}}``.
    """
    wordsim_dir = Path(wordsim_dir)
    files = sorted(wordsim_dir.glob("*.txt"))
    if not files:
        raise SparsecodeError(f"{wordsim_dir}: no word-similarity files (*.txt) found; pass --wordsim DIR")
    index = {w: i for i, w in enumerate(words)}
    out = {}
    for path in files:
        pairs = read_wordsim(path)
        found = [(index[a.lower()], index[b.lower()], s) for a, b, s in pairs
                 if a.lower() in index and b.lower() in index]
        entry = {"pairs": len(pairs), "found": len(found), "skipped": len(pairs) - len(found), "spearman": None}
        if len(found) >= 2:
            left = vectors_of(np.array([f[0] for f in found]))
            right = vectors_of(np.array([f[1] for f in found]))
            entry["spearman"] = spearman(_row_cosines(left.astype(np.float64), right.astype(np.float64)),
                                         np.array([f[2] for f in found]))
        out[path.stem] = entry
    return out


def headline_average(scores: dict[str, dict]) -> float | None:
    """Mean Spearman over WS-353-ALL, SimLex-999, MEN and RW (when all four are present)."""
    vals = [scores[name]["spearman"] for name in HEADLINE_WORDSIM if name in scores]
    if len(vals) != len(HEADLINE_WORDSIM) or any(v is None for v in vals):
        return None
    return float(np.mean(vals))


# -- DistRatio -------------------------------------------------------------------------------------
def _mean_pairwise(points: np.ndarray) -> float:
    diff = points[:, None, :] - points[None, :, :]
    d = np.sqrt((diff**2).sum(-1))
    n = len(points)
    return float(d.sum() / (n * (n - 1)))


def dist_ratio_from_rankings(
    top5: list[np.ndarray],
    top10pct: list[np.ndarray],
    in_bottom_half,
    vectors: np.ndarray,
    seed: int = DEFAULT_SEED,
    tries: int = 20,
) -> dict:
    """DistRatio given, per dimension: its top-5 word rows, its top-10% word rows, and a predicate
    ``in_bottom_half(dim, rows) -> bool array``. Dimensions with fewer than 5 words or no
    intruder found in ``tries`` draws are skipped (and counted)."""
    rng = np.random.default_rng(seed)
    n_dims = len(top5)
    ratios = []
    skipped = 0
    for dim in range(n_dims):
        top = top5[dim]
        if len(top) < 5 or n_dims < 2:
            skipped += 1
            continue
        intruder = None
        for _ in range(tries):
            other = int(rng.integers(n_dims - 1))
            other += other >= dim
            cand = top10pct[other]
            cand = cand[in_bottom_half(dim, cand)] if len(cand) else cand
            if len(cand):
                intruder = int(cand[rng.integers(len(cand))])
                break
        if intruder is None:
            skipped += 1
            continue
        pts = vectors[top].astype(np.float64)
        inter = float(np.sqrt(((pts - vectors[intruder].astype(np.float64)) ** 2).sum(1)).mean())
        intra = _mean_pairwise(pts)
        if intra > 0:
            ratios.append(inter / intra)
        else:
            skipped += 1
    return {"dist_ratio": float(np.mean(ratios)) if ratios else None, "dimensions": len(ratios), "skipped": skipped}


def dist_ratio_codes(codes: Codes, vectors: np.ndarray, seed: int = DEFAULT_SEED) -> dict:
    """DistRatio of the code units, distances between ``vectors`` (N, D) rows of the same words."""
    n = len(codes.words)
    rows = np.repeat(np.arange(n), codes.l0())
    order = np.lexsort((-codes.data, codes.indices))  # by unit, then activation descending
    units_sorted = codes.indices[order]
    rows_sorted = rows[order]
    vals_sorted = codes.data[order]
    start = np.searchsorted(units_sorted, np.arange(codes.n_units), side="left")
    end = np.searchsorted(units_sorted, np.arange(codes.n_units), side="right")
    top_n = math.ceil(0.1 * n)
    top5 = [rows_sorted[s : min(s + 5, e)] for s, e in zip(start, end)]
    top10 = [rows_sorted[s : min(s + top_n, e)] for s, e in zip(start, end)]
    # Median of a unit's values over all N words: 0 when it is active on at most half of them.
    medians = np.zeros(codes.n_units)
    busy = np.flatnonzero(codes.frequency > n // 2)
    for u in busy:
        vals = np.concatenate([vals_sorted[start[u] : end[u]], np.zeros(n - (end[u] - start[u]))])
        medians[u] = np.median(vals)

    def in_bottom_half(unit: int, cand: np.ndarray) -> np.ndarray:
        members = rows_sorted[start[unit] : end[unit]]
        if medians[unit] == 0:  # bottom half = the words the unit is not active on
            return ~np.isin(cand, members)
        by_row = np.argsort(members)
        pos = np.clip(np.searchsorted(members[by_row], cand), 0, len(members) - 1)
        hit = members[by_row][pos] == cand
        value = np.where(hit, vals_sorted[start[unit] : end[unit]][by_row][pos], 0.0)
        return value <= medians[unit]

    return dist_ratio_from_rankings(top5, top10, in_bottom_half, vectors, seed)


def dist_ratio_dense(vectors: np.ndarray, seed: int = DEFAULT_SEED) -> dict:
    """DistRatio of the dense dimensions themselves (each coordinate as a 'unit')."""
    n, d = vectors.shape
    order = np.argsort(-vectors, axis=0, kind="stable")  # (N, D) rows by value, per dimension
    top_n = math.ceil(0.1 * n)
    medians = np.median(vectors, axis=0)
    top5 = [order[:5, j] for j in range(d)]
    top10 = [order[:top_n, j] for j in range(d)]
    return dist_ratio_from_rankings(top5, top10, lambda dim, cand: vectors[cand, dim] <= medians[dim], vectors, seed)


# -- all of it -------------------------------------------------------------------------------------
def align_vectors(codes: Codes, words: list[str], vectors: np.ndarray, source: str) -> np.ndarray:
    """Rows of ``vectors`` for the codes' words, in the codes' order."""
    if words == codes.words:
        return vectors
    index = {w: i for i, w in enumerate(words)}
    missing = [w for w in codes.words if w not in index]
    if missing:
        raise SparsecodeError(
            f"{source}: {len(missing)} word(s) of the codes file are missing (first: {missing[0]!r}); "
            "give the embeddings the codes were encoded from"
        )
    return vectors[[index[w] for w in codes.words]]


@dataclass
class Sources:
    """What the measures of codes need besides the codes: their model and the original vectors."""

    model: SparseAutoencoder | None
    config: dict | None
    """The run's ``config.json``."""
    model_dir: Path | None
    embeddings: Path | None
    vectors: np.ndarray | None
    """(N, D) the embeddings of ``codes.words``, in the codes' order."""


#: What each missing input costs, in the warning that names it.
NEEDS_MODEL = "FVU, cosine(x, x_hat) and --worst need the model"
NEEDS_EMBEDDINGS = "FVU, cosine(x, x_hat), --worst, DistRatio and the dense baselines need the embeddings"


def find_sources(codes: Codes, model_dir: str | os.PathLike | None = None,
                 embeddings: str | os.PathLike | None = None, vocab: str | os.PathLike | None = None) -> Sources:
    """The model and the embeddings of ``codes``: those given, else those recorded (the codes
    file records its run, the run's ``config.json`` its training file). The model must be the one
    that made the codes (:func:`~sparsecode.codes.check_same_model`). What cannot be found is
    named in a warning with the option that supplies it, and the measures that need it are left out."""

    where = codes.path or "codes"
    if model_dir is None:
        recorded = codes.attrs.get("run_dir")
        if recorded and Path(recorded).is_dir():
            model_dir = Path(recorded)
        else:
            found = f"the run that made them, {recorded}, is not there (moved or deleted)" if recorded else "they record no run"
            warnings.warn(f"{where}: {found}; {NEEDS_MODEL}: pass --model RUN_DIR", stacklevel=2)
    model = config = None
    if model_dir is not None:
        model_dir = Path(model_dir)
        model, config = load_run(model_dir)
        check_same_model(codes, model, model_dir)
    if embeddings is None:
        recorded = (config or {}).get("embeddings")
        if recorded and Path(recorded).is_file():
            embeddings = Path(recorded)
        elif config is not None and recorded and Path(recorded).name == CACHE_NAME and (model_dir / CACHE_NAME).is_file():
            embeddings = model_dir / CACHE_NAME  # the run's converted input, moved with the run
        elif config is not None:
            found = (f"the embeddings it was trained on, {recorded}, are not there (moved or deleted)" if recorded
                     else "it records no embeddings file")
            warnings.warn(f"{model_dir / 'config.json'}: {found}; {NEEDS_EMBEDDINGS}: pass --embeddings EMB",
                          stacklevel=2)
        else:
            warnings.warn(f"{where}: without the run the embeddings are unknown; {NEEDS_EMBEDDINGS}: pass --embeddings EMB",
                          stacklevel=2)
    vectors = None
    if embeddings is not None:
        embeddings = Path(embeddings)
        cache = model_dir / CACHE_NAME if model_dir is not None else None
        reuse = cache if cache is not None and cache_matches(cache, embeddings, vocab) else None
        with readable_embeddings(embeddings, vocab, cache=reuse) as readable:
            emb = load_embeddings(readable)
        vectors = align_vectors(codes, emb.words, emb.vectors, str(embeddings))
    return Sources(model, config, model_dir, embeddings, vectors)


def evaluate(
    codes: Codes,
    model: SparseAutoencoder | None = None,
    vectors: np.ndarray | None = None,
    wordsim_dir: str | os.PathLike | None = DEFAULT_WORDSIM_DIR,
    seed: int = DEFAULT_SEED,
    worst: int = 0,
    baselines: bool = False,
) -> dict:
    """Everything ``sparsecode evaluate`` prints, as a dict.

    ``vectors`` (N, D) are the original embeddings of ``codes.words`` (aligned); with them come
    the reconstruction (also needs ``model``; with ``worst`` > 0 its ``worst`` list, see
    :func:`reconstruction_of_codes`), and dense baselines for word similarity, DistRatio and the
    coherence measures (``coherence.baselines.dense``); with ``baselines`` also those of H k-means
    clusters of the same words (``coherence.baselines.kmeans``, :func:`~sparsecode.clusters.cluster_measures`).
    ``wordsim_dir=None`` skips word similarity.
    """
    need(worst >= 0, "worst", "{worst} must be 0 or more (got {got})", got=worst)
    result: dict = {"codes": codes.path, "sparsity": sparsity_of_codes(codes), "balance": balance_of_codes(codes)}
    lex = lexicon(codes.words)
    coh = coherence_of_codes(codes, vectors, seed, lex)
    result["coherence"] = coh.summary() if coh is not None else None
    if coh is not None and baselines and vectors is not None:
        result["coherence"]["baselines"]["kmeans"] = cluster_measures(
            codes.words, vectors, as_many_clusters_as(codes.n_units, len(codes.words)), seed, lex)
    if model is not None and vectors is not None:
        if model.n_hidden != codes.n_units or model.d_in != vectors.shape[1]:
            raise SparsecodeError(
                f"{codes.path}: codes have {codes.n_units} units and the model {model.n_hidden} "
                f"(and D {model.d_in} vs {vectors.shape[1]}); use the run the codes came from"
            )
        result["reconstruction"] = reconstruction_of_codes(codes, model, vectors, worst=worst)
    if wordsim_dir is not None:
        ws = {"codes": word_similarity(codes.words, codes.dense, wordsim_dir)}
        ws["codes_average"] = headline_average(ws["codes"])
        if vectors is not None:
            ws["dense"] = word_similarity(codes.words, lambda rows: vectors[rows], wordsim_dir)
            ws["dense_average"] = headline_average(ws["dense"])
        result["word_similarity"] = ws
    if vectors is not None:
        result["dist_ratio"] = {"codes": dist_ratio_codes(codes, vectors, seed), "dense": dist_ratio_dense(vectors, seed)}
    return result


class Evaluation(NamedTuple):
    """What :func:`evaluate_file` found: the result and the dimension of the dense vectors."""

    result: dict
    """:func:`evaluate`'s dict, with ``model`` and ``embeddings`` (the paths used, or None) and,
    when asked for, ``methods``: the k and :func:`compare_methods` at that k."""
    dense_dim: int | None
    """D of the embeddings, None without them."""


def evaluate_file(codes_file: str | os.PathLike, model: str | os.PathLike | None = None,
                  embeddings: str | os.PathLike | None = None, vocab: str | os.PathLike | None = None,
                  wordsim_dir: str | os.PathLike | None = DEFAULT_WORDSIM_DIR, seed: int = DEFAULT_SEED, worst: int = 0,
                  compare: bool = False, baselines: bool = False) -> Evaluation:
    """What ``sparsecode evaluate`` reports of a codes file: :func:`evaluate` with the model (the
    run directory ``model``) and the embeddings given or recorded (:func:`find_sources`), and with
    ``compare`` the encoding methods compared at the codes' k (:func:`compare_methods`); with
    ``baselines`` the measures of k-means clusters of the same words."""

    codes = load_codes(codes_file)
    src = find_sources(codes, model, embeddings, vocab)
    result = evaluate(codes, src.model, src.vectors, wordsim_dir, seed=seed, worst=worst, baselines=baselines)
    if compare:
        need(src.model is not None and src.vectors is not None, "compare_methods",
             "{path}: {compare_methods} needs the model and the embeddings; pass {model} RUN_DIR and {embeddings} EMB.h5",
             path=codes_file)
        k = codes.attrs.get("encode_k", default_encode_k(src.config))
        need(k is not None, "compare_methods", "{path}: {compare_methods} needs a k, and these codes have none "
             "({sparsity} {got}); encode with {k} to compare at that k", path=codes_file, got=src.config.get("sparsity"))
        result["methods"] = {"k": int(k), **compare_methods(src.model, torch.from_numpy(src.vectors), int(k))}
    result["model"] = str(src.model_dir) if src.model_dir else None
    result["embeddings"] = str(src.embeddings) if src.embeddings else None
    return Evaluation(result, src.vectors.shape[1] if src.vectors is not None else None)


#: The codes :func:`compare_methods` measures: name -> (method, nonneg).
COMPARED_METHODS = {"encoder": ("encoder", False), "omp": ("omp", False), "omp_nonneg": ("omp", True)}


def compare_methods(model: SparseAutoencoder, vectors: Tensor, k: int, batch_size: int = 8192) -> dict[str, dict]:
    """:func:`code_statistics` of the same vectors and k for the encoder, OMP and non-negative OMP,
    side by side: ``{"encoder": {...}, "omp": {...}, "omp_nonneg": {...}}``, each with ``seconds``
    (wall-clock time of encoding and measuring) added."""
    results = {}
    for name, (method, nonneg) in COMPARED_METHODS.items():
        start = time.perf_counter()
        stats = code_statistics(model, vectors, k, batch_size, method=method, nonneg=nonneg)
        for_torch(vectors.device).synchronize()
        results[name] = {**stats, "seconds": time.perf_counter() - start}
    return results
