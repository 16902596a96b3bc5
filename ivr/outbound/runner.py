"""The controller's loop that places the hotline's own calls: 漏接回拨 and 回访, one at a time.

Every `poll_seconds` (routes.yaml `outbound:`), inside the allowed hours of the controller's clock:

1. Callbacks: the open callback-list entries, longest waiting first (first missed call), each once its
   backoff has passed and while it has attempts left. Only when no citizen is waiting for an operator
   and a ready seat is idle: the seat is taken through the operator queue like a caller's turn, rung
   first (ARI create + dial on our own channel), told why, and then the citizen is dialled over the
   carrier trunk and the two are bridged. Every attempt is kept (ivr.outbound.store).
2. 回访: every ticket closed in the last FOLLOWUP_WINDOW_DAYS gets one pending follow-up; each due one is
   dialled (the number kept with the ticket at opening), told which matter, and asked the 1-3 question.
   3 (dissatisfied) reopens the ticket for review (ivr.ticketing); 9 opts out for good.

One call at a time keeps the load these calls add small and their order plain; a failing round is
logged and the next one tries again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable

import structlog

from ivr.ari.client import AriClient
from ivr.call.ari_call import AriCall
from ivr.call.dispatcher import Dispatcher
from ivr.calllog import CallLog
from ivr.errors import AriError, CallEnded, CallLogError, HotlineError, StorageUnavailable
from ivr.operators.queue import SeatPool
from ivr.outbound import store, stories
from ivr.outbound.policy import OutboundPolicy
from ivr.privacy import mask
from ivr.prompts import Prompts
from ivr.routing.routes import RouteTable
from ivr.ticketing.store import TicketBook
from ivr.tickets import to_epoch

log = structlog.get_logger("ivr.outbound")

FOLLOWUP_WINDOW_DAYS = 7  # tickets closed longer ago than this are not called about


class Outbound:
    def __init__(
        self,
        *,
        ari: AriClient,
        dispatcher: Dispatcher,
        calllog: CallLog,
        table: Callable[[], RouteTable],
        seats: SeatPool,
        clock: Callable[[], dt.datetime],
        prompts: Prompts,
        book: TicketBook,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.ari = ari
        self.dispatcher = dispatcher
        self.calllog = calllog
        self.table = table
        self.seats = seats
        self.clock = clock
        self.prompts = prompts
        self.book = book
        self.ready = ready  # connected to Asterisk, taking calls, the one controller that places them

    async def run(self) -> None:
        while True:
            policy = self.table().outbound
            try:
                await self.round()
            except (CallLogError, StorageUnavailable, AriError) as exc:
                log.warning("outbound_round_failed", error=str(exc))
            await asyncio.sleep(policy.poll_seconds if policy else 30)

    async def round(self) -> None:
        table = self.table()
        policy = table.outbound
        if policy is None or not self.ready() or not policy.allowed(self.clock()):
            return
        await self.callbacks(table, policy)
        await self.followups(table, policy)

    # -- 漏接回拨 ------------------------------------------------------------------------------------
    async def callbacks(self, table: RouteTable, policy: OutboundPolicy) -> None:
        for entry in await asyncio.to_thread(store.open_callbacks, self.calllog):
            if not policy.due(entry["attempts"], entry["last_attempt_at"], time.time(), entry["last_missed_at"]):
                continue
            snapshot = self.seats.snapshot()
            if snapshot.waiting or not any(s.state == "idle" and s.presence == "ready" for s in snapshot.seats):
                return  # citizens on the line come first; the list waits for a free seat
            await self.call_back(entry, table, policy)
            return  # one call per round

    async def call_back(self, entry: dict[str, object], table: RouteTable, policy: OutboundPolicy) -> None:
        callback_id = int(str(entry["id"]))
        call_id = f"callback-{callback_id}-{uuid.uuid4().hex[:8]}"
        at = time.time()
        attempt = store.CallbackAttempt(callback_id, at, "no_seat")
        async with self.seats.wait_turn(call_id, max_wait_s=5) as turn:
            try:
                seat = await asyncio.wait_for(turn.offered(), 5)
            except (TimeoutError, HotlineError):
                return
            call = self._call(call_id, "seat")
            try:
                rang = await call.ring(
                    seat.dial_string, table.operators.ring_seconds, caller_id=table.hotline_number, label=seat.name
                )
                log.info("callback_seat_rang", callback_id=callback_id, seat=seat.name, status=rang.status.value)
                if not rang.ok:
                    turn.no_answer(seat)
                    attempt = store.CallbackAttempt(
                        callback_id, at, "seat_no_answer", seat=seat.name, seat_status=rang.status.value
                    )
                else:
                    turn.connected(seat)
                    try:
                        leg = await stories.connect_citizen(
                            call,
                            self.prompts,
                            policy.dial_string(str(entry["caller_number"])),
                            policy.ring_seconds,
                            table.hotline_number,
                        )
                        attempt = store.CallbackAttempt(
                            callback_id, at, leg.outcome, seat.name, "ANSWER", leg.status, leg.talk_seconds
                        )
                    except CallEnded:  # the seat hung up: after talking, the citizen was reached
                        talked = call.talk_seconds
                        outcome = "reached" if talked > 0 else "seat_hung_up"
                        status = "ANSWER" if talked > 0 else ""
                        attempt = store.CallbackAttempt(callback_id, at, outcome, seat.name, "ANSWER", status, talked)
            finally:
                await self._end(call)
        await asyncio.to_thread(store.record_callback_attempt, self.calllog, attempt)
        log.info(
            "callback_dialled",
            callback_id=callback_id,
            caller=mask(str(entry["caller_number"])),
            seat=attempt.seat,
            citizen_status=attempt.citizen_status,
            outcome=attempt.outcome,
            talk_seconds=attempt.talk_seconds,
        )

    # -- 回访 ------------------------------------------------------------------------------------------
    async def followups(self, table: RouteTable, policy: OutboundPolicy) -> None:
        since = to_epoch(self.clock()) - FOLLOWUP_WINDOW_DAYS * 86400
        await asyncio.to_thread(store.closed_without_followup, self.calllog, since)
        for row in await asyncio.to_thread(store.pending_followups, self.calllog):
            # Closes are stamped on the tickets' clock (the controller's), missed calls in real time.
            if not policy.due(row["attempts"], row["last_attempt_at"], to_epoch(self.clock()), row["created_at"]):
                continue
            await self.follow_up(row, table, policy)
            return  # one call per round

    async def follow_up(self, row: dict[str, object], table: RouteTable, policy: OutboundPolicy) -> None:
        ticket_id, number = str(row["ticket_id"]), str(row["caller_number"])
        attempts = int(str(row["attempts"])) + 1
        at = to_epoch(self.clock())
        if not number:
            await asyncio.to_thread(
                store.record_followup_attempt, self.calllog, ticket_id, at, "", "", "no_number", "gave_up"
            )
            log.info("followup_not_possible", ticket_id=ticket_id, why="no number kept")
            return
        call = self._call(f"followup-{uuid.uuid4().hex[:8]}", "citizen")
        key, status = "", ""
        try:
            rang = await call.ring(
                policy.dial_string(number), policy.ring_seconds, caller_id=table.hotline_number, label="followup"
            )
            status = rang.status.value
            outcome = stories.outcome_of(rang.status)
            if rang.ok:
                try:
                    key = await stories.ask_about_handling(call, self.prompts, ticket_id)
                    outcome = "rated" if key in stories.RATINGS else "opted_out" if key else "no_rating"
                except CallEnded:
                    outcome = "hung_up"
        finally:
            await self._end(call)
        state = {"rated": "answered", "opted_out": "opted_out"}.get(outcome)
        state = state or ("pending" if attempts < policy.max_attempts else "gave_up")
        await asyncio.to_thread(store.record_followup_attempt, self.calllog, ticket_id, at, status, key, outcome, state)
        log.info("followup_dialled", ticket_id=ticket_id, status=status, key=key, outcome=outcome, state=state)
        if key == stories.DISSATISFIED:
            try:
                await asyncio.to_thread(
                    self.book.act, ticket_id, "reopen", actor="followup", reason="回访: the citizen is dissatisfied"
                )
            except HotlineError as exc:  # e.g. reopened meanwhile by hand: the rating is kept either way
                log.warning("followup_reopen_refused", ticket_id=ticket_id, error=str(exc))

    # -- the calls ----------------------------------------------------------------------------------
    def _call(self, call_id: str, leg: str) -> AriCall:
        return AriCall(
            self.ari,
            call_id,
            f"{call_id}-{leg}",
            register=self.dispatcher.register,
            unregister=self.dispatcher.unregister,
        )

    async def _end(self, call: AriCall) -> None:
        await call.hangup()
        await call.cleanup()
        call.close()
