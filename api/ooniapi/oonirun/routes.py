"""OONI Run (api.md §11): the private routes of the OONI Run UI, and the
probe-facing ``/api/v2/oonirun/links/<id>`` (probe-protocol.md §3.15)."""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from flask import Blueprint, Response, request

from ooni_common.timeutil import utcnow

from ooniapi.core import strict_json
from ooniapi.core.auth import current_session, optional_session, require_role
from ooniapi.core.context import services
from ooniapi.core.errors import BadRequest, NotFound
from ooniapi.core.http import json_response
from ooniapi.core.params import UINT64_MAX, uint_value
from ooniapi.oonirun import descriptor as desc
from ooniapi.oonirun import store

log = logging.getLogger("ooni-api")

bp = Blueprint("oonirun", __name__)

# DateTime64(3) stores 1900-01-01 .. 2299-12-31; a creation_time outside
# cannot name a stored version.
_MIN_TIME = dt.datetime(1900, 1, 1)
_MAX_TIME = dt.datetime(2299, 12, 31)

_FALSE_FLAGS = ("false", "0", "no")


def _flag(name: str) -> bool:
    """Legacy: any non-empty value is true; [NEW] false/0/no are false."""
    v = (request.args.get(name) or "").strip().lower()
    return bool(v) and v not in _FALSE_FLAGS


def _link_id(value: str | None) -> int:
    link_id = uint_value((value or "").strip(), UINT64_MAX)
    if link_id is None:
        raise BadRequest(f"Invalid ooni_run_link_id: {value!r}")
    return link_id


def _read_descriptor() -> tuple[dict[str, Any], str]:
    """The request's descriptor and the JSON text to store. Bad JSON, NaN,
    deep nesting and lone surrogates are 400s: the stored text must be valid
    UTF-8 JSON that the probe and the UI can decode."""
    raw = request.get_data(cache=False)
    try:
        doc = strict_json.loads(raw)
        text = json.dumps(doc, ensure_ascii=False)
        text.encode("utf-8")
    except (ValueError, RecursionError, UnicodeError):
        raise BadRequest("The request body must be a JSON object (an OONI Run descriptor)") from None
    return desc.validate(doc), text


@bp.route("/api/_/ooni_run/create", methods=["POST"])
@require_role("user", "admin")
def create() -> Response:
    """Create an OONI Run link, or a new version of one of the caller's links
    ---
    tags: [oonirun]
    security: [{bearer: []}]
    parameters:
      - {name: Authorization, in: header, type: string, required: true, description: "Bearer session token"}
      - name: ooni_run_link_id
        in: query
        type: integer
        required: false
        description: >
          update this link (it must have been created by the caller). A change
          of nettests, author or icon makes a new descriptor version; other
          changes only update the translations of the current version.
      - in: body
        name: body
        required: true
        description: the OONI Run descriptor
        schema:
          type: object
          required: [name, author]
          properties:
            name: {type: string}
            name_intl: {type: object, additionalProperties: {type: string}}
            short_description: {type: string}
            short_description_intl: {type: object, additionalProperties: {type: string}}
            description: {type: string}
            description_intl: {type: object, additionalProperties: {type: string}}
            icon: {type: string}
            author: {type: string}
            nettests:
              type: array
              items:
                type: object
                required: [test_name]
                properties:
                  test_name: {type: string}
                  inputs: {type: array, items: {type: string}}
                  options: {type: object}
    responses:
      200:
        description: the link id
        schema:
          type: object
          properties:
            v: {type: integer, enum: [1]}
            ooni_run_link_id: {type: integer}
      400:
        description: >
          invalid descriptor ('name' field must not be empty, err_str
          err_empty_translation_field, ...) or "OONIRun descriptor not found"
          for an update of a link the caller did not create
        schema: {$ref: "#/definitions/Error"}
      401:
        description: authentication required
        schema: {$ref: "#/definitions/Error"}
    """
    sess = current_session()
    # Legacy UIs sent the id as ``id``.
    raw_id = request.args.get("ooni_run_link_id") or request.args.get("id")
    link_id = _link_id(raw_id) if raw_id else None
    descriptor, text = _read_descriptor()
    db = services().db
    now = desc.to_db_time(utcnow())
    archived = False
    if link_id is None:
        link_id = store.new_id(db, services().cfg.collector_id)
        descriptor_creation_time = now
    else:
        prev = store.latest_by_creator(db, link_id, sess.account_id)
        if prev is None:
            raise BadRequest("OONIRun descriptor not found")
        descriptor_creation_time = (now if desc.is_structural_change(prev.descriptor, descriptor)
                                    else prev.descriptor_creation_time)
        # an archived link stays archived through later edits
        archived = prev.archived
    store.insert_version(db, link_id, descriptor, text, sess.account_id,
                         descriptor_creation_time, now, archived)
    log.info("oonirun link %d saved (descriptor %s)", link_id, descriptor_creation_time)
    return json_response({"v": 1, "ooni_run_link_id": link_id}, nocache=True)


