"""What calls placed by the hotline leave in the call log: schema version 7, and the reads and writes.

Schema version 7 (both backends) adds:
- `callback_attempts`: every attempt on a callback entry (漏接回拨), numbered per entry: when, which seat
  was rung and how it ended, how ringing the citizen ended, the outcome and the talk time. The entry's
  own `attempts` / `last_attempt_at` / `outcome` (schema 2) keep summing them up; an operator's manual
  attempt (`hotline callbacks ... attempt`) is kept here too. The report's N-minute callback rate judges
  the first attempt on the citizen, not the latest (ivr.report.figures).
- `followups`: one row per closed ticket the hotline calls back about (回访): its state (pending,
  answered, opted_out, gave_up), attempts, the citizen's 1-3 rating of the handling.
- `followup_attempts`: every 回访 attempt: when, how ringing ended, the key pressed, the outcome.

Reads and writes are synchronous, each in one transaction on a connection of its own (the runner calls
them via asyncio.to_thread); driver errors become ivr.errors.CallLogError / StorageUnavailable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ivr.calllog import dialects

if TYPE_CHECKING:
    from ivr.calllog import CallLog
    from ivr.calllog.commands import Db

_V7 = (
    """CREATE TABLE IF NOT EXISTS callback_attempts (
    callback_id integer NOT NULL,
    seq integer NOT NULL,
    at {real} NOT NULL,
    by_whom {text} NOT NULL DEFAULT 'hotline',
    seat {text} NOT NULL DEFAULT '',
    seat_status {text} NOT NULL DEFAULT '',
    citizen_status {text} NOT NULL DEFAULT '',
    outcome {text} NOT NULL,
    talk_seconds {real} NOT NULL DEFAULT 0,
    PRIMARY KEY (callback_id, seq)
)""",
    "CREATE INDEX IF NOT EXISTS callback_attempts_at ON callback_attempts (at)",
    """CREATE TABLE IF NOT EXISTS followups (
    ticket_id {text} PRIMARY KEY,
    state {text} NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    last_attempt_at {real},
    satisfaction integer,
    answered_at {real},
    created_at {real} NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS followups_state ON followups (state)",
    """CREATE TABLE IF NOT EXISTS followup_attempts (
    ticket_id {text} NOT NULL,
    seq integer NOT NULL,
    at {real} NOT NULL,
    citizen_status {text} NOT NULL DEFAULT '',
    key_pressed {text} NOT NULL DEFAULT '',
    outcome {text} NOT NULL,
    PRIMARY KEY (ticket_id, seq)
)""",
)
SQLITE_V7, POSTGRES_V7 = dialects.both(*_V7)

FOLLOWUP_STATES = ("pending", "answered", "opted_out", "gave_up")
REACHED = "reached"  # a callback's outcome once seat and citizen talked: the entry is done


def sqlite_to_v7(db: Db) -> None:
    for statement in SQLITE_V7:
        db.execute(statement)


@dataclass(frozen=True)
class CallbackAttempt:
    """One try at a callback entry, as kept in `callback_attempts`."""

    callback_id: int
    at: float
    outcome: str  # reached, no_answer, busy, unreachable, seat_no_answer, seat_hung_up, failed
    seat: str = ""
    seat_status: str = ""
    citizen_status: str = ""  # "" when the citizen was not dialled (no seat answered)
    talk_seconds: float = 0.0
    by_whom: str = "hotline"

    @property
    def dialled_citizen(self) -> bool:
        return bool(self.citizen_status)


def insert_callback_attempt(db: Db, attempt: CallbackAttempt) -> None:
    """The attempt row, numbered after the entry's others (in the caller's transaction)."""
    (seq,) = db.execute(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM callback_attempts WHERE callback_id = ?", (attempt.callback_id,)
    ).fetchone()
    db.execute(
        "INSERT INTO callback_attempts (callback_id, seq, at, by_whom, seat, seat_status, citizen_status, outcome,"
        " talk_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            attempt.callback_id,
            int(seq),
            attempt.at,
            attempt.by_whom,
            attempt.seat,
            attempt.seat_status,
            attempt.citizen_status,
            attempt.outcome,
            attempt.talk_seconds,
        ),
    )


def record_callback_attempt(calllog: CallLog, attempt: CallbackAttempt) -> None:
    """Keep the attempt; an attempt that dialled the citizen counts on the entry, and reaching them ends it.

    A seat that did not answer costs the citizen nothing: the entry's attempts count calls to them.
    """
    with calllog.transaction() as db:
        insert_callback_attempt(db, attempt)
        if attempt.dialled_citizen:
            done = attempt.outcome == REACHED
            db.execute(
                "UPDATE callbacks SET attempts = attempts + 1, last_attempt_at = :at, outcome = :outcome,"
                " status = CASE WHEN :done = 1 THEN 'done' ELSE status END,"
                " done_at = CASE WHEN :done = 1 AND status = 'open' THEN :at ELSE done_at END WHERE id = :id",
                {"at": attempt.at, "outcome": attempt.outcome, "done": int(done), "id": attempt.callback_id},
            )


