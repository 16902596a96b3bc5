"""The call log on PostgreSQL: SQLite's schema, several controllers on one database, outages journaled.

Against real PostgreSQL servers started by the tests (tests/pg.py): the session's, and for the
outage a private one that the test stops and starts again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from click.testing import CliRunner

from ivr.calllog import SCHEMA_VERSION, open_calllog, shown
from ivr.calllog.postgres import PostgresCallLog
from ivr.calllog.sqlite import SqliteCallLog
from ivr.cli import main
from ivr.report import figures as report
from ivr.report import render
from ivr.routing.routes import load
from tests.pg import PASSWORD, PostgresServer, running_server
from tests.unit.calllog.workload import (
    CALLERS,
    Written,
    assert_all_in,
    query,
    rows,
    traffic,
    wait_for,
)
from tests.unit.report import test_figures as test_report

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def url(pg_server: PostgresServer) -> str:
    return pg_server.database()


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of the test's own, to stop and start (the session's serves the other tests)."""
    with running_server() as server:
        yield server


def fast(url: str, journal: Path) -> PostgresCallLog:
    log = open_calllog(url, journal, lock_timeout=1.0, retry_seconds=0.2)
    assert isinstance(log, PostgresCallLog)
    return log


# -- the schema ------------------------------------------------------------------------------------

SQLITE_TYPES = {"TEXT": {"text"}, "REAL": {"double precision"}, "INTEGER": {"integer", "bigint"}}


def sqlite_columns(path: Path, table: str) -> list[tuple[str, str, bool, str | None]]:
    return [
        (c["name"], c["type"], bool(c["notnull"] or c["pk"]), c["dflt_value"])
        for c in query(path, f"PRAGMA table_info({table})")
    ]


def pg_columns(url: str, table: str) -> list[tuple[str, str, bool, str | None]]:
    found = query(
        url,
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_name = ? ORDER BY ordinal_position",
        (table,),
    )
    return [
        (
            c["column_name"],
            c["data_type"],
            c["is_nullable"] == "NO",
            None if c["column_default"] is None else c["column_default"].removesuffix("::text"),
        )
        for c in found
    ]


