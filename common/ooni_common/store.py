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
    def open_writer(self, key: str) -> "ObjectWriter": ...


class ObjectWriter(Protocol):
    """A streamed upload: ``write`` chunks, then ``close`` publishes the
    object; ``abort`` (or an exception inside ``with``) publishes nothing."""

    def write(self, data: bytes) -> int: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def __enter__(self) -> "ObjectWriter": ...
    def __exit__(self, *exc) -> None: ...


class _WriterBase:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _FileWriter(_WriterBase):
    def __init__(self, store: "FileStore", key: str):
        self.key = key
        self.dst = store._path(key)
        self.tmp = self.dst.with_name(self.dst.name + ".tmp")
        try:
            self.dst.parent.mkdir(parents=True, exist_ok=True)
            self.f = open(self.tmp, "wb")
        except OSError as e:
            raise StoreError(f"cannot write {key} to {store.url}: {e}") from e

    def write(self, data: bytes) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.abort()
            raise StoreError(f"cannot write {self.key}: {e}") from e

    def close(self) -> None:
        if self.f.closed:
            return
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
            os.rename(self.tmp, self.dst)
        except OSError as e:
            self.abort()
            raise StoreError(f"cannot write {self.key}: {e}") from e

    def abort(self) -> None:
        if not self.f.closed:
            self.f.close()
        try:
            self.tmp.unlink()
        except OSError:
            pass


class _S3Writer(_WriterBase):
    """S3 multipart upload (parts of ``part_size``; S3's minimum is 5 MiB),
    or one PUT when the object is smaller than a part."""

    def __init__(self, store: "S3Store", key: str, part_size: int = 8 * 1024 * 1024):
        self.store, self.key, self.part_size = store, key, part_size
        self.buf = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict] = []
        self.closed = False

    def _s3(self):
        return self.store._s3

    def _flush_part(self) -> None:
        s3, bucket, k = self._s3(), self.store.bucket, self.store._k(self.key)
        try:
            if self.upload_id is None:
                self.upload_id = s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"]
            n = len(self.parts) + 1
            r = s3.upload_part(Bucket=bucket, Key=k, UploadId=self.upload_id, PartNumber=n,
                               Body=bytes(self.buf))
            self.parts.append({"ETag": r["ETag"], "PartNumber": n})
            self.buf.clear()
        except Exception as e:
            self.abort()
            raise self.store._wrap(e, self.key) from e

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= self.part_size:
            self._flush_part()
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        if self.upload_id is None:
            self.closed = True
            self.store.put_bytes(self.key, bytes(self.buf))
            return
        if self.buf:
            self._flush_part()
        try:
            self._s3().complete_multipart_upload(
                Bucket=self.store.bucket, Key=self.store._k(self.key), UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts})
            self.closed = True
        except Exception as e:
            self.abort()
            raise self.store._wrap(e, self.key) from e

    def abort(self) -> None:
        self.closed = True
        if self.upload_id is not None:
            try:
                self._s3().abort_multipart_upload(Bucket=self.store.bucket,
                                                  Key=self.store._k(self.key), UploadId=self.upload_id)
            except Exception:
                pass  # S3 lifecycle rules expire abandoned uploads
            self.upload_id = None


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

    def open_writer(self, key: str) -> _FileWriter:
        return _FileWriter(self, key)


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

    def open_writer(self, key: str) -> _S3Writer:
        return _S3Writer(self, key)


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
