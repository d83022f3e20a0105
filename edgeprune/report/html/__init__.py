"""Self-contained HTML pages of edgeprune's outputs (inline CSS and SVG; no scripts, no network).

- :func:`render_report`: ``report.html`` beside ``report.json``, written by every export;
- :func:`render_check`: ``edgeprune check --html FILE``, the baseline-vs-new comparison;
- :func:`render_comparison`: several targets' reports side by side.
"""

from .check import render_check
from .compare import render_comparison
from .report import render_report

__all__ = ["render_check", "render_comparison", "render_report"]
