"""Fetching reference data from a URL (http, https, file) or a local path.

Sources are configurable so that operators can mirror them and tests can
point at local files; the legacy check on ``status == 200`` rejected
``file://`` URLs, which this module accepts.
"""
from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from .runner import JobError

# DB-IP answers 403 without a User-Agent; keep the legacy one.
USER_AGENT = "ooni-downloader"


class SourceNotFound(JobError):
    """The server answered 404: the file is not published (yet)."""


def _local_path(source: str) -> Path | None:
    u = urlparse(source)
    if u.scheme == "file":
        return Path(unquote(u.netloc + u.path))
    if u.scheme in ("", ) or (len(u.scheme) == 1 and os.name == "nt"):
        return Path(source)
    return None


def open_source(source: str, timeout: float):
    """A readable binary stream for the source; raises JobError with the
    reason when it cannot be read."""
    path = _local_path(source)
    if path is not None:
        try:
            return open(path, "rb")
        except OSError as e:
            raise JobError(f"cannot read {source}: {e.strerror or e}") from e
    if urlparse(source).scheme not in ("http", "https"):
        raise JobError(f"unsupported source {source!r}: use http(s)://, file:// or a path")
    req = urllib.request.Request(source, headers={"User-Agent": USER_AGENT})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise SourceNotFound(f"cannot fetch {source}: HTTP 404") from e
        raise JobError(f"cannot fetch {source}: HTTP {e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise JobError(f"cannot fetch {source}: {reason}") from e
    if resp.status != 200:
        resp.close()
        raise JobError(f"cannot fetch {source}: HTTP {resp.status}")
    return resp


def fetch_bytes(source: str, timeout: float = 120.0) -> bytes:
    with open_source(source, timeout) as f:
        try:
            return f.read()
        except OSError as e:
            raise JobError(f"cannot read {source}: {e}") from e


def fetch_to_file(source: str, dest: Path, timeout: float = 120.0) -> None:
    """Stream the source into ``dest`` (created or truncated)."""
    with open_source(source, timeout) as f, open(dest, "wb") as out:
        try:
            shutil.copyfileobj(f, out, 1024 * 1024)
        except (urllib.error.URLError, TimeoutError) as e:
            raise JobError(f"cannot fetch {source}: {e}") from e
        out.flush()
        os.fsync(out.fileno())
