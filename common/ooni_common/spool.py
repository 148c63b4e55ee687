"""The measurement spool: the on-disk contract between the API (writer), the
fastpath (reader, marks what it handled) and the uploader (archives, deletes).

Layout (api.md §15-16)::

    <spool>/incoming/<YYYYMMDDHH>_<CC>_<testname>/<uid>.post
    <spool>/incoming/<YYYYMMDDHH>_<CC>_<testname>/.handled

Files are written as ``<uid>.post.tmp``, fsynced and renamed, so readers never
see a partial measurement. ``.handled`` is an append-only list of uids the
fastpath has scored or rejected; losing its tail only means a harmless
re-score.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .durable import fsync_dir

HANDLED = ".handled"


class SpoolError(Exception):
    """The spool could not store a measurement (disk full, permissions...)."""


def hour_dir_name(uid: str) -> str:
    """``20210709005529.664022_MY_webconnectivity_68e5...`` -> ``2021070900_MY_webconnectivity``."""
    parts = uid.split("_")
    if len(parts) != 4 or len(parts[0]) < 10:
        raise ValueError(f"not a measurement uid: {uid!r}")
    return f"{parts[0][:10]}_{parts[1]}_{parts[2]}"


@dataclass(frozen=True)
class SpoolEntry:
    uid: str
    path: Path

    @property
    def hour_dir(self) -> Path:
        return self.path.parent


class Spool:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.incoming = self.root / "incoming"

    def path_for(self, uid: str) -> Path:
        return self.incoming / hour_dir_name(uid) / f"{uid}.post"

    def write(self, uid: str, body: bytes) -> Path:
        """Durably store one measurement; raises SpoolError on any failure
        (then nothing is left behind but, at worst, a .tmp file)."""
        final = self.path_for(uid)
        tmp = final.with_name(final.name + ".tmp")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(body)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
            fsync_dir(final.parent)
        except OSError as e:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise SpoolError(f"cannot spool {uid}: {e.strerror or e}") from e
        return final

    def read(self, uid: str) -> bytes | None:
        try:
            return self.path_for(uid).read_bytes()
        except (OSError, ValueError):
            return None

    def hour_dirs(self) -> list[Path]:
        try:
            return sorted(p for p in self.incoming.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def entries(self, hour_dir: Path) -> Iterator[SpoolEntry]:
        try:
            names = sorted(os.listdir(hour_dir))
        except FileNotFoundError:
            return
        for n in names:
            if n.endswith(".post"):
                yield SpoolEntry(n[:-5], hour_dir / n)

    # --- fastpath bookkeeping ---------------------------------------------

    def mark_handled(self, uids: list[str]) -> None:
        by_dir: dict[Path, list[str]] = {}
        for uid in uids:
            try:
                by_dir.setdefault(self.incoming / hour_dir_name(uid), []).append(uid)
            except ValueError:
                continue
        for d, us in by_dir.items():
            if not d.is_dir():
                continue
            with open(d / HANDLED, "a") as f:
                f.write("".join(u + "\n" for u in us))

    def handled(self, hour_dir: Path) -> set[str]:
        try:
            with open(hour_dir / HANDLED) as f:
                return {line.strip() for line in f if line.strip()}
        except FileNotFoundError:
            return set()
