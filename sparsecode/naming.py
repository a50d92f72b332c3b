"""Unit names, offline, from WordNet: what each unit is about in a word or two.

A unit is named from its top words (all of them, as ``inspect`` shows them), two ways:

- the dominant **supersense**: the lexicographer file (``noun.food``) that most of its WordNet-known
  top words have (any of their parts of speech, as purity counts them; :mod:`sparsecode.interpret`),
  with the share of those words that have it;
- the most specific **hypernym** that covers at least half of its WordNet-known top words: a word
  is covered by a synset on the hypernym paths of its first two noun and verb senses (``apple`` by
  ``edible fruit``, ``produce``, ``food``..., and by ``fruit tree`` through its second sense). The
  candidates are the synsets of the supersense that most top words hold among the noun and verb
  supersenses (so that ``apple`` the tree cannot name a unit of foods, and depths, which mean
  something within one hierarchy only, are compared within one); among those that cover at least
  half, the deepest (the most steps from a root), then the one covering most, then the first in the
  table. The most general nouns (``entity``, ``physical entity``, ``abstraction``, ``thing``:
  depth < 2) never name a unit.

The label reads ``edible fruit 80% · noun.food``; ``(no label)`` when fewer than half of the known
top words share a hypernym, or fewer than MIN_KNOWN of them are known. A word WordNet does not list
as it is (``apples``, ``ran``) is looked up by its base forms (WordNet's morphology,
:func:`sparsecode.wordnet.WordNet.base_forms`), for both tables.

The hypernym table ships in ``sparsecode/resources`` (built by ``sample_data/build_hypernyms.py``
from WordNet 3.0, whose licence is beside it); nothing is read from disk but the tables.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

from .wordnet import LEXNAMES, WordNet, wordnet

HYPERNYM_TABLE = Path(__file__).resolve().parent / "resources" / "wordnet_hypernyms.tsv.gz"
#: A label needs at least this many WordNet-known top words ...
MIN_KNOWN = 3
#: ... and a hypernym that covers at least this share of them.
MIN_SHARE = 0.5
#: Noun synsets above this depth (entity, physical entity, abstraction, thing) are too general to name a unit.
MIN_NOUN_DEPTH = 2
NO_LABEL = "(no label)"


@dataclass(eq=False)
class Hypernyms:
    """WordNet's hypernym paths, compact: synsets by id, and each lemma's first senses."""

    names: tuple[str, ...]
    lexfile: np.ndarray
    """(S,) each synset's lexicographer file (supersense), an index into LEXNAMES."""
    depth: np.ndarray
    """(S,) fewest steps to a root."""
    parents: tuple[tuple[int, ...], ...]
    senses: dict[str, tuple[int, ...]]
    """lemma -> synset ids of its first senses."""

    def __post_init__(self) -> None:
        self._ancestors: dict[int, frozenset[int]] = {}
        self._covering: dict[str, frozenset[int]] = {}
        self._forms: dict[object, dict[str, str | None]] = {}  # WordNet -> word -> the form listed (_lookup)

    def ancestors(self, synset: int) -> frozenset[int]:
        """The synset and every synset on its hypernym paths (computed once each)."""
        found = self._ancestors.get(synset)
        if found is None:
            found = frozenset({synset}).union(*(self.ancestors(p) for p in self.parents[synset]))
            self._ancestors[synset] = found
        return found

    def covering(self, word: str) -> frozenset[int]:
        """Every synset that covers ``word`` (its senses and their hypernyms); empty when unknown.
        Computed once a word: top words recur across units and runs."""
        found = self._covering.get(word)
        if found is None:
            found = frozenset().union(*(self.ancestors(s) for s in self.senses.get(word, ())))
            self._covering[word] = found
        return found

    def nameable(self, synset: int) -> bool:
        return not LEXNAMES[self.lexfile[synset]].startswith("noun.") or self.depth[synset] >= MIN_NOUN_DEPTH


