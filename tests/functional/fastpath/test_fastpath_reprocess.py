"""Reprocessing from the archive (file:// and S3 through moto's server)."""
from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import tarfile

import pytest

from fastpath.reprocess import ReprocessOptions, days_to_process, parse_day, reprocess
from ooni_common.metrics import Metrics
from ooni_common.store import FileStore, S3Store
from tests.conftest import free_port

DAY = dt.date(2024, 3, 5)


def _uid(hour: str, cc: str, tn: str, i: int) -> str:
    return f"{hour}{i % 60:02d}{i // 60 % 60:02d}.{i:06d}_{cc}_{tn}_{i:016x}"


def make_can(samples: list[dict], hour: str, cc: str, tn: str, k: int, start: int):
    """(postcan bytes, jsonl bytes, uids) laid out as the uploader writes them."""
    tbuf, jbuf, uids = io.BytesIO(), io.BytesIO(), []
    with tarfile.open(fileobj=tbuf, mode="w:gz") as tar:
        for i, msm in enumerate(samples):
            uid = _uid(hour, cc, tn, start + i)
            uids.append(uid)
            body = json.dumps({"format": "json", "content": msm}).encode()
            ti = tarfile.TarInfo(f"{hour}_{cc}_{tn}/{uid}.post")
            ti.size = len(body)
            tar.addfile(ti, io.BytesIO(body))
            jbuf.write(json.dumps(msm).encode() + b"\n")
    return tbuf.getvalue(), gzip.compress(jbuf.getvalue()), uids


def key_base(hour: str, cc: str, tn: str, k: int) -> str:
    return f"raw/{hour[:8]}/{hour[8:]}/{cc}/{tn}/{hour}_{cc}_{tn}.n1.{k}"


@pytest.fixture
def samples(shared_data) -> list[dict]:
    out = []
    for name in ("report1.json", "bug_352.json", "tor.json", "meek2.json", "openvpn.json",
                 "signal_022.json"):
        msm = json.loads((shared_data / "measurements" / name).read_text())
        msm["measurement_start_time"] = "2024-03-05 10:00:00"
        msm["test_start_time"] = "2024-03-05 10:00:00"
        out.append(msm)
    return out


def populate(store, db, samples) -> dict[str, list[str]]:
    """Three cans: JSONL + jsonl rows, JSONL + postcan only, postcan only;
    plus a corrupt file and a day outside the range."""
    h = "2024030510"
    uids = {}
    tar, jl, u = make_can(samples, h, "IT", "webconnectivity", 0, 0)
    base = key_base(h, "IT", "webconnectivity", 0)
    store.put_bytes(base + ".tar.gz", tar)
    store.put_bytes(base + ".jsonl.gz", jl)
    if db is not None:
        db.insert("jsonl", ["report_id", "input", "s3path", "linenum", "measurement_uid", "date",
                            "source"],
                  [("r", "", base + ".jsonl.gz", n, uid, DAY, base + ".tar.gz")
                   for n, uid in enumerate(u)])
    uids["jsonl_table"] = u
    tar, jl, u = make_can(samples, h, "DE", "webconnectivity", 0, 100)
    base = key_base(h, "DE", "webconnectivity", 0)
    store.put_bytes(base + ".tar.gz", tar)
    store.put_bytes(base + ".jsonl.gz", jl)
    uids["jsonl_sibling"] = u
    tar, jl, u = make_can(samples[:3], "2024030511", "IR", "tor", 1, 200)
    store.put_bytes(key_base("2024030511", "IR", "tor", 1) + ".tar.gz", tar)
    uids["postcan"] = u
    store.put_bytes(key_base("2024030512", "US", "tor", 0) + ".jsonl.gz", b"not gzip at all")
    tar, _, u = make_can(samples[:2], "2024030610", "IT", "tor", 0, 300)
    store.put_bytes(key_base("2024030610", "IT", "tor", 0) + ".tar.gz", tar)
    uids["next_day"] = u
    return uids


def written_uids(db) -> set[str]:
    return {r[0] for r in db.execute("SELECT measurement_uid FROM fastpath FINAL")}


def opts(**kw) -> ReprocessOptions:
    base = dict(start_day=DAY, end_day=DAY + dt.timedelta(days=1), workers=0)
    base.update(kw)
    return ReprocessOptions(**base)


def test_day_parsing_and_range():
    assert parse_day("2024-3-5") == DAY
    with pytest.raises(ValueError):
        parse_day("2024/03/05")
    assert days_to_process(DAY, DAY + dt.timedelta(days=3), today=DAY + dt.timedelta(days=2)) \
        == [DAY, DAY + dt.timedelta(days=1)]
    assert days_to_process(DAY, DAY, today=DAY + dt.timedelta(days=9)) == []


