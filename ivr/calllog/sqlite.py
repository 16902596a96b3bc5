"""The default call log: one SQLite file in WAL mode, written off the event loop, never losing a record.

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

When the database cannot take a batch for a storage reason — still locked after the retries,
read-only, disk full, I/O error, the file or its directory gone, the connection not opening —
the batch goes to the journal (ivr.calllog.journal): JSON lines on a path of its own
(`journal_path`, default `<calllog>.journal`), fsync'd per batch. While the journal holds
anything, every new write is appended behind it, never written directly, so order holds
across the outage. The writer replays the journal at start, every `retry_seconds` and at
close; only when all of it is committed does it empty the journal and write directly again.
Replays are idempotent (call upserts, ticket ON CONFLICT, the survey's plain update, a close
that keeps the first close, callbacks deduplicated by call id), because a kill between the
commit and the emptying replays writes a second time. A journal left by a killed controller
is replayed before that controller's calls in progress are marked interrupted, so a final
write it journaled still wins. If the journal cannot be written either, writes wait in
memory (up to `memory_limit`) and the writer keeps retrying both; past that bound, writes are
counted and logged as lost (`calllog_records_lost`), never dropped silently. The counters and
`journal_pending` are plain attributes for the controller's metrics.

The callback list holds full caller numbers (an operator has to dial them), so the file and
the journal are created readable by their owner only (0600) and the file is tightened to
that when the log starts. Deleted content is zeroed (secure_delete), and `purge` applies the
retention rules (PIPL): full numbers erased once an entry is done or 30 days old, calls and
closed tickets deleted after three years.
"""

from __future__ import annotations

import dataclasses
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
from typing import Any, ClassVar, Protocol

import structlog

from ivr.calllog.journal import Journal
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

KEEP_CALLS_DAYS = 1095
"""Calls and closed tickets are kept three years: the assessment (通报考核) looks back that far."""
KEEP_NUMBERS_DAYS = 30
"""A full caller number is kept at most this long after the caller's last missed call (PIPL)."""

SATISFACTION = {1: "satisfied", 2: "basically satisfied", 3: "dissatisfied"}

_STOP = None  # queue sentinel: flush and stop


