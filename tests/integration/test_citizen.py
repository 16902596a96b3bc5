"""The citizen's side of a ticket, with real calls: the number heard, and its progress asked by phone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ivr.citizen.ticket_number import keypad_number
from lab.citizen import place_call
from tests.integration.conftest import DEPARTMENTS_PORT, Controller, Phone

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"
OTHER = "13987654321"


def steps(controller: Controller, call_id: str, name: str) -> list[dict[str, Any]]:
    return [s for s in controller.calllog.steps(call_id) if s["name"] == name]


def test_a_department_call_ends_with_the_ticket_number_and_its_progress_can_be_asked_by_phone(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller()

    # 1. A department call: when the department hangs up, the citizen hears the ticket number.
    call = place_call("12345", "1", caller=CITIZEN, talk_ms=60000)
    assert call.succeeded, call.stderr
    (first,) = controller.finished_calls()
    (ticket,) = controller.calllog.tickets()
    assert ticket["call_id"] == first["call_id"] and first["ticket_id"] == ticket["ticket_id"]
    (told,) = steps(controller, first["call_id"], "ticket_told")
    number = keypad_number(ticket["ticket_id"])
    assert told["detail"]["prompts"] == ["ticket-number-is", *(f"digit-{d}" for d in number)]
    assert told["detail"]["ticket_id"] == ticket["ticket_id"]
    # Played to its end on the citizen's channel before the survey was asked: 15 prompts take seconds.
    (survey,) = steps(controller, first["call_id"], "survey")
    assert survey["at"] - told["at"] > 5
    assert controller.saw("ticket_told", ticket_id=ticket["ticket_id"], again=False)

    # 2. The same citizen presses 8 (查询办理进度) and '#' alone: their own latest ticket.
    own = place_call("12345", "8#", caller=CITIZEN, talk_ms=60000)
    assert own.succeeded, own.stderr
    second = controller.finished_calls(2)[1]
    assert [s["detail"] for s in steps(controller, second["call_id"], "progress")] == [
        {"own": True, "digits": 0, "ticket_id": ticket["ticket_id"]}
    ]
    assert (second["decision"], second["outcome"], second["hangup_by"]) == ("progress", "informed", "system")

    # 3. Someone else types the number they were told.
    typed = place_call("12345", f"8{number}#", caller=OTHER, gap_ms=400, talk_ms=60000)
    assert typed.succeeded, typed.stderr
    third = controller.finished_calls(3)[2]
    assert [s["detail"] for s in steps(controller, third["call_id"], "progress")] == [
        {"own": False, "digits": 14, "ticket_id": ticket["ticket_id"]}
    ]
    assert third["outcome"] == "informed"

    # 4. Three wrong numbers (the other caller has no ticket of their own): a clear prompt each time, then goodbye.
    wrong = place_call("12345", "8123#,,99999999999999#,,#", caller=OTHER, gap_ms=400, talk_ms=60000)
    assert wrong.succeeded, wrong.stderr
    fourth = controller.finished_calls(4, timeout=60)[3]
    assert [s["detail"] for s in steps(controller, fourth["call_id"], "progress")] == [
        {"own": False, "digits": 3, "ticket_id": ""},
        {"own": False, "digits": 14, "ticket_id": ""},
        {"own": True, "digits": 0, "ticket_id": ""},
    ]
    assert (fourth["decision"], fourth["outcome"]) == ("progress", "goodbye")
    assert len(controller.calllog.tickets()) == 1  # asking opens no ticket
    assert CITIZEN not in controller.log() and OTHER not in controller.log()
