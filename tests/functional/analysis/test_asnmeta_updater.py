"""ASN metadata updater with the shared sample file."""
from __future__ import annotations

import datetime as dt

import pytest

from analysis import asnmeta, cli
from analysis.runner import JobError
from ooni_common.db import DatabaseError
from ooni_common.metrics import Metrics


@pytest.fixture
def seeded(db):
    db.insert("asnmeta", asnmeta.COLUMNS, [(64500, "Old Org", "IT", dt.date(2001, 1, 1), "OLD", "RIPE")])
    return db


def conf(cfg, shared_data, url=None):
    return cfg.with_overrides(ASNMETA_URL=url or str(shared_data / "asnmeta" / "all_as_org_map.sample.json"),
                              ASNMETA_MIN_ROWS=5)


def asns(db):
    return {r[0] for r in db.execute("SELECT DISTINCT asn FROM asnmeta")}


def test_update_from_sample(cfg, seeded, shared_data):
    m = Metrics("asnmeta_updater", enabled=False)
    assert asnmeta.run(conf(cfg, shared_data), seeded, metrics=m) == 10
    rows = seeded.query("SELECT * FROM asnmeta WHERE asn = 1 ORDER BY changed")
    assert [(r["org_name"], r["cc"], r["changed"], r["aut_name"], r["source"]) for r in rows] == [
        ("Level 3 Communications, Inc.", "US", dt.date(2004, 6, 4), "LVLT-1", "ARIN"),
        ("Level 3 Parent, LLC", "US", dt.date(2018, 2, 20), "LVLT-1", "ARIN")]
    latest = seeded.execute("SELECT argMax(org_name, changed) FROM asnmeta WHERE asn = 1")[0][0]
    assert latest == "Level 3 Parent, LLC"
    assert 64500 not in asns(seeded)
    assert m.gauges["asnmeta_updater.asnmeta_tmp_len"] == 10
    assert m.gauges["asnmeta_updater.asnmeta_update_progress"] == 4
    assert "asnmeta_updater.fetch_data" in m.timers


@pytest.mark.parametrize("doc,msg", [
    (b'{"x1": []}', "key 'x1' is not an integer"),
    (b'{"1": [["Org", "US", "20040604", "AUT"]]}', "fewer than 5 elements"),
    (b'{"1": [["Org", "US", "2004-06-04", "AUT", "ARIN"]]}', "bad date"),
    (b'{"1": [["Org", "US", "2004', "not valid JSON"),
])
def test_bad_input_keeps_the_table(cfg, seeded, shared_data, tmp_path, doc, msg):
    p = tmp_path / "bad.json"
    p.write_bytes(doc)
    with pytest.raises(JobError, match=msg):
        asnmeta.run(conf(cfg, shared_data, f"file://{p}"), seeded)
    assert asns(seeded) == {64500}


def test_too_few_rows_for_the_legacy_bound(cfg, seeded, shared_data):
    c = conf(cfg, shared_data).with_overrides(ASNMETA_MIN_ROWS=100000)
    with pytest.raises(JobError, match="10 rows, expected more than 100000"):
        asnmeta.run(c, seeded)
    assert asns(seeded) == {64500}


def test_db_error_then_next_run_succeeds(cfg, seeded, shared_data, monkeypatch):
    real = seeded.execute

    def failing(sql, *a, **kw):
        if sql.startswith("SELECT count() FROM asnmeta_tmp"):
            raise DatabaseError("Code: 159. Timeout exceeded (simulated)")
        return real(sql, *a, **kw)

    monkeypatch.setattr(seeded, "execute", failing)
    with pytest.raises(DatabaseError):
        asnmeta.run(conf(cfg, shared_data), seeded)
    monkeypatch.setattr(seeded, "execute", real)
    assert asns(seeded) == {64500}
    assert asnmeta.run(conf(cfg, shared_data), seeded) == 10


def test_cli_missing_source_exits_non_zero(cfg, seeded, shared_data, tmp_path, monkeypatch, capsys):
    for k, v in conf(cfg, shared_data, str(tmp_path / "missing.json")).values.items():
        monkeypatch.setenv(f"OONI_{k}", str(v))
    monkeypatch.delenv("OONI_CONF", raising=False)
    assert cli.main(["--update-asnmeta"]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "missing.json" in err
    assert asns(seeded) == {64500}
