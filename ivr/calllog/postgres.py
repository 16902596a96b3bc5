"""The PostgreSQL backend of the call log: one database that several controllers may share.

`PostgresCallLog("postgresql://user:password@host:port/dbname")` (or the libpq URL forms with
`?host=/socket/dir`, `sslmode=...`) is the call log (ivr.calllog.CallLog) on PostgreSQL,
through psycopg 3: the writer thread, the batching, the journal and its replay are the same
as SQLite's. This module holds the schema and what differs:

- The schema is SQLite's, version for version (`_V1`, `_V2`: the same tables, columns,
  defaults, checks and indexes; REAL is double precision, INTEGER integer, the callback id a
  bigint identity). The version is the highest row of `schema_version` (one row per applied
  step, with its time). Upgrades run in one transaction under an advisory lock, so
  controllers starting at once against an empty database create it once; the others wait
  and find it done. Unlike SQLite's, the foreign keys are enforced (every write already
  respects them).
- Writers on several controllers are safe together: every write is one upsert or guarded
  update; the callback list's "one open entry per caller" is a partial unique index that
  the missed-call upsert relies on (a second writer waits for the first's commit, then adds
  its call to the same entry); ticket ids are the primary key. A lock wait longer than
  `lock_timeout`, a deadlock or a serialization failure is retried like SQLite's busy file.
- Storage errors — the server refusing connections, shutting down or gone mid-batch, a
  read-only database or transaction (a standby, `default_transaction_read_only`), disk full
  or out of resources, an I/O error — journal the batch; the connection is dropped and
  opened anew at the next retry, so writes resume by themselves once the server is back.
- The URL's password never reaches a log line or a message: `where` is the URL without it.
- `purge` erases numbers and deletes rows in one transaction, then VACUUMs the callback list
  so dead row versions holding erased numbers are reclaimed; PostgreSQL does not zero freed
  space, so the bytes may remain in data files and WAL until overwritten (SQLite zeroes them).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ivr.calllog import CallLog, is_url
from ivr.calllog.backend import SCHEMA_VERSION
from ivr.calllog.commands import Db, to_pyformat
from ivr.calllog.editing import POSTGRES_V3
from ivr.calllog.seats import POSTGRES_SEATS
from ivr.console.audit import POSTGRES_AUDIT
from ivr.errors import StorageUnavailable
from ivr.outbound.store import POSTGRES_V7
from ivr.recording.schema import POSTGRES_RECORDINGS
from ivr.ticketing.outbox import POSTGRES_V9
from ivr.ticketing.store import POSTGRES_V4

log = structlog.get_logger("ivr.calllog")

DEFAULT_JOURNAL = Path("var/calllog.journal")
"""Where writes wait while the server cannot take them, unless told (HOTLINE_JOURNAL): a local file."""

# pg_advisory_xact_lock key serialising schema upgrades of the call log in one database.
_MIGRATION_LOCK = 0x12345_CA11_0C

# Version 1: calls and their steps (SQLite's _V1, types mapped).
_V1 = (
    """CREATE TABLE IF NOT EXISTS calls (
    call_id text PRIMARY KEY,
    channel_id text NOT NULL,
    entry text NOT NULL,
    caller_masked text NOT NULL,
    caller_hash text NOT NULL,
    routes_version text NOT NULL,
    started_at double precision NOT NULL,
    answered_at double precision,
    ended_at double precision,
    track text NOT NULL DEFAULT '',
    menu_path text NOT NULL DEFAULT '',
    keys text NOT NULL DEFAULT '',
    decision text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    route_id text NOT NULL DEFAULT '',
    unit text NOT NULL DEFAULT '',
    mode text NOT NULL DEFAULT '',
    target_number text NOT NULL DEFAULT '',
    dial_status text NOT NULL DEFAULT '',
    dial_cause integer,
    target_answered_at double precision,
    overflowed integer NOT NULL DEFAULT 0,
    operator_status text NOT NULL DEFAULT '',
    hangup_by text NOT NULL DEFAULT '',
    hangup_cause integer,
    talk_seconds double precision NOT NULL DEFAULT 0,
    outcome text NOT NULL DEFAULT 'in_progress'
)""",
    "CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at)",
    "CREATE INDEX IF NOT EXISTS calls_unit ON calls (unit, started_at)",
    """CREATE TABLE IF NOT EXISTS call_steps (
    call_id text NOT NULL REFERENCES calls (call_id),
    seq integer NOT NULL,
    at double precision NOT NULL,
    name text NOT NULL,
    detail text NOT NULL DEFAULT '{}',
    PRIMARY KEY (call_id, seq)
)""",
)

# Version 2: the call's ticket and survey; tickets; the callback list (SQLite's _V2).
_V2 = (
    "ALTER TABLE calls ADD COLUMN IF NOT EXISTS ticket_id text NOT NULL DEFAULT ''",
    "ALTER TABLE calls ADD COLUMN IF NOT EXISTS satisfaction integer",
    """CREATE TABLE IF NOT EXISTS tickets (
    ticket_id text PRIMARY KEY,
    call_id text NOT NULL,
    kind text NOT NULL,
    unit text NOT NULL DEFAULT '',
    mode text NOT NULL DEFAULT '',
    route_id text NOT NULL DEFAULT '',
    created_at double precision NOT NULL,
    deadline_at double precision NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    closed_at double precision,
    satisfaction integer CHECK (satisfaction IN (1, 2, 3)),
    note text NOT NULL DEFAULT ''
)""",
    "CREATE INDEX IF NOT EXISTS tickets_status_deadline ON tickets (status, deadline_at)",
    "CREATE INDEX IF NOT EXISTS tickets_call ON tickets (call_id)",
    """CREATE TABLE IF NOT EXISTS callbacks (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    caller_hash text NOT NULL,
    caller_masked text NOT NULL,
    caller_number text NOT NULL,
    first_missed_at double precision NOT NULL,
    last_missed_at double precision NOT NULL,
    missed_count integer NOT NULL DEFAULT 1,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    attempts integer NOT NULL DEFAULT 0,
    last_attempt_at double precision,
    outcome text NOT NULL DEFAULT '',
    done_at double precision
)""",
    # The deduplication itself: at most one open entry per caller, enforced by the database.
    "CREATE UNIQUE INDEX IF NOT EXISTS callbacks_open_caller ON callbacks (caller_hash) WHERE status = 'open'",
    "CREATE INDEX IF NOT EXISTS callbacks_status ON callbacks (status, first_missed_at)",
    """CREATE TABLE IF NOT EXISTS callback_calls (
    callback_id bigint NOT NULL REFERENCES callbacks (id),
    call_id text NOT NULL UNIQUE,
    reason text NOT NULL DEFAULT '',
    at double precision NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS callback_calls_callback ON callback_calls (callback_id)",
)

