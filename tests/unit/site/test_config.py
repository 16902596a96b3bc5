"""The site file: what a host's IT team writes, checked with every problem at its FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.errors import RoutesError
from ivr.site import config

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "deploy" / "site.example.yaml"

TLS_BIND = "bind: 192.0.2.1\n  tls: {cert: /etc/t.crt, key: /etc/t.key}"
MINIMAL = """\
version: 1
sip:
  bind: 192.0.2.1
carrier:
  sbc: [198.51.100.7]
  outbound: {host: 198.51.100.9}
trunks:
  departments: {host: 10.0.0.5}
  operators: {host: 10.0.0.6}
  partners: {host: 10.0.0.7}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RoutesError) as caught:
        config.parse(text, "site.yaml")
    return [str(p) for p in caught.value.problems]


def test_the_example_in_the_repo_is_a_valid_site() -> None:
    site = config.load(EXAMPLE)
    assert site.bind == "203.0.113.10"
    assert site.carrier_sbcs == ("198.51.100.7", "198.51.100.8")
    assert [(t.name, t.transport, t.port) for t in site.trunks] == [
        ("departments", "udp", 5060),
        ("operators", "tcp", 5060),
        ("partners", "tls", 5061),
    ]
    assert [s.endpoint for s in site.seats] == ["operator-1", "operator-2"]
    assert site.transports == ("udp", "tcp", "tls")


def test_a_minimal_site_takes_debians_paths_udp_and_g711() -> None:
    site = config.parse(MINIMAL)
    assert site.codecs == ("alaw", "ulaw")
    assert site.transports == ("udp",)
    assert site.calllog == "/var/lib/hotline/calllog.sqlite3"
    assert site.recordings == Path("/var/spool/asterisk/recording")
    assert site.asterisk_config_dir == Path("/etc/asterisk")
    assert site.asterisk_user == "asterisk"


def test_every_problem_is_reported_at_its_line_in_one_go() -> None:
    text = """\
version: 1
sip:
  bind: 203.0.113.300
  codecs: [alaw, speex]
carrier:
  sbc: [10.0.0.0/8]
trunks:
  departments: {host: a.b, transport: sctp}
  operators: {host: x}
seats:
  - {endpoint: operator-1, address: 10.1.1.1}
  - {endpoint: operator-1, address: 10.1.1.2}
  - {endpoint: partners, address: 10.1.1.9/33}
bogus: 1
"""
    assert problems(text) == [
        "site.yaml:3: sip.bind '203.0.113.300' is not an IP address",
        "site.yaml:4: sip.codecs[1] must be one of alaw, ulaw, g722, g729, opus, gsm, got 'speex'",
        "site.yaml:6: carrier: missing required key 'outbound'",
        "site.yaml:6: carrier.sbc[0] '10.0.0.0/8' is wider than a /16: anyone in it could call in",
        "site.yaml:8: trunks: missing required key 'partners'",
        "site.yaml:8: trunks.departments.transport must be one of udp, tcp, tls, got 'sctp'",
        "site.yaml:12: seats[1].endpoint: seat 'operator-1' is listed twice",
        "site.yaml:13: seats[2].endpoint: 'partners' is a trunk's name",
        "site.yaml:13: seats[2].address '10.1.1.9/33' is not an IP address or network (host bits set?)",
        "site.yaml:14: (top level): unknown key 'bogus' (expected one of: asterisk, calllog, carrier, recordings, "
        "seats, sip, trunks, version)",
    ]


def test_tls_anywhere_needs_the_certificate_and_key() -> None:
    text = MINIMAL.replace("partners: {host: 10.0.0.7}", "partners: {host: 10.0.0.7, transport: tls}")
    assert problems(text) == [
        "site.yaml:3: sip.tls (cert, key) is required: a trunk, a seat or the carrier uses transport tls"
    ]


def test_callbacks_and_follow_ups_are_dialled_at_the_carriers_outbound_address_over_its_transport() -> None:
    site = config.parse(MINIMAL)
    assert site.carrier_outbound == config.Peer("carrier", "198.51.100.9", 5060, "udp")
    tls = config.parse(
        MINIMAL.replace("  outbound:", "  transport: tls\n  outbound:").replace("bind: 192.0.2.1", TLS_BIND)
    )
    assert tls.carrier_outbound == config.Peer("carrier", "198.51.100.9", 5061, "tls")


def test_a_bad_outbound_address_is_reported_at_its_line() -> None:
    text = MINIMAL.replace("outbound: {host: 198.51.100.9}", "outbound: {host: 'sbc out', port: 70000, via: x}")
    assert problems(text) == [
        "site.yaml:6: carrier.outbound: unknown key 'via' (expected one of: host, port)",
        "site.yaml:6: carrier.outbound.host 'sbc out' is not a host name or address",
        "site.yaml:6: carrier.outbound.port must be between 1 and 65535, got 70000",
    ]


def test_without_carrier_addresses_nobody_could_call_in_and_that_is_refused() -> None:
    assert problems(MINIMAL.replace("sbc: [198.51.100.7]", "sbc: []")) == [
        "site.yaml:5: carrier.sbc must list the carrier's SBC addresses: nobody else may call in"
    ]


def test_paths_must_be_absolute_and_the_call_log_a_path_or_postgresql_url() -> None:
    text = MINIMAL + "calllog: mysql://db/hotline\nrecordings: spool/rec\n"
    assert problems(text) == [
        "site.yaml:11: calllog must be an absolute path (SQLite) or a postgresql:// URL",
        "site.yaml:12: recordings must be an absolute path, got 'spool/rec'",
    ]


def test_a_missing_file_is_named() -> None:
    with pytest.raises(RoutesError, match=r"nowhere\.yaml:1: file not found"):
        config.load("/nowhere.yaml")


def test_site_check_prints_a_summary_or_the_problems_with_exit_1(tmp_path: Path) -> None:
    ok = CliRunner().invoke(main, ["site", "check", str(EXAMPLE)])
    assert ok.exit_code == 0, ok.output
    assert "ok — SIP on 203.0.113.10 (udp, tcp, tls), 2 carrier SBC address(es), 3 trunks, 2 seats" in ok.output
    bad = tmp_path / "site.yaml"
    bad.write_text(MINIMAL.replace("192.0.2.1", "nowhere"))
    failed = CliRunner().invoke(main, ["site", "check", str(bad)])
    assert failed.exit_code == 1
    assert f"{bad}:3: sip.bind 'nowhere' is not an IP address" in failed.output
