"""Processing of one measurement (fastpath.md §1, §2, §6.2, §7, §11):
parse, unwrap, discard, score, flag wrong dates, build the rows.

``process_measurement`` is pure (no I/O, no metrics): the daemon, the
reprocessor and the scoring CLI decide what to do with its ``Outcome`` and
count discards and errors by ``reason``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import ujson
import yaml

from .fingerprints import Fingerprints, TimedMatching
from .rows import FastpathRow, ObsOpenvpnRow
from .scoring import SCORER_TIMERS, score_measurement

log = logging.getLogger("fastpath")

SCORED, DISCARDED, ERROR = "scored", "discarded", "error"

# ClickHouse DateTime covers 1970-01-01 .. 2106-02-07 (UTC).
_DT_MIN = dt.datetime(1970, 1, 1)
_DT_MAX = dt.datetime(2106, 2, 7)
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1
_INT32_MIN, _INT32_MAX = -2**31, 2**31 - 1
_TS_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)")
_UID_TS_RE = re.compile(r"(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)\.(\d{6})_")


@dataclass
class Outcome:
    uid: str
    status: str                       # "scored" | "discarded" | "error"
    row: FastpathRow | None = None    # set when scored and build_row
    openvpn_row: ObsOpenvpnRow | None = None
    scores: dict | None = None
    reason: str | None = None         # why discarded / failed (also set on a
                                      # scored measurement whose openvpn row failed)
    # Row fields whose unpaired UTF-16 surrogates were replaced (see
    # valid_unicode_row); the raw body keeps them as sent.
    replaced_text: int = 0
    # (§12 timer name, milliseconds) of the scoring phases
    timings: tuple[tuple[str, float], ...] = ()


class RowError(ValueError):
    """The measurement scored but cannot become a row (§2.1)."""


class _Reject(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def scores_json(scores: dict) -> str:
    """§3: compact, key order kept, non-ASCII as \\u escapes, '/' as '\\/'."""
    return ujson.dumps(scores, ensure_ascii=True, escape_forward_slashes=True)


def parse_ts(v) -> dt.datetime:
    """A ``YYYY-MM-DD HH:MM:SS`` measurement timestamp (naive UTC)."""
    if type(v) is not str:
        raise RowError(f"timestamp is not a string: {v!r:.40}")
    m = _TS_RE.fullmatch(v)
    if m is None:
        raise RowError(f"bad timestamp {v!r:.40}")
    try:
        return dt.datetime(*map(int, m.groups()))
    except ValueError as e:
        raise RowError(f"bad timestamp {v!r:.40}") from e


def _uid_receive_time(uid: str) -> dt.datetime | None:
    m = _UID_TS_RE.match(uid)
    if m is None:
        return None
    try:
        return dt.datetime(*map(int, m.groups()))
    except ValueError:
        return None


def flag_wrong_date(msm: dict, uid: str, scores: dict) -> None:
    """§2.2: start time more than 1 h in the future or 365 days in the past."""
    if not uid.startswith("20") or len(uid) < 20:
        return
    recv = _uid_receive_time(uid)
    if recv is None:
        return
    start = msm.get("measurement_start_time") or ""
    try:
        start = parse_ts(start)
    except RowError:
        return
    delta = (recv - start).total_seconds()
    if delta < -3600:
        scores["accuracy"] = 0.0
        scores["msg"] = "Measurement start time from the future"
    elif delta > 31536000:
        scores["accuracy"] = 0.0
        scores["msg"] = "Measurement start time too old"


# --- parsing and unwrapping (§1 steps 2-4) ---------------------------------

def _parse(raw: bytes | None, doc: dict | None) -> dict:
    if doc is None:
        if raw is None:
            raise _Reject(ERROR, "no_body")
        try:
            doc = ujson.loads(raw)
        except (ValueError, TypeError, OverflowError):
            raise _Reject(ERROR, "json_parse")
    if not isinstance(doc, dict):
        raise _Reject(ERROR, "not_an_object")
    return doc


def _is_verified(doc: dict) -> str:
    v = doc.get("is_verified")
    if v is None:
        return "u"
    if v not in ("u", "t", "f") or type(v) is not str:
        log.error("unexpected is_verified value %r", v)
        return "u"
    return v


def _unwrap(doc: dict) -> dict:
    if "content" not in doc or "format" not in doc:
        return doc
    fmt = doc["format"]
    fmt = fmt.lower() if isinstance(fmt, str) else None
    if fmt == "json":
        msm = doc["content"]
    elif fmt == "yaml":
        msm = _load_yaml_post(doc["content"])
    else:
        raise _Reject(ERROR, "bad_format")
    if not isinstance(msm, dict):
        raise _Reject(ERROR, "not_an_object")
    return msm


def _load_yaml_post(content) -> dict:
    from .yaml_normalize import normalize_yaml_post
    if not isinstance(content, (str, bytes)):
        raise _Reject(ERROR, "not_an_object")
    try:
        return normalize_yaml_post(content)
    except yaml.YAMLError:
        raise _Reject(ERROR, "yaml_parse")


def _discard_reason(msm: dict) -> str | None:
    """§1 step 5. A null probe_cc / probe_asn fails ([quirk])."""
    if msm.get("report_id") is None:
        return "no_report_id"
    cc = msm.get("probe_cc", "")
    if not isinstance(cc, str):
        raise _Reject(ERROR, "bad_probe_cc")
    if cc.upper() == "ZZ":
        return "cc_zz"
    asn = msm.get("probe_asn", "")
    if not isinstance(asn, str):
        raise _Reject(ERROR, "bad_probe_asn")
    if asn.upper() == "AS0":
        return "asn_0"
    return None


# --- row building (§6.2, §7) -----------------------------------------------

def _nn(v) -> str:
    """``""`` when missing-or-null; other non-strings cannot go in a String column."""
    if v is None:
        return ""
    if type(v) is not str:
        if isinstance(v, str):
            return str(v)
        raise RowError(f"expected a string, got {type(v).__name__}")
    return v


def _number(v, default: float = 0.0) -> float:
    if v is None:
        return default
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    raise RowError(f"expected a number, got {v!r:.40}")


def parse_probe_asn(v) -> int:
    """The permitted deviation of §2.1: ``^AS[0-9]+$`` (any case), else an error."""
    if type(v) is not str or len(v) < 3 or v[:2].upper() != "AS" or not v[2:].isdigit() \
            or not v[2:].isascii():
        raise RowError(f"bad probe_asn {v!r:.40}")
    asn = int(v[2:])
    if asn > _UINT32_MAX:
        raise RowError(f"probe_asn out of range {v!r:.40}")
    return asn


def _row_time(v) -> dt.datetime:
    t = parse_ts(v)
    if not (_DT_MIN <= t < _DT_MAX):
        raise RowError(f"timestamp outside the DateTime range: {v}")
    return t


def _input_and_domain(msm: dict) -> tuple[str, str]:
    inp = msm.get("input")
    if not inp:
        return "", ""
    if isinstance(inp, list):
        if msm.get("test_name") != "meek_fronted_requests_test":
            raise RowError("list input")
        if not all(type(x) is str for x in inp):
            raise RowError("list input with non-string elements")
        return "{" + ",".join(inp) + "}", inp[0]
    if type(inp) is not str:
        raise RowError(f"input of type {type(inp).__name__}")
    if "//" not in inp:
        return inp, ""
    try:
        return inp, urlsplit(inp).netloc
    except ValueError:
        # e.g. an unbalanced "[" in the host: the input is kept, no domain
        return inp, ""


def _run_link_id(annotations: dict) -> int | None:
    v = annotations.get("ooni_run_link_id")
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return None
        v = int(v)
    elif isinstance(v, str):
        try:
            v = int(v)
        except ValueError:
            return None
    elif not isinstance(v, int):
        raise RowError(f"ooni_run_link_id of type {type(v).__name__}")
    # outside UInt64 it cannot be a link id: stored as unknown
    return v if 0 <= v <= _UINT64_MAX else None


def _test_helper(msm: dict) -> tuple[str, str]:
    th = msm.get("test_helpers")
    if not isinstance(th, dict):
        return "", ""
    backend = th.get("backend")
    if not isinstance(backend, dict):
        return "", ""
    return _nn(backend.get("address")), _nn(backend.get("type"))


def _tf(b: bool) -> str:
    return "t" if b else "f"


def build_row(msm: dict, uid: str, scores: dict, flags: tuple[bool, bool, bool],
              is_verified: str) -> FastpathRow:
    anomaly, confirmed, failure = flags
    annotations = msm.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
    inp, domain = _input_and_domain(msm)
    th_address, th_type = _test_helper(msm)
    analysis = scores.get("analysis")
    blocking_type = analysis.get("blocking_type") if isinstance(analysis, dict) else None
    try:
        scores_s = scores_json(scores)
    except (TypeError, OverflowError, ValueError) as e:
        raise RowError(f"scores not serializable: {e}") from e
    platform = annotations.get("platform")
    return FastpathRow(
        measurement_uid=uid,
        report_id=_nn(msm.get("report_id")),
        input=inp,
        probe_cc=_nn(msm.get("probe_cc")),
        probe_asn=parse_probe_asn(msm.get("probe_asn")),
        test_name=_nn(msm.get("test_name")),
        test_start_time=_row_time(msm.get("test_start_time")),
        measurement_start_time=_row_time(msm.get("measurement_start_time")),
        scores=scores_s,
        platform="unset" if platform is None else _nn(platform),
        anomaly=_tf(anomaly),
        confirmed=_tf(confirmed),
        msm_failure=_tf(failure),
        blocking_type=_nn(blocking_type),
        domain=domain,
        software_name=_nn(msm.get("software_name")),
        software_version=_nn(msm.get("software_version")),
        test_version=_nn(msm.get("test_version")),
        test_runtime=_number(msm.get("test_runtime")),
        architecture=_nn(annotations.get("architecture")),
        engine_name=_nn(annotations.get("engine_name")),
        engine_version=_nn(annotations.get("engine_version")),
        test_helper_address=th_address,
        test_helper_type=th_type,
        ooni_run_link_id=_run_link_id(annotations),
        is_verified=is_verified,
    )


def _int32_or_zero(v: int) -> int:
    return v if _INT32_MIN <= v <= _INT32_MAX else 0


def _resolver_asn(v) -> int:
    if v is None or type(v) is not str:
        return 0
    s = v[2:] if v[:2].upper() == "AS" else v
    try:
        return _int32_or_zero(int(s))
    except ValueError:
        return 0


def _last_handshake_transaction_id(tk: dict) -> int:
    try:
        ids = [ev["transaction_id"] for ev in tk["network_events"]]
        best = max(ids)
        if isinstance(best, bool) or not isinstance(best, int):
            return 0
        return _int32_or_zero(best)
    except Exception:
        return 0


def build_openvpn_row(msm: dict, uid: str, row: FastpathRow) -> ObsOpenvpnRow:
    tk = msm.get("test_keys")
    if tk is None:
        tk = {}
    if not isinstance(tk, dict):
        raise RowError("test_keys is not an object")
    return ObsOpenvpnRow(
        anomaly=msm.get("success") is True,
        bootstrap_time=_number(tk.get("bootstrap_time")),
        confirmed=False,
        failure=_nn(tk.get("failure")),
        input=_nn(msm.get("input")),
        last_handshake_transaction_id=_last_handshake_transaction_id(tk),
        measurement_start_time=row.measurement_start_time,
        measurement_uid=uid,
        minivpn_version=_nn(tk.get("minivpn_version")),
        obfs4_version=_nn(tk.get("obfs4_version")),
        obfuscation=_nn(tk.get("obfuscation")),
        platform=_nn(msm.get("platform")),
        probe_asn=_int32_or_zero(row.probe_asn),
        probe_cc=_nn(msm.get("probe_cc")),
        probe_network_name=_nn(msm.get("probe_network_name")),
        provider=_nn(tk.get("provider")),
        remote=_nn(tk.get("remote")),
        report_id=_nn(msm.get("report_id")),
        resolver_asn=_resolver_asn(msm.get("resolver_asn")),
        resolver_ip=_nn(msm.get("resolver_ip")),
        resolver_network_name=_nn(msm.get("resolver_network_name")),
        software_name=_nn(msm.get("software_name")),
        software_version=_nn(msm.get("software_version")),
        success=bool(tk.get("success")),
        success_handshake=bool(tk.get("success_handshake")),
        success_icmp=bool(tk.get("success_icmp")),
        success_urlgrab=bool(tk.get("success_urlgrab")),
        test_runtime=_number(msm.get("test_runtime")),
        test_start_time=row.test_start_time,
        transport=_nn(tk.get("transport")),
    )


# --- the pipeline -----------------------------------------------------------

def derive_flags(scores: dict) -> tuple[bool, bool, bool]:
    """§1 step 8: (anomaly, confirmed, msm_failure)."""
    anomaly = scores.get("blocking_general", 0.0) > 0.5
    failure = scores.get("accuracy", 1.0) < 0.5
    confirmed = bool(scores.get("confirmed", False))
    return anomaly, confirmed, failure


def process_measurement(raw: bytes | None, doc: dict | None, uid: str,
                        fps: Fingerprints, build_row: bool = True) -> Outcome:
    """Never raises: every failure becomes an ``error`` outcome with a reason."""
    try:
        return _process(raw, doc, uid, fps, build_row)
    except _Reject as r:
        return Outcome(uid=uid, status=r.status, reason=r.reason)
    except RecursionError:
        return Outcome(uid=uid, status=ERROR, reason="too_deep")
    except Exception:
        log.exception("unexpected error processing %s", uid)
        return Outcome(uid=uid, status=ERROR, reason="unhandled_exception")


def _process(raw, doc, uid, fps, want_row) -> Outcome:
    if not uid or not isinstance(uid, str):
        raise _Reject(ERROR, "no_uid")
    doc = _parse(raw, doc)
    is_verified = _is_verified(doc)
    msm = _unwrap(doc)

    reason = _discard_reason(msm)
    if reason is not None:
        return Outcome(uid=uid, status=DISCARDED, reason=reason)

    if "test_name" not in msm:
        raise _Reject(ERROR, "no_test_name")
    timed = TimedMatching(fps)
    t0 = time.perf_counter()
    try:
        scores = score_measurement(msm, timed)
    except RecursionError:
        raise
    except Exception as e:
        log.info("scorer error on %s: %s: %s", uid, type(e).__name__, e)
        raise _Reject(ERROR, "scorer_error")
    timings = _scoring_timings(msm["test_name"], (time.perf_counter() - t0) * 1000, timed)

    flag_wrong_date(msm, uid, scores)
    flags = derive_flags(scores)
    if not want_row:
        return Outcome(uid=uid, status=SCORED, scores=scores, timings=timings)

    try:
        row = build_row(msm, uid, scores, flags, is_verified)
    except (RowError, KeyError, TypeError, ValueError) as e:
        log.info("cannot build the row of %s: %s", uid, e)
        raise _Reject(ERROR, "row_error")

    row, fixed = valid_unicode_row(row)
    out = Outcome(uid=uid, status=SCORED, row=row, scores=scores, replaced_text=fixed,
                  timings=timings)
    if msm.get("test_name") == "openvpn":
        try:
            ovpn, fixed = valid_unicode_row(build_openvpn_row(msm, uid, row))
            out.openvpn_row = ovpn
            out.replaced_text += fixed
        except (RowError, TypeError, ValueError) as e:
            log.info("cannot build the obs_openvpn row of %s: %s", uid, e)
            out.reason = "openvpn_row_error"
    return out


def _scoring_timings(test_name, ms: float, timed: TimedMatching) -> tuple[tuple[str, float], ...]:
    out = [("score_measurement", ms)]
    own = SCORER_TIMERS.get(test_name) if isinstance(test_name, str) else None
    if own is not None:
        out.append((own, ms))
    if timed.used:
        out.append(("match_fingerprints", timed.seconds * 1000))
    return tuple(out)


# JSON allows "\ud800" alone; Python decodes it to a lone surrogate, which
# no UTF-8 encoder (ours, the database's) accepts. Paired surrogates are
# already one code point after decoding, so any left is unpaired.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_text(v):
    if isinstance(v, str):
        if v.isascii() or not _SURROGATE.search(v):
            return v
        return _SURROGATE.sub("\ufffd", v)
    if isinstance(v, (list, tuple)):
        return type(v)(_valid_text(x) for x in v)
    return v


def valid_unicode_row(row):
    """``row`` (a frozen row dataclass) with every unpaired surrogate in its
    text replaced by U+FFFD, and how many fields changed. Without this such a
    row can never be inserted: it would be retried at every start, for ever."""
    changed = {}
    for f in dataclasses.fields(row):
        v = getattr(row, f.name)
        nv = _valid_text(v)
        if nv is not v and nv != v:
            changed[f.name] = nv
    if not changed:
        return row, 0
    return dataclasses.replace(row, **changed), len(changed)
