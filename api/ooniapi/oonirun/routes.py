"""OONI Run (api.md §11): the private routes of the OONI Run UI, and the
probe-facing ``/api/v2/oonirun/links/<id>`` (probe-protocol.md §3.15)."""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from flask import Response, request

from ooni_common.db import DatabaseError
from ooni_common.timeutil import utcnow

from ooniapi.core import strict_json
from ooniapi.core.auth import current_session, optional_session, require_role
from ooniapi.core.body import read_body
from ooniapi.core.context import services
from ooniapi.core.errors import ApiError, BadRequest, Forbidden, NotFound, StorageUnavailable
from ooniapi.core.http import json_response
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.params import UINT64_MAX, parse_int, uint_value
from ooniapi.oonirun import descriptor as desc
from ooniapi.oonirun import dynamic_lists, link, store
from ooniapi.oonirun.link import LinkState

log = logging.getLogger("ooni-api")

bp = ApiBlueprint("oonirun", __name__, tag="oonirun")

# DateTime64(3) stores 1900-01-01 .. 2299-12-31; a creation_time outside
# cannot name a stored version.
_MIN_TIME = dt.datetime(1900, 1, 1)
_MAX_TIME = dt.datetime(2299, 12, 31)

_FALSE_FLAGS = ("false", "0", "no")
# DateTime64(3): a later write must differ by at least this much to sort after.
_TICK = dt.timedelta(milliseconds=1)


def init_app(app) -> None:
    svc = app.extensions["ooni"]
    svc.extras["oonirun_locks"] = store.LinkLocks()
    svc.extras["oonirun_engine_cache"] = store.VersionsCache(
        ttl=svc.cfg.get_float("OONIRUN_ENGINE_CACHE_SECONDS", 2.0))


def _locks() -> store.LinkLocks:
    return services().extras["oonirun_locks"]


def _written(link_id: int) -> None:
    """After every write of a link: this process serves it fresh at once."""
    services().extras["oonirun_engine_cache"].invalidate(link_id)


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
    raw = read_body()
    try:
        doc = strict_json.loads(raw)
        text = json.dumps(doc, ensure_ascii=False)
        text.encode("utf-8")
    except (ValueError, RecursionError, UnicodeError):
        raise BadRequest("The request body must be a JSON object (an OONI Run descriptor)") from None
    return desc.validate(doc), text


def _write_version(link_id: int, vs: list[store.Version], descriptor: dict[str, Any], text: str,
                   *, creator: str, now: dt.datetime, new_revision: bool,
                   archived: bool) -> dt.datetime:
    """Stores the next version of a link whose versions were read as ``vs``,
    or 409 when another write reached the link since. Both creation times
    move past the previous version's (a later write must sort after it);
    the descriptor's only for a ``new_revision``. Returns the descriptor's."""
    prev = vs[-1]
    descriptor_creation_time = (max(now, prev.descriptor_creation_time + _TICK)
                                if new_revision else prev.descriptor_creation_time)
    translation_creation_time = max(now, prev.translation_creation_time + _TICK)
    db = services().db
    with _locks().of(link_id):
        store.check_unchanged(db, link_id, store.head_of(vs))
        store.insert_version(db, link_id, descriptor, text, creator, descriptor_creation_time,
                             translation_creation_time, archived)
    _written(link_id)
    return descriptor_creation_time


@bp.route("/api/_/ooni_run/create", methods=["POST"])
@require_role("user", "admin")
def create() -> Response:
    """Create an OONI Run link, or a new version of one of the caller's links
    ---
    parameters:
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
            name_intl: {$ref: "#/definitions/OONIRunIntl"}
            short_description: {type: string}
            short_description_intl: {$ref: "#/definitions/OONIRunIntl"}
            description: {type: string}
            description_intl: {$ref: "#/definitions/OONIRunIntl"}
            icon: {type: string}
            author: {type: string}
            nettests: {type: array, items: {$ref: "#/definitions/OONIRunNettest"}}
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
    """
    sess = current_session()
    # Legacy UIs sent the id as ``id``.
    raw_id = request.args.get("ooni_run_link_id") or request.args.get("id")
    link_id = _link_id(raw_id) if raw_id else None
    descriptor, text = _read_descriptor()
    link.check_v1_fields(descriptor, dynamic_lists.TARGETS_NAMES)
    db = services().db
    now = desc.to_db_time(utcnow())
    if link_id is None:
        link_id = store.new_id(db, services().cfg.collector_id)
        store.insert_version(db, link_id, descriptor, text, sess.account_id, now, now, False)
        log.info("oonirun link %d created", link_id)
        return json_response({"v": 1, "ooni_run_link_id": link_id}, nocache=True)
    vs = store.versions(db, link_id)
    if not vs or vs[-1].creator_account_id != sess.account_id:
        raise BadRequest("OONIRun descriptor not found")
    prev = vs[-1]
    if "expiration_date" not in descriptor and "expiration_date" in prev.descriptor:
        # a v1 UI does not know the field: keep what a v2 edit set
        descriptor["expiration_date"] = prev.descriptor["expiration_date"]
        text = json.dumps(descriptor, ensure_ascii=False)
    # an archived link stays archived through later edits
    descriptor_creation_time = _write_version(
        link_id, vs, descriptor, text, creator=sess.account_id, now=now,
        new_revision=desc.is_structural_change(prev.descriptor, descriptor),
        archived=any(v.archived for v in vs))
    log.info("oonirun link %d saved (descriptor %s)", link_id, descriptor_creation_time)
    return json_response({"v": 1, "ooni_run_link_id": link_id}, nocache=True)


