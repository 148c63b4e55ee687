"""next_url is built from BASE_URL (or the listening address), never from
the Host header a client chose: the answer is cached for everyone."""
from __future__ import annotations

import datetime as dt

import pytest

from tests.functional import msm_rows

from ooniapi.core.app import create_app


@pytest.fixture
def rows(db):
    base = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0) - dt.timedelta(days=1)
    msm_rows.insert(db, [msm_rows.row(measurement_start_time=base + dt.timedelta(hours=i)) for i in range(3)])


@pytest.mark.parametrize("base,expected", [("https://api.example.org/", "https://api.example.org/"),
                                           ("", "http://127.0.0.1:8000/")])
def test_next_url_ignores_host_header(cfg, db, notifier, rows, base, expected):
    app = create_app(cfg.with_overrides(BASE_URL=base), db=db, notify_fastpath=notifier)
    r = app.test_client().get("/api/v1/measurements?limit=1", headers={"Host": "evil.example.com"})
    assert r.status_code == 200
    nxt = r.get_json()["metadata"]["next_url"]
    assert nxt.startswith(expected + "api/v1/measurements?"), nxt
    assert "evil" not in nxt
