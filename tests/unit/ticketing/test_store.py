"""Tickets moved in the call log (TicketBook), on SQLite and PostgreSQL alike: one transaction per action,
an event for every move, a refusal that changes nothing."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from ivr.calllog import CallLog, open_calllog
from ivr.ticketing.lifecycle import State, TicketError, TransitionRefused, UnknownTicket, WrongUnit
from ivr.ticketing.store import SQLITE_V4_COLUMNS, TicketBook
from ivr.tickets import DeadlinePolicy, new_ticket, to_epoch


def at(text: str) -> float:
    return to_epoch(dt.datetime.fromisoformat(text))


@pytest.fixture
def calllog(target: str, tmp_path: Path) -> CallLog:
    log = open_calllog(target, tmp_path / "journal")
    log.start()
    return log


def open_ticket(log: CallLog, kind: str = "transfer", unit: str = "water", node: str = "") -> str:
    t = new_ticket("call-1", kind, unit, kind, "r1", dt.datetime(2026, 11, 2, 10, 0), DeadlinePolicy(3), node=node)
    log.ticket_opened(t)
    return t.ticket_id


def written(log: CallLog) -> None:
    log.close()  # the writer's queue is applied before reads


def test_a_routed_call_opens_its_ticket_dispatched_with_an_opening_event(calllog: CallLog) -> None:
    tid = open_ticket(calllog)
    written(calllog)
    book = TicketBook(calllog)
    row = book.get(tid)
    assert (row["state"], row["status"], row["workdays"], row["version"]) == ("dispatched", "open", 3, 0)
    [ev] = book.events(tid)
    assert (ev["seq"], ev["action"], ev["actor"], ev["to_state"], ev["detail"]) == (
        0,
        "open",
        "hotline",
        "dispatched",
        {"kind": "transfer", "unit": "water"},
    )


def test_each_action_updates_the_ticket_and_adds_its_event(calllog: CallLog) -> None:
    tid = open_ticket(calllog, kind="operator", unit="")
    written(calllog)
    book = TicketBook(calllog)
    book.act(tid, "dispatch", actor="cli:li", at=at("2026-11-02 11:00"), unit="water", summary="停水", urgency="urgent")
    book.act(tid, "accept", actor="unit:water", at=at("2026-11-02 12:00"), only_unit="water")
    book.act(tid, "reply", actor="unit:water", at=at("2026-11-03 09:00"), text="已恢复供水")
    change = book.act(tid, "close", actor="unit:water", at=at("2026-11-03 10:00"))
    row = change.ticket
    closed = ("closed", "closed", at("2026-11-03 10:00"), "water")
    assert (row["state"], row["status"], row["closed_at"], row["unit"]) == closed
    assert (row["summary"], row["urgency"], row["reply"]) == ("停水", "urgent", "已恢复供水")
    events = book.events(tid)
    assert [(e["seq"], e["action"], e["from_state"], e["to_state"]) for e in events] == [
        (0, "open", "", "opened"),
        (1, "dispatch", "opened", "dispatched"),
        (2, "accept", "dispatched", "accepted"),
        (3, "reply", "accepted", "replied"),
        (4, "close", "replied", "closed"),
    ]
    assert events[1]["detail"] == {"unit": "water", "summary": "停水", "urgency": "urgent"}
    assert [t["ticket_id"] for t in book.find(unit="water", states=[State.CLOSED])] == [tid]
    assert book.find(unit="water", states=[State.ACCEPTED]) == []
    assert [t["ticket_id"] for t in calllog.tickets("status = 'closed'")] == [tid]


def test_a_refused_action_changes_nothing(calllog: CallLog) -> None:
    tid = open_ticket(calllog)
    written(calllog)
    book = TicketBook(calllog)
    before = book.get(tid)
    with pytest.raises(TransitionRefused, match=f"ticket {tid} is dispatched: close needs it opened or replied"):
        book.act(tid, "close", actor="unit:water")
    with pytest.raises(WrongUnit, match=f"ticket {tid} is not gas's"):
        book.act(tid, "accept", actor="unit:gas", only_unit="gas")
    with pytest.raises(UnknownTicket, match="no ticket 12345-20991231-000000"):
        book.act("12345-20991231-000000", "accept", actor="unit:water")
    with pytest.raises(TicketError, match="urgency must be one of: normal, urgent, critical"):
        book.act(tid, "dispatch", actor="cli:li", urgency="asap")
    with pytest.raises(TicketError, match="set with a dispatch"):
        book.act(tid, "accept", actor="unit:water", summary="x")
    assert book.get(tid) == before and len(book.events(tid)) == 1


def test_two_actions_racing_on_one_ticket_cannot_both_apply(calllog: CallLog, monkeypatch: pytest.MonkeyPatch) -> None:
    tid = open_ticket(calllog)
    written(calllog)
    book = TicketBook(calllog)
    stale = book.get(tid)
    book.act(tid, "accept", actor="unit:water")
    # The second writer read the ticket before the first committed: its update finds another version.
    monkeypatch.setattr(TicketBook, "_row", staticmethod(lambda db, ticket_id: stale))
    with pytest.raises(TransitionRefused, match="changed meanwhile"):
        book.act(tid, "return", actor="unit:water", reason="非本单位")
    monkeypatch.undo()
    assert book.get(tid)["state"] == "accepted" and len(book.events(tid)) == 2


def test_the_hotlines_own_close_is_an_event_too(calllog: CallLog) -> None:
    tid = open_ticket(calllog, kind="operator", unit="")
    calllog.ticket_closed(tid, at("2026-11-02 10:05"), "当场解答")
    calllog.ticket_closed(tid, at("2026-11-02 10:05"), "当场解答")  # replayed from the journal: one close
    written(calllog)
    book = TicketBook(calllog)
    assert book.get(tid)["state"] == "closed"
    assert [(e["action"], e["from_state"], e["detail"]) for e in book.events(tid)] == [
        ("open", "", {"kind": "operator"}),
        ("close", "opened", {"text": "当场解答"}),
    ]


def test_a_version_3_file_is_upgraded_and_its_closed_tickets_are_closed_in_the_lifecycle(tmp_path: Path) -> None:
    path = tmp_path / "calllog.sqlite3"
    old = open_calllog(path)
    old.start()
    tid = open_ticket(old, kind="operator", unit="")
    old.ticket_closed(tid, at("2026-11-02 11:00"), "")
    old.close()
    db = sqlite3.connect(path)  # what the version 3 code had: no lifecycle columns, no events
    db.execute("DROP INDEX tickets_unit_state")
    for column in SQLITE_V4_COLUMNS:
        db.execute(f"ALTER TABLE tickets DROP COLUMN {column}")
    db.execute("DROP TABLE ticket_events")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    log = open_calllog(path)
    log.migrate()
    row = TicketBook(log).get(tid)
    assert (row["state"], row["workdays"]) == ("closed", 0)
    # A budget not stored is the one its deadline was given: reopening gives those 3 workdays again.
    change = TicketBook(log).act(tid, "reopen", actor="cli:li", at=at("2026-11-06 15:00"), reason="复核")
    assert (change.ticket["state"], change.ticket["deadline_at"]) == ("opened", at("2026-11-11 15:00"))


def test_purge_takes_closed_tickets_with_their_events_and_the_apis_old_answers(calllog: CallLog) -> None:
    closed, still_open = open_ticket(calllog), open_ticket(calllog)
    written(calllog)
    book = TicketBook(calllog)
    book.act(closed, "reply", actor="unit:water", at=at("2026-11-03 10:00"), text="已处理")
    book.act(closed, "close", actor="unit:water", at=at("2026-11-03 11:00"))
    book.act(still_open, "accept", actor="unit:water", at=at("2026-11-03 10:00"))
    with calllog.transaction() as db:
        db.execute(
            "INSERT INTO api_idempotency (key_id, idempotency_key, request, status, response, at)"
            " VALUES ('shuiwu', 'k1', 'd', 200, '{}', ?)",
            (at("2026-11-03 10:00"),),
        )
    three_years_on = at("2029-12-01 00:00")
    counts = calllog.purge(three_years_on)
    assert (counts["tickets_deleted"], counts["ticket_events_deleted"], counts["api_requests_deleted"]) == (1, 3, 1)
    assert [t["ticket_id"] for t in calllog.tickets()] == [still_open]
    assert len(book.events(still_open)) == 2
    with calllog.transaction() as db:
        assert db.rows("SELECT * FROM ticket_events WHERE ticket_id = ?", (closed,)) == []


def test_on_change_hears_each_committed_action_and_no_refusal(calllog: CallLog) -> None:
    tid = open_ticket(calllog)
    written(calllog)
    heard: list[tuple[str, str]] = []
    book = TicketBook(calllog, on_change=lambda c: heard.append((c.event.action.value, c.ticket["state"])))
    book.act(tid, "accept", actor="unit:water")
    with pytest.raises(TransitionRefused):
        book.act(tid, "accept", actor="unit:water")
    assert heard == [("accept", "accepted")]
