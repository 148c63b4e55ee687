"""The ClickHouse version check through the backend's interface, with fake
servers of old and new versions."""
import pytest

from ooni_common.db import DatabaseError, connect
from ooni_common.server_version import MIN_CLICKHOUSE, DatabaseVersionError, check_server, parse_version

URL = "clickhouse://api:secret@ch.example:9000/ooni"


def test_parse_version():
    assert parse_version("24.3.2.23").parts == (24, 3, 2, 23)
    assert parse_version("18.16.1").parts == (18, 16, 1)
    assert not parse_version("22.7.9.1").ok and parse_version("22.8.1.1").ok
    with pytest.raises(DatabaseError):
        parse_version("banana")


@pytest.mark.parametrize("version", ["22.8.21.38", "24.3.2.23", "25.8.1.1"])
def test_recent_server_passes(fake_server, version):
    s = fake_server(version)
    assert check_server(connect(URL)).text == version
    assert s.queries == ["SELECT version()"]


@pytest.mark.parametrize("version", ["18.16.1", "21.8.15.7", "22.3.20.29"])
def test_old_server_is_refused_in_one_line(fake_server, version):
    fake_server(version)
    with pytest.raises(DatabaseVersionError) as ei:
        check_server(connect(URL))
    msg = str(ei.value)
    assert "\n" not in msg and version in msg and "too old" in msg
    assert ".".join(map(str, MIN_CLICKHOUSE)) in msg and "ch.example:9000" in msg
    assert "secret" not in msg


def test_unreachable_server_is_one_line(fake_server):
    fake_server(None)
    with pytest.raises(DatabaseError) as ei:
        check_server(connect(URL))
    assert not isinstance(ei.value, DatabaseVersionError)
    assert "does not answer" in str(ei.value) and "\n" not in str(ei.value)
    assert "secret" not in str(ei.value)


def test_embedded_engine_is_recent_enough(db):
    v = check_server(db)
    assert v.ok, v
