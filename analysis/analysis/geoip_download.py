"""GeoIP downloader (``ooni-download-geoip``, weekly; the files are monthly).

Downloads the country and ASN MMDB files of the current month from a URL
pattern (``{TS}`` = ``YYYY-MM``; http(s)://, file:// or a path; gzip or
plain), checks each by opening it with geoip2 and looking up a known address,
and only when both pass replaces ``cc.mmdb`` and ``asn.mmdb`` by rename (the
API reopens them when they change) and records the month in ``geoipdbts``.
On any failure the old files stay and the month is not recorded, so the next
run tries again (the legacy script recorded it even after a failed check).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import geoip2.database

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics, from_config, job_metrics
from ooni_common.timeutil import utcnow

from .fetch import SourceNotFound, fetch_to_file
from .runner import JobError, debug_level, load_config, run_command

UNIT = "ooni_download_geoip"
log = logging.getLogger(UNIT)

DBIP = "https://download.db-ip.com/free/"


@dataclass(frozen=True)
class GeoDb:
    kind: str          # "cc" or "asn"
    url: str
    dest: Path
    probe_ip: str

    @property
    def tmp(self) -> Path:
        return self.dest.with_name(self.dest.name + ".tmp")

    @property
    def tmp_download(self) -> Path:
        return self.dest.with_name(self.dest.name + ".download.tmp")


def month_ts(now: dt.datetime) -> str:
    return now.strftime("%Y-%m")


def targets(cfg: Config, ts: str) -> list[GeoDb]:
    base = cfg.data_dir / "geoip"
    asn_url = cfg.get_str("GEOIP_ASN_URL", DBIP + "dbip-asn-lite-{TS}.mmdb.gz")
    cc_url = cfg.get_str("GEOIP_CC_URL", DBIP + "dbip-country-lite-{TS}.mmdb.gz")
    return [
        GeoDb("asn", asn_url.replace("{TS}", ts), Path(cfg.get_str("GEOIP_ASN_DB", str(base / "asn.mmdb"))),
              cfg.get_str("GEOIP_ASN_PROBE_IP", "8.8.8.8")),
        GeoDb("cc", cc_url.replace("{TS}", ts), Path(cfg.get_str("GEOIP_CC_DB", str(base / "cc.mmdb"))),
              cfg.get_str("GEOIP_CC_PROBE_IP", "8.8.8.8")),
    ]


def _unpack(src: Path, dst: Path) -> None:
    with open(src, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(src, "rb") if gz else open(src, "rb")) as i, open(dst, "wb") as o:
            shutil.copyfileobj(i, o, 1024 * 1024)
            o.flush()
            os.fsync(o.fileno())
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise JobError(f"cannot unpack {src.name}: {e}") from e


def check(db: GeoDb, metrics: Metrics) -> None:
    """Open the new file and look up the probe address (legacy check)."""
    try:
        with geoip2.database.Reader(str(db.tmp)) as r:
            if db.kind == "asn":
                r.asn(db.probe_ip)
            else:
                r.country(db.probe_ip)
            md = r.metadata()
    except Exception as e:  # maxminddb, geoip2 and TypeError all mean "unusable"
        metrics.incr("ooni_geoip_checkfail")
        log.error("consistency check on the geoip DB failed: %s", e)
        raise JobError(f"{db.kind} database from {db.url} failed the check "
                       f"(lookup of {db.probe_ip}): {type(e).__name__}: {e}") from e
    metrics.gauge(f"geoip_{db.kind}_node_cnt", md.node_count)
    metrics.gauge(f"geoip_{db.kind}_epoch", md.build_epoch)


def _cleanup(dbs: list[GeoDb]) -> None:
    for db in dbs:
        for p in (db.tmp, db.tmp_download):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def run(cfg: Config, now: dt.datetime | None = None, force: bool = False,
        metrics: Metrics | None = None) -> bool:
    """True when new files were installed."""
    metrics = metrics or from_config(cfg, UNIT)
    ts = month_ts(now or utcnow())
    dbs = targets(cfg, ts)
    tsfile = dbs[1].dest.parent / "geoipdbts"
    have = all(d.dest.exists() for d in dbs)
    if not force and have and tsfile.exists() and tsfile.read_text().strip() == ts:
        log.info("GeoIP databases for %s already installed", ts)
        return False
    with metrics.timer("download_geoip"):
        try:
            for db in dbs:
                db.dest.parent.mkdir(parents=True, exist_ok=True)
                log.info("downloading %s", db.url)
                fetch_to_file(db.url, db.tmp_download, cfg.get_float("GEOIP_FETCH_TIMEOUT", 300))
                _unpack(db.tmp_download, db.tmp)
                db.tmp_download.unlink()
                check(db, metrics)
            for db in dbs:
                os.replace(db.tmp, db.dest)
        except SourceNotFound as e:
            # DB-IP publishes a month's files some days into it.
            log.warning("GeoIP databases for %s are not available yet: %s", ts, e)
            return False
        except OSError as e:
            raise JobError(f"cannot install GeoIP databases: {e}") from e
        finally:
            _cleanup(dbs)
    tmp = tsfile.with_name("geoipdbts.tmp")
    tmp.write_text(ts)
    os.replace(tmp, tsfile)
    metrics.incr("ooni_geoip_updated")
    log.info("GeoIP databases for %s installed in %s", ts, tsfile.parent)
    return True


def run_job(cfg: Config, db: Database, metrics_root: Metrics | None = None) -> None:
    run(cfg, metrics=job_metrics(metrics_root, UNIT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ooni-download-geoip", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="configuration file (default: $OONI_CONF)")
    ap.add_argument("--force", action="store_true", help="download even if this month is installed")
    ap.add_argument("--stdout", action="store_true", help="log at DEBUG level")
    args = ap.parse_args(argv)

    def body(stack) -> int:
        run(load_config(args.config), force=args.force)
        return 0

    return run_command(UNIT, body, debug_level(args.stdout))


if __name__ == "__main__":
    raise SystemExit(main())
