"""Streaming export of the measurement listing (``/api/v1/measurements/export``):
every row matching the listing's filters, in (measurement_start_time,
measurement_uid) order, as JSON lines, CSV or Parquet.

The rows are read in keyset pages, each one short query over a bounded time
window, so that:

* the API process holds one page at a time whatever the row count (constant
  memory);
* no query stays open while the client reads: the embedded database's lock
  is taken per page, and the fastpath writer gets it between two pages; a
  stalled reader holds no database resource at all;
* a client that goes away stops the paging: closing the generator ends it
  between two pages.

The row fields are those of the listing's results (``format_result`` in
routes.py); JSON lines are built by the engine, CSV and Parquet come from
Arrow tables, so no format turns each value into a Python object.
"""
from __future__ import annotations

import datetime as dt
import io
import logging
import re
import zlib
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import ujson

from ooni_common.db import Database

from ooniapi.core.verification import VERIFICATION_STATUS

log = logging.getLogger("ooni-api.export")

FORMATS = {
    # format -> (mimetype, file extension)
    "jsonl": ("application/x-ndjson", "jsonl"),
    "csv": ("text/csv", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
}

DB_EPOCH = dt.datetime(1970, 1, 1)

# The listing's result columns, computed by the engine. ``{raw_url:String}``
# is the raw_measurement URL up to the uid (it depends on BASE_URL).
_URL_SQL = "concat({raw_url:String}, encodeURLComponent(measurement_uid))"
_SCORES_SQL = ("if(scores != '' AND isValidJSON(scores), "
               # raw newlines/tabs in a JSON text can only be whitespace
               "replaceRegexpAll(scores, '[\\\\n\\\\r\\\\t]', ' '), '{}')")
_VERIFICATION_SQL = ("multiIf(" + ", ".join(f"is_verified = '{code}', '{name}'"
                                             for code, name in VERIFICATION_STATUS.items())
                     + ", 'unverified')")
_KEY_SQL = "measurement_start_time AS _k_time, measurement_uid AS _k_uid"

_VERIFICATION_SQL = ("multiIf(" + ", ".join(f"is_verified = '{code}', '{name}'"
                                             for code, name in VERIFICATION_STATUS.items())
                     + ", 'unverified')")

# One JSON document per row, keys in the listing's order.
JSONL_SQL = ("concat('{\"measurement_uid\":', toJSONString(measurement_uid), "
             f"',\"measurement_url\":', toJSONString({_URL_SQL}), "
             "',\"report_id\":', toJSONString(report_id), "
             "',\"probe_cc\":', toJSONString(toString(probe_cc)), "
             "',\"probe_asn\":\"AS', toString(probe_asn), "
             "'\",\"test_name\":', toJSONString(toString(test_name)), "
             "',\"measurement_start_time\":\"', "
             "formatDateTime(measurement_start_time, '%Y-%m-%dT%H:%i:%SZ'), "
             "'\",\"input\":', if(input = '', 'null', toJSONString(input)), "
             "',\"anomaly\":', if(anomaly = 't', 'true', 'false'), "
             "',\"confirmed\":', if(confirmed = 't', 'true', 'false'), "
             "',\"failure\":', if(msm_failure = 't', 'true', 'false'), "
             f"',\"scores\":', {_SCORES_SQL}, "
             f"',\"verification_status\":\"', {_VERIFICATION_SQL}, '\"}}')")

_TABLE_COLUMNS = [
    ("measurement_uid", "measurement_uid", pa.string()),
    ("measurement_url", _URL_SQL, pa.string()),
    ("report_id", "report_id", pa.string()),
    ("probe_cc", "toString(probe_cc)", pa.string()),
    ("probe_asn", "concat('AS', toString(probe_asn))", pa.string()),
    ("test_name", "toString(test_name)", pa.string()),
    ("measurement_start_time", None, None),  # per format, below
    ("input", "nullIf(input, '')", pa.string()),
    ("anomaly", "anomaly = 't'", pa.bool_()),
    ("confirmed", "confirmed = 't'", pa.bool_()),
    ("failure", "msm_failure = 't'", pa.bool_()),
    ("scores", _SCORES_SQL, pa.string()),
    ("verification_status", _VERIFICATION_SQL, pa.string()),
]
# CSV writes the time as the listing does; Parquet as a timestamp.
_TIME_SQL = {
    "csv": ("formatDateTime(measurement_start_time, '%Y-%m-%dT%H:%i:%SZ')", pa.string()),
    "parquet": ("toInt64(toUnixTimestamp(measurement_start_time))", pa.timestamp("s", tz="UTC")),
}


def table_columns(fmt: str) -> list[tuple[str, str, pa.DataType]]:
    out = []
    for name, sql, typ in _TABLE_COLUMNS:
        if sql is None:
            sql, typ = _TIME_SQL[fmt]
        out.append((name, sql, typ))
    return out


def arrow_schema(fmt: str, with_body: bool) -> pa.Schema:
    fields = [pa.field(n, t, nullable=(n in ("input",))) for n, _, t in table_columns(fmt)]
    if with_body:
        fields.append(pa.field("raw_measurement", pa.string()))
    return pa.schema(fields)


@dataclass
class Position:
    """Everything up to (time, uid) has been read; ``uid`` None means every
    row at ``time`` has been read too."""
    time: dt.datetime
    uid: str | None = None


@dataclass(frozen=True)
class Page:
    """One page: the format's payload and the keys it needs to go on."""
    payload: Any
    rows: int
    last: tuple[dt.datetime, str] | None
    # (measurement_uid, report_id, input) of each row, for with_body
    body_keys: list[tuple[str, str, str]] | None = None


class KeysetPager:
    """Pages of at most ``page_rows`` rows in (measurement_start_time,
    measurement_uid) order, each read by one query bounded to a time window
    sized so that it holds about a page: a cheap count (no FINAL, a few
    columns) checks the window before the page is read, and shrinks it when
    it holds more than two pages. The page query sorts its whole window, so
    this is what keeps the engine's memory per page bounded too. An empty
    window jumps to the next row's time."""

    def __init__(self, where: list[str], params: dict[str, Any], lo: dt.datetime,
                 hi: dt.datetime, page_rows: int, run: Callable[[str, dict], Page],
                 db: Database, settings: dict[str, Any],
                 first_window: dt.timedelta | None = None):
        self.where = where
        self.params = params
        self.pos = Position(lo)
        self.hi = hi
        self.page_rows = page_rows
        self.run = run
        self.db = db
        self.settings = settings
        self.window = first_window or dt.timedelta(hours=1)
        self.pages = 0
        self.rows = 0

    @property
    def done(self) -> bool:
        return self.pos.uid is None and self.pos.time >= self.hi

    def _after_pos(self, end: dt.datetime) -> tuple[str, dict[str, Any]]:
        where = list(self.where)
        p = dict(self.params, _w_end=end, _w_lo=self.pos.time, _limit=self.page_rows)
        if self.pos.uid is None:
            where.append("measurement_start_time > {_w_lo:DateTime}")
        else:
            where.append("measurement_start_time >= {_w_lo:DateTime}")
            where.append("(measurement_start_time > {_w_lo:DateTime} "
                         "OR measurement_uid > {_w_uid:String})")
            p["_w_uid"] = self.pos.uid
        where.append("measurement_start_time <= {_w_end:DateTime}")
        return " AND ".join(where), p

    def _count(self, where_sql: str, p: dict[str, Any]) -> tuple[int, dt.datetime | None]:
        """Rows in the window (an upper bound: not yet merged versions count
        twice) and the first row's time."""
        rows = self.db.execute(
            f"SELECT count(), min(measurement_start_time) FROM fastpath WHERE {where_sql}",
            p, self.settings)
        n = int(rows[0][0]) if rows else 0
        return n, (rows[0][1] if n else None)

    def next_page(self) -> Page | None:
        """The next non-empty page, or None at the end."""
        one_s = dt.timedelta(seconds=1)
        while not self.done:
            end = min(self.hi, self.pos.time + self.window)
            where_sql, p = self._after_pos(end)
            n, _ = self._count(where_sql, p)
            if n == 0:
                # nothing up to ``end``: go straight to the next row, if any
                self.pos = Position(end)
                if self.done:
                    break
                where_sql, p = self._after_pos(self.hi)
                n, first = self._count(where_sql, p)
                if n == 0:
                    self.pos = Position(self.hi)
                    break
                self.pos = Position(max(end, first - one_s))
                continue
            if n > 2 * self.page_rows and self.window > one_s:
                # whole seconds: the bounds are DateTime parameters
                secs = int(self.window.total_seconds() * self.page_rows / n)
                self.window = dt.timedelta(seconds=max(1, secs))
                continue
            page = self.run(where_sql, p)
            self.pages += 1
            if page.rows >= self.page_rows:
                assert page.last is not None
                self.pos = Position(page.last[0], page.last[1])
            else:
                self.pos = Position(end)
                if n < self.page_rows // 2 and self.window < dt.timedelta(days=3660):
                    self.window *= 2
            if page.rows:
                self.rows += page.rows
                return page
        return None


# --- page queries -------------------------------------------------------------

def _select(columns_sql: str, where_sql: str) -> str:
    return (f"SELECT {columns_sql} FROM fastpath FINAL WHERE {where_sql} "
            "ORDER BY measurement_start_time, measurement_uid LIMIT {_limit:UInt32}")


def jsonl_page_runner(db: Database, settings: dict[str, Any]) -> Callable[[str, dict], Page]:
    sql_cols = f"{JSONL_SQL} AS line"

    def run(where_sql: str, p: dict) -> Page:
        data = db.select_lines(_select(sql_cols, where_sql), p, settings)
        if not data:
            return Page(b"", 0, None)
        n = data.count(b"\n")
        last_line = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
        last = ujson.loads(last_line)
        t = dt.datetime.strptime(last["measurement_start_time"], "%Y-%m-%dT%H:%M:%SZ")
        return Page(data, n, (t, last["measurement_uid"]))
    return run


def jsonl_body_page_runner(db: Database, settings: dict[str, Any]) -> Callable[[str, dict], Page]:
    """JSON lines plus the keys each row's body is looked up by."""
    sql_cols = (f"{JSONL_SQL} AS line, measurement_uid, report_id, input, "
                "measurement_start_time")

    def run(where_sql: str, p: dict) -> Page:
        rows = db.select(_select(sql_cols, where_sql), p, settings).rows
        if not rows:
            return Page([], 0, None)
        return Page([r[0] for r in rows], len(rows), (rows[-1][4], rows[-1][1]),
                    [(r[1], r[2], r[3]) for r in rows])
    return run


def table_page_runner(db: Database, settings: dict[str, Any], fmt: str,
                      with_body: bool) -> Callable[[str, dict], Page]:
    cols = table_columns(fmt)
    # "o_" aliases: an alias named like a column would replace the column
    # in the WHERE clause too.
    sql_cols = ", ".join(f"{sql} AS `o_{name}`" for name, sql, _ in cols)
    sql_cols += f", {_KEY_SQL}"
    if with_body:
        sql_cols += ", report_id AS _k_rid, input AS _k_input"
    schema = arrow_schema(fmt, False)

    def run(where_sql: str, p: dict) -> Page:
        t = db.select_arrow(_select(sql_cols, where_sql), p, settings)
        if t.num_rows == 0:
            return Page(None, 0, None)
        k_time = t.column("_k_time")
        k_uid = t.column("_k_uid")
        last_time = k_time[-1].as_py()
        if not isinstance(last_time, dt.datetime):
            last_time = DB_EPOCH + dt.timedelta(seconds=int(last_time))
        last = (last_time, k_uid[-1].as_py())
        keys = None
        if with_body:
            keys = list(zip(k_uid.to_pylist(), t.column("_k_rid").to_pylist(),
                            t.column("_k_input").to_pylist()))
        data = [_as_type(t.column(f"o_{name}"), typ) for name, _, typ in cols]
        return Page(pa.Table.from_arrays(data, schema=schema), t.num_rows, last, keys)
    return run


def _as_type(col: pa.ChunkedArray, typ: pa.DataType) -> pa.ChunkedArray:
    if col.type == typ:
        return col
    if pa.types.is_timestamp(typ) and not pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.cast(typ)


# --- writers ------------------------------------------------------------------

class _Sink(io.RawIOBase):
    """A write-only file for pyarrow that hands back what was written."""

    def __init__(self):
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        data = bytes(b)
        self._parts.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class Writer(ABC):
    """Turns pages into bytes of one format."""

    def header(self) -> bytes:
        return b""

    @abstractmethod
    def page(self, page: Page, bodies: list[bytes | None] | None) -> bytes:
        """The bytes of one page of rows (with their bodies, when asked)."""

    def footer(self) -> bytes:
        return b""


class JsonlWriter(Writer):
    def page(self, page: Page, bodies) -> bytes:
        if bodies is None:
            return page.payload
        out = []
        for line, body in zip(page.payload, bodies):
            raw = body.decode("utf-8", "replace") if body is not None else None
            # The line is a JSON object built by the engine: add one key.
            out.append(line[:-1] + ',"raw_measurement":'
                       + (_compact_json(raw) if raw is not None else "null") + "}\n")
        return "".join(out).encode("utf-8", "replace")


def _compact_json(text: str) -> str:
    """A stored body as one JSON value on one line (bodies are JSON; a
    pretty-printed one would break the line format)."""
    if "\n" not in text and "\r" not in text:
        return text
    try:
        return ujson.dumps(ujson.loads(text), ensure_ascii=False, escape_forward_slashes=False)
    except ValueError:
        return ujson.dumps(text)


class CsvWriter(Writer):
    def __init__(self, with_body: bool):
        self.with_body = with_body
        self.first = True

    def header(self) -> bytes:
        names = [n for n, _, _ in table_columns("csv")]
        if self.with_body:
            names.append("raw_measurement")
        return (",".join(f'"{n}"' for n in names) + "\n").encode()

    def page(self, page: Page, bodies) -> bytes:
        t = _with_bodies(page.payload, bodies)
        sink = io.BytesIO()
        pa_csv.write_csv(t, sink, pa_csv.WriteOptions(include_header=False))
        return sink.getvalue()


class ParquetWriter(Writer):
    """One row group per page, written as the page arrives."""

    def __init__(self, with_body: bool):
        self.sink = _Sink()
        self.schema = arrow_schema("parquet", with_body)
        # Dictionary encoding only where values repeat: on the unique
        # columns (uids, report ids, URLs, scores) it costs several times the
        # rest of the write and makes the file larger.
        self.writer = pq.ParquetWriter(self.sink, self.schema, compression="zstd",
                                       use_dictionary=["probe_cc", "probe_asn", "test_name"])

    def page(self, page: Page, bodies) -> bytes:
        self.writer.write_table(_with_bodies(page.payload, bodies), row_group_size=page.rows)
        return self.sink.take()

    def footer(self) -> bytes:
        self.writer.close()
        return self.sink.take()


def _with_bodies(t: pa.Table, bodies: list[bytes | None] | None) -> pa.Table:
    if bodies is None:
        return t
    arr = pa.array([b.decode("utf-8", "replace") if b is not None else None for b in bodies],
                   pa.string())
    return t.append_column("raw_measurement", arr)


def make_writer(fmt: str, with_body: bool) -> Writer:
    if fmt == "jsonl":
        return JsonlWriter()
    if fmt == "csv":
        return CsvWriter(with_body)
    return ParquetWriter(with_body)


class Gzip:
    """gzip of a stream, flushed per page so the client gets bytes as the
    rows are read."""

    def __init__(self, level: int = 3):
        self._z = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def __call__(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH) if data else b""

    def end(self) -> bytes:
        return self._z.flush(zlib.Z_FINISH)


# --- file name ------------------------------------------------------------------

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def file_name(params: dict[str, Any], fmt: str) -> str:
    """e.g. ooni-measurements_IT_web_connectivity_2024-01-01_2024-02-01.parquet"""
    parts = ["ooni-measurements"]
    for k in ("report_id", "probe_cc", "probe_asn", "test_name", "domain"):
        v = params.get(k)
        if v is not None and v != "":
            v = f"AS{v}" if k == "probe_asn" else str(v)
            parts.append(_SAFE.sub("-", v)[:80])
    for k in ("since", "until"):
        v = params.get(k)
        if isinstance(v, dt.datetime):
            parts.append(v.strftime("%Y-%m-%d") if v.time() == dt.time()
                         else v.strftime("%Y-%m-%dT%H%M%S"))
    return "_".join(parts) + "." + FORMATS[fmt][1]


def iter_export(pager: KeysetPager, writer: Writer,
                fetch_bodies: Callable[[list[tuple[str, str, str]]], list[bytes | None]] | None,
                first: Page | None) -> Iterator[bytes]:
    """The byte chunks of the export; ``first`` is a page read before the
    response started (so that its errors are still an HTTP status).

    The next page is read by a helper thread while this one is encoded and
    sent: the engine and the encoder then use both cores, and at most two
    pages are held. Closing the generator waits for that one read at most,
    and reads nothing more."""
    out = writer.header()
    if out:
        yield out
    page = first
    with ThreadPoolExecutor(1, thread_name_prefix="export-page") as pool:
        nxt: Future | None = pool.submit(pager.next_page) if page is not None else None
        try:
            while page is not None:
                bodies = fetch_bodies(page.body_keys or []) if fetch_bodies is not None else None
                out = writer.page(page, bodies)
                if out:
                    yield out
                page = nxt.result() if nxt is not None else None
                nxt = pool.submit(pager.next_page) if page is not None else None
        finally:
            if nxt is not None:
                nxt.cancel()
    out = writer.footer()
    if out:
        yield out
