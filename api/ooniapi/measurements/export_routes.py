"""``GET /api/v1/measurements/export``: the listing's rows in bulk (see
export.py for how the rows are read)."""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Iterator
from urllib.parse import urljoin

from flask import Response, request, stream_with_context

from ooni_common.db import DatabaseError, QueryTimeout
from ooni_common.timeutil import utcnow

from ooniapi.core.context import services
from ooniapi.core.errors import BadRequest, DatabaseTimeout
from ooniapi.core.http import base_url
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.params import parse_truthy
from ooniapi.core.ratelimit import stream_charge
from ooniapi.measurements import export as ex
from ooniapi.measurements.bodies import BodyKey, body_lookup
from ooniapi.measurements.routes import document_filters, parse_list_query

log = logging.getLogger("ooni-api.export")

bp = ApiBlueprint("measurements_export", __name__, tag="measurements")

# Listing parameters about one page; an export is every row in time order.
PAGING_PARAMS = ("cursor", "offset", "limit", "order_by", "order")
DB_MAX = dt.datetime(2106, 2, 7)


def _page_settings() -> dict[str, Any]:
    cfg = services().cfg
    # Each page is one short query: its cap is the listing's, not the
    # stream's (a stream has no time limit of its own).
    return {"max_execution_time": cfg.get_int("QUERY_MAX_EXECUTION_TIME", 28),
            "priority": cfg.get_int("EXPORT_QUERY_PRIORITY", 4),
            "output_format_json_escape_forward_slashes": 0}


def _accepts_gzip() -> bool:
    return request.accept_encodings["gzip"] > 0


def _run_first(pager: ex.KeysetPager) -> ex.Page | None:
    try:
        return pager.next_page()
    except QueryTimeout:
        raise DatabaseTimeout("Database query timeout") from None
    except DatabaseError as e:
        log.error("export query failed: %s", e)
        raise BadRequest("Database query error") from None


@bp.route("/api/v1/measurements/export")
@document_filters
def export_measurements() -> Response:
    """Export every measurement matching the listing's filters
    Streams all the rows that /api/v1/measurements would list for the same
    filters, with no row cap, in ascending measurement_start_time (then
    measurement_uid) order. Without report_id the window defaults, as for
    the listing, to the 30 days before tomorrow. The rows carry the
    listing's fields. JSON lines and CSV are gzip-compressed when the
    client accepts it; Parquet is compressed inside (zstd) and written one
    row group per page read.
    Quotas are charged for the whole time the stream takes.
    ---
    produces: [application/x-ndjson, text/csv, application/vnd.apache.parquet]
    parameters:
      - {name: format, in: query, type: string, enum: [jsonl, csv, parquet], required: true}
      - {name: with_body, in: query, type: string, description: "true adds raw_measurement, the measurement body as raw_measurement serves it (null when in no store)"}
    responses:
      200:
        description: "the rows as a file attachment (Content-Disposition names it after the filters)"
      400:
        description: unknown format, invalid filter, or a paging parameter of the listing
      403:
        description: probe_cc ZZ or probe_asn AS0
      429:
        description: quota exhausted
      504:
        description: database timeout on the first page
    """
    fmt = (request.args.get("format") or "").strip().lower()
    if fmt not in ex.FORMATS:
        raise BadRequest(f"Invalid format {request.args.get('format')!r}: "
                         f"choose between {', '.join(ex.FORMATS)}")
    for name in PAGING_PARAMS:
        if request.args.get(name):
            raise BadRequest(f"{name} is not supported by the export: it streams every "
                             "matching row in measurement_start_time order")
    with_body = parse_truthy(request.args.get("with_body"))
    q = parse_list_query(request.args, utcnow())
    svc = services()
    cfg = svc.cfg
    page_rows = cfg.get_int("EXPORT_BODY_PAGE_ROWS", 500) if with_body \
        else cfg.get_int("EXPORT_PAGE_ROWS", 50000)
    settings = _page_settings()
    params = dict(q.params)
    params["raw_url"] = urljoin(base_url(), "/api/v1/raw_measurement") + "?measurement_uid="
    if fmt == "jsonl":
        run = ex.jsonl_body_page_runner(svc.db, settings) if with_body \
            else ex.jsonl_page_runner(svc.db, settings)
    else:
        run = ex.table_page_runner(svc.db, settings, fmt, with_body)
    lo = q.params.get("since") or ex.DB_EPOCH
    hi = q.params.get("until") or DB_MAX
    # A report is a few thousand rows found through its index: one window.
    first_window = hi - lo if "report_id" in q.params else None
    pager = ex.KeysetPager(q.where, params, lo, hi, page_rows, run, svc.db, settings,
                           first_window)

    t0 = time.monotonic()
    first = _run_first(pager)
    charge = stream_charge()
    writer = ex.make_writer(fmt, with_body)
    gz = ex.Gzip() if fmt != "parquet" and _accepts_gzip() else None
    fetch_bodies = _body_fetcher() if with_body else None

    def stream() -> Iterator[bytes]:
        svc.metrics.incr("export_started")
        finished = False
        try:
            last_charge = time.monotonic()
            for chunk in ex.iter_export(pager, writer, fetch_bodies, first):
                if gz is not None:
                    chunk = gz(chunk)
                if chunk:
                    yield chunk
                svc.metrics.incr("export_pages")
                if charge is not None and time.monotonic() - last_charge > 5:
                    # charged as it goes, so that the client's other
                    # requests see the stream's cost before it ends
                    charge.charge_elapsed()
                    last_charge = time.monotonic()
            if gz is not None:
                yield gz.end()
            finished = True
        except DatabaseError as e:
            # Too late for a status: end the connection without the final
            # chunk, so that the client sees a truncated transfer.
            log.error("export stopped after %d rows: %s", pager.rows, e)
            svc.metrics.incr("export_failed")
            raise
        finally:
            if charge is not None:
                charge.charge_elapsed()
            if not finished:
                svc.metrics.incr("export_aborted")
            log.info("export %s: %d rows in %d pages, %.1f s%s", fmt, pager.rows, pager.pages,
                     time.monotonic() - t0, "" if finished else " (stopped early)")

    resp = Response(stream_with_context(stream()), mimetype=ex.FORMATS[fmt][0])
    resp.headers["Content-Disposition"] = f'attachment; filename="{ex.file_name(params, fmt)}"'
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"
    resp.headers["Vary"] = "Accept-Encoding"
    if gz is not None:
        resp.headers["Content-Encoding"] = "gzip"
    return resp


def _body_fetcher():
    bl = body_lookup()

    def fetch(keys: list[tuple[str, str, str]]) -> list[bytes | None]:
        return [bl.fetch(BodyKey(uid, rid, inp)) for uid, rid, inp in keys]
    return fetch
