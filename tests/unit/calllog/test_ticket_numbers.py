"""A restarted controller continues the day's ticket numbers after the last one in the call log.

Ticket numbers follow the clock; a clock that goes back (an NTP step, a drill's simulated clock
starting again) must not make a restarted controller hand out numbers already given — the call
log would refuse those tickets and they would be lost. Over both backends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr import tickets
from ivr.calllog import CallLog, is_url, open_calllog
from ivr.tickets import DeadlinePolicy, new_ticket, resume_numbering, ticket_prefix

MORNING = dt.datetime(2026, 11, 24, 9, 0, 0)


@pytest.fixture
def log(target: str, tmp_path: Path) -> Iterator[CallLog]:
    calllog = open_calllog(target, tmp_path / "calllog.journal" if is_url(target) else None)
    calllog.start()
    yield calllog
    calllog.close()


def restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new controller process: it remembers no number it gave."""
    monkeypatch.setattr(tickets, "_slots", tickets._Slots())


def open_tickets(log: CallLog, n: int, node: str = "") -> list[str]:
    opened = [
        new_ticket(f"c{node}{i}", "merge", "u", "merge", "r", MORNING, DeadlinePolicy(), node=node) for i in range(n)
    ]
    for t in opened:
        log.ticket_opened(t)
    return [t.ticket_id for t in opened]


def test_after_a_restart_with_the_clock_set_back_no_number_is_given_twice(
    log: CallLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    restart(monkeypatch)
    before = open_tickets(log, 300)  # a burst: numbers run ahead of the clock
    log.close()  # flushed
    log.start()

    restart(monkeypatch)
    resume_numbering(MORNING.date(), log.last_ticket_id(ticket_prefix(MORNING.date())))
    after = open_tickets(log, 5)  # the clock starts again at the same second

    assert min(after) > max(before)
    log.close()
    log.start()
    assert len(log.tickets()) == 305  # none refused as a duplicate


def test_each_issuer_resumes_after_its_own_last_number_not_another_nodes(
    log: CallLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    restart(monkeypatch)
    node1 = open_tickets(log, 3, node="node1")
    node2 = open_tickets(log, 200, node="node2")
    mine = open_tickets(log, 2)  # the single-controller numbering (no node id)
    log.close()
    log.start()

    day = MORNING.date()
    assert log.last_ticket_id(ticket_prefix(day, "node1")) == max(node1)
    assert log.last_ticket_id(ticket_prefix(day, "node2")) == max(node2)
    assert log.last_ticket_id(ticket_prefix(day)) == max(mine)
    assert log.last_ticket_id(ticket_prefix(day + dt.timedelta(days=1))) is None


def test_a_day_without_tickets_or_a_foreign_id_leaves_numbering_to_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    restart(monkeypatch)
    resume_numbering(MORNING.date(), None)
    resume_numbering(MORNING.date(), "12345-20261124-zzzzzz")
    first = new_ticket("c", "merge", "u", "merge", "r", MORNING, DeadlinePolicy()).ticket_id
    assert first == f"12345-20261124-{9 * 3600 * 128:06x}"
