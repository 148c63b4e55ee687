"""Measurement uploader against the embedded DB, with the file:// store and
a real S3 protocol server (moto) on loopback."""
from __future__ import annotations

import datetime as dt
import gzip
import json

import boto3
import pytest

from analysis import uploader
from ooni_common.metrics import Metrics
from ooni_common.spool import Spool
from ooni_common.store import FileStore, S3Store, open_store
from tests.conftest import free_port
from tests.functional.uploader_support import (
    AFTER,
    HOUR,
    assert_archived_exactly_once,
    postcan_members,
    sample_posts,
    spool_posts,
)


@pytest.fixture
def posts(shared_data):
    return sample_posts(shared_data)


@pytest.fixture
def spool(cfg):
    return Spool(cfg.spool_dir)


def test_archives_closed_hours_to_file_store(cfg, db, spool, posts):
    uids = spool_posts(spool, posts, 60)
    uids += spool_posts(spool, posts, 7, cc="BR", testname="telegram", start=100)
    fresh = spool_posts(spool, posts, 5, hour=AFTER, start=200)  # hour still open
    store = open_store(cfg)
    m = Metrics("ooni_api_uploader", enabled=False)

    stats = uploader.run(cfg, db, store=store, now=AFTER + dt.timedelta(minutes=30), metrics=m)

    assert stats.measurements == 67 and stats.cans == 2
    expected = {u: posts[i % len(posts)] for i, u in enumerate(uids[:60])}
    expected.update({u: posts[(100 + i) % len(posts)] for i, u in enumerate(uids[60:])})
    assert_archived_exactly_once(db, store, spool, expected)
    keys = sorted(o.key for o in store.list("raw/"))
    assert keys == [
        "raw/20240305/10/BR/telegram/2024030510_BR_telegram.n1.0.jsonl.gz",
        "raw/20240305/10/BR/telegram/2024030510_BR_telegram.n1.0.tar.gz",
        "raw/20240305/10/IT/webconnectivity/2024030510_IT_webconnectivity.n1.0.jsonl.gz",
        "raw/20240305/10/IT/webconnectivity/2024030510_IT_webconnectivity.n1.0.tar.gz",
    ]
    # Closed directories are gone; the open hour is untouched.
    assert [p.name for p in spool.hour_dirs()] == ["2024030512_IT_webconnectivity"]
    assert all(spool.read(u) for u in fresh)
    row = db.query_one("SELECT * FROM jsonl FINAL WHERE measurement_uid = {u:String}",
                       {"u": uids[0]})
    content = json.loads(posts[0])["content"]
    assert row["report_id"] == content["report_id"]
    assert row["input"] == (content.get("input") or "")
    assert row["date"] == dt.date(2024, 3, 5)
    assert m.counters["ooni_api_uploader.msmt_count"] == 67
    assert m.counters["ooni_api_uploader.postcan_count"] == 2


def test_second_run_is_a_no_op(cfg, db, spool, posts):
    spool_posts(spool, posts, 10)
    store = open_store(cfg)
    uploader.run(cfg, db, store=store, now=AFTER)
    before = sorted((o.key, o.size) for o in store.list("raw/"))
    stats = uploader.run(cfg, db, store=store, now=AFTER)
    assert stats.measurements == 0
    assert sorted((o.key, o.size) for o in store.list("raw/")) == before
    assert db.execute("SELECT count() FROM jsonl")[0][0] == 10


