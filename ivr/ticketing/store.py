"""The ticket lifecycle in the call log: schema version 4, and `TicketBook`, the one way tickets move.

Schema version 4 (both backends) adds:
- on `tickets`: `state` (ivr.ticketing.lifecycle.State; `status` stays "open"/"closed", what the
  overdue alert, the report and purge read), the content (`summary` 诉求, `category`, `urgency`),
  `reply` (the unit's last answer), `workdays` (the budget at opening), `extended_workdays`,
  `paused_at` (set while returned), `version` (bumped by every action: two actions racing on one
  ticket cannot both apply; the loser is refused and may retry) and `updated_at`.
- `ticket_events`: every transition, numbered per ticket (`seq` = the version it produced; 0 is the
  opening), with who (`actor`: "hotline", "cli:<user>", "unit:<name>", "partner:<name>"), when, from
  which state to which, and its `detail` (JSON: reason, reply text, unit, workdays, new deadline).
- `api_nonces` and `api_idempotency`: what the HTTP API (ivr.ticketing.api) has seen, so a replayed
  request is refused and a retried one gets the first answer (shared by a cluster's controllers).

`TicketBook(calllog, calendar)` reads tickets and applies actions synchronously, each in one
transaction: the ticket's row and its event together, or nothing. From the event loop, call it via
asyncio.to_thread. Refusals are ivr.ticketing.lifecycle.TicketError (UnknownTicket, WrongUnit,
TransitionRefused), whose message names the ticket and the reason; nothing is written then.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from ivr.routing.calendar import PACKAGE_ONLY, Calendar
from ivr.ticketing.lifecycle import (
    URGENCIES,
    Action,
    Event,
    Snapshot,
    State,
    TicketError,
    TransitionRefused,
    UnknownTicket,
    WrongUnit,
    step,
)

if TYPE_CHECKING:
    from ivr.calllog import CallLog
    from ivr.calllog.commands import Db

log = structlog.get_logger("ivr.ticketing")

_V4_COLUMNS = (
    ("state", "{text} NOT NULL DEFAULT 'opened'"),
    ("summary", "{text} NOT NULL DEFAULT ''"),
    ("category", "{text} NOT NULL DEFAULT ''"),
    ("urgency", "{text} NOT NULL DEFAULT 'normal'"),
    ("reply", "{text} NOT NULL DEFAULT ''"),
    ("workdays", "integer NOT NULL DEFAULT 0"),
    ("extended_workdays", "integer NOT NULL DEFAULT 0"),
    ("paused_at", "{real}"),
    ("version", "integer NOT NULL DEFAULT 0"),
    ("updated_at", "{real}"),
)
_V4_TABLES = (
    """CREATE TABLE IF NOT EXISTS ticket_events (
    ticket_id {text} NOT NULL,
    seq integer NOT NULL,
    at {real} NOT NULL,
    action {text} NOT NULL,
    actor {text} NOT NULL,
    from_state {text} NOT NULL DEFAULT '',
    to_state {text} NOT NULL,
    detail {text} NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (ticket_id, seq)
)""",
    "CREATE INDEX IF NOT EXISTS ticket_events_at ON ticket_events (at)",
    "CREATE INDEX IF NOT EXISTS tickets_unit_state ON tickets (unit, state)",
    # Tickets closed before the lifecycle existed are closed in it too.
    "UPDATE tickets SET state = 'closed' WHERE status = 'closed'",
    """CREATE TABLE IF NOT EXISTS api_nonces (
    key_id {text} NOT NULL,
    nonce {text} NOT NULL,
    at {real} NOT NULL,
    PRIMARY KEY (key_id, nonce)
)""",
    "CREATE INDEX IF NOT EXISTS api_nonces_at ON api_nonces (at)",
    """CREATE TABLE IF NOT EXISTS api_idempotency (
    key_id {text} NOT NULL,
    idempotency_key {text} NOT NULL,
    request {text} NOT NULL,
    status integer NOT NULL,
    response {text} NOT NULL,
    at {real} NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
)""",
    "CREATE INDEX IF NOT EXISTS api_idempotency_at ON api_idempotency (at)",
)


def _v4(text: str, real: str, add_column: str) -> tuple[str, ...]:
    columns = tuple(
        f"ALTER TABLE tickets ADD COLUMN {add_column}{name} {decl.format(text=text, real=real)}"
        for name, decl in _V4_COLUMNS
    )
    return columns + tuple(s.format(text=text, real=real) for s in _V4_TABLES)


SQLITE_V4_COLUMNS = tuple(name for name, _ in _V4_COLUMNS)
SQLITE_V4 = _v4("TEXT", "REAL", "")
"""The SQLite step; ivr.calllog.sqlite skips the ALTERs of columns a file already has."""
POSTGRES_V4 = _v4("text", "double precision", "IF NOT EXISTS ")


def sqlite_to_v4(db: Db) -> None:
    present = {row[1] for row in db.execute("PRAGMA table_info(tickets)")}
    for name, statement in zip(SQLITE_V4_COLUMNS, SQLITE_V4, strict=False):
        if name not in present:  # a file downgraded by older code may already have them
            db.execute(statement)
    for statement in SQLITE_V4[len(SQLITE_V4_COLUMNS) :]:
        db.execute(statement)


def event_row(ticket_id: str, seq: int, event: Event) -> tuple[Any, ...]:
    return (
        ticket_id,
        seq,
        event.at,
        event.action.value,
        event.actor,
        event.from_state.value if event.from_state else "",
        event.to_state.value,
        json.dumps(dict(event.detail), ensure_ascii=False, sort_keys=True),
    )


INSERT_EVENT = (
    "INSERT INTO ticket_events (ticket_id, seq, at, action, actor, from_state, to_state, detail)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ticket_id, seq) DO NOTHING"
)


@dataclass(frozen=True)
class Change:
    """One applied action: the ticket's row after it, and its event (for the API's answer and the push)."""

    ticket: dict[str, Any]
    event: Event


OnChange = Callable[[Change], None]


class TicketBook:
    """Tickets read and moved through their lifecycle, on a call log (either backend).

    `calendar` is the routing table's (table.calendar: the entered notices count); `on_change` is
    called after each committed action (the controller pushes status changes to partners with it).
    `outbox`: each action also leaves its pending push in the call log, in its own transaction, for
    the controller to send (ivr.ticketing.outbox): a process without a sender (the CLI) moves tickets so.
    """

    def __init__(
        self,
        calllog: CallLog,
        calendar: Calendar = PACKAGE_ONLY,
        *,
        on_change: OnChange | None = None,
        outbox: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.calllog = calllog
        self.calendar = calendar
        self.on_change = on_change
        self.outbox = outbox
        self._clock = clock

    # -- reads ------------------------------------------------------------------------------------
    def get(self, ticket_id: str) -> dict[str, Any]:
        """The ticket's row; UnknownTicket if there is none."""
        with self.calllog.transaction() as db:
            return self._row(db, ticket_id)

    def events(self, ticket_id: str) -> list[dict[str, Any]]:
        """The ticket's events in order, `detail` decoded; UnknownTicket if there is no such ticket."""
        with self.calllog.transaction() as db:
            self._row(db, ticket_id)
            rows = db.rows("SELECT * FROM ticket_events WHERE ticket_id = ? ORDER BY seq", (ticket_id,))
        return [{**r, "detail": json.loads(r["detail"])} for r in rows]

    def find(
        self, *, unit: str | None = None, states: Iterable[State | str] | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Tickets, oldest deadline first: of `unit` (None: any), in `states` (None: any)."""
        where, params = [], []
        if unit is not None:
            where.append("unit = ?")
            params.append(unit)
        if states is not None:
            chosen = [State(s).value for s in states]
            where.append(f"state IN ({', '.join('?' for _ in chosen)})")
            params.extend(chosen)
        sql = "SELECT * FROM tickets" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY deadline_at, ticket_id LIMIT ?"
        with self.calllog.transaction() as db:
            return db.rows(sql, (*params, int(limit)))

    # -- actions ----------------------------------------------------------------------------------
    def act(
        self,
        ticket_id: str,
        action: Action | str,
        *,
        actor: str,
        at: float | None = None,
        unit: str | None = None,
        reason: str | None = None,
        text: str | None = None,
        workdays: int | None = None,
        summary: str | None = None,
        category: str | None = None,
        urgency: str | None = None,
        only_unit: str | None = None,
    ) -> Change:
        """Apply `action` to the ticket and record its event, in one transaction; the change.

        `only_unit`: the ticket must be this unit's (a unit's or partner's credentials), else WrongUnit.
        `summary`, `category`, `urgency` (the ticket's content) may be set with a dispatch. Raises
        TicketError (UnknownTicket, WrongUnit, TransitionRefused): nothing is written then.
        """
        when = self._clock() if at is None else at
        content = _content(summary, category, urgency)
        if content and str(action) != Action.DISPATCH.value:
            raise TicketError("summary, category and urgency are set with a dispatch")
        with self.calllog.transaction() as db:
            row = self._row(db, ticket_id)
            if only_unit is not None and row["unit"] != only_unit:
                raise WrongUnit(f"ticket {ticket_id} is not {only_unit}'s")
            before = Snapshot.from_row(row, self.calendar)
            after, event = step(
                before,
                action,
                actor=actor,
                at=when,
                calendar=self.calendar,
                unit=unit,
                reason=reason,
                text=text,
                workdays=workdays,
            )
            event = Event(
                event.ticket_id,
                event.action,
                event.actor,
                event.at,
                event.from_state,
                event.to_state,
                {**event.detail, **content},
            )
            sets = {
                "state": after.state.value,
                "status": "closed" if after.state is State.CLOSED else "open",
                "unit": after.unit,
                "deadline_at": after.deadline_at,
                "closed_at": after.closed_at,
                "paused_at": after.paused_at,
                "workdays": after.workdays,
                "extended_workdays": after.extended_workdays,
                "version": after.version,
                "updated_at": when,
                **content,
            }
            if event.action is Action.REPLY:
                sets["reply"] = event.detail.get("text", "")
            if event.action is Action.CLOSE and "text" in event.detail:
                sets["note"] = event.detail["text"]
            assignments = ", ".join(f"{k} = :{k}" for k in sets)
            cur = db.execute(
                f"UPDATE tickets SET {assignments} WHERE ticket_id = :ticket_id AND version = :was",
                {**sets, "ticket_id": ticket_id, "was": row["version"]},
            )
            if cur.rowcount != 1:
                raise TransitionRefused(f"ticket {ticket_id} was changed meanwhile: read it again and retry")
            db.execute(INSERT_EVENT, event_row(ticket_id, after.version, event))
            updated = self._row(db, ticket_id)
            if self.outbox:
                from ivr.ticketing import outbox  # (it builds on this module)

                outbox.put(db, updated, after.version, when)
        log.info(
            "ticket_" + event.action.value,
            ticket_id=ticket_id,
            actor=actor,
            state=event.to_state.value,
            was=event.from_state.value if event.from_state else "",
            unit=updated["unit"],
        )
        change = Change(updated, event)
        if self.on_change is not None:
            self.on_change(change)
        return change

    @staticmethod
    def _row(db: Db, ticket_id: str) -> dict[str, Any]:
        if not isinstance(ticket_id, str) or not ticket_id:
            raise TicketError("a ticket id is required")
        rows = db.rows("SELECT * FROM tickets WHERE ticket_id = ?", (ticket_id,))
        if not rows:
            raise UnknownTicket(f"no ticket {ticket_id}")
        return rows[0]


def _content(summary: str | None, category: str | None, urgency: str | None) -> dict[str, str]:
    content: dict[str, str] = {}
    for name, value in (("summary", summary), ("category", category)):
        if value is not None:
            if not isinstance(value, str) or len(value) > 2000:
                raise TicketError(f"{name} must be text of at most 2000 characters")
            content[name] = value.strip()
    if urgency is not None:
        if urgency not in URGENCIES:
            raise TicketError(f"urgency must be one of: {', '.join(URGENCIES)} (not {urgency!r})")
        content["urgency"] = urgency
    return content


def opening_event(ticket_id: str, kind: str, unit: str, at: float, state: State) -> tuple[Any, ...]:
    """The row of a ticket's opening event (seq 0), written with the ticket by the call log's writer."""
    detail = {"kind": kind, **({"unit": unit} if unit else {})}
    return event_row(ticket_id, 0, Event(ticket_id, Action.OPEN, "hotline", at, None, state, detail))


def close_event(ticket_id: str, seq: int, was: str, at: float, note: str) -> tuple[Any, ...]:
    """The row of a close written by the call log's writer (`CallLog.ticket_closed`, the hotline's own close)."""
    detail = {"text": note} if note else {}
    return event_row(ticket_id, seq, Event(ticket_id, Action.CLOSE, "hotline", at, State(was), State.CLOSED, detail))
