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
Purity looks words up as they are written, as the literature's supersense purity does.

What a reader sees, counting every top word: a unit's **strict purity** is the largest number of
its first STRICT_TOP (10) words by activation (among the first 50,000), all of them, that share
one supersense, / 10; a word WordNet does not know, or a missing one, is a miss. Words are looked
up through WordNet's morphology (:func:`sparsecode.wordnet.base_forms`: ``cancers`` is a
``cancer``), so inflections are not misses. A unit is **readable** when its strict purity is at
least 0.5. The **non-word share** is the share of those top-word slots holding a token that is
not a word (:func:`is_word`: anything but letters, hyphens and apostrophes). Strict chance: random
10-word sets of all the (first 50,000) words.

The table ships in ``sparsecode/resources`` (built by ``sample_data/build_supersenses.py``; WordNet's
licence and provenance beside it; read through :mod:`sparsecode.wordnet`). Everything here is numpy.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import numpy as np

from .wordnet import LEXNAMES, SUPERSENSE_TABLE, WordNet, load_exceptions, load_supersenses, sense_matrix, wordnet  # noqa: F401

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
#: Strict purity and the non-word share read each unit's first STRICT_TOP words, all of them.
STRICT_TOP = 10
#: A unit is readable when at least this share of its STRICT_TOP words share one supersense.
READABLE_PURITY = 0.5
#: What a word may hold besides letters (and their combining marks): hyphens and apostrophes.
WORD_MARKS = frozenset("-'’")
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


def strict_purity_of_rankings(ranked: np.ndarray, senses: np.ndarray) -> np.ndarray:
    """Strict purity of each unit from ``ranked`` (H, m) rows strongest first, -1 padding, and
    ``senses`` (N, S) bool: the largest number of its first STRICT_TOP words sharing one supersense,
    / STRICT_TOP. A word without a supersense, or a missing word (a unit with fewer), is a miss."""
    top = ranked[:, :STRICT_TOP]
    held = senses[np.where(top >= 0, top, 0)] & (top >= 0)[..., None]  # (H, STRICT_TOP, S)
    return held.sum(1).max(1, initial=0) / STRICT_TOP


def is_word(token: str) -> bool:
    """A word: letters of any script (with their combining marks: ``é``, Devanagari's vowel signs),
    hyphens and apostrophes only, and at least one letter. ``202-383-7824``, ``http://a.com``,
    ``1990s``, ``a_b``, ``--`` are not words; ``o'neill``, ``well-known``, ``pā``, ``'s`` are."""
    letters = False
    for ch in token:
        cat = unicodedata.category(ch)
        if cat[0] == "L":
            letters = True
        elif cat[0] != "M" and ch not in WORD_MARKS:
            return False
    return letters


def non_words_of_rankings(ranked: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H,) the non-words among each unit's first STRICT_TOP words, and (H,) how many words it has
    there, from ``ranked`` (H, m) and ``words`` (N,) bool, True for a word (:func:`is_word`)."""
    top = ranked[:, :STRICT_TOP]
    filled = top >= 0
    return (filled & ~words[np.where(filled, top, 0)]).sum(1), filled.sum(1)


@dataclass
class Lexicon:
    """What the measures read of a vocabulary's first FREQUENT_WORDS words."""

    senses: np.ndarray
    """(N, S) bool supersenses looked up as written (purity)."""
    strict: np.ndarray
    """(N, S) bool supersenses through WordNet's morphology (strict purity)."""
    words: np.ndarray
    """(N,) bool: the token is a word (:func:`is_word`)."""

    @property
    def coverage(self) -> float:
        """The share of the words WordNet knows as written (purity's floor, MIN_COVERAGE)."""
        return float(self.senses.any(1).mean()) if len(self.senses) else 0.0


def lexicon(words: list[str], table: dict | None = None) -> Lexicon:
    """:class:`Lexicon` of the first FREQUENT_WORDS ``words``, by the shipped WordNet or by ``table``
    (lemma -> lexicographer files, with the shipped exception lists)."""
    wn = wordnet() if table is None else WordNet(table, load_exceptions())
    first = words[:FREQUENT_WORDS]
    return Lexicon(sense_matrix(first, wn.table), wn.sense_matrix(first), np.array([is_word(w) for w in first], dtype=bool))


