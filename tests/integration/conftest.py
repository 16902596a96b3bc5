"""Real parts for end-to-end tests: Asterisk 22 (sid chroot), the controller process, SIPp phones.

- `asterisk` (session): started through `./hotlinectl start-asterisk` — the same path a user
  takes — and stopped by pid at the end. Anything of a running demo hotline is stopped first:
  two controllers on one Stasis app would fight over every call.
- `controller` (per test): `hotline run` as a real subprocess with its own call log.
- `phones`: SIPp UAS processes playing department lines (:5080) and operator seats (:5090).
- after every test, Asterisk must hold zero channels and zero bridges.

Tests poll for conditions (`until`) instead of sleeping.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ivr.calllog.sqlite import SqliteCallLog

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("HOTLINE_STATE", REPO / "var"))
# Asterisk's own logs (messages.log, security) inside the Debian root hotlinectl builds.
ASTERISK_LOGS = Path(os.environ.get("HOTLINE_CACHE", "/var/cache/hotline12345")) / "sid-root/var/log/asterisk"
HOTLINECTL = str(REPO / "hotlinectl")
SCENARIOS = REPO / "ivr" / "sipp"
# Calls are placed "on a Tuesday morning" (local time) unless a test says otherwise, so
# business hours do not depend on when the suite runs.
OFFICE_HOURS = "2026-11-24T10:00:00"
AFTER_HOURS = "2026-11-24T20:00:00"
PARTNER_SECRET = "partner-secret-for-tests"
PARTNER_SECRET_ENVS = ("HOTLINE_PARTNER_SECRET_MARKET", "HOTLINE_PARTNER_SECRET_HEALTH",
                       "HOTLINE_PARTNER_SECRET_SERVICES")
WEBHOOK_PORT = 8099
DEPARTMENTS_PORT = 5080
OPERATORS_PORT = 5090
PARTNERS_PORT = 5100
SEAT_PORTS = (5091, 5092)  # operator seats operator-1, operator-2 (routes.yaml operators.seats)


def until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last={last!r}")


class Ari:
    """Plain-HTTP view of Asterisk for assertions (independent of the code under test)."""

    def __init__(self, password: str) -> None:
        token = base64.b64encode(f"hotline:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def get(self, path: str) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:8088/ari{path}", headers=self.headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def channels(self) -> list[dict[str, Any]]:
        return list(self.get("/channels"))

    def bridges(self) -> list[dict[str, Any]]:
        return list(self.get("/bridges"))


def ctl(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOTLINECTL, *args], cwd=REPO, text=True, capture_output=True, check=False,
                          timeout=timeout, env={**os.environ, "HOTLINE_STATE": str(STATE)})


@pytest.fixture(scope="session")
def asterisk() -> Iterator[Ari]:
    ctl("stop")  # a demo hotline left running would share the Stasis app with our controller
    started = ctl("start-asterisk")
    if started.returncode != 0:
        pytest.fail(f"hotlinectl start-asterisk failed:\n{started.stdout}\n{started.stderr}")
    ari = Ari((STATE / "ari-password").read_text().strip())
    yield ari
    stopped = ctl("stop-asterisk")
    assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(autouse=True)
def nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each end-to-end test Asterisk holds no channel and no bridge."""
    yield
    if "asterisk" not in request.fixturenames:
        return
    ari: Ari = request.getfixturevalue("asterisk")
    until(lambda: not ari.channels(), timeout=15, what="Asterisk to hold zero channels")
    until(lambda: not ari.bridges(), timeout=5, what="Asterisk to hold zero bridges")


