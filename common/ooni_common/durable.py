"""Writes that survive a power cut: data fsynced before the rename that
publishes it, and the directory fsynced after, since a rename is durable only
once its directory is."""
from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(d: str | os.PathLike) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old content or all of ``data``, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fsync_dir(path.parent)
