"""Third-party output written straight to file descriptors 1 and 2 is captured; ours is not."""

import subprocess
import sys

_SCRIPT = r"""
import os, sys
from edgeprune import quiet
fail = sys.argv[1] == "fail"
try:
    with quiet.captured(verbose=sys.argv[2] == "verbose", quiet=sys.argv[2] == "quiet"):
        os.write(2, b"E0000 native noise on fd 2\n")
        os.write(1, b"fully_quantize: 0 on fd 1\n")
        print("python print to stdout")
        quiet.say("[   0.1s] our progress line")
        if fail:
            raise RuntimeError("a bug")
except RuntimeError:
    print("after failure", flush=True)
print("result table")
"""


def _run(*args):
    return subprocess.run([sys.executable, "-c", _SCRIPT, *args], capture_output=True, text=True, timeout=60)


def test_captured_hides_native_noise_and_keeps_our_lines():
    proc = _run("ok", "normal")
    assert proc.stderr == "[   0.1s] our progress line\n"
    assert proc.stdout == "result table\n"


def test_captured_replays_noise_when_run_fails_with_a_bug():
    proc = _run("fail", "normal")
    assert "E0000 native noise on fd 2" in proc.stderr and "fully_quantize" in proc.stderr
    assert "--verbose shows it live" in proc.stderr
    assert proc.stdout == "after failure\nresult table\n"


def test_captured_quiet_drops_our_progress_lines():
    proc = _run("ok", "quiet")
    assert proc.stderr == "" and proc.stdout == "result table\n"


def test_captured_verbose_passes_everything_through():
    proc = _run("ok", "verbose")
    assert "native noise" in proc.stderr and "our progress line" in proc.stderr
    assert "fully_quantize" in proc.stdout
