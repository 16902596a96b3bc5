"""The default call log: one SQLite file in WAL mode, written off the event loop.

Writes go through a queue to one writer thread, so a slow disk never stalls a call's
coroutine (sqlite3 calls block). The thread commits every batch at once — records reach disk
within milliseconds of the call event, which is what "no loss on an unclean stop" needs.
A call is written when it arrives and again when it ends; rows still `in_progress` when the
log opens belong to a controller that died, and are marked `interrupted` rather than lost.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from ivr.calllog.records import CallRecord

log = structlog.get_logger("ivr.calllog")

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
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
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_unit ON calls (unit, started_at);
CREATE TABLE IF NOT EXISTS call_steps (
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    name TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (call_id, seq)
);
"""

_STOP = None  # queue sentinel: flush and stop
# One queued write: the call's columns and (on the final write) its numbered steps.
Write = tuple[dict[str, Any], list[tuple[Any, ...]]]


class SqliteCallLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._queue: queue.Queue[Write | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failed_batches = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> int:
        """Open (creating if needed) and start the writer; returns how many calls were interrupted."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.executescript(SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
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

    def close(self, timeout: float = 10.0) -> None:
        """Flush everything queued, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    # -- writes (any thread; never block) ---------------------------------------------------
    def call_started(self, record: CallRecord) -> None:
        self._queue.put((record.columns(), []))

    def call_finished(self, record: CallRecord) -> None:
        steps = [(i, s.at, s.name, json.dumps(s.detail, ensure_ascii=False, default=str))
                 for i, s in enumerate(record.steps)]
        self._queue.put((record.columns(), steps))

    # -- reads (CLI, tests, reports) --------------------------------------------------------
    def calls(self, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        db = self._connect()
        try:
            db.row_factory = sqlite3.Row
            sql = "SELECT * FROM calls" + (f" WHERE {where}" if where else "") + " ORDER BY started_at"
            return [dict(r) for r in db.execute(sql, params)]
        finally:
            db.close()

    def steps(self, call_id: str) -> list[dict[str, Any]]:
        db = self._connect()
        try:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT seq, at, name, detail FROM call_steps WHERE call_id = ? ORDER BY seq",
                              (call_id,))
            return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]
        finally:
            db.close()

    # -- the writer thread ------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5.0)
        db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit survives a process crash (kill -9); only an OS crash
        # can lose the last transactions, which is the usual trade for a write-heavy log.
        db.execute("PRAGMA synchronous = NORMAL")
        return db

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
        for attempt in range(5):
            try:
                with db:
                    for cols, steps in batch:
                        names = ", ".join(cols)
                        marks = ", ".join(f":{k}" for k in cols)
                        updates = ", ".join(f"{k} = excluded.{k}" for k in cols if k != "call_id")
                        db.execute(f"INSERT INTO calls ({names}) VALUES ({marks})"
                                   f" ON CONFLICT (call_id) DO UPDATE SET {updates}", cols)
                        if steps:
                            db.executemany("INSERT OR REPLACE INTO call_steps (call_id, seq, at, name, detail)"
                                           " VALUES (?, ?, ?, ?, ?)", [(cols["call_id"], *s) for s in steps])
                self.written += len(batch)
                return
            except sqlite3.OperationalError as exc:
                log.warning("calllog_write_retry", error=str(exc), attempt=attempt + 1, records=len(batch))
                time.sleep(0.2 * (attempt + 1))
        self.failed_batches += 1
        log.error("calllog_write_failed", records=len(batch))
