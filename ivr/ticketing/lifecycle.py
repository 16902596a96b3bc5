"""A ticket's lifecycle (限时办结): its states, what may move it, and what each move does to the deadline.

Pure logic, no storage: `step(ticket, action, ...)` returns the ticket after the action and the event to
record, or raises `TransitionRefused` naming the ticket, its state and what the action needs. The call
log's side (one transaction per action, the events table) is ivr.ticketing.store.

The states and the actions that move them::

    opened ──dispatch──▶ dispatched ──accept──▶ accepted ──reply──▶ replied ──close──▶ closed
      │  ▲                 │    ▲  │               │                  │                 │
      │  └─────────────────┼────┼──┼── return ─────┘ (to 12345)       └──── reopen ◀────┘
      │       returned ◀───┘    │  └── extend (延期: same state, later deadline)
      │          └──dispatch────┘
      └──close (12345 answered it itself, e.g. on the operator's line)

- dispatch (12345): opened or returned → dispatched, to `unit` (a new one, or the same again).
- accept (the unit): dispatched → accepted.
- reply (the unit, with the answer): dispatched or accepted → replied; a reply implies acceptance. A
  partner platform's reply to a hand-off ticket (kind "interconnect") closes it: the partner is the
  handling organisation, 12345 has nothing left to review, and the interconnect call's loop is closed.
- close: replied → closed (the unit or 12345), or opened → closed (12345 only, nothing dispatched).
- return (the unit, with a reason): dispatched or accepted → returned (退回: not ours, or not enough to act on).
- reopen (12345, with a reason; a dissatisfied 回访 does it too): replied or closed → dispatched to the
  same unit (opened when it has none).
- extend (延期, with a reason): dispatched or accepted, 1..MAX_EXTEND_WORKDAYS workdays each time and
  at most MAX_EXTENDED_WORKDAYS in all on one ticket; the state does not change.

The deadline, in official workdays (ivr.routing.calendar; "n workdays after T" is the same time of day on
the n-th workday after T's date, as ivr.tickets.DeadlinePolicy counts), is moved only by these rules:

1. Opening: the policy's workdays after creation (ivr.tickets), kept on the ticket as its `workdays`.
2. Returned: the clock stops. When it is dispatched again, the deadline moves later by the workdays that
   began while it was back at 12345 (those after the return's date, up to and including the dispatch's
   date), so a unit is never charged for the time 12345 held the ticket. A return and re-dispatch within
   one day cost no day; nor do they give one. While returned, a ticket is neither overdue (the alert,
   ivr.calllog.queries) nor judged by the report.
3. Extended: the deadline moves later by the extension's workdays.
4. Reopened: the matter is handled again (重办) with a fresh budget: the ticket's `workdays` after the
   reopening. Its earlier close no longer counts; the report judges the ticket by its last close.
5. Closed: the ticket is within its deadline when closed at or before `deadline_at`. The report's
   within-deadline rate (ivr.report.figures) is computed from these closes, nothing else.

Times are Unix seconds on the ticket and in events; day arithmetic is in Asia/Shanghai local time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ivr.errors import TicketError, TransitionRefused, UnknownTicket, WrongUnit
from ivr.routing.calendar import Calendar
from ivr.tickets import from_epoch, to_epoch

__all__ = [
    "ACTIONS",
    "MAX_EXTENDED_WORKDAYS",
    "MAX_EXTEND_WORKDAYS",
    "OPEN_STATES",
    "URGENCIES",
    "Action",
    "Event",
    "Snapshot",
    "State",
    "TicketError",
    "TransitionRefused",
    "UnknownTicket",
    "WrongUnit",
    "add_workdays",
    "opened_state",
    "step",
    "workdays_between",
]

MAX_EXTEND_WORKDAYS = 10
"""One extension (延期) gives at most this many workdays."""
MAX_EXTENDED_WORKDAYS = 15
"""All extensions of one ticket together give at most this many workdays."""
MAX_TEXT = 2000
"""Longest reason, reply or summary accepted (characters): a ticket is not a document store."""
URGENCIES = ("normal", "urgent", "critical")


class State(StrEnum):
    OPENED = "opened"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    REPLIED = "replied"
    CLOSED = "closed"
    RETURNED = "returned"


OPEN_STATES = frozenset(s for s in State if s is not State.CLOSED)


class Action(StrEnum):
    OPEN = "open"
    DISPATCH = "dispatch"
    ACCEPT = "accept"
    REPLY = "reply"
    CLOSE = "close"
    REOPEN = "reopen"
    EXTEND = "extend"
    RETURN = "return"


ACTIONS = tuple(a.value for a in Action if a is not Action.OPEN)
"""What can be done to a ticket once it exists (opening is the controller's)."""

# Which states each action may start from.
_FROM: Mapping[Action, frozenset[State]] = {
    Action.DISPATCH: frozenset({State.OPENED, State.RETURNED}),
    Action.ACCEPT: frozenset({State.DISPATCHED}),
    Action.REPLY: frozenset({State.DISPATCHED, State.ACCEPTED}),
    Action.CLOSE: frozenset({State.OPENED, State.REPLIED}),
    Action.REOPEN: frozenset({State.REPLIED, State.CLOSED}),
    Action.EXTEND: frozenset({State.DISPATCHED, State.ACCEPTED}),
    Action.RETURN: frozenset({State.DISPATCHED, State.ACCEPTED}),
}
_NEEDS_REASON = frozenset({Action.REOPEN, Action.EXTEND, Action.RETURN})


@dataclass(frozen=True)
class Snapshot:
    """What the lifecycle needs of a ticket (a row of `tickets`), and what an action changes."""

    ticket_id: str
    kind: str
    unit: str
    state: State
    created_at: float
    deadline_at: float
    workdays: int
    extended_workdays: int = 0
    paused_at: float | None = None
    closed_at: float | None = None
    version: int = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any], calendar: Calendar) -> Snapshot:
        workdays = row.get("workdays")
        if not workdays:  # opened before the lifecycle existed: the budget its deadline was given
            workdays = max(1, workdays_between(row["created_at"], row["deadline_at"], calendar))
        state = row.get("state") or ("closed" if row["status"] == "closed" else "opened")
        return cls(
            ticket_id=row["ticket_id"],
            kind=row["kind"],
            unit=row["unit"],
            state=State(state),
            created_at=float(row["created_at"]),
            deadline_at=float(row["deadline_at"]),
            workdays=int(workdays),
            extended_workdays=int(row.get("extended_workdays") or 0),
            paused_at=row.get("paused_at"),
            closed_at=row.get("closed_at"),
            version=int(row.get("version") or 0),
        )


