"""A stand-in for clickhouse-driver's ``Client`` answering as a ClickHouse
server of a given version would (``SELECT version()``, ``SELECT 1``), or
failing to connect as the driver does: version checks run through the real
``ClickhouseDatabase`` backend with no server installed (Debian has 18.16)."""
from __future__ import annotations

import pytest
from clickhouse_driver import errors


class VersionServer:
    """What every fake client of one test answers."""

    def __init__(self, version: str | None):
        self.version = version  # None: unreachable
        self.queries: list[str] = []

    def client_class(self):
        server = self

        class Client:
            def __init__(self, **kw):
                self.kw = kw

            def execute(self, sql, params=None, with_column_types=False, settings=None):
                server.queries.append(sql)
                if server.version is None:
                    raise errors.NetworkError(
                        f"Code: 210. Connection refused ({self.kw['host']}:{self.kw['port']})")
                if sql.strip() == "SELECT version()":
                    rows, cols = [(server.version,)], [("version()", "String")]
                elif sql.strip() == "SELECT 1":
                    rows, cols = [(1,)], [("1", "UInt8")]
                else:
                    raise errors.ServerException(
                        "Syntax error: failed at position 1\nStack trace:\n0. DB::x\n1. DB::y", 62)
                return (rows, cols) if with_column_types else rows

            def disconnect(self):
                pass

        return Client


@pytest.fixture
def fake_server(monkeypatch):
    """``fake_server("18.16.1")`` makes clickhouse:// URLs reach a server of
    that version (None: nothing listens)."""
    import clickhouse_driver

    def make(version: str | None) -> VersionServer:
        s = VersionServer(version)
        monkeypatch.setattr(clickhouse_driver, "Client", s.client_class())
        return s
    return make