# 3: ivr.calllog.editing, 4: ivr.ticketing.store, 5: ivr.console.audit, 6: ivr.calllog.seats, 7: ivr.outbound.store,
# 8: ivr.recording.schema, 9: ivr.ticketing.outbox
_STEPS: dict[int, tuple[str, ...]] = {
    1: _V1,
    2: _V2,
    3: POSTGRES_V3,
    4: POSTGRES_V4,
    5: POSTGRES_AUDIT,
    6: POSTGRES_SEATS,
    7: POSTGRES_V7,
    8: POSTGRES_RECORDINGS,
    9: POSTGRES_V9,
}

# SQLSTATEs that say "the storage, not this write" (journal it): connection exception,
# insufficient resources (disk full, out of memory, too many connections), operator
# intervention (shutdown, cancel, starting up), system error (I/O), internal error.
_STORAGE_CLASSES = frozenset({"08", "53", "57", "58", "XX"})
_READ_ONLY = "25006"  # read_only_sql_transaction: a standby, or default_transaction_read_only
# Another writer is in the way: serialization_failure, deadlock_detected, lock_not_available.
_BUSY = frozenset({"40001", "40P01", "55P03"})

# Connection defaults a URL may override: a server that vanishes without a reset (a cut
# network) is noticed in seconds, not after the kernel's two hours, so the writer journals.
_KEEPALIVE = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}


