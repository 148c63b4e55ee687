"""Legacy YAML reports (2012-2018 ooniprobe) turned into JSON-format
measurements (fastpath.md §8), and the trivial ids of legacy data (§8.4)."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import string
import uuid
from typing import Iterator

import yaml

log = logging.getLogger("fastpath.yaml")

SCHEMA_KEYS = (
    "id", "input", "input_hashes", "report_id", "report_filename", "options",
    "probe_cc", "probe_asn", "probe_ip", "probe_city", "backend_version",
    "data_format_version", "test_name", "test_version", "test_start_time",
    "measurement_start_time", "test_runtime", "test_helpers", "software_name",
    "software_version", "bucket_date", "test_keys",
)
_SCHEMA_SET = frozenset(SCHEMA_KEYS)

_LEGACY_NAMES = {
    "http_requests": ("http_requests", "http_requests_test", "HTTP Requests Test"),
    "http_host": ("http_host", "HTTP Host"),
    "bridge_reachability": ("bridge_reachability", "bridgereachability"),
    "tcp_connect": ("tcp_connect", "TCP Connect"),
    "dns_consistency": ("dns_consistency", "dnstamper", "DNS tamper"),
    "http_invalid_request_line": ("http_invalid_request_line", "HTTP Invalid Request Line",
                                  "test_random_big_request_method",
                                  "test_random_invalid_field_count"),
    "http_header_field_manipulation": ("http_header_field_manipulation",
                                       "HTTP Header Field Manipulation",
                                       "test_get_random_capitalization",
                                       "test_put_random_capitalization",
                                       "test_post_random_capitalization"),
    "multi_protocol_traceroute": ("multi_protocol_traceroute", "multi_protocol_traceroute_test",
                                  "Multi Protocol Traceroute Test", "traceroute"),
    "parasitic_traceroute": ("parasitic_traceroute_test", "parasitic_tcp_traceroute_test"),
    "tls_handshake": ("tls_handshake", "tls-handshake"),
    "captive_portal": ("captivep", "captiveportal"),
    "http_filtering_bypass": ("HTTPFilteringBypass", "httpfilteringbypass"),
    "http_trix": ("HTTPTrix", "httptrix"),
    "netalyzr_wrapper": ("netalyzrwrapper",),
    "invalid": ("summary", "test_get", "test_post", "test_put", "test_send_host_header"),
}
TEST_NAME_MAP = {old: new for new, olds in _LEGACY_NAMES.items() for old in olds}
for _n in ("dns_injection", "http_test", "http_url_list", "dns_spoof",
           "meek_fronted_requests_test", "lantern_circumvention_tool_test", "psiphon_test",
           "this_test_is_nameless"):
    TEST_NAME_MAP[_n] = _n

HTTP_TESTS = frozenset((
    "http_requests", "meek_fronted_requests", "domclass_collector", "http_keyword_filtering",
    "http_uk_mobile_networks", "http_header_field_manipulation", "http_url_list", "http_host",
    "squid", "captive_portal", "psiphon", "tor_http_requests_test"))
DNS_TESTS = frozenset(("dns_consistency", "dns_injection", "captive_portal"))
REJECTED_TESTS = frozenset((
    "chinatrigger", "keyword_filtering", "parasitic_traceroute", "multi_protocol_traceroute",
    "dns_spoof", "captive_portal", "tls_handshake", "tcp_connect", "bridge_reachability",
    "lantern", "psiphon"))

_LETTERS = string.ascii_lowercase + string.ascii_uppercase
_TS = "%Y-%m-%d %H:%M:%S"


class NormalizationError(ValueError):
    """The entry cannot be normalized and is skipped (§8.3)."""


# --- trivial ids (§8.4) -------------------------------------------------------

def trivial_id(raw: bytes, msm: dict) -> str:
    """``01`` + start date ``YYYYMMDD`` + 30 hex of SHAKE-128(raw)."""
    day = "00000000"
    mst = msm.get("measurement_start_time") if isinstance(msm, dict) else None
    if isinstance(mst, str):
        try:
            day = dt.datetime.strptime(mst, _TS).strftime("%Y%m%d")
        except ValueError:
            pass
    return "01" + day + hashlib.shake_128(raw).hexdigest(15)


# --- splitting (§8.1) ---------------------------------------------------------

def iter_yaml_documents(blob: bytes) -> Iterator[bytes]:
    """Each document from ``---\\n`` to ``\\n...\\n`` (both included)."""
    pos, n = 0, len(blob)
    while pos < n:
        if blob.startswith(b"---\n", pos):
            end = blob.find(b"\n...\n", pos)
            if end == -1:
                log.info("truncated last YAML document ignored")
                return
            end += 5
            yield blob[pos:end]
            pos = end
        elif blob.startswith(b"...\n", pos):
            pos += 4
        elif blob.startswith(b"#", pos):
            nl = blob.find(b"\n", pos)
            pos = n if nl == -1 else nl + 1
        elif blob.startswith(b"\n", pos):
            pos += 1
        else:
            log.info("broken YAML frame at byte %d: rest of the report ignored", pos)
            return


def _load(doc: bytes):
    return yaml.load(doc, Loader=_Loader)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also accepts the legacy ``!!set`` (as a list)."""


