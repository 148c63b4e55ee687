"""The ``detector`` job: hourly blocking shares from the fastpath, CUSUM per
(probe_cc, probe_asn, target), changepoints into
``event_detector_changepoints`` and block/unblock events into
``blocking_events``.

    detector [--since YYYY-MM-DD[THH]] [--until ...] [--stdout]

Hours are processed in chunks. Each chunk writes, in this order, its
changepoints and events (skipping those already stored, so a repeat adds
nothing), then every state it touched together with the checkpoint in one
INSERT. A crash anywhere leaves the checkpoint at the last complete chunk;
the next run redoes the chunk from the state stored with that checkpoint and
finds its changepoints already there.

Without ``--since`` a run continues from the checkpoint (the first one starts
``DETECTOR_INITIAL_HOURS`` back). ``--since`` recomputes from scratch from
that hour, with empty state, and replaces the state at the end.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import ujson

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics, from_config, job_metrics
from ooni_common.timeutil import utcnow

from ..runner import JobError, debug_level, load_config, open_db, run_command
from . import cusum
from .targets import Targets

UNIT = "detector"
METRICS_PREFIX = "detector"
log = logging.getLogger(UNIT)

CHECKPOINT_KEY = "__checkpoint__"
HOUR = dt.timedelta(hours=1)

EVENT_STATUS = {cusum.BLOCKED: "BLOCKED", cusum.OK: "OK"}


@dataclass(frozen=True)
class SeriesKey:
    probe_cc: str
    probe_asn: int
    test_name: str
    domain: str   # '' for the messaging tests


@dataclass(frozen=True)
class HourCount:
    key: SeriesKey
    hour: dt.datetime
    n: int        # measurements that did not fail
    blocked: int  # ... of which anomaly or confirmed


@dataclass
class RunResult:
    start: dt.datetime
    end: dt.datetime
    chunks: int = 0
    rows: int = 0            # fastpath rows aggregated
    series_hours: int = 0
    changepoints: int = 0    # newly stored
    events: int = 0          # newly stored
    found: list[tuple[SeriesKey, cusum.Change]] = field(default_factory=list)


def params_from_config(cfg: Config) -> cusum.Params:
    d = cusum.Params()
    p = cusum.Params(
        k=cfg.get_float("DETECTOR_CUSUM_K", d.k),
        h=cfg.get_float("DETECTOR_CUSUM_H", d.h),
        min_samples=cfg.get_int("DETECTOR_MIN_SAMPLES", d.min_samples),
        max_gap_hours=cfg.get_int("DETECTOR_MAX_GAP_HOURS", d.max_gap_hours),
        blocked_share=cfg.get_float("DETECTOR_BLOCKED_SHARE", d.blocked_share),
        ok_share=cfg.get_float("DETECTOR_OK_SHARE", d.ok_share),
        warmup=cfg.get_int("DETECTOR_WARMUP", d.warmup),
        relearn=cfg.get_int("DETECTOR_RELEARN", d.relearn),
    )
    if p.k < 0 or p.h <= 0 or p.min_samples < 1 or p.max_gap_hours < 1 or p.warmup < 1 \
            or p.relearn < 0:
        raise JobError("detector: DETECTOR_CUSUM_K >= 0, DETECTOR_CUSUM_H > 0 and "
                       "DETECTOR_MIN_SAMPLES, DETECTOR_MAX_GAP_HOURS, DETECTOR_WARMUP >= 1")
    if not 0 <= p.ok_share < p.blocked_share <= 1:
        raise JobError("detector: need 0 <= DETECTOR_OK_SHARE < DETECTOR_BLOCKED_SHARE <= 1")
    return p


def floor_hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


# --- reading ------------------------------------------------------------------

# Failed measurements say nothing about blocking; odd anomaly values
# (anything but 't') count as not blocked. Unknown places (ZZ, empty, AS0)
# cannot be reported on.
HOURLY_SQL = """
SELECT
    toStartOfHour(measurement_start_time) AS hour,
    probe_cc,
    toUInt32(probe_asn) AS asn,
    test_name,
    if(test_name = 'web_connectivity', domain, '') AS target_domain,
    count() AS rows,
    countIf(msm_failure != 't') AS n,
    countIf(msm_failure != 't' AND (anomaly = 't' OR confirmed = 't')) AS blocked
FROM fastpath
WHERE measurement_start_time >= {start:DateTime} AND measurement_start_time < {end:DateTime}
  AND ((test_name = 'web_connectivity' AND domain IN {domains:Array(String)})
       OR test_name IN {tests:Array(String)})
  AND length(probe_cc) = 2 AND probe_cc != 'ZZ' AND probe_asn != 0
