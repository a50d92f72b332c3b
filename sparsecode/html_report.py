"""One self-contained HTML page about a run and its codes.

The page has no external resource (styles inline, charts as inline SVG, a few dozen lines of
plain JavaScript for the search box and its data; without JavaScript every row simply stays
visible). Sections, each
a ``<section id=...>``:

- ``final``: the final model's figures (``summary.json``) and the codes' own counts;
- ``evaluation``: ``evaluation.json`` from the run directory, when there is one (written by
  ``sparsecode evaluate --json`` when available);
- ``training``: loss and FVU per epoch (``metrics.jsonl``) on log axes, dead units when any epoch
  had some, as charts and a table;
- ``frequency``: histogram of how many words use each unit (log scale; dead units counted apart);
- ``l0``: histogram of active units per word;
- ``units``: every unit with its word count and top words with their activations; searching a
  word shows the units its code uses, strongest first (every word's units are on the page,
  :func:`word_units_data`), ``#id`` one unit;
- ``config``: every setting of the run (``config.json``).
"""

from __future__ import annotations

import base64
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
from .svg import histogram, line_chart, spans_a_decade
from .terminal import html as shown
from .rundir import RunLogs, load_run, read_json, read_logs

#: The figures of ``summary.json`` and ``metrics.jsonl`` in words: key -> (name, what it means), in
#: the order the final model's table shows them; a key not here shows as its words (``a_b``: "a b").
#: Fractions and rates are shown as percentages.
FIGURES = {
    "fvu": ("FVU", "variance the reconstructions leave unexplained (0: exact; 1: no better than the mean)"),
    "cosine": ("cosine(x, x̂)", "mean cosine between a vector and its reconstruction"),
    "mean_l0": ("mean L0", "active units per word"),
    "dead_fraction": ("dead units", "units that no word uses"),
    "always_on_fraction": ("always-on units", "units used by more than half of the words"),
    "zero_rows_fraction": ("all-zero codes", "words whose code is all zeros"),
    "effective_units": ("effective units", "exp(entropy) of unit use: this many units used evenly"),
    "starved_fraction": ("starved units", f"units used by fewer than 1/{EVEN_FACTOR:g} of the even share of words"),
    "busy_units": ("busy units", f"units used by more than {EVEN_FACTOR:g} times the even share of words"),
    "busiest_rate": ("busiest unit", "share of the words that use the busiest unit"),
    "k": ("k", "active units per word at encode time"),
    "train_seconds": ("training time (s)", "wall-clock seconds"),
    "epoch": ("epoch", ""),
    "loss": ("loss", "the objective (for topk: the batch's FVU)"),
    "lr": ("learning rate", ""),
    "seconds": ("time (s)", ""),
    "holdout_fvu": ("held-out FVU", "FVU of the words kept out of training"),
    "holdout_dead_fraction": ("held-out dead units", "units no held-out word uses"),
    "holdout_mean_l0": ("held-out mean L0", "active units per held-out word"),
    "holdout_cosine": ("held-out cosine", "mean cosine of the held-out words"),
    "holdout_words": ("held-out words", "words kept out of training"),
}


