"""DB backup to the archive (file store and an S3 protocol server) and
restore into a fresh database in the same embedded engine."""
from __future__ import annotations

import datetime as dt
import errno
import os

import boto3
import pytest
import zstandard

from analysis import backup
from analysis.runner import JobError
from ooni_common.db import DatabaseError, connect
from ooni_common.metrics import Metrics
from ooni_common.store import StoreError, open_store
from tests.conftest import free_port

CITIZENLAB = [("example.org", "https://example.org/", "it", "NEWS"),
              ("x.example", "http://x.example/a,b\"c\r\nd", "ZZ", "HUMR"),
              ("ü.example", "https://ü.example/ö", "br", "")]
INCIDENTS = [dict(id="inc1", title="t, with comma", text="multi\nline", event_type="incident",
                  published=1, CCs=["IT", "RU"], ASNs=[3269, 4294967295], domains=["a.org"],
                  tags=[], links=["https://x/"], test_names=["web_connectivity"],
                  short_description="", email_address="a@b.c", reported_by="r",
                  creator_account_id="0" * 32, end_time=None,
                  start_time=dt.datetime(2024, 1, 2, 3, 4, 5),
                  update_time=dt.datetime(2024, 1, 2, 3, 4, 6),
                  create_time=dt.datetime(2024, 1, 2, 3, 4, 7)),
             dict(id="inc2", title="", text="\\N is not null here", event_type="", published=0,
                  CCs=[], ASNs=[], domains=[], tags=["x"], links=[], test_names=[],
                  short_description="s", email_address="", reported_by="", creator_account_id="f" * 32,
                  end_time=dt.datetime(2024, 2, 1), start_time=dt.datetime(2024, 1, 1),
                  update_time=dt.datetime(2024, 1, 1), create_time=dt.datetime(2024, 1, 1))]
THI = [("rdn1", "th.ooni.org", "0.th.ooni.org", "do", "ams3", "10.0.0.1", "::1", None, 1, None),
       ("rdn2", "th.ooni.org", "1.th.ooni.org", "do", "fra1", "10.0.0.2", "2001:db8::2",
        dt.datetime(2024, 5, 1, 0, 0), 1, dt.datetime(2024, 5, 2, 0, 0))]
THI_COLS = ("rdn", "dns_zone", "name", "provider", "region", "ipaddr", "ipv6addr", "draining_at",
            "sign", "destroyed_at")
TABLES = "citizenlab,incidents,test_helper_instances"


def fill(db):
    db.insert("citizenlab", ("domain", "url", "cc", "category_code"), CITIZENLAB)
    db.insert_dicts("incidents", INCIDENTS)
    db.insert("test_helper_instances", THI_COLS, THI)
    # More rows than a chunk, to exercise chunking.
    db.insert("citizenlab", ("domain", "url", "cc", "category_code"),
              [(f"d{i}.org", f"https://d{i}.org/", "us", "NEWS") for i in range(25)])


def snapshot(db):
    return {
        "citizenlab": sorted(db.execute("SELECT domain, url, cc, category_code FROM citizenlab")),
        "incidents": sorted(db.execute("SELECT * FROM incidents ORDER BY id")),
        "thi": sorted(db.execute("SELECT * FROM test_helper_instances"), key=repr),
    }


def test_backup_then_restore_into_fresh_database(cfg, db, session_dir):
    fill(db)
    c = cfg.with_overrides(DB_BACKUP_TABLES=TABLES, DB_BACKUP_CHUNK_ROWS=10, DB_BACKUP_PAUSE=0.25)
    store = open_store(c)
    pauses = []
    m = Metrics("db-backup", enabled=False)
    counts = backup.run(c, db, store=store, day="20240601", metrics=m, sleep=pauses.append)
    assert counts == {"citizenlab": 28, "incidents": 2, "test_helper_instances": 2}
    assert pauses == [0.25, 0.25]  # throttled between the three citizenlab chunks
    assert sorted(o.key for o in store.list("db-backup/")) == [
        "db-backup/20240601/citizenlab.csv.zst", "db-backup/20240601/incidents.csv.zst",
        "db-backup/20240601/test_helper_instances.csv.zst"]
    text = zstandard.ZstdDecompressor().decompressobj().decompress(
        store.get_bytes("db-backup/20240601/citizenlab.csv.zst")).decode()
    assert text.startswith("domain,url,cc,category_code\n")
    assert "db-backup.table_citizenlab_backup_time_ms" in m.timers
    assert "db-backup.run_export" in m.timers and "db-backup.upload_to_s3" in m.timers

    db.command("DROP DATABASE IF EXISTS restore_test")
    fresh = connect(f"chdb://{session_dir / 'db'}?database=restore_test")
    assert fresh.database == "restore_test"
    restored = backup.restore(c, fresh, store=store)  # the latest day
    assert restored == counts
    assert snapshot(fresh) == snapshot(db)
    # A second restore would duplicate: refused unless --replace.
    with pytest.raises(JobError, match="already holds 28 rows"):
        backup.restore(c, fresh, store=store, day="20240601")
    assert backup.restore(c, fresh, store=store, day="20240601", replace=True) == counts
    assert snapshot(fresh) == snapshot(db)


