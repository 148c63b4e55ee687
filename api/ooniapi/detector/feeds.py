"""Atom (RFC 4287) feeds of the detector's block/unblock events.

Entry ids are tag URIs (RFC 4151) built from the event's identity (place,
target, start time), so they stay the same however often the feed is
rebuilt; ``updated`` is when the detector found the event, ``published``
the estimated start of the change. Every entry links to the Explorer
measurement-aggregation chart (MAT) filtered to the place and target, over
the days around the event.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlencode

from ooni_common.db import Database
from ooni_common.timeutil import iso_z

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_MIME = "application/atom+xml"
TAG_AUTHORITY = "tag:ooni.org,2024:detector"
EPOCH = dt.datetime(1970, 1, 1)

# XML 1.0 cannot carry these at all, not even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class FeedEvent:
    test_name: str
    target: str        # domain, or '' for a messaging test
    probe_cc: str
    probe_asn: int
    status: str        # BLOCKED or OK
    time: dt.datetime  # estimated start of the change
    detected: dt.datetime

    @property
    def what(self) -> str:
        return self.target or self.test_name

    def entry_id(self) -> str:
        return (f"{TAG_AUTHORITY}:{self.probe_cc}:AS{self.probe_asn}:{self.test_name}:"
                f"{self.target}:{self.time:%Y%m%dT%H%M%SZ}")

    def title(self) -> str:
        verb = "blocked" if self.status == "BLOCKED" else "reachable again"
        return f"{self.what} {verb} in {self.probe_cc} (AS{self.probe_asn})"


@dataclass(frozen=True)
class FeedSpec:
    """Which events a feed shows: ``kind`` is global, country, asn or domain."""
    kind: str
    value: str | int | None
    self_path: str

    def title(self) -> str:
        if self.kind == "country":
            return f"OONI blocking events in {self.value}"
        if self.kind == "asn":
            return f"OONI blocking events in AS{self.value}"
        if self.kind == "domain":
            return f"OONI blocking events for {self.value}"
        return "OONI blocking events"


EVENTS_SQL = """
SELECT test_name, input, probe_cc, probe_asn, status, time, min(detection_time) AS detected
FROM blocking_events
WHERE {where}
GROUP BY test_name, input, probe_cc, probe_asn, status, time
ORDER BY detected DESC, time DESC, probe_cc, probe_asn, test_name, input
LIMIT {limit:UInt32}
"""


def load_events(db: Database, spec: FeedSpec, limit: int) -> list[FeedEvent]:
    # GROUP BY instead of FINAL: a re-inserted event (same key) shows once
    # whatever the merge state, with the time it was first stored.
    params: dict = {"limit": limit}
    where = "1"
    if spec.kind == "country":
        where, params["cc"] = "probe_cc = {cc:String}", spec.value
    elif spec.kind == "asn":
        where, params["asn"] = "probe_asn = {asn:Int64}", spec.value
    elif spec.kind == "domain":
        where, params["domain"] = "input = {domain:String}", spec.value
    rows = db.execute(EVENTS_SQL.replace("{where}", where), params)
    return [FeedEvent(tn, inp, cc, int(asn), st, t, det) for tn, inp, cc, asn, st, t, det in rows]


def explorer_link(explorer: str, ev: FeedEvent) -> str:
    since = (ev.time - dt.timedelta(days=7)).date()
    until = (ev.time + dt.timedelta(days=7)).date()
    q = {"test_name": ev.test_name, "probe_cc": ev.probe_cc, "probe_asn": f"AS{ev.probe_asn}"}
    if ev.target:
        q["domain"] = ev.target
    q.update({"since": since.isoformat(), "until": until.isoformat(),
              "axis_x": "measurement_start_day", "time_grain": "day"})
    return f"{explorer.rstrip('/')}/chart/mat?{urlencode(q)}"


def _clean(s: str) -> str:
    return _XML_INVALID.sub("\ufffd", s)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    e = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", {k: _clean(v) for k, v in attrs.items()})
    if text is not None:
        e.text = _clean(text)
    return e


def feed_updated(events: list[FeedEvent]) -> dt.datetime:
    return max((e.detected for e in events), default=EPOCH).replace(microsecond=0)


def etag(spec: FeedSpec, events: list[FeedEvent]) -> str:
    h = hashlib.sha256(spec.self_path.encode())
    for e in events:
        h.update(f"\n{e.entry_id()}|{e.status}|{iso_z(e.detected)}".encode())
    return h.hexdigest()[:32]


def render(spec: FeedSpec, events: list[FeedEvent], base_url: str, explorer: str) -> bytes:
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    base = base_url.rstrip("/")
    _sub(feed, "id", f"{TAG_AUTHORITY}:feed:{spec.self_path}")
    _sub(feed, "title", spec.title())
    _sub(feed, "updated", iso_z(feed_updated(events)))
    _sub(feed, "link", rel="self", href=base + spec.self_path, type=ATOM_MIME)
    _sub(feed, "link", rel="alternate", href=explorer.rstrip("/") + "/", type="text/html")
    author = _sub(feed, "author")
    _sub(author, "name", "OONI blocking event detector")
    _sub(feed, "generator", "ooni-backend detector")
    for ev in events:
        entry = _sub(feed, "entry")
        _sub(entry, "id", ev.entry_id())
        _sub(entry, "title", ev.title())
        _sub(entry, "updated", iso_z(ev.detected.replace(microsecond=0)))
        _sub(entry, "published", iso_z(ev.time.replace(microsecond=0)))
        _sub(entry, "link", rel="alternate", href=explorer_link(explorer, ev), type="text/html")
        _sub(entry, "category", term=ev.status.lower())
        _sub(entry, "category", term=ev.test_name)
        summary = (f"The OONI detector found that {ev.what} "
                   f"{'became blocked' if ev.status == 'BLOCKED' else 'became reachable again'} "
                   f"in {ev.probe_cc}, network AS{ev.probe_asn}, around "
                   f"{ev.time:%Y-%m-%d %H:%M} UTC (test: {ev.test_name}).")
        _sub(entry, "summary", summary)
    body = ET.tostring(feed, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body).encode("utf-8")
