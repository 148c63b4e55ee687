"""Response helpers: JSON encoding (api.md §1.2) and caching headers (§1.4)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, current_app
from flask.json.provider import DefaultJSONProvider

from ooni_common.timeutil import iso_z

from ooniapi.core.text import check_unicode


class OoniJSONProvider(DefaultJSONProvider):
    """Datetimes as ``2021-07-09T00:55:13Z``, dates as ``YYYY-MM-DD``."""

    sort_keys = False
    ensure_ascii = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, dt.datetime):
            return iso_z(o)
        if isinstance(o, dt.date):
            return o.isoformat()
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        return DefaultJSONProvider.default(o)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        # Deeply nested input exhausts the parser's stack; as a ValueError
        # it is bad JSON for request.get_json (a 400), not a 500.
        try:
            doc = super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        check_unicode(doc)
        return doc


def json_response(obj: Any, status: int = 200, max_age: int | None = None,
                  nocache: bool = False, headers: dict[str, str] | None = None) -> Response:
    body = current_app.json.dumps(obj)
    resp = Response(body + "\n", status=status, mimetype="application/json", headers=headers)
    if nocache:
        set_nocache(resp)
    elif max_age is not None:
        set_cached(resp, max_age)
    return resp


def set_cached(resp: Response, seconds: int) -> Response:
    resp.headers["Cache-Control"] = f"max-age={int(seconds)}"
    return resp


def set_nocache(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-cache, max-age=0"
    return resp


def base_url() -> str:
    """Where this API is reached, for the absolute links it hands out
    (``next_url``). Never the request's Host header: a client chooses that,
    and the answer is cached for everyone."""
    cfg = current_app.extensions["ooni"].cfg
    url = cfg.get_str("BASE_URL", "")
    if not url:
        url = f"http://{cfg.get_str('LISTEN_HOST', '127.0.0.1')}:{cfg.get_int('LISTEN_PORT', 8000)}/"
    return url if url.endswith("/") else url + "/"

