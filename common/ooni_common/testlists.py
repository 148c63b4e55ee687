"""What a CitizenLab test-list row may hold: the category legend and the URL
rule. The test-list updater (``analysis.citizenlab``) and the test-list
editor (``ooniapi.testlists``) share these, so that the editor never
proposes a row the updater would drop or refuse."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

# api.md §20.3: code -> description, written to the CSV files as is
# ("Miscelaneous" included).
CATEGORY_DESCRIPTIONS: dict[str, str] = {
    "ALDR": "Alcohol & Drugs",
    "REL": "Religion",
    "PORN": "Pornography",
    "PROV": "Provocative Attire",
    "POLR": "Political Criticism",
    "HUMR": "Human Rights Issues",
    "ENV": "Environment",
    "MILX": "Terrorism and Militants",
    "HATE": "Hate Speech",
    "NEWS": "News Media",
    "XED": "Sex Education",
    "PUBH": "Public Health",
    "GMB": "Gambling",
    "ANON": "Anonymization and circumvention tools",
    "DATE": "Online Dating",
    "GRP": "Social Networking",
    "LGBT": "LGBT",
    "FILE": "File-sharing",
    "HACK": "Hacking Tools",
    "COMT": "Communication Tools",
    "MMED": "Media sharing",
    "HOST": "Hosting and Blogging Platforms",
    "SRCH": "Search Engines",
    "GAME": "Gaming",
    "CULTR": "Culture",
    "ECON": "Economics",
    "GOVT": "Government",
    "COMM": "E-commerce",
    "CTRL": "Control content",
    "IGO": "Intergovernmental Organizations",
    "MISC": "Miscelaneous content",
}
CATEGORY_CODES = frozenset(CATEGORY_DESCRIPTIONS)

# The legacy updater's URL pattern (reference-data.md §1), ASCII hosts only.
URL_RE = re.compile(
    r"(?:(?i:https?)://)?"
    r"(?P<host>(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)\.)+"
    r"(?:[A-Za-z]{2,6}\.?|[A-Za-z0-9-]{2,}\.?)"
    r"|[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})"
    r"(?::[0-9]+)?"
    r"(?:/?|[/?]\S+)\Z")
FORBIDDEN = re.compile(r"[\r\n\t\\]")
_SCHEME_RE = re.compile(r"(?i:https?)://")


def extract_domain(url: str) -> str | None:
    """The host as written (case and trailing dot kept, port removed), or
    None when the updater would drop the URL."""
    if FORBIDDEN.search(url):
        return None
    m = URL_RE.match(url)
    return m.group("host") if m else None


def proposable_url(url: str) -> bool:
    """Whether a URL may be proposed for a list (api.md §10.1): one the
    updater keeps, with an explicit http(s) scheme, a non-empty path and no
    surrounding whitespace."""
    if url != url.strip() or not _SCHEME_RE.match(url):
        return False
    if extract_domain(url) is None:
        return False
    try:
        return urlsplit(url).path != ""
    except ValueError:
        return False
