"""The shared integer and ASN parsers of ooniapi.core.params: only ASCII digits
count, since ``str.isdigit`` also accepts characters ``int`` refuses."""
import pytest

from ooniapi.core.params import UINT32_MAX, UINT64_MAX, asn_value, uint_value


@pytest.mark.parametrize("text, maximum, expected", [
    ("0", 10, 0),
    ("10", 10, 10),
    ("11", 10, None),
    ("", 10, None),
    ("-1", 10, None),
    ("1.5", 10, None),
    ("²", 10, None),
    ("١٢", 100, None),
    (str(UINT64_MAX), UINT64_MAX, UINT64_MAX),
    (str(UINT64_MAX + 1), UINT64_MAX, None),
])
def test_uint_value(text, maximum, expected):
    assert uint_value(text, maximum) == expected


@pytest.mark.parametrize("text, expected", [
    ("AS3269", 3269),
    ("as3269", 3269),
    (" 3269 ", 3269),
    ("AS0", 0),
    (f"AS{UINT32_MAX}", UINT32_MAX),
    (f"AS{UINT32_MAX + 1}", None),
    ("AS", None),
    ("AS²", None),
    ("AS 12", None),
    ("AS12345678901", None),
])
def test_asn_value(text, expected):
    assert asn_value(text) == expected
