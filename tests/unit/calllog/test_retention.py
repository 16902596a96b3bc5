"""Retention (PIPL): full caller numbers go when no longer needed, records after three years (both backends)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.calllog import CallLog, is_url, open_calllog
from ivr.calllog.records import CallRecord
from ivr.cli import main
from ivr.errors import StorageUnavailable
from ivr.exitcode import ExitCode
from ivr.privacy import caller_hash, mask
from ivr.tickets import Ticket
from tests.unit.calllog.conftest import Disk
from tests.unit.calllog.workload import query

KEY = b"test-key"
NOW = time.time()  # the CLI purges as of now
DAY = 86400.0
DONE_CALLER = "13812345678"  # called back and reached: the number is no longer needed
IDLE_CALLER = "13700001111"  # last missed 40 days ago, never reached
RECENT_CALLER = "13900002222"  # missed yesterday: the operators still need to dial it
OLD_CALLER = "13600003333"  # missed four years ago only, reached then: the entry itself goes


def missed(log: CallLog, call_id: str, number: str, at: float) -> None:
    log.missed_call(call_id, number, caller_hash(number, KEY), mask(number), reason="in_menu", at=at)


def call(log: CallLog, call_id: str, at: float) -> None:
    rec = CallRecord(call_id, "1.1", "12345", "138****5678", "h", "v1", started_at=at, outcome="connected")
    rec.step("answered")
    rec.step("ended")
    log.call_finished(rec)


def ticket(log: CallLog, ticket_id: str, at: float, closed: bool) -> None:
    log.ticket_opened(Ticket(ticket_id, "c", "merge", "市公安局", "merge", "gaj", at, at + 3 * DAY))
    if closed:
        log.ticket_closed(ticket_id, at + DAY)


@pytest.fixture
def path(target: str, tmp_path: Path) -> Iterator[str]:
    """Four years of a small hotline; the controller's writer still has the database open."""
    path = target
    log = open_calllog(path, tmp_path / "calllog.journal" if is_url(path) else None)
    log.start()
    old = NOW - 4 * 365 * DAY
    for i, caller in enumerate((DONE_CALLER, DONE_CALLER, OLD_CALLER)):
        call(log, f"old-{i}", old + i)
        missed(log, f"old-{i}", caller, old + i)
    call(log, "young-done", NOW - 10 * DAY)
    missed(log, "young-done", DONE_CALLER, NOW - 10 * DAY)  # the same entry: it was still open
    call(log, "idle", NOW - 40 * DAY)
    missed(log, "idle", IDLE_CALLER, NOW - 40 * DAY)
    call(log, "recent", NOW - DAY)
    missed(log, "recent", RECENT_CALLER, NOW - DAY)
    ticket(log, "t-old-closed", old, closed=True)
    ticket(log, "t-old-open", old, closed=False)
    ticket(log, "t-young-closed", NOW - 5 * DAY, closed=True)
    log.close()
    for entry in log.callbacks(None):
        if entry["caller_number"] in (DONE_CALLER, OLD_CALLER):
            log.callback_attempt(entry["id"], "reached", NOW - DAY, done=True)
    log.start()
    yield path
    log.close()


def file_bytes(path: str) -> bytes:
    """The SQLite file and its WAL as bytes (PostgreSQL does not zero freed space: not checked there)."""
    return b"".join(p.read_bytes() for p in (Path(path), Path(f"{path}-wal")) if p.exists())


def dump(path: str) -> list[str]:
    if is_url(path):
        return [
            repr(row)
            for table, key in (
                ("calls", "call_id"),
                ("call_steps", "call_id, seq"),
                ("tickets", "ticket_id"),
                ("callbacks", "id"),
                ("callback_calls", "call_id"),
            )
            for row in query(path, f"SELECT * FROM {table} ORDER BY {key}")
        ]
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def test_a_purge_erases_numbers_no_longer_needed_and_records_past_three_years(path: str) -> None:
    if not is_url(path):
        assert DONE_CALLER.encode() in file_bytes(path)  # the check below would see it if it stayed

    counts = open_calllog(path).purge(NOW)

    assert counts == {
        "numbers_erased": 3,
        "steps_deleted": 6,
        "callback_calls_deleted": 3,
        "calls_deleted": 3,
        "ticket_events_deleted": 2,  # the old closed ticket's opening and close (ivr.ticketing)
        "tickets_deleted": 1,
        "api_requests_deleted": 0,
        "callbacks_deleted": 1,
        "followup_numbers_erased": 0,
        "callback_attempts_deleted": 1,  # the done entry's attempt goes with it
        "followup_attempts_deleted": 0,
        "followups_deleted": 0,
        "recordings_deleted": 0,
        "recording_files_deleted": 0,
    }
    if not is_url(path):
        data = file_bytes(path)
        assert not [n for n in (DONE_CALLER, IDLE_CALLER, OLD_CALLER) if n.encode() in data]
        assert RECENT_CALLER.encode() in data  # still on the list, still needed
    log = open_calllog(path)
    assert [c["call_id"] for c in log.calls()] == ["idle", "young-done", "recent"]
    assert [t["ticket_id"] for t in log.tickets()] == ["t-old-open", "t-young-closed"]
    entries = {e["caller_masked"]: e for e in log.callbacks(None)}
    assert set(entries) == {mask(DONE_CALLER), mask(IDLE_CALLER), mask(RECENT_CALLER)}  # OLD_CALLER's went
    assert [c["call_id"] for c in log.callback_calls(entries[mask(DONE_CALLER)]["id"])] == ["young-done"]
    assert entries[mask(DONE_CALLER)]["caller_number"] == "" and entries[mask(DONE_CALLER)]["caller_hash"]
    assert entries[mask(IDLE_CALLER)]["caller_number"] == "" and entries[mask(IDLE_CALLER)]["status"] == "open"
    assert entries[mask(RECENT_CALLER)]["caller_number"] == RECENT_CALLER
    assert len(log.steps("idle")) == 2


