"""Incidents, a.k.a. findings (api.md §12, and OONI's findings service as
Explorer uses it today): search with filters, show by id or slug, and
create / update / delete / publish / unpublish.

Users create and edit their own findings, unpublished; admins edit
everything and decide what is published. Anonymous callers only ever see
published findings. Every write runs its read-check-write under the
table's lock, so a delete is never undone by a concurrent edit and an edit
based on a stale copy (its ``update_time``) gets a 409 (issue 16).
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Response, request

from ooni_common.timeutil import utcnow

from ooniapi.core import strict_json
from ooniapi.core.auth import Session, current_session, optional_session, require_role
from ooniapi.core.auth import account_id as email_account_id
from ooniapi.core.body import read_body
from ooniapi.core.context import services
from ooniapi.core.errors import BadRequest, Conflict, Forbidden, NotFound, OoniError
from ooniapi.core.http import json_response
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.rowlock import row_locks
from ooniapi.findings import slug as slugs
from ooniapi.findings import model, store, validate
from ooniapi.findings.validate import InvalidParams

log = logging.getLogger("ooni-api")

bp = ApiBlueprint("incidents", __name__, tag="incidents")

ACTIONS = ("create", "update", "delete", "publish", "unpublish")
LOCK = "incidents"


class OwnershipError(OoniError):
    def __init__(self):
        super().__init__("err_ownership", "Attempted to create, update or delete an item "
                         "beloging to another user", status=403)  # (sic) the legacy text


def known_themes() -> list[str]:
    return services().cfg.get_list("FINDINGS_THEMES", list(validate.DEFAULT_THEMES))


def answer(inc: store.Incident, sess: Session | None, with_text: bool) -> dict[str, Any]:
    """The public key set of OONI's findings service, plus ``v``-era legacy
    keys kept by the callers. The reporter's address is for admins only;
    the creator's account id for admins and the creator."""
    is_admin = sess is not None and sess.role == "admin"
    mine = sess is not None and inc.creator_account_id == sess.account_id
    d: dict[str, Any] = {
        "id": inc.id, "slug": inc.slug, "title": inc.title,
        "short_description": inc.short_description,
    }
    if with_text:
        d["text"] = inc.text
    d.update({
        "reported_by": inc.reported_by,
        "email_address": inc.email_address if is_admin else "",
        "creator_account_id": inc.creator_account_id if (is_admin or mine) else "",
        "event_type": inc.event_type, "published": inc.published,
        "start_time": inc.start_time, "end_time": inc.end_time,
        "create_time": inc.create_time, "update_time": inc.update_time,
        "CCs": inc.CCs, "ASNs": inc.ASNs, "themes": inc.themes, "domains": inc.domains,
        "tags": inc.tags, "links": inc.links, "test_names": inc.test_names,
        "mine": mine,
    })
    return d


@bp.route("/api/v1/incidents/search", methods=["GET"])
@optional_session
def search() -> Response:
    """List findings (incidents), ordered by title
    ---
    parameters:
      - {name: only_mine, in: query, type: boolean, required: false, description: "true: only findings created by the caller (anonymous: none)"}
      - {name: theme, in: query, type: array, items: {type: string}, collectionFormat: multi, required: false, description: "repeatable; findings with any of these themes"}
      - {name: country_code, in: query, type: array, items: {type: string}, collectionFormat: multi, required: false, description: "repeatable; findings about any of these countries"}
      - {name: asn, in: query, type: array, items: {type: string}, collectionFormat: multi, required: false, description: "repeatable (AS1234 or 1234); findings about any of these networks"}
      - {name: domain, in: query, type: array, items: {type: string}, collectionFormat: multi, required: false, description: "repeatable; findings about any of these domains"}
    responses:
      200:
        description: >
          the findings the caller may see (anonymous callers: published only)
          matching every given filter, without their text
        schema:
          type: object
          properties:
            v: {type: integer, enum: [1]}
            incidents:
              type: array
              items: {$ref: "#/definitions/Finding"}
      400:
        description: a bad filter value (the error names the parameter)
        schema: {$ref: "#/definitions/OoniError"}
    """
    f = validate.search_filters(request.args, known_themes())
    sess = current_session()
    with services().metrics.timer("search_list_incidents"):
        rows = store.search(services().db, sess.account_id if sess else None, f)
    return json_response({"v": 1, "incidents": [answer(r, sess, False) for r in rows]},
                         nocache=True)


