"""The call log's writer, shared by both backends: off the event loop, batched, never losing a record.

`open_calllog` (ivr.calllog) picks the backend — an SQLite file (ivr.calllog.sqlite) or a
PostgreSQL database (ivr.calllog.postgres) — and both are a `CallLog` whose writes are this
`Writer`: the writer thread, the batching, the journal and its replay live here once; a backend
only says how to connect, how to bring the schema to its version, and which errors mean "the
storage, not this write" (ivr.calllog.backend). Reads are ivr.calllog.queries, retention
ivr.calllog.retention.

Writes go through a queue to one writer thread, so a slow disk or server never stalls a
call's coroutine (the drivers block). The thread commits every batch at once — records reach
the database within milliseconds of the call event, which is what "no loss on an unclean
stop" needs. A call is written when it arrives and again when it ends; rows still
`in_progress` when the log starts belong to a controller that died, and are marked
`interrupted` rather than lost.

The same database and the same writer keep the tickets (限时办结, ivr.tickets) and the
missed-call callback list (漏接回拨). A queued write is a small command object applied to the
writer's connection (ivr.calllog.commands), so every kind of write shares the batching, the
retries and the order of arrival: a ticket's survey can never overtake the ticket. One write
that can never succeed (a constraint, a schema mismatch) is dropped and logged on its own; it
does not take the rest of its batch, or the writer thread, with it.

When the database cannot take a batch for a storage reason — still locked after the retries,
read-only, disk full, I/O error, the file gone, the server down or unreachable, the
connection not opening — the batch goes to the journal (ivr.calllog.journal): JSON lines on
a local path of its own (`journal_path`), fsync'd per batch. While the journal holds
anything, every new write is appended behind it, never written directly, so order holds
across the outage. The writer replays the journal at start, every `retry_seconds` and at
close (reconnecting each time: a server that came back is used again); only when all of it
is committed does it empty the journal and write directly again. Replays are idempotent
(ivr.calllog.commands), because a kill between the commit and the emptying — or a connection
lost after the server committed but before it said so — replays writes a second time. A
journal left by a killed controller is replayed before that controller's calls in progress
are marked interrupted, so a final write it journaled still wins. If the journal cannot be
written either, writes wait in memory (up to `memory_limit`) and the writer keeps retrying
both; past that bound, writes are counted and logged as lost (`calllog_records_lost`), never
dropped silently. The counters and `journal_pending` are plain attributes for the
controller's metrics.

One write is synchronous instead: `callback_attempt`, an operator's record of a callback, who
must know it was stored (the CLI that makes it runs no writer).
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from pathlib import Path

import structlog

from ivr.calllog.backend import Backend
from ivr.calllog.commands import (
    Db,
    Write,
    _CallWrite,
    _MarkInterrupted,
    _MissedCall,
    _TicketClosed,
    _TicketOpened,
    _TicketSurvey,
    decode,
    encode,
)
from ivr.calllog.journal import Journal
from ivr.calllog.records import CallRecord
from ivr.errors import StorageUnavailable
from ivr.tickets import Ticket

log = structlog.get_logger("ivr.calllog")

CALLBACK_OUTCOMES = ("reached", "no_answer", "busy", "wrong_number")
"""What a callback attempt can end in (the CLI offers these; the log takes any short word)."""

SATISFACTION = {1: "satisfied", 2: "basically satisfied", 3: "dissatisfied"}

_STOP = None  # queue sentinel: flush and stop


class Writer(Backend):
    """The call log's writes; part of CallLog (ivr.calllog). They never block and never raise for storage reasons.

    Counters for the controller's metrics (read from any thread): `written`, `failed_writes`,
    `failed_batches` (batches the database refused for a storage reason: journaled, not lost),
    `journaled_total`, `replayed_total`, `lost_total`, and the `journal_pending` gauge.
    """

    def __init__(
        self, journal_path: Path, *, lock_timeout: float = 1.0, retry_seconds: float = 1.5, memory_limit: int = 100_000
    ) -> None:
        self.journal_path = journal_path
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
        # Whose calls in progress are ours to mark interrupted at start: all of them for one
        # controller; on a cluster node, only those whose channel id starts with the node's
        # Asterisk systemname ("node1-"), since the other nodes' calls may be live.
        self.channel_prefix = ""
        # Writer state (the writer thread, or start() before it runs).
        self._db: Db | None = None
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
        self._prepare()
        try:
            self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # the journal then waits in memory, like a journal that cannot be written
            log.error(
                "calllog_journal_directory_unavailable", journal=str(self.journal_path), error=self._describe(exc)
            )
        try:
            self._pending_file = self._journal.count()
            self._interrupt_at = self._journal.size()  # writes before this are an earlier process's
        except OSError as exc:
            log.error("calllog_journal_unreadable", journal=str(self.journal_path), error=self._describe(exc))
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
            log.warning(
                "calllog_journaling_started",
                reason=self._describe(error),
                journal=str(self.journal_path),
                pending=self.journal_pending,
                at="start",
            )
        elif found:
            log.info("calllog_journal_found", records=found)
        self._next_retry = time.monotonic() + self.retry_seconds
        self._thread = threading.Thread(target=self._run, name="calllog-writer", daemon=True)
        self._thread.start()
        return self.interrupted

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
        steps = [
            (i, s.at, s.name, json.dumps(s.detail, ensure_ascii=False, default=str)) for i, s in enumerate(record.steps)
        ]
        self._queue.put(_CallWrite(record.columns(), steps))

    def record(self, write: Write) -> None:
        """Queue a write of another module's kind (e.g. ivr.calllog.editing.RoutesLive)."""
        self._queue.put(write)

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

    def missed_call(
        self, call_id: str, caller_number: str, caller_hash: str, caller_masked: str, reason: str, at: float
    ) -> None:
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
        with self._session("write to") as db:
            cur = db.execute(
                "UPDATE callbacks SET attempts = attempts + 1, last_attempt_at = :at, outcome = :outcome,"
                " status = CASE WHEN :done = 1 THEN 'done' ELSE status END,"
                " done_at = CASE WHEN :done = 1 AND status = 'open' THEN :at ELSE done_at END"
                " WHERE id = :id",
                {"at": at, "outcome": outcome, "done": int(done), "id": callback_id},
            )
            found = cur.rowcount == 1
            if found:  # every attempt is kept: the report judges the first (ivr.outbound.store)
                from ivr.outbound.store import CallbackAttempt, insert_callback_attempt

                attempt = CallbackAttempt(callback_id, at, outcome, citizen_status=outcome, by_whom="operator")
                insert_callback_attempt(db, attempt)
            db.commit()
        log.info("callback_attempt", callback_id=callback_id, outcome=outcome, done=done, found=found)
        return found

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
                    log.error(
                        "calllog_records_lost",
                        records=len(self._held),
                        total=self.lost_total,
                        why="stopped while neither the database nor the journal could take them",
                    )
                    self._held = []
                log.warning("calllog_closed_with_journal", journal=str(self.journal_path), pending=self._pending_file)
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
            self._last_retry_error = self._describe(error)
            log.warning(
                "calllog_journaling_started",
                reason=self._last_retry_error,
                records=len(batch) - done,
                journal=str(self.journal_path),
            )
            self._hold(batch[done:])

    def _apply(self, writes: list[Write], attempts: int) -> tuple[int, BaseException | None]:
        """Commit `writes` in order; (how many are done, the storage error that stopped the rest).

        A write that can never succeed is dropped on its own and counts as done.
        """
        error = self._commit(writes, attempts)
        if error is None:
            self.written += len(writes)
            return len(writes), None
        if self._storage(error):
            return 0, error
        # Something in the batch can never be written: write one at a time so it loses only itself.
        for i, write in enumerate(writes):
            error = self._commit([write], attempts)
            if error is None:
                self.written += 1
            elif self._storage(error):
                return i, error
            else:
                self.failed_writes += 1
                log.error("calllog_write_dropped", write=type(write).__name__.lstrip("_"), error=self._describe(error))
        return len(writes), None

    def _commit(self, writes: list[Write], attempts: int) -> BaseException | None:
        """Apply `writes` in one transaction, retrying while the file is locked; the error, if any."""
        for attempt in range(attempts):
            try:
                db = self._connection()
                try:
                    for write in writes:
                        write.apply(db)
                    db.commit()
                except BaseException:
                    with contextlib.suppress(*self.errors):  # a lost connection: the server rolls back
                        db.rollback()
                    raise
                return None
            except Exception as exc:  # the writer thread must outlive any one bad write
                if self._storage(exc) and not self._busy(exc):
                    self._drop_connection()  # reopen next time: the database may be back, or another one
                if not self._busy(exc) or attempt == attempts - 1:
                    return exc
                log.warning("calllog_write_retry", error=str(exc), attempt=attempt + 1, records=len(writes))
                time.sleep(0.2 * (attempt + 1))
        return None  # not reached

    def _connection(self) -> Db:
        if self._db is None:
            try:
                db = self._open(timeout=self.lock_timeout)
            except Exception as exc:
                raise StorageUnavailable() from exc
            try:
                self._migrate(db)  # a database recreated during an outage needs its tables
            except Exception as exc:
                db.close()
                if self._busy(exc):
                    raise
                raise StorageUnavailable() from exc
            self._db = db
        return self._db

    def _drop_connection(self) -> None:
        if self._db is not None:
            with contextlib.suppress(*self.errors):
                self._db.close()
            self._db = None

    # -- the journal (writer thread) ----------------------------------------------------------
    def _hold(self, writes: list[Write]) -> None:
        """Append `writes` to the journal behind everything held; in memory if it cannot be written."""
        self.journaled_total += len(writes)
        if not writes and not self._held:
            return
        pending = self._held + writes
        try:
            self._journal.append([encode(w) for w in pending])
        except OSError as exc:
            if not self._memory_episode:
                self._memory_episode = True
                log.error(
                    "calllog_journal_unwritable",
                    journal=str(self.journal_path),
                    error=self._describe(exc),
                    held=len(pending),
                    limit=self.memory_limit,
                )
            room = max(self.memory_limit - len(self._held), 0)
            self._held.extend(writes[:room])
            lost = len(writes) - min(room, len(writes))
            if lost:
                self.lost_total += lost
                log.error(
                    "calllog_records_lost",
                    records=lost,
                    total=self.lost_total,
                    why="memory bound reached while neither the database nor the journal could take them",
                )
            return
        self._pending_file += len(pending)
        if self._held:
            log.info("calllog_journal_writable", records=len(self._held))
        self._held = []
        self._memory_episode = False

    def _retry(self) -> None:
        error = self._replay()
        self._next_retry = time.monotonic() + self.retry_seconds
        if error is not None and self._describe(error) != self._last_retry_error:
            self._last_retry_error = self._describe(error)  # once per kind of fault, not every retry
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
                    writes.append(decode(entry))
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
            log.info(
                "calllog_journal_replayed",
                records=self._episode_replayed,
                seconds=round(time.monotonic() - self._episode_started, 1),
            )
        self._backlog, self._episode_replayed, self._last_retry_error = False, 0, ""
        self._memory_episode = False
        return None

    def _mark_interrupted(self) -> BaseException | None:
        mark = _MarkInterrupted(self.channel_prefix)
        error = self._commit([mark], attempts=1)
        if error is None:
            self._interrupt_at = None
            self.interrupted = mark.count
            if mark.count:
                log.info("calls_interrupted", calls=mark.count)
        return error
