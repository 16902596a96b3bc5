"""Starting and stopping the lab's long-running processes by pid file.

The rules every lab process follows, whoever starts it (`python -m lab`, ./hotlinectl, the
tests, the benchmark, the soak):

- a daemon keeps nothing of its starter but stdin/stdout/stderr: no inherited descriptor (a
  lock the caller took with `flock FILE ./hotlinectl start` would otherwise stay held for the
  daemon's life), its own session (a Ctrl-C at the starter's terminal does not reach it);
- a pid file is trusted only while its process is alive AND its command line still mentions
  what we started (pids get reused); processes are only ever signalled by those pids;
- stopping is a signal, a bounded wait, then SIGKILL;
- runs that change the state dir are serialised by its lock (the one ./hotlinectl takes).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

# Set by ./hotlinectl for the `python -m lab` it runs while it holds the state lock itself.
LOCK_HELD_ENV = "HOTLINE_STATE_LOCKED"


class LabError(Exception):
    """A lab process cannot be started or stopped; the message says which and why."""


def say(message: str) -> None:
    print(f"lab: {message}", flush=True)


@contextmanager
def state_lock(state: Path, timeout: float = 600.0, name: str = ".hotlinectl.lock") -> Iterator[None]:
    """The state dir's lock (shared with ./hotlinectl, or clusterctl's): one start/stop at a time."""
    if os.environ.get(LOCK_HELD_ENV) == "1":
        yield
        return
    state.mkdir(parents=True, exist_ok=True)
    with (state / name).open("a") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"another hotlinectl, clusterctl or lab command holds {state / name}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# How long an empty command line is read again before it is believed (see pid_alive).
EXEC_GRACE = 1.0


def pid_alive(pid: int, word: str) -> bool:
    """`pid` runs and its command line mentions `word`.

    A process in the middle of an exec shows an empty command line for a moment: the kernel has
    put in the new image but not yet its arguments. `chroot ROOT asterisk ...` execs twice, and a
    check that landed in that moment took a healthy Asterisk start for a crash (CI, stop 25: "exited
    during start-up" with an empty log). So an empty line is read again until the exec is through;
    a zombie's stays empty and is not alive.
    """
    deadline = time.monotonic() + EXEC_GRACE
    while True:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        line = cmdline(pid)
        if line or _zombie(pid) or time.monotonic() >= deadline:
            return word in line
        time.sleep(0.005)


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if _zombie(pid):
            # Dead but not yet reaped: ours to reap if we started it; init reaps an orphan
            # within moments. Gone means gone from /proc, as whoever checks after us sees it.
            _reap(pid)
        time.sleep(0.1)
    return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child
        pass


class PidFile:
    """`path` holding the pid of a process whose command line mentions `word`."""

    def __init__(self, path: Path, word: str) -> None:
        self.path = path
        self.word = word

    def pid(self) -> int | None:
        """The pid, if the process it names is alive and still ours."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        if not text.isdigit():
            return None
        pid = int(text)
        return pid if pid_alive(pid, self.word) else None

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def stop(self, label: str, sig: int = signal.SIGTERM, grace: float = 10.0) -> bool:
        """Signal the process, SIGKILL it after `grace` s; False if nothing ran."""
        pid = self.pid()
        if pid is None:
            self.remove()
            return False
        say(f"stopping {label} (pid {pid}, {signal.Signals(sig).name})")
        signal_pid(pid, sig)
        if not wait_gone(pid, grace):
            say(f"{label} (pid {pid}) still running after {grace:g}s: SIGKILL")
            signal_pid(pid, signal.SIGKILL)
            if not wait_gone(pid, 5):
                raise LabError(f"{label} (pid {pid}) survives SIGKILL")
        self.remove()
        return True


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def rotate_log(path: Path) -> None:
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    detach: bool = True,
    append: bool = True,
    preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` with stdin from /dev/null and stdout+stderr to `log`, holding no other descriptor.

    `detach`: its own session, for daemons that outlive their starter.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    child_env = {k: v for k, v in (env if env is not None else os.environ).items() if k != LOCK_HELD_ENV}
    with log.open("ab" if append else "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            close_fds=True,
            start_new_session=detach,
            preexec_fn=preexec,
        )


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return f"--- last lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])
