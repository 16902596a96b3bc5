"""What a console shows: a seat's state and the screen pop of the call ringing or answered at it.

The screen pop tells the operator, before they say 您好: how the citizen came (entry number, menu or
direct track, the menu path and the keys pressed), the caller's number masked, and what the hotline
already knows of this caller by the keyed caller hash — earlier calls, open tickets, open callback
entries. Numbers are masked here and nowhere shown in clear (the callbacks table keeps the clear
number for dialling back; it is never read here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ivr.call.books import Services
from ivr.calllog import CallLog
from ivr.calllog.records import CallRecord
from ivr.operators.desk import Desk
from ivr.operators.queue import SeatPool, SeatView
from ivr.operators.supervise import Supervisors
from ivr.routing.routes import RouteTable
from ivr.ticketing.store import TicketBook

EARLIER_SHOWN = 5


@dataclass
class Hotline:
    """The running controller's parts the console reads and acts on."""

    seats: SeatPool
    desk: Callable[[], Desk]
    calllog: CallLog
    table: Callable[[], RouteTable]
    record: Callable[[str], CallRecord | None]  # a call in progress, by call id
    tickets: Callable[[], TicketBook]
    services: Callable[[], Services]  # the clock, deadlines and node a ticket is opened with
    supervisors: Supervisors | None = None  # listen in / whisper / barge (None: no ARI behind this console)


def history(calllog: CallLog, caller_hash: str, call_id: str) -> dict[str, list[dict[str, Any]]]:
    """The caller's earlier calls, open tickets and open callback entries (blocking: run off the loop)."""
    calls = calllog.calls("caller_hash = ? AND call_id != ?", (caller_hash, call_id))[-EARLIER_SHOWN:]
    earlier = [
        {
            "call_id": c["call_id"],
            "started_at": c["started_at"],
            "entry": c["entry"],
            "menu_path": c["menu_path"],
            "unit": c["unit"],
            "outcome": c["outcome"],
            "ticket_id": c.get("ticket_id", ""),
        }
        for c in reversed(calls)
    ]
    tickets = calllog.tickets(  # this call's own ticket is shown with the call, not among the earlier ones
        "status = 'open' AND call_id != ? AND call_id IN (SELECT call_id FROM calls WHERE caller_hash = ?)",
        (call_id, caller_hash),
    )
    open_tickets = [
        {
            "ticket_id": t["ticket_id"],
            "unit": t["unit"],
            "state": t.get("state", t["status"]),
            "summary": t.get("summary", ""),
            "deadline_at": t["deadline_at"],
        }
        for t in tickets
    ]
    callbacks = calllog._query(
        "SELECT id, caller_masked, first_missed_at, missed_count, attempts FROM callbacks"
        " WHERE caller_hash = ? AND status = 'open' ORDER BY first_missed_at",
        (caller_hash,),
    )
    return {"earlier_calls": earlier, "open_tickets": open_tickets, "callbacks": callbacks}


def seat_view(hotline: Hotline, seat: str) -> SeatView | None:
    return next((s for s in hotline.seats.snapshot().seats if s.name == seat), None)


def seat_state(view: SeatView) -> dict[str, Any]:
    return {
        "seat": view.name,
        "state": view.status,
        "presence": view.presence,
        "reason": view.reason,
        "after_call": view.after_call or "",
        "ringing": view.state == "reserved",
    }


def pop(hotline: Hotline, view: SeatView) -> dict[str, Any] | None:
    """The screen pop of the call at this seat (without history), None if there is none."""
    if view.call_id is None:
        return None
    record = hotline.record(view.call_id)
    if record is None:
        return None
    live = hotline.desk().on_seat(view.name)
    return {
        "call_id": record.call_id,
        "status": "ringing" if view.state == "reserved" else "answered",
        "doing": live.state if live is not None and live.call_id == record.call_id else "",
        "entry": record.entry,
        "track": record.track,
        "menu_path": record.menu_path,
        "keys": record.keys,
        "caller": record.caller_masked,
        "unit": record.unit,
        "ticket_id": record.ticket_id,
        "started_at": record.started_at,
    }


def transfer_targets(table: RouteTable) -> dict[str, list[dict[str, str]]]:
    """The console's transfer buttons: one per unit's route, one per emergency line (routes.yaml only)."""
    units = [
        {"id": r.id, "unit": r.unit, "number": r.number}
        for r in table.routes.values()
        if r.targets  # a route with a line to ring
    ]
    emergency = [{"id": e.id, "unit": e.name, "number": e.number} for e in table.emergency]
    return {"units": units, "emergency": emergency}