def test_unhandled_entries_wait_for_the_grace_period(cfg, db, spool, posts):
    marked = spool_posts(spool, posts, 8)
    unmarked = spool_posts(spool, posts, 4, mark=False, start=50)
    store = open_store(cfg)
    m = Metrics("ooni_api_uploader", enabled=False)

    s1 = uploader.run(cfg, db, store=store, now=AFTER, metrics=m)
    assert s1.measurements == 8 and s1.unhandled_waiting == 4
    assert all(spool.read(u) for u in unmarked)
    assert m.gauges["ooni_api_uploader.unhandled_waiting"] == 4

    # A day later they go, in a new can that does not overwrite the first.
    s2 = uploader.run(cfg, db, store=store, now=HOUR + dt.timedelta(hours=25, minutes=5), metrics=m)
    assert s2.measurements == 4 and s2.unhandled_archived == 4
    assert m.counters["ooni_api_uploader.unhandled_archived"] == 4
    names = sorted(o.key.rsplit("/", 1)[1] for o in store.list("raw/"))
    assert names == [f"2024030510_IT_webconnectivity.n1.{k}.{ext}"
                     for k in (0, 1) for ext in ("jsonl.gz", "tar.gz")]
    expected = {u: posts[i % len(posts)] for i, u in enumerate(marked)}
    expected.update({u: posts[(50 + i) % len(posts)] for i, u in enumerate(unmarked)})
    assert_archived_exactly_once(db, store, spool, expected)
    assert spool.hour_dirs() == []


def test_unparseable_post_is_kept_in_the_postcan_with_an_empty_line(cfg, db, spool, posts):
    good = spool_posts(spool, posts, 2)
    bad_uid = "20240305100000.999999_IT_webconnectivity_ffffffffffffffff"
    spool.write(bad_uid, b"{not json")
    spool.mark_handled([bad_uid])
    store = open_store(cfg)
    stats = uploader.run(cfg, db, store=store, now=AFTER)
    assert stats.measurements == 3 and stats.unparseable == 1
    key = "raw/20240305/10/IT/webconnectivity/2024030510_IT_webconnectivity.n1.0"
    lines = gzip.decompress(store.get_bytes(key + ".jsonl.gz")).split(b"\n")
    assert lines == [lines[0], lines[1], b"{}", b""]
    members = postcan_members(store, key + ".tar.gz")
    assert members[f"2024030510_IT_webconnectivity/{bad_uid}.post"] == b"{not json"
    # Legacy: no lookup row for a measurement that could not be parsed.
    got = {r[0] for r in db.execute("SELECT measurement_uid FROM jsonl FINAL")}
    assert got == set(good)


def test_cans_split_by_size(cfg, db, spool, posts):
    uids = spool_posts(spool, posts, 30)
    store = open_store(cfg)
    c = cfg.with_overrides(UPLOADER_MAX_CAN_BYTES=20000)
    stats = uploader.run(c, db, store=store, now=AFTER)
    assert stats.cans > 2
    expected = {u: posts[i % len(posts)] for i, u in enumerate(uids)}
    assert_archived_exactly_once(db, store, spool, expected)


@pytest.fixture
def moto_s3():
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    s3.create_bucket(Bucket="ooni-data-test")
    yield url
    server.stop()


def s3_cfg(cfg, endpoint):
    return cfg.with_overrides(ARCHIVE_URL="s3://ooni-data-test", S3_ENDPOINT_URL=endpoint,
                              S3_ACCESS_KEY_ID="test", S3_SECRET_ACCESS_KEY="test",
                              S3_TIMEOUT="2")


def test_archives_to_s3_protocol_server(cfg, db, spool, posts, moto_s3):
    uids = spool_posts(spool, posts, 25)
    c = s3_cfg(cfg, moto_s3)
    store = open_store(c)
    assert isinstance(store, S3Store)
    stats = uploader.run(c, db, now=AFTER)
    assert stats.measurements == 25
    expected = {u: posts[i % len(posts)] for i, u in enumerate(uids)}
    assert_archived_exactly_once(db, store, spool, expected)


def test_job_from_registry_archives(cfg, db, spool, posts):
    from analysis.jobs import all_jobs
    # An hour long closed by the clock of the machine.
    spool_posts(spool, posts, 3, hour=dt.datetime(2020, 1, 1, 0))
    all_jobs()["uploader"].run(cfg, db)
    assert db.execute("SELECT count() FROM jsonl FINAL")[0][0] == 3
    assert isinstance(open_store(cfg), FileStore)
    assert spool.hour_dirs() == []
