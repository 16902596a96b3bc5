"""The report's within-deadline rate (按时办结率) comes from the lifecycle's real closes, extensions and pauses.

Six tickets of 市水务局, each opened Mon 2026-11-02 10:00 with 3 workdays (due Thu Nov 5 10:00), moved
through the lifecycle; the November report judged on Dec 1. By hand:

    A  replied and closed Wed Nov 4                                   within
    B  replied and closed Fri Nov 6, a day late                       late
    C  extended 2 workdays (due Mon Nov 9), closed Fri Nov 6          within
    D  returned Tue, dispatched again Thu 09:00 (clock stopped for
       Wed and Thu: due Mon Nov 9 10:00), closed Mon Nov 9 09:00      within
    E  never touched: open past its deadline                          late
    F  closed Wed, reopened Fri 15:00 (due Wed Nov 11 15:00), open    late
    G  returned Tue, still at 12345: its clock stands still           not judged (nor overdue)

    due 6, within 3: 50.0 %
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ivr.calllog import open_calllog
from ivr.report import figures as report
from ivr.ticketing.store import TicketBook
from ivr.tickets import DeadlinePolicy, new_ticket, to_epoch

UNIT = "市水务局"


def at(text: str) -> float:
    return to_epoch(dt.datetime.fromisoformat(text))


def test_within_deadline_rate_from_the_lifecycles_events_equals_the_hand_computed_one(
    target: str, tmp_path: Path
) -> None:
    log = open_calllog(target, tmp_path / "journal")
    log.start()
    ids = {}
    for name in "ABCDEFG":
        t = new_ticket(
            f"call-{name}", "transfer", UNIT, "transfer", "r", dt.datetime(2026, 11, 2, 10), DeadlinePolicy(3)
        )
        log.ticket_opened(t)
        ids[name] = t.ticket_id
    log.close()
    book = TicketBook(log)

    def act(name: str, action: str, when: str, **kw: object) -> None:
        book.act(ids[name], action, actor="unit:shuiwu", at=at(when), **kw)  # type: ignore[arg-type]

    act("A", "reply", "2026-11-04 09:00", text="已处理")
    act("A", "close", "2026-11-04 10:00")
    act("B", "reply", "2026-11-06 09:00", text="已处理")
    act("B", "close", "2026-11-06 10:00")
    act("C", "extend", "2026-11-04 10:00", workdays=2, reason="需现场勘查")
    act("C", "reply", "2026-11-06 09:00", text="已处理")
    act("C", "close", "2026-11-06 10:00")
    act("D", "return", "2026-11-03 10:00", reason="非本单位职责")
    act("D", "dispatch", "2026-11-05 09:00")
    act("D", "reply", "2026-11-09 08:00", text="已处理")
    act("D", "close", "2026-11-09 09:00")
    act("F", "reply", "2026-11-04 09:00", text="已处理")
    act("F", "close", "2026-11-04 10:00")
    act("F", "reopen", "2026-11-06 15:00", reason="回访不满意")
    act("G", "return", "2026-11-03 10:00", reason="非本单位职责")

    start, end = dt.date(2026, 11, 1), dt.date(2026, 11, 30)
    built = report.build(report.load(log, start, end), start, end, as_of=at("2026-12-01 00:00"))

    assert (built.centre.tickets_due, built.centre.tickets_within, built.centre.within_deadline_pct) == (6, 3, 50.0)
    assert (built.unit(UNIT, "transfer").total.tickets_due, built.unit(UNIT, "transfer").total.tickets_within) == (6, 3)
    assert sorted(t["ticket_id"] for t in log.overdue(at("2026-12-01 00:00"))) == sorted(ids[n] for n in "EF")
