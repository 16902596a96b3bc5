"""The books a call keeps: its record, the call log's writes, the metrics and the log events.

`handle_call` (ivr.call.session) tells the story in call actions; after each thing that
happens it says so here once (`books.dialled(...)`, `books.caller_hung_up(...)` ...), and
this is the one place that knows which record fields, call-log writes, metrics and log
events that thing means.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from ivr.call.control import BridgeResult, DialResult
from ivr.calllog.records import CallRecord, Leg, Outcome
from ivr.citizen.progress import TicketLookup, TicketProgress
from ivr.handoff.webhook import Handoff, WebhookTarget
from ivr.metrics import Metrics
from ivr.operators.desk import Desk
from ivr.operators.queue import SeatPool, Turn
from ivr.outbound.store import ContactKept
from ivr.prompts import Prompts
from ivr.recording.policy import RecordingPolicy
from ivr.recording.store import Planned, Recorder
from ivr.report.figures import asked_at, person_within_15s
from ivr.routing.dialplan import CHAIN_CONTEXT
from ivr.routing.menu import Decision
from ivr.routing.notices import Notice
from ivr.routing.routes import Intake, Route, RouteTable
from ivr.tickets import DeadlinePolicy, Ticket, new_ticket
from ivr.timekeeping import LOCAL_TZ

log = structlog.get_logger("ivr.call.session")


class CallLogWrites(Protocol):
    """The call log's writes a call makes (ivr.calllog.CallLog); none blocks or raises for storage."""

    def call_started(self, record: CallRecord) -> None: ...

    def call_finished(self, record: CallRecord) -> None: ...

    def ticket_opened(self, ticket: Ticket) -> None: ...

    def ticket_survey(self, ticket_id: str, score: int) -> None: ...

    def record(self, write: ContactKept) -> None: ...

    def missed_call(
        self, call_id: str, caller_number: str, caller_hash: str, caller_masked: str, reason: str, at: float
    ) -> None: ...


class HandoffSender(Protocol):
    """Sends a hand-off's context to the partner platform (ivr.handoff.webhook.WebhookSender)."""

    def submit(self, target: WebhookTarget, handoff: Handoff) -> None: ...


@dataclass(frozen=True)
class Services:
    """What a call needs from the running controller."""

    calllog: CallLogWrites
    prompts: Prompts
    clock: Callable[[], dt.datetime]  # local (Asia/Shanghai) wall clock, naive
    deadlines: DeadlinePolicy = DeadlinePolicy()
    webhooks: HandoffSender | None = None
    partner_secrets: Mapping[str, bytes] = field(default_factory=dict)  # partner name -> HMAC secret
    seats: SeatPool | None = None  # the operator queue, shared by all calls
    metrics: Metrics = field(default_factory=Metrics)
    node: str = ""  # this controller's node id in a cluster (HOTLINE_NODE): part of ticket numbers
    notices: Callable[[RouteTable, str], Sequence[Notice]] | None = None  # (call's table, entry) -> live notices
    desk: Desk = field(default_factory=Desk)  # the calls operators are on, and their asks (ivr.operators.desk)
    tickets: TicketLookup | None = None  # 查询办理进度 reads tickets here (the call log)
    recorder: Recorder | None = None  # 全程录音 (ivr.recording.store); None: nothing is recorded
    dial_path: str = "ari"  # HOTLINE_DIAL_PATH: "dialplan" lets Asterisk ring a route's chain (ivr.call.session)


