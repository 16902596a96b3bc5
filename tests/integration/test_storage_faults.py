"""A locked call log does not stop the hotline nor lose a record: real calls, journaled, then replayed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lab.citizen import place_call
from tests.integration.conftest import DEPARTMENTS_PORT, Controller, Phone, until

pytestmark = pytest.mark.integration

CALLS = 6


def test_calls_route_while_the_call_log_is_locked_and_every_record_lands_once_it_is_free(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller()
    journal = Path(f"{controller.calllog.path}.journal")  # the default: beside the call log

    holder = sqlite3.connect(controller.calllog.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # e.g. a backup or a stuck report holding the write lock
    try:
        with ThreadPoolExecutor(3) as pool:
            runs = [
                pool.submit(place_call, "12345", "1", caller=f"1390000{n:04d}", local_port=5071 + n, talk_ms=15000)
                for n in range(CALLS)
            ]
            assert all(r.result().succeeded for r in runs), [r.result().stderr for r in runs]
        assert [uri.split("@")[0] for uri in department.invites()] == ["sip:3372000"] * CALLS
        until(lambda: controller.saw("calllog_journaling_started"), timeout=15, what="the log to journal")
        until(
            lambda: journal.exists() and journal.read_bytes().count(b'"kind":"call"') >= 2 * CALLS,
            timeout=20,
            what="every call's writes in the journal",
        )
        assert controller.calllog.calls() == []  # readable while locked: the database has none of them
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    rows = controller.finished_calls(CALLS, timeout=20)
    assert len(rows) == len(controller.calllog.calls()) == CALLS
    assert {(r["unit"], r["dial_status"], r["outcome"]) for r in rows} == {("市公安局", "ANSWER", "connected")}
    assert sorted(r["caller_masked"] for r in rows) == sorted(f"139****{n:04d}" for n in range(CALLS))
    for row in rows:
        steps = [s["name"] for s in controller.calllog.steps(row["call_id"])]
        assert steps[:2] == ["answered", "menu"] and steps[-1] == "ended"
    tickets = controller.calllog.tickets()
    assert sorted(t["call_id"] for t in tickets) == sorted(r["call_id"] for r in rows)
    until(lambda: journal.stat().st_size == 0, timeout=10, what="the journal emptied")
    assert controller.saw("calllog_journal_replayed")
    assert not controller.saw("calllog_records_lost")
