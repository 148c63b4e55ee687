"""Logging setup: one line per record on stderr (journald adds the unit),
with the unit name operators know (``fastpath``, ``citizenlab_test_lists_updater``...)."""
from __future__ import annotations

import logging
import os
import sys


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now: a handler bound to the stream
    of its creation breaks when stderr is replaced (test capture, daemons)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(unit: str, level: str | int | None = None) -> logging.Logger:
    level = level or os.environ.get("OONI_LOG_LEVEL", "INFO")
    root = logging.getLogger()
    if not getattr(root, "_ooni_configured", False):
        h = _StderrHandler()
        fmt = "%(asctime)s %(name)s %(levelname)s %(message)s"
        if os.environ.get("INVOCATION_ID"):  # under systemd: journald timestamps
            fmt = "%(name)s %(levelname)s %(message)s"
        h.setFormatter(logging.Formatter(fmt))
        root.addHandler(h)
        root._ooni_configured = True  # type: ignore[attr-defined]
    root.setLevel(level)
    return logging.getLogger(unit)
