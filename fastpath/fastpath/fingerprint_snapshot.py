"""Fingerprint rows read from the database and handed to scoring workers.

Worker processes never open the database (an embedded chdb belongs to the
process that opened it), so the daemon reads the ``fingerprints_dns`` /
``fingerprints_http`` tables, writes them as JSON files (the row format that
``fastpath.fingerprints.load_from_files`` reads) under a version number, and
workers load a version when a task names one they do not have yet. A cheap
checksum query tells whether the updater swapped new tables in (§5.3).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ooni_common.db import Database, DatabaseError

log = logging.getLogger("fastpath")

COLUMNS = ("name", "scope", "other_names", "location_found", "pattern_type", "pattern",
           "confidence_no_fp", "expected_countries")
TABLES = ("fingerprints_dns", "fingerprints_http")


@dataclass(frozen=True)
class FingerprintFiles:
    version: int
    dns_path: str
    http_path: str


def checksum(db: Database) -> tuple:
    """Changes whenever the content of either table changes."""
    out = []
    for t in TABLES:
        r = db.execute(
            f"SELECT count(), sum(cityHash64(name, toString(scope), other_names, location_found, "
            f"toString(pattern_type), pattern, confidence_no_fp, expected_countries)) FROM {t}")
        out.append(tuple(r[0]) if r else (0, 0))
    return tuple(out)


def read_rows(db: Database, table: str) -> list[dict]:
    # No ORDER BY: match order follows the table order, as in the legacy code.
    rows = db.query(f"SELECT {', '.join(COLUMNS)} FROM {table}")
    for r in rows:
        r["scope"] = str(r["scope"])
        r["pattern_type"] = str(r["pattern_type"])
    return rows


def _write_json(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False)
    os.replace(tmp, path)


class FingerprintPublisher:
    """Keeps the newest fingerprint snapshot on disk for the workers."""

    def __init__(self, db: Database | None, directory: Path):
        self.db = db
        self.dir = Path(directory)
        self.current: FingerprintFiles | None = None
        self._previous: FingerprintFiles | None = None
        self._checksum: tuple | None = None
        self._version = 0

    def publish_files(self, dns_path: str, http_path: str) -> FingerprintFiles:
        """Use fingerprint files given on the command line as they are."""
        self._version += 1
        self.current = FingerprintFiles(self._version, str(dns_path), str(http_path))
        return self.current

    def refresh(self) -> bool:
        """Publish a new version if the tables changed; True when it did.
        A failed read keeps the previous version (§5.3: only logged)."""
        if self.db is None:
            return False
        try:
            cs = checksum(self.db)
            if cs == self._checksum and self.current is not None:
                return False
            dns = read_rows(self.db, "fingerprints_dns")
            http = read_rows(self.db, "fingerprints_http")
        except DatabaseError as e:
            log.error("cannot read fingerprints, keeping the previous ones: %s", e)
            return False
        self.dir.mkdir(parents=True, exist_ok=True)
        version = self._version + 1
        dns_path = self.dir / f"fingerprints_dns.{version}.json"
        http_path = self.dir / f"fingerprints_http.{version}.json"
        _write_json(dns_path, dns)
        _write_json(http_path, http)
        stale, self._previous = self._previous, self.current
        self._version = version
        self._checksum = cs
        self.current = FingerprintFiles(version, str(dns_path), str(http_path))
        log.info("fingerprints version %d: %d dns, %d http", version, len(dns), len(http))
        if stale is not None and Path(stale.dns_path).parent == self.dir:
            # Tasks queued before the previous version may still name it, so
            # only the one before that goes.
            for p in (stale.dns_path, stale.http_path):
                try:
                    os.unlink(p)
                except OSError:
                    pass
        return True
