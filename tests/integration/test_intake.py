"""Intake, with real calls: how fast a caller who wants a person gets one, and the survey after a person.

Issue 16: the national standard means a *person* answering; "人工服务请按0" comes first in the menu,
a caller who presses nothing is in the operators' queue within 20 s of arrival, and whoever
hangs up first on the citizen's side of the call, the citizen is asked for a rating.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lab.citizen import place_call
from tests.integration.conftest import DEPARTMENTS_PORT, SEAT_PORTS, Controller, Phone

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"


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
