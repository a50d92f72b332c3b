"""The HTML report, parsed back: every section, every unit, the curves' values, nothing external."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from html.parser import HTMLParser

import pytest

import sparsecode as sc
from sparsecode.evaluate import coherence_of_codes, unit_table
from sparsecode.html_report import write_report
from sparsecode.svg import log_ticks, nice_ticks

SECTIONS = ["final", "evaluation", "training", "frequency", "l0", "units", "config"]


class Page(HTMLParser):
    """Collects what the tests look at: sections and their text, unit rows and their text, the
    titles of chart points (``circle``) and bars (``rect``), and every tag."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.section_text: dict[str, str] = {}
        self.unit_rows: dict[int, str] = {}
        self.titles: dict[str, list[str]] = {"circle": [], "rect": []}
        self.table_rows: dict[str, list[list[str]]] = {}
        self._cell = False
        self._section = self._row = self._shape = self._title_of = None
        self.feed(html)

    @property
    def sections(self) -> list[str]:
        return list(self.section_text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self._section = attrs["id"]
            self.section_text[self._section] = ""
            self.table_rows[self._section] = []
        if tag == "tr" and self._section is not None:
            self.table_rows[self._section].append([])
        if tag in ("td", "th") and self._section is not None:
            self.table_rows[self._section][-1].append("")
            self._cell = True
        elif tag == "tr" and "data-unit" in attrs:
            self._row = int(attrs["data-unit"])
            self.unit_rows[self._row] = ""
        elif tag in self.titles:
            self._shape = tag
        elif tag == "title":
            self._title_of = self._shape

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = False
        if tag == "section":
            self._section = None
        elif tag == "tr":
            self._row = None
        elif tag in self.titles:
            self._shape = None
        elif tag == "title":
            self._title_of = None

    def handle_data(self, data):
        if self._cell:
            self.table_rows[self._section][-1][-1] += data
        if self._section is not None:
            self.section_text[self._section] += data
        if self._row is not None:
            self.unit_rows[self._row] += data
        if self._title_of is not None:
            self.titles[self._title_of].append(data)


def test_report_has_every_section_and_every_unit(tmp_path, run_dir, codes_path, codes):
    summary = write_report(run_dir, codes_path, tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert summary == {"out": str(tmp_path / "report.html"), "units": 200, "words": 5000, "epochs": 3,
                       "evaluation": False, "bytes": len(html.encode())}
    page = Page(html)
    assert page.sections == SECTIONS
    assert sorted(page.unit_rows) == list(range(200))
    for unit, text in page.unit_rows.items():
        assert text.startswith(f"{unit}{codes.frequency[unit]:,}")
        for word, value in codes.top_words(unit):
            assert f"{word} {value:.3f}" in text

    # Training curve: FVU, one titled point per epoch with its value; the loss of topk is the FVU (within
    # 1%), so it is not drawn again; dead units: none in this run.
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["dead_fraction"] for m in metrics] == [0.0, 0.0, 0.0]
    assert all(abs(m["loss"] - m["fvu"]) <= 0.01 * m["fvu"] for m in metrics)
    assert page.titles["circle"] == [f"epoch {m['epoch']}: {m['fvu']:.4g}" for m in metrics]
    assert sum(tag == "svg" for tag, _ in page.tags) == 3  # 1 curve, 2 histograms
    assert "No unit was dead in any epoch." in page.section_text["training"]

    # Histograms: every used unit in one frequency bar, every word in one L0 bar.
    freq_bars = [t for t in page.titles["rect"] if t.endswith(" units")]
    l0_bars = [t for t in page.titles["rect"] if t.endswith(" words")]
    assert sum(int(t.rsplit(": ", 1)[1].split()[0].replace(",", "")) for t in freq_bars) == int((codes.frequency > 0).sum())
    assert sum(int(t.rsplit(": ", 1)[1].split()[0].replace(",", "")) for t in l0_bars) == 5000

    final = page.section_text["final"]
    run_summary = json.loads((run_dir / "summary.json").read_text())
    assert f"{run_summary['fvu']:.4g}" in final and f"{100 * run_summary['dead_fraction']:.2f} %" in final
    figures = [row[0] for row in rows_of(page, "final")[1:len(run_summary) + 1]]
    assert figures[:4] == ["FVU", "cosine(x, x̂)", "mean L0", "dead units"]
    assert len(figures) == len(run_summary) and not any("_" in name for name in figures)  # names in words
    assert "white-space: nowrap" in html.split("td.num, th.num {")[1].split("}")[0]  # '0.12 %' stays on one line
    assert "No evaluation.json" in page.section_text["evaluation"]
    coh = coherence_of_codes(codes)
    c = coh.summary()
    assert (f"strict purity{c['strict_purity']:.3f}" in final and f"readable units{c['readable_units']:.1%}" in final
            and f"non-words{c['non_words']:.1%}" in final)
    for entry in unit_table(codes, coh=coh):
        purity = "—" if entry["purity"] is None else f"{entry['purity']:.2f}"
        assert f"{100 * entry['frequency'] / len(codes.words):.2f} %{purity}{entry['strict_purity']:.1f}" in page.unit_rows[entry["unit"]]

    # Self-contained: no external resource of any kind, one inline script and the search's data.
    assert not [a for _, attrs in page.tags for a in ("src", "href") if a in attrs]
    assert [tag for tag, _ in page.tags if tag in ("link", "iframe", "img", "object")] == []
    assert scripts(page) == [{"type": "application/json", "id": "word-units"}, {}]


def test_report_shows_evaluation_json(tmp_path, run_dir, codes_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    evaluation = {  # as 'sparsecode evaluate --json' writes it, trimmed
        "reconstruction": {"fvu": 0.123456}, "sparsity": {"mean_l0": 7.5},
        "coherence": {"purity": 0.4123, "dense": 0.33, "chance": 0.3},
        "word_similarity": {"codes": {"EN-SIMLEX-999": {"spearman": 0.3141, "pairs": 999, "found": 990},
                                      "EN-RW-\u202eSTANFORD": {"spearman": None, "pairs": 2034, "found": 0}},
                            "dense": {"EN-SIMLEX-999": {"spearman": 0.35}}, "codes_average": 0.3141,
                            "dense_average": 0.4},
        "dist_ratio": {"codes": {"dist_ratio": 1.0625}, "dense": {"dist_ratio": 1.0, "dimensions": 50}}}
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    assert write_report(run, codes_path, tmp_path / "r.html")["evaluation"] is True
    page = Page((tmp_path / "r.html").read_text())
    assert rows_of(page, "evaluation") == [
        ["measure", "codes", "dense"],
        ["FVU (0: exact; 1: no better than the mean vector)", "0.1235", "—"],
        ["mean L0: active units per word (dense: its dimensions)", "7.50", "50"],
        ["purity: WordNet supersenses of a unit's top words", "0.412", "0.330"],
        ["purity of random words (chance)", "0.300", "0.300"],
        ["word similarity: Spearman, average of WS-353, SimLex, MEN, RW", "0.314", "0.400"],
        ["DistRatio (higher: more coherent dimensions)", "1.062", "1.000"],
        ["benchmark", "pairs found", "codes", "dense"],
        ["EN-SIMLEX-999", "990 of 999", "0.314", "0.350"],
        ["EN-RW-\\u202eSTANFORD", "0 of 2,034", "—", "—"],  # a file name shown as in the terminal
    ]


def rows_of(page: Page, section: str) -> list[list[str]]:
    """The cells' text of every table row of a section, header rows included."""
    return page.table_rows[section]


def test_words_are_escaped(tmp_path, run_dir, codes):
    table = [list(row) for row in codes.top_words_table]
    table[3][0] = "<script>alert(1)</script>"
    words = list(codes.words)
    words[3] = "</script><script>alert(2)</script>"  # in the search's data block
    hostile = dataclasses.replace(codes, top_words_table=table, words=words)
    write_report(run_dir, hostile, tmp_path / "r.html")
    page = Page((tmp_path / "r.html").read_text())
    from .test_html_search import page_data

    assert page_data((tmp_path / "r.html").read_text())["words"][3] == words[3]
    assert "<script>alert(1)</script>" in page.unit_rows[3]
    assert scripts(page) == [{"type": "application/json", "id": "word-units"}, {}]


def scripts(page: Page) -> list[dict]:
    return [attrs for tag, attrs in page.tags if tag == "script"]


def test_format_characters_are_shown_as_the_terminal_shows_them(tmp_path, run_dir, codes):
    """A right-to-left override in a word would reverse the rest of its row (1.757 read as 757.1):
    the report writes it as its escape, exactly as the terminal does (one function, terminal.visible)."""
    from sparsecode.terminal import visible

    table = [list(row) for row in codes.top_words_table]
    table[5][0] = "evil\u202etxt.exe"
    table[5][1] = "a\x1b[31mb\u200bc"
    write_report(run_dir, dataclasses.replace(codes, top_words_table=table), tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    row = Page(html).unit_rows[5]
    assert visible("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert "evil\\u202etxt.exe " in row and "a\\x1b[31mb\\u200bc " in row
    assert not any(ch in html for ch in "\u202e\x1b\u200b")


def test_report_errors(tmp_path, run_dir, codes_path, codes):
    def error(run, codes_arg, *needles):
        with pytest.raises(sc.SparsecodeError) as exc:
            write_report(run, codes_arg, tmp_path / "r.html")
        msg = str(exc.value)
        assert "\n" not in msg
        for needle in needles:
            assert needle in msg

    run = shutil.copytree(run_dir, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "hidden": 300}))
    error(run, codes_path, "has 200 units but the run", "has 300")
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n{"epoch": 2,\n')
    error(run, codes_path, "metrics.jsonl: line 2: not valid JSON")
    (run / "metrics.jsonl").unlink()
    error(run, codes_path, "metrics.jsonl: missing; the run directory is incomplete")
    error(tmp_path / "nowhere", codes_path, "not a run directory")
    error(run_dir, tmp_path / "nocodes.h5", "nocodes.h5: file not found")
    assert not (tmp_path / "r.html").exists()


def test_nice_ticks():
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.37, 0.56) == [0.4, 0.45, 0.5, 0.55]
    assert nice_ticks(0, 5000) == [0, 1000, 2000, 3000, 4000, 5000]
    assert nice_ticks(3, 3) == [2.6, 2.8, 3.0, 3.2, 3.4]  # a flat range is widened around the value
    assert nice_ticks(0.072, 0.179) == [0.08, 0.1, 0.12, 0.14, 0.16]  # FVU 0.077 to 0.174: five labels, not two


def test_log_ticks():
    assert log_ticks(0.004, 2.0) == [0.01, 0.1, 1.0]
    assert log_ticks(0.15, 0.9) == [0.2, 0.5]
    assert log_ticks(0.31, 0.42) == [0.4]  # fewer than two of any sequence: what there is
    assert log_ticks(0.25, 0.45) == [0.3, 0.4]


def test_tradeoff_page_axes_start_at_zero(tmp_path):
    """960 to 970 effective units of 1,000 drawn from 960 looked like a collapse; from 0 they are flat."""
    from sparsecode.tradeoff import write_tradeoff_html

    rows = [{"k": k, "fvu": fvu, "word_similarity": ws, "purity": None if k == 4 else 0.4, "effective_units": eff,
             "strict_purity": None if k == 4 else 0.3, "readable_units": 0.2, "non_words": 0.05,
             "starved_fraction": 0.01, "busiest_rate": 0.05, "seconds": 1.0}
            for k, fvu, ws, eff in ((4, 0.3, 0.41, 962.0), (8, 0.2, 0.45, 966.0), (16, 0.12, 0.47, 970.0))]
    result = {"words": 5000, "dim": 50, "hidden": 1000, "rows": rows,
              "reference": {"word_similarity": 0.5, "purity_dense": 0.33, "strict_purity_dense": 0.2,
                            "purity_chance": 0.3}}
    write_tradeoff_html(result, tmp_path / "t.html", "sparsecode tradeoff: evil\u202etxt.h5")
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert "\u202e" not in html and "evil\\u202etxt.h5" in html
    charts = {c.split('aria-label="')[1].split('"')[0]: c for c in html.split("<svg")[1:]}
    assert list(charts) == ["FVU against k", "word similarity against k", "purity against k",
                            "strict purity against k", "effective units of 1,000 against k"]
    for chart in charts.values():
        labels = re.findall(r'text-anchor="end">([^<]+)</text>', chart)
        assert labels[0] == "0", labels
    assert len(re.findall("<circle", charts["purity against k"])) == 2  # k=4: not measured, not drawn
    effective = re.findall(r'<circle class="point" cx="[^"]+" cy="([^"]+)"', charts["effective units of 1,000 against k"])
    assert max(map(float, effective)) - min(map(float, effective)) < 3  # 8 units of ~1,000 on a 168-pixel axis
