"""The OpenAPI spec documents every route the app serves."""
from __future__ import annotations

import re

from openapi_spec_validator import validate

from ooniapi.core.openapi import OPENAPI_ROUTE, OWN_ENDPOINTS, SPEC_ROUTE, UI_ROUTE

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def swagger_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def spec(client) -> dict:
    r = client.get(SPEC_ROUTE)
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    return r.get_json()


def test_every_route_is_documented(app, client):
    doc = spec(client)
    assert doc["swagger"] == "2.0"
    paths = doc["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(OWN_ENDPOINTS):
            continue
        ops = paths.get(swagger_path(rule.rule), {})
        for method in sorted(rule.methods - IGNORED_METHODS):
            op = ops.get(method.lower())
            if not op:
                missing.append(f"{method} {rule.rule} ({rule.endpoint}): not in the spec")
            elif not op.get("responses"):
                missing.append(f"{method} {rule.rule} ({rule.endpoint}): no responses")
            elif not (op.get("summary") or op.get("description")):
                missing.append(f"{method} {rule.rule} ({rule.endpoint}): no summary")
    assert not missing, "routes without OpenAPI documentation:\n" + "\n".join(missing)


def operations(app, doc: dict):
    """(rule, method, operation, view) for every documented route."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(OWN_ENDPOINTS):
            continue
        ops = doc["paths"][swagger_path(rule.rule)]
        for method in sorted(rule.methods - IGNORED_METHODS):
            yield rule, method, ops[method.lower()], app.view_functions[rule.endpoint]


def test_each_route_is_listed_under_its_areas_tag(app, client):
    wrong = [f"{m} {rule.rule}: {op.get('tags')}"
             for rule, m, op, _ in operations(app, spec(client))
             if op.get("tags") != [app.blueprints[rule.endpoint.rsplit(".", 1)[0]].tag]]
    assert not wrong, "\n".join(wrong)


def test_session_routes_document_the_session_they_refuse_to_work_without(app, client):
    checked = 0
    for rule, method, op, view in operations(app, spec(client)):
        headers = [p for p in op.get("parameters", []) if p.get("$ref", "").endswith(
            ("/UserSession", "/AdminToken", "/OptionalSession"))]
        assert len(headers) <= 1, (rule.rule, headers)  # decorator and docstring both
        roles = getattr(view, "required_roles", None)
        if not roles:
            continue
        header = "AdminToken" if roles == {"admin"} else "UserSession"
        assert op["security"] == [{"bearer": []}], rule.rule
        assert op["parameters"][0] == {"$ref": f"#/parameters/{header}"}, rule.rule
        assert op["responses"]["401"] == {"$ref": "#/responses/SessionRequired"}, rule.rule
        url = re.sub(r"<int:[^>]+>", "1", re.sub(r"<(?!int:)[^>]+>", "x", rule.rule))
        r = client.open(url, method=method)
        assert r.status_code == 401 and r.get_json() == {"error": "Authentication required"}, url
        checked += 1
    assert checked >= 15  # OONI Run, findings, test lists, accounts, quotas...


def resolve(doc: dict, p: dict) -> dict:
    ref = p.get("$ref")
    if ref is None:
        return p
    section, name = ref.removeprefix("#/").split("/")
    return doc[section][name]


def test_path_parameters_are_declared(app, client):
    doc = spec(client)
    paths = doc["paths"]
    undeclared = []
    for path, ops in paths.items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, op in ops.items():
            params = [resolve(doc, p) for p in op.get("parameters", [])]
            declared = {p.get("name") for p in params if p.get("in") == "path"}
            if names - declared:
                undeclared.append(f"{method.upper()} {path}: {sorted(names - declared)}")
    assert not undeclared, "path parameters missing from the spec:\n" + "\n".join(undeclared)


def test_references_resolve(client):
    doc = spec(client)
    text = client.get(SPEC_ROUTE).get_data(as_text=True)
    for section in ("definitions", "parameters", "responses"):
        refs = set(re.findall(r'"\$ref":\s*"#/' + section + r'/([^"]+)"', text))
        assert refs, f"expected shared {section} to be used"
        assert refs <= set(doc.get(section, {})), refs - set(doc.get(section, {}))


def test_document_is_valid_swagger_2(client):
    validate(spec(client))


def test_served_at_openapi_json_too(client):
    r = client.get(OPENAPI_ROUTE)
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == spec(client)


def test_aggregation_is_fully_described(client):
    doc = spec(client)
    op = doc["paths"]["/api/v1/aggregation"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert names == {"axis_x", "axis_y", "probe_cc", "probe_asn", "test_name", "domain", "input",
                     "category_code", "ooni_run_link_id", "since", "until", "time_grain",
                     "format", "download"}
    assert resolve(doc, op["responses"]["200"]["schema"])["properties"]["result"]
    assert "400" in op["responses"]


def test_swagger_ui_page(client):
    r = client.get(UI_ROUTE)
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    assert SPEC_ROUTE.encode() in r.data
    # flasgger writes its "auth" setting into the page's script verbatim:
    # unset, it is Python's None and the page dies with a ReferenceError.
    assert b"auth_config = None" not in r.data
    assert b"auth_config = {}" in r.data

