"""One citizen's call, top to bottom: answer, menu, route, dial, bridge, log.

`handle_call` is the whole story of a call in one coroutine, told in call actions on a
`CallControl` (the live AriCall, or a ScriptedCall in `hotline simulate` and the tests). The
decisions come from ivr.routing.menu.Navigator; this module only performs them. What each
step leaves behind — the record's fields, call-log writes, metrics, log events — is said once
per step to the call's `Books` (ivr.call.books). The record is written when the call arrives
and, whatever happens, in `finally` when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from ivr.call.books import Books, HandoffSender, Services
from ivr.call.control import CallControl, DialResult, DialStatus
from ivr.call.transfer import attend
from ivr.calllog.records import CallRecord, Outcome
from ivr.citizen import progress
from ivr.citizen.ticket_number import digit_prompts, keypad_number
from ivr.errors import AriError, CallEnded
from ivr.operators.queue import QueueFull, QueueTimeout, Turn
from ivr.recording.policy import OPERATORS
from ivr.routing.dialplan import chain_extension
from ivr.routing.menu import Action, Ask, Decision, Navigator, Track
from ivr.routing.routes import Intake, Route, RouteTable

__all__ = ["HandoffSender", "Services", "handle_call", "queue_prompt"]


async def handle_call(call: CallControl, record: CallRecord, table: RouteTable, svc: Services) -> None:
    """Run one call to its end. `table` is the routing table as it was when the call arrived."""
    books = Books(record, svc, call.caller_number)
    books.arrived(table)
    async with to_its_end(call, books):
        await call.answer()
        books.answered()

        notices = svc.notices(table, record.entry) if svc.notices else ()
        for notice in notices:  # 紧急公告: heard before the menu (ivr.routing.notices)
            books.notice_played(notice)
            await call.play([svc.prompts.sound(notice.prompt)])
        if any(notice.to_operators for notice in notices):
            track: Track = "menu" if record.entry == table.hotline_number else "direct"
            decision = Decision(Action.OPERATOR, "notice", track)
        elif books.intake == Intake.HUMAN_FIRST:
            # In the operators' line from the first second; the menu is a shortcut heard while waiting,
            # and only a key that picks a route takes the caller out of the line (issue 16).
            reached = await reach_operator(call, books, table, svc, shortcut=True)
            if isinstance(reached, bool):
                await (survey(call, books, svc) if reached else nobody_free(call, books, svc, None))
                return
            decision = reached
        else:
            decision = await navigate(call, books, table, svc)
        books.decided(decision)
        route = decision.route

        if decision.action is Action.HANGUP:
            await call.play([svc.prompts.sound("goodbye-invalid")])
            books.said_goodbye()
            return

        if decision.action is Action.PROGRESS:
            await tell_progress(call, books, table, svc)
            return

        if decision.action is Action.MESSAGE:
            await call.play([svc.prompts.sound("after-hours")])
            await take_message(call, books, svc, kind="message")
            return

        if route is not None:  # dial or hand off, down the route's ring chain
            books.open_ticket(kind=route.mode.value)
            if decision.action is Action.HANDOFF:
                books.notify_partner(route)
            await announce_recording(call, books, table, svc, route.mode.value, route.unit)
            await call.play([svc.prompts.sound("connecting")])
            await after_the_ring(call, books, table, svc, route, await ring_route(call, books, table, svc, route))
            return
        await call.play([svc.prompts.sound("to-operator")])
        await to_the_operators(call, books, table, svc, None)


@asynccontextmanager
async def to_its_end(call: CallControl, books: Books) -> AsyncIterator[None]:
    """How every call's story ends, however it goes: its row completed, its channels gone.

    The record is written, whatever happens, when the call ends (ivr.call.books). Shared by a new
    call (`handle_call`) and a call a restarted controller took over (ivr.call.adopt).
    """
    try:
        yield
    except CallEnded as ended:
        books.caller_hung_up(ended.cause)
    except asyncio.CancelledError:
        # Shutdown: the controller released the caller to the dialplan fallback (or the grace
        # period ran out). Record it honestly, then let the cancellation go on.
        books.handed_off()
        raise
    except AriError as exc:
        # Asterisk refused a request mid-call (e.g. the channel vanished): end this call
        # cleanly; the controller keeps serving others.
        books.failed(str(exc))
    finally:
        talk_seconds = call.talk_seconds  # as bridged, before hanging up
        await call.hangup()
        await call.cleanup()
        call.close()
        books.ended(talk_seconds)


async def after_the_ring(
    call: CallControl, books: Books, table: RouteTable, svc: Services, route: Route | None, result: DialResult
) -> None:
    """The route's chain has ended: the ticket number and the survey after a conversation, else the operators."""
    if result.ok:
        await tell_ticket(call, books, svc)
        await survey(call, books, svc)
        return
    busy = result.status in (DialStatus.BUSY, DialStatus.CONGESTION)
    await call.play([svc.prompts.sound("dept-busy" if busy else "dept-noanswer")])
    await to_the_operators(call, books, table, svc, route)


