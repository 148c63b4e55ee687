"""The WHERE conditions of an aggregation request's filters on ``fastpath``
columns, written once for the raw query (routes.py) and the daily summary
(summary.py). Values travel as typed query parameters, never in SQL text."""
from __future__ import annotations

from typing import Any, Iterable

# AggregationQuery field -> its condition, in the order of the WHERE clause.
# ``since`` is inclusive and ``until`` exclusive (api.md §5.1).
CONDITIONS = {
    "probe_cc": "probe_cc IN {probe_cc:Array(String)}",
    "probe_asn": "probe_asn IN {probe_asn:Array(UInt32)}",
    "test_name": "test_name IN {test_name:Array(String)}",
    "domain": "domain IN {domain:Array(String)}",
    "input": "input = {input:String}",
    "ooni_run_link_id": "ooni_run_link_id IN {ooni_run_link_id:Array(UInt64)}",
    "since": "measurement_start_time >= {since:DateTime}",
    "until": "measurement_start_time < {until:DateTime}",
}


def conditions(q: Any, names: Iterable[str], p: dict[str, Any]) -> list[str]:
    """The conditions of the filters ``names`` that the query ``q`` (an
    ``AggregationQuery``) sets: a list filter when not empty, any other
    when not None. Each value is stored in ``p`` under the filter's name."""
    out = []
    for name in names:
        value = getattr(q, name)
        if value is None or value == []:
            continue
        out.append(CONDITIONS[name])
        p[name] = value
    return out
