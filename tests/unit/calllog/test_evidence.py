"""Refused and fallback calls from Asterisk's own record (its CEL SQLite file) into the call log, each once.

The file is made here as Asterisk makes it (dialplan/cel_sqlite3_custom.conf: an AcctId key, then
the four fields, the extra as Asterisk's JSON); the real file is exercised by
tests/integration/test_counting.py.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.calllog import CallLog, open_calllog
from ivr.calllog.evidence import IMPORT_DAYS, Importer, read_events
from ivr.calllog.records import CallRecord, Outcome
from ivr.errors import StorageUnavailable

NOW = 1_796_440_000.0


class Cel:
    """Asterisk's hotline-events.db."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute(
                "CREATE TABLE hotline_events (AcctId INTEGER PRIMARY KEY, eventtime,userdeftype,eventextra,uniqueid)"
            )

    def write(self, at: float, event: str, extra: str, uniqueid: str) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute(
                "INSERT INTO hotline_events (eventtime, userdeftype, eventextra, uniqueid) VALUES (?, ?, ?, ?)",
                (f"{at:.6f}", event, f'{{"extra":"{extra}"}}', uniqueid),
            )


@pytest.fixture
def cel(tmp_path: Path) -> Cel:
    return Cel(tmp_path / "hotline-events.db")


@pytest.fixture
def log(tmp_path: Path) -> Iterator[CallLog]:
    calllog = open_calllog(tmp_path / "calllog.sqlite3")
    calllog.start()
    yield calllog
    calllog.close()


def a_call(log: CallLog, at: float) -> None:
    """One call the controller carried, so the log has a beginning."""
    rec = CallRecord("c1", "ch1", "12345", "139****0000", "h", "v", started_at=at)
    rec.connected(Outcome.OPERATOR)
    rec.ended(10.0)
    log.call_finished(rec)


def settle(log: CallLog, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while len(rows := log.calls()) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return rows


def test_each_event_becomes_one_finished_row_with_its_outcome_and_number(cel: Cel, log: CallLog) -> None:
    a_call(log, NOW - 60)
    settle(log, 1)
    cel.write(NOW - 30, "hotline_refused", "entry=12345", "1796439970.4")
    cel.write(NOW - 20, "hotline_fallback", "entry=12310", "1796439980.7")
    importer = Importer(cel.path, clock=lambda: NOW)

    added = importer.run(log)

    assert [(r.outcome, r.entry, r.call_id) for r in added] == [
        (Outcome.REFUSED, "12345", "ast-1796439970.4"),
        (Outcome.FALLBACK, "12310", "ast-1796439980.7"),
    ]
    rows = {r["call_id"]: r for r in settle(log, 3)}
    refused = rows["ast-1796439970.4"]
    assert (refused["outcome"], refused["started_at"], refused["ended_at"], refused["hangup_by"]) == (
        "refused",
        NOW - 30,
        NOW - 30,
        "system",
    )
    assert refused["caller_hash"] == "" and refused["caller_masked"] == ""  # Asterisk wrote no number
    assert rows["ast-1796439980.7"]["outcome"] == "fallback"


def test_a_second_run_and_a_restarted_controller_add_nothing_twice(cel: Cel, log: CallLog) -> None:
    a_call(log, NOW - 60)
    settle(log, 1)
    cel.write(NOW - 30, "hotline_fallback", "entry=12345", "u1")
    first = Importer(cel.path, clock=lambda: NOW)
    assert len(first.run(log)) == 1
    assert first.run(log) == []  # its cursor is past the event
    settle(log, 2)

    restarted = Importer(cel.path, clock=lambda: NOW)
    assert restarted.run(log) == []  # the row is in the log already
    cel.write(NOW - 5, "hotline_refused", "entry=12345", "u2")
    assert [r.call_id for r in restarted.run(log)] == ["ast-u2"]


def test_an_empty_call_log_counts_from_now_on(cel: Cel, log: CallLog) -> None:
    cel.write(NOW - 30, "hotline_refused", "entry=12345", "old")  # another log's call (an earlier test, say)
    importer = Importer(cel.path, clock=lambda: NOW)
    assert importer.run(log) == []
    cel.write(NOW - 1, "hotline_refused", "entry=12345", "new")
    assert [r.call_id for r in importer.run(log)] == ["ast-new"]


def test_at_start_events_older_than_the_import_window_or_the_log_are_left_alone(cel: Cel, log: CallLog) -> None:
    a_call(log, NOW - 30 * 86400)
    settle(log, 1)
    cel.write(NOW - (IMPORT_DAYS + 1) * 86400, "hotline_fallback", "entry=12345", "purged-long-ago")
    cel.write(NOW - 3600, "hotline_fallback", "entry=12345", "last-hour")
    assert [r.call_id for r in Importer(cel.path, clock=lambda: NOW).run(log)] == ["ast-last-hour"]


def test_no_file_yet_and_other_user_events_are_nothing_to_import(tmp_path: Path, cel: Cel, log: CallLog) -> None:
    a_call(log, NOW - 60)
    settle(log, 1)
    assert Importer(tmp_path / "missing.db").run(log) == []
    cel.write(NOW - 10, "some_other_event", "entry=12345", "x")
    assert read_events(cel.path) == []


def test_a_file_that_is_not_a_database_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "hotline-events.db"
    bad.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StorageUnavailable, match="hotline-events.db"):
        read_events(bad)
