"""An exclusive, advisory lock on the embedded database directory.

chdb refuses a second process with an engine error; this lock comes first so
that the second process gets one clear line naming the holder instead."""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path


class LockHeld(Exception):
    """Another process holds the lock; the message names it."""


class DirLock:
    def __init__(self, directory: str | os.PathLike, purpose: str = ""):
        self.path = Path(directory) / "holder.lock"
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> "DirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            finally:
                os.close(fd)
            raise LockHeld(f"the embedded database {self.path.parent} is in use by "
                           f"{holder or 'another process'}") from None
        cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
        text = f"pid {os.getpid()} ({cmd}{', ' + self.purpose if self.purpose else ''})\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_for_url(url: str, purpose: str = "") -> DirLock | None:
    """The lock guarding an embedded database URL, None for a server URL."""
    if not url.startswith("chdb://"):
        return None
    from urllib.parse import unquote, urlparse
    u = urlparse(url)
    return DirLock(unquote(u.netloc + u.path), purpose)
