"""Regressions found by fuzzing the whole API (tests/bench/fuzz_api.py):
each input once answered a 5xx; the rule is a 4xx JSON error instead."""
import json

import pytest

DEEP_OBJECT = b'{"a":' * 5000 + b"1" + b"}" * 5000
DEEP_ARRAY = b'{"email_address": ' + b"[" * 100000 + b"]" * 100000 + b"}"

# Every POST route that reads its body through request.get_json.
GET_JSON_ROUTES = ["/api/v1/check-in", "/api/_/check-in", "/api/v1/geolookup",
                   "/api/v1/register", "/api/v1/login", "/bouncer/net-tests",
                   "/api/v1/user_register"]


def assert_json_4xx(r):
    assert 400 <= r.status_code < 500, (r.status_code, r.data[:200])
    assert isinstance(r.get_json(), dict) and r.get_json().get("error"), r.data[:200]


@pytest.mark.parametrize("path", GET_JSON_ROUTES)
@pytest.mark.parametrize("body", [DEEP_OBJECT, DEEP_ARRAY], ids=["object", "array"])
def test_deeply_nested_json_body_is_a_400(client, path, body):
    r = client.post(path, data=body, content_type="application/json")
    assert_json_4xx(r)


def test_json_provider_reports_deep_nesting_as_bad_json(app):
    with pytest.raises(ValueError):
        app.json.loads(DEEP_OBJECT)
    assert app.json.loads(b'{"a": [1]}') == {"a": [1]}
