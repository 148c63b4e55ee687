import pytest

from ooni_common.config import Config
from ooni_common.store import FileStore, KeyNotFound, StoreError, open_store


def test_file_store_roundtrip(tmp_path):
    s = FileStore(tmp_path)
    s.put_bytes("raw/20210709/00/MY/webconnectivity/a.jsonl.gz", b"0123456789")
    assert s.get_bytes("raw/20210709/00/MY/webconnectivity/a.jsonl.gz") == b"0123456789"
    assert s.get_range("raw/20210709/00/MY/webconnectivity/a.jsonl.gz", 2, 4) == b"234"
    assert [o.key for o in s.list("raw/20210709/")] == ["raw/20210709/00/MY/webconnectivity/a.jsonl.gz"]
    assert s.exists("raw/20210709/00/MY/webconnectivity/a.jsonl.gz")
    with pytest.raises(KeyNotFound):
        s.get_bytes("raw/nope")


def test_file_store_refuses_escaping_keys(tmp_path):
    with pytest.raises(StoreError):
        FileStore(tmp_path / "a").put_bytes("../b", b"x")


def test_open_store_defaults_to_data_dir(tmp_path):
    s = open_store(Config({"DATA_DIR": str(tmp_path)}))
    assert s.url == f"file://{tmp_path.resolve() / 'archive'}"