@bp.route("/api/_/ooni_run/archive/<int:ooni_run_link_id>", methods=["POST"])
@require_role("user", "admin")
def archive(ooni_run_link_id: int) -> Response:
    """Archive every version of an OONI Run link
    ---
    tags: [oonirun]
    security: [{bearer: []}]
    parameters:
      - {name: Authorization, in: header, type: string, required: true, description: "Bearer session token"}
      - {name: ooni_run_link_id, in: path, type: integer, required: true}
    responses:
      200:
        description: >
          done; users archive only links they created (other ids are left
          untouched, silently), admins any link
        schema:
          type: object
          properties:
            v: {type: integer, enum: [1]}
      401:
        description: authentication required
        schema: {$ref: "#/definitions/Error"}
    """
    sess = current_session()
    if ooni_run_link_id <= UINT64_MAX:
        store.archive(services().db, ooni_run_link_id,
                      None if sess.role == "admin" else sess.account_id)
    return json_response({"v": 1}, nocache=True)


@bp.route("/api/_/ooni_run/fetch/<int:ooni_run_link_id>", methods=["GET"])
@optional_session
def fetch(ooni_run_link_id: int) -> Response:
    """Fetch an OONI Run descriptor: the newest version or the one created at creation_time
    ---
    tags: [oonirun]
    parameters:
      - {name: ooni_run_link_id, in: path, type: integer, required: true}
      - name: creation_time
        in: query
        type: string
        required: false
        description: a descriptor_creation_time returned by this API
        x-example: "2023-07-21T16:36:12.456000Z"
      - {name: Authorization, in: header, type: string, required: false, description: "Bearer session token (sets mine)"}
    responses:
      200:
        description: the descriptor and its metadata
        schema:
          type: object
          properties:
            v: {type: integer, enum: [1]}
            archived: {type: boolean}
            mine: {type: boolean}
            descriptor: {type: object}
            descriptor_creation_time: {type: string}
            translation_creation_time: {type: string}
      400:
        description: invalid creation_time, or "oonirun descriptor not found"
        schema: {$ref: "#/definitions/Error"}
    """
    ct_raw = request.args.get("creation_time")
    ct = desc.parse_creation_time(ct_raw) if ct_raw else None
    found = None
    if ooni_run_link_id <= UINT64_MAX and (ct is None or _MIN_TIME <= ct <= _MAX_TIME):
        with services().metrics.timer("fetch_oonirun_descriptor"):
            found = store.fetch(services().db, ooni_run_link_id, ct)
    if found is None:
        raise BadRequest("oonirun descriptor not found")
    sess = current_session()
    return json_response({
        "v": 1,
        "archived": found.archived,
        "mine": sess is not None and sess.account_id == found.creator_account_id,
        "descriptor": found.descriptor,
        "descriptor_creation_time": found.descriptor_creation_time,
        "translation_creation_time": found.translation_creation_time,
    }, max_age=3600)