@dataclass(frozen=True)
class Event:
    """One transition, as stored in `ticket_events`: who did what when, from which state to which."""

    ticket_id: str
    action: Action
    actor: str
    at: float
    from_state: State | None
    to_state: State
    detail: Mapping[str, Any]


def add_workdays(at: float, workdays: int, calendar: Calendar) -> float:
    """The same local time of day on the `workdays`-th official workday after `at`'s date (Unix seconds)."""
    local = from_epoch(at)
    day = local.date()
    left = workdays
    while left > 0:
        day += dt.timedelta(days=1)
        if calendar.is_workday(day):
            left -= 1
    return to_epoch(dt.datetime.combine(day, local.time()))


def workdays_between(start: float, end: float, calendar: Calendar) -> int:
    """Workdays after `start`'s date up to and including `end`'s date (0 when end is not on a later day)."""
    day, last = from_epoch(start).date(), from_epoch(end).date()
    count = 0
    while day < last:
        day += dt.timedelta(days=1)
        count += calendar.is_workday(day)
    return count


def _text(name: str, value: object, *, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise TicketError(f"{name} must be text, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise TicketError(f"{name} is required")
    if len(value) > MAX_TEXT:
        raise TicketError(f"{name} is {len(value)} characters long (at most {MAX_TEXT})")
    return value


def step(
    ticket: Snapshot,
    action: Action | str,
    *,
    actor: str,
    at: float,
    calendar: Calendar,
    unit: str | None = None,
    reason: str | None = None,
    text: str | None = None,
    workdays: int | None = None,
) -> tuple[Snapshot, Event]:
    """The ticket after `action` by `actor` at `at`, and its event; TicketError (nothing changed) if refused.

    `reason` for return, reopen, extend; `text` the reply (or a closing note); `unit` for dispatch
    (default: the ticket's unit); `workdays` for extend.
    """
    try:
        action = Action(action)
    except ValueError:
        raise TicketError(f"unknown action {action!r} (one of: {', '.join(ACTIONS)})") from None
    if action is Action.OPEN:
        raise TicketError("tickets are opened by the controller, not by an action")
    if not actor or not isinstance(actor, str):
        raise TicketError("an action needs who did it (actor)")
    allowed = _FROM[action]
    if ticket.state not in allowed:
        raise TransitionRefused(
            f"ticket {ticket.ticket_id} is {ticket.state}: {action} needs it "
            + " or ".join(sorted(s.value for s in allowed))
        )
    reason = _text("reason", reason, required=action in _NEEDS_REASON)
    text = _text("reply text" if action is Action.REPLY else "note", text, required=action is Action.REPLY)
    detail: dict[str, Any] = {}
    if reason:
        detail["reason"] = reason
    if text:
        detail["text"] = text
    new = ticket
    target: State
    if action is Action.DISPATCH:
        to_unit = ticket.unit if unit is None else _text("unit", unit, required=True)
        if not to_unit:
            raise TicketError(f"ticket {ticket.ticket_id} has no unit yet: dispatch needs one (unit)")
        target = State.DISPATCHED
        deadline = ticket.deadline_at
        if ticket.state is State.RETURNED and ticket.paused_at is not None:
            held = workdays_between(ticket.paused_at, at, calendar)
            deadline = add_workdays(ticket.deadline_at, held, calendar) if held else ticket.deadline_at
            detail["paused_workdays"] = held
        detail["unit"] = to_unit
        new = dataclasses.replace(ticket, unit=to_unit, deadline_at=deadline, paused_at=None)
    elif action is Action.ACCEPT:
        target = State.ACCEPTED
    elif action is Action.REPLY:
        target = State.CLOSED if ticket.kind == "interconnect" else State.REPLIED
        if target is State.CLOSED:
            new = dataclasses.replace(ticket, closed_at=at)
    elif action is Action.CLOSE:
        target = State.CLOSED
        new = dataclasses.replace(ticket, closed_at=at)
    elif action is Action.RETURN:
        target = State.RETURNED
        new = dataclasses.replace(ticket, paused_at=at)
    elif action is Action.REOPEN:
        target = State.DISPATCHED if ticket.unit else State.OPENED
        new = dataclasses.replace(
            ticket, closed_at=None, deadline_at=add_workdays(at, ticket.workdays, calendar), extended_workdays=0
        )
    else:  # EXTEND
        if not isinstance(workdays, int) or isinstance(workdays, bool) or not 1 <= workdays <= MAX_EXTEND_WORKDAYS:
            raise TicketError(f"workdays must be a whole number 1..{MAX_EXTEND_WORKDAYS}, not {workdays!r}")
        if ticket.extended_workdays + workdays > MAX_EXTENDED_WORKDAYS:
            raise TransitionRefused(
                f"ticket {ticket.ticket_id} is already extended by {ticket.extended_workdays} workdays:"
                f" {workdays} more would pass the limit of {MAX_EXTENDED_WORKDAYS}"
            )
        target = ticket.state
        detail["workdays"] = workdays
        new = dataclasses.replace(
            ticket,
            deadline_at=add_workdays(ticket.deadline_at, workdays, calendar),
            extended_workdays=ticket.extended_workdays + workdays,
        )
    if new.deadline_at != ticket.deadline_at:
        detail["deadline_at"] = new.deadline_at
    new = dataclasses.replace(new, state=target, version=ticket.version + 1)
    return new, Event(ticket.ticket_id, action, actor, at, ticket.state, target, detail)


def opened_state(kind: str, unit: str) -> State:
    """Where a new ticket starts: with its unit already when the call was routed to one, else at 12345.

    A department call (merge, transfer) or a hand-off (interconnect) reached the unit itself, so
    its ticket is dispatched at once; an operator call or a message waits for 12345 to dispatch it.
    """
    return State.DISPATCHED if unit and kind in ("merge", "transfer", "interconnect") else State.OPENED
