"""The journal: every kind of write survives the round trip to a JSON line unchanged; the file is safe."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.calllog.journal import Journal
from ivr.calllog.records import CallRecord, Step
from ivr.calllog.sqlite import (
    SqliteCallLog,
    Write,
    _CallWrite,
    _decode,
    _encode,
    _MissedCall,
    _TicketClosed,
    _TicketOpened,
    _TicketSurvey,
)
from ivr.tickets import Ticket


def through_a_line(write: Write) -> Write:
    """What a replay gets back: the write written as a journal line and read again."""
    return _decode(json.loads(json.dumps(_encode(write), ensure_ascii=False)))


def final_write(rec: CallRecord) -> _CallWrite:
    log = SqliteCallLog("unused.sqlite3")  # never started: the write is only queued
    log.call_finished(rec)
    write = log._queue.get_nowait()
    assert isinstance(write, _CallWrite)
    return write


EXAMPLES: list[Write] = [
    _TicketOpened(
        Ticket(
            "12345-20261124-7f3a9c", "c1", "message", "市住建局", "", "", 1_790_000_000.123456, 1_790_259_200.0, "open"
        )
    ),
    _TicketSurvey("12345-20261124-7f3a9c", 3),
    _TicketClosed("12345-20261124-7f3a9c", 1_790_000_060.5, '已办结 "note"\nline 2'),
    _MissedCall("c1", "+86 138 1234 5678", "ab" * 16, "+86****5678", "message:after_hours", 0.1 + 0.2),
]


@pytest.mark.parametrize("write", EXAMPLES, ids=lambda w: w.kind)
def test_every_kind_of_write_comes_back_from_the_journal_equal(write: Write) -> None:
    assert through_a_line(write) == write


def test_a_complete_call_comes_back_with_every_column_and_step() -> None:
    rec = CallRecord(
        "c1",
        "1.1",
        "12345",
        "138****5678",
        "h" * 32,
        "v1",
        started_at=1_790_000_000.987654321,
        answered_at=None,
        dial_cause=17,
        overflowed=True,
        satisfaction=None,
        outcome="connected",
        unit="市公安局",
        keys="9110#",
        talk_seconds=1e-9,
    )
    rec.steps = [Step(1.5, "menu", {"keys": "1", "level": 1}), Step(2.5, "dial", {"note": "接通", "n": None})]
    write = final_write(rec)
    back = through_a_line(write)
    assert back == write
    assert isinstance(back, _CallWrite) and back.cols["dial_cause"] == 17 and back.cols["answered_at"] is None


@given(text=st.text(), number=st.floats(allow_nan=False), maybe=st.none() | st.integers(-(2**53), 2**53))
def test_any_text_and_number_in_a_call_survives_the_round_trip(text: str, number: float, maybe: int | None) -> None:
    rec = CallRecord(text, text, text, text, text, text, started_at=number, hangup_cause=maybe, reason=text)
    rec.steps = [Step(number, text, {text: text})]
    write = final_write(rec)
    back = through_a_line(write)
    assert back == write
    assert isinstance(back, _CallWrite) and math.copysign(1, back.cols["started_at"]) == math.copysign(1, number)


def test_the_journal_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.append([{"kind": "ticket_survey", "ticket_id": "t", "score": 1}])
    assert stat.S_IMODE((tmp_path / "j").stat().st_mode) == 0o600


def test_a_line_torn_by_a_kill_is_skipped_and_the_next_append_starts_a_fresh_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.append([{"n": 1}])
    with (tmp_path / "j").open("ab") as f:
        f.write(b'{"n": 2, "kill')  # the process died in the middle of this append
    journal.append([{"n": 3}])
    entries, end, torn = journal.read(0, 100)
    assert ([e["n"] for e in entries], torn, end) == ([1, 3], 1, journal.size())
    assert journal.count() == 3  # two writes and the torn line, until the replay skips it


def test_reading_stops_at_the_given_byte_and_resumes_from_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.append([{"n": 1}, {"n": 2}])
    middle = journal.size()
    journal.append([{"n": 3}])
    first, offset, _ = journal.read(0, 100, until=middle)
    rest, end, _ = journal.read(offset, 100)
    assert ([e["n"] for e in first], [e["n"] for e in rest], offset, end) == ([1, 2], [3], middle, journal.size())


def test_a_replayed_journal_is_emptied_but_kept_with_its_permissions(tmp_path: Path) -> None:
    log = SqliteCallLog(tmp_path / "calllog.sqlite3")
    Journal(log.journal_path).append([_encode(EXAMPLES[0]), _encode(EXAMPLES[1])])
    log.start()
    log.close()
    assert log.journal_path.stat().st_size == 0 and stat.S_IMODE(log.journal_path.stat().st_mode) == 0o600
    (ticket,) = log.tickets()
    assert (ticket["ticket_id"], ticket["satisfaction"]) == ("12345-20261124-7f3a9c", 3)
