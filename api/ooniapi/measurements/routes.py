"""Measurements module (api.md §4): search, single measurements, bodies,
Tor Snowflake stats and measurement feedback.

Every read of ``fastpath`` uses ``FINAL``: the table is a
ReplacingMergeTree, and a re-scored measurement must never show twice.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

from flasgger import swag_from
from flask import Response, request

from ooni_common.timeutil import iso_z, utcnow

from ooniapi.core.auth import current_session, optional_session, require_role
from ooniapi.core.context import services
from ooniapi.core.errors import BadRequest, Forbidden, NotFound
from ooniapi.core.http import base_url, json_response, set_cached, set_nocache
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.params import (
    is_valid_measurement_uid,
    parse_bool_flag,
    parse_comma_list,
    parse_date,
    parse_download,
    parse_input,
    parse_int,
    parse_probe_asn,
    parse_probe_cc,
    parse_report_id,
    parse_truthy,
    parse_uint_list,
)
from ooniapi.core.verification import verification_status
from ooniapi.measurements import cursor as cursor_mod
from ooniapi.measurements.bodies import BodyKey, body_lookup
from ooniapi.measurements.where import Where

bp = ApiBlueprint("measurements", __name__, tag="measurements")


MAX_LIMIT = 100
ORDER_BY_CHOICES = list(cursor_mod.ORDER_COLUMNS)
ORDER_BY_TYPES = {"measurement_start_time": "DateTime", "input": "String",
                  "probe_cc": "String", "probe_asn": "UInt32", "test_name": "String"}
FEEDBACK_STATUSES = frozenset((
    "blocked", "blocked.blockpage", "blocked.blockpage.http", "blocked.blockpage.dns",
    "blocked.blockpage.server_side", "blocked.blockpage.server_side.captcha",
    "blocked.dns", "blocked.dns.inconsistent", "blocked.dns.nxdomain", "blocked.tcp",
    "blocked.tls", "ok", "down", "down.unreachable", "down.misconfigured"))

OKHTTP_ANSWER = {
    "metadata": {"count": 1, "current_page": 1, "limit": 100, "next_url": None,
                 "offset": 0, "pages": 1, "query_time": 0.001},
    "results": [{"measurement_url": ""}],
}


def _settings() -> dict[str, Any]:
    # api.md §17: interactive queries run at priority 3 with a 28 s cap.
    return {"max_execution_time": services().cfg.get_int("QUERY_MAX_EXECUTION_TIME", 28),
            "priority": 3}


def _tf(v: str) -> bool:
    return v == "t"


# --- GET /api/v1/measurements ------------------------------------------------

@dataclass(frozen=True)
class ListQuery:
    """A validated listing request."""

    where: list[str]
    params: dict[str, Any]
    order_by: str
    order: str
    offset: int
    limit: int
    cursor: cursor_mod.Cursor | None


def parse_list_query(args, now: dt.datetime) -> ListQuery:
    """Validates the query string of /api/v1/measurements into SQL
    conditions over typed parameters (never into SQL text)."""
    def arg(name: str) -> str | None:
        v = args.get(name)
        return v if v != "" else None

    report_id = parse_report_id(arg("report_id"))
    probe_cc = parse_probe_cc(arg("probe_cc"))
    probe_asn = parse_probe_asn(arg("probe_asn"))
    if probe_cc == "ZZ":
        raise Forbidden("Measurements from unknown countries (probe_cc ZZ) are not served")
    if probe_asn == 0:
        raise Forbidden("Measurements from unknown networks (probe_asn AS0) are not served")
    since = parse_date("since", arg("since"))
    until = parse_date("until", arg("until"))
    if report_id is None:
        if until is None:
            until = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time())
        if since is None:
            since = until - dt.timedelta(days=30)
    if since is not None and until is not None and since > until:
        raise BadRequest("since must not be after until")

    order_by_raw = arg("order_by") or "measurement_start_time"
    order_by = order_by_raw.lower()
    if order_by not in ORDER_BY_CHOICES:
        raise BadRequest(f"Invalid field for ordering: {order_by_raw}. "
                         f"Valid options: {ORDER_BY_CHOICES}")
    order = (arg("order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise BadRequest("Invalid order")
    offset = parse_int("offset", arg("offset"), 0, minimum=0, maximum=2**63 - 1)
    limit = parse_int("limit", arg("limit"), MAX_LIMIT, minimum=1, maximum=MAX_LIMIT,
                      too_big=f"`limit` is only allowed up to {MAX_LIMIT}")
    cur = None
    if arg("cursor") is not None:
        cur = cursor_mod.decode(arg("cursor"))
        if (cur.order_by, cur.order) != (order_by, order):
            raise BadRequest("Invalid cursor: it was made for another order_by/order")
        offset = cur.offset

    w = Where()
    w.add_if_set("report_id = {report_id:String}", report_id=report_id)
    if probe_cc is not None:
        w.add("probe_cc = {probe_cc:String}", probe_cc=probe_cc)
    else:
        w.add("probe_cc != 'ZZ'")
    if probe_asn is not None:
        w.add("probe_asn = {probe_asn:UInt32}", probe_asn=probe_asn)
    else:
        w.add("probe_asn != 0")
    w.time_window(since, until)
    w.add_if_set("test_name = {test_name:String}", test_name=arg("test_name"))
    inp = arg("input")
    if inp is not None:
        w.add("input = {input:String}", input=inp)
    else:
        w.add_if_set("domain = {domain:String}", domain=arg("domain"))
        # IN instead of the legacy JOIN: a URL listed for several
        # countries must not repeat its measurements.
        w.add_if_set("input IN (SELECT url FROM citizenlab "
                     "WHERE category_code = {category_code:String})",
                     category_code=arg("category_code"))
    for name, column in (("confirmed", "confirmed"), ("anomaly", "anomaly"),
                         ("failure", "msm_failure")):
        flag = parse_bool_flag(arg(name))
        if flag is not None:
            w.add(f"{column} = {{{name}:String}}", **{name: "t" if flag else "f"})
    for name in ("software_version", "test_version", "engine_version"):
        values = parse_comma_list(arg(name))
        if values:
            w.add(f"{name} IN {{{name}:Array(String)}}", **{name: values})
    run_ids = parse_uint_list("ooni_run_link_id", arg("ooni_run_link_id"))
    if run_ids:
        w.add("ooni_run_link_id IN {ooni_run_link_id:Array(UInt64)}", ooni_run_link_id=run_ids)
    if cur is not None:
        # Keyset: rows strictly after the cursor in (order_by, uid) order.
        # The first condition alone is a primary-key range when ordering by
        # measurement_start_time.
        t = ORDER_BY_TYPES[order_by]
        lt, le = ("<", "<=") if order == "desc" else (">", ">=")
        w.add(f"{order_by} {le} {{cur_v:{t}}}")
        w.add(f"({order_by} {lt} {{cur_v:{t}}} OR measurement_uid {lt} {{cur_u:String}})",
              cur_v=cur.value, cur_u=cur.uid)
    return ListQuery(w.conditions, w.params, order_by, order, offset, limit, cur)


# The filters parse_list_query reads, documented once for the routes that
# take them (the listing, the export and the feed). flasgger lists them
# before the parameters of the route's own docstring.
document_filters = swag_from({"parameters": [
    {"name": name, "in": "query", "type": "string", "description": description}
    for names, description in (
        (["report_id"], "exact report_id"),
        (["input"], "exact input; when set, domain and category_code are ignored"),
        (["domain"], "exact domain"),
        (["category_code"], "CitizenLab category of the input URL"),
        (["probe_cc"], "two-letter country code (ZZ gets 403)"),
        (["probe_asn"], "AS1234 or 1234 (AS0 gets 403)"),
        (["test_name"], "exact test name"),
        (["since"], "exclusive lower bound on measurement_start_time"),
        (["until"], "inclusive upper bound on measurement_start_time"),
        (["confirmed", "anomaly", "failure"], "true, or anything else for false"),
        (["software_version", "test_version", "engine_version"], "comma separated"),
        (["ooni_run_link_id"], "comma separated integers"),
    )
    for name in names
]})


def run_list_query(q: ListQuery) -> list[dict[str, Any]]:
    direction = "DESC" if q.order == "desc" else "ASC"
    sql = f"""SELECT measurement_uid, report_id, probe_cc, probe_asn, test_name,
        measurement_start_time, input, anomaly, confirmed, msm_failure, scores, is_verified
    FROM fastpath FINAL
    WHERE {' AND '.join(q.where)}
    ORDER BY {q.order_by} {direction}, measurement_uid {direction}
    LIMIT {{limit:UInt32}}"""
    params = dict(q.params, limit=q.limit)
    if q.cursor is None and q.offset:
        sql += " OFFSET {offset:UInt64}"
        params["offset"] = q.offset
    return services().db.query(sql, params, settings=_settings())


def _scores(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def format_result(row: dict[str, Any], base_url: str) -> dict[str, Any]:
    uid = row["measurement_uid"]
    return {
        "measurement_uid": uid,
        "measurement_url": urljoin(base_url, "/api/v1/raw_measurement") + "?"
        + urlencode({"measurement_uid": uid}),
        "report_id": row["report_id"],
        "probe_cc": row["probe_cc"],
        "probe_asn": f"AS{row['probe_asn']}",
        "test_name": row["test_name"],
        "measurement_start_time": iso_z(row["measurement_start_time"]),
        "input": row["input"] or None,
        "anomaly": _tf(row["anomaly"]),
        "confirmed": _tf(row["confirmed"]),
        "failure": _tf(row["msm_failure"]),
        "scores": _scores(row["scores"]),
        "verification_status": verification_status(row["is_verified"]),
    }


def next_page_url(args, q: ListQuery, rows: list[dict[str, Any]], base_url: str) -> str:
    """All the request's parameters with the position moved one page on.
    The cursor form is used when the request used one, or when it starts a
    time-ordered listing (the case deep paging hits); otherwise offset, as
    legacy clients expect."""
    nxt = {k: v for k, v in args.items(multi=False) if k not in ("offset", "cursor", "limit")}
    nxt["limit"] = str(q.limit)
    if q.cursor is not None or (q.offset == 0 and q.order_by == "measurement_start_time"):
        last = rows[-1]
        nxt["cursor"] = cursor_mod.encode(cursor_mod.Cursor(
            q.order_by, q.order, last[q.order_by], last["measurement_uid"], q.offset + q.limit))
    else:
        nxt["offset"] = str(q.offset + q.limit)
    return urljoin(base_url, "/api/v1/measurements") + "?" + urlencode(nxt)


@bp.route("/api/v1/measurements")
@document_filters
def list_measurements() -> Response:
    """Search measurements
    Paginated search over the scored measurements, newest first by default.
    Without report_id the window defaults to the 30 days before tomorrow.
    ---
    parameters:
      - {name: order_by, in: query, type: string, enum: [measurement_start_time, input, probe_cc, probe_asn, test_name], default: measurement_start_time}
      - {name: order, in: query, type: string, enum: [asc, desc], default: desc}
      - {name: offset, in: query, type: integer, default: 0, description: "legacy paging; prefer cursor"}
      - {name: limit, in: query, type: integer, default: 100, minimum: 1, maximum: 100}
      - name: cursor
        in: query
        type: string
        description: >
          Opaque position returned inside metadata.next_url. With a cursor a
          deep page costs what the first page costs; offset is then ignored.
          Keep the other parameters of the request unchanged.
    responses:
      200: {description: "metadata {offset, limit, count, pages, current_page, next_url, query_time} and results"}
      400: {description: "invalid parameter"}
      403: {description: "probe_cc ZZ or probe_asn AS0"}
      504: {description: "database timeout"}
    """
    if request.headers.get("User-Agent", "").startswith("okhttp"):
        return json_response(OKHTTP_ANSWER, nocache=True)
    t0 = time.perf_counter()
    q = parse_list_query(request.args, utcnow())
    with services().metrics.timer("list_measurements"):
        rows = run_list_query(q)
    base = base_url()
    results = [format_result(r, base) for r in rows]
    if len(rows) < q.limit:
        count = q.offset + len(rows)
        pages = math.ceil(count / q.limit)
        next_url = None
    else:
        count = pages = -1
        next_url = next_page_url(request.args, q, rows, base)
    metadata = {
        "offset": q.offset,
        "limit": q.limit,
        "count": count,
        "pages": pages,
        "current_page": math.ceil(q.offset / q.limit) + 1,
        "next_url": next_url,
        "query_time": round(time.perf_counter() - t0, 6),
    }
    return json_response({"metadata": metadata, "results": results}, max_age=60)


# --- single measurements -----------------------------------------------------

@dataclass(frozen=True)
class MeasurementMeta:
    measurement_uid: str
    report_id: str
    input: str
    probe_cc: str
    probe_asn: int
    test_name: str
    test_start_time: dt.datetime
    measurement_start_time: dt.datetime
    scores: str
    anomaly: bool
    confirmed: bool
    failure: bool
    category_code: str | None
    is_verified: str = "u"

    def as_json(self) -> dict[str, Any]:
        return {
            "anomaly": self.anomaly, "confirmed": self.confirmed, "failure": self.failure,
            "category_code": self.category_code, "input": self.input,
            "measurement_start_time": iso_z(self.measurement_start_time),
            "measurement_uid": self.measurement_uid, "probe_asn": self.probe_asn,
            "probe_cc": self.probe_cc, "report_id": self.report_id, "scores": self.scores,
            "test_name": self.test_name, "test_start_time": iso_z(self.test_start_time),
            "verification_status": verification_status(self.is_verified),
        }

    def body_key(self) -> BodyKey:
        return BodyKey(self.measurement_uid, self.report_id, self.input)


_META_COLUMNS = """measurement_uid, report_id, input, probe_cc, probe_asn, test_name,
    test_start_time, measurement_start_time, scores, anomaly, confirmed, msm_failure, is_verified"""


def _category_code(inp: str) -> str:
    row = services().db.query_one(
        "SELECT category_code FROM citizenlab WHERE url = {u:String} "
        "ORDER BY category_code LIMIT 1", {"u": inp}, settings=_settings())
    return row["category_code"] if row else ""


def find_meta(uid: str | None, report_id: str | None, inp: str | None) -> MeasurementMeta | None:
    """The fastpath row by uid, else by (report_id, input). Rows of ASN 0 are
    never served (the 2020 privacy incident)."""
    if uid is not None:
        where, p = "measurement_uid = {uid:String}", {"uid": uid}
    else:
        where = "report_id = {rid:String} AND input = {inp:String}"
        p = {"rid": report_id, "inp": inp or ""}
    row = services().db.query_one(
        f"SELECT {_META_COLUMNS} FROM fastpath FINAL WHERE {where} "
        "ORDER BY measurement_start_time, measurement_uid LIMIT 1", p, settings=_settings())
    if row is None or row["probe_asn"] == 0:
        return None
    # Legacy joins citizenlab except for a lookup by report_id without input.
    joined = uid is not None or bool(inp)
    return MeasurementMeta(
        measurement_uid=row["measurement_uid"], report_id=row["report_id"],
        input=row["input"], probe_cc=row["probe_cc"], probe_asn=row["probe_asn"],
        test_name=row["test_name"], test_start_time=row["test_start_time"],
        measurement_start_time=row["measurement_start_time"], scores=row["scores"],
        anomaly=_tf(row["anomaly"]), confirmed=_tf(row["confirmed"]),
        failure=_tf(row["msm_failure"]),
        category_code=_category_code(row["input"]) if joined else None,
        is_verified=row["is_verified"])


def _lookup_args(validate_input: bool) -> tuple[str | None, str | None, str | None]:
    """(uid, report_id, input) of measurement_meta / raw_measurement: a
    valid uid wins; otherwise report_id is required."""
    uid = request.args.get("measurement_uid")
    inp = request.args.get("input") or None
    if validate_input:
        inp = parse_input(inp)
    if is_valid_measurement_uid(uid):
        return uid, None, inp
    report_id = parse_report_id(request.args.get("report_id"), required=True)
    return None, report_id, inp


# The parameters _lookup_args reads, documented once for the two routes
# that take them.
document_lookup = swag_from({"parameters": [
    {"$ref": f"#/parameters/{name}"}
    for name in ("MeasurementUidQuery", "ReportIdQuery", "InputQuery")
]})


@bp.route("/api/v1/measurement_meta")
@document_lookup
def get_measurement_meta() -> Response:
    """Metadata of one measurement, optionally with its body
    ---
    parameters:
      - {name: full, in: query, type: string, description: "true/1/yes adds raw_measurement (the body as a JSON string)"}
    responses:
      200: {description: "the metadata; {} (or {raw_measurement: ''} with full) when not found"}
      400: {description: "neither a valid measurement_uid nor a valid report_id, or invalid input"}
    """
    uid, report_id, inp = _lookup_args(validate_input=True)
    full = parse_truthy(request.args.get("full"))
    with services().metrics.timer("get_measurement_meta"):
        meta = find_meta(uid, report_id, inp)
        if meta is None:
            return json_response({"raw_measurement": ""} if full else {}, nocache=True)
        out = meta.as_json()
        if full:
            body = body_lookup().fetch(meta.body_key())
            out["raw_measurement"] = body.decode("utf-8", "replace") if body is not None else ""
    return json_response(out, max_age=60)


@bp.route("/api/v1/raw_measurement")
@document_lookup
def get_raw_measurement() -> Response:
    """The body of one measurement (the probe's unwrapped measurement)
    ---
    responses:
      200: {description: "the measurement JSON document; {} (not cached) when there is no such measurement"}
      400: {description: "neither a valid measurement_uid nor a valid report_id"}
      404: {description: "the measurement is known but its body is in no store: {error: Measurement not found}"}
    """
    uid, report_id, inp = _lookup_args(validate_input=False)
    with services().metrics.timer("get_raw_measurement"):
        meta = find_meta(uid, report_id, inp)
        if meta is None:
            return json_response({}, nocache=True)
        body = body_lookup().fetch(meta.body_key())
    if body is None:
        # The issue asks 404 where legacy answered 500: nothing failed on
        # the server, the body is simply not (or no longer) anywhere.
        raise NotFound("Measurement not found")
    resp = Response(body, mimetype="application/json")
    return set_cached(resp, 86400)


@bp.route("/api/v1/measurement/<measurement_uid>")
def get_measurement(measurement_uid: str) -> Response:
    """The body of one measurement by measurement_uid
    ---
    parameters:
      - {name: measurement_uid, in: path, type: string, required: true}
      - {name: download, in: query, type: string, description: "true adds Content-Disposition: attachment"}
    responses:
      200: {description: "the measurement JSON document"}
      400: {description: "malformed uid: {error: Incorrect or inexistent measurement_uid}"}
      404: {description: "unknown uid or body in no store: {error: Incorrect or inexistent measurement_uid}"}
    """
    if not is_valid_measurement_uid(measurement_uid):
        raise BadRequest("Incorrect or inexistent measurement_uid")
    not_found = NotFound("Incorrect or inexistent measurement_uid")
    download = parse_download(request.args.get("download"))
    with services().metrics.timer("get_measurement"):
        meta = find_meta(measurement_uid, None, None)
        if meta is not None:
            key = meta.body_key()
        elif _has_row(measurement_uid):
            raise not_found  # scored with ASN 0: never served
        else:
            # Not scored yet (or never will be): only this and the other
            # hosts' spools can hold it; the archive is indexed by report_id.
            key = BodyKey(measurement_uid)
        body = body_lookup().fetch(key)
    if body is None:
        raise not_found
    resp = Response(body, mimetype="application/json")
    if download:
        resp.headers["Content-Disposition"] = \
            f"attachment; filename=ooni_measurement-{measurement_uid}.json"
    return set_cached(resp, 3600)


def _has_row(uid: str) -> bool:
    rows = services().db.execute(
        "SELECT 1 FROM fastpath WHERE measurement_uid = {uid:String} LIMIT 1",
        {"uid": uid}, settings=_settings())
    return bool(rows)


# --- GET /api/v1/torsf_stats -------------------------------------------------

@bp.route("/api/v1/torsf_stats")
def get_torsf_stats() -> Response:
    """Tor Snowflake daily statistics by country
    ---
    parameters:
      - {name: probe_cc, in: query, type: string}
      - {name: since, in: query, type: string, description: "exclusive"}
      - {name: until, in: query, type: string, description: "inclusive"}
    responses:
      200: {description: "{v: 0, result: [{measurement_start_day, probe_cc, anomaly_count, confirmed_count, failure_count, measurement_count, anomaly_rate}]}"}
      400: {description: "{v: 0, error: ...}"}
    """
    try:
        probe_cc = parse_probe_cc(request.args.get("probe_cc"))
        since = parse_date("since", request.args.get("since"))
        until = parse_date("until", request.args.get("until"))
    except BadRequest as e:
        raise BadRequest(e.message, v=0) from None
    w = Where(["test_name = 'torsf'"])
    w.add_if_set("probe_cc = {cc:String}", cc=probe_cc)
    w.time_window(since, until)
    sql = f"""SELECT toDate(measurement_start_time) AS measurement_start_day, probe_cc,
        countIf(anomaly = 't') AS anomaly_count,
        countIf(confirmed = 't') AS confirmed_count,
        countIf(msm_failure = 't') AS failure_count,
        count() AS measurement_count
    FROM fastpath FINAL
    WHERE {' AND '.join(w.conditions)}
    GROUP BY measurement_start_day, probe_cc
    ORDER BY measurement_start_day, probe_cc"""
    with services().metrics.timer("get_torsf_stats"):
        rows = services().db.query(sql, w.params, settings=_settings())
    for r in rows:
        r["anomaly_rate"] = r["anomaly_count"] / r["measurement_count"]
    resp = json_response({"v": 0, "result": rows})
    if until is not None and until < utcnow() - dt.timedelta(hours=72):
        set_cached(resp, 86400)
    return resp


# --- measurement feedback ----------------------------------------------------

@bp.route("/api/_/measurement_feedback/<measurement_uid>")
@optional_session
def get_measurement_feedback(measurement_uid: str) -> Response:
    """Feedback summary for one measurement
    ---
    parameters:
      - {name: measurement_uid, in: path, type: string, required: true}
    responses:
      200: {description: "{summary: {status: count}, user_feedback: status (when logged in and submitted)}"}
    """
    db = services().db
    rows = db.execute(
        "SELECT status, count() FROM msmt_feedback FINAL "
        "WHERE measurement_uid = {uid:String} GROUP BY status ORDER BY status",
        {"uid": measurement_uid}, settings=_settings())
    out: dict[str, Any] = {"summary": {status: n for status, n in rows}}
    sess = current_session()
    if sess is not None:
        mine = db.execute(
            "SELECT status FROM msmt_feedback FINAL WHERE measurement_uid = {uid:String} "
            "AND account_id = {a:String} LIMIT 1",
            {"uid": measurement_uid, "a": sess.account_id}, settings=_settings())
        if mine:
            out["user_feedback"] = mine[0][0]
    resp = json_response(out, max_age=0)
    if sess is not None:
        # a personal answer must not be kept by a shared cache
        set_nocache(resp)
    return resp


@bp.route("/api/_/measurement_feedback", methods=["POST"])
@require_role("user", "admin")
def submit_measurement_feedback() -> Response:
    """Submit (or replace) the caller's feedback on a measurement
    ---
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/SubmitMeasurementFeedbackBody'}}
    responses:
      200: {description: "{}"}
      400: {description: "invalid body, measurement_uid or status"}
    """
    doc = request.get_json(silent=True)
    if not isinstance(doc, dict):
        raise BadRequest("Invalid JSON body")
    uid = doc.get("measurement_uid")
    status = doc.get("status")
    uid = uid.strip() if isinstance(uid, str) else ""
    status = status.strip() if isinstance(status, str) else ""
    if not uid or len(uid) > 100:
        raise BadRequest("Invalid measurement_uid")
    if status not in FEEDBACK_STATUSES:
        raise BadRequest("Invalid status")
    sess = current_session()
    services().db.insert("msmt_feedback", ["measurement_uid", "account_id", "status"],
                         [[uid, sess.account_id, status]])
    return json_response({}, max_age=0)
