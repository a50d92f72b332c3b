"""The report's curves on a log axis, the dead-units curve only when there is one, and the search
box: whole words, any of several, or #id (its matching function run with node)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from sparsecode.html_report import MATCH_JS, write_report

from .test_html_report import Page

NODE = shutil.which("node")


def circles(page: Page, title_word: str) -> list[float]:
    """The cy of every point of the chart whose aria-label starts with ``title_word``."""
    out, inside = [], False
    for tag, attrs in page.tags:
        if tag == "svg":
            inside = attrs.get("aria-label", "").startswith(title_word)
        elif tag == "circle" and inside:
            out.append(float(attrs["cy"]))
    return out


def test_loss_and_fvu_on_a_log_axis_dead_units_when_any(tmp_path, run_dir, codes_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    spiky = [{**m, "loss": loss, "fvu": loss, "dead_fraction": dead}
             for m, loss, dead in zip(metrics, (8.0, 0.08, 0.0008), (0.0, 0.0, 0.125))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in spiky))
    write_report(run, codes_path, tmp_path / "r.html")
    page = Page((tmp_path / "r.html").read_text(encoding="utf-8"))
    for chart in ("loss per epoch (log scale)", "FVU per epoch (log scale)"):
        y = circles(page, chart)
        assert len(y) == 3 and y[1] - y[0] == pytest.approx(y[2] - y[1], abs=0.15)  # equal steps per factor of 100
    assert len(circles(page, "dead units (%) per epoch")) == 3  # some dead units: the curve is drawn
    assert "No unit was dead" not in page.section_text["training"]
    ticks = re.findall(r'text-anchor="end">([^<]+)</text>', (tmp_path / "r.html").read_text())
    assert ticks[:5] == ["0.001", "0.01", "0.1", "1", "10"]  # the loss chart's y axis: powers of ten


def test_rows_carry_their_top_words_for_the_search(tmp_path, run_dir, codes_path, codes):
    write_report(run_dir, codes_path, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    rows = rows_data(html)
    assert rows == {u: [w.lower() for w, _ in codes.top_words(u)] for u in range(codes.n_units)}
    assert MATCH_JS in html and "unitMatches(box.value, row.dataset.unit, words[i])" in html
    assert "whole words, any case" in Page(html).section_text["units"]


def rows_data(html: str) -> dict[int, list[str]]:
    from html import unescape

    return {int(u): json.loads(unescape(w)) for u, w in re.findall(r'data-unit="(\d+)" data-words="([^"]*)"', html)}


def run_matches(cases: list[tuple[str, int, list[str]]]) -> list[bool]:
    script = MATCH_JS + "\nconst cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n" \
        "console.log(JSON.stringify(cases.map(([q, u, w]) => unitMatches(q, String(u), w))));"
    proc = subprocess.run([NODE, "-e", script], input=json.dumps(cases), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_search_matches_whole_words_any_of_several_or_the_unit_id():
    cases = [  # query, unit, its top words, whether it matches
        ("42", 42, ["king", "queen"], False),    # a number is a word, not the unit id or a word count
        ("42", 7, ["1942", "42"], True),
        ("#42", 42, ["king"], True),
        ("#4", 42, ["king"], False),
        ("king", 3, ["1-800-king", "kingdom"], False),  # whole words only
        ("King", 3, ["king"], True),              # any case (the words are stored lowercase)
        ("king queen", 3, ["queen", "prince"], True),   # any of several
        ("king queen", 3, ["prince"], False),
        ("paris #9", 9, ["rome"], True),
        ("", 5, [], True),
        ("   ", 5, ["x"], True),
    ]
    assert run_matches([c[:3] for c in cases]) == [c[3] for c in cases]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_search_over_the_real_page(tmp_path, run_dir, codes_path, codes):
    write_report(run_dir, codes_path, tmp_path / "r.html")
    rows = rows_data((tmp_path / "r.html").read_text(encoding="utf-8"))
    word = codes.top_words(0)[0][0]
    for query in (word, f"{word} {codes.top_words(1)[0][0]}", "#17", "#17 not-a-word-here"):
        got = run_matches([(query, u, w) for u, w in rows.items()])
        terms = query.lower().split()
        want = [any(t == f"#{u}" or t in w for t in terms) for u, w in rows.items()]
        assert got == want and got[17 if "#17" in query else 0], query
