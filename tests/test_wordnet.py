"""WordNet's morphology over the shipped tables: base forms and supersenses, exact on hand-made and real words."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparsecode.wordnet import (EXCEPTION_TABLE, LEXNAMES, POS_OF_LEXFILE, SUPERSENSE_TABLE, WordNet, base_forms,
                                load_exceptions, sense_matrix, supersenses)

from .conftest import ROOT

N = {name: LEXNAMES.index(name) for name in ("noun.animal", "noun.artifact", "noun.state", "noun.act", "noun.person",
                                             "verb.motion", "verb.stative", "adj.all", "noun.quantity")}

#: A hand-made WordNet: lemmas with one file per part of speech, and one irregular form.
HAND = WordNet(
    {"box": (N["noun.artifact"],), "lady": (N["noun.person"],), "walk": (N["noun.act"], N["verb.motion"]),
     "tall": (N["adj.all"],), "glass": (N["noun.artifact"],), "mouse": (N["noun.animal"],), "make": (N["verb.motion"],),
     "boxful": (N["noun.quantity"],), "bos": (N["noun.animal"],)},
    {"n": {"mice": ("mouse",)}, "v": {}, "a": {}, "r": {}},
)


def test_parts_of_speech_of_the_lexicographer_files():
    assert [POS_OF_LEXFILE[LEXNAMES.index(n)] for n in ("adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.time",
                                                          "verb.body", "verb.weather", "adj.ppl")] == list("aarnnvva")


def test_detachment_rules_and_exceptions_by_hand():
    assert HAND.base_forms("boxes", "n") == ["box"]  # "xes" -> "x"; "es" is no noun rule, "boxe" no lemma
    assert HAND.base_forms("ladies") == ["lady"]  # "ies" -> "y"
    assert HAND.base_forms("walked") == ["walk"]  # a verb only: the noun has no "ed" rule
    assert HAND.base_forms("walks") == ["walk"]  # noun and verb give the same form once
    assert HAND.base_forms("walks", "n") == ["walk"] and HAND.base_forms("walks", "v") == ["walk"]
    assert HAND.base_forms("making", "v") == ["make"]  # "ing" -> "e"
    assert HAND.base_forms("tallest") == ["tall"] and HAND.base_forms("taller") == ["tall"]  # "est", "er" -> ""
    assert HAND.base_forms("mice") == ["mouse"]  # the exception list
    assert HAND.base_forms("Mice") == ["mouse"]  # lower-cased first
    assert HAND.base_forms("boss") == [] and HAND.base_forms("glass") == ["glass"]  # no "ss" noun is detached
    assert HAND.base_forms("boxesful") == ["boxful"]  # "-ful" detaches before the "ful"
    assert HAND.base_forms("qzx") == [] and HAND.base_forms("202-383-7824") == []


def test_supersenses_take_the_first_base_form_in_each_part_of_speech():
    assert HAND.supersenses("walked") == (N["verb.motion"],)
    assert HAND.supersenses("walks") == (N["noun.act"], N["verb.motion"])
    assert HAND.supersenses("mice") == (N["noun.animal"],)
    assert HAND.supersenses("qzx") == ()
    np.testing.assert_array_equal(np.flatnonzero(HAND.sense_matrix(["qzx", "ladies", "walk"]).any(1)), [1, 2])
    assert HAND.sense_matrix(["walks"])[0].nonzero()[0].tolist() == [N["noun.act"], N["verb.motion"]]
    # The table as written knows lemmas only.
    assert sense_matrix(["ladies", "lady"], HAND.table).any(1).tolist() == [False, True]


def test_the_shipped_wordnet_knows_inflections():
    assert base_forms("cancers") == ["cancer"]
    assert base_forms("running", "v") == ["run"]  # verb.exc
    assert base_forms("running") == ["running", "run"]  # the noun "running" first
    assert base_forms("ran") == ["run"] and base_forms("children") == ["child"] and base_forms("is") == ["be"]
    assert supersenses("cancers") == (N["noun.state"],)
    assert supersenses("running") == (N["noun.act"], N["verb.motion"], N["adj.all"])
    assert supersenses("ran") == (N["verb.motion"],) and supersenses("is") == (N["verb.stative"],)
    assert supersenses("foutch") == () and supersenses("http://www.nasdaq.com") == ()
    exc = load_exceptions()
    assert exc["v"]["ran"] == ("run",) and exc["n"]["mice"] == ("mouse",) and exc["a"]["better"] == ("good", "well")


@pytest.mark.skipif(not Path("/usr/share/wordnet/noun.exc").is_file(), reason="WordNet 3.0 (wordnet-base) not installed")
def test_the_exception_lists_are_rebuilt_byte_for_byte(tmp_path):
    out = tmp_path / "t.tsv.gz"
    subprocess.run([sys.executable, str(ROOT / "sample_data" / "build_supersenses.py"), "/usr/share/wordnet",
                    "--out", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == SUPERSENSE_TABLE.read_bytes()
    assert (tmp_path / "wordnet_exceptions.tsv.gz").read_bytes() == EXCEPTION_TABLE.read_bytes()
