"""The ``fastpath`` command (§10.3).

* no day given: the live daemon (HTTP feeder + spool feeder + workers);
* ``--start-day D1 --end-day D2``: reprocess the archive (implies ``--noapi``);
* ``--input-file PATH...``: score files and print one JSON row per
  measurement, touching no database.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from ooni_common.config import Config, ConfigError
from ooni_common.logs import setup_logging

UNIT = "fastpath"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="fastpath", description="OONI fastpath: score measurements")
    ap.add_argument("--start-day", help="reprocess from this day (YYYY-MM-DD), implies --noapi")
    ap.add_argument("--end-day", help="reprocess up to this day, excluded (YYYY-MM-DD)")
    ap.add_argument("--noapi", action="store_true", help="no HTTP feeder (reprocessing)")
    ap.add_argument("--devel", action="store_true",
                    help="config ./etc/ooni/fastpath.toml, data under ./var/lib/fastpath, log to stdout")
    ap.add_argument("--conf", help="configuration file (TOML); default $OONI_CONF")
    ap.add_argument("--stdout", action="store_true",
                    help="log to stdout; with --input-file print the rows there")
    ap.add_argument("--debug", action="store_true", help="debug log level")
    ap.add_argument("--clickhouse-url", help="overrides CLICKHOUSE_URL")
    ap.add_argument("--db-uri", help="legacy, unused")
    ap.add_argument("--update", action="store_true", help="legacy, unused: writes are upserts")
    ap.add_argument("--stop-after", type=int, help="stop after N measurements (reprocessing)")
    ap.add_argument("--no-write-to-db", action="store_true", help="score only")
    ap.add_argument("--no-write-msmt", action="store_true", help="accepted, no effect")
    ap.add_argument("--keep-s3-cache", action="store_true", help="accepted; archive files are "
                    "read into memory, never cached on disk")
    ap.add_argument("--ccs", help="comma-separated country codes (reprocessing)")
    ap.add_argument("--testnames", help="comma-separated test names without underscores")
    ap.add_argument("--write-to-disk", action="store_true",
                    help="spool every live measurement before scoring it")
    ap.add_argument("--workers", type=int, help="scoring processes (FASTPATH_NUM_WORKERS)")
    ap.add_argument("--input-file", nargs="+", metavar="PATH", help="score these files")
    ap.add_argument("--fingerprints-dns", help="DNS fingerprints, CSV or JSON rows")
    ap.add_argument("--fingerprints-http", help="HTTP fingerprints, CSV or JSON rows")
    return ap.parse_args(argv)


def load_config(args: argparse.Namespace) -> Config:
    path = args.conf
    overrides: dict[str, str] = {}
    if args.devel:
        devel_conf = Path("etc/ooni/fastpath.toml")
        if path is None and devel_conf.is_file():
            path = str(devel_conf)
        overrides.setdefault("DATA_DIR", str(Path("var/lib/fastpath").resolve()))
    if args.clickhouse_url:
        overrides["CLICKHOUSE_URL"] = args.clickhouse_url
    return Config.load(path, overrides=overrides)


def _fingerprints(args):
    from .fingerprints import Fingerprints, load_from_files
    if args.fingerprints_dns and args.fingerprints_http:
        return load_from_files(args.fingerprints_dns, args.fingerprints_http)
    if args.fingerprints_dns or args.fingerprints_http:
        raise SystemExit("fastpath: give both --fingerprints-dns and --fingerprints-http")
    return Fingerprints.empty()


def run_input_files(args) -> int:
    from .score_files import run
    try:
        fps = _fingerprints(args)
    except (OSError, ValueError) as e:
        print(f"fastpath: cannot load fingerprints: {e}", file=sys.stderr)
        return 2
    # run() returns the number of measurements, not an exit status
    run(args.input_file, fps, sys.stdout)
    return 0


def open_db(url: str, purpose: str, log: logging.Logger):
    """Lock (embedded DB) and connect; exits with one line when held."""
    from ooni_common.db import DatabaseError, connect
    from ooni_common.lock import LockHeld, lock_for_url
    from ooni_common.schema import ensure_all
    from ooni_common.server_version import check_server, one_line
    lock = lock_for_url(url, purpose)
    if lock is not None:
        try:
            lock.acquire()
        except LockHeld as e:
            raise SystemExit(f"fastpath: {e}; stop it first, or point --clickhouse-url at a "
                             f"ClickHouse server") from None
    try:
        db = connect(url)
        check_server(db)
        ensure_all(db)
    except DatabaseError as e:
        if lock is not None:
            lock.release()
        raise SystemExit(f"fastpath: {one_line(e)}") from None
    return db, lock


def wait_for_database(url: str, log: logging.Logger, stop: threading.Event,
                      first: float = 1.0, longest: float = 60.0) -> bool:
    """The daemon's start: wait, with backoff, until the server answers with
    a recent enough version, instead of exiting (systemd's Restart=always
    would crash-loop). One ERROR line per attempt. False when stopped."""
    from ooni_common.db import DatabaseError, connect
    from ooni_common.server_version import check_server, one_line
    if not url.startswith("clickhouse:"):
        return True  # embedded: open_db checks it once
    delay = first
    while not stop.is_set():
        db = connect(url)
        try:
            v = check_server(db)
            log.info("ClickHouse %s", v.text)
            return True
        except DatabaseError as e:
            log.error("%s; retrying in %.0f s", one_line(e), delay)
        finally:
            db.close()
        stop.wait(delay)
        delay = min(delay * 2, longest)
    return False


def spooling_put(put, spool, metrics, log: logging.Logger):
    """--write-to-disk (§10.1): spool each body before queueing it; a bad
    uid or a failed write is logged (and counted) and the body still scored."""
    from ooni_common.spool import SpoolError

    def wrapped(uid: str, body: bytes, timeout: float | None = None) -> bool:
        try:
            spool.write(uid, body)
        except ValueError:
            log.error("cannot spool %r: not a measurement uid", uid)
            metrics.incr("unhandled_exception")
        except SpoolError as e:
            log.error("%s", e)
        return put(uid, body, timeout)

    return wrapped


def run_daemon(args, cfg: Config, log: logging.Logger) -> int:
    from ooni_common.metrics import from_config

    from .daemon import FastpathDaemon
    from .feeder_http import FeederServer, make_app

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    if not wait_for_database(cfg.clickhouse_url, log, done,
                             longest=cfg.get_float("FASTPATH_DB_RETRY_MAX", 60)):
        return 0
    from ooni_common.ports import check_free
    host = cfg.get_str("FASTPATH_API_HOST", "127.0.0.1")
    port = cfg.get_int("FASTPATH_API_PORT", 8472)
    db, lock = open_db(cfg.clickhouse_url, "fastpath daemon", log)
    # Before the workers start: name an orphan holding the port.
    busy = check_free(host, port)
    if busy:
        raise SystemExit(f"fastpath: {busy}")
    metrics = from_config(cfg, "fastpath")
    daemon = FastpathDaemon(cfg, db, metrics, workers=args.workers)
    put = daemon.put
    if args.write_to_disk:
        put = spooling_put(daemon.put, daemon.spool, metrics, log)
    try:
        server = FeederServer(make_app(put, metrics,
                                       cfg.get_float("FASTPATH_QUEUE_PUT_TIMEOUT", -1),
                                       health=daemon.health_problem),
                              host, port)
    except OSError as e:
        raise SystemExit(f"fastpath: cannot listen on {host}:{port}: {e}") from None
    daemon.start()
    server.start()
    print(f"fastpath: listening on http://{server.host}:{server.port}", flush=True)
    done.wait()
    log.info("shutting down")
    server.stop()
    daemon.stop(timeout=cfg.get_float("FASTPATH_STOP_TIMEOUT", 20))
    if lock is not None:
        lock.release()
    return 0


def run_reprocess(args, cfg: Config, log: logging.Logger) -> int:
    from .reprocess import ReprocessOptions, parse_day, reprocess
    try:
        start = parse_day(args.start_day)
        end = parse_day(args.end_day) if args.end_day else None
    except ValueError as e:
        print(f"fastpath: {e}", file=sys.stderr)
        return 2
    if end is None:
        print("fastpath: --end-day is required with --start-day", file=sys.stderr)
        return 2
    opts = ReprocessOptions(
        start_day=start, end_day=end, write_to_db=not args.no_write_to_db,
        stop_after=args.stop_after,
        ccs=[c.strip().upper() for c in (args.ccs or "").split(",") if c.strip()],
        testnames=[t.strip().replace("_", "") for t in (args.testnames or "").split(",")
                   if t.strip()],
        workers=args.workers if args.workers is not None else (os.cpu_count() or 2),
        fingerprints_dns=args.fingerprints_dns, fingerprints_http=args.fingerprints_http,
        progress=sys.stderr.isatty())
    db = lock = None
    try:
        db, lock = open_db(cfg.clickhouse_url, "fastpath reprocessing", log)
    except SystemExit as e:
        if opts.write_to_db:
            raise
        # Scoring only: the uids come from the sibling postcans instead.
        log.warning("%s; continuing without the database", e)
    from ooni_common.metrics import from_config
    try:
        stats = reprocess(cfg, db, from_config(cfg, "fastpath"), opts)
    finally:
        if lock is not None:
            lock.release()
    print(f"fastpath: {stats.summary()}", flush=True)
    return 0 if stats.errors_files == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["TZ"] = "UTC"
    if args.input_file:
        # stdout carries the rows; logs stay on stderr.
        setup_logging(UNIT, "DEBUG" if args.debug else "WARNING")
        return run_input_files(args)
    # Logs go to stderr (the journal under systemd); --stdout and --devel
    # send them to stdout (§10.3).
    log = setup_logging(UNIT, "DEBUG" if args.debug else None,
                        stream="stdout" if args.stdout or args.devel else "stderr")
    try:
        cfg = load_config(args)
    except ConfigError as e:
        print(f"fastpath: {e}", file=sys.stderr)
        return 2
    if args.start_day:
        return run_reprocess(args, cfg, log)
    if args.noapi:
        print("fastpath: --noapi needs --start-day and --end-day", file=sys.stderr)
        return 2
    return run_daemon(args, cfg, log)


if __name__ == "__main__":
    sys.exit(main())
