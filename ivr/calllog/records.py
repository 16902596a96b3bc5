"""What the call log keeps: one CallRecord per call, with its ordered steps.

The record is filled in as the call goes (the session owns it) and written twice: once when
the call arrives (so even a controller killed mid-call leaves a row, later marked interrupted)
and once, complete, when the call ends. Each field is set by one method named for what
happened (`decided`, `dialled`, `talked`, `ended` ...), each of which also adds its step.
The states are enums of strings: the call log stores the same words as ever.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the record only reads them: the call log does not depend on the call flow
    from ivr.call.control import BridgeResult, DialResult
    from ivr.routing.menu import Decision


class Outcome(enum.StrEnum):
    """How a call ended, from the citizen's side."""

    IN_PROGRESS = "in_progress"
    CONNECTED = "connected"  # talked with the department (or partner platform)
    OPERATOR = "operator"  # talked with a 12345 operator
    MESSAGE = "message"  # left a message (留言): a ticket and a callback-list entry
    GOODBYE = "goodbye"  # too many invalid keys: ended politely
    INFORMED = "informed"  # heard how their ticket stands (查询办理进度), then goodbye
    ABANDONED = "abandoned"  # hung up before reaching anyone: on the callback list (漏接回拨)
    FAILED = "failed"  # the system could not carry the call on
    HANDED_OFF = "handed_off"  # the controller shut down and released the caller to the dialplan
    INTERRUPTED = "interrupted"  # the controller died mid-call (marked at the next start)
    # Calls the controller did not carry, from Asterisk's own record (ivr/calllog/evidence.py):
    REFUSED = "refused"  # refused unanswered (SIP 503) by admission under overload (ivr.controller.admission)
    FALLBACK = "fallback"  # the controller was down: the dialplan apologised and rang the operators' duty line


class HangupBy(enum.StrEnum):
    CALLER = "caller"
    CALLEE = "callee"  # the department, partner or operator
    SYSTEM = "system"


class Leg(enum.StrEnum):
    """Which line a dial rang."""

    DEPARTMENT = "department"
    OVERFLOW = "overflow"
    OPERATORS = "operators"


