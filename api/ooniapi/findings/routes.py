"""Incidents, a.k.a. findings (api.md §12): search, show, and create /
update / delete / publish / unpublish.

Users create and edit their own incidents, unpublished; admins edit
everything and decide what is published. Anonymous callers only ever see
published incidents.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from flask import Blueprint, Response, request

from ooni_common.timeutil import utcnow

from ooniapi.core import strict_json
from ooniapi.core.auth import Session, current_session, optional_session, require_role
from ooniapi.core.auth import account_id as email_account_id
from ooniapi.core.context import services
from ooniapi.core.errors import BadRequest, OoniError
from ooniapi.core.http import json_response
from ooniapi.core.params import UINT32_MAX, asn_value, parse_bool_flag
from ooniapi.findings import store

log = logging.getLogger("ooni-api")

bp = Blueprint("incidents", __name__)

ACTIONS = ("create", "update", "delete", "publish", "unpublish")

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The range of a ClickHouse DateTime.
_MIN_TIME = dt.datetime(1970, 1, 2)
_MAX_TIME = dt.datetime(2106, 2, 6)

# The key set of a create/update body once creator_account_id is added
# (api.md §12.3).
INCIDENT_KEYS = frozenset({
    "ASNs", "CCs", "create_time", "creator_account_id", "domains", "email_address",
    "end_time", "event_type", "id", "links", "published", "reported_by",
    "short_description", "start_time", "tags", "test_names", "text", "title"})

# Bounds that keep one incident a reasonable row for Explorer to render.
MAX_TITLE = 300
MAX_SHORT_DESCRIPTION = 2000
MAX_TEXT = 200_000
MAX_SHORT_FIELD = 200
MAX_EMAIL = 254
MAX_LIST_ITEMS = 1000
MAX_LIST_ITEM = 2000
MAX_ID = 64

_CC_RE = re.compile(r"^[A-Za-z]{2}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Explorer renders links as anchors: only web links, never javascript: & co.
_LINK_RE = re.compile(r"^https?://\S+$", re.IGNORECASE)
_TEST_NAME_RE = re.compile(r"^[a-z0-9_]{1,64}$")
_NO_SPACE_RE = re.compile(r"^\S+$")


class InvalidParams(OoniError):
    def __init__(self, why: str):
        # The reason goes to the log; the answer keeps the stable legacy text.
        log.info("invalid incident request: %s", why)
        super().__init__("err_request_params", "Invalid parameters in the request")


class OwnershipError(OoniError):
    def __init__(self):
        super().__init__("err_ownership", "Attempted to create, update or delete an item "
                         "beloging to another user")  # (sic) the legacy text


# --- body validation ---------------------------------------------------------

def _text(name: str, v: Any, max_len: int, required: bool = False) -> str:
    if not isinstance(v, str):
        raise InvalidParams(f"{name} must be a string")
    if required and not v.strip():
        raise InvalidParams(f"{name} must not be empty")
    if len(v) > max_len:
        raise InvalidParams(f"{name} longer than {max_len} characters")
    try:
        v.encode("utf-8")
    except UnicodeError:
        raise InvalidParams(f"{name} is not valid UTF-8") from None
    return v


def _time(name: str, v: Any) -> dt.datetime:
    if not isinstance(v, str):
        raise InvalidParams(f"{name} must be a YYYY-MM-DDTHH:MM:SSZ string")
    try:
        t = dt.datetime.strptime(v, TIME_FORMAT)
    except ValueError:
        raise InvalidParams(f"{name} must be a YYYY-MM-DDTHH:MM:SSZ string") from None
    if not _MIN_TIME <= t <= _MAX_TIME:
        raise InvalidParams(f"{name} out of range")
    return t


def _list(name: str, v: Any) -> list:
    if not isinstance(v, list):
        raise InvalidParams(f"{name} must be a list")
    if len(v) > MAX_LIST_ITEMS:
        raise InvalidParams(f"{name} has more than {MAX_LIST_ITEMS} items")
    return v


def _strings(name: str, v: Any, pattern: re.Pattern | None = None) -> list[str]:
    out = []
    for item in _list(name, v):
        s = _text(name, item, MAX_LIST_ITEM, required=True)
        if pattern is not None and not pattern.match(s):
            raise InvalidParams(f"invalid item in {name}: {s!r}")
        out.append(s)
    return out


def _ccs(v: Any) -> list[str]:
    out = []
    for item in _list("CCs", v):
        if not isinstance(item, str) or not _CC_RE.match(item):
            raise InvalidParams(f"invalid country code {item!r}")
        out.append(item.upper())
    return out


def _asns(v: Any) -> list[int]:
    out = []
    for item in _list("ASNs", v):
        if isinstance(item, int) and not isinstance(item, bool):
            asn = item if 0 <= item <= UINT32_MAX else None
        else:
            asn = asn_value(item) if isinstance(item, str) else None
        if asn is None:
            raise InvalidParams(f"invalid ASN {item!r}")
        out.append(asn)
    return out


def _published(v: Any) -> bool:
    """Coerced to 0/1 as legacy does with int(); default false."""
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip() in ("0", "1"):
        return v.strip() == "1"
    raise InvalidParams(f"invalid published value {v!r}")


def _email(v: Any) -> str:
    s = _text("email_address", v, MAX_EMAIL, required=True).strip()
    if not _EMAIL_RE.match(s):
        raise InvalidParams("invalid email_address")
    return s


def _incident_id(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise InvalidParams("id must be a string")
    s = str(v).strip()
    if not s or len(s) > MAX_ID:
        raise InvalidParams("invalid id")
    return s


def validate_incident(body: dict[str, Any], *, incident_id: str, account_id: str,
                      now: dt.datetime) -> store.Incident:
    """A create/update body (with ``id`` and ``create_time`` already set) as
    an Incident owned by ``account_id``; InvalidParams on any bad field."""
    keys = set(body) | {"creator_account_id"}
    if keys != INCIDENT_KEYS:
        missing = sorted(INCIDENT_KEYS - keys)
        unknown = sorted(keys - INCIDENT_KEYS)
        raise InvalidParams(f"missing keys {missing}, unknown keys {unknown}")
    start_time = _time("start_time", body["start_time"])
    end_time = None if body["end_time"] is None else _time("end_time", body["end_time"])
    if end_time is not None and end_time < start_time:
        raise InvalidParams("end_time before start_time")
    return store.Incident(
        id=incident_id,
        title=_text("title", body["title"], MAX_TITLE, required=True),
        short_description=_text("short_description", body["short_description"],
                                MAX_SHORT_DESCRIPTION),
        text=_text("text", body["text"], MAX_TEXT, required=True),
        reported_by=_text("reported_by", body["reported_by"], MAX_SHORT_FIELD),
        email_address=_email(body["email_address"]),
        event_type=_text("event_type", body["event_type"], MAX_SHORT_FIELD, required=True),
        published=_published(body["published"]),
        start_time=start_time,
        end_time=end_time,
        create_time=_time("create_time", body["create_time"]),
        update_time=now,
        creator_account_id=account_id,
        CCs=_ccs(body["CCs"]),
        ASNs=_asns(body["ASNs"]),
        domains=_strings("domains", body["domains"], _NO_SPACE_RE),
        tags=_strings("tags", body["tags"]),
        links=_strings("links", body["links"], _LINK_RE),
        test_names=_strings("test_names", body["test_names"], _TEST_NAME_RE),
    )


def _read_body() -> dict[str, Any]:
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise InvalidParams("missing JSON body")
    try:
        body = strict_json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidParams("body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidParams("body is not a JSON object")
    return body


def _email_matches(body: dict[str, Any], sess: Session) -> bool:
    email = body.get("email_address")
    if not isinstance(email, str) or not email.strip():
        return False
    try:
        return email_account_id(services().cfg, email) == sess.account_id
    except UnicodeError:
        return False


# --- routes --------------------------------------------------------------------



def _visible(only_mine: bool, incident_id: str | None = None,
             include_text: bool = False) -> list[dict[str, Any]]:
    sess = current_session()
    rows = store.list_visible(services().db, account_id=sess.account_id if sess else None,
                              only_mine=only_mine, include_text=include_text,
                              incident_id=incident_id)
    if sess is None or sess.role != "admin":
        for r in rows:
            r["email_address"] = None
    return rows


@bp.route("/api/v1/incidents/search", methods=["GET"])
@optional_session
def search() -> Response:
    """List incidents (findings), ordered by title
    ---
    tags: [incidents]
    parameters:
      - {name: only_mine, in: query, type: string, required: false, description: "true: only incidents created by the caller (anonymous: none)"}
      - {name: Authorization, in: header, type: string, required: false, description: "Bearer session token: unpublished incidents, mine, email_address for admins"}
    responses:
      200:
        description: >
          the incidents the caller may see (anonymous callers: published only),
          without their text
        schema:
          type: object
          properties:
            v: {type: integer, enum: [1]}
            incidents:
              type: array
              items: {$ref: "#/definitions/Incident"}
    definitions:
      Incident:
        type: object
        properties:
          id: {type: string}
          title: {type: string}
          short_description: {type: string}
          reported_by: {type: string}
          email_address: {type: string, x-nullable: true, description: "null unless the caller is admin"}
          event_type: {type: string}
          published: {type: boolean}
          start_time: {type: string, example: "2023-01-01T00:00:00Z"}
          end_time: {type: string, x-nullable: true}
          create_time: {type: string}
          update_time: {type: string}
          CCs: {type: array, items: {type: string}}
          ASNs: {type: array, items: {type: integer}}
          domains: {type: array, items: {type: string}}
          tags: {type: array, items: {type: string}}
          links: {type: array, items: {type: string}}
          test_names: {type: array, items: {type: string}}
          mine: {type: integer, enum: [0, 1]}
    """
    only_mine = bool(parse_bool_flag(request.args.get("only_mine")))
    with services().metrics.timer("search_list_incidents"):
        if only_mine and current_session() is None:
            return json_response({"v": 1, "incidents": []}, nocache=True)
        rows = _visible(only_mine)
    return json_response({"v": 1, "incidents": rows}, nocache=True)


@bp.route("/api/v1/incidents/show/<incident_id>", methods=["GET"])
@optional_session
def show(incident_id: str) -> Response:
    """One incident (finding), with its text
    ---
    tags: [incidents]
    parameters:
      - {name: incident_id, in: path, type: string, required: true}
      - {name: Authorization, in: header, type: string, required: false, description: "Bearer session token: unpublished incidents, mine, email_address for admins"}
    responses:
      200:
        description: the incident
        schema:
          type: object
          properties:
            v: {type: integer, enum: [1]}
            incident:
              allOf:
                - {$ref: "#/definitions/Incident"}
                - type: object
                  properties:
                    text: {type: string, description: markdown}
      400:
        description: Incident not found (or not visible to the caller)
        schema: {$ref: "#/definitions/Error"}
    """
    with services().metrics.timer("show_incident"):
        rows = _visible(False, incident_id=incident_id, include_text=True) \
            if len(incident_id) <= MAX_ID else []
    if not rows:
        raise BadRequest("Incident not found")
    return json_response({"v": 1, "incident": rows[0]}, nocache=True)


@bp.route("/api/v1/incidents/<action>", methods=["POST"])
@require_role("user", "admin")
def post_action(action: str) -> Response:
    """Create, update, delete, publish or unpublish an incident (finding)
    ---
    tags: [incidents]
    security: [{bearer: []}]
    parameters:
      - {name: Authorization, in: header, type: string, required: true, description: "Bearer session token"}
      - name: action
        in: path
        type: string
        required: true
        enum: [create, update, delete, publish, unpublish]
        description: >
          create: the server sets id and create_time; users must send their own
          email_address and cannot publish. update: the whole incident with id
          and create_time; users edit only their incidents and cannot publish;
          the updater becomes the owner. delete: {id} (users: their own, with
          their email_address). publish/unpublish: {id}, admins only.
      - in: body
        name: body
        required: true
        schema:
          type: object
          properties:
            id: {type: string}
            title: {type: string}
            short_description: {type: string}
            text: {type: string, description: markdown}
            reported_by: {type: string}
            email_address: {type: string}
            event_type: {type: string, example: incident}
            published: {type: boolean}
            start_time: {type: string, example: "2023-01-01T00:00:00Z"}
            end_time: {type: string, x-nullable: true}
            create_time: {type: string}
            CCs: {type: array, items: {type: string}}
            ASNs: {type: array, items: {type: integer}}
            domains: {type: array, items: {type: string}}
            tags: {type: array, items: {type: string}}
            links: {type: array, items: {type: string}}
            test_names: {type: array, items: {type: string}}
    responses:
      200:
        description: >
          create/update/publish/unpublish: {"r": rows inserted, "id": incident id};
          delete: {}
        schema:
          type: object
          properties:
            r: {type: integer}
            id: {type: string}
      400:
        description: >
          Invalid request (unknown action), err_request_params (invalid body or
          not allowed), err_ownership (an incident of another user), Incident
          not found
        schema: {$ref: "#/definitions/Error"}
      401:
        description: authentication required
        schema: {$ref: "#/definitions/Error"}
    """
    if action not in ACTIONS:
        raise BadRequest("Invalid request")
    sess = current_session()
    is_admin = sess.role == "admin"
    body = _read_body()
    db = services().db
    now = utcnow().replace(microsecond=0)
    with services().metrics.timer("post_update_incident"):
        if action == "create":
            return _create(db, body, sess, is_admin, now)
        if "id" not in body or body["id"] is None:
            raise InvalidParams("id missing")
        incident_id = _incident_id(body["id"])
        if not is_admin:
            if store.owned_by_other(db, incident_id, sess.account_id):
                raise OwnershipError()
            if not _email_matches(body, sess):
                raise InvalidParams("email_address does not belong to the caller")
        if action == "delete":
            store.delete(db, incident_id)
            log.info("incident %s deleted by %s", incident_id, sess.account_id)
            return json_response({}, nocache=True)
        if action == "update":
            return _update(db, body, incident_id, sess, is_admin, now)
        return _set_published(db, incident_id, action == "publish", is_admin, now)


def _create(db, body: dict[str, Any], sess: Session, is_admin: bool,
            now: dt.datetime) -> Response:
    body = dict(body)
    body["published"] = _published(body.get("published"))
    if not is_admin:
        if not _email_matches(body, sess):
            raise InvalidParams("email_address does not belong to the caller")
        if body["published"]:
            raise InvalidParams("only admins publish")
    incident_id = store.new_id(db, services().cfg.collector_id)
    body["id"] = incident_id
    body["create_time"] = now.strftime(TIME_FORMAT)
    body.pop("creator_account_id", None)
    inc = validate_incident(body, incident_id=incident_id, account_id=sess.account_id, now=now)
    r = store.write(db, inc)
    log.info("incident %s created by %s", incident_id, sess.account_id)
    return json_response({"r": r, "id": incident_id}, nocache=True)


def _update(db, body: dict[str, Any], incident_id: str, sess: Session, is_admin: bool,
            now: dt.datetime) -> Response:
    body = dict(body)
    body["published"] = _published(body.get("published"))
    if not is_admin and body["published"]:
        raise InvalidParams("only admins publish")
    body.pop("creator_account_id", None)
    # Legacy quirk kept (api.md §19.19): the updater becomes the owner, so an
    # admin's edit transfers the incident to the admin.
    inc = validate_incident(body, incident_id=incident_id, account_id=sess.account_id, now=now)
    prev = store.get(db, incident_id)
    if prev is None:
        raise BadRequest("Incident not found")
    # create_time is the server's, set once at create; a later timestamp
    # keeps the new version the winner even if this host's clock lags.
    inc.create_time = prev.create_time
    inc.update_time = max(now, prev.update_time)
    r = store.write(db, inc)
    log.info("incident %s updated by %s", incident_id, sess.account_id)
    return json_response({"r": r, "id": incident_id}, nocache=True)


def _set_published(db, incident_id: str, published: bool, is_admin: bool,
                   now: dt.datetime) -> Response:
    if not is_admin:
        raise InvalidParams("only admins publish or unpublish")
    inc = store.get(db, incident_id)
    if inc is None:
        raise BadRequest("Incident not found")
    inc.published = published
    inc.update_time = max(now, inc.update_time)
    r = store.write(db, inc)
    log.info("incident %s %s", incident_id, "published" if published else "unpublished")
    return json_response({"r": r, "id": incident_id}, nocache=True)
