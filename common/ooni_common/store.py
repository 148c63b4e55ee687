"""The measurement archive: S3 (any S3-compatible endpoint, via boto3) or a
local directory with the same key layout (``file://``, the standalone default).

``ARCHIVE_URL`` selects it: ``s3://<bucket>[/<prefix>]`` or ``file:///dir``.
Without ``ARCHIVE_URL``, ``S3_BUCKET_NAME`` names an S3 bucket, else the
archive is ``<DATA_DIR>/archive``. Keys follow the public OONI bucket layout
(``raw/<YYYYMMDD>/<HH>/<CC>/<testname>/...``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import unquote, urlparse

from .config import Config


class StoreError(Exception):
    """The archive refused, timed out or failed."""


class KeyNotFound(StoreError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class ObjectStore(Protocol):
    url: str

    def put_file(self, key: str, path: Path) -> None: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def get_range(self, key: str, start: int, end: int) -> bytes: ...
    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...
    def exists(self, key: str) -> bool: ...


class FileStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.url = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents:
            raise StoreError(f"key outside the archive: {key!r}")
        return p

    def put_bytes(self, key: str, data: bytes) -> None:
        dst = self._path(key)
        tmp = dst.with_name(dst.name + ".tmp")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, dst)
        except OSError as e:
            raise StoreError(f"cannot write {key} to {self.url}: {e}") from e

    def put_file(self, key: str, path: Path) -> None:
        self.put_bytes(key, Path(path).read_bytes())

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(key) from None
        except OSError as e:
            raise StoreError(f"cannot read {key}: {e}") from e

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` inclusive, as an HTTP Range."""
        try:
            with open(self._path(key), "rb") as f:
                f.seek(start)
                return f.read(end - start + 1)
        except FileNotFoundError:
            raise KeyNotFound(key) from None
        except OSError as e:
            raise StoreError(f"cannot read {key}: {e}") from e

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / prefix
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        for dirpath, _, files in os.walk(start):
            for n in sorted(files):
                if n.endswith(".tmp"):
                    continue
                p = Path(dirpath) / n
                key = str(p.relative_to(self.root))
                if key.startswith(prefix):
                    yield ObjectInfo(key, p.stat().st_size)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None,
                 session_token: str | None = None, region: str | None = None,
                 timeout: float = 30.0):
        import boto3
        from botocore.config import Config as BotoConfig

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        kw = {}
        if not access_key:
            from botocore import UNSIGNED
            kw["signature_version"] = UNSIGNED  # the public OONI buckets
        self._s3 = boto3.client(
            "s3", endpoint_url=endpoint_url, aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None, aws_session_token=session_token or None,
            region_name=region or "us-east-1",
            config=BotoConfig(connect_timeout=timeout, read_timeout=timeout,
                              retries={"max_attempts": 3}, **kw))

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _wrap(self, e: Exception, key: str) -> StoreError:
        # botocore timeouts carry ``response = None``.
        code = (getattr(e, "response", None) or {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            return KeyNotFound(key)
        return StoreError(f"S3 {self.url}: {key}: {e}")

    def put_file(self, key: str, path: Path) -> None:
        try:
            self._s3.upload_file(str(path), self.bucket, self._k(key))
        except Exception as e:
            raise self._wrap(e, key) from e

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._k(key), Body=data)
        except Exception as e:
            raise self._wrap(e, key) from e

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=self._k(key))["Body"].read()
        except Exception as e:
            raise self._wrap(e, key) from e

    def get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            r = self._s3.get_object(Bucket=self.bucket, Key=self._k(key), Range=f"bytes={start}-{end}")
            return r["Body"].read()
        except Exception as e:
            raise self._wrap(e, key) from e

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._k(prefix))
            cut = len(self.prefix) + 1 if self.prefix else 0
            for page in pages:
                for o in page.get("Contents", []):
                    yield ObjectInfo(o["Key"][cut:], o["Size"])
        except Exception as e:
            raise self._wrap(e, prefix) from e

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._k(key))
            return True
        except Exception as e:
            err = self._wrap(e, key)
            if isinstance(err, KeyNotFound):
                return False
            raise err from e


def open_store(cfg: Config) -> ObjectStore:
    url = cfg.get_str("ARCHIVE_URL", "")
    if not url:
        bucket = cfg.get_str("S3_BUCKET_NAME", "")
        url = f"s3://{bucket}" if bucket else f"file://{cfg.data_dir / 'archive'}"
    u = urlparse(url)
    if u.scheme == "file":
        return FileStore(unquote(u.netloc + u.path))
    if u.scheme == "s3":
        return S3Store(
            u.netloc, u.path, endpoint_url=cfg.get_str("S3_ENDPOINT_URL", "") or None,
            access_key=cfg.get_str("S3_ACCESS_KEY_ID", ""),
            secret_key=cfg.get_str("S3_SECRET_ACCESS_KEY", ""),
            session_token=cfg.get_str("S3_SESSION_TOKEN", ""),
            region=cfg.get_str("S3_REGION", "") or None,
            timeout=cfg.get_float("S3_TIMEOUT", 30.0))
    raise StoreError(f"unsupported ARCHIVE_URL {url!r}: use s3://bucket or file:///dir")
