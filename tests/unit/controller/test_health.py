"""/health: the controller says it is ready for calls only when it can take them whole.

Ready (200) means the ARI events connection is up, the resync after it is done and the call
log takes writes; anything else is 503 with the reasons, so whoever starts it (lab/) or
balances calls onto it waits instead of guessing from log lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from ivr.ari.client import AriSettings
from ivr.controller.app import Controller
from ivr.routing import routes
from ivr.settings import Settings

REPO = Path(__file__).resolve().parents[3]


def controller_at(calllog: Path) -> Controller:
    settings = Settings(
        ari=AriSettings(url="http://127.0.0.1:1/ari", username="hotline", password="unused"),
        routes_path=REPO / "routes.yaml",
        calllog_path=calllog,
        caller_hash_key=b"k" * 32,
        metrics_addr=("127.0.0.1", 0),
    )
    return Controller(settings, routes.load(settings.routes_path))


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    c = controller_at(tmp_path / "calllog.sqlite3")
    c.calllog.start()
    yield c
    c.calllog.close()


def connected(c: Controller) -> Controller:
    c.ari_up = True
    c.connected.set()
    return c


def test_before_ari_connects_it_is_unavailable_and_says_why(controller: Controller) -> None:
    status, body = controller.health()

    assert status == 503
    assert body["status"] == "unavailable"
    assert (body["ari_connected"], body["resynced"], body["calllog_writable"]) == (False, False, True)
    assert body["reasons"] == ["the ARI events connection is down", "the resync with Asterisk is not done"]


def test_connected_but_still_resyncing_is_not_ready(controller: Controller) -> None:
    controller.ari_up = True  # the WebSocket is open; calls left by the gap are still being repaired

    status, body = controller.health()

    assert status == 503
    assert body["reasons"] == ["the resync with Asterisk is not done"]


def test_connected_resynced_and_writing_is_ready(controller: Controller) -> None:
    status, body = connected(controller).health()

    assert status == 200
    assert body == {
        "status": "ok",
        "ari_connected": True,
        "resynced": True,
        "calllog_writable": True,
        "accepting_calls": True,
        "reasons": [],
        "pid": os.getpid(),  # whoever started it knows the answer is its own, not a stranger's on the port
    }


def test_a_call_log_that_journals_makes_it_unavailable(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    c = connected(controller_at(tmp_path / "not-a-dir" / "calllog.sqlite3"))  # cannot be opened
    c.calllog.start()
    try:
        status, body = c.health()
    finally:
        c.calllog.close()

    assert status == 503
    assert body["calllog_writable"] is False
    assert body["reasons"] == ["the call log is not writable (writes wait in the journal)"]


def test_draining_for_shutdown_is_unavailable(controller: Controller) -> None:
    connected(controller).accepting = False

    status, body = controller.health()

    assert status == 503 and body["reasons"] == ["draining for shutdown"]


async def test_served_over_http_beside_metrics_as_json(controller: Controller) -> None:
    runner = await controller._serve_metrics()
    try:
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{host}:{port}/health") as down:
                assert down.status == 503 and down.content_type == "application/json"
                assert (await down.json())["status"] == "unavailable"
            connected(controller)
            async with http.get(f"http://{host}:{port}/health") as up:
                assert up.status == 200 and (await up.json())["status"] == "ok"
            async with http.get(f"http://{host}:{port}/metrics") as metrics:
                assert metrics.status == 200 and "hotline_" in await metrics.text()
    finally:
        await runner.cleanup()