_Loader.add_constructor("tag:yaml.org,2002:set",
                        lambda loader, node: list(loader.construct_mapping(node).keys()))


# --- header (§8.2) ------------------------------------------------------------

def _decode_city(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "ignore")
    return v


def generate_report_id(header: dict) -> str:
    start = header.get("start_time") or 0
    ts = dt.datetime.fromtimestamp(float(start), dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ_")
    h = hashlib.sha512()
    for key, default in (("probe_cc", "ZZ"), ("probe_asn", "AS0"), ("test_name", "invalid"),
                         ("software_version", "0.0.0")):
        v = header.get(key, default)
        h.update(str(v).encode("utf-8"))
    city = header.get("probe_city", "None")
    if city is not None:
        h.update(str(city).encode("utf-8"))
    return ts + "".join(_LETTERS[b % 52] for b in h.digest()[:50])


def prepare_header(header: dict) -> dict:
    header = dict(header)
    if "probe_city" in header:
        header["probe_city"] = _decode_city(header["probe_city"])
    if not header.get("report_id"):
        header["report_id"] = generate_report_id(header)
    return header


# --- entries (§8.3) -----------------------------------------------------------

def _epoch_ts(v) -> str:
    return dt.datetime.fromtimestamp(float(v or 0), dt.timezone.utc).strftime(_TS)


def _text(v, field: str = "value"):
    if isinstance(v, bytes):
        v = v.decode("utf-8", "backslashreplace")
    elif isinstance(v, str):
        v = v.replace("\x00", "")
    return v


def _headers_to_dict(headers) -> dict:
    if isinstance(headers, dict):
        return {k: _text(v) for k, v in headers.items()}
    out = {}
    for item in headers or ():
        if not item:
            continue
        name, values = item[0], item[1]
        value = values[0] if isinstance(values, list) and values else values
        value = _text(value)
        if isinstance(value, str) and len(value) >= 10000:
            raise NormalizationError("header value too long")
        out[_text(name)] = value
    return out


def _normalize_http(entry: dict) -> None:
    tk = entry["test_keys"]
    if entry.get("input") is None:
        opts = entry.get("options") or []
        if isinstance(opts, list):
            for i, o in enumerate(opts[:-1]):
                if o in ("--url", "-u"):
                    entry["input"] = opts[i + 1]
    if "requests" not in tk and ("request" in tk or "response" in tk):
        tk["requests"] = [{"request": tk.pop("request", None),
                           "response": tk.pop("response", None)}]
    normal, tor = [], []
    for rr in tk.get("requests") or []:
        if not isinstance(rr, dict):
            rr = {}
        req = rr.get("request")
        if not isinstance(req, dict):
            req = {"body": None, "headers": {}}
            if "url" not in req:
                raise NormalizationError("request without url")
        resp = rr.get("response")
        if not isinstance(resp, dict):
            resp = {"body": None, "headers": {}}
        for part in (req, resp):
            part["headers"] = _headers_to_dict(part.get("headers"))
            part["body"] = _text(part.get("body"))
        url = req.get("url") or ""
        is_tor = False
        if isinstance(url, str) and url.startswith("shttp://"):
            req["url"] = "http://" + url[len("shttp://"):]
            is_tor = True
        tor_info = req.get("tor")
        if tor_info is True or (isinstance(tor_info, dict) and tor_info.get("is_tor") is True):
            is_tor = True
        tor_info = tor_info if isinstance(tor_info, dict) else {}
        req["tor"] = {"is_tor": is_tor, "exit_ip": tor_info.get("exit_ip"),
                      "exit_name": tor_info.get("exit_name")}
        lowered = {str(k).lower(): v for k, v in resp["headers"].items()}
        rr["response_length"] = lowered.get("content-length")
        rr["request"], rr["response"] = req, resp
        (tor if is_tor else normal).append(rr)
    if "requests" in tk:
        tk["requests"] = normal[:1] + tor[:1] + normal[1:] + tor[1:]
    if isinstance(tk.get("headers_diff"), (set, frozenset)):
        tk["headers_diff"] = list(tk["headers_diff"])


_QUERY_HOST = re.compile(r"\[Query\('(.+?)'")
_TTL = re.compile(r"ttl=(\d+)")
_TYPE = re.compile(r"type=([A-Z]+)")
_ADDRESS = re.compile(r"address=(\S+)")
_NAME = re.compile(r"name=(\S+)")


def _answer(a) -> dict:
    rr = str(a[0]) if isinstance(a, (list, tuple)) and a else str(a)
    payload = str(a[1]) if isinstance(a, (list, tuple)) and len(a) > 1 else ""
    m = _TTL.search(rr)
    out = {"ttl": m.group(1) if m else ""}
    m = _TYPE.search(rr)
    atype = m.group(1) if m else ""
    out["answer_type"] = atype
    if atype == "A":
        m = _ADDRESS.search(payload)
        out["ipv4"] = m.group(1) if m else None
    elif atype == "MX":
        m = _ADDRESS.search(payload)
        out["hostname"] = m.group(1) if m else None
        m = re.search(r"preference=(\d+)", payload)
        out["preference"] = m.group(1) if m else None
    elif atype in ("PTR", "CNAME"):
        m = _NAME.search(payload)
        out["hostname"] = m.group(1).rstrip(">") if m else None
    elif atype == "SOA":
        for key, pat in (("responsible_name", r"rname=(\S+)"), ("hostname", r"mname=(\S+)"),
                         ("serial_number", r"serial=(\d+)"), ("refresh_interval", r"refresh=(\d+)"),
                         ("retry_interval", r"retry=(\d+)"), ("minimum_ttl", r"minimum=(\d+)"),
                         ("expiration_limit", r"expire=(\d+)")):
            m = re.search(pat, payload)
            out[key] = m.group(1) if m else None
    return out


def _normalize_dns(entry: dict) -> None:
    tk = entry["test_keys"]
    tk.pop("test_resolvers", None)
    tampering = tk.pop("tampering", None)
    if tampering:
        pairs = tampering.items() if isinstance(tampering, dict) else tampering
        tk["errors"] = tampering
        tk["successful"] = [r for r, v in pairs if v is False]
        pairs = tampering.items() if isinstance(tampering, dict) else tampering
        tk["failed"] = [r for r, v in pairs if v is not True]
        pairs = tampering.items() if isinstance(tampering, dict) else tampering
        tk["inconsistent"] = [r for r, v in pairs if v is True]
    elif entry["test_name"] == "dns_consistency":
        tk["errors"] = {}
        tk["successful"], tk["failed"], tk["inconsistent"] = [], [], []
    queries = []
    for q in tk.get("queries") or []:
        if not isinstance(q, dict):
            continue
        q = dict(q)
        m = _QUERY_HOST.search(str(q.get("query") or ""))
        q["hostname"] = m.group(1) if m else None
        resolver = q.pop("resolver", None)
        if isinstance(resolver, (list, tuple)) and len(resolver) == 2:
            q["resolver_hostname"], q["resolver_port"] = resolver[0], resolver[1]
        else:
            q["resolver_hostname"] = q["resolver_port"] = None
        q.pop("addrs", None)
        q["answers"] = [_answer(a) for a in q.get("answers") or []]
        if not q.get("failure") and not q["answers"]:
            q["failure"] = "no_answer"
        queries.append(q)
    if "queries" in tk:
        tk["queries"] = queries


def normalize_entry(entry: dict, bucket_date: str, report_filename: str,
                    raw_header: bytes = b"", raw_entry: bytes = b"") -> dict:
    """§8.3 on an entry already merged with its header."""
    entry = dict(entry)
    report = entry.pop("report", None)
    if isinstance(report, dict):
        entry.update(report)
    tn = entry.get("test_name")
    if tn is None:
        tn = "invalid"
    elif isinstance(tn, str):
        tn = TEST_NAME_MAP.get(tn, tn.lower())
    else:
        raise NormalizationError("test_name is not a string")
    entry["test_name"] = tn
    if tn in REJECTED_TESTS:
        raise NormalizationError(f"test {tn} is not normalized")

    entry["bucket_date"] = bucket_date
    if not entry.get("id"):
        entry["id"] = str(uuid.UUID(bytes=hashlib.sha1(raw_header + raw_entry).digest()[:16]))
    entry["report_filename"] = report_filename
    for k in SCHEMA_KEYS:
        entry.setdefault(k, None)

    if entry["data_format_version"] == "0.2.0":
        if entry["test_keys"] is None:
            _move_to_test_keys(entry)
        return entry

    start = entry.get("start_time")
    test_start = _epoch_ts(start)
    tst = entry["test_start_time"]
    if isinstance(tst, float):
        entry["test_start_time"] = test_start
        entry["measurement_start_time"] = _epoch_ts(tst)
    elif tst is None:
        entry["test_start_time"] = entry["measurement_start_time"] = test_start
    else:
        try:
            entry["test_start_time"] = dt.datetime.strptime(tst, _TS).strftime(_TS)
            entry["measurement_start_time"] = dt.datetime.strptime(
                entry["measurement_start_time"], _TS).strftime(_TS)
        except (TypeError, ValueError) as e:
            raise NormalizationError(f"bad start times: {e}") from e
    entry.pop("start_time", None)
    entry["data_format_version"] = "0.2.0"
    if isinstance(entry["options"], dict):
        entry["options"] = entry["options"].get("subargs")

    _move_to_test_keys(entry)
    if tn in HTTP_TESTS:
        _normalize_http(entry)
    elif tn in DNS_TESTS:
        _normalize_dns(entry)
    tk = entry["test_keys"]
    if tn == "website_probe" and isinstance(tk.get("headers_diff"), (set, frozenset)):
        tk["headers_diff"] = list(tk["headers_diff"])
    if tn == "http_invalid_request_line" and isinstance(tk.get("received"), list):
        tk["received"] = [x.decode("utf-8", "ignore") if isinstance(x, bytes) else x
                          for x in tk["received"]]
    for rr in tk.get("requests") or []:
        resp = rr.get("response") if isinstance(rr, dict) else None
        if isinstance(resp, dict) and isinstance(resp.get("body"), bytes):
            resp["body"] = resp["body"].decode("utf-8", "backslashreplace")
    return entry


def _move_to_test_keys(entry: dict) -> None:
    tk = entry["test_keys"]
    if tk is None:
        tk = entry["test_keys"] = {}
    for k in [k for k in entry if k not in _SCHEMA_SET]:
        tk[k] = entry.pop(k)


def iter_yaml_report(blob: bytes, bucket_date: str, report_filename: str
                     ) -> Iterator[tuple[bytes, dict]]:
    """(entry document bytes, normalized measurement) for each usable entry.
    A broken header raises; a broken entry is logged and skipped."""
    docs = iter_yaml_documents(blob)
    raw_header = next(docs, None)
    if raw_header is None:
        raise NormalizationError("empty YAML report")
    header = _load(raw_header)
    if not isinstance(header, dict):
        raise NormalizationError("YAML report header is not a mapping")
    header = prepare_header(header)
    for raw_entry in docs:
        try:
            entry = _load(raw_entry)
            if entry is None:
                continue
            if not isinstance(entry, dict):
                raise NormalizationError("entry is not a mapping")
            merged = dict(entry)
            hdr = header
            if "test_start_time" in merged and "test_start_time" in header:
                hdr = {k: v for k, v in header.items() if k != "test_start_time"}
            merged.update(hdr)
            yield raw_entry, normalize_entry(merged, bucket_date, report_filename,
                                             raw_header, raw_entry)
        except (yaml.YAMLError, NormalizationError, TypeError, ValueError,
                AttributeError, KeyError, IndexError) as e:
            log.info("skipping YAML entry of %s: %s", report_filename, e)


def normalize_yaml_post(content: str | bytes) -> dict:
    """A post of ``format: yaml``: one measurement entry as YAML. Legacy
    entries (data format before 0.2.0) are normalized like report entries."""
    entry = _load(content)
    if not isinstance(entry, dict):
        return entry
    if entry.get("data_format_version") == "0.2.0":
        return entry
    if "probe_city" in entry:
        entry["probe_city"] = _decode_city(entry["probe_city"])
    raw = content.encode("utf-8") if isinstance(content, str) else content
    try:
        return normalize_entry(entry, bucket_date="", report_filename="", raw_entry=raw)
    except (NormalizationError, TypeError, ValueError, AttributeError, KeyError) as e:
        log.info("YAML post not normalized: %s", e)
        return entry
