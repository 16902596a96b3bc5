"""The ticket lifecycle as a specification: which actions each state allows, and how each moves the deadline.

Dates are November 2026 (no holidays: Mon 2 .. Fri 6, Mon 9 ..), plus the National Day week of 2026 where
the calendar matters (Oct 1-7 off, Sat Oct 10 a make-up workday).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from ivr.routing.calendar import PACKAGE_ONLY
from ivr.ticketing.lifecycle import (
    MAX_EXTEND_WORKDAYS,
    MAX_EXTENDED_WORKDAYS,
    Action,
    Snapshot,
    State,
    TicketError,
    TransitionRefused,
    add_workdays,
    opened_state,
    step,
    workdays_between,
)
from ivr.tickets import to_epoch


def at(text: str) -> float:
    return to_epoch(dt.datetime.fromisoformat(text))


def ticket(state: State = State.DISPATCHED, kind: str = "transfer", unit: str = "water") -> Snapshot:
    # Opened Mon Nov 2 10:00 with 3 workdays: due Thu Nov 5 10:00.
    return Snapshot("12345-20261102-000001", kind, unit, state, at("2026-11-02 10:00"), at("2026-11-05 10:00"), 3)


def act(t: Snapshot, action: str, when: str, **kw: object) -> Snapshot:
    return step(t, action, actor="unit:water", at=at(when), calendar=PACKAGE_ONLY, **kw)[0]  # type: ignore[arg-type]


def test_the_happy_path_dispatch_accept_reply_close_records_each_move() -> None:
    t = ticket(State.OPENED, kind="operator", unit="")
    t, ev = step(t, "dispatch", actor="cli:li", at=at("2026-11-02 11:00"), calendar=PACKAGE_ONLY, unit="water")
    assert (t.state, t.unit, ev.from_state, ev.to_state, ev.actor) == (
        State.DISPATCHED,
        "water",
        State.OPENED,
        State.DISPATCHED,
        "cli:li",
    )
    t = act(t, "accept", "2026-11-02 12:00")
    t = act(t, "reply", "2026-11-03 09:00", text="已修复水管")
    t, ev = step(t, Action.CLOSE, actor="unit:water", at=at("2026-11-03 10:00"), calendar=PACKAGE_ONLY)
    assert (t.state, t.closed_at, t.version) == (State.CLOSED, at("2026-11-03 10:00"), 4)
    assert ev.action is Action.CLOSE and ev.from_state is State.REPLIED


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (State.OPENED, "accept"),
        (State.DISPATCHED, "close"),  # a unit must reply before closing
        (State.ACCEPTED, "dispatch"),
        (State.CLOSED, "accept"),
        (State.CLOSED, "close"),
        (State.RETURNED, "reply"),
        (State.REPLIED, "extend"),
        (State.OPENED, "reopen"),
    ],
)
def test_an_action_the_state_does_not_allow_is_refused_naming_state_and_need(state: State, action: str) -> None:
    with pytest.raises(TransitionRefused, match=rf"ticket 12345-20261102-000001 is {state.value}: {action} needs"):
        step(ticket(state), action, actor="x", at=at("2026-11-03 10:00"), calendar=PACKAGE_ONLY, reason="r", workdays=1)


def test_bad_input_is_refused_before_anything_changes() -> None:
    t = ticket()
    with pytest.raises(TicketError, match="unknown action 'finish'"):
        step(t, "finish", actor="x", at=0.0, calendar=PACKAGE_ONLY)
    with pytest.raises(TicketError, match="reason is required"):
        act(t, "return", "2026-11-03 10:00")
    with pytest.raises(TicketError, match="reply text is required"):
        act(t, "reply", "2026-11-03 10:00", text="  ")
    with pytest.raises(TicketError, match="needs who did it"):
        step(t, "accept", actor="", at=0.0, calendar=PACKAGE_ONLY)
    with pytest.raises(TicketError, match="opened by the controller"):
        step(t, "open", actor="x", at=0.0, calendar=PACKAGE_ONLY)


def test_a_partners_reply_to_a_hand_off_closes_it() -> None:
    t = act(ticket(kind="interconnect", unit="12315"), "reply", "2026-11-03 10:00", text="已办结")
    assert (t.state, t.closed_at) == (State.CLOSED, at("2026-11-03 10:00"))


def test_extension_adds_workdays_and_is_bounded_per_time_and_in_all() -> None:
    t = act(ticket(), "extend", "2026-11-04 10:00", workdays=2, reason="需现场勘查")
    assert (t.deadline_at, t.extended_workdays, t.state) == (at("2026-11-09 10:00"), 2, State.DISPATCHED)
    with pytest.raises(TicketError, match=rf"workdays must be a whole number 1..{MAX_EXTEND_WORKDAYS}, not 11"):
        act(t, "extend", "2026-11-04 10:00", workdays=11, reason="r")
    with pytest.raises(TicketError, match="not 0"):
        act(t, "extend", "2026-11-04 10:00", workdays=0, reason="r")
    t = act(t, "extend", "2026-11-04 10:00", workdays=10, reason="r")
    limit = f"already extended by 12 workdays: 4 more would pass the limit of {MAX_EXTENDED_WORKDAYS}"
    with pytest.raises(TransitionRefused, match=limit):
        act(t, "extend", "2026-11-04 10:00", workdays=4, reason="r")


def test_the_clock_stops_while_returned_in_whole_workdays() -> None:
    t = act(ticket(), "return", "2026-11-03 10:00", reason="非我单位职责")
    assert (t.state, t.paused_at) == (State.RETURNED, at("2026-11-03 10:00"))
    # Back at 12345 Tue 10:00; dispatched again Thu 09:00: Wed and Thu began meanwhile -> due 2 workdays later.
    again, ev = step(t, "dispatch", actor="cli:li", at=at("2026-11-05 09:00"), calendar=PACKAGE_ONLY, unit="gas")
    assert (again.unit, again.deadline_at, again.paused_at) == ("gas", at("2026-11-09 10:00"), None)
    assert ev.detail["paused_workdays"] == 2
    # Returned and dispatched again the same day: no day lost, none given.
    same = act(t, "dispatch", "2026-11-03 16:00")
    assert same.deadline_at == t.deadline_at


def test_reopening_gives_the_original_budget_again_from_the_reopening() -> None:
    t = act(act(ticket(), "reply", "2026-11-03 10:00", text="已处理"), "close", "2026-11-03 11:00")
    t = act(t, "reopen", "2026-11-06 15:00", reason="回访不满意")
    assert (t.state, t.closed_at, t.deadline_at) == (State.DISPATCHED, None, at("2026-11-11 15:00"))
    unassigned = act(dataclasses.replace(ticket(State.CLOSED), unit=""), "reopen", "2026-11-06 15:00", reason="r")
    assert unassigned.state is State.OPENED


def test_workdays_follow_the_official_calendar() -> None:
    # Wed Sep 30 10:00 + 3 workdays: Oct 8 (Thu), Oct 9 (Fri), Oct 10 (the make-up Saturday).
    assert add_workdays(at("2026-09-30 10:00"), 3, PACKAGE_ONLY) == at("2026-10-10 10:00")
    assert workdays_between(at("2026-09-30 10:00"), at("2026-10-10 08:00"), PACKAGE_ONLY) == 3
    assert workdays_between(at("2026-11-03 10:00"), at("2026-11-03 18:00"), PACKAGE_ONLY) == 0


def test_a_department_call_or_hand_off_opens_dispatched_an_operator_call_or_message_opened() -> None:
    assert opened_state("transfer", "water") is State.DISPATCHED
    assert opened_state("interconnect", "12315") is State.DISPATCHED
    assert opened_state("operator", "") is State.OPENED
    assert opened_state("message", "water") is State.OPENED
