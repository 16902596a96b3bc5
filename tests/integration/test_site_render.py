"""Asterisk configured only by `hotline site render` loads, and carries a real call.

The lab's Asterisk is started as usual (./hotlinectl start-asterisk), then everything in its
configuration directory is replaced by what the render makes of a site file describing the lab
(the carrier at 127.0.0.1, the trunks at the SIPp phones' ports, the partners' over TCP, two
registering seats) and Asterisk is restarted on it. At the end Asterisk is restarted through
hotlinectl, which copies dialplan/ back.

Not covered here: TLS (the lab has no certificate), and seats registering (the lab's SIPp phones
do not register).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
carrier:
  sbc: [127.0.0.1]
trunks:
  departments: {host: 127.0.0.1, port: 5080}
  operators: {host: 127.0.0.1, port: 5090}
  partners: {host: 127.0.0.1, port: 5100, transport: tcp}
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
def rendered(asterisk: Ari, tmp_path: Path) -> Iterator[Ari]:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(LAB_SITE)
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    shutil.copyfile(STATE / "ari-password", secrets / "ari-password")  # the password the lab's tools use
    out = tmp_path / "etc"
    render(config.load(site_file), REPO / "dialplan", out, Secrets(secrets))
    etc = ROOT / "etc" / "hotline"
    for old in etc.iterdir():
        old.unlink()
    gid = asterisk_gid()
    for new in out.iterdir():
        shutil.copyfile(new, etc / new.name)
        os.chown(etc / new.name, 0, gid)
        os.chmod(etc / new.name, 0o640)
    try:
        subprocess.run(  # Asterisk re-executes itself (same pid) and reads the rendered files
            ["chroot", str(ROOT), "asterisk", "-C", "/etc/hotline/asterisk.conf", "-rx", "core restart now"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        # The lab has an operator-1 too, but without auth: this is the rendered one.
        until(lambda: "operator-1-auth" in ctl("asterisk-cli", "pjsip show endpoint operator-1").stdout, timeout=60)
        until(lambda: _ari_up(asterisk), timeout=60, what="ARI after the restart")
        yield asterisk
    finally:
        assert ctl("stop-asterisk").returncode == 0
        assert ctl("start-asterisk").returncode == 0  # back on dialplan/ for the tests after this one


def _ari_up(ari: Ari) -> bool:
    try:
        return bool(ari.get("/asterisk/info"))
    except OSError:
        return False


def test_the_rendered_configuration_loads_every_endpoint_and_transport(rendered: Ari) -> None:
    modules = cli("module show like res_pjsip.so")
    assert "res_pjsip.so" in modules and "Running" in modules
    endpoints = cli("pjsip show endpoints")
    for name in ("carrier", "departments", "operators", "partners", "operator-1", "operator-2"):
        assert f" {name} " in endpoints or f" {name}\n" in endpoints, endpoints
    assert "bench" not in endpoints
    transports = cli("pjsip show transports")
    assert "transport-udp" in transports and "transport-tcp" in transports
    seat = cli("pjsip show endpoint operator-1")
    assert "operator-1-auth" in seat and "127.0.0.11" in seat
    assert "res_pjsip_endpoint_identifier_user.so" not in cli("module show like identifier_user")


def test_a_real_call_through_asterisk_configured_only_by_site_render(
    rendered: Ari, start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    assert "bench" not in cli("pjsip show endpoints")  # the lab's configuration is not the one running
    department = phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller()

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=8000)

    assert call.succeeded, call.stderr
    assert [uri.split("@")[0] for uri in department.invites()] == ["sip:3372000"]
    (row,) = controller.finished_calls()
    assert (row["unit"], row["target_number"], row["outcome"]) == ("市公安局", "3372000", "connected")
