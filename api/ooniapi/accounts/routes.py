"""Browser accounts (api.md §9, design in §14): e-mail login link, session
tokens, roles and session expunge. Nothing identifying is stored: accounts
are keyed by the hashed address, and an address only travels inside the
short-lived registration token and the mail itself."""
from __future__ import annotations

import logging
from typing import Any

from flask import Response, request

from ooniapi.accounts import mailer
from ooniapi.accounts import store as accounts_store
from ooniapi.core import auth
from ooniapi.core.context import services
from ooniapi.core.errors import BadRequest, Conflict
from ooniapi.core.http import json_response
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.rowlock import row_locks

log = logging.getLogger("ooni-api")

bp = ApiBlueprint("auth_routes", __name__, tag="auth")


def _body() -> dict[str, Any]:
    """The request's JSON object or HTML form (both accepted by legacy)."""
    if request.is_json:
        doc = request.get_json(silent=True)
        if not isinstance(doc, dict):
            raise BadRequest("Invalid request")
        return doc
    return request.form.to_dict()


def _role(value: Any) -> str | None:
    role = value.strip().lower() if isinstance(value, str) else ""
    return role if role in accounts_store.ROLES else None


def _valid_email(value: Any) -> str:
    email = auth.normalize_email(value)
    if not auth.is_valid_email(email):
        raise BadRequest("Invalid email address")
    return email


@bp.route("/api/v1/user_register", methods=["POST"])
@auth.credentialed
def user_register() -> Response:
    """Send a login link by e-mail
    ---
    consumes: [application/json, application/x-www-form-urlencoded]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/UserRegisterBody'}, description: "also accepted as an HTML form with the same fields"}
    responses:
      200: {description: "the mail was handed to the mail server; the answer never says whether the account already existed", schema: {$ref: '#/definitions/UserRegister'}}
      400: {description: '"Invalid request" (no address, redirect host not allowed), "Invalid email address", or "Unable to send the email"', schema: {$ref: '#/definitions/Error'}}
    """
    doc = _body()
    email = auth.normalize_email(doc.get("email_address"))
    if not email:
        raise BadRequest("Invalid request")
    if not auth.is_valid_email(email):
        raise BadRequest("Invalid email address")
    redirect_to = doc.get("redirect_to")
    host = auth.redirect_host(services().cfg, redirect_to)
    if host is None:
        raise BadRequest("Invalid request")
    svc = services()
    token = auth.registration_token(svc.cfg, email, redirect_to.strip())
    login_url = f"https://{host}/login?token={token}"
    try:
        mailer.send_login_link(mailer.MailConfig.from_config(svc.cfg), email, login_url)
    except mailer.MailError as e:
        # The address stays out of the logs (api.md §14): the account id
        # is enough to correlate with a user's report.
        log.error("login mail for account %s not sent: %s",
                  auth.account_id(svc.cfg, email), e)
        svc.metrics.incr("user_register.mail_error")
        raise BadRequest("Unable to send the email") from None
    svc.metrics.incr("user_register.mail_sent")
    return json_response({"msg": "ok"}, nocache=True)


@bp.route("/api/v1/user_login", methods=["GET"])
@auth.credentialed
def user_login() -> Response:
    """Exchange the token of a login link for a session token
    ---
    parameters:
      - {name: k, in: query, type: string, required: true, description: "the registration token from the login link"}
    responses:
      200: {description: 'a session token, to send as "Authorization: Bearer <token>"; its role is the account''s role at this login', schema: {$ref: '#/definitions/UserLogin'}}
      401: {description: '"Invalid credentials" (malformed, wrong kind of token, not yet valid), "Invalid credential signature", "Expired token", "Invalid token type"', schema: {$ref: '#/definitions/Error'}}
    """
    cfg = services().cfg
    reg = auth.decode_registration(cfg, request.args.get("k", ""))
    role = accounts_store.session_role(services().db, cfg, reg.account_id, reg.email_address)
    bearer = auth.session_token(cfg, reg.account_id, role, email_address=reg.email_address)
    return json_response({"bearer": bearer, "redirect_to": reg.redirect_to,
                          "email_address": reg.email_address}, nocache=True)


