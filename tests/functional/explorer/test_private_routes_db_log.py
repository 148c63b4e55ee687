"""The v:0 database-error answers of the private Explorer routes hide the
engine's text from the caller; the operator still finds it in the log."""
import logging

import pytest


@pytest.mark.parametrize("method, url", [
    ("circumvention_counts", "/api/_/circumvention_stats_by_country"),
    ("circumvention_runtimes", "/api/_/circumvention_runtime_stats"),
    ("networks", "/api/_/networks"),
])
def test_database_error_text_is_logged_not_answered(client, monkeypatch, caplog, method, url):
    from ooni_common.db import DatabaseError

    from ooniapi.explorer.stats import ExplorerStats

    def boom(*a, **kw):
        raise DatabaseError("Code: 60. table fastpath_x is gone")
    monkeypatch.setattr(ExplorerStats, method, boom)
    with caplog.at_level(logging.WARNING, logger="ooni-api"):
        r = client.get(url)
    assert "table fastpath_x" not in r.get_data(as_text=True)
    assert any("table fastpath_x is gone" in rec.getMessage() and url in rec.getMessage()
               for rec in caplog.records)
