"""OONI Run descriptors (api.md §11): validation of what the OONI Run UI
sends, change detection between versions, and the shape the probe decodes
from ``/api/v2/oonirun/links/<id>`` (probe-protocol.md §3.15).

Pure functions, no database and no Flask.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ooniapi.core.errors import BadRequest, OoniError

INTL_FIELDS = ("name_intl", "short_description_intl", "description_intl")
TEXT_FIELDS = ("short_description", "description", "icon")
# A new version of the nettests, author or icon is a new descriptor; other
# changes (names, descriptions, translations) are translation updates.
STRUCTURAL_FIELDS = ("nettests", "author", "icon")
RUN_FLAGS = ("is_background_run_enabled", "is_manual_run_enabled")

# The 1.2 form this API emits for descriptor_creation_time, plus the forms a
# UI may reasonably send back: 0-6 fraction digits, optional Z or +00:00.
_CREATION_TIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|\+00:00)?$")


def empty_translation() -> OoniError:
    return OoniError("err_empty_translation_field", "Empty translation field")


def _check_intl(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise BadRequest(f"'{name}' field must be an object mapping language codes to text")
    for text in value.values():
        if not isinstance(text, str):
            raise BadRequest(f"'{name}' field must be an object mapping language codes to text")
        if not text.strip():
            raise empty_translation()


def _check_nettest(i: int, nt: Any) -> None:
    where = f"nettests[{i}]"
    if not isinstance(nt, dict):
        raise BadRequest(f"'{where}' must be an object")
    test_name = nt.get("test_name")
    if not isinstance(test_name, str) or not test_name.strip():
        raise BadRequest(f"'{where}.test_name' must be a non-empty string")
    inputs = nt.get("inputs")
    if inputs is not None and (not isinstance(inputs, list)
                               or not all(isinstance(x, str) for x in inputs)):
        raise BadRequest(f"'{where}.inputs' must be a list of strings")
    extra = nt.get("inputs_extra")
    if extra is not None:
        if not isinstance(extra, list):
            raise BadRequest(f"'{where}.inputs_extra' must be a list")
        if len(extra) != len(inputs or []):
            raise BadRequest(f"'{where}.inputs_extra' must have one item per input")
    options = nt.get("options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest(f"'{where}.options' must be an object")
    targets = nt.get("targets_name")
    if targets is not None and not isinstance(targets, str):
        raise BadRequest(f"'{where}.targets_name' must be a string")
    for flag in RUN_FLAGS:
        for key in (flag, f"{flag}_default"):
            if nt.get(key) is not None and not isinstance(nt[key], bool):
                raise BadRequest(f"'{where}.{key}' must be true, false or null")


def validate(descriptor: Any) -> dict[str, Any]:
    """The descriptor if it is acceptable, else raises BadRequest/OoniError.

    Beyond the required ``name`` and ``author``, values are type-checked
    because the probe decodes the stored descriptor into fixed Go types: a
    number among ``inputs`` would make it fail the whole OONI Run link."""
    if not isinstance(descriptor, dict):
        raise BadRequest("The request body must be a JSON object (an OONI Run descriptor)")
    name = descriptor.get("name")
    if name is None or name == "":
        raise BadRequest("'name' field must not be empty")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("'name' field must be a non-empty string")
    author = descriptor.get("author")
    if author is None:
        raise BadRequest("'author' field is required")
    if not isinstance(author, str) or not author.strip():
        raise BadRequest("'author' field must be a non-empty string")
    for f in INTL_FIELDS:
        _check_intl(f, descriptor.get(f))
    for f in TEXT_FIELDS:
        v = descriptor.get(f)
        if v is not None and not isinstance(v, str):
            raise BadRequest(f"'{f}' field must be a string")
    nettests = descriptor.get("nettests")
    if nettests is not None:
        if not isinstance(nettests, list):
            raise BadRequest("'nettests' field must be a list")
        for i, nt in enumerate(nettests):
            _check_nettest(i, nt)
    return descriptor


def is_structural_change(previous: dict[str, Any], new: dict[str, Any]) -> bool:
    return any(previous.get(f) != new.get(f) for f in STRUCTURAL_FIELDS)


def parse_creation_time(value: str) -> dt.datetime:
    """A ``descriptor_creation_time`` string as this API emits it, back to
    the naive UTC datetime stored (millisecond precision in the DB)."""
    m = _CREATION_TIME_RE.match(value.strip())
    if not m:
        raise BadRequest(f"Invalid creation_time: {value!r}")
    day, clock, frac, _tz = m.groups()
    try:
        t = dt.datetime.fromisoformat(f"{day}T{clock}")
    except ValueError:
        raise BadRequest(f"Invalid creation_time: {value!r}") from None
    return t.replace(microsecond=int((frac or "0").ljust(6, "0")))


def to_db_time(t: dt.datetime) -> dt.datetime:
    """Truncated to the milliseconds a DateTime64(3) keeps, so that the
    value returned to clients equals the stored one."""
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


# --- the probe-facing link (probe-protocol.md §3.15) ---------------------------

def _flag(nt: dict[str, Any], name: str) -> bool | None:
    for key in (name, f"{name}_default"):
        v = nt.get(key)
        if isinstance(v, bool):
            return v
    return None


def probe_nettest(nt: dict[str, Any]) -> dict[str, Any]:
    """One nettest with every field the probe decodes, of its exact type.

    Both flag spellings are sent: the Go probe reads
    ``is_background_run_enabled`` (bool or null) while the mobile apps,
    built against the FastAPI service, read ``..._default`` (bool)."""
    out = dict(nt)
    inputs = nt.get("inputs")
    extra = nt.get("inputs_extra")
    options = nt.get("options")
    targets = nt.get("targets_name")
    out["test_name"] = nt.get("test_name") if isinstance(nt.get("test_name"), str) else ""
    out["inputs"] = [x for x in inputs if isinstance(x, str)] if isinstance(inputs, list) else []
    out["inputs_extra"] = extra if isinstance(extra, list) else []
    out["targets_name"] = targets if isinstance(targets, str) else ""
    out["options"] = options if isinstance(options, dict) else {}
    for name in RUN_FLAGS:
        v = _flag(nt, name)
        out[name] = v
        out[f"{name}_default"] = bool(v)
    return out
