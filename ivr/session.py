"""One citizen's call, top to bottom: answer, menu, route, dial, bridge, log.

`handle_call` is the whole story of a call in one coroutine. The decisions come from
ivr.menu.Navigator (the same code `hotline simulate` runs); this module only performs them.
The record is written when the call arrives and, whatever happens, in `finally` when it ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ivr.calllog.records import CallRecord
from ivr.calllog.sqlite import SqliteCallLog
from ivr.calls import Call, DialResult
from ivr.errors import AriError, CallEnded
from ivr.menu import Ask, Decision, Navigator
from ivr.prompts import Prompts
from ivr.routes import RouteTable

log = structlog.get_logger("ivr.session")


@dataclass(frozen=True)
class Services:
    """What a call needs from the running controller."""

    calllog: SqliteCallLog
    prompts: Prompts
    clock: Callable[[], dt.datetime]


async def handle_call(call: Call, record: CallRecord, table: RouteTable, svc: Services) -> None:
    """Run one call to its end. `table` is the routing table as it was when the call arrived."""
    svc.calllog.call_started(record)
    log.info("call_arrived", routes_version=table.digest)
    try:
        await call.answer()
        record.answered_at = time.time()
        record.step("answered")

        decision = await navigate(call, record, table, svc)
        record.track, record.decision, record.reason = decision.track, decision.action, decision.reason
        record.keys, record.menu_path = decision.keys, "/".join(decision.menu_path)
        record.step("decided", action=decision.action, reason=decision.reason,
                    route=decision.route.id if decision.route else "")
        log.info("call_decided", action=decision.action, reason=decision.reason,
                 route=decision.route.id if decision.route else "", keys=decision.keys)

        if decision.action == "hangup":
            await call.play([svc.prompts.sound("goodbye-invalid")])
            record.outcome, record.hangup_by = "goodbye", "system"
            return

        if decision.action in ("dial", "handoff") and decision.route is not None:
            route = decision.route
            record.route_id, record.unit, record.mode, record.target_number = (
                route.id, route.unit, route.mode.value, route.number)
            await call.play([svc.prompts.sound("connecting")])
            result = await call.dial(route.dial_string, route.ring_seconds, caller_id=record.entry, label=route.unit)
            _note_dial(record, result, "department")
            if result.ok:
                await _talk(call, record, result, outcome="connected")
                return
            record.overflowed = True
            await call.play([svc.prompts.sound("dept-busy" if result.status in ("BUSY", "CONGESTION")
                                               else "dept-noanswer")])
        else:
            await call.play([svc.prompts.sound("to-operator")])

        operators = table.operators
        result = await call.dial(operators.dial_string, operators.ring_seconds, caller_id=record.entry,
                                 label="operators")
        _note_dial(record, result, "operators")
        if result.ok:
            await _talk(call, record, result, outcome="operator")
            return
        await call.play([svc.prompts.sound("operators-busy")])
        record.outcome, record.hangup_by = "failed", "system"
    except CallEnded as ended:
        record.hangup_by = record.hangup_by or "caller"
        record.hangup_cause = ended.cause
        if record.outcome == "in_progress":
            # Hung up before reaching anyone: a missed call, to be called back (漏接回拨).
            record.outcome = "abandoned"
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
        log.info("call_ended", outcome=record.outcome, hangup_by=record.hangup_by, talk_seconds=record.talk_seconds)


async def navigate(call: Call, record: CallRecord, table: RouteTable, svc: Services) -> Decision:
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


async def _talk(call: Call, record: CallRecord, result: DialResult, outcome: str) -> None:
    record.outcome = outcome
    bridged = await call.bridge(result.channel)  # CallEnded here means the caller hung up first
    record.talk_seconds = bridged.talk_seconds
    record.hangup_by, record.hangup_cause = "callee", bridged.cause
    record.step("callee_hangup", cause=bridged.cause, talk_seconds=bridged.talk_seconds)


def _note_dial(record: CallRecord, result: DialResult, leg: str) -> None:
    if leg == "department":
        record.dial_status, record.dial_cause = result.status, result.cause or None
    else:
        record.operator_status = result.status
    if result.ok:
        record.target_answered_at = result.answered
    record.step("dial", leg=leg, status=result.status, cause=result.cause,
                ring_seconds=round((result.answered or time.time()) - result.started, 3))
    log.info("dial_result", leg=leg, status=result.status, cause=result.cause)
