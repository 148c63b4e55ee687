import json

import pytest
import zstandard

from ooniapi.core.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ooniapi.probe import upload as mu

RID = "20210709T004340Z_webconnectivity_MY_4818_n1_YCM7J9mGcEHds2K3"


def test_report_target_from_valid_id():
    t = mu.parse_report_target(RID)
    assert (t.cc, t.testname, t.asn, t.discarded) == ("MY", "webconnectivity", 4818, False)


@pytest.mark.parametrize("rid", [
    "20210709T004340Z_webconnectivity_ZZ_4818_n1_YCM7J9mGcEHds2K3",
    "20210709T004340Z_webconnectivity_zz_4818_n1_YCM7J9mGcEHds2K3",
    "20210709T004340Z_webconnectivity_MY_0_n1_YCM7J9mGcEHds2K3",
])
def test_discarded_targets(rid):
    assert mu.parse_report_target(rid).discarded


@pytest.mark.parametrize("rid", [
    "short",
    "20200712T143743Z_AS27775_" + "a" * 50,                      # old format: 3 fields
    "20210709T004340Z_web_connectivity_MY_4818_n1_YCM7J9mGcEHds2K3",  # 7 fields
    "20210709T004340Z_webconnectivity_MYS_4818_n1_YCM7J9mGcEHds2K3",  # CC of 3
    "20210709T004340Z_webconnectivity_MY_AS4818_n1_YCM7J9mGcEHds2K3",  # ASN not int
    "20210709T004340Z_w_MY_4818_n1_YCM7J9mGcEHds2K3",               # testname of 1
    "20210709T004340Z_webconnectivity_M._4818_n1_YCM7J9mGcEHds2K3",   # unsafe chars
    "20210709T004340Z_webconnectivity_MY_4818_n1_YCM7J9mG\x00Hds2K3",
    "x" * 101,
])
def test_malformed_report_ids(rid):
    with pytest.raises(BadRequest) as e:
        mu.parse_report_target(rid)
    assert e.value.status == 400 and e.value.message == "Incorrect format"


@pytest.mark.parametrize("ct", [None, "", "application/json", "application/json; charset=utf-8",
                                "APPLICATION/JSON", "application/vnd.ooni+json"])
def test_accepted_content_types(ct):
    mu.check_content_type(ct)


@pytest.mark.parametrize("ct", ["application/x-www-form-urlencoded", "multipart/form-data; b=x",
                                "text/plain"])
def test_refused_content_types(ct):
    with pytest.raises(UnsupportedMediaType):
        mu.check_content_type(ct)


def test_decode_body_plain_and_zstd():
    body = b'{"format":"json","content":{}}'
    assert mu.decode_body(body, None, 100) == body
    assert mu.decode_body(zstandard.compress(body), "zstd", 100) == body
    assert mu.decode_body(zstandard.compress(body), " ZSTD ", 100) == body


def test_decode_body_bad_zstd_and_encodings():
    with pytest.raises(BadRequest, match="Incorrect format"):
        mu.decode_body(b"not zstd at all", "zstd", 100)
    with pytest.raises(UnsupportedMediaType):
        mu.decode_body(b"{}", "gzip", 100)


def test_decode_body_caps_decompressed_size():
    bomb = zstandard.compress(b" " * 10_000)
    assert len(bomb) < 100
    with pytest.raises(PayloadTooLarge):
        mu.decode_body(bomb, "zstd", 1000)
    # A frame without its content size in the header is bounded too.
    cctx = zstandard.ZstdCompressor(write_content_size=False)
    with pytest.raises(PayloadTooLarge):
        mu.decode_body(cctx.compress(b"x" * 10_000), "zstd", 1000)


@pytest.mark.parametrize("body,msg", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"str"', "must be a JSON object"),
    (b'{"content": {}}', "Missing format"),
    (b'{"format": "json"}', "Missing format"),
    (b'{"format": "xml", "content": {}}', "Unsupported format"),
    (b'{"format": "json", "content": "a string"}', "content must be a JSON object"),
    (b'{"format": "yaml", "content": {}}', "YAML"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
])
def test_check_upload_rejects(body, msg):
    with pytest.raises(BadRequest, match=msg):
        mu.check_upload(body)


