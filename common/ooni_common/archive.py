"""The key layout of the measurement archive, in one place for its writer
(the uploader) and its readers (the reprocessor, the scoring CLI), so that
the two sides cannot drift apart.

Each closed spool hour directory becomes, under
``raw/<YYYYMMDD>/<HH>/<CC>/<testname>/``, a postcan ``<base>.tar.gz`` (the
raw ``.post`` uploads, members ``<hour dir>/<uid>.post``) and its JSONL
sibling ``<base>.jsonl.gz`` (one unwrapped measurement per line).
"""
from __future__ import annotations

import datetime as dt
import io
import logging
import tarfile
from typing import Iterator

log = logging.getLogger(__name__)

JSONL_SUFFIX = ".jsonl.gz"
POSTCAN_SUFFIX = ".tar.gz"
POST_SUFFIX = ".post"


def raw_day_prefix(day: dt.date) -> str:
    return f"raw/{day:%Y%m%d}/"


def raw_hour_prefix(hour: dt.datetime, cc: str, testname: str) -> str:
    return f"raw/{hour:%Y%m%d}/{hour:%H}/{cc}/{testname}/"


def raw_key_cc_testname(key: str) -> tuple[str, str] | None:
    """(cc, testname) of a ``raw/`` file key; None for a shorter key."""
    parts = key.split("/")
    if len(parts) < 6:
        return None
    return parts[3], parts[4]


def postcan_key_of(jsonl_key: str) -> str:
    return jsonl_key[:-len(JSONL_SUFFIX)] + POSTCAN_SUFFIX


def jsonl_key_of(postcan_key: str) -> str:
    return postcan_key[:-len(POSTCAN_SUFFIX)] + JSONL_SUFFIX


def postcan_member(hour_dir_name: str, uid: str) -> str:
    return f"{hour_dir_name}/{uid}{POST_SUFFIX}"


def tar_files(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(member name, content) of each regular file of a tar, any compression."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for m in tar:
            if not m.isfile():
                continue
            f = tar.extractfile(m)
            if f is not None:
                yield m.name, f.read()


def postcan_posts(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(uid, post bytes) of each ``.post`` member, in member order."""
    for name, body in tar_files(data):
        base = name.rsplit("/", 1)[-1]
        if not base.endswith(POST_SUFFIX):
            log.info("skipping postcan member %s", name)
            continue
        yield base[:-len(POST_SUFFIX)], body
