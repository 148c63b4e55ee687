"""The standalone process's job scheduler: runs the periodic jobs of
``analysis.jobs`` at their configured intervals, one job at a time, in one
background thread. ``JobRunner`` is shared with the control socket so that a
job asked for by ``ooni-backend job NAME`` queues behind a scheduled run
instead of racing it on the embedded database."""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Mapping

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics
from ooni_common.server_version import one_line

log = logging.getLogger("ooni-backend")

# First scheduled runs wait this long after start, so that start-up (and a
# quick restart loop) is not slowed by every job at once.
DEFAULT_START_DELAY = 60.0


@dataclass(frozen=True)
class JobResult:
    name: str
    ok: bool
    seconds: float
    error: str = ""

    def line(self) -> str:
        if self.ok:
            return f"job {self.name}: ok in {self.seconds:.2f} s"
        return f"job {self.name}: failed after {self.seconds:.2f} s: {self.error}"


class JobRunner:
    """Runs jobs by name, serialised, turning failures into results."""

    def __init__(self, cfg: Config, db: Database, jobs: Mapping[str, object],
                 metrics: Metrics):
        self.cfg = cfg
        self.db = db
        self.jobs = dict(jobs)
        self.metrics = metrics
        self._lock = threading.Lock()

    def run(self, name: str) -> JobResult:
        job = self.jobs.get(name)
        if job is None:
            return JobResult(name, False, 0.0, f"unknown job; known jobs: {', '.join(sorted(self.jobs))}")
        with self._lock:
            log.info("job %s starting", name)
            t0 = time.monotonic()
            try:
                # API queries and the fastpath writer go first on a shared
                # embedded database; a job waits between its statements.
                bg = getattr(self.db, "background", contextlib.nullcontext)
                with bg():
                    job.run(self.cfg, self.db, self.metrics)
            except Exception as e:
                dt = time.monotonic() - t0
                # One ERROR line per failed run (an offline machine fails
                # every run); the traceback only at DEBUG.
                log.error("job %s failed after %.2f s: %s", name, dt, one_line(e))
                log.debug("job %s traceback:\n%s", name, traceback.format_exc().rstrip())
                self.metrics.incr(f"job_{name}_failed")
                return JobResult(name, False, dt, str(e) or type(e).__name__)
            dt = time.monotonic() - t0
            self.metrics.timing(f"job_{name}_run_time", dt * 1000)
            log.info("job %s done in %.2f s", name, dt)
            return JobResult(name, True, dt)


    def wait_idle(self, timeout: float) -> bool:
        """True once no job is running (waits at most ``timeout`` s)."""
        if not self._lock.acquire(timeout=timeout):
            return False
        self._lock.release()
        return True


def job_interval(job, cfg: Config) -> float:
    return cfg.get_float(job.interval_key, job.default_interval)


class Scheduler:
    """Runs each job with an interval > 0 every ``interval`` seconds, the
    first time ``start_delay`` seconds (at most one interval) after start.
    Intervals are counted from the end of the previous run, so a slow job is
    never run twice at once."""

    def __init__(self, runner: JobRunner, cfg: Config,
                 clock: Callable[[], float] = time.monotonic):
        self.runner = runner
        self.clock = clock
        start_delay = cfg.get_float("JOB_START_DELAY", DEFAULT_START_DELAY)
        now = clock()
        self.intervals: dict[str, float] = {}
        self.next_run: dict[str, float] = {}
        for name, job in runner.jobs.items():
            iv = job_interval(job, cfg)
            if iv > 0:
                self.intervals[name] = iv
                self.next_run[name] = now + min(start_delay, iv)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self) -> tuple[str, float] | None:
        """The next job to run and when, or None when nothing is scheduled."""
        if not self.next_run:
            return None
        name = min(self.next_run, key=lambda n: (self.next_run[n], n))
        return name, self.next_run[name]

    def run_due(self) -> JobResult | None:
        """Run the soonest job if its time has come."""
        d = self.due()
        if d is None or d[1] > self.clock():
            return None
        name = d[0]
        res = self.runner.run(name)
        self.next_run[name] = self.clock() + self.intervals[name]
        return res

    def _loop(self) -> None:
        while not self._stop.is_set():
            d = self.due()
            wait = 3600.0 if d is None else max(0.0, d[1] - self.clock())
            if self._stop.wait(min(wait, 3600.0)):
                return
            self.run_due()

    def start(self) -> None:
        for name, iv in sorted(self.intervals.items()):
            log.info("scheduled job %s every %g s", name, iv)
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop scheduling; a job already running is left to finish (the
        daemon thread does not keep the process alive)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
