"""statsd metrics with the names of the original documentation, plus an
in-process registry that the Prometheus text endpoint exposes."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import statsd


class Metrics:
    """A statsd client under one prefix (``ooni-api``, ``fastpath``...).
    Values are also kept in memory for ``/metrics``; statsd is UDP, so a
    missing collector costs nothing."""

    def __init__(self, prefix: str, host: str = "127.0.0.1", port: int = 8125,
                 enabled: bool = True):
        self.prefix = prefix
        self._client = statsd.StatsClient(host, port, prefix=prefix) if enabled else None
        self._lock = threading.Lock()
        self.counters: dict[str, float] = {}
        self.gauges: dict[str, float] = {}
        self.timers: dict[str, tuple[int, float]] = {}

    def child(self, suffix: str) -> "Metrics":
        m = Metrics.__new__(Metrics)
        m.prefix = f"{self.prefix}.{suffix}"
        m._client = statsd.StatsClient(self._client._addr[0], self._client._addr[1],
                                       prefix=m.prefix) if self._client else None
        m._lock = self._lock
        m.counters, m.gauges, m.timers = self.counters, self.gauges, self.timers
        return m

    def sibling(self, prefix: str) -> "Metrics":
        """Another prefix in the same in-memory registry, so that one
        ``/metrics`` shows both (the standalone process: API and fastpath)."""
        m = self.child("x")
        m.prefix = prefix
        if self._client:
            m._client = statsd.StatsClient(self._client._addr[0], self._client._addr[1],
                                           prefix=prefix)
        return m

    def _key(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def incr(self, name: str, count: float = 1) -> None:
        with self._lock:
            k = self._key(name)
            self.counters[k] = self.counters.get(k, 0) + count
        if self._client:
            self._client.incr(name, count)

    def gauge(self, name: str, value: float) -> None:
        with self._lock:
            self.gauges[self._key(name)] = value
        if self._client:
            self._client.gauge(name, value)

    def timing(self, name: str, ms: float) -> None:
        with self._lock:
            k = self._key(name)
            n, total = self.timers.get(k, (0, 0.0))
            self.timers[k] = (n + 1, total + ms)
        if self._client:
            self._client.timing(name, ms)

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timing(name, (time.perf_counter() - t0) * 1000)

    def prometheus_text(self) -> str:
        def n(k: str) -> str:
            return "".join(c if c.isalnum() else "_" for c in k)
        lines = []
        with self._lock:
            for k, v in sorted(self.counters.items()):
                lines += [f"# TYPE {n(k)}_total counter", f"{n(k)}_total {v}"]
            for k, v in sorted(self.gauges.items()):
                lines += [f"# TYPE {n(k)} gauge", f"{n(k)} {v}"]
            for k, (cnt, total) in sorted(self.timers.items()):
                lines += [f"# TYPE {n(k)}_ms summary", f"{n(k)}_ms_count {cnt}",
                          f"{n(k)}_ms_sum {total}"]
        return "\n".join(lines) + "\n"


def from_config(cfg, prefix: str) -> Metrics:
    return Metrics(prefix, cfg.get_str("STATSD_HOST", "127.0.0.1"),
                   cfg.get_int("STATSD_PORT", 8125), cfg.get_bool("STATSD_ENABLED", True))
