"""Anonymous credentials for probes (docs/probe-protocol.md): the server's
key versions, the manifest they publish, the submission policy, and the
three protocol steps (registration, submission, credential update) run
through OONI's own library, ``ooniauth-py``. No cryptography lives here: this
module only chooses keys, validates inputs before they reach the library and
turns the library's outcome into statuses and 4xx errors.

Key material is a versioned JSON file (``ANONCRED_KEYS_FILE``; by default
``<data dir>/secrets/anoncred_keys.json``, generated once). Its last version
signs new credentials; older versions keep verifying submissions until they
are listed in ``ANONCRED_RETIRED_VERSIONS``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ooniauth_py

from ooni_common.config import Config, ConfigError

from ooniapi.core.errors import ApiError, BadRequest, Forbidden, PayloadTooLarge

NYM_SCOPE = "ooni.org/{probe_cc}/{probe_asn}"
KEYS_FORMAT = 1
U32_MAX = 2**32 - 1

# Serialized sizes measured with ooniauth-py 0.3.3: registration request 188
# base64 characters, update request about 660, pseudonym 44, submission
# proof 7-12 KB. The caps leave room for protocol growth while keeping
# junk away from the library.
MAX_SIGN_REQUEST = 4096
MAX_UPDATE_REQUEST = 8192
MAX_ZKP_REQUEST = 64 * 1024
MAX_NYM = 128
MAX_VERSION = 64

_B64_RE = re.compile(r"\A[A-Za-z0-9+/]*={0,2}\Z")
# The library panics (debug) or misbehaves on other shapes (its docstring).
_CC_RE = re.compile(r"\A[A-Z]{2}\Z")
_ASN_RE = re.compile(r"\AAS(0|[1-9][0-9]{0,9})\Z")

VERIFIED, FAILED, UNVERIFIED = "t", "f", "u"


class ProtocolFailure(Exception):
    """A credential message the library refused, with a stable code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _call(fn, *args):
    """Runs one library call, mapping its exceptions to ProtocolFailure.
    A Rust panic surfaces as ``pyo3_runtime.PanicException``, a
    BaseException: it is a refused input too, never a crash of the worker."""
    try:
        return fn(*args)
    except ooniauth_py.DeserializationFailed as e:
        raise ProtocolFailure("deserialization_failed", str(e)) from None
    except ooniauth_py.ProtocolError as e:
        raise ProtocolFailure("protocol_error", str(e)) from None
    except ooniauth_py.CredentialError as e:
        raise ProtocolFailure("credential_error", str(e)) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        # PanicException: the library asserts on degenerate inputs (all-zero
        # group elements); a malformed request, not a server failure.
        raise ProtocolFailure("invalid_request", f"rejected by the credential library "
                              f"({type(e).__name__})") from None


def is_base64(s: str) -> bool:
    return len(s) % 4 == 0 and bool(_B64_RE.match(s))


def check_b64_field(body: dict, key: str, max_len: int) -> str:
    """A required base64 string field of a credential request, as a 4xx."""
    v = body.get(key)
    if not isinstance(v, str) or not v:
        raise BadRequest(f"Missing or invalid {key}: expected a base64 string",
                         err_str="bad_request")
    if len(v) > max_len:
        raise PayloadTooLarge(f"{key} too large (limit {max_len} characters)",
                              err_str="request_too_large")
    if not is_base64(v):
        raise BadRequest(f"{key} is not valid base64", err_str="deserialization_failed")
    return v


def check_version_field(body: dict, key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v or len(v) > MAX_VERSION:
        raise BadRequest(f"Missing or invalid {key}: expected a manifest version string",
                         err_str="bad_request")
    return v


# --- keys -------------------------------------------------------------------

@dataclass(frozen=True)
class KeyVersion:
    version: str
    public_parameters: str
    secret_key: str
    created: str          # ISO 8601 UTC
    created_day: int      # the library's day number when the key was made

    def state(self) -> "ooniauth_py.ServerState":
        return _call(ooniauth_py.ServerState.from_creds, self.public_parameters, self.secret_key)

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "public_parameters": self.public_parameters,
                "secret_key": self.secret_key, "created": self.created,
                "created_day": self.created_day}


def new_key_version(number: int) -> KeyVersion:
    state = ooniauth_py.ServerState()
    pp = state.get_public_parameters()
    tag = hashlib.sha256(pp.encode()).hexdigest()[:10]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return KeyVersion(f"{number}-{tag}", pp, state.get_secret_key(),
                      now.strftime("%Y-%m-%dT%H:%M:%SZ"), ooniauth_py.ServerState.today())


