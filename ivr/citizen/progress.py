"""查询办理进度: a caller asks how their matter stands, by ticket number or as "my latest".

The caller types the 14-digit number they were told (ivr.citizen.ticket_number) and '#', or only
'#' for the latest ticket opened on a call from their own number — found by the keyed caller hash
(ivr.privacy), never by the number itself. They hear the ticket's state and its due date; nothing
of its content, so a number typed by someone else tells them no more than the date.

The lookup reads the call log (from the event loop via asyncio.to_thread); what is said is built
here, from prompt names, so the call's story only plays it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ivr.citizen.ticket_number import digit_prompts, id_pattern, keypad_number
from ivr.tickets import from_epoch

MAX_TYPED = 16  # a few digits over a ticket number's 14 are kept to tell "too long" from a number

STATES = ("opened", "open", "dispatched", "accepted", "replied", "closed", "returned", "reopened", "extended")
"""Ticket states with a prompt of their own (ticket-state-NAME); any other is said as ticket-state-other."""


@dataclass(frozen=True)
class TicketProgress:
    ticket_id: str
    status: str
    deadline_at: float  # Unix seconds


class TicketLookup(Protocol):
    """Where the progress query finds tickets (the call log, or a test's own)."""

    def by_number(self, typed: str) -> TicketProgress | None:
        """The ticket whose keypad number is `typed`, or None."""

    def latest_for(self, caller_hash: str) -> TicketProgress | None:
        """The latest ticket opened on a call from the caller with this hash, or None."""


class CallLogTickets:
    """TicketLookup on the call log (ivr.calllog.CallLog's generic reads)."""

    def __init__(self, calllog: Any) -> None:
        self._log = calllog

    def by_number(self, typed: str) -> TicketProgress | None:
        ids = id_pattern(typed)
        if ids is None:
            return None
        plain, on_node = ids
        rows = self._log.tickets("ticket_id = ? OR ticket_id LIKE ?", (plain, on_node))
        # Another node's ticket of the same day and number would make the answer a guess.
        return _progress(rows[0]) if len(rows) == 1 else None

    def latest_for(self, caller_hash: str) -> TicketProgress | None:
        if not caller_hash:
            return None
        rows = self._log.tickets("call_id IN (SELECT call_id FROM calls WHERE caller_hash = ?)", (caller_hash,))
        return _progress(rows[-1]) if rows else None


def _progress(row: dict[str, Any]) -> TicketProgress:
    # `state` is the lifecycle's (ivr.ticketing); `status` (open/closed) what older call logs have.
    return TicketProgress(str(row["ticket_id"]), str(row.get("state") or row["status"]), float(row["deadline_at"]))


def spoken(ticket: TicketProgress) -> list[str]:
    """Prompt names: "工单 <number> <state>，办理期限 <month> <day> <hour>"."""
    due = from_epoch(ticket.deadline_at)
    state = ticket.status if ticket.status in STATES else "other"
    return [
        "progress-ticket",
        *digit_prompts(keypad_number(ticket.ticket_id)),
        f"ticket-state-{state}",
        "progress-due",
        f"month-{due.month}",
        f"day-{due.day}",
        f"hour-{due.hour}",
    ]
