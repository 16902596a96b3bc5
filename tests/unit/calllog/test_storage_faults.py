"""The call log loses no record when its storage fails: locked, full, read-only, or the writer killed.

Real faults: another connection holding the write lock, tmpfs disks filled to the last byte or
remounted read-only, a writer process killed with SIGKILL. After each fault clears, every
record written is in the database exactly once and in order, and the journal is empty.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from ivr.calllog.sqlite import SqliteCallLog
from ivr.tickets import Ticket
from tests.unit.calllog.conftest import Disk
from tests.unit.calllog.workload import (
    Written,
    assert_all_in,
    rows,
    traffic,
    unfinished_call,
    wait_for,
)

REPO = Path(__file__).resolve().parents[3]


def fast(path: Path, journal: Path | None = None, **kwargs: float) -> SqliteCallLog:
    """A log that gives up on a lock and retries its journal quickly (the defaults take seconds)."""
    return SqliteCallLog(path, journal, lock_timeout=0.1, retry_seconds=0.2, **kwargs)  # type: ignore[arg-type]


def expected(prefix: str, n: int, tmp_path: Path) -> Written:
    """What traffic(prefix, n) writes, without writing it (a log never started only queues)."""
    return traffic(SqliteCallLog(tmp_path / "never-started.sqlite3"), prefix, n)


def journal_lines(log: SqliteCallLog) -> int:
    return len(log.journal_path.read_bytes().splitlines()) if log.journal_path.exists() else 0


@pytest.fixture
def locked() -> Iterator[Callable[[Path], sqlite3.Connection]]:
    """Hold the database's write lock from another connection (BEGIN EXCLUSIVE) until released."""
    holders: list[sqlite3.Connection] = []

    def lock(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        holders.append(db)
        return db

    yield lock
    for db in holders:
        db.close()


def release(db: sqlite3.Connection) -> None:
    db.execute("ROLLBACK")
    db.close()


def test_a_database_locked_past_the_retries_journals_the_writes_and_replays_them_in_order_when_free(
    tmp_path: Path, locked: Callable[[Path], sqlite3.Connection]
) -> None:
    path = tmp_path / "calllog.sqlite3"
    log = fast(path)
    log.start()
    written = traffic(log, "before", 10)
    wait_for(lambda: log.written == written.writes, what="the first calls committed")

    holder = locked(path)
    with structlog.testing.capture_logs() as events:
        during = traffic(log, "during", 40)
        wait_for(lambda: log.journal_pending == during.writes, what="every write of the outage journaled")
        assert log.journaling and journal_lines(log) == during.writes
        assert rows(path, "calls") == 10  # the database took none of them
        during += traffic(log, "late", 5)  # still locked: these queue behind the journal
        release(holder)
        wait_for(lambda: not log.journaling, what="the journal replayed")
    written += during

    assert_all_in(path, written)
    assert log.journal_path.stat().st_size == 0 and log.journal_pending == 0
    assert (log.journaled_total, log.replayed_total, log.lost_total, log.failed_writes) == (
        during.writes,
        during.writes,
        0,
        0,
    )
    started = [e for e in events if e["event"] == "calllog_journaling_started"]
    assert len(started) == 1 and "locked" in started[0]["reason"]
    assert [e["records"] for e in events if e["event"] == "calllog_journal_replayed"] == [during.writes]
    log.close()


@pytest.mark.parametrize("journal_on", ["another_disk", "the_same_full_disk"])
def test_a_full_disk_journals_the_writes_and_they_land_once_space_is_freed(
    tmp_path: Path, tmpfs: Callable[..., Disk], journal_on: str
) -> None:
    disk = tmpfs("db", size="3m")
    path = disk.path / "calllog.sqlite3"
    # Beside the database the journal is full too: the writes wait in memory instead.
    log = fast(path, tmp_path / "calllog.journal" if journal_on == "another_disk" else None)
    log.start()
    written = traffic(log, "before", 20)
    wait_for(lambda: log.written == written.writes, what="the first calls committed")

    disk.fill()
    during = traffic(log, "during", 150)
    wait_for(
        lambda: log.journal_pending > 0 and log.written + log.journal_pending == written.writes + during.writes,
        what="the database to refuse writes and every write to be kept",
    )
    assert log.failed_batches >= 1
    if journal_on == "another_disk":
        assert log.journal_held == 0 and journal_lines(log) == log.journal_pending
    else:
        # The journal file took what fitted in the disk's last free blocks; the rest waits in memory.
        assert log.journal_held > 0 and journal_lines(log) + log.journal_held == log.journal_pending
    disk.free()
    wait_for(lambda: not log.journaling, what="the journal replayed")
    written += during

    assert_all_in(path, written)
    assert log.journal_pending == 0 and log.journal_path.stat().st_size == 0
    assert log.lost_total == 0 and log.failed_writes == 0
    log.close()


def test_when_the_journal_cannot_be_written_either_writes_wait_in_memory_and_keep_their_order(
    tmp_path: Path, tmpfs: Callable[..., Disk], locked: Callable[[Path], sqlite3.Connection]
) -> None:
    path = tmp_path / "calllog.sqlite3"
    journal_disk = tmpfs("journal", size="1m")
    log = fast(path, journal_disk.path / "calllog.journal")
    log.start()
    holder = locked(path)
    journal_disk.fill()
    with structlog.testing.capture_logs() as events:
        written = traffic(log, "held", 20)
        wait_for(lambda: log.journal_held == written.writes, what="the writes held in memory")
        journal_disk.free()  # the journal's disk first: what memory holds goes to the file, in order
        wait_for(lambda: log.journal_held == 0, what="the held writes written to the journal")
        assert journal_lines(log) == log.journal_pending == written.writes
        written += traffic(log, "after", 10)
        release(holder)
        wait_for(lambda: not log.journaling, what="the journal replayed")
    assert_all_in(path, written)
    assert log.lost_total == 0
    assert len([e for e in events if e["event"] == "calllog_journal_unwritable"]) == 1  # once per episode
    log.close()


def test_writes_past_the_memory_bound_are_counted_and_logged_as_lost(
    tmp_path: Path, tmpfs: Callable[..., Disk], locked: Callable[[Path], sqlite3.Connection]
) -> None:
    path = tmp_path / "calllog.sqlite3"
    journal_disk = tmpfs("journal", size="1m")
    log = fast(path, journal_disk.path / "calllog.journal", memory_limit=50)
    log.start()
    holder = locked(path)
    journal_disk.fill()
    with structlog.testing.capture_logs() as events:
        written = traffic(log, "flood", 30)
        wait_for(lambda: log.journal_held + log.lost_total == written.writes, what="every write held or lost")
    assert (log.journal_held, log.lost_total) == (50, written.writes - 50)
    assert sum(e["records"] for e in events if e["event"] == "calllog_records_lost") == written.writes - 50
    journal_disk.free()
    release(holder)
    wait_for(lambda: not log.journaling, what="the held writes committed")
    assert log.written == 50 and log.journal_pending == 0
    log.close()


def test_a_database_on_a_read_only_disk_does_not_stop_the_log_and_its_writes_land_when_writable(
    tmp_path: Path, tmpfs: Callable[..., Disk]
) -> None:
    disk = tmpfs("db")
    path = disk.path / "calllog.sqlite3"
    first = fast(path)
    first.start()
    written = traffic(first, "yesterday", 5)
    first.close()

    disk.read_only()
    log = fast(path, tmp_path / "calllog.journal")
    with structlog.testing.capture_logs() as events:
        assert log.start() == 0
        during = traffic(log, "today", 20)
        wait_for(lambda: log.journal_pending == during.writes, what="the writes journaled")
        assert log.journaling and log.written == 0  # (a WAL file on a read-only disk cannot even be read)
        disk.writable()
        wait_for(lambda: not log.journaling, what="the journal replayed")
    written += during
    assert_all_in(path, written)
    assert any(e["event"] == "calllog_journaling_started" and e.get("at") == "start" for e in events)
    log.close()


KILLED_WRITER = """
import sys, time
from ivr.calllog.sqlite import SqliteCallLog
from tests.unit.calllog.workload import traffic, unfinished_call
log = SqliteCallLog(sys.argv[1], lock_timeout=0.1, retry_seconds=0.2)
log.start()
written = traffic(log, "killed", 30)
written += unfinished_call(log, "killed-mid-call")
while log.journal_pending < written.writes:
    time.sleep(0.02)
print("journaled", written.writes, flush=True)
time.sleep(120)
"""


def test_a_journal_left_by_a_killed_writer_is_replayed_at_start_before_its_calls_are_marked_interrupted(
    tmp_path: Path, locked: Callable[[Path], sqlite3.Connection]
) -> None:
    path = tmp_path / "calllog.sqlite3"
    setup = SqliteCallLog(path)
    setup.start()
    setup.close()
    holder = locked(path)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    journaled = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:  # its log lines, then ours (or EOF if it died on its own)
            if line.startswith("journaled "):
                journaled = int(line.split()[1])
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    written = expected("killed", 30, tmp_path)
    written += unfinished_call(SqliteCallLog(tmp_path / "never-started.sqlite3"), "killed-mid-call")
    assert journaled == written.writes
    release(holder)

    log = SqliteCallLog(path)
    assert journal_lines(log) == written.writes and rows(path, "calls") == 0
    assert log.start() == 1  # the call that never ended; the 30 ended ones are complete
    assert log.journal_path.stat().st_size == 0  # replayed during start, before the writer runs
    log.close()
    assert_all_in(path, written)


def test_replaying_a_journal_a_second_time_changes_nothing(
    tmp_path: Path, locked: Callable[[Path], sqlite3.Connection]
) -> None:
    """A kill between the replay's commit and the journal's emptying replays it all again."""
    path = tmp_path / "calllog.sqlite3"
    log = fast(path)
    log.start()
    holder = locked(path)
    written = traffic(log, "twice", 30)
    wait_for(lambda: log.journal_pending == written.writes, what="the writes journaled")
    kept = log.journal_path.read_bytes()
    release(holder)
    wait_for(lambda: not log.journaling, what="the journal replayed")
    log.close()
    assert_all_in(path, written)

    log.journal_path.write_bytes(kept)  # as if the process died before emptying it
    again = SqliteCallLog(path)
    with structlog.testing.capture_logs() as events:
        assert again.start() == 0
        again.close()
    assert_all_in(path, written)
    assert again.journal_path.stat().st_size == 0 and again.replayed_total == written.writes
    assert not [e for e in events if e["log_level"] in ("warning", "error")], events


def test_a_clean_stop_during_an_outage_leaves_every_write_in_the_journal_for_the_next_start(
    tmp_path: Path, locked: Callable[[Path], sqlite3.Connection]
) -> None:
    path = tmp_path / "calllog.sqlite3"
    log = fast(path)
    log.start()
    holder = locked(path)
    written = traffic(log, "stop", 25)
    log.close()  # the database is still locked: the writes stay in the journal, fsync'd
    assert journal_lines(log) == written.writes
    release(holder)
    after = SqliteCallLog(path)
    after.start()
    after.close()
    assert_all_in(path, written)
    assert after.journal_path.stat().st_size == 0


def test_a_journaled_write_that_can_never_succeed_is_dropped_alone_not_kept_forever(
    tmp_path: Path, locked: Callable[[Path], sqlite3.Connection]
) -> None:
    path = tmp_path / "calllog.sqlite3"
    log = fast(path)
    log.start()
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON tickets WHEN NEW.call_id = 'bad'"
        " BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    db.commit()
    db.close()
    holder = locked(path)
    written = traffic(log, "a", 5)
    log.ticket_opened(Ticket("12345-bad", "bad", "merge", "市公安局", "merge", "gaj", 1.0, 2.0))
    written += traffic(log, "b", 5)
    wait_for(lambda: log.journal_pending == written.writes + 1, what="the writes journaled")
    release(holder)
    wait_for(lambda: not log.journaling, what="the journal replayed")
    assert_all_in(path, written)
    assert log.failed_writes == 1 and log.journal_path.stat().st_size == 0
    log.close()
