"""A Ray head on loopback, for trying ``--ray`` on one machine (the tests, the benchmark).

``ray start --head --block`` with the given CPUs, all traffic on 127.0.0.1, no dashboard,
no usage stats, its temporary folder short (Ray's socket paths are length-limited);
stopped with its whole process group afterwards. A cluster of several machines is
started with Ray's own commands (docs/search.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def loopback_head(cpus: int = 2, env: dict | None = None, timeout: float = 90.0):
    """Yield the address (``127.0.0.1:PORT``) of a Ray head started here; RuntimeError
    if ``ray start`` exits or its port does not open within ``timeout`` seconds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ep-ray-", dir="/tmp")
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
         "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={cpus}",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        env={**(env if env is not None else os.environ), "RAY_USAGE_STATS_ENABLED": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if head.poll() is not None:
                raise RuntimeError(f"ray start --head exited with code {head.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head's port {port} did not open within {timeout:g} s")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        try:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(10)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)        # whatever of the group is left
        except ProcessLookupError:
            pass
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)
