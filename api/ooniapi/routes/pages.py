"""Landing page, health check, robots.txt and legacy redirects (api.md §3)."""
from __future__ import annotations

from flask import Blueprint, Response

from ..context import services

bp = Blueprint("pages", __name__)


@bp.route("/health")
def health() -> Response:
    """Health check: ``UP`` when the database answers.
    ---
    tags: [pages]
    responses:
      200:
        description: the service and its database are up
      503:
        description: the database does not answer
    """
    if not services().db.ping():
        return Response("DOWN: database unreachable\n", status=503, mimetype="text/plain")
    return Response("UP", mimetype="text/plain")
