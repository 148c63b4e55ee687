"""The uploader killed or failing at each step: a re-run archives every
measurement exactly once, and nothing is lost meanwhile."""
from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import tarfile
import textwrap

import pytest

from analysis import uploader
from ooni_common.db import DatabaseError
from ooni_common.metrics import Metrics
from ooni_common.spool import Spool
from ooni_common.store import StoreError, open_store
from tests.conftest import REPO, free_port
from tests.functional.uploader_support import (
    AFTER,
    assert_archived_exactly_once,
    sample_posts,
    spool_posts,
)


class Killed(BaseException):
    """Stands for the process dying: not an Exception, nothing catches it."""


@pytest.fixture
def posts(shared_data):
    return sample_posts(shared_data)


@pytest.fixture
def spool(cfg):
    return Spool(cfg.spool_dir)


def _spool_two_cans(spool, posts):
    # Two hour dirs and, in one of them, two cans: a crash in the middle
    # leaves work both done and to do.
    a = spool_posts(spool, posts, 12)
    b = spool_posts(spool, posts, 5, cc="DE", testname="signal", start=40)
    exp = {u: posts[i % len(posts)] for i, u in enumerate(a)}
    exp.update({u: posts[(40 + i) % len(posts)] for i, u in enumerate(b)})
    return exp


STEPS = ["build_can", "upload_can", "insert_rows", "mark_done", "delete_posts"]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("nth", [1, 2])
def test_killed_after_step_then_rerun_archives_exactly_once(cfg, db, spool, posts,
                                                            monkeypatch, step, nth):
    expected = _spool_two_cans(spool, posts)
    store = open_store(cfg)
    c = cfg.with_overrides(UPLOADER_MAX_CAN_BYTES=40000)
    real = getattr(uploader, step)
    calls = []

    def dying(*a, **kw):
        out = real(*a, **kw)
        calls.append(1)
        if len(calls) == nth:
            raise Killed(step)
        return out

    monkeypatch.setattr(uploader, step, dying)
    with pytest.raises(Killed):
        uploader.run(c, db, store=store, now=AFTER)
    monkeypatch.setattr(uploader, step, real)
    # Nothing is lost in between: what is not archived is still spooled.
    archived = {r[0] for r in db.execute("SELECT measurement_uid FROM jsonl FINAL")}
    assert all(u in archived or spool.read(u) for u in expected)

    stats = uploader.run(c, db, store=store, now=AFTER)
    assert_archived_exactly_once(db, store, spool, expected)
    assert spool.hour_dirs() == []


def test_killed_in_the_middle_of_deleting(cfg, db, spool, posts, monkeypatch):
    expected = _spool_two_cans(spool, posts)
    store = open_store(cfg)
    real_unlink = os.unlink
    n = []

    def unlink(p, *a, **kw):
        if str(p).endswith(".post"):
            n.append(p)
            if len(n) == 4:
                raise Killed("unlink")
        return real_unlink(p, *a, **kw)

    monkeypatch.setattr(uploader.os, "unlink", unlink)
    with pytest.raises(Killed):
        uploader.run(cfg, db, store=store, now=AFTER)
    monkeypatch.setattr(uploader.os, "unlink", real_unlink)
    uploader.run(cfg, db, store=store, now=AFTER)
    assert_archived_exactly_once(db, store, spool, expected)


def test_db_error_in_the_middle_then_next_run_succeeds(cfg, db, spool, posts, monkeypatch):
    expected = _spool_two_cans(spool, posts)
    store = open_store(cfg)
    real = db.insert
    calls = []

    def failing(table, *a, **kw):
        calls.append(table)
        if len(calls) == 2:
            raise DatabaseError("Code: 210. Connection refused (simulated)")
        return real(table, *a, **kw)

    monkeypatch.setattr(db, "insert", failing)
    m = Metrics("ooni_api_uploader", enabled=False)
    with pytest.raises(DatabaseError):
        uploader.run(cfg, db, store=store, now=AFTER, metrics=m)
    assert m.counters["ooni_api_uploader.run_failed"] == 1
    monkeypatch.setattr(db, "insert", real)
    archived = {r[0] for r in db.execute("SELECT measurement_uid FROM jsonl FINAL")}
    assert archived and all(u in archived or spool.read(u) for u in expected)
    uploader.run(cfg, db, store=store, now=AFTER)
    assert_archived_exactly_once(db, store, spool, expected)


def test_full_disk_fails_cleanly_through_the_command(cfg, db, spool, posts, monkeypatch, capsys):
    expected = _spool_two_cans(spool, posts)
    real = tarfile.TarFile.addfile

    def enospc(self, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "addfile", enospc)
    for k, v in cfg.values.items():
        monkeypatch.setenv(f"OONI_{k}", str(v))
    monkeypatch.delenv("OONI_CONF", raising=False)
    rc = uploader.main([])
    assert rc == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert all(spool.read(u) == b for u, b in expected.items())
    assert db.execute("SELECT count() FROM jsonl")[0][0] == 0

    monkeypatch.setattr(tarfile.TarFile, "addfile", real)
    assert uploader.main([]) == 0
    assert_archived_exactly_once(db, open_store(cfg), spool, expected)


