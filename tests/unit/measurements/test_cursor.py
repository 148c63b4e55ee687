import base64
import datetime as dt
import json

import pytest

from ooniapi.core.errors import BadRequest
from ooniapi.measurements import cursor


@pytest.mark.parametrize("order_by,value", [
    ("measurement_start_time", dt.datetime(2021, 7, 9, 0, 55, 13)),
    ("probe_asn", 4294967295),
    ("input", "https://ru.wikipedia.org/wiki/Вторжение"),
    ("probe_cc", "IT"),
    ("test_name", ""),
])
def test_round_trip(order_by, value):
    c = cursor.Cursor(order_by, "desc", value, "20210709005529.664022_MY_webconnectivity_68e5bea1060d1874", 300)
    token = cursor.encode(c)
    assert "=" not in token and "/" not in token and "+" not in token
    assert cursor.decode(token) == c


def _token(doc) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


@pytest.mark.parametrize("token", [
    "", "not base64 !!", "x" * 20000, _token({"a": 1}), _token([2, "input", "asc", "", "u", 0]),
    _token([1, "report_id", "asc", "", "u", 0]),
    _token([1, "input", "up", "", "u", 0]),
    _token([1, "input", "asc", 5, "u", 0]),
    _token([1, "probe_asn", "asc", "5", "u", 0]),
    _token([1, "probe_asn", "asc", -1, "u", 0]),
    _token([1, "measurement_start_time", "asc", "yesterday", "u", 0]),
    _token([1, "input", "asc", "", "u", -1]),
    _token([1, "input", "asc", "", "u", 1.5]),
    _token([1, "input", "asc", "", "u" * 101, 0]),
    _token([1, "input", "asc", "", None, 0]),
    _token(["1' OR 1=1 --"]),
])
def test_rejects_forged(token):
    with pytest.raises(BadRequest) as e:
        cursor.decode(token)
    assert e.value.message == "Invalid cursor"
