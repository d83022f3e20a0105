"""Inline SVG charts for the HTML reports: horizontal bars and latency distributions.

Every chart is one ``<svg>`` element with an ``id``, a ``<title>`` (what the chart shows)
and a ``role="img"``; every label is escaped, since layer and model names come from users.
Nothing here draws with JavaScript or fetches anything: the page is a single file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Callable

WIDTH = 720
LABEL_W = 210
VALUE_W = 150
ROW_H = 22
PAD = 8


@dataclass(frozen=True)
class Bar:
    """One bar: ``label`` on the left, ``text`` (the value as read) on the right;
    ``lo``/``hi`` draw a whisker (a p90, an error band); ``series`` picks its colour."""

    label: str
    value: float
    text: str
    series: str = "a"
    lo: float | None = None
    hi: float | None = None
    hint: str = ""


def _open(chart_id: str, title: str, height: float) -> str:
    return (f'<svg id="{escape(chart_id)}" class="chart" role="img" width="{WIDTH}" '
            f'height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>')


def _axis(x0: float, x1: float, y: float, top: float, ticks: list[tuple[float, str]]) -> str:
    out = [f'<line class="axis" x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}"/>']
    for x, text in ticks:
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{y + 13:.1f}" text-anchor="middle">'
                   f'{escape(text)}</text>')
    return "".join(out)


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(count + 2) if first + i * step <= hi + step * 1e-9]


def bars(chart_id: str, title: str, rows: list[Bar], fmt: Callable[[float], str],
         legend: dict[str, str] | None = None) -> str:
    """A horizontal bar chart from 0; ``fmt`` writes the axis ticks."""
    rows = [r for r in rows if r.value is not None and math.isfinite(r.value)]
    top = PAD + (18 if legend else 0)
    height = top + max(len(rows), 1) * ROW_H + 24
    x0, x1 = LABEL_W, WIDTH - VALUE_W
    peak = max([max(r.value, r.hi or 0) for r in rows] + [0]) or 1.0
    scale = (x1 - x0) / peak
    out = [_open(chart_id, title, height)]
    if legend:
        x = x0
        for series, name in legend.items():
            out.append(f'<rect class="s-{escape(series)}" x="{x}" y="{PAD}" width="10" height="10"/>'
                       f'<text class="legend" x="{x + 14}" y="{PAD + 9}">{escape(name)}</text>')
            x += 24 + 7 * len(name)
    for i, row in enumerate(rows):
        y = top + i * ROW_H
        w = max(row.value * scale, 0.5)
        tip = escape(f"{row.label}: {row.text}" + (f" ({row.hint})" if row.hint else ""))
        out.append(f'<g class="bar"><title>{tip}</title>'
                   f'<text class="label" x="{x0 - 6}" y="{y + 15}" text-anchor="end">{escape(_clip(row.label))}</text>'
                   f'<rect class="s-{escape(row.series)}" x="{x0}" y="{y + 4}" width="{w:.1f}" height="{ROW_H - 8}"/>')
        if row.lo is not None and row.hi is not None:
            a, b = x0 + row.lo * scale, x0 + row.hi * scale
            out.append(f'<line class="whisker" x1="{a:.1f}" y1="{y + 11}" x2="{b:.1f}" y2="{y + 11}"/>'
                       f'<line class="whisker" x1="{b:.1f}" y1="{y + 6}" x2="{b:.1f}" y2="{y + 16}"/>')
        out.append(f'<text class="value" x="{x1 + 6}" y="{y + 15}">{escape(row.text)}</text></g>')
    axis_y = top + len(rows) * ROW_H + 2
    out.append(_axis(x0, x1, axis_y, top, [(x0 + t * scale, fmt(t)) for t in nice_ticks(0, peak)]))
    out.append("</svg>")
    return "".join(out)


def quartiles(samples: list[float]) -> tuple[float, float, float]:
    s = sorted(samples)

    def at(q: float) -> float:
        pos = q * (len(s) - 1)
        lo = math.floor(pos)
        return s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (pos - lo)

    return at(0.25), at(0.5), at(0.75)


def distribution(chart_id: str, title: str, rows: list[tuple[str, list[float]]],
                 fmt: Callable[[float], str], max_points: int = 200) -> str:
    """A box (quartiles, median) over a strip of every sample (at most ``max_points`` per
    row, evenly chosen from the sorted samples), one row per artifact, on a shared axis."""
    rows = [(label, [v for v in samples if math.isfinite(v) and v > 0]) for label, samples in rows]
    rows = [(label, samples) for label, samples in rows if samples]
    every = [v for _, samples in rows for v in samples] or [1.0, 2.0]
    lo, hi = min(every), max(every)
    log = hi / lo > 20   # a few slow outliers would squeeze every box into one pixel
    if log:
        lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
        ticks = [lo * 10 ** k for k in range(round(math.log10(hi / lo)) + 1)]
    else:
        span = (hi - lo) or max(abs(hi), 1e-9)
        lo, hi = max(lo - 0.05 * span, 0.0), hi + 0.05 * span
        ticks = nice_ticks(lo, hi)
    row_h = 34
    top = PAD
    height = top + max(len(rows), 1) * row_h + 24
    x0, x1 = LABEL_W, WIDTH - VALUE_W
    where = (lambda v: math.log10(v)) if log else (lambda v: v)
    scale = (x1 - x0) / (where(hi) - where(lo))

    def px(v: float) -> float:
        return x0 + (where(v) - where(lo)) * scale

    if log:
        title += " (logarithmic axis)"
    out = [_open(chart_id, title, height)]
    for i, (label, samples) in enumerate(rows):
        y = top + i * row_h
        q1, med, q3 = quartiles(samples)
        shown = sorted(samples)
        if len(shown) > max_points:
            shown = [shown[round(k * (len(shown) - 1) / (max_points - 1))] for k in range(max_points)]
        text = f"median {fmt(med)}, IQR {fmt(q1)}-{fmt(q3)}, n={len(samples)}"
        out.append(f'<g class="dist"><title>{escape(label)}: {escape(text)}</title>'
                   f'<text class="label" x="{x0 - 6}" y="{y + 20}" text-anchor="end">{escape(_clip(label))}</text>')
        for k, v in enumerate(shown):
            jitter = ((k * 7919) % 11 - 5) * 1.4   # deterministic spread, same page for same data
            out.append(f'<circle class="pt" cx="{px(v):.1f}" cy="{y + 16 + jitter:.1f}" r="1.6"/>')
        out.append(f'<rect class="box" x="{px(q1):.1f}" y="{y + 6}" '
                   f'width="{max(px(q3) - px(q1), 1):.1f}" height="20"/>'
                   f'<line class="median" x1="{px(med):.1f}" y1="{y + 4}" x2="{px(med):.1f}" y2="{y + 28}"/>'
                   f'<text class="value" x="{x1 + 6}" y="{y + 20}">{escape(fmt(med))} median</text></g>')
    axis_y = top + len(rows) * row_h + 2
    out.append(_axis(x0, x1, axis_y, top, [(px(t), fmt(t)) for t in ticks if t > 0 or not log]))
    out.append("</svg>")
    return "".join(out)


def _clip(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
