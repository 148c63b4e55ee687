import datetime as dt
import io
import tarfile

from ooni_common import archive


def test_hour_prefix_and_key_fields_agree():
    hour = dt.datetime(2024, 1, 2, 5)
    key = archive.raw_hour_prefix(hour, "IT", "webconnectivity") + "b.n1.0" + archive.JSONL_SUFFIX
    assert key == "raw/20240102/05/IT/webconnectivity/b.n1.0.jsonl.gz"
    assert key.startswith(archive.raw_day_prefix(hour.date()))
    assert archive.raw_key_cc_testname(key) == ("IT", "webconnectivity")
    assert archive.raw_key_cc_testname("raw/20240102/05/IT") is None


def test_sibling_keys_round_trip():
    j = "raw/20240102/05/IT/webconnectivity/b.n1.0.jsonl.gz"
    p = archive.postcan_key_of(j)
    assert p == "raw/20240102/05/IT/webconnectivity/b.n1.0.tar.gz"
    assert archive.jsonl_key_of(p) == j


def test_postcan_posts_reads_post_members_in_order():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in ((archive.postcan_member("2024010205_IT_webconnectivity", "u2"), b"B"),
                           ("x/readme.txt", b"skip"),
                           (archive.postcan_member("2024010205_IT_webconnectivity", "u1"), b"A")):
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            tar.addfile(ti, io.BytesIO(body))
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
    assert list(archive.postcan_posts(buf.getvalue())) == [("u2", b"B"), ("u1", b"A")]
