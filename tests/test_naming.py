"""Unit names from WordNet: exact on a hand-made hypernym table, the builder on hand-made WordNet
files, the shipped table on real words, and the names where inspect, report and the codes file show them."""

from __future__ import annotations

import gzip
import importlib.util
import json

import h5py
import pytest
from typer.testing import CliRunner

from sparsecode.cli import app
from sparsecode.naming import NO_LABEL, load_hypernyms, name_units, parse_hypernyms
from sparsecode.wordnet import LEXNAMES, POS, WordNet

from .conftest import ROOT

FOOD, PLANT, PERSON = LEXNAMES.index("noun.food"), LEXNAMES.index("noun.plant"), LEXNAMES.index("noun.person")
MOTION = LEXNAMES.index("verb.motion")
# id: 0 entity, 1 physical entity, 2 food, 3 edible fruit, 4 plant, 5 fruit tree, 6 person, 7 king, 8 travel, 9 run
TABLE = parse_hypernyms([
    "s\tentity\t3\t0\t\n", "s\tphysical entity\t3\t1\t0\n", f"s\tfood\t{FOOD}\t2\t1\n",
    f"s\tedible fruit\t{FOOD}\t3\t2\n", f"s\tplant\t{PLANT}\t2\t1\n", f"s\tfruit tree\t{PLANT}\t3\t4\n",
    f"s\tperson\t{PERSON}\t2\t1\n", f"s\tking\t{PERSON}\t3\t6\n", f"s\ttravel\t{MOTION}\t0\t\n",
    f"s\trun\t{MOTION}\t1\t8\n",
    "w\tapple\t3,5\n", "w\tpear\t3,5\n", "w\tplum\t3\n", "w\tcake\t2\n", "w\tking\t7\n", "w\tqueen\t6\n",
    "w\tstone\t1\n", "w\trock\t1\n", "w\tgravel\t1\n", "w\trun\t9\n", "w\twalk\t8\n", "w\tride\t8\n",
])
SENSES = {"apple": (FOOD,), "pear": (FOOD,), "plum": (FOOD,), "cake": (FOOD,), "king": (PERSON,),
          "queen": (PERSON,), "stone": (LEXNAMES.index("noun.object"),), "rock": (LEXNAMES.index("noun.object"),),
          "gravel": (LEXNAMES.index("noun.object"),), "run": (MOTION,), "walk": (MOTION,), "ride": (MOTION,)}


IRREGULAR = {pos: {} for pos in POS} | {"v": {"ran": ("run",), "rode": ("ride",)}}
WN = WordNet(SENSES, IRREGULAR)


def names(*units):
    return name_units([list(u) for u in units], TABLE, WN)


def test_the_deepest_hypernym_of_the_dominant_supersense_that_covers_half():
    (fruit,) = names(["apple", "pear", "plum", "cake", "unknownword"])
    # edible fruit covers 3 of the 4 known words, food all 4: the deeper one names the unit;
    # fruit tree (depth 3 too, 2 of 4) is a plant, not the unit's dominant supersense (noun.food).
    assert (fruit.hypernym, fruit.hypernym_share, fruit.known) == ("edible fruit", 0.75, 4)
    assert (fruit.supersense, fruit.supersense_share) == ("noun.food", 1.0)
    assert fruit.label == "edible fruit 75% · noun.food"
    (food,) = names(["apple", "cake", "plum", "pear", "cake", "cake"])  # 3 of 6 is exactly half: fruit still
    assert (food.hypernym, food.hypernym_share) == ("edible fruit", 0.5)
    (food,) = names(["apple", "cake", "cake", "pear", "cake", "cake"])  # 2 of 6: below half, so food
    assert (food.hypernym, food.hypernym_share) == ("food", 1.0)
    (verbs,) = names(["run", "walk", "ride"])  # verb roots name units (depth 0 is no bar for verbs)
    assert verbs.label == "travel 100% · verb.motion"


def test_no_label_below_half_with_few_known_words_or_only_the_most_general_nouns():
    assert names(["apple", "king", "run", "stone", "x"])[0].label == NO_LABEL  # nothing covers 2 of 4 in one supersense
    few = names(["apple", "pear", "zzz", "yyy"])[0]
    assert few.known == 2 and few.label == NO_LABEL and few.supersense == "noun.food"  # under MIN_KNOWN = 3
    general = names(["stone", "rock", "gravel"])[0]  # covered only by physical entity and entity (depth < 2)
    assert general.known == 3 and general.hypernym is None and general.label == NO_LABEL
    nothing = names([])[0]
    assert nothing.as_dict() == {"label": NO_LABEL, "hypernym": None, "hypernym_share": None, "supersense": None,
                                 "supersense_share": None, "known": 0}


