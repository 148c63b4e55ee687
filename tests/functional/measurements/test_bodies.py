"""Body lookup of api.md §15: spool, other API hosts over HTTP, jsonl table +
archive (file:// and S3 through moto's server), in the order the spec
gives for fresh and older measurements."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from ooni_common.spool import Spool, hour_dir_name
from ooni_common.store import FileStore, open_store
from tests.conftest import free_port
from tests.functional import msm_rows

from ooniapi.measurements.bodies import (
    BodyKey,
    BodyLookup,
    read_jsonl_line,
    unwrap_post,
)

OLD_UID = "20210709005529.664022_MY_webconnectivity_68e5bea1060d1874"
OLD_RID = "20210709T004340Z_webconnectivity_MY_4818_n1_YCM7J9mGcEHds2K3"
INPUT = "https://www.backtrack-linux.org/"
S3PATH = "raw/20210709/00/MY/webconnectivity/2021070900_MY_webconnectivity.n0.2.jsonl.gz"


def post(content) -> bytes:
    return json.dumps({"format": "json", "content": content}).encode()


def jsonl_gz(lines: list[bytes], members: int = 1) -> bytes:
    """A JSONL object as the uploader writes it; ``members`` > 1 splits it
    into concatenated gzip members."""
    step = max(1, len(lines) // members)
    chunks = [lines[i:i + step] for i in range(0, len(lines), step)]
    return b"".join(gzip.compress(b"".join(x + b"\n" for x in c)) for c in chunks)


def add_jsonl_row(db, rid, inp, uid, s3path, linenum):
    db.insert("jsonl", ["report_id", "input", "s3path", "linenum", "measurement_uid", "date", "source"],
              [[rid, inp, s3path, linenum, uid, "2021-07-09", "test"]])


# --- pure helpers --------------------------------------------------------------

def test_unwrap_post():
    assert json.loads(unwrap_post(post({"a": "é"}))) == {"a": "é"}
    assert unwrap_post(b'{"format":"json","content":"{\\"a\\":1}"}') == b'{"a":1}'
    assert unwrap_post(b'{"format":"yaml","content":"---"}') is None
    assert unwrap_post(b"not json") is None
    assert unwrap_post(b'{"format":"json","content":[1]}') is None


def test_read_jsonl_line():
    lines = [json.dumps({"n": i}).encode() for i in range(40)]
    for members in (1, 3, 40):
        gz = jsonl_gz(lines, members)
        assert read_jsonl_line(gz, 0) == lines[0]
        assert read_jsonl_line(gz, 35) == lines[35]
        assert read_jsonl_line(gz, 39) == lines[39]
        assert read_jsonl_line(gz, 40) is None
    assert read_jsonl_line(b"garbage", 0) is None
    assert read_jsonl_line(jsonl_gz(lines), -1) is None


def test_freshness_and_format():
    now = dt.datetime(2024, 3, 5, 12, 0)
    fresh = msm_rows.make_uid(now - dt.timedelta(minutes=30), "IT", "ndt", "a")
    stale = msm_rows.make_uid(now - dt.timedelta(minutes=70), "IT", "ndt", "a")
    assert BodyKey(fresh, OLD_RID).fresh(now) and not BodyKey(stale, OLD_RID).fresh(now)
    assert BodyKey(fresh, OLD_RID).new_format
    assert not BodyKey(fresh, "20200712T143743Z_AS27775_" + "x" * 50).new_format
    assert not BodyKey(None, OLD_RID).new_format


# --- sources through the API --------------------------------------------------

@pytest.fixture
def legacy(db):
    r = msm_rows.row(measurement_uid=OLD_UID, report_id=OLD_RID, input=INPUT, probe_cc="MY",
                     probe_asn=4818, measurement_start_time=dt.datetime(2021, 7, 9, 0, 55, 13))
    msm_rows.insert(db, [r])
    return r


def raw(client, uid):
    return client.get("/api/v1/raw_measurement", query_string={"measurement_uid": uid})


def test_archive_file_store_spec_fixture(client, cfg, db, legacy):
    # api.md §19.26: the legacy fixture is line 35 of this object
    body = json.dumps({"report_id": OLD_RID, "input": INPUT, "probe_cc": "MY"}).encode()
    lines = [json.dumps({"other": i}).encode() for i in range(40)]
    lines[35] = body
    open_store(cfg).put_bytes(S3PATH, jsonl_gz(lines, members=4))
    add_jsonl_row(db, OLD_RID, INPUT, OLD_UID, S3PATH, 35)
    r = raw(client, OLD_UID)
    assert r.status_code == 200 and r.data == body
    r = client.get(f"/api/v1/measurement/{OLD_UID}")
    assert r.status_code == 200 and r.data == body
    doc = client.get("/api/v1/measurement_meta",
                     query_string={"report_id": OLD_RID, "input": INPUT, "full": "true"}).get_json()
    assert doc["raw_measurement"] == body.decode()


def test_archive_old_rows_without_uid(client, cfg, db, legacy):
    # rows written before uids were recorded: found through (report_id, input)
    open_store(cfg).put_bytes(S3PATH, jsonl_gz([b'{"old":true}']))
    add_jsonl_row(db, OLD_RID, INPUT, "", S3PATH, 0)
    assert raw(client, OLD_UID).get_json() == {"old": True}


def test_archive_prefers_own_uid_row(client, cfg, db, legacy):
    open_store(cfg).put_bytes(S3PATH, jsonl_gz([b'{"n":0}', b'{"n":1}', b'{"n":2}']))
    add_jsonl_row(db, OLD_RID, INPUT, "", S3PATH, 0)
    add_jsonl_row(db, OLD_RID, INPUT, OLD_UID[:-1] + "0", S3PATH, 1)
    add_jsonl_row(db, OLD_RID, INPUT, OLD_UID, S3PATH, 2)
    assert raw(client, OLD_UID).get_json() == {"n": 2}


def test_archive_broken_falls_back_to_spool(client, cfg, db, legacy):
    add_jsonl_row(db, OLD_RID, INPUT, OLD_UID, "raw/missing.jsonl.gz", 0)
    assert raw(client, OLD_UID).status_code == 404
    Spool(cfg.spool_dir).write(OLD_UID, post({"from": "spool"}))
    assert raw(client, OLD_UID).get_json() == {"from": "spool"}


@pytest.fixture
def moto_s3():
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket="ooni-data-msm")
    yield url
    server.stop()


def test_archive_s3_through_moto(cfg, db, legacy, moto_s3, notifier):
    from ooniapi.core.app import create_app
    c = cfg.with_overrides(ARCHIVE_URL="s3://ooni-data-msm/pfx", S3_ENDPOINT_URL=moto_s3,
                           S3_ACCESS_KEY_ID="test", S3_SECRET_ACCESS_KEY="test", S3_TIMEOUT="2")
    body = b'{"from":"s3","probe_cc":"MY"}'
    open_store(c).put_bytes(S3PATH, jsonl_gz([b"{}"] * 35 + [body]))
    add_jsonl_row(db, OLD_RID, INPUT, OLD_UID, S3PATH, 35)
    client = create_app(c, db=db, notify_fastpath=notifier).test_client()
    r = raw(client, OLD_UID)
    assert r.status_code == 200 and r.data == body
    assert client.get(f"/api/v1/measurement/{OLD_UID}").data == body


class _PeerSpool(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    requests: list[str] = []

    def do_GET(self):
        self.requests.append(self.path)
        data = self.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def peers():
    """Two peer API hosts serving their spools; returns (urls, handler classes)."""
    servers, out = [], []
    for _ in range(2):
        handler = type("Peer", (_PeerSpool,), {"files": {}, "requests": []})
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        out.append((f"http://127.0.0.1:{srv.server_address[1]}", handler))
    yield out
    for s in servers:
        s.shutdown()
        s.server_close()


def test_other_hosts(cfg, db, peers, notifier):
    from ooniapi.core.app import create_app
    dead = f"http://127.0.0.1:{free_port()}"
    (url1, h1), (url2, h2) = peers
    c = cfg.with_overrides(HOSTNAME="api-self.example",
                           COLLECTORS=["api-self.example", dead, url1, url2],
                           BODY_FETCH_TIMEOUT="1")
    now = dt.datetime.utcnow()
    r = msm_rows.row(measurement_start_time=now - dt.timedelta(minutes=5))
    r["measurement_uid"] = msm_rows.make_uid(now - dt.timedelta(minutes=4), "IT", "webconnectivity", "p")
    msm_rows.insert(db, [r])
    uid = r["measurement_uid"]
    path = f"/measurement_spool/{hour_dir_name(uid)}/{uid}.post"
    h2.files[path] = post({"from": "peer2"})
    client = create_app(c, db=db, notify_fastpath=notifier).test_client()
    resp = raw(client, uid)
    assert resp.status_code == 200 and resp.get_json() == {"from": "peer2"}
    # the first live peer was asked (404) before the second; self never
    assert h1.requests == [path] and h2.requests == [path]
    assert client.get(f"/api/v1/measurement/{uid}").get_json() == {"from": "peer2"}


def test_lookup_order_fresh_vs_old(cfg, db, tmp_path):
    """new & fresh: spool first; new & older: archive first; old format:
    archive, then spool."""
    store = FileStore(tmp_path / "archive")
    spool = Spool(cfg.spool_dir)
    asked = []

    def http_get(url, timeout):
        asked.append(url)
        return post({"from": "host"})

    c = cfg.with_overrides(COLLECTORS=["http://peer.invalid"], HOSTNAME="self")
    bl = BodyLookup(c, spool, db, http_get=http_get, store_opener=lambda _: store)
    now = dt.datetime(2024, 3, 5, 12, 0)
    rid = "20240305T100000Z_webconnectivity_IT_30722_n1_AbCdEfGhIjKlMnOp"
    fresh = msm_rows.make_uid(now - dt.timedelta(minutes=10), "IT", "webconnectivity", "f")
    older = msm_rows.make_uid(now - dt.timedelta(hours=3), "IT", "webconnectivity", "o")
    for uid, line in ((fresh, b'{"from":"s3","u":"f"}'), (older, b'{"from":"s3","u":"o"}')):
        key = f"raw/x/{uid}.jsonl.gz"
        store.put_bytes(key, jsonl_gz([line]))
        add_jsonl_row(db, rid, "", uid, key, 0)
        spool.write(uid, post({"from": "spool"}))
    assert json.loads(bl.fetch(BodyKey(fresh, rid), now)) == {"from": "spool"}
    assert json.loads(bl.fetch(BodyKey(older, rid), now)) == {"from": "s3", "u": "o"}
    # fresh, not in the spool: other hosts before the archive
    spool.path_for(fresh).unlink()
    assert json.loads(bl.fetch(BodyKey(fresh, rid), now)) == {"from": "host"}
    assert len(asked) == 1
    # older, not archived: spool, then hosts
    db.command("TRUNCATE TABLE jsonl")
    assert json.loads(bl.fetch(BodyKey(older, rid), now)) == {"from": "spool"}
    spool.path_for(older).unlink()
    assert json.loads(bl.fetch(BodyKey(older, rid), now)) == {"from": "host"}
    # old report_id format: never the other hosts
    old_rid = "20200712T143743Z_AS27775_" + "x" * 50
    asked.clear()
    assert bl.fetch(BodyKey(older, old_rid), now) is None
    assert asked == []


def test_bodies_archived_by_the_uploader(client, cfg, db, shared_data):
    """Real samples spooled as the API does, archived by the real uploader,
    read back through the API from jsonl + the file:// archive."""
    from analysis import uploader
    spool = Spool(cfg.spool_dir)
    pairs = [(r, m) for r, m in msm_rows.sample_rows(shared_data)
             if r["probe_asn"] != 0 and r["report_id"]]
    hour = dt.datetime(2024, 3, 5, 10)
    rows = []
    for i, (r, msm) in enumerate(pairs):
        uid = f"{hour + dt.timedelta(microseconds=i):%Y%m%d%H%M%S.%f}_IT_webconnectivity_{i:016x}"
        spool.write(uid, post(msm))
        rows.append(dict(r, measurement_uid=uid))
    spool.mark_handled([r["measurement_uid"] for r in rows])
    msm_rows.insert(db, rows)
    uploader.run(cfg, db, now=hour + dt.timedelta(hours=2))
    assert db.execute("SELECT count() FROM jsonl")[0][0] == len(rows)
    assert not any(spool.path_for(r["measurement_uid"]).exists() for r in rows)
    for r, (_, msm) in zip(rows, pairs):
        resp = raw(client, r["measurement_uid"])
        assert resp.status_code == 200, r["measurement_uid"]
        assert resp.get_json() == msm
