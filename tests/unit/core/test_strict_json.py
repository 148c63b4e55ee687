"""ooniapi.core.strict_json: what may be stored and served again."""
import pytest

from ooniapi.core import strict_json


def test_plain_documents():
    assert strict_json.loads(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert strict_json.loads('"é"') == "é"


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b"[Infinity]", b"-Infinity", b"{", b"", b"\xff"])
def test_refused_as_value_error(raw):
    with pytest.raises(ValueError):
        strict_json.loads(raw)
