"""Render a page in headless Chromium (Debian's `chromium`): the DOM after layout, the
console messages, and a screenshot kept as a test artifact.

The screenshot goes to $EDGEPRUNE_TEST_ARTIFACTS (CI uploads that folder) or, without
it, to the test's tmp folder. Chromium runs with its own throw-away profile and a
timeout, so it never hangs the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 90


@dataclass
class Rendered:
    dom: str
    console: list[str]      # every console line (log, error, uncaught exception)
    screenshot: Path
    stderr: str


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is not installed (.ci/system-deps.sh installs it)"
    return path


def render(page: Path, name: str, fallback_dir: Path, size: str = "1100,2400") -> Rendered:
    out_dir = Path(os.environ.get("EDGEPRUNE_TEST_ARTIFACTS") or fallback_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = out_dir / f"{name}.png"
    shot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
             "--no-first-run", "--disable-extensions", "--enable-logging=stderr", "--v=0",
             f"--window-size={size}", f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    print(f"screenshot of {page.name}: {shot}")
    return Rendered(proc.stdout, console, shot, proc.stderr)