def test_words_wordnet_lacks_are_looked_up_by_their_base_forms():
    named = names(["apples", "pears", "Plums", "cakes"])[0]  # detachment: -s
    assert (named.label, named.known) == ("edible fruit 75% · noun.food", 4)
    named = names(["ran", "walked", "rode", "walking"])[0]  # the exception list, then -ed and -ing
    assert (named.label, named.known) == ("travel 100% · verb.motion", 4)
    assert names(["apples", "pearz", "zzz"])[0].known == 1


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_hypernyms", ROOT / "sample_data" / "build_hypernyms.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_builder_on_hand_made_wordnet_files(tmp_path):
    header = "  1 This software and database is being provided to you, the LICENSEE, by\n"
    (tmp_path / "data.noun").write_text(header + (
        "00000001 03 n 01 entity 0 000 | that which exists\n"
        "00000002 13 n 01 food 0 001 @ 00000001 n 0000 | what is eaten\n"
        "00000003 13 n 02 edible_fruit 0 fruit 1 002 @ 00000002 n 0000 ~ 00000004 n 0000 | fruit eaten\n"
        "00000004 13 n 01 apple 0 001 @ 00000003 n 0000 | a fruit\n"
        "00000005 15 n 01 France 0 001 @i 00000001 n 0000 | a country\n"))
    (tmp_path / "index.noun").write_text(header + (
        "apple n 1 1 @ 1 0 00000004\n"
        "fruit n 2 1 @ 2 0 00000003 00000002\n"
        "france n 1 1 @i 1 0 00000005\n"
        "edible_fruit n 1 1 @ 1 0 00000003\n"))
    (tmp_path / "data.verb").write_text(header)
    (tmp_path / "index.verb").write_text(header)
    text, lemmas, synsets = _load_builder().build(tmp_path)
    assert (lemmas, synsets) == (3, 5)  # the two-word lemma is left out
    assert text.splitlines() == [
        "s\tentity\t3\t0\t", "s\tfood\t13\t1\t0", "s\tedible fruit\t13\t2\t1", "s\tapple\t13\t3\t2",
        "s\tFrance\t15\t1\t0", "w\tapple\t3", "w\tfrance\t4", "w\tfruit\t2,1",
    ]
    table = parse_hypernyms(line + "\n" for line in text.splitlines())
    assert table.covering("apple") == {0, 1, 2, 3} and table.names[2] == "edible fruit"


def test_the_shipped_table_names_real_units():
    table = load_hypernyms()
    assert len(table.senses) > 60_000 and len(table.names) > 60_000
    currency, countries, weekdays, plurals = name_units([["dollar", "euro", "yen", "peso", "franc", "rupee"],
                                                ["france", "germany", "italy", "spain", "belgium"],
                                                ["monday", "tuesday", "friday", "thursday", "weekend"],
                                                ["insurgencies", "uprisings", "wars", "rebellions"]])
    assert currency.label == "monetary unit 100% · noun.quantity"
    assert countries.label == "European country 100% · noun.location"
    assert weekdays.label == "weekday 80% · noun.time"
    assert plurals.known == 4 and plurals.hypernym is not None  # through WordNet's morphology
    with gzip.open(ROOT / "sparsecode" / "resources" / "wordnet_hypernyms.tsv.gz", "rt") as fh:
        assert fh.readline() == "s\tentity\t3\t0\t\n"


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_inspect_the_report_and_the_codes_file_show_the_names(codes_path, codes, run_dir, tmp_path):
    expected = [n.label for n in name_units(codes.top_words_table)]
    assert sum(label != NO_LABEL for label in expected) >= 5  # the sample has named units
    with h5py.File(codes_path, "r") as f:
        assert [s.decode() for s in f["dimensions/names"][...]] == expected
    units = json.loads(_run("inspect", codes_path, "--json"))["units"]
    assert [u["name"]["label"] for u in units] == expected
    named = next(u for u in range(codes.n_units) if expected[u] != NO_LABEL)
    text = _run("inspect", codes_path, "--limit", named + 1)
    assert "┃ name " in text and f" {expected[named]} " in text
    assert _run("inspect", codes_path, "--dim", named).splitlines()[0] == f"unit {named}: {expected[named]}"
    word = codes.top_words(named)[0][0]
    entry = json.loads(_run("inspect", codes_path, "--word", word, "--json"))["active_units"]
    assert {e["unit"]: e["name"]["label"] for e in entry}[named] == expected[named]
    assert expected[named] in _run("inspect", codes_path, "--word", word)
    _run("report", run_dir, codes_path, "--out", tmp_path / "r.html")
    assert f"<td>{expected[named]}</td>" in (tmp_path / "r.html").read_text(encoding="utf-8").replace("&#x27;", "'")
