"""One self-contained HTML page about a run and its codes.

The page has no external resource (styles inline, charts as inline SVG, a dozen lines of plain
JavaScript for the search box; without JavaScript every row simply stays visible). Sections, each
a ``<section id=...>``:

- ``final``: the final model's figures (``summary.json``) and the codes' own counts;
- ``evaluation``: ``evaluation.json`` from the run directory, when there is one (written by
  ``sparsecode evaluate --json`` when available);
- ``training``: loss and FVU per epoch (``metrics.jsonl``) on log axes, dead units when any epoch
  had some, as charts and a table;
- ``frequency``: histogram of how many words use each unit (log scale; dead units counted apart);
- ``l0``: histogram of active units per word;
- ``units``: every unit with its word count and top words with their activations, searchable
  by whole words (any of several) or ``#id``;
- ``config``: every setting of the run (``config.json``).
"""

from __future__ import annotations

import json
import math
import os
from html import escape
from pathlib import Path

import numpy as np

from .atomic import atomic_output, check_output
from .codes import Codes, check_same_model, load_codes
from .errors import SparsecodeError
from .evaluate import balance_of_codes, coherence_of_codes, unit_table
from .interpret import EVEN_FACTOR
from .svg import histogram, line_chart
from .rundir import RunLogs, load_run, read_json, read_logs

