"""GeoIP downloader with the shared MaxMind test databases, served from
file:// and a loopback HTTP server."""
from __future__ import annotations

import datetime as dt
import functools
import gzip
import http.server
import threading

import geoip2.database
import pytest

from analysis import geoip_download
from analysis.runner import JobError
from ooni_common.metrics import Metrics

NOW = dt.datetime(2026, 11, 3, 12)


@pytest.fixture
def mirror(tmp_path, shared_data):
    d = tmp_path / "mirror"
    d.mkdir()
    geo = shared_data / "geoip"
    (d / "dbip-asn-lite-2026-11.mmdb.gz").write_bytes(
        gzip.compress((geo / "GeoLite2-ASN-Test.mmdb").read_bytes()))
    (d / "dbip-country-lite-2026-11.mmdb.gz").write_bytes(
        gzip.compress((geo / "GeoIP2-Country-Test.mmdb").read_bytes()))
    return d


def conf(cfg, base):
    return cfg.with_overrides(GEOIP_ASN_URL=f"{base}/dbip-asn-lite-{{TS}}.mmdb.gz",
                              GEOIP_CC_URL=f"{base}/dbip-country-lite-{{TS}}.mmdb.gz",
                              GEOIP_CC_PROBE_IP="81.2.69.160", GEOIP_ASN_PROBE_IP="1.128.0.0")


def installed(cfg):
    return cfg.data_dir / "geoip"


def test_download_installs_both_files(cfg, mirror):
    m = Metrics("ooni_download_geoip", enabled=False)
    assert geoip_download.run(conf(cfg, f"file://{mirror}"), now=NOW, metrics=m) is True
    d = installed(cfg)
    assert (d / "geoipdbts").read_text() == "2026-11"
    with geoip2.database.Reader(str(d / "cc.mmdb")) as r:
        assert r.country("81.2.69.160").country.iso_code == "GB"
    with geoip2.database.Reader(str(d / "asn.mmdb")) as r:
        assert r.asn("1.128.0.0").autonomous_system_number == 1221
    assert sorted(p.name for p in d.iterdir()) == ["asn.mmdb", "cc.mmdb", "geoipdbts"]
    assert m.gauges["ooni_download_geoip.geoip_cc_node_cnt"] == 1704
    assert m.gauges["ooni_download_geoip.geoip_asn_node_cnt"] == 1341
    assert m.gauges["ooni_download_geoip.geoip_asn_epoch"] == 1770245369
    assert m.counters["ooni_download_geoip.ooni_geoip_updated"] == 1
    # Same month again: nothing to do.
    assert geoip_download.run(conf(cfg, f"file://{mirror}"), now=NOW) is False


@pytest.fixture
def http_mirror(mirror):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_download_over_http_and_month_not_published(cfg, http_mirror):
    assert geoip_download.run(conf(cfg, http_mirror), now=NOW) is True
    before = (installed(cfg) / "cc.mmdb").read_bytes()
    # December is not on the mirror yet: 404 is "try again later", not a fault.
    assert geoip_download.run(conf(cfg, http_mirror), now=NOW.replace(month=12)) is False
    assert (installed(cfg) / "cc.mmdb").read_bytes() == before
    assert (installed(cfg) / "geoipdbts").read_text() == "2026-11"


def test_truncated_mmdb_keeps_the_old_files(cfg, mirror, shared_data):
    geoip_download.run(conf(cfg, f"file://{mirror}"), now=NOW)
    d = installed(cfg)
    old = {p.name: p.read_bytes() for p in d.iterdir()}
    full = (shared_data / "geoip" / "GeoIP2-Country-Test.mmdb").read_bytes()
    (mirror / "dbip-country-lite-2026-12.mmdb.gz").write_bytes(gzip.compress(full[: len(full) // 2]))
    (mirror / "dbip-asn-lite-2026-12.mmdb.gz").write_bytes(
        gzip.compress((shared_data / "geoip" / "GeoLite2-ASN-Test.mmdb").read_bytes()))
    m = Metrics("ooni_download_geoip", enabled=False)
    with pytest.raises(JobError, match="cc database .* failed the check"):
        geoip_download.run(conf(cfg, f"file://{mirror}"), now=NOW.replace(month=12), metrics=m)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == old  # asn.mmdb not replaced either
    assert m.counters["ooni_download_geoip.ooni_geoip_checkfail"] == 1


def test_probe_address_missing_fails_the_check(cfg, mirror):
    # The legacy probe address is in none of the test files.
    c = conf(cfg, f"file://{mirror}").with_overrides(GEOIP_ASN_PROBE_IP="8.8.8.8")
    with pytest.raises(JobError, match="asn database .* AddressNotFoundError"):
        geoip_download.run(c, now=NOW)
    assert not installed(cfg).exists() or list(installed(cfg).iterdir()) == []


def test_corrupt_gzip(cfg, mirror):
    (mirror / "dbip-asn-lite-2026-11.mmdb.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(JobError, match="cannot unpack"):
        geoip_download.run(conf(cfg, f"file://{mirror}"), now=NOW)


def test_full_disk_leaves_nothing_behind(cfg, mirror, monkeypatch):
    import errno
    import shutil

    def enospc(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", enospc)
    with pytest.raises(JobError, match="No space left on device"):
        geoip_download.run(conf(cfg, f"file://{mirror}"), now=NOW)
    monkeypatch.undo()
    assert [p.name for p in installed(cfg).iterdir()] == []
    assert geoip_download.run(conf(cfg, f"file://{mirror}"), now=NOW) is True


def test_command_exits_non_zero_on_failure(cfg, tmp_path, monkeypatch, capsys):
    for k, v in conf(cfg, f"file://{tmp_path}/nowhere").values.items():
        monkeypatch.setenv(f"OONI_{k}", str(v))
    monkeypatch.delenv("OONI_CONF", raising=False)
    assert geoip_download.main([]) == 1
    assert "cannot read" in capsys.readouterr().err
