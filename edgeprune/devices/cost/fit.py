"""Fit each board's latency model on published figures and print its error per figure.

    python -m edgeprune.devices.cost.fit             # refit from the cached counts (seconds)
    python -m edgeprune.devices.cost.fit --write     # ... and write the boards' [calibration]
    python -m edgeprune.devices.cost.fit --recount   # count the MobileNets under qemu again

How (see :mod:`.model` for the model itself):

1. The thread curve: the serial fraction s of Amdahl's law, fitted (least squares on
   log ratios) to the ``use = "threads"`` figures' ratios to their own 4-thread figure
   (one source, one model: their absolute level comes from older software and is not used).
2. The model's structure: nine per-class cycles are more than the published figures
   can pin down, so classes are tied into groups that share one cost, with or without
   the memory term (``STRUCTURES``). One structure is chosen for every board, on
   ``SELECT_ON``'s ``fit`` and ``check`` figures (never its hold-out ones): the one with
   the smallest leave-one-out error (ties: the fewer parameters).
3. The costs: each board's parameters by non-negative least squares on the relative
   error of its ``use = "fit"`` figures, with a weak pull (``RIDGE``) toward one common
   cost so that a group the figures cannot tell apart does not collapse to 0.
4. The error: |estimate / published - 1| for every figure, fitted or held out; the
   band written into the profile is the largest over the board's fit and hold-out
   figures. ``check`` figures (a 32-bit OS, where 64-bit ones exist) are shown, not fitted.
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import CLASSES
from .data import BOARD_CORES, COUNTS, FIGURES, Figure, load_counts, load_figures
from .model import thread_factor

_MACS = ("simd_int_mac", "simd_fp_mac")
_REST = tuple(c for c in CLASSES if c not in _MACS)
_SIMD_MEMORY = ("simd_load", "simd_store")
_NOT_INT = tuple(c for c in CLASSES if c != "simd_int_mac")
_GROUPINGS = {
    "one cost": (CLASSES,),
    "int mac | rest": (("simd_int_mac",), _NOT_INT),
    "int mac | fp mac | rest": (("simd_int_mac",), ("simd_fp_mac",), _REST),
    "int mac | fp mac | simd memory | rest": (("simd_int_mac",), ("simd_fp_mac",), _SIMD_MEMORY,
                                              tuple(c for c in _REST if c not in _SIMD_MEMORY)),
}
# name -> (class groups sharing one cost each, memory term?)
STRUCTURES: dict[str, tuple[tuple[tuple[str, ...], ...], bool]] = {
    **{name: (groups, False) for name, groups in _GROUPINGS.items()},
    **{f"{name} + memory": (groups, True) for name, groups in _GROUPINGS.items()},
}
SELECT_ON = "rpi4"     # the board with the most figures: 64-bit ones to fit, 32-bit to check
RIDGE = 0.01
# The emulated cores' caches (qemu_root.CORES): weights beyond them come from memory.
CACHE_BYTES = {"cortex-a53": 512 * 1024, "cortex-a72": 1024 * 1024, "cortex-a76": 2560 * 1024}
# The profiles' clocks (the figures carry their own board's clock).
PROFILE_CLOCK_MHZ = {"rpi3": 1200.0, "rpi4": 1500.0, "rpi5": 2400.0}
TARGETS_DIR = FIGURES.parent.parent


@dataclass
class Row:
    figure: Figure
    estimate_ms: float

    @property
    def ratio(self) -> float:
        return self.estimate_ms / self.figure.ms


@dataclass
class BoardFit:
    board: str
    core: str
    serial_fraction: float
    structure: str
    params: tuple[float, ...]                 # one cost per group, then ms per MB if memory
    loo: dict[str, float]                     # structure -> leave-one-out max |ratio - 1|
    rows: list[Row] = field(default_factory=list)

    @property
    def cycles_per_class(self) -> dict[str, float]:
        out = {}
        for group, value in zip(STRUCTURES[self.structure][0], self.params):
            out.update({c: round(float(value), 4) for c in group})
        return {c: out[c] for c in CLASSES}

    @property
    def memory_ms_per_mb(self) -> float:
        return round(float(self.params[-1]), 4) if STRUCTURES[self.structure][1] else 0.0

    @property
    def cache_bytes(self) -> int:
        return CACHE_BYTES[self.core]

    def band_rows(self) -> list[Row]:
        return [r for r in self.rows if r.figure.use in ("fit", "holdout")]

    @property
    def error_rel(self) -> float:
        return max(abs(r.ratio - 1) for r in self.band_rows())


# --------------------------------------------------------------------------- fitting


def fit_serial_fraction(figures: list[Figure]) -> float:
    """Amdahl's serial fraction from each source's 1..N-thread figures, relative to 4 threads."""
    rows = [f for f in figures if f.use == "threads"]
    four = {(f.source, f.model, f.precision): f.ms for f in rows if f.threads == 4}
    pairs = [(f.threads, f.ms / four[(f.source, f.model, f.precision)]) for f in rows
             if f.threads != 4 and (f.source, f.model, f.precision) in four]
    if not pairs:
        return 0.0
    grid = np.linspace(0.0, 0.9, 901)
    loss = [sum((math.log(thread_factor(t, s) / thread_factor(4, s)) - math.log(r)) ** 2
                for t, r in pairs) for s in grid]
    return float(grid[int(np.argmin(loss))])


def _features(figure: Figure, counts: dict, core: str, structure: str, s: float) -> np.ndarray:
    """x[p] such that features . params = estimate / published."""
    groups, memory = STRUCTURES[structure]
    record = counts[f"{figure.model}/{figure.precision}/{core}"]
    one_thread = [sum(record["by_class"][c] for c in g) / (figure.clock_mhz * 1e3) for g in groups]
    if memory:
        one_thread.append(max(0, record["weight_bytes"] - CACHE_BYTES[core]) / 1e6)
    return np.array(one_thread) * thread_factor(figure.threads, s) / figure.ms


def nnls_relative(a: np.ndarray, ridge: np.ndarray | None = None) -> np.ndarray:
    """Non-negative x minimising ||a x - 1||² (+ ||ridge (x - x0)||², rows [R | R x0]),
    exactly: every subset of free columns is tried."""
    b = np.ones(len(a))
    if ridge is not None:
        a, b = np.vstack([a, ridge[:, :-1]]), np.concatenate([b, ridge[:, -1]])
    n = a.shape[1]
    best, best_loss = np.zeros(n), float(np.sum(b ** 2))
    for k in range(1, n + 1):
        for cols in itertools.combinations(range(n), k):
            x, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
            if np.any(x < 0):
                continue
            full = np.zeros(n)
            full[list(cols)] = x
            loss = float(np.sum((a @ full - b) ** 2))
            if loss < best_loss - 1e-15:
                best, best_loss = full, loss
    return best


def _solve(rows: list[Figure], counts: dict, core: str, structure: str, s: float) -> np.ndarray:
    """The structure's parameters fitted on ``rows``, pulled weakly toward one common cost."""
    a = np.array([_features(f, counts, core, structure, s) for f in rows])
    groups, memory = STRUCTURES[structure]
    one = np.array([[sum(_features(f, counts, core, "one cost", s))] for f in rows])
    common = float(nnls_relative(one)[0]) or 1.0
    ridge = np.zeros((len(groups), a.shape[1] + 1))
    for g in range(len(groups)):   # sqrt(RIDGE) x (cost_g / common - 1)
        ridge[g, g] = math.sqrt(RIDGE) / common
        ridge[g, -1] = math.sqrt(RIDGE)
    return nnls_relative(a, ridge)


