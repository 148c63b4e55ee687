"""Database client: one small interface over two ClickHouse backends.

``connect(url)`` selects the backend from the URL scheme:

* ``clickhouse://user:pass@host:9000/db`` -- a ClickHouse server through
  clickhouse-driver (native protocol, server-side parameters);
* ``chdb:///path/to/dir`` -- embedded ClickHouse through chdb (one process
  at a time may open a directory; see ``ooni_common.lock``).

SQL is ClickHouse SQL. Parameters are always written as ClickHouse query
parameters, ``{name:Type}``, and passed separately: both backends send them
to the engine, which parses them as typed values, so user input never becomes
SQL text.
"""
from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import parse_qs, unquote, urlparse

import ujson


class DatabaseError(Exception):
    """A query failed. ``code`` is the ClickHouse error code when known."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class QueryTimeout(DatabaseError):
    """The query hit max_execution_time (ClickHouse code 159)."""


TIMEOUT_CODES = {159, 160}


@dataclass(frozen=True)
class Result:
    columns: list[str]
    types: list[str]
    rows: list[tuple]
    # What the engine reports about the query: rows_read, bytes_read,
    # total_rows, elapsed (seconds); empty when the backend gave nothing.
    stats: Mapping[str, float] = field(default_factory=dict)

    def dicts(self) -> list[dict[str, Any]]:
        cols = self.columns
        return [dict(zip(cols, r)) for r in self.rows]


@dataclass(frozen=True)
class JsonRows:
    """A result as UTF-8 JSON objects, one per line, keys in SELECT order
    (ClickHouse's JSONEachRow): large answers go out as JSON without Python
    handling each value. Strings are JSON-escaped, so a newline byte only
    ever separates rows."""
    data: bytes
    stats: Mapping[str, float] = field(default_factory=dict)

    def array(self) -> bytes:
        """The rows as one JSON array."""
        body = self.data.rstrip(b"\n")
        return b"[" + body.replace(b"\n", b",") + b"]" if body else b"[]"


class Database(ABC):
    """Common interface; subclasses implement ``_run`` and ``_insert``."""

    url: str
    database: str

    def select(self, sql: str, params: Mapping[str, Any] | None = None,
               settings: Mapping[str, Any] | None = None) -> Result:
        return self._run(sql, params or {}, settings or {})

    def query(self, sql: str, params: Mapping[str, Any] | None = None,
              settings: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.select(sql, params, settings).dicts()

    def select_json_rows(self, sql: str, params: Mapping[str, Any] | None = None,
                         settings: Mapping[str, Any] | None = None) -> JsonRows:
        """``select`` as JSON lines; backends that cannot have the engine
        write them encode the rows here (dates as the engine writes them)."""
        res = self.select(sql, params, settings)
        cols = res.columns
        data = "".join(
            ujson.dumps(dict(zip(cols, r)), ensure_ascii=False, escape_forward_slashes=False,
                        default=_json_default) + "\n"
            for r in res.rows)
        return JsonRows(data.encode("utf-8", "replace"), res.stats)

    def select_lines(self, sql: str, params: Mapping[str, Any] | None = None,
                     settings: Mapping[str, Any] | None = None) -> bytes:
        """The one String column of each row as UTF-8, one row per line: the
        SQL builds each line (e.g. a JSON document), so a large result is
        never turned into Python values. The values must hold no newline."""
        rows = self.select(sql, params, settings).rows
        return "".join(f"{r[0]}\n" for r in rows).encode("utf-8", "replace")

    def select_arrow(self, sql: str, params: Mapping[str, Any] | None = None,
                     settings: Mapping[str, Any] | None = None):
        """The result as a ``pyarrow.Table`` (columns in SELECT order)."""
        import pyarrow as pa

        res = self.select(sql, params, settings)
        cols = list(zip(*res.rows)) if res.rows else [()] * len(res.columns)
        return pa.table({n: pa.array(list(c)) for n, c in zip(res.columns, cols)})

    def query_one(self, sql: str, params: Mapping[str, Any] | None = None,
                  settings: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        rows = self.query(sql, params, settings)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Mapping[str, Any] | None = None,
                settings: Mapping[str, Any] | None = None) -> list[tuple]:
        return self.select(sql, params, settings).rows

    def command(self, sql: str, settings: Mapping[str, Any] | None = None) -> None:
        """DDL and other statements that return nothing."""
        self._run(sql, {}, settings or {})

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
               settings: Mapping[str, Any] | None = None) -> int:
        rows = list(rows)
        if not rows:
            return 0
        self._insert(table, list(columns), rows, settings or {})
        return len(rows)

    def insert_dicts(self, table: str, rows: Iterable[Mapping[str, Any]],
                     settings: Mapping[str, Any] | None = None) -> int:
        rows = list(rows)
        if not rows:
            return 0
        cols = list(rows[0].keys())
        return self.insert(table, cols, [[r[c] for c in cols] for r in rows], settings)

    def priority(self):
        """Context manager: this thread's statements go before waiting
        ordinary ones (the embedded database serialises all statements; a
        server needs nothing)."""
        return contextlib.nullcontext()

    def background(self):
        """Context manager: this thread's statements (periodic jobs) wait
        while any other statement is waiting."""
        return contextlib.nullcontext()

    def ping(self) -> bool:
        try:
            return self.execute("SELECT 1")[0][0] == 1
        except DatabaseError:
            return False

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    # backend hooks
    @abstractmethod
    def _run(self, sql: str, params: Mapping[str, Any], settings: Mapping[str, Any]) -> Result:
        """Run one statement and return its rows."""

    @abstractmethod
    def _insert(self, table: str, columns: list[str], rows: list[Sequence[Any]],
                settings: Mapping[str, Any]) -> None:
        """Insert rows in one statement."""


# --- value conversion -------------------------------------------------------

def _fmt_datetime(v: dt.datetime) -> str:
    if v.tzinfo is not None:
        v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if v.microsecond:
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    return v.strftime("%Y-%m-%d %H:%M:%S")


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _param_text(v: Any, nested: bool = False) -> str:
    """Text form of a query parameter as ClickHouse parses it for {x:Type}."""
    if v is None:
        return "NULL" if nested else "\\N"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, dt.datetime):
        s = _fmt_datetime(v)
        return _quote(s) if nested else s
    if isinstance(v, dt.date):
        return _quote(v.isoformat()) if nested else v.isoformat()
    if isinstance(v, (list, tuple, set)):
        return "[" + ",".join(_param_text(x, True) for x in v) + "]"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    if nested:
        return _quote(s)
    # Top-level values are read in the escaped (TSV) format: a backslash,
    # tab or newline in user input must stay literal text.
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return _fmt_datetime(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (set, frozenset)):
        return list(v)
    raise TypeError(f"cannot serialise {type(v)}")


def _strip_type(t: str) -> str:
    for wrap in ("Nullable(", "LowCardinality("):
        while t.startswith(wrap):
            t = t[len(wrap):-1]
    return t


def _converter(t: str):
    base = _strip_type(t)
    if base.startswith("DateTime64"):
        return lambda s: None if s is None else dt.datetime.fromisoformat(s)
    if base.startswith("DateTime"):
        return lambda s: None if s is None else dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S")
    if base == "Date" or base == "Date32":
        return lambda s: None if s is None else dt.date.fromisoformat(s)
    if base.startswith("Decimal"):
        return lambda s: None if s is None else float(s)
    return None


# --- embedded backend -------------------------------------------------------

_PRIORITY, _NORMAL, _BACKGROUND = 0, 1, 2
BACKGROUND_MAX_WAIT = 1.0  # seconds

class PriorityLock:
    """A re-entrant lock whose priority threads (``with lock.priority()``) go
    before every ordinary thread waiting for it, and whose background
    threads (``with lock.background()``) after them.

    All statements on the embedded database take one lock; with a plain lock
    the fastpath's writer queued behind API queries and scheduled jobs, and a
    measurement became visible 30 s after its acknowledgement under load
    (issue 16). Each statement releases the lock, so a job yields to the
    writer between its statements."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._prio_waiting = 0
        self._normal_waiting = 0
        self._local = threading.local()

    @contextlib.contextmanager
    def _level(self, level: int):
        old = getattr(self._local, "level", _NORMAL)
        self._local.level = level
        try:
            yield
        finally:
            self._local.level = old

    def priority(self):
        return self._level(_PRIORITY)

    def background(self):
        return self._level(_BACKGROUND)

    def acquire(self) -> None:
        me = threading.get_ident()
        level = getattr(self._local, "level", _NORMAL)
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            if level == _PRIORITY:
                self._prio_waiting += 1
                try:
                    while self._owner is not None:
                        self._cond.wait()
                finally:
                    self._prio_waiting -= 1
            elif level == _NORMAL:
                self._normal_waiting += 1
                try:
                    while self._owner is not None or self._prio_waiting:
                        self._cond.wait()
                finally:
                    self._normal_waiting -= 1
            else:
                # Never starved by a steady stream of queries: after
                # BACKGROUND_MAX_WAIT it competes as an ordinary thread.
                until = time.monotonic() + BACKGROUND_MAX_WAIT
                while self._owner is not None or self._prio_waiting or (
                        self._normal_waiting and time.monotonic() < until):
                    self._cond.wait(max(0.01, until - time.monotonic()))
            self._owner, self._depth = me, 1

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a lock not held by this thread")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()


class ChdbDatabase(Database):
    """Embedded ClickHouse. chdb allows one data directory per process; a
    lock serialises queries because a session is shared by all threads."""

    _instances: dict[tuple[str, str], "ChdbDatabase"] = {}
    _instances_lock = threading.Lock()

    def __init__(self, path: str, database: str = "default"):
        try:
            from chdb import session as chdb_session
        except ImportError:
            # Production packages leave chdb out (setup.py extra "embedded").
            raise DatabaseError(
                "the embedded database (chdb://) needs the chdb package, which this "
                "installation lacks: pip install 'ooni-backend[embedded]', or set "
                "CLICKHOUSE_URL=clickhouse://... for a ClickHouse server") from None

        self.url = f"chdb://{path}"
        self.path = path
        self.database = database
        self._lock = PriorityLock()
        try:
            self._session = chdb_session.Session(path)
        except Exception as e:  # chdb raises RuntimeError with the engine text
            raise DatabaseError(f"cannot open embedded database at {path}: {e}") from e
        self._raw(f"CREATE DATABASE IF NOT EXISTS `{database}`", {})
        self._raw(f"USE `{database}`", {})
        self._raw("SET session_timezone = 'UTC'", {})

    @classmethod
    def open(cls, path: str, database: str = "default") -> "ChdbDatabase":
        # One chdb engine (one data directory) per process; every caller in
        # this process shares it, with one session per database name.
        path = str(path)
        with cls._instances_lock:
            inst = cls._instances.get((path, database))
            if inst is None:
                other = next((p for p, _ in cls._instances if p != path), None)
                if other is not None:
                    raise DatabaseError(
                        f"this process already has the embedded database {other} open; "
                        f"chdb cannot open a second one ({path})")
                inst = cls(path, database)
                if not cls._instances:
                    atexit.register(cls.shutdown_all)
                cls._instances[(path, database)] = inst
            return inst

    def priority(self):
        return self._lock.priority()

    def background(self):
        return self._lock.background()

    def _raw(self, sql: str, params: Mapping[str, Any], fmt: str = "JSONCompact"):
        p = {k: _param_text(v) for k, v in params.items()} if params else None
        with self._lock:
            try:
                return self._session.query(sql, fmt, params=p)
            except Exception as e:
                msg = str(e)
                code = None
                if "Code: " in msg:
                    try:
                        code = int(msg.split("Code: ", 1)[1].split(".", 1)[0])
                    except ValueError:
                        pass
                cls = QueryTimeout if code in TIMEOUT_CODES else DatabaseError
                raise cls(msg, code) from e

    def _run(self, sql, params, settings) -> Result:
        settings = dict(settings)
        settings.setdefault("output_format_json_quote_64bit_integers", 0)
        settings.setdefault("output_format_json_quote_denormals", 1)
        sql = _with_settings(sql, settings)
        res = self._raw(sql, params)
        data = res.bytes()
        if not data:
            return Result([], [], [])
        doc = ujson.loads(data)
        meta = doc.get("meta", [])
        names = [m["name"] for m in meta]
        types = [m["type"] for m in meta]
        rows = doc.get("data", [])
        convs = [(i, c) for i, c in enumerate(_converter(t) for t in types) if c]
        if convs:
            out = []
            for r in rows:
                for i, c in convs:
                    r[i] = c(r[i])
                out.append(tuple(r))
        else:
            out = [tuple(r) for r in rows]
        return Result(names, types, out, doc.get("statistics") or {})

    def select_json_rows(self, sql, params=None, settings=None) -> JsonRows:
        settings = {**_JSON_ROWS_SETTINGS, **(settings or {})}
        res = self._raw(_with_settings(sql, settings), params or {}, fmt="JSONEachRow")
        # storage_*: what the query read, as JSON formats' "statistics" give
        # (rows_read() counts the result rows)
        stats = {"rows_read": res.storage_rows_read(), "bytes_read": res.storage_bytes_read(),
                 "elapsed": res.elapsed()}
        return JsonRows(res.bytes() or b"", stats)

    def select_lines(self, sql, params=None, settings=None) -> bytes:
        # TabSeparatedRaw of one column: the engine writes each value as is.
        res = self._raw(_with_settings(sql, settings or {}), params or {}, fmt="TabSeparatedRaw")
        return res.bytes() or b""

    def select_arrow(self, sql, params=None, settings=None):
        import pyarrow as pa
        import pyarrow.ipc

        res = self._raw(_with_settings(sql, settings or {}), params or {}, fmt="ArrowStream")
        data = res.bytes()
        if not data:
            return pa.table({})
        return pyarrow.ipc.open_stream(data).read_all()

    def _insert(self, table, columns, rows, settings) -> None:
        head = f"INSERT INTO {table} ({', '.join(columns)})"
        if settings:
            head += " SETTINGS " + ", ".join(f"{k} = {_setting_value(v)}" for k, v in settings.items())
        body = "\n".join(ujson.dumps(list(r), ensure_ascii=False, default=_json_default,
                                     reject_bytes=False) for r in rows)
        self._raw(f"{head} FORMAT JSONCompactEachRow\n{body}", {}, fmt="CSV")

    def close(self) -> None:
        # chdb cannot reopen another path in this process anyway; keep the
        # session so that later connect() calls in the same process reuse it.
        pass

    def shutdown(self) -> None:
        """Close the engine for good before the process exits: chdb aborts
        at interpreter exit if a session is still open while any Python
        thread is alive."""
        with self._lock, self._instances_lock:
            self._session.close()
            for k in [k for k, v in self._instances.items() if v is self]:
                del self._instances[k]

    @classmethod
    def shutdown_all(cls) -> None:
        """Every session of this process; registered with atexit, which runs
        before chdb's own exit handler."""
        for inst in list(cls._instances.values()):
            inst.shutdown()


# JSON lines as ujson writes them in the Python path: numbers unquoted, "/"
# unescaped, invalid UTF-8 replaced (the output must stay valid JSON).
_JSON_ROWS_SETTINGS = {
    "output_format_json_quote_64bit_integers": 0,
    "output_format_json_quote_denormals": 1,
    "output_format_json_escape_forward_slashes": 0,
    "output_format_json_validate_utf8": 1,
}


def _setting_value(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return repr(v)
    return _quote(str(v))


def _with_settings(sql: str, settings: Mapping[str, Any]) -> str:
    if not settings:
        return sql
    s = ", ".join(f"{k} = {_setting_value(v)}" for k, v in settings.items())
    stripped = sql.rstrip().rstrip(";")
    if " SETTINGS " in stripped.upper()[-400:]:
        return f"{stripped}, {s}"
    return f"{stripped}\nSETTINGS {s}"


# --- server backend ---------------------------------------------------------

class ClickhouseDatabase(Database):
    """ClickHouse server over the native protocol. clickhouse-driver clients
    are not thread-safe, so each thread gets its own connection."""

    def __init__(self, url: str):
        from clickhouse_driver import Client  # noqa: F401  (import check)

        self.url = url
        u = urlparse(url)
        self.database = (u.path or "/default").lstrip("/") or "default"
        self._kwargs = dict(
            host=u.hostname or "localhost",
            port=u.port or 9000,
            user=unquote(u.username or "default"),
            password=unquote(u.password or ""),
            database=self.database,
            settings={"server_side_params": True},
        )
        for k, v in parse_qs(u.query).items():
            if k in ("connect_timeout", "send_receive_timeout", "sync_request_timeout"):
                self._kwargs[k] = float(v[0])
        self._local = threading.local()

    def _client(self):
        c = getattr(self._local, "client", None)
        if c is None:
            from clickhouse_driver import Client
            c = Client(**self._kwargs)
            self._local.client = c
        return c

    def _run(self, sql, params, settings) -> Result:
        from clickhouse_driver import errors
        try:
            rows, cols = self._client().execute(
                sql, dict(params) if params else None, with_column_types=True,
                settings=dict(settings) if settings else None)
        except errors.Error as e:
            code = getattr(e, "code", None)
            cls = QueryTimeout if code in TIMEOUT_CODES else DatabaseError
            raise cls(str(e), code) from e
        names = [c[0] for c in cols]
        types = [c[1] for c in cols]
        return Result(names, types, [tuple(r) for r in rows], self._last_stats())

    def _last_stats(self) -> dict[str, float]:
        lq = getattr(self._client(), "last_query", None)
        p = getattr(lq, "progress", None)
        if lq is None or p is None:
            return {}
        return {"rows_read": p.rows, "bytes_read": p.bytes,
                "total_rows": p.total_rows, "elapsed": lq.elapsed}

    def _insert(self, table, columns, rows, settings) -> None:
        from clickhouse_driver import errors
        try:
            self._client().execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES",
                [list(r) for r in rows], settings=dict(settings) if settings else None)
        except errors.Error as e:
            raise DatabaseError(str(e), getattr(e, "code", None)) from e

    def close(self) -> None:
        c = getattr(self._local, "client", None)
        if c is not None:
            c.disconnect()
            self._local.client = None


def connect(url: str) -> Database:
    u = urlparse(url)
    if u.scheme == "chdb":
        path = unquote((u.netloc or "") + u.path)
        if not path:
            raise DatabaseError(f"chdb URL needs a directory: {url}")
        database = parse_qs(u.query).get("database", ["default"])[0]
        return ChdbDatabase.open(path, database)
    if u.scheme == "clickhouse":
        return ClickhouseDatabase(url)
    raise DatabaseError(f"unsupported database URL scheme {u.scheme!r} in {url}")
