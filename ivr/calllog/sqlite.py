"""The default call log: one SQLite file in WAL mode, written off the event loop.

Writes go through a queue to one writer thread, so a slow disk never stalls a call's
coroutine (sqlite3 calls block). The thread commits every batch at once — records reach disk
within milliseconds of the call event, which is what "no loss on an unclean stop" needs.
A call is written when it arrives and again when it ends; rows still `in_progress` when the
log opens belong to a controller that died, and are marked `interrupted` rather than lost.

The same file and the same writer keep the tickets (限时办结, ivr.tickets) and the missed-call
callback list (漏接回拨). A queued write is a small command object applied to the writer's
connection (`Write`), so every kind of write shares the batching, the retries and the order
of arrival: a ticket's survey can never overtake the ticket. One write that can never succeed
(a constraint, a schema mismatch) is dropped and logged on its own; it does not take the rest
of its batch, or the writer thread, with it.

The callback list holds full caller numbers (an operator has to dial them), so the file is
created readable by its owner only (0600) and tightened to that when the log starts.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from ivr.calllog.records import CallRecord
from ivr.tickets import Ticket

log = structlog.get_logger("ivr.calllog")

SCHEMA_VERSION = 2

# Version 1: calls and their steps. Kept as it was: it is also how an old file looks.
_V1 = (
    """CREATE TABLE IF NOT EXISTS calls (
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
)""",
    "CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at)",
    "CREATE INDEX IF NOT EXISTS calls_unit ON calls (unit, started_at)",
    """CREATE TABLE IF NOT EXISTS call_steps (
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    name TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (call_id, seq)
)""",
)

# Version 2: the call's ticket and survey; tickets; the callback list.
_V2_CALL_COLUMNS = (("ticket_id", "TEXT NOT NULL DEFAULT ''"), ("satisfaction", "INTEGER"))
_V2 = (
    """CREATE TABLE IF NOT EXISTS tickets (
    ticket_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    unit TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL DEFAULT '',
    route_id TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    deadline_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    closed_at REAL,
    satisfaction INTEGER CHECK (satisfaction IN (1, 2, 3)),
    note TEXT NOT NULL DEFAULT ''
)""",
    "CREATE INDEX IF NOT EXISTS tickets_status_deadline ON tickets (status, deadline_at)",
    "CREATE INDEX IF NOT EXISTS tickets_call ON tickets (call_id)",
    """CREATE TABLE IF NOT EXISTS callbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    caller_hash TEXT NOT NULL,
    caller_masked TEXT NOT NULL,
    caller_number TEXT NOT NULL,
    first_missed_at REAL NOT NULL,
    last_missed_at REAL NOT NULL,
    missed_count INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_at REAL,
    outcome TEXT NOT NULL DEFAULT '',
    done_at REAL
)""",
    # The deduplication itself: at most one open entry per caller, enforced by the file.
    "CREATE UNIQUE INDEX IF NOT EXISTS callbacks_open_caller ON callbacks (caller_hash) WHERE status = 'open'",
    "CREATE INDEX IF NOT EXISTS callbacks_status ON callbacks (status, first_missed_at)",
    """CREATE TABLE IF NOT EXISTS callback_calls (
    callback_id INTEGER NOT NULL REFERENCES callbacks (id),
    call_id TEXT NOT NULL UNIQUE,
    reason TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS callback_calls_callback ON callback_calls (callback_id)",
)

CALLBACK_OUTCOMES = ("reached", "no_answer", "busy", "wrong_number")
"""What a callback attempt can end in (the CLI offers these; the log takes any short word)."""

SATISFACTION = {1: "satisfied", 2: "basically satisfied", 3: "dissatisfied"}

_STOP = None  # queue sentinel: flush and stop


class Write(Protocol):
    """One queued write, applied by the writer thread inside its batch's transaction."""

    def apply(self, db: sqlite3.Connection) -> None: ...


@dataclass(frozen=True)
class _CallWrite:
    """The call's columns and (on the final write) its numbered steps."""

    cols: dict[str, Any]
    steps: list[tuple[Any, ...]]

    def apply(self, db: sqlite3.Connection) -> None:
        cols = self.cols
        names = ", ".join(cols)
        marks = ", ".join(f":{k}" for k in cols)
        updates = ", ".join(f"{k} = excluded.{k}" for k in cols if k != "call_id")
        db.execute(f"INSERT INTO calls ({names}) VALUES ({marks})"
                   f" ON CONFLICT (call_id) DO UPDATE SET {updates}", cols)
        if self.steps:
            db.executemany("INSERT OR REPLACE INTO call_steps (call_id, seq, at, name, detail)"
                           " VALUES (?, ?, ?, ?, ?)", [(cols["call_id"], *s) for s in self.steps])


