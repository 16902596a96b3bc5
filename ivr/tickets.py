"""Tickets and their deadlines (限时办结): every served call, message or hand-off is due back.

Each routed call, hand-off, operator call and message gets a ticket the moment the hotline
takes responsibility for it. The ticket's deadline is a number of *official* workdays
(工作日, from the table's calendar, ivr/routing/calendar.py: State Council holidays and 调休 make-up
days included),
configured in routes.yaml under ``deadlines:`` and parsed into a DeadlinePolicy.

The deadline rule (what ``DeadlinePolicy.deadline`` computes), stated once:

    The deadline is the same time of day on the N-th official workday *after* the day the
    ticket was created. The creation day itself never counts — not even when it is a
    workday and the call came in at 08:00 — so a ticket always gets N whole workdays, and
    a ticket created on a rest day (weekend, holiday) counts from the next workday like
    any other. Example: created Wed 2026-09-30 10:00 with 3 workdays → Oct 1–7 are the
    National Day holiday, Oct 8 (Thu) is workday 1, Oct 9 (Fri) workday 2, Sat Oct 10 (a
    调休 make-up workday) workday 3 → due 2026-10-10 10:00.

Time: datetimes here are naive local time in Asia/Shanghai, like ivr.routing.hours (an aware one is
refused); the stored ``created_at`` / ``deadline_at`` are Unix seconds, like the call log's
times, converted in the city's zone whatever zone the machine runs in.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ivr.routing.calendar import PACKAGE_ONLY, Calendar
from ivr.timekeeping import LOCAL_TZ

__all__ = [
    "POLICY_KINDS",
    "TICKET_ID_RE",
    "DeadlinePolicy",
    "Ticket",
    "from_epoch",
    "new_ticket",
    "to_epoch",
]

POLICY_KINDS = ("merge", "transfer", "interconnect", "operator", "message")
"""What a ticket is for, and the keys `deadlines.by_mode` accepts: the route's mode for a call
routed to a department, "operator" for a call the 12345 operators took, "message" for 留言."""

TICKET_PREFIX = "12345"
# 12345-<local date>-<6 hex>, or with a cluster node's id: 12345-<date>-<node>-<6 hex>.
TICKET_ID_RE = re.compile(r"12345-[0-9]{8}-(?:[a-z0-9]{1,12}-)?[0-9a-f]{6}")
NODE_ID_RE = re.compile(r"[a-z0-9]{1,12}")
"""A ticket id, e.g. 12345-20261125-7f3a9c: the hotline, the local date, 6 hex digits."""

MAX_WORKDAYS = 366
"""More workdays than this is a typo in routes.yaml (a year and a half), not a policy."""


def _require_naive(at: dt.datetime) -> None:
    if at.tzinfo is not None:
        raise ValueError(f"{at.isoformat()} is timezone-aware; pass naive Asia/Shanghai local time")


def to_epoch(local: dt.datetime) -> float:
    """Unix seconds of a naive Asia/Shanghai local time (independent of the machine's zone)."""
    _require_naive(local)
    return local.replace(tzinfo=LOCAL_TZ).timestamp()


def from_epoch(seconds: float) -> dt.datetime:
    """The naive Asia/Shanghai local time of Unix `seconds` (for display and day counting)."""
    return dt.datetime.fromtimestamp(seconds, LOCAL_TZ).replace(tzinfo=None)


def _frozen(name: str, mapping: Mapping[str, int], allowed: tuple[str, ...] | None) -> Mapping[str, int]:
    for key, days in mapping.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"deadlines.{name}: {key!r} is not a name")
        if allowed is not None and key not in allowed:
            raise ValueError(f"deadlines.{name}: unknown kind {key!r} (expected one of: {', '.join(allowed)})")
        _check_workdays(f"deadlines.{name}.{key}", days)
    return MappingProxyType(dict(mapping))  # a private copy: later changes to the caller's dict do not leak in


def _check_workdays(where: str, days: object) -> None:
    # bool is an int in Python; "true" in YAML is not a number of days.
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_WORKDAYS:
        raise ValueError(f"{where}: {days!r} is not a number of workdays (1..{MAX_WORKDAYS})")


