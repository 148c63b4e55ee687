"""Scoring of local files for people and checks (``fastpath --input-file``):
one JSON line per measurement holding its fastpath row, no database.

Accepted files: a single JSON measurement (bare or wrapped in
``{"format", "content"}``), a JSONL file (optionally .gz), a legacy YAML
report, and cans/postcans (tar, optionally compressed) whose members are
``.post`` JSON posts, ``.json``/``.jsonl`` JSONL or ``.yaml`` reports.

The uid of each measurement: its ``measurement_uid`` key; else the file or
member name when it is an OONI uid; else its trivial id (fastpath.md §8.4),
which, like the spec's ``bogus_uid``, disables the wrong-date check.
"""
from __future__ import annotations

import datetime as dt
import gzip
import io
import logging
import re
import tarfile
from pathlib import Path
from typing import Iterator, TextIO

import ujson

from ooni_common.archive import POST_SUFFIX, tar_files

from .core import process_measurement
from .fingerprints import Fingerprints
from .yaml_normalize import iter_yaml_report, trivial_id

log = logging.getLogger("fastpath.score_files")

UID_RE = re.compile(r"^\d{14}\.\d{6}_[A-Z]{2}_[a-z0-9]{2,29}_[0-9a-f]{16}$")

# (raw bytes or None, parsed document or None, uid)
Item = tuple[bytes | None, dict | None, str]


def _uid_from_name(name: str) -> str | None:
    base = Path(name).name
    for suffix in (".post", ".json", ".gz"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base if UID_RE.match(base) else None


def _inner(doc) -> dict | None:
    """The measurement inside a post wrapper, for its uid and start time."""
    if isinstance(doc, dict) and "content" in doc and "format" in doc \
            and isinstance(doc["content"], dict):
        return doc["content"]
    return doc if isinstance(doc, dict) else None


def _uid_for(doc, raw: bytes, name_uid: str | None) -> str:
    msm = _inner(doc)
    if msm is not None:
        uid = msm.get("measurement_uid") or (doc.get("measurement_uid")
                                              if isinstance(doc, dict) else None)
        if isinstance(uid, str) and uid:
            return uid
    if name_uid:
        return name_uid
    return trivial_id(raw, msm or {})


def _json_item(raw: bytes, name_uid: str | None) -> Item:
    try:
        doc = ujson.loads(raw)
    except (ValueError, OverflowError):
        # the core counts it as a json_parse error under a stable id
        return raw, None, name_uid or trivial_id(raw, {})
    return None, doc, _uid_for(doc, raw, name_uid)


def _jsonl_items(blob: bytes) -> Iterator[Item]:
    for line in io.BytesIO(blob):
        if not line.strip():
            continue
        yield _json_item(line, None)


def _bucket_date_of(blob: bytes) -> str:
    m = re.search(rb"^start_time: ([0-9.]+)", blob[:4096], re.M)
    if m:
        try:
            return dt.datetime.fromtimestamp(float(m.group(1)), dt.timezone.utc).strftime("%Y-%m-%d")
        except (ValueError, OverflowError, OSError):
            pass
    return "1970-01-01"


def _yaml_items(blob: bytes, name: str) -> Iterator[Item]:
    bucket_date = _bucket_date_of(blob)
    report_filename = f"{bucket_date}/{Path(name).name}"
    try:
        for raw_entry, msm in iter_yaml_report(blob, bucket_date, report_filename):
            uid = trivial_id(raw_entry, msm)
            msm["measurement_uid"] = uid
            yield None, msm, uid
    except Exception as e:
        log.warning("YAML report %s not readable: %s", name, e)


def _tar_items(blob: bytes) -> Iterator[Item]:
    for mname, data in tar_files(blob):
        if mname.endswith(POST_SUFFIX):
            yield _json_item(data, _uid_from_name(mname))
        else:
            yield from _blob_items(data, mname)


def _decompress(blob: bytes, name: str) -> bytes:
    if blob[:2] == b"\x1f\x8b":
        return gzip.decompress(blob)
    if name.endswith(".lz4"):
        import lz4.frame  # legacy cans only; optional dependency
        return lz4.frame.decompress(blob)
    return blob


def _blob_items(blob: bytes, name: str) -> Iterator[Item]:
    """Dispatch on content: tar, YAML report, single JSON document, JSONL."""
    blob = _decompress(blob, name)
    if len(blob) > 262 and blob[257:262] == b"ustar":
        yield from _tar_items(blob)
        return
    head = blob.lstrip()[:4]
    if head.startswith(b"---"):
        yield from _yaml_items(blob, name)
        return
    # one JSON document (possibly pretty-printed) or JSON lines
    try:
        doc = ujson.loads(blob)
    except (ValueError, OverflowError):
        yield from _jsonl_items(blob)
        return
    name_uid = _uid_from_name(name)
    yield None, doc, _uid_for(doc, blob, name_uid)


def iter_blob(blob: bytes, name: str) -> Iterator[Item]:
    """The measurements of a file's content; ``name`` (the file name) gives
    the compression of legacy cans and, when it is an OONI uid, the uid."""
    yield from _blob_items(blob, name)


def iter_file(path: str | Path) -> Iterator[Item]:
    p = Path(path)
    yield from iter_blob(p.read_bytes(), p.name)


def run(paths: list[str], fps: Fingerprints, out: TextIO) -> int:
    """Scores every measurement of ``paths``; writes one JSON line each:
    the fastpath row (all columns), or, for a measurement without a row,
    ``{"measurement_uid", "status", "reason"}``. Returns the count."""
    count = 0
    for path in paths:
        items = iter_file(path)
        while True:
            try:
                raw, doc, uid = next(items)
            except StopIteration:
                break
            except (OSError, tarfile.TarError, EOFError, ValueError, ImportError) as e:
                log.error("cannot read %s: %s", path, e)
                break
            outcome = process_measurement(raw, doc, uid, fps)
            if outcome.row is not None:
                line = outcome.row.as_dict()
            else:
                line = {"measurement_uid": uid, "status": outcome.status,
                        "reason": outcome.reason}
            out.write(ujson.dumps(line, ensure_ascii=False, escape_forward_slashes=False))
            out.write("\n")
            count += 1
    return count
