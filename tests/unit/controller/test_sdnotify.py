"""The controller tells systemd it is ready, then keeps its watchdog fed from the event loop.

Under `Type=notify` + `WatchdogSec=` (deploy/systemd/hotline.service) systemd restarts the
controller when the keep-alives stop. They are sent by a task on the event loop, so they stop
exactly when the loop is stuck: that is what these tests show, against a NOTIFY_SOCKET the test
binds, with the real Controller serving (ARI unreachable: it keeps retrying, which is fine here).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ivr.ari.client import AriSettings
from ivr.controller.app import Controller
from ivr.controller.sdnotify import Notifier
from ivr.routing import routes
from ivr.settings import Settings

REPO = Path(__file__).resolve().parents[3]
INTERVAL_USEC = 200_000  # WatchdogSec=0.2 s: keep-alives every 0.1 s


class SystemdSocket:
    """What systemd listens on: records every datagram with the time it arrived."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))

    def messages(self) -> list[str]:
        return [m for _, m in self.received]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SystemdSocket]:
    listener = SystemdSocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", str(INTERVAL_USEC))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield listener
    listener.close()


def controller(tmp_path: Path) -> Controller:
    settings = Settings(
        ari=AriSettings(url="http://127.0.0.1:1/ari", username="hotline", password="unused"),
        routes_path=REPO / "routes.yaml",
        calllog_path=tmp_path / "calllog.sqlite3",
        caller_hash_key=b"k" * 32,
        metrics_addr=("127.0.0.1", 0),
    )
    return Controller(settings, routes.load(settings.routes_path))


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_ready_then_keepalives_that_stop_while_the_loop_is_blocked(systemd: SystemdSocket, tmp_path: Path) -> None:
    blocked: list[float] = []

    async def scenario() -> None:
        c = controller(tmp_path)
        serving = asyncio.create_task(c.serve())
        await until(lambda: systemd.messages().count("WATCHDOG=1") >= 3)
        blocked.append(time.monotonic())
        time.sleep(1.0)  # noqa: ASYNC251 — the point: a blocking call sticks the loop
        blocked.append(time.monotonic())
        count = len(systemd.received)
        await until(lambda: len(systemd.received) >= count + 2)  # it turns again, and so do the keep-alives
        c.request_stop()
        await serving

    asyncio.run(scenario())

    messages = systemd.messages()
    assert messages[0] == "READY=1"
    assert messages[-1] == "STOPPING=1"
    assert set(messages[1:-1]) == {"WATCHDOG=1"}
    start, end = blocked
    during = [at for at, m in systemd.received if start + 0.25 < at < end]
    assert during == []  # a turning loop would have sent ~7 here; systemd would now kill and restart it
    assert [at for at, _ in systemd.received if at > end]


def test_without_systemd_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    notifier.notify("READY=1")
    asyncio.run(notifier.run())  # READY only: no watchdog asked for, so it returns at once


def test_an_abstract_socket_name_and_the_interval_are_read_from_the_environment() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "@/org/freedesktop/systemd1/notify", "WATCHDOG_USEC": "30000000"})
    assert notifier.address == "\0/org/freedesktop/systemd1/notify"
    assert notifier.watchdog_interval == 15.0


def test_a_watchdog_meant_for_another_process_is_not_fed() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval is None