async def to_the_operators(
    call: CallControl, books: Books, table: RouteTable, svc: Services, route: Route | None
) -> None:
    """An operator, then the survey; nobody free: a message is taken."""
    if await reach_operator(call, books, table, svc):
        await survey(call, books, svc)  # after the operator's seat is free again
        return
    await nobody_free(call, books, svc, route)


async def ring_route(call: CallControl, books: Books, table: RouteTable, svc: Services, route: Route) -> DialResult:
    """Ring the route's chain in order until a number answers, and talk; the last result.

    With HOTLINE_DIAL_PATH=dialplan Asterisk rings the chain itself (ivr.routing.dialplan.chain_dialplan,
    two ARI requests instead of about ten) and the caller comes back to us when it ends. Calls whose
    answered leg is recorded stay on the ARI path: the recording's file is planned per leg by the
    controller (ivr.recording) and started on the answered leg, which only the ARI path holds.
    """
    recorded = svc.recorder is not None and table.recording.records(route.mode.value, route.unit)
    if svc.dial_path == "dialplan" and not recorded:
        result: DialResult | None = None
        async for n, result in call.ring_chain(chain_extension(route)):
            books.rang_line(route, n, result)
            if result.ok:
                books.connected(Outcome.CONNECTED)
                books.talked(await call.talked_in_dialplan())
        if result is not None:
            return result
    for n, target in enumerate(route.targets):
        entry = books.record.entry
        result = await call.dial(target.dial_string, target.ring_seconds, caller_id=entry, label=route.unit)
        books.rang_line(route, n, result)
        if result.ok:
            await _talk(call, books, result, Outcome.CONNECTED, table, route.mode.value, route.unit)
            return result
    assert result is not None  # a route rings at least its own line
    return result


async def reach_operator(
    call: CallControl, books: Books, table: RouteTable, svc: Services, *, shortcut: bool = False
) -> bool | Decision:
    """Connect the caller with a human operator; False if none could be had (take a message).

    With seats, the caller waits in the controller's queue hearing their position, and the
    longest-idle ready seat is rung; a seat that does not answer passes the caller to the next
    one while they keep their place. The operator may then transfer the call (ivr.call.transfer);
    a blind transfer nobody answers brings the caller back here, first in line. Without seats,
    the operators' group number is rung once. With `shortcut` (intake: human-first) the menu
    plays first while the caller waits; a route picked from it is returned, the caller out of the line.
    """
    operators = table.operators
    entry = books.record.entry
    await announce_recording(call, books, table, svc, OPERATORS, "")
    if svc.seats is None or not operators.seats:
        result = await call.dial(operators.dial_string, operators.ring_seconds, caller_id=entry, label="operators")
        books.rang_operators(operators.number, result)
        if not result.ok:
            return False
        await _talk(call, books, result, Outcome.OPERATOR, table, OPERATORS, "", party=operators.number)
        return True
    pool = svc.seats
    front = False  # back from a blind transfer nobody answered: first in line
    while True:
        try:
            async with pool.wait_turn(books.record.call_id, max_wait_s=operators.max_wait_seconds, front=front) as turn:
                books.queue_joined(turn, pool)
                try:
                    if shortcut and not front:
                        chosen = await menu_while_waiting(call, books, table, svc, turn)
                        if chosen.route is not None:
                            books.queue_left_for_route(turn)
                            return chosen
                        books.decided(chosen)
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
                            seat.dial_string, operators.ring_seconds, caller_id=entry, label=seat.name
                        )
                        books.rang_operators(seat.name, result)
                        if result.ok:
                            turn.connected(seat)
                            books.queue_answered(turn, seat.name)
                            books.connected(Outcome.OPERATOR)
                            await record_answered(call, books, table, OPERATORS, "", result.channel, seat.name)
                            leave = partial(turn.release, seat)  # the operator transferred the call
                            if await attend(call, books, svc, table, seat.name, result.channel, leave) == "ended":
                                return True
                            break  # requeued
                        turn.no_answer(seat)
                except QueueTimeout:
                    books.queue_timed_out(turn)
                    return False
                except CallEnded:
                    if not books.served:  # hung up while waiting, not after talking
                        books.queue_abandoned(turn)
                    raise
                finally:
                    books.queue_changed(pool)
        except QueueFull:
            books.queue_full()
            return False
        front = True


