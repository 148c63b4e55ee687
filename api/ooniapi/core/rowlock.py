"""Exclusive locks around read-check-write sequences on one host.

ClickHouse has no transactions: a route that reads a row, checks it and
writes it back can lose a concurrent delete or edit (issue 16, defect 3).
Writers of the same row therefore take a lock for the whole sequence.

The lock is ``flock(2)`` on a file under ``<DATA_DIR>/locks``: it excludes
the threads of one process (every ``hold`` opens its own descriptor, and
flock treats descriptors independently) and the gunicorn workers of one
host alike, and the kernel releases it when a process dies. Keys are hashed
onto a fixed number of stripes per table, so the directory stays small;
two rows sharing a stripe only wait for each other. API processes on
several hosts writing one ClickHouse are not covered (docs/operations.md).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Iterator

STRIPES = 64


class RowLocks:
    def __init__(self, directory: Path, stripes: int = STRIPES):
        self.directory = Path(directory)
        self.stripes = stripes

    def _path(self, table: str, key: str) -> Path:
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        stripe = int.from_bytes(digest, "big") % self.stripes
        return self.directory / f"{table}.{stripe:02d}.lock"

    @contextlib.contextmanager
    def hold(self, table: str, key: str = "") -> Iterator[None]:
        """Holds the lock of ``key`` in ``table`` (the whole table when
        ``key`` is empty and every writer of the table uses the empty key)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(table, key), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            # Closing the descriptor releases the lock.
            os.close(fd)


def row_locks() -> RowLocks:
    """The app's RowLocks, under the configured data directory."""
    from ooniapi.core.context import services
    svc = services()
    locks = svc.extras.get("row_locks")
    if locks is None:
        locks = svc.extras.setdefault(
            "row_locks", RowLocks(Path(svc.cfg.get("LOCK_DIR", None) or svc.cfg.data_dir / "locks")))
    return locks