def test_a_second_purge_finds_nothing_left_to_do(path: str) -> None:
    open_calllog(path).purge(NOW)
    assert set(open_calllog(path).purge(NOW).values()) == {0}


def test_a_dry_run_counts_the_same_and_changes_nothing(path: str) -> None:
    before = dump(path)
    would = open_calllog(path).purge(NOW, dry_run=True)
    assert dump(path) == before
    assert open_calllog(path).purge(NOW) == would


def test_an_idle_callers_new_missed_call_gives_the_operators_the_number_again(path: str) -> None:
    open_calllog(path).purge(NOW)
    log = open_calllog(path)
    log.start()
    missed(log, "idle-again", IDLE_CALLER, NOW)
    log.close()
    (entry,) = [e for e in log.callbacks() if e["caller_masked"] == mask(IDLE_CALLER)]
    assert (entry["caller_number"], entry["missed_count"]) == (IDLE_CALLER, 2)


def test_shorter_periods_reach_younger_records(path: str) -> None:
    counts = open_calllog(path).purge(NOW, keep_calls_days=7, keep_numbers_days=0)
    assert (counts["calls_deleted"], counts["numbers_erased"], counts["tickets_deleted"]) == (5, 4, 1)
    assert [c["call_id"] for c in open_calllog(path).calls()] == ["recent"]


def test_cli_purge_prints_the_counts_and_dry_run_keeps_everything(path: str) -> None:
    before = dump(path)
    dry = CliRunner().invoke(main, ["purge", "--calllog", path, "--dry-run", "--keep-calls-days", "0"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout) == {
        "dry_run": True,
        "numbers_erased": 3,
        "steps_deleted": 12,
        "callback_calls_deleted": 6,
        "calls_deleted": 6,
        "ticket_events_deleted": 4,
        "tickets_deleted": 2,
        "api_requests_deleted": 0,
        "callbacks_deleted": 2,
        "followup_numbers_erased": 0,
        "callback_attempts_deleted": 2,
        "followup_attempts_deleted": 0,
        "followups_deleted": 0,
        "recordings_deleted": 0,
        "recording_files_deleted": 0,
    }
    assert dump(path) == before
    real = CliRunner().invoke(main, ["purge", "--calllog", path])
    assert real.exit_code == 0, real.output
    assert json.loads(real.stdout)["calls_deleted"] == 3


def test_cli_journal_reports_the_writes_waiting(path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_STATE", str(tmp_path))
    monkeypatch.delenv("HOTLINE_JOURNAL", raising=False)
    result = CliRunner().invoke(main, ["journal", "--calllog", path])
    assert result.exit_code == 0, result.output
    # Beside an SQLite file; in the state directory for a database (each controller has its own).
    journal = str(tmp_path / "calllog.journal") if is_url(path) else f"{path}.journal"
    assert json.loads(result.stdout) == {"journal": journal, "pending": 0, "bytes": 0}


def test_a_purge_the_database_refuses_changes_nothing_and_the_cli_says_why(tmpfs: Callable[..., Disk]) -> None:
    disk = tmpfs()
    path = disk.path / "calllog.sqlite3"
    log = open_calllog(path)
    log.start()
    call(log, "old", NOW - 4 * 365 * DAY)
    log.close()
    disk.read_only()
    try:
        with pytest.raises(StorageUnavailable, match=f"cannot purge the call log {path}: ") as e:
            log.purge(NOW)
        assert isinstance(e.value.__cause__, sqlite3.Error)  # translated inside ivr.calllog
        result = CliRunner().invoke(main, ["purge", "--calllog", str(path)])
        assert result.exit_code == ExitCode.ENVIRONMENT == 2
        assert result.output.startswith(f"hotline: cannot open the call log {path}: ")  # it opens it first
    finally:
        disk.writable()
    assert [c["call_id"] for c in log.calls()] == ["old"]
