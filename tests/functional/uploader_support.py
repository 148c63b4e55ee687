"""Helpers shared by the uploader tests: spool real sample measurements and
check that every one of them is archived exactly once."""
from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import tarfile
from pathlib import Path

from ooni_common.spool import Spool

HOUR = dt.datetime(2024, 3, 5, 10)
AFTER = HOUR + dt.timedelta(hours=2)  # the hour is closed, the grace not over


def sample_posts(shared_data: Path) -> list[bytes]:
    """Real measurements wrapped as the API spools them."""
    out = []
    for p in sorted((shared_data / "measurements").glob("*.json")):
        msm = json.loads(p.read_bytes())
        out.append(json.dumps({"format": "json", "content": msm}).encode())
    return out


def spool_posts(spool: Spool, posts: list[bytes], n: int, hour: dt.datetime = HOUR,
                cc: str = "IT", testname: str = "webconnectivity", mark: bool = True,
                start: int = 0) -> list[str]:
    uids = []
    for i in range(start, start + n):
        t = hour + dt.timedelta(microseconds=i)
        uid = f"{t:%Y%m%d%H%M%S.%f}_{cc}_{testname}_{i:016x}"
        spool.write(uid, posts[i % len(posts)])
        uids.append(uid)
    if mark:
        spool.mark_handled(uids)
    return uids


def read_jsonl_line(store, s3path: str, linenum: int) -> bytes:
    lines = gzip.decompress(store.get_bytes(s3path)).split(b"\n")
    return lines[linenum]


def postcan_members(store, key: str) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(store.get_bytes(key)), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def assert_archived_exactly_once(db, store, spool: Spool, expected: dict[str, bytes]) -> None:
    """Every expected uid has one visible jsonl row whose line is its
    measurement, one postcan member, and its spool file is gone."""
    rows = db.query("SELECT measurement_uid, s3path, linenum, source FROM jsonl FINAL")
    by_uid: dict[str, list[dict]] = {}
    for r in rows:
        by_uid.setdefault(r["measurement_uid"], []).append(r)
    assert set(by_uid) == set(expected)
    assert all(len(v) == 1 for v in by_uid.values())
    members: dict[str, int] = {}
    lines_seen: dict[tuple[str, int], str] = {}
    cache: dict[str, dict[str, bytes]] = {}
    jl_cache: dict[str, list[bytes]] = {}
    for uid, (r,) in by_uid.items():
        if r["s3path"] not in jl_cache:
            jl_cache[r["s3path"]] = gzip.decompress(store.get_bytes(r["s3path"])).split(b"\n")
        line = jl_cache[r["s3path"]][r["linenum"]]
        assert json.loads(line) == json.loads(expected[uid])["content"]
        assert (r["s3path"], r["linenum"]) not in lines_seen
        lines_seen[(r["s3path"], r["linenum"])] = uid
        if r["source"] not in cache:
            cache[r["source"]] = postcan_members(store, r["source"])
    for key, ms in cache.items():
        for name in ms:
            members[name] = members.get(name, 0) + 1
    for uid in expected:
        assert sum(c for n, c in members.items() if n.endswith(f"/{uid}.post")) == 1
        assert spool.read(uid) is None
    # No stray can: every archived object is referenced by the rows.
    keys = {o.key for o in store.list("raw/")}
    assert keys == set(cache) | set(jl_cache)