def _loo_error(rows: list[Figure], counts: dict, core: str, structure: str, s: float) -> float:
    worst = 0.0
    for i in range(len(rows)):
        x = _solve(rows[:i] + rows[i + 1:], counts, core, structure, s)
        worst = max(worst, abs(float(_features(rows[i], counts, core, structure, s) @ x) - 1))
    return worst


def select_structure(figures: list[Figure], counts: dict, s: float) -> dict[str, float]:
    """Leave-one-out max error of every structure on ``SELECT_ON``'s fit and check figures."""
    rows = [f for f in figures if f.board == SELECT_ON and f.use in ("fit", "check")]
    core = BOARD_CORES[SELECT_ON]
    return {name: _loo_error(rows, counts, core, name, s) for name in STRUCTURES}


def fit_board(board: str, figures: list[Figure], counts: dict, serial_fraction: float,
              loo: dict[str, float]) -> BoardFit:
    core = BOARD_CORES[board]
    mine = [f for f in figures if f.board == board]
    fit_rows = [f for f in mine if f.use == "fit"]
    if not fit_rows:
        raise ValueError(f"no published figure to fit {board} on")
    size = {name: len(groups) + memory for name, (groups, memory) in STRUCTURES.items()}
    structure = min(loo, key=lambda name: (round(loo[name], 3), size[name]))
    x = _solve(fit_rows, counts, core, structure, serial_fraction)
    result = BoardFit(board, core, serial_fraction, structure, tuple(float(v) for v in x), loo)
    for f in mine:
        ratio = float(_features(f, counts, core, structure, serial_fraction) @ x)
        result.rows.append(Row(f, ratio * f.ms))
    return result