#: What the figures of ``summary.json`` mean, in the order shown; fractions are shown as percentages.
SUMMARY_FIGURES = {
    "fvu": "fraction of variance unexplained (lower is better)",
    "cosine": "mean cosine between a vector and its reconstruction",
    "mean_l0": "mean number of active units per word",
    "dead_fraction": "units that no word uses",
    "always_on_fraction": "units used by more than half of the words",
    "zero_rows_fraction": "words whose code is all zeros",
    "k": "active units per word at encode time",
    "train_seconds": "training time in seconds",
}

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 1.2em 3em; color: #1d232a; }
h1 { margin-bottom: 0.1em; } .sub { color: #5b6670; margin-top: 0; }
section { margin-top: 2.2em; } h2 { border-bottom: 1px solid #d5dbe1; padding-bottom: 0.2em; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.7em; text-align: left; vertical-align: top; }
th { background: #eef1f4; } tr:nth-child(even) td { background: #f8f9fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; } .chart { width: 420px; max-width: 100%; height: auto; }
.chart .axis { stroke: #444; } .chart .tick { stroke: #444; } .chart .grid { stroke: #e3e7eb; }
.chart text { font-size: 11px; fill: #333; } .chart .title { font-size: 13px; font-weight: 600; }
.chart .line { fill: none; stroke: #1f6fb2; stroke-width: 2; } .chart .point { fill: #1f6fb2; }
.chart .bar { fill: #4c8dc4; } .chart .bar:hover, .chart .point:hover { fill: #d9822b; }
#unit-search { font-size: 1em; padding: 0.3em 0.5em; width: 22em; }
tr.dead td { color: #9aa3ab; } .flag { font-size: 0.75em; padding: 0 0.3em; border-radius: 3px; }
.flag.starved, .flag.dead { background: #eceff2; color: #6b7680; } .flag.busy { background: #fbe3c8; color: #8a4b08; } .w { white-space: nowrap; } .v { color: #6b7680; font-size: 0.85em; }
.note { color: #5b6670; }
"""

#: Whether a unit matches the search box: any of its terms, each a whole top word (any case) or
#: ``#id``; an empty box matches every unit. ``words`` are the row's ``data-words`` (lowercase).
MATCH_JS = """
function unitMatches(query, unit, words) {
  const terms = query.toLowerCase().split(/\\s+/).filter(Boolean);
  return terms.length === 0 || terms.some(t => t.startsWith('#') ? t.slice(1) === String(unit) : words.includes(t));
}
"""

SCRIPT = MATCH_JS + """
const box = document.getElementById('unit-search');
const rows = Array.from(document.querySelectorAll('#unit-table tbody tr'));
const count = document.getElementById('unit-count');
const words = rows.map(row => JSON.parse(row.dataset.words));
box.addEventListener('input', () => {
  let shown = 0;
  rows.forEach((row, i) => {
    const ok = unitMatches(box.value, row.dataset.unit, words[i]);
    row.hidden = !ok;
    shown += ok;
  });
  count.textContent = shown + ' of ' + rows.length + ' units';
});
"""


def read_evaluation(run_dir: str | os.PathLike) -> dict | None:
    """``evaluation.json`` of a run directory, or ``None`` when it has none."""
    path = Path(run_dir) / "evaluation.json"
    return read_json(path) if path.is_file() else None


def write_report(
    run_dir: str | os.PathLike, codes: str | os.PathLike | Codes, out: str | os.PathLike, force: bool = False
) -> dict:
    """Write the HTML report of ``run_dir`` and its codes (a file or loaded :class:`Codes`) to ``out``.

    Returns a summary: out, units, words, epochs, evaluation (whether it was included), bytes.
    """
    check_output(out, force)
    logs = read_logs(run_dir)
    evaluation = read_evaluation(run_dir)
    if not isinstance(codes, Codes):
        codes = load_codes(codes)
    hidden = logs.config.get("hidden")
    if hidden is not None and hidden != codes.n_units:
        raise SparsecodeError(f"{codes.path or 'codes'}: has {codes.n_units} units but the run in {run_dir} has "
                              f"{hidden}; give the codes that 'sparsecode encode' wrote with this run")
    check_same_model(codes, load_run(run_dir)[0], run_dir)
    page = render_report(logs, codes, evaluation, title=str(run_dir))
    with atomic_output(out, force=force) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return {"out": str(Path(out)), "units": codes.n_units, "words": len(codes.words), "epochs": len(logs.metrics),
            "evaluation": evaluation is not None, "bytes": len(page.encode("utf-8"))}


def render_report(logs: RunLogs, codes: Codes, evaluation: dict | None, title: str) -> str:
    """The whole page as a string."""
    from . import __version__

    cfg = logs.config
    n, h = codes.shape
    head = (f"{n:,} words" + (f" × {cfg['d_in']} dimensions" if "d_in" in cfg else "")
            + f" → {h:,} units, k = {codes.attrs.get('encode_k', cfg.get('k', '?') if cfg.get('sparsity', 'topk') == 'topk' else 'none (' + cfg['sparsity'] + ')')} at encode time")
    coh = coherence_of_codes(codes)
    body = [
        f"<h1>sparsecode report: {escape(title)}</h1>",
        f'<p class="sub">{escape(head)}. Codes: {escape(codes.path or "(in memory)")}. sparsecode {__version__}.</p>',
        _final_section(logs.summary, codes, coh),
        _evaluation_section(evaluation),
        _training_section(logs.metrics),
        _frequency_section(codes),
        _l0_section(codes),
        _units_section(codes, coh),
        _config_section(cfg),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>sparsecode report: {escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n")


def _section(section_id: str, heading: str, *content: str) -> str:
    return f'<section id="{section_id}">\n<h2>{escape(heading)}</h2>\n' + "\n".join(content) + "\n</section>"


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), attrs: str = "") -> str:
    """An HTML table from already escaped cells; columns in ``numeric`` are right-aligned."""
    def cls(i: int) -> str:
        return ' class="num"' if i in numeric else ""

    head = "".join(f"<th{cls(i)}>{c}</th>" for i, c in enumerate(header))
    body = "\n".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table{attrs}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _value(key: str, value) -> str:
    """A figure as text: fractions as percentages, floats to 4 significant digits, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return escape(json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value))
    if key.endswith("_fraction"):
        return f"{100 * value:.2f} %"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _final_section(summary: dict, codes: Codes, coh) -> str:
    keys = [k for k in SUMMARY_FIGURES if k in summary] + [k for k in summary if k not in SUMMARY_FIGURES]
    rows = [[escape(k), _value(k, summary[k]), escape(SUMMARY_FIGURES.get(k, ""))] for k in keys]
    l0 = codes.l0()
    dead = int((codes.frequency == 0).sum())
    counts = [
        ["words", f"{len(codes.words):,}", "rows of the codes file"],
        ["units", f"{codes.n_units:,}", "hidden units H"],
        ["non-zeros", f"{codes.nnz:,}", "stored activations"],
        ["mean L0", f"{l0.mean():.2f}", "active units per word in the codes"],
        ["dead units", f"{dead:,}", "units no word of the codes uses"],
        ["all-zero codes", f"{int((l0 == 0).sum()):,}", "words with no active unit"],
    ]
    if coh is not None:
        c = coh.summary()
        show = lambda value, fmt: "—" if value is None else fmt.format(value)  # noqa: E731
        counts += [
            ["purity", show(c["purity"], "{:.3f}"), f"WordNet supersense purity (chance {c['chance']:.3f})"],
            ["strict purity", show(c["strict_purity"], "{:.3f}"),
             f"all top 10 words counted, unknown ones as misses (chance {c['strict_chance']:.3f})"],
            ["readable units", show(c["readable_units"], "{:.1%}"), "units with a strict purity of at least 0.5"],
            ["non-words", show(c["non_words"], "{:.1%}"), "top-10 words that are not words (digits, URLs, ...)"],
        ]
    return _section("final", "Final model",
                    '<p class="note">From <code>summary.json</code>: the final model over the whole training '
                    "vocabulary at the encode k.</p>",
                    _table(["figure", "value", "meaning"], rows, {1}),
                    "<p>The codes file:</p>", _table(["count", "value", "meaning"], counts, {1}))


def _flatten(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _evaluation_section(evaluation: dict | None) -> str:
    if evaluation is None:
        return _section("evaluation", "Evaluation",
                        '<p class="note">No <code>evaluation.json</code> in the run directory '
                        "(<code>sparsecode evaluate --json</code> writes one, when available).</p>")
    rows = [[escape(k), _value(k, v)] for k, v in _flatten(evaluation)]
    return _section("evaluation", "Evaluation", '<p class="note">From <code>evaluation.json</code>.</p>',
                    _table(["figure", "value"], rows, {1}))


def _training_section(metrics: list[dict]) -> str:
    epochs = [m.get("epoch", i) for i, m in enumerate(metrics, 1)]
    charts, notes = [], []
    for key, label, scale, log in (("loss", "loss", 1, True), ("fvu", "FVU", 1, True),
                                   ("dead_fraction", "dead units (%)", 100, False)):
        if all(key in m for m in metrics):
            ys = [scale * float(m[key]) for m in metrics]
            if key == "dead_fraction" and not any(ys):
                notes.append("No unit was dead in any epoch.")
                continue
            charts.append(line_chart(epochs, ys, f"{label} per epoch" + (" (log scale)" if log else ""), "epoch",
                                     label, y_from_zero=not log, log_y=log))
    columns = [c for c in ("epoch", "loss", "fvu", "mean_l0", "dead_fraction", "zero_rows_fraction", "k", "lr",
                           "seconds", "holdout_fvu", "holdout_dead_fraction", "holdout_mean_l0")
               if any(c in m for m in metrics)]
    rows = [[_value(c, m[c]) if c in m else "" for c in columns] for m in metrics]
    return _section("training", "Training",
                    '<p class="note">Per epoch, over that epoch\'s training batches (<code>metrics.jsonl</code>).'
                    + "".join(f" {escape(n)}" for n in notes) + "</p>",
                    f'<div class="charts">{"".join(charts)}</div>',
                    _table([escape(c) for c in columns], rows, set(range(len(columns)))))


def _frequency_section(codes: Codes) -> str:
    freq = codes.frequency
    used = freq[freq > 0]
    dead = int((freq == 0).sum())
    bal = balance_of_codes(codes)
    note = (f'<p class="note">How many words use each unit, on a log scale. {dead:,} dead unit(s) (used by no word) '
            f"are not in the histogram. Effective units {bal['effective_units']:.0f} of {codes.n_units:,}; "
            f"{bal['starved_units']:,} starved (fewer than {bal['even_share'] / EVEN_FACTOR:.1f} words), {bal['busy_units']:,} busy "
            f"(more than {bal['even_share'] * EVEN_FACTOR:.0f}); the busiest unit is used by {100 * bal['busiest_rate']:.1f}% of the "
            f"words; the top 10% of units hold {100 * bal['top10_mass_share']:.1f}% of the activation mass.</p>")
    if used.size == 0:
        return _section("frequency", "Unit frequency", note)
    width = 0.25
    top = max(math.log10(used.max()), width)
    edges = np.arange(0, top + width, width)
    counts, _ = np.histogram(np.log10(used), bins=np.append(edges[:-1], edges[-1] + 1e-9))
    lefts = edges[:-1].tolist()
    titles = [f"{math.ceil(10 ** a):,}–{math.floor(10 ** (a + width) - 1e-9):,} words: {c:,} units"
              for a, c in zip(lefts, counts)]
    chart = histogram(lefts, width, counts.tolist(), "units by number of words using them", "words using the unit",
                      "units", titles, x_tick_label=lambda t: f"{10 ** t:,.0f}" if float(t).is_integer() else "")
    return _section("frequency", "Unit frequency", note, f'<div class="charts">{chart}</div>')


def _l0_section(codes: Codes) -> str:
    l0 = codes.l0()
    top = int(l0.max())
    width = max(1, math.ceil((top + 1) / 60))
    lefts = list(range(0, top + 1, width))
    counts = [int(((l0 >= a) & (l0 < a + width)).sum()) for a in lefts]
    titles = [f"{a if width == 1 else f'{a}–{a + width - 1}'} active units: {c:,} words" for a, c in zip(lefts, counts)]
    chart = histogram([a - 0.5 for a in lefts], width, counts, "words by number of active units", "active units (L0)",
                      "words", titles)
    return _section("l0", "Active units per word (L0)",
                    f'<p class="note">Mean {l0.mean():.2f}, from {int(l0.min())} to {top}.</p>',
                    f'<div class="charts">{chart}</div>')


def _units_section(codes: Codes, coh) -> str:
    n = len(codes.words)
    rows = []
    for entry in unit_table(codes, coh=coh):
        unit, freq = entry["unit"], entry["frequency"]
        top = codes.top_words(unit)
        words = ", ".join(f'<span class="w">{escape(w)} <span class="v">{v:.3f}</span></span>' for w, v in top)
        use = "dead" if freq == 0 else entry["use"]
        flag = f' <span class="flag {use}">{use}</span>' if use else ""
        purity = "—" if entry["purity"] is None else f"{entry['purity']:.2f}"
        strict = "—" if entry["strict_purity"] is None else f"{entry['strict_purity']:.1f}"
        data_words = escape(json.dumps([w.lower() for w, _ in top], ensure_ascii=False))
        row_class = f' class="{use}"' if use else ""
        rows.append(f'<tr id="unit-{unit}" data-unit="{unit}" data-words="{data_words}"{row_class}>'
                    f'<td class="num">{unit}</td><td class="num">{freq:,}{flag}</td><td class="num">{100 * freq / n:.2f} %</td>'
                    f'<td class="num">{purity}</td><td class="num">{strict}</td><td>{words}</td></tr>')
    table = ('<table id="unit-table">\n<thead><tr><th class="num">unit</th><th class="num">words</th>'
             '<th class="num">share</th><th class="num">purity</th><th class="num">strict</th>'
             '<th>top words (activation)</th></tr></thead>\n<tbody>\n'
             + "\n".join(rows) + "\n</tbody>\n</table>")
    search = ('<p><input id="unit-search" type="search" placeholder="filter: words or #unit" '
              f'aria-label="filter units"> <span id="unit-count">{codes.n_units} of {codes.n_units} units</span></p>')
    return _section("units", "Units", '<p class="note">Every unit with the number of words that use it (flagged '
                    "<b>starved</b> below a tenth of the even share, <b>busy</b> above ten times it), its WordNet "
                    "supersense purity and strict purity (see the README's Evaluation) and its strongest words. Type words to keep the "
                    "units that have any of them among their top words (whole words, any case), or <code>#42</code> "
                    "for unit 42.</p>", search, table)


def _config_section(config: dict) -> str:
    rows = [[escape(k), _value(k, v)] for k, v in config.items()]
    return _section("config", "Run settings", '<p class="note">From <code>config.json</code>.</p>',
                    _table(["setting", "value"], rows))
