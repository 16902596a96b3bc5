"""One citizen's call, top to bottom: answer, menu, route, dial, bridge, log.

`handle_call` is the whole story of a call in one coroutine. The decisions come from
ivr.routing.menu.Navigator (the same code `hotline simulate` runs); this module only performs them.
The record is written when the call arrives and, whatever happens, in `finally` when it ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from ivr.call.control import CallControl, DialResult
from ivr.calllog import CallLog
from ivr.calllog.records import CallRecord
from ivr.errors import AriError, CallEnded
from ivr.handoff.webhook import Handoff, WebhookTarget
from ivr.metrics import Metrics
from ivr.operators.queue import QueueFull, QueueTimeout, SeatPool
from ivr.prompts import Prompts
from ivr.routing.menu import Ask, Decision, Navigator, Track
from ivr.routing.notices import Notice
from ivr.routing.routes import Route, RouteTable
from ivr.tickets import DeadlinePolicy, new_ticket
from ivr.timekeeping import LOCAL_TZ

log = structlog.get_logger("ivr.call.session")


class HandoffSender(Protocol):
    """Sends a hand-off's context to the partner platform (ivr.handoff.webhook.WebhookSender)."""

    def submit(self, target: WebhookTarget, handoff: Handoff) -> None: ...


@dataclass(frozen=True)
class Services:
    """What a call needs from the running controller."""

    calllog: CallLog
    prompts: Prompts
    clock: Callable[[], dt.datetime]  # local (Asia/Shanghai) wall clock, naive
    deadlines: DeadlinePolicy = DeadlinePolicy()
    webhooks: HandoffSender | None = None
    partner_secrets: Mapping[str, bytes] = field(default_factory=dict)  # partner name -> HMAC secret
    seats: SeatPool | None = None  # the operator queue, shared by all calls
    metrics: Metrics = field(default_factory=Metrics)
    node: str = ""  # this controller's node id in a cluster (HOTLINE_NODE): part of ticket numbers
    notices: Callable[[RouteTable, str], Sequence[Notice]] | None = None  # (call's table, entry) -> live notices


