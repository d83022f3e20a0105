"""The page around the charts: one self-contained HTML document (inline CSS, no scripts,
no network), tables, and figures written in units a reader takes in at a glance."""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any, Iterable

from ..units import size_bytes

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#fff}
main{max-width:1000px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:14px;margin:16px 0 4px}
.sub{color:#57606a;margin:0 0 12px}
.verdict{display:flex;gap:16px;align-items:center;padding:12px 16px;border-radius:8px;margin:12px 0}
.verdict.pass{background:#dafbe1;border:1px solid #4ac26b}.verdict.fail{background:#ffebe9;border:1px solid #ff8182}
.verdict .big{font-size:26px;font-weight:700;letter-spacing:.03em}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid #e5e8eb;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.v-pass,.v-unchanged,.v-within,.v-improved{color:#116329;font-weight:600}
.v-fail,.v-regressed,.v-missing,.v-incomparable{color:#a40e26;font-weight:600}
.v-not_measured,.v-not_compared,.v-new,.v-shown{color:#7d4e00;font-weight:600}
.note{color:#57606a;font-size:12px}
.tag{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;background:#eef1f4;color:#424a53;margin-left:6px}
.tag.est{background:#fff8c5;color:#7d4e00}
svg.chart{display:block;margin:4px 0 12px;font-size:11px}
svg .label,svg .value,svg .legend{fill:#24292f}svg .tick{fill:#57606a;font-size:10px}
svg .axis{stroke:#8c959f}svg .grid{stroke:#eaeef2}
svg .s-a{fill:#0969da}svg .s-b{fill:#8fb8ed}svg .s-host{fill:#8c959f}svg .s-est{fill:#d4a72c}
svg .s-deploy{fill:#1a7f37}svg .s-fail{fill:#cf222e}
svg .whisker{stroke:#24292f;stroke-width:1.2}
svg .box{fill:#0969da;fill-opacity:.18;stroke:#0969da}svg .median{stroke:#0550ae;stroke-width:2.5}
svg .pt{fill:#24292f;fill-opacity:.35}
pre{background:#f6f8fa;padding:10px;border-radius:6px;overflow:auto;font-size:12px;max-height:420px}
ul{padding-left:20px}li{margin:3px 0}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:12px}
.card{border:1px solid #d0d7de;border-radius:8px;padding:10px 14px}
"""


def document(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: Iterable[int] = (),
          table_id: str = "") -> str:
    """``rows`` are cells of HTML already escaped by the caller (see :func:`cell`)."""
    numeric = set(numeric)
    ident = f' id="{escape(table_id)}"' if table_id else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cell(text: Any) -> str:
    return escape("-" if text is None else str(text))


def verdict_cell(verdict: str) -> str:
    return f'<span class="v-{escape(verdict)}">{escape(verdict.replace("_", " "))}</span>'


def pre_json(data: Any) -> str:
    return f"<pre>{escape(json.dumps(data, indent=2, sort_keys=True, default=str))}</pre>"


def bullets(items: Iterable[str]) -> str:
    items = list(items)
    return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>" if items else \
        '<p class="note">none</p>'


def fmt_bytes(value: float | None) -> str:
    """12,345 B / 12.1 KiB / 1.18 MiB (edgeprune/report/units.py, as the terminal shows them)."""
    return "-" if value is None or not math.isfinite(value) else size_bytes(value)


def fmt_ms(value: float | None) -> str:
    """Milliseconds, in us below 1 ms."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    if abs(value) < 1:
        return f"{value * 1000:.3g} us"
    return f"{value:,.3g} ms" if abs(value) < 1000 else f"{value:,.0f} ms"


def fmt_number(value: Any, unit: str = "") -> str:
    """A figure's value for a table, in the unit a reader expects for it."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if unit in ("bytes", "B"):
        return fmt_bytes(value)
    if unit == "ms":
        return fmt_ms(value)
    if unit == "fraction":
        return f"{value * 100:.2f}%"
    text = f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
    return f"{text} {unit}".rstrip()
