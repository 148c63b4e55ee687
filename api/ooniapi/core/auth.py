"""JWT helpers (api.md §14): probe credentials and user sessions.

Every token is HS256, signed with ``cfg.secret("JWT_ENCRYPTION_KEY")``, and
carries an audience that keeps the kinds apart:

* ``probe_login`` -- the probe's ``client_id`` (register, §7.3), no expiry;
* ``probe_token`` -- the probe's session token (login, §7.4), no ``exp``
  claim: the probe never re-logs in on a 401, so the token is honoured for
  its whole advertised lifetime and beyond;
* ``register`` -- the e-mail login link (§9.1), 1 day;
* ``user_auth`` -- a browser session (§9.2, §14), with ``account_id``,
  ``role``, ``login_time`` and ``exp``; tokens issued since ooniauth v2
  also carry ``email_address`` (what run.ooni.org and Explorer read, and
  what OONI Run v2 compares ``author`` with). Tokens with and without it
  are accepted alike on every protected route.

Use from other blueprints::

    from ooniapi.core.auth import require_role, optional_session

    @bp.route("/api/_/something", methods=["POST"])
    @require_role("admin")
    def something():
        sess = current_session()        # the verified Session
        ...

``require_role`` answers 401 ``Authentication required`` / ``Role not
authorized`` / ``Authentication token expired`` (session_expunge) through
``ooniapi.core.errors.Unauthorized``, and adds ``no-cache`` plus the credentialed
CORS headers of api.md §1.5 to every answer of the route, errors included.
"""
from __future__ import annotations

import calendar
import datetime as dt
import functools
import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any, Callable
from urllib.parse import urlsplit

import jwt
from flask import Response, g, make_response, request

from ooni_common.config import Config, ConfigError
from ooni_common.timeutil import utcnow

from ooniapi.core import openapi
from ooniapi.core.context import services
from ooniapi.core.errors import ApiError, BadRequest, Unauthorized
from ooniapi.core.http import json_response, set_nocache

ALGO = "HS256"
AUD_PROBE_LOGIN = "probe_login"
AUD_PROBE_TOKEN = "probe_token"
AUD_REGISTER = "register"
AUD_USER = "user_auth"

PROBE_TOKEN_LIFETIME = dt.timedelta(days=7)
REGISTRATION_LIFETIME = dt.timedelta(days=1)

# api.md §9.1: a dot is required after the "@", so "nick@localhost" fails.
EMAIL_RE = re.compile(r"[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+")

# UIs that may receive the login link (api.md §9.1); LOGIN_REDIRECT_HOSTS
# replaces the list.
DEFAULT_REDIRECT_HOSTS = [
    "explorer.ooni.org", "explorer.test.ooni.org", "run.ooni.io", "run.ooni.org",
    "run.test.ooni.org", "run-v2.ooni.org", "test-lists.ooni.org",
    "test-lists.test.ooni.org",
]

CREDENTIALED_ORIGINS = [
    re.compile(r"^https://[-A-Za-z0-9]+\.ooni\.org$"),
    re.compile(r"^https://[-A-Za-z0-9]+\.test\.ooni\.org$"),
    re.compile(r"^https://[-A-Za-z0-9]+\.ooni\.io$"),
    re.compile(r"^https://[-A-Za-z0-9]+\.test\.ooni\.io$"),
]


def jwt_key(cfg: Config) -> str:
    return cfg.secret("JWT_ENCRYPTION_KEY")


def _ts(now: dt.datetime) -> int:
    return int(now.replace(tzinfo=dt.timezone.utc).timestamp())


def encode(claims: dict[str, Any], key: str) -> str:
    return jwt.encode(claims, key, algorithm=ALGO)


def decode(token: str, key: str, audience: str) -> dict[str, Any]:
    """Verifies signature, audience and, when present, ``exp``/``nbf``.
    Raises ``jwt.InvalidTokenError`` subclasses."""
    return jwt.decode(token, key, algorithms=[ALGO], audience=audience)


# --- probe credentials (api.md §7.3, §7.4, §7.7) ----------------------------