def test_check_upload_accepts_json_and_yaml_and_big_ints():
    assert mu.check_upload(b'{"format": "json", "content": {"a": 1}}')["content"] == {"a": 1}
    assert mu.check_upload(b'{"format": "yaml", "content": "---\\na: 1\\n"}')
    big = b'{"format": "json", "content": {"n": 123456789012345678901234567890}}'
    assert mu.check_upload(big)["content"]["n"] == 123456789012345678901234567890


def _single(content, **kw):
    return json.dumps({"format": "json", "content": content, "nym": None, **kw}).encode()


def test_single_shot_parses_string_content():
    m = {"probe_cc": "it", "probe_asn": "AS30722", "test_name": "web_connectivity", "input": "x"}
    s = mu.check_single_shot(_single(json.dumps(m)))
    assert (s.cc, s.asn, s.test_name, s.discarded) == ("IT", 30722, "web_connectivity", False)
    assert s.content == m


def test_single_shot_accepts_object_content_and_discards_unknown_location():
    s = mu.check_single_shot(_single({"probe_cc": "ZZ", "probe_asn": "AS1", "test_name": "ndt"}))
    assert s.discarded
    s = mu.check_single_shot(_single({"probe_cc": "IT", "probe_asn": "AS0", "test_name": "ndt"}))
    assert s.discarded
    s = mu.check_single_shot(_single({"probe_cc": "1!", "probe_asn": "AS3", "test_name": "ndt"}))
    assert s.cc == "ZZ" and s.discarded


@pytest.mark.parametrize("body,msg", [
    (_single("{broken"), "content is not valid JSON"),
    (_single("[1]"), "content must be a JSON object"),
    (_single(5), "content must be a JSON object or a string"),
    (_single({"probe_cc": "IT", "probe_asn": "AS1"}), "test_name"),
    (_single({"probe_cc": "IT", "probe_asn": "AS1", "test_name": "web-connectivity"}), "test_name"),
    (_single({"probe_cc": "IT", "probe_asn": "AS1", "test_name": 7}), "test_name"),
    (json.dumps({"format": "yaml", "content": "{}"}).encode(), "expected json"),
    (b'{"content": "{}"}', "Missing format"),
])
def test_single_shot_rejects(body, msg):
    with pytest.raises(BadRequest, match=msg):
        mu.check_single_shot(body)


def test_spooled_single_shot_is_compact_and_keeps_unicode():
    b = mu.spooled_single_shot({"input": "https://ru.wikipedia.org/wiki/Вторжение", "report_id": "r"})
    assert b.startswith(b'{"format":"json","content":{"input":"https://ru.wikipedia.org/wiki/')
    assert "Вторжение".encode() in b
    assert json.loads(b)["is_verified"] == "u"


def test_open_report_normalises_and_validates():
    m = mu.check_open_report(b'{"probe_cc": "it_", "probe_asn": "as30722", "test_name": "Web_Connectivity"}')
    assert (m.cc, m.asn, m.test_name) == ("IT", 30722, "web_connectivity")
    m = mu.check_open_report(b'{"probe_cc": "ITA", "probe_asn": "30722", "test_name": "ndt"}')
    assert (m.cc, m.asn) == ("ZZ", 0)
    for bad in (b"nope", b"[]", b'{"probe_cc": "IT"}', b'{"test_name": "a-b"}'):
        with pytest.raises(BadRequest):
            mu.check_open_report(bad)
    with pytest.raises(BadRequest, match="JSON expected"):
        mu.check_open_report(b"nope")


def test_spooled_single_shot_refuses_what_it_cannot_write_back():
    deep: dict = {"a": 1}
    for _ in range(1020):
        deep = {"a": deep}
    with pytest.raises(BadRequest, match="nested too deeply"):
        mu.spooled_single_shot({"x": deep})


def test_decode_body_keeps_every_zstd_frame():
    # Two frames back to back are one upload: both halves are stored.
    first, second = b'{"format": "json", ', b'"content": {}}'
    body = zstandard.compress(first) + zstandard.compress(second)
    assert mu.decode_body(body, "zstd", 100) == first + second


def test_decode_body_frames_count_against_the_cap_together():
    body = zstandard.compress(b"a" * 60) + zstandard.compress(b"b" * 60)
    with pytest.raises(PayloadTooLarge):
        mu.decode_body(body, "zstd", 100)