@dataclass(frozen=True)
class _TicketOpened:
    ticket: Ticket

    def apply(self, db: sqlite3.Connection) -> None:
        t = self.ticket
        cur = db.execute(
            "INSERT INTO tickets (ticket_id, call_id, kind, unit, mode, route_id, created_at, deadline_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ticket_id) DO NOTHING",
            (t.ticket_id, t.call_id, t.kind, t.unit, t.mode, t.route_id, t.created_at, t.deadline_at, t.status))
        if cur.rowcount == 0:
            (owner,) = db.execute("SELECT call_id FROM tickets WHERE ticket_id = ?", (t.ticket_id,)).fetchone()
            if owner != t.call_id:  # the same ticket written twice is fine; another call's is not
                log.error("ticket_id_conflict", ticket_id=t.ticket_id, call_id=t.call_id, kept_call_id=owner)


@dataclass(frozen=True)
class _TicketSurvey:
    ticket_id: str
    score: int

    def apply(self, db: sqlite3.Connection) -> None:
        cur = db.execute("UPDATE tickets SET satisfaction = ? WHERE ticket_id = ?", (self.score, self.ticket_id))
        if cur.rowcount == 0:
            log.warning("ticket_unknown", ticket_id=self.ticket_id, write="survey")


@dataclass(frozen=True)
class _TicketClosed:
    ticket_id: str
    at: float
    note: str

    def apply(self, db: sqlite3.Connection) -> None:
        cur = db.execute("UPDATE tickets SET status = 'closed', closed_at = ?, note = ?"
                         " WHERE ticket_id = ? AND status = 'open'", (self.at, self.note, self.ticket_id))
        if cur.rowcount == 0:
            log.warning("ticket_not_open", ticket_id=self.ticket_id, write="close")


