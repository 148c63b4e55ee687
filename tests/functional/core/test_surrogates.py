"""Unpaired UTF-16 surrogates from clients are a 400 on every route that takes
JSON text, never a 500 from an encoder deep below (issue 16, defect 4)."""
from __future__ import annotations

import base64
import json

import pytest

from ooniapi.core.auth import session_token

LONE = '"\\ud800"'  # JSON text of a string holding one unpaired surrogate

# (path, JSON body with LONE in a text field, role needed or None)
ROUTES = [
    ("/api/v1/geolookup", '{"addresses": [%s]}' % LONE, None),
    ("/bouncer/net-tests", '{"net-tests": [{"name": %s, "version": "1"}]}' % LONE, None),
    ("/api/v1/check-in", '{"probe_cc": "IT", "probe_asn": "AS1", "software_name": %s}' % LONE, None),
    ("/api/_/check-in", '{"probe_cc": "IT", "probe_asn": "AS1", "software_name": %s}' % LONE, None),
    ("/api/v1/register", '{"password": "x", "platform": %s, "probe_asn": "AS1", "probe_cc": "IT",'
                         ' "software_name": "t", "software_version": "1", "supported_tests": []}' % LONE, None),
    ("/api/v1/login", '{"username": %s, "password": "x"}' % LONE, None),
    ("/report", '{"probe_cc": "IT", "probe_asn": "AS1", "test_name": "web_connectivity",'
                ' "software_name": %s, "software_version": "1", "test_start_time": "2026-01-01 00:00:00",'
                ' "test_version": "1", "data_format_version": "0.2.0", "format": "json"}' % LONE, None),
    ("/api/_/measurement_feedback", '{"measurement_uid": %s, "status": "ok"}' % LONE, "user"),
    ("/api/_/url-priorities/update", '{"new_entry": {"category_code": "NEWS", "cc": "*", "domain": %s,'
                                     ' "url": "*", "priority": 1}}' % LONE, "admin"),
    ("/api/_/ooni_run/create", '{"name": %s, "description": "d", "nettests": []}' % LONE, "user"),
    ("/api/v1/incidents/create", '{"title": %s}' % LONE, "admin"),
    ("/api/v1/user_register", '{"email_address": %s, "redirect_to": "https://explorer.ooni.org/"}' % LONE, None),
    ("/api/v1/set_account_role", '{"email_address": %s, "role": "admin"}' % LONE, "admin"),
    ("/api/v1/set_session_expunge", '{"email_address": %s}' % LONE, "admin"),
]


@pytest.mark.parametrize("path,body,role", ROUTES, ids=[r[0] for r in ROUTES])
def test_lone_surrogate_in_json_is_400(client, cfg, path, body, role):
    headers = {}
    if role:
        headers["Authorization"] = "Bearer " + session_token(cfg, "a" * 32, role)
    r = client.post(path, data=body, content_type="application/json", headers=headers)
    assert r.status_code == 400, (r.status_code, r.data)
    assert isinstance(r.get_json()["error"], str)


def test_lone_surrogate_as_dict_key_is_400(client):
    r = client.post("/api/v1/geolookup", data='{%s: 1, "addresses": []}' % LONE,
                    content_type="application/json")
    assert r.status_code == 400


def test_paired_surrogates_are_text(client):
    # "\ud83d\ude00" is one emoji: valid, and not to be refused.
    r = client.post("/api/v1/geolookup", data='{"addresses": ["\\ud83d\\ude00"]}',
                    content_type="application/json")
    assert r.status_code == 200
    assert "\U0001F600" in r.get_json()["geolocation"]


def test_cursor_with_lone_surrogate_is_400(client):
    doc = '[1, "measurement_start_time", "desc", %s, "x", 0]' % LONE
    token = base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")
    r = client.get(f"/api/v1/measurements?cursor={token}")
    assert (r.status_code, r.get_json()) == (400, {"error": "Invalid cursor"})


@pytest.mark.parametrize("query", ["input=%ED%A0%80", "domain=%ED%A0%80", "report_id=%ED%A0%80",
                                   "probe_cc=%ED%A0%80"])
def test_surrogate_bytes_in_query_never_500(client, query):
    r = client.get(f"/api/v1/measurements?{query}")
    assert r.status_code in (200, 400), r.data
    json.loads(r.data)
