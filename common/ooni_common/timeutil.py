"""UTC time helpers shared by the components."""
from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Naive UTC now: the backend stores and compares naive UTC datetimes."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def iso_z(v: dt.datetime | dt.date | None) -> str | None:
    """``2021-07-09T00:55:13Z`` (six fraction digits when non-zero): the form
    the probe and Explorer decode (api.md §1.2)."""
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        if v.microsecond:
            return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return v.strftime("%Y-%m-%dT%H:%M:%SZ")
    return v.isoformat()
