"""Shared fixtures.

One embedded ClickHouse (chdb) per test session, in a temporary directory;
tables are truncated before each test that asks for ``db``. ``shared_data``
points at ``../shared/data`` and skips, with the reason, when it is absent.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from ooni_common.config import Config
from ooni_common.db import connect
from ooni_common.schema import all_tables, ensure_all
from tests.fake_clickhouse import fake_server  # noqa: F401  (fixture: fake ClickHouse versions)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ooni-session")


@pytest.fixture(scope="session")
def session_db(session_dir):
    db = connect(f"chdb://{session_dir / 'db'}")
    ensure_all(db)
    yield db
    # chdb aborts the interpreter at exit if its session is still open while
    # any thread (a test's leftover daemon thread) is alive.
    db.shutdown()


@pytest.fixture
def db(session_db):
    for t in all_tables(session_db):
        session_db.command(f"TRUNCATE TABLE IF EXISTS `{t}`")
    return session_db


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def cfg(data_dir, session_db) -> Config:
    return Config({
        "DATA_DIR": str(data_dir),
        "CLICKHOUSE_URL": session_db.url,
        "BASE_URL": "https://api.ooni.io/",
        "COLLECTOR_ID": "1",
        "STATSD_ENABLED": "false",
    })


class RecordingNotifier:
    """Stands in for the fastpath daemon: records what the API sends."""

    def __init__(self):
        self.calls: list[tuple[str, bytes]] = []

    def __call__(self, uid: str, body: bytes) -> None:
        self.calls.append((uid, body))


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def app(cfg, db, notifier):
    from ooniapi.core.app import create_app
    a = create_app(cfg, db=db, notify_fastpath=notifier)
    a.testing = True
    return a


@pytest.fixture
def client(app):
    return app.test_client()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for end-to-end processes: no user config leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OONI_")}
    env["OONI_STATSD_ENABLED"] = "false"
    return env
