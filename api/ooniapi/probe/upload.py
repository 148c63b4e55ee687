"""Checks on what a probe uploads (api.md §7.9-7.10, §16), kept apart from
Flask so that they can be tested as plain functions. Every failure raises an
``ooniapi.core.errors`` exception carrying the 4xx the probe gets; nothing here
touches the spool."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import ujson
import zstandard

from ooniapi.core import ids
from ooniapi.core.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ooniapi.core.text import check_unicode

INCORRECT_FORMAT = "Incorrect format"
INCONSISTENT = "Inconsistent measurement"
UPLOAD_FORMATS = ("json", "yaml")


@dataclass(frozen=True)
class ReportTarget:
    """What the path of ``POST /report/<report_id>`` says about the upload."""

    report_id: str
    cc: str
    testname: str
    asn: int

    @property
    def discarded(self) -> bool:
        # Unknown location: legacy drops these on purpose (api.md §7.10).
        return self.asn == 0 or self.cc.upper() == "ZZ"


@dataclass(frozen=True)
class SingleShot:
    """A single-shot submission rewritten for the spool (api.md §16)."""

    cc: str
    asn: int
    test_name: str
    content: dict[str, Any]
    # The content string exactly as sent (None when sent as an object): a
    # credential proof binds these bytes.
    content_text: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def discarded(self) -> bool:
        return self.asn == 0 or self.cc == "ZZ"


def parse_report_target(report_id: str) -> ReportTarget:
    # The whole id must be path- and filename-safe before any part of it is
    # copied into the uid and the spool directory name.
    if not ids.REPORT_ID_RE.match(report_id):
        raise BadRequest(INCORRECT_FORMAT)
    p = ids.parse_report_id(report_id)
    if p is None:
        raise BadRequest(INCORRECT_FORMAT)
    return ReportTarget(report_id, p.cc, p.testname, p.asn)


def check_content_type(content_type: str | None) -> None:
    """Probes send ``application/json``; an absent type is tolerated for old
    clients, but a form or multipart upload is a client mistake."""
    if not content_type:
        return
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json") or mime == "text/json":
        return
    raise UnsupportedMediaType(f"Unsupported Content-Type {mime!r}: expected application/json")


def decode_body(raw: bytes, content_encoding: str | None, max_size: int) -> bytes:
    """The upload as stored: zstd-decompressed when so encoded, never larger
    than ``max_size`` once decompressed."""
    enc = (content_encoding or "").strip().lower()
    if enc in ("", "identity"):
        return raw
    if enc != "zstd":
        raise UnsupportedMediaType(f"Unsupported Content-Encoding {enc!r}")
    try:
        # Every frame: a body of several concatenated frames is one upload.
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True) as r:
            # Streaming with a bound: frames may omit their size, and a
            # small bomb must not expand past the cap in memory.
            data = r.read(max_size + 1)
    except zstandard.ZstdError:
        raise BadRequest(INCORRECT_FORMAT) from None
    if len(data) > max_size:
        raise PayloadTooLarge(f"Request body too large (limit {max_size} bytes once decompressed)")
    if not data:
        raise BadRequest(INCORRECT_FORMAT)
    return data


def loads_object(data: bytes | str, what: str = "Request body") -> dict[str, Any]:
    try:
        doc = ujson.loads(data)
    except ValueError:
        # ujson refuses some valid JSON (integers beyond 64 bits): the
        # standard parser has the last word. On UTF-8 text only: given bytes
        # it would also take a BOM or UTF-16/32, which the fastpath cannot
        # read, so the measurement would be stored and never scored.
        try:
            doc = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
        except ValueError:
            raise BadRequest(f"{what} is not valid JSON") from None
        except RecursionError:
            raise BadRequest(f"{what} is nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return doc


def check_upload(body: bytes) -> dict[str, Any]:
    """The ``{"format": ..., "content": ...}`` wrapper of ``/report/<id>``."""
    doc = loads_object(body)
    fmt = doc.get("format")
    if fmt is None or "content" not in doc:
        raise BadRequest("Missing format or content field")
    if fmt not in UPLOAD_FORMATS:
        raise BadRequest(f"Unsupported format {fmt!r}: expected json or yaml")
    content = doc["content"]
    if fmt == "json" and not isinstance(content, dict):
        raise BadRequest("content must be a JSON object for format json")
    if fmt == "yaml" and not (isinstance(content, str) and content):
        raise BadRequest("content must be a YAML document string for format yaml")
    return doc


def check_consistent(target: ReportTarget, content: Any) -> str | None:
    """Which of ``probe_cc``, ``probe_asn`` and ``test_name`` in a JSON
    measurement contradicts its report id (None when all agree). The uid,
    the spool directory and the fastpath row must tell the same story; an
    absent field is not a contradiction (old clients omit some)."""
    if not isinstance(content, dict):
        return None
    cc = content.get("probe_cc")
    if cc is not None and (not isinstance(cc, str) or cc.upper() != target.cc.upper()):
        return "probe_cc"
    asn = content.get("probe_asn")
    if asn is not None and (not isinstance(asn, str) or ids.normalize_asn(asn) != target.asn):
        return "probe_asn"
    tn = content.get("test_name")
    if tn is not None and (not isinstance(tn, str) or ids.compact_testname(tn) != target.testname):
        return "test_name"
    return None


def check_not_self_verified(doc: dict[str, Any]) -> None:
    """``is_verified`` is the server's verdict, read by the fastpath from the
    top of the stored document: an upload may not claim one."""
    if doc.get("is_verified") not in (None, "u"):
        raise BadRequest("is_verified is set by the server, not by the probe")


def _clean_cc(value: Any) -> str:
    cc = ids.normalize_cc(value)
    return cc if cc.isascii() and cc.isalpha() else "ZZ"


def check_single_shot(body: bytes) -> SingleShot:
    """The ``submit_measurement`` wrapper: ``content`` is a JSON string (an
    object is accepted too) holding the measurement. The wrapper's other
    fields (the credential proof) are kept in ``fields``."""
    doc = loads_object(body)
    if doc.get("format") is None or "content" not in doc:
        raise BadRequest("Missing format or content field")
    if doc["format"] != "json":
        raise BadRequest(f"Unsupported format {doc['format']!r}: expected json")
    content = doc["content"]
    text = None
    if isinstance(content, str):
        text = content
        content = loads_object(content, "content")
    elif not isinstance(content, dict):
        raise BadRequest("content must be a JSON object or a string holding one")
    test_name = content.get("test_name")
    if not isinstance(test_name, str) or not ids.TESTNAME_RE.match(ids.compact_testname(test_name)):
        raise BadRequest("Invalid or missing test_name in content")
    return SingleShot(_clean_cc(content.get("probe_cc")), ids.normalize_asn(content.get("probe_asn")),
                      test_name, content, text, doc)


def spooled_single_shot(content: dict[str, Any], is_verified: str = "u") -> bytes:
    """The compact wrapper the spool keeps for a single-shot submission: the
    credential fields are dropped, the server's verdict on them is kept in
    ``is_verified`` (t, f or u) for the fastpath."""
    if is_verified not in ("t", "f", "u"):
        raise ValueError(f"bad is_verified {is_verified!r}")
    wrapper = {"format": "json", "content": content, "is_verified": is_verified}
    try:
        return json.dumps(wrapper, ensure_ascii=False, separators=(",", ":")).encode()
    except RecursionError:
        # ujson parses deeper documents than json can write back.
        raise BadRequest("content is nested too deeply") from None


@dataclass(frozen=True)
class ReportMeta:
    """Normalised metadata of ``POST /report`` (legacy degrades, never rejects,
    location fields)."""

    test_name: str
    cc: str
    asn: int


def check_open_report(body: bytes) -> ReportMeta:
    try:
        doc = loads_object(body)
    except BadRequest:
        raise BadRequest("JSON expected") from None
    # Unlike a measurement (kept as sent, cleaned when scored), nothing of
    # this body is worth keeping if it is not text.
    try:
        check_unicode(doc)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    fmt = doc.get("format")
    if fmt is not None and fmt not in UPLOAD_FORMATS:
        raise BadRequest(f"Unsupported format {fmt!r}: expected json or yaml")
    test_name = doc.get("test_name")
    # A report_id whose testname is not 2-29 alphanumerics can never accept
    # a submission (api.md §7.9), so refuse to hand one out.
    if not isinstance(test_name, str) or not ids.TESTNAME_RE.match(ids.compact_testname(test_name)):
        raise BadRequest("Invalid or missing test_name")
    return ReportMeta(test_name.lower(), _clean_cc(doc.get("probe_cc")),
                      ids.normalize_asn(doc.get("probe_asn")))