@bp.route("/api/_/ooni_run/list", methods=["GET"])
@optional_session
def list_links() -> Response:
    """List OONI Run descriptor versions
    ---
    tags: [oonirun]
    parameters:
      - {name: ooni_run_link_id, in: query, type: string, required: false, description: "comma separated link ids"}
      - {name: ids, in: query, type: string, required: false, description: "alias of ooni_run_link_id"}
      - {name: only_latest, in: query, type: string, required: false, description: "only the latest version of each link (false, 0, no: off)"}
      - {name: only_mine, in: query, type: string, required: false, description: "only links created by the caller"}
      - {name: include_archived, in: query, type: string, required: false, description: "include archived links"}
      - {name: Authorization, in: header, type: string, required: false, description: "Bearer session token (sets mine)"}
    responses:
      200:
        description: one item per stored version, oldest first
        schema:
          type: object
          properties:
            v: {type: integer, enum: [1]}
            descriptors:
              type: array
              items:
                type: object
                properties:
                  ooni_run_link_id: {type: integer}
                  archived: {type: boolean}
                  author: {type: string}
                  icon: {type: string}
                  mine: {type: boolean}
                  name: {type: string}
                  short_description: {type: string}
                  descriptor_creation_time: {type: string}
                  translation_creation_time: {type: string}
      400:
        description: invalid ooni_run_link_id list
        schema: {$ref: "#/definitions/Error"}
    """
    ids = set()
    for name in ("ooni_run_link_id", "ids"):
        for item in (request.args.get(name) or "").split(","):
            if item.strip():
                ids.add(_link_id(item))
    sess = current_session()
    items = store.list_versions(
        services().db, account_id=sess.account_id if sess else None, ids=sorted(ids),
        only_latest=_flag("only_latest"), only_mine=_flag("only_mine"),
        include_archived=_flag("include_archived"))
    return json_response({"v": 1, "descriptors": [vars(i) for i in items]}, nocache=True)


# --- probe-facing (probe-protocol.md §3.15) ------------------------------------

def _probe_link(link_id_raw: str, revision_raw: str | None) -> dict[str, Any]:
    link_id = uint_value(link_id_raw.strip(), UINT64_MAX)
    if link_id is None:
        raise NotFound("OONI Run link not found")
    rev = (revision_raw or "").strip().lower()
    asked = None
    if rev not in ("", "latest"):
        asked = uint_value(rev, UINT64_MAX) if len(rev) <= 9 else None
        if not asked:
            raise BadRequest(f"Invalid revision: {revision_raw!r}")
    all_versions = store.versions(services().db, link_id)
    if not all_versions:
        raise NotFound("OONI Run link not found")
    revision = asked or len(all_versions)
    if revision > len(all_versions):
        raise NotFound("OONI Run link revision not found")
    ver = all_versions[revision - 1]
    # Texts, translations and the archived flag are the link's, from its
    # newest write; the nettests are those of the revision asked for.
    newest = all_versions[-1]
    sess = current_session()
    return desc.probe_link(
        link_id, newest.descriptor, ver.descriptor.get("nettests"), revision=revision,
        date_created=ver.descriptor_creation_time,
        date_updated=newest.translation_creation_time,
        archived=newest.archived,
        mine=sess is not None and sess.account_id == newest.creator_account_id)


