"""Client text must be valid Unicode before it reaches the database, the
spool's readers or a log line: JSON lets a client send an unpaired UTF-16
surrogate (``"\\ud800"``), which Python decodes into a str that no UTF-8
encoder accepts, so it would fail later, far from the request, as a 500."""
from __future__ import annotations

from typing import Any


def check_unicode(doc: Any) -> None:
    """ValueError when a string (key or value) anywhere in ``doc`` holds an
    unpaired surrogate."""
    stack = [doc]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            if not o.isascii():
                try:
                    o.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("Invalid text: unpaired UTF-16 surrogate") from None
        elif isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
