"""The HTML report, parsed back: every section, every unit, the curves' values, nothing external."""

from __future__ import annotations

import dataclasses
import json
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
        elif tag == "tr" and "data-unit" in attrs:
            self._row = int(attrs["data-unit"])
            self.unit_rows[self._row] = ""
        elif tag in self.titles:
            self._shape = tag
        elif tag == "title":
            self._title_of = self._shape

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "tr":
            self._row = None
        elif tag in self.titles:
            self._shape = None
        elif tag == "title":
            self._title_of = None

    def handle_data(self, data):
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

    # Training curves: loss and FVU (dead units: none in this run), one titled point per epoch with its value.
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["dead_fraction"] for m in metrics] == [0.0, 0.0, 0.0]
    expected = [f"epoch {m['epoch']}: {m[key]:.4g}" for key in ("loss", "fvu") for m in metrics]
    assert page.titles["circle"] == expected
    assert sum(tag == "svg" for tag, _ in page.tags) == 4  # 2 curves, 2 histograms
    assert "No unit was dead in any epoch." in page.section_text["training"]

    # Histograms: every used unit in one frequency bar, every word in one L0 bar.
    freq_bars = [t for t in page.titles["rect"] if t.endswith(" units")]
    l0_bars = [t for t in page.titles["rect"] if t.endswith(" words")]
    assert sum(int(t.rsplit(": ", 1)[1].split()[0].replace(",", "")) for t in freq_bars) == int((codes.frequency > 0).sum())
    assert sum(int(t.rsplit(": ", 1)[1].split()[0].replace(",", "")) for t in l0_bars) == 5000

    final = page.section_text["final"]
    run_summary = json.loads((run_dir / "summary.json").read_text())
    assert f"{run_summary['fvu']:.4g}" in final and f"{100 * run_summary['dead_fraction']:.2f} %" in final
    assert "No evaluation.json" in page.section_text["evaluation"]
    coh = coherence_of_codes(codes)
    c = coh.summary()
    assert (f"strict purity{c['strict_purity']:.3f}" in final and f"readable units{c['readable_units']:.1%}" in final
            and f"non-words{c['non_words']:.1%}" in final)
    for entry in unit_table(codes, coh=coh):
        purity = "—" if entry["purity"] is None else f"{entry['purity']:.2f}"
        assert f"{100 * entry['frequency'] / len(codes.words):.2f} %{purity}{entry['strict_purity']:.1f}" in page.unit_rows[entry["unit"]]

    # Self-contained: no external resource of any kind, one inline script.
    assert not [a for _, attrs in page.tags for a in ("src", "href") if a in attrs]
    assert [tag for tag, _ in page.tags if tag in ("link", "iframe", "img", "object")] == []
    assert [tag for tag, _ in page.tags].count("script") == 1


def test_report_shows_evaluation_json(tmp_path, run_dir, codes_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    evaluation = {"fvu": 0.123456, "word_similarity": {"EN-SIMLEX-999": {"spearman": 0.3141, "pairs": 998},
                                                        "EN-RW-STANFORD": {"spearman": None}},
                  "dist_ratio": 1.0625}
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    assert write_report(run, codes_path, tmp_path / "r.html")["evaluation"] is True
    text = Page((tmp_path / "r.html").read_text()).section_text["evaluation"]
    for expected in ("fvu0.1235", "word_similarity.EN-SIMLEX-999.spearman0.3141",
                     "word_similarity.EN-SIMLEX-999.pairs998", "word_similarity.EN-RW-STANFORD.spearman—",
                     "dist_ratio1.062"):
        assert expected in text


def test_words_are_escaped(tmp_path, run_dir, codes):
    table = [list(row) for row in codes.top_words_table]
    table[3][0] = "<script>alert(1)</script>"
    hostile = dataclasses.replace(codes, top_words_table=table)
    write_report(run_dir, hostile, tmp_path / "r.html")
    page = Page((tmp_path / "r.html").read_text())
    assert "<script>alert(1)</script>" in page.unit_rows[3]
    assert [tag for tag, _ in page.tags].count("script") == 1


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


def test_log_ticks():
    assert log_ticks(0.004, 2.0) == [0.01, 0.1, 1.0]
    assert log_ticks(0.15, 0.9) == [0.2, 0.5]
    assert log_ticks(0.31, 0.42) == [0.4]  # fewer than two of any sequence: what there is
    assert log_ticks(0.25, 0.45) == [0.3, 0.4]
