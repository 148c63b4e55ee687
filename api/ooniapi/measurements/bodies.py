"""Measurement body lookup (api.md §15).

A body lives in this host's spool while it is fresh, in another API host's
spool in active/active deployments, and in the archive (JSONL files located
through the ``jsonl`` table) once the uploader has run. Which place is asked
first depends on the measurement's age, so that the common case costs one
read: fresh ones are almost always still spooled, older ones archived.

Every source fails soft: a missing file, an unreachable host or a broken
archive object only moves on to the next source, so a reader gets a body
whenever any copy is readable and ``None`` otherwise -- never an exception.
"""
from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlparse

from ooni_common.config import Config
from ooni_common.db import Database, DatabaseError
from ooni_common.metrics import Metrics
from ooni_common.spool import Spool, hour_dir_name
from ooni_common.store import ObjectStore, StoreError, open_store
from ooni_common.timeutil import utcnow

log = logging.getLogger("ooni-api.bodies")

FRESH_FOR = dt.timedelta(hours=1)
# A measurement body is a few MB at most; refuse to buffer anything absurd
# that a misconfigured peer might send.
MAX_REMOTE_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class BodyKey:
    """What identifies a body: the uid when known, and the fastpath row's
    report_id and input (the legacy ``jsonl`` lookup key)."""

    measurement_uid: str | None
    report_id: str = ""
    input: str = ""

    @property
    def new_format(self) -> bool:
        return bool(self.measurement_uid) and self.report_id.count("_") == 5

    def fresh(self, now: dt.datetime) -> bool:
        return bool(self.measurement_uid) and \
            self.measurement_uid > (now - FRESH_FOR).strftime("%Y%m%d%H%M")


