"""Logging setup: one line per record (journald adds the unit), with the
unit name operators know (``fastpath``, ``citizenlab_test_lists_updater``...).

Under systemd (``JOURNAL_STREAM`` set: stdout/stderr are the journal) each
line starts with its syslog priority, ``<3>`` for ERROR, ``<4>`` WARNING,
``<6>`` INFO, ``<7>`` DEBUG (sd-daemon(3); journald's SyslogLevelPrefix=, on
by default), so that ``journalctl -p err`` finds the errors, and without a
timestamp (journald has one). Elsewhere: a timestamp and no prefix."""
from __future__ import annotations

import logging
import os
import sys

# sd-daemon(3) priorities
PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4,
              logging.INFO: 6, logging.DEBUG: 7}

# Libraries whose own WARNINGs come with a traceback (clickhouse-driver logs
# every failed connection with exc_info): our one-line error says the same.
NOISY = ("clickhouse_driver",)


class _StreamHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` (or ``sys.stdout``) is now: a
    handler bound to the stream of its creation breaks when it is replaced
    (test capture, daemons)."""

    def __init__(self, target: str = "stderr"):
        super().__init__()
        self.target = target

    @property
    def stream(self):
        return getattr(sys, self.target)

    @stream.setter
    def stream(self, _value) -> None:
        pass


class JournalFormatter(logging.Formatter):
    """``<N>`` priority prefix; a multi-line record (a DEBUG traceback) gets
    it on every line, so that journald files each line at that priority."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


def priority(levelno: int) -> int:
    for lvl in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= lvl:
            return PRIORITIES[lvl]
    return PRIORITIES[logging.DEBUG]


def under_journal() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM"))


def make_formatter() -> logging.Formatter:
    if under_journal():
        return JournalFormatter("%(name)s %(levelname)s %(message)s")
    fmt = "%(asctime)s %(name)s %(levelname)s %(message)s"
    if os.environ.get("INVOCATION_ID"):  # under systemd: journald timestamps
        fmt = "%(name)s %(levelname)s %(message)s"
    return logging.Formatter(fmt)


def setup_logging(unit: str, level: str | int | None = None,
                  stream: str | None = None) -> logging.Logger:
    """``stream``: "stdout" or "stderr" (default); a later call may move
    the handler (``fastpath --stdout``)."""
    level = level or os.environ.get("OONI_LOG_LEVEL", "INFO")
    root = logging.getLogger()
    h = getattr(root, "_ooni_handler", None)
    if h is None:
        h = _StreamHandler(stream or "stderr")
        h.setFormatter(make_formatter())
        root.addHandler(h)
        root._ooni_handler = h  # type: ignore[attr-defined]
        root._ooni_configured = True  # type: ignore[attr-defined]
    elif stream:
        h.target = stream
    root.setLevel(level)
    debug = root.getEffectiveLevel() <= logging.DEBUG
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.ERROR)
    return logging.getLogger(unit)
