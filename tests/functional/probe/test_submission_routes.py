import hashlib
import json
import re

import pytest
import zstandard

from ooni_common.spool import Spool, SpoolError

from ooniapi.core import ids

RID = "20210709T004340Z_webconnectivity_IT_30722_n1_YCM7J9mGcEHds2K3"
JSON = {"Content-Type": "application/json"}


def spooled(cfg) -> list:
    return sorted(p.name for p in Spool(cfg.spool_dir).root.rglob("*") if p.is_file())


def upload(content=None, fmt="json"):
    return json.dumps({"format": fmt, "content": content if content is not None else
                       {"report_id": RID, "probe_cc": "IT", "input": "https://example.org/"}}).encode()


def test_open_report_returns_ooni_report_id(client, cfg):
    meta = {"probe_cc": "IT", "probe_asn": "AS30722", "test_name": "web_connectivity",
            "software_name": "ooniprobe-android", "software_version": "5.0.0", "format": "json",
            "data_format_version": "0.2.0", "test_start_time": "2026-08-20 10:11:12",
            "test_version": "0.4.3"}
    r = client.post("/report", data=json.dumps(meta))  # no content type: tolerated
    assert r.status_code == 200
    assert r.headers["Cache-Control"].startswith("no-cache")
    d = r.get_json()
    assert d["backend_version"] == "1.3.5" and "json" in d["supported_formats"]
    assert re.match(r"^\d{8}T\d{6}Z_webconnectivity_IT_30722_n1_[A-Za-z0-9]{16}$", d["report_id"])
    assert spooled(cfg) == []


def test_open_report_keeps_zz_as0(client):
    r = client.post("/report", json={"probe_cc": "", "probe_asn": "x", "test_name": "ndt"})
    assert r.status_code == 200
    assert "_ndt_ZZ_0_n1_" in r.get_json()["report_id"]


@pytest.mark.parametrize("data,err", [(b"{nope", "JSON expected"), (b"[]", "JSON expected"),
                                      (b"{}", "test_name"), (b'{"test_name": "a_"}', "test_name")])
def test_open_report_bad_input(client, data, err):
    r = client.post("/report", data=data, headers=JSON)
    assert r.status_code == 400 and err in r.get_json()["error"]