async def handle_call(call: CallControl, record: CallRecord, table: RouteTable, svc: Services) -> None:
    """Run one call to its end. `table` is the routing table as it was when the call arrived."""
    svc.calllog.call_started(record)
    svc.metrics.call_started()
    log.info("call_arrived", routes_version=table.digest)
    try:
        await call.answer()
        record.answered_at = time.time()
        record.step("answered")

        notices = svc.notices(table, record.entry) if svc.notices else ()
        for notice in notices:  # 紧急公告: heard before the menu (ivr.routing.notices)
            record.step("notice", notice=notice.id, prompt=notice.prompt, to_operators=notice.to_operators)
            await call.play([svc.prompts.sound(notice.prompt)])
        if any(notice.to_operators for notice in notices):
            track: Track = "menu" if record.entry == table.hotline_number else "direct"
            decision = Decision("operator", "notice", track)
        else:
            decision = await navigate(call, record, table, svc)
        record.track, record.decision, record.reason = decision.track, decision.action, decision.reason
        record.keys, record.menu_path = decision.keys, "/".join(decision.menu_path)
        route = decision.route
        if route is not None:
            record.route_id, record.unit, record.mode, record.target_number = (
                route.id,
                route.unit,
                route.mode.value,
                route.number,
            )
        record.step("decided", action=decision.action, reason=decision.reason, route=route.id if route else "")
        log.info(
            "call_decided",
            action=decision.action,
            reason=decision.reason,
            route=route.id if route else "",
            keys=decision.keys,
        )

        if decision.action == "hangup":
            await call.play([svc.prompts.sound("goodbye-invalid")])
            record.outcome, record.hangup_by = "goodbye", "system"
            return

        if decision.action == "message":
            await call.play([svc.prompts.sound("after-hours")])
            await take_message(call, record, svc, kind="message")
            return

        if route is not None:  # dial or hand off, down the route's ring chain
            _open_ticket(record, svc, kind=route.mode.value)
            if decision.action == "handoff":
                _notify_partner(record, route, svc)
            await call.play([svc.prompts.sound("connecting")])
            result: DialResult | None = None
            for n, target in enumerate(route.targets):
                result = await call.dial(
                    target.dial_string, target.ring_seconds, caller_id=record.entry, label=route.unit
                )
                _note_dial(record, result, "department" if n == 0 else "overflow", target.number)
                svc.metrics.call_routed(route.unit, route.mode.value, result.status, _rang(result))
                if result.ok:
                    svc.metrics.human_answered("department", time.time() - record.started_at)
                    await _talk(call, record, result, outcome="connected")
                    await survey(call, record, svc)
                    return
                record.overflowed = True
                svc.metrics.overflow_step(route.unit, "overflow" if n + 1 < len(route.targets) else "operators")
            assert result is not None
            await call.play(
                [svc.prompts.sound("dept-busy" if result.status in ("BUSY", "CONGESTION") else "dept-noanswer")]
            )
        else:
            await call.play([svc.prompts.sound("to-operator")])

        if await reach_operator(call, record, table, svc):
            return
        # Nobody could take the call: keep the citizen's words rather than drop them.
        if route is not None:
            svc.metrics.overflow_step(route.unit, "message")
        await call.play([svc.prompts.sound("operators-busy")])
        await take_message(call, record, svc, kind="message")
    except CallEnded as ended:
        record.hangup_by = record.hangup_by or "caller"
        record.hangup_cause = ended.cause
        if record.outcome == "in_progress":
            # Hung up before reaching anyone: a missed call, to be called back (漏接回拨).
            record.outcome = "abandoned"
            svc.calllog.missed_call(
                record.call_id,
                call.caller_number,
                record.caller_hash,
                record.caller_masked,
                reason=_missed_reason(record),
                at=time.time(),
            )
        record.step("caller_hangup", cause=ended.cause)
    except asyncio.CancelledError:
        # Shutdown: the controller released the caller to the dialplan fallback (or the grace
        # period ran out). Record it honestly, then let the cancellation go on.
        if record.outcome == "in_progress":
            record.outcome = "handed_off"
        record.hangup_by = record.hangup_by or "system"
        raise
    except AriError as exc:
        # Asterisk refused a request mid-call (e.g. the channel vanished): end this call
        # cleanly; the controller keeps serving others.
        record.outcome = "failed" if record.outcome == "in_progress" else record.outcome
        record.hangup_by = record.hangup_by or "system"
        record.step("ari_error", error=str(exc))
        log.warning("call_ari_error", error=str(exc))
    finally:
        if record.talk_seconds == 0.0:
            record.talk_seconds = call.talk_seconds
        await call.hangup()
        await call.cleanup()
        call.close()
        record.ended_at = time.time()
        record.step("ended", outcome=record.outcome)
        svc.calllog.call_finished(record)
        svc.metrics.call_ended(record.entry, record.outcome)
        log.info("call_ended", outcome=record.outcome, hangup_by=record.hangup_by, talk_seconds=record.talk_seconds)