def test_a_new_database_has_the_sqlite_schema_column_for_column_and_index_for_index(url: str, tmp_path: Path) -> None:
    sqlite = tmp_path / "calllog.sqlite3"
    assert SqliteCallLog(sqlite).migrate() == open_calllog(url).migrate() == SCHEMA_VERSION
    tables = ("calls", "call_steps", "tickets", "callbacks", "callback_calls")
    for table in tables:
        lite, pg = sqlite_columns(sqlite, table), pg_columns(url, table)
        assert [c[0] for c in pg] == [c[0] for c in lite], table
        for (name, lite_type, lite_notnull, lite_default), (_, pg_type, pg_notnull, pg_default) in zip(
            lite, pg, strict=False
        ):
            assert pg_type in SQLITE_TYPES[lite_type], (table, name, pg_type)
            assert pg_notnull == lite_notnull, (table, name)
            if (table, name) != ("callbacks", "id"):  # an identity column: no default expression
                assert pg_default == lite_default, (table, name)
    lite_indexes = {
        r["name"]: r["sql"]
        for r in query(sqlite, "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    }
    pg_indexes = {
        r["indexname"]: r["indexdef"]
        for r in query(
            url,
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'",
        )
    }
    assert set(pg_indexes) == set(lite_indexes)
    for name, sql in lite_indexes.items():
        assert ("UNIQUE" in sql) == ("UNIQUE" in pg_indexes[name]), name
        assert ("WHERE" in sql) == ("WHERE" in pg_indexes[name]), name
    versions = query(url, "SELECT version FROM schema_version ORDER BY version")
    assert [r["version"] for r in versions] == list(range(1, SCHEMA_VERSION + 1))


MIGRATE = """
import os, sys, time
from ivr.calllog import open_calllog
url, go = sys.argv[1:3]
while not os.path.exists(go):
    time.sleep(0.002)
print(open_calllog(url).migrate(), flush=True)
"""


def test_controllers_starting_at_once_on_an_empty_database_create_the_schema_once(url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url, str(go)],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    try:
        time.sleep(1.0)  # every process imported and waiting: they all start together
        go.touch()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    assert [out.strip().splitlines()[-1] for out, _ in outputs] == [str(SCHEMA_VERSION)] * 4  # (after its log lines)
    versions = query(url, "SELECT version FROM schema_version ORDER BY version")
    assert [r["version"] for r in versions] == list(range(1, SCHEMA_VERSION + 1))
    upgraded = [out for out, _ in outputs if "calllog_schema_upgraded" in out]
    assert len(upgraded) == 1, outputs  # one did the work, the others found it done


# -- several controllers on one database -----------------------------------------------------------------

WRITER = """
import json, os, sys, time
from ivr.calllog import open_calllog
from tests.unit.calllog.workload import traffic
url, journal, prefix, start, go = sys.argv[1:6]
log = open_calllog(url, journal, lock_timeout=1.0, retry_seconds=0.2)
log.start()
while not os.path.exists(go):
    time.sleep(0.002)
for k in range(10):
    traffic(log, f"{prefix}{k}", 30, start=float(start) + k * 100)
    time.sleep(0.01)
log.close()
print("counters", json.dumps({"written": log.written, "journaled": log.journaled_total, "lost": log.lost_total,
                  "dropped": log.failed_writes, "pending": log.journal_pending}), flush=True)
"""


def test_two_controllers_writing_one_database_at_once_lose_nothing_and_keep_one_open_entry_per_caller(
    url: str, tmp_path: Path
) -> None:
    open_calllog(url).migrate()
    go = tmp_path / "go"
    nodes = {"a": 1_790_000_000.0, "b": 1_790_000_000.5}  # their calls interleave in time
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(tmp_path / f"{name}.journal"), name, str(start), str(go)],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, start in nodes.items()
    }
    try:
        time.sleep(1.0)
        go.touch()
        outputs = {name: p.communicate(timeout=120) for name, p in procs.items()}
    finally:
        for p in procs.values():
            p.kill() if p.poll() is None else None
    assert [p.returncode for p in procs.values()] == [0, 0], {n: err[-2000:] for n, (_, err) in outputs.items()}
    expected = Written()
    unused = SqliteCallLog(tmp_path / "never-started.sqlite3")  # only queues: what the nodes wrote
    for name, start in nodes.items():
        for k in range(10):
            expected += traffic(unused, f"{name}{k}", 30, start=start + k * 100)
    counters = {name: json.loads(out.rsplit("counters ", 1)[1]) for name, (out, _) in outputs.items()}
    for c in counters.values():
        assert (c["lost"], c["dropped"], c["pending"]) == (0, 0, 0), counters
    assert sum(c["written"] for c in counters.values()) == expected.writes

    assert sorted(r["call_id"] for r in query(url, "SELECT call_id FROM calls")) == sorted(expected.calls)
    assert {r["call_id"] for r in query(url, "SELECT call_id FROM calls WHERE outcome = 'connected'")} == set(
        expected.calls
    )
    assert rows(url, "call_steps") == 2 * len(expected.calls)
    tickets = query(url, "SELECT ticket_id, satisfaction, status FROM tickets")
    assert sorted(t["ticket_id"] for t in tickets) == sorted(expected.tickets)
    assert {t["ticket_id"]: t["satisfaction"] for t in tickets} == expected.surveys
    assert {t["ticket_id"] for t in tickets if t["status"] == "closed"} == set(expected.closed)
    entries = query(url, "SELECT * FROM callbacks")
    assert sorted(e["caller_number"] for e in entries) == sorted(CALLERS)  # one entry per caller, both nodes'
    for e in entries:
        ids = expected.missed[e["caller_number"]]
        linked = query(url, "SELECT call_id FROM callback_calls WHERE callback_id = ?", (e["id"],))
        assert sorted(c["call_id"] for c in linked) == sorted(ids) and e["missed_count"] == len(ids)
        assert e["status"] == "open"


