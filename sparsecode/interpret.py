"""What the units mean: how evenly the code spreads over them, and how coherent their top words are.

Balance, from how many words use each unit (``frequency``, H) and the N words, nnz entries:

- ``effective_units``: exp of the entropy of the units' shares of the code entries
  (``p_u = frequency_u / nnz``); H when every unit is used equally, 1 when one unit holds all.
- ``top10_mass_share``: the share of all activation mass (sum of activations) held by the 10% of
  units with the most.
- ``starved_units``: units used by fewer than a tenth of the even share ``nnz / H`` (k·N/H for a
  top-k code); dead units are starved too. ``busy_units``: more than ten times the even share.
- ``busiest_rate``: the fraction of the words that the busiest unit is active on.

Coherence, by WordNet 3.0 supersenses (lexicographer files: noun.animal, verb.motion, ... 45 in all):
every word gets the supersense of its first listed, most frequent, sense in each part of speech
(up to four). A unit's **purity** is the largest share of its top-10 words (by activation, among
the words WordNet knows) that share one supersense; units with fewer than 5 known words among
their top 30 are skipped and counted. In vocabularies of more than 50,000 words the top words are
taken among the first 50,000 (embedding files list words by frequency). The mean over units is
reported beside **chance** (random 10-word sets of the vocabulary's known words, seeded) and the
**dense** dimensions' own purity (each coordinate a unit, its largest values its top words).

The table ships in ``sparsecode/resources`` (built by ``sample_data/build_supersenses.py``; WordNet's
licence and provenance beside it). Everything here is numpy; nothing is read from disk but the table.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

#: WordNet 3.0's lexicographer files, by number (the "supersenses").
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)
SUPERSENSE_TABLE = Path(__file__).resolve().parent / "resources" / "wordnet_supersenses.tsv.gz"

#: Purity protocol: a unit's top TOP_KNOWN words that WordNet knows, looked for among its top TOP_SEARCH.
TOP_KNOWN = 10
TOP_SEARCH = 30
MIN_KNOWN = 5
#: Top words are taken among the first this many words of larger vocabularies (frequency order).
FREQUENT_WORDS = 50_000
#: Random word sets averaged for chance purity.
CHANCE_SETS = 2000
#: Below this share of the (first FREQUENT_WORDS) words known to WordNet, coherence is not measured.
MIN_COVERAGE = 0.2
#: Starved below EVEN_FACTOR^-1 of the even share, busy above EVEN_FACTOR times it.
EVEN_FACTOR = 10.0
#: A code has collapsed when fewer than this share of its units are effectively used.
COLLAPSE_SHARE = 0.25


# -- balance ---------------------------------------------------------------------------------------
def unit_balance(frequency: np.ndarray, n_words: int, mass: np.ndarray | None = None) -> dict:
    """Balance of a code from ``frequency`` (H,) words per unit, the number of words, and optionally
    ``mass`` (H,) each unit's summed activation (for ``top10_mass_share``)."""
    freq = np.asarray(frequency, dtype=np.float64)
    h = len(freq)
    nnz = float(freq.sum())
    even = nnz / h if h else 0.0
    p = freq[freq > 0] / nnz if nnz > 0 else np.zeros(0)
    out = {
        "effective_units": float(math.exp(-(p * np.log(p)).sum())) if len(p) else 0.0,
        "even_share": even,
        "starved_units": int((freq < even / EVEN_FACTOR).sum()),
        "busy_units": int((freq > even * EVEN_FACTOR).sum()),
        "busiest_rate": float(freq.max() / n_words) if h and n_words else 0.0,
        "units": h,
    }
    out["starved_fraction"] = out["starved_units"] / h if h else 0.0
    if mass is not None:
        m = np.sort(np.abs(np.asarray(mass, dtype=np.float64)))[::-1]
        total = m.sum()
        out["top10_mass_share"] = float(m[: math.ceil(0.1 * h)].sum() / total) if total > 0 else 0.0
    return out


def unit_use(frequency: int, even: float) -> str:
    """"starved" below a tenth of the even share of entries, "busy" above ten times it, else ""."""
    return "starved" if frequency < even / EVEN_FACTOR else "busy" if frequency > even * EVEN_FACTOR else ""


def collapse_warning(balance: dict) -> str | None:
    """One line when the code has collapsed onto a few units, with what to try; None otherwise."""
    eff, h = balance["effective_units"], balance["units"]
    if h < 8 or eff >= COLLAPSE_SHARE * h:
        return None
    return (f"the code has collapsed onto about {eff:.0f} of {h} units ({balance['starved_fraction']:.0%} starved, "
            f"the busiest on {balance['busiest_rate']:.0%} of the words): its units will be hard to read; "
            "keep --balance on (the default for topk), or try a smaller --k or fewer --hidden units")


