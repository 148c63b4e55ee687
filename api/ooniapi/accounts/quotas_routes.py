"""``GET /api/_/quotas_summary``: the clients closest to their daily quota
(api.md §6, §13), for operators investigating heavy queries."""
from __future__ import annotations

from flask import current_app

from ooniapi.core.auth import require_role
from ooniapi.core.http import json_response
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.ratelimit import limiter

bp = ApiBlueprint("quotas", __name__, tag="private")


@bp.route("/api/_/quotas_summary")
@require_role("admin")
def quotas_summary():
    """Up to 20 client keys with the lowest remaining daily quota.
    ---
    summary: Lowest remaining daily rate-limit quotas (admin only)
    responses:
      200: {description: "Pairs of [client key, remaining seconds], ascending by remaining seconds. A client key is an IPv4 /24 or IPv6 /64 network, or `account:<account_id>` for token accounts.", schema: {$ref: '#/definitions/QuotasSummary'}}
    """
    return json_response(limiter(current_app).lowest_daily(20), nocache=True)