# -- outages: the journal on PostgreSQL --------------------------------------------------------------------


def test_a_server_stopped_mid_traffic_journals_the_writes_and_they_land_exactly_once_when_it_is_back(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    url = own_server.database()
    log = fast(url, tmp_path / "calllog.journal")
    bursts: list[Written] = []
    done = threading.Event()

    def calls() -> None:  # a steady trickle of calls, as a controller's would be
        while not done.is_set() and len(bursts) < 400:
            bursts.append(traffic(log, f"t{len(bursts):03d}-", 3, start=1_790_000_000.0 + len(bursts) * 10))
            time.sleep(0.02)

    with structlog.testing.capture_logs() as events:
        log.start()
        writer = threading.Thread(target=calls)
        writer.start()
        try:
            wait_for(lambda: log.written > 60, what="calls committed before the outage")
            own_server.stop("immediate")  # as if the server crashed, mid-batch
            wait_for(lambda: log.journaling and log.journal_pending > 60, what="writes journaled during the outage")
            assert log.failed_batches >= 1
            time.sleep(0.5)
            own_server.start()
            wait_for(lambda: log.replayed_total > 0, what="the writer back on the server")
        finally:
            done.set()
            writer.join(30)
        written = Written()
        for burst in bursts:
            written += burst
        wait_for(
            lambda: not log.journaling and log.written == written.writes,
            what="the journal replayed and everything committed",
        )
        log.close()

    assert_all_in(url, written)
    assert log.journal_path.stat().st_size == 0 and log.journal_pending == 0
    assert (log.lost_total, log.failed_writes) == (0, 0)
    assert log.journaled_total == log.replayed_total > 0
    started = [e for e in events if e["event"] == "calllog_journaling_started"]
    assert len(started) == 1, started
    assert [e["event"] for e in events].count("calllog_journal_replayed") == 1
    assert PASSWORD not in repr(events)  # the URL carries it; no log line does


def test_a_read_only_database_journals_the_writes_and_they_land_when_it_is_writable_again(
    url: str, tmp_path: Path
) -> None:
    log = fast(url, tmp_path / "calllog.journal")
    log.start()
    written = traffic(log, "before", 10, start=1_790_000_000.0)
    wait_for(lambda: log.written == written.writes, what="the first calls committed")
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as admin:
        # A standby, or an operator freezing the database: every transaction is read-only.
        admin.execute(f"ALTER DATABASE {dbname} SET default_transaction_read_only = on")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid != pg_backend_pid()"
        )
    with structlog.testing.capture_logs() as events:
        during = traffic(log, "during", 20, start=1_790_100_000.0)
        wait_for(lambda: log.journal_pending == during.writes, what="the writes journaled")
        # The first failure is the cut connection; the reconnected writer then meets the read-only database.
        wait_for(lambda: any("read-only" in e.get("reason", "") for e in events), what="a read-only refusal")
        assert log.journaling and rows(url, "calls") == 10
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SET default_transaction_read_only = off")
            admin.execute(f"ALTER DATABASE {dbname} RESET default_transaction_read_only")
        wait_for(lambda: not log.journaling, what="the journal replayed")
    log.close()
    written += during
    assert_all_in(url, written)
    assert (log.lost_total, log.failed_writes) == (0, 0)