# -- the supersense table --------------------------------------------------------------------------
@lru_cache(maxsize=4)
def load_supersenses(path: str | Path = SUPERSENSE_TABLE) -> dict[str, tuple[int, ...]]:
    """lemma -> lexicographer file numbers (one per part of speech it has)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return {w: tuple(int(c) for c in s.split(",")) for w, s in (line.rstrip("\n").split("\t") for line in fh)}


def sense_matrix(words: list[str], table: dict[str, tuple[int, ...]]) -> np.ndarray:
    """(N, 45) bool: row i marks the supersenses of ``words[i]`` (lower-cased); all False when unknown."""
    out = np.zeros((len(words), len(LEXNAMES)), dtype=bool)
    for i, w in enumerate(words):
        senses = table.get(w.lower())
        if senses:
            out[i, list(senses)] = True
    return out


# -- purity ----------------------------------------------------------------------------------------
def purity_of_rankings(ranked: np.ndarray, senses: np.ndarray) -> np.ndarray:
    """Purity of each unit from ``ranked`` (H, m) rows by activation, strongest first, -1 padding, and
    ``senses`` (N, S) bool. NaN for a unit with fewer than MIN_KNOWN known words among its first
    TOP_SEARCH."""
    ranked = ranked[:, :TOP_SEARCH]
    safe = np.where(ranked >= 0, ranked, 0)
    known = (ranked >= 0) & senses[safe].any(-1)
    n_known = known.sum(1)
    # The first TOP_KNOWN known words of each unit.
    take = known & (np.cumsum(known, axis=1) <= TOP_KNOWN)
    counts = (senses[safe] & take[..., None]).sum(1)  # (H, S) top words holding each supersense
    n_taken = take.sum(1)
    purity = counts.max(1) / np.maximum(n_taken, 1)
    return np.where(n_known >= MIN_KNOWN, purity, np.nan)


def ranked_rows_of_codes(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_units: int,
                         limit: int, top: int = TOP_SEARCH) -> np.ndarray:
    """(H, top) each unit's rows (< ``limit``) by activation, strongest first (ties: earlier row first),
    -1 where a unit has fewer."""
    indptr = np.asarray(indptr)
    limit = min(limit, len(indptr) - 1)
    end = int(indptr[limit])
    units, values = np.asarray(indices[:end]), np.asarray(data[:end])
    rows = np.repeat(np.arange(limit), np.diff(indptr[: limit + 1]))
    order = np.lexsort((rows, -values, units))
    units, rows = units[order], rows[order]
    start = np.searchsorted(units, np.arange(n_units))
    rank = np.arange(len(units)) - start[units]
    keep = rank < top
    out = np.full((n_units, top), -1, dtype=np.int64)
    out[units[keep], rank[keep]] = rows[keep]
    return out


def ranked_rows_of_dense(vectors: np.ndarray, limit: int, top: int = TOP_SEARCH) -> np.ndarray:
    """(D, top) each dense coordinate's rows (< ``limit``) by value, largest first."""
    v = np.asarray(vectors[:limit], dtype=np.float64)
    top = min(top, len(v))
    part = np.argpartition(-v, top - 1, axis=0)[:top]  # (top, D) unordered
    order = np.argsort(-np.take_along_axis(v, part, 0), axis=0, kind="stable")
    return np.take_along_axis(part, order, 0).T


def chance_purity(senses: np.ndarray, seed: int = 0, sets: int = CHANCE_SETS) -> float:
    """Mean purity of ``sets`` random TOP_KNOWN-word sets drawn (seeded) from the known words."""
    known = np.flatnonzero(senses.any(1))
    if len(known) < TOP_KNOWN:
        return float("nan")
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.choice(known, TOP_KNOWN, replace=False) for _ in range(sets)])
    return float(np.nanmean(purity_of_rankings(picks, senses)))


@dataclass
class Coherence:
    """Purity of a code's units (and of the dense dimensions) against chance."""

    per_unit: np.ndarray
    """(H,) purity of each unit, NaN where it is not measurable."""
    chance: float
    coverage: float
    """Share of the (first FREQUENT_WORDS) words that WordNet knows."""
    dense: float | None = None

    def summary(self) -> dict:
        measured = ~np.isnan(self.per_unit)
        return {
            "purity": float(self.per_unit[measured].mean()) if measured.any() else None,
            "units_measured": int(measured.sum()),
            "units_skipped": int((~measured).sum()),
            "chance": self.chance,
            "dense": self.dense,
            "coverage": self.coverage,
        }


def vocabulary_senses(words: list[str], table: dict | None = None) -> tuple[np.ndarray, float]:
    """Sense matrix of the first FREQUENT_WORDS words and the share of them WordNet knows."""
    table = load_supersenses() if table is None else table
    senses = sense_matrix(words[:FREQUENT_WORDS], table)
    coverage = float(senses.any(1).mean()) if len(senses) else 0.0
    return senses, coverage


def coherence(words: list[str], indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_units: int,
              vectors: np.ndarray | None = None, seed: int = 0, table: dict | None = None) -> Coherence | None:
    """Purity of the units of CSR codes over ``words``; with ``vectors`` (N, D) also the dense
    dimensions'. None when fewer than MIN_COVERAGE of the words are known (not English)."""
    senses, coverage = vocabulary_senses(words, table)
    if coverage < MIN_COVERAGE:
        return None
    ranked = ranked_rows_of_codes(indptr, indices, data, n_units, len(senses))
    dense = _dense_purity(vectors, senses) if vectors is not None else None
    return Coherence(purity_of_rankings(ranked, senses), chance_purity(senses, seed), coverage, dense)


def dense_coherence(words: list[str], vectors: np.ndarray, seed: int = 0, table: dict | None = None) -> dict | None:
    """What codes' purity is compared with: the dense dimensions' purity, chance and the coverage
    (None where WordNet knows too few of the words)."""
    senses, coverage = vocabulary_senses(words, table)
    if coverage < MIN_COVERAGE:
        return None
    return {"dense": _dense_purity(vectors, senses), "chance": chance_purity(senses, seed), "coverage": coverage}


def _dense_purity(vectors: np.ndarray, senses: np.ndarray) -> float | None:
    purity = purity_of_rankings(ranked_rows_of_dense(vectors, len(senses)), senses)
    return float(np.nanmean(purity)) if (~np.isnan(purity)).any() else None
