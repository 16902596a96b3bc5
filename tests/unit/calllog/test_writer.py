"""The call log's writer: every call is a row from arrival on, complete at the end, never lost (both backends)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ivr.calllog import CallLog, is_url, open_calllog
from ivr.calllog.records import CallRecord
from ivr.calllog.sqlite import SqliteCallLog


def record(call_id: str = "c1") -> CallRecord:
    return CallRecord(
        call_id=call_id,
        channel_id="1.1",
        entry="12345",
        caller_masked="138****1234",
        caller_hash="h",
        routes_version="v1",
    )


def opened(target: str, tmp_path: Path) -> CallLog:
    return open_calllog(target, tmp_path / "calllog.journal" if is_url(target) else None)


def test_a_call_is_recorded_on_arrival_and_completed_at_the_end(target: str, tmp_path: Path) -> None:
    log = opened(target, tmp_path)
    log.start()
    rec = record()
    log.call_started(rec)
    rec.unit, rec.mode, rec.outcome, rec.talk_seconds = "市公安局", "merge", "connected", 2.5
    rec.step("dial", status="ANSWER")
    rec.ended_at = rec.started_at + 10
    log.call_finished(rec)
    log.close()
    (row,) = log.calls()
    assert (row["unit"], row["mode"], row["outcome"], row["talk_seconds"]) == ("市公安局", "merge", "connected", 2.5)
    assert [s["name"] for s in log.steps("c1")] == ["dial"]
    assert log.steps("c1")[0]["detail"] == {"status": "ANSWER"}


def test_the_log_is_in_wal_mode(tmp_path: Path) -> None:
    log = SqliteCallLog(tmp_path / "log.sqlite3")
    log.start()
    log.close()
    mode = sqlite3.connect(tmp_path / "log.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_calls_left_in_progress_by_a_dead_controller_are_marked_interrupted(target: str, tmp_path: Path) -> None:
    first = opened(target, tmp_path)
    first.start()
    first.call_started(record("dead"))
    first.close()  # as if the process died after the arrival write
    second = opened(target, tmp_path)
    assert second.start() == 1
    second.close()
    (row,) = second.calls()
    assert row["outcome"] == "interrupted" and row["ended_at"] is not None


def test_a_cluster_node_marks_only_its_own_calls_interrupted_the_others_may_be_live(
    target: str, tmp_path: Path
) -> None:
    first = opened(target, tmp_path)
    first.start()
    for call_id, channel in (("mine", "node1-1764061200.12"), ("theirs", "node2-1764061200.7")):
        rec = record(call_id)
        rec.channel_id = channel
        first.call_started(rec)
    first.close()  # node1 died with both calls in the shared log
    restarted = opened(target, tmp_path)
    restarted.channel_prefix = "node1-"
    assert restarted.start() == 1
    restarted.close()
    assert {r["call_id"]: r["outcome"] for r in restarted.calls()} == {"mine": "interrupted", "theirs": "in_progress"}


def test_many_calls_queued_at_once_are_all_written(target: str, tmp_path: Path) -> None:
    log = opened(target, tmp_path)
    log.start()
    for i in range(2000):
        rec = record(f"c{i}")
        log.call_started(rec)
        rec.outcome = "connected"
        log.call_finished(rec)
    log.close()
    assert len(log.calls()) == 2000
    assert {r["outcome"] for r in log.calls()} == {"connected"}
