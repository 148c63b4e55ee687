"""The live feed of scored measurements (``/api/v1/measurements/feed``).

Event ids are positions in the order the database received the rows:
``<update_time in ms>-<measurement_uid>``. ``update_time`` is the fastpath
row's insert time (a MATERIALIZED ``now64()``), so any worker of any host
resumes a client from the database alone: "every row after this position"
is one keyset query, with nothing kept in one process's memory.

A re-scored measurement is a new row with a new ``update_time``: the feed
sends it again, as a new event with the same ``measurement_uid`` (the
event is "this measurement was scored", and the newest scoring wins).
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from ooniapi.core.errors import ApiError, BadRequest

# The fastpath row's fields sent in each event, as the table holds them.
FEED_COLUMNS = (
    "measurement_uid", "report_id", "input", "probe_cc", "probe_asn", "test_name",
    "test_start_time", "measurement_start_time", "scores", "platform", "anomaly",
    "confirmed", "msm_failure", "domain", "software_name", "software_version",
    "test_version", "architecture", "engine_name", "engine_version", "test_runtime",
    "blocking_type", "test_helper_address", "test_helper_type", "ooni_run_link_id",
)

_EVENT_ID = re.compile(r"^(\d{1,15})-([\x21-\x7e]{1,200})$")


@dataclass(frozen=True, order=True)
class FeedPosition:
    """Every row up to (ms, uid) in (update_time, measurement_uid) order
    was delivered; ``uid`` '' is before every row of that millisecond."""
    ms: int
    uid: str = ""

    def event_id(self) -> str:
        return f"{self.ms}-{self.uid}"


def parse_event_id(value: str) -> FeedPosition:
    """A Last-Event-ID header; 400 when it is not one of our ids."""
    m = _EVENT_ID.match(value.strip())
    if m is None:
        raise BadRequest("Invalid Last-Event-ID: expected <milliseconds>-<measurement_uid> "
                         "as sent in the id field of an event")
    return FeedPosition(int(m.group(1)), m.group(2))


def feed_sql(where: list[str]) -> str:
    """Rows after a position, oldest first. ``update_time`` stops short of
    the settle lag: a row becomes visible when its insert commits, which
    may be a moment after its ``update_time`` was taken."""
    cols = ", ".join(FEED_COLUMNS)
    conds = where + [
        "update_time >= fromUnixTimestamp64Milli({_pos_ms:Int64})",
        "(update_time > fromUnixTimestamp64Milli({_pos_ms:Int64}) "
        "OR measurement_uid > {_pos_uid:String})",
        "update_time <= now64(3) - toIntervalMillisecond({_lag_ms:UInt32})",
    ]
    return (f"SELECT {cols}, toUnixTimestamp64Milli(update_time) AS _ms FROM fastpath "
            f"WHERE {' AND '.join(conds)} ORDER BY update_time, measurement_uid "
            "LIMIT {_batch:UInt32}")


class SubscriberSlots:
    """A bounded number of open feeds per process: each holds a server
    thread, and each polls the database."""

    def __init__(self, limit: int):
        self.limit = limit
        self._n = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            if self._n >= self.limit:
                raise ApiError(f"Too many feed subscribers on this server ({self.limit}); "
                               "retry later", 503)
            self._n += 1

    def release(self) -> None:
        with self._lock:
            self._n -= 1

    @property
    def count(self) -> int:
        return self._n
