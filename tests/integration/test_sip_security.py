"""Strangers on the SIP port are refused by Asterisk and never reach the controller.

A SIP scanner (sipvicious: svmap, svwar, svcrack) and a stranger's INVITE to 12345 come from
127.0.0.2 -- an address no `identify` in pjsip.conf names (the carrier is 127.0.0.1 in the lab), so
they are what a scanner on the Internet is to a production hotline. The carrier itself dialling
numbers the hotline does not have gets 404. None of it may reach the controller: no call arrives,
the call log stays empty and hotline_calls_total does not move. Every refusal of a stranger lands
in Asterisk's security log (logger.conf `security => security`) in a form Debian's fail2ban
`asterisk` filter matches, so an operator can ban scanners at the firewall.

Everything is bounded (a handful of extensions and passwords, timeouts on every process) and
targets 127.0.0.1 only.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.faults import sipvicious as run_sipvicious
from tests.integration.conftest import Ari, Controller

pytestmark = pytest.mark.integration

ROOT = Path(os.environ.get("HOTLINE_CACHE", "/var/cache/hotline12345")) / "sid-root"
SECURITY_LOG = ROOT / "var" / "log" / "asterisk" / "security"  # logger.conf: security => security
FAIL2BAN_FILTER = "/etc/fail2ban/filter.d/asterisk.conf"
STRANGER = "127.0.0.2"  # loopback, but not the carrier's identify match (127.0.0.1)
# Events a stranger's request raises; the first four are failures (fail2ban's filter matches
# exactly these), ChallengeSent is Asterisk answering 401.
FAILURES = ("InvalidAccountID", "ChallengeResponseFailed", "InvalidPassword", "FailedACL")

ONE_INVITE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="one INVITE, any final answer">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:13912345678@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:13912345678@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="401" optional="true" next="ack"/>
  <recv response="403" optional="true" next="ack"/>
  <recv response="404" next="ack"/>
  <label id="ack"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:13912345678@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""


@dataclass
class SecurityLog:
    """Asterisk's security log inside the root, read from where it stood when the test began."""

    path: Path
    start: int

    def text(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace")

    def events(self, remote: str) -> Counter[str]:
        """SecurityEvent names raised by requests from `remote`."""
        pattern = re.compile(r'SecurityEvent="(\w+)".*RemoteAddress="IPV4/\w+/' + re.escape(remote) + "/")
        return Counter(m[1] for m in map(pattern.search, self.text().splitlines()) if m)

    def accounts(self, remote: str, event: str) -> Counter[str]:
        """AccountIDs (the user part a request claimed) of `event`s from `remote`."""
        pattern = re.compile(
            rf'SecurityEvent="{event}".*AccountID="([^"]*)"'
            rf'.*RemoteAddress="IPV4/\w+/{re.escape(remote)}/'
        )
        return Counter(m[1] for m in map(pattern.search, self.text().splitlines()) if m)

    def fail2ban_matches(self, workdir: Path) -> tuple[int, str]:
        """How many lines Debian's fail2ban `asterisk` filter matches, and for which host(s)."""
        sample = workdir / "security.log"
        sample.write_text(self.text())
        run = subprocess.run(
            ["fail2ban-regex", "--print-all-matched", str(sample), FAIL2BAN_FILTER],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found = re.search(r"^Lines: \d+ lines, \d+ ignored, (\d+) matched", run.stdout, re.M)
        assert found, run.stdout
        return int(found[1]), run.stdout


@pytest.fixture
def security_log(asterisk: Ari) -> SecurityLog:
    assert SECURITY_LOG.exists(), f"{SECURITY_LOG}: Asterisk writes no security log (logger.conf, res_security_log)"
    return SecurityLog(SECURITY_LOG, SECURITY_LOG.stat().st_size)


def calls_total() -> float:
    with urllib.request.urlopen("http://127.0.0.1:9345/metrics", timeout=5) as resp:
        families = text_string_to_metric_families(resp.read().decode())
        return sum(
            s.value for f in families if f.name == "hotline_calls" for s in f.samples if s.name == "hotline_calls_total"
        )


@pytest.fixture
def quiet_controller(start_controller: Callable[..., Controller]) -> Iterator[tuple[Controller, float]]:
    controller = start_controller()
    before = calls_total()
    yield controller, before
    # None of what the test did reached the controller.
    assert not controller.saw("call_arrived")
    assert controller.calllog.calls() == []
    assert calls_total() == before


def sipvicious(tool: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    run = run_sipvicious(tool, *args, home=home, source=STRANGER)
    assert "Traceback" not in run.stderr, run.stderr
    return run


def invite(number: str, source: str, port: int, workdir: Path) -> str:
    """One INVITE to `number` from `source`; the final response's status line."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "invite.xml").write_text(ONE_INVITE)
    subprocess.run(
        [
            "sipp",
            "127.0.0.1:5060",
            "-sf",
            "invite.xml",
            "-s",
            number,
            "-i",
            source,
            "-p",
            str(port),
            "-mi",
            source,
            "-mp",
            str(6000 + (port - 5000) * 10),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "15s",
            "-trace_msg",
            "-message_file",
            "messages.log",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    statuses = re.findall(r"^SIP/2.0 ([1-6]\d\d .*)$", (workdir / "messages.log").read_text(), re.M)
    finals = [s.strip() for s in statuses if not s.startswith("1")]
    assert finals, (workdir / "messages.log").read_text()
    return finals[-1]


def test_a_sip_scanner_from_an_unknown_address_is_refused_logged_and_fail2ban_sees_it(
    quiet_controller: tuple[Controller, float], security_log: SecurityLog, tmp_path: Path
) -> None:
    svmap = sipvicious("svmap", "-p5060", "127.0.0.1", home=tmp_path)
    svwar = sipvicious("svwar", "--force", "-e", "12340-12350", "--maximumtime", "30", "127.0.0.1", home=tmp_path)
    wordlist = tmp_path / "passwords.txt"
    wordlist.write_text("\n".join(["1234", "12345", "password", "asterisk", "hotline"]) + "\n")
    svcrack = sipvicious(
        "svcrack", "-u", "12345", "-d", str(wordlist), "--maximumtime", "30", "127.0.0.1", home=tmp_path
    )

    # The scanner learns nothing: Asterisk answers every stranger's request the same way (401, a
    # challenge no password can meet), so svwar cannot tell extensions apart -- it gives up after
    # its first probe -- and svcrack cracks nothing.
    for run in (svwar, svcrack):
        assert "found nothing" in run.stderr, run.stderr
    # svmap finds a SIP device (it answers), but not what it runs: no Asterisk version leaks.
    assert "| 127.0.0.1:5060 | hotline12345 |" in svmap.stdout and "Asterisk" not in svmap.stdout, svmap.stdout

    assert not security_log.events("127.0.0.1"), "the scanner was taken for the carrier"
    events = security_log.events(STRANGER)
    accounts = security_log.accounts(STRANGER, "InvalidAccountID")
    failures = sum(events[name] for name in FAILURES)
    matched, report = security_log.fail2ban_matches(tmp_path)
    print(
        f"\nsecurity events from {STRANGER}: {dict(events)}; refused accounts {dict(accounts)}; "
        f"failures {failures}; fail2ban matched {matched}"
    )
    # Every probe was refused and logged: svmap's OPTIONS, svwar's REGISTER for 12340, and each of
    # svcrack's guesses as a failed challenge response.
    assert {"12340", "12345"} <= set(accounts), accounts
    assert events["ChallengeResponseFailed"] == len(wordlist.read_text().split())
    # ... and fail2ban's stock filter matches each failure, for the stranger's address only.
    assert matched == failures > 0, report
    assert set(re.findall(r"RemoteAddress=\"IPV4/UDP/([\d.]+)/", report.split("Matched line")[1])) == {STRANGER}


def test_an_invite_to_12345_from_an_unknown_address_is_challenged_and_never_answered(
    quiet_controller: tuple[Controller, float], security_log: SecurityLog, tmp_path: Path
) -> None:
    status = invite("12345", STRANGER, 5380, tmp_path / "stranger")
    assert status.split()[0] in ("401", "403"), status
    events = security_log.events(STRANGER)
    matched, report = security_log.fail2ban_matches(tmp_path)
    print(f"\nINVITE 12345 from {STRANGER}: {status}; security events {dict(events)}; fail2ban matched {matched}")
    assert events["InvalidAccountID"] == 1
    assert matched == 1, report


def test_the_carrier_dialling_numbers_the_hotline_does_not_have_gets_404(
    quiet_controller: tuple[Controller, float], security_log: SecurityLog, tmp_path: Path
) -> None:
    """8000 (the duty line) and 3372000 (a merge line) are dialled BY the hotline, never dialled in;
    1234 is a prefix of 12345 (no overlap dialling: 404, not 484)."""
    numbers = ["12399", "1234", "123456", "8000", "3372000", "110"]
    statuses = {n: invite(n, "127.0.0.1", 5390, tmp_path / n) for n in numbers}
    assert {n: s.split()[0] for n, s in statuses.items()} == {n: "404" for n in numbers}, statuses
    # The carrier is trusted: its wrong numbers are not security failures; fail2ban must never ban it.
    assert not any(security_log.events("127.0.0.1")[name] for name in FAILURES)