@pytest.mark.parametrize(
    ("error", "storage", "busy"),
    [
        (psycopg.OperationalError("connection failed: Connection refused"), True, False),  # no server
        (psycopg.InterfaceError("the connection is closed"), True, False),
        (psycopg.errors.AdminShutdown("terminating connection"), True, False),  # stopped mid-batch
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True, False),
        (psycopg.errors.ReadOnlySqlTransaction("read-only transaction"), True, False),
        (psycopg.errors.DiskFull("could not extend file"), True, False),
        (psycopg.errors.TooManyConnections("too many clients"), True, False),
        (psycopg.errors.IoError("could not read block"), True, False),
        (psycopg.errors.DeadlockDetected("deadlock detected"), True, True),  # another controller's batch
        (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), True, True),
        (psycopg.errors.UniqueViolation("duplicate key"), False, False),  # the write itself: dropped alone
        (psycopg.errors.CheckViolation("violates check constraint"), False, False),
        (psycopg.errors.UndefinedTable("relation does not exist"), False, False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_which_server_errors_journal_the_batch_and_which_drop_one_write(
    error: Exception, storage: bool, busy: bool
) -> None:
    log = PostgresCallLog("postgresql://u:secret@127.0.0.1/db", "unused.journal")
    assert (log._storage(error), log._busy(error)) == (storage, busy)


def test_the_url_is_shown_without_its_password() -> None:
    assert shown("postgresql://hotline:s3cret@db.example:5433/calllog?sslmode=require") == (
        "postgresql://hotline@db.example:5433/calllog"
    )
    assert shown("postgres://hotline@/calllog?host=/run/postgresql&port=5432&password=s3cret") == (
        "postgresql://hotline@/calllog?host=/run/postgresql&port=5432"
    )
    assert "s3cret" not in repr(open_calllog("postgresql://hotline:s3cret@127.0.0.1/calllog"))


def test_cli_without_a_reachable_server_exits_2_and_does_not_show_the_password() -> None:
    dead = f"postgresql://hotline:{PASSWORD}@127.0.0.1:1/calllog"  # nothing listens on port 1
    result = CliRunner().invoke(main, ["tickets", "--calllog", dead])
    assert result.exit_code == 2
    assert "cannot open the call log postgresql://hotline@127.0.0.1:1/calllog" in result.output
    assert PASSWORD not in result.output


# -- the report ---------------------------------------------------------------------------------------------


def test_the_report_over_a_database_gives_the_figures_it_gives_over_a_file_with_the_same_calls(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_report's known log, written once through each backend, makes the same report."""
    sqlite = tmp_path / "calllog.sqlite3"
    test_report.write_known_log(sqlite)
    opened: list[Any] = []

    def on_postgres(path: Path) -> PostgresCallLog:  # the known log's writer, pointed at the database
        log = fast(url, tmp_path / "calllog.journal")
        opened.append(log)
        return log

    monkeypatch.setattr(test_report, "SqliteCallLog", on_postgres)
    test_report.write_known_log(tmp_path / "unused")
    assert opened, "the known log was written through the PostgreSQL log"
    table = load(test_report.ROUTES_YAML)
    d1, d2, as_of = test_report.D1, test_report.D2, test_report.AS_OF
    from_file = report.build(report.load(SqliteCallLog(sqlite), d1, d2), d1, d2, as_of=as_of, table=table)
    from_db = report.build(report.load(open_calllog(url), d1, d2), d1, d2, as_of=as_of, table=table)
    assert from_db == from_file
    assert from_file.centre.calls > 0 and from_file.units  # a report with figures, not two empty ones
    assert render.render_json(from_db) == render.render_json(from_file)

    runner = CliRunner()
    args = ["report", "--from", str(d1), "--to", str(d2), "--format", "json", "--routes", str(test_report.ROUTES_YAML)]
    by_url, by_file = (runner.invoke(main, [*args, "--calllog", target]) for target in (url, str(sqlite)))
    assert by_url.exit_code == by_file.exit_code == 0, by_url.output
    drop = ("as_of", "generated_at")  # the CLI reports as of now: the two runs differ there only
    assert {k: v for k, v in json.loads(by_url.stdout).items() if k not in drop} == {
        k: v for k, v in json.loads(by_file.stdout).items() if k not in drop
    }


def test_no_server_is_left_running_by_the_harness() -> None:
    server = PostgresServer()
    server.start()
    assert server.running
    server.destroy()
    assert not server.running and not server.dir.exists()
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(server.dir) not in processes
