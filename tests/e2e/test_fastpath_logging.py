"""The ``fastpath`` daemon without its database: it waits and retries
(one ERROR line per attempt, no traceback) instead of exiting, logs to
stdout with ``--stdout`` and to stderr without, with journald priority
prefixes when its output is the journal (JOURNAL_STREAM)."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FASTPATH = [str(REPO / ".venv" / "bin" / "python"), "-m", "fastpath.cli"]


def run_until_retrying(tmp_path, env, args) -> tuple[int, str, str]:
    out, err = tmp_path / "out", tmp_path / "err"
    p = subprocess.Popen(FASTPATH + args, env=env, cwd=tmp_path, stdout=open(out, "wb"),
                         stderr=open(err, "wb"))
    try:
        deadline = time.monotonic() + 60
        while "retrying in 2 s" not in out.read_text() + err.read_text():
            assert p.poll() is None, (out.read_text(), err.read_text())
            assert time.monotonic() < deadline, (out.read_text(), err.read_text())
            time.sleep(0.1)
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(30)
    return rc, out.read_text(), err.read_text()


@pytest.fixture
def env(tmp_path, subprocess_env):
    e = dict(subprocess_env, OONI_DATA_DIR=str(tmp_path / "data"),
             OONI_FASTPATH_API_PORT=str(free_port()))
    e.pop("JOURNAL_STREAM", None)
    e.pop("INVOCATION_ID", None)
    return e


def url() -> str:
    return f"clickhouse://127.0.0.1:{free_port()}/default?connect_timeout=0.5"


def test_stdout_flag_and_retry_without_database(tmp_path, env):
    rc, out, err = run_until_retrying(tmp_path, env, ["--stdout", "--clickhouse-url", url()])
    assert rc == 0, err
    lines = [line for line in out.splitlines() if "does not answer" in line]
    assert len(lines) >= 2 and all(" fastpath ERROR " in line for line in lines), out
    assert "retrying in 1 s" in lines[0] and "retrying in 2 s" in lines[1]
    assert "Traceback" not in out + err and "does not answer" not in err


def test_default_is_stderr_with_journald_priorities(tmp_path, env):
    env["JOURNAL_STREAM"] = "8:12345"
    rc, out, err = run_until_retrying(tmp_path, env, ["--clickhouse-url", url()])
    assert rc == 0
    assert "does not answer" not in out
    lines = [line for line in err.splitlines() if "does not answer" in line]
    assert lines and all(line.startswith("<3>fastpath ERROR ClickHouse at 127.0.0.1:")
                         for line in lines), err
    assert "Traceback" not in err