class Books:
    """One call's bookkeeping; every method is one event of the call's story."""

    def __init__(self, record: CallRecord, svc: Services, caller_number: str) -> None:
        self.record = record
        self._svc = svc
        self._caller_number = caller_number  # for the callback list only, never logged
        self.intake = "menu"  # how the call is taken in: an Intake, or "direct" for a short number dialled directly
        self.recording_announced = False
        self._legs = 0  # answered legs recorded so far: each is its own file, <call_id>-<n>
        self._recordings: list[Planned] = []

    @property
    def served(self) -> bool:
        """Someone (department or operator) answered, or the call is otherwise settled."""
        return self.record.outcome is not Outcome.IN_PROGRESS

    # -- arrival and the menu ---------------------------------------------------------------------
    def arrived(self, table: RouteTable) -> None:
        if self.record.entry != table.hotline_number:
            self.intake = "direct"
        elif table.policy.intake is Intake.HUMAN_FIRST and self._svc.seats is not None:
            self.intake = Intake.HUMAN_FIRST.value
        self._svc.calllog.call_started(self.record)
        self._svc.metrics.call_started()
        log.info("call_arrived", routes_version=table.digest)

    def answered(self) -> None:
        self.record.answered(intake=self.intake)

    def notice_played(self, notice: Notice) -> None:
        self.record.step("notice", notice=notice.id, prompt=notice.prompt, to_operators=notice.to_operators)

    def menu_played(self, menu: str, notice: str, number_entry: bool) -> None:
        self.record.step("menu", menu=menu, notice=notice, number_entry=number_entry)

    def key(self, key: str | None, keys: str, menu_path: list[str]) -> None:
        self.record.step("key", key=key if key is not None else "timeout")
        # Kept current so a caller who hangs up mid-menu is recorded with what they pressed.
        self.record.walked(keys, menu_path)

    def decided(self, decision: Decision) -> None:
        self.record.decided(decision)
        route = decision.route
        log.info(
            "call_decided",
            action=decision.action.value,
            reason=decision.reason,
            route=route.id if route else "",
            keys=decision.keys,
        )

    # -- recording (ivr.recording) ---------------------------------------------------------------
    def recording_notice_played(self) -> None:
        self.recording_announced = True
        self.record.step("recording_notice")

    def recorder_for(self, policy: RecordingPolicy, mode: str, unit: str) -> Recorder | None:
        """The recorder if this leg is to be recorded (the caller was told so), else None."""
        recorder = self._svc.recorder
        return recorder if recorder is not None and self.recording_announced and policy.records(mode, unit) else None

    def next_leg(self) -> int:
        self._legs += 1
        return self._legs

    def recording_started(self, planned: Planned) -> None:
        self._recordings.append(planned)
        self.record.step("recording", recording=planned.name)
        log.info("recording_started", recording=planned.name)

    def said_goodbye(self) -> None:
        self.record.said_goodbye()

    # -- tickets and partners ---------------------------------------------------------------------
    def open_ticket(self, kind: str) -> None:
        """A ticket (限时办结) for this call, once: the first kind that needs one names it."""
        record, svc = self.record, self._svc
        if record.ticket_id:
            return
        ticket = new_ticket(
            record.call_id, kind, record.unit, record.mode, record.route_id, svc.clock(), svc.deadlines, node=svc.node
        )
        record.ticket(ticket.ticket_id, kind)
        svc.calllog.ticket_opened(ticket)
        if any(ch.isdigit() for ch in self._caller_number):  # the number 回访 will dial (ivr.outbound)
            svc.calllog.record(ContactKept(ticket.ticket_id, self._caller_number.strip(), ticket.created_at))

    def notify_partner(self, route: Route) -> None:
        """Tell the partner platform about the hand-off (context + ticket); never waits for it."""
        record, svc = self.record, self._svc
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

    # -- ringing lines ----------------------------------------------------------------------------
    def rang_line(self, route: Route, n: int, result: DialResult) -> None:
        """The route's n-th line (0: its own, then its overflow) answered or failed."""
        svc = self._svc
        leg = Leg.DEPARTMENT if n == 0 else Leg.OVERFLOW
        self._dialled(leg, route.targets[n].number, result)
        svc.metrics.call_routed(route.unit, route.mode.value, result.status, _rang(result))
        if result.ok:
            svc.metrics.human_answered("department", time.time() - self.record.started_at, self.intake)
        else:
            svc.metrics.overflow_step(route.unit, "overflow" if n + 1 < len(route.targets) else "operators")

    def rang_operators(self, name: str, result: DialResult) -> None:
        """The operators' group line or one seat answered or failed."""
        self._dialled(Leg.OPERATORS, name, result)

    def _dialled(self, leg: Leg, number: str, result: DialResult) -> None:
        self.record.dialled(leg, number, result)
        log.info("dial_result", leg=leg.value, status=result.status.value, cause=result.cause)

    def connected(self, outcome: Outcome) -> None:
        """Someone answered; for an operator, the ticket is opened now if the call has none."""
        if outcome is Outcome.OPERATOR:
            self._svc.metrics.human_answered("operator", time.time() - self.record.started_at, self.intake)
            self.open_ticket(kind="operator")
        self.record.connected(outcome)

    def adopted(self, outcome: Outcome, bridge: str, legs: tuple[str, ...], since: float) -> None:
        """This controller took over a conversation a dead one had bridged (ivr.call.adopt): on record at once."""
        self.record.adopted(outcome, bridge, legs, since)
        self._svc.calllog.call_started(self.record)  # no longer `interrupted`: the citizen is talking
        self._svc.metrics.call_started()
        log.info("call_adopted", outcome=outcome.value, talking_for=round(time.time() - since, 1))

    def adopted_in_chain(self, since: float | None, peer: str) -> None:
        """This controller took over a caller a dead one had sent down a ring chain (ivr.call.adopt)."""
        if since is not None:
            self.adopted(Outcome.CONNECTED, CHAIN_CONTEXT, (peer,) if peer else (), since)
            return
        self.record.resumed(after="controller_restart_in_ring_chain")  # it rings on in Asterisk
        self._svc.calllog.call_started(self.record)
        self._svc.metrics.call_started()
        log.info("call_adopted", outcome="ringing")

    def talked(self, bridged: BridgeResult) -> None:
        self.record.talked(bridged)

    # -- the operators' queue ---------------------------------------------------------------------
    def queue_joined(self, turn: Turn, pool: SeatPool) -> None:
        self.record.step("queue_joined", position=turn.position)
        self.queue_changed(pool)

    def queue_answered(self, turn: Turn, seat: str) -> None:
        self.record.step("queue_left", waited_seconds=round(turn.waited_seconds, 3), seat=seat)
        self._svc.metrics.queue_left("answered", turn.waited_seconds)

    def queue_timed_out(self, turn: Turn) -> None:
        self.record.step("queue_left", waited_seconds=round(turn.waited_seconds, 3), timed_out=True)
        self._svc.metrics.queue_left("timed_out", turn.waited_seconds)

    def queue_left_for_route(self, turn: Turn) -> None:
        """intake: human-first — the caller picked a route from the menu while waiting."""
        self.record.step("queue_left", waited_seconds=round(turn.waited_seconds, 3), menu_choice=True)
        self._svc.metrics.queue_left("menu_choice", turn.waited_seconds)

    def queue_abandoned(self, turn: Turn) -> None:
        self.record.step("queue_left", waited_seconds=round(turn.waited_seconds, 3), abandoned=True)
        self._svc.metrics.queue_left("abandoned", turn.waited_seconds)

    def queue_changed(self, pool: SeatPool) -> None:
        snapshot = pool.snapshot()
        self._svc.metrics.queue_changed(snapshot.waiting)
        self._svc.metrics.set_seats([seat.status for seat in snapshot.seats])

    # -- an operator's transfers (ivr.call.transfer) ----------------------------------------------
    def transferred(self, detail: dict[str, object]) -> None:
        """One transfer, whatever its outcome: a "transfer" step, and hotline_transfers_total."""
        self.record.step("transfer", **detail)
        self._svc.metrics.transfer_done(str(detail["unit"]), str(detail["kind"]), str(detail["outcome"]))

    def queue_full(self) -> None:
        self.record.step("queue_full")

    def nobody_free(self, route: Route | None) -> None:
        """Neither the department nor an operator: the call goes on to a message."""
        if route is not None:
            self._svc.metrics.overflow_step(route.unit, "message")

    # -- messages and the survey ------------------------------------------------------------------
    def message(self, recording: str, state: str, seconds: int) -> None:
        self.record.message(recording, state, seconds)

    def message_lost(self) -> None:
        self.record.message_lost()

    def message_kept(self, kind: str) -> None:
        """A message (留言) was recorded: a ticket, and the caller goes on the callback list."""
        record = self.record
        record.message_kept()
        self._svc.metrics.message_taken(record.unit, after_hours=record.reason == "after_hours")
        self.open_ticket(kind=kind)
        self._missed(reason=f"message:{record.reason}")
        if self._svc.recorder is not None:  # listed with its hash, ticket and callback entry (hotline messages)
            self._svc.recorder.message_kept(record.call_id, f"hotline-msg-{record.call_id}", record.unit)

    def message_saved(self) -> None:
        self.record.message_saved()

    def message_ended_by_caller(self, cause: int) -> None:
        self.record.message_ended_by_caller(cause)

    def rated(self, key: str | None) -> None:
        record = self.record
        record.rated(key)
        if record.satisfaction is not None:
            self._svc.calllog.ticket_survey(record.ticket_id, record.satisfaction)
            self._svc.metrics.survey_answered(record.unit, record.satisfaction)

    # -- the citizen's ticket: its number told, its progress asked --------------------------------
    def ticket_told(self, prompts: list[str], again: bool = False) -> None:
        """The ticket number was said (the prompt names, so the call log shows what was asked to be played)."""
        self.record.step("ticket_told", ticket_id=self.record.ticket_id, prompts=prompts, again=again)
        log.info("ticket_told", ticket_id=self.record.ticket_id, again=again)

    def progress_asked(self, typed: str, found: TicketProgress | None) -> None:
        """One try of 查询办理进度: `typed` "" for the caller's own latest ticket."""
        ticket_id = found.ticket_id if found else ""
        self.record.step("progress", own=not typed, digits=len(typed), ticket_id=ticket_id)
        log.info("progress_asked", own=not typed, found=bool(found), ticket_id=ticket_id)
        if found is not None:
            self.record.informed()

    # -- how the call ends ------------------------------------------------------------------------
    def caller_hung_up(self, cause: int | None) -> None:
        if self.record.caller_hung_up(cause):
            # Hung up before reaching anyone: a missed call, to be called back (漏接回拨).
            self._missed(reason=self.record.missed_reason)

    def handed_off(self) -> None:
        self.record.handed_off()

    def failed(self, error: str) -> None:
        self.record.failed(error)
        log.warning("call_ari_error", error=error)

    def ended(self, talk_seconds: float) -> None:
        record = self.record
        record.ended(talk_seconds)
        self._svc.calllog.call_finished(record)
        for planned in self._recordings:  # the legs are gone: their files can be finished
            assert self._svc.recorder is not None
            self._svc.recorder.finish(planned)
        self._svc.metrics.call_ended(record.entry, record.outcome)
        legs = [str(step.detail.get("leg", "")) for step in record.steps if step.name == "dial"]
        self._svc.metrics.unit_call_ended(record.unit, record.mode, legs, record.dial_status)
        asked = asked_at((step.name, step.at, step.detail) for step in record.steps)
        by_arrival, by_asking = person_within_15s(record.started_at, asked, record.target_answered_at)
        self._svc.metrics.person_answer_counted(record.unit, by_arrival, asked is not None, by_asking)
        log.info(
            "call_ended",
            outcome=record.outcome.value,
            hangup_by=str(record.hangup_by),
            talk_seconds=record.talk_seconds,
        )

    def _missed(self, reason: str) -> None:
        record = self.record
        self._svc.calllog.missed_call(
            record.call_id, self._caller_number, record.caller_hash, record.caller_masked, reason=reason, at=time.time()
        )


def _rang(result: DialResult) -> float:
    return (result.answered or time.time()) - result.started