def parse_keys(doc: Any, where: str) -> list[KeyVersion]:
    if not isinstance(doc, dict) or doc.get("format") != KEYS_FORMAT \
            or not isinstance(doc.get("versions"), list) or not doc["versions"]:
        raise ConfigError(f"{where}: not an anonymous-credential key file "
                          f"(expected {{format: {KEYS_FORMAT}, versions: [...]}})")
    out = []
    for i, v in enumerate(doc["versions"]):
        try:
            kv = KeyVersion(str(v["version"]), str(v["public_parameters"]),
                            str(v["secret_key"]), str(v["created"]), int(v["created_day"]))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{where}: version #{i} lacks version, public_parameters, "
                              "secret_key, created or created_day") from None
        if not kv.version or len(kv.version) > MAX_VERSION:
            raise ConfigError(f"{where}: version #{i} has an invalid name")
        try:
            kv.state()
        except ProtocolFailure as e:
            raise ConfigError(f"{where}: version {kv.version}: unusable keys ({e.message})") \
                from None
        out.append(kv)
    names = [k.version for k in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: duplicate version names")
    return out


def dump_keys(versions: list[KeyVersion]) -> bytes:
    return (json.dumps({"format": KEYS_FORMAT, "versions": [k.as_json() for k in versions]},
                       indent=1) + "\n").encode()


def _write_new(path: Path, data: bytes) -> None:
    """Creates ``path`` atomically, mode 0600; if another process created it
    first (gunicorn workers starting together) theirs wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def keys_path(cfg: Config) -> tuple[Path, bool]:
    """(path, configured): a configured file must exist; the default one in
    the data directory is generated on first use (standalone)."""
    p = cfg.get("ANONCRED_KEYS_FILE", None)
    if p:
        return Path(p), True
    return cfg.data_dir / "secrets" / "anoncred_keys.json", False


def load_keys(cfg: Config) -> list[KeyVersion]:
    path, configured = keys_path(cfg)
    if not path.exists():
        if configured:
            raise ConfigError(f"ANONCRED_KEYS_FILE {path} does not exist (create it with "
                              "`ooni-anoncred-keys new FILE`)")
        _write_new(path, dump_keys([new_key_version(1)]))
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read anonymous-credential keys {path}: {e}") from None
    return parse_keys(doc, str(path))


# --- policy -----------------------------------------------------------------

@dataclass(frozen=True)
class PolicyRule:
    probe_cc: str      # "*" or a country code
    probe_asn: str     # "*" or "AS<n>"
    min_age_days: int
    min_measurement_count: int

    def matches(self, cc: str, asn: str) -> bool:
        return self.probe_cc in ("*", cc) and self.probe_asn in ("*", asn)


def parse_policy(cfg: Config) -> list[PolicyRule]:
    """``ANONCRED_POLICY = "IT/*:7:10 */AS3269:0:5"``: CC/ASN:min age in
    days:min measurement count, first match wins; ``*/*`` with the defaults
    ``ANONCRED_MIN_AGE_DAYS`` / ``ANONCRED_MIN_MEASUREMENT_COUNT`` (0, 0)
    always closes the list."""
    rules = []
    for item in cfg.get_list("ANONCRED_POLICY", []):
        m = re.match(r"\A([A-Z]{2}|\*)/(AS[1-9][0-9]{0,9}|\*):([0-9]{1,5}):([0-9]{1,9})\Z", item)
        if not m:
            raise ConfigError(f"ANONCRED_POLICY: expected CC/ASN:MIN_AGE_DAYS:MIN_COUNT "
                              f"(CC and ASN may be *), got {item!r}")
        rules.append(PolicyRule(m[1], m[2], int(m[3]), int(m[4])))
    if not any(r.probe_cc == "*" and r.probe_asn == "*" for r in rules):
        age = cfg.get_int("ANONCRED_MIN_AGE_DAYS", 0)
        count = cfg.get_int("ANONCRED_MIN_MEASUREMENT_COUNT", 0)
        if not (0 <= age <= 99999 and 0 <= count < U32_MAX):
            raise ConfigError("ANONCRED_MIN_AGE_DAYS / ANONCRED_MIN_MEASUREMENT_COUNT out of range")
        rules.append(PolicyRule("*", "*", age, count))
    return rules


def age_range(key: KeyVersion, rule: PolicyRule, today: int) -> tuple[int, int]:
    """The issuance days a credential may have: not before its key existed
    (a day of clock skew allowed), at least ``min_age_days`` ago. A narrow
    range keeps the probe's range proof, and its verification, small."""
    lo = max(0, key.created_day - 1)
    hi = min(U32_MAX, today + 1 - rule.min_age_days)
    # hi < lo: no credential of this key is old enough yet.
    return lo, hi


# --- the service ------------------------------------------------------------

@dataclass(frozen=True)
class Verification:
    is_verified: str                 # t, f or u (the fastpath column)
    submit_response: str | None = None
    error: str | None = None


class AnonCred:
    """What the routes need: the manifest, and the three protocol steps."""

    def __init__(self, versions: list[KeyVersion], retired: set[str],
                 policy: list[PolicyRule], manifest_url: str):
        unknown = retired - {k.version for k in versions}
        if unknown:
            raise ConfigError(f"ANONCRED_RETIRED_VERSIONS names unknown versions: "
                              f"{sorted(unknown)}")
        active = [k for k in versions if k.version not in retired]
        if not active or versions[-1].version in retired:
            raise ConfigError("ANONCRED_RETIRED_VERSIONS retires the current (last) key "
                              "version: add a new version first")
        self.versions = {k.version: k for k in versions}
        self.current = versions[-1]
        self.retired = retired
        self.policy = policy
        self.manifest_url = manifest_url
        # ServerState objects are rebuilt from the key strings once.
        self._states = {k.version: k.state() for k in active}
        # ooniauth-py 0.3.3 sets up its process-wide group generators in the
        # UserState and ServerState() constructors, not in from_creds: a
        # process whose first call is a submission check panics ("basepoints
        # uninitialized"), so every proof failed after a restart until
        # someone registered. Constructing a client state once sets them.
        _call(ooniauth_py.UserState, self.current.public_parameters)

    @classmethod
    def from_config(cls, cfg: Config) -> "AnonCred":
        base = cfg.get_str("BASE_URL", "https://api.ooni.io/").rstrip("/")
        return cls(load_keys(cfg), set(cfg.get_list("ANONCRED_RETIRED_VERSIONS", [])),
                   parse_policy(cfg), f"{base}/api/v1/manifest")

    @staticmethod
    def today() -> int:
        return ooniauth_py.ServerState.today()

    def rule_for(self, cc: str, asn: str) -> PolicyRule:
        for r in self.policy:
            if r.matches(cc, asn):
                return r
        return self.policy[-1]

    def manifest(self, today: int | None = None) -> dict[str, Any]:
        today = self.today() if today is None else today
        key = self.current
        policy = []
        for r in self.policy:
            lo, hi = age_range(key, r, today)
            policy.append({"match": {"probe_cc": r.probe_cc, "probe_asn": r.probe_asn},
                           "policy": {"age": [lo, hi],
                                      "min_measurement_count": r.min_measurement_count}})
        return {
            "manifest": {"nym_scope": NYM_SCOPE, "public_parameters": key.public_parameters,
                         "submission_policy": policy},
            "meta": {"version": key.version, "last_modification_date": key.created,
                     "manifest_url": self.manifest_url,
                     "library_version": ooniauth_py.__version__,
                     "protocol_version": ooniauth_py.get_protocol_version()},
            # The first FastAPI clients read these two at the top level.
            "version": key.version,
            "public_parameters": key.public_parameters,
        }

    def _active(self, version: str) -> tuple[KeyVersion, "ooniauth_py.ServerState"]:
        if version not in self.versions:
            raise BadRequest(f"Unknown manifest_version {version!r}", err_str="manifest_not_found")
        if version in self.retired:
            raise BadRequest(f"manifest_version {version!r} is retired: fetch "
                             "/api/v1/manifest again", err_str="manifest_retired")
        return self.versions[version], self._states[version]

    def sign(self, version: str, request_b64: str) -> tuple[str, int]:
        """Registration: (credential_sign_response, emission_day)."""
        _, state = self._active(version)
        try:
            resp = _call(state.handle_registration_request, request_b64)
        except ProtocolFailure as e:
            raise refused(e) from None
        return resp, self.today()

    def update(self, old_version: str, version: str, request_b64: str) -> str:
        """Key rotation: re-issues a credential of ``old_version`` under
        ``version`` (normally the current one)."""
        old, _ = self._active(old_version)
        _, state = self._active(version)
        if old_version == version:
            raise BadRequest("old_manifest_version and manifest_version are the same",
                             err_str="bad_request")
        try:
            return _call(state.handle_update_request, request_b64, old.public_parameters,
                         old.secret_key)
        except ProtocolFailure as e:
            raise refused(e) from None

    def verify_submission(self, fields: dict[str, Any], content_text: str | None,
                          probe_cc: Any, probe_asn: Any) -> Verification:
        """Verifies the proof of a ``submit_measurement`` body. Never raises
        for the probe's input: every problem is a failed verification (the
        measurement is stored anyway) with a short error code."""
        nym, zkp, version = fields.get("nym"), fields.get("zkp_request"), \
            fields.get("manifest_version")
        if nym is None and zkp is None:
            return Verification(UNVERIFIED)
        if not isinstance(nym, str) or not isinstance(zkp, str) \
                or len(nym) > MAX_NYM or len(zkp) > MAX_ZKP_REQUEST \
                or not is_base64(nym) or not is_base64(zkp):
            return Verification(FAILED, error="deserialization_failed")
        if not isinstance(version, str) or version not in self.versions:
            return Verification(FAILED, error="manifest_not_found")
        if version in self.retired:
            # An out-of-date credential proves nothing either way.
            return Verification(UNVERIFIED, error="manifest_retired")
        if content_text is None:
            # The proof binds the exact bytes of the content string.
            return Verification(FAILED, error="content_not_a_string")
        if not isinstance(probe_cc, str) or not _CC_RE.match(probe_cc) \
                or not isinstance(probe_asn, str) or not _ASN_RE.match(probe_asn):
            return Verification(FAILED, error="invalid_probe_cc_or_asn")
        key = self.versions[version]
        rule = self.rule_for(probe_cc, probe_asn)
        ranges = self._ranges(fields, key, rule)
        if ranges is None:
            return Verification(FAILED, error="policy_not_satisfied")
        state = self._states[version]
        last: ProtocolFailure | None = None
        for ar, count in ranges:
            try:
                resp = _call(state.handle_submit_request_with_hash, nym, zkp, probe_cc,
                             probe_asn, content_text, ar, count)
                return Verification(VERIFIED, submit_response=resp)
            except ProtocolFailure as e:
                last = e
                if e.code != "protocol_error":
                    break
        return Verification(FAILED, error=last.code if last else "protocol_error")

    def _ranges(self, fields: dict, key: KeyVersion, rule: PolicyRule
                ) -> list[tuple[tuple[int, int], int]] | None:
        """The (age range, minimum count) pairs to try. A probe may state the
        ones it proved (``age_range``, ``msm_range`` as the first FastAPI
        clients do) when they are at least as strict as the policy;
        otherwise the manifest's current range is used, and yesterday's as
        a second chance for a proof made with a manifest fetched before
        midnight UTC."""
        today = self.today()
        lo, hi = age_range(key, rule, today)
        ar, mr = fields.get("age_range"), fields.get("msm_range")
        if hi < lo:
            return None
        if ar is not None or mr is not None:
            a = _int_pair(ar) if ar is not None else (lo, hi)
            m = _int_pair(mr) if mr is not None else (rule.min_measurement_count, U32_MAX)
            if a is None or m is None or a[1] > hi or m[0] < rule.min_measurement_count:
                return None
            return [(a, m[0])]
        out = [((lo, hi), rule.min_measurement_count)]
        lo2, hi2 = age_range(key, rule, today - 1)
        if lo2 <= hi2 and (lo2, hi2) != (lo, hi):
            out.append(((lo2, hi2), rule.min_measurement_count))
        return out


def _int_pair(v: Any) -> tuple[int, int] | None:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        return None
    a, b = v
    if type(a) is not int or type(b) is not int or not 0 <= a <= b <= U32_MAX:
        return None
    return a, b


def refused(e: ProtocolFailure) -> ApiError:
    """sign_credential / update_credential: a malformed message is a 400, a
    well-formed one that does not verify a 403 (as the FastAPI service)."""
    if e.code not in ("protocol_error", "credential_error"):
        return BadRequest(f"Malformed credential request: {e.message}", err_str=e.code)
    return Forbidden(f"Credential request refused: {e.message}", err_str=e.code)


def proof_digest(zkp_request: str) -> bytes:
    return hashlib.sha256(zkp_request.encode()).digest()


# --- operator command -------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``ooni-anoncred-keys new FILE`` creates a key file with one version;
    ``ooni-anoncred-keys rotate FILE`` appends a new current version (the
    old ones stay accepted until listed in ANONCRED_RETIRED_VERSIONS);
    ``ooni-anoncred-keys list FILE`` prints versions, never secrets."""
    ap = argparse.ArgumentParser(prog="ooni-anoncred-keys", description=main.__doc__)
    ap.add_argument("action", choices=["new", "rotate", "list"])
    ap.add_argument("file", type=Path)
    a = ap.parse_args(argv)
    try:
        if a.action == "new":
            if a.file.exists():
                print(f"{a.file} exists; use rotate", file=sys.stderr)
                return 1
            _write_new(a.file, dump_keys([new_key_version(1)]))
        elif a.action == "rotate":
            versions = parse_keys(json.loads(a.file.read_bytes()), str(a.file))
            versions.append(new_key_version(len(versions) + 1))
            tmp = a.file.with_name(f".{a.file.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(dump_keys(versions))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, a.file)
        versions = parse_keys(json.loads(a.file.read_bytes()), str(a.file))
    except (OSError, ValueError, ConfigError) as e:
        print(f"ooni-anoncred-keys: {e}", file=sys.stderr)
        return 1
    for k in versions:
        print(f"{k.version}\tcreated {k.created}")
    print(f"current: {versions[-1].version} (restart the API to serve it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
