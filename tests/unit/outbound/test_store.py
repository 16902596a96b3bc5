"""What calls placed by the hotline keep: every callback attempt, the follow-ups and their numbers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.calllog import CallLog, open_calllog
from ivr.outbound import store
from ivr.tickets import DeadlinePolicy, new_ticket

NUMBER = "13812345678"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[CallLog]:
    calllog = open_calllog(tmp_path / "calllog.sqlite3")
    calllog.start()
    yield calllog
    calllog.close()


def flush(log: CallLog) -> None:
    log.close()
    log.start()


def test_every_callback_attempt_is_kept_and_only_calls_to_the_citizen_count_on_the_entry(log: CallLog) -> None:
    log.missed_call("c1", NUMBER, "hash-a", "138****5678", reason="in_menu", at=1000.0)
    flush(log)
    (entry,) = store.open_callbacks(log)
    cid = int(entry["id"])
    store.record_callback_attempt(log, store.CallbackAttempt(cid, 1100.0, "seat_no_answer", "seat-1", "NOANSWER"))
    store.record_callback_attempt(log, store.CallbackAttempt(cid, 1200.0, "no_answer", "seat-2", "ANSWER", "NOANSWER"))
    (entry,) = store.open_callbacks(log)
    assert (entry["attempts"], entry["last_attempt_at"], entry["outcome"]) == (1, 1200.0, "no_answer")
    store.record_callback_attempt(
        log, store.CallbackAttempt(cid, 1300.0, "reached", "seat-1", "ANSWER", "ANSWER", 42.0)
    )
    assert store.open_callbacks(log) == []
    (done,) = log.callbacks("done")
    assert (done["attempts"], done["done_at"], done["outcome"]) == (2, 1300.0, "reached")
    kept = [
        (a["seq"], a["at"], a["seat"], a["citizen_status"], a["outcome"]) for a in store.callback_attempts(log, cid)
    ]
    assert kept == [
        (1, 1100.0, "seat-1", "", "seat_no_answer"),
        (2, 1200.0, "seat-2", "NOANSWER", "no_answer"),
        (3, 1300.0, "seat-1", "ANSWER", "reached"),
    ]


def test_an_operators_manual_attempt_is_kept_as_well(log: CallLog) -> None:
    log.missed_call("c1", NUMBER, "hash-a", "138****5678", reason="in_menu", at=1000.0)
    flush(log)
    (entry,) = log.callbacks()
    assert log.callback_attempt(int(entry["id"]), "no_answer", 1500.0, done=False)
    (attempt,) = store.callback_attempts(log)
    assert (attempt["by_whom"], attempt["citizen_status"], attempt["outcome"]) == ("operator", "no_answer", "no_answer")


def closed(log: CallLog, call_id: str, at: float, number: str = NUMBER) -> str:
    ticket = new_ticket(call_id, "operator", "", "", "", dt.datetime(2026, 11, 24, 10), DeadlinePolicy())
    log.ticket_opened(ticket)
    if number:
        log.record(store.ContactKept(ticket.ticket_id, number, ticket.created_at))
    log.ticket_closed(ticket.ticket_id, at)
    flush(log)
    return ticket.ticket_id


def test_a_closed_ticket_gets_one_followup_with_the_number_kept_at_opening(log: CallLog) -> None:
    ticket_id = closed(log, "c1", at=5000.0)
    store.closed_without_followup(log, since=4000.0)
    store.closed_without_followup(log, since=4000.0)  # once per ticket
    (row,) = store.pending_followups(log)
    assert (row["ticket_id"], row["caller_number"], row["attempts"]) == (ticket_id, NUMBER, 0)

    store.record_followup_attempt(log, ticket_id, 5100.0, "NOANSWER", "", "no_answer", "pending")
    store.record_followup_attempt(log, ticket_id, 6000.0, "ANSWER", "2", "rated", "answered")
    assert store.pending_followups(log) == []
    (row,) = store.followups(log)
    assert (row["state"], row["attempts"], row["satisfaction"], row["answered_at"]) == ("answered", 2, 2, 6000.0)
    outcomes = [(a["seq"], a["citizen_status"], a["key_pressed"]) for a in store.followup_attempts(log, ticket_id)]
    assert outcomes == [(1, "NOANSWER", ""), (2, "ANSWER", "2")]
    assert log.tickets("ticket_id IN (SELECT ticket_id FROM ticket_contacts)") == []  # the number is erased


def test_tickets_closed_before_the_window_are_not_called_about(log: CallLog) -> None:
    closed(log, "c1", at=1000.0)
    store.closed_without_followup(log, since=4000.0)
    assert store.followups(log) == []


def test_a_followup_state_outside_the_list_is_refused(log: CallLog) -> None:
    ticket_id = closed(log, "c1", at=5000.0)
    with pytest.raises(ValueError, match="follow-up state must be one of"):
        store.record_followup_attempt(log, ticket_id, 5100.0, "ANSWER", "1", "rated", "happy")