def redact(url: str) -> str:
    """The URL as it may be shown: its password (in the authority or `?password=`) left out."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    user, host, port, dbname = (params.get(k) for k in ("user", "host", "port", "dbname"))
    authority = f"{user}@" if user else ""
    shown = f"postgresql://{authority}{host if host and not str(host).startswith('/') else ''}"
    shown += f":{port}" if port and host and not str(host).startswith("/") else ""
    shown += f"/{dbname or ''}"
    if host and str(host).startswith("/"):
        shown += f"?host={host}" + (f"&port={port}" if port else "")
    return shown


def connect(url: str, timeout: float = 5.0) -> psycopg.Connection[Any]:
    """A connection of its own to the call log's database: the cluster's operators' line
    (ivr.operators.shared) keeps its tables there, and the driver stays imported here only."""
    return psycopg.connect(url, connect_timeout=max(2, round(timeout)))


class PostgresCallLog(CallLog):
    """The call log in a PostgreSQL database; see CallLog for the writes, the reads and the counters."""

    errors = (psycopg.Error,)

    def __init__(
        self,
        url: str,
        journal_path: str | Path | None = None,
        *,
        lock_timeout: float = 1.0,
        retry_seconds: float = 1.5,
        memory_limit: int = 100_000,
    ) -> None:
        if not is_url(url):
            raise ValueError("a PostgreSQL call log needs a postgresql:// URL")
        self.url = url
        self.where = redact(url)
        super().__init__(
            Path(journal_path) if journal_path else DEFAULT_JOURNAL,
            lock_timeout=lock_timeout,
            retry_seconds=retry_seconds,
            memory_limit=memory_limit,
        )

    def __repr__(self) -> str:
        return f"PostgresCallLog({self.where!r})"

    def _open(self, timeout: float = 5.0) -> Db:
        given = conninfo_to_dict(self.url)
        extra: dict[str, Any] = {k: v for k, v in _KEEPALIVE.items() if k not in given}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = str(max(2, round(timeout)))  # libpq: under 2 s counts as 2
        raw = psycopg.connect(make_conninfo(self.url, **extra))
        try:
            # A row lock held by another controller is waited for as long as SQLite's busy
            # timeout, then retried by the writer (lock_not_available is "busy").
            raw.execute("SELECT set_config('lock_timeout', %s, false)", (f"{max(1, round(timeout * 1000))}ms",))
            raw.commit()
        except BaseException:
            raw.close()
            raise
        return Db(raw, translate=to_pyformat, least="LEAST", greatest="GREATEST")

    def _migrate(self, db: Db) -> int:
        """Bring the database to SCHEMA_VERSION, each step recorded in `schema_version`, all in one transaction.

        Read first without a lock (an up-to-date database, even a read-only one, opens at
        once); otherwise take the advisory lock, read again, and apply what is missing.
        """
        version = self._version(db)
        db.commit()
        if version >= SCHEMA_VERSION:
            if version > SCHEMA_VERSION:
                log.warning("calllog_schema_newer", version=version, expected=SCHEMA_VERSION)
            return version
        try:
            db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
                " applied_at double precision NOT NULL)"
            )
            version = self._version(db)
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _STEPS[target]:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (target, time.time()))
            db.commit()
        except BaseException:
            try:
                db.rollback()
            except psycopg.Error:
                pass  # the connection is gone: so is the transaction
            raise
        if version < SCHEMA_VERSION:
            log.info("calllog_schema_upgraded", was=version, now=SCHEMA_VERSION, database=self.where)
        return max(version, SCHEMA_VERSION)

    @staticmethod
    def _version(db: Db) -> int:
        if db.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
            return 0
        return int(db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])

    def _after_purge(self, db: Db) -> None:
        db.raw.autocommit = True  # VACUUM runs outside a transaction
        db.execute("VACUUM callbacks")

    # -- errors ---------------------------------------------------------------------------------
    def _busy(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error) and exc.sqlstate in _BUSY

    def _storage(self, exc: BaseException) -> bool:
        if isinstance(exc, (OSError, StorageUnavailable)):
            return True
        if not isinstance(exc, psycopg.Error):
            return False
        state = exc.sqlstate
        if state is None:
            # Raised by the client, not the server: the connection failed, broke or was closed.
            return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
        return state[:2] in _STORAGE_CLASSES or state == _READ_ONLY or state in _BUSY

    def _describe(self, exc: BaseException) -> str:
        # The server's primary message names tables and constraints (values are in DETAIL,
        # never logged); the client's connection messages name host and port, never the password.
        if isinstance(exc, StorageUnavailable) and exc.__cause__ is not None:
            return f"cannot open: {self._describe(exc.__cause__)}"
        if isinstance(exc, OSError):
            return exc.strerror or type(exc).__name__
        if isinstance(exc, psycopg.Error):
            if exc.sqlstate is None:
                first = str(exc).strip().splitlines()
                return first[0] if first else type(exc).__name__
            return f"{exc.diag.message_primary or type(exc).__name__} ({exc.sqlstate})"
        return type(exc).__name__
