"""A small day of hotline traffic for the call log, and the check that all of it arrived.

Each call writes what a live call writes, in the same order: the call on arrival, its ticket,
the call complete with its steps, the survey, for some the close of the ticket, for some a
missed call (two callers, so the callback list has to merge repeat calls). The expected
database is derived from what was written, so a check proves every record is there exactly
once and in its order: on SQLite by rowid (insertion order); on PostgreSQL, which has none, by
the times the traffic gives its records (each later than the one before).

`target` is what `open_calllog` takes: an SQLite path or a PostgreSQL URL.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import psycopg
from psycopg.rows import dict_row

from ivr.calllog import CallLog, is_url
from ivr.calllog.commands import to_pyformat
from ivr.calllog.records import CallRecord, Step
from ivr.privacy import caller_hash, mask
from ivr.tickets import Ticket

KEY = b"test-key"
CALLERS = ("13812345678", "13987654321")


@dataclass
class Written:
    """What the traffic wrote, in order."""

    calls: list[str] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)
    surveys: dict[str, int] = field(default_factory=dict)
    closed: dict[str, float] = field(default_factory=dict)
    missed: dict[str, list[str]] = field(default_factory=dict)  # caller -> call ids, in order
    unfinished: list[str] = field(default_factory=list)  # arrival written, the end never

    def __iadd__(self, other: Written) -> Self:
        self.calls += other.calls
        self.tickets += other.tickets
        self.surveys.update(other.surveys)
        self.closed.update(other.closed)
        for caller, ids in other.missed.items():
            self.missed.setdefault(caller, []).extend(ids)
        self.unfinished += other.unfinished
        return self

    @property
    def writes(self) -> int:
        calls = len(self.calls) * 2 - len(self.unfinished)
        return (
            calls
            + len(self.tickets)
            + len(self.surveys)
            + len(self.closed)
            + sum(len(ids) for ids in self.missed.values())
        )


def traffic(log: CallLog, prefix: str, n: int, start: float = 1_790_000_000.0) -> Written:
    """Write `n` calls' records, as the sessions would."""
    out = Written()
    for i in range(n):
        call_id = f"{prefix}-{i:04d}"
        at = start + i
        rec = CallRecord(
            call_id=call_id,
            channel_id=f"1.{i}",
            entry="12345",
            caller_masked=mask(CALLERS[i % 2]),
            caller_hash=caller_hash(CALLERS[i % 2], KEY),
            routes_version="v1",
            started_at=at,
        )
        log.call_started(rec)
        ticket_id = f"12345-{prefix}-{i:04d}"
        log.ticket_opened(Ticket(ticket_id, call_id, "merge", "市公安局", "merge", "gaj", at + 1, at + 86400 * 3))
        rec.answered_at, rec.keys, rec.menu_path, rec.unit, rec.mode = at + 0.5, "1", "main", "市公安局", "merge"
        rec.steps.append(Step(at + 0.5, "answered", {}))
        rec.steps.append(Step(at + 2, "dial", {"target": "3372000", "status": "ANSWER", "note": '接通\n"ok"'}))
        rec.dial_status, rec.outcome, rec.hangup_by, rec.talk_seconds = "ANSWER", "connected", "callee", 2.5 + i
        rec.ticket_id, rec.ended_at = ticket_id, at + 30.125
        log.call_finished(rec)
        score = 1 + i % 3
        log.ticket_survey(ticket_id, score)
        out.calls.append(call_id)
        out.tickets.append(ticket_id)
        out.surveys[ticket_id] = score
        if i % 2:
            log.ticket_closed(ticket_id, at + 60, note="已办结")
            out.closed[ticket_id] = at + 60
        if i % 3 == 0:
            number = CALLERS[i % 2]
            log.missed_call(call_id, number, caller_hash(number, KEY), mask(number), reason="in_menu", at=at + 31)
            out.missed.setdefault(number, []).append(call_id)
    return out


def unfinished_call(log: CallLog, call_id: str, at: float = 1_790_100_000.0) -> Written:
    """A call that arrived and never ended (its controller died)."""
    log.call_started(
        CallRecord(
            call_id=call_id,
            channel_id="9.9",
            entry="12345",
            caller_masked="138****5678",
            caller_hash="h",
            routes_version="v1",
            started_at=at,
        )
    )
    return Written(calls=[call_id], unfinished=[call_id])


def query(target: str | Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of `sql` (with `?` placeholders) read straight from the database, not through the log."""
    if is_url(target):
        with psycopg.connect(str(target), row_factory=dict_row) as pg:
            return pg.execute(to_pyformat(sql), params).fetchall()
    db = sqlite3.connect(target)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, params)]
    finally:
        db.close()


def written_order(target: str | Path) -> dict[str, str]:
    """The ORDER BY that gives each table's rows in the order they were first written."""
    if is_url(target):
        return {"calls": "started_at", "tickets": "created_at", "callback_calls": "at"}
    return {"calls": "rowid", "tickets": "rowid", "callback_calls": "rowid"}


def assert_all_in(target: str | Path, written: Written) -> None:
    """Every record written is in the database exactly once, complete, in the order written."""
    order = written_order(target)
    calls = query(target, f"SELECT * FROM calls ORDER BY {order['calls']}")
    assert [r["call_id"] for r in calls] == written.calls
    for r in calls:
        if r["call_id"] in written.unfinished:
            assert r["outcome"] == "interrupted" and r["ended_at"] is not None, r
            continue
        assert (r["outcome"], r["unit"], r["dial_status"], r["hangup_by"]) == (
            "connected",
            "市公安局",
            "ANSWER",
            "callee",
        ), r
        assert r["ended_at"] == r["started_at"] + 30.125 and r["ticket_id"].endswith(r["call_id"][-4:])
        steps = query(
            target, "SELECT seq, name, detail FROM call_steps WHERE call_id = ? ORDER BY seq", (r["call_id"],)
        )
        assert [(s["seq"], s["name"]) for s in steps] == [(0, "answered"), (1, "dial")]
        assert '接通\\n\\"ok\\"' in steps[1]["detail"]
    assert rows(target, "call_steps") == 2 * (len(written.calls) - len(written.unfinished))
    tickets = query(target, f"SELECT * FROM tickets ORDER BY {order['tickets']}")
    assert [t["ticket_id"] for t in tickets] == written.tickets
    for t in tickets:
        assert t["satisfaction"] == written.surveys[t["ticket_id"]]
        if t["ticket_id"] in written.closed:
            assert (t["status"], t["closed_at"], t["note"]) == ("closed", written.closed[t["ticket_id"]], "已办结")
        else:
            assert (t["status"], t["closed_at"]) == ("open", None)
    entries = query(target, "SELECT * FROM callbacks ORDER BY id")
    assert sorted(e["caller_number"] for e in entries) == sorted(written.missed)
    for e in entries:
        ids = written.missed[e["caller_number"]]
        linked = [
            c["call_id"]
            for c in query(
                target,
                f"SELECT call_id FROM callback_calls WHERE callback_id = ? ORDER BY {order['callback_calls']}",
                (e["id"],),
            )
        ]
        assert linked == ids and e["missed_count"] == len(ids), (e, linked)
    assert rows(target, "callback_calls") == sum(len(ids) for ids in written.missed.values())


def rows(target: str | Path, table: str) -> int:
    return int(query(target, f"SELECT count(*) AS n FROM {table}")[0]["n"])


def wait_for(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
