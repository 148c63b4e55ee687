"""Digits that str.isdigit accepts but int refuses (``²``) are bad input,
answered with a 4xx JSON error on every route that parses an integer."""
import pytest


@pytest.mark.parametrize("url, status", [
    ("/api/v2/oonirun/links/%C2%B2", 404),
    ("/api/v2/oonirun/links/%C2%B2/revisions", 404),
    ("/api/v2/oonirun/links/1?revision=%C2%B2", 400),
    ("/api/_/ooni_run/list?ooni_run_link_id=%C2%B2", 400),
    ("/api/_/debug_prioritization?probe_cc=IT&probe_asn=AS%C2%B2", 400),
    ("/api/v1/measurements?ooni_run_link_id=%C2%B2", 400),
])
def test_superscript_digits_are_client_errors(client, url, status):
    r = client.get(url)
    assert r.status_code == status, r.get_data(as_text=True)
    assert "error" in r.get_json()


def test_engine_descriptor_revision_superscript(client):
    r = client.post("/api/v2/oonirun/links/1/engine-descriptor/%C2%B2", json={})
    assert r.status_code == 400
    assert "error" in r.get_json()
