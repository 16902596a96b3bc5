"""Reading the call log: what a read gives back, and how a database that cannot be read says so.

The reads' results are specified with the writes that produce them (test_writer, test_callbacks,
test_retention); here, the contract at the boundary: a driver's exception never leaves ivr.calllog.
A read fails with StorageUnavailable when the database cannot be reached or opened, CallLogError
otherwise, with a message naming the database (never its password) and the driver's exception as
the cause.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from ivr.calllog import CallLog, open_calllog
from ivr.calllog.records import CallRecord
from ivr.errors import CallLogError, HotlineError, StorageUnavailable
from tests.pg import PASSWORD


def test_reads_return_what_was_written(target: str, tmp_path: Path) -> None:
    log = open_calllog(target, tmp_path / "j")
    log.start()
    rec = CallRecord("c1", "1.1", "12345", "138****5678", "h", "v1", started_at=1000.0, outcome="connected")
    rec.step("dial", leg="department", status="ANSWER")
    log.call_finished(rec)
    log.close()
    assert [c["call_id"] for c in log.calls("started_at >= ?", (999.0,))] == ["c1"]
    assert log.calls("started_at >= ?", (1001.0,)) == []
    assert [(s["name"], s["detail"]["status"]) for s in log.steps("c1")] == [("dial", "ANSWER")]
    assert [s["call_id"] for s in log.report_steps(0.0, 2000.0, ("dial",))] == ["c1"]
    assert log.tickets() == [] and log.overdue(2000.0) == [] and log.last_ticket_id("X") is None


def test_a_file_that_is_not_a_call_log_fails_as_storage_with_the_driver_error_as_cause(tmp_path: Path) -> None:
    path = tmp_path / "calllog.sqlite3"
    path.write_bytes(b"this is not an SQLite database, " * 64)
    log: CallLog = open_calllog(path)
    with pytest.raises(StorageUnavailable, match=f"cannot read the call log {path}: file is not a database") as e:
        log.calls()
    assert isinstance(e.value.__cause__, sqlite3.DatabaseError)


def test_a_directory_that_does_not_exist_cannot_be_opened(tmp_path: Path) -> None:
    log = open_calllog(tmp_path / "no" / "such" / "calllog.sqlite3")
    with pytest.raises(StorageUnavailable, match="cannot open the call log .*: unable to open database file"):
        log.migrate()


def test_a_missing_table_is_a_call_log_error_not_storage(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "empty.sqlite3").close()  # a database, but not brought to the schema
    with pytest.raises(CallLogError, match="no such table: tickets") as e:
        open_calllog(tmp_path / "empty.sqlite3").tickets()
    assert not isinstance(e.value, StorageUnavailable) and isinstance(e.value, HotlineError)


def test_a_server_that_does_not_answer_is_unavailable_and_its_password_is_not_shown() -> None:
    log = open_calllog(f"postgresql://hotline:{PASSWORD}@127.0.0.1:1/calllog")  # nothing listens on port 1
    with pytest.raises(StorageUnavailable) as e:
        log.callbacks()
    assert "cannot read the call log postgresql://hotline@127.0.0.1:1/calllog" in str(e.value)
    assert PASSWORD not in str(e.value) and isinstance(e.value.__cause__, psycopg.Error)
