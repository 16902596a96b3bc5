"""The operators' seat states in the call log: every sign-in, pause (with its reason), wrap-up and sign-out.

Schema version 6 (both backends) adds `seat_events`. The controller writes each change of a seat's
state (ivr.operators.queue.SeatChange) through the call log's writer (`SeatChanged`, journaled like
a call), so a supervisor can tell afterwards who was paused when, and why — and so a restarted controller
puts each seat back as its operator left it (`last_seat_states`, SeatPool.restore).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ivr.calllog import dialects
from ivr.calllog.commands import Db

if TYPE_CHECKING:
    from ivr.calllog import CallLog

_TABLE = """CREATE TABLE IF NOT EXISTS seat_events (
    id {serial},
    at {real} NOT NULL,
    seat {text} NOT NULL,
    state {text} NOT NULL,
    reason {text} NOT NULL DEFAULT '',
    by_whom {text} NOT NULL DEFAULT '',
    pending integer NOT NULL DEFAULT 0
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS seat_events_at ON seat_events (at)"

SQLITE_SEATS, POSTGRES_SEATS = dialects.both(_TABLE, _INDEX)


def sqlite_seats_table(db: Db) -> None:
    for statement in SQLITE_SEATS:
        db.execute(statement)


@dataclass(frozen=True)
class SeatChanged:
    """One seat state change, as the writer applies and the journal keeps it."""

    at: float
    seat: str
    state: str
    reason: str = ""
    by: str = ""
    pending: bool = False
    kind: ClassVar[str] = "seat_changed"

    def apply(self, db: Db) -> None:
        db.execute(
            "INSERT INTO seat_events (at, seat, state, reason, by_whom, pending) VALUES (?, ?, ?, ?, ?, ?)",
            (self.at, self.seat, self.state, self.reason, self.by, int(self.pending)),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeatChanged:
        return cls(**data)


def seat_events(calllog: CallLog, since: float = 0.0) -> list[dict[str, Any]]:
    """Seat state changes from `since` (epoch seconds), oldest first."""
    return calllog._query(
        "SELECT at, seat, state, reason, by_whom AS by, pending FROM seat_events WHERE at >= ? ORDER BY id", (since,)
    )


def last_seat_states(calllog: CallLog) -> dict[str, tuple[str, str]]:
    """Each seat's last recorded state and reason: {seat: (state, reason)}.

    A change asked during a call (pending) counts as made: the call it waited for did not outlive the
    controller that kept the wait, so a "pause after this call" is a pause now.
    """
    rows = calllog._query(
        "SELECT seat, state, reason FROM seat_events WHERE id IN (SELECT MAX(id) FROM seat_events GROUP BY seat)", ()
    )
    return {str(r["seat"]): (str(r["state"]), str(r["reason"])) for r in rows}