def test_backup_streams_to_s3_multipart(cfg, db):
    from moto.server import ThreadedMotoServer
    port = free_port()
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    try:
        url = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                     region_name="us-east-1").create_bucket(Bucket="backups")
        # Incompressible enough to need two 5 MiB parts (S3's minimum part size).
        rnd = os.urandom(40000 * 150).hex()
        db.insert("citizenlab", ("domain", "url", "cc", "category_code"),
                  [(f"d{i}.org", f"https://d{i}.org/{rnd[i * 300:(i + 1) * 300]}", "us", "NEWS")
                   for i in range(40000)])
        c = cfg.with_overrides(DB_BACKUP_TABLES="citizenlab", DB_BACKUP_URL="s3://backups/ch",
                               S3_ENDPOINT_URL=url, S3_ACCESS_KEY_ID="k", S3_SECRET_ACCESS_KEY="s",
                               DB_BACKUP_CHUNK_ROWS=10000, DB_BACKUP_PAUSE=0, DB_BACKUP_ZSTD_LEVEL=1)
        store = backup.backup_store(c)
        real = store.open_writer
        store.open_writer = lambda key: type(real(key))(store, key, part_size=5 * 1024 * 1024)
        backup.run(c, db, store=store, day="20240602")
        head = boto3.client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                            region_name="us-east-1").head_object(
            Bucket="backups", Key="ch/db-backup/20240602/citizenlab.csv.zst")
        assert head["ETag"].strip('"').endswith("-2")  # two parts
        data = store.get_bytes("db-backup/20240602/citizenlab.csv.zst")
        lines = list(backup.read_csv(data))
        assert len(lines) == 40001 and lines[0] == ["domain", "url", "cc", "category_code"]
    finally:
        srv.stop()


def test_s3_refused_fails_cleanly(cfg, db):
    db.insert("citizenlab", ("domain", "url", "cc", "category_code"), CITIZENLAB)
    c = cfg.with_overrides(DB_BACKUP_TABLES="citizenlab", DB_BACKUP_URL="s3://backups",
                           S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", S3_ACCESS_KEY_ID="k",
                           S3_SECRET_ACCESS_KEY="s", S3_TIMEOUT="0.5", DB_BACKUP_PAUSE=0)
    with pytest.raises(StoreError):
        backup.run(c, db)


def test_full_disk_and_db_error_leave_no_partial_object(cfg, db, monkeypatch):
    fill(db)
    c = cfg.with_overrides(DB_BACKUP_TABLES="citizenlab", DB_BACKUP_CHUNK_ROWS=10, DB_BACKUP_PAUSE=0)
    store = open_store(c)
    import analysis.backup as b
    real_export = b.export_rows

    def db_dies(*a, **kw):
        it = real_export(*a, **kw)
        yield next(it)
        raise DatabaseError("Code: 210. Connection reset (simulated)")

    monkeypatch.setattr(b, "export_rows", db_dies)
    with pytest.raises(DatabaseError):
        backup.run(c, db, store=store, day="20240603")
    assert list(store.list("db-backup/")) == []

    monkeypatch.setattr(b, "export_rows", real_export)
    real_write = type(store.open_writer("probe")).write

    def enospc(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(store.open_writer("probe2")), "write", enospc)
    with pytest.raises(OSError):
        backup.run(c, db, store=store, day="20240603")
    monkeypatch.setattr(type(store.open_writer("probe3")), "write", real_write)
    assert [o.key for o in store.list("db-backup/")] == []
    assert backup.run(c, db, store=store, day="20240603") == {"citizenlab": 28}


def test_restore_of_a_corrupt_file_changes_nothing(cfg, db, session_dir):
    fill(db)
    c = cfg.with_overrides(DB_BACKUP_TABLES="citizenlab", DB_BACKUP_PAUSE=0)
    store = open_store(c)
    store.put_bytes("db-backup/20240604/citizenlab.csv.zst", b"not zstd at all")
    with pytest.raises(JobError, match="corrupt backup"):
        backup.restore(c, db, store=store, day="20240604", replace=True)
    assert db.execute("SELECT count() FROM citizenlab")[0][0] == 28
    with pytest.raises(JobError, match="no backup of citizenlab"):
        backup.restore(c, db, store=store, day="20240605", replace=True)


def test_command_line(cfg, db, monkeypatch, capsys):
    fill(db)
    for k, v in cfg.with_overrides(DB_BACKUP_PAUSE=0).values.items():
        monkeypatch.setenv(f"OONI_{k}", str(v))
    monkeypatch.delenv("OONI_CONF", raising=False)
    assert backup.main(["--tables", "citizenlab,test_helper_instances"]) == 0
    assert backup.main(["--tables", "no_such_table"]) == 1
    assert "table no_such_table does not exist" in capsys.readouterr().err
    assert backup.main(["--restore", "--tables", "citizenlab"]) == 1
    assert "already holds 28 rows" in capsys.readouterr().err


def test_registry_job(cfg, db):
    from analysis.jobs import all_jobs
    fill(db)
    all_jobs()["db-backup"].run(cfg.with_overrides(DB_BACKUP_TABLES=TABLES, DB_BACKUP_PAUSE=0), db)
    assert len(list(open_store(cfg).list("db-backup/"))) == 3
