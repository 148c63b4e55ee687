import pytest


def test_landing_page(client):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert b"Welcome to the OONI API" in r.data and b'href="/apidocs/"' in r.data


def test_health_still_up(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.data == b"UP"


def test_robots_txt(client):
    r = client.get("/robots.txt")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    assert r.headers["Cache-Control"] == "max-age=86400"
    lines = r.data.decode().splitlines()
    assert lines[0] == "User-agent: *" and lines[-1] == "Crawl-delay: 300"
    for p in ("/api/_", "/api/v1/aggregation", "/api/v1/measurement_meta", "/api/v1/raw_measurement",
              "/api/v1/test-list/urls", "/api/v1/torsf_stats", "/files", "/stats", "/201", "/202"):
        assert f"Disallow: {p}" in lines


@pytest.mark.parametrize("path,status,location", [
    ("/stats", 301, "https://explorer.ooni.org"),
    ("/files", 301, "https://explorer.ooni.org/search"),
    ("/files/by_date", 301, "https://explorer.ooni.org/search"),
    ("/files/by_country", 301, "https://explorer.ooni.org/search"),
    ("/files/by_date/2021-02-28", 301,
     "https://explorer.ooni.org/search?until=2021-03-01&since=2021-02-28"),
    ("/files/by_country/it", 301, "https://explorer.ooni.org/search?probe_cc=IT"),
    ("/2020-12-31", 301, "https://explorer.ooni.org/search?until=2021-01-01&since=2020-12-31"),
    ("/2020-12-31/report.json", 302, "http://localhost/files/download/report.json"),
    ("/api/", 302, "http://localhost/apidocs"),
])
def test_redirects(client, path, status, location):
    r = client.get(path)
    assert r.status_code == status
    assert r.headers["Location"] == location


@pytest.mark.parametrize("path,err", [
    ("/files/by_date/2021-19-39", "Invalid date format"),
    ("/files/by_date/2021-2-3", "Invalid date format"),
    ("/files/by_country/ITA", "Country code must be two characters"),
])
def test_redirect_bad_input_400(client, path, err):
    r = client.get(path)
    assert r.status_code == 400


@pytest.mark.parametrize("path", ["/2021-19-39", "/notaday", "/2020-12-31/report.yaml",
                                  "/nope/report.json"])
def test_legacy_paths_404(client, path):
    assert client.get(path).status_code == 404


def test_api_v1_files_is_absent(client):
    # Legacy answered a fixed "not implemented" placeholder; this backend
    # ships no placeholder routes, so the retired listing is a JSON 404.
    r = client.get("/api/v1/files")
    assert r.status_code == 404 and r.get_json() == {"error": "Not Found"}


def test_invalidpath_numeric_error(client):
    r = client.get("/invalidpath")
    assert r.status_code == 404 and r.get_json() == {"error": 404}


def test_head_answers_like_get(client):
    assert client.head("/robots.txt").status_code == 200
    assert client.head("/stats").status_code == 301


def test_metrics_prometheus_text_counts_submissions(client):
    client.post("/report/20210709T004340Z_webconnectivity_ZZ_1_n1_YCM7J9mGcEHds2K3",
                data=b"{}", headers={"Content-Type": "application/json"})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    text = r.data.decode()
    assert "# TYPE ooni_api_discarded_measurement_total counter" in text
    assert "ooni_api_discarded_measurement_total 1" in text
    assert "ooni_api_receive_measurement_ms_count 1" in text