async def reach_operator(call: CallControl, record: CallRecord, table: RouteTable, svc: Services) -> bool:
    """Connect the caller with a human operator; False if none could be had (take a message).

    With seats, the caller waits in the controller's queue hearing their position, and the
    longest-idle seat is rung; a seat that does not answer passes the caller to the next one
    while they keep their place. Without seats, the operators' group number is rung once.
    """
    operators = table.operators
    if svc.seats is None or not operators.seats:
        result = await call.dial(
            operators.dial_string, operators.ring_seconds, caller_id=record.entry, label="operators"
        )
        _note_dial(record, result, "operators", operators.number)
        if not result.ok:
            return False
        await _connected_to_operator(call, record, result, svc)
        return True
    pool = svc.seats
    try:
        async with pool.wait_turn(record.call_id, max_wait_s=operators.max_wait_seconds) as turn:
            record.step("queue_joined", position=turn.position)
            svc.metrics.queue_changed(pool.snapshot().waiting)
            try:
                while True:
                    announced = 0
                    while turn.seat is None and not turn.timed_out:
                        if turn.position != announced:
                            announced = turn.position
                            await call.play([svc.prompts.sound(queue_prompt(turn.position))])
                            continue  # the position may have moved while the prompt played
                        await call.play_until(svc.prompts.hold_media, call.wait(turn.changed(), 30))
                    seat = await turn.offered()
                    result = await call.dial(
                        seat.dial_string, operators.ring_seconds, caller_id=record.entry, label=seat.name
                    )
                    _note_dial(record, result, "operators", seat.name)
                    if result.ok:
                        turn.connected(seat)
                        record.step("queue_left", waited_seconds=round(turn.waited_seconds, 3), seat=seat.name)
                        svc.metrics.queue_left("answered", turn.waited_seconds)
                        await _connected_to_operator(call, record, result, svc)
                        return True
                    turn.no_answer(seat)
            except QueueTimeout:
                record.step("queue_left", waited_seconds=round(turn.waited_seconds, 3), timed_out=True)
                svc.metrics.queue_left("timed_out", turn.waited_seconds)
                return False
            except CallEnded:
                if record.outcome == "in_progress":  # hung up while waiting, not after talking
                    record.step("queue_left", waited_seconds=round(turn.waited_seconds, 3), abandoned=True)
                    svc.metrics.queue_left("abandoned", turn.waited_seconds)
                raise
            finally:
                svc.metrics.queue_changed(pool.snapshot().waiting)
    except QueueFull:
        record.step("queue_full")
        return False


def queue_prompt(position: int) -> str:
    """'您是下一位' for the first in line, '您前面还有N位' up to 9, then a general word."""
    ahead = position - 1
    return "queue-next" if ahead <= 0 else f"queue-ahead-{ahead}" if ahead <= 9 else "queue-many"


async def _connected_to_operator(call: CallControl, record: CallRecord, result: DialResult, svc: Services) -> None:
    svc.metrics.human_answered("operator", time.time() - record.started_at)
    if not record.ticket_id:
        _open_ticket(record, svc, kind="operator")
    await _talk(call, record, result, outcome="operator")


async def take_message(call: CallControl, record: CallRecord, svc: Services, kind: str) -> None:
    """留言: record the citizen's message; it becomes a ticket and a callback-list entry."""
    await call.play([svc.prompts.sound("leave-message")])
    name = f"hotline-msg-{record.call_id}"
    state, seconds = await call.record(name)  # a caller hanging up ends the message, not the call's record
    record.step("message", recording=name, state=state, seconds=seconds)
    if state != "done" or (not call.caller_up and seconds < 1):
        if not call.caller_up:  # hung up before saying anything: a missed call like any other
            raise CallEnded("caller_hangup", call.hangup_cause)
        record.outcome, record.hangup_by = "failed", "system"
        return
    record.outcome = "message"
    svc.metrics.message_taken(record.unit, after_hours=record.reason == "after_hours")
    _open_ticket(record, svc, kind=kind)
    svc.calllog.missed_call(
        record.call_id,
        call.caller_number,
        record.caller_hash,
        record.caller_masked,
        reason=f"message:{record.reason}",
        at=time.time(),
    )
    if not call.caller_up:
        record.hangup_by, record.hangup_cause = "caller", call.hangup_cause
        return
    await call.play([svc.prompts.sound("message-saved")])
    record.hangup_by = "system"


async def survey(call: CallControl, record: CallRecord, svc: Services) -> None:
    """After a department call ends, ask for a 1-3 rating (satisfied .. dissatisfied)."""
    if not record.ticket_id or record.hangup_by != "callee":
        return
    call.digits.clear()  # keys pressed while talking to the department are not a rating
    await call.play([svc.prompts.sound("survey")], barge_in=True)
    key = await call.collect_digit(5)
    record.step("survey", key=key or "timeout")
    if key in ("1", "2", "3"):
        record.satisfaction = int(key)
        svc.calllog.ticket_survey(record.ticket_id, int(key))
        svc.metrics.survey_answered(record.unit, int(key))
        await call.play([svc.prompts.sound("survey-thanks")])


