"""The call log's writes as small command objects, and the one SQL they speak on either backend.

A queued write (`Write`) is applied by the writer thread to a `Db`: one connection of
SQLite or PostgreSQL, spoken to in one SQL — `?` and `:name` placeholders, `ON CONFLICT`
upserts, `RETURNING` — that the connection translates where its driver differs (psycopg's
`%s`/`%(name)s`). Functions the two spell differently (the two-argument MIN/MAX that
PostgreSQL calls LEAST/GREATEST) are attributes of the `Db`.

Every write is idempotent, because the journal may replay it a second time (a kill between
the replay's commit and the journal's emptying): calls upsert, a ticket is inserted once, a
survey is a plain update, a close keeps the first close, a missed call is listed once per
call id. Every kind round-trips through a journal line: `to_json` gives a JSON-able dict that
`decode` turns back into an equal write (`kind` names the class there).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Protocol

import structlog

from ivr.ticketing.lifecycle import State, opened_state
from ivr.ticketing.store import INSERT_EVENT, close_event, opening_event
from ivr.tickets import Ticket

log = structlog.get_logger("ivr.calllog")

Params = Sequence[Any] | Mapping[str, Any]


class Db:
    """One open connection of either backend, taking the call log's SQL.

    The connection is in a transaction from its first statement to `commit`/`rollback`
    (sqlite3's and psycopg's default), so a batch of writes is all-or-nothing on both.
    """

    def __init__(
        self, raw: Any, *, translate: Callable[[str], str] = str, least: str = "MIN", greatest: str = "MAX"
    ) -> None:
        self.raw = raw
        self._translate = translate
        self.least = least  # the smaller of two values
        self.greatest = greatest

    def execute(self, sql: str, params: Params = ()) -> Any:
        """Run one statement; its cursor (`rowcount`, `fetchone`, `fetchall`, `description`)."""
        return self.raw.execute(self._translate(sql), params)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        cur = self.raw.cursor()
        try:
            cur.executemany(self._translate(sql), rows)
        finally:
            cur.close()

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=False)) for row in cur.fetchall()]

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def close(self) -> None:
        self.raw.close()


# A quoted literal or identifier (copied, placeholders inside it are text), `::` (a cast),
# a placeholder, or a percent sign (psycopg reads `%` everywhere, literals included).
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|\?|:([A-Za-z_]\w*)|%")


@lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """`?` and `:name` placeholders as psycopg's `%s` and `%(name)s`; a literal `%` doubled."""

    def token(m: re.Match[str]) -> str:
        text = m.group(0)
        if text[0] in "'\"":
            return text.replace("%", "%%")
        if text == "::":
            return text
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        return f"%({m.group(1)})s"

    return _TOKENS.sub(token, sql)