def test_s3_refused_then_back(cfg, db, spool, posts):
    import boto3
    from moto.server import ThreadedMotoServer
    expected = _spool_two_cans(spool, posts)
    port = free_port()  # nothing listens there yet
    c = cfg.with_overrides(ARCHIVE_URL="s3://ooni-data-test", S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                           S3_ACCESS_KEY_ID="test", S3_SECRET_ACCESS_KEY="test", S3_TIMEOUT="1")
    with pytest.raises(StoreError) as e:
        uploader.run(c, db, now=AFTER)
    assert "127.0.0.1" in str(e.value)
    assert all(spool.read(u) == b for u, b in expected.items())
    assert db.execute("SELECT count() FROM jsonl")[0][0] == 0

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="test",
                     aws_secret_access_key="test", region_name="us-east-1"
                     ).create_bucket(Bucket="ooni-data-test")
        stats = uploader.run(c, db, now=AFTER)
        assert stats.resumed == 2  # both cans planned by the failed run
        assert_archived_exactly_once(db, open_store(c), spool, expected)
    finally:
        server.stop()


def test_s3_that_never_answers_times_out(cfg, db, spool, posts):
    expected = _spool_two_cans(spool, posts)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)  # accepts connections in the backlog, never answers
    try:
        c = cfg.with_overrides(ARCHIVE_URL="s3://ooni-data-test",
                               S3_ENDPOINT_URL=f"http://127.0.0.1:{srv.getsockname()[1]}",
                               S3_ACCESS_KEY_ID="test", S3_SECRET_ACCESS_KEY="test",
                               S3_TIMEOUT="0.3")
        with pytest.raises(StoreError):
            uploader.run(c, db, now=AFTER)
    finally:
        srv.close()
    assert all(spool.read(u) == b for u, b in expected.items())
    assert db.execute("SELECT count() FROM jsonl")[0][0] == 0


# --- a real process killed with os._exit at each step ----------------------------

KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    from analysis import uploader
    step = os.environ["KILL_AFTER"]
    real = getattr(uploader, step)
    def dying(*a, **kw):
        real(*a, **kw)
        os._exit(17)
    setattr(uploader, step, dying)
    sys.exit(uploader.main([]))
""")

RERUN_SCRIPT = textwrap.dedent("""
    import json, sys
    from analysis import uploader
    rc = uploader.main([])
    from ooni_common.config import Config
    from ooni_common.db import connect
    db = connect(Config.load().clickhouse_url)
    rows = db.query("SELECT measurement_uid, s3path, linenum FROM jsonl FINAL")
    print(json.dumps({"rc": rc, "rows": rows}))
""")


@pytest.mark.parametrize("step", ["build_can", "upload_can", "insert_rows"])
def test_process_killed_at_step_then_rerun(tmp_path, shared_data, subprocess_env, step):
    posts = sample_posts(shared_data)
    data = tmp_path / "data"
    spool = Spool(data / "spool")
    old = spool_posts(spool, posts, 9, hour=AFTER.replace(year=2020))
    expected = {u: posts[i % len(posts)] for i, u in enumerate(old)}
    env = dict(subprocess_env, OONI_DATA_DIR=str(data), OONI_COLLECTOR_ID="3",
               OONI_CLICKHOUSE_URL=f"chdb://{tmp_path / 'db'}", KILL_AFTER=step,
               PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", KILL_SCRIPT], env=env, capture_output=True,
                       timeout=120)
    assert p.returncode == 17, p.stderr.decode()[-2000:]
    assert all(spool.read(u) == b for u, b in expected.items())  # nothing deleted yet

    p = subprocess.run([sys.executable, "-c", RERUN_SCRIPT], env=env, capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert out["rc"] == 0
    uids = [r["measurement_uid"] for r in out["rows"]]
    assert sorted(uids) == sorted(expected)
    store = open_store(_cfg_for(data))
    for r in out["rows"]:
        import gzip
        line = gzip.decompress(store.get_bytes(r["s3path"])).split(b"\n")[r["linenum"]]
        assert json.loads(line) == json.loads(expected[r["measurement_uid"]])["content"]
        assert ".n3.0.jsonl.gz" in r["s3path"]
    assert spool.hour_dirs() == []
    assert sorted(o.key.rsplit("/", 1)[1] for o in store.list("raw/")) == [
        "2020030512_IT_webconnectivity.n3.0.jsonl.gz", "2020030512_IT_webconnectivity.n3.0.tar.gz"]


def _cfg_for(data):
    from ooni_common.config import Config
    return Config({"DATA_DIR": str(data)})


def test_command_while_the_standalone_process_holds_the_db(tmp_path, monkeypatch, capsys):
    from ooni_common.lock import lock_for_url
    url = f"chdb://{tmp_path / 'db'}"
    held = lock_for_url(url, "ooni-backend run").acquire()
    try:
        monkeypatch.setenv("OONI_CLICKHOUSE_URL", url)
        monkeypatch.setenv("OONI_DATA_DIR", str(tmp_path))
        monkeypatch.delenv("OONI_CONF", raising=False)
        assert uploader.main([]) == 3
        err = capsys.readouterr().err
        assert "in use by" in err and "ooni-backend job uploader" in err
        assert "Traceback" not in err
    finally:
        held.release()
