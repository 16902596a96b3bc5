"""Status pushes of ticket moves made outside the controller (`hotline tickets …`): schema version 9.

The controller pushes its own moves to partners' webhooks as it makes them (Controller._ticket_changed).
A move made by the CLI, a separate process, has no sender: so the CLI's TicketBook (`outbox=True`)
writes the move into `ticket_outbox` in the move's own transaction (the move and its pending push
together, or neither), and the controller drains the table (`claim`) and pushes each like its own:
signed, retried by its WebhookSender. A row is deleted by the controller that claims it, in the
claim's transaction, so a cluster's controllers never push one move twice.

What the controller then holds in memory is what its own pushes hold: a push still retrying when
it stops is not resumed (the same for both kinds of move).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ivr.calllog import dialects
from ivr.ticketing.lifecycle import Action, Event, State
from ivr.ticketing.store import Change

if TYPE_CHECKING:
    from ivr.calllog import CallLog
    from ivr.calllog.commands import Db

_V9 = (
    # `ticket`: the ticket's row as the move left it (JSON), what the push says even if it moved again since.
    """CREATE TABLE IF NOT EXISTS ticket_outbox (
    ticket_id {text} NOT NULL,
    seq integer NOT NULL,
    at {real} NOT NULL,
    ticket {text} NOT NULL,
    PRIMARY KEY (ticket_id, seq)
)""",
    "CREATE INDEX IF NOT EXISTS ticket_outbox_at ON ticket_outbox (at)",
)
SQLITE_V9, POSTGRES_V9 = dialects.both(*_V9)

INSERT = (
    "INSERT INTO ticket_outbox (ticket_id, seq, at, ticket) VALUES (?, ?, ?, ?) ON CONFLICT (ticket_id, seq) DO NOTHING"
)


def sqlite_to_v9(db: Db) -> None:
    for statement in SQLITE_V9:
        db.execute(statement)


def put(db: Db, ticket: dict[str, Any], seq: int, at: float) -> None:
    """The move's pending push, in the move's transaction (`db`)."""
    db.execute(INSERT, (ticket["ticket_id"], seq, at, json.dumps(ticket, ensure_ascii=False, sort_keys=True)))


def claim(calllog: CallLog, limit: int = 100) -> list[Change]:
    """The oldest pending pushes (at most `limit`), removed from the outbox: the caller pushes them now."""
    with calllog.transaction() as db:
        pending = db.rows("SELECT * FROM ticket_outbox ORDER BY at, ticket_id, seq LIMIT ?", (int(limit),))
        changes = []
        for row in pending:
            gone = db.execute(
                "DELETE FROM ticket_outbox WHERE ticket_id = ? AND seq = ?", (row["ticket_id"], row["seq"])
            )
            if gone.rowcount != 1:  # another controller claimed it meanwhile: its push, not ours
                continue
            events = db.rows(
                "SELECT * FROM ticket_events WHERE ticket_id = ? AND seq = ?", (row["ticket_id"], row["seq"])
            )
            if events:
                changes.append(Change(json.loads(row["ticket"]), _event(events[0])))
    return changes


def pending(calllog: CallLog) -> int:
    with calllog.transaction() as db:
        return int(db.rows("SELECT count(*) AS n FROM ticket_outbox")[0]["n"])


def _event(row: dict[str, Any]) -> Event:
    return Event(
        row["ticket_id"],
        Action(row["action"]),
        row["actor"],
        row["at"],
        State(row["from_state"]) if row["from_state"] else None,
        State(row["to_state"]),
        json.loads(row["detail"]),
    )