GROUP BY hour, probe_cc, asn, test_name, target_domain
ORDER BY hour
"""


def hourly_counts(db: Database, start: dt.datetime, end: dt.datetime,
                  targets: Targets) -> tuple[list[HourCount], int]:
    # The fastpath re-inserts a measurement when it is reprocessed; FINAL
    # counts it once.
    sql = HOURLY_SQL.replace("FROM fastpath", "FROM fastpath FINAL")
    res = db.execute(sql, {"start": start, "end": end, "domains": list(targets.domains),
                           "tests": list(targets.tests)})
    out, rows = [], 0
    for hour, cc, asn, tn, dom, nrows, n, blocked in res:
        rows += int(nrows)
        out.append(HourCount(SeriesKey(cc, int(asn), tn, dom), hour, int(n), int(blocked)))
    return out, rows


STATE_SQL = """
SELECT probe_cc, probe_asn, test_name, domain, as_of, state
FROM event_detector_state FINAL
"""


def load_state(db: Database) -> tuple[dt.datetime | None, dict[SeriesKey, cusum.State]]:
    """The checkpoint (end of the last complete chunk) and the state of
    every series as of that hour."""
    cp = None
    states = {}
    for cc, asn, tn, dom, as_of, blob in db.execute(STATE_SQL):
        if tn == CHECKPOINT_KEY:
            cp = as_of
            continue
        states[SeriesKey(cc, int(asn), tn, dom)] = _state_from_json(blob)
    return cp, states


def _state_from_json(blob: str) -> cusum.State:
    d = ujson.loads(blob)
    for k in ("pos_start", "neg_start", "last_ts", "pend_start"):
        if d.get(k):
            d[k] = dt.datetime.fromisoformat(d[k])
    known = cusum.State.__dataclass_fields__
    return cusum.State(**{k: v for k, v in d.items() if k in known})


def _state_to_json(s: cusum.State) -> str:
    d = asdict(s)
    for k, v in d.items():
        if isinstance(v, dt.datetime):
            d[k] = v.isoformat()
    return ujson.dumps(d)


# --- writing ------------------------------------------------------------------

CHANGEPOINT_COLUMNS = ["probe_asn", "probe_cc", "domain", "test_name", "ts", "last_ts",
                       "count", "change_dir", "s_pos", "s_neg", "current_state", "h",
                       "block_type", "current_mean", "previous_mean"]

EXISTING_CHANGEPOINTS_SQL = """
SELECT DISTINCT probe_cc, probe_asn, test_name, domain, ts
FROM event_detector_changepoints
WHERE ts >= {since:DateTime64(3)}
"""

EXISTING_EVENTS_SQL = """
SELECT DISTINCT probe_cc, probe_asn, test_name, input, time
FROM blocking_events
WHERE time >= {since:DateTime64(3)}
"""


def _ts_key(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def write_changes(db: Database, found: list[tuple[SeriesKey, cusum.Change]]) -> tuple[int, int]:
    """Store changepoints and status events not stored yet."""
    if not found:
        return 0, 0
    since = min(c.ts for _, c in found)
    have_cp = {(cc, int(asn), tn, dom, _ts_key(ts)) for cc, asn, tn, dom, ts in
               db.execute(EXISTING_CHANGEPOINTS_SQL, {"since": since})}
    have_ev = {(cc, int(asn), tn, inp, _ts_key(ts)) for cc, asn, tn, inp, ts in
               db.execute(EXISTING_EVENTS_SQL, {"since": since})}
    cps, evs = [], []
    for k, c in found:
        ident = (k.probe_cc, k.probe_asn, k.test_name, k.domain, _ts_key(c.ts))
        if ident not in have_cp:
            have_cp.add(ident)
            cps.append([k.probe_asn, k.probe_cc, k.domain, k.test_name, _ts_key(c.ts),
                        _ts_key(c.last_ts), c.count, c.direction, c.s_pos, c.s_neg, c.status,
                        c.h, "", c.new_mean, c.old_mean])
        if c.status_change and ident not in have_ev:
            have_ev.add(ident)
            evs.append([k.test_name, k.domain, k.probe_cc, k.probe_asn,
                        EVENT_STATUS[c.status_change], _ts_key(c.ts)])
    db.insert("event_detector_changepoints", CHANGEPOINT_COLUMNS, cps)
    db.insert("blocking_events", ["test_name", "input", "probe_cc", "probe_asn", "status", "time"],
              evs)
    return len(cps), len(evs)


STATE_COLUMNS = ["probe_cc", "probe_asn", "test_name", "domain", "as_of", "state", "written"]


def write_state(db: Database, states: dict[SeriesKey, cusum.State], touched: Iterable[SeriesKey],
                checkpoint: dt.datetime) -> None:
    written = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    ts = _ts_key(checkpoint)
    wr = written.strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = [[k.probe_cc, k.probe_asn, k.test_name, k.domain, ts, _state_to_json(states[k]), wr]
            for k in touched]
    rows.append(["", 0, CHECKPOINT_KEY, "", ts, "{}", wr])
    # One INSERT, one block: the states and their checkpoint land together
    # or not at all.
    db.insert("event_detector_state", STATE_COLUMNS, rows,
              settings={"max_insert_block_size": max(len(rows) + 1, 1_048_576),
                        "min_insert_block_size_rows": 0, "min_insert_block_size_bytes": 0})


# --- the run ------------------------------------------------------------------

Hook = Callable[[str, dt.datetime], None]


def run(cfg: Config, db: Database, since: dt.datetime | None = None,
        until: dt.datetime | None = None, metrics: Metrics | None = None,
        now: dt.datetime | None = None, hook: Hook | None = None) -> RunResult:
    """Process whole hours from the checkpoint (or ``since``) up to
    ``until`` (default: now minus DETECTOR_DELAY_HOURS, so that late
    uploads of an hour are in before it is judged). ``hook(stage, chunk_end)``
    is called after each write stage ('changes', 'state')."""
    metrics = metrics or from_config(cfg, METRICS_PREFIX)
    targets = Targets.from_config(cfg)
    params = params_from_config(cfg)
    chunk = dt.timedelta(hours=cfg.get_int("DETECTOR_CHUNK_HOURS", 24))
    if chunk <= dt.timedelta(0):
        raise JobError("DETECTOR_CHUNK_HOURS must be at least 1")
    now = now or utcnow()
    end = floor_hour(until) if until else \
        floor_hour(now) - HOUR * cfg.get_int("DETECTOR_DELAY_HOURS", 2)

    with metrics.timer("load_state"):
        cp, states = load_state(db)
    if since is not None:
        start = floor_hour(since)
        states = {}
    elif cp is not None:
        start = cp
    else:
        start = end - HOUR * cfg.get_int("DETECTOR_INITIAL_HOURS", 24)
    result = RunResult(start, end)
    if start >= end:
        log.info("nothing to do: checkpoint %s, end %s", start, end)
        return result
    log.info("processing %s .. %s (%d series known)", start, end, len(states))

    t = start
    while t < end:
        t_end = min(t + chunk, end)
        with metrics.timer("read_fastpath"):
            counts, nrows = hourly_counts(db, t, t_end, targets)
        result.rows += nrows
        result.series_hours += len(counts)
        by_series: dict[SeriesKey, list[HourCount]] = defaultdict(list)
        for c in counts:
            by_series[c.key].append(c)
        found = []
        with metrics.timer("cusum"):
            for key, hours in by_series.items():
                st = states.get(key)
                if st is None:
                    st = states[key] = cusum.State()
                for hc in hours:
                    ch = cusum.step(st, hc.hour, hc.n, hc.blocked, params)
                    if ch is not None:
                        found.append((key, ch))
        with metrics.timer("write_changes"):
            ncp, nev = write_changes(db, found)
        if hook:
            hook("changes", t_end)
        with metrics.timer("write_state"):
            write_state(db, states, by_series.keys(), t_end)
        if hook:
            hook("state", t_end)
        result.found += found
        result.changepoints += ncp
        result.events += nev
        result.chunks += 1
        log.info("%s .. %s: %d rows, %d series, %d changepoints (%d new), %d new events",
                 t, t_end, nrows, len(by_series), len(found), ncp, nev)
        t = t_end
    metrics.incr("rows", result.rows)
    metrics.incr("changepoints", result.changepoints)
    metrics.incr("events", result.events)
    metrics.gauge("checkpoint_lag_hours", (floor_hour(now) - end) / HOUR)
    return result


def run_job(cfg: Config, db: Database, metrics_root: Metrics | None = None) -> None:
    run(cfg, db, metrics=job_metrics(metrics_root, METRICS_PREFIX))


# --- command ------------------------------------------------------------------

def _hour_arg(s: str) -> dt.datetime:
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return dt.datetime.strptime(s, fmt)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD or YYYY-MM-DDTHH, got {s!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="detector", description=__doc__.split("\n\n")[0])
    ap.add_argument("--since", type=_hour_arg, help="recompute from this hour (UTC) on")
    ap.add_argument("--until", type=_hour_arg, help="stop at this hour (UTC, exclusive)")
    ap.add_argument("--stdout", action="store_true", help="log to stdout at DEBUG level")
    ap.add_argument("--config", help="configuration file (default: $OONI_CONF)")
    ap.add_argument("--db-uri", help="database URL (overrides CLICKHOUSE_URL)")
    args = ap.parse_args(argv)
    if args.since and args.until and args.until <= args.since:
        ap.error("--until must be after --since")
    root = logging.getLogger()
    handler = None
    if args.stdout:
        handler = logging.StreamHandler(sys.stdout)
        root.addHandler(handler)

    def body(stack) -> int:
        cfg = load_config(args.config, {"CLICKHOUSE_URL": args.db_uri})
        db = open_db(cfg, stack, "detector", "detector")
        r = run(cfg, db, since=args.since, until=args.until)
        print(f"detector: {r.start:%Y-%m-%dT%H} .. {r.end:%Y-%m-%dT%H}: {r.rows} rows, "
              f"{r.changepoints} new changepoints, {r.events} new events")
        return 0

    try:
        return run_command(UNIT, body, debug_level(args.stdout))
    finally:
        if handler is not None:
            root.removeHandler(handler)


if __name__ == "__main__":
    raise SystemExit(main())
