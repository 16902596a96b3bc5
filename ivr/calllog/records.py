"""What the call log keeps: one CallRecord per call, with its ordered steps.

The record is filled in as the call goes (the session owns it) and written twice: once when
the call arrives (so even a controller killed mid-call leaves a row, later marked interrupted)
and once, complete, when the call ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


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
    decision: str = ""  # dial | operator | hangup
    reason: str = ""
    route_id: str = ""
    unit: str = ""
    mode: str = ""
    target_number: str = ""
    dial_status: str = ""  # ANSWER, BUSY, NOANSWER, CONGESTION, CHANUNAVAIL, TRUNK_DOWN
    dial_cause: int | None = None  # Q.850 cause of the outbound leg
    target_answered_at: float | None = None  # a human (department or operator) picked up
    overflowed: bool = False  # the department failed and the operators were tried
    operator_status: str = ""
    hangup_by: str = ""  # caller | callee | system
    hangup_cause: int | None = None
    talk_seconds: float = 0.0
    outcome: str = (
        "in_progress"  # connected | operator | message | goodbye | abandoned | failed | handed_off | interrupted
    )
    ticket_id: str = ""
    satisfaction: int | None = None  # post-call survey: 1 satisfied, 2 basically, 3 dissatisfied
    steps: list[Step] = field(default_factory=list)

    def step(self, name: str, **detail: Any) -> None:
        self.steps.append(Step(time.time(), name, detail))

    @property
    def finished(self) -> bool:
        return self.ended_at is not None

    def columns(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "steps"}
        data["overflowed"] = int(self.overflowed)
        return data