def test_reprocess_file_archive(cfg, db, samples, tmp_path):
    store = FileStore(tmp_path / "archive")
    uids = populate(store, db, samples)
    metrics = Metrics("fastpath", enabled=False)
    stats = reprocess(cfg, db, metrics, opts(), store=store)
    want = set(uids["jsonl_table"]) | set(uids["jsonl_sibling"]) | set(uids["postcan"])
    assert written_uids(db) == want
    assert stats.measurements == len(want)
    assert stats.written == len(want) and stats.errors == 0
    assert stats.errors_files == 1  # the corrupt file, skipped; the others done
    assert stats.missing_uid == 0
    # the openvpn samples get obs_openvpn rows (its sorting key has no uid,
    # so the two copies with the same report_id may replace each other)
    ovpn = {r[0] for r in db.execute("SELECT measurement_uid FROM obs_openvpn")}
    assert ovpn and ovpn <= {uids["jsonl_table"][4], uids["jsonl_sibling"][4]}
    row = db.query_one("SELECT confirmed, anomaly FROM fastpath FINAL WHERE measurement_uid = "
                       "{u:String}", {"u": uids["jsonl_table"][1]})
    assert row == {"confirmed": "f", "anomaly": "t"}  # no fingerprints in the tables


def test_reprocess_filters_stop_after_and_no_write(cfg, db, samples, tmp_path):
    store = FileStore(tmp_path / "archive")
    uids = populate(store, db, samples)
    metrics = Metrics("fastpath", enabled=False)
    reprocess(cfg, db, metrics, opts(ccs=["DE"], testnames=["webconnectivity"]), store=store)
    assert written_uids(db) == set(uids["jsonl_sibling"])
    db.command("TRUNCATE TABLE fastpath")
    stats = reprocess(cfg, db, metrics, opts(stop_after=4), store=store)
    assert stats.measurements == 4 and len(written_uids(db)) == 4
    db.command("TRUNCATE TABLE fastpath")
    stats = reprocess(cfg, db, metrics, opts(write_to_db=False), store=store)
    assert stats.measurements == 15 and written_uids(db) == set()


def test_reprocess_from_s3_with_worker_processes(cfg, db, samples, shared_data):
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        store = S3Store("ooni-test", "", endpoint_url=endpoint, access_key="test",
                        secret_key="test")
        store._s3.create_bucket(Bucket="ooni-test")
        uids = populate(store, db, samples)
        for kind in ("dns", "http"):
            db.insert_dicts(f"fingerprints_{kind}", json.loads(
                (shared_data / "fingerprints" / f"fingerprints_{kind}.json").read_text()))
        s3cfg = cfg.with_overrides(ARCHIVE_URL="s3://ooni-test", S3_ENDPOINT_URL=endpoint,
                                   S3_ACCESS_KEY_ID="test", S3_SECRET_ACCESS_KEY="test")
        stats = reprocess(s3cfg, db, Metrics("fastpath", enabled=False), opts(workers=2))
    finally:
        server.stop()
    want = set(uids["jsonl_table"]) | set(uids["jsonl_sibling"]) | set(uids["postcan"])
    assert written_uids(db) == want
    assert stats.written == len(want)
    # fingerprints from the tables reached the worker processes
    row = db.query_one("SELECT confirmed FROM fastpath FINAL WHERE measurement_uid = {u:String}",
                       {"u": uids["jsonl_table"][1]})
    assert row == {"confirmed": "t"}


def test_reprocess_legacy_json_can_with_trivial_ids(cfg, db, samples, tmp_path):
    import lz4.frame

    from fastpath.yaml_normalize import trivial_id
    store = FileStore(tmp_path / "archive")
    lines = [json.dumps(m).encode() + b"\n" for m in samples[:3]]
    store.put_bytes(f"canned/{DAY}/20240305T100000Z-IT-AS1-web_connectivity-x-0.2.0-probe.json.lz4",
                    lz4.frame.compress(b"".join(lines) + b"{broken\n"))
    store.put_bytes(f"canned/{DAY}/index.json.gz", gzip.compress(b"{}"))
    stats = reprocess(cfg, db, Metrics("fastpath", enabled=False), opts(), store=store)
    want = {trivial_id(line, m) for line, m in zip(lines, samples[:3])}
    assert all(u.startswith("0120240305") for u in want)
    assert written_uids(db) == want
    assert stats.errors == 1 and stats.errors_files == 0