def fit_all(figures: list[Figure] | None = None, counts: dict | None = None) -> dict[str, BoardFit]:
    figures = load_figures() if figures is None else figures
    counts = load_counts()["counts"] if counts is None else counts
    s = fit_serial_fraction(figures)
    loo = select_structure(figures, counts, s)
    boards = sorted({f.board for f in figures if f.use == "fit"})
    return {board: fit_board(board, figures, counts, s, loo) for board in boards}


# --------------------------------------------------------------------------- the profiles


def calibration_section(fit: BoardFit | None, board: str, carried_from: BoardFit | None = None,
                        clock_mhz: float | None = None) -> str:
    """The ``[calibration]`` TOML for ``board``: its own fit, or another board's carried over."""
    source = fit or carried_from
    clock = clock_mhz or PROFILE_CLOCK_MHZ[board]
    costs = ", ".join(f"{c} = {v}" for c, v in source.cycles_per_class.items())
    lines = ["[calibration]",
             "# written by `python -m edgeprune.devices.cost.fit --write`: do not edit by hand",
             f"clock_mhz = {clock}",
             f"cycles_per_class = {{ {costs} }}",
             f"serial_fraction = {source.serial_fraction}",
             f"memory_ms_per_mb = {source.memory_ms_per_mb}",
             f"cache_bytes = {CACHE_BYTES[BOARD_CORES.get(board, 'cortex-a76')]}"]
    if fit is not None:
        rows = fit.band_rows()
        n_fit = sum(r.figure.use == "fit" for r in rows)
        bits = sorted({r.figure.os_bits for r in rows})
        lines += [
            f'name = "xnnpack-raspberry-pi ({board}, {len(rows)} figures)"',
            f'source = "fitted on {n_fit} published MobileNet figures, {len(rows) - n_fit} more held '
            f"out (targets/calibration/xnnpack-raspberry-pi.toml: XNNPACK README, Raspberry Pi "
            f'table of Feb 2022, {"/".join(map(str, bits))}-bit OS); classes tied as '
            f'{fit.structure}; thread curve from XNNPACK issue 814"',
            f"error_rel = {round(fit.error_rel, 3)}",
            f"error_rows = {len(rows)}",
            f'error_how = "max |estimate / published - 1| over {len(rows)} published figures '
            f'({n_fit} fitted, {len(rows) - n_fit} held out), each at its board\'s clock"']
    else:
        lines += [
            f'name = "carried over from {carried_from.board} (no published figure for {board})"',
            f'source = "{carried_from.board}\'s per-class cycles ({carried_from.core}) applied to this '
            f'board\'s counts at {clock} MHz: no published figure exists to fit or check it"',
            "error_rows = 0",
            'error_how = "unknown: no published figure for this board"']
    return "\n".join(lines) + "\n"


def write_section(profile: Path, section: str) -> None:
    text = profile.read_text()
    pattern = re.compile(r"^\[calibration\]\n(?:(?!^\[).*\n?)*", re.M)
    if not pattern.search(text):
        raise ValueError(f"{profile} has no [calibration] section to replace")
    profile.write_text(pattern.sub(section + "\n", text, count=1))


