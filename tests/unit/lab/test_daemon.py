"""The lab's process rules: pid files trusted only while they name our process, stop = signal,
bounded wait, SIGKILL; daemons hold no descriptor of their starter; one state change at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.daemon import EXEC_GRACE, LOCK_HELD_ENV, LabError, PidFile, pid_alive, spawn, state_lock

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]


def test_a_pid_file_names_a_process_only_while_it_runs_what_we_started(tmp_path: Path) -> None:
    proc = spawn(SLEEPER, log=tmp_path / "sleeper.log")
    try:
        ours = PidFile(tmp_path / "sleeper.pid", "time.sleep")
        ours.write(proc.pid)
        time.sleep(0.2)  # until its exec shows its command line
        assert ours.pid() == proc.pid
        # The same pid under another word: a reused pid is not ours to signal.
        assert PidFile(ours.path, "asterisk").pid() is None
    finally:
        proc.kill()
        proc.wait()
    assert ours.pid() is None


def test_a_process_is_alive_all_through_an_exec_that_blanks_its_command_line(tmp_path: Path) -> None:
    """`chroot ROOT asterisk` and `sh -c 'exec ...'` exec again after we started them; in between the
    kernel shows an empty command line. Checked in a tight loop, as a start-up wait does."""
    for _ in range(10):
        proc = subprocess.Popen(["/bin/sh", "-c", "exec /bin/sleep 3"])
        try:
            deadline = time.monotonic() + 0.05
            while time.monotonic() < deadline:
                assert pid_alive(proc.pid, "sleep"), "a running process read as dead during its exec"
        finally:
            proc.kill()
            proc.wait()


def test_a_zombie_is_not_alive_and_is_told_without_waiting(tmp_path: Path) -> None:
    proc = subprocess.Popen(["/bin/true"])
    while not Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
        time.sleep(0.01)
    started = time.monotonic()
    assert not pid_alive(proc.pid, "true")
    assert time.monotonic() - started < EXEC_GRACE / 2
    proc.wait()


def test_a_missing_or_garbled_pid_file_names_nothing(tmp_path: Path) -> None:
    assert PidFile(tmp_path / "none.pid", "x").pid() is None
    (tmp_path / "bad.pid").write_text("not a pid\n")
    assert PidFile(tmp_path / "bad.pid", "x").pid() is None


def test_stop_signals_then_kills_a_process_that_ignores_it_and_removes_the_pid_file(tmp_path: Path) -> None:
    proc = spawn(STUBBORN, log=tmp_path / "stubborn.log")
    pid_file = PidFile(tmp_path / "stubborn.pid", "SIG_IGN")
    pid_file.write(proc.pid)
    time.sleep(0.3)  # let it install its handler

    started = time.monotonic()
    assert pid_file.stop("stubborn", signal.SIGTERM, grace=1.0)

    assert 1.0 <= time.monotonic() - started < 10
    assert not os.path.exists(f"/proc/{proc.pid}")  # killed and reaped
    assert not pid_file.path.exists()
    proc.wait(1)  # reaped by stop(): the Popen only learns it is gone


def test_stopping_what_does_not_run_is_a_quiet_no_op(tmp_path: Path) -> None:
    pid_file = PidFile(tmp_path / "gone.pid", "x")
    pid_file.write(999_999_999)
    assert pid_file.stop("gone") is False
    assert not pid_file.path.exists()


def test_a_daemon_keeps_none_of_its_starters_descriptors_and_has_its_own_session(tmp_path: Path) -> None:
    held = (tmp_path / "callers.lock").open("w")  # e.g. `flock FILE ./hotlinectl start`
    os.set_inheritable(held.fileno(), True)
    try:
        proc = spawn([*SLEEPER], log=tmp_path / "d.log")
        try:
            time.sleep(0.2)
            fds = {os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")}
            assert str(tmp_path / "callers.lock") not in fds
            assert os.getsid(proc.pid) == proc.pid != os.getsid(0)
        finally:
            proc.kill()
            proc.wait()
    finally:
        held.close()


def test_the_state_lock_serialises_two_starters(tmp_path: Path) -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from lab.daemon import state_lock\n"
            "with state_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(30)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != LOCK_HELD_ENV},
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
            with pytest.raises(LabError, match="holds"):
                with state_lock(tmp_path, timeout=0.5):
                    pass
        finally:
            holder.kill()
    with state_lock(tmp_path, timeout=5):  # free once its holder is gone
        pass
