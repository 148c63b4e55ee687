"""The shapes of a finding that validation (``validate``) and the
``incidents`` table (``store``) share: what a client writes, and the
filters of a search."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(kw_only=True)
class FindingContent:
    """The fields a create/update body sets (times naive UTC)."""
    title: str
    short_description: str
    text: str
    reported_by: str
    email_address: str
    event_type: str
    published: bool
    start_time: dt.datetime
    end_time: dt.datetime | None
    CCs: list[str] = field(default_factory=list)
    ASNs: list[int] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    test_names: list[str] = field(default_factory=list)


def content_of(finding: FindingContent) -> dict[str, Any]:
    """The content fields of ``finding`` as keyword arguments, to build
    another kind of finding (a validated body becomes a stored incident)."""
    return {f.name: getattr(finding, f.name) for f in fields(FindingContent)}


@dataclass(frozen=True)
class SearchFilters:
    """Filters of a search: within a filter any value matches, across
    filters all must."""
    only_mine: bool = False
    themes: tuple[str, ...] = ()
    country_codes: tuple[str, ...] = ()
    asns: tuple[int, ...] = ()
    domains: tuple[str, ...] = ()
