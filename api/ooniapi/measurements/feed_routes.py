"""``GET /api/v1/measurements/feed``: Server-Sent Events of newly scored
measurements (see feed.py for the event ids)."""
from __future__ import annotations

import logging
import time
from typing import Any, Iterator

import ujson
from flask import Response, request, stream_with_context

from ooni_common.db import DatabaseError
from ooni_common.timeutil import utcnow

from ooniapi.core.context import services
from ooniapi.core.errors import ApiError, BadRequest
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.ratelimit import stream_charge
from ooniapi.measurements.feed import FeedPosition, SubscriberSlots, feed_sql, parse_event_id
from ooniapi.measurements.routes import document_filters, parse_list_query

log = logging.getLogger("ooni-api.feed")

bp = ApiBlueprint("measurements_feed", __name__, tag="measurements")

PAGING_PARAMS = ("cursor", "offset", "limit", "order_by", "order")
# A feed filters on measurement_start_time only when asked: a probe may
# upload a measurement days after it ran.
WIDE_SINCE, WIDE_UNTIL = "1970-01-02", "2106-01-01"


def _slots() -> SubscriberSlots:
    svc = services()
    slots = svc.extras.get("feed_slots")
    if slots is None:
        slots = svc.extras.setdefault(
            "feed_slots", SubscriberSlots(svc.cfg.get_int("FEED_MAX_SUBSCRIBERS", 16)))
    return slots


def _json_default(v: Any) -> Any:
    if hasattr(v, "isoformat"):
        return v.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(v, "hour") else v.isoformat()
    raise TypeError(type(v))


def _event(row: dict[str, Any]) -> str:
    ms = row.pop("_ms")
    pos = FeedPosition(ms, row["measurement_uid"])
    try:
        row["scores"] = ujson.loads(row["scores"]) if row["scores"] else {}
    except ValueError:
        row["scores"] = {}
    data = ujson.dumps(row, ensure_ascii=False, escape_forward_slashes=False,
                       default=_json_default)
    return f"id: {pos.event_id()}\nevent: measurement\ndata: {data}\n\n"


@bp.route("/api/v1/measurements/feed")
@document_filters
def measurement_feed() -> Response:
    """Live feed of newly scored measurements (Server-Sent Events)
    Each event (`event: measurement`) carries one fastpath row as JSON in
    `data` and its position in `id`. Reconnecting with the `Last-Event-ID`
    header (or the `last_event_id` parameter) sends exactly the rows scored
    since, when the id is within the retention window (FEED_RETENTION,
    default 1 hour). A re-scored measurement comes again as a new event.
    Comment lines are sent as heartbeats. Filters are those of
    /api/v1/measurements; since/until only apply when given.
    ---
    produces: [text/event-stream]
    parameters:
      - {name: Last-Event-ID, in: header, type: string, description: "resume after this event id"}
      - {name: last_event_id, in: query, type: string, description: "same as the header, for clients that cannot set it"}
    responses:
      200:
        description: "text/event-stream of measurement events and heartbeat comments"
      400:
        description: invalid filter or malformed Last-Event-ID
      410:
        description: Last-Event-ID older than the retention window
      429:
        description: quota exhausted
      503:
        description: too many feed subscribers on this server process
    """
    for name in PAGING_PARAMS:
        if request.args.get(name):
            raise BadRequest(f"{name} is not supported by the feed")
    args = request.args.to_dict()
    args.setdefault("since", WIDE_SINCE)
    args.setdefault("until", WIDE_UNTIL)
    q = parse_list_query(args, utcnow())
    last_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    resume = parse_event_id(last_id) if last_id else None

    svc = services()
    cfg = svc.cfg
    retention_ms = int(cfg.get_float("FEED_RETENTION", 3600) * 1000)
    # The embedded database runs each insert and each query under one lock,
    # so a row is visible as soon as anything stamped after it is: no lag.
    embedded = cfg.clickhouse_url.startswith("chdb:")
    lag_ms = int(cfg.get_float("FEED_SETTLE_SECONDS", 0.0 if embedded else 0.2) * 1000)
    poll_s = cfg.get_float("FEED_POLL_SECONDS", 0.1)
    heartbeat_s = cfg.get_float("FEED_HEARTBEAT_SECONDS", 15)
    max_s = cfg.get_float("FEED_MAX_SECONDS", 3600)
    batch = cfg.get_int("FEED_BATCH_ROWS", 1000)
    settings = {"max_execution_time": cfg.get_int("QUERY_MAX_EXECUTION_TIME", 28)}
    db = svc.db

    now_ms = db.execute("SELECT toUnixTimestamp64Milli(now64(3))")[0][0]
    if resume is not None:
        if resume.ms > now_ms + 60_000:
            raise BadRequest("Invalid Last-Event-ID: it is in the future")
        if resume.ms < now_ms - retention_ms:
            raise ApiError(f"Last-Event-ID is older than the feed's retention window "
                           f"({retention_ms // 1000} s): use /api/v1/measurements/export "
                           "for older measurements", 410)
        start = resume
    else:
        start = FeedPosition(max(0, now_ms - lag_ms))

    slots = _slots()
    slots.acquire()
    released = []

    def release() -> None:
        # once, from the generator's end or the response's close (a
        # generator never started has no ``finally`` to run)
        if not released:
            released.append(True)
            slots.release()
            svc.metrics.gauge("feed_subscribers", slots.count)

    charge = stream_charge()
    sql = feed_sql(q.where)

    def stream() -> Iterator[str]:
        pos = start
        t_open = time.monotonic()
        last_out = t_open
        busy = 0.0
        errors = 0
        svc.metrics.gauge("feed_subscribers", slots.count)
        try:
            yield "retry: 2000\n\n"
            while time.monotonic() - t_open < max_s:
                t0 = time.monotonic()
                p = dict(q.params, _pos_ms=pos.ms, _pos_uid=pos.uid, _lag_ms=lag_ms,
                         _batch=batch)
                try:
                    rows = db.query(sql, p, settings)
                    errors = 0
                except DatabaseError as e:
                    errors += 1
                    log.warning("feed query failed (%d in a row): %s", errors, e)
                    if errors >= 5:
                        return  # the client reconnects with its Last-Event-ID
                    rows = []
                if rows:
                    out = []
                    for r in rows:
                        pos = FeedPosition(r["_ms"], r["measurement_uid"])
                        out.append(_event(r))
                    busy += time.monotonic() - t0
                    svc.metrics.incr("feed_events", len(rows))
                    yield "".join(out)
                    last_out = time.monotonic()
                    if len(rows) == batch:
                        continue  # catching up: no pause
                else:
                    busy += time.monotonic() - t0
                if time.monotonic() - last_out >= heartbeat_s:
                    if charge is not None:
                        charge.charge_seconds(busy)
                        busy = 0.0
                        if not charge.available():
                            yield "event: quota\ndata: {\"error\": \"Too Many Requests\"}\n\n"
                            return
                    yield ": heartbeat\n\n"
                    last_out = time.monotonic()
                time.sleep(poll_s)
        finally:
            release()
            if charge is not None:
                charge.charge_seconds(busy)

    resp = Response(stream_with_context(stream()), mimetype="text/event-stream")
    resp.call_on_close(release)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp
