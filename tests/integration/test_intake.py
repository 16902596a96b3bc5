"""Intake, with real calls: how fast a caller who wants a person gets one, and the survey after a person.

Issue 16: the national standard means a *person* answering; "人工服务请按0" comes first in the menu,
a caller who presses nothing is in the operators' queue within 20 s of arrival, and whoever
hangs up first on the citizen's side of the call, the citizen is asked for a rating.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lab.citizen import place_call
from tests.integration.conftest import DEPARTMENTS_PORT, REPO, SEAT_PORTS, Controller, Phone, until

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"


def human_first_routes(tmp_path: Path) -> Path:
    """The shipped routes.yaml with `intake: human-first`."""
    text = (REPO / "routes.yaml").read_text(encoding="utf-8")
    assert "  intake: menu " in text
    patched = tmp_path / "routes.yaml"
    patched.write_text(text.replace("  intake: menu ", "  intake: human-first ", 1), encoding="utf-8")
    return patched


def exported(name: str) -> str:
    with urllib.request.urlopen("http://127.0.0.1:9345/metrics", timeout=5) as resp:
        return next((line for line in resp.read().decode().splitlines() if line.startswith(name)), "")


def steps(controller: Controller, row: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in controller.calllog.steps(row["call_id"]) if s["name"] == name]


def test_a_silent_caller_is_in_the_operators_queue_within_20_s_of_arrival(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT)
    seat = phones(SEAT_PORTS[0], talk_ms=1500)
    controller = start_controller()

    call = place_call("12345", "", caller=CITIZEN, talk_ms=45000)  # presses nothing, ever

    assert call.succeeded, call.stderr
    assert department.invites() == [] and len(seat.invites()) == 1
    (row,) = controller.finished_calls(timeout=30)
    assert (row["decision"], row["reason"], row["outcome"], row["keys"]) == ("operator", "no_input", "operator", "")
    (joined,) = steps(controller, row, "queue_joined")
    assert joined["at"] - row["started_at"] <= 20, "the silent caller waited too long for the operators' queue"
    assert row["target_answered_at"] - row["started_at"] <= 25  # and a free seat rang at once


def test_after_an_operator_hangs_up_first_the_citizen_rates_the_service(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    seat = phones(SEAT_PORTS[0], talk_ms=1500)  # the operator ends the conversation
    controller = start_controller()

    # '0', then the rating a good ten seconds later: while the survey prompt plays.
    call = place_call("12345", "0" + "," * 10 + "1", caller=CITIZEN, talk_ms=25000)

    assert call.succeeded, call.stderr
    assert len(seat.invites()) == 1
    (row,) = controller.finished_calls()
    assert (row["outcome"], row["hangup_by"], row["satisfaction"]) == ("operator", "callee", 1)
    assert [s["detail"] for s in steps(controller, row, "survey")] == [{"key": "1"}]
    (ticket,) = controller.calllog.tickets()
    assert (ticket["ticket_id"], ticket["kind"], ticket["satisfaction"]) == (row["ticket_id"], "operator", 1)


def test_human_first_a_silent_caller_is_put_through_to_a_free_seat_at_once(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    seat = phones(SEAT_PORTS[0], talk_ms=1500)
    controller = start_controller(routes=human_first_routes(tmp_path))

    call = place_call("12345", "", caller=CITIZEN, talk_ms=20000)

    assert call.succeeded, call.stderr
    assert len(seat.invites()) == 1
    (row,) = controller.finished_calls()
    assert (row["decision"], row["reason"], row["outcome"]) == ("operator", "human_first", "operator")
    (answered,) = steps(controller, row, "answered")
    assert answered["detail"] == {"intake": "human-first"}
    (joined,) = steps(controller, row, "queue_joined")
    assert joined["at"] - row["started_at"] <= 2  # in the line from the first second
    assert row["target_answered_at"] - row["started_at"] <= 8  # a free seat rang at once, the menu cut short
    assert exported('hotline_intake_time_to_human_seconds_count{intake="human-first"}').endswith(" 1.0")
    assert exported('hotline_intake_time_to_human_seconds_count{intake="menu"}').endswith(" 0.0")


def test_human_first_a_key_that_picks_a_department_leaves_the_operators_line(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=1500)
    seats = [phones(port, talk_ms=30000) for port in SEAT_PORTS]
    controller = start_controller(routes=human_first_routes(tmp_path))

    with ThreadPoolExecutor(3) as pool:
        # Two silent callers take both seats; the third, in line behind them, presses 1 (公安局).
        busy = [
            pool.submit(place_call, "12345", "", caller=f"1390000000{n}", local_port=5071 + n, talk_ms=25000)
            for n in (1, 2)
        ]
        until(lambda: len(controller.events("call_arrived")) == 2, what="two callers to arrive")
        until(lambda: sum(len(s.invites()) for s in seats) == 2, timeout=15, what="both seats to ring")
        time.sleep(1)
        choosing = place_call("12345", "1", caller=CITIZEN, local_port=5074, talk_ms=15000)
        assert choosing.succeeded, choosing.stderr
        assert all(c.result().succeeded for c in busy), [c.result().stderr for c in busy]

    assert [uri.split("@")[0] for uri in department.invites()] == ["sip:3372000"]
    row = next(r for r in controller.finished_calls(3, timeout=40) if r["caller_masked"] == "139****5678")
    assert (row["decision"], row["reason"], row["unit"], row["outcome"]) == (
        "dial",
        "menu_choice",
        "市公安局",
        "connected",
    )
    (left,) = steps(controller, row, "queue_left")
    assert left["detail"]["menu_choice"] is True
    assert steps(controller, row, "queue_joined")[0]["detail"] == {"position": 1}
