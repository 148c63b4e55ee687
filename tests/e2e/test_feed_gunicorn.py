"""The feed under the production server (``ooni-api``: gunicorn, 2 worker
processes): every subscriber, whichever worker serves it, gets every row, and
a reconnection (likely to another worker) resumes exactly, because the
position is read from the database, not from one worker's memory.

``ooni-api`` needs a ClickHouse server (the embedded database is one
process's): set OONI_TEST_CLICKHOUSE_URL=clickhouse://host:9000/db (a
scratch database: its fastpath table is written) to run this test."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.test_export_process import Feed
from tests.functional import msm_rows

pytestmark = pytest.mark.e2e

URL = os.environ.get("OONI_TEST_CLICKHOUSE_URL", "")
BIN = Path(sys.executable).parent / "ooni-api"


@pytest.mark.skipif(not URL.startswith("clickhouse://"),
                    reason="needs a ClickHouse server: set OONI_TEST_CLICKHOUSE_URL")
def test_feed_with_two_gunicorn_workers(tmp_path, subprocess_env):
    from ooni_common.db import connect
    from ooni_common.schema import ensure_all
    db = connect(URL)
    ensure_all(db)
    port = free_port()
    log = tmp_path / "api.log"
    env = dict(subprocess_env, OONI_CLICKHOUSE_URL=URL, OONI_DATA_DIR=str(tmp_path),
               OONI_RATE_LIMIT_ENABLED="false", OONI_FEED_POLL_SECONDS="0.1")
    p = subprocess.Popen([str(BIN), "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                         env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert p.poll() is None, log.read_text()
            try:
                Feed(base).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        feeds = [Feed(base) for _ in range(4)]  # spread over both workers
        time.sleep(0.5)
        now = dt.datetime.utcnow().replace(microsecond=0)
        rows = msm_rows.generate(20, seed=21, start=now - dt.timedelta(hours=1),
                                 span=dt.timedelta(hours=1))
        msm_rows.insert(db, rows)
        want = sorted(r["measurement_uid"] for r in rows)
        for f in feeds:
            assert [e[2]["measurement_uid"] for e in f.wait(20)] == want
        last = feeds[0].events[-1][1]
        for f in feeds:
            f.close()
        missed = msm_rows.generate(5, seed=22, start=now - dt.timedelta(hours=1),
                                   span=dt.timedelta(hours=1))
        msm_rows.insert(db, missed)
        for _ in range(4):  # reconnections land on either worker
            f = Feed(base, last)
            got = f.wait(5)
            time.sleep(0.5)
            assert [e[2]["measurement_uid"] for e in f.events] == \
                sorted(r["measurement_uid"] for r in missed)
            f.close()
    finally:
        p.terminate()
        p.wait(30)