@dataclass(frozen=True)
class DeadlinePolicy:
    """How many official workdays a ticket has, from routes.yaml ``deadlines:``.

    Most specific wins: the unit (按责转办 — a department's own commitment) over the kind
    (how the citizen was served, see POLICY_KINDS) over the default. The mappings are stored
    as read-only copies, so a policy shared by every call cannot be changed under them, and
    the policy stays hashable and comparable like any frozen dataclass. Invalid values raise
    ValueError naming the key; the routes.yaml loader adds FILE:LINE.
    """

    default_workdays: int = 5
    by_mode: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    by_unit: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    calendar: Calendar = field(default=PACKAGE_ONLY, compare=False, repr=False)  # the table's, notices included

    def __post_init__(self) -> None:
        _check_workdays("deadlines.default_workdays", self.default_workdays)
        object.__setattr__(self, "by_mode", _frozen("by_mode", self.by_mode, POLICY_KINDS))
        object.__setattr__(self, "by_unit", _frozen("by_unit", self.by_unit, None))

    def __hash__(self) -> int:
        # Explicit because a mappingproxy is not hashable; equal policies hash equal.
        return hash((self.default_workdays, frozenset(self.by_mode.items()), frozenset(self.by_unit.items())))

    def workdays_for(self, kind: str, unit: str) -> int:
        """Workdays a ticket of `kind` for `unit` has: unit, else kind, else the default.

        An unknown kind gets the default rather than an error: a ticket must never fail a call.
        """
        if unit in self.by_unit:
            return self.by_unit[unit]
        return self.by_mode.get(kind, self.default_workdays)

    def deadline(self, kind: str, unit: str, created: dt.datetime) -> dt.datetime:
        """When a ticket created at `created` (naive local) is due; the rule is in the module doc."""
        _require_naive(created)
        left = self.workdays_for(kind, unit)
        day = created.date()
        while left:
            day += dt.timedelta(days=1)
            if self.calendar.is_workday(day):
                left -= 1
        return dt.datetime.combine(day, created.time())


@dataclass(frozen=True)
class Ticket:
    """One ticket as opened; closing and the survey are recorded in the call log, not here.

    kind: see POLICY_KINDS. mode: the route's mode ("" when no route, e.g. an operator call).
    created_at, deadline_at: Unix seconds.
    """

    ticket_id: str
    call_id: str
    kind: str
    unit: str
    mode: str
    route_id: str
    created_at: float
    deadline_at: float
    status: str = "open"
    workdays: int = 0  # the policy's budget at opening (a reopened ticket gets it again); 0: not known


class _Slots:
    """Hands out each day's 6-hex ticket numbers, never the same one twice in a process.

    Random hex would collide: 24 bits give a 50% chance of a duplicate somewhere among ~4,800
    tickets of one day, and a busy city hotline opens more than that. So the number is the
    time of day, seconds since local midnight * 128 + a counter — up to 128 tickets a second,
    borrowing the next second's numbers in a burst — which stays unique across a restart too,
    as long as the clock does not go back and there is one issuing controller. The call log
    still refuses a duplicate id (and logs it) rather than overwrite a ticket. Controllers of a
    cluster, sharing one database, each put their node id in the number (HOTLINE_NODE), so two
    nodes opening tickets in the same second cannot collide.
    """

    PER_SECOND = 128
    LIMIT = 0xFFFFFF

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[dt.date, int] = {}

    def take(self, created: dt.datetime) -> int:
        seconds = created.hour * 3600 + created.minute * 60 + created.second
        day = created.date()
        with self._lock:
            slot = max(seconds * self.PER_SECOND, self._last.get(day, -1) + 1)
            if slot > self.LIMIT:
                raise RuntimeError(f"no ticket numbers left for {day}")
            self._last[day] = slot
            for old in [d for d in self._last if d < day - dt.timedelta(days=2)]:
                del self._last[old]
        return slot

    def resume_after(self, day: dt.date, slot: int) -> None:
        with self._lock:
            self._last[day] = max(self._last.get(day, -1), slot)


_slots = _Slots()


def ticket_prefix(day: dt.date, node: str = "") -> str:
    """What every ticket id one issuer (a controller; `node` in a cluster) opens on `day` starts with."""
    return f"{TICKET_PREFIX}-{day:%Y%m%d}-" + (f"{node}-" if node else "")


def resume_numbering(day: dt.date, last_ticket_id: str | None, node: str = "") -> None:
    """Continue `day`'s numbers after `last_ticket_id`, the last one this issuer wrote (the call log knows).

    A restarted controller would otherwise trust the clock alone, and a clock that went back
    (an NTP step, a drill's simulated clock starting again) would hand out numbers already
    given: the call log refuses those tickets, so they would be lost.
    """
    prefix = ticket_prefix(day, node)
    if not last_ticket_id or not last_ticket_id.startswith(prefix):
        return
    try:
        slot = int(last_ticket_id[len(prefix) :], 16)
    except ValueError:
        return  # not one of ours (another issuer's format): nothing to continue from
    _slots.resume_after(day, slot)


def new_ticket(
    call_id: str,
    kind: str,
    unit: str,
    mode: str,
    route_id: str,
    created: dt.datetime,
    policy: DeadlinePolicy,
    node: str = "",
) -> Ticket:
    """Open a ticket created at `created` (naive local time), due per `policy`.

    `node` is this controller's node id in a cluster ("" for a single controller).
    """
    _require_naive(created)
    if node and not NODE_ID_RE.fullmatch(node):
        raise ValueError(f"node id must be 1-12 lowercase letters or digits, got {node!r}")
    ticket_id = f"{ticket_prefix(created.date(), node)}{_slots.take(created):06x}"
    due = policy.deadline(kind, unit, created)
    return Ticket(
        ticket_id=ticket_id,
        call_id=call_id,
        kind=kind,
        unit=unit,
        mode=mode,
        route_id=route_id,
        created_at=to_epoch(created),
        deadline_at=to_epoch(due),
        workdays=policy.workdays_for(kind, unit),
    )
