"""A call written in advance: the `CallControl` that `hotline simulate` and the session's tests drive.

The script says what the citizen and the lines do — the keys pressed, how each dialled
department line ends (answer, busy, noanswer, down), whether the operators answer, and where
the citizen hangs up — and how long each thing takes. The story (ivr.call.session) runs on it
unchanged; the call writes down every request the story made (`did`), so a test can assert the
exact sequence, and `simulate` can print it.

Time is asyncio's: every wait here is `asyncio.sleep`, so run on `VirtualTimeLoop` a two-minute
queue wait takes no wall-clock time, while the SeatPool's own timers keep their order against
the call's.

Hang-up steps (`hangup_at`), named for what the citizen is hearing when they hang up:
  menu        a menu prompt or the wait for a key
  connecting  the "connecting you" prompt before ringing a department
  ringing     any line ringing (department, overflow or operator)
  queue       waiting in the operators' queue
  talking     bridged with a department or an operator
  survey      the post-call rating prompt
  message     recording a message (hanging up is how a message ends: the recording is kept)
"""

from __future__ import annotations

import asyncio
import enum
import selectors
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ivr.call.control import BridgeResult, DialResult, DialStatus, LegEvent
from ivr.errors import AriError, CallEnded
from ivr.routing.dialplan import chain_extension
from ivr.routing.routes import Route, RouteTable

T = TypeVar("T")

NORMAL_CLEARING = 16  # Q.850: the citizen hung up


class Line(enum.StrEnum):
    """How a dialled line ends."""

    ANSWER = "answer"
    BUSY = "busy"
    NOANSWER = "noanswer"
    DOWN = "down"  # the trunk is down: Asterisk cannot even create the channel


class HangupStep(enum.StrEnum):
    MENU = "menu"
    CONNECTING = "connecting"
    RINGING = "ringing"
    QUEUE = "queue"
    TALKING = "talking"
    SURVEY = "survey"
    MESSAGE = "message"


USER_BUSY = 17  # Q.850: what a busy line's channel reports


@dataclass(frozen=True)
class Script:
    """What the citizen does and how the lines behave, with the time each thing takes (seconds)."""

    keys: str = ""  # pressed one per key wait, after `key_after`; ',' lets one wait time out
    caller_number: str = "13900001234"
    department: Line = Line.ANSWER  # every department and overflow line, unless `lines` names it
    lines: Mapping[str, Line] = field(default_factory=dict)  # by dialled number
    operators: Line = Line.ANSWER  # the duty line and every seat
    survey_key: str | None = None  # None: the citizen lets the rating prompt time out
    ticket_key: str | None = None  # pressed after hearing the ticket number ('*': hear it again)
    hangup_at: HangupStep | None = None
    fail_at: HangupStep | None = None  # Asterisk refuses the request at this step (AriError)
    cancel_at: HangupStep | None = None  # the controller shuts down at this step (the task is cancelled)
    prompt_seconds: float = 1.0  # each media item played (a menu of 10 items is said in 10 s)
    key_after: float = 1.0  # from the start of a key wait until the key
    answer_after: float = 4.0  # ringing before a line answers (a busy line fails after 1 s)
    talk_seconds: float = 60.0
    message_seconds: int = 8  # spoken into the recorder
    message_state: str = "done"  # what the recorder reports ('failed': nothing was kept)
    # Keys typed on the operator's seat phone: (seconds after the seat answered, keys), a key
    # every 0.2 s — e.g. ((5, "*13372000#"), (20, "*5#")): consult 市公安局, then complete.
    seat_keys: tuple[tuple[float, str], ...] = ()


@dataclass(frozen=True)
class Done:
    """One request the story made, as the call saw it (`at`: seconds since the call arrived)."""

    at: float
    verb: str
    detail: dict[str, Any]

    def __repr__(self) -> str:
        return f"{self.verb}{self.detail}"