async def menu_while_waiting(call: CallControl, books: Books, table: RouteTable, svc: Services, turn: Turn) -> Decision:
    """intake: human-first — the menu, heard while waiting in the operators' line.

    Returns the menu's decision if it has one first; when a seat is offered (or the wait runs
    out) before that, the menu stops mid-word — a person beats a prompt — and the caller is
    simply waiting for the operators. Keys that end in no route mean the same.
    """
    menu = asyncio.ensure_future(navigate(call, books, table, svc, queued=True))
    seat = asyncio.ensure_future(turn.offered())
    try:
        await asyncio.wait((menu, seat), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (menu, seat):
            task.cancel()
        await asyncio.gather(menu, seat, return_exceptions=True)
    if not menu.cancelled():
        decision = menu.result()  # the caller hanging up mid-menu raises here
        if decision.route is not None or decision.action is Action.OPERATOR:
            return decision
    record = books.record
    return Decision(Action.OPERATOR, "human_first", "menu", None, record.keys, tuple(record.menu_path.split("/")))


async def nobody_free(call: CallControl, books: Books, svc: Services, route: Route | None) -> None:
    """Nobody could take the call: keep the citizen's words rather than drop them."""
    books.nobody_free(route)
    await call.play([svc.prompts.sound("operators-busy")])
    await take_message(call, books, svc, kind="message")


def queue_prompt(position: int) -> str:
    """'您是下一位' for the first in line, '您前面还有N位' up to 9, then a general word."""
    ahead = position - 1
    return "queue-next" if ahead <= 0 else f"queue-ahead-{ahead}" if ahead <= 9 else "queue-many"


async def take_message(call: CallControl, books: Books, svc: Services, kind: str) -> None:
    """留言: record the citizen's message; it becomes a ticket and a callback-list entry."""
    await call.play([svc.prompts.sound("leave-message")])
    name = f"hotline-msg-{books.record.call_id}"
    state, seconds = await call.record(name)  # a caller hanging up ends the message, not the call's record
    books.message(name, state, seconds)
    if state != "done" or (not call.caller_up and seconds < 1):
        if not call.caller_up:  # hung up before saying anything: a missed call like any other
            raise CallEnded("caller_hangup", call.hangup_cause)
        books.message_lost()
        return
    books.message_kept(kind)
    if not call.caller_up:
        books.message_ended_by_caller(call.hangup_cause)
        return
    await tell_ticket(call, books, svc)
    await call.play([svc.prompts.sound("message-saved")])
    books.message_saved()


async def tell_ticket(call: CallControl, books: Books, svc: Services) -> None:
    """The citizen hears their ticket number digit by digit, to quote it later; once more on '*'."""
    if not books.record.ticket_id:
        return
    number = ["ticket-number-is", *digit_prompts(keypad_number(books.record.ticket_id))]
    call.digits.clear()  # keys pressed while talking are not a request to repeat
    books.ticket_told(number)
    await call.play([svc.prompts.sound(n) for n in [*number, "ticket-number-repeat"]], barge_in=True)
    if await call.collect_digit(3) == "*":
        books.ticket_told(number, again=True)
        await call.play([svc.prompts.sound(n) for n in number])
    call.digits.clear()


async def tell_progress(call: CallControl, books: Books, table: RouteTable, svc: Services) -> None:
    """查询办理进度: a typed ticket number, or '#' alone for the caller's own latest ticket, is looked
    up and its state and due date said; a number not found is asked for again, up to max_attempts."""
    prompt = ["progress-enter"]
    for _ in range(table.policy.max_attempts):
        await call.play([svc.prompts.sound(n) for n in prompt], barge_in=True)
        typed = await _typed_number(call, table.policy.key_timeout_seconds)
        if typed is None:  # silence: ask again, like a menu
            prompt = ["no-input", "progress-enter"]
            continue
        found = await asyncio.to_thread(_find_ticket, svc, typed, books.record.caller_hash)
        books.progress_asked(typed, found)
        if found is not None:
            await call.play([svc.prompts.sound(n) for n in [*progress.spoken(found), "progress-goodbye"]])
            return
        prompt = ["progress-not-found" if typed else "progress-none-own"]
    await call.play([svc.prompts.sound("goodbye-invalid")])
    books.said_goodbye()


def _find_ticket(svc: Services, typed: str, caller_hash: str) -> progress.TicketProgress | None:
    if svc.tickets is None:
        return None
    return svc.tickets.by_number(typed) if typed else svc.tickets.latest_for(caller_hash)


async def _typed_number(call: CallControl, timeout: float) -> str | None:
    """Digits up to '#' or a pause; "" for '#' alone, None when nothing was pressed."""
    digits = ""
    while (key := await call.collect_digit(timeout)) not in (None, "#"):
        if key.isdigit():
            digits = (digits + key)[: progress.MAX_TYPED]
    return digits if digits or key == "#" else None


async def survey(call: CallControl, books: Books, svc: Services) -> None:
    """After a call with a person (department or operator) that they ended, ask for a 1-3 rating
    (satisfied .. dissatisfied); a caller who hung up first is gone and cannot be asked."""
    if not books.record.ticket_id or books.record.hangup_by != "callee":
        return
    call.digits.clear()  # keys pressed while talking to the department are not a rating
    await call.play([svc.prompts.sound("survey")], barge_in=True)
    key = await call.collect_digit(5)
    books.rated(key)
    if books.record.satisfaction is not None:
        await call.play([svc.prompts.sound("survey-thanks")])


async def navigate(
    call: CallControl, books: Books, table: RouteTable, svc: Services, *, queued: bool = False
) -> Decision:
    """Walk the menu: play what the Navigator asks, feed back each key (None on time-out).

    Until the first key, the menu is bounded by `silent_caller_seconds`: a caller who says nothing
    is put through to a person then, mid-prompt if need be, whatever the menu's length (issue 16).
    A caller already `queued` for a person (intake: human-first) has all the time the menu takes.
    """
    nav = Navigator(table, books.record.entry, svc.clock())
    silent_until = None if queued else asyncio.get_running_loop().time() + table.policy.silent_caller_seconds
    step = nav.start()
    while isinstance(step, Ask):
        try:
            async with asyncio.timeout_at(None if nav.keys else silent_until):
                media = svc.prompts.for_ask(step, queued=queued)
                if media:
                    books.menu_played(step.menu.id, step.notice, step.number_entry)
                    await call.play(media, barge_in=True)
                key = await call.collect_digit(table.policy.key_timeout_seconds)
        except TimeoutError:
            books.key(None, nav.keys, nav.menu_path)
            return nav.silent_too_long()
        step = nav.feed(key)
        books.key(key, nav.keys, nav.menu_path)
    return step


async def announce_recording(
    call: CallControl, books: Books, table: RouteTable, svc: Services, mode: str, unit: str
) -> None:
    """录音提示: a caller about to reach someone whose calls are recorded is told so, once per call."""
    if svc.recorder is None or books.recording_announced or not table.recording.records(mode, unit):
        return
    await call.play([svc.prompts.sound("recording-notice")])
    books.recording_notice_played()


async def record_answered(
    call: CallControl, books: Books, table: RouteTable, mode: str, unit: str, leg: str, party: str
) -> None:
    """From the moment a person answers: the answered leg is recorded on itself (ivr.recording.store)."""
    recorder = books.recorder_for(table.recording, mode, unit)
    if recorder is None:
        return
    planned = recorder.plan(table.recording, books.record.call_id, books.next_leg(), party or unit)
    if planned is None:
        return
    if await call.record_leg(leg, planned.asterisk_path):
        books.recording_started(planned)
    else:
        recorder.failed("leg_gone", planned.name)


async def _talk(
    call: CallControl,
    books: Books,
    result: DialResult,
    outcome: Outcome,
    table: RouteTable,
    mode: str,
    unit: str,
    party: str = "",
) -> None:
    books.connected(outcome)
    await record_answered(call, books, table, mode, unit, result.channel, party)
    bridged = await call.bridge(result.channel)  # CallEnded here means the caller hung up first
    books.talked(bridged)
