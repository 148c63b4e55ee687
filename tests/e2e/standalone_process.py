"""Start the real ``ooni-backend run`` for an end-to-end test and stop it."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

BIN = Path(sys.executable).parent / "ooni-backend"


@contextmanager
def standalone(tmp_path: Path, port: int, env: dict[str, str],
               data_dir: Path | None = None, timeout: float = 120) -> Iterator[str]:
    """Yield the base URL once ``/health`` answers; the log is in
    ``tmp_path/backend.log`` and shown when the process dies or never comes up."""
    if not BIN.exists():
        pytest.skip(f"{BIN} not installed (pip install -e .)")
    data_dir = data_dir or tmp_path / "data"
    log = tmp_path / "backend.log"
    proc = subprocess.Popen([str(BIN), "run", "--port", str(port), "--data-dir", str(data_dir)],
                            env=env, cwd=tmp_path, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