def test_submit_stores_body_verbatim_and_notifies(client, cfg, notifier):
    body = upload()
    r = client.post(f"/report/{RID}", data=body, headers=JSON)
    assert r.status_code == 200, r.data
    assert r.headers["Cache-Control"].startswith("no-cache")
    uid = r.get_json()["measurement_uid"]
    assert ids.UID_RE.match(uid)
    assert uid.endswith("_IT_webconnectivity_" + hashlib.sha512(body).hexdigest()[:16])
    path = Spool(cfg.spool_dir).path_for(uid)
    assert path.parent.name == f"{uid[:10]}_IT_webconnectivity"
    assert path.read_bytes() == body
    assert notifier.calls == [(uid, body)]
    assert [p for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_submit_zstd_stores_decompressed(client, cfg, notifier):
    body = upload()
    r = client.post(f"/report/{RID}", data=zstandard.compress(body),
                    headers={**JSON, "Content-Encoding": "zstd"})
    assert r.status_code == 200
    uid = r.get_json()["measurement_uid"]
    assert Spool(cfg.spool_dir).read(uid) == body
    assert notifier.calls[0][1] == body


@pytest.mark.parametrize("rid", [
    "20210709T004340Z_webconnectivity_ZZ_30722_n1_YCM7J9mGcEHds2K3",
    "20210709T004340Z_webconnectivity_IT_0_n1_YCM7J9mGcEHds2K3",
])
def test_submit_discards_unknown_location(client, cfg, notifier, rid):
    r = client.post(f"/report/{rid}", data=upload(), headers=JSON)
    assert r.status_code == 200 and r.get_json() == {}
    assert spooled(cfg) == [] and notifier.calls == []


BAD_SUBMISSIONS = [
    # (report_id, body, headers, status)
    ("20200712T143743Z_AS27775_abcdefghijklmnop", upload(), JSON, 400),
    ("20210709T004340Z_web_connectivity_IT_30722_n1_YCM7J9mGcEHds2K3", upload(), JSON, 400),
    ("20210709T004340Z_webconnectivity_ITA_30722_n1_YCM7J9mGcEHds2K3", upload(), JSON, 400),
    ("20210709T004340Z_webconnectivity_IT_AS30722_n1_YCM7J9mGcEHds2K3", upload(), JSON, 400),
    ("20210709T004340Z_webconnectivity_I%2E_30722_n1_YCM7J9mGcEHds2K3", upload(), JSON, 400),
    (RID, b"{not json", JSON, 400),
    (RID, b"", JSON, 400),
    (RID, b"[1,2,3]", JSON, 400),
    (RID, b'{"content": {}}', JSON, 400),
    (RID, b'{"format": "json"}', JSON, 400),
    (RID, b'{"format": "xml", "content": {}}', JSON, 400),
    (RID, b'{"format": "json", "content": []}', JSON, 400),
    (RID, b"garbage", {**JSON, "Content-Encoding": "zstd"}, 400),
    (RID, upload(), {**JSON, "Content-Encoding": "br"}, 415),
    (RID, upload(), {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    (RID, upload(), {"Content-Type": "multipart/form-data; boundary=x"}, 415),
]


@pytest.mark.parametrize("rid,body,headers,status", BAD_SUBMISSIONS)
def test_submit_bad_input_is_json_4xx_and_stores_nothing(client, cfg, notifier, rid, body,
                                                         headers, status):
    r = client.post(f"/report/{rid}", data=body, headers=headers)
    assert r.status_code == status
    assert isinstance(r.get_json()["error"], str)
    assert r.headers["Cache-Control"].startswith("no-cache")
    assert spooled(cfg) == [] and notifier.calls == []
    # and the server keeps serving
    assert client.post(f"/report/{RID}", data=upload(), headers=JSON).status_code == 200


def test_submit_oversize_is_413(cfg, db, notifier):
    from ooniapi.core.app import create_app
    app = create_app(cfg.with_overrides(MAX_BODY_SIZE=1000), db=db, notify_fastpath=notifier)
    c = app.test_client()
    big = upload({"report_id": RID, "pad": "x" * 2000})
    r = c.post(f"/report/{RID}", data=big, headers=JSON)
    assert r.status_code == 413 and "too large" in r.get_json()["error"]
    # under the cap compressed, over it once decompressed
    r = c.post(f"/report/{RID}", data=zstandard.compress(big),
               headers={**JSON, "Content-Encoding": "zstd"})
    assert r.status_code == 413
    r = c.post("/api/v1/submit_measurement", data=big, headers=JSON)
    assert r.status_code == 413
    assert spooled(cfg) == [] and notifier.calls == []


def test_default_cap_accepts_several_megabytes(client, cfg):
    body = upload({"report_id": RID, "pad": "x" * (6 * 1024 * 1024)})
    r = client.post(f"/report/{RID}", data=body, headers=JSON)
    assert r.status_code == 200
    assert Spool(cfg.spool_dir).read(r.get_json()["measurement_uid"]) == body


def test_spool_failure_is_503_not_200(client, cfg, notifier, monkeypatch):
    def full_disk(self, uid, body):
        raise SpoolError(f"cannot spool {uid}: No space left on device")
    monkeypatch.setattr(Spool, "write", full_disk)
    r = client.post(f"/report/{RID}", data=upload(), headers=JSON)
    assert r.status_code == 503 and "retry" in r.get_json()["error"]
    single = json.dumps({"format": "json", "content": json.dumps(
        {"probe_cc": "IT", "probe_asn": "AS30722", "test_name": "ndt"})}).encode()
    r = client.post("/api/v1/submit_measurement", data=single, headers=JSON)
    assert r.status_code == 503
    assert notifier.calls == []


def test_unwritable_spool_dir_is_503(client, cfg):
    # A file where the spool's incoming directory should be: every write fails.
    Spool(cfg.spool_dir).root.mkdir(parents=True, exist_ok=True)
    Spool(cfg.spool_dir).incoming.write_text("not a directory")
    r = client.post(f"/report/{RID}", data=upload(), headers=JSON)
    assert r.status_code == 503
    assert isinstance(r.get_json()["error"], str)


def test_notifier_failure_still_answers_uid(cfg, db):
    from ooniapi.core.app import create_app

    def broken(uid, body):
        raise ConnectionRefusedError("fastpath down")
    c = create_app(cfg, db=db, notify_fastpath=broken).test_client()
    r = c.post(f"/report/{RID}", data=upload(), headers=JSON)
    assert r.status_code == 200
    assert Spool(cfg.spool_dir).read(r.get_json()["measurement_uid"]) is not None


def test_close_report(client):
    r = client.post("/report/anything_at_all/close")
    assert r.status_code == 200 and r.get_json() == {}
    assert r.headers["Cache-Control"] == "max-age=3600"


def test_get_on_report_is_json_error(client):
    r = client.get(f"/report/{RID}")
    # /<date>/<report_file> (api.md §3) matches GET here: a JSON 404, not a 405
    assert r.status_code in (404, 405) and isinstance(r.get_json()["error"], str)


def test_single_shot_generates_report_id_and_spools_wrapper(client, cfg, notifier, shared_data):
    msmt = json.loads((shared_data / "measurements" / "report1.json").read_text())
    msmt.pop("report_id", None)
    req = {"format": "json", "content": json.dumps(msmt), "nym": None, "zkp_request": None,
           "manifest_version": None, "protocol_version": None}
    r = client.post("/api/v1/submit_measurement", data=json.dumps(req), headers=JSON)
    assert r.status_code == 200, r.data
    assert r.headers["Cache-Control"].startswith("no-cache")
    d = r.get_json()
    uid, rid = d["measurement_uid"], d["report_id"]
    assert re.match(r"^\d{8}T\d{6}Z_webconnectivity_US_20115_n1_[A-Za-z0-9]{16}$", rid)
    assert ids.UID_RE.match(uid) and "_US_webconnectivity_" in uid
    # uid and report_id share the time of receipt (to the second)
    assert uid[:8] == rid[:8] and uid[8:14] == rid[9:15]
    stored = Spool(cfg.spool_dir).read(uid)
    assert uid.endswith(hashlib.sha512(stored).hexdigest()[:16])
    doc = json.loads(stored)
    assert set(doc) == {"format", "content", "is_verified"} and doc["is_verified"] == "u"
    assert doc["content"] == {**msmt, "report_id": rid}
    assert notifier.calls == [(uid, stored)]


def test_single_shot_replaces_probe_report_id_and_takes_zstd(client, cfg):
    m = {"report_id": "bogus", "probe_cc": "DE", "probe_asn": "AS3320", "test_name": "ndt"}
    body = zstandard.compress(json.dumps({"format": "json", "content": json.dumps(m)}).encode())
    r = client.post("/api/v1/submit_measurement", data=body,
                    headers={**JSON, "Content-Encoding": "zstd"})
    assert r.status_code == 200
    d = r.get_json()
    stored = json.loads(Spool(cfg.spool_dir).read(d["measurement_uid"]))
    assert stored["content"]["report_id"] == d["report_id"] != "bogus"


@pytest.mark.parametrize("content", [
    {"probe_cc": "ZZ", "probe_asn": "AS3320", "test_name": "ndt"},
    {"probe_cc": "DE", "probe_asn": "AS0", "test_name": "ndt"},
    {"probe_cc": "DE", "test_name": "ndt"},
])
def test_single_shot_discard(client, cfg, notifier, content):
    r = client.post("/api/v1/submit_measurement",
                    data=json.dumps({"format": "json", "content": json.dumps(content)}), headers=JSON)
    assert r.status_code == 200 and r.get_json() == {}
    assert spooled(cfg) == [] and notifier.calls == []


@pytest.mark.parametrize("body,headers,status", [
    (b"{oops", JSON, 400),
    (b'"just a string"', JSON, 400),
    (b'{"format": "json"}', JSON, 400),
    (b'{"format": "yaml", "content": "{}"}', JSON, 400),
    (b'{"format": "json", "content": "{oops"}', JSON, 400),
    (b'{"format": "json", "content": "{\\"probe_cc\\": \\"IT\\"}"}', JSON, 400),
    (b'{"format": "json", "content": 3}', JSON, 400),
    (b'{"format": "json", "content": "{}"}', {"Content-Type": "text/plain"}, 415),
    (b"\x28\xb5\x2f\xfd garbage", {**JSON, "Content-Encoding": "zstd"}, 400),
])
def test_single_shot_bad_input(client, cfg, notifier, body, headers, status):
    r = client.post("/api/v1/submit_measurement", data=body, headers=headers)
    assert r.status_code == status
    assert isinstance(r.get_json()["error"], str)
    assert spooled(cfg) == [] and notifier.calls == []
