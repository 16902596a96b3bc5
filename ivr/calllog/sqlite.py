"""The SQLite backend of the call log: one file in WAL mode (the default, and the lab's).

`SqliteCallLog(path)` is the call log (ivr.calllog.CallLog) on an SQLite file: the writer
thread, the batching, the journal (default `<path>.journal`) and its replay are shared with
PostgreSQL; this module says how the file is opened, how its schema is versioned (PRAGMA
user_version, upgraded once under the write lock) and which SQLite errors mean "the storage,
not this write" (locked past the retries, read-only, full, I/O error, cannot open).

The callback list holds full caller numbers (an operator has to dial them), so the file and
the journal are created readable by their owner only (0600) and the file is tightened to
that when the log starts. Deleted content is zeroed (secure_delete), and after a purge the
WAL is checkpointed and truncated, so erased numbers do not linger there.

The names tests and older code import from here (the writes, SCHEMA_VERSION, ...) are
re-exported from their modules.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import structlog

from ivr.calllog import (
    CALLBACK_OUTCOMES,
    KEEP_CALLS_DAYS,
    KEEP_NUMBERS_DAYS,
    SATISFACTION,
    SCHEMA_VERSION,
    CallLog,
    StorageUnavailable,
)
from ivr.calllog.commands import (
    Db,
    Write,
    _CallWrite,
    _MissedCall,
    _TicketClosed,
    _TicketOpened,
    _TicketSurvey,
)
from ivr.calllog.commands import decode as _decode
from ivr.calllog.commands import encode as _encode
from ivr.calllog.editing import SQLITE_V3
from ivr.calllog.seats import sqlite_seats_table
from ivr.console.audit import sqlite_audit_table
from ivr.outbound.store import sqlite_to_v7
from ivr.recording.schema import SQLITE_RECORDINGS
from ivr.ticketing.outbox import sqlite_to_v9
from ivr.ticketing.store import sqlite_to_v4

__all__ = [
    "CALLBACK_OUTCOMES",
    "KEEP_CALLS_DAYS",
    "KEEP_NUMBERS_DAYS",
    "SATISFACTION",
    "SCHEMA_VERSION",
    "SqliteCallLog",
    "StorageUnavailable",
    "Write",
    "_CallWrite",
    "_MissedCall",
    "_TicketClosed",
    "_TicketOpened",
    "_TicketSurvey",
    "_decode",
    "_encode",
]

log = structlog.get_logger("ivr.calllog")

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


# What says "the storage, not this write": retry later from the journal.
_STORAGE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_PROTOCOL,
    }
)


class SqliteCallLog(CallLog):
    """The call log on an SQLite file; see CallLog for the writes, the reads and the counters."""

    errors = (sqlite3.Error,)

    def __init__(
        self,
        path: str | Path,
        journal_path: str | Path | None = None,
        *,
        lock_timeout: float = 1.0,
        retry_seconds: float = 1.5,
        memory_limit: int = 100_000,
    ) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        super().__init__(
            Path(journal_path) if journal_path else Path(f"{self.path}.journal"),
            lock_timeout=lock_timeout,
            retry_seconds=retry_seconds,
            memory_limit=memory_limit,
        )

    # -- the file -----------------------------------------------------------------------------
    def _prepare(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("calllog_directory_unavailable", error=self._describe(exc))
        self._make_private()

    def _make_private(self) -> None:
        """Create the file 0600, or tighten an older one (and its WAL files) to 0600."""
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
                    log.info(
                        "calllog_permissions_tightened", file=path.name, was=oct(stat.S_IMODE(path.stat().st_mode))
                    )
                    path.chmod(0o600)
        except OSError as exc:  # e.g. not the file's owner: warn, but keep the hotline answering
            log.warning("calllog_permissions", error=str(exc))

    def _open(self, timeout: float = 5.0) -> Db:
        return Db(self._connect(timeout))  # sqlite3 speaks the call log's SQL as it is

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

    def _migrate(self, db: Db) -> int:
        """Bring the file to SCHEMA_VERSION, one step per version, each step all-or-nothing.

        The version is PRAGMA user_version (0: a new file). Re-read under the write lock so
        two processes opening the same old file upgrade it once. A file from newer code is
        left as it is (its extra tables and columns do not disturb this code).
        """
        steps: dict[int, Callable[[Db], None]] = {
            1: _to_v1,
            2: _to_v2,
            3: _to_v3,
            4: sqlite_to_v4,
            5: sqlite_audit_table,
            6: sqlite_seats_table,
            7: sqlite_to_v7,
            8: _to_v8,
            9: sqlite_to_v9,
        }
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

    # -- the file as a whole (install, backup) -----------------------------------------------------
    def schema_version(self) -> int:
        """The file's schema version as it stands (0: not a call log yet), read only: nothing upgraded."""
        with self._translated("read"):
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                return int(db.execute("PRAGMA user_version").fetchone()[0])
            finally:
                db.close()

    def backup(self, dest: Path) -> None:
        """A consistent copy of the file at `dest` (SQLite's online backup: safe while a controller writes)."""
        with self._translated("back up"):
            src = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            dst = sqlite3.connect(dest)
            try:
                with dst:
                    src.backup(dst)
            finally:
                src.close()
                dst.close()

    # -- purge ----------------------------------------------------------------------------------
    def _begin_exclusive(self, db: Db) -> None:
        db.execute("BEGIN IMMEDIATE")

    def _after_purge(self, db: Db) -> None:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:  # a reader still uses old frames: the next checkpoint will overwrite them
            log.warning("calllog_purge_checkpoint_incomplete")

    # -- errors ---------------------------------------------------------------------------------
    def _busy(self, exc: BaseException) -> bool:
        """Another connection holds the lock: worth retrying at once (anything else will fail again)."""
        return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", 0) & 0xFF in (
            sqlite3.SQLITE_BUSY,
            sqlite3.SQLITE_LOCKED,
        )

    def _storage(self, exc: BaseException) -> bool:
        if isinstance(exc, (OSError, StorageUnavailable)):
            return True
        return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", 0) & 0xFF in _STORAGE_CODES

    def _describe(self, exc: BaseException) -> str:
        # SQLite's messages name tables and constraints, never bound values; other exceptions
        # might carry a value (a caller number), so only their type is logged.
        if isinstance(exc, StorageUnavailable) and exc.__cause__ is not None:
            return f"cannot open: {self._describe(exc.__cause__)}"
        if isinstance(exc, OSError):
            return exc.strerror or type(exc).__name__
        return str(exc) if isinstance(exc, sqlite3.Error) else type(exc).__name__


def _to_v1(db: Db) -> None:
    for statement in _V1:
        db.execute(statement)


def _to_v2(db: Db) -> None:
    present = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
    for name, decl in _V2_CALL_COLUMNS:
        if name not in present:  # a file downgraded by older code may already have them
            db.execute(f"ALTER TABLE calls ADD COLUMN {name} {decl}")
    for statement in _V2:
        db.execute(statement)


def _to_v3(db: Db) -> None:
    for statement in SQLITE_V3:
        db.execute(statement)


def _to_v8(db: Db) -> None:
    for statement in SQLITE_RECORDINGS:
        db.execute(statement)