def sections(fits: dict[str, BoardFit]) -> dict[str, str]:
    """Every aarch64 board profile's [calibration], by file name."""
    out = {board: calibration_section(fit, board) for board, fit in fits.items()}
    out["rpi5"] = calibration_section(None, "rpi5", carried_from=fits["rpi4"])
    out["jetson-orin"] = calibration_section(None, "jetson-orin", carried_from=fits["rpi4"],
                                             clock_mhz=2200.0)
    return out


# --------------------------------------------------------------------------- the table


def render(fits: dict[str, BoardFit], counts: dict | None = None) -> str:
    first = next(iter(fits.values()))
    lines = [f"model chosen by leave-one-out max error on {SELECT_ON}'s fit and check figures: "
             + "; ".join(f"{name} {err:.0%}" for name, err in first.loo.items())]
    for board, fit in fits.items():
        lines.append(f"\n{board} ({fit.core}): model '{fit.structure}': cycles per class "
                     + ", ".join(f"{c} {v:.3g}" for c, v in fit.cycles_per_class.items())
                     + f"; {fit.memory_ms_per_mb:.3g} ms per MB of weights beyond "
                     f"{fit.cache_bytes // 1024} KiB; serial fraction {fit.serial_fraction:.3f}")
        lines.append(f"  {'figure':44} {'use':8} {'published':>10} {'estimate':>10} {'ratio':>7}")
        for r in sorted(fit.rows, key=lambda r: ("fit holdout check threads".split().index(
                r.figure.use), r.figure.precision, r.figure.model, r.figure.threads)):
            note = ""
            if r.figure.use == "threads":
                base = next(x for x in fit.rows if x.figure.use == "threads" and x.figure.threads == 4)
                shape = (r.estimate_ms / base.estimate_ms) / (r.figure.ms / base.figure.ms)
                note = f"  (vs its own 4-thread figure: {shape:.2f})"
            lines.append(f"  {r.figure.label:44} {r.figure.use:8} {r.figure.ms:10.1f} "
                         f"{r.estimate_ms:10.1f} {r.ratio:7.2f}{note}")
        lines.append(f"  error band: +-{fit.error_rel:.1%} over {len(fit.band_rows())} fit and "
                     "hold-out figures")
    if counts is not None and "rpi4" in fits:
        lines.append(_carried_table(fits["rpi4"], counts))
    return "\n".join(lines)


def _carried_table(source: BoardFit, counts: dict) -> str:
    """rpi5's estimates for the calibration models: no published figure to compare with."""
    from ...targets import Calibration
    from .model import estimate_ms

    cal = Calibration(clock_mhz=PROFILE_CLOCK_MHZ["rpi5"], cycles_per_class=source.cycles_per_class,
                      serial_fraction=source.serial_fraction,
                      memory_ms_per_mb=source.memory_ms_per_mb, cache_bytes=CACHE_BYTES["cortex-a76"])
    lines = [f"\nrpi5 (cortex-a76): {source.board}'s costs carried over, no published figure; "
             "estimates at 4 threads:"]
    for key in sorted(k for k in counts if k.endswith("/cortex-a76")):
        record = counts[key]
        ms = estimate_ms(record["by_class"], cal, 4, record["weight_bytes"])
        lines.append(f"  {key.rsplit('/', 1)[0]:34} {ms:8.1f} ms  ({record['instructions']:,} instructions)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeprune.devices.cost.fit",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--recount", action="store_true",
                        help="count the calibration models under qemu again (about half an hour)")
    parser.add_argument("--models", type=Path, default=None,
                        help="folder for the converted calibration models (default: the cache)")
    parser.add_argument("--write", action="store_true",
                        help="write the fitted [calibration] into targets/rpi3, rpi4, rpi5, jetson-orin")
    args = parser.parse_args(argv)
    if args.recount:
        from .recount import recount

        recount(args.models, log=print)
    counts = load_counts()["counts"]
    fits = fit_all(counts=counts)
    print(render(fits, counts))
    for name, section in sections(fits).items():
        if args.write:
            write_section(TARGETS_DIR / f"{name}.toml", section)
            print(f"wrote [calibration] of targets/{name}.toml")
    print(f"\ncounts: {COUNTS.relative_to(TARGETS_DIR.parent)}; figures: "
          f"{FIGURES.relative_to(TARGETS_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
