def test_health_up(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.data == b"UP"


def test_unknown_api_path_is_json_404(client):
    r = client.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.get_json() == {"error": "Not Found"}
    assert r.headers["Access-Control-Allow-Origin"] == "*"
