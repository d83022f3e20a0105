"""Numbers for people: a unit chosen per value, thousands separators, wrapped notes."""

from __future__ import annotations

import textwrap


def duration_ms(ms) -> str:
    """``0.0045`` -> ``4.5 us``; ``12.3`` -> ``12.3 ms``; ``4200`` -> ``4.2 s``."""
    if ms is None:
        return "-"
    ms = float(ms)
    if abs(ms) < 1.0:
        return f"{ms * 1000:.3g} us"
    if abs(ms) < 1000.0:
        return f"{ms:.3g} ms" if abs(ms) < 100 else f"{ms:,.0f} ms"
    return f"{ms / 1000:.3g} s"


def size_bytes(n) -> str:
    """``812`` -> ``812 B``; ``21064`` -> ``20.6 KiB``; ``3_500_000`` -> ``3.34 MiB``."""
    if n is None:
        return "-"
    n = float(n)
    if abs(n) < 1024:
        return f"{n:,.0f} B"
    if abs(n) < 1024 ** 2:
        return f"{n / 1024:,.1f} KiB"
    return f"{n / 1024 ** 2:,.2f} MiB"


def count(n) -> str:
    return "-" if n is None else f"{int(n):,}"


def by_figure(name: str, value) -> str:
    """A budget's limit or value in the unit of its figure (``max_size_bytes``, ``max_latency_ms`` ...)."""
    if value is None:
        return "-"
    if name.endswith("_bytes"):
        return size_bytes(value)
    if name.endswith("_ms"):
        return duration_ms(value)
    if isinstance(value, int) or float(value).is_integer():
        return count(value)
    return f"{float(value):.4g}"


def wrap(prefix: str, text: str, width: int) -> list[str]:
    """``prefix text`` wrapped to ``width`` columns, continuation lines indented under the text."""
    return textwrap.wrap(text, width=max(40, width), initial_indent=prefix,
                         subsequent_indent=" " * len(prefix), break_on_hyphens=False) or [prefix]


def terminal_width(default: int = 100) -> int:
    import shutil

    return min(shutil.get_terminal_size((default, 24)).columns, 120)
