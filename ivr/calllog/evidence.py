"""Calls the controller did not carry, counted from Asterisk's own record of them.

Two kinds of call never run through `handle_call`, and so would have no row: calls the controller
refused under overload (admission, ivr/controller/admission.py: sent to the dialplan's [hotline-refused], which
answers 503), and calls the dialplan's [hotline-fallback] took because the controller was down
(Stasis FAILED). For each, the dialplan raises a CEL user event (hotline_refused, hotline_fallback
with `entry=<number dialled>`), which Asterisk writes to an SQLite file of its own
(dialplan/cel.conf, cel_sqlite3_custom.conf: time, event, extra, channel unique id — no caller
number). The controller imports that file at start and every few seconds (`Importer.run`): each
event becomes one finished call-log row, `call_id` "ast-<unique id>", outcome refused or fallback,
so the report, /metrics and the dashboard count them with every other call.

Idempotent: an event whose row the call log already holds is skipped (a restarted controller
reads the recent events again), and within one process a cursor (the file's rowid) reads each
event once. At start only events of the last IMPORT_DAYS are read, so a row the retention purge
removed long ago is not brought back, and none from before the log's first call: a call log
counts from its own beginning (a new log, e.g. a test's, does not take in an older log's calls).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from ivr.calllog.records import CallRecord, HangupBy, Outcome, Step
from ivr.errors import StorageUnavailable

log = structlog.get_logger()

TABLE = "hotline_events"  # dialplan/cel_sqlite3_custom.conf
EVENTS = {"hotline_refused": Outcome.REFUSED, "hotline_fallback": Outcome.FALLBACK}
IMPORT_DAYS = 7
CALL_ID_PREFIX = "ast-"
_CHUNK = 200  # call ids per existence query (SQL parameter limits)


class _Log(Protocol):
    def calls(self, where: str = "", params: tuple[object, ...] = ()) -> list[dict[str, object]]: ...

    def first_call_at(self) -> float | None: ...

    def call_finished(self, record: CallRecord) -> None: ...


@dataclass(frozen=True)
class Event:
    """One row Asterisk wrote: a refused or fallback call."""

    rowid: int
    at: float
    kind: str  # hotline_refused | hotline_fallback
    extra: str  # CELGenUserEvent's extra, as Asterisk stores it
    uniqueid: str

    @property
    def call_id(self) -> str:
        return CALL_ID_PREFIX + self.uniqueid

    def fields(self) -> dict[str, str]:
        """The extra's key=value words. Asterisk stores a user event's extra as JSON {"extra": "..."}."""
        text = self.extra
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            if isinstance(data, dict):
                text = str(data.get("extra", ""))
        return dict(word.split("=", 1) for word in text.split() if "=" in word)

    def record(self) -> CallRecord:
        outcome = EVENTS[self.kind]
        rec = CallRecord(
            call_id=self.call_id,
            channel_id=self.uniqueid,
            entry=self.fields().get("entry", ""),
            caller_masked="",  # Asterisk writes no caller number: the row counts the call, nobody to call back
            caller_hash="",
            routes_version="",
            started_at=self.at,
            ended_at=self.at,
            outcome=outcome,
            hangup_by=HangupBy.SYSTEM if outcome is Outcome.REFUSED else "",
        )
        rec.steps.append(Step(self.at, "asterisk_event", {"event": self.kind, "uniqueid": self.uniqueid}))
        return rec


def _read(path: Path, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
    """Rows of Asterisk's file, read-only; none before Asterisk made its file or table; errors as StorageUnavailable."""
    if not path.exists():
        return []  # Asterisk creates the file when it loads cel_sqlite3_custom
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        if "no such table" in str(exc):
            return []
        raise StorageUnavailable(f"{path}: cannot read Asterisk's record of refused/fallback calls: {exc}") from exc


def read_events(path: Path, after_rowid: int = 0, since: float = 0.0) -> list[Event]:
    """Events after `after_rowid` at or after `since` (Unix seconds), in the order written."""
    marks = ", ".join("?" for _ in EVENTS)
    rows = _read(
        path,
        f"SELECT rowid, eventtime, userdeftype, eventextra, uniqueid FROM {TABLE}"
        f" WHERE rowid > ? AND CAST(eventtime AS REAL) >= ? AND userdeftype IN ({marks}) ORDER BY rowid",
        (after_rowid, since, *EVENTS),
    )
    return [Event(int(r[0]), float(r[1]), str(r[2]), str(r[3] or ""), str(r[4])) for r in rows]


def last_rowid(path: Path) -> int:
    """The last event's rowid; 0 when there is none yet."""
    rows = _read(path, f"SELECT coalesce(max(rowid), 0) FROM {TABLE}", ())
    return int(rows[0][0]) if rows else 0


class Importer:
    """Brings Asterisk's refused/fallback events into the call log, each once."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.after: int | None = None  # the last rowid read; None before the first run
        self._now = clock

    def run(self, calllog: _Log) -> list[CallRecord]:
        """Import what is new; returns the rows added (for the metrics). Raises if either database cannot be read."""
        since = 0.0
        if self.after is None:  # the first run of this process
            first = calllog.first_call_at()
            if first is None:  # an empty log counts from now on: skip what is already written
                self.after = last_rowid(self.path)
                return []
            since = max(self._now() - IMPORT_DAYS * 86400, first)
        events = read_events(self.path, self.after or 0, since)
        if not events:
            return []
        known = _existing(calllog, [e.call_id for e in events])
        added = []
        for event in events:
            if event.call_id not in known:
                record = event.record()
                calllog.call_finished(record)
                known.add(event.call_id)
                added.append(record)
        self.after = events[-1].rowid
        if added:
            log.info(
                "asterisk_calls_imported",
                refused=sum(1 for r in added if r.outcome is Outcome.REFUSED),
                fallback=sum(1 for r in added if r.outcome is Outcome.FALLBACK),
                source=str(self.path),
            )
        return added


def _existing(calllog: _Log, call_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(call_ids), _CHUNK):
        chunk = tuple(call_ids[i : i + _CHUNK])
        marks = ", ".join("?" for _ in chunk)
        found |= {str(r["call_id"]) for r in calllog.calls(f"call_id IN ({marks})", chunk)}
    return found
