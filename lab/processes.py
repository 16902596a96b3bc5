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
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab.daemon import LabError, PidFile, spawn
from lab.events import parse_events
from lab.sipp.phone import stop_process

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("HOTLINE_STATE", REPO / "var"))
CACHE = Path(os.environ.get("HOTLINE_CACHE", "/var/cache/hotline12345"))
ROOT = CACHE / "sid-root"  # the lab's Asterisk runs chrooted here
# Where the lab's Asterisk writes refused and fallback calls (dialplan/cel_sqlite3_custom.conf).
ASTERISK_EVENTS = ROOT / "var/log/asterisk/hotline-events.db"
LAB_LOCK = Path("/tmp/hotline-lab.lock")
OFFICE_HOURS = "2026-11-24T10:00"  # a Tuesday morning: the departments are open
PARTNER_SECRET_ENVS = (
    "HOTLINE_PARTNER_SECRET_MARKET",
    "HOTLINE_PARTNER_SECRET_HEALTH",
    "HOTLINE_PARTNER_SECRET_SERVICES",
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_METRICS_ADDR = "127.0.0.1:9345"  # ivr.settings: HOTLINE_METRICS_ADDR
DEFAULT: Any = object()  # "not given" where None means "leave it to the controller"


def health(url: str) -> tuple[int, dict[str, Any]]:
    """GET a controller's /health: (HTTP status, JSON body); (0, {}) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


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
    """`hotline run` as a subprocess: the lab's, the benchmark's, the soak's and the tests' controller.

    The one place a controller is started. By default the real routes.yaml, and a call log, a
    caller-hash key and a log of its own in `workdir`; the tests name the lab's key, their call
    log (shared by a test's controllers) and a log per controller. The lab's own controller
    (`python -m lab start controller`) passes `calllog=None`, `clock=None`, ... to keep the
    controller's defaults and the caller's environment, and a `pid_file`: it is then a daemon
    (its own session) that a later `python -m lab stop` stops by that pid.

    Up means ready for calls: its /health answers 200 (ARI connected, resynced, call log
    writable) with its own pid — not a stranger's on the same port.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        routes: Path = REPO / "routes.yaml",
        calllog: Path | None = DEFAULT,
        log_path: Path | None = None,
        key_file: Path | None = None,
        clock: str | None = OFFICE_HOURS,
        partner_secret: str | None = "bench-partner-secret",
        shutdown_grace: str | None = "5",
        log_format: str | None = "json",
        pid_file: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.routes = routes
        # None: HOTLINE_CALLLOG is left to the environment; the controller's default is this file.
        self.calllog_set = calllog is not None
        self.calllog: Path = workdir / "calllog.sqlite3" if calllog is DEFAULT else calllog or STATE / "calllog.sqlite3"
        self.log_path = log_path or workdir / "controller.log"
        self.own_key = key_file is None  # made here on first start, unlike a key the lab already holds
        self.key_file = key_file or workdir / "caller-hash.key"
        self.clock = clock
        self.partner_secret = partner_secret
        self.shutdown_grace = shutdown_grace
        self.log_format = log_format
        self.pid_file = PidFile(pid_file, "hotline") if pid_file else None
        self.base_env = env or {}
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def key(self) -> bytes:
        return self.key_file.read_text().strip().encode()

    def log(self) -> str:
        return self._log_bytes().decode(errors="replace")

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """The events it logged (JSON lines; lines that are not JSON are skipped)."""
        return parse_events(self._log_bytes(since))

    def _environment(self, extra_env: dict[str, str] | None) -> dict[str, str]:
        env = {
            **os.environ,
            "ARI_PASSWORD_FILE": str(STATE / "ari-password"),
            "HOTLINE_CALLER_KEY_FILE": str(self.key_file),
            "HOTLINE_STATE": str(STATE),
            "HOTLINE_ASTERISK_EVENTS": str(ASTERISK_EVENTS),
            **self.base_env,
        }
        if self.calllog_set:
            env["HOTLINE_CALLLOG"] = str(self.calllog)
        if self.shutdown_grace is not None:
            env["HOTLINE_SHUTDOWN_GRACE"] = self.shutdown_grace
        if self.log_format is not None:
            env["HOTLINE_LOG_FORMAT"] = self.log_format  # JSON lines: read as events (lab.events)
        if self.clock is not None:
            env["HOTLINE_CLOCK_START"] = self.clock
        if self.partner_secret is not None:
            env.update({name: self.partner_secret for name in PARTNER_SECRET_ENVS})
        return {**env, **(extra_env or {})}

    @property
    def health_url(self) -> str:
        return f"http://{self.env.get('HOTLINE_METRICS_ADDR', DEFAULT_METRICS_ADDR)}/health"

    def health(self) -> tuple[int, dict[str, Any]]:
        """Its /health: (HTTP status, body); (0, {}) when nothing answers."""
        return health(self.health_url)

    def running_pid(self) -> int | None:
        """The pid of the lab's daemon controller named by the pid file, if it runs."""
        return self.pid_file.pid() if self.pid_file else None

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 30.0) -> int:
        """Start it and wait until /health says it is ready (its pid); fail with its log's tail."""
        hotline = REPO / ".venv" / "bin" / "hotline"
        if not hotline.exists():
            raise LabError(f"{hotline} missing: run ./hotlinectl setup")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.own_key and not self.key_file.exists():
            self.key_file.write_text(secrets.token_hex(32))
            self.key_file.chmod(0o600)
        self.env = self._environment(extra_env)
        since = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = spawn(
            [str(hotline), "run", "--routes", str(self.routes)],
            log=self.log_path,
            env=self.env,
            cwd=REPO,
            detach=self.pid_file is not None,
        )
        if self.pid_file:
            self.pid_file.write(self.proc.pid)
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, body = self.health()
            if status == 200 and body.get("pid") == self.proc.pid:
                return self.proc.pid
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        code = self.stop()
        raise LabError(
            f"controller not ready (waited up to {timeout:g}s, exit {code}, /health: {body.get('reasons', body)}):\n"
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
        """SIGTERM (it drains its calls for HOTLINE_SHUTDOWN_GRACE), SIGKILL after `timeout` s.

        Its exit code when this process started it; a daemon found by its pid file is stopped
        the same way (None: its code went to whoever reaps it).
        """
        if self.proc is not None:
            code = stop_process(self.proc, signal.SIGTERM, timeout)
            if self.pid_file:
                self.pid_file.remove()
            return code
        if self.pid_file:
            self.pid_file.stop("controller", signal.SIGTERM, timeout)
        return None

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
