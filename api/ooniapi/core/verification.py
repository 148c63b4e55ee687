"""The public name of a measurement's ``is_verified`` code (docs/probe-protocol.md):
``t`` a valid anonymous-credential proof, ``f`` a proof that did not
verify, ``u`` no proof (or one under a retired key)."""
from __future__ import annotations

VERIFICATION_STATUS = {"t": "verified", "f": "failed", "u": "unverified"}


def verification_status(code: str | None) -> str:
    """Rows scored before the column existed hold ``""``: unverified."""
    return VERIFICATION_STATUS.get(code or "u", "unverified")
