"""The systemd units in deploy/systemd, as install writes them, pass `systemd-analyze verify`.

verify needs no systemd as PID 1 (this runs in containers too); it loads each unit the way
systemd would, checks every directive and that ExecStart's program exists. Warnings (an unknown
or misspelt directive) fail the test, not only errors.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.install.installer import UNITS

REPO = Path(__file__).resolve().parents[3]
HOTLINE = Path(sys.executable).parent / "hotline"


def installed_units(into: Path) -> list[Path]:
    paths = []
    for unit in UNITS:
        text = (REPO / "deploy" / "systemd" / unit).read_text().replace("@HOTLINE@", str(HOTLINE))
        (into / unit).write_text(text)
        paths.append(into / unit)
    # The host's Asterisk package brings this one; hotline.service Requires= it.
    (into / "asterisk.service").write_text("[Unit]\nDescription=Asterisk\n[Service]\nExecStart=/bin/true\n")
    return paths


def verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return subprocess.run(
        [tool, "verify", "--man=no", *(f"./{p.name}" for p in paths)],
        cwd=paths[0].parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    assert HOTLINE.is_file()
    done = verify(installed_units(tmp_path))
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_does_catch_a_misspelt_directive(tmp_path: Path) -> None:
    """So the test above cannot pass by verify checking nothing."""
    paths = installed_units(tmp_path)
    service = tmp_path / "hotline.service"
    service.write_text(service.read_text().replace("WatchdogSec=30", "WatchdogSecs=30"))
    done = verify(paths)
    assert "hotline.service" in done.stderr and "WatchdogSecs" in done.stderr


def test_the_controller_is_a_notify_service_under_the_watchdog_after_asterisk_and_hardened() -> None:
    text = (REPO / "deploy" / "systemd" / "hotline.service").read_text()
    lines = {line for line in text.splitlines() if line and not line.startswith("#")}
    for wanted in (
        "Type=notify",
        "WatchdogSec=30",
        "Restart=on-failure",
        "Requires=asterisk.service",
        "After=asterisk.service network-online.target",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/hotline /var/log/hotline",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "User=hotline",
    ):
        assert wanted in lines, wanted