@dataclass
class UnitMeasures:
    """What a reader sees of H units (code units, dense dimensions or clusters)."""

    purity: np.ndarray
    """(H,) purity of each unit, NaN where it is not measurable."""
    strict: np.ndarray
    """(H,) strict purity of each unit."""
    non_words: np.ndarray
    """(H,) non-words among each unit's first STRICT_TOP words."""
    slots: np.ndarray
    """(H,) words there (STRICT_TOP, fewer for a unit with fewer words)."""

    @classmethod
    def of_rankings(cls, ranked: np.ndarray, lex: Lexicon) -> "UnitMeasures":
        """The measures of units given as ``ranked`` (H, >= TOP_SEARCH) rows strongest first, -1 padding."""
        return cls(purity_of_rankings(ranked, lex.senses), strict_purity_of_rankings(ranked, lex.strict),
                   *non_words_of_rankings(ranked, lex.words))

    def summary(self) -> dict:
        """``purity`` (mean over measurable units), ``units_measured``, ``units_skipped``,
        ``strict_purity`` (mean over all units), ``readable_units`` (the share with a strict purity of
        at least READABLE_PURITY) and ``non_words`` (the non-words' share of all top-word slots)."""
        measured = ~np.isnan(self.purity)
        h, slots = len(self.strict), int(self.slots.sum())
        return {
            "purity": float(self.purity[measured].mean()) if measured.any() else None,
            "units_measured": int(measured.sum()),
            "units_skipped": int((~measured).sum()),
            "strict_purity": float(self.strict.mean()) if h else None,
            "readable_units": float((self.strict >= READABLE_PURITY).mean()) if h else None,
            "non_words": float(self.non_words.sum() / slots) if slots else None,
        }


def chance_purity(senses: np.ndarray, seed: int = 0, sets: int = CHANCE_SETS) -> float:
    """Mean purity of ``sets`` random TOP_KNOWN-word sets drawn (seeded) from the known words."""
    known = np.flatnonzero(senses.any(1))
    if len(known) < TOP_KNOWN:
        return float("nan")
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.choice(known, TOP_KNOWN, replace=False) for _ in range(sets)])
    return float(np.nanmean(purity_of_rankings(picks, senses)))


def chance_strict_purity(strict: np.ndarray, seed: int = 0, sets: int = CHANCE_SETS) -> float:
    """Mean strict purity of ``sets`` random STRICT_TOP-word sets drawn (seeded) from all the words."""
    if len(strict) < STRICT_TOP:
        return float("nan")
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.choice(len(strict), STRICT_TOP, replace=False) for _ in range(sets)])
    return float(strict_purity_of_rankings(picks, strict).mean())


@dataclass
class Coherence:
    """Purity, strict purity and non-words of a code's units (and of the dense dimensions) against chance."""

    units: UnitMeasures
    chance: float
    coverage: float
    """Share of the (first FREQUENT_WORDS) words that WordNet knows."""
    strict_chance: float
    dense_units: UnitMeasures | None = None
    """The dense dimensions' (each coordinate a unit, its largest values its top words)."""

    @property
    def per_unit(self) -> np.ndarray:
        """(H,) purity of each unit, NaN where it is not measurable."""
        return self.units.purity

    @property
    def dense(self) -> float | None:
        """The dense dimensions' purity (None without them, or when none is measurable)."""
        return self.dense_units.summary()["purity"] if self.dense_units is not None else None

    def summary(self) -> dict:
        """:meth:`UnitMeasures.summary` of the units with ``chance``, ``strict_chance``, ``coverage``,
        ``dense`` (the dense dimensions' purity) and ``baselines``: ``{"dense": their summary}``."""
        dense = self.dense_units.summary() if self.dense_units is not None else None
        return {**self.units.summary(), "chance": self.chance, "strict_chance": self.strict_chance,
                "dense": dense["purity"] if dense else None, "coverage": self.coverage,
                "baselines": {"dense": dense} if dense else {}}


def coherence(words: list[str], indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_units: int,
              vectors: np.ndarray | None = None, seed: int = 0, table: dict | None = None,
              lex: Lexicon | None = None) -> Coherence | None:
    """The measures of the units of CSR codes over ``words``; with ``vectors`` (N, D) also the dense
    dimensions'. None when fewer than MIN_COVERAGE of the words are known (not English). ``lex``:
    :func:`lexicon` of the words, when already at hand."""
    lex = lexicon(words, table) if lex is None else lex
    if lex.coverage < MIN_COVERAGE:
        return None
    ranked = ranked_rows_of_codes(indptr, indices, data, n_units, len(lex.senses))
    dense = UnitMeasures.of_rankings(ranked_rows_of_dense(vectors, len(lex.senses)), lex) if vectors is not None else None
    return Coherence(UnitMeasures.of_rankings(ranked, lex), chance_purity(lex.senses, seed), lex.coverage,
                     chance_strict_purity(lex.strict, seed), dense)


def dense_coherence(words: list[str], vectors: np.ndarray, seed: int = 0, table: dict | None = None) -> dict | None:
    """What codes' measures are compared with: the dense dimensions' purity (``dense``) and all their
    measures (``dense_measures``, :meth:`UnitMeasures.summary`), chance, strict chance and the
    coverage (None where WordNet knows too few of the words)."""
    lex = lexicon(words, table)
    if lex.coverage < MIN_COVERAGE:
        return None
    dense = UnitMeasures.of_rankings(ranked_rows_of_dense(vectors, len(lex.senses)), lex).summary()
    return {"dense": dense["purity"], "dense_measures": dense, "chance": chance_purity(lex.senses, seed),
            "strict_chance": chance_strict_purity(lex.strict, seed), "coverage": lex.coverage}
