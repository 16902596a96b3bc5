"""What a call-log backend provides, and the one place its driver's errors become ivr.errors.

A backend (ivr.calllog.sqlite, ivr.calllog.postgres) says how to connect, how to bring the
schema to SCHEMA_VERSION, and which of its driver's errors mean "the storage, not this
operation". The writer (ivr.calllog.writer), the reads (ivr.calllog.queries) and retention
(ivr.calllog.retention) are written once on top of these hooks.

Synchronous operations (reads, migrate, purge, a callback attempt) run on a connection of
their own through `_session`, which turns the driver's exceptions (sqlite3.Error,
psycopg.Error) and OS errors into `StorageUnavailable` (the database cannot be reached or
cannot take anything now) or `CallLogError` (this operation failed), with a message that
holds no bound value and no password. Nothing above ivr.calllog catches a driver exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ivr.calllog.commands import Db
from ivr.errors import CallLogError, StorageUnavailable

SCHEMA_VERSION = 9
"""Both backends: 1 calls and their steps; 2 the call's ticket and survey, tickets, the callback list;
3 the route editors' records: routes history, notices, the staged table (ivr.calllog.editing);
4 the tickets' lifecycle: state and content, ticket_events, the API's nonces and idempotency keys
(ivr.ticketing.store); 5 the operator console's audit trail, console_audit (ivr.console.audit);
6 the operators' seat state changes, seat_events (ivr.calllog.seats);
7 calls the hotline places: every callback attempt, the 回访 follow-ups and their attempts, the number
a follow-up dials (ivr.outbound.store);
8 recordings, their exports and the QA score forms (ivr.recording.schema);
9 the pushes of ticket moves made by the CLI, for the controller to send (ivr.ticketing.outbox)."""


class Backend:
    """The hooks every part of the call log uses; a backend subclasses CallLog and fills them in.

    `errors` are its driver's exceptions; `where` names the database in logs and messages (never
    with a password).
    """

    errors: tuple[type[Exception], ...] = ()
    where = ""

    def migrate(self) -> int:
        """Create or upgrade the tables without starting the writer (for the CLI); the version.

        Safe while a controller writes to the same database: the upgrade is one transaction
        that only adds tables, indexes and columns. Does not touch calls left in progress.
        """
        with self._session("open") as db:
            return self._migrate(db)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Db]:
        """One transaction on a connection of its own, for the CLI's and the controller's reads and
        edits outside the writer thread (tickets, outbound calls, recordings, route edits): committed
        when the block ends, rolled back on any error; driver errors become CallLogError."""
        with self._session("use") as db:
            try:
                yield db
                db.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    db.rollback()
                raise

    def describe(self, exc: BaseException) -> str:
        """An error of this log's driver as it may be shown (no caller number, no password)."""
        return self._describe(exc)

    @contextlib.contextmanager
    def _session(self, doing: str) -> Iterator[Db]:
        """A connection for one synchronous operation, closed after it; driver errors translated.

        `doing` completes "cannot ... the call log" in the message (open, read, purge, ...).
        """
        failures: tuple[type[BaseException], ...] = (*self.errors, OSError)
        try:
            db = self._open()
        except failures as exc:
            raise StorageUnavailable(f"cannot {doing} the call log {self.where}: {self._describe(exc)}") from exc
        try:
            yield db
        except failures as exc:
            kind = StorageUnavailable if self._storage(exc) else CallLogError
            raise kind(f"cannot {doing} the call log {self.where}: {self._describe(exc)}") from exc
        finally:
            with contextlib.suppress(*self.errors):
                db.close()

    @contextlib.contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """Driver and OS errors inside the block become StorageUnavailable or CallLogError."""
        failures: tuple[type[BaseException], ...] = (*self.errors, OSError)
        try:
            yield
        except failures as exc:
            kind = StorageUnavailable if self._storage(exc) else CallLogError
            raise kind(f"cannot {doing} the call log {self.where}: {self._describe(exc)}") from exc

    # -- the hooks ------------------------------------------------------------------------------
    def _open(self, timeout: float = 5.0) -> Db:
        """A new connection; `timeout` bounds the wait for the database (and for its locks)."""
        raise NotImplementedError

    def _migrate(self, db: Db) -> int:
        """Bring the database to SCHEMA_VERSION, once even when several processes start at once; the version."""
        raise NotImplementedError

    def _busy(self, exc: BaseException) -> bool:
        """Another connection holds a lock this write needs: worth retrying at once."""
        raise NotImplementedError

    def _storage(self, exc: BaseException) -> bool:
        """The database cannot take any write now; the write itself is fine (journal it)."""
        raise NotImplementedError

    def _describe(self, exc: BaseException) -> str:
        """The error for a log line: never a bound value (it might be a caller number) nor a password."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Before the first connection of `start` (e.g. create the file's directory)."""

    def _begin_exclusive(self, db: Db) -> None:
        """Start `purge`'s transaction."""

    def _after_purge(self, db: Db) -> None:
        """After a committed purge (e.g. make the erased bytes unreadable in the backend's files)."""
