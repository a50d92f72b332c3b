"""Small inline SVG charts for the HTML report: a line chart and a histogram, nothing else.

Each function returns one ``<svg>`` element as a string, sized by its ``viewBox`` (the page's CSS
scales it), styled by class names (``axis``, ``line``, ``point``, ``bar``), with a ``<title>`` on
every point and bar so that hovering shows the exact value, without JavaScript.
"""

from __future__ import annotations

import math
from html import escape
from typing import Callable, Sequence

WIDTH, HEIGHT = 420, 240
LEFT, RIGHT, TOP, BOTTOM = 58, 22, 28, 44


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering ``[lo, hi]``, about
    ``target`` of them (a step up to 30% below the even one: 0.08 to 0.18 gets five, not two)."""
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 5, 10) if s * mag >= 0.7 * raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(i * step, 12) for i in range(first, math.floor(hi / step + 1e-9) + 1)]


def format_number(v: float) -> str:
    """Compact tick label: ``0.02``, ``1.5``, ``1,200``, ``3e-05``."""
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) < 1e-3:
        return f"{v:.0e}"
    return f"{v:.4g}"


class _Frame:
    """Maps data coordinates to the plot area and draws the axes."""

    def __init__(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float):
        self.x_lo, self.x_hi = (x_lo, x_hi) if x_hi > x_lo else (x_lo - 0.5, x_hi + 0.5)
        self.y_lo, self.y_hi = (y_lo, y_hi) if y_hi > y_lo else (y_lo - 0.5, y_hi + 0.5)

    def x(self, v: float) -> float:
        return LEFT + (v - self.x_lo) / (self.x_hi - self.x_lo) * (WIDTH - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return HEIGHT - BOTTOM - (v - self.y_lo) / (self.y_hi - self.y_lo) * (HEIGHT - TOP - BOTTOM)

    def axes(self, title: str, x_label: str, y_label: str, x_ticks: Sequence[float], y_ticks: Sequence[float],
             x_tick_label: Callable[[float], str] = format_number,
             y_tick_label: Callable[[float], str] = format_number) -> list[str]:
        bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
        parts = [f'<text class="title" x="{LEFT}" y="16">{escape(title)}</text>',
                 f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/>',
                 f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>']
        for t in x_ticks:
            if self.x_lo <= t <= self.x_hi:
                x = self.x(t)
                parts.append(f'<line class="tick" x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}"/>'
                             f'<text class="tick-label" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
                             f"{escape(x_tick_label(t))}</text>")
        for t in y_ticks:
            if self.y_lo <= t <= self.y_hi:
                y = self.y(t)
                parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>'
                             f'<text class="tick-label" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                             f"{escape(y_tick_label(t))}</text>")
        parts.append(f'<text class="axis-label" x="{(LEFT + right) / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                     f"{escape(x_label)}</text>")
        parts.append(f'<text class="axis-label" transform="rotate(-90)" x="{-(TOP + bottom) / 2:.1f}" y="13" '
                     f'text-anchor="middle">{escape(y_label)}</text>')
        return parts


def _svg(title: str, parts: list[str]) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
            + "".join(parts) + "</svg>")


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values for a log axis over ``[lo, hi]`` (both > 0): the powers of ten inside it, or,
    when fewer than two are, the 1-2-5 sequence (then every 1-9 multiple, for a narrow range)."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in ((1,), (1, 2, 5), range(1, 10)):
        ticks = [round(m * 10.0**e, 12) for e in range(first, last + 1) for m in mantissas]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 2:
            return ticks
    return ticks


def spans_a_decade(ys: Sequence[float]) -> bool:
    """Whether a log axis serves ``ys``: all positive, the largest at least ten times the smallest.
    Over a narrower range a log axis only crowds its labels (0.08, 0.09, 0.1) at one end."""
    return min(ys) > 0 and max(ys) >= 10 * min(ys)


def line_chart(xs: Sequence[float], ys: Sequence[float], title: str, x_label: str, y_label: str,
               y_from_zero: bool = False, value_format: str = "{:.4g}", log_y: bool = False) -> str:
    """A line through ``(xs[i], ys[i])`` with a dot per point titled ``x_label x: value``.

    ``log_y`` draws the y axis on a log scale when the values span a decade (:func:`spans_a_decade`),
    so that a first epoch far above the rest does not flatten them. ``y_from_zero``: the y axis
    starts at 0 (or below, for negative values), so that a small change looks small."""
    log_y = log_y and spans_a_decade(ys)
    at = (lambda v: math.log10(v)) if log_y else (lambda v: v)  # noqa: E731 - data value -> axis coordinate
    y_lo = min(0.0, min(ys)) if y_from_zero and not log_y else at(min(ys))
    y_hi = at(max(ys)) if at(max(ys)) > y_lo or not y_from_zero else 1.0
    y_pad = (y_hi - y_lo) * 0.05 if y_hi > y_lo else (0.05 if log_y else 0.0)
    x_pad = (max(xs) - min(xs)) * 0.04
    frame = _Frame(min(xs) - x_pad, max(xs) + x_pad, y_lo if y_from_zero and not log_y else y_lo - y_pad, y_hi + y_pad)
    x_ticks = nice_ticks(frame.x_lo, frame.x_hi)
    if all(float(x).is_integer() for x in xs):  # epochs: whole numbers only, none before the first
        x_ticks = [t for t in x_ticks if float(t).is_integer() and min(xs) <= t <= max(xs)]
    if log_y:
        values = log_ticks(10**frame.y_lo, 10**frame.y_hi)
        parts = frame.axes(title, x_label, y_label, x_ticks, [math.log10(v) for v in values],
                           y_tick_label=lambda t: format_number(round(10**t, 12)))
    else:
        parts = frame.axes(title, x_label, y_label, x_ticks, nice_ticks(frame.y_lo, frame.y_hi))
    points = " ".join(f"{frame.x(x):.1f},{frame.y(at(y)):.1f}" for x, y in zip(xs, ys))
    parts.append(f'<polyline class="line" points="{points}"/>')
    for x, y in zip(xs, ys):
        parts.append(f'<circle class="point" cx="{frame.x(x):.1f}" cy="{frame.y(at(y)):.1f}" r="3">'
                     f"<title>{escape(x_label)} {format_number(x)}: {value_format.format(y)}</title></circle>")
    return _svg(title, parts)


def histogram(lefts: Sequence[float], width: float, counts: Sequence[int], title: str, x_label: str, y_label: str,
              bar_titles: Sequence[str], x_tick_label: Callable[[float], str] = format_number) -> str:
    """Bars ``[lefts[i], lefts[i] + width)`` of height ``counts[i]``, each titled ``bar_titles[i]``."""
    frame = _Frame(min(lefts), max(lefts) + width, 0, max(max(counts), 1) * 1.05)
    parts = frame.axes(title, x_label, y_label, nice_ticks(frame.x_lo, frame.x_hi), nice_ticks(0, frame.y_hi),
                       x_tick_label)
    base = frame.y(0)
    for left, count, bar_title in zip(lefts, counts, bar_titles):
        x0, x1, top = frame.x(left), frame.x(left + width), frame.y(count)
        parts.append(f'<rect class="bar" x="{x0 + 0.5:.1f}" y="{top:.1f}" width="{max(x1 - x0 - 1, 0.5):.1f}" '
                     f'height="{base - top:.1f}"><title>{escape(bar_title)}</title></rect>')
    return _svg(title, parts)
