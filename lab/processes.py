"""The parts a benchmark run starts and stops itself: the lab lock, Asterisk, the controller.

Asterisk is (re)started through `./hotlinectl start-asterisk`, the path a user takes, so it runs
exactly the configuration in dialplan/ (the baseline context included). The controller is a
`hotline run` subprocess with the real routes.yaml and its own call log; the integration tests
start theirs with the same class. Processes are only ever stopped by the pids we started.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab.sipp.phone import stop_process

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("HOTLINE_STATE", REPO / "var"))
LAB_LOCK = Path("/tmp/hotline-lab.lock")
OFFICE_HOURS = "2026-11-24T10:00"  # a Tuesday morning: the departments are open
PARTNER_SECRET_ENVS = (
    "HOTLINE_PARTNER_SECRET_MARKET",
    "HOTLINE_PARTNER_SECRET_HEALTH",
    "HOTLINE_PARTNER_SECRET_SERVICES",
)
CLK_TCK = os.sysconf("SC_CLK_TCK")


@contextmanager
def lab_lock(wait: bool = True) -> Iterator[None]:
    """The shared lab lock (the same one `flock /tmp/hotline-lab.lock` takes), for the whole run."""
    with LAB_LOCK.open("a") as fh:
        if wait:
            print(f"bench: waiting for the lab lock {LAB_LOCK} ...", flush=True)
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def hotlinectl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "hotlinectl"), *args],
        cwd=REPO,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "HOTLINE_STATE": str(STATE)},
    )


def restart_asterisk() -> int:
    """A fresh Asterisk with dialplan/ as it is now (a running one may have older config)."""
    hotlinectl("stop")  # a demo hotline would share the Stasis app with our controller
    started = hotlinectl("start-asterisk")
    if started.returncode != 0:
        raise RuntimeError(f"hotlinectl start-asterisk failed:\n{started.stdout}\n{started.stderr}")
    return asterisk_pid()


def stop_asterisk() -> None:
    hotlinectl("stop-asterisk")


def asterisk_pid() -> int:
    return int((STATE / "asterisk.pid").read_text().strip())


def asterisk_version() -> str:
    return str(Ari().get("/asterisk/info").get("system", {}).get("version", "?"))


class Ari:
    """Plain HTTP view of Asterisk, independent of the controller under test."""

    def __init__(self) -> None:
        password = (STATE / "ari-password").read_text().strip()
        token = base64.b64encode(f"hotline:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def get(self, path: str) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:8088/ari{path}", headers=self.headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def leftovers(self, wait: float = 20.0) -> tuple[int, int]:
        """Channels and bridges still in Asterisk, after giving the last hangups `wait` seconds."""
        deadline = time.monotonic() + wait
        while True:
            channels, bridges = len(self.get("/channels")), len(self.get("/bridges"))
            if (channels == 0 and bridges == 0) or time.monotonic() > deadline:
                return channels, bridges
            time.sleep(0.5)


class ControllerProcess:
    """`hotline run` as a subprocess: the benchmark's, the soak's and the integration tests' controller.

    By default the real routes.yaml, and a call log, a caller-hash key and a log of its own in
    `workdir`; the tests name the lab's key, their call log (shared by a test's controllers)
    and a log per controller. Up means connected to ARI: `event='resynced'` in the log it wrote
    since this start (a restarted controller appends to the same log).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        routes: Path = REPO / "routes.yaml",
        calllog: Path | None = None,
        log_path: Path | None = None,
        key_file: Path | None = None,
        clock: str = OFFICE_HOURS,
        partner_secret: str = "bench-partner-secret",
    ) -> None:
        self.workdir = workdir
        self.routes = routes
        self.calllog = calllog or workdir / "calllog.sqlite3"
        self.log_path = log_path or workdir / "controller.log"
        self.own_key = key_file is None  # made here on first start, unlike a key the lab already holds
        self.key_file = key_file or workdir / "caller-hash.key"
        self.clock = clock
        self.partner_secret = partner_secret
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def key(self) -> bytes:
        return self.key_file.read_text().strip().encode()

    def log(self) -> str:
        return self._log_bytes().decode(errors="replace")

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 30.0) -> int:
        """Start it and wait until it is connected to ARI (its pid); fail with its log's tail."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.own_key and not self.key_file.exists():
            self.key_file.write_text(secrets.token_hex(32))
            self.key_file.chmod(0o600)
        self.env = {
            **os.environ,
            "ARI_PASSWORD_FILE": str(STATE / "ari-password"),
            "HOTLINE_CALLER_KEY_FILE": str(self.key_file),
            "HOTLINE_CALLLOG": str(self.calllog),
            "HOTLINE_SHUTDOWN_GRACE": "5",
            "HOTLINE_STATE": str(STATE),
            "HOTLINE_CLOCK_START": self.clock,
            **{name: self.partner_secret for name in PARTNER_SECRET_ENVS},
            **(extra_env or {}),
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            since = log.tell()
            self.proc = subprocess.Popen(
                [str(REPO / ".venv" / "bin" / "hotline"), "run", "--routes", str(self.routes)],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b"event='resynced'" in self._log_bytes(since):
                return self.proc.pid
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        code = self.stop()
        raise RuntimeError(
            f"controller did not connect to ARI (waited up to {timeout:g}s, exit {code}):\n"
            f"{self._log_bytes(since)[-3000:].decode(errors='replace')}"
        )

    def _log_bytes(self, since: int = 0) -> bytes:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(since)
                return fh.read()
        except FileNotFoundError:
            return b""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (it drains its calls for HOTLINE_SHUTDOWN_GRACE), SIGKILL after `timeout` s."""
        return stop_process(self.proc, signal.SIGTERM, timeout)

    def rows(self, since: float = 0.0) -> list[dict[str, Any]]:
        if not self.calllog.exists():
            return []
        db = sqlite3.connect(self.calllog, timeout=10)
        try:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM calls WHERE started_at >= ?", (since,))]
        finally:
            db.close()

    def caller_steps(self, since: float) -> dict[str, dict[str, float]]:
        """caller_hash -> {'answered': outbound answered at, 'bridged': bridge formed at} (wall clock).

        The bridge time is not a step of its own: the citizen hangs up first, so the call's
        talk ends at its 'caller_hangup' step and began talk_seconds before it.
        """
        if not self.calllog.exists():
            return {}
        db = sqlite3.connect(self.calllog, timeout=10)
        try:
            rows = db.execute(
                "SELECT c.caller_hash, c.target_answered_at, c.talk_seconds, s.at FROM calls c"
                " JOIN call_steps s ON s.call_id = c.call_id AND s.name = 'caller_hangup'"
                " WHERE c.started_at >= ? AND c.talk_seconds > 0",
                (since,),
            ).fetchall()
        finally:
            db.close()
        return {h: {"answered": float(a or 0), "bridged": float(at) - float(talk)} for h, a, talk, at in rows}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15 of proc(5))


def cpu_sampler(pids: dict[str, int]) -> Callable[[], Callable[[], dict[str, float]]]:
    """start() -> stop(); stop() gives each process's mean CPU % (100 = one core) since start()."""

    def start() -> Callable[[], dict[str, float]]:
        t0 = time.monotonic()
        before = {name: _ticks(pid) for name, pid in pids.items()}

        def stop() -> dict[str, float]:
            wall = time.monotonic() - t0
            return {
                name: round((_ticks(pid) - before[name]) / CLK_TCK / wall * 100, 1) if wall else 0.0
                for name, pid in pids.items()
            }

        return stop

    return start


def _ticks(pid: int) -> int:
    try:
        return cpu_ticks(pid)
    except (OSError, IndexError, ValueError):
        return 0
