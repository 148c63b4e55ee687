"""Probe submission routes (api.md §7.9-7.11, §16): open a report, submit a
measurement into it, close it, and the single-shot ``submit_measurement``.

A 200 with a uid is answered only once the body is durably in the spool; a
spool failure is a 503 so that the probe keeps the measurement. The fastpath
notification comes after the write and can neither block nor fail the answer:
its spool feeder picks up whatever the notification missed."""
from __future__ import annotations

import logging

from flask import Response, request

from ooni_common.spool import SpoolError
from ooni_common.timeutil import utcnow

from ooniapi.core import ids
from ooniapi.core.body import body_cap, read_body
from ooniapi.core.context import services
from ooniapi.core.errors import BadRequest, StorageUnavailable
from ooniapi.core.http import json_response
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.verification import VERIFICATION_STATUS
from ooniapi.probe import upload
from ooniapi.probe.credentials_routes import protocol_version, verify_submission

log = logging.getLogger("ooni-api")

bp = ApiBlueprint("submission", __name__, tag="probe services")

BACKEND_VERSION = "1.3.5"


def _request_body() -> bytes:
    upload.check_content_type(request.headers.get("Content-Type"))
    raw = read_body()
    return upload.decode_body(raw, request.headers.get("Content-Encoding"), body_cap())


def _store(uid: str, body: bytes) -> None:
    svc = services()
    try:
        svc.spool.write(uid, body)
    except SpoolError as e:
        log.error("measurement %s not stored: %s", uid, e)
        svc.metrics.incr("msmt_output_file_error")
        raise StorageUnavailable("Measurement could not be stored, please retry later") from None
    try:
        svc.notify_fastpath(uid, body)
    except Exception as e:  # the spool feeder covers a failed notification
        log.warning("fastpath notification for %s failed: %s", uid, e)
        svc.metrics.incr("fastpath_notify_error")


@bp.route("/report", methods=["POST"])
def open_report() -> Response:
    """Open a report: returns the report_id to submit measurements to.
    ---
    consumes: [application/json]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/OpenReportBody'}}
    responses:
      200: {description: "the new report_id", schema: {$ref: '#/definitions/OpenReport'}}
      400: {description: "body is not a JSON object or test_name is invalid"}
    """
    svc = services()
    with svc.metrics.timer("open_report"):
        meta = upload.check_open_report(read_body())
        rid = ids.generate_report_id(meta.test_name, meta.cc, meta.asn, svc.cfg.collector_id,
                                     utcnow())
        return json_response({"backend_version": BACKEND_VERSION,
                              "supported_formats": ["yaml", "json"],
                              "report_id": rid}, nocache=True)


@bp.route("/report/<report_id>", methods=["POST"])
def receive_measurement(report_id: str) -> Response:
    """Submit one measurement into an open report.
    ---
    consumes: [application/json]
    parameters:
      - $ref: '#/parameters/ReportIdPath'
      - $ref: '#/parameters/ContentEncoding'
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/ReceiveMeasurementBody'}, description: "the probe upload, at most MAX_BODY_SIZE bytes (default 32 MiB)"}
    responses:
      200: {description: "stored durably", schema: {$ref: '#/definitions/StoredMeasurement'}}
      400: {description: 'malformed report_id or upload; {"error": "Inconsistent measurement"} when content.probe_cc, probe_asn or test_name contradicts the report_id (nothing stored)'}
      413: {$ref: '#/responses/TooLarge'}
      415: {$ref: '#/responses/UnsupportedMedia'}
      503: {$ref: '#/responses/StorageUnavailable'}
    """
    svc = services()
    with svc.metrics.timer("receive_measurement"):
        target = upload.parse_report_target(report_id)
        if target.discarded:
            svc.metrics.incr("discarded_measurement")
            return json_response({}, nocache=True)
        body = _request_body()
        doc = upload.check_upload(body)
        upload.check_not_self_verified(doc)
        content = doc["content"]
        bad = upload.check_consistent(target, content)
        if bad is not None:
            log.info("inconsistent measurement for %s: %s", report_id, bad)
            svc.metrics.incr(f"inconsistent_measurement_{bad}")
            raise BadRequest(upload.INCONSISTENT)
        if isinstance(content, dict) and content.get("report_id") not in (None, report_id):
            log.debug("report_id in body differs from %s", report_id)
        uid = ids.build_uid(utcnow(), target.cc, target.testname, body)
        _store(uid, body)
        return json_response({"measurement_uid": uid}, nocache=True)


@bp.route("/report/<report_id>/close", methods=["POST"])
def close_report(report_id: str) -> Response:
    """Close a report (unnecessary, kept for old probes): always an empty object.
    ---
    parameters:
      - $ref: '#/parameters/ReportIdPath'
    responses:
      200: {description: "empty object"}
    """
    services().metrics.incr("close_report")
    return json_response({}, max_age=3600)


@bp.route("/api/v1/submit_measurement", methods=["POST"])
def submit_measurement() -> Response:
    """Single-shot submission: the server generates the report_id.
    ---
    consumes: [application/json]
    parameters:
      - $ref: '#/parameters/ContentEncoding'
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/SubmitMeasurementBody'}, description: "at most MAX_BODY_SIZE bytes (default 32 MiB)"}
    responses:
      200: {description: "stored durably; empty object when discarded (CC ZZ or ASN 0). A proof that does not verify never fails the upload: the measurement is stored with verification_status failed.", schema: {$ref: '#/definitions/SubmitMeasurementResult'}}
      400: {description: "malformed upload"}
      413: {$ref: '#/responses/TooLarge'}
      415: {$ref: '#/responses/UnsupportedMedia'}
      503: {$ref: '#/responses/StorageUnavailable'}
    """
    svc = services()
    with svc.metrics.timer("submit_measurement"):
        msmt = upload.check_single_shot(_request_body())
        if msmt.discarded:
            svc.metrics.incr("discarded_measurement")
            return json_response({}, nocache=True)
        now = utcnow()
        rid = ids.generate_report_id(msmt.test_name, msmt.cc, msmt.asn, svc.cfg.collector_id, now)
        # The proof binds the content as sent; its fate only sets
        # is_verified, it never refuses the measurement.
        v = verify_submission(msmt.fields, msmt.content_text, msmt.content.get("probe_cc"),
                              msmt.content.get("probe_asn"))
        # The fastpath drops measurements without a report_id, and the probe
        # never learns this one: the server's id is the only one.
        msmt.content["report_id"] = rid
        body = upload.spooled_single_shot(msmt.content, v.is_verified)
        uid = ids.build_uid(now, msmt.cc, ids.compact_testname(msmt.test_name), body)
        _store(uid, body)
        out = {"measurement_uid": uid, "report_id": rid,
               "verification_status": VERIFICATION_STATUS[v.is_verified]}
        if v.submit_response is not None:
            out["submit_response"] = v.submit_response
            out["protocol_version"] = protocol_version()
        if v.error is not None:
            out["error"] = v.error
        return json_response(out, nocache=True)
