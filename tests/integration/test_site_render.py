"""Asterisk configured only by `hotline site render` loads, and carries a real call.

The lab's Asterisk is started as usual (./hotlinectl start-asterisk), then everything in its
configuration directory is replaced by what the render makes of a site file describing the lab
(the carrier at 127.0.0.1, the trunks at the SIPp phones' ports, the partners' over TCP, two
registering seats) and Asterisk is restarted on it. At the end Asterisk is restarted through
hotlinectl, which copies dialplan/ back.

The partners' trunk goes over TLS with a self-signed certificate made for the test (nothing in
the lab answers TLS: the listener loading is what is shown). A seat's softphone is played by a
few lines of SIP here (REGISTER with digest authentication), from its desk's address.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets as random
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ivr.routing import routes
from ivr.routing.dialplan import CHAIN_CONTEXT, chain_extension
from ivr.site import config
from ivr.site.render import render
from ivr.site.secrets import Secrets
from lab.citizen import place_call
from lab.sipp.phone import Phone
from tests.integration.conftest import DEPARTMENTS_PORT, REPO, STATE, Ari, Controller, ctl, until

pytestmark = pytest.mark.integration

ROOT = Path(os.environ.get("HOTLINE_CACHE", "/var/cache/hotline12345")) / "sid-root"
LAB_SITE = """\
version: 1
sip:
  bind: 127.0.0.1
  tls: {cert: /etc/hotline/sip.crt, key: /etc/hotline/sip.key}
carrier:
  sbc: [127.0.0.1]
  outbound: {host: 127.0.0.1, port: 5096}
trunks:
  departments: {host: 127.0.0.1, port: 5080}
  operators: {host: 127.0.0.1, port: 5090}
  partners: {host: 127.0.0.1, port: 5100, transport: tls}
seats:
  - {endpoint: operator-1, address: 127.0.0.11}
  - {endpoint: operator-2, address: 127.0.0.12}
asterisk:
  config_dir: /etc/hotline
  run_dir: /run/hotline