def probe_client_id(cfg: Config, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    return encode({"iat": _ts(now), "aud": AUD_PROBE_LOGIN}, jwt_key(cfg))


@dataclass(frozen=True)
class ProbeLogin:
    token: str
    expire: dt.datetime  # naive UTC, advisory only
    registration_time: int | None


def _looks_like_jwt(s: str) -> bool:
    parts = s.split(".")
    if len(parts) != 3:
        return False
    try:
        jwt.get_unverified_header(s)
    except jwt.InvalidTokenError:
        return False
    return True


def probe_login(cfg: Config, username: Any, now: dt.datetime | None = None) -> ProbeLogin:
    """A username that is not a JWT at all is a legacy (pre-2022) probe
    credential and is accepted with ``registration_time = None``; a JWT
    must be one of ours with the ``probe_login`` audience."""
    now = now or utcnow()
    key = jwt_key(cfg)
    reg_time: int | None = None
    if isinstance(username, str) and _looks_like_jwt(username):
        try:
            claims = decode(username, key, AUD_PROBE_LOGIN)
        except jwt.InvalidTokenError:
            raise Unauthorized("Invalid credentials") from None
        iat = claims.get("iat")
        reg_time = iat if isinstance(iat, int) else None
    token = encode({"registration_time": reg_time, "aud": AUD_PROBE_TOKEN}, key)
    return ProbeLogin(token, now.replace(microsecond=0) + PROBE_TOKEN_LIFETIME, reg_time)


def check_probe_token(cfg: Config, authorization: str | None) -> dict[str, Any]:
    """Claims of a valid probe token from an ``Authorization`` header value;
    raises Unauthorized / BadRequest with the messages of api.md §7.7."""
    if not authorization:
        raise Unauthorized("Invalid credentials")
    if not authorization.startswith("Bearer "):
        raise BadRequest("Invalid token format")
    token = authorization[len("Bearer "):].strip()
    try:
        return decode(token, jwt_key(cfg), AUD_PROBE_TOKEN)
    except jwt.InvalidSignatureError:
        raise Unauthorized("Invalid JWT signature") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("Invalid credentials") from None


# --- accounts and the e-mail login link (api.md §1.8, §9.1, §9.2) ----------

def normalize_email(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) else ""


def is_valid_email(email: str) -> bool:
    return bool(EMAIL_RE.fullmatch(email))


def account_id(cfg: Config, email: str) -> str:
    """Keyed BLAKE2b-128 of the normalised address: the only form in which
    an account is ever stored."""
    key = cfg.secret("ACCOUNT_ID_HASHING_KEY").encode("utf-8")
    if len(key) > hashlib.blake2b.MAX_KEY_SIZE:
        raise ConfigError("ACCOUNT_ID_HASHING_KEY must be at most 64 bytes long")
    h = hashlib.blake2b(normalize_email(email).encode("utf-8"), key=key, digest_size=16)
    return h.hexdigest()


def redirect_host(cfg: Config, redirect_to: Any) -> str | None:
    """The UI host of an allowed ``redirect_to`` URL, else None. The whole
    netloc must match, so ports and user-info are refused too."""
    if not isinstance(redirect_to, str):
        return None
    try:
        u = urlsplit(redirect_to.strip())
    except ValueError:
        return None
    allowed = cfg.get_list("LOGIN_REDIRECT_HOSTS", DEFAULT_REDIRECT_HOSTS)
    if u.scheme != "https" or u.netloc not in allowed:
        return None
    return u.netloc


@dataclass(frozen=True)
class Registration:
    account_id: str
    email_address: str
    redirect_to: str


def registration_token(cfg: Config, email: str, redirect_to: str,
                       now: dt.datetime | None = None) -> str:
    now_ts = _ts(now or utcnow())
    claims = {"nbf": now_ts, "exp": now_ts + int(REGISTRATION_LIFETIME.total_seconds()),
              "aud": AUD_REGISTER, "account_id": account_id(cfg, email),
              "email_address": email, "redirect_to": redirect_to}
    return encode(claims, jwt_key(cfg))


def decode_registration(cfg: Config, token: str) -> Registration:
    """Raises Unauthorized with the messages of api.md §9.2."""
    try:
        c = decode(token, jwt_key(cfg), AUD_REGISTER)
    except jwt.MissingRequiredClaimError:
        raise Unauthorized("Invalid token type") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("Invalid credential signature") from None
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Expired token") from None
    except jwt.InvalidTokenError:
        # malformed, wrong audience (a session or probe token), not yet valid
        raise Unauthorized("Invalid credentials") from None
    fields = [c.get("account_id"), c.get("email_address"), c.get("redirect_to")]
    # A link must expire: a signed "register" token without exp is not ours.
    if "exp" not in c or not all(isinstance(f, str) and f for f in fields):
        raise Unauthorized("Invalid token type")
    return Registration(*fields)


# --- user sessions (api.md §14) ---------------------------------------------

@dataclass(frozen=True)
class Session:
    account_id: str
    role: str
    login_time: int
    iat: int
    exp: int
    # Issue time in milliseconds (the ``iat_ms`` claim; ``iat * 1000`` for
    # tokens without it): what a session expunge is compared with.
    issued_ms: int = 0
    # None for tokens issued before ooniauth v2 (they did not carry it).
    email_address: str | None = None


def session_token(cfg: Config, account_id: str, role: str, login_time: int | None = None,
                  now: dt.datetime | None = None, email_address: str | None = None) -> str:
    """A ``user_auth`` token; ``exp`` is capped by the login time so that
    refreshing never extends a login beyond LOGIN_EXPIRY_DAYS."""
    now = now or utcnow()
    now_ts = _ts(now)
    login_time = now_ts if login_time is None else int(login_time)
    session_days = cfg.get_int("SESSION_EXPIRY_DAYS", 2)
    login_days = cfg.get_int("LOGIN_EXPIRY_DAYS", 7)
    exp = min(now_ts + session_days * 86400, login_time + login_days * 86400)
    claims = {"nbf": now_ts, "iat": now_ts, "exp": exp, "aud": AUD_USER,
              "account_id": account_id, "login_time": login_time, "role": role,
              "iat_ms": epoch_ms(now)}
    claims.update(v2_session_claims(email_address))
    return encode(claims, jwt_key(cfg))


def decode_session(cfg: Config, token: str) -> Session:
    """Raises Unauthorized("Authentication required") for any bad token."""
    try:
        c = decode(token, jwt_key(cfg), AUD_USER)
        iat = int(c["iat"])
        return Session(account_id=str(c["account_id"]), role=str(c["role"]),
                       login_time=int(c.get("login_time") or iat),
                       iat=iat, exp=int(c["exp"]), issued_ms=issued_ms(c, iat),
                       email_address=v2_session_email(c))
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
        raise Unauthorized("Authentication required") from None


# --- ooniauth v2 additions (run.ooni.org, Explorer) ------------------------

def v2_session_claims(email_address: str | None) -> dict[str, Any]:
    """The claim a v2 session token adds to the v1 ones: the address the
    UIs show and OONI Run checks ``author`` against."""
    return {"email_address": email_address} if email_address else {}


def v2_session_email(claims: dict[str, Any]) -> str | None:
    v = claims.get("email_address")
    return v if isinstance(v, str) and v else None


def admin_emails(cfg: Config) -> frozenset[str]:
    """``ADMIN_EMAILS`` (comma separated): addresses that log in as admin
    whatever their stored role, as upstream's ooniauth does."""
    return frozenset(normalize_email(e) for e in cfg.get_list("ADMIN_EMAILS", []) if e.strip())


def login_role(cfg: Config, stored_role: str | None, email_address: str | None) -> str:
    """The role a new or refreshed session gets: admin for ADMIN_EMAILS,
    else the stored role, else user."""
    if email_address and normalize_email(email_address) in admin_emails(cfg):
        return "admin"
    return stored_role if stored_role in ("user", "admin") else "user"


def _bearer() -> str | None:
    h = request.headers.get("Authorization", "")
    if h.startswith("Bearer "):
        return h[len("Bearer "):].strip() or None
    return None


# --- session revocation: expunge and role changes (issue 16) ---------------
#
# A session token names its role, but the stored state of the account wins
# at every request: a token issued at or before the account's expunge
# threshold is refused, and a stored role replaces the token's, so that a
# demotion or an expunge cuts a session off at its next request, refresh
# included. Thresholds are compared in milliseconds; a token without the
# ``iat_ms`` claim counts as issued at the start of its ``iat`` second, so
# it can never slip past an expunge made later in that second.

def epoch_ms(now: dt.datetime) -> int:
    """Milliseconds since the epoch of a naive UTC datetime (exact, no float)."""
    return calendar.timegm(now.utctimetuple()) * 1000 + now.microsecond // 1000


def issued_ms(claims: dict[str, Any], iat: int) -> int:
    v = claims.get("iat_ms")
    # Only an iat_ms within its own iat second is believed.
    if isinstance(v, int) and not isinstance(v, bool) and iat * 1000 <= v < iat * 1000 + 1000:
        return v
    return iat * 1000


@dataclass(frozen=True)
class AccountState:
    role: str | None         # stored role, None when the account has no row
    expunged_ms: int | None  # the latest expunge threshold, in ms


def account_state(account_id: str) -> AccountState:
    """Stored role and expunge threshold of an account, in one query. The
    legacy ``session_expunge`` table holds whole seconds; ``session_revocation``
    the milliseconds (both written by every expunge)."""
    row = services().db.query_one(
        """SELECT
             (SELECT role FROM accounts WHERE account_id = {a:String}) AS role,
             (SELECT toInt64(toUnixTimestamp(threshold)) * 1000 FROM session_expunge
              WHERE account_id = {a:String}) AS legacy_ms,
             (SELECT threshold_ms FROM session_revocation
              WHERE account_id = {a:String}) AS threshold_ms""",
        {"a": account_id})
    thresholds = [v for v in (row["legacy_ms"], row["threshold_ms"]) if v is not None]
    return AccountState(role=row["role"] or None,
                        expunged_ms=max(thresholds) if thresholds else None)


def check_session(sess: Session) -> Session:
    """The session as the account's stored state allows it: raises
    Unauthorized("Authentication token expired") when the token was issued
    at or before the account's last expunge; the role is the stored one
    when the account has a stored role."""
    st = account_state(sess.account_id)
    if st.expunged_ms is not None and sess.issued_ms <= st.expunged_ms:
        raise Unauthorized("Authentication token expired")
    if st.role is not None and st.role != sess.role:
        return replace(sess, role=st.role)
    return sess


def current_session() -> Session | None:
    """The verified session of this request (set by require_role or
    optional_session), else None."""
    return g.get("ooni_session")


def session_from_request() -> Session | None:
    """The caller's session if a valid, non-expunged token is present;
    never raises for auth reasons (optional-session routes)."""
    token = _bearer()
    if not token:
        return None
    try:
        return check_session(decode_session(services().cfg, token))
    except Unauthorized:
        return None


def is_credentialed_view(view) -> bool:
    """Whether a view is auth-aware (decorated here): its CORS preflight
    follows the same origin rules as its answers (§1.5)."""
    return bool(getattr(view, "credentialed_cors", False))


def add_credentialed_cors(resp: Response) -> Response:
    # Tells the app-wide CORS hook not to add its "*" default: non-matching
    # origins get no ACAO header at all on auth-aware routes (§1.5).
    g.cors_credentialed = True
    origin = request.headers.get("Origin", "")
    if origin and any(r.match(origin) for r in CREDENTIALED_ORIGINS):
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Allow-Credentials"] = "true"
        resp.headers.add("Vary", "Origin")
    return resp


def _finish(resp: Response) -> Response:
    set_nocache(resp)
    return add_credentialed_cors(resp)


def require_role(*roles: str) -> Callable:
    """Decorator: the route needs a session whose role is in ``roles``
    (``require_role("admin")``, ``require_role("user", "admin")``)."""
    allowed = set(roles)

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def checked(*args, **kwargs):
            token = _bearer()
            if not token:
                raise Unauthorized("Authentication required")
            sess = check_session(decode_session(services().cfg, token))
            if sess.role not in allowed:
                raise Unauthorized("Role not authorized")
            g.ooni_session = sess
            return fn(*args, **kwargs)
        # credentialed answers the 401s too, so that they carry no-cache + CORS.
        route = credentialed(checked)
        route.required_roles = frozenset(allowed)
        openapi.document_session(route)
        return route
    return deco


def credentialed(fn: Callable) -> Callable:
    """Decorator for the auth-aware routes without a role requirement
    (user_register, user_login): answers and errors alike get ``no-cache``
    and the credentialed CORS headers."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            resp = make_response(fn(*args, **kwargs))
        except ApiError as e:
            # Answered here so that errors too carry no-cache + CORS.
            resp = json_response(e.body(), e.status, nocache=True)
        return _finish(resp)
    wrapper.credentialed_cors = True
    return wrapper


def optional_session(fn: Callable) -> Callable:
    """Decorator: sets current_session() when a valid token is sent and
    adds the credentialed CORS headers; never rejects the request."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        g.ooni_session = session_from_request()
        return add_credentialed_cors(make_response(fn(*args, **kwargs)))
    wrapper.credentialed_cors = True
    openapi.document_optional_session(wrapper)
    return wrapper
