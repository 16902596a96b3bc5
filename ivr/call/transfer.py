"""An operator's call, from the moment the seat answers: talk, and on the operator's ask pass the
citizen on — always through the controller, never by SIP REFER (allow_transfer=no stays).

    attend(...)
      talk:        citizen and operator in the call's bridge; the operator's asks arrive as feature
                   codes on the seat's leg (only that leg is listened to) or from the HTTP API
      consult:     citizen on hold; the department rung and put through to the operator;
                   then complete (citizen <-> department, operator leaves) or cancel (back)
      three-way:   the department joins citizen and operator; the operator may leave, the two stay
      blind:       the operator leaves at once; the citizen goes down the department's ring chain,
                   and if nobody answers, back to the operators' queue at the front
      emergency:   an `emergency:` line of routes.yaml, the way it gives (three-way by default)

`attend` returns "ended" (someone hung up: the call is over) or "requeue". Every transfer is one
"transfer" step in the call log, written whatever happens (the citizen hanging up mid-way too):
kind, target, unit, number, operator, when asked and answered, each ring, and the outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from ivr.call.books import Books, Services
from ivr.call.control import BridgeResult, CallControl, LegEvent
from ivr.errors import AriError, CallEnded
from ivr.operators.desk import Command, Destination, FeatureCodes, LiveCall, TransferRefused, resolve
from ivr.routing.routes import RouteTable

log = structlog.get_logger("ivr.call.transfer")

Ending = Literal["ended", "requeue"]
# Outcomes after which the citizen is with the department and the operator has left.
HANDED_OVER = frozenset({"completed", "operator_left", "connected"})


@dataclass
class _Seat:
    """The operator's side of the call: their leg, their asks, and how their seat is freed."""

    call: CallControl
    books: Books
    svc: Services
    live: LiveCall
    leg: str
    release: Callable[[], None]  # the seat is free (after-call work begins)
    codes: FeatureCodes = field(default_factory=FeatureCodes)
    released: bool = False
    table: RouteTable | None = None  # the recording policy a transfer's answered leg is recorded under

    async def ask(self, legs: list[str]) -> LegEvent | Command:
        """The next hang-up among `legs`, or the operator's next ask (feature code or API)."""
        while True:
            got = await self.call.listen(legs, self.live.commands.get())
            if isinstance(got, Command):
                return got
            if got.key is None:
                return got
            if got.channel == self.leg:
                command = self.codes.feed(got.key)
                if command is not None:
                    log.info("feature_code", seat=self.live.seat, action=command.action, target=command.target)
                    return command

    def leave(self) -> None:
        if not self.released:
            self.released = True
            self.release()
            self.svc.desk.left(self.live)


@dataclass
class _Transfer:
    """One transfer's "transfer" step, filled in as it goes."""

    kind: str
    destination: Destination
    seat: str
    by: str
    asked_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    outcome: str = ""
    rang: list[dict[str, Any]] = field(default_factory=list)

    def detail(self) -> dict[str, Any]:
        dest = self.destination
        return {
            "kind": self.kind,
            "target": dest.name,
            "unit": dest.unit,
            "number": dest.number,
            "emergency": dest.emergency,
            "partner": dest.route.partner.name if dest.route and dest.route.partner else "",
            "operator": self.seat,
            "by": self.by,
            "asked_at": round(self.asked_at, 3),
            "answered_at": round(self.answered_at, 3) if self.answered_at else None,
            "rang": self.rang,
            "outcome": self.outcome,
            "handed_over": self.outcome in HANDED_OVER,
        }


async def attend(
    call: CallControl, books: Books, svc: Services, table: RouteTable, seat: str, leg: str, release: Callable[[], None]
) -> Ending:
    """The citizen and the operator at `seat` (answered on `leg`) talk; the operator may transfer."""
    live = svc.desk.open(books.record.call_id, seat, table, leg)
    me = _Seat(call, books, svc, live, leg, release, table=table)
    ending: Ending = "ended"
    try:
        await call.talk_with([leg])
        while True:
            live.state = "talking"
            got = await me.ask([leg])
            if isinstance(got, LegEvent):  # the operator hung up: the call is over, as before transfers
                books.talked(BridgeResult("callee", call.talk_seconds))
                return ending
            ending_now = await _act(me, table, got)
            if ending_now is not None:
                ending = ending_now
                return ending
    finally:
        svc.desk.left(live)
        if ending == "ended":
            svc.desk.ended(books.record.call_id)


async def _act(me: _Seat, table: RouteTable, command: Command) -> Ending | None:
    """Do one ask made while talking; None: the operator and the citizen talk on."""
    if command.action in ("pause", "sign_out"):
        state = "paused" if command.action == "pause" else "signed_out"
        if me.svc.seats is not None:
            me.svc.seats.set_state(me.live.seat, state, reason="feature code" if state == "paused" else "", by="dtmf")
        command.answer(f"accepted: {state} after this call")
        return None
    if command.action in ("complete", "cancel"):
        command.answer(f"refused: nothing to {command.action}: no consult or three-way in progress")
        log.info("transfer_refused", action=command.action, reason="no transfer in progress", by=command.by)
        return None
    try:
        destination = resolve(table, command.target)
        if command.action == "emergency" and not destination.emergency:
            raise TransferRefused(f"'{command.target}' is not an emergency line of routes.yaml")
    except TransferRefused as exc:
        command.answer(f"refused: {exc}")
        log.warning("transfer_refused", action=command.action, target=command.target[:40], reason=str(exc))
        return None
    kind = destination.way if command.action == "emergency" else command.action
    command.answer(f"accepted: {kind} to {destination.unit} {destination.number}")
    step = _Transfer(kind, destination, me.live.seat, command.by)
    log.info("transfer_started", kind=kind, target=destination.name, number=destination.number, by=command.by)
    try:
        if destination.route is not None and destination.route.partner is not None:
            me.books.notify_partner(destination.route)  # the webhook carries the operator's ticket
        if kind == "blind":
            return await _blind(me, step)
        if kind == "consult":
            return await _consult(me, step)
        return await _three_way(me, step)
    except CallEnded:
        step.outcome = step.outcome or "caller_hung_up"
        raise
    except AriError:
        step.outcome = step.outcome or "failed"
        raise
    finally:
        me.books.transferred(step.detail())
        log.info("transfer_ended", kind=kind, target=destination.name, outcome=step.outcome)


