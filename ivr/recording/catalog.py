"""Finding recordings and messages, and what people do with them: exports, handled messages, QA scores.

The reads join each recording to its call (unit, masked caller, caller hash, ticket) and, for a
message, to its callback entry. Everything shown carries masked numbers only. The writes here
are the CLI's (synchronous, one transaction each): an export's log line (who, which, why), a
message marked handled, a QA score form.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.calllog import CallLog
from ivr.timekeeping import LOCAL_TZ

_SELECT = (
    "SELECT r.name, r.call_id, r.kind, r.party, r.path, r.started_at, r.seconds, r.bytes, r.sha256,"
    " r.handled_at, r.handled_by, COALESCE(c.unit, '') AS unit, COALESCE(c.mode, '') AS mode,"
    " COALESCE(c.outcome, '') AS outcome, COALESCE(c.caller_masked, '') AS caller_masked,"
    " COALESCE(c.caller_hash, '') AS caller_hash, COALESCE(c.ticket_id, '') AS ticket_id,"
    " COALESCE(c.talk_seconds, 0) AS talk_seconds, cc.callback_id AS callback_id"
    " FROM recordings r LEFT JOIN calls c ON c.call_id = r.call_id"
    " LEFT JOIN callback_calls cc ON cc.call_id = r.call_id"
)


@dataclass(frozen=True)
class Filter:
    """What `hotline recordings list` / `messages list` narrow by; empty fields do not narrow."""

    kind: str = "call"
    ticket: str = ""
    unit: str = ""
    day: dt.date | None = None
    caller_hash: str = ""
    call_id: str = ""
    open_only: bool = False  # messages not yet handled

    def sql(self) -> tuple[str, dict[str, Any]]:
        where, params = ["r.kind = :kind"], dict[str, Any](kind=self.kind)
        for column, value in (("c.ticket_id", self.ticket), ("c.unit", self.unit), ("c.caller_hash", self.caller_hash)):
            if value:
                name = column.split(".")[1]
                where.append(f"{column} = :{name}")
                params[name] = value
        if self.call_id:
            where.append("r.call_id = :call_id")
            params["call_id"] = self.call_id
        if self.day is not None:
            start = dt.datetime.combine(self.day, dt.time(), LOCAL_TZ).timestamp()
            where.append("r.started_at >= :start AND r.started_at < :end")
            params["start"], params["end"] = start, start + 86400
        if self.open_only:
            where.append("r.handled_at IS NULL")
        return " WHERE " + " AND ".join(where), params


def find(calllog: CallLog, flt: Filter) -> list[dict[str, Any]]:
    where, params = flt.sql()
    with calllog.transaction() as db:
        return db.rows(_SELECT + where + " ORDER BY r.started_at, r.name", params)


def one(calllog: CallLog, name: str) -> dict[str, Any] | None:
    with calllog.transaction() as db:
        rows = db.rows(_SELECT + " WHERE r.name = :name", {"name": name})
    return rows[0] if rows else None


def verify(path: Path, sha256: str) -> str:
    """'ok' when the file is there and matches its SHA-256; else what is wrong (missing, checksum mismatch)."""
    if not path.is_file():
        return "missing"
    with path.open("rb") as f:
        return "ok" if hashlib.file_digest(f, "sha256").hexdigest() == sha256 else "checksum mismatch"


def exports_of(calllog: CallLog, name: str) -> list[dict[str, Any]]:
    with calllog.transaction() as db:
        return db.rows("SELECT at, who, reason, dest FROM recording_exports WHERE name = ? ORDER BY id", (name,))


def log_export(calllog: CallLog, name: str, who: str, reason: str, dest: str, at: float) -> None:
    with calllog.transaction() as db:
        db.execute(
            "INSERT INTO recording_exports (at, who, reason, name, dest) VALUES (?, ?, ?, ?, ?)",
            (at, who, reason, name, dest),
        )


def mark_handled(calllog: CallLog, name: str, who: str, at: float) -> bool:
    """A message handled (called back) by `who`; False if there is no such message."""
    with calllog.transaction() as db:
        cur = db.execute(
            "UPDATE recordings SET handled_at = ?, handled_by = ? WHERE name = ? AND kind = 'message'",
            (at, who, name),
        )
        return bool(cur.rowcount)


def save_scores(
    calllog: CallLog, call_id: str, scores: Mapping[str, int], reviewer: str, sample: str, note: str, at: float
) -> None:
    """One QA score form: a row per criterion, replacing an earlier form's score for it."""
    with calllog.transaction() as db:
        for criterion, score in scores.items():
            db.execute(
                "INSERT INTO qa_scores (call_id, criterion, score, reviewer, sample, note, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, criterion) DO UPDATE SET"
                " score = excluded.score, reviewer = excluded.reviewer, sample = excluded.sample,"
                " note = excluded.note, at = excluded.at",
                (call_id, criterion, score, reviewer, sample, note, at),
            )


def scores(calllog: CallLog, start: float, end: float) -> list[dict[str, Any]]:
    """QA scores of calls that started in [start, end), with the call's unit and outcome, and the party."""
    with calllog.transaction() as db:
        return db.rows(
            "SELECT q.call_id, q.criterion, q.score, q.reviewer, q.sample, q.at, c.unit, c.outcome,"
            " COALESCE((SELECT MIN(r.party) FROM recordings r WHERE r.call_id = q.call_id AND r.kind = 'call'), '')"
            " AS party FROM qa_scores q JOIN calls c ON c.call_id = q.call_id"
            " WHERE c.started_at >= ? AND c.started_at < ? ORDER BY q.call_id, q.criterion",
            (start, end),
        )
