"""The clickhouse:// backend without a server: no ClickHouse server recent
enough to run this schema can be installed here (Debian ships 18.16), so these
tests check what the backend hands to clickhouse-driver and how it maps the
driver's errors, with the driver's Client replaced by a recording fake."""
import pytest
from clickhouse_driver import errors

from ooni_common import db as dbmod


class FakeClient:
    instances: list["FakeClient"] = []

    def __init__(self, **kw):
        self.kw = kw
        self.calls = []
        self.fail_with = None
        FakeClient.instances.append(self)

    def execute(self, sql, params=None, with_column_types=False, settings=None):
        self.calls.append((sql, params, with_column_types, settings))
        if self.fail_with:
            raise self.fail_with
        if with_column_types:
            return [(1, "a")], [("n", "UInt8"), ("s", "String")]
        return []

    def disconnect(self):
        pass


@pytest.fixture
def fake_driver(monkeypatch):
    import clickhouse_driver
    FakeClient.instances = []
    monkeypatch.setattr(clickhouse_driver, "Client", FakeClient)
    return FakeClient


def test_connect_parses_url_and_enables_server_side_params(fake_driver):
    db = dbmod.connect("clickhouse://api:s%40cret@ch.example:9440/ooni?connect_timeout=2")
    assert isinstance(db, dbmod.ClickhouseDatabase) and db.database == "ooni"
    db.execute("SELECT 1")
    kw = fake_driver.instances[0].kw
    assert (kw["host"], kw["port"], kw["user"], kw["password"], kw["database"]) == \
        ("ch.example", 9440, "api", "s@cret", "ooni")
    assert kw["settings"]["server_side_params"] is True
    assert kw["connect_timeout"] == 2.0


def test_params_are_passed_separately_never_formatted(fake_driver):
    db = dbmod.connect("clickhouse://localhost/default")
    evil = "x' OR 1=1 --"
    r = db.query("SELECT n, s FROM t WHERE s = {s:String}", {"s": evil},
                 settings={"max_execution_time": 28})
    assert r == [{"n": 1, "s": "a"}]
    sql, params, with_types, settings = fake_driver.instances[0].calls[0]
    assert evil not in sql and params == {"s": evil}
    assert with_types is True and settings == {"max_execution_time": 28}


def test_insert_sends_rows_as_data(fake_driver):
    db = dbmod.connect("clickhouse://localhost/default")
    assert db.insert("jsonl", ["report_id", "linenum"], [("r", 1), ("q", 2)]) == 2
    sql, params, _, _ = fake_driver.instances[0].calls[0]
    assert sql == "INSERT INTO jsonl (report_id, linenum) VALUES"
    assert params == [["r", 1], ["q", 2]]


@pytest.mark.parametrize("code,exc", [(159, dbmod.QueryTimeout), (60, dbmod.DatabaseError)])
def test_driver_errors_map_to_database_errors(fake_driver, code, exc):
    db = dbmod.connect("clickhouse://localhost/default")
    db.execute("SELECT 1")
    fake_driver.instances[0].fail_with = errors.ServerException("boom", code)
    with pytest.raises(exc) as ei:
        db.execute("SELECT 2")
    assert ei.value.code == code
