"""``ooni-api``: the production API server, gunicorn with several worker
processes serving ``ooniapi.core.app.create_app`` (DESIGN.md, production mode).

Configuration: the file named by ``--config`` or ``$OONI_CONF``, with
``OONI_*`` environment overrides. Server keys (all optional):
``LISTEN_HOST`` (127.0.0.1), ``LISTEN_PORT`` (8000), ``API_WORKERS``
(2 x cores + 1), ``API_WORKER_CLASS`` (gthread), ``API_THREADS`` (4 per
worker), ``API_TIMEOUT`` (60 s), ``API_KEEPALIVE`` (5 s),
``API_GRACEFUL_TIMEOUT`` (20 s: how long a worker finishes its requests at
stop, or after its master died, before it exits; below the systemd unit's
``TimeoutStopSec`` so that no worker outlives the unit's stop).

The API needs a ClickHouse server: an embedded (chdb) database belongs to one
process, which is what ``ooni-backend run`` is for."""
from __future__ import annotations

import argparse
import glob
import logging
import os
import shutil
import sys
import tempfile

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from ooni_common.config import Config, ConfigError
from ooni_common.db import DatabaseError, connect
from ooni_common.logs import JournalFormatter, setup_logging, under_journal
from ooni_common.metrics import MULTIPROC_ENV
from ooni_common.ports import check_free
from ooni_common.server_version import MIN_CLICKHOUSE_TEXT, DatabaseVersionError, check_server, one_line

from ooniapi.runtime.gunicorn_worker import BoundedThreadWorker


class ApiServer(BaseApplication):
    def __init__(self, cfg: Config, options: dict):
        self.cfg_ooni = cfg
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for k, v in self.options.items():
            self.cfg.set(k, v)

    def load(self):
        from ooniapi.core.app import create_app
        return create_app(self.cfg_ooni)


def gunicorn_options(cfg: Config, bind: str | None = None, workers: int | None = None) -> dict:
    host = cfg.get_str("LISTEN_HOST", "127.0.0.1")
    port = cfg.get_int("LISTEN_PORT", 8000)
    worker_class = cfg.get_str("API_WORKER_CLASS", "gthread")
    if worker_class == "gthread":
        worker_class = f"{BoundedThreadWorker.__module__}.{BoundedThreadWorker.__name__}"
    return {
        "bind": bind or f"{host}:{port}",
        "workers": workers or cfg.get_int("API_WORKERS", 2 * (os.cpu_count() or 1) + 1),
        "worker_class": worker_class,
        "threads": cfg.get_int("API_THREADS", 4),
        "timeout": cfg.get_int("API_TIMEOUT", 60),
        "keepalive": cfg.get_int("API_KEEPALIVE", 5),
        "graceful_timeout": cfg.get_int("API_GRACEFUL_TIMEOUT", 20),
        # Measurements are several MB: let the app, not gunicorn, cap bodies.
        "limit_request_line": 8190,
        # Workers import the app once in the master and fork, so a broken
        # configuration fails at start, not at the first request.
        "preload_app": True,
        "accesslog": cfg.get_str("API_ACCESS_LOG", "") or None,
        "errorlog": "-",
        "loglevel": cfg.get_str("LOG_LEVEL", "info").lower(),
        "proc_name": "ooni-api",
        "logger_class": f"{JournalLogger.__module__}.{JournalLogger.__name__}",
    }


class JournalLogger(glogging.Logger):
    """gunicorn's own log lines with a journald priority prefix under
    systemd, like the application's (ooni_common.logs)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        if under_journal():
            for h in self.error_log.handlers:
                h.setFormatter(JournalFormatter("[%(process)d] [%(levelname)s] %(message)s"))
            for h in self.access_log.handlers:
                h.setFormatter(JournalFormatter("%(message)s"))


def prepare_metrics_dir() -> tuple[str, bool]:
    """An empty PROMETHEUS_MULTIPROC_DIR for this run, set in the
    environment before the app (and prometheus_client) is imported, so that
    /metrics sums the counters of every worker. An operator's own directory
    is emptied of the files of a previous run; otherwise a new one is made
    under systemd's RuntimeDirectory (or /tmp) and removed at exit.
    Returns (directory, made here)."""
    d = os.environ.get(MULTIPROC_ENV)
    if d:
        os.makedirs(d, exist_ok=True)
        for f in glob.glob(os.path.join(d, "*.db")):
            os.unlink(f)
        return d, False
    runtime = (os.environ.get("RUNTIME_DIRECTORY") or "").split(":")[0] or None
    d = tempfile.mkdtemp(prefix="ooni-api-metrics-", dir=runtime)
    os.environ[MULTIPROC_ENV] = d
    return d, True


def check_database(cfg: Config) -> bool:
    """False (after one ERROR line) when the server is too old. An
    unreachable server is one WARNING line and no refusal: submissions are
    spooled without a database, and /health answers 503 with the reason."""
    log = logging.getLogger("ooni-api")
    try:
        db = connect(cfg.clickhouse_url)
    except DatabaseError as e:
        log.error("%s", one_line(e))
        return False
    try:
        v = check_server(db)
    except DatabaseVersionError as e:
        log.error("%s", one_line(e))
        return False
    except DatabaseError as e:
        log.warning("%s; starting anyway, /health answers 503 until it does", one_line(e))
        return True
    finally:
        db.close()  # never share a driver connection with the forked workers
    log.info("ClickHouse %s (minimum %s)", v.text, MIN_CLICKHOUSE_TEXT)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ooni-api", description="OONI API server (gunicorn)")
    p.add_argument("--config", help="TOML configuration file (default $OONI_CONF)")
    p.add_argument("--bind", help="HOST:PORT to listen on (default LISTEN_HOST:LISTEN_PORT)")
    p.add_argument("--workers", type=int, help="worker processes (default API_WORKERS)")
    args = p.parse_args(argv)
    setup_logging("ooni-api")
    try:
        cfg = Config.load(args.config)
        if cfg.clickhouse_url.startswith("chdb:"):
            raise ConfigError("ooni-api needs a ClickHouse server (CLICKHOUSE_URL=clickhouse://...); "
                              "the embedded database is served by 'ooni-backend run'")
        if not cfg.get_str("BASE_URL", ""):
            raise ConfigError("BASE_URL is required: the public URL of the API, used in next_url links")
        opts = gunicorn_options(cfg, args.bind, args.workers)
    except ConfigError as e:
        print(f"ooni-api: {e}", file=sys.stderr)
        return 1
    # gunicorn retries a busy port and then fails without saying who has it
    # (often orphaned workers of a master killed with -9).
    host, _, port = opts["bind"].rpartition(":")
    if port.isdigit():
        busy = check_free(host.strip("[]") or "0.0.0.0", int(port))
        if busy:
            print(f"ooni-api: {busy}", file=sys.stderr)
            return 1
    if not check_database(cfg):
        return 1
    mdir, owned = prepare_metrics_dir()
    master = os.getpid()
    try:
        ApiServer(cfg, opts).run()
    finally:
        # Workers unwind through here too when they exit: only the master
        # removes the directory, once every worker is gone.
        if owned and os.getpid() == master:
            shutil.rmtree(mdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
