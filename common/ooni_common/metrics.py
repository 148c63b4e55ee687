"""statsd metrics with the names of the original documentation, plus a
registry that the Prometheus text endpoint (``/metrics``) exposes.

The registry is in memory for one process (``ooni-backend run``, the
fastpath daemon). Under gunicorn (``ooni-api``) every worker is a process of
its own: there the values are also written to prometheus_client's
multiprocess files in ``PROMETHEUS_MULTIPROC_DIR`` (a directory ``ooni-api``
creates empty at each start), and ``/metrics`` sums them over every worker,
living or dead, so that counters never jump back between scrapes."""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import statsd

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prom_name(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key)


class _Multiprocess:
    """The values of this process in the shared directory, as
    prometheus_client metrics: statsd counters may go down (``num_workers``),
    so they are gauges summed over processes, exposed as ``NAME_total``;
    gauges keep the most recent value of any process; timers are summaries
    (count and sum, in ms)."""

    def __init__(self, directory: str):
        from prometheus_client import CollectorRegistry, values
        # The value class is chosen when prometheus_client is first imported:
        # a process that imported it before the directory was set would
        # keep its values to itself.
        if "Mmaped" not in getattr(values.ValueClass, "__name__", ""):
            raise RuntimeError(f"prometheus_client was imported before {MULTIPROC_ENV} was set")
        self.directory = directory
        self.registry = CollectorRegistry(auto_describe=False)
        self._made: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()

    def _get(self, kind: str, name: str):
        m = self._made.get((kind, name))
        if m is None:
            from prometheus_client import Gauge, Summary
            with self._lock:
                m = self._made.get((kind, name))
                if m is None:
                    if kind == "counter":
                        m = Gauge(name, name, multiprocess_mode="sum", registry=self.registry)
                    elif kind == "gauge":
                        m = Gauge(name, name, multiprocess_mode="mostrecent", registry=self.registry)
                    else:
                        m = Summary(name, name, registry=self.registry)
                    self._made[(kind, name)] = m
        return m

    def incr(self, key: str, count: float) -> None:
        self._get("counter", prom_name(key) + "_total").inc(count)

    def gauge(self, key: str, value: float) -> None:
        self._get("gauge", prom_name(key)).set(value)

    def timing(self, key: str, ms: float) -> None:
        self._get("timer", prom_name(key) + "_ms").observe(ms)

    def text(self) -> str:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector
        reg = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(reg, path=self.directory)
        lines = []
        for fam in sorted(reg.collect(), key=lambda f: f.name):
            kind = fam.type
            if kind == "gauge" and fam.name.endswith("_total"):
                kind = "counter"
            lines.append(f"# TYPE {fam.name} {kind}")
            for s in sorted(fam.samples, key=lambda s: s.name):
                if s.labels:  # only the summary's own series have none
                    continue
                lines.append(f"{s.name} {_num(s.value)}")
        return "\n".join(lines) + "\n"


def _num(v: float) -> str:
    return repr(float(v))


class _Store:
    """What a Metrics, its children and its siblings share."""

    def __init__(self, multiproc_dir: str | None):
        self.lock = threading.Lock()
        self.counters: dict[str, float] = {}
        self.gauges: dict[str, float] = {}
        self.timers: dict[str, tuple[int, float]] = {}
        self.mp = _Multiprocess(multiproc_dir) if multiproc_dir else None


class Metrics:
    """A statsd client under one prefix (``ooni-api``, ``fastpath``...).
    Values are also kept for ``/metrics``; statsd is UDP, so a missing
    collector costs nothing. ``multiproc_dir``: see the module docstring."""

    def __init__(self, prefix: str, host: str = "127.0.0.1", port: int = 8125,
                 enabled: bool = True, multiproc_dir: str | None = None):
        self._init(prefix, statsd.StatsClient(host, port, prefix=prefix) if enabled else None,
                   _Store(multiproc_dir))

    def _init(self, prefix: str, client, store: _Store) -> None:
        self.prefix = prefix
        self._client = client
        self._store = store
        self._lock = store.lock
        self.counters, self.gauges, self.timers = store.counters, store.gauges, store.timers

    def _with_prefix(self, prefix: str) -> "Metrics":
        m = Metrics.__new__(Metrics)
        client = (statsd.StatsClient(self._client._addr[0], self._client._addr[1], prefix=prefix)
                  if self._client else None)
        m._init(prefix, client, self._store)
        return m

    def child(self, suffix: str) -> "Metrics":
        """``fastpath`` -> ``fastpath.db``, same registry."""
        return self._with_prefix(f"{self.prefix}.{suffix}")

    def sibling(self, prefix: str) -> "Metrics":
        """Another prefix in the same registry: ``ooni-backend run`` shows
        the API's, the fastpath's and the jobs' metrics in one /metrics."""
        return self._with_prefix(prefix)

    def _key(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def incr(self, name: str, count: float = 1) -> None:
        k = self._key(name)
        with self._lock:
            self.counters[k] = self.counters.get(k, 0) + count
        if self._store.mp:
            self._store.mp.incr(k, count)
        if self._client:
            self._client.incr(name, count)

    def gauge(self, name: str, value: float) -> None:
        k = self._key(name)
        with self._lock:
            self.gauges[k] = value
        if self._store.mp:
            self._store.mp.gauge(k, value)
        if self._client:
            self._client.gauge(name, value)

    def timing(self, name: str, ms: float) -> None:
        k = self._key(name)
        with self._lock:
            n, total = self.timers.get(k, (0, 0.0))
            self.timers[k] = (n + 1, total + ms)
        if self._store.mp:
            self._store.mp.timing(k, ms)
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
        if self._store.mp:
            return self._store.mp.text()
        n = prom_name
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


def job_metrics(root: Metrics | None, prefix: str) -> Metrics | None:
    """A job's metrics under its own prefix in ``root``'s registry."""
    return root.sibling(prefix) if root is not None else None


def from_config(cfg, prefix: str) -> Metrics:
    """``PROMETHEUS_MULTIPROC_DIR`` in the environment (set by ``ooni-api``
    for its workers) selects the multiprocess registry."""
    return Metrics(prefix, cfg.get_str("STATSD_HOST", "127.0.0.1"),
                   cfg.get_int("STATSD_PORT", 8125), cfg.get_bool("STATSD_ENABLED", True),
                   multiproc_dir=os.environ.get(MULTIPROC_ENV) or None)