def _open_ticket(record: CallRecord, svc: Services, kind: str) -> None:
    if record.ticket_id:
        return
    ticket = new_ticket(
        record.call_id, kind, record.unit, record.mode, record.route_id, svc.clock(), svc.deadlines, node=svc.node
    )
    record.ticket_id = ticket.ticket_id
    svc.calllog.ticket_opened(ticket)
    record.step("ticket", ticket_id=ticket.ticket_id, kind=kind)


def _notify_partner(record: CallRecord, route: Route, svc: Services) -> None:
    """Tell the partner platform about the hand-off (context + ticket); never waits for it."""
    partner = route.partner
    if partner is None or svc.webhooks is None:
        return
    secret = svc.partner_secrets.get(partner.name)
    if secret is None:
        record.step("webhook", partner=partner.name, result="no_secret")
        log.error("webhook_secret_missing", partner=partner.name, env=partner.secret_env)
        return
    handoff = Handoff(
        call_id=record.call_id,
        entry=record.entry,
        caller_masked=record.caller_masked,
        menu_path=record.menu_path,
        ticket_id=record.ticket_id,
        route_id=route.id,
        unit=route.unit,
        line_name=route.line_name,
        number=route.number,
        time=svc.clock().replace(tzinfo=LOCAL_TZ),
    )
    svc.webhooks.submit(WebhookTarget(partner.name, partner.webhook, secret), handoff)
    record.step("webhook", partner=partner.name, result="submitted")


def _rang(result: DialResult) -> float:
    return (result.answered or time.time()) - result.started


def _missed_reason(record: CallRecord) -> str:
    if any(step.name == "queue_joined" for step in record.steps):
        return "in_queue"
    if record.dial_status or record.operator_status or record.decision in ("dial", "handoff"):
        return "during_transfer"  # being connected: hearing "connecting", or the line still ringing
    return "in_menu"


async def navigate(call: CallControl, record: CallRecord, table: RouteTable, svc: Services) -> Decision:
    """Walk the menu: play what the Navigator asks, feed back each key (None on time-out)."""
    nav = Navigator(table, record.entry, svc.clock())
    step = nav.start()
    while isinstance(step, Ask):
        media = svc.prompts.for_ask(step)
        if media:
            record.step("menu", menu=step.menu.id, notice=step.notice, number_entry=step.number_entry)
            await call.play(media, barge_in=True)
        key = await call.collect_digit(table.policy.key_timeout_seconds)
        record.step("key", key=key if key is not None else "timeout")
        step = nav.feed(key)
        # Kept current so a caller who hangs up mid-menu is recorded with what they pressed.
        record.keys, record.menu_path = nav.keys, "/".join(nav.menu_path)
    return step


async def _talk(call: CallControl, record: CallRecord, result: DialResult, outcome: str) -> None:
    record.outcome = outcome
    bridged = await call.bridge(result.channel)  # CallEnded here means the caller hung up first
    record.talk_seconds = bridged.talk_seconds
    record.hangup_by, record.hangup_cause = "callee", bridged.cause
    record.step("callee_hangup", cause=bridged.cause, talk_seconds=bridged.talk_seconds)


def _note_dial(record: CallRecord, result: DialResult, leg: str, number: str) -> None:
    if leg == "operators":
        record.operator_status = result.status
    else:
        record.dial_status, record.dial_cause = result.status, result.cause or None
    if result.ok:
        record.target_answered_at = result.answered
    record.step(
        "dial",
        leg=leg,
        number=number,
        status=result.status,
        cause=result.cause,
        ring_seconds=round((result.answered or time.time()) - result.started, 3),
    )
    log.info("dial_result", leg=leg, status=result.status, cause=result.cause)
