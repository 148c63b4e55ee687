"""Blocking-fingerprints updater (``analysis --update-fingerprints``).

Fetches the DNS and HTTP fingerprint CSV files (URLs or local paths), checks
every row, fills ``fingerprints_dns_tmp`` and ``fingerprints_http_tmp`` and
swaps each with its live table. Both files are fetched and validated before
the database is touched, so a bad file changes neither table. The fastpath
polls the live tables and reloads them without a restart.

The files are CRLF with CRLF inside some quoted patterns: they are parsed
from bytes with ``newline=''`` so that those patterns keep their ``\\r\\n``.
"""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics, from_config, job_metrics

from . import swap
from .fetch import fetch_bytes
from .runner import JobError
from .schema import FINGERPRINT_COLUMNS

UNIT = "analysis.fingerprints_updater"
METRICS_PREFIX = "fingerprints_updater"
log = logging.getLogger(UNIT)

UPSTREAM = "https://raw.githubusercontent.com/ooni/blocking-fingerprints/main/"
COLUMNS = ("name", "scope", "other_names", "location_found", "pattern_type", "pattern",
           "confidence_no_fp", "expected_countries", "source", "exp_url", "notes")
SCOPES = {
    "dns": frozenset({"nat", "isp", "prod", "inst", "vbw", "fp"}),
    "http": frozenset({"nat", "isp", "prod", "inst", "vbw", "fp", "injb", "prov"}),
}
PATTERN_TYPES = frozenset({"full", "prefix", "contains", "regexp"})


@dataclass(frozen=True)
class Fingerprint:
    name: str
    scope: str
    other_names: str
    location_found: str
    pattern_type: str
    pattern: str
    confidence_no_fp: int
    expected_countries: str
    source: str
    exp_url: str
    notes: str

    def as_row(self) -> tuple:
        return tuple(getattr(self, c) for c in COLUMNS)


def parse_csv(kind: str, data: bytes) -> list[Fingerprint]:
    fname = f"fingerprints_{kind}.csv"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JobError(f"{fname}: not UTF-8: {e}") from e
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise JobError(f"{fname}: unexpected header {header}")
    out: list[Fingerprint] = []
    seen: set[str] = set()
    for rec in reader:
        line = reader.line_num
        if not rec:
            continue
        if len(rec) != len(COLUMNS):
            raise JobError(f"{fname}:{line}: malformed row: {len(rec)} columns, expected {len(COLUMNS)}")
        f = dict(zip(COLUMNS, rec))
        if not f["name"]:
            raise JobError(f"{fname}:{line}: empty name")
        if f["name"] in seen:
            raise JobError(f"{fname}:{line}: duplicate name {f['name']!r}")
        seen.add(f["name"])
        if f["scope"] not in SCOPES[kind]:
            raise JobError(f"{fname}:{line}: unknown scope {f['scope']!r}")
        if f["pattern_type"] not in PATTERN_TYPES:
            raise JobError(f"{fname}:{line}: unknown pattern_type {f['pattern_type']!r}")
        if not f["pattern"]:
            raise JobError(f"{fname}:{line}: empty pattern")
        try:
            conf = int(f["confidence_no_fp"])
        except ValueError:
            raise JobError(f"{fname}:{line}: confidence_no_fp {f['confidence_no_fp']!r} "
                           f"is not an integer") from None
        if not 0 <= conf <= 255:
            raise JobError(f"{fname}:{line}: confidence_no_fp {conf} out of range 0-255")
        f["confidence_no_fp"] = conf
        out.append(Fingerprint(**f))
    return out


def run(cfg: Config, db: Database, metrics: Metrics | None = None) -> dict[str, int]:
    metrics = metrics or from_config(cfg, METRICS_PREFIX)
    low = cfg.get_int("FINGERPRINTS_MIN_ROWS", 100)
    high = cfg.get_int("FINGERPRINTS_MAX_ROWS", 50_000)
    timeout = cfg.get_float("FINGERPRINTS_FETCH_TIMEOUT", 120)
    progress = lambda step: metrics.gauge("fingerprints_update_progress", step)  # noqa: E731
    progress(0)
    parsed: dict[str, list[Fingerprint]] = {}
    for kind in ("dns", "http"):
        src = cfg.get_str(f"FINGERPRINTS_{kind.upper()}_URL", f"{UPSTREAM}fingerprints_{kind}.csv")
        with metrics.timer("fetch_csv"):
            data = fetch_bytes(src, timeout)
        parsed[kind] = parse_csv(kind, data)
        swap.check_bounds(f"fingerprints_{kind}", len(parsed[kind]), low, high)
        log.info("fetched %d %s fingerprints from %s", len(parsed[kind]), kind, src)

    counts = {}
    step = 1
    for kind in ("dns", "http"):
        tmp = f"fingerprints_{kind}_tmp"
        swap.recreate(db, tmp, FINGERPRINT_COLUMNS, "EmbeddedRocksDB PRIMARY KEY name")
        progress(step)
        progress(step + 1)  # fetched (above, before any DB work)
        db.insert(tmp, COLUMNS, [f.as_row() for f in parsed[kind]])
        n = swap.count(db, tmp)
        metrics.gauge(f"{tmp}_len", n)
        swap.check_bounds(tmp, n, low, high)
        counts[kind] = n
        progress(step + 2)
        step += 3
    for kind in ("dns", "http"):
        swap.exchange(db, f"fingerprints_{kind}_tmp", f"fingerprints_{kind}")
        progress(step)
        step += 1
    log.info("fingerprints updated: %d DNS, %d HTTP", counts["dns"], counts["http"])
    return counts


def run_job(cfg: Config, db: Database, metrics_root: Metrics | None = None) -> None:
    run(cfg, db, metrics=job_metrics(metrics_root, METRICS_PREFIX))