@bp.route("/api/_/ooni_run/archive/<int:ooni_run_link_id>", methods=["POST"])
@require_role("user", "admin")
def archive(ooni_run_link_id: int) -> Response:
    """Archive every version of an OONI Run link
    ---
    parameters:
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
    """
    sess = current_session()
    if ooni_run_link_id <= UINT64_MAX:
        with _locks().of(ooni_run_link_id):
            store.archive(services().db, ooni_run_link_id,
                          None if sess.role == "admin" else sess.account_id)
        _written(ooni_run_link_id)
    return json_response({"v": 1}, nocache=True)


@bp.route("/api/_/ooni_run/fetch/<int:ooni_run_link_id>", methods=["GET"])
@optional_session
def fetch(ooni_run_link_id: int) -> Response:
    """Fetch an OONI Run descriptor: the newest version or the one created at creation_time
    ---
    parameters:
      - {name: ooni_run_link_id, in: path, type: integer, required: true}
      - name: creation_time
        in: query
        type: string
        required: false
        description: a descriptor_creation_time returned by this API
        x-example: "2023-07-21T16:36:12.456000Z"
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
    parameters:
      - {name: ooni_run_link_id, in: query, type: string, required: false, description: "comma separated link ids"}
      - {name: ids, in: query, type: string, required: false, description: "alias of ooni_run_link_id"}
      - {name: only_latest, in: query, type: string, required: false, description: "only the latest version of each link (false, 0, no: off)"}
      - {name: only_mine, in: query, type: string, required: false, description: "only links created by the caller"}
      - {name: include_archived, in: query, type: string, required: false, description: "include archived links"}
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


# --- OONI Run v2 (run.ooni.org, the probes; docs/oonirun.md) ------------------

MAX_V2_BODY = 1024 * 1024
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}
LIST_MAX_LIMIT = 1000


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    """A v2 request body: a JSON object of at most MAX_V2_BODY bytes, else
    a 400 that says ``what`` was expected."""
    if len(raw) > MAX_V2_BODY:
        raise BadRequest(f"Request body too large (limit {MAX_V2_BODY} bytes)")
    try:
        doc = strict_json.loads(raw)
    except (ValueError, RecursionError, UnicodeError):
        doc = None
    if not isinstance(doc, dict):
        raise BadRequest(f"The request body must be a JSON object ({what})")
    return doc


def _v2_body() -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_V2_BODY:
        raise BadRequest(f"Request body too large (limit {MAX_V2_BODY} bytes)")
    return _json_object(read_body(), "an OONI Run link")


def _descriptor_text(d: dict[str, Any]) -> str:
    text = json.dumps(d, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeError:
        raise BadRequest("The OONI Run link holds invalid text (a lone UTF-16 surrogate)") \
            from None
    return text


def _v2_link_id(value: str) -> int:
    link_id = uint_value(value.strip(), UINT64_MAX)
    if link_id is None:
        raise NotFound("OONI Run link not found")
    return link_id


def _revision(value: str | None) -> int | None:
    """``latest`` (or nothing): None; else a positive revision number."""
    rev = (value or "").strip().lower()
    if rev in ("", "latest"):
        return None
    n = uint_value(rev, UINT64_MAX) if len(rev) <= 9 else None
    if not n:
        raise BadRequest(f"Invalid revision: {value[:20]!r}: must be 'latest' or a number")
    return n


def _query_bool(name: str, default: bool) -> bool:
    v = request.args.get(name)
    if v is None or not v.strip():
        return default
    b = _BOOL_WORDS.get(v.strip().lower())
    if b is None:
        raise BadRequest(f"Invalid {name}: expected true or false")
    return b


def _state(vs: list[store.Version], revision: int | None) -> LinkState:
    """The link whose stored versions are ``vs`` at ``revision`` (None: the
    latest); 404 when there is no such link or revision."""
    if not vs:
        raise NotFound("OONI Run link not found")
    if revision is not None and revision > len(vs):
        raise NotFound("OONI Run link revision not found")
    return store.link_state(vs, revision)


def _load(link_id: int, revision: int | None) -> LinkState:
    return _state(store.versions(services().db, link_id), revision)


def _is_mine(state: LinkState) -> bool:
    sess = current_session()
    return sess is not None and sess.account_id == state.creator_account_id


def _check_author(author: str, status: int) -> None:
    """A user links under their own address (upstream's rule); sessions
    issued before ooniauth v2 carry none and are not checked."""
    sess = current_session()
    if sess.email_address and author.strip().lower() != sess.email_address.lower():
        raise ApiError("'author' field must be the e-mail address you logged in with", status)


@bp.route("/api/v2/oonirun/links", methods=["POST"])
@require_role("user", "admin")
def v2_create() -> Response:
    """Create an OONI Run link (v2)
    ---
    parameters:
      - in: body
        name: body
        required: true
        description: >
          the link; expiration_date defaults to 180 days from now and must be
          in the future; a nettest has either inputs (with inputs_extra of
          the same length) or a targets_name
        schema: {$ref: "#/definitions/OONIRunLinkEdit"}
    responses:
      200:
        description: the new link, revision 1
        schema: {$ref: "#/definitions/OONIRunLink"}
      400:
        description: a bad field (named in the error), or author is not the caller's address
        schema: {$ref: "#/definitions/Error"}
    """
    sess = current_session()
    edit = link.parse_edit(_v2_body(), dynamic_lists.TARGETS_NAMES)
    _check_author(edit.author, 400)
    now = desc.to_db_time(utcnow())
    d = link.to_descriptor(edit, link.expiration_for_create(edit.expiration_date, now))
    text = _descriptor_text(d)
    db = services().db
    link_id = store.new_id(db, services().cfg.collector_id)
    store.insert_version(db, link_id, d, text, sess.account_id, now, now, False)
    log.info("oonirun link %d created (v2)", link_id)
    state = _load(link_id, None)
    return json_response(link.answer(state, mine=True, now=now), nocache=True)


@bp.route("/api/v2/oonirun/links/<link_id>", methods=["PUT"])
@require_role("user", "admin")
def v2_edit(link_id: str) -> Response:
    """Edit an OONI Run link (v2): new nettests make a new revision
    ---
    parameters:
      - {name: link_id, in: path, type: string, required: true}
      - in: body
        name: body
        required: true
        description: >
          the whole link (keys of the answer such as revision or is_mine are
          ignored); without expiration_date the current one is kept; a time
          in the last hour expires the link now; older is refused
        schema: {$ref: "#/definitions/OONIRunLinkEdit"}
    responses:
      200:
        description: the link after the edit
        schema: {$ref: "#/definitions/OONIRunLink"}
      400:
        description: a bad field (named in the error)
        schema: {$ref: "#/definitions/Error"}
      403:
        description: the link has expired (or was archived), or a user set an author other than their address
        schema: {$ref: "#/definitions/Error"}
      404:
        description: no such link among the caller's (admins edit any)
        schema: {$ref: "#/definitions/Error"}
      409:
        description: another write (an archive, a concurrent edit) reached the link meanwhile; nothing written
        schema: {$ref: "#/definitions/Error"}
    """
    sess = current_session()
    lid = _v2_link_id(link_id)
    edit = link.parse_edit(_v2_body(), dynamic_lists.TARGETS_NAMES)
    if sess.role != "admin":
        _check_author(edit.author, 403)
    db = services().db
    vs = store.versions(db, lid)
    if not vs or (sess.role != "admin" and vs[-1].creator_account_id != sess.account_id):
        raise NotFound("OONI Run link not found")
    state = store.link_state(vs)
    now = desc.to_db_time(utcnow())
    if state.is_expired(now):
        raise Forbidden("OONI Run link has expired and cannot be edited")
    expiration = link.expiration_for_edit(edit.expiration_date, state.expiration(), now)
    d = link.to_descriptor(edit, expiration)
    text = _descriptor_text(d)
    prev = vs[-1]
    new_revision = (link.comparable_nettests(prev.descriptor.get("nettests"))
                    != link.comparable_nettests(edit.nettests))
    _write_version(lid, vs, d, text, creator=prev.creator_account_id, now=now,
                   new_revision=new_revision, archived=False)
    log.info("oonirun link %d edited (v2, %s)", lid,
             "new revision" if new_revision else "same revision")
    state = _load(lid, None)
    return json_response(link.answer(state, mine=_is_mine(state), now=now), nocache=True)


@bp.route("/api/v2/oonirun/links", methods=["GET"])
@optional_session
def v2_list() -> Response:
    """List OONI Run links (v2), newest first
    ---
    parameters:
      - {name: is_mine, in: query, type: boolean, required: false, description: "only the caller's links (none when anonymous)"}
      - {name: is_expired, in: query, type: boolean, required: false, description: "also expired (and archived) links"}
      - {name: only_latest, in: query, type: boolean, required: false, default: true, description: "false: one item per revision"}
      - {name: limit, in: query, type: integer, required: false, description: "at most this many items (1-1000; default all)"}
      - {name: offset, in: query, type: integer, required: false, description: "skip this many items"}
    responses:
      200:
        description: the links
        schema:
          type: object
          properties:
            oonirun_links: {type: array, items: {$ref: "#/definitions/OONIRunLink"}}
      400:
        description: a bad query parameter (named in the error)
        schema: {$ref: "#/definitions/Error"}
    """
    is_mine = _query_bool("is_mine", False)
    include_expired = _query_bool("is_expired", False)
    only_latest = _query_bool("only_latest", True)
    limit = parse_int("limit", request.args.get("limit"), 0, 1, LIST_MAX_LIMIT)
    offset = parse_int("offset", request.args.get("offset"), 0, 0, 10**9)
    sess = current_session()
    if is_mine and sess is None:
        return json_response({"oonirun_links": []}, nocache=True)
    links = store.all_links(services().db, sess.account_id if is_mine else None)
    now = utcnow()
    items = []
    # newest link first; its revisions newest first
    for vs in sorted(links.values(),
                     key=lambda vs: (vs[0].descriptor_creation_time, vs[0].ooni_run_link_id),
                     reverse=True):
        latest = store.link_state(vs)
        if not include_expired and latest.is_expired(now):
            continue
        revisions = [len(vs)] if only_latest else range(len(vs), 0, -1)
        for rev in revisions:
            state = latest if rev == len(vs) else store.link_state(vs, rev)
            items.append(link.answer(state, mine=_is_mine(state), now=now))
    items = items[offset:offset + limit] if limit else items[offset:]
    return json_response({"oonirun_links": items}, nocache=True)


@bp.route("/api/v2/oonirun/links/<link_id>", methods=["GET"])
@optional_session
def probe_link(link_id: str) -> Response:
    """An OONI Run link (v2), as run.ooni.org and the probes read it
    ---
    parameters:
      - {name: link_id, in: path, type: string, required: true, description: "the ooni_run_link_id"}
      - {name: revision, in: query, type: string, required: false, description: "1, 2, ... or latest (default): nettests and date_created of that revision"}
    responses:
      200:
        description: >
          the link: texts, translations, expiration from the newest write,
          nettests of the revision; dynamic lists (targets_name) are not
          resolved here (see engine-descriptor)
        schema: {$ref: "#/definitions/OONIRunLink"}
      400:
        description: invalid revision
        schema: {$ref: "#/definitions/Error"}
      404:
        description: unknown link or revision
        schema: {$ref: "#/definitions/Error"}
    """
    state = _load(_v2_link_id(link_id), _revision(request.args.get("revision")))
    # Personal (is_mine) and a changed descriptor must reach the probe at once.
    return json_response(link.answer(state, mine=_is_mine(state), now=utcnow()), nocache=True)


@bp.route("/api/v2/oonirun/links/<link_id>/full-descriptor/<revision>", methods=["GET"])
@optional_session
def v2_full_descriptor(link_id: str, revision: str) -> Response:
    """An OONI Run link at a revision (v2)
    ---
    parameters:
      - {name: link_id, in: path, type: string, required: true}
      - {name: revision, in: path, type: string, required: true, description: "1, 2, ... or latest"}
    responses:
      200:
        description: the link, as GET /api/v2/oonirun/links/{link_id}?revision= answers it
        schema: {$ref: "#/definitions/OONIRunLink"}
      400:
        description: invalid revision
        schema: {$ref: "#/definitions/Error"}
      404:
        description: unknown link or revision
        schema: {$ref: "#/definitions/Error"}
    """
    rev = _revision(revision)
    state = _load(_v2_link_id(link_id), rev)
    return json_response(link.answer(state, mine=_is_mine(state), now=utcnow()), nocache=True)


def _resolved_nettests(state: LinkState, meta: dynamic_lists.ProbeMeta) -> list[dict[str, Any]]:
    """The revision's nettests with each dynamic list resolved for this
    probe: ``inputs`` and ``inputs_extra`` filled, ``targets_name`` emptied
    (a probe given both would fail, as upstream notes)."""
    svc = services()
    out = []
    for nt in link.answer_nettests(state):
        name = nt.get("targets_name")
        if name in dynamic_lists.TARGETS_NAMES:
            try:
                with svc.metrics.timer("oonirun_dynamic_list"):
                    nt["inputs"], nt["inputs_extra"] = dynamic_lists.resolve(svc, name, meta)
            except DatabaseError as e:
                log.error("dynamic list %s for %s AS%d failed: %s", name, meta.probe_cc,
                          meta.probe_asn, e)
                raise StorageUnavailable("The test list cannot be generated now; retry later") \
                    from None
            nt["targets_name"] = ""
        out.append(nt)
    return out


@bp.route("/api/v2/oonirun/links/<link_id>/engine-descriptor/<revision>", methods=["POST"])
@optional_session
def probe_engine_descriptor(link_id: str, revision: str) -> Response:
    """An OONI Run link for the probe engine, dynamic lists resolved for the probe
    ---
    parameters:
      - {name: link_id, in: path, type: string, required: true, description: "the ooni_run_link_id"}
      - {name: revision, in: path, type: string, required: true, description: "1, 2, ... or latest"}
      - {name: x-ooni-networkinfo, in: header, type: string, required: false, description: "<probe_asn>,<probe_cc> (<network_type>), e.g. AS30722,IT (wifi): used for fields the body lacks"}
      - {name: User-Agent, in: header, type: string, required: false, description: "<software>/<version> (<platform>) <engine>/<version>; counted in metrics only"}
      - in: body
        name: body
        required: false
        description: >
          the probe's run metadata; every field optional (run_type timed,
          is_charging true, probe_cc ZZ, probe_asn AS0 by default), each
          checked when present
        schema: {$ref: "#/definitions/OONIRunProbeMeta"}
    responses:
      200:
        description: >
          the link at that revision (revision, date_created, nettests and
          the other keys of GET /api/v2/oonirun/links/{link_id}); a nettest
          with a targets_name gets the inputs and inputs_extra
          (category_code, country_code) the check-in would give this probe
        schema: {$ref: "#/definitions/OONIRunLink"}
      400:
        description: invalid revision, body, run_type, network_type, probe_cc, probe_asn, category codes or x-ooni-networkinfo
        schema: {$ref: "#/definitions/Error"}
      404:
        description: unknown link or revision
        schema: {$ref: "#/definitions/Error"}
      503:
        description: the dynamic list could not be generated (database unavailable)
        schema: {$ref: "#/definitions/Error"}
    """
    rev = _revision(revision)
    lid = _v2_link_id(link_id)
    raw = read_body()
    # every field is optional: so is the body
    body = _json_object(raw, "the probe's run metadata") if raw.strip() else {}
    meta = dynamic_lists.parse_meta(body, request.headers.get("x-ooni-networkinfo"))
    ua = dynamic_lists.parse_user_agent(request.headers.get("User-Agent"))
    state = _state(services().extras["oonirun_engine_cache"].get(services().db, lid), rev)
    services().metrics.incr("oonirun_engine_descriptor."
                            + (ua.software_name if ua else "unknown_software"))
    out = link.answer(state, mine=_is_mine(state), now=utcnow(),
                      nettests=_resolved_nettests(state, meta))
    return json_response(out, nocache=True)


@bp.route("/api/v2/oonirun/links/<link_id>/revisions", methods=["GET"])
def probe_link_revisions(link_id: str) -> Response:
    """Revisions of an OONI Run link, newest first
    ---
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
    count = len(store.versions(services().db, _v2_link_id(link_id)))
    if not count:
        raise NotFound("OONI Run link not found")
    return json_response({"revisions": [str(n) for n in range(count, 0, -1)]}, nocache=True)
