"""What every job command shares: configuration, logging under the job's
unit name, opening the database (with the embedded-database lock, so that a
command started while ``ooni-backend run`` holds it says so in one line), and
turning any failure into one line on stderr and a non-zero exit status.

Unlike the legacy runner, a failed job exits non-zero so that systemd and the
scheduler see it.
"""
from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Callable

from ooni_common.config import Config, ConfigError
from ooni_common.db import Database, DatabaseError, connect
from ooni_common.lock import LockHeld, lock_for_url
from ooni_common.logs import setup_logging
from ooni_common.server_version import check_server
from ooni_common.store import StoreError

from . import schema

EXIT_FAILED = 1
EXIT_DB_BUSY = 3


class JobError(Exception):
    """A job failed for a reason worth one clear line (bad input, unreachable
    source, failed validation); nothing live was changed."""


def load_config(path: str | None = None, overrides: dict | None = None) -> Config:
    return Config.load(path, overrides=overrides)


def open_db(cfg: Config, stack: ExitStack, purpose: str, job: str = "NAME") -> Database:
    lock = lock_for_url(cfg.clickhouse_url, purpose)
    if lock is not None:
        try:
            stack.enter_context(lock)
        except LockHeld as e:
            raise LockHeld(f"{e}; run the job through the running process instead: "
                           f"ooni-backend job {job}") from None
    db = connect(cfg.clickhouse_url)
    # An old or unreachable server fails here in one line, not later as a
    # syntax error in the middle of the job.
    check_server(db)
    schema.ensure_schema(db)
    return db


def run_command(unit: str, body: Callable[[ExitStack], int | None],
                level: str | int | None = None) -> int:
    """Run ``body`` and map failures to exit codes with one line on stderr."""
    log = setup_logging(unit, level)
    try:
        with ExitStack() as stack:
            rc = body(stack)
        return int(rc or 0)
    except LockHeld as e:
        log.error("%s", _one_line(e))
        return EXIT_DB_BUSY
    except (JobError, ConfigError, DatabaseError, StoreError, OSError) as e:
        # A timer job failing on an offline machine every hour says it in
        # one ERROR line; the traceback is for --stdout / DEBUG.
        log.error("failed: %s", _one_line(e))
        log.debug("traceback of the failure", exc_info=e)
        return EXIT_FAILED
    except Exception as e:  # anything else is a bug, but still one line
        log.error("failed: %s: %s", type(e).__name__, _one_line(e))
        log.debug("traceback of the failure", exc_info=e)
        return EXIT_FAILED


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:500]


def debug_level(stdout: bool) -> int:
    return logging.DEBUG if stdout else logging.INFO