class Write(Protocol):
    """One queued write, applied by the writer thread inside its batch's transaction.

    Every kind also round-trips through the journal: `to_json` gives a JSON-able dict that
    `_decode` turns back into an equal write (`kind` names the class there).
    """

    kind: ClassVar[str]

    def apply(self, db: sqlite3.Connection) -> None: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _CallWrite:
    """The call's columns and (on the final write) its numbered steps."""

    cols: dict[str, Any]
    steps: list[tuple[Any, ...]]
    kind: ClassVar[str] = "call"

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

    def to_json(self) -> dict[str, Any]:
        return {"cols": self.cols, "steps": [list(s) for s in self.steps]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _CallWrite:
        return cls(dict(data["cols"]), [tuple(s) for s in data["steps"]])


@dataclass(frozen=True)
class _TicketOpened:
    ticket: Ticket
    kind: ClassVar[str] = "ticket_opened"

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

    def to_json(self) -> dict[str, Any]:
        return {"ticket": dataclasses.asdict(self.ticket)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _TicketOpened:
        return cls(Ticket(**data["ticket"]))


@dataclass(frozen=True)
class _TicketSurvey:
    ticket_id: str
    score: int
    kind: ClassVar[str] = "ticket_survey"

    def apply(self, db: sqlite3.Connection) -> None:
        cur = db.execute("UPDATE tickets SET satisfaction = ? WHERE ticket_id = ?", (self.score, self.ticket_id))
        if cur.rowcount == 0:
            log.warning("ticket_unknown", ticket_id=self.ticket_id, write="survey")

    def to_json(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket_id, "score": self.score}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _TicketSurvey:
        return cls(data["ticket_id"], int(data["score"]))


@dataclass(frozen=True)
class _TicketClosed:
    ticket_id: str
    at: float
    note: str
    kind: ClassVar[str] = "ticket_closed"

    def apply(self, db: sqlite3.Connection) -> None:
        cur = db.execute("UPDATE tickets SET status = 'closed', closed_at = ?, note = ?"
                         " WHERE ticket_id = ? AND status = 'open'", (self.at, self.note, self.ticket_id))
        if cur.rowcount == 0:
            row = db.execute("SELECT closed_at, note FROM tickets WHERE ticket_id = ?", (self.ticket_id,)).fetchone()
            if row is not None and tuple(row) == (self.at, self.note):
                return  # this very close, replayed from the journal
            log.warning("ticket_not_open", ticket_id=self.ticket_id, write="close")

    def to_json(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket_id, "at": self.at, "note": self.note}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _TicketClosed:
        return cls(data["ticket_id"], data["at"], data["note"])


@dataclass(frozen=True)
class _MissedCall:
    call_id: str
    caller_number: str  # kept in full: the operator has to dial it
    caller_hash: str
    caller_masked: str
    reason: str
    at: float
    kind: ClassVar[str] = "missed_call"

    def apply(self, db: sqlite3.Connection) -> None:
        if db.execute("SELECT 1 FROM callback_calls WHERE call_id = ?", (self.call_id,)).fetchone():
            return  # this call is already on the list (a repeated write)
        # UPDATE first: it takes the write lock, so no other writer can close or add the
        # caller's open entry between our look and our insert. A number erased by `purge`
        # (an entry idle for a month) is given back: the caller has just called again.
        cur = db.execute(
            "UPDATE callbacks SET missed_count = missed_count + 1,"
            " first_missed_at = MIN(first_missed_at, :at), last_missed_at = MAX(last_missed_at, :at),"
            " caller_number = CASE WHEN caller_number = '' THEN :number ELSE caller_number END"
            " WHERE caller_hash = :hash AND status = 'open'",
            {"at": self.at, "hash": self.caller_hash, "number": self.caller_number})
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

    def to_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "caller_number": self.caller_number, "caller_hash": self.caller_hash,
                "caller_masked": self.caller_masked, "reason": self.reason, "at": self.at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _MissedCall:
        return cls(data["call_id"], data["caller_number"], data["caller_hash"], data["caller_masked"],
                   data["reason"], data["at"])


_KINDS: dict[str, Callable[[dict[str, Any]], Write]] = {
    cls.kind: cls.from_json for cls in (_CallWrite, _TicketOpened, _TicketSurvey, _TicketClosed, _MissedCall)}


def _encode(write: Write) -> dict[str, Any]:
    return {"kind": write.kind, **write.to_json()}


def _decode(entry: dict[str, Any]) -> Write:
    """A journal line back into its write; KeyError/TypeError/ValueError if it is not one."""
    return _KINDS[entry["kind"]]({k: v for k, v in entry.items() if k != "kind"})


class _MarkInterrupted:
    """Calls a dead controller left in progress become `interrupted` (not journaled: start-up only)."""

    kind: ClassVar[str] = "mark_interrupted"

    def __init__(self) -> None:
        self.count = 0

    def apply(self, db: sqlite3.Connection) -> None:
        cur = db.execute("UPDATE calls SET outcome = 'interrupted', ended_at = COALESCE(ended_at, ?)"
                         " WHERE outcome = 'in_progress'", (time.time(),))
        self.count = cur.rowcount

    def to_json(self) -> dict[str, Any]:
        raise TypeError("marking interrupted calls is never journaled")


class StorageUnavailable(Exception):
    """The writer's connection did not open (directory gone, file unreadable, schema not writable)."""


# What says "the storage, not this write": retry later from the journal.
_STORAGE_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY,
                            sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
                            sqlite3.SQLITE_PERM, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
                            sqlite3.SQLITE_PROTOCOL})


def _busy(exc: BaseException) -> bool:
    """Another connection holds the lock: worth retrying at once (anything else will fail again)."""
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", 0) & 0xFF in (
        sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _storage(exc: BaseException) -> bool:
    """The database cannot take any write now; the write itself is fine (journal it)."""
    if isinstance(exc, (OSError, StorageUnavailable)):
        return True
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", 0) & 0xFF in _STORAGE_CODES


