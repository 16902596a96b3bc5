"""Real parts for end-to-end tests: Asterisk 22 (sid chroot), the controller process, SIPp phones.

- `asterisk` (session): started through `./hotlinectl start-asterisk` — the same path a user
  takes — and stopped by pid at the end. Anything of a running demo hotline is stopped first:
  two controllers on one Stasis app would fight over every call.
- `start_controller` (per test): `hotline run` as a real subprocess with the test's own call log
  (lab.processes.ControllerProcess, the benchmark's controller too), ready once its /health
  answers 200. It logs JSON lines: tests match events by name and keys (`Controller.events`,
  `saw`), never rendered text.
- `phones`: SIPp UAS processes playing department lines (:5080) and operator seats (:5090)
  (lab.sipp.phone.Phone, the benchmark's and the soak's phones too).
- after every test, Asterisk must hold zero channels and zero bridges.

Tests poll for conditions (`until`) instead of sleeping.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ivr.calllog.sqlite import SqliteCallLog
from lab.events import matching
from lab.processes import ControllerProcess
from lab.sipp.phone import Phone

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("HOTLINE_STATE", REPO / "var"))
# Asterisk's own logs (messages.log, security) inside the Debian root hotlinectl builds.
ASTERISK_LOGS = Path(os.environ.get("HOTLINE_CACHE", "/var/cache/hotline12345")) / "sid-root/var/log/asterisk"
HOTLINECTL = str(REPO / "hotlinectl")
# Calls are placed "on a Tuesday morning" (local time) unless a test says otherwise, so
# business hours do not depend on when the suite runs.
OFFICE_HOURS = "2026-11-24T10:00:00"
AFTER_HOURS = "2026-11-24T20:00:00"
PARTNER_SECRET = "partner-secret-for-tests"
PARTNER_SECRET_ENVS = (
    "HOTLINE_PARTNER_SECRET_MARKET",
    "HOTLINE_PARTNER_SECRET_HEALTH",
    "HOTLINE_PARTNER_SECRET_SERVICES",
)
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

    def post(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        req = urllib.request.Request(
            f"http://127.0.0.1:8088/ari{path}?{query}", method="POST", data=b"", headers=self.headers
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def channels(self) -> list[dict[str, Any]]:
        return list(self.get("/channels"))

    def bridges(self) -> list[dict[str, Any]]:
        return list(self.get("/bridges"))


def ctl(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOTLINECTL, *args],
        cwd=REPO,
        text=True,
        capture_output=True,
        check=False,
        timeout=timeout,
        env={**os.environ, "HOTLINE_STATE": str(STATE)},
    )


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


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[Callable[..., Phone]]:
    started: list[Phone] = []

    def start(port: int, scenario: str = "phone_answer.xml", talk_ms: int = 2000) -> Phone:
        phone = Phone(port, tmp_path / f"phone-{port}", scenario, talk_ms=talk_ms, trace_msg=True)
        started.append(phone)
        return phone.start()

    yield start
    for phone in started:
        phone.stop(timeout=5)


class Controller:
    """A test's `hotline run` (lab.processes.ControllerProcess), its log and its call log."""

    def __init__(self, process: ControllerProcess) -> None:
        self.process = process
        self.calllog = SqliteCallLog(process.calllog)
        self.killed = False  # killed on purpose by the test: its exit code is not checked

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self.process.proc is not None
        return self.process.proc

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    @property
    def env(self) -> dict[str, str]:
        return self.process.env

    def log(self) -> str:
        """The log as written: for what must appear nowhere in it (a caller's number)."""
        return self.process.log()

    def events(self, name: str | None = None, **keys: Any) -> list[dict[str, Any]]:
        """The events it logged (JSON lines), or those called `name` whose keys include `keys`."""
        logged = self.process.events()
        return logged if name is None else matching(logged, name, **keys)

    def saw(self, name: str, **keys: Any) -> bool:
        return bool(self.events(name, **keys))

    def finished_calls(self, n: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until `n` calls are complete in the call log; return them in arrival order."""

        def done() -> list[dict[str, Any]]:
            rows = [r for r in self.calllog.calls() if r["outcome"] != "in_progress"]
            return rows if len(rows) >= n else []

        return list(until(done, timeout=timeout, what=f"{n} finished call(s) in the call log"))

    def stop(self) -> int:
        code = self.process.stop(timeout=20)
        assert code is not None
        return code


@pytest.fixture
def start_controller(asterisk: Ari, tmp_path: Path) -> Iterator[Callable[..., Controller]]:
    running: list[Controller] = []

    def start(
        routes: Path = REPO / "routes.yaml", clock: str = OFFICE_HOURS, env: dict[str, str] | None = None
    ) -> Controller:
        """Start `hotline run`; `env` adds or overrides environment variables (e.g. ARI_URL)."""
        # A test's controllers share its call log; each writes a log of its own.
        process = ControllerProcess(
            tmp_path,
            routes=routes,
            calllog=tmp_path / "calllog.sqlite3",
            log_path=tmp_path / f"controller-{len(running) + 1}.log",
            key_file=STATE / "caller-hash.key",
            clock=clock,
            partner_secret=PARTNER_SECRET,
        )
        process.start(env, timeout=20)
        controller = Controller(process)
        running.append(controller)
        return controller

    yield start
    for controller in running:
        code = controller.stop()
        if controller.killed:
            continue
        assert code == 0, f"controller exited with {code}:\n{controller.log()[-3000:]}"
        assert not controller.saw("call_crashed"), controller.log()


@dataclass
class Partner:
    """The partner platform's webhook receiver: records each POST and whether its HMAC verified."""

    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def partner_webhook() -> Iterator[Partner]:
    import http.server
    import threading

    from ivr.handoff.webhook import verify

    partner = Partner()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = verify(
                PARTNER_SECRET.encode(),
                int(self.headers.get("X-Hotline-Timestamp", "0")),
                body,
                self.headers.get("X-Hotline-Signature", ""),
                now=time.time(),
            )
            partner.received.append(
                {
                    "path": self.path,
                    "verified": ok,
                    "body": json.loads(body),
                    "delivery": self.headers.get("X-Hotline-Delivery"),
                }
            )
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", WEBHOOK_PORT), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield partner
    server.shutdown()
    server.server_close()
    thread.join()