@dataclass
class Phone:
    """A SIPp UAS standing in for a department line or an operator seat."""

    port: int
    scenario: str
    workdir: Path
    proc: subprocess.Popen[str] | None = None
    talk_ms: int = 2000

    def start(self) -> Phone:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "stderr.log").open("w") as stderr:
            self.proc = subprocess.Popen(
                ["sipp", "-sf", str(SCENARIOS / self.scenario), "-i", "127.0.0.1", "-p", str(self.port),
                 "-mi", "127.0.0.1", "-mp", str(6000 + (self.port - 5000) * 20), "-d", str(self.talk_ms),
                 "-nostdin", "-trace_msg", "-message_file", str(self.messages_file),
                 "-trace_err", "-error_file", str(self.workdir / "errors.log")],
                cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        until(lambda: self.messages_file.exists() or self.proc.poll() is not None,  # type: ignore[union-attr]
              timeout=5, what=f"sipp on :{self.port}")
        if self.proc.poll() is not None:
            raise AssertionError(f"sipp phone on :{self.port} exited: {(self.workdir / 'stderr.log').read_text()}")
        return self

    @property
    def messages_file(self) -> Path:
        return self.workdir / "messages.log"

    def messages(self) -> str:
        return self.messages_file.read_text(errors="replace") if self.messages_file.exists() else ""

    def invites(self) -> list[str]:
        """Request-URIs of the INVITEs this phone received, one per call: a retransmitted INVITE
        (same Call-ID, sent again when the phone was slow to answer on a loaded machine) counts once."""
        uris: list[str] = []
        seen: set[str] = set()
        uri = ""
        for line in self.messages().splitlines():
            if line.startswith("INVITE sip:"):
                uri = line.split()[1]
            elif uri and line.lower().startswith("call-id:"):
                call_id = line.split(":", 1)[1].strip()
                if call_id not in seen:
                    seen.add(call_id)
                    uris.append(uri)
                uri = ""
        return uris

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # -m N would drop its last calls without a BYE
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[Callable[..., Phone]]:
    started: list[Phone] = []

    def start(port: int, scenario: str = "phone_answer.xml", talk_ms: int = 2000) -> Phone:
        phone = Phone(port, scenario, tmp_path / f"phone-{port}", talk_ms=talk_ms).start()
        started.append(phone)
        return phone

    yield start
    for phone in started:
        phone.stop()


@dataclass
class Controller:
    proc: subprocess.Popen[str]
    log_path: Path
    calllog: SqliteCallLog
    env: dict[str, str] = field(default_factory=dict)
    killed: bool = False  # killed on purpose by the test: its exit code is not checked

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def finished_calls(self, n: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until `n` calls are complete in the call log; return them in arrival order."""
        def done() -> list[dict[str, Any]]:
            rows = [r for r in self.calllog.calls() if r["outcome"] != "in_progress"]
            return rows if len(rows) >= n else []
        return list(until(done, timeout=timeout, what=f"{n} finished call(s) in the call log"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def start_controller(asterisk: Ari, tmp_path: Path) -> Iterator[Callable[..., Controller]]:
    running: list[Controller] = []

    def start(routes: Path = REPO / "routes.yaml", clock: str = OFFICE_HOURS,
              env: dict[str, str] | None = None) -> Controller:
        """Start `hotline run`; `env` adds or overrides environment variables (e.g. ARI_URL)."""
        extra = env or {}
        log_path = tmp_path / f"controller-{len(running) + 1}.log"
        calllog_path = tmp_path / "calllog.sqlite3"
        env = {**os.environ, "ARI_PASSWORD_FILE": str(STATE / "ari-password"),
               "HOTLINE_CALLER_KEY_FILE": str(STATE / "caller-hash.key"),
               "HOTLINE_CALLLOG": str(calllog_path), "HOTLINE_SHUTDOWN_GRACE": "5",
               "HOTLINE_STATE": str(STATE), "HOTLINE_CLOCK_START": clock,
               **{name: PARTNER_SECRET for name in PARTNER_SECRET_ENVS}, **extra}
        with log_path.open("w") as log_file:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "hotline"), "run", "--routes", str(routes)],
                                    cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)
        controller = Controller(proc, log_path, SqliteCallLog(calllog_path), env)
        running.append(controller)
        until(lambda: "event='resynced'" in controller.log() or proc.poll() is not None, timeout=20,
              what="the controller to connect to ARI")
        assert proc.poll() is None, controller.log()
        return controller

    yield start
    for controller in running:
        code = controller.stop()
        if controller.killed:
            continue
        assert code == 0, f"controller exited with {code}:\n{controller.log()[-3000:]}"
        assert "call_crashed" not in controller.log(), controller.log()


@dataclass
class Partner:
    """The partner platform's webhook receiver: records each POST and whether its HMAC verified."""

    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def partner_webhook() -> Iterator[Partner]:
    import http.server
    import threading

    from ivr.webhook import verify

    partner = Partner()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = verify(PARTNER_SECRET.encode(), int(self.headers.get("X-Hotline-Timestamp", "0")), body,
                        self.headers.get("X-Hotline-Signature", ""), now=time.time())
            partner.received.append({"path": self.path, "verified": ok, "body": json.loads(body),
                                     "delivery": self.headers.get("X-Hotline-Delivery")})
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", WEBHOOK_PORT), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield partner
    server.shutdown()
    server.server_close()
    thread.join()