@bp.route("/api/v1/incidents/show/<incident_id>", methods=["GET"])
@optional_session
def show(incident_id: str) -> Response:
    """One finding (incident) by id or slug, with its text
    ---
    parameters:
      - {name: incident_id, in: path, type: string, required: true, description: "the id (digits) or the slug"}
    responses:
      200:
        description: the finding
        schema:
          type: object
          properties:
            v: {type: integer, enum: [1]}
            incident: {$ref: "#/definitions/FindingWithText"}
      404:
        description: Incident not found (or not visible to the caller)
        schema: {$ref: "#/definitions/Error"}
    """
    sess = current_session()
    inc = None
    if len(incident_id) <= max(validate.MAX_ID, slugs.MAX_SLUG):
        with services().metrics.timer("show_incident"):
            inc = store.find(services().db, incident_id, published_only=sess is None)
    if inc is None:
        raise NotFound("Incident not found")
    return json_response({"v": 1, "incident": answer(inc, sess, True)}, nocache=True)


@bp.route("/api/v1/incidents/<action>", methods=["POST"])
@require_role("user", "admin")
def post_action(action: str) -> Response:
    """Create, update, delete, publish or unpublish a finding (incident)
    ---
    parameters:
      - name: action
        in: path
        type: string
        required: true
        enum: [create, update, delete, publish, unpublish]
        description: >
          create: the server sets id, slug (unless given) and create_time;
          users must send their own email_address and cannot publish.
          update: the finding with its id; users edit only their findings and
          cannot publish; the updater becomes the owner; the slug never
          changes; with update_time (as last read) the edit is refused with
          409 when the finding changed since. delete: {id, email_address}
          (users: their own). publish/unpublish: {id}, admins only.
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/FindingBody'}}
    responses:
      200:
        description: >
          create/update/publish/unpublish: {"r": rows inserted, "id": finding
          id}; delete: {}
        schema: {$ref: "#/definitions/FindingWriteResult"}
      400:
        description: >
          Invalid request (unknown action), err_request_params (an invalid
          body; the error names the field)
        schema: {$ref: "#/definitions/OoniError"}
      403:
        description: >
          err_ownership (a finding of another user), another user's
          email_address, a user publishing
        schema: {$ref: "#/definitions/Error"}
      404:
        description: Incident not found
        schema: {$ref: "#/definitions/Error"}
      409:
        description: >
          the finding changed since the update_time sent, or the slug asked
          for at create is in use; nothing written
        schema: {$ref: "#/definitions/Error"}
    """
    if action not in ACTIONS:
        raise BadRequest("Invalid request")
    sess = current_session()
    body = _read_body()
    db = services().db
    with services().metrics.timer("post_update_incident"):
        if action == "create":
            return _create(db, body, sess)
        incident_id = validate.incident_id(body.get("id"))
        if action == "delete":
            return _delete(db, body, incident_id, sess)
        if action == "update":
            return _update(db, body, incident_id, sess)
        return _set_published(db, incident_id, action == "publish", sess)


def _read_body() -> dict[str, Any]:
    raw = read_body()
    if not raw.strip():
        raise InvalidParams("body", "missing JSON body")
    try:
        body = strict_json.loads(raw)
    except UnicodeError:
        raise InvalidParams("body", "not UTF-8 text") from None
    except ValueError as e:
        surrogate = "surrogate" in str(e)
        raise InvalidParams("body", "unpaired UTF-16 surrogate" if surrogate else "not JSON") from None
    except RecursionError:
        raise InvalidParams("body", "not JSON") from None
    if not isinstance(body, dict):
        raise InvalidParams("body", "not a JSON object")
    return body


def _is_admin(sess: Session) -> bool:
    return sess.role == "admin"


