"""The call log: every call with its steps, the tickets (限时办结) and the callback list (漏接回拨).

`open_calllog(target, journal_path=None)` is the one way in: `target` is a PostgreSQL URL —
`postgresql://user:password@host:5432/dbname` (also `postgres://`, and libpq's query
parameters such as `?host=/run/postgresql` for a unix socket or `sslmode=require`) — or
anything else, a path to an SQLite file. Both backends are the same `CallLog`: same schema
and versions, same writes and reads, same journal. Its parts, each in a module named for it:

- ivr.calllog.writer     the writes: writer thread, batching, the journal (ivr.calllog.journal)
                         and its replay; the write commands themselves are ivr.calllog.commands
- ivr.calllog.queries    the reads: calls and steps, tickets, the callback list
- ivr.calllog.retention  purge (PIPL): erase numbers no longer needed, delete old records
- ivr.calllog.backend    what a backend provides (ivr.calllog.sqlite, ivr.calllog.postgres), and
                         where driver errors become StorageUnavailable / CallLogError (ivr.errors)

`journal_path` is the local file where writes wait while the database cannot take them:
by default `<file>.journal` beside an SQLite file, and `var/calllog.journal` for PostgreSQL
(the controller passes `$HOTLINE_STATE/calllog.journal`; each controller needs its own).
Several controllers may write one PostgreSQL database at once (ivr.calllog.postgres); an
SQLite file belongs to one host.
"""

from __future__ import annotations

from pathlib import Path

from ivr.calllog.backend import SCHEMA_VERSION
from ivr.calllog.queries import Queries
from ivr.calllog.retention import KEEP_CALLS_DAYS, KEEP_NUMBERS_DAYS, Retention
from ivr.calllog.writer import CALLBACK_OUTCOMES, SATISFACTION, Writer
from ivr.errors import CallLogError, StorageUnavailable

__all__ = [
    "CALLBACK_OUTCOMES",
    "KEEP_CALLS_DAYS",
    "KEEP_NUMBERS_DAYS",
    "SATISFACTION",
    "SCHEMA_VERSION",
    "CallLog",
    "CallLogError",
    "StorageUnavailable",
    "default_journal",
    "is_url",
    "open_calllog",
    "shown",
]


class CallLog(Writer, Queries, Retention):
    """The call log on one backend: writes that never block (Writer), synchronous reads (Queries),
    retention (Retention). A backend subclasses it with the hooks of ivr.calllog.backend.Backend."""


def is_url(target: str | Path) -> bool:
    """A PostgreSQL URL (postgresql:// or postgres://), not a file path."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_calllog(target: str | Path, journal_path: str | Path | None = None, **options: float) -> CallLog:
    """The call log at `target` (a PostgreSQL URL or an SQLite path), not started.

    `options` are the writer's tuning (lock_timeout, retry_seconds, memory_limit). Opening
    does not connect: `start()` does (and never fails for the database), the reads do.
    """
    if is_url(target):
        from ivr.calllog.postgres import (
            PostgresCallLog,  # psycopg is loaded only when used
        )

        return PostgresCallLog(str(target), journal_path, **options)  # type: ignore[arg-type]
    from ivr.calllog.sqlite import SqliteCallLog

    return SqliteCallLog(target, journal_path, **options)  # type: ignore[arg-type]


def default_journal(target: str | Path, state: str | Path = "var") -> Path:
    """Where the call log at `target` journals by default: beside an SQLite file, else in `state`."""
    return Path(state) / "calllog.journal" if is_url(target) else Path(f"{target}.journal")


def shown(target: str | Path) -> str:
    """`target` as it may appear in a log line or a message: a URL without its password."""
    if is_url(target):
        from ivr.calllog.postgres import redact

        return redact(str(target))
    return str(target)