def unwrap_post(data: bytes) -> bytes | None:
    """The ``content`` of a spooled ``{"format": "json", "content": ...}``
    upload as compact JSON; None for YAML or unreadable uploads."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("format", "json") != "json":
        return None
    content = doc.get("content")
    if isinstance(content, str):
        # single-shot probes send the measurement as a JSON string
        try:
            content = json.loads(content)
        except ValueError:
            return None
    if not isinstance(content, dict):
        return None
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def read_jsonl_line(gz: bytes, linenum: int) -> bytes | None:
    """Line ``linenum`` (0-based) of a gzip JSONL object; decompression stops
    at that line. Concatenated gzip members are read as one stream."""
    if linenum < 0:
        return None
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(gz)) as f:
            for i, line in enumerate(f):
                if i == linenum:
                    return line.rstrip(b"\r\n")
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    return None


def _http_get(url: str, timeout: float) -> bytes | None:
    req = urllib.request.Request(url, headers={"User-Agent": "ooni-api body lookup"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            if r.status != 200:
                return None
            data = r.read(MAX_REMOTE_BODY + 1)
            return data if len(data) <= MAX_REMOTE_BODY else None
    except (urllib.error.URLError, OSError, ValueError) as e:
        log.info("body lookup: %s: %s", url, e)
        return None


class BodyLookup:
    """One per application (kept in ``services().extras``): it holds the
    archive client, which is costly to build."""

    def __init__(self, cfg: Config, spool: Spool, db: Database, metrics: Metrics | None = None,
                 http_get: Callable[[str, float], bytes | None] = _http_get,
                 store_opener: Callable[[Config], ObjectStore] = open_store):
        self.cfg = cfg
        self.spool = spool
        self.db = db
        self.metrics = metrics
        self.http_get = http_get
        self.timeout = cfg.get_float("BODY_FETCH_TIMEOUT", 2.0)
        hostname = cfg.get_str("HOSTNAME", "") or socket.getfqdn()
        self.other_hosts = [h for h in cfg.get_list("COLLECTORS", [])
                            if h != hostname and urlparse(_base(h)).netloc != hostname]
        self._store_opener = store_opener
        self._store: ObjectStore | None = None
        self._store_lock = threading.Lock()

    # --- sources -----------------------------------------------------------

    def from_spool(self, uid: str | None) -> bytes | None:
        if not uid:
            return None
        data = self.spool.read(uid)
        return unwrap_post(data) if data is not None else None

    def from_other_hosts(self, uid: str | None) -> bytes | None:
        if not uid:
            return None
        try:
            path = f"measurement_spool/{hour_dir_name(uid)}/{uid}.post"
        except ValueError:
            return None
        for host in self.other_hosts:
            data = self.http_get(f"{_base(host)}/{path}", self.timeout)
            body = unwrap_post(data) if data else None
            if body is not None:
                return body
        return None

    def locate(self, key: BodyKey) -> tuple[str, int] | None:
        """(s3path, linenum) from the ``jsonl`` table. The table is ordered
        by (report_id, input, measurement_uid), so the lookup goes through its
        primary key. The uid row wins; the input only matters for rows
        written before uids were recorded (uid ''), because list inputs are
        not spelled the same in ``jsonl`` and ``fastpath``."""
        if not key.report_id:
            return None
        if key.measurement_uid:
            sql = """SELECT s3path, linenum FROM jsonl
                WHERE report_id = {rid:String}
                  AND (measurement_uid = {uid:String}
                       OR (measurement_uid = '' AND input = {inp:String}))
                ORDER BY measurement_uid DESC LIMIT 1"""
        else:
            sql = """SELECT s3path, linenum FROM jsonl
                WHERE report_id = {rid:String} AND input = {inp:String}
                ORDER BY measurement_uid LIMIT 1"""
        try:
            rows = self.db.execute(sql, {"rid": key.report_id, "inp": key.input,
                                         "uid": key.measurement_uid or ""})
        except DatabaseError as e:
            log.warning("body lookup: jsonl query failed: %s", e)
            return None
        return (rows[0][0], int(rows[0][1])) if rows else None

    def store(self) -> ObjectStore:
        with self._store_lock:
            if self._store is None:
                self._store = self._store_opener(self.cfg)
            return self._store

    def from_archive(self, key: BodyKey) -> bytes | None:
        loc = self.locate(key)
        if loc is None:
            return None
        s3path, linenum = loc
        if s3path.startswith("s3://"):
            s3path = s3path.split("/", 3)[3] if s3path.count("/") >= 3 else ""
        try:
            gz = self.store().get_bytes(s3path.lstrip("/"))
        except StoreError as e:
            log.warning("body lookup: archive object %s: %s", s3path, e)
            return None
        line = read_jsonl_line(gz, linenum)
        if line is None:
            log.warning("body lookup: %s has no line %d", s3path, linenum)
        return line

    # --- the lookup order of §15 -------------------------------------------

    def fetch(self, key: BodyKey, now: dt.datetime | None = None) -> bytes | None:
        now = now or utcnow()
        uid = key.measurement_uid
        spool = ("spool", lambda: self.from_spool(uid))
        hosts = ("host", lambda: self.from_other_hosts(uid))
        archive = ("s3", lambda: self.from_archive(key))
        if key.new_format and key.fresh(now):
            order = [spool, hosts, archive]
        elif key.new_format:
            order = [archive, spool, hosts]
        else:
            # old report ids: the archive, and the spool as a harmless extra
            order = [archive, spool]
        for name, source in order:
            body = source()
            if body is not None:
                self._count(f"msmt_body_found_in_{name}")
                return body
        self._count("msmt_body_not_found")
        return None

    def _count(self, name: str) -> None:
        if self.metrics is not None:
            self.metrics.incr(name)


def _base(host: str) -> str:
    """A COLLECTORS entry is a hostname (served over HTTPS) or a base URL."""
    return host.rstrip("/") if "://" in host else f"https://{host}"


def body_lookup() -> BodyLookup:
    """The application's BodyLookup, built on first use."""
    from ooniapi.core.context import services

    svc = services()
    bl = svc.extras.get("body_lookup")
    if bl is None:
        bl = svc.extras.setdefault(
            "body_lookup", BodyLookup(svc.cfg, svc.spool, svc.db, svc.metrics))
    return bl
