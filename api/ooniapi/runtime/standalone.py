"""``ooni-backend``: the whole backend in one process on the embedded
database (DESIGN.md, "Two ways to run").

    ooni-backend run [--host H] [--port N] [--data-dir DIR] [--config FILE]
    ooni-backend job NAME [--data-dir DIR] [--config FILE]
    ooni-backend jobs [--config FILE]

``run`` takes the lock of the embedded database, creates the tables, starts
the fastpath in-process, the job scheduler, the control socket and a threaded
HTTP server; SIGTERM or SIGINT stop it cleanly. ``job NAME`` asks a running
``ooni-backend run`` on the same data directory to run the job now, or runs it
itself when none is running.
"""
from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading
from pathlib import Path

from ooni_common.config import Config, ConfigError
from ooni_common.db import DatabaseError, connect
from ooni_common.lock import LockHeld, lock_for_url
from ooni_common.logs import setup_logging
from ooni_common.metrics import from_config as metrics_from_config
from ooni_common.ports import check_free, describe_holder
from ooni_common.schema import ensure_all
from ooni_common.server_version import check_server, one_line

from ooniapi.runtime.busy import send_busy
from ooniapi.runtime.control import ControlServer, NoServer, request_job, socket_path
from ooniapi.runtime.scheduler import JobRunner, Scheduler, job_interval

log = logging.getLogger("ooni-backend")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# On shutdown, give the fastpath this long to score what it already holds;
# the rest stays in the spool and is scored at the next start.
DRAIN_TIMEOUT = 10.0
# ... and a running job this long to end before the database closes under
# it (jobs are crash-safe, so a job cut short leaves the previous data).
JOB_STOP_TIMEOUT = 30.0


class Fatal(Exception):
    """A one-line reason to exit with status 1, printed without traceback."""


def load_config(args: argparse.Namespace) -> Config:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["DATA_DIR"] = str(Path(args.data_dir).resolve())
    try:
        cfg = Config.load(args.config, overrides=overrides)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
    except (ConfigError, OSError) as e:
        raise Fatal(str(e)) from None
    return cfg


def open_database(cfg: Config, purpose: str):
    """Lock (embedded database only), connect and create every table."""
    lock = lock_for_url(cfg.clickhouse_url, purpose)
    if lock is not None:
        try:
            lock.acquire()
        except LockHeld as e:
            raise Fatal(str(e)) from None
    try:
        db = connect(cfg.clickhouse_url)
        check_server(db)
        ensure_all(db)
    except DatabaseError as e:
        if lock is not None:
            lock.release()
        raise Fatal(f"cannot open the database: {one_line(e)}") from None
    return db, lock


def close_database(db, lock) -> None:
    # The embedded engine must be shut down explicitly (see
    # ChdbDatabase.shutdown); a server connection just closes.
    getattr(db, "shutdown", db.close)()
    if lock is not None:
        lock.release()


def all_jobs() -> dict:
    from analysis.jobs import all_jobs as registry
    return registry()


