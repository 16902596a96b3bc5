"""One operators' queue across the cluster's nodes: who gets which seat, decided over the shared state.

On the cluster profile every node holds its own callers (their calls, prompts and whole story stay in
that node's handle_call), but the line and the seats are one: the waiting callers of every node and
the seats' states live in the shared PostgreSQL (ivr.operators.shared). `plan` is the decision the
node that runs a dispatch takes for ALL nodes at once, under one database lock, so two nodes never
hand one seat to two callers and the longest-waiting caller goes first wherever they wait:

- Callers without a seat are served front-of-line first (back from a failed transfer), then by the
  time they joined, then by call id (a stable tie-break both nodes agree on).
- A seat row's holder is the one record of who a seat rings or talks for: a caller it names is
  seated (ringing or connected) and a seat that names a caller is not free.
- A seat is offered only while its operator is ready, it holds no call and no live claim: the
  longest-idle seat not on a no-answer penalty first, then any penalised one, ties by name.
- Every row a node writes carries a lease the node renews while it runs. A row whose lease ran
  out belongs to a node that died: its waiting callers leave the line and the seats it held are
  free again (idle from the moment the lease ran out) — no seat stays reserved by a dead node.

Pure: no database, no clock; the caller passes `now` and the rows as read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Waiting:
    """One caller in the shared line, as its node wrote it."""

    call_id: str
    node: str
    joined_at: float
    lease_until: float
    front: bool = False


@dataclass(frozen=True)
class SharedSeat:
    """One seat as the shared state knows it."""

    name: str
    presence: str  # signed_out, ready, paused, wrap_up (ivr.operators.queue.Presence)
    idle_since: float
    holder: str | None = None  # call id of the caller it is offered to or talking with
    holder_node: str | None = None
    lease_until: float | None = None  # the holder node's lease on the seat
    penalty_until: float | None = None  # rang unanswered: offered last until then


@dataclass(frozen=True)
class Plan:
    """What a dispatch changes: seats given to callers, rows of dead nodes dropped or freed."""

    offers: tuple[tuple[str, str], ...] = ()  # (call id, seat), first in line first
    expired_callers: tuple[str, ...] = ()  # call ids whose node's lease ran out: out of the line
    freed_seats: tuple[tuple[str, float], ...] = ()  # (seat, idle since) whose holder's lease ran out


def _alive(lease_until: float | None, now: float) -> bool:
    return lease_until is not None and lease_until > now


def line_order(waiting: Iterable[Waiting]) -> list[Waiting]:
    """The one line across nodes: front first, then the longest waiting, then call id."""
    return sorted(waiting, key=lambda w: (not w.front, w.joined_at, w.call_id))


def plan(waiting: Iterable[Waiting], seats: Iterable[SharedSeat], now: float) -> Plan:
    """Give the free ready seats to the first callers in the one line who have none."""
    waiting, seats = list(waiting), list(seats)
    expired = tuple(w.call_id for w in line_order(waiting) if not _alive(w.lease_until, now))
    live = [w for w in line_order(waiting) if _alive(w.lease_until, now)]
    freed: list[tuple[str, float]] = []
    free: list[SharedSeat] = []
    for seat in seats:
        if seat.holder is not None and not _alive(seat.lease_until, now):
            idle = seat.lease_until if seat.lease_until is not None else now
            freed.append((seat.name, idle))
            seat = SharedSeat(seat.name, seat.presence, idle, penalty_until=seat.penalty_until)
        if seat.holder is None and seat.presence == "ready":
            free.append(seat)
    free.sort(key=lambda s: (s.penalty_until is not None and s.penalty_until > now, s.idle_since, s.name))
    seated = {s.holder for s in seats if s.holder is not None and _alive(s.lease_until, now)}
    unseated = [w for w in live if w.call_id not in seated]
    offers = tuple((w.call_id, s.name) for w, s in zip(unseated, free, strict=False))
    return Plan(offers=offers, expired_callers=expired, freed_seats=tuple(freed))


def position(waiting: Iterable[Waiting], call_id: str, now: float) -> int:
    """1 = next in the one line; 0 = not in it. Counts live callers ahead, ringing or not."""
    for index, w in enumerate((w for w in line_order(waiting) if _alive(w.lease_until, now)), start=1):
        if w.call_id == call_id:
            return index
    return 0
