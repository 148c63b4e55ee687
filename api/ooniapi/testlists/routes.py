"""The test-list editor routes (api.md §10.2-10.4), called by
test-lists.ooni.org with a user session. The contract is in
docs/testlists.md."""
from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response

from ooniapi.core import strict_json
from ooniapi.core.auth import current_session, require_role
from ooniapi.core.body import read_body
from ooniapi.core.context import services
from ooniapi.core.errors import Forbidden
from ooniapi.core.http import json_response
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.testlists import csv_rows, errors
from ooniapi.testlists.editor import Editor
from ooniapi.testlists.working_copy import Settings

log = logging.getLogger("ooni-api.testlists")

bp = ApiBlueprint("testlists", __name__, tag="testlists")

EXTRA = "testlists.editor"
MAX_BODY = 64 * 1024
_ACCOUNT_RE = re.compile(r"[A-Za-z0-9]{1,128}")


def init_app(app: Flask) -> None:
    svc = app.extensions["ooni"]
    svc.extras[EXTRA] = Editor.from_settings(Settings.from_config(svc.cfg), svc.metrics)


def editor() -> Editor:
    return services().extras[EXTRA]


def _account_id() -> str:
    sess = current_session()
    assert sess is not None
    aid = sess.account_id
    # It names a directory and a branch: plain ASCII only.
    if not _ACCOUNT_RE.fullmatch(aid):
        raise Forbidden("This account cannot use the test-list editor")
    return aid


def _body() -> dict[str, Any]:
    raw = read_body()
    if len(raw) > MAX_BODY:
        raise errors.bad_params(f"request body larger than {MAX_BODY} bytes")
    try:
        body = strict_json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError, UnicodeError):
        raise errors.bad_params("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise errors.bad_params("the request body must be a JSON object")
    return body


@bp.route("/api/_/url-submission/test-list/<country_code>", methods=["GET"])
@require_role("user", "admin")
def test_list(country_code: str) -> Response:
    """The caller's view of a country's test list, with its editing state
    ---
    parameters:
      - {name: country_code, in: path, type: string, required: true, description: "two letters (any case) or global"}
    responses:
      200: {description: "test_list is the caller's working copy of lists/<cc>.csv when it has unsubmitted or open changes, else upstream's; null when there is no list for that country. changes lists the caller's changes per country; pr_url is set in state PR_OPEN.", schema: {$ref: '#/definitions/TestList'}}
      400: {description: "err_invalid_country_code", schema: {$ref: '#/definitions/Error'}}
      409: {description: "err_account_busy (another request of the account is running)", schema: {$ref: '#/definitions/Error'}}
      503: {description: "the test-lists repository could not be fetched for the first time", schema: {$ref: '#/definitions/Error'}}
    """
    cc = csv_rows.country_code(country_code)
    v = editor().view(_account_id(), cc)
    return json_response({"test_list": v.test_list, "changes": v.changes, "state": v.state,
                          "pr_url": v.pr_url}, nocache=True)


@bp.route("/api/v1/url-submission/update-url", methods=["POST"])
@require_role("user", "admin")
def update_url() -> Response:
    """Add, edit or delete one entry of a test list (committed in the caller's working copy)
    ---
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/UpdateUrlBody'}, description: "old_entry empty or absent: add new_entry; new_entry empty or absent: delete old_entry; both: replace old_entry (which must match the current row exactly) with new_entry.
"}
    responses:
      200: {description: "the new entry as sent", schema: {$ref: '#/definitions/UpdateUrl'}}
      400: {description: "err_request_params, err_invalid_country_code, err_country_not_supported, err_bad_url, err_bad_category_code, err_bad_date, err_no_proposed_changes, err_duplicate_url, err_cannot_update_list (old_entry is not the current row), err_cannot_close_pr", schema: {$ref: '#/definitions/Error'}}
      409: {description: "err_account_busy", schema: {$ref: '#/definitions/Error'}}
      503: {description: "GitHub or the test-lists repository is unreachable; nothing changed", schema: {$ref: '#/definitions/Error'}}
    """
    aid = _account_id()
    body = _body()
    if "country_code" not in body:
        raise errors.bad_params("country_code is required")
    cc = csv_rows.country_code(body["country_code"])
    old = csv_rows.parse_entry(body.get("old_entry"), "old_entry", proposed=False)
    new = csv_rows.parse_entry(body.get("new_entry"), "new_entry", proposed=True)
    comment = csv_rows.comment(body.get("comment"))
    editor().update(aid, cc, old, new, comment)
    return json_response({"updated_entry": body.get("new_entry") or None}, nocache=True)


@bp.route("/api/v1/url-submission/submit", methods=["POST"])
@require_role("user", "admin")
def submit() -> Response:
    """Propose the caller's changes: push its branch and open a GitHub pull request
    ---
    responses:
      200: {description: "the pull request's API URL", schema: {$ref: '#/definitions/Submit'}}
      400: {description: "err_no_proposed_changes (nothing to submit)", schema: {$ref: '#/definitions/Error'}}
      409: {description: "err_pr_already_open, err_account_busy", schema: {$ref: '#/definitions/Error'}}
      503: {description: "GitHub or the fork is unreachable or refused; the changes stay in state IN_PROGRESS and the submit can be retried", schema: {$ref: '#/definitions/Error'}}
    """
    pr = editor().submit(_account_id())
    return json_response({"pr_id": pr.api_url}, nocache=True)
