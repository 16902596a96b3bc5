"""./hotlinectl starts daemons that hold nothing of whoever started them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lab import processes as lab
from tests.integration.conftest import HOTLINECTL, REPO, STATE, Ari, ctl, until

pytestmark = pytest.mark.integration


def test_asterisk_does_not_keep_the_callers_descriptors(asterisk: Ari, tmp_path: Path) -> None:
    # As `flock /tmp/lab.lock ./hotlinectl start-asterisk` does: the caller's lock is an open
    # descriptor hotlinectl inherits. Kept by Asterisk, it would block the next taker of that
    # lock until Asterisk stops.
    held = tmp_path / "callers.lock"
    assert ctl("stop-asterisk").returncode == 0
    with held.open("w") as lock:
        started = subprocess.run(
            [HOTLINECTL, "start-asterisk"],
            cwd=REPO,
            text=True,
            capture_output=True,
            timeout=120,
            pass_fds=(lock.fileno(),),
            env={**os.environ, "HOTLINE_STATE": str(STATE)},
        )
    assert started.returncode == 0, started.stderr
    until(lambda: asterisk.get("/asterisk/info") is not None, timeout=30, what="ARI after the restart")

    pid = lab.asterisk_pid()
    open_files = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            open_files.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed while we looked
            pass
    assert open_files, "Asterisk's descriptors could not be read"
    assert str(held) not in open_files


def test_a_second_state_dir_is_told_whose_asterisk_holds_the_lab_and_leaves_it_running(
    asterisk: Ari, tmp_path: Path
) -> None:
    # Two checkouts on one machine (or a soak and a suite) share the Asterisk root and its ports.
    # Starting a second Asterisk would die with "already running on /run/hotline/asterisk.ctl";
    # hotlinectl says which process is in the way and how to stop it instead.
    other = tmp_path / "other-state"
    other.mkdir()
    (other / "ari-password").write_text((STATE / "ari-password").read_text())
    running = lab.asterisk_pid()

    started = subprocess.run(
        [HOTLINECTL, "start-asterisk"],
        cwd=REPO,
        text=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOTLINE_STATE": str(other)},
    )

    assert started.returncode != 0
    assert f"pid {running}" in started.stderr and "stop-asterisk" in started.stderr, started.stderr
    assert str(other) in started.stderr
    assert not (other / "asterisk.pid").exists()
    assert lab.asterisk_pid() == running and asterisk.get("/asterisk/info") is not None
