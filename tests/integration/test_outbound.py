"""Calls the hotline places itself, with real calls: 回访 after a ticket is closed, and 漏接回拨.

The SIPp "citizen" the hotline dials answers on the carrier trunk (dialplan/pjsip.conf: aor carrier,
:5096); the operator seats are SIPp phones on :5091/:5092 as in test_operator_queue.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ivr.outbound import store
from ivr.report import figures as report
from ivr.routing import routes
from ivr.ticketing.store import TicketBook
from ivr.tickets import from_epoch, to_epoch
from lab.citizen import place_call
from lab.sipp.keys_phone import keys_phone
from tests.integration.conftest import DEPARTMENTS_PORT, OFFICE_HOURS, REPO, SEAT_PORTS, Controller, Phone, until

pytestmark = pytest.mark.integration

CITIZEN_PORT = 5096  # where PJSIP/<number>@carrier rings in the lab
CITIZEN = "13912345678"


def quick_routes(tmp_path: Path) -> Path:
    """The shipped routes.yaml, its outbound lists looked at every second and the first try made at once."""
    text = (REPO / "routes.yaml").read_text(encoding="utf-8")
    assert "  poll_seconds: 10 " in text and "  first_after_minutes: 5 " in text
    text = text.replace("  poll_seconds: 10 ", "  poll_seconds: 1 ").replace(
        "  first_after_minutes: 5 ", "  first_after_minutes: 0 "
    )
    patched = tmp_path / "routes.yaml"
    patched.write_text(text, encoding="utf-8")
    return patched


def closed_ticket(controller: Controller, caller: str) -> str:
    """A department call from `caller` opens a ticket (dispatched to the unit); the unit replies and it is closed."""
    before = len(controller.calllog.calls())
    call = place_call("12345", "1", caller=caller, talk_ms=60000)
    assert call.succeeded, call.stderr
    row = controller.finished_calls(before + 1, timeout=30)[-1]
    # On the controller's clock, as its own moves are (the lab's starts at OFFICE_HOURS).
    book = TicketBook(controller.calllog, clock=lambda: to_epoch(dt.datetime.fromisoformat(OFFICE_HOURS)))
    book.act(row["ticket_id"], "reply", actor="unit:市公安局", text="已处理")
    book.act(row["ticket_id"], "close", actor="cli:test")
    return str(row["ticket_id"])


def followed_up(controller: Controller, ticket_id: str) -> dict[str, object]:
    def done() -> dict[str, object] | None:
        rows = [f for f in store.followups(controller.calllog) if f["ticket_id"] == ticket_id]
        return rows[0] if rows and rows[0]["state"] != "pending" else None

    return dict(until(done, timeout=90, what=f"the 回访 of {ticket_id}"))


def test_a_closed_ticket_gets_a_followup_call_whose_rating_is_stored_and_a_3_reopens_it(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller(quick_routes(tmp_path))

    # Satisfied: the rating is stored on the follow-up, the ticket stays closed.
    citizen = phones(CITIZEN_PORT, keys_phone("1", tmp_path / "press-1"), talk_ms=30000)
    satisfied = closed_ticket(controller, CITIZEN)
    row = followed_up(controller, satisfied)
    assert (row["state"], row["satisfaction"], row["attempts"]) == ("answered", 1, 1)
    (attempt,) = store.followup_attempts(controller.calllog, satisfied)
    assert (attempt["citizen_status"], attempt["key_pressed"], attempt["outcome"]) == ("ANSWER", "1", "rated")
    assert [u.split("@")[0] for u in citizen.invites()] == [f"sip:{CITIZEN}"]
    assert TicketBook(controller.calllog).get(satisfied)["state"] == "closed"
    citizen.stop(timeout=5)

    # Dissatisfied: stored, and the ticket is reopened for review (dispatched to its unit again).
    phones(CITIZEN_PORT, keys_phone("3", tmp_path / "press-3"), talk_ms=30000)
    dissatisfied = closed_ticket(controller, "13900000003")
    row = followed_up(controller, dissatisfied)
    assert (row["state"], row["satisfaction"]) == ("answered", 3)
    book = TicketBook(controller.calllog)
    until(lambda: book.get(dissatisfied)["state"] != "closed", timeout=10, what="the reopening")
    assert (book.get(dissatisfied)["state"], book.get(dissatisfied)["status"]) == ("dispatched", "open")
    assert [(e["action"], e["actor"]) for e in book.events(dissatisfied)][-1] == ("reopen", "followup")
    # Each ticket was asked about once; the numbers are gone with the follow-ups.
    assert len(store.followups(controller.calllog)) == 2
    assert controller.calllog.tickets("ticket_id IN (SELECT ticket_id FROM ticket_contacts)") == []
    assert CITIZEN not in controller.log()


def test_an_automatic_callback_rings_a_ready_seat_then_the_citizen_and_bridges_them(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    seats = [phones(port, talk_ms=60000) for port in SEAT_PORTS]
    citizen = phones(CITIZEN_PORT, talk_ms=3000)  # the citizen talks 3 s, then hangs up
    controller = start_controller(quick_routes(tmp_path))

    missed = place_call("12345", "", caller=CITIZEN, talk_ms=1500)  # hangs up during the greeting
    assert missed.succeeded, missed.stderr
    (row,) = controller.finished_calls()
    assert row["outcome"] == "abandoned"

    def worked() -> list[dict[str, object]]:
        return [e for e in controller.calllog.callbacks(None) if e["status"] == "done"]

    (entry,) = until(worked, timeout=60, what="the callback to be made")
    (attempt,) = store.callback_attempts(controller.calllog, int(str(entry["id"])))
    assert (attempt["seat"], attempt["seat_status"], attempt["citizen_status"], attempt["outcome"]) == (
        "seat-1",
        "ANSWER",
        "ANSWER",
        "reached",
    )
    assert 2.0 <= attempt["talk_seconds"] <= 10.0  # bridged until the citizen hung up after 3 s
    assert (entry["attempts"], entry["outcome"]) == (1, "reached")
    # The seat was rung first (and only it), then the citizen over the carrier trunk.
    assert len(seats[0].invites()) == 1 and seats[1].invites() == []
    assert [u.split("@")[0] for u in citizen.invites()] == [f"sip:{CITIZEN}"]
    (rang,) = controller.events("callback_seat_rang")
    (dialled,) = controller.events("callback_dialled")
    assert rang["status"] == "ANSWER" and dialled["outcome"] == "reached" and dialled["caller"] == "139****5678"
    assert CITIZEN not in controller.log()

    # The report's callback figures, by hand: one entry, its first attempt within 30 minutes of the miss.
    assert attempt["at"] - entry["last_missed_at"] < 30 * 60
    day = from_epoch(float(str(entry["last_missed_at"]))).date()
    table = routes.load(REPO / "routes.yaml")
    centre = report.build(report.load(controller.calllog, day, day), day, day, as_of=time.time(), table=table).centre
    assert (centre.callbacks_due, centre.callbacks_within, centre.callback_pct) == (1, 1, 100.0)
