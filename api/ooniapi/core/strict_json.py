"""Parsing of request bodies that are stored and served again (OONI Run
descriptors, incidents). Python's json accepts NaN and Infinity, which no
other JSON reader does, so a stored document holding one would break the
UI and the probes that read it back."""
from __future__ import annotations

import json
from typing import Any

from ooniapi.core.text import check_unicode


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: bytes | str) -> Any:
    """The JSON document in ``raw``; ValueError for malformed text, NaN,
    Infinity or an unpaired surrogate, and RecursionError for nesting deeper
    than Python handles."""
    doc = json.loads(raw, parse_constant=_reject_constant)
    check_unicode(doc)
    return doc
