"""``inspect``: the first units and how to see more; every word of a unit, from the codes."""

from __future__ import annotations

import json
import re

import numpy as np
from typer.testing import CliRunner

from sparsecode.cli import INSPECT_LIMIT, app

from .test_cli import one_line_error


def run(*args, ok: bool = True):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300", "NO_COLOR": "1"})
    if ok:
        assert result.exit_code == 0, result.output
    return result


def unit_ids(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"^│\s+(\d+) │", text, flags=re.M)]


def test_table_shows_the_first_units_and_says_how_to_see_more(codes_path, codes):
    assert INSPECT_LIMIT == 20 and codes.n_units == 200
    text = run("inspect", codes_path).stdout
    assert unit_ids(text) == list(range(20))
    assert text.strip().splitlines()[-1] == "180 more units: --limit N shows the first N, --all every one"
    text = run("inspect", codes_path, "--limit", 199).stdout
    assert unit_ids(text) == list(range(199))
    assert text.strip().splitlines()[-1] == "1 more unit: --limit N shows the first N, --all every one"
    text = run("inspect", codes_path, "--all").stdout
    assert unit_ids(text) == list(range(200)) and "more unit" not in text
    # --json is for programs: every unit unless --limit says otherwise.
    assert len(json.loads(run("inspect", codes_path, "--json").stdout)["units"]) == 200
    assert len(json.loads(run("inspect", codes_path, "--json", "--limit", 3).stdout)["units"]) == 3
    one_line_error(run("inspect", codes_path, "--all", "--limit", 3, ok=False), "use one of --limit and --all")
    one_line_error(run("inspect", codes_path, "--all", "--word", "king", ok=False), "--all goes with --dim")


def test_dim_all_lists_every_word_of_the_unit_from_the_codes(codes_path, codes):
    unit = int(np.argmax(codes.frequency))  # a unit with many more words than the stored top 10
    column = codes.dense()[:, unit]
    rows = np.flatnonzero(column)
    expected = sorted(((codes.words[r], float(column[r])) for r in rows), key=lambda wv: -wv[1])
    assert len(expected) == codes.frequency[unit] > 10

    data = json.loads(run("inspect", codes_path, "--dim", unit, "--all", "--json").stdout)
    assert data["frequency"] == len(expected)
    assert [(e["word"], e["value"]) for e in data["words"]] == expected
    assert [w for w, _ in expected[:10]] == [w for w, _ in codes.top_words(unit)]  # the report is their head

    text = run("inspect", codes_path, "--dim", unit, "--all").stdout
    assert all(f"│ {w} " in text for w, _ in expected)
    assert "--all lists" not in text
    text = run("inspect", codes_path, "--dim", unit).stdout
    assert text.strip().splitlines()[-1] == f"the 10 strongest of {len(expected):,} words; --all lists every one"
