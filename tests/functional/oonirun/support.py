"""Helpers of the OONI Run v2 tests: v2 session tokens and a valid link."""
from __future__ import annotations

import copy
import datetime as dt

from ooniapi.core import auth

ALICE, BOB, ADMIN = "alice@example.org", "bob@example.org", "admin@example.org"

LINK = {
    "name": "Social media",
    "short_description": "Checks social media",
    "description": "A longer description of the link",
    "author": ALICE,
    "icon": "FaTwitter",
    "color": "#3498db",
    "name_intl": {"it": "Social network"},
    "short_description_intl": None,
    "description_intl": {"es": "Una descripción", "pt_BR": "Uma descrição"},
    "nettests": [
        {"test_name": "web_connectivity",
         "inputs": ["https://twitter.com/", "https://www.facebook.com/"],
         "inputs_extra": [{"category_code": "GRP"}, {"category_code": "GRP"}],
         "options": {"HTTP3Enabled": True},
         "is_background_run_enabled_default": True,
         "is_manual_run_enabled_default": True},
        {"test_name": "dnscheck"},
    ],
}

# What the OONI Probe 5 app's descriptor decoder requires, and the upstream
# service's public key set.
PROBE5_KEYS = {"oonirun_link_id", "name", "name_intl", "short_description",
               "short_description_intl", "description", "description_intl", "author",
               "icon", "color", "expiration_date", "date_created", "date_updated",
               "revision", "is_mine", "is_expired", "nettests"}


def link(**over) -> dict:
    d = copy.deepcopy(LINK)
    d.update(over)
    return d


def v2_headers(cfg, email: str = ALICE, role: str = "user", **kw) -> dict[str, str]:
    tok = auth.session_token(cfg, auth.account_id(cfg, email), role, email_address=email, **kw)
    return {"Authorization": f"Bearer {tok}"}


def v1_headers(cfg, email: str = ALICE, role: str = "user") -> dict[str, str]:
    """A token as issued before ooniauth v2: no email_address claim."""
    return {"Authorization": f"Bearer {auth.session_token(cfg, auth.account_id(cfg, email), role)}"}


def parse_time(s: str) -> dt.datetime:
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")


def rows(db) -> int:
    return db.execute("SELECT count() FROM oonirun")[0][0]