def _check_own_email(body: dict[str, Any], sess: Session) -> None:
    email = body.get("email_address")
    ok = False
    if isinstance(email, str) and email.strip():
        try:
            ok = email_account_id(services().cfg, email) == sess.account_id
        except UnicodeError:
            ok = False
    if not ok:
        raise Forbidden("email_address: not the address of the caller's account")


def _now() -> dt.datetime:
    return utcnow().replace(microsecond=0)


def _finding(body: dict[str, Any], sess: Session) -> validate.FindingInput:
    """A create/update body, refused when a user sends another's address or
    publishes."""
    inp = validate.finding(body, known_themes())
    if not _is_admin(sess):
        _check_own_email(body, sess)
        if inp.published:
            raise Forbidden("published: only admins publish")
    return inp


def _own_incident(db, incident_id: str, sess: Session) -> store.Incident:
    """The incident the caller may edit or delete (users: their own); call
    it holding the table's lock."""
    prev = store.get(db, incident_id)
    if prev is None:
        raise NotFound("Incident not found")
    if not _is_admin(sess) and prev.creator_account_id != sess.account_id:
        raise OwnershipError()
    return prev


def _create(db, body: dict[str, Any], sess: Session) -> Response:
    inp = _finding(body, sess)
    with row_locks().hold(LOCK):
        now = _now()
        if inp.slug is not None:
            if store.slug_taken(db, inp.slug):
                raise Conflict("slug: already used by another finding")
            slug = inp.slug
        else:
            slug = store.free_slug(db, slugs.from_title(now, inp.title))
        incident_id = store.new_id(db, services().cfg.collector_id)
        inc = _incident(inp, incident_id=incident_id, slug=slug, owner=sess.account_id,
                        create_time=now, update_time=now)
        r = store.write(db, inc)
    log.info("incident %s created by %s", incident_id, sess.account_id)
    return json_response({"r": r, "id": incident_id}, nocache=True)


def _update(db, body: dict[str, Any], incident_id: str, sess: Session) -> Response:
    inp = _finding(body, sess)
    with row_locks().hold(LOCK):
        prev = _own_incident(db, incident_id, sess)
        if inp.update_time is not None and inp.update_time != prev.update_time:
            raise Conflict("update_time: the finding was changed since it was read "
                           f"(now {prev.update_time.strftime(validate.TIME_FORMAT)})")
        if inp.slug is not None and inp.slug != prev.slug:
            raise InvalidParams("slug", "cannot be changed")
        # Legacy quirk kept (api.md §19.19): the updater becomes the owner,
        # so an admin's edit transfers the finding to the admin.
        inc = _incident(inp, incident_id=incident_id, slug=prev.slug, owner=sess.account_id,
                        create_time=prev.create_time,
                        update_time=store.next_update_time(_now(), prev.update_time))
        r = store.write(db, inc)
    log.info("incident %s updated by %s", incident_id, sess.account_id)
    return json_response({"r": r, "id": incident_id}, nocache=True)


def _delete(db, body: dict[str, Any], incident_id: str, sess: Session) -> Response:
    if not _is_admin(sess):
        _check_own_email(body, sess)
    with row_locks().hold(LOCK):
        _own_incident(db, incident_id, sess)
        store.delete(db, incident_id)
    log.info("incident %s deleted by %s", incident_id, sess.account_id)
    return json_response({}, nocache=True)


def _set_published(db, incident_id: str, published: bool, sess: Session) -> Response:
    if not _is_admin(sess):
        raise Forbidden("only admins publish or unpublish")
    with row_locks().hold(LOCK):
        inc = store.get(db, incident_id)
        if inc is None:
            raise NotFound("Incident not found")
        inc.published = published
        inc.update_time = store.next_update_time(_now(), inc.update_time)
        r = store.write(db, inc)
    log.info("incident %s %s", incident_id, "published" if published else "unpublished")
    return json_response({"r": r, "id": incident_id}, nocache=True)


def _incident(inp: validate.FindingInput, *, incident_id: str, slug: str, owner: str,
              create_time: dt.datetime, update_time: dt.datetime) -> store.Incident:
    return store.Incident(**model.content_of(inp), id=incident_id, slug=slug,
                          creator_account_id=owner, create_time=create_time,
                          update_time=update_time)
