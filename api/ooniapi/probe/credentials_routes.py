"""Anonymous-credential routes (docs/probe-protocol.md): the manifest, the
registration of a credential and its re-issue under a rotated key. The
submission with a proof is ``POST /api/v1/submit_measurement``
(collector_routes.py), which calls ``verify_submission`` here."""
from __future__ import annotations

import logging
import sqlite3
from typing import Any

import ooniauth_py
from flask import Flask, Response

from ooniapi.core.context import services
from ooniapi.core.errors import ApiError, NotFound, StorageUnavailable
from ooniapi.core.http import json_response
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.validation import json_body
from ooniapi.probe.anoncred import (
    MAX_SIGN_REQUEST,
    MAX_UPDATE_REQUEST,
    AnonCred,
    Verification,
    check_b64_field,
    check_version_field,
    proof_digest,
)
from ooniapi.probe.replay import ReplayGuard

log = logging.getLogger("ooni-api.anoncred")

bp = ApiBlueprint("anoncred", __name__, tag="anonymous credentials")


def init_app(app: Flask) -> None:
    svc = app.extensions["ooni"]
    if svc.cfg.get_bool("ANONCRED_ENABLED", True):
        svc.extras["anoncred"] = AnonCred.from_config(svc.cfg)
        svc.extras["anoncred_replay"] = ReplayGuard.from_config(svc.cfg)


def _anoncred() -> AnonCred:
    ac = services().extras.get("anoncred")
    if ac is None:
        raise NotFound("Anonymous credentials are disabled on this server",
                       err_str="anoncred_disabled")
    return ac


def _first_use(kind: str, message: str) -> bool:
    return services().extras["anoncred_replay"].first_use(kind, proof_digest(message))


def _claim(kind: str, message: str, field: str) -> None:
    """Records a signing request as used: the same request twice is a replay.
    Unlike a submission, a credential is not issued when the store is down."""
    try:
        fresh = _first_use(kind, message)
    except sqlite3.Error as e:
        log.error("replay store unavailable: %s", e)
        raise StorageUnavailable("Credential service temporarily unavailable") from None
    if not fresh:
        raise ApiError(f"{field} was already used", 409, err_str="replayed_request")


def verify_submission(fields: dict[str, Any], content_text: str | None, probe_cc: Any,
                      probe_asn: Any) -> Verification:
    """The verification of a single-shot submission: ``u`` without proof
    or with anonymous credentials disabled, else ``t``/``f``. Never raises
    for what the probe sent; a failed check only changes the status."""
    svc = services()
    ac = svc.extras.get("anoncred")
    if ac is None:
        return Verification("u")
    try:
        with svc.metrics.timer("anoncred_verify"):
            v = ac.verify_submission(fields, content_text, probe_cc, probe_asn)
    except Exception:
        # A fault of ours must neither lose the measurement nor blame the
        # probe: stored as unverified.
        log.exception("submission verification crashed")
        svc.metrics.incr("anoncred_verify_error")
        return Verification("u", error="verification_unavailable")
    if v.is_verified == "t":
        try:
            fresh = _first_use("submit", fields["zkp_request"])
        except sqlite3.Error as e:
            # Our own store failing must not mark good data as failed.
            log.error("replay store unavailable: %s", e)
            svc.metrics.incr("anoncred_replay_store_error")
            fresh = True
        if not fresh:
            v = Verification("f", error="replayed_request")
    svc.metrics.incr({"t": "anoncred_verified", "f": "anoncred_failed"}.get(
        v.is_verified, "anoncred_unverified"))
    if v.error:
        log.info("submission verification: %s (%s)", v.is_verified, v.error)
    return v


@bp.route("/api/v1/manifest")
def manifest() -> Response:
    """Anonymous-credential manifest: public parameters, submission policy, version.
    ---
    responses:
      200: {description: "{manifest: {nym_scope, public_parameters, submission_policy: [{match: {probe_cc, probe_asn}, policy: {age: [lo, hi], min_measurement_count}}]}, meta: {version, last_modification_date, manifest_url, library_version, protocol_version}, version, public_parameters}"}
      404: {$ref: '#/responses/AnonCredDisabled'}
    """
    # Short cache: the age window moves daily and a rotation must show soon.
    return json_response(_anoncred().manifest(), max_age=60)


@bp.route("/api/v1/sign_credential", methods=["POST"])
def sign_credential() -> Response:
    """Register: sign a new anonymous credential.
    ---
    consumes: [application/json]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/SignCredentialBody'}}
    responses:
      200: {description: '{"credential_sign_response": "<base64>", "emission_day": 2461377, "manifest_version": "..."}'}
      400: {description: "malformed body or request, unknown or retired manifest_version"}
      403: {description: "the request does not verify under this manifest's keys"}
      404: {$ref: '#/responses/AnonCredDisabled'}
      409: {$ref: '#/responses/Replayed'}
      413: {$ref: '#/responses/TooLarge'}
    """
    ac = _anoncred()
    body = json_body()
    version = check_version_field(body, "manifest_version")
    req = check_b64_field(body, "credential_sign_request", MAX_SIGN_REQUEST)
    svc = services()
    with svc.metrics.timer("anoncred_sign_credential"):
        resp, day = ac.sign(version, req)
    _claim("sign", req, "credential_sign_request")
    svc.metrics.incr("anoncred_credential_signed")
    return json_response({"credential_sign_response": resp, "emission_day": day,
                          "manifest_version": version}, nocache=True)


@bp.route("/api/v1/update_credential", methods=["POST"])
def update_credential() -> Response:
    """Re-issue a credential of an older manifest version under a newer one (key rotation).
    ---
    consumes: [application/json]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/UpdateCredentialBody'}}
    responses:
      200: {description: '{"update_response": "<base64>", "manifest_version": "..."}'}
      400: {description: "malformed body or request, unknown or retired manifest version"}
      403: {description: "the request does not verify"}
      404: {$ref: '#/responses/AnonCredDisabled'}
      409: {$ref: '#/responses/Replayed'}
      413: {$ref: '#/responses/TooLarge'}
    """
    ac = _anoncred()
    body = json_body()
    old = check_version_field(body, "old_manifest_version")
    version = check_version_field(body, "manifest_version")
    req = check_b64_field(body, "update_request", MAX_UPDATE_REQUEST)
    resp = ac.update(old, version, req)
    _claim("update", req, "update_request")
    services().metrics.incr("anoncred_credential_updated")
    return json_response({"update_response": resp, "manifest_version": version}, nocache=True)


def protocol_version() -> str:
    return ooniauth_py.get_protocol_version()