def parse_hypernyms(lines: Iterable[str]) -> Hypernyms:
    """A table from its lines (the format of ``sample_data/build_hypernyms.py``)."""
    names, lexfile, depth, parents, senses = [], [], [], [], {}
    for line in lines:
        kind, rest = line.rstrip("\n").split("\t", 1)
        if kind == "s":
            name, lex, d, par = rest.split("\t")
            names.append(name)
            lexfile.append(int(lex))
            depth.append(int(d))
            parents.append(tuple(int(x) for x in par.split(",")) if par else ())
        else:
            lemma, ids = rest.split("\t")
            senses[lemma] = tuple(int(x) for x in ids.split(","))
    return Hypernyms(tuple(names), np.array(lexfile, dtype=np.int64), np.array(depth, dtype=np.int64), tuple(parents),
                     senses)


@lru_cache(maxsize=4)
def load_hypernyms(path: str | Path = HYPERNYM_TABLE) -> Hypernyms:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return parse_hypernyms(fh)


@dataclass(frozen=True)
class UnitName:
    """A unit's name: its hypernym and supersense with the share of known top words each covers."""

    hypernym: str | None
    hypernym_share: float | None
    supersense: str | None
    supersense_share: float | None
    known: int
    """How many of its top words WordNet knows."""

    @property
    def label(self) -> str:
        if self.hypernym is None:
            return NO_LABEL
        return f"{self.hypernym} {self.hypernym_share:.0%} · {self.supersense}" if self.supersense else self.hypernym

    def as_dict(self) -> dict:
        return {"label": self.label, "hypernym": self.hypernym, "hypernym_share": self.hypernym_share,
                "supersense": self.supersense, "supersense_share": self.supersense_share, "known": self.known}


def _lookup(word: str, hyp: Hypernyms, wn: WordNet) -> str | None:
    """The form of ``word`` the hypernym table lists: itself lower-cased, else its first base form
    there (found once a word)."""
    forms = hyp._forms.setdefault(wn, {})
    if word not in forms:
        w = word.lower()
        forms[word] = w if w in hyp.senses else next((b for b in wn.base_forms(w) if b in hyp.senses), None)
    return forms[word]


def name_units(top_words: list[list[str]], hypernyms: Hypernyms | None = None, wn: WordNet | None = None) -> list[UnitName]:
    """A :class:`UnitName` for each unit from its top words (a list per unit): the shipped hypernym
    table and WordNet (supersenses and morphology) unless others are given."""
    hypernyms = load_hypernyms() if hypernyms is None else hypernyms
    wn = wordnet() if wn is None else wn
    return [_name(words, hypernyms, wn) for words in top_words]


#: The noun and verb supersenses, where hypernyms are.
_NOUN_VERB = np.array([n.startswith(("noun.", "verb.")) for n in LEXNAMES])


def _name(words: list[str], hyp: Hypernyms, wn: WordNet) -> UnitName:
    senses = wn.sense_matrix(words)  # through the morphology: "injuries" holds noun.state
    n_known = int(senses.any(1).sum())
    held = senses.sum(0)
    supersense = sup_share = None
    if n_known:
        top = int(np.argmax(held))
        supersense, sup_share = LEXNAMES[top], float(held[top] / n_known)
    hyp_words = [w for w in (_lookup(x, hyp, wn) for x in words) if w is not None]
    hypernym = share = None
    if len(hyp_words) >= MIN_KNOWN and (held * _NOUN_VERB).max() > 0:
        lexfile = int(np.argmax(held * _NOUN_VERB))  # the noun or verb supersense most top words hold
        counts: dict[int, int] = {}
        for w in hyp_words:
            for s in hyp.covering(w):
                counts[s] = counts.get(s, 0) + 1
        need = MIN_SHARE * len(hyp_words)
        cands = [s for s, c in counts.items() if c >= need and hyp.lexfile[s] == lexfile and hyp.nameable(s)]
        if cands:
            best = min(cands, key=lambda s: (-hyp.depth[s], -counts[s], s))
            hypernym, share = hyp.names[best], counts[best] / len(hyp_words)
    return UnitName(hypernym, share, supersense, sup_share, len(hyp_words))
