"""`hotline simulate --call`: the whole call, played by the live session code on a ScriptedCall.

The citizen dials `dialed` at `at` and presses `keys` (then stays silent); the department's
lines end as `department` says, the operators are `free` or `none` (every seat talking with
someone else for the whole call; without seats, the group line rings unanswered), and the
citizen may hang up at a named step. `handle_call` runs exactly as for a live call, with the
real SeatPool, on a virtual clock (a two-minute queue wait takes no time), writing to an
in-memory call log.

What comes out is a timeline, one dict per line: the call's requests as the telephony saw them
(`{"t": 3.0, "call": "play", "media": "connecting"}`), the record's steps as the call log keeps
them (`{"t": 3.0, "step": "dial", "leg": "department", ...}`), the call-log writes
(`{"t": ..., "calllog": "ticket_opened", ...}`), and last the final record
(`{"record": {...}}`). `t` is seconds since the call arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
from typing import Any

from ivr import privacy
from ivr.call.books import Services
from ivr.call.scripted import Done, HangupStep, Line, Script, ScriptedCall, VirtualTimeLoop
from ivr.call.session import handle_call
from ivr.calllog.records import CallRecord
from ivr.handoff.webhook import Handoff, WebhookTarget
from ivr.metrics import Metrics
from ivr.operators.queue import SeatPool
from ivr.outbound.store import ContactKept
from ivr.prompts import Prompts
from ivr.routing.routes import RouteTable
from ivr.tickets import Ticket

CALLER = "13900001234"  # a made-up citizen


class Operators(enum.StrEnum):
    FREE = "free"
    NONE = "none"


class _Timeline:
    """Everything the simulated call did, in the order it happened, on the loop's clock."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def add(self, kind: str, name: str, detail: dict[str, Any]) -> None:
        at = round(asyncio.get_running_loop().time(), 3)
        self.lines.append({"t": at, kind: name, **detail})


class _TimedRecord(CallRecord):
    """A CallRecord whose steps also go on the timeline."""

    timeline: _Timeline | None = None

    def step(self, name: str, **detail: Any) -> None:
        super().step(name, **detail)
        if self.timeline is not None:
            self.timeline.add("step", name, detail)


class _CallLogInMemory:
    """The call log's writes (CallLogWrites), kept as timeline lines instead of rows."""

    def __init__(self, timeline: _Timeline) -> None:
        self._timeline = timeline

    def call_started(self, record: CallRecord) -> None:
        self._timeline.add("calllog", "call_started", {})

    def call_finished(self, record: CallRecord) -> None:
        self._timeline.add("calllog", "call_finished", {"outcome": record.outcome.value})

    def ticket_opened(self, ticket: Ticket) -> None:
        detail = {"ticket_id": ticket.ticket_id, "kind": ticket.kind, "unit": ticket.unit}
        self._timeline.add("calllog", "ticket_opened", detail)

    def ticket_survey(self, ticket_id: str, score: int) -> None:
        self._timeline.add("calllog", "ticket_survey", {"ticket_id": ticket_id, "score": score})

    def missed_call(
        self, call_id: str, caller_number: str, caller_hash: str, caller_masked: str, reason: str, at: float
    ) -> None:
        self._timeline.add("calllog", "callback_listed", {"caller": caller_masked, "reason": reason})

    def record(self, write: ContactKept) -> None:
        self._timeline.add("calllog", write.kind, {"ticket_id": write.ticket_id})


class _NotedCall(ScriptedCall):
    """A ScriptedCall whose requests also go on the timeline."""

    timeline: _Timeline

    def _note(self, verb: str, **detail: Any) -> Done:
        done = super()._note(verb, **detail)
        self.timeline.lines.append({"t": done.at, "call": verb, **done.detail})
        return done


def play(
    table: RouteTable,
    dialed: str,
    keys: str,
    at: dt.datetime,
    *,
    department: Line = Line.ANSWER,
    operators: Operators = Operators.FREE,
    hangup_at: HangupStep | None = None,
    dial_path: str = "ari",
) -> list[dict[str, Any]]:
    """Play the call to its end; its timeline, then `{"record": ...}`. `dial_path` as HOTLINE_DIAL_PATH."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(_play(table, dialed, keys, at, department, operators, hangup_at, dial_path))
    finally:
        loop.close()


async def _play(
    table: RouteTable,
    dialed: str,
    keys: str,
    at: dt.datetime,
    department: Line,
    operators: Operators,
    hangup_at: HangupStep | None,
    dial_path: str,
) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    timeline = _Timeline()
    script = Script(
        keys=keys,
        caller_number=CALLER,
        department=department,
        operators=Line.ANSWER if operators is Operators.FREE else Line.NOANSWER,
        hangup_at=hangup_at,
    )
    call = _NotedCall(table, script)
    call.timeline = timeline
    record = _TimedRecord(
        call_id="simulated",
        channel_id="simulated",
        entry=dialed,
        caller_masked=privacy.mask(CALLER),
        caller_hash="simulated",
        routes_version=table.digest,
        started_at=0.0,
    )
    record.timeline = timeline
    pool = SeatPool(table.operators.seats, clock=loop.time)
    svc = Services(
        calllog=_CallLogInMemory(timeline),
        prompts=Prompts(),
        clock=lambda: at,
        seats=pool,
        metrics=Metrics(),
        partner_secrets={r.partner.name: b"simulated" for r in table.routes.values() if r.partner is not None},
        webhooks=_Webhooks(timeline),
        dial_path=dial_path,
    )
    async with contextlib.AsyncExitStack() as others:
        if operators is Operators.NONE:
            for n, _ in enumerate(table.operators.seats):  # each seat talking with someone else
                turn = await others.enter_async_context(pool.wait_turn(f"other-caller-{n}"))
                turn.connected(await turn.offered())
        await handle_call(call, record, table, svc)
    final = {k: _plain(v) for k, v in record.columns().items()}
    # Wall-clock stamps of a simulated call mean nothing (the timeline has its times).
    for key in ("started_at", "answered_at", "ended_at", "target_answered_at", "timeline"):
        final.pop(key, None)
    return [*timeline.lines, {"record": final}]


class _Webhooks:
    """The partner platform's webhook: what would be POSTed goes on the timeline."""

    def __init__(self, timeline: _Timeline) -> None:
        self._timeline = timeline

    def submit(self, target: WebhookTarget, handoff: Handoff) -> None:
        self._timeline.add("webhook", target.name, {"url": target.url, "ticket_id": handoff.ticket_id})


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


__all__ = ["HangupStep", "Line", "Operators", "play"]
