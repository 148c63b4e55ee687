"""``GET /api/_/quotas_summary``: the clients closest to their daily quota
(api.md §6, §13), for operators investigating heavy queries."""
from __future__ import annotations

from flask import Blueprint, current_app

from ooniapi.core.auth import require_role
from ooniapi.core.http import json_response
from ooniapi.core.ratelimit import limiter

bp = Blueprint("quotas", __name__)


@bp.route("/api/_/quotas_summary")
@require_role("admin")
def quotas_summary():
    """Up to 20 client keys with the lowest remaining daily quota.
    ---
    tags: [private]
    summary: Lowest remaining daily rate-limit quotas (admin only)
    security:
      - bearer: []
    responses:
      200: {description: "Pairs of [client key, remaining seconds], ascending by remaining seconds. A client key is an IPv4 /24 or IPv6 /64 network, or `account:<account_id>` for token accounts.", schema: {$ref: '#/definitions/QuotasSummary'}}
      401: {$ref: '#/responses/SessionRequired'}
    """
    return json_response(limiter(current_app).lowest_daily(20), nocache=True)
