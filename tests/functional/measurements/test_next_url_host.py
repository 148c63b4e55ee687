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


def test_export_and_network_stats_links_ignore_host_header(cfg, db, notifier, rows):
    # The export's measurement_url and network_stats' next_url were built
    # from the Host header when BASE_URL was unset.
    app = create_app(cfg.with_overrides(BASE_URL=""), db=db, notify_fastpath=notifier)
    c = app.test_client()
    evil = {"Host": "evil.example.com"}
    r = c.get("/api/v1/measurements/export?format=jsonl", headers=evil)
    assert r.status_code == 200
    lines = r.get_data(as_text=True).splitlines()
    assert lines and all("http://127.0.0.1:8000/api/v1/raw_measurement?" in ln for ln in lines)
    assert "evil" not in r.get_data(as_text=True)
    msm_rows.insert(db, [msm_rows.row(probe_asn=100 + i,
                                      measurement_start_time=dt.datetime.now(dt.timezone.utc)
                                      .replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=1))
                         for i in range(3)])
    r = c.get("/api/_/network_stats?probe_cc=IT&limit=1", headers=evil)
    assert r.status_code == 200
    nxt = r.get_json()["metadata"]["next_url"]
    assert nxt.startswith("http://127.0.0.1:8000/api/_/network_stats?"), nxt
