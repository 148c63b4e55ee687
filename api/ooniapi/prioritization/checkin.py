"""What other areas ask of prioritization: the ranked URL list a probe gets
(check-in, OONI Run dynamic lists) and how long it may be."""
from __future__ import annotations

from typing import Iterable

from ooniapi.core.context import Services, services
from ooniapi.prioritization.cache import Prioritizer
from ooniapi.prioritization.rules import url_limit

__all__ = ["prioritizer", "test_list", "url_limit"]


def prioritizer() -> Prioritizer:
    return services().extras["prioritizer"]


def test_list(svc: Services, cc: str, asn: int, category_codes: Iterable[str] | None,
              limit: int) -> list[dict]:
    """The prioritized URLs a probe of network (cc, asn) gets, from the
    per-process ranking cache. Raises DatabaseError when no ranking can be
    built."""
    return svc.extras["prioritizer"].test_list(svc.db, cc, asn, category_codes, limit)