def figure_name(key: str) -> str:
    """A figure's name in words (:data:`FIGURES`)."""
    return FIGURES[key][0] if key in FIGURES else key.replace("_", " ")


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 1.2em 3em; color: #1d232a; }
h1 { margin-bottom: 0.1em; } .sub { color: #5b6670; margin-top: 0; }
section { margin-top: 2.2em; } h2 { border-bottom: 1px solid #d5dbe1; padding-bottom: 0.2em; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.7em; text-align: left; vertical-align: top; }
th { background: #eef1f4; } tr:nth-child(even) td { background: #f8f9fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
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

#: The search box: the units a query asks for, in the order to show them, or ``null`` for every unit
#: (an empty box). Each term is ``#id`` (that unit) or a word, any case: the units its code uses,
#: strongest first (every word of the vocabulary that is that word in some case). ``unitsOf(term)``
#: gives a word's units; ``wordUnits`` makes it from the page's data (:func:`word_units_data`).
MATCH_JS = """
function matchingUnits(query, unitsOf) {
  const terms = query.toLowerCase().split(/\\s+/).filter(Boolean);
  if (terms.length === 0) return null;
  const units = [], missing = [];
  for (const t of terms) {
    const found = t.startsWith('#') ? [t.slice(1)] : unitsOf(t).map(String);
    if (found.length === 0) missing.push(t);
    for (const u of found) if (!units.includes(u)) units.push(u);
  }
  units.missing = missing;
  return units;
}
function wordUnits(data) {
  const decode = (text, Type) => {
    const bytes = Uint8Array.from(atob(text), c => c.charCodeAt(0));
    return new Type(bytes.buffer);
  };
  const Type = data.unit_bytes === 2 ? Uint16Array : Uint32Array;
  const counts = decode(data.counts, Type), units = decode(data.units, Type);
  const byWord = new Map();
  let start = 0;
  data.words.forEach((w, i) => {
    const key = w.toLowerCase(), end = start + counts[i];
    byWord.set(key, (byWord.get(key) || []).concat(Array.from(units.subarray(start, end))));
    start = end;
  });
  return word => byWord.get(word) || [];
}
"""

SCRIPT = MATCH_JS + """
const box = document.getElementById('unit-search');
const tbody = document.querySelector('#unit-table tbody');
const rows = Array.from(tbody.rows);
const byUnit = new Map(rows.map(row => [row.dataset.unit, row]));
const count = document.getElementById('unit-count');
let unitsOf = null;
box.addEventListener('input', () => {
  unitsOf = unitsOf || wordUnits(JSON.parse(document.getElementById('word-units').textContent));
  const units = matchingUnits(box.value, unitsOf);
  const shown = units === null ? rows : units.map(u => byUnit.get(u)).filter(Boolean);
  rows.forEach(row => { row.hidden = true; });
  shown.forEach(row => { row.hidden = false; tbody.appendChild(row); });
  if (units === null) rows.forEach(row => tbody.appendChild(row));
  count.textContent = shown.length + ' of ' + rows.length + ' units'
    + (units && units.missing.length ? '; not in the vocabulary: ' + units.missing.join(' ') : '');
});
"""


def word_units_data(codes: Codes) -> dict:
    """What the search box needs to find the units a word uses: the words, and for each its active
    units, strongest first, as little-endian unsigned integers (2 bytes each while there are fewer
    than 65,536 units, else 4) in base64: ``counts`` (units per word) and ``units`` (all, word after word).
    For 50,000 words at k=32 (with the words) that is 4.9 MB of a 5.7 MB page."""
    n = len(codes.words)
    counts = np.diff(codes.indptr)
    rows = np.repeat(np.arange(n), counts)
    order = np.lexsort((-np.abs(codes.data), rows))  # word by word, the strongest activation first
    dtype = "<u2" if codes.n_units < 1 << 16 else "<u4"  # a count reaches n_units
    return {"words": list(codes.words), "unit_bytes": np.dtype(dtype).itemsize,
            "counts": base64.b64encode(counts.astype(dtype).tobytes()).decode("ascii"),
            "units": base64.b64encode(codes.indices[order].astype(dtype).tobytes()).decode("ascii")}


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
        f"<h1>sparsecode report: {shown(title)}</h1>",
        f'<p class="sub">{escape(head)}. Codes: {shown(codes.path or "(in memory)")}. sparsecode {__version__}.</p>',
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
            f"<title>sparsecode report: {shown(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
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
        return shown(json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value)
    if key.endswith(("_fraction", "_rate")):
        return f"{100 * value:.2f} %"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _final_section(summary: dict, codes: Codes, coh) -> str:
    keys = [k for k in FIGURES if k in summary] + [k for k in summary if k not in FIGURES]
    rows = [[f'<span class="w">{escape(figure_name(k))}</span>', _value(k, summary[k]),
             escape(FIGURES.get(k, ("", ""))[1])] for k in keys]
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


def _at(data: dict, path: str):
    """``data["a"]["b"]`` for ``"a.b"``; None where any part is missing."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


#: The evaluation table (``evaluation.json`` as ``sparsecode evaluate --json`` writes it), codes
#: beside the dense vectors: (what, the codes' figure, the dense vectors' figure or None, format),
#: figures as paths into the JSON. A row shows when its codes figure was measured; a new figure is
#: one more line here.
EVALUATION_ROWS = [
    ("FVU (0: exact; 1: no better than the mean vector)", "reconstruction.fvu", None, "{:.4f}".format),
    ("cosine(x, x̂)", "reconstruction.cosine", None, "{:.4f}".format),
    ("mean L0: active units per word (dense: its dimensions)", "sparsity.mean_l0", "dist_ratio.dense.dimensions",
     lambda v: f"{v:,}" if isinstance(v, int) else f"{v:.2f}"),
    ("dead units (used by no word)", "sparsity.dead_fraction", None, _percent),
    ("always-on units (used by more than half of the words)", "sparsity.always_on_units", None, "{:,}".format),
    ("all-zero codes", "sparsity.zero_rows_fraction", None, _percent),
    ("effective units: exp(entropy) of unit use", "balance.effective_units", None, "{:,.0f}".format),
    ("starved units", "balance.starved_fraction", None, _percent),
    ("busy units", "balance.busy_units", None, "{:,}".format),
    ("share of the words that use the busiest unit", "balance.busiest_rate", None, _percent),
    ("activation mass in the top 10% of units", "balance.top10_mass_share", None, _percent),
    ("purity: WordNet supersenses of a unit's top words", "coherence.purity", "coherence.dense", "{:.3f}".format),
    ("purity of random words (chance)", "coherence.chance", "coherence.chance", "{:.3f}".format),
    ("word similarity: Spearman, average of WS-353, SimLex, MEN, RW", "word_similarity.codes_average",
     "word_similarity.dense_average", "{:.3f}".format),
    ("DistRatio (higher: more coherent dimensions)", "dist_ratio.codes.dist_ratio", "dist_ratio.dense.dist_ratio",
     "{:.3f}".format),
]


def evaluation_rows(evaluation: dict) -> list[tuple[str, str, str]]:
    """(what, codes, dense) as text for every row of :data:`EVALUATION_ROWS` measured in ``evaluation``."""
    rows = []
    for name, codes_path, dense_path, fmt in EVALUATION_ROWS:
        value = _at(evaluation, codes_path)
        if value is None:
            continue
        dense = _at(evaluation, dense_path) if dense_path else None
        rows.append((name, fmt(value), "—" if dense is None else fmt(dense)))
    return rows


def _evaluation_section(evaluation: dict | None) -> str:
    if evaluation is None:
        return _section("evaluation", "Evaluation",
                        '<p class="note">No <code>evaluation.json</code> in the run directory '
                        "(<code>sparsecode evaluate CODES.h5 --json &gt; RUN_DIR/evaluation.json</code> writes one).</p>")
    parts = [_table(["measure", "codes", "dense"], [[escape(n), c, d] for n, c, d in evaluation_rows(evaluation)],
                    {1, 2})]
    ws = evaluation.get("word_similarity", {})
    if ws.get("codes"):
        dense = ws.get("dense", {})
        bench = [[shown(name), f"{e['found']:,} of {e['pairs']:,}", _score(e.get("spearman")),
                  _score(dense.get(name, {}).get("spearman"))] for name, e in ws["codes"].items()]
        parts += ["<p>Word similarity per benchmark (Spearman correlation of cosine with human ratings, over the "
                  "pairs whose words are in the vocabulary):</p>",
                  _table(["benchmark", "pairs found", "codes", "dense"], bench, {1, 2, 3})]
    methods = dict(evaluation.get("methods") or {})
    if methods:
        k = methods.pop("k", "?")
        rows = [[shown(name), f"{m['fvu']:.4f}", f"{m['cosine']:.4f}", f"{m['mean_l0']:.1f}",
                 _percent(m["dead_fraction"]), f"{m['seconds']:.1f}"] for name, m in methods.items()]
        parts += [f"<p>Encoding methods at k = {escape(str(k))}, whole vocabulary:</p>",
                  _table(["method", "FVU", "cosine", "mean L0", "dead units", "time (s)"], rows, {1, 2, 3, 4, 5})]
    return _section("evaluation", "Evaluation", '<p class="note">From <code>evaluation.json</code> '
                    "(<code>sparsecode evaluate --json</code>): the codes beside the dense vectors they encode.</p>",
                    *parts)


def _score(value) -> str:
    return "—" if value is None else f"{value:.3f}"


#: How far the loss may stray from the FVU (relatively, in every epoch) and still be the same curve.
SAME_CURVE = 0.01


def _training_section(metrics: list[dict]) -> str:
    """FVU per epoch; the loss beside it only where it differs from the FVU (an objective's
    penalties): for topk the loss is the FVU of the batch, and two charts drew one curve twice."""
    epochs = [m.get("epoch", i) for i, m in enumerate(metrics, 1)]
    charts, notes = [], []
    series = {key: [float(m[key]) for m in metrics] for key in ("loss", "fvu", "dead_fraction")
              if all(key in m for m in metrics)}
    loss, fvu = series.get("loss"), series.get("fvu")
    same = loss is not None and fvu is not None and all(abs(a - b) <= SAME_CURVE * abs(b) for a, b in zip(loss, fvu))
    if same:
        notes.append(f"The loss equals the FVU within {SAME_CURVE:.0%} in every epoch (no penalty term): one chart.")
    for key, label in (("fvu", "FVU"), ("loss", "loss")):
        if key in series and not (key == "loss" and same):
            charts.append(line_chart(epochs, series[key], f"{label} per epoch" + (" (log scale)" if spans_a_decade(
                series[key]) else ""), "epoch", label, log_y=True))
    if "dead_fraction" in series:
        dead = [100 * v for v in series["dead_fraction"]]
        if any(dead):
            charts.append(line_chart(epochs, dead, "dead units (%) per epoch", "epoch", "dead units (%)", y_from_zero=True))
        else:
            notes.append("No unit was dead in any epoch.")
    columns = [c for c in ("epoch", "loss", "fvu", "mean_l0", "dead_fraction", "zero_rows_fraction", "k", "lr",
                           "seconds", "holdout_fvu", "holdout_dead_fraction", "holdout_mean_l0")
               if any(c in m for m in metrics)]
    rows = [[_value(c, m[c]) if c in m else "" for c in columns] for m in metrics]
    return _section("training", "Training",
                    '<p class="note">Per epoch, over that epoch\'s training batches (<code>metrics.jsonl</code>).'
                    + "".join(f" {escape(n)}" for n in notes) + "</p>",
                    f'<div class="charts">{"".join(charts)}</div>',
                    _table([escape(figure_name(c)) for c in columns], rows, set(range(len(columns)))))


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
        words = ", ".join(f'<span class="w">{shown(w)} <span class="v">{v:.3f}</span></span>' for w, v in top)
        use = "dead" if freq == 0 else entry["use"]
        flag = f' <span class="flag {use}">{use}</span>' if use else ""
        purity = "—" if entry["purity"] is None else f"{entry['purity']:.2f}"
        strict = "—" if entry["strict_purity"] is None else f"{entry['strict_purity']:.1f}"
        row_class = f' class="{use}"' if use else ""
        rows.append(f'<tr id="unit-{unit}" data-unit="{unit}"{row_class}>'
                    f'<td class="num">{unit}</td><td class="num">{freq:,}{flag}</td><td class="num">{100 * freq / n:.2f} %</td>'
                    f'<td class="num">{purity}</td><td class="num">{strict}</td><td>{escape(entry["name"]["label"])}</td>'
                    f'<td>{words}</td></tr>')
    table = ('<table id="unit-table">\n<thead><tr><th class="num">unit</th><th class="num">words</th>'
             '<th class="num">share</th><th class="num">purity</th><th class="num">strict</th><th>name (WordNet)</th>'
             '<th>top words (activation)</th></tr></thead>\n<tbody>\n'
             + "\n".join(rows) + "\n</tbody>\n</table>")
    search = ('<p><input id="unit-search" type="search" placeholder="a word, or #unit" '
              f'aria-label="filter units"> <span id="unit-count">{codes.n_units} of {codes.n_units} units</span></p>')
    # JSON in a data block: only '<' could end it early ('</script>' in a word), so it is escaped.
    data = json.dumps(word_units_data(codes), ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return _section("units", "Units", '<p class="note">Every unit with the number of words that use it (flagged '
                    "<b>starved</b> below a tenth of the even share, <b>busy</b> above ten times it), its WordNet "
                    "supersense purity and strict purity, its name from WordNet (the most specific hypernym shared "
                    "by at least half of its known top words, with that share, and their dominant supersense; see "
                    "docs/evaluation.md) and its strongest words. Type a word (any case) "
                    "to see the units its code uses, strongest first; several words: the units any of them uses; "
                    "<code>#42</code>: unit 42.</p>", search, table,
                    f'<script type="application/json" id="word-units">{data}</script>')


def _config_section(config: dict) -> str:
    rows = [[escape(k), _value(k, v)] for k, v in config.items()]
    return _section("config", "Run settings", '<p class="note">From <code>config.json</code>.</p>',
                    _table(["setting", "value"], rows))
