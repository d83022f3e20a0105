#!/usr/bin/env python3
"""Several targets in one export against one export per target, and what a run prints.

1. Wall time of `edgeprune export --target host --target rpi4 --target cortex-m4` (one
   process, the model compressed once and shared) against the three single exports run
   one after the other, in alternating order over ROUNDS rounds (the machine's load
   drifts; compare the ratio within a round).
2. The lines a normal host export prints, split into ours (progress lines on stderr,
   the table on stdout) and any other (third-party log noise).

    python benchmarks/multi_target.py [--rounds 2] [--epochs 1] [--train-epochs 10]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

TARGETS = ("host", "rpi4", "cortex-m4")
OURS = re.compile(r"^\[ *\d+\.\ds\] ")


def _export(out: str, targets, args) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [sys.executable, "-m", "edgeprune", "export", "--out", out, "--train-epochs", str(args.train_epochs),
           "--epochs", str(args.epochs)]
    for t in targets:
        cmd += ["--target", t]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if proc.returncode not in (0, 3):
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0, proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-epochs", type=int, default=10)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        _export(os.path.join(tmp, "warm"), ["host"], args)     # trains the reference model into the cache
        for r in range(args.rounds):
            order = ("fleet", "singles") if r % 2 == 0 else ("singles", "fleet")
            took = {}
            for kind in order:
                out = os.path.join(tmp, f"{kind}{r}")
                if kind == "fleet":
                    took[kind] = _export(out, TARGETS, args)[0]
                else:
                    took[kind] = sum(_export(out, [t], args)[0] for t in TARGETS)
            rows.append((r, took["fleet"], took["singles"], took["fleet"] / took["singles"]))
        _, proc = _export(os.path.join(tmp, "lines"), ["host"], args)
    print(f"{'round':>5}  {'3 targets, one run s':>20}  {'3 single runs s':>15}  {'ratio':>6}")
    for r, fleet, singles, ratio in rows:
        print(f"{r:>5}  {fleet:>20.1f}  {singles:>15.1f}  {ratio:>6.2f}")
    err, out = proc.stderr.splitlines(), proc.stdout.splitlines()
    other = [line for line in err if not OURS.match(line)]
    print(f"\nhost export: {len(out) + len(err)} lines ({len(out)} stdout, {len(err)} stderr: "
          f"{len(err) - len(other)} progress, {len(other)} other)")
    for line in other[:10]:
        print(f"  other: {line[:120]}")


if __name__ == "__main__":
    main()
