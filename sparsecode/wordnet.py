"""WordNet 3.0 as sparsecode reads it: each lemma's supersenses and WordNet's own morphology.

Two tables ship in ``sparsecode/resources`` (built by ``sample_data/build_supersenses.py`` from
WordNet's database files; WordNet's licence and provenance beside them), so nothing else is needed
at run time:

- ``wordnet_supersenses.tsv.gz``: for every one-word lemma and each part of speech it has, the
  lexicographer file (the "supersense": noun.animal, verb.motion, ... 45 in all, :data:`LEXNAMES`)
  of its first listed, most frequent, sense. The file number tells the part of speech
  (:data:`POS_OF_LEXFILE`), so the table also says which lemmas each part of speech has.
- ``wordnet_exceptions.tsv.gz``: WordNet's exception lists (``noun.exc``, ``verb.exc``, ...):
  irregular forms and their base forms (``ran`` -> ``run``, ``mice`` -> ``mouse``).

:func:`base_forms` is WordNet's ``morphy`` (as ``morph.c`` and NLTK have it) for one token: per part
of speech, the word itself when it is a lemma, then its base forms from the exception list or,
when it has none there, from one pass of the detachment rules (``cancers`` -> ``cancer``,
``boxes`` -> ``box``, ``ladies`` -> ``lady``, ``walked`` -> ``walk``, ``bigger`` -> ``big``), each kept
only when WordNet has it as a lemma of that part of speech. Nouns ending in ``ss`` or of two letters
or fewer are not detached (``glass`` is not ``glas``), and ``-ful`` nouns detach before the ``ful``
(``boxesful`` -> ``boxful``). Not covered: multi-word collocations (the table holds one-word lemmas
only) and hyphenated compounds morphed part by part. Words are lower-cased first.

:func:`supersenses` gives a word one supersense per part of speech, that of its first base form
there (so up to four, as the table has for lemmas): ``running`` gets noun.act (the noun
``running``) and verb.motion (``run``).
"""

from __future__ import annotations

import gzip
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
RESOURCES = Path(__file__).resolve().parent / "resources"
SUPERSENSE_TABLE = RESOURCES / "wordnet_supersenses.tsv.gz"
EXCEPTION_TABLE = RESOURCES / "wordnet_exceptions.tsv.gz"

#: The parts of speech, in WordNet's order: noun, verb, adjective, adverb.
POS = ("n", "v", "a", "r")
#: The part of speech of each lexicographer file (adj.all, adj.pert and adj.ppl are adjectives).
POS_OF_LEXFILE = tuple({"noun": "n", "verb": "v", "adj": "a", "adv": "r"}[name.split(".")[0]] for name in LEXNAMES)

#: WordNet's detachment rules (morph.c): per part of speech, (suffix, replacement), tried in order.
DETACHMENT_RULES = {
    "n": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
          ("ies", "y")),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}


@lru_cache(maxsize=4)
def load_supersenses(path: str | Path = SUPERSENSE_TABLE) -> dict[str, tuple[int, ...]]:
    """lemma -> lexicographer file numbers (one per part of speech it has, in POS order)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return {w: tuple(int(c) for c in s.split(",")) for w, s in (line.rstrip("\n").split("\t") for line in fh)}


@lru_cache(maxsize=4)
def load_exceptions(path: str | Path = EXCEPTION_TABLE) -> dict[str, dict[str, tuple[str, ...]]]:
    """pos -> irregular form -> its base forms (the exception lists)."""
    out: dict[str, dict[str, tuple[str, ...]]] = {pos: {} for pos in POS}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            pos, form, bases = line.rstrip("\n").split("\t")
            out[pos][form] = tuple(bases.split(" "))
    return out


def sense_matrix(words: list[str], table: dict[str, tuple[int, ...]]) -> np.ndarray:
    """(N, 45) bool: row i marks the supersenses ``table`` gives ``words[i]`` (lower-cased, looked
    up as it is: no morphology); all False when unknown."""
    return _marked([table.get(w.lower(), ()) for w in words])


def _marked(senses: list[tuple[int, ...]]) -> np.ndarray:
    """(N, 45) bool from each row's lexicographer file numbers."""
    rows = np.repeat(np.arange(len(senses)), [len(s) for s in senses])
    out = np.zeros((len(senses), len(LEXNAMES)), dtype=bool)
    out[rows, [f for s in senses for f in s]] = True
    return out


class WordNet:
    """The supersense table and the exception lists, with WordNet's morphology over them."""

    def __init__(self, table: dict[str, tuple[int, ...]], exceptions: dict[str, dict[str, tuple[str, ...]]]):
        self.table, self.exceptions = table, exceptions
        self._senses: dict[str, tuple[int, ...]] = {}  # word -> supersenses already found

    def lexfile(self, lemma: str, pos: str) -> int | None:
        """The supersense (lexicographer file number) of ``lemma``'s first sense as ``pos``; None
        when WordNet has no such lemma in that part of speech."""
        for f in self.table.get(lemma, ()):  # one file per part of speech of the lemma
            if POS_OF_LEXFILE[f] == pos:
                return f
        return None

    def base_forms(self, word: str, pos: str | None = None) -> list[str]:
        """WordNet's base forms of ``word`` as ``pos`` ("n", "v", "a", "r"), or in every part of
        speech in that order without repeats for None (see the module's text); [] when none."""
        if pos is None:
            return list(dict.fromkeys(b for p in POS for b in self.base_forms(word, p)))
        word = word.lower()
        forms = [word]
        if word in self.exceptions[pos]:
            forms += self.exceptions[pos][word]
        elif pos == "n" and word.endswith("ful"):
            forms += [f + "ful" for f in self._detached(word[:-3], pos)]
        else:
            forms += self._detached(word, pos)
        return [f for f in dict.fromkeys(forms) if self.lexfile(f, pos) is not None]

    def _detached(self, word: str, pos: str) -> list[str]:
        if pos == "n" and (word.endswith("ss") or len(word) <= 2):
            return []
        return [word[: len(word) - len(old)] + new for old, new in DETACHMENT_RULES[pos] if word.endswith(old)]

    def supersenses(self, word: str) -> tuple[int, ...]:
        """One supersense per part of speech ``word`` has a base form in: that of its first base form
        there (see :meth:`base_forms`), in POS order; () when WordNet does not know the word."""
        found = self._senses.get(word)
        if found is None:
            found = tuple(self.lexfile(forms[0], pos) for pos in POS if (forms := self.base_forms(word, pos)))
            self._senses[word] = found
        return found

    def sense_matrix(self, words: list[str]) -> np.ndarray:
        """(N, 45) bool: row i marks :meth:`supersenses` of ``words[i]`` (through the morphology)."""
        return _marked([self.supersenses(w) for w in words])


@lru_cache(maxsize=1)
def wordnet() -> WordNet:
    """The shipped WordNet (read once)."""
    return WordNet(load_supersenses(), load_exceptions())


def base_forms(word: str, pos: str | None = None) -> list[str]:
    """:meth:`WordNet.base_forms` of the shipped WordNet: ``base_forms("cancers") == ["cancer"]``."""
    return wordnet().base_forms(word, pos)


def supersenses(word: str) -> tuple[int, ...]:
    """:meth:`WordNet.supersenses` of the shipped WordNet, as lexicographer file numbers (names in
    :data:`LEXNAMES`)."""
    return wordnet().supersenses(word)
