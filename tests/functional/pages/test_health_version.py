"""/health answers 503 with the reason for an old or unreachable server."""
import pytest

from ooni_common.config import Config
from ooni_common.db import connect


@pytest.fixture
def make_client(data_dir):
    def make():
        from ooniapi.core.app import create_app
        cfg = Config({"DATA_DIR": str(data_dir), "CLICKHOUSE_URL": "clickhouse://127.0.0.1:9/default",
                      "BASE_URL": "https://api.ooni.io/", "STATSD_ENABLED": "false"})
        app = create_app(cfg, db=connect(cfg.clickhouse_url), notify_fastpath=lambda u, b: None)
        app.testing = True
        return app.test_client()
    return make


def test_health_up_on_a_recent_server(fake_server, make_client):
    fake_server("24.8.4.13")
    r = make_client().get("/health")
    assert r.status_code == 200 and r.data == b"UP"


def test_health_503_on_an_old_server(fake_server, make_client):
    fake_server("18.16.1")
    r = make_client().get("/health")
    text = r.data.decode()
    assert r.status_code == 503, text
    assert text.startswith("DOWN: ClickHouse 18.16.1 at 127.0.0.1:9 is too old")
    assert "22.8" in text and text.count("\n") == 1


def test_health_503_when_unreachable(fake_server, make_client):
    fake_server(None)
    r = make_client().get("/health")
    assert r.status_code == 503
    assert r.data.decode().startswith("DOWN: ClickHouse at 127.0.0.1:9 does not answer")


def test_database_error_is_logged_in_one_line(fake_server, make_client, caplog):
    fake_server("24.8.4.13")
    client = make_client()
    r = client.get("/api/v1/measurements?probe_cc=IT")
    assert r.status_code == 500
    errors = [rec for rec in caplog.records if rec.levelname == "ERROR"]
    assert errors and all("\n" not in rec.getMessage() and rec.exc_info is None for rec in errors)
    assert "Stack trace" not in "".join(rec.getMessage() for rec in errors)
