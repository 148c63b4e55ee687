"""ASN metadata updater (``analysis --update-asnmeta``).

Loads the AS-to-organisation history (``all_as_org_map.json`` from
ooni/historical-geoip, or a local copy), flattens it to one row per change,
fills ``asnmeta_tmp`` and swaps it with ``asnmeta``. Any failure leaves
``asnmeta`` as it was.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import ujson

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics, from_config, job_metrics

from . import swap
from .fetch import fetch_bytes
from .runner import JobError
from .schema import ASNMETA_COLUMNS

UNIT = "analysis.asnmeta_updater"
METRICS_PREFIX = "asnmeta_updater"
log = logging.getLogger(UNIT)

UPSTREAM = "https://archive.org/download/ip2country-as/all_as_org_map.json"
COLUMNS = ("asn", "org_name", "cc", "changed", "aut_name", "source")


@dataclass(frozen=True)
class AsnMeta:
    asn: int
    org_name: str
    cc: str
    changed: dt.date
    aut_name: str
    source: str


def parse(data: bytes) -> list[AsnMeta]:
    try:
        doc = ujson.loads(data)
    except ValueError as e:
        raise JobError(f"ASN metadata is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise JobError("ASN metadata must be a JSON object of ASN -> history")
    rows = []
    for key, history in doc.items():
        try:
            asn = int(key)
        except ValueError:
            raise JobError(f"ASN metadata: key {key!r} is not an integer") from None
        if not 0 <= asn < 2**32:
            raise JobError(f"ASN metadata: AS{asn} out of range")
        if not isinstance(history, list):
            raise JobError(f"ASN metadata: AS{asn}: history must be a list")
        for entry in history:
            if not isinstance(entry, list) or len(entry) < 5:
                raise JobError(f"ASN metadata: AS{asn}: entry {entry!r} has fewer than 5 elements")
            org, cc, changed, aut, source = entry[:5]
            try:
                day = dt.datetime.strptime(str(changed), "%Y%m%d").date()
            except ValueError:
                raise JobError(f"ASN metadata: AS{asn}: bad date {changed!r}") from None
            rows.append(AsnMeta(asn, str(org), str(cc), day, str(aut), str(source)))
    return rows


def run(cfg: Config, db: Database, metrics: Metrics | None = None) -> int:
    metrics = metrics or from_config(cfg, METRICS_PREFIX)
    progress = lambda step: metrics.gauge("asnmeta_update_progress", step)  # noqa: E731
    low = cfg.get_int("ASNMETA_MIN_ROWS", 100_000)
    high = cfg.get_int("ASNMETA_MAX_ROWS", 1_000_000)
    src = cfg.get_str("ASNMETA_URL", UPSTREAM)
    progress(0)
    with metrics.timer("fetch_data"):
        data = fetch_bytes(src, cfg.get_float("ASNMETA_FETCH_TIMEOUT", 300))
    rows = parse(data)
    swap.check_bounds("asnmeta", len(rows), low, high)
    log.info("fetched %d ASN metadata rows from %s", len(rows), src)

    swap.recreate(db, "asnmeta_tmp", ASNMETA_COLUMNS, "MergeTree() ORDER BY (asn, changed)")
    progress(1)
    progress(2)
    swap.fill(db, "asnmeta_tmp", COLUMNS,
              [(r.asn, r.org_name, r.cc, r.changed, r.aut_name, r.source) for r in rows])
    n = swap.count(db, "asnmeta_tmp")
    metrics.gauge("asnmeta_tmp_len", n)
    swap.check_bounds("asnmeta_tmp", n, low, high)
    progress(3)
    swap.exchange(db, "asnmeta_tmp", "asnmeta")
    progress(4)
    log.info("asnmeta updated with %d rows", n)
    return n


def run_job(cfg: Config, db: Database, metrics_root: Metrics | None = None) -> None:
    run(cfg, db, metrics=job_metrics(metrics_root, METRICS_PREFIX))