def callback_attempts(calllog: CallLog, callback_id: int | None = None) -> list[dict[str, Any]]:
    """Attempts in order (of one entry, or all)."""
    where, params = ("WHERE callback_id = ?", (callback_id,)) if callback_id is not None else ("", ())
    with calllog.transaction() as db:
        return db.rows(f"SELECT * FROM callback_attempts {where} ORDER BY callback_id, seq", params)


def open_callbacks(calllog: CallLog) -> list[dict[str, Any]]:
    """Open entries with a number to dial, longest waiting first (first missed call)."""
    with calllog.transaction() as db:
        return db.rows(
            "SELECT * FROM callbacks WHERE status = 'open' AND caller_number != '' ORDER BY first_missed_at, id", ()
        )


# -- 回访 -------------------------------------------------------------------------------------------
def closed_without_followup(calllog: CallLog, since: float) -> None:
    """Every ticket closed since `since` (Unix seconds) gets a pending follow-up, once.

    A ticket closed, reopened and closed again keeps its one row: the citizen is asked once per ticket,
    and one who opted out is never asked again.
    """
    with calllog.transaction() as db:
        db.execute(
            "INSERT INTO followups (ticket_id, created_at) SELECT ticket_id, closed_at FROM tickets"
            " WHERE status = 'closed' AND closed_at >= ? AND ticket_id NOT IN (SELECT ticket_id FROM followups)",
            (since,),
        )


def pending_followups(calllog: CallLog) -> list[dict[str, Any]]:
    """Pending follow-ups with the number to dial ('' if none was kept), oldest close first."""
    with calllog.transaction() as db:
        return db.rows(
            "SELECT f.*, COALESCE(k.caller_number, '') AS caller_number FROM followups f"
            " LEFT JOIN ticket_contacts k ON k.ticket_id = f.ticket_id"
            " WHERE f.state = 'pending' ORDER BY f.created_at, f.ticket_id",
            (),
        )


def record_followup_attempt(
    calllog: CallLog, ticket_id: str, at: float, citizen_status: str, key: str, outcome: str, state: str
) -> None:
    """Keep the attempt and move the follow-up to `state` (pending while tries are left)."""
    if state not in FOLLOWUP_STATES:
        raise ValueError(f"follow-up state must be one of {', '.join(FOLLOWUP_STATES)}, not {state!r}")
    score = int(key) if outcome == "rated" else None
    with calllog.transaction() as db:
        (seq,) = db.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM followup_attempts WHERE ticket_id = ?", (ticket_id,)
        ).fetchone()
        db.execute(
            "INSERT INTO followup_attempts (ticket_id, seq, at, citizen_status, key_pressed, outcome)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ticket_id, int(seq), at, citizen_status, key, outcome),
        )
        db.execute(
            "UPDATE followups SET attempts = attempts + 1, last_attempt_at = :at, state = :state,"
            " satisfaction = COALESCE(:score, satisfaction),"
            " answered_at = CASE WHEN :score IS NULL THEN answered_at ELSE :at END WHERE ticket_id = :id",
            {"at": at, "state": state, "score": score, "id": ticket_id},
        )
        if state != "pending":  # the number served its purpose
            db.execute("DELETE FROM ticket_contacts WHERE ticket_id = ?", (ticket_id,))


def followups(calllog: CallLog) -> list[dict[str, Any]]:
    with calllog.transaction() as db:
        return db.rows("SELECT * FROM followups ORDER BY created_at, ticket_id", ())


def followup_attempts(calllog: CallLog, ticket_id: str) -> list[dict[str, Any]]:
    with calllog.transaction() as db:
        return db.rows("SELECT * FROM followup_attempts WHERE ticket_id = ? ORDER BY seq", (ticket_id,))


# -- the number a follow-up dials ---------------------------------------------------------------------
_V7_CONTACTS = """CREATE TABLE IF NOT EXISTS ticket_contacts (
    ticket_id {text} PRIMARY KEY,
    caller_number {text} NOT NULL,
    at {real} NOT NULL
)"""
_CONTACTS_SQLITE, _CONTACTS_POSTGRES = dialects.both(_V7_CONTACTS)
SQLITE_V7, POSTGRES_V7 = (*SQLITE_V7, *_CONTACTS_SQLITE), (*POSTGRES_V7, *_CONTACTS_POSTGRES)


@dataclass(frozen=True)
class ContactKept:
    """The citizen's number for their ticket's 回访, written with the ticket (the calls table has only a hash).

    Kept no longer than needed: erased when the follow-up ends (answered, opted out, given up).
    """

    ticket_id: str
    caller_number: str
    at: float
    kind: ClassVar[str] = "ticket_contact"

    def apply(self, db: Db) -> None:
        db.execute(
            "INSERT INTO ticket_contacts (ticket_id, caller_number, at) VALUES (?, ?, ?)"
            " ON CONFLICT (ticket_id) DO NOTHING",
            (self.ticket_id, self.caller_number, self.at),
        )

    def to_json(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket_id, "caller_number": self.caller_number, "at": self.at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContactKept:
        return cls(str(data["ticket_id"]), str(data["caller_number"]), float(data["at"]))