@bp.route("/api/v2/oonirun/links/<link_id>", methods=["GET"])
@optional_session
def probe_link(link_id: str) -> Response:
    """OONI Run link as the probe decodes it: the descriptor at the top level
    ---
    tags: [oonirun]
    parameters:
      - {name: link_id, in: path, type: string, required: true, description: "the ooni_run_link_id"}
      - {name: revision, in: query, type: string, required: false, description: "1, 2, ... or latest (default): nettests of that descriptor version"}
      - {name: Authorization, in: header, type: string, required: false, description: "Bearer session token (sets is_mine)"}
    responses:
      200:
        description: the descriptor
        schema:
          type: object
          properties:
            oonirun_link_id: {type: string}
            name: {type: string}
            name_intl: {type: object}
            short_description: {type: string}
            description: {type: string}
            author: {type: string}
            icon: {type: string}
            revision: {type: string, description: "1 for the first descriptor version"}
            date_created: {type: string, description: "creation time of this descriptor version"}
            date_updated: {type: string, description: "time of the latest translation update"}
            is_archived: {type: boolean}
            is_expired: {type: boolean, description: "true once archived"}
            is_mine: {type: boolean}
            nettests:
              type: array
              items:
                type: object
                properties:
                  test_name: {type: string}
                  inputs: {type: array, items: {type: string}}
                  inputs_extra: {type: array, items: {type: object}}
                  targets_name: {type: string}
                  options: {type: object}
                  is_background_run_enabled: {type: boolean, x-nullable: true}
                  is_manual_run_enabled: {type: boolean, x-nullable: true}
                  is_background_run_enabled_default: {type: boolean}
                  is_manual_run_enabled_default: {type: boolean}
      400:
        description: invalid revision
        schema: {$ref: "#/definitions/Error"}
      404:
        description: unknown link or revision
        schema: {$ref: "#/definitions/Error"}
    """
    # Personal (is_mine) and a changed descriptor must reach the probe at once.
    return json_response(_probe_link(link_id, request.args.get("revision")), nocache=True)


@bp.route("/api/v2/oonirun/links/<link_id>/engine-descriptor/<revision>", methods=["POST"])
@optional_session
def probe_engine_descriptor(link_id: str, revision: str) -> Response:
    """OONI Run link for the probe engine, at a revision (or latest)
    ---
    tags: [oonirun]
    parameters:
      - {name: link_id, in: path, type: string, required: true, description: "the ooni_run_link_id"}
      - {name: revision, in: path, type: string, required: true, description: "1, 2, ... or latest"}
      - in: body
        name: body
        required: false
        description: >
          the probe's run metadata (is_charging, run_type, probe_cc,
          probe_asn, network_type, website_category_codes); accepted and
          not used: stored inputs are served as they are
        schema: {type: object}
    responses:
      200:
        description: the descriptor, as GET /api/v2/oonirun/links/{link_id} answers it
        schema: {type: object}
      400:
        description: invalid revision or body
        schema: {$ref: "#/definitions/Error"}
      404:
        description: unknown link or revision
        schema: {$ref: "#/definitions/Error"}
    """
    raw = request.get_data(cache=False)
    if raw.strip():
        try:
            meta = json.loads(raw)
        except (ValueError, RecursionError):
            meta = None
        if not isinstance(meta, dict):
            raise BadRequest("The request body must be a JSON object")
    return json_response(_probe_link(link_id, revision), nocache=True)


@bp.route("/api/v2/oonirun/links/<link_id>/revisions", methods=["GET"])
def probe_link_revisions(link_id: str) -> Response:
    """Revisions of an OONI Run link, newest first
    ---
    tags: [oonirun]
    parameters:
      - {name: link_id, in: path, type: string, required: true, description: "the ooni_run_link_id"}
    responses:
      200:
        description: the revision numbers, as strings
        schema:
          type: object
          properties:
            revisions: {type: array, items: {type: string}}
      404:
        description: unknown link
        schema: {$ref: "#/definitions/Error"}
    """
    n = uint_value(link_id.strip(), UINT64_MAX)
    count = len(store.versions(services().db, n)) if n is not None else 0
    if not count:
        raise NotFound("OONI Run link not found")
    return json_response({"revisions": [str(n) for n in range(count, 0, -1)]}, nocache=True)
