"""ooniauth v2 (run.ooni.org, Explorer): the e-mail login link, the login
token exchanged for a session token (and the session refreshed), and "who
am I". Same tokens, mail and account hashing as the v1 routes in
``routes.py``; the session token adds ``email_address`` (docs/auth.md)."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Response

from ooni_common.timeutil import iso_z, utcnow

from ooniapi.accounts import mailer
from ooniapi.accounts import store as accounts_store
from ooniapi.core import auth, strict_json
from ooniapi.core.auth import credentialed
from ooniapi.core.body import read_body
from ooniapi.core.context import services
from ooniapi.core.errors import ApiError, BadRequest, Unauthorized
from ooniapi.core.http import json_response
from ooniapi.core.openapi import ApiBlueprint

log = logging.getLogger("ooni-api")

bp = ApiBlueprint("ooniauth_v2", __name__, tag="auth")

MAX_BODY = 16 * 1024
# upstream: EmailStr of 5..255 characters
EMAIL_MIN, EMAIL_MAX = 5, 255


def _json_object(required: bool) -> dict[str, Any]:
    raw = read_body()
    if len(raw) > MAX_BODY:
        raise BadRequest(f"Request body too large (limit {MAX_BODY} bytes)")
    if not raw.strip():
        if required:
            raise BadRequest("The request body must be a JSON object")
        return {}
    try:
        doc = strict_json.loads(raw)
    except (ValueError, RecursionError, UnicodeError):
        raise BadRequest("The request body must be a JSON object") from None
    if not isinstance(doc, dict):
        raise BadRequest("The request body must be a JSON object")
    return doc


def _email_field(doc: dict[str, Any]) -> str:
    v = doc.get("email_address")
    if not isinstance(v, str):
        raise BadRequest("'email_address' field must be a string")
    email = auth.normalize_email(v)
    if not (EMAIL_MIN <= len(email) <= EMAIL_MAX) or not auth.is_valid_email(email):
        raise BadRequest("'email_address' field is not a valid e-mail address")
    return email


def _session_answer(session_token: str, *, email: str, role: str, login_time: int,
                    account_id: str, redirect_to: str = "") -> dict[str, Any]:
    return {
        "session_token": session_token,
        "redirect_to": redirect_to,
        "email_address": email,
        "role": role,
        "account_id": account_id,
        "login_time": iso_z(dt.datetime.fromtimestamp(login_time, dt.timezone.utc)),
        "is_logged_in": True,
    }


def _new_session(account_id: str, email_address: str | None, login_time: int,
                 redirect_to: str = "") -> dict[str, Any]:
    """The answer carrying a new session token of the account, with the
    role it has now."""
    svc = services()
    role = accounts_store.session_role(svc.db, svc.cfg, account_id, email_address)
    token = auth.session_token(svc.cfg, account_id, role, login_time=login_time,
                               email_address=email_address)
    return _session_answer(token, email=email_address or "", role=role, login_time=login_time,
                           account_id=account_id, redirect_to=redirect_to)


@bp.route("/api/v2/ooniauth/user-login", methods=["POST"])
@credentialed
def user_login() -> Response:
    """Send a login link by e-mail (ooniauth v2)
    ---
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/UserRegisterBody'}}
    responses:
      200:
        description: the mail was handed to the mail server
        schema:
          type: object
          properties:
            email_address: {type: string}
            login_token_expiration: {type: string, description: "when the link stops working"}
      400:
        description: bad body, e-mail address or redirect_to (the error names the field)
        schema: {$ref: "#/definitions/Error"}
      503:
        description: Unable to send the email
        schema: {$ref: "#/definitions/Error"}
    """
    doc = _json_object(required=True)
    email = _email_field(doc)
    redirect_to = doc.get("redirect_to")
    if not isinstance(redirect_to, str):
        raise BadRequest("'redirect_to' field must be a string")
    svc = services()
    host = auth.redirect_host(svc.cfg, redirect_to)
    if host is None:
        raise BadRequest("'redirect_to' field must be an https URL of an allowed host")
    now = utcnow()
    token = auth.registration_token(svc.cfg, email, redirect_to.strip(), now=now)
    try:
        mailer.send_login_link(mailer.MailConfig.from_config(svc.cfg), email,
                               f"https://{host}/login?token={token}")
    except mailer.MailError as e:
        log.error("login mail for account %s not sent: %s", auth.account_id(svc.cfg, email), e)
        svc.metrics.incr("user_login_v2.mail_error")
        raise ApiError("Unable to send the email", 503) from None
    svc.metrics.incr("user_login_v2.mail_sent")
    expires = now.replace(microsecond=0) + auth.REGISTRATION_LIFETIME
    return json_response({"email_address": email, "login_token_expiration": iso_z(expires)},
                         nocache=True)


@bp.route("/api/v2/ooniauth/user-session", methods=["POST"])
@credentialed
def create_session() -> Response:
    """Exchange a login token for a session token, or refresh a session (ooniauth v2)
    ---
    parameters:
      - in: body
        name: body
        required: false
        schema:
          type: object
          properties:
            login_token: {type: string, description: "the token of the login link; without it the Authorization session is refreshed"}
      - $ref: '#/parameters/OptionalSession'
    responses:
      200:
        description: >
          a new session token (send it as "Authorization: Bearer <token>");
          its role is recomputed (stored role, or admin for ADMIN_EMAILS);
          a refresh keeps the login time, so it never extends a login past
          LOGIN_EXPIRY_DAYS
        schema: {$ref: "#/definitions/UserSession"}
      400:
        description: bad body (login_token not a string)
        schema: {$ref: "#/definitions/Error"}
      401:
        description: invalid, expired or expunged token; no valid session found
        schema: {$ref: "#/definitions/Error"}
    """
    doc = _json_object(required=False)
    login_token = doc.get("login_token")
    if login_token is not None and not isinstance(login_token, str):
        raise BadRequest("'login_token' field must be a string")
    if login_token:
        reg = auth.decode_registration(services().cfg, login_token)
        login_time = int(utcnow().replace(tzinfo=dt.timezone.utc).timestamp())
        return json_response(_new_session(reg.account_id, reg.email_address, login_time,
                                          redirect_to=reg.redirect_to), nocache=True)
    sess = auth.session_from_request()
    if sess is None:
        raise Unauthorized("no valid session found")
    # a refresh keeps the login time: it never extends a login
    return json_response(_new_session(sess.account_id, sess.email_address, sess.login_time),
                         nocache=True)


@bp.route("/api/v2/ooniauth/user-session", methods=["GET"])
@credentialed
def get_session() -> Response:
    """The caller's session (ooniauth v2)
    ---
    parameters:
      - $ref: '#/parameters/OptionalSession'
    responses:
      200:
        description: >
          is_logged_in true with the address, current role and login time;
          without a valid session is_logged_in is false and the other
          fields are empty (session_token is always empty here)
        schema: {$ref: "#/definitions/UserSession"}
    """
    sess = auth.session_from_request()
    if sess is None:
        return json_response({"session_token": "", "redirect_to": "", "email_address": "",
                              "role": "", "account_id": "", "login_time": None,
                              "is_logged_in": False}, nocache=True)
    svc = services()
    role = accounts_store.session_role(svc.db, svc.cfg, sess.account_id, sess.email_address)
    return json_response(_session_answer(
        "", email=sess.email_address or "", role=role, login_time=sess.login_time,
        account_id=sess.account_id), nocache=True)