@bp.route("/api/v1/user_refresh_token", methods=["GET"])
@auth.require_role("user", "admin")
def user_refresh_token() -> Response:
    """Renew the caller's session token
    ---
    responses:
      200: {description: "a new session token with the same account and login time and the account's current role (a role change applies to refreshed tokens too); refreshing never extends a login past LOGIN_EXPIRY_DAYS, and an expunged session cannot be refreshed", schema: {$ref: '#/definitions/UserRefreshToken'}}
    """
    sess = auth.current_session()
    bearer = auth.session_token(services().cfg, sess.account_id, sess.role,
                                login_time=sess.login_time, email_address=sess.email_address)
    return json_response({"bearer": bearer}, nocache=True)


@bp.route("/api/v1/set_account_role", methods=["POST"])
@auth.require_role("admin")
def set_account_role() -> Response:
    """Set the role of an account (admin)
    ---
    consumes: [application/json, application/x-www-form-urlencoded]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/SetAccountRoleBody'}}
    responses:
      200: {description: "stored; the role applies from the account's next request, its current sessions included", schema: {$ref: '#/definitions/SetAccountRole'}}
      400: {description: "Invalid email address, Invalid role, Invalid current_role", schema: {$ref: '#/definitions/Error'}}
      409: {description: "current_role was sent and the stored role differs (changed concurrently); nothing written", schema: {$ref: '#/definitions/Error'}}
    """
    doc = _body()
    email = _valid_email(doc.get("email_address"))
    role = _role(doc.get("role"))
    if role is None:
        raise BadRequest("Invalid role")
    expected = None
    if doc.get("current_role") is not None:
        expected = _role(doc["current_role"])
        if expected is None:
            raise BadRequest("Invalid current_role")
    svc = services()
    aid = auth.account_id(svc.cfg, email)
    try:
        accounts_store.change_role(svc.db, row_locks(), aid, role, expected)
    except accounts_store.RoleConflict as e:
        raise Conflict(f"current_role: the role is now {e.current}") from None
    log.info("role of account %s set to %s by %s", aid, role, auth.current_session().account_id)
    return json_response({}, nocache=True)


@bp.route("/api/v1/get_account_role/<email_address>", methods=["GET"])
@auth.require_role("admin")
def get_account_role(email_address: str) -> Response:
    """Role of an account (admin)
    ---
    parameters:
      - {name: email_address, in: path, type: string, required: true}
    responses:
      200: {description: "the stored role", schema: {$ref: '#/definitions/GetAccountRole'}}
      400: {description: "Invalid email address, Account not found (no stored role)", schema: {$ref: '#/definitions/Error'}}
    """
    email = _valid_email(email_address)
    svc = services()
    role = accounts_store.get_role(svc.db, auth.account_id(svc.cfg, email))
    if role is None:
        raise BadRequest("Account not found")
    return json_response({"role": role}, nocache=True)


@bp.route("/api/_/account_metadata", methods=["GET"])
@auth.optional_session
def account_metadata() -> Response:
    """Whether the caller is logged in, and with which role
    ---
    security: [{bearer: []}]
    responses:
      200: {description: "a valid session", schema: {$ref: '#/definitions/AccountMetadata'}}
      401: {description: 'no valid session; the body is exactly {"logged_in": false}, with no error key (the UIs rely on it)', schema: {$ref: '#/definitions/AccountMetadata401'}}
    """
    sess = auth.current_session()
    if sess is None:
        return json_response({"logged_in": False}, 401, nocache=True)
    return json_response({"logged_in": True, "role": sess.role}, nocache=True)


@bp.route("/api/v1/set_session_expunge", methods=["POST"])
@auth.require_role("admin")
def set_session_expunge() -> Response:
    """End every current session of an account (admin)
    ---
    consumes: [application/json, application/x-www-form-urlencoded]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/SetSessionExpungeBody'}}
    responses:
      200: {description: 'stored: role-protected routes (refresh included) now answer 401 "Authentication token expired" to the account''s tokens issued up to this millisecond', schema: {$ref: '#/definitions/SetAccountRole'}}
      400: {description: "Invalid email address", schema: {$ref: '#/definitions/Error'}}
    """
    email = _valid_email(_body().get("email_address"))
    svc = services()
    aid = auth.account_id(svc.cfg, email)
    accounts_store.expunge_sessions(svc.db, aid)
    log.info("sessions of account %s expunged by %s", aid, auth.current_session().account_id)
    return json_response({}, nocache=True)