def _describe(exc: BaseException) -> str:
    # SQLite's messages name tables and constraints, never bound values; other exceptions
    # might carry a value (a caller number), so only their type is logged.
    if isinstance(exc, StorageUnavailable) and exc.__cause__ is not None:
        return f"cannot open: {_describe(exc.__cause__)}"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc) if isinstance(exc, sqlite3.Error) else type(exc).__name__


class SqliteCallLog:
    """The call log. Writes never block and never raise for storage reasons; reads are synchronous.

    Counters for the controller's metrics (read from any thread): `written`, `failed_writes`,
    `failed_batches` (batches the database refused for a storage reason: journaled, not lost),
    `journaled_total`, `replayed_total`, `lost_total`, and the `journal_pending` gauge.
    """

    def __init__(self, path: str | Path, journal_path: str | Path | None = None, *, lock_timeout: float = 1.0,
                 retry_seconds: float = 1.5, memory_limit: int = 100_000) -> None:
        self.path = Path(path)
        self.journal_path = Path(journal_path) if journal_path else Path(f"{self.path}.journal")
        self.lock_timeout = lock_timeout  # the writer's wait for another connection's lock, per attempt
        self.retry_seconds = retry_seconds  # how often the writer retries the journal
        self.memory_limit = memory_limit  # writes held in memory when the journal cannot be written
        self._queue: queue.Queue[Write | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._journal = Journal(self.journal_path)
        self.written = 0  # writes committed (calls, tickets, missed calls, ...)
        self.failed_batches = 0  # batches the database refused for a storage reason (journaled)
        self.failed_writes = 0  # single writes dropped because they can never succeed
        self.journaled_total = 0  # writes that went to the journal instead of the database
        self.replayed_total = 0  # journaled writes committed later
        self.lost_total = 0  # writes neither the database, the journal nor memory could keep
        self.interrupted = 0  # calls of a dead controller marked interrupted at the last start
        # Writer state (the writer thread, or start() before it runs).
        self._db: sqlite3.Connection | None = None
        self._backlog = False  # the journal (or memory) holds writes: new ones go behind them
        self._held: list[Write] = []  # writes the journal file could not take, after its own
        self._offset = 0  # bytes at the head of the journal already committed
        self._pending_file = 0  # writes in the journal file not yet committed
        self._interrupt_at: int | None = None  # journal bytes from earlier processes, before marking
        self._next_retry = 0.0
        self._episode_started = 0.0
        self._episode_replayed = 0
        self._memory_episode = False  # "journal unwritable" logged for this episode
        self._last_retry_error = ""

    @property
    def journal_pending(self) -> int:
        """Writes waiting in the journal (file and memory) to be committed."""
        return max(self._pending_file, 0) + len(self._held)

    @property
    def journal_held(self) -> int:
        """Of those, the writes only in memory (the journal file could not take them)."""
        return len(self._held)

    @property
    def journaling(self) -> bool:
        return self._backlog

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> int:
        """Open (creating if needed), replay a journal left behind, start the writer.

        Returns how many calls a dead controller left in progress and were marked interrupted.
        A database that cannot be opened does not stop the start: writes go to the journal
        until it can (and the marking waits for the journal of the dead controller too).
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("calllog_directory_unavailable", error=_describe(exc))
        self._make_private()
        try:
            self._pending_file = self._journal.count()
            self._interrupt_at = self._journal.size()  # writes before this are an earlier process's
        except OSError as exc:
            log.error("calllog_journal_unreadable", journal=str(self.journal_path), error=_describe(exc))
            self._pending_file, self._interrupt_at = 0, 0
        self._offset = 0
        self._backlog = True  # until the earlier journal is in and the dead calls are marked
        self._episode_started, self._episode_replayed = time.monotonic(), 0
        self.interrupted = 0
        found = self._pending_file
        try:
            error = self._replay()
        finally:
            self._drop_connection()  # the writer thread opens its own
        if error is not None:
            log.warning("calllog_journaling_started", reason=_describe(error), journal=str(self.journal_path),
                        pending=self.journal_pending, at="start")
        elif found:
            log.info("calllog_journal_found", records=found)
        self._next_retry = time.monotonic() + self.retry_seconds
        self._thread = threading.Thread(target=self._run, name="calllog-writer", daemon=True)
        self._thread.start()
        return self.interrupted

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
        """Flush everything queued — to the database, else to the journal on disk — and stop."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("calllog_close_timeout", seconds=timeout, pending=self.journal_pending)
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

    # -- retention (PIPL) ---------------------------------------------------------------------
    def purge(self, now: float, keep_calls_days: int = KEEP_CALLS_DAYS, keep_numbers_days: int = KEEP_NUMBERS_DAYS,
              dry_run: bool = False) -> dict[str, int]:
        """Apply the retention rules in one transaction; how many of each were (or would be) affected.

        - A full caller number is erased (`caller_number` = '') once its callback entry is done,
          and on any entry whose caller last missed a call more than `keep_numbers_days` ago
          (the number was last given to us then); the masked form and the keyed hash stay, so
          the entry still counts in reports. A new missed call from the caller restores it.
        - Calls that started more than `keep_calls_days` ago are deleted with their steps and
          callback links, as are closed tickets created before then and done callback entries
          with no call left. Open tickets and open callback entries are never deleted.

        Synchronous and safe while a controller writes (it waits for the write lock). After a
        real purge the WAL is checkpointed and truncated, so the erased numbers do not linger
        there; deleted content is zeroed in the file itself (secure_delete). `dry_run` runs the
        same statements and rolls them back.
        """
        if keep_calls_days < 0 or keep_numbers_days < 0:
            raise ValueError("retention periods are whole days, 0 or more")
        numbers_before = now - keep_numbers_days * 86400.0
        calls_before = now - keep_calls_days * 86400.0
        old_calls = "SELECT call_id FROM calls WHERE started_at < :calls"
        statements = (
            ("numbers_erased", ("UPDATE callbacks SET caller_number = '' WHERE caller_number != ''"
                                " AND (status = 'done' OR last_missed_at < :numbers)")),
            ("steps_deleted", f"DELETE FROM call_steps WHERE call_id IN ({old_calls})"),
            ("callback_calls_deleted", f"DELETE FROM callback_calls WHERE call_id IN ({old_calls})"),
            ("calls_deleted", "DELETE FROM calls WHERE started_at < :calls"),
            ("tickets_deleted", "DELETE FROM tickets WHERE status = 'closed' AND created_at < :calls"),
            ("callbacks_deleted", ("DELETE FROM callbacks WHERE status = 'done' AND last_missed_at < :calls"
                                   " AND id NOT IN (SELECT callback_id FROM callback_calls)")),
        )
        params = {"numbers": numbers_before, "calls": calls_before}
        counts: dict[str, int] = {}
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for name, sql in statements:
                    counts[name] = db.execute(sql, params).rowcount
            except BaseException:
                db.rollback()
                raise
            if dry_run:
                db.rollback()
            else:
                db.commit()
                busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy:  # a reader still uses old frames: the next checkpoint will overwrite them
                    log.warning("calllog_purge_checkpoint_incomplete")
        finally:
            db.close()
        log.info("calllog_purged", dry_run=dry_run, keep_calls_days=keep_calls_days,
                 keep_numbers_days=keep_numbers_days, **counts)
        return counts

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

    def _connect(self, timeout: float = 5.0) -> sqlite3.Connection:
        if not self.path.exists():
            # sqlite3 would create it with the umask's permissions (usually world-readable).
            try:
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            except OSError:
                pass  # no such directory, a read-only disk: let sqlite3 report it
        db = sqlite3.connect(self.path, timeout=timeout)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit survives a process crash (kill -9); only an OS crash
            # can lose the last transactions, which is the usual trade for a write-heavy log.
            db.execute("PRAGMA synchronous = NORMAL")
            # Freed and rewritten cells are zeroed, so an erased caller number does not live
            # on in free space (purge; a callback entry rewritten by a repeat call).
            db.execute("PRAGMA secure_delete = ON")
        except BaseException:
            db.close()
            raise
        return db

    def _migrate(self, db: sqlite3.Connection) -> int:
        """Bring the file to SCHEMA_VERSION, one step per version, each step all-or-nothing.

        The version is PRAGMA user_version (0: a new file). Re-read under the write lock so
        two processes opening the same old file upgrade it once. A file from newer code is
        left as it is (its extra tables and columns do not disturb this code).
        """
        steps: dict[int, Callable[[sqlite3.Connection], None]] = {1: _to_v1, 2: _to_v2}
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version >= SCHEMA_VERSION:
            if version > SCHEMA_VERSION:
                log.warning("calllog_schema_newer", version=version, expected=SCHEMA_VERSION)
            return version  # nothing to write: a read-only file opens too (and fails on its first write)
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
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
        try:
            stop = False
            while not stop:
                items = self._take()
                stop = _STOP in items
                batch = [item for item in items if item is not None]
                if not self._backlog:
                    if batch:
                        self._write(batch)
                    continue
                self._hold(batch)  # behind what is already journaled: order holds
                if stop or time.monotonic() >= self._next_retry:
                    self._retry()
            if self._backlog:
                self._hold([])  # last chance for writes held in memory to reach the disk
                if self._held:
                    self.lost_total += len(self._held)
                    log.error("calllog_records_lost", records=len(self._held), total=self.lost_total,
                              why="stopped while neither the database nor the journal could take them")
                    self._held = []
                log.warning("calllog_closed_with_journal", journal=str(self.journal_path),
                            pending=self._pending_file)
        finally:
            self._drop_connection()

    def _take(self) -> list[Write | None]:
        """The next batch (up to 500); when journaling, wait no longer than the next retry."""
        timeout = max(0.0, self._next_retry - time.monotonic()) if self._backlog else None
        try:
            items = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(items) < 500:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _write(self, batch: list[Write]) -> None:
        done, error = self._apply(batch, attempts=3)
        if error is not None:
            self.failed_batches += 1
            self._backlog = True
            self._episode_started, self._episode_replayed = time.monotonic(), 0
            self._next_retry = time.monotonic() + self.retry_seconds
            self._last_retry_error = _describe(error)
            log.warning("calllog_journaling_started", reason=self._last_retry_error, records=len(batch) - done,
                        journal=str(self.journal_path))
            self._hold(batch[done:])

    def _apply(self, writes: list[Write], attempts: int) -> tuple[int, BaseException | None]:
        """Commit `writes` in order; (how many are done, the storage error that stopped the rest).

        A write that can never succeed is dropped on its own and counts as done.
        """
        error = self._commit(writes, attempts)
        if error is None:
            self.written += len(writes)
            return len(writes), None
        if _storage(error):
            return 0, error
        # Something in the batch can never be written: write one at a time so it loses only itself.
        for i, write in enumerate(writes):
            error = self._commit([write], attempts)
            if error is None:
                self.written += 1
            elif _storage(error):
                return i, error
            else:
                self.failed_writes += 1
                log.error("calllog_write_dropped", write=type(write).__name__.lstrip("_"), error=_describe(error))
        return len(writes), None

    def _commit(self, writes: list[Write], attempts: int) -> BaseException | None:
        """Apply `writes` in one transaction, retrying while the file is locked; the error, if any."""
        for attempt in range(attempts):
            try:
                db = self._connection()
                with db:
                    for write in writes:
                        write.apply(db)
                return None
            except Exception as exc:  # the writer thread must outlive any one bad write
                if _storage(exc) and not _busy(exc):
                    self._drop_connection()  # reopen next time: the file may be back, or another one
                if not _busy(exc) or attempt == attempts - 1:
                    return exc
                log.warning("calllog_write_retry", error=str(exc), attempt=attempt + 1, records=len(writes))
                time.sleep(0.2 * (attempt + 1))
        return None  # not reached

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                db = self._connect(timeout=self.lock_timeout)
            except Exception as exc:
                raise StorageUnavailable() from exc
            try:
                self._migrate(db)  # a file recreated during an outage needs its tables
            except Exception as exc:
                db.close()
                if _busy(exc):
                    raise
                raise StorageUnavailable() from exc
            self._db = db
        return self._db

    def _drop_connection(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    # -- the journal (writer thread) ----------------------------------------------------------
    def _hold(self, writes: list[Write]) -> None:
        """Append `writes` to the journal behind everything held; in memory if it cannot be written."""
        self.journaled_total += len(writes)
        if not writes and not self._held:
            return
        pending = self._held + writes
        try:
            self._journal.append([_encode(w) for w in pending])
        except OSError as exc:
            if not self._memory_episode:
                self._memory_episode = True
                log.error("calllog_journal_unwritable", journal=str(self.journal_path), error=_describe(exc),
                          held=len(pending), limit=self.memory_limit)
            room = max(self.memory_limit - len(self._held), 0)
            self._held.extend(writes[:room])
            lost = len(writes) - min(room, len(writes))
            if lost:
                self.lost_total += lost
                log.error("calllog_records_lost", records=lost, total=self.lost_total,
                          why="memory bound reached while neither the database nor the journal could take them")
            return
        self._pending_file += len(pending)
        if self._held:
            log.info("calllog_journal_writable", records=len(self._held))
        self._held = []
        self._memory_episode = False

    def _retry(self) -> None:
        error = self._replay()
        self._next_retry = time.monotonic() + self.retry_seconds
        if error is not None and _describe(error) != self._last_retry_error:
            self._last_retry_error = _describe(error)  # once per kind of fault, not every retry
            log.warning("calllog_journal_replay_failed", reason=self._last_retry_error, pending=self.journal_pending)

    def _replay(self) -> BaseException | None:
        """Commit the journal, then the writes held in memory, in order; then empty the journal.

        Calls left in progress by an earlier process are marked interrupted when its part of
        the journal is in, before any write of this process. Returns the storage error that
        stopped it (everything not committed stays where it was), or None when all is in.
        """
        while True:
            if self._interrupt_at is not None and self._offset >= self._interrupt_at:
                error = self._mark_interrupted()
                if error is not None:
                    return error
            try:
                entries, end, torn = self._journal.read(self._offset, 500, self._interrupt_at)
            except OSError as exc:
                return exc
            if torn:
                self.failed_writes += torn
                self._pending_file -= torn
                log.error("calllog_journal_line_unreadable", lines=torn, journal=str(self.journal_path))
            if end == self._offset:
                break
            writes: list[Write] = []
            for entry in entries:
                try:
                    writes.append(_decode(entry))
                except (KeyError, TypeError, ValueError) as exc:
                    self.failed_writes += 1
                    log.error("calllog_journal_entry_invalid", kind=str(entry.get("kind")), error=type(exc).__name__)
            _, error = self._apply(writes, attempts=1)  # retried every retry_seconds anyway
            if error is not None:
                return error  # a part of this chunk may be in: replaying it again is harmless
            self._offset = end
            self._pending_file -= len(entries)
            self.replayed_total += len(writes)
            self._episode_replayed += len(writes)
        if self._interrupt_at is not None:  # the journal ended short of the mark (emptied by hand)
            error = self._mark_interrupted()
            if error is not None:
                return error
        while self._held:
            chunk = self._held[:500]
            done, error = self._apply(chunk, attempts=1)
            del self._held[:done]
            self.replayed_total += done
            self._episode_replayed += done
            if error is not None:
                return error
        try:
            self._journal.clear()
        except OSError as exc:
            return exc  # all committed: the next retry reads nothing and clears again
        self._offset, self._pending_file = 0, 0
        if self._episode_replayed:
            log.info("calllog_journal_replayed", records=self._episode_replayed,
                     seconds=round(time.monotonic() - self._episode_started, 1))
        self._backlog, self._episode_replayed, self._last_retry_error = False, 0, ""
        self._memory_episode = False
        return None

    def _mark_interrupted(self) -> BaseException | None:
        mark = _MarkInterrupted()
        error = self._commit([mark], attempts=1)
        if error is None:
            self._interrupt_at = None
            self.interrupted = mark.count
            if mark.count:
                log.info("calls_interrupted", calls=mark.count)
        return error


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
