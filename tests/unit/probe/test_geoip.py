"""GeoIP lookups: the MaxMind test databases of ../shared/data/geoip, and
databases built by the tests themselves (tests/mmdb_writer.py)."""
import csv
import ipaddress
import os

import pytest
from werkzeug.datastructures import Headers

from tests.mmdb_writer import write_asn_db, write_country_db

from ooniapi.core.client_ip import client_ip, parse_networks
from ooniapi.probe.geoip import GeoIP, Location


def _lookups(shared_data):
    path = shared_data / "geoip" / "lookups.tsv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    rows = [l for l in path.read_text().splitlines() if l and not l.startswith("#")]
    return list(csv.DictReader(rows, delimiter="\t"))


def test_maxmind_test_files_country(shared_data):
    rows = [r for r in _lookups(shared_data) if r["method"] == "country"]
    assert rows
    for r in rows:
        g = GeoIP(shared_data / "geoip" / r["file"], shared_data / "geoip" / "absent.mmdb")
        loc = g.lookup(r["ip"])
        want = None if r["result1"] in ("NOT_FOUND", "-") else r["result1"]
        assert loc.cc == want, r
        assert loc.asn is None


def test_maxmind_test_files_asn(shared_data):
    rows = [r for r in _lookups(shared_data) if r["method"] == "asn"]
    assert rows
    g = GeoIP(shared_data / "geoip" / "absent.mmdb", shared_data / "geoip" / "GeoLite2-ASN-Test.mmdb")
    for r in rows:
        loc = g.lookup(r["ip"])
        if r["result1"] == "NOT_FOUND":
            assert (loc.asn, loc.as_name) == (None, None), r
        else:
            assert loc.asn == int(r["result1"]), r
            assert loc.as_name == (None if r["result2"] == "-" else r["result2"]), r
        assert loc.probe_cc == "ZZ"


def test_wrong_database_type_means_unknown(shared_data):
    d = shared_data / "geoip"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    # the ASN file given as country DB and vice versa: no TypeError escapes
    g = GeoIP(d / "GeoLite2-ASN-Test.mmdb", d / "GeoIP2-Country-Test.mmdb")
    assert g.lookup("89.160.20.112") == Location(None, None, None)


@pytest.fixture
def built(tmp_path):
    cc = write_country_db(tmp_path / "cc.mmdb", {
        "10.0.0.0/8": "IT", "10.1.0.0/16": "DE", "2001:db8::/32": "FR"})
    asn = write_asn_db(tmp_path / "asn.mmdb", {
        "10.0.0.0/8": (30722, "Vodafone Italia S.p.A."),
        "2001:db8::/32": (4200000001, "Private & Co")})
    return cc, asn


def test_built_databases(built):
    g = GeoIP(*built)
    assert g.lookup("10.2.3.4") == Location("IT", 30722, "Vodafone Italia S.p.A.")
    assert g.lookup("10.1.2.3").cc == "DE"
    loc = g.lookup("2001:db8::7")
    assert (loc.probe_cc, loc.probe_asn, loc.as_name) == ("FR", "AS4200000001", "Private & Co")
    unknown = g.lookup("192.0.2.1")
    assert (unknown.probe_cc, unknown.probe_asn) == ("ZZ", "AS0")


@pytest.mark.parametrize("ip", [None, "", "not-an-ip", "1.2.3.4.5", "::g"])
def test_invalid_addresses_are_unknown(built, ip):
    assert GeoIP(*built).lookup(ip) == Location(None, None, None)


def test_missing_and_corrupt_files_are_unknown(tmp_path, built):
    g = GeoIP(tmp_path / "nope.mmdb", tmp_path / "nope2.mmdb")
    assert g.lookup("10.2.3.4").probe_cc == "ZZ"
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"this is not an mmdb file" * 10)
    g = GeoIP(bad, bad)
    assert g.lookup("10.2.3.4") == Location(None, None, None)


def test_reopened_when_file_replaced(tmp_path):
    path = tmp_path / "cc.mmdb"
    g = GeoIP(path, tmp_path / "asn.mmdb")
    assert g.lookup("10.2.3.4").cc is None  # not there yet
    write_country_db(path, {"10.0.0.0/8": "IT"})
    assert g.lookup("10.2.3.4").cc == "IT"
    # the downloader replaces the file by rename (new inode)
    write_country_db(path, {"10.0.0.0/8": "BR"})
    os.utime(path, ns=(1, 1))
    assert g.lookup("10.2.3.4").cc == "BR"
    os.unlink(path)
    assert g.lookup("10.2.3.4").cc is None


TRUSTED = parse_networks(["127.0.0.1", "10.10.0.0/16", "::1"])


@pytest.mark.parametrize("peer,headers,want", [
    ("192.0.2.9", {}, "192.0.2.9"),
    # an untrusted peer cannot choose its location with a header
    ("192.0.2.9", {"X-Real-IP": "10.2.3.4"}, "192.0.2.9"),
    ("192.0.2.9", {"X-Forwarded-For": "10.2.3.4"}, "192.0.2.9"),
    ("127.0.0.1", {"X-Real-IP": "10.2.3.4"}, "10.2.3.4"),
    ("10.10.3.3", {"X-Forwarded-For": "1.1.1.1, 10.2.3.4", "X-Real-IP": "9.9.9.9"}, "10.2.3.4"),
    ("::1", {"X-Forwarded-For": "2001:db8::1"}, "2001:db8::1"),
    ("127.0.0.1", {}, "127.0.0.1"),
    ("127.0.0.1", {"X-Real-IP": " "}, "127.0.0.1"),
])
def test_client_ip(peer, headers, want):
    assert client_ip(peer, Headers(headers), TRUSTED) == want


def test_parse_networks():
    assert parse_networks(["127.0.0.1", " 10.0.0.0/8 ", ""]) == [
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]