def make_server(host: str, port: int, app, *, threads: int = 64, read_timeout: float = 30.0):
    """A threaded HTTP server with at most ``threads`` requests in flight
    (more get an immediate 503) and a timeout on every read and write, so
    that slow clients can neither starve the others nor pile up threads."""
    from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
    from werkzeug.urls import uri_to_iri

    class QuietHandler(WSGIRequestHandler):
        timeout = read_timeout

        # Access logs of every submission would drown the journal; and
        # werkzeug's own line colours the request with ANSI escapes, which
        # end up in log files and the journal.
        def log_request(self, code="-", size="-"):
            code = str(code)
            if not (code.startswith(("4", "5")) or log.isEnabledFor(logging.DEBUG)):
                return
            try:
                msg = f"{self.command} {uri_to_iri(self.path)} {self.request_version}"
            except AttributeError:  # no path when the request line was bad
                msg = self.requestline
            self.log("info", '"%s" %s %s', msg.translate(self._control_char_table), code, size)

    class BoundedServer(ThreadedWSGIServer):
        slots = threading.BoundedSemaphore(threads)

        def process_request(self, request, client_address):
            if not self.slots.acquire(blocking=False):
                send_busy(request)
                self.shutdown_request(request)
                return
            super().process_request(request, client_address)

        def process_request_thread(self, request, client_address):
            try:
                super().process_request_thread(request, client_address)
            finally:
                self.slots.release()

    try:
        return BoundedServer(host, port, app, QuietHandler)
    except OSError as e:
        held = describe_holder(port) if e.errno == errno.EADDRINUSE else e.strerror or e
        raise Fatal(f"cannot listen on {host}:{port}: {held}") from None


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    host = args.host or cfg.get_str("LISTEN_HOST", DEFAULT_HOST)
    port = args.port if args.port is not None else cfg.get_int("LISTEN_PORT", DEFAULT_PORT)
    # The API's links default to this address when BASE_URL is unset.
    cfg = cfg.with_overrides(LISTEN_HOST=host, LISTEN_PORT=port)
    # Before the database and the workers: a port kept by an orphan of a
    # previous run is named at once.
    busy = check_free(host, port)
    if busy:
        raise Fatal(busy)
    db, lock = open_database(cfg, "ooni-backend run")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    from fastpath.daemon import FastpathDaemon

    from ooniapi.core.app import create_app

    api_metrics = metrics_from_config(cfg, "ooni-api")
    # One registry: /metrics shows the fastpath and the jobs too.
    fp = FastpathDaemon(cfg, db, api_metrics.sibling("fastpath"), in_process=True)
    server = control = scheduler = runner = None
    try:
        # Workers (and the threads that respawn them) inherit a blocked
        # SIGINT: a Ctrl-C while they boot reaches only this process.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            fp.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        app = create_app(cfg, db=db, notify_fastpath=fp.submit, metrics=api_metrics)
        # /health answers 503 while scoring is stuck (pages/routes.py).
        app.extensions["ooni"].extras["fastpath_health"] = fp.health_problem
        server = make_server(host, port, app, threads=cfg.get_int("STANDALONE_HTTP_THREADS", 64),
                             read_timeout=cfg.get_float("API_READ_TIMEOUT", 30.0))
        runner = JobRunner(cfg, db, all_jobs(), api_metrics.sibling("ooni-backend"))
        scheduler = Scheduler(runner, cfg)
        scheduler.start()
        control = ControlServer(socket_path(cfg.data_dir), runner)
        control.start()
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        log.info("serving on http://%s:%d (data in %s)", host, server.port, cfg.data_dir)
        stop.wait()
        log.info("stopping")
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if control is not None:
            control.stop()
        if scheduler is not None:
            scheduler.stop(timeout=1.0)
        if runner is not None and not runner.wait_idle(JOB_STOP_TIMEOUT):
            log.warning("a job is still running after %.0f s; stopping anyway", JOB_STOP_TIMEOUT)
        if not fp.wait_idle(DRAIN_TIMEOUT):
            log.warning("fastpath not idle after %.0f s; the spool keeps the rest", DRAIN_TIMEOUT)
        fp.stop()
        close_database(db, lock)
    log.info("stopped")
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    jobs = all_jobs()
    if args.name not in jobs:
        raise Fatal(f"unknown job {args.name!r}; known jobs: {', '.join(sorted(jobs))}")
    try:
        res = request_job(socket_path(cfg.data_dir), args.name)
        via = "by the running ooni-backend"
    except NoServer:
        db, lock = open_database(cfg, f"ooni-backend job {args.name}")
        try:
            res = JobRunner(cfg, db, jobs, metrics_from_config(cfg, "ooni-backend")).run(args.name)
        finally:
            close_database(db, lock)
        via = "in this process"
    print(f"{res.line()} (run {via})")
    return 0 if res.ok else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    for name, job in sorted(all_jobs().items()):
        iv = job_interval(job, cfg)
        when = f"every {iv:g} s" if iv > 0 else "not scheduled"
        print(f"{name:<14} {when:<20} ({job.interval_key})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ooni-backend", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--config", help="TOML configuration file (default $OONI_CONF)")
        sp.add_argument("--data-dir", help="data directory (default ./var or $XDG_DATA_HOME/ooni-backend)")

    r = sub.add_parser("run", help="run API, fastpath and job scheduler in one process")
    common(r)
    r.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    r.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    r.set_defaults(func=cmd_run)

    j = sub.add_parser("job", help="run one periodic job now")
    common(j)
    j.add_argument("name")
    j.set_defaults(func=cmd_job)

    ls = sub.add_parser("jobs", help="list the periodic jobs and their intervals")
    common(ls)
    ls.set_defaults(func=cmd_jobs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("ooni-backend")
    try:
        return args.func(args)
    except Fatal as e:
        print(f"ooni-backend: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