"""
CITIZEN = "13912345678"


def cli(command: str) -> str:
    done = ctl("asterisk-cli", command)
    assert done.returncode == 0, done.stderr
    return done.stdout


def asterisk_gid() -> int:
    for line in (ROOT / "etc" / "group").read_text().splitlines():
        name, _, gid, *_ = line.split(":")
        if name == "asterisk":
            return int(gid)
    raise AssertionError("no asterisk group in the lab's root")


@pytest.fixture
def rendered(asterisk: Ari, tmp_path: Path) -> Iterator[Path]:
    """Asterisk running on the rendered configuration; the value is the secrets directory."""
    site_file = tmp_path / "site.yaml"
    site_file.write_text(LAB_SITE)
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    shutil.copyfile(STATE / "ari-password", secrets / "ari-password")  # the password the lab's tools use
    out = tmp_path / "etc"
    render(config.load(site_file), REPO / "dialplan", out, Secrets(secrets), routes.load(REPO / "routes.yaml"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-keyout", str(out / "sip.key"), "-out", str(out / "sip.crt")],
        check=True,
        capture_output=True,
    )
    etc = ROOT / "etc" / "hotline"
    try:
        for old in etc.iterdir():
            old.unlink()
        gid = asterisk_gid()
        for new in out.iterdir():
            shutil.copyfile(new, etc / new.name)
            os.chown(etc / new.name, 0, gid)
            os.chmod(etc / new.name, 0o640)
        subprocess.run(  # Asterisk re-executes itself (same pid) and reads the rendered files
            ["chroot", str(ROOT), "asterisk", "-C", "/etc/hotline/asterisk.conf", "-rx", "core restart now"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        # The lab has an operator-1 too, but without auth: this is the rendered one.
        until(lambda: "operator-1-auth" in ctl("asterisk-cli", "pjsip show endpoint operator-1").stdout, timeout=60)
        until(lambda: _ari_up(asterisk), timeout=60, what="ARI after the restart")
        yield secrets
    finally:
        assert ctl("stop-asterisk").returncode == 0
        assert ctl("start-asterisk").returncode == 0  # back on dialplan/ for the tests after this one


def _ari_up(ari: Ari) -> bool:
    try:
        return bool(ari.get("/asterisk/info"))
    except OSError:
        return False


def test_the_rendered_configuration_loads_every_endpoint_and_transport(rendered: Path) -> None:
    modules = cli("module show like res_pjsip.so")
    assert "res_pjsip.so" in modules and "Running" in modules
    endpoints = cli("pjsip show endpoints")
    for name in ("carrier", "departments", "operators", "partners", "operator-1", "operator-2"):
        assert f" {name} " in endpoints or f" {name}\n" in endpoints, endpoints
    assert "bench" not in endpoints
    transports = cli("pjsip show transports")
    assert "transport-udp" in transports and "transport-tls" in transports
    seat = cli("pjsip show endpoint operator-1")
    assert "operator-1-auth" in seat and "127.0.0.11" in seat
    assert "res_pjsip_endpoint_identifier_user.so" not in cli("module show like identifier_user")
    # Callbacks and 回访 dial PJSIP/<number>@carrier: the endpoint must have somewhere to send them.
    assert "sip:127.0.0.1:5096" in cli("pjsip show aor carrier")
    # HOTLINE_DIAL_PATH=dialplan: the routes' ring chains, #tryincluded by the rendered extensions.conf.
    chains = cli(f"dialplan show {CHAIN_CONTEXT}")
    assert chain_extension(routes.load(REPO / "routes.yaml").routes["gongan"]) in chains, chains


def test_a_real_call_through_asterisk_configured_only_by_site_render(
    rendered: Path, start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    assert "bench" not in cli("pjsip show endpoints")  # the lab's configuration is not the one running
    department = phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller()

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=8000)

    assert call.succeeded, call.stderr
    (row,) = controller.finished_calls()
    # The call log first: when the department was not reached, its outcome and steps say where the call went.
    where = (row["unit"], row["target_number"], row["outcome"], controller.calllog.steps(row["call_id"]))
    assert where[:3] == ("市公安局", "3372000", "connected"), where
    assert [uri.split("@")[0] for uri in department.invites()] == ["sip:3372000"]


# -- a seat's softphone -------------------------------------------------------------------------------


def register(endpoint: str, password: str, source: str, expires: int = 60) -> list[int]:
    """REGISTER from `source` as a softphone would, answering a digest challenge; the status codes seen."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.settimeout(5)
    port = sock.getsockname()[1]
    call_id, tag, uri = random.token_hex(8), random.token_hex(4), "sip:127.0.0.1:5060"
    codes: list[int] = []
    authorization = ""
    contact = "*" if expires == 0 else f"<sip:{endpoint}@{source}:{port}>"  # `*`: every binding of the seat
    try:
        for cseq in (1, 2):
            request = (
                f"REGISTER {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {source}:{port};branch=z9hG4bK{random.token_hex(6)};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{endpoint}@127.0.0.1>;tag={tag}\r\n"
                f"To: <sip:{endpoint}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: {contact}\r\nExpires: {expires}\r\n{authorization}"
                "Content-Length: 0\r\n\r\n"
            )
            sock.sendto(request.encode(), ("127.0.0.1", 5060))
            while True:
                reply = sock.recv(65535).decode(errors="replace")
                if not reply.startswith("SIP/2.0 "):
                    # A request, not our reply: Asterisk qualifies a seat (OPTIONS) as soon as it registers.
                    continue
                code = int(reply.split(" ", 2)[1])
                if code >= 200:  # not a 100 Trying
                    break
            codes.append(code)
            challenge = next(
                (h for h in reply.split("\r\n") if h.lower().startswith("www-authenticate:") and "MD5" in h.upper()),
                None,
            )
            if code != 401 or challenge is None:
                break
            fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.split(":", 1)[1]))
            ha1 = hashlib.md5(f"{endpoint}:{fields['realm']}:{password}".encode()).hexdigest()
            ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
            cnonce = random.token_hex(4)
            answer = hashlib.md5(f"{ha1}:{fields['nonce']}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
            authorization = (
                f'Authorization: Digest username="{endpoint}",realm="{fields["realm"]}",nonce="{fields["nonce"]}",'
                f'uri="{uri}",response="{answer}",algorithm=MD5,cnonce="{cnonce}",nc=00000001,qop=auth'
                + (f',opaque="{fields["opaque"]}"' if fields.get("opaque") else "")
                + "\r\n"
            )
    finally:
        sock.close()
    return codes


def test_a_seat_registers_with_its_generated_password_from_its_desk_and_nowhere_else(rendered: Path) -> None:
    password = (rendered / "seat-operator-1.password").read_text().strip()
    try:
        assert register("operator-1", password, "127.0.0.11") == [401, 200]
        assert "operator-1/sip:operator-1@127.0.0.11" in cli("pjsip show contacts")
        assert register("operator-1", "not-the-password", "127.0.0.11")[-1] in (401, 403)
        # Right password, wrong desk: no endpoint is identified from this address.
        assert 200 not in register("operator-1", password, "127.0.0.13")
    finally:
        # Nothing left in Asterisk's database for the lab's configuration after this test.
        assert register("operator-1", password, "127.0.0.11", expires=0) == [401, 200]
    assert "operator-1/sip:operator-1@127.0.0.11" not in cli("pjsip show contacts")
