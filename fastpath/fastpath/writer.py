"""The single database writer of a fastpath process.

Scored measurements arrive from the worker pool; their rows are buffered and
inserted into ``fastpath`` and ``obs_openvpn`` in batches, flushed every
``batch_rows`` rows or ``flush_interval`` seconds, whichever comes first, so a
live measurement is visible well within 2 s while reprocessing gets large
inserts (§9, with its recommended deviation: a failed batch is split and
retried, so one bad row never drops the others, and failures are counted).

After each flush ``on_flushed(handled_uids, failed_uids)`` is called: handled
are the uids whose rows were written, or that were discarded or rejected
(nothing to write); failed are those whose rows could not be inserted, which
the daemon leaves unmarked in the spool so they are tried again.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Callable, Sequence

from ooni_common.db import Database, DatabaseError
from ooni_common.metrics import Metrics

from .pool import Scored

log = logging.getLogger("fastpath")

FlushCallback = Callable[[list[str], list[str]], None]


def reason_metric(reason: str | None) -> str:
    """A statsd-safe counter suffix for a failure reason."""
    head = (reason or "unknown").split(":", 1)[0].strip().lower()
    return re.sub(r"[^a-z0-9_]+", "_", head)[:60].strip("_") or "unknown"


class RowWriter:
    def __init__(self, db: Database | None, metrics: Metrics, *,
                 fastpath_columns: Sequence[str], openvpn_columns: Sequence[str],
                 batch_rows: int = 1000, flush_interval: float = 0.2,
                 max_buffer: int | None = None, on_flushed: FlushCallback | None = None,
                 write: bool = True, on_row: Callable[[Scored], None] | None = None):
        self.db = db
        self.metrics = metrics
        self.dbm = metrics.child("db")
        self.fp_cols = list(fastpath_columns)
        self.ovpn_cols = list(openvpn_columns)
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer or 4 * batch_rows
        self.on_flushed = on_flushed
        self.on_row = on_row
        self.write = write and db is not None
        self._buf: list[Scored] = []
        self._first_at: float | None = None
        self._cond = threading.Condition()
        self._flushing = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self.counts = {"scored": 0, "discarded": 0, "error": 0, "written": 0, "failed_rows": 0}

    # --- intake -----------------------------------------------------------

    def add(self, results: list[Scored]) -> None:
        """Buffer results; blocks while the buffer is full (backpressure)."""
        self._account(results)
        with self._cond:
            while len(self._buf) >= self.max_buffer and not self._stop:
                self._cond.wait(0.5)
            if not self._buf:
                self._first_at = time.monotonic()
            self._buf.extend(results)
            if len(self._buf) >= self.batch_rows:
                self._cond.notify_all()

    def _account(self, results: list[Scored]) -> None:
        m = self.metrics
        n_ok = n_disc = n_text = 0
        for r in results:
            if r.replaced_text:
                n_text += 1
                log.warning("measurement %s: unpaired UTF-16 surrogates replaced in %d row "
                            "fields (the raw body keeps them)", r.uid, r.replaced_text)
            if r.status == "scored":
                n_ok += 1
            elif r.status == "discarded":
                n_disc += 1
            else:
                m.incr("unhandled_exception")
                m.incr(f"failed.{reason_metric(r.reason)}")
                log.warning("measurement %s not scored: %s", r.uid, r.reason)
            m.timing("full_run", r.ms)
            for name, ms in r.timings:
                m.timing(name, ms)
            if self.on_row is not None:
                self.on_row(r)
        if n_disc:
            m.incr("discarded_measurement", n_disc)
        if n_text:
            m.incr("invalid_unicode_replaced", n_text)
        m.incr("processed", len(results))
        self.counts["scored"] += n_ok
        self.counts["discarded"] += n_disc
        self.counts["error"] += len(results) - n_ok - n_disc

    # --- flushing ---------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fastpath-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Fresh measurements go before API queries and jobs on a shared
        # embedded database (ack-to-visible under load, issue 16).
        if self.db is not None:
            with self.db.priority():
                self._loop()
        else:
            self._loop()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    if len(self._buf) >= self.batch_rows:
                        break
                    if self._buf and time.monotonic() - self._first_at >= self.flush_interval:
                        break
                    wait = self.flush_interval
                    if self._buf:
                        wait = max(0.005, self.flush_interval - (time.monotonic() - self._first_at))
                    self._cond.wait(wait)
                if self._stop and not self._buf:
                    return
                batch, self._buf = self._buf[:self.batch_rows], self._buf[self.batch_rows:]
                self._first_at = time.monotonic() if self._buf else None
                self._flushing = True
                self._cond.notify_all()
            try:
                self.flush_batch(batch)
            finally:
                with self._cond:
                    self._flushing = False
                    self._cond.notify_all()

    def flush_batch(self, batch: list[Scored]) -> None:
        """Write one batch; never raises."""
        failed: set[str] = set()
        if self.write:
            fp = [r for r in batch if r.row is not None]
            ovpn = [r for r in batch if r.openvpn_row is not None]
            if fp:
                # spec §12: clickhouse_upsert around the write, and the DB
                # layer's own timer of the fastpath rows' upsert inside it
                with self.metrics.timer("clickhouse_upsert"), \
                        self.dbm.timer("clickhouse_upsert_summary"):
                    failed |= self._insert("fastpath", self.fp_cols, fp, lambda r: r.row)
            if ovpn:
                with self.dbm.timer("clickhouse_upsert_openvpn_obs"):
                    failed |= self._insert("obs_openvpn", self.ovpn_cols, ovpn,
                                           lambda r: r.openvpn_row)
            self.counts["written"] += len(fp) - len([r for r in fp if r.uid in failed])
        handled = [r.uid for r in batch if r.uid not in failed]
        if self.on_flushed is not None:
            try:
                self.on_flushed(handled, sorted(failed))
            except Exception:
                log.exception("flush callback failed")

    def _insert(self, table: str, cols: list[str], rows: list[Scored], get) -> set[str]:
        """Insert, splitting on failure; returns the uids whose rows failed."""
        try:
            self.db.insert(table, cols, [get(r) for r in rows])
            return set()
        except (DatabaseError, TypeError, ValueError, OverflowError) as e:
            if len(rows) == 1:
                self.metrics.incr("failed_inserts")
                self.dbm.incr(f"{table}_failed_rows")
                self.counts["failed_rows"] += 1
                log.error("cannot insert %s row for %s: %s", table, rows[0].uid, str(e)[:500])
                return {rows[0].uid}
            if isinstance(e, DatabaseError) and not self.db.ping():
                # The database is down, not one row bad: splitting would
                # only multiply the failures. The spool keeps them all.
                self.metrics.incr("failed_inserts")
                self.dbm.incr(f"{table}_failed_rows", len(rows))
                self.counts["failed_rows"] += len(rows)
                log.error("database unavailable, %d %s rows not written: %s", len(rows), table,
                          str(e)[:300])
                return {r.uid for r in rows}
            self.metrics.incr("failed_batch_inserts")
            log.warning("insert of %d %s rows failed, splitting: %s", len(rows), table,
                        str(e)[:300])
        half = len(rows) // 2
        return (self._insert(table, cols, rows[:half], get)
                | self._insert(table, cols, rows[half:], get))

    def buffered(self) -> int:
        with self._cond:
            return len(self._buf) + (1 if self._flushing else 0)

    def stop(self, timeout: float = 10) -> None:
        """Flush what is buffered and end the writer thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            while self._buf:
                batch, self._buf = self._buf[:self.batch_rows], self._buf[self.batch_rows:]
                self.flush_batch(batch)