@dataclass
class Step:
    at: float
    name: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallRecord:
    call_id: str
    channel_id: str
    entry: str  # the number the citizen dialled: 12345 or a short number
    caller_masked: str
    caller_hash: str
    routes_version: str
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None  # when the controller answered the citizen
    ended_at: float | None = None
    track: str = ""  # menu | direct
    menu_path: str = ""
    keys: str = ""
    decision: str = ""  # the menu's Action: dial | handoff | operator | message | hangup
    reason: str = ""
    route_id: str = ""
    unit: str = ""
    mode: str = ""
    target_number: str = ""
    dial_status: str = ""  # the department line's DialStatus (ivr.call.control), its last overflow's if any
    dial_cause: int | None = None  # Q.850 cause of the outbound leg
    target_answered_at: float | None = None  # a human (department or operator) picked up
    overflowed: bool = False  # the department failed and the operators were tried
    operator_status: str = ""  # DialStatus of the last operator line rung
    hangup_by: HangupBy | Literal[""] = ""
    hangup_cause: int | None = None
    talk_seconds: float = 0.0
    outcome: Outcome = Outcome.IN_PROGRESS
    ticket_id: str = ""
    satisfaction: int | None = None  # post-call survey: 1 satisfied, 2 basically, 3 dissatisfied
    steps: list[Step] = field(default_factory=list)

    def step(self, name: str, **detail: Any) -> None:
        self.steps.append(Step(time.time(), name, detail))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CallRecord:
        """A call's row as the call log holds it (its steps apart), to be carried on by another controller."""
        names = {f.name for f in fields(cls)} - {"steps"}
        data = {k: v for k, v in row.items() if k in names}
        data["outcome"] = Outcome(data.get("outcome") or Outcome.IN_PROGRESS)
        data["hangup_by"] = HangupBy(data["hangup_by"]) if data.get("hangup_by") else ""
        data["overflowed"] = bool(data.get("overflowed"))
        data["talk_seconds"] = float(data.get("talk_seconds") or 0.0)
        return cls(**data)

    # -- what happened, in the order a call can meet it -------------------------------------------
    def answered(self, intake: str = "menu") -> None:
        self.answered_at = time.time()
        self.step("answered", intake=intake)  # the intake policy the call met: time to a person is reported by it

    def walked(self, keys: str, menu_path: tuple[str, ...] | list[str]) -> None:
        """The keys so far and where they led, kept current during the menu."""
        self.keys, self.menu_path = keys, "/".join(menu_path)

    def decided(self, decision: Decision) -> None:
        self.track, self.decision, self.reason = decision.track, decision.action, decision.reason
        self.walked(decision.keys, decision.menu_path)
        route = decision.route
        if route is not None:
            self.route_id, self.unit, self.mode, self.target_number = (
                route.id,
                route.unit,
                route.mode.value,
                route.number,
            )
        self.step("decided", action=decision.action, reason=decision.reason, route=route.id if route else "")

    def ticket(self, ticket_id: str, kind: str) -> None:
        self.ticket_id = ticket_id
        self.step("ticket", ticket_id=ticket_id, kind=kind)

    def dialled(self, leg: Leg, number: str, result: DialResult) -> None:
        """A line rang and answered or failed; a failed department line means the overflow goes on."""
        if leg is Leg.OPERATORS:
            self.operator_status = result.status
        else:
            self.dial_status, self.dial_cause = result.status, result.cause or None
            self.overflowed = self.overflowed or not result.ok
        if result.ok:
            self.target_answered_at = result.answered
        self.step(
            "dial",
            leg=leg.value,
            number=number,
            status=result.status.value,
            cause=result.cause,
            ring_seconds=round((result.answered or time.time()) - result.started, 3),
        )

    def connected(self, outcome: Outcome) -> None:
        """Someone answered: whatever happens next, the citizen was served."""
        self.outcome = outcome

    def adopted(self, outcome: Outcome, bridge: str, legs: tuple[str, ...], since: float) -> None:
        """A restarted controller took over the conversation its dead predecessor had bridged."""
        self.outcome, self.ended_at, self.hangup_by, self.hangup_cause = outcome, None, "", None
        self.target_answered_at = self.target_answered_at or since
        self.step("adopted", bridge=bridge, legs=list(legs), talking_since=round(since, 3), outcome=outcome.value)

    def resumed(self, after: str) -> None:
        """A restarted controller starts the call over from the menu (ivr.controller.app)."""
        self.outcome, self.ended_at, self.hangup_by, self.hangup_cause = Outcome.IN_PROGRESS, None, "", None
        self.step("resumed", after=after)

    def talked(self, bridged: BridgeResult) -> None:
        """The department or operator ended the conversation."""
        self.talk_seconds = bridged.talk_seconds
        self.hangup_by, self.hangup_cause = HangupBy.CALLEE, bridged.cause
        self.step("callee_hangup", cause=bridged.cause, talk_seconds=bridged.talk_seconds)

    def rated(self, key: str | None) -> None:
        self.step("survey", key=key or "timeout")
        if key in ("1", "2", "3"):
            self.satisfaction = int(key)

    def said_goodbye(self) -> None:
        self.outcome, self.hangup_by = Outcome.GOODBYE, HangupBy.SYSTEM

    def informed(self) -> None:
        self.outcome, self.hangup_by = Outcome.INFORMED, HangupBy.SYSTEM

    def message(self, recording: str, state: str, seconds: int) -> None:
        self.step("message", recording=recording, state=state, seconds=seconds)

    def message_kept(self) -> None:
        self.outcome = Outcome.MESSAGE

    def message_lost(self) -> None:
        """The recorder kept nothing although the caller is still there: we end the call."""
        self.outcome, self.hangup_by = Outcome.FAILED, HangupBy.SYSTEM

    def message_saved(self) -> None:
        """The caller heard that the message is saved; we end the call."""
        self.hangup_by = HangupBy.SYSTEM

    def message_ended_by_caller(self, cause: int) -> None:
        """Hanging up is how many callers end a message: that is not a missed call."""
        self.hangup_by, self.hangup_cause = HangupBy.CALLER, cause

    def caller_hung_up(self, cause: int | None) -> bool:
        """The citizen hung up; True if before reaching anyone (a missed call, to be called back)."""
        self.hangup_by = self.hangup_by or HangupBy.CALLER
        self.hangup_cause = cause
        missed = self.outcome is Outcome.IN_PROGRESS
        if missed:
            self.outcome = Outcome.ABANDONED
        self.step("caller_hangup", cause=cause)
        return missed

    def handed_off(self) -> None:
        """The controller is shutting down and released the caller to the dialplan."""
        if self.outcome is Outcome.IN_PROGRESS:
            self.outcome = Outcome.HANDED_OFF
        self.hangup_by = self.hangup_by or HangupBy.SYSTEM

    def failed(self, error: str) -> None:
        """Asterisk refused a request mid-call; a call already served keeps its outcome."""
        if self.outcome is Outcome.IN_PROGRESS:
            self.outcome = Outcome.FAILED
        self.hangup_by = self.hangup_by or HangupBy.SYSTEM
        self.step("ari_error", error=error)

    def ended(self, talk_seconds: float) -> None:
        if self.talk_seconds == 0.0:
            self.talk_seconds = talk_seconds
        self.ended_at = time.time()
        self.step("ended", outcome=self.outcome.value)

    @property
    def missed_reason(self) -> str:
        """Where a missed call was lost, for the callback list."""
        if any(step.name == "queue_joined" for step in self.steps):
            return "in_queue"
        if self.dial_status or self.operator_status or self.decision in ("dial", "handoff"):
            return "during_transfer"  # being connected: hearing "connecting", or the line still ringing
        return "in_menu"

    @property
    def finished(self) -> bool:
        return self.ended_at is not None

    def columns(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "steps"}
        data["overflowed"] = int(self.overflowed)
        return data
