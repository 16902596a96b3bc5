"""The call log's tickets and callback list (漏接回拨), the shared writer, the file, the CLI.

Every behaviour that is not about the SQLite file itself runs on both backends (`backend`):
an SQLite file and a PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from ivr.calllog import CallLog, is_url, open_calllog
from ivr.calllog.records import CallRecord
from ivr.calllog.sqlite import SCHEMA_VERSION, SqliteCallLog
from ivr.cli import main
from ivr.errors import CallLogError
from ivr.privacy import caller_hash, mask
from ivr.tickets import DeadlinePolicy, Ticket, new_ticket, to_epoch

KEY = b"test-key"
ALICE = "13812345678"
BOB = "13987654321"


def missed(log: CallLog, call_id: str, number: str, at: float, reason: str = "in_menu") -> None:
    log.missed_call(call_id, number, caller_hash(number, KEY), mask(number), reason=reason, at=at)


def record(call_id: str = "c1") -> CallRecord:
    return CallRecord(
        call_id=call_id,
        channel_id="1.1",
        entry="12345",
        caller_masked="138****5678",
        caller_hash="h",
        routes_version="v1",
    )


def ticket(call_id: str = "c1", created: str = "2026-09-30T10:00", kind: str = "merge") -> Ticket:
    return new_ticket(
        call_id,
        kind,
        "市住建局",
        "merge",
        "zjj",
        dt.datetime.fromisoformat(created),
        DeadlinePolicy(default_workdays=3),
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "calllog.sqlite3"


@pytest.fixture
def sqlite_log(path: Path) -> Iterator[SqliteCallLog]:
    calllog = SqliteCallLog(path)
    calllog.start()
    yield calllog
    calllog.close()


def opened(target: str, tmp_path: Path) -> CallLog:
    return open_calllog(target, tmp_path / "calllog.journal" if is_url(target) else None)


@pytest.fixture
def log(target: str, tmp_path: Path) -> Iterator[CallLog]:
    calllog = opened(target, tmp_path)
    calllog.start()
    yield calllog
    calllog.close()


def execute(target: str, *statements: str) -> None:
    """Run statements straight on the database, as an administrator would."""
    if is_url(target):
        with psycopg.connect(target, autocommit=True) as pg:
            for statement in statements:
                pg.execute(statement.encode())
        return
    db = sqlite3.connect(target)
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


def refuse_tickets_of(target: str, call_id: str) -> None:
    """A trigger that makes the database refuse one call's ticket: a write that can never succeed."""
    if is_url(target):
        execute(
            target,
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
            f"CREATE TRIGGER refuse BEFORE INSERT ON tickets FOR EACH ROW WHEN (NEW.call_id = '{call_id}')"
            " EXECUTE FUNCTION refuse()",
        )
    else:
        execute(
            target,
            f"CREATE TRIGGER refuse BEFORE INSERT ON tickets WHEN NEW.call_id = '{call_id}'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )


# -- the callback list ----------------------------------------------------------------------------


def test_two_missed_calls_from_one_caller_are_one_entry_with_both_calls(log: CallLog) -> None:
    missed(log, "c1", ALICE, 1000.0, reason="in_menu")
    missed(log, "c2", ALICE, 1060.0, reason="during_transfer")
    missed(log, "c3", BOB, 1030.0)
    log.close()
    alice, bob = log.callbacks()
    assert (alice["caller_masked"], alice["missed_count"]) == ("138****5678", 2)
    assert (alice["first_missed_at"], alice["last_missed_at"]) == (1000.0, 1060.0)
    assert (alice["status"], alice["attempts"], alice["caller_number"]) == ("open", 0, ALICE)
    assert [(c["call_id"], c["reason"]) for c in log.callback_calls(alice["id"])] == [
        ("c1", "in_menu"),
        ("c2", "during_transfer"),
    ]
    assert bob["missed_count"] == 1 and [c["call_id"] for c in log.callback_calls(bob["id"])] == ["c3"]


def test_the_same_call_reported_twice_counts_once(log: CallLog) -> None:
    missed(log, "c1", ALICE, 1000.0)
    missed(log, "c1", ALICE, 1000.0)
    log.close()
    (entry,) = log.callbacks()
    assert entry["missed_count"] == 1


def test_a_caller_without_a_number_cannot_be_called_back(log: CallLog) -> None:
    log.missed_call("c1", "", caller_hash("", KEY), mask(""), reason="in_menu", at=1.0)
    log.missed_call("c2", "anonymous", caller_hash("anonymous", KEY), "anonymous", reason="in_menu", at=2.0)
    log.close()
    assert log.callbacks(None) == []


def test_attempts_are_counted_and_done_closes_the_entry(log: CallLog) -> None:
    missed(log, "c1", ALICE, 1000.0)
    log.close()
    (entry,) = log.callbacks()
    assert log.callback_attempt(entry["id"], "no_answer", 2000.0, done=False)
    (entry,) = log.callbacks()
    assert (entry["attempts"], entry["outcome"], entry["last_attempt_at"], entry["status"]) == (
        1,
        "no_answer",
        2000.0,
        "open",
    )
    assert entry["done_at"] is None
    assert log.callback_attempt(entry["id"], "reached", 3000.0, done=True)
    assert log.callbacks() == []
    (done,) = log.callbacks("done")
    assert (done["attempts"], done["outcome"], done["status"], done["done_at"]) == (2, "reached", "done", 3000.0)


def test_an_attempt_on_an_unknown_entry_says_so(log: CallLog) -> None:
    assert log.callback_attempt(999, "reached", 1.0, done=True) is False


def test_a_done_entry_is_not_reopened_by_a_later_attempt(log: CallLog) -> None:
    missed(log, "c1", ALICE, 1000.0)
    log.close()
    (entry,) = log.callbacks()
    log.callback_attempt(entry["id"], "reached", 2000.0, done=True)
    log.callback_attempt(entry["id"], "busy", 2500.0, done=False)
    (done,) = log.callbacks("done")
    assert (done["status"], done["done_at"], done["attempts"]) == ("done", 2000.0, 2)


def test_a_new_missed_call_after_the_entry_was_done_opens_a_new_entry(target: str, tmp_path: Path) -> None:
    log = opened(target, tmp_path)
    log.start()
    missed(log, "c1", ALICE, 1000.0)
    log.close()
    (first,) = log.callbacks()
    log.callback_attempt(first["id"], "reached", 2000.0, done=True)
    log.start()
    missed(log, "c2", ALICE, 3000.0)
    missed(log, "c3", ALICE, 3100.0)
    log.close()
    (second,) = log.callbacks()
    assert second["id"] != first["id"]
    assert (second["missed_count"], second["first_missed_at"]) == (2, 3000.0)
    assert [c["call_id"] for c in log.callback_calls(second["id"])] == ["c2", "c3"]
    assert [c["call_id"] for c in log.callback_calls(first["id"])] == ["c1"]
    assert len(log.callbacks(None)) == 2


def test_the_database_allows_one_open_entry_per_caller(log: CallLog, target: str) -> None:
    missed(log, "c1", ALICE, 1000.0)
    log.close()
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
        execute(
            target,
            "INSERT INTO callbacks (caller_hash, caller_masked, caller_number, first_missed_at,"
            f" last_missed_at) VALUES ('{caller_hash(ALICE, KEY)}', 'x', 'x', 1, 1)",
        )


# -- tickets ---------------------------------------------------------------------------------------


def test_tickets_round_trip_with_survey_and_close(log: CallLog) -> None:
    t = ticket("c1")
    log.ticket_opened(t)
    log.ticket_survey(t.ticket_id, 2)
    log.ticket_closed(t.ticket_id, at=t.created_at + 3600, note="已答复")
    other = ticket("c2", kind="message")
    log.ticket_opened(other)
    log.close()
    first, second = log.tickets()
    assert first == {
        "ticket_id": t.ticket_id,
        "call_id": "c1",
        "kind": "merge",
        "unit": "市住建局",
        "mode": "merge",
        "route_id": "zjj",
        "created_at": t.created_at,
        "deadline_at": t.deadline_at,
        "status": "closed",
        "closed_at": t.created_at + 3600,
        "satisfaction": 2,
        "note": "已答复",
        # the lifecycle (ivr.ticketing): a department call's ticket opens dispatched, the close is version 1
        "state": "closed",
        "summary": "",
        "category": "",
        "urgency": "normal",
        "reply": "",
        "workdays": t.workdays,
        "extended_workdays": 0,
        "paused_at": None,
        "version": 1,
        "updated_at": t.created_at + 3600,
    }
    assert (second["ticket_id"], second["kind"], second["status"], second["satisfaction"]) == (
        other.ticket_id,
        "message",
        "open",
        None,
    )
    assert log.tickets("status = ?", ("open",)) == [second]


def test_a_survey_score_outside_1_to_3_is_refused_at_once(log: CallLog) -> None:
    with pytest.raises(ValueError):
        log.ticket_survey("12345-20260930-000000", 4)


def test_closing_twice_keeps_the_first_close(log: CallLog) -> None:
    t = ticket()
    log.ticket_opened(t)
    log.ticket_closed(t.ticket_id, at=10.0, note="first")
    log.ticket_closed(t.ticket_id, at=20.0, note="second")
    log.close()
    (row,) = log.tickets()
    assert (row["closed_at"], row["note"]) == (10.0, "first")


def test_overdue_lists_open_tickets_past_their_deadline(log: CallLog) -> None:
    late = ticket("late", "2026-09-01T10:00")
    closed = ticket("closed", "2026-09-01T11:00")
    fresh = ticket("fresh", "2026-09-30T10:00")  # due 2026-10-10 10:00
    for t in (late, closed, fresh):
        log.ticket_opened(t)
    log.ticket_closed(closed.ticket_id, at=closed.created_at + 60)
    log.close()
    now = to_epoch(dt.datetime(2026, 10, 9, 12, 0))
    assert [r["call_id"] for r in log.overdue(now)] == ["late"]
    assert {r["call_id"] for r in log.overdue(fresh.deadline_at + 1)} == {"late", "fresh"}


def test_a_ticket_id_taken_by_another_call_does_not_overwrite_it_nor_stop_the_writer(log: CallLog) -> None:
    t = ticket("c1")
    log.ticket_opened(t)
    log.ticket_opened(Ticket(t.ticket_id, "c2", "merge", "u", "merge", "r", 1.0, 2.0))
    log.ticket_opened(t)  # the same ticket again: harmless
    log.call_started(record("after"))
    log.close()
    (row,) = log.tickets()
    assert row["call_id"] == "c1"
    assert [r["call_id"] for r in log.calls()] == ["after"]


# -- the shared writer -----------------------------------------------------------------------------


def test_call_writes_are_unaffected_and_carry_the_ticket(log: CallLog) -> None:
    rec = record()
    log.call_started(rec)
    t = ticket(rec.call_id)
    rec.ticket_id, rec.satisfaction, rec.outcome = t.ticket_id, 1, "connected"
    log.ticket_opened(t)
    rec.step("dial", status="ANSWER")
    log.call_finished(rec)
    log.close()
    (row,) = log.calls()
    assert (row["outcome"], row["ticket_id"], row["satisfaction"]) == ("connected", t.ticket_id, 1)
    assert [s["name"] for s in log.steps("c1")] == ["dial"]
    assert log.failed_writes == 0 and log.failed_batches == 0


def test_every_field_of_a_call_record_has_a_column(log: CallLog) -> None:
    log.call_started(record())
    log.close()
    (row,) = log.calls()
    assert set(record().columns()) <= set(row)


def test_one_write_that_cannot_succeed_loses_only_itself(log: CallLog, target: str) -> None:
    refuse_tickets_of(target, "bad")
    log.close()  # queue the next writes before the writer runs: they land in one batch
    log.call_started(record("c1"))
    log.ticket_opened(ticket("bad"))
    log.ticket_opened(ticket("good"))
    missed(log, "c1", ALICE, 1.0)
    log.start()
    log.close()
    assert [t["call_id"] for t in log.tickets()] == ["good"]
    assert [c["call_id"] for c in log.calls()] == ["c1"]
    assert len(log.callbacks()) == 1
    assert (log.failed_writes, log.written) == (1, 3)


def test_writes_from_many_threads_and_tasks_all_land(log: CallLog) -> None:
    def worker(n: int) -> None:
        for i in range(100):
            call_id = f"t{n}-{i}"
            log.call_started(record(call_id))
            log.ticket_opened(ticket(call_id))
            missed(log, call_id, f"1390000{n:04d}", float(i))

    async def tasks() -> None:
        async def one(i: int) -> None:
            await asyncio.sleep(0)
            log.call_finished(record(f"a{i}"))
            missed(log, f"a{i}", ALICE, 5000.0 + i)

        await asyncio.gather(*(one(i) for i in range(200)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    asyncio.run(tasks())
    for th in threads:
        th.join()
    log.close()
    assert len(log.calls()) == 8 * 100 + 200
    assert len(log.tickets()) == 8 * 100
    entries = log.callbacks()
    assert len(entries) == 9  # one per caller: 8 thread callers and ALICE
    assert sorted(e["missed_count"] for e in entries) == [100] * 8 + [200]
    assert log.failed_writes == 0 and log.failed_batches == 0


# -- the file --------------------------------------------------------------------------------------


def test_the_file_and_its_wal_files_are_readable_by_their_owner_only(sqlite_log: SqliteCallLog, path: Path) -> None:
    log = sqlite_log
    reader = sqlite3.connect(path)  # keeps the -wal and -shm files after the writer closes
    try:
        reader.execute("SELECT count(*) FROM callbacks").fetchone()
        missed(log, "c1", ALICE, 1.0)
        log.close()
        for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    finally:
        reader.close()


def test_an_older_world_readable_file_is_tightened(path: Path) -> None:
    make_v1(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    log = SqliteCallLog(path)
    log.start()
    log.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reads_of_a_missing_file_do_not_create_a_readable_one(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    with pytest.raises(CallLogError, match="cannot read the call log .*new.sqlite3: no such table") as raised:
        SqliteCallLog(path).callbacks()
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)  # translated, never leaked
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# The schema exactly as version 1 (before tickets) created it.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    entry TEXT NOT NULL,
    caller_masked TEXT NOT NULL,
    caller_hash TEXT NOT NULL,
    routes_version TEXT NOT NULL,
    started_at REAL NOT NULL,
    answered_at REAL,
    ended_at REAL,
    track TEXT NOT NULL DEFAULT '',
    menu_path TEXT NOT NULL DEFAULT '',
    keys TEXT NOT NULL DEFAULT '',
    decision TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    route_id TEXT NOT NULL DEFAULT '',
    unit TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL DEFAULT '',
    target_number TEXT NOT NULL DEFAULT '',
    dial_status TEXT NOT NULL DEFAULT '',
    dial_cause INTEGER,
    target_answered_at REAL,
    overflowed INTEGER NOT NULL DEFAULT 0,
    operator_status TEXT NOT NULL DEFAULT '',
    hangup_by TEXT NOT NULL DEFAULT '',
    hangup_cause INTEGER,
    talk_seconds REAL NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL DEFAULT 'in_progress'
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_unit ON calls (unit, started_at);
CREATE TABLE IF NOT EXISTS call_steps (
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    name TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (call_id, seq)
);
"""


def make_v1(path: Path) -> None:
    """A file as the version 1 call log left it: WAL, user_version 1, umask permissions, a call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(V1_SCHEMA)
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO calls (call_id, channel_id, entry, caller_masked, caller_hash, routes_version,"
        " started_at, ended_at, outcome) VALUES ('old', '1.1', '12345', '138****5678', 'h', 'v1', 1, 2,"
        " 'connected')"
    )
    db.execute("INSERT INTO call_steps (call_id, seq, at, name) VALUES ('old', 0, 1, 'answered')")
    db.commit()
    db.close()
    path.chmod(0o644)


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def schema(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return {name: sql for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    finally:
        db.close()


def test_a_version_1_file_is_upgraded_in_place(path: Path, tmp_path: Path) -> None:
    make_v1(path)
    log = SqliteCallLog(path)
    assert log.start() == 0
    rec = record("new")
    rec.ticket_id = "12345-20260930-000001"
    log.call_finished(rec)
    missed(log, "new", ALICE, 5.0)
    log.ticket_opened(ticket("new"))
    log.close()
    assert user_version(path) == SCHEMA_VERSION == 9
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    old, new = log.calls()
    assert (old["call_id"], old["outcome"], old["ticket_id"], old["satisfaction"]) == ("old", "connected", "", None)
    assert [s["name"] for s in log.steps("old")] == ["answered"]
    assert new["ticket_id"] == "12345-20260930-000001"
    assert len(log.callbacks()) == 1 and len(log.tickets()) == 1
    # the same tables as a file created new (column order of `calls` aside)
    fresh = tmp_path / "fresh.sqlite3"
    SqliteCallLog(fresh).migrate()
    assert set(schema(path)) == set(schema(fresh))
    assert {k: v for k, v in schema(path).items() if k != "calls"} == {
        k: v for k, v in schema(fresh).items() if k != "calls"
    }


def test_upgrading_is_idempotent_and_survives_a_downgraded_version(path: Path) -> None:
    make_v1(path)
    assert SqliteCallLog(path).migrate() == SCHEMA_VERSION
    assert SqliteCallLog(path).migrate() == SCHEMA_VERSION
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 1")  # what the version 1 code does when it opens the file
    db.commit()
    db.close()
    log = SqliteCallLog(path)
    log.start()
    log.close()
    assert user_version(path) == SCHEMA_VERSION


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def filled(target: str, tmp_path: Path) -> str:
    log = opened(target, tmp_path)
    log.start()
    missed(log, "c1", ALICE, to_epoch(dt.datetime(2026, 11, 25, 9, 30)))
    missed(log, "c2", ALICE, to_epoch(dt.datetime(2026, 11, 25, 10, 2)))
    missed(log, "c3", BOB, to_epoch(dt.datetime(2026, 11, 25, 11, 0)))
    log.ticket_opened(ticket("late", "2026-09-01T10:00"))
    log.ticket_opened(ticket("open", "2099-01-05T10:00"))
    done = ticket("done", "2026-09-02T10:00")
    log.ticket_opened(done)
    log.ticket_closed(done.ticket_id, at=done.created_at + 1)
    log.close()
    return target


def test_cli_list_masks_numbers_unless_revealed(filled: str) -> None:
    result = CliRunner().invoke(main, ["callbacks", "list", "--calllog", filled])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert "138****5678" in lines[0] and "missed  2" in lines[0]
    assert "first 2026-11-25 09:30" in lines[0] and "last 2026-11-25 10:02" in lines[0]
    assert "attempts 0" in lines[0]
    assert ALICE not in result.output and BOB not in result.output
    revealed = CliRunner().invoke(main, ["callbacks", "list", "--reveal", "--calllog", filled])
    assert revealed.exit_code == 0
    assert ALICE in revealed.output and BOB in revealed.output


def test_cli_mark_records_an_attempt_and_reached_closes_by_default(filled: str) -> None:
    (alice, _) = open_calllog(filled).callbacks()
    runner = CliRunner()
    busy = runner.invoke(main, ["callbacks", "mark", str(alice["id"]), "--outcome", "busy", "--calllog", filled])
    assert busy.exit_code == 0, busy.output
    listed = runner.invoke(main, ["callbacks", "list", "--calllog", filled])
    assert "attempts 1  busy" in listed.output
    reached = runner.invoke(main, ["callbacks", "mark", str(alice["id"]), "--outcome", "reached", "--calllog", filled])
    assert reached.exit_code == 0 and "done" in reached.output
    assert len(open_calllog(filled).callbacks()) == 1
    everything = runner.invoke(main, ["callbacks", "list", "--all", "--calllog", filled])
    assert len(everything.output.splitlines()) == 2 and "done" in everything.output


def test_cli_mark_not_done_keeps_the_entry_open(filled: str) -> None:
    (alice, _) = open_calllog(filled).callbacks()
    result = CliRunner().invoke(
        main, ["callbacks", "mark", str(alice["id"]), "--outcome", "reached", "--not-done", "--calllog", filled]
    )
    assert result.exit_code == 0
    assert len(open_calllog(filled).callbacks()) == 2


def test_cli_mark_an_unknown_id_exits_1(filled: str) -> None:
    result = CliRunner().invoke(main, ["callbacks", "mark", "999", "--outcome", "reached", "--calllog", filled])
    assert result.exit_code == 1
    assert "no callback with id 999" in result.output


def test_cli_refuses_an_unknown_outcome(filled: str) -> None:
    result = CliRunner().invoke(main, ["callbacks", "mark", "1", "--outcome", "maybe", "--calllog", filled])
    assert result.exit_code == 2


def test_cli_without_a_call_log_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["callbacks", "list", "--calllog", str(tmp_path / "none.sqlite3")])
    assert result.exit_code == 2 and "no call log" in result.output
    assert not (tmp_path / "none.sqlite3").exists()


def test_cli_lists_tickets_as_json_lines(filled: str) -> None:
    import json

    runner = CliRunner()

    def call_ids(*args: str) -> list[str]:
        result = runner.invoke(main, ["tickets", *args, "--calllog", filled])
        assert result.exit_code == 0, result.output
        return [json.loads(line)["call_id"] for line in result.output.splitlines()]

    assert call_ids() == ["late", "done", "open"]
    assert call_ids("--open") == ["late", "open"]
    assert call_ids("--overdue") == ["late"]
    line = json.loads(runner.invoke(main, ["tickets", "--overdue", "--calllog", filled]).output)
    assert (line["created"], line["deadline"]) == ("2026-09-01 10:00", "2026-09-04 10:00")


def test_cli_upgrades_a_version_1_file_before_reading(path: Path) -> None:
    make_v1(path)
    result = CliRunner().invoke(main, ["callbacks", "list", "--calllog", str(path)])
    assert result.exit_code == 0, result.output
    assert user_version(path) == SCHEMA_VERSION
