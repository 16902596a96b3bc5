"""The operator's desk: what an operator may ask of the call they are on, and how the ask reaches it.

Two ways in, one meaning:
- feature codes typed on the seat phone (`FeatureCodes`), heard only from the seat's channel —
  a citizen pressing the same keys is never listened to (ivr.call.transfer reads the seat's leg);
- the controller's HTTP API (ivr.controller.api), for the console to come.
Both become a `Command` put on the seat's live call (`Desk`), which the call's own coroutine
takes when it is ready (ivr.call.transfer); nothing here touches Asterisk.

Only a number written in routes.yaml — a route's line, one of its overflow lines, an `emergency:`
line — can be a destination (`resolve`): an operator cannot dial anything else through us.

Feature codes (README "For operators"):
    *1 NUMBER #   consult: the citizen on hold, the operator talks to NUMBER first
    *2 NUMBER #   three-way (三方通话): citizen, operator and NUMBER together
    *3 NUMBER #   blind: the citizen goes down NUMBER's ring chain, the operator leaves
    *4 NUMBER #   emergency line (110/119/120): the way routes.yaml gives it (three-way by default)
    *5 #          complete a consult / leave a three-way (the other two stay)
    *6 #          cancel: drop the department, back to the citizen
    *7 #          pause (小休) after this call          *8 #   sign out after this call
NUMBER is digits, as a phone has: a route's published number, an overflow line's or an emergency
line's number. The API also takes a route's or an emergency line's id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from ivr.errors import TransferRefused
from ivr.routing.routes import Route, RouteTable, Target

__all__ = ["Command", "Desk", "Destination", "FeatureCodes", "TransferRefused", "resolve", "seat_token"]

Action = Literal["consult", "three-way", "blind", "emergency", "complete", "cancel", "pause", "sign_out"]
TRANSFER_ACTIONS: frozenset[str] = frozenset({"consult", "three-way", "blind", "emergency"})
CALL_ACTIONS: frozenset[str] = TRANSFER_ACTIONS | {"complete", "cancel"}
CODES: dict[str, Action] = {
    "1": "consult",
    "2": "three-way",
    "3": "blind",
    "4": "emergency",
    "5": "complete",
    "6": "cancel",
    "7": "pause",
    "8": "sign_out",
}
ENDED_KEPT = 1000  # recently ended call ids remembered, to tell "ended" from "never was"


@dataclass(frozen=True)
class Destination:
    """Where a transfer goes: a number of routes.yaml and the ring chain that follows it."""

    name: str  # route id or emergency line id
    unit: str  # the responsible unit, or the emergency line's name
    number: str  # the number asked for
    chain: tuple[Target, ...]  # rung in order (a blind transfer goes down all of it)
    route: Route | None = None  # None for an emergency line
    way: str = ""  # an emergency line's own way (three-way unless routes.yaml says otherwise)

    @property
    def emergency(self) -> bool:
        return self.route is None


def resolve(table: RouteTable, asked: str) -> Destination:
    """The destination `asked` names: a route id or number, an overflow number, an emergency id or number."""
    asked = asked.strip()
    for line in table.emergency:
        if asked in (line.id, line.number):
            target = Target(line.number, line.trunk, line.ring_seconds)
            return Destination(line.id, line.name, line.number, (target,), None, line.transfer)
    for route in table.routes.values():
        chain = route.targets
        if asked in (route.id, route.number):
            return Destination(route.id, route.unit, route.number, chain, route)
        for n, target in enumerate(chain):
            if asked == target.number:
                return Destination(route.id, route.unit, target.number, chain[n:], route)
    raise TransferRefused(
        f"'{asked[:40]}' is not a number in routes.yaml (a route, an overflow line or an emergency line)", 422
    )


@dataclass
class Command:
    """One ask of the operator for the call at their seat."""

    action: Action
    target: str = ""  # for the transfer actions: what `resolve` reads
    by: str = "api"  # "api" or "dtmf"
    reply: asyncio.Future[str] | None = None  # told "accepted: ..." or "refused: ..." when taken

    def answer(self, text: str) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_result(text)


class FeatureCodes:
    """Keys from the seat phone, one at a time, into Commands: `*` + a digit + digits + `#`.

    Anything else is dropped quietly: a stray key of the operator must not do anything.
    """

    def __init__(self, max_len: int = 20) -> None:
        self._typed: str | None = None  # None: not inside a code
        self._max = max_len

    def feed(self, key: str) -> Command | None:
        if key == "*":
            self._typed = ""
            return None
        if self._typed is None:
            return None
        if key != "#":
            self._typed = self._typed + key if len(self._typed) < self._max and key.isdigit() else None
            return None
        typed, self._typed = self._typed, None
        action = CODES.get(typed[:1])
        if action is None:
            return None
        return Command(action, typed[1:], by="dtmf")


@dataclass
class LiveCall:
    """A call an operator is on now: where its commands wait, and what it is doing."""

    call_id: str
    seat: str
    table: RouteTable
    state: str = "talking"  # talking, consulting, three-way, transferring, transferred
    leg: str = ""  # the operator's channel (a supervisor listens in on it: ivr.operators.supervise)
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # set when the operator is off the call
    commands: asyncio.Queue[Command] = field(default_factory=asyncio.Queue)
    since: float = field(default_factory=time.time)


class Desk:
    """Which seat is on which call now, and the commands on their way to those calls."""

    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._ended: OrderedDict[str, float] = OrderedDict()

    def open(self, call_id: str, seat: str, table: RouteTable, leg: str = "") -> LiveCall:
        live = LiveCall(call_id, seat, table, leg=leg)
        self._calls[call_id] = live
        return live

    def left(self, live: LiveCall) -> None:
        """The operator is off the call (transferred it, or it ended): no more commands for it."""
        if self._calls.get(live.call_id) is live:
            del self._calls[live.call_id]
        live.gone.set()
        while not live.commands.empty():
            live.commands.get_nowait().answer("refused: the operator is no longer on this call")

    def ended(self, call_id: str) -> None:
        self._ended[call_id] = time.time()
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)

    def has_ended(self, call_id: str) -> bool:
        return call_id in self._ended

    def calls(self) -> list[LiveCall]:
        return list(self._calls.values())

    def on_seat(self, seat: str) -> LiveCall | None:
        return next((c for c in self._calls.values() if c.seat == seat), None)

    def submit(self, call_id: str, command: Command, *, seat: str | None = None) -> LiveCall:
        """Queue `command` for the call; TransferRefused (nothing queued) if it cannot be asked.

        `seat`: the asking operator's seat (None: a supervisor's token, any seat).
        """
        live = self._calls.get(call_id)
        if live is None:
            if call_id in self._ended:
                raise TransferRefused(f"call {call_id[:40]} has already ended", 409)
            raise TransferRefused(f"no call {call_id[:40]} is at an operator", 404)
        if seat is not None and live.seat != seat:
            raise TransferRefused(f"call {call_id} is at seat {live.seat}, not {seat}", 403)
        if command.action not in CALL_ACTIONS:
            raise TransferRefused(f"unknown action {command.action!r} (one of: {', '.join(sorted(CALL_ACTIONS))})")
        if command.action in TRANSFER_ACTIONS:
            if not command.target:
                raise TransferRefused(f"a {command.action} transfer needs a target (a number in routes.yaml)")
            destination = resolve(live.table, command.target)
            if command.action == "emergency" and not destination.emergency:
                raise TransferRefused(f"'{command.target}' is not an emergency line of routes.yaml", 422)
        live.commands.put_nowait(command)
        return live


def seat_token(key: bytes, seat: str) -> str:
    """The API token of one seat's operator ('*': the supervisor's, any seat), derived from the controller's key."""
    return hmac.new(key, f"hotline-seat-token:{seat}".encode(), hashlib.sha256).hexdigest()[:40]


def token_seat(key: bytes, token: str, seats: list[str]) -> str | None:
    """Whose token this is: a seat name, '*' for the supervisor, None for nobody."""
    for seat in ["*", *seats]:
        if hmac.compare_digest(token.encode(), seat_token(key, seat).encode()):
            return seat
    return None
