"""Fingerprints updater from local paths and a loopback HTTP server."""
from __future__ import annotations

import functools
import http.server
import threading

import pytest

from analysis import fingerprints
from analysis.runner import JobError
from ooni_common.db import DatabaseError
from ooni_common.metrics import Metrics

OLD = ("old.fp", "nat", "", "dns", "full", "1.2.3.4", 5, "", "", "", "")


@pytest.fixture
def seeded(db):
    db.insert("fingerprints_dns", fingerprints.COLUMNS, [OLD])
    db.insert("fingerprints_http", fingerprints.COLUMNS, [OLD[:3] + ("body",) + OLD[4:]])
    return db


def names(db, kind):
    return {r[0] for r in db.execute(f"SELECT name FROM fingerprints_{kind}")}


def conf(cfg, fp_dir, dns=None, http=None):
    return cfg.with_overrides(FINGERPRINTS_DNS_URL=dns or str(fp_dir / "fingerprints_dns.csv"),
                              FINGERPRINTS_HTTP_URL=http or f"file://{fp_dir / 'fingerprints_http.csv'}")


def test_update_from_paths(cfg, seeded, shared_data):
    m = Metrics("fingerprints_updater", enabled=False)
    counts = fingerprints.run(conf(cfg, shared_data / "fingerprints"), seeded, metrics=m)
    assert counts == {"dns": 226, "http": 1729}
    assert len(names(seeded, "dns")) == 226 and "old.fp" not in names(seeded, "dns")
    assert m.gauges["fingerprints_updater.fingerprints_dns_tmp_len"] == 226
    assert m.gauges["fingerprints_updater.fingerprints_http_tmp_len"] == 1729
    assert m.gauges["fingerprints_updater.fingerprints_update_progress"] == 8
    # Patterns with CRLF inside quoted fields keep it.
    pat = seeded.execute("SELECT pattern FROM fingerprints_http WHERE name = 'ooni.th_11'")[0][0]
    assert "\r\n" in pat
    scopes = dict(seeded.execute("SELECT toString(scope), count() FROM fingerprints_http GROUP BY scope"))
    assert scopes == {"isp": 584, "fp": 475, "nat": 239, "vbw": 163, "prod": 140, "inst": 126,
                      "injb": 1, "prov": 1}


@pytest.fixture
def http_dir(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield tmp_path, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_update_over_loopback_http(cfg, seeded, shared_data, http_dir):
    d, base = http_dir
    for k in ("dns", "http"):
        (d / f"fingerprints_{k}.csv").write_bytes(
            (shared_data / "fingerprints" / f"fingerprints_{k}.csv").read_bytes())
    c = cfg.with_overrides(FINGERPRINTS_DNS_URL=f"{base}/fingerprints_dns.csv",
                           FINGERPRINTS_HTTP_URL=f"{base}/fingerprints_http.csv")
    assert fingerprints.run(c, seeded) == {"dns": 226, "http": 1729}


def test_http_404_fails_cleanly(cfg, seeded, http_dir):
    _, base = http_dir
    c = cfg.with_overrides(FINGERPRINTS_DNS_URL=f"{base}/nope.csv")
    with pytest.raises(JobError, match="HTTP 404"):
        fingerprints.run(c, seeded)
    assert names(seeded, "dns") == {"old.fp"}


def _corrupt(shared_data, tmp_path, kind, old, new):
    src = (shared_data / "fingerprints" / f"fingerprints_{kind}.csv").read_bytes()
    assert old in src
    p = tmp_path / f"fingerprints_{kind}.csv"
    p.write_bytes(src.replace(old, new, 1))
    return str(p)


@pytest.mark.parametrize("old,new,msg", [
    (b",full,", b",full,x,", r"malformed row: 12 columns"),
    (b",full,", b",fuzzy,", r"unknown pattern_type 'fuzzy'"),
    (b"\r\n", b"\r\nbad.name,zz,,dns,full,1.1.1.1,5,,,,\r\n", r"fingerprints_dns.csv:2: unknown scope 'zz'"),
])
def test_malformed_dns_csv_changes_neither_table(cfg, seeded, shared_data, tmp_path, old, new, msg):
    dns = _corrupt(shared_data, tmp_path, "dns", old, new)
    with pytest.raises(JobError, match=msg):
        fingerprints.run(conf(cfg, shared_data / "fingerprints", dns=dns), seeded)
    assert names(seeded, "dns") == {"old.fp"} and names(seeded, "http") == {"old.fp"}


def test_bad_confidence_in_http_csv(cfg, seeded, shared_data, tmp_path):
    rows = (shared_data / "fingerprints" / "fingerprints_http.csv").read_bytes().split(b"\r\n")
    head, first = rows[0], rows[1].split(b",")
    first[6] = b"lots"
    p = tmp_path / "h.csv"
    p.write_bytes(b"\r\n".join([head, b",".join(first)] + rows[2:]))
    with pytest.raises(JobError, match=r"confidence_no_fp 'lots' is not an integer"):
        fingerprints.run(conf(cfg, shared_data / "fingerprints", http=str(p)), seeded)
    assert names(seeded, "dns") == {"old.fp"}


def test_db_error_in_the_middle_then_next_run_succeeds(cfg, seeded, shared_data, monkeypatch):
    real = seeded.insert
    calls = []

    def failing(table, *a, **kw):
        calls.append(table)
        if table == "fingerprints_http_tmp":
            raise DatabaseError("Code: 252. Too many parts (simulated)")
        return real(table, *a, **kw)

    monkeypatch.setattr(seeded, "insert", failing)
    with pytest.raises(DatabaseError):
        fingerprints.run(conf(cfg, shared_data / "fingerprints"), seeded)
    assert calls == ["fingerprints_dns_tmp", "fingerprints_http_tmp"]
    assert names(seeded, "dns") == {"old.fp"} and names(seeded, "http") == {"old.fp"}
    monkeypatch.setattr(seeded, "insert", real)
    assert fingerprints.run(conf(cfg, shared_data / "fingerprints"), seeded) == {"dns": 226, "http": 1729}


def test_registry_job(cfg, seeded, shared_data):
    from analysis.jobs import all_jobs
    all_jobs()["fingerprints"].run(conf(cfg, shared_data / "fingerprints"), seeded)
    assert len(names(seeded, "http")) == 1729
