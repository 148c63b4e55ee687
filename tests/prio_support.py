"""Test helpers for prioritization: load CitizenLab CSV lists into
``citizenlab`` (as the updater stores them: ``global`` -> ``ZZ``, country
lists in lower case, sub-directories and other stems skipped) and insert
fastpath rows so that the counters materialized views fill."""
from __future__ import annotations

import csv
import datetime as dt
import uuid
from pathlib import Path
from urllib.parse import urlsplit


def citizenlab_rows(lists_dir: Path) -> list[list[str]]:
    rows = []
    for f in sorted(Path(lists_dir).glob("*.csv")):
        cc = "ZZ" if f.stem == "global" else f.stem
        if len(cc) != 2:
            continue
        with f.open(encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                url = r["url"]
                rows.append([urlsplit(url).hostname or "", url, cc, r["category_code"]])
    return rows


def load_citizenlab(db, lists_dir: Path) -> int:
    return db.insert("citizenlab", ["domain", "url", "cc", "category_code"],
                     citizenlab_rows(lists_dir))


def insert_measurements(db, url: str, cc: str, asn: int, n: int,
                        when: dt.datetime | None = None) -> None:
    """``n`` scored web_connectivity measurements of ``url``, an hour ago
    (inside the counters' 8-day window and before now())."""
    when = when or (dt.datetime.utcnow() - dt.timedelta(hours=1)).replace(microsecond=0)
    cols = ["measurement_uid", "report_id", "input", "probe_cc", "probe_asn", "test_name",
            "test_start_time", "measurement_start_time", "anomaly", "confirmed", "msm_failure"]
    db.insert("fastpath", cols, [
        [f"{when:%Y%m%d%H%M%S}.000000_{cc}_webconnectivity_{uuid.uuid4().hex[:16]}",
         f"{when:%Y%m%dT%H%M%S}Z_webconnectivity_{cc}_{asn}_n1_x", url, cc, asn,
         "web_connectivity", when, when, "f", "f", "f"] for _ in range(n)])
