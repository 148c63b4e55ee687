"""The findings routes in the OpenAPI spec: the new parameters and fields,
through the shared definitions of core/openapi.py."""
from __future__ import annotations

from ooniapi.core.openapi import SPEC_ROUTE


def test_findings_operations_use_shared_definitions(client):
    doc = client.get(SPEC_ROUTE).get_json()
    defs = doc["definitions"]
    assert {"slug", "themes", "mine", "creator_account_id"} <= set(defs["Finding"]["properties"])
    assert defs["Finding"]["properties"]["mine"]["type"] == "boolean"
    assert "themes" in defs["FindingBody"]["properties"]

    search = doc["paths"]["/api/v1/incidents/search"]["get"]
    names = {p.get("name") for p in search["parameters"]}
    assert {"$ref": "#/parameters/OptionalSession"} in search["parameters"]
    assert {"only_mine", "theme", "country_code", "asn", "domain"} <= names
    items = search["responses"]["200"]["schema"]["properties"]["incidents"]["items"]
    assert items == {"$ref": "#/definitions/Finding"}

    show = doc["paths"]["/api/v1/incidents/show/{incident_id}"]["get"]
    assert show["responses"]["200"]["schema"]["properties"]["incident"] == {
        "$ref": "#/definitions/FindingWithText"}
    assert "404" in show["responses"]

    post = doc["paths"]["/api/v1/incidents/{action}"]["post"]
    [body] = [p for p in post["parameters"] if p.get("in") == "body"]
    assert body["schema"] == {"$ref": "#/definitions/FindingBody"}
    assert {"200", "400", "401", "403", "404", "409"} <= set(post["responses"])