@dataclass(frozen=True)
class _MissedCall:
    call_id: str
    caller_number: str  # kept in full: the operator has to dial it
    caller_hash: str
    caller_masked: str
    reason: str
    at: float

    def apply(self, db: sqlite3.Connection) -> None:
        if db.execute("SELECT 1 FROM callback_calls WHERE call_id = ?", (self.call_id,)).fetchone():
            return  # this call is already on the list (a repeated write)
        # UPDATE first: it takes the write lock, so no other writer can close or add the
        # caller's open entry between our look and our insert.
        cur = db.execute(
            "UPDATE callbacks SET missed_count = missed_count + 1,"
            " first_missed_at = MIN(first_missed_at, :at), last_missed_at = MAX(last_missed_at, :at)"
            " WHERE caller_hash = :hash AND status = 'open'", {"at": self.at, "hash": self.caller_hash})
        if cur.rowcount:
            row = db.execute("SELECT id, missed_count FROM callbacks WHERE caller_hash = ? AND status = 'open'",
                             (self.caller_hash,)).fetchone()
            callback_id, missed = int(row[0]), int(row[1])
        else:
            cur = db.execute(
                "INSERT INTO callbacks (caller_hash, caller_masked, caller_number, first_missed_at, last_missed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.caller_hash, self.caller_masked, self.caller_number, self.at, self.at))
            callback_id, missed = int(cur.lastrowid or 0), 1
        db.execute("INSERT INTO callback_calls (callback_id, call_id, reason, at) VALUES (?, ?, ?, ?)",
                   (callback_id, self.call_id, self.reason, self.at))
        log.info("callback_listed", callback_id=callback_id, call_id=self.call_id, reason=self.reason,
                 missed_count=missed)


def _busy(exc: BaseException) -> bool:
    """Another connection holds the lock: worth retrying (anything else will fail again)."""
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", 0) & 0xFF in (
        sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _describe(exc: BaseException) -> str:
    # SQLite's messages name tables and constraints, never bound values; other exceptions
    # might carry a value (a caller number), so only their type is logged.
    return str(exc) if isinstance(exc, sqlite3.Error) else type(exc).__name__


class SqliteCallLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._queue: queue.Queue[Write | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.written = 0  # writes committed (calls, tickets, missed calls, ...)
        self.failed_batches = 0  # batches lost because the file stayed locked
        self.failed_writes = 0  # single writes dropped because they can never succeed

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> int:
        """Open (creating if needed) and start the writer; returns how many calls were interrupted."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._make_private()
        db = self._connect()
        try:
            self._migrate(db)
            cur = db.execute(
                "UPDATE calls SET outcome = 'interrupted', ended_at = COALESCE(ended_at, ?)"
                " WHERE outcome = 'in_progress'", (time.time(),))
            db.commit()
            interrupted = cur.rowcount
        finally:
            db.close()
        self._thread = threading.Thread(target=self._run, name="calllog-writer", daemon=True)
        self._thread.start()
        return interrupted

    def migrate(self) -> int:
        """Create or upgrade the tables without starting the writer (for the CLI); the version.

        Safe while a controller writes to the same file: the upgrade is one transaction that
        only adds tables, indexes and columns. Does not touch calls left in progress.
        """
        db = self._connect()
        try:
            return self._migrate(db)
        finally:
            db.close()

    def close(self, timeout: float = 10.0) -> None:
        """Flush everything queued, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    # -- writes (any thread; never block) ---------------------------------------------------
    def call_started(self, record: CallRecord) -> None:
        self._queue.put(_CallWrite(record.columns(), []))

    def call_finished(self, record: CallRecord) -> None:
        steps = [(i, s.at, s.name, json.dumps(s.detail, ensure_ascii=False, default=str))
                 for i, s in enumerate(record.steps)]
        self._queue.put(_CallWrite(record.columns(), steps))

    def ticket_opened(self, ticket: Ticket) -> None:
        """Store a new ticket. An id already taken by another call is refused and logged."""
        self._queue.put(_TicketOpened(ticket))

    def ticket_survey(self, ticket_id: str, score: int) -> None:
        """The citizen's rating: 1 satisfied, 2 basically satisfied, 3 dissatisfied."""
        if score not in SATISFACTION:
            raise ValueError(f"satisfaction must be 1, 2 or 3, not {score!r}")
        self._queue.put(_TicketSurvey(ticket_id, score))

    def ticket_closed(self, ticket_id: str, at: float, note: str = "") -> None:
        """办结: the ticket is done. Closing a closed ticket keeps the first close (and logs)."""
        self._queue.put(_TicketClosed(ticket_id, at, note))

    def missed_call(self, call_id: str, caller_number: str, caller_hash: str, caller_masked: str,
                    reason: str, at: float) -> None:
        """A citizen hung up before anyone took the call (or left a message): call them back.

        One open entry per caller (`caller_hash`): a repeat caller's entry counts the missed
        calls and links each call_id, so operators call a person back once, not once per try.
        A caller without a number (withheld, anonymous) cannot be called back and is skipped.
        `reason` says where the call was lost, e.g. in_menu, during_transfer, message:...
        """
        if not any(ch.isdigit() for ch in caller_number):
            log.info("callback_not_possible", call_id=call_id, reason=reason, why="no caller number")
            return
        if not caller_hash:
            # Without the hash, every such caller would merge into one entry.
            log.error("callback_not_listed", call_id=call_id, reason=reason, why="no caller hash")
            return
        self._queue.put(_MissedCall(call_id, caller_number.strip(), caller_hash, caller_masked, reason, at))

    def callback_attempt(self, callback_id: int, outcome: str, at: float, done: bool) -> bool:
        """An operator tried to call back: count the attempt; `done` closes the entry.

        False if there is no entry `callback_id`. Unlike the writes above this one is
        synchronous — the operator must know it was recorded, and the CLI that calls it runs
        no writer — so from the event loop call it via asyncio.to_thread. done=False leaves
        the status as it is (a done entry is not reopened: the caller may have a new one).
        """
        if not outcome:
            raise ValueError("a callback attempt needs an outcome")
        db = self._connect()
        try:
            with db:
                cur = db.execute(
                    "UPDATE callbacks SET attempts = attempts + 1, last_attempt_at = :at, outcome = :outcome,"
                    " status = CASE WHEN :done THEN 'done' ELSE status END,"
                    " done_at = CASE WHEN :done AND status = 'open' THEN :at ELSE done_at END"
                    " WHERE id = :id", {"at": at, "outcome": outcome, "done": int(done), "id": callback_id})
            found = cur.rowcount == 1
        finally:
            db.close()
        log.info("callback_attempt", callback_id=callback_id, outcome=outcome, done=done, found=found)
        return found

    # -- reads (CLI, tests, reports) --------------------------------------------------------
    def calls(self, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        sql = "SELECT * FROM calls" + (f" WHERE {where}" if where else "") + " ORDER BY started_at"
        return self._query(sql, params)

    def steps(self, call_id: str) -> list[dict[str, Any]]:
        rows = self._query("SELECT seq, at, name, detail FROM call_steps WHERE call_id = ? ORDER BY seq",
                           (call_id,))
        return [{**r, "detail": json.loads(r["detail"])} for r in rows]

    def tickets(self, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        sql = "SELECT * FROM tickets" + (f" WHERE {where}" if where else "") + " ORDER BY created_at, ticket_id"
        return self._query(sql, params)

    def overdue(self, now: float) -> list[dict[str, Any]]:
        """Open tickets whose deadline (Unix seconds) is before `now`, most overdue first."""
        return self._query("SELECT * FROM tickets WHERE status = 'open' AND deadline_at < ?"
                           " ORDER BY deadline_at, ticket_id", (now,))

    def callbacks(self, status: str | None = "open") -> list[dict[str, Any]]:
        """The callback list, longest waiting first; status "open", "done" or None for all.

        Rows carry the full `caller_number`: show `caller_masked` unless a person is about to dial.
        """
        where, params = ("WHERE status = ?", (status,)) if status is not None else ("", ())
        return self._query(f"SELECT * FROM callbacks {where} ORDER BY first_missed_at, id", params)

    def callback_calls(self, callback_id: int) -> list[dict[str, Any]]:
        """The missed calls behind one callback entry, oldest first."""
        return self._query("SELECT call_id, reason, at FROM callback_calls WHERE callback_id = ? ORDER BY at, call_id",
                           (callback_id,))

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        db = self._connect()
        try:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(sql, params)]
        finally:
            db.close()

    # -- the file -----------------------------------------------------------------------------
    def _make_private(self) -> None:
        """Create the file 0600, or tighten an older one (and its WAL files) to 0600."""
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
                    log.info("calllog_permissions_tightened", file=path.name,
                             was=oct(stat.S_IMODE(path.stat().st_mode)))
                    path.chmod(0o600)
        except OSError as exc:  # e.g. not the file's owner: warn, but keep the hotline answering
            log.warning("calllog_permissions", error=str(exc))

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            # sqlite3 would create it with the umask's permissions (usually world-readable).
            try:
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            except FileNotFoundError:
                pass  # no such directory: let sqlite3 report it as before
        db = sqlite3.connect(self.path, timeout=5.0)
        db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit survives a process crash (kill -9); only an OS crash
        # can lose the last transactions, which is the usual trade for a write-heavy log.
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def _migrate(self, db: sqlite3.Connection) -> int:
        """Bring the file to SCHEMA_VERSION, one step per version, each step all-or-nothing.

        The version is PRAGMA user_version (0: a new file). Re-read under the write lock so
        two processes opening the same old file upgrade it once. A file from newer code is
        left as it is (its extra tables and columns do not disturb this code).
        """
        steps: dict[int, Callable[[sqlite3.Connection], None]] = {1: _to_v1, 2: _to_v2}
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                log.warning("calllog_schema_newer", version=version, expected=SCHEMA_VERSION)
            for target in range(version + 1, SCHEMA_VERSION + 1):
                steps[target](db)
                db.execute(f"PRAGMA user_version = {target}")
            db.commit()
        except BaseException:
            db.rollback()
            raise
        if version < SCHEMA_VERSION:
            log.info("calllog_schema_upgraded", was=version, now=SCHEMA_VERSION)
        return max(version, SCHEMA_VERSION)

    # -- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        db = self._connect()
        try:
            stop = False
            while not stop:
                items = [self._queue.get()]
                while len(items) < 500:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = _STOP in items
                batch = [item for item in items if item is not None]
                if batch:
                    self._write(db, batch)
        finally:
            db.close()

    def _write(self, db: sqlite3.Connection, batch: list[Write]) -> None:
        error = self._commit(db, batch)
        if error is None:
            self.written += len(batch)
            return
        if _busy(error):
            self.failed_batches += 1
            log.error("calllog_write_failed", records=len(batch))
            return
        # Something in the batch can never be written: write one at a time so it loses only itself.
        for write in batch:
            error = self._commit(db, [write])
            if error is None:
                self.written += 1
            else:
                self.failed_writes += 1
                log.error("calllog_write_dropped", write=type(write).__name__.lstrip("_"), error=_describe(error))

    def _commit(self, db: sqlite3.Connection, writes: list[Write]) -> BaseException | None:
        """Apply `writes` in one transaction, retrying while the file is locked; the error, if any."""
        for attempt in range(5):
            try:
                with db:
                    for write in writes:
                        write.apply(db)
                return None
            except Exception as exc:  # the writer thread must outlive any one bad write
                if not _busy(exc) or attempt == 4:
                    return exc
                log.warning("calllog_write_retry", error=str(exc), attempt=attempt + 1, records=len(writes))
                time.sleep(0.2 * (attempt + 1))
        return None  # not reached


def _to_v1(db: sqlite3.Connection) -> None:
    for statement in _V1:
        db.execute(statement)


def _to_v2(db: sqlite3.Connection) -> None:
    present = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
    for name, decl in _V2_CALL_COLUMNS:
        if name not in present:  # a file downgraded by older code may already have them
            db.execute(f"ALTER TABLE calls ADD COLUMN {name} {decl}")
    for statement in _V2:
        db.execute(statement)
