"""Opaque keyset cursor for ``/api/v1/measurements`` paging.

Offset paging makes the database read and throw away every row before the
page, so page N costs N times page 1. A cursor instead remembers where the
previous page ended -- the last row's value of the ordering column and its
``measurement_uid`` (the tie-break that makes the order total) -- and the
next query starts right after it, through the primary key when ordering by
``measurement_start_time``.

The token is URL-safe base64 of a small JSON array. It is not signed: every
value is type-checked here and reaches the database as a typed query
parameter, so a forged cursor can only select rows a plain query could.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass

from ooniapi.core.errors import BadRequest
from ooniapi.core.text import check_unicode

VERSION = 1
MAX_TOKEN_LEN = 16384
ORDER_COLUMNS = ("measurement_start_time", "input", "probe_cc", "probe_asn", "test_name")
_TS = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Cursor:
    order_by: str           # one of ORDER_COLUMNS
    order: str              # "asc" or "desc"
    value: dt.datetime | int | str   # the last row's order_by value
    uid: str                # the last row's measurement_uid
    offset: int             # rows before the page this cursor points to


def encode(c: Cursor) -> str:
    v = c.value.strftime(_TS) if isinstance(c.value, dt.datetime) else c.value
    raw = json.dumps([VERSION, c.order_by, c.order, v, c.uid, c.offset],
                     separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _invalid() -> BadRequest:
    return BadRequest("Invalid cursor")


def decode(token: str) -> Cursor:
    """Raises BadRequest("Invalid cursor") for anything but a token made by
    ``encode``."""
    if not token or len(token) > MAX_TOKEN_LEN:
        raise _invalid()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw.decode())
        check_unicode(doc)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _invalid() from None
    if not isinstance(doc, list) or len(doc) != 6 or doc[0] != VERSION:
        raise _invalid()
    _, order_by, order, value, uid, offset = doc
    if order_by not in ORDER_COLUMNS or order not in ("asc", "desc"):
        raise _invalid()
    if not isinstance(uid, str) or len(uid) > 100:
        raise _invalid()
    if type(offset) is not int or offset < 0:
        raise _invalid()
    if order_by == "measurement_start_time":
        if not isinstance(value, str):
            raise _invalid()
        try:
            value = dt.datetime.strptime(value, _TS)
        except ValueError:
            raise _invalid() from None
    elif order_by == "probe_asn":
        if type(value) is not int or not 0 <= value < 2**32:
            raise _invalid()
    elif not isinstance(value, str):
        raise _invalid()
    return Cursor(order_by, order, value, uid, offset)