async def _ring(me: _Seat, step: _Transfer, *, ringback: bool) -> str | None:
    """Ring the destination's chain in order; the answered leg, or None (the step says why)."""
    record = me.books.record
    for target in step.destination.chain:
        result = await me.call.dial(
            target.dial_string,
            target.ring_seconds,
            caller_id=record.entry,
            label=step.destination.unit,
            ringback=ringback,
        )
        step.rang.append({"number": target.number, "status": result.status.value, "cause": result.cause})
        if result.ok:
            step.answered_at = result.answered or time.time()
            await _record(me, step.destination, result.channel)
            return result.channel
    step.outcome = step.rang[-1]["status"].lower() if step.rang else "no_line"
    return None


async def _record(me: _Seat, destination: Destination, leg: str) -> None:
    """A transfer's every leg a person answers is recorded as the call's first answered leg was."""
    # Imported here: ivr.call.session imports this module for `attend`.
    from ivr.call.session import record_answered
    from ivr.recording.policy import OPERATORS

    # Only a citizen already told (the notice before the operator answered) is recorded: a notice cannot be
    # played to them mid-conversation without breaking it, so with the operators' calls unrecorded it stays so.
    if me.table is None or not me.books.recording_announced:
        return
    mode = destination.route.mode.value if destination.route is not None else OPERATORS  # an emergency line
    await record_answered(me.call, me.books, me.table, mode, destination.unit, leg, destination.unit)


async def _consult(me: _Seat, step: _Transfer) -> Ending | None:
    call, leg = me.call, me.leg
    me.live.state = "consulting"
    await call.talk_with([leg], hold=True)
    department = await _ring(me, step, ringback=False)
    if department is None:
        await call.talk_with([leg])
        return None
    await call.talk_with([leg, department], hold=True)
    while True:
        got = await me.ask([leg, department])
        if isinstance(got, LegEvent) and got.channel == department:
            step.outcome = "department_left"
            await call.talk_with([leg])
            return None
        # The operator hanging up during a consult completes it: the citizen is never dropped.
        if isinstance(got, LegEvent) or got.action == "complete":
            if isinstance(got, Command):
                got.answer("accepted: completed")
            step.outcome = "completed"
            await call.talk_with([department])
            await call.drop(leg)
            me.leave()
            return await _with_department(me, department)
        if got.action == "cancel":
            await _cancel(me, step, got, department)
            return None
        got.answer("refused: a consult is in progress: complete or cancel it first")


async def _cancel(me: _Seat, step: _Transfer, got: Command, department: str) -> None:
    """Consult or three-way cancelled: the department is dropped, the operator has the citizen back."""
    got.answer("accepted: cancelled")
    step.outcome = "cancelled"
    await me.call.drop(department)
    await me.call.talk_with([me.leg])


async def _three_way(me: _Seat, step: _Transfer) -> Ending | None:
    call, leg = me.call, me.leg
    me.live.state = "three-way"
    department = await _ring(me, step, ringback=False)  # the citizen talks with the operator meanwhile
    if department is None:
        return None
    await call.talk_with([leg, department])
    while True:
        got = await me.ask([leg, department])
        if isinstance(got, LegEvent) and got.channel == department:
            step.outcome = "department_left"
            await call.talk_with([leg])
            return None
        if isinstance(got, LegEvent) or got.action == "complete":  # the operator leaves; the two stay
            if isinstance(got, Command):
                got.answer("accepted: operator left")
            step.outcome = "operator_left"
            await call.drop(leg)
            me.leave()
            await call.talk_with([department])
            return await _with_department(me, department)
        if got.action == "cancel":
            await _cancel(me, step, got, department)
            return None
        got.answer("refused: a three-way call is in progress: leave or cancel it first")


async def _blind(me: _Seat, step: _Transfer) -> Ending:
    call = me.call
    me.live.state = "transferring"
    await call.drop(me.leg)
    me.leave()
    await call.talk_with([])  # the citizen alone, hearing the department's line ring
    department = await _ring(me, step, ringback=True)
    if department is None:
        step.outcome = "requeued"  # after the chain's last status, kept in `rang`
        return "requeue"
    step.outcome = "connected"
    await call.talk_with([department])
    return await _with_department(me, department)


async def _with_department(me: _Seat, department: str) -> Ending:
    """The citizen and the department talk until one hangs up (the citizen: CallEnded)."""
    me.live.state = "transferred"
    await me.call.listen([department], asyncio.Event().wait())
    me.books.talked(BridgeResult("callee", me.call.talk_seconds))
    return "ended"
