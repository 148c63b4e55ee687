"""SQL conditions joined by AND, built with their typed query parameters:
values never reach the SQL text."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Where:
    conditions: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, condition: str, **params: Any) -> None:
        self.conditions.append(condition)
        self.params.update(params)

    def add_if_set(self, condition: str, **params: Any) -> None:
        """``add`` unless the condition's one parameter is None (a filter
        the request left out)."""
        if all(v is not None for v in params.values()):
            self.add(condition, **params)

    def time_window(self, since: dt.datetime | None, until: dt.datetime | None) -> None:
        """measurement_start_time after ``since`` (exclusive) and up to
        ``until`` (inclusive), each when set: the window of the listing
        and of torsf_stats (api.md §4)."""
        self.add_if_set("measurement_start_time > {since:DateTime}", since=since)
        self.add_if_set("measurement_start_time <= {until:DateTime}", until=until)
