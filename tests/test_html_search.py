"""The report's curves on a log axis, the dead-units curve only when there is one, and the search
box: the units a word's code uses, from every word's codes on the page, or #id (its functions run
with node)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import pytest

import numpy as np

import sparsecode as sc
from sparsecode.html_report import MATCH_JS, word_units_data, write_report

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
    spiky = [{**m, "loss": 2 * loss, "fvu": loss, "dead_fraction": dead}  # a penalty: the loss is not the FVU
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
    assert ticks[:5] == ["0.001", "0.01", "0.1", "1", "10"]  # the FVU chart's y axis: powers of ten


def test_one_chart_when_the_loss_is_the_fvu_and_a_linear_axis_below_a_decade(tmp_path, run_dir, codes_path):
    """The k-means start: FVU 0.26 then 0.08 (a factor 3), the loss equal to it. A log axis labelled
    only 0.08-0.1, and the loss chart drew the same curve again."""
    run = shutil.copytree(run_dir, tmp_path / "run")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    (run / "metrics.jsonl").write_text("".join(json.dumps({**m, "loss": fvu * 1.001, "fvu": fvu}) + "\n"
                                               for m, fvu in zip(metrics, (0.26, 0.081, 0.077))))
    write_report(run, codes_path, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    page = Page(html)
    charts = [attrs["aria-label"] for tag, attrs in page.tags if tag == "svg"]
    assert charts[0] == "FVU per epoch" and not any(c.startswith("loss") for c in charts)
    assert "The loss equals the FVU within 1% in every epoch" in page.section_text["training"]
    fvu_chart = html[html.index('aria-label="FVU per epoch"'):].split("</svg>")[0]
    assert re.findall(r'text-anchor="end">([^<]+)</text>', fvu_chart) == ["0.1", "0.15", "0.2", "0.25"]


def page_data(html: str) -> dict:
    """The word-units data block of a page, as the browser's JSON.parse reads it."""
    block = re.search(r'<script type="application/json" id="word-units">(.*?)</script>', html, re.S).group(1)
    return json.loads(block)


def decoded(data: dict) -> dict[str, list[int]]:
    """Each word's units in the page's order, decoded in Python."""
    dtype = {2: "<u2", 4: "<u4"}[data["unit_bytes"]]
    counts = np.frombuffer(base64.b64decode(data["counts"]), dtype)
    units = np.frombuffer(base64.b64decode(data["units"]), dtype)
    ends = np.cumsum(counts)
    return {w: units[e - c:e].tolist() for w, c, e in zip(data["words"], counts, ends)}


def test_the_page_carries_every_words_units_strongest_first(tmp_path, run_dir, codes_path, codes):
    write_report(run_dir, codes_path, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    data = page_data(html)
    assert data["words"] == codes.words and data["unit_bytes"] == 2
    got = decoded(data)
    for i in (0, 1, 17, 4999):
        lo, hi = codes.indptr[i], codes.indptr[i + 1]
        strongest = codes.indices[lo:hi][np.argsort(-codes.data[lo:hi], kind="stable")]
        assert got[codes.words[i]] == strongest.tolist() and len(strongest) == 8
    assert MATCH_JS in html and "wordUnits(JSON.parse(" in html
    assert "to see the units its code uses" in Page(html).section_text["units"]


def test_word_units_data_by_hand():
    """Two words, three units: counts and units little-endian, word after word, strongest first."""
    codes = sc.Codes(words=["a", "</script>"], indptr=np.array([0, 2, 3]), indices=np.array([0, 2, 1]),
                     data=np.array([0.5, 2.0, 1.0], np.float32), n_units=3, top_words_table=[[], [], []],
                     top_values_table=np.zeros((3, 0), np.float32), frequency=np.array([1, 1, 1]))
    data = word_units_data(codes)
    assert data == {"words": ["a", "</script>"], "unit_bytes": 2,
                    "counts": base64.b64encode(bytes([2, 0, 1, 0])).decode(),
                    "units": base64.b64encode(bytes([2, 0, 0, 0, 1, 0])).decode()}


def run_matches(cases: list[tuple[str, dict]]) -> list:
    script = MATCH_JS + "\nconst cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n" \
        "console.log(JSON.stringify(cases.map(([q, words]) => { const u = matchingUnits(q, w => words[w] || []);" \
        " return u === null ? null : [u, u.missing]; })));"
    proc = subprocess.run([NODE, "-e", script], input=json.dumps(cases), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_search_finds_the_units_a_word_uses_or_the_unit_id():
    words = {"king": [3, 1], "queen": [1, 9], "42": [7]}  # lowercase word -> its units, strongest first
    cases = [  # query, what it shows (units in order, terms found nowhere), or None for every unit
        ("king", [["3", "1"], []]),
        ("King", [["3", "1"], []]),              # any case
        ("king queen", [["3", "1", "9"], []]),  # the units any of them uses, each once
        ("42", [["7"], []]),                     # a number is a word, not the unit id
        ("#42", [["42"], []]),
        ("paris #9", [["9"], ["paris"]]),       # a word not in the vocabulary is named
        ("kingdom", [[], ["kingdom"]]),           # whole words only
        ("", None),
        ("   ", None),
    ]
    assert run_matches([(q, words) for q, _ in cases]) == [want for _, want in cases]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_search_over_the_real_page(tmp_path, run_dir, codes_path, codes):
    """france, happy or King, as a reader types them: the units their codes use, from the page's own data."""
    write_report(run_dir, codes_path, tmp_path / "r.html")
    data = page_data((tmp_path / "r.html").read_text(encoding="utf-8"))
    script = MATCH_JS + "\nconst data = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n" \
        "const unitsOf = wordUnits(data);\n" \
        "console.log(JSON.stringify(['france', 'happy', 'King', 'king france', '#17'].map(q => matchingUnits(q, unitsOf))));"
    proc = subprocess.run([NODE, "-e", script], input=json.dumps(data), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    france, happy, king, both, unit = json.loads(proc.stdout)
    got = decoded(data)
    assert france == [str(u) for u in got["france"]] and len(france) == 8
    assert happy == [str(u) for u in got["happy"]] and king == [str(u) for u in got["king"]]
    assert both == list(dict.fromkeys(king + france)) and unit == ["17"]
