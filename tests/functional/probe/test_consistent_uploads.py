"""POST /report/<report_id> refuses a body that contradicts its report id
(issue 11): before, such a body was stored with a uid saying IT and a
fastpath row saying DE."""
from __future__ import annotations

import json

import pytest

from ooni_common.spool import Spool

RID = "20210709T004340Z_webconnectivity_IT_30722_n1_YCM7J9mGcEHds2K3"
JSON = {"Content-Type": "application/json"}
GOOD = {"report_id": RID, "probe_cc": "IT", "probe_asn": "AS30722",
        "test_name": "web_connectivity", "input": "https://example.org/"}


def spooled(cfg) -> list:
    return sorted(p.name for p in Spool(cfg.spool_dir).root.rglob("*") if p.is_file())


def post(client, content, **wrapper):
    return client.post(f"/report/{RID}", headers=JSON,
                       data=json.dumps({"format": "json", "content": content, **wrapper}))


@pytest.mark.parametrize("field,value", [
    ("probe_cc", "DE"),
    ("probe_asn", "AS3320"),
    ("test_name", "ndt"),
    ("probe_cc", 7),
    ("probe_asn", "bogus"),
    ("test_name", ["web_connectivity"]),
])
def test_inconsistent_field_alone(client, cfg, notifier, field, value):
    r = post(client, {**GOOD, field: value})
    assert (r.status_code, r.get_json()) == (400, {"error": "Inconsistent measurement"})
    assert spooled(cfg) == [] and notifier.calls == []


@pytest.mark.parametrize("change", [
    {},
    {"probe_cc": "it"},                          # case differs only
    {"test_name": "WebConnectivity"},            # legacy spelling of the same test
    {"probe_asn": "as30722"},
])
def test_consistent_is_stored(client, cfg, notifier, change):
    r = post(client, {**GOOD, **change})
    assert r.status_code == 200, r.data
    uid = r.get_json()["measurement_uid"]
    assert "_IT_webconnectivity_" in uid and len(notifier.calls) == 1


def test_absent_fields_are_not_contradictions(client, cfg):
    r = post(client, {"report_id": RID, "input": "https://example.org/"})
    assert r.status_code == 200


def test_probe_cannot_claim_verified(client, cfg, notifier):
    r = post(client, GOOD, is_verified="t")
    assert r.status_code == 400 and "is_verified" in r.get_json()["error"]
    assert spooled(cfg) == [] and notifier.calls == []
    assert post(client, GOOD, is_verified="u").status_code == 200


def test_inconsistency_is_counted(client, app):
    m = app.extensions["ooni"].metrics
    post(client, {**GOOD, "probe_asn": "AS1"})
    assert {k: v for k, v in m.counters.items() if "inconsistent_measurement" in k} == {
        f"{m.prefix}.inconsistent_measurement_probe_asn": 1}