class ScriptedCall:
    """A `CallControl` playing `script` against the lines of `table`."""

    def __init__(self, table: RouteTable, script: Script = Script(), *, rendered: RouteTable | None = None) -> None:
        """`rendered`: the routes Asterisk's ring chains were rendered from (HOTLINE_DIAL_PATH=dialplan),
        `table` unless said — an older table models a route edited since, whose chain the dialplan lacks."""
        self.script = script
        self._chains: dict[str, Route] = {chain_extension(r): r for r in (rendered or table).routes.values()}
        self.caller_number = script.caller_number
        self.digits: deque[str] = deque()
        self.caller_up = True
        self.hangup_cause = 0
        self.did: list[Done] = []
        self._keys = deque(script.keys)
        ops = table.operators
        self._operator_lines = {ops.dial_string, *(seat.dial_string for seat in ops.seats)}
        self._bridged: float = 0.0
        self._dialled = 0
        self._started = asyncio.get_running_loop().time()
        self._talked = False  # a conversation ended: key waits from now on are the survey
        self._leg_end: dict[str, float] = {}  # answered legs still up -> when they hang up (loop time)
        self._seat_leg: str | None = None  # the first operator line that answered
        self._seat_keys: deque[tuple[float, str]] = deque()  # (loop time, key) still to be typed
        self._talk_from: float | None = None
        self._told = False  # the ticket number was said: the next key wait is for '*'

    # -- what the story reads ------------------------------------------------------------------
    @property
    def talk_seconds(self) -> float:
        if self._talk_from is not None:
            return round(asyncio.get_running_loop().time() - self._talk_from, 3)
        return self._bridged

    def verbs(self, *names: str) -> list[tuple[Any, ...]]:
        """The requests made, compactly: ('play', 'connecting'), ('dial', '3372000', '市公安局', 'BUSY') ..."""
        out: list[tuple[Any, ...]] = []
        for done in self.did:
            if names and done.verb not in names:
                continue
            out.append((done.verb, *done.detail.values()))
        return out

    # -- verbs -----------------------------------------------------------------------------------
    async def answer(self) -> None:
        self._alive()
        self._note("answer")

    async def play(self, media: list[str], *, barge_in: bool = False) -> bool:
        self._alive()
        names = [m.rsplit("/", 1)[-1] for m in media]
        self._note("play", media=" ".join(names))
        if "connecting" in names:
            await self._at(HangupStep.CONNECTING)
        elif "survey" in names:
            await self._at(HangupStep.SURVEY)
        elif any(n.startswith("queue-") for n in names):
            await self._at(HangupStep.QUEUE)
        elif any(n.startswith("menu-") or n == "number-entry" for n in names):
            await self._at(HangupStep.MENU)
        self._told = self._told or "ticket-number-repeat" in names
        for _ in media:
            if barge_in and self.digits:
                return True
            await asyncio.sleep(self.script.prompt_seconds)
        return False

    async def play_until(self, media: list[str], awaitable: Awaitable[T]) -> T:
        self._alive()
        self._note("hold")
        try:
            await self._at(HangupStep.QUEUE)
        except BaseException:
            _discard(awaitable)
            raise
        return await awaitable

    async def collect_digit(self, timeout: float) -> str | None:
        self._alive()
        await self._at(HangupStep.SURVEY if self._talked else HangupStep.MENU)
        if self.digits:
            return self.digits.popleft()
        if self._told:
            self._told = False
            key = self.script.ticket_key or ","
        elif self._talked:
            self._talked = False  # one rating
            key = self.script.survey_key or ","
        else:
            key = self._keys.popleft() if self._keys else ","
        if key == "," or self.script.key_after >= timeout:
            await asyncio.sleep(timeout)
            self._note("key", key="timeout")
            return None
        await asyncio.sleep(self.script.key_after)
        self._note("key", key=key)
        return key

    async def dial(
        self, endpoint: str, ring_seconds: int, *, caller_id: str, label: str, ringback: bool = True
    ) -> DialResult:
        self._alive()
        self._dialled += 1
        channel = f"scripted-out{self._dialled}"
        number = endpoint.split("/", 1)[-1].split("@", 1)[0]
        if endpoint in self._operator_lines:
            line = self.script.operators
        else:
            line = self.script.lines.get(number, self.script.department)
        result = DialResult(DialStatus.CHANUNAVAIL, channel)
        noted = self._note("dial", number=number, label=label, status="ringing")  # until it ends
        rang_from = asyncio.get_running_loop().time()
        await self._at(HangupStep.RINGING)
        if line is Line.DOWN:
            result.status = DialStatus.TRUNK_DOWN
        elif line is Line.ANSWER and self.script.answer_after < ring_seconds:
            await asyncio.sleep(self.script.answer_after)
            result.status = DialStatus.ANSWER
        elif line is Line.BUSY:
            await asyncio.sleep(1.0)
            result.status, result.cause = DialStatus.BUSY, USER_BUSY
        else:
            await asyncio.sleep(ring_seconds)
            result.status = DialStatus.NOANSWER
        noted.detail["status"] = result.status.value
        # The story measures ringing in wall-clock time: date the start back by the virtual ring.
        result.started = time.time() - (asyncio.get_running_loop().time() - rang_from)
        if result.ok:
            result.answered = time.time()
            now = asyncio.get_running_loop().time()
            self._leg_end[channel] = now + self.script.talk_seconds
            if endpoint in self._operator_lines and self._seat_leg is None:
                self._seat_leg = channel
                for after, keys in self.script.seat_keys:
                    self._seat_keys.extend((now + after + 0.2 * n, key) for n, key in enumerate(keys))
        return result

    async def ring_chain(self, extension: str) -> AsyncIterator[tuple[int, DialResult]]:
        """Asterisk ringing the chain in the dialplan: each number rung as `dial` rings it (the same
        lines, times and statuses), in order until one answers; an extension the rendered routes lack
        comes back at once (the `i` extension), nothing rung."""
        self._alive()
        route = self._chains.get(extension)
        self._note("ring_chain", extension=extension, found=route is not None)
        if route is None:
            return
        for n, target in enumerate(route.targets):
            result = await self.dial(target.dial_string, target.ring_seconds, caller_id="", label=route.unit)
            yield n, result
            if result.ok:
                return

    async def talked_in_dialplan(self) -> BridgeResult:
        self._alive()
        self._note("talk_in_dialplan")
        return await self._converse()

    async def bridge(self, other: str) -> BridgeResult:
        self._alive()
        self._note("bridge", channel=other)
        return await self._converse()

    async def _converse(self) -> BridgeResult:
        """The conversation, `talk_seconds` long, until the department hangs up (or the citizen, at `talking`)."""
        step = self.script.talk_seconds / 2
        await asyncio.sleep(step)
        self._bridged = step
        await self._at(HangupStep.TALKING)
        await asyncio.sleep(self.script.talk_seconds - step)
        self._bridged = self.script.talk_seconds
        self._talked = True
        return BridgeResult("callee", self._bridged, NORMAL_CLEARING)

    async def talk_with(self, legs: Sequence[str], *, hold: bool = False) -> None:
        self._alive()
        if self._talk_from is None:
            self._talk_from = asyncio.get_running_loop().time()
        self._note("talk_with", legs=" ".join(legs), hold=hold)

    async def listen(self, legs: Collection[str], command: Awaitable[T]) -> LegEvent | T:
        try:
            self._alive()
            await self._at(HangupStep.TALKING)
        except BaseException:
            _discard(command)
            raise
        task = asyncio.ensure_future(command)
        loop = asyncio.get_running_loop()
        try:
            while True:
                now = loop.time()
                seat_listened = self._seat_leg in legs and self._seat_leg in self._leg_end
                if seat_listened and self._seat_keys and self._seat_keys[0][0] <= now:
                    assert self._seat_leg is not None
                    key = self._seat_keys.popleft()[1]
                    self._note("seat_key", key=key)
                    return LegEvent(self._seat_leg, key)
                for leg in legs:
                    if leg in self._leg_end and self._leg_end[leg] <= now:
                        del self._leg_end[leg]
                        self._note("leg_hangup", channel=leg)
                        self._talked = True  # a conversation ended: the next key wait is the survey
                        return LegEvent(leg, None)
                if task.done():
                    return task.result()
                due = [self._leg_end[leg] for leg in legs if leg in self._leg_end]
                if seat_listened and self._seat_keys:
                    due.append(self._seat_keys[0][0])
                await asyncio.wait({task}, timeout=max(0.0, min(due) - now) if due else None)
        finally:
            if not task.done():
                task.cancel()

    async def drop(self, leg: str) -> None:
        if self._leg_end.pop(leg, None) is not None:
            self._note("drop", channel=leg)

    async def record(self, name: str, max_seconds: int = 60, max_silence_seconds: int = 5) -> tuple[str, int]:
        self._alive()
        self.digits.clear()
        seconds = min(self.script.message_seconds, max_seconds)
        await asyncio.sleep(seconds)
        if self.script.hangup_at is HangupStep.MESSAGE:
            self._hang_up()  # hanging up ends the message; the recording is still reported
        else:
            await asyncio.sleep(max_silence_seconds)
        self._note("record", name=name, state=self.script.message_state, seconds=seconds)
        return self.script.message_state, seconds

    async def record_leg(self, leg: str, path: str) -> bool:
        self._alive()
        self._note("record_leg", channel=leg, path=path)
        return True

    async def wait(self, awaitable: Awaitable[T], timeout: float) -> T | None:
        self._alive()
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError:
            return None

    async def hangup(self) -> None:
        if self.caller_up:
            self.caller_up = False
            self._note("hangup")

    async def cleanup(self) -> None:
        self._note("cleanup")

    def close(self) -> None:
        self._note("close")

    # -- the script's events -------------------------------------------------------------------
    async def _at(self, step: HangupStep) -> None:
        """Whatever the script does at `step`: hang up, fail, shut down — once each."""
        script = self.script
        if step is script.hangup_at and step is not HangupStep.MESSAGE:
            await asyncio.sleep(script.key_after)
            self._hang_up()
            raise CallEnded("caller_hangup", self.hangup_cause)
        if step is script.fail_at:
            self.script = _without_events(script)
            self._note("ari_error", step=step.value)
            raise AriError(f"scripted: Asterisk refused a request at {step.value}")
        if step is script.cancel_at:
            self.script = _without_events(script)
            self._note("shutdown", step=step.value)
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)  # the cancellation lands here, as it would in any real wait

    def _hang_up(self) -> None:
        self._note("caller_hangup")
        self.caller_up = False
        self.hangup_cause = NORMAL_CLEARING
        self.script = _without_events(self.script)

    def _alive(self) -> None:
        if not self.caller_up:
            raise CallEnded("caller_hangup", self.hangup_cause)

    def _note(self, verb: str, **detail: Any) -> Done:
        at = round(asyncio.get_running_loop().time() - self._started, 3)
        done = Done(at, verb, detail)
        self.did.append(done)
        return done


def _without_events(script: Script) -> Script:
    return replace(script, hangup_at=None, fail_at=None, cancel_at=None)


def _discard(awaitable: Awaitable[Any]) -> None:
    """Close an awaitable never awaited (a coroutine would warn otherwise)."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


class _NoWaitSelector(selectors.DefaultSelector):
    """Polls instead of sleeping: a wait for the next timer moves the loop's clock there at once."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout is None or timeout <= 0:
            return ready if ready or timeout is not None else super().select(None)
        self._loop.advance(timeout)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer instead of waiting for it.

    Everything scheduled on the loop (asyncio.sleep, timeouts, the SeatPool's timers given
    `clock=loop.time`) keeps its order and its durations, measured in this clock; a scripted
    call of several minutes runs in milliseconds. Sockets still work, but with no waiting.
    """

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(_NoWaitSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