class Write(Protocol):
    """One queued write, applied by the writer thread inside its batch's transaction."""

    kind: ClassVar[str]

    def apply(self, db: Db) -> None: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _CallWrite:
    """The call's columns and (on the final write) its numbered steps."""

    cols: dict[str, Any]
    steps: list[tuple[Any, ...]]
    kind: ClassVar[str] = "call"

    def apply(self, db: Db) -> None:
        cols = self.cols
        names = ", ".join(cols)
        marks = ", ".join(f":{k}" for k in cols)
        updates = ", ".join(f"{k} = excluded.{k}" for k in cols if k != "call_id")
        db.execute(f"INSERT INTO calls ({names}) VALUES ({marks}) ON CONFLICT (call_id) DO UPDATE SET {updates}", cols)
        if self.steps:
            db.executemany(
                "INSERT INTO call_steps (call_id, seq, at, name, detail) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (call_id, seq) DO UPDATE SET at = excluded.at, name = excluded.name,"
                " detail = excluded.detail",
                [(cols["call_id"], *s) for s in self.steps],
            )

    def to_json(self) -> dict[str, Any]:
        return {"cols": self.cols, "steps": [list(s) for s in self.steps]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _CallWrite:
        return cls(dict(data["cols"]), [tuple(s) for s in data["steps"]])


@dataclass(frozen=True)
class _TicketOpened:
    ticket: Ticket
    kind: ClassVar[str] = "ticket_opened"

    def apply(self, db: Db) -> None:
        t = self.ticket
        state = State.CLOSED if t.status == "closed" else opened_state(t.kind, t.unit)
        cur = db.execute(
            "INSERT INTO tickets (ticket_id, call_id, kind, unit, mode, route_id, created_at, deadline_at, status,"
            " state, workdays) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ticket_id) DO NOTHING",
            (
                *(t.ticket_id, t.call_id, t.kind, t.unit, t.mode, t.route_id, t.created_at, t.deadline_at, t.status),
                *(state.value, t.workdays),
            ),
        )
        if cur.rowcount == 1:  # the lifecycle's first event (ivr.ticketing)
            db.execute(INSERT_EVENT, opening_event(t.ticket_id, t.kind, t.unit, t.created_at, state))
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

    def apply(self, db: Db) -> None:
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

    def apply(self, db: Db) -> None:
        row = db.execute("SELECT state, version FROM tickets WHERE ticket_id = ?", (self.ticket_id,)).fetchone()
        cur = db.execute(
            "UPDATE tickets SET status = 'closed', state = 'closed', closed_at = ?, note = ?, version = version + 1,"
            " updated_at = ? WHERE ticket_id = ? AND status = 'open'",
            (self.at, self.note, self.at, self.ticket_id),
        )
        if cur.rowcount == 1:  # an event like any close (ivr.ticketing), by the hotline itself
            db.execute(INSERT_EVENT, close_event(self.ticket_id, row[1] + 1, row[0], self.at, self.note))
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

    def apply(self, db: Db) -> None:
        if db.execute("SELECT 1 FROM callback_calls WHERE call_id = ?", (self.call_id,)).fetchone():
            return  # this call is already on the list (a repeated write)
        # One statement against the partial unique index (one open entry per caller), so two
        # writers — threads, or controllers sharing a database — cannot both insert: the second
        # waits for the first to commit and then counts its call on the same entry. A number
        # erased by `purge` (an entry idle for a month) is given back: the caller just called.
        callback_id, missed = db.execute(
            "INSERT INTO callbacks (caller_hash, caller_masked, caller_number, first_missed_at, last_missed_at)"
            " VALUES (:hash, :masked, :number, :at, :at)"
            " ON CONFLICT (caller_hash) WHERE status = 'open' DO UPDATE SET"
            " missed_count = callbacks.missed_count + 1,"
            f" first_missed_at = {db.least}(callbacks.first_missed_at, excluded.first_missed_at),"
            f" last_missed_at = {db.greatest}(callbacks.last_missed_at, excluded.last_missed_at),"
            " caller_number = CASE WHEN callbacks.caller_number = '' THEN excluded.caller_number"
            " ELSE callbacks.caller_number END"
            " RETURNING id, missed_count",
            {"hash": self.caller_hash, "masked": self.caller_masked, "number": self.caller_number, "at": self.at},
        ).fetchone()
        db.execute(
            "INSERT INTO callback_calls (callback_id, call_id, reason, at) VALUES (?, ?, ?, ?)",
            (callback_id, self.call_id, self.reason, self.at),
        )
        log.info(
            "callback_listed",
            callback_id=int(callback_id),
            call_id=self.call_id,
            reason=self.reason,
            missed_count=int(missed),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "caller_number": self.caller_number,
            "caller_hash": self.caller_hash,
            "caller_masked": self.caller_masked,
            "reason": self.reason,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _MissedCall:
        return cls(
            data["call_id"],
            data["caller_number"],
            data["caller_hash"],
            data["caller_masked"],
            data["reason"],
            data["at"],
        )


_KINDS: dict[str, Callable[[dict[str, Any]], Write]] = {
    cls.kind: cls.from_json for cls in (_CallWrite, _TicketOpened, _TicketSurvey, _TicketClosed, _MissedCall)
}


def encode(write: Write) -> dict[str, Any]:
    return {"kind": write.kind, **write.to_json()}


def decode(entry: dict[str, Any]) -> Write:
    """A journal line back into its write; KeyError/TypeError/ValueError if it is not one."""
    if entry["kind"] == "routes_live":  # the route editors' write lives with their records
        from ivr.calllog.editing import RoutesLive

        return RoutesLive.from_json({k: v for k, v in entry.items() if k != "kind"})
    if entry["kind"] == "console_action":  # the console's audit trail lives with the console
        from ivr.console.audit import ConsoleAction

        return ConsoleAction.from_json({k: v for k, v in entry.items() if k != "kind"})
    if entry["kind"] == "seat_changed":  # the operators' seat states live with their table
        from ivr.calllog.seats import SeatChanged

        return SeatChanged.from_json({k: v for k, v in entry.items() if k != "kind"})
    if entry["kind"] == "ticket_contact":  # the number for a ticket's 回访 lives with the follow-ups
        from ivr.outbound.store import ContactKept

        return ContactKept.from_json({k: v for k, v in entry.items() if k != "kind"})
    if entry["kind"] == "recording_kept":  # a finished recording's row (ivr.recording.store)
        from ivr.recording.store import RecordingKept

        return RecordingKept.from_json(entry)
    return _KINDS[entry["kind"]]({k: v for k, v in entry.items() if k != "kind"})


class _MarkInterrupted:
    """Calls a dead controller left in progress become `interrupted` (not journaled: start-up only)."""

    kind: ClassVar[str] = "mark_interrupted"

    def __init__(self, channel_prefix: str = "") -> None:
        self.count = 0
        self.channel_prefix = channel_prefix

    def apply(self, db: Db) -> None:
        # A cluster node marks only its own calls: the others' may be live on other nodes.
        cur = db.execute(
            "UPDATE calls SET outcome = 'interrupted', ended_at = COALESCE(ended_at, ?)"
            " WHERE outcome = 'in_progress' AND channel_id LIKE ?",
            (time.time(), self.channel_prefix + "%"),
        )
        self.count = cur.rowcount

    def to_json(self) -> dict[str, Any]:
        raise TypeError("marking interrupted calls is never journaled")
