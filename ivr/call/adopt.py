"""Calls a dead controller left behind, found at start-up and carried on (issue 21).

A controller killed with `kill -9` loses its memory, but Asterisk keeps every channel it held in
the Stasis app, and every bridge it made. What the next controller needs to know it reads from
Asterisk and the call log, so the call path pays nothing for it:

- a dialled leg's id is `<call_id>-out<n>` and a bridge's `<call_id>-br<n>` / `<call_id>-talk<n>`
  (ivr.call.ari_call): they name their call;
- the bridge's `creationtime` is when the conversation began (it is made as the leg answers);
- the leg's HOTLINE_TARGET (set when it was created) says whether a person at the operators
  or a department answered;
- the citizen's channel id is in the call's row, written when the call arrived; its ticket,
  written when it was opened, gives the unit and the route.

`sort_leftovers` decides, purely, what each leftover is; `adopt_call` carries one conversation to
its end, like `handle_call` from the bridge on.

A caller the dead controller had sent down a ring chain (HOTLINE_DIAL_PATH=dialplan) is out of Stasis,
but still among the app's channels (the subscription to it outlives the controller): Asterisk rings the
chain, or carries the conversation Dial bridged, on its own. `in_chain` finds those callers (their
dialplan context is the chain's); `adopt_chain` follows each from where Asterisk has it to the call's
end, as `handle_call` would have from `ring_route` on.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from ivr.call.ari_call import AriCall
from ivr.call.books import Books, Services
from ivr.call.session import after_the_ring, to_its_end
from ivr.calllog.records import CallRecord, Outcome
from ivr.routing.dialplan import CHAIN_CONTEXT
from ivr.routing.routes import RouteTable

_LEG = re.compile(r"^(?P<call>.+)-out(?P<seq>\d+)$")
_BRIDGE = re.compile(r"^(?P<call>.+)-(?P<kind>br|talk)(?P<seq>\d+)$")

OPERATOR_TARGETS = "operators"  # HOTLINE_TARGET of the operators' group line; a seat's is its name
ENTRY_CONTEXT = "hotline-entry"  # dialplan/extensions.conf: where a citizen's call enters Stasis


@dataclass(frozen=True)
class Talking:
    """A citizen and the person(s) they talk to, up in one bridge: the conversation goes on."""

    call_id: str
    citizen: str
    legs: tuple[str, ...]
    bridge: str
    since: float  # Unix seconds: the bridge was made as the leg answered


@dataclass(frozen=True)
class Waiting:
    """A citizen not talking to anyone (in the menu, the queue, a prompt, a ring): the menu again."""

    citizen: str
    call_id: str  # "" when the call log has no row for the channel
    caller_number: str
    entry: str  # the number dialled, from the channel's dialplan position ("" when it is not there)
    legs: tuple[str, ...] = ()  # its lines still ringing or held: hung up first
    seq: int = 0  # the highest sequence number in the ids of its legs and bridges still up: new ones go above


@dataclass
class Leftovers:
    talking: list[Talking] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    stray_legs: list[str] = field(default_factory=list)  # legs whose citizen is gone: hung up
    stray_bridges: list[str] = field(default_factory=list)  # our bridges nobody talks in any more: destroyed
    unknown: list[str] = field(default_factory=list)  # channels of no call we know: to the dialplan fallback


def call_of_leg(channel: str) -> str | None:
    match = _LEG.match(channel)
    return match["call"] if match else None


def call_of_bridge(bridge: str) -> str | None:
    match = _BRIDGE.match(bridge)
    return match["call"] if match else None


def created_at(item: Mapping[str, Any]) -> float | None:
    """A channel's or bridge's `creationtime` as Unix seconds (Asterisk: 2026-12-05T07:01:02.345+0000)."""
    text = str(item.get("creationtime") or "")
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


def sort_leftovers(
    channels: Iterable[Mapping[str, Any]],
    bridges: Iterable[Mapping[str, Any]],
    calls_by_channel: Mapping[str, str],
    *,
    now: float,
) -> Leftovers:
    """What each channel in our app (not a call of ours) and each of our bridges is.

    `channels`: GET /channels of our app's channels no running call knows; `bridges`: GET /bridges;
    `calls_by_channel`: citizen channel id -> call id, from the call log's rows.
    """
    chans = {str(c["id"]): c for c in channels}
    bridges = list(bridges)
    seq: dict[str, int] = {}  # call id -> the highest sequence number its leftovers' ids use
    for name, pattern in [*((cid, _LEG) for cid in chans), *((str(b.get("id", "")), _BRIDGE) for b in bridges)]:
        if match := pattern.match(name):
            seq[match["call"]] = max(seq.get(match["call"], 0), int(match["seq"]))
    legs_of: dict[str, list[str]] = {}
    citizens: dict[str, str] = {}  # call id -> its citizen's channel
    for cid in chans:
        call = call_of_leg(cid)
        if call is not None:
            legs_of.setdefault(call, []).append(cid)
        elif cid in calls_by_channel:
            citizens[calls_by_channel[cid]] = cid
    out = Leftovers()
    talking: set[str] = set()
    for bridge in bridges:
        bid = str(bridge.get("id", ""))
        call = call_of_bridge(bid)
        if call is None:
            continue  # not one of ours
        members = [str(m) for m in bridge.get("channels") or []]
        citizen = citizens.get(call)
        if citizen is None:
            # The call log may have missed the row (a kill within milliseconds of the arrival):
            # the bridge's other member, not a leg, is the citizen.
            others = [m for m in members if m in chans and call_of_leg(m) is None and m not in calls_by_channel]
            if len(others) == 1:
                citizen = citizens[call] = others[0]
        legs = tuple(m for m in members if m in legs_of.get(call, ()))
        if citizen is not None and citizen in members and legs and call not in talking:
            talking.add(call)
            out.talking.append(Talking(call, citizen, legs, bid, created_at(bridge) or now))
        else:
            out.stray_bridges.append(bid)
    for call, citizen in citizens.items():
        if call in talking:
            continue
        chan = chans[citizen]
        caller = chan.get("caller") or {}
        dialplan = chan.get("dialplan") or {}
        out.waiting.append(
            Waiting(
                citizen,
                call if calls_by_channel.get(citizen) == call else "",
                str(caller.get("number", "")),
                str(dialplan.get("exten", "")),
                tuple(sorted(legs_of.get(call, ()))),
                seq.get(call, 0),
            )
        )
    seen = set(citizens.values())
    adopted = {t.call_id: t.legs for t in out.talking}
    for call, its_legs in legs_of.items():
        if call not in citizens:  # the citizen hung up while no controller watched
            out.stray_legs.extend(sorted(its_legs))
        elif call in adopted:  # e.g. a line rung for a transfer: not part of the conversation
            out.stray_legs.extend(sorted(leg for leg in its_legs if leg not in adopted[call]))
        seen.update(its_legs)
    for cid in sorted(cid for cid in chans if cid not in seen):
        chan = chans[cid]
        if (chan.get("dialplan") or {}).get("context") == ENTRY_CONTEXT:
            # A citizen who had just arrived: the dead controller's write of their row had not reached
            # the call log (a kill within milliseconds). The menu again, with a new row: sent to the
            # fallback instead, the call would have no row at all (its stasis is not FAILED).
            out.waiting.append(Waiting(cid, "", str((chan.get("caller") or {}).get("number", "")), ""))
        else:
            out.unknown.append(cid)
    return out


def outcome_for(bridge: str, targets: Iterable[str]) -> Outcome:
    """Who answered: an operator (a seat's talk bridge, or the operators' line) or a department.

    `targets`: the legs' HOTLINE_TARGET. A seat's call is always in a talk bridge (ivr.call.transfer),
    the operators' group line (no seats) in a plain one like a department's.
    """
    match = _BRIDGE.match(bridge)
    if (match is not None and match["kind"] == "talk") or OPERATOR_TARGETS in targets:
        return Outcome.OPERATOR
    return Outcome.CONNECTED


async def adopt_call(
    call: AriCall, found: Talking, record: CallRecord, outcome: Outcome, svc: Services, seat: str = ""
) -> None:
    """Carry a conversation a dead controller bridged to its end, and complete its record.

    The bridge is left alone: the citizen and the department (or operator) go on talking. When
    either side hangs up, the other is hung up, and the row says who ended it and how long they
    talked (from the bridge's creation, when the leg answered). An operator's `seat` stays busy
    in this controller's queue until then.
    """
    books = Books(record, svc, call.caller_number)
    books.adopted(outcome, found.bridge, found.legs, found.since)
    busy = svc.seats.taken_over(seat, record.call_id) if svc.seats is not None and seat else nullcontext()
    async with to_its_end(call, books):
        with busy:
            talked = await call.resume_talk(found.bridge, found.legs, found.since)
        books.talked(talked)


@dataclass(frozen=True)
class InChain:
    """A caller a dead controller had sent down a route's ring chain: in Asterisk's dialplan, not our app."""

    call_id: str
    citizen: str
    caller_number: str
    since: float | None  # Unix seconds: the conversation Dial bridged began; None while the chain rings
    peer: str = ""  # the department's channel (Asterisk's own, made by Dial) while they talk


def in_chain(
    channels: Iterable[Mapping[str, Any]],
    bridges: Iterable[Mapping[str, Any]],
    calls_by_channel: Mapping[str, str],
    *,
    now: float,
) -> list[InChain]:
    """The callers among `channels` (the app's, GET /channels) that a ring chain holds.

    Only those with a row in the call log (`calls_by_channel`: citizen channel id -> call id) are
    ours; a caller in a bridge (Dial's own, GET /bridges) is talking since the bridge was made.
    """
    bridge_of = {str(m): b for b in bridges for m in b.get("channels") or []}
    found = []
    for chan in channels:
        cid = str(chan.get("id", ""))
        if (chan.get("dialplan") or {}).get("context") != CHAIN_CONTEXT or cid not in calls_by_channel:
            continue
        number = str((chan.get("caller") or {}).get("number", ""))
        bridge = bridge_of.get(cid)
        if bridge is None:
            found.append(InChain(calls_by_channel[cid], cid, number, None))
            continue
        peer = next((str(m) for m in bridge.get("channels") or [] if str(m) != cid), "")
        found.append(InChain(calls_by_channel[cid], cid, number, created_at(bridge) or now, peer))
    return found


async def adopt_chain(call: AriCall, found: InChain, record: CallRecord, table: RouteTable, svc: Services) -> None:
    """Follow a caller a dead controller had sent down a ring chain to the end of the call.

    Nothing of what Asterisk does is touched: a conversation goes on; a chain still ringing rings
    on. When the department hangs up, the caller is back with us for the ticket number and the
    survey; a chain nobody answered leads to the operators, as on any call. The row, marked
    `interrupted` when this controller started, is in progress again from here.
    """
    books = Books(record, svc, call.caller_number)
    books.adopted_in_chain(found.since, found.peer)
    async with to_its_end(call, books):
        result = await call.follow_chain(found.since)
        if result.ok:
            if found.since is None:
                books.connected(Outcome.CONNECTED)
            books.talked(await call.talked_in_dialplan())
        await after_the_ring(call, books, table, svc, table.routes.get(record.route_id), result)
