"""Reading a request body whose size the client may misstate.

Werkzeug trusts a body that ends early when the server marks its input as
terminated (gunicorn does), and silently cuts a chunked body at the size
cap. So the app's limit is set one byte above the cap (``create_app``) and
the body is checked here: a cut body is over the cap (413), a body shorter
than its Content-Length is incomplete (400). Neither is ever stored."""
from __future__ import annotations

from flask import current_app, request
from werkzeug.exceptions import ClientDisconnected

from ooniapi.core.errors import BadRequest, PayloadTooLarge

CAP_KEY = "OONI_MAX_BODY"


def body_cap() -> int:
    return current_app.config[CAP_KEY]


def read_body(cap: int | None = None, *, cache: bool = False) -> bytes:
    cap = body_cap() if cap is None else cap
    declared = request.content_length
    if declared is not None and declared > cap:
        raise PayloadTooLarge(f"Request body too large (limit {cap} bytes)")
    data = _read_with_deadline(cache)
    if len(data) > cap:
        raise PayloadTooLarge(f"Request body too large (limit {cap} bytes)")
    if declared is not None and len(data) < declared:
        raise BadRequest("Incomplete request body: shorter than its Content-Length")
    return data


def _read_with_deadline(cache: bool) -> bytes:
    """Under gunicorn, a client that stalls mid-body would hold its thread
    for as long as it keeps the connection open: every read of the body
    gets API_READ_TIMEOUT (the standalone server sets it on all reads)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        return request.get_data(cache=cache)
    before = sock.gettimeout()
    sock.settimeout(current_app.extensions["ooni"].cfg.get_float("API_READ_TIMEOUT", 30.0))
    try:
        data = request.get_data(cache=cache)
    except (TimeoutError, ClientDisconnected):
        raise BadRequest("Request body not received in time") from None
    sock.settimeout(before)
    return data

